import { DPOP_ALGORITHMS, DPOP_WINDOW_SECONDS, isFreshNonce, issueNonce, verifyDpopProof, type DpopRefusal } from '../../crypto/dpop.js';
import { sha256 } from '../../crypto/secrets.js';
import { toSeconds } from '../clock.js';
import { invalidRefreshToken, RotorError } from '../errors.js';
import type { App, Session } from '../types.js';
import type { EngineCore } from './core.js';
import type { DpopInput } from './types.js';

/** The DPoP check of one request applied to a session: the proof's key thumbprint, or null (see proofFor). */
export type ProofCheck = (session: Session) => Promise<string | null>;

/** A fresh server nonce for the app's next proof (RFC 9449 §8). */
export function freshNonce(core: EngineCore, app: App): string {
  return issueNonce(core.nonceKey, toSeconds(core.now()), app.id);
}

/**
 * The DPoP check of one request (RFC 9449; SPEC §2.10), applied to the session as it stands when a
 * token is judged live or a retry (never before: an ancestor is reuse whatever proof it comes with).
 * The proof itself is verified once per request (signature, claims, nonce, replay); it must then fit
 * the session: a bound session needs a proof by its key, an app that requires DPoP needs a proof, and
 * at an endpoint that cannot carry one (a dialect) either is an invalid token. Null: no proof, none
 * needed. DPoP binds native-profile apps only: a dialect's token layout has no room for `cnf`.
 */
export function proofFor(core: EngineCore, app: App, input: DpopInput | undefined): ProofCheck {
  const mode = core.formats.formatFor(app.profile).bindsAccessTokens ? app.policy.dpop : 'off';
  let verified: Promise<string> | null = null;
  return async (session) => {
    if (input === undefined) {
      if (session.dpopJkt !== null || mode === 'required') throw invalidRefreshToken('unknown');
      return null;
    }
    if (mode === 'off' && session.dpopJkt === null) return null;
    if (input.proof === null) {
      if (session.dpopJkt !== null || mode === 'required') throw dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'a DPoP proof is required' });
      return null;
    }
    verified ??= verifyProof(core, app, input.proof, input);
    const jkt = await verified;
    if (session.dpopJkt !== null && jkt !== session.dpopJkt) {
      throw dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'the proof is not made with the key the session is bound to' });
    }
    return jkt;
  };
}

async function verifyProof(core: EngineCore, app: App, proof: string, input: DpopInput): Promise<string> {
  const now = toSeconds(core.now());
  const checked = await verifyDpopProof(proof, {
    htm: input.htm, htu: input.htu, nowSeconds: now,
    nonce: app.policy.dpopNonce ? (nonce) => isFreshNonce(core.nonceKey, nonce, now, app.id) : null,
  });
  if ('error' in checked) throw dpopRefusal(core, app, checked);
  // Across instances, for as long as the proof's iat can be accepted (and a second more).
  const first = await core.store.useDpopProof({
    key: sha256(`${checked.jkt}:${checked.jti}`).toString('base64url'), expiresAt: (now + 2 * DPOP_WINDOW_SECONDS + 1) * 1000,
  });
  if (!first) throw dpopRefusal(core, app, { error: 'invalid_dpop_proof', detail: 'the proof was used before' });
  return checked.jkt;
}

function dpopRefusal(core: EngineCore, app: App, refusal: DpopRefusal): RotorError {
  const headers: Record<string, string> = {
    'WWW-Authenticate': `DPoP error="${refusal.error}", algs="${DPOP_ALGORITHMS.join(' ')}"`,
  };
  if (app.policy.dpopNonce) headers['DPoP-Nonce'] = freshNonce(core, app);
  return new RotorError(refusal.error, refusal.detail, { reason: refusal.error, headers });
}
