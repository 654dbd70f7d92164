//! Where the local gateway and `$connect` must behave as AWS does, checked with an
//! independent client (raw tokio-tungstenite handshakes and frames, plain reqwest for
//! the management API) against AWS's documentation:
//!
//! - a binary frame from a client closes the connection with 1003 ("Binary media types
//!   for WebSocket APIs"); the local gateway used to pass it to `$default` as base64;
//! - the management API's documented URL form is percent-encoded
//!   (`…/prod/%40connections/R0oXAdfD0kwCH6w%3D` in the AWS guide);
//! - `chat.v1` is selected whenever a client offers it (also with `?token=`: Chromium
//!   fails a handshake that offered a subprotocol and got none), and a token offered as
//!   a subprotocol is never selected (it would be echoed into the handshake answer).
//!
//! The tests through [`TestStack::start`] need only the public APIs and also run in
//! the remote mode (against AWS, they check AWS itself).

use chat_tests::fakes::FakeGateway;
use chat_tests::seed::Seeder;
use chat_tests::TestStack;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::{Error, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close code the server sends (10 s at most).
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return f.code.into(),
            Ok(Some(Ok(Message::Close(None)))) => return 1005,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// A handshake with `url`, offering `subprotocols` (as one header) if given.
async fn handshake(
    url: &str,
    subprotocols: Option<&str>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    Error,
> {
    let mut req = url.into_client_request().expect("a WebSocket URL");
    if let Some(p) = subprotocols {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("a header value"));
    }
    tokio_tungstenite::connect_async(req).await
}

fn selected(resp: &tokio_tungstenite::tungstenite::handshake::client::Response) -> Option<&str> {
    resp.headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_binary_frame_closes_the_connection_with_1003() {
    let stack = TestStack::start().await;
    let user = Seeder::new(&stack).user("binary").await;
    let url = format!("{}?token={}", stack.ws_url(), user.token);
    let (mut ws, _) = handshake(&url, None).await.expect("connects");
    ws.send(Message::Binary(vec![0x7b, 0x00, 0xff].into()))
        .await
        .expect("sending a binary frame");
    assert_eq!(close_code(&mut ws).await, 1003);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_binary_frame_reaches_no_route_and_disconnect_gets_1003() {
    let fg = FakeGateway::start().await;
    let (mut ws, _) = handshake(fg.gateway.ws_url(), None)
        .await
        .expect("connects");
    fg.calls
        .wait_for("$connect", |c| c.route_key() == "$connect")
        .await;
    ws.send(Message::Binary(b"{\"action\":\"ping\"}".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 1003);
    let next = fg
        .calls
        .wait_for("$disconnect (or a route)", |c| c.route_key() != "$connect")
        .await;
    assert_eq!(next.route_key(), "$disconnect", "{:?}", next.event);
    assert_eq!(
        next.event["requestContext"]["disconnectStatusCode"], 1003,
        "{:?}",
        next.event
    );
}

#[tokio::test]
async fn the_percent_encoded_management_url_works() {
    let fg = FakeGateway::start().await;
    let (mut ws, _) = handshake(fg.gateway.ws_url(), None)
        .await
        .expect("connects");
    let id = fg
        .calls
        .wait_for("$connect", |c| c.route_key() == "$connect")
        .await
        .connection_id()
        .to_owned();
    assert!(id.ends_with('='), "ids look like AWS's: {id}");
    let encoded: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!(
        "{}/%40connections/{encoded}",
        fg.gateway.management_endpoint()
    );
    let http = reqwest::Client::new();
    let resp = http.post(&url).body("hello").send().await.unwrap();
    assert_eq!(resp.status(), 200, "POST {url}");
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), "hello"),
        other => panic!("expected the posted frame, got {other:?}"),
    }
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    let resp = http.delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 204, "DELETE {url}");
    assert_eq!(close_code(&mut ws).await, 1000);
}

#[tokio::test]
async fn chat_v1_is_selected_whenever_offered_also_with_a_query_token() {
    let stack = TestStack::start().await;
    let user = Seeder::new(&stack).user("proto").await;
    let url = format!("{}?token={}", stack.ws_url(), user.token);
    // ?token= and chat.v1 offered (a browser that also names the protocol).
    let (_ws, resp) = handshake(&url, Some("chat.v1"))
        .await
        .expect("the handshake selects chat.v1");
    assert_eq!(selected(&resp), Some("chat.v1"));
    // The documented subprotocol form: chat.v1 and the token.
    let bare = stack.ws_url().to_owned();
    let (_ws2, resp) = handshake(&bare, Some(&format!("chat.v1, {}", user.token)))
        .await
        .expect("the handshake selects chat.v1");
    assert_eq!(selected(&resp), Some("chat.v1"));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_token_offered_as_the_only_subprotocol_is_never_selected() {
    let stack = TestStack::start().await;
    let user = Seeder::new(&stack).user("echo").await;
    match handshake(stack.ws_url(), Some(&user.token)).await {
        // The server selected nothing; a client that offered one refuses that.
        Err(Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        ))) => {}
        Ok((_ws, resp)) => {
            let echoed = selected(&resp).unwrap_or_default();
            assert!(
                !echoed.contains(&user.token),
                "the token was echoed in the handshake answer"
            );
        }
        Err(e) => panic!("unexpected handshake outcome: {e}"),
    }
    stack.shutdown().await;
}
