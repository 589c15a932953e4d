import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/** Sends raw bytes and returns the raw response (or '' when the server closed without one). */
function raw(url: string, request: string | Buffer, waitMs = 1500): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    socket.on('data', (chunk) => { data += String(chunk); });
    socket.on('close', () => resolve(data));
    socket.on('error', () => resolve(data));
    socket.write(request);
    setTimeout(() => socket.destroy(), waitMs);
  });
}
const statusOf = (response: string) => Number(response.slice(9, 12));

/** SECURITY-CASES §3 (H-rows) on the native and OAuth APIs. */
describe('hostile HTTP input (H-01 … H-15)', () => {
  let server: TestServer;
  let app: Awaited<ReturnType<typeof createApp>>;
  let control: Awaited<ReturnType<typeof issue>>;
  beforeAll(async () => {
    server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'warn' } });
    app = await createApp(server, { name: 'hostile' });
    control = await issue(server, app);
  });
  afterAll(async () => { await server.close(); });

  const controlAlive = async () => {
    const res = await server.call('POST', '/v1/introspect', { json: { token: control.accessToken }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect(res.body.active).toBe(true);
  };

  it('H-01 large bodies and lying Content-Length get 413 without buffering', async () => {
    const big = await server.call('POST', '/v1/refresh', { body: JSON.stringify({ refreshToken: 'x'.repeat(1_000_000) }), headers: { 'content-type': 'application/json' } });
    expect(big.status).toBe(413);
    const lie = await raw(server.url, 'POST /v1/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{}');
    expect(statusOf(lie)).toBe(413);
    const chunked = await raw(server.url, `POST /v1/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${'10000\r\n' + 'a'.repeat(0x10000) + '\r\n'}${'10000\r\n' + 'a'.repeat(0x10000) + '\r\n'}`);
    expect(statusOf(chunked)).toBe(413);
    await controlAlive();
  });

  it('H-02 oversized headers get 431', async () => {
    const res = await raw(server.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(statusOf(res)).toBe(431);
    // Rotor's problem body, not fastify's own, and nothing of the request echoed.
    expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'invalid_request', status: 431 });
    expect(res).not.toContain('aaaa');
    await controlAlive();
  });

  it('H-02 a duplicate header past the 2,000th is still seen (Node dropped them without a word); more than 16 KiB of them is 431', async () => {
    const filler = Array.from({ length: 2100 }, (_, i) => `X-F${i}: 1\r\n`).join('');
    const body = JSON.stringify({ refreshToken: control.refreshToken });
    const twice = await raw(server.url, `POST /v1/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${filler}DPoP: a.b.c\r\nDPoP: d.e.f\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    // Both proofs seen: ambiguous, refused as an invalid proof (before: the body had no length, so no token).
    expect(statusOf(twice), twice.slice(0, 300)).toBe(401);
    expect(JSON.parse(twice.slice(twice.indexOf('\r\n\r\n') + 4)).code).toBe('invalid_dpop_proof');
    const many = await raw(server.url, `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-F${i}: 1\r\n`).join('')}\r\n`);
    expect(statusOf(many)).toBe(431);
    await controlAlive();
  });

  it('H-04 a body labelled with a charset it is not read as (utf-16, utf-32) is 415 in each API\'s envelope, consuming nothing', async () => {
    const pair = await issue(server, app);
    for (const type of ['application/json; charset=utf-16', 'application/json;charset="UTF-32"', 'application/json; charset=ucs-2', 'application/json; charset=utf-8; charset=utf-16']) {
      const res = await server.call('POST', '/v1/refresh', { body: JSON.stringify({ refreshToken: pair.refreshToken }), headers: { 'content-type': type } });
      expect(res.status, type).toBe(415);
      expect(res.body.code, type).toBe('unsupported_media_type');
    }
    const oauth = await server.call('POST', '/oauth2/token', {
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.id }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16' },
    });
    expect(oauth.status).toBe(415);
    expect(oauth.body.error).toBe('invalid_request');
    // UTF-8, quoted or not, and ASCII-compatible labels are read as they say; a charset inside another
    // parameter's quoted value is that value's text.
    const ok = await server.call('POST', '/v1/refresh', { body: JSON.stringify({ refreshToken: pair.refreshToken }), headers: { 'content-type': 'application/json; x="a;charset=utf-16"; charset="UTF-8"' } });
    expect(ok.status, ok.text).toBe(200);
    const form = await server.call('POST', '/oauth2/token', {
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: ok.body.refreshToken, client_id: app.id }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=ISO-8859-1' },
    });
    expect(form.status, form.text).toBe(200);
    // Windows code pages and the other ISO 8859 parts write ASCII as ASCII too; one charset said twice is one.
    let token = form.body.refresh_token as string;
    for (const type of ['application/json; charset=windows-1252', 'application/json; charset=ISO_8859-15', 'application/json; charset=cp1252', 'application/json;charset=utf-8;charset=UTF-8']) {
      const res = await server.call('POST', '/v1/refresh', { body: JSON.stringify({ refreshToken: token }), headers: { 'content-type': type } });
      expect(res.status, `${type}: ${res.text}`).toBe(200);
      token = res.body.refreshToken;
    }
  });

  it('H-04 / H-05 content types: JSON routes refuse forms and text/plain, OAuth refuses JSON', async () => {
    const plain = await server.call('POST', '/v1/refresh', { body: `{"refreshToken":"${control.refreshToken}"}`, headers: { 'content-type': 'text/plain' } });
    expect(plain.status).toBe(415);
    const utf16 = await server.call('POST', '/v1/refresh', { body: '{}', headers: { 'content-type': 'application/json; charset=utf-16' } });
    expect([400, 415]).toContain(utf16.status);
    const none = await raw(server.url, 'POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
    expect(statusOf(none)).toBeGreaterThanOrEqual(400);
    expect(statusOf(none)).toBeLessThan(500);
    const qs = await server.call('POST', '/oauth2/token', { body: 'a[b]=1&a[__proto__]=b&a[length]=100000000', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(qs.status).toBeGreaterThanOrEqual(400);
    expect(qs.status).toBeLessThan(500);
    // A JSON route takes JSON only: a form (a cross-site "simple request") is 415 in the API's envelope (S2-18).
    const asJson = await server.call('POST', '/v1/refresh', { json: { refreshToken: 'rt_nope' } });
    const asForm = await server.call('POST', '/v1/refresh', { form: { refreshToken: control.refreshToken } });
    expect(asJson.status).toBe(400);
    expect(asForm.status).toBe(415);
    expect(asForm.body.code).toBe('unsupported_media_type');
    await controlAlive();
  });

  it('H-06 a field of the wrong type is 400 and never reaches the store as an object', async () => {
    for (const refreshToken of [1, true, null, ['rt_x'], { $ne: null }]) {
      const res = await server.call('POST', '/v1/refresh', { json: { refreshToken } });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('invalid_request');
    }
    for (const subject of [1, null, [], {}, { $gt: '' }]) {
      const res = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject }, headers: { authorization: `Bearer ${app.appKey}` } });
      expect(res.status).toBe(400);
    }
  });

  it('H-07 invalid UTF-8 and NUL characters are 4xx', async () => {
    for (const bytes of [Buffer.from([0x7b, 0x22, 0x72, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), Buffer.from('{"refreshToken":"\\ud800"}'), Buffer.from('{"refreshToken":"rt_\\u0000x"}')]) {
      const res = await fetch(`${server.url}/v1/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    const nulClient = await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'a\u0000b' } });
    expect(nulClient.status).toBe(401);
  });

  it('H-07b a lone surrogate anywhere in a JSON body is 400 in the API\'s own envelope, on every store; a surrogate pair is text', async () => {
    const jp = await createApp(server, { name: 'hostile-jp', profile: 'jwtplus' });
    const sessions = `/v1/apps/${app.id}/sessions`;
    const key = { authorization: `Bearer ${app.appKey}` };
    for (const body of ['{"subject":"\\ud800"}', '{"subject":"u","userAgent":"\\udfff x"}', '{"subject":"u","audience":"\\udfff"}', '{"subject":"u","claims":{"\\ud800":1}}']) {
      const res = await fetch(`${server.url}${sessions}`, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body });
      expect(res.status, body).toBe(400);
      expect((await res.json()).code, body).toBe('invalid_request');
    }
    const signed = await fetch(`${server.url}/app/${jp.id}/sign`, {
      method: 'POST', headers: { authorization: jp.appKey, 'content-type': 'application/json' },
      body: '{"sub":"\\ud800","aud":"a","ip":"::1","useragent":"x"}',
    });
    expect(signed.status).toBe(400);
    expect(await signed.json()).toHaveProperty('errors');
    const described = await fetch(`${server.url}/admin/apps/${app.id}`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: '{"description":"\\ud800"}',
    });
    expect(described.status).toBe(400);
    // Two different lone surrogates never become one subject (PostgreSQL would store both as U+FFFD).
    const pair = await server.call('POST', sessions, { json: { subject: 'smile-\u{1F600}' }, headers: key });
    expect(pair.status).toBe(201);
    await controlAlive();
  });

  it('H-08 JSON bombs and odd JSON are 400 and the process stays up', async () => {
    for (const body of ['['.repeat(100_000), `{${Array.from({ length: 5000 }, (_, i) => `"k${i}":1`).join(',')}}`, '{"refreshToken":1e400}', '\ufeff{"refreshToken":"x"}', '{"refreshToken":"x"} garbage']) {
      const res = await server.call('POST', '/v1/refresh', { body, headers: { 'content-type': 'application/json' } });
      expect(res.status, body.slice(0, 20)).toBeGreaterThanOrEqual(400);
      expect(res.status, body.slice(0, 20)).toBeLessThan(500);
    }
    // A number JSON cannot hold, in claims a token would carry: refused, not signed as null.
    const infinite = await server.call('POST', `/v1/apps/${app.name}/sessions`, {
      body: '{"subject":"inf","claims":{"n":1e400,"deep":{"m":[-1e999]}}}', headers: { 'content-type': 'application/json', authorization: `Bearer ${app.appKey}` },
    });
    expect(infinite.status, infinite.text).toBe(400);
    expect(infinite.body.detail).toMatch(/1e400/);
    // Duplicate keys: one documented rule, the last member wins (JSON.parse).
    const dup = await server.call('POST', '/v1/refresh', { body: `{"refreshToken":"garbage","refreshToken":"rt_${'A'.repeat(43)}"}`, headers: { 'content-type': 'application/json' } });
    expect(dup.body.detail).toBe('unknown');
    await controlAlive();
  });

  it('H-09 prototype pollution is refused and leaves no trace in the next request', async () => {
    for (const body of ['{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"hasOwnProperty":1,"refreshToken":"x"}', '{"toString":"x"}', '{"__proto__":null}']) {
      const res = await server.call('POST', '/v1/refresh', { body, headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
    }
    const claims = await server.call('POST', `/v1/apps/${app.name}/sessions`, { body: '{"subject":"p","claims":{"__proto__":{"admin":true}}}', headers: { 'content-type': 'application/json', authorization: `Bearer ${app.appKey}` } });
    expect(claims.status).toBe(400);
    const next = await issue(server, app, 'p');
    expect(decodeJwtPart(next.accessToken, 1).admin).toBeUndefined();
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('H-10 CR/LF never becomes a header or a forged log line', async () => {
    const res = await server.call('POST', '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: 'x', client_id: 'evil\r\nSet-Cookie: a=b' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="rotor", charset="UTF-8"');
    expect(server.logs.join('')).not.toMatch(/\nSet-Cookie/);
  });

  it('H-11 Host and forwarding headers do not change the issuer or the discovery URLs', async () => {
    const headers = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', forwarded: 'host=evil.example' };
    const meta = await server.call('GET', '/.well-known/oauth-authorization-server', { headers });
    expect(meta.body.issuer).toBe('http://rotor.test');
    expect(meta.text).not.toContain('evil');
    const own = await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`, { headers });
    expect(own.body).toMatchObject({ issuer: `http://rotor.test/apps/${app.id}`, jwks_uri: `http://rotor.test/v1/apps/${app.id}/jwks.json` });
    expect(own.text).not.toContain('evil');
    const pair = await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'h' }, headers: { ...headers, authorization: `Bearer ${app.appKey}` } });
    expect(decodeJwtPart(pair.body.accessToken, 1).iss).toBe(`http://rotor.test/apps/${app.id}`);
  });

  it('H-12 Authorization variants: empty, double space, lowercase scheme, extra parts', async () => {
    const path = `/v1/apps/${app.name}/sessions`;
    const send = (authorization: string) => server.call('POST', path, { json: { subject: 'h12' }, headers: { authorization } });
    expect((await send('Bearer')).status).toBe(401);
    expect((await send('Bearer ')).status).toBe(401);
    expect((await send(`Bearer  ${app.appKey}`)).status).toBe(401);
    expect((await send(`Bearer ${app.appKey} extra`)).status).toBe(401);
    expect((await send(`bearer ${app.appKey}`)).status).toBe(201);
    const twice = await raw(server.url, `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${app.appKey}\r\nAuthorization: Bearer ${app.appKey}\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"subject":"h12"}`);
    expect(statusOf(twice)).toBe(401);
  });

  it('H-13 request smuggling: CL with TE, duplicate CL, bad TE are 400 and close', async () => {
    for (const head of [
      'Content-Length: 4\r\nTransfer-Encoding: chunked',
      'Content-Length: 2\r\nContent-Length: 3',
      'Transfer-Encoding: xchunked',
    ]) {
      const res = await raw(server.url, `POST /v1/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${head}\r\n\r\n0\r\n\r\n`);
      expect(statusOf(res), head).toBe(400);
      expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)), head).toMatchObject({ code: 'invalid_request', status: 400 });
    }
    const fold = await raw(server.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n');
    expect(statusOf(fold)).toBe(400);
    await controlAlive();
  });

  it('H-14 OPTIONS and an arbitrary Origin reflect nothing', async () => {
    const res = await server.call('OPTIONS', '/v1/refresh', { headers: { origin: 'https://evil.example' } });
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('H-16 a request target fastify cannot route (bad percent-escape, a 2 KiB path segment) is answered in Rotor\'s envelope, echoing nothing', async () => {
    for (const target of ['/v1/refresh/%ff?refreshToken=rt_SECRET', '/oauth2/token/%zz?refresh_token=SECRET', `/v1/apps/${'x'.repeat(2100)}/jwks.json?SECRET`]) {
      const res = await raw(server.url, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(statusOf(res), target.slice(0, 40)).toBe(400);
      expect(res).toMatch(/content-type: application\/problem\+json; charset=utf-8/i);
      expect(res).toMatch(/cache-control: no-store/i);
      expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'invalid_request', status: 400 });
      expect(res).not.toMatch(/SECRET|xxxxxxxx/);
    }
    expect(server.logs.join('\n')).not.toContain('SECRET');
    // Counted like every other answer, so such probing shows in the metrics (outside review round four).
    expect((await server.call('GET', '/metrics')).text).toMatch(/rotor_http_requests_total\{route="unmatched",method="GET",status="400"\} [3-9]/);
    await controlAlive();
  });

  it('H-17 what Node answers on its own (an unknown Expect, a CONNECT) comes in Rotor\'s envelope too, and closes', async () => {
    const expectation = await raw(server.url, 'POST /v1/refresh HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
    const tunnel = await raw(server.url, 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n');
    for (const [res, status] of [[expectation, 417], [tunnel, 400]] as const) {
      expect(statusOf(res), res.slice(0, 60)).toBe(status);
      expect(res).toMatch(/content-type: application\/problem\+json; charset=utf-8/i);
      expect(res).toMatch(/connection: close/i);
      expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'invalid_request', status });
    }
    // Expect: 100-continue is still Node's: the body is asked for and the request served.
    const continued = await raw(server.url, `POST /v1/introspect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: Bearer ${app.appKey}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    expect(continued).toMatch(/^HTTP\/1\.1 100 Continue/);
    await controlAlive();
  });

  it('H-18 an OAuth error_description holds RFC 6749 §5.2 characters only, even when it names what the client sent', async () => {
    const name = '"\\\r\n<script>é';
    const body = `grant_type=refresh_token&refresh_token=x&${encodeURIComponent(name)}=1&${encodeURIComponent(name)}=2`;
    const res = await server.call('POST', '/oauth2/token', { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(/^[\x20\x21\x23-\x5B\x5D-\x7E]+$/);
    expect(res.body.error_description).toContain('repeated');
  });

  it('H-15 every error is JSON with a charset', async () => {
    for (const res of [
      await server.call('POST', '/v1/refresh', { json: {} }),
      await server.call('POST', '/oauth2/token', { form: {} }),
      await server.call('GET', '/nowhere'),
      await server.call('POST', '/v1/refresh', { body: 'x', headers: { 'content-type': 'text/plain' } }),
    ]) {
      expect(res.headers.get('content-type')).toMatch(/json; charset=utf-8/);
    }
  });
});

/** S2-19: fastify logs a malformed request's error at trace level, and Node's error carries the raw bytes. */
describe('S2-19 no secret in the logs, even at trace level', () => {
  it('S2-19 a malformed request carrying an app key and a refresh token leaves neither in any log line', async () => {
    const server = await startTestServer({ env: { ROTOR_LOG_LEVEL: 'trace' } });
    try {
      const app = await createApp(server, { name: 'trace-logs' });
      const pair = await issue(server, app);
      const requests = [
        `POST /v1/refresh?refreshToken=${pair.refreshToken} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${app.appKey}\r\nBad Header: x\r\n\r\n`,
        `POST /v1/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${app.appKey}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        `POST /v1/refresh HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${app.appKey}\r\nContent-Length: nope\r\n\r\n{"refreshToken":"${pair.refreshToken}"}`,
      ];
      for (const request of requests) expect(statusOf(await raw(server.url, request, 500))).toBe(400);
      const logs = server.logs.join('');
      expect(logs).toMatch(/"level":10/); // trace lines were written
      // Also not as the bytes of a logged Buffer (`"data":[97,107,95,…]`).
      for (const secret of [app.appKey, pair.refreshToken]) {
        expect(logs).not.toContain(secret);
        expect(logs).not.toContain(Buffer.from(secret).toJSON().data.join(','));
      }
    } finally {
      await server.close();
    }
  });
});
