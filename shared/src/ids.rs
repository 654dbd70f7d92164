//! Identifiers. Every id that crosses the edge (a path segment, a JSON field, a
//! WebSocket frame) is parsed into one of these newtypes first, so the rest of the code
//! never sees a malformed id. Server-made ids are a short type prefix plus a ULID
//! (`usr_01J…`), which sorts by creation time and is safe in URLs and DynamoDB keys.
//! Direct chats get a deterministic id derived from the two user ids, so asking twice
//! for the same pair lands on the same chat without a lookup table.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Why an id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn is_ulid(s: &str) -> bool {
    s.len() == 26 && ulid::Ulid::from_string(s).is_ok()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, ordered by creation time.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, ulid::Ulid::new()))
            }

            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(rest) if is_ulid(rest) => Ok(Self(s.to_owned())),
                    _ => Err(IdError { kind: $kind, reason: concat!("expected '", $prefix, "' followed by a ULID") }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

prefixed_id!(
    /// A user, `usr_` + ULID.
    UserId, "usr_", "user id"
);
prefixed_id!(
    /// A stored message, `msg_` + ULID.
    MessageId, "msg_", "message id"
);
prefixed_id!(
    /// A registered push device, `dev_` + ULID.
    DeviceId, "dev_", "device id"
);
prefixed_id!(
    /// A login session (one refresh-token family), `ses_` + ULID.
    SessionId, "ses_", "session id"
);
prefixed_id!(
    /// An uploaded photo or file, `att_` + ULID.
    AttachmentId, "att_", "attachment id"
);

/// A chat: `grp_` + ULID for groups, `dm_` + 26 base32 characters of a hash of the two
/// member ids for direct chats.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChatId(String);

const BASE32: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl ChatId {
    pub fn new_group() -> Self {
        Self(format!("grp_{}", ulid::Ulid::new()))
    }

    /// The one direct chat of two users, the same whichever of them asks.
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let digest = Sha256::digest(format!("{lo}|{hi}").as_bytes());
        // 26 base32 characters of the first 128 bits (the first character carries 3).
        let mut bits: u128 = 0;
        for byte in &digest[..16] {
            bits = (bits << 8) | u128::from(*byte);
        }
        let mut out = String::with_capacity(29);
        out.push_str("dm_");
        for i in (0..26).rev() {
            let shift = i * 5;
            let idx = ((bits >> shift) & 31) as usize;
            out.push(BASE32[idx] as char);
        }
        Self(out)
    }

    pub fn is_group(&self) -> bool {
        self.0.starts_with("grp_")
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = if let Some(rest) = s.strip_prefix("grp_") {
            is_ulid(rest)
        } else if let Some(rest) = s.strip_prefix("dm_") {
            rest.len() == 26 && rest.bytes().all(|b| BASE32.contains(&b))
        } else {
            false
        };
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError {
                kind: "chat id",
                reason: "expected 'grp_' + ULID or 'dm_' + 26 base32 characters",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id in 16 bytes plus its kind (`true` for a group), for compact cursors.
    /// `None` for a direct-chat id that [`ChatId::direct`] cannot have made (its
    /// first character carries more than 3 bits).
    pub fn to_bits(&self) -> Option<(bool, u128)> {
        let (group, rest) = match self.0.strip_prefix("grp_") {
            Some(rest) => (true, rest),
            None => (false, self.0.strip_prefix("dm_")?),
        };
        if !matches!(rest.as_bytes().first(), Some(b'0'..=b'7')) {
            return None;
        }
        ulid::Ulid::from_string(rest).ok().map(|u| (group, u.0))
    }

    /// The inverse of [`ChatId::to_bits`].
    pub fn from_bits(group: bool, bits: u128) -> Self {
        let prefix = if group { "grp_" } else { "dm_" };
        Self(format!("{prefix}{}", ulid::Ulid(bits)))
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for ChatId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<ChatId> for String {
    fn from(id: ChatId) -> String {
        id.0
    }
}
impl std::str::FromStr for ChatId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

macro_rules! charset_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Result<Self, IdError> {
                if s.is_empty() || s.len() > $max {
                    return Err(IdError { kind: $kind, reason: concat!("must be 1 to ", $max, " characters") });
                }
                let allowed: fn(u8) -> bool = $allowed;
                if !s.bytes().all(allowed) {
                    return Err(IdError { kind: $kind, reason: "contains a character that is not allowed" });
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

charset_id!(
    /// An API Gateway WebSocket connection id (e.g. `L0SM9cOFvHcCIhw=`).
    ConnectionId, "connection id", 128,
    |b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
);
charset_id!(
    /// The sender's own id for a message, the idempotency key of a send: 1 to 64
    /// characters of `A-Z a-z 0-9 . _ : -` (a UUID fits).
    ClientMessageId, "clientMessageId", 64,
    |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
);
charset_id!(
    /// The client's own id for a group operation (create a group, add members), its
    /// idempotency key: the same rule as [`ClientMessageId`].
    ClientRequestId, "clientRequestId", 64,
    |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip() {
        let u = UserId::generate();
        assert_eq!(UserId::parse(u.as_str()).unwrap(), u);
        assert!(UserId::parse("msg_01J0000000000000000000000").is_err());
        assert!(UserId::parse("usr_nope").is_err());
        let g = ChatId::new_group();
        assert!(g.is_group());
        assert_eq!(ChatId::parse(g.as_str()).unwrap(), g);
    }

    #[test]
    fn direct_chat_id_is_symmetric_and_parses() {
        let a = UserId::generate();
        let b = UserId::generate();
        let ab = ChatId::direct(&a, &b);
        assert_eq!(ab, ChatId::direct(&b, &a));
        assert!(!ab.is_group());
        assert_eq!(ChatId::parse(ab.as_str()).unwrap(), ab);
        assert_ne!(ab, ChatId::direct(&a, &UserId::generate()));
    }

    #[test]
    fn chat_ids_pack_into_128_bits() {
        for id in [
            ChatId::new_group(),
            ChatId::direct(&UserId::generate(), &UserId::generate()),
        ] {
            let (group, bits) = id.to_bits().unwrap();
            assert_eq!(ChatId::from_bits(group, bits), id);
        }
        // Parses (26 base32 characters) but holds 130 bits: not packable.
        let wide = ChatId::parse(&format!("dm_Z{}", "0".repeat(25))).unwrap();
        assert_eq!(wide.to_bits(), None);
    }

    #[test]
    fn client_message_ids() {
        assert!(ClientMessageId::parse("6f1c2d3e-aaaa-4bbb-8ccc-123456789abc").is_ok());
        assert!(ClientMessageId::parse("").is_err());
        assert!(ClientMessageId::parse(&"a".repeat(65)).is_err());
        assert!(ClientMessageId::parse("a b").is_err());
    }

    #[test]
    fn serde_rejects_bad_ids() {
        let r: Result<ChatId, _> = serde_json::from_str("\"grp_x\"");
        assert!(r.is_err());
    }
}
