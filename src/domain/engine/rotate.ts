import { decodeJwt } from '../../crypto/jwt.js';
import type { RotateSessionResult } from '../store.js';
import { recordableClient } from '../claims.js';
import { toSeconds } from '../clock.js';
import { invalidRefreshToken, RotorError, serverBusy } from '../errors.js';
import type { App, Millis, RefreshChain, Session } from '../types.js';
import { UPGRADED, type EngineCore, type FoundLegacyRefresh, type FoundSession, type Store } from './core.js';
import { freshNonce, proofFor, type ProofCheck } from './dpop_check.js';
import { locate } from './locate.js';
import { accessExp, chainIdOf, finish, liveToken, mintContext, mintRefresh, nextChain } from './minting.js';
import { assertBinding, assertNotBefore, assertSessionAlive, bindingHolds, inGrace } from './session_rules.js';
import type { ClientContext, Issued, RefreshOptions } from './types.js';

/** One renewal in progress: what every step of it needs. */
interface Renewal {
  core: EngineCore;
  app: App;
  client: ClientContext;
  proof: ProofCheck;
  abandoned: (() => boolean) | undefined;
  precondition: ((session: Session) => void) | undefined;
  /**
   * When the request reached the engine (its body read): the grace window is judged at that instant,
   * so a twin request kept waiting by a slow store is still the retry it was when it came, not reuse.
   */
  arrivedAt: Millis;
}

type RotationWrite = (input: Parameters<Store['rotateSession']>[0], locator: string | null) => Promise<RotateSessionResult>;

/**
 * Renews a session from its refresh token. `client` restricts the token to one app (OAuth client,
 * dialect path): another app's token is refused and left untouched.
 *
 * A session's refresh state is one chain on its row (SPEC §2.9): generation g is live, g − 1 may retry
 * within the grace window, anything older is reuse. Tokens name (session, generation) under keys derived
 * from the master key, so nothing per token is stored and a guess costs no store read.
 */
export async function refresh(core: EngineCore, token: unknown, options: RefreshOptions = {}): Promise<Issued> {
  try {
    return await refreshOrThrow(core, token, options);
  } catch (err) {
    if (err instanceof RotorError && err.kind !== 'unavailable' && err.reason !== 'reused') {
      core.observer.refresh('refused', err.reason ?? err.code, options.client?.id ?? null);
    }
    throw err;
  }
}

async function refreshOrThrow(core: EngineCore, token: unknown, options: RefreshOptions): Promise<Issued> {
  const arrivedAt = core.now();
  const result = await locate(core, token, { client: options.client, earlyAllowed: true });
  if (!result.ok) throw invalidRefreshToken(result.reason);
  const { located } = result;
  const { session } = located.found;
  if (options.client && session.appId !== options.client.id) throw invalidRefreshToken('unknown');
  const app = options.client ?? (await core.apps.byId(session.appId));
  if (!app) throw invalidRefreshToken('unknown');
  if (options.profile && app.profile !== options.profile) throw invalidRefreshToken('unknown');
  if (options.expectSessionId !== undefined && session.id !== options.expectSessionId) throw invalidRefreshToken('unknown');
  // Before anything is consumed or judged reuse: a confidential app's token alone redeems nothing.
  if (!app.public && !(options.clientAuthenticated === true && options.client?.id === app.id)) {
    throw new RotorError('invalid_app_key', 'this app is confidential: its refresh tokens are redeemed only with its app key', { reason: 'client_authentication_required' });
  }
  const renewal: Renewal = { core, app, client: recordableClient(options.context), proof: proofFor(core, app, options.dpop), abandoned: options.abandoned, precondition: options.precondition, arrivedAt };
  const issued = located.kind === 'chain'
    ? await renewChain(renewal, located.found, located.generation, 0)
    : await renewLegacy(renewal, located.found, 0);
  issued.dpopNonce = app.policy.dpopNonce && options.dpop ? freshNonce(core, app) : null;
  return issued;
}

/** Generation `g` of a session's chain was presented. */
async function renewChain(r: Renewal, found: FoundSession, g: number, attempt: number): Promise<Issued> {
  const { core, app } = r;
  const now = core.now();
  const { session } = found;
  const chain = session.refresh;
  if (!chain || g > chain.generation) throw invalidRefreshToken('unknown');
  assertSessionAlive(app, session, found.subjectStatus, now);
  if (g < chain.generation) return replayedChain(r, found, g, now);
  if (now >= chain.expiresAt) throw invalidRefreshToken('expired');
  assertNotBefore(app, core.formats.formatFor(app.profile), chain.notBefore, now);
  assertBinding(app, session, r.client);
  // The live token: now the proof, before anything is consumed (its replay mark goes with the rotation).
  const jkt = await r.proof.fits(session);
  const issued = await rotate(r, found, jkt, now, (input) => core.store.rotateSession(input));
  if (issued) return issued;
  // Another request rotated it first, or the session was revoked meanwhile: decide again from what was committed.
  const again = await core.store.findSession(session.id);
  if (!again || attempt > 0) throw invalidRefreshToken('revoked');
  return renewChain(r, again, g, attempt + 1);
}

/**
 * Mints the session's next generation and writes it with one compare-and-set (`write`); null when the
 * write lost. The response is built only after it committed (N1).
 */
async function rotate(r: Renewal, found: FoundSession, jkt: string | null, now: Millis, write: RotationWrite): Promise<Issued | null> {
  const { core, app, client } = r;
  r.precondition?.(found.session);
  const format = core.formats.formatFor(app.profile);
  // A pre-upgrade session of a profile whose ids carry a locator gets one with its first generation.
  const locator = format.chainId?.locatesSession && found.session.locator === null ? core.ids.newLocator() : null;
  const session = locator === null ? found.session : { ...found.session, locator };
  const generation = (session.refresh?.generation ?? 0) + 1;
  const chain = nextChain(core, app, session, generation, now);
  if (!chain) throw invalidRefreshToken('unknown');
  const key = await core.keyring.activeKey(app, found.keysVersion);
  const exp = accessExp(app, session, now);
  const minted = mintRefresh(core, { app, format, session, chain, key, now, accessExp: exp, cnfJkt: jkt ?? session.dpopJkt });
  const recordClient = app.policy.binding !== 'off';
  // A public client's first proof binds its session (RFC 9449 §5); a confidential client's does not.
  const bindJkt = app.public && session.dpopJkt === null ? jkt : null;
  const dpopProof = r.proof.unrecorded();
  if (r.abandoned?.() === true) throw serverBusy('the client left before its refresh was made; nothing was consumed');
  const { rotated, proofReplayed } = await write({
    bindJkt, dpopProof,
    sessionId: session.id, expectGeneration: generation - 1, next: minted.chain, now,
    lastIp: recordClient ? client.ip ?? null : null, lastUserAgent: recordClient ? client.userAgent ?? null : null,
    horizonAt: Math.max(exp * 1000, chain.expiresAt),
  }, locator);
  if (proofReplayed) throw r.proof.replayed();
  if (dpopProof) r.proof.recorded();
  if (!rotated) return null;
  core.observer.refresh('rotated', 'ok', app.id);
  const renewed: Session = { ...session, lastRenewedAt: now, refresh: minted.chain, dpopJkt: session.dpopJkt ?? bindJkt };
  return finish({ app, session: renewed, key, ctx: minted.ctx, format, refresh: minted, now });
}

/**
 * An older generation came back. Its parent generation, inside the grace window, is a retry: answer
 * with the very same successor (an opaque one is recomputed, a JWT one unsealed). Anything else is
 * reuse: the session dies.
 */
async function replayedChain(r: Renewal, found: FoundSession, g: number, now: Millis): Promise<Issued> {
  const { core, app, client } = r;
  const chain = found.session.refresh as RefreshChain;
  const isParent = g === chain.generation - 1 && g >= 1;
  // A rotation the store could not confirm durable (a 503 was answered, SPEC §7) leaves its parent
  // redeemable for the same successor whatever the grace window: the client's retry is never reuse.
  const unconfirmed = found.rotation === 'unconfirmed';
  const retry = unconfirmed ? bindingHolds(app, found.session, client) : inGrace(app, found.session, chain.issuedAt, client, { arrivedAt: r.arrivedAt, now });
  // A retry comes from the client that won, so it fits the binding the win left (SECURITY-CASES R-03): a
  // bound session's parent without a proof by its key is another client's copy, as another user agent's is.
  // Refusing it instead would let a thief who redeemed a stolen token first, with its own key, keep the session.
  if (isParent && retry && now < chain.expiresAt && r.proof.namesBinding(found.session)) {
    const successor = liveToken(core, app, found.session, chain);
    if (successor !== null) {
      // A retry must fit the session as it is now (bound, maybe, by the request that won).
      const jkt = await r.proof.proven(found.session);
      // Answered only once the rotation it hands out is durable.
      if (found.rotation) await core.store.confirmRotation?.(found.session.id, chain.generation);
      return retried(r, found, chain, successor, jkt, now);
    }
  }
  return reuse(r, found.session, now);
}

// ── pre-upgrade records (SPEC §2.9: they keep working until they expire) ───────────────────────

/** A pre-upgrade token: its one rotation moves the session onto its chain. */
async function renewLegacy(r: Renewal, found: FoundLegacyRefresh, attempt: number): Promise<Issued> {
  const { core, app } = r;
  const now = core.now();
  const { record, session } = found;
  if (now >= record.expiresAt) throw invalidRefreshToken('expired');
  assertSessionAlive(app, session, found.subjectStatus, now);
  if (record.consumedAt !== null) return replayedLegacy(r, found, now);
  if (session.refresh !== null) throw invalidRefreshToken('unknown');
  assertNotBefore(app, core.formats.formatFor(app.profile), record.notBefore, now);
  assertBinding(app, session, r.client);
  const jkt = await r.proof.proven(session);
  const issued = await rotate(r, found, jkt, now, (input, locator) => core.store.upgradeLegacy({ ...input, legacyId: record.id, locator }));
  if (issued) return issued;
  const again = await core.store.findLegacyRefresh(record.id);
  if (!again || attempt > 0) throw invalidRefreshToken('revoked');
  return renewLegacy(r, again, attempt + 1);
}

async function replayedLegacy(r: Renewal, found: FoundLegacyRefresh, now: Millis): Promise<Issued> {
  const { core, app, client } = r;
  const { record, session } = found;
  const consumedAt = record.consumedAt as Millis;
  if (inGrace(app, session, consumedAt, client, { arrivedAt: r.arrivedAt, now }) && r.proof.namesBinding(session)) {
    const chain = session.refresh;
    // Its successor is the chain's first generation, still live.
    if (record.successorId === UPGRADED && chain?.generation === 1 && now < chain.expiresAt) {
      const successor = liveToken(core, app, session, chain);
      if (successor !== null) return retried(r, found, chain, successor, await r.proof.proven(session), now);
    }
    // Its successor is another pre-upgrade record, still live (sealed on this one).
    if (record.successorId !== UPGRADED && record.successorId && record.successorSealed && chain === null) {
      const child = await core.store.findLegacyRefresh(record.successorId);
      if (child && child.record.consumedAt === null && now < child.record.expiresAt) {
        const successor = core.masterKey.open('refresh-successor', record.successorSealed, record.id).toString();
        const childChain: RefreshChain = { generation: 0, issuedAt: child.record.issuedAt, notBefore: child.record.notBefore, expiresAt: child.record.expiresAt, successorSealed: null };
        return retried(r, found, childChain, successor, await r.proof.proven(session), now);
      }
    }
  }
  return reuse(r, session, now);
}

// ── shared by both ─────────────────────────────────────────────────────────────────────────────

/** The answer to a grace retry: the same successor, a fresh access token. */
async function retried(r: Renewal, found: FoundSession, chain: RefreshChain, successor: string, jkt: string | null, now: Millis): Promise<Issued> {
  const { core, app } = r;
  const { session } = found;
  r.precondition?.(session);
  const format = core.formats.formatFor(app.profile);
  const key = await core.keyring.activeKey(app, found.keysVersion);
  const exp = accessExp(app, session, now);
  const refreshTiming = { notBefore: toSeconds(chain.notBefore), exp: toSeconds(chain.expiresAt), id: chainIdOf(core, app, format, session, chain) };
  const ctx = mintContext(core, { app, session, now, accessExp: exp, refresh: refreshTiming, cnfJkt: jkt ?? session.dpopJkt });
  core.observer.refresh('retry', 'grace', app.id);
  const refreshPayload = format.refreshFormat === 'jwt' ? decodeJwt(successor)?.payload ?? null : null;
  const issued = finish({ app, session, key, ctx, format, refresh: { token: successor, payload: refreshPayload }, now });
  issued.refreshExpiresIn = Math.max(0, toSeconds(chain.expiresAt - now));
  return issued;
}

async function reuse(r: Renewal, session: Session, now: Millis): Promise<never> {
  const { core, app } = r;
  const revoked = await core.store.revokeSession(session.id, 'reuse', now);
  core.observer.refresh('reuse', 'reused', app.id);
  if (revoked) core.observer.event('reuse_detected', { appId: app.id, sessionId: session.id });
  throw invalidRefreshToken('reused');
}
