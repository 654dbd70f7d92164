//! Logging: JSON lines through `tracing` (CloudWatch reads them as structured logs),
//! level from `LOG_LEVEL` (default `info`; any `tracing` filter works, e.g.
//! `info,chat_core=debug`), or human-readable lines with `LOG_FORMAT=pretty` for local
//! development. Never log tokens, passwords or message text.

use crate::config::Env;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls are no-ops (several functions may
/// share one process locally).
pub fn init(env: &Env) {
    let filter = EnvFilter::try_new(env.get("LOG_LEVEL").unwrap_or("info"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = if env.get("LOG_FORMAT") == Some("pretty") {
        builder.with_ansi(true).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .try_init()
    };
    let _ = result;
}
