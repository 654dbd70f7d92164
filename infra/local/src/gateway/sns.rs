//! SNS -> Lambda: for each function the template subscribes to a topic, the gateway
//! subscribes an SQS queue (in moto) to that topic and long-polls it; each message is
//! turned into the SNS event Lambda would receive (`Records[].Sns`, `EventSource`
//! `aws:sns`) and the function is invoked with it. A failing invocation is retried as
//! Lambda retries asynchronous invocations (1 + 2 attempts by default, with backoff),
//! then logged and dropped (no DLQ emulation).

use super::events;
use super::functions::Invoker;
use super::SnsOptions;
use crate::template::FunctionDef;
use anyhow::{anyhow, Context, Result};
use chat_core::config::Env;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The running deliveries.
pub struct Bridge {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
                tasks.push(tokio::spawn(poll(
                    sqs.clone(),
                    queue_url,
                    sub_arn,
                    def.logical_id.clone(),
                    topic.clone(),
                    invoker.clone(),
                    opts.clone(),
                    stop_rx.clone(),
                )));
            }
        }
        Ok(Bridge { stop, tasks })
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

#[allow(clippy::too_many_arguments)]
async fn poll(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    sub_arn: String,
    function: String,
    topic: String,
    invoker: Arc<dyn Invoker>,
    opts: SnsOptions,
    mut stop: watch::Receiver<bool>,
) {
    let route = format!("sns:{topic}");
    loop {
        let received = tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            r = sqs.receive_message().queue_url(&queue_url).wait_time_seconds(20).max_number_of_messages(10).send() => r,
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
