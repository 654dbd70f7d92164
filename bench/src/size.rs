//! `chat-bench size`: the arm64 zipped size of each function as `sam build` makes it
//! (`scripts/sam-build.sh`: cargo-lambda cross-compiles with zig for
//! `provided.al2023` / arm64, release profile, then each `bootstrap` is zipped the way
//! `sam package` zips it). The target is under 3 MB zipped per function.
//!
//! `--smoke` never builds: it reports the last build in `.aws-sam/build` if there is
//! one and otherwise says so (the cross toolchain is installed by the script on first
//! use, which CI does not need to pay for).

use crate::report::Section;
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

/// Options of `chat-bench size`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Do not build: report the last build in `.aws-sam/build`, or skip with a note.
    #[arg(long)]
    pub smoke: bool,
    /// Report the last build without building (fails if there is none).
    #[arg(long)]
    pub no_build: bool,
}

/// Target: under 3 MB zipped per function.
pub const TARGET_MB: f64 = 3.0;

/// One function's bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub function: String,
    pub bootstrap_mb: f64,
    pub zipped_mb: f64,
}

pub async fn run(args: Args) -> Result<Section> {
    let root = chat_local::backend::BackendConfig::repo_root();
    let script = root.join("scripts/sam-build.sh");
    let built = root.join(".aws-sam/build").is_dir();
    let report_only = args.smoke || args.no_build;
    if report_only && !built {
        if args.no_build {
            bail!("no .aws-sam/build: run scripts/sam-build.sh first");
        }
        return Ok(Section {
            title: "Bundle size".into(),
            markdown: "Skipped: there is no `sam build` output in `.aws-sam/build` \
                       (`chat-bench size` without `--smoke` runs `scripts/sam-build.sh`, \
                       which installs SAM, cargo-lambda and zig on first use and \
                       cross-compiles every function for arm64)."
                .into(),
            plots: Vec::new(),
        });
    }
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(&script).current_dir(&root);
    if report_only {
        cmd.arg("--report-only");
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running scripts/sam-build.sh")?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "scripts/sam-build.sh failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let bundles = parse(&stdout);
    if bundles.is_empty() {
        bail!("no size table in the output of scripts/sam-build.sh:\n{stdout}");
    }
    Ok(section(
        &bundles,
        (!report_only).then_some(elapsed),
        args.smoke,
    ))
}

/// The table `scripts/sam-build.sh` prints: `name  X.XX MB  Y.YY MB`.
pub fn parse(out: &str) -> Vec<Bundle> {
    out.lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts.as_slice() {
                [name, raw, "MB", zipped, "MB"] => Some(Bundle {
                    function: (*name).to_owned(),
                    bootstrap_mb: raw.parse().ok()?,
                    zipped_mb: zipped.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

fn section(bundles: &[Bundle], build_time: Option<std::time::Duration>, smoke: bool) -> Section {
    let mut md = format!(
        "`sam build` (build method `rust-cargolambda`: cargo-lambda with zig, \
         `aarch64-unknown-linux-gnu`, release profile of the workspace) on {}{}. \
         Reproduce with:\n\n```sh\n{}\n```\n\n\
         | function | bootstrap | zipped | against 3 MB |\n| --- | --- | --- | --- |\n",
        crate::work::machine(),
        build_time.map_or(String::new(), |d| format!(
            ", {:.0} s including the build",
            d.as_secs_f64()
        )),
        if smoke {
            format!(
                "{} size --smoke   # reports the last build",
                crate::work::cargo_run()
            )
        } else {
            format!(
                "{} size   # runs scripts/sam-build.sh",
                crate::work::cargo_run()
            )
        }
    );
    for b in bundles {
        let delta = b.zipped_mb - TARGET_MB;
        md.push_str(&format!(
            "| {} | {:.2} MB | {:.2} MB | {} |\n",
            b.function,
            b.bootstrap_mb,
            b.zipped_mb,
            if delta < 0.0 {
                format!("met ({:.2} MB under)", -delta)
            } else {
                format!("**missed by {delta:.2} MB**")
            }
        ));
    }
    let over: Vec<&Bundle> = bundles
        .iter()
        .filter(|b| b.zipped_mb >= TARGET_MB)
        .collect();
    md.push_str(&format!(
        "\n**Target: under {TARGET_MB} MB zipped each.** {}\n",
        if over.is_empty() {
            "Met by every function.".to_owned()
        } else {
            format!(
                "Missed by {} of {} functions (largest: {:.2} MB).",
                over.len(),
                bundles.len(),
                over.iter().map(|b| b.zipped_mb).fold(0.0, f64::max)
            )
        }
    ));
    Section {
        title: "Bundle size".into(),
        markdown: md,
        plots: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_table() {
        let out = "\nfunction                   bootstrap        zipped\n\
                   HttpAuthFunction              9.10 MB       3.80 MB\n\
                   WsMessageFunction             8.00 MB       3.40 MB\n\
                   \nsam build took 120 s; artifacts in x\n";
        let b = parse(out);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].function, "HttpAuthFunction");
        assert!((b[1].zipped_mb - 3.4).abs() < 1e-9);
    }
}
