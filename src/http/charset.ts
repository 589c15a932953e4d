import type { FastifyInstance } from 'fastify';
import { RotorError } from '../domain/errors.js';

/**
 * Bodies are read as UTF-8 (JSON, RFC 8259 §8.1) or as ASCII (forms). A request whose Content-Type names
 * another charset (`application/json; charset=utf-16`: SECURITY-CASES H-04) would be parsed as something
 * it does not say it is, so it is refused with 415 in its API's envelope before anything is read. The
 * charsets that write ASCII text as ASCII (what tokens, ids and keys are) pass: clients of every platform
 * label their bodies UTF-8, US-ASCII, an ISO 8859 part (Java's old default) or a Windows code page.
 */
const READABLE = /^(?:utf-?8|us-ascii|ascii|latin-?1|iso[-_]?8859[-_]\d{1,2}|(?:windows|cp)-?125\d)$/;

/** RFC 9110 §5.6.6 parameters: `; name=token` or `; name="quoted \"string\""`, in order. */
const PARAMETER = /;\s*([^\s;=]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))/g;

/** Every charset parameter of a Content-Type, lower-cased and unquoted (a quoted value's `;` is text). */
function charsetsOf(contentType: string): string[] {
  const charsets: string[] = [];
  for (const [, name, quoted, token] of contentType.matchAll(PARAMETER)) {
    if (name?.toLowerCase() === 'charset') charsets.push((quoted?.replace(/\\(.)/g, '$1') ?? token ?? '').toLowerCase());
  }
  return charsets;
}

export function refuseForeignCharsets(app: FastifyInstance): void {
  // A callback hook, not an async one: it runs on every request, and most carry no charset at all.
  app.addHook('onRequest', (request, _reply, done) => {
    const type = request.headers['content-type'];
    if (typeof type !== 'string' || !/charset/i.test(type)) return done();
    const charsets = charsetsOf(type);
    // Two different charsets are two answers to one question: whichever a parser took, the other was meant.
    if (new Set(charsets).size > 1 || charsets.some((charset) => !READABLE.test(charset))) {
      return done(new RotorError('unsupported_media_type', 'request bodies are read as UTF-8: send them with one charset=utf-8, or none'));
    }
    done();
  });
}
