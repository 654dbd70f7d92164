//! SNS -> Lambda: for each function the template subscribes to a topic, the gateway
//! subscribes an SQS queue (in moto) to that topic and long-polls it; each message is
//! turned into the SNS event Lambda would receive (`Records[].Sns`, `EventSource`
//! `aws:sns`) and the function is invoked with it. A failing invocation is retried as
//! Lambda retries asynchronous invocations (1 + 2 attempts by default, with backoff),
//! then logged and dropped (no DLQ emulation).
//!
//! Recursive-loop detection, as Lambda does it: a function that publishes to the topic
//! that triggers it forms a loop, and Lambda stops such a chain after
//! [`MAX_LOOP_HOPS`] invocations unless the function sets `RecursiveLoop: Allow`.
//! Lambda follows the chain through X-Ray trace headers; the bridge instead counts a
//! message sent (moto's `SentTimestamp`) while an invocation of the same function from
//! the same topic was running as that invocation's child, one hop deeper. That is exact
//! for one chain at a time and can over-count when unrelated publishes overlap, so it
//! applies only to functions whose policies allow `sns:Publish` to their own trigger
//! topic (the account purger). [`Bridge::loop_drops`] counts the messages it stopped.

use super::events;
use super::functions::Invoker;
use super::SnsOptions;
use crate::template::FunctionDef;
use anyhow::{anyhow, Context, Result};
use chat_core::config::Env;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Invocations after which Lambda's recursive-loop detection stops a chain.
pub const MAX_LOOP_HOPS: u32 = 16;

/// The running deliveries.
pub struct Bridge {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    loop_drops: Arc<AtomicU64>,
}

/// One invocation of a self-triggering function: when it ran and how deep in its chain.
#[derive(Debug, Clone, Copy)]
struct Run {
    start_ms: u64,
    end_ms: Option<u64>,
    depth: u32,
}

/// The recent invocations of one function from one topic, for loop detection.
#[derive(Debug, Default)]
struct Lineage {
    runs: Vec<Run>,
}

impl Lineage {
    /// The chain depth of a message sent at `sent_ms`: one more than the deepest
    /// invocation running then, 1 for a message sent outside any invocation.
    fn depth_of(&self, sent_ms: u64) -> u32 {
        self.runs
            .iter()
            .filter(|r| r.start_ms <= sent_ms && r.end_ms.is_none_or(|e| sent_ms <= e))
            .map(|r| r.depth + 1)
            .max()
            .unwrap_or(1)
    }

    fn start(&mut self, depth: u32) -> usize {
        // A chain's messages arrive within seconds of their parent: keep a bounded tail.
        if self.runs.len() >= 1024 {
            self.runs.drain(..512);
        }
        self.runs.push(Run {
            start_ms: now_ms(),
            end_ms: None,
            depth,
        });
        self.runs.len() - 1
    }

    fn end(&mut self, i: usize) {
        if let Some(r) = self.runs.get_mut(i) {
            r.end_ms = Some(now_ms());
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An SDK configuration for moto (test credentials, no attempt timeout shorter than a
/// long poll).
pub async fn moto_sdk(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    let mut env = Env::default();
    env.set("AWS_ACCESS_KEY_ID", "test");
    env.set("AWS_SECRET_ACCESS_KEY", "test");
    env.set("AWS_REGION", region);
    env.set("AWS_ENDPOINT_URL", endpoint);
    let sdk = chat_core::aws::sdk_config(&env).await;
    sdk.into_builder()
        .endpoint_url(endpoint)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build()
}

impl Bridge {
    pub async fn start(
        opts: SnsOptions,
        defs: &BTreeMap<String, FunctionDef>,
        invoker: Arc<dyn Invoker>,
    ) -> Result<Bridge> {
        let sdk = moto_sdk(&opts.endpoint, &opts.region).await;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let loop_drops = Arc::new(AtomicU64::new(0));
        for def in defs.values() {
            for topic in &def.sns_topics {
                let topic_arn = opts.topics.get(topic).ok_or_else(|| {
                    anyhow!(
                        "function {} is subscribed to {topic}, but the gateway was given no ARN for it",
                        def.logical_id
                    )
                })?;
                let queue_name = format!("{}-{}-{}-sns", opts.queue_prefix, def.logical_id, topic);
                let queue_url = sqs
                    .create_queue()
                    .queue_name(&queue_name)
                    .send()
                    .await
                    .with_context(|| format!("creating delivery queue {queue_name} in moto"))?
                    .queue_url
                    .ok_or_else(|| anyhow!("moto returned no queue URL"))?;
                let queue_arn = sqs
                    .get_queue_attributes()
                    .queue_url(&queue_url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .send()
                    .await?
                    .attributes
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                            .cloned()
                    })
                    .ok_or_else(|| anyhow!("moto returned no queue ARN"))?;
                let sub = sns
                    .subscribe()
                    .topic_arn(topic_arn)
                    .protocol("sqs")
                    .endpoint(&queue_arn)
                    .send()
                    .await
                    .with_context(|| format!("subscribing {queue_name} to {topic_arn}"))?;
                let sub_arn = sub.subscription_arn.unwrap_or_default();
                tracing::info!(function = %def.logical_id, topic = %topic_arn, "SNS subscription delivering through {queue_name}");
                // Loop detection for functions that may publish to their own trigger.
                let loop_limit = (def.publishes_to.contains(topic) && !def.recursive_loop_allowed)
                    .then_some(MAX_LOOP_HOPS);
                tasks.push(tokio::spawn(poll(
                    sqs.clone(),
                    queue_url,
                    sub_arn,
                    Delivery {
                        function: def.logical_id.clone(),
                        topic: topic.clone(),
                        tracks_loops: def.publishes_to.contains(topic),
                        loop_limit,
                        loop_drops: loop_drops.clone(),
                    },
                    invoker.clone(),
                    opts.clone(),
                    stop_rx.clone(),
                )));
            }
        }
        Ok(Bridge {
            stop,
            tasks,
            loop_drops,
        })
    }

    /// Messages dropped so far because a function -> topic -> function chain went past
    /// [`MAX_LOOP_HOPS`] without `RecursiveLoop: Allow` (what Lambda would stop).
    pub fn loop_drops(&self) -> u64 {
        self.loop_drops.load(Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    pub fn abort(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What one delivery task delivers, and its loop detection.
struct Delivery {
    function: String,
    topic: String,
    /// The function may publish to this topic: follow chain depths.
    tracks_loops: bool,
    /// Drop messages deeper than this (None: `RecursiveLoop: Allow`).
    loop_limit: Option<u32>,
    loop_drops: Arc<AtomicU64>,
}

async fn poll(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    sub_arn: String,
    delivery: Delivery,
    invoker: Arc<dyn Invoker>,
    opts: SnsOptions,
    mut stop: watch::Receiver<bool>,
) {
    let Delivery {
        function,
        topic,
        tracks_loops,
        loop_limit,
        loop_drops,
    } = delivery;
    let route = format!("sns:{topic}");
    let mut lineage = Lineage::default();
    loop {
        let received = tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            r = sqs.receive_message().queue_url(&queue_url).wait_time_seconds(20).max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp).send() => r,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%function, "polling the SNS delivery queue failed: {e}");
                // Back off before polling again (moto restarting, network hiccup).
                tokio::select! {
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        for m in messages {
            let body = m.body.as_deref().unwrap_or_default();
            match events::sns_from_envelope(body) {
                Err(e) => tracing::warn!(%function, "unreadable SNS notification: {e}"),
                Ok(n) => {
                    let sent_ms = m
                        .attributes
                        .as_ref()
                        .and_then(|a| {
                            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
                        })
                        .and_then(|t| t.parse::<u64>().ok())
                        .unwrap_or_else(now_ms);
                    let depth = if tracks_loops {
                        lineage.depth_of(sent_ms)
                    } else {
                        1
                    };
                    if loop_limit.is_some_and(|limit| depth > limit) {
                        loop_drops.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%function, message_id = %n.message_id, depth,
                            "recursive loop detected: {function} -> {topic} -> {function} went past {MAX_LOOP_HOPS} invocations; message dropped as Lambda would without RecursiveLoop: Allow");
                        if let Some(r) = m.receipt_handle {
                            let _ = sqs
                                .delete_message()
                                .queue_url(&queue_url)
                                .receipt_handle(r)
                                .send()
                                .await;
                        }
                        continue;
                    }
                    let run = tracks_loops.then(|| lineage.start(depth));
                    let event = events::sns_event(&n, &sub_arn);
                    for attempt in 1..=opts.attempts.max(1) {
                        match invoker.invoke(&function, &route, event.clone()).await {
                            Ok(_) => break,
                            Err(e) if attempt < opts.attempts => {
                                tracing::warn!(%function, message_id = %n.message_id, attempt, "SNS delivery failed, retrying: {e}");
                                tokio::time::sleep(opts.retry_backoff * attempt).await;
                            }
                            Err(e) => {
                                tracing::error!(%function, message_id = %n.message_id, "SNS delivery failed after {attempt} attempts, dropped: {e}")
                            }
                        }
                    }
                    if let Some(i) = run {
                        lineage.end(i);
                    }
                }
            }
            if let Some(r) = m.receipt_handle {
                let _ = sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(r)
                    .send()
                    .await;
            }
        }
    }
}
