//! Credential bookkeeping on the `Users` and `Sessions` items: the login lockout's
//! attempt reservation, the password check of a signed-in session (re-authentication)
//! and the password change.
//!
//! - Login attempts are *reserved before* the Argon2 check ([`Store::reserve_login`]):
//!   one conditional `ADD failedLogins 1` that succeeds only while the account is not
//!   locked and fewer than `threshold` attempts are counted. An attempt stays counted
//!   until a right password resets the count, so in-flight and failed attempts share
//!   the budget and N parallel logins get at most `threshold` verifications, not N.
//!   The failure that used the last attempt sets `lockedUntil` and restarts the count
//!   ([`Store::lock_after_failures`]).
//! - A signed-in session re-proving its password (`POST /auth/password`, `DELETE /me`)
//!   never looks at the lock (strangers who know the user name must not block the
//!   owner); its attempts are counted on the session item instead
//!   ([`Store::reserve_reauth`]): after `threshold` tries the session is revoked, so a
//!   stolen access token cannot be used to guess the password.
//! - [`Store::change_password`]: new hash, token version + 1, lock cleared, in one
//!   conditional update.

use super::codec::{b, n, s, Reader};
use super::{Store, StoreError, StoreResult};
use crate::ids::{SessionId, UserId};
use crate::model::Millis;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

/// What [`Store::reserve_login`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginReservation {
    /// Attempt number `n` (1-based) is reserved: verify the password.
    Reserved(u32),
    /// Locked, or `threshold` attempts are counted already: refuse without verifying.
    Refused,
}

impl Store {
    /// Reserve one login attempt on `user` (see the module doc).
    pub async fn reserve_login(
        &self,
        user: &UserId,
        now: Millis,
        threshold: u32,
    ) -> StoreResult<LoginReservation> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user.as_str()))
            .update_expression("ADD failedLogins :one")
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(lockedUntil) OR lockedUntil <= :now) \
                 AND (attribute_not_exists(failedLogins) OR failedLogins < :t)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":t", n(threshold))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                let count = Reader::new(&item, &self.t.users).num_or("failedLogins", 1)?;
                Ok(LoginReservation::Reserved(count))
            }
            Err(e) if super::codec::is_condition_failed(&e) => Ok(LoginReservation::Refused),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// The failed attempt that used the last of the budget locks the account until
    /// `until` and restarts the count.
    pub async fn lock_after_failures(&self, user: &UserId, until: Millis) -> StoreResult<()> {
        self.db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user.as_str()))
            .update_expression("SET lockedUntil = :u, failedLogins = :zero")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_values(":u", n(until))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    /// Reserve one password check by the signed-in `session` of `user`: `false` when
    /// the session is revoked, not the user's, or has used its `threshold` attempts.
    /// The attempt that reaches the threshold revokes the session.
    pub async fn reserve_reauth(
        &self,
        session: &SessionId,
        user: &UserId,
        threshold: u32,
    ) -> StoreResult<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.sessions)
            .key("sessionId", s(session.as_str()))
            .update_expression("ADD reauthAttempts :one")
            .condition_expression(
                "userId = :u AND revoked = :f AND (attribute_not_exists(reauthAttempts) OR reauthAttempts < :t)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":f", b(false))
            .expression_attribute_values(":t", n(threshold))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                let count: u32 =
                    Reader::new(&item, &self.t.sessions).num_or("reauthAttempts", 1)?;
                if count >= threshold {
                    // The last attempt: whatever it finds, the session cannot try again.
                    self.revoke_session(session).await?;
                }
                Ok(true)
            }
            Err(e) if super::codec::is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Store a new password hash, bump the token version (every token and session of
    /// the user dies) and clear the lockout; returns the new token version. Refused
    /// (`NotFound`) for a deleted or unknown account.
    pub async fn change_password(&self, user: &UserId, new_hash: &str) -> StoreResult<u64> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.users)
            .key("userId", s(user.as_str()))
            .update_expression(
                "SET passwordHash = :h, failedLogins = :zero ADD tokenVersion :one REMOVE lockedUntil",
            )
            .condition_expression(
                "attribute_exists(userId) AND (attribute_not_exists(deleted) OR deleted = :f)",
            )
            .expression_attribute_values(":h", s(new_hash))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
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
}
