//! Login sessions: one item per refresh-token family, key `sessionId`, GSI `byUser`
//! (`userId`, `createdAt`) for listing a user's sessions. Only the SHA-256 of the
//! current refresh secret is stored. Rotation is a conditional update on that hash, so
//! exactly one of two concurrent refreshes with the same token wins; the loser (or a
//! thief replaying an old token) is detected as reuse and the whole family is revoked.
//! Expired sessions are removed by DynamoDB TTL (`ttl`).

use super::codec::{b, n, s, Item, Reader};
use super::{ttl_seconds, Store, StoreError, StoreResult};
use crate::ids::{SessionId, UserId};
use crate::model::{Millis, Session};

fn session_from(item: &Item, table: &str) -> StoreResult<Session> {
    let r = Reader::new(item, table);
    Ok(Session {
        session_id: r.parsed("sessionId", SessionId::parse)?,
        user_id: r.parsed("userId", UserId::parse)?,
        current_hash: r.string("currentHash")?,
        generation: r.num_or("generation", 0)?,
        token_version: r.num_or("tokenVersion", 0)?,
        created_at: r.num("createdAt")?,
        last_used_at: r.num_or("lastUsedAt", 0)?,
        expires_at: r.num("expiresAt")?,
        revoked: r.bool_or("revoked", false)?,
        user_agent: r.opt_string("userAgent")?.unwrap_or_default(),
    })
}

/// What happened to a rotation attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented hash was current; the new one is stored.
    Rotated,
    /// The presented hash was not current: reuse of an old token. The family is revoked.
    ReuseDetected,
    /// No such session, or it is revoked or expired.
    Invalid,
}

impl Store {
    pub async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.db
            .put_item()
            .table_name(&self.t.sessions)
            .item("sessionId", s(session.session_id.as_str()))
            .item("userId", s(session.user_id.as_str()))
            .item("currentHash", s(&session.current_hash))
            .item("generation", n(session.generation))
            .item("tokenVersion", n(session.token_version))
            .item("createdAt", n(session.created_at))
            .item("lastUsedAt", n(session.last_used_at))
            .item("expiresAt", n(session.expires_at))
            .item("ttl", n(ttl_seconds(session.expires_at)))
            .item("revoked", b(false))
            .item("userAgent", s(&session.user_agent))
            .condition_expression("attribute_not_exists(sessionId)")
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    pub async fn get_session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.sessions)
            .key("sessionId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| session_from(i, &self.t.sessions))
            .transpose()
    }

    /// Replace the current refresh hash `old_hash` by `new_hash` if it is still
    /// current, the session live and not expired; otherwise revoke the family when the
    /// session exists (reuse) and say so.
    pub async fn rotate_session(
        &self,
        id: &SessionId,
        old_hash: &str,
        new_hash: &str,
        now: Millis,
    ) -> StoreResult<Rotation> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.sessions)
            .key("sessionId", s(id.as_str()))
            .update_expression("SET currentHash = :new, lastUsedAt = :now ADD generation :one")
            .condition_expression("currentHash = :old AND revoked = :f AND expiresAt > :now")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(old_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":f", b(false))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Rotation::Rotated),
            Err(e) if super::codec::is_condition_failed(&e) => {
                let Some(sess) = self.get_session(id).await? else {
                    return Ok(Rotation::Invalid);
                };
                if sess.revoked || sess.expires_at <= now {
                    return Ok(Rotation::Invalid);
                }
                // A live family whose current secret differs from what was presented:
                // an old token came back. Kill the family (both thief and owner must
                // log in again).
                self.revoke_session(id).await?;
                Ok(Rotation::ReuseDetected)
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Revoke one session (logout, or reuse detected). Idempotent.
    pub async fn revoke_session(&self, id: &SessionId) -> StoreResult<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.sessions)
            .key("sessionId", s(id.as_str()))
            .update_expression("SET revoked = :t")
            .condition_expression("attribute_exists(sessionId)")
            .expression_attribute_values(":t", b(true))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::codec::is_condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// A user's sessions, newest first (Query on the `byUser` index, all pages).
    pub async fn list_sessions(&self, user_id: &UserId) -> StoreResult<Vec<Session>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.t.sessions)
                .index_name("byUser")
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user_id.as_str()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in page.items() {
                out.push(session_from(item, &self.t.sessions)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }
}
