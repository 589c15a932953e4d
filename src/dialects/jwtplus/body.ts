import { isIP } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { emptyBody, type FieldError, fieldErrors, invalidJson, invalidJsonType } from './envelope.js';

/**
 * A JWTPlus request's body, already parsed by the scope's content parser (`jwtplusBodyParser`), checked
 * the way JWTPlus (gin's ShouldBindJSON) checks it: nothing, a non-object or JSON null each with its
 * own 400 answer.
 */
export function parseBody(parsed: unknown): Record<string, unknown> {
  if (parsed === undefined) throw emptyBody();
  if (parsed === null) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw invalidJsonType();
  return parsed as Record<string, unknown>;
}

type JsonParser = ReturnType<FastifyInstance['getDefaultJsonParser']>;

/**
 * JWTPlus reads every body as JSON whatever its Content-Type. The text goes through Fastify's own JSON
 * parser, the one every other route uses (prototype and constructor poisoning refused at any depth,
 * S2-10), and its failures are answered in JWTPlus's words.
 */
export function jwtplusBodyParser(json: JsonParser) {
  return (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void): void => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(emptyBody());
      return;
    }
    json(request, text, (err: Error | null, value?: unknown) => (err ? done(invalidJson()) : done(null, value)));
  };
}

type Rule = 'required' | 'jwt' | 'ip' | { max: number };

/** go-playground/validator's `jwt` pattern. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const MESSAGES = {
  required: 'This field is required.',
  jwt: 'This field requires a valid jwt token.',
  ip: 'This field requires a valid ipv4 or ipv6 address.',
};

/**
 * Checks the named string fields in order, like JWTPlus's struct tags (`binding:"required,jwt"` …):
 * a field of another JSON type makes the whole body `invalid json data type`; otherwise every failing
 * field is listed with the message of its first failing rule.
 */
export function validateFields(body: Record<string, unknown>, fields: Record<string, Rule[]>): Record<string, string> {
  const out: Record<string, string> = {};
  const errors: FieldError[] = [];
  for (const name of Object.keys(fields)) {
    const value = Object.prototype.hasOwnProperty.call(body, name) ? body[name] : undefined;
    if (value !== undefined && value !== null && typeof value !== 'string') throw invalidJsonType();
    const text = typeof value === 'string' ? value : '';
    for (const rule of fields[name] as Rule[]) {
      const message = failure(rule, text);
      if (message) {
        errors.push({ error_field: name, error_message: message });
        break;
      }
    }
    out[name] = text;
  }
  if (errors.length > 0) throw fieldErrors(errors);
  return out;
}

function failure(rule: Rule, text: string): string | null {
  if (rule === 'required') return text === '' ? MESSAGES.required : null;
  if (rule === 'jwt') return JWT_SHAPE.test(text) && text.length <= 8192 ? null : MESSAGES.jwt;
  // Go's net.ParseIP knows no IPv6 zones (fe80::1%eth0).
  if (rule === 'ip') return isIP(text) !== 0 && !text.includes('%') ? null : MESSAGES.ip;
  return text.length > rule.max ? `This field accepts the maximum value of ${rule.max}` : null;
}
