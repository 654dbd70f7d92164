//! End-to-end tests of real-time messaging (issue 5) through the local gateway with
//! the real `ws-*` functions, DynamoDB Local and moto: real WebSocket clients
//! (tokio-tungstenite), waiting on frames with time-outs (no sleeps).
//!
//! Barriers: the gateway runs one invocation at a time per connection and posts to a
//! connection in order, so (1) a `pong` on the sending connection means its previous
//! frames were fully handled (fan-out included), and (2) a `pong` on a receiving
//! connection after that means everything posted to it earlier has arrived. "Nothing
//! else arrived" is asserted up to such a barrier.
//!
//! Everything that depends on the shape of `chat_tests::TestStack` is in the `stack`
//! module below.

use chat_core::ids::{ChatId, ConnectionId};
use chat_core::model::now_millis;
use chat_core::store::Store;
use serde_json::{json, Value};

use chat_tests::api::Api;
use chat_tests::seed::{SeededUser, Seeder};
use chat_tests::ws::{of_type, send_frame, Client};

/// Glue to the shared test harness.
mod stack {
    pub use chat_tests::TestStack;

    pub async fn start() -> TestStack {
        TestStack::start().await
    }

    /// The offline-topic messages published so far (bodies, parsed).
    pub async fn offline_events(s: &TestStack) -> Vec<serde_json::Value> {
        s.offline_messages_so_far()
            .await
            .into_iter()
            .map(|m| m.json)
            .collect()
    }

    /// The offline events published since the stack started, once there are at least
    /// `n` (each publish reaches the observer queue before it returns; reading it back
    /// may need retries when moto is slow under load: up to a minute, a safety net).
    pub async fn offline_events_at_least(s: &TestStack, n: usize) -> Vec<serde_json::Value> {
        s.offline_messages(n, std::time::Duration::from_secs(60))
            .await
            .into_iter()
            .map(|m| m.json)
            .collect()
    }

    /// Make the gateway answer 410 Gone for `connection` without running `$disconnect`
    /// (a connection whose `$disconnect` API Gateway lost).
    pub async fn kill_silently(s: &TestStack, connection: &str) {
        s.kill_connection(connection).await
    }
}

struct Stack {
    s: stack::TestStack,
    seed: Seeder,
}

impl Stack {
    async fn start() -> Self {
        let s = stack::start().await;
        let seed = Seeder::new(&s);
        Stack { s, seed }
    }

    fn store(&self) -> Store {
        self.s.store().clone()
    }

    async fn user(&self, name: &str) -> User {
        self.seed.user(name).await
    }

    async fn direct(&self, a: &User, b: &User) -> ChatId {
        self.seed.direct(a, b).await
    }

    /// A group; its creation is position 1 (a system message).
    async fn group(&self, creator: &User, others: &[&User]) -> ChatId {
        self.seed.group(creator, others).await
    }

    async fn connect(&self, user: &User, device: &str) -> Client {
        let url = format!("{}?token={}&device={device}", self.s.ws_url(), user.token);
        Client::open(&url, None).await.expect("connect")
    }

    async fn connections(&self, user: &User) -> Vec<ConnectionId> {
        self.store()
            .presence_of(std::slice::from_ref(&user.id), now_millis())
            .await
            .unwrap()
            .remove(&user.id)
            .unwrap_or_default()
            .connections
    }

    /// The chat as `member` sees it through the API (`GET /chats/{chatId}`).
    async fn chat_as(&self, member: &User, chat: &ChatId) -> Value {
        Api::new(&self.s)
            .send(Some(&member.token), "GET", &format!("/chats/{chat}"), None)
            .await
            .expect(200)
    }

    /// The chat's last position (the number of stored messages), through the API.
    async fn positions(&self, member: &User, chat: &ChatId) -> u64 {
        self.chat_as(member, chat).await["lastPosition"]
            .as_u64()
            .expect("lastPosition")
    }
}

type User = SeededUser;

#[tokio::test]
async fn two_users_two_devices_each_get_every_message_once_in_order() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a1 = st.connect(&alice, "a1").await;
    let mut a2 = st.connect(&alice, "a2").await;
    let mut b1 = st.connect(&bob, "b1").await;
    let mut b2 = st.connect(&bob, "b2").await;

    // A conversation: each message reaches every device before the next is sent, so
    // arrival order must equal position order. (Two sends at the same moment from
    // different members are fanned out by different invocations and may arrive out
    // of position order; clients order by position: docs/protocol.md, "Ordering".)
    let mut a1_frames = Vec::new();
    let mut a2_frames = Vec::new();
    let mut b1_frames = Vec::new();
    let mut b2_frames = Vec::new();
    for i in 1..=3u64 {
        let n = i as usize;
        a1.send(send_frame(
            &chat,
            &format!("a-{i}"),
            &format!("from alice {i}"),
        ))
        .await;
        let ack = a1.next_of("messageAck").await;
        assert_eq!(ack["position"], 2 * i - 1);
        assert_eq!(ack["clientMessageId"], format!("a-{i}"));
        assert_eq!(ack["duplicate"], false);
        a2.collect_messages(&mut a2_frames, 2 * n - 1).await;
        b1.collect_messages(&mut b1_frames, 2 * n - 1).await;
        b2.collect_messages(&mut b2_frames, n).await;
        b2.send(send_frame(
            &chat,
            &format!("b-{i}"),
            &format!("from bob {i}"),
        ))
        .await;
        let ack = b2.next_of("messageAck").await;
        assert_eq!(ack["position"], 2 * i);
        a2.collect_messages(&mut a2_frames, 2 * n).await;
        b1.collect_messages(&mut b1_frames, 2 * n).await;
        a1.collect_messages(&mut a1_frames, n).await;
    }
    // Then everything up to a barrier taken after both senders' barriers (their
    // fan-outs are finished then), so a duplicate or stray delivery shows up.
    a1_frames.extend(a1.barrier().await);
    b2_frames.extend(b2.barrier().await);
    a1_frames.extend(a1.barrier().await);
    a2_frames.extend(a2.barrier().await);
    b1_frames.extend(b1.barrier().await);
    let expect_messages = |frames: &[Value], want: &[u64]| {
        let got: Vec<(u64, &str)> = of_type(frames, "message")
            .iter()
            .map(|m| (m["position"].as_u64().unwrap(), m["text"].as_str().unwrap()))
            .collect();
        let want: Vec<(u64, String)> = want
            .iter()
            .map(|&p| {
                let (who, i) = if p % 2 == 1 {
                    ("alice", p.div_ceil(2))
                } else {
                    ("bob", p / 2)
                };
                (p, format!("from {who} {i}"))
            })
            .collect();
        let want: Vec<(u64, &str)> = want.iter().map(|(p, t)| (*p, t.as_str())).collect();
        assert_eq!(got, want, "every message exactly once, in order");
    };
    expect_messages(&a1_frames, &[2, 4, 6]);
    expect_messages(&b2_frames, &[1, 3, 5]);
    expect_messages(&a2_frames, &[1, 2, 3, 4, 5, 6]);
    expect_messages(&b1_frames, &[1, 2, 3, 4, 5, 6]);
    // Acknowledgements go to the sending connection only.
    for frames in [&a2_frames, &b1_frames] {
        assert!(of_type(frames, "messageAck").is_empty());
    }
    let first = of_type(&a2_frames, "message")[0];
    assert_eq!(first["senderId"], alice.id.as_str());
    assert_eq!(first["text"], "from alice 1");
    assert_eq!(first["chatId"], chat.as_str());
    assert!(first["messageId"].as_str().unwrap().starts_with("msg_"));
    // Nobody was offline: no push events for this chat (the topic is visible only on a
    // local stack).
    if !st.s.is_remote() {
        let offline = stack::offline_events(&st.s).await;
        assert!(offline.iter().all(|e| e["chatId"] != chat.as_str()));
    }
}

#[tokio::test]
async fn group_of_100_online_members_receive_offline_ones_are_published_once() {
    chat_tests::needs_backend!();
    let st = Stack::start().await;
    let creator = st.user("owner").await;
    let mut others = Vec::new();
    for i in 0..99 {
        others.push(st.user(&format!("m{i}")).await);
    }
    let refs: Vec<&User> = others.iter().collect();
    let chat = st.group(&creator, &refs).await;
    // 40 members online (one device each), 59 offline.
    let mut online = Vec::new();
    for u in others.iter().take(40) {
        online.push(st.connect(u, "d").await);
    }
    let mut sender = st.connect(&creator, "d").await;
    sender.send(send_frame(&chat, "g-1", "hello group")).await;
    let ack = sender.next_of("messageAck").await;
    let pos = ack["position"].as_u64().unwrap();
    // The pong comes once the send's invocation has returned: after its 40 posts and
    // its 59 offline events (6 PublishBatch calls to moto), which can take longer
    // than the 20 s a read waits when the machine is loaded: wait for the pong itself,
    // with a safety net of two minutes.
    sender
        .barrier_within(std::time::Duration::from_secs(120))
        .await;
    for c in online.iter_mut() {
        let frames = c.barrier().await;
        let msgs = of_type(&frames, "message");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0]["position"], pos);
    }
    // The send's fan-out (posts, then the offline publish) finished before the
    // sender's pong (the gateway runs a connection's frames one after another), so
    // all 59 are in the observer queue: wait until they are read back, then take
    // whatever else is there (a second publish would show as more than 59).
    stack::offline_events_at_least(&st.s, 59).await;
    let events = stack::offline_events(&st.s).await;
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["chatId"] == chat.as_str())
        .collect();
    assert_eq!(mine.len(), 59, "one offline event per offline member");
    let mut recipients: Vec<&str> = mine
        .iter()
        .map(|e| e["recipientId"].as_str().unwrap())
        .collect();
    recipients.sort();
    let mut want: Vec<&str> = others.iter().skip(40).map(|u| u.id.as_str()).collect();
    want.sort();
    assert_eq!(recipients, want);
    let e = mine[0];
    assert_eq!(e["kind"], "offlineMessage");
    assert_eq!(e["chatKind"], "group");
    assert_eq!(e["chatName"], "Team");
    assert_eq!(e["senderId"], creator.id.as_str());
    assert_eq!(e["senderDisplayName"], "owner");
    assert_eq!(e["preview"], "hello group");
    assert_eq!(e["position"], pos);
    assert_eq!(e["messageId"], ack["messageId"]);
}

#[tokio::test]
async fn a_retried_send_is_stored_and_delivered_once() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a = st.connect(&alice, "a").await;
    let mut b = st.connect(&bob, "b").await;
    a.send(send_frame(&chat, "same-id", "once")).await;
    let first = a.next_of("messageAck").await;
    a.send(send_frame(&chat, "same-id", "once")).await;
    let second = a.next_of("messageAck").await;
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["messageId"], first["messageId"]);
    assert_eq!(second["position"], first["position"]);
    assert_eq!(st.positions(&alice, &chat).await, 1, "one stored message");
    a.barrier().await;
    let frames = b.barrier().await;
    assert_eq!(of_type(&frames, "message").len(), 1, "one delivery");
}

#[tokio::test]
async fn a_gone_connection_is_removed_and_others_still_receive() {
    chat_tests::needs_backend!();
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a = st.connect(&alice, "a").await;
    let mut b1 = st.connect(&bob, "b1").await;
    let before = st.connections(&bob).await;
    let b2 = st.connect(&bob, "b2").await;
    let after = st.connections(&bob).await;
    assert_eq!(after.len(), 2);
    let dead = after
        .iter()
        .find(|c| !before.contains(c))
        .expect("b2's id")
        .clone();
    // b2 has been open a while (a 410 for a connection that opened moments ago may
    // mean its $connect is still running: such connections are kept, see
    // `Store::forget_gone_connection`).
    let mut row = st.store().get_connection(&dead).await.unwrap().unwrap();
    row.connected_at -= chat_core::store::CONNECT_GRACE_MS + 1_000;
    st.store().put_connection(&row).await.unwrap();
    stack::kill_silently(&st.s, dead.as_str()).await;

    a.send(send_frame(&chat, "x1", "are you there")).await;
    a.next_of("messageAck").await;
    a.barrier().await;
    let frames = b1.barrier().await;
    assert_eq!(of_type(&frames, "message").len(), 1);
    let left = st.connections(&bob).await;
    assert_eq!(left.len(), 1, "the gone connection was forgotten");
    assert!(!left.contains(&dead));
    assert!(st.store().get_connection(&dead).await.unwrap().is_none());
    // Bob still had a live connection: no offline event.
    let offline = stack::offline_events(&st.s).await;
    assert!(offline.iter().all(|e| e["chatId"] != chat.as_str()));
    drop(b2);
}

#[tokio::test]
async fn sync_after_reconnect_returns_exactly_the_missed_messages() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let carol = st.user("carol").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a = st.connect(&alice, "a").await;
    let mut b = st.connect(&bob, "b").await;
    for i in 1..=2 {
        a.send(send_frame(&chat, &format!("s{i}"), &format!("m{i}")))
            .await;
        a.next_of("messageAck").await;
    }
    a.barrier().await;
    let seen = of_type(&b.barrier().await, "message").len();
    assert_eq!(seen, 2);
    b.close().await;
    for i in 3..=7 {
        a.send(send_frame(&chat, &format!("s{i}"), &format!("m{i}")))
            .await;
        a.next_of("messageAck").await;
    }
    // A group Bob was added to while away.
    let group = st.group(&carol, &[&bob]).await;

    let mut b = st.connect(&bob, "b").await;
    b.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": 2}], "limit": 3}))
        .await;
    let mut got: Vec<u64> = Vec::new();
    let mut new_chats = Vec::new();
    let mut page = b.next_of("syncResult").await;
    loop {
        for c in page["chats"].as_array().unwrap() {
            if c["chatId"] == chat.as_str() {
                assert_eq!(c["known"], true);
                got.extend(
                    c["messages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["position"].as_u64().unwrap()),
                );
            } else {
                assert_eq!(c["known"], false);
                new_chats.push(c["chatId"].as_str().unwrap().to_owned());
            }
        }
        match page["cursor"].as_str() {
            Some(cursor) => {
                b.send(json!({"action": "sync", "cursor": cursor})).await;
                page = b.next_of("syncResult").await;
            }
            None => break,
        }
    }
    assert_eq!(got, vec![3, 4, 5, 6, 7]);
    assert_eq!(new_chats, vec![group.to_string()]);
    // A bad cursor is a validation error.
    b.send(json!({"action": "sync", "cursor": "nope"})).await;
    let e = b.next_of("error").await;
    assert_eq!(e["code"], "validation_failed");
    assert_eq!(e["field"], "cursor");
}

#[tokio::test]
async fn refused_frames_get_documented_errors_and_store_nothing() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let eve = st.user("eve").await;
    let chat = st.direct(&alice, &bob).await;
    let mut e = st.connect(&eve, "e").await;
    let mut a = st.connect(&alice, "a").await;
    let mut b = st.connect(&bob, "b").await;

    // Not a member: the same not_found as an unknown chat.
    e.send(send_frame(&chat, "e1", "let me in")).await;
    let err = e.next_of("error").await;
    assert_eq!(err["code"], "not_found");
    assert_eq!(err["action"], "sendMessage");
    assert_eq!(err["clientMessageId"], "e1");
    e.send(send_frame(ChatId::new_group(), "e2", "hello?"))
        .await;
    let err2 = e.next_of("error").await;
    assert_eq!(err2["code"], "not_found");
    assert_eq!(err2["message"], err["message"]);

    let cases: Vec<(String, &str, Option<&str>)> = vec![
        (
            send_frame(&chat, "t1", "").to_string(),
            "validation_failed",
            Some("text"),
        ),
        (
            send_frame(&chat, "t2", &"x".repeat(100_001)).to_string(),
            "validation_failed",
            Some("text"),
        ),
        ("{not json".into(), "invalid_json", None),
        (
            json!({"action": "shout", "chatId": chat}).to_string(),
            "unknown_action",
            None,
        ),
        (
            json!({"action": "sendMessage", "chatId": chat, "text": "hi"}).to_string(),
            "validation_failed",
            Some("clientMessageId"),
        ),
        (
            json!({"action": "sendMessage", "clientMessageId": "t3", "text": "hi"}).to_string(),
            "validation_failed",
            Some("chatId"),
        ),
        (
            json!({"action": "sendMessage", "chatId": chat, "clientMessageId": "t4"}).to_string(),
            "validation_failed",
            Some("text"),
        ),
        (
            json!({"chatId": chat}).to_string(),
            "validation_failed",
            Some("action"),
        ),
    ];
    for (frame, code, field) in cases {
        a.send_text(&frame).await;
        let err = a.next_of("error").await;
        assert_eq!(err["code"], code, "{}", &frame[..frame.len().min(80)]);
        if let Some(f) = field {
            assert_eq!(err["field"], f);
        }
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // 100,000 characters are accepted.
    a.send(send_frame(&chat, "big", &"y".repeat(100_000))).await;
    assert_eq!(a.next_of("messageAck").await["position"], 1);
    assert_eq!(
        st.positions(&alice, &chat).await,
        1,
        "only the valid message was stored"
    );
    a.barrier().await;
    e.barrier().await;
    let frames = b.barrier().await;
    let msgs = of_type(&frames, "message");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["text"].as_str().unwrap().len(), 100_000);
}

#[tokio::test]
async fn receipts_reach_the_other_member_and_only_move_forward() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a = st.connect(&alice, "a").await;
    let mut b = st.connect(&bob, "b").await;
    for i in 1..=3 {
        a.send(send_frame(&chat, &format!("r{i}"), "hi")).await;
        a.next_of("messageAck").await;
    }
    b.send(json!({"action": "ack", "chatId": chat, "position": 3}))
        .await;
    let d = a.next_of("delivered").await;
    assert_eq!(d["userId"], bob.id.as_str());
    assert_eq!(d["position"], 3);
    b.send(json!({"action": "read", "chatId": chat, "position": 2}))
        .await;
    let r = a.next_of("read").await;
    assert_eq!(r["userId"], bob.id.as_str());
    assert_eq!(r["position"], 2);
    // Backwards: nothing moves, nobody is told.
    b.send(json!({"action": "read", "chatId": chat, "position": 1}))
        .await;
    // Beyond the end: validation error.
    b.send(json!({"action": "read", "chatId": chat, "position": 9}))
        .await;
    let e = b.next_of("error").await;
    assert_eq!(e["code"], "validation_failed");
    assert_eq!(e["field"], "position");
    b.barrier().await;
    assert!(of_type(&a.barrier().await, "read").is_empty());
    let seen = st.chat_as(&bob, &chat).await;
    assert_eq!(seen["readPosition"], 2);
    assert_eq!(seen["deliveredPosition"], 3);
}

#[tokio::test]
async fn typing_goes_to_the_other_members_only() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let mut a1 = st.connect(&alice, "a1").await;
    let mut a2 = st.connect(&alice, "a2").await;
    let mut b = st.connect(&bob, "b").await;
    a1.send(json!({"action": "typing", "chatId": chat, "state": "started"}))
        .await;
    let t = b.next_of("typing").await;
    assert_eq!(t["userId"], alice.id.as_str());
    assert_eq!(t["state"], "started");
    a1.barrier().await;
    assert!(of_type(&a2.barrier().await, "typing").is_empty());
    b.send(json!({"action": "typing", "chatId": chat, "state": "bored"}))
        .await;
    assert_eq!(b.next_of("error").await["field"], "state");
}

#[tokio::test]
async fn presence_goes_to_online_direct_partners() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    st.direct(&alice, &bob).await;
    let mut a = st.connect(&alice, "a").await;
    let b1 = st.connect(&bob, "b1").await;
    let p = a.next_of("presence").await;
    assert_eq!(p["userId"], bob.id.as_str());
    assert_eq!(p["online"], true);
    // A second device does not change presence; closing one of two does not either.
    let b2 = st.connect(&bob, "b2").await;
    b2.close().await;
    assert!(of_type(&a.barrier().await, "presence").is_empty());
    b1.close().await;
    let p = a.next_of("presence").await;
    assert_eq!(p["online"], false);
    assert!(p["lastSeenAt"].as_str().is_some());
}

/// `$connect` looks up whom to tell "online" while it checks the token version: a
/// handshake refused for a revoked token must announce nothing.
#[tokio::test]
async fn a_refused_handshake_announces_no_presence() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    st.direct(&alice, &bob).await;
    let mut b = st.connect(&bob, "b").await;
    Api::new(&st.s)
        .send(Some(&alice.token), "POST", "/auth/logout-all", None)
        .await
        .expect(204);
    let url = st.s.ws_url().to_owned();
    match Client::open(&format!("{url}?token={}", alice.token), None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a revoked token opened a connection"),
    }
    // The refused $connect finished before its answer: any presence event it posted
    // is on bob's socket before the pong.
    assert!(of_type(&b.barrier().await, "presence").is_empty());
}

#[tokio::test]
async fn the_rate_limit_answers_rate_limited() {
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let mut a = st.connect(&alice, "a").await;
    // 61 frames span at most two 10-second windows, so at most 60 pass.
    for i in 0..61 {
        a.send(json!({"action": "ping", "id": format!("p{i}")}))
            .await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    while pongs + limited < 61 {
        let v = a.next().await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited");
                assert_eq!(v["action"], "ping");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(limited >= 1, "limited {limited}");
    assert!((30..=60).contains(&pongs), "pongs {pongs}");
}

#[tokio::test]
async fn handshakes_with_bad_or_revoked_tokens_are_refused() {
    // Runs on a remote stack too: the revocation goes through the API (logout-all),
    // the connection table is only looked at on a local stack.
    let st = Stack::start().await;
    let alice = st.user("alice").await;
    let url = st.s.ws_url().to_owned();
    let status = |r: Result<Client, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    };
    assert_eq!(status(Client::open(&url, None).await), 401);
    assert_eq!(
        status(Client::open(&format!("{url}?token=abc.def.ghi"), None).await),
        401
    );
    // Subprotocol form works and selects chat.v1.
    let mut ok = Client::open(&url, Some(&format!("chat.v1, {}", alice.token)))
        .await
        .expect("the subprotocol form opens a connection");
    ok.barrier().await;
    if !st.s.is_remote() {
        assert_eq!(st.connections(&alice).await.len(), 1);
    }
    // Log out everywhere: the old token is revoked, the open connection closed.
    Api::new(&st.s)
        .send(Some(&alice.token), "POST", "/auth/logout-all", None)
        .await
        .expect(204);
    ok.close().await;
    assert_eq!(
        status(Client::open(&format!("{url}?token={}", alice.token), None).await),
        403
    );
    assert_eq!(
        status(Client::open(&url, Some(&format!("chat.v1, {}", alice.token))).await),
        403
    );
    if !st.s.is_remote() {
        // The refused handshakes stored nothing (the closed connection is gone).
        assert!(st.connections(&alice).await.is_empty(), "nothing stored");
    }
}
