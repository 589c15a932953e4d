import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/domain/clock.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/** The header without `typ`, which the formats owe (the vendor's sample shows `"typ":"JWT"`; see the todo at the end). */
const headerWithoutTyp = (token: string) => {
  const { typ, ...rest } = decodeJwtPart(token, 0);
  expect([undefined, 'JWT']).toContain(typ);
  return rest;
};

const DAY = 86400;
const EMAIL = 'ana@example.com';
const PASSWORD = 'contraseña segura 1';
const BAD_REFRESH = '{"success":false,"status":400,"message":"Token de refresco inválido o expirado"}';
const BAD_LOGIN = '{"success":false,"status":401,"message":"Autenticación fallida, credenciales incorrectas"}';
const tokens = (message: string, accessToken: string, refreshToken: string, expiresIn = 3600) =>
  `{"success":true,"status":200,"message":"${message}","accessToken":"${accessToken}","refreshToken":"${refreshToken}","expiresIn":${expiresIn}}`;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

describe('abitmedia dialect', () => {
  let server: TestServer;
  let clock: FixedClock;
  let abit: Awaited<ReturnType<typeof createApp>>;
  let kid: string;

  /** fetch with the raw response bytes, for the byte-exact UTF-8 checks. */
  async function raw(method: string, path: string, init: { headers?: Record<string, string>; body?: BodyInit } = {}) {
    const res = await fetch(server.url + path, { method, ...init });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, bytes, text: bytes.toString('utf8'), body: JSON.parse(bytes.toString('utf8')) };
  }
  const auth = (authorization?: string, prefix = '') =>
    raw('GET', `${prefix}/v1/auth`, { headers: authorization === undefined ? {} : { authorization } });
  const refreshJson = (body: unknown, prefix = '') =>
    raw('POST', `${prefix}/v1/refreshToken`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  beforeAll(async () => {
    clock = new FixedClock(Date.UTC(2026, 4, 1, 8, 0, 0));
    server = await startTestServer({ clock });
    abit = await createApp(server, { name: 'abit', profile: 'abitmedia' });
    const put = await server.call('PUT', `/admin/apps/abit/subjects/${EMAIL}`, { json: { password: PASSWORD, claims: { name: 'Ana', plan: 'pro' } }, headers: admin });
    expect(put.status).toBe(200);
    kid = (await server.call('GET', '/admin/apps/abit/keys', { headers: admin })).body.keys[0].kid;
  });
  afterAll(async () => { await server.close(); });

  async function login() {
    const res = await auth(basic(EMAIL, PASSWORD));
    expect(res.status).toBe(200);
    return res.body as { accessToken: string; refreshToken: string };
  }

  it('logs in with Basic email:password: byte-exact UTF-8 body, no-store, the Abitmedia token layout', async () => {
    const res = await auth(basic(EMAIL, PASSWORD));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const { accessToken, refreshToken } = res.body;
    // oracle: Abitmedia ID API page, GET /v1/auth, 200 sample (stored copy: https://310095.gf7oq.group/abitmedia_id.php?action=GET&path=%2Fauth)
    expect(res.bytes.equals(Buffer.from(tokens('Autenticación exitosa', accessToken, refreshToken), 'utf8'))).toBe(true);
    expect(res.bytes.includes(Buffer.from('Autenticaci\u00f3n', 'utf8'))).toBe(true);

    const now = Math.floor(clock.now() / 1000);
    expect(headerWithoutTyp(accessToken)).toEqual({ alg: 'HS256', kid });
    expect(headerWithoutTyp(refreshToken)).toEqual({ alg: 'HS256', kid });
    const access = decodeJwtPart(accessToken, 1);
    expect(Object.keys(access)).toEqual(['name', 'plan', 'sub', 'sid', 'jti', 'iat', 'exp']);
    expect(access).toEqual({ name: 'Ana', plan: 'pro', sub: EMAIL, sid: access.sid, jti: access.jti, iat: now, exp: now + 3600 });
    const rt = decodeJwtPart(refreshToken, 1);
    expect(Object.keys(rt)).toEqual(['sub', 'sid', 'jti', 'iat', 'exp', 'typ']);
    expect(rt).toEqual({ sub: EMAIL, sid: access.sid, jti: rt.jti, iat: now, exp: now + 30 * DAY, typ: 'refresh' });
    expect(rt.jti).not.toBe(access.jti);

    // Each is what it says it is.
    const introspect = (token: string) => server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${abit.appKey}` } });
    expect((await introspect(accessToken)).body.tokenType).toBe('access_token');
    expect((await introspect(refreshToken)).body.tokenType).toBe('refresh_token');
  });

  it('HEAD /v1/auth does not log in', async () => {
    const before = (await server.call('GET', `/v1/apps/abit/sessions?subject=${EMAIL}`, { headers: { authorization: `Bearer ${abit.appKey}` } })).body.sessions.length;
    const res = await fetch(`${server.url}/v1/auth`, { method: 'HEAD', headers: { authorization: basic(EMAIL, PASSWORD) } });
    expect(res.status).not.toBe(200);
    const after = (await server.call('GET', `/v1/apps/abit/sessions?subject=${EMAIL}`, { headers: { authorization: `Bearer ${abit.appKey}` } })).body.sessions.length;
    expect(after).toBe(before);
  });

  it('refuses bad credentials alike: wrong password, unknown user, no or malformed header', async () => {
    // oracle: Abitmedia ID API page, GET /v1/auth, 401 sample (stored copy: https://310095.gf7oq.group/abitmedia_id.php?action=GET&path=%2Fauth)
    for (const header of [basic(EMAIL, 'wrong'), basic('nobody@example.com', PASSWORD), undefined, 'Basic !!!', `Bearer ${abit.appKey}`, basic(EMAIL, '')]) {
      const res = await auth(header);
      expect(res.status, String(header)).toBe(401);
      expect(res.bytes.equals(Buffer.from(BAD_LOGIN, 'utf8'))).toBe(true);
    }
  });

  it('refreshes with refreshToken as JSON, x-www-form-urlencoded and multipart/form-data', async () => {
    // oracle: Abitmedia ID API page, POST /v1/refreshToken: "Parámetros Formdata / Atributos objeto JSON", refreshToken
    // required, "Autorizaciones: Ninguna" (stored copy: https://310095.gf7oq.group/abitmedia_id.php?action=POST&path=%2FrefreshToken)
    let { refreshToken } = await login();
    const sid = decodeJwtPart(refreshToken, 1).sid;
    const encodings: [string, () => Promise<Awaited<ReturnType<typeof raw>>>][] = [
      ['json', () => refreshJson({ refreshToken })],
      ['form', () => raw('POST', '/v1/refreshToken', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ refreshToken }).toString() })],
      ['multipart', () => {
        const form = new FormData();
        form.append('refreshToken', refreshToken);
        return raw('POST', '/v1/refreshToken', { body: form });
      }],
      ['multipart file part', () => {
        const form = new FormData();
        form.append('refreshToken', new Blob([refreshToken], { type: 'text/plain' }), 'token.txt');
        return raw('POST', '/v1/refreshToken', { body: form });
      }],
    ];
    for (const [name, send] of encodings) {
      clock.advance(1);
      const res = await send();
      expect(res.status, name).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = res.body;
      expect(res.bytes.equals(Buffer.from(tokens('Token de refresco exitoso', body.accessToken, body.refreshToken), 'utf8'))).toBe(true);
      const rt = decodeJwtPart(body.refreshToken, 1);
      expect(rt.sid).toBe(sid);
      expect(rt.exp).toBe(Math.floor(clock.now() / 1000) + 30 * DAY);
      expect(decodeJwtPart(body.accessToken, 1).exp).toBe(Math.floor(clock.now() / 1000) + 3600);
      refreshToken = body.refreshToken;
    }
    // multipart/form-data is parsed for this dialect only: the native API still refuses it.
    const form = new FormData();
    form.append('refreshToken', refreshToken);
    const native = await fetch(`${server.url}/v1/refresh`, { method: 'POST', body: form });
    expect(native.status).toBe(415);
    expect((await refreshJson({ refreshToken })).status).toBe(200);
  });

  it('any invalid, missing, expired, used or revoked refresh token is the one 400', async () => {
    const s = await login();
    const next = (await refreshJson({ refreshToken: s.refreshToken })).body;
    const cases: [string, () => Promise<Awaited<ReturnType<typeof raw>>>][] = [
      ['missing', () => refreshJson({})],
      ['not a string', () => refreshJson({ refreshToken: 42 })],
      ['garbage', () => refreshJson({ refreshToken: 'garbage' })],
      ['access token', () => refreshJson({ refreshToken: s.accessToken })],
      ['bad json', () => raw('POST', '/v1/refreshToken', { headers: { 'content-type': 'application/json' }, body: '{"refreshToken":' })],
      ['no body', () => raw('POST', '/v1/refreshToken')],
      ['text/plain', () => raw('POST', '/v1/refreshToken', { headers: { 'content-type': 'text/plain' }, body: s.refreshToken })],
      ['used (reuse revokes the session)', () => refreshJson({ refreshToken: s.refreshToken })],
      ['successor of the reused token', () => refreshJson({ refreshToken: next.refreshToken })],
    ];
    for (const [name, send] of cases) {
      const res = await send();
      expect(res.status, name).toBe(400);
      expect(res.bytes.equals(Buffer.from(BAD_REFRESH, 'utf8')), name).toBe(true);
      expect(res.text).not.toContain(s.refreshToken);
    }

    const revokedPair = await login();
    await server.call('DELETE', `/v1/apps/abit/subjects/${EMAIL}/sessions`, { headers: { authorization: `Bearer ${abit.appKey}` } });
    expect((await refreshJson({ refreshToken: revokedPair.refreshToken })).text).toBe(BAD_REFRESH);

    const old = await login();
    clock.advance(30 * DAY);
    expect((await refreshJson({ refreshToken: old.refreshToken })).text).toBe(BAD_REFRESH);
  });

  it('a disabled subject can neither log in nor refresh', async () => {
    await server.call('PUT', '/admin/apps/abit/subjects/leo@example.com', { json: { password: 'leo-pass' }, headers: admin });
    const s = (await auth(basic('leo@example.com', 'leo-pass'))).body;
    await server.call('PUT', '/admin/apps/abit/subjects/leo@example.com', { json: { status: 'disabled' }, headers: admin });
    expect((await auth(basic('leo@example.com', 'leo-pass'))).text).toBe(BAD_LOGIN);
    expect((await refreshJson({ refreshToken: s.refreshToken })).text).toBe(BAD_REFRESH);
  });

  it('refuses refresh tokens of a native app, of floLIVE, and of another Abitmedia app through /abitmedia/{app}', async () => {
    const native = await createApp(server, { name: 'abit-native' });
    const flo = await createApp(server, { name: 'abit-flo', profile: 'flolive' });
    const other = await createApp(server, { name: 'abit-other', profile: 'abitmedia' });
    for (const app of [native, flo]) {
      const pair = await issue(server, app, EMAIL);
      expect((await refreshJson({ refreshToken: pair.refreshToken })).text).toBe(BAD_REFRESH);
    }
    const foreign = await issue(server, other, EMAIL);
    expect((await refreshJson({ refreshToken: foreign.refreshToken }, '/abitmedia/abit')).text).toBe(BAD_REFRESH);
    // Untouched by that: it renews under its own base URL.
    expect((await refreshJson({ refreshToken: foreign.refreshToken }, '/abitmedia/abit-other')).status).toBe(200);
    const unknown = await refreshJson({ refreshToken: foreign.refreshToken }, '/abitmedia/abit-native');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe('{"success":false,"status":404,"message":"Aplicación no encontrada"}');
  });

  it('with several Abitmedia apps, a root login goes to the app that knows the user; /abitmedia/{app} names it', async () => {
    await server.call('PUT', '/admin/apps/abit-other/subjects/zoe@example.com', { json: { password: 'zoe-pass' }, headers: admin });
    const root = await auth(basic('zoe@example.com', 'zoe-pass'));
    expect(root.status).toBe(200);
    const otherKid = (await server.call('GET', '/admin/apps/abit-other/keys', { headers: admin })).body.keys[0].kid;
    expect(decodeJwtPart(root.body.accessToken, 0).kid).toBe(otherKid);
    expect((await auth(basic('zoe@example.com', 'zoe-pass'), '/abitmedia/abit')).text).toBe(BAD_LOGIN);
    expect((await auth(basic(EMAIL, PASSWORD), '/abitmedia/abit')).status).toBe(200);
    // Known to both apps with the same password: the latest registration wins.
    clock.advance(1);
    await server.call('PUT', '/admin/apps/abit/subjects/zoe@example.com', { json: { password: 'zoe-pass' }, headers: admin });
    expect(decodeJwtPart((await auth(basic('zoe@example.com', 'zoe-pass'))).body.accessToken, 0).kid).toBe(kid);
    // Known to both, but the password matches only in the older one: that one.
    clock.advance(1);
    await server.call('PUT', '/admin/apps/abit/subjects/zoe@example.com', { json: { password: 'other-pass' }, headers: admin });
    expect(decodeJwtPart((await auth(basic('zoe@example.com', 'zoe-pass'))).body.accessToken, 0).kid).toBe(otherKid);
  });
  it('hostile bodies get a 4xx in the Abitmedia envelope, never a 5xx', async () => {
    const big = 'x'.repeat(70 * 1024);
    const form = (fill: (f: FormData) => void) => { const f = new FormData(); fill(f); return f; };
    const cases: [string, { headers?: Record<string, string>; body?: BodyInit }, number][] = [
      ['truncated multipart', { headers: { 'content-type': 'multipart/form-data; boundary=zzz' }, body: '--zzz\r\nContent-Disposition: form-data; name="refreshToken"\r\n\r\nabc' }, 400],
      ['multipart without boundary', { headers: { 'content-type': 'multipart/form-data' }, body: 'garbage' }, 400],
      // Each of these ended the process once: the body ends inside a file part (found by a second review).
      ['truncated multipart file', { headers: { 'content-type': 'multipart/form-data; boundary=XX' }, body: '--XX\r\nContent-Disposition: form-data; name="x"; filename="a"\r\n\r\nabc' }, 400],
      ['multipart file part headers only', { headers: { 'content-type': 'multipart/form-data; boundary=XX' }, body: '--XX\r\nContent-Disposition: form-data; name="refreshToken"; filename="a"\r\n' }, 400],
      ['multipart file after a field, unclosed', { headers: { 'content-type': 'multipart/form-data; boundary=XX' }, body: '--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XX\r\nContent-Disposition: form-data; name="refreshToken"; filename="t"\r\nContent-Type: text/plain\r\n\r\nrt_abc' }, 400],
      ['multipart file over its limit', { body: form((f) => f.append('refreshToken', new Blob([big]), 'x')) }, 413],
      ['too many multipart fields', { body: form((f) => { for (let i = 0; i < 50; i++) f.append(`k${i}`, 'v'); }) }, 413],
      ['refreshToken twice (multipart)', { body: form((f) => { f.append('refreshToken', 'a'); f.append('refreshToken', 'b'); }) }, 400],
      ['refreshToken twice (form)', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'refreshToken=a&refreshToken=b' }, 400],
      ['JSON over 64 KiB', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: big }) }, 413],
      ['prototype poisoning', { headers: { 'content-type': 'application/json' }, body: '{"__proto__":{"x":1}}' }, 400],
      ['operator object', { headers: { 'content-type': 'application/json' }, body: '{"refreshToken":{"$ne":null}}' }, 400],
    ];
    for (const [name, init, status] of cases) {
      const res = await raw('POST', '/v1/refreshToken', init);
      expect(res.status, name).toBe(status);
      expect(res.body.success, name).toBe(false);
      expect(res.body.status, name).toBe(status);
    }
    // The token in the query string is never read.
    const s = await login();
    const query = await raw('POST', `/v1/refreshToken?refreshToken=${s.refreshToken}`);
    expect(query.text).toBe(BAD_REFRESH);
    expect((await refreshJson({ refreshToken: s.refreshToken })).status).toBe(200);
  });
});
