// The browser tests' harness: `chat-local up` on free ports (in-memory DynamoDB Local +
// moto, the local gateway with the real functions, the web client), headless Chromium
// (Debian's package, through playwright-core), and the steps every test uses (register,
// wait for a message, send). No tests here: node --test runs this file and finds none.
//
// Used by e2e.test.mjs (the chat itself) and e2e-features.test.mjs (attachments,
// blocking, message actions), each with its own stack.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../..');
const chatLocal = process.env.CHAT_LOCAL || path.join(root, 'target/debug/chat-local');
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const shotsDir = path.resolve(process.env.E2E_SCREENSHOTS || path.join(root, 'target/e2e-screenshots'));
export const WAIT = 30000; // generous: a loaded 2-core machine is slow; a passing run never waits it out

/** One stack and one browser for a test file; `h.pages`, `h.pageErrors`, `h.dialogs` collect. */
export function harness(prefix) {
  const run = Math.random().toString(36).slice(2, 8);
  const h = { run, stack: null, browser: null, pages: {}, pageErrors: [], dialogs: [], leaveWarnings: [], socketCloses: [] };

  h.start = async () => {
    mkdirSync(shotsDir, { recursive: true });
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-web-e2e-'));
    const ready = path.join(dir, 'ready.json');
    const args = [
      'up', '--in-memory', '--prefix', `${prefix}${run}`, '--data-dir', dir,
      '--dynamodb-port', '0', '--moto-port', '0', '--http-port', '0', '--ws-port', '0', '--web-port', '0',
      '--web-dir', process.env.E2E_WEB_DIR || path.join(root, 'web'), '--ready-file', ready,
    ];
    const proc = spawn(chatLocal, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
    let log = '';
    const keep = (b) => { log = (log + b.toString()).slice(-20000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; });
    // The condition "up wrote its ready file" (or it died), 3 minutes at most.
    const deadline = Date.now() + 180000;
    while (!existsSync(ready)) {
      if (exited) throw new Error(`chat-local up exited (${JSON.stringify(exited)}):\n${log}`);
      if (Date.now() > deadline) {
        proc.kill('SIGTERM');
        throw new Error(`chat-local up was not ready within 180 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const urls = JSON.parse(readFileSync(ready, 'utf8'));
    assert.ok(urls.webUrl, `up serves no web client:\n${log}`);
    h.stack = { proc, dir, log: () => log, exited: () => exited, ...urls };
    h.browser = await chromium.launch({
      executablePath: browserPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  };

  h.stop = async () => {
    if (h.browser) await h.browser.close().catch(() => {});
    const s = h.stack;
    if (!s) return;
    if (!s.exited()) {
      const gone = new Promise((r) => s.proc.once('exit', r));
      s.proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 20000))]);
      if (!s.exited()) s.proc.kill('SIGKILL');
    }
    rmSync(s.dir, { recursive: true, force: true });
  };

  /**
   * A page in its own browser context, opened at the web client. A "leave the page?"
   * prompt is accepted and counted in `h.leaveWarnings`; other dialogs are dismissed and
   * counted in `h.dialogs`; every closed WebSocket is noted in `h.socketCloses`.
   */
  h.newPage = async (name, viewport = { width: 1280, height: 800 }, extra = {}) => {
    const context = await h.browser.newContext({ viewport, ...extra });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('dialog', (d) => {
      if (d.type() === 'beforeunload') {
        h.leaveWarnings.push(name);
        d.accept().catch(() => {});
        return;
      }
      h.dialogs.push(`${name}: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
    page.on('websocket', (ws) => ws.on('close', () => h.socketCloses.push(name)));
    page.on('pageerror', (e) => h.pageErrors.push(`${name}: ${e.message}`));
    await page.goto(h.stack.webUrl);
    h.pages[name] = page;
    return page;
  };

  /** A user (display name `displayName`) with a unique user name for this run. */
  h.user = (name, displayName) => ({ userName: `${name}_${run}`, displayName, password: `correct horse ${run} ${name}` });

  /** A REST call as a client would make it (asserts success). */
  h.api = async (method, p, body, token) => {
    const res = await fetch(h.stack.httpUrl + p, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = res.status === 204 ? null : await res.json();
    assert.ok(res.ok, `${method} ${p}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  };

  return h;
}

export async function waitOnline(page) {
  await page.waitForSelector('#conn[data-state="online"]');
}

export async function register(page, u) {
  await page.click('#tab-register');
  await page.fill('#auth-username', u.userName);
  await page.fill('#auth-displayname', u.displayName);
  await page.fill('#auth-password', u.password);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await waitOnline(page);
}

export async function login(page, u) {
  await page.fill('#auth-username', u.userName);
  await page.fill('#auth-password', u.password);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await waitOnline(page);
}

/** Search `other` by user name and open the direct chat with them. */
export async function startDirect(page, other) {
  await page.fill('#user-search', other.userName.slice(0, 5));
  await page.click(`#search-results button[data-user-name="${other.userName}"]`);
  await page.waitForSelector('#conv:not([hidden])');
  await page.waitForFunction((n) => document.getElementById('conv-name').textContent === n, other.displayName);
}

/** Open the chat named `name` in the list. */
export async function openChat(page, name) {
  await page.locator('#chat-list .chat-item').filter({ has: page.locator('.chat-item-name', { hasText: name }) }).first().click();
  await page.waitForFunction((n) => document.getElementById('conv-name').textContent === n, name);
}

export async function sendText(page, text) {
  await page.fill('#composer-text', text);
  await page.press('#composer-text', 'Enter');
}

export async function waitMessage(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#message-list li.msg .text')].some((n) => n.textContent === t),
    text,
    { timeout: WAIT },
  );
}

/** The own message with this exact text, once its data-state equals `state`. */
export async function waitOwnState(page, text, state) {
  await page.waitForFunction(
    ([t, s]) => [...document.querySelectorAll('#message-list li.msg.own')].some(
      (li) => li.querySelector('.text')?.textContent === t && li.dataset.state === s,
    ),
    [text, state],
    { timeout: WAIT },
  );
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shotsDir, `${name}.png`) });
}
