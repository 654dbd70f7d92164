//! The gateway's command-line tools, in the spirit of `sam local`:
//!
//! - `generate-event`: the events SAM lacks (WebSocket `$connect`, message,
//!   `$disconnect`) plus HTTP API (payload 2.0) and SNS events, printed as JSON;
//! - `invoke FUNCTION --event FILE`: run one function of the template once with an
//!   event (in-process, or as a process with `--process`) and print its response.

use super::events::{self, HttpRequest, SnsNotification, WsContext};
use super::functions::{InProcess, Invoker, Registry};
use super::process::{ProcessHost, ProcessOptions};
use crate::template::Template;
use anyhow::{anyhow, bail, Context, Result};
use chat_core::config::Env;
use serde_json::Value;
use std::path::PathBuf;

/// Which event to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventKind {
    WebsocketConnect,
    WebsocketMessage,
    WebsocketDisconnect,
    Http,
    Sns,
}

/// `generate-event` options.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateEventArgs {
    pub kind: EventKind,
    /// Message body (WebSocket message, HTTP body, SNS message).
    #[arg(long, default_value = "")]
    pub body: String,
    /// WebSocket message route key (default: selected from the body by the template's
    /// route selection expression) or HTTP route (`"GET /chats/{chatId}"`).
    #[arg(long)]
    pub route: Option<String>,
    /// HTTP request path without the stage (`/chats/grp_1`); default: the route's path.
    #[arg(long)]
    pub path: Option<String>,
    /// Query string (`token=abc&x=1`).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Extra header `name:value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// `$disconnect` status code.
    #[arg(long, default_value_t = 1000)]
    pub code: u16,
    #[arg(long, default_value = "prod")]
    pub stage: String,
    /// SNS topic ARN.
    #[arg(
        long,
        default_value = "arn:aws:sns:us-east-1:000000000000:dev-OfflineMessageTopic"
    )]
    pub topic_arn: String,
}

fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .ok_or_else(|| anyhow!("header {h:?}: expected name:value"))
        })
        .collect()
}

/// Build the event `generate-event` prints.
pub fn generate_event(template: &Template, a: &GenerateEventArgs) -> Result<Value> {
    let headers = parse_headers(&a.headers)?;
    let ctx = WsContext {
        api_id: "local00001".into(),
        stage: a.stage.clone(),
        domain_name: "127.0.0.1:3001".into(),
        connection_id: events::connection_id(),
        connected_at: events::now_ms(),
        source_ip: "127.0.0.1".into(),
        user_agent: Some("generate-event".into()),
    };
    Ok(match a.kind {
        EventKind::WebsocketConnect => {
            let mut h = vec![
                ("host".to_owned(), ctx.domain_name.clone()),
                (
                    "sec-websocket-key".into(),
                    "dGhlIHNhbXBsZSBub25jZQ==".into(),
                ),
                ("sec-websocket-version".into(), "13".into()),
            ];
            h.extend(headers);
            events::ws_connect(&ctx, &h, Some(&a.query))
        }
        EventKind::WebsocketDisconnect => {
            events::ws_disconnect(&ctx, a.code, "Client-side close frame status set")
        }
        EventKind::WebsocketMessage => {
            let route = match &a.route {
                Some(r) => r.clone(),
                None => {
                    let api = template.websocket_api()?;
                    let routes = super::websocket::WsRoutes {
                        selection_path: super::websocket::WsRoutes::selection_path(
                            &api.route_selection_expression,
                        )?,
                        expression: api.route_selection_expression,
                        routes: api.routes,
                        two_way: Default::default(),
                    };
                    routes
                        .select(a.body.as_bytes())
                        .unwrap_or("$default")
                        .to_owned()
                }
            };
            events::ws_message(&ctx, &route, a.body.as_bytes(), false)
        }
        EventKind::Http => {
            let route = a
                .route
                .clone()
                .ok_or_else(|| anyhow!("--route \"METHOD /path\" is required for http"))?;
            let (method, route_path) = route
                .split_once(' ')
                .ok_or_else(|| anyhow!("--route: expected \"METHOD /path\""))?;
            let known = template
                .http_routes()?
                .into_iter()
                .any(|r| r.method == method && r.path == route_path);
            if !known {
                bail!("the template has no HTTP route {route}");
            }
            let path = a.path.clone().unwrap_or_else(|| route_path.to_owned());
            let rs = super::http::HttpRoutes::new(template.http_routes()?);
            let params = rs
                .find(method, &path)
                .map(|(_, p)| p)
                .ok_or_else(|| anyhow!("path {path} does not match {route}"))?;
            let mut h = vec![("host".to_owned(), "127.0.0.1:3000".to_owned())];
            if !a.body.is_empty() {
                h.push(("content-type".into(), "application/json".into()));
            }
            h.extend(headers);
            events::http_v2(&HttpRequest {
                api_id: "local00002".into(),
                stage: a.stage.clone(),
                domain_name: "127.0.0.1:3000".into(),
                route_key: route.clone(),
                method: method.to_owned(),
                raw_path: format!("/{}{path}", a.stage),
                raw_query: a.query.clone(),
                headers: h,
                path_parameters: params,
                source_ip: "127.0.0.1".into(),
                body: a.body.clone().into_bytes(),
            })
        }
        EventKind::Sns => events::sns_event(
            &SnsNotification {
                message_id: events::uuid(),
                topic_arn: a.topic_arn.clone(),
                subject: None,
                message: a.body.clone(),
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                message_attributes: Default::default(),
            },
            &format!("{}:{}", a.topic_arn, events::uuid()),
        ),
    })
}

/// `invoke` options.
#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// Template logical id (`WsMessageFunction`) or binary name (`ws-message`).
    pub function: String,
    /// Event JSON file (`-` for stdin).
    #[arg(long, short)]
    pub event: PathBuf,
    /// Run the built binary behind the Lambda Runtime API instead of in-process.
    #[arg(long)]
    pub process: bool,
    /// With --process: use target/release.
    #[arg(long)]
    pub release: bool,
    /// Extra environment `KEY=VALUE` (repeatable), on top of the stack's.
    #[arg(long = "env")]
    pub env: Vec<String>,
}

/// Read `invoke`'s event file.
pub fn read_event(path: &std::path::Path) -> Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Invoke one function once; `env` is its resolved environment (from the local stack
/// when available) to which `--env` values are added.
pub async fn invoke(template: &Template, a: &InvokeArgs, mut env: Env) -> Result<Value> {
    let def = template
        .functions()?
        .into_iter()
        .find(|f| f.logical_id == a.function || f.binary == a.function)
        .ok_or_else(|| anyhow!("the template has no function {}", a.function))?;
    for kv in &a.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {kv:?}: expected KEY=VALUE"))?;
        env.set(k, v);
    }
    let event = read_event(&a.event)?;
    let host: Box<dyn Invoker> = if a.process {
        let opts = ProcessOptions::new(super::target_dir(a.release));
        let path = opts.bin_dir.join(&def.binary);
        if !path.is_file() {
            bail!(
                "{} does not exist: run `cargo build -p {}{}`",
                path.display(),
                def.binary,
                if a.release { " --release" } else { "" }
            );
        }
        Box::new(ProcessHost::new(opts, vec![(def.clone(), env)]))
    } else {
        let build = Registry::builtin()
            .get(&def.binary)
            .ok_or_else(|| anyhow!("no in-process implementation of {}", def.binary))?;
        Box::new(InProcess::new(vec![(def.clone(), build, env)]))
    };
    let out = host.invoke(&def.logical_id, "invoke", event).await;
    host.shutdown().await;
    out.map_err(|e| anyhow!("{} failed: {e}", def.logical_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateEventArgs,
    }

    fn gen(argv: &[&str]) -> Result<Value> {
        let cli = Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))?;
        let t = Template::load(&Template::default_path())?;
        generate_event(&t, &cli.args)
    }

    #[test]
    fn generates_typed_events() {
        let ev = gen(&["websocket-message", "--body", r#"{"action":"typing"}"#]).unwrap();
        assert_eq!(ev["requestContext"]["routeKey"], "typing");
        let ev = gen(&["websocket-message", "--body", "hi"]).unwrap();
        assert_eq!(ev["requestContext"]["routeKey"], "$default");
        let ev = gen(&["websocket-connect", "--query", "token=t"]).unwrap();
        let _: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(ev.clone()).unwrap();
        assert_eq!(ev["queryStringParameters"]["token"], "t");
        let ev = gen(&["websocket-disconnect", "--code", "1001"]).unwrap();
        assert_eq!(ev["requestContext"]["disconnectStatusCode"], 1001);
        let ev = gen(&[
            "http",
            "--route",
            "GET /chats/{chatId}",
            "--path",
            "/chats/grp_1",
        ])
        .unwrap();
        assert_eq!(ev["pathParameters"]["chatId"], "grp_1");
        assert_eq!(ev["rawPath"], "/prod/chats/grp_1");
        assert!(gen(&["http", "--route", "GET /nope"]).is_err());
        let ev = gen(&["sns", "--body", "m"]).unwrap();
        let _: aws_lambda_events::sns::SnsEvent = serde_json::from_value(ev).unwrap();
    }
}
