//! Idempotent group operations: a client request id makes a retried group creation
//! return the first group instead of making a second one.
//!
//! A claim item in `MessageDedup`, key `group#{creator}#{clientRequestId}`, holds the id
//! of the group that request creates (`chatId`) and a `ttl` of [`REQUEST_CLAIM_TTL_MS`].
//! The claim is written first (conditional put, so of two concurrent tries one claims);
//! every try then creates the group under the claimed id, which is safe to repeat (see
//! [`Store::create_group_as`]): a try that died half-way is finished by the retry, and a
//! retry after success finds the group and writes nothing.

use super::chats::NewGroup;
use super::codec::{n, s, Reader};
use super::{Store, StoreError, StoreResult};
use crate::ids::{ChatId, ClientRequestId, UserId};
use crate::model::{Chat, Message, Millis};

/// How long a group request id is remembered (30 days: an offline client's retry).
pub const REQUEST_CLAIM_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// How many groups one user may create per UTC day (REST `POST /chats`).
pub const MAX_GROUPS_PER_DAY: u32 = 50;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What an idempotent group creation did.
#[derive(Debug, Clone)]
pub enum GroupCreated {
    /// This request created the group (its first message included).
    New(Chat, Box<Message>),
    /// An earlier try of the same request created it; nothing was written now.
    Existing(Chat),
}

fn claim_key(creator: &UserId, request: &ClientRequestId) -> String {
    format!("group#{creator}#{request}")
}

impl Store {
    /// Create `group` once per (creator, `request`): see the module doc.
    pub async fn create_group_once(
        &self,
        group: &NewGroup,
        request: &ClientRequestId,
        now: Millis,
    ) -> StoreResult<GroupCreated> {
        let key = claim_key(&group.creator, request);
        let fresh = ChatId::new_group();
        let res = self
            .db
            .put_item()
            .table_name(&self.t.message_dedup)
            .item("dedupKey", s(&key))
            .item("chatId", s(fresh.as_str()))
            .item("ttl", n(super::ttl_seconds(now + REQUEST_CLAIM_TTL_MS)))
            .condition_expression("attribute_not_exists(dedupKey)")
            .send()
            .await;
        let chat_id = match res {
            Ok(_) => {
                if let Err(e) = self.count_group_created(&group.creator, now).await {
                    // Not created: let a later retry of this request try again.
                    let _ = self
                        .db
                        .delete_item()
                        .table_name(&self.t.message_dedup)
                        .key("dedupKey", s(&key))
                        .send()
                        .await;
                    return Err(e);
                }
                fresh
            }
            Err(e) if super::codec::is_condition_failed(&e) => {
                let out = self
                    .db
                    .get_item()
                    .table_name(&self.t.message_dedup)
                    .key("dedupKey", s(&key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("GetItem", e))?;
                let item = out.item().ok_or(StoreError::Contention)?;
                Reader::new(item, &self.t.message_dedup).parsed("chatId", ChatId::parse)?
            }
            Err(e) => return Err(StoreError::sdk("PutItem", e)),
        };
        if let Some(chat) = self.get_chat(&chat_id, true).await? {
            if chat.last_position > 0 {
                return Ok(GroupCreated::Existing(chat));
            }
        }
        match self.create_group_as(group, chat_id.clone(), now).await? {
            Some((chat, message)) => Ok(GroupCreated::New(chat, Box::new(message))),
            None => match self.get_chat(&chat_id, true).await? {
                Some(chat) => Ok(GroupCreated::Existing(chat)),
                None => Err(StoreError::NotFound("chat")),
            },
        }
    }

    /// Count one group created by `user` today (UTC); `Conflict(TooManyGroups)` past
    /// [`MAX_GROUPS_PER_DAY`]. One conditional UpdateItem on a counter item in
    /// `MessageDedup` (`groups#{user}#{day}`, expiring two days later).
    pub async fn count_group_created(&self, user: &UserId, now: Millis) -> StoreResult<()> {
        let day = now / DAY_MS;
        let res = self
            .db
            .update_item()
            .table_name(&self.t.message_dedup)
            .key("dedupKey", s(format!("groups#{user}#{day}")))
            .update_expression("ADD #n :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", "created")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_GROUPS_PER_DAY))
            .expression_attribute_values(":ttl", n(super::ttl_seconds((day + 2) * DAY_MS)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::codec::is_condition_failed(&e) => {
                Err(StoreError::Conflict(super::Conflict::TooManyGroups))
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}
