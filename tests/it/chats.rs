//! End-to-end tests of the REST chat API (`functions/http-chats`) through the local
//! API Gateway, on DynamoDB Local. Every response is checked against
//! `docs/openapi.yaml`. Each test starts its own uniquely prefixed stack.

use chat_core::ids::{ChatId, ClientMessageId, MessageId, UserId};
use chat_core::input::MessageText;
use chat_core::model::now_millis;
use chat_tests::api::{Api, Reply};
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a test waits for a WebSocket frame.
const WAIT: Duration = Duration::from_secs(10);

struct User {
    id: UserId,
    token: String,
}

struct Harness {
    stack: TestStack,
    api: Api,
}

impl Harness {
    async fn start() -> Arc<Self> {
        let stack = TestStack::start().await;
        let api = Api::new(&stack);
        Arc::new(Harness { stack, api })
    }

    /// A fresh user, registered through `POST /auth/register`.
    async fn user(&self) -> User {
        let id = UserId::generate();
        let suffix = id.as_str()[4..].to_lowercase();
        let name = format!("u{}", &suffix[suffix.len() - 20..]);
        let body = self
            .raw(
                None,
                "POST",
                "/auth/register",
                Some(
                    json!({
                        "userName": name,
                        "password": "correct horse battery staple",
                        "displayName": "Test User",
                    })
                    .to_string(),
                ),
            )
            .await
            .expect(201);
        User {
            id: UserId::parse(body["user"]["userId"].as_str().expect("userId")).expect("user id"),
            token: body["tokens"]["accessToken"]
                .as_str()
                .expect("access token")
                .to_owned(),
        }
    }

    /// `n` users, registered a few at a time (each registration hashes a password
    /// with Argon2's 19 MiB).
    async fn users(&self, n: usize) -> Vec<User> {
        futures::stream::iter(0..n)
            .map(|_| self.user())
            .buffered(4)
            .collect()
            .await
    }

    /// A request with the raw body `raw` through the gateway's HTTP API; the response
    /// is checked against the document.
    async fn raw(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        raw: Option<String>,
    ) -> Reply {
        self.api.send(token, method, path, raw).await
    }

    async fn call(&self, user: &User, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.raw(Some(&user.token), method, path, body.map(|b| b.to_string()))
            .await
    }

    async fn get(&self, user: &User, path: &str) -> Reply {
        self.call(user, "GET", path, None).await
    }

    async fn post(&self, user: &User, path: &str, body: Value) -> Reply {
        self.call(user, "POST", path, Some(body)).await
    }

    /// A WebSocket client of `user` on the gateway's WebSocket API.
    async fn connect(&self, user: &User) -> Ws {
        let url = format!("{}?token={}", self.stack.ws_url(), user.token);
        tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect")
            .0
    }

    async fn group(&self, admin: &User, name: &str, members: &[&User]) -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let body = self
            .post(
                admin,
                "/chats",
                json!({"kind": "group", "name": name, "memberIds": ids}),
            )
            .await
            .expect(201);
        body["chatId"].as_str().unwrap().to_owned()
    }

    async fn direct(&self, a: &User, b: &User) -> String {
        let r = self
            .post(a, "/chats", json!({"kind": "direct", "userId": b.id}))
            .await;
        assert!(r.status == 200 || r.status == 201, "{}", r.body);
        r.body["chatId"].as_str().unwrap().to_owned()
    }

    /// Seed `n` messages from `from` straight through the store (fast setup of long
    /// histories; the REST send itself is tested below); on a remote stack through
    /// `POST /chats/{chatId}/messages` (keep `n` below the send rate limit there).
    async fn seed(&self, chat: &str, from: &User, n: usize) {
        if self.stack.is_remote() {
            for i in 0..n {
                let cid = format!("seed-{}", &MessageId::generate().as_str()[4..]);
                let text = format!("message {}", i + 1);
                self.post(
                    from,
                    &format!("/chats/{chat}/messages"),
                    json!({"clientMessageId": cid, "text": text}),
                )
                .await
                .expect(201);
            }
            return;
        }
        let chat = ChatId::parse(chat).unwrap();
        for i in 0..n {
            let cid = format!("seed-{}", &MessageId::generate().as_str()[4..]);
            self.stack
                .store()
                .append_text(
                    &chat,
                    &from.id,
                    &ClientMessageId::parse(&cid).unwrap(),
                    &MessageText::parse(&format!("message {}", i + 1)).unwrap(),
                    now_millis(),
                )
                .await
                .expect("append");
        }
    }

    async fn chat_in_list(&self, user: &User, chat: &str) -> Option<Value> {
        let list = self.get(user, "/chats?limit=100").await.expect(200);
        list["chats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["chatId"] == chat)
            .cloned()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON frame on `ws` whose `type` is `ty` (others are skipped), waiting at
/// most [`WAIT`] for each frame.
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

/// Every frame on `ws` up to the `pong` answering a ping sent now. The gateway handles
/// one frame of a connection at a time and posts to a connection in order, so what
/// was posted to `ws` before the ping has arrived by then.
async fn frames_until_pong(ws: &mut Ws) -> Vec<Value> {
    ws.send(WsMessage::Text(
        json!({"action": "ping", "id": "barrier"})
            .to_string()
            .into(),
    ))
    .await
    .expect("send ping");
    let mut out = Vec::new();
    loop {
        let v = next_of_any(ws).await;
        if v["type"] == "pong" && v["id"] == "barrier" {
            return out;
        }
        out.push(v);
    }
}

async fn next_of_any(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection closed")
            .expect("websocket error");
        if let WsMessage::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON frame");
        }
    }
}

fn member<'a>(detail: &'a Value, user: &User) -> Option<&'a Value> {
    detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == user.id.as_str())
}

fn positions(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn direct_chat_is_the_same_for_the_same_pair() {
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);

    let first = h
        .post(&a, "/chats", json!({"kind": "direct", "userId": b.id}))
        .await
        .expect(201);
    let id = first["chatId"].as_str().unwrap();
    assert!(id.starts_with("dm_"));
    assert_eq!(first["kind"], "direct");
    assert_eq!(first["memberCount"], 2);
    assert_eq!(first["peer"]["userId"], b.id.as_str());
    assert_eq!(first["members"].as_array().unwrap().len(), 2);

    let again = h
        .post(&a, "/chats", json!({"kind": "direct", "userId": b.id}))
        .await
        .expect(200);
    assert_eq!(again["chatId"], id);
    let other_side = h
        .post(&b, "/chats", json!({"kind": "direct", "userId": a.id}))
        .await
        .expect(200);
    assert_eq!(other_side["chatId"], id);
    assert_eq!(other_side["peer"]["userId"], a.id.as_str());

    // Both see it in their list, with the other as peer.
    let listed = h.chat_in_list(&b, id).await.expect("listed for b");
    assert_eq!(listed["peer"]["userId"], a.id.as_str());
    assert_eq!(listed["unreadCount"], 0);

    // Not with oneself, not with nobody.
    h.post(&a, "/chats", json!({"kind": "direct", "userId": a.id}))
        .await
        .error(400, "validation_failed");
    let r = h
        .post(
            &a,
            "/chats",
            json!({"kind": "direct", "userId": UserId::generate()}),
        )
        .await
        .error(400, "validation_failed");
    assert_eq!(r["error"]["field"], "userId");
}

#[tokio::test]
async fn group_create_rename_add_remove_leave_and_admin_handover() {
    let h = Harness::start().await;
    let [a, b, c, d, e] = <[User; 5]>::try_from(h.users(5).await).ok().unwrap();

    let created = h
        .post(
            &a,
            "/chats",
            json!({"kind": "group", "name": "Team", "memberIds": [b.id, c.id, b.id, a.id]}),
        )
        .await
        .expect(201);
    let id = created["chatId"].as_str().unwrap().to_owned();
    assert_eq!(created["kind"], "group");
    assert_eq!(created["name"], "Team");
    assert_eq!(created["memberCount"], 3);
    assert_eq!(created["role"], "admin");
    assert_eq!(member(&created, &a).unwrap()["role"], "admin");
    assert_eq!(member(&created, &b).unwrap()["role"], "member");
    assert_eq!(created["lastPosition"], 1, "chatCreated system message");

    // Only admins rename.
    let patch = |u: &'static str| json!({ "name": u });
    h.call(&b, "PATCH", &format!("/chats/{id}"), Some(patch("Mine")))
        .await
        .error(403, "forbidden");
    let renamed = h
        .call(&a, "PATCH", &format!("/chats/{id}"), Some(patch("Crew")))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Crew");
    h.call(&a, "PATCH", &format!("/chats/{id}"), Some(patch("")))
        .await
        .error(400, "validation_failed");

    // Only admins add; nobody twice.
    h.post(
        &b,
        &format!("/chats/{id}/members"),
        json!({"memberIds": [d.id]}),
    )
    .await
    .error(403, "forbidden");
    let added = h
        .post(
            &a,
            &format!("/chats/{id}/members"),
            json!({"memberIds": [d.id]}),
        )
        .await
        .expect(200);
    assert_eq!(added["memberCount"], 4);
    assert!(member(&added, &d).is_some());
    h.post(
        &a,
        &format!("/chats/{id}/members"),
        json!({"memberIds": [d.id]}),
    )
    .await
    .error(409, "already_member");

    // Members cannot remove others; admins can; the removed member loses access.
    h.call(&b, "DELETE", &format!("/chats/{id}/members/{}", c.id), None)
        .await
        .error(403, "forbidden");
    let removed = h
        .call(&a, "DELETE", &format!("/chats/{id}/members/{}", c.id), None)
        .await
        .expect(200);
    assert_eq!(removed["left"], false);
    assert_eq!(removed["message"]["system"]["event"], "memberRemoved");
    h.get(&c, &format!("/chats/{id}"))
        .await
        .error(404, "not_found");
    h.get(&c, &format!("/chats/{id}/messages"))
        .await
        .error(404, "not_found");
    assert!(h.chat_in_list(&c, &id).await.is_none());
    h.call(&a, "DELETE", &format!("/chats/{id}/members/{}", e.id), None)
        .await
        .error(404, "not_found");

    // Anyone leaves, with `me` or their own id.
    let left = h
        .call(&b, "DELETE", &format!("/chats/{id}/members/me"), None)
        .await
        .expect(200);
    assert_eq!(left["left"], true);
    assert_eq!(left["promoted"], Value::Null);

    // The last admin leaving hands over to the longest-standing member (d).
    let handover = h
        .call(&a, "DELETE", &format!("/chats/{id}/members/{}", a.id), None)
        .await
        .expect(200);
    assert_eq!(handover["promoted"], d.id.as_str());
    let now = h.get(&d, &format!("/chats/{id}")).await.expect(200);
    assert_eq!(now["role"], "admin");
    assert_eq!(now["memberCount"], 1);
    h.get(&a, &format!("/chats/{id}"))
        .await
        .error(404, "not_found");

    // Every change is a system message, in order.
    let history = h
        .get(&d, &format!("/chats/{id}/messages?after=0"))
        .await
        .expect(200);
    let events: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["kind"], "system");
            m["system"]["event"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        events,
        [
            "chatCreated",
            "renamed",
            "membersAdded",
            "memberRemoved",
            "memberLeft",
            "memberLeft"
        ]
    );
    assert_eq!(positions(&history), [1, 2, 3, 4, 5, 6]);

    // Direct chats have neither a name nor member changes.
    let dm = h.direct(&d, &e).await;
    h.call(&d, "PATCH", &format!("/chats/{dm}"), Some(patch("x")))
        .await
        .error(409, "not_a_group");
    h.post(
        &d,
        &format!("/chats/{dm}/members"),
        json!({"memberIds": [a.id]}),
    )
    .await
    .error(409, "not_a_group");
}

#[tokio::test]
async fn the_member_cap_holds_under_ten_concurrent_adds() {
    let h = Harness::start().await;
    let users = h.users(96 + 10).await;
    let (initial, newcomers) = users.split_at(96);
    let admin = &initial[0];

    // 100 members counting the creator is the most a group may start with.
    let too_many: Vec<&str> = users[1..101].iter().map(|u| u.id.as_str()).collect();
    h.post(
        admin,
        "/chats",
        json!({"kind": "group", "name": "Too big", "memberIds": too_many}),
    )
    .await
    .error(400, "validation_failed");

    let others: Vec<&User> = initial[1..].iter().collect();
    let id = h.group(admin, "Full house", &others).await;

    let results = futures::future::join_all(newcomers.iter().map(|u| {
        let h = h.clone();
        let id = id.clone();
        async move {
            h.post(
                admin,
                &format!("/chats/{id}/members"),
                json!({"memberIds": [u.id]}),
            )
            .await
        }
    }))
    .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "group_full");
    }
    assert_eq!(ok, 4, "exactly four of ten adds fit under the cap");
    let detail = h.get(admin, &format!("/chats/{id}")).await.expect(200);
    assert_eq!(detail["memberCount"], 100);
    assert_eq!(detail["members"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn history_pages_backwards_and_forwards_without_gaps_or_repeats() {
    chat_tests::needs_backend!();
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);
    let id = h.direct(&a, &b).await;
    h.seed(&id, &a, 250).await;
    let all: Vec<u64> = (1..=250).collect();

    // Backwards from the latest page, 100 at a time.
    let mut seen: Vec<u64> = Vec::new();
    let mut page = h
        .get(&b, &format!("/chats/{id}/messages?limit=100"))
        .await
        .expect(200);
    loop {
        let p = positions(&page);
        assert!(p.windows(2).all(|w| w[1] == w[0] + 1), "ascending: {p:?}");
        seen.splice(0..0, p.iter().copied());
        if page["hasMore"] == false {
            break;
        }
        page = h
            .get(
                &b,
                &format!("/chats/{id}/messages?before={}&limit=100", p[0]),
            )
            .await
            .expect(200);
    }
    assert_eq!(seen, all);

    // Forwards from the start, an odd page size.
    let mut seen: Vec<u64> = Vec::new();
    let mut after = 0;
    loop {
        let page = h
            .get(&b, &format!("/chats/{id}/messages?after={after}&limit=37"))
            .await
            .expect(200);
        let p = positions(&page);
        assert!(p.len() <= 37);
        seen.extend(&p);
        if page["hasMore"] == false {
            break;
        }
        after = *p.last().unwrap();
    }
    assert_eq!(seen, all);

    // Default page size 50; text and sender survive the trip.
    let latest = h
        .get(&a, &format!("/chats/{id}/messages"))
        .await
        .expect(200);
    assert_eq!(positions(&latest), (201..=250).collect::<Vec<_>>());
    assert_eq!(latest["messages"][49]["text"], "message 250");
    assert_eq!(latest["messages"][49]["senderId"], a.id.as_str());
    assert_eq!(latest["hasMore"], true);
    let end = h
        .get(&a, &format!("/chats/{id}/messages?after=250"))
        .await
        .expect(200);
    assert_eq!(end["messages"], json!([]));
    assert_eq!(end["hasMore"], false);
}

#[tokio::test]
async fn chat_list_is_by_activity_and_pages_with_a_cursor() {
    let h = Harness::start().await;
    let me = h.user().await;
    let others = h.users(5).await;
    // Activity times are milliseconds: let each change land in a later one, so the
    // expected order has no ties.
    async fn next_millisecond(after: i64) {
        while now_millis() <= after {
            tokio::task::yield_now().await;
        }
    }
    let mut ids = Vec::new();
    for o in &others {
        ids.push(h.direct(&me, o).await);
        h.seed(ids.last().unwrap(), o, 1).await;
        next_millisecond(now_millis()).await;
    }
    // The oldest chat becomes the most recent.
    h.seed(&ids[0], &others[0], 1).await;
    let mut expected: Vec<String> = ids[1..].iter().rev().cloned().collect();
    expected.insert(0, ids[0].clone());

    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/chats?limit=2&cursor={c}"),
            None => "/chats?limit=2".to_owned(),
        };
        let page = h.get(&me, &path).await.expect(200);
        let chats = page["chats"].as_array().unwrap();
        assert!(chats.len() <= 2);
        got.extend(
            chats
                .iter()
                .map(|c| c["chatId"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(got, expected);
    let top = h.chat_in_list(&me, &ids[0]).await.unwrap();
    assert_eq!(top["unreadCount"], 2);
    assert_eq!(top["lastMessage"]["preview"], "message 1");
    assert_eq!(top["lastMessage"]["senderId"], others[0].id.as_str());
}

#[tokio::test]
async fn non_members_and_removed_members_get_404_everywhere() {
    let h = Harness::start().await;
    let [a, b, outsider] = <[User; 3]>::try_from(h.users(3).await).ok().unwrap();
    let group = h.group(&a, "Private", &[&b]).await;
    let dm = h.direct(&a, &b).await;
    let unknown = ChatId::new_group().to_string();

    let attempts = |chat: &str| {
        vec![
            ("GET", format!("/chats/{chat}"), None),
            (
                "PATCH",
                format!("/chats/{chat}"),
                Some(json!({"name": "x"})),
            ),
            (
                "POST",
                format!("/chats/{chat}/members"),
                Some(json!({"memberIds": [outsider.id]})),
            ),
            ("DELETE", format!("/chats/{chat}/members/{}", a.id), None),
            ("DELETE", format!("/chats/{chat}/members/me"), None),
            (
                "PATCH",
                format!("/chats/{chat}/members/me"),
                Some(json!({"muted": true})),
            ),
            ("GET", format!("/chats/{chat}/messages"), None),
            ("GET", format!("/chats/{chat}/messages?after=0"), None),
        ]
    };
    for chat in [&group, &dm, &unknown] {
        for (method, path, body) in attempts(chat) {
            let r = h.call(&outsider, method, &path, body).await;
            assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "not_found");
        }
    }
    // The error for a chat one may not see is the error for one that does not exist.
    let hidden = h.get(&outsider, &format!("/chats/{group}")).await.body;
    let missing = h.get(&outsider, &format!("/chats/{unknown}")).await.body;
    assert_eq!(hidden, missing);

    // Removed: access ends at once.
    h.get(&b, &format!("/chats/{group}")).await.expect(200);
    h.call(
        &a,
        "DELETE",
        &format!("/chats/{group}/members/{}", b.id),
        None,
    )
    .await
    .expect(200);
    for (method, path, body) in attempts(&group) {
        let r = h.call(&b, method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
}

#[tokio::test]
async fn bad_ids_cursors_limits_and_json_are_clear_400s() {
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);
    let dm = h.direct(&a, &b).await;

    let field = |r: Reply, f: &str| {
        let body = r.error(400, "validation_failed");
        assert_eq!(body["error"]["field"], f, "{body}");
    };
    field(h.get(&a, "/chats/not-a-chat").await, "chatId");
    field(h.get(&a, "/chats/grp_123/messages").await, "chatId");
    field(
        h.call(&a, "DELETE", &format!("/chats/{dm}/members/bob"), None)
            .await,
        "userId",
    );
    field(h.get(&a, "/chats?cursor=garbage").await, "cursor");
    field(h.get(&a, "/chats?cursor=eyJhdCI6MX0").await, "cursor");
    for limit in ["0", "101", "-1", "ten"] {
        field(h.get(&a, &format!("/chats?limit={limit}")).await, "limit");
        field(
            h.get(&a, &format!("/chats/{dm}/messages?limit={limit}"))
                .await,
            "limit",
        );
    }
    field(
        h.get(&a, &format!("/chats/{dm}/messages?before=-3")).await,
        "before",
    );
    field(
        h.get(&a, &format!("/chats/{dm}/messages?after=x")).await,
        "after",
    );
    field(
        h.get(&a, &format!("/chats/{dm}/messages?before=5&after=1"))
            .await,
        "before",
    );
    field(
        h.post(
            &a,
            "/chats",
            json!({"kind": "group", "name": "x", "memberIds": ["nope"]}),
        )
        .await,
        "memberIds",
    );
    field(
        h.post(
            &a,
            "/chats",
            json!({"kind": "group", "name": "x", "memberIds": []}),
        )
        .await,
        "memberIds",
    );

    // Not JSON, or not the expected shape.
    for raw in [
        "{",
        "",
        "[]",
        r#"{"kind":"channel"}"#,
        r#"{"kind":"direct"}"#,
    ] {
        h.raw(Some(&a.token), "POST", "/chats", Some(raw.to_owned()))
            .await
            .error(400, "invalid_json");
    }
    h.raw(
        Some(&a.token),
        "PATCH",
        &format!("/chats/{dm}/members/me"),
        Some(r#"{"muted":"yes"}"#.to_owned()),
    )
    .await
    .error(400, "invalid_json");

    // No or a bad token.
    h.raw(None, "GET", "/chats", None)
        .await
        .error(401, "unauthorized");
    h.raw(Some("abc.def.ghi"), "GET", "/chats", None)
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn muting_is_per_member() {
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);
    let dm = h.direct(&a, &b).await;
    let mine = h
        .call(
            &a,
            "PATCH",
            &format!("/chats/{dm}/members/me"),
            Some(json!({"muted": true})),
        )
        .await
        .expect(200);
    assert_eq!(mine["muted"], true);
    assert_eq!(h.chat_in_list(&a, &dm).await.unwrap()["muted"], true);
    assert_eq!(h.chat_in_list(&b, &dm).await.unwrap()["muted"], false);
}

#[tokio::test]
async fn unread_counts_follow_reads_and_never_count_own_messages() {
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);
    let dm = h.direct(&a, &b).await;
    h.seed(&dm, &a, 5).await;

    let for_b = h.chat_in_list(&b, &dm).await.unwrap();
    assert_eq!(for_b["unreadCount"], 5);
    assert_eq!(for_b["readPosition"], 0);
    let for_a = h.chat_in_list(&a, &dm).await.unwrap();
    assert_eq!(for_a["unreadCount"], 0, "own messages are read");
    assert_eq!(for_a["readPosition"], 5);

    // b reads up to 3.
    let read = h
        .post(&b, &format!("/chats/{dm}/read"), json!({"position": 3}))
        .await
        .expect(200);
    assert_eq!(read["readPosition"], 3);
    let for_b = h.chat_in_list(&b, &dm).await.unwrap();
    assert_eq!(for_b["unreadCount"], 2);
    assert_eq!(for_b["readPosition"], 3);

    // a sees how far b got: delivered and read positions per member.
    let detail = h.get(&a, &format!("/chats/{dm}")).await.expect(200);
    let bm = member(&detail, &b).unwrap();
    assert_eq!(bm["readPosition"], 3);
    assert_eq!(bm["deliveredPosition"], 3);

    // b answers: b's own message does not make anything unread for b.
    h.seed(&dm, &b, 1).await;
    let for_b = h.chat_in_list(&b, &dm).await.unwrap();
    assert_eq!(for_b["unreadCount"], 0);
    assert_eq!(h.chat_in_list(&a, &dm).await.unwrap()["unreadCount"], 1);
}

#[tokio::test]
async fn rest_send_is_idempotent_ordered_and_readable_and_sync_catches_up() {
    let h = Harness::start().await;
    let (a, b, outsider) = (h.user().await, h.user().await, h.user().await);
    let dm = h.direct(&a, &b).await;

    // b starts syncing from now.
    let first = h.get(&b, "/sync").await.expect(200);
    assert_eq!(first["chats"], json!([]));
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    let send = |text: &str, cid: &str| json!({"clientMessageId": cid, "text": text});
    let m1 = h
        .post(&a, &format!("/chats/{dm}/messages"), send("hello", "c-1"))
        .await
        .expect(201);
    assert_eq!(m1["position"], 1);
    assert_eq!(m1["senderId"], a.id.as_str());
    let retry = h
        .post(&a, &format!("/chats/{dm}/messages"), send("hello", "c-1"))
        .await
        .expect(200);
    assert_eq!(retry["messageId"], m1["messageId"]);
    let m2 = h
        .post(&a, &format!("/chats/{dm}/messages"), send("again", "c-2"))
        .await
        .expect(201);
    assert_eq!(m2["position"], 2);
    h.post(&a, &format!("/chats/{dm}/messages"), send(" ", "c-3"))
        .await
        .error(400, "validation_failed");
    h.post(&a, &format!("/chats/{dm}/messages"), send("x", "bad id!"))
        .await
        .error(400, "validation_failed");
    h.post(
        &outsider,
        &format!("/chats/{dm}/messages"),
        send("x", "c-9"),
    )
    .await
    .error(404, "not_found");

    // Reads move the marker forward only, never beyond the last message.
    assert_eq!(h.chat_in_list(&b, &dm).await.unwrap()["unreadCount"], 2);
    let r = h
        .post(&b, &format!("/chats/{dm}/read"), json!({"position": 1}))
        .await
        .expect(200);
    assert_eq!(r["readPosition"], 1);
    assert_eq!(h.chat_in_list(&b, &dm).await.unwrap()["unreadCount"], 1);
    h.post(&b, &format!("/chats/{dm}/read"), json!({"position": 9}))
        .await
        .error(400, "validation_failed");
    h.post(&b, &format!("/chats/{dm}/read"), json!({"position": -1}))
        .await
        .error(400, "invalid_json");
    h.post(
        &outsider,
        &format!("/chats/{dm}/read"),
        json!({"position": 1}),
    )
    .await
    .error(404, "not_found");

    // Sync from b's cursor: the direct chat's two messages, then nothing.
    let page = h
        .get(&b, &format!("/sync?cursor={cursor}"))
        .await
        .expect(200);
    let chats = page["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 1, "{page}");
    assert_eq!(chats[0]["chatId"], dm.as_str());
    assert_eq!(positions(&chats[0]), [1, 2]);
    assert_eq!(page["hasMore"], false);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let again = h
        .get(&b, &format!("/sync?cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(again["chats"], json!([]));

    // A new group and a message show up; a chat b was removed from is `removed`.
    let g = h.group(&a, "Later", &[&b]).await;
    let page = h
        .get(
            &b,
            &format!("/sync?cursor={}", again["cursor"].as_str().unwrap()),
        )
        .await
        .expect(200);
    let new = &page["chats"].as_array().unwrap()[0];
    assert_eq!(new["chatId"], g.as_str());
    assert_eq!(new["known"], false);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    h.call(&a, "DELETE", &format!("/chats/{g}/members/{}", b.id), None)
        .await
        .expect(200);
    let page = h
        .get(&b, &format!("/sync?cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(page["removed"], json!([g]));
    h.get(&b, "/sync?cursor=nonsense")
        .await
        .error(400, "validation_failed");
}

#[tokio::test]
async fn rest_send_is_delivered_to_the_other_members_websocket_and_reads_send_receipts() {
    let h = Harness::start().await;
    let (a, b) = (h.user().await, h.user().await);
    let dm = h.direct(&a, &b).await;
    let mut b_ws = h.connect(&b).await;
    let mut a_ws = h.connect(&a).await;

    let sent = h
        .post(
            &a,
            &format!("/chats/{dm}/messages"),
            json!({"clientMessageId": "rest-1", "text": "over REST"}),
        )
        .await
        .expect(201);
    let m = next_of(&mut b_ws, "message").await;
    assert_eq!(m["chatId"], dm.as_str());
    assert_eq!(m["messageId"], sent["messageId"]);
    assert_eq!(m["position"], sent["position"]);
    assert_eq!(m["senderId"], a.id.as_str());
    assert_eq!(m["text"], "over REST");

    // A retried REST send is acknowledged again but not delivered again.
    let retry = h
        .post(
            &a,
            &format!("/chats/{dm}/messages"),
            json!({"clientMessageId": "rest-1", "text": "over REST"}),
        )
        .await
        .expect(200);
    assert_eq!(retry["messageId"], sent["messageId"]);
    let rest: Vec<Value> = frames_until_pong(&mut b_ws)
        .await
        .into_iter()
        .filter(|v| v["type"] == "message")
        .collect();
    assert!(rest.is_empty(), "delivered twice: {rest:?}");
    // The sender's own connection receives its REST message too (another device).
    let own = next_of(&mut a_ws, "message").await;
    assert_eq!(own["messageId"], sent["messageId"]);

    // b reads over REST: a's connection gets the read receipt.
    h.post(&b, &format!("/chats/{dm}/read"), json!({"position": 1}))
        .await
        .expect(200);
    let r = next_of(&mut a_ws, "read").await;
    assert_eq!(r["chatId"], dm.as_str());
    assert_eq!(r["userId"], b.id.as_str());
    assert_eq!(r["position"], 1);

    // Both were online: nothing went to the offline topic (visible on a local stack).
    if !h.stack.is_remote() {
        let offline = h.stack.offline_messages_so_far().await;
        assert!(
            offline.iter().all(|e| e.json["chatId"] != dm.as_str()),
            "{offline:?}"
        );
    }
}
