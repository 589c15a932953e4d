import { createHash, generateKeyPairSync, randomUUID, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { proofVerifier } from '../../src/crypto/proof_verifier.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/**
 * DPoP (RFC 9449; SPEC §2.10, §4.1, §4.2) on /v1/refresh and /oauth2/token: proofs checked per §4.3,
 * sessions bound at issuance (`dpopJkt`) or by a public client's first proof, `cnf.jkt` in the access
 * token, `token_type: DPoP`, nonces, and every forgery refused with nothing consumed.
 */
const ISSUER = 'http://rotor.test';

interface Holder { privateKey: KeyObject; jwk: Record<string, unknown>; jkt: string; alg: string }

function holder(kind: 'ec' | 'ed25519' | 'rsa' = 'ec'): Holder {
  const { privateKey, publicKey } = kind === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'OKP' ? ['crv', 'kty', 'x'] : ['e', 'kty', 'n'];
  const jkt = createHash('sha256').update(`{${members.map((m) => `"${m}":${JSON.stringify(jwk[m])}`).join(',')}}`).digest('base64url');
  return { privateKey, jwk, jkt, alg: kind === 'ec' ? 'ES256' : kind === 'ed25519' ? 'EdDSA' : 'RS256' };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A proof; `tamper` changes header or payload, `signWith` signs with another key than the header's. */
function proof(h: Holder, htu: string, options: {
  htm?: string; iat?: number; jti?: string; nonce?: string; header?: Record<string, unknown>; payload?: Record<string, unknown>; signWith?: Holder; alg?: string;
} = {}): string {
  const header = { typ: 'dpop+jwt', alg: options.alg ?? h.alg, jwk: h.jwk, ...options.header };
  const payload = { jti: options.jti ?? randomUUID(), htm: options.htm ?? 'POST', htu, iat: options.iat ?? Math.floor(Date.now() / 1000), ...(options.nonce ? { nonce: options.nonce } : {}), ...options.payload };
  const input = `${b64(header)}.${b64(payload)}`;
  const signer = options.signWith ?? h;
  const signature = signer.alg === 'ES256'
    ? cryptoSign('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' })
    : signer.alg === 'EdDSA' ? cryptoSign(null, Buffer.from(input), signer.privateKey) : cryptoSign('sha256', Buffer.from(input), signer.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

describe('DPoP (RFC 9449)', () => {
  let server: TestServer;
  beforeAll(async () => { server = await startTestServer({ env: { ROTOR_ISSUER: ISSUER } }); });
  afterAll(async () => { await server.close(); });

  const refresh = (token: string, dpop?: string | string[]) => server.call('POST', '/v1/refresh', {
    json: { refreshToken: token }, headers: dpop === undefined ? {} : { dpop: Array.isArray(dpop) ? dpop.join(', ') : dpop },
  });
  const oauthRefresh = (app: { id: string }, token: string, dpop?: string) => server.call('POST', '/oauth2/token', {
    form: { grant_type: 'refresh_token', refresh_token: token, client_id: app.id }, headers: dpop === undefined ? {} : { dpop },
  });
  const htuRefresh = `${ISSUER}/v1/refresh`;

  it('a proof on /v1/refresh binds a public session: DPoP token type, cnf.jkt, and the next refresh needs that key', async () => {
    const app = await createApp(server, { name: 'dpop-bind', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const key = holder();
    const first = await refresh(pair.refreshToken, proof(key, htuRefresh));
    expect(first.status, first.text).toBe(200);
    expect(first.body.tokenType).toBe('DPoP');
    expect(decodeJwtPart(first.body.accessToken, 1).cnf).toEqual({ jkt: key.jkt });
    // Bound now: no proof, or another key's, is refused and consumes nothing.
    for (const attempt of [undefined, proof(holder(), htuRefresh)]) {
      const refused = await refresh(first.body.refreshToken, attempt);
      expect(refused.status).toBe(401);
      expect(refused.body.code).toBe('invalid_dpop_proof');
      expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
    }
    const second = await refresh(first.body.refreshToken, proof(key, htuRefresh));
    expect(second.status).toBe(200);
    expect(decodeJwtPart(second.body.accessToken, 1).cnf).toEqual({ jkt: key.jkt });
  });

  it('dpopJkt at issuance binds the session from the start; the OAuth token endpoint answers token_type DPoP', async () => {
    const app = await createApp(server, { name: 'dpop-issued', policy: { reuseGrace: 0 } });
    const key = holder('ed25519');
    const pair = await issue(server, app, 'alice', { dpopJkt: key.jkt });
    expect(pair.tokenType).toBe('DPoP');
    expect(decodeJwtPart(pair.accessToken, 1).cnf).toEqual({ jkt: key.jkt });
    expect((await refresh(pair.refreshToken)).body.code).toBe('invalid_dpop_proof');
    const res = await oauthRefresh(app, pair.refreshToken, proof(key, `${ISSUER}/oauth2/token`));
    expect(res.status, res.text).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
    const introspected = await server.call('POST', '/oauth2/introspect', { form: { token: res.body.access_token, client_id: app.id, client_secret: app.appKey } });
    expect(introspected.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
    // A bad dpopJkt, or one for an app that does not use DPoP, is 400.
    expect((await server.call('POST', `/v1/apps/${app.name}/sessions`, { json: { subject: 'x', dpopJkt: 'short' }, headers: { authorization: `Bearer ${app.appKey}` } })).status).toBe(400);
    const off = await createApp(server, { name: 'dpop-off', policy: { dpop: 'off' } });
    expect((await server.call('POST', `/v1/apps/${off.name}/sessions`, { json: { subject: 'x', dpopJkt: key.jkt }, headers: { authorization: `Bearer ${off.appKey}` } })).status).toBe(400);
  });

  it('forged and hostile proofs are refused with invalid_dpop_proof, in each API\'s envelope, and consume nothing', async () => {
    const app = await createApp(server, { name: 'dpop-forgeries', policy: { reuseGrace: 0 } });
    const key = holder();
    const pair = await issue(server, app, 'alice', { dpopJkt: key.jkt });
    const now = Math.floor(Date.now() / 1000);
    const rsa = holder('rsa');
    const { privateKey: _p, ...privateJwk } = { privateKey: 0, ...(key.privateKey.export({ format: 'jwk' }) as Record<string, unknown>) };
    /** Every forgery, aimed at `htu`; `other` is the other endpoint's URI. */
    const forgeries = (htu: string, other: string): [string, string][] => [
      ['signed by another key', proof(key, htu, { signWith: holder() })],
      ['alg none', `${b64({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk })}.${b64({ jti: randomUUID(), htm: 'POST', htu, iat: now })}.`],
      ['HS256 keyed with the public key', (() => {
        const input = `${b64({ typ: 'dpop+jwt', alg: 'HS256', jwk: key.jwk })}.${b64({ jti: randomUUID(), htm: 'POST', htu, iat: now })}`;
        return `${input}.${createHash('sha256').update(input).digest('base64url')}`;
      })()],
      ['a private jwk in the header', proof(key, htu, { header: { jwk: privateJwk } })],
      ['typ JWT', proof(key, htu, { header: { typ: 'JWT' } })],
      ['an RSA key claimed as ES256', proof(rsa, htu, { alg: 'ES256' })],
      ['iat ten minutes old', proof(key, htu, { iat: now - 600 })],
      ['iat ten minutes ahead', proof(key, htu, { iat: now + 600 })],
      ['htu of the other endpoint', proof(key, other)],
      ['htu with a query', proof(key, `${htu}?x=1`)],
      ['htu of another host', proof(key, htu.replace(ISSUER, 'http://evil.test'))],
      ['htm GET', proof(key, htu, { htm: 'GET' })],
      ['no jti', proof(key, htu, { payload: { jti: undefined } })],
      ['two DPoP headers', `${proof(key, htu)}, ${proof(key, htu)}`],
      ['garbage', 'not.a.proof'],
      ['crit in the header', proof(key, htu, { header: { crit: ['exp'] } })],
      ['jku in the header', proof(key, htu, { header: { jku: 'https://evil.test/jwks' } })],
    ];
    // A proof used once (on another session) is a replay everywhere after.
    const used = await issue(server, app, 'bob', { dpopJkt: key.jkt });
    const replayed = proof(key, htuRefresh);
    expect((await refresh(used.refreshToken, replayed)).status).toBe(200);
    const fresh = pair;
    for (const [name, attempt] of [...forgeries(htuRefresh, `${ISSUER}/oauth2/token`), ['a replayed jti', replayed] as [string, string]]) {
      const res = await refresh(fresh.refreshToken, attempt);
      expect(res.status, name).toBe(401);
      expect(res.body.code, name).toBe('invalid_dpop_proof');
    }
    for (const [name, attempt] of forgeries(`${ISSUER}/oauth2/token`, htuRefresh)) {
      const oauth = await oauthRefresh(app, fresh.refreshToken, attempt);
      expect(oauth.status, `oauth ${name}`).toBe(400);
      expect(oauth.body.error, `oauth ${name}`).toBe('invalid_dpop_proof');
    }
    // Nothing was consumed: the genuine proof still refreshes, once.
    expect((await refresh(fresh.refreshToken, proof(key, htuRefresh))).status).toBe(200);
  });

  it('policy dpop required: an unbound session refreshes only with a proof; dialect endpoints treat a bound session as an invalid token', async () => {
    const allowed = await createApp(server, { name: 'dpop-required' });
    const pair = await issue(server, allowed);
    await server.call('PATCH', `/admin/apps/${allowed.id}`, { json: { policy: { dpop: 'required' } }, headers: admin });
    expect((await refresh(pair.refreshToken)).body.code).toBe('invalid_dpop_proof');
    expect((await refresh(pair.refreshToken, proof(holder(), htuRefresh))).status).toBe(200);
    // DPoP binds native apps only: a dialect app can neither bind (dpopJkt), nor require it, nor be bound by a
    // proof at /v1/refresh (ignored there: its tokens have no room for cnf, its endpoint no room for a proof).
    const abit = await createApp(server, { name: 'dpop-abit', profile: 'abitmedia', policy: { reuseGrace: 0 } });
    const key = holder();
    const keyed = { authorization: `Bearer ${abit.appKey}` };
    expect((await server.call('POST', `/v1/apps/${abit.name}/sessions`, { json: { subject: 'dora', dpopJkt: key.jkt }, headers: keyed })).status).toBe(400);
    expect((await server.call('POST', '/admin/apps', { json: { name: 'dpop-abit-req', profile: 'abitmedia', policy: { dpop: 'required' } }, headers: admin })).status).toBe(400);
    expect((await server.call('PATCH', `/admin/apps/${abit.id}`, { json: { policy: { dpop: 'required' } }, headers: admin })).status).toBe(400);
    const plain = await issue(server, abit, 'dora');
    const viaNative = await refresh(plain.refreshToken, proof(key, htuRefresh));
    expect(viaNative.status).toBe(200);
    expect(viaNative.body.tokenType).toBe('Bearer');
    const dialect = await server.call('POST', '/v1/refreshToken', { json: { refreshToken: viaNative.body.refreshToken } });
    expect(dialect.status).toBe(200);
  });

  it('a dialect app cannot demand DPoP nonces (policy dpopNonce) any more than it can require DPoP, at creation or update', async () => {
    // Its endpoints carry no proof, so a nonce could never be sent: the setting would promise what never happens.
    for (const profile of ['verifik', 'jwtplus', 'flolive', 'fib', 'abitmedia']) {
      const created = await server.call('POST', '/admin/apps', { json: { name: `nonce-${profile}-new`, profile, policy: { dpopNonce: true } }, headers: admin });
      expect(created.status, profile).toBe(400);
      expect(created.body.detail).toMatch(new RegExp(`${profile} apps cannot demand DPoP nonces`));
      expect((await server.call('GET', `/admin/apps/nonce-${profile}-new`, { headers: admin })).status).toBe(404);
    }
    const abit = await createApp(server, { name: 'nonce-abit', profile: 'abitmedia', policy: { reuseGrace: 0 } });
    const patched = await server.call('PATCH', `/admin/apps/${abit.id}`, { json: { policy: { dpopNonce: true } }, headers: admin });
    expect(patched.status).toBe(400);
    expect(patched.body.detail).toMatch(/abitmedia apps cannot demand DPoP nonces/);
    expect((await server.call('GET', `/admin/apps/${abit.id}`, { headers: admin })).body.policy).toMatchObject({ dpop: 'allowed', dpopNonce: false });
    expect((await server.call('PATCH', `/admin/apps/${abit.id}`, { json: { policy: { dpopNonce: false, dpop: 'off' } }, headers: admin })).status).toBe(200);
    // A native app may, as before.
    expect((await createApp(server, { name: 'nonce-native', policy: { dpopNonce: true } })).policy.dpopNonce).toBe(true);
  });

  it('reuse is judged before the proof: a consumed ancestor of a bound session revokes it, whatever proof comes with it', async () => {
    // The review's attack: a thief redeems a stolen token first with its own key (binding the session), then
    // the victim's copy comes back. That is reuse, and the session dies: the thief's key does not keep it.
    const app = await createApp(server, { name: 'dpop-reuse' }); // default grace 10 s
    const pair = await issue(server, app);
    const thief = holder();
    const stolen = await refresh(pair.refreshToken, proof(thief, htuRefresh));
    expect(stolen.status).toBe(200);
    const onward = await refresh(stolen.body.refreshToken, proof(thief, htuRefresh));
    expect(onward.status).toBe(200);
    // The victim presents the original token (now two generations back), with no proof or its own key.
    const victim = await refresh(pair.refreshToken, proof(holder(), htuRefresh));
    expect(victim.status).toBe(400);
    expect(victim.body.detail).toBe('reused');
    expect((await refresh(onward.body.refreshToken, proof(thief, htuRefresh))).body.detail).toBe('revoked');
  });

  it('a grace retry by the key that bound the session gets the same successor, bound to that key', async () => {
    const app = await createApp(server, { name: 'dpop-race' });
    const pair = await issue(server, app);
    const l = holder();
    const first = await refresh(pair.refreshToken, proof(l, htuRefresh));
    expect(first.status).toBe(200);
    const same = await refresh(pair.refreshToken, proof(l, htuRefresh));
    expect(same.status).toBe(200);
    expect(same.body.refreshToken).toBe(first.body.refreshToken);
    expect(decodeJwtPart(same.body.accessToken, 1).cnf).toEqual({ jkt: l.jkt });
    // A retry whose proof fails its own checks is refused as such, and the retry is still open.
    const forged = await refresh(pair.refreshToken, proof(l, htuRefresh, { signWith: holder() }));
    expect(forged.status).toBe(401);
    expect(forged.body.code).toBe('invalid_dpop_proof');
    expect((await refresh(first.body.refreshToken, proof(l, htuRefresh))).status).toBe(200);
  });

  // Found by an outside review: a thief who redeemed a stolen token first with its own key (binding the
  // session) used to keep it, because the victim's copy inside the grace window was refused as a proof by
  // the wrong key, not judged reuse; the browser client then signed the victim out. SECURITY-CASES R-03/R-07(a).
  for (const [what, victimProof] of [
    ['its own key', () => proof(holder(), htuRefresh)],
    ['no proof', () => undefined],
    // A replay dressed as an unreadable proof must not dodge the judgement either (a second review).
    ['an unreadable proof', () => 'garbage'],
  ] as const) {
    it(`the victim's copy inside the grace window, with ${what}, after a thief bound the session: reuse, the session dies (native and OAuth)`, async () => {
      const app = await createApp(server, { name: `dpop-thief-first-${what.replace(/\W+/g, '-')}` }); // default grace 10 s
      const thief = holder();
      const native = await issue(server, app, 'vic');
      const stolen = await refresh(native.refreshToken, proof(thief, htuRefresh));
      expect(stolen.status).toBe(200);
      const victim = await refresh(native.refreshToken, victimProof());
      expect(victim.status, victim.text).toBe(400);
      expect(victim.body.detail).toBe('reused');
      expect((await refresh(stolen.body.refreshToken, proof(thief, htuRefresh))).body.detail).toBe('revoked');

      const htuToken = `${ISSUER}/oauth2/token`;
      const oauth = await issue(server, app, 'vic2');
      const taken = await oauthRefresh(app, oauth.refreshToken, proof(thief, htuToken));
      expect(taken.status).toBe(200);
      const sent = victimProof();
      const back = await oauthRefresh(app, oauth.refreshToken, sent === undefined || sent === 'garbage' ? sent : proof(holder(), htuToken));
      expect(back.status, back.text).toBe(400);
      expect(back.body.error).toBe('invalid_grant');
      expect((await oauthRefresh(app, taken.body.refresh_token, proof(thief, htuToken))).body.error).toBe('invalid_grant');
      const events = (await server.call('GET', '/admin/events?limit=1000', { headers: admin })).body.events as { event: string; appId: string; sessionId: string }[];
      const sessions = [native, oauth].map((p) => decodeJwtPart(p.accessToken, 1).sid);
      expect(events.filter((e) => e.appId === app.id && e.event === 'reuse_detected').map((e) => e.sessionId).sort()).toEqual(sessions.sort());
    });
  }

  it('htu is compared as written: userinfo, backslashes, numeric host shorthands, default ports are not this endpoint', async () => {
    const app = await createApp(server, { name: 'dpop-htu' });
    const key = holder();
    const pair = await issue(server, app, 'hal', { dpopJkt: key.jkt });
    for (const htu of ['http://evil:pw@rotor.test/v1/refresh', 'http:\\\\rotor.test\\v1\\refresh', 'http://rotor.test:80/v1/refresh', ' http://rotor.test/v1/refresh', 'http://rotor.test/v1/refresh#x', 'http://rotor.test/V1/refresh']) {
      const res = await refresh(pair.refreshToken, proof(key, htu));
      expect(res.body.code, htu).toBe('invalid_dpop_proof');
    }
    expect((await refresh(pair.refreshToken, proof(key, 'HTTP://ROTOR.TEST/v1/refresh'))).status).toBe(200); // scheme and host case only
  });

  it('OAuth introspection needs client authentication, also for a public client (RFC 7662 §2.1)', async () => {
    const app = await createApp(server, { name: 'dpop-introspect' });
    const pair = await issue(server, app);
    const bare = await server.call('POST', '/oauth2/introspect', { form: { token: pair.refreshToken, client_id: app.id } });
    expect(bare.status).toBe(401);
    expect(bare.body.error).toBe('invalid_client');
    const meta = await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`);
    expect(meta.body.introspection_endpoint_auth_methods_supported).not.toContain('none');
    expect((await server.call('POST', '/oauth2/introspect', { form: { token: pair.refreshToken, client_id: app.id, client_secret: app.appKey } })).body.active).toBe(true);
  });

  it('a scope on the refresh grant is judged after the proof: a bound token without its key learns nothing from it, and nothing is consumed', async () => {
    const app = await createApp(server, { name: 'dpop-scope' });
    const key = holder();
    const pair = await issue(server, app, 'alice', { dpopJkt: key.jkt, claims: { scope: 'read write' } });
    const scoped = (dpop: string | undefined, scope: string) => server.call('POST', '/oauth2/token', {
      form: { grant_type: 'refresh_token', refresh_token: pair.refreshToken, client_id: app.id, scope }, headers: dpop === undefined ? {} : { dpop },
    });
    // Before, a broader scope was answered invalid_scope before the proof was asked for: a live-token oracle.
    for (const attempt of [undefined, proof(holder(), `${ISSUER}/oauth2/token`)]) {
      const refused = await scoped(attempt, 'admin');
      expect(refused.status).toBe(400);
      expect(refused.body.error).toBe('invalid_dpop_proof');
    }
    const broader = await scoped(proof(key, `${ISSUER}/oauth2/token`), 'admin');
    expect(broader.status).toBe(400);
    expect(broader.body.error).toBe('invalid_scope');
    // Neither the refusals nor that proof consumed anything: the session renews with its key, scope kept.
    const renewed = await scoped(proof(key, `${ISSUER}/oauth2/token`), 'read');
    expect(renewed.status, renewed.text).toBe(200);
    expect(renewed.body.scope).toBe('read write');
    expect(renewed.body.token_type).toBe('DPoP');
  });

  it('server nonces: use_dpop_nonce with a DPoP-Nonce, then the proof with that nonce works; a stale or forged nonce is refused', async () => {
    const app = await createApp(server, { name: 'dpop-nonce', policy: { dpopNonce: true, reuseGrace: 0 } });
    const key = holder();
    const pair = await issue(server, app, 'erin', { dpopJkt: key.jkt });
    const first = await refresh(pair.refreshToken, proof(key, htuRefresh));
    expect(first.status).toBe(401);
    expect(first.body.code).toBe('use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce');
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect((await refresh(pair.refreshToken, proof(key, htuRefresh, { nonce: `${nonce!.slice(0, -2)}AA` }))).body.code).toBe('use_dpop_nonce');
    const ok = await refresh(pair.refreshToken, proof(key, htuRefresh, { nonce: nonce! }));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{32}$/); // the next one, ahead of time
    const oauth = await oauthRefresh(app, ok.body.refreshToken, proof(key, `${ISSUER}/oauth2/token`));
    expect(oauth.status).toBe(400);
    expect(oauth.body.error).toBe('use_dpop_nonce');
    expect(oauth.headers.get('dpop-nonce')).toBeTruthy();
  });

  it('metadata: each app\'s RFC 8414 document names its issuer, its own JWKS and the DPoP algorithms; the root names no JWKS', async () => {
    const app = await createApp(server, { name: 'dpop-meta' });
    const meta = await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`);
    expect(meta.body).toMatchObject({
      issuer: `${ISSUER}/apps/${app.id}`, jwks_uri: `${ISSUER}/v1/apps/${app.id}/jwks.json`, token_endpoint: `${ISSUER}/oauth2/token`,
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA', 'RS256', 'PS256'],
    });
    expect((await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.name}`)).status).toBe(404);
    expect((await server.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id.toLowerCase()}`)).status).toBe(404);
    const root = await server.call('GET', '/.well-known/oauth-authorization-server');
    expect(root.body.issuer).toBe(ISSUER);
    expect(root.body).not.toHaveProperty('jwks_uri');
  });

  it('tenants cannot impersonate each other: app A cannot mint client_id, cnf or another audience\'s token for B', async () => {
    const a = await createApp(server, { name: 'tenant-a' });
    const b = await createApp(server, { name: 'tenant-b' });
    for (const claims of [{ client_id: b.id }, { cnf: { jkt: 'x' } }]) {
      const res = await server.call('POST', `/v1/apps/${a.name}/sessions`, { json: { subject: 'mallory', claims }, headers: { authorization: `Bearer ${a.appKey}` } });
      expect(res.status).toBe(400);
    }
    // Even with B's audience, A's token names A as its issuer and client, and only A's JWKS holds its key.
    const forged = await issue(server, a, 'admin', { audience: b.id });
    const payload = decodeJwtPart(forged.accessToken, 1);
    expect(payload).toMatchObject({ iss: `${ISSUER}/apps/${a.id}`, client_id: a.id, aud: b.id });
    const bJwks = (await server.call('GET', `/v1/apps/${b.id}/jwks.json`)).body;
    expect(bJwks.keys.map((k: { kid: string }) => k.kid)).not.toContain(decodeJwtPart(forged.accessToken, 0).kid);
  });

  it('an issuer configured with its default port: proofs for the endpoint as a URL parser writes it refresh; the htu check stays on', async () => {
    const portIssuer = 'https://rotor.test:443';
    const other = await startTestServer({ env: { ROTOR_ISSUER: portIssuer } });
    try {
      const app = await createApp(other, { name: 'dpop-port', policy: { reuseGrace: 0 } });
      const key = holder();
      const meta = await other.call('GET', `/.well-known/oauth-authorization-server/apps/${app.id}`);
      // What a client derives from the metadata (oauth4webapi: the URL's origin and path).
      const endpoint = new URL(meta.body.token_endpoint.replace('/oauth2/token', '/v1/refresh'));
      const htu = `${endpoint.origin}${endpoint.pathname}`;
      expect(htu).toBe('https://rotor.test/v1/refresh');
      const pair = await issue(other, app, 'alice', { dpopJkt: key.jkt });
      const call = (dpop: string, token: string) => other.call('POST', '/v1/refresh', { json: { refreshToken: token }, headers: { dpop } });
      expect((await call(proof(key, 'https://evil.example:443/v1/refresh'), pair.refreshToken)).status).toBe(401);
      const renewed = await call(proof(key, htu), pair.refreshToken);
      expect(renewed.status, renewed.text).toBe(200);
    } finally {
      await other.close();
    }
  });

  it('too many proofs waiting: 503 server_busy with Retry-After in each API\'s envelope, counted, and nothing consumed', async () => {
    const app = await createApp(server, { name: 'dpop-busy', policy: { reuseGrace: 0 } });
    const pair = await issue(server, app);
    const key = holder();
    const limit = proofVerifier.maxOwed;
    proofVerifier.maxOwed = 0; // as if a flood of proofs were already waiting
    try {
      const native = await refresh(pair.refreshToken, proof(key, htuRefresh));
      expect(native.status, native.text).toBe(503);
      expect(native.body).toMatchObject({ code: 'server_busy', status: 503 });
      expect(native.headers.get('retry-after')).toBe('1');
      const oauth = await oauthRefresh(app, pair.refreshToken, proof(key, `${ISSUER}/oauth2/token`));
      expect(oauth.status, oauth.text).toBe(503);
      expect(oauth.body.error).toBe('temporarily_unavailable');
      expect(oauth.headers.get('retry-after')).toBe('1');
      // A refresh without a proof has nothing to wait for.
      const bearerApp = await createApp(server, { name: 'dpop-busy-bearer', policy: { reuseGrace: 0 } });
      expect((await refresh((await issue(server, bearerApp)).refreshToken)).status).toBe(200);
    } finally {
      proofVerifier.maxOwed = limit;
    }
    // Neither the token nor the proofs' key was used: the session is still unbound, at its first token.
    const other = holder();
    const after = await refresh(pair.refreshToken, proof(other, htuRefresh));
    expect(after.status, after.text).toBe(200);
    expect(decodeJwtPart(after.body.accessToken, 1).cnf).toEqual({ jkt: other.jkt });
    expect((await server.call('GET', '/metrics')).text).toMatch(/rotor_busy_refusals_total 2\n/);
    // One summary line for the operator, not a line per refused request.
    const lines = server.logs.map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.event === 'server_busy')).toEqual([expect.objectContaining({ level: 40, refused: 1 })]);
    expect(lines.filter((l) => l.status === 503 && l.level >= 40)).toEqual([]);
  });

  it('a client that leaves while its proof waits to be checked consumes nothing, on /v1/refresh and /oauth2/token', async () => {
    const app = await createApp(server, { name: 'dpop-gone', policy: { reuseGrace: 0 } });
    const key = holder();
    const now = Math.floor(Date.now() / 1000);
    // Proofs of another client, queued first: the verifier works through them (a few hundred ms) before
    // it reaches the leaving client's, so that client is surely gone by the time its rotation would be written.
    const flooder = holder();
    const queue = (count: number) => Array.from({ length: count }, () => proofVerifier.check(proof(flooder, htuRefresh), { htm: 'POST', htu: htuRefresh, nowSeconds: now }));
    const leaves = async (path: string, body: string, contentType: string, dpop: string) => {
      const { connect } = await import('node:net');
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nDPoP: ${dpop}\r\n\r\n${body}`);
      let answered = '';
      socket.on('data', (chunk) => { answered += String(chunk); });
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
      return () => answered;
    };

    const native = await issue(server, app);
    const oauth = await issue(server, app, 'bob');
    const flood = queue(3000);
    const nativeAnswer = await leaves('/v1/refresh', JSON.stringify({ refreshToken: native.refreshToken }), 'application/json', proof(key, htuRefresh));
    const oauthAnswer = await leaves('/oauth2/token', new URLSearchParams({ grant_type: 'refresh_token', refresh_token: oauth.refreshToken, client_id: app.id }).toString(),
      'application/x-www-form-urlencoded', proof(key, `${ISSUER}/oauth2/token`));
    // Both proofs were queued behind the flood: when it is checked, so are they, and their requests went on.
    const results = await Promise.all(flood);
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(nativeAnswer()).toBe('');
    expect(oauthAnswer()).toBe('');
    // Nothing was consumed: without grace, a committed rotation would make each of these a reuse (and revoke the session).
    const again = await refresh(native.refreshToken, proof(key, htuRefresh));
    expect(again.status, again.text).toBe(200);
    const oauthAgain = await oauthRefresh(app, oauth.refreshToken, proof(key, `${ISSUER}/oauth2/token`));
    expect(oauthAgain.status, oauthAgain.text).toBe(200);
  }, 60_000);

  it('a stolen bound token with proofs that do not name its key: refused at once, never holding the owner\'s places in the verifier', async () => {
    const app = await createApp(server, { name: 'dpop-thief', policy: { reuseGrace: 0 } });
    const owner = holder();
    const pair = await issue(server, app, 'alice', { dpopJkt: owner.jkt });
    // A verifier busy for a few hundred ms with other clients' proofs: whatever waits for it waits long.
    const now = Math.floor(Date.now() / 1000);
    const other = holder();
    const flood = Array.from({ length: 3000 }, () => proofVerifier.check(proof(other, htuRefresh), { htm: 'POST', htu: htuRefresh, nowSeconds: now }));
    // The thief has the token, not the key: proofs of its own key, or naming no usable key at all, twenty
    // of each at once, all refused without waiting (found by an outside review: a header without a jwk
    // once waited in the queue like a real proof).
    const thief = holder();
    const signed = (header: string) => {
      const input = `${Buffer.from(header).toString('base64url')}.${b64({ jti: randomUUID(), htm: 'POST', htu: htuRefresh, iat: now })}`;
      return `${input}.${cryptoSign('sha256', Buffer.from(input), { key: thief.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    const nested = `${'['.repeat(1300)}${']'.repeat(1300)}`;
    const kinds: [string, () => string, string][] = [
      ['its own key', () => proof(thief, htuRefresh), 'the proof is not made with the key the session is bound to'],
      ['no jwk', () => signed('{"typ":"dpop+jwt","alg":"ES256"}'), 'the proof carries no jwk'],
      ['a jwk array', () => signed('{"typ":"dpop+jwt","alg":"ES256","jwk":[]}'), 'the proof carries no jwk'],
      ['nested members', () => signed(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":${nested},"y":"y"}}`), 'the jwk is not a valid public key'],
      ['kty constructor', () => signed('{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"constructor"}}'), 'the jwk is not a valid public key'],
      ['a header that is not JSON', () => `${Buffer.from('not json').toString('base64url')}.e30.AA`, 'the proof is not a compact JWS'],
      ['no dot', () => 'AAAA', 'the proof is not a compact JWS'],
    ];
    for (const [what, make, detail] of kinds) {
      const stolen = await Promise.all(Array.from({ length: 20 }, () => refresh(pair.refreshToken, make())));
      expect(stolen.map((r) => r.status), what).toEqual(stolen.map(() => 401));
      expect(new Set(stolen.map((r) => r.body.detail)), what).toEqual(new Set([detail]));
      // SPEC §3: the refusal is the usual one, challenge included, in each API's envelope.
      expect(new Set(stolen.map((r) => r.headers.get('www-authenticate'))), what).toEqual(new Set([expect.stringMatching(/^DPoP error="invalid_dpop_proof"/)]));
      const oauth = await oauthRefresh(app, pair.refreshToken, make());
      expect([oauth.status, oauth.body.error], `oauth ${what}`).toEqual([400, 'invalid_dpop_proof']);
    }
    // Still behind the flood: the owner's refresh waits its turn, but no place of its session is taken.
    const owned = refresh(pair.refreshToken, proof(owner, htuRefresh));
    const results = await Promise.all(flood);
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    const answer = await owned;
    expect(answer.status, answer.text).toBe(200);
  }, 60_000);

  // Last in this file: the process's verifier then serves from the pool for 30 s.
  it('the proof-signature thread dies: the operator is told (a log line, rotor_dpop_verifier_failures_total), and refreshes go on', async () => {
    const app = await createApp(server, { name: 'dpop-verifier-dies', policy: { reuseGrace: 0 } });
    const key = holder();
    const first = await refresh((await issue(server, app)).refreshToken, proof(key, htuRefresh));
    expect(first.status).toBe(200);
    // A fault from outside: the thread is stopped under the verifier's feet (its handle is private).
    const thread = (proofVerifier as unknown as { worker: Worker | null }).worker;
    expect(thread).not.toBeNull();
    await thread!.terminate();
    await new Promise((r) => setImmediate(r));
    const second = await refresh(first.body.refreshToken, proof(key, htuRefresh));
    expect(second.status, second.text).toBe(200);
    // The pool's answers are the signature's own: a proof by another key is still refused.
    expect((await refresh(second.body.refreshToken, proof(holder(), htuRefresh))).status).toBe(401);
    const metrics = (await server.call('GET', '/metrics')).text;
    expect(metrics).toMatch(/rotor_dpop_verifier_failures_total\{failure="exited"\} 1/);
    const line = server.logs.map((l) => JSON.parse(l)).find((l) => l.event === 'dpop_verifier_failed');
    expect(line).toMatchObject({ level: 40, failure: 'exited' });
  });
});
