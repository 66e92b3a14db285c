/**
 * ScanRelay protocol v1 for k6 scripts: both codecs (JSON text frames, msgpack binary frames via msgpackr,
 * bundled by esbuild), ES256 token minting with WebCrypto (k6's global `crypto`), and small socket helpers.
 * Runs in k6 (goja) and, for CI, in Node under bench/k6/shim.
 */
import { Packr, Unpackr } from 'msgpackr';

export const SUBPROTOCOL = { json: 'scanrelay.v1.json', msgpack: 'scanrelay.v1.msgpack' };
export const TYP = {
  session: 'scanrelay-session+jwt',
  command: 'scanrelay-command+jwt',
  gateway: 'scanrelay-gateway+jwt',
};

const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: 'string' });

/** Encode one message for `codec`: a string (text frame) or an ArrayBuffer (binary frame). */
export function encode(codec, message) {
  if (codec === 'json') return JSON.stringify(message);
  const bytes = packr.pack(message);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** Decode one frame's data (string for text, ArrayBuffer for binary). */
export function decode(codec, data) {
  if (codec === 'json') return JSON.parse(typeof data === 'string' ? data : utf8(new Uint8Array(data)));
  return unpackr.unpack(new Uint8Array(data));
}

function utf8(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return decodeURIComponent(escape(s));
}

// ── ES256 JWS with WebCrypto ───────────────────────────────────────────────────────────────────────────

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function b64url(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    if (i + 1 < bytes.length) out += B64[(n >> 6) & 63];
  }
  return out;
}

function utf8Bytes(text) {
  const s = unescape(encodeURIComponent(text));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return b64url(b);
}

/** Import a private P-256 JWK for ES256 signing. */
export function importSigningKey(jwk) {
  const { kty, crv, x, y, d } = jwk;
  return crypto.subtle.importKey('jwk', { kty, crv, x, y, d }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

/** Sign a compact JWS (ES256); WebCrypto's ECDSA signature is already the raw r‖s form JWS uses. */
export async function signJws(key, header, payload) {
  const input = `${b64url(utf8Bytes(JSON.stringify({ alg: 'ES256', ...header })))}.${b64url(utf8Bytes(JSON.stringify(payload)))}`;
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, utf8Bytes(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

function times(ttlS) {
  const iat = Math.floor(Date.now() / 1000);
  return { iat, exp: iat + ttlS, jti: randomId() };
}

/** Tokens from a bench file written by `bench/dist/src/k6/prepare.js` (keys are bench-only). */
export class Minter {
  constructor(bench) {
    this.bench = bench;
    this.manageKey = null;
    this.gatewayKeys = new Map();
  }

  async manage() {
    this.manageKey ??= await importSigningKey(this.bench.manage.privateJwk);
    return this.manageKey;
  }

  async session(sub, sites, ttlS = 3600) {
    return signJws(
      await this.manage(),
      { typ: TYP.session, kid: this.bench.manage.kid },
      {
        iss: this.bench.issuer,
        aud: this.bench.audience,
        sub,
        sid: `sid-${randomId()}`,
        sites,
        ...times(ttlS),
      },
    );
  }

  async command(gateway, site, sub, ttlS = 120) {
    return signJws(
      await this.manage(),
      { typ: TYP.command, kid: this.bench.manage.kid },
      {
        iss: this.bench.issuer,
        aud: gateway.id,
        site,
        sub,
        cmd: 'echo',
        args: { aet: 'BENCH' },
        ...times(ttlS),
      },
    );
  }

  async assertion(gateway) {
    let key = this.gatewayKeys.get(gateway.id);
    if (!key) {
      key = await importSigningKey(gateway.privateJwk);
      this.gatewayKeys.set(gateway.id, key);
    }
    return signJws(
      key,
      { typ: TYP.gateway },
      { iss: gateway.id, sub: gateway.id, aud: this.bench.audience, ...times(30) },
    );
  }
}

/** Payload padding so an event's data is about 100 bytes, as in the Node harness. */
export const PAD = 'x'.repeat(56);
