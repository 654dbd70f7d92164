//! An AWS endpoint proxy for tests and benchmarks: put it between the functions and
//! DynamoDB Local (or moto's SNS) to see and to break what crosses the wire. It forwards
//! every request unchanged and records one [`Call`] per request (operation, tables,
//! start and end, status, and with [`AwsProxy::record_capacity`] the DynamoDB capacity
//! each call consumed, by asking for `ReturnConsumedCapacity: TOTAL`). Fault rules,
//! switchable at run time like the management API's (`gateway::faults`), make the
//! endpoint unreachable (the connection is closed without an answer, as when the
//! service is down or the network is cut), slow, or answer an AWS error such as
//! DynamoDB's `ProvisionedThroughputExceededException` in the service's own wire format,
//! so the SDK's retry and error handling run exactly as they would against AWS; or
//! forward a request at once and hold its answer ([`ProxyFaultAction::DelayAnswer`]:
//! the write commits, the caller times out). Rules are switched from Rust
//! ([`AwsProxy::add_fault`]) or over HTTP on the proxy's own port ([`ADMIN_PATH`],
//! `/_local/faults`: GET lists, POST adds a rule as JSON, DELETE clears), which is how
//! `chat-local up --aws-faults` users switch them.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The wire format of the service behind the proxy, for operation names and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.0 as DynamoDB speaks it: `X-Amz-Target: DynamoDB_20120810.PutItem`,
    /// errors as `{"__type": "com.amazonaws.dynamodb.v20120810#Name", "message": ..}`.
    DynamoDb,
    /// AWS Query as SNS speaks it: `Action=Publish` in the form body, XML errors.
    Query,
}

/// What a fault rule does instead of (or before) forwarding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ProxyFaultAction {
    /// Close the connection without answering (service down, network cut).
    Unreachable,
    /// Answer this AWS error: e.g. 400 `ProvisionedThroughputExceededException`
    /// or `ThrottlingException`, 500 `InternalServerError`, 503 `ServiceUnavailable`.
    Error { status: u16, code: String },
    /// Wait, then forward.
    Delay { ms: u64 },
    /// Forward at once (the service does the work: a write commits), then hold the
    /// answer this long: a caller that gives up or is killed meanwhile never learns
    /// that its write succeeded.
    DelayAnswer { ms: u64 },
}

impl ProxyFaultAction {
    /// DynamoDB's throttling answer (the SDK retries it with backoff).
    pub fn throttle() -> Self {
        ProxyFaultAction::Error {
            status: 400,
            code: "ProvisionedThroughputExceededException".into(),
        }
    }
}

/// One rule; the first matching rule applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyFault {
    /// Only this operation (`PutItem`, `TransactWriteItems`, `Publish`; any if absent).
    #[serde(default)]
    pub operation: Option<String>,
    /// Apply to this fraction of matching calls (0.0-1.0; all if absent).
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Apply this many times, then remove the rule (forever if absent).
    #[serde(default)]
    pub times: Option<u32>,
    pub action: ProxyFaultAction,
}

impl ProxyFault {
    pub fn new(action: ProxyFaultAction) -> Self {
        ProxyFault {
            operation: None,
            fraction: None,
            times: None,
            action,
        }
    }
    pub fn for_operation(mut self, op: impl Into<String>) -> Self {
        self.operation = Some(op.into());
        self
    }
    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = Some(f);
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
}

/// One request that reached the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// `PutItem`, `Query`, `Publish`, ...
    pub operation: String,
    /// Tables the request names (DynamoDB), in the order they appear.
    pub tables: Vec<String>,
    pub started: Instant,
    pub finished: Instant,
    /// The HTTP status answered (0 when the proxy closed the connection).
    pub status: u16,
    /// The fault applied, if any.
    pub fault: Option<ProxyFaultAction>,
    /// Capacity units DynamoDB reported, summed over tables (with
    /// [`AwsProxy::record_capacity`]; `None` when the answer carried none).
    pub capacity_units: Option<f64>,
    pub request_bytes: usize,
    pub response_bytes: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<ProxyFault>,
    calls: Vec<Call>,
    recording: bool,
    capacity: bool,
    /// Requests received so far, by operation (always counted, recording or not).
    started: std::collections::HashMap<String, u64>,
}

struct Shared {
    upstream: String,
    protocol: Protocol,
    client: reqwest::Client,
    state: Mutex<State>,
    /// Signalled at every request received.
    arrived: tokio::sync::Notify,
}

/// A running proxy (see the module documentation). Dropping it stops it.
pub struct AwsProxy {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AwsProxy {
    /// Listen on a free loopback port and forward to `upstream` (e.g. DynamoDB Local's
    /// `http://127.0.0.1:8000`).
    pub async fn start(upstream: &str, protocol: Protocol) -> Result<AwsProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            protocol,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            state: Mutex::new(State::default()),
            arrived: tokio::sync::Notify::new(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { s.handle(req).await }
                    });
                    // An `Err` from the service closes the connection unanswered.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(AwsProxy { url, shared, task })
    }

    /// `http://127.0.0.1:PORT`: give this to clients instead of the upstream.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn add_fault(&self, rule: ProxyFault) {
        self.shared.lock().rules.push(rule);
    }
    pub fn clear_faults(&self) {
        self.shared.lock().rules.clear();
    }
    pub fn faults(&self) -> Vec<ProxyFault> {
        self.shared.lock().rules.clone()
    }

    /// Start (or stop) keeping a [`Call`] per request.
    pub fn record(&self, on: bool) {
        self.shared.lock().recording = on;
    }
    /// Record, and ask DynamoDB for the capacity each call consumed
    /// (`ReturnConsumedCapacity: TOTAL` where the request does not ask already).
    pub fn record_capacity(&self, on: bool) {
        let mut st = self.shared.lock();
        st.recording |= on;
        st.capacity = on;
    }
    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }
    /// The calls recorded so far, forgetting them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.shared.lock().calls)
    }

    /// How many `operation` requests have arrived since the proxy started (counted
    /// when they arrive, before any fault or forwarding; recording need not be on).
    pub fn requests(&self, operation: &str) -> u64 {
        self.shared
            .lock()
            .started
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Wait until at least `n` `operation` requests have arrived (see
    /// [`Self::requests`]), or `timeout` passes; returns whether they did. Lets a test
    /// act while a delayed request is in flight.
    pub async fn wait_for_requests(&self, operation: &str, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            if self.requests(operation) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests(operation) >= n;
            }
        }
    }
}

/// Why the proxy closed a connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("fault injected: endpoint unreachable")]
struct Unreachable;

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decide(&self, operation: &str) -> Option<ProxyFaultAction> {
        let mut st = self.lock();
        let mut rng = rand::thread_rng();
        let i = st.rules.iter().position(|r| {
            r.operation.as_deref().is_none_or(|o| o == operation)
                && r.fraction.is_none_or(|f| rng.gen::<f64>() < f)
        })?;
        let action = st.rules[i].action.clone();
        if let Some(n) = st.rules[i].times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.rules.remove(i);
            }
        }
        Some(action)
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Unreachable> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Err(Unreachable),
        };
        if parts.uri.path() == ADMIN_PATH {
            return Ok(self.admin(&parts.method, &body));
        }
        let operation = operation_of(self.protocol, &parts.headers, &body);
        let (recording, capacity) = {
            let st = self.lock();
            (st.recording, st.capacity)
        };
        let mut json = if self.protocol == Protocol::DynamoDb {
            serde_json::from_slice::<Value>(&body).ok()
        } else {
            None
        };
        let tables = json.as_ref().map(tables_of).unwrap_or_default();
        let fault = self.decide(&operation);
        *self.lock().started.entry(operation.clone()).or_default() += 1;
        self.arrived.notify_waiters();
        let record = |status: u16, capacity_units: Option<f64>, response_bytes: usize| {
            if recording {
                self.lock().calls.push(Call {
                    operation: operation.clone(),
                    tables: tables.clone(),
                    started,
                    finished: Instant::now(),
                    status,
                    fault: fault.clone(),
                    capacity_units,
                    request_bytes: body.len(),
                    response_bytes,
                });
            }
        };
        match &fault {
            Some(ProxyFaultAction::Unreachable) => {
                record(0, None, 0);
                return Err(Unreachable);
            }
            Some(ProxyFaultAction::Error { status, code }) => {
                let resp = error_response(self.protocol, *status, code);
                record(
                    *status,
                    None,
                    resp.body().size_hint().exact().unwrap_or(0) as usize,
                );
                return Ok(resp);
            }
            Some(ProxyFaultAction::Delay { ms }) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await
            }
            Some(ProxyFaultAction::DelayAnswer { .. }) | None => {}
        }

        let mut out_body = body.clone();
        if capacity {
            if let Some(Value::Object(m)) = json.as_mut() {
                if !m.contains_key("ReturnConsumedCapacity") {
                    m.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
                    out_body = Bytes::from(serde_json::to_vec(m).unwrap_or_default());
                }
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut fwd = self
            .client
            .request(parts.method.clone(), format!("{}{}", self.upstream, path));
        for (name, value) in &parts.headers {
            if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                fwd = fwd.header(name, value);
            }
        }
        let upstream = match fwd.body(out_body).send().await {
            Ok(r) => r,
            Err(_) => {
                record(0, None, 0);
                return Err(Unreachable);
            }
        };
        let status = upstream.status();
        let headers = upstream.headers().clone();
        let bytes = match upstream.bytes().await {
            Ok(b) => b,
            Err(_) => {
                record(0, None, 0);
                return Err(Unreachable);
            }
        };
        let units = if capacity {
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| capacity_of(&v))
        } else {
            None
        };
        record(status.as_u16(), units, bytes.len());
        if let Some(ProxyFaultAction::DelayAnswer { ms }) = &fault {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
        }
        let mut resp = Response::new(Full::new(bytes));
        *resp.status_mut() = status;
        for (name, value) in &headers {
            if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                resp.headers_mut().append(name, value.clone());
            }
        }
        Ok(resp)
    }
}

/// The proxy's own fault switch, on its port: `GET` lists the rules, `POST` adds one
/// ([`ProxyFault`] as JSON), `DELETE` clears them. DynamoDB and SNS requests never use
/// this path (they `POST /`).
pub const ADMIN_PATH: &str = "/_local/faults";

impl Shared {
    fn admin(&self, method: &http::Method, body: &[u8]) -> Response<Full<Bytes>> {
        let answer = |status: u16, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = http::StatusCode::from_u16(status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        };
        match *method {
            http::Method::GET => {
                let rules = self.lock().rules.clone();
                answer(200, serde_json::to_string(&rules).unwrap_or_default())
            }
            http::Method::POST => match serde_json::from_slice::<ProxyFault>(body) {
                Ok(rule) => {
                    self.lock().rules.push(rule);
                    answer(204, String::new())
                }
                Err(e) => answer(
                    400,
                    serde_json::json!({"error": {"code": "invalid_fault", "message": e.to_string()}})
                        .to_string(),
                ),
            },
            http::Method::DELETE => {
                self.lock().rules.clear();
                answer(204, String::new())
            }
            _ => answer(405, String::new()),
        }
    }
}

/// The operation a request asks for.
fn operation_of(protocol: Protocol, headers: &http::HeaderMap, body: &[u8]) -> String {
    match protocol {
        Protocol::DynamoDb => headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned(),
        Protocol::Query => std::str::from_utf8(body)
            .ok()
            .and_then(|form| {
                form.split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// The tables a DynamoDB request names.
fn tables_of(req: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        if !out.iter().any(|x| x == t) {
            out.push(t.to_owned());
        }
    };
    if let Some(t) = req["TableName"].as_str() {
        push(t);
    }
    if let Some(items) = req["RequestItems"].as_object() {
        for t in items.keys() {
            push(t);
        }
    }
    for list in ["TransactItems"] {
        for item in req[list].as_array().into_iter().flatten() {
            if let Some(op) = item.as_object().and_then(|o| o.values().next()) {
                if let Some(t) = op["TableName"].as_str() {
                    push(t);
                }
            }
        }
    }
    out
}

/// Total `CapacityUnits` of a DynamoDB answer (`ConsumedCapacity` is an object for
/// single-item calls and a list for batches and transactions).
fn capacity_of(resp: &Value) -> Option<f64> {
    match &resp["ConsumedCapacity"] {
        Value::Object(o) => o.get("CapacityUnits").and_then(Value::as_f64),
        Value::Array(a) if !a.is_empty() => {
            Some(a.iter().filter_map(|c| c["CapacityUnits"].as_f64()).sum())
        }
        _ => None,
    }
}

/// An AWS error answer in the service's wire format.
fn error_response(protocol: Protocol, status: u16, code: &str) -> Response<Full<Bytes>> {
    let message = format!("{code} (injected by the local fault proxy)");
    let (content_type, body) = match protocol {
        Protocol::DynamoDb => (
            "application/x-amz-json-1.0",
            serde_json::json!({
                "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                "message": message,
            })
            .to_string(),
        ),
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
                if status < 500 { "Sender" } else { "Receiver" }
            ),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        "x-amzn-requestid",
        http::HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operations_and_tables() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amz-target",
            "DynamoDB_20120810.TransactWriteItems".parse().unwrap(),
        );
        assert_eq!(
            operation_of(Protocol::DynamoDb, &h, b""),
            "TransactWriteItems"
        );
        assert_eq!(
            operation_of(Protocol::Query, &h, b"Action=Publish&Version=2010-03-31"),
            "Publish"
        );
        let req = serde_json::json!({"TransactItems": [
            {"Update": {"TableName": "Chats"}},
            {"Put": {"TableName": "Messages"}},
            {"ConditionCheck": {"TableName": "Chats"}},
        ]});
        assert_eq!(tables_of(&req), ["Chats", "Messages"]);
        let resp = serde_json::json!({"ConsumedCapacity": [
            {"TableName": "Chats", "CapacityUnits": 2.0},
            {"TableName": "Messages", "CapacityUnits": 4.0},
        ]});
        assert_eq!(capacity_of(&resp), Some(6.0));
    }
}
