import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { RotorError } from '../../src/domain/errors.js';
import { proofPlaces } from '../../src/domain/engine/dpop_check.js';
import type { App } from '../../src/domain/types.js';
import { domainRotor } from '../helpers/rotor.js';

type Ctx = Awaited<ReturnType<typeof domainRotor>>;

/** The refusal a promise ends in: `code` and the catalogue's reason. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RotorError) return `${err.code}:${err.reason ?? err.detail}`;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('rotation engine (injected clock)', () => {
  let t: Ctx;
  let app: App;
  const make = async (policy: Record<string, unknown> = {}) => {
    app = (await t.rotor.apps.create({ name: `app${Math.random().toString(36).slice(2, 8)}`, policy })).app;
    return app;
  };
  const issue = (subject = 'alice', claims: Record<string, unknown> = {}) => t.rotor.issueSession(app, { subject, claims });
  const refresh = (token: string | null, userAgent: string | null = null) => t.rotor.refresh(token, { context: { userAgent } });

  beforeEach(async () => {
    t = await domainRotor();
  });

  it('rotates: the successor differs, the parent is consumed', async () => {
    await make();
    const first = await issue();
    const second = await refresh(first.refreshToken);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.session.id).toBe(first.session.id);
    expect(t.outcomes).toEqual(['rotated']);
  });

  it('grace window: the parent replayed inside it returns the byte-identical successor', async () => {
    await make({ reuseGrace: 10 });
    const first = await issue();
    const second = await refresh(first.refreshToken);
    t.clock.advance(9);
    const retry = await refresh(first.refreshToken);
    expect(retry.refreshToken).toBe(second.refreshToken);
    expect(retry.accessToken).not.toBe('');
    expect(t.outcomes).toEqual(['rotated', 'retry']);
    // The chain did not fork: the successor still rotates once.
    const third = await refresh(second.refreshToken);
    expect(third.session.id).toBe(first.session.id);
  });

  for (const stall of [14, 31, 40]) {
    it(`grace window: a twin that arrived inside it is a retry however long the store then takes to answer it, here ${stall} s (outside review S4-04)`, async () => {
      await make({ reuseGrace: 10 });
      const first = await issue();
      const second = await refresh(first.refreshToken);
      t.clock.advance(1);
      // The store answers this request's read `stall` seconds later (a slow database; its timeouts may be long).
      const find = t.store.findSession.bind(t.store);
      t.store.findSession = async (id) => {
        t.clock.advance(stall);
        return find(id);
      };
      const retry = await refresh(first.refreshToken);
      t.store.findSession = find;
      expect(retry.refreshToken).toBe(second.refreshToken);
      expect(t.outcomes).toEqual(['rotated', 'retry']);
      // One arriving after the window is reuse, as before.
      expect(await refusal(refresh(first.refreshToken))).toBe('invalid_refresh_token:reused');
    });
  }

  it('grace window: a twin that arrived before its sibling rotated, then waited past the clock leeway, is still a retry (S4-04, second review)', async () => {
    await make({ reuseGrace: 10 });
    const first = await issue();
    // The twin arrives, reads the session (not yet rotated), then its proof and rotation wait 40 s;
    // meanwhile the sibling rotates. The twin's compare-and-set loses and it is judged as a retry.
    const find = t.store.findSession.bind(t.store);
    let sibling: Promise<{ refreshToken: string }> | null = null;
    t.store.findSession = async (id) => {
      const found = await find(id);
      if (!sibling) {
        t.store.findSession = find;
        t.clock.advance(35);
        sibling = refresh(first.refreshToken);
        await sibling;
        t.clock.advance(5);
      }
      return found;
    };
    const twin = await refresh(first.refreshToken);
    expect(twin.refreshToken).toBe((await sibling!).refreshToken);
  });

  it('grace window edge: at exactly reuseGrace seconds the replay is reuse and kills the session', async () => {
    await make({ reuseGrace: 10 });
    const first = await issue();
    const second = await refresh(first.refreshToken);
    t.clock.advance(10);
    expect(await refusal(refresh(first.refreshToken))).toBe('invalid_refresh_token:reused');
    expect(await refusal(refresh(second.refreshToken))).toBe('invalid_refresh_token:revoked');
    expect(t.events).toContain('reuse_detected');
  });

  it('grace window: once the successor was used, the parent is reuse', async () => {
    await make({ reuseGrace: 10 });
    const first = await issue();
    const second = await refresh(first.refreshToken);
    const third = await refresh(second.refreshToken);
    expect(await refusal(refresh(first.refreshToken))).toBe('invalid_refresh_token:reused');
    expect(await refusal(refresh(third.refreshToken))).toBe('invalid_refresh_token:revoked');
  });

  it('grace window: a grandparent inside the window is reuse', async () => {
    await make({ reuseGrace: 10 });
    const r0 = await issue();
    const r1 = await refresh(r0.refreshToken);
    await refresh(r1.refreshToken);
    t.clock.advance(1);
    expect(await refusal(refresh(r0.refreshToken))).toBe('invalid_refresh_token:reused');
  });

  it('without grace any replay is reuse: the session and its access tokens die', async () => {
    await make({ reuseGrace: 0 });
    const first = await issue();
    const second = await refresh(first.refreshToken);
    expect(await refusal(refresh(first.refreshToken))).toBe('invalid_refresh_token:reused');
    expect(await t.rotor.checkAccess(second.accessToken)).toEqual({ ok: false, reason: 'revoked' });
    expect(t.outcomes).toEqual(['rotated', 'reuse']);
  });

  it('refresh TTL: valid one second before expiry, expired at it', async () => {
    await make({ refreshTtl: 3600, sessionMaxAge: null });
    const a = await issue();
    t.clock.advance(3599);
    const b = await refresh(a.refreshToken);
    t.clock.advance(3600);
    expect(await refusal(refresh(b.refreshToken))).toBe('invalid_refresh_token:expired');
  });

  it('refreshNotBefore: refused before the delay, accepted from it on', async () => {
    await make({ refreshNotBefore: 60 });
    const a = await issue();
    t.clock.advance(59);
    expect(await refusal(refresh(a.refreshToken))).toBe('invalid_refresh_token:not_yet_valid');
    t.clock.advance(1);
    await expect(refresh(a.refreshToken)).resolves.toBeTruthy();
  });

  it('absolute lifetime: rotation never extends it, and tokens are capped by it', async () => {
    await make({ sessionMaxAge: 3600, refreshTtl: 86400, accessTtl: 900 });
    let pair = await issue();
    expect(pair.refreshExpiresIn).toBe(3600);
    for (let i = 0; i < 5; i += 1) {
      t.clock.advance(600);
      pair = await refresh(pair.refreshToken);
    }
    // 3000 s in: the refresh token and the access token end with the session.
    expect(pair.refreshExpiresIn).toBe(600);
    expect(pair.expiresIn).toBe(600);
    t.clock.advance(600);
    expect(await refusal(refresh(pair.refreshToken))).toBe('invalid_refresh_token:expired');
  });

  it('idle timeout: a session unused for longer than it ends', async () => {
    await make({ sessionIdleTimeout: 300 });
    const a = await issue();
    t.clock.advance(299);
    const b = await refresh(a.refreshToken);
    t.clock.advance(300);
    expect(await refusal(refresh(b.refreshToken))).toBe('invalid_refresh_token:expired');
  });

  it('binding useragent: another user agent is refused, the right one works', async () => {
    await make({ binding: 'useragent' });
    const a = await t.rotor.issueSession(app, { subject: 'alice', client: { userAgent: 'Firefox' } });
    expect(await refusal(refresh(a.refreshToken, 'curl'))).toBe('invalid_refresh_token:binding_mismatch');
    await expect(refresh(a.refreshToken, 'Firefox')).resolves.toBeTruthy();
  });

  it('binding record: the last-seen user agent is updated', async () => {
    await make({ binding: 'record' });
    const a = await t.rotor.issueSession(app, { subject: 'alice', client: { userAgent: 'Firefox' } });
    await refresh(a.refreshToken, 'Chrome');
    const [session] = await t.rotor.listSessions(app, 'alice');
    expect(session?.userAgent).toBe('Firefox');
    expect(session?.lastUserAgent).toBe('Chrome');
  });

  it('disabling a subject revokes its sessions, and re-enabling does not revive them', async () => {
    await make();
    const a = await issue();
    await t.rotor.subjects.put(app, 'alice', { status: 'disabled' });
    expect(await refusal(refresh(a.refreshToken))).toBe('subject_disabled:subject_disabled');
    expect(await refusal(issue())).toMatch(/^subject_disabled/);
    await t.rotor.subjects.put(app, 'alice', { status: 'active' });
    expect(await refusal(refresh(a.refreshToken))).toBe('invalid_refresh_token:revoked');
  });

  it('deleting a subject revokes its sessions, also after it is recreated', async () => {
    await make();
    const a = await issue();
    await t.rotor.subjects.delete(app, 'alice');
    expect(await refusal(refresh(a.refreshToken))).toMatch(/^invalid_refresh_token/);
    await issue();
    expect(await refusal(refresh(a.refreshToken))).toBe('invalid_refresh_token:revoked');
  });

  it('access tokens: exp is exclusive, and a revoked session kills them', async () => {
    await make({ accessTtl: 60 });
    const a = await issue();
    t.clock.advance(59);
    expect(await t.rotor.checkAccess(a.accessToken)).toMatchObject({ ok: true });
    t.clock.advance(1);
    expect(await t.rotor.checkAccess(a.accessToken)).toEqual({ ok: false, reason: 'invalid' });
    const b = await issue();
    await t.rotor.revokeToken(b.refreshToken);
    expect(await t.rotor.checkAccess(b.accessToken)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('reserved claims cannot be set by the caller; subject claims flow into tokens', async () => {
    await make();
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid']) {
      expect(await refusal(issue('bob', { [claim]: 'x' }))).toBe('invalid_request:claims may not set the reserved claim "' + claim + '"');
    }
    await t.rotor.subjects.put(app, 'carol', { claims: { role: 'admin' } });
    const pair = await issue('carol', { tenant: 't1' });
    expect(pair.accessPayload).toMatchObject({ role: 'admin', tenant: 't1', sub: 'carol', sid: pair.session.id });
    const renewed = await refresh(pair.refreshToken);
    expect(renewed.accessPayload).toMatchObject({ role: 'admin', tenant: 't1' });
  });

  it('unknown and malformed tokens are told apart and change nothing', async () => {
    await make();
    expect(await refusal(refresh('rt_' + 'A'.repeat(43)))).toBe('invalid_refresh_token:unknown');
    expect(await refusal(refresh('garbage'))).toBe('invalid_refresh_token:malformed');
    expect(await refusal(refresh(null))).toBe('invalid_refresh_token:malformed');
  });

  it('automatic key rotation by period: a new kid signs, the old one keeps verifying', async () => {
    await make({ keyRotationPeriod: 3600 });
    const a = await issue();
    const kidA = JSON.parse(Buffer.from(a.accessToken.split('.')[0] as string, 'base64url').toString()).kid;
    t.clock.advance(3601);
    const b = await issue();
    const kidB = JSON.parse(Buffer.from(b.accessToken.split('.')[0] as string, 'base64url').toString()).kid;
    expect(kidB).not.toBe(kidA);
    t.clock.advance(-3601 + 100);
    // (clock moved back only to re-check the old token inside its lifetime)
    expect(await t.rotor.checkAccess(a.accessToken)).toMatchObject({ ok: true });
  });

  it('pruning removes expired records and dead sessions but keeps what reuse detection needs', async () => {
    await make({ refreshTtl: 3600, sessionMaxAge: 7200, reuseGrace: 0 });
    const a = await issue();
    const b = await refresh(a.refreshToken);
    await t.rotor.prune(0);
    // The consumed parent is still known: replaying it is reuse, not "unknown".
    expect(await refusal(refresh(a.refreshToken))).toBe('invalid_refresh_token:reused');
    void b;
    t.clock.advance(7200 + 1);
    const pruned = await t.rotor.prune(0);
    expect(pruned.sessions).toBeGreaterThanOrEqual(1);
    expect(await t.rotor.listSessions(app, 'alice')).toEqual([]);
  });

  /** DPoP proofs by one P-256 key for /v1/refresh (`forged`: signed by another key than the header's). */
  const dpopKit = () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const htu = 'https://rotor.test/v1/refresh';
    const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicKey.export({ format: 'jwk' }) });
    const proofAt = (iat = Math.floor(t.clock.now() / 1000), forged = false) => {
      const input = `${header}.${b64({ jti: randomUUID(), htm: 'POST', htu, iat })}`;
      const signer = forged ? other.privateKey : key.privateKey;
      return `${input}.${sign('sha256', Buffer.from(input), { key: signer, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    const withProof = (token: string, proof: string, abandoned?: () => boolean) =>
      t.rotor.refresh(token, { dpop: { proof, htm: 'POST', htu }, abandoned });
    const detailOf = (promise: Promise<unknown>) => promise.then(() => 'accepted', (err: RotorError) => err.detail);
    return { proofAt, withProof, detailOf };
  };

  it('DPoP: a proof stays a replay for as long as its iat is acceptable, pruned or not (the mark expires by the proof, not the clock)', async () => {
    await make({ reuseGrace: 0 });
    const { proofAt, withProof, detailOf } = dpopKit();
    // A proof dated as old, as current and as far ahead as is accepted.
    for (const offset of [-290, 0, 290]) {
      const start = Math.floor(t.clock.now() / 1000);
      const proof = proofAt(start + offset);
      const live = (await withProof((await issue()).refreshToken, proof)).refreshToken;
      // Up to the last second its iat is accepted, through prunes: still the proof used before.
      for (const at of [start + 1, start + offset + 150, start + offset + 300]) {
        t.clock.set(at * 1000);
        await t.rotor.prune();
        expect(await detailOf(withProof(live, proof)), `offset ${offset}, +${at - start} s`).toBe('the proof was used before');
      }
      t.clock.advance(1);
      expect(await detailOf(withProof(live, proof))).toBe('iat is outside the accepted window');
      expect(await detailOf(withProof(live, proofAt()))).toBe('accepted');
    }
  });

  it('DPoP: one session holds at most 8 of the verifier\'s places; the rest are server_busy at once, and the places come back', async () => {
    await make({ reuseGrace: 0 });
    const { proofAt, withProof, detailOf } = dpopKit();
    const { refreshToken } = await issue();
    // Forged proofs consume nothing, so one token could otherwise keep the verifier's queue full.
    const flood = await Promise.all(Array.from({ length: 12 }, () => detailOf(withProof(refreshToken, proofAt(undefined, true)))));
    expect(flood.filter((d) => d === 'the proof signature does not verify with its jwk')).toHaveLength(8);
    expect(flood.filter((d) => d === 'too many DPoP proofs of this session are being checked; retry shortly')).toHaveLength(4);
    // Another session is not held up by this one's, and this one's places came back.
    const other = await issue('bob');
    expect(await detailOf(withProof(other.refreshToken, proofAt()))).toBe('accepted');
    expect(await detailOf(withProof(refreshToken, proofAt()))).toBe('accepted');
  });

  it('DPoP: one app holds at most its share of the verifier\'s places, however many sessions it issues itself', async () => {
    await make({ reuseGrace: 0 });
    const { proofAt, withProof, detailOf } = dpopKit();
    const perApp = proofPlaces.perApp;
    proofPlaces.perApp = 10;
    try {
      const sessions = await Promise.all(['a', 'b', 'c'].map((s) => issue(s)));
      const flood = await Promise.all(sessions.flatMap((s) => Array.from({ length: 5 }, () => detailOf(withProof(s.refreshToken, proofAt(undefined, true))))));
      expect(flood.filter((d) => d === 'the proof signature does not verify with its jwk')).toHaveLength(10);
      expect(flood.filter((d) => d === 'too many DPoP proofs of this app are being checked; retry shortly')).toHaveLength(5);
      // Another app's sessions have places of their own.
      const before = app;
      await make({ reuseGrace: 0 });
      expect(await detailOf(withProof((await issue()).refreshToken, proofAt()))).toBe('accepted');
      app = before;
      expect(await detailOf(withProof(sessions[0]!.refreshToken, proofAt()))).toBe('accepted');
    } finally {
      proofPlaces.perApp = perApp;
    }
  });

  it('a client gone by the time its refresh would be written consumes nothing (its retry of the same token is no reuse), with DPoP or bearer', async () => {
    await make({ reuseGrace: 0 });
    const { proofAt, withProof, detailOf } = dpopKit();
    const gone = 'the client left before its refresh was made; nothing was consumed';
    const bound = await issue();
    expect(await detailOf(withProof(bound.refreshToken, proofAt(), () => true))).toBe(gone);
    const retried = await withProof(bound.refreshToken, proofAt(), () => false);
    expect(retried.session.dpopJkt).not.toBeNull();
    const bearer = await issue('bob');
    expect(await detailOf(t.rotor.refresh(bearer.refreshToken, { abandoned: () => true }))).toBe(gone);
    await t.rotor.refresh(bearer.refreshToken, { abandoned: () => false });
    expect(t.outcomes).toEqual(['rotated', 'rotated']);
  });
});
