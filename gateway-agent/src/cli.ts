#!/usr/bin/env node
/**
 * `scanrelay-gateway` — the site gateway agent's command line.
 *
 *   scanrelay-gateway activate --relay <url> --code <code> [--config file.json] [--force]
 *   scanrelay-gateway run [--config file.json]
 *   scanrelay-gateway status [--config file.json]          identity and encryption-key thumbprint
 *   scanrelay-gateway simulate-modality [simulator flags]    (see `simulate-modality --help`)
 *
 * Exit codes: 0 done; 1 the agent stopped because it cannot continue (e.g. revoked) or a runtime failure;
 * 2 bad usage or configuration (the message names the setting and the fix).
 */
import { parseArgs } from 'node:util';
import { AE_PATTERN } from '@scanrelay/protocol';
import { startAgent } from './agent.js';
import { loadConfig, parsePeer, SETTINGS } from './config.js';
import type { DicomPeer } from './dicom/types.js';
import { GatewayError } from './errors.js';
import { activate } from './keys/activate.js';
import { formatThumbprint, loadOrCreateEncryptionKey } from './keys/encryption-key.js';
import { loadIdentity } from './keys/identity.js';
import { createLogger } from './log.js';
import { runSimulator, type SimulatorOptions } from './simulator/index.js';

const MAIN_HELP = `scanrelay-gateway — ScanRelay site gateway agent

Usage:
  scanrelay-gateway activate --relay <url> --code <code>   enrol this gateway with a relay
  scanrelay-gateway run                                    run the agent
  scanrelay-gateway status                                 identity and encryption-key thumbprint
  scanrelay-gateway simulate-modality [options]            run the modality simulator
  scanrelay-gateway <command> --help                       help for one command

Every command accepts --config <file.json> (settings as a JSON object; the environment wins).
`;

const SETTINGS_HELP = Object.entries(SETTINGS)
  .map(([name, what]) => `  ${name}\n      ${what}`)
  .join('\n');

const ACTIVATE_HELP = `scanrelay-gateway activate --relay <url> --code <code> [--config file.json] [--force]

Enrols this gateway: makes a P-256 key pair here (the private key never leaves this machine; it is written
mode 0600 to the state directory), proves possession of it over the one-time code, and stores the identity
({gateway, site, relay}) the relay assigns.

  --relay <url>     the relay's base URL, e.g. https://relay.example.org
  --code <code>     the activation code from the relay operator (single use, expires)
  --force           replace an existing identity (re-enrolment)
  --config <file>   settings file (only SCANRELAY_GATEWAY_STATE_DIR matters here)
`;

const RUN_HELP = `scanrelay-gateway run [--config file.json]

Runs the agent: one outbound connection to the relay (WebSocket, or WebTransport by setting; no inbound
port), command verification, the DICOM worklist/MPPS/storage SCPs, and the durable outbox. Stops with exit code 1 if the relay revokes the gateway.
SIGTERM/SIGINT stop it cleanly.

Settings (environment, or the --config file; environment wins):
${SETTINGS_HELP}
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`scanrelay-gateway: ${message}\n`);
  process.exit(code);
}

async function cmdActivate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      relay: { type: 'string' },
      code: { type: 'string' },
      config: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(ACTIVATE_HELP);
    return 0;
  }
  if (!values.relay) fail('activate needs --relay <url> (the relay base URL, e.g. https://relay.example.org)');
  if (!values.code) fail('activate needs --code <code> (the activation code from the relay operator)');
  const config = loadConfig({ configFile: values.config, purpose: 'activate' });
  const identity = await activate({
    relay: values.relay,
    code: values.code,
    stateDir: config.stateDir,
    force: values.force ?? false,
  });
  process.stdout.write(
    `activated: gateway ${identity.gateway}, site ${identity.site}, relay ${identity.relay}\n` +
      `identity and key stored in ${config.stateDir}; start the agent with: scanrelay-gateway run\n` +
      `encryption key thumbprint: ${formatThumbprint(identity.encryptionThumbprint)}\n` +
      '  (a site administrator must confirm this exact thumbprint in the manage app before it can send commands)\n',
  );
  if (identity.retiredOutbox)
    process.stdout.write(
      `events not yet delivered for the previous identity were moved to ${identity.retiredOutbox}; ` +
        'they will not be sent under the new identity (remove that directory once reviewed)\n',
    );
  return 0;
}

async function cmdStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'scanrelay-gateway status [--config file.json]\n\nPrints the identity and the encryption-key thumbprint to compare with the manage app.\n',
    );
    return 0;
  }
  const config = loadConfig({ configFile: values.config, purpose: 'activate' });
  const identity = await loadIdentity(config.stateDir);
  const enc = await loadOrCreateEncryptionKey(config.stateDir);
  process.stdout.write(
    `gateway ${identity.gateway}, site ${identity.site}, relay ${identity.relay}\n` +
      `signing key thumbprint:    ${identity.thumbprint}\n` +
      `encryption key thumbprint: ${formatThumbprint(enc.thumbprint)}${enc.created ? ' (just made: confirm it in the manage app)' : ''}\n`,
  );
  return 0;
}

async function cmdRun(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const config = loadConfig({ configFile: values.config, purpose: 'run' });
  const logger = createLogger(config.logLevel);
  const agent = await startAgent({ config, logger });
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'stopping on signal');
    void agent.stop();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const exit = await agent.done;
  if (exit.fatal) {
    process.stderr.write(`scanrelay-gateway: stopped: ${exit.reason}: ${exit.message}\n`);
    return 1;
  }
  return 0;
}

const SIMULATE_HELP = `scanrelay-gateway simulate-modality --gateway <AET@host:port> [options]

Behaves like a mammography unit against the gateway's DICOM SCPs: queries the worklist (its station AE title,
today, MG), and for each new item opens MPPS IN PROGRESS, stores its images, completes the MPPS and asks for
storage commitment. Prints one JSON line per procedure (accession, images, commitment).

  --gateway <AET@host:port>   the gateway's worklist/MPPS/storage SCP (required)
  --aet <AET>                 this unit's AE title and ScheduledStationAETitle (default HOLOGIC1)
  --images <n>                For Presentation images per procedure (default 4)
  --no-for-processing         do not also send a For Processing image per view
  --rows <n>, --columns <n>   image size in pixels (default 256 x 256)
  --poll-ms <ms>              worklist query interval (default 5000)
  --exam-ms <ms>              pause between MPPS IN PROGRESS and the first image (default 0)
  --image-ms <ms>             pause between images (default 0)
  --no-commitment             skip storage commitment
  --commitment-wait-ms <ms>   how long to keep the commitment association open for the result (default 2000)
  --once                      query once, perform every new item, then exit
  --timeout-ms <ms>           timeout of each DICOM operation (default 30000)
`;

async function cmdSimulate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: 'string' },
      aet: { type: 'string' },
      images: { type: 'string' },
      'no-for-processing': { type: 'boolean' },
      rows: { type: 'string' },
      columns: { type: 'string' },
      'poll-ms': { type: 'string' },
      'exam-ms': { type: 'string' },
      'image-ms': { type: 'string' },
      'no-commitment': { type: 'boolean' },
      'commitment-wait-ms': { type: 'string' },
      once: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(SIMULATE_HELP);
    return 0;
  }
  if (!values.gateway) fail('simulate-modality needs --gateway AET@host:port (the gateway DICOM SCP)');
  let gateway: DicomPeer;
  try {
    gateway = parsePeer(values.gateway);
  } catch (err) {
    fail(`--gateway: ${(err as Error).message}`);
  }
  const num = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min) fail(`--${name} must be a whole number of at least ${min}`);
    return n;
  };
  const options: SimulatorOptions = { gateway };
  if (values.aet !== undefined) {
    if (!AE_PATTERN.test(values.aet)) fail('--aet must be an AE title (1–16 characters)');
    options.aet = values.aet;
  }
  const set = <K extends keyof SimulatorOptions>(key: K, value: SimulatorOptions[K] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set('images', num('images', values.images, 1));
  set('rows', num('rows', values.rows, 1));
  set('columns', num('columns', values.columns, 1));
  set('pollIntervalMs', num('poll-ms', values['poll-ms'], 10));
  set('examDelayMs', num('exam-ms', values['exam-ms'], 0));
  set('imageIntervalMs', num('image-ms', values['image-ms'], 0));
  set('timeoutMs', num('timeout-ms', values['timeout-ms'], 100));
  set('commitmentWaitMs', num('commitment-wait-ms', values['commitment-wait-ms'], 0));
  if (values['no-for-processing']) options.forProcessing = false;
  if (values['no-commitment']) options.storageCommitment = false;
  if (values.once) options.once = true;
  const logger = createLogger('info');
  let failures = 0;
  options.logger = logger.child({ component: 'simulator' });
  options.onProcedure = (result) => {
    if (result.error) failures++;
    process.stdout.write(
      `${JSON.stringify({
        accession: result.accession,
        images: result.images,
        commitment: result.commitment ?? null,
        error: result.error ?? null,
      })}\n`,
    );
  };
  const sim = runSimulator(options);
  const onSignal = () => void sim.stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await sim.done;
  return failures > 0 ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'activate':
      return cmdActivate(rest);
    case 'run':
      return cmdRun(rest);
    case 'status':
      return cmdStatus(rest);
    case 'simulate-modality':
      return cmdSimulate(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(MAIN_HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(MAIN_HELP);
      return fail(`unknown command "${command.slice(0, 32)}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof GatewayError) fail(err.message, err.code === 'config_invalid' ? 2 : 1);
    if ((err as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS')) fail((err as Error).message);
    process.stderr.write(`scanrelay-gateway: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
