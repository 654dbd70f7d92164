//! The WebSocket edge, shared by `ws-connect`, `ws-disconnect` and `ws-message` as
//! [`crate::http`] is by the REST functions: reading what API Gateway delivers (the
//! connection id, the frame text) and writing the route's answer (`200`, or an error
//! status with the one error shape).
//!
//! Over an established connection a route's return body never reaches the client in
//! AWS (the routes have no route responses): answers and errors go to the connection
//! as events (`ChatServices::post_event`), and the route returns [`ok`]. Only
//! `$connect` answers with a status the client sees (the handshake fails unless it is
//! 200), and [`unknown_connection`] is the answer when there is no connection to post
//! to.
//!
//! A function's state is built once at init and each event handed to a plain async
//! function ([`crate::function::with_state`]):
//!
//! ```ignore
//! pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
//!     function::with_state(ChatServices::init(env), |s, event: WsEvent, _| async move {
//!         Ok(handle(&s, event).await)
//!     })
//! }
//! ```

use crate::error::ApiError;
use crate::ids::ConnectionId;
use crate::protocol::{ErrorEvent, FrameError, FrameErrorKind, ServerEvent};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::HeaderValue;

/// What API Gateway delivers to a WebSocket route.
pub type WsEvent = aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
/// What a WebSocket route answers.
pub type WsResponse = aws_lambda_events::apigw::ApiGatewayProxyResponse;

/// The connection the event came in on; `None` when absent or not an id API Gateway
/// makes.
pub fn connection_id(event: &WsEvent) -> Option<ConnectionId> {
    event
        .request_context
        .connection_id
        .as_deref()
        .and_then(|c| ConnectionId::parse(c).ok())
}

/// `200` with no body: the route did its work (answers went to the connection).
pub fn ok() -> WsResponse {
    let mut r = WsResponse::default();
    r.status_code = 200;
    r
}

/// The answer for an error: its status and `{"error": {"code", "message", "field"?}}`,
/// as over REST. Used by `$connect`, whose status decides the handshake.
pub fn error_response(e: &ApiError) -> WsResponse {
    let mut r = WsResponse::default();
    r.status_code = i64::from(e.status());
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    let text = serde_json::to_string(&e.body()).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"internal error"}}"#.to_owned()
    });
    r.body = Some(Body::Text(text));
    r
}

/// The answer when the frame cannot be tied to a live connection: no post is
/// possible, so the error event goes in the body, with `403`.
pub fn unknown_connection() -> WsResponse {
    let mut r = WsResponse::default();
    r.status_code = 403;
    r.body = Some(Body::Text(
        ServerEvent::Error(ErrorEvent {
            code: "unauthorized".into(),
            message: "this connection is not registered or has expired; reconnect".into(),
            field: None,
            action: None,
            client_message_id: None,
        })
        .to_json(),
    ));
    r
}

/// Why a frame has no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameTextError {
    /// A binary frame whose base64 API Gateway made is not base64 (never from AWS).
    #[error("the binary frame is not valid base64")]
    NotBase64,
    /// A binary frame that is not UTF-8 text (the protocol is JSON text).
    #[error("the frame is not UTF-8 text")]
    NotUtf8,
}

impl From<FrameTextError> for FrameError {
    fn from(e: FrameTextError) -> Self {
        FrameError {
            kind: FrameErrorKind::InvalidJson(e.to_string()),
            action: None,
            client_message_id: None,
        }
    }
}

/// The frame's text (binary frames arrive base64-encoded).
pub fn frame_text(event: &WsEvent) -> Result<String, FrameTextError> {
    let body = event.body.clone().unwrap_or_default();
    if !event.is_base64_encoded {
        return Ok(body);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| FrameTextError::NotBase64)?;
    String::from_utf8(bytes).map_err(|_| FrameTextError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InvalidInput;
    use proptest::prelude::*;

    fn event(body: &str, base64: bool) -> WsEvent {
        serde_json::from_value(serde_json::json!({
            "requestContext": {"connectionId": "abc=", "routeKey": "$default", "connectedAt": 0, "requestTimeEpoch": 0},
            "body": body,
            "isBase64Encoded": base64
        }))
        .unwrap()
    }

    proptest! {
        /// Text frames pass unchanged; binary frames (base64) decode to their UTF-8 text
        /// or are refused by name, never a panic; whatever comes out, the frame parser
        /// answers it with an action or a typed error.
        #[test]
        fn frames_as_api_gateway_delivers_them(bytes in prop::collection::vec(any::<u8>(), 0..300), text in any::<String>()) {
            prop_assert_eq!(frame_text(&event(&text, false)), Ok(text.clone()));
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            match frame_text(&event(&b64, true)) {
                Ok(t) => prop_assert_eq!(t.as_bytes(), &bytes[..]),
                Err(e) => {
                    prop_assert_eq!(e, FrameTextError::NotUtf8);
                    prop_assert!(String::from_utf8(bytes).is_err());
                }
            }
            let _ = crate::protocol::parse_frame(&text);
            // Not base64 at all: refused, not a panic.
            prop_assert_eq!(frame_text(&event(&format!("{text}!"), true)), Err(FrameTextError::NotBase64));
        }
    }

    #[test]
    fn connection_ids_are_read_once() {
        assert_eq!(connection_id(&event("", false)).unwrap().as_str(), "abc=");
        let mut e = event("", false);
        e.request_context.connection_id = None;
        assert!(connection_id(&e).is_none());
    }

    #[test]
    fn answers_have_the_error_shape() {
        let r = error_response(&ApiError::Unauthorized("no".into()));
        assert_eq!(r.status_code, 401);
        let Some(Body::Text(t)) = &r.body else {
            panic!("no body")
        };
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
        assert_eq!(v["error"]["message"], "no");
        let r = error_response(&InvalidInput::new("connectionId", "is missing").into());
        assert_eq!(r.status_code, 400);
        assert_eq!(ok().status_code, 200);
        assert_eq!(unknown_connection().status_code, 403);
        let e = FrameError::from(FrameTextError::NotUtf8);
        assert_eq!(e.code(), "invalid_json");
    }
}
