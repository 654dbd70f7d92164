//! Access tokens: JWTs signed with HMAC-SHA256 (`jsonwebtoken`), short-lived (15
//! minutes by default), carrying the user id (`sub`), the session (`sid`) and the
//! user's token version (`ver`). Verification pins the algorithm to HS256 (a token
//! saying `none` or any other algorithm is rejected before its signature is looked
//! at), and checks the signature, `exp`, `nbf`, `iss` and `aud`. Whether `ver` is still
//! current is the caller's check against the user record (see `docs/security.md`).
//!
//! The signing key comes from `JWT_SIGNING_KEY` (at least 32 bytes; in AWS a Secrets
//! Manager secret resolved into the function's environment at deploy). There is no
//! default: a function without a key fails at init.

use crate::config::{ConfigError, Env};
use crate::ids::{SessionId, UserId};
use crate::model::Millis;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Token settings, read once at init.
#[derive(Clone)]
pub struct TokenConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token, in seconds.
    pub access_ttl_secs: i64,
    /// Lifetime of a refresh token (a session), in seconds.
    pub refresh_ttl_secs: i64,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .field("refresh_ttl_secs", &self.refresh_ttl_secs)
            .finish_non_exhaustive()
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub ver: u64,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl AccessClaims {
    pub fn user_id(&self) -> Result<UserId, TokenError> {
        UserId::parse(&self.sub).map_err(|_| TokenError::Invalid)
    }
    pub fn session_id(&self) -> Result<SessionId, TokenError> {
        SessionId::parse(&self.sid).map_err(|_| TokenError::Invalid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

impl TokenConfig {
    pub const MIN_KEY_BYTES: usize = 32;

    pub fn new(
        key: &[u8],
        issuer: &str,
        audience: &str,
        access_ttl_secs: i64,
        refresh_ttl_secs: i64,
    ) -> Result<Self, ConfigError> {
        if key.len() < Self::MIN_KEY_BYTES {
            return Err(ConfigError(format!(
                "JWT_SIGNING_KEY must be at least {} bytes",
                Self::MIN_KEY_BYTES
            )));
        }
        Ok(TokenConfig {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl_secs,
            refresh_ttl_secs,
        })
    }

    /// From `JWT_SIGNING_KEY`, `JWT_ISSUER` (default `chat`), `JWT_AUDIENCE` (default
    /// `chat-clients`), `ACCESS_TOKEN_TTL_SECONDS` (900), `REFRESH_TOKEN_TTL_SECONDS`
    /// (2,592,000 = 30 days).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = env.require("JWT_SIGNING_KEY")?;
        Self::new(
            key.as_bytes(),
            env.get("JWT_ISSUER").unwrap_or("chat"),
            env.get("JWT_AUDIENCE").unwrap_or("chat-clients"),
            env.parse_or("ACCESS_TOKEN_TTL_SECONDS", 900)?,
            env.parse_or("REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600)?,
        )
    }

    /// A signed access token for `user` in `session`, valid from `now`.
    pub fn issue(
        &self,
        user: &UserId,
        session: &SessionId,
        token_version: u64,
        now: Millis,
    ) -> String {
        let iat = now / 1000;
        let claims = AccessClaims {
            sub: user.to_string(),
            sid: session.to_string(),
            ver: token_version,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            nbf: iat,
            exp: iat + self.access_ttl_secs,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// Verify signature, algorithm, time and audience; return the claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.algorithms = vec![Algorithm::HS256];
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 5;
        match decode::<AccessClaims>(token, &self.decoding, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err(TokenError::Expired),
                _ => Err(TokenError::Invalid),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn cfg() -> TokenConfig {
        TokenConfig::new(
            b"0123456789abcdef0123456789abcdef",
            "chat",
            "chat-clients",
            900,
            3600,
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let c = cfg();
        let u = UserId::generate();
        let s = SessionId::generate();
        let now = crate::model::now_millis();
        let t = c.issue(&u, &s, 3, now);
        let claims = c.verify(&t).unwrap();
        assert_eq!(claims.user_id().unwrap(), u);
        assert_eq!(claims.ver, 3);
    }

    #[test]
    fn rejects_forgeries() {
        let c = cfg();
        let u = UserId::generate();
        let s = SessionId::generate();
        let now = crate::model::now_millis();
        let t = c.issue(&u, &s, 0, now);
        // Wrong key.
        let other = TokenConfig::new(
            b"ffffffffffffffffffffffffffffffff",
            "chat",
            "chat-clients",
            900,
            3600,
        )
        .unwrap();
        assert_eq!(other.verify(&t), Err(TokenError::Invalid));
        // alg: none with the same claims and no signature.
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(c.verify(&none), Err(TokenError::Invalid));
        // Altered payload.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["ver"] = 99.into();
        let altered = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(c.verify(&altered), Err(TokenError::Invalid));
        // Expired.
        let old = c.issue(&u, &s, 0, now - 3_600_000);
        assert_eq!(c.verify(&old), Err(TokenError::Expired));
        // Wrong audience.
        let aud = TokenConfig::new(
            b"0123456789abcdef0123456789abcdef",
            "chat",
            "someone-else",
            900,
            3600,
        )
        .unwrap();
        assert_eq!(
            c.verify(&aud.issue(&u, &s, 0, now)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenConfig::new(b"short", "chat", "chat-clients", 900, 3600).is_err());
    }
}
