//! The remote mode: the same end-to-end tests against a stack that is already running
//! somewhere (a deployed `chat-dev`, or `chat-local up` started separately), reached
//! only through its public APIs. Set `CHAT_HTTP_URL` (the HTTP API's stage URL) and
//! `CHAT_WS_URL` (the WebSocket API's stage URL), as `./dev test --remote` does; then
//! [`crate::TestStack::start`] hands out that stack instead of provisioning one.
//!
//! A test that reads tables, the emulators' records, the gateway's internals or starts
//! a stack with options begins with [`needs_backend!`](crate::needs_backend): in the
//! remote mode it returns at once and counts as skipped; the binary prints each skip
//! and, at exit, "N skipped: need backend access". Without the mark such a test fails
//! in the remote mode with a message that says to add it.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The two URLs of a remote stack.
#[derive(Debug, Clone)]
pub struct RemoteStack {
    pub http_url: String,
    pub ws_url: String,
}

/// The remote stack from `CHAT_HTTP_URL` and `CHAT_WS_URL`, or `None` (the local mode).
/// Panics when only one of the two is set or a URL has the wrong scheme.
pub fn remote() -> Option<&'static RemoteStack> {
    static REMOTE: OnceLock<Option<RemoteStack>> = OnceLock::new();
    REMOTE
        .get_or_init(|| {
            let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
            match (get("CHAT_HTTP_URL"), get("CHAT_WS_URL")) {
                (None, None) => None,
                (Some(http), Some(ws)) => match check(&http, &ws) {
                    Ok(()) => Some(RemoteStack {
                        http_url: http.trim_end_matches('/').to_owned(),
                        ws_url: ws.trim_end_matches('/').to_owned(),
                    }),
                    Err(e) => panic!("{e}"),
                },
                _ => panic!("set both CHAT_HTTP_URL and CHAT_WS_URL (the remote mode) or neither"),
            }
        })
        .as_ref()
}

/// The URLs' schemes: http(s) for the HTTP API, ws(s) for the WebSocket API.
pub fn check(http_url: &str, ws_url: &str) -> Result<(), String> {
    if !(http_url.starts_with("http://") || http_url.starts_with("https://")) {
        return Err(format!(
            "CHAT_HTTP_URL must start with http:// or https://, got {http_url:?}"
        ));
    }
    if !(ws_url.starts_with("ws://") || ws_url.starts_with("wss://")) {
        return Err(format!(
            "CHAT_WS_URL must start with ws:// or wss://, got {ws_url:?}"
        ));
    }
    Ok(())
}

/// Whether the tests run against a remote stack.
pub fn is_remote() -> bool {
    remote().is_some()
}

static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// The test on this thread needs the backend (tables, emulators, the gateway's
/// internals): in the remote mode, count and print it as skipped and return `true`
/// (the caller returns). Use [`needs_backend!`](crate::needs_backend).
pub fn skip_without_backend() -> bool {
    if !is_remote() {
        return false;
    }
    let n = SKIPPED.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        report_at_exit();
    }
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    // Straight to stderr: libtest captures the print macros of passing tests.
    let _ = writeln!(std::io::stderr(), "skipped (needs backend access): {name}");
    true
}

/// How many tests skipped themselves so far.
pub fn skipped() -> usize {
    SKIPPED.load(Ordering::SeqCst)
}

extern "C" {
    fn atexit(f: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn print_skipped() {
    let _ = writeln!(
        std::io::stderr(),
        "{} skipped: need backend access",
        skipped()
    );
}

fn report_at_exit() {
    // SAFETY: registers a plain function without captured state; it only writes to
    // stderr, which stays usable while the process exits.
    unsafe {
        atexit(print_skipped);
    }
}

/// First line of a test that needs the backend: returns from the test in the remote
/// mode (counted as skipped, see [`crate::remote`]).
#[macro_export]
macro_rules! needs_backend {
    () => {
        if $crate::remote::skip_without_backend() {
            return;
        }
    };
}
