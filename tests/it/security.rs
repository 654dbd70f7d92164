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
    .expect_error(401, "session_revoked");
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
