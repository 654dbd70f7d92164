//! The `chat-local` command line: `up` runs the whole chat locally (backend, stack
//! `dev`, gateway with the real functions, web client); `backend` starts DynamoDB
//! Local and moto (and provisions stacks on them), `provision` creates a stack on a
//! running backend; `invoke` and `generate-event` work like their `sam local`
//! namesakes. The binary's `main` only parses arguments and calls [`run`].

use crate::backend::{write_file_atomically, Backend, BackendConfig, BackendEndpoints, Mode};
use crate::provision::{provision, ProvisionedStack};
use crate::template::Template;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "chat-local",
    about = "The chat's local AWS: DynamoDB Local + moto, stacks from infra/template.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start DynamoDB Local and moto (installing them first if needed), provision the
    /// given stacks, and run until Ctrl-C or SIGTERM. If a backend already runs on
    /// the ports, reuse it (provision, print, exit).
    Backend(BackendArgs),
    /// Create a stack's tables, topics, queues and platform applications on a running
    /// backend (idempotent).
    Provision(ProvisionArgs),
    /// The whole chat: backend, stack `dev`, the local API Gateway with the real
    /// functions, and the web client (`web/`) if present. Ctrl-C stops everything.
    Up(crate::up::UpArgs),
    /// Invoke one function of the template once with an event file and print its
    /// response (like `sam local invoke`).
    Invoke(InvokeCmd),
    /// Print an event as API Gateway or SNS would send it.
    GenerateEvent(crate::gateway::commands::GenerateEventArgs),
}

#[derive(Debug, Args)]
pub struct InvokeCmd {
    #[command(flatten)]
    pub invoke: crate::gateway::commands::InvokeArgs,
    /// Resolve the function's environment for this local stack (provisioned if
    /// needed on the backend below); without it only `--env` values are set.
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(
        long,
        env = "CHAT_DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:8000"
    )]
    pub dynamodb_endpoint: String,
    #[arg(
        long,
        env = "CHAT_MOTO_ENDPOINT",
        default_value = "http://127.0.0.1:5000"
    )]
    pub moto_endpoint: String,
    /// Directory of the persisted JWT signing key of the stack (as `up` keeps it).
    #[arg(long, default_value_os_t = BackendConfig::repo_root().join(".local/data"))]
    pub data_dir: PathBuf,
    #[arg(long, default_value_os_t = Template::default_path())]
    pub template: PathBuf,
}

#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Keep DynamoDB data in memory only (the default; for tests).
    #[arg(long, conflicts_with = "persist")]
    pub in_memory: bool,
    /// Keep DynamoDB data in DIR across restarts (moto keeps nothing: topics and
    /// queues are re-created at every start).
    #[arg(long, value_name = "DIR")]
    pub persist: Option<PathBuf>,
    /// DynamoDB Local's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8000, env = "CHAT_DYNAMODB_PORT")]
    pub dynamodb_port: u16,
    /// moto's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 5000, env = "CHAT_MOTO_PORT")]
    pub moto_port: u16,
    /// Provision a stack with this name prefix once the backend is up (repeatable).
    #[arg(long = "provision", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// Once ready, write `CHAT_DYNAMODB_ENDPOINT=...` and `CHAT_MOTO_ENDPOINT=...`
    /// lines to FILE (removed again at stop).
    #[arg(long, value_name = "FILE")]
    pub ports_file: Option<PathBuf>,
    /// The SAM template.
    #[arg(long, default_value_os_t = Template::default_path())]
    pub template: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Name prefix of the stack (tables are `{prefix}-{LogicalId}`).
    #[arg(long)]
    pub prefix: String,
    #[arg(
        long,
        env = "CHAT_DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:8000"
    )]
    pub dynamodb_endpoint: String,
    #[arg(
        long,
        env = "CHAT_MOTO_ENDPOINT",
        default_value = "http://127.0.0.1:5000"
    )]
    pub moto_endpoint: String,
    #[arg(long, default_value_os_t = Template::default_path())]
    pub template: PathBuf,
}

pub async fn run(cli: Cli) -> Result<()> {
    let mut env = chat_core::config::Env::from_process();
    if env.get("LOG_FORMAT").is_none() {
        env.set("LOG_FORMAT", "pretty");
    }
    chat_core::telemetry::init(&env);
    match cli.command {
        Command::Backend(args) => backend(args).await,
        Command::Provision(args) => {
            let template = Template::load(&args.template)?;
            let endpoints = BackendEndpoints {
                dynamodb: args.dynamodb_endpoint,
                moto: args.moto_endpoint,
            };
            let stack = provision(&template, &endpoints, &args.prefix).await?;
            print_stack(&stack);
            Ok(())
        }
        Command::Up(args) => crate::up::up(args).await,
        Command::Invoke(args) => invoke(args).await,
        Command::GenerateEvent(args) => {
            let template = Template::load(&Template::default_path())?;
            let event = crate::gateway::commands::generate_event(&template, &args)?;
            println!("{}", serde_json::to_string_pretty(&event)?);
            Ok(())
        }
    }
}

async fn invoke(args: InvokeCmd) -> Result<()> {
    let template = Template::load(&args.template)?;
    let env = match &args.prefix {
        None => chat_core::config::Env::default(),
        Some(prefix) => {
            let endpoints = BackendEndpoints {
                dynamodb: args.dynamodb_endpoint.clone(),
                moto: args.moto_endpoint.clone(),
            };
            let stack = provision(&template, &endpoints, prefix).await?;
            let key = crate::up::signing_key(Some(&args.data_dir), prefix)?;
            let stage = template
                .parameters
                .get("StageName")
                .and_then(|p| p.default.clone())
                .unwrap_or_else(|| "prod".into());
            let gateway = crate::gateway::Endpoints {
                ws_addr: ([127, 0, 0, 1], crate::up::DEFAULT_WS_PORT).into(),
                http_addr: ([127, 0, 0, 1], crate::up::DEFAULT_HTTP_PORT).into(),
                ws_url: format!("ws://127.0.0.1:{}/{stage}", crate::up::DEFAULT_WS_PORT),
                management_endpoint: format!(
                    "http://127.0.0.1:{}/{stage}",
                    crate::up::DEFAULT_WS_PORT
                ),
                http_url: format!("http://127.0.0.1:{}/{stage}", crate::up::DEFAULT_HTTP_PORT),
                stage,
            };
            let mut envs =
                crate::gateway::stack::stack_envs(&template, &stack, &key, &endpoints, &gateway)?;
            let def = template
                .functions()?
                .into_iter()
                .find(|f| f.logical_id == args.invoke.function || f.binary == args.invoke.function)
                .ok_or_else(|| {
                    anyhow::anyhow!("the template has no function {}", args.invoke.function)
                })?;
            envs.remove(&def.logical_id).unwrap_or_default()
        }
    };
    let response = crate::gateway::commands::invoke(&template, &args.invoke, env).await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}

async fn backend(args: BackendArgs) -> Result<()> {
    let template = Template::load(&args.template)?;
    let mode = match &args.persist {
        Some(dir) => Mode::Persist(dir.clone()),
        None => Mode::InMemory,
    };
    let mut config = BackendConfig::new(mode.clone());
    config.dynamodb_port = args.dynamodb_port;
    config.moto_port = args.moto_port;
    let mut backend = Backend::start(&config).await?;
    let result = serve(&args, &template, &mode, &mut backend).await;
    backend.stop().await;
    if let Some(f) = &args.ports_file {
        if backend.reused_from().is_none() {
            let _ = std::fs::remove_file(f);
        }
    }
    if result.is_ok() && backend.reused_from().is_none() {
        eprintln!("backend stopped");
    }
    result
}

async fn serve(
    args: &BackendArgs,
    template: &Template,
    mode: &Mode,
    backend: &mut Backend,
) -> Result<()> {
    let endpoints = backend.endpoints().clone();
    for prefix in &args.prefixes {
        let stack = provision(template, &endpoints, prefix)
            .await
            .with_context(|| format!("provisioning stack {prefix}"))?;
        print_stack(&stack);
    }
    if let Some(f) = &args.ports_file {
        write_file_atomically(f, &endpoints.shell_exports())?;
    }
    eprintln!("DynamoDB Local: {}", endpoints.dynamodb);
    eprintln!("moto (SNS, SQS): {}", endpoints.moto);
    let vars: Vec<String> = endpoints
        .aws_vars()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("AWS clients reach it with: {}", vars.join(" "));
    if let Some(owner) = backend.reused_from() {
        let by = if owner == 0 {
            "started elsewhere".to_owned()
        } else {
            format!("started by process {owner}")
        };
        eprintln!("The backend was already running ({by}); reused it and left it running.");
        return Ok(());
    }
    match mode {
        Mode::InMemory => eprintln!("Data: in memory (gone when the backend stops)"),
        Mode::Persist(dir) => eprintln!(
            "Data: DynamoDB in {} (kept across restarts; moto's topics and queues are \
             re-created at each start, its subscriptions and queued messages are not kept)",
            dir.display()
        ),
    }
    eprintln!(
        "Running. Stop with Ctrl-C (or SIGTERM to process {}).",
        std::process::id()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("stopping (Ctrl-C)..."),
        _ = term.recv() => eprintln!("stopping (SIGTERM)..."),
        why = backend.wait_for_exit() => anyhow::bail!("{why}"),
    }
    Ok(())
}

fn print_stack(stack: &ProvisionedStack) {
    eprintln!("stack {}:", stack.prefix);
    eprintln!(
        "  tables: {}-<LogicalId> (e.g. {})",
        stack.prefix, stack.tables.messages
    );
    for (id, t) in &stack.topics {
        eprintln!("  topic {id}: {}", t.arn);
    }
    for (id, q) in &stack.queues {
        eprintln!("  queue {id}: {}", q.url);
    }
    eprintln!(
        "  APNS platform application: {}",
        stack.platform_applications.apns
    );
    eprintln!(
        "  FCM platform application: {}",
        stack.platform_applications.fcm
    );
}
