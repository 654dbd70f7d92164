//! Command line of `chat-bench`: one subcommand per measurement, and `all`.

use crate::report::Section;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Every measurement of docs/performance.md with default options, one report.
    All(AllArgs),
}

/// Options of `chat-bench all`.
#[derive(Debug, Clone, clap::Args)]
pub struct AllArgs {
    /// Short runs with small counts (CI); passed on as `--smoke` to every subcommand
    /// that has it. Fails on lost, duplicated or reordered messages; asserts no timing.
    #[arg(long)]
    pub smoke: bool,
    /// Write docs/performance.md and copy the plots to docs/performance/.
    #[arg(long)]
    pub write_docs: bool,
    /// Folder for plots and report.md (default: target/bench).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> Result<()> {
    let section: Section = match cli.command {
        Command::Load(a) => crate::load::run(a).await?,
        Command::Soak(a) => crate::soak::run(a).await?,
        Command::Work(a) => crate::work::run(a).await?,
        Command::Cost(a) => crate::cost::run(a).await?,
        Command::Coldstart(a) => crate::coldstart::run(a).await?,
        Command::Size(a) => crate::size::run(a).await?,
        Command::All(a) => return all(a).await,
    };
    println!("{}", section.render());
    Ok(())
}

/// The options of a subcommand as its command line would give them: `--smoke` when
/// asked for and the subcommand has it, else its defaults.
fn sub_args<T: clap::Args>(smoke: bool) -> Result<T> {
    let cmd = T::augment_args(clap::Command::new("sub"));
    let matches = if smoke {
        cmd.clone()
            .try_get_matches_from(["sub", "--smoke"])
            .or_else(|_| cmd.try_get_matches_from(["sub"]))?
    } else {
        cmd.try_get_matches_from(["sub"])?
    };
    Ok(T::from_arg_matches(&matches)?)
}

/// A section, or "not measured" with the reason when its run failed.
fn or_not_measured(title: &str, r: Result<Section>) -> Section {
    r.unwrap_or_else(|e| {
        eprintln!("{title}: not measured: {e:#}");
        let mut s = Section::new(title);
        s.markdown = format!("Not measured: {e:#}\n");
        s
    })
}

async fn all(a: AllArgs) -> Result<()> {
    let out = a.out.clone().unwrap_or_else(crate::load::default_out);
    let mut load_args: crate::load::Args = sub_args(a.smoke)?;
    load_args.out = Some(out.clone());
    let mut failures = Vec::new();
    let load = match crate::load::measure(load_args).await {
        Ok((s, f)) => {
            failures = f;
            s
        }
        Err(e) => or_not_measured("Load and latency", Err(e)),
    };
    let work = or_not_measured(
        "Work per operation",
        async { crate::work::run(sub_args(a.smoke)?).await }.await,
    );
    let cost = or_not_measured(
        "Cost",
        async { crate::cost::run(sub_args(a.smoke)?).await }.await,
    );
    let coldstart = or_not_measured(
        "Cold start",
        async { crate::coldstart::run(sub_args(a.smoke)?).await }.await,
    );
    let size = or_not_measured(
        "Bundle size",
        async { crate::size::run(sub_args(a.smoke)?).await }.await,
    );
    let sections = [load, work, cost, coldstart, size];
    let header = header(a.smoke);
    let report = crate::report::write(&out, "report.md", &header, &sections)?;
    println!("{}", crate::report::document(&header, &sections));
    eprintln!("report and plots: {}", report.display());
    if a.write_docs {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let path = crate::report::write(&docs, "performance.md", &header, &sections)?;
        eprintln!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "lost, duplicated or reordered messages:\n{}",
            failures.join("\n")
        );
    }
    Ok(())
}

fn header(smoke: bool) -> String {
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let mut h = format!(
        "# Performance\n\n\
         Figures of issue #10, measured by the workspace's benchmark tool `chat-bench` \
         (`bench/`), written by `chat-bench all --write-docs` on {date}. Nothing here is a \
         CI threshold: CI runs `./dev bench all --smoke` only to keep the tool working and \
         to fail on lost, duplicated or reordered messages.\n\n\
         - Machine: {}, shared with other work while measuring (load average {} when the run started; figures vary between runs).\n\
         - Build: {}.\n\
         - Backend: DynamoDB Local (AWS's Java emulator) and moto, in memory, started by `./dev bench` on the same cores as everything else.\n\n\
         Reproduce (each `./dev bench` starts a fresh in-memory backend and runs \
         `cargo run --release -p chat-bench -- ARGS`):\n\n\
         ```sh\n\
         ./dev bench all --write-docs     # everything below, rewrites this file and docs/performance/\n\
         ./dev bench load                 # only the load scenarios (--help for rates, users, durations)\n\
         ./dev bench all --smoke          # the CI smoke run (seconds per scenario)\n\
         ```\n",
        crate::driver::machine(),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
            .unwrap_or_else(|| "unknown".into()),
        if cfg!(debug_assertions) {
            "debug (unoptimised: not for figures)"
        } else {
            "release (`[profile.release]`: thin LTO, one codegen unit)"
        },
    );
    if smoke {
        h.push_str("\n**Smoke run: a few seconds per scenario with small counts; these figures mean nothing.**\n");
    }
    h
}
