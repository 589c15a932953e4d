import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, close, listen, useChromium } from './helpers/browser.js';
import { ROOT } from './helpers/cli.js';
import { ADMIN_TOKEN, admin, createApp, issue, startTestServer, type TestServer } from './helpers/server.js';

/**
 * The console (issue 17) in Debian's Chromium: sign in, find a subject's session, revoke it and see its
 * refresh token refused from outside, rotate a key and see the JWKS change, a wrong token refused.
 * Hostile data (markup in subject ids, claims, user agents, descriptions; bidi controls; a subject
 * named `..`) must show as text. Any CSP violation, console error or page error fails the test.
 * Screenshots of each screen go to docs/console/.
 */
const available = browserAvailable();
/** ROTOR_CONSOLE_SCREENSHOTS=1 writes them into docs/console/ (docs/console.md); otherwise a temporary folder, so a test run leaves the checkout as it was. */
const SHOTS = process.env.ROTOR_CONSOLE_SCREENSHOTS ? join(ROOT, 'docs', 'console') : mkdtempSync(join(tmpdir(), 'rotor-console-shots-'));

const UA = {
  mac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 shop-app/4.2',
  windows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  android: 'okhttp/4.12.0 shop-android/4.1.7',
};
const HOSTILE = {
  subject: '<img src=x onerror="window.__xss=1">',
  claim: '</pre><script>window.__xss=2</script>',
  userAgent: '"><svg onload="window.__xss=3"></svg><b>',
  description: '<b onmouseover="window.__xss=4">hover me</b><script>window.__xss=5</script>',
  bidi: 'mallory\u202Egnp.exe',
};

type Shot = 'signin' | 'apps' | 'app-policy' | 'sessions' | 'keys' | 'activity' | 'hostile';

describe.skipIf(!available)('the console in Chromium', () => {
  const chromium = useChromium();
  let server: TestServer;
  let context: BrowserContext;
  let page: Page;
  let shop: Awaited<ReturnType<typeof createApp>>;
  const problems: string[] = [];
  let expect401 = 0;
  const pairs: Record<string, Awaited<ReturnType<typeof issue>>> = {};

  const shot = async (name: Shot) => {
    await page.waitForTimeout(150);
    await page.screenshot({ path: join(SHOTS, `${name}.png`) });
  };
  const refresh = (refreshToken: string) => server.call('POST', '/v1/refresh', { json: { refreshToken } });
  const jwksKids = async () => ((await server.call('GET', `/v1/apps/${shop.id}/jwks.json`)).body.keys as { kid: string }[]).map((k) => k.kid);

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'info' } });
    shop = await createApp(server, { name: 'shop', policy: { accessTtl: 600, reuseGrace: 10, binding: 'record', allowedOrigins: ['https://shop.example'] } });
    await server.call('PATCH', '/admin/apps/shop', { json: { description: 'Storefront and mobile apps' }, headers: admin });
    const payments = await createApp(server, { name: 'payments', public: false, policy: { reuseGrace: 0, sessionMaxAge: 86400 } });
    await createApp(server, { name: 'legacy-fib', profile: 'fib' });

    await server.call('PUT', '/admin/apps/shop/subjects/alice@example.com', { json: { claims: { role: 'admin', plan: 'pro' } }, headers: admin });
    pairs.aliceMac = await issue(server, shop, 'alice@example.com', { ip: '203.0.113.24', userAgent: UA.mac });
    pairs.alicePhone = await issue(server, shop, 'alice@example.com', { ip: '198.51.100.7', userAgent: UA.iphone });
    pairs.aliceWork = await issue(server, shop, 'alice@example.com', { ip: '2001:db8:4::19', userAgent: UA.windows });
    for (const [i, name] of ['bob@example.com', 'carol@example.com', 'dave@example.com', 'erin@example.com'].entries()) {
      pairs[name] = await issue(server, shop, name, { ip: `192.0.2.${10 + i}`, userAgent: i % 2 ? UA.android : UA.windows });
    }
    // Rotations, and one session revoked for reuse: a stolen token came back after the window.
    await server.call('POST', '/v1/refresh', { json: { refreshToken: pairs.alicePhone.refreshToken }, headers: { 'user-agent': UA.iphone } });
    const p = await issue(server, payments, 'merchant-4711', { ip: '192.0.2.99', userAgent: 'payments-backend/2.3' });
    await server.call('POST', '/v1/refresh', { json: { refreshToken: p.refreshToken }, headers: { authorization: `Bearer ${payments.appKey}` } });
    await server.call('POST', '/v1/refresh', { json: { refreshToken: p.refreshToken }, headers: { authorization: `Bearer ${payments.appKey}` } });
    await server.call('PUT', `/admin/apps/shop/subjects/${encodeURIComponent('frank@example.com')}`, { json: { status: 'disabled' }, headers: admin });

    // The charts' earlier hour: samples as another instance would have written them (the last minute is
    // this server's own live traffic, below). docs/console.md says so under the screenshot.
    const le = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    const now = Date.now();
    for (let at = Math.floor((now - 58 * 60_000) / 10_000) * 10_000; at < now - 60_000; at += 10_000) {
      const phase = (at / 60_000) % 60;
      const rate = 40 + 25 * Math.sin(phase / 6) + (phase % 7);
      const rotated = Math.round(rate * 10);
      const n = rotated + 20;
      const spike = phase > 40 && phase < 43 ? 4 : 0;
      const cumulative = [0.3, 0.75, 0.93, 0.992 - spike / 100, 0.998, 0.9995, 1, 1, 1, 1, 1].map((f) => Math.round(f * n));
      await server.rotor.internals.store.recordActivity({
        instance: '01JSEEDEDSEEDEDSEEDEDSEEDE', at,
        data: { intervalMs: 10_000, requests: n, le, cumulative: [...cumulative, n], refresh: { rotated, retry: Math.round(rate / 8), reuse: spike ? 1 : 0, refused: Math.round(rate / 5) } },
      });
    }

    context = await chromium.browser.newContext({ viewport: { width: 1360, height: 820 }, deviceScaleFactor: 1 });
    // Before any of the page's scripts: every CSP violation is recorded (Chromium also logs them as console errors).
    await context.addInitScript(() => {
      const w = window as unknown as { __csp: string[] };
      w.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      // The one refusal the test asks for (a wrong token): Chromium logs every failed fetch.
      if (expect401 > 0 && /status of 401/.test(msg.text())) {
        expect401 -= 1;
        return;
      }
      problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('response', (res) => {
      const url = new URL(res.url());
      const expected = res.status() === 401 && url.pathname === '/admin/apps';
      if (res.status() >= 400 && !expected) problems.push(`HTTP ${res.status()} ${url.pathname}`);
      if (url.search.includes(ADMIN_TOKEN) || url.href.includes(ADMIN_TOKEN)) problems.push(`the token in a URL: ${url.href}`);
    });
  }, 90_000);

  afterAll(async () => {
    await server?.close();
  });

  const cspViolations = () => page.evaluate(() => (window as unknown as { __csp: string[] }).__csp);
  const noProblems = async () => {
    expect(await cspViolations()).toEqual([]);
    expect(problems).toEqual([]);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
  };
  /** Two clicks: the console's destructive buttons ask for a second one. */
  const twice = async (selector: string) => {
    await page.locator(selector).first().click();
    await page.locator(selector).first().click();
  };

  it('a wrong token is refused, and nothing of it is kept', async () => {
    const res = await page.goto(`${server.url}/console`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
    await page.waitForSelector('#token');
    await shot('signin');
    await page.fill('#token', `${ADMIN_TOKEN}-wrong`);
    expect401 = 1;
    await page.click('button[type=submit]');
    await page.waitForSelector('text=The server refused this token.');
    await page.waitForTimeout(100);
    expect(expect401).toBe(0);
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);
    expect(await context.cookies()).toEqual([]);
    expect(page.url()).not.toContain('wrong');
    await noProblems();
  });

  it('signs in: the apps with their profile and kind of client', async () => {
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('#apps tr[data-app="shop"]');
    expect(await page.locator('#apps tbody tr').count()).toBe(3);
    expect(await page.locator('#apps tr[data-app="payments"]').textContent()).toContain('confidential');
    expect(await page.locator('#apps tr[data-app="legacy-fib"]').textContent()).toContain('fib');
    // Kept in this tab only, never as a cookie, never in the URL.
    expect(await page.evaluate(() => sessionStorage.getItem('rotor.console.adminToken'))).toBe(ADMIN_TOKEN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(await context.cookies()).toEqual([]);
    expect(page.url()).not.toContain(ADMIN_TOKEN);
    await shot('apps');
    await page.click('#apps tr[data-app="shop"] a');
    await page.waitForSelector('#policy');
    const policy = await page.locator('#policy').textContent();
    expect(policy).toContain('accessTtl');
    expect(policy).toContain('10 min');
    expect(policy).toContain('https://shop.example');
    await shot('app-policy');
    await noProblems();
  });

  it('finds a subject\'s session, revokes it, and its refresh token is refused from outside', async () => {
    await page.click('[data-tab=sessions]');
    await page.waitForSelector('#subjects tr[data-subject="alice@example.com"]');
    await page.fill('#find-subject', 'alice@example.com');
    await page.press('#find-subject', 'Enter');
    await page.waitForSelector('#subject .sessions');
    const rows = page.locator('#subject tr[data-session]');
    expect(await rows.count()).toBe(3);
    const phone = page.locator(`#subject tr[data-session="${pairs.alicePhone!.sessionId}"]`);
    expect(await phone.textContent()).toContain('shop-app/4.2');
    expect(await phone.textContent()).toContain('198.51.100.7');
    expect(await phone.textContent()).toContain('1 rotation');
    await shot('sessions');

    const mac = `#subject tr[data-session="${pairs.aliceMac!.sessionId}"]`;
    await twice(`${mac} button.revoke`);
    await page.waitForSelector(`${mac} .badge.revoked`);
    expect(await page.locator(`${mac} .reason`).textContent()).toContain('revoked (a revoke call, the console or the CLI)');
    const refused = await refresh(pairs.aliceMac!.refreshToken);
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toBe('revoked');
    // The others still renew.
    expect((await refresh(pairs.aliceWork!.refreshToken)).status).toBe(200);

    // All of a subject's sessions at once.
    await page.fill('#find-subject', 'bob@example.com');
    await page.press('#find-subject', 'Enter');
    await page.waitForSelector('#subject h2 >> text=bob@example.com');
    await twice('#subject button.revoke-all');
    await page.waitForSelector('text=Revoked 1 session.');
    expect((await refresh(pairs['bob@example.com']!.refreshToken)).status).toBe(400);
    await noProblems();
  });

  it('rotates a signing key and the JWKS changes; a revoked key leaves it', async () => {
    const before = await jwksKids();
    await page.click('[data-tab=keys]');
    await page.waitForSelector('#keys tr[data-state=active]');
    const previous = await page.locator('#keys tr[data-state=active]').getAttribute('data-kid');
    expect(before).toEqual([previous]);
    await twice('button.rotate');
    await page.waitForSelector('#keys tr[data-state=retiring]');
    const active = await page.locator('#keys tr[data-state=active]').getAttribute('data-kid');
    expect(active).not.toBe(previous);
    const after = await jwksKids();
    expect(after.sort()).toEqual([previous, active].sort());
    // A new token is signed by the new key.
    const pair = await issue(server, shop, 'zoe@example.com');
    expect(JSON.parse(Buffer.from(pair.accessToken.split('.')[0]!, 'base64url').toString()).kid).toBe(active);
    await shot('keys');
    await twice(`#keys tr[data-kid="${previous}"] button.revoke-key`);
    await page.waitForSelector(`#keys tr[data-kid="${previous}"][data-state=revoked]`);
    expect(await jwksKids()).toEqual([active]);
    await noProblems();
  });

  it('activity: the last hour\'s charts and the security events this test caused', async () => {
    // Some live traffic of this server's own.
    const app = await createApp(server, { name: 'traffic', policy: { reuseGrace: 0 } });
    for (let i = 0; i < 30; i += 1) {
      const pair = await issue(server, app, `user-${i % 5}`);
      await refresh(pair.refreshToken);
      if (i % 10 === 0) await refresh(pair.refreshToken);
    }
    await page.click('header nav a[href="#/activity"]');
    await page.waitForSelector('#chart-refresh polyline');
    await page.waitForSelector('#events tr[data-event=key_rotated]');
    const feed = await page.locator('#events').textContent();
    for (const event of ['reuse detected', 'session revoked', 'key rotated', 'key revoked', 'subject disabled']) expect(feed).toContain(event);
    expect(Number(await page.locator('#chart-reuse .now').getAttribute('data-value'))).toBeGreaterThanOrEqual(4);
    expect(await page.locator('#chart-latency polyline').count()).toBeGreaterThan(0);
    // New events arrive by themselves.
    const victim = await issue(server, app, 'late');
    await server.call('DELETE', `/admin/apps/traffic/sessions/${victim.sessionId}`, { headers: admin });
    await page.waitForSelector(`#events td >> text=${victim.sessionId}`, { timeout: 15_000 });
    await shot('activity');
    await noProblems();
  }, 60_000);

  it('hostile data shows as text: markup, bidi controls and a subject named ".." ', async () => {
    // Hostile data, as any app backend (or anyone holding an app key) could write it.
    const hostile = await createApp(server, { name: 'hostile', policy: { reuseGrace: 0 } });
    await server.call('PATCH', '/admin/apps/hostile', { json: { description: HOSTILE.description }, headers: admin });
    await issue(server, hostile, HOSTILE.subject, { claims: { note: HOSTILE.claim }, userAgent: HOSTILE.userAgent, ip: '192.0.2.66' });
    await issue(server, hostile, HOSTILE.bidi, { userAgent: HOSTILE.bidi });
    await issue(server, hostile, '..', { userAgent: 'dot-dot/1.0' });
    await issue(server, hostile, '..', { userAgent: 'dot-dot/2.0' });
    await page.goto(`${server.url}/console#/apps/${hostile.id}`);
    await page.waitForSelector('#policy');
    expect(await page.locator('main').textContent()).toContain(HOSTILE.description);
    await page.click('[data-tab=sessions]');
    await page.waitForSelector('#subjects tbody tr');
    await page.locator('#subjects a.subject-link', { hasText: 'onerror' }).click();
    await page.waitForSelector('#subject details.claims');
    await page.click('#subject details.claims summary');
    await shot('hostile');
    const shown = await page.locator('#subject').textContent();
    expect(shown).toContain(HOSTILE.subject);
    expect(shown).toContain(HOSTILE.claim.replace(/"/g, '\\"'));
    expect(shown).toContain(HOSTILE.userAgent);
    // Nothing of it became markup: no img, script, svg or b element anywhere in the page.
    expect(await page.locator('main img, main script, main b, main svg:not(.plot)').count()).toBe(0);
    // Bidi controls are shown as what they are (and isolated in <bdi>): "mallory⟨U+202E⟩gnp.exe", not "malloryexe.png".
    await page.locator('#subjects a.subject-link', { hasText: 'mallory' }).click();
    await page.waitForSelector('#subject h2 bdi .ctl');
    expect(await page.locator('#subject h2 bdi').textContent()).toBe('mallory⟨U+202E⟩gnp.exe');
    expect(await page.locator('#subject tr[data-session] td.ua bdi').first().textContent()).toBe('mallory⟨U+202E⟩gnp.exe');
    // "..": its sessions are listed and revoked one by one (a path segment ".." would resolve away).
    await page.locator('#subjects tr[data-subject=".."] a').click();
    await page.waitForSelector('#subject h2 >> text=..');
    expect(await page.locator('#subject tr[data-session]').count()).toBe(2);
    await twice('#subject button.revoke-all');
    await page.waitForSelector('text=Revoked 2 sessions.');
    const listed = await server.call('GET', '/admin/apps/hostile/sessions?subject=..', { headers: admin });
    expect(listed.body.sessions.map((s: { state: string }) => s.state)).toEqual(['revoked', 'revoked']);
    await noProblems();
  });

  it('cannot be framed by another site (frame-ancestors, X-Frame-Options)', async () => {
    const framer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><iframe id="f" src="${server.url}/console" width="800" height="600"></iframe>`);
    });
    const framerUrl = await listen(framer);
    const other = await context.newPage();
    try {
      const blocked = new Promise<string>((resolve) => other.on('console', (msg) => { if (/frame-ancestors|Refused to (display|frame)/.test(msg.text())) resolve(msg.text()); }));
      await other.goto(`${framerUrl}/`);
      expect(await Promise.race([blocked, new Promise<string>((r) => setTimeout(() => r('not blocked'), 5000))])).not.toBe('not blocked');
      const frame = other.frames().find((f) => f !== other.mainFrame());
      expect(await frame?.locator('#root').count().catch(() => 0) ?? 0).toBe(0);
    } finally {
      await other.close();
      await close(framer);
    }
  });

  it('signs out: the token leaves the tab; it never reached a log line', async () => {
    await page.goto(`${server.url}/console#/apps`);
    await page.waitForSelector('#sign-out');
    await page.click('#sign-out');
    await page.waitForSelector('#token');
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);
    // Reloading does not sign back in.
    await page.reload();
    await page.waitForSelector('#token');
    expect(server.logs.join('')).not.toContain(ADMIN_TOKEN);
    await noProblems();
  });
});
