/**
 * Real-browser test helpers: Debian's Chromium driven by playwright-core (never a downloaded browser), the demo
 * stack in-process, screenshots under test-artifacts/web-client/ (gitignored; CI keeps them as artifacts).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type Stack, type StackOptions, startStack } from '../../demo/stack-lib.js';

export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/web-client/', import.meta.url));

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The demo stack on free ports with a fast simulator (tests watch for states, not timings). */
export function testStack(overrides: Partial<StackOptions> = {}): Promise<Stack> {
  return startStack({
    logger: pino({ level: process.env.SCANRELAY_TEST_LOG ?? 'silent' }),
    demoPort: 0,
    simulator: { pollIntervalMs: 300, examDelayMs: 200, imageIntervalMs: 50, images: 2 },
    ...overrides,
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Sign in as a demo user (by the button's visible name) and wait for the live connection. */
export async function signIn(page: Page, stack: Stack, userName: RegExp): Promise<void> {
  await page.goto(`${stack.demo.url}/`);
  await page.getByRole('button', { name: userName }).click();
  await page.locator('#conn-state[data-state="connected"]').waitFor();
}

/** A row of the board by accession. */
export function row(page: Page, accession: string) {
  return page.locator(`tr[data-accession="${accession}"]`);
}
