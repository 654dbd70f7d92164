//! Re-authentication: a signed-in session proving its password again before a
//! sensitive change (`POST /auth/password`, `DELETE /me`). The login lockout plays no
//! part (strangers can lock an account by failing logins with its public user name;
//! that must not block its owner's sessions). Instead each session gets
//! [`REAUTH_ATTEMPTS`] tries, reserved before the Argon2 check
//! ([`crate::store::Store::reserve_reauth`]); the last one revokes the session, so a
//! stolen access token buys at most that many guesses.

use crate::auth::{password, Authenticated};
use crate::error::ApiError;
use crate::input::Password;
use crate::model::UserAccount;
use crate::store::Store;

/// Password tries per session; the last one revokes the session.
pub const REAUTH_ATTEMPTS: u32 = 5;

/// `401 invalid_credentials` for a wrong password of a signed-in session.
pub fn wrong_password() -> ApiError {
    ApiError::auth_failed(
        "invalid_credentials",
        format!(
            "the password is not right (a session has {REAUTH_ATTEMPTS} tries; then it is ended)"
        ),
    )
}

/// The caller's account when `password` is theirs; `401 invalid_credentials` when it is
/// not or the session has used its tries (one Argon2 run either way).
pub async fn check_password(
    store: &Store,
    me: &Authenticated,
    password: Password,
) -> Result<UserAccount, ApiError> {
    let account = store
        .get_account(&me.user_id)
        .await?
        .filter(|a| !a.deleted)
        .ok_or_else(|| ApiError::Unauthorized(crate::auth::bearer::REVOKED.into()))?;
    let reserved = store
        .reserve_reauth(&me.session_id, &me.user_id, REAUTH_ATTEMPTS)
        .await?;
    let stored = reserved.then(|| account.password_hash.clone());
    let matches = password::verify(password, stored)
        .await
        .map_err(ApiError::internal)?;
    if matches {
        Ok(account)
    } else {
        crate::metrics::count("ReauthFailures", 1);
        Err(wrong_password())
    }
}
