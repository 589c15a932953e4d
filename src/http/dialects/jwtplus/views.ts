import { createPublicKey } from 'node:crypto';
import type { App, RefreshRecord, Session, SigningKeyRecord } from '../../../domain/types.js';
import type { Algorithm } from '../../../domain/policy.js';

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
 * `GET /app/{app_id}/pub-keys` rows. `exp_time` is when the key stopped signing (or, for the active
 * key, when the app's rotation period will retire it; 0 without one). HMAC keys are never published.
 */
export function publicKeyView(record: SigningKeyRecord, app: App): Record<string, unknown> | null {
  const pem = pemOf(record);
  if (pem === null) return null;
  const period = app.policy.keyRotationPeriod;
  const expTime = record.retiredAt !== null ? seconds(record.retiredAt)
    : record.revokedAt !== null ? seconds(record.revokedAt)
    : period !== null ? seconds(record.createdAt) + period : 0;
  return {
    key_id: record.kid,
    public_key: base64Pem(pem),
    key_type: keyType(record.alg),
    key_algo: record.alg,
    exp_time: expTime,
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
    rotation_period: app.policy.keyRotationPeriod ?? 0,
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
export function sessionView(session: Session, refresh: RefreshRecord, app: App, keys: SigningKeyRecord[]): Record<string, unknown> {
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
