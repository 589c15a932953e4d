import { invalidRequest, RotorError, StoreUnavailableError } from '../../domain/errors.js';

/**
 * What a PostgreSQL or driver error means for the caller.
 *
 * - `unavailable`: the database cannot take this request now (unreachable, restarting, out of disk or
 *   connections, timed out, a serialization failure): answered 503 with Retry-After; nothing was
 *   committed, or the statement's outcome is unknown and the client's retry decides (grace window).
 * - `invalid`: the input cannot be stored as text (NUL byte, invalid encoding): the caller's fault, 400.
 * - `other`: a bug or a constraint the caller must handle; rethrown as is.
 */
export type PgErrorKind = 'unavailable' | 'invalid' | 'other';

/** SQLSTATE classes and codes that mean "try again later". */
const UNAVAILABLE_CLASSES = ['08', '53', '58'];
const UNAVAILABLE_CODES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovery)
  '57P04', // database_dropped
  '57P05', // idle_session_timeout
  '57014', // query_canceled: statement_timeout, or an operator's pg_cancel_backend
  '55P03', // lock_not_available (lock_timeout)
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '25006', // read_only_sql_transaction: a replica, or default_transaction_read_only after a failover
  '25P03', // idle_in_transaction_session_timeout
  '42501', // insufficient_privilege: permissions revoked (F-09) — no silent fallback, just 503
  '3D000', // invalid_catalog_name: the database is gone
  '28000', '28P01', // authentication failures (password rotated under us)
  'XX000', // internal_error: reported by the server, nothing the caller can fix
]);
const INVALID_CODES = new Set([
  '22021', // character_not_in_repertoire: "invalid byte sequence for encoding UTF8: 0x00"
  '22P05', // untranslatable_character
]);

/** Node socket errors and pg / pg-pool messages that mean the connection, not the query, failed. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ENOTCONN', 'ESHUTDOWN', 'ERR_STREAM_DESTROYED', 'ERR_SOCKET_CLOSED',
]);
const NETWORK_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'timeout expired', // a single client's connectionTimeoutMillis
  'Query read timeout',
  'is not queryable',
  'Client was closed',
  'Cannot use a pool after calling end',
  'connection timeout',
  'the database system is',
];

const sqlState = (err: unknown): string | null => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
};

export function classifyPgError(err: unknown): PgErrorKind {
  if (err instanceof RotorError) return 'other';
  const state = sqlState(err);
  if (state !== null) {
    if (INVALID_CODES.has(state)) return 'invalid';
    if (UNAVAILABLE_CODES.has(state) || UNAVAILABLE_CLASSES.includes(state.slice(0, 2))) return 'unavailable';
    return 'other';
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'unavailable';
  const message = err instanceof Error ? err.message : String(err);
  if (NETWORK_MESSAGES.some((m) => message.includes(m))) return 'unavailable';
  // AggregateError from a failed connect to several addresses (IPv4 and IPv6 of `localhost`).
  if (err instanceof AggregateError && err.errors.some((e) => classifyPgError(e) === 'unavailable')) return 'unavailable';
  return 'other';
}

/**
 * True when the connection itself must not be reused: anything but an ordinary SQL error on a healthy
 * session (a syntax or constraint error leaves the connection usable and its prepared statements).
 * A read-only error means the server was demoted by a failover: a new connection finds the new primary.
 */
export function connectionIsBroken(err: unknown): boolean {
  const state = sqlState(err);
  if (state === null) return true;
  if (state === '25006') return true;
  return ['08', '57'].includes(state.slice(0, 2)) && state !== '57014';
}

/**
 * True when a statement handed to a connection may have committed without its caller hearing of it: the
 * connection broke (socket error, the server or the network cut it, no reply in time) before its result
 * was read. A server that answered with an error (a timeout it enforced, a read-only server) decided it:
 * nothing was committed.
 */
export function outcomeUnknown(err: unknown): boolean {
  return classifyPgError(err) === 'unavailable' && connectionIsBroken(err) && sqlState(err) !== '25006';
}

/**
 * A write whose outcome is unknown (see `outcomeUnknown`). Still a StoreUnavailableError, so a caller
 * that cannot settle it answers 503 as for any other failure.
 */
export class OutcomeUnknownError extends StoreUnavailableError {}

/** The error a store operation throws for a PostgreSQL or driver error. */
export function toStoreError(err: unknown): unknown {
  switch (classifyPgError(err)) {
    case 'unavailable':
      return new StoreUnavailableError(err);
    case 'invalid':
      return invalidRequest('the request contains characters that cannot be stored (such as a NUL byte)');
    default:
      return err;
  }
}
