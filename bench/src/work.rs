//! `chat-bench work`: (being written).

use crate::report::Section;

/// Options of `chat-bench work`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench work is not written yet")
}
