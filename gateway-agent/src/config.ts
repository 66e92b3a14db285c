/**
 * Gateway agent settings: defaults → file (`--config file.json`) → environment (env wins) → validation.
 * Start-up stops on the first run with every problem listed, each naming the setting and the fix.
 *
 * The config file is a JSON object whose keys are the setting names below, e.g.
 * `{ "SCANRELAY_GATEWAY_AET": "SITEGW", "SCANRELAY_GATEWAY_MODALITIES": ["MG1@10.0.0.5:104"] }`.
 * Numbers may be given as numbers and lists as arrays; unknown keys are refused (typos fail loudly).
 */
import { readFileSync } from 'node:fs';
import { AE_PATTERN, type Codec, DEFAULT_AUDIENCE, PATHS } from '@scanrelay/protocol';
import type { DicomPeer } from './dicom/types.js';
import { GatewayError } from './errors.js';
import type { LogLevel } from './log.js';

/** Every setting: its name, default and what it means (README lists the same). */
export const SETTINGS = {
  SCANRELAY_GATEWAY_RELAY_URLS:
    'comma list of relay base URLs (http/https), tried in turn; default: the URL used at activation',
  SCANRELAY_GATEWAY_STATE_DIR:
    'directory for key, identity, outbox, replay guard, DICOM data (0700); default /var/lib/scanrelay-gateway',
  SCANRELAY_GATEWAY_MANAGE_JWKS: "path of the JWKS file with the manage app's public keys (required for run)",
  SCANRELAY_GATEWAY_MANAGE_ISSUER: "the manage app's issuer (`iss`), exact (required for run)",
  SCANRELAY_GATEWAY_AET: 'own AE title (worklist, MPPS, storage SCP); default SCANRELAY',
  SCANRELAY_GATEWAY_DICOM_PORT: 'TCP port of the DICOM SCPs; default 11112 (0 = any free port)',
  SCANRELAY_GATEWAY_DICOM_HOST: 'interface the DICOM SCPs bind to; default 0.0.0.0 (firewall it to the modalities)',
  SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS:
    'comma list of calling AE titles allowed on the SCPs; default: the configured modalities and PACS (each only from its own host; a listed AE that is no configured peer may call from any address)',
  SCANRELAY_GATEWAY_FORWARD_TO_PACS: 'true to forward every received image to the PACS; default false',
  SCANRELAY_GATEWAY_PACS: 'the PACS as AET@host:port; optional',
  SCANRELAY_GATEWAY_MODALITIES:
    'comma list of modalities as AET@host:port; optional. A modality may call the gateway only from its host (A-ASSOCIATE-RJ otherwise)',
  SCANRELAY_GATEWAY_TRANSPORT:
    'relay link transport: websocket (default), webtransport, or auto (WebTransport first, WebSocket when it fails)',
  SCANRELAY_GATEWAY_WEBTRANSPORT_URLS:
    "comma list of https URLs of the relay's WebTransport listener (e.g. https://relay:4433); needed for webtransport/auto",
  SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256:
    "hex SHA-256 of the relay's WebTransport certificate, pinned instead of CA validation (self-signed relays)",
  SCANRELAY_GATEWAY_AUDIENCE: "the relay's audience (its SCANRELAY_AUDIENCE); default scanrelay",
  SCANRELAY_GATEWAY_CODEC: 'wire encoding: msgpack (default) or json',
  SCANRELAY_GATEWAY_LOG_LEVEL: 'fatal|error|warn|info|debug|trace|silent; default info',
  SCANRELAY_GATEWAY_OUTBOX_MAX_EVENTS: 'most unacknowledged events held; default 100000',
  SCANRELAY_GATEWAY_OUTBOX_MAX_BYTES: 'most bytes of unacknowledged events held; default 67108864 (64 MiB)',
  SCANRELAY_GATEWAY_ECHO_INTERVAL_S: 'seconds between C-ECHO checks of the modalities; default 60 (0 = off)',
  SCANRELAY_GATEWAY_RETENTION_HOURS:
    'hours worklist items and received images are kept; default: end of the clinic day',
} as const;
export type SettingName = keyof typeof SETTINGS;

export interface GatewayConfig {
  /** Relay gateway-endpoint WebSocket URLs (ws/wss …/v1/gateway); empty = use the activation URL. */
  relayUrls: string[];
  stateDir: string;
  manageJwks: string;
  manageIssuer: string;
  aet: string;
  dicomPort: number;
  dicomHost: string;
  allowedCallingAets: string[] | undefined;
  forwardToPacs: boolean;
  pacs: DicomPeer | undefined;
  modalities: DicomPeer[];
  audience: string;
  /**
   * Which transport carries the relay link: `websocket` (over `relayUrls`), `webtransport` (over
   * `webTransportUrls` only) or `auto` (WebTransport first; WebSocket when it cannot connect).
   */
  transport: GatewayTransport;
  /** The relay's WebTransport gateway endpoints (`https://host:port/v1/gateway`); empty for websocket. */
  webTransportUrls: string[];
  /** Pinned SHA-256 of the relay's WebTransport certificate, 64 lowercase hex characters. */
  webTransportCertSha256: string | undefined;
  codec: Codec;
  logLevel: LogLevel;
  outboxMaxEvents: number;
  outboxMaxBytes: number;
  echoIntervalMs: number;
  retentionMs: number | undefined;
}

export const DEFAULT_STATE_DIR = '/var/lib/scanrelay-gateway';
export type GatewayTransport = 'websocket' | 'webtransport' | 'auto';
const TRANSPORTS: readonly GatewayTransport[] = ['websocket', 'webtransport', 'auto'];
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export type RawSettings = Partial<Record<SettingName, string>>;

/** Read a `--config` file into raw settings. Throws config_invalid naming the file and the problem. */
export function readConfigFile(path: string): RawSettings {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new GatewayError('config_invalid', `--config ${path}: cannot read it as JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new GatewayError('config_invalid', `--config ${path}: must hold a JSON object of settings`);
  const out: RawSettings = {};
  for (const [key, value] of Object.entries(doc)) {
    if (!Object.hasOwn(SETTINGS, key))
      throw new GatewayError(
        'config_invalid',
        `--config ${path}: "${key.slice(0, 64)}" is not a setting; known settings: ${Object.keys(SETTINGS).join(', ')}`,
      );
    if (typeof value === 'string') out[key as SettingName] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') out[key as SettingName] = String(value);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
      out[key as SettingName] = value.join(',');
    else
      throw new GatewayError('config_invalid', `--config ${path}: ${key} must be a string, number or list of strings`);
  }
  return out;
}

/** Merge file settings and environment (environment wins; empty env values count as unset). */
export function mergeSettings(file: RawSettings, env: NodeJS.ProcessEnv): RawSettings {
  const out: RawSettings = { ...file };
  for (const key of Object.keys(SETTINGS) as SettingName[]) {
    const v = env[key];
    if (v !== undefined && v !== '') out[key] = v;
  }
  return out;
}

/**
 * Validate settings for `run` (or, with `purpose: 'activate'`, only what activation needs). Throws one
 * GatewayError('config_invalid') listing every problem.
 */
export function validateConfig(raw: RawSettings, purpose: 'run' | 'activate' = 'run'): GatewayConfig {
  const problems: string[] = [];
  const problem = (name: SettingName, what: string) => problems.push(`${name}: ${what}`);
  const get = (name: SettingName) => raw[name]?.trim() || undefined;

  const int = (name: SettingName, def: number, min: number, max: number): number => {
    const v = get(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      problem(name, `"${v.slice(0, 32)}" is not a whole number from ${min} to ${max}`);
      return def;
    }
    return n;
  };

  const stateDir = get('SCANRELAY_GATEWAY_STATE_DIR') ?? DEFAULT_STATE_DIR;
  if (!stateDir.startsWith('/'))
    problem('SCANRELAY_GATEWAY_STATE_DIR', `"${stateDir}" must be an absolute path, e.g. ${DEFAULT_STATE_DIR}`);

  const relayUrls: string[] = [];
  for (const part of (get('SCANRELAY_GATEWAY_RELAY_URLS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    try {
      relayUrls.push(gatewayEndpoint(part));
    } catch (err) {
      problem('SCANRELAY_GATEWAY_RELAY_URLS', (err as Error).message);
    }
  }

  const manageJwks = get('SCANRELAY_GATEWAY_MANAGE_JWKS') ?? '';
  const manageIssuer = get('SCANRELAY_GATEWAY_MANAGE_ISSUER') ?? '';
  if (purpose === 'run') {
    if (!manageJwks)
      problem('SCANRELAY_GATEWAY_MANAGE_JWKS', "is required: the path of the manage app's public JWKS file");
    if (!manageIssuer)
      problem('SCANRELAY_GATEWAY_MANAGE_ISSUER', "is required: the manage app's issuer, exactly as in its tokens");
  }

  const aet = get('SCANRELAY_GATEWAY_AET') ?? 'SCANRELAY';
  if (!AE_PATTERN.test(aet))
    problem('SCANRELAY_GATEWAY_AET', `"${aet.slice(0, 32)}" is not an AE title (1–16 characters, no backslash)`);
  const dicomPort = int('SCANRELAY_GATEWAY_DICOM_PORT', 11112, 0, 65535);
  const dicomHost = get('SCANRELAY_GATEWAY_DICOM_HOST') ?? '0.0.0.0';
  if (!/^[A-Za-z0-9.:-]{1,253}$/.test(dicomHost))
    problem('SCANRELAY_GATEWAY_DICOM_HOST', `"${dicomHost.slice(0, 64)}" is not a host name or IP address`);
  const callingRaw = get('SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS');
  const allowedCallingAets = callingRaw
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const a of allowedCallingAets ?? [])
    if (!AE_PATTERN.test(a))
      problem('SCANRELAY_GATEWAY_ALLOWED_CALLING_AETS', `"${a.slice(0, 32)}" is not an AE title`);
  const forwardRaw = get('SCANRELAY_GATEWAY_FORWARD_TO_PACS') ?? 'false';
  if (forwardRaw !== 'true' && forwardRaw !== 'false')
    problem('SCANRELAY_GATEWAY_FORWARD_TO_PACS', 'must be true or false');

  let pacs: DicomPeer | undefined;
  const pacsRaw = get('SCANRELAY_GATEWAY_PACS');
  if (pacsRaw) {
    try {
      pacs = parsePeer(pacsRaw);
    } catch (err) {
      problem('SCANRELAY_GATEWAY_PACS', (err as Error).message);
    }
  }
  const modalities: DicomPeer[] = [];
  for (const part of (get('SCANRELAY_GATEWAY_MODALITIES') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    try {
      modalities.push(parsePeer(part));
    } catch (err) {
      problem('SCANRELAY_GATEWAY_MODALITIES', (err as Error).message);
    }
  }

  const audience = get('SCANRELAY_GATEWAY_AUDIENCE') ?? DEFAULT_AUDIENCE;
  if (audience.length > 256) problem('SCANRELAY_GATEWAY_AUDIENCE', 'is longer than 256 characters');
  const transport = (get('SCANRELAY_GATEWAY_TRANSPORT') ?? 'websocket') as GatewayTransport;
  if (!TRANSPORTS.includes(transport))
    problem('SCANRELAY_GATEWAY_TRANSPORT', `"${transport.slice(0, 32)}" must be websocket, webtransport or auto`);
  const webTransportUrls: string[] = [];
  for (const part of (get('SCANRELAY_GATEWAY_WEBTRANSPORT_URLS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    try {
      webTransportUrls.push(webTransportEndpoint(part));
    } catch (err) {
      problem('SCANRELAY_GATEWAY_WEBTRANSPORT_URLS', (err as Error).message);
    }
  }
  const pinRaw = get('SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256');
  const webTransportCertSha256 = pinRaw?.replace(/:/g, '').toLowerCase();
  if (webTransportCertSha256 !== undefined && !/^[0-9a-f]{64}$/.test(webTransportCertSha256))
    problem(
      'SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256',
      "must be the 64 hex digits of the certificate's SHA-256 (colons allowed), e.g. from " +
        '`openssl x509 -in cert.pem -noout -fingerprint -sha256`',
    );
  if (transport === 'websocket') {
    for (const name of ['SCANRELAY_GATEWAY_WEBTRANSPORT_URLS', 'SCANRELAY_GATEWAY_WEBTRANSPORT_CERT_SHA256'] as const)
      if (get(name) !== undefined)
        problem(
          name,
          'is set but SCANRELAY_GATEWAY_TRANSPORT is websocket (the default); set SCANRELAY_GATEWAY_TRANSPORT=auto ' +
            '(or webtransport) to use WebTransport, or remove this setting',
        );
  } else if (
    TRANSPORTS.includes(transport) &&
    webTransportUrls.length === 0 &&
    !get('SCANRELAY_GATEWAY_WEBTRANSPORT_URLS')
  )
    problem(
      'SCANRELAY_GATEWAY_WEBTRANSPORT_URLS',
      `is required with SCANRELAY_GATEWAY_TRANSPORT=${transport}: the https URL(s) of the relay's WebTransport ` +
        'listener (its SCANRELAY_WEBTRANSPORT_PORT), e.g. https://relay.example.org:4433',
    );
  const codecRaw = get('SCANRELAY_GATEWAY_CODEC') ?? 'msgpack';
  if (codecRaw !== 'msgpack' && codecRaw !== 'json') problem('SCANRELAY_GATEWAY_CODEC', 'must be msgpack or json');
  const logLevel = (get('SCANRELAY_GATEWAY_LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problem('SCANRELAY_GATEWAY_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);

  const outboxMaxEvents = int('SCANRELAY_GATEWAY_OUTBOX_MAX_EVENTS', 100_000, 100, 10_000_000);
  const outboxMaxBytes = int('SCANRELAY_GATEWAY_OUTBOX_MAX_BYTES', 64 * 1024 * 1024, 1024 * 1024, 4 * 1024 ** 3);
  const echoIntervalMs = int('SCANRELAY_GATEWAY_ECHO_INTERVAL_S', 60, 0, 86_400) * 1000;
  const retentionRaw = get('SCANRELAY_GATEWAY_RETENTION_HOURS');
  const retentionMs =
    retentionRaw === undefined ? undefined : int('SCANRELAY_GATEWAY_RETENTION_HOURS', 24, 1, 24 * 30) * 3_600_000;

  if (problems.length > 0)
    throw new GatewayError(
      'config_invalid',
      `the gateway configuration is invalid:\n  - ${problems.join('\n  - ')}\n` +
        'Set these in the environment or in the --config file (environment wins).',
    );
  return {
    relayUrls,
    stateDir,
    manageJwks,
    manageIssuer,
    aet,
    dicomPort,
    dicomHost,
    allowedCallingAets,
    forwardToPacs: forwardRaw === 'true',
    pacs,
    modalities,
    audience,
    transport,
    webTransportUrls,
    webTransportCertSha256,
    codec: codecRaw as Codec,
    logLevel,
    outboxMaxEvents,
    outboxMaxBytes,
    echoIntervalMs,
    retentionMs,
  };
}

/** Load settings from an optional file and the environment, and validate them. */
export function loadConfig(
  opts: { env?: NodeJS.ProcessEnv; configFile?: string; purpose?: 'run' | 'activate' } = {},
): GatewayConfig {
  const file = opts.configFile ? readConfigFile(opts.configFile) : {};
  return validateConfig(mergeSettings(file, opts.env ?? process.env), opts.purpose ?? 'run');
}

/** Parse `AET@host:port`. */
export function parsePeer(text: string): DicomPeer {
  const m = /^(.{1,16})@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(text);
  if (!m) throw new Error(`"${text.slice(0, 64)}" is not AET@host:port (e.g. MG1@10.0.0.5:104)`);
  const [, aet, host, portText] = m;
  const port = Number(portText);
  if (!AE_PATTERN.test(aet!)) throw new Error(`"${aet}" is not an AE title (1–16 characters)`);
  if (port < 1 || port > 65535) throw new Error(`port ${port} in "${text}" is out of range`);
  return { aet: aet!, host: host!.replace(/^\[|\]$/g, ''), port };
}

/**
 * Turn the relay's WebTransport listener URL into its gateway endpoint: https://h:4433 →
 * https://h:4433/v1/gateway. WebTransport needs TLS, so only https is accepted; credentials, queries and
 * fragments are refused (tokens never go in URLs).
 */
export function webTransportEndpoint(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new Error(`"${base.slice(0, 128)}" is not a URL; use e.g. https://relay.example.org:4433`);
  }
  if (url.protocol !== 'https:')
    throw new Error(`"${base.slice(0, 128)}" must be an https URL (WebTransport always runs over TLS)`);
  if (url.username || url.password || url.search || url.hash)
    throw new Error(`"${base.slice(0, 128)}" must not contain credentials, a query or a fragment`);
  if (!url.pathname.endsWith(PATHS.gateway)) url.pathname = url.pathname.replace(/\/$/, '') + PATHS.gateway;
  return url.href;
}

/**
 * Turn a relay base URL (http/https, or ws/wss) into its gateway WebSocket endpoint: http://h:p/base →
 * ws://h:p/base/v1/gateway. Credentials, queries and fragments are refused (tokens never go in URLs).
 */
export function gatewayEndpoint(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new Error(`"${base.slice(0, 128)}" is not a URL; use e.g. https://relay.example.org`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw new Error(`"${base.slice(0, 128)}" must be an http(s) URL of the relay`);
  if (url.username || url.password || url.search || url.hash)
    throw new Error(`"${base.slice(0, 128)}" must not contain credentials, a query or a fragment`);
  if (!url.pathname.endsWith(PATHS.gateway)) url.pathname = url.pathname.replace(/\/$/, '') + PATHS.gateway;
  return url.href;
}
