//! A Lambda function binary for testing the gateway's process mode: answers HTTP
//! events with `{"pid", "routeKey"}` (after sleeping `x-sleep` seconds if that header
//! is present) and WebSocket events with status 200.

use chat_core::config::Env;
use chat_core::function::{typed, BoxFuture, SharedFunction};
use lambda_runtime::Error;
use serde_json::{json, Value};

fn build(_env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        Ok(typed(|event: Value, _ctx| async move {
            if let Some(secs) = event["headers"]["x-sleep"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
            {
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            }
            if event["headers"]["x-fail"].is_string() {
                return Err(Error::from("asked to fail"));
            }
            let route = event["routeKey"]
                .as_str()
                .or_else(|| event["requestContext"]["routeKey"].as_str())
                .unwrap_or_default()
                .to_owned();
            Ok::<Value, Error>(json!({
                "statusCode": 200,
                "body": json!({"pid": std::process::id(), "routeKey": route}).to_string(),
            }))
        }))
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    chat_core::function::run(build).await
}
