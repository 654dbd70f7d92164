//! Minimal REST plumbing for this function: JSON responses, the error body, body
//! parsing, the route key and the bearer check.
//!
//! TODO(auth merge): replace by `chat_core::http` and `chat_core::auth::bearer` once
//! `shared/src/http.rs` and `shared/src/auth/bearer.rs` land on main.

use chat_core::auth::tokens::{TokenConfig, TokenError};
use chat_core::ids::UserId;
use chat_core::store::Store;
use chat_core::ApiError;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{de::DeserializeOwned, Serialize};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

pub fn json<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .unwrap_or_default()
}

pub fn empty(status: u16) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::Empty)
        .unwrap_or_default()
}

pub fn error(e: &ApiError) -> Response<Body> {
    e.log();
    json(e.status(), &e.body())
}

/// The JSON body as `T`.
pub fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    if bytes.is_empty() {
        return Err(ApiError::InvalidJson("a JSON body is required".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::InvalidJson(format!(
            "the body is not the expected JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// The route key API Gateway matched (`"POST /devices"`), or one made from the method
/// and path when the event has none.
pub fn route_key(req: &Request) -> String {
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
    {
        if let Some(k) = ctx.route_key.as_deref().filter(|k| !k.is_empty()) {
            return k.to_owned();
        }
    }
    format!("{} {}", req.method(), req.raw_http_path())
}

/// A path parameter (`{deviceId}`).
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// The caller, from `Authorization: Bearer <access token>`: a valid token whose
/// version matches the account's (so "log out everywhere" takes effect at once).
pub async fn authenticate(
    req: &Request,
    tokens: &TokenConfig,
    store: &Store,
) -> Result<UserId, ApiError> {
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("an access token is required"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("use 'Authorization: Bearer <access token>'"))?;
    let claims = tokens.verify(token).map_err(|e| match e {
        TokenError::Expired => unauthorized("the access token has expired"),
        TokenError::Invalid => unauthorized("the access token is not valid"),
    })?;
    let user = claims
        .user_id()
        .map_err(|_| unauthorized("the access token is not valid"))?;
    match store.get_account(&user).await? {
        Some(a) if !a.deleted && a.token_version == claims.ver => Ok(user),
        _ => Err(unauthorized("the access token has been revoked")),
    }
}
