//! `chat-tests`: support for the integration and end-to-end tests in `tests/it/` (one
//! test binary, `cargo test -p chat-tests --test it`).
//! They run against the local backend that `./dev test` starts (DynamoDB Local and
//! moto on free ports, exported as `CHAT_DYNAMODB_ENDPOINT` / `CHAT_MOTO_ENDPOINT`).
//!
//! - [`backend`]: per-test isolated tables and a [`chat_core::store::Store`] on them
//!   ([`store_for_test`]).
//! - [`stack`]: [`TestStack`], a whole freshly provisioned stack behind the local
//!   gateway with the real functions.
//! - [`api`]: a client of a stack's HTTP and WebSocket APIs (register users, JSON
//!   requests with a bearer token, WebSocket connections).
//! - [`ws`]: the WebSocket test client ([`ws::Client`]: JSON frames, reads with a
//!   time-out, a ping/pong barrier).
//! - [`process`]: the gateway's process mode with the real functions (one
//!   `chat-function` binary under each function's name) and their process ids.
//! - [`seed`]: users with minted tokens, direct chats and groups written through a
//!   stack's store.
//! - [`openapi`]: `docs/openapi.yaml` parsed once ([`openapi::doc`]) and a response
//!   checker against it.
//! - [`capture`]: the process-wide capture of the functions' logs and EMF records.
//! - [`remote`]: the remote mode (`CHAT_HTTP_URL`, `CHAT_WS_URL`): the same tests
//!   against a running stack's public APIs; [`needs_backend!`] skips the others.
//! - [`asyncapi`]: `docs/asyncapi.yaml` and the check of every frame the WebSocket test
//!   client sends and receives against it.
//! - [`fakes`]: a local gateway with recording fake functions, for testing the gateway
//!   itself without the real functions or a database.

pub mod api;
pub mod asyncapi;
pub mod backend;
pub mod capture;
pub mod fakes;
pub mod openapi;
pub mod process;
pub mod remote;
pub mod seed;
pub mod stack;
pub mod ws;

pub use backend::{store_for_test, unique_prefix};
pub use stack::{TestStack, TestStackOptions};
