// @ts-check
/**
 * How each row's renewal call is made and how its answer is read. The load generator imports this
 * file; every protocol is a pure function pair, so a new dialect is one more entry here.
 *
 * State is what a connection holds between calls: `{ refresh, access }` (either may be absent when
 * the protocol does not use it). `next` returns the new state or throws a short reason string;
 * `key(state)` is the token that must be new on every answer (the duplicate check).
 *
 * A DPoP row's state also carries its session's private key (`dpop`, a JWK: bench/dpop.mjs), handed on
 * to every successor; its `request` takes a fresh proof per call, signed ahead by `signAhead` where the
 * generator could (bench/dpop.mjs says why), else there and then.
 *
 * @typedef {{ refresh?: string, access?: string, dpop?: import('./dpop.mjs').PrivateJwk }} TokenState
 * @typedef {{ appId?: string, appName?: string, appKey?: string, basic?: string, issuer?: string, dpopNonce?: string }} Setup
 *   `dpopNonce`: a server nonce (RFC 9449 §8) every proof carries, for an app that demands them
 * @typedef {{ method: string, path: string, headers: Record<string, string>, body?: string }} Call
 * @typedef {{
 *   request(state: TokenState, setup: Setup): Call,
 *   next(status: number, json: any, state: TokenState): TokenState,
 *   key(state: TokenState): string | undefined,
 *   signAhead?(states: TokenState[], setup: Setup, perState: number): void,
 *   dpop?: DpopEnvelope,
 * }} Protocol
 * @typedef {{ typeField: string, accessField: string, refusalStatus: number, codeField: string }} DpopEnvelope
 *   how a DPoP protocol's answers name the token type and access token, and how a refused proof is answered
 */

import { dpopProof, newDpopKey, presign } from './dpop.mjs';

const JSON_TYPE = { 'content-type': 'application/json' };
const FORM_TYPE = 'application/x-www-form-urlencoded';

/** @param {unknown} value @param {string} what */
function token(value, what) {
  if (typeof value !== 'string' || value.length === 0) throw `no ${what} in the answer`;
  return value;
}

/** @param {number} status @param {number} [expected] */
function expectStatus(status, expected = 200) {
  if (status !== expected) throw `status ${status}`;
}

/** `{accessToken, refreshToken}` answers (Rotor native, the floors, abitmedia). */
/** @param {number} status @param {any} json */
function camelPair(status, json) {
  expectStatus(status);
  return { refresh: token(json?.refreshToken, 'refreshToken'), access: token(json?.accessToken, 'accessToken') };
}

/** RFC 6749 §5.1 answers (Rotor /oauth2/token, node-oidc-provider). */
/** @param {number} status @param {any} json */
function oauthPair(status, json) {
  expectStatus(status);
  return { refresh: token(json?.refresh_token, 'refresh_token'), access: token(json?.access_token, 'access_token') };
}

/** @type {import('./dpop.mjs').PrivateJwk | undefined} */
let noSessionKey;
/** A DPoP state's key; the exhausted placeholder gets one no session is bound to (refused like its token). */
/** @param {TokenState} state */
const keyOf = (state) => state.dpop ?? (noSessionKey ??= newDpopKey().jwk);

/** @type {(state: TokenState) => string | undefined} */
const refreshKey = (state) => state.refresh;

/** @type {Protocol} */
const NATIVE = {
  request: (s) => ({ method: 'POST', path: '/v1/refresh', headers: JSON_TYPE, body: JSON.stringify({ refreshToken: s.refresh }) }),
  next: camelPair,
  key: refreshKey,
};

/** RFC 6749 §6 at `path`, with client_secret_basic. @param {string} path @returns {Protocol} */
const refreshGrant = (path) => ({
  request: (s, setup) => ({
    method: 'POST', path,
    headers: { 'content-type': FORM_TYPE, authorization: `Basic ${setup.basic}` },
    body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(s.refresh ?? '')}`,
  }),
  next: oauthPair,
  key: refreshKey,
});
const OAUTH2 = refreshGrant('/oauth2/token');

/**
 * `base` on sessions bound to a DPoP key: a fresh proof by the session's key on every call (for the
 * call's own method and endpoint as the issuer names it), and an answer whose `envelope.typeField` is not
 * "DPoP" is an error, so a row that would silently measure bearer refreshes fails its checks instead.
 * @param {Protocol} base @param {DpopEnvelope} envelope @returns {Protocol}
 */
function withDpop(base, envelope) {
  const { typeField } = envelope;
  return {
    dpop: envelope,
    request: (s, setup) => {
      const call = base.request(s, setup);
      return { ...call, headers: { ...call.headers, dpop: dpopProof(keyOf(s), call.method, `${setup.issuer}${call.path}`, setup.dpopNonce) } };
    },
    next: (status, json, s) => {
      const pair = base.next(status, json, s);
      if (json[typeField] !== 'DPoP') throw `${typeField} ${json[typeField]}, not DPoP`;
      return { ...pair, dpop: s.dpop };
    },
    key: base.key,
    // Each state's successors carry its key (`next`), so a connection's proofs are its first state's.
    signAhead: (states, setup, perState) => {
      for (const s of states) {
        if (!s.dpop) continue;
        const call = base.request(s, setup);
        presign(s.dpop, call.method, `${setup.issuer}${call.path}`, perState, setup.dpopNonce);
      }
    },
  };
}

/** @type {Record<string, Protocol>} */
export const PROTOCOLS = {
  /** Rotor SPEC §4.1 POST /v1/refresh. */
  native: NATIVE,
  /** The same call on a session bound to a DPoP key (RFC 9449; SPEC §4.1). */
  'native-dpop': withDpop(NATIVE, { typeField: 'tokenType', accessField: 'accessToken', refusalStatus: 401, codeField: 'code' }),
  /** RFC 6749 §6 with client_secret_basic (Rotor /oauth2/token). */
  oauth2: OAUTH2,
  /** The same grant on a session bound to a DPoP key (RFC 9449 §5). */
  // RFC 9449 §7.1: the token endpoint refuses a proof with its own 400 error envelope.
  'oauth2-dpop': withDpop(OAUTH2, { typeField: 'token_type', accessField: 'access_token', refusalStatus: 400, codeField: 'error' }),
  /** node-oidc-provider's token endpoint, same grant, same client authentication. */
  oidc: refreshGrant('/token'),
  /** The floors (bench/targets/floor.mjs). */
  floor: {
    request: (s) => ({ method: 'POST', path: '/refresh', headers: JSON_TYPE, body: JSON.stringify({ refreshToken: s.refresh }) }),
    next: camelPair,
    key: refreshKey,
  },
  /** SPEC §4.4 verifik: a new access token from a live one (no refresh token in this profile). */
  verifik: {
    request: (s) => ({ method: 'GET', path: '/v2/auth/session?origin=refresh', headers: { authorization: `Bearer ${s.access}` } }),
    next: (status, json) => {
      expectStatus(status);
      return { access: token(json?.accessToken, 'accessToken') };
    },
    key: (s) => s.access,
  },
  /** SPEC §4.4 jwtplus: POST /app/{app_id}/renew, raw app key in Authorization. */
  jwtplus: {
    request: (s, setup) => ({
      method: 'POST', path: `/app/${setup.appId}/renew`,
      headers: { ...JSON_TYPE, authorization: setup.appKey ?? '' },
      body: JSON.stringify({ refresh_token: s.refresh, ip: '127.0.0.1', useragent: 'rotor-bench' }),
    }),
    next: (status, json) => {
      expectStatus(status);
      return { refresh: token(json?.refresh_token, 'refresh_token'), access: token(json?.auth_token, 'auth_token') };
    },
    key: refreshKey,
  },
  /** SPEC §4.4 flolive: the pair travels together. */
  flolive: {
    request: (s) => ({
      method: 'PUT', path: '/api/v2/auth/token', headers: JSON_TYPE,
      body: JSON.stringify({ token: s.access, refreshToken: s.refresh }),
    }),
    next: (status, json) => {
      expectStatus(status);
      const content = Array.isArray(json?.content) ? json.content[0] : undefined;
      return { refresh: token(content?.refreshToken, 'refreshToken'), access: token(content?.token, 'token') };
    },
    key: refreshKey,
  },
  /** SPEC §4.4 fib: the refresh token in Authorization. */
  fib: {
    request: (s) => ({
      method: 'PATCH', path: '/auth/api/v1/authentication-management/session', headers: { authorization: `Bearer ${s.refresh}` },
    }),
    next: (status, json) => {
      expectStatus(status);
      return { refresh: token(json?.data?.refreshToken, 'refreshToken'), access: token(json?.data?.accessToken, 'accessToken') };
    },
    key: refreshKey,
  },
  /** SPEC §4.4 abitmedia. */
  abitmedia: {
    request: (s) => ({ method: 'POST', path: '/v1/refreshToken', headers: JSON_TYPE, body: JSON.stringify({ refreshToken: s.refresh }) }),
    next: camelPair,
    key: refreshKey,
  },
};

/** @param {string} name @returns {Protocol} */
export function protocol(name) {
  const found = PROTOCOLS[name];
  if (!found) throw new Error(`unknown protocol ${name}`);
  return found;
}
