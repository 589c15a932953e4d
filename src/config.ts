import { dirname, join, resolve } from 'node:path';
import { MasterKey } from './crypto/master_key.js';
import { DEFAULT_RATE_LIMITS, type RateLimits } from './http/rate_limit.js';

/** SPEC §6. Every value comes from the environment; nothing here reads a file except the master key. */
export interface Config {
  databaseUrl: string;
  host: string;
  port: number;
  adminToken: string | null;
  issuer: string;
  logLevel: string;
  trustProxy: boolean;
  workers: number;
  /** `NORMAL` (default) survives process crashes in WAL mode; `FULL` also survives power loss. */
  sqliteSynchronous: 'NORMAL' | 'FULL';
  /** How long revoked sessions stay listable before pruning, seconds. */
  revokedRetention: number;
  masterKeyBase64: string | null;
  /** Verifik dialect: `signature.message` of its 401 bodies (ROTOR_VERIFIK_SIGNATURE_MESSAGE). */
  verifikSignatureMessage: string;
  /** Security events are POSTed here when set (signed with webhookSecret when that is set too). */
  webhookUrl: string | null;
  /** Per-minute request limits; null when ROTOR_RATE_LIMITS=off. */
  rateLimits: RateLimits | null;
  webhookSecret: string | null;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const host = env.ROTOR_HOST?.trim() || '127.0.0.1';
  const port = integer(env.ROTOR_PORT, 8080, 'ROTOR_PORT', 0, 65535);
  const adminToken = env.ROTOR_ADMIN_TOKEN?.length ? env.ROTOR_ADMIN_TOKEN : null;
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError('ROTOR_ADMIN_TOKEN must be at least 16 characters (generate one with: openssl rand -base64 32)');
  }
  const issuer = (env.ROTOR_ISSUER?.trim() || `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');
  try {
    new URL(issuer);
  } catch {
    throw new ConfigError('ROTOR_ISSUER must be an absolute URL such as https://auth.example.com');
  }
  const synchronous = (env.ROTOR_SQLITE_SYNCHRONOUS ?? 'NORMAL').toUpperCase();
  if (synchronous !== 'NORMAL' && synchronous !== 'FULL') throw new ConfigError('ROTOR_SQLITE_SYNCHRONOUS must be NORMAL or FULL');
  const databaseUrl = env.ROTOR_DATABASE_URL?.trim() || 'sqlite:./data/rotor.db';
  databaseTarget(databaseUrl);
  return {
    databaseUrl,
    host,
    port,
    adminToken,
    issuer,
    logLevel: env.ROTOR_LOG_LEVEL?.trim() || 'info',
    trustProxy: ['1', 'true', 'yes', 'on'].includes((env.ROTOR_TRUST_PROXY ?? '').toLowerCase()),
    workers: integer(env.ROTOR_WORKERS, 1, 'ROTOR_WORKERS', 1, 64),
    sqliteSynchronous: synchronous,
    revokedRetention: integer(env.ROTOR_REVOKED_RETENTION, 7 * 86400, 'ROTOR_REVOKED_RETENTION', 0, 3650 * 86400),
    masterKeyBase64: env.ROTOR_MASTER_KEY?.trim() || null,
    verifikSignatureMessage: verifikSignatureMessage(env.ROTOR_VERIFIK_SIGNATURE_MESSAGE),
    webhookUrl: webhookUrl(env.ROTOR_WEBHOOK_URL),
    rateLimits: rateLimits(env.ROTOR_RATE_LIMITS),
    webhookSecret: env.ROTOR_WEBHOOK_SECRET?.length ? env.ROTOR_WEBHOOK_SECRET : null,
  };
}

/** `ROTOR_RATE_LIMITS`: `off`, or `name=count,…` overriding the defaults (per minute). */
function rateLimits(text: string | undefined): RateLimits | null {
  if (text?.trim().toLowerCase() === 'off') return null;
  const limits: RateLimits = { ...DEFAULT_RATE_LIMITS };
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, value] = part.split('=') as [string, string | undefined];
    const count = Number(value);
    if (!(name in limits) || !Number.isInteger(count) || count < 1) {
      throw new ConfigError(`ROTOR_RATE_LIMITS: "${part.slice(0, 60)}" is not name=count with name one of ${Object.keys(DEFAULT_RATE_LIMITS).join(', ')} (or set it to off)`);
    }
    limits[name as keyof RateLimits] = count;
  }
  return limits;
}

function webhookUrl(text: string | undefined): string | null {
  if (!text?.trim()) return null;
  try {
    const url = new URL(text.trim());
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.toString();
  } catch {
    // reported below
  }
  throw new ConfigError('ROTOR_WEBHOOK_URL must be an http(s) URL, e.g. https://hooks.example.com/rotor');
}

function verifikSignatureMessage(text: string | undefined): string {
  if (text === undefined || text === '') return 'Certified by Rotor';
  // eslint-disable-next-line no-control-regex
  if (text.length > 200 || /[\u0000-\u001f\u007f]/.test(text)) {
    throw new ConfigError('ROTOR_VERIFIK_SIGNATURE_MESSAGE must be at most 200 printable characters');
  }
  return text;
}

function integer(text: string | undefined, fallback: number, name: string, min: number, max: number): number {
  if (text === undefined || text.trim() === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`);
  return value;
}

export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export function databaseTarget(url: string): DatabaseTarget {
  if (url === 'sqlite::memory:') return { kind: 'sqlite', path: ':memory:' };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new ConfigError('ROTOR_DATABASE_URL sqlite:<path> needs a path, e.g. sqlite:./data/rotor.db');
    return { kind: 'sqlite', path: resolve(path) };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { kind: 'postgres', url };
  throw new ConfigError('ROTOR_DATABASE_URL must be sqlite:<path>, sqlite::memory: or postgres://…');
}

/**
 * The master key: from ROTOR_MASTER_KEY, else (SQLite only) a key file generated beside the database
 * with mode 0600. An in-memory database gets a key that lives as long as the process.
 */
export function loadMasterKey(config: Config): MasterKey {
  if (config.masterKeyBase64) {
    try {
      return MasterKey.fromBase64(config.masterKeyBase64);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const target = databaseTarget(config.databaseUrl);
  if (target.kind === 'postgres') {
    throw new ConfigError('ROTOR_MASTER_KEY is required with PostgreSQL: set it to 32 random bytes, base64 (openssl rand -base64 32), the same on every instance');
  }
  if (target.path === ':memory:') return MasterKey.random();
  return MasterKey.fromFile(join(dirname(target.path), 'master.key'));
}
