import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SigningKey } from '../../src/crypto/signing_key.js';
import type { FixedClock } from '../../src/domain/clock.js';
import { forgeriesOf, partsOf, resigned, type Forgery } from '../helpers/forge.js';
import { admin, createApp, issue, startTestServer, type TestResponse, type TestServer } from '../helpers/server.js';

/**
 * "The decision is the same on every API" (SECURITY-CASES §0, issue 6 item 1): a representative subset of
 * the J-rows, built for each dialect's own token layout, presented to every endpoint that takes an access
 * token and to every refresh endpoint (the dialect's own, native /v1/refresh and OAuth /oauth2/token).
 * Each must be refused in that API's own envelope (SPEC §4.4), with no 5xx (P1), nothing leaked (P2),
 * the genuine token the forgery came from still alive (P4, P6: nothing consumed or revoked), and at the
 * end that genuine token still works at the endpoint itself.
 */

type App = Awaited<ReturnType<typeof createApp>>;
type Profile = 'native' | 'verifik' | 'jwtplus' | 'flolive' | 'fib' | 'abitmedia';
interface Pair { accessToken: string; refreshToken: string; sessionId: string }

const FIB = '/auth/api/v1/authentication-management';
const ABIT_INVALID = '{"success":false,"status":400,"message":"Token de refresco inválido o expirado"}';

describe('dialect matrix: forged and hostile tokens get the same decision on every API', () => {
  let server: TestServer;
  const apps = {} as Record<Profile, App>;
  const others = {} as Record<Profile, App>;
  const keys = {} as Record<Profile, SigningKey>;
  const otherKids = {} as Record<Profile, string>;
  const PROFILES: Profile[] = ['native', 'verifik', 'jwtplus', 'flolive', 'fib', 'abitmedia'];

  beforeAll(async () => {
    server = await startTestServer({ fixedClock: true });
    for (const profile of PROFILES) {
      apps[profile] = await createApp(server, { name: `mx-${profile}`, profile });
      others[profile] = await createApp(server, { name: `mx-${profile}-b`, profile });
      keys[profile] = await server.rotor.internals.keyring.activeKey(await server.rotor.apps.get(`mx-${profile}`));
      otherKids[profile] = (await server.rotor.internals.keyring.activeKey(await server.rotor.apps.get(`mx-${profile}-b`))).kid;
    }
  });
  afterAll(async () => { await server.close(); });

  const basic = (app: App) => `Basic ${Buffer.from(`${app.id}:${app.appKey}`).toString('base64')}`;
  const pairOf = async (profile: Profile, app = apps[profile]): Promise<Pair> => issue(server, app, `user-${profile}`) as Promise<Pair>;

  /** P4/P6 without side effects: native introspection of the genuine token says it is still alive (and unconsumed). */
  async function alive(token: string, app: App): Promise<boolean> {
    const res = await server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${app.appKey}` } });
    expect(res.status).toBe(200);
    return res.body.active === true;
  }

  /** P1, P2: no 5xx, no stack trace, SQL or path, and the presented token is not echoed. */
  function hygiene(res: TestResponse, token: string): void {
    expect(res.status).toBeLessThan(500);
    expect(res.text).not.toMatch(/\bat .*\.(js|ts)\b|node_modules|SELECT|sqlite|\/src\//i);
    // A JWT's payload part is not echoed either (a part of 8 characters or fewer may occur by chance).
    const p = token.trim().split('.')[1] ?? '';
    expect(p.length > 8 && res.text.includes(p), 'the token\'s payload is echoed').toBe(false);
    expect(res.text).not.toContain(token.trim());
  }

  interface Endpoint {
    name: string;
    profile: Profile;
    /** What the presented token stands for: an access token, or a refresh token. */
    kind: 'access' | 'refresh';
    /** Carried in a header: forgeries with whitespace cannot be sent. */
    inHeader?: boolean;
    present(token: string, victim: Pair, scope?: App): Promise<TestResponse>;
    refused(res: TestResponse): void;
    accepted(res: TestResponse): boolean;
  }

  const nativeRefused = (res: TestResponse) => {
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(['invalid_refresh_token', 'invalid_request']).toContain(res.body.code);
  };
  const oauthRefused = (res: TestResponse) => {
    expect(res.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(res.body.error);
  };
  /**
   * JWTPlus refuses a body that is no JWT at all with 400 and its validation errors ("This field requires a
   * valid jwt token."), and any other token with `status` and exactly `text`: one of the two, asserted whole.
   */
  const jwtplusAnswers = (status: number, text: string) => (res: TestResponse) => {
    const answer = res.status === 400 ? { status: 400, errors: Array.isArray(res.body.errors) } : { status: res.status, text: res.text };
    expect(answer).toEqual(res.status === 400 ? { status: 400, errors: true } : { status, text });
  };
  const jwtplusRefused = jwtplusAnswers(404, '{"message":"invalid refresh token"}');
  const floliveRefused = (res: TestResponse) => {
    expect([400, 401]).toContain(res.status);
    expect(res.body.errorCode).toBe(res.status === 401 ? 'AUTH_1002' : 'REQ_1001');
    expect(res.body.content).toBe('');
  };
  const verifikRefused = (res: TestResponse) => {
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'Unauthorized', message: 'Invalid or expired token.' });
  };
  const fibRefused = (res: TestResponse) => {
    expect(res.status).toBe(401);
    expect(res.body.status).toMatchObject({ code: 401, name: 'UNAUTHORIZED' });
    expect(res.body.data).toBeNull();
  };

  /** The refresh endpoints every app with refresh tokens answers on: native and OAuth. */
  const generic = (profile: Profile): Endpoint[] => [
    {
      name: `native /v1/refresh (${profile})`, profile, kind: 'refresh',
      // jwtplus apps are confidential by default: their tokens redeem here with the app key (S2-04).
      present: (token, _v, scope = apps[profile]) => server.call('POST', '/v1/refresh', {
        json: { refreshToken: token }, headers: profile === 'jwtplus' ? { authorization: `Bearer ${scope.appKey}` } : {},
      }),
      refused: nativeRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: `OAuth /oauth2/token (${profile})`, profile, kind: 'refresh',
      present: (token, _v, scope = apps[profile]) => server.call('POST', '/oauth2/token', {
        form: { grant_type: 'refresh_token', refresh_token: token }, headers: { authorization: basic(scope) },
      }),
      refused: oauthRefused,
      accepted: (res) => res.status === 200,
    },
  ];

  const endpoints: Endpoint[] = [
    {
      name: 'verifik GET /v2/auth/session', profile: 'verifik', kind: 'access', inHeader: true,
      present: (token) => server.call('GET', '/v2/auth/session?origin=refresh', { headers: { authorization: `Bearer ${token}` } }),
      refused: verifikRefused,
      accepted: (res) => res.status === 200 && typeof res.body.accessToken === 'string',
    },
    {
      // A forged token here would revoke every session of the subject: P6 (the victim stays alive) is the point.
      name: 'verifik POST /v2/auth/renew-and-revoke', profile: 'verifik', kind: 'access', inHeader: true,
      present: (token) => server.call('POST', '/v2/auth/renew-and-revoke', { headers: { authorization: token } }),
      refused: verifikRefused,
      accepted: (res) => res.status === 200 && typeof res.body.token === 'string',
    },
    {
      name: 'jwtplus POST /app/{id}/verify', profile: 'jwtplus', kind: 'access',
      present: (token, _v, scope = apps.jwtplus) => server.call('POST', `/app/${scope.id}/verify`, { json: { token }, headers: { authorization: apps.jwtplus.appKey } }),
      refused: jwtplusAnswers(200, '{"verified":false}'),
      accepted: (res) => res.text === '{"verified":true}',
    },
    {
      // Logout answers ok whatever the token (SPEC §4.4): the decision shows in P6, the victim stays alive.
      name: 'jwtplus POST /app/{id}/logout', profile: 'jwtplus', kind: 'access',
      present: (token, _v, scope = apps.jwtplus) => server.call('POST', `/app/${scope.id}/logout`, { json: { token }, headers: { authorization: apps.jwtplus.appKey } }),
      refused: jwtplusAnswers(200, '{"status":"ok"}'),
      accepted: (res) => res.text === '{"status":"ok"}',
    },
    {
      name: 'flolive PUT /api/v2/auth/token (forged access, genuine refresh)', profile: 'flolive', kind: 'access',
      present: (token, victim, scope) => server.call('PUT', scope ? `/flolive/${scope.name}/api/v2/auth/token` : '/api/v2/auth/token', {
        json: { token, refreshToken: victim.refreshToken },
      }),
      refused: floliveRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: 'fib POST …/logout', profile: 'fib', kind: 'access', inHeader: true,
      present: (token, _v, scope) => server.call('POST', `${scope ? `/fib/${scope.name}` : ''}${FIB}/logout`, { headers: { authorization: `Bearer ${token}` } }),
      refused: fibRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: 'jwtplus POST /app/{id}/renew', profile: 'jwtplus', kind: 'refresh',
      present: (token, _v, scope = apps.jwtplus) => server.call('POST', `/app/${scope.id}/renew`, {
        json: { refresh_token: token, ip: '10.0.0.1', useragent: 'matrix' }, headers: { authorization: apps.jwtplus.appKey },
      }),
      refused: jwtplusRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: 'flolive PUT /api/v2/auth/token (genuine access, forged refresh)', profile: 'flolive', kind: 'refresh',
      present: (token, victim, scope) => server.call('PUT', scope ? `/flolive/${scope.name}/api/v2/auth/token` : '/api/v2/auth/token', {
        json: { token: victim.accessToken, refreshToken: token },
      }),
      refused: floliveRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: 'fib PATCH …/session', profile: 'fib', kind: 'refresh', inHeader: true,
      present: (token, _v, scope) => server.call('PATCH', `${scope ? `/fib/${scope.name}` : ''}${FIB}/session`, { headers: { authorization: `Bearer ${token}` } }),
      refused: fibRefused,
      accepted: (res) => res.status === 200,
    },
    {
      name: 'abitmedia POST /v1/refreshToken', profile: 'abitmedia', kind: 'refresh',
      present: (token, _v, scope) => server.call('POST', `${scope ? `/abitmedia/${scope.name}` : ''}/v1/refreshToken`, { json: { refreshToken: token } }),
      refused: (res) => {
        expect(res.status).toBe(400);
        expect(res.text).toBe(ABIT_INVALID);
      },
      accepted: (res) => res.status === 200,
    },
    ...(['native', 'jwtplus', 'flolive', 'fib', 'abitmedia'] as Profile[]).flatMap(generic),
    ...PROFILES.flatMap((profile): Endpoint[] => [{
      name: `native /v1/introspect (${profile})`, profile, kind: 'access',
      present: (token, _v, scope = apps[profile]) => server.call('POST', '/v1/introspect', { json: { token }, headers: { authorization: `Bearer ${scope.appKey}` } }),
      refused: (res) => expect(res.text).toBe('{"active":false}'),
      accepted: (res) => res.status === 200 && res.body.active === true,
    }, {
      name: `OAuth /oauth2/introspect (${profile})`, profile, kind: 'access',
      present: (token, _v, scope = apps[profile]) => server.call('POST', '/oauth2/introspect', { form: { token }, headers: { authorization: basic(scope) } }),
      refused: (res) => expect(res.text).toBe('{"active":false}'),
      accepted: (res) => res.status === 200 && res.body.active === true,
    }]),
    ...PROFILES.map((profile): Endpoint => ({
      // RFC 7009: always 200, and a forged token revokes nothing (P6 shows it).
      name: `native /v1/revoke (${profile})`, profile, kind: 'access',
      present: (token) => server.call('POST', '/v1/revoke', { json: { token } }),
      refused: (res) => expect(res.status).toBe(200),
      accepted: (res) => res.status === 200,
    })),
  ];

  /** One presentation: refused in the API's envelope, hygienic, and the victim (and the other app's token) untouched. */
  async function expectRefused(endpoint: Endpoint, forgery: Forgery, victim: Pair, opts: { scope?: App; untouched?: [string, App] } = {}) {
    const res = await endpoint.present(forgery.token, victim, opts.scope);
    try {
      endpoint.refused(res);
      hygiene(res, forgery.token);
    } catch (err) {
      throw new Error(`${endpoint.name} × ${forgery.name}: ${res.status} ${res.text.slice(0, 200)}\n${String(err)}`);
    }
    const genuine = endpoint.kind === 'access' && endpoint.profile !== 'verifik' ? victim.refreshToken : endpoint.kind === 'access' ? victim.accessToken : victim.refreshToken;
    expect(await alive(genuine, apps[endpoint.profile]), `${endpoint.name} × ${forgery.name}: the genuine token died`).toBe(true);
    if (opts.untouched) expect(await alive(...opts.untouched), `${endpoint.name} × ${forgery.name}: the other app's token died`).toBe(true);
  }

  for (const endpoint of endpoints) {
    it(`${endpoint.name}: every forgery refused, then the genuine token works`, async () => {
      const { profile, kind } = endpoint;
      const key = keys[profile];
      const victim = await pairOf(profile);
      // JWTPlus refresh tokens are valid 60 s after issue: move past that so that the victim's refresh token is live.
      (server.clock as FixedClock).advance(61);
      // Verifik has no refresh token and native's is opaque: their forgeries are built from the access token.
      const base = kind === 'access' || profile === 'native' ? victim.accessToken : victim.refreshToken;
      const forgeries = forgeriesOf(base, key, otherKids[profile]).filter((f) => !(endpoint.inHeader && f.bodyOnly));
      const now = Math.floor(server.clock.now() / 1000);
      const { payload } = partsOf(base);

      // Rows that need the real key, in this layout.
      const revoking = endpoint.name.startsWith('native /v1/revoke') || endpoint.name.includes('introspect') || endpoint.name.endsWith('/logout') && profile === 'jwtplus';
      if (kind === 'access') {
        // floLIVE accepts an expired access token beside its refresh token (SPEC §4.4, flolivePermitExpiredAccess).
        if (profile !== 'flolive') {
          forgeries.push({ name: 'J-23 expired one second ago (real key)', token: resigned(base, key, { exp: now - 1 }) });
          forgeries.push({ name: 'J-23 exp = now (real key)', token: resigned(base, key, { exp: now }) });
        }
        forgeries.push({ name: 'J-23 exp missing (real key)', token: resigned(base, key, { exp: undefined }) });
        forgeries.push({ name: 'J-23 exp as a string (real key)', token: resigned(base, key, { exp: String(Number(payload.exp)) }) });
        forgeries.push({ name: 'J-23 nbf an hour ahead (real key)', token: resigned(base, key, { nbf: now + 3600 }) });
        // Revocation, introspection and JWTPlus logout take refresh tokens too (SPEC §4.1, §4.2, §4.4): there it is a valid token.
        if (profile !== 'native' && profile !== 'verifik' && !revoking) {
          forgeries.push({ name: 'J-24 the genuine refresh token as an access token', token: victim.refreshToken });
        }
      } else {
        if (profile !== 'native') forgeries.push({ name: 'J-24 the genuine access token as a refresh token', token: victim.accessToken });
      }
      if (payload.iss !== undefined) {
        forgeries.push({ name: 'J-25 another tenant\'s iss (real key)', token: resigned(base, key, { iss: `${String(payload.iss)}-b` }) });
        forgeries.push({ name: 'J-25 iss as an array (real key)', token: resigned(base, key, { iss: ['https://evil', payload.iss] }) });
      }
      if (profile === 'verifik') {
        forgeries.push({ name: 'J-24 typ at+jwt instead of JWT (real key)', token: resigned(base, key, {}, { typ: 'at+jwt' }) });
        forgeries.push({ name: 'J-24 a native access token (another profile)', token: (await pairOf('native')).accessToken });
      }
      if (profile === 'native' && kind === 'access') {
        forgeries.push({ name: 'J-24 typ missing (real key)', token: resigned(base, key, {}, { typ: undefined }) });
      }
      // A token of another profile: an HS256 dialect's token where this one is expected (treated as invalid, SPEC §4.4).
      const foreign: Profile = profile === 'flolive' ? 'abitmedia' : 'flolive';
      const foreignPair = await pairOf(foreign);
      // (The native API serves every profile: there such a token is simply genuine.)
      expect(forgeries.length, 'no forgery was built for this endpoint').toBeGreaterThan(10);
      for (const forgery of forgeries) await expectRefused(endpoint, forgery, victim);
      if (!endpoint.name.startsWith('native') && !endpoint.name.startsWith('OAuth')) {
        // Tokens of another profile (a JWT dialect's, a native opaque RT): refused here and left usable where they belong.
        const nativePair = await pairOf('native');
        const strangers: [string, string, string, App][] = [
          [`${foreign} ${kind} token`, kind === 'access' ? foreignPair.accessToken : foreignPair.refreshToken, foreignPair.refreshToken, apps[foreign]],
          [`native ${kind} token`, kind === 'access' ? nativePair.accessToken : nativePair.refreshToken, nativePair.refreshToken, apps.native],
        ];
        for (const [name, token, liveness, owner] of strangers) {
          await expectRefused(endpoint, { name: `SPEC §4.4 a ${name}`, token }, victim, { untouched: [liveness, owner] });
        }
      } else if (endpoint.name.startsWith('OAuth')) {
        // OAuth: the client is this app, so another profile's token is another app's token.
        await expectRefused(endpoint, { name: `SPEC §4.2 a ${foreign} refresh token`, token: foreignPair.refreshToken }, victim, { untouched: [foreignPair.refreshToken, apps[foreign]] });
      }
      // Another app's token never crosses (SPEC §4.4; R-11): the dialect path (or OAuth client) names this app.
      const scoped = endpoint.name.startsWith('jwtplus') || endpoint.name.startsWith('OAuth') || endpoint.name.includes('introspect') || ['flolive', 'fib', 'abitmedia'].includes(profile) && !endpoint.name.startsWith('native');
      if (scoped) {
        const theirs = await pairOf(profile, others[profile]);
        (server.clock as FixedClock).advance(61);
        const token = kind === 'access' ? theirs.accessToken : theirs.refreshToken;
        // Present B's token through A's scope (A's path, A's app key, A's client credentials).
        const res = await endpoint.present(token, victim, apps[profile]);
        endpoint.refused(res);
        hygiene(res, token);
        expect(await alive(kind === 'access' ? (profile === 'verifik' ? theirs.accessToken : theirs.refreshToken) : token, others[profile])).toBe(true);
      }

      // P4 at the endpoint itself: the genuine token the forgeries came from still works here.
      const genuine = kind === 'access' ? victim.accessToken : victim.refreshToken;
      const res = await endpoint.present(genuine, victim);
      expect(endpoint.accepted(res), `${endpoint.name}: genuine token: ${res.status} ${res.text.slice(0, 200)}`).toBe(true);
      // A genuine revocation takes the whole session down (R-08): what was refused above was really a refusal.
      if (endpoint.name.startsWith('native /v1/revoke')) {
        expect(await alive(profile === 'verifik' ? victim.accessToken : victim.refreshToken, apps[profile])).toBe(false);
      }
    });
  }

  // Last, since it changes every app's keys.
  it('J-27/J-28 a revoked signing key: its tokens are refused by every API at once, it leaves the JWKS, new pairs work', async () => {
    const before = {} as Record<Profile, Pair>;
    for (const profile of PROFILES) before[profile] = await pairOf(profile);
    (server.clock as FixedClock).advance(61);
    for (const profile of PROFILES) {
      const res = await server.call('POST', `/admin/apps/mx-${profile}/keys/${keys[profile].kid}/revoke`, { headers: admin });
      expect(res.status).toBe(200);
      const jwks = await server.call('GET', `/v1/apps/mx-${profile}/jwks.json`);
      expect(jwks.text).not.toContain(keys[profile].kid);
    }
    for (const endpoint of endpoints) {
      const { profile, kind } = endpoint;
      // Native refresh tokens are opaque (no key signed them): a key revocation is about the JWTs it signed.
      if (kind === 'refresh' && profile === 'native') continue;
      const token = kind === 'access' ? before[profile].accessToken : before[profile].refreshToken;
      const res = await endpoint.present(token, before[profile]);
      try {
        endpoint.refused(res);
        hygiene(res, token);
      } catch (err) {
        throw new Error(`${endpoint.name} with a token of the revoked key: ${res.status} ${res.text.slice(0, 200)}\n${String(err)}`);
      }
      expect(await alive(token, apps[profile]), `${endpoint.name}: a token of the revoked key is still active`).toBe(false);
    }
    // A new active key signs new pairs, and they renew.
    (server.clock as FixedClock).advance(61);
    for (const endpoint of endpoints.filter((e) => e.kind === 'refresh')) {
      const fresh = await pairOf(endpoint.profile);
      (server.clock as FixedClock).advance(61);
      expect(endpoint.accepted(await endpoint.present(fresh.refreshToken, fresh)), endpoint.name).toBe(true);
    }
  });
});
