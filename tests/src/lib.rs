//! `chat-tests`: support for the integration and end-to-end tests in `tests/tests/`.
//! They run against the local backend that `./dev test` starts (DynamoDB Local and
//! moto on free ports, exported as `CHAT_DYNAMODB_ENDPOINT` / `CHAT_MOTO_ENDPOINT`).
//!
//! - [`backend`]: per-test isolated tables and a [`chat_core::store::Store`] on them
//!   ([`store_for_test`]).

pub mod backend;

pub use backend::{store_for_test, unique_prefix};
