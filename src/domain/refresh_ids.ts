import type { MasterKey } from '../crypto/master_key.js';
import { secureRandomBytes } from '../crypto/random.js';
import {
  isChainOpaqueToken, isLegacyOpaqueToken, legacyOpaqueId, mintOpaque, openId, readOpaque, sealId, sessionCheck,
} from '../crypto/refresh_codec.js';
import type { ChainIdLayout } from './formats/format.js';
import type { Profile } from './policy.js';
import type { Session } from './types.js';

/** What a presented refresh token names: a generation of a session's chain, or a pre-upgrade record. */
export type Presented =
  | { kind: 'chain'; session: { id: string } | { locator: string }; generation: number }
  | { kind: 'legacy'; id: string };

/**
 * Refresh-token names under keys derived from the master key (SPEC §2.9): opaque native tokens, and the
 * sealed ids JWT formats carry. Nothing here is stored; the same inputs always give the same token.
 */
export class RefreshIds {
  private readonly macKey: Buffer;
  private readonly idKeys = new Map<Profile, Buffer>();

  constructor(private readonly masterKey: MasterKey) {
    this.macKey = masterKey.derive('refresh-mac');
  }

  /** A fresh locator for a session whose profile's ids must name it (56 random bits, hex). */
  newLocator(): string {
    return secureRandomBytes(7).toString('hex');
  }

  opaque(sessionId: string, generation: number): string {
    return mintOpaque(this.macKey, sessionId, generation);
  }

  /** An opaque token's name; null when it is neither a genuine chain token nor a pre-upgrade one. */
  readOpaque(token: string): Presented | null {
    if (isLegacyOpaqueToken(token)) return { kind: 'legacy', id: legacyOpaqueId(token) };
    if (!isChainOpaqueToken(token)) return null;
    const read = readOpaque(this.macKey, token);
    return read && { kind: 'chain', session: { id: read.sessionId }, generation: read.generation };
  }

  /** The id a JWT of `session`'s generation `generation` carries (a ULID takes `timeMs` as its time). */
  chainId(profile: Profile, layout: ChainIdLayout, session: Session, generation: number, timeMs: number): string {
    if (layout.locatesSession && !/^[0-9a-f]{14}$/.test(session.locator ?? '')) throw new Error(`a ${profile} session needs a locator`);
    const high = layout.locatesSession ? BigInt(`0x${session.locator}`) : sessionCheck(session.id);
    return sealId(this.idKey(profile), high, generation, layout.shape, timeMs);
  }

  /**
   * What a verified JWT's chain id names. An id that does not open under this profile's key (or whose
   * check does not match its `sid` claim) is a pre-upgrade token's: its record is looked up by that id.
   */
  readChainId(profile: Profile, layout: ChainIdLayout, id: string, sessionIdClaim: string | null): Presented {
    const opened = openId(this.idKey(profile), id, layout.shape);
    if (opened && layout.locatesSession) return { kind: 'chain', session: { locator: opened.high.toString(16).padStart(14, '0') }, generation: opened.generation };
    if (opened && sessionIdClaim !== null && opened.high === sessionCheck(sessionIdClaim)) {
      return { kind: 'chain', session: { id: sessionIdClaim }, generation: opened.generation };
    }
    return { kind: 'legacy', id };
  }

  private idKey(profile: Profile): Buffer {
    let key = this.idKeys.get(profile);
    if (!key) {
      key = this.masterKey.derive(`refresh-id:${profile}`);
      this.idKeys.set(profile, key);
    }
    return key;
  }
}
