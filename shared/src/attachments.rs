//! Attachments: photos and files that clients upload to and download from S3 directly,
//! through presigned URLs, so that no bytes pass through a function.
//!
//! The flow: `POST /chats/{chatId}/attachments` records a pending upload
//! ([`Attachment`], in the store) and answers a presigned `PUT` that signs the declared
//! size, type and the `state=pending` tag ([`AttachmentService::presign_upload`]); the
//! client uploads; a send names the attachment ids, and
//! [`AttachmentService::verify_uploaded`] checks each object (HeadObject: there, the
//! declared size and type) before the append marks the records attached in the same
//! transaction as the message. Downloads are presigned `GET`s for members only;
//! anything but a raster image is served with `Content-Disposition: attachment`.
//!
//! Keys are chosen by the server: `chats/{chatId}/{attachmentId}` for the upload and
//! `thumbs/{chatId}/{attachmentId}` for its preview. The input newtypes
//! ([`FileName`], [`ContentType`], [`DeclaredSize`]) parse what clients send, once.

use crate::config::AttachmentConfig;
use crate::error::ApiError;
use crate::ids::{AttachmentId, ChatId, UserId};
use crate::input::InvalidInput;
use crate::model::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// How long a presigned upload stays valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a presigned download stays valid.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);
/// A record never attached expires (DynamoDB TTL) this long after its creation; its
/// object goes the day after upload (the bucket's lifecycle rule).
pub const PENDING_RECORD_TTL_MS: Millis = 2 * 24 * 3600 * 1000;
/// The tag an upload carries until a message refers to it (the lifecycle rule's filter).
pub const PENDING_TAG: &str = "state=pending";
/// File names: 1 to 255 characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// Content types a client may upload. Raster images are shown inline; everything else
/// (SVG and HTML included) is served as a download.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/svg+xml",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/html",
    "application/zip",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "video/mp4",
    "video/webm",
    "video/quicktime",
];

/// Raster images browsers show and the thumbnailer reads.
const INLINE_IMAGES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// A file name as the client gave it: 1-255 characters, no path separators, no control
/// characters (it ends up in a `Content-Disposition` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bad = |reason: &str| Err(InvalidInput::new("fileName", reason));
        if s.trim().is_empty() {
            return bad("must not be empty");
        }
        if s.chars().nth(MAX_FILE_NAME_CHARS).is_some() {
            return bad("must be at most 255 characters");
        }
        if s.chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '"'))
        {
            return bad("must not contain control characters, quotes or path separators");
        }
        Ok(FileName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FileName {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, InvalidInput> {
        Self::parse(&s)
    }
}

impl From<FileName> for String {
    fn from(f: FileName) -> String {
        f.0
    }
}

/// A content type from [`ALLOWED_TYPES`] (compared without parameters, lower case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentType(String);

impl ContentType {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let t = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match ALLOWED_TYPES.iter().find(|a| **a == t) {
            Some(a) => Ok(ContentType((*a).to_owned())),
            None => Err(InvalidInput::new(
                "contentType",
                "is not an allowed type (images, PDF, office documents, text, audio, video)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A raster image browsers may show inline (and the thumbnailer reads).
    pub fn is_inline_image(&self) -> bool {
        INLINE_IMAGES.contains(&self.0.as_str())
    }
}

impl TryFrom<String> for ContentType {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, InvalidInput> {
        Self::parse(&s)
    }
}

impl From<ContentType> for String {
    fn from(c: ContentType) -> String {
        c.0
    }
}

/// A declared upload size: 1 byte to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredSize(u64);

impl DeclaredSize {
    pub fn parse(size: u64, max: u64) -> Result<Self, ApiError> {
        if size == 0 {
            return Err(InvalidInput::new("size", "must be at least 1 byte").into());
        }
        if size > max {
            return Err(ApiError::PayloadTooLarge(format!(
                "an attachment is at most {max} bytes"
            )));
        }
        Ok(DeclaredSize(size))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// Whether a message refers to an upload yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentState {
    /// Asked for, maybe uploaded, in no message (expires after a day).
    Pending,
    /// In a message.
    Attached,
}

/// A thumbnail's outcome, written by the thumbnailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The original image's size in pixels.
    pub width: u32,
    pub height: u32,
    /// The thumbnail's size in pixels.
    pub thumb_width: u32,
    pub thumb_height: u32,
}

/// The record of one upload (the `Attachments` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub attachment_id: AttachmentId,
    pub chat_id: ChatId,
    pub uploader_id: UserId,
    pub file_name: FileName,
    pub content_type: ContentType,
    pub size: u64,
    pub state: AttachmentState,
    pub created_at: Millis,
    /// The message's position, once attached.
    pub position: Option<u64>,
    /// Set by the thumbnailer for images it could read.
    pub preview: Option<Preview>,
    /// The thumbnailer refused the object (corrupt, hostile, too large).
    pub preview_failed: bool,
}

impl Attachment {
    /// The upload's object key.
    pub fn object_key(&self) -> String {
        object_key(&self.chat_id, &self.attachment_id)
    }

    /// The thumbnail's object key.
    pub fn thumbnail_key(&self) -> String {
        thumbnail_key(&self.chat_id, &self.attachment_id)
    }

    /// What a message carries about it.
    pub fn to_ref(&self) -> AttachmentRef {
        AttachmentRef {
            attachment_id: self.attachment_id.clone(),
            file_name: self.file_name.as_str().to_owned(),
            content_type: self.content_type.as_str().to_owned(),
            size: self.size,
        }
    }
}

/// `chats/{chatId}/{attachmentId}`.
pub fn object_key(chat: &ChatId, id: &AttachmentId) -> String {
    format!("chats/{chat}/{id}")
}

/// `thumbs/{chatId}/{attachmentId}`.
pub fn thumbnail_key(chat: &ChatId, id: &AttachmentId) -> String {
    format!("thumbs/{chat}/{id}")
}

/// An attachment as a message carries it (clients fetch the bytes with
/// `GET /chats/{chatId}/attachments/{attachmentId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    pub attachment_id: AttachmentId,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

/// The text a preview (chat list, push) shows for a message: its text, else
/// "📷 Photo" for a message of images, else the first file's name.
pub fn preview_text(text: &str, attachments: &[AttachmentRef]) -> String {
    if !text.trim().is_empty() || attachments.is_empty() {
        return text.to_owned();
    }
    let images = attachments
        .iter()
        .all(|a| INLINE_IMAGES.contains(&a.content_type.as_str()));
    match (images, attachments.len()) {
        (true, 1) => "📷 Photo".to_owned(),
        (true, n) => format!("📷 {n} photos"),
        (false, 1) => format!("📎 {}", attachments[0].file_name),
        (false, n) => format!("📎 {} and {} more", attachments[0].file_name, n - 1),
    }
}

/// A presigned upload: send `method` to `url` with exactly these `headers` and the
/// file as the body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUpload {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_in_seconds: u64,
}

/// A presigned download.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedDownload {
    pub url: String,
    pub content_type: String,
    pub expires_in_seconds: u64,
}

/// What a send publishes to the thumbnail topic for each new photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailJob {
    /// Always [`ThumbnailJob::KIND`].
    pub kind: String,
    pub attachment_id: AttachmentId,
    pub chat_id: ChatId,
}

impl ThumbnailJob {
    pub const KIND: &'static str = "thumbnail";
}

/// The S3 side of attachments, built once at init.
#[derive(Debug, Clone)]
pub struct AttachmentService {
    s3: aws_sdk_s3::Client,
    config: AttachmentConfig,
    /// Publishes [`ThumbnailJob`]s when a thumbnail topic is configured.
    sns: Option<aws_sdk_sns::Client>,
}

fn s3_error<E>(op: &'static str, e: aws_sdk_s3::error::SdkError<E>) -> ApiError
where
    E: std::error::Error + Send + Sync + 'static,
{
    tracing::warn!(op, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "S3 call failed");
    ApiError::Unavailable(Box::new(e))
}

fn presigning(ttl: Duration) -> Result<aws_sdk_s3::presigning::PresigningConfig, ApiError> {
    aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

impl AttachmentService {
    pub fn new(s3: aws_sdk_s3::Client, config: AttachmentConfig) -> Self {
        AttachmentService {
            s3,
            config,
            sns: None,
        }
    }

    /// With `sns` to publish thumbnail jobs (to `config.thumbnail_topic_arn`).
    pub fn with_sns(mut self, sns: aws_sdk_sns::Client) -> Self {
        self.sns = Some(sns);
        self
    }

    /// Ask the thumbnailer for previews of a new message's photos (one SNS message
    /// each; nothing without a topic). A failure is logged: the message shows a
    /// generic file instead.
    pub async fn request_thumbnails(&self, chat: &ChatId, attachments: &[AttachmentRef]) {
        let (Some(sns), Some(topic)) = (&self.sns, &self.config.thumbnail_topic_arn) else {
            return;
        };
        for a in attachments
            .iter()
            .filter(|a| INLINE_IMAGES.contains(&a.content_type.as_str()))
        {
            let job = ThumbnailJob {
                kind: ThumbnailJob::KIND.to_owned(),
                attachment_id: a.attachment_id.clone(),
                chat_id: chat.clone(),
            };
            let body = serde_json::to_string(&job).unwrap_or_default();
            if let Err(e) = sns.publish().topic_arn(topic).message(body).send().await {
                tracing::warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&e), attachment = %a.attachment_id, "thumbnail job not published");
            }
        }
    }

    pub fn config(&self) -> &AttachmentConfig {
        &self.config
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// A presigned `PUT` of exactly `a.size` bytes of `a.content_type`, tagged pending.
    pub async fn presign_upload(&self, a: &Attachment) -> Result<PresignedUpload, ApiError> {
        let req = self
            .s3
            .put_object()
            .bucket(&self.config.bucket)
            .key(a.object_key())
            .content_length(a.size as i64)
            .content_type(a.content_type.as_str())
            .tagging(PENDING_TAG)
            .presigned(presigning(UPLOAD_URL_TTL)?)
            .await
            .map_err(|e| s3_error("PresignPutObject", e))?;
        let headers = req
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        Ok(PresignedUpload {
            method: req.method().to_owned(),
            url: req.uri().to_owned(),
            headers,
            expires_in_seconds: UPLOAD_URL_TTL.as_secs(),
        })
    }

    /// The upload is in the bucket with the declared size and type. `validation_failed`
    /// (field `attachments`) otherwise.
    pub async fn verify_uploaded(&self, a: &Attachment) -> Result<(), ApiError> {
        let refuse = |why: String| {
            ApiError::Validation(InvalidInput::new(
                "attachments",
                format!("{}: {why}", a.attachment_id),
            ))
        };
        let head = match self
            .s3
            .head_object()
            .bucket(&self.config.bucket)
            .key(a.object_key())
            .send()
            .await
        {
            Ok(h) => h,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => {
                return Err(refuse("not uploaded".into()));
            }
            Err(e) => return Err(s3_error("HeadObject", e)),
        };
        let size = head.content_length().unwrap_or(-1);
        if size != a.size as i64 {
            return Err(refuse(format!(
                "the upload has {size} bytes, {} were declared",
                a.size
            )));
        }
        let ty = head.content_type().unwrap_or("");
        if ContentType::parse(ty).ok().as_ref() != Some(&a.content_type) {
            return Err(refuse(format!(
                "the upload is {ty:?}, {} was declared",
                a.content_type.as_str()
            )));
        }
        Ok(())
    }

    /// Drop the pending tag: the lifecycle rule no longer deletes the object.
    pub async fn keep(&self, a: &Attachment) -> Result<(), ApiError> {
        self.s3
            .delete_object_tagging()
            .bucket(&self.config.bucket)
            .key(a.object_key())
            .send()
            .await
            .map_err(|e| s3_error("DeleteObjectTagging", e))?;
        Ok(())
    }

    /// A presigned `GET` of the upload (`thumbnail`: of its preview). Anything but a
    /// raster image downloads (`Content-Disposition: attachment`) instead of rendering.
    pub async fn presign_download(
        &self,
        a: &Attachment,
        thumbnail: bool,
    ) -> Result<PresignedDownload, ApiError> {
        let (key, content_type) = if thumbnail {
            (a.thumbnail_key(), "image/jpeg".to_owned())
        } else {
            (a.object_key(), a.content_type.as_str().to_owned())
        };
        let disposition = if thumbnail || a.content_type.is_inline_image() {
            "inline"
        } else {
            "attachment"
        };
        let req = self
            .s3
            .get_object()
            .bucket(&self.config.bucket)
            .key(key)
            .response_content_type(&content_type)
            .response_content_disposition(format!(
                "{disposition}; filename=\"{}\"",
                ascii_file_name(a.file_name.as_str())
            ))
            .presigned(presigning(DOWNLOAD_URL_TTL)?)
            .await
            .map_err(|e| s3_error("PresignGetObject", e))?;
        Ok(PresignedDownload {
            url: req.uri().to_owned(),
            content_type,
            expires_in_seconds: DOWNLOAD_URL_TTL.as_secs(),
        })
    }

    /// Delete the objects (upload and thumbnail) of these attachments. Missing objects
    /// are fine (S3 answers a delete of a missing key with success).
    pub async fn delete_objects(&self, attachments: &[Attachment]) -> Result<(), ApiError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let keys: Vec<String> = attachments
            .iter()
            .flat_map(|a| [a.object_key(), a.thumbnail_key()])
            .collect();
        stream::iter(keys)
            .map(|key| async move {
                self.s3
                    .delete_object()
                    .bucket(&self.config.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| s3_error("DeleteObject", e))
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }
}

/// Check the attachments a send names and return what the message will carry: 1 to
/// [`MAX_ATTACHMENTS_PER_MESSAGE`] distinct ids; each the sender's upload to `chat`
/// (else `attachment_unavailable`, the same answer for unknown ids and other people's,
/// so ids cannot be probed); each pending one uploaded with its declared size and type
/// ([`AttachmentService::verify_uploaded`]) and then kept from expiry. Already attached
/// ones pass here (a retried send finds its original); the append's condition refuses
/// them for a new message.
pub async fn prepare_for_send(
    store: &crate::store::Store,
    service: Option<&AttachmentService>,
    sender: &UserId,
    chat: &ChatId,
    ids: &[AttachmentId],
) -> Result<Vec<AttachmentRef>, ApiError> {
    let invalid = |reason: &str| ApiError::Validation(InvalidInput::new("attachments", reason));
    let Some(service) = service else {
        return Err(invalid("this deployment stores no attachments"));
    };
    if ids.is_empty() {
        return Err(invalid("must name at least one attachment"));
    }
    if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(invalid("a message carries at most 10 attachments"));
    }
    let distinct: std::collections::BTreeSet<&AttachmentId> = ids.iter().collect();
    if distinct.len() != ids.len() {
        return Err(invalid("names an attachment twice"));
    }
    let records = futures::future::try_join_all(ids.iter().map(|id| store.get_attachment(id)))
        .await
        .map_err(ApiError::from)?;
    let mut out = Vec::with_capacity(records.len());
    for record in &records {
        match record {
            Some(a) if &a.uploader_id == sender && &a.chat_id == chat => out.push(a),
            _ => {
                return Err(crate::store::StoreError::Conflict(
                    crate::store::Conflict::AttachmentUnavailable,
                )
                .into())
            }
        }
    }
    let pending: Vec<&Attachment> = out
        .iter()
        .copied()
        .filter(|a| a.state == AttachmentState::Pending)
        .collect();
    futures::future::try_join_all(pending.iter().map(|a| service.verify_uploaded(a))).await?;
    futures::future::try_join_all(pending.iter().map(|a| service.keep(a))).await?;
    Ok(out.into_iter().map(Attachment::to_ref).collect())
}

/// Account deletion: delete every upload of `user` (objects and thumbnails, then the
/// records). Idempotent. Without a configured bucket there is nothing to delete.
pub async fn delete_user_attachments(
    store: &crate::store::Store,
    service: Option<&AttachmentService>,
    user: &UserId,
) -> Result<(), ApiError> {
    let Some(service) = service else {
        return Ok(());
    };
    let all = store
        .attachments_by_uploader(user)
        .await
        .map_err(ApiError::from)?;
    delete_attachments(store, service, &all).await
}

/// Message deletion: delete the objects and records of a message's attachments (call
/// it after the message is deleted or blanked). Idempotent; unknown ids are skipped.
pub async fn delete_message_attachments(
    store: &crate::store::Store,
    service: Option<&AttachmentService>,
    message: &crate::model::Message,
) -> Result<(), ApiError> {
    let Some(service) = service else {
        return Ok(());
    };
    let found = futures::future::try_join_all(
        message
            .attachments
            .iter()
            .map(|a| store.get_attachment(&a.attachment_id)),
    )
    .await
    .map_err(ApiError::from)?;
    let found: Vec<Attachment> = found
        .into_iter()
        .flatten()
        .filter(|a| a.chat_id == message.chat_id)
        .collect();
    delete_attachments(store, service, &found).await
}

async fn delete_attachments(
    store: &crate::store::Store,
    service: &AttachmentService,
    all: &[Attachment],
) -> Result<(), ApiError> {
    for chunk in all.chunks(100) {
        service.delete_objects(chunk).await?;
        futures::future::try_join_all(
            chunk
                .iter()
                .map(|a| store.delete_attachment(&a.attachment_id)),
        )
        .await
        .map_err(ApiError::from)?;
    }
    Ok(())
}

/// The name in a `Content-Disposition` header: ASCII only (others become `_`).
fn ascii_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_an_allow_list() {
        assert!(ContentType::parse("image/PNG").unwrap().is_inline_image());
        assert!(!ContentType::parse("image/svg+xml")
            .unwrap()
            .is_inline_image());
        assert!(ContentType::parse("text/plain; charset=utf-8").is_ok());
        assert!(ContentType::parse("application/x-msdownload").is_err());
        assert!(ContentType::parse("").is_err());
    }

    #[test]
    fn file_names_refuse_paths_and_controls() {
        assert!(FileName::parse("cat.png").is_ok());
        assert!(FileName::parse("../etc/passwd").is_err());
        assert!(FileName::parse("a\r\nb").is_err());
        assert!(FileName::parse(" ").is_err());
        assert!(FileName::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn previews_name_photos_and_files() {
        let r = |t: &str, n: &str| AttachmentRef {
            attachment_id: AttachmentId::generate(),
            file_name: n.into(),
            content_type: t.into(),
            size: 1,
        };
        assert_eq!(preview_text("", &[r("image/png", "a.png")]), "📷 Photo");
        assert_eq!(
            preview_text("", &[r("application/pdf", "q.pdf")]),
            "📎 q.pdf"
        );
        assert_eq!(preview_text("hi", &[r("image/png", "a.png")]), "hi");
    }
}
