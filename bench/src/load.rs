//! `chat-bench load`: (being written).

use crate::report::Section;

/// Options of `chat-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench load is not written yet")
}
