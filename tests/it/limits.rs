//! Size limits end to end, through the local API Gateway with the real functions:
//! each limit accepts a value exactly at it and refuses the next one with the
//! documented error, on the real stack (the parsers' own limits are property-tested
//! in `shared/tests/hostile_input.rs`; what other suites already cover is not repeated:
//! 413 on auth bodies in `auth.rs`, the 100-member cap under concurrent adds and the
//! 0/101 page sizes in `chats.rs`, 100,000 characters over the WebSocket in
//! `realtime.rs`, 32 KB / 128 KB against a fake function in `gateway_websocket.rs`).
//!
//! Covered here: JSON bodies at and over 64 KB on every small-body chat route and
//! 1 MB on REST send; message text of 100,000 characters of 4 bytes each (400 KB);
//! group and display names; a group created full (100 members) and the 97-users-per-
//! request add; page sizes of user search and sync; WebSocket frames of exactly 32 KB
//! and messages of exactly 128 KB on the real stack; and the REST sync cursor of a
//! user in 300 chats (the cursor must fit a URL and the server must accept it back).

use chat_core::ids::{ChatId, UserId};
use chat_core::input::{DisplayName, GroupName, UserName, MAX_GROUP_MEMBERS, MAX_MESSAGE_CHARS};
use chat_core::model::now_millis;
use chat_core::store::NewGroup;
use chat_tests::api::{Api, ApiUser, Reply};
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(20);
const SMALL_BODY: usize = 64 * 1024;
const MESSAGE_BODY: usize = 1024 * 1024;

/// `method path` with `body` sent as is; the answer must match docs/openapi.yaml.
async fn send(
    stack: &TestStack,
    token: &str,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Reply {
    Api::new(stack).send(Some(token), method, path, body).await
}

/// `v` as JSON padded with white space to exactly `len` bytes (still valid JSON).
fn padded(v: &Value, len: usize) -> String {
    let s = v.to_string();
    assert!(s.len() <= len);
    format!("{s}{}", " ".repeat(len - s.len()))
}

fn error(r: &Reply, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{what}: {}", r.body);
}

/// `n` users to add to chats: through the store on a local stack (fast: no Argon2id),
/// through `POST /auth/register` on a remote one (8 at a time).
async fn seed_users(stack: &TestStack, n: usize) -> Vec<UserId> {
    if stack.is_remote() {
        let api = Api::new(stack);
        let api = &api;
        return futures::stream::iter(0..n)
            .map(|_| async move { api.register("Seed").await.id })
            .buffer_unordered(8)
            .collect()
            .await;
    }
    futures::stream::iter(0..n)
        .map(|i| async move {
            let id = UserId::generate();
            let name =
                UserName::parse(&format!("s{}{i}", &id.as_str()[18..]).to_lowercase()).unwrap();
            stack
                .store()
                .create_user(
                    &id,
                    &name,
                    &DisplayName::parse("Seed").unwrap(),
                    "x",
                    now_millis(),
                )
                .await
                .expect("seed user");
            id
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[tokio::test]
async fn bodies_at_the_limit_pass_and_one_byte_more_is_413() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let (a, b) = (api.register("alice").await, api.register("bob").await);
    let t = a.access_token.as_str();
    let (s, g) = api
        .call(
            &a,
            "POST",
            "/chats",
            Some(json!({"kind": "group", "name": "Limits", "memberIds": [b.id]})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let group = g["chatId"].as_str().unwrap().to_owned();

    // Each small-body route: exactly 64 KB is read, 64 KB + 1 is refused before parsing.
    let routes: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/chats".into(),
            json!({"kind": "direct", "userId": b.id}),
        ),
        (
            "PATCH",
            format!("/chats/{group}"),
            json!({"name": "Renamed"}),
        ),
        (
            "POST",
            format!("/chats/{group}/read"),
            json!({"position": 1}),
        ),
        (
            "PATCH",
            format!("/chats/{group}/members/me"),
            json!({"muted": false}),
        ),
        ("PATCH", "/me".into(), json!({"statusText": "here"})),
        (
            "POST",
            "/devices".into(),
            json!({"platform": "fcm", "token": "l".repeat(40)}),
        ),
    ];
    for (method, path, body) in routes {
        let what = format!("{method} {path}");
        let r = send(&stack, t, method, &path, Some(padded(&body, SMALL_BODY))).await;
        assert!(
            (200..300).contains(&r.status),
            "{what} at 64 KB: {}",
            r.body
        );
        let r = send(
            &stack,
            t,
            method,
            &path,
            Some(padded(&body, SMALL_BODY + 1)),
        )
        .await;
        error(&r, 413, "payload_too_large", &what);
    }
    // Adding members at 64 KB + 1 is refused the same way (at the limit it is a
    // validation error, the member being there already).
    let add = json!({"memberIds": [b.id]});
    let r = send(
        &stack,
        t,
        "POST",
        &format!("/chats/{group}/members"),
        Some(padded(&add, SMALL_BODY + 1)),
    )
    .await;
    error(&r, 413, "payload_too_large", "add members");

    // REST send: the message body cap is 1 MB.
    let path = format!("/chats/{group}/messages");
    let msg = json!({"clientMessageId": "big-1", "text": "x"});
    let r = send(&stack, t, "POST", &path, Some(padded(&msg, MESSAGE_BODY))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let msg = json!({"clientMessageId": "big-2", "text": "x"});
    let r = send(
        &stack,
        t,
        "POST",
        &path,
        Some(padded(&msg, MESSAGE_BODY + 1)),
    )
    .await;
    error(&r, 413, "payload_too_large", "send");
    stack.shutdown().await;
}

#[tokio::test]
async fn text_and_names_at_their_limits() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let (a, b) = (api.register("alice").await, api.register("bob").await);
    let t = a.access_token.as_str();
    let (s, d) = api
        .call(
            &a,
            "POST",
            "/chats",
            Some(json!({"kind": "direct", "userId": b.id})),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    let chat = d["chatId"].as_str().unwrap();
    let path = format!("/chats/{chat}/messages");

    // 100,000 characters of 4 bytes each: 400 KB of UTF-8, the largest message.
    let most = "😀".repeat(MAX_MESSAGE_CHARS);
    let body = json!({"clientMessageId": "max", "text": most}).to_string();
    let r = send(&stack, t, "POST", &path, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["text"].as_str().unwrap().chars().count(),
        MAX_MESSAGE_CHARS
    );
    let page = send(
        &stack,
        &b.access_token,
        "GET",
        &format!("{path}?after=0"),
        None,
    )
    .await;
    assert_eq!(
        page.body["messages"][0]["text"].as_str(),
        Some(most.as_str())
    );
    let body = json!({"clientMessageId": "over", "text": format!("{most}x")}).to_string();
    let r = send(&stack, t, "POST", &path, Some(body)).await;
    error(&r, 400, "validation_failed", "100,001 characters");
    assert_eq!(r.body["error"]["field"], "text");

    // Group names: 100 characters (multi-byte) pass, 101 do not; display names 64/65.
    let name = |n: usize| format!("G{}", "é".repeat(n - 1));
    let r = send(
        &stack,
        t,
        "POST",
        "/chats",
        Some(json!({"kind": "group", "name": name(100), "memberIds": [b.id]}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["name"], name(100));
    let group = r.body["chatId"].as_str().unwrap().to_owned();
    let r = send(
        &stack,
        t,
        "PATCH",
        &format!("/chats/{group}"),
        Some(json!({"name": name(101)}).to_string()),
    )
    .await;
    error(&r, 400, "validation_failed", "101-character group name");
    let r = send(
        &stack,
        t,
        "PATCH",
        "/me",
        Some(json!({"displayName": name(64)}).to_string()),
    )
    .await;
    assert_eq!((r.status, &r.body["displayName"]), (200, &json!(name(64))));
    let r = send(
        &stack,
        t,
        "PATCH",
        "/me",
        Some(json!({"displayName": name(65)}).to_string()),
    )
    .await;
    error(&r, 400, "validation_failed", "65-character display name");
    // A user name of 32 characters registers; 33 do not.
    let long = format!("u{}", &UserId::generate().as_str()[4..]).to_lowercase();
    let user_name = format!("{long}{}", "x".repeat(32 - long.len()));
    let reg = |n: &str| {
        json!({"userName": n, "password": "correct horse battery staple", "displayName": "L"})
            .to_string()
    };
    let r = send(&stack, "", "POST", "/auth/register", Some(reg(&user_name))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = send(
        &stack,
        "",
        "POST",
        "/auth/register",
        Some(reg(&format!("{user_name}y"))),
    )
    .await;
    error(&r, 400, "validation_failed", "33-character user name");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_group_can_be_created_full_and_filled_97_at_a_time() {
    // Runs on a remote stack too (its 199 users are registered through the API).
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let admin = api.register("admin").await;
    let t = admin.access_token.as_str();
    let others = seed_users(&stack, MAX_GROUP_MEMBERS + 99).await;
    let ids = |u: &[UserId]| {
        u.iter()
            .map(UserId::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // 99 others and the creator: exactly 100.
    let r = send(
        &stack,
        t,
        "POST",
        "/chats",
        Some(json!({"kind": "group", "name": "Full", "memberIds": ids(&others[..99])}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["memberCount"], 100);
    assert_eq!(r.body["members"].as_array().unwrap().len(), 100);
    let full = r.body["chatId"].as_str().unwrap().to_owned();
    let r = send(
        &stack,
        t,
        "POST",
        &format!("/chats/{full}/members"),
        Some(json!({"memberIds": ids(&others[99..100])}).to_string()),
    )
    .await;
    error(&r, 409, "group_full", "the 101st member");

    // A group of 3 takes 97 more in one request (one transaction of 100 items); 98 is
    // more than one request may add.
    let r = send(
        &stack,
        t,
        "POST",
        "/chats",
        Some(
            json!({"kind": "group", "name": "Three", "memberIds": ids(&others[100..102])})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let three = r.body["chatId"].as_str().unwrap().to_owned();
    let path = format!("/chats/{three}/members");
    let r = send(
        &stack,
        t,
        "POST",
        &path,
        Some(json!({"memberIds": ids(&others[..98])}).to_string()),
    )
    .await;
    error(&r, 400, "validation_failed", "98 users in one add");
    let r = send(
        &stack,
        t,
        "POST",
        &path,
        Some(json!({"memberIds": ids(&others[102..])}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["memberCount"], 100);
    stack.shutdown().await;
}

#[tokio::test]
async fn page_sizes_at_their_limits() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let a = api.register("alice").await;
    let t = a.access_token.as_str();
    let prefix = &a.user_name[..3];
    for (path, max) in [
        (format!("/users?prefix={prefix}&limit="), 50),
        ("/sync?limit=".to_owned(), 100),
        ("/chats?limit=".to_owned(), 100),
    ] {
        let r = send(&stack, t, "GET", &format!("{path}{max}"), None).await;
        assert_eq!(r.status, 200, "{path}{max}: {}", r.body);
        let r = send(&stack, t, "GET", &format!("{path}{}", max + 1), None).await;
        error(&r, 400, "validation_failed", &format!("{path}{}", max + 1));
        assert_eq!(r.body["error"]["field"], "limit");
    }
    stack.shutdown().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &TestStack, user: &ApiUser) -> Ws {
    let url = format!("{}?token={}", stack.ws_url(), user.access_token);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// A ping frame of exactly `len` bytes.
fn ping_of(len: usize, id: &str) -> String {
    let v = json!({"action": "ping", "id": id, "pad": ""}).to_string();
    let pad = "p".repeat(len - v.len());
    json!({"action": "ping", "id": id, "pad": pad}).to_string()
}

async fn next_event(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out");
        match msg {
            Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(WsMessage::Close(c))) => return Err(c.map_or(0, |c| u16::from(c.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(0),
        }
    }
}

async fn send_fragmented(ws: &mut Ws, payload: &[u8], frame: usize) {
    let chunks: Vec<&[u8]> = payload.chunks(frame).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        ws.send(WsMessage::Frame(Frame::message(
            chunk.to_vec(),
            op,
            i + 1 == chunks.len(),
        )))
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn websocket_frames_and_messages_at_their_limits() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let a = api.register("alice").await;

    // One frame of exactly 32 KB reaches the function; one byte more closes with 1009.
    let mut ws = connect(&stack, &a).await;
    ws.send(WsMessage::Text(ping_of(32 * 1024, "f32").into()))
        .await
        .unwrap();
    let pong = next_event(&mut ws).await.expect("pong");
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_str()),
        (Some("pong"), Some("f32"))
    );
    ws.send(WsMessage::Text(ping_of(32 * 1024 + 1, "f33").into()))
        .await
        .unwrap();
    assert_eq!(next_event(&mut ws).await.err(), Some(1009));

    // A message of exactly 128 KB in 32 KB fragments is answered; 128 KB + 1 closes.
    let mut ws = connect(&stack, &a).await;
    send_fragmented(&mut ws, ping_of(128 * 1024, "m128").as_bytes(), 32 * 1024).await;
    let pong = next_event(&mut ws).await.expect("pong");
    assert_eq!(pong["id"], "m128");
    send_fragmented(
        &mut ws,
        ping_of(128 * 1024 + 1, "m129").as_bytes(),
        32 * 1024,
    )
    .await;
    assert_eq!(next_event(&mut ws).await.err(), Some(1009));

    // The connection that was closed for size is gone; a new one works.
    let mut ws = connect(&stack, &a).await;
    ws.send(WsMessage::Text(
        json!({"action": "ping", "id": "after"}).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_event(&mut ws).await.unwrap()["id"], "after");
    stack.shutdown().await;
}

/// Longest cursor a client can send back in `GET /sync?cursor=`: API Gateway's HTTP API
/// allows 10,240 bytes of request line and header values together, and the access
/// token, host and other headers take some of them.
const URL_CURSOR_BUDGET: usize = 8192;

#[tokio::test]
async fn the_rest_sync_cursor_of_a_user_in_300_chats_fits_a_url_and_is_accepted() {
    // Runs on a remote stack too (its 300 groups are created through the API).
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let a = api.register("alice").await;
    let peer = seed_users(&stack, 1).await.remove(0);
    let now = now_millis();
    // On a remote stack the groups are made through `POST /chats`, and one user may
    // create at most 50 a day: ten creators make 30 each, all with alice in them.
    let mut creators = Vec::new();
    if stack.is_remote() {
        for i in 0..10 {
            creators.push(api.register(&format!("maker{i}")).await);
        }
    }
    // 300 groups, each with one message (its creation): through the store on a local
    // stack (fast), through `POST /chats` on a remote one.
    let chats: Vec<ChatId> = futures::stream::iter(0..300)
        .map(|i| {
            let (me, peer) = (a.id.clone(), peer.clone());
            let (stack, api, creators) = (&stack, &api, &creators);
            async move {
                if stack.is_remote() {
                    let maker = &creators[i % creators.len()];
                    let (status, body) = api
                        .call(
                            maker,
                            "POST",
                            "/chats",
                            Some(json!({"kind": "group", "name": format!("g{i}"), "memberIds": [me, peer]})),
                        )
                        .await;
                    assert_eq!(status, 201, "{body}");
                    return ChatId::parse(body["chatId"].as_str().expect("chatId"))
                        .expect("a chat id");
                }
                let g = NewGroup {
                    creator: me,
                    name: GroupName::parse(&format!("g{i}")).unwrap(),
                    members: vec![peer],
                };
                stack
                    .store()
                    .create_group(&g, now)
                    .await
                    .expect("group")
                    .0
                    .chat_id
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(chats.len(), 300);

    let t = a.access_token.as_str();
    let first = send(&stack, t, "GET", "/sync", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let cursor = first.body["cursor"].as_str().unwrap().to_owned();
    assert!(
        cursor.len() <= URL_CURSOR_BUDGET,
        "cursor of {} characters",
        cursor.len()
    );
    // The server takes back what it issued: nothing new yet.
    let again = send(&stack, t, "GET", &format!("/sync?cursor={cursor}"), None).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["chats"], json!([]));
    // A message in one chat comes through, and the next cursor is accepted too.
    let target = &chats[123];
    let r = send(
        &stack,
        t,
        "POST",
        &format!("/chats/{target}/messages"),
        Some(json!({"clientMessageId": "s1", "text": "news"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cursor = again.body["cursor"].as_str().unwrap();
    let news = send(&stack, t, "GET", &format!("/sync?cursor={cursor}"), None).await;
    assert_eq!(news.status, 200, "{}", news.body);
    let got: Vec<&Value> = news.body["chats"].as_array().unwrap().iter().collect();
    assert_eq!(got.len(), 1, "{}", news.body);
    assert_eq!(got[0]["chatId"], target.as_str());
    assert_eq!(got[0]["messages"][0]["text"], "news");
    let cursor = news.body["cursor"].as_str().unwrap();
    assert!(cursor.len() <= URL_CURSOR_BUDGET);
    let last = send(&stack, t, "GET", &format!("/sync?cursor={cursor}"), None).await;
    assert_eq!((last.status, &last.body["chats"]), (200, &json!([])));
    stack.shutdown().await;
}
