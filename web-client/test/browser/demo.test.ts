/**
 * The demo end to end in Debian's Chromium: relay, gateway agents, DICOM SCPs and modality simulators all real,
 * in one stack shared by the scenarios below (each in its own browser context). Screenshots go to
 * test-artifacts/web-client/.
 */
import { decodeFrame } from '@scanrelay/protocol';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../demo/stack-lib.js';
import { launchChromium, row, screenshot, signIn, testStack } from '../helpers/browser.js';

/** Short session tokens, so renewal happens several times within one test. */
const SESSION_TTL_S = 8;

// Whole-stack scenarios on a shared 2-core CI box: generous per-test limits; the tests wait on states, not time.
describe('demo page in Chromium', { timeout: 120_000 }, () => {
  let stack: Stack;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    stack = await testStack({
      sessionTtlSeconds: SESSION_TTL_S,
      // The relay serves WebTransport and the page tries it first; Chromium runs with --disable-quic (and the
      // relay has no HTTP/3 here), so every page shows the fallback to WebSocket.
      webTransport: 'on',
      // Worklist polls 1.5 s apart leave the restart test a window between "on worklist" and the scan.
      simulator: { pollIntervalMs: 1500, examDelayMs: 300, imageIntervalMs: 100, images: 2 },
    });
    browser = await launchChromium();
  });

  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close();
    expect(pageErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  async function newPage(width = 768): Promise<Page> {
    const context = await browser.newContext({ viewport: { width, height: 1024 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      // Chromium logs every refused reconnect attempt while the relay restarts: expected, not a page error.
      // Likewise the refused WebTransport attempt before the fallback to WebSocket.
      const expected =
        /WebSocket connection to .* failed|Failed to establish a connection to https:\/\/.*\/v1\/browser/;
      if (m.type() === 'error' && !expected.test(m.text())) pageErrors.push(m.text());
    });
    return page;
  }

  const siteA = () => stack.demo.clinic.filter((p) => p.site === 'site-a');
  const siteB = () => stack.demo.clinic.filter((p) => p.site === 'site-b');
  const phase = (page: Page, accession: string, value: string, timeout = 30_000) =>
    page.locator(`tr[data-accession="${accession}"][data-phase="${value}"]`).waitFor({ timeout });

  it('"Send for scan" takes a participant to completed with its image count, readable at 768 px', async () => {
    const page = await newPage();
    await signIn(page, stack, /site A/);
    const p = siteA()[0]!;
    await screenshot(page, 'board-768-signed-in');
    await row(page, p.accession)
      .getByRole('button', { name: /for scan/ })
      .click();
    await phase(page, p.accession, 'completed');
    const r = row(page, p.accession);
    expect(Number(await r.getAttribute('data-images'))).toBeGreaterThan(0);
    await expect.poll(() => r.locator('.badge').textContent()).toBe('Completed');
    expect(await r.locator('.detail').textContent()).toMatch(/^\d+ images?/);
    expect(await r.getByRole('button').isDisabled()).toBe(true);
    expect(await page.locator('#announcer').textContent()).toContain('Completed');
    expect(
      await page.locator('section[data-site]').evaluateAll((s) => s.map((x) => x.getAttribute('data-site'))),
    ).toEqual(['site-a']);
    // Keyboard: the next participant's button is reachable and works with Enter.
    const next = row(page, siteA()[1]!.accession).getByRole('button');
    await next.focus();
    expect(await next.evaluate((b) => b === document.activeElement)).toBe(true);
    // Tablet width: nothing scrolls sideways.
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBe(
      0,
    );
    await screenshot(page, 'board-768-completed');
    await page.setViewportSize({ width: 1280, height: 900 });
    await screenshot(page, 'board-1280-completed');
  });

  it('WebTransport offered but unreachable: the page falls back to WebSocket, remembers it for the tab, and works', async () => {
    expect(stack.webTransportUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const page = await newPage();
    // Count the page's native WebTransport attempts (per page load).
    await page.addInitScript(() => {
      const w = window as unknown as { WebTransport?: new (...a: unknown[]) => object; __wtAttempts?: number };
      const Native = w.WebTransport;
      if (!Native) return;
      w.WebTransport = class extends Native {
        constructor(...args: unknown[]) {
          super(...args);
          w.__wtAttempts = (w.__wtAttempts ?? 0) + 1;
        }
      };
    });
    const attempts = () => page.evaluate(() => (window as unknown as { __wtAttempts?: number }).__wtAttempts ?? 0);
    await signIn(page, stack, /site A/);
    const conn = page.locator('#conn-state');
    await page.locator('#conn-state[data-transport="websocket"][data-fallback="true"]').waitFor();
    expect(await attempts()).toBe(1);
    const key = `scanrelay.transport:${stack.webTransportUrl}/v1/browser`;
    expect(await page.evaluate((k) => sessionStorage.getItem(k), key)).toBe('websocket');
    expect(await page.locator('ol.log').textContent()).toContain('WebTransport failed to open');
    // It works over WebSocket.
    const p = siteA()[1]!; // only focused (never sent) by the first test
    await row(page, p.accession).getByRole('button').click();
    await phase(page, p.accession, 'completed');
    // A reload in the same tab goes straight to WebSocket: no second WebTransport attempt.
    await page.reload();
    await page.locator('#conn-state[data-state="connected"]').waitFor();
    expect(await conn.getAttribute('data-transport')).toBe('websocket');
    expect(await attempts()).toBe(0);
  });

  it('renews an expiring session in-band: no reload, no reconnect, nothing lost', async () => {
    const page = await newPage();
    await signIn(page, stack, /site A/);
    const started = Date.now();
    await page.evaluate(() => {
      (window as unknown as { __noReload: boolean }).__noReload = true;
    });
    const [first, second] = [siteA()[2]!, siteA()[3]!];
    await row(page, first.accession).getByRole('button').press('Enter');
    await phase(page, first.accession, 'completed');
    // Outlive two session tokens.
    await page.locator('#conn-state[data-renewals="2"]').waitFor({ timeout: 4 * SESSION_TTL_S * 1000 });
    expect(Date.now() - started).toBeGreaterThan(SESSION_TTL_S * 1000);
    expect(await page.locator('#conn-state').getAttribute('data-connects')).toBe('1');
    expect(await page.locator('#conn-state').getAttribute('data-state')).toBe('connected');
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
    expect(await row(page, first.accession).getAttribute('data-phase')).toBe('completed');
    // The renewed session still acts.
    await row(page, second.accession).getByRole('button').click();
    await phase(page, second.accession, 'completed');
    await screenshot(page, 'board-768-after-renewal');
  });

  it('a relay restart: the page reconnects and catches up on what happened meanwhile, without duplicates', async () => {
    const page = await newPage();
    await signIn(page, stack, /site A/);
    const p = siteA()[4]!;
    await row(page, p.accession).getByRole('button').click();
    // On the worklist, or (on a slow machine) already further: the restart below still happens mid-clinic.
    await page
      .locator(
        `tr[data-accession="${p.accession}"]:is([data-phase="on-worklist"], [data-phase="scanning"], [data-phase="completed"])`,
      )
      .waitFor({ timeout: 30_000 });
    const simulator = stack.sites.find((s) => s.site === 'site-a')!.simulator;
    await stack.restartRelay(async () => {
      // The unit scans while the relay is away; the gateway holds the events in its outbox.
      await expect
        .poll(() => simulator.procedures.some((x) => x.accession === p.accession), { timeout: 20_000 })
        .toBe(true);
    });
    await page.locator('#conn-state[data-connects="2"]').waitFor({ timeout: 20_000 });
    await phase(page, p.accession, 'completed');
    const images = simulator.procedures.find((x) => x.accession === p.accession)!.images;
    expect(await row(page, p.accession).getAttribute('data-images')).toBe(String(images));
    const keys = await page
      .locator('ol.log li[data-key]')
      .evaluateAll((lis) => lis.map((li) => li.getAttribute('data-key')));
    expect(keys.length).toBeGreaterThan(0);
    expect(new Set(keys).size).toBe(keys.length);
    const imageLines = await page
      .locator('ol.log li')
      .evaluateAll(
        (lis, acc) => lis.filter((li) => li.textContent?.includes(`${acc}: images received`)).length,
        p.accession,
      );
    expect(imageLines).toBe(images);
    await screenshot(page, 'board-768-after-relay-restart');
  });

  it('a user whose token lists only site A never sees site B, on screen or on the wire', async () => {
    const pageA = await newPage();
    const frames: unknown[] = [];
    pageA.on('websocket', (ws) =>
      ws.on('framereceived', (f) => {
        const payload = f.payload;
        frames.push(typeof payload === 'string' ? JSON.parse(payload) : decodeFrame('msgpack', payload, true, 1 << 22));
      }),
    );
    await signIn(pageA, stack, /site A/);
    const pageB = await newPage();
    await signIn(pageB, stack, /site B/);
    const b = siteB()[0]!;
    await row(pageB, b.accession).getByRole('button').click();
    await phase(pageB, b.accession, 'completed');
    // Site A's page has been connected throughout; give it a live site-A event to prove its stream works.
    const a = siteA()[5]!;
    await row(pageA, a.accession).getByRole('button').click();
    await phase(pageA, a.accession, 'completed');
    expect(frames.length).toBeGreaterThan(0);
    const wire = JSON.stringify(frames);
    expect(wire).not.toContain('site-b');
    for (const p of siteB()) expect(wire).not.toContain(p.accession);
    const text = await pageA.locator('body').textContent();
    for (const p of siteB()) expect(text).not.toContain(p.accession);
    // The manage app will not mint a site-B command for this user either.
    const status = await pageA.evaluate(async (accession) => {
      const res = await fetch('/api/command', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ accession }),
      });
      return res.status;
    }, b.accession);
    expect(status).toBe(404);
    // Chromium logs that refused request as a console error; it is the one this test asked for.
    const expected = pageErrors.findIndex((e) => e.includes('status of 404'));
    if (expected >= 0) pageErrors.splice(expected, 1);
    await screenshot(pageB, 'board-768-site-b');
  });
});
