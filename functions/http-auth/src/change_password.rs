//! `POST /auth/password {currentPassword, newPassword}` (bearer) -> 200 `{user,
//! tokens}`: a signed-in user changes their password.
//!
//! The current password is re-checked ([`chat_core::auth::reauth`]: the login lockout
//! does not apply, the session has 5 tries); the new one follows the registration
//! rules. Then, in this order: the new hash is stored with the token version bumped
//! and the lockout cleared (one conditional update, [`Store::change_password`]), so
//! every access token, refresh family and socket handshake of the old version dies at
//! once; the calling session's family is revoked and the caller gets a new session
//! with fresh tokens; the user's open sockets are closed and their push devices
//! unregistered ([`crate::end_everywhere`]). A leaked password stops working
//! everywhere it was used.

use crate::{end_everywhere, new_password, AuthState, Session};
use chat_core::auth::{self, password, refresh, Authenticated};
use chat_core::error::ApiError;
use chat_core::http::{self as edge, SMALL_BODY};
use chat_core::input::{Password, UserName};
use chat_core::model::now_millis;
use chat_core::store::{Store, StoreError};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// `POST /auth/password`.
pub async fn change_password(
    s: Arc<AuthState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let body: ChangePasswordBody = edge::parse_json(&req, SMALL_BODY)?;
    let current = Password::for_login(&body.current_password)
        .map_err(|e| chat_core::input::InvalidInput::new("currentPassword", e.reason))?;
    let name = UserName::parse(&me.profile.user_name).map_err(ApiError::internal)?;
    let new = new_password(&body.new_password, "newPassword", &name)?;
    let account = auth::reauth::check_password(&s.store, &me, current).await?;
    let hash = password::hash(new).await.map_err(ApiError::internal)?;
    let version = match s.store.change_password(&me.user_id, &hash).await {
        Ok(v) => v,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::Unauthorized(auth::bearer::REVOKED.into()))
        }
        Err(e) => return Err(e.into()),
    };
    revoke_sessions(&s.store, &me).await?;
    let tokens = refresh::start_session(
        &s.store,
        &s.tokens,
        &me.user_id,
        version,
        &edge::user_agent(&req),
        now_millis(),
    )
    .await?;
    end_everywhere(&s, &me.user_id).await?;
    tracing::info!(user_id = %me.user_id, token_version = version, "password changed");
    chat_core::metrics::count("PasswordChanges", 1);
    Ok(edge::ok(&Session {
        user: &account.profile,
        tokens: &tokens,
    }))
}

/// Mark every live session of the user revoked (the version bump already refuses
/// their refresh tokens; this keeps the session list true).
async fn revoke_sessions(store: &Store, me: &Authenticated) -> Result<(), ApiError> {
    let now = now_millis();
    for session in store.list_sessions(&me.user_id).await? {
        if !session.revoked && session.expires_at > now {
            store.revoke_session(&session.session_id).await?;
        }
    }
    Ok(())
}
