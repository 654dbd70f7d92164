//! A record of the management API (`@connections`) calls the functions make, for
//! benchmarks that count the work per operation (`chat-bench work`): off by default,
//! switched on with [`ManagementCalls::record`], read with [`ManagementCalls::take`].
//! Like the AWS proxy's [`crate::proxy::Call`], each call keeps its start and end so
//! calls can be placed on one timeline with the DynamoDB calls, and the fault rule it
//! got (the fault tests count posts and retries per connection with it).

use super::faults::FaultAction;
use std::sync::Mutex;
use std::time::Instant;

/// One `@connections` request that reached the gateway.
#[derive(Debug, Clone)]
pub struct ManagementCall {
    /// `POST`, `GET` or `DELETE`.
    pub method: String,
    pub connection_id: String,
    pub started: Instant,
    pub finished: Instant,
    /// The HTTP status answered (200, 204, 410, ...).
    pub status: u16,
    /// Bytes of data posted (`POST`; 0 otherwise).
    pub request_bytes: usize,
    /// The injected fault it got, if any ([`super::faults`]).
    pub fault: Option<FaultAction>,
}

/// The recorder (see the module documentation).
#[derive(Debug, Default)]
pub struct ManagementCalls {
    state: Mutex<(bool, Vec<ManagementCall>)>,
}

impl ManagementCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Vec<ManagementCall>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start (or stop) keeping a [`ManagementCall`] per request.
    pub fn record(&self, on: bool) {
        self.lock().0 = on;
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<ManagementCall> {
        self.lock().1.clone()
    }

    /// The calls recorded so far, forgetting them.
    pub fn take(&self) -> Vec<ManagementCall> {
        std::mem::take(&mut self.lock().1)
    }

    pub(crate) fn push(&self, call: impl FnOnce() -> ManagementCall) {
        let mut st = self.lock();
        if st.0 {
            st.1.push(call());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_on() {
        let r = ManagementCalls::default();
        let call = || ManagementCall {
            method: "POST".into(),
            connection_id: "a=".into(),
            started: Instant::now(),
            finished: Instant::now(),
            status: 200,
            request_bytes: 3,
            fault: None,
        };
        r.push(call);
        assert!(r.calls().is_empty());
        r.record(true);
        r.push(call);
        assert_eq!(r.calls().len(), 1);
        assert_eq!(r.take().len(), 1);
        assert!(r.calls().is_empty());
    }
}
