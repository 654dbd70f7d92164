//! `chat-core`: everything the chat's Lambda functions share.
//!
//! - [`ids`] and [`input`]: newtypes that parse what clients send, once, at the edge.
//! - [`model`]: the domain (users, chats, memberships, messages, connections, devices).
//! - [`store`]: the only code that knows DynamoDB item shapes (see docs/data-model.md).
//! - [`auth`]: access tokens (JWT), passwords, refresh tokens and the bearer check.
//! - [`config`] and [`aws`]: typed configuration from the environment and the AWS
//!   clients built from it at init.
//! - [`protocol`]: the WebSocket protocol (client actions, server events, the offline
//!   event); [`messaging`]: the chat services both edges call (send, fan-out, receipts,
//!   typing, presence, sync); [`edits`]: editing and deleting stored messages;
//!   [`delivery`]: posting to connections and publishing
//!   offline events.
//! - [`error`]: the errors clients see, shared by the REST and WebSocket edges.
//! - [`function`]: how a Lambda is packaged, so one value runs in AWS and in-process
//!   in the local gateway; [`telemetry`]: structured logs.
//! - [`lifecycle`]: account deletion (the synchronous start and the resumable purge).
//! - [`http`]: the REST edge (routing, JSON bodies, responses) every HTTP function uses;
//!   [`cursor`]: every opaque cursor the API hands out; [`ws`]: the WebSocket edge
//!   (connection id, frame text, the route's answer).
//! - [`attachments`]: photos and files through presigned S3 uploads and downloads.

pub mod attachments;
pub mod auth;
pub mod aws;
pub mod config;
pub mod cursor;
pub mod delivery;
pub mod edits;
pub mod error;
pub mod function;
pub mod http;
pub mod ids;
pub mod input;
pub mod lifecycle;
pub mod messaging;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use error::ApiError;
