//! The credential behind a connection, checked on every frame: `$connect` stored the
//! access token's session, version and expiry on the connection item, and the rate
//! counter's update returns that item, so the check costs no DynamoDB call.
//!
//! - [`refusal`]: a connection marked revoked (log-out-everywhere, password change,
//!   deletion, logout of its session) or whose token expired gets a typed `error`
//!   event (`unauthorized` / `token_expired`) and is closed. An `authenticate` frame
//!   may still extend an expired (not a revoked) connection.
//! - [`authenticate`]: the `authenticate` action: a fresh access token of the same
//!   user, with the account's current token version, moves the connection's expiry
//!   (and its presence entry's) to the new token's; answered with `authenticated`.

use chat_core::auth::bearer::{INVALID, REVOKED};
use chat_core::error::ApiError;
use chat_core::ids::{ConnectionId, UserId};
use chat_core::messaging::ChatServices;
use chat_core::model::{now_millis, Connection, ConnectionCredential, Millis};
use chat_core::protocol::{Authenticated, ServerEvent};
use chat_core::store::StoreError;

/// Why a frame on `conn` must end it, if it must.
pub fn refusal(conn: &Connection, now: Millis, is_authenticate: bool) -> Option<ApiError> {
    let cred = conn.credential.as_ref()?;
    if cred.revoked {
        return Some(ApiError::Unauthorized(REVOKED.into()));
    }
    if cred.token_expires_at <= now && !is_authenticate {
        return Some(ApiError::auth_failed(
            "token_expired",
            "the access token of this connection has expired; reconnect (send 'authenticate' with a fresh token before it expires)",
        ));
    }
    None
}

/// The `authenticate` action on `conn` of `user`.
pub async fn authenticate(
    services: &ChatServices,
    user: &UserId,
    conn: &ConnectionId,
    token: &str,
) -> Result<ServerEvent, ApiError> {
    let invalid = || ApiError::Unauthorized(INVALID.into());
    let claims = services.tokens().verify(token).map_err(|_| invalid())?;
    if claims.user_id().map_err(|_| invalid())? != *user {
        return Err(ApiError::Unauthorized(
            "the token belongs to another user than this connection".into(),
        ));
    }
    match services.store().get_account(user).await? {
        Some(a) if !a.deleted && a.token_version == claims.ver => {}
        _ => return Err(ApiError::Unauthorized(REVOKED.into())),
    }
    let cred = ConnectionCredential {
        session_id: claims.session_id().ok(),
        token_version: claims.ver,
        token_expires_at: claims.exp * 1000,
        revoked: false,
    };
    match services
        .store()
        .reauthenticate_connection(conn, user, &cred, now_millis())
        .await
    {
        Ok(()) => Ok(ServerEvent::Authenticated(Authenticated {
            expires_at: cred.token_expires_at,
        })),
        Err(StoreError::NotFound(_)) => Err(ApiError::Unauthorized(REVOKED.into())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::ids::ConnectionId;

    fn conn(cred: Option<ConnectionCredential>) -> Connection {
        Connection {
            connection_id: ConnectionId::parse("abc=").unwrap(),
            user_id: UserId::generate(),
            device_label: "t".into(),
            connected_at: 0,
            expires_at: 10_000,
            source_ip: String::new(),
            credential: cred,
        }
    }

    #[test]
    fn revoked_and_expired_credentials_end_the_socket() {
        let live = ConnectionCredential {
            token_expires_at: 5_000,
            ..Default::default()
        };
        assert!(refusal(&conn(None), 1_000, false).is_none());
        assert!(refusal(&conn(Some(live.clone())), 1_000, false).is_none());
        let e = refusal(&conn(Some(live.clone())), 5_000, false).unwrap();
        assert_eq!(e.code(), "token_expired");
        // An expired connection may still authenticate; a revoked one may not.
        assert!(refusal(&conn(Some(live.clone())), 6_000, true).is_none());
        let revoked = ConnectionCredential {
            revoked: true,
            ..live
        };
        let e = refusal(&conn(Some(revoked)), 1_000, true).unwrap();
        assert_eq!(e.code(), "unauthorized");
    }
}
