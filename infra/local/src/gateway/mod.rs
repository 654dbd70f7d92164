//! The local API Gateway: API Gateway's WebSocket API, its management API
//! (`@connections`) and the HTTP API on one machine, in front of the template's
//! functions, plus SNS -> Lambda delivery from the local SNS (moto).
//!
//! ```text
//!  clients ──ws://127.0.0.1:WS/{stage}────────┐      ┌─ in-process: Function::invoke
//!  functions ─http://127.0.0.1:WS/{stage}/@connections─┤ Invoker ┤
//!  clients ──http://127.0.0.1:HTTP/{stage}/...─┘      └─ processes: Lambda Runtime API
//!  moto SNS topic ─> SQS queue ─(long poll)─> SNS event ─> subscribed function
//! ```
//!
//! Start it with [`Gateway::start`] and a [`GatewayConfig`]. Routes come from the
//! template; a route whose function has no implementation is a start-up error.
//!
//! - [`events`]: the event JSON and response mapping; [`functions`]: the function
//!   registry and the in-process host; [`process`]: the process host (Lambda Runtime
//!   API); [`websocket`], [`management`], [`http`]: the three APIs; [`sns`]: topic
//!   subscriptions; [`faults`]: fault injection for the management API; [`recorder`]:
//!   a record of the management API calls (for benchmarks).

pub mod commands;
pub mod events;
pub mod faults;
pub mod functions;
pub mod http;
pub mod management;
pub mod process;
pub mod recorder;
pub mod sns;
pub mod stack;
pub mod websocket;

use crate::template::{FunctionDef, HttpRoute, Template};
use anyhow::{anyhow, bail, Context as _, Result};
use axum::routing::{any, get};
use axum::Router;
use chat_core::config::Env;
use faults::Faults;
use functions::{InProcess, Invoker, Registry};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use websocket::{Conn, WsRoutes};

/// API Gateway's limits (the time limits shortened in tests).
#[derive(Debug, Clone)]
pub struct Limits {
    /// 32 KB: a larger frame closes the connection with 1009.
    pub frame_bytes: usize,
    /// 128 KB: a larger message closes the connection with 1009; management POST
    /// above it gets 413.
    pub message_bytes: usize,
    /// 10 minutes without a message from the client.
    pub idle_timeout: Duration,
    /// 2 hours.
    pub max_duration: Duration,
    /// 10 MB HTTP API request bodies.
    pub http_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_bytes: 32 * 1024,
            message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_duration: Duration::from_secs(7200),
            http_payload_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Where the gateway listens, known once it is bound (before functions get their env).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub stage: String,
    pub ws_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// `ws://127.0.0.1:PORT/{stage}`
    pub ws_url: String,
    /// `http://127.0.0.1:PORT/{stage}`: the functions' `WEBSOCKET_MANAGEMENT_ENDPOINT`.
    pub management_endpoint: String,
    /// `http://127.0.0.1:PORT/{stage}`: base URL of the HTTP API.
    pub http_url: String,
}

/// Builds each function's environment (function logical id -> variables) once the
/// gateway knows its endpoints.
pub type EnvBuilder = Box<dyn FnOnce(&Endpoints) -> Result<HashMap<String, Env>> + Send>;

/// How functions run.
#[derive(Clone)]
pub enum FunctionMode {
    /// Built in-process from the registry (default).
    InProcess(Registry),
    /// Built binaries (`<bin_dir>/<binary>`) behind the Lambda Runtime API.
    Process(process::ProcessOptions),
}

/// SNS -> Lambda delivery settings (needs moto).
#[derive(Debug, Clone)]
pub struct SnsOptions {
    /// moto's URL (SNS and SQS).
    pub endpoint: String,
    pub region: String,
    /// Topic logical id -> ARN in moto.
    pub topics: HashMap<String, String>,
    /// Names the delivery queues (`{prefix}-{Function}-sns`).
    pub queue_prefix: String,
    /// Attempts per message (Lambda's asynchronous invocation: 1 + 2 retries).
    pub attempts: u32,
    /// Pause before retry n (n * this).
    pub retry_backoff: Duration,
}

impl SnsOptions {
    pub fn new(endpoint: &str, topics: HashMap<String, String>, queue_prefix: &str) -> Self {
        SnsOptions {
            endpoint: endpoint.to_owned(),
            region: "us-east-1".into(),
            topics,
            queue_prefix: queue_prefix.to_owned(),
            attempts: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// Everything the gateway needs to start.
pub struct GatewayConfig {
    pub template: Template,
    pub functions: FunctionMode,
    /// Function environments; `None`: empty environments. The gateway always sets
    /// `WEBSOCKET_MANAGEMENT_ENDPOINT` to its own management endpoint.
    pub env: Option<EnvBuilder>,
    /// The stage of both APIs; default: the template's `StageName` parameter default.
    pub stage: Option<String>,
    pub host: IpAddr,
    /// 0 = any free port.
    pub ws_port: u16,
    pub http_port: u16,
    pub limits: Limits,
    /// Replaces the CORS `AllowOrigins` of the template (e.g. `*` or the web client's
    /// origin).
    pub cors_allow_origins: Option<Vec<String>>,
    pub sns: Option<SnsOptions>,
}

impl GatewayConfig {
    /// In-process functions from `registry`, free ports on 127.0.0.1, AWS limits.
    pub fn new(template: Template, registry: Registry) -> Self {
        GatewayConfig {
            template,
            functions: FunctionMode::InProcess(registry),
            env: None,
            stage: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ws_port: 0,
            http_port: 0,
            limits: Limits::default(),
            cors_allow_origins: None,
            sns: None,
        }
    }

    pub fn with_env(
        mut self,
        f: impl FnOnce(&Endpoints) -> Result<HashMap<String, Env>> + Send + 'static,
    ) -> Self {
        self.env = Some(Box::new(f));
        self
    }
}

/// Counts live connection tasks so shutdown can wait for their `$disconnect`.
#[derive(Default)]
pub(crate) struct Tracker {
    count: Mutex<usize>,
    idle: Notify,
}

pub(crate) struct TrackerGuard(Arc<Shared>);

impl Tracker {
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if *self.count.lock().unwrap_or_else(|e| e.into_inner()) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        let mut c = self
            .0
            .tracker
            .count
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *c -= 1;
        if *c == 0 {
            self.0.tracker.idle.notify_waiters();
        }
    }
}

/// State shared by the servers.
pub(crate) struct Shared {
    pub stage: String,
    pub api_id: String,
    pub http_api_id: String,
    pub ws_domain: String,
    pub http_domain: String,
    pub ws: WsRoutes,
    pub http: http::HttpRoutes,
    pub cors: Option<http::Cors>,
    pub invoker: Arc<dyn Invoker>,
    pub conns: Mutex<HashMap<String, Arc<Conn>>>,
    pub faults: Arc<Faults>,
    pub management_calls: recorder::ManagementCalls,
    pub limits: Limits,
    pub shutdown: watch::Receiver<bool>,
    pub tracker: Tracker,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn insert(&self, c: Arc<Conn>) {
        self.lock().insert(c.ctx.connection_id.clone(), c);
    }
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Conn>> {
        self.lock().get(id).cloned()
    }
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Conn>> {
        self.lock().remove(id)
    }
}

impl Tracker {
    pub(crate) fn enter_shared(shared: &Arc<Shared>) -> TrackerGuard {
        *shared
            .tracker
            .count
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += 1;
        TrackerGuard(shared.clone())
    }
}

/// The gateway's view of the API: what it actually serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    /// WebSocket route key -> function logical id.
    pub websocket: BTreeMap<String, String>,
    pub route_selection_expression: String,
    /// HTTP routes, sorted.
    pub http: Vec<HttpRoute>,
    /// Function logical id -> topics it is subscribed to (delivered only with SNS on).
    pub sns: BTreeMap<String, Vec<String>>,
    /// Every function the gateway can invoke -> its binary.
    pub functions: BTreeMap<String, String>,
}

/// A running gateway. [`Gateway::shutdown`] closes every connection (firing
/// `$disconnect`) and stops everything it started; dropping it only signals shutdown.
pub struct Gateway {
    endpoints: Endpoints,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    servers_tx: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    sns: Option<sns::Bridge>,
    routes: RouteTable,
}

/// A fixed-key helper: the template's CORS configuration of its HTTP API.
fn template_cors(t: &Template, override_origins: Option<&Vec<String>>) -> Option<http::Cors> {
    use serde_yaml::Value;
    let api = t
        .resources
        .values()
        .find(|r| r.kind == "AWS::Serverless::HttpApi")?;
    let cfg = api
        .properties
        .as_mapping()?
        .get(Value::String("CorsConfiguration".into()))?;
    let list = |key: &str| -> Vec<String> {
        match cfg
            .as_mapping()
            .and_then(|m| m.get(Value::String(key.into())))
        {
            Some(Value::Sequence(s)) => s
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_owned()).collect(),
            Some(Value::Tagged(tag)) if tag.tag == "Ref" => tag
                .value
                .as_str()
                .and_then(|p| t.parameters.get(p))
                .and_then(|p| p.default.clone())
                .map(|d| d.split(',').map(|x| x.trim().to_owned()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let scalar = |key: &str| {
        cfg.as_mapping()
            .and_then(|m| m.get(Value::String(key.into())))
            .and_then(|v| match v {
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
    };
    Some(http::Cors {
        allow_origins: override_origins
            .cloned()
            .unwrap_or_else(|| list("AllowOrigins")),
        allow_methods: list("AllowMethods"),
        allow_headers: list("AllowHeaders"),
        expose_headers: list("ExposeHeaders"),
        max_age: scalar("MaxAge").and_then(|s| s.parse().ok()),
        allow_credentials: scalar("AllowCredentials").as_deref() == Some("true"),
    })
}

/// The template's `StageName` default (`prod` without one).
fn default_stage(template: &Template) -> String {
    template
        .parameters
        .get("StageName")
        .and_then(|p| p.default.clone())
        .unwrap_or_else(|| "prod".into())
}

/// Which functions the gateway must run, and what uses each (for error messages).
fn needed_functions(
    ws_api: &crate::template::WebSocketApiDef,
    http_routes: &[HttpRoute],
    defs: &BTreeMap<String, FunctionDef>,
    sns_on: bool,
) -> BTreeMap<String, Vec<String>> {
    let mut needed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, f) in &ws_api.routes {
        needed
            .entry(f.clone())
            .or_default()
            .push(format!("WebSocket route {key}"));
    }
    for r in http_routes {
        needed
            .entry(r.function.clone())
            .or_default()
            .push(format!("HTTP route {} {}", r.method, r.path));
    }
    if sns_on {
        for f in defs.values().filter(|f| !f.sns_topics.is_empty()) {
            needed
                .entry(f.logical_id.clone())
                .or_default()
                .push(format!("SNS subscription to {}", f.sns_topics.join(", ")));
        }
    }
    needed
}

/// Every needed function is in the template and has an implementation (registered,
/// or a built binary); otherwise one error naming each route, function and binary.
fn check_runnable(
    needed: &BTreeMap<String, Vec<String>>,
    defs: &BTreeMap<String, FunctionDef>,
    mode: &FunctionMode,
) -> Result<()> {
    let mut problems = Vec::new();
    for (f, uses) in needed {
        let Some(def) = defs.get(f) else {
            problems.push(format!("{}: function {f} is not in the template", uses[0]));
            continue;
        };
        let missing = match mode {
            FunctionMode::InProcess(reg) => (!reg.contains(&def.binary))
                .then(|| format!("no registered implementation for binary `{}`", def.binary)),
            FunctionMode::Process(p) => {
                let path = p.bin_dir.join(&def.binary);
                (!path.is_file()).then(|| {
                    format!(
                        "binary {} does not exist (run `cargo build -p {}`)",
                        path.display(),
                        def.binary
                    )
                })
            }
        };
        if let Some(m) = missing {
            problems.push(format!("{} -> function {f}: {m}", uses.join(", ")));
        }
    }
    if !problems.is_empty() {
        bail!(
            "the template's routes name functions the gateway cannot run:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Bind both APIs' ports (0: a free one) and derive the stack's URLs.
async fn bind(
    host: IpAddr,
    ws_port: u16,
    http_port: u16,
    stage: &str,
) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener, Endpoints)> {
    let ws_listener = tokio::net::TcpListener::bind((host, ws_port))
        .await
        .with_context(|| format!("binding the WebSocket port {ws_port}"))?;
    let http_listener = tokio::net::TcpListener::bind((host, http_port))
        .await
        .with_context(|| format!("binding the HTTP port {http_port}"))?;
    let ws_addr = ws_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let endpoints = Endpoints {
        stage: stage.to_owned(),
        ws_addr,
        http_addr,
        ws_url: format!("ws://{ws_addr}/{stage}"),
        management_endpoint: format!("http://{ws_addr}/{stage}"),
        http_url: format!("http://{http_addr}/{stage}"),
    };
    Ok((ws_listener, http_listener, endpoints))
}

/// Each needed function with its environment (plus the management endpoint).
fn hosted_functions(
    needed: &BTreeMap<String, Vec<String>>,
    defs: &BTreeMap<String, FunctionDef>,
    mut envs: HashMap<String, Env>,
    endpoints: &Endpoints,
) -> Result<Vec<(FunctionDef, Env)>> {
    let mut hosted = Vec::new();
    for f in needed.keys() {
        let def = defs
            .get(f)
            .ok_or_else(|| anyhow!("function {f} vanished"))?;
        let mut env = envs.remove(f).unwrap_or_default();
        env.set(
            "WEBSOCKET_MANAGEMENT_ENDPOINT",
            endpoints.management_endpoint.clone(),
        );
        hosted.push((def.clone(), env));
    }
    Ok(hosted)
}

/// The invoker of `mode` for the hosted functions (checked by [`check_runnable`]).
fn invoker(mode: &FunctionMode, hosted: &[(FunctionDef, Env)]) -> Arc<dyn Invoker> {
    match mode {
        FunctionMode::InProcess(reg) => Arc::new(InProcess::new(
            hosted
                .iter()
                .map(|(def, env)| {
                    let build = reg.get(&def.binary).expect("checked by check_runnable");
                    (def.clone(), build, env.clone())
                })
                .collect(),
        )),
        FunctionMode::Process(opts) => {
            Arc::new(process::ProcessHost::new(opts.clone(), hosted.to_vec()))
        }
    }
}

/// The WebSocket port: the stage's upgrade path, the management API (`@connections`,
/// also percent-encoded), the fault switches; API Gateway's 403 for anything else.
fn ws_router(stage: &str, shared: Arc<Shared>) -> Router {
    Router::new()
        .route(&format!("/{stage}"), get(websocket::upgrade))
        .route(
            &format!("/{stage}/@connections/{{id}}"),
            any(management::connection),
        )
        // The form AWS's guide documents (and curl/Postman users send): `@`
        // percent-encoded; the id is percent-decoded either way.
        .route(
            &format!("/{stage}/%40connections/{{id}}"),
            any(management::connection),
        )
        .route(
            "/_local/faults",
            get(management::list_faults)
                .post(management::add_fault)
                .delete(management::clear_faults),
        )
        .fallback(|| async {
            (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"message": "Forbidden"})),
            )
        })
        .with_state(shared)
}

/// Serve each router on its listener until the returned switch is set.
fn serve<const N: usize>(
    pairs: [(tokio::net::TcpListener, Router); N],
) -> (watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>) {
    let (servers_tx, servers_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for (listener, router) in pairs {
        let mut stop = servers_rx.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        }));
    }
    (servers_tx, servers)
}

/// WebSocket route keys that have a route response (two-way communication): a route
/// with `RouteResponseSelectionExpression`, or named by an
/// `AWS::ApiGatewayV2::RouteResponse`.
fn two_way_routes(t: &Template) -> BTreeSet<String> {
    use serde_yaml::Value;
    let prop = |r: &crate::template::Resource, k: &str| {
        r.properties
            .as_mapping()
            .and_then(|m| m.get(Value::String(k.into())))
            .cloned()
    };
    let key_of = |r: &crate::template::Resource| {
        prop(r, "RouteKey").and_then(|v| v.as_str().map(str::to_owned))
    };
    let mut out = BTreeSet::new();
    for r in t.resources.values() {
        if r.kind == "AWS::ApiGatewayV2::Route"
            && prop(r, "RouteResponseSelectionExpression").is_some()
        {
            out.extend(key_of(r));
        }
        if r.kind == "AWS::ApiGatewayV2::RouteResponse" {
            let route = match prop(r, "RouteId") {
                Some(Value::Tagged(tag)) if tag.tag == "Ref" => {
                    tag.value.as_str().map(str::to_owned)
                }
                _ => None,
            };
            if let Some(res) = route.and_then(|id| t.resources.get(&id)) {
                out.extend(key_of(res));
            }
        }
    }
    out
}

impl Gateway {
    /// Validate the template's routes against the available functions, bind, build
    /// environments and serve.
    pub async fn start(cfg: GatewayConfig) -> Result<Gateway> {
        let template = cfg.template;
        let defs: BTreeMap<String, FunctionDef> = template
            .functions()?
            .into_iter()
            .map(|f| (f.logical_id.clone(), f))
            .collect();
        let ws_api = template.websocket_api()?;
        let http_routes = template.http_routes()?;
        let stage = cfg.stage.unwrap_or_else(|| default_stage(&template));

        let needed = needed_functions(&ws_api, &http_routes, &defs, cfg.sns.is_some());
        check_runnable(&needed, &defs, &cfg.functions)?;
        let (ws_listener, http_listener, endpoints) =
            bind(cfg.host, cfg.ws_port, cfg.http_port, &stage).await?;
        let envs = match cfg.env {
            Some(build) => build(&endpoints)?,
            None => HashMap::new(),
        };
        let hosted = hosted_functions(&needed, &defs, envs, &endpoints)?;
        let invoker = invoker(&cfg.functions, &hosted);
        let routes = RouteTable {
            websocket: ws_api.routes.clone(),
            route_selection_expression: ws_api.route_selection_expression.clone(),
            http: http_routes.clone(),
            sns: defs
                .values()
                .filter(|f| !f.sns_topics.is_empty())
                .map(|f| (f.logical_id.clone(), f.sns_topics.clone()))
                .collect(),
            functions: hosted
                .iter()
                .map(|(d, _)| (d.logical_id.clone(), d.binary.clone()))
                .collect(),
        };

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            stage: stage.clone(),
            api_id: events::api_id(),
            http_api_id: events::api_id(),
            ws_domain: endpoints.ws_addr.to_string(),
            http_domain: endpoints.http_addr.to_string(),
            ws: WsRoutes {
                selection_path: WsRoutes::selection_path(&ws_api.route_selection_expression)?,
                expression: ws_api.route_selection_expression.clone(),
                routes: ws_api.routes.clone(),
                two_way: two_way_routes(&template),
            },
            http: http::HttpRoutes::new(http_routes),
            cors: template_cors(&template, cfg.cors_allow_origins.as_ref()),
            invoker: invoker.clone(),
            conns: Mutex::new(HashMap::new()),
            faults: Arc::new(Faults::default()),
            management_calls: recorder::ManagementCalls::default(),
            limits: cfg.limits.clone(),
            shutdown: shutdown_rx,
            tracker: Tracker::default(),
        });
        let http_router = Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let (servers_tx, servers) = serve([
            (ws_listener, ws_router(&stage, shared.clone())),
            (http_listener, http_router),
        ]);
        let sns = match cfg.sns {
            Some(opts) => Some(sns::Bridge::start(opts, &defs, invoker.clone()).await?),
            None => None,
        };

        tracing::info!(
            ws = %endpoints.ws_url,
            http = %endpoints.http_url,
            "local API Gateway listening"
        );
        Ok(Gateway {
            endpoints,
            shared,
            shutdown_tx,
            servers_tx,
            servers,
            sns,
            routes,
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }
    /// `ws://127.0.0.1:PORT/{stage}`
    pub fn ws_url(&self) -> &str {
        &self.endpoints.ws_url
    }
    /// `http://127.0.0.1:PORT/{stage}`
    pub fn http_url(&self) -> &str {
        &self.endpoints.http_url
    }
    /// The management API endpoint (`WEBSOCKET_MANAGEMENT_ENDPOINT`).
    pub fn management_endpoint(&self) -> &str {
        &self.endpoints.management_endpoint
    }
    /// Fault injection for the management API.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }
    /// The record of management API calls (off until switched on).
    pub fn management_calls(&self) -> &recorder::ManagementCalls {
        &self.shared.management_calls
    }
    /// The cold starts of function processes so far (empty in-process).
    pub fn cold_starts(&self) -> Vec<process::ColdStart> {
        self.shared.invoker.cold_starts()
    }
    /// The routes and functions the gateway serves.
    /// SNS messages the bridge dropped as Lambda's recursive-loop detection would
    /// (0 without SNS delivery).
    pub fn sns_loop_drops(&self) -> u64 {
        self.sns.as_ref().map_or(0, sns::Bridge::loop_drops)
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }
    /// Ids of the open connections.
    pub fn connections(&self) -> Vec<String> {
        self.shared.lock().keys().cloned().collect()
    }
    /// Drop a connection without firing `$disconnect` (API Gateway losing it): the
    /// socket closes abruptly and `@connections` answers 410 for it. `false` if the
    /// connection is not open.
    pub fn kill_connection(&self, id: &str) -> bool {
        match self.shared.remove(id) {
            Some(c) => c.tx.send(websocket::Out::Kill).is_ok(),
            None => false,
        }
    }

    /// Invoke a function of the stack directly (as `invoke` does).
    pub async fn invoke(
        &self,
        function: &str,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, functions::InvokeError> {
        self.shared.invoker.invoke(function, "direct", event).await
    }

    /// Close every connection (1001, firing `$disconnect` for each), stop the
    /// servers, the SNS delivery and any function processes.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        let _ =
            tokio::time::timeout(Duration::from_secs(30), self.shared.tracker.wait_idle()).await;
        let _ = self.servers_tx.send(true);
        for s in self.servers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        if let Some(sns) = self.sns.take() {
            sns.stop().await;
        }
        self.shared.invoker.shutdown().await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        let _ = self.servers_tx.send(true);
        if let Some(mut sns) = self.sns.take() {
            sns.abort();
        }
    }
}

/// The directory of the workspace's built binaries (`target/debug` or
/// `target/release`), from `CARGO_TARGET_DIR` or the workspace root.
pub fn target_dir(release: bool) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("..")
                .join("target")
        });
    base.join(if release { "release" } else { "debug" })
}
