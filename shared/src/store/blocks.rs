//! Blocks: who a user has blocked, and the marks that make a block cheap to enforce.
//!
//! - The block list is one item per blocker in the `Users` table, key
//!   `userId = "{blocker}#blocks"` (not a user id, so no profile read or name search
//!   ever meets it), with `blocked` a string set of user ids (at most [`MAX_BLOCKS`])
//!   and `updatedAt`. Reading "does X block Y" for many X is one BatchGetItem.
//! - When the two users share a direct chat, the block also marks both memberships of
//!   it: the blocked user's gets `blockedByPeer`, the blocker's gets `blocksPeer`. The
//!   send transaction already conditions the sender's membership item, so refusing a
//!   send into a blocked direct chat costs no extra call (its condition says
//!   `attribute_not_exists(blockedByPeer) AND attribute_not_exists(blocksPeer)`), and
//!   presence announcements skip partners whose membership says the announcing user
//!   blocks them, from the member list they read anyway.
//!
//! A block is written list first, marks second; opening a direct chat reads both
//! users' lists first, so a block and a concurrent first open of the same direct chat
//! can leave that chat unmarked (blocking again marks it).

use super::codec::{b, s, Item, Reader};
use super::users::build_err;
use super::{Conflict, Store, StoreError, StoreResult};
use crate::ids::{ChatId, UserId};
use crate::model::Millis;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;

/// How many users one user may block.
pub const MAX_BLOCKS: usize = 1000;

/// The `Users` key of a user's block list.
fn blocks_key(user: &UserId) -> AttributeValue {
    s(format!("{user}#blocks"))
}

fn blocked_from(item: &Item, table: &str) -> StoreResult<Vec<UserId>> {
    match item.get("blocked") {
        None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
        Some(AttributeValue::Ss(ids)) => {
            let mut out = ids
                .iter()
                .map(|raw| {
                    UserId::parse(raw).map_err(|_| StoreError::Corrupt {
                        table: table.into(),
                        reason: "blocked: a user id does not parse".into(),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            out.sort();
            Ok(out)
        }
        Some(_) => Err(StoreError::Corrupt {
            table: table.into(),
            reason: "blocked: not a string set".into(),
        }),
    }
}

impl Store {
    /// The users `user` has blocked, in id order.
    pub async fn blocked_by(&self, user: &UserId) -> StoreResult<Vec<UserId>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.users)
            .key("userId", blocks_key(user))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        match out.item() {
            Some(item) => blocked_from(item, &self.t.users),
            None => Ok(Vec::new()),
        }
    }

    /// Which of `users` have blocked `whom` (one BatchGetItem per 100 users).
    pub async fn who_blocks(&self, users: &[UserId], whom: &UserId) -> StoreResult<Vec<UserId>> {
        let mut unique: Vec<&UserId> = users.iter().collect();
        unique.sort();
        unique.dedup();
        let mut out = Vec::new();
        for chunk in unique.chunks(100) {
            let keys = chunk
                .iter()
                .map(|u| HashMap::from([("userId".to_owned(), blocks_key(u))]))
                .collect();
            for item in self.batch_get(&self.t.users, keys, None).await? {
                let blocked = blocked_from(&item, &self.t.users)?;
                if blocked.contains(whom) {
                    let key = Reader::new(&item, &self.t.users).string("userId")?;
                    let owner = key.trim_end_matches("#blocks");
                    out.push(UserId::parse(owner).map_err(|_| StoreError::Corrupt {
                        table: self.t.users.clone(),
                        reason: "userId: a block list's owner does not parse".into(),
                    })?);
                }
            }
        }
        Ok(out)
    }

    /// Whether `me` and `other` may open a direct chat: `Some(Blocked)` when `other`
    /// blocks `me`, `Some(YouBlocked)` when `me` blocks `other` (one BatchGetItem).
    pub async fn block_between(
        &self,
        me: &UserId,
        other: &UserId,
    ) -> StoreResult<Option<Conflict>> {
        let keys = [me, other]
            .iter()
            .map(|u| HashMap::from([("userId".to_owned(), blocks_key(u))]))
            .collect();
        let mine = blocks_key(me);
        let (mut they_block, mut i_block) = (false, false);
        for item in self.batch_get(&self.t.users, keys, None).await? {
            let blocked = blocked_from(&item, &self.t.users)?;
            if item.get("userId") == Some(&mine) {
                i_block = blocked.contains(other);
            } else {
                they_block = blocked.contains(me);
            }
        }
        Ok(if they_block {
            Some(Conflict::Blocked)
        } else if i_block {
            Some(Conflict::YouBlocked)
        } else {
            None
        })
    }

    /// `blocker` blocks `blocked` (idempotent). `Conflict(TooManyBlocks)` past
    /// [`MAX_BLOCKS`].
    pub async fn block_user(
        &self,
        blocker: &UserId,
        blocked: &UserId,
        now: Millis,
    ) -> StoreResult<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", blocks_key(blocker))
            .update_expression("ADD blocked :u SET updatedAt = :now")
            .condition_expression(
                "attribute_not_exists(blocked) OR contains(blocked, :one) OR size(blocked) < :max",
            )
            .expression_attribute_values(":u", AttributeValue::Ss(vec![blocked.to_string()]))
            .expression_attribute_values(":one", s(blocked.as_str()))
            .expression_attribute_values(":now", super::codec::n(now))
            .expression_attribute_values(":max", super::codec::n(MAX_BLOCKS))
            .send()
            .await;
        match res {
            Ok(_) => {}
            Err(e) if super::codec::is_condition_failed(&e) => {
                return Err(StoreError::Conflict(Conflict::TooManyBlocks))
            }
            Err(e) => return Err(StoreError::sdk("UpdateItem", e)),
        }
        self.mark_direct(blocker, blocked, true).await
    }

    /// `blocker` no longer blocks `blocked` (idempotent).
    pub async fn unblock_user(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<()> {
        self.db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", blocks_key(blocker))
            .update_expression("DELETE blocked :u")
            .expression_attribute_values(":u", AttributeValue::Ss(vec![blocked.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        self.mark_direct(blocker, blocked, false).await
    }

    /// Delete a user's block list (account purge).
    pub async fn delete_blocks(&self, user: &UserId) -> StoreResult<()> {
        self.db
            .delete_item()
            .table_name(&self.t.users)
            .key("userId", blocks_key(user))
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        Ok(())
    }

    /// Set or clear the block marks on the two memberships of the direct chat of
    /// `blocker` and `blocked`, when it exists.
    async fn mark_direct(&self, blocker: &UserId, blocked: &UserId, on: bool) -> StoreResult<()> {
        let chat_id = ChatId::direct(blocker, blocked);
        if self.get_chat(&chat_id, true).await?.is_none() {
            return Ok(());
        }
        let mark = |user: &UserId, attr: &str| -> StoreResult<TransactWriteItem> {
            let u = Update::builder()
                .table_name(&self.t.members)
                .key("chatId", s(chat_id.as_str()))
                .key("userId", s(user.as_str()))
                .condition_expression("attribute_exists(userId)")
                .expression_attribute_names("#a", attr);
            let u = if on {
                u.update_expression("SET #a = :t")
                    .expression_attribute_values(":t", b(true))
            } else {
                u.update_expression("REMOVE #a")
            };
            Ok(TransactWriteItem::builder()
                .update(u.build().map_err(build_err)?)
                .build())
        };
        let res = self
            .db
            .transact_write_items()
            .transact_items(mark(blocked, "blockedByPeer")?)
            .transact_items(mark(blocker, "blocksPeer")?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // A member left (an account was purged): nothing to mark.
            Err(e) if super::codec::cancelled_conditions(&e).is_some() => Ok(()),
            Err(e) => Err(StoreError::sdk("TransactWriteItems", e)),
        }
    }

    /// Why `sender` may not write into a chat whose membership condition failed:
    /// `Blocked` / `YouBlocked` for a marked direct chat, `NotMember` otherwise.
    pub(crate) async fn send_refusal(
        &self,
        chat_id: &ChatId,
        sender: &UserId,
    ) -> StoreResult<StoreError> {
        Ok(match self.get_membership(chat_id, sender).await? {
            Some(m) if m.blocked_by_peer => StoreError::Conflict(Conflict::Blocked),
            Some(m) if m.blocks_peer => StoreError::Conflict(Conflict::YouBlocked),
            _ => StoreError::NotMember,
        })
    }
}
