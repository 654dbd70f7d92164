//! Opaque page cursors. A cursor is base64url (no padding) of a small JSON value the
//! server wrote; clients hand it back unchanged. Anything that does not decode into
//! the expected shape is a 400 on the `cursor` parameter, never a panic or a silent
//! restart from the beginning.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_core::error::ApiError;
use chat_core::ids::ChatId;
use chat_core::input::InvalidInput;
use chat_core::model::Millis;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest cursor accepted, in characters: what fits in a URL with room to spare
/// (API Gateway's HTTP API allows 10,240 bytes of request line and headers).
pub const MAX_CURSOR_CHARS: usize = 8192;

pub fn encode<T: Serialize>(value: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let bad = || ApiError::Validation(InvalidInput::new("cursor", "not a cursor this API issued"));
    if raw.is_empty() || raw.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// Where a chat list page ends: the store's `next` (activity time, chat id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatListCursor {
    pub at: Millis,
    pub id: ChatId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = ChatListCursor {
            at: 1_700_000_000_000,
            id: ChatId::new_group(),
        };
        let s = encode(&c);
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
        assert_eq!(decode::<ChatListCursor>(&s).unwrap(), c);
    }

    #[test]
    fn garbage_is_a_400_on_cursor() {
        for raw in [
            "",
            "!!!",
            "eyJ4IjoxfQ",
            &encode(&serde_json::json!({"at": 1, "id": "nope"})),
        ] {
            let e = decode::<ChatListCursor>(raw).unwrap_err();
            assert_eq!(e.status(), 400);
            assert_eq!(e.body().error.field, Some("cursor"));
        }
    }
}
