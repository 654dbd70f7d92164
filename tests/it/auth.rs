//! End-to-end tests of accounts, sessions and profiles through the local gateway:
//! real HTTP requests to `http-auth` and `http-users` running behind the gateway on a
//! fresh, uniquely prefixed stack (DynamoDB Local, moto). Every response is also
//! checked against `docs/openapi.yaml`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_core::auth::TokenConfig;
use chat_core::ids::{SessionId, UserId};
use chat_core::model::now_millis;
use chat_tests::api::Reply;
use chat_tests::TestStack;
use futures::StreamExt;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A small client for the stack's HTTP API.
/// The stack's HTTP API (answers checked against the document) with this file's
/// helpers.
struct Api(chat_tests::api::Api);

impl Api {
    fn new(stack: &TestStack) -> Api {
        Api(chat_tests::api::Api::new(stack))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        self.0.send(token, method.as_str(), path, body).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, None, Some(body.to_string()))
            .await
    }

    async fn post_raw(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, None, Some(body.to_owned()))
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(token), Some(body.to_string()))
            .await
    }

    async fn register(&self, user_name: &str) -> Value {
        self.post(
            "/auth/register",
            json!({"userName": user_name, "password": PASSWORD, "displayName": "Test User"}),
        )
        .await
        .expect(201)
    }

    async fn login(&self, user_name: &str, password: &str) -> Reply {
        self.post(
            "/auth/login",
            json!({"userName": user_name, "password": password}),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/auth/refresh", json!({ "refreshToken": refresh_token }))
            .await
    }
}

const PASSWORD: &str = "correct horse battery";

/// A user name no other test uses: `prefix` plus random lowercase letters and digits.
fn unique(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (0..10)
        .map(|_| {
            let c = rng.gen_range(0..36u8);
            (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
        })
        .collect();
    format!("{prefix}{tail}")
}

fn access(session: &Value) -> &str {
    session["tokens"]["accessToken"]
        .as_str()
        .expect("accessToken")
}

fn refresh_token(session: &Value) -> &str {
    session["tokens"]["refreshToken"]
        .as_str()
        .expect("refreshToken")
}

#[tokio::test]
async fn register_login_refresh_rotate_reuse_logout_and_logout_all() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let name = unique("Cycle");

    // Register: profile and a token pair.
    let a = api.register(&name).await;
    assert_eq!(a["user"]["userName"], name.as_str());
    assert_eq!(a["user"]["displayName"], "Test User");
    assert!(a["user"]["userId"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(a["tokens"]["tokenType"], "Bearer");
    for f in ["accessTokenExpiresAt", "refreshTokenExpiresAt"] {
        let t = a["tokens"][f].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{f} is RFC 3339: {t}"
        );
    }
    assert!(a.get("passwordHash").is_none() && a["user"].get("passwordHash").is_none());
    let me = api.get("/me", access(&a)).await.expect(200);
    assert_eq!(me, a["user"]);

    // Refresh rotates: a new refresh token, the old one no longer works.
    let a2 = api.refresh(refresh_token(&a)).await.expect(200);
    assert_ne!(a2["refreshToken"], a["tokens"]["refreshToken"]);
    assert_eq!(a2["tokenType"], "Bearer");
    api.get("/me", a2["accessToken"].as_str().unwrap())
        .await
        .expect(200);
    // Presenting the old one again is reuse: the whole family dies, the new one too.
    api.refresh(refresh_token(&a))
        .await
        .expect_error(401, "refresh_token_reused");
    api.refresh(a2["refreshToken"].as_str().unwrap())
        .await
        .expect_error(401, "invalid_refresh_token");

    // Login (any case) starts an independent session; logout ends only that one.
    let b = api.login(&name.to_uppercase(), PASSWORD).await.expect(200);
    assert_eq!(b["user"]["userName"], name.as_str());
    let c = api.login(&name, PASSWORD).await.expect(200);
    let b2 = api.refresh(refresh_token(&b)).await.expect(200);
    let b2_refresh = b2["refreshToken"].as_str().unwrap();
    api.post("/auth/logout", json!({ "refreshToken": b2_refresh }))
        .await
        .expect(204);
    api.refresh(b2_refresh)
        .await
        .expect_error(401, "invalid_refresh_token");
    // Logging out twice is fine.
    api.post("/auth/logout", json!({ "refreshToken": b2_refresh }))
        .await
        .expect(204);
    api.post("/auth/logout", json!({ "refreshToken": "nonsense" }))
        .await
        .expect_error(401, "invalid_refresh_token");
    // The other session is untouched.
    let c2 = api.refresh(refresh_token(&c)).await.expect(200);

    // Log out everywhere: every access token and every session of the user dies.
    let d = api.login(&name, PASSWORD).await.expect(200);
    let d_access = access(&d).to_owned();
    let ws_url = format!("{}?token={}", stack.ws_url(), d_access);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("the WebSocket handshake succeeds with a fresh token");
    api.send(
        Method::POST,
        "/auth/logout-all",
        Some(c2["accessToken"].as_str().unwrap()),
        None,
    )
    .await
    .expect(204);
    // The open connection is closed by the server.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "logout-all closes the user's WebSocket connections"
    );
    for token in [c2["accessToken"].as_str().unwrap(), d_access.as_str()] {
        let r = api.get("/me", token).await;
        r.expect_error(401, "unauthorized");
        assert!(r.message().contains("revoked"), "{}", r.body);
    }
    for rt in [c2["refreshToken"].as_str().unwrap(), refresh_token(&d)] {
        api.refresh(rt).await.expect_error(401, "session_revoked");
    }
    // A revoked token no longer opens a WebSocket either.
    assert!(tokio_tungstenite::connect_async(&ws_url).await.is_err());
    // Logging in again works.
    let e = api.login(&name, PASSWORD).await.expect(200);
    api.get("/me", access(&e)).await.expect(200);
    // Logout-all needs a bearer token.
    api.send(Method::POST, "/auth/logout-all", None, None)
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn user_names_are_unique_regardless_of_case() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let name = unique("Dup_");
    api.register(&name).await;
    for other in [name.clone(), name.to_lowercase(), name.to_uppercase()] {
        let r = api
            .post(
                "/auth/register",
                json!({"userName": other, "password": "another good one", "displayName": "X"}),
            )
            .await;
        r.expect_error(409, "user_name_taken");
    }
    // The original spelling is kept and either case logs in.
    let s = api.login(&name.to_lowercase(), PASSWORD).await.expect(200);
    assert_eq!(s["user"]["userName"], name.as_str());
}

#[tokio::test]
async fn weak_passwords_and_bad_fields_are_refused_with_the_field() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let name = unique("weak");
    let cases = [
        (
            json!({"userName": name, "password": "short", "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": name, "password": "Password123", "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": name, "password": "12345678", "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": name, "password": "zzzzzzzzzzzz", "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": name, "password": format!("my{name}!"), "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": name, "password": "x".repeat(129), "displayName": "X"}),
            "password",
        ),
        (
            json!({"userName": "ab", "password": PASSWORD, "displayName": "X"}),
            "userName",
        ),
        (
            json!({"userName": "_abc", "password": PASSWORD, "displayName": "X"}),
            "userName",
        ),
        (
            json!({"userName": "al ice", "password": PASSWORD, "displayName": "X"}),
            "userName",
        ),
        (
            json!({"userName": name, "password": PASSWORD, "displayName": "   "}),
            "displayName",
        ),
        (
            json!({"userName": name, "password": PASSWORD, "displayName": "x".repeat(65)}),
            "displayName",
        ),
    ];
    for (body, field) in cases {
        let r = api.post("/auth/register", body.clone()).await;
        r.expect_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{body}");
    }
    // None of those created the account: the name is still free.
    api.register(&name).await;
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_invalid_json() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let cases: [(&str, &str, &str); 9] = [
        ("/auth/register", "", "required"),
        ("/auth/register", "{", "not valid JSON"),
        ("/auth/register", "not json", "not valid JSON"),
        ("/auth/register", "[]", "shape"),
        (
            "/auth/register",
            r#"{"userName": 42, "password": "correct horse battery", "displayName": "X"}"#,
            "userName",
        ),
        (
            "/auth/register",
            r#"{"userName": "alice", "displayName": "X"}"#,
            "missing field `password`",
        ),
        (
            "/auth/register",
            r#"{"userName": "alice", "password": "correct horse battery", "displayName": "X", "admin": true}"#,
            "unknown field `admin`",
        ),
        (
            "/auth/login",
            r#"{"userName": "alice", "password": null}"#,
            "password",
        ),
        (
            "/auth/refresh",
            r#"{"refreshToken": ["x"]}"#,
            "refreshToken",
        ),
    ];
    for (path, body, mention) in cases {
        let r = api.post_raw(path, body).await;
        r.expect_error(400, "invalid_json");
        assert!(
            r.message().contains(mention),
            "{path} {body}: {:?} should mention {mention:?}",
            r.message()
        );
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let big = "x".repeat(100 * 1024);
    let r = api
        .post(
            "/auth/register",
            json!({"userName": "bigbody", "password": PASSWORD, "displayName": big}),
        )
        .await;
    r.expect_error(413, "payload_too_large");
    let r = api
        .post(
            "/auth/login",
            json!({"userName": "bigbody", "password": big}),
        )
        .await;
    r.expect_error(413, "payload_too_large");
    let s = api.register(&unique("big")).await;
    let r = api
        .patch("/me", access(&s), json!({ "statusText": big }))
        .await;
    r.expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn login_refusals_look_the_same_and_lock_after_five_failures() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let name = unique("lock");
    let s = api.register(&name).await;

    let t = Instant::now();
    let unknown = api.login(&unique("nobody"), PASSWORD).await;
    let unknown_time = t.elapsed();
    let t = Instant::now();
    let wrong = api.login(&name, "wrong password!").await;
    let wrong_time = t.elapsed();
    unknown.expect_error(401, "invalid_credentials");
    wrong.expect_error(401, "invalid_credentials");
    assert_eq!(
        unknown.body, wrong.body,
        "no user enumeration through the body"
    );
    // Both are held to the same minimum response time (300 ms by default).
    assert!(
        unknown_time >= Duration::from_millis(300),
        "{unknown_time:?}"
    );
    assert!(wrong_time >= Duration::from_millis(300), "{wrong_time:?}");
    // A malformed name is just another unknown user.
    let r = api.login("x", PASSWORD).await;
    assert_eq!(r.body, wrong.body);

    // Four more failures (five in a row) lock the account...
    for _ in 0..4 {
        api.login(&name, "wrong password!")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let user_id = UserId::parse(s["user"]["userId"].as_str().unwrap()).unwrap();
    // The lock's bookkeeping is in the table (a local stack only).
    let account = match stack.is_remote() {
        false => Some(stack.store().get_account(&user_id).await.unwrap().unwrap()),
        true => None,
    };
    if let Some(account) = &account {
        assert!(account.locked_until.is_some_and(|u| u > now_millis()));
    }
    // Failures while locked neither count nor extend the lock.
    api.login(&name, "wrong password!")
        .await
        .expect_error(401, "invalid_credentials");
    if let Some(account) = &account {
        let still = stack.store().get_account(&user_id).await.unwrap().unwrap();
        assert_eq!(still.locked_until, account.locked_until);
        assert_eq!(still.failed_logins, 0);
    }
    // ... so even the right password is refused, with the same answer.
    let r = api.login(&name, PASSWORD).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, wrong.body);
    // Existing sessions keep working.
    api.get("/me", access(&s)).await.expect(200);
    // After the lock expires the right password works and clears the counter (the
    // test expires it in the table: a local stack only).
    if !stack.is_remote() {
        stack
            .store()
            .reset_failed_logins(&user_id)
            .await
            .expect("unlock for the test");
        api.login(&name, PASSWORD).await.expect(200);
    }
}

#[tokio::test]
async fn forged_and_bad_bearer_tokens_are_401() {
    chat_tests::needs_backend!();
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let s = api.register(&unique("forge")).await;
    let good = access(&s).to_owned();
    api.get("/me", &good).await.expect(200);

    let user = UserId::parse(s["user"]["userId"].as_str().unwrap()).unwrap();
    let real = TokenConfig::from_env(stack.env()).expect("the stack's token settings");
    let key = stack.env().get("JWT_SIGNING_KEY").unwrap().to_owned();
    let now = now_millis();
    let session = SessionId::generate();
    let b64 = URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();

    let wrong_key = TokenConfig::new(&[7u8; 32], &real.issuer, &real.audience, 900, 3600)
        .unwrap()
        .issue(&user, &session, 0, now);
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let alg_none_signed = format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    claims["sub"] = json!(UserId::generate().as_str());
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let expired = real.issue(&user, &session, 0, now - 2 * 3600 * 1000);
    let wrong_audience = TokenConfig::new(key.as_bytes(), &real.issuer, "another-api", 900, 3600)
        .unwrap()
        .issue(&user, &session, 0, now);
    let wrong_issuer = TokenConfig::new(key.as_bytes(), "someone-else", &real.audience, 900, 3600)
        .unwrap()
        .issue(&user, &session, 0, now);
    let stale_version = real.issue(&user, &session, 5, now);

    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no header", None, "missing"),
        (
            "wrong key",
            Some(format!("Bearer {wrong_key}")),
            "not valid",
        ),
        ("alg none", Some(format!("Bearer {alg_none}")), "not valid"),
        (
            "alg none, signature kept",
            Some(format!("Bearer {alg_none_signed}")),
            "not valid",
        ),
        (
            "altered payload",
            Some(format!("Bearer {altered}")),
            "not valid",
        ),
        ("expired", Some(format!("Bearer {expired}")), "expired"),
        (
            "wrong audience",
            Some(format!("Bearer {wrong_audience}")),
            "not valid",
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {wrong_issuer}")),
            "not valid",
        ),
        (
            "other token version",
            Some(format!("Bearer {stale_version}")),
            "revoked",
        ),
        (
            "basic scheme",
            Some("Basic dXNlcjpwYXNz".into()),
            "malformed",
        ),
        ("no scheme", Some(good.clone()), "malformed"),
        ("not a JWT", Some("Bearer abc".into()), "malformed"),
    ];
    for (what, header, mention) in cases {
        let mut req = reqwest::Client::new().get(format!("{}/me", api.0.http_url()));
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{what}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mention), "{what}: {message:?}");
    }
}

#[tokio::test]
async fn profile_updates_are_validated() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let s = api.register(&unique("prof")).await;
    let t = access(&s);

    let p = api
        .patch(
            "/me",
            t,
            json!({"displayName": "  Ada L.  ", "statusText": "busy", "avatarUrl": "https://img.example/a.png"}),
        )
        .await
        .expect(200);
    assert_eq!(p["displayName"], "Ada L.");
    assert_eq!(p["statusText"], "busy");
    assert_eq!(p["avatarUrl"], "https://img.example/a.png");
    assert_eq!(api.get("/me", t).await.expect(200), p);

    // Absent fields stay; null clears the status and removes the avatar.
    let p = api
        .patch("/me", t, json!({"statusText": null, "avatarUrl": null}))
        .await
        .expect(200);
    assert_eq!(p["displayName"], "Ada L.");
    assert_eq!(p["statusText"], "");
    assert!(p.get("avatarUrl").is_none(), "{p}");

    for (body, field) in [
        (
            json!({"avatarUrl": "http://img.example/a.png"}),
            "avatarUrl",
        ),
        (json!({"avatarUrl": "javascript:alert(1)"}), "avatarUrl"),
        (json!({"displayName": ""}), "displayName"),
        (json!({"displayName": null}), "displayName"),
        (json!({"statusText": "x".repeat(141)}), "statusText"),
    ] {
        let r = api.patch("/me", t, body.clone()).await;
        r.expect_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{body}");
    }
    api.patch("/me", t, json!({"displayName": 5}))
        .await
        .expect_error(400, "invalid_json");
    api.patch("/me", t, json!({"nickname": "x"}))
        .await
        .expect_error(400, "invalid_json");
    // Nothing of the refused changes was written.
    assert_eq!(api.get("/me", t).await.expect(200)["displayName"], "Ada L.");
}

#[tokio::test]
async fn public_profiles_show_presence() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let me = api.register(&unique("viewer")).await;
    let other = api.register(&unique("viewed")).await;
    let id = other["user"]["userId"].as_str().unwrap();

    let p = api
        .get(&format!("/users/{id}"), access(&me))
        .await
        .expect(200);
    assert_eq!(p["userId"], id);
    assert_eq!(p["userName"], other["user"]["userName"]);
    assert_eq!(p["presence"]["online"], false);
    assert!(p["presence"]["lastSeenAt"].is_null());
    assert!(p.get("passwordHash").is_none());

    api.get("/users/not-an-id", access(&me))
        .await
        .expect_error(400, "validation_failed");
    api.get(&format!("/users/{}", UserId::generate()), access(&me))
        .await
        .expect_error(404, "not_found");
    api.send(Method::GET, &format!("/users/{id}"), None, None)
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn user_search_is_paginated_by_prefix() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let prefix = unique("s");
    let mut names = Vec::new();
    for i in 0..5 {
        let n = format!("{prefix}_{i}");
        api.register(&n).await;
        names.push(n);
    }
    api.register(&unique("elsewhere")).await;
    let s = api.register(&unique("searcher")).await;
    let t = access(&s);

    // Upper-case prefix, pages of two, following the cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = format!("/users?prefix={}&limit=2", prefix.to_uppercase());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path, t).await.expect(200);
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["userName"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, names, "every match once, in name order");

    for (path, field) in [
        ("/users".to_owned(), "prefix"),
        ("/users?prefix=a".to_owned(), "prefix"),
        ("/users?prefix=a%20b".to_owned(), "prefix"),
        (format!("/users?prefix={prefix}&limit=0"), "limit"),
        (format!("/users?prefix={prefix}&limit=51"), "limit"),
        (format!("/users?prefix={prefix}&cursor=%25%25"), "cursor"),
    ] {
        let r = api.get(&path, t).await;
        r.expect_error(400, "validation_failed");
        assert_eq!(r.field(), field, "{path}");
    }
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_exactly_one_win() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let s = api.register(&unique("race")).await;
    let rt = refresh_token(&s).to_owned();
    let (a, b) = tokio::join!(api.refresh(&rt), api.refresh(&rt));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} / {}", a.body, b.body);
    let loser = if a.status == 200 { &b } else { &a };
    assert_eq!(loser.code(), "refresh_token_reused");
    // Reuse ended the family: the winner's new token is dead too.
    let winner = if a.status == 200 { &a } else { &b };
    api.refresh(winner.body["refreshToken"].as_str().unwrap())
        .await
        .expect_error(401, "invalid_refresh_token");
}

#[tokio::test]
async fn logout_all_forgets_connections_the_gateway_already_lost() {
    chat_tests::needs_backend!();
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let s = api.register(&unique("stale")).await;
    let user = UserId::parse(s["user"]["userId"].as_str().unwrap()).unwrap();
    let url = format!("{}?token={}", stack.ws_url(), access(&s));
    let (_first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_second, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let live = |store: chat_core::store::Store, user: UserId| async move {
        store
            .presence_of(std::slice::from_ref(&user), now_millis())
            .await
            .unwrap()
            .remove(&user)
            .unwrap_or_default()
            .connections
    };
    let conns = live(stack.store().clone(), user.clone()).await;
    assert_eq!(conns.len(), 2);
    // One connection is lost without $disconnect: its presence entry stays behind and
    // @connections answers 410 for it.
    stack.kill_connection(conns[0].as_str()).await;

    let token = access(&s).to_owned();
    api.send(Method::POST, "/auth/logout-all", Some(&token), None)
        .await
        .expect(204);
    // Both entries disappear: the lost one through the 410, the live one through its
    // $disconnect after DeleteConnection.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        let left = live(stack.store().clone(), user.clone()).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still present: {left:?}");
    }
}
