//! What the load and soak runs drive: a fresh stack behind the in-process local gateway
//! ([`BenchStack`], on `chat_tests::TestStack`), simulated users whose rows are written
//! through the store and whose access tokens are minted with the stack's signing key
//! (registering thousands of users through Argon2id would take minutes and measure
//! password hashing, not messaging), and WebSocket clients ([`Client`]) whose reader task
//! timestamps every server frame on arrival (monotonic clock, same process as the
//! gateway) and hands it to the run as an [`Event`].
//!
//! Also the process probes both runs report: RSS and CPU time of this process (which
//! hosts the gateway and the functions) and CPU time of the DynamoDB Local process.

use anyhow::{bail, Context as _, Result};
use chat_core::auth::tokens::TokenConfig;
use chat_core::ids::{ChatId, SessionId, UserId};
use chat_core::input::{DisplayName, GroupName, UserName};
use chat_core::model::now_millis;
use chat_core::store::{NewGroup, Store};
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A simulated user: a row in the Users table and an access token.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: UserId,
    pub token: String,
}

/// A fresh stack for one run, and how to populate it.
pub struct BenchStack {
    pub stack: TestStack,
    tokens: TokenConfig,
}

impl BenchStack {
    /// Provision a stack on the backend `./dev bench` started and start the gateway
    /// in-process with the real functions.
    pub async fn start() -> Result<BenchStack> {
        for var in ["CHAT_DYNAMODB_ENDPOINT", "CHAT_MOTO_ENDPOINT"] {
            if std::env::var_os(var).is_none() {
                bail!("{var} is not set: run the benchmark through `./dev bench ...`, which starts the local backend");
            }
        }
        let stack = TestStack::try_start(Default::default()).await?;
        let tokens = TokenConfig::from_env(stack.env()).context("JWT config of the stack")?;
        Ok(BenchStack { stack, tokens })
    }

    pub fn store(&self) -> &Store {
        self.stack.store()
    }

    /// `n` users, created `concurrency` at a time.
    pub async fn users(&self, n: usize, concurrency: usize) -> Result<Vec<BenchUser>> {
        futures::stream::iter(0..n)
            .map(|i| self.user(i))
            .buffered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    async fn user(&self, i: usize) -> Result<BenchUser> {
        let id = UserId::generate();
        let name = format!("b{i}{}", &id.as_str()[16..]).to_ascii_lowercase();
        let name: String = name.chars().take(30).collect();
        self.store()
            .create_user(
                &id,
                &UserName::parse(&name).map_err(|e| anyhow::anyhow!("user name {name}: {e:?}"))?,
                &DisplayName::parse(&format!("Bench {i}"))
                    .map_err(|e| anyhow::anyhow!("display name: {e:?}"))?,
                "not-a-password-hash",
                now_millis(),
            )
            .await?;
        let token = self
            .tokens
            .issue(&id, &SessionId::generate(), 0, now_millis());
        Ok(BenchUser { id, token })
    }

    pub async fn direct(&self, a: &BenchUser, b: &BenchUser) -> Result<ChatId> {
        Ok(self
            .store()
            .get_or_create_direct(&a.id, &b.id, now_millis())
            .await?
            .0
            .chat_id)
    }

    pub async fn group(&self, creator: &BenchUser, others: &[&BenchUser]) -> Result<ChatId> {
        let (chat, _) = self
            .store()
            .create_group(
                &NewGroup {
                    creator: creator.id.clone(),
                    name: GroupName::parse("Bench").map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    members: others.iter().map(|u| u.id.clone()).collect(),
                },
                now_millis(),
            )
            .await?;
        Ok(chat.chat_id)
    }

    /// The WebSocket URL for `user`.
    pub fn ws_url(&self, user: &BenchUser) -> String {
        format!("{}?token={}&device=bench", self.stack.ws_url(), user.token)
    }

    /// Rows in the stack's Connections table (a scan; for the end of a run).
    pub async fn connection_rows(&self) -> Result<i32> {
        let mut count = 0;
        let mut start = None;
        loop {
            let out = self
                .store()
                .client()
                .scan()
                .table_name(&self.store().tables().connections)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("scanning the Connections table")?;
            count += out.count;
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// Users of `users` the Presence table still shows with a live connection.
    pub async fn users_online(&self, users: &[BenchUser]) -> Result<usize> {
        let mut online = 0;
        for chunk in users.chunks(100) {
            let ids: Vec<UserId> = chunk.iter().map(|u| u.id.clone()).collect();
            let presence = self.store().presence_of(&ids, now_millis()).await?;
            online += presence
                .values()
                .filter(|p| !p.connections.is_empty())
                .count();
        }
        Ok(online)
    }
}

/// A server frame, reduced to what the runs check.
#[derive(Debug, Clone)]
pub enum Event {
    Ack {
        chat: String,
        cmid: String,
        position: u64,
        duplicate: bool,
    },
    Message {
        chat: String,
        cmid: Option<String>,
        position: u64,
    },
    Error {
        code: String,
        cmid: Option<String>,
    },
    Pong,
    SyncResult(Value),
    /// Presence, receipts, typing, ...
    Other,
    /// The socket closed (or failed).
    Closed,
}

impl Event {
    fn parse(text: &str) -> Event {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return Event::Error {
                code: "not_json".into(),
                cmid: None,
            };
        };
        let str_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let pos = v.get("position").and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str) {
            Some("messageAck") => Event::Ack {
                chat: str_of("chatId").unwrap_or_default(),
                cmid: str_of("clientMessageId").unwrap_or_default(),
                position: pos,
                duplicate: v.get("duplicate").and_then(Value::as_bool).unwrap_or(false),
            },
            Some("message") => Event::Message {
                chat: str_of("chatId").unwrap_or_default(),
                cmid: str_of("clientMessageId"),
                position: pos,
            },
            Some("error") => Event::Error {
                code: str_of("code").unwrap_or_default(),
                cmid: str_of("clientMessageId"),
            },
            Some("pong") => Event::Pong,
            Some("syncResult") => Event::SyncResult(v),
            Some(_) => Event::Other,
            // The gateway's own `{"message": "Internal server error", ...}` frames.
            None => Event::Error {
                code: str_of("message").unwrap_or_else(|| "untyped frame".into()),
                cmid: None,
            },
        }
    }
}

/// A received frame: which client, when, what.
pub type Received = (usize, Instant, Event);

/// One WebSocket connection: frames go out through a writer task, frames coming in are
/// timestamped by a reader task and sent to the run's channel tagged with `index`.
pub struct Client {
    tx: mpsc::UnboundedSender<WsMessage>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn open(
        url: &str,
        index: usize,
        events: mpsc::UnboundedSender<Received>,
    ) -> Result<Client> {
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .context("WebSocket connect timed out")?
        .context("WebSocket connect")?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<WsMessage>();
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let close = matches!(m, WsMessage::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
        });
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                let at = Instant::now();
                match frame {
                    Ok(WsMessage::Text(t)) => {
                        if events.send((index, at, Event::parse(&t))).is_err() {
                            return;
                        }
                    }
                    Ok(WsMessage::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = events.send((index, Instant::now(), Event::Closed));
        });
        Ok(Client { tx, reader, writer })
    }

    /// Queue a JSON frame; `false` if the connection is gone.
    pub fn send(&self, frame: &Value) -> bool {
        self.tx
            .send(WsMessage::Text(frame.to_string().into()))
            .is_ok()
    }

    /// Drop the connection without a close frame (the TCP connection just ends).
    pub fn abort(self) {
        self.reader.abort();
        self.writer.abort();
    }

    /// Close the connection (close handshake) and wait for both tasks, up to 10 s.
    pub async fn close(self) {
        let _ = self.tx.send(WsMessage::Close(None));
        let Client { reader, writer, .. } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let _ = writer.await;
            let _ = reader.await;
        })
        .await;
    }
}

/// Open one client per URL, `concurrency` handshakes at a time; client `i` reports as
/// `first_index + i`.
pub async fn open_all(
    urls: Vec<String>,
    first_index: usize,
    events: &mpsc::UnboundedSender<Received>,
    concurrency: usize,
) -> Result<Vec<Client>> {
    futures::stream::iter(urls.into_iter().enumerate())
        .map(|(i, url)| {
            let events = events.clone();
            async move { Client::open(&url, first_index + i, events).await }
        })
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Raise the soft open-files limit to the hard limit (thousands of sockets, twice: the
/// clients' ends and the gateway's).
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Resident set size of this process, bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    proc_status_kb("self", "VmRSS:") * 1024
}

fn proc_status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of this process so far.
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage with a valid pointer to a zeroed local struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The DynamoDB Local process serving `CHAT_DYNAMODB_ENDPOINT` (found by its
/// `-port N` argument), to read its CPU time and memory.
#[derive(Debug, Clone, Copy)]
pub struct DynamoProcess {
    pid: u32,
}

impl DynamoProcess {
    pub fn find() -> Option<DynamoProcess> {
        let endpoint = std::env::var("CHAT_DYNAMODB_ENDPOINT").ok()?;
        let port = endpoint
            .rsplit(':')
            .next()?
            .trim_end_matches('/')
            .to_owned();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_ddb = args.iter().any(|a| a.contains("DynamoDBLocal.jar"));
            let on_port = args.windows(2).any(|w| w[0] == "-port" && w[1] == port);
            if is_ddb && on_port {
                return Some(DynamoProcess { pid });
            }
        }
        None
    }

    /// CPU time (user + system) of the process so far.
    pub fn cpu(&self) -> Duration {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return Duration::ZERO;
        };
        // Fields after the `(comm)`: state is field 3; utime and stime are 14 and 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    pub fn rss_bytes(&self) -> u64 {
        proc_status_kb(&self.pid.to_string(), "VmRSS:") * 1024
    }
}

/// Parse `20`, `20s`, `1500ms`, `10m`, `1h` as a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 20s, 500ms, 10m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A short description of the machine, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gb = proc_meminfo_kb("MemTotal:") as f64 / 1024.0 / 1024.0;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem_gb:.0} GB RAM, Linux {kernel}")
}

fn proc_meminfo_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `release` or `debug`: which build produced the figures.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}
