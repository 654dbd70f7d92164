//! Push notifications against real local servers: DynamoDB Local and moto (SNS with
//! APNS and GCM platform applications, whose recorded platform messages are read back
//! from moto's `/moto-api/data.json`).
//!
//! Two kinds of tests:
//! - End to end through the local gateway (`e2e_*`, on `chat_tests::TestStack`): users
//!   and devices registered over REST, messages sent over REST or WebSocket, the
//!   offline event published to the topic, delivered by the gateway's SNS bridge to
//!   the real push-notifier, and the pushes read back from moto.
//! - Edge cases with the functions in-process through their `build(env)` entry points
//!   (events as API Gateway and SNS deliver them), where a test needs to hand the
//!   notifier a specific event (redelivery, malformed records, no configuration).
//!
//! Each test provisions its own stack (tables, topic, platform applications) under a
//! unique prefix on the backend `./dev test` starts.

use chat_core::config::{Env, Tables};
use chat_core::function::SharedFunction;
use chat_core::ids::{ChatId, ClientMessageId, ConnectionId, SessionId, UserId};
use chat_core::input::{DisplayName, GroupName, MessageText, UserName};
use chat_core::model::{now_millis, rfc3339, ChatKind, Connection};
use chat_core::store::{NewGroup, Store};
use serde_json::{json, Value};
use std::collections::HashMap;

const SIGNING_KEY: &str = "push-tests-signing-key-0123456789abcdef0123456789";

struct Stack {
    env: Env,
    store: Store,
    sns: aws_sdk_sns::Client,
    moto: String,
    devices: SharedFunction,
    notifier: SharedFunction,
    apns_app: String,
    fcm_app: String,
}

impl Stack {
    async fn start() -> Stack {
        Self::start_with(true).await
    }

    async fn start_with(platform_apps: bool) -> Stack {
        let endpoints = chat_tests::backend::endpoints();
        let prefix = chat_tests::unique_prefix("push");
        let provisioned =
            chat_local::provision::provision(chat_tests::backend::template(), &endpoints, &prefix)
                .await
                .expect("provision the stack");
        let mut env = endpoints.aws_env();
        for (var, logical) in Tables::VARS {
            env.set(var, provisioned.name_of(logical));
        }
        env.set("JWT_SIGNING_KEY", SIGNING_KEY);
        let sdk = chat_core::aws::sdk_config(&env).await;
        let db = chat_core::aws::dynamodb(&sdk, &env);
        let sns = chat_core::aws::sns(&sdk, &env);
        let moto = endpoints.moto.clone();
        let apns_app = provisioned.platform_applications.apns.clone();
        let fcm_app = provisioned.platform_applications.fcm.clone();
        if platform_apps {
            env.set("APNS_PLATFORM_APPLICATION_ARN", &apns_app);
            env.set("FCM_PLATFORM_APPLICATION_ARN", &fcm_app);
        }
        let devices = http_devices::build(env.clone())
            .await
            .expect("build http-devices");
        let notifier = push_notifier::build(env.clone())
            .await
            .expect("build push-notifier");
        let store = Store::new(db, Tables::from_env(&env).expect("tables"));
        Stack {
            env,
            store,
            sns,
            moto,
            devices,
            notifier,
            apns_app,
            fcm_app,
        }
    }

    async fn user(&self, name: &str) -> (UserId, String) {
        let id = UserId::generate();
        let uname = format!("{name}{}", &id.as_str()[20..]).to_lowercase();
        self.store
            .create_user(
                &id,
                &UserName::parse(&uname).expect("user name"),
                &DisplayName::parse(name).expect("display name"),
                "not-a-real-hash",
                now_millis(),
            )
            .await
            .expect("create user");
        let tokens = chat_core::auth::tokens::TokenConfig::from_env(&self.env).expect("tokens");
        let token = tokens.issue(&id, &SessionId::generate(), 0, now_millis());
        (id, token)
    }

    async fn http(
        &self,
        token: &str,
        method: &str,
        route: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut path_params = json!({});
        if let Some(id) = path.strip_prefix("/devices/") {
            path_params = json!({ "deviceId": id });
        }
        let event = json!({
            "version": "2.0",
            "routeKey": format!("{method} {route}"),
            "rawPath": path,
            "rawQueryString": "",
            "headers": {
                "authorization": format!("Bearer {token}"),
                "content-type": "application/json",
            },
            "pathParameters": path_params,
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": "localhost",
                "domainPrefix": "localhost",
                "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests" },
                "requestId": ulid::Ulid::new().to_string(),
                "routeKey": format!("{method} {route}"),
                "stage": "$default",
                "time": "01/Jan/2025:00:00:00 +0000",
                "timeEpoch": now_millis(),
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false,
        });
        let out = self
            .devices
            .invoke(event, lambda_runtime::Context::default())
            .await
            .expect("http-devices answers");
        let status = out["statusCode"].as_u64().expect("statusCode") as u16;
        let body = match out["body"].as_str() {
            Some(b) if !b.is_empty() => serde_json::from_str(b).expect("JSON body"),
            _ => Value::Null,
        };
        (status, body)
    }

    async fn register(&self, token: &str, platform: &str, device_token: &str) -> (u16, Value) {
        self.http(
            token,
            "POST",
            "/devices",
            "/devices",
            Some(json!({ "platform": platform, "token": device_token })),
        )
        .await
    }

    /// Deliver offline events to the push notifier as SNS does.
    async fn deliver(&self, events: &[Value]) -> Result<Value, String> {
        let records: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:offline:sub",
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": ulid::Ulid::new().to_string(),
                        "TopicArn": "arn:aws:sns:us-east-1:000000000000:offline",
                        "Subject": null,
                        "Message": e.to_string(),
                        "Timestamp": rfc3339(now_millis()),
                        "SignatureVersion": "1",
                        "Signature": "local",
                        "SigningCertUrl": "http://localhost/cert",
                        "UnsubscribeUrl": "http://localhost/unsubscribe",
                        "MessageAttributes": {},
                    }
                })
            })
            .collect();
        self.notifier
            .invoke(
                json!({ "Records": records }),
                lambda_runtime::Context::default(),
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Platform messages moto recorded, by endpoint ARN (only this stack's apps).
    async fn recorded(&self) -> HashMap<String, Vec<Value>> {
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", self.moto))
            .await
            .expect("moto data")
            .json()
            .await
            .expect("moto JSON");
        let mut out: HashMap<String, Vec<Value>> = HashMap::new();
        let empty = vec![];
        for ep in data["sns"]["PlatformEndpoint"].as_array().unwrap_or(&empty) {
            let arn = ep["arn"].as_str().unwrap_or_default().to_owned();
            let ours = [&self.apns_app, &self.fcm_app].iter().any(|app| {
                arn.contains(&format!("/{}/", app.rsplit('/').next().unwrap_or_default()))
            });
            if !ours {
                continue;
            }
            let msgs = ep["messages"]
                .as_object()
                .map(|m| {
                    m.values()
                        .map(|v| {
                            serde_json::from_str(v.as_str().unwrap_or("null"))
                                .unwrap_or(Value::Null)
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.insert(arn, msgs);
        }
        out
    }

    async fn endpoint_of(&self, user: &UserId, device_id: &str) -> String {
        self.store
            .list_devices(user)
            .await
            .expect("devices")
            .into_iter()
            .find(|d| d.device_id.as_str() == device_id)
            .and_then(|d| d.endpoint_arn)
            .expect("device with endpoint")
    }
}

/// A fresh APNs token (unique: moto matches tokens across platform applications).
fn apns_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fcm_token(tag: &str) -> String {
    format!("fcm:{tag}:{}", ulid::Ulid::new()).replace(' ', "_") + &"x".repeat(100)
}

/// An offline event as the send path publishes it, for a stored message.
async fn send(
    stack: &Stack,
    chat: &ChatId,
    sender: &UserId,
    recipient: &UserId,
    kind: ChatKind,
    text: &str,
) -> Value {
    let appended = stack
        .store
        .append_text(
            chat,
            sender,
            &ClientMessageId::parse(&ulid::Ulid::new().to_string()).expect("cid"),
            &MessageText::parse(text).expect("text"),
            now_millis(),
        )
        .await
        .expect("append");
    let m = appended.message;
    json!({
        "kind": "offlineMessage",
        "version": 1,
        "recipientId": recipient,
        "chatId": chat,
        "chatKind": kind.as_str(),
        "chatName": if kind == ChatKind::Group { Some("Climbing") } else { None },
        "messageId": m.message_id,
        "position": m.position,
        "senderId": sender,
        "senderDisplayName": "Ada",
        "preview": chat_core::input::preview(text, chat_core::model::PREVIEW_CHARS),
        "sentAt": rfc3339(m.sent_at),
    })
}

fn apns_alert(msg: &Value) -> Value {
    let apns: Value =
        serde_json::from_str(msg["APNS"].as_str().expect("APNS key")).expect("APNS JSON");
    apns
}

#[tokio::test]
async fn two_devices_get_one_push_each_per_message_and_redelivery_does_not_repeat() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (ada, _) = s.user("Ada").await;
    let (bob, bob_token) = s.user("Bob").await;
    let (st, phone) = s.register(&bob_token, "apns", &apns_token()).await;
    assert_eq!(st, 201, "{phone}");
    assert_eq!(phone["pushEnabled"], true);
    let (st, tablet) = s.register(&bob_token, "fcm", &fcm_token("tablet")).await;
    assert_eq!(st, 201, "{tablet}");
    let (chat, _) = s
        .store
        .get_or_create_direct(&ada, &bob, now_millis())
        .await
        .expect("chat");

    let first = send(&s, &chat.chat_id, &ada, &bob, ChatKind::Direct, "hello Bob").await;
    let second = send(
        &s,
        &chat.chat_id,
        &ada,
        &bob,
        ChatKind::Direct,
        &"long ".repeat(100),
    )
    .await;
    s.deliver(std::slice::from_ref(&first))
        .await
        .expect("first delivered");
    s.deliver(&[second]).await.expect("second delivered");
    // SNS delivers the first event again: nothing new is sent.
    s.deliver(&[first]).await.expect("redelivery");

    let rec = s.recorded().await;
    let phone_arn = s
        .endpoint_of(&bob, phone["deviceId"].as_str().unwrap())
        .await;
    let tablet_arn = s
        .endpoint_of(&bob, tablet["deviceId"].as_str().unwrap())
        .await;
    let phone_msgs = &rec[&phone_arn];
    let tablet_msgs = &rec[&tablet_arn];
    assert_eq!(phone_msgs.len(), 2, "{phone_msgs:?}");
    assert_eq!(tablet_msgs.len(), 2, "{tablet_msgs:?}");

    // moto's record is unordered: order by the message position.
    let mut alerts: Vec<Value> = phone_msgs.iter().map(apns_alert).collect();
    alerts.sort_by_key(|a| a["position"].as_u64());
    let a1 = &alerts[0];
    assert_eq!(a1["aps"]["alert"]["title"], "Ada");
    assert_eq!(a1["aps"]["alert"]["body"], "hello Bob");
    assert_eq!(a1["aps"]["thread-id"], chat.chat_id.as_str());
    assert_eq!(a1["chatId"], chat.chat_id.as_str());
    assert_eq!(a1["aps"]["badge"], 1);
    let a2 = &alerts[1];
    assert_eq!(a2["aps"]["badge"], 2);
    let body = a2["aps"]["alert"]["body"].as_str().unwrap();
    assert_eq!(body.chars().count(), chat_core::model::PREVIEW_CHARS + 1);
    assert!(body.ends_with('…'));

    let mut fcm: Vec<Value> = tablet_msgs
        .iter()
        .map(|t| serde_json::from_str(t["GCM"].as_str().expect("GCM key")).expect("GCM JSON"))
        .collect();
    fcm.sort_by_key(|f| {
        f["fcmV1Message"]["message"]["data"]["position"]
            .as_str()
            .map(str::to_owned)
    });
    let m = &fcm[0]["fcmV1Message"]["message"];
    assert_eq!(m["notification"]["title"], "Ada");
    assert_eq!(m["android"]["collapse_key"], chat.chat_id.as_str());
    assert_eq!(m["data"]["chatId"], chat.chat_id.as_str());
}

#[tokio::test]
async fn group_pushes_name_the_group_and_muted_chats_send_none() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (ada, _) = s.user("Ada").await;
    let (bob, bob_token) = s.user("Bob").await;
    let (st, phone) = s.register(&bob_token, "apns", &apns_token()).await;
    assert_eq!(st, 201);
    let (group, _) = s
        .store
        .create_group(
            &NewGroup {
                creator: ada.clone(),
                name: GroupName::parse("Climbing").unwrap(),
                members: vec![bob.clone()],
            },
            now_millis(),
        )
        .await
        .expect("group");
    let ev = send(
        &s,
        &group.chat_id,
        &ada,
        &bob,
        ChatKind::Group,
        "see you at 6",
    )
    .await;
    s.deliver(&[ev]).await.expect("delivered");
    s.store
        .set_muted(&group.chat_id, &bob, true)
        .await
        .expect("mute");
    let muted = send(&s, &group.chat_id, &ada, &bob, ChatKind::Group, "anyone?").await;
    s.deliver(&[muted]).await.expect("delivered");

    let rec = s.recorded().await;
    let arn = s
        .endpoint_of(&bob, phone["deviceId"].as_str().unwrap())
        .await;
    assert_eq!(
        rec.get(&arn).map(Vec::len),
        Some(1),
        "the muted message made no push"
    );
    let a = apns_alert(&rec[&arn][0]);
    assert_eq!(a["aps"]["alert"]["title"], "Climbing");
    assert_eq!(a["aps"]["alert"]["body"], "Ada: see you at 6");
}

#[tokio::test]
async fn a_disabled_endpoint_is_cleaned_up_and_other_devices_still_get_theirs() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (ada, _) = s.user("Ada").await;
    let (bob, bob_token) = s.user("Bob").await;
    let (_, dead) = s.register(&bob_token, "apns", &apns_token()).await;
    let (_, alive) = s.register(&bob_token, "fcm", &fcm_token("alive")).await;
    let dead_arn = s
        .endpoint_of(&bob, dead["deviceId"].as_str().unwrap())
        .await;
    let alive_arn = s
        .endpoint_of(&bob, alive["deviceId"].as_str().unwrap())
        .await;
    s.sns
        .set_endpoint_attributes()
        .endpoint_arn(&dead_arn)
        .attributes("Enabled", "false")
        .send()
        .await
        .expect("disable endpoint");
    let (chat, _) = s
        .store
        .get_or_create_direct(&ada, &bob, now_millis())
        .await
        .unwrap();
    let ev = send(&s, &chat.chat_id, &ada, &bob, ChatKind::Direct, "ping").await;
    s.deliver(&[ev])
        .await
        .expect("a disabled endpoint is not a failure");

    let rec = s.recorded().await;
    assert_eq!(rec[&alive_arn].len(), 1);
    assert!(rec.get(&dead_arn).is_none_or(|m| m.is_empty()));
    let left: Vec<String> = s
        .store
        .list_devices(&bob)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id.to_string())
        .collect();
    assert_eq!(left, vec![alive["deviceId"].as_str().unwrap().to_owned()]);
    let (st, list) = s
        .http(&bob_token, "GET", "/devices", "/devices", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    // The endpoint itself is gone from SNS.
    let gone = s
        .sns
        .get_endpoint_attributes()
        .endpoint_arn(&dead_arn)
        .send()
        .await;
    assert!(gone.is_err(), "the disabled endpoint was deleted");
}

#[tokio::test]
async fn an_online_recipient_gets_no_push() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (ada, _) = s.user("Ada").await;
    let (bob, bob_token) = s.user("Bob").await;
    let (_, phone) = s.register(&bob_token, "apns", &apns_token()).await;
    let now = now_millis();
    let conn = ConnectionId::parse(&format!("{}=", ulid::Ulid::new())).expect("connection id");
    s.store
        .put_connection(&Connection {
            connection_id: conn.clone(),
            user_id: bob.clone(),
            device_label: "laptop".into(),
            connected_at: now,
            expires_at: now + 3_600_000,
            source_ip: "127.0.0.1".into(),
            credential: None,
        })
        .await
        .expect("connection");
    let (chat, _) = s.store.get_or_create_direct(&ada, &bob, now).await.unwrap();
    let ev = send(
        &s,
        &chat.chat_id,
        &ada,
        &bob,
        ChatKind::Direct,
        "are you there",
    )
    .await;
    s.deliver(&[ev]).await.expect("delivered");
    let arn = s
        .endpoint_of(&bob, phone["deviceId"].as_str().unwrap())
        .await;
    assert_eq!(s.recorded().await.get(&arn).map(Vec::len), Some(0));
    // Once offline, the same kind of event does produce a push.
    s.store
        .remove_connection(&conn, now_millis())
        .await
        .expect("disconnect");
    let ev = send(&s, &chat.chat_id, &ada, &bob, ChatKind::Direct, "now?").await;
    s.deliver(&[ev]).await.expect("delivered");
    assert_eq!(s.recorded().await.get(&arn).map(Vec::len), Some(1));
}

#[tokio::test]
async fn registering_a_token_again_moves_it_and_reuses_the_endpoint() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (bob, bob_token) = s.user("Bob").await;
    let (carol, carol_token) = s.user("Carol").await;
    let token = apns_token();
    let (st, first) = s.register(&bob_token, "apns", &token).await;
    assert_eq!(st, 201);
    let (st, again) = s.register(&bob_token, "apns", &token.to_uppercase()).await;
    assert_eq!(st, 200, "same user, same token (any case): the same device");
    assert_eq!(again["deviceId"], first["deviceId"]);
    let bob_arn = s
        .endpoint_of(&bob, first["deviceId"].as_str().unwrap())
        .await;

    let (st, moved) = s.register(&carol_token, "apns", &token).await;
    assert_eq!(st, 201, "{moved}");
    assert!(
        s.store.list_devices(&bob).await.unwrap().is_empty(),
        "moved away from Bob"
    );
    let carol_arn = s
        .endpoint_of(&carol, moved["deviceId"].as_str().unwrap())
        .await;
    assert_eq!(
        carol_arn, bob_arn,
        "the SNS endpoint is reused, now Carol's"
    );
    let attrs = s
        .sns
        .get_endpoint_attributes()
        .endpoint_arn(&carol_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .attributes()
            .unwrap()
            .get("CustomUserData")
            .map(String::as_str),
        Some(carol.as_str())
    );

    // Carol deletes it: gone from the store and from SNS; Bob cannot delete it.
    let id = moved["deviceId"].as_str().unwrap();
    let (st, _) = s
        .http(
            &bob_token,
            "DELETE",
            "/devices/{deviceId}",
            &format!("/devices/{id}"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .http(
            &carol_token,
            "DELETE",
            "/devices/{deviceId}",
            &format!("/devices/{id}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert!(s.store.list_devices(&carol).await.unwrap().is_empty());
    assert!(s
        .sns
        .get_endpoint_attributes()
        .endpoint_arn(&carol_arn)
        .send()
        .await
        .is_err());
    let (st, _) = s
        .http(
            &carol_token,
            "DELETE",
            "/devices/{deviceId}",
            &format!("/devices/{id}"),
            None,
        )
        .await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn bad_registrations_are_refused() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let (_, token) = s.user("Bob").await;
    let (st, b) = s.register(&token, "apns", "not-hex").await;
    assert_eq!((st, b["error"]["field"].as_str()), (400, Some("token")));
    let (st, b) = s.register(&token, "blackberry", &apns_token()).await;
    assert_eq!((st, b["error"]["field"].as_str()), (400, Some("platform")));
    let (st, b) = s.http(&token, "POST", "/devices", "/devices", None).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (st, _) = s.register("not-a-jwt", "apns", &apns_token()).await;
    assert_eq!(st, 401);
    let (st, b) = s
        .http(
            &token,
            "DELETE",
            "/devices/{deviceId}",
            "/devices/nope",
            None,
        )
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );
}

#[tokio::test]
async fn without_platform_applications_devices_are_stored_and_nothing_is_pushed() {
    chat_tests::needs_backend!();
    let s = Stack::start_with(false).await;
    let (ada, _) = s.user("Ada").await;
    let (bob, bob_token) = s.user("Bob").await;
    let (st, d) = s.register(&bob_token, "apns", &apns_token()).await;
    assert_eq!(st, 201);
    assert_eq!(d["pushEnabled"], false);
    let (chat, _) = s
        .store
        .get_or_create_direct(&ada, &bob, now_millis())
        .await
        .unwrap();
    let ev = send(&s, &chat.chat_id, &ada, &bob, ChatKind::Direct, "hi").await;
    s.deliver(&[ev])
        .await
        .expect("no configuration is not a failure");
    assert!(s.recorded().await.values().all(|m| m.is_empty()));
}

#[tokio::test]
async fn malformed_events_are_skipped_not_retried() {
    chat_tests::needs_backend!();
    let s = Stack::start().await;
    let r = s
        .deliver(&[json!({"hello": "world"}), json!("just a string")])
        .await;
    assert!(
        r.is_ok(),
        "malformed records are dropped, not redelivered: {r:?}"
    );
}

// ---------------------------------------------------------------------------------
// End to end through the local gateway.
//
// "No push" cannot be waited for, so those tests send a marker message afterwards and
// wait for its push: the gateway's SNS bridge hands the topic's notifications to the
// push-notifier one at a time, in the order the delivery queue returns them, and every
// invocation (retries included) finishes before the next starts; so once the marker's
// push is recorded, an earlier event has been handled.

mod e2e {
    use super::{apns_token, fcm_token};
    use chat_tests::api::{Api, ApiUser, Ws};
    use chat_tests::stack::PushMessage;
    use chat_tests::TestStack;
    use futures::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    const WAIT: Duration = Duration::from_secs(20);

    /// `POST /devices`: the device id.
    async fn register_device(api: &Api, user: &ApiUser, platform: &str, token: &str) -> String {
        let (st, body) = api
            .call(
                user,
                "POST",
                "/devices",
                Some(json!({"platform": platform, "token": token})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["pushEnabled"], true);
        body["deviceId"].as_str().expect("deviceId").to_owned()
    }

    async fn direct(api: &Api, a: &ApiUser, b: &ApiUser) -> String {
        let (st, body) = api
            .call(
                a,
                "POST",
                "/chats",
                Some(json!({"kind": "direct", "userId": b.id})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        body["chatId"].as_str().unwrap().to_owned()
    }

    async fn rest_send(api: &Api, from: &ApiUser, chat: &str, cid: &str, text: &str) -> Value {
        let (st, body) = api
            .call(
                from,
                "POST",
                &format!("/chats/{chat}/messages"),
                Some(json!({"clientMessageId": cid, "text": text})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        body
    }

    /// The platform payload of a recorded push (`MessageStructure=json`: the
    /// per-platform JSON string under `APNS` / `GCM`).
    fn payload(p: &PushMessage) -> Value {
        let outer: Value = serde_json::from_str(&p.message).expect("push message JSON");
        let key = if p.platform == "APNS" { "APNS" } else { "GCM" };
        serde_json::from_str(outer[key].as_str().expect("platform key")).expect("platform JSON")
    }

    /// (chat id, title) of a push, whatever the platform.
    fn chat_and_title(p: &PushMessage) -> (String, String) {
        let v = payload(p);
        if p.platform == "APNS" {
            (
                v["chatId"].as_str().unwrap_or_default().to_owned(),
                v["aps"]["alert"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        } else {
            let m = &v["fcmV1Message"]["message"];
            (
                m["data"]["chatId"].as_str().unwrap_or_default().to_owned(),
                m["notification"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    }

    /// Push positions per endpoint ARN.
    fn by_endpoint(pushes: &[PushMessage]) -> HashMap<String, Vec<(String, String)>> {
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for p in pushes {
            out.entry(p.endpoint_arn.clone())
                .or_default()
                .push(chat_and_title(p));
        }
        out
    }

    async fn endpoints_of(stack: &TestStack, user: &ApiUser) -> Vec<String> {
        let mut arns: Vec<String> = stack
            .store()
            .list_devices(&user.id)
            .await
            .expect("devices")
            .into_iter()
            .map(|d| d.endpoint_arn.expect("device with an endpoint"))
            .collect();
        arns.sort();
        arns
    }

    async fn next_of(ws: &mut Ws, ty: &str) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for a {ty} frame"))
                .expect("connection closed")
                .expect("websocket error");
            if let WsMessage::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("JSON frame");
                if v["type"] == ty {
                    return v;
                }
            }
        }
    }

    #[tokio::test]
    async fn e2e_offline_recipient_gets_one_push_per_device_per_message() {
        chat_tests::needs_backend!();
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        let ada = api.register("Ada").await;
        let bob = api.register("Bob").await;
        register_device(&api, &bob, "apns", &apns_token()).await;
        register_device(&api, &bob, "fcm", &fcm_token("tablet")).await;
        let arns = endpoints_of(&stack, &bob).await;
        assert_eq!(arns.len(), 2);
        let chat = direct(&api, &ada, &bob).await;

        // Bob has no connection: one offline event, one push on each device.
        let sent = rest_send(&api, &ada, &chat, "p-1", "hello Bob").await;
        let events = stack.offline_messages(1, WAIT).await;
        let mine: Vec<&Value> = events
            .iter()
            .map(|e| &e.json)
            .filter(|e| e["chatId"] == chat.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{events:?}");
        assert_eq!(mine[0]["recipientId"], bob.id.as_str());
        assert_eq!(mine[0]["messageId"], sent["messageId"]);
        let pushes = stack.wait_push_messages(2, WAIT).await;
        assert_eq!(pushes.len(), 2, "{pushes:?}");
        let per = by_endpoint(&pushes);
        let mut got: Vec<&String> = per.keys().collect();
        got.sort();
        assert_eq!(
            got,
            arns.iter().collect::<Vec<_>>(),
            "one push on each device"
        );
        for list in per.values() {
            assert_eq!(list, &vec![(chat.clone(), "Ada".to_owned())]);
        }
        let apns = pushes
            .iter()
            .find(|p| p.platform == "APNS")
            .expect("an APNs push");
        let alert = payload(apns);
        assert_eq!(alert["aps"]["alert"]["body"], "hello Bob");
        assert_eq!(alert["aps"]["badge"], 1);

        // A second message over the WebSocket: again exactly one per device (the first
        // event was handled once: it came before this one through the bridge).
        let mut ws = api.connect(&ada).await;
        ws.send(WsMessage::Text(
            json!({"action": "sendMessage", "chatId": chat, "clientMessageId": "p-2", "text": "still there?"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        assert_eq!(next_of(&mut ws, "messageAck").await["position"], 2);
        let pushes = stack.wait_push_messages(4, WAIT).await;
        assert_eq!(pushes.len(), 4, "{pushes:?}");
        for (arn, list) in by_endpoint(&pushes) {
            assert_eq!(list.len(), 2, "two pushes on {arn}");
        }
    }

    #[tokio::test]
    async fn e2e_a_muted_chat_produces_no_push() {
        chat_tests::needs_backend!();
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        let ada = api.register("Ada").await;
        let bob = api.register("Bob").await;
        register_device(&api, &bob, "apns", &apns_token()).await;
        let muted = direct(&api, &ada, &bob).await;
        let (st, body) = api
            .call(
                &bob,
                "PATCH",
                &format!("/chats/{muted}/members/me"),
                Some(json!({"muted": true})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["muted"], true);
        let (st, body) = api
            .call(
                &ada,
                "POST",
                "/chats",
                Some(json!({"kind": "group", "name": "Marker", "memberIds": [bob.id]})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        let marker = body["chatId"].as_str().unwrap().to_owned();

        rest_send(&api, &ada, &muted, "m-1", "you won't hear this").await;
        rest_send(&api, &ada, &marker, "m-2", "but this").await;
        let pushes = stack.wait_push_messages(1, WAIT).await;
        assert_eq!(pushes.len(), 1, "{pushes:?}");
        assert_eq!(
            chat_and_title(&pushes[0]),
            (marker.clone(), "Marker".to_owned())
        );
        // The muted chat's message was not even published as an offline event.
        let events = stack.offline_messages_so_far().await;
        assert!(
            events.iter().all(|e| e.json["chatId"] != muted.as_str()),
            "{events:?}"
        );
        assert!(events.iter().any(|e| e.json["chatId"] == marker.as_str()));
    }

    #[tokio::test]
    async fn e2e_an_online_recipient_gets_no_push() {
        chat_tests::needs_backend!();
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        let ada = api.register("Ada").await;
        let bob = api.register("Bob").await;
        register_device(&api, &bob, "apns", &apns_token()).await;
        let chat = direct(&api, &ada, &bob).await;

        let mut bob_ws = api.connect(&bob).await;
        let first = rest_send(&api, &ada, &chat, "o-1", "you're online").await;
        assert_eq!(
            next_of(&mut bob_ws, "message").await["messageId"],
            first["messageId"]
        );
        // Delivered live: no offline event (the REST send publishes before it answers).
        let events = stack.offline_messages_so_far().await;
        assert!(
            events.iter().all(|e| e.json["chatId"] != chat.as_str()),
            "{events:?}"
        );

        // Bob goes offline ($disconnect has run once the server's close arrives).
        bob_ws.close(None).await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, bob_ws.next()).await {}
        let second = rest_send(&api, &ada, &chat, "o-2", "now you're not").await;
        let pushes = stack.wait_push_messages(1, WAIT).await;
        assert_eq!(
            pushes.len(),
            1,
            "only the message sent while offline: {pushes:?}"
        );
        let alert = payload(&pushes[0]);
        assert_eq!(alert["aps"]["alert"]["body"], "now you're not");
        assert_eq!(alert["position"], second["position"]);
    }
}
