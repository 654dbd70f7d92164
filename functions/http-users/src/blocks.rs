//! Blocking users (`docs/security.md`, Blocking).
//!
//! - `POST /me/blocks/{userId}` -> 204: the caller blocks the user (idempotent). From
//!   then on that user cannot open a direct chat with the caller, send into their
//!   direct chat, add the caller to a group, or see the caller's presence and status.
//!   `400` for the caller's own id, `404 not_found` for an unknown user, `409
//!   too_many_blocks` past `MAX_BLOCKS`.
//! - `DELETE /me/blocks/{userId}` -> 204: the block is lifted (idempotent).
//! - `GET /me/blocks` -> 200 `{users: [profile]}`: whom the caller blocks (deleted
//!   accounts left out).

use crate::UsersState;
use chat_core::auth::Authenticated;
use chat_core::error::ApiError;
use chat_core::http as edge;
use chat_core::ids::UserId;
use chat_core::input::InvalidInput;
use chat_core::model::{now_millis, Profile};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::sync::Arc;

/// The path's user, who must exist and not be the caller.
async fn target(s: &UsersState, me: &Authenticated, req: &Request) -> Result<UserId, ApiError> {
    let id = UserId::parse(&edge::path_param(req, "userId")?)?;
    if id == me.user_id {
        return Err(InvalidInput::new("userId", "you cannot block yourself").into());
    }
    if !s
        .store
        .get_profiles(std::slice::from_ref(&id))
        .await?
        .contains_key(&id)
    {
        return Err(ApiError::not_found("user"));
    }
    Ok(id)
}

/// `POST /me/blocks/{userId}`.
pub async fn block(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let id = target(&s, &me, &req).await?;
    s.store.block_user(&me.user_id, &id, now_millis()).await?;
    Ok(edge::no_content())
}

/// `DELETE /me/blocks/{userId}`.
pub async fn unblock(
    s: Arc<UsersState>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let id = UserId::parse(&edge::path_param(&req, "userId")?)?;
    s.store.unblock_user(&me.user_id, &id).await?;
    Ok(edge::no_content())
}

/// The caller's block list.
#[derive(Serialize)]
pub struct BlockList {
    pub users: Vec<Profile>,
}

/// `GET /me/blocks`.
pub async fn list(
    s: Arc<UsersState>,
    me: Authenticated,
    _: Request,
) -> Result<Response<Body>, ApiError> {
    let ids = s.store.blocked_by(&me.user_id).await?;
    let mut profiles = s.store.get_profiles(&ids).await?;
    let users = ids.iter().filter_map(|id| profiles.remove(id)).collect();
    Ok(edge::ok(&BlockList { users }))
}
