// The console's shell: sign-in, the page router (#/health, #/failed-events,
// #/clients, #/analytics/<client>), and refreshing: by hand, every 5 minutes
// when auto-refresh is on, and after every action. A refresh that fails
// keeps the last good page on screen and says so, with a retry.

import { h, replace, agoEl, tickAgo, toast, icon } from './dom.js';
import { api, session, claims, ApiError } from './api.js';
import * as health from './pages/health.js';
import * as failed from './pages/failed.js';
import * as clients from './pages/clients.js';
import * as analytics from './pages/analytics.js';

const PAGES = { health, 'failed-events': failed, clients, analytics };
const AUTO_REFRESH_MS = 5 * 60 * 1000;

const main = document.getElementById('main');
const header = document.querySelector('header.top');
const updated = document.getElementById('updated');
const autoBox = document.getElementById('auto-refresh');

/** The page on screen: {page, banner, updatedAt, loads}. */
let view = null;
let timer = null;

function route() {
  const [name, ...params] = location.hash.replace(/^#\/?/, '').split('/');
  return { name: name || 'health', params: params.filter(Boolean).map(decodeURIComponent) };
}

function signOut(reason) {
  session.clear();
  showSignIn(reason);
}

/** What every API failure does: 401/403 back to sign-in, else the caller's. */
function refusal(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
    signOut(e.status === 401
      ? `The application did not accept the token: ${e.message}. Sign in again.`
      : `This token may not use the console: ${e.message}.`);
    return true;
  }
  return false;
}

/** Runs a button's action: busy while it runs; errors become a toast. */
async function act(button, fn) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    await fn();
  } catch (e) {
    if (!refusal(e)) toast(e.message, 'red');
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * A button that POSTs to `path`: a toast with `done(answer)`, or `conflict`
 * when the API answers 409 (already running, already resolved); then a refresh.
 */
function post(button, path, { done, conflict }) {
  return act(button, async () => {
    try {
      toast(done(await api.post(path)));
    } catch (e) {
      if (e.status !== 409) throw e;
      toast(conflict, 'yellow');
    }
    await refresh();
  });
}

function schedule() {
  clearTimeout(timer);
  if (autoBox.checked && view) timer = setTimeout(refresh, AUTO_REFRESH_MS);
}

function showUpdated() {
  if (!view || !view.updatedAt) {
    replace(updated);
  } else {
    replace(updated, 'Updated ', agoEl(view.updatedAt));
  }
}

async function refresh() {
  const current = view;
  if (!current) return;
  // Only the latest of overlapping refreshes (a filter changed twice) shows.
  const load = ++current.loads;
  const stale = () => current !== view || load !== current.loads;
  replace(updated, 'Refreshing…');
  try {
    const data = await current.page.load();
    if (stale()) return;
    current.page.show(data);
    current.updatedAt = Date.now();
    replace(current.banner);
  } catch (e) {
    if (stale() || refusal(e)) return;
    const what = current.updatedAt
      ? [h('strong', {}, 'Could not refresh (last updated ', agoEl(current.updatedAt), ').')]
      : [h('strong', {}, 'Could not load this page.')];
    replace(current.banner, h('div', { class: 'banner tone-red', role: 'alert' },
      icon('cross'),
      h('p', {}, what, ' ', e.message, e.field ? ` (${e.field})` : ''),
      h('button', { type: 'button', onclick: () => refresh() }, 'Retry')));
  }
  showUpdated();
  schedule();
}

/** Shows the page the URL names; `focus` moves focus to its heading (navigation). */
function show(focus) {
  if (!session.token()) {
    showSignIn('');
    return;
  }
  const { name, params } = route();
  const module = PAGES[name];
  if (!module) {
    location.hash = '#/health';
    return;
  }
  header.hidden = false;
  for (const a of header.querySelectorAll('nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const banner = h('div', { class: 'banner-slot' });
  const page = module.create({
    api, params, toast, act, post, refresh: () => refresh(), navigate: (hash) => { location.hash = hash; },
  });
  view = { page, banner, updatedAt: null, loads: 0 };
  replace(main, banner, page.el);
  document.title = `${page.title} · Tracking console`;
  const heading = main.querySelector('h1');
  if (heading && focus) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  refresh();
}

function showSignIn(reason) {
  view = null;
  clearTimeout(timer);
  header.hidden = true;
  document.title = 'Sign in · Tracking console';
  const input = h('textarea', {
    id: 'token', name: 'token', rows: 5, required: true, autocomplete: 'off', spellcheck: 'false',
    autocapitalize: 'off', 'aria-describedby': 'token-help',
  });
  const error = h('p', { class: 'form-error', id: 'signin-error', role: 'alert' });
  if (reason) replace(error, icon('cross'), h('span', {}, reason));
  const submit = (event) => {
    event.preventDefault();
    const token = input.value.trim().replace(/^Bearer\s+/i, '');
    const c = claims(token);
    let problem = '';
    if (!c) problem = 'That is not a JWT: paste the three dot-separated parts the command prints.';
    else if (typeof c.exp === 'number' && c.exp * 1000 < Date.now()) problem = 'This token has expired: mint a new one.';
    if (problem) {
      replace(error, icon('cross'), h('span', {}, problem));
      input.focus();
      return;
    }
    input.value = '';
    session.set(token);
    show(true);
  };
  replace(main, h('form', { class: 'signin panel', method: 'post', onsubmit: submit },
    h('h1', {}, 'Tracking console'),
    h('p', {}, 'Sign in with an admin token (a JWT signed with the application\'s admin_jwt_secret).'),
    h('label', { for: 'token' }, 'Admin token'),
    input,
    h('p', { id: 'token-help', class: 'help' },
      'Mint one locally with ', h('code', {}, 'target/debug/admin-token'),
      '. It is kept in this tab only (sessionStorage) and sent in the Authorization header, never in a URL.'),
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  input.focus();
}

document.getElementById('refresh-now').addEventListener('click', () => refresh());
document.getElementById('sign-out').addEventListener('click', () => signOut('You signed out.'));
autoBox.checked = localStorage.getItem('console.autoRefresh') !== 'off';
autoBox.addEventListener('change', () => {
  localStorage.setItem('console.autoRefresh', autoBox.checked ? 'on' : 'off');
  schedule();
});
window.addEventListener('hashchange', () => show(true));
setInterval(() => tickAgo(), 30 * 1000);
show(false);
