import type { App, SigningKeyRecord, Subject } from '../../domain/types.js';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export const appView = (app: App) => ({
  id: app.id, name: app.name, profile: app.profile, public: app.public, description: app.description,
  policy: app.policy, createdAt: iso(app.createdAt), updatedAt: iso(app.updatedAt),
});

export const signingKeyView = (key: SigningKeyRecord) => ({
  kid: key.kid, alg: key.alg, state: key.state, createdAt: iso(key.createdAt), retiredAt: iso(key.retiredAt),
  publishUntil: iso(key.publishUntil), revokedAt: iso(key.revokedAt), publicJwk: key.publicJwk,
});

/** Never the password hash: only whether one is set. */
export const subjectView = (s: Subject) => ({
  subject: s.subject, claims: s.claims, status: s.status, hasPassword: s.passwordHash !== null,
  ed25519PublicKey: s.ed25519PublicKey, createdAt: iso(s.createdAt), updatedAt: iso(s.updatedAt),
});
