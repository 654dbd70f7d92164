//! Observability end to end (issue 12): a `sendMessage` through the local gateway with
//! the real functions in-process, DynamoDB Local and moto. Captures what the functions
//! log (the production JSON subscriber, `chat_core::telemetry::init_with_writer`,
//! writing into memory) and the EMF records they write (`chat_core::metrics::set_sink`)
//! and asserts names, units, values and log fields, and that no line carries the
//! message text or a token.
//!
//! The subscriber and the EMF sink are process-global: the test reads the binary's one
//! [`chat_tests::capture`] and picks its own records out by chat, user and request id
//! (other tests' functions log into the same capture at the same time).

use chat_core::auth::tokens::TokenConfig;
use chat_core::ids::{SessionId, UserId};
use chat_core::input::{DisplayName, UserName};
use chat_core::model::now_millis;
use chat_tests::capture::capture;
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &TestStack, token: &str, device: &str) -> Ws {
    let url = format!("{}?token={token}&device={device}", s.ws_url());
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// The next text frame of type `ty` (others are skipped).
async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {ty} frame in time"))
            .expect("socket open")
            .expect("frame");
        if let WsMessage::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == ty {
                return v;
            }
        }
    }
}

fn metric_def<'a>(record: &'a Value, name: &str) -> Option<&'a Value> {
    record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()?
        .iter()
        .find(|d| d["Name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_logs_and_counts_what_happened() {
    chat_tests::needs_backend!();
    let cap = capture();
    let s = TestStack::start().await;
    let tokens = TokenConfig::from_env(s.env()).unwrap();

    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let id = UserId::generate();
        let unique = format!("{name}{}", &id.as_str()[20..]).to_ascii_lowercase();
        s.store()
            .create_user(
                &id,
                &UserName::parse(&unique).unwrap(),
                &DisplayName::parse(name).unwrap(),
                "not-a-real-hash",
                now_millis(),
            )
            .await
            .unwrap();
        let token = tokens.issue(&id, &SessionId::generate(), 0, now_millis());
        users.push((id, token));
    }
    let (alice, alice_token) = users[0].clone();
    let (bob, bob_token) = users[1].clone();
    let chat = s
        .store()
        .get_or_create_direct(&alice, &bob, now_millis())
        .await
        .unwrap()
        .0
        .chat_id;

    let mut a = connect(&s, &alice_token, "laptop").await;
    let mut b1 = connect(&s, &bob_token, "phone").await;
    let mut b2 = connect(&s, &bob_token, "tablet").await;

    let secret = format!("the eagle lands at {}", ulid::Ulid::new());
    a.send(WsMessage::Text(
        json!({"action": "sendMessage", "chatId": chat.as_str(), "clientMessageId": "c-1", "text": secret})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = next_of(&mut a, "messageAck").await;
    assert_eq!(ack["position"], 1);
    for b in [&mut b1, &mut b2] {
        let m = next_of(b, "message").await;
        assert_eq!(m["text"], secret.as_str());
    }

    // The completion line of this send (the chat is this test's), then the EMF record
    // of the same invocation (flushed when the invocation ends).
    let done = cap
        .until("the ws-message completion line", WAIT, |c| {
            c.logs_json().into_iter().find(|l| {
                l["message"] == "invocation done"
                    && l["span"]["function"] == "ws-message"
                    && l["span"]["chat_id"] == chat.as_str()
            })
        })
        .await;
    let request_id = done["span"]["request_id"]
        .as_str()
        .expect("request_id in the span")
        .to_owned();
    let record = cap
        .until("the ws-message EMF record", WAIT, |c| {
            c.emf_json()
                .into_iter()
                .find(|r| r["requestId"] == request_id.as_str())
        })
        .await;
    assert_eq!(record["Function"], "ws-message");
    assert!(record.get("MessagesSent").is_some(), "{record}");
    let cw = &record["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "ServerlessChat");
    assert_eq!(cw["Dimensions"], json!([["Function"]]));
    for (name, unit, value) in [
        ("MessagesSent", "Count", json!(1.0)),
        ("FanOutSize", "Count", json!(2.0)),
        // The ack to alice plus the message to bob's two devices.
        ("DeliveriesAttempted", "Count", json!(3.0)),
        ("DeliveriesSucceeded", "Count", json!(3.0)),
    ] {
        let def = metric_def(&record, name).unwrap_or_else(|| panic!("{name} in {record}"));
        assert_eq!(def["Unit"], unit, "{name}");
        assert_eq!(record[name], value, "{name}");
    }
    for absent in [
        "DeliveriesFailed",
        "DeliveriesGone",
        "OfflineEvents",
        "StoreErrors",
    ] {
        assert!(record.get(absent).is_none(), "{absent} in {record}");
    }
    assert_eq!(
        metric_def(&record, "AckLatency").unwrap()["Unit"],
        "Milliseconds"
    );
    let ack_ms = record["AckLatency"]
        .as_f64()
        .expect("one AckLatency sample");
    assert!((0.0..15_000.0).contains(&ack_ms), "{ack_ms}");

    // Connects were counted by ws-connect (one record per $connect of these users).
    let connect_requests: Vec<String> = cap
        .logs_json()
        .iter()
        .filter(|l| {
            l["message"] == "invocation done"
                && l["span"]["function"] == "ws-connect"
                && [alice.as_str(), bob.as_str()]
                    .contains(&l["span"]["user_id"].as_str().unwrap_or(""))
        })
        .filter_map(|l| l["span"]["request_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(connect_requests.len(), 3, "{connect_requests:?}");
    let connects: f64 = cap
        .emf_json()
        .iter()
        .filter(|r| r["Function"] == "ws-connect")
        .filter(|r| {
            connect_requests
                .iter()
                .any(|id| r["requestId"] == id.as_str())
        })
        .filter_map(|r| r["Connects"].as_f64())
        .sum();
    assert_eq!(connects, 3.0);

    // The completion line of the send, with the span's fields.
    let span = &done["span"];
    assert_eq!(span["name"], "invocation");
    assert_eq!(span["function"], "ws-message");
    assert_eq!(span["route"], "sendMessage");
    assert_eq!(span["action"], "sendMessage");
    assert_eq!(span["user_id"], alice.as_str());
    assert_eq!(span["chat_id"], chat.as_str());
    assert_eq!(done["outcome"], "ok");
    assert_eq!(done["status"], 200);
    assert!(done["duration_ms"].as_f64().is_some(), "{done}");
    assert_eq!(done["level"], "INFO");
    // The fan-out line is in the same request.
    assert!(cap
        .logs_json()
        .iter()
        .any(|l| { l["message"] == "fan-out done" && l["span"]["request_id"] == request_id }));
    // $connect completions carry the user.
    assert!(cap.logs_json().iter().any(|l| {
        l["message"] == "invocation done"
            && l["span"]["function"] == "ws-connect"
            && l["span"]["route"] == "$connect"
            && l["span"]["user_id"] == bob.as_str()
    }));

    // Nothing logged carries the text or a token.
    let lines = cap.log_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(!line.contains(&secret), "message text logged: {line}");
        assert!(!line.contains(&alice_token), "token logged: {line}");
        assert!(!line.contains(&bob_token), "token logged: {line}");
    }
    for line in &cap.emf_lines() {
        assert!(!line.contains(&secret) && !line.contains(&alice_token));
    }

    s.shutdown().await;
}
