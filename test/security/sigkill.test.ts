import { createPublicKey, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MasterKey } from '../../src/crypto/master_key.js';
import { floliveFormat } from '../../src/dialects/flolive/format.js';
import { RefreshIds } from '../../src/domain/refresh_ids.js';
import { buildRotor, freePort, startRotor, type RotorProcess } from '../helpers/rotor_process.js';

/**
 * Issue 6 item 3, SECURITY-CASES F-06 / F-07 and N1–N4, N6: real `rotor serve` processes under refresh
 * load, killed with SIGKILL at seeded random moments, restarted on the same SQLite file.
 */

const ADMIN = 'sigkill-admin-token-0123456789';
const SEED = Number(process.env.SIGKILL_SEED ?? 0x5eed);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with SIGKILL_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const payloadOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8'));
/**
 * The session and generation a refresh token names (SPEC §2.9), read with the master key as Rotor reads
 * it: an opaque one's MAC-checked body, a floLIVE JWT's sealed `jti` against its `sid`.
 */
function chainOf(ids: RefreshIds, token: string): { sessionId: string; generation: number } {
  const presented = token.startsWith('rt_')
    ? ids.readOpaque(token)
    : ids.readChainId('flolive', floliveFormat.chainId!, String(payloadOf(token).jti), String(payloadOf(token).sid));
  if (presented?.kind !== 'chain' || !('id' in presented.session)) throw new Error('not a token of a session chain');
  return { sessionId: presented.session.id, generation: presented.generation };
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  let parsed: any;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

async function sigkill(proc: RotorProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.child.once('exit', () => resolve()));
  proc.child.kill('SIGKILL');
  await exited;
}

/** What the database file holds after a crash, read with better-sqlite3 while no server runs. */
function inspect(file: string) {
  const db = new Database(file);
  try {
    const integrity = db.pragma('integrity_check', { simple: true });
    const one = <T>(sql: string) => db.prepare(sql).get() as T;
    const all = <T>(sql: string) => db.prepare(sql).all() as T[];
    return {
      integrity,
      // One row per session: a chain cannot fork (one generation per row); nothing is kept per token.
      tokenRows: one<{ n: number }>('SELECT COUNT(*) AS n FROM refresh_tokens').n,
      sessionsWithoutChain: one<{ n: number }>('SELECT COUNT(*) AS n FROM sessions WHERE generation < 1 OR refresh_expires_at IS NULL').n,
      orphanSessions: one<{ n: number }>('SELECT COUNT(*) AS n FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM apps a WHERE a.id = s.app_id)').n,
      generationOf: (id: string) => (db.prepare('SELECT generation FROM sessions WHERE id = ?').get(id) as { generation: number } | undefined)?.generation,
      activeKeys: all<{ app_id: string; n: number }>("SELECT app_id, COUNT(*) AS n FROM signing_keys WHERE state = 'active' GROUP BY app_id"),
      close: () => db.close(),
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

describe('SIGKILL under load (F-06, F-07)', () => {
  let main = '';
  let dispose = () => {};
  const dirs: string[] = [];
  const running = new Set<RotorProcess>();

  beforeAll(async () => {
    ({ main, dispose } = await buildRotor());
  }, 180_000);
  afterAll(async () => {
    for (const proc of running) await sigkill(proc);
    dispose();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function environment() {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-sigkill-'));
    dirs.push(dir);
    const file = join(dir, 'rotor.db');
    return {
      file,
      env: {
        ROTOR_DATABASE_URL: `sqlite:${file}`, ROTOR_ADMIN_TOKEN: ADMIN, ROTOR_LOG_LEVEL: 'warn',
        ROTOR_MASTER_KEY: randomBytes(32).toString('base64'),
      } as Record<string, string>,
    };
  }
  async function start(env: Record<string, string>): Promise<RotorProcess> {
    const proc = await startRotor(main, env);
    running.add(proc);
    return proc;
  }
  async function kill(proc: RotorProcess) {
    await sigkill(proc);
    running.delete(proc);
  }
  const admin = { authorization: `Bearer ${ADMIN}` };

  it('refresh load over 20 sessions, kill -9 at random moments: N1–N4 hold, integrity ok, no orphans', async () => {
    const rng = prng(SEED);
    const { file, env } = environment();
    env.ROTOR_PORT = String(await freePort());
    let proc = await start(env);
    const ids = new RefreshIds(MasterKey.fromBase64(env.ROTOR_MASTER_KEY!));

    interface Client { app: string; grace: boolean; latest: string; inFlight: string | null; renewals: number; relogins: number }
    const appKeys: Record<string, string> = {};
    for (const [name, profile, reuseGrace] of [['sk-grace', 'native', 120], ['sk-strict', 'native', 0], ['sk-flo', 'flolive', 120]] as const) {
      const res = await post(proc.url, '/admin/apps', { name, profile, policy: { reuseGrace } }, admin);
      expect(res.status).toBe(201);
      appKeys[name] = res.body.appKey;
    }
    const login = async (app: string, subject: string) => {
      const res = await post(proc.url, `/v1/apps/${app}/sessions`, { subject }, { authorization: `Bearer ${appKeys[app]}` });
      expect(res.status).toBe(201);
      return res.body.refreshToken as string;
    };
    const clients: Client[] = [];
    for (let i = 0; i < 20; i += 1) {
      const app = i < 8 ? 'sk-grace' : i < 14 ? 'sk-strict' : 'sk-flo';
      clients.push({ app, grace: app !== 'sk-strict', latest: await login(app, `user-${i}`), inFlight: null, renewals: 0, relogins: 0 });
    }

    const unexpected: string[] = [];
    let budget = 0;
    /** Each client chains its latest token until the process dies or the budget runs out. */
    const drive = async (client: Client, url: string) => {
      while (budget > 0) {
        budget -= 1;
        client.inFlight = client.latest;
        let status: number;
        let body: any;
        try {
          const res = await fetch(`${url}/v1/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: client.latest }) });
          status = res.status;
          body = await res.json();
        } catch {
          return; // the process was killed: the answer never arrived; `inFlight` stays set
        }
        client.inFlight = null;
        if (status !== 200) {
          unexpected.push(`${client.app} ${status} ${JSON.stringify(body)}`);
          return;
        }
        client.latest = body.refreshToken;
        client.renewals += 1;
      }
    };

    const ROUNDS = 4;
    let lost = 0;
    let graceRetries = 0;
    let forcedRelogins = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      budget = 200;
      const url = proc.url;
      const load = Promise.all(clients.map((c) => drive(c, url)));
      await sleep(100 + Math.floor(rng() * 500));
      await kill(proc);
      await load;
      expect(unexpected).toEqual([]);

      // The file as the crash left it.
      const db = inspect(file);
      try {
        expect(db.integrity).toBe('ok');
        expect(db.tokenRows).toBe(0);
        expect(db.orphanSessions).toBe(0);
        expect(db.sessionsWithoutChain).toBe(0);
        // For lost requests that did commit, remember the generation the retry must return (F-03).
        const committedChild = new Map<Client, number>();
        for (const client of clients) {
          const { sessionId, generation } = chainOf(ids, client.latest);
          const stored = db.generationOf(sessionId);
          // N1: every token a client received with a 200 was committed before it was sent.
          expect(stored, `${client.app}: the last token received names no committed generation`).toBeGreaterThanOrEqual(generation);
          // Only a request lost in flight may have moved the chain on, and by one generation at most (N2).
          expect(stored).toBeLessThanOrEqual(generation + (client.inFlight === null ? 0 : 1));
          if (stored === generation + 1) committedChild.set(client, generation + 1);
        }
        db.close();

        proc = await start(env);
        for (const client of clients) {
          const res = await post(proc.url, '/v1/refresh', { refreshToken: client.latest });
          const child = committedChild.get(client);
          if (client.inFlight !== null) lost += 1;
          if (child !== undefined && client.grace) {
            // The response was lost after the commit: the retry returns that very successor.
            expect(res.status, JSON.stringify(res.body)).toBe(200);
            expect(chainOf(ids, res.body.refreshToken)).toEqual({ sessionId: chainOf(ids, client.latest).sessionId, generation: child });
            graceRetries += 1;
          } else if (child !== undefined) {
            // Strictly one-time: the committed rotation was lost, the parent is now reuse (documented re-login).
            expect(res.status).toBe(400);
            expect(res.body.detail).toBe('reused');
            forcedRelogins += 1;
            client.latest = await login(client.app, `user-relogin-${round}-${client.relogins++}`);
            continue;
          } else {
            // N4: the last token received (or the unanswered one, never committed) works.
            expect(res.status, `${client.app}: ${JSON.stringify(res.body)}`).toBe(200);
          }
          client.latest = res.body.refreshToken;
          client.inFlight = null;
        }
      } finally {
        try { db.close(); } catch { /* closed */ }
      }
    }
    await kill(proc);
    const end = inspect(file);
    try {
      expect(end.integrity).toBe('ok');
      expect(end.tokenRows).toBe(0);
      expect(end.sessionsWithoutChain).toBe(0);
    } finally {
      end.close();
    }
    const renewals = clients.reduce((n, c) => n + c.renewals, 0);
    expect(renewals).toBeGreaterThan(0);
    console.log(`sigkill: seed ${SEED}, ${renewals} renewals answered, ${lost} lost in flight, ${graceRetries} grace retries, ${forcedRelogins} forced re-logins`);
  }, 90_000);

  it('kill -9 during signing-key rotation: every access token ever returned verifies against the JWKS until it expires', async () => {
    const rng = prng(SEED + 1);
    const { file, env } = environment();
    env.ROTOR_PORT = String(await freePort());
    let proc = await start(env);
    const apps: Record<string, string> = {};
    for (const [name, alg] of [['kr-es', 'ES256'], ['kr-ed', 'EdDSA']] as const) {
      const res = await post(proc.url, '/admin/apps', { name, policy: { alg } }, admin);
      expect(res.status).toBe(201);
      apps[name] = res.body.appKey;
    }
    const names = Object.keys(apps);
    const returned: { app: string; token: string }[] = [];
    const rotatedKids: { app: string; kid: string }[] = [];
    const unexpected: string[] = [];

    for (let round = 0; round < 2; round += 1) {
      let stopped = false;
      const url = proc.url;
      const issuer = async (i: number) => {
        const app = names[i % names.length] as string;
        let refresh: string | null = null;
        while (!stopped) {
          try {
            const res = refresh === null
              ? await post(url, `/v1/apps/${app}/sessions`, { subject: `u${i}` }, { authorization: `Bearer ${apps[app]}` })
              : await post(url, '/v1/refresh', { refreshToken: refresh });
            if (res.status !== 200 && res.status !== 201) { unexpected.push(`${res.status} ${JSON.stringify(res.body)}`); return; }
            returned.push({ app, token: res.body.accessToken });
            refresh = res.body.refreshToken;
          } catch {
            return;
          }
        }
      };
      const rotator = async () => {
        for (let n = 0; !stopped; n += 1) {
          const app = names[n % names.length] as string;
          try {
            const res = await post(url, `/admin/apps/${app}/keys/rotate`, {}, admin);
            if (res.status !== 200) { unexpected.push(`rotate ${res.status} ${JSON.stringify(res.body)}`); return; }
            rotatedKids.push({ app, kid: res.body.kid });
          } catch {
            return;
          }
        }
      };
      const rotationsBefore = rotatedKids.length;
      const load = Promise.all([...Array.from({ length: 6 }, (_, i) => issuer(i)), rotator()]);
      // Kill mid-rotation: once this round's rotations are under way, at a seeded moment.
      for (let i = 0; i < 200 && rotatedKids.length < rotationsBefore + 2 && unexpected.length === 0; i += 1) await sleep(10);
      await sleep(Math.floor(rng() * 400));
      await kill(proc);
      stopped = true;
      await load;
      expect(unexpected).toEqual([]);
      const db = inspect(file);
      try {
        expect(db.integrity).toBe('ok');
        expect(db.activeKeys.every((k) => k.n === 1)).toBe(true);
        expect(db.activeKeys.length).toBe(names.length);
        expect(db.tokenRows).toBe(0);
        expect(db.sessionsWithoutChain).toBe(0);
      } finally {
        db.close();
      }

      proc = await start(env);
      const now = Math.floor(Date.now() / 1000);
      const jwks: Record<string, { keys: Record<string, any>[] }> = {};
      for (const app of names) jwks[app] = (await (await fetch(`${proc.url}/v1/apps/${app}/jwks.json`)).json()) as { keys: Record<string, any>[] };
      const global = (await (await fetch(`${proc.url}/.well-known/jwks.json`)).json()) as { keys: Record<string, any>[] };
      // N6: every key handed out by a rotation that answered is published.
      for (const { app, kid } of rotatedKids) expect(jwks[app]?.keys.some((k) => k.kid === kid), `rotated kid ${kid} missing`).toBe(true);
      for (const { app, token } of returned) {
        const [h, p, s] = token.split('.') as [string, string, string];
        const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        const payload = payloadOf(token);
        if (payload.exp <= now) continue; // past its expiry it need not verify
        const jwk = jwks[app]?.keys.find((k) => k.kid === header.kid);
        expect(jwk, `kid ${header.kid} of a returned token is not in ${app}'s JWKS`).toBeDefined();
        expect(global.keys.some((k) => k.kid === header.kid)).toBe(true);
        const key = createPublicKey({ key: jwk as any, format: 'jwk' });
        const data = Buffer.from(`${h}.${p}`);
        const ok = header.alg === 'ES256'
          ? cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))
          : cryptoVerify(null, data, key, Buffer.from(s, 'base64url'));
        expect(ok, `a returned ${header.alg} token does not verify against the JWKS`).toBe(true);
      }
      // And the server itself still accepts them (introspection: signature, key state, session alive).
      const sample = returned.filter((_, i) => i % Math.max(1, Math.floor(returned.length / 20)) === 0);
      for (const { app, token } of sample) {
        const res = await post(proc.url, '/v1/introspect', { token }, { authorization: `Bearer ${apps[app]}` });
        expect(res.status).toBe(200);
        expect(res.body.active, 'a returned access token is refused after the restart').toBe(true);
      }
    }
    await kill(proc);
    expect(returned.length).toBeGreaterThan(0);
    expect(rotatedKids.length).toBeGreaterThan(0);
    console.log(`sigkill/rotation: ${returned.length} access tokens verified, ${rotatedKids.length} rotations answered`);
  }, 90_000);
});
