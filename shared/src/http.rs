//! The REST edge, shared by every HTTP API function: routing on the API's route key,
//! reading requests (JSON bodies with a size cap, path and query parameters) and
//! writing responses (JSON with the right content type, errors in the one error
//! shape). Handlers are plain `async fn(Arc<State>, Request) -> Result<Response<Body>,
//! ApiError>`; everything a client can get wrong becomes an [`ApiError`] here, is
//! logged once ([`ApiError::log`]) and answered as `{"error": {"code", "message",
//! "field"?}}` with the error's status.
//!
//! ```ignore
//! let router = Router::new(state)
//!     .route("POST /auth/register", register) // async fn(Arc<S>, Request)
//!     .signed_in("GET /users/{userId}", get_user); // async fn(Arc<S>, Authenticated, Request)
//! Ok(router.into_function())
//! ```
//!
//! A [`Router::signed_in`] route checks the bearer access token before its handler runs
//! (`401` without a valid one) and hands the handler the signed-in caller; the state
//! says where tokens and accounts are through [`SignIn`].
//!
//! The route key is API Gateway's (`requestContext.routeKey`, e.g. `"GET
//! /users/{userId}"`), so the router matches the templates the SAM template declares,
//! never raw paths. The WebSocket edge is elsewhere.

use crate::auth::bearer::{self, Authenticated};
use crate::auth::tokens::TokenConfig;
use crate::error::ApiError;
use crate::function::{BoxFuture, SharedFunction};
use crate::input::InvalidInput;
use crate::store::Store;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// Body cap for small JSON routes (auth, profile, devices).
pub const SMALL_BODY: usize = 64 * 1024;
/// Body cap for routes that carry a message (100,000 characters of up to 4 UTF-8 bytes,
/// JSON-escaped text may be longer still; the HTTP API itself stops at 10 MB).
pub const MESSAGE_BODY: usize = 1024 * 1024;

// ------------------------------------------------------------------ responses

/// A JSON response with `content-type: application/json`.
pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => raw_json(status, text),
        Err(e) => error_response(&ApiError::internal(e)),
    }
}

fn raw_json(status: u16, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Body::Text(text))
        .expect("status and static headers are valid")
}

/// `200 OK` with a JSON body.
pub fn ok<T: Serialize + ?Sized>(body: &T) -> Response<Body> {
    json(200, body)
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize + ?Sized>(body: &T) -> Response<Body> {
    json(201, body)
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    Response::builder()
        .status(204)
        .body(Body::Empty)
        .expect("a bare 204 is valid")
}

/// The response for an error: its status and `{"error": {...}}`, with
/// `WWW-Authenticate: Bearer` on 401 and `Retry-After: 1` on 503. Logs it (once).
pub fn error_response(e: &ApiError) -> Response<Body> {
    e.log();
    let text = serde_json::to_string(&e.body()).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"internal error"}}"#.to_owned()
    });
    let mut resp = raw_json(e.status(), text);
    if matches!(e, ApiError::Unavailable(_)) {
        // A dependency is throttling or down: worth retrying soon (with the same
        // clientMessageId for a send), not at once in a tight loop.
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    if matches!(e, ApiError::Unauthorized(_) | ApiError::AuthFailed { .. }) {
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

// ------------------------------------------------------------------ requests

/// The body as bytes, refused with `413 payload_too_large` above `max_bytes`.
pub fn body_bytes(req: &Request, max_bytes: usize) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request body is {} bytes; at most {max_bytes} are accepted here",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Parse a JSON body into `T` (at most `max_bytes`). No body, malformed JSON, a wrong
/// type or a missing or unknown field is `400 invalid_json` with a message naming the
/// place (`userName: invalid type: integer, expected a string`). Rules on the values
/// themselves belong to the newtypes in [`crate::input`] (`400 validation_failed`), so
/// request types should hold plain strings and parse them after this.
pub fn parse_json<T: DeserializeOwned>(req: &Request, max_bytes: usize) -> Result<T, ApiError> {
    let bytes = body_bytes(req, max_bytes)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(
            "a JSON request body is required".into(),
        ));
    }
    if let Some(ct) = req.headers().get(http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.contains("+json")) {
            return Err(ApiError::InvalidJson(format!(
                "the request body must be JSON (content-type application/json), not {ct:?}"
            )));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the request body is not valid JSON"
            }
            _ => "the request body does not have the expected shape",
        };
        if path.is_empty() || path == "." {
            ApiError::InvalidJson(format!("{what}: {inner}"))
        } else {
            ApiError::InvalidJson(format!("{what}: {path}: {inner}"))
        }
    })
}

/// For PATCH bodies: tell "absent" (`None`) from "null" (`Some(None)`) and a value
/// (`Some(Some(v))`). Use with `#[serde(default, deserialize_with = "http::nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A path parameter of the route template (`{userId}`), percent-decoded by API Gateway.
pub fn path_param(req: &Request, name: &'static str) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Validation(InvalidInput::new(name, "is required in the path")))
}

/// A query-string parameter (the first, if repeated); empty counts as absent.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The client's `User-Agent`, cut to 256 characters (for session lists).
pub fn user_agent(req: &Request) -> String {
    req.headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect()
}

/// Opaque page cursors live in [`crate::cursor`]; these are its JSON ones.
pub use crate::cursor::{decode as decode_cursor, encode as encode_cursor};

// ------------------------------------------------------------------ routing

/// The route key API Gateway matched (`"POST /auth/register"`, `"GET /users/{userId}"`).
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        _ => None,
    }
}

type Handler<S> = Box<
    dyn Fn(Arc<S>, Request) -> BoxFuture<'static, Result<Response<Body>, ApiError>> + Send + Sync,
>;

/// State whose routes may be [`Router::signed_in`]: what the bearer check needs (the
/// token keys, and the store that knows whether the account still accepts the token).
pub trait SignIn: Send + Sync + 'static {
    fn token_config(&self) -> &TokenConfig;
    fn account_store(&self) -> &Store;
}

/// Dispatch on the route key to `async fn(Arc<S>, Request) -> Result<Response, ApiError>`
/// handlers sharing a state `S` built at init.
pub struct Router<S> {
    state: Arc<S>,
    routes: HashMap<&'static str, Handler<S>>,
}

impl<S: Send + Sync + 'static> Router<S> {
    pub fn new(state: S) -> Self {
        Router {
            state: Arc::new(state),
            routes: HashMap::new(),
        }
    }

    /// Add a route; `key` is exactly the template's `"METHOD /path/{param}"`.
    pub fn route<F, Fut>(mut self, key: &'static str, handler: F) -> Self
    where
        F: Fn(Arc<S>, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
    {
        self.routes
            .insert(key, Box::new(move |s, r| Box::pin(handler(s, r))));
        self
    }

    /// Add a route for signed-in callers only: the bearer access token is checked first
    /// ([`bearer::authenticate`]: `401` without a valid one), then the handler gets the
    /// caller.
    pub fn signed_in<F, Fut>(self, key: &'static str, handler: F) -> Self
    where
        S: SignIn,
        F: Fn(Arc<S>, Authenticated, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Body>, ApiError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.route(key, move |state: Arc<S>, req: Request| {
            let handler = handler.clone();
            async move {
                let me =
                    bearer::authenticate(&req, state.token_config(), state.account_store()).await?;
                handler(state, me, req).await
            }
        })
    }

    /// Answer one request; errors become their responses here.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let key = route_key(&req).unwrap_or("").to_owned();
        let result = match self.routes.get(key.as_str()) {
            Some(handler) => handler(self.state.clone(), req).await,
            None => Err(ApiError::NotFound(format!(
                "no route {key:?} in this function"
            ))),
        };
        match result {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        }
    }

    /// The Lambda function serving these routes (see [`crate::function::http`]).
    pub fn into_function(self) -> SharedFunction {
        let router = Arc::new(self);
        crate::function::http(move |req: Request| {
            let router = router.clone();
            async move { Ok::<_, lambda_http::Error>(router.handle(req).await) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Login {
        user_name: String,
        #[allow(dead_code)]
        password: String,
    }

    #[derive(Debug, Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "nullable")]
        avatar: Option<Option<String>>,
    }

    fn req(body: &str) -> Request {
        http::Request::builder()
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    fn invalid_json(r: Result<Login, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "invalid_json"), "{e}");
        e.to_string()
    }

    #[test]
    fn parses_json_bodies() {
        let l: Login = parse_json(&req(r#"{"userName":"a","password":"b"}"#), SMALL_BODY).unwrap();
        assert_eq!(l.user_name, "a");
    }

    #[test]
    fn explains_bad_bodies() {
        assert!(invalid_json(parse_json(&req(""), SMALL_BODY)).contains("required"));
        assert!(invalid_json(parse_json(&req("{"), SMALL_BODY)).contains("not valid JSON"));
        let m = invalid_json(parse_json(
            &req(r#"{"userName":5,"password":"b"}"#),
            SMALL_BODY,
        ));
        assert!(m.contains("userName") && m.contains("invalid type"), "{m}");
        let m = invalid_json(parse_json(&req(r#"{"userName":"a"}"#), SMALL_BODY));
        assert!(m.contains("missing field `password`"), "{m}");
        let m = invalid_json(parse_json(
            &req(r#"{"userName":"a","password":"b","x":1}"#),
            SMALL_BODY,
        ));
        assert!(m.contains("unknown field `x`"), "{m}");
        let m = invalid_json(parse_json(&req("[1]"), SMALL_BODY));
        assert!(m.contains("shape"), "{m}");
        let text = http::Request::builder()
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"userName":"a","password":"b"}"#))
            .unwrap();
        assert!(invalid_json(parse_json(&text, SMALL_BODY)).contains("content-type"));
    }

    #[test]
    fn caps_body_size() {
        let big = format!(
            r#"{{"userName":"{}","password":"b"}}"#,
            "a".repeat(SMALL_BODY)
        );
        let e = parse_json::<Login>(&req(&big), SMALL_BODY).unwrap_err();
        assert_eq!((e.status(), e.code()), (413, "payload_too_large"));
        assert!(parse_json::<Login>(&req(&big), 2 * SMALL_BODY).is_ok());
    }

    #[test]
    fn nullable_tells_absent_from_null() {
        let p: Patch = serde_json::from_str("{}").unwrap();
        assert_eq!(p.avatar, None);
        let p: Patch = serde_json::from_str(r#"{"avatar":null}"#).unwrap();
        assert_eq!(p.avatar, Some(None));
        let p: Patch = serde_json::from_str(r#"{"avatar":"x"}"#).unwrap();
        assert_eq!(p.avatar, Some(Some("x".into())));
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = encode_cursor(&("alice", 3));
        assert_eq!(
            decode_cursor::<(String, u32)>(&c, "cursor").unwrap(),
            ("alice".into(), 3)
        );
        let e = decode_cursor::<(String, u32)>("%%%", "cursor").unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "validation_failed"));
    }

    #[test]
    fn error_responses_have_the_error_shape() {
        let r = error_response(&ApiError::auth_failed("invalid_credentials", "nope"));
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(r.body().as_ref()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
        assert_eq!(body["error"]["message"], "nope");
    }

    fn event(route: &str, path: &str, query: &str, body: Option<&str>) -> serde_json::Value {
        let (method, _) = route.split_once(' ').unwrap();
        let mut params = serde_json::Map::new();
        if route.contains("{userId}") {
            params.insert("userId".into(), path.rsplit('/').next().unwrap().into());
        }
        serde_json::json!({
            "version": "2.0",
            "routeKey": route,
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "000000000000", "apiId": "local", "domainName": "127.0.0.1",
                "domainPrefix": "local", "requestId": "r1", "routeKey": route,
                "stage": "$default", "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"}
            },
            "pathParameters": params,
            "body": body,
            "isBase64Encoded": false
        })
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Echo {
        text: String,
    }

    async fn get_user(state: Arc<String>, req: Request) -> Result<Response<Body>, ApiError> {
        Ok(ok(&serde_json::json!({
            "state": state.as_str(),
            "userId": path_param(&req, "userId")?,
            "q": query_param(&req, "q"),
            "empty": query_param(&req, "empty"),
        })))
    }

    async fn echo(_: Arc<String>, req: Request) -> Result<Response<Body>, ApiError> {
        let e: Echo = parse_json(&req, 32)?;
        Ok(created(&e))
    }

    #[tokio::test]
    async fn router_dispatches_lambda_events_on_the_route_key() {
        let f = Router::new("st".to_owned())
            .route("GET /users/{userId}", get_user)
            .route("POST /echo", echo)
            .into_function();
        let ctx = lambda_runtime::Context::default();
        let out = f
            .invoke(
                event(
                    "GET /users/{userId}",
                    "/users/usr_1",
                    "q=a%20b&empty=",
                    None,
                ),
                ctx.clone(),
            )
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 200);
        assert_eq!(out["headers"]["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"state": "st", "userId": "usr_1", "q": "a b", "empty": null})
        );

        let out = f
            .invoke(
                event("POST /echo", "/echo", "", Some(r#"{"text":"hi"}"#)),
                ctx.clone(),
            )
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 201);
        assert_eq!(out["body"], r#"{"text":"hi"}"#);

        let out = f
            .invoke(
                event(
                    "POST /echo",
                    "/echo",
                    "",
                    Some(&format!(r#"{{"text":"{}"}}"#, "x".repeat(40))),
                ),
                ctx.clone(),
            )
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 413);

        let out = f
            .invoke(event("DELETE /nothing", "/nothing", "", None), ctx)
            .await
            .unwrap();
        assert_eq!(out["statusCode"], 404);
        let body: serde_json::Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
}
