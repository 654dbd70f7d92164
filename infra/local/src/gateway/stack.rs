//! The gateway on a provisioned local stack: each function gets its template
//! environment resolved for the stack (`provision::function_env`), with
//! `WEBSOCKET_MANAGEMENT_ENDPOINT` pointing at this gateway, and SNS delivery from the
//! stack's topics in moto. Used by `chat-local up` and by `chat_tests::TestStack`.

use super::functions::Registry;
use super::{Endpoints, GatewayConfig, SnsOptions};
use crate::backend::BackendEndpoints;
use crate::provision::{function_env, LocalResolver, ProvisionedStack};
use crate::template::Template;
use anyhow::Result;
use chat_core::config::Env;
use std::collections::HashMap;

/// Every function's environment on `stack`, once the gateway knows its endpoints.
pub fn stack_envs(
    template: &Template,
    stack: &ProvisionedStack,
    signing_key: &str,
    backend: &BackendEndpoints,
    gateway: &Endpoints,
) -> Result<HashMap<String, Env>> {
    let resolver = LocalResolver::new(stack.clone(), signing_key)
        .parameter("StageName", gateway.stage.clone())
        .websocket("local", gateway.management_endpoint.clone());
    template
        .functions()?
        .iter()
        .map(|f| {
            Ok((
                f.logical_id.clone(),
                function_env(template, f, &resolver, backend)?,
            ))
        })
        .collect()
}

/// A gateway configuration for `stack` on `backend` with the functions of `registry`
/// and SNS delivery on.
pub fn config_for_stack(
    template: Template,
    registry: Registry,
    stack: &ProvisionedStack,
    signing_key: &str,
    backend: &BackendEndpoints,
) -> GatewayConfig {
    let t = template.clone();
    let (s, key, b) = (stack.clone(), signing_key.to_owned(), backend.clone());
    let mut cfg = GatewayConfig::new(template, registry)
        .with_env(move |endpoints| stack_envs(&t, &s, &key, &b, endpoints));
    cfg.sns = Some(SnsOptions::new(
        &backend.moto,
        stack
            .topics
            .iter()
            .map(|(id, t)| (id.clone(), t.arn.clone()))
            .collect(),
        &stack.prefix,
    ));
    cfg
}
