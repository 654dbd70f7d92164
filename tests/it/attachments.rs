//! Attachments end to end, through the public APIs only: a member asks for an upload
//! (`POST /chats/{chatId}/attachments`), puts real bytes to S3 (moto locally) through
//! the presigned URL with exactly the headers it was given, sends a message naming the
//! attachment, and the partner receives it over the WebSocket and downloads the same
//! bytes through `GET /chats/{chatId}/attachments/{attachmentId}`. Then every refusal
//! the issue names: oversized, wrong type, a size or type that differ from the
//! declaration, another chat's upload, another user's upload, reuse, a stranger's
//! download. Every answer is checked against `docs/openapi.yaml`.

use chat_tests::api::{Api, ApiUser};
use chat_tests::ws::Client;
use chat_tests::TestStack;
use serde_json::{json, Value};

struct Harness {
    _stack: TestStack,
    api: Api,
    http: reqwest::Client,
    ws_url: String,
}

impl Harness {
    async fn start() -> Harness {
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        let ws_url = stack.ws_url().to_owned();
        Harness {
            _stack: stack,
            api,
            http: reqwest::Client::new(),
            ws_url,
        }
    }

    async fn direct(&self, a: &ApiUser, b: &ApiUser) -> String {
        let body = self
            .api
            .send_json(
                Some(&a.access_token),
                "POST",
                "/chats",
                Some(json!({"kind": "direct", "userId": b.id})),
            )
            .await;
        assert!(matches!(body.status, 200 | 201), "{}", body.body);
        body.body["chatId"].as_str().expect("chatId").to_owned()
    }

    /// `POST /chats/{chat}/attachments`: (status, body).
    async fn ask(
        &self,
        user: &ApiUser,
        chat: &str,
        name: &str,
        ty: &str,
        size: u64,
    ) -> (u16, Value) {
        let r = self
            .api
            .send_json(
                Some(&user.access_token),
                "POST",
                &format!("/chats/{chat}/attachments"),
                Some(json!({"fileName": name, "contentType": ty, "size": size})),
            )
            .await;
        (r.status, r.body)
    }

    /// Upload `bytes` through a created attachment's presigned request, with its signed
    /// headers (`content_type` overrides the signed type, to play a lying client).
    async fn upload(&self, created: &Value, bytes: Vec<u8>, content_type: Option<&str>) -> u16 {
        let up = &created["upload"];
        assert_eq!(up["method"], "PUT");
        let mut req = self.http.put(up["url"].as_str().expect("url"));
        for (k, v) in up["headers"].as_object().expect("headers") {
            if k == "content-length" {
                continue; // reqwest sets it from the body
            }
            let v = match (k.as_str(), content_type) {
                ("content-type", Some(t)) => t,
                _ => v.as_str().expect("header value"),
            };
            req = req.header(k, v);
        }
        req.body(bytes)
            .send()
            .await
            .expect("upload")
            .status()
            .as_u16()
    }

    /// Ask for, and upload, an attachment of `bytes`; its id.
    async fn uploaded(
        &self,
        user: &ApiUser,
        chat: &str,
        name: &str,
        ty: &str,
        bytes: &[u8],
    ) -> String {
        let (status, created) = self.ask(user, chat, name, ty, bytes.len() as u64).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(self.upload(&created, bytes.to_vec(), None).await, 200);
        created["attachmentId"].as_str().expect("id").to_owned()
    }

    async fn send(
        &self,
        user: &ApiUser,
        chat: &str,
        cid: &str,
        text: Option<&str>,
        ids: &[&str],
    ) -> (u16, Value) {
        let mut body = json!({"clientMessageId": cid, "attachments": ids});
        if let Some(t) = text {
            body["text"] = json!(t);
        }
        let r = self
            .api
            .send_json(
                Some(&user.access_token),
                "POST",
                &format!("/chats/{chat}/messages"),
                Some(body),
            )
            .await;
        (r.status, r.body)
    }

    async fn download(&self, user: &ApiUser, chat: &str, id: &str) -> (u16, Value) {
        let r = self
            .api
            .send_json(
                Some(&user.access_token),
                "GET",
                &format!("/chats/{chat}/attachments/{id}"),
                None,
            )
            .await;
        (r.status, r.body)
    }

    async fn fetch(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("download")
    }
}

/// Not a real PNG: the bytes only have to come back unchanged.
fn photo_bytes() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..4000u32).map(|i| (i * 7 % 251) as u8));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_photo_reaches_the_partner_and_downloads_unchanged() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;
    let mut bob_ws = Client::open(&format!("{}?token={}", h.ws_url, bob.access_token), None)
        .await
        .expect("bob connects");

    let bytes = photo_bytes();
    let id = h
        .uploaded(&alice, &chat, "beach.png", "image/png", &bytes)
        .await;
    let (status, message) = h.send(&alice, &chat, "p1", None, &[&id]).await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["text"], "");
    assert_eq!(message["attachments"][0]["attachmentId"], id.as_str());

    let event = bob_ws.next_of("message").await;
    assert_eq!(event["attachments"][0]["attachmentId"], id.as_str());
    assert_eq!(event["attachments"][0]["fileName"], "beach.png");
    assert_eq!(event["attachments"][0]["contentType"], "image/png");
    assert_eq!(event["attachments"][0]["size"], bytes.len());

    // The chat list previews it as a photo.
    let chats = h
        .api
        .send_json(Some(&bob.access_token), "GET", "/chats", None)
        .await
        .expect(200);
    assert_eq!(chats["chats"][0]["lastMessage"]["preview"], "📷 Photo");

    let (status, dl) = h.download(&bob, &chat, &id).await;
    assert_eq!(status, 200, "{dl}");
    let resp = h.fetch(dl["url"].as_str().expect("url")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.expect("bytes").to_vec(), bytes);

    // A retry of the same send is the same message, not a conflict on the attachment.
    let (status, again) = h.send(&alice, &chat, "p1", None, &[&id]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["messageId"], message["messageId"]);
    // A new message cannot take the same upload again.
    let (status, reused) = h.send(&alice, &chat, "p2", Some("again"), &[&id]).await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (409, Some("attachment_unavailable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_download_as_files_not_pages() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let id = h
        .uploaded(&alice, &chat, "page.html", "text/html", &page)
        .await;
    let (status, m) = h.send(&alice, &chat, "d1", Some("look"), &[&id]).await;
    assert_eq!(status, 201, "{m}");
    let (_, dl) = h.download(&bob, &chat, &id).await;
    let resp = h.fetch(dl["url"].as_str().expect("url")).await;
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_outside_the_rules_are_refused() {
    let h = Harness::start().await;
    let (alice, bob, eve) = tokio::join!(
        h.api.register("Alice"),
        h.api.register("Bob"),
        h.api.register("Eve")
    );
    let chat = h.direct(&alice, &bob).await;
    let other_chat = h.direct(&alice, &eve).await;

    // Declared too large, or of a type outside the allow-list: no upload at all.
    let (status, body) = h
        .ask(&alice, &chat, "big.mp4", "video/mp4", 25 * 1024 * 1024 + 1)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (status, body) = h
        .ask(&alice, &chat, "setup.exe", "application/x-msdownload", 10)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("contentType"))
    );
    let (status, _) = h
        .ask(&alice, &chat, "../../etc/passwd", "text/plain", 10)
        .await;
    assert_eq!(status, 400);
    // A stranger cannot ask for an upload to the chat.
    let (status, _) = h.ask(&eve, &chat, "x.png", "image/png", 10).await;
    assert_eq!(status, 404);

    // Declared 10 bytes, uploaded 20 (S3 refuses that on AWS; the send checks it too).
    let (_, created) = h.ask(&alice, &chat, "a.txt", "text/plain", 10).await;
    let cheat = created["attachmentId"].as_str().expect("id").to_owned();
    let _ = h.upload(&created, vec![b'x'; 20], None).await;
    let (status, body) = h.send(&alice, &chat, "s1", None, &[&cheat]).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("attachments")),
        "{body}"
    );

    // Declared a PNG, uploaded as something else.
    let (_, created) = h.ask(&alice, &chat, "b.png", "image/png", 10).await;
    let retyped = created["attachmentId"].as_str().expect("id").to_owned();
    let _ = h.upload(&created, vec![b'x'; 10], Some("text/html")).await;
    let (status, body) = h.send(&alice, &chat, "s2", None, &[&retyped]).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("attachments")),
        "{body}"
    );

    // Asked for but never uploaded.
    let (_, created) = h.ask(&alice, &chat, "c.png", "image/png", 10).await;
    let missing = created["attachmentId"].as_str().expect("id").to_owned();
    let (status, body) = h.send(&alice, &chat, "s3", None, &[&missing]).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("attachments")),
        "{body}"
    );

    // An upload to another chat, and another user's upload to this chat.
    let elsewhere = h
        .uploaded(&alice, &other_chat, "d.png", "image/png", b"0123456789")
        .await;
    let (status, body) = h.send(&alice, &chat, "s4", None, &[&elsewhere]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("attachment_unavailable"))
    );
    let bobs = h
        .uploaded(&bob, &chat, "e.png", "image/png", b"0123456789")
        .await;
    let (status, body) = h.send(&alice, &chat, "s5", None, &[&bobs]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("attachment_unavailable"))
    );

    // Nothing above became a message; then a good one does.
    let (status, m) = h.send(&bob, &chat, "s6", None, &[&bobs]).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        m["position"], 1,
        "refused sends left no message behind: {m}"
    );

    // Only members download: Eve (a stranger to the chat) gets the same 404 as for a
    // chat that does not exist; an upload is found only under its own chat.
    let (status, _) = h.download(&eve, &chat, &bobs).await;
    assert_eq!(status, 404);
    let (status, _) = h.download(&alice, &chat, &bobs).await;
    assert_eq!(status, 200);
    let (status, _) = h.download(&bob, &other_chat, &elsewhere).await;
    assert_eq!(status, 404);
    let (status, _) = h.download(&eve, &other_chat, &missing).await;
    assert_eq!(
        status, 404,
        "an attachment of another chat is not found here"
    );
    // More than ten in one message.
    let ids: Vec<String> = (0..11)
        .map(|_| chat_core::ids::AttachmentId::generate().to_string())
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (status, body) = h.send(&alice, &chat, "s7", None, &refs).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("attachments"))
    );
}

/// A real PNG of `width` x `height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode PNG");
    out
}

/// A small valid PNG whose header claims `w` x `h` pixels (a decompression bomb as far
/// as a decoder that trusts the header is concerned).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png(4, 4);
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in &b[12..29] {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    b[29..33].copy_from_slice(&(!crc).to_be_bytes());
    b
}

impl Harness {
    /// Wait until the thumbnailer recorded its outcome for `id` (the attachment's
    /// `preview` or `previewFailed` appears), polling the public API with a deadline.
    async fn wait_preview(&self, user: &ApiUser, chat: &str, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (status, body) = self.download(user, chat, id).await;
            assert_eq!(status, 200, "{body}");
            if body.get("preview").is_some() || body.get("previewFailed").is_some() {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no thumbnail outcome: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photos_get_thumbnails_and_a_decompression_bomb_gets_none() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;

    // The bomb first: the thumbnailer must refuse it and stay able to work.
    let bomb = h
        .uploaded(
            &alice,
            &chat,
            "bomb.png",
            "image/png",
            &png_claiming(100_000, 100_000),
        )
        .await;
    let (status, _) = h.send(&alice, &chat, "b1", None, &[&bomb]).await;
    assert_eq!(status, 201);
    let outcome = h.wait_preview(&bob, &chat, &bomb).await;
    assert_eq!(outcome["previewFailed"], true, "{outcome}");
    let r = h
        .api
        .send_json(
            Some(&bob.access_token),
            "GET",
            &format!("/chats/{chat}/attachments/{bomb}/thumbnail"),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "no thumbnail for a refused image");

    let photo = h
        .uploaded(&alice, &chat, "wide.png", "image/png", &png(800, 400))
        .await;
    let (status, _) = h
        .send(&alice, &chat, "p1", Some("the view"), &[&photo])
        .await;
    assert_eq!(status, 201);
    let outcome = h.wait_preview(&bob, &chat, &photo).await;
    assert_eq!(
        outcome["preview"],
        json!({"width": 800, "height": 400, "thumbWidth": 320, "thumbHeight": 160}),
        "{outcome}"
    );
    let thumb = h
        .api
        .send_json(
            Some(&bob.access_token),
            "GET",
            &format!("/chats/{chat}/attachments/{photo}/thumbnail"),
            None,
        )
        .await
        .expect(200);
    let bytes = h
        .fetch(thumb["url"].as_str().expect("url"))
        .await
        .bytes()
        .await
        .expect("thumbnail bytes");
    let decoded = image::load_from_memory(&bytes).expect("the thumbnail decodes");
    assert_eq!((decoded.width(), decoded.height()), (320, 160));
    assert_eq!(
        image::guess_format(&bytes).expect("format"),
        image::ImageFormat::Jpeg
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_account_deletes_its_uploads() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;
    let id = h
        .uploaded(&alice, &chat, "me.png", "image/png", &photo_bytes())
        .await;
    let (status, _) = h.send(&alice, &chat, "d1", None, &[&id]).await;
    assert_eq!(status, 201);

    // Export lists it with a working link.
    let export = h
        .api
        .send_json(Some(&alice.access_token), "GET", "/me/export", None)
        .await
        .expect(200);
    assert_eq!(export["attachments"][0]["attachmentId"], id.as_str());
    assert_eq!(export["attachments"][0]["state"], "attached");
    let link = export["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(h.fetch(&link).await.status(), 200);

    let r = h
        .api
        .send_json(
            Some(&alice.access_token),
            "DELETE",
            "/me",
            Some(json!({"password": chat_tests::api::TEST_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // The purge runs asynchronously: wait (with a deadline) until the object is gone.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        // S3 answers a missing key with 404, or 403 when the signer may not list the
        // bucket (as here: the functions have no s3:ListBucket).
        let status = h.fetch(&link).await.status();
        if status == 404 || status == 403 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload outlived the account"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // And the attachment is gone for the partner too.
    let (status, _) = h.download(&bob, &chat, &id).await;
    assert_eq!(status, 404);
}

/// Deleting a message for everyone deletes its attachments (objects, thumbnails,
/// records) and the tombstone names none, over REST and over the WebSocket: a member
/// who kept the id or an old download link gets nothing.
#[tokio::test]
async fn deleting_a_message_deletes_its_attachments() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;
    let mut alice_ws = Client::open(&format!("{}?token={}", h.ws_url, alice.access_token), None)
        .await
        .expect("alice connects");

    for (cid, over_ws) in [("x1", false), ("x2", true)] {
        let id = h
            .uploaded(&alice, &chat, "gone.png", "image/png", &photo_bytes())
            .await;
        let (status, message) = h.send(&alice, &chat, cid, None, &[&id]).await;
        assert_eq!(status, 201, "{message}");
        let pos = message["position"].as_u64().expect("position");
        let (status, dl) = h.download(&bob, &chat, &id).await;
        assert_eq!(status, 200, "{dl}");
        let link = dl["url"].as_str().expect("url").to_owned();
        assert_eq!(h.fetch(&link).await.status(), 200);

        if over_ws {
            alice_ws
                .send(json!({"action": "deleteMessage", "chatId": chat, "position": pos}))
                .await;
            // (The REST deletion of the first round announced itself here too.)
            let ev = alice_ws
                .next_where(|v| v["type"] == "messageDeleted" && v["position"] == pos)
                .await;
            assert_eq!(ev["message"]["attachments"], Value::Null, "{ev}");
        } else {
            let r = h
                .api
                .send_json(
                    Some(&alice.access_token),
                    "DELETE",
                    &format!("/chats/{chat}/messages/{pos}"),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
        // The answer (or event) comes after the objects are deleted.
        let (status, _) = h.download(&bob, &chat, &id).await;
        assert_eq!(status, 404, "the attachment outlived its message ({cid})");
        let status = h.fetch(&link).await.status();
        assert!(status == 404 || status == 403, "old link: {status} ({cid})");
        let history = h
            .api
            .send_json(
                Some(&bob.access_token),
                "GET",
                &format!("/chats/{chat}/messages"),
                None,
            )
            .await
            .expect(200);
        let gone = history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|m| m["position"] == pos)
            .expect("the tombstone")
            .clone();
        assert_eq!(gone["deleted"], true, "{gone}");
        assert!(
            gone.get("attachments")
                .is_none_or(|a| a.as_array().is_some_and(|a| a.is_empty())),
            "{gone}"
        );
    }
}

/// A photo sent over the WebSocket (`sendMessage` with `attachments`, no text): acked,
/// delivered to the partner with its attachment, and a retry is the same message; an
/// upload of someone else's or a malformed id gets a typed error naming the send.
#[tokio::test]
async fn a_photo_sent_over_the_websocket_is_acked_and_delivered() {
    let h = Harness::start().await;
    let (alice, bob) = tokio::join!(h.api.register("Alice"), h.api.register("Bob"));
    let chat = h.direct(&alice, &bob).await;
    let mut alice_ws = Client::open(&format!("{}?token={}", h.ws_url, alice.access_token), None)
        .await
        .expect("alice connects");
    let mut bob_ws = Client::open(&format!("{}?token={}", h.ws_url, bob.access_token), None)
        .await
        .expect("bob connects");
    let id = h
        .uploaded(&alice, &chat, "sea.png", "image/png", &photo_bytes())
        .await;
    let frame = json!({"action": "sendMessage", "chatId": chat, "clientMessageId": "w1", "attachments": [id]});
    alice_ws.send(frame.clone()).await;
    let ack = alice_ws.next_of("messageAck").await;
    assert_eq!(
        (ack["clientMessageId"].as_str(), ack["duplicate"].as_bool()),
        (Some("w1"), Some(false)),
        "{ack}"
    );
    let ev = bob_ws.next_of("message").await;
    assert_eq!(ev["position"], ack["position"]);
    assert_eq!(ev["attachments"][0]["attachmentId"], id.as_str());
    assert_eq!(ev["attachments"][0]["fileName"], "sea.png");
    assert_eq!(ev["text"], "");
    let (status, _) = h.download(&bob, &chat, &id).await;
    assert_eq!(status, 200);

    // The retry is the original.
    alice_ws.send(frame).await;
    let again = alice_ws.next_of("messageAck").await;
    assert_eq!(
        (again["position"].clone(), again["duplicate"].as_bool()),
        (ack["position"].clone(), Some(true))
    );

    // Bob cannot send Alice's upload; nor a malformed id.
    bob_ws
        .send(json!({"action": "sendMessage", "chatId": chat, "clientMessageId": "w2", "attachments": [id]}))
        .await;
    let err = bob_ws.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["clientMessageId"].as_str()),
        (Some("attachment_unavailable"), Some("w2")),
        "{err}"
    );
    bob_ws
        .send(json!({"action": "sendMessage", "chatId": chat, "clientMessageId": "w3", "attachments": ["nope"]}))
        .await;
    let err = bob_ws.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("validation_failed"), Some("attachments")),
        "{err}"
    );
}
