// Unit tests of web/lib/uploads.js (what may be uploaded, sizes in words, the presigned
// PUT with progress) and of the outbox keeping a message's attachments across a reload.
// Run: node --test web/test/unit/
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ALLOWED_TYPES,
  attachmentsLine,
  contentTypeFor,
  humanSize,
  isPreviewable,
  putFile,
  refusal,
  safeFileName,
} from '../../lib/uploads.js';
import { Outbox } from '../../lib/outbox.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

/** A stand-in XMLHttpRequest that records what was sent and answers `status`. */
function fakeXhr(status, { fail = false } = {}) {
  const made = [];
  class Xhr {
    constructor() {
      this.headers = {};
      this.upload = {};
      made.push(this);
    }
    open(method, url) { this.method = method; this.url = url; }
    setRequestHeader(k, v) { this.headers[k] = v; }
    send(body) {
      this.body = body;
      queueMicrotask(() => {
        if (fail) return this.onerror();
        this.upload.onprogress({ lengthComputable: true, loaded: 5, total: 10 });
        this.status = status;
        this.onload();
      });
    }
  }
  return { Xhr, made };
}

describe('uploads', () => {
  it('allows exactly the types the server allows', () => {
    const src = readFileSync(path.join(root, 'shared/src/attachments.rs'), 'utf8');
    const list = src.slice(src.indexOf('pub const ALLOWED_TYPES'), src.indexOf('];', src.indexOf('pub const ALLOWED_TYPES')));
    const server = [...list.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    assert.ok(server.length > 20, 'the server list was found');
    assert.deepEqual([...ALLOWED_TYPES].sort(), [...server].sort());
  });

  it('declares a file’s own type when allowed, else one from its extension, else none', () => {
    assert.equal(contentTypeFor('a.png', 'image/png'), 'image/png');
    assert.equal(contentTypeFor('Scan.PDF', ''), 'application/pdf');
    assert.equal(contentTypeFor('notes.txt', 'text/plain; charset=utf-8'), 'text/plain');
    assert.equal(contentTypeFor('tool.exe', 'application/x-msdownload'), null);
    assert.equal(contentTypeFor('x', ''), null);
    assert.ok(isPreviewable('image/webp'));
    assert.ok(!isPreviewable('image/svg+xml'), 'SVG is a download, never inline');
  });

  it('makes a file name the server accepts', () => {
    assert.equal(safeFileName('a/b\\c"d\u0001e\u0085.png', 'image/png'), 'a_b_c_d_e_.png');
    assert.equal(safeFileName('', 'image/png'), 'pasted.png');
    assert.equal(safeFileName('   ', 'application/pdf'), 'pasted.pdf');
    assert.equal(Array.from(safeFileName('é'.repeat(300), 'text/plain')).length, 255);
  });

  it('says sizes and refusals in words', () => {
    assert.equal(humanSize(930), '930 B');
    assert.equal(humanSize(12_345), '12 KB');
    assert.equal(humanSize(3_400_000), '3.4 MB');
    assert.equal(humanSize(25 * 1024 * 1024), '26 MB');
    assert.equal(refusal({ name: 'a.png', type: 'image/png', size: 10 }), null);
    assert.match(refusal({ name: 'big.mp4', type: 'video/mp4', size: 26 * 1024 * 1024 }), /big\.mp4 is larger than/);
    assert.match(refusal({ name: 'run.exe', type: '', size: 10 }), /cannot be sent/);
    assert.match(refusal({ name: 'e.txt', type: 'text/plain', size: 0 }), /empty/);
  });

  it('previews attachments in a line as the server does', () => {
    const img = { attachmentId: 'att_1', fileName: 'a.png', contentType: 'image/png', size: 1 };
    const pdf = { attachmentId: 'att_2', fileName: 'q.pdf', contentType: 'application/pdf', size: 1 };
    assert.equal(attachmentsLine([img]), '📷 Photo');
    assert.equal(attachmentsLine([img, img]), '📷 2 photos');
    assert.equal(attachmentsLine([pdf]), '📎 q.pdf');
    assert.equal(attachmentsLine([pdf, img]), '📎 q.pdf and 1 more');
    assert.equal(attachmentsLine(undefined), '');
  });

  it('PUTs with the signed headers (not those the browser sets), reports progress, resolves on 2xx', async () => {
    const { Xhr, made } = fakeXhr(200);
    const seen = [];
    const file = { size: 10 };
    await putFile(
      { method: 'PUT', url: 'http://s3/x?sig', headers: { 'content-type': 'image/png', 'content-length': '10', 'x-amz-tagging': 'state=pending' } },
      file,
      (f) => seen.push(f),
      Xhr,
    );
    assert.equal(made[0].method, 'PUT');
    assert.equal(made[0].url, 'http://s3/x?sig');
    assert.deepEqual(made[0].headers, { 'content-type': 'image/png', 'x-amz-tagging': 'state=pending' });
    assert.equal(made[0].body, file);
    assert.deepEqual(seen, [0.5, 1]);
  });

  it('rejects in words when S3 refuses or cannot be reached', async () => {
    await assert.rejects(putFile({ url: 'u', headers: {} }, {}, () => {}, fakeXhr(403).Xhr), /refused \(403\)/);
    await assert.rejects(putFile({ url: 'u', headers: {} }, {}, () => {}, fakeXhr(0, { fail: true }).Xhr), /cannot reach/);
  });

  it('the outbox keeps a message’s attachments across a reload', () => {
    const storage = new MemoryStorage();
    const refs = [{ attachmentId: 'att_01', fileName: 'a.png', contentType: 'image/png', size: 3 }];
    const o = new Outbox(storage, 'k');
    o.add('dm_x', 'c1', '', 5, refs);
    o.add('dm_x', 'c2', 'plain');
    const again = new Outbox(storage, 'k');
    const [first, second] = again.ofChat('dm_x');
    assert.deepEqual(first.attachments, refs);
    assert.equal(first.text, '');
    assert.equal(second.attachments, undefined);
  });
});
