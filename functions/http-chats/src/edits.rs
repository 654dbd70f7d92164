//! `PATCH` and `DELETE /chats/{chatId}/messages/{position}`: edit the caller's message,
//! delete a message for everyone. Thin edges over the services the WebSocket's
//! `editMessage` / `deleteMessage` use (`chat_core::edits`): same checks, same store
//! transaction, same `messageEdited` / `messageDeleted` event to the members'
//! connections.

use crate::handlers::{chat_id, invalid, path};
use chat_core::auth::Authenticated;
use chat_core::error::ApiError;
use chat_core::http::{self, MESSAGE_BODY};
use chat_core::input::MessageText;
use chat_core::messaging::ChatServices;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The path's `position`: a whole number of 1 or more.
fn position(req: &Request) -> Result<u64, ApiError> {
    path(req, "position")
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|p| *p >= 1)
        .ok_or_else(|| invalid("position", "must be a whole number of 1 or more"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    pub text: String,
}

/// `PATCH /chats/{chatId}/messages/{position}` `{"text"}`: 200 with the message as it
/// is now (`editedAt`, `editCount`).
pub async fn edit_message(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let position = position(&req)?;
    let body: EditBody = http::parse_json(&req, MESSAGE_BODY)?;
    let text = MessageText::parse(&body.text)?;
    let change = app
        .edit_message(&me.user_id, chat_id, position, &text)
        .await?;
    Ok(http::json(200, &change.message))
}

/// `DELETE /chats/{chatId}/messages/{position}`: 200 with the tombstone (also when it
/// was already deleted).
pub async fn delete_message(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let position = position(&req)?;
    let change = app.delete_message(&me.user_id, chat_id, position).await?;
    Ok(http::json(200, &change.message))
}
