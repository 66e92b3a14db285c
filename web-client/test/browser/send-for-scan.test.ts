/**
 * The demo end to end in Chromium: a clinician clicks "Send for scan" and the row goes through the worklist and
 * the scan to completed with its image count — relay, gateway agent, DICOM SCPs and simulator all real.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../demo/stack-lib.js';
import { launchChromium, row, screenshot, signIn, testStack } from '../helpers/browser.js';

describe('demo page: send for scan', () => {
  let stack: Stack;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    stack = await testStack();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 768, height: 1024 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('takes a participant from "Send for scan" to completed with images, at tablet width', async () => {
    await signIn(page, stack, /site A/);
    const first = stack.demo.clinic.find((p) => p.site === 'site-a')!;
    const r = row(page, first.accession);
    await screenshot(page, 'board-768-before');
    await r.getByRole('button', { name: /for scan/ }).click();
    await page.locator(`tr[data-accession="${first.accession}"][data-phase="completed"]`).waitFor({ timeout: 30_000 });
    expect(Number(await r.getAttribute('data-images'))).toBeGreaterThan(0);
    await expect.poll(() => r.locator('.badge').textContent()).toBe('Completed');
    expect(await r.locator('.detail').textContent()).toMatch(/\d+ images?/);
    // The button is not offered again for a participant already scanned.
    expect(await r.getByRole('button').isDisabled()).toBe(true);
    // Status changes were announced to assistive technology.
    expect(await page.locator('#announcer').textContent()).toContain('Completed');
    // Only site A is shown to this user.
    expect(
      await page.locator('section[data-site]').evaluateAll((s) => s.map((x) => x.getAttribute('data-site'))),
    ).toEqual(['site-a']);
    // Readable at tablet width: the page does not scroll sideways.
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, 'board-768-completed');
    await page.setViewportSize({ width: 1280, height: 900 });
    await screenshot(page, 'board-1280-completed');
    expect(consoleErrors).toEqual([]);
  });
});
