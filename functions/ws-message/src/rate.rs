//! The per-connection rate limit, behind one type: [`Counted::count`] counts a frame
//! against its connection's fixed window (one DynamoDB round trip, which also says
//! whose connection it is), [`Counted::verdict`] applies the limits to the parsed
//! action, and [`Counted::open_window`] makes the second write when the frame was the
//! first of a new window. That write runs alongside the frame's work rather than
//! before it, so a `sendMessage` acknowledgement waits on two round trips, not three
//! (`docs/performance.md`, "Work per message").

use chat_core::error::ApiError;
use chat_core::ids::{ConnectionId, UserId};
use chat_core::model::Millis;
use chat_core::protocol::ClientAction;
use chat_core::store::{RateWindow, Store, StoreError, WindowCount, WindowReset};

/// At most this many frames per window per connection...
pub const REQUESTS_PER_WINDOW: u32 = 30;
/// ...of this many milliseconds (fixed windows).
pub const WINDOW_MS: i64 = 10_000;
/// `typing` frames beyond this count in a window are dropped silently (no error), so
/// typing never earns the connection an error and is cheap to shed.
pub const TYPING_PER_WINDOW: u32 = 20;

/// A frame counted against its connection's window.
#[derive(Debug)]
pub struct Counted {
    window: RateWindow,
    /// The write that opens a new window, when this frame is its first.
    opening: Option<WindowReset>,
}

/// What the limit says about one action.
#[derive(Debug)]
pub enum Verdict {
    Allow,
    /// A `typing` frame over its own limit: dropped without an answer.
    DropTyping,
    /// Over the limit: answered with this `rate_limited` error.
    Refuse(ApiError),
}

impl Counted {
    /// Count one frame on `conn` at `now`; `None` when the connection is unknown or
    /// expired.
    pub async fn count(
        store: &Store,
        conn: &ConnectionId,
        now: Millis,
    ) -> Result<Option<Counted>, StoreError> {
        Ok(
            match store
                .count_request_deferring_reset(conn, now / WINDOW_MS, now)
                .await?
            {
                WindowCount::Gone => None,
                WindowCount::Counted(window) => Some(Counted {
                    window,
                    opening: None,
                }),
                WindowCount::NeedsNewWindow(window, reset) => Some(Counted {
                    window,
                    opening: Some(reset),
                }),
            },
        )
    }

    /// Whose connection it is.
    pub fn user(&self) -> &UserId {
        &self.window.connection.user_id
    }

    /// The connection as the count read it (its credential included).
    pub fn connection(&self) -> &chat_core::model::Connection {
        &self.window.connection
    }

    /// The limits applied to `action`.
    pub fn verdict(&self, action: &ClientAction) -> Verdict {
        let count = self.window.count;
        if matches!(action, ClientAction::Typing { .. }) && count > TYPING_PER_WINDOW {
            return Verdict::DropTyping;
        }
        if count > REQUESTS_PER_WINDOW {
            return Verdict::Refuse(ApiError::RateLimited(format!(
                "at most {REQUESTS_PER_WINDOW} frames per {} seconds per connection",
                WINDOW_MS / 1000
            )));
        }
        Verdict::Allow
    }

    /// Open the new window when this frame was its first (nothing otherwise). A
    /// failure is logged: the frame itself was counted.
    pub async fn open_window(&self, store: &Store) {
        let Some(reset) = &self.opening else { return };
        if let Err(e) = store.apply_window_reset(reset).await {
            chat_core::metrics::store_error(&e);
            tracing::error!(error = %e, "opening a rate window failed");
        }
    }
}
