// F4-04: a lone UTF-16 surrogate is no text (src/domain/text.ts). The HTTP APIs refused it in any body, but
// the library and the CLI call the domain directly: the domain itself refuses it in every text it stores,
// with the catalogue's invalid_request naming the field, and stores nothing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/domain/types.js';
import { domainRotor } from '../helpers/rotor.js';
import { refusal } from './catalog.js';

const LONE = ['\ud800', '\udfff', 'x\udc00y', '\ud83d'];
const detail = (field: string) => `invalid_request: ${field} must be well-formed Unicode (a lone surrogate is not)`;

describe('F4-04, S4-05 lone surrogates and NUL characters are refused by the domain, whoever calls it', () => {
  let t: Awaited<ReturnType<typeof domainRotor>>;
  let app: App;
  beforeEach(async () => {
    t = await domainRotor();
    app = (await t.rotor.apps.create({ name: 'shop' })).app;
  });
  afterEach(() => t.rotor.close());

  it('issuance: the subject, the claims (keys and values, at any depth), the user agent and the audience', async () => {
    for (const lone of LONE) {
      const issue = (input: Record<string, unknown>) => refusal(t.rotor.issueSession(app, { subject: 'alice', ...input }), true);
      expect(await issue({ subject: `alice${lone}` })).toBe(detail('subject'));
      expect(await issue({ claims: { n: `x${lone}` } })).toBe(detail('claims'));
      expect(await issue({ claims: { [`k${lone}`]: 1 } })).toBe(detail('claims'));
      expect(await issue({ claims: { a: [{ b: { c: ['ok', lone] } }] } })).toBe(detail('claims'));
      expect(await issue({ client: { userAgent: `UA${lone}` } })).toBe(detail('userAgent'));
      expect(await issue({ audience: `aud${lone}` })).toBe(detail('audience'));
    }
    expect(await t.rotor.listSessions(app, 'alice')).toEqual([]); // nothing was stored
    // A surrogate pair is one character, and text like any other.
    const pair = await t.rotor.issueSession(app, { subject: 'smile-\u{1F600}', claims: { e: '\u{1F600}' }, audience: 'a\u{1F600}', client: { userAgent: 'UA \u{1F600}' } });
    expect(pair.session).toMatchObject({ subject: 'smile-\u{1F600}', claims: { e: '\u{1F600}' }, audience: 'a\u{1F600}', userAgent: 'UA \u{1F600}' });
  });

  it('subject writes: the subject id, the claims, the password', async () => {
    for (const lone of LONE) {
      expect(await refusal(t.rotor.subjects.put(app, `eve${lone}`, {}), true)).toBe(detail('subject'));
      expect(await refusal(t.rotor.subjects.put(app, 'eve', { claims: { a: lone } }), true)).toBe(detail('claims'));
      expect(await refusal(t.rotor.subjects.put(app, 'eve', { claims: { deep: { [lone]: 'x' } } }), true)).toBe(detail('claims'));
      // Hashed as UTF-8, two passwords differing in a lone surrogate would be one (both U+FFFD).
      expect(await refusal(t.rotor.subjects.put(app, 'eve', { password: `pw${lone}pw` }), true)).toBe(detail('password'));
    }
    expect(await refusal(t.rotor.subjects.get(app, 'eve'))).toBe('subject_not_found'); // nothing was stored
  });

  it('app writes: the description and the policy', async () => {
    expect(await refusal(t.rotor.apps.create({ name: 'other', description: 'd\ud800' }), true)).toBe(detail('description'));
    expect(await refusal(t.rotor.apps.update(app.id, { description: '\udfff' }), true)).toBe(detail('description'));
    expect(await refusal(t.rotor.apps.update(app.id, { policy: { audience: 'aud\ud800' } }), true)).toBe(detail('policy'));
    expect((await t.rotor.apps.get(app.id)).description).toBe('');
  });

  it('lookups: a subject id with a lone surrogate is refused as one, and a login with it is an unknown user', async () => {
    await t.rotor.subjects.put(app, 'bob\ufffd', { password: 'right-password' });
    expect(await refusal(t.rotor.listSessions(app, 'bob\ud800'), true)).toBe(detail('subject'));
    // On PostgreSQL the lookup would find `bob\ufffd`: the name is judged before the store sees it.
    expect(await refusal(t.rotor.login(app, { username: 'bob\ud800', password: 'right-password' }))).toBe('invalid_credentials');
    expect((await t.rotor.login(app, { username: 'bob\ufffd', password: 'right-password' })).session.subject).toBe('bob\ufffd');
  });

  // S4-05: PostgreSQL refused U+0000 (400), Redis and SQLite kept it (201, and `aud: "a\u0000"` signed).
  const nul = (field: string) => `invalid_request: ${field} must not contain a NUL character (U+0000)`;
  it('S4-05 the user agent, the audience, claims, a subject write and an app write', async () => {
    const issue = (input: Record<string, unknown>) => refusal(t.rotor.issueSession(app, { subject: 'alice', ...input }), true);
    expect(await issue({ client: { userAgent: 'UA\u0000' } })).toBe(nul('userAgent'));
    expect(await issue({ audience: 'a\u0000' })).toBe(nul('audience'));
    expect(await issue({ claims: { n: 'x\u0000y' } })).toBe(nul('claims'));
    expect(await issue({ claims: { 'k\u0000': 1 } })).toBe(nul('claims'));
    expect(await t.rotor.listSessions(app, 'alice')).toEqual([]);
    expect(await refusal(t.rotor.subjects.put(app, 'eve', { claims: { a: '\u0000' } }), true)).toBe(nul('claims'));
    expect(await refusal(t.rotor.apps.update(app.id, { description: 'd\u0000' }), true)).toBe(nul('description'));
  });
});
