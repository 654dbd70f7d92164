use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_local::cli::run(chat_local::cli::Cli::parse()).await
}
