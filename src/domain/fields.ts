import { invalidRequest } from './errors.js';
import { wellFormed } from './text.js';

/** How much of a caller's field name an error shows: enough to spot the typo, too little to carry a pasted secret. */
const NAME_SHOWN = 40;

/** The fields a write takes, and those it knows but cannot set, each with the detail that says why. */
export interface FieldRules {
  readonly known: readonly string[];
  readonly fixed?: Readonly<Record<string, string>>;
}

/** A JSON object: not null, an array, a string or a number (`1e400` included: JSON.parse makes it Infinity). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `input` as an object whose every field `rules` knows; otherwise `invalid_request` naming the first
 * field that is not (never its value). Unknown fields are refused, not ignored, so that a typo never
 * silently leaves the old value in force while the caller believes it changed. A field holding a lone
 * surrogate at any depth is refused too, naming it: every write's text is stored.
 */
export function knownFields(what: string, input: unknown, rules: FieldRules): Record<string, unknown> {
  if (!isJsonObject(input)) throw invalidRequest(`${what} must be a JSON object`);
  for (const field of Object.keys(input)) {
    if (rules.known.includes(field)) continue;
    // Own properties only: `toString` or `constructor` must not find Object.prototype's.
    if (rules.fixed !== undefined && Object.hasOwn(rules.fixed, field)) throw invalidRequest(`"${field}" ${rules.fixed[field]}`);
    const takes = rules.known.length > 0 ? `it takes ${rules.known.join(', ')}` : 'it takes none';
    throw invalidRequest(`${what} has no field ${JSON.stringify(field.slice(0, NAME_SHOWN))} (${takes})`);
  }
  for (const [field, value] of Object.entries(input)) wellFormed(value, field);
  return input;
}

/** The timestamps every record shows and Rotor alone writes, refused as fields of any write. */
export const TIMESTAMPS_KEPT: Readonly<Record<string, string>> = {
  createdAt: 'cannot be set: Rotor keeps it',
  updatedAt: 'cannot be set: Rotor keeps it',
};
