// The server's limits, and the choices that follow from them.
//
// The numbers come from the server: `/config.json` carries a `limits` object that the
// local stack fills from the code that enforces them (infra/local/src/up.rs), so the
// client cannot drift from the server. A config.json without it (an older deployment)
// gets DEFAULT_LIMITS, the values docs/protocol.md gives. Everything here is pure (no
// DOM, no network) so that `node --test web/test/unit/` can check it.

/** docs/protocol.md, "Limits". */
export const DEFAULT_LIMITS = Object.freeze({
  wsFrameBytes: 32 * 1024, // one WebSocket frame; API Gateway closes the socket (1009) beyond it
  wsMessageBytes: 128 * 1024, // one WebSocket message (the function refuses more)
  framesPerWindow: 30, // client frames per connection per window
  typingPerWindow: 20, // typing frames beyond this count are dropped
  windowMs: 10000,
  maxMessageChars: 100000, // Unicode scalar values
});

/** Room kept free under the frame limit (the browser may add nothing, but AWS rounds). */
export const FRAME_MARGIN_BYTES = 512;

/** DEFAULT_LIMITS overridden by each valid positive integer in `fromServer`. */
export function limitsFrom(fromServer) {
  const out = { ...DEFAULT_LIMITS };
  if (fromServer && typeof fromServer === 'object') {
    for (const k of Object.keys(DEFAULT_LIMITS)) {
      const v = fromServer[k];
      if (Number.isSafeInteger(v) && v > 0) out[k] = v;
    }
  }
  return Object.freeze(out);
}

const encoder = new TextEncoder();

/** Bytes of `s` in UTF-8 (what goes on the wire). */
export function utf8Bytes(s) {
  return encoder.encode(s).length;
}

/** Characters as the server counts them (Unicode scalar values, not UTF-16 units). */
export function charCount(s) {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}

/** The exact `sendMessage` frame the socket would carry. */
export function sendMessageFrame(chatId, clientMessageId, text) {
  return JSON.stringify({ action: 'sendMessage', chatId, clientMessageId, text });
}

/**
 * Which transport a text takes: 'ws' when its whole `sendMessage` frame (JSON envelope,
 * escapes and UTF-8 included) fits in one WebSocket frame with FRAME_MARGIN_BYTES to
 * spare, else 'rest' (`POST /chats/{id}/messages`, same idempotency and order).
 */
export function transportFor(chatId, clientMessageId, text, limits = DEFAULT_LIMITS) {
  const bytes = utf8Bytes(sendMessageFrame(chatId, clientMessageId, text));
  return bytes <= limits.wsFrameBytes - FRAME_MARGIN_BYTES ? 'ws' : 'rest';
}

/**
 * The client's view of the per-connection frame rate limit, as a sliding window (never
 * more than N frames in any `windowMs` also keeps every fixed window of the server at
 * most N). Frames that can wait (acks, typing) use at most `lowShare` of it, message
 * sends leave `reserve` frames for reads and syncs.
 */
export class FrameBudget {
  constructor(limits = DEFAULT_LIMITS, { now = () => Date.now(), lowShare = 0.6, reserve = 3 } = {}) {
    this.limits = limits;
    this.now = now;
    this.low = Math.max(1, Math.floor(limits.framesPerWindow * lowShare));
    this.sendCap = Math.max(1, limits.framesPerWindow - reserve);
    this.times = [];
    this.blockedUntil = 0;
  }

  count() {
    const t = this.now();
    while (this.times.length && t - this.times[0] >= this.limits.windowMs) this.times.shift();
    return this.times.length;
  }

  /** May a frame of this kind ('low', 'send' or 'high') go now? */
  allows(kind = 'high') {
    if (kind !== 'high' && this.now() < this.blockedUntil) return false;
    const n = this.count();
    if (kind === 'low') return n < this.low;
    if (kind === 'send') return n < this.sendCap;
    return n < this.limits.framesPerWindow;
  }

  note() {
    this.times.push(this.now());
  }

  /** The server said rate_limited: hold sends and low frames for `ms`. */
  block(ms) {
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + ms);
  }

  /** Milliseconds until a frame of this kind may go (0 = now). */
  waitMs(kind = 'send') {
    if (this.allows(kind)) return 0;
    const t = this.now();
    const cap = kind === 'low' ? this.low : kind === 'send' ? this.sendCap : this.limits.framesPerWindow;
    const n = this.count();
    let wait = 0;
    if (n >= cap) wait = this.times[n - cap] + this.limits.windowMs - t;
    if (kind !== 'high') wait = Math.max(wait, this.blockedUntil - t);
    return Math.max(1, wait);
  }
}
