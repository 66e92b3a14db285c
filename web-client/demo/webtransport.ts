/**
 * WebTransport for the demo stack: whether to offer it, and a self-signed certificate for the relay's listener
 * made at start-up, pinned by its SHA-256 in the page's config.
 *
 * Browsers speak WebTransport only over HTTP/3, which the relay serves only where the native module
 * `@fails-components/webtransport-transport-http3-quiche` is installed. So `auto` (the default) offers it only
 * then; `on` offers it regardless (the page then shows its fallback to WebSocket — what the browser tests check);
 * `off` never. Whatever fails here (no openssl, no module) leaves the demo on WebSocket, with a log line saying why.
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

export type DemoWebTransportMode = 'auto' | 'on' | 'off';
export const WEBTRANSPORT_MODES: readonly DemoWebTransportMode[] = ['auto', 'on', 'off'];

export interface WebTransportTls {
  /** PEM files for the relay's `webTransportCert` / `webTransportKey`. */
  cert: string;
  key: string;
  /** SHA-256 of the certificate (DER), hex: the page pins it with `serverCertificateHashes`. */
  sha256: string;
}

const HTTP3_MODULE = '@fails-components/webtransport-transport-http3-quiche';
/** Browsers accept a pinned certificate only if it is valid for at most 14 days. */
const CERT_DAYS = 10;

/** Decide, and make the certificate. Undefined: stay on WebSocket (logged). */
export async function prepareWebTransport(
  mode: DemoWebTransportMode,
  dir: string,
  log: Logger,
): Promise<WebTransportTls | undefined> {
  if (mode === 'off') return undefined;
  if (mode === 'auto') {
    try {
      await import(HTTP3_MODULE);
    } catch {
      log.info(
        { module: HTTP3_MODULE },
        'WebTransport not offered to the page: browsers need HTTP/3 and its native module is not installed ' +
          '(SCANRELAY_DEMO_WEBTRANSPORT=on offers it anyway; the page then falls back to WebSocket)',
      );
      return undefined;
    }
  }
  try {
    return await selfSignedCertificate(dir);
  } catch (err) {
    log.warn(
      { err: (err as Error).message },
      'WebTransport not offered: could not make its certificate with openssl; the demo stays on WebSocket',
    );
    return undefined;
  }
}

/** An ECDSA P-256 certificate for 127.0.0.1 and localhost, valid CERT_DAYS, made with openssl. */
async function selfSignedCertificate(dir: string): Promise<WebTransportTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cert = join(dir, 'webtransport-cert.pem');
  const key = join(dir, 'webtransport-key.pem');
  await promisify(execFile)(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(CERT_DAYS),
      '-subj',
      '/CN=ScanRelay demo relay',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { timeout: 15_000 },
  );
  await chmod(key, 0o600);
  const sha256 = createHash('sha256')
    .update(new X509Certificate(await readFile(cert)).raw)
    .digest('hex');
  return { cert, key, sha256 };
}
