//! Refresh tokens and login sessions.
//!
//! A refresh token is opaque to clients: `<sessionId>.<secret>`, where the secret is 32
//! random bytes (OS RNG) in base64url without padding. The session id names the token
//! family (one login on one device); only the SHA-256 of the current secret is stored
//! (`Session::current_hash`), so a leak of the Sessions table does not leak usable
//! tokens.
//!
//! - [`start_session`] (register, login) creates the family and the first token pair.
//! - [`refresh`] rotates: the presented secret must be the family's current one; it is
//!   replaced by a new one in one conditional write ([`Store::rotate_session`]). An old
//!   secret presented again is reuse: the store revokes the whole family and the caller
//!   gets `401 refresh_token_reused` (the thief and the owner must both log in again).
//!   A family created under an older token version (before "log out everywhere") is
//!   dead: `401 session_revoked`.
//! - [`logout`] revokes the family of the presented token.
//!
//! The family's expiry is absolute (set at login, not extended by rotation).

use crate::auth::TokenConfig;
use crate::error::ApiError;
use crate::ids::{SessionId, UserId};
use crate::model::{as_rfc3339, Millis, Session};
use crate::store::{Rotation, Store};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Bytes of randomness in a refresh secret.
pub const SECRET_BYTES: usize = 32;
/// Length of the secret in base64url without padding.
const SECRET_CHARS: usize = 43;
/// Longest string worth parsing as a refresh token.
const MAX_TOKEN_CHARS: usize = 128;

/// A refresh token: session id plus secret. `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    session_id: SessionId,
    secret: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefreshToken({}.***)", self.session_id)
    }
}

fn invalid() -> ApiError {
    ApiError::auth_failed("invalid_refresh_token", "the refresh token is not valid")
}

impl RefreshToken {
    /// A new token (fresh secret) for `session_id`.
    pub fn generate(session_id: SessionId) -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        RefreshToken {
            session_id,
            secret: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// Parse what a client sent. Anything but `<sessionId>.<43 base64url chars that
    /// decode to 32 bytes>` is `401 invalid_refresh_token`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.len() > MAX_TOKEN_CHARS {
            return Err(invalid());
        }
        let (sid, secret) = s.split_once('.').ok_or_else(invalid)?;
        let session_id = SessionId::parse(sid).map_err(|_| invalid())?;
        if secret.len() != SECRET_CHARS {
            return Err(invalid());
        }
        match URL_SAFE_NO_PAD.decode(secret) {
            Ok(b) if b.len() == SECRET_BYTES => {}
            _ => return Err(invalid()),
        }
        Ok(RefreshToken {
            session_id,
            secret: secret.to_owned(),
        })
    }

    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// What the store keeps: SHA-256 of the secret, base64url.
    pub fn secret_hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// The token as the client receives it. Never log it.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.session_id, self.secret)
    }
}

/// What register, login and refresh return.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    #[serde(with = "as_rfc3339")]
    pub access_token_expires_at: Millis,
    pub refresh_token: String,
    #[serde(with = "as_rfc3339")]
    pub refresh_token_expires_at: Millis,
    pub token_type: &'static str,
}

fn pair(
    tokens: &TokenConfig,
    user: &UserId,
    refresh: &RefreshToken,
    token_version: u64,
    refresh_expires_at: Millis,
    now: Millis,
) -> TokenPair {
    TokenPair {
        access_token: tokens.issue(user, refresh.session_id(), token_version, now),
        access_token_expires_at: (now / 1000 + tokens.access_ttl_secs) * 1000,
        refresh_token: refresh.expose(),
        refresh_token_expires_at: refresh_expires_at,
        token_type: "Bearer",
    }
}

/// Start a session (a new token family) for a user who just proved who they are.
pub async fn start_session(
    store: &Store,
    tokens: &TokenConfig,
    user: &UserId,
    token_version: u64,
    user_agent: &str,
    now: Millis,
) -> Result<TokenPair, ApiError> {
    let refresh = RefreshToken::generate(SessionId::generate());
    let expires_at = now + tokens.refresh_ttl_secs * 1000;
    let session = Session {
        session_id: refresh.session_id().clone(),
        user_id: user.clone(),
        current_hash: refresh.secret_hash(),
        generation: 0,
        token_version,
        created_at: now,
        last_used_at: now,
        expires_at,
        revoked: false,
        user_agent: user_agent.chars().take(256).collect(),
    };
    store.create_session(&session).await?;
    Ok(pair(tokens, user, &refresh, token_version, expires_at, now))
}

/// Exchange a refresh token for a new pair (rotation with reuse detection).
pub async fn refresh(
    store: &Store,
    tokens: &TokenConfig,
    presented: &str,
    now: Millis,
) -> Result<TokenPair, ApiError> {
    let old = RefreshToken::parse(presented)?;
    let expired = || {
        ApiError::auth_failed(
            "invalid_refresh_token",
            "the refresh token has expired or was revoked",
        )
    };
    let Some(session) = store.get_session(old.session_id()).await? else {
        return Err(invalid());
    };
    if session.revoked || session.expires_at <= now {
        return Err(expired());
    }
    let account = store.get_account(&session.user_id).await?;
    let current_version = match &account {
        Some(a) if !a.deleted => a.token_version,
        _ => {
            store.revoke_session(&session.session_id).await?;
            return Err(expired());
        }
    };
    if session.token_version != current_version {
        // Logged out everywhere since this family began.
        store.revoke_session(&session.session_id).await?;
        return Err(ApiError::auth_failed(
            "session_revoked",
            "this session was ended by a log-out on all devices; log in again",
        ));
    }
    let new = RefreshToken::generate(session.session_id.clone());
    match store
        .rotate_session(
            &session.session_id,
            &old.secret_hash(),
            &new.secret_hash(),
            now,
        )
        .await?
    {
        Rotation::Rotated => Ok(pair(
            tokens,
            &session.user_id,
            &new,
            current_version,
            session.expires_at,
            now,
        )),
        Rotation::ReuseDetected => {
            tracing::warn!(
                session_id = %session.session_id,
                user_id = %session.user_id,
                "refresh token reuse detected; session family revoked"
            );
            Err(ApiError::auth_failed(
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended for safety, log in again",
            ))
        }
        Rotation::Invalid => Err(expired()),
    }
}

/// Revoke the session of the presented refresh token, if the token is its current one.
/// Like OAuth token revocation (RFC 7009), a well-formed token that is unknown, old or
/// already revoked is not an error: the result (that token does not work) is the same.
/// Returns the session it revoked, if any.
pub async fn logout(store: &Store, presented: &str) -> Result<Option<Session>, ApiError> {
    let token = RefreshToken::parse(presented)?;
    if let Some(session) = store.get_session(token.session_id()).await? {
        if constant_time_eq(
            session.current_hash.as_bytes(),
            token.secret_hash().as_bytes(),
        ) {
            store.revoke_session(&session.session_id).await?;
            return Ok(Some(session));
        }
    }
    Ok(None)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hash() {
        let t = RefreshToken::generate(SessionId::generate());
        let s = t.expose();
        let back = RefreshToken::parse(&s).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.secret_hash(), t.secret_hash());
        assert_eq!(t.secret_hash().len(), 43);
        assert!(!format!("{t:?}").contains(&t.secret));
        // Two tokens never share a secret.
        let u = RefreshToken::generate(t.session_id().clone());
        assert_ne!(u.secret_hash(), t.secret_hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = RefreshToken::generate(SessionId::generate()).expose();
        let (sid, secret) = good.split_once('.').unwrap();
        for bad in [
            String::new(),
            "x".into(),
            sid.to_owned(),
            format!("{sid}."),
            format!(".{secret}"),
            format!("{sid}.{}", &secret[1..]),
            format!("{sid}.{secret}A"),
            format!("{sid}.{}*", &secret[1..]),
            format!("usr_01ARZ3NDEKTSV4RRFFQ69G5FAV.{secret}"),
            format!("{sid}.{secret}.{secret}"),
            "a".repeat(10_000),
        ] {
            let e = RefreshToken::parse(&bad).unwrap_err();
            assert_eq!(e.status(), 401, "{bad}");
            assert_eq!(e.code(), "invalid_refresh_token", "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
