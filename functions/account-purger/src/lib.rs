//! `account-purger`: purges deleted accounts, subscribed to `AccountPurgeTopic`. Each
//! job (`{"kind": "accountPurge", "userId": ...}`) runs [`Lifecycle::purge`] until the
//! account is purged or the invocation's budget (its remaining time less
//! [`SAFETY_MARGIN`], and `PURGE_BATCH_MESSAGES` messages) is spent; then it publishes
//! the same job again to go on in a fresh invocation. Progress lives on the Users
//! item, so a redelivered, retried or duplicated job repeats at most one step. A
//! failed step fails the invocation so that Lambda retries it (then the dead-letter
//! queue). Policy: docs/security.md, "Retention and deletion".

use aws_lambda_events::sns::SnsEvent;
use chat_core::config::Env;
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::lifecycle::{Lifecycle, PurgeJob, PurgeOutcome};
use lambda_runtime::{Context, Error};
use std::time::Duration;
use tokio::time::Instant;

/// Time left unused at the end of an invocation (saving progress, publishing the
/// continuation).
pub const SAFETY_MARGIN: Duration = Duration::from_secs(20);
/// Budget when the context has no deadline (in-process callers).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    let init = async move { Ok(Lifecycle::from_env(&env).await?) };
    function::with_state(
        init,
        |lifecycle, event: SnsEvent, ctx: Context| async move {
            handle(&lifecycle, event, budget(&ctx)).await
        },
    )
}

/// How long this invocation may work: until its deadline less the margin.
pub fn budget(ctx: &Context) -> Instant {
    let now_ms = chat_core::model::now_millis() as u64;
    let left = if ctx.deadline > now_ms {
        Duration::from_millis(ctx.deadline - now_ms).saturating_sub(SAFETY_MARGIN)
    } else {
        DEFAULT_BUDGET
    };
    Instant::now() + left.max(Duration::from_secs(1))
}

/// Handle one SNS delivery (normally one record). A record that is not a purge job is
/// logged and dropped (retrying cannot fix it).
pub async fn handle(
    lifecycle: &Lifecycle,
    event: SnsEvent,
    deadline: Instant,
) -> Result<serde_json::Value, Error> {
    let mut outcomes = Vec::new();
    for record in event.records {
        let job: PurgeJob = match serde_json::from_str(&record.sns.message) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, message_id = %record.sns.message_id, "not a purge job; dropped");
                continue;
            }
        };
        if job.kind != PurgeJob::KIND {
            tracing::error!(kind = %job.kind, "unknown job kind; dropped");
            continue;
        }
        let outcome = run(lifecycle, &job, deadline).await?;
        outcomes.push(format!("{outcome:?}"));
    }
    Ok(serde_json::json!({ "outcomes": outcomes }))
}

/// One job: purge, and publish the continuation when the budget ran out.
pub async fn run(
    lifecycle: &Lifecycle,
    job: &PurgeJob,
    deadline: Instant,
) -> Result<PurgeOutcome, Error> {
    let outcome = lifecycle.purge(&job.user_id, deadline).await.map_err(|e| {
        e.log();
        Error::from(format!("purge of {} failed: {e}", job.user_id))
    })?;
    match outcome {
        PurgeOutcome::Continue(phase) => {
            tracing::info!(user = %job.user_id, phase = phase.as_str(), "purge continues in a new invocation");
            lifecycle
                .publish_job(&job.user_id)
                .await
                .map_err(|e| Error::from(format!("continuation not published: {e}")))?;
        }
        PurgeOutcome::Done => tracing::info!(user = %job.user_id, "account purged"),
        PurgeOutcome::NotDeleted | PurgeOutcome::Missing => {}
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_the_safety_margin() {
        let mut ctx = Context::default();
        ctx.deadline = chat_core::model::now_millis() as u64 + 300_000;
        let left = budget(&ctx) - Instant::now();
        assert!(left <= Duration::from_secs(280) && left > Duration::from_secs(270));
        ctx.deadline = 0;
        let left = budget(&ctx) - Instant::now();
        assert!(left <= DEFAULT_BUDGET && left > DEFAULT_BUDGET - Duration::from_secs(5));
    }
}
