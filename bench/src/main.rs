use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The gateway and the functions log through tracing; only problems by default.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The in-process functions write a CloudWatch EMF line per invocation to stdout;
    // stdout is for the report here.
    chat_core::metrics::set_sink(Some(Box::new(|_| {})));
    chat_bench::cli::run(chat_bench::cli::Cli::parse()).await
}
