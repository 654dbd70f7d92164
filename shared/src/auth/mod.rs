//! Authentication: access tokens ([`tokens`]), password hashing ([`password`]),
//! refresh tokens and login sessions ([`refresh`]), the login lockout rule
//! ([`lockout`]), and the one bearer-token check
//! every authenticated REST route uses ([`bearer`]). The design and the threats it
//! answers are in `docs/security.md`.

pub mod bearer;
pub mod lockout;
pub mod password;
pub mod reauth;
pub mod refresh;
pub mod tokens;

pub use bearer::{authenticate, Authenticated};
pub use lockout::LockoutRule;
pub use refresh::{RefreshToken, TokenPair};
pub use tokens::{AccessClaims, TokenConfig, TokenError};
