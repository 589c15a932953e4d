/**
 * `redis+cluster://[user:password@]host:port[,host:port…][?minReplicas=N&waitMs=M&tls=true&prefix=P]`
 * (SPEC §6): seed nodes of a Redis Cluster (Redis 7 or Valkey) and Rotor's durability settings.
 */
export interface RedisClusterOptions {
  seeds: { host: string; port: number }[];
  username: string | null;
  password: string | null;
  tls: boolean;
  /** Replicas that must acknowledge a write (WAIT) before it is answered; default 1. 0: the master alone. */
  minReplicas: number;
  /** How long WAIT waits for them, milliseconds; default 100. */
  waitMs: number;
  /** Key namespace, so that several Rotor deployments (or test runs) can share one cluster; default `rotor`. */
  prefix: string;
}

const KNOWN = new Set(['minReplicas', 'waitMs', 'tls', 'prefix']);

/** Throws an Error whose message is one line naming what to change. */
export function parseRedisClusterUrl(url: string): RedisClusterOptions {
  const scheme = 'redis+cluster://';
  if (!url.startsWith(scheme)) throw new Error('ROTOR_DATABASE_URL: a Redis Cluster URL starts with redis+cluster://');
  const rest = url.slice(scheme.length);
  const queryAt = rest.indexOf('?');
  const authority = (queryAt < 0 ? rest : rest.slice(0, queryAt)).replace(/\/+$/, '');
  const query = new URLSearchParams(queryAt < 0 ? '' : rest.slice(queryAt + 1));
  const at = authority.lastIndexOf('@');
  const credentials = at < 0 ? null : authority.slice(0, at);
  const hosts = at < 0 ? authority : authority.slice(at + 1);
  let username: string | null = null;
  let password: string | null = null;
  if (credentials !== null) {
    const colon = credentials.indexOf(':');
    const decode = (text: string) => {
      try {
        return decodeURIComponent(text);
      } catch {
        throw new Error('ROTOR_DATABASE_URL: the user or password is not valid percent-encoding');
      }
    };
    username = decode(colon < 0 ? credentials : credentials.slice(0, colon)) || null;
    password = colon < 0 ? null : decode(credentials.slice(colon + 1));
  }
  const seeds = hosts.split(',').map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/\s]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) {
      throw new Error(`ROTOR_DATABASE_URL: "${entry.slice(0, 80)}" is not host:port (e.g. redis+cluster://10.0.0.1:6379,10.0.0.2:6379)`);
    }
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
  });
  if (seeds.length === 0) throw new Error('ROTOR_DATABASE_URL: redis+cluster:// needs at least one seed node host:port');
  for (const name of query.keys()) {
    if (!KNOWN.has(name)) throw new Error(`ROTOR_DATABASE_URL: unknown setting "${name.slice(0, 40)}" (known: minReplicas, waitMs, tls, prefix)`);
  }
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const text = query.get(name);
    if (text === null) return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) throw new Error(`ROTOR_DATABASE_URL: ${name} must be a whole number from ${min} to ${max}`);
    return value;
  };
  const tlsText = query.get('tls');
  if (tlsText !== null && !['true', 'false', '1', '0'].includes(tlsText)) throw new Error('ROTOR_DATABASE_URL: tls must be true or false');
  const prefix = query.get('prefix') ?? 'rotor';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) throw new Error('ROTOR_DATABASE_URL: prefix must be 1 to 64 letters, digits, ".", "_" or "-"');
  return {
    seeds, username, password,
    tls: tlsText === 'true' || tlsText === '1',
    minReplicas: int('minReplicas', 1, 0, 16),
    waitMs: int('waitMs', 100, 1, 60_000),
    prefix,
  };
}
