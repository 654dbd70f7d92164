//! Chats and memberships.
//!
//! - `Chats`: key `chatId`; `lastPosition` (the ordering counter), `memberCount`,
//!   `lastMessage` (a small map for chat lists), `lastActivityAt`.
//! - `Members`: key (`chatId`, `userId`); `role`, `joinedAt`, `deliveredPos`, `readPos`,
//!   `muted`. GSI `byUser` (`userId`, `chatId`) lists a user's chats.
//!
//! Every group change (create, add, remove, leave, rename) writes a system message in
//! the same transaction as the change, through the same position counter as text
//! messages, so history shows it in order and concurrent changes serialize. Admin
//! rights and the 100-member cap are conditions inside those transactions, so they hold
//! under concurrent requests. A group is created members-first: the member items are
//! written, then the chat item and its first message in one transaction; until that
//! commits the members point at a chat that does not exist and are ignored.

use super::codec::{b, n, s, Item, Reader};
use super::messages::{ChatChange, CommitFailure, NewMessage};

use super::users::build_err;
use super::{backoff, Conflict, Store, StoreError, StoreResult, MAX_ATTEMPTS};
use crate::ids::{ChatId, UserId};
use crate::input::{GroupName, MAX_GROUP_MEMBERS};
use crate::model::{Chat, ChatKind, Membership, Message, MessageKind, Millis, Role, SystemEvent};
use aws_sdk_dynamodb::types::{Delete, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use std::collections::HashMap;

/// The place of the admin check among a membership change's transaction items: it
/// comes first (`Store::admin_check`).
const ADMIN_CHECK: usize = 0;

fn chat_from(item: &Item, table: &str) -> StoreResult<Chat> {
    let r = Reader::new(item, table);
    let kind = match r.str("kind")? {
        "direct" => ChatKind::Direct,
        "group" => ChatKind::Group,
        _ => {
            return Err(StoreError::Corrupt {
                table: table.into(),
                reason: "kind: unknown".into(),
            })
        }
    };
    Ok(Chat {
        chat_id: r.parsed("chatId", ChatId::parse)?,
        kind,
        name: r.opt_string("name")?,
        created_by: r.parsed("createdBy", UserId::parse)?,
        created_at: r.num("createdAt")?,
        member_count: r.num("memberCount")?,
        last_position: r.num("lastPosition")?,
        last_message: r
            .map("lastMessage")?
            .map(|m| super::messages::last_message_from(m, table))
            .transpose()?,
        last_activity_at: r.num("lastActivityAt")?,
        change_seq: r.num_or("changeSeq", 0)?,
    })
}

pub(crate) fn membership_from(item: &Item, table: &str) -> StoreResult<Membership> {
    let r = Reader::new(item, table);
    Ok(Membership {
        chat_id: r.parsed("chatId", ChatId::parse)?,
        user_id: r.parsed("userId", UserId::parse)?,
        role: match r.str("role")? {
            "admin" => Role::Admin,
            _ => Role::Member,
        },
        joined_at: r.num("joinedAt")?,
        delivered_position: r.num_or("deliveredPos", 0)?,
        read_position: r.num_or("readPos", 0)?,
        muted: r.bool_or("muted", false)?,
        blocked_by_peer: r.bool_or("blockedByPeer", false)?,
        blocks_peer: r.bool_or("blocksPeer", false)?,
    })
}

fn membership_item(m: &Membership) -> Item {
    HashMap::from([
        ("chatId".to_owned(), s(m.chat_id.as_str())),
        ("userId".to_owned(), s(m.user_id.as_str())),
        ("role".to_owned(), s(m.role.as_str())),
        ("joinedAt".to_owned(), n(m.joined_at)),
        ("deliveredPos".to_owned(), n(m.delivered_position)),
        ("readPos".to_owned(), n(m.read_position)),
        ("muted".to_owned(), b(m.muted)),
    ])
}

fn chat_item(c: &Chat) -> Item {
    let mut item = HashMap::from([
        ("chatId".to_owned(), s(c.chat_id.as_str())),
        ("kind".to_owned(), s(c.kind.as_str())),
        ("createdBy".to_owned(), s(c.created_by.as_str())),
        ("createdAt".to_owned(), n(c.created_at)),
        ("memberCount".to_owned(), n(c.member_count)),
        ("lastPosition".to_owned(), n(c.last_position)),
        ("lastActivityAt".to_owned(), n(c.last_activity_at)),
    ]);
    if let Some(name) = &c.name {
        item.insert("name".into(), s(name));
    }
    item
}

/// A group to create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub creator: UserId,
    pub name: GroupName,
    /// The other members (the creator is added as admin); at most 99, no duplicates.
    pub members: Vec<UserId>,
}

/// One page of a user's chats, most recently active first.
#[derive(Debug, Clone)]
pub struct ChatPage {
    pub chats: Vec<(Chat, Membership)>,
    /// Give this back to get the next page.
    pub next: Option<(Millis, ChatId)>,
}

/// The outcome of a membership change.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    pub chat: Chat,
    pub message: Message,
    /// Set when the last admin left and this member became admin.
    pub promoted: Option<UserId>,
}

fn system(event: SystemEvent, now: Millis) -> NewMessage {
    NewMessage {
        kind: MessageKind::System,
        sender_id: None,
        client_message_id: None,
        text: event.summary(),
        system: Some(event),
        sent_at: now,
        attachments: Vec::new(),
    }
}

impl Store {
    pub async fn get_chat(&self, chat_id: &ChatId, consistent: bool) -> StoreResult<Option<Chat>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.chats)
            .key("chatId", s(chat_id.as_str()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item().map(|i| chat_from(i, &self.t.chats)).transpose()
    }

    /// Several chats by id (BatchGetItem, 100 a call); unknown ids are left out.
    pub async fn get_chats(&self, ids: &[ChatId]) -> StoreResult<HashMap<ChatId, Chat>> {
        let mut out = HashMap::new();
        // BatchGetItem refuses a request that names one key twice.
        let mut unique: Vec<&ChatId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys = chunk
                .iter()
                .map(|id| HashMap::from([("chatId".to_owned(), s(id.as_str()))]))
                .collect();
            for item in self.batch_get(&self.t.chats, keys, None).await? {
                let c = chat_from(&item, &self.t.chats)?;
                out.insert(c.chat_id.clone(), c);
            }
        }
        Ok(out)
    }

    /// The direct chat of `a` and `b`, created if it does not exist yet. Returns the
    /// chat and whether this call created it.
    pub async fn get_or_create_direct(
        &self,
        a: &UserId,
        b_user: &UserId,
        now: Millis,
    ) -> StoreResult<(Chat, bool)> {
        let chat_id = ChatId::direct(a, b_user);
        if let Some(chat) = self.get_chat(&chat_id, true).await? {
            return Ok((chat, false));
        }
        let chat = Chat {
            chat_id: chat_id.clone(),
            kind: ChatKind::Direct,
            name: None,
            created_by: a.clone(),
            created_at: now,
            member_count: 2,
            last_position: 0,
            last_message: None,
            last_activity_at: now,
            change_seq: 0,
        };
        let member = |u: &UserId| Membership {
            chat_id: chat_id.clone(),
            user_id: u.clone(),
            role: Role::Member,
            joined_at: now,
            delivered_position: 0,
            read_position: 0,
            muted: false,
            blocked_by_peer: false,
            blocks_peer: false,
        };
        let put = |table: &str, item: Item, cond: &str| -> StoreResult<TransactWriteItem> {
            let p = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression(cond)
                .build()
                .map_err(build_err)?;
            Ok(TransactWriteItem::builder().put(p).build())
        };
        let items = vec![
            put(
                &self.t.chats,
                chat_item(&chat),
                "attribute_not_exists(chatId)",
            )?,
            put(
                &self.t.members,
                membership_item(&member(a)),
                "attribute_not_exists(userId)",
            )?,
            put(
                &self.t.members,
                membership_item(&member(b_user)),
                "attribute_not_exists(userId)",
            )?,
        ];
        for attempt in 0..MAX_ATTEMPTS {
            match self
                .db
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok((chat, true)),
                Err(e)
                    if super::codec::cancelled_conditions(&e).is_some()
                        || super::codec::is_transaction_conflict(&e) =>
                {
                    // Created concurrently by the other user: return theirs. When both
                    // transactions were cancelled for conflicting with each other (real
                    // DynamoDB may cancel both), nothing exists yet: try again.
                    if let Some(chat) = self.get_chat(&chat_id, true).await? {
                        return Ok((chat, false));
                    }
                }
                Err(e) => return Err(StoreError::sdk("TransactWriteItems", e)),
            }
            backoff(attempt + 1).await;
        }
        Err(StoreError::Contention)
    }

    /// Create a group; the creator is its admin. See the module doc for the order of
    /// writes.
    pub async fn create_group(
        &self,
        group: &NewGroup,
        now: Millis,
    ) -> StoreResult<(Chat, Message)> {
        match self
            .create_group_as(group, ChatId::new_group(), now)
            .await?
        {
            Some(created) => Ok(created),
            // A fresh id: nobody else writes this group.
            None => Err(StoreError::Contention),
        }
    }

    /// [`Self::create_group`] under a given id. Safe to run again (or concurrently)
    /// with the same id and group: `None` when another run already wrote the first
    /// message (the group exists).
    pub(crate) async fn create_group_as(
        &self,
        group: &NewGroup,
        chat_id: ChatId,
        now: Millis,
    ) -> StoreResult<Option<(Chat, Message)>> {
        let mut members: Vec<UserId> = group
            .members
            .iter()
            .filter(|u| **u != group.creator)
            .cloned()
            .collect();
        members.sort();
        members.dedup();
        if members.len() + 1 > MAX_GROUP_MEMBERS {
            return Err(StoreError::Conflict(Conflict::GroupFull));
        }
        let mut all = vec![group.creator.clone()];
        all.extend(members.iter().cloned());
        let requests: Vec<WriteRequest> = all
            .iter()
            .map(|u| {
                let m = Membership {
                    chat_id: chat_id.clone(),
                    user_id: u.clone(),
                    role: if *u == group.creator {
                        Role::Admin
                    } else {
                        Role::Member
                    },
                    joined_at: now,
                    delivered_position: if *u == group.creator { 1 } else { 0 },
                    read_position: if *u == group.creator { 1 } else { 0 },
                    muted: false,
                    blocked_by_peer: false,
                    blocks_peer: false,
                };
                let put = PutRequest::builder()
                    .set_item(Some(membership_item(&m)))
                    .build()
                    .map_err(build_err)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<StoreResult<_>>()?;
        self.batch_write(&self.t.members, requests).await?;

        let event = SystemEvent::ChatCreated {
            by: group.creator.clone(),
            members: members.clone(),
            name: Some(group.name.as_str().to_owned()),
        };
        let new = system(event, now);
        // The chat item is seeded with lastPosition 0 by a put that only a new id
        // passes, then the first message moves it to 1. Until then a group with
        // lastPosition 0 is invisible (chat lists skip it, and nobody knows its id).
        let chat = Chat {
            chat_id: chat_id.clone(),
            kind: ChatKind::Group,
            name: Some(group.name.as_str().to_owned()),
            created_by: group.creator.clone(),
            created_at: now,
            member_count: all.len() as u32,
            last_position: 0,
            last_message: None,
            last_activity_at: now,
            change_seq: 0,
        };
        match self
            .db
            .put_item()
            .table_name(&self.t.chats)
            .set_item(Some(chat_item(&chat)))
            .condition_expression("attribute_not_exists(chatId)")
            .send()
            .await
        {
            Ok(_) => {}
            // Another run with this id put it first.
            Err(e) if super::codec::is_condition_failed(&e) => {}
            Err(e) => return Err(StoreError::sdk("PutItem", e)),
        }
        for attempt in 0..MAX_ATTEMPTS {
            match self
                .commit_message(&chat, &new, vec![], ChatChange::default())
                .await
            {
                Ok(message) => {
                    let change = self.after_change(chat, message, None);
                    return Ok(Some((change.chat, change.message)));
                }
                Err(CommitFailure::Store(e)) => return Err(e),
                Err(CommitFailure::Conditions(_)) => {
                    // Another run with this id wrote the first message.
                    if self
                        .get_chat(&chat_id, true)
                        .await?
                        .is_some_and(|c| c.last_position > 0)
                    {
                        return Ok(None);
                    }
                    backoff(attempt + 1).await
                }
                Err(CommitFailure::Conflict) => backoff(attempt + 1).await,
            }
        }
        Err(StoreError::Contention)
    }

    /// BatchWriteItem in chunks of 25 with retries of unprocessed items.
    pub(crate) async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> StoreResult<()> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .db
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("BatchWriteItem", e))?;
                if let Some(left) = out.unprocessed_items().and_then(|u| u.get(table)) {
                    if !left.is_empty() {
                        attempt += 1;
                        if attempt > MAX_ATTEMPTS {
                            return Err(StoreError::Contention);
                        }
                        backoff(attempt).await;
                        pending = left.clone();
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn get_membership(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> StoreResult<Option<Membership>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.members)
            .key("chatId", s(chat_id.as_str()))
            .key("userId", s(user_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| membership_from(i, &self.t.members))
            .transpose()
    }

    /// A chat and the caller's membership in it, or `NotFound("chat")` when either is
    /// missing (non-members must not learn whether a chat exists).
    pub async fn chat_for_member(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> StoreResult<(Chat, Membership)> {
        let (chat, member) = tokio::try_join!(
            self.get_chat(chat_id, true),
            self.get_membership(chat_id, user_id)
        )?;
        match (chat, member) {
            (Some(c), Some(m)) => Ok((c, m)),
            _ => Err(StoreError::NotFound("chat")),
        }
    }

    /// All members of a chat (one Query: at most 100 small items).
    pub async fn list_members(&self, chat_id: &ChatId) -> StoreResult<Vec<Membership>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.t.members)
                .key_condition_expression("chatId = :c")
                .expression_attribute_values(":c", s(chat_id.as_str()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in page.items() {
                out.push(membership_from(item, &self.t.members)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// All of a user's memberships (Query on `byUser`, all pages; eventually
    /// consistent, as every GSI read is).
    pub async fn list_user_memberships(&self, user_id: &UserId) -> StoreResult<Vec<Membership>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.t.members)
                .index_name("byUser")
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in page.items() {
                out.push(membership_from(item, &self.t.members)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// A user's chats with their membership, most recently active first, `limit` per
    /// page, starting after `after` (the previous page's `next`). Reads every
    /// membership of the user and their chats (BatchGetItem); see docs/data-model.md
    /// for why this beats keeping a per-user activity index up to date on each message.
    pub async fn list_user_chats(
        &self,
        user_id: &UserId,
        limit: usize,
        after: Option<&(Millis, ChatId)>,
    ) -> StoreResult<ChatPage> {
        let memberships = self.list_user_memberships(user_id).await?;
        let ids: Vec<ChatId> = memberships.iter().map(|m| m.chat_id.clone()).collect();
        let mut chats = self.get_chats(&ids).await?;
        let mut rows: Vec<(Chat, Membership)> = memberships
            .into_iter()
            .filter_map(|m| chats.remove(&m.chat_id).map(|c| (c, m)))
            .filter(|(c, _)| c.last_position > 0 || c.kind == ChatKind::Direct)
            .collect();
        rows.sort_by(|(a, _), (b, _)| {
            b.last_activity_at
                .cmp(&a.last_activity_at)
                .then_with(|| a.chat_id.cmp(&b.chat_id))
        });
        if let Some((at, id)) = after {
            rows.retain(|(c, _)| {
                (c.last_activity_at < *at) || (c.last_activity_at == *at && c.chat_id > *id)
            });
        }
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last()
                .map(|(c, _)| (c.last_activity_at, c.chat_id.clone()))
        } else {
            None
        };
        Ok(ChatPage { chats: rows, next })
    }

    /// Rename a group; `by` must be an admin (checked inside the transaction).
    pub async fn rename_group(
        &self,
        chat_id: &ChatId,
        by: &UserId,
        name: &GroupName,
        now: Millis,
    ) -> StoreResult<MembershipChange> {
        for attempt in 0..MAX_ATTEMPTS {
            let chat = self.group(chat_id).await?;
            let event = SystemEvent::Renamed {
                by: by.clone(),
                name: name.as_str().to_owned(),
            };
            let change = ChatChange {
                set: vec!["#nm = :name".into()],
                names: vec![("#nm".into(), "name".into())],
                values: vec![(":name".into(), s(name.as_str()))],
                ..Default::default()
            };
            match self
                .commit_message(
                    &chat,
                    &system(event, now),
                    vec![self.admin_check(chat_id, by)?],
                    change,
                )
                .await
            {
                Ok(message) => {
                    let mut chat = chat;
                    chat.name = Some(name.as_str().to_owned());
                    return Ok(self.after_change(chat, message, None));
                }
                Err(CommitFailure::Conditions(f)) if f.failed(ADMIN_CHECK) => {
                    return Err(self.not_admin_or_member(chat_id, by).await?);
                }
                Err(CommitFailure::Store(e)) => return Err(e),
                Err(_) => backoff(attempt + 1).await,
            }
        }
        Err(StoreError::Contention)
    }

    /// Add members to a group; `by` must be an admin; the cap of 100 members holds
    /// under concurrent adds. At most 98 users per call (one transaction holds 100
    /// items: the admin check, the chat, the message and the new members... minus one).
    pub async fn add_members(
        &self,
        chat_id: &ChatId,
        by: &UserId,
        users: &[UserId],
        now: Millis,
    ) -> StoreResult<MembershipChange> {
        let mut users: Vec<UserId> = users.to_vec();
        users.sort();
        users.dedup();
        if users.is_empty() {
            return Err(StoreError::Conflict(Conflict::NoMembers));
        }
        if users.len() > MAX_GROUP_MEMBERS - 3 {
            return Err(StoreError::Conflict(Conflict::GroupFull));
        }
        for attempt in 0..MAX_ATTEMPTS {
            let chat = self.group(chat_id).await?;
            let k = users.len();
            if chat.member_count as usize + k > MAX_GROUP_MEMBERS {
                return Err(StoreError::Conflict(Conflict::GroupFull));
            }
            let mut before = vec![self.admin_check(chat_id, by)?];
            for u in &users {
                let m = Membership {
                    chat_id: chat_id.clone(),
                    user_id: u.clone(),
                    role: Role::Member,
                    joined_at: now,
                    delivered_position: 0,
                    read_position: 0,
                    muted: false,
                    blocked_by_peer: false,
                    blocks_peer: false,
                };
                let put = Put::builder()
                    .table_name(&self.t.members)
                    .set_item(Some(membership_item(&m)))
                    .condition_expression("attribute_not_exists(userId)")
                    .build()
                    .map_err(build_err)?;
                before.push(TransactWriteItem::builder().put(put).build());
            }
            let change = ChatChange {
                set: vec!["memberCount = memberCount + :k".into()],
                condition: vec!["memberCount <= :maxk".into()],
                values: vec![
                    (":k".into(), n(k)),
                    (":maxk".into(), n(MAX_GROUP_MEMBERS - k)),
                ],
                ..Default::default()
            };
            let event = SystemEvent::MembersAdded {
                by: by.clone(),
                members: users.clone(),
            };
            match self
                .commit_message(&chat, &system(event, now), before, change)
                .await
            {
                Ok(message) => {
                    let mut chat = chat;
                    chat.member_count += k as u32;
                    return Ok(self.after_change(chat, message, None));
                }
                Err(CommitFailure::Conditions(f)) => {
                    if f.failed(ADMIN_CHECK) {
                        return Err(self.not_admin_or_member(chat_id, by).await?);
                    }
                    // The new members' puts follow the admin check.
                    if f.any_failed(ADMIN_CHECK + 1..ADMIN_CHECK + 1 + k) {
                        return Err(StoreError::Conflict(Conflict::AlreadyMember));
                    }
                    // The chat changed under us (or filled up): re-read and decide.
                }
                Err(CommitFailure::Store(e)) => return Err(e),
                Err(CommitFailure::Conflict) => {}
            }
            backoff(attempt + 1).await;
        }
        Err(StoreError::Contention)
    }

    /// Remove `target` from a group. `by == target` is leaving (anyone may); otherwise
    /// `by` must be an admin. When the last admin goes, the longest-standing remaining
    /// member becomes admin in the same transaction.
    pub async fn remove_member(
        &self,
        chat_id: &ChatId,
        by: &UserId,
        target: &UserId,
        now: Millis,
    ) -> StoreResult<MembershipChange> {
        for attempt in 0..MAX_ATTEMPTS {
            let chat = self.group(chat_id).await?;
            let members = self.list_members(chat_id).await?;
            if !members.iter().any(|m| &m.user_id == by) {
                return Err(StoreError::NotFound("chat"));
            }
            let Some(target_m) = members.iter().find(|m| &m.user_id == target) else {
                return Err(StoreError::NotFound("member"));
            };
            let mut before = Vec::new();
            let leaving = by == target;
            if !leaving {
                before.push(self.admin_check(chat_id, by)?);
            }
            let delete = Delete::builder()
                .table_name(&self.t.members)
                .key("chatId", s(chat_id.as_str()))
                .key("userId", s(target.as_str()))
                .condition_expression("attribute_exists(userId)")
                .build()
                .map_err(build_err)?;
            before.push(TransactWriteItem::builder().delete(delete).build());
            let remaining: Vec<&Membership> =
                members.iter().filter(|m| &m.user_id != target).collect();
            let promoted = if target_m.role == Role::Admin
                && !remaining.iter().any(|m| m.role == Role::Admin)
            {
                remaining
                    .iter()
                    .min_by(|a, b| {
                        a.joined_at
                            .cmp(&b.joined_at)
                            .then_with(|| a.user_id.cmp(&b.user_id))
                    })
                    .map(|m| m.user_id.clone())
            } else {
                None
            };
            if let Some(p) = &promoted {
                let up = Update::builder()
                    .table_name(&self.t.members)
                    .key("chatId", s(chat_id.as_str()))
                    .key("userId", s(p.as_str()))
                    .update_expression("SET #r = :admin")
                    .condition_expression("attribute_exists(userId)")
                    .expression_attribute_names("#r", "role")
                    .expression_attribute_values(":admin", s("admin"))
                    .build()
                    .map_err(build_err)?;
                before.push(TransactWriteItem::builder().update(up).build());
            }
            let change = ChatChange {
                set: vec!["memberCount = memberCount - :one".into()],
                values: vec![(":one".into(), n(1))],
                ..Default::default()
            };
            let event = if leaving {
                SystemEvent::MemberLeft {
                    member: target.clone(),
                    promoted: promoted.clone(),
                }
            } else {
                SystemEvent::MemberRemoved {
                    by: by.clone(),
                    member: target.clone(),
                }
            };
            match self
                .commit_message(&chat, &system(event, now), before, change)
                .await
            {
                Ok(message) => {
                    let mut chat = chat;
                    chat.member_count = chat.member_count.saturating_sub(1);
                    return Ok(self.after_change(chat, message, promoted));
                }
                // Only a removal by someone else starts with the admin check.
                Err(CommitFailure::Conditions(f)) if !leaving && f.failed(ADMIN_CHECK) => {
                    return Err(self.not_admin_or_member(chat_id, by).await?);
                }
                Err(CommitFailure::Store(e)) => return Err(e),
                Err(_) => {}
            }
            backoff(attempt + 1).await;
        }
        Err(StoreError::Contention)
    }

    /// Mute or unmute a chat for one member (no push while muted).
    pub async fn set_muted(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        muted: bool,
    ) -> StoreResult<Membership> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.members)
            .key("chatId", s(chat_id.as_str()))
            .key("userId", s(user_id.as_str()))
            .update_expression("SET muted = :m")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":m", b(muted))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => membership_from(
                &out.attributes().cloned().unwrap_or_default(),
                &self.t.members,
            ),
            Err(e) if super::codec::is_condition_failed(&e) => Err(StoreError::NotFound("chat")),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Move a member's delivered position forward to `pos` (never back). Returns
    /// whether it moved. The caller checks `pos <= chat.last_position` first. Reads the
    /// member first; the receipt path has it already and calls
    /// [`Store::advance_receipt`] directly.
    pub async fn advance_delivered(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        pos: u64,
    ) -> StoreResult<bool> {
        let member = self
            .get_membership(chat_id, user_id)
            .await?
            .ok_or(StoreError::NotMember)?;
        self.advance_receipt(&member, super::ReceiptKind::Delivered, pos)
            .await
    }

    /// Move a member's read position forward to `pos` (and the delivered position with
    /// it when it was behind, in the same write). Returns whether the read position
    /// moved.
    pub async fn advance_read(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        pos: u64,
    ) -> StoreResult<bool> {
        let member = self
            .get_membership(chat_id, user_id)
            .await?
            .ok_or(StoreError::NotMember)?;
        self.advance_receipt(&member, super::ReceiptKind::Read, pos)
            .await
    }

    async fn group(&self, chat_id: &ChatId) -> StoreResult<Chat> {
        match self.get_chat(chat_id, true).await? {
            Some(c) if c.kind == ChatKind::Group => Ok(c),
            Some(_) => Err(StoreError::Conflict(Conflict::NotAGroup)),
            None => Err(StoreError::NotFound("chat")),
        }
    }

    async fn not_admin_or_member(&self, chat_id: &ChatId, by: &UserId) -> StoreResult<StoreError> {
        Ok(match self.get_membership(chat_id, by).await? {
            Some(_) => StoreError::Conflict(Conflict::NotAdmin),
            None => StoreError::NotFound("chat"),
        })
    }

    fn after_change(
        &self,
        mut chat: Chat,
        message: Message,
        promoted: Option<UserId>,
    ) -> MembershipChange {
        chat.last_position = message.position;
        chat.last_activity_at = message.sent_at;
        chat.last_message = Some(crate::model::LastMessage {
            message_id: message.message_id.clone(),
            position: message.position,
            sender_id: None,
            preview: message.text.clone(),
            sent_at: message.sent_at,
        });
        MembershipChange {
            chat,
            message,
            promoted,
        }
    }
}
