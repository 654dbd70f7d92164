//! What the in-process functions log and the EMF records they write, captured in memory
//! for the whole test binary. The tracing subscriber and the EMF sink
//! (`chat_core::metrics::set_sink`) are process-global, and every test shares one
//! process: [`capture`] installs both once (the production JSON subscriber at `info`,
//! `chat_core::telemetry::init_with_writer`) and every test that asserts on logs or
//! metrics reads the same capture, picking its own lines out by a request id, user id
//! or chat id (other tests' functions write into it at the same time).

use chat_core::config::Env;
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Everything captured: log lines and EMF lines, with a wake-up on each write.
#[derive(Clone, Default)]
pub struct Capture {
    logs: Arc<Mutex<Vec<u8>>>,
    emf: Arc<Mutex<Vec<String>>>,
    changed: Arc<Notify>,
}

/// The capture of this process, installed on first use.
pub fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let cap = Capture::default();
        let for_logs = cap.clone();
        let env = Env::from_map([("LOG_LEVEL".to_owned(), "info".to_owned())].into());
        chat_core::telemetry::init_with_writer(&env, move || LogWriter(for_logs.clone()));
        let for_emf = cap.clone();
        chat_core::metrics::set_sink(Some(Box::new(move |line: &str| {
            for_emf.emf.lock().unwrap().push(line.to_owned());
            for_emf.changed.notify_waiters();
        })));
        cap
    })
}

impl Capture {
    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.logs.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The log lines that are JSON, parsed.
    pub fn logs_json(&self) -> Vec<Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every EMF line so far.
    pub fn emf_lines(&self) -> Vec<String> {
        self.emf.lock().unwrap().clone()
    }

    /// Every EMF record so far, parsed (panics on a line that is not JSON).
    pub fn emf_json(&self) -> Vec<Value> {
        self.emf_lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("EMF lines are JSON"))
            .collect()
    }

    /// Wait (up to `timeout`) until `pred` holds, checked after every captured write.
    pub async fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Capture) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(v) = pred(self) {
                return v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "timed out waiting for {what}; {} log lines, EMF:\n{:?}",
                    self.log_lines().len(),
                    self.emf_lines()
                );
            }
        }
    }
}

struct LogWriter(Capture);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.logs.lock().unwrap().extend_from_slice(buf);
        self.0.changed.notify_waiters();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
