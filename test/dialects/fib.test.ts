import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FixedClock } from '../../src/domain/clock.js';
import { blake2b } from '@noble/hashes/blake2.js';
import { fibLoginDigest } from '../../src/domain/subjects.js';
import { admin, createApp, decodeJwtPart, issue, startTestServer, type TestServer } from '../helpers/server.js';

/** SPEC §4.4's public example data. */
const SEED = '413b285d1819a6166b0daa762bb6bef2d082cffb9a13ce041cb0fda5e2f06dc3';
const PUBLIC = '7fbedb314a9b0c00caef967ac5cabb982ec45da828a0c58a9aafc854f32422ac';
const ALICE = 'alice@wonderland.space';
const ALICE_SIG = '57e7115dfb9faa9add2d2ceb321c20db8c1e7f468d2ffc122793fa61e8ed61581580faaeae83a07fe857894bb33defd61c4ba099b981020146fe8d2be00e630a';
const BOB = 'bob@wonderland.space';
const BOB_SIG = 'c7126087ca5b91fe0466dee18cdcf9a084c03458691a77da84c5d05a869e1285af9082f915e6546f529363035329e6f9ea94c4098e92c633eb095e351ebbc30c';

const BASE = '/auth/api/v1/authentication-management';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ok = (accessToken: string, refreshToken: string, expirationTime = 300) =>
  `{"status":{"code":200,"name":"OK"},"data":{"accessToken":"${accessToken}","refreshToken":"${refreshToken}","expirationTime":${expirationTime}}}`;
const error = (code: number, name: string, message: string) => `{"status":{"code":${code},"name":"${name}","message":"${message}"},"data":null}`;
const INVALID_TOKEN = error(401, 'UNAUTHORIZED', 'Invalid or expired token');
const NO_HEADER = error(401, 'UNAUTHORIZED', 'Missing or invalid Authorization header');
// oracle: fraud-intelligence-limited/fil-documentation src/api-specification/auth-controller/authorizing-a-user-in-the-system.md:88
const BAD_SIGNATURE = error(422, 'UNPROCESSABLE_ENTITY', 'User signature either could not be decoded or verified, or the authPublicKeyHex string is not valid.');
const NO_SUBJECT = error(404, 'NOT_FOUND', 'Subject not found');

const privateFromSeed = (seedHex: string) =>
  createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]), format: 'der', type: 'pkcs8' });
const rawPublic = (key: ReturnType<typeof createPublicKey>) => Buffer.from((key.export({ format: 'jwk' }).x as string), 'base64url').toString('hex');

/**
 * FIB's current Node example, as written there: Ed25519 over the plain BLAKE2b-256 of the e-mail.
 * oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:64-79
 */
function signEmailLikeFibsNodeExample(email: string, authPrivateKeyHex: string): string {
  const key = createPrivateKey({ key: Buffer.from('302e020100300506032b657004220420' + authPrivateKeyHex.slice(0, 64), 'hex'), format: 'der', type: 'pkcs8' });
  const digest = Buffer.from(blake2b(new TextEncoder().encode(email), { dkLen: 32 }));
  return sign(null, digest, key).toString('hex');
}

/** Without `typ`, which the formats owe (FIB's samples carry `"typ":"JWT"`; see the todo at the end). */
const headerWithoutTyp = (token: string) => {
  const { typ, ...rest } = decodeJwtPart(token, 0);
  expect([undefined, 'JWT']).toContain(typ);
  return rest;
};

describe('fib dialect', () => {
  let server: TestServer;
  let clock: FixedClock;
  let fib: Awaited<ReturnType<typeof createApp>>;

  const putSubject = (app: string, subject: string, body: Record<string, unknown>) =>
    server.call('PUT', `/admin/apps/${app}/subjects/${encodeURIComponent(subject)}`, { json: body, headers: admin });
  const login = (body: unknown, prefix = '') => server.call('POST', `${prefix}${BASE}/session`, { json: body });
  const refresh = (authorization: string | null, prefix = '') =>
    server.call('PATCH', `${prefix}${BASE}/session`, { headers: authorization === null ? {} : { authorization } });
  const logout = (authorization: string | null, prefix = '') =>
    server.call('POST', `${prefix}${BASE}/logout`, { headers: authorization === null ? {} : { authorization } });

  beforeAll(async () => {
    clock = new FixedClock(Date.UTC(2026, 3, 1, 9, 0, 0));
    server = await startTestServer({ clock });
    fib = await createApp(server, { name: 'fib', profile: 'fib' });
    for (const subject of [ALICE, BOB]) {
      const res = await putSubject('fib', subject, { claims: { acc: `acc-${subject.slice(0, 3)}`, role: 'user' }, ed25519PublicKey: PUBLIC });
      expect(res.status).toBe(200);
    }
  });
  afterAll(async () => { await server.close(); });

  it('the SPEC key pair and vectors are what they claim (digest[31] |= 1 matters for bob)', () => {
    const key = privateFromSeed(SEED);
    // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:117-120
    expect(rawPublic(createPublicKey(key))).toBe(PUBLIC);
    // Alice's digest already ends in an odd byte: both forms are the same message.
    expect(fibLoginDigest(ALICE, 'plain')).toEqual(fibLoginDigest(ALICE, 'iroha'));
    expect(sign(null, fibLoginDigest(ALICE, 'plain'), key).toString('hex')).toBe(ALICE_SIG);
    // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:87
    expect(signEmailLikeFibsNodeExample(ALICE, SEED)).toBe(ALICE_SIG);
    // Bob's does not: SPEC's vector is the Iroha form, FIB's Node example signs the plain one.
    expect(sign(null, fibLoginDigest(BOB, 'iroha'), key).toString('hex')).toBe(BOB_SIG);
    expect(verify(null, fibLoginDigest(BOB, 'plain'), createPublicKey(key), Buffer.from(BOB_SIG, 'hex'))).toBe(false);
    expect(signEmailLikeFibsNodeExample(BOB, SEED)).toBe(sign(null, fibLoginDigest(BOB, 'plain'), key).toString('hex'));
    expect(signEmailLikeFibsNodeExample(BOB, SEED)).not.toBe(BOB_SIG);
  });

  it("logs in with the plain digest of FIB's Python and Node examples and with the Iroha form of its Kotlin SDK", async () => {
    // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:8 (signature = Hex(Ed25519-Sign(key, BLAKE2b-256(UTF-8(email)))))
    // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:39-40 (Python: the plain digest)
    // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:96-105 (Kotlin: the Iroha SDK hashes inside sign)
    const key = privateFromSeed(SEED);
    const plain = signEmailLikeFibsNodeExample(BOB, SEED);
    expect((await login({ email: BOB, signature: plain, authPublicKeyHex: PUBLIC })).status).toBe(200);
    expect((await login({ email: BOB, signature: BOB_SIG, authPublicKeyHex: PUBLIC })).status).toBe(200);
    // Across many addresses (about half of them end in an even digest byte), both forms log in.
    let differ = 0;
    for (let i = 0; i < 24; i++) {
      const email = `user${i}@wonderland.space`;
      expect((await putSubject('fib', email, { ed25519PublicKey: PUBLIC })).status).toBe(200);
      const forms = new Set([signEmailLikeFibsNodeExample(email, SEED), sign(null, fibLoginDigest(email, 'iroha'), key).toString('hex')]);
      if (forms.size === 2) differ += 1;
      for (const signature of forms) {
        const res = await login({ email, signature, authPublicKeyHex: PUBLIC });
        expect(res.status, email).toBe(200);
      }
    }
    expect(differ).toBeGreaterThan(0);
    // A signature of either form by another key, or of another address, still does not.
    const other = generateKeyPairSync('ed25519');
    expect((await login({ email: BOB, signature: sign(null, fibLoginDigest(BOB, 'plain'), other.privateKey).toString('hex'), authPublicKeyHex: PUBLIC })).text).toBe(BAD_SIGNATURE);
    expect((await login({ email: BOB, signature: signEmailLikeFibsNodeExample('user0@wonderland.space', SEED), authPublicKeyHex: PUBLIC })).text).toBe(BAD_SIGNATURE);
  });

  it('logs in with both SPEC test vectors and issues the FIB layout (EdDSA, kid, acjti = access jti)', async () => {
    const kid = (await server.call('GET', '/admin/apps/fib/keys', { headers: admin })).body.keys[0].kid;
    const jwks = (await server.call('GET', '/v1/apps/fib/jwks.json')).body;
    const publicKey = createPublicKey({ key: jwks.keys.find((k: any) => k.kid === kid), format: 'jwk' });
    for (const [email, signature] of [[ALICE, ALICE_SIG], [BOB, BOB_SIG]] as const) {
      const res = await login({ email, signature, authPublicKeyHex: PUBLIC });
      expect(res.status, email).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const { accessToken, refreshToken } = res.body.data;
      expect(res.text).toBe(ok(accessToken, refreshToken));
      const now = Math.floor(clock.now() / 1000);
      for (const token of [accessToken, refreshToken]) {
        expect(headerWithoutTyp(token)).toEqual({ alg: 'EdDSA', kid });
        const [h, p, s] = token.split('.') as [string, string, string];
        expect(verify(null, Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))).toBe(true);
      }
      const access = decodeJwtPart(accessToken, 1);
      expect(Object.keys(access)).toEqual(['acc', 'sub', 'role', 'exp', 'jti']);
      expect(access).toEqual({ acc: `acc-${email.slice(0, 3)}`, sub: email, role: 'user', exp: now + 300, jti: access.jti });
      expect(access.jti).toMatch(UUID);
      const rt = decodeJwtPart(refreshToken, 1);
      expect(Object.keys(rt)).toEqual(['sub', 'acjti', 'exp', 'jti']);
      expect(rt).toEqual({ sub: email, acjti: access.jti, exp: now + 86400, jti: rt.jti });
      expect(rt.jti).toMatch(UUID);
      expect(rt.jti).not.toBe(access.jti);
    }
  });

  async function aliceSession(prefix = '') {
    const res = await login({ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC }, prefix);
    expect(res.status).toBe(200);
    return res.body.data as { accessToken: string; refreshToken: string };
  }

  it('refreshes with the refresh token in Authorization, Bearer-prefixed or raw', async () => {
    const first = await aliceSession();
    clock.advance(10);
    const bearer = await refresh(`Bearer ${first.refreshToken}`);
    expect(bearer.status).toBe(200);
    expect(bearer.headers.get('cache-control')).toBe('no-store');
    const second = bearer.body.data;
    expect(bearer.text).toBe(ok(second.accessToken, second.refreshToken));
    const access = decodeJwtPart(second.accessToken, 1);
    expect(decodeJwtPart(second.refreshToken, 1).acjti).toBe(access.jti);
    expect(access.exp).toBe(Math.floor(clock.now() / 1000) + 300);

    const raw = await refresh(second.refreshToken);
    expect(raw.status).toBe(200);
    expect(raw.text).toBe(ok(raw.body.data.accessToken, raw.body.data.refreshToken));
  });

  it('accepts an empty body sent as application/json on refresh and logout', async () => {
    const s = await aliceSession();
    const headers = { authorization: `Bearer ${s.refreshToken}`, 'content-type': 'application/json' };
    const res = await server.call('PATCH', `${BASE}/session`, { headers, body: '' });
    expect(res.status).toBe(200);
    const out = await server.call('POST', `${BASE}/logout`, { headers: { authorization: `Bearer ${res.body.data.accessToken}`, 'content-type': 'application/json' }, body: '' });
    expect(out.status).toBe(200);
  });

  it('with a grace window set by policy, a retried refresh returns the same successor and an access token paired to it', async () => {
    const graced = await createApp(server, { name: 'fib-grace', profile: 'fib', policy: { reuseGrace: 10 } });
    const gina = 'gina@wonderland.space';
    await putSubject('fib-grace', gina, { ed25519PublicKey: PUBLIC });
    const signature = sign(null, fibLoginDigest(gina, 'iroha'), privateFromSeed(SEED)).toString('hex');
    const s = (await login({ email: gina, signature, authPublicKeyHex: PUBLIC })).body.data;
    const first = await refresh(`Bearer ${s.refreshToken}`);
    const retry = await refresh(`Bearer ${s.refreshToken}`);
    expect(retry.status).toBe(200);
    expect(retry.body.data.refreshToken).toBe(first.body.data.refreshToken);
    const acjti = decodeJwtPart(retry.body.data.refreshToken, 1).acjti;
    expect(decodeJwtPart(retry.body.data.accessToken, 1).jti).toBe(acjti);
    // That access token locates the session: logout with it works.
    expect((await logout(`Bearer ${retry.body.data.accessToken}`)).status).toBe(200);
    expect(graced.profile).toBe('fib');
  });

  it('reuse of a consumed refresh token revokes the session (grace 0)', async () => {
    const first = await aliceSession();
    const next = (await refresh(`Bearer ${first.refreshToken}`)).body.data;
    const replay = await refresh(`Bearer ${first.refreshToken}`);
    expect(replay.status).toBe(401);
    expect(replay.text).toBe(INVALID_TOKEN);
    const successor = await refresh(`Bearer ${next.refreshToken}`);
    expect(successor.status).toBe(401);
    expect(successor.text).toBe(INVALID_TOKEN);
    expect((await logout(`Bearer ${next.accessToken}`)).text).toBe(INVALID_TOKEN);
  });

  it('logout with the access token revokes the session; an older access token of the session still finds it', async () => {
    const first = await aliceSession();
    const next = (await refresh(`Bearer ${first.refreshToken}`)).body.data;
    // The first access token's jti names a consumed record: it still locates the live session.
    const res = await logout(`Bearer ${first.accessToken}`);
    expect(res.status).toBe(200);
    expect(res.text).toBe('{"status":{"code":200,"name":"OK"},"data":{}}');
    expect((await refresh(`Bearer ${next.refreshToken}`)).text).toBe(INVALID_TOKEN);
    expect((await logout(next.accessToken)).text).toBe(INVALID_TOKEN);
  });

  it('never takes a refresh token for an access token or the other way round', async () => {
    const s = await aliceSession();
    const asRefresh = await refresh(`Bearer ${s.accessToken}`);
    expect(asRefresh.status).toBe(401);
    expect(asRefresh.text).toBe(INVALID_TOKEN);
    const asAccess = await logout(`Bearer ${s.refreshToken}`);
    expect(asAccess.status).toBe(401);
    expect(asAccess.text).toBe(INVALID_TOKEN);
    expect((await refresh(`Bearer ${s.refreshToken}`)).status).toBe(200);
  });

  it('401 for a missing or unparsable Authorization header and for expired or forged tokens', async () => {
    const s = await aliceSession();
    for (const header of [null, '', 'Bearer', 'Bearer ', 'Bearer a b', 'Basic']) {
      const res = await refresh(header);
      expect(res.status, String(header)).toBe(401);
      expect([NO_HEADER, INVALID_TOKEN]).toContain(res.text);
    }
    expect((await refresh(null)).text).toBe(NO_HEADER);
    expect((await refresh('Bearer a b')).text).toBe(NO_HEADER);
    expect((await logout(null)).text).toBe(NO_HEADER);
    const [h, p, sig] = s.refreshToken.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BA' : 'AA'}`;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwtPart(s.refreshToken, 1), sub: BOB })).toString('base64url')}.${sig}`;
    for (const token of [flipped, tampered, 'garbage', 'rt_' + 'A'.repeat(43)]) {
      const res = await refresh(`Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.text).toBe(INVALID_TOKEN);
    }
    clock.advance(300);
    expect((await logout(`Bearer ${s.accessToken}`)).text).toBe(INVALID_TOKEN);
    clock.advance(86400 - 300);
    const expired = await refresh(`Bearer ${s.refreshToken}`);
    expect(expired.status).toBe(401);
    expect(expired.text).toBe(INVALID_TOKEN);
  });

  it('422 when a login signature or key cannot be decoded or does not verify; 404 for an unknown subject; 400 for a malformed body', async () => {
    const other = generateKeyPairSync('ed25519');
    const otherHex = rawPublic(other.publicKey);
    const bad: [unknown, string][] = [
      [{ email: ALICE, signature: BOB_SIG, authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      [{ email: ALICE, signature: ALICE_SIG.replace(/^57/, '58'), authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      // A valid signature by another key: the key is not the one registered for alice.
      [{ email: ALICE, signature: sign(null, fibLoginDigest(ALICE, 'plain'), other.privateKey).toString('hex'), authPublicKeyHex: otherHex }, BAD_SIGNATURE],
      // oracle: fraud-intelligence-limited/fil-documentation src/api-specification/auth-controller/authorizing-a-user-in-the-system.md:87
      [{ email: 'nobody@wonderland.space', signature: ALICE_SIG, authPublicKeyHex: PUBLIC }, NO_SUBJECT],
      // A signature that cannot be decoded, and a public key that is not one, are FIB's 422 too.
      // oracle: fraud-intelligence-limited/fil-documentation src/api-specification/auth-controller/authorizing-a-user-in-the-system.md:88
      [{ email: ALICE, signature: 'zz', authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      [{ email: ALICE, signature: '', authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      [{ email: ALICE, signature: `${ALICE_SIG}00`, authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      [{ email: ALICE, signature: ALICE_SIG.replace(/^57/, 'zz'), authPublicKeyHex: PUBLIC }, BAD_SIGNATURE],
      [{ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: 'abc' }, BAD_SIGNATURE],
      [{ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: `${PUBLIC}00` }, BAD_SIGNATURE],
      [{ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: 'g'.repeat(64) }, BAD_SIGNATURE],
      // oracle: fraud-intelligence-limited/fil-documentation src/api-specification/auth-controller/authorizing-a-user-in-the-system.md:86 (400 Bad request)
      [{ signature: ALICE_SIG, authPublicKeyHex: PUBLIC }, error(400, 'BAD_REQUEST', 'email is required and must be a string')],
      [{ email: ALICE, signature: 5, authPublicKeyHex: PUBLIC }, error(400, 'BAD_REQUEST', 'signature is required and must be a string')],
      [[ALICE], error(400, 'BAD_REQUEST', 'The request body must be a JSON object')],
    ];
    for (const [body, expected] of bad) {
      const res = await login(body);
      expect(res.text, JSON.stringify(body)).toBe(expected);
      expect(res.status).toBe(JSON.parse(expected).status.code);
    }
    const notJson = await server.call('POST', `${BASE}/session`, { body: '{"email":', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.text).toBe(error(400, 'BAD_REQUEST', 'the request body is not valid JSON'));

    // Any registered key works the same way.
    await putSubject('fib', 'carol@wonderland.space', { ed25519PublicKey: otherHex.toUpperCase() });
    const carol = await login({ email: 'carol@wonderland.space', signature: sign(null, fibLoginDigest('carol@wonderland.space', 'iroha'), other.privateKey).toString('hex'), authPublicKeyHex: otherHex });
    expect(carol.status).toBe(200);
  });

  it('a deleted subject is 404 on refresh, logout and login; a disabled one is 401', async () => {
    await putSubject('fib', 'dora@wonderland.space', { ed25519PublicKey: PUBLIC });
    const key = privateFromSeed(SEED);
    const doraLogin = { email: 'dora@wonderland.space', signature: sign(null, fibLoginDigest('dora@wonderland.space', 'iroha'), key).toString('hex'), authPublicKeyHex: PUBLIC };
    const s = (await login(doraLogin)).body.data;
    const deleted = await server.call('DELETE', '/admin/apps/fib/subjects/dora%40wonderland.space', { headers: admin });
    expect(deleted.status).toBe(204);
    for (const res of [await refresh(`Bearer ${s.refreshToken}`), await logout(`Bearer ${s.accessToken}`), await login(doraLogin)]) {
      expect(res.status).toBe(404);
      expect(res.text).toBe(NO_SUBJECT);
    }

    await putSubject('fib', 'dora@wonderland.space', { ed25519PublicKey: PUBLIC });
    const again = (await login(doraLogin)).body.data;
    await putSubject('fib', 'dora@wonderland.space', { status: 'disabled' });
    const disabled = await refresh(`Bearer ${again.refreshToken}`);
    expect(disabled.status).toBe(401);
    expect((await login(doraLogin)).status).toBe(401);
  });

  it('refuses tokens of a native app, of another dialect and of another FIB app (through /fib/{app})', async () => {
    const native = await createApp(server, { name: 'fib-native', policy: { alg: 'EdDSA' } });
    const abit = await createApp(server, { name: 'fib-abit', profile: 'abitmedia' });
    const other = await createApp(server, { name: 'fib-other', profile: 'fib' });
    for (const app of [native, abit]) {
      const pair = await issue(server, app, ALICE);
      expect((await refresh(`Bearer ${pair.refreshToken}`)).text).toBe(INVALID_TOKEN);
      expect((await logout(`Bearer ${pair.accessToken}`)).text).toBe(INVALID_TOKEN);
    }
    const foreign = await issue(server, other, ALICE);
    expect((await refresh(`Bearer ${foreign.refreshToken}`, '/fib/fib')).text).toBe(INVALID_TOKEN);
    expect((await logout(`Bearer ${foreign.accessToken}`, '/fib/fib')).text).toBe(INVALID_TOKEN);
    // Untouched: it renews under its own base URL.
    expect((await refresh(`Bearer ${foreign.refreshToken}`, '/fib/fib-other')).status).toBe(200);
    expect((await refresh(`Bearer ${foreign.refreshToken}`, '/fib/fib-native')).text).toBe(error(404, 'NOT_FOUND', 'App not found'));
  });

  it('with several FIB apps, a root login goes to the app where that e-mail has that key (the latest registration); /fib/{app} names it', async () => {
    const kidOf = async (app: string) => (await server.call('GET', `/admin/apps/${app}/keys`, { headers: admin })).body.keys[0].kid;
    const rootLogin = async (email: string, signature: string) => {
      const res = await login({ email, signature, authPublicKeyHex: PUBLIC });
      expect(res.status).toBe(200);
      return decodeJwtPart(res.body.data.accessToken, 0).kid;
    };
    clock.advance(1);
    await putSubject('fib-other', ALICE, { ed25519PublicKey: PUBLIC });
    expect(await rootLogin(ALICE, ALICE_SIG)).toBe(await kidOf('fib-other'));
    clock.advance(1);
    await putSubject('fib', ALICE, { ed25519PublicKey: PUBLIC });
    expect(await rootLogin(ALICE, ALICE_SIG)).toBe(await kidOf('fib'));
    // A registration of another key does not attract the login.
    clock.advance(1);
    await putSubject('fib-other', ALICE, { ed25519PublicKey: 'ab'.repeat(32) });
    expect(await rootLogin(ALICE, ALICE_SIG)).toBe(await kidOf('fib'));
    // The base URL names the app outright: there alice's key is now another one.
    const named = await login({ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC }, '/fib/fib-other');
    expect(named.text).toBe(BAD_SIGNATURE);
    // Bob is known to "fib" only: the root finds it.
    expect(await rootLogin(BOB, BOB_SIG)).toBe(await kidOf('fib'));
  });

  it('hostile requests get a 4xx in the FIB envelope, never a 5xx', async () => {
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`;
    const cases: [string, string, RequestInit, number][] = [
      ['PATCH', 'session', { headers: { authorization: `Bearer ${none}` } }, 401],
      ['PATCH', 'session', { headers: { authorization: 'x'.repeat(9000) } }, 401],
      ['POST', 'logout', { headers: { authorization: 'Bearer a.b.c' } }, 401],
      ['POST', 'session', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'e'.repeat(5000), signature: 'a'.repeat(128), authPublicKeyHex: 'b'.repeat(64) }) }, 400],
      ['POST', 'session', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'x\u0000', signature: 'a'.repeat(128), authPublicKeyHex: 'b'.repeat(64) }) }, 400],
      ['POST', 'session', { headers: { 'content-type': 'application/json' }, body: '{"__proto__":{"admin":true}}' }, 400],
      ['POST', 'session', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: ALICE, signature: 'a'.repeat(70 * 1024), authPublicKeyHex: PUBLIC }) }, 413],
      ['POST', 'session', { headers: { 'content-type': 'text/plain' }, body: 'hi' }, 400],
      ['POST', 'session', {}, 400],
    ];
    for (const [method, path, init, status] of cases) {
      const res = await fetch(`${server.url}${BASE}/${path}`, { method, ...init });
      const body = await res.json() as { status: { code: number; name: string }; data: unknown };
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(body.status.code).toBe(status);
      expect(body.data).toBeNull();
    }
  });
});

describe('fib dialect: the login replays, so it is limited like a password and never logged', () => {
  // The signature covers the e-mail alone: whoever saw one login can replay it for as long as the key
  // stays registered (FIB's design). Rotor limits it like a password login: attempts per ip, and
  // failures per (ip, e-mail).
  // oracle: fraud-intelligence-limited/fil-documentation src/tutorials-api/signing-user-email-addresses.md:8 (nothing but the e-mail is signed)
  // A fresh server (fresh budgets) for each test, its clock inside one rate-limit window.
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer({ clock: new FixedClock(Date.UTC(2026, 3, 1, 9, 0, 0)), env: { ROTOR_RATE_LIMITS: 'loginPerIp=12,loginFailuresPerUser=3' } });
    await createApp(server, { name: 'fib-rl', profile: 'fib' });
    for (const subject of [ALICE, BOB]) {
      await server.call('PUT', `/admin/apps/fib-rl/subjects/${encodeURIComponent(subject)}`, { json: { ed25519PublicKey: PUBLIC }, headers: admin });
    }
  });
  afterEach(async () => { await server.close(); });
  const login = (body: unknown, prefix = '') => server.call('POST', `${prefix}${BASE}/session`, { json: body });

  it('failures per (ip, e-mail) lock that e-mail out for this ip, even with the right signature; others go on', async () => {
    const wrong = { email: ALICE, signature: BOB_SIG, authPublicKeyHex: PUBLIC };
    for (const body of [wrong, { ...wrong, signature: 'zz' }, { ...wrong, email: 'ALICE@wonderland.space' }]) {
      expect((await login(body)).status).toBeGreaterThanOrEqual(400);
    }
    const locked = await login({ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC });
    expect(locked.status).toBe(429);
    expect(locked.body.status).toMatchObject({ code: 429, name: 'TOO_MANY_REQUESTS' });
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    // The per-app base URL shares the budget.
    expect((await login({ email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC }, '/fib/fib-rl')).status).toBe(429);
    // Bob is not locked out by Alice's failures.
    expect((await login({ email: BOB, signature: BOB_SIG, authPublicKeyHex: PUBLIC })).status).toBe(200);
  });

  it('replays of one observed login are limited per ip, and no signature or token reaches the logs', async () => {
    const observed = { email: BOB, signature: BOB_SIG, authPublicKeyHex: PUBLIC };
    // One failing login (its signature, though wrong, is as secret as a password guess), then replays.
    const attempts = [{ ...observed, signature: ALICE_SIG }, ...Array(14).fill(observed)];
    const statuses: number[] = [];
    const tokens: string[] = [];
    for (const body of attempts) {
      const res = await login(body);
      statuses.push(res.status);
      if (res.status === 200) tokens.push(res.body.data.accessToken, res.body.data.refreshToken);
    }
    // 12 attempts per ip and window, then 429 for the rest of it.
    expect(statuses).toEqual([422, ...Array(11).fill(200), 429, 429, 429]);
    const logs = server.logs.join('');
    expect(logs).toContain('login_failed');
    for (const secret of [BOB_SIG, ALICE_SIG, ...tokens]) expect(logs).not.toContain(secret);
  });
});


describe('fib dialect, store down', () => {
  it('answers 503 SERVICE_UNAVAILABLE with Retry-After on refresh, login and logout', async () => {
    const server = await startTestServer();
    try {
      await createApp(server, { name: 'fib-down', profile: 'fib' });
      await server.call('PUT', `/admin/apps/fib-down/subjects/${ALICE}`, { json: { ed25519PublicKey: PUBLIC }, headers: admin });
      const s = (await server.call('POST', `${BASE}/session`, { json: { email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC } })).body.data;
      await server.rotor.close();
      for (const res of [
        await server.call('PATCH', `${BASE}/session`, { headers: { authorization: `Bearer ${s.refreshToken}` } }),
        await server.call('POST', `${BASE}/session`, { json: { email: ALICE, signature: ALICE_SIG, authPublicKeyHex: PUBLIC } }),
        await server.call('POST', `${BASE}/logout`, { headers: { authorization: `Bearer ${s.accessToken}` } }),
      ]) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(res.text).toBe(error(503, 'SERVICE_UNAVAILABLE', 'Service temporarily unavailable, retry shortly'));
      }
    } finally {
      await server.close();
    }
  });
});
