import type { FastifyInstance } from 'fastify';
import { RotorError } from '../domain/errors.js';

/**
 * `application/x-www-form-urlencoded` bodies become a plain object of strings. A repeated parameter
 * is refused (RFC 6749 §3.2: parameters must not be included more than once); no nested `a[b]`
 * syntax is interpreted, so there is nothing to pollute.
 */
export function registerFormParser(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const params = new URLSearchParams(body as string);
    const out: Record<string, string> = Object.create(null);
    for (const [key, value] of params) {
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        done(new RotorError('invalid_request', `the parameter "${key.slice(0, 40)}" is repeated`), undefined);
        return;
      }
      out[key] = value;
    }
    done(null, out);
  });
}
