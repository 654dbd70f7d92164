//! The report every subcommand produces: a titled Markdown section plus the plots it
//! drew. `chat-bench all` joins the sections into `docs/performance.md`; a single
//! subcommand prints its section to stdout.

use std::path::PathBuf;

/// One part of the report.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Heading text (rendered as `## {title}`).
    pub title: String,
    /// Markdown body: tables, findings, the command that reproduces the figures.
    pub markdown: String,
    /// Plots written by this section (SVG or PNG), linked from `markdown`.
    pub plots: Vec<PathBuf>,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            ..Default::default()
        }
    }

    /// The section as Markdown.
    pub fn render(&self) -> String {
        format!("## {}\n\n{}\n", self.title, self.markdown.trim_end())
    }
}
