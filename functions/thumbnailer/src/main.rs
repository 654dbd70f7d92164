#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    chat_core::function::run(thumbnailer::build).await
}
