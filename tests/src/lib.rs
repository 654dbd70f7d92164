//! Test support for the chat's integration and end-to-end tests.
//!
//! - [`fakes`]: a local gateway with recording fake functions, for testing the gateway
//!   itself without the real functions or a database.
pub mod fakes;
