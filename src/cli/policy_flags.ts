import { Command, Option } from 'commander';
import { parseDuration } from '../domain/duration.js';
import { RotorError } from '../domain/errors.js';

/** The policy flags shared by `apps create` and `apps update`. */
export function addPolicyFlags(command: Command): Command {
  return command
    .addOption(new Option('--alg <alg>', 'signing algorithm').choices(['ES256', 'EdDSA', 'RS256', 'HS256']))
    .option('--access-ttl <duration>', 'access token lifetime (e.g. 900, 15m)')
    .option('--refresh-ttl <duration>', 'refresh token lifetime (e.g. 30d)')
    .option('--refresh-not-before <duration>', 'delay before a refresh token may be used')
    .option('--reuse-grace <duration>', 'grace window for idempotent retries (0 = strictly one-time)')
    .option('--session-max-age <duration>', 'absolute session lifetime, or "off"')
    .option('--session-idle-timeout <duration>', 'idle timeout, or "off"')
    .addOption(new Option('--binding <mode>', 'client binding').choices(['off', 'record', 'useragent']))
    .option('--key-rotation <duration>', 'automatic signing-key rotation period, or "off"')
    .option('--allowed-origins <origins>', 'browser origins allowed for this app, comma-separated (narrows ROTOR_CORS_ORIGINS), or "off"')
    .option('--audience <audience>', 'aud of access tokens whose session names none (default: the app id), or "off"')
    .addOption(new Option('--dpop <mode>', 'DPoP (RFC 9449): off, allowed (default), required').choices(['off', 'allowed', 'required']))
    .option('--dpop-nonce', 'demand server DPoP nonces')
    .option('--no-dpop-nonce', 'do not demand server DPoP nonces');
}

function durationFlag(flag: string, value: string | undefined, nullable: boolean): number | null | undefined {
  if (value === undefined) return undefined;
  if (nullable && value === 'off') return null;
  const seconds = parseDuration(value);
  if (seconds === undefined) {
    throw new RotorError('invalid_request', `${flag} must be a whole number of seconds or a number with s, m, h or d (e.g. 15m)${nullable ? ', or "off"' : ''}`);
  }
  return seconds;
}

/** Turns parsed flags into a policy patch (only the flags given). */
export function policyPatch(opts: Record<string, string | undefined>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  const set = (field: string, value: unknown) => {
    if (value !== undefined) patch[field] = value;
  };
  set('alg', opts.alg);
  set('accessTtl', durationFlag('--access-ttl', opts.accessTtl, false));
  set('refreshTtl', durationFlag('--refresh-ttl', opts.refreshTtl, true));
  set('refreshNotBefore', durationFlag('--refresh-not-before', opts.refreshNotBefore, false));
  set('reuseGrace', durationFlag('--reuse-grace', opts.reuseGrace, false));
  set('sessionMaxAge', durationFlag('--session-max-age', opts.sessionMaxAge, true));
  set('sessionIdleTimeout', durationFlag('--session-idle-timeout', opts.sessionIdleTimeout, true));
  set('binding', opts.binding);
  set('dpop', opts.dpop);
  // commander gives the boolean pair --dpop-nonce / --no-dpop-nonce as true/false, absent when neither.
  const nonce: unknown = (opts as Record<string, unknown>).dpopNonce;
  set('dpopNonce', typeof nonce === 'boolean' ? nonce : undefined);
  if (typeof opts.audience === 'string') set('audience', opts.audience === 'off' ? null : opts.audience);
  set('keyRotationPeriod', durationFlag('--key-rotation', opts.keyRotation, true));
  // Each origin is validated with the policy (one line naming the bad one); "off" leaves ROTOR_CORS_ORIGINS alone in force.
  if (opts.allowedOrigins !== undefined) {
    set('allowedOrigins', opts.allowedOrigins.trim() === 'off' ? null : opts.allowedOrigins.split(',').map((o) => o.trim()).filter(Boolean));
  }
  return patch;
}
