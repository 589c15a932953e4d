import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../src/http/console/routes.js';
import { ADMIN_TOKEN, startTestServer, type TestServer } from './helpers/server.js';

/**
 * The console's page and files over HTTP (issue 17): served only with ROTOR_ADMIN_TOKEN, under a strict
 * CSP, with nothing inline and nothing from elsewhere; only its own modules by their exact names. The
 * browser half is test/console_browser.test.ts.
 */
describe('the console over HTTP', () => {
  let server: TestServer;
  let off: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    off = await startTestServer({ env: { ROTOR_ADMIN_TOKEN: '' } });
  });
  afterAll(async () => {
    await server?.close();
    await off?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) => server.call('GET', path, { headers });

  it('is off without ROTOR_ADMIN_TOKEN', async () => {
    for (const path of ['/console', '/console/console.css', '/console/ui/main.js', '/admin/apps']) {
      expect((await off.call('GET', path)).status, path).toBe(404);
    }
  });

  it('the page: a strict CSP, never framed, never cached, no inline script or style, nothing from elsewhere', async () => {
    const res = await get('/console');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'", "object-src 'none'", "require-trusted-types-for 'script'"]) {
      expect(CONSOLE_CSP).toContain(directive);
    }
    expect(CONSOLE_CSP).not.toMatch(/unsafe|\*|data:|https?:/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('set-cookie')).toBeNull();
    const html = res.text;
    expect(html).not.toMatch(/<style|style=|\son[a-z]+=/i);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]![1]).toMatch(/type="module" src="console\/ui\/main\.js"/);
    expect(scripts[0]![2]).toBe('');
    // Every reference is relative to this server.
    for (const [, ref] of html.matchAll(/(?:src|href)="([^"]*)"/g)) expect(ref, ref).toMatch(/^console\//);
  });

  it('its files: the same headers, an ETag, 304 on revalidation; every module the page imports is served', async () => {
    const css = await get('/console/console.css');
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(css.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    const etag = css.headers.get('etag')!;
    expect((await get('/console/console.css', { 'if-none-match': etag })).status).toBe(304);
    expect((await get('/console/favicon.svg')).headers.get('content-type')).toBe('image/svg+xml');

    const seen = new Set<string>();
    const sources: string[] = [];
    const visit = async (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      const res = await get(`/console/ui/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      sources.push(res.text);
      for (const [, imported] of res.text.matchAll(/from '\.\/([a-z_]+\.js)'/g)) await visit(imported!);
    };
    await visit('main.js');
    expect(seen.size).toBeGreaterThanOrEqual(6);
    // Nothing that parses markup or code, no cookie, no long-lived storage, no other origin.
    // (Comments stripped; the SVG namespace is a name, not an address.)
    const code = sources.join('\n').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').replaceAll('http://www.w3.org/2000/svg', '');
    for (const forbidden of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function', 'document.cookie', 'localStorage.setItem', 'http://', 'https://']) {
      expect(code.includes(forbidden), forbidden).toBe(false);
    }
  });

  it('serves its own modules by exact name only', async () => {
    for (const path of [
      '/console/ui/nope.js', '/console/ui/main.js.map', '/console/ui/main.d.ts', '/console/ui/Main.js', '/console/ui/..%2Froutes.js',
      '/console/ui/%2e%2e%2froutes.js', '/console/ui/%2e%2e/routes.js', '/console/../package.json', '/console/ui/', '/console/', '/console/index.html',
    ]) {
      const res = await get(path);
      expect([404, 400], `${path} → ${res.status}`).toContain(res.status);
      expect(res.text).not.toMatch(/"name": *"rotor"|export /);
    }
  });

  it('takes no part in CORS: no Access-Control headers for any origin, and no 403 for a same-server page', async () => {
    for (const path of ['/console', '/console/ui/main.js']) {
      const res = await get(path, { origin: 'https://evil.example' });
      expect(res.status).toBe(200);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
    const preflight = await server.call('OPTIONS', '/admin/apps', { headers: { origin: 'https://evil.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('the admin API answers as data, never as a page: nosniff, no-store, a CSP that runs nothing', async () => {
    const res = await server.call('GET', '/admin/apps', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    const refused = await server.call('GET', '/admin/apps');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('x-content-type-options')).toBe('nosniff');
  });
});
