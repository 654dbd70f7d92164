//! `chat-bench cost`: (being written).

use crate::report::Section;

/// Options of `chat-bench cost`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench cost is not written yet")
}
