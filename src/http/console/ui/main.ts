import { activityScreen } from './activity.js';
import { AdminApi, ApiError } from './api.js';
import { appScreen, appsScreen } from './apps.js';
import { h, replace } from './dom.js';
import { statusLine, type AppSummary, type Screen, type Shell } from './shell.js';
import { signIn } from './signin.js';

/**
 * The Rotor console (issue 17): a few ES modules, no framework. What it draws is tables, two-step
 * buttons and three small SVG charts; a framework would add more code than the console has, a build
 * step and another dependency to trust, and buys nothing a page this size needs. Every action is an
 * admin API call (SPEC §4.3), so the console can do nothing the API cannot.
 */
const root = document.getElementById('root')!;
const api = new AdminApi();
const status = statusLine();
let current: Screen | null = null;
let appsCache: Promise<AppSummary[]> | null = null;

const shell: Shell = {
  api,
  notify: (text, error = false) => status.show(text, error),
  fail(err) {
    if (err instanceof ApiError && err.status === 401) return;
    status.show(err instanceof ApiError ? `${err.code ? `${err.code}: ` : ''}${err.detail}` : String((err as Error)?.message ?? err), true);
  },
  apps() {
    appsCache ??= api.request<{ apps: AppSummary[] }>('GET', '/admin/apps').then((r) => r.apps, (err) => {
      appsCache = null;
      throw err;
    });
    return appsCache;
  },
  refreshApps() {
    appsCache = null;
  },
};

api.onUnauthorized = () => showSignIn('The server refused the admin token; sign in again.');

function showSignIn(message = ''): void {
  current?.dispose?.();
  current = null;
  replace(root, signIn(api, () => {
    if (!location.hash || location.hash === '#/signin') location.hash = '#/apps';
    route();
  }, message), status.el);
}

function nav(active: string): HTMLElement {
  const link = (href: string, label: string, key: string) => h('a', { href, class: active === key ? 'on' : '' }, label);
  const signOut = h('button', { type: 'button', id: 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', () => {
    api.signOut();
    showSignIn('Signed out.');
  });
  return h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'dot' }), 'Rotor console'),
    h('nav', null, link('#/apps', 'Apps', 'apps'), link('#/activity', 'Activity', 'activity')),
    h('div', { class: 'right' }, h('span', null, location.host), signOut));
}

function route(): void {
  if (!api.signedIn) return showSignIn();
  current?.dispose?.();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return '';
    }
  });
  let screen: Screen;
  let active = 'apps';
  if (parts[0] === 'activity') {
    screen = activityScreen(shell);
    active = 'activity';
  } else if (parts[0] === 'apps' && parts[1]) {
    const tab = parts[2] === 'sessions' ? 'sessions' : parts[2] === 'keys' ? 'keys' : 'overview';
    screen = appScreen(shell, parts[1], tab);
  } else {
    screen = appsScreen(shell);
  }
  current = screen;
  replace(root, nav(active), h('main', null, screen.el), status.el);
  window.scrollTo(0, 0);
}

window.addEventListener('hashchange', route);
route();
