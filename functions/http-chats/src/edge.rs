//! TEMPORARY REST edge helpers for this function, to be REPLACED by the shared
//! `chat_core::http` (responses, body parsing, routing) and `chat_core::auth::bearer`
//! (the bearer-token check) once the auth branch lands. Kept deliberately small and
//! private so the switch is a change of imports.

use chat_core::auth::tokens::TokenConfig;
use chat_core::error::ApiError;
use chat_core::ids::UserId;
use chat_core::store::Store;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest request body accepted: a 100,000-character message with JSON escapes.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The caller, once the bearer token checked out.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: UserId,
}

/// `requestContext.routeKey`, e.g. `GET /chats/{chatId}`.
pub fn route_key(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone(),
        _ => None,
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(body) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::Text(body))
            .unwrap_or_default(),
        Err(e) => error(&ApiError::internal(e)),
    }
}

/// The error body with the error's status; logs it once.
pub fn error(e: &ApiError) -> Response<Body> {
    e.log();
    let body = serde_json::to_string(&e.body()).unwrap_or_else(|_| {
        r#"{"error":{"code":"internal","message":"internal error"}}"#.to_owned()
    });
    Response::builder()
        .status(e.status())
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .unwrap_or_default()
}

/// Parse the JSON body into `T` (size-capped); any mismatch is `invalid_json`.
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
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidJson(format!("the body is not valid: {e}")))
}

/// Check `Authorization: Bearer <access token>`: signature, expiry, and that the
/// token's version is still the user's (not logged out everywhere, not deleted).
pub async fn authenticate(
    req: &Request,
    tokens: &TokenConfig,
    store: &Store,
) -> Result<Authenticated, ApiError> {
    let unauthorized = || ApiError::Unauthorized("a valid bearer access token is required".into());
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(unauthorized)?;
    let claims = tokens.verify(token.trim()).map_err(|_| unauthorized())?;
    let user_id = claims.user_id().map_err(|_| unauthorized())?;
    let account = store
        .get_account(&user_id)
        .await?
        .ok_or_else(unauthorized)?;
    if account.deleted || account.token_version != claims.ver {
        return Err(unauthorized());
    }
    Ok(Authenticated { user_id })
}
