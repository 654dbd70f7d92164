//! The HTTP client of the end-to-end tests, for a stack's HTTP and WebSocket APIs:
//! register users through `POST /auth/register`, send requests with a bearer token,
//! open WebSocket connections with `?token=`. [`Api::send`] checks every answer against
//! `docs/openapi.yaml` ([`Reply`] then has the status and the JSON body);
//! [`Api::request`] does not (for tests that send what the document does not describe).
//! It needs only the stack's two URLs, so it works the same against a remote stack.

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

/// An answer of the HTTP API: its status and its JSON body (`Null` if empty).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// `error.code` of an error answer ("" otherwise).
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `error.message` of an error answer ("" otherwise).
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    /// `error.field` of an error answer ("" otherwise).
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
    /// The body, after asserting the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }
    /// Assert an error answer: its status, its stable code and a non-empty message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert!(
            !self.message().is_empty(),
            "error without a message: {}",
            self.body
        );
    }
    /// The body of an error answer, after [`Reply::expect_error`].
    #[track_caller]
    pub fn error(self, status: u16, code: &str) -> Value {
        self.expect_error(status, code);
        self.body
    }
}

/// A client of one stack's HTTP and WebSocket APIs.
#[derive(Clone)]
pub struct Api {
    http_url: String,
    ws_url: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of `stack` (local or remote).
    pub fn new(stack: &TestStack) -> Self {
        Self::at(stack.http_url(), stack.ws_url())
    }

    /// A client of the stack whose HTTP API is at `http_url` (the stage URL) and
    /// whose WebSocket API is at `ws_url`.
    pub fn at(http_url: &str, ws_url: &str) -> Self {
        Api {
            http_url: http_url.trim_end_matches('/').to_owned(),
            ws_url: ws_url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The stage URL of the HTTP API.
    pub fn http_url(&self) -> &str {
        &self.http_url
    }

    /// `method path` with `raw` as the JSON body (sent as is); the answer must match
    /// `docs/openapi.yaml` (panics with the mismatch otherwise).
    pub async fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        raw: Option<String>,
    ) -> Reply {
        let url = format!("{}{path}", self.http_url);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(m, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = raw {
            req = req.header("content-type", "application/json").body(b);
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
        let path_only = path.split('?').next().unwrap_or(path);
        if let Err(e) = crate::openapi::doc().check_response(method, path_only, status, &body) {
            panic!("{method} {path}: {e}");
        }
        Reply { status, body }
    }

    /// [`Api::send`] with a JSON value as the body.
    pub async fn send_json(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send(token, method, path, body.map(|b| b.to_string()))
            .await
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

    /// A JSON request to `path` (below the stage URL), not checked against the
    /// document: (status, body; `Null` if empty).
    pub async fn request(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.http_url);
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
        let url = format!("{}?token={}", self.ws_url, user.access_token);
        tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("WebSocket connect: {e}"))
            .0
    }
}
