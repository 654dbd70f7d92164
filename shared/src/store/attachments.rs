//! Attachment records: key `attachmentId`; GSI `byUploader` (`uploaderId`, `createdAt`,
//! ALL) for export and account deletion; `ttl` on records never attached.
//!
//! Item: `attachmentId`, `chatId`, `uploaderId`, `fileName`, `contentType`, `size` N,
//! `state` (`pending`/`attached`), `createdAt` N, `ttl` N? (pending only), `pos` N?
//! (the message, once attached), `width`/`height`/`thumbWidth`/`thumbHeight` N? (the
//! thumbnailer), `previewFailed` BOOL?. ~250 B.
//!
//! Attaching is part of the message's append transaction ([`attach_item`]): each
//! record moves from pending to attached only if it is the sender's upload to this
//! chat, so one upload is in at most one message.

use super::codec::{n, s, Item, Reader};
use super::users::build_err;
use super::{Store, StoreError, StoreResult};
use crate::attachments::{Attachment, AttachmentState, ContentType, FileName, Preview};
use crate::ids::{AttachmentId, ChatId, UserId};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;

fn attachment_from(item: &Item, table: &str) -> StoreResult<Attachment> {
    let r = Reader::new(item, table);
    let state = match r.str("state")? {
        "pending" => AttachmentState::Pending,
        "attached" => AttachmentState::Attached,
        _ => {
            return Err(StoreError::Corrupt {
                table: table.into(),
                reason: "state: unknown".into(),
            })
        }
    };
    let preview = match (
        r.opt_num::<u32>("width")?,
        r.opt_num::<u32>("height")?,
        r.opt_num::<u32>("thumbWidth")?,
        r.opt_num::<u32>("thumbHeight")?,
    ) {
        (Some(width), Some(height), Some(thumb_width), Some(thumb_height)) => Some(Preview {
            width,
            height,
            thumb_width,
            thumb_height,
        }),
        _ => None,
    };
    Ok(Attachment {
        attachment_id: r.parsed("attachmentId", AttachmentId::parse)?,
        chat_id: r.parsed("chatId", ChatId::parse)?,
        uploader_id: r.parsed("uploaderId", UserId::parse)?,
        file_name: r.parsed("fileName", FileName::parse)?,
        content_type: r.parsed("contentType", ContentType::parse)?,
        size: r.num("size")?,
        state,
        created_at: r.num("createdAt")?,
        position: r.opt_num("pos")?,
        preview,
        preview_failed: r.bool_or("previewFailed", false)?,
    })
}

impl Store {
    /// The transaction item that attaches `id` to the message at `pos`: only the sender's
    /// pending upload to this chat passes the condition.
    pub(crate) fn attach_item(
        &self,
        id: &AttachmentId,
        chat: &ChatId,
        sender: &UserId,
        pos: u64,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.t.attachments)
            .key("attachmentId", s(id.as_str()))
            .update_expression("SET #st = :attached, pos = :pos REMOVE #ttl")
            .condition_expression("uploaderId = :u AND chatId = :c AND #st = :pending")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":attached", s("attached"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":pos", n(pos))
            .expression_attribute_values(":u", s(sender.as_str()))
            .expression_attribute_values(":c", s(chat.as_str()))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Record a pending upload (PutItem, `attribute_not_exists`), expiring at `ttl_ms`.
    pub async fn put_attachment(
        &self,
        a: &Attachment,
        ttl_ms: crate::model::Millis,
    ) -> StoreResult<()> {
        let item: Item = HashMap::from([
            ("attachmentId".to_owned(), s(a.attachment_id.as_str())),
            ("chatId".to_owned(), s(a.chat_id.as_str())),
            ("uploaderId".to_owned(), s(a.uploader_id.as_str())),
            ("fileName".to_owned(), s(a.file_name.as_str())),
            ("contentType".to_owned(), s(a.content_type.as_str())),
            ("size".to_owned(), n(a.size)),
            ("state".to_owned(), s("pending")),
            ("createdAt".to_owned(), n(a.created_at)),
            ("ttl".to_owned(), n(ttl_ms / 1000)),
        ]);
        self.db
            .put_item()
            .table_name(&self.t.attachments)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(attachmentId)")
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// One attachment record (GetItem, consistent).
    pub async fn get_attachment(&self, id: &AttachmentId) -> StoreResult<Option<Attachment>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.attachments)
            .key("attachmentId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| attachment_from(i, &self.t.attachments))
            .transpose()
    }

    /// Every upload of `user`, oldest first (Query GSI `byUploader`, all pages).
    pub async fn attachments_by_uploader(&self, user: &UserId) -> StoreResult<Vec<Attachment>> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.t.attachments)
                .index_name("byUploader")
                .key_condition_expression("uploaderId = :u")
                .expression_attribute_values(":u", s(user.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in page.items() {
                out.push(attachment_from(item, &self.t.attachments)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Forget an attachment record (DeleteItem; idempotent).
    pub async fn delete_attachment(&self, id: &AttachmentId) -> StoreResult<()> {
        self.db
            .delete_item()
            .table_name(&self.t.attachments)
            .key("attachmentId", s(id.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        Ok(())
    }

    /// The thumbnailer's outcome: the image's and the thumbnail's size, or (`None`)
    /// that the object could not be read as an image (UpdateItem, record must exist).
    pub async fn set_attachment_preview(
        &self,
        id: &AttachmentId,
        preview: Option<&Preview>,
    ) -> StoreResult<()> {
        let mut req = self
            .db
            .update_item()
            .table_name(&self.t.attachments)
            .key("attachmentId", s(id.as_str()))
            .condition_expression("attribute_exists(attachmentId)");
        req = match preview {
            Some(p) => req
                .update_expression(
                    "SET width = :w, height = :h, thumbWidth = :tw, thumbHeight = :th REMOVE previewFailed",
                )
                .expression_attribute_values(":w", n(p.width))
                .expression_attribute_values(":h", n(p.height))
                .expression_attribute_values(":tw", n(p.thumb_width))
                .expression_attribute_values(":th", n(p.thumb_height)),
            None => req
                .update_expression("SET previewFailed = :t")
                .expression_attribute_values(":t", AttributeValue::Bool(true)),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if super::codec::is_condition_failed(&e) => {
                Err(StoreError::NotFound("attachment"))
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}
