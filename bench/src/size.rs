//! `chat-bench size`: (being written).

use crate::report::Section;

/// Options of `chat-bench size`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench size is not written yet")
}
