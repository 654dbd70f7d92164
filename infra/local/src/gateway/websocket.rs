//! The WebSocket API: `$connect` on the upgrade request (a non-2xx answer rejects the
//! handshake with that status), one task per connection that enforces API Gateway's
//! limits (32 KB frames, 128 KB messages -> close 1009; a binary frame -> close 1003;
//! idle timeout; maximum duration), routes each message by the route selection expression (falling back to
//! `$default`), and fires `$disconnect` however the connection ends: client close,
//! `DELETE @connections/{id}`, idle timeout, maximum duration or gateway shutdown.

use super::events::{self, WsContext};
use super::Shared;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The WebSocket API's routes as the gateway serves them.
#[derive(Debug, Clone)]
pub struct WsRoutes {
    /// The selection expression as written (`$request.body.action`).
    pub expression: String,
    /// JSON path into the message body (`["action"]`).
    pub selection_path: Vec<String>,
    /// Route key -> function logical id.
    pub routes: BTreeMap<String, String>,
    /// Routes with a route response (two-way): the function's `body` goes back to the
    /// client as a frame.
    pub two_way: BTreeSet<String>,
}

impl WsRoutes {
    /// Parse `$request.body.X.Y` (or `${request.body.X.Y}`).
    pub fn selection_path(expression: &str) -> anyhow::Result<Vec<String>> {
        let e = expression.trim();
        let e = e
            .strip_prefix("${")
            .and_then(|x| x.strip_suffix('}'))
            .map(|x| format!("${x}"))
            .unwrap_or_else(|| e.to_owned());
        let path = e.strip_prefix("$request.body.").ok_or_else(|| {
            anyhow::anyhow!(
                "route selection expression {expression:?} is not supported locally (only $request.body.X)"
            )
        })?;
        Ok(path.split('.').map(str::to_owned).collect())
    }

    /// The route key for a message: the selected value if it names a route, else
    /// `$default` (also for non-JSON messages). `None` if there is no `$default`.
    pub fn select(&self, body: &[u8]) -> Option<&str> {
        let selected = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let mut cur = &v;
            for p in &self.selection_path {
                cur = cur.get(p)?;
            }
            match cur {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        });
        match selected {
            Some(key) if !key.starts_with('$') && self.routes.contains_key(&key) => {
                self.routes.get_key_value(&key).map(|(k, _)| k.as_str())
            }
            _ => self
                .routes
                .get_key_value("$default")
                .map(|(k, _)| k.as_str()),
        }
    }
}

/// What the connection task is told to do from outside.
pub(crate) enum Out {
    Data(Vec<u8>),
    Close {
        code: u16,
        reason: &'static str,
        event_reason: &'static str,
    },
    /// Drop the connection without `$disconnect` (an API Gateway that lost it).
    Kill,
}

/// One live connection.
pub(crate) struct Conn {
    pub ctx: WsContext,
    pub last_active_at: AtomicI64,
    pub tx: mpsc::UnboundedSender<Out>,
}

/// `GET /{stage}`: the upgrade request.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if *shared.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "gateway shutting down").into_response();
    }
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let ctx = WsContext {
        api_id: shared.api_id.clone(),
        stage: shared.stage.clone(),
        domain_name: shared.ws_domain.clone(),
        connection_id: events::connection_id(),
        connected_at: events::now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let mut protocol = None;
    if let Some(function) = shared.ws.routes.get("$connect") {
        let event = events::ws_connect(&ctx, &header_pairs, query.as_deref());
        match shared.invoker.invoke(function, "$connect", event).await {
            Err(_) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"message": "Internal server error"})),
                )
                    .into_response()
            }
            Ok(resp) => {
                let status = resp
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .unwrap_or(200) as u16;
                if !(200..300).contains(&status) {
                    let status =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let body = resp
                        .get("body")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    return (status, body).into_response();
                }
                protocol = resp
                    .get("headers")
                    .and_then(Value::as_object)
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
                    })
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_owned);
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        ctx: ctx.clone(),
        last_active_at: AtomicI64::new(ctx.connected_at),
        tx,
    });
    shared.insert(conn.clone());
    let guard = super::Tracker::enter_shared(&shared);
    let mut ws = ws
        .max_frame_size(shared.limits.frame_bytes)
        .max_message_size(shared.limits.message_bytes);
    if let Some(p) = protocol {
        ws = ws.protocols([p]);
    }
    let failed = shared.clone();
    let failed_conn = conn.clone();
    ws.on_failed_upgrade(move |_| {
        // The handshake never completed: the connection existed for $connect only.
        tokio::spawn(async move {
            failed.remove(&failed_conn.ctx.connection_id);
            disconnect(&failed, &failed_conn, 1006, "Upgrade failed").await;
        });
    })
    .on_upgrade(move |socket| async move {
        run(shared, conn, socket, rx).await;
        drop(guard);
    })
}

async fn disconnect(shared: &Shared, conn: &Conn, code: u16, reason: &str) {
    if let Some(function) = shared.ws.routes.get("$disconnect") {
        let event = events::ws_disconnect(&conn.ctx, code, reason);
        let _ = shared.invoker.invoke(function, "$disconnect", event).await;
    }
}

fn is_capacity(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.to_ascii_lowercase().contains("too long")
}

/// The life of one connection.
async fn run(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    let limits = shared.limits.clone();
    let mut shutdown = shared.shutdown.clone();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let max = tokio::time::sleep(limits.max_duration);
    tokio::pin!(max);
    // Messages are handled one after another, off the socket loop, so a slow function
    // does not hold up pings, closes or timeouts.
    let (work_tx, mut work_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let worker = {
        let shared = shared.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Some(body) = work_rx.recv().await {
                dispatch(&shared, &conn, &body).await;
            }
        })
    };
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    let mut silent = false;
    let (code, reason): (u16, String) = loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                None => break (1006, "Client-side close frame status not set".into()),
                Some(Err(e)) if is_capacity(&e) => {
                    let _ = socket.send(close(1009, "Message too big")).await;
                    break (1009, "Message too big".into());
                }
                Some(Err(_)) => break (1006, "Client-side close frame status not set".into()),
                Some(Ok(Message::Close(frame))) => {
                    // Let the library answer the close handshake.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), socket.recv()).await;
                    break match frame {
                        Some(f) => (f.code, "Client-side close frame status set".into()),
                        None => (1005, "Client-side close frame status not set".into()),
                    };
                }
                Some(Ok(Message::Text(t))) => {
                    idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                    conn.last_active_at.store(events::now_ms(), Ordering::Relaxed);
                    let _ = work_tx.send(t.as_bytes().to_vec());
                }
                Some(Ok(Message::Binary(_))) => {
                    // API Gateway does not take binary frames from clients: it closes
                    // the connection with 1003 ("Binary media types for WebSocket APIs").
                    let _ = socket.send(close(1003, "Binary frames are not supported")).await;
                    break (1003, "Binary frames are not supported".into());
                }
                Some(Ok(_)) => {} // ping/pong: answered by the library, not activity
            },
            out = rx.recv() => match out {
                Some(Out::Data(data)) => {
                    let msg = match String::from_utf8(data) {
                        Ok(text) => Message::Text(text.into()),
                        Err(e) => Message::Binary(e.into_bytes().into()),
                    };
                    if socket.send(msg).await.is_err() {
                        break (1006, "Client-side close frame status not set".into());
                    }
                }
                Some(Out::Kill) => {
                    silent = true;
                    break (1006, "killed".into());
                }
                Some(Out::Close { code, reason, event_reason }) => {
                    let _ = socket.send(close(code, reason)).await;
                    break (code, event_reason.into());
                }
                None => break (1001, "Going away".into()),
            },
            _ = &mut idle => {
                let _ = socket.send(close(1001, "Going away")).await;
                break (1001, "Connection idle timeout".into());
            }
            _ = &mut max => {
                let _ = socket.send(close(1001, "Going away")).await;
                break (1001, "Connection maximum duration reached".into());
            }
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = socket.send(close(1001, "Going away")).await;
                break (1001, "Gateway shutting down".into());
            }
        }
    };
    shared.remove(&conn.ctx.connection_id);
    drop(work_tx);
    drop(socket);
    // Messages already received are still handled (as in AWS, $disconnect may overtake them).
    let _ = worker.await;
    if !silent {
        disconnect(&shared, &conn, code, &reason).await;
    }
}

/// Route one message and invoke its function.
async fn dispatch(shared: &Shared, conn: &Conn, body: &[u8]) {
    let error_frame = |message: &str| {
        json!({
            "message": message,
            "connectionId": conn.ctx.connection_id,
            "requestId": events::request_id(),
        })
        .to_string()
        .into_bytes()
    };
    let Some(route) = shared.ws.select(body) else {
        let _ = conn.tx.send(Out::Data(error_frame("Forbidden")));
        return;
    };
    let Some(function) = shared.ws.routes.get(route) else {
        return;
    };
    let event = events::ws_message(&conn.ctx, route, body, false);
    match shared.invoker.invoke(function, route, event).await {
        Err(_) => {
            let _ = conn
                .tx
                .send(Out::Data(error_frame("Internal server error")));
        }
        Ok(resp) if shared.ws.two_way.contains(route) => {
            let body = match resp.get("body") {
                Some(Value::String(s)) => {
                    let b64 = resp
                        .get("isBase64Encoded")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if b64 {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .unwrap_or_else(|_| s.clone().into_bytes())
                    } else {
                        s.clone().into_bytes()
                    }
                }
                Some(Value::Null) | None => return,
                Some(other) => other.to_string().into_bytes(),
            };
            let _ = conn.tx.send(Out::Data(body));
        }
        Ok(_) => {}
    }
}
