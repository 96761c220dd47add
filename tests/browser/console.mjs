// The operator console in a real browser: Debian's Chromium driven by
// playwright-core. Run by tests/tests/console.rs, which seeds the database,
// serves the application on the local host and passes:
//   CONSOLE_URL        the application's origin (http://127.0.0.1:<port>)
//   CONSOLE_TOKEN      an admin JWT for its admin_jwt_secret
//   CONSOLE_BAD_TOKEN  a JWT signed with another secret
//   CONSOLE_SEED       JSON: what was seeded (client names and ids, figures)
//   CONSOLE_SCREENSHOTS=1 to write docs/console/*.png
// Exits non-zero at the first failed step, saying which and why.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const APP = process.env.CONSOLE_URL;
const TOKEN = process.env.CONSOLE_TOKEN;
const BAD_TOKEN = process.env.CONSOLE_BAD_TOKEN;
const SEED = JSON.parse(process.env.CONSOLE_SEED || '{}');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.CONSOLE_SCREENSHOTS === '1'
  ? join(dirname(fileURLToPath(import.meta.url)), '../../docs/console') : null;
if (!APP || !TOKEN || !BAD_TOKEN || !SEED.analytics) {
  console.error('CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_BAD_TOKEN and CONSOLE_SEED are required (tests/tests/console.rs sets them)');
  process.exit(2);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Polls `fn` until it returns a truthy value (returned) or fails after `ms`. */
async function until(what, fn, ms = 10000) {
  const start = Date.now();
  const end = start + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) {
        if (Date.now() - start > 2000) console.log(`  (waited ${Date.now() - start} ms for ${what})`);
        return last;
      }
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await until('the page to settle', async () => !(await page.locator('#updated').innerText()).includes('Refreshing'));
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

const problems = [];
/** A page that records script errors, CSP violations and foreign requests. */
async function open(context, label) {
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (401|403|409|503)/.test(m.text())) problems.push(`${label}: console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(APP) && !url.startsWith('data:')) problems.push(`${label}: request to another origin: ${url}`);
  });
  return page;
}

async function signedIn(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  await context.addInitScript((t) => sessionStorage.setItem('console.token', t), TOKEN);
  return context;
}

const toastText = (page) => page.locator('#toasts').innerText();
const text = (page, sel) => page.locator(sel).first().innerText();
const count = async (page, status) => Number((await text(page, `.count-list li[data-status="${status}"] .count`)).replace(/,/g, ''));

const steps = [];
const step = (name, fn) => steps.push([name, fn]);

let browser;
let page;

step('the console is served with its policy and signs in with a pasted token', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await open(context, 'main');
  const res = await page.goto(`${APP}/console`);
  check(page.url() === `${APP}/console/`, `/console redirects to /console/, got ${page.url()}`);
  const csp = res.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), `CSP: ${csp}`);
  await page.locator('#token').waitFor();
  await shot(page, 'sign-in');
  await page.fill('#token', 'not a token');
  await page.click('button[type=submit]');
  await until('the form to refuse a non-JWT', async () => (await text(page, '#signin-error')).includes('not a JWT'));
  await page.fill('#token', BAD_TOKEN);
  await page.click('button[type=submit]');
  await until('the API to refuse a badly signed token', async () =>
    (await page.locator('#signin-error').isVisible()) && (await text(page, '#signin-error')).includes('did not accept the token'));
  check(await page.evaluate(() => sessionStorage.getItem('console.token')) === null, 'a refused token is forgotten');
  await page.fill('#token', TOKEN);
  await page.click('button[type=submit]');
  await page.locator('h1', { hasText: 'Health' }).waitFor();
  check(!page.url().includes(TOKEN.slice(-20)), 'the token is never in the URL');
  check(await page.evaluate(() => sessionStorage.getItem('console.token')) === TOKEN, 'kept in sessionStorage');
  check(await page.evaluate(() => localStorage.getItem('console.token')) === null, 'never in localStorage');
});

step('health is red because of the seeded alerts, says why, and turns green once they are resolved', async () => {
  const overall = page.locator('.overall');
  await until('a red overall status', async () => (await overall.getAttribute('data-status')) === 'red');
  const words = await overall.innerText();
  check(/Red: Action needed/.test(words) && /Why: at least one critical alert is open/.test(words), words);
  check(/Last checked (\d+ minutes|less than a minute) ago/.test(words), words);
  const label = await overall.locator('h2').getAttribute('aria-label');
  check(label.startsWith('Overall status: Red'), `aria-label: ${label}`);
  const rows = page.locator('tr[data-alert-id]');
  check(await rows.count() === SEED.open_alerts, `${await rows.count()} open alerts, expected ${SEED.open_alerts}`);
  const global = rows.filter({ hasText: 'Global' });
  const alertText = await global.innerText();
  check(/Critical/.test(alertText) && /Conversions waiting for delivery/.test(alertText) && /15 vs 10/.test(alertText), alertText);
  const metrics = await page.locator('section.panel', { has: page.locator('h2', { hasText: /^Last check$/ }) }).innerText();
  check(/Conversions waiting for delivery\s+15\s+10/.test(metrics), `metrics: ${metrics}`);
  const dest = await page.locator('.destination').first().innerText();
  check(/p50/.test(dest) && /p99/.test(dest) && /Attempts\s+40/.test(dest), `destinations: ${dest}`);
  const ingest = await page.locator('section', { hasText: 'Ingest volume' }).innerText();
  check(/Last 24 h/.test(ingest) && /a week before/.test(ingest), ingest);
  await shot(page, 'health');
  for (let left = SEED.open_alerts; left > 0; left -= 1) {
    await rows.first().getByRole('button', { name: /^Resolve alert/ }).click();
    await until(`${left - 1} open alerts`, async () => (await rows.count()) === left - 1);
  }
  await until('green', async () => (await overall.getAttribute('data-status')) === 'green');
  check(/Why: no alert open and the last check is recent/.test(await overall.innerText()), await overall.innerText());
});

step('a running check is reported as such (409)', async () => {
  await page.route('**/admin/tracking-health/check', (r) => r.fulfill({
    status: 409, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'check_running', message: 'another check is running' } }),
  }), { times: 1 });
  await page.getByRole('button', { name: 'Run check now' }).click();
  await until('the 409 toast', async () => (await toastText(page)).includes('A check is running'));
});

step('failed events: counts, redacted payloads, Retry all with the seed\'s toast, counts change', async () => {
  await page.getByRole('link', { name: 'Failed events' }).click();
  await page.locator('h1', { hasText: 'Failed events' }).waitFor();
  await until('15 pending', async () => (await count(page, 'pending')) === 15);
  check(await page.locator('tr[data-id]').count() === 15, 'one row per waiting delivery');
  const details = page.locator('tr[data-id] details').first();
  await details.locator('summary').click();
  const shown = await details.locator('pre').innerText();
  check(shown.includes('[redacted]') && !shown.includes(SEED.secret), `payload: ${shown}`);
  check(!(await page.content()).includes(SEED.secret), 'no credential anywhere in the page');
  // Filters: destination kind and client.
  await page.selectOption('#filter-status', 'pending');
  await until('15 pending rows', async () => (await page.locator('tr[data-id]').count()) === 15);
  await page.selectOption('#filter-client', SEED.xss_client);
  await until('the client filter', async () => (await page.locator('tr[data-id]').count()) === 15);
  await page.selectOption('#filter-client', SEED.analytics);
  await until('no row for a client without deliveries', async () => (await page.locator('.results .empty').count()) === 1);
  await page.selectOption('#filter-client', '');
  await page.selectOption('#filter-status', '');
  await until('the list back', async () => (await page.locator('tr[data-id]').count()) === 15);
  await shot(page, 'failed-events');
  await page.getByRole('button', { name: 'Retry all' }).click();
  await until('the seed\'s result toast', async () => (await toastText(page)).includes('12 resolved, 2 still pending, 1 dead-lettered'));
  await until('the counts to change', async () => (await count(page, 'pending')) === 0
    && (await count(page, 'resolved')) === 12 && (await count(page, 'retrying')) === 2 && (await count(page, 'dead_letter')) === 1);
  check(await page.locator('tr[data-id]').count() === 3, 'three rows left to deal with');
  // Retry one selected row (its platform still answers 503) and re-queue the dead letter (still refused).
  const retrying = page.locator('tr[data-status="retrying"]').first();
  await retrying.getByRole('checkbox').check();
  await page.getByRole('button', { name: 'Retry selected (1)' }).click();
  await until('the selected retry', async () => (await toastText(page)).includes('0 resolved, 1 still pending, 0 dead-lettered'));
  await page.getByRole('button', { name: /Re-queue dead letters on this page \(1\)/ }).click();
  await until('the re-queued dead letter', async () => (await toastText(page)).includes('0 resolved, 0 still pending, 1 dead-lettered'));
  check(await count(page, 'dead_letter') === 1 && await count(page, 'retrying') === 2, 'the same counts after both');
});

step('run check now after the retry: the backlog is gone, the new dead letter is a warning', async () => {
  await page.getByRole('link', { name: 'Health' }).click();
  await page.getByRole('button', { name: 'Run check now' }).click();
  await until('the check toast', async () => (await toastText(page)).includes('Check done'));
  const overall = page.locator('.overall');
  await until('yellow', async () => (await overall.getAttribute('data-status')) === 'yellow');
  check(/Last checked less than a minute ago/.test(await overall.innerText()), await overall.innerText());
});

step('clients: run the detector, filter to needs attention, read a badge, names render as text', async () => {
  await page.getByRole('link', { name: 'Clients' }).click();
  await page.locator('h1', { hasText: 'Clients' }).waitFor();
  await page.getByRole('button', { name: 'Run detector now' }).click();
  await until('the detector toast', async () => /Detector ran: \d+ need attention, 1 healthy/.test(await toastText(page)));
  const healthyCard = page.locator('.client-name', { hasText: SEED.healthy_name });
  await until('the healthy client listed', async () => (await healthyCard.count()) === 1);
  check(/Healthy/.test(await page.locator('article.client', { has: healthyCard }).locator('.badge').innerText()), 'healthy badge');
  await page.selectOption('#filter-attention', 'true');
  await until('the healthy client filtered out', async () => (await healthyCard.count()) === 0);
  const badge = page.getByRole('img', { name: `Tracking health of ${SEED.stopped_name}: Widget stopped (red)` });
  await badge.waitFor();
  check((await badge.innerText()).trim() === 'Widget stopped', `badge text: ${await badge.innerText()}`);
  check(await badge.locator('svg.icon').count() === 1, 'the badge has an icon');
  const card = page.locator('article.client', { has: badge });
  const words = await card.innerText();
  check(/What it means: /.test(words) && /What to do: /.test(words) && /since \d{4}-\d{2}-\d{2} \(today\)/.test(words), words);
  // The name with markup is shown as typed, and nothing in it ran.
  const xss = page.locator(`article[data-client-id="${SEED.xss_client}"] .client-name`);
  check((await xss.innerText()) === SEED.xss_name, `name shown: ${await xss.innerText()}`);
  check(await xss.locator('*').count() === 0, 'no element was made from the name');
  check(await page.evaluate(() => window.__xss === undefined), 'the name\'s script did not run');
  await shot(page, 'clients');
});

step('analytics: the chart is drawn with the seeded figures, cards, lists and session pages', async () => {
  await page.locator(`article[data-client-id="${SEED.analytics}"]`).getByRole('link', { name: /^Analytics/ }).click();
  await page.locator('h1', { hasText: 'Analytics' }).waitFor();
  await page.locator('svg.columns').waitFor();
  const bar = (day) => page.locator(`svg.columns rect[data-key="${day}"]`);
  const heights = {};
  for (const [day, sessions] of Object.entries(SEED.sessions_per_day)) {
    check(Number(await bar(day).getAttribute('data-value')) === sessions, `${day}: ${await bar(day).getAttribute('data-value')} ≠ ${sessions}`);
    heights[day] = Number(await bar(day).getAttribute('height'));
    check((await bar(day).locator('title').textContent()) === `${day}: ${sessions}`, 'the column says its figure');
  }
  const days = Object.keys(SEED.sessions_per_day);
  const [a, b] = [days[0], days[days.length - 1]];
  const expected = SEED.sessions_per_day[a] / SEED.sessions_per_day[b];
  check(Math.abs(heights[a] / heights[b] - expected) < 0.01, `heights ${JSON.stringify(heights)} are not in the figures' ratio`);
  const sessionsCard = await page.locator('[data-figure="sessions"] .figure-value').innerText();
  check(Number(sessionsCard) === SEED.sessions_total, `sessions card: ${sessionsCard}`);
  const events = await page.locator('section', { hasText: 'Top events' }).innerText();
  check(/chat_started/.test(events) && /widget_open/.test(events), events);
  check(/google/.test(await page.locator('section', { hasText: 'Traffic sources' }).innerText()), 'sources');
  check(/mobile/.test(await page.locator('section', { hasText: 'Devices' }).innerText()), 'devices');
  const sessionRows = page.locator('section', { hasText: 'Sessions, newest first' }).locator('tbody tr');
  check(await sessionRows.count() === 20, `first page: ${await sessionRows.count()} sessions`);
  await page.getByRole('button', { name: 'Older' }).click();
  await until('the second page', async () => (await sessionRows.count()) === SEED.sessions_total - 20);
  await page.getByRole('button', { name: 'Newer' }).click();
  await until('the first page again', async () => (await sessionRows.count()) === 20);
  await page.getByRole('button', { name: 'Last 7 days' }).click();
  await until('7 columns', async () => (await page.locator('svg.columns rect').count()) === 7);
  await page.selectOption('#tz', 'UTC');
  await until('the range in UTC', async () => /\(7 days, UTC\)/.test(await text(page, '.range')));
  await shot(page, 'analytics');
  // Every answer of the refresh is in (a late one draws the form again).
  await until('the page to settle', async () => !(await page.locator('#updated').innerText()).includes('Refreshing'));
  // A range the API would refuse is stopped in the page.
  await page.fill('#from', '2020-01-01');
  await page.locator('#from').dispatchEvent('change');
  await until('the range message', async () => /At most 400 days/.test(await text(page, '.form-error')));
});

step('keyboard: skip link, then the navigation, moves to a page and focuses its heading', async () => {
  await page.goto(`${APP}/console/#/health`);
  await page.reload(); // a fresh load: focus starts at the top of the document
  await page.locator('.overall').waitFor();
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Skip to content', 'first Tab: the skip link');
  let focused = '';
  for (let i = 0; i < 6 && focused !== 'Clients'; i += 1) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement.textContent);
  }
  check(focused === 'Clients', `Tab reached ${focused}`);
  await page.keyboard.press('Enter');
  await until('the clients heading focused', async () => page.evaluate(() => document.activeElement.tagName === 'H1' && document.activeElement.textContent === 'Clients'));
});

step('a failed refresh keeps the last state and says so, auto-refresh included; retry recovers', async () => {
  const context = await signedIn(browser);
  const p = await open(context, 'refresh');
  await p.clock.install();
  await p.goto(`${APP}/console/#/health`);
  const overall = p.locator('.overall');
  await overall.waitFor();
  const before = await overall.getAttribute('data-status');
  await p.route('**/admin/**', (r) => r.fulfill({
    status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'database_unavailable', message: 'the database could not be reached' } }),
  }));
  await p.clock.fastForward('06:00'); // the 5-minute auto-refresh fires, and fails
  const banner = p.locator('.banner[role=alert]');
  await until('the stale banner', async () => /Could not refresh \(last updated 6 minutes ago\)\. the database could not be reached/.test(await banner.innerText()));
  check(await overall.getAttribute('data-status') === before, 'the last good status stays on screen');
  check(await p.locator('tr[data-alert-id], .panel').count() > 0, 'the last good page stays on screen');
  await p.getByRole('button', { name: 'Refresh', exact: true }).click();
  await until('still stale', async () => /Could not refresh/.test(await banner.innerText()));
  await p.unroute('**/admin/**');
  await banner.getByRole('button', { name: 'Retry' }).click();
  await until('the banner gone', async () => (await banner.count()) === 0);
  check(/Updated less than a minute ago/.test(await p.locator('#updated').innerText()), await p.locator('#updated').innerText());
  await context.close();
});

step('a phone-width screen: no sideways scrolling, everything reachable', async () => {
  const context = await signedIn(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await open(context, 'phone');
  for (const hash of ['#/health', '#/failed-events', '#/clients', `#/analytics/${SEED.analytics}`]) {
    await p.goto(`${APP}/console/${hash}`);
    await p.locator('.results .panel, .results .grid, .overall').first().waitFor();
    const [scroll, width] = await p.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(scroll <= width, `${hash}: page is ${scroll}px wide on a ${width}px screen`);
    if (hash === '#/health') await shot(p, 'health-phone');
  }
  await context.close();
});

step('sign out: back to sign-in, the token forgotten; a 401 later sends back with the reason', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#token').waitFor();
  check(/You signed out/.test(await text(page, '#signin-error')), 'the reason');
  check(await page.evaluate(() => sessionStorage.getItem('console.token')) === null, 'token forgotten');
  await page.fill('#token', TOKEN);
  await page.click('button[type=submit]');
  await page.locator('.results .panel').first().waitFor();
  await page.route('**/admin/**', (r) => r.fulfill({
    status: 401, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'unauthorized', message: 'the token has expired' } }),
  }));
  await page.getByRole('button', { name: 'Refresh', exact: true }).click();
  await page.locator('#token').waitFor();
  check(/the token has expired/.test(await text(page, '#signin-error')), await text(page, '#signin-error'));
});

const started = Date.now();
let failed = false;
browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (const [i, [name, fn]] of steps.entries()) {
    const t = Date.now();
    try {
      await fn();
      console.log(`ok ${i + 1} - ${name} (${Date.now() - t} ms)`);
    } catch (e) {
      console.log(`not ok ${i + 1} - ${name}\n  ${e.stack || e}`);
      if (page) await page.screenshot({ path: join(process.env.TMPDIR || '/tmp', 'console-failure.png') }).catch(() => {});
      failed = true;
      break;
    }
  }
  if (!failed && problems.length) {
    console.log(`not ok - the pages reported problems:\n  ${problems.join('\n  ')}`);
    failed = true;
  }
} finally {
  await browser.close();
}
console.log(`${failed ? 'FAILED' : 'passed'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
