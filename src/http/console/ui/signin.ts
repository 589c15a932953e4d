import { ApiError, type AdminApi } from './api.js';
import { h, replace } from './dom.js';

/** The sign-in screen: the admin token, checked by the server before it is kept. */
export function signIn(api: AdminApi, done: () => void, message = ''): HTMLElement {
  const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'off', spellcheck: 'false', placeholder: 'ROTOR_ADMIN_TOKEN' });
  const error = h('div', { class: 'error', role: 'alert' }, message);
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  // No action, no method: the form never navigates (and CSP form-action 'none' forbids it anyway), so the
  // token cannot end up in a URL even if this script failed.
  const form = h('form', { autocomplete: 'off' },
    h('label', { for: 'token' }, 'Admin token'), input, button, error,
    h('p', { class: 'note' },
      'The token stays in this browser tab (sessionStorage) until you sign out or close the tab, and is sent only to this server\'s admin API, as an Authorization header.'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return replace(error, 'Enter the admin token.');
    button.disabled = true;
    replace(error);
    try {
      await api.signIn(token);
      input.value = '';
      done();
    } catch (err) {
      replace(error, err instanceof ApiError && err.status === 401 ? 'The server refused this token.' : `Could not sign in: ${(err as Error).message}`);
    } finally {
      button.disabled = false;
    }
  });
  queueMicrotask(() => input.focus());
  return h('div', { class: 'signin panel' }, h('h1', null, 'Rotor console'), h('p', { class: 'muted' }, 'Sign in with the admin token of this server.'), form);
}
