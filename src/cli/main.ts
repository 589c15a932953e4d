#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config.js';
import { RotorError } from '../domain/errors.js';
import type { Rotor } from '../domain/rotor.js';
import { appView, signingKeyView, subjectView } from '../http/admin/views.js';
import { sessionView, tokenPair } from '../http/native/token_pair.js';
import { openRotor } from '../runtime.js';
import { serve } from '../serve.js';
import { addPolicyFlags, policyPatch } from './policy_flags.js';
import { DIALECTS } from '../dialects/index.js';

const program = new Command('rotor')
  .description('Rotor: sessions with rotating refresh tokens, JWKS and revocation')
  .option('--json', 'print one JSON document on stdout')
  .showSuggestionAfterError()
  // Commander's own refusals (an unknown option, a missing argument) as one line like every other error;
  // commands made below inherit it.
  .configureOutput({ outputError: (text, write) => write(`rotor: ${text.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (see: rotor --help)\n`) })
  .exitOverride();

// A closed stdout (`rotor … | head -c0`) is no crash: the command's effect stands, the store still closes,
// and the one line says what was lost.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (process.exitCode === 1) return;
  process.stderr.write(`rotor: stdout was closed (${err.code ?? 'error'}) before the output was written; the command itself took effect\n`);
  process.exitCode = 1;
});

const json = (): boolean => program.opts().json === true;

/** Runs a command against the configured store (no server needed) and prints its result. */
function withRotor<A extends unknown[]>(work: (rotor: Rotor, ...args: A) => Promise<{ json: unknown; text: string }>) {
  return async (...args: A): Promise<void> => {
    const { rotor } = await openRotor();
    try {
      const result = await work(rotor, ...args);
      process.stdout.write(json() ? `${JSON.stringify(result.json, null, 2)}\n` : `${result.text}\n`);
    } finally {
      await rotor.events.flushed(); // the command's security events reach the store's feed first
      await rotor.close();
    }
  };
}

const lines = (rows: string[]): string => (rows.length ? rows.join('\n') : '(none)');

program.command('serve').description('run the HTTP service').action(() => serve());

program.command('migrate').description('create or upgrade the schema').action(
  withRotor(async (rotor) => ({ json: { migrated: true, store: rotor.storeKind }, text: `schema is up to date (${rotor.storeKind})` })),
);

// ── apps ─────────────────────────────────────────────────────────────────────────────────────────
const apps = program.command('apps').description('manage apps');
addPolicyFlags(
  apps.command('create <name>').description('create an app (prints its first app key once)')
    .option('--profile <profile>', profileChoices(), 'native')
    .option('--public', 'a public app: its clients redeem refresh tokens without the app key (default but for jwtplus)')
    .option('--confidential', 'a confidential app: every redemption needs the app key (the jwtplus default)'),
).action(withRotor(async (rotor, name: string, opts: Record<string, string | undefined> & PublicFlags) => {
  const { app, appKey } = await rotor.apps.create({ name, profile: opts.profile, public: publicFlag(opts), policy: policyPatch(opts) });
  return {
    json: { id: app.id, name: app.name, profile: app.profile, appKey, policy: app.policy },
    text: `created app ${app.name} (${app.id}, profile ${app.profile})\napp key (shown once, store it now): ${appKey}`,
  };
}));
apps.command('list').description('list apps').action(withRotor(async (rotor) => {
  const all = await rotor.apps.list();
  return { json: { apps: all.map(appView) }, text: lines(all.map((a) => `${a.id}  ${a.name}  ${a.profile}`)) };
}));
apps.command('show <app>').description('show an app').action(withRotor(async (rotor, ref: string) => {
  const app = appView(await rotor.apps.get(ref));
  return { json: app, text: JSON.stringify(app, null, 2) };
}));
addPolicyFlags(apps.command('update <app>').description('change an app\'s policy')
  .option('--public', 'make it a public app').option('--confidential', 'make it a confidential app').option('--no-public', 'the same as --confidential'))
  .action(withRotor(async (rotor, ref: string, opts: Record<string, string | undefined> & PublicFlags) => {
    const app = appView(await rotor.apps.update(ref, { policy: policyPatch(opts), public: publicFlag(opts) }));
    return { json: app, text: JSON.stringify(app, null, 2) };
  }));
apps.command('delete <app>').description('delete an app with all its sessions and keys').action(withRotor(async (rotor, ref: string) => {
  await rotor.apps.delete(ref);
  return { json: { deleted: true }, text: `deleted ${ref}` };
}));

// ── app keys ─────────────────────────────────────────────────────────────────────────────────────
const appKeys = program.command('app-keys').description('manage app keys');
appKeys.command('create <app>').description('create an app key (printed once)').action(withRotor(async (rotor, ref: string) => {
  const key = await rotor.apps.createAppKey(ref);
  return { json: key, text: `app key ${key.id} (shown once, store it now): ${key.appKey}` };
}));
appKeys.command('revoke <app> <keyId>').description('revoke an app key').action(withRotor(async (rotor, ref: string, id: string) => {
  await rotor.apps.revokeAppKey(ref, id);
  return { json: { revoked: true, id }, text: `revoked app key ${id}` };
}));

// ── signing keys ─────────────────────────────────────────────────────────────────────────────────
const keys = program.command('keys').description('manage signing keys');
keys.command('list <app>').action(withRotor(async (rotor, ref: string) => {
  const all = (await rotor.apps.listKeys(ref)).map((k) => signingKeyView(k, rotor.clock.now()));
  return { json: { keys: all }, text: lines(all.map((k) => `${k.kid}  ${k.alg}  ${k.state}${k.state === 'retiring' && !k.published ? ' (no longer published)' : ''}`)) };
}));
keys.command('rotate <app>').action(withRotor(async (rotor, ref: string) => {
  const key = signingKeyView(await rotor.apps.rotateKey(ref), rotor.clock.now());
  return { json: key, text: `active key is now ${key.kid} (${key.alg})` };
}));
keys.command('revoke <app> <kid>').action(withRotor(async (rotor, ref: string, kid: string) => {
  await rotor.apps.revokeKey(ref, kid);
  return { json: { revoked: true, kid }, text: `revoked key ${kid}; tokens it signed are dead` };
}));

// ── subjects ─────────────────────────────────────────────────────────────────────────────────────
const subjects = program.command('subjects').description('manage subjects (users)');
subjects.command('set <app> <subject>').description('create or update a subject')
  .option('--claims <json>', 'claims copied into its tokens, as a JSON object')
  .option('--password-stdin', 'read a password from one line of standard input')
  .option('--ed25519-public-key <hex>', 'raw Ed25519 public key, 64 hex characters')
  .action(withRotor(async (rotor, ref: string, subject: string, opts: { claims?: string; passwordStdin?: boolean; ed25519PublicKey?: string }) => {
    const app = await rotor.apps.get(ref);
    const patch: Record<string, unknown> = {};
    if (opts.claims !== undefined) patch.claims = parseJson(opts.claims, '--claims');
    if (opts.passwordStdin) patch.password = readPasswordLine();
    if (opts.ed25519PublicKey !== undefined) patch.ed25519PublicKey = opts.ed25519PublicKey;
    const view = subjectView(await rotor.subjects.put(app, subject, patch));
    return { json: view, text: `subject ${view.subject} is ${view.status}` };
  }));
for (const [name, status] of [['disable', 'disabled'], ['enable', 'active']] as const) {
  subjects.command(`${name} <app> <subject>`).action(withRotor(async (rotor, ref: string, subject: string) => {
    const app = await rotor.apps.get(ref);
    await rotor.subjects.get(app, subject);
    const view = subjectView(await rotor.subjects.put(app, subject, { status }));
    return { json: view, text: `subject ${subject} is ${status}` };
  }));
}
subjects.command('delete <app> <subject>').action(withRotor(async (rotor, ref: string, subject: string) => {
  await rotor.subjects.delete(await rotor.apps.get(ref), subject);
  return { json: { deleted: true }, text: `deleted subject ${subject} and revoked its sessions` };
}));

// ── sessions ─────────────────────────────────────────────────────────────────────────────────────
const sessions = program.command('sessions').description('issue, list and revoke sessions');
sessions.command('issue <app> <subject>').option('--claims <json>', 'claims for this session, as a JSON object')
  .action(withRotor(async (rotor, ref: string, subject: string, opts: { claims?: string }) => {
    const app = await rotor.apps.get(ref);
    const pair = tokenPair(await rotor.issueSession(app, { subject, claims: opts.claims === undefined ? undefined : parseJson(opts.claims, '--claims') }));
    return { json: pair, text: Object.entries(pair).map(([k, v]) => `${k}: ${v}`).join('\n') };
  }));
sessions.command('list <app>').requiredOption('--subject <subject>', 'whose sessions')
  .action(withRotor(async (rotor, ref: string, opts: { subject: string }) => {
    const all = (await rotor.listSessions(await rotor.apps.get(ref), opts.subject)).map(sessionView);
    return { json: { sessions: all }, text: lines(all.map((s) => `${s.id}  created ${s.createdAt}${s.revokedAt ? `  revoked ${s.revokedAt}` : ''}`)) };
  }));
sessions.command('revoke <app> <sessionId>').action(withRotor(async (rotor, ref: string, id: string) => {
  await rotor.revokeSessionOf(await rotor.apps.get(ref), id);
  return { json: { revoked: true, id }, text: `revoked session ${id}` };
}));
sessions.command('revoke-all <app>').requiredOption('--subject <subject>', 'whose sessions')
  .action(withRotor(async (rotor, ref: string, opts: { subject: string }) => {
    const revoked = await rotor.revokeSubjectSessions(await rotor.apps.get(ref), opts.subject);
    return { json: { revoked }, text: `revoked ${revoked} session(s)` };
  }));

type PublicFlags = { public?: boolean; confidential?: boolean };

/** `--public` / `--confidential` (or `--no-public`): undefined when neither is given (the profile's default). */
function publicFlag(opts: PublicFlags): boolean | undefined {
  if (opts.confidential && opts.public) throw new RotorError('invalid_request', '--public and --confidential exclude each other; give one');
  if (opts.confidential) return false;
  return opts.public;
}

function parseJson(text: string, flag: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new RotorError('invalid_request', `${flag} must be valid JSON, e.g. '{"role":"admin"}'`);
  }
}

function readPasswordLine(): string {
  const input = readFileSync(0, 'utf8');
  const line = input.split(/\r?\n/)[0] ?? '';
  if (!line) throw new RotorError('invalid_request', '--password-stdin read an empty line; pipe the password in, e.g. printf %s "$PW" | rotor subjects set …');
  return line;
}

/** One line on stderr saying what is wrong and how to mend it; a non-zero exit. */
function fail(err: unknown): never {
  let message: string;
  if (err instanceof RotorError) {
    const hint: Record<string, string> = {
      app_not_found: ' (list apps with: rotor apps list)',
      conflict: ' (choose another name, or see: rotor apps list)',
      store_unavailable: ' (check ROTOR_DATABASE_URL and that the database is up)',
    };
    message = `${err.code}: ${err.detail}${hint[err.code] ?? ''}`;
  } else if (err instanceof ConfigError) {
    message = `configuration: ${err.message}`;
  } else {
    message = (err as Error)?.message ?? String(err);
  }
  process.stderr.write(`rotor: ${message.split('\n')[0]}\n`);
  process.exit(err instanceof RotorError && err.status < 500 ? 2 : 1);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  // Help and version exit 0; every usage error is bad input (docs/config.md: exit status 2).
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  fail(err);
});

/** `native, verifik, …, fib or abitmedia`: native and every dialect in src/dialects/index.ts. */
function profileChoices(): string {
  const names = ['native', ...DIALECTS.map((d) => d.name)];
  return `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}
