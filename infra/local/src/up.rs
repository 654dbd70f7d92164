//! `chat-local up`: the whole chat on this machine. Starts (or reuses) DynamoDB Local
//! and moto, provisions the stack `dev`, starts the local API Gateway with the real
//! functions (in-process, or as processes with `--process`), serves the web client
//! (`web/`) if it exists, prints the URLs (with `--aws-faults`, also those of the fault
//! proxies put between the functions and DynamoDB / SNS), and on Ctrl-C (or SIGTERM) closes every
//! connection, stops the gateway and the backend it started.

use crate::backend::{Backend, BackendConfig, Mode};
use crate::gateway::functions::Registry;
use crate::gateway::process::ProcessOptions;
use crate::gateway::stack::config_for_stack;
use crate::gateway::{target_dir, FunctionMode, Gateway};
use crate::provision::{generate_signing_key, provision};
use crate::proxy::{AwsProxy, Protocol};
use crate::template::Template;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

pub const DEFAULT_HTTP_PORT: u16 = 3000;
pub const DEFAULT_WS_PORT: u16 = 3001;
pub const DEFAULT_WEB_PORT: u16 = 8080;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Stack name prefix.
    #[arg(long, default_value = "dev")]
    pub prefix: String,
    /// Keep DynamoDB data in memory only.
    #[arg(long)]
    pub in_memory: bool,
    /// Where DynamoDB data (and the stack's JWT signing key) are kept.
    #[arg(long, default_value_os_t = BackendConfig::repo_root().join(".local/data"))]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 8000, env = "CHAT_DYNAMODB_PORT")]
    pub dynamodb_port: u16,
    #[arg(long, default_value_t = 5000, env = "CHAT_MOTO_PORT")]
    pub moto_port: u16,
    /// HTTP API port.
    #[arg(long, default_value_t = DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// WebSocket API (and @connections) port.
    #[arg(long, default_value_t = DEFAULT_WS_PORT)]
    pub ws_port: u16,
    /// Port of the web client (served from --web-dir if it exists).
    #[arg(long, default_value_t = DEFAULT_WEB_PORT)]
    pub web_port: u16,
    #[arg(long, default_value_os_t = BackendConfig::repo_root().join("web"))]
    pub web_dir: PathBuf,
    /// CORS origins allowed by the HTTP API (repeatable); default: the web client's.
    #[arg(long = "cors-origin")]
    pub cors_origins: Vec<String>,
    /// Once everything listens, write `{"httpUrl","wsUrl","webUrl"}` (JSON) to FILE
    /// (removed again at stop): for scripts and tests that start `up` on port 0.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Run the functions' built binaries as processes (Lambda Runtime API).
    #[arg(long)]
    pub process: bool,
    /// Put fault proxies between the functions and DynamoDB / SNS
    /// (`chat_local::proxy`); switch faults at run time at their `/_local/faults`.
    #[arg(long)]
    pub aws_faults: bool,
    /// With --process: use target/release.
    #[arg(long)]
    pub release: bool,
    #[arg(long, default_value_os_t = Template::default_path())]
    pub template: PathBuf,
}

/// The stack's JWT signing key: kept in `{dir}/{prefix}.jwt-signing-key` so tokens
/// survive restarts of a persistent stack; a fresh one without a directory.
pub fn signing_key(dir: Option<&Path>, prefix: &str) -> Result<String> {
    let Some(dir) = dir else {
        return Ok(generate_signing_key());
    };
    let path = dir.join(format!("{prefix}.jwt-signing-key"));
    if let Ok(k) = std::fs::read_to_string(&path) {
        if k.trim().len() >= 32 {
            return Ok(k.trim().to_owned());
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = generate_signing_key();
    crate::backend::write_file_atomically(&path, &key)?;
    Ok(key)
}

pub async fn up(args: UpArgs) -> Result<()> {
    let template = Template::load(&args.template)?;
    let mode = if args.in_memory {
        Mode::InMemory
    } else {
        Mode::Persist(args.data_dir.clone())
    };
    let mut config = BackendConfig::new(mode);
    config.dynamodb_port = args.dynamodb_port;
    config.moto_port = args.moto_port;
    let mut backend = Backend::start(&config).await?;
    let result = run(&args, template, &mut backend).await;
    backend.stop().await;
    result
}

async fn run(args: &UpArgs, template: Template, backend: &mut Backend) -> Result<()> {
    let endpoints = backend.endpoints().clone();
    let stack = provision(&template, &endpoints, &args.prefix)
        .await
        .with_context(|| format!("provisioning stack {}", args.prefix))?;
    let key = signing_key(
        (!args.in_memory).then_some(args.data_dir.as_path()),
        &args.prefix,
    )?;
    // With --aws-faults the functions reach DynamoDB and SNS through fault proxies;
    // the gateway's own SNS-to-Lambda delivery goes direct.
    let proxies = match args.aws_faults {
        true => Some((
            AwsProxy::start(&endpoints.dynamodb, Protocol::DynamoDb).await?,
            AwsProxy::start(&endpoints.moto, Protocol::Query).await?,
        )),
        false => None,
    };
    let functions_endpoints = match &proxies {
        Some((db, sns)) => crate::backend::BackendEndpoints {
            dynamodb: db.url().to_owned(),
            moto: sns.url().to_owned(),
        },
        None => endpoints.clone(),
    };
    let mut cfg = config_for_stack(
        template.clone(),
        Registry::builtin(),
        &stack,
        &key,
        &functions_endpoints,
    );
    cfg.sns = config_for_stack(template, Registry::default(), &stack, &key, &endpoints).sns;
    if args.process {
        cfg.functions = FunctionMode::Process(ProcessOptions::new(target_dir(args.release)));
    }
    cfg.ws_port = args.ws_port;
    cfg.http_port = args.http_port;
    // The web client's listener comes first: with --web-port 0 its real port is
    // what the CORS configuration must allow.
    let web_listener = if args.web_dir.is_dir() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.web_port))
            .await
            .with_context(|| format!("binding the web port {}", args.web_port))?;
        Some(listener)
    } else {
        None
    };
    let web_port = match &web_listener {
        Some(l) => l.local_addr()?.port(),
        None => args.web_port,
    };
    let web_url = format!("http://127.0.0.1:{web_port}/");
    cfg.cors_allow_origins = Some(if args.cors_origins.is_empty() {
        vec![
            format!("http://127.0.0.1:{web_port}"),
            format!("http://localhost:{web_port}"),
        ]
    } else {
        args.cors_origins.clone()
    });
    let frame_bytes = cfg.limits.frame_bytes;
    let gateway = Gateway::start(cfg).await?;
    // What the page reads at `/config.json` (see docs/web-client.md): where the APIs
    // are, the server's limits taken from the code that enforces them (so the client
    // cannot drift from them), and `testHooks` (the browser test's hooks; only this
    // local server turns them on, a deployed config.json has no such key).
    let web_config = serde_json::json!({
        "httpUrl": gateway.http_url(),
        "wsUrl": gateway.ws_url(),
        "limits": {
            "wsFrameBytes": frame_bytes,
            "wsMessageBytes": chat_core::protocol::MAX_FRAME_BYTES,
            "framesPerWindow": ws_message::REQUESTS_PER_WINDOW,
            "typingPerWindow": ws_message::TYPING_PER_WINDOW,
            "windowMs": ws_message::WINDOW_MS,
            "maxMessageChars": chat_core::input::MAX_MESSAGE_CHARS,
        },
        "testHooks": true,
    })
    .to_string();
    let web = web_listener.is_some();
    let web_server = web_listener.map(|listener| {
        let dir = args.web_dir.clone();
        tokio::spawn(async move {
            let app = axum::Router::new()
                .route(
                    "/config.json",
                    axum::routing::get(move || async move {
                        (
                            [
                                (axum::http::header::CONTENT_TYPE, "application/json"),
                                (axum::http::header::CACHE_CONTROL, "no-store"),
                            ],
                            web_config,
                        )
                    }),
                )
                .fallback(move |uri: axum::http::Uri| {
                    let dir = dir.clone();
                    async move { static_file(&dir, uri.path()).await }
                });
            let _ = axum::serve(listener, app).await;
        })
    });
    if let Some(file) = &args.ready_file {
        let ready = serde_json::json!({
            "httpUrl": gateway.http_url(),
            "wsUrl": gateway.ws_url(),
            "webUrl": if web { Some(web_url.clone()) } else { None },
        });
        crate::backend::write_file_atomically(file, &format!("{ready}\n"))?;
    }
    eprintln!();
    eprintln!("The chat runs locally (stack {}):", args.prefix);
    eprintln!("  WebSocket API: {}?token=ACCESS_TOKEN", gateway.ws_url());
    eprintln!("  HTTP API:      {}", gateway.http_url());
    if web {
        eprintln!("  Web client:    {web_url}");
    } else {
        eprintln!("  Web client:    (no {} yet)", args.web_dir.display());
    }
    eprintln!(
        "  Functions:     {}",
        if args.process {
            "as processes (Lambda Runtime API)"
        } else {
            "in-process"
        }
    );
    if let Some((db, sns)) = &proxies {
        eprintln!(
            "  AWS faults:    DynamoDB {}{}",
            db.url(),
            crate::proxy::ADMIN_PATH
        );
        eprintln!(
            "                 SNS      {}{}",
            sns.url(),
            crate::proxy::ADMIN_PATH
        );
    }
    eprintln!(
        "Stop with Ctrl-C (or SIGTERM to process {}).",
        std::process::id()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => { eprintln!("stopping (Ctrl-C)..."); Ok(()) }
        _ = term.recv() => { eprintln!("stopping (SIGTERM)..."); Ok(()) }
        why = backend.wait_for_exit() => Err(anyhow::anyhow!("{why}")),
    };
    gateway.shutdown().await;
    if let Some(w) = web_server {
        w.abort();
    }
    if let Some(file) = &args.ready_file {
        let _ = std::fs::remove_file(file);
    }
    eprintln!("gateway stopped");
    let totals = crate::metrics_view::totals_so_far();
    if !totals.is_empty() {
        eprint!(
            "Metrics of this run (EMF, summed):\n{}",
            crate::metrics_view::render(&totals)
        );
    }
    outcome
}

/// A file of the web client (`index.html` for `/`); 404 for anything outside `dir`.
async fn static_file(dir: &Path, path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    if rel
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    let file = dir.join(&rel);
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let ct = match file.extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("js" | "mjs") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("json") => "application/json",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("ico") => "image/x-icon",
                Some("wasm") => "application/wasm",
                _ => "application/octet-stream",
            };
            ([(axum::http::header::CONTENT_TYPE, ct)], bytes).into_response()
        }
        Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
