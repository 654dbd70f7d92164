//! `chat-local`: the whole chat on one machine, without Docker or an AWS account.
//!
//! - [`template`]: a typed reading of `infra/template.yaml`, the single source of
//!   truth for tables, topics, functions and routes.
//! - [`backend`]: DynamoDB Local and moto (SNS, SQS) as child processes: install on
//!   first use, start, wait until they answer, stop; in memory or persistent.
//! - [`provision`]: a stack's tables, topics, queues and push platform applications
//!   created from the template under a name prefix; the resolver of the template's
//!   references for that stack, and each function's local environment.
//! - [`gateway`]: the local API Gateway (WebSocket API, `@connections`, HTTP API, SNS
//!   subscriptions) in front of the template's functions, in-process or as processes.
//! - [`cli`]: the `chat-local` command (`up`, `backend`, `provision`, `invoke`,
//!   `generate-event`, `metrics-summary`); [`up`]: the `up` command.
//! - [`metrics_view`]: EMF metrics printed readably and summed over a run.
pub mod backend;
pub mod cli;
pub mod gateway;
pub mod metrics_view;
pub mod provision;
pub mod proxy;
pub mod template;
pub mod up;
