import { sidJtiFormat } from '../sid_jti_format.js';

/**
 * SPEC §3 `abitmedia`: HS256; the access token is the subject's claims plus `sub sid jti iat exp`;
 * the refresh token is a JWT `sub sid jti iat exp typ:"refresh"` whose `jti` carries its generation.
 */
export const abitmediaFormat = sidJtiFormat({ withSub: true, refreshTyp: 'refresh' });
