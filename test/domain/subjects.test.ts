import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/domain/types.js';
import { catalog, type Catalog, refusal, T0 } from './catalog.js';

describe('subjects (fixed clock, SQLite store)', () => {
  let t: Catalog;
  let app: App;
  const names = () => t.events.map((e) => e.event);

  beforeEach(async () => {
    t = await catalog();
    app = (await t.apps.create({ name: 'shop' })).app;
  });
  afterEach(() => t.close());

  it('a put creates an active subject with its claims; a later put changes only the fields it names', async () => {
    const created = await t.subjects.put(app, 'alice', { claims: { role: 'admin' } });
    expect(created).toMatchObject({ appId: app.id, subject: 'alice', claims: { role: 'admin' }, status: 'active', passwordHash: null, createdAt: T0, updatedAt: T0 });
    t.clock.advance(5);
    const disabled = await t.subjects.put(app, 'alice', { status: 'disabled' });
    expect(disabled).toMatchObject({ claims: { role: 'admin' }, status: 'disabled', createdAt: T0, updatedAt: T0 + 5000 });
    expect(await t.subjects.get(app, 'alice')).toEqual(disabled);
  });

  it('subject ids are 1 to 255 printable characters; status is active or disabled', async () => {
    for (const id of ['', 'a'.repeat(256), 'line\nbreak', 'nul\u0000', 7, null]) {
      expect(await refusal(t.subjects.put(app, id, {}), true)).toBe('invalid_request: subject must be a string of 1 to 255 printable characters');
    }
    expect((await t.subjects.put(app, 'a'.repeat(255), {})).subject).toHaveLength(255);
    expect(await refusal(t.subjects.put(app, 'alice', { status: 'banned' }), true)).toBe('invalid_request: status must be "active" or "disabled"');
    expect(await refusal(t.subjects.get(app, 'alice'))).toBe('subject_not_found'); // the refused put wrote nothing
  });

  it('disabling emits subject_disabled once, on the change; enabling brings the subject back', async () => {
    await t.subjects.put(app, 'alice', {});
    await t.subjects.put(app, 'alice', { status: 'disabled' });
    await t.subjects.put(app, 'alice', { status: 'disabled' });
    expect(names()).toEqual(['subject_disabled']);
    expect(t.events[0]?.fields).toEqual({ appId: app.id });
    expect((await t.subjects.put(app, 'alice', { status: 'active' })).status).toBe('active');
    await t.subjects.put(app, 'bob', { status: 'disabled' }); // created disabled: a change too
    expect(names()).toEqual(['subject_disabled', 'subject_disabled']);
  });

  it('subjects belong to their app: another app does not see them', async () => {
    const other = (await t.apps.create({ name: 'payments' })).app;
    await t.subjects.put(app, 'alice', { claims: { plan: 'pro' } });
    expect(await refusal(t.subjects.get(other, 'alice'))).toBe('subject_not_found');
    await t.subjects.put(other, 'alice', {});
    expect((await t.subjects.get(app, 'alice')).claims).toEqual({ plan: 'pro' });
  });

  it('deleting a subject emits subject_deleted; deleting it again, or an unknown one, is subject_not_found', async () => {
    await t.subjects.put(app, 'alice', {});
    await t.subjects.delete(app, 'alice');
    expect(await refusal(t.subjects.get(app, 'alice'))).toBe('subject_not_found');
    expect(await refusal(t.subjects.delete(app, 'alice'))).toBe('subject_not_found');
    expect(names()).toEqual(['subject_deleted']);
  });

  describe('password login', () => {
    beforeEach(async () => {
      await t.subjects.put(app, 'alice', { password: 'correct horse' });
    });

    it('the password is stored hashed, and the right one logs the subject in', async () => {
      const stored = await t.subjects.get(app, 'alice');
      expect(stored.passwordHash).not.toBeNull();
      expect(stored.passwordHash).not.toContain('correct horse');
      expect((await t.subjects.checkPassword(app, 'alice', 'correct horse')).subject).toBe('alice');
      expect(names()).toEqual([]);
    });

    it('a wrong password and an unknown user get the same answer, and each is a login_failed event', async () => {
      const wrong = await refusal(t.subjects.checkPassword(app, 'alice', 'Correct horse'), true);
      const unknown = await refusal(t.subjects.checkPassword(app, 'mallory', 'correct horse'), true);
      expect(wrong).toBe('invalid_credentials: the username or password is wrong');
      expect(unknown).toBe(wrong);
      expect(names()).toEqual(['login_failed', 'login_failed']);
    });

    it('a disabled subject gets the wrong-password answer even with the right password, until enabled again', async () => {
      await t.subjects.put(app, 'alice', { status: 'disabled' });
      expect(await refusal(t.subjects.checkPassword(app, 'alice', 'correct horse'), true)).toBe('invalid_credentials: the username or password is wrong');
      await t.subjects.put(app, 'alice', { status: 'active' });
      expect((await t.subjects.checkPassword(app, 'alice', 'correct horse')).status).toBe('active');
    });

    it('a password set to null removes it: no password logs in any more', async () => {
      await t.subjects.put(app, 'alice', { password: null });
      expect((await t.subjects.get(app, 'alice')).passwordHash).toBeNull();
      expect(await refusal(t.subjects.checkPassword(app, 'alice', 'correct horse'))).toBe('invalid_credentials');
      expect(await refusal(t.subjects.checkPassword(app, 'alice', ''))).toBe('invalid_credentials');
    });

    it('passwords are 1 to 1024 characters; oversized or non-string credentials are refused before any lookup', async () => {
      for (const password of ['', 'x'.repeat(1025), 12345]) {
        expect(await refusal(t.subjects.put(app, 'bob', { password }), true)).toBe('invalid_request: password must be a string of 1 to 1024 characters');
      }
      for (const [username, password] of [['alice', 'x'.repeat(1025)], ['a'.repeat(256), 'correct horse'], [null, 'correct horse'], ['alice', 7]]) {
        expect(await refusal(t.subjects.checkPassword(app, username, password))).toBe('invalid_credentials');
      }
    });

    it('a password is checked within its app only', async () => {
      const other = (await t.apps.create({ name: 'payments' })).app;
      expect(await refusal(t.subjects.checkPassword(other, 'alice', 'correct horse'))).toBe('invalid_credentials');
    });
  });
});
