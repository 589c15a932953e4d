import { isIP } from 'node:net';
import { emptyBody, type FieldError, fieldErrors, invalidJson, invalidJsonType } from './envelope.js';

/**
 * Request bodies as JWTPlus (gin's ShouldBindJSON) reads them: JSON whatever the Content-Type says,
 * an empty body, bad JSON, a non-object or a non-string field each with its own 400 answer.
 */
export function parseBody(raw: unknown): Record<string, unknown> {
  const text = typeof raw === 'string' ? raw : '';
  if (text.trim() === '') throw emptyBody();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidJson();
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidJsonType();
  return value as Record<string, unknown>;
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
