import { sidJtiFormat } from '../sid_jti_format.js';

/**
 * SPEC §3 `flolive`: HS256; the access token is the subject's claims (e.g. `uid email`) plus
 * `sid jti iat exp`; the refresh token is a JWT `sid jti iat exp typ:"Refresh"` whose `jti` carries its generation.
 */
export const floliveFormat = sidJtiFormat({ withSub: false, refreshTyp: 'Refresh' });
