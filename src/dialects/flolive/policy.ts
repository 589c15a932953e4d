import { flag, policyField } from '../../domain/policy.js';

/** SPEC §4.4 floLIVE: a renewal may present an expired (but genuine) access token beside its refresh token. */
export const flolivePermitExpiredAccess = policyField<boolean>({
  name: 'flolivePermitExpiredAccess',
  default: true,
  parse: (value) => flag('flolivePermitExpiredAccess', value),
});
