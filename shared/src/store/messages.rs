//! Messages and the append transaction.
//!
//! - `Messages`: key (`chatId`, `pos`), `pos` a Number, 1-based and gap-free.
//! - `MessageDedup`: key `dedupKey` = `{chatId}#{senderId}#{clientMessageId}`, pointing
//!   at the stored message. Kept as long as the message (no TTL), so a retry, however
//!   late, never creates a second message.
//!
//! Appending reads the chat (strongly consistent) for its `lastPosition` P, then runs
//! one transaction: [sender's membership, dedup claim, chat P -> P+1, message at P+1]
//! (text messages), or [the caller's extra items, chat, message] (system messages).
//! That is the two sequential DynamoDB round trips the sender's acknowledgement waits
//! on. A lost race on P retries from the read.

use super::codec::{n, s, Item, Reader};
use super::users::build_err;
use super::{backoff, Store, StoreError, StoreResult, MAX_ATTEMPTS};
use crate::attachments::{preview_text, AttachmentRef};
use crate::ids::{ChatId, ClientMessageId, MessageId, UserId};
use crate::input::MessageText;
use crate::model::{Chat, LastMessage, Message, MessageKind, Millis, SystemEvent, PREVIEW_CHARS};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use std::collections::HashMap;

/// A message to append; its position is decided by the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub kind: MessageKind,
    pub sender_id: Option<UserId>,
    pub client_message_id: Option<ClientMessageId>,
    pub text: String,
    pub system: Option<SystemEvent>,
    pub sent_at: Millis,
    pub attachments: Vec<AttachmentRef>,
}

/// The result of an append.
#[derive(Debug, Clone)]
pub struct Appended {
    pub message: Message,
    /// True when the same (sender, clientMessageId) was already stored: `message` is
    /// the original and nothing new was written.
    pub duplicate: bool,
    /// The message's fan-out was never marked done ([`Store::fan_out_done`]): true for
    /// a new message, and for a duplicate whose first sender's invocation stopped (was
    /// killed, timed out, or failed to reach the members) between storing it and
    /// finishing its delivery. Whoever gets `true` delivers it.
    pub fan_out_pending: bool,
    /// The chat as it is after the append (for duplicates: as read).
    pub chat: Chat,
}

/// One page of history, in ascending position order.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the direction that was read.
    pub has_more: bool,
}

pub(crate) fn message_from(item: &Item, table: &str) -> StoreResult<Message> {
    let r = Reader::new(item, table);
    let kind = match r.str("kind")? {
        "text" => MessageKind::Text,
        "system" => MessageKind::System,
        _ => {
            return Err(StoreError::Corrupt {
                table: table.into(),
                reason: "kind: unknown".into(),
            })
        }
    };
    Ok(Message {
        chat_id: r.parsed("chatId", ChatId::parse)?,
        message_id: r.parsed("messageId", MessageId::parse)?,
        position: r.num("pos")?,
        kind,
        sender_id: r.opt_parsed("senderId", UserId::parse)?,
        client_message_id: r.opt_parsed("clientMessageId", ClientMessageId::parse)?,
        text: r.string("text")?,
        system: r.json("system")?,
        sent_at: r.num("sentAt")?,
        deleted: r.bool_or("deleted", false)?,
        edited_at: r.opt_num("editedAt")?,
        edit_count: r.num_or("editCount", 0)?,
        attachments: r.json("attachments")?.unwrap_or_default(),
    })
}

pub(crate) fn message_item(m: &Message) -> Item {
    let mut item = HashMap::from([
        ("chatId".to_owned(), s(m.chat_id.as_str())),
        ("pos".to_owned(), n(m.position)),
        ("messageId".to_owned(), s(m.message_id.as_str())),
        (
            "kind".to_owned(),
            s(match m.kind {
                MessageKind::Text => "text",
                MessageKind::System => "system",
            }),
        ),
        ("text".to_owned(), s(&m.text)),
        ("sentAt".to_owned(), n(m.sent_at)),
    ]);
    if let Some(sender) = &m.sender_id {
        item.insert("senderId".into(), s(sender.as_str()));
    }
    if let Some(cid) = &m.client_message_id {
        item.insert("clientMessageId".into(), s(cid.as_str()));
    }
    if m.deleted {
        item.insert("deleted".into(), AttributeValue::Bool(true));
    }
    if let Some(at) = m.edited_at {
        item.insert("editedAt".into(), n(at));
    }
    if m.edit_count > 0 {
        item.insert("editCount".into(), n(m.edit_count));
    }
    if !m.attachments.is_empty() {
        item.insert(
            "attachments".into(),
            s(serde_json::to_string(&m.attachments).unwrap_or_default()),
        );
    }
    if let Some(sys) = &m.system {
        item.insert(
            "system".into(),
            s(serde_json::to_string(sys).unwrap_or_default()),
        );
    }
    item
}

pub(crate) fn last_message_value(m: &Message) -> AttributeValue {
    let mut map = HashMap::from([
        ("messageId".to_owned(), s(m.message_id.as_str())),
        ("pos".to_owned(), n(m.position)),
        (
            "preview".to_owned(),
            s(crate::input::preview(
                &preview_text(&m.text, &m.attachments),
                PREVIEW_CHARS,
            )),
        ),
        ("sentAt".to_owned(), n(m.sent_at)),
    ]);
    if let Some(sender) = &m.sender_id {
        map.insert("senderId".into(), s(sender.as_str()));
    }
    AttributeValue::M(map)
}

pub(crate) fn last_message_from(
    map: &HashMap<String, AttributeValue>,
    table: &str,
) -> StoreResult<LastMessage> {
    let r = Reader::new(map, table);
    Ok(LastMessage {
        message_id: r.parsed("messageId", MessageId::parse)?,
        position: r.num("pos")?,
        sender_id: r.opt_parsed("senderId", UserId::parse)?,
        preview: r.string("preview")?,
        sent_at: r.num("sentAt")?,
    })
}

pub(crate) fn dedup_key(chat: &ChatId, sender: &UserId, cid: &ClientMessageId) -> String {
    format!("{chat}#{sender}#{cid}")
}

/// Changes to the chat item that ride along with a message in one transaction.
#[derive(Default)]
pub(crate) struct ChatChange {
    /// Extra `SET` clauses, e.g. `memberCount = memberCount + :k`.
    pub set: Vec<String>,
    /// Extra conditions, ANDed with the position check.
    pub condition: Vec<String>,
    pub names: Vec<(String, String)>,
    pub values: Vec<(String, AttributeValue)>,
}

/// The items of a cancelled transaction whose condition failed, by their place in
/// the transaction. A commit's `before` items keep their places (0, 1, ...); each
/// caller names the places of its items (`const MEMBER: usize = 0`) and asks by name.
pub(crate) struct FailedConditions(Vec<bool>);

impl FailedConditions {
    /// Whether the item at `place` failed its condition.
    pub(crate) fn failed(&self, place: usize) -> bool {
        self.0.get(place).copied().unwrap_or(false)
    }

    /// Whether any item in `places` failed its condition.
    pub(crate) fn any_failed(&self, places: std::ops::Range<usize>) -> bool {
        places.into_iter().any(|p| self.failed(p))
    }
}

/// Why a commit did not happen.
pub(crate) enum CommitFailure {
    /// Some items failed their conditions.
    Conditions(FailedConditions),
    /// Another transaction touched the same items; try again.
    Conflict,
    Store(StoreError),
}

impl Store {
    /// Append `new` to `chat` (as read) at `chat.last_position + 1`, together with
    /// `before` items and `change` to the chat item, in one transaction. The chat item
    /// and the message are the last two items.
    pub(crate) async fn commit_message(
        &self,
        chat: &Chat,
        new: &NewMessage,
        before: Vec<TransactWriteItem>,
        change: ChatChange,
    ) -> Result<Message, CommitFailure> {
        let message = Message {
            chat_id: chat.chat_id.clone(),
            message_id: MessageId::generate(),
            position: chat.last_position + 1,
            kind: new.kind,
            sender_id: new.sender_id.clone(),
            client_message_id: new.client_message_id.clone(),
            text: new.text.clone(),
            system: new.system.clone(),
            sent_at: new.sent_at,
            deleted: false,
            edited_at: None,
            edit_count: 0,
            attachments: new.attachments.clone(),
        };
        let mut set = vec![
            "lastPosition = :newpos".to_owned(),
            "lastMessage = :lm".to_owned(),
            "lastActivityAt = :now".to_owned(),
        ];
        set.extend(change.set);
        let mut cond = vec!["lastPosition = :oldpos".to_owned()];
        cond.extend(change.condition);
        let mut chat_update = Update::builder()
            .table_name(&self.t.chats)
            .key("chatId", s(chat.chat_id.as_str()))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(cond.join(" AND "))
            .expression_attribute_values(":newpos", n(message.position))
            .expression_attribute_values(":oldpos", n(chat.last_position))
            .expression_attribute_values(":lm", last_message_value(&message))
            .expression_attribute_values(":now", n(new.sent_at));
        for (k, v) in change.names {
            chat_update = chat_update.expression_attribute_names(k, v);
        }
        for (k, v) in change.values {
            chat_update = chat_update.expression_attribute_values(k, v);
        }
        let chat_update = chat_update
            .build()
            .map_err(|e| CommitFailure::Store(build_err(e)))?;
        let put_message = Put::builder()
            .table_name(&self.t.messages)
            .set_item(Some(message_item(&message)))
            .condition_expression("attribute_not_exists(pos)")
            .build()
            .map_err(|e| CommitFailure::Store(build_err(e)))?;
        let mut items = before;
        items.push(TransactWriteItem::builder().update(chat_update).build());
        items.push(TransactWriteItem::builder().put(put_message).build());
        match self
            .db
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(message),
            Err(e) => {
                if super::codec::is_transaction_conflict(&e) {
                    return Err(CommitFailure::Conflict);
                }
                match super::codec::cancelled_conditions(&e) {
                    Some(flags) => Err(CommitFailure::Conditions(FailedConditions(flags))),
                    None => Err(CommitFailure::Store(StoreError::sdk(
                        "TransactWriteItems",
                        e,
                    ))),
                }
            }
        }
    }

    /// Append a text message from `sender`: idempotent on `client_message_id`, ordered
    /// by the chat's gap-free positions; `NotMember` / `NotFound("chat")` when the
    /// sender may not write there. Marks the chat read up to the new message for the
    /// sender.
    pub async fn append_text(
        &self,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
        text: &MessageText,
        now: Millis,
    ) -> StoreResult<Appended> {
        self.append_text_reusing_read(None, chat_id, sender, client_message_id, text, now)
            .await
    }

    /// [`Self::append_text`] with the chat already read (consistently, by
    /// `get_chat(chat_id, true)`) by the caller, e.g. alongside other work: the first
    /// attempt uses it instead of reading again. The transaction's condition on the
    /// chat's position makes a read that is out of date by then cost a retry, never a
    /// wrong position.
    pub async fn append_text_reusing_read(
        &self,
        read: Option<Chat>,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
        text: &MessageText,
        now: Millis,
    ) -> StoreResult<Appended> {
        let new = NewMessage {
            kind: MessageKind::Text,
            sender_id: Some(sender.clone()),
            client_message_id: Some(client_message_id.clone()),
            text: text.as_str().to_owned(),
            system: None,
            sent_at: now,
            attachments: Vec::new(),
        };
        self.append_sent(read, chat_id, sender, client_message_id, new, |_| {
            Ok(Vec::new())
        })
        .await
    }

    /// [`Self::append_text_reusing_read`] for a message that may carry attachments
    /// (and then may have an empty `text`): each is attached in the same transaction
    /// (`Conflict(AttachmentUnavailable)` when one is not the sender's pending upload
    /// to this chat; a retried send still finds its original first).
    #[allow(clippy::too_many_arguments)]
    pub async fn append_message(
        &self,
        read: Option<Chat>,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
        text: String,
        attachments: Vec<AttachmentRef>,
        now: Millis,
    ) -> StoreResult<Appended> {
        let new = NewMessage {
            kind: MessageKind::Text,
            sender_id: Some(sender.clone()),
            client_message_id: Some(client_message_id.clone()),
            text,
            system: None,
            sent_at: now,
            attachments,
        };
        let ids: Vec<_> = new
            .attachments
            .iter()
            .map(|a| a.attachment_id.clone())
            .collect();
        self.append_sent(read, chat_id, sender, client_message_id, new, |pos| {
            ids.iter()
                .map(|id| self.attach_item(id, chat_id, sender, pos))
                .collect()
        })
        .await
    }

    /// The append loop of a sender's message: `extra(position)` are the items the
    /// transaction also writes (after the membership and dedup items); a failed
    /// condition on one of them is `Conflict(AttachmentUnavailable)`.
    async fn append_sent(
        &self,
        read: Option<Chat>,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
        new: NewMessage,
        extra: impl Fn(u64) -> StoreResult<Vec<TransactWriteItem>>,
    ) -> StoreResult<Appended> {
        let now = new.sent_at;
        let mut read = read.filter(|c| &c.chat_id == chat_id);
        let key = dedup_key(chat_id, sender, client_message_id);
        for attempt in 0..MAX_ATTEMPTS {
            let chat = match read.take() {
                Some(chat) => chat,
                None => match self.get_chat(chat_id, true).await? {
                    Some(chat) => chat,
                    None => return Err(StoreError::NotFound("chat")),
                },
            };
            let newpos = chat.last_position + 1;
            let member = Update::builder()
                .table_name(&self.t.members)
                .key("chatId", s(chat_id.as_str()))
                .key("userId", s(sender.as_str()))
                .update_expression("SET readPos = :p, deliveredPos = :p")
                // A block marks a direct chat's memberships (store::blocks).
                .condition_expression(
                    "attribute_exists(userId) AND attribute_not_exists(blockedByPeer) \
                     AND attribute_not_exists(blocksPeer)",
                )
                .expression_attribute_values(":p", n(newpos))
                .build()
                .map_err(build_err)?;
            let dedup = Put::builder()
                .table_name(&self.t.message_dedup)
                .item("dedupKey", s(&key))
                .item("chatId", s(chat_id.as_str()))
                .item("pos", n(newpos))
                .item("fanOut", s("pending"))
                .condition_expression("attribute_not_exists(dedupKey)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_err)?;
            // The places of the items whose conditions tell why a commit failed.
            const MEMBER: usize = 0;
            const DEDUP: usize = 1;
            let mut before = vec![
                TransactWriteItem::builder().update(member).build(),
                TransactWriteItem::builder().put(dedup).build(),
            ];
            let extra = extra(newpos)?;
            let extras = extra.len();
            before.extend(extra);
            match self
                .commit_message(&chat, &new, before, ChatChange::default())
                .await
            {
                Ok(message) => {
                    let mut chat = chat;
                    chat.last_activity_at = now;
                    chat.last_position = message.position;
                    chat.last_message = Some(LastMessage {
                        message_id: message.message_id.clone(),
                        position: message.position,
                        sender_id: message.sender_id.clone(),
                        preview: crate::input::preview(
                            &preview_text(&message.text, &message.attachments),
                            PREVIEW_CHARS,
                        ),
                        sent_at: message.sent_at,
                    });
                    return Ok(Appended {
                        message,
                        duplicate: false,
                        fan_out_pending: true,
                        chat,
                    });
                }
                Err(CommitFailure::Conditions(failed)) => {
                    if failed.failed(MEMBER) {
                        return Err(self.send_refusal(chat_id, sender).await?);
                    }
                    if failed.failed(DEDUP) {
                        let (pos, fan_out_pending) = self
                            .dedup_record(&key)
                            .await?
                            .ok_or(StoreError::NotFound("original message"))?;
                        let original = self
                            .get_message(chat_id, pos)
                            .await?
                            .ok_or(StoreError::NotFound("original message"))?;
                        return Ok(Appended {
                            message: original,
                            duplicate: true,
                            fan_out_pending,
                            chat,
                        });
                    }
                    if failed.any_failed(DEDUP + 1..DEDUP + 1 + extras) {
                        return Err(StoreError::Conflict(super::Conflict::AttachmentUnavailable));
                    }
                }
                Err(CommitFailure::Conflict) => {}
                Err(CommitFailure::Store(e)) => return Err(e),
            }
            backoff(attempt + 1).await;
        }
        Err(StoreError::Contention)
    }

    /// The message a sender stored under a client id, if any.
    pub async fn find_by_client_id(
        &self,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
    ) -> StoreResult<Option<Message>> {
        let key = dedup_key(chat_id, sender, client_message_id);
        match self.dedup_record(&key).await? {
            Some((pos, _)) => self.get_message(chat_id, pos).await,
            None => Ok(None),
        }
    }

    /// The position a send-dedup item points at, and whether its fan-out is pending.
    async fn dedup_record(&self, key: &str) -> StoreResult<Option<(u64, bool)>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.message_dedup)
            .key("dedupKey", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let r = Reader::new(item, &self.t.message_dedup);
        let pending = r.opt_string("fanOut")?.as_deref() == Some("pending");
        Ok(Some((r.num("pos")?, pending)))
    }

    /// The message sent under `client_message_id` was delivered to the members (its
    /// fan-out finished): a later retry of the send is a plain duplicate. Until this
    /// is called, a retry delivers the message again (see [`Appended::fan_out_pending`]).
    pub async fn fan_out_done(
        &self,
        chat_id: &ChatId,
        sender: &UserId,
        client_message_id: &ClientMessageId,
    ) -> StoreResult<()> {
        self.db
            .update_item()
            .table_name(&self.t.message_dedup)
            .key("dedupKey", s(dedup_key(chat_id, sender, client_message_id)))
            .update_expression("REMOVE fanOut")
            .condition_expression("attribute_exists(dedupKey)")
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    pub async fn get_message(
        &self,
        chat_id: &ChatId,
        position: u64,
    ) -> StoreResult<Option<Message>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.messages)
            .key("chatId", s(chat_id.as_str()))
            .key("pos", n(position))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| message_from(i, &self.t.messages))
            .transpose()
    }

    /// Up to `limit` messages with position > `after`, ascending. A page also ends at
    /// DynamoDB's 1 MB per Query, so a page of very long messages may be shorter.
    pub async fn messages_after(
        &self,
        chat_id: &ChatId,
        after: u64,
        limit: u32,
    ) -> StoreResult<HistoryPage> {
        self.history(chat_id, "pos > :p", after, limit, true).await
    }

    /// Up to `limit` messages with position < `before`, returned ascending.
    pub async fn messages_before(
        &self,
        chat_id: &ChatId,
        before: u64,
        limit: u32,
    ) -> StoreResult<HistoryPage> {
        let mut page = self
            .history(chat_id, "pos < :p", before, limit, false)
            .await?;
        page.messages.reverse();
        Ok(page)
    }

    async fn history(
        &self,
        chat_id: &ChatId,
        cond: &str,
        p: u64,
        limit: u32,
        forward: bool,
    ) -> StoreResult<HistoryPage> {
        let out = self
            .db
            .query()
            .table_name(&self.t.messages)
            .key_condition_expression(format!("chatId = :c AND {cond}"))
            .expression_attribute_values(":c", s(chat_id.as_str()))
            .expression_attribute_values(":p", n(p))
            .scan_index_forward(forward)
            .limit(limit as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let messages = out
            .items()
            .iter()
            .map(|i| message_from(i, &self.t.messages))
            .collect::<StoreResult<Vec<_>>>()?;
        let has_more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        Ok(HistoryPage { messages, has_more })
    }

    /// A condition check that `user` is an admin of `chat` (for group changes).
    pub(crate) fn admin_check(
        &self,
        chat_id: &ChatId,
        user: &UserId,
    ) -> StoreResult<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.t.members)
            .key("chatId", s(chat_id.as_str()))
            .key("userId", s(user.as_str()))
            .condition_expression("#r = :admin")
            .expression_attribute_names("#r", "role")
            .expression_attribute_values(":admin", s("admin"))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}
