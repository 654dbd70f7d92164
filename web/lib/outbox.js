// The outbox: the user's own messages that the server has not stored yet.
//
// One ordered queue per chat. Only the head of a chat's queue is ever in flight, so the
// server stores a user's messages in the order they were typed, whatever is refused or
// retried (backpressure instead of out-of-order retries). A head that failed for a
// passing reason (the connection dropped while it was in flight too often, the server
// was unavailable too often) stops its chat's queue until the user retries it; one the
// server refused for good (too long, not a member) leaves the order so that the rest go
// on. The outbox is saved to a Storage (localStorage) after every change and loaded
// after a reload, with each message's clientMessageId, so a message that was still
// sending is sent once after the reload (the server deduplicates by that id).
//
// Pure: no DOM, no network. The app drives it (ready → markSending → acked / requeue /
// fail) and `node --test web/test/unit/` checks it.
//
// An entry may carry `attachments` (uploads already made: `{attachmentId, fileName,
// contentType, size}`); those entries are sent over REST (the only send that takes
// attachments) and keep them across a reload.

/** How often a message may be sent without an answer before it fails visibly. */
export const MAX_ATTEMPTS = 4;

export class Outbox {
  /**
   * @param {{getItem(k:string):string|null,setItem(k:string,v:string):void,removeItem(k:string):void}|null} storage
   * @param {string} key where to keep it in `storage`
   */
  constructor(storage = null, key = 'chat.outbox') {
    this.storage = storage;
    this.key = key;
    this.queues = new Map(); // chatId -> [entry] in typing order
    this.refused = new Map(); // clientMessageId -> entry refused for good (out of the order)
    this.onchange = null;
    this.load();
  }

  load() {
    if (!this.storage) return;
    let saved = [];
    try {
      saved = JSON.parse(this.storage.getItem(this.key) || '[]');
    } catch {
      saved = [];
    }
    if (!Array.isArray(saved)) return;
    for (const e of saved) {
      if (!e || typeof e.chatId !== 'string' || typeof e.clientMessageId !== 'string' || typeof e.text !== 'string') continue;
      const entry = {
        chatId: e.chatId,
        clientMessageId: e.clientMessageId,
        text: e.text,
        attachments: Array.isArray(e.attachments) && e.attachments.length ? e.attachments : undefined,
        createdAt: Number(e.createdAt) || 0,
        state: e.refused ? 'failed' : e.failed ? 'failed' : 'queued',
        error: e.failed || null,
        refused: !!e.refused,
        attempts: 0,
        via: null,
        sentAt: 0,
      };
      if (entry.refused) this.refused.set(entry.clientMessageId, entry);
      else this.queueOf(entry.chatId).push(entry);
    }
  }

  save() {
    if (this.storage) {
      const all = this.all().map((e) => ({
        chatId: e.chatId,
        clientMessageId: e.clientMessageId,
        text: e.text,
        attachments: e.attachments,
        createdAt: e.createdAt,
        failed: e.state === 'failed' ? e.error : undefined,
        refused: e.refused || undefined,
      }));
      try {
        if (all.length) this.storage.setItem(this.key, JSON.stringify(all));
        else this.storage.removeItem(this.key);
      } catch {
        /* storage full or unavailable: the outbox still works for this page */
      }
    }
    if (this.onchange) this.onchange();
  }

  queueOf(chatId) {
    let q = this.queues.get(chatId);
    if (!q) {
      q = [];
      this.queues.set(chatId, q);
    }
    return q;
  }

  /** A new message at the end of its chat's queue (`attachments`: uploaded refs, optional). */
  add(chatId, clientMessageId, text, createdAt = Date.now(), attachments = undefined) {
    const entry = { chatId, clientMessageId, text, createdAt, state: 'queued', error: null, refused: false, attempts: 0, via: null, sentAt: 0 };
    if (attachments && attachments.length) entry.attachments = attachments;
    this.queueOf(chatId).push(entry);
    this.save();
    return entry;
  }

  find(clientMessageId) {
    for (const q of this.queues.values()) {
      const e = q.find((x) => x.clientMessageId === clientMessageId);
      if (e) return e;
    }
    return this.refused.get(clientMessageId) || null;
  }

  /** Every entry: each chat's queue in order, then the refused ones. */
  all() {
    const out = [];
    for (const q of this.queues.values()) out.push(...q);
    out.push(...this.refused.values());
    return out;
  }

  /** The entries of one chat, in the order they are shown (queue order, refused last). */
  ofChat(chatId) {
    const q = this.queues.get(chatId) || [];
    return [...q, ...[...this.refused.values()].filter((e) => e.chatId === chatId)];
  }

  /** Messages not yet stored and not refused for good (what leaving the page would lose). */
  unsentCount() {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** The heads that may be sent now: one per chat, queued (not in flight, not failed). */
  ready() {
    const out = [];
    for (const q of this.queues.values()) if (q.length && q[0].state === 'queued') out.push(q[0]);
    return out;
  }

  /** Entries in flight (sent, no answer yet). */
  inFlight() {
    return this.all().filter((e) => e.state === 'sending');
  }

  markSending(clientMessageId, via, now = Date.now()) {
    const e = this.find(clientMessageId);
    if (!e || e.state !== 'queued') return null;
    e.state = 'sending';
    e.via = via;
    e.sentAt = now;
    e.attempts += 1;
    return e;
  }

  /** The server stored it: out of the outbox. Returns the entry (or null). */
  acked(clientMessageId) {
    const e = this.find(clientMessageId);
    if (!e) return null;
    if (e.refused) this.refused.delete(clientMessageId);
    else {
      const q = this.queueOf(e.chatId);
      q.splice(q.indexOf(e), 1);
      if (!q.length) this.queues.delete(e.chatId);
    }
    this.save();
    return e;
  }

  /**
   * Not answered (connection closed, rate limited, server unavailable): back to queued
   * at the head of its chat. `counts` says whether this was a failed attempt; after
   * MAX_ATTEMPTS of them the message fails with `why` and stops its chat's queue.
   */
  requeue(clientMessageId, { counts = true, why = 'The connection kept failing.' } = {}) {
    const e = this.find(clientMessageId);
    if (!e || e.state !== 'sending') return null;
    if (!counts) e.attempts = Math.max(0, e.attempts - 1);
    if (e.attempts >= MAX_ATTEMPTS) {
      e.state = 'failed';
      e.error = why;
    } else e.state = 'queued';
    this.save();
    return e;
  }

  /**
   * Failed. `refused` (the server said no for good): the entry leaves its chat's order
   * so the next ones go on. Otherwise it stays at the head and holds the chat's queue.
   */
  fail(clientMessageId, why, { refused = false } = {}) {
    const e = this.find(clientMessageId);
    if (!e) return null;
    e.state = 'failed';
    e.error = why;
    if (refused && !e.refused) {
      const q = this.queueOf(e.chatId);
      q.splice(q.indexOf(e), 1);
      if (!q.length) this.queues.delete(e.chatId);
      e.refused = true;
      this.refused.set(clientMessageId, e);
    }
    this.save();
    return e;
  }

  /** The user asked to retry: a held head goes again; a refused one joins the end. */
  retry(clientMessageId) {
    const e = this.find(clientMessageId);
    if (!e || e.state !== 'failed') return null;
    e.state = 'queued';
    e.error = null;
    e.attempts = 0;
    if (e.refused) {
      this.refused.delete(clientMessageId);
      e.refused = false;
      this.queueOf(e.chatId).push(e);
    }
    this.save();
    return e;
  }

  /** The user gave up on a failed message: out of the outbox (and of its chat's order). */
  discard(clientMessageId) {
    const e = this.find(clientMessageId);
    if (!e || e.state !== 'failed') return null;
    if (e.refused) this.refused.delete(clientMessageId);
    else {
      const q = this.queueOf(e.chatId);
      q.splice(q.indexOf(e), 1);
      if (!q.length) this.queues.delete(e.chatId);
    }
    this.save();
    return e;
  }

  /** Forget a chat (the user left it): its messages can no longer be sent. */
  dropChat(chatId) {
    this.queues.delete(chatId);
    for (const [id, e] of this.refused) if (e.chatId === chatId) this.refused.delete(id);
    this.save();
  }
}
