//! Attack tests for the security hardening of issue #25, through the public APIs of a
//! local stack: password change (`POST /auth/password`), the login lockout under
//! concurrent guesses, the owner's sessions not being blockable by strangers who lock
//! the account, WebSocket connections that end with their credential, devices tied to
//! sessions. Each test names the threat-model row of `docs/security.md` it proves.

use chat_core::ids::UserId;
use chat_tests::api::{Api, ApiUser, Reply, TEST_PASSWORD};
use chat_tests::TestStack;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

const NEW_PASSWORD: &str = "a brand new passphrase";
const WAIT: Duration = Duration::from_secs(10);

async fn post(api: &Api, token: Option<&str>, path: &str, body: Value) -> Reply {
    api.send_json(token, "POST", path, Some(body)).await
}

async fn login(api: &Api, name: &str, password: &str) -> Reply {
    post(
        api,
        None,
        "/auth/login",
        json!({"userName": name, "password": password}),
    )
    .await
}

async fn change(api: &Api, access: &str, current: &str, new: &str) -> Reply {
    post(
        api,
        Some(access),
        "/auth/password",
        json!({"currentPassword": current, "newPassword": new}),
    )
    .await
}

fn tokens(v: &Value) -> (String, String) {
    let t = if v.get("tokens").is_some() {
        &v["tokens"]
    } else {
        v
    };
    (
        t["accessToken"].as_str().expect("accessToken").to_owned(),
        t["refreshToken"].as_str().expect("refreshToken").to_owned(),
    )
}

/// Wait until the server closes `ws` (close frame, error or end of stream).
async fn closed(ws: &mut chat_tests::api::Ws) -> bool {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Lock `user`'s account the way a stranger can: five wrong logins with the public name.
async fn lock_out(api: &Api, user: &ApiUser) {
    for _ in 0..5 {
        login(api, &user.user_name, "wrong guess!")
            .await
            .expect_error(401, "invalid_credentials");
    }
    // Locked: even the right password is refused now.
    login(api, &user.user_name, TEST_PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

/// Threat "leaked password" (High): changing the password ends every other token,
/// session and socket; the caller continues on a new session.
#[tokio::test]
async fn password_change_ends_every_other_credential_and_keeps_the_caller() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    // A second device logged in with the same (leaked) password, with a socket open.
    let other = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    let (other_access, other_refresh) = tokens(&other);
    let mut other_ws = api
        .connect(&ApiUser {
            access_token: other_access.clone(),
            ..alice.clone()
        })
        .await;

    // Refusals change nothing.
    change(&api, &alice.access_token, "not my password", NEW_PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    let r = change(&api, &alice.access_token, TEST_PASSWORD, "short").await;
    r.expect_error(400, "validation_failed");
    assert_eq!(r.field(), "newPassword");
    let r = change(
        &api,
        &alice.access_token,
        TEST_PASSWORD,
        &format!("my name is {}", alice.user_name),
    )
    .await;
    assert_eq!((r.status, r.field()), (400, "newPassword"), "{}", r.body);
    change(&api, "not.a.token", TEST_PASSWORD, NEW_PASSWORD)
        .await
        .expect_error(401, "unauthorized");
    api.send_json(Some(&other_access), "GET", "/me", None)
        .await
        .expect(200);

    let changed = change(&api, &alice.access_token, TEST_PASSWORD, NEW_PASSWORD)
        .await
        .expect(200);
    assert_eq!(changed["user"]["userId"], alice.id.as_str());
    let (access, refresh) = tokens(&changed);

    // The other device's socket is closed, its tokens are dead.
    assert!(
        closed(&mut other_ws).await,
        "the other device's socket is closed"
    );
    for t in [&other_access, &alice.access_token] {
        let r = api.send_json(Some(t), "GET", "/me", None).await;
        r.expect_error(401, "unauthorized");
    }
    post(
        &api,
        None,
        "/auth/refresh",
        json!({"refreshToken": other_refresh}),
    )
    .await
    .expect_error(401, "invalid_refresh_token");
    let r = post(
        &api,
        None,
        "/auth/refresh",
        json!({"refreshToken": alice.refresh_token}),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // The old password no longer logs in; the new one does.
    login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    login(&api, &alice.user_name, NEW_PASSWORD)
        .await
        .expect(200);
    // The caller's new session works and refreshes.
    api.send_json(Some(&access), "GET", "/me", None)
        .await
        .expect(200);
    post(
        &api,
        None,
        "/auth/refresh",
        json!({"refreshToken": refresh}),
    )
    .await
    .expect(200);
}

/// Threat "lockout blocks the owner" (Medium 4): a stranger locks the account with
/// five bad logins; the owner's session can still change the password (which clears
/// the lock) and delete the account.
#[tokio::test]
async fn a_stranger_locking_the_account_blocks_neither_password_change_nor_deletion() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    lock_out(&api, &alice).await;
    api.send_json(Some(&alice.access_token), "GET", "/me", None)
        .await
        .expect(200);
    let changed = change(&api, &alice.access_token, TEST_PASSWORD, NEW_PASSWORD)
        .await
        .expect(200);
    // The change cleared the lock: the new password logs in at once.
    login(&api, &alice.user_name, NEW_PASSWORD)
        .await
        .expect(200);

    let bob = api.register("Bob").await;
    lock_out(&api, &bob).await;
    let r = api
        .send_json(
            Some(&bob.access_token),
            "DELETE",
            "/me",
            Some(json!({"password": TEST_PASSWORD})),
        )
        .await;
    assert_eq!(
        r.status, 202,
        "deletion is not blocked by the lock: {}",
        r.body
    );
    let _ = changed;
}

/// Threat "stolen access token guesses the password": a session has five tries at the
/// current password (no lockout involved); then it is ended.
#[tokio::test]
async fn a_session_gets_five_password_tries_then_it_is_ended() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    for _ in 0..5 {
        change(&api, &alice.access_token, "a wrong guess", NEW_PASSWORD)
            .await
            .expect_error(401, "invalid_credentials");
    }
    // The right password is refused now: the session has used its tries...
    change(&api, &alice.access_token, TEST_PASSWORD, NEW_PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // ... and is revoked.
    post(
        &api,
        None,
        "/auth/refresh",
        json!({"refreshToken": alice.refresh_token}),
    )
    .await
    .expect_error(401, "invalid_refresh_token");
    // Logins were never locked by it.
    login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
}

/// Threat "parallel guesses beat the lockout" (Medium 3): 50 concurrent wrong logins
/// verify the password at most 5 times (counted from the function's log line for each
/// verification), and the account ends up locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_wrong_logins_verify_at_most_five() {
    chat_tests::needs_backend!();
    let cap = chat_tests::capture::capture();
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let answers =
        futures::future::join_all((0..50).map(|_| login(&api, &alice.user_name, "wrong guess!")))
            .await;
    for a in &answers {
        a.expect_error(401, "invalid_credentials");
    }
    let verified = verifications(cap, &alice.id);
    assert!(
        (1..=5).contains(&verified),
        "{verified} of 50 concurrent guesses were verified"
    );
    // Locked afterwards: the right password is refused.
    login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

fn verifications(cap: &chat_tests::capture::Capture, user: &UserId) -> usize {
    cap.log_lines()
        .iter()
        .filter(|l| l.contains("login password verification") && l.contains(user.as_str()))
        .count()
}

/// Send one JSON frame and return the next JSON event (skipping presence and typing).
async fn exchange(ws: &mut chat_tests::api::Ws, frame: Value) -> Option<Value> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .ok()?;
    next_event(ws).await
}

async fn next_event(ws: &mut chat_tests::api::Ws) -> Option<Value> {
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON event");
                    if v["type"] == "presence" || v["type"] == "typing" {
                        continue;
                    }
                    return Some(v);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("an event or the close within the wait")
}

async fn connect_with(stack: &TestStack, token: &str) -> Result<chat_tests::api::Ws, u16> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(format!("{}?token={token}", stack.ws_url())).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake failed without a status: {e}"),
    }
}

/// Threat "a logged-out session's socket keeps receiving" (Medium 2): logout of one
/// session closes the sockets opened with its tokens and no other.
#[tokio::test]
async fn logout_of_a_session_closes_its_sockets_and_no_others() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let phone = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    let (phone_access, phone_refresh) = tokens(&phone);
    let mut laptop_ws = connect_with(&stack, &alice.access_token).await.unwrap();
    let mut phone_ws = connect_with(&stack, &phone_access).await.unwrap();
    post(
        &api,
        None,
        "/auth/logout",
        json!({"refreshToken": phone_refresh}),
    )
    .await
    .expect(204);
    assert!(
        closed(&mut phone_ws).await,
        "the phone session's socket is closed"
    );
    let pong = exchange(&mut laptop_ws, json!({"action": "ping", "id": "still"})).await;
    assert_eq!(pong.expect("the laptop socket answers")["type"], "pong");
}

/// Threat "a socket outlives its token" (Medium 2): a socket whose access token
/// expired gets `token_expired` and is closed at its next frame; one that sends
/// `authenticate` with a fresh token of the same user lives on.
#[tokio::test]
async fn an_expired_socket_is_ended_unless_it_authenticates() {
    chat_tests::needs_backend!();
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let bob = api.register("Bob").await;
    // A token that expired a second ago: the handshake's 5-second clock-skew leeway
    // still lets it in, and the connection records its real expiry.
    let keys = chat_core::auth::TokenConfig::from_env(stack.env()).unwrap();
    let now = chat_core::model::now_millis();
    let stale = keys.issue(
        &alice.id,
        &chat_core::ids::SessionId::generate(),
        0,
        now - keys.access_ttl_secs * 1000 - 1000,
    );

    let mut ws = connect_with(&stack, &stale).await.expect("handshake");
    let ev = exchange(&mut ws, json!({"action": "ping", "id": "late"}))
        .await
        .expect("an error event before the close");
    assert_eq!(
        (ev["type"].as_str(), ev["code"].as_str()),
        (Some("error"), Some("token_expired")),
        "{ev}"
    );
    assert!(closed(&mut ws).await, "the expired socket is closed");

    let mut ws = connect_with(&stack, &stale).await.expect("handshake");
    // Another user's token does not extend it (and does not end it either).
    let ev = exchange(
        &mut ws,
        json!({"action": "authenticate", "token": bob.access_token}),
    )
    .await
    .expect("an answer");
    assert_eq!(ev["code"], "unauthorized", "{ev}");
    let ev = exchange(
        &mut ws,
        json!({"action": "authenticate", "token": alice.access_token}),
    )
    .await
    .expect("an answer");
    assert_eq!(ev["type"], "authenticated", "{ev}");
    let expires = chrono::DateTime::parse_from_rfc3339(ev["expiresAt"].as_str().unwrap()).unwrap();
    assert!(expires.timestamp_millis() > chat_core::model::now_millis());
    let ev = exchange(&mut ws, json!({"action": "ping", "id": "fresh"})).await;
    assert_eq!(ev.expect("a pong")["type"], "pong");
}

/// Threat "unlimited sockets per user" (Medium 7): ten sockets open, the eleventh
/// handshake is refused with 429.
#[tokio::test]
async fn the_eleventh_socket_of_a_user_is_refused_with_429() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let mut open = Vec::new();
    for i in 0..10 {
        open.push(
            connect_with(&stack, &alice.access_token)
                .await
                .unwrap_or_else(|s| panic!("socket {i}: {s}")),
        );
    }
    assert_eq!(
        connect_with(&stack, &alice.access_token).await.err(),
        Some(429)
    );
    // The ten keep working.
    let ev = exchange(&mut open[9], json!({"action": "ping"})).await;
    assert_eq!(ev.expect("a pong")["type"], "pong");
}

/// Threat "a handshake racing log-out-everywhere survives it" (Medium 2): sockets
/// opened while logout-all runs are either refused or closed; none stays usable.
#[tokio::test]
async fn sockets_opened_during_logout_all_do_not_survive_it() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let other = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    let (other_access, _) = tokens(&other);
    let connects =
        futures::future::join_all((0..6).map(|_| connect_with(&stack, &alice.access_token)));
    let logout = post(&api, Some(&other_access), "/auth/logout-all", json!({}));
    let (sockets, answer) = tokio::join!(connects, logout);
    assert_eq!(answer.status, 204, "{}", answer.body);
    for s in sockets {
        match s {
            Err(status) => assert_eq!(status, 403),
            Ok(mut ws) => {
                // Either already closed, or refused and closed at its next frame.
                let ev = exchange(&mut ws, json!({"action": "ping"})).await;
                if let Some(ev) = ev {
                    assert_ne!(ev["type"], "pong", "a socket survived logout-all: {ev}");
                    assert!(closed(&mut ws).await, "refused and closed");
                }
            }
        }
    }
}

/// Threat "a logged-out phone keeps showing previews" (Medium 1): a push device is tied
/// to the session that registered it; that session's logout unregisters it, other
/// sessions' devices stay; log-out-everywhere unregisters them all.
#[tokio::test]
async fn devices_end_with_the_session_that_registered_them() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let alice = api.register("Alice").await;
    let phone = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    let (phone_access, phone_refresh) = tokens(&phone);
    let register = |token: String, name: &'static str| {
        let api = &api;
        async move {
            post(
                api,
                Some(&token),
                "/devices",
                json!({"platform": "fcm", "token": format!("{name}-{}", "t".repeat(40))}),
            )
            .await
            .expect(201)
        }
    };
    register(phone_access.clone(), "phone").await;
    register(alice.access_token.clone(), "laptop").await;
    let devices = |token: String| {
        let api = &api;
        async move {
            api.send_json(Some(&token), "GET", "/devices", None)
                .await
                .expect(200)["devices"]
                .as_array()
                .expect("devices")
                .len()
        }
    };
    assert_eq!(devices(alice.access_token.clone()).await, 2);
    post(
        &api,
        None,
        "/auth/logout",
        json!({"refreshToken": phone_refresh}),
    )
    .await
    .expect(204);
    assert_eq!(
        devices(alice.access_token.clone()).await,
        1,
        "the phone's device went with its session"
    );
    let other = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    post(&api, Some(&tokens(&other).0), "/auth/logout-all", json!({}))
        .await
        .expect(204);
    let fresh = login(&api, &alice.user_name, TEST_PASSWORD)
        .await
        .expect(200);
    assert_eq!(
        devices(tokens(&fresh).0).await,
        0,
        "logout-all removes every device"
    );
}
