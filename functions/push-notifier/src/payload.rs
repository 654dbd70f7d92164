//! What a push notification says and how it is packed for each platform (see
//! `docs/protocol.md`, "Push notifications").
//!
//! - Title: the sender's display name in a direct chat; the group's name in a group.
//! - Body: the text preview (direct) or `Sender: preview` (group). The preview is cut
//!   at [`PUSH_PREVIEW_CHARS`] characters, with `…` appended when cut.
//! - Deep link: `chatId` (plus `messageId`, `position`, `senderId`, `chatKind`) in the
//!   custom data.
//! - Badge: the recipient's unread total, computed by the caller.
//! - Collapse: the chat id, as APNs `apns-collapse-id` (SNS message attribute
//!   `AWS.SNS.MOBILE.APNS.COLLAPSE_ID`) and `thread-id`, and as FCM `collapse_key`
//!   and notification `tag`, so a burst in one chat replaces one banner instead of
//!   stacking many.
//!
//! The SNS message uses `MessageStructure=json`: a `default` text plus one JSON string
//! per platform key (`APNS` and `APNS_SANDBOX` for APNs endpoints, `GCM` for FCM
//! endpoints, in SNS's FCM HTTP v1 form `{"fcmV1Message": {"message": {...}}}`).

use crate::event::OfflineEvent;
use chat_core::ids::{ChatId, MessageId, UserId};
use chat_core::input::preview;
use chat_core::model::{ChatKind, PushPlatform, PREVIEW_CHARS};
use serde_json::{json, Value};

/// Characters of message text shown in a notification (the chat-list preview length).
pub const PUSH_PREVIEW_CHARS: usize = PREVIEW_CHARS;

/// SNS message attribute carrying the APNs `apns-collapse-id` header.
pub const APNS_COLLAPSE_ID: &str = "AWS.SNS.MOBILE.APNS.COLLAPSE_ID";
/// SNS message attribute carrying the APNs `apns-push-type` header.
pub const APNS_PUSH_TYPE: &str = "AWS.SNS.MOBILE.APNS.PUSH_TYPE";
/// SNS message attribute carrying the APNs `apns-priority` header.
pub const APNS_PRIORITY: &str = "AWS.SNS.MOBILE.APNS.PRIORITY";

/// One notification, platform-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub title: String,
    pub body: String,
    pub chat_id: ChatId,
    pub chat_kind: ChatKind,
    pub message_id: MessageId,
    pub position: u64,
    pub sender_id: UserId,
    /// Unread messages of the recipient; None leaves the app's badge as it is.
    pub badge: Option<u64>,
}

impl Notification {
    pub fn for_event(e: &OfflineEvent, badge: Option<u64>) -> Self {
        let sender = match e.sender_display_name.trim() {
            "" => "Someone",
            name => name,
        };
        let text = preview(&e.preview, PUSH_PREVIEW_CHARS);
        let (title, body) = match e.chat_kind {
            ChatKind::Direct => (sender.to_owned(), text),
            ChatKind::Group => {
                let name = e
                    .chat_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .unwrap_or("Group chat");
                (name.to_owned(), format!("{sender}: {text}"))
            }
        };
        Notification {
            title,
            body,
            chat_id: e.chat_id.clone(),
            chat_kind: e.chat_kind,
            message_id: e.message_id.clone(),
            position: e.position,
            sender_id: e.sender_id.clone(),
            badge,
        }
    }

    /// The per-chat collapse identifier (at most 64 bytes, as APNs requires: chat
    /// ids are 29 or 30 ASCII characters).
    pub fn collapse_id(&self) -> &str {
        self.chat_id.as_str()
    }

    /// The APNs payload.
    pub fn apns(&self) -> Value {
        let mut aps = json!({
            "alert": { "title": self.title, "body": self.body },
            "sound": "default",
            "thread-id": self.chat_id,
        });
        if let Some(badge) = self.badge {
            aps["badge"] = json!(badge);
        }
        json!({
            "aps": aps,
            "chatId": self.chat_id,
            "chatKind": self.chat_kind.as_str(),
            "messageId": self.message_id,
            "position": self.position,
            "senderId": self.sender_id,
        })
    }

    /// The FCM payload in SNS's FCM HTTP v1 form. FCM `data` values must be strings.
    pub fn fcm(&self) -> Value {
        let mut data = json!({
            "chatId": self.chat_id,
            "chatKind": self.chat_kind.as_str(),
            "messageId": self.message_id,
            "position": self.position.to_string(),
            "senderId": self.sender_id,
        });
        let mut android_notification = json!({ "tag": self.chat_id });
        if let Some(badge) = self.badge {
            data["badge"] = json!(badge.to_string());
            android_notification["notification_count"] = json!(badge);
        }
        json!({
            "fcmV1Message": {
                "message": {
                    "notification": { "title": self.title, "body": self.body },
                    "data": data,
                    "android": {
                        "collapse_key": self.chat_id,
                        "priority": "high",
                        "notification": android_notification,
                    },
                }
            }
        })
    }

    /// The `Message` of an SNS Publish with `MessageStructure=json` for one endpoint.
    pub fn sns_message(&self, platform: PushPlatform) -> String {
        let default = format!("{}: {}", self.title, self.body);
        let v = match platform {
            PushPlatform::Apns => {
                let apns = self.apns().to_string();
                json!({ "default": default, "APNS": apns, "APNS_SANDBOX": apns })
            }
            PushPlatform::Fcm => json!({ "default": default, "GCM": self.fcm().to_string() }),
        };
        v.to_string()
    }

    /// SNS message attributes (name, string value) for one endpoint.
    pub fn message_attributes(&self, platform: PushPlatform) -> Vec<(&'static str, String)> {
        match platform {
            PushPlatform::Apns => vec![
                (APNS_COLLAPSE_ID, self.collapse_id().to_owned()),
                (APNS_PUSH_TYPE, "alert".to_owned()),
                (APNS_PRIORITY, "10".to_owned()),
            ],
            PushPlatform::Fcm => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ChatKind, preview: &str) -> OfflineEvent {
        OfflineEvent {
            kind: OfflineEvent::KIND.into(),
            version: 1,
            recipient_id: UserId::generate(),
            chat_id: if kind == ChatKind::Group {
                ChatId::new_group()
            } else {
                ChatId::direct(&UserId::generate(), &UserId::generate())
            },
            chat_kind: kind,
            chat_name: (kind == ChatKind::Group).then(|| "Climbing".to_owned()),
            message_id: MessageId::generate(),
            position: 42,
            sender_id: UserId::generate(),
            sender_display_name: "Ada".into(),
            preview: preview.into(),
            sent_at: 0,
        }
    }

    #[test]
    fn direct_chats_are_titled_by_the_sender() {
        let n = Notification::for_event(&event(ChatKind::Direct, "hi there"), Some(3));
        assert_eq!(n.title, "Ada");
        assert_eq!(n.body, "hi there");
    }

    #[test]
    fn groups_are_titled_by_name_and_body_names_the_sender() {
        let n = Notification::for_event(&event(ChatKind::Group, "see you at 6"), None);
        assert_eq!(n.title, "Climbing");
        assert_eq!(n.body, "Ada: see you at 6");
        let mut e = event(ChatKind::Group, "x");
        e.chat_name = None;
        assert_eq!(Notification::for_event(&e, None).title, "Group chat");
    }

    #[test]
    fn previews_are_cut_with_an_ellipsis() {
        let long = "é".repeat(PUSH_PREVIEW_CHARS + 50);
        let n = Notification::for_event(&event(ChatKind::Direct, &long), None);
        assert_eq!(n.body.chars().count(), PUSH_PREVIEW_CHARS + 1);
        assert!(n.body.ends_with('…'));
        // An event preview already cut at the same length is not cut again.
        let again = Notification::for_event(&event(ChatKind::Direct, &n.body), None);
        assert_eq!(again.body, n.body);
        let exact = "a".repeat(PUSH_PREVIEW_CHARS);
        let n = Notification::for_event(&event(ChatKind::Direct, &exact), None);
        assert_eq!(n.body, exact);
    }

    #[test]
    fn apns_payload_shape() {
        let n = Notification::for_event(&event(ChatKind::Group, "hello"), Some(5));
        let msg: Value = serde_json::from_str(&n.sns_message(PushPlatform::Apns)).unwrap();
        assert_eq!(msg["default"], "Climbing: Ada: hello");
        assert_eq!(msg["APNS"], msg["APNS_SANDBOX"]);
        let apns: Value = serde_json::from_str(msg["APNS"].as_str().unwrap()).unwrap();
        assert_eq!(apns["aps"]["alert"]["title"], "Climbing");
        assert_eq!(apns["aps"]["alert"]["body"], "Ada: hello");
        assert_eq!(apns["aps"]["badge"], 5);
        assert_eq!(apns["aps"]["thread-id"], n.chat_id.as_str());
        assert_eq!(apns["chatId"], n.chat_id.as_str());
        assert_eq!(apns["messageId"], n.message_id.as_str());
        assert_eq!(apns["position"], 42);
        assert!(msg.get("GCM").is_none());
        let attrs = n.message_attributes(PushPlatform::Apns);
        assert!(attrs.contains(&(APNS_COLLAPSE_ID, n.chat_id.to_string())));
        assert!(attrs.contains(&(APNS_PUSH_TYPE, "alert".to_owned())));
        assert!(n.collapse_id().len() <= 64);
    }

    #[test]
    fn apns_without_badge_leaves_it_out() {
        let n = Notification::for_event(&event(ChatKind::Direct, "hello"), None);
        assert!(n.apns()["aps"].get("badge").is_none());
        assert!(n.fcm()["fcmV1Message"]["message"]["data"]
            .get("badge")
            .is_none());
    }

    #[test]
    fn fcm_payload_shape() {
        let n = Notification::for_event(&event(ChatKind::Direct, "hello"), Some(2));
        let msg: Value = serde_json::from_str(&n.sns_message(PushPlatform::Fcm)).unwrap();
        assert!(msg.get("APNS").is_none());
        let fcm: Value = serde_json::from_str(msg["GCM"].as_str().unwrap()).unwrap();
        let m = &fcm["fcmV1Message"]["message"];
        assert_eq!(m["notification"]["title"], "Ada");
        assert_eq!(m["notification"]["body"], "hello");
        assert_eq!(m["android"]["collapse_key"], n.chat_id.as_str());
        assert_eq!(m["android"]["notification"]["tag"], n.chat_id.as_str());
        assert_eq!(m["android"]["notification"]["notification_count"], 2);
        // FCM data values are all strings.
        for (k, v) in m["data"].as_object().unwrap() {
            assert!(v.is_string(), "data.{k} is not a string");
        }
        assert_eq!(m["data"]["chatId"], n.chat_id.as_str());
        assert_eq!(m["data"]["position"], "42");
        assert_eq!(m["data"]["badge"], "2");
        assert!(n.message_attributes(PushPlatform::Fcm).is_empty());
    }
}
