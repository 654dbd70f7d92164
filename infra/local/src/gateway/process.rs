//! Functions as processes: each function's built binary (`target/{debug,release}/<binary>`)
//! runs as a child process talking to a local Lambda Runtime API
//! (`/2018-06-01/runtime/invocation/next`, `/{id}/response`, `/{id}/error`,
//! `/init/error`) through `AWS_LAMBDA_RUNTIME_API`, exactly as in Lambda. Each function
//! has a pool of processes, started on demand (one per concurrent invocation, like
//! Lambda's execution environments), kept warm between invocations and killed when an
//! invocation exceeds the function's timeout. The REPORT line adds the init duration
//! (spawn to first `next`) and the peak memory (`VmHWM` of `/proc/<pid>/status`);
//! each cold start is also kept as a [`ColdStart`] (`Gateway::cold_starts`).

// `ColdStart` is part of the `Invoker` contract; re-exported where it is produced.
pub use super::functions::ColdStart;
use super::functions::{function_arn, report, InvokeError, Invoker};
use crate::template::FunctionDef;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chat_core::config::Env;
use chat_core::function::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// Where the binaries are and how many processes a function may have.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// `target/debug` or `target/release` (see [`super::target_dir`]).
    pub bin_dir: PathBuf,
    /// Concurrent processes per function (Lambda's concurrency).
    pub max_per_function: usize,
    /// Discard the processes' stdout and stderr (their logs) instead of passing them
    /// through (benchmarks).
    pub quiet: bool,
}

impl ProcessOptions {
    pub fn new(bin_dir: PathBuf) -> Self {
        ProcessOptions {
            bin_dir,
            max_per_function: 16,
            quiet: false,
        }
    }
}

type Reply = oneshot::Sender<Result<Value, InvokeError>>;

struct Pending {
    request_id: String,
    event: Value,
    deadline_ms: u64,
    reply: Reply,
}

/// What the Runtime API of one process shares with the pool.
struct ProcState {
    arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    inflight: Mutex<HashMap<String, Reply>>,
    /// Set at the first `next`: init is over.
    ready: watch::Sender<Option<Duration>>,
    started: Instant,
    init_error: Mutex<Option<String>>,
}

struct Proc {
    pid: u32,
    tx: mpsc::UnboundedSender<Pending>,
    state: Arc<ProcState>,
    kill: watch::Sender<bool>,
    exited: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<()>,
    used: std::sync::atomic::AtomicBool,
}

impl Proc {
    async fn kill(&self) {
        let _ = self.kill.send(true);
        let mut exited = self.exited.clone();
        let _ = exited.wait_for(|e| *e).await;
        self.server.abort();
    }
}

struct Pool {
    def: FunctionDef,
    env: Env,
    opts: ProcessOptions,
    idle: Mutex<Vec<Arc<Proc>>>,
    all: Mutex<Vec<Arc<Proc>>>,
    slots: tokio::sync::Semaphore,
    cold_starts: Mutex<Vec<ColdStart>>,
}

/// Runs the functions as processes.
pub struct ProcessHost {
    pools: HashMap<String, Arc<Pool>>,
}

impl ProcessHost {
    pub fn new(opts: ProcessOptions, functions: Vec<(FunctionDef, Env)>) -> Self {
        let pools = functions
            .into_iter()
            .map(|(def, env)| {
                (
                    def.logical_id.clone(),
                    Arc::new(Pool {
                        slots: tokio::sync::Semaphore::new(opts.max_per_function),
                        def,
                        env,
                        opts: opts.clone(),
                        idle: Mutex::new(Vec::new()),
                        all: Mutex::new(Vec::new()),
                        cold_starts: Mutex::new(Vec::new()),
                    }),
                )
            })
            .collect();
        ProcessHost { pools }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn next(State(st): State<Arc<ProcState>>) -> Response {
    st.ready.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(st.started.elapsed());
            true
        } else {
            false
        }
    });
    let pending = st.queue.lock().await.recv().await;
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    lock(&st.inflight).insert(p.request_id.clone(), p.reply);
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", p.request_id);
    set("lambda-runtime-deadline-ms", p.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", st.arn.clone());
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-{}", super::events::uuid()),
    );
    set("content-type", "application/json".into());
    (headers, p.event.to_string()).into_response()
}

async fn response(
    State(st): State<Arc<ProcState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(reply) = lock(&st.inflight).remove(&id) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = reply.send(Ok(v));
    StatusCode::ACCEPTED.into_response()
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

async fn error(State(st): State<Arc<ProcState>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(reply) = lock(&st.inflight).remove(&id) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let _ = reply.send(Err(InvokeError::Function(error_message(&body))));
    StatusCode::ACCEPTED.into_response()
}

async fn init_error(State(st): State<Arc<ProcState>>, body: Bytes) -> Response {
    *lock(&st.init_error) = Some(error_message(&body));
    StatusCode::ACCEPTED.into_response()
}

impl Pool {
    async fn spawn(&self) -> Result<Arc<Proc>, InvokeError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| InvokeError::Runtime(format!("runtime API: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| InvokeError::Runtime(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready, _) = watch::channel(None);
        let state = Arc::new(ProcState {
            arn: function_arn(&self.def.logical_id),
            queue: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(HashMap::new()),
            ready,
            started: Instant::now(),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let path = self.opts.bin_dir.join(&self.def.binary);
        let mut cmd = Command::new(&path);
        cmd.env_clear();
        for k in ["PATH", "HOME", "RUST_BACKTRACE", "TMPDIR"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(self.env.vars())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.def.logical_id)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.def.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.def.logical_id),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", super::events::uuid())
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .kill_on_drop(true);
        if self.env.get("AWS_REGION").is_none() {
            cmd.env("AWS_REGION", "us-east-1");
        }
        if self.opts.quiet {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
        let child = cmd.spawn().map_err(|e| {
            server.abort();
            InvokeError::Runtime(format!("spawning {}: {e}", path.display()))
        })?;
        let pid = child.id().unwrap_or_default();
        let (exit_tx, exited) = watch::channel(false);
        let (kill, mut kill_rx) = watch::channel(false);
        // The child is owned by one task: it ends with the process (crash, init
        // failure) or kills it on request.
        tokio::spawn(async move {
            let mut child: Child = child;
            tokio::select! {
                _ = child.wait() => {}
                _ = async { let _ = kill_rx.wait_for(|k| *k).await; } => { let _ = child.kill().await; }
            }
            let _ = exit_tx.send(true);
        });
        let proc = Arc::new(Proc {
            pid,
            tx,
            state,
            kill,
            exited,
            server,
            used: std::sync::atomic::AtomicBool::new(false),
        });
        lock(&self.all).push(proc.clone());
        Ok(proc)
    }

    fn forget(&self, p: &Arc<Proc>) {
        lock(&self.all).retain(|x| !Arc::ptr_eq(x, p));
        lock(&self.idle).retain(|x| !Arc::ptr_eq(x, p));
    }

    async fn invoke(&self, route: &str, event: Value) -> Result<Value, InvokeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| InvokeError::Runtime("host stopped".into()))?;
        let warm = lock(&self.idle).pop();
        let (proc, cold) = match warm {
            Some(p) => (p, false),
            None => (self.spawn().await?, true),
        };
        let request_id = super::events::uuid();
        let start = Instant::now();
        let timeout = Duration::from_secs(self.def.timeout_secs);
        let (reply_tx, reply_rx) = oneshot::channel();
        let deadline_ms = super::events::now_ms() as u64 + self.def.timeout_secs * 1000;
        let _ = proc.tx.send(Pending {
            request_id: request_id.clone(),
            event,
            deadline_ms,
            reply: reply_tx,
        });
        let mut ready = proc.state.ready.subscribe();
        let mut init_done = proc.state.ready.subscribe();
        let mut exited = proc.exited.clone();
        // As in Lambda: init (a cold process until it first asks for work) gets its own
        // 10 s, and the function's timeout runs from the end of init.
        let limit = async {
            if cold {
                let init = tokio::time::timeout(
                    Duration::from_secs(10),
                    init_done.wait_for(|r| r.is_some()),
                )
                .await;
                if !matches!(init, Ok(Ok(_))) {
                    return;
                }
            }
            tokio::time::sleep(timeout).await
        };
        let outcome = tokio::select! {
            r = reply_rx => r.unwrap_or_else(|_| Err(InvokeError::Runtime("process lost the invocation".into()))),
            _ = async { let _ = exited.wait_for(|e| *e).await; } => {
                let init = lock(&proc.state.init_error).clone();
                Err(match init {
                    Some(m) => InvokeError::Init(m),
                    None => InvokeError::Runtime(format!("process {} exited", proc.pid)),
                })
            }
            _ = limit => Err(InvokeError::Timeout(timeout)),
        };
        let init = if cold {
            *ready.borrow_and_update()
        } else {
            None
        };
        let peak = peak_memory_kb(proc.pid);
        proc.used.store(true, std::sync::atomic::Ordering::Relaxed);
        match &outcome {
            Ok(_) | Err(InvokeError::Function(_)) => lock(&self.idle).push(proc.clone()),
            Err(_) => {
                proc.kill().await;
                self.forget(&proc);
            }
        }
        let duration = start.elapsed().saturating_sub(init.unwrap_or_default());
        if cold {
            lock(&self.cold_starts).push(ColdStart {
                function: self.def.logical_id.clone(),
                init,
                first_invocation: duration,
                peak_memory_kb: peak,
                ok: matches!(outcome, Ok(_) | Err(InvokeError::Function(_))),
            });
        }
        report(
            &self.def.logical_id,
            route,
            &request_id,
            duration,
            init,
            peak,
            &outcome,
        );
        outcome
    }

    async fn stop(&self) {
        let procs: Vec<_> = lock(&self.all).drain(..).collect();
        lock(&self.idle).clear();
        for p in procs {
            p.kill().await;
        }
    }
}

/// Peak resident memory of a process (`VmHWM`, kB).
pub fn peak_memory_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

impl Invoker for ProcessHost {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        route: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Value, InvokeError>> {
        Box::pin(async move {
            match self.pools.get(function) {
                Some(pool) => pool.invoke(route, event).await,
                None => Err(InvokeError::Unknown(function.to_owned())),
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for pool in self.pools.values() {
                pool.stop().await;
            }
        })
    }

    fn cold_starts(&self) -> Vec<ColdStart> {
        self.pools
            .values()
            .flat_map(|p| lock(&p.cold_starts).clone())
            .collect()
    }
}
