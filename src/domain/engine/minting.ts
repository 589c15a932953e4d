import { MAX_TOKEN_LENGTH, signJwt } from '../../crypto/jwt.js';
import type { SigningKey } from '../../crypto/signing_key.js';
import { toSeconds } from '../clock.js';
import { RotorError } from '../errors.js';
import type { MintContext, TokenFormat } from '../formats/format.js';
import { newId } from '../ids.js';
import type { App, JsonObject, Millis, RefreshChain, Session } from '../types.js';
import type { EngineCore } from './core.js';
import type { Issued } from './types.js';

/**
 * The longest token Rotor issues (S2-09): verification refuses anything over MAX_TOKEN_LENGTH, and a
 * renewal's token may be longer than the issuance's (a later `exp`; after an algorithm change another
 * key's signature: from HS256's 43 characters to RSA-4096's 683), so issuance keeps this margin below
 * it and every token it hands out, and every renewal of it, stays usable.
 */
export const MAX_ISSUED_TOKEN_LENGTH = MAX_TOKEN_LENGTH - 768;

/** A refresh token as minted: the token, its payload (JWT formats) and the chain as it is stored. */
export interface MintedRefresh {
  token: string;
  payload: JsonObject | null;
  chain: RefreshChain;
  ctx: MintContext;
}

export interface MintContextOptions {
  app: App;
  session: Session;
  now: Millis;
  accessExp: number;
  refresh: MintContext['refresh'];
  cnfJkt: string | null;
}

export interface MintRefreshOptions {
  app: App;
  format: TokenFormat;
  session: Session;
  chain: RefreshChain;
  key: SigningKey;
  now: Millis;
  accessExp: number;
  cnfJkt: string | null;
}

export interface FinishOptions {
  app: App;
  session: Session;
  key: SigningKey;
  ctx: MintContext;
  format: TokenFormat;
  /** The refresh token handed out with the access token, if any. */
  refresh: { token: string; payload: JsonObject | null } | null;
  now: Millis;
}

/** The access token's `exp` in seconds: `ttl` from now, capped by the session's absolute lifetime. */
export function accessExp(app: App, session: Session, now: Millis, ttl = app.policy.accessTtl): number {
  const exp = toSeconds(now) + ttl;
  return session.expiresAt === null ? exp : Math.min(exp, toSeconds(session.expiresAt));
}

/** Generation `generation` of a session's chain minted now, or null without refresh tokens. */
export function nextChain(core: EngineCore, app: App, session: Session, generation: number, now: Millis): RefreshChain | null {
  const ttl = app.policy.refreshTtl;
  if (ttl === null || core.formats.formatFor(app.profile).refreshFormat === 'none') return null;
  let expiresAt = now + ttl * 1000;
  if (session.expiresAt !== null) expiresAt = Math.min(expiresAt, session.expiresAt);
  // Whole seconds, so that a JWT's `exp` and the stored expiry agree exactly.
  expiresAt = Math.floor(expiresAt / 1000) * 1000;
  const notBefore = Math.floor(now / 1000) * 1000 + app.policy.refreshNotBefore * 1000;
  return { generation, issuedAt: now, notBefore, expiresAt, successorSealed: null };
}

/** The chain id of `chain`'s generation (a ULID-shaped one has the generation's mint time as its time). */
export function chainIdOf(core: EngineCore, app: App, format: TokenFormat, session: Session, chain: RefreshChain): string {
  return format.chainId ? core.ids.chainId(app.profile, format.chainId, session, chain.generation, chain.issuedAt) : newId();
}

export function mintContext(core: EngineCore, o: MintContextOptions): MintContext {
  return { app: o.app, session: o.session, issuer: core.issuer, now: toSeconds(o.now), accessExp: o.accessExp, pairId: newId(o.now), refresh: o.refresh, cnfJkt: o.cnfJkt };
}

/**
 * The refresh token of `chain`'s generation, and the chain as stored: a JWT one sealed on it while its
 * parent may retry (opaque ones are recomputed instead).
 */
export function mintRefresh(core: EngineCore, o: MintRefreshOptions): MintedRefresh {
  const { app, format, session, chain } = o;
  const refresh = { notBefore: toSeconds(chain.notBefore), exp: toSeconds(chain.expiresAt), id: chainIdOf(core, app, format, session, chain) };
  const ctx = mintContext(core, { app, session, now: o.now, accessExp: o.accessExp, refresh, cnfJkt: o.cnfJkt });
  if (format.refreshFormat === 'opaque') return { token: core.ids.opaque(session.id, chain.generation), payload: null, chain, ctx };
  const parts = format.refreshToken(ctx);
  if (!parts) throw new Error(`the ${app.profile} format issued no refresh token`);
  const token = signJwt(o.key, parts.payload, parts.header, parts.encoding);
  // Sealed where a parent may retry: inside a grace window, or after a rotation a store could leave unconfirmed.
  const sealed = (app.policy.reuseGrace > 0 || core.store.confirmRotation !== undefined) && chain.generation > 1
    ? core.masterKey.seal('refresh-successor', Buffer.from(token), `${session.id}:${chain.generation}`)
    : null;
  return { token, payload: parts.payload, chain: { ...chain, successorSealed: sealed }, ctx };
}

/** The live generation's token again: recomputed (opaque) or unsealed (JWT); null if not kept. */
export function liveToken(core: EngineCore, app: App, session: Session, chain: RefreshChain): string | null {
  if (core.formats.formatFor(app.profile).refreshFormat === 'opaque') return core.ids.opaque(session.id, chain.generation);
  if (!chain.successorSealed) return null;
  return core.masterKey.open('refresh-successor', chain.successorSealed, `${session.id}:${chain.generation}`).toString();
}

/** Signs the access token and assembles the answer every API shapes. */
export function finish(o: FinishOptions): Issued {
  const { ctx, format } = o;
  const access = format.accessToken(ctx);
  return {
    app: o.app, session: o.session, key: o.key,
    accessToken: signJwt(o.key, access.payload, access.header, access.encoding),
    accessPayload: access.payload,
    expiresIn: Math.max(0, ctx.accessExp - toSeconds(o.now)),
    refreshToken: o.refresh?.token ?? null,
    refreshExpiresIn: ctx.refresh ? Math.max(0, ctx.refresh.exp - toSeconds(o.now)) : null,
    refreshPayload: o.refresh?.payload ?? null,
    tokenType: ctx.cnfJkt !== null && format.bindsAccessTokens ? 'DPoP' : 'Bearer',
    dpopNonce: null,
  };
}

/** S2-09: a token that verification would refuse is never issued; the caller learns why, nothing is stored. */
export function assertUsableLength(issued: Issued): void {
  const longest = Math.max(issued.accessToken.length, issued.refreshToken?.length ?? 0);
  if (longest > MAX_ISSUED_TOKEN_LENGTH) {
    throw new RotorError('invalid_request', `the claims make a token of ${longest} characters; tokens are limited to ${MAX_ISSUED_TOKEN_LENGTH} so that they always verify: send fewer or shorter claims`);
  }
}
