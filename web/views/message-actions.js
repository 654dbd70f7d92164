// What a user can do to a message already sent (docs/protocol.md `editMessage`,
// `deleteMessage`; REST `PATCH` / `DELETE /chats/{chatId}/messages/{position}`): the
// "⋯" menu on a bubble (Edit for the author, Delete for everyone for the author or a
// group admin, with a second click to confirm), the composer's edit mode, and applying
// a changed message (an event, a sync page's `changed`, a REST answer) to what the page
// holds.
//
// Edits and deletions go over REST: one request, its answer is the message as it is
// now; the other members (and the user's other devices) get `messageEdited` /
// `messageDeleted` over the WebSocket. Texts reach the page as text (views/dom.js).

import { el } from './dom.js';

/** The "⋯" button and its menu; null when nothing may be done. */
export function actionsMenu({ canEdit, canDelete, onedit, ondelete }) {
  if (!canEdit && !canDelete) return null;
  const menu = el('div', { class: 'msg-menu', role: 'menu', hidden: true });
  const close = () => {
    menu.hidden = true;
    document.removeEventListener('click', close);
  };
  if (canEdit) {
    menu.append(el('button', { type: 'button', role: 'menuitem', class: 'edit-message', text: 'Edit', onclick: (ev) => { ev.stopPropagation(); close(); onedit(); } }));
  }
  if (canDelete) {
    const del = el('button', {
      type: 'button',
      role: 'menuitem',
      class: 'delete-message danger',
      text: 'Delete',
      onclick: (ev) => {
        ev.stopPropagation();
        // First click asks, the second deletes (no browser confirm() dialog).
        if (del.dataset.confirm !== 'yes') {
          del.dataset.confirm = 'yes';
          del.textContent = 'Delete for everyone';
          return;
        }
        close();
        ondelete();
      },
    });
    menu.append(del);
  }
  const button = el('button', {
    type: 'button',
    class: 'link msg-actions',
    'aria-label': 'Message actions',
    'aria-haspopup': 'menu',
    text: '⋯',
    onclick: (ev) => {
      ev.stopPropagation();
      const opening = menu.hidden;
      document.querySelectorAll('.msg-menu:not([hidden])').forEach((m) => { m.hidden = true; });
      menu.hidden = !opening;
      if (opening) setTimeout(() => document.addEventListener('click', close), 0);
    },
  });
  return el('span', { class: 'msg-actions-wrap' }, button, menu);
}

/**
 * The composer's edit mode: a bar above it ("Editing your message · Cancel"), the
 * composer holding the text; `submit()` saves through `api`. `bar` is the bar's
 * element, `box` the textarea.
 */
export class EditMode {
  constructor({ api, bar, box, onsaved, onerror }) {
    this.api = api;
    this.bar = bar;
    this.box = box;
    this.onsaved = onsaved;
    this.onerror = onerror;
    this.target = null; // { chatId, position, before }
  }

  get active() {
    return this.target !== null;
  }

  /** Start editing message `m` of `chatId`. */
  start(chatId, m) {
    this.target = { chatId, position: m.position, before: this.box.value };
    this.box.value = m.text || '';
    this.render(chatId);
    this.box.focus();
  }

  cancel() {
    if (!this.target) return;
    this.box.value = this.target.before;
    this.target = null;
    this.render(null);
  }

  /** Show the bar for the chat on screen (an edit belongs to one chat). */
  render(chatId) {
    const on = !!this.target && this.target.chatId === chatId;
    this.bar.hidden = !on;
    this.bar.replaceChildren(
      ...(on
        ? [
            el('span', { text: 'Editing your message' }),
            el('button', { type: 'button', class: 'link', id: 'edit-cancel', text: 'Cancel', onclick: () => this.cancel() }),
          ]
        : []),
    );
  }

  /** Save the composer's text as the message's new text. */
  async submit() {
    const t = this.target;
    const text = this.box.value;
    if (!t || !text.trim()) return;
    this.box.value = t.before;
    this.target = null;
    this.render(null);
    try {
      const m = await this.api('PATCH', `/chats/${encodeURIComponent(t.chatId)}/messages/${t.position}`, { text });
      this.onsaved(t.chatId, m);
    } catch (e) {
      this.onerror(`Could not edit the message: ${e.message}`);
    }
  }
}

/** Delete message `position` of `chatId` for everyone; resolves to the tombstone. */
export async function deleteForEveryone(api, chatId, position) {
  return api('DELETE', `/chats/${encodeURIComponent(chatId)}/messages/${position}`);
}
