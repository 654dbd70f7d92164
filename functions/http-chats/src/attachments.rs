//! Photos and files: `POST /chats/{chatId}/attachments` (a member asks to upload: the
//! answer is an attachment id and a presigned `PUT` that only accepts the declared
//! size and type) and `GET /chats/{chatId}/attachments/{attachmentId}[/thumbnail]` (a
//! short-lived presigned `GET`). Non-members, removed members and strangers get the
//! same 404 as for an unknown chat; an upload no message refers to yet is visible to
//! its uploader only. Sending a message with attachments is `live::send_message`.

use crate::handlers::{chat_id, invalid, path};
use chat_core::attachments::{
    Attachment, AttachmentService, AttachmentState, ContentType, DeclaredSize, FileName,
    PresignedDownload, PresignedUpload, Preview, PENDING_RECORD_TTL_MS,
};
use chat_core::auth::Authenticated;
use chat_core::error::ApiError;
use chat_core::http::{self, SMALL_BODY};
use chat_core::ids::AttachmentId;
use chat_core::messaging::ChatServices;
use chat_core::model::now_millis;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub attachment_id: AttachmentId,
    pub upload: PresignedUpload,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Download {
    pub attachment_id: AttachmentId,
    pub file_name: String,
    pub size: u64,
    #[serde(flatten)]
    pub presigned: PresignedDownload,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// The thumbnailer could not read the image: show a generic file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview_failed: bool,
}

/// Attachment ids as a send names them.
pub fn parse_ids(raw: &[String]) -> Result<Vec<AttachmentId>, ApiError> {
    raw.iter()
        .map(|r| AttachmentId::parse(r).map_err(|e| invalid("attachments", e.to_string())))
        .collect()
}

fn service(app: &ChatServices) -> Result<&AttachmentService, ApiError> {
    app.attachments()
        .ok_or_else(|| invalid("attachments", "this deployment stores no attachments"))
}

/// `POST /chats/{chatId}/attachments`: 201 with the id and the presigned upload.
/// 400 for a type outside the allow-list or a bad name, 413 above the size limit.
pub async fn create(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat = chat_id(&req)?;
    let body: CreateBody = http::parse_json(&req, SMALL_BODY)?;
    let file_name = FileName::parse(&body.file_name)?;
    let content_type = ContentType::parse(&body.content_type)?;
    let service = service(&app)?;
    let size = DeclaredSize::parse(body.size, service.config().max_bytes)?;
    app.store()
        .chat_for_member(&chat, &me.user_id)
        .await
        .map_err(ApiError::from)?;
    let now = now_millis();
    let attachment = Attachment {
        attachment_id: AttachmentId::generate(),
        chat_id: chat,
        uploader_id: me.user_id.clone(),
        file_name,
        content_type,
        size: size.get(),
        state: AttachmentState::Pending,
        created_at: now,
        position: None,
        preview: None,
        preview_failed: false,
    };
    app.store()
        .put_attachment(&attachment, now + PENDING_RECORD_TTL_MS)
        .await
        .map_err(ApiError::from)?;
    let upload = service.presign_upload(&attachment).await?;
    Ok(http::json(
        201,
        &Created {
            attachment_id: attachment.attachment_id,
            upload,
        },
    ))
}

/// The attachment if the caller may see it: a member of its chat, and the upload is
/// in a message (or is the caller's own). 404 otherwise, the same for every reason.
async fn visible(
    app: &ChatServices,
    me: &Authenticated,
    req: &Request,
) -> Result<Attachment, ApiError> {
    let chat = chat_id(req)?;
    let id = AttachmentId::parse(path(req, "attachmentId").unwrap_or_default())
        .map_err(|e| invalid("attachmentId", e.to_string()))?;
    let (membership, record) = tokio::join!(
        app.store().chat_for_member(&chat, &me.user_id),
        app.store().get_attachment(&id)
    );
    membership.map_err(ApiError::from)?;
    match record.map_err(ApiError::from)? {
        Some(a)
            if a.chat_id == chat
                && (a.state == AttachmentState::Attached || a.uploader_id == me.user_id) =>
        {
            Ok(a)
        }
        _ => Err(ApiError::not_found("attachment")),
    }
}

/// `GET /chats/{chatId}/attachments/{attachmentId}`: a presigned download (5 minutes).
pub async fn download(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let a = visible(&app, &me, &req).await?;
    let presigned = service(&app)?.presign_download(&a, false).await?;
    Ok(http::json(200, &view(a, presigned)))
}

/// `GET /chats/{chatId}/attachments/{attachmentId}/thumbnail`: a presigned download of
/// the JPEG preview; 404 while there is none (not an image, not made yet, or the image
/// could not be read).
pub async fn thumbnail(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let a = visible(&app, &me, &req).await?;
    if a.preview.is_none() {
        return Err(ApiError::not_found("thumbnail"));
    }
    let presigned = service(&app)?.presign_download(&a, true).await?;
    Ok(http::json(200, &view(a, presigned)))
}

fn view(a: Attachment, presigned: PresignedDownload) -> Download {
    Download {
        attachment_id: a.attachment_id,
        file_name: a.file_name.as_str().to_owned(),
        size: a.size,
        presigned,
        preview: a.preview,
        preview_failed: a.preview_failed,
    }
}
