// Words and shapes for the page: times, day separators, links, folding long texts,
// system messages and previews. Pure functions (no DOM), checked by `node --test`.

/** HH:MM of an ISO time in the user's locale ('' when not a time). */
export function clockTime(iso, locale = undefined) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
}

/** A local calendar day as 'YYYY-MM-DD' (to tell where a day separator goes). */
export function dayKey(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** 'Today', 'Yesterday', a weekday within the last week, else a date ('2 Dec 2025'). */
export function dayLabel(iso, now = new Date(), locale = undefined) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((start(now) - start(d)) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days > 1 && days < 7) return d.toLocaleDateString(locale, { weekday: 'long' });
  const sameYear = d.getFullYear() === now.getFullYear();
  return d.toLocaleDateString(locale, { day: 'numeric', month: 'short', ...(sameYear ? {} : { year: 'numeric' }) });
}

/** The chat list's time: the clock today, else the short day ('Yesterday', 'Mon', '2 Dec'). */
export function listTime(iso, now = new Date(), locale = undefined) {
  const label = dayLabel(iso, now, locale);
  if (label === 'Today') return clockTime(iso, locale);
  if (label === 'Yesterday') return label;
  const d = new Date(iso);
  const days = (now - d) / 86400000;
  if (days < 7) return d.toLocaleDateString(locale, { weekday: 'short' });
  return label;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
const TRAILING = /[.,;:!?)\]}'"»”’]+$/;

/**
 * A text cut into plain parts and links: [{text}, {text, href}, …]. Only http and https
 * URLs become links (never javascript:, data:, …); trailing punctuation stays text.
 */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let url = m[0];
    const trail = url.match(TRAILING);
    if (trail) {
      // Keep a closing bracket that has its opening one inside the URL.
      let cut = trail[0];
      if (cut.startsWith(')') && url.slice(0, -cut.length).includes('(')) cut = cut.slice(1);
      url = url.slice(0, url.length - cut.length);
    }
    let href;
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
      href = u.href;
    } catch {
      continue;
    }
    if (m.index > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: url, href });
    last = m.index + url.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Texts longer than this many characters are shown folded with "Read more". */
export const FOLD_CHARS = 3000;

/** The shown part of a long text: null when it needs no folding. */
export function folded(text, limit = FOLD_CHARS) {
  const chars = Array.from(text);
  if (chars.length <= limit) return null;
  return `${chars.slice(0, limit).join('').trimEnd()}…`;
}

/** A system message in words, `nameOf(userId)` giving 'You' or a display name. */
export function systemText(m, nameOf) {
  const e = m && m.system;
  if (!e) return (m && m.text) || '';
  const list = (ids) => (ids || []).map(nameOf).join(', ');
  switch (e.event) {
    case 'chatCreated':
      return e.name ? `${nameOf(e.by)} created the group “${e.name}”` : `${nameOf(e.by)} started the chat`;
    case 'membersAdded':
      return `${nameOf(e.by)} added ${list(e.members)}`;
    case 'memberRemoved':
      return `${nameOf(e.by)} removed ${nameOf(e.member)}`;
    case 'memberLeft':
      return `${nameOf(e.member)} left${e.promoted ? `; ${nameOf(e.promoted)} is now an admin` : ''}`;
    case 'renamed':
      return `${nameOf(e.by)} renamed the group to “${e.name}”`;
    default:
      return m.text || '';
  }
}

/** The user ids a system message names (to look up names not known yet). */
export function systemUserIds(m) {
  const e = m && m.system;
  if (!e) return [];
  return [e.by, e.member, e.promoted, ...(e.members || [])].filter((x) => typeof x === 'string' && x);
}

/** "N unread" in the tab title: '(3) Chat' or 'Chat'. */
export function titleWithUnread(base, unread) {
  return unread > 0 ? `(${unread > 999 ? '999+' : unread}) ${base}` : base;
}
