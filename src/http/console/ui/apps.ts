import { isAddressable, path, query } from './api.js';
import { badge, confirmButton, duration, h, json, replace, time, user } from './dom.js';
import type { AppSummary, Screen, Shell } from './shell.js';

const DURATIONS = new Set(['accessTtl', 'refreshTtl', 'refreshNotBefore', 'reuseGrace', 'sessionMaxAge', 'sessionIdleTimeout', 'keyRotationPeriod']);

/** What each policy field does, in a line (docs/config.md has the whole story). */
const MEANING: Record<string, string> = {
  accessTtl: 'lifetime of an access token',
  refreshTtl: 'lifetime of a refresh token (off: no refresh tokens)',
  refreshNotBefore: 'a refresh token is not valid before this delay',
  reuseGrace: 'a consumed refresh token retried within this window returns the same successor',
  sessionMaxAge: 'absolute session lifetime, never extended by rotation',
  sessionIdleTimeout: 'a session unused this long expires',
  binding: 'off, record (last ip and user agent), useragent (refresh must come from the same user agent)',
  alg: 'signing algorithm of new keys',
  keyRotationPeriod: 'signing keys rotate by themselves this often',
  audience: 'aud of access tokens when the session names none',
  allowedOrigins: 'browser origins this app\'s tokens may be used from',
  dpop: 'DPoP proofs: off, allowed, required',
  dpopNonce: 'demand server nonces in DPoP proofs',
  verifikMaxMonths: 'Verifik: the longest renewal a client may ask for',
  flolivePermitExpiredAccess: 'floLIVE: an expired access token may accompany a refresh',
};

const profileBadge = (profile: string) => badge(profile, profile === 'native' ? 'native' : 'dialect');

/** `#/apps`: every app with its profile and kind of client. */
export function appsScreen(shell: Shell): Screen {
  const body = h('tbody');
  const el = h('div', null,
    h('div', { class: 'toolbar' }, h('h1', null, 'Apps'), h('span', { class: 'spacer' })),
    h('div', { class: 'panel' },
      h('table', { id: 'apps' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Profile'), h('th', null, 'Clients'), h('th', null, 'Tokens'), h('th', null, 'Description'), h('th', null, 'Created'), h('th', null, 'Id'))),
        body)),
  );
  shell.refreshApps();
  void shell.apps().then((apps) => {
    if (apps.length === 0) {
      replace(body, h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No apps yet. Create one with: rotor apps create <name>')));
      return;
    }
    replace(body, ...apps.map((app) => {
      const row = h('tr', { class: 'click', 'data-app': app.name },
        h('td', null, h('a', { href: `#/apps/${encodeURIComponent(app.id)}` }, app.name)),
        h('td', null, profileBadge(app.profile)),
        h('td', null, app.public ? 'public' : 'confidential'),
        h('td', { class: 'small' }, `access ${duration(app.policy.accessTtl)} · refresh ${duration(app.policy.refreshTtl)} · grace ${duration(app.policy.reuseGrace)}`),
        h('td', null, user(app.description)),
        h('td', null, time(app.createdAt)),
        h('td', null, h('code', null, app.id)));
      row.addEventListener('click', () => { location.hash = `#/apps/${encodeURIComponent(app.id)}`; });
      return row;
    }));
  }, (err) => shell.fail(err));
  return { el };
}

type Tab = 'overview' | 'sessions' | 'keys';

/** `#/apps/{id}[/sessions|/keys]`: one app. */
export function appScreen(shell: Shell, appId: string, tab: Tab): Screen {
  const content = h('div');
  const title = h('h1', null, '…');
  const el = h('div', null,
    h('div', { class: 'crumbs' }, h('a', { href: '#/apps' }, 'Apps'), ' / '),
    h('div', { class: 'toolbar' }, title),
    h('nav', { class: 'tabs' },
      ...(['overview', 'sessions', 'keys'] as const).map((t) => h('a', {
        href: `#/apps/${encodeURIComponent(appId)}${t === 'overview' ? '' : `/${t}`}`, class: t === tab ? 'on' : '', 'data-tab': t,
      }, t === 'overview' ? 'Profile & policy' : t === 'sessions' ? 'Subjects & sessions' : 'Signing keys'))),
    content,
  );
  let disposed = false;
  const screen: Screen = { el, dispose: () => { disposed = true; } };
  void shell.api.request<AppSummary>('GET', path`/admin/apps/${appId}`).then((app) => {
    if (disposed) return;
    replace(title, app.name, ' ', profileBadge(app.profile));
    if (tab === 'overview') replace(content, overview(app));
    if (tab === 'sessions') replace(content, sessionsTab(shell, app));
    if (tab === 'keys') replace(content, keysTab(shell, app));
  }, (err) => shell.fail(err));
  return screen;
}

function overview(app: AppSummary): HTMLElement {
  const policy = Object.entries(app.policy);
  return h('div', { class: 'row' },
    h('div', { class: 'panel side' },
      h('h3', null, 'App'),
      h('dl', { class: 'kv' },
        h('dt', null, 'Id'), h('dd', null, h('code', null, app.id)),
        h('dt', null, 'Name'), h('dd', null, app.name),
        h('dt', null, 'Profile'), h('dd', null, profileBadge(app.profile)),
        h('dt', null, 'Clients'), h('dd', null, app.public ? 'public (refresh without the app key)' : 'confidential (the app key redeems)'),
        h('dt', null, 'Description'), h('dd', null, user(app.description)),
        h('dt', null, 'Created'), h('dd', null, time(app.createdAt)),
        h('dt', null, 'Updated'), h('dd', null, time(app.updatedAt)))),
    h('div', { class: 'panel grow' },
      h('h3', null, 'Policy'),
      h('table', { id: 'policy' },
        h('thead', null, h('tr', null, h('th', null, 'Field'), h('th', null, 'Value'), h('th', null, ''))),
        h('tbody', null, ...policy.map(([field, value]) => h('tr', null,
          h('td', null, h('code', null, field)),
          h('td', null, DURATIONS.has(field) ? duration(value) : value === null ? h('span', { class: 'muted' }, 'off') : user(typeof value === 'string' ? value : JSON.stringify(value))),
          h('td', { class: 'muted small' }, MEANING[field] ?? '')))))),
  );
}

interface SubjectRow { subject: string; status: string; claims: Record<string, unknown>; liveSessions: number; hasPassword: boolean; createdAt: string }
interface SessionRow {
  claims: Record<string, unknown>; audience: string | null;
  id: string; subject: string; state: 'live' | 'revoked' | 'expired'; createdAt: string; lastRenewedAt: string; expiresAt: string | null;
  refreshExpiresAt: string | null; ip: string | null; userAgent: string | null; lastIp: string | null; lastUserAgent: string | null;
  revokedAt: string | null; revokeReason: string | null; rotations: number; dpopBound: boolean;
}

const REASONS: Record<string, string> = {
  reuse: 'reuse detected (a consumed refresh token came back)',
  revoked: 'revoked (a revoke call, the console or the CLI)',
  subject_disabled: 'the subject was disabled',
  subject_deleted: 'the subject was deleted',
  logout: 'signed out (FIB logout)',
  renew_and_revoke: 'replaced by a Verifik renew-and-revoke',
};

/** The subjects of an app (a page at a time), and the sessions of the one selected. */
function sessionsTab(shell: Shell, app: AppSummary): HTMLElement {
  const list = h('tbody');
  const more = h('div');
  const detail = h('div', { class: 'grow' });
  const search = h('input', { type: 'search', placeholder: 'Find a subject by its id', 'aria-label': 'subject id', id: 'find-subject' });
  const find = h('form', { class: 'toolbar' }, search, h('button', { type: 'submit' }, 'Find'));
  find.addEventListener('submit', (event) => {
    event.preventDefault();
    const subject = search.value;
    if (subject) void showSubject(subject);
  });

  const subjectLink = (subject: string) => {
    const a = h('a', { href: '#/', class: 'subject-link', title: subject }, user(subject));
    a.addEventListener('click', (event) => {
      event.preventDefault();
      event.stopPropagation();
      void showSubject(subject);
    });
    return a;
  };

  async function loadSubjects(cursor: string | null) {
    try {
      const page = await shell.api.request<{ subjects: SubjectRow[]; next: string | null }>('GET', `${path`/admin/apps/${app.id}/subjects`}${query({ cursor, limit: 50 })}`);
      if (cursor === null && page.subjects.length === 0) replace(list, h('tr', null, h('td', { colspan: 3, class: 'empty' }, 'No subjects yet.')));
      for (const s of page.subjects) {
        const row = h('tr', { class: 'click', 'data-subject': s.subject },
          h('td', null, subjectLink(s.subject)), h('td', null, badge(s.status)), h('td', { title: 'live sessions' }, String(s.liveSessions)));
        row.addEventListener('click', () => void showSubject(s.subject));
        list.appendChild(row);
      }
      if (page.next) {
        const button = h('button', { type: 'button' }, 'More subjects');
        button.addEventListener('click', () => void loadSubjects(page.next));
        replace(more, button);
      } else replace(more);
    } catch (err) {
      shell.fail(err);
    }
  }

  async function recent() {
    try {
      const page = await shell.api.request<{ sessions: SessionRow[] }>('GET', `${path`/admin/apps/${app.id}/sessions`}${query({ limit: 25 })}`);
      replace(detail, h('div', { class: 'panel' }, h('h3', null, 'Newest sessions'), sessionsTable(page.sessions, true)));
    } catch (err) {
      shell.fail(err);
    }
  }

  async function showSubject(subject: string) {
    try {
      // `.` and `..` cannot be named in a path (a URL parser resolves them): their record is not fetched.
      const record = isAddressable(subject)
        ? await shell.api.request<SubjectRow>('GET', path`/admin/apps/${app.id}/subjects/${subject}`).catch(() => null)
        : null;
      const page = await shell.api.request<{ sessions: SessionRow[] }>('GET', `${path`/admin/apps/${app.id}/sessions`}${query({ subject, limit: 500 })}`);
      for (const row of list.querySelectorAll('tr.sel')) row.classList.remove('sel');
      for (const row of list.querySelectorAll('tr')) if (row.dataset.subject === subject) row.classList.add('sel');
      const live = page.sessions.filter((x) => x.state === 'live');
      const revokeAll = confirmButton(`Revoke all ${live.length} live sessions`, 'Click again to revoke them all', async () => {
        try {
          let revoked: number;
          if (isAddressable(subject)) {
            revoked = (await shell.api.request<{ revoked: number }>('DELETE', path`/admin/apps/${app.id}/subjects/${subject}/sessions`)).revoked;
          } else {
            for (const session of live) await shell.api.request('DELETE', path`/admin/apps/${app.id}/sessions/${session.id}`);
            revoked = live.length;
          }
          shell.notify(`Revoked ${revoked} session${revoked === 1 ? '' : 's'}.`);
          await showSubject(subject);
        } catch (err) {
          shell.fail(err);
        }
      }, 'revoke-all');
      revokeAll.disabled = live.length === 0;
      replace(detail, h('div', { class: 'panel', id: 'subject' },
        h('div', { class: 'toolbar' },
          h('h2', null, user(subject)), record ? badge(record.status) : null,
          h('span', { class: 'muted' }, `${live.length} live of ${page.sessions.length}`), h('span', { class: 'spacer' }), revokeAll),
        record && Object.keys(record.claims).length > 0 ? h('div', null, h('span', { class: 'muted small' }, 'claims of the subject'), json(record.claims)) : null,
        h('div', null, sessionsTable(page.sessions, false, async (session) => {
          try {
            await shell.api.request('DELETE', path`/admin/apps/${app.id}/sessions/${session.id}`);
            shell.notify(`Session ${session.id} revoked.`);
            await showSubject(subject);
          } catch (err) {
            shell.fail(err);
          }
        }))));
    } catch (err) {
      shell.fail(err);
    }
  }

  void loadSubjects(null);
  void recent();
  return h('div', { class: 'row' },
    h('div', { class: 'panel side' }, h('h3', null, 'Subjects'), find,
      h('table', { id: 'subjects' }, h('thead', null, h('tr', null, h('th', null, 'Subject'), h('th', null, 'Status'), h('th', null, 'Live'))), list), more),
    detail);

  function sessionsTable(sessions: SessionRow[], withSubject: boolean, revoke?: (s: SessionRow) => Promise<void>): HTMLElement {
    if (sessions.length === 0) return h('div', { class: 'empty' }, 'No sessions.');
    return h('table', { class: 'sessions' },
      h('thead', null, h('tr', null,
        withSubject ? h('th', null, 'Subject') : null, h('th', null, 'Device'), h('th', null, 'IP'), h('th', null, 'Created'),
        h('th', null, 'Last renewed'), h('th', null, 'Expires'), h('th', null, 'State'), revoke ? h('th', null, '') : null)),
      h('tbody', null, ...sessions.map((x) => h('tr', { 'data-session': x.id },
        withSubject ? h('td', null, subjectLink(x.subject)) : null,
        h('td', { class: 'ua' }, user(x.lastUserAgent ?? x.userAgent, 'unknown device'),
          x.userAgent && x.lastUserAgent && x.userAgent !== x.lastUserAgent ? h('div', { class: 'sub' }, 'issued to ', user(x.userAgent)) : null,
          h('div', { class: 'sub' }, h('code', null, x.id), x.dpopBound ? ' · DPoP-bound' : '', ` · ${x.rotations} rotation${x.rotations === 1 ? '' : 's'}`),
          Object.keys(x.claims ?? {}).length > 0 || x.audience
            ? h('details', { class: 'claims' }, h('summary', null, 'claims'), json({ ...(x.audience ? { aud: x.audience } : {}), ...x.claims }))
            : null),
        h('td', { class: 'ip' }, user(x.lastIp ?? x.ip), x.ip && x.lastIp && x.ip !== x.lastIp ? h('div', { class: 'sub' }, 'issued to ', user(x.ip)) : null),
        h('td', null, time(x.createdAt)),
        h('td', null, time(x.lastRenewedAt)),
        h('td', null, x.expiresAt ? time(x.expiresAt) : h('span', { class: 'muted' }, 'no limit'),
          x.refreshExpiresAt ? h('div', { class: 'sub' }, 'refresh token ', time(x.refreshExpiresAt)) : null),
        h('td', null, badge(x.state),
          x.state === 'revoked' ? h('div', { class: 'sub reason' }, REASONS[x.revokeReason ?? ''] ?? user(x.revokeReason), ' · ', time(x.revokedAt)) : null),
        revoke ? h('td', { class: 'actions' }, x.state === 'live' ? confirmButton('Revoke', 'Confirm', () => revoke(x), 'revoke') : null) : null))));
  }
}

interface KeyRow { kid: string; alg: string; state: string; published: boolean; createdAt: string; retiredAt: string | null; publishUntil: string | null; revokedAt: string | null }

/** Signing keys with their state; rotate, revoke. */
function keysTab(shell: Shell, app: AppSummary): HTMLElement {
  const body = h('tbody');
  const rotate = confirmButton('Rotate signing key', 'Click again to rotate', async () => {
    try {
      const key = await shell.api.request<KeyRow>('POST', path`/admin/apps/${app.id}/keys/rotate`);
      shell.notify(`New active key ${key.kid}; the previous one is retiring.`);
      await load();
    } catch (err) {
      shell.fail(err);
    }
  }, 'rotate');
  rotate.classList.remove('danger');
  rotate.classList.add('primary');
  async function load() {
    try {
      const { keys } = await shell.api.request<{ keys: KeyRow[] }>('GET', path`/admin/apps/${app.id}/keys`);
      const order: Record<string, number> = { active: 0, retiring: 1, revoked: 2 };
      keys.sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || (a.kid < b.kid ? 1 : -1));
      replace(body, ...keys.map((k) => h('tr', { 'data-kid': k.kid, 'data-state': k.state },
        h('td', null, h('code', null, k.kid)), h('td', null, k.alg), h('td', null, k.state === 'retiring' && !k.published ? badge('retiring, unpublished', 'revoked') : badge(k.state)),
        h('td', null, time(k.createdAt)), h('td', null, time(k.retiredAt)), h('td', null, time(k.publishUntil)), h('td', null, time(k.revokedAt)),
        h('td', { class: 'actions' }, k.state === 'revoked' ? null : confirmButton('Revoke', 'Confirm: tokens it signed die now', async () => {
          try {
            await shell.api.request('POST', path`/admin/apps/${app.id}/keys/${k.kid}/revoke`);
            shell.notify(`Key ${k.kid} revoked.`);
            await load();
          } catch (err) {
            shell.fail(err);
          }
        }, 'revoke-key')))));
    } catch (err) {
      shell.fail(err);
    }
  }
  void load();
  return h('div', { class: 'panel' },
    h('div', { class: 'toolbar' }, rotate, h('span', { class: 'spacer' }),
      h('a', { href: `v1/apps/${encodeURIComponent(app.id)}/jwks.json`, target: '_blank', rel: 'noopener noreferrer', id: 'jwks-link' }, 'JWKS of this app')),
    h('p', { class: 'muted small' },
      'A rotation makes a new key active; the old one keeps verifying (and stays in the JWKS) until every token it signed has expired. ',
      'A revoked key is refused at once: the tokens it signed stop verifying.'),
    h('table', { id: 'keys' },
      h('thead', null, h('tr', null, h('th', null, 'Kid'), h('th', null, 'Alg'), h('th', null, 'State'), h('th', null, 'Created'),
        h('th', null, 'Retired'), h('th', null, 'Published until'), h('th', null, 'Revoked'), h('th', null, ''))),
      body));
}
