//! Account lifecycle: marking an account deleted, the purge's progress, and the access
//! patterns export and purge need (see docs/security.md, "Retention and deletion").
//!
//! - Users item of a deleted account (the tombstone): `deleted = true`, `deletedAt`,
//!   `displayName = "Deleted user"`, `userName = ""`, `tokenVersion` incremented; no
//!   `passwordHash`, `statusText`, `avatarUrl`, `failedLogins`, `lockedUntil`. The
//!   purge's progress: `purgePhase` (S, a [`PurgePhase`]), `purgeCursor` (S, opaque to
//!   the store), `purgeUpdatedAt` N, `purgedAt` N.
//! - The user name's claim: `releaseAt` N set, `userName` removed (the key keeps the
//!   case-folded name until someone else claims it).
//! - `Messages` GSI `bySender` (`senderId`, `sentAt`; KEYS_ONLY): a user's own text
//!   messages across every chat, oldest first, for export and for blanking them.

use super::codec::{b, n, s, Item, Reader};
use super::messages::{dedup_key, message_from};
use super::users::{bucket, build_err};
use super::{Store, StoreError, StoreResult};
use crate::ids::{ChatId, ClientMessageId, SessionId, UserId};
use crate::model::{Message, Millis, PurgePhase, DELETED_USER_DISPLAY_NAME};
use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where a deleted account's purge stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeState {
    pub phase: PurgePhase,
    /// The phase's own position (e.g. the last message key blanked), opaque here.
    pub cursor: Option<String>,
}

/// A user's account as the lifecycle code sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountStatus {
    /// No such user.
    Missing,
    Active,
    /// Deleted at `deleted_at`; the purge stands at `purge` (a tombstone without a
    /// recorded phase counts as at the first phase).
    Deleted {
        purge: PurgeState,
        deleted_at: Millis,
    },
}

/// The key of one message of a sender in the `bySender` index, and the position of
/// an export or purge in that index (the next page starts after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderKey {
    #[serde(rename = "t")]
    pub sent_at: Millis,
    #[serde(rename = "c")]
    pub chat_id: ChatId,
    #[serde(rename = "p")]
    pub position: u64,
}

/// One page of the `bySender` index.
#[derive(Debug, Clone)]
pub struct SenderPage {
    pub keys: Vec<SenderKey>,
    /// Set when more keys may follow: pass it as `after` for the next page.
    pub next: Option<SenderKey>,
}

impl Store {
    /// Make an account unusable, in one transaction: the tombstone (see the module
    /// doc), `tokenVersion + 1`, `purgePhase = connections`, and the name claim's
    /// `releaseAt`. `NotFound("user")` when the account does not exist or is already
    /// deleted (nothing is written then).
    pub async fn mark_account_deleted(
        &self,
        user_id: &UserId,
        canonical_name: &str,
        now: Millis,
        release_at: Millis,
    ) -> StoreResult<()> {
        let user = Update::builder()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .update_expression(
                "SET deleted = :t, deletedAt = :now, displayName = :dn, userName = :empty, \
                 purgePhase = :phase, purgeUpdatedAt = :now \
                 ADD tokenVersion :one \
                 REMOVE passwordHash, statusText, avatarUrl, failedLogins, lockedUntil, purgeCursor",
            )
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(deleted) OR deleted = :f)",
            )
            .expression_attribute_values(":t", b(true))
            .expression_attribute_values(":f", b(false))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":dn", s(DELETED_USER_DISPLAY_NAME))
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":phase", s(PurgePhase::Connections.as_str()))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build_err)?;
        let claim = Update::builder()
            .table_name(&self.t.user_names)
            .key("bucket", s(bucket(canonical_name)))
            .key("name", s(canonical_name))
            .update_expression("SET releaseAt = :r REMOVE userName")
            .condition_expression("userId = :u")
            .expression_attribute_values(":r", n(release_at))
            .expression_attribute_values(":u", s(user_id.as_str()))
            .build()
            .map_err(build_err)?;
        let res = self
            .db
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(user).build())
            .transact_items(TransactWriteItem::builder().update(claim).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => match super::codec::cancelled_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => Err(StoreError::NotFound("user")),
                Some(failed) if failed.get(1) == Some(&true) => Err(StoreError::Corrupt {
                    table: self.t.user_names.clone(),
                    reason: format!("the claim of {canonical_name:?} is not {user_id}'s"),
                }),
                _ => Err(StoreError::sdk("TransactWriteItems", e)),
            },
        }
    }

    /// Whether an account exists, is active, or is deleted (and how far its purge
    /// got). Strongly consistent.
    pub async fn account_status(&self, user_id: &UserId) -> StoreResult<AccountStatus> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .projection_expression("userId, deleted, deletedAt, purgePhase, purgeCursor")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(AccountStatus::Missing);
        };
        let r = Reader::new(item, &self.t.users);
        if !r.bool_or("deleted", false)? {
            return Ok(AccountStatus::Active);
        }
        let phase = match r.opt_string("purgePhase")? {
            None => PurgePhase::Connections,
            Some(p) => PurgePhase::parse(&p).ok_or_else(|| StoreError::Corrupt {
                table: self.t.users.clone(),
                reason: "purgePhase: unknown".into(),
            })?,
        };
        Ok(AccountStatus::Deleted {
            purge: PurgeState {
                phase,
                cursor: r.opt_string("purgeCursor")?,
            },
            deleted_at: r.num_or("deletedAt", 0)?,
        })
    }

    /// Record the purge's progress (only on a deleted account). `Done` also records
    /// `purgedAt`.
    pub async fn set_purge_state(
        &self,
        user_id: &UserId,
        state: &PurgeState,
        now: Millis,
    ) -> StoreResult<()> {
        let mut set = vec!["purgePhase = :p", "purgeUpdatedAt = :now"];
        let mut req = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .condition_expression("deleted = :t")
            .expression_attribute_values(":t", b(true))
            .expression_attribute_values(":p", s(state.phase.as_str()))
            .expression_attribute_values(":now", n(now));
        if state.phase == PurgePhase::Done {
            set.push("purgedAt = :now");
        }
        let expr = match &state.cursor {
            Some(c) => {
                set.push("purgeCursor = :c");
                req = req.expression_attribute_values(":c", s(c));
                format!("SET {}", set.join(", "))
            }
            None => format!("SET {} REMOVE purgeCursor", set.join(", ")),
        };
        match req.update_expression(expr).send().await {
            Ok(_) => Ok(()),
            Err(e) if super::codec::is_condition_failed(&e) => Err(StoreError::NotFound("user")),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Delete one session item (account deletion; logout only revokes). Idempotent.
    pub async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        self.db
            .delete_item()
            .table_name(&self.t.sessions)
            .key("sessionId", s(id.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        Ok(())
    }

    /// Delete a user's presence record (last seen, live connection ids). Idempotent.
    pub async fn delete_presence(&self, user_id: &UserId) -> StoreResult<()> {
        self.db
            .delete_item()
            .table_name(&self.t.presence)
            .key("userId", s(user_id.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        Ok(())
    }

    /// Up to `limit` keys of `sender`'s text messages, oldest first, after `after`
    /// (Query on the `bySender` index; eventually consistent).
    pub async fn messages_by_sender(
        &self,
        sender: &UserId,
        limit: u32,
        after: Option<&SenderKey>,
    ) -> StoreResult<SenderPage> {
        let start = after.map(|k| {
            HashMap::from([
                ("senderId".to_owned(), s(sender.as_str())),
                ("sentAt".to_owned(), n(k.sent_at)),
                ("chatId".to_owned(), s(k.chat_id.as_str())),
                ("pos".to_owned(), n(k.position)),
            ])
        });
        let out = self
            .db
            .query()
            .table_name(&self.t.messages)
            .index_name("bySender")
            .key_condition_expression("senderId = :u")
            .expression_attribute_values(":u", s(sender.as_str()))
            .scan_index_forward(true)
            .limit(limit.max(1) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let keys = out
            .items()
            .iter()
            .map(|i| sender_key(i, &self.t.messages))
            .collect::<StoreResult<Vec<_>>>()?;
        let more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        let next = if more { keys.last().cloned() } else { None };
        Ok(SenderPage { keys, next })
    }

    /// The messages at `keys` (BatchGetItem, 100 a call), in the order of `keys`;
    /// keys with no message are left out.
    pub async fn get_messages(&self, keys: &[SenderKey]) -> StoreResult<Vec<Message>> {
        let mut found: HashMap<(ChatId, u64), Message> = HashMap::new();
        let mut unique: Vec<(&ChatId, u64)> =
            keys.iter().map(|k| (&k.chat_id, k.position)).collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let req = chunk
                .iter()
                .map(|(c, p)| {
                    HashMap::from([
                        ("chatId".to_owned(), s(c.as_str())),
                        ("pos".to_owned(), n(*p)),
                    ])
                })
                .collect();
            for item in self.batch_get(&self.t.messages, req, None).await? {
                let m = message_from(&item, &self.t.messages)?;
                found.insert((m.chat_id.clone(), m.position), m);
            }
        }
        Ok(keys
            .iter()
            .filter_map(|k| found.remove(&(k.chat_id.clone(), k.position)))
            .collect())
    }

    /// Blank one message of `sender`: `text = ""`, `deleted = true`, no
    /// `clientMessageId`; then delete its dedup claim. Position, id, sender and time
    /// stay. Idempotent; returns false when there is no such message of `sender`.
    pub async fn blank_message(
        &self,
        chat_id: &ChatId,
        position: u64,
        sender: &UserId,
    ) -> StoreResult<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.messages)
            .key("chatId", s(chat_id.as_str()))
            .key("pos", n(position))
            .update_expression("SET #t = :empty, deleted = :true REMOVE clientMessageId")
            .condition_expression("senderId = :u")
            .expression_attribute_names("#t", "text")
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":true", b(true))
            .expression_attribute_values(":u", s(sender.as_str()))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let old = match res {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) if super::codec::is_condition_failed(&e) => return Ok(false),
            Err(e) => return Err(StoreError::sdk("UpdateItem", e)),
        };
        let cid = Reader::new(&old, &self.t.messages)
            .opt_parsed("clientMessageId", ClientMessageId::parse)?;
        if let Some(cid) = cid {
            self.db
                .delete_item()
                .table_name(&self.t.message_dedup)
                .key("dedupKey", s(dedup_key(chat_id, sender, &cid)))
                .send()
                .await
                .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        }
        Ok(true)
    }

    /// When a chat's `lastMessage` is `sender`'s, blank its preview. Returns whether
    /// it was.
    pub async fn blank_last_message(&self, chat_id: &ChatId, sender: &UserId) -> StoreResult<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.chats)
            .key("chatId", s(chat_id.as_str()))
            .update_expression("SET lastMessage.preview = :empty")
            .condition_expression("lastMessage.senderId = :u")
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":u", s(sender.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if super::codec::is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}

fn sender_key(item: &Item, table: &str) -> StoreResult<SenderKey> {
    let r = Reader::new(item, table);
    Ok(SenderKey {
        sent_at: r.num("sentAt")?,
        chat_id: r.parsed("chatId", ChatId::parse)?,
        position: r.num("pos")?,
    })
}
