//! The login lockout rule, shared by everything that checks a password (`POST
//! /auth/login` in `http-auth`, `DELETE /me` in `http-users`): a number of failures in a
//! row locks the account for a while. Read from the environment once, at init
//! ([`LockoutRule::from_env`]), and the one source of the refusal message that states
//! it, so the message cannot drift from the rule. The design is in `docs/security.md`,
//! "Lockout rule".

use crate::config::{ConfigError, Env};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::model::{Millis, UserAccount};
use crate::store::{Store, StoreError};

/// When failed password checks lock an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutRule {
    /// Failures in a row that lock the account.
    pub threshold: u32,
    /// How long the lock lasts.
    pub lock_ms: Millis,
}

impl Default for LockoutRule {
    /// 5 failures in a row lock the account for 15 minutes.
    fn default() -> Self {
        LockoutRule {
            threshold: 5,
            lock_ms: 15 * 60 * 1000,
        }
    }
}

impl LockoutRule {
    /// `LOGIN_LOCK_THRESHOLD` (5) and `LOGIN_LOCK_SECONDS` (900).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let default = LockoutRule::default();
        Ok(LockoutRule {
            threshold: env.parse_or("LOGIN_LOCK_THRESHOLD", default.threshold)?,
            lock_ms: env.parse_or::<i64>("LOGIN_LOCK_SECONDS", default.lock_ms / 1000)? * 1000,
        })
    }

    /// Whether `account` is locked at `now`.
    pub fn is_locked(account: &UserAccount, now: Millis) -> bool {
        account.locked_until.is_some_and(|until| until > now)
    }

    /// The rule in words: `after 5 failures in a row an account is locked for 15
    /// minutes`.
    pub fn describe(&self) -> String {
        let seconds = self.lock_ms / 1000;
        let duration = if seconds % 60 == 0 {
            match seconds / 60 {
                1 => "1 minute".to_owned(),
                m => format!("{m} minutes"),
            }
        } else {
            format!("{seconds} seconds")
        };
        format!(
            "after {} failures in a row an account is locked for {duration}",
            self.threshold
        )
    }

    /// `401 invalid_credentials`: `what` went wrong, and the rule.
    pub fn refusal(&self, what: &str) -> ApiError {
        ApiError::auth_failed(
            "invalid_credentials",
            format!("{what} ({})", self.describe()),
        )
    }

    /// Count one failure against `user`; the time the account is locked until when
    /// this failure locked it.
    pub async fn record_failure(
        &self,
        store: &Store,
        user: &UserId,
        now: Millis,
    ) -> Result<Option<Millis>, StoreError> {
        store
            .record_failed_login(user, now, self.threshold, self.lock_ms)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_states_the_rule() {
        let e = LockoutRule::default().refusal("wrong user name or password");
        assert_eq!(e.code(), "invalid_credentials");
        assert_eq!(
            e.to_string(),
            "wrong user name or password (after 5 failures in a row an account is locked for 15 minutes)"
        );
        let rule = LockoutRule {
            threshold: 3,
            lock_ms: 90_000,
        };
        assert!(rule.refusal("x").to_string().contains("3 failures"));
        assert!(rule.describe().ends_with("90 seconds"));
    }
}
