//! Account deletion: the fast, synchronous start (`DELETE /me`, in `http-users`) and
//! the asynchronous, resumable purge (`account-purger`). The policy is in
//! docs/security.md, "Retention and deletion"; this module is its implementation.
//!
//! [`Lifecycle::begin_deletion`] publishes a purge job, then makes the account
//! unusable in one write (flag, token version, tombstone, name release), then closes
//! the user's connections. [`Lifecycle::purge`] works through [`PurgePhase`]s, saving
//! progress on the Users item after every bounded step, and answers
//! [`PurgeOutcome::Continue`] when its budget is spent (the caller publishes the job
//! again). Every step is idempotent, so redelivered or retried jobs are harmless.

use crate::config::{ConfigError, Env};
pub use crate::delivery::Closed;
use crate::error::ApiError;
use crate::ids::{ChatId, UserId};
use crate::messaging::ChatServices;
use crate::model::{now_millis, ChatKind, Millis, PurgePhase, UserAccount};
use crate::store::{AccountStatus, PurgeState, SenderKey, Store, StoreError};
use aws_sdk_sns::error::ProvideErrorMetadata;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// What `AccountPurgeTopic` carries: "purge this deleted account" (first or
/// continuation, the same job: progress lives on the Users item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeJob {
    /// Always [`PurgeJob::KIND`].
    pub kind: String,
    pub user_id: UserId,
}

impl PurgeJob {
    pub const KIND: &'static str = "accountPurge";

    pub fn new(user_id: UserId) -> Self {
        PurgeJob {
            kind: Self::KIND.to_owned(),
            user_id,
        }
    }
}

/// Tunables (environment variables in brackets).
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// How long a deleted user's name stays reserved (`USER_NAME_RELEASE_DELAY_SECONDS`,
    /// 30 days).
    pub name_release_delay_ms: Millis,
    /// Messages blanked per purge invocation at most (`PURGE_BATCH_MESSAGES`, 2,000).
    pub batch_messages: u32,
    /// How long the `bySender` index may lag behind the table
    /// (`PURGE_INDEX_SETTLE_MS`, 5,000): the messages phase ends only once it read the
    /// index to its end at least this long after the deletion.
    pub index_settle_ms: Millis,
    /// How long a purge waits for a job's account to become deleted (the job is
    /// published just before the deletion is written) (`PURGE_NOT_DELETED_WAIT_MS`,
    /// 3,000).
    pub not_deleted_wait_ms: u64,
}

impl LifecycleConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(LifecycleConfig {
            name_release_delay_ms: env
                .parse_or::<i64>("USER_NAME_RELEASE_DELAY_SECONDS", 30 * 24 * 3600)?
                * 1000,
            batch_messages: env.parse_or("PURGE_BATCH_MESSAGES", 2000)?,
            index_settle_ms: env.parse_or("PURGE_INDEX_SETTLE_MS", 5000)?,
            not_deleted_wait_ms: env.parse_or("PURGE_NOT_DELETED_WAIT_MS", 3000)?,
        })
    }
}

/// What `DELETE /me` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionStarted {
    /// Always `"deleting"`: the purge continues in the background.
    pub status: &'static str,
    #[serde(with = "crate::model::as_rfc3339")]
    pub deleted_at: Millis,
    /// When the user name may be registered again.
    #[serde(with = "crate::model::as_rfc3339")]
    pub user_name_released_at: Millis,
}

/// How one purge invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeOutcome {
    /// Everything is purged (now or earlier).
    Done,
    /// The budget is spent; publish the job again to go on from `PurgePhase`.
    Continue(PurgePhase),
    /// The account is not deleted (the deletion that published the job failed): nothing
    /// was done.
    NotDeleted,
    /// No such account.
    Missing,
}

/// The lifecycle services, built once at init.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    services: ChatServices,
    sns: aws_sdk_sns::Client,
    purge_topic_arn: String,
    pub config: LifecycleConfig,
}

impl Lifecycle {
    pub fn new(
        services: ChatServices,
        sns: aws_sdk_sns::Client,
        purge_topic_arn: impl Into<String>,
        config: LifecycleConfig,
    ) -> Self {
        Lifecycle {
            services,
            sns,
            purge_topic_arn: purge_topic_arn.into(),
            config,
        }
    }

    /// Everything from the environment: what [`ChatServices::from_env`] needs, plus
    /// `ACCOUNT_PURGE_TOPIC_ARN` and the [`LifecycleConfig`] variables.
    pub async fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let sdk = crate::aws::sdk_config(env).await;
        let services = ChatServices::from_env(env).await?;
        Ok(Lifecycle::new(
            services,
            crate::aws::sns(&sdk, env),
            env.require("ACCOUNT_PURGE_TOPIC_ARN")?.to_owned(),
            LifecycleConfig::from_env(env)?,
        ))
    }

    pub fn store(&self) -> &Store {
        self.services.store()
    }

    pub fn services(&self) -> &ChatServices {
        &self.services
    }

    /// Publish a purge job for `user`.
    pub async fn publish_job(&self, user: &UserId) -> Result<(), ApiError> {
        let body =
            serde_json::to_string(&PurgeJob::new(user.clone())).map_err(ApiError::internal)?;
        self.sns
            .publish()
            .topic_arn(&self.purge_topic_arn)
            .message(body)
            .send()
            .await
            .map_err(|e| {
                tracing::error!(error = %aws_sdk_sns::error::DisplayErrorContext(&e), user = %user, "purge job not published");
                ApiError::Unavailable(Box::new(e))
            })?;
        Ok(())
    }

    /// The synchronous part of `DELETE /me`, for an account whose password was just
    /// checked (see the module doc for the order and why).
    pub async fn begin_deletion(&self, account: &UserAccount) -> Result<DeletionStarted, ApiError> {
        let user = &account.user_id;
        self.publish_job(user).await?;
        let now = now_millis();
        let release_at = now + self.config.name_release_delay_ms;
        let canonical = account.user_name.to_ascii_lowercase();
        match self
            .store()
            .mark_account_deleted(user, &canonical, now, release_at)
            .await
        {
            Ok(()) => {}
            // Deleted concurrently by another request of the same user.
            Err(StoreError::NotFound(_)) => {
                return Err(ApiError::Unauthorized(crate::auth::bearer::REVOKED.into()))
            }
            Err(e) => return Err(e.into()),
        }
        let closed = self.close_connections(user).await;
        tracing::info!(user = %user, closed = closed.closed, failed = closed.failed, "account deleted; purge queued");
        Ok(DeletionStarted {
            status: "deleting",
            deleted_at: now,
            user_name_released_at: release_at,
        })
    }

    /// Close every live WebSocket connection of `user` ([`Poster::close_connections`]).
    pub async fn close_connections(&self, user: &UserId) -> Closed {
        self.services.poster().close_connections(user).await
    }

    /// Purge a deleted account until done or until `deadline` (the invocation's time
    /// budget) or the message batch is used up. Errors are transient failures: the
    /// invocation should fail so that it is retried (progress so far is saved).
    pub async fn purge(&self, user: &UserId, deadline: Instant) -> Result<PurgeOutcome, ApiError> {
        let (mut state, deleted_at) = match self.wait_for_deletion(user).await? {
            Ok(found) => found,
            Err(outcome) => return Ok(outcome),
        };
        let mut blanked = 0u32;
        loop {
            if state.phase == PurgePhase::Done {
                return Ok(PurgeOutcome::Done);
            }
            if Instant::now() >= deadline {
                return Ok(PurgeOutcome::Continue(state.phase));
            }
            let next = match state.phase {
                PurgePhase::Connections => {
                    let c = self.close_connections(user).await;
                    if c.failed > 0 {
                        return Err(ApiError::Internal(
                            format!("{} connection(s) could not be closed", c.failed).into(),
                        ));
                    }
                    None
                }
                PurgePhase::Sessions => {
                    for s in self.store().list_sessions(user).await? {
                        self.store().delete_session(&s.session_id).await?;
                    }
                    None
                }
                PurgePhase::Devices => {
                    self.purge_devices(user).await?;
                    None
                }
                PurgePhase::Chats => {
                    if !self.leave_chats(user, deadline).await? {
                        return Ok(PurgeOutcome::Continue(state.phase));
                    }
                    None
                }
                PurgePhase::Messages => {
                    match self
                        .blank_messages(user, &mut state, deleted_at, &mut blanked, deadline)
                        .await?
                    {
                        true => None,
                        false => return Ok(PurgeOutcome::Continue(state.phase)),
                    }
                }
                PurgePhase::Presence => {
                    // The user's photos and files go with the last phase (objects,
                    // then records; repeating it is harmless).
                    crate::attachments::delete_user_attachments(
                        self.store(),
                        self.services.attachments(),
                        user,
                    )
                    .await?;
                    self.store().delete_presence(user).await?;
                    self.store().delete_blocks(user).await?;
                    None
                }
                PurgePhase::Done => None,
            };
            state = PurgeState {
                phase: state.phase.next(),
                cursor: next,
            };
            self.store()
                .set_purge_state(user, &state, now_millis())
                .await?;
            tracing::info!(user = %user, phase = state.phase.as_str(), "purge advanced");
        }
    }

    /// The account's purge state once it is deleted; `Err(outcome)` when it is missing
    /// or stays active for `not_deleted_wait_ms`.
    async fn wait_for_deletion(
        &self,
        user: &UserId,
    ) -> Result<Result<(PurgeState, Millis), PurgeOutcome>, ApiError> {
        let until = Instant::now() + Duration::from_millis(self.config.not_deleted_wait_ms);
        loop {
            match self.store().account_status(user).await? {
                AccountStatus::Missing => return Ok(Err(PurgeOutcome::Missing)),
                AccountStatus::Deleted { purge, deleted_at } => return Ok(Ok((purge, deleted_at))),
                AccountStatus::Active if Instant::now() >= until => {
                    tracing::warn!(user = %user, "purge job for an account that is not deleted; ignored");
                    return Ok(Err(PurgeOutcome::NotDeleted));
                }
                AccountStatus::Active => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn purge_devices(&self, user: &UserId) -> Result<(), ApiError> {
        for d in self.store().list_devices(user).await? {
            if let Some(arn) = &d.endpoint_arn {
                match self.sns.delete_endpoint().endpoint_arn(arn).send().await {
                    Ok(_) => {}
                    // DeleteEndpoint is idempotent in SNS; tolerate emulators that say 404.
                    Err(e) if e.as_service_error().and_then(|e| e.code()) == Some("NotFound") => {}
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_sns::error::DisplayErrorContext(&e), device = %d.device_id, "endpoint not deleted");
                        return Err(ApiError::Unavailable(Box::new(e)));
                    }
                }
            }
            self.store().delete_device(user, &d.device_id).await?;
        }
        Ok(())
    }

    /// Leave every group (with announcements and admin handover) and mute every direct
    /// chat. Returns false when the deadline came first.
    async fn leave_chats(&self, user: &UserId, deadline: Instant) -> Result<bool, ApiError> {
        let memberships = self.store().list_user_memberships(user).await?;
        let ids: Vec<ChatId> = memberships.iter().map(|m| m.chat_id.clone()).collect();
        let chats = self.store().get_chats(&ids).await?;
        for m in memberships {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let Some(chat) = chats.get(&m.chat_id) else {
                continue;
            };
            match chat.kind {
                ChatKind::Group => {
                    match self
                        .store()
                        .remove_member(&m.chat_id, user, user, now_millis())
                        .await
                    {
                        Ok(change) => {
                            if let Err(e) = self.services.announce_membership(&change, &[]).await {
                                e.log();
                            }
                        }
                        // Left already (a retried step; the index lags behind).
                        Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                ChatKind::Direct if !m.muted => {
                    match self.store().set_muted(&m.chat_id, user, true).await {
                        Ok(_) | Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                ChatKind::Direct => {}
            }
        }
        Ok(true)
    }

    /// Blank the user's messages from the saved cursor on, saving the cursor after each
    /// page. True when the index was read to its end (after it settled).
    async fn blank_messages(
        &self,
        user: &UserId,
        state: &mut PurgeState,
        deleted_at: Millis,
        blanked: &mut u32,
        deadline: Instant,
    ) -> Result<bool, ApiError> {
        let mut after: Option<SenderKey> = state
            .cursor
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok());
        loop {
            if *blanked >= self.config.batch_messages || Instant::now() >= deadline {
                return Ok(false);
            }
            let read_at = now_millis();
            let room = (self.config.batch_messages - *blanked).min(100);
            let page = self
                .store()
                .messages_by_sender(user, room, after.as_ref())
                .await?;
            let store = self.store().clone();
            let u = user.clone();
            stream::iter(page.keys.clone())
                .map(|k| {
                    let store = store.clone();
                    let u = u.clone();
                    async move { store.blank_message(&k.chat_id, k.position, &u).await }
                })
                .buffer_unordered(16)
                .try_collect::<Vec<bool>>()
                .await?;
            let chats: BTreeSet<&ChatId> = page.keys.iter().map(|k| &k.chat_id).collect();
            for c in chats {
                self.store().blank_last_message(c, user).await?;
            }
            *blanked += page.keys.len() as u32;
            if let Some(last) = page.keys.last() {
                after = Some(last.clone());
                state.cursor = serde_json::to_string(last).ok();
                self.store()
                    .set_purge_state(user, state, now_millis())
                    .await?;
            }
            if page.next.is_none() {
                // The end of the index. It lags the table a little: a message stored
                // just before the deletion may not be in it yet. Done only once the
                // end was read late enough after the deletion.
                let settled_at = deleted_at + self.config.index_settle_ms;
                if read_at >= settled_at {
                    return Ok(true);
                }
                let wait = Duration::from_millis((settled_at - read_at) as u64);
                if Instant::now() + wait >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_phases_run_in_order_and_round_trip() {
        let mut p = PurgePhase::Connections;
        let mut seen = vec![p];
        while p != PurgePhase::Done {
            let next = p.next();
            assert!(next > p, "{next:?} after {p:?}");
            p = next;
            seen.push(p);
        }
        assert_eq!(seen.len(), 7);
        assert_eq!(PurgePhase::Done.next(), PurgePhase::Done);
        for p in seen {
            assert_eq!(PurgePhase::parse(p.as_str()), Some(p));
        }
        assert_eq!(PurgePhase::parse("nope"), None);
    }

    #[test]
    fn purge_job_wire_format() {
        let user = UserId::generate();
        let v = serde_json::to_value(PurgeJob::new(user.clone())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "accountPurge", "userId": user.as_str()})
        );
        let back: PurgeJob = serde_json::from_value(v).unwrap();
        assert_eq!(back.user_id, user);
        assert!(
            serde_json::from_str::<PurgeJob>(r#"{"kind":"accountPurge","userId":"x"}"#).is_err()
        );
    }

    #[test]
    fn config_defaults_and_overrides() {
        let c = LifecycleConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.name_release_delay_ms, 30 * 24 * 3600 * 1000);
        assert_eq!(c.batch_messages, 2000);
        let mut env = Env::default();
        env.set("USER_NAME_RELEASE_DELAY_SECONDS", "2");
        env.set("PURGE_BATCH_MESSAGES", "5");
        let c = LifecycleConfig::from_env(&env).unwrap();
        assert_eq!((c.name_release_delay_ms, c.batch_messages), (2000, 5));
        env.set("PURGE_BATCH_MESSAGES", "many");
        assert!(LifecycleConfig::from_env(&env).is_err());
    }
}
