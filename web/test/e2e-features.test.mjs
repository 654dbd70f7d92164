// Browser test of the features around messages (issues #20, #21, #22) against the whole
// local stack (web/test/e2e-harness.mjs): photos and files (attach button, paste, drag
// and drop, progress, previews, the viewer, file chips), and what else of block/report
// and message actions the API offers. Two users, each in their own browser context.
//
// Run: node --test web/test/   (scripts/web-e2e.sh installs everything first)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { humanSize } from '../lib/uploads.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { harness, root, openChat, register, sendText, shot, startDirect, waitMessage, waitOwnState } from './e2e-harness.mjs';

const h = harness('feat');
// Message edits (#20) are tested once the API in this tree has them.
const EDITS = readFileSync(path.join(root, 'docs/openapi.yaml'), 'utf8').includes('/chats/{chatId}/messages/{position}:');
const alice = h.user('alice', 'Alice');
const bob = h.user('bob', 'Bob');

// ------------------------------------------------------------------ test files

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** A real `width`×`height` RGB PNG (a colour gradient). */
function png(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) {
      row[1 + x * 3] = (x * 4) & 0xff;
      row[2 + x * 3] = (y * 4) & 0xff;
      row[3 + x * 3] = 160;
    }
    rows.push(row);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');

/** Wait until the upload tray holds `n` uploads, all done. */
async function uploadsReady(page, n) {
  await page.waitForFunction(
    (count) => {
      const items = [...document.querySelectorAll('#upload-tray li.upload')];
      return items.length === count && items.every((li) => li.dataset.state === 'ready');
    },
    n,
  );
}

/** Files given to the page as a drop on the conversation or a paste into the composer. */
async function giveFiles(page, how, files) {
  await page.evaluate(
    ([kind, list]) => {
      const dt = new DataTransfer();
      for (const f of list) dt.items.add(new File([new Uint8Array(f.bytes)], f.name, { type: f.type }));
      if (kind === 'drop') {
        const conv = document.getElementById('conv');
        conv.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        conv.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      } else {
        const box = document.getElementById('composer-text');
        box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      }
    },
    [how, files.map((f) => ({ ...f, bytes: [...f.bytes] }))],
  );
}

// ------------------------------------------------------------------ the test

describe('message features in a real browser', { timeout: 10 * 60 * 1000 }, () => {
  before(async () => {
    await h.start();
  });
  after(async () => {
    await h.stop();
  });

  it('Alice and Bob register and open a direct chat', async () => {
    const a = await h.newPage('alice');
    await register(a, alice);
    const b = await h.newPage('bob');
    await register(b, bob);
    await startDirect(a, bob);
    await sendText(a, 'photos coming');
    await openChat(b, 'Alice');
    await waitMessage(b, 'photos coming');
  });

  it('Alice attaches a photo (with a progress bar) and Bob sees it, and opens it full size', async () => {
    const a = h.pages.alice;
    const b = h.pages.bob;
    const photo = png(96, 64);
    // Hold the upload to S3 until the progress bar has been seen.
    let releaseUpload;
    const held = new Promise((r) => { releaseUpload = r; });
    await a.route((url) => url.port !== new URL(h.stack.httpUrl).port && url.pathname.includes('/chats/'), async (route) => {
      if (route.request().method() !== 'PUT') return route.continue();
      await held;
      return route.continue();
    });
    await a.click('#attach'); // the button opens the file picker (here: the hidden input)
    await a.setInputFiles('#attach-input', { name: 'sunset.png', mimeType: 'image/png', buffer: photo });
    await a.waitForSelector('#upload-tray li.upload[data-state="uploading"] progress');
    assert.equal(await a.textContent('#upload-tray .file-name'), 'sunset.png');
    assert.equal(await a.isDisabled('#send'), true, 'no send while uploading');
    assert.equal(await a.textContent('#send'), 'Uploading…');
    await shot(a, 'features-alice-uploading');
    releaseUpload();
    await uploadsReady(a, 1);
    await a.unrouteAll();
    assert.equal(await a.isDisabled('#send'), false);
    await sendText(a, 'the view from the top');
    await waitOwnState(a, 'the view from the top', 'read');
    assert.equal(await a.isVisible('#upload-tray'), false, 'the tray empties on send');

    // Bob: the photo in the bubble, above the caption, decoded (a real image).
    await waitMessage(b, 'the view from the top');
    const bubble = b.locator('#message-list li.msg', { hasText: 'the view from the top' });
    const img = bubble.locator('.att-image img');
    await img.waitFor();
    await b.waitForFunction(() => document.querySelector('#message-list .att-image img')?.naturalWidth > 0);
    const [w, hgt] = await img.evaluate((n) => [n.naturalWidth, n.naturalHeight]);
    assert.ok(w > 0 && hgt > 0 && Math.abs(w / hgt - 96 / 64) < 0.05, `preview ${w}x${hgt} keeps the 3:2 shape`);
    assert.match(await img.getAttribute('src'), /^blob:/);
    assert.equal(await img.getAttribute('alt'), 'sunset.png');
    await shot(b, 'features-bob-photo');
    // A click opens the full view with the original image.
    await bubble.locator('.att-image').click();
    await b.waitForSelector('#image-viewer[open]');
    await b.waitForFunction(() => document.getElementById('viewer-image').naturalWidth === 96);
    assert.equal(await b.textContent('#viewer-name'), `sunset.png · ${humanSize(photo.length)}`);
    await shot(b, 'features-bob-photo-viewer');
    await b.click('#viewer-close');
    await b.waitForSelector('#image-viewer', { state: 'hidden' });
    // The chat list says what it was.
    assert.equal(await a.textContent('#chat-list .chat-item.active .chat-item-preview'), 'You: the view from the top');
  });

  it('a PDF dropped on the chat goes as a file chip with its size; a pasted photo goes without text', async () => {
    const a = h.pages.alice;
    const b = h.pages.bob;
    await giveFiles(a, 'drop', [{ name: 'route "topo".pdf', type: 'application/pdf', bytes: PDF }]);
    await uploadsReady(a, 1);
    // The name the server accepts: quotes become underscores.
    assert.equal(await a.textContent('#upload-tray .file-name'), 'route _topo_.pdf');
    await a.press('#composer-text', 'Enter');
    const chip = b.locator('#message-list .att-file', { hasText: 'route _topo_.pdf' });
    await chip.waitFor();
    assert.equal(await chip.locator('.file-size').textContent(), `${PDF.length} B`);
    await b.waitForFunction(() => document.querySelector('#chat-list .chat-item.active .chat-item-preview')?.textContent === '📎 route _topo_.pdf');
    // Bob downloads it: the presigned link answers the bytes, as an attachment.
    const [download] = await Promise.all([b.waitForEvent('download'), chip.click()]);
    assert.equal(download.suggestedFilename(), 'route _topo_.pdf');
    const saved = await download.createReadStream();
    const parts = [];
    for await (const p of saved) parts.push(p);
    assert.deepEqual(Buffer.concat(parts), PDF);

    await a.click('#composer-text');
    await giveFiles(a, 'paste', [{ name: 'image.png', type: 'image/png', bytes: png(20, 20) }]);
    await uploadsReady(a, 1);
    await a.press('#composer-text', 'Enter');
    await b.waitForFunction(() => document.querySelectorAll('#message-list .att-image img').length === 2);
    await b.waitForFunction(() => document.querySelector('#chat-list .chat-item.active .chat-item-preview')?.textContent === '📷 Photo');
    await shot(b, 'features-bob-files');
  });

  it('a file the server would refuse is refused in words before any upload', async () => {
    const a = h.pages.alice;
    await a.setInputFiles('#attach-input', { name: 'tool.exe', mimeType: 'application/x-msdownload', buffer: Buffer.from('MZ') });
    await a.waitForSelector('#banner:not([hidden])');
    assert.equal(await a.textContent('#banner-text'), 'tool.exe: this kind of file cannot be sent.');
    assert.equal(await a.isVisible('#upload-tray'), false);
    await a.click('#banner-close');
  });

  it('Alice blocks Bob from the chat info: his message is refused in words; she unblocks from her profile and his retry arrives', async () => {
    const a = h.pages.alice;
    const b = h.pages.bob;
    await a.click('#chat-info');
    await a.waitForSelector('#info-dialog[open]');
    await a.click('#info-block-slot button.block');
    await a.waitForSelector('#info-block-slot button.unblock').catch(async (e) => {
      throw new Error(`${e.message}; info error: ${await a.textContent('#info-error')}`);
    });
    await a.click('#info-close');
    // The composer gives way to a note that says so, with Unblock.
    await a.waitForSelector('#blocked-note-slot:not([hidden]) .blocked-note');
    assert.equal(await a.isVisible('#composer'), false);
    assert.match(await a.textContent('#blocked-note-slot'), /^You blocked Bob\./);
    await shot(a, 'features-alice-blocked-bob');
    // Bob's message is refused by the server, and he is told why.
    await sendText(b, 'are you there?');
    await waitOwnState(b, 'are you there?', 'failed');
    const label = await b.locator('#message-list li.msg.own[data-state="failed"] .status-label').textContent();
    assert.match(label, /has blocked you/);
    // Alice unblocks Bob from her profile's blocked list.
    await a.click('#profile');
    await a.waitForSelector('#profile-dialog[open]');
    const row = a.locator('#profile-blocks li', { hasText: 'Bob' });
    await row.waitFor();
    await shot(a, 'features-alice-blocked-list');
    await row.locator('button.unblock').click();
    await a.waitForFunction(() => document.getElementById('profile-blocks').textContent === 'You block no one.');
    await a.click('#profile-close');
    await a.waitForSelector('#composer:not([hidden])');
    assert.equal(await a.isVisible('#blocked-note-slot'), false);
    // Bob taps his failed message to send it again: it arrives.
    await b.locator('#message-list li.msg.own[data-state="failed"]').click();
    await waitMessage(a, 'are you there?');
    await waitOwnState(b, 'are you there?', 'read');
  });

  it('Alice edits a message (both see "edited"), deletes another for everyone (a tombstone on both sides), and Bob catches up on an edit made while he was offline', { skip: EDITS ? false : 'the API has no message edits yet (#20)' }, async () => {
    const a = h.pages.alice;
    const b = h.pages.bob;
    const bubble = (page, text) => page.locator('#message-list li.msg', { has: page.locator('.text', { hasText: new RegExp(`^${text}$`) }) });
    await sendText(a, 'see you at 5');
    await sendText(a, 'wrong chat, sorry');
    await waitMessage(b, 'wrong chat, sorry');
    // Edit: the text goes back to the composer under the edit bar; Enter saves.
    await bubble(a, 'see you at 5').locator('.msg-actions').click();
    await bubble(a, 'see you at 5').locator('.edit-message').click();
    await a.waitForSelector('#edit-bar:not([hidden])');
    assert.equal(await a.inputValue('#composer-text'), 'see you at 5');
    await a.fill('#composer-text', 'see you at 6');
    await a.press('#composer-text', 'Enter');
    for (const p of [a, b]) {
      await waitMessage(p, 'see you at 6');
      await bubble(p, 'see you at 6').locator('.edited').waitFor();
      assert.equal(await bubble(p, 'see you at 5').count(), 0);
    }
    assert.equal(await a.isVisible('#edit-bar'), false);
    assert.equal(await a.inputValue('#composer-text'), '');
    // Delete for everyone: a second click confirms; a tombstone stays in place.
    const pos = await bubble(a, 'wrong chat, sorry').getAttribute('data-position');
    await bubble(a, 'wrong chat, sorry').locator('.msg-actions').click();
    await bubble(a, 'wrong chat, sorry').locator('.delete-message').click();
    assert.equal(await bubble(a, 'wrong chat, sorry').locator('.delete-message').textContent(), 'Delete for everyone');
    await bubble(a, 'wrong chat, sorry').locator('.delete-message').click();
    for (const p of [a, b]) {
      await p.waitForSelector(`#message-list li.msg.deleted[data-position="${pos}"] .tombstone`);
      assert.equal(await p.textContent(`#message-list li.msg.deleted[data-position="${pos}"] .tombstone`), 'Message deleted');
      assert.equal(await bubble(p, 'wrong chat, sorry').count(), 0);
    }
    await b.waitForFunction(() => document.querySelector('#chat-list .chat-item.active .chat-item-preview')?.textContent === 'Message deleted');
    await shot(b, 'features-bob-edited-deleted');
    // Bob is offline while Alice edits again: his sync brings the change, once.
    await b.evaluate(() => window.__chat.dropConnection({ hold: true }));
    await b.waitForSelector('#conn[data-state="reconnecting"]');
    await bubble(a, 'see you at 6').locator('.msg-actions').click();
    await bubble(a, 'see you at 6').locator('.edit-message').click();
    await a.fill('#composer-text', 'see you at 7');
    await a.press('#composer-text', 'Enter');
    await waitMessage(a, 'see you at 7');
    await b.evaluate(() => window.__chat.release());
    await waitMessage(b, 'see you at 7');
    assert.equal(await bubble(b, 'see you at 6').count(), 0);
  });

  it('no page errors and no dialogs', () => {
    assert.deepEqual(h.pageErrors, []);
    assert.deepEqual(h.dialogs, []);
  });
});
