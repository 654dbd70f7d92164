//! [`TestStack`]: the whole chat for one end-to-end test. It provisions a fresh,
//! uniquely prefixed stack (tables, topics, queues, moto platform applications) on the
//! backend `./dev test` started, subscribes an observer SQS queue to the offline topic,
//! and starts the local gateway in-process on free ports with the real functions (or
//! the registry given in [`TestStackOptions`]). Tests talk to [`TestStack::ws_url`] and
//! [`TestStack::http_url`] like clients do and check side effects through
//! [`TestStack::store`], [`TestStack::offline_messages`] and
//! [`TestStack::push_messages`].
//!
//! In the remote mode ([`crate::remote`]) [`TestStack::start`] hands out the remote
//! stack instead: its two URLs and nothing else. Everything that needs the backend
//! panics there with a message naming [`crate::needs_backend!`].

use crate::backend::{endpoints, template, unique_prefix};
use chat_core::config::Env;
use chat_core::store::Store;
use chat_local::backend::BackendEndpoints;
use chat_local::gateway::faults::Faults;
use chat_local::gateway::functions::Registry;
use chat_local::gateway::process::ProcessOptions;
use chat_local::gateway::stack::{config_for_stack, stack_envs};
use chat_local::gateway::{FunctionMode, Gateway, Limits};
use chat_local::provision::{generate_signing_key, provision, ProvisionedStack};
use chat_local::proxy::{AwsProxy, Protocol};
use serde_json::Value;
use std::time::Duration;

/// How to start a [`TestStack`].
#[derive(Clone)]
pub struct TestStackOptions {
    /// Gateway limits (shorten `idle_timeout` / `max_duration` for timeout tests).
    pub limits: Limits,
    /// The functions; default: the real ones (`Registry::builtin()`).
    pub registry: Registry,
    /// CORS origins instead of the template's (default: the template's).
    pub cors_allow_origins: Option<Vec<String>>,
    /// Deliver the offline topic to the push notifier (default: true).
    pub sns_delivery: bool,
    /// A template instead of the repository's (e.g. with shorter delays in a
    /// function's environment); default: `infra/template.yaml`.
    pub template: Option<chat_local::template::Template>,
    /// Put an [`AwsProxy`] between the functions and DynamoDB Local (default: false):
    /// [`TestStack::dynamodb_proxy`] then records their calls and injects faults. The
    /// test's own [`TestStack::store`] goes direct.
    pub proxy_dynamodb: bool,
    /// The same between the functions and moto's SNS ([`TestStack::sns_proxy`]); the
    /// gateway's SNS-to-Lambda delivery goes direct.
    pub proxy_sns: bool,
    /// Run the functions as processes from this directory (the gateway's process
    /// mode; see [`crate::process::bin_dir`]) instead of in-process from `registry`.
    pub process_bin_dir: Option<std::path::PathBuf>,
}

impl Default for TestStackOptions {
    fn default() -> Self {
        TestStackOptions {
            limits: Limits::default(),
            registry: Registry::builtin(),
            cors_allow_origins: None,
            sns_delivery: true,
            template: None,
            proxy_dynamodb: false,
            proxy_sns: false,
            process_bin_dir: None,
        }
    }
}

impl TestStackOptions {
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.limits.idle_timeout = d;
        self
    }
    pub fn max_duration(mut self, d: Duration) -> Self {
        self.limits.max_duration = d;
        self
    }
    /// See [`TestStackOptions::proxy_dynamodb`].
    pub fn proxy_dynamodb(mut self) -> Self {
        self.proxy_dynamodb = true;
        self
    }
    /// See [`TestStackOptions::proxy_sns`].
    pub fn proxy_sns(mut self) -> Self {
        self.proxy_sns = true;
        self
    }
    /// See [`TestStackOptions::process_bin_dir`].
    pub fn processes(mut self, bin_dir: std::path::PathBuf) -> Self {
        self.process_bin_dir = Some(bin_dir);
        self
    }
}

/// A message a function published to the offline topic.
#[derive(Debug, Clone)]
pub struct OfflineMessage {
    pub subject: Option<String>,
    /// The `Message` text.
    pub message: String,
    /// `Message` parsed as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// `MessageAttributes` as SNS delivers them (`{name: {Type, Value}}`).
    pub attributes: Value,
}

/// A push notification moto recorded for a platform endpoint of this stack.
#[derive(Debug, Clone)]
pub struct PushMessage {
    pub endpoint_arn: String,
    /// `APNS` or `GCM`.
    pub platform: String,
    pub token: String,
    pub message_id: String,
    /// What was published (for `MessageStructure=json`, the per-platform JSON).
    pub message: String,
}

/// A running stack for one test (see the module documentation).
pub struct TestStack {
    http_url: String,
    ws_url: String,
    /// `None` in the remote mode.
    local: Option<Local>,
}

/// What only a stack started here has.
struct Local {
    gateway: Gateway,
    stack: ProvisionedStack,
    backend: BackendEndpoints,
    store: Store,
    env: Env,
    signing_key: String,
    sqs: aws_sdk_sqs::Client,
    observer_queue: String,
    seen: tokio::sync::Mutex<Vec<OfflineMessage>>,
    /// SNS message ids in `seen`: a message the observer queue delivers again (its
    /// receive's answer was lost, so it became visible again) is logged once.
    seen_ids: tokio::sync::Mutex<std::collections::HashSet<String>>,
    dynamodb_proxy: Option<AwsProxy>,
    sns_proxy: Option<AwsProxy>,
}

impl TestStack {
    /// A fresh stack with the real functions and API Gateway's limits (in the remote
    /// mode: the remote stack).
    pub async fn start() -> TestStack {
        if let Some(r) = crate::remote::remote() {
            return TestStack {
                http_url: r.http_url.clone(),
                ws_url: r.ws_url.clone(),
                local: None,
            };
        }
        Self::start_with(TestStackOptions::default()).await
    }

    /// A fresh local stack started with `opts` (a test calling this needs the
    /// backend: [`crate::needs_backend!`]).
    pub async fn start_with(opts: TestStackOptions) -> TestStack {
        if crate::remote::is_remote() {
            panic!("{NEEDS_BACKEND}");
        }
        match Self::try_start(opts).await {
            Ok(s) => s,
            Err(e) => panic!("starting the test stack: {e:#}"),
        }
    }

    pub async fn try_start(opts: TestStackOptions) -> anyhow::Result<TestStack> {
        let backend = endpoints();
        let template = opts.template.clone().unwrap_or_else(|| template().clone());
        let prefix = unique_prefix("ts");
        let stack = provision(&template, &backend, &prefix).await?;
        let signing_key = generate_signing_key();

        let aws = backend.aws_env();
        let sdk = chat_core::aws::sdk_config(&aws).await;
        let sqs = chat_local::provision::sqs_client(&sdk, &backend);
        let sns = chat_core::aws::sns(&sdk, &aws);
        let observer_queue = observe_topic(&sqs, &sns, &stack, &prefix).await?;

        // What the functions talk to: the backend, or proxies in front of it.
        let dynamodb_proxy = match opts.proxy_dynamodb {
            true => Some(AwsProxy::start(&backend.dynamodb, Protocol::DynamoDb).await?),
            false => None,
        };
        let sns_proxy = match opts.proxy_sns {
            true => Some(AwsProxy::start(&backend.moto, Protocol::Query).await?),
            false => None,
        };
        let functions_backend = BackendEndpoints {
            dynamodb: dynamodb_proxy
                .as_ref()
                .map_or(backend.dynamodb.clone(), |p| p.url().to_owned()),
            moto: sns_proxy
                .as_ref()
                .map_or(backend.moto.clone(), |p| p.url().to_owned()),
        };

        let mut cfg = config_for_stack(
            template.clone(),
            opts.registry,
            &stack,
            &signing_key,
            &functions_backend,
        );
        cfg.limits = opts.limits;
        if let Some(dir) = opts.process_bin_dir {
            cfg.functions = FunctionMode::Process(ProcessOptions::new(dir));
        }
        cfg.cors_allow_origins = opts.cors_allow_origins;
        // SNS-to-Lambda delivery is the platform's, not the functions': never proxied.
        cfg.sns = match opts.sns_delivery {
            true => config_for_stack(
                template.clone(),
                Registry::default(),
                &stack,
                &signing_key,
                &backend,
            )
            .sns
            .take(),
            false => None,
        };
        let gateway = Gateway::start(cfg).await?;
        let env = stack_envs(
            &template,
            &stack,
            &signing_key,
            &functions_backend,
            gateway.endpoints(),
        )?
        .remove("WsMessageFunction")
        .unwrap_or_default();
        let db = chat_core::aws::dynamodb(&sdk, &aws);
        let store = Store::new(db, stack.tables.clone());
        Ok(TestStack {
            http_url: gateway.http_url().to_owned(),
            ws_url: gateway.ws_url().to_owned(),
            local: Some(Local {
                gateway,
                stack,
                backend,
                store,
                env,
                signing_key,
                sqs,
                observer_queue,
                seen: Default::default(),
                seen_ids: Default::default(),
                dynamodb_proxy,
                sns_proxy,
            }),
        })
    }

    /// The local parts; panics in the remote mode.
    fn local(&self) -> &Local {
        self.local.as_ref().expect(NEEDS_BACKEND)
    }

    /// Whether this is a remote stack (only its public APIs are reachable).
    pub fn is_remote(&self) -> bool {
        self.local.is_none()
    }

    /// `ws://127.0.0.1:PORT/{stage}`: append `?token=...`.
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }
    /// `http://127.0.0.1:PORT/{stage}`: append `/auth/register` etc.
    pub fn http_url(&self) -> &str {
        &self.http_url
    }
    /// The management endpoint (`WEBSOCKET_MANAGEMENT_ENDPOINT`).
    pub fn management_endpoint(&self) -> &str {
        self.local().gateway.management_endpoint()
    }
    /// A store on this stack's tables.
    pub fn store(&self) -> &Store {
        &self.local().store
    }
    /// The environment the functions get (template globals resolved for this stack,
    /// AWS endpoints, credentials, the JWT key).
    pub fn env(&self) -> &Env {
        &self.local().env
    }
    /// The JWT signing key of this stack (to mint tokens in tests).
    pub fn signing_key(&self) -> &str {
        &self.local().signing_key
    }
    pub fn prefix(&self) -> &str {
        &self.local().stack.prefix
    }
    pub fn stack(&self) -> &ProvisionedStack {
        &self.local().stack
    }
    pub fn backend(&self) -> &BackendEndpoints {
        &self.local().backend
    }
    pub fn gateway(&self) -> &Gateway {
        &self.local().gateway
    }
    /// Fault injection for the management API (see `chat_local::gateway::faults`).
    pub fn faults(&self) -> &Faults {
        self.local().gateway.faults()
    }

    /// The proxy between the functions and DynamoDB Local (started with
    /// [`TestStackOptions::proxy_dynamodb`]).
    pub fn dynamodb_proxy(&self) -> &AwsProxy {
        self.local()
            .dynamodb_proxy
            .as_ref()
            .expect("start the stack with TestStackOptions::proxy_dynamodb()")
    }
    /// The proxy between the functions and moto's SNS (started with
    /// [`TestStackOptions::proxy_sns`]).
    pub fn sns_proxy(&self) -> &AwsProxy {
        self.local()
            .sns_proxy
            .as_ref()
            .expect("start the stack with TestStackOptions::proxy_sns()")
    }

    /// Receive what the observer queue holds (waiting up to `wait_secs`), add what is
    /// new to the log; returns how many messages the receive returned (new or not), or
    /// the receive's error.
    async fn receive_offline(&self, wait_secs: i32) -> Result<usize, String> {
        let received = self
            .local()
            .sqs
            .receive_message()
            .queue_url(&self.local().observer_queue)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        let messages = received.messages.unwrap_or_default();
        let count = messages.len();
        for m in messages {
            if let Some(body) = m.body.as_deref() {
                if let Ok(n) = chat_local::gateway::events::sns_from_envelope(body) {
                    if self.local().seen_ids.lock().await.insert(n.message_id) {
                        self.local().seen.lock().await.push(OfflineMessage {
                            subject: n.subject,
                            json: serde_json::from_str(&n.message).unwrap_or(Value::Null),
                            message: n.message,
                            attributes: Value::Object(n.message_attributes),
                        });
                    }
                }
            }
            if let Some(r) = m.receipt_handle {
                let _ = self
                    .local()
                    .sqs
                    .delete_message()
                    .queue_url(&self.local().observer_queue)
                    .receipt_handle(r)
                    .send()
                    .await;
            }
        }
        Ok(count)
    }

    /// Every message published to the offline topic since the stack started, once
    /// there are at least `n` (or `timeout` passed: then those seen so far). A failed
    /// receive (moto slow under load) is retried until the deadline.
    pub async fn offline_messages(&self, n: usize, timeout: Duration) -> Vec<OfflineMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.local().seen.lock().await.len() >= n {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Long poll, below the SDK's 5 s attempt timeout.
            let _ = self
                .receive_offline(left.as_secs().clamp(1, 4) as i32)
                .await;
        }
        self.local().seen.lock().await.clone()
    }

    /// Every message published to the offline topic so far (SNS delivers to the
    /// observer queue synchronously with the publish, so nothing is in flight): reads
    /// until a receive comes back empty. A failed receive is retried (it used to end
    /// the reading, so a slow moto under load made messages look unpublished); a
    /// receive whose answer was lost hides its messages for the queue's visibility
    /// timeout ([`OBSERVER_VISIBILITY_SECS`]): `offline_messages(n, ..)` waits them
    /// out when the test knows how many to expect.
    pub async fn offline_messages_so_far(&self) -> Vec<OfflineMessage> {
        let mut failures = 0;
        loop {
            match self.receive_offline(0).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    assert!(failures < 5, "reading the offline observer queue: {e}");
                }
            }
        }
        self.local().seen.lock().await.clone()
    }

    /// Drop a connection without `$disconnect` (as if API Gateway lost it): the
    /// socket closes abruptly, `@connections` answers 410, the store keeps its row.
    pub async fn kill_connection(&self, connection_id: &str) {
        assert!(
            self.local().gateway.kill_connection(connection_id),
            "connection {connection_id} is not open"
        );
    }

    /// Every push notification moto recorded for this stack's platform endpoints.
    pub async fn push_messages(&self) -> Vec<PushMessage> {
        let url = format!("{}/moto-api/data.json", self.local().backend.moto);
        let data: Value = match reqwest::get(&url).await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => panic!("reading {url}: {e}"),
        };
        let apps = [
            (&self.local().stack.platform_applications.apns, "APNS"),
            (&self.local().stack.platform_applications.fcm, "GCM"),
        ];
        let mut out = Vec::new();
        for ep in data["sns"]["PlatformEndpoint"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let arn = ep["arn"].as_str().unwrap_or_default();
            // Endpoint ARNs embed the application: .../endpoint/APNS/{app name}/{id}
            let Some((_, platform)) = apps.iter().find(|(app, _)| {
                let name = app.rsplit('/').next().unwrap_or_default();
                arn.contains(&format!("/{name}/"))
            }) else {
                continue;
            };
            for (id, msg) in ep["messages"].as_object().into_iter().flatten() {
                out.push(PushMessage {
                    endpoint_arn: arn.to_owned(),
                    platform: (*platform).to_owned(),
                    token: ep["token"].as_str().unwrap_or_default().to_owned(),
                    message_id: id.clone(),
                    message: msg.as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        out
    }

    /// Wait (up to `timeout`) until moto recorded at least `n` push messages for this
    /// stack; returns them (possibly fewer on timeout).
    pub async fn wait_push_messages(&self, n: usize, timeout: Duration) -> Vec<PushMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msgs = self.push_messages().await;
            if msgs.len() >= n || tokio::time::Instant::now() >= deadline {
                return msgs;
            }
            // moto has no notification for recorded pushes: poll its state.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Close every connection (firing `$disconnect`) and stop the gateway (nothing in
    /// the remote mode).
    pub async fn shutdown(self) {
        if let Some(local) = self.local {
            local.gateway.shutdown().await;
        }
    }
}

const NEEDS_BACKEND: &str = "this test needs backend access (tables, emulators or the \
     gateway's internals), which a remote stack does not give: start it with \
     `chat_tests::needs_backend!();`";

/// How long a message the observer queue handed out stays hidden: short, so a receive
/// whose answer was lost (an SDK attempt timeout while moto is slow) does not hide its
/// messages for SQS's default 30 s; a message seen twice is logged once (by SNS id).
pub const OBSERVER_VISIBILITY_SECS: u32 = 3;

/// An SQS queue subscribed to the offline topic, for assertions.
async fn observe_topic(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    stack: &ProvisionedStack,
    prefix: &str,
) -> anyhow::Result<String> {
    let topic = stack
        .topic_arn("OfflineMessageTopic")
        .ok_or_else(|| anyhow::anyhow!("the stack has no OfflineMessageTopic"))?;
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-offline-observer"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            OBSERVER_VISIBILITY_SECS.to_string(),
        )
        .send()
        .await?
        .queue_url
        .ok_or_else(|| anyhow::anyhow!("no queue URL"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .ok_or_else(|| anyhow::anyhow!("no queue ARN"))?;
    sns.subscribe()
        .topic_arn(topic)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await?;
    Ok(url)
}
