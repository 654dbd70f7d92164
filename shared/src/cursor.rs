//! Every cursor the API hands out, in one place. A cursor is opaque to clients: text
//! the server wrote and gets back unchanged. Anything that does not decode into the
//! expected shape is a `400 validation_failed` on the cursor's parameter, never a
//! panic or a silent restart from the beginning.
//!
//! - [`encode`]/[`decode`]: base64url (no padding) of a small JSON value. Page cursors
//!   of lists (`GET /chats`: [`ChatListCursor`]; user search and the data export: the
//!   store's last key) are these.
//! - [`SyncContinuation`]: the continuation of one shared sync
//!   ([`crate::messaging::ChatServices::sync`]): the chats still to send and from where.
//! - [`KnownPositions`]: the REST sync cursor (`GET /sync`): the last position the
//!   client has of each of its chats, packed with varints to fit in a URL.

use crate::error::ApiError;
use crate::ids::ChatId;
use crate::input::InvalidInput;
use crate::model::Millis;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest cursor accepted, in characters: what fits in a URL with room to spare
/// (API Gateway's HTTP API allows 10,240 bytes of request line and headers).
pub const MAX_CURSOR_CHARS: usize = 8192;

fn bad(field: &'static str) -> ApiError {
    ApiError::Validation(InvalidInput::new(field, "is not a cursor this API issued"))
}

/// An opaque cursor: base64url of the JSON of `value`.
pub fn encode<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The value inside a cursor made by [`encode`]; anything else (including an empty or
/// over-long cursor) is `400 validation_failed` on `field`.
pub fn decode<T: DeserializeOwned>(raw: &str, field: &'static str) -> Result<T, ApiError> {
    if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
        return Err(bad(field));
    }
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad(field))
}

/// Where a chat list page ends: the store's `next` (activity time, chat id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatListCursor {
    pub at: Millis,
    pub id: ChatId,
}

// ------------------------------------------------------------------ shared sync

/// The continuation of a sync: the chats still to send and from where. Opaque to
/// clients (base64url of this JSON); membership is checked again on every page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncContinuation {
    v: u32,
    pub pending: Vec<PendingChat>,
}

/// A chat a sync still has to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingChat {
    #[serde(rename = "c")]
    pub chat_id: ChatId,
    /// The position the client has.
    #[serde(rename = "p")]
    pub position: u64,
    /// Whether the client listed the chat (`false`: it is new to the client).
    #[serde(rename = "k")]
    pub known: bool,
    /// The change sequence the client has of the chat.
    #[serde(rename = "s", default)]
    pub change_seq: u64,
}

impl SyncContinuation {
    pub fn new(pending: Vec<PendingChat>) -> Self {
        SyncContinuation { v: 1, pending }
    }

    pub fn encode(&self) -> String {
        encode(self)
    }

    /// A continuation made by [`SyncContinuation::encode`]; else `400` on `cursor`.
    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let c: SyncContinuation = decode(raw, "cursor")?;
        if c.v != 1 {
            return Err(bad("cursor"));
        }
        Ok(c)
    }
}

// ------------------------------------------------------------------ REST sync

/// The REST sync cursor: the last position the client has of each of its chats.
///
/// It travels in a URL, and API Gateway's HTTP API allows 10,240 bytes of request
/// line and headers together, so it is packed: version byte 2, then for each chat
/// its 128-bit id and a LEB128 varint of `position << 1 | group`, all base64url
/// (~25 characters a chat; a cursor of [`MAX_CURSOR_CHARS`] holds ~320 chats).
/// Version 1 (JSON, ~47 characters a chat, which made the server refuse its own
/// cursor from ~170 chats on) is still read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KnownPositions {
    /// chat id -> the last position the client has.
    pub known: BTreeMap<ChatId, u64>,
    /// chat id -> the change sequence the client has caught up to (absent: 0).
    pub change_seqs: BTreeMap<ChatId, u64>,
}

/// What version 1 cursors held; `cont` is no longer needed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownPositionsV1 {
    v: u32,
    known: BTreeMap<ChatId, u64>,
    #[serde(default)]
    #[allow(dead_code)]
    cont: Option<String>,
}

const KNOWN_POSITIONS_V2: u8 = 2;
/// Version 3: version 2 with each chat's change sequence (a varint) after its position.
const KNOWN_POSITIONS_V3: u8 = 3;

fn push_varint(out: &mut Vec<u8>, mut v: u128) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A varint at the start of `bytes` (at most 77 bits) and the bytes it used.
fn read_varint(bytes: &[u8]) -> Option<(u128, usize)> {
    let (mut v, mut shift) = (0u128, 0u32);
    for (used, byte) in bytes.iter().enumerate() {
        if shift > 70 {
            return None;
        }
        v |= u128::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Some((v, used + 1));
        }
    }
    None
}

impl KnownPositions {
    /// The cursor text; `409 too_many_chats` when it would not fit in a URL.
    pub fn encode(&self) -> Result<String, ApiError> {
        let mut out = vec![KNOWN_POSITIONS_V3];
        for (chat, position) in &self.known {
            let (group, bits) = chat.to_bits().ok_or_else(|| {
                ApiError::internal(std::io::Error::other(format!(
                    "chat id {chat} does not pack"
                )))
            })?;
            out.extend_from_slice(&bits.to_be_bytes());
            push_varint(&mut out, (u128::from(*position) << 1) | u128::from(group));
            push_varint(
                &mut out,
                u128::from(self.change_seqs.get(chat).copied().unwrap_or(0)),
            );
        }
        let text = URL_SAFE_NO_PAD.encode(out);
        if text.len() > MAX_CURSOR_CHARS {
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

    /// A cursor made by [`KnownPositions::encode`] (or a version 1 one); else `400` on
    /// `cursor`.
    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let bad = || bad("cursor");
        if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        match bytes.split_first() {
            Some((&version, mut rest))
                if version == KNOWN_POSITIONS_V2 || version == KNOWN_POSITIONS_V3 =>
            {
                let mut known = BTreeMap::new();
                let mut change_seqs = BTreeMap::new();
                while !rest.is_empty() {
                    let (id, tail) = rest.split_at_checked(16).ok_or_else(bad)?;
                    let bits = u128::from_be_bytes(id.try_into().map_err(|_| bad())?);
                    let (v, used) = read_varint(tail).ok_or_else(bad)?;
                    let position = u64::try_from(v >> 1).map_err(|_| bad())?;
                    let chat = ChatId::from_bits(v & 1 == 1, bits);
                    rest = &tail[used..];
                    if version == KNOWN_POSITIONS_V3 {
                        let (s, used) = read_varint(rest).ok_or_else(bad)?;
                        let s = u64::try_from(s).map_err(|_| bad())?;
                        if s > 0 {
                            change_seqs.insert(chat.clone(), s);
                        }
                        rest = &rest[used..];
                    }
                    known.insert(chat, position);
                }
                Ok(KnownPositions { known, change_seqs })
            }
            Some((b'{', _)) => {
                let v1: KnownPositionsV1 = serde_json::from_slice(&bytes).map_err(|_| bad())?;
                if v1.v != 1 {
                    return Err(bad());
                }
                Ok(KnownPositions {
                    known: v1.known,
                    change_seqs: BTreeMap::new(),
                })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chat_list_cursors_round_trip() {
        let c = ChatListCursor {
            at: 1_700_000_000_000,
            id: ChatId::new_group(),
        };
        let s = encode(&c);
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
        assert_eq!(decode::<ChatListCursor>(&s, "cursor").unwrap(), c);
    }

    #[test]
    fn garbage_is_a_400_on_the_field() {
        for raw in [
            "",
            "!!!",
            "eyJ4IjoxfQ",
            &encode(&serde_json::json!({"at": 1, "id": "nope"})),
            &"a".repeat(MAX_CURSOR_CHARS + 1),
        ] {
            let e = decode::<ChatListCursor>(raw, "after").unwrap_err();
            assert_eq!(e.status(), 400);
            assert_eq!(e.body().error.field, Some("after"));
        }
    }

    #[test]
    fn sync_continuations_round_trip_and_reject_garbage() {
        let c = SyncContinuation::new(vec![PendingChat {
            chat_id: ChatId::new_group(),
            position: 9,
            known: false,
            change_seq: 3,
        }]);
        assert_eq!(SyncContinuation::decode(&c.encode()).unwrap(), c);
        for bad in ["", "!!!", "e30", "eyJ2IjoyLCJwZW5kaW5nIjpbXX0"] {
            let e = SyncContinuation::decode(bad).unwrap_err();
            assert_eq!(e.code(), "validation_failed", "{bad}");
        }
    }

    fn chat(group: bool, bits: u128) -> ChatId {
        // Server-made ids have their top two bits clear (a ULID's first character is 0-7).
        ChatId::from_bits(group, bits >> 2)
    }

    proptest! {
        #[test]
        fn known_positions_round_trip(entries in prop::collection::btree_map((any::<bool>(), any::<u128>()), any::<u64>(), 0..40)) {
            let known: BTreeMap<ChatId, u64> = entries.into_iter().map(|((g, b), p)| (chat(g, b), p)).collect();
            let change_seqs = known.iter().map(|(c, p)| (c.clone(), p % 1000 + 1)).collect();
            let c = KnownPositions { known, change_seqs };
            let text = c.encode().unwrap();
            prop_assert_eq!(KnownPositions::decode(&text).unwrap(), c);
        }

        #[test]
        fn known_positions_garbage_is_a_400_on_cursor(raw in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,200}"]) {
            if let Err(e) = KnownPositions::decode(&raw) {
                prop_assert_eq!((e.status(), e.body().error.field), (400, Some("cursor")));
            }
        }

        #[test]
        fn known_positions_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut b = bytes;
            let version = if b.len() % 2 == 0 { KNOWN_POSITIONS_V2 } else { KNOWN_POSITIONS_V3 };
            if let Some(first) = b.first_mut() { *first = version; }
            let _ = KnownPositions::decode(&URL_SAFE_NO_PAD.encode(&b));
        }
    }

    #[test]
    fn three_hundred_chats_fit_a_url_and_too_many_are_refused_by_name() {
        let many = |n: usize| KnownPositions {
            known: (0..n)
                .map(|i| (ChatId::new_group(), 1000 + i as u64))
                .collect(),
            change_seqs: BTreeMap::new(),
        };
        let text = many(300).encode().unwrap();
        assert!(text.len() <= MAX_CURSOR_CHARS, "{}", text.len());
        let e = many(400).encode().unwrap_err();
        assert_eq!((e.status(), e.code()), (409, "too_many_chats"));
    }

    #[test]
    fn version_1_known_positions_are_still_read() {
        let id = ChatId::new_group();
        let v1 = encode(&serde_json::json!({"v": 1, "known": {id.as_str(): 7}, "cont": "x"}));
        assert_eq!(KnownPositions::decode(&v1).unwrap().known[&id], 7);
        let v9 = encode(&serde_json::json!({"v": 9, "known": {}}));
        assert!(KnownPositions::decode(&v9).is_err());
        // Truncated: half an id.
        let mut b = vec![KNOWN_POSITIONS_V2];
        b.extend_from_slice(&[1u8; 8]);
        assert!(KnownPositions::decode(&URL_SAFE_NO_PAD.encode(&b)).is_err());
    }
}
