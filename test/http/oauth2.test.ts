import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createApp, issue, startTestServer, type TestServer } from '../helpers/server.js';

describe('OAuth 2.0 endpoints (RFC 6749 §6, 7009, 7662, 8414)', () => {
  let server: TestServer;
  let app: Awaited<ReturnType<typeof createApp>>;
  beforeAll(async () => {
    server = await startTestServer();
    app = await createApp(server, { name: 'oauth-app', public: false, policy: { reuseGrace: 0 } });
  });
  afterAll(async () => { await server.close(); });

  const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
  const token = (form: Record<string, string>, headers: Record<string, string> = {}) => server.call('POST', '/oauth2/token', { form, headers });

  it('refreshes with HTTP Basic client auth; the access token verifies with jose against the discovered JWKS', async () => {
    const pair = await issue(server, app);
    const res = await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, basic(app.id, app.appKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 900 });
    expect(res.body.refresh_token).not.toBe(pair.refreshToken);
    // The app's own RFC 8414 document (by id), naming its issuer and its own JWKS.
    const meta = (await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`)).body;
    expect(meta).toMatchObject({ issuer: `http://rotor.test/apps/${app.id}`, token_endpoint: 'http://rotor.test/oauth2/token', grant_types_supported: ['refresh_token'] });
    // The JWKS is fetched from the live server at the path the metadata names.
    const jwks = createRemoteJWKSet(new URL(server.url + new URL(meta.jwks_uri).pathname));
    const { payload, protectedHeader } = await jwtVerify(res.body.access_token, jwks, { issuer: meta.issuer, audience: app.id, typ: 'at+jwt' });
    expect(payload.sub).toBe('alice');
    expect(protectedHeader.alg).toBe('ES256');
  });

  it('accepts client_secret_post and the app name as client_id', async () => {
    const pair = await issue(server, app);
    const res = await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.name, client_secret: app.appKey });
    expect(res.status).toBe(200);
  });

  it('a public app may omit the secret; a confidential one may not', async () => {
    const pub = await createApp(server, { name: 'oauth-public', public: true });
    const pair = await issue(server, pub);
    expect((await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: pub.id })).status).toBe(200);
    const conf = await issue(server, app);
    const res = await token({ grant_type: 'refresh_token', refresh_token: conf.refreshToken, client_id: app.id });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  it('invalid_client is 401 with WWW-Authenticate', async () => {
    const pair = await issue(server, app);
    const res = await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, basic(app.id, 'wrong'));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="rotor"/);
    expect(res.body.error).toBe('invalid_client');
    // The token was not touched by the failed attempt.
    expect((await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, basic(app.id, app.appKey))).status).toBe(200);
  });

  it('maps errors to RFC 6749 §5.2 codes', async () => {
    const auth = basic(app.id, app.appKey);
    const pair = await issue(server, app);
    const cases: [Record<string, string>, number, string][] = [
      [{ refresh_token: pair.refreshToken }, 400, 'invalid_request'],
      [{ grant_type: 'password', username: 'a', password: 'b' }, 400, 'unsupported_grant_type'],
      [{ grant_type: 'refresh_token' }, 400, 'invalid_request'],
      [{ grant_type: 'refresh_token', refresh_token: 'rt_nope' }, 400, 'invalid_grant'],
      [{ grant_type: 'refresh_token', refresh_token: pair.refreshToken, scope: 'admin' }, 400, 'invalid_scope'],
    ];
    for (const [form, status, error] of cases) {
      const res = await token(form, auth);
      expect(res.status, JSON.stringify(form)).toBe(status);
      expect(res.body.error, JSON.stringify(form)).toBe(error);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    }
    // A refused scope consumed nothing.
    expect((await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, auth)).status).toBe(200);
    const dup = await server.call('POST', '/oauth2/token', {
      body: 'grant_type=refresh_token&refresh_token=a&refresh_token=b', headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth },
    });
    expect(dup.status).toBe(400);
    expect(dup.body.error).toBe('invalid_request');
    const json = await server.call('POST', '/oauth2/token', { json: { grant_type: 'refresh_token', refresh_token: 'x' }, headers: auth });
    expect(json.status).toBe(400);
    expect(json.body.error).toBe('invalid_request');
  });

  it('narrower scope is fine and keeps the granted scope', async () => {
    const pair = await issue(server, app, 'scoped', { claims: { scope: 'read write' } });
    const res = await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken, scope: 'read' }, basic(app.id, app.appKey));
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('read write');
  });

  it('a refresh token of another app is invalid_grant and stays usable by its own app', async () => {
    const other = await createApp(server, { name: 'oauth-other' });
    const pair = await issue(server, other);
    const res = await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, basic(app.id, app.appKey));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
    expect((await token({ grant_type: 'refresh_token', refresh_token: pair.refreshToken }, basic(other.id, other.appKey))).status).toBe(200);
  });

  it('reuse through the token endpoint revokes the session', async () => {
    const auth = basic(app.id, app.appKey);
    const r0 = await issue(server, app);
    const r1 = (await token({ grant_type: 'refresh_token', refresh_token: r0.refreshToken }, auth)).body;
    expect((await token({ grant_type: 'refresh_token', refresh_token: r0.refreshToken }, auth)).body.error).toBe('invalid_grant');
    expect((await token({ grant_type: 'refresh_token', refresh_token: r1.refresh_token }, auth)).body.error).toBe('invalid_grant');
  });

  it('revocation (RFC 7009) and introspection (RFC 7662)', async () => {
    const auth = basic(app.id, app.appKey);
    const pair = await issue(server, app);
    const active = await server.call('POST', '/oauth2/introspect', { form: { token: pair.accessToken }, headers: auth });
    // RFC 7662 §2.2: an RFC 6749 §7.1 token type.
    expect(active.body).toMatchObject({ active: true, sub: 'alice', client_id: app.id, token_type: 'Bearer', sid: pair.sessionId, aud: app.id, iss: `http://rotor.test/apps/${app.id}` });
    expect((await server.call('POST', '/oauth2/revoke', { form: { token: 'unknown' }, headers: auth })).status).toBe(200);
    expect((await server.call('POST', '/oauth2/revoke', { form: { token: pair.refreshToken }, headers: auth })).status).toBe(200);
    const after = await server.call('POST', '/oauth2/introspect', { form: { token: pair.accessToken }, headers: auth });
    expect(after.body).toEqual({ active: false });
    expect((await server.call('POST', '/oauth2/revoke', { form: { token: 'x' }, headers: basic(app.id, 'bad') })).status).toBe(401);
  });

  it('admin API is off without a token, and refuses a wrong one', async () => {
    expect((await server.call('GET', '/admin/apps', { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    expect((await server.call('GET', '/admin/apps', { headers: admin })).status).toBe(200);
    const off = await startTestServer({ env: { ROTOR_ADMIN_TOKEN: '' } });
    try {
      expect((await off.call('GET', '/admin/apps', { headers: admin })).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
