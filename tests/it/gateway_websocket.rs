//! The local gateway's WebSocket API and management API, with a real WebSocket client
//! (tokio-tungstenite), the real management SDK client and recording fake functions.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use chat_local::gateway::faults::{FaultAction, FaultRule};
use chat_local::gateway::Limits;
use chat_local::template::Template;
use chat_tests::fakes::{self, FakeGateway};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(fg: &FakeGateway, query: &str) -> (Ws, String) {
    let mut req = format!("{}{query}", fg.gateway.ws_url())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("user-agent", "gateway-test/1".parse().unwrap());
    req.headers_mut()
        .insert("x-custom", "hello".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    let call = fg
        .calls
        .wait_for("$connect", |c| c.route_key() == "$connect")
        .await;
    (ws, call.connection_id().to_owned())
}

/// The next text frame (10 s at most).
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The close code the server sends.
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

#[tokio::test]
async fn connect_event_has_api_gateway_shape() {
    let fg = FakeGateway::start().await;
    let mut req = format!("{}?token=abc%3D&x=1&x=2", fg.gateway.ws_url())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("user-agent", "gateway-test/1".parse().unwrap());
    req.headers_mut()
        .insert("x-custom", "hello".parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let call = fg
        .calls
        .wait_for("$connect", |c| c.route_key() == "$connect")
        .await;
    let id = call.connection_id();
    assert_eq!(id.len(), 16, "connection id like API Gateway's: {id}");
    assert!(id.ends_with('='));
    assert_eq!(fg.gateway.connections(), vec![id.to_owned()]);
    let ev = &call.event;
    let rc = &ev["requestContext"];
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["stage"], "prod");
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["identity"]["userAgent"], "gateway-test/1");
    assert!(rc["connectedAt"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(rc["requestTimeEpoch"].as_i64().is_some());
    assert!(rc["requestId"].as_str().is_some());
    assert!(rc["apiId"].as_str().is_some());
    assert_eq!(
        rc["domainName"].as_str().unwrap(),
        fg.gateway.endpoints().ws_addr.to_string()
    );
    assert_eq!(ev["queryStringParameters"]["token"], "abc=");
    assert_eq!(
        ev["multiValueQueryStringParameters"]["x"],
        json!(["1", "2"])
    );
    assert_eq!(ev["headers"]["X-Custom"], "hello");
    assert_eq!(ev["multiValueHeaders"]["X-Custom"], json!(["hello"]));
    assert!(ev["headers"]["Sec-Websocket-Key"].as_str().is_some());
    let typed: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(ev.clone()).expect("deserializes as the typed event");
    assert_eq!(typed.request_context.route_key.as_deref(), Some("$connect"));
}

#[tokio::test]
async fn connect_rejected_with_the_function_status() {
    let fg = FakeGateway::start().await;
    for status in [401u16, 403] {
        let err =
            tokio_tungstenite::connect_async(format!("{}?reject={status}", fg.gateway.ws_url()))
                .await
                .expect_err("handshake rejected");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status().as_u16(), status)
            }
            other => panic!("expected an HTTP error, got {other:?}"),
        }
    }
    assert!(fg.gateway.connections().is_empty());
}

#[tokio::test]
async fn messages_are_routed_by_action_with_default_fallback() {
    let fg = FakeGateway::start().await;
    let (mut ws, id) = connect(&fg, "").await;
    let cases = [
        (r#"{"action":"sendMessage","text":"hi"}"#, "sendMessage"),
        (r#"{"action":"ping"}"#, "ping"),
        (r#"{"action":"noSuchAction"}"#, "$default"),
        ("not json at all", "$default"),
        (r#"{"noAction":1}"#, "$default"),
        (r#"{"action":"$connect"}"#, "$default"),
    ];
    for (frame, route) in cases {
        ws.send(Message::Text(frame.into())).await.unwrap();
        let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(reply["routeKey"], route, "frame {frame}");
        assert_eq!(reply["connectionId"], id);
        let call = fg
            .calls
            .wait_for("message", |c| c.route_key() == route)
            .await;
        let rc = &call.event["requestContext"];
        assert_eq!(rc["eventType"], "MESSAGE");
        assert!(rc["messageId"].as_str().is_some());
        assert_eq!(call.event["body"], frame);
        let typed: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest =
            serde_json::from_value(call.event.clone()).unwrap();
        assert_eq!(typed.body.as_deref(), Some(frame));
    }
}

fn template_without_default() -> Template {
    let text = fakes::template_text();
    let start = text.find("  DefaultRoute:\n").unwrap();
    let end = text.find("  SendMessageRoute:\n").unwrap();
    let t = (text[..start].to_owned() + &text[end..]).replace("      - DefaultRoute\n", "");
    Template::parse(&t).unwrap()
}

#[tokio::test]
async fn without_default_route_unmatched_messages_get_an_error_frame() {
    let fg = FakeGateway::start_with(template_without_default(), Limits::default()).await;
    assert!(!fg.gateway.routes().websocket.contains_key("$default"));
    let (mut ws, id) = connect(&fg, "").await;
    ws.send(Message::Text("plain text".into())).await.unwrap();
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(frame["message"], "Forbidden");
    assert_eq!(frame["connectionId"], id);
    assert!(frame["requestId"].as_str().is_some());
    // A matching route still works.
    ws.send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(reply["routeKey"], "ping");
}

#[tokio::test]
async fn function_errors_give_the_internal_server_error_frame() {
    let fg = FakeGateway::start().await;
    let (mut ws, id) = connect(&fg, "").await;
    ws.send(Message::Text(
        r#"{"action":"sendMessage","fail":true}"#.into(),
    ))
    .await
    .unwrap();
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(frame["message"], "Internal server error");
    assert_eq!(frame["connectionId"], id);
}

#[tokio::test]
async fn response_body_is_returned_only_on_routes_with_a_route_response() {
    let text = fakes::template_text().replace(
        "      RouteKey: ping\n",
        "      RouteKey: ping\n      RouteResponseSelectionExpression: $default\n",
    );
    let fg = FakeGateway::start_with(Template::parse(&text).unwrap(), Limits::default()).await;
    let (mut ws, _) = connect(&fg, "").await;
    // One-way route: only the management API post arrives.
    ws.send(Message::Text(r#"{"action":"typing"}"#.into()))
        .await
        .unwrap();
    let first: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(first["routeKey"], "typing");
    // Two-way route: the post, then the function's body.
    ws.send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    let post: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(
        post["routeKey"], "ping",
        "no echo of the typing message came first"
    );
    assert_eq!(next_text(&mut ws).await, r#"echo:{"action":"ping"}"#);
}

#[tokio::test]
async fn client_close_fires_disconnect_with_its_code_then_410() {
    let fg = FakeGateway::start().await;
    let mgmt = fg.management().await;
    let (mut ws, id) = connect(&fg, "").await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4001u16.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let call = fg.calls.disconnect_of(&id).await;
    let rc = &call.event["requestContext"];
    assert_eq!(rc["eventType"], "DISCONNECT");
    assert_eq!(rc["disconnectStatusCode"], 4001);
    assert!(rc["disconnectReason"].as_str().is_some());
    let typed: aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(call.event.clone()).unwrap();
    assert_eq!(typed.request_context.disconnect_status_code, Some(4001));
    let err = mgmt
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("late"))
        .send()
        .await
        .expect_err("gone");
    assert!(err.into_service_error().is_gone_exception());
    let err = mgmt
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert!(err.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn management_delete_closes_and_fires_disconnect() {
    let fg = FakeGateway::start().await;
    let mgmt = fg.management().await;
    let (mut ws, id) = connect(&fg, "").await;
    mgmt.delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("delete");
    assert_eq!(close_code(&mut ws).await, 1000);
    let call = fg.calls.disconnect_of(&id).await;
    assert_eq!(call.event["requestContext"]["disconnectStatusCode"], 1000);
    let err = mgmt
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("gone after delete");
    assert!(err.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn management_post_and_get_connection() {
    let fg = FakeGateway::start().await;
    let mgmt = fg.management().await;
    let (mut ws, id) = connect(&fg, "").await;
    mgmt.post_to_connection()
        .connection_id(&id)
        .data(Blob::new(r#"{"type":"hello"}"#))
        .send()
        .await
        .expect("post");
    assert_eq!(next_text(&mut ws).await, r#"{"type":"hello"}"#);
    let info = mgmt
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("get");
    let identity = info.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some("gateway-test/1"));
    let connected = info.connected_at().expect("connectedAt").as_secs_f64();
    let active = info.last_active_at().expect("lastActiveAt").as_secs_f64();
    assert!(active >= connected);
    // Too large for API Gateway: 413 PayloadTooLargeException.
    let err = mgmt
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new(vec![b'a'; 128 * 1024 + 1]))
        .send()
        .await
        .expect_err("too large");
    assert!(err.into_service_error().is_payload_too_large_exception());
    // Unknown connection.
    let err = mgmt
        .post_to_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("unknown");
    assert!(err.into_service_error().is_gone_exception());
}

#[tokio::test]
async fn idle_timeout_closes_and_fires_disconnect() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let fg = FakeGateway::start_with(fakes::template(), limits).await;
    let (mut ws, id) = connect(&fg, "").await;
    assert_eq!(close_code(&mut ws).await, 1001);
    let call = fg.calls.disconnect_of(&id).await;
    assert_eq!(call.event["requestContext"]["disconnectStatusCode"], 1001);
    assert_eq!(
        call.event["requestContext"]["disconnectReason"],
        "Connection idle timeout"
    );
}

#[tokio::test]
async fn messages_keep_the_connection_alive_until_max_duration() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(400),
        max_duration: Duration::from_millis(1500),
        ..Limits::default()
    };
    let fg = FakeGateway::start_with(fakes::template(), limits).await;
    let (mut ws, id) = connect(&fg, "").await;
    let started = std::time::Instant::now();
    // Keep talking every 150 ms (well inside the idle timeout) until the close.
    let code = loop {
        let _ = ws
            .send(Message::Text(r#"{"action":"typing"}"#.into()))
            .await;
        match tokio::time::timeout(Duration::from_millis(150), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break u16::from(f.code),
            Ok(Some(Ok(_))) | Err(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1001);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "closed by max duration, not idleness: {:?}",
        started.elapsed()
    );
    let call = fg.calls.disconnect_of(&id).await;
    assert_eq!(
        call.event["requestContext"]["disconnectReason"],
        "Connection maximum duration reached"
    );
}

#[tokio::test]
async fn gateway_shutdown_closes_connections_and_fires_disconnect() {
    let fg = FakeGateway::start().await;
    let (mut ws1, id1) = connect(&fg, "").await;
    let (mut ws2, id2) = connect(&fg, "").await;
    let FakeGateway { gateway, calls } = fg;
    gateway.shutdown().await;
    // shutdown() returns after the $disconnect invocations: they are already recorded.
    let recorded = calls.drain().await;
    for id in [&id1, &id2] {
        assert!(
            recorded
                .iter()
                .any(|c| c.route_key() == "$disconnect" && c.connection_id() == id),
            "$disconnect for {id} in {recorded:?}"
        );
    }
    assert_eq!(close_code(&mut ws1).await, 1001);
    assert_eq!(close_code(&mut ws2).await, 1001);
}

#[tokio::test]
async fn frames_above_32_kb_close_with_1009() {
    let fg = FakeGateway::start().await;
    let (mut ws, id) = connect(&fg, "").await;
    let big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(33 * 1024));
    ws.send(Message::Text(big.into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1009);
    let call = fg.calls.disconnect_of(&id).await;
    assert_eq!(call.event["requestContext"]["disconnectStatusCode"], 1009);
}

async fn send_fragmented(ws: &mut Ws, payload: &[u8], frame: usize) {
    let chunks: Vec<&[u8]> = payload.chunks(frame).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let last = i + 1 == chunks.len();
        ws.send(Message::Frame(Frame::message(chunk.to_vec(), opcode, last)))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn messages_up_to_128_kb_in_32_kb_frames_pass_larger_close_with_1009() {
    let fg = FakeGateway::start().await;
    let (mut ws, id) = connect(&fg, "").await;
    let prefix = r#"{"action":"sendMessage","pad":""#;
    let ok = format!("{prefix}{}\"}}", "y".repeat(100 * 1024));
    send_fragmented(&mut ws, ok.as_bytes(), 32 * 1024).await;
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(reply["routeKey"], "sendMessage");
    assert_eq!(reply["bodyLength"], ok.len());
    let too_big = format!("{prefix}{}\"}}", "z".repeat(128 * 1024));
    send_fragmented(&mut ws, too_big.as_bytes(), 32 * 1024).await;
    assert_eq!(close_code(&mut ws).await, 1009);
    let call = fg.calls.disconnect_of(&id).await;
    assert_eq!(call.event["requestContext"]["disconnectStatusCode"], 1009);
}

#[tokio::test]
async fn fault_injection_answers_410_500_for_a_connection() {
    let fg = FakeGateway::start().await;
    let mgmt = fg.management().await;
    let (mut ws, id) = connect(&fg, "").await;
    fg.gateway.faults().add(
        FaultRule::new(FaultAction::Gone)
            .for_connection(&id)
            .times(1),
    );
    let err = mgmt
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("injected 410");
    assert!(err.into_service_error().is_gone_exception());
    // Used up: the next post goes through.
    mgmt.post_to_connection()
        .connection_id(&id)
        .data(Blob::new("through"))
        .send()
        .await
        .expect("post");
    assert_eq!(next_text(&mut ws).await, "through");
    // Through the admin endpoint: every GET answers 500.
    let admin = format!("http://{}/_local/faults", fg.gateway.endpoints().ws_addr);
    let http = reqwest::Client::new();
    let r = http
        .post(&admin)
        .json(&json!({"method": "GET", "action": {"kind": "error"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let err = mgmt
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect_err("injected 500");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    let listed: Value = http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(http.delete(&admin).send().await.unwrap().status(), 204);
    mgmt.get_connection()
        .connection_id(&id)
        .send()
        .await
        .expect("faults cleared");
}

#[tokio::test]
async fn kill_connection_drops_it_without_disconnect() {
    let fg = FakeGateway::start().await;
    let mgmt = fg.management().await;
    let (mut ws, id) = connect(&fg, "").await;
    let (_other, other_id) = connect(&fg, "").await;
    assert!(fg.gateway.kill_connection(&id));
    // The socket ends without a close frame.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) => panic!("a killed connection gets no close frame"),
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => break,
            Err(_) => panic!("socket still open"),
        }
    }
    let err = mgmt
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("x"))
        .send()
        .await
        .expect_err("gone");
    assert!(err.into_service_error().is_gone_exception());
    // Closing another connection fires its $disconnect; none came for the killed one.
    mgmt.delete_connection()
        .connection_id(&other_id)
        .send()
        .await
        .unwrap();
    fg.calls.disconnect_of(&other_id).await;
    let rest = fg.calls.drain().await;
    assert!(
        !rest
            .iter()
            .any(|c| c.route_key() == "$disconnect" && c.connection_id() == id),
        "no $disconnect for the killed connection"
    );
}
