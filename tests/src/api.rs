//! A small client of a [`TestStack`]'s HTTP API for end-to-end tests: register users
//! through `POST /auth/register`, send JSON requests with a bearer token, open
//! WebSocket connections with `?token=`. No assertions on the contract here; tests
//! that check responses against `docs/openapi.yaml` do that themselves.

use crate::TestStack;
use chat_core::ids::UserId;
use serde_json::{json, Value};

/// A user registered through the API, with the tokens registration returned.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub id: UserId,
    pub user_name: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// The password test users register with (long enough, not on the common list).
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of one stack's HTTP and WebSocket APIs.
#[derive(Clone)]
pub struct Api<'a> {
    stack: &'a TestStack,
    http: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(stack: &'a TestStack) -> Self {
        Api {
            stack,
            http: reqwest::Client::new(),
        }
    }

    /// Register a user with a unique name derived from `display_name`; panics unless
    /// the API answers 201.
    pub async fn register(&self, display_name: &str) -> ApiUser {
        let fresh = UserId::generate();
        let tag: String = display_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let user_name = format!("{tag}{}", &fresh.as_str()[20..]).to_ascii_lowercase();
        let (status, body) = self
            .request(
                None,
                "POST",
                "/auth/register",
                Some(json!({
                    "userName": user_name,
                    "password": TEST_PASSWORD,
                    "displayName": display_name,
                })),
            )
            .await;
        assert_eq!(status, 201, "registering {user_name}: {body}");
        let str_at = |v: &Value| {
            v.as_str()
                .expect("string in the register answer")
                .to_owned()
        };
        ApiUser {
            id: UserId::parse(&str_at(&body["user"]["userId"])).expect("user id"),
            user_name,
            access_token: str_at(&body["tokens"]["accessToken"]),
            refresh_token: str_at(&body["tokens"]["refreshToken"]),
        }
    }

    /// A JSON request to `path` (below the stage URL): (status, body; `Null` if empty).
    pub async fn request(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.stack.http_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, body)
    }

    /// `request` with `user`'s access token.
    pub async fn call(
        &self,
        user: &ApiUser,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.request(Some(&user.access_token), method, path, body)
            .await
    }

    /// A WebSocket connection of `user` (token in the query string).
    pub async fn connect(&self, user: &ApiUser) -> Ws {
        let url = format!("{}?token={}", self.stack.ws_url(), user.access_token);
        tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("WebSocket connect: {e}"))
            .0
    }
}
