import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { dirname, join, resolve } from 'node:path';
import { MasterKey } from './crypto/master_key.js';
import { canonicalOrigin, originProblem } from './domain/origins.js';
import { parseRedisClusterUrl, type RedisClusterOptions } from './config/redis_url.js';

/** ROTOR_RATE_LIMITS (SPEC §4.5): per-minute budgets the HTTP server enforces. */
export interface RateLimits {
  /** Refresh attempts per client ip per minute (every refresh endpoint, native, OAuth and dialects). */
  refreshPerIp: number;
  /** Failed refreshes per client ip per minute: guessing refresh tokens (R-15). */
  refreshFailuresPerIp: number;
  /** Login attempts per client ip per minute. */
  loginPerIp: number;
  /** Failed logins per (ip, username) per minute: slows guessing without letting anyone lock a user out. */
  loginFailuresPerUser: number;
  /** Admin API calls per client ip per minute. */
  adminPerIp: number;
  /** Session issuance per app per minute. */
  issuePerApp: number;
  /** How many leading bits of an IPv6 address one per-ip bucket covers: 56 (a subscriber's /56) unless set. */
  ipv6Prefix: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  refreshPerIp: 6000,
  refreshFailuresPerIp: 120,
  loginPerIp: 300,
  loginFailuresPerUser: 10,
  adminPerIp: 1200,
  issuePerApp: 60_000,
  ipv6Prefix: 56,
};

/** What `ipv6Prefix` may be: from a /16 (a whole provider's worth) to one address. */
const IPV6_PREFIX_RANGE = [16, 128] as const;

/** SPEC §6. Every value comes from the environment; nothing here reads a file except the master key. */
export interface Config {
  databaseUrl: string;
  host: string;
  port: number;
  adminToken: string | null;
  issuer: string;
  logLevel: string;
  /**
   * ROTOR_TRUST_PROXY (S2-02): whom fastify trusts to have appended to X-Forwarded-For. `false`: nobody
   * (the peer is the client); a list of proxy addresses/CIDRs; or a hop count, as a trust function (fastify
   * 5 ignores a plain number: it trusts nothing then). Never `true`, which takes the client-written left-most entry.
   */
  trustProxy: TrustProxy;
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
  /**
   * ROTOR_CORS_ORIGINS (SPEC §4.6): the exact origins browsers may call Rotor from, canonical
   * (`scheme://host[:port]`, lower case, no default port). Empty: no cross-origin browser calls, except
   * from Rotor's own origin (that of `issuer`), which is always allowed.
   */
  corsOrigins: readonly string[];
}

/** `hops` proxies in front: fastify's (address, hop) trust function for hops 0 … hops-1, the peer being hop 0. */
export type HopCountTrust = ((address: string, hop: number) => boolean) & { readonly hops: number };
export type TrustProxy = false | string[] | HopCountTrust;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const host = env.ROTOR_HOST?.trim() || '127.0.0.1';
  const port = integer(env.ROTOR_PORT, 8080, 'ROTOR_PORT', 0, 65535);
  const adminToken = env.ROTOR_ADMIN_TOKEN?.length ? env.ROTOR_ADMIN_TOKEN : null;
  const adminProblem = adminToken === null ? null : secretProblem(adminToken);
  if (adminProblem) throw new ConfigError(`ROTOR_ADMIN_TOKEN ${adminProblem} (generate one with: openssl rand -base64 32)`);
  const issuer = (env.ROTOR_ISSUER?.trim() || `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');
  const problem = issuerProblem(issuer);
  if (problem) throw new ConfigError(`ROTOR_ISSUER ${problem}`);
  const webhookSecret = env.ROTOR_WEBHOOK_SECRET?.length ? env.ROTOR_WEBHOOK_SECRET : null;
  const hookProblem = webhookSecret === null ? null : secretProblem(webhookSecret);
  if (hookProblem) throw new ConfigError(`ROTOR_WEBHOOK_SECRET ${hookProblem} (generate one with: openssl rand -base64 32)`);
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
    logLevel: logLevel(env.ROTOR_LOG_LEVEL),
    trustProxy: trustProxy(env.ROTOR_TRUST_PROXY),
    workers: integer(env.ROTOR_WORKERS, 1, 'ROTOR_WORKERS', 1, 64),
    sqliteSynchronous: synchronous,
    revokedRetention: integer(env.ROTOR_REVOKED_RETENTION, 7 * 86400, 'ROTOR_REVOKED_RETENTION', 0, 3650 * 86400),
    masterKeyBase64: env.ROTOR_MASTER_KEY?.trim() || null,
    verifikSignatureMessage: verifikSignatureMessage(env.ROTOR_VERIFIK_SIGNATURE_MESSAGE),
    webhookUrl: webhookUrl(env.ROTOR_WEBHOOK_URL),
    rateLimits: rateLimits(env.ROTOR_RATE_LIMITS),
    webhookSecret,
    corsOrigins: corsOrigins(env.ROTOR_CORS_ORIGINS),
  };
}

/** `ROTOR_CORS_ORIGINS`: comma-separated exact origins; `null`, wildcards, paths and trailing slashes are refused. */
function corsOrigins(text: string | undefined): string[] {
  const origins = new Set<string>();
  for (const entry of (text ?? '').split(',').map((part) => part.trim()).filter(Boolean)) {
    const canonical = canonicalOrigin(entry);
    if (canonical === null) {
      const problem = originProblem(entry) ?? 'it is not an origin';
      throw new ConfigError(`ROTOR_CORS_ORIGINS: ${JSON.stringify(entry.slice(0, 80))} is not an exact origin: ${problem} (e.g. https://app.example.com,http://localhost:5173)`);
    }
    origins.add(canonical);
  }
  return [...origins];
}

/** `ROTOR_RATE_LIMITS`: `off`, or `name=count,…` overriding the defaults (per minute). */
function rateLimits(text: string | undefined): RateLimits | null {
  if (text?.trim().toLowerCase() === 'off') return null;
  const limits: RateLimits = { ...DEFAULT_RATE_LIMITS };
  const seen = new Set<string>();
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    // Exactly one `=`, a limit's own name (not Object.prototype's), decimal digits only (Number() would
    // also read 0x40, 1e2 and 0b1): a typo is refused, never taken in as something else.
    const [name, value, extra] = part.split('=') as [string, string | undefined, string | undefined];
    const count = extra === undefined && /^\d{1,15}$/.test(value ?? '') ? Number(value) : Number.NaN;
    if (!Object.hasOwn(DEFAULT_RATE_LIMITS, name) || !Number.isInteger(count) || count < 1) {
      throw new ConfigError(`ROTOR_RATE_LIMITS: "${part.slice(0, 60)}" is not name=count with name one of ${Object.keys(DEFAULT_RATE_LIMITS).join(', ')} (or set it to off)`);
    }
    if (seen.has(name)) throw new ConfigError(`ROTOR_RATE_LIMITS: ${name} is given twice`);
    seen.add(name);
    limits[name as keyof RateLimits] = count;
  }
  const problem = rateLimitsProblem(limits);
  if (problem) throw new ConfigError(`ROTOR_RATE_LIMITS: ${problem}`);
  return limits;
}

/** Why a set of limits cannot be used (a library host's, or the environment's), or null. */
export function rateLimitsProblem(limits: RateLimits): string | null {
  for (const [name, value] of Object.entries(limits)) {
    if (!Object.hasOwn(DEFAULT_RATE_LIMITS, name)) return `${name.slice(0, 40)} is not a limit (${Object.keys(DEFAULT_RATE_LIMITS).join(', ')})`;
    if (!Number.isInteger(value) || value < 1) return `${name} must be a positive integer`;
  }
  if (limits.ipv6Prefix < IPV6_PREFIX_RANGE[0] || limits.ipv6Prefix > IPV6_PREFIX_RANGE[1]) {
    return `ipv6Prefix is a prefix length from ${IPV6_PREFIX_RANGE[0]} to ${IPV6_PREFIX_RANGE[1]} bits (56 by default)`;
  }
  return null;
}

const TRUST_PROXY_HELP = 'set the number of proxies in front of Rotor (e.g. 1) or their addresses (e.g. 10.0.0.0/8,192.168.1.5)';

/**
 * `ROTOR_TRUST_PROXY` (S2-02): off, a hop count, or proxy addresses/CIDRs. The client is then the address the
 * outermost trusted proxy appended to X-Forwarded-For, never the client-written left-most entry.
 */
function trustProxy(text: string | undefined): TrustProxy {
  const value = (text ?? '').trim();
  const lower = value.toLowerCase();
  if (['', 'off', 'false', 'no', '0'].includes(lower)) return false;
  if (['true', 'yes', 'on', 'all', '*'].includes(lower)) {
    throw new ConfigError(`ROTOR_TRUST_PROXY=${value} is ambiguous: ${TRUST_PROXY_HELP}`);
  }
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    if (hops === 0) return false;
    if (hops > 32) throw new ConfigError(`ROTOR_TRUST_PROXY=${value}: the number of proxies in front of Rotor must be from 1 to 32`);
    return Object.assign((_address: string, hop: number) => hop < hops, { hops });
  }
  const entries = value.split(',').map((entry) => entry.trim()).filter(Boolean);
  if (entries.length === 0) throw new ConfigError(`ROTOR_TRUST_PROXY=${JSON.stringify(value.slice(0, 60))} names no proxy; ${TRUST_PROXY_HELP}`);
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    if (family === 0 || address.includes('%') || rest.length > 0 || (prefix !== undefined && !(/^(0|[1-9]\d{0,2})$/.test(prefix) && Number(prefix) <= bits))) {
      throw new ConfigError(`ROTOR_TRUST_PROXY: ${JSON.stringify(entry.slice(0, 60))} is not an IPv4/IPv6 address or CIDR (prefix /0-/32 or /0-/128); ${TRUST_PROXY_HELP}`);
    }
    if (prefix === '0') {
      throw new ConfigError(`ROTOR_TRUST_PROXY: "${entry}" trusts every address, so any client could pick its own ip; ${TRUST_PROXY_HELP}`);
    }
    const wide = tooWideRange(address, prefix === undefined ? bits : Number(prefix));
    if (wide) throw new ConfigError(`ROTOR_TRUST_PROXY: "${entry}" trusts ${wide}, so clients there could pick their own ip; ${TRUST_PROXY_HELP}`);
  }
  return entries;
}

/** The widest range a proxy entry may name: no network of proxies is wider than a /8 (10.0.0.0/8, fd00::/8). */
const MIN_PROXY_PREFIX = 8;
/** Outside private and link-local space an IPv6 /8 is a registry's block of the public internet: a /16 at most there. */
const MIN_PUBLIC_IPV6_PREFIX = 16;
const IPV4_MAPPED = ipaddr.parse('::ffff:0:0');
const PRIVATE_IPV6 = [ipaddr.parseCIDR('fc00::/7'), ipaddr.parseCIDR('fe80::/10')];

/**
 * What a proxy range covers that no proxies are, or null. An IPv4 peer also matches an IPv6 range holding
 * its IPv4-mapped form (`::ffff:0:0/96` is every IPv4 address, `::/8` too), and `0.0.0.0/1,128.0.0.0/1`
 * is trust-everything in two halves: so each entry, in either family, must be a /8 or narrower.
 */
function tooWideRange(address: string, prefix: number): string | null {
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return prefix < MIN_PROXY_PREFIX ? `a /${prefix} of IPv4` : null;
  if (prefix <= 96 && parsed.match(IPV4_MAPPED, prefix)) return 'every IPv4 address (as IPv4-mapped IPv6)';
  if (prefix > 96 && parsed.match(IPV4_MAPPED, 96)) return prefix - 96 < MIN_PROXY_PREFIX ? `a /${prefix - 96} of IPv4 (as IPv4-mapped IPv6)` : null;
  if (prefix < MIN_PROXY_PREFIX) return `a /${prefix} of IPv6`;
  const inPrivate = PRIVATE_IPV6.some(([net, bits]) => prefix >= bits && parsed.match(net, bits));
  return !inPrivate && prefix < MIN_PUBLIC_IPV6_PREFIX ? `a /${prefix} of public IPv6` : null;
}

function webhookUrl(text: string | undefined): string | null {
  if (!text?.trim()) return null;
  const url = httpUrl(text.trim());
  if (url === null) throw new ConfigError('ROTOR_WEBHOOK_URL must be an http(s) URL, e.g. https://hooks.example.com/rotor');
  // fetch() refuses a URL with credentials on every delivery: every event would be lost, silently.
  if (url.username || url.password) {
    throw new ConfigError('ROTOR_WEBHOOK_URL must not carry user:password@ (fetch refuses it); authenticate deliveries with ROTOR_WEBHOOK_SECRET');
  }
  return url.toString();
}

function httpUrl(text: string): URL | null {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/**
 * Why `issuer` cannot be Rotor's issuer, or null. RFC 8414 §2: an http(s) URL with no query and no
 * fragment; with credentials it would publish them in discovery and in every token's `iss`.
 */
export function issuerProblem(issuer: string): string | null {
  const url = httpUrl(issuer);
  if (url === null) return 'must be an absolute http(s) URL such as https://auth.example.com';
  if (url.username || url.password) return 'must not carry user:password@ (it is published in discovery and in every token)';
  if (issuer.includes('?') || issuer.includes('#')) return 'must have no query and no fragment (RFC 8414 §2)';
  return null;
}

/**
 * Why a shared secret (the admin token, the webhook key) is unfit, or null: long enough, printable ASCII
 * with no space (a trailing newline from a file could never be sent back in a header), not a few
 * characters repeated.
 */
function secretProblem(secret: string): string | null {
  if (secret.length < 16) return 'must be at least 16 characters';
  if (!/^[\x21-\x7e]+$/.test(secret)) return 'must be printable ASCII with no spaces or line breaks';
  // Five different characters: `openssl rand -hex 8` falls short about once in two million draws.
  if (new Set(secret).size < 5) return 'must not be a few characters repeated';
  return null;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(text: string | undefined): string {
  const level = text?.trim().toLowerCase() || 'info';
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`ROTOR_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
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
  // Decimal digits only: Number() would also read 0x61A9, 1e1 and 8080.0.
  const value = /^\d{1,15}$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`);
  return value;
}

export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string } | { kind: 'redis'; url: string; options: RedisClusterOptions };

export function databaseTarget(url: string): DatabaseTarget {
  if (url === 'sqlite::memory:') return { kind: 'sqlite', path: ':memory:' };
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new ConfigError('ROTOR_DATABASE_URL sqlite:<path> needs a path, e.g. sqlite:./data/rotor.db');
    return { kind: 'sqlite', path: resolve(path) };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return { kind: 'postgres', url };
  if (url.startsWith('redis+cluster://')) {
    try {
      return { kind: 'redis', url, options: parseRedisClusterUrl(url) };
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  if (url.startsWith('redis://') || url.startsWith('rediss://')) {
    throw new ConfigError('ROTOR_DATABASE_URL: Rotor needs a Redis Cluster: write redis+cluster://host:port[,host:port…] (a single Redis server cannot promise the durability of SPEC §7)');
  }
  throw new ConfigError('ROTOR_DATABASE_URL must be sqlite:<path>, sqlite::memory:, postgres://… or redis+cluster://host:port[,host:port…]');
}

/** Where the master key file is read from (and created), or null when ROTOR_MASTER_KEY or no file applies. */
export function masterKeyFile(config: Config): string | null {
  if (config.masterKeyBase64) return null;
  const target = databaseTarget(config.databaseUrl);
  return target.kind === 'sqlite' && target.path !== ':memory:' ? join(dirname(target.path), 'master.key') : null;
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
  if (target.kind === 'redis') {
    throw new ConfigError('ROTOR_MASTER_KEY is required with Redis Cluster: set it to 32 random bytes, base64 (openssl rand -base64 32), the same on every instance');
  }
  const file = masterKeyFile(config);
  return file === null ? MasterKey.random() : MasterKey.fromFile(file);
}
