import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { admin, createApp, issue, startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';

/** SPEC §2.11, §4.6: CORS, and the origin check that comes before anything is consumed. */
const APP_ORIGIN = 'https://app.example.com';
const DEV_ORIGIN = 'http://localhost:5173';
const EVIL = 'https://evil.example';
const FIB = '/auth/api/v1/authentication-management';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

type App = Awaited<ReturnType<typeof createApp>>;

describe('CORS and origin checks', () => {
  let server: TestServer;
  let web: App; // native, public, strictly one-time so that a consumed token would show
  let narrow: App; // native, allowedOrigins narrows to the dev origin
  let verifik: App;
  let flolive: App;
  let fib: App;
  let abit: App;
  let jwtplus: App;

  beforeAll(async () => {
    server = await startTestServer({ env: { ROTOR_CORS_ORIGINS: `${APP_ORIGIN}, ${DEV_ORIGIN},https://other.example` } });
    web = await createApp(server, { name: 'web', policy: { reuseGrace: 0 } });
    narrow = await createApp(server, { name: 'narrow', policy: { reuseGrace: 0, allowedOrigins: [DEV_ORIGIN, 'https://only-here.example'] } });
    verifik = await createApp(server, { name: 'vfk', profile: 'verifik' });
    flolive = await createApp(server, { name: 'flo', profile: 'flolive' });
    fib = await createApp(server, { name: 'fibapp', profile: 'fib' });
    abit = await createApp(server, { name: 'abit', profile: 'abitmedia' });
    jwtplus = await createApp(server, { name: 'jwp', profile: 'jwtplus', policy: { refreshNotBefore: 0 } });
  });
  afterAll(async () => { await server.close(); });

  const withOrigin = (origin: string | null, headers: Record<string, string> = {}) => (origin === null ? headers : { ...headers, origin });
  const refresh = (token: string, origin: string | null) => server.call('POST', '/v1/refresh', { json: { refreshToken: token }, headers: withOrigin(origin) });

  /** The CORS headers of an allowed origin's answer. */
  function expectAllowed(res: TestResponse, origin: string) {
    expect(res.status, res.text).not.toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    expect(res.headers.get('access-control-expose-headers')).toBe('DPoP-Nonce, WWW-Authenticate, Retry-After');
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  }
  /** A refusal: 403, no CORS header a page could read it by. */
  function expectRefused(res: TestResponse) {
    expect(res.status, res.text).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
  }

  describe('configuration', () => {
    it('ROTOR_CORS_ORIGINS: exact origins, canonical; null, wildcards, paths and non-origins refused in one line', () => {
      const config = loadConfig({ ROTOR_CORS_ORIGINS: ' HTTPS://App.Example.com:443 ,http://localhost:5173,http://[::1]:8080,capacitor://localhost,https://app.example.com' });
      expect(config.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173', 'http://[::1]:8080', 'capacitor://localhost']);
      expect(loadConfig({}).corsOrigins).toEqual([]);
      for (const bad of ['null', '*', 'https://*.example.com', 'https://app.example.com/', 'https://app.example.com/app', 'app.example.com',
        'https://user@app.example.com', 'https://app.example.com?x', 'https://app.example.com:0', 'https://app.example.com:99999', 'https://exämple.com', 'file:///etc']) {
        let error: unknown;
        try {
          loadConfig({ ROTOR_CORS_ORIGINS: `https://fine.example,${bad}` });
        } catch (err) {
          error = err;
        }
        expect(error, bad).toBeInstanceOf(ConfigError);
        expect((error as Error).message, bad).toMatch(/^ROTOR_CORS_ORIGINS: /);
        expect((error as Error).message).not.toContain('\n');
      }
    });

    it('policy allowedOrigins: exact origins kept canonical; bad values are 400; null switches it off', async () => {
      const created = await createApp(server, { name: 'pol', policy: { allowedOrigins: ['HTTPS://A.example:443', 'https://a.example', 'http://b.example:8080'] } });
      expect(created.policy.allowedOrigins).toEqual(['https://a.example', 'http://b.example:8080']);
      for (const bad of [['null'], ['*'], ['https://a.example/'], ['ftp:/x'], [42], 'https://a.example', {}, Array(101).fill('https://a.example')]) {
        const res = await server.call('PATCH', '/admin/apps/pol', { json: { policy: { allowedOrigins: bad } }, headers: admin });
        expect(res.status, JSON.stringify(bad).slice(0, 60)).toBe(400);
        expect(res.body.detail).toMatch(/allowedOrigins/);
      }
      const off = await server.call('PATCH', '/admin/apps/pol', { json: { policy: { allowedOrigins: null } }, headers: admin });
      expect(off.body.policy.allowedOrigins).toBeNull();
    });
  });

  describe('preflights', () => {
    const preflight = (path: string, origin: string | null, method = 'POST') =>
      server.call('OPTIONS', path, { headers: { ...withOrigin(origin), 'access-control-request-method': method, 'access-control-request-headers': 'content-type, authorization' } });

    it('an allowed origin gets 204 with the route\'s methods, the three headers, Max-Age 600 and Vary: Origin', async () => {
      for (const [path, methods] of [['/v1/refresh', 'POST'], ['/oauth2/token', 'POST'], ['/v1/apps/web/jwks.json', 'GET, HEAD'], ['/v2/auth/session', 'GET, POST'],
        ['/api/v2/auth/token', 'PUT'], [`${FIB}/session`, 'PATCH, POST'], ['/v1/refreshToken', 'POST'], ['/v1/apps/web/sessions', 'GET, HEAD, POST']] as const) {
        const res = await preflight(path, APP_ORIGIN);
        expect(res.status, path).toBe(204);
        expect(res.headers.get('access-control-allow-origin'), path).toBe(APP_ORIGIN);
        expect(res.headers.get('access-control-allow-methods'), path).toBe(methods);
        expect(res.headers.get('access-control-allow-headers')).toBe('authorization, content-type, dpop');
        expect(res.headers.get('access-control-max-age')).toBe('600');
        expect(res.headers.get('vary')).toBe('Origin');
        expect(res.headers.get('access-control-allow-credentials')).toBeNull();
        expect(res.text).toBe('');
      }
    });

    // (Whitespace around a header value is not part of it, RFC 9110 §5.5: " https://app.example.com" is that origin.)
    it('a disallowed origin, null, and every look-alike get the 204 without any Access-Control-Allow-*', async () => {
      for (const origin of [EVIL, 'null', `${APP_ORIGIN}.evil.com`, 'https://evil.app.example.com', 'https://app.example.co', 'https://APP.example.com',
        `${APP_ORIGIN}/`, `${APP_ORIGIN}:443`, 'http://app.example.com', `${APP_ORIGIN}:8443`, `${APP_ORIGIN}, ${EVIL}`, `${APP_ORIGIN}\t${EVIL}`, '*', '']) {
        const res = await preflight('/v1/refresh', origin);
        expect(res.status, origin).toBe(204);
        res.headers.forEach((_value, name) => expect(name.startsWith('access-control-allow-'), `${origin}: ${name}`).toBe(false));
        expect(res.headers.get('vary')).toBe('Origin');
      }
    });

    it('duplicated Origin headers allow nothing', async () => {
      const res = await fetch(`${server.url}/v1/refresh`, { method: 'OPTIONS', headers: [['origin', APP_ORIGIN], ['origin', APP_ORIGIN], ['access-control-request-method', 'POST']] });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('Rotor\'s own origin (ROTOR_ISSUER) is always allowed', async () => {
      const res = await preflight('/v1/refresh', 'http://rotor.test');
      expect(res.headers.get('access-control-allow-origin')).toBe('http://rotor.test');
    });

    it('JWTPlus routes answer every origin with *, as JWTPlus\'s gin-contrib/cors does', async () => {
      for (const origin of [EVIL, 'null']) {
        const res = await preflight(`/app/${jwtplus.id}/renew`, origin);
        expect(res.status).toBe(204);
        expect(res.headers.get('access-control-allow-origin')).toBe('*');
        expect(res.headers.get('access-control-allow-methods')).toBe('GET,POST,PUT,PATCH,DELETE,OPTIONS');
        expect(res.headers.get('access-control-allow-headers')).toBe('Origin,Authorization');
      }
    });

    it('admin and operations endpoints have no CORS: OPTIONS stays 405, unknown paths 404', async () => {
      // Percent-encoded spellings the router matches as those routes are classed as those routes.
      for (const path of ['/admin/apps', '/metrics', '/healthz', '/%61dmin/apps', '/admin/%61pps', '/%6Detrics', '/%68ealthz']) {
        const res = await preflight(path, APP_ORIGIN, 'GET');
        expect(res.status, path).toBe(405);
        expect(res.headers.get('access-control-allow-origin')).toBeNull();
      }
      expect((await preflight('/nowhere', APP_ORIGIN)).status).toBe(404);
      // A spelling the router does not match is a 404 too, never a CORS answer for another route.
      expect((await preflight('/v1/refresh/', APP_ORIGIN)).status).toBe(404);
      expect((await preflight('/V1/refresh', APP_ORIGIN)).status).toBe(404);
    });

    it('a preflight is not cacheable by shared caches and its answer never depends on anything but the Origin', async () => {
      const a = await preflight('/v1/refresh', APP_ORIGIN);
      const b = await preflight('/v1/refresh', EVIL);
      expect(a.headers.get('cache-control')).toBe('no-store');
      expect(a.headers.get('vary')).toBe('Origin');
      expect(b.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('OPTIONS without a preflight\'s headers is a plain 204 with Allow', async () => {
      const res = await server.call('OPTIONS', '/v1/refresh');
      expect(res.status).toBe(204);
      expect(res.headers.get('allow')).toBe('POST, OPTIONS');
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('native API', () => {
    it('/v1/refresh: an allowed origin refreshes and can read the answer; evil, null and look-alikes are 403 and consume nothing', async () => {
      const pair = await issue(server, web);
      for (const origin of [EVIL, 'null', `${APP_ORIGIN}.evil.com`, 'https://APP.EXAMPLE.COM', `${APP_ORIGIN}/`, '']) {
        const res = await refresh(pair.refreshToken, origin);
        expectRefused(res);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(res.body).toMatchObject({ code: 'origin_not_allowed', status: 403 });
        expect(res.text).not.toContain(pair.refreshToken);
      }
      // reuseGrace 0: had anything above consumed the token, this would be reuse.
      const ok = await refresh(pair.refreshToken, APP_ORIGIN);
      expect(ok.status).toBe(200);
      expectAllowed(ok, APP_ORIGIN);
      expect(ok.headers.get('cache-control')).toBe('no-store');
      // Server to server: no Origin, no CORS, unaffected.
      const plain = await refresh(ok.body.refreshToken, null);
      expect(plain.status).toBe(200);
      expect(plain.headers.get('access-control-allow-origin')).toBeNull();
      expect(plain.headers.get('vary')).toBe('Origin');
    });

    it('the cross-site form POST that would rotate a token and throw the answer away is refused', async () => {
      const pair = await issue(server, web);
      const form = await server.call('POST', '/v1/refresh', { form: { refreshToken: pair.refreshToken }, headers: { origin: EVIL } });
      expectRefused(form);
      expect((await refresh(pair.refreshToken, null)).status).toBe(200);
    });

    it('a token whose app narrows allowedOrigins: a globally allowed origin is refused (and can read why), the app\'s own is served', async () => {
      const pair = await issue(server, narrow);
      const refused = await refresh(pair.refreshToken, APP_ORIGIN);
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('origin_not_allowed');
      expect(refused.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
      // An app cannot widen the global list: only-here.example is not in ROTOR_CORS_ORIGINS.
      expectRefused(await refresh(pair.refreshToken, 'https://only-here.example'));
      const ok = await refresh(pair.refreshToken, DEV_ORIGIN);
      expect(ok.status).toBe(200);
      expectAllowed(ok, DEV_ORIGIN);
      // Rotor's own origin stays allowed whatever the app narrows.
      expect((await refresh(ok.body.refreshToken, 'http://rotor.test')).status).toBe(200);
    });

    it('an unknown or forged token from an allowed origin gets the ordinary refusal, readable by the page', async () => {
      const res = await refresh('rt_' + 'A'.repeat(43), APP_ORIGIN);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('invalid_refresh_token');
      expectAllowed(res, APP_ORIGIN);
    });

    it('/v1/revoke: a disallowed origin revokes nothing', async () => {
      const pair = await issue(server, web);
      expectRefused(await server.call('POST', '/v1/revoke', { json: { token: pair.refreshToken }, headers: { origin: EVIL } }));
      expectRefused(await server.call('POST', '/v1/revoke', { json: { token: pair.accessToken }, headers: { origin: 'null' } }));
      expect((await server.call('POST', '/v1/revoke', { json: { token: pair.refreshToken }, headers: { origin: DEV_ORIGIN } })).status).toBe(200);
      const narrowPair = await issue(server, narrow);
      expect((await server.call('POST', '/v1/revoke', { json: { token: narrowPair.accessToken }, headers: { origin: APP_ORIGIN } })).status).toBe(403);
      expect((await refresh(narrowPair.refreshToken, null)).status).toBe(200);
    });

    it('/v1/introspect, issuance, login, session listing and deletion: origin-checked, app from the token or the path', async () => {
      const pair = await issue(server, narrow);
      const key = { authorization: `Bearer ${narrow.appKey}` };
      const calls: [string, string, unknown?][] = [
        ['POST', '/v1/introspect', { token: pair.accessToken }],
        ['POST', '/v1/apps/narrow/sessions', { subject: 'bob' }],
        ['POST', '/v1/apps/narrow/login', { username: 'bob', password: 'x' }],
        ['GET', '/v1/apps/narrow/sessions?subject=alice'],
        ['DELETE', `/v1/apps/narrow/sessions/${pair.sessionId}`],
        ['DELETE', '/v1/apps/narrow/subjects/alice/sessions'],
      ];
      for (const [method, path, json] of calls) {
        const opts = (origin: string) => ({ json, headers: { ...key, origin } });
        expectRefused(await server.call(method, path, opts(EVIL)));
        expect((await server.call(method, path, opts(APP_ORIGIN))).status, `${method} ${path} from a globally allowed origin the app does not allow`).toBe(403);
      }
      for (const [method, path, json] of calls) {
        const res = await server.call(method, path, { json, headers: { ...key, origin: DEV_ORIGIN } });
        expect(res.status, `${method} ${path}`).not.toBe(403);
        expect(res.headers.get('access-control-allow-origin')).toBe(DEV_ORIGIN);
      }
    });

    it('JWKS and discovery: public documents; allowed origins get CORS headers, others the document without them', async () => {
      for (const path of ['/v1/apps/web/jwks.json', '/.well-known/jwks.json', '/.well-known/oauth-authorization-server']) {
        const allowed = await server.call('GET', path, { headers: { origin: APP_ORIGIN } });
        expect(allowed.status, path).toBe(200);
        expectAllowed(allowed, APP_ORIGIN);
        const other = await server.call('GET', path, { headers: { origin: EVIL } });
        expect(other.status, path).toBe(200);
        expect(other.headers.get('access-control-allow-origin')).toBeNull();
        expect(other.headers.get('vary')).toMatch(/\bOrigin\b/);
      }
    });

    it('admin and operations endpoints never answer with CORS headers', async () => {
      for (const path of ['/admin/apps', '/healthz', '/metrics', '/openapi.json']) {
        const res = await server.call('GET', path, { headers: { ...admin, origin: APP_ORIGIN } });
        expect(res.headers.get('access-control-allow-origin'), path).toBeNull();
      }
    });
  });

  describe('OAuth 2.0', () => {
    it('/oauth2/token: 403 invalid_request for a disallowed origin, nothing consumed; the client app narrows too', async () => {
      const pair = await issue(server, web);
      const token = (origin: string | null, clientId = 'web') =>
        server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: clientId }, headers: withOrigin(origin) });
      for (const origin of [EVIL, 'null']) {
        const res = await token(origin);
        expectRefused(res);
        expect(res.body.error).toBe('invalid_request');
        expect(res.body.error_description).toMatch(/origin/);
        expect(res.headers.get('cache-control')).toBe('no-store');
      }
      // The client named is narrow's: its allowedOrigins apply even to another app's token.
      expect((await token(APP_ORIGIN, 'narrow')).status).toBe(403);
      // And the other way round: a narrowing app's token under a permissive client is refused untouched.
      const narrowPair = await issue(server, narrow);
      const crossed = await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: narrowPair.refreshToken, client_id: 'web' }, headers: { origin: APP_ORIGIN } });
      expect(crossed.status).toBe(403);
      expect((await refresh(narrowPair.refreshToken, null)).status).toBe(200);
      const ok = await token(APP_ORIGIN);
      expect(ok.status).toBe(200);
      expectAllowed(ok, APP_ORIGIN);
    });

    it('/oauth2/revoke and /oauth2/introspect: origin-checked, the client from Basic or client_id', async () => {
      const pair = await issue(server, narrow);
      for (const path of ['/oauth2/revoke', '/oauth2/introspect']) {
        const viaBasic = await server.call('POST', path, { form: { token: pair.refreshToken }, headers: { authorization: basic('narrow', narrow.appKey), origin: APP_ORIGIN } });
        expect(viaBasic.status, path).toBe(403);
        expect(viaBasic.body.error).toBe('invalid_request');
        expectRefused(await server.call('POST', path, { form: { token: pair.refreshToken, client_id: 'web' }, headers: { origin: EVIL } }));
      }
      expect((await refresh(pair.refreshToken, null)).status).toBe(200);
    });
  });

  describe('dialects', () => {
    it('verifik: the renewal and renew-and-revoke are origin-checked', async () => {
      const pair = await issue(server, verifik);
      const auth = { authorization: `Bearer ${pair.accessToken}` };
      for (const [method, path] of [['GET', '/v2/auth/session?origin=refresh'], ['POST', '/v2/auth/renew-and-revoke']] as const) {
        const res = await server.call(method, path, { headers: { ...auth, origin: EVIL } });
        expectRefused(res);
        expect(res.body).toEqual({ code: 'Forbidden', message: expect.stringMatching(/origin/) });
      }
      const ok = await server.call('GET', '/v2/auth/session?origin=refresh', { headers: { ...auth, origin: APP_ORIGIN } });
      expect(ok.status).toBe(200);
      expectAllowed(ok, APP_ORIGIN);
    });

    it('flolive: refused before the pair is judged; both prefixes', async () => {
      const pair = await issue(server, flolive);
      for (const prefix of ['', '/flolive/flo']) {
        const res = await server.call('PUT', `${prefix}/api/v2/auth/token`, { json: { token: pair.accessToken, refreshToken: pair.refreshToken }, headers: { origin: 'null' } });
        expectRefused(res);
        expect(res.body).toMatchObject({ errorCode: 'REQ_1001', content: '', pageable: '' });
      }
      const ok = await server.call('PUT', '/api/v2/auth/token', { json: { token: pair.accessToken, refreshToken: pair.refreshToken }, headers: { origin: APP_ORIGIN } });
      expect(ok.status).toBe(200);
      expectAllowed(ok, APP_ORIGIN);
    });

    it('fib: refresh, login and logout are origin-checked, in FIB\'s envelope', async () => {
      const pair = await issue(server, fib);
      for (const [method, path, json] of [['PATCH', `${FIB}/session`], ['POST', `${FIB}/logout`], ['POST', `${FIB}/session`, { email: 'a@b.c', signature: '00', authPublicKeyHex: '00' }]] as const) {
        const res = await server.call(method, path, { json, headers: { authorization: `Bearer ${method === 'PATCH' ? pair.refreshToken : pair.accessToken}`, origin: EVIL } });
        expectRefused(res);
        expect(res.body).toEqual({ status: { code: 403, name: 'FORBIDDEN', message: expect.stringMatching(/origin/) }, data: null });
      }
      const ok = await server.call('PATCH', `${FIB}/session`, { headers: { authorization: `Bearer ${pair.refreshToken}`, origin: APP_ORIGIN } });
      expect(ok.status).toBe(200);
      expectAllowed(ok, APP_ORIGIN);
    });

    it('abitmedia: JSON, form and multipart refreshes and the Basic login are origin-checked, byte-exact envelope', async () => {
      const pair = await issue(server, abit);
      const multipart = new FormData();
      multipart.set('refreshToken', pair.refreshToken);
      for (const init of [
        { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: pair.refreshToken }) },
        { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `refreshToken=${pair.refreshToken}` },
        { body: multipart },
      ]) {
        const res = await fetch(`${server.url}/v1/refreshToken`, { method: 'POST', ...init, headers: { ...init.headers, origin: EVIL } });
        expect(res.status).toBe(403);
        expect(await res.text()).toBe('{"success":false,"status":403,"message":"Origen no permitido"}');
        expect(res.headers.get('access-control-allow-origin')).toBeNull();
      }
      const login = await server.call('GET', '/v1/auth', { headers: { authorization: basic('ana@example.com', 'x'), origin: EVIL } });
      expectRefused(login);
      const ok = await fetch(`${server.url}/v1/refreshToken`, { method: 'POST', body: multipart, headers: { origin: APP_ORIGIN } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    });

    it('where the app shows only inside the handler (root logins), every app of that dialect must allow the origin', async () => {
      const narrowFib = await createApp(server, { name: 'fibnarrow', profile: 'fib', policy: { allowedOrigins: [DEV_ORIGIN] } });
      const login = (prefix: string, origin: string) => server.call('POST', `${prefix}${FIB}/session`, { json: { email: 'a@b.c', signature: '00', authPublicKeyHex: '00' }, headers: { origin } });
      expect((await login('', APP_ORIGIN)).status).toBe(403);
      expect((await login('/fib/fibapp', APP_ORIGIN)).status).not.toBe(403);
      expect((await login('/fib/fibnarrow', APP_ORIGIN)).status).toBe(403);
      // Its tokens are judged by their own app.
      const pair = await issue(server, narrowFib);
      const patch = (origin: string) => server.call('PATCH', `${FIB}/session`, { headers: { authorization: pair.refreshToken, origin } });
      expect((await patch(APP_ORIGIN)).status).toBe(403);
      expect((await patch(DEV_ORIGIN)).status).toBe(200);
      await server.call('DELETE', '/admin/apps/fibnarrow', { headers: admin });
    });

    it('jwtplus: every origin, null included, gets * (no Vary), unless the app narrows with allowedOrigins', async () => {
      const headers = { authorization: jwtplus.appKey };
      for (const origin of [EVIL, 'null']) {
        const res = await server.call('GET', `/app/${jwtplus.id}`, { headers: { ...headers, origin } });
        expect(res.status).toBe(200);
        expect(res.headers.get('access-control-allow-origin')).toBe('*');
        expect(res.headers.get('access-control-expose-headers')).toBe('Content-Length');
      }
      expect((await server.call('GET', `/app/${jwtplus.id}`, { headers })).headers.get('access-control-allow-origin')).toBeNull();
      await server.call('PATCH', '/admin/apps/jwp', { json: { policy: { allowedOrigins: [APP_ORIGIN] } }, headers: admin });
      const refused = await server.call('POST', `/app/${jwtplus.id}/verify`, { json: { token: 'x' }, headers: { ...headers, origin: EVIL } });
      expect(refused.status).toBe(403);
      expect(refused.body).toEqual({ errors: expect.stringMatching(/origin/) });
      expect((await server.call('POST', `/app/${jwtplus.id}/verify`, { json: { token: 'x' }, headers: { ...headers, origin: APP_ORIGIN } })).status).toBe(400);
      await server.call('PATCH', '/admin/apps/jwp', { json: { policy: { allowedOrigins: null } }, headers: admin });
    });
  });

  it('every endpoint × {allowed, disallowed, null, no Origin}: the decision and the headers', async () => {
    const key = { authorization: `Bearer ${web.appKey}` };
    const json = (body: unknown) => ({ json: body });
    const form = (body: Record<string, string>) => ({ form: body });
    type Call = [string, string, { json?: unknown; form?: Record<string, string>; headers?: Record<string, string> }];
    const api: Call[] = [
      ['POST', '/v1/refresh', json({ refreshToken: 'rt_x' })],
      ['POST', '/v1/revoke', json({ token: 'x' })],
      ['POST', '/v1/introspect', { json: { token: 'x' }, headers: key }],
      ['POST', '/v1/apps/web/sessions', { json: { subject: 'matrix' }, headers: key }],
      ['POST', '/v1/apps/web/login', json({ username: 'u', password: 'p' })],
      ['GET', '/v1/apps/web/sessions?subject=matrix', { headers: key }],
      ['DELETE', '/v1/apps/web/sessions/01J00000000000000000000000', { headers: key }],
      ['DELETE', '/v1/apps/web/subjects/matrix/sessions', { headers: key }],
      ['POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: 'x', client_id: 'web' })],
      ['POST', '/oauth2/revoke', form({ token: 'x', client_id: 'web' })],
      ['POST', '/oauth2/introspect', form({ token: 'x', client_id: 'web' })],
      ['GET', '/v2/auth/session?origin=refresh', { headers: { authorization: 'x' } }],
      ['POST', '/v2/auth/session', { headers: { authorization: 'x' } }],
      ['POST', '/v2/auth/renew-and-revoke', { headers: { authorization: 'x' } }],
      ['PUT', '/api/v2/auth/token', json({ token: 'x', refreshToken: 'y' })],
      ['PUT', '/flolive/flo/api/v2/auth/token', json({ token: 'x', refreshToken: 'y' })],
      ['PATCH', `${FIB}/session`, { headers: { authorization: 'x' } }],
      ['POST', `${FIB}/session`, json({ email: 'a@b.c', signature: '00', authPublicKeyHex: '00' })],
      ['POST', `${FIB}/logout`, { headers: { authorization: 'x' } }],
      ['PATCH', `/fib/fibapp${FIB}/session`, { headers: { authorization: 'x' } }],
      ['POST', `/fib/fibapp${FIB}/session`, json({ email: 'a@b.c', signature: '00', authPublicKeyHex: '00' })],
      ['POST', `/fib/fibapp${FIB}/logout`, { headers: { authorization: 'x' } }],
      ['POST', '/v1/refreshToken', json({ refreshToken: 'x' })],
      ['GET', '/v1/auth', { headers: { authorization: basic('a@b.c', 'p') } }],
      ['POST', '/abitmedia/abit/v1/refreshToken', json({ refreshToken: 'x' })],
      ['GET', '/abitmedia/abit/v1/auth', { headers: { authorization: basic('a@b.c', 'p') } }],
    ];
    const publicDocs: Call[] = [['GET', '/v1/apps/web/jwks.json', {}], ['GET', '/.well-known/jwks.json', {}], ['GET', '/.well-known/oauth-authorization-server', {}]];
    const jwtplusRoutes: Call[] = ['', '/pub-keys'].map((p) => ['GET', `/app/${jwtplus.id}${p}`, { headers: { authorization: jwtplus.appKey } }] as Call)
      .concat(['sign', 'renew', 'verify', 'logout', 'get-session'].map((p) => ['POST', `/app/${jwtplus.id}/${p}`, { json: {}, headers: { authorization: jwtplus.appKey } }] as Call));
    const send = ([method, path, opts]: Call, origin: string | null) => server.call(method, path, { ...opts, headers: withOrigin(origin, opts.headers) });
    for (const call of api) {
      const label = `${call[0]} ${call[1]}`;
      for (const origin of [EVIL, 'null']) {
        const res = await send(call, origin);
        expect(res.status, `${label} from ${origin}`).toBe(403);
        expect(res.headers.get('access-control-allow-origin'), label).toBeNull();
      }
      const allowed = await send(call, APP_ORIGIN);
      expect(allowed.status, `${label} allowed`).not.toBe(403);
      expect(allowed.status, label).toBeLessThan(500);
      expect(allowed.headers.get('access-control-allow-origin'), label).toBe(APP_ORIGIN);
      const none = await send(call, null);
      expect(none.status, `${label} without Origin`).toBe(allowed.status);
      expect(none.headers.get('access-control-allow-origin'), label).toBeNull();
      expect(none.headers.get('vary'), label).toMatch(/\bOrigin\b/);
    }
    for (const call of publicDocs) {
      for (const origin of [EVIL, 'null', null]) expect((await send(call, origin)).headers.get('access-control-allow-origin')).toBeNull();
      expect((await send(call, APP_ORIGIN)).headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    }
    for (const call of jwtplusRoutes) {
      for (const origin of [EVIL, 'null', APP_ORIGIN]) {
        const res = await send(call, origin);
        expect(res.status, `${call[1]} from ${origin}`).not.toBe(403);
        expect(res.headers.get('access-control-allow-origin'), call[1]).toBe('*');
      }
    }
  });

  it('the SDK is served as one ES module to every origin, with a version-pinned ETag', async () => {
    const res = await fetch(`${server.url}/sdk/rotor-client.js`, { headers: { origin: EVIL } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const etag = res.headers.get('etag') as string;
    expect(etag).toMatch(/^"0\.1\.0-[A-Za-z0-9_-]{16}"$/);
    const text = await res.text();
    // One module on its own: no imports, and loaded as it is it offers the client's entry points.
    expect(text).not.toMatch(/^\s*import\s/m);
    const sdk = (await import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`)) as Record<string, unknown>;
    expect(typeof sdk.createRotorClient).toBe('function');
    expect(typeof sdk.RotorClientError).toBe('function');
    const again = await fetch(`${server.url}/sdk/rotor-client.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect((await fetch(`${server.url}/sdk/other.js`)).status).toBe(404);
  });
});
