//! `http-auth`: accounts and sessions over REST.
//!
//! - `POST /auth/register` -> 201 `{user, tokens}`; `409 user_name_taken` when the name is
//!   held in any letter case.
//! - `POST /auth/login` -> 200 `{user, tokens}`; every refusal is the same `401
//!   invalid_credentials`, with the same Argon2 work (a dummy hash for unknown users) and
//!   a minimum response time, so unknown user, wrong password and locked account cannot
//!   be told apart. [`LockoutRule`]: 5 failures in a row lock the account for 15
//!   minutes.
//! - `POST /auth/refresh` -> 200 token pair (rotation; reuse revokes the family).
//! - `POST /auth/logout` -> 204 (revokes one refresh-token family and closes the
//!   WebSocket connections opened with its tokens).
//! - `POST /auth/logout-all` (bearer) -> 204: bumps the token version (every refresh
//!   and access token of the user dies) and closes the user's WebSocket connections
//!   through the management API.
//!
//! - `POST /auth/password` (bearer) -> 200 `{user, tokens}` ([`change_password`]).
//!
//! See `docs/security.md` for the design and `docs/openapi.yaml` for the contract.

use chat_core::auth::{
    self, password, refresh, Authenticated, LockoutRule, TokenConfig, TokenPair,
};
use chat_core::config::{Env, Tables};
use chat_core::delivery::Poster;
use chat_core::error::ApiError;
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::http::{self as edge, Router, SignIn, SMALL_BODY};
use chat_core::ids::UserId;
use chat_core::input::{DisplayName, InvalidInput, Password, UserName};
use chat_core::model::{now_millis, Millis, Profile, UserAccount};
use chat_core::store::{Conflict, LoginReservation, Store, StoreError};
use lambda_http::{Body, Request, Response};
use lambda_runtime::Error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub mod change_password;

/// What the handlers share, built once at init.
pub struct AuthState {
    pub store: Store,
    pub tokens: TokenConfig,
    /// The `@connections` API, to close the connections of a user logging out everywhere.
    pub connections: Poster,
    pub lockout: LockoutRule,
    /// A refused login answers no sooner than this after it arrived.
    pub failure_floor: Duration,
}

impl SignIn for AuthState {
    fn token_config(&self) -> &TokenConfig {
        &self.tokens
    }
    fn account_store(&self) -> &Store {
        &self.store
    }
}

/// Build the function from its environment (at init). Besides the tables and the
/// token settings: `LOGIN_LOCK_THRESHOLD` (5), `LOGIN_LOCK_SECONDS` (900),
/// `LOGIN_FAILURE_MIN_MS` (300).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let sdk = chat_core::aws::sdk_config(&env).await;
        let store = Store::new(
            chat_core::aws::dynamodb(&sdk, &env),
            Tables::from_env(&env)?,
        );
        let state = AuthState {
            connections: Poster::new(chat_core::aws::management(&sdk, &env)?, store.clone()),
            store,
            tokens: TokenConfig::from_env(&env)?,
            lockout: LockoutRule::from_env(&env)?,
            failure_floor: Duration::from_millis(env.parse_or("LOGIN_FAILURE_MIN_MS", 300)?),
        };
        Ok(router(state).into_function())
    })
}

/// The routes of this function.
pub fn router(state: AuthState) -> Router<AuthState> {
    Router::new(state)
        .route("POST /auth/register", register)
        .route("POST /auth/login", login)
        .route("POST /auth/refresh", refresh_tokens)
        .route("POST /auth/logout", logout)
        .signed_in("POST /auth/logout-all", logout_all)
        .signed_in("POST /auth/password", change_password::change_password)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterBody {
    user_name: String,
    password: String,
    display_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginBody {
    user_name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Register and login answer with the user and a token pair.
#[derive(Serialize)]
pub struct Session<'a> {
    pub user: &'a Profile,
    pub tokens: &'a TokenPair,
}

fn invalid_credentials(s: &AuthState) -> ApiError {
    s.lockout.refusal("wrong user name or password")
}

/// Count one security event (CloudWatch EMF; alarms can watch these).
fn metric(name: &str) {
    chat_core::metrics::count(name, 1);
}

/// `POST /auth/register`.
pub async fn register(s: Arc<AuthState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RegisterBody = edge::parse_json(&req, SMALL_BODY)?;
    let name = UserName::parse(&body.user_name)?;
    let password = new_password(&body.password, "password", &name)?;
    let display_name = DisplayName::parse(&body.display_name)?;
    let hash = password::hash(password).await.map_err(ApiError::internal)?;
    let now = now_millis();
    let user_id = UserId::generate();
    let profile = match s
        .store
        .create_user(&user_id, &name, &display_name, &hash, now)
        .await
    {
        Ok(p) => p,
        Err(StoreError::Conflict(Conflict::UserNameTaken)) => {
            return Err(ApiError::conflict(
                "user_name_taken",
                "that user name is already taken (user names are unique regardless of case)",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let tokens = refresh::start_session(
        &s.store,
        &s.tokens,
        &user_id,
        0,
        &edge::user_agent(&req),
        now,
    )
    .await?;
    tracing::info!(user_id = %user_id, "registered");
    Ok(edge::created(&Session {
        user: &profile,
        tokens: &tokens,
    }))
}

/// A new password (registration, change): the length and common-password rules of
/// [`Password::parse`], and it must not contain the user name. `field` names it in
/// the error.
pub fn new_password(raw: &str, field: &'static str, name: &UserName) -> Result<Password, ApiError> {
    let password = Password::parse(raw).map_err(|e| InvalidInput::new(field, e.reason))?;
    if raw.to_lowercase().contains(&name.canonical()) {
        return Err(InvalidInput::new(field, "must not contain the user name").into());
    }
    Ok(password)
}

/// `POST /auth/login`.
pub async fn login(s: Arc<AuthState>, req: Request) -> Result<Response<Body>, ApiError> {
    let started = tokio::time::Instant::now();
    let body: LoginBody = edge::parse_json(&req, SMALL_BODY)?;
    let password = Password::for_login(&body.password)?;
    let now = now_millis();
    match check_credentials(&s, &body.user_name, password, now).await? {
        Some(account) => {
            // The reserved attempt (and any earlier failures) are forgiven.
            s.store.reset_failed_logins(&account.user_id).await?;
            let tokens = refresh::start_session(
                &s.store,
                &s.tokens,
                &account.user_id,
                account.token_version,
                &edge::user_agent(&req),
                now,
            )
            .await?;
            Ok(edge::ok(&Session {
                user: &account.profile,
                tokens: &tokens,
            }))
        }
        None => {
            metric("LoginFailures");
            tokio::time::sleep_until(started + s.failure_floor).await;
            Err(invalid_credentials(&s))
        }
    }
}

/// The account if `password` is right for `user_name` and the account is not locked;
/// `None` for any refusal. Every path runs one Argon2 verification.
async fn check_credentials(
    s: &AuthState,
    user_name: &str,
    password: Password,
    now: Millis,
) -> Result<Option<UserAccount>, ApiError> {
    let user_id = match UserName::parse(user_name) {
        Ok(name) => s.store.find_user_by_name(name.as_str()).await?,
        Err(_) => None,
    };
    let account = match user_id {
        Some(id) => s.store.get_account(&id).await?.filter(|a| !a.deleted),
        None => None,
    };
    // Reserve the attempt before the Argon2 check: parallel guesses share the
    // lockout's budget instead of all reading "not locked" first.
    let reserved = match &account {
        Some(a) => {
            s.store
                .reserve_login(&a.user_id, now, s.lockout.threshold)
                .await?
        }
        None => LoginReservation::Refused,
    };
    // A refused attempt is checked against the dummy hash: same work, always refused.
    let stored = match (&account, reserved) {
        (Some(a), LoginReservation::Reserved(n)) => {
            tracing::info!(user_id = %a.user_id, attempt = n, "login password verification");
            Some(a.password_hash.clone())
        }
        _ => None,
    };
    let matches = password::verify(password, stored)
        .await
        .map_err(ApiError::internal)?;
    match (account, reserved) {
        (Some(a), LoginReservation::Reserved(_)) if matches => Ok(Some(a)),
        (Some(a), LoginReservation::Reserved(n)) if n >= s.lockout.threshold => {
            let until = now + s.lockout.lock_ms;
            s.store.lock_after_failures(&a.user_id, until).await?;
            tracing::warn!(user_id = %a.user_id, locked_until = until, "account locked after failed logins");
            metric("AccountsLocked");
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// `POST /auth/refresh`.
pub async fn refresh_tokens(s: Arc<AuthState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshBody = edge::parse_json(&req, SMALL_BODY)?;
    match refresh::refresh(&s.store, &s.tokens, &body.refresh_token, now_millis()).await {
        Ok(tokens) => Ok(edge::ok(&tokens)),
        Err(e) => {
            if e.code() == "refresh_token_reused" {
                metric("RefreshTokenReuse");
            }
            Err(e)
        }
    }
}

/// `POST /auth/logout`.
pub async fn logout(s: Arc<AuthState>, req: Request) -> Result<Response<Body>, ApiError> {
    let body: RefreshBody = edge::parse_json(&req, SMALL_BODY)?;
    if let Some(session) = refresh::logout(&s.store, &body.refresh_token).await? {
        // The sockets opened with this session's tokens end with it.
        let closed = s
            .connections
            .close_session_connections(&session.user_id, &session.session_id)
            .await;
        // So do the push devices it registered.
        let devices = s
            .store
            .remove_session_devices(&session.user_id, &session.session_id)
            .await?;
        tracing::info!(user_id = %session.user_id, closed = closed.closed, gone = closed.gone, failed = closed.failed, devices, "logged out one session");
    }
    Ok(edge::no_content())
}

/// `POST /auth/logout-all`.
pub async fn logout_all(
    s: Arc<AuthState>,
    me: Authenticated,
    _: Request,
) -> Result<Response<Body>, ApiError> {
    let version = match s.store.bump_token_version(&me.user_id).await {
        Ok(v) => v,
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::Unauthorized(auth::bearer::REVOKED.into()))
        }
        Err(e) => return Err(e.into()),
    };
    end_everywhere(&s, &me.user_id).await?;
    tracing::info!(user_id = %me.user_id, token_version = version, "logged out everywhere");
    Ok(edge::no_content())
}

/// After a token-version bump (logout-all, password change): close every WebSocket
/// connection of the user and unregister their push devices. Best effort: the version is already bumped, so a
/// connection missed here is refused at its next frame once its token expires, and a
/// handshake is refused at once.
pub async fn end_everywhere(s: &AuthState, user: &UserId) -> Result<(), ApiError> {
    let closed = s.connections.close_connections(user).await;
    // Push devices end with the sessions: a stolen phone stops showing previews.
    let devices = s.store.remove_all_devices(user).await?;
    tracing::info!(user_id = %user, closed = closed.closed, gone = closed.gone, failed = closed.failed, devices, "closed the user's connections and unregistered their devices");
    Ok(())
}
