use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chat_bench::cli::run(chat_bench::cli::Cli::parse()).await
}
