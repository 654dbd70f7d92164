#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat_core::function::run(push_notifier::build).await
}
