//! Users, user-name claims and presence records.
//!
//! - `Users`: one item per account, key `userId`.
//! - `UserNames`: one item per claimed name, key (`bucket` = first two characters of the
//!   case-folded name, `name` = the case-folded name). A conditional put makes names
//!   unique without regard to case; a prefix search is one Query on a bucket with
//!   `begins_with`. A freed name keeps its item with `releaseAt` until it may be reused.
//! - `Presence`: one item per user (created with the account), whose `conns` map holds
//!   the user's live connection ids and their expiry (see `connections.rs`).

use super::codec::{n, s, Item, Reader};
use super::{Conflict, Store, StoreError, StoreResult};
use crate::ids::UserId;
use crate::input::{AvatarUrl, DisplayName, StatusText, UserName, UserNamePrefix};
use crate::model::{Millis, Profile, UserAccount};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
};
use std::collections::HashMap;

/// The partition of a user-name claim: the first two characters of the folded name.
pub(crate) fn bucket(canonical: &str) -> String {
    canonical.chars().take(2).collect()
}

/// Changes to a profile; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ProfileUpdate {
    pub display_name: Option<DisplayName>,
    pub status_text: Option<StatusText>,
    /// `Some(None)` removes the avatar.
    pub avatar_url: Option<Option<AvatarUrl>>,
}

fn profile_from(r: &Reader<'_>) -> StoreResult<Profile> {
    Ok(Profile {
        user_id: r.parsed("userId", UserId::parse)?,
        user_name: r.string("userName")?,
        display_name: r.string("displayName")?,
        status_text: r.opt_string("statusText")?.unwrap_or_default(),
        avatar_url: r.opt_string("avatarUrl")?,
        created_at: r.num("createdAt")?,
    })
}

fn account_from(item: &Item, table: &str) -> StoreResult<UserAccount> {
    let r = Reader::new(item, table);
    Ok(UserAccount {
        user_id: r.parsed("userId", UserId::parse)?,
        user_name: r.string("userName")?,
        // A deleted account's tombstone has no password hash.
        password_hash: r.opt_string("passwordHash")?.unwrap_or_default(),
        token_version: r.num_or("tokenVersion", 0)?,
        failed_logins: r.num_or("failedLogins", 0)?,
        locked_until: r.opt_num("lockedUntil")?,
        deleted: r.bool_or("deleted", false)?,
        profile: profile_from(&r)?,
    })
}

impl Store {
    /// Create an account: the user item, the name claim and the presence record, all
    /// or nothing. `Conflict::UserNameTaken` when the name (in any case) is claimed.
    pub async fn create_user(
        &self,
        user_id: &UserId,
        name: &UserName,
        display_name: &DisplayName,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<Profile> {
        let canonical = name.canonical();
        let user = Put::builder()
            .table_name(&self.t.users)
            .item("userId", s(user_id.as_str()))
            .item("userName", s(name.as_str()))
            .item("displayName", s(display_name.as_str()))
            .item("statusText", s(""))
            .item("passwordHash", s(password_hash))
            .item("tokenVersion", n(0))
            .item("failedLogins", n(0))
            .item("createdAt", n(now))
            .condition_expression("attribute_not_exists(userId)")
            .build()
            .map_err(build_err)?;
        let claim = Put::builder()
            .table_name(&self.t.user_names)
            .item("bucket", s(bucket(&canonical)))
            .item("name", s(&canonical))
            .item("userName", s(name.as_str()))
            .item("userId", s(user_id.as_str()))
            .condition_expression("attribute_not_exists(#n) OR releaseAt < :now")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_err)?;
        let presence = Put::builder()
            .table_name(&self.t.presence)
            .item("userId", s(user_id.as_str()))
            .item("conns", AttributeValue::M(HashMap::new()))
            .condition_expression("attribute_not_exists(userId)")
            .build()
            .map_err(build_err)?;
        let res = self
            .db
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(user).build())
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .transact_items(TransactWriteItem::builder().put(presence).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Profile {
                user_id: user_id.clone(),
                user_name: name.as_str().to_owned(),
                display_name: display_name.as_str().to_owned(),
                status_text: String::new(),
                avatar_url: None,
                created_at: now,
            }),
            Err(e) => match super::codec::cancelled_conditions(&e) {
                Some(failed) if failed.get(1) == Some(&true) => {
                    Err(StoreError::Conflict(Conflict::UserNameTaken))
                }
                _ => Err(StoreError::sdk("TransactWriteItems", e)),
            },
        }
    }

    /// The account behind a user id, secrets included (strongly consistent).
    pub async fn get_account(&self, user_id: &UserId) -> StoreResult<Option<UserAccount>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| account_from(i, &self.t.users))
            .transpose()
    }

    /// The user holding a name (any case), if any.
    pub async fn find_user_by_name(&self, name: &str) -> StoreResult<Option<UserId>> {
        let canonical = name.to_ascii_lowercase();
        let out = self
            .db
            .get_item()
            .table_name(&self.t.user_names)
            .key("bucket", s(bucket(&canonical)))
            .key("name", s(&canonical))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let r = Reader::new(item, &self.t.user_names);
        if r.opt_num::<Millis>("releaseAt")?.is_some() {
            // Freed by an account deletion; nobody holds it.
            return Ok(None);
        }
        r.parsed("userId", UserId::parse).map(Some)
    }

    /// Users whose name starts with `prefix` (at least two characters), in name order,
    /// `limit` at a time; `after` is the last name of the previous page.
    pub async fn search_users(
        &self,
        prefix: &UserNamePrefix,
        limit: u32,
        after: Option<&str>,
    ) -> StoreResult<(Vec<Profile>, Option<String>)> {
        let p = prefix.as_str();
        let mut q = self
            .db
            .query()
            .table_name(&self.t.user_names)
            .key_condition_expression("#b = :b AND begins_with(#n, :p)")
            .filter_expression("attribute_not_exists(releaseAt)")
            .expression_attribute_names("#b", "bucket")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":b", s(bucket(p)))
            .expression_attribute_values(":p", s(p))
            .limit(limit as i32);
        if let Some(after) = after {
            if !after.starts_with(p) {
                return Ok((Vec::new(), None));
            }
            q = q
                .exclusive_start_key("bucket", s(bucket(p)))
                .exclusive_start_key("name", s(after));
        }
        let out = q.send().await.map_err(|e| StoreError::sdk("Query", e))?;
        let mut ids = Vec::new();
        for item in out.items() {
            ids.push(Reader::new(item, &self.t.user_names).parsed("userId", UserId::parse)?);
        }
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("name"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        let mut by_id = self.get_profiles(&ids).await?;
        let profiles = ids.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok((profiles, next))
    }

    /// Profiles of up to any number of users (BatchGetItem, 100 keys a call); unknown
    /// and deleted users are left out.
    pub async fn get_profiles(&self, ids: &[UserId]) -> StoreResult<HashMap<UserId, Profile>> {
        let mut out = HashMap::new();
        let mut unique: Vec<&UserId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys = chunk
                .iter()
                .map(|id| HashMap::from([("userId".to_owned(), s(id.as_str()))]))
                .collect::<Vec<_>>();
            let items = self
                .batch_get(
                    &self.t.users,
                    keys,
                    Some(
                        "userId, userName, displayName, statusText, avatarUrl, createdAt, deleted",
                    ),
                )
                .await?;
            for item in items {
                let r = Reader::new(&item, &self.t.users);
                if r.bool_or("deleted", false)? {
                    continue;
                }
                let p = profile_from(&r)?;
                out.insert(p.user_id.clone(), p);
            }
        }
        Ok(out)
    }

    /// BatchGetItem on one table with retries of unprocessed keys (at most 100 keys).
    pub(crate) async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        projection: Option<&str>,
    ) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(build_err)?,
        );
        let mut attempt = 0;
        while let Some(req) = pending.take() {
            let out = self
                .db
                .batch_get_item()
                .request_items(table, req)
                .send()
                .await
                .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
            if let Some(items) = out.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
            }
            if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(table)) {
                if !left.keys().is_empty() {
                    attempt += 1;
                    if attempt > super::MAX_ATTEMPTS {
                        return Err(StoreError::Contention);
                    }
                    super::backoff(attempt).await;
                    pending = Some(left.clone());
                }
            }
        }
        Ok(found)
    }

    /// Apply a profile change; returns the new profile.
    pub async fn update_profile(
        &self,
        user_id: &UserId,
        change: &ProfileUpdate,
    ) -> StoreResult<Profile> {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut req = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()));
        if let Some(d) = &change.display_name {
            sets.push("displayName = :d");
            req = req.expression_attribute_values(":d", s(d.as_str()));
        }
        if let Some(st) = &change.status_text {
            sets.push("statusText = :st");
            req = req.expression_attribute_values(":st", s(st.as_str()));
        }
        match &change.avatar_url {
            Some(Some(a)) => {
                sets.push("avatarUrl = :a");
                req = req.expression_attribute_values(":a", s(a.as_str()));
            }
            Some(None) => removes.push("avatarUrl"),
            None => {}
        }
        if sets.is_empty() && removes.is_empty() {
            return self
                .get_account(user_id)
                .await?
                .filter(|a| !a.deleted)
                .map(|a| a.profile)
                .ok_or(StoreError::NotFound("user"));
        }
        let mut expr = String::new();
        if !sets.is_empty() {
            expr.push_str("SET ");
            expr.push_str(&sets.join(", "));
        }
        if !removes.is_empty() {
            expr.push_str(" REMOVE ");
            expr.push_str(&removes.join(", "));
        }
        let res = req
            .update_expression(expr)
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(deleted) OR deleted = :f)",
            )
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                profile_from(&Reader::new(&item, &self.t.users))
            }
            Err(e) if super::codec::is_condition_failed(&e) => Err(StoreError::NotFound("user")),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// "Log out everywhere": increment the token version; returns the new version.
    pub async fn bump_token_version(&self, user_id: &UserId) -> StoreResult<u64> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .update_expression("ADD tokenVersion :one")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                Reader::new(&item, &self.t.users).num("tokenVersion")
            }
            Err(e) if super::codec::is_condition_failed(&e) => Err(StoreError::NotFound("user")),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Count a failed login. After `threshold` failures in a row the account is locked
    /// until `now + lock_ms` and the count starts again. Returns the lock time, if set.
    pub async fn record_failed_login(
        &self,
        user_id: &UserId,
        now: Millis,
        threshold: u32,
        lock_ms: Millis,
    ) -> StoreResult<Option<Millis>> {
        let out = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .update_expression("ADD failedLogins :one")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        let item = out.attributes().cloned().unwrap_or_default();
        let count: u32 = Reader::new(&item, &self.t.users).num_or("failedLogins", 0)?;
        if count < threshold {
            return Ok(None);
        }
        let until = now + lock_ms;
        self.db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .update_expression("SET lockedUntil = :u, failedLogins = :zero")
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(Some(until))
    }

    /// After a successful login: clear the failure count and any lock.
    pub async fn reset_failed_logins(&self, user_id: &UserId) -> StoreResult<()> {
        self.db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user_id.as_str()))
            .update_expression("SET failedLogins = :zero REMOVE lockedUntil")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }
}

pub(crate) fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed {
        op: "build request",
        code: "BuildError".into(),
        source: Box::new(e),
    }
}
