//! The errors a client can see. One enum serves both edges: REST maps it to an HTTP
//! status and the body `{"error": {"code", "message"}}`; the WebSocket sends it as an
//! `error` event with the same `code`. Codes are stable, machine-readable strings that
//! `docs/protocol.md` and `docs/openapi.yaml` list. Internal causes are logged where
//! the error is handled and never shown to the client.

use crate::input::InvalidInput;
use crate::store::{Conflict, StoreError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or frame is not JSON, or not the expected shape.
    #[error("{0}")]
    InvalidJson(String),
    /// A field is present but not acceptable.
    #[error("{0}")]
    Validation(#[from] InvalidInput),
    /// No, or a bad, expired or revoked credential.
    #[error("{0}")]
    Unauthorized(String),
    /// A credential was refused for a reason the client must tell apart (401 with its
    /// own code: `invalid_credentials`, `refresh_token_reused`, ...).
    #[error("{message}")]
    AuthFailed { code: &'static str, message: String },
    /// Authenticated but not allowed (e.g. not an admin of the group).
    #[error("{0}")]
    Forbidden(String),
    /// Not allowed for a reason the client must tell apart (403 with its own code:
    /// `blocked`, `you_blocked`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// Does not exist, or the caller may not know that it exists.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state (user name taken, group full, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many requests; retry later.
    #[error("{0}")]
    RateLimited(String),
    /// The request is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Temporarily unable to serve (a dependency is down or throttling); retry.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Cause),
    /// A bug or an unexpected dependency answer.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The hidden cause of an `Unavailable` or `Internal` error: any error (with its
/// source chain), logged by [`ApiError::log`] and never shown to the client.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// 401 with a specific code.
    pub fn auth_failed(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::AuthFailed {
            code,
            message: message.into(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::AuthFailed { code, .. } => code,
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Refused { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. } => code,
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_) | ApiError::Validation(_) => 400,
            ApiError::Unauthorized(_) | ApiError::AuthFailed { .. } => 401,
            ApiError::Forbidden(_) | ApiError::Refused { .. } => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::RateLimited(_) => 429,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field: match self {
                    ApiError::Validation(e) => Some(e.field),
                    _ => None,
                },
            },
        }
    }

    /// Log this error once, with its cause chain, at the edge that handles it.
    /// Also notes the status for the invocation's `outcome` and counts store failures
    /// (`StoreErrors`).
    pub fn log(&self) {
        crate::telemetry::note_status(self.status());
        match self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                if let Some(e) = cause.downcast_ref::<StoreError>() {
                    crate::metrics::store_error(e);
                }
                let mut chain = cause.to_string();
                let mut src = cause.source();
                while let Some(s) = src {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    src = s.source();
                }
                tracing::error!(code = self.code(), cause = %chain, "request failed");
            }
            ApiError::RateLimited(_) => {
                crate::metrics::count("RateLimited", 1);
                tracing::info!(code = self.code(), message = %self, "request refused")
            }
            // A parser's message may quote what the client sent (a password, a
            // message's text): only the code.
            ApiError::InvalidJson(_) => tracing::info!(code = self.code(), "request refused"),
            ApiError::Validation(e) => {
                tracing::info!(code = self.code(), field = e.field, message = %self, "request refused")
            }
            _ => tracing::info!(code = self.code(), message = %self, "request refused"),
        }
    }
}

impl From<StoreError> for ApiError {
    /// Domain outcomes become precise client errors (a non-member is told the chat
    /// does not exist, as for an unknown chat); dependency failures become 503 when a
    /// retry may help and 500 otherwise.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::NotMember => ApiError::not_found("chat"),
            StoreError::Conflict(Conflict::NotAdmin) => {
                ApiError::Forbidden("only an admin of the group may do this".into())
            }
            StoreError::Conflict(Conflict::NotAuthor) => ApiError::Forbidden(
                "only the author may change this message (a group admin may delete it)".into(),
            ),
            StoreError::Conflict(c @ (Conflict::Blocked | Conflict::YouBlocked)) => {
                ApiError::Refused {
                    code: c.code(),
                    message: conflict_message(c),
                }
            }
            StoreError::Conflict(Conflict::TooManyGroups) => ApiError::RateLimited(format!(
                "at most {} new groups a day",
                crate::store::MAX_GROUPS_PER_DAY
            )),
            StoreError::Conflict(Conflict::NoMembers) => ApiError::Validation(InvalidInput::new(
                "memberIds",
                "must name at least one user",
            )),
            StoreError::Conflict(c) => ApiError::conflict(c.code(), conflict_message(c)),
            e if e.is_transient() => ApiError::Unavailable(Box::new(e)),
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

fn conflict_message(c: Conflict) -> String {
    match c {
        Conflict::UserNameTaken => "that user name is already taken".into(),
        Conflict::GroupFull => format!(
            "a group has at most {} members",
            crate::input::MAX_GROUP_MEMBERS
        ),
        Conflict::AlreadyMember => "a user is already a member of this chat".into(),
        Conflict::NotAGroup => "direct chats have no name and a fixed pair of members".into(),
        Conflict::Blocked => "this user has blocked you".into(),
        Conflict::YouBlocked => "you have blocked this user; unblock them first".into(),
        Conflict::TooManyBlocks => format!("at most {} blocked users", crate::store::MAX_BLOCKS),
        Conflict::NotAdmin
        | Conflict::NoMembers
        | Conflict::TooManyGroups
        | Conflict::NotAuthor => c.code().replace('_', " "),
        Conflict::MessageDeleted => "the message was deleted".into(),
        Conflict::AttachmentUnavailable => {
            "an attachment is not your upload to this chat, or is already in a message".into()
        }
        Conflict::TooManyConnections => format!(
            "at most {} open connections per user; close one first",
            crate::store::MAX_CONNECTIONS_PER_USER
        ),
    }
}

impl From<crate::ids::IdError> for ApiError {
    fn from(e: crate::ids::IdError) -> Self {
        ApiError::Validation(InvalidInput::new(e.kind, e.reason))
    }
}
