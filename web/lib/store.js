// A chat's messages as the page holds them: a map position -> message, which may have
// holes (older pages not loaded, live messages that overtook others). Pure helpers to
// order them, find gaps and place the "unread" divider; checked by `node --test`.

export function newStore() {
  return {
    byPos: new Map(), // position -> message
    loaded: false,
    hasMoreBefore: false,
    loadingOlder: false,
    detailLoaded: false,
  };
}

export function minPos(s) {
  let m = Infinity;
  for (const p of s.byPos.keys()) m = Math.min(m, p);
  return m === Infinity ? 0 : m;
}

export function maxPos(s) {
  let m = 0;
  for (const p of s.byPos.keys()) m = Math.max(m, p);
  return m;
}

/** The highest position up to which the store holds every message from its lowest. */
export function contiguousTop(s) {
  const lo = minPos(s);
  if (!lo) return 0;
  let p = lo;
  while (s.byPos.has(p + 1)) p += 1;
  return p;
}

/** Positions missing between the lowest held and `upTo` (what a gap fill must fetch). */
export function missing(s, upTo = maxPos(s)) {
  const lo = minPos(s);
  const out = [];
  if (!lo) return out;
  for (let p = lo + 1; p < upTo; p += 1) if (!s.byPos.has(p)) out.push(p);
  return out;
}

/** The held messages by position. */
export function ordered(s) {
  return [...s.byPos.values()].sort((a, b) => a.position - b.position);
}

/**
 * Where the "N unread" divider goes: the position of the first message after
 * `readPosition` that someone else sent, or 0 when there is none.
 */
export function firstUnread(messages, readPosition, me) {
  for (const m of messages) if (m.position > readPosition && m.senderId !== me) return m.position;
  return 0;
}
