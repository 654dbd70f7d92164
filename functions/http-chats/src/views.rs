//! What the chat routes return: the JSON shapes of `docs/openapi.yaml`
//! (`ChatSummary`, `ChatDetail`, `Member`, `MessagePage`, ...), built from the domain
//! values the store hands back. camelCase fields, RFC 3339 times.

use chat_core::ids::{ChatId, UserId};
use chat_core::model::{as_rfc3339, Chat, ChatKind, Membership, Message, Millis, Profile, Role};
use serde::Serialize;
use std::collections::HashMap;

/// A chat as one member sees it (chat lists, and the head of `ChatDetail`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    /// The chat's own fields (`chatId`, `kind`, `name`, `lastPosition`, `lastMessage`,
    /// ...), inline.
    #[serde(flatten)]
    pub chat: Chat,
    /// The caller's role, read marker and mute flag.
    pub role: Role,
    pub read_position: u64,
    pub delivered_position: u64,
    /// Messages after the caller's read position (`lastPosition - readPosition`); the
    /// caller's own messages never count, as sending marks them read.
    pub unread_count: u64,
    pub muted: bool,
    /// Direct chats: the other member's profile (absent if that account is deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Profile>,
}

impl ChatSummary {
    pub fn new(chat: &Chat, me: &Membership, peer: Option<Profile>) -> Self {
        ChatSummary {
            chat: chat.clone(),
            role: me.role,
            read_position: me.read_position,
            delivered_position: me.delivered_position.max(me.read_position),
            unread_count: chat.last_position.saturating_sub(me.read_position),
            muted: me.muted,
            peer,
        }
    }
}

/// One member of a chat with their receipt positions, so a sender can count how many
/// members a message at position P reached (`deliveredPosition >= P`) and how many read
/// it (`readPosition >= P`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: UserId,
    pub role: Role,
    #[serde(with = "as_rfc3339")]
    pub joined_at: Millis,
    pub delivered_position: u64,
    pub read_position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// A chat with all its members.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatDetail {
    #[serde(flatten)]
    pub chat: ChatSummary,
    pub members: Vec<MemberView>,
}

impl ChatDetail {
    pub fn new(
        chat: &Chat,
        me: &Membership,
        members: Vec<Membership>,
        mut profiles: HashMap<UserId, Profile>,
    ) -> Self {
        let peer = match chat.kind {
            ChatKind::Direct => members
                .iter()
                .find(|m| m.user_id != me.user_id)
                .and_then(|m| profiles.get(&m.user_id).cloned()),
            ChatKind::Group => None,
        };
        let members = members
            .into_iter()
            .map(|m| MemberView {
                profile: profiles.remove(&m.user_id),
                user_id: m.user_id,
                role: m.role,
                joined_at: m.joined_at,
                delivered_position: m.delivered_position.max(m.read_position),
                read_position: m.read_position,
            })
            .collect();
        ChatDetail {
            chat: ChatSummary::new(chat, me, peer),
            members,
        }
    }
}

/// `GET /chats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatList {
    pub chats: Vec<ChatSummary>,
    /// Give this back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /chats/{chatId}/messages`: ascending by position.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the direction read (older for `before`
    /// and the latest page, newer for `after`).
    pub has_more: bool,
}

/// `PATCH /chats/{chatId}/members/me`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MyMembership {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub role: Role,
    pub muted: bool,
    pub read_position: u64,
    pub delivered_position: u64,
}

impl From<Membership> for MyMembership {
    fn from(m: Membership) -> Self {
        MyMembership {
            delivered_position: m.delivered_position.max(m.read_position),
            chat_id: m.chat_id,
            user_id: m.user_id,
            role: m.role,
            muted: m.muted,
            read_position: m.read_position,
        }
    }
}

/// `DELETE /chats/{chatId}/members/{userId}`: who went, who (if anyone) became admin,
/// and the system message that records it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRemoved {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub left: bool,
    pub promoted: Option<UserId>,
    pub message: Message,
}
