//! Every function of the repository in one binary, for the gateway's process mode in
//! tests: run it under a function's binary name (a symlink `ws-message` -> this file;
//! see `chat_tests::process`) and it runs that function behind the Lambda Runtime API,
//! as the function's own `main.rs` would. One binary, because `cargo test -p
//! chat-tests` builds this package's binaries but not the function crates' own.

use chat_local::gateway::functions::Registry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let name = std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let Some(build) = Registry::builtin().get(&name) else {
        return Err(format!("no function is called {name:?}").into());
    };
    let env = chat_core::config::Env::from_process();
    chat_core::telemetry::init(&env);
    let function = build(env).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let function = function.clone();
            async move { function.invoke(ev.payload, ev.context).await }
        },
    ))
    .await
}
