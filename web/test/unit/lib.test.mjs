// Unit tests of the web client's pure modules (web/lib/*): which transport a text takes,
// the frame budget, the ordered and persisted outbox, gap detection and the unread
// divider, links and day labels. Run: node --test web/test/unit/
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LIMITS, FrameBudget, limitsFrom, sendMessageFrame, transportFor, utf8Bytes, charCount } from '../../lib/limits.js';
import { MAX_ATTEMPTS, Outbox } from '../../lib/outbox.js';
import { contiguousTop, firstUnread, missing, newStore } from '../../lib/store.js';
import { dayKey, dayLabel, folded, linkify, systemText, systemUserIds, titleWithUnread } from '../../lib/format.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHAT = 'dm_01JABCDEFGHJKMNPQRSTVWXYZ0';
const CMID = '6f1c2d3e-0000-4000-8000-000000000000';

class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

describe('limits', () => {
  it('defaults match the constants the server enforces', () => {
    const gw = readFileSync(path.join(root, 'infra/local/src/gateway/mod.rs'), 'utf8');
    assert.match(gw, /frame_bytes: 32 \* 1024,/);
    assert.equal(DEFAULT_LIMITS.wsFrameBytes, 32 * 1024);
    // Wherever in the ws-message crate they live (the source files, concatenated).
    const dir = path.join(root, 'functions/ws-message/src');
    const ws = readdirSync(dir).filter((f) => f.endsWith('.rs')).map((f) => readFileSync(path.join(dir, f), 'utf8')).join('\n');
    assert.match(ws, new RegExp(`REQUESTS_PER_WINDOW: u32 = ${DEFAULT_LIMITS.framesPerWindow};`));
    assert.match(ws, new RegExp(`TYPING_PER_WINDOW: u32 = ${DEFAULT_LIMITS.typingPerWindow};`));
    assert.match(ws, /WINDOW_MS: i64 = 10_000;/);
    const input = readFileSync(path.join(root, 'shared/src/input.rs'), 'utf8');
    assert.match(input, /MAX_MESSAGE_CHARS: usize = 100_000;/);
  });

  it('takes valid numbers from the server and ignores the rest', () => {
    const l = limitsFrom({ wsFrameBytes: 1000, framesPerWindow: -1, windowMs: 'x', extra: 5 });
    assert.equal(l.wsFrameBytes, 1000);
    assert.equal(l.framesPerWindow, 30);
    assert.equal(l.windowMs, 10000);
    assert.deepEqual(limitsFrom(null), DEFAULT_LIMITS);
  });

  it('counts characters as the server does and bytes as the wire does', () => {
    assert.equal(charCount('a👋é'), 3);
    assert.equal(utf8Bytes('a👋é'), 1 + 4 + 2);
  });

  it('sends a text over the socket only when its whole frame fits in 32 KB', () => {
    assert.equal(transportFor(CHAT, CMID, 'hello'), 'ws');
    // 30,000 ASCII characters: the frame is ~30.1 KB, fits.
    assert.equal(transportFor(CHAT, CMID, 'x'.repeat(30000)), 'ws');
    // 40,000 characters: over 32 KB (the old client sent up to 60,000 bytes).
    assert.equal(transportFor(CHAT, CMID, 'x'.repeat(40000)), 'rest');
    // 12,000 characters of 3-byte UTF-8 = 36,000 bytes: over.
    assert.equal(transportFor(CHAT, CMID, '€'.repeat(12000)), 'rest');
    // 16,300 quotes: 16 KB of text, but JSON escapes double it.
    assert.equal(transportFor(CHAT, CMID, '"'.repeat(16300)), 'rest');
    // The boundary: exactly what fits under the limit minus the margin.
    const envelope = utf8Bytes(sendMessageFrame(CHAT, CMID, ''));
    const room = DEFAULT_LIMITS.wsFrameBytes - 512 - envelope;
    assert.equal(transportFor(CHAT, CMID, 'y'.repeat(room)), 'ws');
    assert.equal(transportFor(CHAT, CMID, 'y'.repeat(room + 1)), 'rest');
    // A server with a smaller frame limit is obeyed.
    assert.equal(transportFor(CHAT, CMID, 'x'.repeat(1000), limitsFrom({ wsFrameBytes: 1024 })), 'rest');
  });
});

describe('frame budget', () => {
  it('keeps sends under the rate limit in any window and low frames under their share', () => {
    let t = 0;
    const b = new FrameBudget(DEFAULT_LIMITS, { now: () => t });
    let sent = 0;
    while (b.allows('send')) { b.note(); sent += 1; }
    assert.equal(sent, 27); // 30 less 3 kept for reads and syncs
    assert.equal(b.allows('low'), false);
    assert.equal(b.allows('high'), true);
    assert.equal(b.waitMs('send'), 10000);
    t = 9999;
    assert.equal(b.allows('send'), false);
    t = 10000;
    assert.equal(b.allows('send'), true);
  });

  it('holds sends after a rate_limited answer', () => {
    let t = 0;
    const b = new FrameBudget(DEFAULT_LIMITS, { now: () => t });
    b.block(2000);
    assert.equal(b.allows('send'), false);
    assert.equal(b.waitMs('send'), 2000);
    t = 2000;
    assert.equal(b.allows('send'), true);
  });
});

describe('outbox', () => {
  it('sends one message per chat at a time, in typing order', () => {
    const o = new Outbox();
    for (let i = 1; i <= 5; i += 1) o.add('a', `a${i}`, `text ${i}`, i);
    o.add('b', 'b1', 'other chat', 6);
    assert.deepEqual(o.ready().map((e) => e.clientMessageId), ['a1', 'b1']);
    o.markSending('a1', 'ws');
    o.markSending('b1', 'ws');
    assert.deepEqual(o.ready(), []); // backpressure: a2 waits for a1's answer
    const order = [];
    // a1 is rate limited, then answered; a2 never overtakes it.
    o.requeue('a1', { counts: false });
    for (let guard = 0; guard < 20 && o.unsentCount() > 1; guard += 1) {
      const [head] = o.ready().filter((e) => e.chatId === 'a');
      o.markSending(head.clientMessageId, 'ws');
      if (guard % 2 === 0) o.requeue(head.clientMessageId, { counts: false });
      else order.push(o.acked(head.clientMessageId).clientMessageId);
    }
    assert.deepEqual(order, ['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('fails visibly after MAX_ATTEMPTS unanswered sends and holds the chat until retried', () => {
    const o = new Outbox();
    o.add('a', 'a1', 'big', 1);
    o.add('a', 'a2', 'next', 2);
    for (let i = 0; i < MAX_ATTEMPTS; i += 1) {
      assert.equal(o.ready()[0].clientMessageId, 'a1');
      o.markSending('a1', 'ws');
      o.requeue('a1', { why: 'The connection closed while sending.' });
    }
    const e = o.find('a1');
    assert.equal(e.state, 'failed');
    assert.equal(e.error, 'The connection closed while sending.');
    assert.deepEqual(o.ready(), []); // no loop, and a2 does not overtake
    o.retry('a1');
    assert.equal(o.ready()[0].clientMessageId, 'a1');
  });

  it('lets the rest go on when the server refuses a message for good', () => {
    const o = new Outbox();
    o.add('a', 'a1', 'refused', 1);
    o.add('a', 'a2', 'fine', 2);
    o.markSending('a1', 'rest');
    o.fail('a1', 'That is too long to send.', { refused: true });
    assert.deepEqual(o.ready().map((e) => e.clientMessageId), ['a2']);
    assert.deepEqual(o.ofChat('a').map((e) => e.clientMessageId), ['a2', 'a1']);
    assert.equal(o.unsentCount(), 1);
    o.retry('a1'); // joins the end
    assert.deepEqual(o.ofChat('a').map((e) => e.clientMessageId), ['a2', 'a1']);
    o.markSending('a2', 'ws');
    o.acked('a2');
    o.markSending('a1', 'ws');
    o.fail('a1', 'refused again', { refused: true });
    assert.equal(o.discard('a1').clientMessageId, 'a1');
    assert.deepEqual(o.all(), []);
  });

  it('survives a reload with the same clientMessageIds, in order, nothing in flight', () => {
    const storage = new MemoryStorage();
    const o = new Outbox(storage, 'k');
    o.add('a', 'a1', 'one', 1);
    o.add('a', 'a2', 'two 👋', 2);
    o.add('b', 'b1', 'three', 3);
    o.markSending('a1', 'ws'); // the page went away before the ack
    o.acked('b1');
    const again = new Outbox(storage, 'k');
    assert.deepEqual(again.all().map((e) => [e.clientMessageId, e.text, e.state]), [
      ['a1', 'one', 'queued'],
      ['a2', 'two 👋', 'queued'],
    ]);
    again.acked('a1');
    again.acked('a2');
    assert.equal(storage.getItem('k'), null);
  });

  it('ignores a corrupt saved outbox', () => {
    const storage = new MemoryStorage();
    storage.setItem('k', '{not json');
    assert.equal(new Outbox(storage, 'k').unsentCount(), 0);
    storage.setItem('k', JSON.stringify([{ chatId: 1 }, null, { chatId: 'a', clientMessageId: 'x', text: 't' }]));
    assert.equal(new Outbox(storage, 'k').unsentCount(), 1);
  });
});

describe('message store', () => {
  it('finds the gap between held messages and the unread divider', () => {
    const s = newStore();
    for (const p of [3, 4, 5, 8, 9]) s.byPos.set(p, { position: p, senderId: p === 8 ? 'me' : 'them' });
    assert.equal(contiguousTop(s), 5);
    assert.deepEqual(missing(s), [6, 7]);
    const msgs = [...s.byPos.values()];
    assert.equal(firstUnread(msgs, 4, 'me'), 5);
    assert.equal(firstUnread(msgs, 7, 'me'), 9); // own message 8 is not unread
    assert.equal(firstUnread(msgs, 9, 'me'), 0);
  });
});

describe('format', () => {
  it('turns only http and https URLs into links, without trailing punctuation', () => {
    assert.deepEqual(linkify('see https://example.com/a?b=1. and (http://x.org/p(1)) javascript:alert(1)'), [
      { text: 'see ' },
      { text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { text: '. and (' },
      { text: 'http://x.org/p(1)', href: 'http://x.org/p(1)' },
      { text: ') javascript:alert(1)' },
    ]);
    assert.deepEqual(linkify('no links'), [{ text: 'no links' }]);
  });

  it('labels days and folds long texts', () => {
    const now = new Date(2026, 11, 3, 10, 0);
    assert.equal(dayLabel(new Date(2026, 11, 3, 1, 0).toISOString(), now), 'Today');
    assert.equal(dayLabel(new Date(2026, 11, 2, 23, 0).toISOString(), now), 'Yesterday');
    assert.notEqual(dayKey(new Date(2026, 11, 2, 23, 59).toISOString()), dayKey(new Date(2026, 11, 3, 0, 0).toISOString()));
    assert.equal(folded('short'), null);
    assert.equal(Array.from(folded('é'.repeat(5000))).length, 3001);
    assert.equal(titleWithUnread('Chat', 0), 'Chat');
    assert.equal(titleWithUnread('Chat', 3), '(3) Chat');
  });

  it('names the people of a system message', () => {
    const names = { u1: 'You', u2: 'Bob' };
    const nameOf = (id) => names[id] || 'Someone';
    const m = { text: 'fallback', system: { event: 'memberRemoved', by: 'u1', member: 'u2' } };
    assert.equal(systemText(m, nameOf), 'You removed Bob');
    assert.deepEqual(systemUserIds(m), ['u1', 'u2']);
    assert.equal(systemText({ text: 'plain' }, nameOf), 'plain');
  });
});

describe('api client', async () => {
  const { ApiError, request, words } = await import('../../lib/api.js');
  const answer = (status, body) => async () => ({ status, ok: status < 400, json: async () => body });

  it('puts server errors in words, with the field of a validation error', async () => {
    assert.equal(words({ code: 'validation_failed', message: 'displayName: must be at most 64 characters' }), 'Display name must be at most 64 characters.');
    assert.equal(words({ code: 'invalid_credentials', message: 'x' }), 'Wrong user name or password.');
    assert.equal(words({ code: 'something_new', message: 'As the server says.' }), 'As the server says.');
    await assert.rejects(
      request('http://x', 'GET', '/me', undefined, { fetchFn: answer(409, { error: { code: 'group_full', message: 'full' } }) }),
      (e) => e instanceof ApiError && e.status === 409 && e.message === 'The group is full (100 members at most).',
    );
    await assert.rejects(
      request('http://x', 'GET', '/me', undefined, { fetchFn: async () => { throw new TypeError('Failed to fetch'); } }),
      (e) => e.code === 'network' && /Cannot reach/.test(e.message),
    );
    await assert.rejects(request('http://x', 'GET', '/me', undefined, { fetchFn: answer(502, null) }), (e) => e.code === 'http_502');
  });

  it('sends JSON with the bearer token and reads the answer', async () => {
    let seen;
    const fetchFn = async (url, init) => {
      seen = { url, init };
      return { status: 201, ok: true, json: async () => ({ ok: 1 }) };
    };
    assert.deepEqual(await request('http://x', 'POST', '/chats', { a: 1 }, { token: 't', fetchFn }), { ok: 1 });
    assert.equal(seen.url, 'http://x/chats');
    assert.equal(seen.init.headers.authorization, 'Bearer t');
    assert.equal(seen.init.body, '{"a":1}');
    assert.equal(await request('http://x', 'DELETE', '/y', undefined, { fetchFn: answer(204) }), null);
    // A request never answered ends as a network error after the timeout.
    const never = (url, init) => new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
    const keepAlive = setTimeout(() => {}, 5000); // Node's AbortSignal.timeout timer does not hold the loop
    await assert.rejects(request('http://x', 'GET', '/me', undefined, { fetchFn: never, timeoutMs: 20 }), (e) => e.code === 'network');
    clearTimeout(keepAlive);
  });
});

describe('socket', async () => {
  const { Socket, backoffMs } = await import('../../lib/socket.js');

  it('backs off from 0.5 s doubling to 30 s, with ±20 % jitter', () => {
    assert.deepEqual([1, 2, 3, 7, 20].map((n) => backoffMs(n, () => 0.5)), [500, 1000, 2000, 30000, 30000]);
    assert.equal(backoffMs(1, () => 0), 400);
    assert.equal(backoffMs(1, () => 0.999999), 600);
  });

  it('after a handshake that never opened, reconnects with a fresh token; sends within the budget', async () => {
    const made = [];
    class FakeWs {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.sent = [];
        made.push(this);
      }
      send(s) { this.sent.push(JSON.parse(s)); }
      close() { this.readyState = 3; setTimeout(() => this.onclose && this.onclose(), 0); }
      open() { this.readyState = 1; this.onopen(); }
    }
    const asks = [];
    const states = [];
    let opens = 0;
    const sock = new Socket({
      url: () => 'ws://x',
      token: async ({ fresh }) => { asks.push(fresh); return fresh ? 'fresh' : 'old'; },
      onOpen: () => { opens += 1; },
      onState: (s) => states.push(s),
      WebSocketImpl: FakeWs,
      random: () => 0,
    });
    const until = async (cond) => { for (let i = 0; i < 300 && !cond(); i += 1) await new Promise((r) => setTimeout(r, 10)); assert.ok(cond()); };
    sock.start();
    await until(() => made.length === 1);
    assert.match(made[0].url, /^ws:\/\/x\?token=old&device=Web%20browser$/);
    made[0].close(); // refused handshake: never opened
    await until(() => made.length === 2);
    assert.deepEqual(asks, [false, true]);
    assert.match(made[1].url, /token=fresh/);
    made[1].open();
    assert.equal(opens, 1);
    assert.equal(sock.state, 'online');
    assert.equal(sock.send({ action: 'ping' }), true);
    let lows = 0;
    while (sock.send({ action: 'typing' }, { kind: 'low' })) lows += 1;
    assert.equal(lows, 17); // 60 % of 30, one frame already used
    made[1].close(); // an open connection dropped: the token is still good
    await until(() => made.length === 3);
    assert.deepEqual(asks, [false, true, false]);
    assert.ok(states.includes('connecting') && states.includes('reconnecting'));
    sock.stop();
    assert.equal(sock.state, 'offline');
  });
});
