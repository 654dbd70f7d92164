//! The domain: users and profiles, chats and memberships, messages, WebSocket
//! connections, push devices and login sessions. These are the values the services
//! work with and (with `serde`, in camelCase) what the APIs return. How they are laid
//! out in DynamoDB is the store's business alone (`crate::store`).

use crate::ids::{ChatId, ClientMessageId, ConnectionId, DeviceId, MessageId, SessionId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; every stored time is one of these.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, the form every API shows times in.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serialize a `Millis` field as RFC 3339.
pub mod as_rfc3339 {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(serde::de::Error::custom)
    }
}

/// Serialize an `Option<Millis>` field as RFC 3339 or null.
pub mod as_rfc3339_opt {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&super::rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.timestamp_millis())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// A registered account, as the auth code sees it (includes secrets; never returned).
#[derive(Debug, Clone)]
pub struct UserAccount {
    pub user_id: UserId,
    pub user_name: String,
    pub password_hash: String,
    /// Incremented by "log out everywhere"; tokens carrying an older version are dead.
    pub token_version: u64,
    pub failed_logins: u32,
    pub locked_until: Option<Millis>,
    pub deleted: bool,
    pub profile: Profile,
}

/// What a user shows others about themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: UserId,
    pub user_name: String,
    pub display_name: String,
    #[serde(default)]
    pub status_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
}

/// Whether a user has a live connection, and when they were last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub online: bool,
    #[serde(with = "as_rfc3339_opt")]
    pub last_seen_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Direct,
    Group,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
        }
    }
}

/// The latest message of a chat, kept on the chat for chat lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    pub message_id: MessageId,
    pub position: u64,
    pub sender_id: Option<UserId>,
    /// The first characters of the text (`PREVIEW_CHARS`), or a system message's summary.
    pub preview: String,
    #[serde(with = "as_rfc3339")]
    pub sent_at: Millis,
}

/// Characters of a message kept as a preview on its chat and in push notifications.
pub const PREVIEW_CHARS: usize = 140;

/// A chat: direct (exactly two members, fixed) or group (2 to 100 members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    /// Groups only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_by: UserId,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
    pub member_count: u32,
    /// Position of the newest message; 0 for an empty chat. Positions are gap-free.
    pub last_position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessage>,
    /// When the chat last changed (a message or a membership change).
    #[serde(with = "as_rfc3339")]
    pub last_activity_at: Millis,
    /// How many changes to stored messages (edits, deletions) the chat has had; with
    /// `last_position` (which numbers appends) it is the chat's change sequence that
    /// `sync` catches up from (docs/data-model.md, "Change sequence").
    #[serde(default)]
    pub change_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// One user's membership in one chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub role: Role,
    #[serde(with = "as_rfc3339")]
    pub joined_at: Millis,
    /// Everything up to here reached at least one of the member's devices.
    pub delivered_position: u64,
    /// Everything up to here was read by the member.
    pub read_position: u64,
    pub muted: bool,
    /// Direct chats: the other member has blocked this member (who may not send).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked_by_peer: bool,
    /// Direct chats: this member has blocked the other one (and may not send either).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocks_peer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Written by a member.
    Text,
    /// Written by the service: membership changes, renames.
    System,
}

/// A system message's structured content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum SystemEvent {
    #[serde(rename_all = "camelCase")]
    ChatCreated {
        by: UserId,
        members: Vec<UserId>,
        name: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    MembersAdded { by: UserId, members: Vec<UserId> },
    #[serde(rename_all = "camelCase")]
    MemberRemoved { by: UserId, member: UserId },
    #[serde(rename_all = "camelCase")]
    MemberLeft {
        member: UserId,
        promoted: Option<UserId>,
    },
    #[serde(rename_all = "camelCase")]
    Renamed { by: UserId, name: String },
}

impl SystemEvent {
    /// A short line for chat lists and previews.
    pub fn summary(&self) -> String {
        match self {
            SystemEvent::ChatCreated { .. } => "Chat created".into(),
            SystemEvent::MembersAdded { members, .. } => {
                format!("{} member(s) added", members.len())
            }
            SystemEvent::MemberRemoved { .. } => "A member was removed".into(),
            SystemEvent::MemberLeft { .. } => "A member left".into(),
            SystemEvent::Renamed { name, .. } => format!("Renamed to {name}"),
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub chat_id: ChatId,
    pub message_id: MessageId,
    /// 1-based, gap-free, the chat's total order.
    pub position: u64,
    pub kind: MessageKind,
    /// None for system messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
    /// The text for text messages; the summary for system messages.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemEvent>,
    #[serde(with = "as_rfc3339")]
    pub sent_at: Millis,
    /// The sender deleted their account: `text` is empty, position, id, sender and
    /// time are kept (see docs/security.md, "Retention and deletion").
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
    /// When the author last edited the text (absent: never edited).
    #[serde(
        default,
        with = "as_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub edited_at: Option<Millis>,
    /// How many times the text was edited (absent: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub edit_count: u32,
    /// Photos and files (at most `MAX_ATTACHMENTS_PER_MESSAGE`), in the sender's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::AttachmentRef>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How far the purge of a deleted account got (docs/security.md, "Retention and
/// deletion"). The phases run in this order; each is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurgePhase {
    Connections,
    Sessions,
    Devices,
    Chats,
    Messages,
    Presence,
    Done,
}

impl PurgePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PurgePhase::Connections => "connections",
            PurgePhase::Sessions => "sessions",
            PurgePhase::Devices => "devices",
            PurgePhase::Chats => "chats",
            PurgePhase::Messages => "messages",
            PurgePhase::Presence => "presence",
            PurgePhase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "connections" => PurgePhase::Connections,
            "sessions" => PurgePhase::Sessions,
            "devices" => PurgePhase::Devices,
            "chats" => PurgePhase::Chats,
            "messages" => PurgePhase::Messages,
            "presence" => PurgePhase::Presence,
            "done" => PurgePhase::Done,
            _ => return None,
        })
    }

    /// The phase after this one (`Done` stays `Done`).
    pub fn next(self) -> Self {
        match self {
            PurgePhase::Connections => PurgePhase::Sessions,
            PurgePhase::Sessions => PurgePhase::Devices,
            PurgePhase::Devices => PurgePhase::Chats,
            PurgePhase::Chats => PurgePhase::Messages,
            PurgePhase::Messages => PurgePhase::Presence,
            PurgePhase::Presence | PurgePhase::Done => PurgePhase::Done,
        }
    }
}

/// The display name a deleted account's tombstone carries.
pub const DELETED_USER_DISPLAY_NAME: &str = "Deleted user";

/// A live WebSocket connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: ConnectionId,
    pub user_id: UserId,
    pub device_label: String,
    #[serde(with = "as_rfc3339")]
    pub connected_at: Millis,
    /// After this the record is dead even if `$disconnect` never ran (API Gateway's
    /// 2-hour maximum plus a margin); DynamoDB's TTL removes it.
    #[serde(with = "as_rfc3339")]
    pub expires_at: Millis,
    pub source_ip: String,
    /// The access token the connection was opened (or last `authenticate`d) with;
    /// `None` only for records written before connections carried it.
    #[serde(skip)]
    pub credential: Option<ConnectionCredential>,
}

/// What a connection knows of the access token behind it: checked on every frame by
/// `ws-message` from the item its rate counter already reads (see `docs/security.md`,
/// "WebSocket connections and revocation").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectionCredential {
    /// The login session (refresh family) of the token: logging it out closes the socket.
    pub session_id: Option<SessionId>,
    /// The user's token version when the token was checked.
    pub token_version: u64,
    /// The token's `exp`: frames after it are refused and the socket closed, unless
    /// the client extends it with a fresh token (`authenticate`).
    pub token_expires_at: Millis,
    /// Set when the user's token version moved on (log-out-everywhere, password
    /// change, deletion) or the session was logged out.
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushPlatform {
    Apns,
    Fcm,
}

impl PushPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            PushPlatform::Apns => "apns",
            PushPlatform::Fcm => "fcm",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "apns" => Some(PushPlatform::Apns),
            "fcm" => Some(PushPlatform::Fcm),
            _ => None,
        }
    }
}

/// A phone or browser registered for push notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub device_id: DeviceId,
    pub user_id: UserId,
    pub platform: PushPlatform,
    /// The platform's token (APNs device token, FCM registration token).
    #[serde(skip_serializing)]
    pub token: String,
    /// The SNS platform endpoint; None where no platform application is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_arn: Option<String>,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
}

/// A login session: one family of rotating refresh tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: SessionId,
    pub user_id: UserId,
    /// SHA-256 of the current refresh token's secret part.
    pub current_hash: String,
    /// How many times the refresh token was rotated.
    pub generation: u64,
    pub token_version: u64,
    pub created_at: Millis,
    pub last_used_at: Millis,
    pub expires_at: Millis,
    pub revoked: bool,
    pub user_agent: String,
}

/// The part of a session a user may see (in an export, a session list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: SessionId,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
    #[serde(with = "as_rfc3339")]
    pub last_used_at: Millis,
    #[serde(with = "as_rfc3339")]
    pub expires_at: Millis,
    pub revoked: bool,
    pub user_agent: String,
}

impl From<&Session> for SessionInfo {
    fn from(s: &Session) -> Self {
        SessionInfo {
            session_id: s.session_id.clone(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            revoked: s.revoked,
            user_agent: s.user_agent.clone(),
        }
    }
}
