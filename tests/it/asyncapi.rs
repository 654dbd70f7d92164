//! `docs/asyncapi.yaml` against itself, the protocol code and the frames the end-to-end
//! tests see. The per-frame check runs inside the WebSocket test client
//! (`chat_tests::asyncapi::check_frame`, on every frame of every test); here: the
//! document's structure, that the checker really rejects what does not match, and (run
//! by `./dev test` after the whole binary, see the module documentation of
//! `chat_tests::asyncapi`) that every documented message was seen.

use chat_tests::asyncapi::{self, AsyncApi, Direction};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_asyncapi_3_every_ref_resolves_and_every_message_has_an_operation() {
    let api = asyncapi::doc();
    let doc = api.doc();
    assert!(doc["asyncapi"].as_str().unwrap().starts_with("3."));
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 30);
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Every message of the channel is used by an operation, and operations only use
    // the channel's messages.
    let channel: BTreeSet<String> = doc["channels"]["chat"]["messages"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| format!("#/channels/chat/messages/{k}"))
        .collect();
    let used: BTreeSet<String> = doc["operations"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|op| op["messages"].as_array().unwrap().clone())
        .map(|m| m["$ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(channel, used, "channel messages vs operations' messages");
    assert_eq!(api.message_keys().len(), channel.len());
}

#[test]
fn every_action_of_the_protocol_is_documented() {
    let keys: BTreeSet<String> = asyncapi::doc().message_keys().into_iter().collect();
    for action in chat_core::protocol::ACTIONS {
        assert!(
            keys.contains(&format!("client:{action}")),
            "action {action} is not in docs/asyncapi.yaml"
        );
    }
}

#[test]
fn the_checker_accepts_real_frames_and_rejects_what_does_not_match() {
    let api = asyncapi::doc();
    let chat = "grp_01J0Z5Q9G3W0H8YV6S2K4M7N1P";
    let user = "usr_01J0Z5Q9G3W0H8YV6S2K4M7N1P";
    let ok_client = json!({"action": "read", "chatId": chat, "position": 3});
    assert_eq!(api.check(Direction::ToServer, &ok_client).unwrap(), "read");
    let ok_server = json!({"type": "read", "chatId": chat, "userId": user, "position": 3});
    assert_eq!(api.check(Direction::ToClient, &ok_server).unwrap(), "read");
    let gateway =
        json!({"message": "Internal server error", "connectionId": "c", "requestId": "r"});
    assert_eq!(
        api.check(Direction::ToClient, &gateway).unwrap(),
        "gatewayError"
    );
    let bad: Vec<(Direction, Value)> = vec![
        // Undocumented action and event.
        (Direction::ToServer, json!({"action": "shout"})),
        (Direction::ToClient, json!({"type": "shout"})),
        // An undocumented field in a server event.
        (
            Direction::ToClient,
            json!({"type": "read", "chatId": chat, "userId": user, "position": 3, "extra": 1}),
        ),
        // A missing field, a wrong type, a bad id.
        (
            Direction::ToClient,
            json!({"type": "read", "chatId": chat, "position": 3}),
        ),
        (
            Direction::ToClient,
            json!({"type": "read", "chatId": chat, "userId": user, "position": "3"}),
        ),
        (
            Direction::ToServer,
            json!({"action": "read", "chatId": "chat-1", "position": 3}),
        ),
        (
            Direction::ToClient,
            json!({"type": "pong", "serverTime": "yesterday", "protocolVersion": 1}),
        ),
    ];
    for (dir, frame) in bad {
        assert!(
            api.check(dir, &frame).is_err(),
            "{dir:?} {frame} should be refused"
        );
    }
}

/// Run by `./dev test` after the whole suite, with `CHAT_ASYNCAPI_SEEN` naming the file
/// every test noted the messages it saw in (`cargo test -p chat-tests --test it --
/// --ignored asyncapi::every_documented_message_was_seen`).
#[test]
#[ignore = "needs the messages noted by a whole run (./dev test runs it after the suite)"]
fn every_documented_message_was_seen() {
    let path = std::env::var(asyncapi::SEEN_ENV).unwrap_or_else(|_| {
        panic!(
            "{} must name the file a whole run of the suite wrote (./dev test sets it)",
            asyncapi::SEEN_ENV
        )
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let seen: BTreeSet<&str> = text.lines().map(str::trim).collect();
    let api = AsyncApi::load(&AsyncApi::default_path());
    let missing: Vec<String> = api
        .message_keys()
        .into_iter()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "documented in docs/asyncapi.yaml but never sent or received by the end-to-end tests \
         (add a test that does, through chat_tests::ws::Client): {missing:?}"
    );
}

/// The server events no other end-to-end test reads through the test client: a
/// group's `membership` change (with its system `message`) and a `messageRef` for a
/// message too large for one frame. Public APIs only (runs against a deployed stack).
#[tokio::test]
async fn membership_and_message_ref_events_reach_members() {
    let stack = chat_tests::TestStack::start().await;
    let api = chat_tests::api::Api::new(&stack);
    let (a, b) = (api.register("Ada").await, api.register("Bob").await);
    let group = api
        .send_json(
            Some(&a.access_token),
            "POST",
            "/chats",
            Some(json!({"kind": "group", "name": "Team", "memberIds": [b.id]})),
        )
        .await
        .expect(201);
    let chat = group["chatId"].as_str().unwrap().to_owned();
    let mut bob = chat_tests::ws::Client::from(api.connect(&b).await);
    bob.barrier().await;
    api.send_json(
        Some(&a.access_token),
        "PATCH",
        &format!("/chats/{chat}"),
        Some(json!({"name": "Team 2"})),
    )
    .await
    .expect(200);
    let ev = bob.next_of("membership").await;
    assert_eq!(ev["change"]["event"], "renamed");
    assert_eq!(ev["chat"]["name"], "Team 2");
    // 100,000 two-byte characters: 200 KB of UTF-8, more than one frame holds.
    let long = "é".repeat(100_000);
    let sent = api
        .send_json(
            Some(&a.access_token),
            "POST",
            &format!("/chats/{chat}/messages"),
            Some(json!({"clientMessageId": "long-1", "text": long})),
        )
        .await
        .expect(201);
    let r = bob.next_of("messageRef").await;
    assert_eq!(r["position"], sent["position"]);
    assert_eq!(r["textChars"], 100_000);
    bob.close().await;
    stack.shutdown().await;
}

/// `authenticate` and its answer through the test client (tests/it/security.rs checks
/// the rules; this makes both frames part of the document's coverage).
#[tokio::test]
async fn authenticate_is_answered_with_authenticated() {
    let stack = chat_tests::TestStack::start().await;
    let api = chat_tests::api::Api::new(&stack);
    let a = api.register("Ada").await;
    let mut ada = chat_tests::ws::Client::from(api.connect(&a).await);
    ada.send(json!({"action": "authenticate", "token": a.access_token}))
        .await;
    let ev = ada.next_of("authenticated").await;
    assert!(ev["expiresAt"].is_string(), "{ev}");
    ada.close().await;
    stack.shutdown().await;
}
