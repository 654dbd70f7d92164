//! `http-users`: profiles, presence and user search over REST. Every route is
//! [`Router::signed_in`]: the router checks the bearer token and hands each handler
//! the caller.
//!
//! - `GET /me` -> 200 the caller's profile.
//! - `PATCH /me` `{displayName?, statusText?, avatarUrl?}` -> 200 the new profile.
//!   `statusText: null` clears the status, `avatarUrl: null` removes the avatar;
//!   `displayName` cannot be removed.
//! - `GET /users/{userId}` -> 200 public profile plus `presence: {online, lastSeenAt}`.
//! - `GET /users?prefix=&limit=&cursor=` -> 200 `{users, nextCursor}`: users whose name
//!   starts with `prefix` (2+ characters, any case), in name order, `limit` (1-50,
//!   default 20) a page; `nextCursor` is opaque and `null` on the last page.
//! - `GET /me/export[?cursor=]` -> 200 one page of the caller's data export
//!   ([`export`]).
//! - `DELETE /me` `{password}` -> 202 `{status: "deleting", deletedAt,
//!   userNameReleasedAt}`: the account is unusable at once, the purge continues in the
//!   background ([`chat_core::lifecycle`]); a wrong password is `401
//!   invalid_credentials`. The login lockout does not apply (strangers could block a
//!   deletion with it); a session gets 5 tries ([`chat_core::auth::reauth`]).
//! - `POST/DELETE /me/blocks/{userId}`, `GET /me/blocks`: blocking ([`blocks`]). A user
//!   who blocks the caller shows no presence (offline, no last-seen) and no status text
//!   in `GET /users/{userId}`.

pub mod blocks;
pub mod export;

use chat_core::auth::{self, Authenticated, LockoutRule, TokenConfig};
use chat_core::config::{Env, Tables};
use chat_core::error::ApiError;
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::http::{self as edge, Router, SignIn, SMALL_BODY};
use chat_core::ids::UserId;
use chat_core::input::{
    page_limit, AvatarUrl, DisplayName, InvalidInput, Password, StatusText, UserNamePrefix,
};
use chat_core::lifecycle::Lifecycle;
use chat_core::model::{now_millis, Presence, Profile};
use chat_core::store::{ProfileUpdate, SenderKey, Store, StoreError};
use lambda_http::{Body, Request, Response};
use lambda_runtime::Error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Default and largest page of a user search.
pub const SEARCH_DEFAULT_LIMIT: u32 = 20;
pub const SEARCH_MAX_LIMIT: u32 = 50;

/// What the handlers share, built once at init.
pub struct UsersState {
    pub store: Store,
    pub tokens: TokenConfig,
    /// Account deletion (`DELETE /me`).
    pub lifecycle: Lifecycle,
    /// The login's lockout rule: `DELETE /me` checks the password and shares the
    /// counter.
    pub lockout: LockoutRule,
}

impl SignIn for UsersState {
    fn token_config(&self) -> &TokenConfig {
        &self.tokens
    }
    fn account_store(&self) -> &Store {
        &self.store
    }
}

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let sdk = chat_core::aws::sdk_config(&env).await;
        let state = UsersState {
            store: Store::new(
                chat_core::aws::dynamodb(&sdk, &env),
                Tables::from_env(&env)?,
            ),
            tokens: TokenConfig::from_env(&env)?,
            lifecycle: Lifecycle::from_env(&env).await?,
            lockout: LockoutRule::from_env(&env)?,
        };
        Ok(router(state).into_function())
    })
}

/// The routes of this function.
pub fn router(state: UsersState) -> Router<UsersState> {
    Router::new(state)
        .signed_in("GET /me", get_me)
        .signed_in("PATCH /me", patch_me)
        .signed_in("DELETE /me", delete_me)
        .signed_in("GET /me/export", export_me)
        .signed_in("GET /users/{userId}", get_user)
        .signed_in("GET /users", search_users)
        .signed_in("POST /me/blocks/{userId}", blocks::block)
        .signed_in("DELETE /me/blocks/{userId}", blocks::unblock)
        .signed_in("GET /me/blocks", blocks::list)
}

/// `GET /me`.
pub async fn get_me(
    _: Arc<UsersState>,
    me: Authenticated,
    _: Request,
) -> Result<Response<Body>, ApiError> {
    Ok(edge::ok(&me.profile))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchMeBody {
    #[serde(default, deserialize_with = "edge::nullable")]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "edge::nullable")]
    status_text: Option<Option<String>>,
    #[serde(default, deserialize_with = "edge::nullable")]
    avatar_url: Option<Option<String>>,
}

impl PatchMeBody {
    fn parse(self) -> Result<ProfileUpdate, ApiError> {
        let display_name = match self.display_name {
            None => None,
            Some(None) => {
                return Err(InvalidInput::new("displayName", "cannot be removed").into());
            }
            Some(Some(d)) => Some(DisplayName::parse(&d)?),
        };
        let status_text = match self.status_text {
            None => None,
            Some(s) => Some(StatusText::parse(s.as_deref().unwrap_or(""))?),
        };
        let avatar_url = match self.avatar_url {
            None => None,
            Some(None) => Some(None),
            Some(Some(a)) => Some(Some(AvatarUrl::parse(&a)?)),
        };
        Ok(ProfileUpdate {
            display_name,
            status_text,
            avatar_url,
        })
    }
}

/// `PATCH /me`.
pub async fn patch_me(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let change = edge::parse_json::<PatchMeBody>(&req, SMALL_BODY)?.parse()?;
    match s.store.update_profile(&me.user_id, &change).await {
        Ok(profile) => Ok(edge::ok(&profile)),
        Err(StoreError::NotFound(_)) => Err(ApiError::Unauthorized(auth::bearer::REVOKED.into())),
        Err(e) => Err(e.into()),
    }
}

/// A public profile with presence.
#[derive(Serialize)]
pub struct UserView<'a> {
    #[serde(flatten)]
    pub profile: &'a Profile,
    pub presence: Presence,
}

/// `GET /users/{userId}`.
pub async fn get_user(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let id = UserId::parse(&edge::path_param(&req, "userId")?)?;
    let one = std::slice::from_ref(&id);
    let (mut profiles, mut presence, blocking) = tokio::try_join!(
        s.store.get_profiles(one),
        s.store.presence_of(one, now_millis()),
        s.store.who_blocks(one, &me.user_id),
    )?;
    let mut profile = profiles
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("user"))?;
    let presence = if blocking.is_empty() {
        presence.remove(&id).unwrap_or_default().presence()
    } else {
        // Blocked by this user: no presence and no status for the caller.
        profile.status_text.clear();
        Presence {
            online: false,
            last_seen_at: None,
        }
    };
    Ok(edge::ok(&UserView {
        profile: &profile,
        presence,
    }))
}

/// A page of search results.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub users: Vec<Profile>,
    pub next_cursor: Option<String>,
}

/// `GET /users?prefix=&limit=&cursor=`.
pub async fn search_users(
    s: Arc<UsersState>,
    _: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let prefix = UserNamePrefix::parse(&edge::query_param(&req, "prefix").unwrap_or_default())?;
    let limit = page_limit(
        edge::query_param(&req, "limit").as_deref(),
        SEARCH_DEFAULT_LIMIT,
        SEARCH_MAX_LIMIT,
    )?;
    let after = match edge::query_param(&req, "cursor") {
        None => None,
        Some(raw) => {
            let after: String = edge::decode_cursor(&raw, "cursor")?;
            if !after.starts_with(prefix.as_str()) {
                return Err(
                    InvalidInput::new("cursor", "belongs to a search with another prefix").into(),
                );
            }
            Some(after)
        }
    };
    let (users, next) = s
        .store
        .search_users(&prefix, limit, after.as_deref())
        .await?;
    Ok(edge::ok(&SearchPage {
        users,
        next_cursor: next.map(|n| edge::encode_cursor(&n)),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeleteMeBody {
    password: String,
}

/// `DELETE /me`.
pub async fn delete_me(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let body: DeleteMeBody = edge::parse_json(&req, SMALL_BODY)?;
    let password = Password::for_login(&body.password)?;
    // The lockout is not consulted: strangers must not be able to block a deletion.
    let account = auth::reauth::check_password(&s.store, &me, password).await?;
    let started = s.lifecycle.begin_deletion(&account).await?;
    Ok(edge::json(202, &started))
}

/// `GET /me/export[?cursor=]`.
pub async fn export_me(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let after: Option<SenderKey> = match edge::query_param(&req, "cursor") {
        None => None,
        Some(raw) => Some(edge::decode_cursor(&raw, "cursor")?),
    };
    let head = match after {
        None => Some(
            export::head(
                &s.store,
                s.lifecycle.services().attachments(),
                &me.user_id,
                me.profile.clone(),
            )
            .await?,
        ),
        Some(_) => None,
    };
    let (messages, next_cursor) = export::messages(
        &s.store,
        &me.user_id,
        after,
        export::PAGE_BYTES,
        export::PAGE_MESSAGES,
    )
    .await?;
    Ok(edge::ok(&export::ExportPage {
        head,
        messages,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            "https://[a-z@.]{0,10}/[ -~]{0,20}".prop_map(serde_json::Value::from),
            "\\s?[a-zA-Z ]{0,70}".prop_map(serde_json::Value::from),
        ]
    }

    proptest! {
        /// Any `PATCH /me` body: a profile change whose every value passed its rule,
        /// or a 400 (`invalid_json`, or `validation_failed` naming the field).
        #[test]
        fn patch_me_bodies(
            fields in prop::collection::btree_map(
                prop_oneof!["displayName|statusText|avatarUrl|userName", "[a-z]{1,8}"],
                value(),
                0..4,
            ),
        ) {
            let body = serde_json::Value::Object(fields.clone().into_iter().collect()).to_string();
            let req = lambda_http::http::Request::builder()
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            match edge::parse_json::<PatchMeBody>(&req, SMALL_BODY).and_then(PatchMeBody::parse) {
                Ok(change) => {
                    if let Some(d) = &change.display_name {
                        prop_assert_eq!(DisplayName::parse(d.as_str()), Ok(d.clone()));
                    }
                    if let Some(Some(a)) = &change.avatar_url {
                        prop_assert!(a.as_str().starts_with("https://"));
                    }
                    prop_assert!(fields.keys().all(|k| ["displayName", "statusText", "avatarUrl"].contains(&k.as_str())));
                }
                Err(e) => {
                    prop_assert_eq!(e.status(), 400);
                    if e.code() == "validation_failed" {
                        let field = e.body().error.field.unwrap();
                        prop_assert!(["displayName", "statusText", "avatarUrl"].contains(&field));
                    } else {
                        prop_assert_eq!(e.code(), "invalid_json");
                    }
                }
            }
        }
    }
}
