// The WebSocket connection (docs/protocol.md): connect with an access token, keep it
// alive with `ping`, reconnect with exponential backoff and jitter after any close, and
// send frames within the server's rate limit (a FrameBudget, lib/limits.js).
//
// A refused handshake looks like any other close to a browser (the 401 is not exposed),
// so after a connection attempt that never opened, the next one asks for a *fresh*
// access token: the page keeps working past any number of token lifetimes. No DOM: the
// page gets what happens through callbacks, and `node --test` drives it with a stand-in
// WebSocket and clock.
//
// The server checks the token on every frame and ends a socket whose token expired
// (`token_expired`): a minute before expiry the socket sends `authenticate` with a fresh
// token, and the `authenticated` answer says when to do it again.

import { DEFAULT_LIMITS, FrameBudget } from './limits.js';

/** When a JWT expires (ms since the epoch), or null when it cannot be read. */
export function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='))).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** Delay before reconnect attempt `attempt` (1, 2, …): 0.5 s doubling to 30 s, ±20 %. */
export function backoffMs(attempt, random = Math.random) {
  const base = Math.min(30000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + random() * 0.4));
}

const OPEN = 1;

export class Socket {
  /**
   * @param {object} o
   * @param {() => string} o.url the WebSocket URL without the query
   * @param {(o: {fresh: boolean}) => Promise<string|null>} o.token an access token (null: logged out)
   * @param {() => object} [o.limits] the server's limits
   * @param {() => void} [o.onOpen]
   * @param {(ev: object) => void} [o.onEvent] each server frame (a JSON object)
   * @param {() => void} [o.onClose] the open socket closed (before reconnecting)
   * @param {(state: string, detail: string) => void} [o.onState] connecting, online, reconnecting, offline
   */
  constructor({ url, token, limits = () => DEFAULT_LIMITS, onOpen = () => {}, onEvent = () => {}, onClose = () => {}, onState = () => {}, WebSocketImpl = globalThis.WebSocket, pingEveryMs = 4 * 60 * 1000, random = Math.random, now = () => Date.now() }) {
    Object.assign(this, { url, token, limits, onOpen, onEvent, onClose, onState, WebSocketImpl, pingEveryMs, random, now });
    this.ws = null;
    this.state = 'offline';
    this.attempt = 0;
    this.opened = false; // ever opened since start()
    this.lastOpened = false; // the last attempt opened
    this.running = false;
    this.hold = false; // the browser test holds reconnects back
    this.budget = new FrameBudget(limits(), { now });
    this.timer = null;
    this.countdown = null;
    this.ping = null;
    this.nextAt = 0;
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === OPEN;
  }

  setState(state, detail = '') {
    this.state = state;
    this.onState(state, detail);
  }

  start() {
    this.running = true;
    this.connect();
  }

  async connect() {
    clearTimeout(this.timer);
    if (!this.running) return;
    if (this.hold) {
      this.scheduleReconnect();
      return;
    }
    this.setState(this.attempt === 0 && !this.opened ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.token({ fresh: this.attempt > 0 && !this.lastOpened });
    } catch {
      if (this.running) this.scheduleReconnect();
      return;
    }
    if (!this.running || !token) return;
    let ws;
    try {
      ws = new this.WebSocketImpl(`${this.url()}?token=${encodeURIComponent(token)}&device=${encodeURIComponent('Web browser')}`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.lastOpened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.opened = true;
      this.lastOpened = true;
      this.budget = new FrameBudget(this.limits(), { now: this.now }); // a new connection, a new window
      this.setState('online');
      clearInterval(this.ping);
      this.ping = setInterval(() => this.send({ action: 'ping' }), this.pingEveryMs);
      this.scheduleAuthenticate(tokenExpiry(token));
      this.onOpen();
    };
    ws.onmessage = (e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        return;
      }
      if (ev && typeof ev === 'object' && !Array.isArray(ev)) {
        if (ev.type === 'authenticated') this.scheduleAuthenticate(Date.parse(ev.expiresAt));
        this.onEvent(ev);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.ping);
      clearTimeout(this.reauth);
      this.onClose();
      if (this.running) this.scheduleReconnect();
    };
  }

  /** Send `authenticate` with a fresh token a minute before `expiresAt` (ms). */
  scheduleAuthenticate(expiresAt) {
    clearTimeout(this.reauth);
    if (!Number.isFinite(expiresAt)) return;
    const delay = Math.max(5000, expiresAt - this.now() - 60 * 1000);
    this.reauth = setTimeout(async () => {
      let token;
      try {
        token = await this.token({ fresh: true });
      } catch {
        return; // the socket ends at expiry and reconnects with a fresh token
      }
      if (token && this.isOpen) this.ws.send(JSON.stringify({ action: 'authenticate', token }));
    }, delay);
  }

  scheduleReconnect() {
    clearTimeout(this.timer);
    this.attempt += 1;
    const delay = backoffMs(this.attempt, this.random);
    this.nextAt = this.now() + delay;
    const tick = () => {
      if (this.state !== 'reconnecting' || this.ws) return;
      const left = Math.max(0, Math.ceil((this.nextAt - this.now()) / 1000));
      this.setState('reconnecting', left > 0 ? ` (retrying in ${left} s)` : '');
      if (left > 0) this.countdown = setTimeout(tick, 1000);
    };
    this.setState('reconnecting');
    clearTimeout(this.countdown);
    tick();
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /**
   * One frame, if the socket is open and the rate limit has room for its kind: 'low'
   * (acks, typing: can wait), 'send' (messages: keep room for reads and syncs) or
   * 'high'. False when not sent.
   */
  send(frame, { kind = 'high' } = {}) {
    if (!this.isOpen || !this.budget.allows(kind)) return false;
    this.ws.send(JSON.stringify(frame));
    this.budget.note();
    return true;
  }

  /** The browser came back online: try now rather than at the end of the backoff. */
  nudge() {
    if (this.running && !this.ws) {
      this.attempt = Math.max(this.attempt, 1);
      this.connect();
    }
  }

  /** Close for good (log out). */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    clearTimeout(this.countdown);
    clearInterval(this.ping);
    clearTimeout(this.reauth);
    const ws = this.ws;
    this.ws = null;
    this.attempt = 0;
    this.opened = false;
    if (ws) ws.close(1000, 'bye');
    this.setState('offline');
  }

  /** For the browser test: close as a network failure would, optionally holding reconnects. */
  drop({ hold = false } = {}) {
    this.hold = hold;
    if (this.ws) this.ws.close(4000, 'test drop');
  }

  release() {
    this.hold = false;
    if (this.running && !this.ws) this.connect();
  }
}
