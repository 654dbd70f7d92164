//! Fake functions for testing the local gateway without the real functions or a
//! database. Every binary of the template is registered with a fake that records the
//! event it was given (see [`Recorder`]) and answers in a way tests can steer:
//!
//! - `ws-connect`: `?reject=NNN` on the URL -> `{"statusCode": NNN}`; otherwise 200.
//! - `ws-message`: posts `{"routeKey", "body", "connectionId"}` back to the connection
//!   through the real management API client (`chat_core::aws::management`); a body
//!   containing `"fail":true` makes it return an error; it also returns
//!   `{"statusCode":200,"body":"echo:<body>"}` (seen by clients on two-way routes).
//! - `http-*`: answer the event itself as JSON (status 200, a header, two cookies);
//!   header `x-fail` -> error; header `x-binary` -> a base64 body of bytes 0,1,2,255.
//! - everything else (`ws-disconnect`, `push-notifier`): record and answer `{}`.

use chat_core::config::Env;
use chat_core::function::{typed, SharedFunction};
use chat_local::gateway::functions::Registry;
use chat_local::gateway::{Gateway, GatewayConfig, Limits};
use chat_local::template::Template;
use lambda_runtime::Error;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

/// One recorded invocation.
#[derive(Debug, Clone)]
pub struct Call {
    pub binary: String,
    pub event: Value,
}

impl Call {
    pub fn route_key(&self) -> &str {
        self.event["requestContext"]["routeKey"]
            .as_str()
            .or_else(|| self.event["routeKey"].as_str())
            .unwrap_or_default()
    }
    pub fn connection_id(&self) -> &str {
        self.event["requestContext"]["connectionId"]
            .as_str()
            .unwrap_or_default()
    }
}

/// The invocations of the fakes, in order.
pub struct Recorder {
    rx: Mutex<mpsc::UnboundedReceiver<Call>>,
}

impl Recorder {
    /// Wait (up to 10 s) for the next call matching `pred`, skipping others.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
        let mut rx = self.rx.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(c)) if pred(&c) => return c,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("recorder closed while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// The `$disconnect` of a connection.
    pub async fn disconnect_of(&self, connection_id: &str) -> Call {
        self.wait_for(&format!("$disconnect of {connection_id}"), |c| {
            c.route_key() == "$disconnect" && c.connection_id() == connection_id
        })
        .await
    }

    /// Every call recorded so far that nobody waited for.
    pub async fn drain(&self) -> Vec<Call> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(c);
        }
        out
    }
}

fn recording(
    binary: &'static str,
    tx: mpsc::UnboundedSender<Call>,
    env: Env,
) -> chat_core::function::BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let management = if binary == "ws-message" {
            let sdk = chat_core::aws::sdk_config(&env).await;
            Some(chat_core::aws::management(&sdk, &env)?)
        } else {
            None
        };
        let f = typed(move |event: Value, _ctx| {
            let tx = tx.clone();
            let management = management.clone();
            async move {
                let _ = tx.send(Call {
                    binary: binary.to_owned(),
                    event: event.clone(),
                });
                answer(binary, &event, management.as_ref()).await
            }
        });
        Ok(f)
    })
}

async fn answer(
    binary: &str,
    event: &Value,
    management: Option<&aws_sdk_apigatewaymanagement::Client>,
) -> Result<Value, Error> {
    match binary {
        "ws-connect" => {
            let reject = event["queryStringParameters"]["reject"]
                .as_str()
                .and_then(|s| s.parse::<u16>().ok());
            Ok(match reject {
                Some(status) => json!({"statusCode": status, "body": "rejected"}),
                None => json!({"statusCode": 200}),
            })
        }
        "ws-message" => {
            let body = event["body"].as_str().unwrap_or_default().to_owned();
            if body.contains("\"fail\":true") {
                return Err(Error::from("asked to fail"));
            }
            let id = event["requestContext"]["connectionId"]
                .as_str()
                .unwrap_or_default();
            let reply = json!({
                "routeKey": event["requestContext"]["routeKey"],
                "connectionId": id,
                "bodyLength": body.len(),
            });
            if let Some(m) = management {
                m.post_to_connection()
                    .connection_id(id)
                    .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
                        reply.to_string(),
                    ))
                    .send()
                    .await
                    .map_err(|e| Error::from(format!("post_to_connection: {e:?}")))?;
            }
            Ok(json!({"statusCode": 200, "body": format!("echo:{body}")}))
        }
        b if b.starts_with("http-") => {
            let header = |k: &str| event["headers"][k].as_str().map(str::to_owned);
            if header("x-fail").is_some() {
                return Err(Error::from("asked to fail"));
            }
            if header("x-binary").is_some() {
                return Ok(json!({
                    "statusCode": 201,
                    "headers": {"content-type": "application/octet-stream"},
                    "body": "AAEC/w==",
                    "isBase64Encoded": true,
                }));
            }
            Ok(json!({
                "statusCode": 200,
                "headers": {"content-type": "application/json", "x-function": b},
                "multiValueHeaders": {"x-multi": ["1", "2"]},
                "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
                "body": event.to_string(),
                "isBase64Encoded": false,
            }))
        }
        _ => Ok(json!({})),
    }
}

/// A registry with a recording fake for every binary of the repository's template.
pub fn registry() -> (Registry, Arc<Recorder>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut r = Registry::empty();
    for binary in [
        "ws-connect",
        "ws-disconnect",
        "ws-message",
        "http-auth",
        "http-users",
        "http-chats",
        "http-devices",
        "push-notifier",
        "account-purger",
        "thumbnailer",
    ] {
        let tx = tx.clone();
        r.register(binary, move |env| recording(binary, tx.clone(), env));
    }
    (r, Arc::new(Recorder { rx: Mutex::new(rx) }))
}

/// The repository's template.
pub fn template() -> Template {
    Template::load(&Template::default_path()).expect("the repository template loads")
}

/// The repository's template text, for tests that edit it.
pub fn template_text() -> String {
    std::fs::read_to_string(Template::default_path()).expect("template readable")
}

/// Environment for the fakes: the management client needs credentials and a region.
pub fn fake_env() -> Env {
    let mut env = Env::default();
    env.set("AWS_ACCESS_KEY_ID", "test");
    env.set("AWS_SECRET_ACCESS_KEY", "test");
    env.set("AWS_REGION", "us-east-1");
    env
}

/// A gateway on free ports with the fakes.
pub struct FakeGateway {
    pub gateway: Gateway,
    pub calls: Arc<Recorder>,
}

impl FakeGateway {
    pub async fn start() -> FakeGateway {
        Self::start_with(template(), Limits::default()).await
    }

    pub async fn start_with(template: Template, limits: Limits) -> FakeGateway {
        let (registry, calls) = registry();
        let functions: Vec<String> = template
            .functions()
            .expect("functions")
            .into_iter()
            .map(|f| f.logical_id)
            .collect();
        let mut cfg = GatewayConfig::new(template, registry)
            .with_env(move |_| Ok(functions.into_iter().map(|f| (f, fake_env())).collect()));
        cfg.limits = limits;
        cfg.cors_allow_origins = Some(vec!["http://localhost:5173".into()]);
        let gateway = Gateway::start(cfg).await.expect("gateway starts");
        FakeGateway { gateway, calls }
    }

    /// The real management API client, pointed at this gateway.
    pub async fn management(&self) -> aws_sdk_apigatewaymanagement::Client {
        let mut env = fake_env();
        env.set(
            "WEBSOCKET_MANAGEMENT_ENDPOINT",
            self.gateway.management_endpoint(),
        );
        let sdk = chat_core::aws::sdk_config(&env).await;
        chat_core::aws::management(&sdk, &env).expect("management client")
    }
}
