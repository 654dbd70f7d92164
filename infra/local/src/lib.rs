//! `chat-local`: the whole chat on one machine, without Docker or an AWS account.
//!
//! - [`template`]: a typed reading of `infra/template.yaml`, the single source of
//!   truth for tables, topics, functions and routes.
//! - [`gateway`]: the local API Gateway (WebSocket API, `@connections`, HTTP API, SNS
//!   subscriptions) in front of the template's functions, in-process or as processes.
pub mod gateway;
pub mod template;
