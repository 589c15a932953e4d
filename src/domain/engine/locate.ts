import type { App, Millis } from '../types.js';
import type { Presented } from '../refresh_ids.js';
import type { EngineCore, FoundLegacyRefresh, FoundSession } from './core.js';
import { checkJwt, findChain } from './verify.js';

/**
 * A presented refresh token, found: a generation of a session's chain, or a pre-upgrade record. `kid`
 * is the key that signed a JWT one (confirmed against the version read with the row, S2-13).
 */
export type Located =
  | { kind: 'chain'; found: FoundSession; generation: number; kid: string | null }
  | { kind: 'legacy'; found: FoundLegacyRefresh; kid: string | null };

/**
 * Finding a presented refresh token: `malformed` (not a string, or a JWT that is not genuine), `revoked`
 * (a genuine JWT of a revoked key) and `unknown` (names nothing live in the store) are expected
 * outcomes, not exceptions.
 */
export type LocateResult = { ok: true; located: Located } | { ok: false; reason: 'malformed' | 'unknown' | 'revoked' };

export interface LocateOptions {
  /** Only within this app (key lookup is scoped to the tenant). */
  client?: App;
  /**
   * A refresh and a revocation: a not-before as far ahead as the app's `refreshNotBefore` is fine (the
   * refresh judges it from the chain; S2-03 for revocation).
   */
  earlyAllowed?: boolean;
}

const unknown: LocateResult = { ok: false, reason: 'unknown' };
const malformed: LocateResult = { ok: false, reason: 'malformed' };
const revoked: LocateResult = { ok: false, reason: 'revoked' };

/**
 * The session (and generation) or pre-upgrade record a presented refresh token names, after checking
 * its form: an opaque token's MAC, a JWT's signature against the cached keys, then that key against
 * the version read with the row (S2-13). A guess never reaches the store.
 */
export async function locate(core: EngineCore, token: unknown, options: LocateOptions = {}): Promise<LocateResult> {
  if (typeof token !== 'string' || token.length === 0) return malformed;
  let presented: Presented | null;
  let kid: string | null = null;
  if (token.startsWith('rt_')) {
    presented = core.ids.readOpaque(token);
    if (!presented) return unknown;
  } else {
    // Expiry is judged from the stored chain (the same instant as the JWT's `exp`), so allow it here.
    const verified = await checkJwt(core, token, { client: options.client, allowExpired: true, earlyAllowed: options.earlyAllowed });
    if (typeof verified === 'string') return verified === 'revoked_key' ? revoked : malformed;
    const format = core.formats.formatFor(verified.app.profile);
    const ref = format.refreshFormat === 'jwt' && format.chainId ? format.refreshIdOf(verified.parts) : null;
    if (!ref || !format.chainId) return malformed;
    presented = core.ids.readChainId(verified.app.profile, format.chainId, ref.id, ref.sessionId);
    kid = verified.kid;
    // An id that names no session under this key is a pre-upgrade record's.
    if (presented.kind === 'chain') {
      const found = await findChain(core, presented);
      if (found && found.session.appId === verified.app.id) return confirmed(core, { kind: 'chain', found, generation: presented.generation, kid });
      presented = { kind: 'legacy', id: ref.id };
    }
  }
  if (presented.kind === 'chain') {
    const found = await findChain(core, presented);
    return found ? { ok: true, located: { kind: 'chain', found, generation: presented.generation, kid } } : unknown;
  }
  const legacy = await core.store.findLegacyRefresh(presented.id);
  return legacy ? confirmed(core, { kind: 'legacy', found: legacy, kid }) : unknown;
}

/** A JWT refresh token's key must still be usable as of the version read with its row (S2-13). */
async function confirmed(core: EngineCore, located: Located): Promise<LocateResult> {
  if (located.kid === null) return { ok: true, located };
  const { appId } = located.found.session;
  if (await core.keyring.stillVerifies(appId, located.kid, located.found.keysVersion)) return { ok: true, located };
  // The keys as of the row's version are read now: a key revoked since this instance cached them says so.
  return core.keyring.revokedKeyAsRead(appId, located.kid) ? revoked : unknown;
}

/** Whether a located token is its session's live refresh token now. */
export function isLive(located: Located, now: Millis): { issuedAt: Millis; expiresAt: Millis } | null {
  if (located.kind === 'chain') {
    const chain = located.found.session.refresh;
    return chain && chain.generation === located.generation && now < chain.expiresAt ? chain : null;
  }
  const { record, session } = located.found;
  return record.consumedAt === null && session.refresh === null && now < record.expiresAt ? record : null;
}
