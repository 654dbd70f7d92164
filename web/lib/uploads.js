// Photos and files (docs/openapi.yaml, "attachments"): what may be uploaded, sizes in
// words, and the upload itself.
//
// The flow: `POST /chats/{chatId}/attachments {fileName, contentType, size}` answers an
// attachment id and a presigned PUT; the file goes straight to S3 with exactly the
// signed headers (`putFile`, with progress); a message names the ids. Downloads are
// presigned GETs fetched into `blob:` URLs (the page's CSP allows images from `blob:`,
// not from the bucket's host). No DOM: `node --test web/test/unit/` checks it with a
// stand-in XMLHttpRequest.

/** The server's allow-list (shared/src/attachments.rs ALLOWED_TYPES). */
export const ALLOWED_TYPES = [
  'image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/heic', 'image/svg+xml',
  'application/pdf', 'text/plain', 'text/csv', 'text/html', 'application/zip',
  'application/msword', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.ms-powerpoint', 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text', 'application/vnd.oasis.opendocument.spreadsheet',
  'audio/mpeg', 'audio/mp4', 'audio/ogg', 'audio/wav', 'audio/webm', 'video/mp4', 'video/webm', 'video/quicktime',
];

/** The default upload limit (the deployment's MaxAttachmentBytes; the server says if lower). */
export const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
/** Attachments one message may carry. */
export const MAX_PER_MESSAGE = 10;

const BY_EXTENSION = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp',
  heic: 'image/heic', svg: 'image/svg+xml', pdf: 'application/pdf', txt: 'text/plain', csv: 'text/csv',
  html: 'text/html', htm: 'text/html', zip: 'application/zip', doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint', pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet', mp3: 'audio/mpeg', m4a: 'audio/mp4', ogg: 'audio/ogg',
  wav: 'audio/wav', weba: 'audio/webm', mp4: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime',
};

/** The content type to declare for a file: its own when allowed, else from its extension; null when not allowed. */
export function contentTypeFor(name, type) {
  const own = String(type || '').toLowerCase().split(';')[0].trim();
  if (ALLOWED_TYPES.includes(own)) return own;
  const ext = String(name || '').toLowerCase().split('.').pop();
  return BY_EXTENSION[ext] || null;
}

/** Raster images the server serves inline and the page previews. */
export function isPreviewable(contentType) {
  return ['image/jpeg', 'image/png', 'image/gif', 'image/webp'].includes(contentType);
}

/**
 * A file name the server accepts (1 to 255 characters, no path separators, quotes or
 * control characters): the offending characters become `_`; a pasted image without a
 * name gets one from its type.
 */
export function safeFileName(name, contentType) {
  let n = Array.from(String(name || ''))
    .map((ch) => (/[\u0000-\u001f\u007f-\u009f/\\"]/.test(ch) ? '_' : ch))
    .join('')
    .trim();
  if (!n) {
    const ext = Object.entries(BY_EXTENSION).find(([, t]) => t === contentType)?.[0] || 'bin';
    n = `pasted.${ext}`;
  }
  return Array.from(n).slice(0, 255).join('');
}

/** Bytes in words: "930 B", "12 KB", "3.4 MB". */
export function humanSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1000) return `${n} B`;
  if (n < 1000 * 1000) return `${Math.round(n / 1000)} KB`;
  if (n < 10 * 1000 * 1000) return `${(n / 1000 / 1000).toFixed(1)} MB`;
  return `${Math.round(n / 1000 / 1000)} MB`;
}

/** Why a file cannot be sent, in words; null when it can. */
export function refusal(file, maxBytes = MAX_UPLOAD_BYTES) {
  if (!contentTypeFor(file.name, file.type)) return `${file.name || 'This file'}: this kind of file cannot be sent.`;
  if (!file.size) return `${file.name || 'This file'} is empty.`;
  if (file.size > maxBytes) return `${file.name || 'This file'} is larger than ${humanSize(maxBytes)}.`;
  return null;
}

/** Headers a page may not set itself (the browser sets them: Content-Length from the body). */
const BROWSER_SET = new Set(['content-length', 'host', 'connection']);

/**
 * Upload `file` as the presigned `upload` says ({method, url, headers}), calling
 * `onprogress(fraction)` as bytes go out. Resolves when S3 answers 2xx; rejects with an
 * Error in words otherwise. XMLHttpRequest, because fetch reports no upload progress.
 */
export function putFile(upload, file, onprogress = () => {}, Xhr = globalThis.XMLHttpRequest) {
  return new Promise((resolve, reject) => {
    const xhr = new Xhr();
    xhr.open(upload.method || 'PUT', upload.url);
    for (const [k, v] of Object.entries(upload.headers || {})) {
      if (!BROWSER_SET.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable && ev.total) onprogress(ev.loaded / ev.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onprogress(1);
        resolve();
      } else reject(new Error(`The upload was refused (${xhr.status}).`));
    };
    xhr.onerror = () => reject(new Error('The upload failed: cannot reach the storage server.'));
    xhr.ontimeout = xhr.onerror;
    xhr.send(file);
  });
}

/** A message's attachments in a line, as the server previews them (shared/src/attachments.rs preview_text). */
export function attachmentsLine(refs) {
  if (!Array.isArray(refs) || !refs.length) return '';
  if (refs.every((r) => isPreviewable(r.contentType))) return refs.length === 1 ? '📷 Photo' : `📷 ${refs.length} photos`;
  return refs.length === 1 ? `📎 ${refs[0].fileName}` : `📎 ${refs[0].fileName} and ${refs.length - 1} more`;
}
