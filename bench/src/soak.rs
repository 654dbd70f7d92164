//! `chat-bench soak`: issue #11's soak run. `--connections` users (one direct chat and
//! one 10-member group each) churn for `--duration`: connect, `sync` from what they
//! hold, send now and then (waiting for each `messageAck`; a send left unanswered by a
//! disconnect is retried after the next connect with the same `clientMessageId`),
//! disconnect (one in ten by dropping the socket without a close frame), stay away a
//! moment, reconnect. At the end everyone connects once more, syncs and leaves.
//!
//! Checks: every member of every chat holds every position from 1 to the chat's last
//! (live, by sync or as its own ack): nothing lost; no `clientMessageId` stored at two
//! positions or acknowledged at two: nothing duplicated (a message posted live twice to
//! a user is counted and reported, not failed: fan-out is at-least-once and clients
//! deduplicate by position, docs/protocol.md); after
//! everyone left, the stack's Connections table is empty and nobody is online. Memory:
//! the RSS of this process (gateway and functions run in it, in-process mode) and of
//! DynamoDB Local, sampled over the run; the report gives the start (after the first
//! tenth), middle and end, and a plot.

use crate::driver::{self, BenchStack, BenchUser, Client, DynamoProcess, Event, Received};
use crate::plot::{Chart, Marker, Series};
use crate::report::Section;
use anyhow::{Context as _, Result};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Options of `chat-bench soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// 20 s with 40 users (CI); checks correctness, the memory trend means little.
    #[arg(long)]
    pub smoke: bool,
    /// How long users churn.
    #[arg(long, default_value = "10m", value_parser = driver::parse_duration)]
    pub duration: Duration,
    /// Simulated users, each with at most one connection at a time (even, ≥ 10).
    #[arg(long, default_value_t = 300)]
    pub connections: usize,
    /// Memory sampling interval.
    #[arg(long, default_value = "5s", value_parser = driver::parse_duration)]
    pub sample_every: Duration,
    /// Folder for the plot (default: target/bench).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Timings of a user's life, scaled down for `--smoke`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    session: (u64, u64),
    between_sends: (u64, u64),
    away: (u64, u64),
}

struct Shared {
    bench: BenchStack,
    users: Vec<BenchUser>,
    /// Per user, its chats (indices into `chat_ids`).
    chats_of: Vec<Vec<usize>>,
    chat_ids: Vec<String>,
    chat_index: HashMap<String, usize>,
    pace: Pace,
    sent: AtomicUsize,
    acked: AtomicUsize,
    sessions: AtomicUsize,
}

/// What one user saw.
#[derive(Debug)]
struct UserLog {
    /// Per chat: positions held, with the `clientMessageId` seen there.
    held: HashMap<usize, BTreeMap<u64, Option<String>>>,
    /// Per chat: positions delivered live (a second live delivery is a duplicate).
    live: HashMap<usize, HashSet<u64>>,
    duplicated_live: usize,
    /// Sends not yet acknowledged: (chat, clientMessageId).
    pending: Vec<(usize, String)>,
    /// clientMessageId -> (chat, position) of its ack.
    acked: HashMap<String, (usize, u64)>,
    ack_mismatch: usize,
    connect_errors: usize,
    errors: BTreeMap<String, usize>,
    seq: usize,
    /// Retry unanswered sends when connecting (false for the check-only last sync).
    pending_allowed: bool,
}

impl Default for UserLog {
    fn default() -> Self {
        UserLog {
            held: HashMap::new(),
            live: HashMap::new(),
            duplicated_live: 0,
            pending: Vec::new(),
            acked: HashMap::new(),
            ack_mismatch: 0,
            connect_errors: 0,
            errors: BTreeMap::new(),
            seq: 0,
            pending_allowed: true,
        }
    }
}

impl UserLog {
    fn hold(&mut self, chat: usize, position: u64, cmid: Option<String>) {
        let slot = self
            .held
            .entry(chat)
            .or_default()
            .entry(position)
            .or_default();
        if slot.is_none() {
            *slot = cmid;
        }
    }

    /// Highest position `p` such that 1..=p are all held.
    fn contiguous(&self, chat: usize) -> u64 {
        let mut p = 0;
        if let Some(h) = self.held.get(&chat) {
            for k in h.keys() {
                if *k == p + 1 {
                    p = *k;
                } else if *k > p + 1 {
                    break;
                }
            }
        }
        p
    }
}

pub async fn run(args: Args) -> Result<Section> {
    let (section, failures) = measure(args).await?;
    if !failures.is_empty() {
        println!("{}", section.render());
        anyhow::bail!("the soak run found errors:\n{}", failures.join("\n"));
    }
    Ok(section)
}

pub async fn measure(args: Args) -> Result<(Section, Vec<String>)> {
    let (duration, n, pace) = if args.smoke {
        (
            Duration::from_secs(20),
            40,
            Pace {
                session: (1_000, 4_000),
                between_sends: (200, 1_000),
                away: (100, 1_000),
            },
        )
    } else {
        (
            args.duration,
            args.connections,
            Pace {
                session: (5_000, 30_000),
                between_sends: (1_000, 4_000),
                away: (500, 5_000),
            },
        )
    };
    anyhow::ensure!(
        n >= 10 && n.is_multiple_of(10),
        "--connections must be a multiple of 10"
    );
    let out = args.out.clone().unwrap_or_else(crate::load::default_out);
    std::fs::create_dir_all(&out)?;
    driver::raise_nofile_limit();

    let bench = BenchStack::start().await?;
    let ddb = DynamoProcess::find();
    let users = bench.users(n, 32).await?;
    let mut chat_ids = Vec::new();
    let mut chats_of = vec![Vec::new(); n];
    for k in 0..n / 2 {
        let id = bench.direct(&users[2 * k], &users[2 * k + 1]).await?;
        chats_of[2 * k].push(chat_ids.len());
        chats_of[2 * k + 1].push(chat_ids.len());
        chat_ids.push(id.to_string());
    }
    for g in 0..n / 10 {
        let others: Vec<&BenchUser> = users[10 * g + 1..10 * g + 10].iter().collect();
        let id = bench.group(&users[10 * g], &others).await?;
        for chats in &mut chats_of[10 * g..10 * g + 10] {
            chats.push(chat_ids.len());
        }
        chat_ids.push(id.to_string());
    }
    let chat_index = chat_ids
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i))
        .collect();
    let shared = Arc::new(Shared {
        bench,
        users,
        chats_of,
        chat_ids,
        chat_index,
        pace,
        sent: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        sessions: AtomicUsize::new(0),
    });

    eprintln!(
        "soak: {n} users churning for {:.0} s",
        duration.as_secs_f64()
    );
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let sampler = {
        let shared = shared.clone();
        let every = args.sample_every;
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while Instant::now() < deadline + Duration::from_secs(1) {
                samples.push(Sample {
                    t: t0.elapsed().as_secs_f64(),
                    rss: driver::rss_bytes(),
                    ddb_rss: ddb.map(|d| d.rss_bytes()).unwrap_or(0),
                    open: shared.bench.stack.gateway().connections().len(),
                    acked: shared.acked.load(Ordering::Relaxed),
                });
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
            samples
        })
    };
    let tasks: Vec<_> = (0..n)
        .map(|u| {
            let shared = shared.clone();
            tokio::spawn(async move { user_life(&shared, u, deadline).await })
        })
        .collect();
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.context("a soak user task panicked")?);
    }
    // Last sessions retried unanswered sends, possibly after others had their last
    // sync: one more connect and sync each, sending nothing, before the checks.
    let finals: Vec<_> = logs
        .into_iter()
        .enumerate()
        .map(|(u, mut log)| {
            let shared = shared.clone();
            tokio::spawn(async move {
                log.pending_allowed = false;
                session(&shared, u, &mut log, Instant::now()).await;
                log
            })
        })
        .collect();
    let mut logs = Vec::new();
    for t in finals {
        logs.push(t.await.context("a soak user task panicked")?);
    }
    let samples = sampler.await.context("the sampler panicked")?;
    let churn = t0.elapsed();
    eprintln!("soak: churn over, final sync done; checking");

    // Everyone left: nothing may remain.
    let (rows_left, online) =
        crate::load::wait_for_empty(&shared.bench, &shared.users, Duration::from_secs(60)).await?;
    let rss_after = driver::rss_bytes();

    // Lost / duplicated.
    let mut failures = Vec::new();
    let mut lost = 0usize;
    let mut lost_examples = Vec::new();
    let mut total_positions = 0u64;
    let mut last_positions = Vec::new();
    for id in &shared.chat_ids {
        let chat_id = chat_core::ids::ChatId::parse(id).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let chat = shared
            .bench
            .store()
            .get_chat(&chat_id, true)
            .await?
            .with_context(|| format!("chat {id} is gone"))?;
        last_positions.push(chat.last_position);
        total_positions += chat.last_position;
    }
    let mut duplicated = 0usize;
    let mut unconfirmed = 0usize;
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut connect_errors = 0;
    // chat -> clientMessageId -> positions it was seen at.
    let mut cmid_positions: HashMap<usize, HashMap<String, HashSet<u64>>> = HashMap::new();
    let mut redelivered = 0usize;
    for (u, log) in logs.iter().enumerate() {
        duplicated += log.ack_mismatch;
        redelivered += log.duplicated_live;
        unconfirmed += log.pending.len();
        connect_errors += log.connect_errors;
        for (k, v) in &log.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
        for &c in &shared.chats_of[u] {
            let held = log.held.get(&c);
            for p in 1..=last_positions[c] {
                match held.and_then(|h| h.get(&p)) {
                    Some(cmid) => {
                        if let Some(cmid) = cmid {
                            cmid_positions
                                .entry(c)
                                .or_default()
                                .entry(cmid.clone())
                                .or_default()
                                .insert(p);
                        }
                    }
                    None => {
                        lost += 1;
                        if lost_examples.len() < 5 {
                            lost_examples.push(format!(
                                "user {u} lacks position {p} of {}",
                                shared.chat_ids[c]
                            ));
                        }
                    }
                }
            }
        }
    }
    let stored_twice: usize = cmid_positions
        .values()
        .flat_map(|m| m.values())
        .filter(|ps| ps.len() > 1)
        .count();
    duplicated += stored_twice;
    let acked = shared.acked.load(Ordering::Relaxed);
    let sent = shared.sent.load(Ordering::Relaxed);
    if lost > 0 {
        failures.push(format!(
            "soak: {lost} (member, position) pairs missing, e.g. {}",
            lost_examples.join("; ")
        ));
    }
    if duplicated > 0 {
        failures.push(format!(
            "soak: {duplicated} duplicates ({stored_twice} clientMessageIds stored at two positions)"
        ));
    }
    if unconfirmed > 0 {
        failures.push(format!(
            "soak: {unconfirmed} sends never acknowledged, even after retrying on reconnect"
        ));
    }
    if rows_left != 0 || online != 0 {
        failures.push(format!(
            "soak: after everyone left, {rows_left} rows in the Connections table and {online} users online"
        ));
    }

    // Memory trend.
    let at = |f: f64| -> Option<&Sample> {
        let t = churn.as_secs_f64() * f;
        samples
            .iter()
            .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
    };
    let (start, mid, end) = (at(0.1), at(0.5), samples.last());
    let mb = |b: u64| b as f64 / 1024.0 / 1024.0;
    let peak_open = samples.iter().map(|s| s.open).max().unwrap_or(0);
    let command = if args.smoke {
        "chat-bench soak --smoke".to_owned()
    } else {
        format!(
            "chat-bench soak --duration {} --connections {n}",
            humantime(duration)
        )
    };
    let mut md = format!(
        "`{command}` ({} build, functions in-process in the \
         tool's process, DynamoDB Local): {n} users, one direct chat and one 10-member group each, \
         churning for {:.0} s: sessions of {}–{} s, a send every {}–{} s while connected \
         (waiting for its ack), one disconnect in ten without a close frame, {}–{} s away, \
         reconnect and `sync`.\n\n",
        driver::build_profile(),
        churn.as_secs_f64(),
        pace.session.0 / 1000,
        pace.session.1 / 1000,
        pace.between_sends.0 as f64 / 1000.0,
        pace.between_sends.1 as f64 / 1000.0,
        pace.away.0 as f64 / 1000.0,
        pace.away.1 as f64 / 1000.0,
    );
    md.push_str("| | |\n|---|---|\n");
    md.push_str(&format!(
        "| connections opened | {} (at most {peak_open} at once; {connect_errors} connects failed) |\n",
        shared.sessions.load(Ordering::Relaxed)
    ));
    md.push_str(&format!(
        "| messages sent / acknowledged | {sent} / {acked} (retries included) |\n"
    ));
    md.push_str(&format!(
        "| positions checked (members × positions) | {} |\n",
        logs.iter()
            .enumerate()
            .map(|(u, _)| shared.chats_of[u]
                .iter()
                .map(|c| last_positions[*c])
                .sum::<u64>())
            .sum::<u64>()
    ));
    md.push_str(&format!("| messages stored | {total_positions} |\n"));
    md.push_str(&format!(
        "| lost / duplicated (stored twice, or acknowledged at two positions) / never acknowledged | {lost} / {duplicated} / {unconfirmed} |\n"
    ));
    md.push_str(&format!(
        "| delivered live twice to the same user (at-least-once fan-out; clients deduplicate by position) | {redelivered} |\n"
    ));
    md.push_str(&format!(
        "| error frames | {} |\n",
        if errors.is_empty() {
            "0".to_owned()
        } else {
            errors
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    md.push_str(&format!(
        "| after everyone left | {rows_left} rows in Connections, {online} users online |\n"
    ));
    if let (Some(s), Some(m), Some(e)) = (start, mid, end) {
        md.push_str(&format!(
            "| RSS of the gateway + functions process (start / middle / end) | {:.0} / {:.0} / {:.0} MB (t = {:.0} / {:.0} / {:.0} s); {:.0} MB after everyone left |\n",
            mb(s.rss), mb(m.rss), mb(e.rss), s.t, m.t, e.t, mb(rss_after)
        ));
        if ddb.is_some() {
            md.push_str(&format!(
                "| RSS of DynamoDB Local (start / middle / end) | {:.0} / {:.0} / {:.0} MB (a JVM: its heap grows with the stored data) |\n",
                mb(s.ddb_rss), mb(m.ddb_rss), mb(e.ddb_rss)
            ));
        }
        let growth = mb(e.rss) - mb(s.rss);
        let verdict = if growth <= (mb(s.rss) * 0.10).max(10.0) {
            format!("**no growth**: {growth:+.1} MB from the first tenth to the end")
        } else {
            format!("**grew** by {growth:+.1} MB from the first tenth to the end")
        };
        md.push_str(&format!("| memory verdict | {verdict} |\n"));
    }
    md.push_str("\n![Soak: memory and connections over time](performance/soak.svg)\n");

    let chart = Chart {
        title: format!("Soak: {n} churning users"),
        x_label: "time (s)".into(),
        y_label: "MB / open connections".into(),
        series: vec![
            Series {
                name: "RSS gateway+functions (MB)".into(),
                points: samples.iter().map(|s| (s.t, mb(s.rss))).collect(),
                line: true,
                marker: Marker::None,
            },
            Series {
                name: "RSS DynamoDB Local (MB)".into(),
                points: samples.iter().map(|s| (s.t, mb(s.ddb_rss))).collect(),
                line: true,
                marker: Marker::None,
            },
            Series {
                name: "open connections".into(),
                points: samples.iter().map(|s| (s.t, s.open as f64)).collect(),
                line: true,
                marker: Marker::None,
            },
        ],
        ..Default::default()
    };
    let plot = out.join("soak.svg");
    std::fs::write(&plot, chart.svg())?;
    let samples_csv = out.join("soak-samples.csv");
    let mut csv = String::from("t_s,rss_bytes,ddb_rss_bytes,open_connections,acked\n");
    for s in &samples {
        csv.push_str(&format!(
            "{:.1},{},{},{},{}\n",
            s.t, s.rss, s.ddb_rss, s.open, s.acked
        ));
    }
    std::fs::write(&samples_csv, csv)?;
    eprintln!(
        "soak: plot {} and samples {}",
        plot.display(),
        samples_csv.display()
    );
    shared_shutdown(shared).await;

    if !failures.is_empty() {
        md.push_str(&format!("\n**Failures:** {}\n", failures.join("; ")));
    }
    let mut section = Section::new("Soak");
    section.markdown = md;
    section.plots = vec![plot];
    Ok((section, failures))
}

async fn shared_shutdown(shared: Arc<Shared>) {
    match Arc::try_unwrap(shared) {
        Ok(s) => s.bench.stack.shutdown().await,
        Err(_) => eprintln!("soak: stack still referenced; not shut down cleanly"),
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[derive(Debug, Clone)]
struct Sample {
    t: f64,
    rss: u64,
    ddb_rss: u64,
    open: usize,
    acked: usize,
}

fn pick(r: (u64, u64)) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(r.0..=r.1))
}

/// One user's life until `deadline`, then a last connect, sync and goodbye.
async fn user_life(sh: &Shared, u: usize, deadline: Instant) -> UserLog {
    let mut log = UserLog::default();
    // Stagger the first connects over the first session length.
    tokio::time::sleep(pick((0, sh.pace.session.0))).await;
    loop {
        let last = Instant::now() >= deadline;
        let session_end = if last {
            Instant::now()
        } else {
            (Instant::now() + pick(sh.pace.session)).min(deadline)
        };
        session(sh, u, &mut log, session_end).await;
        if last {
            return log;
        }
        tokio::time::sleep(pick(sh.pace.away)).await;
    }
}

/// Connect, sync, retry unanswered sends, send until `until`, leave.
async fn session(sh: &Shared, u: usize, log: &mut UserLog, until: Instant) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let url = sh.bench.ws_url(&sh.users[u]);
    let client = match Client::open(&url, u, tx).await {
        Ok(c) => c,
        Err(_) => {
            log.connect_errors += 1;
            return;
        }
    };
    sh.sessions.fetch_add(1, Ordering::Relaxed);
    let ok = sync(sh, &client, &mut rx, log).await;
    if ok && log.pending_allowed {
        for (chat, cmid) in log.pending.clone() {
            if !send(sh, &client, &mut rx, log, chat, cmid).await {
                break;
            }
        }
        loop {
            let next = Instant::now() + pick(sh.pace.between_sends);
            if next >= until {
                pump(sh, &mut rx, log, until).await;
                break;
            }
            if !pump(sh, &mut rx, log, next).await {
                break;
            }
            let chats = &sh.chats_of[u];
            let chat = chats[rand::thread_rng().gen_range(0..chats.len())];
            log.seq += 1;
            let cmid = format!("s{u}-{}", log.seq);
            log.pending.push((chat, cmid.clone()));
            if !send(sh, &client, &mut rx, log, chat, cmid).await {
                break;
            }
        }
    }
    if rand::thread_rng().gen_range(0..10) == 0 {
        client.abort();
    } else {
        client.close().await;
    }
}

/// Handle frames until `until`; `false` if the connection closed.
async fn pump(
    sh: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Received>,
    log: &mut UserLog,
    until: Instant,
) -> bool {
    loop {
        match tokio::time::timeout_at(until.into(), rx.recv()).await {
            Err(_) => return true,
            Ok(None) => return false,
            Ok(Some((_, _, ev))) => {
                if !handle(sh, log, ev) {
                    return false;
                }
            }
        }
    }
}

/// Record a frame; `false` when the connection closed.
fn handle(sh: &Shared, log: &mut UserLog, ev: Event) -> bool {
    match ev {
        Event::Message {
            chat,
            cmid,
            position,
        } => {
            let Some(&c) = sh.chat_index.get(&chat) else {
                return true;
            };
            if !log.live.entry(c).or_default().insert(position) {
                log.duplicated_live += 1;
            }
            log.hold(c, position, cmid);
        }
        Event::Ack {
            chat,
            cmid,
            position,
            ..
        } => {
            let Some(&c) = sh.chat_index.get(&chat) else {
                return true;
            };
            match log.acked.get(&cmid) {
                Some(&(_, p)) if p != position => log.ack_mismatch += 1,
                Some(_) => {}
                None => {
                    log.acked.insert(cmid.clone(), (c, position));
                    sh.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
            log.pending.retain(|(_, m)| *m != cmid);
            log.hold(c, position, Some(cmid));
        }
        Event::Error { code, .. } => *log.errors.entry(code).or_default() += 1,
        Event::Closed => return false,
        Event::Pong | Event::SyncResult(_) | Event::Other => {}
    }
    true
}

/// Send and wait (up to 15 s) for the ack, handling other frames meanwhile. `false`
/// if the connection closed or nothing answered.
async fn send(
    sh: &Shared,
    client: &Client,
    rx: &mut mpsc::UnboundedReceiver<Received>,
    log: &mut UserLog,
    chat: usize,
    cmid: String,
) -> bool {
    sh.sent.fetch_add(1, Ordering::Relaxed);
    let frame = json!({
        "action": "sendMessage",
        "chatId": sh.chat_ids[chat],
        "clientMessageId": cmid,
        "text": format!("soak {cmid}"),
    });
    if !client.send(&frame) {
        return false;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) | Ok(None) => return false,
            Ok(Some((_, _, ev))) => {
                let answered = match &ev {
                    Event::Ack { cmid: c, .. } => *c == cmid,
                    Event::Error { cmid: Some(c), .. } => *c == cmid,
                    _ => false,
                };
                if !handle(sh, log, ev) {
                    return false;
                }
                if answered {
                    return true;
                }
            }
        }
    }
}

/// `sync` from what the user holds, following `cursor`s; `false` on failure.
async fn sync(
    sh: &Shared,
    client: &Client,
    rx: &mut mpsc::UnboundedReceiver<Received>,
    log: &mut UserLog,
) -> bool {
    let u_chats: Vec<Value> = log
        .held
        .keys()
        .map(|c| json!({"chatId": sh.chat_ids[*c], "position": log.contiguous(*c)}))
        .collect();
    let mut frame = json!({"action": "sync", "chats": u_chats, "limit": 100});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if !client.send(&frame) {
            return false;
        }
        let result = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(None) => return false,
                Ok(Some((_, _, Event::SyncResult(v)))) => break v,
                Ok(Some((_, _, ev))) => {
                    if !handle(sh, log, ev) {
                        return false;
                    }
                }
            }
        };
        for chat in result["chats"].as_array().into_iter().flatten() {
            let Some(&c) = chat["chatId"].as_str().and_then(|id| sh.chat_index.get(id)) else {
                continue;
            };
            for m in chat["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(chat["refs"].as_array().into_iter().flatten())
            {
                if let Some(p) = m["position"].as_u64() {
                    let cmid = m["clientMessageId"].as_str().map(str::to_owned);
                    log.hold(c, p, cmid);
                }
            }
        }
        match result["cursor"].as_str() {
            Some(cursor) => frame = json!({"action": "sync", "cursor": cursor, "limit": 100}),
            None => return true,
        }
    }
}
