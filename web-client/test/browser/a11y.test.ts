/**
 * Accessibility of the demo in Debian's Chromium, checked by axe-core (its source injected into the page):
 * WCAG 2 A/AA rules, colour contrast and ARIA included, on the sign-in page and on the board at 768 px.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../demo/stack-lib.js';
import { launchChromium, screenshot, signIn, testStack } from '../helpers/browser.js';

const AXE_SOURCE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

interface AxeViolation {
  id: string;
  impact: string;
  help: string;
  nodes: Array<{ target: string[] }>;
}

async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated over the DevTools protocol: the page's CSP (script-src 'self') stays on and untouched.
  await page.evaluate(await readFile(AXE_SOURCE, 'utf8'));
  const violations = (await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as { axe: { run: (ctx: unknown, o: unknown) => Promise<{ violations: unknown[] }> } }
    ).axe;
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return r.violations;
  })) as AxeViolation[];
  return violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
}

describe('demo accessibility (axe-core in Chromium)', { timeout: 120_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  beforeAll(async () => {
    stack = await testStack();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('sign-in page and board at 768 px have no WCAG A/AA violations (contrast, ARIA)', async () => {
    const context = await browser.newContext({ viewport: { width: 768, height: 1024 } });
    try {
      const page = await context.newPage();
      await page.goto(`${stack.demo.url}/`);
      await page.getByRole('button').first().waitFor();
      expect(await axeViolations(page)).toEqual([]);
      await screenshot(page, 'a11y-sign-in-768');
      await signIn(page, stack, /Dr A/);
      expect(await axeViolations(page)).toEqual([]);
      await screenshot(page, 'a11y-board-768');
    } finally {
      await context.close();
    }
  });
});
