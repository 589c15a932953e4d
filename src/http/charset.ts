import type { FastifyInstance } from 'fastify';
import { RotorError } from '../domain/errors.js';

/**
 * Bodies are read as UTF-8 (JSON, RFC 8259 §8.1) or as ASCII (forms). A request whose Content-Type names
 * another charset (`application/json; charset=utf-16`: SECURITY-CASES H-04) would be parsed as something
 * it does not say it is, so it is refused with 415 in its API's envelope before anything is read. The
 * charsets that write ASCII text as ASCII (what tokens, ids and keys are) pass: clients of every platform
 * label their bodies UTF-8, US-ASCII or Latin-1 (Java's old default).
 */
const READABLE = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'iso-8859-1', 'latin1']);

/** The Content-Type's charset parameter, lower-cased and unquoted, or null when it names none. */
export function charsetOf(contentType: string): string | null {
  const match = /;\s*charset\s*=\s*("?)([^";,\s]*)\1/i.exec(contentType);
  return match ? (match[2] ?? '').toLowerCase() : null;
}

export function refuseForeignCharsets(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    const type = request.headers['content-type'];
    if (typeof type !== 'string') return;
    const charset = charsetOf(type);
    if (charset !== null && !READABLE.has(charset)) {
      throw new RotorError('unsupported_media_type', 'request bodies are read as UTF-8: send them with charset=utf-8, or no charset');
    }
  });
}
