//! `chat-bench soak`: (being written).

use crate::report::Section;

/// Options of `chat-bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<Section> {
    anyhow::bail!("chat-bench soak is not written yet")
}
