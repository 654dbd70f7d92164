//! The WebSocket test client: one connection to a stack's WebSocket API that sends JSON
//! frames (fragmented into 30 KB frames as browsers do above that size), reads frames
//! with a time-out, keeps frames read while looking for another kind, and has a
//! `ping`/`pong` barrier ("every frame sent before this point has arrived"). `ws://`
//! and `wss://` URLs both work. Every frame it sends (that the server's parser accepts)
//! and receives is checked against `docs/asyncapi.yaml` ([`crate::asyncapi`]).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a read waits for the next frame.
pub const WAIT: Duration = Duration::from_secs(20);

/// A raw WebSocket connection (tokio-tungstenite).
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One client connection (see the module documentation).
pub struct Client {
    /// The raw connection, for tests that send frames the client would not.
    pub ws: Ws,
    /// Frames read while looking for another kind.
    buffered: VecDeque<Value>,
    pings: u64,
}

impl Client {
    /// Connect to `url` (with `?token=` or not), offering `subprotocol` if given.
    pub async fn open(
        url: &str,
        subprotocol: Option<&str>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request()?;
        if let Some(p) = subprotocol {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                p.parse().map_err(|_| {
                    tokio_tungstenite::tungstenite::Error::Url(
                        tokio_tungstenite::tungstenite::error::UrlError::UnableToConnect(format!(
                            "not a header value: {p:?}"
                        )),
                    )
                })?,
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client::from(ws))
    }

    /// Send one JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await
    }

    /// Send text, fragmented into 30 KB frames as a browser would (API Gateway refuses
    /// frames over 32 KB).
    pub async fn send_text(&mut self, text: &str) {
        crate::asyncapi::check_frame(crate::asyncapi::Direction::ToServer, text);
        let bytes = text.as_bytes();
        if bytes.len() <= 30 * 1024 {
            self.ws
                .send(WsMessage::Text(text.to_owned().into()))
                .await
                .expect("sending a frame");
            return;
        }
        let chunks: Vec<&[u8]> = bytes.chunks(30 * 1024).collect();
        let last = chunks.len() - 1;
        for (i, c) in chunks.into_iter().enumerate() {
            let op = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            self.ws
                .send(WsMessage::Frame(Frame::message(c.to_vec(), op, i == last)))
                .await
                .expect("sending a frame");
        }
    }

    /// The next frame (buffered ones first).
    pub async fn next(&mut self) -> Value {
        if let Some(v) = self.buffered.pop_front() {
            return v;
        }
        self.read().await
    }

    /// The next frame from the connection (not the buffer); panics on a time-out or
    /// a close.
    pub async fn read(&mut self) -> Value {
        self.read_within(WAIT).await
    }

    /// [`Client::read`] with another time-out.
    pub async fn read_within(&mut self, wait: Duration) -> Value {
        loop {
            let msg = tokio::time::timeout(wait, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("websocket error");
            match msg {
                WsMessage::Text(t) => {
                    crate::asyncapi::check_frame(crate::asyncapi::Direction::ToClient, &t);
                    return serde_json::from_str(&t).expect("JSON frame");
                }
                WsMessage::Close(c) => panic!("closed by the server: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame matching `pred`; others are kept for later.
    pub async fn next_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i).expect("the position just found");
        }
        loop {
            let v = self.read().await;
            if pred(&v) {
                return v;
            }
            self.buffered.push_back(v);
        }
    }

    /// The next frame of type `ty`; others are kept for later.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        self.next_where(|v| v["type"] == ty).await
    }

    /// API Gateway's answer when the route's integration failed.
    pub async fn next_integration_error(&mut self) -> Value {
        self.next_where(|v| v["type"].is_null() && v["message"].is_string())
            .await
    }

    /// Read frames (buffered ones first) into `log` until it holds `n` `message`
    /// frames (each read waits with a time-out).
    pub async fn collect_messages(&mut self, log: &mut Vec<Value>, n: usize) {
        log.extend(self.buffered.drain(..));
        while of_type(log, "message").len() < n {
            let v = self.read().await;
            log.push(v);
        }
    }

    /// Ping and return every frame that arrived before the pong.
    pub async fn barrier(&mut self) -> Vec<Value> {
        self.barrier_within(WAIT).await
    }

    /// [`Client::barrier`], waiting up to `wait` for each frame: for a barrier queued
    /// behind work that may take longer than [`WAIT`] on a loaded machine (the gateway
    /// handles a connection's frames one after another, so the pong waits for them).
    pub async fn barrier_within(&mut self, wait: Duration) -> Vec<Value> {
        self.pings += 1;
        let id = format!("b{}", self.pings);
        self.send(json!({"action": "ping", "id": id})).await;
        let mut before: Vec<Value> = self.buffered.drain(..).collect();
        loop {
            let v = self.read_within(wait).await;
            if v["type"] == "pong" && v["id"] == id.as_str() {
                return before;
            }
            before.push(v);
        }
    }

    /// Close, and wait for the server's close (so `$disconnect` has run).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

impl From<Ws> for Client {
    fn from(ws: Ws) -> Client {
        Client {
            ws,
            buffered: VecDeque::new(),
            pings: 0,
        }
    }
}

/// A `sendMessage` frame.
pub fn send_frame(chat: impl std::fmt::Display, cmid: &str, text: &str) -> Value {
    json!({"action": "sendMessage", "chatId": chat.to_string(), "clientMessageId": cmid, "text": text})
}

/// The frames of type `ty`.
pub fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|v| v["type"] == ty).collect()
}
