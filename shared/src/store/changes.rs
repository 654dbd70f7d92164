//! Changes to stored messages (edit, delete for everyone) and the per-chat change log
//! that `sync` catches up from (docs/data-model.md, "Change sequence").
//!
//! A chat's appends (messages, membership changes, renames) are numbered by its
//! positions; changes to messages already stored are numbered by the chat item's
//! `changeSeq`. Each change is one transaction: [the caller's membership (author) or
//! admin role (deleting another's message in a group), the message (new text or the
//! tombstone, with `seq` = the change's number), the chat (`changeSeq` from the value
//! read to the next; the last-message preview only when the message is the chat's
//! last), the change-log entry]. The log entries live in the Messages table under the
//! partition key `{chatId}#changes` with `pos` = the change's number, so "every change
//! after C" is one strongly consistent Query, gap-free because `changeSeq` moves by
//! exactly one per committed change. Entries hold no text (only the position, the kind
//! and who), so erasing a message's text erases it everywhere.

use super::codec::{b, n, s, Item, Reader};
use super::messages::message_from;
use super::users::build_err;
use super::{backoff, Conflict, Store, StoreError, StoreResult, MAX_ATTEMPTS};
use crate::ids::{ChatId, UserId};
use crate::input::MessageText;
use crate::model::{Chat, ChatKind, Message, MessageKind, Millis, Role, PREVIEW_CHARS};
use aws_sdk_dynamodb::types::{ConditionCheck, KeysAndAttributes, Put, TransactWriteItem, Update};
use std::collections::HashMap;

/// What a change did to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Edited,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Edited => "edited",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// A committed change (or, for a repeated delete, the tombstone as it is).
#[derive(Debug, Clone)]
pub struct MessageChange {
    /// The message after the change.
    pub message: Message,
    /// The chat after the change (its `change_seq` is this change's number).
    pub chat: Chat,
    pub kind: ChangeKind,
    /// False when nothing was written: the message was already deleted.
    pub changed: bool,
    /// The attachments a deletion took off the message (their objects and records
    /// are the caller's to delete: [`crate::attachments::delete_message_attachments`]).
    pub erased_attachments: Vec<crate::attachments::AttachmentRef>,
}

/// One entry of a chat's change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    pub position: u64,
}

/// A page of a chat's change log, ascending.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// More entries follow the last one.
    pub has_more: bool,
}

/// The change log's partition key for `chat`.
pub(crate) fn log_key(chat: &ChatId) -> String {
    format!("{chat}#changes")
}

impl Store {
    /// Replace the text of `author`'s message at `position`. `NotFound("chat")` when
    /// the chat is unknown or the caller is not a member, `NotFound("message")` for an
    /// unknown position, `Conflict(NotAuthor)` for another member's (or a system)
    /// message, `Conflict(MessageDeleted)` once it is deleted.
    pub async fn edit_message(
        &self,
        chat_id: &ChatId,
        position: u64,
        author: &UserId,
        text: &MessageText,
        now: Millis,
    ) -> StoreResult<MessageChange> {
        self.change_message(chat_id, position, author, Some(text), now)
            .await
    }

    /// Delete the message at `position` for everyone: its text is erased in storage,
    /// the position stays as a tombstone (`deleted`). The author may delete their own
    /// message; a group admin any member's message. Deleting a deleted message changes
    /// nothing (`changed: false`). Errors as for [`Store::edit_message`].
    pub async fn delete_message(
        &self,
        chat_id: &ChatId,
        position: u64,
        by: &UserId,
        now: Millis,
    ) -> StoreResult<MessageChange> {
        self.change_message(chat_id, position, by, None, now).await
    }

    async fn change_message(
        &self,
        chat_id: &ChatId,
        position: u64,
        by: &UserId,
        new_text: Option<&MessageText>,
        now: Millis,
    ) -> StoreResult<MessageChange> {
        let kind = if new_text.is_some() {
            ChangeKind::Edited
        } else {
            ChangeKind::Deleted
        };
        for attempt in 0..MAX_ATTEMPTS {
            let (chat, member, message) = tokio::try_join!(
                self.get_chat(chat_id, true),
                self.get_membership(chat_id, by),
                self.get_message(chat_id, position)
            )?;
            let (Some(chat), Some(member)) = (chat, member) else {
                return Err(StoreError::NotFound("chat"));
            };
            let Some(mut message) = message else {
                return Err(StoreError::NotFound("message"));
            };
            let own = message.kind == MessageKind::Text && message.sender_id.as_ref() == Some(by);
            let as_admin = !own
                && kind == ChangeKind::Deleted
                && message.kind == MessageKind::Text
                && chat.kind == ChatKind::Group
                && member.role == Role::Admin;
            if !own && !as_admin {
                return Err(StoreError::Conflict(Conflict::NotAuthor));
            }
            if message.deleted {
                return match kind {
                    ChangeKind::Edited => Err(StoreError::Conflict(Conflict::MessageDeleted)),
                    ChangeKind::Deleted => Ok(MessageChange {
                        message,
                        chat,
                        kind,
                        changed: false,
                        erased_attachments: Vec::new(),
                    }),
                };
            }
            let seq = chat.change_seq + 1;
            // The caller still a member (and still an admin, when deleting as one).
            let mut check = ConditionCheck::builder()
                .table_name(&self.t.members)
                .key("chatId", s(chat_id.as_str()))
                .key("userId", s(by.as_str()));
            check = if as_admin {
                check
                    .condition_expression("#r = :admin")
                    .expression_attribute_names("#r", "role")
                    .expression_attribute_values(":admin", s("admin"))
            } else {
                check.condition_expression("attribute_exists(userId)")
            };
            let check = check.build().map_err(build_err)?;
            let mut update = Update::builder()
                .table_name(&self.t.messages)
                .key("chatId", s(chat_id.as_str()))
                .key("pos", n(position))
                .condition_expression("attribute_exists(pos) AND attribute_not_exists(deleted)")
                .expression_attribute_names("#t", "text")
                .expression_attribute_values(":seq", n(seq));
            let preview_text: String;
            let mut erased_attachments = Vec::new();
            match new_text {
                Some(text) => {
                    update = update
                        .update_expression(
                            "SET #t = :text, editedAt = :now, seq = :seq ADD editCount :one",
                        )
                        .expression_attribute_values(":text", s(text.as_str()))
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":one", n(1));
                    message.text = text.as_str().to_owned();
                    message.edited_at = Some(now);
                    message.edit_count += 1;
                    preview_text = crate::input::preview(&message.text, PREVIEW_CHARS);
                }
                None => {
                    // The dedup claim stays: a late retry of the original send must
                    // find the tombstone, not send the message again.
                    update = update
                        .update_expression(
                            "SET #t = :empty, deleted = :true, deletedAt = :now, seq = :seq \
                             REMOVE attachments",
                        )
                        .expression_attribute_values(":empty", s(""))
                        .expression_attribute_values(":true", b(true))
                        .expression_attribute_values(":now", n(now));
                    message.text = String::new();
                    message.deleted = true;
                    erased_attachments = std::mem::take(&mut message.attachments);
                    preview_text = String::new();
                }
            }
            let update = update.build().map_err(build_err)?;
            // The chat: the next change number; the preview only when this is the
            // last message (a newer message arriving meanwhile fails the condition
            // and the change is tried again, then without the preview).
            let is_last = chat.last_position == position;
            let mut chat_update = Update::builder()
                .table_name(&self.t.chats)
                .key("chatId", s(chat_id.as_str()))
                .expression_attribute_values(":seq", n(seq));
            let mut cond = if chat.change_seq == 0 {
                "(attribute_not_exists(changeSeq) OR changeSeq = :old)".to_owned()
            } else {
                "changeSeq = :old".to_owned()
            };
            chat_update = chat_update.expression_attribute_values(":old", n(chat.change_seq));
            if is_last {
                cond.push_str(" AND lastPosition = :pos");
                chat_update = chat_update
                    .update_expression("SET changeSeq = :seq, lastMessage.preview = :preview")
                    .expression_attribute_values(":pos", n(position))
                    .expression_attribute_values(":preview", s(&preview_text));
            } else {
                chat_update = chat_update.update_expression("SET changeSeq = :seq");
            }
            let chat_update = chat_update
                .condition_expression(cond)
                .build()
                .map_err(build_err)?;
            let entry = Put::builder()
                .table_name(&self.t.messages)
                .item("chatId", s(log_key(chat_id)))
                .item("pos", n(seq))
                .item("at", n(position))
                .item("change", s(kind.as_str()))
                .item("by", s(by.as_str()))
                .item("changedAt", n(now))
                .condition_expression("attribute_not_exists(pos)")
                .build()
                .map_err(build_err)?;
            const MEMBER: usize = 0;
            const MESSAGE: usize = 1;
            let items = vec![
                TransactWriteItem::builder().condition_check(check).build(),
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().update(chat_update).build(),
                TransactWriteItem::builder().put(entry).build(),
            ];
            match self
                .db
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => {
                    let mut chat = chat;
                    chat.change_seq = seq;
                    if let (true, Some(lm)) = (is_last, chat.last_message.as_mut()) {
                        lm.preview = preview_text;
                    }
                    return Ok(MessageChange {
                        message,
                        chat,
                        kind,
                        changed: true,
                        erased_attachments,
                    });
                }
                Err(e) => {
                    if !super::codec::is_transaction_conflict(&e) {
                        match super::codec::cancelled_conditions(&e) {
                            Some(flags) if flags.get(MEMBER).copied().unwrap_or(false) => {
                                // Removed (or demoted) since the read.
                                return Err(if as_admin {
                                    StoreError::Conflict(Conflict::NotAuthor)
                                } else {
                                    StoreError::NotMember
                                });
                            }
                            // The message changed since the read: read it again.
                            Some(flags) if flags.get(MESSAGE).copied().unwrap_or(false) => {}
                            Some(_) => {}
                            None => return Err(StoreError::sdk("TransactWriteItems", e)),
                        }
                    }
                    backoff(attempt + 1).await;
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// Up to `limit` entries of `chat`'s change log after change `after`, ascending
    /// (one strongly consistent Query).
    pub async fn changes_after(
        &self,
        chat_id: &ChatId,
        after: u64,
        limit: u32,
    ) -> StoreResult<LogPage> {
        let out = self
            .db
            .query()
            .table_name(&self.t.messages)
            .key_condition_expression("chatId = :c AND pos > :p")
            .expression_attribute_values(":c", s(log_key(chat_id)))
            .expression_attribute_values(":p", n(after))
            .projection_expression("pos, #at")
            .expression_attribute_names("#at", "at")
            .limit(limit.max(1) as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let entries = out
            .items()
            .iter()
            .map(|i| {
                let r = Reader::new(i, &self.t.messages);
                Ok(LogEntry {
                    seq: r.num("pos")?,
                    position: r.num("at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let has_more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        Ok(LogPage { entries, has_more })
    }

    /// The messages of `chat` at `positions` as they are now (strongly consistent
    /// BatchGetItem, 100 keys a call), ascending by position; unknown positions are
    /// left out.
    pub async fn messages_at(
        &self,
        chat_id: &ChatId,
        positions: &[u64],
    ) -> StoreResult<Vec<Message>> {
        let mut unique: Vec<u64> = positions.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut found: Vec<Message> = Vec::new();
        for chunk in unique.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|p| {
                    HashMap::from([
                        ("chatId".to_owned(), s(chat_id.as_str())),
                        ("pos".to_owned(), n(*p)),
                    ])
                })
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(build_err)?,
            );
            let mut attempt = 0;
            while let Some(req) = pending.take() {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.t.messages, req)
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.t.messages)) {
                    for i in items {
                        found.push(message_from(i, &self.t.messages)?);
                    }
                }
                if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(&self.t.messages)) {
                    if !left.keys().is_empty() {
                        attempt += 1;
                        if attempt > MAX_ATTEMPTS {
                            return Err(StoreError::Contention);
                        }
                        backoff(attempt).await;
                        pending = Some(left.clone());
                    }
                }
            }
        }
        found.sort_by_key(|m| m.position);
        Ok(found)
    }
}
