//! The offline-message event this function consumes (`chat_core::protocol`'s
//! `OfflineMessageEvent`): one per recipient without a live connection, published by
//! the send path (WebSocket and REST) to `OFFLINE_TOPIC_ARN`.

pub use chat_core::protocol::OfflineMessageEvent as OfflineEvent;

/// Parse an SNS record's `Message`; anything but an `offlineMessage` event is an error.
pub fn parse(message: &str) -> Result<OfflineEvent, serde_json::Error> {
    let e: OfflineEvent = serde_json::from_str(message)?;
    if e.kind != OfflineEvent::KIND {
        return Err(serde::de::Error::custom("not an offlineMessage event"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::ids::{ChatId, MessageId, UserId};
    use chat_core::model::ChatKind;

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
    fn parses_the_event() {
        let e = parse(&sample().to_string()).unwrap();
        assert_eq!(e.position, 7);
        assert_eq!(e.chat_kind, ChatKind::Group);
        assert_eq!(e.chat_name.as_deref(), Some("Climbing"));
        assert_eq!(e.sent_at, 1_735_787_045_678);
    }

    #[test]
    fn rejects_malformed_events() {
        assert!(parse("not json").is_err());
        let mut v = sample();
        v["chatId"] = "chat-1".into();
        assert!(parse(&v.to_string()).is_err());
        let mut v = sample();
        v.as_object_mut().unwrap().remove("messageId");
        assert!(parse(&v.to_string()).is_err());
        let mut v = sample();
        v["kind"] = "somethingElse".into();
        assert!(parse(&v.to_string()).is_err());
    }
}
