//! `ws-connect`: the WebSocket `$connect` route. Authenticates the handshake with an
//! access token (query `?token=` or the `Sec-WebSocket-Protocol` header, see
//! docs/protocol.md, "Connect"), checks the token version against the account ("log
//! out everywhere"), records the connection with its device label and expiry, and
//! when the user just came online tells their online direct-chat partners. A bad
//! token answers 401, a revoked one 403: API Gateway then refuses the handshake and
//! nothing is stored. The connection carries the token's session, version and expiry
//! (checked by `ws-message` on every frame; the write itself re-checks the version, so
//! a handshake racing a log-out-everywhere cannot slip through). A user's 11th open
//! connection is refused with 429 (`MAX_CONNECTIONS_PER_USER`).

use chat_core::auth::AccessClaims;
use chat_core::config::Env;
use chat_core::error::ApiError;
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::ids::UserId;
use chat_core::input::InvalidInput;
use chat_core::messaging::ChatServices;
use chat_core::model::{now_millis, Connection, ConnectionCredential};
use chat_core::protocol::SUBPROTOCOL;
use chat_core::store::{Conflict, StoreError, MAX_CONNECTIONS_PER_USER};
use chat_core::ws::{self, WsEvent, WsResponse};
use http::{HeaderMap, HeaderValue};
use lambda_runtime::Error;

/// API Gateway closes a WebSocket after 2 hours; the record lives a little longer so a
/// lost `$disconnect` is cleaned up by the TTL soon after.
pub const CONNECTION_LIFETIME_MS: i64 = 2 * 3600 * 1000;
pub const EXPIRY_MARGIN_MS: i64 = 10 * 60 * 1000;
/// Longest device label kept.
pub const MAX_DEVICE_LABEL: usize = 64;

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    function::with_state(ChatServices::init(env), |s, event: WsEvent, _| async move {
        Ok(handle(&s, event).await)
    })
}

/// Where the token came from, and the subprotocol to select in the answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub token: String,
    /// `chat.v1` whenever the client offered it in `Sec-WebSocket-Protocol` (browsers
    /// fail a handshake that offered subprotocols and got none selected); never the
    /// token, which would be echoed into the handshake answer, proxies and logs.
    pub subprotocol: Option<String>,
}

/// The token from `?token=`, else from `Sec-WebSocket-Protocol` (`chat.v1, <token>`).
pub fn credentials(event: &WsEvent) -> Option<Credentials> {
    let offered: Vec<&str> = header(&event.headers, "sec-websocket-protocol")
        .map(|o| {
            o.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let subprotocol = offered
        .contains(&SUBPROTOCOL)
        .then(|| SUBPROTOCOL.to_owned());
    let token = event
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
        .or_else(|| offered.iter().find(|p| **p != SUBPROTOCOL).copied())?;
    Some(Credentials {
        token: token.to_owned(),
        subprotocol,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The device label: `?device=`, else the User-Agent, cut to 64 printable characters.
pub fn device_label(event: &WsEvent) -> String {
    let raw = event
        .query_string_parameters
        .first("device")
        .or_else(|| header(&event.headers, "user-agent"))
        .unwrap_or("unknown");
    let label: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DEVICE_LABEL)
        .collect();
    if label.trim().is_empty() {
        "unknown".to_owned()
    } else {
        label
    }
}

/// A dependency failed: `503`, logged and counted (the client retries the handshake).
fn unavailable(e: StoreError, what: &'static str) -> WsResponse {
    chat_core::metrics::store_error(&e);
    tracing::error!(error = %e, "{what}");
    ws::error_response(&ApiError::Unavailable(Box::new(e)))
}

/// Handle one `$connect`.
pub async fn handle(services: &ChatServices, event: WsEvent) -> WsResponse {
    let Some(connection_id) = ws::connection_id(&event) else {
        return ws::error_response(&InvalidInput::new("connectionId", "is missing").into());
    };
    let Some(creds) = credentials(&event) else {
        tracing::info!("handshake without a token refused");
        return ws::error_response(&ApiError::Unauthorized(
            "an access token is required".into(),
        ));
    };
    let user = match services
        .tokens()
        .verify(&creds.token)
        .and_then(|c| Ok((c.user_id()?, c)))
    {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(error = %e, "handshake with a bad token refused");
            return ws::error_response(&ApiError::Unauthorized(
                "the access token is not valid".into(),
            ));
        }
    };
    let (user_id, claims): (UserId, AccessClaims) = user;
    let version = claims.ver;
    chat_core::telemetry::record_user(&user_id);
    // Whom a "came online" presence event goes to is read while the account is
    // checked and the connection stored, so that the handshake waits on three
    // sequential DynamoDB round trips, not six: GetItem (Users) ‖ Query (byUser), then
    // PutItem (Connections) ‖ Query (Members), then UpdateItem (Presence) ‖
    // BatchGetItem (Presence). The reads are wasted when the handshake is refused or
    // the user was online already.
    let store_connection = async {
        match services.store().get_account(&user_id).await {
            Ok(Some(acct)) if !acct.deleted && acct.token_version == version => {}
            Ok(Some(_)) | Ok(None) => {
                tracing::info!("handshake with a revoked token refused");
                return Err(ws::error_response(&ApiError::Forbidden(
                    "the access token was revoked".into(),
                )));
            }
            Err(e) => return Err(unavailable(e, "account lookup failed")),
        }
        let now = now_millis();
        let connection = Connection {
            connection_id: connection_id.clone(),
            user_id: user_id.clone(),
            device_label: device_label(&event),
            connected_at: now,
            expires_at: now + CONNECTION_LIFETIME_MS + EXPIRY_MARGIN_MS,
            source_ip: event
                .request_context
                .identity
                .source_ip
                .clone()
                .unwrap_or_default(),
            credential: Some(ConnectionCredential {
                session_id: claims.session_id().ok(),
                token_version: version,
                token_expires_at: claims.exp * 1000,
                revoked: false,
            }),
        };
        match services.store().put_connection(&connection).await {
            Ok(b) => Ok(b),
            // The token version moved on between the check above and the write.
            Err(StoreError::NotFound(_)) => {
                tracing::info!("handshake with a token revoked meanwhile refused");
                Err(ws::error_response(&ApiError::Forbidden(
                    "the access token was revoked".into(),
                )))
            }
            Err(StoreError::Conflict(Conflict::TooManyConnections)) => {
                tracing::info!(user_id = %user_id, "handshake over the per-user connection cap refused");
                chat_core::metrics::count("ConnectionsCapped", 1);
                Err(ws::error_response(&ApiError::RateLimited(format!(
                    "at most {MAX_CONNECTIONS_PER_USER} open connections per user; close one first"
                ))))
            }
            Err(e) => Err(unavailable(e, "could not store the connection")),
        }
    };
    let (stored, targets) = tokio::join!(store_connection, services.presence_targets(&user_id));
    let came_online = match stored {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    chat_core::metrics::count("Connects", 1);
    tracing::info!(connection = %connection_id, came_online, "connected");
    if came_online {
        match targets {
            Ok(targets) => {
                services.post_presence(&user_id, &targets, true, None).await;
            }
            Err(e) => e.log(),
        }
    }
    let mut r = ws::ok();
    if let Some(p) = creds.subprotocol {
        if let Ok(v) = HeaderValue::from_str(&p) {
            r.headers.insert("sec-websocket-protocol", v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(query: &[(&str, &str)], headers: &[(&str, &str)]) -> WsEvent {
        let mut v = serde_json::json!({
            "requestContext": {"connectionId": "abc=", "routeKey": "$connect", "connectedAt": 0, "requestTimeEpoch": 0, "identity": {"sourceIp": "127.0.0.1"}},
            "headers": {},
            "queryStringParameters": {},
            "isBase64Encoded": false
        });
        for (k, val) in query {
            v["queryStringParameters"][*k] = (*val).into();
        }
        for (k, val) in headers {
            v["headers"][*k] = (*val).into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn token_from_query_or_subprotocol() {
        let e = event(&[("token", "a.b.c")], &[]);
        assert_eq!(
            credentials(&e),
            Some(Credentials {
                token: "a.b.c".into(),
                subprotocol: None
            })
        );
        let e = event(&[], &[("Sec-WebSocket-Protocol", "chat.v1, a.b.c")]);
        assert_eq!(
            credentials(&e),
            Some(Credentials {
                token: "a.b.c".into(),
                subprotocol: Some("chat.v1".into())
            })
        );
        // The token alone as a subprotocol: accepted, but never selected (echoed).
        let e = event(&[], &[("sec-websocket-protocol", "a.b.c")]);
        assert_eq!(
            credentials(&e),
            Some(Credentials {
                token: "a.b.c".into(),
                subprotocol: None
            })
        );
        // `?token=` and `chat.v1` offered: chat.v1 is selected.
        let e = event(
            &[("token", "a.b.c")],
            &[("Sec-WebSocket-Protocol", "chat.v1")],
        );
        assert_eq!(
            credentials(&e),
            Some(Credentials {
                token: "a.b.c".into(),
                subprotocol: Some("chat.v1".into())
            })
        );
        assert_eq!(credentials(&event(&[], &[])), None);
        assert_eq!(
            credentials(&event(&[], &[("sec-websocket-protocol", "chat.v1")])),
            None
        );
    }

    #[test]
    fn device_labels() {
        assert_eq!(device_label(&event(&[("device", "phone")], &[])), "phone");
        assert_eq!(
            device_label(&event(&[], &[("user-agent", "curl/8")])),
            "curl/8"
        );
        assert_eq!(device_label(&event(&[], &[])), "unknown");
        let long = "x".repeat(200);
        assert_eq!(device_label(&event(&[("device", &long)], &[])).len(), 64);
    }

    proptest::proptest! {
        /// Whatever a client puts in the query and the subprotocol header: no panic;
        /// a token found is non-empty and came from one of the two places; the device
        /// label is 1 to 64 characters without control characters.
        #[test]
        fn hostile_handshakes(
            token in proptest::option::of(proptest::prelude::any::<String>()),
            device in proptest::option::of(proptest::prelude::any::<String>()),
            protocol in proptest::option::of("[ -~]{0,80}"),
            agent in proptest::option::of("[ -~]{0,300}"),
        ) {
            let mut query = Vec::new();
            if let Some(t) = &token { query.push(("token", t.as_str())); }
            if let Some(d) = &device { query.push(("device", d.as_str())); }
            let mut headers = Vec::new();
            if let Some(p) = &protocol { headers.push(("sec-websocket-protocol", p.as_str())); }
            if let Some(a) = &agent { headers.push(("user-agent", a.as_str())); }
            let e = event(&query, &headers);
            if let Some(c) = credentials(&e) {
                proptest::prop_assert!(!c.token.is_empty());
                let from_query = token.as_deref() == Some(c.token.as_str());
                let from_header = protocol.as_deref().is_some_and(|p| p.contains(c.token.as_str()));
                proptest::prop_assert!(from_query || from_header);
                if let Some(sp) = &c.subprotocol {
                    proptest::prop_assert!(protocol.as_deref().is_some_and(|p| p.contains(sp.as_str())));
                }
            }
            let label = device_label(&e);
            let n = label.chars().count();
            proptest::prop_assert!((1..=MAX_DEVICE_LABEL).contains(&n), "{:?}", label);
            proptest::prop_assert!(!label.chars().any(char::is_control));
        }
    }
}
