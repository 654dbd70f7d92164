//! `GET /me/export`: everything the service holds about the caller, in pages that fit
//! a Lambda response (6 MB) with room to spare.
//!
//! The first page (no `cursor`) has the profile, the caller's chats and memberships,
//! devices, sessions and uploads (with download links), and the first of the caller's own messages; each later page
//! (`?cursor=`) has only messages. A page ends after [`PAGE_BYTES`] of serialized
//! messages or [`PAGE_MESSAGES`] messages, whichever comes first (at least one message
//! per page, so a 400 KB message always fits); `nextCursor` is null on the last page.
//! Messages come from the `bySender` index (oldest first), so nothing of anyone else
//! is read.

use chat_core::attachments::{AttachmentService, AttachmentState};
use chat_core::error::ApiError;
use chat_core::http as edge;
use chat_core::ids::{AttachmentId, ChatId, DeviceId, UserId};
use chat_core::model::{
    as_rfc3339, now_millis, ChatKind, Message, Millis, Profile, PushPlatform, Role, SessionInfo,
};
use chat_core::store::{SenderKey, Store};
use serde::Serialize;

/// Bytes of serialized messages per page at most (~4 MB).
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Messages per page at most (bounds the DynamoDB round trips of one request).
pub const PAGE_MESSAGES: usize = 5_000;
/// Keys read from the index per round trip (one BatchGetItem each).
const INDEX_PAGE: u32 = 100;

/// One chat the caller is a member of, with the caller's membership.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportChat {
    pub chat_id: ChatId,
    pub kind: ChatKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub member_count: u32,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
    pub role: Role,
    #[serde(with = "as_rfc3339")]
    pub joined_at: Millis,
    pub read_position: u64,
    pub delivered_position: u64,
    pub muted: bool,
}

/// A push device registration, platform token included (it is the caller's).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportDevice {
    pub device_id: DeviceId,
    pub platform: PushPlatform,
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_arn: Option<String>,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
}

/// What the first page adds to the messages.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportHead {
    #[serde(with = "as_rfc3339")]
    pub exported_at: Millis,
    pub profile: Profile,
    pub chats: Vec<ExportChat>,
    pub devices: Vec<ExportDevice>,
    pub sessions: Vec<SessionInfo>,
    /// The users the caller blocks.
    pub blocked_user_ids: Vec<UserId>,
    pub attachments: Vec<ExportAttachment>,
}

/// One of the caller's uploads, with a presigned download link.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportAttachment {
    pub attachment_id: AttachmentId,
    pub chat_id: ChatId,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub state: AttachmentState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
    pub url: String,
    pub expires_in_seconds: u64,
}

/// The caller's uploads with download links (none without a bucket).
pub async fn attachments(
    store: &Store,
    service: Option<&AttachmentService>,
    user: &UserId,
) -> Result<Vec<ExportAttachment>, ApiError> {
    let Some(service) = service else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for a in store.attachments_by_uploader(user).await? {
        let link = service.presign_download(&a, false).await?;
        out.push(ExportAttachment {
            attachment_id: a.attachment_id.clone(),
            chat_id: a.chat_id.clone(),
            file_name: a.file_name.as_str().to_owned(),
            content_type: a.content_type.as_str().to_owned(),
            size: a.size,
            state: a.state,
            position: a.position,
            created_at: a.created_at,
            url: link.url,
            expires_in_seconds: link.expires_in_seconds,
        });
    }
    Ok(out)
}

/// One page of an export.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPage {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub head: Option<ExportHead>,
    pub messages: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// The first page's head: profile, chats, devices, sessions.
pub async fn head(
    store: &Store,
    service: Option<&AttachmentService>,
    user: &UserId,
    profile: Profile,
) -> Result<ExportHead, ApiError> {
    let ((memberships, devices, sessions, blocked_user_ids), uploads) = tokio::try_join!(
        async {
            tokio::try_join!(
                store.list_user_memberships(user),
                store.list_devices(user),
                store.list_sessions(user),
                store.blocked_by(user),
            )
            .map_err(ApiError::from)
        },
        attachments(store, service, user),
    )?;
    let ids: Vec<ChatId> = memberships.iter().map(|m| m.chat_id.clone()).collect();
    let mut chats = store.get_chats(&ids).await?;
    let mut rows: Vec<ExportChat> = memberships
        .into_iter()
        .filter_map(|m| {
            let c = chats.remove(&m.chat_id)?;
            Some(ExportChat {
                chat_id: c.chat_id,
                kind: c.kind,
                name: c.name,
                member_count: c.member_count,
                created_at: c.created_at,
                role: m.role,
                joined_at: m.joined_at,
                read_position: m.read_position,
                delivered_position: m.delivered_position.max(m.read_position),
                muted: m.muted,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.chat_id.cmp(&b.chat_id));
    Ok(ExportHead {
        exported_at: now_millis(),
        profile,
        chats: rows,
        devices: devices
            .into_iter()
            .map(|d| ExportDevice {
                device_id: d.device_id,
                platform: d.platform,
                token: d.token,
                endpoint_arn: d.endpoint_arn,
                created_at: d.created_at,
            })
            .collect(),
        sessions: sessions.iter().map(SessionInfo::from).collect(),
        blocked_user_ids,
        attachments: uploads,
    })
}

/// The caller's messages after `after`, bounded by `max_bytes` and `max_messages`;
/// returns them and the cursor of the next page.
pub async fn messages(
    store: &Store,
    user: &UserId,
    after: Option<SenderKey>,
    max_bytes: usize,
    max_messages: usize,
) -> Result<(Vec<Message>, Option<String>), ApiError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut after = after;
    loop {
        let page = store
            .messages_by_sender(user, INDEX_PAGE, after.as_ref())
            .await?;
        let found = store.get_messages(&page.keys).await?;
        for m in found {
            let size = serde_json::to_vec(&m).map(|v| v.len()).unwrap_or(0) + 1;
            if !out.is_empty() && (bytes + size > max_bytes || out.len() >= max_messages) {
                return Ok((out, after.map(|k| edge::encode_cursor(&k))));
            }
            bytes += size;
            after = Some(SenderKey {
                sent_at: m.sent_at,
                chat_id: m.chat_id.clone(),
                position: m.position,
            });
            out.push(m);
        }
        match page.next {
            // Keys whose message was not found still move the position on.
            Some(next) => after = Some(next),
            None => return Ok((out, None)),
        }
    }
}
