import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signJwt } from '../src/crypto/jwt.js';
import { MasterKey } from '../src/crypto/master_key.js';
import { newAppKey, newOpaqueRefreshToken, opaqueRefreshId } from '../src/crypto/secrets.js';
import { generateKeyMaterial, SigningKey } from '../src/crypto/signing_key.js';
import { newId } from '../src/domain/ids.js';
import type { Profile } from '../src/domain/policy.js';
import { Profiles } from '../src/domain/profiles.js';
import { dialectDomains } from '../src/dialects/index.js';

const PROFILES = new Profiles(dialectDomains());
import { SQLITE_MIGRATIONS } from '../src/store/sqlite/schema.js';
import { decodeJwtPart, startTestServer, type TestServer } from './helpers/server.js';

/**
 * Issue 12 "Upgrade without logging anyone out": a database as the release before one-row-per-session
 * left it (schema version 4: a row per refresh token), with live sessions of every profile, built here
 * from that schema and that token format — a chain of three records per session: two consumed, one live.
 * After the upgrade every pre-upgrade live token refreshes once and the session continues on the new
 * scheme; a retried one inside grace gets the very same successor; a pre-upgrade ancestor is still reuse.
 */
const OLD_VERSION = 4;
const HOUR = 3_600_000;

interface OldSession {
  profile: Profile;
  appId: string;
  appName: string;
  appKey: string;
  sessionId: string;
  /** Tokens oldest first; the last one is live. */
  tokens: string[];
  accessToken: string;
}

/** Builds the version-4 database and returns what clients of the old release hold. */
function buildOldDatabase(path: string, masterKey: MasterKey): OldSession[] {
  const db = new Database(path);
  const now = Date.now();
  const sessions: OldSession[] = [];
  try {
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    SQLITE_MIGRATIONS.slice(0, OLD_VERSION).forEach((migration, i) => {
      db.exec(migration);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(i + 1, now);
    });
    const insertApp = db.prepare('INSERT INTO apps (id, name, profile, public, policy, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, \'\', ?, ?)');
    const insertAppKey = db.prepare('INSERT INTO app_keys (id, app_id, secret_hash, created_at) VALUES (?, ?, ?, ?)');
    const insertKey = db.prepare(`INSERT INTO signing_keys (kid, app_id, alg, state, public_jwk, private_sealed, created_at) VALUES (?, ?, ?, 'active', ?, ?, ?)`);
    const insertSubject = db.prepare(`INSERT INTO subjects (app_id, subject, claims, status, created_at, updated_at) VALUES (?, ?, '{}', 'active', ?, ?)`);
    const insertSession = db.prepare(`INSERT INTO sessions (id, app_id, subject, claims, audience, created_at, last_renewed_at, expires_at, ip, user_agent,
      last_ip, last_user_agent, revoked_at, revoke_reason, horizon_at) VALUES (?, ?, ?, '{}', NULL, ?, ?, NULL, '192.0.2.1', 'old/1', '192.0.2.1', 'old/1', NULL, NULL, ?)`);
    const insertRefresh = db.prepare(`INSERT INTO refresh_tokens (id, session_id, app_id, parent_id, issued_at, not_before, expires_at, consumed_at, successor_id, successor_sealed)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`);

    for (const profile of ['native', 'jwtplus', 'flolive', 'fib', 'abitmedia'] as Profile[]) {
      // JWTPlus without its 60 s not-before, so that the test can renew the new tokens at once.
      const policy = { ...PROFILES.defaults(profile), ...(profile === 'native' ? {} : { reuseGrace: 0 }), ...(profile === 'jwtplus' ? { refreshNotBefore: 0 } : {}) };
      const appId = newId();
      const appName = `old-${profile}`;
      insertApp.run(appId, appName, profile, profile === 'jwtplus' ? 0 : 1, JSON.stringify(policy), now - 2 * HOUR, now - 2 * HOUR);
      const keyId = newId();
      const { appKey, secretHash } = newAppKey(keyId);
      insertAppKey.run(keyId, appId, secretHash, now - 2 * HOUR);
      const kid = newId();
      const material = generateKeyMaterial(policy.alg, kid);
      insertKey.run(kid, appId, policy.alg, material.publicJwk ? JSON.stringify(material.publicJwk) : null, masterKey.seal('signing-key', material.secret, kid), now - 2 * HOUR);
      const key = new SigningKey(kid, policy.alg, material.secret);

      const sessionId = newId(now - HOUR);
      const subject = profile === 'fib' ? 'alice@wonderland.space' : 'alice';
      insertSubject.run(appId, subject, now - HOUR, now - HOUR);
      insertSession.run(sessionId, appId, subject, now - HOUR, now - 600_000, now + 3 * HOUR);
      // The three generations as that release wrote them: id and token in its format.
      const s = (ms: number) => Math.floor(ms / 1000);
      const exp = now + 2 * HOUR;
      const chain = [0, 1, 2].map((i) => {
        const issued = now - HOUR + i * 600_000;
        switch (profile) {
          case 'native': { const token = newOpaqueRefreshToken(); return { id: opaqueRefreshId(token), token, issued }; }
          case 'jwtplus': { const jid = newId(issued); return { id: jid, issued, token: signJwt(key, { exp: s(exp), iat: s(issued), iss: appName, jid, nbf: s(issued) + 60, type: 'refresh' }, { typ: 'JWT' }) }; }
          case 'flolive': { const jti = newId(issued); return { id: jti, issued, token: signJwt(key, { sid: sessionId, jti, iat: s(issued), exp: s(exp), typ: 'Refresh' }) }; }
          case 'fib': { const acjti = randomUUID(); return { id: acjti, issued, token: signJwt(key, { sub: subject, acjti, exp: s(exp), jti: randomUUID() }) }; }
          default: { const jti = newId(issued); return { id: jti, issued, token: signJwt(key, { sub: subject, sid: sessionId, jti, iat: s(issued), exp: s(exp), typ: 'refresh' }) }; }
        }
      });
      chain.forEach((r, i) => {
        const next = chain[i + 1];
        insertRefresh.run(r.id, sessionId, appId, i === 0 ? null : chain[i - 1]!.id, r.issued, r.issued, exp, next ? next.issued : null, next ? next.id : null);
      });
      // The live pair's access token as that release minted it (JWTPlus and FIB name the record's id).
      const live = chain[2]!;
      const accessPayload: Record<string, unknown> = profile === 'jwtplus'
        ? { aud: 'web', exp: s(now + HOUR), iat: s(live.issued), iss: appName, jid: live.id, nbf: s(live.issued), sub: subject }
        : profile === 'fib'
          ? { sub: subject, exp: s(now + 300_000), jti: live.id }
          : { sid: sessionId, sub: subject, jti: newId(), iat: s(live.issued), exp: s(now + HOUR), ...(profile === 'native' ? { iss: 'http://rotor.test', nbf: s(live.issued) } : {}) };
      const accessToken = signJwt(key, accessPayload, profile === 'native' ? { typ: 'at+jwt' } : profile === 'jwtplus' ? { typ: 'JWT' } : {});
      sessions.push({ profile, appId, appName, appKey, sessionId, tokens: chain.map((c) => c.token), accessToken });
    }
  } finally {
    db.close();
  }
  return sessions;
}

describe('upgrade to one row per session: nobody is logged out', () => {
  let dir: string;
  let server: TestServer;
  let old: OldSession[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotor-upgrade-'));
    const path = join(dir, 'rotor.db');
    const masterKey = randomBytes(32).toString('base64');
    old = buildOldDatabase(path, MasterKey.fromBase64(masterKey));
    // Starting the server migrates (as `rotor migrate` does) and checks the master key opens every key.
    server = await startTestServer({ env: { ROTOR_DATABASE_URL: `sqlite:${path}`, ROTOR_MASTER_KEY: masterKey } });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A refresh at the profile's own endpoint (the path an old client of that dialect takes). */
  function refresh(s: OldSession, token: string, accessToken = s.accessToken) {
    switch (s.profile) {
      case 'jwtplus': return server.call('POST', `/app/${s.appId}/renew`, { json: { refresh_token: token, ip: '192.0.2.9', useragent: 'old/1' }, headers: { authorization: s.appKey } });
      case 'flolive': return server.call('PUT', '/api/v2/auth/token', { json: { token: accessToken, refreshToken: token } });
      case 'fib': return server.call('PATCH', '/auth/api/v1/authentication-management/session', { headers: { authorization: `Bearer ${token}` } });
      case 'abitmedia': return server.call('POST', '/v1/refreshToken', { json: { refreshToken: token } });
      default: return server.call('POST', '/v1/refresh', { json: { refreshToken: token } });
    }
  }
  const tokensOf = (s: OldSession, body: any): { refresh: string; access: string } => {
    if (s.profile === 'jwtplus') return { refresh: body.refresh_token, access: body.auth_token };
    if (s.profile === 'flolive') return { refresh: body.content[0].refreshToken, access: body.content[0].token };
    if (s.profile === 'fib') return { refresh: body.data.refreshToken, access: body.data.accessToken };
    return { refresh: body.refreshToken, access: body.accessToken };
  };

  it('the migrated database has every pre-upgrade row and nothing new', () => {
    const db = new Database(join(dir, 'rotor.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }).v).toBe(SQLITE_MIGRATIONS.length);
      expect((db.prepare('SELECT count(*) AS n FROM refresh_tokens').get() as { n: number }).n).toBe(15);
      expect((db.prepare('SELECT count(*) AS n FROM sessions WHERE generation = 0').get() as { n: number }).n).toBe(5);
    } finally {
      db.close();
    }
  });

  for (const profile of ['native', 'jwtplus', 'flolive', 'fib', 'abitmedia'] as Profile[]) {
    it(`${profile}: the pre-upgrade live token refreshes once, the session goes on on the new scheme, an ancestor is reuse`, async () => {
      const s = old.find((o) => o.profile === profile)!;
      const live = s.tokens[2]!;
      const first = await refresh(s, live);
      expect(first.status, first.text).toBe(200);
      const next = tokensOf(s, first.body);
      expect(next.refresh).not.toBe(live);
      if (profile === 'native') {
        expect(next.refresh).toMatch(/^rt_[A-Za-z0-9_-]{76}$/);
        // Inside the grace window the pre-upgrade token gets that very successor again, not a second child.
        const retried = await refresh(s, live);
        expect(retried.status).toBe(200);
        expect(tokensOf(s, retried.body).refresh).toBe(next.refresh);
      } else {
        // Strictly one-time (grace 0): the consumed pre-upgrade token is now reuse… but first the new chain goes on.
        expect(decodeJwtPart(next.refresh, 1).exp).toBeGreaterThan(0);
      }
      // The new token rotates on the new scheme, twice.
      let current = next;
      for (let i = 0; i < 2; i += 1) {
        const res = await refresh(s, current.refresh, current.access);
        expect(res.status, res.text).toBe(200);
        current = tokensOf(s, res.body);
      }
      // A pre-upgrade ancestor (generation 1 of the old chain) presented now is reuse: the session dies.
      const ancestor = await refresh(s, s.tokens[0]!, current.access);
      expect(ancestor.status).toBeGreaterThanOrEqual(400);
      expect(ancestor.status).toBeLessThan(500);
      const after = await refresh(s, current.refresh, current.access);
      expect(after.status).toBeGreaterThanOrEqual(400);
      const sessions = await server.call('GET', `/v1/apps/${s.appId}/sessions?subject=${encodeURIComponent(profile === 'fib' ? 'alice@wonderland.space' : 'alice')}`, {
        headers: { authorization: `Bearer ${s.appKey}` },
      });
      expect(sessions.body.sessions[0]).toMatchObject({ id: s.sessionId, revokeReason: 'reuse' });
    });
  }

  it('the upgraded sessions still occupy one row each: the pre-upgrade records are only consumed, none added', () => {
    const db = new Database(join(dir, 'rotor.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT count(*) AS n FROM refresh_tokens').get() as { n: number }).n).toBe(15);
      expect((db.prepare('SELECT count(*) AS n FROM refresh_tokens WHERE consumed_at IS NULL').get() as { n: number }).n).toBe(0);
      expect((db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n).toBe(5);
    } finally {
      db.close();
    }
  });
});
