//! The one check every authenticated REST route runs: read `Authorization: Bearer
//! <jwt>`, verify the JWT ([`TokenConfig::verify`]: HS256 only, signature, `exp`,
//! `nbf`, `iss`, `aud`), then compare its `ver` with the user's current token version
//! (one strongly consistent GetItem), so that "log out everywhere" kills every access
//! token at once. Deleted users are refused.
//!
//! Every refusal is `401 unauthorized` with a message that says which case it is
//! (missing, malformed, invalid, expired, revoked); the client's answer to any of
//! them is to refresh or log in again.

use crate::auth::{TokenConfig, TokenError};
use crate::error::ApiError;
use crate::ids::{SessionId, UserId};
use crate::model::Profile;
use crate::store::Store;
use http::HeaderMap;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: UserId,
    /// The login session (refresh-token family) the access token belongs to.
    pub session_id: SessionId,
    /// The caller's profile, read during the check (saves a second read for `/me`).
    pub profile: Profile,
}

pub const MISSING: &str = "missing bearer token: send 'Authorization: Bearer <accessToken>'";
pub const MALFORMED: &str = "malformed Authorization header: expected 'Bearer <accessToken>'";
pub const INVALID: &str = "the access token is not valid";
pub const EXPIRED: &str = "the access token has expired; refresh it";
pub const REVOKED: &str = "the access token has been revoked; log in again";

/// The token from the `Authorization` header (scheme `Bearer`, any case).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized(MISSING.into()));
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized(MALFORMED.into()));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(MALFORMED.into()))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized(MALFORMED.into()))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
        || token.split('.').count() != 3
    {
        return Err(ApiError::Unauthorized(MALFORMED.into()));
    }
    Ok(token)
}

/// Authenticate a request: header, signature and claims, token version, live account.
pub async fn authenticate(
    req: &lambda_http::Request,
    tokens: &TokenConfig,
    store: &Store,
) -> Result<Authenticated, ApiError> {
    authenticate_headers(req.headers(), tokens, store).await
}

/// [`authenticate`] on bare headers.
pub async fn authenticate_headers(
    headers: &HeaderMap,
    tokens: &TokenConfig,
    store: &Store,
) -> Result<Authenticated, ApiError> {
    let token = bearer_token(headers)?;
    let claims = tokens.verify(token).map_err(|e| {
        ApiError::Unauthorized(
            match e {
                TokenError::Expired => EXPIRED,
                TokenError::Invalid => INVALID,
            }
            .into(),
        )
    })?;
    let bad = |_| ApiError::Unauthorized(INVALID.into());
    let user_id = claims.user_id().map_err(bad)?;
    let session_id = claims.session_id().map_err(bad)?;
    match store.get_account(&user_id).await? {
        Some(account) if !account.deleted && account.token_version == claims.ver => {
            Ok(Authenticated {
                user_id,
                session_id,
                profile: account.profile,
            })
        }
        _ => Err(ApiError::Unauthorized(REVOKED.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn message(r: Result<&str, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(e.code(), "unauthorized");
        e.to_string()
    }

    #[test]
    fn accepts_bearer_in_any_case() {
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])).unwrap(), "a.b.c");
        assert_eq!(bearer_token(&headers(&["bearer a.b.c"])).unwrap(), "a.b.c");
        assert_eq!(
            bearer_token(&headers(&["BEARER  a.b.c "])).unwrap(),
            "a.b.c"
        );
    }

    #[test]
    fn missing_and_malformed_are_told_apart() {
        assert_eq!(message(bearer_token(&HeaderMap::new())), MISSING);
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Token a.b.c",
            "Bearer a.b",
            "Bearer a.b.c.d",
            "Bearer a.b.c extra",
            "a.b.c",
        ] {
            assert_eq!(
                message(bearer_token(&headers(&[bad]))),
                MALFORMED,
                "{bad:?}"
            );
        }
        assert_eq!(
            message(bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"]))),
            MALFORMED
        );
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff.b.c").unwrap(),
        );
        assert_eq!(message(bearer_token(&h)), MALFORMED);
    }
}
