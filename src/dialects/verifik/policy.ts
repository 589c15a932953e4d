import { DAY, duration, policyField } from '../../domain/policy.js';

/** Verifik renewals ask for N × 30 days. */
export const MONTH = 30 * DAY;

/** SPEC §3: the largest N a Verifik renewal may ask for (default 1200: 100 years). */
export const verifikMaxMonths = policyField<number>({
  name: 'verifikMaxMonths',
  default: 1200,
  parse: (value) => duration('verifikMaxMonths', value, { nullable: false, min: 1, max: 1200 }) as number,
});
