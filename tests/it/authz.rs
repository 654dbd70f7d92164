//! The authorization matrix: every HTTP route the SAM template declares and every
//! WebSocket route, against every kind of caller that must be refused.
//!
//! The rows come from `infra/template.yaml` (as `openapi.rs` reads it): a route
//! without a row here, or a row for a route the template does not have, fails the
//! test, so a new route cannot ship without its authorization being checked. For each
//! route and each refused caller the answer must be the documented refusal (status,
//! `error.code`, and for bearer failures `WWW-Authenticate: Bearer` and the message of
//! the case, see `docs/security.md`), must validate against `docs/openapi.yaml`, and
//! must carry no data: no message text, chat name or member id. Refused callers are:
//!
//! - every bad bearer credential: none, malformed, a refresh token in its place, a
//!   wrong signature, `alg: none`, an altered payload, expired, another audience or
//!   issuer, revoked by "log out everywhere", of a deleted account, of an unknown user,
//!   a stale token version (forged tokens name the chat's admin, so a flaw would show
//!   as data);
//! - for chat routes: a user who never was a member, and a removed member (both get
//!   the answer for a chat that does not exist, byte for byte);
//! - for admin actions: a member who is not an admin (403);
//! - for a device: another user (404).
//!
//! On the WebSocket: the handshake with each bad credential (401, or 403 when revoked
//! or deleted), and every action from a non-member and a removed member (`not_found`,
//! the same as for an unknown chat; `sync` lists the chat as `removed`), with a member
//! online seeing none of it. At the end nothing changed: the chats, their members and
//! positions, and the admin's account, token and device are as before.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_core::auth::bearer::{EXPIRED, INVALID, MALFORMED, MISSING, REVOKED};
use chat_core::auth::TokenConfig;
use chat_core::ids::{ChatId, SessionId, UserId};
use chat_core::model::now_millis;
use chat_core::protocol::ACTIONS;
use chat_local::template::Template;
use chat_tests::api::{Api, ApiUser, TEST_PASSWORD};
use chat_tests::openapi::{doc, OpenApi};
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "the launch code is 0000";
const GROUP_NAME: &str = "Secret plans";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gate {
    /// No bearer token (`security: []`): registration and the refresh-token routes.
    Public,
    /// Any signed-in user.
    Bearer,
    /// A member of the chat in the path.
    Member,
    /// An admin of the group in the path.
    Admin,
    /// The owner of the device in the path.
    Owner,
}

/// One row: the template's route key, who may call it, and a request that the
/// admin (Alice) could make successfully, aimed at `chat`.
struct Row {
    route: &'static str,
    gate: Gate,
    request: Request,
}

type Request = fn(&World, &str) -> (String, Option<Value>);

fn r(route: &'static str, gate: Gate, request: Request) -> Row {
    Row {
        route,
        gate,
        request,
    }
}

fn rows() -> Vec<Row> {
    vec![
        r("POST /auth/register", Gate::Public, |_, _| {
            let name = format!("n{}", &UserId::generate().as_str()[14..]).to_lowercase();
            let body = json!({"userName": name, "password": TEST_PASSWORD, "displayName": "N"});
            ("/auth/register".into(), Some(body))
        }),
        r("POST /auth/login", Gate::Public, |w, _| {
            let body = json!({"userName": w.alice.user_name, "password": "not the password"});
            ("/auth/login".into(), Some(body))
        }),
        r("POST /auth/refresh", Gate::Public, |w, _| {
            let body = json!({"refreshToken": w.alice.access_token});
            ("/auth/refresh".into(), Some(body))
        }),
        r("POST /auth/logout", Gate::Public, |w, _| {
            let body = json!({"refreshToken": w.alice.access_token});
            ("/auth/logout".into(), Some(body))
        }),
        r("POST /auth/logout-all", Gate::Bearer, |_, _| {
            ("/auth/logout-all".into(), None)
        }),
        r("POST /auth/password", Gate::Bearer, |_, _| {
            let body =
                json!({"currentPassword": TEST_PASSWORD, "newPassword": "a brand new passphrase"});
            ("/auth/password".into(), Some(body))
        }),
        r("GET /me", Gate::Bearer, |_, _| ("/me".into(), None)),
        r("PATCH /me", Gate::Bearer, |_, _| {
            ("/me".into(), Some(json!({"statusText": "owned"})))
        }),
        r("DELETE /me", Gate::Bearer, |_, _| {
            ("/me".into(), Some(json!({"password": TEST_PASSWORD})))
        }),
        r("GET /me/export", Gate::Bearer, |_, _| {
            ("/me/export".into(), None)
        }),
        r("GET /users", Gate::Bearer, |w, _| {
            (format!("/users?prefix={}", &w.bob.user_name[..3]), None)
        }),
        r("GET /users/{userId}", Gate::Bearer, |w, _| {
            (format!("/users/{}", w.bob.id), None)
        }),
        r("POST /chats", Gate::Bearer, |w, _| {
            (
                "/chats".into(),
                Some(json!({"kind": "direct", "userId": w.bob.id})),
            )
        }),
        r("GET /chats", Gate::Bearer, |_, _| ("/chats".into(), None)),
        r("GET /sync", Gate::Bearer, |_, _| ("/sync".into(), None)),
        r("POST /devices", Gate::Bearer, |_, _| {
            let body = json!({"platform": "fcm", "token": format!("authz-{}", "k".repeat(40))});
            ("/devices".into(), Some(body))
        }),
        r("GET /devices", Gate::Bearer, |_, _| {
            ("/devices".into(), None)
        }),
        r("DELETE /devices/{deviceId}", Gate::Owner, |w, _| {
            (format!("/devices/{}", w.device), None)
        }),
        r("GET /chats/{chatId}", Gate::Member, |_, c| {
            (format!("/chats/{c}"), None)
        }),
        r("GET /chats/{chatId}/messages", Gate::Member, |_, c| {
            (format!("/chats/{c}/messages?after=0"), None)
        }),
        r("POST /chats/{chatId}/messages", Gate::Member, |_, c| {
            let body = json!({"clientMessageId": "authz-1", "text": "intruder"});
            (format!("/chats/{c}/messages"), Some(body))
        }),
        r("POST /chats/{chatId}/read", Gate::Member, |_, c| {
            (format!("/chats/{c}/read"), Some(json!({"position": 1})))
        }),
        r("PATCH /chats/{chatId}/members/me", Gate::Member, |_, c| {
            (
                format!("/chats/{c}/members/me"),
                Some(json!({"muted": true})),
            )
        }),
        r("PATCH /chats/{chatId}", Gate::Admin, |_, c| {
            (format!("/chats/{c}"), Some(json!({"name": "Taken over"})))
        }),
        r("POST /chats/{chatId}/members", Gate::Admin, |w, c| {
            let body = json!({"memberIds": [w.outsider.id]});
            (format!("/chats/{c}/members"), Some(body))
        }),
        r(
            "DELETE /chats/{chatId}/members/{userId}",
            Gate::Admin,
            |w, c| {
                // Removing someone else (the admin herself): admins only. Leaving (`me`)
                // is open to members; both forms are refused to non-members below.
                (format!("/chats/{c}/members/{}", w.alice.id), None)
            },
        ),
        // The author edits; the author or a group admin deletes (tests/it/edits.rs
        // checks the member who is neither); here those outside the chat.
        r(
            "PATCH /chats/{chatId}/messages/{position}",
            Gate::Member,
            |_, c| {
                let body = json!({"text": "rewritten"});
                (format!("/chats/{c}/messages/2"), Some(body))
            },
        ),
        r(
            "DELETE /chats/{chatId}/messages/{position}",
            Gate::Member,
            |_, c| (format!("/chats/{c}/messages/2"), None),
        ),
        r("POST /me/blocks/{userId}", Gate::Bearer, |w, _| {
            (format!("/me/blocks/{}", w.outsider.id), None)
        }),
        r("DELETE /me/blocks/{userId}", Gate::Bearer, |w, _| {
            (format!("/me/blocks/{}", w.outsider.id), None)
        }),
        r("GET /me/blocks", Gate::Bearer, |_, _| {
            ("/me/blocks".into(), None)
        }),
        r("POST /chats/{chatId}/attachments", Gate::Member, |_, c| {
            let body =
                json!({"fileName": "plan.pdf", "contentType": "application/pdf", "size": 10});
            (format!("/chats/{c}/attachments"), Some(body))
        }),
        r(
            "GET /chats/{chatId}/attachments/{attachmentId}",
            Gate::Member,
            |_, c| {
                let id = chat_core::ids::AttachmentId::generate();
                (format!("/chats/{c}/attachments/{id}"), None)
            },
        ),
        r(
            "GET /chats/{chatId}/attachments/{attachmentId}/thumbnail",
            Gate::Member,
            |_, c| {
                let id = chat_core::ids::AttachmentId::generate();
                (format!("/chats/{c}/attachments/{id}/thumbnail"), None)
            },
        ),
    ]
}

/// A bad bearer credential, and the message its refusal must carry.
struct BadToken {
    what: &'static str,
    /// The whole `Authorization` header (None: no header).
    header: Option<String>,
    /// The token alone, for the WebSocket handshake (None: no token).
    token: Option<String>,
    message: &'static str,
}

struct World {
    stack: &'static TestStack,
    http: reqwest::Client,
    doc: &'static OpenApi,
    alice: ApiUser,
    bob: ApiUser,
    carol: ApiUser,
    outsider: ApiUser,
    group: String,
    direct: String,
    device: String,
    bad: Vec<BadToken>,
}

struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    text: String,
    body: Value,
}

impl World {
    async fn start() -> &'static World {
        // The stack lives for the whole test; leaking it lets `Api` borrow it.
        let stack: &'static TestStack = Box::leak(Box::new(TestStack::start().await));
        let api = Api::new(stack);
        let users = futures::future::join_all(
            ["alice", "bob", "carol", "dave", "erin", "olive"].map(|n| api.register(n)),
        )
        .await;
        let [alice, bob, carol, dave, erin, outsider] = <[ApiUser; 6]>::try_from(users).unwrap();

        // Alice's group with Bob, Carol (removed below) and Dave; her direct chat with
        // Bob; a message with the secret in each; her push device.
        let (s, g) = api
            .call(
                &alice,
                "POST",
                "/chats",
                Some(json!({"kind": "group", "name": GROUP_NAME, "memberIds": [bob.id, carol.id, dave.id]})),
            )
            .await;
        assert_eq!(s, 201, "{g}");
        let group = g["chatId"].as_str().unwrap().to_owned();
        let (s, d) = api
            .call(
                &alice,
                "POST",
                "/chats",
                Some(json!({"kind": "direct", "userId": bob.id})),
            )
            .await;
        assert_eq!(s, 201, "{d}");
        let direct = d["chatId"].as_str().unwrap().to_owned();
        for (i, chat) in [&group, &direct].into_iter().enumerate() {
            let (s, m) = api
                .call(
                    &alice,
                    "POST",
                    &format!("/chats/{chat}/messages"),
                    Some(json!({"clientMessageId": format!("secret-{i}"), "text": SECRET})),
                )
                .await;
            assert_eq!(s, 201, "{m}");
        }
        let (s, r) = api
            .call(
                &alice,
                "DELETE",
                &format!("/chats/{group}/members/{}", carol.id),
                None,
            )
            .await;
        assert_eq!(s, 200, "{r}");
        let (s, dev) = api
            .call(
                &alice,
                "POST",
                "/devices",
                Some(json!({"platform": "fcm", "token": format!("alice-{}", "d".repeat(40))})),
            )
            .await;
        assert_eq!(s, 201, "{dev}");
        let device = dev["deviceId"].as_str().unwrap().to_owned();
        // Dave logs out everywhere (his token is revoked); Erin deletes her account.
        let (s, _) = api.call(&dave, "POST", "/auth/logout-all", None).await;
        assert_eq!(s, 204);
        let (s, r) = api
            .call(
                &erin,
                "DELETE",
                "/me",
                Some(json!({"password": TEST_PASSWORD})),
            )
            .await;
        assert_eq!(s, 202, "{r}");

        let bad = bad_tokens(stack, &alice, &dave, &erin);
        Box::leak(Box::new(World {
            stack,
            http: reqwest::Client::new(),
            doc: doc(),
            alice,
            bob,
            carol,
            outsider,
            group,
            direct,
            device,
            bad,
        }))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let url = format!("{}{path}", self.stack.http_url());
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, &url);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        let path_only = path.split('?').next().unwrap();
        if let Err(e) = self.doc.check_response(method, path_only, status, &body) {
            panic!("{method} {path}: {e}");
        }
        Reply {
            status,
            www_authenticate,
            text,
            body,
        }
    }

    async fn as_user(
        &self,
        user: &ApiUser,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {}", user.access_token);
        self.send(method, path, Some(&auth), body.map(|b| b.to_string()))
            .await
    }

    /// A refusal carries the error and nothing else of the service's data.
    fn assert_no_data(&self, what: &str, r: &Reply) {
        let keys: Vec<&String> = r
            .body
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["error"], "{what}: {}", r.text);
        for secret in [
            SECRET,
            GROUP_NAME,
            self.alice.id.as_str(),
            self.bob.id.as_str(),
            self.alice.user_name.as_str(),
            &self.device,
        ] {
            assert!(
                !r.text.contains(secret),
                "{what} leaks {secret:?}: {}",
                r.text
            );
        }
    }

    fn assert_error(&self, what: &str, r: &Reply, status: u16, code: &str) {
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert_eq!(r.body["error"]["code"], code, "{what}: {}", r.text);
        self.assert_no_data(what, r);
    }
}

fn bad_tokens(stack: &TestStack, alice: &ApiUser, dave: &ApiUser, erin: &ApiUser) -> Vec<BadToken> {
    let real = TokenConfig::from_env(stack.env()).expect("the stack's token settings");
    let key = stack.signing_key().as_bytes();
    let now = now_millis();
    let session = SessionId::generate();
    let b64 = URL_SAFE_NO_PAD;
    let parts: Vec<&str> = alice.access_token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let issue = |key: &[u8], iss: &str, aud: &str, user: &UserId, ver: u64, at: i64| {
        TokenConfig::new(key, iss, aud, 900, 3600)
            .unwrap()
            .issue(user, &session, ver, at)
    };
    let (iss, aud) = (real.issuer.as_str(), real.audience.as_str());
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    claims["ver"] = json!(claims["ver"].as_u64().unwrap() + 1);
    let altered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let tokens: Vec<(&str, Option<String>, &str)> = vec![
        (
            "refresh token as access token",
            Some(alice.refresh_token.clone()),
            MALFORMED,
        ),
        ("not a JWT", Some("abc".into()), MALFORMED),
        (
            "wrong signature",
            Some(issue(&[7u8; 40], iss, aud, &alice.id, 0, now)),
            INVALID,
        ),
        ("alg none", Some(alg_none), INVALID),
        ("altered payload", Some(altered), INVALID),
        (
            "expired",
            Some(issue(key, iss, aud, &alice.id, 0, now - 3_600_000)),
            EXPIRED,
        ),
        (
            "another audience",
            Some(issue(key, iss, "another-api", &alice.id, 0, now)),
            INVALID,
        ),
        (
            "another issuer",
            Some(issue(key, "someone-else", aud, &alice.id, 0, now)),
            INVALID,
        ),
        (
            "stale token version",
            Some(issue(key, iss, aud, &alice.id, 7, now)),
            REVOKED,
        ),
        (
            "unknown user",
            Some(issue(key, iss, aud, &UserId::generate(), 0, now)),
            REVOKED,
        ),
        (
            "revoked by logout-all",
            Some(dave.access_token.clone()),
            REVOKED,
        ),
        ("deleted account", Some(erin.access_token.clone()), REVOKED),
    ];
    let mut out = vec![
        BadToken {
            what: "no token",
            header: None,
            token: None,
            message: MISSING,
        },
        BadToken {
            what: "basic scheme",
            header: Some("Basic YWxpY2U6cGFzc3dvcmQ=".into()),
            token: None,
            message: MALFORMED,
        },
        BadToken {
            what: "bearer without a token",
            header: Some("Bearer ".into()),
            token: None,
            message: MALFORMED,
        },
        BadToken {
            what: "token without a scheme",
            header: Some(alice.access_token.clone()),
            token: None,
            message: MALFORMED,
        },
    ];
    out.extend(tokens.into_iter().map(|(what, token, message)| BadToken {
        what,
        header: token.as_ref().map(|t| format!("Bearer {t}")),
        token,
        message,
    }));
    out
}

fn template() -> Template {
    Template::load(&Template::default_path()).expect("template")
}

#[test]
fn every_route_has_a_row_and_every_row_a_route() {
    let routes: BTreeSet<String> = template()
        .http_routes()
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.method.to_uppercase(), r.path))
        .collect();
    let covered: BTreeSet<String> = rows().iter().map(|r| r.route.to_owned()).collect();
    assert_eq!(covered.len(), rows().len(), "one row per route");
    let missing: Vec<_> = routes.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without an authorization row: {missing:?}"
    );
    let extra: Vec<_> = covered.difference(&routes).collect();
    assert!(
        extra.is_empty(),
        "rows for routes the template lacks: {extra:?}"
    );
    // Public routes are exactly those the contract documents without security.
    let doc = doc();
    for row in rows() {
        let (method, path) = row.route.split_once(' ').unwrap();
        let op = &doc.doc()["paths"][path][method.to_lowercase()];
        let public = op["security"].as_array().is_some_and(|s| s.is_empty());
        assert_eq!(
            public,
            row.gate == Gate::Public,
            "{}: security in docs/openapi.yaml",
            row.route
        );
    }
}

#[tokio::test]
async fn every_http_route_refuses_every_caller_it_must() {
    chat_tests::needs_backend!();
    let w = World::start().await;
    let before = snapshot(w).await;
    let unknown = ChatId::new_group().to_string();
    let mut checked = 0;

    for row in rows() {
        let (method, _) = row.route.split_once(' ').unwrap();
        let (path, body) = (row.request)(w, &w.group);
        let body = body.map(|b| b.to_string());

        if row.gate == Gate::Public {
            // No bearer check to fail; a bad `Authorization` header changes nothing.
            let plain = w.send(method, &path, None, body.clone()).await;
            let forged = w
                .send(method, &path, Some("Bearer abc.def.ghi"), body.clone())
                .await;
            if row.route != "POST /auth/register" {
                assert_eq!(
                    (plain.status, &plain.body),
                    (forged.status, &forged.body),
                    "{}",
                    row.route
                );
            }
            assert!(forged.status < 500, "{}: {}", row.route, forged.text);
            // Access tokens are no refresh tokens.
            if row.route == "POST /auth/refresh" || row.route == "POST /auth/logout" {
                w.assert_error(row.route, &plain, 401, "invalid_refresh_token");
            }
            checked += 2;
            continue;
        }

        // Every bad credential: 401 with the case's message, whatever the body.
        for bad in &w.bad {
            let what = format!("{} with {}", row.route, bad.what);
            let r = w
                .send(method, &path, bad.header.as_deref(), body.clone())
                .await;
            w.assert_error(&what, &r, 401, "unauthorized");
            assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"), "{what}");
            assert_eq!(r.body["error"]["message"], bad.message, "{what}");
            checked += 1;
        }
        // Authentication comes before reading the request: no token and a broken body
        // is still 401, not a 400 that would tell what the route expects.
        let r = w.send(method, &path, None, Some("{".into())).await;
        w.assert_error(
            &format!("{} unauthenticated, broken body", row.route),
            &r,
            401,
            "unauthorized",
        );
        checked += 1;

        match row.gate {
            Gate::Member | Gate::Admin => {
                let targets: Vec<(&ApiUser, &str)> = vec![
                    (&w.outsider, &w.group),
                    (&w.outsider, &w.direct),
                    (&w.carol, &w.group),
                ];
                let (unknown_path, unknown_body) = (row.request)(w, &unknown);
                for (who, chat) in targets {
                    let (path, body) = (row.request)(w, chat);
                    let what = format!("{} by {} on {chat}", row.route, who.user_name);
                    let r = w.as_user(who, method, &path, body).await;
                    w.assert_error(&what, &r, 404, "not_found");
                    // Exactly the answer for a chat that does not exist.
                    let none = w
                        .as_user(who, method, &unknown_path, unknown_body.clone())
                        .await;
                    assert_eq!((r.status, &r.body), (none.status, &none.body), "{what}");
                    checked += 2;
                }
                if row.route == "DELETE /chats/{chatId}/members/{userId}" {
                    // Leaving is refused to those who are not in the chat, too.
                    for (who, chat) in [(&w.outsider, &w.group), (&w.carol, &w.group)] {
                        let r = w
                            .as_user(who, method, &format!("/chats/{chat}/members/me"), None)
                            .await;
                        w.assert_error(
                            &format!("leave {chat} by {}", who.user_name),
                            &r,
                            404,
                            "not_found",
                        );
                        checked += 1;
                    }
                }
                if row.gate == Gate::Admin {
                    let (path, body) = (row.request)(w, &w.group);
                    let r = w.as_user(&w.bob, method, &path, body).await;
                    w.assert_error(
                        &format!("{} by a member who is not admin", row.route),
                        &r,
                        403,
                        "forbidden",
                    );
                    checked += 1;
                }
            }
            Gate::Owner => {
                let r = w.as_user(&w.outsider, method, &path, None).await;
                w.assert_error(
                    &format!("{} by another user", row.route),
                    &r,
                    404,
                    "not_found",
                );
                checked += 1;
            }
            Gate::Bearer | Gate::Public => {}
        }
    }
    assert!(checked > 300, "{checked} refusals checked");

    // Nothing any refused caller sent changed anything.
    assert_eq!(snapshot(w).await, before);
}

/// What the refusals must not have changed: Alice's account (her token still works,
/// so neither logout-all nor DELETE /me ran for her), her device, both chats with
/// their members and positions.
async fn snapshot(w: &World) -> Value {
    let me = w.as_user(&w.alice, "GET", "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let devices = w.as_user(&w.alice, "GET", "/devices", None).await;
    let mut chats = Vec::new();
    for chat in [&w.group, &w.direct] {
        let d = w
            .as_user(&w.alice, "GET", &format!("/chats/{chat}"), None)
            .await;
        assert_eq!(d.status, 200, "{}", d.text);
        let page = w
            .as_user(&w.alice, "GET", &format!("/chats/{chat}/messages"), None)
            .await;
        let mut members: Vec<Value> = d.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| json!([m["userId"], m["role"], m["readPosition"]]))
            .collect();
        members.sort_by_key(Value::to_string);
        chats.push(json!({
            "name": d.body["name"],
            "lastPosition": d.body["lastPosition"],
            "members": members,
            "texts": page.body["messages"].as_array().unwrap().iter().map(|m| m["text"].clone()).collect::<Vec<_>>(),
        }));
    }
    let bob_in_group = w
        .as_user(&w.bob, "GET", &format!("/chats/{}", w.group), None)
        .await;
    json!({
        "profile": me.body,
        "devices": devices.body,
        "chats": chats,
        "bobMuted": bob_in_group.body["muted"],
    })
}

// ------------------------------------------------------------------ WebSocket

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A frame for `action` aimed at `chat` (the request a member could make).
fn frame(action: &str, chat: &str) -> Value {
    match action {
        "sendMessage" => {
            json!({"action": action, "chatId": chat, "clientMessageId": "intrude-1", "text": "intruder"})
        }
        "ack" | "read" => json!({"action": action, "chatId": chat, "position": 1}),
        "typing" => json!({"action": action, "chatId": chat, "state": "started"}),
        "sync" => json!({"action": action, "chats": [{"chatId": chat, "position": 0}]}),
        "ping" => json!({"action": action, "id": "p"}),
        "authenticate" => json!({"action": action, "token": "not.a.token"}),
        "$default" => json!({"action": "takeOver", "chatId": chat}),
        "editMessage" => json!({"action": action, "chatId": chat, "position": 2, "text": "owned"}),
        "deleteMessage" => json!({"action": action, "chatId": chat, "position": 2}),
        other => panic!("no frame for the WebSocket route {other}; add one"),
    }
}

async fn open(w: &World, token: Option<&str>, subprotocol: Option<&str>) -> Result<Ws, u16> {
    let url = match token {
        Some(t) => format!("{}?token={t}", w.stack.ws_url()),
        None => w.stack.ws_url().to_owned(),
    };
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("handshake: {e}"),
    }
}

async fn next_frame(ws: &mut Ws) -> Value {
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

/// Send `v` and return the frames up to (not including) the pong of a ping sent after it.
async fn exchange(ws: &mut Ws, v: Value, n: usize) -> Vec<Value> {
    ws.send(WsMessage::Text(v.to_string().into()))
        .await
        .unwrap();
    barrier(ws, n).await
}

async fn barrier(ws: &mut Ws, n: usize) -> Vec<Value> {
    let id = format!("barrier-{n}");
    ws.send(WsMessage::Text(
        json!({"action": "ping", "id": id}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    loop {
        let v = next_frame(ws).await;
        if v["type"] == "pong" && v["id"] == id.as_str() {
            return frames;
        }
        frames.push(v);
    }
}

#[tokio::test]
async fn every_websocket_route_refuses_every_caller_it_must() {
    chat_tests::needs_backend!();
    let w = World::start().await;
    let before = snapshot(w).await;

    // The rows: every route of the template's WebSocket API, and every action.
    let routes: BTreeSet<String> = template()
        .websocket_api()
        .unwrap()
        .routes
        .into_keys()
        .collect();
    let mut expected: BTreeSet<String> = ["$connect", "$disconnect", "$default"]
        .map(str::to_owned)
        .into();
    expected.extend(ACTIONS.iter().map(|a| a.to_string()));
    assert_eq!(
        routes, expected,
        "WebSocket routes of the template vs the rows here"
    );

    // $connect: every bad credential is refused, 401, or 403 once it was revoked.
    let mut handshakes = 0;
    for bad in &w.bad {
        let status = if bad.message == REVOKED { 403 } else { 401 };
        let got = open(w, bad.token.as_deref(), None).await.err();
        assert_eq!(got, Some(status), "handshake with {}", bad.what);
        if let Some(t) = &bad.token {
            let got = open(w, None, Some(&format!("chat.v1, {t}"))).await.err();
            assert_eq!(
                got,
                Some(status),
                "handshake with {} as subprotocol",
                bad.what
            );
        }
        handshakes += 1;
    }
    assert!(handshakes >= 12);
    // $disconnect is fired by the gateway, never by a client's frame: a frame naming
    // it is just an unknown action (the $default row below covers that answer).

    // Every action, from a non-member and from a removed member, while Bob (a member)
    // is online and must see nothing of it.
    let mut bob = open(w, Some(&w.bob.access_token), None)
        .await
        .expect("bob connects");
    let mut n = 0;
    for (who, chats) in [
        (&w.outsider, vec![w.group.as_str(), w.direct.as_str()]),
        (&w.carol, vec![w.group.as_str()]),
    ] {
        let unknown = ChatId::new_group().to_string();
        for route in &routes {
            if route.starts_with("$connect") || route == "$disconnect" {
                continue;
            }
            // A connection per route keeps each under the rate limit (30 frames/10 s).
            let mut ws = open(w, Some(&who.access_token), None)
                .await
                .expect("connects");
            for chat in &chats {
                n += 1;
                let what = format!("{route} by {} on {chat}", who.user_name);
                let got = exchange(&mut ws, frame(route, chat), n).await;
                n += 1;
                let none = exchange(&mut ws, frame(route, &unknown), n).await;
                for f in got.iter().chain(&none) {
                    let text = f.to_string();
                    for secret in [SECRET, GROUP_NAME, w.alice.id.as_str(), w.bob.id.as_str()] {
                        assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
                    }
                }
                match route.as_str() {
                    "ping" => {
                        assert_eq!(got.len(), 1, "{what}: {got:?}");
                        assert_eq!(got[0]["type"], "pong", "{what}");
                    }
                    "sync" => {
                        assert_eq!(got.len(), 1, "{what}: {got:?}");
                        assert_eq!(got[0]["type"], "syncResult", "{what}");
                        assert_eq!(got[0]["removed"], json!([chat]), "{what}: {}", got[0]);
                        assert!(
                            got[0]["chats"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .all(|c| c["chatId"] != *chat),
                            "{what}: {}",
                            got[0]
                        );
                    }
                    "authenticate" => {
                        assert_eq!(got.len(), 1, "{what}: {got:?}");
                        assert_eq!(got[0]["code"], "unauthorized", "{what}");
                        assert_eq!(got, none, "{what}");
                    }
                    "$default" => {
                        assert_eq!(got.len(), 1, "{what}: {got:?}");
                        assert_eq!(got[0]["code"], "unknown_action", "{what}");
                        assert_eq!(got, none, "{what}");
                    }
                    _ => {
                        assert_eq!(got.len(), 1, "{what}: {got:?}");
                        assert_eq!(got[0]["type"], "error", "{what}");
                        assert_eq!(got[0]["code"], "not_found", "{what}: {}", got[0]);
                        assert_eq!(got[0]["action"], route.as_str(), "{what}");
                        // The same answer as for a chat that does not exist.
                        assert_eq!(got, none, "{what}");
                    }
                }
            }
            let _ = ws.close(None).await;
        }
    }
    n += 1;
    let seen = barrier(&mut bob, n).await;
    assert!(
        seen.is_empty(),
        "a member saw something of the refused actions: {seen:?}"
    );
    let _ = bob.close(None).await;

    assert_eq!(snapshot(w).await, before);
}
