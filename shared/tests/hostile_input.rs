//! Property tests of every parser a client reaches in `chat-core`: the WebSocket frame
//! decoder (`protocol::parse_frame`), the input and id newtypes, the REST helpers
//! (`http::parse_json`, `http::decode_cursor`), the bearer header, access tokens (JWT)
//! and refresh tokens. Inputs are arbitrary bytes and strings, arbitrary JSON,
//! mutations of valid frames, and well-formed frames and tokens with hostile values.
//!
//! Each property is the edge's contract: no panic; every refusal is the typed error
//! (`FrameError` with a documented code, `InvalidInput` / `IdError` naming the field,
//! `ApiError` with a 4xx status); whatever is accepted satisfies the rule it was
//! checked against and round-trips (parse → print → parse gives the same value, serde
//! agrees with `parse`). `PROPTEST_CASES` sets the cases per property (default 256;
//! docs/reliability.md, "Hostile input").

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat_core::auth::bearer::{bearer_token, MALFORMED, MISSING};
use chat_core::auth::{RefreshToken, TokenConfig, TokenError};
use chat_core::error::ApiError;
use chat_core::http;
use chat_core::ids::{
    ChatId, ClientMessageId, ConnectionId, DeviceId, IdError, MessageId, SessionId, UserId,
};
use chat_core::input::{
    self, AvatarUrl, DisplayName, GroupName, InvalidInput, MessageText, Password, StatusText,
    UserName, UserNamePrefix, MAX_MESSAGE_CHARS,
};
use chat_core::protocol::{
    parse_frame, ClientAction, FrameErrorKind, ServerEvent, TypingState, ACTIONS, MAX_FRAME_BYTES,
    MAX_PING_ID, SYNC_MAX_CHATS, SYNC_MAX_LIMIT,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

// ------------------------------------------------------------------ strategies

/// A ULID: 26 characters of Crockford base32, the first at most 7.
fn ulid() -> impl Strategy<Value = String> {
    "[0-7][0-9A-HJKMNP-TV-Z]{25}"
}

fn chat_id_str() -> impl Strategy<Value = String> {
    prop_oneof![
        ulid().prop_map(|u| format!("grp_{u}")),
        "[0-9A-HJKMNP-TV-Z]{26}".prop_map(|s| format!("dm_{s}")),
    ]
}

/// Strings a client might send where a string is expected: anything, printable ASCII,
/// and the shapes that sit at the edges of the rules (prefixes, lengths, padding,
/// control and bidi characters, NUL, very long).
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,80}",
        "(grp_|dm_|usr_|msg_|ses_|dev_)[0-9A-Za-z]{0,30}",
        "[\\u{0}-\\u{1f}\\u{7f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069} a]{0,10}",
        "\\s{0,5}[a-z]{0,5}\\s{0,5}",
        (1usize..3000).prop_map(|n| "é".repeat(n)),
        Just(String::new()),
    ]
}

/// Any JSON value, nested a few levels, with object keys that often name the fields
/// the parsers look for.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "action",
            "chatId",
            "clientMessageId",
            "text",
            "position",
            "state",
            "chats",
            "limit",
            "cursor",
            "id",
            "userName",
            "password",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z$]{0,12}",
    ]
}

/// A value for a frame field: usually one of the right type (valid or nearly so),
/// otherwise anything.
fn field_value(valid: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => valid.prop_map(Some),
        2 => arb_json().prop_map(Some),
        1 => Just(None),
    ]
}

fn position_value() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        (0u64..1000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!("3")),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
    ]
    .boxed()
}

/// A well-formed frame of a known action whose field values are hostile.
fn structured_frame() -> impl Strategy<Value = Map<String, Value>> {
    let chat = || {
        field_value(
            prop_oneof![
                chat_id_str().prop_map(Value::String),
                hostile_string().prop_map(Value::String)
            ]
            .boxed(),
        )
    };
    let cmid = field_value(
        prop_oneof![
            "[A-Za-z0-9._:-]{1,64}",
            "[A-Za-z0-9._:-]{65,70}",
            hostile_string()
        ]
        .prop_map(Value::String)
        .boxed(),
    );
    let text = field_value(
        prop_oneof![".{1,200}", hostile_string()]
            .prop_map(Value::String)
            .boxed(),
    );
    let state = field_value(
        prop_oneof![
            Just("started".to_owned()),
            Just("stopped".to_owned()),
            hostile_string()
        ]
        .prop_map(Value::String)
        .boxed(),
    );
    let known = prop::collection::vec(
        prop_oneof![
            (chat_id_str(), 0u64..1000).prop_map(|(c, p)| json!({"chatId": c, "position": p})),
            arb_json(),
        ],
        0..5,
    )
    .prop_map(Value::Array)
    .boxed();
    let limit = field_value(
        prop_oneof![
            (0u64..=u64::from(SYNC_MAX_LIMIT) + 1).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
        ]
        .boxed(),
    );
    let cursor = field_value(hostile_string().prop_map(Value::String).boxed());
    let ping_id = field_value(
        prop_oneof![
            "[a-z0-9]{0,70}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            Just(json!(1.25)),
        ]
        .boxed(),
    );
    let extra = prop::collection::vec((key(), arb_json()), 0..2);
    (
        prop::sample::select(ACTIONS.to_vec()),
        (chat(), cmid, text, state),
        (field_value(position_value()), field_value(known), limit),
        (cursor, ping_id, extra),
    )
        .prop_map(
            |(action, (chat, cmid, text, state), (pos, chats, limit), (cursor, id, extra))| {
                let mut m = Map::new();
                // Unknown fields come first so the known ones are not overwritten.
                for (k, v) in extra {
                    m.insert(k, v);
                }
                m.insert("action".into(), json!(action));
                let mut put = |k: &str, v: Option<Value>| {
                    match v {
                        Some(v) => m.insert(k.into(), v),
                        None => m.remove(k),
                    };
                };
                match action {
                    "sendMessage" => {
                        put("chatId", chat);
                        put("clientMessageId", cmid);
                        put("text", text);
                    }
                    "ack" | "read" => {
                        put("chatId", chat);
                        put("position", pos);
                    }
                    "typing" => {
                        put("chatId", chat);
                        put("state", state);
                    }
                    "sync" => {
                        put("chats", chats);
                        put("limit", limit);
                        put("cursor", cursor);
                    }
                    "editMessage" => {
                        put("chatId", chat);
                        put("position", pos);
                        put("text", text);
                    }
                    "deleteMessage" => {
                        put("chatId", chat);
                        put("position", pos);
                    }
                    "authenticate" => put("token", cursor),
                    _ => put("id", id),
                }
                m
            },
        )
}

/// A frame as a client would write it for `a` (the inverse of `parse_frame`).
fn to_frame(a: &ClientAction) -> Value {
    match a {
        ClientAction::SendMessage {
            chat_id,
            client_message_id,
            text,
        } => {
            json!({"action": "sendMessage", "chatId": chat_id, "clientMessageId": client_message_id, "text": text})
        }
        ClientAction::SendWithAttachments {
            chat_id,
            client_message_id,
            text,
            attachments,
        } => {
            json!({"action": "sendMessage", "chatId": chat_id, "clientMessageId": client_message_id, "text": text, "attachments": attachments})
        }
        ClientAction::Ack { chat_id, position } => {
            json!({"action": "ack", "chatId": chat_id, "position": position})
        }
        ClientAction::Read { chat_id, position } => {
            json!({"action": "read", "chatId": chat_id, "position": position})
        }
        ClientAction::Typing { chat_id, state } => {
            json!({"action": "typing", "chatId": chat_id, "state": state})
        }
        ClientAction::Sync {
            chats,
            limit,
            cursor,
        } => json!({"action": "sync", "chats": chats, "limit": limit, "cursor": cursor}),
        ClientAction::Ping { id } => json!({"action": "ping", "id": id}),
        ClientAction::EditMessage {
            chat_id,
            position,
            text,
        } => {
            json!({"action": "editMessage", "chatId": chat_id, "position": position, "text": text})
        }
        ClientAction::DeleteMessage { chat_id, position } => {
            json!({"action": "deleteMessage", "chatId": chat_id, "position": position})
        }
        ClientAction::Authenticate { token } => json!({"action": "authenticate", "token": token}),
    }
}

/// Fields each action may name in `validation_failed`.
fn fields_of(action: &str) -> &'static [&'static str] {
    match action {
        "sendMessage" => &["chatId", "clientMessageId", "text"],
        "ack" | "read" => &["chatId", "position"],
        "typing" => &["chatId", "state"],
        "sync" => &["chats", "chatId", "position", "limit", "cursor"],
        "ping" => &["id"],
        "editMessage" => &["chatId", "position", "text"],
        "deleteMessage" => &["chatId", "position"],
        "authenticate" => &["token"],
        _ => &[],
    }
}

// ------------------------------------------------------------------ frame checks

/// The contract of `parse_frame` on any input; returns the parse.
fn check_frame(raw: &str) -> Result<ClientAction, String> {
    match parse_frame(raw) {
        Ok(action) => {
            // Accepted frames carry a known action and survive a round trip.
            assert!(ACTIONS.contains(&action.name()));
            let again = parse_frame(&to_frame(&action).to_string());
            assert_eq!(again.as_ref(), Ok(&action), "round trip of {raw:?}");
            Ok(action)
        }
        Err(e) => {
            let code = e.code();
            assert!(
                [
                    "invalid_json",
                    "unknown_action",
                    "validation_failed",
                    "payload_too_large"
                ]
                .contains(&code),
                "undocumented code {code}"
            );
            if let FrameErrorKind::Invalid(i) = &e.kind {
                assert!(!i.reason.is_empty());
                if let Some(a) = &e.action {
                    assert!(
                        fields_of(a).contains(&i.field),
                        "{a}: field {} is not one of its fields",
                        i.field
                    );
                } else {
                    assert_eq!(i.field, "action");
                }
            }
            // The error event is one JSON object of the documented shape.
            let ev: Value = serde_json::from_str(&e.to_event().to_json()).expect("event JSON");
            assert_eq!(ev["type"], "error");
            assert_eq!(ev["code"], code);
            assert!(ev["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(ev["field"].is_string(), code == "validation_failed");
            if let Some(a) = &e.action {
                assert!(a.chars().count() <= 64, "echoed action is bounded");
            }
            Err(code.to_owned())
        }
    }
}

proptest! {
    #[test]
    fn frames_from_arbitrary_strings(raw in any::<String>()) {
        let _ = check_frame(&raw);
    }

    #[test]
    fn frames_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        // What ws-message does with a binary frame: lossy text, then parse.
        let _ = check_frame(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn frames_from_arbitrary_json(v in arb_json()) {
        let r = check_frame(&v.to_string());
        if !v.is_object() {
            prop_assert_eq!(r.unwrap_err(), "invalid_json");
        }
    }

    #[test]
    fn mutated_valid_frames(
        frame in structured_frame(),
        cut in any::<prop::sample::Index>(),
        insert in prop::sample::select(vec!["", "\"", "{", "}", ",", ":", "\\", "\u{0}", "é", "]", "null", "1e999"]),
        remove in 0usize..4,
    ) {
        let text = Value::Object(frame).to_string();
        let chars: Vec<char> = text.chars().collect();
        let at = cut.index(chars.len() + 1);
        let end = (at + remove).min(chars.len());
        let mutated: String = chars[..at]
            .iter()
            .chain(insert.chars().collect::<Vec<_>>().iter())
            .chain(chars[end..].iter())
            .collect();
        let _ = check_frame(&mutated);
    }

    #[test]
    fn well_formed_frames_with_hostile_values(frame in structured_frame()) {
        let raw = Value::Object(frame.clone()).to_string();
        let action = frame["action"].as_str().unwrap().to_owned();
        match check_frame(&raw) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.name(), action.as_str());
                // What was accepted is exactly what was sent.
                match &parsed {
                    ClientAction::SendMessage { chat_id, client_message_id, text } => {
                        prop_assert_eq!(chat_id.as_str(), frame["chatId"].as_str().unwrap());
                        prop_assert_eq!(client_message_id.as_str(), frame["clientMessageId"].as_str().unwrap());
                        prop_assert_eq!(text.as_str(), frame["text"].as_str().unwrap());
                        prop_assert!(text.as_str().chars().count() <= MAX_MESSAGE_CHARS);
                    }
                    ClientAction::SendWithAttachments { chat_id, client_message_id, attachments, .. } => {
                        prop_assert_eq!(chat_id.as_str(), frame["chatId"].as_str().unwrap());
                        prop_assert_eq!(client_message_id.as_str(), frame["clientMessageId"].as_str().unwrap());
                        let sent = frame["attachments"].as_array().map(Vec::len).unwrap_or(0);
                        prop_assert_eq!(attachments.len(), sent);
                        prop_assert!((1..=10).contains(&attachments.len()));
                    }
                    ClientAction::Ack { chat_id, position } | ClientAction::Read { chat_id, position } => {
                        prop_assert_eq!(chat_id.as_str(), frame["chatId"].as_str().unwrap());
                        prop_assert_eq!(Some(*position), frame["position"].as_u64());
                    }
                    ClientAction::Typing { state, .. } => {
                        let s = if *state == TypingState::Started { "started" } else { "stopped" };
                        prop_assert_eq!(frame["state"].as_str(), Some(s));
                    }
                    ClientAction::Sync { chats, limit, .. } => {
                        prop_assert!((1..=SYNC_MAX_LIMIT).contains(limit));
                        prop_assert!(chats.len() <= SYNC_MAX_CHATS);
                    }
                    ClientAction::Ping { id } => {
                        prop_assert!(id.as_ref().is_none_or(|i| i.chars().count() <= MAX_PING_ID || frame["id"].is_number()));
                    }
                    ClientAction::EditMessage { chat_id, position, text } => {
                        prop_assert_eq!(chat_id.as_str(), frame["chatId"].as_str().unwrap());
                        prop_assert_eq!(Some(*position), frame["position"].as_u64());
                        prop_assert!(text.as_str().chars().count() <= MAX_MESSAGE_CHARS);
                    }
                    ClientAction::DeleteMessage { chat_id, position } => {
                        prop_assert_eq!(chat_id.as_str(), frame["chatId"].as_str().unwrap());
                        prop_assert_eq!(Some(*position), frame["position"].as_u64());
                    }
                    ClientAction::Authenticate { token } => {
                        prop_assert_eq!(Some(token.as_str()), frame["token"].as_str());
                        prop_assert!(!token.is_empty());
                    }
                }
            }
            Err(code) => {
                prop_assert_eq!(code, "validation_failed");
                let e = parse_frame(&raw).unwrap_err();
                prop_assert_eq!(e.action.as_deref(), Some(action.as_str()));
                // A well-formed clientMessageId is echoed so the client can match the error.
                let cmid = frame.get("clientMessageId").and_then(Value::as_str)
                    .and_then(|s| ClientMessageId::parse(s).ok());
                prop_assert_eq!(e.client_message_id, cmid);
            }
        }
    }
}

#[test]
fn frame_size_limit_is_exact() {
    let frame = |len: usize| {
        let base = r#"{"action":"ping","pad":""}"#.len();
        format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(len - base))
    };
    assert!(parse_frame(&frame(MAX_FRAME_BYTES)).is_ok());
    let e = parse_frame(&frame(MAX_FRAME_BYTES + 1)).unwrap_err();
    assert_eq!(e.code(), "payload_too_large");
    // Megabytes of garbage are refused on their size, before any JSON parsing.
    let e = parse_frame(&"[".repeat(10 * MAX_FRAME_BYTES)).unwrap_err();
    assert_eq!(e.code(), "payload_too_large");
    // Deep nesting within the size limit is invalid JSON, not a stack overflow.
    let deep = format!(
        r#"{{"action":"ping","x":{}{}}}"#,
        "[".repeat(60_000),
        "]".repeat(60_000)
    );
    assert!(deep.len() <= MAX_FRAME_BYTES);
    assert_eq!(parse_frame(&deep).unwrap_err().code(), "invalid_json");
}

#[test]
fn frame_field_limits_are_exact() {
    let chat = ChatId::new_group().to_string();
    let sync = |n: usize| {
        let chats: Vec<Value> = (0..n)
            .map(|_| json!({"chatId": chat, "position": 1}))
            .collect();
        json!({"action": "sync", "chats": chats}).to_string()
    };
    assert!(parse_frame(&sync(SYNC_MAX_CHATS)).is_ok());
    assert_eq!(
        parse_frame(&sync(SYNC_MAX_CHATS + 1)).unwrap_err().code(),
        "validation_failed"
    );
    let ping = |n: usize| json!({"action": "ping", "id": "é".repeat(n)}).to_string();
    assert!(parse_frame(&ping(MAX_PING_ID)).is_ok());
    assert!(parse_frame(&ping(MAX_PING_ID + 1)).is_err());
    let send = |cmid: &str| {
        json!({"action": "sendMessage", "chatId": chat, "clientMessageId": cmid, "text": "x"})
            .to_string()
    };
    assert!(parse_frame(&send(&"c".repeat(ClientMessageId::MAX_LEN))).is_ok());
    assert!(parse_frame(&send(&"c".repeat(ClientMessageId::MAX_LEN + 1))).is_err());
    for (limit, ok) in [
        (0, false),
        (1, true),
        (SYNC_MAX_LIMIT, true),
        (SYNC_MAX_LIMIT + 1, false),
    ] {
        let raw = json!({"action": "sync", "limit": limit}).to_string();
        assert_eq!(parse_frame(&raw).is_ok(), ok, "limit {limit}");
    }
    // Positions: 0 and u64::MAX parse (the chat decides what is beyond its end); a
    // number past u64 is refused.
    for (pos, ok) in [
        ("0", true),
        ("18446744073709551615", true),
        ("18446744073709551616", false),
    ] {
        let raw = format!(r#"{{"action":"read","chatId":"{chat}","position":{pos}}}"#);
        assert_eq!(parse_frame(&raw).is_ok(), ok, "position {pos}");
    }
}

// ------------------------------------------------------------------ newtypes

/// A refused value names the field and maps to `400 validation_failed` on it.
fn check_refusal(e: &InvalidInput, field: &str) {
    assert_eq!(e.field, field);
    assert!(!e.reason.is_empty());
    let api = ApiError::from(e.clone());
    assert_eq!((api.status(), api.code()), (400, "validation_failed"));
    assert_eq!(api.body().error.field, Some(field));
}

fn check_id_refusal(e: &IdError, kind: &str) {
    assert_eq!(e.kind, kind);
    let api = ApiError::from(e.clone());
    assert_eq!((api.status(), api.code()), (400, "validation_failed"));
}

/// Characters that reorder how text around them is shown (bidi embeddings, overrides
/// and isolates): in a name they let one user pass for another.
fn has_bidi_control(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

/// A trimmed, control-free text of `min..=max` characters, as the name rules say.
fn is_clean_text(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    s == s.trim()
        && (min..=max).contains(&n)
        && !s.chars().any(char::is_control)
        && !has_bidi_control(s)
}

/// Serde agrees with `parse`: a JSON string deserializes exactly when it parses, to
/// the same value, and serializes back to the same string.
fn serde_agrees<T>(raw: &str, parsed: Option<&T>)
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let de: Result<T, _> = serde_json::from_value(Value::String(raw.to_owned()));
    match (parsed, de) {
        (Some(p), Ok(d)) => {
            assert_eq!(p, &d);
            let back = serde_json::to_value(&d).unwrap();
            assert_eq!(serde_json::from_value::<T>(back).unwrap(), d);
        }
        (None, Err(_)) => {}
        (p, d) => panic!("parse and serde disagree on {raw:?}: {p:?} vs {d:?}"),
    }
}

macro_rules! text_newtype_property {
    ($test:ident, $ty:ty, $field:literal, $near:expr, |$v:ident| $invariant:expr) => {
        proptest! {
            #[test]
            fn $test(raw in prop_oneof![hostile_string(), $near]) {
                match <$ty>::parse(&raw) {
                    Ok(value) => {
                        let $v = value.as_str();
                        prop_assert!($invariant, "accepted {:?} as {:?}", raw, $v);
                        // Parsing what was accepted gives the same value.
                        prop_assert_eq!(<$ty>::parse(value.as_str()), Ok(value.clone()));
                        serde_agrees::<$ty>(&raw, Some(&value));
                    }
                    Err(e) => {
                        check_refusal(&e, $field);
                        serde_agrees::<$ty>(&raw, None);
                    }
                }
            }
        }
    };
}

fn user_name_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

text_newtype_property!(
    user_names,
    UserName,
    "userName",
    "[A-Za-z0-9_.\\- ]{0,40}",
    |v| {
        (3..=32).contains(&v.len()) && user_name_chars(v) && v.as_bytes()[0].is_ascii_alphanumeric()
    }
);
text_newtype_property!(
    display_names,
    DisplayName,
    "displayName",
    "\\s?.{0,70}\\s?",
    |v| { is_clean_text(v, 1, 64) }
);
text_newtype_property!(group_names, GroupName, "name", "\\s?.{0,110}\\s?", |v| {
    is_clean_text(v, 1, 100)
});
text_newtype_property!(
    status_texts,
    StatusText,
    "statusText",
    "\\s?.{0,150}\\s?",
    |v| { is_clean_text(v, 0, 140) }
);
text_newtype_property!(
    avatar_urls,
    AvatarUrl,
    "avatarUrl",
    "(https?://)?[a-z@.]{0,12}(/[ -~]{0,30})?",
    |v| {
        let host = v["https://".len()..].split(['/', '?', '#']).next().unwrap();
        v.starts_with("https://")
            && v.len() <= 2048
            && !host.is_empty()
            && !host.contains('@')
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"<>".contains(c))
    }
);
text_newtype_property!(message_texts, MessageText, "text", "\\s{0,3}.{0,50}", |v| {
    !v.trim().is_empty()
        && !v.contains('\0')
        && !v.chars().any(chat_core::input::is_forbidden_control)
        && v.chars().count() <= MAX_MESSAGE_CHARS
});

proptest! {
    #[test]
    fn user_name_prefixes(raw in prop_oneof![hostile_string(), "[A-Za-z0-9_.\\-]{0,34}"]) {
        match UserNamePrefix::parse(&raw) {
            Ok(p) => {
                prop_assert!((2..=32).contains(&p.as_str().len()) && user_name_chars(p.as_str()));
                prop_assert_eq!(p.as_str(), raw.to_ascii_lowercase());
            }
            Err(e) => check_refusal(&e, "prefix"),
        }
    }

    #[test]
    fn passwords(raw in prop_oneof![hostile_string(), ".{0,140}"]) {
        match Password::parse(&raw) {
            Ok(p) => {
                let n = raw.chars().count();
                prop_assert!((8..=128).contains(&n));
                prop_assert!(raw.chars().any(|c| c != raw.chars().next().unwrap()));
                prop_assert_eq!(p.expose(), raw.as_str());
                // Never shown.
                prop_assert_eq!(format!("{p:?}"), "Password(***)");
            }
            Err(e) => check_refusal(&e, "password"),
        }
        match Password::for_login(&raw) {
            Ok(p) => {
                prop_assert!((1..=128).contains(&raw.chars().count()));
                prop_assert_eq!(p.expose(), raw.as_str());
            }
            Err(e) => check_refusal(&e, "password"),
        }
    }

    #[test]
    fn page_limits_and_positions(raw in prop_oneof![hostile_string(), "[+-]?[0-9]{0,22}"], max in 1u32..1000) {
        match input::page_limit(Some(&raw), 1, max) {
            Ok(n) => prop_assert!((1..=max).contains(&n) && raw.parse::<u32>() == Ok(n)),
            Err(e) => check_refusal(&e, "limit"),
        }
        match input::position(&raw, "after") {
            Ok(p) => prop_assert_eq!(raw.parse::<u64>(), Ok(p)),
            Err(e) => check_refusal(&e, "after"),
        }
    }

    #[test]
    fn every_limit_in_range_is_accepted(n in 1u32..=100) {
        prop_assert_eq!(input::page_limit(Some(&n.to_string()), 20, 100), Ok(n));
    }
}

macro_rules! id_property {
    ($test:ident, $ty:ty, $prefix:literal, $kind:literal) => {
        proptest! {
            #[test]
            fn $test(raw in prop_oneof![
                hostile_string(),
                ulid().prop_map(|u| format!("{}{u}", $prefix)),
                "[a-z]{3,4}_[0-9A-Za-z]{24,28}",
            ]) {
                match <$ty>::parse(&raw) {
                    Ok(id) => {
                        prop_assert_eq!(id.as_str(), raw.as_str());
                        prop_assert!(raw.starts_with($prefix) && raw.len() == $prefix.len() + 26);
                        prop_assert_eq!(raw.parse::<$ty>(), Ok(id.clone()));
                        serde_agrees::<$ty>(&raw, Some(&id));
                    }
                    Err(e) => {
                        check_id_refusal(&e, $kind);
                        serde_agrees::<$ty>(&raw, None);
                    }
                }
            }
        }
    };
}

id_property!(user_ids, UserId, "usr_", "user id");
id_property!(message_ids, MessageId, "msg_", "message id");
id_property!(device_ids, DeviceId, "dev_", "device id");
id_property!(session_ids, SessionId, "ses_", "session id");

proptest! {
    #[test]
    fn chat_ids(raw in prop_oneof![hostile_string(), chat_id_str(), "(grp|dm)_[0-9A-Za-z]{24,28}"]) {
        match ChatId::parse(&raw) {
            Ok(id) => {
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(id.is_group(), raw.starts_with("grp_"));
                serde_agrees::<ChatId>(&raw, Some(&id));
            }
            Err(e) => {
                check_id_refusal(&e, "chat id");
                serde_agrees::<ChatId>(&raw, None);
            }
        }
    }

    #[test]
    fn direct_chat_ids_are_symmetric_and_valid(a in ulid(), b in ulid()) {
        let (a, b) = (UserId::parse(&format!("usr_{a}")).unwrap(), UserId::parse(&format!("usr_{b}")).unwrap());
        let ab = ChatId::direct(&a, &b);
        prop_assert_eq!(&ab, &ChatId::direct(&b, &a));
        prop_assert_eq!(ChatId::parse(ab.as_str()), Ok(ab.clone()));
        prop_assert!(!ab.is_group());
    }

    #[test]
    fn charset_ids(raw in prop_oneof![hostile_string(), "[A-Za-z0-9+/=._:-]{0,130}"]) {
        match ClientMessageId::parse(&raw) {
            Ok(id) => {
                prop_assert!((1..=64).contains(&raw.len()) && id.as_str() == raw);
                serde_agrees::<ClientMessageId>(&raw, Some(&id));
            }
            Err(e) => {
                check_id_refusal(&e, "clientMessageId");
                serde_agrees::<ClientMessageId>(&raw, None);
            }
        }
        match ConnectionId::parse(&raw) {
            Ok(id) => prop_assert!((1..=128).contains(&raw.len()) && id.as_str() == raw),
            Err(e) => check_id_refusal(&e, "connection id"),
        }
    }
}

#[test]
fn name_and_text_limits_are_exact() {
    // Lengths count characters, not bytes: multi-byte characters at the limit pass.
    type Accepts = fn(&str) -> bool;
    let cases: Vec<(&str, Accepts, usize)> = vec![
        ("displayName", |s| DisplayName::parse(s).is_ok(), 64),
        ("name", |s| GroupName::parse(s).is_ok(), 100),
        ("statusText", |s| StatusText::parse(s).is_ok(), 140),
        ("password", |s| Password::parse(s).is_ok(), 128),
        ("password (login)", |s| Password::for_login(s).is_ok(), 128),
        ("text", |s| MessageText::parse(s).is_ok(), MAX_MESSAGE_CHARS),
    ];
    for (what, ok, max) in cases {
        let at = format!("ab{}", "é".repeat(max - 2));
        assert!(ok(&at), "{what}: {max} characters are accepted");
        assert!(!ok(&format!("{at}x")), "{what}: {} are refused", max + 1);
    }
    assert!(UserName::parse(&"a".repeat(32)).is_ok());
    assert!(UserName::parse(&"a".repeat(33)).is_err());
    assert!(UserName::parse("abc").is_ok());
    assert!(UserName::parse("ab").is_err());
    let url = |n: usize| format!("https://example.com/{}", "a".repeat(n - 20));
    assert!(AvatarUrl::parse(&url(2048)).is_ok());
    assert!(AvatarUrl::parse(&url(2049)).is_err());
}

#[test]
fn names_refuse_text_direction_overrides() {
    // "Bob" followed by a right-to-left override shows as another name in most clients.
    for bad in ["alice\u{202e}bob", "\u{2066}admin\u{2069}", "x\u{202a}y"] {
        assert_eq!(
            DisplayName::parse(bad).unwrap_err().field,
            "displayName",
            "{bad:?}"
        );
        assert_eq!(GroupName::parse(bad).unwrap_err().field, "name", "{bad:?}");
        assert_eq!(
            StatusText::parse(bad).unwrap_err().field,
            "statusText",
            "{bad:?}"
        );
    }
    // Message text keeps them: right-to-left scripts use them legitimately.
    assert!(MessageText::parse("שלום \u{2066}abc\u{2069}").is_ok());
    // Marks without an override are fine in names (Arabic and Hebrew names use them).
    assert!(DisplayName::parse("\u{200f}שרה").is_ok());
}

// ------------------------------------------------------------------ REST helpers

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct LoginLike {
    user_name: String,
    password: String,
    #[serde(default, deserialize_with = "http::nullable")]
    avatar_url: Option<Option<String>>,
    #[serde(default)]
    limit: Option<u32>,
}

fn request(content_type: Option<&str>, body: Vec<u8>) -> lambda_http::Request {
    let mut b = ::http::Request::builder();
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(lambda_http::Body::from(body)).unwrap()
}

/// Every refusal of the REST body parser is a 400 or a 413, never more.
fn check_body(content_type: Option<&str>, body: Vec<u8>, max: usize) {
    let len = body.len();
    match http::parse_json::<LoginLike>(&request(content_type, body), max) {
        Ok(v) => {
            assert!(len <= max);
            assert!(v.limit.is_none_or(|_| true));
        }
        Err(e) => {
            match e.status() {
                400 => assert_eq!(e.code(), "invalid_json"),
                413 => {
                    assert_eq!(e.code(), "payload_too_large");
                    assert!(len > max);
                }
                s => panic!("status {s} for a client's body: {e}"),
            }
            // The answer is the one error shape.
            let r = http::error_response(&e);
            let v: Value = serde_json::from_slice(r.body().as_ref()).unwrap();
            assert_eq!(v["error"]["code"], e.code());
        }
    }
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/json; charset=utf-8".to_owned())),
        Just(Some("application/problem+json".to_owned())),
        Just(Some("text/plain".to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn rest_bodies_from_arbitrary_bytes(ct in content_type(), body in prop::collection::vec(any::<u8>(), 0..400), max in 0usize..500) {
        check_body(ct.as_deref(), body, max);
    }

    #[test]
    fn rest_bodies_from_arbitrary_json(ct in content_type(), v in arb_json()) {
        check_body(ct.as_deref(), v.to_string().into_bytes(), http::SMALL_BODY);
    }

    #[test]
    fn rest_bodies_with_hostile_values(
        user in arb_json(), password in arb_json(), avatar in prop::option::of(arb_json()),
        extra in prop::option::of((key(), arb_json())),
    ) {
        let mut m = Map::new();
        m.insert("userName".into(), user);
        m.insert("password".into(), password);
        if let Some(a) = avatar { m.insert("avatarUrl".into(), a); }
        if let Some((k, v)) = extra { m.insert(k, v); }
        check_body(Some("application/json"), Value::Object(m).to_string().into_bytes(), http::SMALL_BODY);
    }

    #[test]
    fn rest_cursors(raw in prop_oneof![hostile_string(), "[A-Za-z0-9_-]{0,60}"]) {
        match http::decode_cursor::<(String, u64)>(&raw, "cursor") {
            Ok(v) => prop_assert_eq!(http::decode_cursor::<(String, u64)>(&http::encode_cursor(&v), "cursor").unwrap(), v),
            Err(e) => {
                prop_assert_eq!((e.status(), e.code()), (400, "validation_failed"));
                prop_assert_eq!(e.body().error.field, Some("cursor"));
            }
        }
    }

    #[test]
    fn rest_cursors_round_trip(s in any::<String>(), n in any::<u64>()) {
        let c = http::encode_cursor(&(s.clone(), n));
        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(http::decode_cursor::<(String, u64)>(&c, "cursor").unwrap(), (s, n));
    }
}

#[test]
fn body_size_limit_is_exact() {
    let body = |len: usize| {
        let base = r#"{"userName":"","password":"p"}"#.len();
        format!(
            r#"{{"userName":"{}","password":"p"}}"#,
            "a".repeat(len - base)
        )
        .into_bytes()
    };
    let ok = http::parse_json::<LoginLike>(
        &request(Some("application/json"), body(http::SMALL_BODY)),
        http::SMALL_BODY,
    );
    assert!(ok.is_ok());
    let e = http::parse_json::<LoginLike>(
        &request(Some("application/json"), body(http::SMALL_BODY + 1)),
        http::SMALL_BODY,
    )
    .unwrap_err();
    assert_eq!((e.status(), e.code()), (413, "payload_too_large"));
}

// ------------------------------------------------------------------ credentials

proptest! {
    #[test]
    fn bearer_headers(value in prop_oneof![
        "[ -~]{0,60}",
        "(Bearer|bearer|BEARER|Basic|Token)?[ \\t]{0,2}[A-Za-z0-9._ -]{0,40}",
    ]) {
        let mut h = ::http::HeaderMap::new();
        let Ok(v) = ::http::HeaderValue::from_str(&value) else { return Ok(()); };
        h.insert(::http::header::AUTHORIZATION, v);
        match bearer_token(&h) {
            Ok(t) => {
                prop_assert!(!t.is_empty() && !t.contains(char::is_whitespace));
                prop_assert_eq!(t.split('.').count(), 3);
                prop_assert!(value.trim().to_ascii_lowercase().starts_with("bearer "));
            }
            Err(e) => {
                prop_assert_eq!((e.status(), e.code()), (401, "unauthorized"));
                prop_assert_eq!(e.to_string(), MALFORMED);
            }
        }
    }

    #[test]
    fn well_formed_bearer_headers_yield_the_token(t in "[A-Za-z0-9_-]{1,20}\\.[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,20}") {
        let mut h = ::http::HeaderMap::new();
        h.insert(::http::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        prop_assert_eq!(bearer_token(&h).unwrap(), t.as_str());
    }
}

#[test]
fn no_authorization_header_is_missing() {
    let e = bearer_token(&::http::HeaderMap::new()).unwrap_err();
    assert_eq!(e.to_string(), MISSING);
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-hostile";

fn tokens() -> TokenConfig {
    TokenConfig::new(KEY, "chat", "chat-clients", 900, 3600).unwrap()
}

fn now_secs() -> i64 {
    chat_core::model::now_millis() / 1000
}

/// Claims with every field either right or hostile.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let now = now_secs();
    let time = move || {
        field_value(
            prop_oneof![
                (now - 100..now + 100).prop_map(Value::from),
                (now + 1000..now + 5000).prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                Just(json!("soon")),
            ]
            .boxed(),
        )
    };
    let s = |valid: BoxedStrategy<String>| {
        field_value(
            prop_oneof![valid, hostile_string()]
                .prop_map(Value::String)
                .boxed(),
        )
    };
    (
        s(ulid().prop_map(|u| format!("usr_{u}")).boxed()),
        s(ulid().prop_map(|u| format!("ses_{u}")).boxed()),
        field_value(prop_oneof![any::<u64>().prop_map(Value::from), Just(json!(-1))].boxed()),
        s(Just("chat".to_owned()).boxed()),
        field_value(
            prop_oneof![
                Just(json!("chat-clients")),
                Just(json!(["chat-clients"])),
                Just(json!("other"))
            ]
            .boxed(),
        ),
        (time(), time(), time()),
    )
        .prop_map(|(sub, sid, ver, iss, aud, (iat, nbf, exp))| {
            let mut m = Map::new();
            for (k, v) in [
                ("sub", sub),
                ("sid", sid),
                ("ver", ver),
                ("iss", iss),
                ("aud", aud),
                ("iat", iat),
                ("nbf", nbf),
                ("exp", exp),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            m
        })
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

proptest! {
    #[test]
    fn access_tokens_from_arbitrary_strings(raw in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
    ]) {
        // Nothing unsigned gets through, and nothing panics.
        prop_assert!(matches!(tokens().verify(&raw), Err(TokenError::Invalid | TokenError::Expired)));
    }

    #[test]
    fn signed_tokens_with_hostile_headers_and_claims(
        claims in claims(),
        alg in prop::sample::select(vec!["HS256", "HS384", "HS512"]),
        typ in prop::option::of(prop::sample::select(vec!["JWT", "jwt", "JWS", ""])),
    ) {
        let mut header = jsonwebtoken::Header::new(match alg {
            "HS256" => jsonwebtoken::Algorithm::HS256,
            "HS384" => jsonwebtoken::Algorithm::HS384,
            _ => jsonwebtoken::Algorithm::HS512,
        });
        header.typ = typ.map(str::to_owned);
        let token = jsonwebtoken::encode(&header, &Value::Object(claims.clone()), &jsonwebtoken::EncodingKey::from_secret(KEY)).unwrap();
        let now = now_secs();
        match tokens().verify(&token) {
            Ok(c) => {
                // Only an HS256 token with every claim right is accepted.
                prop_assert_eq!(alg, "HS256");
                prop_assert_eq!(&c.iss, "chat");
                prop_assert_eq!(&c.aud, "chat-clients");
                prop_assert!(c.exp >= now - 5 && c.nbf <= now + 5);
                prop_assert_eq!(Value::from(c.sub.clone()), claims["sub"].clone());
                prop_assert_eq!(Value::from(c.ver), claims["ver"].clone());
            }
            Err(TokenError::Expired) => {
                prop_assert!(claims.get("exp").and_then(Value::as_i64).is_some_and(|e| e < now));
            }
            Err(TokenError::Invalid) => {}
        }
    }

    #[test]
    fn unsigned_and_resigned_tokens_are_refused(
        claims in claims(),
        alg in prop::sample::select(vec!["none", "None", "NONE", "RS256", "ES256", "PS256", "EdDSA", "HS256 ", ""]),
        sig in prop_oneof![Just(String::new()), "[A-Za-z0-9_-]{1,86}"],
    ) {
        let raw = format!("{}.{}.{sig}", b64(&json!({"alg": alg, "typ": "JWT"})), b64(&Value::Object(claims)));
        prop_assert_eq!(tokens().verify(&raw), Err(TokenError::Invalid));
    }

    #[test]
    fn issued_tokens_round_trip(u in ulid(), s in ulid(), ver in any::<u64>()) {
        let user = UserId::parse(&format!("usr_{u}")).unwrap();
        let session = SessionId::parse(&format!("ses_{s}")).unwrap();
        let t = tokens().issue(&user, &session, ver, chat_core::model::now_millis());
        let c = tokens().verify(&t).unwrap();
        prop_assert_eq!(c.user_id().unwrap(), user);
        prop_assert_eq!(c.session_id().unwrap(), session);
        prop_assert_eq!(c.ver, ver);
        // Another key, issuer or audience refuses it.
        for other in [
            TokenConfig::new(b"another key of at least thirty-two bytes", "chat", "chat-clients", 900, 3600).unwrap(),
            TokenConfig::new(KEY, "other", "chat-clients", 900, 3600).unwrap(),
            TokenConfig::new(KEY, "chat", "other", 900, 3600).unwrap(),
        ] {
            prop_assert_eq!(other.verify(&t), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn refresh_tokens(raw in prop_oneof![
        hostile_string(),
        (ulid(), "[A-Za-z0-9_-]{40,46}").prop_map(|(u, s)| format!("ses_{u}.{s}")),
    ]) {
        match RefreshToken::parse(&raw) {
            Ok(t) => {
                prop_assert_eq!(t.expose(), raw.clone());
                let shown = format!("{:?}", t);
                prop_assert!(!shown.contains(raw.split_once('.').unwrap().1));
            }
            Err(e) => {
                prop_assert_eq!((e.status(), e.code()), (401, "invalid_refresh_token"));
            }
        }
    }
}

#[test]
fn generated_refresh_tokens_parse() {
    for _ in 0..100 {
        let t = RefreshToken::generate(SessionId::generate());
        assert_eq!(RefreshToken::parse(&t.expose()).unwrap(), t);
    }
}

// ------------------------------------------------------------------ server events

proptest! {
    #[test]
    fn error_events_are_always_json(message in any::<String>(), action in prop::option::of(any::<String>())) {
        for e in [
            ApiError::InvalidJson(message.clone()),
            ApiError::NotFound(message.clone()),
            ApiError::Unauthorized(message.clone()),
            ApiError::Validation(InvalidInput::new("text", message.clone())),
        ] {
            let ev: Value = serde_json::from_str(&ServerEvent::error(&e, action.as_deref(), None).to_json()).unwrap();
            prop_assert_eq!(&ev["type"], "error");
            prop_assert!(e.status() < 500);
        }
    }
}
