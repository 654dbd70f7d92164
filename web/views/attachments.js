// Photos and files on the page: the composer's tray of uploads (attach button, paste,
// drag and drop, a progress bar per file), the attachments inside a bubble (an image
// preview that opens a full view on click, a file chip with its size that downloads),
// and the full-size viewer.
//
// Uploads go through lib/uploads.js (presigned PUT straight to S3). Downloads: the API
// answers a short-lived presigned GET; the page fetches it into a `blob:` URL, cached
// per attachment, so that a re-rendered bubble does not fetch again and the CSP needs
// only `img-src blob:`. File names reach the page as text (views/dom.js `el`).

import { el } from './dom.js';
import { contentTypeFor, humanSize, isPreviewable, MAX_PER_MESSAGE, putFile, refusal, safeFileName } from '../lib/uploads.js';

let seq = 0;

/**
 * The uploads waiting in the composer, per chat. `api(method, path, body)` is the page's
 * authenticated request; `onchange()` re-renders what depends on it (the send button).
 */
export class UploadTray {
  constructor({ api, list, onchange = () => {}, onerror = () => {} }) {
    this.api = api;
    this.list = list;
    this.onchange = onchange;
    this.onerror = onerror;
    this.byChat = new Map(); // chatId -> [entry]
  }

  entries(chatId) {
    return this.byChat.get(chatId) || [];
  }

  /** Start uploading `files` (a FileList or array) to `chatId`. */
  add(chatId, files) {
    const list = this.byChat.get(chatId) || [];
    this.byChat.set(chatId, list);
    for (const file of Array.from(files || [])) {
      if (list.length >= MAX_PER_MESSAGE) {
        this.onerror(`At most ${MAX_PER_MESSAGE} photos or files per message.`);
        break;
      }
      const why = refusal(file);
      if (why) {
        this.onerror(why);
        continue;
      }
      const contentType = contentTypeFor(file.name, file.type);
      const entry = {
        key: `u${(seq += 1)}`,
        chatId,
        file,
        fileName: safeFileName(file.name, contentType),
        contentType,
        size: file.size,
        progress: 0,
        state: 'uploading',
        error: null,
        ref: null,
      };
      list.push(entry);
      this.upload(entry);
    }
    this.changed(chatId);
  }

  async upload(entry) {
    entry.state = 'uploading';
    entry.error = null;
    entry.progress = 0;
    this.changed(entry.chatId);
    try {
      const created = await this.api('POST', `/chats/${encodeURIComponent(entry.chatId)}/attachments`, {
        fileName: entry.fileName,
        contentType: entry.contentType,
        size: entry.size,
      });
      await putFile(created.upload, entry.file, (f) => {
        entry.progress = f;
        this.paintProgress(entry);
      });
      entry.ref = { attachmentId: created.attachmentId, fileName: entry.fileName, contentType: entry.contentType, size: entry.size };
      entry.state = 'ready';
    } catch (e) {
      entry.state = 'failed';
      entry.error = e.message;
    }
    this.changed(entry.chatId);
  }

  remove(chatId, key) {
    const list = this.entries(chatId).filter((e) => e.key !== key);
    if (list.length) this.byChat.set(chatId, list);
    else this.byChat.delete(chatId);
    this.changed(chatId);
  }

  /** 'empty', 'uploading', 'failed' or 'ready' (every upload done). */
  state(chatId) {
    const list = this.entries(chatId);
    if (!list.length) return 'empty';
    if (list.some((e) => e.state === 'failed')) return 'failed';
    if (list.some((e) => e.state === 'uploading')) return 'uploading';
    return 'ready';
  }

  /** The uploaded refs for a message; the tray of that chat empties. */
  take(chatId) {
    const refs = this.entries(chatId).filter((e) => e.state === 'ready').map((e) => e.ref);
    this.byChat.delete(chatId);
    this.changed(chatId);
    return refs;
  }

  changed(chatId) {
    if (this.shown === chatId || this.shown === undefined) this.render(chatId);
    this.onchange(chatId);
  }

  paintProgress(entry) {
    const bar = this.list.querySelector(`li[data-key="${entry.key}"] progress`);
    if (bar) bar.value = entry.progress;
  }

  /** Show the tray of `chatId` (the chat on screen). */
  render(chatId) {
    this.shown = chatId;
    const list = chatId ? this.entries(chatId) : [];
    this.list.hidden = !list.length;
    this.list.replaceChildren(
      ...list.map((e) =>
        el(
          'li',
          { class: `upload ${e.state}`, 'data-key': e.key, 'data-state': e.state },
          el('span', { class: 'file-icon', 'aria-hidden': 'true', text: isPreviewable(e.contentType) ? '🖼' : '📄' }),
          el(
            'span',
            { class: 'upload-main' },
            el('span', { class: 'file-name', text: e.fileName }),
            el('span', { class: 'file-size muted', text: e.state === 'failed' ? e.error : humanSize(e.size) }),
            e.state === 'uploading'
              ? el('progress', { max: '1', value: String(e.progress), 'aria-label': `Uploading ${e.fileName}` })
              : null,
          ),
          e.state === 'failed'
            ? el('button', { type: 'button', class: 'link', text: 'Retry', onclick: () => this.upload(e) })
            : null,
          el('button', {
            type: 'button',
            class: 'link remove-upload',
            'aria-label': `Remove ${e.fileName}`,
            text: '×',
            onclick: () => this.remove(chatId, e.key),
          }),
        ),
      ),
    );
  }
}

/**
 * Downloads as `blob:` URLs, one fetch per attachment (and per thumbnail).
 * `api(method, path)` answers `{url, ...}` (the presigned GET).
 */
export class Downloads {
  constructor(api) {
    this.api = api;
    this.cache = new Map(); // `${kind}:${attachmentId}` -> Promise<string>
  }

  path(chatId, ref, thumb) {
    return `/chats/${encodeURIComponent(chatId)}/attachments/${encodeURIComponent(ref.attachmentId)}${thumb ? '/thumbnail' : ''}`;
  }

  async blobUrl(chatId, ref, thumb) {
    const link = await this.api('GET', this.path(chatId, ref, thumb));
    const res = await fetch(link.url);
    if (!res.ok) throw new Error(`The download was refused (${res.status}).`);
    return URL.createObjectURL(await res.blob());
  }

  /** The full image as a `blob:` URL. */
  full(chatId, ref) {
    const k = `full:${ref.attachmentId}`;
    if (!this.cache.has(k)) {
      const p = this.blobUrl(chatId, ref, false);
      p.catch(() => this.cache.delete(k));
      this.cache.set(k, p);
    }
    return this.cache.get(k);
  }

  /** The preview: the thumbnail, or the image itself while there is none (404). */
  preview(chatId, ref) {
    const k = `thumb:${ref.attachmentId}`;
    if (!this.cache.has(k)) {
      const p = this.blobUrl(chatId, ref, true).catch((e) => {
        if (e.status === 404 && ref.size <= 5 * 1024 * 1024) return this.full(chatId, ref);
        throw e;
      });
      p.catch(() => this.cache.delete(k));
      this.cache.set(k, p);
    }
    return this.cache.get(k);
  }

  /**
   * Save a file: fetched into a `blob:` URL and handed to a same-origin anchor with
   * `download`, so the browser saves it under its name and the page never navigates
   * (a cross-origin link would ignore `download`).
   */
  async save(chatId, ref) {
    const url = await this.blobUrl(chatId, ref, false);
    const a = el('a', { href: url, download: ref.fileName, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }
}

/** The full-size viewer (one dialog, made on first use). */
function viewer() {
  let d = document.getElementById('image-viewer');
  if (d) return d;
  d = el(
    'dialog',
    { id: 'image-viewer', class: 'viewer', 'aria-label': 'Photo' },
    el('img', { id: 'viewer-image', alt: '' }),
    el(
      'div',
      { class: 'viewer-bar' },
      el('span', { id: 'viewer-name' }),
      el('button', { type: 'button', id: 'viewer-close', class: 'primary', text: 'Close', onclick: () => d.close() }),
    ),
  );
  d.addEventListener('click', (ev) => {
    if (ev.target === d) d.close();
  });
  document.body.append(d);
  return d;
}

function openViewer(downloads, chatId, ref, onerror) {
  const d = viewer();
  const img = d.querySelector('#viewer-image');
  img.removeAttribute('src');
  img.alt = ref.fileName;
  d.querySelector('#viewer-name').textContent = `${ref.fileName} · ${humanSize(ref.size)}`;
  d.showModal();
  downloads
    .full(chatId, ref)
    .then((u) => {
      img.src = u;
    })
    .catch((e) => onerror(`Could not open ${ref.fileName}: ${e.message}`));
}

/** A file chip: icon, name, size; a click downloads it. */
function fileChip(downloads, chatId, ref, onerror) {
  return el(
    'button',
    {
      type: 'button',
      class: 'att-file',
      'data-attachment-id': ref.attachmentId,
      title: `Download ${ref.fileName}`,
      onclick: (ev) => {
        ev.stopPropagation();
        downloads.save(chatId, ref).catch((e) => onerror(`Could not download ${ref.fileName}: ${e.message}`));
      },
    },
    el('span', { class: 'file-icon', 'aria-hidden': 'true', text: '📄' }),
    el('span', { class: 'file-name', text: ref.fileName }),
    el('span', { class: 'file-size', text: humanSize(ref.size) }),
  );
}

/**
 * The attachments of one message as a node (null when none): images as previews that
 * open the viewer, other files as chips. An image whose preview cannot be loaded turns
 * into a file chip.
 */
export function attachmentsView(downloads, chatId, refs, onerror = () => {}) {
  if (!Array.isArray(refs) || !refs.length) return null;
  return el(
    'div',
    { class: 'attachments' },
    ...refs.map((ref) => {
      if (!isPreviewable(ref.contentType)) return fileChip(downloads, chatId, ref, onerror);
      const img = el('img', { alt: ref.fileName, class: 'att-preview' });
      const button = el(
        'button',
        {
          type: 'button',
          class: 'att-image loading',
          'data-attachment-id': ref.attachmentId,
          'aria-label': `Open ${ref.fileName}`,
          onclick: (ev) => {
            ev.stopPropagation();
            openViewer(downloads, chatId, ref, onerror);
          },
        },
        img,
      );
      downloads
        .preview(chatId, ref)
        .then((u) => {
          img.src = u;
          button.classList.remove('loading');
        })
        .catch(() => button.replaceWith(fileChip(downloads, chatId, ref, onerror)));
      return button;
    }),
  );
}

/**
 * Files dropped on `target` or pasted into `input` go to `add(files)`. Only drags that
 * carry files are taken (dragging text into the composer still works).
 */
export function acceptFiles(target, input, add) {
  const hasFiles = (ev) => ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes('Files');
  target.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    target.classList.add('dropping');
  });
  target.addEventListener('dragleave', (ev) => {
    if (ev.target === target) target.classList.remove('dropping');
  });
  target.addEventListener('drop', (ev) => {
    target.classList.remove('dropping');
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    add(ev.dataTransfer.files);
  });
  input.addEventListener('paste', (ev) => {
    const files = ev.clipboardData ? Array.from(ev.clipboardData.files || []) : [];
    if (!files.length) return;
    ev.preventDefault();
    add(files);
  });
}
