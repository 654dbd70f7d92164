//! `chat-local`: the whole chat on one machine, without Docker or an AWS account.
//!
//! - [`template`]: a typed reading of `infra/template.yaml`, the single source of
//!   truth for tables, topics, functions and routes.
pub mod template;
