//! The report every subcommand produces: a titled Markdown section plus the plots it
//! drew. `chat-bench all` joins the sections into `docs/performance.md`; a single
//! subcommand prints its section to stdout.
//!
//! Plots: a section writes its plot files wherever its run puts them, lists them in
//! `plots`, and links each from its Markdown as `performance/{file name}`; [`write`]
//! copies them into the `performance/` folder next to the document.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

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

/// The file name of `plot`, as the section's Markdown links it (`performance/NAME`).
fn plot_name(plot: &Path) -> String {
    plot.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `docs/performance.md`: a header (machine, build, commands), then every section.
/// Sections link their plots as `performance/{file name}`; the plots are copied next
/// to the document (`{docs}/performance/`), so the links hold there and in the
/// folder a run writes its `report.md` to.
pub fn document(header: &str, sections: &[Section]) -> String {
    let mut md = String::from(header.trim_end());
    md.push_str("\n\n");
    for s in sections {
        md.push_str(&s.render());
        md.push('\n');
    }
    md
}

/// Write `document(header, sections)` to `{dir}/{file}` and copy every plot into
/// `{dir}/performance/`. Returns the document's path.
pub fn write(dir: &Path, file: &str, header: &str, sections: &[Section]) -> Result<PathBuf> {
    let plots_dir = dir.join("performance");
    std::fs::create_dir_all(&plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    for s in sections {
        for p in &s.plots {
            let to = plots_dir.join(plot_name(p));
            if p.canonicalize().ok() != to.canonicalize().ok() {
                std::fs::copy(p, &to)
                    .with_context(|| format!("copying {} to {}", p.display(), to.display()))?;
            }
        }
    }
    let path = dir.join(file);
    std::fs::write(&path, document(header, sections))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_joins_sections_and_copies_plots() {
        let dir = std::env::temp_dir().join(format!("chat-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plot = dir.join("a.svg");
        std::fs::write(&plot, "<svg/>").unwrap();
        let mut s = Section::new("Load");
        s.markdown = "![a](performance/a.svg)".into();
        s.plots.push(plot);
        let out = dir.join("docs");
        let path = write(
            &out,
            "performance.md",
            "# Performance",
            &[s, Section::new("Size")],
        )
        .unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("# Performance\n\n## Load\n\n![a]"));
        assert!(text.contains("## Size"));
        assert!(out.join("performance/a.svg").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
