#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat_core::function::run(http_auth::build).await
}
