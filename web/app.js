// The chat's web client: one ES module, no framework, no build step.
//
// It talks to the HTTP API (docs/openapi.yaml) for accounts, chats and history and to
// the WebSocket API (docs/protocol.md) for everything live: sending with messageAck,
// delivery and read receipts, typing, presence, catch-up sync after a reconnect.
//
// Safety rule: user data (names, messages, error texts) only ever reaches the page
// through `textContent` / attributes set by `el()` (views/dom.js); nothing is parsed as
// HTML.
//
// This file holds the page's state and decides what happens; the rest is in modules:
// lib/api.js (HTTP requests, errors in words), lib/socket.js (the WebSocket),
// lib/limits.js (the server's limits, which transport a text takes, the frame budget),
// lib/outbox.js (the ordered, persisted outbox), lib/store.js (a chat's messages),
// lib/format.js (times, links, words), lib/uploads.js (photos and files: types, sizes,
// the presigned upload), views/render.js (chat items, bubbles, separators as DOM),
// views/attachments.js (the upload tray, attachments in bubbles, the photo viewer) and
// views/dom.js. `node --test web/test/unit/` checks lib/.

import { ApiError, request, words } from './lib/api.js';
import { Socket } from './lib/socket.js';
import { $, debounce, el } from './views/dom.js';
import { avatar as avatarView, chatItem, messageBubble, separator, systemMessage } from './views/render.js';
import { acceptFiles, attachmentsView, Downloads, UploadTray } from './views/attachments.js';
import { attachmentsLine } from './lib/uploads.js';
import { blockButton, blockedList, blockedNote, Blocks } from './views/safety.js';
import { actionsMenu, deleteForEveryone, EditMode } from './views/message-actions.js';
import { charCount, limitsFrom, sendMessageFrame, transportFor, DEFAULT_LIMITS } from './lib/limits.js';
import { Outbox } from './lib/outbox.js';
import { contiguousTop, firstUnread, maxPos, minPos, newStore, ordered } from './lib/store.js';
import {
  dayKey,
  dayLabel,
  listTime,
  systemText as formatSystem,
  systemUserIds,
  titleWithUnread,
} from './lib/format.js';

const REFRESH_KEY = 'chat.refreshToken';
const PAGE = 50;
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 2500;
const TYPING_EXPIRE_MS = 6000;
const PING_EVERY_MS = 4 * 60 * 1000;
const ACK_TIMEOUT_MS = 15000; // a sent message with no answer by then is sent again

// ------------------------------------------------------------------ small helpers

function clientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function lastSeenText(p) {
  if (!p) return '';
  if (p.online) return 'online';
  if (!p.lastSeenAt) return 'offline';
  const d = new Date(p.lastSeenAt);
  const mins = Math.round((Date.now() - d.getTime()) / 60000);
  if (mins < 1) return 'last seen just now';
  if (mins < 60) return `last seen ${mins} min ago`;
  if (d.toDateString() === new Date().toDateString()) {
    return `last seen today at ${d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`;
  }
  return `last seen ${d.toLocaleDateString([], { month: 'short', day: 'numeric' })}`;
}

// ------------------------------------------------------------------ state

const cfg = { httpUrl: '', wsUrl: '', limits: DEFAULT_LIMITS, testHooks: false };

/** The logged-in session; null when logged out. */
let session = null; // { user, accessToken, accessExp (ms), refreshToken }
let refreshTimer = null;
let refreshing = null;

const chats = new Map(); // chatId -> ChatSummary (+ local fields)
const profiles = new Map(); // userId -> Profile
const presence = new Map(); // userId -> { online, lastSeenAt }
const receipts = new Map(); // chatId -> Map(userId -> { delivered, read })
const stores = new Map(); // chatId -> message store (lib/store.js)
let outbox = new Outbox(); // replaced by the user's persisted one at log in
const typing = new Map(); // chatId -> Map(userId -> timeout)
let current = null; // the chat id on screen

/** The WebSocket (lib/socket.js); started at log in, stopped at log out. */
const sock = new Socket({
  url: () => cfg.wsUrl,
  token: async ({ fresh }) => {
    if (!session) return null;
    if (fresh) await refreshTokens();
    else await ensureFreshToken();
    return session ? session.accessToken : null;
  },
  limits: () => cfg.limits,
  onOpen: () => {
    // Catch up on whatever happened while we were away, then resend the outbox.
    requestSync();
    pump();
    for (const c of chats.values()) ack(c.chatId, c.lastPosition || 0);
    if (current) markRead(current);
  },
  onEvent: (ev) => handleEvent(ev),
  onClose: () => {
    requeueSocketSends();
    if (current) renderMessages();
  },
  onState: (state, detail) => setConn(state, detail),
  pingEveryMs: PING_EVERY_MS,
});

const me = () => session && session.user.userId;

/** Photos and files waiting in the composer (views/attachments.js), per chat. */
const tray = new UploadTray({
  api: (method, path, body) => api(method, path, body),
  list: document.getElementById('upload-tray'),
  onchange: () => updateCounter(),
  onerror: (text) => banner(text),
});
/** The users this user blocks (views/safety.js); what shows them re-renders on a change. */
const blocks = new Blocks({
  api: (method, path) => api(method, path),
  onchange: () => {
    if ($('info-dialog').open) renderInfo();
    if ($('profile-dialog').open) renderProfileBlocks();
    if (current) renderBlocked();
  },
});

/** Attachments fetched for display (blob: URLs, one fetch each). */
const downloads = new Downloads((method, path) => api(method, path));

/** The composer's edit mode (views/message-actions.js). */
const editMode = new EditMode({
  api: (method, path, body) => api(method, path, body),
  bar: document.getElementById('edit-bar'),
  box: document.getElementById('composer-text'),
  onsaved: (chatId, m) => applyChanged(chatId, m),
  onerror: (text) => banner(text),
});

/**
 * A message that changed (edited or deleted: an event, a sync page's `changed`, a REST
 * answer): it replaces the copy held, and the list's preview when it is the last one.
 */
function applyChanged(chatId, m, changeSeq = 0) {
  const c = chats.get(chatId);
  if (!c || !m || !m.position) return;
  // Events advance the cursor only without a gap: a change missed (while the socket
  // was down) must still come in the next sync.
  if (changeSeq === (c.changeSeq || 0) + 1) c.changeSeq = changeSeq;
  const s = storeOf(chatId);
  if (s.loaded || s.byPos.has(m.position)) s.byPos.set(m.position, { ...m, chatId });
  if (c.lastMessage && c.lastMessage.position === m.position) c.lastMessage = { ...c.lastMessage, preview: previewOf(m) };
  if (current === chatId) renderMessages();
  renderChatList();
}

/** A message's text for a one-line preview: its text, or its attachments in words. */
function previewOf(m) {
  if (m.deleted) return 'Message deleted';
  const text = m.text && m.text.trim() ? m.text : attachmentsLine(m.attachments);
  return Array.from(text || '').slice(0, 140).join('');
}

function storeOf(chatId) {
  let s = stores.get(chatId);
  if (!s) {
    s = newStore();
    stores.set(chatId, s);
  }
  return s;
}

// ------------------------------------------------------------------ configuration

async function loadConfig() {
  // 1. /config.json next to the page (served by `chat-local up`; written at deploy time).
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) {
      const c = await r.json();
      if (c && c.httpUrl && c.wsUrl) {
        cfg.limits = limitsFrom(c.limits);
        // The browser test's hooks: only a config.json that asks for them (the local
        // stack's) on a loopback address turns them on; a deployed page never has them.
        cfg.testHooks = c.testHooks === true && ['127.0.0.1', 'localhost', '[::1]'].includes(location.hostname);
        return setConfig(c.httpUrl, c.wsUrl);
      }
    }
  } catch {
    /* fall through */
  }
  // 2. ?api=&ws= query parameters (only when there is no config.json).
  const q = new URLSearchParams(location.search);
  if (q.get('api') && q.get('ws')) return setConfig(q.get('api'), q.get('ws'));
  // 3. Same origin: the APIs behind the page's own host (e.g. CloudFront behaviours).
  const wsOrigin = location.origin.replace(/^http/, 'ws');
  return setConfig(`${location.origin}/api`, `${wsOrigin}/ws`);
}

function setConfig(httpUrl, wsUrl) {
  cfg.httpUrl = String(httpUrl).replace(/\/+$/, '');
  cfg.wsUrl = String(wsUrl).replace(/\/+$/, '');
  $('auth-api').textContent = `Server: ${new URL(cfg.httpUrl).host}`;
}

// ------------------------------------------------------------------ HTTP API

/** One API request as the logged-in user (lib/api.js); a 401 refreshes the tokens once. */
async function api(method, path, body, { auth = true, retried = false } = {}) {
  let token = null;
  if (auth) {
    await ensureFreshToken();
    if (!session) throw new ApiError('unauthorized', 'Please log in again.', 401);
    token = session.accessToken;
  }
  try {
    return await request(cfg.httpUrl, method, path, body, { token });
  } catch (e) {
    if (e.status === 401 && auth && !retried) {
      await refreshTokens();
      return api(method, path, body, { auth, retried: true });
    }
    throw e;
  }
}

// ------------------------------------------------------------------ tokens

/**
 * How long an access token lives, from its own `iat` and `exp` (a JWT): this device's
 * clock may be off, so the server's absolute expiry time is only the fallback.
 */
function tokenLifetimeMs(tokens) {
  try {
    const part = tokens.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part));
    if (Number.isFinite(claims.exp) && Number.isFinite(claims.iat) && claims.exp > claims.iat) return (claims.exp - claims.iat) * 1000;
  } catch {
    /* not a JWT we can read */
  }
  const left = Date.parse(tokens.accessTokenExpiresAt) - Date.now();
  return left > 0 ? left : 10 * 60 * 1000;
}

function acceptTokens(tokens) {
  session.accessToken = tokens.accessToken;
  session.accessExp = Date.now() + tokenLifetimeMs(tokens);
  session.refreshToken = tokens.refreshToken;
  sessionStorage.setItem(REFRESH_KEY, tokens.refreshToken);
  clearTimeout(refreshTimer);
  // Refresh a minute before expiry (at least 5 s from now).
  const inMs = Math.max(5000, session.accessExp - Date.now() - 60000);
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), inMs);
}

async function ensureFreshToken() {
  if (session && session.accessExp - Date.now() < 30000) await refreshTokens();
}

/** One refresh at a time; a refused refresh token ends the session. */
function refreshTokens() {
  if (!session) return Promise.resolve();
  if (refreshing) return refreshing;
  const presented = session.refreshToken;
  refreshing = (async () => {
    try {
      const tokens = await api('POST', '/auth/refresh', { refreshToken: presented }, { auth: false });
      if (session) acceptTokens(tokens);
    } catch (e) {
      if (e.status === 401 || e.status === 400) {
        endSession(e.message);
      }
      throw e;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// ------------------------------------------------------------------ log in / register

let authMode = 'login';

function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  setAuthMode(authMode);
  const e = $('auth-error');
  e.textContent = message || '';
  e.hidden = !message;
  $('auth-username').focus();
}

function setAuthMode(mode) {
  authMode = mode;
  const reg = mode === 'register';
  $('tab-login').setAttribute('aria-selected', String(!reg));
  $('tab-register').setAttribute('aria-selected', String(reg));
  $('display-name-field').hidden = !reg;
  $('auth-submit').textContent = reg ? 'Create account' : 'Log in';
  $('auth-password').setAttribute('autocomplete', reg ? 'new-password' : 'current-password');
  $('auth-error').hidden = true;
}

async function submitAuth(ev) {
  ev.preventDefault();
  const userName = $('auth-username').value.trim();
  const password = $('auth-password').value;
  const displayName = $('auth-displayname').value.trim() || userName;
  const err = $('auth-error');
  err.hidden = true;
  if (!userName || !password) {
    err.textContent = 'Enter a user name and a password.';
    err.hidden = false;
    return;
  }
  const button = $('auth-submit');
  button.disabled = true;
  try {
    const res =
      authMode === 'register'
        ? await api('POST', '/auth/register', { userName, password, displayName }, { auth: false })
        : await api('POST', '/auth/login', { userName, password }, { auth: false });
    $('auth-password').value = '';
    session = { user: res.user };
    acceptTokens(res.tokens);
    await enterApp();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  } finally {
    button.disabled = false;
  }
}

/** Back to the login form (refresh refused, or logged out). */
function endSession(message) {
  const wasIn = session !== null;
  session = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(REFRESH_KEY);
  sock.stop();
  clearTimeout(pumpTimer);
  outbox = new Outbox();
  tray.byChat.clear();
  blocks.clear();
  chats.clear();
  stores.clear();
  receipts.clear();
  typing.clear();
  current = null;
  $('chat-list').replaceChildren();
  $('message-list').replaceChildren();
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  if (wasIn || message) showAuth(message);
}

async function logout() {
  const token = session && session.refreshToken;
  // Logging out on purpose forgets what was not sent (nothing stays on a shared computer).
  if (session && session.user) localStorage.removeItem(`chat.outbox.${session.user.userId}`);
  endSession();
  if (token) {
    try {
      await api('POST', '/auth/logout', { refreshToken: token }, { auth: false });
    } catch {
      /* the session ends locally either way */
    }
  }
}

// ------------------------------------------------------------------ the app shell

async function enterApp() {
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = session.user.displayName;
  $('me-username').textContent = `@${session.user.userName}`;
  profiles.set(session.user.userId, session.user);
  loadProfiles();
  blocks.load().catch(() => {});
  // The user's unsent messages from an earlier page (same clientMessageIds: sent once).
  outbox = new Outbox(localStorage, `chat.outbox.${session.user.userId}`);
  outbox.onchange = () => updateTitle();
  await loadChats();
  sock.start();
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (fromHash && chats.has(fromHash)) openChat(fromHash);
  else renderConversation();
}

function banner(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = !text;
}

async function loadChats() {
  try {
    let cursor = null;
    let pages = 0;
    do {
      const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const page = await api('GET', `/chats?limit=100${q}`);
      for (const c of page.chats) upsertChat(c);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < 5);
  } catch (e) {
    banner(`Could not load your chats: ${e.message}`);
  }
  renderChatList();
  saveProfiles();
  // A system message last (its preview in words, as in the chat): fetch it.
  const systemLast = [...chats.values()].filter((c) => c.lastMessage && c.lastMessage.senderId === null).slice(0, 20);
  Promise.all(
    systemLast.map((c) =>
      api('GET', `/chats/${encodeURIComponent(c.chatId)}/messages?limit=1`)
        .then((page) => {
          const m = page.messages[page.messages.length - 1];
          if (m) {
            c.lastSystem = m;
            ensureProfiles(systemUserIds(m));
          }
        })
        .catch(() => {}),
    ),
  ).then(() => renderChatList());
  // Presence of direct-chat partners (the WebSocket tells us about changes after).
  const peers = [...chats.values()].filter((c) => c.peer).slice(0, 30);
  await Promise.all(peers.map((c) => loadPresence(c.peer.userId)));
}

/** userId -> how many presence events this page has had for them. */
const presenceEvents = new Map();

async function loadPresence(userId) {
  const eventsBefore = presenceEvents.get(userId) || 0;
  try {
    const u = await api('GET', `/users/${encodeURIComponent(userId)}`);
    profiles.set(userId, u);
    // A presence event that came while this read was out is newer than its answer (which
    // may say "online" for a user who has just gone): the event stands.
    if ((presenceEvents.get(userId) || 0) === eventsBefore) presence.set(userId, u.presence);
    renderChatList();
    if (current && chats.get(current)?.peer?.userId === userId) renderHeader();
  } catch {
    /* presence is best effort */
  }
}

/** Merge a chat resource (summary, detail, or the `chat` of an event) into the list. */
function upsertChat(c, mine = undefined, readAt = 0) {
  const old = chats.get(c.chatId) || {};
  const merged = { ...old, ...c };
  // The change cursor (edits, deletions) is the page's own once it has one: a copy of the
  // chat read later says how far the server is, not how far this page has caught up.
  if (old.changeSeq !== undefined) merged.changeSeq = old.changeSeq;
  // The user's own mute change is not undone by a copy of the chat read before it (a
  // detail fetched meanwhile, a membership event or sync page on its way): those carry
  // the old setting. Within 30 s of a change, the page's value stands.
  const changed = mutedChangedAt.get(c.chatId) || 0;
  if (changed && 'muted' in old && readAt <= changed && Date.now() - changed < 30000) merged.muted = old.muted;
  if (mine) {
    merged.readPosition = mine.readPosition;
    merged.deliveredPosition = mine.deliveredPosition;
  }
  if (merged.readPosition === undefined) merged.readPosition = 0;
  merged.unreadCount = Math.max(0, (merged.lastPosition || 0) - (merged.readPosition || 0));
  if (c.peer) profiles.set(c.peer.userId, c.peer);
  if (c.members) {
    const r = receiptsOf(c.chatId);
    for (const m of c.members) {
      if (m.profile) profiles.set(m.userId, m.profile);
      const prev = r.get(m.userId) || { delivered: 0, read: 0 };
      r.set(m.userId, {
        delivered: Math.max(prev.delivered, m.deliveredPosition, m.readPosition),
        read: Math.max(prev.read, m.readPosition),
      });
    }
    merged.memberIds = c.members.map((m) => m.userId);
    storeOf(c.chatId).detailLoaded = true;
  }
  chats.set(c.chatId, merged);
  return merged;
}

function receiptsOf(chatId) {
  let r = receipts.get(chatId);
  if (!r) {
    r = new Map();
    receipts.set(chatId, r);
  }
  return r;
}

function chatName(c) {
  if (!c) return '';
  if (c.kind === 'group') return c.name || 'Group';
  if (c.peer) return c.peer.displayName;
  return 'Deleted account';
}

function nameOf(userId) {
  if (userId === me()) return 'You';
  const p = profiles.get(userId);
  if (p) return p.displayName;
  if (userId) ensureProfiles([userId]);
  return 'Someone';
}

const profilesAsked = new Set();

/**
 * Look up the names of users we do not know (a member removed from a group, the sender
 * of an old message): `GET /users/{id}`, kept in localStorage so old messages keep their
 * names after a reload. Re-renders once they arrive.
 */
function ensureProfiles(ids) {
  const want = [...new Set(ids)].filter((id) => typeof id === 'string' && id && id !== me() && !profiles.has(id) && !profilesAsked.has(id));
  if (!want.length || !session) return;
  for (const id of want) profilesAsked.add(id);
  Promise.all(
    want.slice(0, 20).map((id) =>
      api('GET', `/users/${encodeURIComponent(id)}`)
        .then((u) => profiles.set(id, u))
        .catch(() => {}),
    ),
  ).then(() => {
    saveProfiles();
    renderChatList();
    if (current) renderConversation();
  });
}

function profilesKey() {
  return session && session.user ? `chat.profiles.${session.user.userId}` : null;
}

/** Names seen so far (id -> display name, user name), for a reload. */
function saveProfiles() {
  const key = profilesKey();
  if (!key) return;
  const out = {};
  for (const [id, p] of profiles) if (p && p.displayName) out[id] = { userId: id, displayName: p.displayName, userName: p.userName };
  try {
    localStorage.setItem(key, JSON.stringify(out));
  } catch {
    /* best effort */
  }
}

function loadProfiles() {
  const key = profilesKey();
  if (!key) return;
  try {
    const saved = JSON.parse(localStorage.getItem(key) || '{}');
    for (const [id, p] of Object.entries(saved)) {
      if (!profiles.has(id) && p && typeof p.displayName === 'string') profiles.set(id, p);
    }
  } catch {
    /* ignore a corrupt copy */
  }
}

// ------------------------------------------------------------------ chat list

/** A chat's avatar (views/render.js) with its partner's presence. */
function avatar(c, p) {
  return avatarView({ name: chatName(c), group: c.kind === 'group', online: !!(p && p.online), presenceText: p ? lastSeenText(p) : undefined });
}

function renderChatList() {
  const list = $('chat-list');
  const sorted = [...chats.values()].sort((a, b) =>
    String(b.lastActivityAt || '').localeCompare(String(a.lastActivityAt || '')),
  );
  const items = sorted.map((c) => {
    const peerId = c.peer && c.peer.userId;
    const p = peerId ? presence.get(peerId) : null;
    const typers = typingNames(c.chatId);
    let preview = '';
    if (typers) preview = typers;
    else if (c.lastMessage) {
      const who = c.lastMessage.senderId;
      const prefix = who === me() ? 'You: ' : c.kind === 'group' && who ? `${nameOf(who)}: ` : '';
      preview = prefix + c.lastMessage.preview;
      if (!who) {
        // A system message: the same words as in the chat ("You added Carol").
        const pos = c.lastMessage.position;
        const held = storeOf(c.chatId).byPos.get(pos) || (c.lastSystem && c.lastSystem.position === pos ? c.lastSystem : null);
        if (held && held.system) preview = systemText(held);
      }
    } else preview = 'No messages yet';
    return chatItem(
      {
        chatId: c.chatId,
        name: chatName(c),
        group: c.kind === 'group',
        online: !!(p && p.online),
        presenceText: p ? lastSeenText(p) : undefined,
        muted: !!c.muted,
        time: c.lastMessage ? listTime(c.lastMessage.sentAt) : '',
        preview,
        typing: !!typers,
        unread: c.chatId !== current ? c.unreadCount : 0,
        active: c.chatId === current,
      },
      () => openChat(c.chatId),
    );
  });
  list.replaceChildren(...items);
  $('chat-list-empty').hidden = chats.size > 0;
  updateTitle();
}

// ------------------------------------------------------------------ user search, direct chats

function validPrefix(q) {
  return /^[A-Za-z0-9_.-]{2,32}$/.test(q);
}

/** Users whose user name starts with `q`, others only; `.self` says whether you matched. */
async function searchUsers(q) {
  const page = await api('GET', `/users?prefix=${encodeURIComponent(q)}&limit=10`);
  for (const u of page.users) profiles.set(u.userId, u);
  const others = page.users.filter((u) => u.userId !== me());
  others.self = others.length < page.users.length;
  return others;
}

function userRow(u, onpick) {
  return el(
    'li',
    {},
    el(
      'button',
      { type: 'button', class: 'user-row', 'data-user-name': u.userName, onclick: () => onpick(u) },
      el('span', { class: 'user-row-name', text: u.displayName }),
      el('span', { class: 'muted', text: ` @${u.userName}` }),
    ),
  );
}

const runSidebarSearch = debounce(async () => {
  const q = $('user-search').value.trim();
  const box = $('search-results');
  if (!q) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  if (!validPrefix(q)) {
    box.replaceChildren(el('li', { class: 'muted hint', text: 'Type at least 2 letters of a user name (letters, digits, _ . -).' }));
    box.hidden = false;
    return;
  }
  try {
    const users = await searchUsers(q);
    if ($('user-search').value.trim() !== q) return;
    box.replaceChildren(
      ...(users.length
        ? users.map((u) => userRow(u, startDirect))
        : [
            el('li', {
              class: 'muted hint',
              text: users.self ? `That is you (@${session.user.userName}). Type someone else’s user name.` : `No user name starts with “${q}”.`,
            }),
          ]),
    );
  } catch (e) {
    box.replaceChildren(el('li', { class: 'error', text: e.message }));
  }
  box.hidden = false;
}, 250);

async function startDirect(u) {
  try {
    const c = await api('POST', '/chats', { kind: 'direct', userId: u.userId });
    upsertChat(c);
    $('user-search').value = '';
    $('search-results').hidden = true;
    renderChatList();
    loadPresence(u.userId);
    openChat(c.chatId);
  } catch (e) {
    banner(`Could not start the chat: ${e.message}`);
  }
}

// ------------------------------------------------------------------ groups

const groupDialog = { mode: 'create', chatId: null, chosen: new Map() };

function openGroupDialog(mode, chatId = null) {
  groupDialog.mode = mode;
  groupDialog.chatId = chatId;
  groupDialog.chosen = new Map();
  $('group-title').textContent = mode === 'create' ? 'New group' : `Add people to ${chatName(chats.get(chatId))}`;
  $('group-name-field').hidden = mode !== 'create';
  $('group-submit').textContent = mode === 'create' ? 'Create group' : 'Add';
  $('group-name').value = '';
  $('group-search').value = '';
  $('group-results').replaceChildren();
  $('group-error').hidden = true;
  renderChosen();
  $('group-dialog').showModal();
  (mode === 'create' ? $('group-name') : $('group-search')).focus();
}

function renderChosen() {
  $('group-chosen').replaceChildren(
    ...[...groupDialog.chosen.values()].map((u) =>
      el(
        'li',
        { class: 'chip' },
        el('span', { text: u.displayName }),
        el('button', {
          type: 'button',
          class: 'link',
          'aria-label': `Remove ${u.displayName}`,
          text: '×',
          onclick: () => {
            groupDialog.chosen.delete(u.userId);
            renderChosen();
          },
        }),
      ),
    ),
  );
}

const runGroupSearch = debounce(async () => {
  const q = $('group-search').value.trim();
  const box = $('group-results');
  if (!validPrefix(q)) {
    box.replaceChildren();
    return;
  }
  try {
    const existing = new Set(groupDialog.chatId ? chats.get(groupDialog.chatId)?.memberIds || [] : []);
    const users = (await searchUsers(q)).filter((u) => !existing.has(u.userId));
    box.replaceChildren(
      ...users.map((u) =>
        userRow(u, (picked) => {
          groupDialog.chosen.set(picked.userId, picked);
          $('group-search').value = '';
          box.replaceChildren();
          renderChosen();
        }),
      ),
    );
  } catch (e) {
    box.replaceChildren(el('li', { class: 'error', text: e.message }));
  }
}, 250);

async function submitGroup(ev) {
  ev.preventDefault();
  const err = $('group-error');
  err.hidden = true;
  const memberIds = [...groupDialog.chosen.keys()];
  const name = $('group-name').value.trim();
  if (groupDialog.mode === 'create' && !name) {
    err.textContent = 'Give the group a name.';
    err.hidden = false;
    return;
  }
  if (!memberIds.length) {
    err.textContent = 'Add at least one person.';
    err.hidden = false;
    return;
  }
  try {
    const c =
      groupDialog.mode === 'create'
        ? await api('POST', '/chats', { kind: 'group', name, memberIds })
        : await api('POST', `/chats/${encodeURIComponent(groupDialog.chatId)}/members`, { memberIds });
    upsertChat(c);
    $('group-dialog').close();
    renderChatList();
    if (groupDialog.mode === 'create') openChat(c.chatId);
    else renderHeader();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

// ------------------------------------------------------------------ chat info (members, rename, mute, leave)

let infoChatId = null;

function openInfo() {
  if (!current) return;
  infoChatId = current;
  $('info-error').hidden = true;
  renderInfo();
  $('info-dialog').showModal();
  // The member list may be stale (members added or removed elsewhere).
  loadDetail(infoChatId).then(() => $('info-dialog').open && renderInfo());
}

function renderInfo() {
  const c = chats.get(infoChatId);
  if (!c) {
    if ($('info-dialog').open) $('info-dialog').close();
    return;
  }
  const group = c.kind === 'group';
  const admin = group && c.role === 'admin';
  $('info-title').textContent = chatName(c);
  $('info-sub').textContent = group ? `Group · ${c.memberCount} members` : c.peer ? `@${c.peer.userName}` : '';
  $('rename-form').hidden = !admin;
  if (admin && document.activeElement !== $('rename-input')) $('rename-input').value = c.name || '';
  $('info-members-title').hidden = !group;
  const members = group ? c.members || [] : [];
  $('info-members').replaceChildren(
    ...members.map((m) => {
      const p = m.profile || profiles.get(m.userId);
      const isMe = m.userId === me();
      return el(
        'li',
        { 'data-user-id': m.userId },
        el('span', { class: 'member-name', text: isMe ? `${p ? p.displayName : 'You'} (you)` : p ? p.displayName : nameOf(m.userId) }),
        m.role === 'admin' ? el('span', { class: 'role', text: 'admin' }) : null,
        !isMe && p ? blockButton(blocks, { ...p, userId: m.userId }, infoError, { cls: 'link' }) : null,
        admin && !isMe
          ? el('button', {
              type: 'button',
              class: 'link danger remove-member',
              'aria-label': `Remove ${p ? p.displayName : 'member'}`,
              text: 'Remove',
              onclick: () => removeMember(c.chatId, m.userId),
            })
          : null,
      );
    }),
  );
  $('info-add').hidden = !admin;
  $('info-leave').hidden = !group;
  $('info-block-slot').replaceChildren(...(!group && c.peer ? [blockButton(blocks, c.peer, infoError)] : []));
  $('info-mute').textContent = c.muted ? 'Unmute' : 'Mute';
  $('info-mute').setAttribute('aria-pressed', String(!!c.muted));
}

function infoError(e) {
  $('info-error').textContent = e.message;
  $('info-error').hidden = false;
}

async function renameGroup(ev) {
  ev.preventDefault();
  const name = $('rename-input').value.trim();
  if (!name) return infoError(new Error('Give the group a name.'));
  try {
    upsertChat(await api('PATCH', `/chats/${encodeURIComponent(infoChatId)}`, { name }));
    $('info-error').hidden = true;
    renderInfo();
    renderChatList();
    if (current === infoChatId) renderHeader();
  } catch (e) {
    infoError(e);
  }
}

async function removeMember(chatId, userId) {
  try {
    await api('DELETE', `/chats/${encodeURIComponent(chatId)}/members/${encodeURIComponent(userId)}`);
    await loadDetail(chatId);
    renderInfo();
    if (current === chatId) renderConversation();
  } catch (e) {
    infoError(e);
  }
}

async function toggleMute() {
  const c = chats.get(infoChatId);
  if (!c) return;
  try {
    const r = await api('PATCH', `/chats/${encodeURIComponent(c.chatId)}/members/me`, { muted: !c.muted });
    const muted = r && typeof r.muted === 'boolean' ? r.muted : !c.muted;
    // Set it on the chat as it is now, not on `c`: a copy of the chat that arrived while
    // the request was out (a detail read, a membership event, a sync page) replaced the
    // object in `chats`, and `c` is no longer the one the page shows.
    const now = chats.get(c.chatId);
    if (now) now.muted = muted;
    mutedChangedAt.set(c.chatId, Date.now());
    renderInfo();
    renderChatList();
  } catch (e) {
    infoError(e);
  }
}

async function leaveGroup() {
  const chatId = infoChatId;
  try {
    await api('DELETE', `/chats/${encodeURIComponent(chatId)}/members/me`);
    $('info-dialog').close();
    forgetChat(chatId);
    banner('');
  } catch (e) {
    infoError(e);
  }
}

/** A chat we are no longer in: out of the list, the screen and the outbox. */
function forgetChat(chatId) {
  chats.delete(chatId);
  stores.delete(chatId);
  outbox.dropChat(chatId);
  if (current === chatId) closeChat();
  renderChatList();
}

// ------------------------------------------------------------------ profile, log out everywhere, notifications

function openProfile() {
  $('profile-name').value = session.user.displayName;
  $('profile-username').textContent = `@${session.user.userName}`;
  $('profile-error').hidden = true;
  $('profile-saved').hidden = true;
  $('notify-enable').hidden = !('Notification' in window) || Notification.permission !== 'default';
  renderProfileBlocks();
  $('profile-dialog').showModal();
  blocks.load().catch(() => {});
}

async function saveProfile(ev) {
  ev.preventDefault();
  const displayName = $('profile-name').value.trim();
  $('profile-saved').hidden = true;
  try {
    const u = await api('PATCH', '/me', { displayName });
    session.user = { ...session.user, ...u };
    profiles.set(u.userId, session.user);
    $('me-name').textContent = session.user.displayName;
    $('profile-error').hidden = true;
    $('profile-saved').hidden = false;
  } catch (e) {
    $('profile-error').textContent = e.message;
    $('profile-error').hidden = false;
  }
}

async function logoutEverywhere() {
  try {
    await api('POST', '/auth/logout-all');
  } catch (e) {
    $('profile-error').textContent = e.message;
    $('profile-error').hidden = false;
    return;
  }
  if ($('profile-dialog').open) $('profile-dialog').close();
  localStorage.removeItem(`chat.outbox.${session.user.userId}`);
  endSession('You logged out on every device.');
}

/** Asked only from a click (browsers refuse, or users dislike, a prompt on load). */
async function enableNotifications() {
  if (!('Notification' in window)) return;
  await Notification.requestPermission();
  $('notify-enable').hidden = Notification.permission !== 'default';
}

/** A new message from someone else: for screen readers, and a notification when hidden. */
function announce(m) {
  const c = chats.get(m.chatId);
  if (!c || m.kind === 'system') return;
  const who = nameOf(m.senderId);
  const text = previewOf(m);
  if (current === m.chatId && document.visibilityState === 'visible') {
    $('announce').textContent = `${who}: ${text}`;
    return;
  }
  if (document.visibilityState === 'hidden' && !c.muted && 'Notification' in window && Notification.permission === 'granted') {
    try {
      const n = new Notification(c.kind === 'group' ? `${who} in ${chatName(c)}` : who, { body: text, tag: m.chatId });
      n.onclick = () => {
        window.focus();
        openChat(m.chatId);
        n.close();
      };
    } catch {
      /* some browsers allow notifications from service workers only */
    }
  }
}

// ------------------------------------------------------------------ conversation

/** chatId -> { position, count }: where the "N unread" divider sits while a chat is open. */
const dividers = new Map();

/** Phones and tablets: no auto-focus (it would pop the keyboard up on every chat open). */
const finePointer = () => window.matchMedia('(hover: hover) and (pointer: fine)').matches;

async function openChat(chatId) {
  if (!chats.has(chatId)) return;
  if (current && current !== chatId) sendTypingStopped();
  if (current !== chatId) editMode.cancel();
  if (current !== chatId) dividers.clear();
  current = chatId;
  if (decodeURIComponent(location.hash.slice(1)) !== chatId) location.hash = chatId;
  document.body.classList.add('show-conv');
  const c = chats.get(chatId);
  const unreadAtOpen = c.unreadCount || 0;
  const readAtOpen = c.readPosition || 0;
  renderChatList();
  $('message-list').replaceChildren();
  renderConversation();
  const s = storeOf(chatId);
  const jobs = [];
  if (!s.detailLoaded) jobs.push(loadDetail(chatId));
  if (!s.loaded) jobs.push(loadLatest(chatId, unreadAtOpen, readAtOpen));
  if (c.peer) jobs.push(loadPresence(c.peer.userId));
  await Promise.all(jobs);
  if (current !== chatId) return;
  const first = unreadAtOpen > 0 ? firstUnread(ordered(s), readAtOpen, me()) : 0;
  if (first) dividers.set(chatId, { position: first, count: unreadAtOpen });
  renderConversation({ toBottom: !first });
  if (first) {
    // Start where the user left off: the divider at the top of the view.
    const div = $('message-list').querySelector('.unread-divider');
    const box = $('messages');
    if (div) box.scrollTop += div.getBoundingClientRect().top - box.getBoundingClientRect().top - 20;
    updateJump();
  }
  markRead(chatId);
  if (finePointer()) $('composer-text').focus();
}

function closeChat() {
  sendTypingStopped();
  current = null;
  dividers.clear();
  document.body.classList.remove('show-conv');
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  renderChatList();
  renderConversation();
}

/** chatId -> when this page last changed the chat's mute setting. */
const mutedChangedAt = new Map();

async function loadDetail(chatId) {
  const started = Date.now(); // for upsertChat's mute rule
  try {
    const d = await api('GET', `/chats/${encodeURIComponent(chatId)}`);
    upsertChat(d, undefined, started);
  } catch (e) {
    banner(`Could not load the chat: ${e.message}`);
  }
}

/**
 * The first page of a chat: the latest messages, enough of them to reach the first
 * unread one (up to 100); with more unread than that, the page from the first unread
 * on (newer pages load on scrolling down or "jump to latest").
 */
async function loadLatest(chatId, unread = 0, readPosition = 0) {
  const s = storeOf(chatId);
  const base = `/chats/${encodeURIComponent(chatId)}/messages`;
  try {
    if (unread > 90) {
      const page = await api('GET', `${base}?after=${readPosition}&limit=100`);
      for (const m of page.messages) s.byPos.set(m.position, m);
      s.hasMoreBefore = readPosition > 0;
      s.hasMoreAfter = page.hasMore;
    } else {
      const limit = Math.min(100, Math.max(PAGE, unread + 10));
      const page = await api('GET', `${base}?limit=${limit}`);
      for (const m of page.messages) s.byPos.set(m.position, m);
      s.hasMoreBefore = page.hasMore;
      s.hasMoreAfter = false;
    }
    s.loaded = true;
    ensureProfiles(ordered(s).flatMap((m) => [m.senderId, ...systemUserIds(m)]));
  } catch (e) {
    banner(`Could not load messages: ${e.message}`);
  }
}

/** The next page after what is held (a chat opened at its first of many unread). */
async function loadNewer(chatId) {
  const s = storeOf(chatId);
  if (!s.loaded || !s.hasMoreAfter || s.loadingNewer) return;
  s.loadingNewer = true;
  try {
    const page = await api('GET', `/chats/${encodeURIComponent(chatId)}/messages?after=${maxPos(s)}&limit=100`);
    for (const m of page.messages) s.byPos.set(m.position, m);
    s.hasMoreAfter = page.hasMore && page.messages.length > 0;
    if (current === chatId) renderMessages();
  } catch (e) {
    banner(`Could not load newer messages: ${e.message}`);
  } finally {
    s.loadingNewer = false;
  }
}

/** "Jump to latest": load what is missing below, then scroll to the end. */
async function jumpToLatest() {
  const chatId = current;
  if (!chatId) return;
  const s = storeOf(chatId);
  for (let i = 0; i < 20 && s.hasMoreAfter && current === chatId; i += 1) await loadNewer(chatId);
  if (current !== chatId) return;
  renderMessages({ toBottom: true });
  updateJump();
}

/** The jump-to-latest button: shown when the end of the chat is not in view. */
function updateJump() {
  const box = $('messages');
  const s = current && storeOf(current);
  const away = box.scrollHeight - box.scrollTop - box.clientHeight > 200;
  $('jump').hidden = !current || !(away || (s && s.hasMoreAfter));
}

async function loadOlder(chatId) {
  const s = storeOf(chatId);
  if (!s.loaded || !s.hasMoreBefore || s.loadingOlder) return;
  s.loadingOlder = true;
  renderHistoryStatus();
  const box = $('messages');
  try {
    const before = minPos(s);
    const page = await api('GET', `/chats/${encodeURIComponent(chatId)}/messages?before=${before}&limit=${PAGE}`);
    const oldHeight = box.scrollHeight;
    const oldTop = box.scrollTop;
    for (const m of page.messages) s.byPos.set(m.position, m);
    s.hasMoreBefore = page.hasMore && page.messages.length > 0;
    if (current === chatId) {
      renderMessages();
      box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
    }
  } catch (e) {
    banner(`Could not load older messages: ${e.message}`);
  } finally {
    s.loadingOlder = false;
    renderHistoryStatus();
  }
  // Keep loading while the view is not filled yet.
  if (current === chatId && s.hasMoreBefore && box.scrollHeight <= box.clientHeight + 10) loadOlder(chatId);
}

/** Fill a gap between what we hold and a newly received position. */
async function fillGap(chatId) {
  const s = storeOf(chatId);
  const top = contiguousTop(s);
  if (!top) return;
  try {
    const page = await api('GET', `/chats/${encodeURIComponent(chatId)}/messages?after=${top}&limit=100`);
    for (const m of page.messages) s.byPos.set(m.position, m);
    if (current === chatId) renderMessages();
  } catch {
    /* the next sync fills it */
  }
}

function renderConversation({ toBottom = false } = {}) {
  const c = current && chats.get(current);
  $('conv').hidden = !c;
  $('conv-empty').hidden = !!c;
  if (!c) return;
  renderHeader();
  renderMessages({ toBottom });
  renderTyping();
  tray.render(current);
  editMode.render(current);
  updateCounter();
  renderBlocked();
}

/** A direct chat with someone the user blocks: a note with Unblock instead of the composer. */
function renderBlocked() {
  const c = current && chats.get(current);
  const peer = c && c.kind === 'direct' && c.peer;
  const on = !!peer && blocks.has(peer.userId);
  const slot = $('blocked-note-slot');
  slot.hidden = !on;
  $('composer').hidden = on;
  slot.replaceChildren(...(on ? [blockedNote(blocks, peer, (e) => banner(e.message))] : []));
}

function renderProfileBlocks() {
  $('profile-blocks').replaceChildren(...blockedList(blocks, (e) => {
    $('profile-error').textContent = e.message;
    $('profile-error').hidden = false;
  }));
}

function renderHeader() {
  const c = current && chats.get(current);
  if (!c) return;
  $('conv-name').textContent = chatName(c);
  const p = c.peer && presence.get(c.peer.userId);
  $('conv-avatar').replaceChildren(avatar(c, p));
  if (c.kind === 'direct') {
    $('conv-sub').textContent = c.peer ? `@${c.peer.userName}${p ? ` · ${lastSeenText(p)}` : ''}` : '';
    $('add-members').hidden = true;
  } else {
    const ids = c.memberIds || [];
    const names = ids.filter((id) => id !== me()).map(nameOf);
    const list = names.length > 4 ? `${names.slice(0, 4).join(', ')} and ${names.length - 4} more` : names.join(', ');
    $('conv-sub').textContent = `${c.memberCount} member${c.memberCount === 1 ? '' : 's'}${list ? ` · you, ${list}` : ''}`;
    $('add-members').hidden = c.role !== 'admin';
  }
}

function renderHistoryStatus() {
  const s = current && storeOf(current);
  const h = $('history-status');
  if (!s || !s.loaded) h.textContent = 'Loading…';
  else if (s.loadingOlder) h.textContent = 'Loading older messages…';
  else if (s.hasMoreBefore) h.textContent = 'Scroll up for older messages';
  else h.textContent = s.byPos.size ? 'This is the start of the chat.' : 'No messages yet. Say hello!';
}

/** The state of an own message: pending, failed, sent, delivered or read (+ label). */
function ownState(chatId, m) {
  if (m.failed) return { state: 'failed', label: `Not sent: ${m.failed} Tap to retry.` };
  if (!m.position) return { state: 'pending', label: 'Sending…' };
  const c = chats.get(chatId);
  const r = receipts.get(chatId) || new Map();
  const others = [...r.entries()].filter(([id]) => id !== me());
  if (c && c.kind === 'group') {
    const total = Math.max(others.length, (c.memberCount || 1) - 1);
    const read = others.filter(([, v]) => v.read >= m.position).length;
    const delivered = others.filter(([, v]) => v.delivered >= m.position).length;
    if (total > 0 && read >= total) return { state: 'read', label: 'Read by everyone' };
    if (read > 0) return { state: 'read', label: `Read by ${read}` };
    if (delivered > 0) return { state: 'delivered', label: `Delivered to ${delivered}` };
    return { state: 'sent', label: 'Sent' };
  }
  const peer = c && c.peer ? r.get(c.peer.userId) : others[0] && others[0][1];
  if (peer && peer.read >= m.position) return { state: 'read', label: 'Read' };
  if (peer && peer.delivered >= m.position) return { state: 'delivered', label: 'Delivered' };
  return { state: 'sent', label: 'Sent' };
}

const msgNodes = new Map(); // key -> li, for the chat on screen

function msgKey(m) {
  return m.clientMessageId && m.senderId === me() ? `c:${m.clientMessageId}` : `p:${m.position}`;
}

function renderMessages({ toBottom = false } = {}) {
  if (!current) return;
  const chatId = current;
  const c = chats.get(chatId);
  const s = storeOf(chatId);
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const list = $('message-list');
  if (list.dataset.chatId !== chatId) {
    list.replaceChildren();
    msgNodes.clear();
    list.dataset.chatId = chatId;
  }
  const all = ordered(s).concat(pendingMessages(chatId));
  const divider = dividers.get(chatId);
  const wanted = [];
  const seen = new Set();
  let prevSender = null;
  let prevDay = '';
  for (const m of all) {
    const key = msgKey(m);
    if (seen.has(key)) continue;
    seen.add(key);
    // A day separator before the first message of each day (pending ones: today).
    const when = m.sentAt || new Date(m.createdAt || Date.now()).toISOString();
    const day = dayKey(when);
    if (day && day !== prevDay) {
      const dk = `d:${day}`;
      seen.add(dk);
      wanted.push(separatorNode(dk, 'day-separator', dayLabel(when)));
      prevDay = day;
      prevSender = null;
    }
    if (divider && m.position === divider.position) {
      const uk = 'u:divider';
      seen.add(uk);
      wanted.push(separatorNode(uk, 'unread-divider', `${divider.count} unread message${divider.count === 1 ? '' : 's'}`));
      prevSender = null;
    }
    wanted.push(messageNode(chatId, c, m, key, prevSender));
    prevSender = m.kind === 'system' ? null : m.senderId;
  }
  wanted.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  for (const [key, node] of msgNodes) {
    if (!seen.has(key)) {
      node.remove();
      msgNodes.delete(key);
    }
  }
  renderHistoryStatus();
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
  updateJump();
}

/** A centred line between messages: a day ("Today", "2 Dec") or the unread divider. */
function separatorNode(key, cls, text) {
  let node = msgNodes.get(key);
  if (node && node.textContent === text) return node;
  const fresh = separator(cls, text);
  if (node) node.replaceWith(fresh);
  msgNodes.set(key, fresh);
  return fresh;
}


/** A system message in words, with member names (lib/format.js). */
function systemText(m) {
  return formatSystem(m, nameOf);
}

function messageNode(chatId, c, m, key, prevSender) {
  let node = msgNodes.get(key);
  const own = m.senderId === me();
  const sys = m.kind === 'system' ? systemText(m) : '';
  const atts = (m.attachments || []).map((a) => a.attachmentId);
  const admin = c && c.kind === 'group' && c.role === 'admin';
  const sig = JSON.stringify([m.position, m.text, sys, m.failed, own ? ownState(chatId, m) : 0, prevSender === m.senderId, nameOf(m.senderId), atts, m.editedAt, m.deleted, admin]);
  if (node && node.dataset.sig === sig) return node;
  let fresh;
  if (m.kind === 'system') fresh = systemMessage(m.position, sys);
  else {
    const showName = !own && c && c.kind === 'group' && prevSender !== m.senderId;
    fresh = messageBubble(
      {
        position: m.position,
        clientMessageId: m.clientMessageId,
        own,
        text: m.text,
        sentAt: m.sentAt,
        senderName: showName ? nameOf(m.senderId) : null,
        state: own ? ownState(chatId, m) : null,
        attachments: m.deleted ? null : attachmentsView(downloads, chatId, m.attachments, banner),
        edited: m.editedAt || (m.editCount ? true : false),
        deleted: !!m.deleted,
        actions: m.position && !m.deleted
          ? actionsMenu({
              canEdit: own && !!(m.text && m.text.trim()),
              canDelete: own || admin,
              onedit: () => editMode.start(chatId, m),
              ondelete: () => deleteForEveryone(api, chatId, m.position)
                .then((t) => applyChanged(chatId, t))
                .catch((e) => banner(`Could not delete the message: ${e.message}`)),
            })
          : null,
      },
      () => retry(chatId, m.clientMessageId),
      () => {
        outbox.discard(m.clientMessageId);
        if (current === chatId) renderMessages();
        pump();
      },
    );
  }
  fresh.dataset.sig = sig;
  if (node) node.replaceWith(fresh);
  msgNodes.set(key, fresh);
  return fresh;
}

// ------------------------------------------------------------------ sending

function send(ev) {
  ev.preventDefault();
  const chatId = current;
  const box = $('composer-text');
  const text = box.value;
  if (!chatId) return;
  if (editMode.active) {
    editMode.submit();
    return;
  }
  // Photos and files go with the text once every upload is done.
  const uploads = tray.state(chatId);
  if (uploads === 'uploading') return;
  if (uploads === 'failed') {
    banner('An upload failed: retry it or remove it before sending.');
    return;
  }
  if (!text.trim() && uploads !== 'ready') return;
  const refs = uploads === 'ready' ? tray.take(chatId) : [];
  box.value = '';
  autosize();
  updateCounter();
  sendTypingStopped();
  outbox.add(chatId, clientId(), refs.length && !text.trim() ? '' : text, Date.now(), refs);
  renderMessages({ toBottom: true });
  pump();
}

let pumpTimer = null;

/**
 * Send what may go now: the head of each chat's queue (lib/outbox.js), over the socket
 * when its frame fits and the rate limit has room, else over REST. One message per chat
 * in flight, so the server stores them in typing order.
 */
function pump() {
  clearTimeout(pumpTimer);
  pumpTimer = null;
  if (!session) return;
  let wait = 0;
  for (const e of outbox.ready()) {
    // Attachments are named over REST only; a text goes by socket when its frame fits.
    const via = e.attachments ? 'rest' : transportFor(e.chatId, e.clientMessageId, e.text, cfg.limits);
    if (via === 'rest') {
      outbox.markSending(e.clientMessageId, 'rest');
      sendOverRest(e);
      continue;
    }
    if (!sock.isOpen) continue; // sent once the socket is back
    if (!sock.budget.allows('send')) {
      // The socket's rate-limit window is full: rather than wait up to 10 s, this head
      // goes over REST (same clientMessageId, same order: it is still the only one of
      // its chat in flight), and the socket keeps room for reads and syncs.
      outbox.markSending(e.clientMessageId, 'rest');
      sendOverRest(e);
      continue;
    }
    outbox.markSending(e.clientMessageId, 'ws');
    wsSend(JSON.parse(sendMessageFrame(e.chatId, e.clientMessageId, e.text)), { kind: 'send' });
  }
  // A message sent with no answer for a while goes again (same clientMessageId).
  const now = Date.now();
  for (const e of outbox.inFlight()) {
    if (e.via !== 'ws') continue;
    const left = e.sentAt + ACK_TIMEOUT_MS - now;
    if (left <= 0) {
      outbox.requeue(e.clientMessageId, { why: 'The server did not answer. Tap to retry.' });
      wait = 1;
    } else wait = wait ? Math.min(wait, left) : left;
  }
  if (wait) pumpTimer = setTimeout(pump, wait);
}

async function sendOverRest(e) {
  try {
    const stored = await api('POST', `/chats/${encodeURIComponent(e.chatId)}/messages`, {
      clientMessageId: e.clientMessageId,
      text: e.text || undefined,
      attachments: e.attachments ? e.attachments.map((a) => a.attachmentId) : undefined,
    });
    acknowledge(e.chatId, e.clientMessageId, stored);
  } catch (err) {
    const passing = err.code === 'network' || err.status === 429 || err.status >= 500 || err.status === 0;
    if (passing) {
      outbox.requeue(e.clientMessageId, { why: `${err.message} Tap to retry.` });
      setTimeout(pump, 2000);
    } else outbox.fail(e.clientMessageId, err.message, { refused: true });
    pump();
  }
  if (current === e.chatId) renderMessages();
}

function retry(chatId, clientMessageId) {
  if (!outbox.retry(clientMessageId)) return;
  if (current === chatId) renderMessages();
  pump();
}

/** The socket closed: what it carried without an answer goes again (counted). */
function requeueSocketSends() {
  for (const e of outbox.inFlight()) {
    if (e.via === 'ws') outbox.requeue(e.clientMessageId, { why: 'The connection closed while sending this message.' });
  }
}

function acknowledge(chatId, clientMessageId, ack) {
  const s = storeOf(chatId);
  const e = outbox.acked(clientMessageId);
  const stored = {
    chatId,
    messageId: ack.messageId,
    position: ack.position,
    kind: 'text',
    senderId: me(),
    clientMessageId,
    text: e ? e.text : ack.text,
    sentAt: ack.sentAt,
  };
  const atts = (e && e.attachments) || ack.attachments;
  if (atts && atts.length) stored.attachments = atts;
  pump();
  if (stored.text === undefined) return;
  s.byPos.set(stored.position, stored);
  noteMessage(stored);
  if (current === chatId) renderMessages();
}

/** The outbox's messages of a chat as the message list shows them. */
function pendingMessages(chatId) {
  return outbox.ofChat(chatId).map((e) => ({
    chatId,
    clientMessageId: e.clientMessageId,
    senderId: me(),
    kind: 'text',
    text: e.text,
    attachments: e.attachments,
    createdAt: e.createdAt,
    position: 0,
    sentAt: null,
    failed: e.state === 'failed' ? e.error : null,
  }));
}

/** The character counter near the limit; over it, sending is refused with a reason. */
function updateCounter() {
  const box = $('composer-text');
  const max = cfg.limits.maxMessageChars;
  const n = charCount(box.value);
  const c = $('counter');
  const near = n >= max * 0.9;
  c.hidden = !near;
  c.textContent = near ? `${n.toLocaleString()} / ${max.toLocaleString()}` : '';
  c.classList.toggle('over', n > max);
  const uploading = !!current && tray.state(current) === 'uploading';
  $('send').disabled = n > max || uploading;
  $('send').textContent = uploading ? 'Uploading…' : 'Send';
}

function updateTitle() {
  let unread = 0;
  for (const c of chats.values()) if (!c.muted) unread += c.unreadCount || 0;
  document.title = titleWithUnread('Chat', unread);
}

function autosize() {
  const t = $('composer-text');
  t.style.height = 'auto';
  t.style.height = `${Math.min(t.scrollHeight, 160)}px`;
}

// ------------------------------------------------------------------ typing

const typingOut = { chatId: null, lastStarted: 0, idle: null };

function onComposerInput() {
  autosize();
  updateCounter();
  if (!current) return;
  if (!$('composer-text').value) {
    sendTypingStopped();
    return;
  }
  const now = Date.now();
  if (typingOut.chatId !== current || now - typingOut.lastStarted > TYPING_SEND_EVERY_MS) {
    if (typingOut.chatId && typingOut.chatId !== current) sendTypingStopped();
    typingOut.chatId = current;
    typingOut.lastStarted = now;
    wsSend({ action: 'typing', chatId: current, state: 'started' }, { kind: 'low' });
  }
  clearTimeout(typingOut.idle);
  typingOut.idle = setTimeout(sendTypingStopped, TYPING_IDLE_MS);
}

function sendTypingStopped() {
  clearTimeout(typingOut.idle);
  if (typingOut.chatId) {
    wsSend({ action: 'typing', chatId: typingOut.chatId, state: 'stopped' }, { kind: 'low' });
    typingOut.chatId = null;
    typingOut.lastStarted = 0;
  }
}

function onTyping(ev) {
  if (ev.userId === me()) return;
  let t = typing.get(ev.chatId);
  if (!t) {
    t = new Map();
    typing.set(ev.chatId, t);
  }
  clearTimeout(t.get(ev.userId));
  if (ev.state === 'started') {
    t.set(
      ev.userId,
      setTimeout(() => {
        t.delete(ev.userId);
        renderTypingEverywhere();
      }, TYPING_EXPIRE_MS),
    );
  } else t.delete(ev.userId);
  renderTypingEverywhere();
}

function typingNames(chatId) {
  const t = typing.get(chatId);
  if (!t || !t.size) return '';
  const names = [...t.keys()].map(nameOf);
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

function renderTyping() {
  $('typing').textContent = current ? typingNames(current) : '';
}

function renderTypingEverywhere() {
  renderTyping();
  renderChatList();
}

// ------------------------------------------------------------------ receipts

const acksDue = new Map(); // chatId -> position, sent together shortly after
let acksTimer = null;

/** Tell the server everything up to `position` reached this device (batched). */
function ack(chatId, position) {
  const c = chats.get(chatId);
  if (!c || position <= (c.deliveredPosition || 0)) return;
  acksDue.set(chatId, Math.max(acksDue.get(chatId) || 0, position));
  if (!acksTimer) acksTimer = setTimeout(flushAcks, 200);
}

function flushAcks() {
  acksTimer = null;
  for (const [chatId, position] of acksDue) {
    const c = chats.get(chatId);
    if (!c || position <= (c.deliveredPosition || 0)) {
      acksDue.delete(chatId);
      continue;
    }
    if (!wsSend({ action: 'ack', chatId, position }, { kind: 'low' })) break;
    c.deliveredPosition = position;
    acksDue.delete(chatId);
  }
  // Whatever did not fit goes when the window has room (or after the next connect).
  if (acksDue.size && sock.ws) acksTimer = setTimeout(flushAcks, 1000);
}

function isVisible(chatId) {
  return current === chatId && document.visibilityState === 'visible' && !$('app').hidden;
}

let readTimer = null;

/** Mark the open chat read up to its last message (at most one frame per 300 ms). */
function markRead(chatId) {
  if (readTimer) return;
  readTimer = setTimeout(() => {
    readTimer = null;
    markReadNow(current || chatId);
  }, 300);
}

function markReadNow(chatId) {
  const c = chats.get(chatId);
  if (!c || !isVisible(chatId)) return;
  const position = c.lastPosition || 0;
  if (position <= (c.readPosition || 0)) return;
  c.readPosition = position;
  c.deliveredPosition = Math.max(c.deliveredPosition || 0, position);
  c.unreadCount = 0;
  if (!wsSend({ action: 'read', chatId, position })) {
    api('POST', `/chats/${encodeURIComponent(chatId)}/read`, { position }).catch(() => {});
  }
  renderChatList();
}

function onReceipt(ev, kind) {
  if (ev.userId === me()) {
    // Our own other device read this chat.
    const c = chats.get(ev.chatId);
    if (c && kind === 'read' && ev.position > (c.readPosition || 0)) {
      c.readPosition = ev.position;
      c.unreadCount = Math.max(0, (c.lastPosition || 0) - ev.position);
      renderChatList();
    }
    return;
  }
  const r = receiptsOf(ev.chatId);
  const prev = r.get(ev.userId) || { delivered: 0, read: 0 };
  const next = { ...prev };
  next.delivered = Math.max(prev.delivered, ev.position);
  if (kind === 'read') next.read = Math.max(prev.read, ev.position);
  r.set(ev.userId, next);
  if (current === ev.chatId) renderMessages();
}

// ------------------------------------------------------------------ incoming messages

/** Update the chat list entry (and receipts) for a message we now hold. */
function noteMessage(m) {
  const c = chats.get(m.chatId);
  if (!c) return;
  if (m.senderId && m.senderId !== me()) {
    // Sending marks the chat read for the sender up to their message (server rule),
    // without a separate `read` receipt.
    const r = receiptsOf(m.chatId);
    const prev = r.get(m.senderId) || { delivered: 0, read: 0 };
    r.set(m.senderId, { delivered: Math.max(prev.delivered, m.position), read: Math.max(prev.read, m.position) });
  }
  if (m.position >= (c.lastPosition || 0)) {
    c.lastPosition = m.position;
    c.lastMessage = {
      messageId: m.messageId,
      position: m.position,
      senderId: m.senderId || null,
      preview: previewOf(m),
      sentAt: m.sentAt,
    };
    if (m.sentAt && String(m.sentAt) > String(c.lastActivityAt || '')) c.lastActivityAt = m.sentAt;
  }
  if (m.senderId === me()) {
    c.readPosition = Math.max(c.readPosition || 0, m.position);
  }
  c.unreadCount = Math.max(0, (c.lastPosition || 0) - (c.readPosition || 0));
}

async function onMessage(m) {
  if (!chats.has(m.chatId)) {
    // A chat someone just started with us.
    await loadDetail(m.chatId);
    if (!chats.has(m.chatId)) return;
  }
  const s = storeOf(m.chatId);
  if (m.clientMessageId && m.senderId === me() && outbox.find(m.clientMessageId)) {
    // Stored (seen from another device of ours, or the ack was lost): out of the outbox.
    outbox.acked(m.clientMessageId);
    pump();
  }
  if (s.loaded) {
    const top = maxPos(s);
    s.byPos.set(m.position, m);
    if (top && m.position > top + 1) setTimeout(() => { if (contiguousTop(s) < m.position) fillGap(m.chatId); }, 1500);
  }
  if (typing.get(m.chatId)?.has(m.senderId)) {
    clearTimeout(typing.get(m.chatId).get(m.senderId));
    typing.get(m.chatId).delete(m.senderId);
  }
  noteMessage(m);
  ensureProfiles([m.senderId, ...systemUserIds(m)]);
  if (m.senderId !== me()) {
    ack(m.chatId, m.position);
    announce(m);
  }
  if (current === m.chatId) {
    renderMessages();
    renderTyping();
    markRead(m.chatId);
  }
  renderChatList();
}

async function onMessageRef(ref) {
  try {
    // `fetch` is a path on the HTTP API that returns exactly this message.
    const page = await api('GET', ref.fetch);
    for (const m of page.messages || []) await onMessage({ ...m, chatId: m.chatId || ref.chatId });
  } catch (e) {
    banner(`Could not load a long message: ${e.message}`);
  }
}

/** A changed message too large for its event: fetched over REST, then applied. */
async function onChangedRef(ev) {
  try {
    const page = await api('GET', ev.ref.fetch);
    for (const m of page.messages || []) applyChanged(ev.chatId, m, ev.changeSeq || 0);
  } catch (e) {
    banner(`Could not load an edited message: ${e.message}`);
  }
}

function onSyncResult(res) {
  for (const sc of res.chats || []) {
    upsertChat(sc.chat, { readPosition: sc.readPosition, deliveredPosition: sc.deliveredPosition });
    const s = storeOf(sc.chatId);
    if (s.loaded) {
      for (const m of sc.messages || []) {
        s.byPos.set(m.position, m);
      }
    }
    for (const m of sc.messages || []) {
      if (m.clientMessageId && m.senderId === me() && outbox.find(m.clientMessageId)) outbox.acked(m.clientMessageId);
    }
    for (const m of sc.messages || []) noteMessage({ ...m, chatId: sc.chatId });
    for (const ref of sc.refs || []) if (s.loaded) onMessageRef(ref);
    for (const m of sc.changed || []) applyChanged(sc.chatId, m);
    if (Number.isFinite(sc.changeSeq)) {
      const held = chats.get(sc.chatId);
      if (held && sc.changeSeq > (held.changeSeq || 0)) held.changeSeq = sc.changeSeq;
    }
    const c = chats.get(sc.chatId);
    ack(sc.chatId, c.lastPosition || 0);
    if (current === sc.chatId) markRead(sc.chatId);
  }
  for (const id of res.removed || []) {
    chats.delete(id);
    stores.delete(id);
    if (current === id) closeChat();
  }
  if (res.cursor) wsSend({ action: 'sync', cursor: res.cursor });
  renderChatList();
  if (current) renderConversation();
}

function onMembership(ev) {
  const mine = chats.get(ev.chatId);
  const change = ev.change || {};
  const gone =
    (change.event === 'memberRemoved' && change.member === me()) || (change.event === 'memberLeft' && change.member === me());
  if (gone) {
    chats.delete(ev.chatId);
    stores.delete(ev.chatId);
    outbox.dropChat(ev.chatId);
    if ($('info-dialog').open && infoChatId === ev.chatId) $('info-dialog').close();
    if (current === ev.chatId) {
      closeChat();
      banner('You are no longer a member of that group.');
    }
    renderChatList();
    return;
  }
  if (ev.chat) upsertChat(ev.chat, mine ? { readPosition: mine.readPosition, deliveredPosition: mine.deliveredPosition } : undefined);
  // Member list and receipts changed: reload the detail.
  storeOf(ev.chatId).detailLoaded = false;
  loadDetail(ev.chatId).then(() => {
    if (current === ev.chatId) renderConversation();
    if ($('info-dialog').open && infoChatId === ev.chatId) renderInfo();
  });
  renderChatList();
}

function onPresence(ev) {
  presenceEvents.set(ev.userId, (presenceEvents.get(ev.userId) || 0) + 1);
  presence.set(ev.userId, { online: ev.online, lastSeenAt: ev.lastSeenAt });
  renderChatList();
  if (current) renderHeader();
}

function onServerError(ev) {
  if (ev.clientMessageId && ev.action === 'sendMessage') {
    const e = outbox.find(ev.clientMessageId);
    if (!e) return;
    if (ev.code === 'rate_limited') {
      // Nothing was stored: the same message goes again (first in its chat) once the
      // window has room. Not counted as a failed attempt.
      sock.budget.block(2000);
      outbox.requeue(ev.clientMessageId, { counts: false });
    } else if (ev.code === 'unavailable' || ev.code === 'internal') {
      outbox.requeue(ev.clientMessageId, { why: `${words(ev)} Tap to retry.` });
      sock.budget.block(2000);
    } else {
      outbox.fail(ev.clientMessageId, words(ev), { refused: true });
    }
    if (current === e.chatId) renderMessages();
    pump();
    return;
  }
  if (ev.action === 'typing' || ev.action === 'ack' || ev.action === 'ping') return;
  if (ev.code === 'rate_limited' || ev.code === 'unavailable') {
    // Nothing was done: redo it a little later (REST for reads, another sync).
    if (ev.action === 'read') {
      const c = current && chats.get(current);
      if (c) {
        const position = c.readPosition;
        setTimeout(() => api('POST', `/chats/${encodeURIComponent(c.chatId)}/read`, { position }).catch(() => {}), 1000);
      }
      return;
    }
    if (ev.action === 'sync') {
      setTimeout(() => sock.isOpen && requestSync(), 3000);
      return;
    }
  }
  banner(words(ev));
}

function handleEvent(ev) {
  switch (ev.type) {
    case 'messageAck':
      acknowledge(ev.chatId, ev.clientMessageId, ev);
      renderChatList();
      break;
    case 'message':
      onMessage(ev);
      break;
    case 'messageRef':
      onMessageRef(ev);
      break;
    case 'delivered':
    case 'read':
      onReceipt(ev, ev.type);
      break;
    case 'typing':
      onTyping(ev);
      break;
    case 'presence':
      onPresence(ev);
      break;
    case 'membership':
      onMembership(ev);
      break;
    case 'syncResult':
      onSyncResult(ev);
      break;
    case 'messageEdited':
    case 'messageDeleted':
      if (ev.message) applyChanged(ev.chatId, ev.message, ev.changeSeq || 0);
      else if (ev.ref) onChangedRef(ev);
      break;
    case 'error':
      onServerError(ev);
      break;
    default:
      break; // pong and future event types
  }
}

// ------------------------------------------------------------------ the WebSocket

function setConn(state, detail = '') {
  const badge = $('conn');
  badge.dataset.state = state;
  badge.textContent =
    state === 'online' ? 'Online' : state === 'connecting' ? 'Connecting…' : state === 'reconnecting' ? `Reconnecting…${detail}` : 'Offline';
  document.body.dataset.conn = state;
  const strip = $('conn-strip');
  strip.hidden = state !== 'reconnecting';
  strip.textContent = state === 'reconnecting' ? `Connection lost, reconnecting${detail}. Messages you send now go out once it is back.` : '';
}

/** One frame on the socket within the rate limit (lib/socket.js); false when not sent. */
function wsSend(frame, opts) {
  return sock.send(frame, opts);
}

/** `sync` from the positions we hold (chats we only know from the list: their last). */
function requestSync() {
  const known = [...chats.values()].map((c) => {
    const s = stores.get(c.chatId);
    const position = s && s.loaded && s.byPos.size ? Math.min(contiguousTop(s), c.lastPosition || 0) : c.lastPosition || 0;
    return c.changeSeq ? { chatId: c.chatId, position, changeSeq: c.changeSeq } : { chatId: c.chatId, position };
  });
  wsSend({ action: 'sync', chats: known.slice(0, 1000), limit: 100 });
}

// ------------------------------------------------------------------ start

function wire() {
  $('tab-login').addEventListener('click', () => setAuthMode('login'));
  $('tab-register').addEventListener('click', () => setAuthMode('register'));
  $('auth-form').addEventListener('submit', submitAuth);
  $('logout').addEventListener('click', logout);
  $('banner-close').addEventListener('click', () => banner(''));
  $('user-search').addEventListener('input', runSidebarSearch);
  $('new-group').addEventListener('click', () => openGroupDialog('create'));
  $('add-members').addEventListener('click', () => current && openGroupDialog('add', current));
  $('group-search').addEventListener('input', runGroupSearch);
  $('group-form').addEventListener('submit', submitGroup);
  $('group-cancel').addEventListener('click', () => $('group-dialog').close());
  $('composer').addEventListener('submit', send);
  $('composer-text').addEventListener('input', onComposerInput);
  $('attach').addEventListener('click', () => $('attach-input').click());
  $('attach-input').addEventListener('change', () => {
    if (current) tray.add(current, $('attach-input').files);
    $('attach-input').value = '';
  });
  acceptFiles($('conv'), $('composer-text'), (files) => current && tray.add(current, files));
  $('composer-text').addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && editMode.active) editMode.cancel();
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) send(e);
  });
  $('back').addEventListener('click', closeChat);
  $('messages').addEventListener('scroll', () => {
    const box = $('messages');
    if (current && box.scrollTop < 80) loadOlder(current);
    if (current && box.scrollHeight - box.scrollTop - box.clientHeight < 80) loadNewer(current);
    updateJump();
  });
  $('jump').addEventListener('click', jumpToLatest);
  $('chat-info').addEventListener('click', openInfo);
  $('rename-form').addEventListener('submit', renameGroup);
  $('info-add').addEventListener('click', () => {
    $('info-dialog').close();
    openGroupDialog('add', infoChatId);
  });
  $('info-mute').addEventListener('click', toggleMute);
  $('info-leave').addEventListener('click', leaveGroup);
  $('info-close').addEventListener('click', () => $('info-dialog').close());
  $('profile').addEventListener('click', openProfile);
  $('profile-form').addEventListener('submit', saveProfile);
  $('profile-close').addEventListener('click', () => $('profile-dialog').close());
  $('logout-all').addEventListener('click', logoutEverywhere);
  $('notify-enable').addEventListener('click', enableNotifications);
  document.addEventListener('visibilitychange', () => current && markRead(current));
  window.addEventListener('focus', () => current && markRead(current));
  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (!session) return;
    if (id && id !== current && chats.has(id)) openChat(id);
    else if (!id && current) closeChat();
  });
  // Leaving with messages still sending: the browser asks first (they would be sent
  // after the next visit anyway, from the saved outbox).
  window.addEventListener('beforeunload', (e) => {
    if (session && outbox.unsentCount() > 0) {
      e.preventDefault();
      e.returnValue = '';
    }
  });
  window.addEventListener('online', () => sock.nudge());
  // Relative "last seen" times age.
  setInterval(() => {
    if (session && current) renderHeader();
  }, 30000);
}

async function start() {
  wire();
  await loadConfig();
  if (cfg.testHooks) installTestHooks();
  const saved = sessionStorage.getItem(REFRESH_KEY);
  if (!saved) {
    showAuth();
    return;
  }
  // Resume the tab's session: rotate the saved refresh token, then load the profile.
  session = { user: null, refreshToken: saved, accessToken: '', accessExp: 0 };
  try {
    const tokens = await api('POST', '/auth/refresh', { refreshToken: saved }, { auth: false });
    acceptTokens(tokens);
    session.user = await api('GET', '/me');
    await enterApp();
  } catch (e) {
    const ended = e.status === 401 || e.status === 400;
    session = null;
    if (ended) sessionStorage.removeItem(REFRESH_KEY);
    showAuth(ended ? 'Your session has ended. Please log in again.' : e.message);
  }
}

// For the end-to-end test: drop the socket as a network failure would, optionally
// holding reconnects back until release() (a longer outage). Only installed when the
// config asks for it on a loopback address (see loadConfig), never on a deployed page.
function installTestHooks() {
  window.__chat = {
    dropConnection({ hold = false } = {}) {
      sock.drop({ hold });
    },
    release() {
      sock.release();
    },
    state: () => ({ conn: sock.state, current, chats: chats.size, unsent: outbox.unsentCount() }),
    // Read the chat's detail again now (as opening its info does), so a test can make a
    // copy of the chat arrive at a chosen moment.
    refreshChat(chatId) {
      return loadDetail(chatId || current);
    },
    // As if the access token had expired without this page noticing (a laptop that
    // slept through its refresh): the server refuses it from now on.
    spoilAccessToken() {
      if (session) session.accessToken = `${session.accessToken.slice(0, -6)}AAAAAA`;
    },
  };
}

start();
