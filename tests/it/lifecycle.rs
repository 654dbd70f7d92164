//! End-to-end tests of the account lifecycle (issue 13) through the local gateway with
//! the real functions, DynamoDB Local and moto: the data export (`GET /me/export`) and
//! account deletion (`DELETE /me` plus the asynchronous `account-purger`, delivered by
//! the gateway's SNS bridge). Every REST answer is checked against `docs/openapi.yaml`.
//!
//! The stack runs with the repository's template except for shorter delays (user name
//! release after 2 s, index settle 0 ms) and a purge batch of 2 messages, so that a
//! purge needs several chained invocations.

use chat_core::ids::{ChatId, ClientMessageId, UserId};
use chat_core::input::{GroupName, MessageText};
use chat_core::lifecycle::{Lifecycle, PurgeOutcome};
use chat_core::model::{now_millis, Message, PurgePhase};
use chat_core::store::{AccountStatus, NewGroup, PurgeState, SenderKey, Store};
use chat_local::template::Template;
use chat_tests::{TestStack, TestStackOptions};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "correct horse battery staple";

/// The repository's template with test-sized delays and batches.
fn test_template() -> Template {
    let text = chat_tests::fakes::template_text();
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "template has no {from:?}");
        text.replace(from, to)
    };
    let text = replace(
        text,
        "USER_NAME_RELEASE_DELAY_SECONDS: \"2592000\"",
        "USER_NAME_RELEASE_DELAY_SECONDS: \"2\"",
    );
    let text = replace(
        text,
        "          PURGE_BATCH_MESSAGES: \"2000\"\n",
        "          PURGE_BATCH_MESSAGES: \"2\"\n          PURGE_INDEX_SETTLE_MS: \"0\"\n",
    );
    Template::parse(&text).expect("test template parses")
}

/// The repository's template with one message per purge batch, so that a purge of a
/// few dozen messages needs more SNS hops than Lambda's recursive-loop limit (16);
/// `allow_loop: false` takes the purger's `RecursiveLoop: Allow` out.
fn one_message_batches(allow_loop: bool) -> Template {
    let mut text = chat_tests::fakes::template_text();
    for (from, to) in [
        (
            "          PURGE_BATCH_MESSAGES: \"2000\"\n",
            "          PURGE_BATCH_MESSAGES: \"1\"\n          PURGE_INDEX_SETTLE_MS: \"0\"\n",
        ),
        (
            "      RecursiveLoop: Allow\n",
            if allow_loop {
                "      RecursiveLoop: Allow\n"
            } else {
                ""
            },
        ),
    ] {
        assert!(text.contains(from), "template has no {from:?}");
        text = text.replace(from, to);
    }
    Template::parse(&text).expect("test template parses")
}

/// Deletes an account whose 20 messages take one purge batch each (over 20 SNS hops).
async fn delete_account_with_long_purge(allow_loop: bool) -> (TestStack, UserId) {
    let stack = TestStack::start_with(TestStackOptions {
        template: Some(one_message_batches(allow_loop)),
        sns_delivery: true,
        ..TestStackOptions::default()
    })
    .await;
    let api = Api::new(&stack);
    let (a, b) = tokio::join!(api.register("lpa"), api.register("lpb"));
    let direct = api.direct(&a, &b).await;
    for i in 0..20 {
        api.send(&a, &direct, &format!("m{i}")).await;
    }
    let (status, _) = api
        .call(
            Some(&a.access),
            "DELETE",
            "/me",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 202);
    (stack, a.id.clone())
}

#[tokio::test]
async fn a_purge_of_more_batches_than_lambdas_loop_limit_completes() {
    chat_tests::needs_backend!();
    // The purger republishes to its own trigger topic once per batch: without
    // RecursiveLoop: Allow, Lambda (and the local SNS bridge) stops it after 16 hops.
    let (stack, user) = delete_account_with_long_purge(true).await;
    wait_purged(stack.store(), &user).await;
    assert_eq!(stack.gateway().sns_loop_drops(), 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn without_recursive_loop_allow_the_local_bridge_stops_the_purge_as_lambda_would() {
    chat_tests::needs_backend!();
    // The emulation itself: the same purge with the template's RecursiveLoop: Allow
    // removed is stopped at the loop limit and never finishes.
    let (stack, user) = delete_account_with_long_purge(false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while stack.gateway().sns_loop_drops() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loop was not stopped: {:?}",
            stack.store().account_status(&user).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match stack.store().account_status(&user).await.unwrap() {
        AccountStatus::Deleted { purge, .. } => assert_ne!(purge.phase, PurgePhase::Done),
        other => panic!("the account is not deleted: {other:?}"),
    }
    stack.shutdown().await;
}

async fn start(sns_delivery: bool) -> TestStack {
    TestStack::start_with(TestStackOptions {
        template: Some(test_template()),
        sns_delivery,
        ..TestStackOptions::default()
    })
    .await
}

struct User {
    id: UserId,
    name: String,
    access: String,
    refresh: String,
}

/// The stack's HTTP API (through the harness client, answers checked against the
/// document) with this file's helpers.
struct Api<'a> {
    stack: &'a TestStack,
    api: chat_tests::api::Api,
}

impl<'a> Api<'a> {
    fn new(stack: &'a TestStack) -> Self {
        Api {
            stack,
            api: chat_tests::api::Api::new(stack),
        }
    }

    fn store(&self) -> &Store {
        self.stack.store()
    }

    /// One request; the answer is checked against the OpenAPI document.
    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self.api.send_json(token, method, path, body).await;
        (r.status, r.body)
    }

    async fn register(&self, tag: &str) -> User {
        let name = format!("{tag}{}", &UserId::generate().as_str()[20..]).to_ascii_lowercase();
        self.register_name(&name).await
    }

    async fn register_name(&self, name: &str) -> User {
        let (status, body) = self
            .call(
                None,
                "POST",
                "/auth/register",
                Some(json!({"userName": name, "password": PASSWORD, "displayName": name})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        User {
            id: UserId::parse(body["user"]["userId"].as_str().unwrap()).unwrap(),
            name: name.to_owned(),
            access: body["tokens"]["accessToken"].as_str().unwrap().to_owned(),
            refresh: body["tokens"]["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    async fn send(&self, user: &User, chat: &ChatId, text: &str) -> Value {
        let (status, body) = self
            .call(
                Some(&user.access),
                "POST",
                &format!("/chats/{chat}/messages"),
                Some(json!({"clientMessageId": format!("c-{text}"), "text": text})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn history(&self, reader: &User, chat: &ChatId) -> Vec<Value> {
        let (status, body) = self
            .call(
                Some(&reader.access),
                "GET",
                &format!("/chats/{chat}/messages?after=0&limit=100"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["messages"].as_array().unwrap().clone()
    }

    async fn register_device(&self, user: &User, token: &str) -> Value {
        let (status, body) = self
            .call(
                Some(&user.access),
                "POST",
                "/devices",
                Some(json!({"platform": "fcm", "token": token})),
            )
            .await;
        assert!(status == 201 || status == 200, "{status} {body}");
        body
    }

    async fn group(&self, creator: &User, others: &[&User]) -> ChatId {
        self.store()
            .create_group(
                &NewGroup {
                    creator: creator.id.clone(),
                    name: GroupName::parse("Team").unwrap(),
                    members: others.iter().map(|u| u.id.clone()).collect(),
                },
                now_millis(),
            )
            .await
            .expect("group")
            .0
            .chat_id
    }

    async fn direct(&self, a: &User, b: &User) -> ChatId {
        self.store()
            .get_or_create_direct(&a.id, &b.id, now_millis())
            .await
            .expect("direct chat")
            .0
            .chat_id
    }
}

/// Wait (polling the store, with a time-out) until the account's purge is done.
async fn wait_purged(store: &Store, user: &UserId) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = store.account_status(user).await.unwrap();
        if let AccountStatus::Deleted { purge, .. } = &status {
            if purge.phase == PurgePhase::Done {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "purge not done in time: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn texts_of(messages: &[Value]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn export_contains_exactly_the_callers_data() {
    chat_tests::needs_backend!();
    let stack = start(true).await;
    let api = Api::new(&stack);
    let (a, b) = tokio::join!(api.register("exa"), api.register("exb"));
    let group = api.group(&a, &[&b]).await;
    let direct = api.direct(&a, &b).await;
    let left = api.group(&a, &[&b]).await;
    for (u, chat, text) in [
        (&a, &group, "a-group-1"),
        (&b, &group, "b-group-1"),
        (&a, &group, "a-group-2"),
        (&a, &direct, "a-direct-1"),
        (&b, &direct, "b-direct-1"),
        (&a, &left, "a-left-1"),
        (&b, &left, "b-left-1"),
    ] {
        api.send(u, chat, text).await;
    }
    // A leaves one group: their message there is still theirs, the chat is not.
    api.store()
        .remove_member(&left, &a.id, &a.id, now_millis())
        .await
        .unwrap();
    let a_token = format!("{}A", "x".repeat(40));
    let b_token = format!("{}B", "y".repeat(40));
    api.register_device(&a, &a_token).await;
    api.register_device(&b, &b_token).await;

    let (status, page) = api.call(Some(&a.access), "GET", "/me/export", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["profile"]["userId"], a.id.as_str());
    assert_eq!(page["profile"]["userName"], a.name.as_str());
    let chats: BTreeSet<&str> = page["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chatId"].as_str().unwrap())
        .collect();
    assert_eq!(chats, BTreeSet::from([group.as_str(), direct.as_str()]));
    let group_row = page["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["chatId"] == group.as_str())
        .unwrap();
    assert_eq!(group_row["role"], "admin");
    let messages = page["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["senderId"] == a.id.as_str()));
    assert_eq!(
        texts_of(messages),
        BTreeSet::from(["a-group-1", "a-group-2", "a-direct-1", "a-left-1"].map(String::from))
    );
    let sent: Vec<&str> = messages
        .iter()
        .map(|m| m["sentAt"].as_str().unwrap())
        .collect();
    let mut sorted = sent.clone();
    sorted.sort();
    assert_eq!(sent, sorted, "messages are oldest first");
    let devices = page["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["token"], a_token.as_str());
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    assert!(page["nextCursor"].is_null());
    assert!(!page.to_string().contains(&b_token));
    assert!(!page.to_string().contains(b.id.as_str()));

    let (_, page_b) = api.call(Some(&b.access), "GET", "/me/export", None).await;
    assert_eq!(page_b["profile"]["userId"], b.id.as_str());
    assert_eq!(
        texts_of(page_b["messages"].as_array().unwrap()),
        BTreeSet::from(["b-group-1", "b-direct-1", "b-left-1"].map(String::from))
    );
    assert_eq!(page_b["chats"].as_array().unwrap().len(), 3);

    // A cursor continues after its message: later pages carry messages only.
    let first = &messages[0];
    let cursor = chat_core::http::encode_cursor(&SenderKey {
        sent_at: chrono::DateTime::parse_from_rfc3339(first["sentAt"].as_str().unwrap())
            .unwrap()
            .timestamp_millis(),
        chat_id: ChatId::parse(first["chatId"].as_str().unwrap()).unwrap(),
        position: first["position"].as_u64().unwrap(),
    });
    let (status, rest) = api
        .call(
            Some(&a.access),
            "GET",
            &format!("/me/export?cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rest}");
    assert!(rest.get("profile").is_none());
    assert_eq!(rest["messages"].as_array().unwrap().len(), 3);
    assert_eq!(rest["messages"][0], messages[1]);

    let (status, body) = api
        .call(Some(&a.access), "GET", "/me/export?cursor=junk", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let (status, _) = api.call(None, "GET", "/me/export", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn export_pages_are_bounded_and_complete() {
    chat_tests::needs_backend!();
    let stack = start(false).await;
    let api = Api::new(&stack);
    let a = api.register("pga").await;
    let group = api.group(&a, &[]).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let m = api.send(&a, &group, &format!("m{i}")).await;
        expected.push(m["messageId"].as_str().unwrap().to_owned());
    }
    let store = api.store();
    // At most 3 messages a page: 3 + 3 + 1, in order, none twice.
    let mut got: Vec<Message> = Vec::new();
    let mut cursor: Option<SenderKey> = None;
    let mut pages = 0;
    loop {
        let (msgs, next) = http_users::export::messages(store, &a.id, cursor, 1 << 20, 3)
            .await
            .unwrap();
        assert!(msgs.len() <= 3);
        pages += 1;
        got.extend(msgs);
        match next {
            Some(c) => cursor = Some(chat_core::http::decode_cursor(&c, "cursor").unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<String> = got.iter().map(|m| m.message_id.to_string()).collect();
    assert_eq!(ids, expected);
    // A byte budget smaller than one message still makes progress: one per page.
    let (msgs, next) = http_users::export::messages(store, &a.id, None, 1, 100)
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(next.is_some());
}

/// Wait until the server closes the WebSocket (a close frame or the end of the stream).
async fn wait_closed<S>(ws: &mut S)
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was not closed");
}

#[tokio::test]
async fn deleting_an_account_makes_it_unusable_and_purges_it() {
    chat_tests::needs_backend!();
    let stack = start(true).await;
    let api = Api::new(&stack);
    let (a, b, c) = tokio::join!(
        api.register("dla"),
        api.register("dlb"),
        api.register("dlc")
    );
    let group = api.group(&a, &[&b, &c]).await;
    let direct = api.direct(&a, &b).await;
    for (u, chat, text) in [
        (&a, &group, "a1"),
        (&b, &group, "b1"),
        (&a, &group, "a2"),
        (&c, &group, "c1"),
        (&a, &group, "a3"),
        (&a, &direct, "da1"),
        (&b, &direct, "db1"),
        (&a, &direct, "da2"),
    ] {
        api.send(u, chat, text).await;
    }
    let device = api
        .register_device(&a, &format!("{}D", "z".repeat(40)))
        .await;
    let device_id = device["deviceId"].as_str().unwrap().to_owned();
    let endpoint = api
        .store()
        .list_devices(&a.id)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.device_id.as_str() == device_id)
        .and_then(|d| d.endpoint_arn)
        .expect("an SNS endpoint for the device");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={}", stack.ws_url(), a.access))
            .await
            .expect("A connects");

    // A wrong password changes nothing.
    let (status, body) = api
        .call(
            Some(&a.access),
            "DELETE",
            "/me",
            Some(json!({"password": "not the password"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, _) = api.call(Some(&a.access), "GET", "/me", None).await;
    assert_eq!(status, 200);
    let (status, _) = api.call(Some(&a.access), "DELETE", "/me", None).await;
    assert_eq!(status, 400);

    let (status, started) = api
        .call(
            Some(&a.access),
            "DELETE",
            "/me",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "deleting");

    // Unusable at once: connection closed, tokens, login, reconnect refused.
    wait_closed(&mut ws).await;
    let (status, _) = api.call(Some(&a.access), "GET", "/me", None).await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(Some(&a.access), "GET", &format!("/chats/{group}"), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = api
        .call(
            None,
            "POST",
            "/auth/refresh",
            Some(json!({"refreshToken": a.refresh})),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api
        .call(
            None,
            "POST",
            "/auth/login",
            Some(json!({"userName": a.name, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    assert!(
        tokio_tungstenite::connect_async(format!("{}?token={}", stack.ws_url(), a.access))
            .await
            .is_err(),
        "a deleted account cannot connect"
    );
    // The name stays reserved until the release time.
    let (status, body) = api
        .call(
            None,
            "POST",
            "/auth/register",
            Some(json!({"userName": a.name, "password": PASSWORD, "displayName": "X"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("user_name_taken"))
    );

    // The purge runs through the topic (several invocations: batches of 2 messages).
    wait_purged(api.store(), &a.id).await;

    // The group goes on without A; the longest-standing member became admin.
    let members = api.store().list_members(&group).await.unwrap();
    let ids: BTreeSet<&UserId> = members.iter().map(|m| &m.user_id).collect();
    assert_eq!(ids, BTreeSet::from([&b.id, &c.id]));
    let heir = std::cmp::min(&b.id, &c.id);
    let admins: Vec<&UserId> = members
        .iter()
        .filter(|m| m.role == chat_core::model::Role::Admin)
        .map(|m| &m.user_id)
        .collect();
    assert_eq!(admins, vec![heir]);
    assert_eq!(
        api.store()
            .get_chat(&group, true)
            .await
            .unwrap()
            .unwrap()
            .member_count,
        2
    );

    // Histories keep every position; A's texts are blank markers.
    let history = api.history(&b, &group).await;
    let positions: Vec<u64> = history
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=7).collect::<Vec<_>>());
    for m in &history[1..6] {
        if m["senderId"] == a.id.as_str() {
            assert_eq!(m["text"], "");
            assert_eq!(m["deleted"], true);
            assert!(m.get("clientMessageId").is_none());
        } else {
            assert!(m.get("deleted").is_none());
            assert_ne!(m["text"], "");
        }
    }
    assert_eq!(
        texts_of(&history[1..6]),
        BTreeSet::from(["", "b1", "c1"].map(String::from))
    );
    let left = &history[6];
    assert_eq!(left["kind"], "system");
    assert_eq!(left["system"]["event"], "memberLeft");
    assert_eq!(left["system"]["member"], a.id.as_str());
    assert_eq!(left["system"]["promoted"], heir.as_str());

    // The direct chat stays for B, with A's messages blanked and its preview too.
    let dm = api.history(&b, &direct).await;
    assert_eq!(
        dm.iter()
            .map(|m| (m["position"].as_u64().unwrap(), m["text"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        vec![(1, ""), (2, "db1"), (3, "")]
    );
    let dm_chat = api.store().get_chat(&direct, true).await.unwrap().unwrap();
    assert_eq!(dm_chat.last_message.unwrap().preview, "");
    assert!(
        api.store()
            .get_membership(&direct, &a.id)
            .await
            .unwrap()
            .unwrap()
            .muted
    );
    let (status, _) = api
        .call(Some(&b.access), "GET", &format!("/users/{}", a.id), None)
        .await;
    assert_eq!(status, 404);
    assert!(api
        .store()
        .find_by_client_id(&direct, &a.id, &ClientMessageId::parse("c-da1").unwrap())
        .await
        .unwrap()
        .is_none());

    // Devices, their endpoints, sessions and presence are gone; the tombstone stays.
    assert!(api.store().list_devices(&a.id).await.unwrap().is_empty());
    assert!(api.store().list_sessions(&a.id).await.unwrap().is_empty());
    let aws = stack.backend().aws_env();
    let sns = chat_core::aws::sns(&chat_core::aws::sdk_config(&aws).await, &aws);
    assert!(sns
        .get_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .send()
        .await
        .is_err());
    let account = api.store().get_account(&a.id).await.unwrap().unwrap();
    assert!(account.deleted);
    assert_eq!(account.profile.display_name, "Deleted user");
    assert_eq!(account.password_hash, "");
    assert!(api
        .store()
        .presence_of(std::slice::from_ref(&a.id), now_millis())
        .await
        .unwrap()[&a.id]
        .last_seen_at
        .is_none());

    // After the (shortened) delay the name can be registered again, by someone new.
    let release =
        chrono::DateTime::parse_from_rfc3339(started["userNameReleasedAt"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
    let wait = (release - now_millis()).max(0) as u64 + 50;
    // Waiting for wall-clock time to pass is the condition under test here.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let again = api.register_name(&a.name).await;
    assert_ne!(again.id, a.id);
}

#[tokio::test]
async fn a_repeated_or_partial_purge_is_safe() {
    chat_tests::needs_backend!();
    // No SNS delivery: this test runs every purge step itself.
    let stack = start(false).await;
    let api = Api::new(&stack);
    let (a, b) = tokio::join!(api.register("rpa"), api.register("rpb"));
    let group = api.group(&a, &[&b]).await;
    for (u, text) in [(&a, "x1"), (&b, "y1"), (&a, "x2"), (&a, "x3")] {
        api.send(u, &group, text).await;
    }
    let mut env = stack.env().clone();
    env.set(
        "ACCOUNT_PURGE_TOPIC_ARN",
        stack.stack().topic_arn("AccountPurgeTopic").unwrap(),
    );
    env.set("PURGE_BATCH_MESSAGES", "1");
    env.set("PURGE_INDEX_SETTLE_MS", "0");
    env.set("PURGE_NOT_DELETED_WAIT_MS", "50");
    let lifecycle = Lifecycle::from_env(&env).await.unwrap();
    let far = || tokio::time::Instant::now() + Duration::from_secs(60);

    // A job for an account that is not deleted (its deletion failed) does nothing.
    assert_eq!(
        lifecycle.purge(&a.id, far()).await.unwrap(),
        PurgeOutcome::NotDeleted
    );
    assert_eq!(
        lifecycle.purge(&UserId::generate(), far()).await.unwrap(),
        PurgeOutcome::Missing
    );
    let before = api.store().messages_after(&group, 0, 100).await.unwrap();
    assert_eq!(before.messages.len(), 5);

    let (status, _) = api
        .call(
            Some(&a.access),
            "DELETE",
            "/me",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 202);

    // One message per invocation: the purge stops and resumes from its cursor.
    let mut continues = 0;
    loop {
        match lifecycle.purge(&a.id, far()).await.unwrap() {
            PurgeOutcome::Done => break,
            PurgeOutcome::Continue(phase) => {
                assert_eq!(phase, PurgePhase::Messages);
                continues += 1;
                assert!(continues < 20, "the purge does not finish");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(continues >= 3, "batches of one: {continues}");
    let snapshot = || async {
        let h = api.store().messages_after(&group, 0, 100).await.unwrap();
        let chat = api.store().get_chat(&group, true).await.unwrap().unwrap();
        let mut members = api.store().list_members(&group).await.unwrap();
        members.sort_by(|x, y| x.user_id.cmp(&y.user_id));
        (h.messages, chat, members)
    };
    let done = snapshot().await;
    assert_eq!(done.0.len(), 6, "five messages and A's memberLeft");
    assert_eq!(
        done.0.iter().filter(|m| m.deleted).count(),
        3,
        "A's three messages are blank"
    );
    assert!(done
        .0
        .iter()
        .filter(|m| m.deleted)
        .all(|m| m.text.is_empty()));
    assert_eq!(done.2.len(), 1);

    // Again, when already done: nothing changes.
    assert_eq!(
        lifecycle.purge(&a.id, far()).await.unwrap(),
        PurgeOutcome::Done
    );
    assert_eq!(snapshot().await, done);

    // A purge that crashed and is redelivered from an early phase and an old cursor
    // repeats its steps harmlessly: no second memberLeft, no gap, same markers.
    api.store()
        .set_purge_state(
            &a.id,
            &PurgeState {
                phase: PurgePhase::Connections,
                cursor: None,
            },
            now_millis(),
        )
        .await
        .unwrap();
    loop {
        match lifecycle.purge(&a.id, far()).await.unwrap() {
            PurgeOutcome::Done => break,
            PurgeOutcome::Continue(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(snapshot().await, done);

    // B can still write to the group; positions go on from there.
    let next = api
        .store()
        .append_text(
            &group,
            &b.id,
            &ClientMessageId::parse("after").unwrap(),
            &MessageText::parse("still here").unwrap(),
            now_millis(),
        )
        .await
        .unwrap();
    assert_eq!(next.message.position, 7);
}
