//! Getting events to people: posting frames to WebSocket connections through API
//! Gateway's `@connections` API ([`Poster`]), and publishing offline events to the
//! offline topic for the push notifier ([`OfflinePublisher`]).
//!
//! Posting is concurrent (at most [`Poster::concurrency`] posts in flight). A post
//! answered 410 Gone means the connection died without `$disconnect` (or is still in
//! its `$connect`): the connection is forgotten unless it opened moments ago
//! (`Store::forget_gone_connection`), and counts as not delivered. Other
//! failures (throttling, 5xx, time-outs) are retried with backoff, at most
//! [`Poster::max_attempts`] tries (these are the only retries: the management API
//! client is built without SDK retries, see `aws::management`). Frames over 128 KB are never posted (callers send a
//! `messageRef` instead, see `protocol::ServerEvent::for_message`).

use crate::ids::{ConnectionId, SessionId, UserId};
use crate::model::now_millis;
use crate::protocol::{OfflineMessageEvent, MAX_FRAME_BYTES};
use crate::store::Store;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_sns::types::PublishBatchRequestEntry;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A connection to post to, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub user: UserId,
    pub connection: ConnectionId,
}

/// What happened to one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410: the connection is gone and was forgotten.
    Gone,
    /// Retries exhausted, or a non-retryable error, or the frame was too large.
    Failed,
}

/// Posts to one user's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserDelivery {
    pub attempted: u32,
    pub delivered: u32,
    pub gone: u32,
    pub failed: u32,
}

/// The outcome of posting one frame to many connections.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    pub per_user: HashMap<UserId, UserDelivery>,
}

impl DeliveryReport {
    fn record(&mut self, user: &UserId, outcome: PostOutcome) {
        let d = self.per_user.entry(user.clone()).or_default();
        d.attempted += 1;
        match outcome {
            PostOutcome::Delivered => d.delivered += 1,
            PostOutcome::Gone => d.gone += 1,
            PostOutcome::Failed => d.failed += 1,
        }
    }

    /// Whether at least one connection of `user` accepted the frame.
    pub fn reached(&self, user: &UserId) -> bool {
        self.per_user.get(user).is_some_and(|d| d.delivered > 0)
    }

    pub fn totals(&self) -> UserDelivery {
        self.per_user
            .values()
            .fold(UserDelivery::default(), |mut t, d| {
                t.attempted += d.attempted;
                t.delivered += d.delivered;
                t.gone += d.gone;
                t.failed += d.failed;
                t
            })
    }
}

/// Closing a user's connections ([`Poster::close_connections`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closed {
    pub closed: usize,
    /// Already gone (410): forgotten.
    pub gone: usize,
    /// Listing or closing failed otherwise (or a gone one could not be forgotten).
    pub failed: usize,
}

/// Posts frames to connections (the `@connections` API of this stack's WebSocket stage).
#[derive(Debug, Clone)]
pub struct Poster {
    client: aws_sdk_apigatewaymanagement::Client,
    store: Store,
    /// Posts in flight at once.
    pub concurrency: usize,
    /// Tries per post, the first included.
    pub max_attempts: u32,
}

impl Poster {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client, store: Store) -> Self {
        Poster {
            client,
            store,
            concurrency: 32,
            max_attempts: 3,
        }
    }

    /// Close every WebSocket connection of `user` (log out everywhere, password
    /// change, account deletion). The connections are found through the Connections
    /// `byUser` index (which also holds one whose `$connect` raced the token-version
    /// bump) and the presence record; each is marked revoked (its next frame is refused
    /// even if closing fails) and closed. Best effort, never fails as a whole: what
    /// failed is counted in [`Closed::failed`]. Every connection closed or already gone
    /// (410) is forgotten at once (`$disconnect` forgets a closed one too, but may be
    /// slow or lost).
    pub async fn close_connections(&self, user: &UserId) -> Closed {
        self.close_matching(user, None).await
    }

    /// Close the connections `user` opened with tokens of `session` (logout of one
    /// session), as [`Self::close_connections`] does.
    pub async fn close_session_connections(&self, user: &UserId, session: &SessionId) -> Closed {
        self.close_matching(user, Some(session)).await
    }

    async fn close_matching(&self, user: &UserId, session: Option<&SessionId>) -> Closed {
        let now = now_millis();
        let mut out = Closed::default();
        let mut conns: Vec<ConnectionId> = match self.store.connections_by_user(user).await {
            Ok(list) => list
                .into_iter()
                .filter(|(_, sid)| session.is_none() || sid.as_ref() == session)
                .map(|(id, _)| id)
                .collect(),
            Err(e) => {
                crate::metrics::store_error(&e);
                tracing::error!(error = %e, user = %user, "could not list connections to close");
                out.failed += 1;
                Vec::new()
            }
        };
        if session.is_none() {
            match self
                .store
                .presence_of(std::slice::from_ref(user), now)
                .await
            {
                Ok(mut p) => {
                    conns.extend(p.remove(user).map(|p| p.connections).unwrap_or_default())
                }
                Err(e) => {
                    crate::metrics::store_error(&e);
                    tracing::error!(error = %e, user = %user, "could not read presence to close connections");
                    out.failed += 1;
                }
            }
        }
        conns.sort();
        conns.dedup();
        for id in conns {
            if let Err(e) = self.store.revoke_connection(&id).await {
                tracing::warn!(error = %e, connection = %id, "could not mark a connection revoked");
            }
            match self
                .client
                .delete_connection()
                .connection_id(id.as_str())
                .send()
                .await
            {
                Ok(_) => {
                    out.closed += 1;
                    if let Err(e) = self.store.forget_stale_connection(user, &id, now).await {
                        tracing::warn!(error = %e, connection = %id, "could not forget a closed connection");
                    }
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_gone_exception()) => {
                    out.gone += 1;
                    if let Err(e) = self.store.forget_stale_connection(user, &id, now).await {
                        tracing::warn!(error = %e, connection = %id, "could not forget a stale connection");
                        out.failed += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e), connection = %id, "could not close a connection");
                    out.failed += 1;
                }
            }
        }
        out
    }

    /// Close one connection (its token expired or was revoked); a connection already
    /// gone is not an error. `$disconnect` then forgets it.
    pub async fn end_connection(&self, id: &ConnectionId) {
        if let Err(e) = self
            .client
            .delete_connection()
            .connection_id(id.as_str())
            .send()
            .await
        {
            if !e.as_service_error().is_some_and(|e| e.is_gone_exception()) {
                tracing::warn!(error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&e), connection = %id, "could not close a connection");
            }
        }
    }

    /// Post `frame` to every target, concurrently. Never fails as a whole: each post's
    /// outcome is in the report.
    pub async fn post_all(&self, targets: &[Target], frame: &str) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        // Owned values in the futures: borrowed ones trip the compiler's Send check of
        // the Lambda future (higher-ranked lifetimes through `buffer_unordered`).
        let frame: Arc<str> = Arc::from(frame);
        let this = self.clone();
        let outcomes: Vec<(UserId, PostOutcome)> = stream::iter(targets.to_vec())
            .map(move |t| {
                let this = this.clone();
                let frame = frame.clone();
                async move {
                    let outcome = this.post(&t, &frame).await;
                    (t.user, outcome)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (user, outcome) in outcomes {
            report.record(&user, outcome);
        }
        report
    }

    /// Post `frame` to one connection, with the 410 and retry rules of the module doc.
    /// Counts `DeliveriesAttempted` and one of `DeliveriesSucceeded`,
    /// `DeliveriesGone`, `DeliveriesFailed` per call (not per retry).
    pub async fn post(&self, target: &Target, frame: &str) -> PostOutcome {
        self.post_counted(&target.connection, Some(&target.user), frame)
            .await
    }

    /// [`Self::post`] to a connection whose owner is not known (e.g. the store that
    /// would say was unreachable): a 410 then leaves the connection's record to its TTL
    /// or to the next post that knows the owner.
    pub async fn post_to_connection(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        self.post_counted(connection, None, frame).await
    }

    async fn post_counted(
        &self,
        connection: &ConnectionId,
        user: Option<&UserId>,
        frame: &str,
    ) -> PostOutcome {
        crate::metrics::count("DeliveriesAttempted", 1);
        let outcome = self.post_once(connection, user, frame).await;
        crate::metrics::count(
            match outcome {
                PostOutcome::Delivered => "DeliveriesSucceeded",
                PostOutcome::Gone => "DeliveriesGone",
                PostOutcome::Failed => "DeliveriesFailed",
            },
            1,
        );
        outcome
    }

    async fn post_once(
        &self,
        connection: &ConnectionId,
        user: Option<&UserId>,
        frame: &str,
    ) -> PostOutcome {
        if frame.len() > MAX_FRAME_BYTES {
            tracing::error!(
                bytes = frame.len(),
                "frame over 128 KB not posted (a messageRef should have been sent)"
            );
            return PostOutcome::Failed;
        }
        let data = Blob::new(frame.as_bytes().to_vec());
        for attempt in 1..=self.max_attempts.max(1) {
            let res = self
                .client
                .post_to_connection()
                .connection_id(connection.as_str())
                .data(data.clone())
                .send()
                .await;
            let err = match res {
                Ok(_) => return PostOutcome::Delivered,
                Err(e) => e,
            };
            let service = err.as_service_error();
            if matches!(service, Some(PostToConnectionError::GoneException(_)))
                || err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 410)
            {
                if let Some(user) = user {
                    match self
                        .store
                        .forget_gone_connection(user, connection, now_millis())
                        .await
                    {
                        Ok(Some(_)) => {
                            tracing::info!(connection = %connection, "connection gone (410); forgotten")
                        }
                        Ok(None) => {
                            tracing::info!(connection = %connection, "connection gone (410) while connecting; kept")
                        }
                        Err(e) => {
                            crate::metrics::store_error(&e);
                            tracing::warn!(error = %e, "could not forget a gone connection (its TTL will)");
                        }
                    }
                }
                return PostOutcome::Gone;
            }
            let retryable = !matches!(
                service,
                Some(PostToConnectionError::ForbiddenException(_))
                    | Some(PostToConnectionError::PayloadTooLargeException(_))
            );
            if !retryable || attempt == self.max_attempts.max(1) {
                tracing::warn!(
                    connection = %connection,
                    attempt,
                    error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err),
                    "post to connection failed"
                );
                return PostOutcome::Failed;
            }
            tokio::time::sleep(retry_delay(attempt)).await;
        }
        PostOutcome::Failed
    }
}

/// 50 ms, 100 ms, 200 ms, ... plus up to 50% jitter.
fn retry_delay(attempt: u32) -> Duration {
    use rand::Rng;
    let base = 50u64 << attempt.saturating_sub(1).min(5);
    Duration::from_millis(base + rand::thread_rng().gen_range(0..=base / 2))
}

/// Publishing offline events failed for some recipients (after one retry).
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} offline events were not published: {reason}")]
pub struct PublishError {
    pub failed: usize,
    pub total: usize,
    pub reason: String,
    /// Who was not notified.
    pub recipients: Vec<UserId>,
}

/// A batch and what SNS said: the indexes it refused, or why the call failed.
type ChunkResult = (Vec<OfflineMessageEvent>, Result<Vec<usize>, String>);

/// Publishes [`OfflineMessageEvent`]s to the offline topic (`OFFLINE_TOPIC_ARN`).
#[derive(Debug, Clone)]
pub struct OfflinePublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl OfflinePublisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        OfflinePublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publish one SNS message per event (`PublishBatch`, 10 a call, calls concurrent).
    /// Entries SNS refuses are retried once; what still fails is returned as an error
    /// naming the recipients. Each message has the attributes `kind`, `recipientId`
    /// and `chatId` (String) for subscription filters.
    pub async fn publish(&self, events: &[OfflineMessageEvent]) -> Result<usize, PublishError> {
        let total = events.len();
        let mut pending: Vec<OfflineMessageEvent> = events.to_vec();
        let mut reason = String::new();
        for round in 0..2 {
            if pending.is_empty() {
                break;
            }
            let chunks: Vec<Vec<OfflineMessageEvent>> =
                pending.chunks(10).map(|c| c.to_vec()).collect();
            let this = self.clone();
            let results: Vec<ChunkResult> = stream::iter(chunks)
                .map(move |chunk| {
                    let this = this.clone();
                    async move {
                        let r = this.publish_chunk(&chunk).await;
                        (chunk, r)
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
            pending = Vec::new();
            for (chunk, r) in results {
                match r {
                    Ok(failed_idx) => {
                        pending.extend(failed_idx.into_iter().filter_map(|i| chunk.get(i).cloned()))
                    }
                    Err(e) => {
                        reason = e;
                        pending.extend(chunk);
                    }
                }
            }
            if !pending.is_empty() && round == 0 {
                tokio::time::sleep(retry_delay(1)).await;
            }
        }
        if pending.is_empty() {
            Ok(total)
        } else {
            if reason.is_empty() {
                reason = "entries refused by SNS".into();
            }
            Err(PublishError {
                failed: pending.len(),
                total,
                reason,
                recipients: pending.iter().map(|e| e.recipient_id.clone()).collect(),
            })
        }
    }

    /// One PublishBatch call; Ok with the indexes SNS refused.
    async fn publish_chunk(&self, chunk: &[OfflineMessageEvent]) -> Result<Vec<usize>, String> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())
        };
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, ev) in chunk.iter().enumerate() {
            let body = serde_json::to_string(ev).map_err(|e| e.to_string())?;
            let entry = PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(body)
                .message_attributes("kind", attr(OfflineMessageEvent::KIND)?)
                .message_attributes("recipientId", attr(ev.recipient_id.as_str())?)
                .message_attributes("chatId", attr(ev.chat_id.as_str())?)
                .build()
                .map_err(|e| e.to_string())?;
            entries.push(entry);
        }
        let out = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(&e).to_string())?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .collect())
    }
}
