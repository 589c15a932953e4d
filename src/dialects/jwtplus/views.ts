import { createPublicKey } from 'node:crypto';
import type { App, RefreshRecord, Session, SigningKeyRecord } from '../../domain/types.js';
import type { Algorithm } from '../../domain/policy.js';

const seconds = (ms: number): number => Math.floor(ms / 1000);

/** JWTPlus's `key_type` for an algorithm. */
export function keyType(alg: Algorithm): string {
  return alg === 'ES256' ? 'ECDSA' : alg === 'RS256' ? 'RSA' : alg === 'EdDSA' ? 'EdDSA' : 'HMAC';
}

/** `public_key`: standard base64 of the SPKI PEM text, as JWTPlus stores and serves it. */
export function base64Pem(pem: string | null): string {
  return pem === null ? '' : Buffer.from(pem).toString('base64');
}

function pemOf(record: SigningKeyRecord): string | null {
  if (!record.publicJwk) return null;
  const { kty, crv, x, y, n, e } = record.publicJwk as Record<string, string | undefined>;
  const jwk = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined));
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }) as string;
}

/**
 * How JWTPlus shows an app without automatic rotation (`keyRotationPeriod: null`): as a period of 100
 * years. JWTPlus has no "never": every app has a period of at least 60 s (its create and update calls
 * require `rotation_period` min=60), and every key's `exp_time` is its creation plus that period. A
 * client that compares `exp_time` with now, or adds `rotation_period` to a time, must see a key that
 * does not expire on a schedule — never one that expired in 1970 (`exp_time: 0`).
 */
export const NO_ROTATION_PERIOD = 100 * 365 * 86400;

/** `rotation_period` as JWTPlus shows it: the app's period, or 100 years when it has none. */
export const rotationPeriodOf = (app: App): number => app.policy.keyRotationPeriod ?? NO_ROTATION_PERIOD;

/**
 * `GET /app/{app_id}/pub-keys` rows. As in JWTPlus, `exp_time` is the key's creation plus the rotation
 * period, whatever has happened to the key since (a key rotated out early or revoked keeps it;
 * `is_expired` and `is_revoked` tell). HMAC keys are never published.
 */
export function publicKeyView(record: SigningKeyRecord, app: App): Record<string, unknown> | null {
  const pem = pemOf(record);
  if (pem === null) return null;
  return {
    key_id: record.kid,
    public_key: base64Pem(pem),
    key_type: keyType(record.alg),
    key_algo: record.alg,
    exp_time: seconds(record.createdAt) + rotationPeriodOf(app),
    is_expired: record.retiredAt !== null ? 'yes' : 'no',
    is_revoked: record.state === 'revoked' ? 'yes' : 'no',
  };
}

/** `GET /app/{app_id}`: the app's settings in JWTPlus's field names (times in Unix seconds; 0 = never). */
export function appView(app: App, keys: SigningKeyRecord[]): Record<string, unknown> {
  const active = keys.find((k) => k.state === 'active');
  return {
    id: app.id,
    name: app.name,
    description: app.description,
    token_expiry: app.policy.accessTtl,
    token_notbefore: 0,
    refresh_expiry: app.policy.refreshTtl ?? 0,
    refresh_notbefore: app.policy.refreshNotBefore,
    key_type: keyType(app.policy.alg),
    algo: app.policy.alg,
    rotation_period: rotationPeriodOf(app),
    add_time: seconds(app.createdAt),
    update_time: app.updatedAt !== app.createdAt ? seconds(app.updatedAt) : 0,
    last_key_rotate: keys.length > 1 && active ? seconds(active.createdAt) : 0,
  };
}

/**
 * One `get-session` row, from a session and its live refresh record: the record's id is the pair's
 * `jid`, and the engine stamps both tokens of a pair with the record's issuance instant. The key is
 * the one that was active then.
 */
export function sessionView(session: Session, refresh: Pick<RefreshRecord, 'id' | 'issuedAt' | 'notBefore' | 'expiresAt'>, app: App, keys: SigningKeyRecord[]): Record<string, unknown> {
  const iat = seconds(refresh.issuedAt);
  const cap = (t: number) => (session.expiresAt === null ? t : Math.min(t, seconds(session.expiresAt)));
  const signer = keys
    .filter((k) => k.createdAt <= refresh.issuedAt && (k.retiredAt === null || k.retiredAt > refresh.issuedAt))
    .sort((a, b) => b.createdAt - a.createdAt)[0];
  return {
    token_id: refresh.id,
    key_id: signer?.kid ?? '',
    auth_token_iat: iat,
    auth_token_nbf: iat,
    auth_token_exp: cap(iat + app.policy.accessTtl),
    refresh_token_iat: iat,
    refresh_token_nbf: seconds(refresh.notBefore),
    refresh_token_exp: seconds(refresh.expiresAt),
    ip_address: session.lastIp ?? session.ip ?? '',
    user_agent: session.lastUserAgent ?? session.userAgent ?? '',
  };
}
