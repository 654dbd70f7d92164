//! `chat-bench coldstart`: (being written).

use crate::report::Section;

/// Options of `chat-bench coldstart`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench coldstart is not written yet")
}
