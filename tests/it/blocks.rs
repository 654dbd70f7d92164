//! Blocking (issue 21), end to end through the public APIs only (so it runs against a
//! deployed stack too): a blocked user's attempts to open a direct chat, send into the
//! existing one (REST and WebSocket), add the blocker to a group, and see the blocker's
//! presence and status are refused or hidden, while a third user who is not blocked
//! sees all of it; unblocking restores it; the export lists the block.

use chat_tests::api::{Api, ApiUser};
use chat_tests::ws::{of_type, Client};
use chat_tests::TestStack;
use serde_json::json;

async fn connect(stack: &TestStack, user: &ApiUser) -> Client {
    let url = format!("{}?token={}", stack.ws_url(), user.access_token);
    Client::open(&url, None).await.expect("WebSocket connect")
}

#[tokio::test]
async fn a_blocked_user_cannot_reach_the_blocker() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let (alice, bob, carol) = tokio::join!(
        api.register("alice"),
        api.register("bob"),
        api.register("carol")
    );
    let token = |u: &ApiUser| Some(u.access_token.clone());
    let dm = |a: &ApiUser, b: &ApiUser| {
        let (a, b) = (a.clone(), b.clone());
        let api = &api;
        async move {
            api.send_json(
                Some(&a.access_token),
                "POST",
                "/chats",
                Some(json!({"kind": "direct", "userId": b.id})),
            )
            .await
        }
    };
    let ab = dm(&alice, &bob).await.expect(201)["chatId"]
        .as_str()
        .unwrap()
        .to_owned();
    dm(&carol, &alice).await.expect(201);
    let send = |u: &ApiUser, chat: &str, cmid: &str| {
        let (u, path, cmid) = (
            u.clone(),
            format!("/chats/{chat}/messages"),
            cmid.to_owned(),
        );
        let api = &api;
        async move {
            api.send_json(
                Some(&u.access_token),
                "POST",
                &path,
                Some(json!({"clientMessageId": cmid, "text": "hello"})),
            )
            .await
        }
    };
    send(&bob, &ab, "b1").await.expect(201);
    api.send_json(
        token(&alice).as_deref(),
        "PATCH",
        "/me",
        Some(json!({"statusText": "in a meeting"})),
    )
    .await
    .expect(200);

    // Alice blocks Bob (twice: idempotent) and sees him in her list.
    let block_path = format!("/me/blocks/{}", bob.id);
    for _ in 0..2 {
        api.send_json(token(&alice).as_deref(), "POST", &block_path, None)
            .await
            .expect(204);
    }
    let list = api
        .send_json(token(&alice).as_deref(), "GET", "/me/blocks", None)
        .await
        .expect(200);
    assert_eq!(list["users"][0]["userId"], bob.id.as_str());
    assert_eq!(list["users"].as_array().unwrap().len(), 1);
    // Blocking yourself or nobody.
    api.send_json(
        token(&alice).as_deref(),
        "POST",
        &format!("/me/blocks/{}", alice.id),
        None,
    )
    .await
    .expect_error(400, "validation_failed");
    api.send_json(
        token(&alice).as_deref(),
        "POST",
        &format!("/me/blocks/{}", chat_core::ids::UserId::generate()),
        None,
    )
    .await
    .expect_error(404, "not_found");

    // Bob cannot send into the direct chat (REST, then WebSocket), nor can Alice
    // until she unblocks; nothing was stored.
    send(&bob, &ab, "b2").await.expect_error(403, "blocked");
    send(&alice, &ab, "a1")
        .await
        .expect_error(403, "you_blocked");
    let mut bob_ws = connect(&stack, &bob).await;
    bob_ws
        .send(json!({"action": "sendMessage", "chatId": ab, "clientMessageId": "b3", "text": "hi"}))
        .await;
    let err = bob_ws.next_of("error").await;
    assert_eq!(err["code"], "blocked", "{err}");
    let history = api
        .send_json(
            token(&alice).as_deref(),
            "GET",
            &format!("/chats/{ab}/messages?after=0"),
            None,
        )
        .await
        .expect(200);
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);

    // Bob cannot open a direct chat with her, nor put her in a group; Carol can.
    dm(&bob, &alice).await.expect_error(403, "blocked");
    let group = |by: &ApiUser, members: Vec<String>| {
        let by = by.clone();
        let api = &api;
        async move {
            api.send_json(
                Some(&by.access_token),
                "POST",
                "/chats",
                Some(json!({"kind": "group", "name": "Plans", "memberIds": members})),
            )
            .await
        }
    };
    group(&bob, vec![alice.id.to_string(), carol.id.to_string()])
        .await
        .expect_error(403, "blocked");
    let g = group(&bob, vec![carol.id.to_string()]).await.expect(201);
    let g = g["chatId"].as_str().unwrap();
    api.send_json(
        token(&bob).as_deref(),
        "POST",
        &format!("/chats/{g}/members"),
        Some(json!({"memberIds": [alice.id]})),
    )
    .await
    .expect_error(403, "blocked");
    group(&carol, vec![alice.id.to_string(), bob.id.to_string()])
        .await
        .expect(201);

    // Presence: Alice comes online. Carol (her direct partner) is told, Bob is not;
    // Bob's profile view of her shows her offline and without status, Carol's does not.
    let mut carol_ws = connect(&stack, &carol).await;
    let alice_ws = connect(&stack, &alice).await;
    let p = carol_ws.next_of("presence").await;
    assert_eq!(p["userId"], alice.id.as_str());
    assert_eq!(p["online"], true);
    let frames = bob_ws.barrier().await;
    assert!(
        of_type(&frames, "presence")
            .iter()
            .all(|p| p["userId"] != alice.id.as_str()),
        "{frames:?}"
    );
    let profile_path = format!("/users/{}", alice.id);
    let seen_by_carol = api
        .send_json(token(&carol).as_deref(), "GET", &profile_path, None)
        .await
        .expect(200);
    assert_eq!(seen_by_carol["presence"]["online"], true);
    assert_eq!(seen_by_carol["statusText"], "in a meeting");
    let seen_by_bob = api
        .send_json(token(&bob).as_deref(), "GET", &profile_path, None)
        .await
        .expect(200);
    assert_eq!(seen_by_bob["presence"]["online"], false);
    assert_eq!(seen_by_bob["statusText"], "");

    // The export lists the block.
    let export = api
        .send_json(token(&alice).as_deref(), "GET", "/me/export", None)
        .await
        .expect(200);
    assert_eq!(export["blockedUserIds"], json!([bob.id]));

    // Unblocked: everything works again.
    for _ in 0..2 {
        api.send_json(token(&alice).as_deref(), "DELETE", &block_path, None)
            .await
            .expect(204);
    }
    send(&bob, &ab, "b4").await.expect(201);
    send(&alice, &ab, "a2").await.expect(201);
    dm(&bob, &alice).await.expect(200);
    let list = api
        .send_json(token(&alice).as_deref(), "GET", "/me/blocks", None)
        .await
        .expect(200);
    assert_eq!(list["users"], json!([]));
    let seen_by_bob = api
        .send_json(token(&bob).as_deref(), "GET", &profile_path, None)
        .await
        .expect(200);
    assert_eq!(seen_by_bob["presence"]["online"], true);
    alice_ws.close().await;
    bob_ws.close().await;
    carol_ws.close().await;
}
