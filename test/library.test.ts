import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign as cryptoSign } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRotor, rotorPlugin, rotorWellKnown, type RotorInstance } from '../src/index.js';
import { ROOT } from './helpers/cli.js';

/**
 * SPEC §10: Rotor inside a host's own fastify server. The host has routes and a 404 of its own; Rotor's
 * native and OAuth APIs live under `/auth`, the engine's issuer is the public URL of that prefix, and
 * the host serves the RFC 8414 documents at its root with `rotorWellKnown`.
 */
describe('Rotor as a library', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-library-'));
  let rotor: RotorInstance;
  let host: FastifyInstance;
  let base: string;
  let issuer: string;

  beforeAll(async () => {
    host = Fastify();
    host.get('/hello', async () => ({ hello: 'from the host' }));
    host.setNotFoundHandler((_request, reply) => reply.code(404).send({ host: 'not here' }));
    // The port comes first: the issuer must be the public URL of the prefix.
    await host.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(host.server.address() as { port: number }).port}`;
    await host.close();
    issuer = `${base}/auth`;
    rotor = await createRotor({ databaseUrl: `sqlite:${join(dir, 'rotor.db')}`, masterKey: randomBytes(32).toString('base64'), issuer });
    host = Fastify();
    host.get('/hello', async () => ({ hello: 'from the host' }));
    host.setNotFoundHandler((_request, reply) => reply.code(404).send({ host: 'not here' }));
    await host.register(rotorPlugin, { prefix: '/auth', rotor, corsOrigins: ['https://shop.example'] });
    await host.register(rotorWellKnown, { rotor });
    await host.listen({ host: '127.0.0.1', port: Number(new URL(base).port) });
  }, 30_000);
  afterAll(async () => {
    await host?.close();
    await rotor?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('issues through the engine, refreshes through the host\'s server under its prefix, verifies against the host\'s discovery', async () => {
    const { app, appKey } = await rotor.apps.create({ name: 'shop', policy: { reuseGrace: 0 } });
    expect(appKey).toMatch(/^ak_/);
    expect(JSON.stringify(await rotor.keys.list('shop'))).not.toMatch(/privateSealed|private/);
    const pair = await rotor.issue('shop', { subject: 'alice@example.com', claims: { role: 'admin' } });
    expect(pair).toMatchObject({ tokenType: 'Bearer', sessionId: expect.any(String), refreshToken: expect.stringMatching(/^rt_/) });

    const res = await post('/auth/v1/refresh', { refreshToken: pair.refreshToken });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const pair2 = await res.json();
    expect(pair2.sessionId).toBe(pair.sessionId);

    // RFC 8414 §3.1: the document of issuer {base}/auth/apps/{id} is at the host's root, path inserted.
    const meta = await (await fetch(`${base}/.well-known/oauth-authorization-server/auth/apps/${app.id}`)).json();
    expect(meta).toMatchObject({
      issuer: `${issuer}/apps/${app.id}`, jwks_uri: `${issuer}/v1/apps/${app.id}/jwks.json`, token_endpoint: `${issuer}/oauth2/token`,
    });
    const shared = await (await fetch(`${base}/.well-known/oauth-authorization-server/auth`)).json();
    expect(shared.issuer).toBe(issuer);
    expect(shared.jwks_uri).toBeUndefined();
    const { payload } = await jwtVerify(pair2.accessToken, createRemoteJWKSet(new URL(meta.jwks_uri)), {
      issuer: meta.issuer, audience: app.id, typ: 'at+jwt',
    });
    expect(payload).toMatchObject({ sub: 'alice@example.com', role: 'admin', sid: pair.sessionId });

    // The OAuth refresh grant at the endpoint the document names.
    const token = await fetch(meta.token_endpoint, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: pair2.refreshToken, client_id: app.id }),
    });
    expect(token.status).toBe(200);
    const grant = await token.json();
    // Reuse, through the engine this time: the session dies everywhere.
    await expect(rotor.refresh(pair2.refreshToken)).rejects.toMatchObject({ code: 'invalid_refresh_token' });
    expect((await post('/auth/v1/refresh', { refreshToken: grant.refresh_token })).status).toBe(400);
    expect((await rotor.introspect(grant.access_token, 'shop')).active).toBe(false);
    const [session] = await rotor.sessions.list('shop', 'alice@example.com');
    expect(session).toMatchObject({ id: pair.sessionId, state: 'revoked', revokeReason: 'reuse', rotations: 2 });
  });

  it('the engine alone: issue, refresh (grace retry returns the same successor), introspect, revoke, keys', async () => {
    await rotor.apps.create({ name: 'engine-only' });
    const pair = await rotor.issue('engine-only', { subject: 'bob', ip: '198.51.100.4', userAgent: 'app/1.0' });
    const next = await rotor.refresh(pair.refreshToken!);
    const again = await rotor.refresh(pair.refreshToken!);
    expect(again.refreshToken).toBe(next.refreshToken);
    expect(await rotor.introspect(next.accessToken, 'engine-only')).toMatchObject({ active: true, sub: 'bob', sid: pair.sessionId });
    const before = (await rotor.keys.jwks('engine-only')).keys.map((k) => k.kid);
    const rotated = await rotor.keys.rotate('engine-only');
    const after = (await rotor.keys.jwks('engine-only')).keys.map((k) => k.kid);
    expect(after).toEqual(expect.arrayContaining([...before, rotated.kid]));
    await rotor.revoke(next.refreshToken!);
    await expect(rotor.refresh(next.refreshToken!)).rejects.toMatchObject({ code: 'invalid_refresh_token' });
    await expect(rotor.issue('no-such-app', { subject: 'x' })).rejects.toMatchObject({ code: 'app_not_found' });
    await expect(rotor.issue('engine-only', { subject: 'x', claims: { sub: 'forged' } })).rejects.toMatchObject({ code: 'invalid_request' });
  });

  it('a confidential app\'s tokens need its backend: refresh with `app` through the engine, the app key over HTTP', async () => {
    const { appKey } = await rotor.apps.create({ name: 'backend', public: false });
    const pair = await rotor.issue('backend', { subject: 'carol' });
    await expect(rotor.refresh(pair.refreshToken!)).rejects.toMatchObject({ code: 'invalid_app_key' });
    const next = await rotor.refresh(pair.refreshToken!, { app: 'backend', ip: '192.0.2.1' });
    expect((await post('/auth/v1/refresh', { refreshToken: next.refreshToken })).status).toBe(401);
    expect((await post('/auth/v1/refresh', { refreshToken: next.refreshToken }, { authorization: `Bearer ${appKey}` })).status).toBe(200);
  });

  it('DPoP proofs name the public URL under the prefix (ROTOR_ISSUER + path), never the host\'s bare path', async () => {
    await rotor.apps.create({ name: 'bound', policy: { reuseGrace: 0 } });
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
    const jkt = createHash('sha256').update(`{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`).digest('base64url');
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const proof = (htu: string) => {
      const input = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk })}.${b64({ jti: randomUUID(), htm: 'POST', htu, iat: Math.floor(Date.now() / 1000) })}`;
      return `${input}.${cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    const pair = await rotor.issue('bound', { subject: 'dora', dpopJkt: jkt });
    const wrong = await post('/auth/v1/refresh', { refreshToken: pair.refreshToken }, { dpop: proof(`${base}/v1/refresh`) });
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).code).toBe('invalid_dpop_proof');
    const right = await post('/auth/v1/refresh', { refreshToken: pair.refreshToken }, { dpop: proof(`${issuer}/v1/refresh`) });
    expect(right.status, await right.clone().text()).toBe(200);
    expect((await right.json()).tokenType).toBe('DPoP');
  });

  it('the host keeps its own routes and 404; under the prefix Rotor answers 404, 405, 413, 415, CORS and no admin API', async () => {
    expect(await (await fetch(`${base}/hello`)).json()).toEqual({ hello: 'from the host' });
    expect(await (await fetch(`${base}/nope`)).json()).toEqual({ host: 'not here' });
    const missing = await fetch(`${base}/auth/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const wrongMethod = await fetch(`${base}/auth/v1/refresh`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    for (const path of ['/auth/admin/apps', '/auth/console', '/auth/metrics', '/auth/.well-known/jwks.json', '/.well-known/jwks.json']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(404);
    }
    const big = await post('/auth/v1/refresh', { refreshToken: 'x'.repeat(70 * 1024) });
    expect(big.status).toBe(413);
    const plain = await fetch(`${base}/auth/v1/revoke`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"token":"x"}' });
    expect(plain.status).toBe(415);
    const preflight = await fetch(`${base}/auth/v1/refresh`, {
      method: 'OPTIONS', headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    const foreign = await post('/auth/v1/refresh', { refreshToken: 'rt_x' }, { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);
    expect((await foreign.json()).code).toBe('origin_not_allowed');
    // The plugin's requests are counted in the engine's metrics, for the host's /metrics.
    expect(await rotor.metrics.registry.metrics()).toMatch(/rotor_http_requests_total\{route="\/auth\/v1\/refresh",method="POST",status="200"\}/);
  });

  it('createRotor refuses what it cannot work with, with one line saying what to write', async () => {
    await expect(createRotor({ databaseUrl: 'sqlite::memory:', masterKey: '', issuer })).rejects.toThrow(/masterKey is required/);
    await expect(createRotor({ databaseUrl: 'sqlite::memory:', masterKey: 'c2hvcnQ=', issuer })).rejects.toThrow(/32 bytes/);
    await expect(createRotor({ databaseUrl: 'mysql://x', masterKey: randomBytes(32).toString('base64'), issuer })).rejects.toThrow(/ROTOR_DATABASE_URL/);
    await expect(createRotor({ databaseUrl: 'sqlite::memory:', masterKey: randomBytes(32), issuer: '/auth' })).rejects.toThrow(/public URL of the prefix/);
    const memory = await createRotor({ databaseUrl: 'sqlite::memory:', masterKey: randomBytes(32), issuer, clock: () => Date.UTC(2030, 0, 1) });
    await memory.apps.create({ name: 'timeless' });
    const pair = await memory.issue('timeless', { subject: 's' });
    expect(JSON.parse(Buffer.from(pair.accessToken.split('.')[1]!, 'base64url').toString()).iat).toBe(Date.UTC(2030, 0, 1) / 1000);
    // Limits are checked as ROTOR_RATE_LIMITS is: a host's typo fails at register, not as an unlimited server.
    await expect(Fastify().register(rotorPlugin, { rotor: memory, rateLimits: { ipv6Prefix: 8 } }).ready()).rejects.toThrow(/ipv6Prefix is a prefix length from 16 to 128/);
    await expect(Fastify().register(rotorPlugin, { rotor: memory, rateLimits: { refreshPerIp: 0 } }).ready()).rejects.toThrow(/refreshPerIp must be a positive integer/);
    await memory.close();
    await expect(Fastify().register(rotorPlugin, { rotor: {} as RotorInstance }).ready()).rejects.toThrow(/instance made by createRotor/);
  });

  it('importing the package entry has no side effects: no file, no output, no handle keeping the process alive', () => {
    const entry = join(ROOT, 'dist', 'src', 'index.js');
    expect(existsSync(entry), 'npm run build first').toBe(true);
    const cwd = mkdtempSync(join(tmpdir(), 'rotor-import-'));
    try {
      const started = Date.now();
      const run = spawnSync(process.execPath, ['--input-type=module', '-e',
        `const m = await import(${JSON.stringify(`file://${entry}`)}); console.log(Object.keys(m).sort().join(','));`], { cwd, encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '' } });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout.trim()).toBe('ConfigError,RotorError,createRotor,rotorPlugin,rotorWellKnown');
      expect(readdirSync(cwd)).toEqual([]);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
    // Typed: package.json names the entry and its declarations, and tsc wrote them.
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(manifest.exports['.']).toEqual({ types: './dist/src/index.d.ts', import: './dist/src/index.js', default: './dist/src/index.js' });
    expect(manifest.types).toBe('./dist/src/index.d.ts');
    expect(readFileSync(join(ROOT, 'dist', 'src', 'index.d.ts'), 'utf8')).toMatch(/createRotor/);
  });
});
