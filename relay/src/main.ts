#!/usr/bin/env -S node --max-semi-space-size=1
// The shebang's Node flags are the shipped launcher's runtime settings (deploy/docker/relay.Dockerfile repeats them,
// bench/src/harness/scanrelay.ts reads them from here): a 1 MiB young-generation semi-space instead of 16 MiB keeps
// the idle per-connection RSS at ~4 KiB (uWS) instead of ~7 KiB, at no measured fan-out CPU cost (bench/README.md).
/**
 * `scanrelay-relay` — run one relay node.
 *
 * Configuration: environment variables (see relay/README.md), or a JSON file named by `--config`; env wins.
 * SIGTERM/SIGINT → graceful shutdown (clients closed with 1001 so they reconnect to another node), exit 0.
 * A bad setting stops start-up with exit code 78 (EX_CONFIG) and a message naming the setting and the fix.
 */
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import { createRelay } from './relay.js';

const EX_CONFIG = 78;

const HELP = `scanrelay-relay — run one ScanRelay relay node

Usage:
  scanrelay-relay [--config relay.json]    start a node (defaults: embedded ports, :8080)
  scanrelay-relay --help                   this text

Settings come from SCANRELAY_* environment variables or a JSON file named by --config (the environment
wins); every setting, its default and its fix are listed in relay/README.md#configuration.
A bad setting stops start-up with exit code 78 and names the setting. SIGTERM/SIGINT stop gracefully.
`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig(process.env, args);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`scanrelay-relay: configuration error: ${err.message}\n`);
      process.exit(EX_CONFIG);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, config.nodeId);
  let relay: Awaited<ReturnType<typeof createRelay>>;
  try {
    relay = await createRelay(config, { logger });
    await relay.listen();
  } catch (err) {
    const code = (err as { code?: string }).code;
    logger.fatal({ err }, 'relay failed to start: check the settings named above and that the port is free');
    process.stderr.write(`scanrelay-relay: failed to start: ${(err as Error).message}\n`);
    // Bad settings found while starting (unreadable JWKS, port taken) are configuration errors too.
    process.exit(code === 'EADDRINUSE' || code === 'invalid_config' || err instanceof ConfigError ? EX_CONFIG : 1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: closing clients with 1001');
    relay.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (err) => {
    logger.error({ err }, 'unhandled promise rejection (bug): the relay keeps running');
  });
}

void main();
