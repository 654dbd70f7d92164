//! The routes that share their implementation with the WebSocket: REST send, read
//! markers and catch-up sync. Each is a thin edge over `chat_core::messaging::
//! ChatServices` (the same validation, idempotency, ordering, fan-out, offline push,
//! receipts and sync as `ws-message`); this module only parses the request and shapes
//! the REST answer.

use crate::cursor;
use crate::handlers::{invalid, Reply};
use crate::views::MyMembership;
use crate::App;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_core::auth::Authenticated;
use chat_core::error::ApiError;
use chat_core::http;
use chat_core::ids::{ChatId, ClientMessageId};
use chat_core::input::{self, MessageText};
use chat_core::protocol::{KnownPosition, SyncChat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Messages per chat in one sync page: 1 to 100 (default 100).
pub const SYNC_DEFAULT_LIMIT: u32 = 100;
pub const SYNC_MAX_LIMIT: u32 = 100;
/// Bytes of chats and messages in one REST sync page (Lambda answers may be 6 MB).
pub const SYNC_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    pub client_message_id: String,
    pub text: String,
}

/// `POST /chats/{chatId}/messages`: store, then deliver to every member's live
/// connections and push to the offline ones, then answer: 201 with the message, or 200
/// with the original when this `clientMessageId` was already stored (a retry; nothing
/// is delivered twice).
pub async fn send_message(
    app: &App,
    me: &Authenticated,
    chat_id: &ChatId,
    body: SendBody,
) -> Reply {
    let cid = ClientMessageId::parse(&body.client_message_id)
        .map_err(|e| invalid("clientMessageId", e.to_string()))?;
    let text = MessageText::parse(&body.text)?;
    let sent = app
        .services
        .send_message(&me.user_id, chat_id, &cid, &text, None)
        .await?;
    // Lambda freezes after answering, so delivery happens before the answer. The
    // message is stored either way: a failed offline publish is logged, not an error
    // (a retry would be a duplicate and deliver nothing).
    if let Err(e) = app.services.fan_out(&sent).await {
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
pub async fn mark_read(app: &App, me: &Authenticated, chat_id: &ChatId, body: ReadBody) -> Reply {
    app.services
        .mark_read(&me.user_id, chat_id, body.position, None)
        .await?;
    let m = app
        .store()
        .get_membership(chat_id, &me.user_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found("chat"))?;
    Ok(http::json(200, &MyMembership::from(m)))
}

/// The REST sync cursor: the last position the client has of each of its chats.
///
/// It travels in a URL, and API Gateway's HTTP API allows 10,240 bytes of request
/// line and headers together, so it is packed: version byte 2, then for each chat
/// its 128-bit id and a LEB128 varint of `position << 1 | group`, all base64url
/// (~25 characters a chat; a cursor of [`cursor::MAX_CURSOR_CHARS`] holds ~320
/// chats). Version 1 (JSON, ~47 characters a chat, which made the server refuse its
/// own cursor from ~170 chats on) is still read.
#[derive(Debug, Default, PartialEq)]
struct SyncCursor {
    /// chat id -> the last position the client has.
    known: BTreeMap<ChatId, u64>,
}

/// What version 1 cursors held; `cont` is no longer needed (see [`sync`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncCursorV1 {
    v: u32,
    known: BTreeMap<ChatId, u64>,
    #[serde(default)]
    #[allow(dead_code)]
    cont: Option<String>,
}

const SYNC_CURSOR_V2: u8 = 2;

fn bad_cursor() -> ApiError {
    invalid("cursor", "not a cursor this API issued")
}

impl SyncCursor {
    /// The cursor text; `too_many_chats` when it would not fit in a URL.
    fn encode(&self) -> Result<String, ApiError> {
        let mut out = vec![SYNC_CURSOR_V2];
        for (chat, position) in &self.known {
            let (group, bits) = chat.to_bits().ok_or_else(|| {
                ApiError::internal(std::io::Error::other(format!(
                    "chat id {chat} does not pack"
                )))
            })?;
            out.extend_from_slice(&bits.to_be_bytes());
            let mut v = (u128::from(*position) << 1) | u128::from(group);
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        let text = URL_SAFE_NO_PAD.encode(out);
        if text.len() > cursor::MAX_CURSOR_CHARS {
            return Err(ApiError::conflict(
                "too_many_chats",
                format!(
                    "a REST sync cursor holds at most ~320 chats and this account has {}; use the WebSocket sync action",
                    self.known.len()
                ),
            ));
        }
        Ok(text)
    }

    fn decode(raw: &str) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.len() > cursor::MAX_CURSOR_CHARS {
            return Err(bad_cursor());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad_cursor())?;
        match bytes.split_first() {
            Some((&SYNC_CURSOR_V2, mut rest)) => {
                let mut known = BTreeMap::new();
                while !rest.is_empty() {
                    let (id, tail) = rest.split_at_checked(16).ok_or_else(bad_cursor)?;
                    let bits = u128::from_be_bytes(id.try_into().map_err(|_| bad_cursor())?);
                    let (mut v, mut shift, mut used) = (0u128, 0u32, 0usize);
                    loop {
                        let byte = *tail.get(used).ok_or_else(bad_cursor)?;
                        if shift > 70 {
                            return Err(bad_cursor());
                        }
                        v |= u128::from(byte & 0x7f) << shift;
                        used += 1;
                        shift += 7;
                        if byte & 0x80 == 0 {
                            break;
                        }
                    }
                    let position = u64::try_from(v >> 1).map_err(|_| bad_cursor())?;
                    known.insert(ChatId::from_bits(v & 1 == 1, bits), position);
                    rest = &tail[used..];
                }
                Ok(SyncCursor { known })
            }
            Some((b'{', _)) => {
                let v1: SyncCursorV1 = serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?;
                if v1.v != 1 {
                    return Err(bad_cursor());
                }
                Ok(SyncCursor { known: v1.known })
            }
            _ => Err(bad_cursor()),
        }
    }
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
    app: &App,
    me: &Authenticated,
    cursor_raw: Option<&str>,
    limit: Option<&str>,
) -> Reply {
    let limit = input::page_limit(limit, SYNC_DEFAULT_LIMIT, SYNC_MAX_LIMIT)?;
    let Some(raw) = cursor_raw else {
        let store = app.store();
        let memberships = store
            .list_user_memberships(&me.user_id)
            .await
            .map_err(ApiError::from)?;
        let ids: Vec<ChatId> = memberships.iter().map(|m| m.chat_id.clone()).collect();
        let chats = store.get_chats(&ids).await.map_err(ApiError::from)?;
        let known = chats
            .into_values()
            .filter(|c| c.last_position > 0 || c.kind == chat_core::model::ChatKind::Direct)
            .map(|c| (c.chat_id, c.last_position))
            .collect();
        let page = SyncPage {
            chats: vec![],
            removed: vec![],
            cursor: SyncCursor { known }.encode()?,
            has_more: false,
        };
        return Ok(http::json(200, &page));
    };
    let mut state = SyncCursor::decode(raw)?;
    let known: Vec<KnownPosition> = state
        .known
        .iter()
        .map(|(c, p)| KnownPosition {
            chat_id: c.clone(),
            position: *p,
        })
        .collect();
    // Every page starts from the positions in the cursor, which this page then moves
    // forward; a catch-up that does not fit one page is finished by the next calls
    // (the shared sync's own continuation is not kept: it would grow the cursor).
    let result = app
        .services
        .sync(&me.user_id, &known, limit, None, SYNC_MAX_BYTES)
        .await?;
    for gone in &result.removed {
        state.known.remove(gone);
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
    }
    let page = SyncPage {
        has_more: result.cursor.is_some(),
        cursor: state.encode()?,
        chats: result.chats,
        removed: result.removed,
    };
    Ok(http::json(200, &page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chat(group: bool, bits: u128) -> ChatId {
        // Server-made ids have their top two bits clear (a ULID's first character is 0-7).
        ChatId::from_bits(group, bits >> 2)
    }

    proptest! {
        #[test]
        fn sync_cursors_round_trip(entries in prop::collection::btree_map((any::<bool>(), any::<u128>()), any::<u64>(), 0..40)) {
            let known: BTreeMap<ChatId, u64> = entries.into_iter().map(|((g, b), p)| (chat(g, b), p)).collect();
            let c = SyncCursor { known };
            let text = c.encode().unwrap();
            prop_assert_eq!(SyncCursor::decode(&text).unwrap(), c);
        }

        #[test]
        fn sync_cursor_garbage_is_a_400_on_cursor(raw in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,200}"]) {
            if let Err(e) = SyncCursor::decode(&raw) {
                prop_assert_eq!((e.status(), e.body().error.field), (400, Some("cursor")));
            }
        }

        #[test]
        fn sync_cursor_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut b = bytes;
            if let Some(first) = b.first_mut() { *first = SYNC_CURSOR_V2; }
            let _ = SyncCursor::decode(&URL_SAFE_NO_PAD.encode(&b));
        }
    }

    #[test]
    fn three_hundred_chats_fit_a_url_and_too_many_are_refused_by_name() {
        let many = |n: usize| SyncCursor {
            known: (0..n)
                .map(|i| (ChatId::new_group(), 1000 + i as u64))
                .collect(),
        };
        let text = many(300).encode().unwrap();
        assert!(text.len() <= cursor::MAX_CURSOR_CHARS, "{}", text.len());
        let e = many(400).encode().unwrap_err();
        assert_eq!((e.status(), e.code()), (409, "too_many_chats"));
    }

    #[test]
    fn version_1_cursors_are_still_read() {
        let id = ChatId::new_group();
        let v1 =
            cursor::encode(&serde_json::json!({"v": 1, "known": {id.as_str(): 7}, "cont": "x"}));
        assert_eq!(SyncCursor::decode(&v1).unwrap().known[&id], 7);
        let v9 = cursor::encode(&serde_json::json!({"v": 9, "known": {}}));
        assert!(SyncCursor::decode(&v9).is_err());
        // Truncated: half an id.
        let mut b = vec![SYNC_CURSOR_V2];
        b.extend_from_slice(&[1u8; 8]);
        assert!(SyncCursor::decode(&URL_SAFE_NO_PAD.encode(&b)).is_err());
    }
}
