//! The offline-message event this function consumes: one per recipient without a live
//! connection, published by the send path (WebSocket and REST) to `OFFLINE_TOPIC_ARN`.
//!
//! TODO(realtime merge): replace this struct by `chat_core::protocol::OfflineMessageEvent`
//! once `shared/src/protocol.rs` lands on main; the field names below follow the agreed
//! shape (camelCase JSON), with a few aliases so either spelling of a field parses.

use chat_core::ids::{ChatId, MessageId, UserId};
use chat_core::model::{ChatKind, Millis};
use serde::{Deserialize, Deserializer};

/// One offline recipient of one message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineEvent {
    /// The event's kind, `"offlineMessage"` (checked by [`OfflineEvent::parse`]).
    #[serde(default)]
    pub kind: Option<String>,
    /// The event format's version.
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(alias = "recipient", alias = "userId")]
    pub recipient_id: UserId,
    pub chat_id: ChatId,
    pub chat_kind: ChatKind,
    /// Groups only.
    #[serde(default, alias = "name")]
    pub chat_name: Option<String>,
    pub message_id: MessageId,
    pub position: u64,
    pub sender_id: UserId,
    #[serde(rename = "senderDisplayName", alias = "senderName")]
    pub sender_name: String,
    /// The start of the text, already cut by the sender side (cut again here).
    pub preview: String,
    #[serde(deserialize_with = "time_millis")]
    pub sent_at: Millis,
}

/// RFC 3339 (the APIs' convention) or epoch milliseconds.
fn time_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Ms(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Ms(ms) => Ok(ms),
        Raw::Text(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(serde::de::Error::custom),
    }
}

impl OfflineEvent {
    /// Parse an SNS record's `Message` (the JSON the send path published).
    pub fn parse(message: &str) -> Result<Self, serde_json::Error> {
        let e: Self = serde_json::from_str(message)?;
        match e.kind.as_deref() {
            None | Some(Self::KIND) => Ok(e),
            Some(_) => Err(serde::de::Error::custom("not an offlineMessage event")),
        }
    }

    pub const KIND: &'static str = "offlineMessage";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "kind": "offlineMessage",
            "version": 1,
            "recipientId": UserId::generate(),
            "chatId": ChatId::new_group(),
            "chatKind": "group",
            "chatName": "Climbing",
            "messageId": MessageId::generate(),
            "position": 7,
            "senderId": UserId::generate(),
            "senderDisplayName": "Ada",
            "preview": "see you at 6",
            "sentAt": "2025-01-02T03:04:05.678Z"
        })
    }

    #[test]
    fn parses_the_agreed_shape() {
        let e = OfflineEvent::parse(&sample().to_string()).unwrap();
        assert_eq!(e.position, 7);
        assert_eq!(e.chat_kind, ChatKind::Group);
        assert_eq!(e.chat_name.as_deref(), Some("Climbing"));
        assert_eq!(e.sent_at, 1_735_787_045_678);
    }

    #[test]
    fn accepts_aliases_and_epoch_millis() {
        let mut v = sample();
        let o = v.as_object_mut().unwrap();
        let r = o.remove("recipientId").unwrap();
        o.insert("recipient".into(), r);
        let n = o.remove("senderDisplayName").unwrap();
        o.insert("senderName".into(), n);
        o.remove("kind");
        o.remove("version");
        o.insert("sentAt".into(), serde_json::json!(1_735_787_045_678_i64));
        let e = OfflineEvent::parse(&v.to_string()).unwrap();
        assert_eq!(e.sender_name, "Ada");
        assert_eq!(e.sent_at, 1_735_787_045_678);
    }

    #[test]
    fn rejects_malformed_events() {
        assert!(OfflineEvent::parse("not json").is_err());
        let mut v = sample();
        v["chatId"] = "chat-1".into();
        assert!(OfflineEvent::parse(&v.to_string()).is_err());
        let mut v = sample();
        v.as_object_mut().unwrap().remove("messageId");
        assert!(OfflineEvent::parse(&v.to_string()).is_err());
        let mut v = sample();
        v["kind"] = "somethingElse".into();
        assert!(OfflineEvent::parse(&v.to_string()).is_err());
    }
}
