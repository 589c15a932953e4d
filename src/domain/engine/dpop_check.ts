import {
  DPOP_ALGORITHMS, DPOP_WINDOW_SECONDS, isFreshNonce, issueNonce, proofKeyThumbprint, verifyDpopProof, type DpopProof, type DpopRefusal,
} from '../../crypto/dpop.js';
import { toSeconds } from '../clock.js';
import { invalidRefreshToken, RotorError, serverBusy } from '../errors.js';
import type { App, Session } from '../types.js';
import type { DpopProofInput } from '../store.js';
import type { EngineCore } from './core.js';
import type { DpopInput } from './types.js';

/**
 * The DPoP check of one request (see proofFor). `proven` checks the proof against the session and
 * records its jti in the replay cache; a rotation instead carries the mark into its own write
 * (`unrecorded`, then `recorded`, or `replayed` when the store had seen it), so that on SQLite the
 * mark and the rotation commit together. Each step runs at most once per request.
 */
export interface ProofCheck {
  /** The proof's key thumbprint once its checks pass and it fits the session; null: no proof, none needed. Records nothing. */
  fits(session: Session): Promise<string | null>;
  /** `fits`, then the mark recorded (unless it was): a proof seen before is refused. */
  proven(session: Session): Promise<string | null>;
  /** The checked proof's replay mark, while it is not recorded. */
  unrecorded(): DpopProofInput | null;
  /** A write that carried `unrecorded()` committed it. */
  recorded(): void;
  /** The refusal for a proof the replay cache had seen. */
  replayed(): RotorError;
  /**
   * Whether this request can be by the client the session is bound to: the session is unbound, or the
   * request's proof names its key (nothing else is checked: a proof of that key that fails its checks is
   * refused by `fits` as what it is). A grace retry that cannot is another client holding the token; the
   * bound client always sends a readable proof, so one that names no key is not it either.
   */
  namesBinding(session: Session): boolean;
}

/** A fresh server nonce for the app's next proof (RFC 9449 §8). */
export function freshNonce(core: EngineCore, app: App): string {
  return issueNonce(core.nonceKey, toSeconds(core.now()), app.id);
}

/**
 * The DPoP check of one request (RFC 9449; SPEC §2.10), applied to the session as it stands when a
 * token is judged live or a retry (never before: an ancestor is reuse whatever proof it comes with).
 * The proof itself is verified once per request (signature, claims, nonce, then replay); it must then
 * fit the session: a bound session needs a proof by its key, an app that requires DPoP needs a proof,
 * and at an endpoint that cannot carry one (a dialect) either is an invalid token. DPoP binds
 * native-profile apps only: a dialect's token layout has no room for `cnf`.
 */
export function proofFor(core: EngineCore, app: App, input: DpopInput | undefined): ProofCheck {
  const mode = core.formats.formatFor(app.profile).bindsAccessTokens ? app.policy.dpop : 'off';
  let verified: Promise<DpopProof> | null = null;
  let mark: DpopProofInput | null = null;
  let recording: Promise<void> | null = null;
  const replayed = () => dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'the proof was used before' });
  const fits = async (session: Session): Promise<string | null> => {
    if (input === undefined) {
      if (session.dpopJkt !== null || mode === 'required') throw invalidRefreshToken('unknown');
      return null;
    }
    if (mode === 'off' && session.dpopJkt === null) return null;
    if (input.proof === null) {
      if (session.dpopJkt !== null || mode === 'required') throw dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'a DPoP proof is required' });
      return null;
    }
    const otherKey = () => dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'the proof is not made with the key the session is bound to' });
    // A proof that does not name the bound key is refused before the verifier's queue: it needs no
    // signature check to fail, and must not hold the session's places (see proofPlaces).
    if (verified === null && session.dpopJkt !== null) {
      const named = proofKeyThumbprint(input.proof);
      if (typeof named !== 'string') throw dpopRefusal(core, app, named);
      if (named !== session.dpopJkt) throw otherKey();
    }
    verified ??= verifyFor(core, app, session, input.proof, input);
    const checked = await verified;
    if (session.dpopJkt !== null && checked.jkt !== session.dpopJkt) throw otherKey();
    // Across instances, for as long as the proof's iat can be accepted anywhere: its window, another for
    // instances' clocks, and a second. From the proof, not this clock: the same proof, the same mark.
    mark ??= { key: checked.replayKey, expiresAt: (Math.floor(checked.iat) + 2 * DPOP_WINDOW_SECONDS + 1) * 1000 };
    return checked.jkt;
  };
  return {
    fits,
    async proven(session) {
      const jkt = await fits(session);
      const unrecorded = mark;
      if (unrecorded === null) return jkt;
      recording ??= core.store.useDpopProof(unrecorded).then((first) => {
        if (!first) throw replayed();
      });
      await recording;
      return jkt;
    },
    namesBinding(session) {
      if (session.dpopJkt === null) return true;
      if (input === undefined || input.proof === null) return false;
      return proofKeyThumbprint(input.proof) === session.dpopJkt;
    },
    unrecorded: () => (recording === null ? mark : null),
    recorded() {
      recording = Promise.resolve();
    },
    replayed,
  };
}

/**
 * Proofs being checked, by session and by app: one session may hold only a few of the verifier's places,
 * one app a quarter of them. Forged proofs consume nothing, so one token of one's own (any tenant's) would
 * otherwise let a client keep the verifier's whole queue full, and a tenant issuing itself sessions
 * could do the same with many: every other app's DPoP refreshes would be answered server_busy. A client
 * refreshes a session once at a time (a few at once, with tabs racing); past that, server_busy.
 */
export const proofPlaces = { perSession: 8, perApp: 4096 };
const bySession = new Map<string, number>();
const byApp = new Map<string, number>();

function giveBack(held: Map<string, number>, key: string): void {
  const left = (held.get(key) ?? 1) - 1;
  if (left === 0) held.delete(key);
  else held.set(key, left);
}

function verifyFor(core: EngineCore, app: App, session: Session, proof: string, input: DpopInput): Promise<DpopProof> {
  const sessionHeld = bySession.get(session.id) ?? 0;
  const appHeld = byApp.get(app.id) ?? 0;
  if (sessionHeld >= proofPlaces.perSession) throw serverBusy('too many DPoP proofs of this session are being checked; retry shortly');
  if (appHeld >= proofPlaces.perApp) throw serverBusy('too many DPoP proofs of this app are being checked; retry shortly');
  bySession.set(session.id, sessionHeld + 1);
  byApp.set(app.id, appHeld + 1);
  return verifyProof(core, app, proof, input).finally(() => {
    giveBack(bySession, session.id);
    giveBack(byApp, app.id);
  });
}

async function verifyProof(core: EngineCore, app: App, proof: string, input: DpopInput): Promise<DpopProof> {
  const now = toSeconds(core.now());
  const checked = await verifyDpopProof(proof, {
    htm: input.htm, htu: input.htu, nowSeconds: now,
    nonce: app.policy.dpopNonce ? (nonce) => isFreshNonce(core.nonceKey, nonce, now, app.id) : null,
  });
  if ('error' in checked) throw checked.error === 'server_busy' ? serverBusy(checked.detail) : dpopRefusal(core, app, checked);
  return checked;
}

function dpopRefusal(core: EngineCore, app: App, refusal: DpopRefusal): RotorError {
  const headers: Record<string, string> = {
    'WWW-Authenticate': `DPoP error="${refusal.error}", algs="${DPOP_ALGORITHMS.join(' ')}"`,
  };
  if (app.policy.dpopNonce) headers['DPoP-Nonce'] = freshNonce(core, app);
  return new RotorError(refusal.error, refusal.detail, { reason: refusal.error, headers });
}
