//! The routes that share their implementation with the WebSocket: REST send, read
//! markers and catch-up sync. Each is a thin edge over `chat_core::messaging::
//! ChatServices` (the same validation, idempotency, ordering, fan-out, offline push,
//! receipts and sync as `ws-message`); this module only parses the request and shapes
//! the REST answer.

use crate::handlers::{chat_id, invalid, query};
use crate::views::MyMembership;
use chat_core::auth::Authenticated;
use chat_core::cursor::KnownPositions;
use chat_core::error::ApiError;
use chat_core::http::{self, MESSAGE_BODY, SMALL_BODY};
use chat_core::ids::{ChatId, ClientMessageId};
use chat_core::input::{self, MessageText};
use chat_core::messaging::ChatServices;
use chat_core::protocol::{KnownPosition, SyncChat};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Messages per chat in one sync page: 1 to 100 (default 100).
pub const SYNC_DEFAULT_LIMIT: u32 = 100;
pub const SYNC_MAX_LIMIT: u32 = 100;
/// Bytes of chats and messages in one REST sync page (Lambda answers may be 6 MB).
pub const SYNC_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    pub client_message_id: String,
    /// Required unless the message carries attachments.
    #[serde(default)]
    pub text: Option<String>,
    /// Ids of the sender's uploads to this chat (`POST /chats/{chatId}/attachments`).
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// `POST /chats/{chatId}/messages`: store, then deliver to every member's live
/// connections and push to the offline ones, then answer: 201 with the message, or 200
/// with the original when this `clientMessageId` was already stored (a retry; nothing
/// is delivered twice).
pub async fn send_message(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let body: SendBody = http::parse_json(&req, MESSAGE_BODY)?;
    let cid = ClientMessageId::parse(&body.client_message_id)
        .map_err(|e| invalid("clientMessageId", e.to_string()))?;
    let sent = if body.attachments.is_empty() {
        let text = MessageText::parse(body.text.as_deref().unwrap_or_default())?;
        app.send_message(&me.user_id, chat_id, &cid, &text, None, None)
            .await?
    } else {
        let ids = crate::attachments::parse_ids(&body.attachments)?;
        let text = match body.text.as_deref() {
            Some(t) if !t.is_empty() => Some(MessageText::parse(t)?),
            _ => None,
        };
        app.send_with_attachments(&me.user_id, chat_id, &cid, text.as_ref(), &ids, None)
            .await?
    };
    // Lambda freezes after answering, so delivery happens before the answer. The
    // message is stored either way: a failed offline publish is logged, not an error
    // (a retry would be a duplicate and deliver nothing).
    if let Err(e) = app.fan_out(&sent).await {
        e.log();
    }
    let status = if sent.duplicate { 200 } else { 201 };
    Ok(http::json(status, &sent.message))
}

#[derive(Debug, Deserialize)]
pub struct ReadBody {
    pub position: u64,
}

/// `POST /chats/{chatId}/read`: everything up to `position` is read. The marker only
/// moves forward; when it moves, members' live connections get a `read` receipt.
pub async fn mark_read(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let body: ReadBody = http::parse_json(&req, SMALL_BODY)?;
    app.mark_read(&me.user_id, chat_id, body.position, None)
        .await?;
    let m = app
        .store()
        .get_membership(chat_id, &me.user_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found("chat"))?;
    Ok(http::json(200, &MyMembership::from(m)))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncPage {
    /// Chats with something new: new chats (`known: false`), new messages (system
    /// messages record membership changes and renames).
    chats: Vec<SyncChat>,
    /// Chats the client had that it may no longer see (left, removed).
    removed: Vec<ChatId>,
    /// Keep this; give it back on the next sync.
    cursor: String,
    /// Call again with `cursor` right away: this catch-up is not complete.
    has_more: bool,
}

/// `GET /sync?cursor=&limit=`: what changed for the caller since `cursor`. Without a
/// cursor: nothing but a cursor holding the current positions of all the caller's
/// chats (fetch the chat list and history first, then sync from there).
pub async fn sync(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let limit = input::page_limit(query(&req, "limit"), SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT)?;
    let Some(raw) = query(&req, "cursor") else {
        let store = app.store();
        let memberships = store
            .list_user_memberships(&me.user_id)
            .await
            .map_err(ApiError::from)?;
        let ids: Vec<ChatId> = memberships.iter().map(|m| m.chat_id.clone()).collect();
        let chats = store.get_chats(&ids).await.map_err(ApiError::from)?;
        let shown: Vec<_> = chats
            .into_values()
            .filter(|c| c.last_position > 0 || c.kind == chat_core::model::ChatKind::Direct)
            .collect();
        let change_seqs = shown
            .iter()
            .filter(|c| c.change_seq > 0)
            .map(|c| (c.chat_id.clone(), c.change_seq))
            .collect();
        let known = shown
            .into_iter()
            .map(|c| (c.chat_id, c.last_position))
            .collect();
        let page = SyncPage {
            chats: vec![],
            removed: vec![],
            cursor: KnownPositions { known, change_seqs }.encode()?,
            has_more: false,
        };
        return Ok(http::json(200, &page));
    };
    let mut state = KnownPositions::decode(raw)?;
    let known: Vec<KnownPosition> = state
        .known
        .iter()
        .map(|(c, p)| KnownPosition {
            chat_id: c.clone(),
            position: *p,
            change_seq: Some(state.change_seqs.get(c).copied().unwrap_or(0)),
        })
        .collect();
    // Every page starts from the positions in the cursor, which this page then moves
    // forward; a catch-up that does not fit one page is finished by the next calls
    // (the shared sync's own continuation is not kept: it would grow the cursor).
    let result = app
        .sync(&me.user_id, &known, limit, None, SYNC_MAX_BYTES)
        .await?;
    for gone in &result.removed {
        state.known.remove(gone);
        state.change_seqs.remove(gone);
    }
    for c in &result.chats {
        let last_sent = c
            .messages
            .iter()
            .map(|m| m.position)
            .chain(c.refs.iter().map(|r| r.position))
            .max();
        let mut reached = state.known.get(&c.chat_id).copied().unwrap_or(0);
        if let Some(p) = last_sent {
            reached = reached.max(p);
        }
        if !c.has_more {
            reached = reached.max(c.chat.last_position);
        }
        state.known.insert(c.chat_id.clone(), reached);
        if c.change_seq > 0 {
            state.change_seqs.insert(c.chat_id.clone(), c.change_seq);
        }
    }
    let page = SyncPage {
        has_more: result.cursor.is_some(),
        cursor: state.encode()?,
        chats: result.chats,
        removed: result.removed,
    };
    Ok(http::json(200, &page))
}
