// What the chat list and the conversation are made of, as functions from data to DOM:
// a chat item, a message bubble, a separator. They hold no state and fetch nothing;
// app.js decides what to show and when, and keeps the nodes to reuse them. Edits,
// replies, reactions and attachments (later issues) slot in as more fields of the
// `view` objects these take.

import { el } from './dom.js';
import { clockTime, folded, linkify } from '../lib/format.js';

/** A text as nodes: http(s) links clickable (new tab, no referrer, no opener), the rest text. */
export function textNodes(text) {
  return linkify(text).map((part) =>
    part.href ? el('a', { href: part.href, target: '_blank', rel: 'noopener noreferrer', text: part.text }) : part.text,
  );
}

/** A round avatar with an initial; direct chats get a presence dot. */
export function avatar({ name, group, online = false, presenceText = undefined }) {
  const initial = Array.from(name.trim())[0] || '?';
  return el(
    'span',
    { class: `avatar${group ? ' group' : ''}`, 'aria-hidden': 'true' },
    el('span', { class: 'initial', text: initial.toUpperCase() }),
    group ? null : el('span', { class: `dot${online ? ' online' : ''}`, title: presenceText }),
  );
}

/**
 * One entry of the chat list.
 * view: { chatId, name, group, online, presenceText, muted, time, preview, typing, unread, active }
 */
export function chatItem(view, onopen) {
  return el(
    'li',
    {},
    el(
      'button',
      {
        type: 'button',
        class: `chat-item${view.active ? ' active' : ''}`,
        'data-chat-id': view.chatId,
        'aria-current': view.active ? 'true' : undefined,
        onclick: onopen,
      },
      avatar(view),
      el(
        'span',
        { class: 'chat-item-main' },
        el(
          'span',
          { class: 'chat-item-top' },
          el('span', { class: 'chat-item-name', text: view.name }),
          view.muted ? el('span', { class: 'muted-icon', title: 'Muted', 'aria-label': 'muted', text: '🔕' }) : null,
          el('span', { class: 'chat-item-time muted', text: view.time }),
        ),
        el(
          'span',
          { class: 'chat-item-bottom' },
          el('span', { class: `chat-item-preview${view.typing ? ' typing-text' : ''}`, text: view.preview }),
          view.unread > 0 ? el('span', { class: 'badge', 'aria-label': `${view.unread} unread`, text: String(view.unread) }) : null,
        ),
      ),
    ),
  );
}

/** A centred line between messages: a day ("Today", "2 Dec") or the unread divider. */
export function separator(cls, text) {
  return el('li', { class: `separator ${cls}`, role: cls === 'day-separator' ? 'separator' : undefined }, el('span', { text }));
}

/** A system message ("You added Carol"). */
export function systemMessage(position, text) {
  return el('li', { class: 'msg system', 'data-position': position }, el('span', { class: 'text', text }));
}

/**
 * A message bubble.
 * view: { position, clientMessageId, own, text, sentAt, senderName (shown when set),
 *         state: { state, label } for own messages,
 *         attachments: a node (views/attachments.js) above the text, or null,
 *         edited: shows "edited", deleted: a tombstone ("Message deleted"),
 *         actions: the "⋯" menu (views/message-actions.js) or null }
 * A message with attachments and no text has no text line.
 * onretry: called on a click on a failed own message; ondiscard: its Delete button.
 */
export function messageBubble(view, onretry, ondiscard) {
  const st = view.state;
  if (view.deleted) {
    return el(
      'li',
      { class: `msg deleted${view.own ? ' own' : ''}`, 'data-position': view.position || undefined },
      el(
        'div',
        { class: 'bubble' },
        view.senderName ? el('div', { class: 'sender', text: view.senderName }) : null,
        el('div', { class: 'tombstone', text: 'Message deleted' }),
        el('div', { class: 'meta' }, el('time', { datetime: view.sentAt || undefined, text: view.sentAt ? clockTime(view.sentAt) : '' })),
      ),
    );
  }
  const short = folded(view.text || '');
  const li = el(
    'li',
    {
      class: `msg${view.own ? ' own' : ''}`,
      'data-position': view.position || undefined,
      'data-state': st ? st.state : undefined,
      'data-client-id': view.own ? view.clientMessageId : undefined,
    },
    el(
      'div',
      { class: 'bubble' },
      view.senderName ? el('div', { class: 'sender', text: view.senderName }) : null,
      view.attachments || null,
      view.attachments && !view.text ? null : el('div', { class: `text${short ? ' folded' : ''}` }, ...textNodes(view.text || '')),
      short
        ? el('button', {
            type: 'button',
            class: 'link read-more',
            text: 'Read more',
            onclick: (ev) => {
              ev.stopPropagation();
              ev.currentTarget.previousElementSibling.classList.remove('folded');
              ev.currentTarget.remove();
            },
          })
        : null,
      el(
        'div',
        { class: 'meta' },
        view.actions || null,
        view.edited ? el('span', { class: 'edited', title: typeof view.edited === 'string' ? new Date(view.edited).toLocaleString() : undefined, text: 'edited' }) : null,
        el('time', {
          datetime: view.sentAt || undefined,
          title: view.sentAt ? new Date(view.sentAt).toLocaleString() : undefined,
          text: view.sentAt ? clockTime(view.sentAt) : '',
        }),
        st
          ? el(
              'span',
              { class: 'status', 'aria-label': st.label, title: st.label },
              el('span', { class: 'ticks', 'aria-hidden': 'true' }),
              el('span', { class: 'status-label', text: st.label }),
            )
          : null,
        st && st.state === 'failed' && ondiscard
          ? el('button', {
              type: 'button',
              class: 'link discard',
              text: 'Delete',
              'aria-label': 'Delete this unsent message',
              onclick: (ev) => {
                ev.stopPropagation();
                ondiscard();
              },
            })
          : null,
      ),
    ),
  );
  if (view.own && st && st.state === 'failed' && onretry) li.addEventListener('click', onretry);
  return li;
}
