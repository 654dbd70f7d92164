//! Logging: JSON lines through `tracing` (CloudWatch reads them as structured logs),
//! level from `LOG_LEVEL` (default `info`; any `tracing` filter works, e.g.
//! `info,chat_core=debug`, or `info,aws_sdk_dynamodb=debug` to see every DynamoDB
//! call as a span), or human-readable lines with `LOG_FORMAT=pretty` for local
//! development. Never log tokens, passwords or message text.
//!
//! Every invocation runs inside one `invocation` span (opened by
//! [`crate::function`]) with the fields `request_id`, `function`, `route`, `trace_id`
//! (X-Ray, when active), and the fields handlers fill in as they learn them:
//! `action` (WebSocket frames), `user_id`, `chat_id` ([`record_user`],
//! [`record_chat`], [`record_action`]). JSON lines carry the span's fields
//! (`span.*`), so every line of a request can be found by `span.request_id`. The
//! invocation ends with one `invocation done` line with `outcome` and `duration_ms`.
//!
//! The AWS SDK opens a `debug` span per operation (`DynamoDB.TransactWriteItems`,
//! `SNS.PublishBatch`, `ApiGatewayManagement.PostToConnection`, with `rpc.service`
//! and `rpc.method`); with the filter at `debug` for `aws_sdk_*` each one logs a
//! closing line with its duration, under the invocation span. X-Ray's own view of the SDK calls comes from
//! Lambda active tracing (see `docs/operations.md`, "Traces").

use crate::config::Env;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls are no-ops (several functions may
/// share one process locally).
pub fn init(env: &Env) {
    init_with_writer(env, std::io::stdout);
}

/// [`init`] writing somewhere else than stdout (tests capture the lines).
pub fn init_with_writer<W>(env: &Env, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let level = env.get("LOG_LEVEL").unwrap_or("info");
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // At debug (e.g. `info,aws_sdk_dynamodb=debug`) the SDK's per-operation spans are
    // enabled: print a line when each span closes (its name, e.g. `DynamoDB.PutItem`,
    // and `time.busy`), and every line lists all its spans so the invocation's fields
    // stay on lines inside an SDK call.
    let span_detail = level.contains("debug") || level.contains("trace");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_span_events(if span_detail {
            tracing_subscriber::fmt::format::FmtSpan::CLOSE
        } else {
            tracing_subscriber::fmt::format::FmtSpan::NONE
        });
    let result = if is_pretty(env) {
        builder.with_ansi(true).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(span_detail)
            .without_time()
            .try_init()
    };
    let _ = result;
}

/// Whether `LOG_FORMAT=pretty` (human-readable lines, for local runs).
pub fn is_pretty(env: &Env) -> bool {
    env.get("LOG_FORMAT") == Some("pretty")
}

/// Record the user this request is for on the invocation span (`user_id`).
pub fn record_user(user: &crate::ids::UserId) {
    tracing::Span::current().record("user_id", tracing::field::display(user));
}

/// Record the chat this request is about on the invocation span (`chat_id`).
pub fn record_chat(chat: &crate::ids::ChatId) {
    tracing::Span::current().record("chat_id", tracing::field::display(chat));
}

/// Record the WebSocket action of the frame on the invocation span (`action`).
pub fn record_action(action: &str) {
    tracing::Span::current().record("action", action);
}

tokio::task_local! {
    static STATUS: Arc<AtomicU16>;
}

/// Run `fut` with a fresh per-invocation status note; returns the worst status noted
/// ([`note_status`]) alongside the output (0 when none).
pub(crate) async fn with_status_note<F: std::future::Future>(fut: F) -> (F::Output, u16) {
    let cell = Arc::new(AtomicU16::new(0));
    let out = STATUS.scope(cell.clone(), fut).await;
    (out, cell.load(Ordering::Relaxed))
}

/// Note that the request failed with `status` although the function's response may
/// say 200 (WebSocket frames answer errors as events). The completion line's
/// `outcome` takes the worst status noted. No-op outside an invocation.
pub fn note_status(status: u16) {
    let _ = STATUS.try_with(|s| {
        s.fetch_max(status, Ordering::Relaxed);
    });
}

/// `ok` below 400, `client_error` for 4xx, `server_error` for 5xx.
pub fn outcome(status: u16) -> &'static str {
    match status {
        500.. => "server_error",
        400..=499 => "client_error",
        _ => "ok",
    }
}
