//! Command line of `chat-bench`: one subcommand per measurement, and `all`.

use crate::report::Section;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chat-bench",
    about = "Benchmarks of the chat (docs/performance.md)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Delivery latency under load: 1:1 rates, 100-member fan-out, idle connections.
    Load(crate::load::Args),
    /// Soak run: hundreds of connections connecting, disconnecting and sending.
    Soak(crate::soak::Args),
    /// AWS calls, sequential round trips and DynamoDB capacity per operation.
    Work(crate::work::Args),
    /// Cost per million messages from the work counts and AWS list prices.
    Cost(crate::cost::Args),
    /// Cold start time and peak memory of each function in process mode.
    Coldstart(crate::coldstart::Args),
    /// arm64 zipped size of each function.
    Size(crate::size::Args),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let section: Section = match cli.command {
        Command::Load(a) => crate::load::run(a).await?,
        Command::Soak(a) => crate::soak::run(a).await?,
        Command::Work(a) => crate::work::run(a).await?,
        Command::Cost(a) => crate::cost::run(a).await?,
        Command::Coldstart(a) => crate::coldstart::run(a).await?,
        Command::Size(a) => crate::size::run(a).await?,
    };
    println!("{}", section.render());
    Ok(())
}
