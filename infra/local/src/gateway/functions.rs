//! Where the template's functions come from and how the gateway calls them.
//!
//! - [`Registry`]: binary name (the template's `Metadata.BuildProperties.Binary`) ->
//!   how to build the function in-process. [`Registry::builtin`] holds the nine
//!   function crates of this repository; tests start from [`Registry::empty`] and
//!   register fakes.
//! - [`Invoker`]: "call function X with this event". [`InProcess`] (the default)
//!   builds each function once, on its first invocation (Lambda's init), and calls
//!   [`chat_core::function::Function::invoke`] with the exact event JSON;
//!   the process host (`super::process`, which depends on this module and not the
//!   other way round) runs the built binaries behind the Lambda Runtime API instead.
//!
//! Every invocation ends with a REPORT-style log line (function, route, duration; init
//! duration on a cold start).

use crate::template::FunctionDef;
use chat_core::config::Env;
use chat_core::function::{BoxFuture, SharedFunction};
use futures::FutureExt;
use lambda_runtime::Context;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds a function from its environment (a `chat_core::function::Builder`, or a
/// closure for test fakes).
pub type BuildFn = Arc<
    dyn Fn(Env) -> BoxFuture<'static, Result<SharedFunction, lambda_runtime::Error>> + Send + Sync,
>;

/// Binary name -> builder.
#[derive(Clone, Default)]
pub struct Registry {
    builders: BTreeMap<String, BuildFn>,
}

impl Registry {
    /// No functions: register your own.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The nine function crates of this repository, by binary name.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register_builder("ws-connect", ws_connect::build);
        r.register_builder("ws-disconnect", ws_disconnect::build);
        r.register_builder("ws-message", ws_message::build);
        r.register_builder("http-auth", http_auth::build);
        r.register_builder("http-users", http_users::build);
        r.register_builder("http-chats", http_chats::build);
        r.register_builder("http-devices", http_devices::build);
        r.register_builder("push-notifier", push_notifier::build);
        r.register_builder("account-purger", account_purger::build);
        r.register_builder("thumbnailer", thumbnailer::build);
        r
    }

    /// Register a function crate's `build`.
    pub fn register_builder(&mut self, binary: &str, build: chat_core::function::Builder) {
        self.builders
            .insert(binary.to_owned(), Arc::new(move |env| build(env)));
    }

    /// Register any builder (a closure may capture channels, counters, ...).
    pub fn register<F>(&mut self, binary: &str, build: F)
    where
        F: Fn(Env) -> BoxFuture<'static, Result<SharedFunction, lambda_runtime::Error>>
            + Send
            + Sync
            + 'static,
    {
        self.builders.insert(binary.to_owned(), Arc::new(build));
    }

    /// Register an already built function (same instance for every init).
    pub fn register_function(&mut self, binary: &str, f: SharedFunction) {
        self.register(binary, move |_env| {
            let f = f.clone();
            Box::pin(async move { Ok(f) })
        });
    }

    pub fn with_function(mut self, binary: &str, f: SharedFunction) -> Self {
        self.register_function(binary, f);
        self
    }

    pub fn get(&self, binary: &str) -> Option<BuildFn> {
        self.builders.get(binary).cloned()
    }

    pub fn contains(&self, binary: &str) -> bool {
        self.builders.contains_key(binary)
    }

    pub fn binaries(&self) -> impl Iterator<Item = &str> {
        self.builders.keys().map(String::as_str)
    }
}

/// Why an invocation produced no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (Lambda's `errorMessage`).
    #[error("function error: {0}")]
    Function(String),
    /// Init (build) failed.
    #[error("init error: {0}")]
    Init(String),
    #[error("Task timed out after {0:.2?}")]
    Timeout(Duration),
    #[error("no such function: {0}")]
    Unknown(String),
    /// The process host could not run the function (spawn failed, process died).
    #[error("runtime error: {0}")]
    Runtime(String),
}

/// Calls a function of the stack by logical id.
pub trait Invoker: Send + Sync + 'static {
    /// Invoke `function` (logical id) for `route` (only for the log line).
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        route: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Value, InvokeError>>;

    /// Stop whatever the host runs (processes); in-process hosts have nothing to do.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The cold starts so far (process hosts; in-process hosts have none).
    fn cold_starts(&self) -> Vec<ColdStart> {
        Vec::new()
    }
}

/// One cold start of a function process, as its REPORT line gives it (process hosts,
/// [`Invoker::cold_starts`]).
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// The function's logical id.
    pub function: String,
    /// Process spawn to its first `GET .../invocation/next` (`None`: init failed).
    pub init: Option<Duration>,
    /// The first invocation, from the end of init to its response.
    pub first_invocation: Duration,
    /// Peak resident memory (`VmHWM`, kB) right after the first invocation.
    pub peak_memory_kb: Option<u64>,
    /// The first invocation succeeded (a function error counts as success here).
    pub ok: bool,
}

/// The Lambda context for one invocation.
pub fn context(def: &FunctionDef, request_id: &str) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = request_id.to_owned();
    ctx.deadline = (super::events::now_ms() as u64) + def.timeout_secs * 1000;
    ctx.invoked_function_arn = function_arn(&def.logical_id);
    // The name logs and metrics carry (`Function`): the binary, e.g. `ws-message`.
    ctx.env_config = Arc::new(lambda_runtime::Config {
        function_name: def.binary.clone(),
        memory: def.memory_mb as i32,
        version: "$LATEST".to_owned(),
        log_stream: String::new(),
        log_group: String::new(),
    });
    ctx
}

pub fn function_arn(logical_id: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{logical_id}")
}

/// Log the REPORT line of one invocation.
pub fn report(
    function: &str,
    route: &str,
    request_id: &str,
    duration: Duration,
    init: Option<Duration>,
    peak_memory_kb: Option<u64>,
    outcome: &Result<Value, InvokeError>,
) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let mut line = format!(
        "REPORT RequestId: {request_id} Function: {function} Route: {route} Duration: {}",
        ms(duration)
    );
    if let Some(i) = init {
        line.push_str(&format!(" Init Duration: {}", ms(i)));
    }
    if let Some(kb) = peak_memory_kb {
        line.push_str(&format!(" Max Memory Used: {} MB", kb.div_ceil(1024)));
    }
    match outcome {
        Ok(_) => tracing::info!(target: "chat_local::report", "{line}"),
        Err(e) => tracing::warn!(target: "chat_local::report", "{line} Status: error ({e})"),
    }
}

struct Slot {
    def: FunctionDef,
    build: BuildFn,
    env: Env,
    instance: tokio::sync::OnceCell<SharedFunction>,
}

/// Runs functions inside the gateway's process.
pub struct InProcess {
    slots: HashMap<String, Slot>,
}

impl InProcess {
    /// `functions`: each template function with its builder and resolved environment.
    pub fn new(functions: Vec<(FunctionDef, BuildFn, Env)>) -> Self {
        let slots = functions
            .into_iter()
            .map(|(def, build, env)| {
                (
                    def.logical_id.clone(),
                    Slot {
                        def,
                        build,
                        env,
                        instance: tokio::sync::OnceCell::new(),
                    },
                )
            })
            .collect();
        InProcess { slots }
    }
}

impl Invoker for InProcess {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        route: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<Value, InvokeError>> {
        Box::pin(async move {
            let Some(slot) = self.slots.get(function) else {
                return Err(InvokeError::Unknown(function.to_owned()));
            };
            let request_id = super::events::uuid();
            let start = Instant::now();
            let mut init = None;
            let instance = slot
                .instance
                .get_or_try_init(|| async {
                    let t = Instant::now();
                    let built = AssertUnwindSafe((slot.build)(slot.env.clone()))
                        .catch_unwind()
                        .await;
                    init = Some(t.elapsed());
                    match built {
                        Ok(Ok(f)) => Ok(f),
                        Ok(Err(e)) => Err(InvokeError::Init(e.to_string())),
                        Err(_) => Err(InvokeError::Init("init panicked".into())),
                    }
                })
                .await;
            let outcome = match instance {
                Err(e) => Err(e.clone()),
                Ok(f) => {
                    let ctx = context(&slot.def, &request_id);
                    let limit = Duration::from_secs(slot.def.timeout_secs);
                    let call = AssertUnwindSafe(f.invoke(event, ctx)).catch_unwind();
                    match tokio::time::timeout(limit, call).await {
                        Err(_) => Err(InvokeError::Timeout(limit)),
                        Ok(Err(_)) => Err(InvokeError::Function("function panicked".into())),
                        Ok(Ok(Err(e))) => Err(InvokeError::Function(e.to_string())),
                        Ok(Ok(Ok(v))) => Ok(v),
                    }
                }
            };
            report(
                function,
                route,
                &request_id,
                start.elapsed() - init.unwrap_or_default(),
                init,
                None,
                &outcome,
            );
            outcome
        })
    }
}
