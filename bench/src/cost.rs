//! `chat-bench cost`: cost per million messages from the measured work per operation
//! (`chat-bench work`, run here or read from its `--json`) and AWS list prices for
//! us-east-1 ([`PRICES`]). Each AWS call the work counted is priced: WebSocket
//! messages in (the client's frames) and out (`@connections` POSTs, in 32 KB units),
//! Lambda requests and GB-seconds (the template's `MemorySize` times the measured
//! duration of the operation, DynamoDB latency included), DynamoDB request units (the
//! measured capacity), SNS publish requests and mobile pushes. The floor is API
//! Gateway's per-message charge alone.

use crate::report::Section;
use crate::work::{OpWork, WorkReport};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Options of `chat-bench cost`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Cheap run for CI: the work counts of `chat-bench work --smoke`.
    #[arg(long)]
    pub smoke: bool,
    /// Read the work counts from this file (`chat-bench work --json FILE`) instead of
    /// measuring them.
    #[arg(long)]
    pub work: Option<PathBuf>,
}

/// A price list.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// What the figures are and when they were read.
    pub source: &'static str,
    /// API Gateway WebSocket: per million messages (first billion a month), 32 KB units.
    pub ws_message: f64,
    /// API Gateway WebSocket: per million connection minutes.
    pub ws_connection_minute: f64,
    /// Lambda: per million requests.
    pub lambda_request: f64,
    /// Lambda arm64: per GB-second.
    pub lambda_gb_second: f64,
    /// DynamoDB on demand: per million write / read request units.
    pub dynamodb_wru: f64,
    pub dynamodb_rru: f64,
    /// SNS: per million publish requests (64 KB units; a `PublishBatch` of up to 10
    /// messages is one request); delivery to Lambda is free.
    pub sns_publish: f64,
    /// SNS mobile push: per million notifications.
    pub sns_mobile_push: f64,
}

/// us-east-1 list prices.
pub const PRICES: Prices = Prices {
    source: "AWS list prices for US East (N. Virginia), first pricing tier, as published \
             on the AWS pricing pages in 2025 (DynamoDB on-demand after its November 2024 \
             price cut); free tiers ignored. Check them against the pricing pages before \
             relying on the totals",
    ws_message: 1.00,
    ws_connection_minute: 0.25,
    lambda_request: 0.20,
    lambda_gb_second: 0.000_013_333_4,
    dynamodb_wru: 0.625,
    dynamodb_rru: 0.125,
    sns_publish: 0.50,
    sns_mobile_push: 0.50,
};

/// Units of one message (or one scenario), by what is billed.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub ws_messages: f64,
    pub lambda_requests: f64,
    pub lambda_gb_seconds: f64,
    pub wru: f64,
    pub rru: f64,
    pub sns_requests: f64,
    pub pushes: f64,
}

impl Units {
    fn add(&mut self, o: &OpWork, memory_mb: &BTreeMap<String, u32>, times: f64) {
        self.ws_messages += times * (o.frames_in as f64 + o.post_units as f64);
        for f in &o.functions {
            self.lambda_requests += times;
            let mb = memory_mb.get(f).copied().unwrap_or(256) as f64;
            // Billed per ms, rounded up.
            self.lambda_gb_seconds += times * mb / 1024.0 * o.wall_ms.ceil() / 1000.0;
        }
        self.wru += times * o.wcu;
        self.rru += times * o.rcu;
        self.sns_requests += times * o.sns.get("PublishBatch").copied().unwrap_or(0) as f64;
        // The push notifier's `Publish` is the mobile push itself.
        self.pushes += times * o.sns.get("Publish").copied().unwrap_or(0) as f64;
    }

    /// Dollars per million, by service.
    pub fn dollars(&self, p: &Prices) -> Vec<(&'static str, f64)> {
        vec![
            (
                "API Gateway WebSocket messages",
                self.ws_messages * p.ws_message,
            ),
            ("Lambda requests", self.lambda_requests * p.lambda_request),
            (
                "Lambda compute (arm64)",
                self.lambda_gb_seconds * 1e6 * p.lambda_gb_second,
            ),
            ("DynamoDB writes", self.wru * p.dynamodb_wru),
            ("DynamoDB reads", self.rru * p.dynamodb_rru),
            ("SNS publishes", self.sns_requests * p.sns_publish),
            ("SNS mobile push", self.pushes * p.sns_mobile_push),
        ]
    }
}

/// A priced scenario.
pub struct Scenario {
    pub name: String,
    pub units: Units,
}

pub async fn run(args: Args) -> Result<Section> {
    let work: WorkReport = match &args.work {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => {
            crate::work::measure(&crate::work::Args {
                smoke: args.smoke,
                groups: vec![2, 10, 100],
                repeats: 3,
                dynamodb_latency_ms: 4,
                json: None,
            })
            .await?
        }
    };
    section_for(&args, &work)
}

/// The section for work already measured (`chat-bench all` measures it once for both
/// sections: `work::measure`, then `work::section` and this).
pub fn section_for(args: &Args, work: &WorkReport) -> Result<Section> {
    let memory = memory_by_binary()?;
    let scenarios = scenarios(work, &memory)?;
    Ok(section(args, work, &scenarios))
}

/// `MemorySize` of each function binary in the template.
fn memory_by_binary() -> Result<BTreeMap<String, u32>> {
    Ok(chat_tests::backend::template()
        .functions()?
        .into_iter()
        .map(|f| (f.binary, f.memory_mb as u32))
        .collect())
}

/// The scenarios priced: 1:1 with receipts (recipient online / offline) and group
/// sends of every size measured.
pub fn scenarios(w: &WorkReport, memory: &BTreeMap<String, u32>) -> Result<Vec<Scenario>> {
    let op = |k: &str| w.op(k).ok_or_else(|| anyhow!("the work report has no {k}"));
    let mut out = Vec::new();
    for (name, send, offline) in [
        (
            "1:1, recipient online, with delivered and read receipts",
            "send_direct_online",
            false,
        ),
        (
            "1:1, recipient offline (one push), with receipts later",
            "send_direct_offline",
            true,
        ),
    ] {
        let mut u = Units::default();
        u.add(op(send)?, memory, 1.0);
        u.add(op("ack")?, memory, 1.0);
        u.add(op("read")?, memory, 1.0);
        if offline {
            u.add(op("push_notifier")?, memory, 1.0);
        }
        out.push(Scenario {
            name: name.into(),
            units: u,
        });
    }
    // Groups of two are 1:1 chats in all but name.
    let small = |o: &OpWork| o.key == "send_group_2_online" || o.key == "send_group_2_half";
    for o in w
        .ops
        .iter()
        .filter(|o| o.key.starts_with("send_group_") && (!small(o) || w.ops.len() < 12))
    {
        let mut u = Units::default();
        u.add(o, memory, 1.0);
        if o.offline_events > 0 {
            u.add(op("push_notifier")?, memory, o.offline_events as f64);
        }
        out.push(Scenario {
            name: o.operation.clone(),
            units: u,
        });
    }
    Ok(out)
}

fn section(args: &Args, w: &WorkReport, scenarios: &[Scenario]) -> Section {
    let p = PRICES;
    let mut md = format!(
        "From the work counts of the previous section ({}) and {}.\n\n\
         | service | price |\n| --- | --- |\n\
         | API Gateway WebSocket | ${:.2} per million messages (in or out, 32 KB units; $0.80 past 1 billion a month); ${:.2} per million connection minutes |\n\
         | Lambda arm64 | ${:.2} per million requests; ${} per GB-second |\n\
         | DynamoDB on demand | ${:.3} per million write request units; ${:.3} per million read request units |\n\
         | SNS | ${:.2} per million publish requests (64 KB units; one `PublishBatch` of up to 10 messages is one request); delivery to Lambda free; mobile push ${:.2} per million |\n\n",
        w.command,
        p.source,
        p.ws_message,
        p.ws_connection_minute,
        p.lambda_request,
        p.lambda_gb_second,
        p.dynamodb_wru,
        p.dynamodb_rru,
        p.sns_publish,
        p.sns_mobile_push,
    );
    md.push_str(
        "Dollars per million messages, by service (the 1:1 rows include the \
         recipient's `ack` and `read` frames and the receipts they send back; group rows \
         are the send path, plus one push-notifier run per offline member):\n\n\
         | scenario | API Gateway messages | Lambda requests | Lambda compute | \
         DynamoDB writes | DynamoDB reads | SNS publishes | mobile push | **total** | \
         floor: API Gateway alone |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut largest = Vec::new();
    for s in scenarios {
        let row = s.units.dollars(&p);
        let total: f64 = row.iter().map(|r| r.1).sum();
        md.push_str(&format!("| {} |", s.name));
        for (_, d) in &row {
            md.push_str(&format!(" {d:.2} |"));
        }
        md.push_str(&format!(
            " **{total:.2}** | {:.2} ({:.0} %) |\n",
            s.units.ws_messages * p.ws_message,
            100.0 * s.units.ws_messages * p.ws_message / total.max(f64::MIN_POSITIVE)
        ));
        if let Some((service, d)) = row.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            largest.push(format!("{}: {service} (${d:.2} of ${total:.2})", s.name));
        }
    }
    md.push_str(
        "\nUnits per message (WebSocket messages / Lambda invocations / GB-seconds / \
         WRU / RRU / SNS requests / pushes):\n\n",
    );
    for s in scenarios {
        let u = &s.units;
        md.push_str(&format!(
            "- {}: {:.0} / {:.0} / {:.4} / {:.1} / {:.1} / {:.0} / {:.0}\n",
            s.name,
            u.ws_messages,
            u.lambda_requests,
            u.lambda_gb_seconds,
            u.wru,
            u.rru,
            u.sns_requests,
            u.pushes
        ));
    }
    md.push_str(&format!(
        "\nLargest item per scenario: {}.\n\n\
         The floor is API Gateway's per-message charge: one message per frame a client \
         sends and one per connection a message or receipt reaches (32 KB units), $1 per \
         million each. DynamoDB writes are the other large item: a send's transaction \
         writes four items plus the Members index copy, each counted twice for being \
         transactional, whatever the group size; receipts add a member-item update (plus \
         its index copy) each. Offline members cost a push-notifier invocation, its \
         reads and push-marker write and a mobile push each, which is why a half-offline \
         group costs more than an all-online one despite fewer WebSocket messages. \
         Lambda compute uses the measured local durations (DynamoDB latency added as \
         stated above) and the template's memory sizes; in AWS, durations follow \
         DynamoDB's and API Gateway's latencies.\n\n\
         Not per message: connections cost ${:.6} per connected hour, i.e. a user online \
         on 1.5 devices for 2 hours a day about ${:.4} a month; storage grows with \
         history (docs/capacity.md).\n\n\
         Reproduce with:\n\n```sh\n{}\n```\n",
        largest.join("; "),
        p.ws_connection_minute * 60.0 / 1e6,
        p.ws_connection_minute * 60.0 / 1e6 * 1.5 * 2.0 * 30.0,
        if args.smoke {
            format!("{} cost --smoke", crate::work::cargo_run())
        } else {
            format!(
                "{} cost   # or: work --json w.json, then cost --work w.json",
                crate::work::cargo_run()
            )
        }
    ));
    Section {
        title: "Cost per million messages".into(),
        markdown: md,
        plots: Vec::new(),
    }
}
