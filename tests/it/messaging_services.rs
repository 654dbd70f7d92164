//! The shared chat services (`chat_core::messaging`) against the local backend
//! (DynamoDB Local + moto, started by `./dev test`), with a recording fake of API
//! Gateway's `@connections` API: send + fan-out to every device but the origin, 410
//! handling, offline events read back from an SQS queue subscribed to the offline
//! topic, idempotent retries, receipts and sync paging. The same behaviours are tested
//! through the real gateway in `realtime.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chat_core::auth::tokens::TokenConfig;
use chat_core::ids::{ChatId, ClientMessageId, ConnectionId, UserId};
use chat_core::input::{DisplayName, GroupName, MessageText, UserName};
use chat_core::messaging::{ChatServices, WS_SYNC_MAX_BYTES};
use chat_core::model::{now_millis, Connection};
use chat_core::protocol::KnownPosition;
use chat_core::store::{NewGroup, Store};
use chat_tests::backend::{endpoints, template, unique_prefix};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Fake {
    posts: Mutex<Vec<(String, Value)>>,
    gone: Mutex<HashSet<String>>,
}

async fn post_to(
    State(fake): State<Arc<Fake>>,
    Path((_stage, id)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    if fake.gone.lock().unwrap().contains(&id) {
        return StatusCode::GONE;
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.posts.lock().unwrap().push((id, v));
    StatusCode::OK
}

struct Env {
    services: ChatServices,
    store: Store,
    fake: Arc<Fake>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn setup() -> Env {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(post_to))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ep = endpoints();
    let stack = chat_local::provision::provision(template(), &ep, &unique_prefix("msg"))
        .await
        .expect("provision");
    let topic = stack.topic_arn("OfflineMessageTopic").unwrap().to_owned();
    let env = ep.aws_env();
    let sdk = chat_core::aws::sdk_config(&env).await;
    let sns = chat_core::aws::sns(&sdk, &env);
    let sqs = chat_local::provision::sqs_client(&sdk, &ep);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{}-offline-tap", stack.prefix))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!(
        "arn:aws:sqs:us-east-1:123456789012:{}-offline-tap",
        stack.prefix
    );
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let store = Store::new(chat_core::aws::dynamodb(&sdk, &env), stack.tables.clone());
    let mgmt = aws_sdk_apigatewaymanagement::Client::from_conf(
        aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(format!("http://{addr}/test"))
            .build(),
    );
    let tokens = TokenConfig::new(&[7u8; 32], "chat", "chat-clients", 900, 3600).unwrap();
    let services = ChatServices::new(store.clone(), tokens, mgmt, sns, topic);
    Env {
        services,
        store,
        fake,
        sqs,
        queue_url,
    }
}

impl Env {
    async fn user(&self, name: &str) -> UserId {
        let id = UserId::generate();
        let unique = format!("{name}{}", &id.as_str()[20..]).to_ascii_lowercase();
        self.store
            .create_user(
                &id,
                &UserName::parse(&unique).unwrap(),
                &DisplayName::parse(name).unwrap(),
                "x",
                now_millis(),
            )
            .await
            .unwrap();
        id
    }

    async fn connect(&self, user: &UserId, id: &str) -> ConnectionId {
        let c = ConnectionId::parse(id).unwrap();
        let now = now_millis();
        self.store
            .put_connection(&Connection {
                connection_id: c.clone(),
                user_id: user.clone(),
                device_label: "t".into(),
                // Open for a minute already: a 410 for it means it is gone (not still
                // in its $connect, see `Store::forget_gone_connection`).
                connected_at: now - 60_000,
                expires_at: now + 3_600_000,
                source_ip: "127.0.0.1".into(),
                credential: None,
            })
            .await
            .unwrap();
        c
    }

    fn posts_to(&self, id: &str, ty: &str) -> Vec<Value> {
        self.fake
            .posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, v)| c == id && v["type"] == ty)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Offline events in the tap queue, waiting (bounded) until `n` arrived.
    async fn offline_events(&self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while out.len() < n && tokio::time::Instant::now() < deadline {
            let r = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in r.messages() {
                out.push(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
            }
        }
        out
    }
}

fn t(s: &str) -> MessageText {
    MessageText::parse(s).unwrap()
}
fn cm(s: &str) -> ClientMessageId {
    ClientMessageId::parse(s).unwrap()
}

#[tokio::test]
async fn send_fans_out_to_every_device_but_the_origin_and_publishes_offline() {
    chat_tests::needs_backend!();
    let e = setup().await;
    let a = e.user("alice").await;
    let b = e.user("bob").await;
    let c = e.user("carol").await;
    let (chat, _) = e
        .store
        .create_group(
            &NewGroup {
                creator: a.clone(),
                name: GroupName::parse("Team").unwrap(),
                members: vec![b.clone(), c.clone()],
            },
            now_millis(),
        )
        .await
        .unwrap();
    let a1 = e.connect(&a, "a1").await;
    e.connect(&a, "a2").await;
    e.connect(&b, "b1").await;
    e.connect(&b, "b2gone").await;
    e.fake.gone.lock().unwrap().insert("b2gone".into());
    // carol: offline.

    let sent = e
        .services
        .send_message(
            &a,
            &chat.chat_id,
            &cm("k1"),
            &t("hello"),
            Some(a1.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(sent.message.position, 2);
    assert!(!sent.duplicate);
    let report = e.services.fan_out(&sent).await.unwrap();
    assert_eq!(
        e.posts_to("a1", "message").len(),
        0,
        "origin gets the ack only"
    );
    assert_eq!(e.posts_to("a2", "message").len(), 1);
    assert_eq!(e.posts_to("b1", "message").len(), 1);
    assert_eq!(report.offline, vec![c.clone()]);
    assert_eq!(report.delivery.totals().gone, 1);
    // The gone connection was forgotten.
    assert!(e
        .store
        .get_connection(&ConnectionId::parse("b2gone").unwrap())
        .await
        .unwrap()
        .is_none());
    let events = e.offline_events(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["recipientId"], c.as_str());
    assert_eq!(events[0]["senderDisplayName"], "alice");
    assert_eq!(events[0]["chatName"], "Team");
    assert_eq!(events[0]["preview"], "hello");

    // A retry: same message, no second delivery.
    let again = e
        .services
        .send_message(&a, &chat.chat_id, &cm("k1"), &t("hello"), Some(a1), None)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.message_id, sent.message.message_id);
    e.services.fan_out(&again).await.unwrap();
    assert_eq!(e.posts_to("b1", "message").len(), 1);

    // Non-members and unknown chats: the same not_found, nothing stored.
    let eve = e.user("eve").await;
    let err = e
        .services
        .send_message(&eve, &chat.chat_id, &cm("x"), &t("hi"), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    let err2 = e
        .services
        .send_message(&a, &ChatId::new_group(), &cm("x"), &t("hi"), None, None)
        .await
        .unwrap_err();
    assert_eq!(err2.code(), "not_found");
    assert_eq!(err.to_string(), err2.to_string());
    let chat_now = e
        .store
        .get_chat(&chat.chat_id, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chat_now.last_position, 2);
}

#[tokio::test]
async fn receipts_move_forward_and_notify() {
    chat_tests::needs_backend!();
    let e = setup().await;
    let a = e.user("alice").await;
    let b = e.user("bob").await;
    let (chat, _) = e
        .store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    e.connect(&a, "ra").await;
    let b1 = e.connect(&b, "rb").await;
    for i in 0..3 {
        e.services
            .send_message(
                &a,
                &chat.chat_id,
                &cm(&format!("m{i}")),
                &t("x"),
                None,
                None,
            )
            .await
            .unwrap();
    }
    let moved = e
        .services
        .acknowledge_delivered(&b, &chat.chat_id, 3)
        .await
        .unwrap();
    assert!(moved.moved);
    assert_eq!(e.posts_to("ra", "delivered")[0]["position"], 3);
    assert!(e.posts_to("rb", "delivered").is_empty());
    e.services
        .mark_read(&b, &chat.chat_id, 2, Some(&b1))
        .await
        .unwrap();
    let back = e
        .services
        .mark_read(&b, &chat.chat_id, 1, Some(&b1))
        .await
        .unwrap();
    assert!(!back.moved);
    assert_eq!(e.posts_to("ra", "read").len(), 1);
    let err = e
        .services
        .mark_read(&b, &chat.chat_id, 4, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "validation_failed");
}

#[tokio::test]
async fn sync_pages_return_exactly_the_missing_messages() {
    chat_tests::needs_backend!();
    let e = setup().await;
    let a = e.user("alice").await;
    let b = e.user("bob").await;
    let (chat, _) = e
        .store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    for i in 0..12 {
        e.services
            .send_message(
                &a,
                &chat.chat_id,
                &cm(&format!("s{i}")),
                &t(&format!("m{i}")),
                None,
                None,
            )
            .await
            .unwrap();
    }
    // A big message to exercise the byte budget: 60,000 chars x 12 do not fit one page.
    let big = "é".repeat(60_000);
    for i in 0..3 {
        e.services
            .send_message(
                &a,
                &chat.chat_id,
                &cm(&format!("big{i}")),
                &t(&big),
                None,
                None,
            )
            .await
            .unwrap();
    }
    let known = vec![KnownPosition {
        chat_id: chat.chat_id.clone(),
        position: 4,
        change_seq: None,
    }];
    let mut got = Vec::new();
    let mut page = e
        .services
        .sync(&b, &known, 5, None, WS_SYNC_MAX_BYTES)
        .await
        .unwrap();
    let mut pages = 1;
    loop {
        let size = serde_json::to_vec(&page).unwrap().len();
        assert!(size < 128 * 1024, "page of {size} bytes");
        for c in &page.chats {
            got.extend(c.messages.iter().map(|m| m.position));
            got.extend(c.refs.iter().map(|r| r.position));
        }
        match page.cursor.clone() {
            None => break,
            Some(cur) => {
                page = e
                    .services
                    .sync(&b, &[], 5, Some(&cur), WS_SYNC_MAX_BYTES)
                    .await
                    .unwrap();
                pages += 1;
            }
        }
    }
    got.sort();
    assert_eq!(got, (5..=15).collect::<Vec<u64>>());
    assert!(pages >= 3);
}
