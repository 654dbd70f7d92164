//! Authentication primitives: access tokens ([`tokens`]). Password hashing, refresh
//! tokens and the shared bearer check of REST routes live beside it.

pub mod tokens;

pub use tokens::{AccessClaims, TokenConfig, TokenError};
