import type { FastifyRequest } from 'fastify';
import { callerClient, recordableClient, type ClientValues } from '../domain/claims.js';

/**
 * The client as the connection shows it (binding and last-seen values): its address, and its user
 * agent cut to what is stored (S2-06).
 */
export function clientContextOf(request: FastifyRequest): ClientValues {
  return recordableClient({ ip: clientAddressOf(request), userAgent: request.headers['user-agent'] });
}

/**
 * The client's address as the connection or a trusted proxy names it. Some proxies append `ip:port` or
 * `[ipv6]:port` to X-Forwarded-For (Azure Application Gateway), and fastify passes the entry on as
 * written: the port names a connection, not a client, so it is dropped here for buckets and records.
 */
export function clientAddressOf(request: FastifyRequest): string {
  return withoutPort(request.ip);
}

export function withoutPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(address);
  if (bracketed) return bracketed[1] as string;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(address);
  return v4 ? (v4[1] as string) : address;
}

/** Whether the request's client is gone (its connection closed): a refresh then consumes nothing. */
export function abandonedOf(request: FastifyRequest): () => boolean {
  const socket = request.raw.socket;
  return () => socket.destroyed;
}

/**
 * The client's address and user agent (SPEC §2.4): the connection's, or those a caller holding the
 * app key names in the body (`ip`, `userAgent`; validated). An unauthenticated caller can never set
 * them: its body values are ignored (S2-06).
 */
export function clientOf(request: FastifyRequest, body: Record<string, unknown>, callerHasAppKey: boolean): ClientValues {
  const connection = clientContextOf(request);
  if (!callerHasAppKey) return connection;
  const named = callerClient(body.ip, body.userAgent);
  return { ip: named.ip ?? connection.ip, userAgent: named.userAgent ?? connection.userAgent };
}
