//! End-to-end tests of editing and deleting messages (issue 20) through the gateway:
//! the WebSocket actions `editMessage` / `deleteMessage`, the REST routes `PATCH` /
//! `DELETE /chats/{chatId}/messages/{position}`, the `messageEdited` /
//! `messageDeleted` events, history, the chat preview, and who may do what. Public
//! APIs only, except the check that a deleted text is gone from storage (local mode).

use chat_core::ids::ChatId;
use chat_tests::api::{Api, ApiUser};
use chat_tests::ws::{send_frame, Client};
use chat_tests::TestStack;
use serde_json::{json, Value};

struct World {
    stack: TestStack,
    api: Api,
}

impl World {
    async fn start() -> World {
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        World { stack, api }
    }

    /// A group created by `admin` with `others` (position 1 is its creation).
    async fn group(&self, admin: &ApiUser, others: &[&ApiUser]) -> String {
        let ids: Vec<_> = others.iter().map(|u| u.id.to_string()).collect();
        let body = self
            .api
            .send_json(
                Some(&admin.access_token),
                "POST",
                "/chats",
                Some(json!({"kind": "group", "name": "Team", "memberIds": ids})),
            )
            .await
            .expect(201);
        body["chatId"].as_str().unwrap().to_owned()
    }

    async fn connect(&self, user: &ApiUser) -> Client {
        let mut c = Client::from(self.api.connect(user).await);
        c.barrier().await;
        c
    }

    /// Send over REST; the new position.
    async fn send(&self, user: &ApiUser, chat: &str, cmid: &str, text: &str) -> u64 {
        self.api
            .send_json(
                Some(&user.access_token),
                "POST",
                &format!("/chats/{chat}/messages"),
                Some(json!({"clientMessageId": cmid, "text": text})),
            )
            .await
            .expect(201)["position"]
            .as_u64()
            .unwrap()
    }

    async fn patch(
        &self,
        user: &ApiUser,
        chat: &str,
        pos: u64,
        text: &str,
    ) -> chat_tests::api::Reply {
        self.api
            .send_json(
                Some(&user.access_token),
                "PATCH",
                &format!("/chats/{chat}/messages/{pos}"),
                Some(json!({"text": text})),
            )
            .await
    }

    async fn delete(&self, user: &ApiUser, chat: &str, pos: u64) -> chat_tests::api::Reply {
        self.api
            .send_json(
                Some(&user.access_token),
                "DELETE",
                &format!("/chats/{chat}/messages/{pos}"),
                None,
            )
            .await
    }

    /// The message at `pos` in the history `user` reads.
    async fn history_at(&self, user: &ApiUser, chat: &str, pos: u64) -> Value {
        let page = self
            .api
            .send_json(
                Some(&user.access_token),
                "GET",
                &format!("/chats/{chat}/messages?after={}&limit=1", pos - 1),
                None,
            )
            .await
            .expect(200);
        page["messages"][0].clone()
    }

    async fn chat(&self, user: &ApiUser, chat: &str) -> Value {
        self.api
            .send_json(
                Some(&user.access_token),
                "GET",
                &format!("/chats/{chat}"),
                None,
            )
            .await
            .expect(200)
    }
}

#[tokio::test]
async fn edits_reach_every_member_and_history_and_only_the_author_edits() {
    let w = World::start().await;
    let (a, b) = (w.api.register("Ada").await, w.api.register("Bob").await);
    let chat = w.group(&a, &[&b]).await;
    let (mut ada, mut bob) = (w.connect(&a).await, w.connect(&b).await);

    // Ada sends over the WebSocket and fixes her typo over the WebSocket.
    ada.send(send_frame(&chat, "m-1", "helo wrld")).await;
    let pos = ada.next_of("messageAck").await["position"]
        .as_u64()
        .unwrap();
    let second = w.send(&a, &chat, "m-2", "the last one").await;
    ada.send(
        json!({"action": "editMessage", "chatId": chat, "position": pos, "text": "hello world"}),
    )
    .await;
    for c in [&mut ada, &mut bob] {
        let ev = c.next_of("messageEdited").await;
        assert_eq!(ev["position"], pos);
        assert_eq!(ev["changeSeq"], 1);
        assert_eq!(ev["by"], a.id.as_str());
        assert_eq!(ev["message"]["text"], "hello world");
        assert_eq!(ev["message"]["editCount"], 1);
    }
    // Again over REST: the answer is the message now.
    let m = w.patch(&a, &chat, pos, "hello, world").await.expect(200);
    assert_eq!(m["text"], "hello, world");
    assert_eq!(m["editCount"], 2);
    assert!(m["editedAt"].is_string());
    assert_eq!(bob.next_of("messageEdited").await["changeSeq"], 2);
    let h = w.history_at(&b, &chat, pos).await;
    assert_eq!(
        (h["text"].as_str(), h["editCount"].as_u64()),
        (Some("hello, world"), Some(2))
    );

    // Not the last message: the chat's preview stays; editing the last one changes it.
    let c = w.chat(&b, &chat).await;
    assert_eq!(c["lastMessage"]["preview"], "the last one");
    assert_eq!(c["changeSeq"], 2);
    w.patch(&a, &chat, second, "the very last one")
        .await
        .expect(200);
    assert_eq!(
        w.chat(&b, &chat).await["lastMessage"]["preview"],
        "the very last one"
    );

    // Only the author edits: Bob may not, neither over REST nor the WebSocket; no one
    // edits a system message; unknown positions and bad text are clear errors.
    w.patch(&b, &chat, pos, "pwned")
        .await
        .expect_error(403, "forbidden");
    bob.send(json!({"action": "editMessage", "chatId": chat, "position": pos, "text": "pwned"}))
        .await;
    let e = bob.next_of("error").await;
    assert_eq!(
        (e["code"].as_str(), e["action"].as_str()),
        (Some("forbidden"), Some("editMessage"))
    );
    w.patch(&a, &chat, 1, "renamed")
        .await
        .expect_error(403, "forbidden");
    w.patch(&a, &chat, 99, "x")
        .await
        .expect_error(404, "not_found");
    w.patch(&a, &chat, pos, "   ")
        .await
        .expect_error(400, "validation_failed");
    let (status, _) = w
        .api
        .call(
            &a,
            "PATCH",
            &format!("/chats/{chat}/messages/0"),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(w.history_at(&b, &chat, pos).await["text"], "hello, world");

    // An edit is not a new message: no unread change for Bob beyond the two sends.
    let me = w.chat(&b, &chat).await;
    assert_eq!(me["lastPosition"], second);
    let seen = bob.barrier().await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "message" || f["position"].as_u64() <= Some(second)),
        "an edit arrived as a new message: {seen:?}"
    );
    ada.close().await;
    bob.close().await;
    w.stack.shutdown().await;
}

#[tokio::test]
async fn deletes_erase_the_text_keep_the_position_and_admins_delete_any() {
    let w = World::start().await;
    let (a, b, c) = (
        w.api.register("Ada").await,
        w.api.register("Bob").await,
        w.api.register("Cy").await,
    );
    let chat = w.group(&a, &[&b, &c]).await;
    let mut cy = w.connect(&c).await;
    let p_bob = w.send(&b, &chat, "b-1", "a secret").await;
    let p_cy = w.send(&c, &chat, "c-1", "cy's own").await;

    // Cy (a member, not an admin) may not delete Bob's message.
    w.delete(&c, &chat, p_bob)
        .await
        .expect_error(403, "forbidden");
    // Ada (an admin) may; members see the tombstone, history keeps the position.
    let t = w.delete(&a, &chat, p_bob).await.expect(200);
    assert_eq!(
        (t["deleted"].as_bool(), t["text"].as_str()),
        (Some(true), Some(""))
    );
    let ev = cy.next_of("messageDeleted").await;
    assert_eq!(
        (ev["position"].as_u64(), ev["by"].as_str()),
        (Some(p_bob), Some(a.id.as_str()))
    );
    assert_eq!(ev["message"]["deleted"], true);
    let h = w.history_at(&c, &chat, p_bob).await;
    assert_eq!(
        (h["deleted"].as_bool(), h["text"].as_str()),
        (Some(true), Some(""))
    );
    assert_eq!(h["senderId"], b.id.as_str());
    if !w.stack.is_remote() {
        // Erased in storage, not only hidden.
        let stored = w
            .stack
            .store()
            .get_message(&ChatId::parse(&chat).unwrap(), p_bob)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.deleted && stored.text.is_empty());
    }
    // A deleted message cannot be edited; deleting again changes nothing.
    w.patch(&b, &chat, p_bob, "back")
        .await
        .expect_error(409, "message_deleted");
    let again = w.delete(&b, &chat, p_bob).await.expect(200);
    assert_eq!(again["deleted"], true);

    // Cy deletes her own (the last) message over the WebSocket: the answer is the
    // event, and the chat's preview is blanked.
    cy.send(json!({"action": "deleteMessage", "chatId": chat, "position": p_cy}))
        .await;
    let ev = cy.next_of("messageDeleted").await;
    assert_eq!(ev["position"], p_cy);
    let now = w.chat(&a, &chat).await;
    assert_eq!(now["lastMessage"]["preview"], "");
    assert_eq!(now["lastPosition"], p_cy);
    assert_eq!(now["changeSeq"], 2);
    cy.close().await;
    w.stack.shutdown().await;
}

#[tokio::test]
async fn a_removed_member_can_neither_edit_nor_delete() {
    let w = World::start().await;
    let (a, b) = (w.api.register("Ada").await, w.api.register("Bob").await);
    let chat = w.group(&a, &[&b]).await;
    let pos = w.send(&b, &chat, "b-1", "before I go").await;
    let mut bob = w.connect(&b).await;
    w.api
        .send_json(
            Some(&a.access_token),
            "DELETE",
            &format!("/chats/{chat}/members/{}", b.id),
            None,
        )
        .await
        .expect(200);
    w.patch(&b, &chat, pos, "still here")
        .await
        .expect_error(404, "not_found");
    w.delete(&b, &chat, pos)
        .await
        .expect_error(404, "not_found");
    bob.send(json!({"action": "editMessage", "chatId": chat, "position": pos, "text": "x"}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "not_found");
    bob.send(json!({"action": "deleteMessage", "chatId": chat, "position": pos}))
        .await;
    assert_eq!(bob.next_of("error").await["code"], "not_found");
    let h = w.history_at(&a, &chat, pos).await;
    assert_eq!(h["text"], "before I go");
    assert!(h.get("editCount").is_none());
    bob.close().await;
    w.stack.shutdown().await;
}

/// The messages of a `syncResult` / REST sync entry by position: (new, changed).
fn positions(entry: &Value, field: &str) -> Vec<u64> {
    entry[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn an_offline_device_syncs_each_edit_and_delete_once() {
    let w = World::start().await;
    let (a, b) = (w.api.register("Ada").await, w.api.register("Bob").await);
    let chat = w.group(&a, &[&b]).await;
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        w.send(&a, &chat, &format!("m-{i}"), t).await;
    }
    // Bob's device catches up to position 4, change sequence 0, then goes away.
    let mut bob = w.connect(&b).await;
    bob.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": 0}]}))
        .await;
    let r = bob.next_of("syncResult").await;
    assert_eq!(positions(&r["chats"][0], "messages"), vec![1, 2, 3, 4]);
    assert_eq!(r["chats"][0]["changeSeq"], 0);
    bob.close().await;
    // REST starts its cursor now too.
    let rest = w
        .api
        .send_json(Some(&b.access_token), "GET", "/sync", None)
        .await
        .expect(200);
    let cursor = rest["cursor"].as_str().unwrap().to_owned();

    // While away: position 2 edited twice, 3 deleted, 5 sent and edited.
    w.patch(&a, &chat, 2, "one!").await.expect(200);
    w.patch(&a, &chat, 2, "one!!").await.expect(200);
    w.delete(&a, &chat, 3).await.expect(200);
    let p5 = w.send(&a, &chat, "m-5", "five").await;
    w.patch(&a, &chat, p5, "five!").await.expect(200);

    let mut bob = w.connect(&b).await;
    bob.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": 4, "changeSeq": 0}]}))
        .await;
    let r = bob.next_of("syncResult").await;
    let e = &r["chats"][0];
    assert!(r["cursor"].is_null(), "{r}");
    assert_eq!(positions(e, "messages"), vec![p5]);
    assert_eq!(e["messages"][0]["text"], "five!");
    // Each changed message once, as it is now.
    assert_eq!(positions(e, "changed"), vec![2, 3]);
    assert_eq!(
        (
            e["changed"][0]["text"].as_str(),
            e["changed"][0]["editCount"].as_u64()
        ),
        (Some("one!!"), Some(2))
    );
    assert_eq!(
        (
            e["changed"][1]["deleted"].as_bool(),
            e["changed"][1]["text"].as_str()
        ),
        (Some(true), Some(""))
    );
    assert_eq!(e["changeSeq"], 4);
    // Caught up: nothing more.
    bob.send(
        json!({"action": "sync", "chats": [{"chatId": chat, "position": p5, "changeSeq": 4}]}),
    )
    .await;
    let r = bob.next_of("syncResult").await;
    assert_eq!(r["chats"], json!([]), "{r}");

    // Paged: one change per page, continued by the cursor, each once.
    bob.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": p5, "changeSeq": 0}], "limit": 1}))
        .await;
    let r = bob.next_of("syncResult").await;
    let first = positions(&r["chats"][0], "changed");
    assert_eq!(first.len(), 1, "{r}");
    let next = r["cursor"]
        .as_str()
        .expect("a cursor for the rest")
        .to_owned();
    let mut seen = first;
    let mut cursor_ws = Some(next);
    while let Some(c) = cursor_ws.take() {
        bob.send(json!({"action": "sync", "cursor": c, "limit": 1}))
            .await;
        let r = bob.next_of("syncResult").await;
        for entry in r["chats"].as_array().unwrap() {
            seen.extend(positions(entry, "changed"));
        }
        cursor_ws = r["cursor"].as_str().map(str::to_owned);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec![2, 3, p5]);

    // REST: the same catch-up from the cursor taken before the changes.
    let page = w
        .api
        .send_json(
            Some(&b.access_token),
            "GET",
            &format!("/sync?cursor={cursor}"),
            None,
        )
        .await
        .expect(200);
    let e = &page["chats"][0];
    assert_eq!(positions(e, "messages"), vec![p5]);
    assert_eq!(positions(e, "changed"), vec![2, 3]);
    let again = w
        .api
        .send_json(
            Some(&b.access_token),
            "GET",
            &format!("/sync?cursor={}", page["cursor"].as_str().unwrap()),
            None,
        )
        .await
        .expect(200);
    assert_eq!(again["chats"], json!([]), "{again}");
    bob.close().await;
    w.stack.shutdown().await;
}
