//! `push-notifier`: subscribed to the offline-message topic; sends one push
//! notification per registered device of each offline recipient (see
//! `docs/protocol.md`, "Push notifications").
//!
//! For each SNS record: parse the offline event (a malformed record is logged and
//! skipped: redelivering it would never help), then skip the push when the recipient
//! is no longer a member, has muted the chat, or has come online meanwhile; otherwise
//! look up the recipient's devices and publish one platform message per endpoint.
//! A device whose endpoint is disabled or gone is removed (record and endpoint); the
//! other devices still get theirs. When a publish fails temporarily the function
//! returns an error so that the event is delivered again; per-device markers
//! (`Store::claim_push`) make the redelivery skip devices that already got the push.
//! With no platform application configured the function logs and does nothing.

pub mod event;
pub mod payload;
pub mod sns_error;

use aws_lambda_events::sns::SnsEvent;
use aws_sdk_sns::types::MessageAttributeValue;
use chat_core::config::{Env, Tables};
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::model::{now_millis, Device, Membership};
use chat_core::store::{PushClaim, PushKey, Store, StoreError};
use event::OfflineEvent;
use lambda_runtime::Error;
use payload::Notification;
use sns_error::PublishFailure;

pub use chat_core::config::PlatformApps;

/// What happened to one offline event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Why nothing was sent, when nothing was attempted.
    pub skipped: Option<&'static str>,
    pub sent: usize,
    /// Devices that already had this push (an earlier delivery of the event).
    pub already_sent: usize,
    /// Devices removed because their endpoint was disabled or gone.
    pub removed: usize,
    /// Devices whose push failed for good (logged; not retried).
    pub failed: usize,
    /// Devices whose push failed temporarily (the event must be redelivered).
    pub retry: usize,
}

/// The function's state, built once at init.
pub struct Notifier {
    store: Store,
    sns: aws_sdk_sns::Client,
    apps: PlatformApps,
}

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    function::with_state(Notifier::init(env), |n, event: SnsEvent, _| async move {
        n.handle(event).await
    })
}

/// A temporary failure: the event must be delivered again.
#[derive(Debug)]
struct Retry;

impl Notifier {
    pub fn new(store: Store, sns: aws_sdk_sns::Client, apps: PlatformApps) -> Self {
        Notifier { store, sns, apps }
    }

    /// The notifier from the function's environment: tables, SNS, platform apps.
    pub async fn init(env: Env) -> Result<Self, Error> {
        let sdk = chat_core::aws::sdk_config(&env).await;
        let store = Store::new(
            chat_core::aws::dynamodb(&sdk, &env),
            Tables::from_env(&env)?,
        );
        Ok(Notifier::new(
            store,
            chat_core::aws::sns(&sdk, &env),
            PlatformApps::from_env(&env),
        ))
    }

    /// Handle one SNS delivery (one or more records). Errors only when a record must
    /// be retried, after every record was attempted.
    pub async fn handle(&self, event: SnsEvent) -> Result<(), Error> {
        if !self.apps.any() {
            tracing::info!(
                records = event.records.len(),
                "no push platform application configured; offline events ignored"
            );
            return Ok(());
        }
        // Counted into the invocation's EMF record (flushed by the function wrapper).
        use chat_core::metrics;
        let mut retry = 0;
        for record in &event.records {
            let sns_id = record.sns.message_id.as_str();
            let ev = match event::parse(&record.sns.message) {
                Ok(ev) => ev,
                Err(e) => {
                    // The error's category and place only: its text may quote content.
                    tracing::warn!(
                        sns_message_id = sns_id,
                        category = ?e.classify(),
                        line = e.line(),
                        column = e.column(),
                        "malformed offline event skipped"
                    );
                    metrics::count("PushEventsMalformed", 1);
                    continue;
                }
            };
            let outcome = self.notify(&ev).await;
            tracing::info!(
                sns_message_id = sns_id,
                message_id = %ev.message_id,
                recipient = %ev.recipient_id,
                skipped = outcome.skipped,
                sent = outcome.sent,
                already_sent = outcome.already_sent,
                removed = outcome.removed,
                failed = outcome.failed,
                retry = outcome.retry,
                "offline event handled"
            );
            if outcome.skipped.is_some() {
                metrics::count("PushEventsSkipped", 1);
            }
            metrics::count("PushesSent", outcome.sent as u64);
            metrics::count("PushesAlreadySent", outcome.already_sent as u64);
            metrics::count("PushDevicesRemoved", outcome.removed as u64);
            metrics::count("PushesFailed", outcome.failed as u64);
            metrics::count("PushesRetried", outcome.retry as u64);
            if outcome.retry > 0 {
                retry += 1;
            }
        }
        if retry > 0 {
            return Err(Error::from(format!(
                "{retry} offline event(s) failed temporarily; redelivery will finish them"
            )));
        }
        Ok(())
    }

    /// Send one event's pushes; never fails, the outcome says what to retry.
    pub async fn notify(&self, ev: &OfflineEvent) -> Outcome {
        match self.notify_inner(ev).await {
            Ok(o) => o,
            Err(Retry) => Outcome {
                retry: 1,
                ..Outcome::default()
            },
        }
    }

    async fn notify_inner(&self, ev: &OfflineEvent) -> Result<Outcome, Retry> {
        let skip = |why| {
            Ok(Outcome {
                skipped: Some(why),
                ..Outcome::default()
            })
        };
        if ev.recipient_id == ev.sender_id {
            return skip("recipient is the sender");
        }
        let membership = match store_step(
            "get_membership",
            self.store
                .get_membership(&ev.chat_id, &ev.recipient_id)
                .await,
        )? {
            Some(Some(m)) => m,
            Some(None) => return skip("not a member"),
            None => return skip("store error"),
        };
        if membership.muted {
            return skip("chat muted");
        }
        let now = now_millis();
        let presence = store_step(
            "presence_of",
            self.store
                .presence_of(std::slice::from_ref(&ev.recipient_id), now)
                .await,
        )?;
        let online = presence
            .as_ref()
            .and_then(|p| p.get(&ev.recipient_id))
            .is_some_and(|p| p.presence().online);
        if online {
            return skip("recipient is online");
        }
        let devices = match store_step(
            "list_devices",
            self.store.list_devices(&ev.recipient_id).await,
        )? {
            Some(d) => d,
            None => return skip("store error"),
        };
        let devices: Vec<(Device, String)> = devices
            .into_iter()
            .filter(|d| self.apps.get(d.platform).is_some())
            .filter_map(|d| d.endpoint_arn.clone().map(|arn| (d, arn)))
            .collect();
        if devices.is_empty() {
            return skip("no push-enabled device");
        }
        let badge = self.badge(ev, &membership).await;
        let notification = Notification::for_event(ev, badge);
        let results = futures::future::join_all(
            devices
                .iter()
                .map(|(d, arn)| self.push(ev, &notification, d, arn)),
        )
        .await;
        let mut outcome = Outcome::default();
        for r in results {
            match r {
                DeviceResult::Sent => outcome.sent += 1,
                DeviceResult::AlreadySent => outcome.already_sent += 1,
                DeviceResult::Removed => outcome.removed += 1,
                DeviceResult::Failed => outcome.failed += 1,
                DeviceResult::Retry => outcome.retry += 1,
            }
        }
        Ok(outcome)
    }

    /// The recipient's unread total over their chats that are not muted (the event's
    /// chat counted at least up to the event's position). None (badge left as it is)
    /// when it cannot be computed; the push goes out anyway.
    async fn badge(&self, ev: &OfflineEvent, membership: &Membership) -> Option<u64> {
        let memberships = match self.store.list_user_memberships(&ev.recipient_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "badge: memberships unavailable");
                return None;
            }
        };
        let ids: Vec<_> = memberships
            .iter()
            .filter(|m| !m.muted && m.chat_id != ev.chat_id)
            .map(|m| m.chat_id.clone())
            .collect();
        let chats = match self.store.get_chats(&ids).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "badge: chats unavailable");
                return None;
            }
        };
        let others: u64 = memberships
            .iter()
            .filter(|m| !m.muted && m.chat_id != ev.chat_id)
            .filter_map(|m| {
                chats
                    .get(&m.chat_id)
                    .map(|c| c.last_position.saturating_sub(m.read_position))
            })
            .sum();
        // The event's chat from the strongly consistent membership (the index may lag).
        let this = ev.position.saturating_sub(membership.read_position);
        Some(others + this)
    }

    async fn push(
        &self,
        ev: &OfflineEvent,
        n: &Notification,
        device: &Device,
        endpoint_arn: &str,
    ) -> DeviceResult {
        let key = PushKey {
            message_id: &ev.message_id,
            recipient: &ev.recipient_id,
            device_id: &device.device_id,
        };
        let claimed_at = now_millis();
        match self.store.claim_push(&key, claimed_at).await {
            Ok(PushClaim::Claimed) => {}
            Ok(PushClaim::AlreadySent) => return DeviceResult::AlreadySent,
            // Another delivery of this event is sending it right now; if it fails it
            // releases the claim and has its own redelivery.
            Ok(PushClaim::InFlight) => return DeviceResult::AlreadySent,
            Err(e) if e.is_transient() => {
                tracing::warn!(device = %device.device_id, error = %e, "push claim failed temporarily");
                return DeviceResult::Retry;
            }
            Err(e) => {
                tracing::error!(device = %device.device_id, error = %e, "push claim failed");
                return DeviceResult::Failed;
            }
        }
        let mut publish = self
            .sns
            .publish()
            .target_arn(endpoint_arn)
            .message_structure("json")
            .message(n.sns_message(device.platform));
        for (name, value) in n.message_attributes(device.platform) {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build();
            match attr {
                Ok(a) => publish = publish.message_attributes(name, a),
                Err(e) => tracing::error!(attribute = name, error = %e, "bad message attribute"),
            }
        }
        let result = publish.send().await;
        let outcome = match result {
            Ok(_) => {
                if let Err(e) = self.store.mark_push_sent(&key, now_millis()).await {
                    // The claim stays pending; a redelivery after the lease could repeat
                    // this push, which the per-chat collapse id folds into one banner.
                    tracing::warn!(device = %device.device_id, error = %e, "push sent but not marked");
                }
                return DeviceResult::Sent;
            }
            Err(e) => sns_error::classify(&e),
        };
        match outcome {
            PublishFailure::EndpointGone(code) => {
                tracing::info!(device = %device.device_id, code, "endpoint disabled or gone; removing the device");
                self.remove_device(device, endpoint_arn).await;
                let _ = self.store.mark_push_sent(&key, now_millis()).await;
                DeviceResult::Removed
            }
            PublishFailure::Transient(code) => {
                tracing::warn!(device = %device.device_id, code, "push failed temporarily");
                if let Err(e) = self.store.release_push(&key, claimed_at).await {
                    tracing::warn!(device = %device.device_id, error = %e, "push claim not released; retried after the lease");
                }
                DeviceResult::Retry
            }
            PublishFailure::Permanent(code) => {
                tracing::error!(device = %device.device_id, code, "push rejected");
                let _ = self.store.release_push(&key, claimed_at).await;
                DeviceResult::Failed
            }
        }
    }

    /// Forget a device whose endpoint no longer works: its record, and its endpoint
    /// unless the token was registered again meanwhile (the new registration reuses it).
    async fn remove_device(&self, device: &Device, endpoint_arn: &str) {
        if let Err(e) = self
            .store
            .delete_device(&device.user_id, &device.device_id)
            .await
        {
            tracing::warn!(device = %device.device_id, error = %e, "device record not removed");
            return;
        }
        match self
            .store
            .devices_with_token(device.platform, &device.token)
            .await
        {
            Ok(holders) if holders.is_empty() => {
                if let Err(e) = self
                    .sns
                    .delete_endpoint()
                    .endpoint_arn(endpoint_arn)
                    .send()
                    .await
                {
                    tracing::warn!(device = %device.device_id, error = %sns_error::describe(&e), "endpoint not deleted");
                }
            }
            Ok(_) => {
                tracing::info!(device = %device.device_id, "token re-registered; endpoint kept")
            }
            Err(e) => tracing::warn!(device = %device.device_id, error = %e, "endpoint kept"),
        }
    }
}

enum DeviceResult {
    Sent,
    AlreadySent,
    Removed,
    Failed,
    Retry,
}

/// A store result on the way to a push: transient errors ask for a retry, others
/// are logged and end the event (`Ok(None)`; retrying would not help).
fn store_step<T>(op: &'static str, r: Result<T, StoreError>) -> Result<Option<T>, Retry> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_transient() => {
            chat_core::metrics::store_error(&e);
            tracing::warn!(op, error = %e, "store unavailable; event will be retried");
            Err(Retry)
        }
        Err(e) => {
            chat_core::metrics::store_error(&e);
            tracing::error!(op, error = %e, "store failed; event skipped");
            Ok(None)
        }
    }
}
