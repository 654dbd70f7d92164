//! Faults (issue 11): the chat keeps working and loses nothing when its dependencies
//! fail. End-to-end through the local gateway with the real functions, faults injected
//! at run time by the gateway's management API (`gateway::faults`: 410, 500, delays
//! per connection) and by the AWS proxy between the functions and DynamoDB Local /
//! moto's SNS (`chat_local::proxy`: unreachable, throttled, slow answers); process
//! mode (`chat_tests::process`) for functions killed or timing out mid-invocation.
//! Invariants are checked through the test's own store, which goes direct to DynamoDB
//! Local. What each test shows is summed up in `docs/reliability.md`, "Faults".
//!
//! No sleeps for synchronisation: frames are awaited with time-outs, "nothing else
//! arrived" is asserted up to a `ping`/`pong` barrier (the gateway runs one invocation
//! at a time per connection and posts to a connection in order), and the proxy is
//! asked how many requests it has seen.

use chat_core::ids::{ChatId, ConnectionId};
use chat_core::model::{now_millis, Message};
use chat_core::store::Store;
use chat_local::gateway::faults::{FaultAction, FaultRule};
use chat_local::proxy::{ProxyFault, ProxyFaultAction};
use chat_tests::seed::{SeededUser, Seeder};
use chat_tests::ws::{of_type, send_frame, Client};
use chat_tests::{TestStack, TestStackOptions};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ harness

struct Stack {
    s: TestStack,
    seed: Seeder,
}

impl Stack {
    async fn start(opts: TestStackOptions) -> Self {
        let s = TestStack::start_with(opts).await;
        let seed = Seeder::new(&s);
        s.gateway().management_calls().record(true);
        Stack { s, seed }
    }

    fn store(&self) -> &Store {
        self.s.store()
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

    /// A connection of `user`, and its id (the user must have no other connection).
    async fn connect(&self, user: &User) -> (Client, ConnectionId) {
        let url = format!("{}?token={}", self.s.ws_url(), user.token);
        let client = Client::open(&url, None).await.expect("connect");
        let mut ids = self.connections(user).await;
        assert_eq!(ids.len(), 1, "one connection per user in these tests");
        (client, ids.remove(0))
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

    /// The chat's stored messages after checking the store's invariants: the chat's
    /// counter equals the number of messages, positions are 1..=counter without gaps
    /// (no message without its position, no position without its message), and no
    /// sender's clientMessageId is stored twice.
    async fn checked_messages(&self, chat: &ChatId) -> Vec<Message> {
        let last = self
            .store()
            .get_chat(chat, true)
            .await
            .unwrap()
            .expect("chat exists")
            .last_position;
        let page = self.store().messages_after(chat, 0, 1000).await.unwrap();
        assert!(!page.has_more);
        let positions: Vec<u64> = page.messages.iter().map(|m| m.position).collect();
        assert_eq!(
            positions,
            (1..=last).collect::<Vec<u64>>(),
            "positions 1..={last}, gap-free"
        );
        let mut keys = HashSet::new();
        for m in &page.messages {
            if let (Some(s), Some(c)) = (&m.sender_id, &m.client_message_id) {
                assert!(
                    keys.insert((s.clone(), c.clone())),
                    "clientMessageId {c} stored twice"
                );
            }
        }
        page.messages
    }

    /// The management calls (POST) recorded for `connection`, with their faults.
    fn posts_to(&self, connection: &ConnectionId) -> Vec<Option<FaultAction>> {
        self.s
            .gateway()
            .management_calls()
            .calls()
            .into_iter()
            .filter(|c| c.connection_id == connection.as_str() && c.method == "POST")
            .map(|c| c.fault)
            .collect()
    }
}

type User = SeededUser;

/// The answer to a `sendMessage` with `cmid`: its `messageAck` or its `error`.
fn answers(cmid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v: &Value| {
        (v["type"] == "messageAck" || v["type"] == "error") && v["clientMessageId"] == cmid
    }
}

/// The offline events published for `chat` so far.
async fn offline_events(s: &TestStack, chat: &ChatId) -> Vec<Value> {
    s.offline_messages_so_far()
        .await
        .into_iter()
        .map(|m| m.json)
        .filter(|e| e["chatId"] == chat.as_str())
        .collect()
}

// ------------------------------------------------------------------ management API

/// 410 for a random half of the recipients' connections: each recipient either got
/// the message, or had its connection forgotten (one POST, no retry) and an offline
/// event published; never both, never neither. The sender's ack is unaffected.
#[tokio::test]
async fn gone_for_a_fraction_of_connections_forgets_them_and_others_still_receive() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default()).await;
    let alice = st.user("alice").await;
    let mut others = Vec::new();
    for i in 0..8 {
        others.push(st.user(&format!("m{i}")).await);
    }
    let chat = st.group(&alice, &others.iter().collect::<Vec<_>>()).await;
    let (mut a, _) = st.connect(&alice).await;
    let mut recipients = Vec::new();
    for u in &others {
        let (c, id) = st.connect(u).await;
        // Open for a while: a 410 for a connection that opened moments ago may mean its
        // $connect is still running, and such connections are kept
        // (`Store::forget_gone_connection`).
        let mut row = st.store().get_connection(&id).await.unwrap().unwrap();
        row.connected_at -= chat_core::store::CONNECT_GRACE_MS + 1_000;
        st.store().put_connection(&row).await.unwrap();
        st.s.faults().add(
            FaultRule::new(FaultAction::Gone)
                .for_connection(id.as_str())
                .for_method("POST")
                .fraction(0.5)
                .times(1),
        );
        recipients.push((u, c, id));
    }

    a.send(send_frame(&chat, "f-1", "hello all")).await;
    let ack = a.next_of("messageAck").await;
    assert_eq!(ack["position"], 2);
    a.barrier().await;
    st.s.faults().clear();

    let offline = offline_events(&st.s, &chat).await;
    let mut gone = 0;
    for (u, c, id) in recipients.iter_mut() {
        let posts = st.posts_to(id);
        let was_gone = posts.first() == Some(&Some(FaultAction::Gone));
        let notified = offline.iter().any(|e| e["recipientId"] == u.id.as_str());
        let row = st.store().get_connection(id).await.unwrap();
        if was_gone {
            gone += 1;
            assert_eq!(posts.len(), 1, "a 410 is not retried");
            assert!(row.is_none(), "the gone connection was forgotten");
            assert!(notified, "a recipient with no live connection is offline");
        } else {
            assert!(row.is_some());
            assert!(!notified, "reached live: no offline event");
            let frames = c.barrier().await;
            let msgs = of_type(&frames, "message");
            assert_eq!(msgs.len(), 1, "delivered once");
            assert_eq!(msgs[0]["position"], 2);
        }
    }
    assert_eq!(offline.len(), gone, "one offline event per gone recipient");
    st.checked_messages(&chat).await;
    st.s.shutdown().await;
}

/// 500 for one recipient's connection: the post is retried a bounded number of times
/// (the `Poster`'s 3 attempts, and no hidden SDK retries on top), the recipient is
/// then treated as offline (offline event published; the connection is kept, a 500
/// is not a 410), and the other recipient got the message.
#[tokio::test]
async fn management_errors_are_retried_a_bounded_number_of_times_then_count_as_offline() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default()).await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let carol = st.user("carol").await;
    let chat = st.group(&alice, &[&bob, &carol]).await;
    let (mut a, a_id) = st.connect(&alice).await;
    let (mut b, _) = st.connect(&bob).await;
    let (mut c, c_id) = st.connect(&carol).await;
    st.s.faults().add(
        FaultRule::new(FaultAction::Error)
            .for_connection(c_id.as_str())
            .for_method("POST"),
    );

    a.send(send_frame(&chat, "e-1", "hello")).await;
    let ack = a.next_of("messageAck").await;
    assert_eq!(ack["duplicate"], false);
    a.barrier().await;
    st.s.faults().clear();

    let posts = st.posts_to(&c_id);
    assert_eq!(
        posts,
        vec![Some(FaultAction::Error); 3],
        "three attempts, then given up"
    );
    assert_eq!(
        st.posts_to(&a_id).len(),
        2,
        "the sender: its ack and the pong, nothing retried"
    );
    let frames = b.barrier().await;
    assert_eq!(of_type(&frames, "message").len(), 1);
    let offline = offline_events(&st.s, &chat).await;
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0]["recipientId"], carol.id.as_str());
    assert!(
        st.store().get_connection(&c_id).await.unwrap().is_some(),
        "a 500 does not forget the connection"
    );
    // Carol's connection works again and holds nothing of the failed posts.
    let frames = c.barrier().await;
    assert!(of_type(&frames, "message").is_empty());
    st.checked_messages(&chat).await;
    st.s.shutdown().await;
}

/// A slow connection does not hold up the others: fan-out posts concurrently, so the
/// fast recipient has the message (and the sender its ack) before the slow one does.
#[tokio::test]
async fn a_slow_connection_does_not_hold_up_the_other_recipients() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default()).await;
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let carol = st.user("carol").await;
    let chat = st.group(&alice, &[&bob, &carol]).await;
    let (mut a, _) = st.connect(&alice).await;
    let (mut b, _) = st.connect(&bob).await;
    let (mut c, c_id) = st.connect(&carol).await;
    st.s.faults().add(
        FaultRule::new(FaultAction::Delay { ms: 3_000 })
            .for_connection(c_id.as_str())
            .for_method("POST")
            .times(1),
    );

    a.send(send_frame(&chat, "s-1", "hello")).await;
    // Record the order in which the three clients see their frame.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (ta, tb, tc) = (tx.clone(), tx.clone(), tx);
    let (ack, bm, cm) = tokio::join!(
        async {
            let v = a.next_of("messageAck").await;
            ta.send("alice ack").unwrap();
            v
        },
        async {
            let v = b.next_of("message").await;
            tb.send("bob").unwrap();
            v
        },
        async {
            let v = c.next_of("message").await;
            tc.send("carol").unwrap();
            v
        },
    );
    let mut order = Vec::new();
    while let Ok(who) = rx.try_recv() {
        order.push(who);
    }
    assert_eq!(order.last(), Some(&"carol"), "the slow one last: {order:?}");
    assert_eq!(bm["position"], ack["position"]);
    assert_eq!(cm["position"], ack["position"], "slow, but delivered");
    assert_eq!(st.posts_to(&c_id).len(), 1, "a slow post is not retried");
    assert!(offline_events(&st.s, &chat).await.is_empty());
    st.s.shutdown().await;
}

// ------------------------------------------------------------------ DynamoDB

/// A burst of sends over one connection while DynamoDB becomes unreachable midway:
/// every send gets exactly one answer (an ack, or a typed `unavailable` error naming
/// its clientMessageId); after DynamoDB returns, retrying the failed ones with the same
/// clientMessageId stores each exactly once, every acknowledged message is readable,
/// and the chat has no gaps and no half-written messages.
#[tokio::test]
async fn dynamodb_unreachable_mid_burst_fails_sends_cleanly_and_retries_store_once() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default().proxy_dynamodb()).await;
    let proxy = st.s.dynamodb_proxy();
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let (mut a, _) = st.connect(&alice).await;
    let (mut b, _) = st.connect(&bob).await;

    const N: usize = 12;
    let cmids: Vec<String> = (0..N).map(|i| format!("burst-{i}")).collect();
    for (i, id) in cmids.iter().enumerate() {
        a.send(send_frame(&chat, id, &format!("message {i}"))).await;
    }
    // After the third acknowledgement, cut DynamoDB off (whatever call is in flight:
    // the rate counter, the chat read, the transaction or the fan-out's reads); bring
    // it back after three sends failed.
    let mut outcome: HashMap<String, Value> = HashMap::new();
    let mut acks = 0;
    let mut failed = 0;
    let mut cut = false;
    for id in &cmids {
        let v = a.next_where(answers(id)).await;
        if v["type"] == "messageAck" {
            acks += 1;
        } else {
            assert_eq!(v["code"], "unavailable", "{v}");
            assert_eq!(v["action"], "sendMessage");
            failed += 1;
        }
        outcome.insert(id.clone(), v);
        if acks == 3 && !cut {
            proxy.add_fault(ProxyFault::new(ProxyFaultAction::Unreachable));
            cut = true;
        }
        if failed == 3 {
            proxy.clear_faults();
        }
    }
    proxy.clear_faults();
    assert!(failed >= 3, "sends failed while DynamoDB was unreachable");
    a.barrier().await;

    // Nothing half-written, every acknowledged message readable.
    let stored = st.checked_messages(&chat).await;
    let by_cmid: HashMap<String, &Message> = stored
        .iter()
        .filter_map(|m| Some((m.client_message_id.as_ref()?.as_str().to_owned(), m)))
        .collect();
    for (id, v) in &outcome {
        if v["type"] == "messageAck" {
            let m = by_cmid.get(id).expect("an acknowledged message is stored");
            assert_eq!(v["position"], m.position);
            assert_eq!(v["messageId"], m.message_id.as_str());
        }
    }

    // The sender retries what failed, with the same clientMessageIds.
    for (id, v) in &outcome {
        if v["type"] == "error" {
            a.send(send_frame(&chat, id, "retried")).await;
            let ack = a.next_where(answers(id)).await;
            assert_eq!(ack["type"], "messageAck", "{ack}");
            // A failed send may have committed before its answer was lost: then the
            // retry returns the original.
            if let Some(m) = by_cmid.get(id) {
                assert_eq!(ack["position"], m.position);
                assert_eq!(ack["duplicate"], true);
            }
        }
    }
    a.barrier().await;
    let stored = st.checked_messages(&chat).await;
    assert_eq!(stored.len(), N, "each clientMessageId stored exactly once");

    // Bob: each position at most once live; whatever he missed, sync has.
    let frames = b.barrier().await;
    let mut live: Vec<u64> = of_type(&frames, "message")
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect();
    let n_live = live.len();
    live.sort();
    live.dedup();
    assert_eq!(live.len(), n_live, "no position delivered twice");
    b.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": 0}]}))
        .await;
    let sync = b.next_of("syncResult").await;
    assert_eq!(sync["chats"][0]["messages"].as_array().unwrap().len(), N);
    st.s.shutdown().await;
}

/// REST send with DynamoDB unreachable (switched over the proxy's HTTP admin path):
/// `503 unavailable` with `Retry-After`; nothing stored; the retry with the same
/// clientMessageId after recovery stores it once.
#[tokio::test]
async fn rest_send_with_dynamodb_unreachable_is_a_retryable_503() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default().proxy_dynamodb()).await;
    let api = chat_tests::api::Api::new(&st.s);
    let alice = api.register("Alice").await;
    let bob = api.register("Bob").await;
    let (status, body) = api
        .call(
            &alice,
            "POST",
            "/chats",
            Some(json!({"kind": "direct", "userId": bob.id})),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let chat = ChatId::parse(body["chatId"].as_str().unwrap()).unwrap();
    let path = format!("/chats/{chat}/messages");
    let msg = json!({"clientMessageId": "rest-1", "text": "hello"});

    let proxy = st.s.dynamodb_proxy();
    let writes_before = proxy.requests("TransactWriteItems");
    // Switched over HTTP, as `chat-local up --aws-faults` users do.
    let admin = format!("{}/_local/faults", proxy.url());
    let http = reqwest::Client::new();
    let resp = http
        .post(&admin)
        .body(r#"{"operation":"TransactWriteItems","action":{"kind":"unreachable"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        proxy.faults(),
        [ProxyFault::new(ProxyFaultAction::Unreachable).for_operation("TransactWriteItems")]
    );
    let url = format!("{}{path}", st.s.http_url());
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&alice.access_token)
        .json(&msg)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        proxy.requests("TransactWriteItems") - writes_before,
        3,
        "the SDK's three attempts, then the error"
    );
    assert!(st.checked_messages(&chat).await.is_empty());

    let resp = http.delete(&admin).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(proxy.faults().is_empty());
    let (status, first) = api.call(&alice, "POST", &path, Some(msg.clone())).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = api.call(&alice, "POST", &path, Some(msg)).await;
    assert_eq!(status, 200, "a duplicate: {again}");
    assert_eq!(again["position"], first["position"]);
    assert_eq!(st.checked_messages(&chat).await.len(), 1);
    st.s.shutdown().await;
}

/// Throttling: answers within the SDK's retry budget (3 attempts, backoff between) are
/// invisible to the sender; beyond it the send fails with `unavailable`, after exactly
/// the budget, and the retry stores it once.
#[tokio::test]
async fn throttling_is_retried_with_backoff_within_a_bounded_budget() {
    chat_tests::needs_backend!();
    let st = Stack::start(TestStackOptions::default().proxy_dynamodb()).await;
    let proxy = st.s.dynamodb_proxy();
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let (mut a, _) = st.connect(&alice).await;

    proxy.record(true);
    let throttle = |n| {
        ProxyFault::new(ProxyFaultAction::throttle())
            .for_operation("TransactWriteItems")
            .times(n)
    };
    proxy.add_fault(throttle(2));
    a.send(send_frame(&chat, "t-1", "throttled twice")).await;
    let v = a.next_where(answers("t-1")).await;
    assert_eq!(v["type"], "messageAck", "{v}");
    let writes: Vec<u16> = proxy
        .take_calls()
        .iter()
        .filter(|c| c.operation == "TransactWriteItems")
        .map(|c| c.status)
        .collect();
    assert_eq!(
        writes,
        [400, 400, 200],
        "two throttled attempts, then success"
    );

    proxy.add_fault(throttle(3));
    a.send(send_frame(&chat, "t-2", "throttled thrice")).await;
    let v = a.next_where(answers("t-2")).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "unavailable");
    let calls = proxy.take_calls();
    let writes: Vec<&chat_local::proxy::Call> = calls
        .iter()
        .filter(|c| c.operation == "TransactWriteItems")
        .collect();
    assert_eq!(writes.len(), 3, "bounded: three attempts");
    assert!(
        writes.windows(2).all(|w| w[1].started > w[0].finished),
        "attempts one after the other (backoff between)"
    );

    a.send(send_frame(&chat, "t-2", "throttled thrice")).await;
    let v = a.next_where(answers("t-2")).await;
    assert_eq!(v["type"], "messageAck");
    assert_eq!(
        v["duplicate"], false,
        "nothing was stored by the failed send"
    );
    let stored = st.checked_messages(&chat).await;
    assert_eq!(stored.len(), 2);
    st.s.shutdown().await;
}

// ------------------------------------------------------------------ processes

fn process_options() -> TestStackOptions {
    TestStackOptions::default()
        .proxy_dynamodb()
        .processes(chat_tests::process::bin_dir(env!(
            "CARGO_BIN_EXE_chat-function"
        )))
}

/// The repository's template with `WsMessageFunction`'s timeout set to `secs`.
fn template_with_ws_message_timeout(secs: u64) -> chat_local::template::Template {
    let mut t = chat_tests::backend::template().clone();
    t.resources
        .get_mut("WsMessageFunction")
        .expect("WsMessageFunction is in the template")
        .properties
        .as_mapping_mut()
        .expect("its Properties are a mapping")
        .insert("Timeout".into(), serde_yaml::Value::Number(secs.into()));
    t
}

/// `ws-message` killed while its write is in flight: the client gets API Gateway's
/// integration error, the next frame is served (by a new process), and the retry with
/// the same clientMessageId stores and delivers the message exactly once.
#[tokio::test]
async fn a_killed_function_fails_the_frame_and_the_retry_completes_the_send_once() {
    chat_tests::needs_backend!();
    let opts = process_options();
    let bin_dir = opts.process_bin_dir.clone().unwrap();
    let st = Stack::start(opts).await;
    let proxy = st.s.dynamodb_proxy();
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let (mut a, _) = st.connect(&alice).await;
    let (mut b, _) = st.connect(&bob).await;

    // `$connect` writes its connection in a transaction too (the per-user socket cap):
    // wait for the send's transaction, not any.
    let before = proxy.requests("TransactWriteItems");
    proxy.add_fault(
        ProxyFault::new(ProxyFaultAction::Delay { ms: 60_000 })
            .for_operation("TransactWriteItems")
            .times(1),
    );
    a.send(send_frame(&chat, "k-1", "hello")).await;
    assert!(
        proxy
            .wait_for_requests("TransactWriteItems", before + 1, WAIT)
            .await,
        "the write reached the proxy"
    );
    let pids = chat_tests::process::function_pids(&bin_dir, "ws-message");
    assert_eq!(pids.len(), 1, "one ws-message process: {pids:?}");
    chat_tests::process::kill(pids[0]);
    let err = a.next_integration_error().await;
    assert_eq!(err["message"], "Internal server error");

    // The next invocation works (a fresh process), and the retry stores once.
    a.barrier().await;
    a.send(send_frame(&chat, "k-1", "hello")).await;
    let ack = a.next_where(answers("k-1")).await;
    assert_eq!(ack["type"], "messageAck", "{ack}");
    assert_eq!(ack["position"], 1);
    assert_eq!(ack["duplicate"], false);
    a.barrier().await;
    let frames = b.barrier().await;
    let msgs = of_type(&frames, "message");
    assert_eq!(msgs.len(), 1, "delivered once: {frames:?}");
    assert_eq!(msgs[0]["position"], 1);
    assert_eq!(st.checked_messages(&chat).await.len(), 1);
    st.s.shutdown().await;
}

/// `ws-message` times out after its write committed (DynamoDB's answer arrives after
/// the function's 2 s timeout): the client gets the integration error; the retry with
/// the same clientMessageId returns the original (same position, `duplicate: true`),
/// stores nothing new, and the recipient, whom the timed-out invocation never reached,
/// gets the message exactly once.
#[tokio::test]
async fn a_timeout_after_the_write_committed_is_completed_by_the_retry() {
    chat_tests::needs_backend!();
    let mut opts = process_options();
    opts.template = Some(template_with_ws_message_timeout(2));
    let st = Stack::start(opts).await;
    let proxy = st.s.dynamodb_proxy();
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let chat = st.direct(&alice, &bob).await;
    let (mut a, _) = st.connect(&alice).await;
    let (mut b, _) = st.connect(&bob).await;

    proxy.add_fault(
        ProxyFault::new(ProxyFaultAction::DelayAnswer { ms: 5_000 })
            .for_operation("TransactWriteItems")
            .times(1),
    );
    a.send(send_frame(&chat, "to-1", "hello")).await;
    let err = a.next_integration_error().await;
    assert_eq!(err["message"], "Internal server error");
    let stored = st.checked_messages(&chat).await;
    assert_eq!(stored.len(), 1, "the write committed before the timeout");

    a.send(send_frame(&chat, "to-1", "hello")).await;
    let ack = a.next_where(answers("to-1")).await;
    assert_eq!(ack["type"], "messageAck", "{ack}");
    assert_eq!(ack["position"], 1);
    assert_eq!(ack["messageId"], stored[0].message_id.as_str());
    assert_eq!(ack["duplicate"], true);
    a.barrier().await;
    let frames = b.barrier().await;
    let msgs = of_type(&frames, "message");
    assert_eq!(msgs.len(), 1, "delivered once, by the retry: {frames:?}");
    assert_eq!(st.checked_messages(&chat).await.len(), 1);

    // A later retry (the ack was lost again) is a plain duplicate: not delivered again.
    a.send(send_frame(&chat, "to-1", "hello")).await;
    let ack = a.next_where(answers("to-1")).await;
    assert_eq!(ack["duplicate"], true);
    a.barrier().await;
    assert!(of_type(&b.barrier().await, "message").is_empty());
    st.s.shutdown().await;
}

// ------------------------------------------------------------------ SNS

/// SNS unreachable while a member is offline: the message is stored, acknowledged and
/// delivered to the online member; the offline event is retried (bounded) and then
/// reported (`OfflineEventsFailed`), never silently dropped; the offline member gets
/// the message by sync.
#[tokio::test]
async fn sns_unavailable_stores_and_delivers_and_reports_the_failed_offline_event() {
    chat_tests::needs_backend!();
    let cap = chat_tests::capture::capture();
    let st = Stack::start(TestStackOptions::default().proxy_sns()).await;
    let proxy = st.s.sns_proxy();
    let alice = st.user("alice").await;
    let bob = st.user("bob").await;
    let carol = st.user("carol").await;
    let chat = st.group(&alice, &[&bob, &carol]).await;
    let (mut a, _) = st.connect(&alice).await;
    let (mut c, _) = st.connect(&carol).await;
    proxy.add_fault(ProxyFault::new(ProxyFaultAction::Unreachable));

    a.send(send_frame(&chat, "sns-1", "hello")).await;
    let ack = a.next_of("messageAck").await;
    assert_eq!(ack["position"], 2);
    a.barrier().await;
    let frames = c.barrier().await;
    assert_eq!(of_type(&frames, "message").len(), 1, "carol is online");
    assert_eq!(st.checked_messages(&chat).await.len(), 2);

    assert_eq!(
        proxy.requests("PublishBatch"),
        6,
        "two rounds of the SDK's three attempts"
    );
    assert!(offline_events(&st.s, &chat).await.is_empty());
    // The capture is the whole test binary's: only the invocations on this chat count.
    let requests: Vec<String> = cap
        .logs_json()
        .iter()
        .filter(|l| l["span"]["function"] == "ws-message" && l["span"]["chat_id"] == chat.as_str())
        .filter_map(|l| l["span"]["request_id"].as_str().map(str::to_owned))
        .collect();
    let reported = cap.emf_json().iter().any(|v| {
        requests.iter().any(|id| v["requestId"] == id.as_str())
            && v["Function"] == "ws-message"
            && v["OfflineEventsFailed"].as_f64() == Some(1.0)
    });
    assert!(
        reported,
        "OfflineEventsFailed reported: {:?}",
        cap.emf_lines()
            .iter()
            .filter(|l| l.contains("Offline"))
            .collect::<Vec<_>>()
    );

    // Bob, back online, catches up by sync.
    proxy.clear_faults();
    let (mut b, _) = st.connect(&bob).await;
    b.send(json!({"action": "sync", "chats": [{"chatId": chat, "position": 1}]}))
        .await;
    let sync = b.next_of("syncResult").await;
    let msgs = sync["chats"][0]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["clientMessageId"], "sns-1");
    st.s.shutdown().await;
}
