//! A small WebSocket client for the work benchmark: sends JSON frames and waits for a
//! frame of a given type, keeping the instant each frame arrived (the benchmark places
//! the functions' AWS calls on the same clock).

use anyhow::{anyhow, bail, Result};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any awaited frame may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// One open connection.
pub struct Client {
    ws: Ws,
    buffered: VecDeque<(Value, Instant)>,
    pings: u64,
    /// The rate window (`ws-message`'s) of the last frame sent, and the frames sent in it.
    window: (i64, u32),
}

impl Client {
    /// Connect; returns the client and the instant the handshake completed.
    pub async fn open(url: &str) -> Result<(Client, Instant)> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        let at = Instant::now();
        Ok((
            Client {
                ws,
                buffered: VecDeque::new(),
                pings: 0,
                window: (-1, 0),
            },
            at,
        ))
    }

    /// Send one text frame; returns its size in bytes.
    pub async fn send(&mut self, v: &Value) -> Result<usize> {
        let w = chat_core::model::now_millis() / ws_message::WINDOW_MS;
        self.window = match self.window {
            (last, n) if last == w => (w, n + 1),
            _ => (w, 1),
        };
        let text = v.to_string();
        let n = text.len();
        self.ws.send(WsMessage::Text(text.into())).await?;
        Ok(n)
    }

    /// The next frame `pred` accepts (others are kept for later), with its arrival.
    pub async fn next_matching(
        &mut self,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Instant)> {
        if let Some(i) = self.buffered.iter().position(|(v, _)| pred(v)) {
            return Ok(self.buffered.remove(i).expect("index in range"));
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("timed out"))?;
            let at = Instant::now();
            match next {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(&t)?;
                    if pred(&v) {
                        return Ok((v, at));
                    }
                    if v["type"] == "error" {
                        bail!("error frame: {v}");
                    }
                    self.buffered.push_back((v, at));
                }
                Some(Ok(WsMessage::Close(c))) => bail!("closed: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("{e}"),
                None => bail!("connection ended"),
            }
        }
    }

    /// Ping and wait for the pong: everything this connection sent before has been
    /// handled (the gateway runs one invocation at a time per connection).
    pub async fn barrier(&mut self) -> Result<()> {
        self.pings += 1;
        let id = format!("b{}", self.pings);
        self.send(&serde_json::json!({"action": "ping", "id": id}))
            .await?;
        self.next_matching(|v| v["type"] == "pong" && v["id"] == id.as_str())
            .await?;
        Ok(())
    }

    /// The rate window of the last frame sent and the frames sent in it.
    pub fn window(&self) -> (i64, u32) {
        self.window
    }

    /// Read whatever has arrived without waiting (keeps the socket buffers drained).
    pub async fn drain(&mut self) {
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_millis(0), self.ws.next()).await
        {
            if let WsMessage::Text(t) = m {
                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                    self.buffered.push_back((v, Instant::now()));
                }
            }
        }
        self.buffered.clear();
    }

    /// Close with 1000.
    pub async fn close(mut self) -> Result<()> {
        self.ws.close(None).await?;
        Ok(())
    }
}
