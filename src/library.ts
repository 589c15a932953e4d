import pino, { type Logger } from 'pino';
import { ConfigError, issuerProblem, loadConfig, type Config } from './config.js';
import { callerClient } from './domain/claims.js';
import type { Clock } from './domain/clock.js';
import type { DpopInput, Introspection } from './domain/engine.js';
import { RotorError } from './domain/errors.js';
import type { Rotor } from './domain/rotor.js';
import type { SubjectPatch } from './domain/subjects.js';
import type { App } from './domain/types.js';
import { adminSessionView, appView, signingKeyView, subjectView } from './http/admin/views.js';
import { tokenPair } from './http/native/token_pair.js';
import { Metrics, observerFor } from './http/observability.js';
import { openRotor } from './runtime.js';

/** SPEC §10 `createRotor(options)`. */
export interface CreateRotorOptions {
  /** `sqlite:<path>`, `sqlite::memory:`, `postgres://…` or `redis+cluster://…`, as ROTOR_DATABASE_URL (the schema is migrated on open). */
  databaseUrl: string;
  /** 32 random bytes, base64 (as ROTOR_MASTER_KEY) or raw. Required: a library never writes a key file of its own. */
  masterKey: string | Uint8Array;
  /**
   * The public URL Rotor's APIs are reached at, **with the prefix the host mounts `rotorPlugin` under**
   * (`https://example.com/auth` for `prefix: '/auth'`): token `iss` (`{issuer}/apps/{appId}`), the
   * endpoints of the discovery documents, and the `htu` DPoP proofs must name are built from it.
   */
  issuer: string;
  /** Milliseconds since the epoch; defaults to the store's clock on PostgreSQL and Redis, else the system's. */
  clock?: Clock | (() => number);
  /** Where security events are logged (`warn`, an `event` field, ids only); the host's pino/fastify logger fits. Silent by default. */
  logger?: Logger;
}

/** SPEC §4.1 `TokenPair`. */
export interface TokenPair {
  accessToken: string;
  tokenType: 'Bearer' | 'DPoP';
  expiresIn: number;
  /** Absent for profiles without refresh tokens (verifik). */
  refreshToken?: string;
  refreshExpiresIn?: number;
  sessionId: string;
}

/** An app as the admin API shows it (never its app keys' hashes). */
export type AppView = ReturnType<typeof appView>;
/** A signing key's public part and state (never the sealed private key). */
export type SigningKeyView = ReturnType<typeof signingKeyView>;
/** A subject (never its password hash: only whether one is set). */
export type SubjectView = ReturnType<typeof subjectView>;
/** A session as an operator reads it: device, times, state and why it was revoked. */
export type SessionView = ReturnType<typeof adminSessionView>;
export type { Introspection };

/** An app, by id or name. */
export type AppRef = string;

export interface IssueInput {
  subject: string;
  /** Copied into the session's access tokens, over the subject's stored claims. */
  claims?: Record<string, unknown>;
  audience?: string;
  /** The client's address and user agent, recorded on the session (validated). */
  ip?: string;
  userAgent?: string;
  /** RFC 7638 thumbprint of the client's DPoP key: binds the session (SPEC §2.10). */
  dpopJkt?: string;
}

export interface RefreshInput {
  /**
   * Redeem as this app's backend: the token must be this app's, and a confidential app's tokens are
   * redeemable only so (the engine's caller holds the master key: it is trusted as the app's backend).
   * Without it the call is a public client's.
   */
  app?: AppRef;
  /** Recorded as the session's last-seen values (validated: an IP address, at most 512 characters). */
  ip?: string;
  userAgent?: string;
  /** The DPoP proof of the request this refresh serves, for a bound session. */
  dpop?: DpopInput;
}

/** What `createRotor` returns: the engine over the chosen store (SPEC §10). */
export interface RotorInstance {
  readonly issuer: string;
  readonly storeKind: string;

  /** Issues a session for a subject of the app; the subject is created when new. */
  issue(app: AppRef, input: IssueInput): Promise<TokenPair>;
  /** Rotates a refresh token (grace retries and reuse detection as on every API). */
  refresh(refreshToken: string, input?: RefreshInput): Promise<TokenPair>;
  /** Revokes the session of a refresh or access token; unknown tokens are no error (RFC 7009). */
  revoke(token: string): Promise<void>;
  /** RFC 7662 introspection on behalf of the app: tokens of other apps are `{active: false}`. */
  introspect(token: string, app: AppRef): Promise<Introspection>;

  readonly apps: {
    create(input: { name: string; profile?: string; public?: boolean; policy?: Record<string, unknown>; description?: string }):
      Promise<{ app: AppView; appKey: string; appKeyId: string }>;
    list(): Promise<AppView[]>;
    get(app: AppRef): Promise<AppView>;
    update(app: AppRef, patch: { name?: string; public?: boolean; policy?: Record<string, unknown>; description?: string }): Promise<AppView>;
    delete(app: AppRef): Promise<void>;
    createAppKey(app: AppRef): Promise<{ id: string; appKey: string }>;
    revokeAppKey(app: AppRef, id: string): Promise<void>;
  };
  readonly keys: {
    list(app: AppRef): Promise<SigningKeyView[]>;
    rotate(app: AppRef): Promise<SigningKeyView>;
    revoke(app: AppRef, kid: string): Promise<void>;
    /** The app's JWKS (active and retiring asymmetric keys), or every app's without `app`. */
    jwks(app?: AppRef): Promise<{ keys: Record<string, unknown>[] }>;
  };
  readonly subjects: {
    put(app: AppRef, subject: string, patch: SubjectPatch): Promise<SubjectView>;
    get(app: AppRef, subject: string): Promise<SubjectView>;
    delete(app: AppRef, subject: string): Promise<void>;
  };
  readonly sessions: {
    list(app: AppRef, subject: string): Promise<SessionView[]>;
    revoke(app: AppRef, sessionId: string): Promise<void>;
    revokeAll(app: AppRef, subject: string): Promise<number>;
  };

  /** Prometheus metrics of this engine and of `rotorPlugin`'s requests (`metrics.registry.metrics()` for a /metrics route). */
  readonly metrics: Metrics;
  /** Deletes what nothing can use any more; call it every minute or so (`rotor serve` does). */
  prune(): Promise<void>;
  /** Closes the store. */
  close(): Promise<void>;
}

/** The parts rotorPlugin mounts; not part of the public API. */
export const INTERNALS = Symbol.for('rotor.internals');
export interface Internals {
  rotor: Rotor;
  config: Config;
  metrics: Metrics;
}

export function internalsOf(instance: RotorInstance): Internals {
  const internals = (instance as unknown as Record<symbol, Internals | undefined>)[INTERNALS];
  if (!internals) throw new TypeError('rotorPlugin needs the `rotor` option: an instance made by createRotor()');
  return internals;
}

/**
 * SPEC §10: the engine over the store `databaseUrl` names, migrated, with its master key checked
 * against the keys already sealed in it. Nothing happens on import; everything here happens on call.
 */
export async function createRotor(options: CreateRotorOptions): Promise<RotorInstance> {
  if (options === null || typeof options !== 'object') throw new ConfigError('createRotor needs { databaseUrl, masterKey, issuer }');
  const masterKey = typeof options.masterKey === 'string' ? options.masterKey : Buffer.from(options.masterKey ?? []).toString('base64');
  if (!masterKey) throw new ConfigError('createRotor: masterKey is required (32 random bytes, base64: openssl rand -base64 32)');
  const problem = typeof options.issuer === 'string' ? issuerProblem(options.issuer) : 'is required';
  if (problem) {
    throw new ConfigError(`createRotor: issuer ${problem}; it is the public URL of the prefix rotorPlugin is mounted under, e.g. https://example.com/auth`);
  }
  const config = loadConfig({
    ROTOR_DATABASE_URL: options.databaseUrl,
    ROTOR_MASTER_KEY: masterKey,
    ROTOR_ISSUER: options.issuer,
    ROTOR_RATE_LIMITS: 'off',
  });
  const clock: Clock | undefined = typeof options.clock === 'function' ? { now: options.clock } : options.clock;
  const metrics = new Metrics({ defaultMetrics: false });
  const logger = options.logger ?? pino({ level: 'silent' });
  const { rotor } = await openRotor({ config, clock, observer: observerFor(metrics, logger), logger });
  const app = (ref: AppRef): Promise<App> => rotor.apps.get(ref);

  const instance: RotorInstance & { [INTERNALS]: Internals } = {
    [INTERNALS]: { rotor, config, metrics },
    issuer: rotor.issuer,
    storeKind: rotor.storeKind,

    async issue(ref, input) {
      const target = await app(ref);
      const issued = await rotor.issueSession(target, {
        subject: input?.subject, claims: input?.claims, audience: input?.audience, dpopJkt: input?.dpopJkt,
        client: { ip: input?.ip, userAgent: input?.userAgent },
      });
      return tokenPair(issued) as unknown as TokenPair;
    },
    async refresh(refreshToken, input = {}) {
      const client = input.app === undefined ? undefined : await app(input.app);
      const issued = await rotor.refresh(refreshToken, {
        client, clientAuthenticated: client !== undefined,
        context: callerClient(input.ip, input.userAgent),
        dpop: input.dpop ?? { proof: null, htm: 'POST', htu: `${rotor.issuer}/v1/refresh` },
      });
      return tokenPair(issued) as unknown as TokenPair;
    },
    async revoke(token) {
      await rotor.revokeToken(token);
    },
    async introspect(token, ref) {
      return rotor.introspect(token, await app(ref));
    },

    apps: {
      async create(input) {
        const created = await rotor.apps.create(input);
        return { app: appView(created.app), appKey: created.appKey, appKeyId: created.appKeyId };
      },
      list: async () => (await rotor.apps.list()).map(appView),
      get: async (ref) => appView(await app(ref)),
      update: async (ref, patch) => appView(await rotor.apps.update(ref, patch)),
      delete: (ref) => rotor.apps.delete(ref),
      createAppKey: (ref) => rotor.apps.createAppKey(ref),
      revokeAppKey: (ref, id) => rotor.apps.revokeAppKey(ref, id),
    },
    keys: {
      list: async (ref) => (await rotor.apps.listKeys(ref)).map((k) => signingKeyView(k, rotor.clock.now())),
      rotate: async (ref) => signingKeyView(await rotor.apps.rotateKey(ref), rotor.clock.now()),
      revoke: (ref, kid) => rotor.apps.revokeKey(ref, kid),
      jwks: async (ref) => rotor.jwks(ref === undefined ? undefined : await app(ref)),
    },
    subjects: {
      put: async (ref, subject, patch) => subjectView(await rotor.subjects.put(await app(ref), subject, patch ?? {})),
      get: async (ref, subject) => subjectView(await rotor.subjects.get(await app(ref), subject)),
      delete: async (ref, subject) => rotor.subjects.delete(await app(ref), subject),
    },
    sessions: {
      async list(ref, subject) {
        const target = await app(ref);
        return (await rotor.listSessions(target, subject)).map((s) => adminSessionView(s, rotor.sessionState(target, s)));
      },
      revoke: async (ref, sessionId) => rotor.revokeSessionOf(await app(ref), sessionId),
      revokeAll: async (ref, subject) => rotor.revokeSubjectSessions(await app(ref), subject),
    },

    metrics,
    async prune() {
      await rotor.prune(config.revokedRetention);
    },
    async close() {
      await rotor.events.flushed();
      await rotor.close();
    },
  };
  return instance;
}

export { RotorError, ConfigError };
