// Blocking on the page (docs/openapi.yaml `/me/blocks`): the set of users the user
// blocks, the Block / Unblock button of a direct chat's info and a group's member rows,
// the note that replaces the composer in a direct chat with someone you block, and the
// blocked list in your profile.
//
// The server is the authority (a blocked user's sends are refused there, `403 blocked`);
// the page only mirrors the list so it can say so before a send. Names reach the page as
// text (views/dom.js `el`).

import { el } from './dom.js';

export class Blocks {
  /** `api(method, path)`: the page's authenticated request; `onchange()` after every change. */
  constructor({ api, onchange = () => {} }) {
    this.api = api;
    this.onchange = onchange;
    this.users = new Map(); // userId -> Profile
  }

  has(userId) {
    return !!userId && this.users.has(userId);
  }

  clear() {
    this.users.clear();
  }

  /** The user's block list from the server. */
  async load() {
    const res = await this.api('GET', '/me/blocks');
    this.users = new Map((res.users || []).map((u) => [u.userId, u]));
    this.onchange();
  }

  async block(user) {
    await this.api('POST', `/me/blocks/${encodeURIComponent(user.userId)}`);
    this.users.set(user.userId, user);
    this.onchange();
  }

  async unblock(userId) {
    await this.api('DELETE', `/me/blocks/${encodeURIComponent(userId)}`);
    this.users.delete(userId);
    this.onchange();
  }
}

/** "Block" or "Unblock" for `user` ({userId, displayName}); errors go to `onerror(e)`. */
export function blockButton(blocks, user, onerror, { cls = '' } = {}) {
  const blocked = blocks.has(user.userId);
  return el('button', {
    type: 'button',
    class: `${cls} ${blocked ? 'unblock' : 'block danger'}`.trim(),
    'data-user-id': user.userId,
    'aria-label': `${blocked ? 'Unblock' : 'Block'} ${user.displayName}`,
    text: blocked ? 'Unblock' : 'Block',
    onclick: (ev) => {
      ev.stopPropagation();
      (blocked ? blocks.unblock(user.userId) : blocks.block(user)).catch(onerror);
    },
  });
}

/** In place of the composer: "You blocked Bob." with Unblock. */
export function blockedNote(blocks, user, onerror) {
  return el(
    'div',
    { class: 'blocked-note', role: 'status' },
    el('span', { text: `You blocked ${user.displayName}. They cannot message you, and you cannot message them until you unblock.` }),
    blockButton(blocks, user, onerror, { cls: 'link' }),
  );
}

/** The profile's list of blocked users, each with Unblock. */
export function blockedList(blocks, onerror) {
  const users = [...blocks.users.values()];
  if (!users.length) return [el('li', { class: 'muted', text: 'You block no one.' })];
  return users.map((u) =>
    el(
      'li',
      { 'data-user-id': u.userId },
      el('span', { class: 'member-name', text: u.displayName }),
      el('span', { class: 'muted', text: u.userName ? ` @${u.userName}` : '' }),
      blockButton(blocks, u, onerror, { cls: 'link' }),
    ),
  );
}
