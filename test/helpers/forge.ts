import { createHmac, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import type { SigningKey } from '../../src/crypto/signing_key.js';

/** Builders of hostile JWTs (SECURITY-CASES §1) from a genuine token and, where a row needs it, the app's real key. */

export const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

export const partsOf = (token: string): { h: string; p: string; s: string; header: Record<string, any>; payload: Record<string, any> } => {
  const [h = '', p = '', s = ''] = token.split('.');
  return {
    h, p, s,
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
};

/** Signs any header and payload with a Rotor signing key (the "real key" rows). */
export function signWith(key: SigningKey, header: unknown, payload: unknown): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${key.sign(Buffer.from(input)).toString('base64url')}`;
}

const hmac = (secret: string | Buffer, input: string, bits = 256) => createHmac(`sha${bits}`, secret).update(input).digest('base64url');

const attacker = {
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  ec: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ec384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
  ed: generateKeyPairSync('ed25519').privateKey,
};

export interface Forgery {
  /** The SECURITY-CASES row and a short description. */
  name: string;
  token: string;
  /** A token unfit for an HTTP header value (whitespace): only sent in bodies. */
  bodyOnly?: boolean;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/**
 * The representative J-row subset, built for the layout of `genuine` (a token of the app `key` belongs to):
 * alg none, HS256 keyed with the public key (PEM with/without newline, as JWK), attacker-signed with a
 * changed alg, kid traversal/injection, another app's kid, tampered payload, malleated/truncated
 * signatures, crit/jwk/jku headers, non-object payloads, non-canonical base64url.
 */
export function forgeriesOf(genuine: string, key: SigningKey, otherKid: string): Forgery[] {
  const { h, p, s, header, payload } = partsOf(genuine);
  const out: Forgery[] = [];
  const add = (name: string, token: string, bodyOnly = false) => out.push({ name, token, bodyOnly });
  const withHeader = (extra: Record<string, unknown>) => `${b64({ ...header, ...extra })}.${p}`;

  for (const alg of ['none', 'None', 'nOnE']) {
    add(`J-01 alg ${alg}, empty signature`, `${withHeader({ alg })}.`);
    add(`J-01 alg ${alg}, original signature`, `${withHeader({ alg })}.${s}`);
  }
  add('J-02 two segments', `${h}.${p}`);
  add('J-02 signature minus 4 chars', `${h}.${p}.${s.slice(0, -4)}`);
  add('J-03 HS256 keyed ""', (() => { const i = withHeader({ alg: 'HS256' }); return `${i}.${hmac('', i)}`; })());
  const pem = key.publicPem();
  if (pem !== null) {
    for (const [label, material] of [['PEM', pem], ['PEM without newline', pem.trimEnd()]] as const) {
      for (const bits of [256, 384, 512]) {
        const i = withHeader({ alg: `HS${bits}` });
        add(`J-04 HS${bits} keyed with the ${label}`, `${i}.${hmac(material, i, bits)}`);
      }
    }
  }
  // J-05: the attacker signs with a key of their own under another alg, keeping the real kid.
  const own: [string, (i: Buffer) => Buffer][] = [
    ['RS256', (i) => cryptoSign('sha256', i, attacker.rsa)],
    ['ES384', (i) => cryptoSign('sha384', i, { key: attacker.ec384, dsaEncoding: 'ieee-p1363' })],
    ['Ed25519', (i) => cryptoSign(null, i, attacker.ed)],
  ];
  for (const [alg, signer] of own) {
    if (alg === key.alg) continue;
    const i = withHeader({ alg });
    add(`J-05 alg ${alg} signed with the attacker's key`, `${i}.${signer(Buffer.from(i)).toString('base64url')}`);
  }
  if (key.alg === 'ES256') {
    const i = `${h}.${p}`;
    add('J-05 ES256 signed with the attacker\'s P-256 key', `${i}.${cryptoSign('sha256', Buffer.from(i), { key: attacker.ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`);
  }
  for (const kid of ['../../../../../../dev/null', "x' OR '1'='1", "1';SELECT pg_sleep(5)--", { $ne: null }, 42]) {
    const i = `${b64({ ...header, alg: 'HS256', kid })}.${p}`;
    add(`J-07/J-08 kid ${JSON.stringify(kid)} with HS256 keyed ""`, `${i}.${hmac('', i)}`);
  }
  add('J-09 another app\'s kid, signed with this app\'s key', signWith(key, { ...header, kid: otherKid }, payload));
  const tamper = payload.sub !== undefined ? { sub: `${payload.sub}x` } : { sid: `${payload.sid ?? ''}x` };
  add('J-15 tampered sub/sid, original signature', `${h}.${b64({ ...payload, ...tamper })}.${s}`);
  add('J-15 exp+1, original signature', `${h}.${b64({ ...payload, exp: Number(payload.exp) + 1 })}.${s}`);
  add('J-15 admin:true, original signature', `${h}.${b64({ ...payload, admin: true })}.${s}`);
  const last = s.at(-1) as string;
  if (s.length % 4 !== 0) {
    // Node decodes both; a strict decoder refuses the one with non-zero unused bits (J-14).
    add('J-14 last char differs in its unused low bits', `${h}.${p}.${s.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(last) ^ 1]}`);
  }
  if (key.alg === 'ES256') {
    const sig = Buffer.from(s, 'base64url');
    const sv = BigInt(`0x${sig.subarray(32).toString('hex')}`);
    add('J-14 ECDSA (r, n−s)', `${h}.${p}.${Buffer.concat([sig.subarray(0, 32), Buffer.from((P256_N - sv).toString(16).padStart(64, '0'), 'hex')]).toString('base64url')}`);
    add('J-13 psychic signature (64 zero bytes)', `${h}.${p}.${'A'.repeat(86)}`);
  }
  const flipped = Buffer.from(s, 'base64url');
  flipped[0] = (flipped[0] as number) ^ 1;
  add('J-02 first signature byte flipped', `${h}.${p}.${flipped.toString('base64url')}`);
  add('J-10 embedded jwk (attacker key), signed with it', (() => {
    const i = `${b64({ ...header, alg: 'ES256', jwk: attacker.ec.publicKey.export({ format: 'jwk' }) })}.${p}`;
    return `${i}.${cryptoSign('sha256', Buffer.from(i), { key: attacker.ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  })());
  add('J-10 embedded jwk, signed with the real key', signWith(key, { ...header, jwk: { kty: 'oct', k: b64('x') } }, payload));
  add('J-11 jku, signed with the real key', signWith(key, { ...header, jku: 'http://127.0.0.1:9/jwks.json' }, payload));
  add('J-20 crit ["exp"], signed with the real key', signWith(key, { ...header, crit: ['exp'] }, payload));
  add('J-20 crit [], signed with the real key', signWith(key, { ...header, crit: [] }, payload));
  add('J-17 payload [] signed with the real key', signWith(key, header, []));
  add('J-17 payload null signed with the real key', signWith(key, header, null));
  add('J-17 four segments', `${genuine}.${s}`);
  add('J-16 "=" padding on the header', `${h}=.${p}.${s}`);
  add('J-16 standard base64 signature', `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}`);
  add('J-16 leading space', ` ${genuine}`, true);
  add('J-16 trailing CRLF', `${genuine}\r\n`, true);
  add('J-16 space inside the signature', `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`, true);
  return out;
}

/** The same payload under the real key with the given changes (`undefined` removes a claim): J-23/J-24/J-25 rows. */
export function resigned(genuine: string, key: SigningKey, changes: Record<string, unknown>, headerChanges: Record<string, unknown> = {}): string {
  const { header, payload } = partsOf(genuine);
  const next: Record<string, unknown> = { ...payload, ...changes };
  for (const [k, v] of Object.entries(changes)) if (v === undefined) delete next[k];
  const nextHeader: Record<string, unknown> = { ...header, ...headerChanges };
  for (const [k, v] of Object.entries(headerChanges)) if (v === undefined) delete nextHeader[k];
  return signWith(key, nextHeader, next);
}
