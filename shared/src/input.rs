//! Validated input. Each rule on what a client may send (user names, passwords,
//! message text, names, URLs, page sizes) lives here, once, as a newtype whose only
//! constructor is `parse`. Handlers parse at the edge and pass these types inward, so
//! the store and the services never re-check and never see invalid values.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was rejected: the field it belongs to and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Largest message, in Unicode scalar values (what Rust calls `char`). At 4 bytes each
/// in UTF-8 that is 400,000 bytes, which still fits DynamoDB's 400 KB item limit with
/// the message's other attributes (see docs/data-model.md).
pub const MAX_MESSAGE_CHARS: usize = 100_000;
/// Members of a group, the creator included.
pub const MAX_GROUP_MEMBERS: usize = 100;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, InvalidInput> {
                Self::parse(&s)
            }
        }
    };
}

/// A user name: 3 to 32 characters of ASCII letters, digits, `_`, `.` and `-`, starting
/// with a letter or digit. Unique without regard to case; the spelling the user chose
/// is kept for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);
string_newtype!(UserName);

impl UserName {
    pub const MIN: usize = 3;
    pub const MAX: usize = 32;

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let n = s.len();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(InvalidInput::new("userName", "must be 3 to 32 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(InvalidInput::new(
                "userName",
                "may contain only letters a-z, digits, '_', '.' and '-'",
            ));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(InvalidInput::new(
                "userName",
                "must start with a letter or digit",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The case-folded form that uniqueness and search use.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A prefix of a user name for search: 2 to 32 characters of the user-name alphabet,
/// case-folded (two, because user-name claims are partitioned by their first two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNamePrefix(String);
string_newtype!(UserNamePrefix);

impl UserNamePrefix {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.len() < 2 || s.len() > UserName::MAX {
            return Err(InvalidInput::new("prefix", "must be 2 to 32 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(InvalidInput::new(
                "prefix",
                "may contain only the characters of user names",
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

/// Passwords nobody should be allowed to choose (the most common ones of 8+ characters).
const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "password",
    "password1",
    "password123",
    "passw0rd",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "iloveyou",
    "11111111",
    "00000000",
    "88888888",
    "87654321",
    "abc12345",
    "abcd1234",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "trustno1",
    "superman",
    "letmein1",
    "starwars",
    "whatever",
    "dragon12",
    "master12",
    "monkey123",
    "admin123",
    "administrator",
    "changeme",
    "zaq12wsx",
    "asdfghjkl",
    "1qaz2wsx",
    "qazwsxedc",
    "987654321",
    "123123123",
    "aaaaaaaa",
    "chatchat",
    "computer",
    "internet",
    "michael1",
];

/// A password: 8 to 128 characters, not one of a list of very common passwords.
/// Never logged, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let n = s.chars().count();
        if n < Self::MIN {
            return Err(InvalidInput::new(
                "password",
                "must be at least 8 characters",
            ));
        }
        if n > Self::MAX {
            return Err(InvalidInput::new(
                "password",
                "must be at most 128 characters",
            ));
        }
        let lower = s.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(InvalidInput::new(
                "password",
                "is too common; choose another",
            ));
        }
        if s.chars().all(|c| c == s.chars().next().unwrap_or(' ')) {
            return Err(InvalidInput::new(
                "password",
                "must not repeat a single character",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// For a login attempt: any length up to the maximum is checked against the hash
    /// (the strength rules apply to new passwords only).
    pub fn for_login(s: &str) -> Result<Self, InvalidInput> {
        if s.is_empty() || s.chars().count() > Self::MAX {
            return Err(InvalidInput::new("password", "must be 1 to 128 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069):
/// in a name they reorder how it and the text after it are shown, so `alice\u{202e}...`
/// can pass for another user. Names and status lines refuse them; message text keeps
/// them (right-to-left writing uses them). The marks U+200E/U+200F stay allowed.
fn has_bidi_control(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

/// The shared rule of names and status lines: no control characters, no bidi controls.
fn clean_text(field: &'static str, t: &str) -> Result<(), InvalidInput> {
    if has_control(t) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters",
        ));
    }
    if has_bidi_control(t) {
        return Err(InvalidInput::new(
            field,
            "must not contain text-direction override characters",
        ));
    }
    Ok(())
}

/// A display name: 1 to 64 characters after trimming, no control or bidi override
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);
string_newtype!(DisplayName);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 || n > 64 {
            return Err(InvalidInput::new(
                "displayName",
                "must be 1 to 64 characters",
            ));
        }
        clean_text("displayName", t)?;
        Ok(Self(t.to_owned()))
    }
}

/// A group's name: 1 to 100 characters after trimming, no control or bidi override
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);
string_newtype!(GroupName);

impl GroupName {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 || n > 100 {
            return Err(InvalidInput::new("name", "must be 1 to 100 characters"));
        }
        clean_text("name", t)?;
        Ok(Self(t.to_owned()))
    }
}

/// A profile's status line: 0 to 140 characters, no control or bidi override characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StatusText(String);
string_newtype!(StatusText);

impl StatusText {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let t = s.trim();
        if t.chars().count() > 140 {
            return Err(InvalidInput::new(
                "statusText",
                "must be at most 140 characters",
            ));
        }
        clean_text("statusText", t)?;
        Ok(Self(t.to_owned()))
    }
}

/// An avatar URL: `https://host/...`, at most 2,048 characters, no spaces or controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AvatarUrl(String);
string_newtype!(AvatarUrl);

impl AvatarUrl {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.len() > 2048 {
            return Err(InvalidInput::new(
                "avatarUrl",
                "must be at most 2048 characters",
            ));
        }
        let Some(rest) = s.strip_prefix("https://") else {
            return Err(InvalidInput::new("avatarUrl", "must be an https:// URL"));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || host.contains('@') {
            return Err(InvalidInput::new("avatarUrl", "must name a host"));
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>')
        {
            return Err(InvalidInput::new(
                "avatarUrl",
                "contains characters not allowed in a URL",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Message text: 1 to 100,000 characters (Unicode scalar values), not only white space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageText(String);
string_newtype!(MessageText);

impl MessageText {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if s.trim().is_empty() {
            return Err(InvalidInput::new("text", "must not be empty"));
        }
        // Count only as far as needed: a 10 MB string is rejected without a full scan.
        if s.chars().nth(MAX_MESSAGE_CHARS).is_some() {
            return Err(InvalidInput::new(
                "text",
                "must be at most 100000 characters",
            ));
        }
        if s.contains('\0') {
            return Err(InvalidInput::new("text", "must not contain NUL characters"));
        }
        // C0 and C1 controls (but tab, newline, carriage return) and DEL carry no text
        // and serialise as 6-byte JSON escapes: 100,000 of them would make ~600 KB.
        if s.chars().any(is_forbidden_control) {
            return Err(InvalidInput::new(
                "text",
                "must not contain control characters other than tab, newline and carriage return",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The first `max_chars` characters, with an ellipsis when cut (for previews).
    pub fn preview(&self, max_chars: usize) -> String {
        preview(&self.0, max_chars)
    }
}

/// A control character message text refuses: C0, DEL and C1, except `\t`, `\n`, `\r`.
pub fn is_forbidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The first `max_chars` characters of `s`, with `…` appended when it was cut.
pub fn preview(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// A page size: 1 to `max`, `default` when absent.
pub fn page_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, InvalidInput> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(InvalidInput::new(
                "limit",
                format!("must be a whole number from 1 to {max}"),
            )),
        },
    }
}

/// A message position in a chat's history (1 is the first message).
pub fn position(raw: &str, field: &'static str) -> Result<u64, InvalidInput> {
    raw.parse::<u64>()
        .map_err(|_| InvalidInput::new(field, "must be a whole number of 0 or more"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(UserName::parse("alice").is_ok());
        assert!(UserName::parse("Al.ice-9_").is_ok());
        assert!(UserName::parse("al").is_err());
        assert!(UserName::parse(&"a".repeat(33)).is_err());
        assert!(UserName::parse("_alice").is_err());
        assert!(UserName::parse("ali ce").is_err());
        assert!(UserName::parse("alicé").is_err());
        assert_eq!(UserName::parse("AliCe").unwrap().canonical(), "alice");
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("correct horse").is_ok());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("Password123").is_err());
        assert!(Password::parse("aaaaaaaaaaaa").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("correct horse").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn message_text_bounds() {
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse("  \n ").is_err());
        assert!(MessageText::parse("hi").is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse(&"😀".repeat(MAX_MESSAGE_CHARS)).is_ok());
    }

    #[test]
    fn previews_cut_on_char_boundaries() {
        assert_eq!(preview("héllo", 2), "hé…");
        assert_eq!(preview("hi", 2), "hi");
    }

    #[test]
    fn avatar_urls() {
        assert!(AvatarUrl::parse("https://example.com/a.png").is_ok());
        assert!(AvatarUrl::parse("http://example.com/a.png").is_err());
        assert!(AvatarUrl::parse("https:///a.png").is_err());
        assert!(AvatarUrl::parse("https://x.com/a b").is_err());
        assert!(AvatarUrl::parse("javascript:alert(1)").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(page_limit(None, 50, 100).unwrap(), 50);
        assert_eq!(page_limit(Some("100"), 50, 100).unwrap(), 100);
        assert!(page_limit(Some("0"), 50, 100).is_err());
        assert!(page_limit(Some("101"), 50, 100).is_err());
        assert!(page_limit(Some("x"), 50, 100).is_err());
    }
}
