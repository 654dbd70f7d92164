//! The API Gateway Management API (`@connections`) under the WebSocket stage path, as
//! `aws-sdk-apigatewaymanagement` calls it with endpoint `http://127.0.0.1:PORT/{stage}`:
//! `POST` sends data to a connection, `GET` describes it, `DELETE` closes it (which
//! fires `$disconnect`). Unknown or closed connections get 410 `GoneException`; data
//! above 128 KB gets 413 `PayloadTooLargeException`. Errors carry the
//! `x-amzn-ErrorType` header the SDK reads. Fault rules ([`super::faults`]) apply first.

use super::faults::{FaultAction, FaultRule};
use super::recorder::ManagementCall;
use super::websocket::Out;
use super::Shared;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{TimeZone, Utc};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut r = (status, Json(json!({"__type": kind, "message": message}))).into_response();
    if let Ok(v) = HeaderValue::from_str(kind) {
        r.headers_mut().insert("x-amzn-ErrorType", v);
    }
    r
}

fn gone(id: &str) -> Response {
    aws_error(
        StatusCode::GONE,
        "GoneException",
        &format!("Connection {id} is gone"),
    )
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Apply the call's fault; `Some(response)` short-circuits the call.
async fn apply(fault: Option<FaultAction>, id: &str) -> Option<Response> {
    match fault? {
        FaultAction::Gone => Some(gone(id)),
        FaultAction::Error => Some(aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            "injected fault",
        )),
        FaultAction::Delay { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            None
        }
    }
}

/// `/{stage}/@connections/{id}` (the id arrives percent-decoded); recorded in
/// [`super::recorder`] when that is on.
pub(crate) async fn connection(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let request_bytes = body.len();
    let fault = shared.faults.decide(&id, method.as_str());
    let response = serve(&shared, &id, &method, body, fault.clone()).await;
    shared.management_calls.push(|| ManagementCall {
        method: method.to_string(),
        connection_id: id,
        started,
        finished: std::time::Instant::now(),
        status: response.status().as_u16(),
        request_bytes,
        fault,
    });
    response
}

async fn serve(
    shared: &Shared,
    id: &str,
    method: &Method,
    body: Bytes,
    fault: Option<FaultAction>,
) -> Response {
    if let Some(r) = apply(fault, id).await {
        return r;
    }
    match *method {
        Method::POST => {
            if body.len() > shared.limits.message_bytes {
                return aws_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLargeException",
                    "Message too long",
                );
            }
            match shared.get(id) {
                Some(c) if c.tx.send(Out::Data(body.to_vec())).is_ok() => {
                    StatusCode::OK.into_response()
                }
                _ => gone(id),
            }
        }
        Method::GET => match shared.get(id) {
            Some(c) => {
                let mut identity = json!({"sourceIp": c.ctx.source_ip});
                if let Some(ua) = &c.ctx.user_agent {
                    identity["userAgent"] = json!(ua);
                }
                Json(json!({
                    "connectedAt": iso(c.ctx.connected_at),
                    "lastActiveAt": iso(c.last_active_at.load(Ordering::Relaxed)),
                    "identity": identity,
                }))
                .into_response()
            }
            None => gone(id),
        },
        Method::DELETE => match shared.remove(id) {
            Some(c) => {
                let _ = c.tx.send(Out::Close {
                    code: 1000,
                    reason: "",
                    event_reason: "Connection deleted through the @connections API",
                });
                StatusCode::NO_CONTENT.into_response()
            }
            None => gone(id),
        },
        _ => aws_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "use POST, GET or DELETE",
        ),
    }
}

/// `GET /_local/faults`: the current rules.
pub(crate) async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.faults.list()).into_response()
}

/// `POST /_local/faults` with a [`FaultRule`] as JSON.
pub(crate) async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            shared.faults.add(rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid_fault", "message": e.to_string()}})),
        )
            .into_response(),
    }
}

/// `DELETE /_local/faults`: remove every rule.
pub(crate) async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    shared.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}
