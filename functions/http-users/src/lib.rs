//! `http-users`: placeholder until its issue lands; answers every event with an error.

use chat_core::config::Env;
use chat_core::function::{BoxFuture, SharedFunction};
use lambda_runtime::Error;

/// Build the function from its environment (at init).
pub fn build(_env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        Ok(chat_core::function::typed(
            |_event: serde_json::Value, _ctx| async move {
                Err::<serde_json::Value, Error>(Error::from("http-users is not implemented yet"))
            },
        ))
    })
}
