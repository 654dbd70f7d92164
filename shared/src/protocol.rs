//! The WebSocket protocol, version [`PROTOCOL_VERSION`] (documented field by field in
//! `docs/protocol.md`). Client frames are JSON objects selected by `action`; they are
//! parsed here, once, into [`ClientAction`] with typed values (ids, text, positions),
//! or into a [`FrameError`] that names the problem (`invalid_json`, `unknown_action`,
//! `validation_failed` with the field). Server frames are [`ServerEvent`]s, JSON
//! objects selected by `type`. [`OfflineMessageEvent`] is what the offline topic (SNS)
//! carries for the push notifier.

use crate::error::ApiError;
use crate::ids::{AttachmentId, ChatId, ClientMessageId, MessageId, UserId};
use crate::input::{InvalidInput, MessageText};
use crate::model::{as_rfc3339, as_rfc3339_opt, Chat, ChatKind, Message, Millis, SystemEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this code speaks (`docs/protocol.md`, "Protocol version 1").
pub const PROTOCOL_VERSION: u32 = 1;
/// The WebSocket subprotocol a client may offer (with its token) in
/// `Sec-WebSocket-Protocol`; the server then selects it.
pub const SUBPROTOCOL: &str = "chat.v1";
/// API Gateway's limit for one WebSocket message, both directions (128 KB).
pub const MAX_FRAME_BYTES: usize = 128 * 1024;
/// Messages per chat in one `syncResult` page: default and maximum.
pub const SYNC_DEFAULT_LIMIT: u32 = 50;
pub const SYNC_MAX_LIMIT: u32 = 100;
/// Most chats a `sync` request may list.
pub const SYNC_MAX_CHATS: usize = 1000;
/// Longest `ping` id echoed back.
pub const MAX_PING_ID: usize = 64;

/// What a client asks for, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAction {
    SendMessage {
        chat_id: ChatId,
        client_message_id: ClientMessageId,
        text: MessageText,
    },
    /// A `sendMessage` frame with `attachments` (1 to
    /// [`crate::attachments::MAX_ATTACHMENTS_PER_MESSAGE`] upload ids); its text is
    /// optional.
    SendWithAttachments {
        chat_id: ChatId,
        client_message_id: ClientMessageId,
        text: Option<MessageText>,
        attachments: Vec<AttachmentId>,
    },
    /// Everything up to `position` reached this device.
    Ack {
        chat_id: ChatId,
        position: u64,
    },
    /// Everything up to `position` was read.
    Read {
        chat_id: ChatId,
        position: u64,
    },
    Typing {
        chat_id: ChatId,
        state: TypingState,
    },
    Sync {
        /// The positions the client already has, one per chat it knows.
        chats: Vec<KnownPosition>,
        limit: u32,
        cursor: Option<String>,
    },
    Ping {
        id: Option<String>,
    },
    /// Replace the text of the caller's own message.
    EditMessage {
        chat_id: ChatId,
        position: u64,
        text: MessageText,
    },
    /// Delete a message for everyone (own message, or any as a group admin).
    DeleteMessage {
        chat_id: ChatId,
        position: u64,
    },
    /// Extend the connection with a fresh access token of the same user (before the
    /// one it was opened with expires).
    Authenticate {
        token: String,
    },
}

impl ClientAction {
    /// The action's name, as the client spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ClientAction::SendMessage { .. } | ClientAction::SendWithAttachments { .. } => {
                "sendMessage"
            }
            ClientAction::Ack { .. } => "ack",
            ClientAction::Read { .. } => "read",
            ClientAction::Typing { .. } => "typing",
            ClientAction::Sync { .. } => "sync",
            ClientAction::Ping { .. } => "ping",
            ClientAction::EditMessage { .. } => "editMessage",
            ClientAction::DeleteMessage { .. } => "deleteMessage",
            ClientAction::Authenticate { .. } => "authenticate",
        }
    }

    /// The send's idempotency key (errors answering a send carry it back).
    pub fn client_message_id(&self) -> Option<&ClientMessageId> {
        match self {
            ClientAction::SendMessage {
                client_message_id, ..
            }
            | ClientAction::SendWithAttachments {
                client_message_id, ..
            } => Some(client_message_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    Started,
    Stopped,
}

/// A chat and the last position the client holds of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownPosition {
    pub chat_id: ChatId,
    pub position: u64,
    /// The chat's change sequence the client has caught up to (`changeSeq` of the
    /// last sync or change event); absent: 0, every change of a message it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_seq: Option<u64>,
}

/// Why a frame was refused before anything happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameErrorKind {
    /// Not JSON, or not a JSON object.
    InvalidJson(String),
    /// `action` names no action of this protocol.
    UnknownAction(String),
    /// A field is missing or not acceptable.
    Invalid(InvalidInput),
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    TooLarge(usize),
}

/// A refused frame, with what the client needs to match the error to its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub kind: FrameErrorKind,
    /// The frame's `action`, when it had a string one.
    pub action: Option<String>,
    /// The frame's `clientMessageId`, when it had a well-formed one.
    pub client_message_id: Option<ClientMessageId>,
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self.kind {
            FrameErrorKind::InvalidJson(_) => "invalid_json",
            FrameErrorKind::UnknownAction(_) => "unknown_action",
            FrameErrorKind::Invalid(_) => "validation_failed",
            FrameErrorKind::TooLarge(_) => "payload_too_large",
        }
    }

    /// The `error` event answering this frame.
    pub fn to_event(&self) -> ServerEvent {
        let (message, field) = match &self.kind {
            FrameErrorKind::InvalidJson(m) => (format!("the frame is not valid JSON: {m}"), None),
            FrameErrorKind::UnknownAction(a) => (format!("unknown action '{a}'"), None),
            FrameErrorKind::Invalid(e) => (e.to_string(), Some(e.field.to_owned())),
            FrameErrorKind::TooLarge(n) => (
                format!(
                    "the frame is {n} bytes; at most {MAX_FRAME_BYTES} are accepted (send long messages over REST)"
                ),
                None,
            ),
        };
        ServerEvent::Error(ErrorEvent {
            code: self.code().to_owned(),
            message,
            field,
            action: self.action.clone(),
            client_message_id: self.client_message_id.clone(),
        })
    }
}

/// The actions of this protocol.
pub const ACTIONS: [&str; 9] = [
    "sendMessage",
    "ack",
    "read",
    "typing",
    "sync",
    "ping",
    "editMessage",
    "deleteMessage",
    "authenticate",
];

/// Longest `authenticate` token accepted (access tokens are a few hundred bytes).
pub const MAX_TOKEN_CHARS: usize = 4096;

/// Parse one client frame. Never panics; every refusal is a [`FrameError`].
pub fn parse_frame(raw: &str) -> Result<ClientAction, FrameError> {
    let err = |kind, action: Option<&str>, cmid: Option<ClientMessageId>| FrameError {
        kind,
        action: action.map(str::to_owned),
        client_message_id: cmid,
    };
    if raw.len() > MAX_FRAME_BYTES {
        return Err(err(FrameErrorKind::TooLarge(raw.len()), None, None));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| err(FrameErrorKind::InvalidJson(e.to_string()), None, None))?;
    let Value::Object(obj) = value else {
        return Err(err(
            FrameErrorKind::InvalidJson("expected a JSON object".into()),
            None,
            None,
        ));
    };
    let cmid = obj
        .get("clientMessageId")
        .and_then(Value::as_str)
        .and_then(|s| ClientMessageId::parse(s).ok());
    let action = match obj.get("action") {
        None | Some(Value::Null) => {
            return Err(err(
                FrameErrorKind::Invalid(InvalidInput::new("action", "is required")),
                None,
                cmid,
            ))
        }
        Some(Value::String(a)) => a.as_str(),
        Some(_) => {
            return Err(err(
                FrameErrorKind::Invalid(InvalidInput::new("action", "must be a string")),
                None,
                cmid,
            ))
        }
    };
    let f = Fields(&obj);
    let parsed = match action {
        "sendMessage" => f.send_message(),
        "ack" => f
            .chat_position()
            .map(|(chat_id, position)| ClientAction::Ack { chat_id, position }),
        "read" => f
            .chat_position()
            .map(|(chat_id, position)| ClientAction::Read { chat_id, position }),
        "typing" => f.typing(),
        "sync" => f.sync(),
        "ping" => f.ping(),
        "editMessage" => f.edit_message(),
        "deleteMessage" => f
            .chat_position()
            .map(|(chat_id, position)| ClientAction::DeleteMessage { chat_id, position }),
        "authenticate" => f.authenticate(),
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(err(
                FrameErrorKind::UnknownAction(shown.clone()),
                Some(&shown),
                cmid,
            ));
        }
    };
    parsed.map_err(|e| err(FrameErrorKind::Invalid(e), Some(action), cmid))
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn present(&self, field: &'static str) -> Result<&Value, InvalidInput> {
        match self.0.get(field) {
            None | Some(Value::Null) => Err(InvalidInput::new(field, "is required")),
            Some(v) => Ok(v),
        }
    }

    fn string(&self, field: &'static str) -> Result<&str, InvalidInput> {
        self.present(field)?
            .as_str()
            .ok_or_else(|| InvalidInput::new(field, "must be a string"))
    }

    fn chat_id(&self) -> Result<ChatId, InvalidInput> {
        ChatId::parse(self.string("chatId")?).map_err(|e| InvalidInput::new("chatId", e.reason))
    }

    fn position(&self, field: &'static str) -> Result<u64, InvalidInput> {
        position_of(self.present(field)?, field)
    }

    fn send_message(&self) -> Result<ClientAction, InvalidInput> {
        let chat_id = self.chat_id()?;
        let client_message_id = ClientMessageId::parse(self.string("clientMessageId")?)
            .map_err(|e| InvalidInput::new("clientMessageId", e.reason))?;
        if let Some(ids) = self.attachment_ids()? {
            let text = match self.0.get("text") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.is_empty() => None,
                Some(Value::String(t)) => Some(MessageText::parse(t)?),
                Some(_) => return Err(InvalidInput::new("text", "must be a string")),
            };
            return Ok(ClientAction::SendWithAttachments {
                chat_id,
                client_message_id,
                text,
                attachments: ids,
            });
        }
        let text = MessageText::parse(self.string("text")?)?;
        Ok(ClientAction::SendMessage {
            chat_id,
            client_message_id,
            text,
        })
    }

    /// `attachments`: absent, null or `[]` is none; else 1 to 10 distinct upload ids.
    fn attachment_ids(&self) -> Result<Option<Vec<AttachmentId>>, InvalidInput> {
        let raw = match self.0.get("attachments") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) if a.is_empty() => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(InvalidInput::new("attachments", "must be an array of ids")),
        };
        if raw.len() > crate::attachments::MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(InvalidInput::new(
                "attachments",
                "at most 10 attachments per message",
            ));
        }
        raw.iter()
            .map(|v| {
                let id = v
                    .as_str()
                    .ok_or_else(|| InvalidInput::new("attachments", "must be an array of ids"))?;
                AttachmentId::parse(id).map_err(|e| InvalidInput::new("attachments", e.reason))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn edit_message(&self) -> Result<ClientAction, InvalidInput> {
        let chat_id = self.chat_id()?;
        let position = self.position("position")?;
        let text = MessageText::parse(self.string("text")?)?;
        Ok(ClientAction::EditMessage {
            chat_id,
            position,
            text,
        })
    }

    fn chat_position(&self) -> Result<(ChatId, u64), InvalidInput> {
        Ok((self.chat_id()?, self.position("position")?))
    }

    fn typing(&self) -> Result<ClientAction, InvalidInput> {
        let chat_id = self.chat_id()?;
        let state = match self.string("state")? {
            "started" => TypingState::Started,
            "stopped" => TypingState::Stopped,
            _ => return Err(InvalidInput::new("state", "must be 'started' or 'stopped'")),
        };
        Ok(ClientAction::Typing { chat_id, state })
    }

    fn sync(&self) -> Result<ClientAction, InvalidInput> {
        let chats = match self.0.get("chats") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > SYNC_MAX_CHATS {
                    return Err(InvalidInput::new(
                        "chats",
                        format!("at most {SYNC_MAX_CHATS} chats"),
                    ));
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Object(o) = item else {
                        return Err(InvalidInput::new(
                            "chats",
                            "each entry must be an object {chatId, position}",
                        ));
                    };
                    let f = Fields(o);
                    out.push(KnownPosition {
                        chat_id: f.chat_id()?,
                        position: f.position("position")?,
                        change_seq: match o.get("changeSeq") {
                            None | Some(Value::Null) => None,
                            Some(v) => Some(position_of(v, "changeSeq")?),
                        },
                    });
                }
                out
            }
            Some(_) => return Err(InvalidInput::new("chats", "must be an array")),
        };
        let limit = match self.0.get("limit") {
            None | Some(Value::Null) => SYNC_DEFAULT_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=u64::from(SYNC_MAX_LIMIT)).contains(&n) => n as u32,
                _ => {
                    return Err(InvalidInput::new(
                        "limit",
                        format!("must be a whole number from 1 to {SYNC_MAX_LIMIT}"),
                    ))
                }
            },
        };
        let cursor = match self.0.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(InvalidInput::new("cursor", "must be a string")),
        };
        Ok(ClientAction::Sync {
            chats,
            limit,
            cursor,
        })
    }

    fn ping(&self) -> Result<ClientAction, InvalidInput> {
        let id = match self.0.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_PING_ID => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(InvalidInput::new(
                    "id",
                    format!("must be a string of at most {MAX_PING_ID} characters or a number"),
                ))
            }
        };
        Ok(ClientAction::Ping { id })
    }

    fn authenticate(&self) -> Result<ClientAction, InvalidInput> {
        let token = self.string("token")?;
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Err(InvalidInput::new(
                "token",
                format!("must be an access token (1 to {MAX_TOKEN_CHARS} characters)"),
            ));
        }
        Ok(ClientAction::Authenticate {
            token: token.to_owned(),
        })
    }
}

fn position_of(v: &Value, field: &'static str) -> Result<u64, InvalidInput> {
    v.as_u64()
        .ok_or_else(|| InvalidInput::new(field, "must be a whole number of 0 or more"))
}

/// Everything the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerEvent {
    /// To the sending connection: the message is durably stored.
    MessageAck(MessageAck),
    /// A message, to every connection of every member (the sending connection excepted).
    Message(Message),
    /// A message too large for one frame: fetch it over REST.
    MessageRef(MessageRef),
    /// A member's delivered position moved.
    Delivered(Receipt),
    /// A member's read position moved.
    Read(Receipt),
    Typing(TypingEvent),
    Presence(PresenceEvent),
    Membership(MembershipEvent),
    SyncResult(SyncResult),
    Pong(Pong),
    Error(ErrorEvent),
    /// A stored message's text was edited, to every connection of every member.
    MessageEdited(MessageChanged),
    /// A stored message was deleted for everyone, to every connection of every member.
    MessageDeleted(MessageChanged),
    /// `authenticate` succeeded: the connection lives on until `expiresAt`.
    Authenticated(Authenticated),
}

impl ServerEvent {
    /// The frame text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"internal error"}"#.to_owned()
        })
    }

    /// The `error` event answering `action` with `e`.
    pub fn error(
        e: &ApiError,
        action: Option<&str>,
        client_message_id: Option<&ClientMessageId>,
    ) -> Self {
        let body = e.body();
        ServerEvent::Error(ErrorEvent {
            code: body.error.code.to_owned(),
            message: body.error.message,
            field: body.error.field.map(str::to_owned),
            action: action.map(str::to_owned),
            client_message_id: client_message_id.cloned(),
        })
    }

    /// `message`, or `messageRef` when the message does not fit in one frame.
    pub fn for_message(m: &Message) -> Self {
        let full = ServerEvent::Message(m.clone());
        if full.to_json().len() <= MAX_FRAME_BYTES {
            full
        } else {
            ServerEvent::MessageRef(MessageRef::of(m))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAck {
    pub chat_id: ChatId,
    pub client_message_id: ClientMessageId,
    pub message_id: MessageId,
    pub position: u64,
    #[serde(with = "as_rfc3339")]
    pub sent_at: Millis,
    /// True when this clientMessageId was already stored: this is the original.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub chat_id: ChatId,
    pub message_id: MessageId,
    pub position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<UserId>,
    #[serde(with = "as_rfc3339")]
    pub sent_at: Millis,
    /// Characters of the text.
    pub text_chars: usize,
    /// The REST path that returns exactly this message.
    pub fetch: String,
}

impl MessageRef {
    pub fn of(m: &Message) -> Self {
        MessageRef {
            chat_id: m.chat_id.clone(),
            message_id: m.message_id.clone(),
            position: m.position,
            sender_id: m.sender_id.clone(),
            sent_at: m.sent_at,
            text_chars: m.text.chars().count(),
            fetch: format!(
                "/chats/{}/messages?after={}&limit=1",
                m.chat_id,
                m.position.saturating_sub(1)
            ),
        }
    }
}

/// An edit or a deletion of a stored message (`messageEdited` / `messageDeleted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageChanged {
    pub chat_id: ChatId,
    pub position: u64,
    /// The change's number in the chat's change sequence (`chat.changeSeq` after it).
    pub change_seq: u64,
    /// Who changed it (the author, or a group admin deleting).
    pub by: UserId,
    /// The message now (deleted: the tombstone, text empty); absent when it does not
    /// fit in one frame, then `ref` says where to fetch it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub message_ref: Option<MessageRef>,
}

impl MessageChanged {
    pub fn new(message: &Message, change_seq: u64, by: &UserId) -> Self {
        let mut ev = MessageChanged {
            chat_id: message.chat_id.clone(),
            position: message.position,
            change_seq,
            by: by.clone(),
            message: Some(message.clone()),
            message_ref: None,
        };
        if serde_json::to_vec(&ev).map_or(usize::MAX, |b| b.len()) > MAX_FRAME_BYTES - 1024 {
            ev.message = None;
            ev.message_ref = Some(MessageRef::of(message));
        }
        ev
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub position: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    pub chat_id: ChatId,
    pub user_id: UserId,
    pub state: TypingState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    pub user_id: UserId,
    pub online: bool,
    #[serde(with = "as_rfc3339_opt")]
    pub last_seen_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipEvent {
    pub chat_id: ChatId,
    /// Position of the system message that records the change.
    pub position: u64,
    pub change: SystemEvent,
    /// The chat after the change (name, memberCount, lastPosition, ...).
    pub chat: Chat,
    /// Set when the last admin left and this member became admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<UserId>,
}

/// One page of catch-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    pub chats: Vec<SyncChat>,
    /// Chats the client listed that it is no longer a member of (or that do not exist).
    pub removed: Vec<ChatId>,
    /// Ask again with this (and nothing else needed) for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What changed in one chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncChat {
    pub chat_id: ChatId,
    /// False when the client did not list this chat (new to it).
    pub known: bool,
    /// The chat now.
    pub chat: Chat,
    pub read_position: u64,
    pub delivered_position: u64,
    /// Messages after the client's position, ascending and gap-free.
    pub messages: Vec<Message>,
    /// Messages too large for the frame, in position order among `messages` (and
    /// changed ones too large, see `changed`).
    pub refs: Vec<MessageRef>,
    /// Messages at or before the client's position that changed (edited, deleted)
    /// after the client's `changeSeq`, as they are now, ascending, each once.
    pub changed: Vec<Message>,
    /// The change sequence this page brings the client to: send it back as the
    /// chat's `changeSeq` in the next sync.
    pub change_seq: u64,
    /// More messages of this chat follow in the next page (see `cursor`).
    pub has_more: bool,
}

/// The answer to `authenticate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticated {
    /// When the new token expires: send `authenticate` again before then.
    #[serde(with = "as_rfc3339")]
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pong {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(with = "as_rfc3339")]
    pub server_time: Millis,
    pub protocol_version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    /// Stable, machine-readable (see docs/protocol.md, "Errors").
    pub code: String,
    pub message: String,
    /// The offending field, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The action this answers, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The clientMessageId this answers, when the frame carried a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<ClientMessageId>,
}

/// What the offline topic carries: one per (message, recipient with no connection that
/// accepted it). The push notifier turns it into a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfflineMessageEvent {
    /// Always `"offlineMessage"`.
    pub kind: String,
    /// The event format's version ([`PROTOCOL_VERSION`]).
    pub version: u32,
    pub recipient_id: UserId,
    pub chat_id: ChatId,
    pub chat_kind: ChatKind,
    /// The group's name; absent for direct chats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_name: Option<String>,
    pub message_id: MessageId,
    pub position: u64,
    pub sender_id: UserId,
    pub sender_display_name: String,
    /// The first characters of the text (`model::PREVIEW_CHARS`).
    pub preview: String,
    #[serde(with = "as_rfc3339")]
    pub sent_at: Millis,
}

impl OfflineMessageEvent {
    pub const KIND: &'static str = "offlineMessage";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> String {
        ChatId::new_group().to_string()
    }

    fn refused(raw: &str) -> FrameError {
        parse_frame(raw).expect_err("frame should be refused")
    }

    fn field_of(e: &FrameError) -> &'static str {
        match &e.kind {
            FrameErrorKind::Invalid(i) => i.field,
            other => panic!("expected validation_failed, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_action() {
        let c = chat();
        let send = format!(
            r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"m-1","text":"hi"}}"#
        );
        match parse_frame(&send).unwrap() {
            ClientAction::SendMessage {
                chat_id,
                client_message_id,
                text,
            } => {
                assert_eq!(chat_id.as_str(), c);
                assert_eq!(client_message_id.as_str(), "m-1");
                assert_eq!(text.as_str(), "hi");
            }
            other => panic!("{other:?}"),
        }
        let ack = format!(r#"{{"action":"ack","chatId":"{c}","position":7}}"#);
        assert!(matches!(
            parse_frame(&ack).unwrap(),
            ClientAction::Ack { position: 7, .. }
        ));
        let read = format!(r#"{{"action":"read","chatId":"{c}","position":0}}"#);
        assert!(matches!(
            parse_frame(&read).unwrap(),
            ClientAction::Read { position: 0, .. }
        ));
        let typing = format!(r#"{{"action":"typing","chatId":"{c}","state":"stopped"}}"#);
        assert!(matches!(
            parse_frame(&typing).unwrap(),
            ClientAction::Typing {
                state: TypingState::Stopped,
                ..
            }
        ));
        let sync = format!(
            r#"{{"action":"sync","chats":[{{"chatId":"{c}","position":3}}],"limit":10,"cursor":"abc"}}"#
        );
        match parse_frame(&sync).unwrap() {
            ClientAction::Sync {
                chats,
                limit,
                cursor,
            } => {
                assert_eq!(chats.len(), 1);
                assert_eq!(chats[0].position, 3);
                assert_eq!(limit, 10);
                assert_eq!(cursor.as_deref(), Some("abc"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_frame(r#"{"action":"sync"}"#).unwrap(),
            ClientAction::Sync { limit: SYNC_DEFAULT_LIMIT, ref chats, cursor: None } if chats.is_empty()
        ));
        assert_eq!(
            parse_frame(r#"{"action":"ping","id":"p1"}"#).unwrap(),
            ClientAction::Ping {
                id: Some("p1".into())
            }
        );
        assert_eq!(
            parse_frame(r#"{"action":"ping"}"#).unwrap(),
            ClientAction::Ping { id: None }
        );
    }

    #[test]
    fn invalid_json() {
        for raw in ["", "{", "not json", "[1,2]", "\"action\"", "null", "42"] {
            let e = refused(raw);
            assert_eq!(e.code(), "invalid_json", "{raw:?}");
            assert!(e.action.is_none());
        }
    }

    #[test]
    fn missing_or_bad_action() {
        let e = refused(r#"{"chatId":"x"}"#);
        assert_eq!(e.code(), "validation_failed");
        assert_eq!(field_of(&e), "action");
        let e = refused(r#"{"action":5}"#);
        assert_eq!(field_of(&e), "action");
        let e = refused(r#"{"action":"shout","clientMessageId":"c1"}"#);
        assert_eq!(e.code(), "unknown_action");
        assert_eq!(e.action.as_deref(), Some("shout"));
        assert_eq!(e.client_message_id.as_ref().unwrap().as_str(), "c1");
        // `$default` is a route, not an action.
        assert_eq!(refused(r#"{"action":"$default"}"#).code(), "unknown_action");
    }

    #[test]
    fn send_message_fields() {
        let c = chat();
        let cases: Vec<(String, &str)> = vec![
            (
                r#"{"action":"sendMessage","clientMessageId":"a","text":"x"}"#.into(),
                "chatId",
            ),
            (
                r#"{"action":"sendMessage","chatId":"grp_nope","clientMessageId":"a","text":"x"}"#
                    .into(),
                "chatId",
            ),
            (
                format!(r#"{{"action":"sendMessage","chatId":"{c}","text":"x"}}"#),
                "clientMessageId",
            ),
            (
                format!(
                    r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a b","text":"x"}}"#
                ),
                "clientMessageId",
            ),
            (
                format!(r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a"}}"#),
                "text",
            ),
            (
                format!(
                    r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a","text":""}}"#
                ),
                "text",
            ),
            (
                format!(
                    r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a","text":"   "}}"#
                ),
                "text",
            ),
            (
                format!(
                    r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a","text":7}}"#
                ),
                "text",
            ),
            (
                format!(
                    r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a","text":"{}"}}"#,
                    "x".repeat(100_001)
                ),
                "text",
            ),
        ];
        for (raw, field) in cases {
            let e = refused(&raw);
            assert_eq!(e.code(), "validation_failed");
            assert_eq!(field_of(&e), field, "{}", &raw[..raw.len().min(120)]);
            assert_eq!(e.action.as_deref(), Some("sendMessage"));
        }
        // The clientMessageId is echoed when valid, so the client can match the error.
        let e = refused(&format!(
            r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"m-9","text":""}}"#
        ));
        assert_eq!(e.client_message_id.unwrap().as_str(), "m-9");
        // 100,000 characters are fine.
        let ok = format!(
            r#"{{"action":"sendMessage","chatId":"{c}","clientMessageId":"a","text":"{}"}}"#,
            "x".repeat(100_000)
        );
        assert!(parse_frame(&ok).is_ok());
    }

    #[test]
    fn receipts_typing_sync_ping_fields() {
        let c = chat();
        let cases: Vec<(String, &str)> = vec![
            (format!(r#"{{"action":"ack","chatId":"{c}"}}"#), "position"),
            (
                format!(r#"{{"action":"ack","chatId":"{c}","position":-1}}"#),
                "position",
            ),
            (
                format!(r#"{{"action":"read","chatId":"{c}","position":"3"}}"#),
                "position",
            ),
            (
                format!(r#"{{"action":"read","chatId":"{c}","position":1.5}}"#),
                "position",
            ),
            (r#"{"action":"read","position":1}"#.into(), "chatId"),
            (format!(r#"{{"action":"typing","chatId":"{c}"}}"#), "state"),
            (
                format!(r#"{{"action":"typing","chatId":"{c}","state":"yes"}}"#),
                "state",
            ),
            (r#"{"action":"sync","chats":{}}"#.into(), "chats"),
            (r#"{"action":"sync","chats":[1]}"#.into(), "chats"),
            (
                r#"{"action":"sync","chats":[{"chatId":"dm_x","position":1}]}"#.into(),
                "chatId",
            ),
            (
                format!(r#"{{"action":"sync","chats":[{{"chatId":"{c}"}}]}}"#),
                "position",
            ),
            (r#"{"action":"sync","limit":0}"#.into(), "limit"),
            (r#"{"action":"sync","limit":101}"#.into(), "limit"),
            (r#"{"action":"sync","cursor":5}"#.into(), "cursor"),
            (r#"{"action":"ping","id":{}}"#.into(), "id"),
            (
                format!(r#"{{"action":"ping","id":"{}"}}"#, "p".repeat(65)),
                "id",
            ),
        ];
        for (raw, field) in cases {
            let e = refused(&raw);
            assert_eq!(e.code(), "validation_failed", "{raw}");
            assert_eq!(field_of(&e), field, "{raw}");
        }
    }

    #[test]
    fn oversized_frames() {
        let raw = format!(
            r#"{{"action":"ping","id":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(refused(&raw).code(), "payload_too_large");
    }

    #[test]
    fn error_events_serialize_with_context() {
        let e = refused(r#"{"action":"sendMessage","clientMessageId":"k1"}"#);
        let v: Value = serde_json::from_str(&e.to_event().to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(v["field"], "chatId");
        assert_eq!(v["action"], "sendMessage");
        assert_eq!(v["clientMessageId"], "k1");
    }

    #[test]
    fn huge_messages_become_refs() {
        let m = Message {
            chat_id: ChatId::new_group(),
            message_id: MessageId::generate(),
            position: 4,
            kind: crate::model::MessageKind::Text,
            sender_id: Some(UserId::generate()),
            client_message_id: None,
            text: "é".repeat(100_000),
            system: None,
            sent_at: 0,
            deleted: false,
            edited_at: None,
            edit_count: 0,
            attachments: Vec::new(),
        };
        let ev = ServerEvent::for_message(&m);
        let json = ev.to_json();
        assert!(json.len() < 1024);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "messageRef");
        assert_eq!(v["position"], 4);
        assert_eq!(v["textChars"], 100_000);
        let small = Message {
            text: "x".repeat(100_000),
            ..m
        };
        let v: Value = serde_json::from_str(&ServerEvent::for_message(&small).to_json()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["text"].as_str().unwrap().len(), 100_000);
    }
}
