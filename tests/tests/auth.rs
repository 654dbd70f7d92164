//! End-to-end tests of authentication through the local gateway (`chat_tests::TestStack`
//! with the real functions): what "log out everywhere" does to open WebSocket
//! connections. Waits are on frames with time-outs, never sleeps.

use chat_core::model::now_millis;
use chat_tests::api::{Api, Ws};
use chat_tests::TestStack;
use futures::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(10);

/// Read until the server closes `ws`: `Some(code)` of its close frame, `None` if the
/// connection ended without one. Panics if it stays open for [`WAIT`].
async fn closed_by_server(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("the connection is still open"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(WsMessage::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test]
async fn logout_all_closes_the_users_open_websocket_connections() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let ada = api.register("Ada").await;
    let bob = api.register("Bob").await;
    let mut phone = api.connect(&ada).await;
    let mut laptop = api.connect(&ada).await;
    let mut other = api.connect(&bob).await;
    let live = |user: &chat_core::ids::UserId| {
        let store = stack.store().clone();
        let user = user.clone();
        async move {
            store
                .presence_of(std::slice::from_ref(&user), now_millis())
                .await
                .expect("presence")
                .remove(&user)
                .map(|p| p.connections.len())
                .unwrap_or(0)
        }
    };
    assert_eq!(live(&ada.id).await, 2);

    let (status, body) = api.call(&ada, "POST", "/auth/logout-all", None).await;
    assert_eq!(status, 204, "{body}");

    // Both of Ada's connections are closed by the server (through @connections DELETE,
    // which sends a close frame), and their $disconnect (which runs after the socket
    // closed) removes them from the store.
    assert_eq!(closed_by_server(&mut phone).await, Some(1000));
    assert_eq!(closed_by_server(&mut laptop).await, Some(1000));
    let deadline = tokio::time::Instant::now() + WAIT;
    while live(&ada.id).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ada's connections are still stored"
        );
        // Polling the condition: the store has no change notification.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bob's connection is untouched: it still answers a ping.
    use futures::SinkExt;
    other
        .send(WsMessage::Text(
            r#"{"action":"ping","id":"still-here"}"#.into(),
        ))
        .await
        .expect("send ping");
    loop {
        let msg = tokio::time::timeout(WAIT, other.next())
            .await
            .expect("Bob's connection answers")
            .expect("open")
            .expect("no error");
        if let WsMessage::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).expect("JSON frame");
            if v["type"] == "pong" {
                assert_eq!(v["id"], "still-here");
                break;
            }
        }
    }
    assert_eq!(live(&bob.id).await, 1);

    // The old access token no longer opens a connection, nor calls the API.
    let url = format!("{}?token={}", stack.ws_url(), ada.access_token);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a revoked token opened a connection"),
    }
    let (status, _) = api.call(&ada, "GET", "/chats", None).await;
    assert_eq!(status, 401);
}
