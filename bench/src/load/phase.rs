//! One measured phase of the load run: open-loop sends at a fixed rate over a set of
//! chats, then a drain, then the checks.
//!
//! Message `i` is scheduled at `start + i / rate` and sent by the `i`-th sender slot
//! (round-robin over the phase's (chat, sender) slots, so every sender sends at the
//! same low rate, below the 30-frames-per-10-s limit). Latencies are measured from the
//! *scheduled* time (no coordinated omission: a sender that falls behind makes its
//! later messages late, and that shows). Messages scheduled in the warm-up are checked
//! but not measured.
//!
//! Checks, per message: exactly one `messageAck` (not `duplicate`), exactly one
//! `message` on every other member's connection; per receiver, chat and sender, messages
//! arrive in the order they were sent (concurrent senders in a chat may be delivered
//! out of position order, see docs/protocol.md, "Ordering and gap detection", so
//! "reordered" means out of *per-sender* order); per chat, the acknowledged positions
//! are distinct and gap-free.

use crate::driver::{Client, DynamoProcess, Event, Received};
use crate::stats::Summary;
use chat_core::ids::ChatId;
use chat_core::store::Store;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A chat of the plan: its id and the clients (indices) of its members, all online.
#[derive(Debug, Clone)]
pub struct PlanChat {
    pub id: ChatId,
    pub members: Vec<usize>,
}

/// What to run.
pub struct Phase<'a> {
    pub name: String,
    /// Unique per phase: the prefix of its `clientMessageId`s.
    pub tag: String,
    pub rate: f64,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long to wait after the last send for acks and deliveries.
    pub drain: Duration,
    pub chats: &'a [PlanChat],
    /// (chat index, sender client index), used round-robin.
    pub slots: Vec<(usize, usize)>,
    /// Connected clients in all (active and idle), for the report.
    pub connected: usize,
}

/// What a phase measured.
#[derive(Debug, Clone, Default)]
pub struct PhaseResult {
    pub name: String,
    pub connected: usize,
    pub offered: f64,
    /// Average recipients per message.
    pub fanout: f64,
    pub achieved: f64,
    pub ack: Summary,
    pub delivery: Summary,
    /// Per message: until the last recipient had it.
    pub last: Summary,
    pub last_ms: Vec<f64>,
    pub delivery_ms: Vec<f64>,
    pub sent: usize,
    pub measured: usize,
    pub deliveries: usize,
    pub lost: usize,
    pub unacked: usize,
    pub duplicated: usize,
    pub reordered: usize,
    pub gaps: usize,
    pub errors: BTreeMap<String, usize>,
    pub cpu_ms_per_msg: f64,
    pub ddb_cpu_ms_per_msg: Option<f64>,
    /// Strongly consistent GetItem of a chat on DynamoDB Local, sequential, during the phase.
    pub probe: Summary,
    pub saturated: bool,
}

impl PhaseResult {
    /// Lost, duplicated, reordered or gaps: the run is wrong, not slow.
    pub fn failures(&self) -> Option<String> {
        let bad = self.lost + self.unacked + self.duplicated + self.reordered + self.gaps;
        (bad > 0).then(|| {
            format!(
                "{}: {} deliveries lost, {} sends never answered, {} duplicated, {} reordered, {} position gaps",
                self.name, self.lost, self.unacked, self.duplicated, self.reordered, self.gaps
            )
        })
    }
}

struct Msg {
    scheduled: Instant,
    chat: usize,
    sender: usize,
    measured: bool,
    ack: Option<(Instant, u64)>,
    acks: u32,
    error: Option<String>,
    /// (receiver client, when)
    deliveries: Vec<(usize, Instant)>,
}

/// Run `phase` on `clients`; frames arrive on `events` (shared by all clients).
pub async fn run(
    phase: Phase<'_>,
    clients: &[Client],
    events: &mut mpsc::UnboundedReceiver<Received>,
    store: &Store,
    ddb: Option<DynamoProcess>,
) -> PhaseResult {
    let total = ((phase.warmup + phase.duration).as_secs_f64() * phase.rate).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / phase.rate);
    // Drop what is left of earlier phases.
    while events.try_recv().is_ok() {}
    let cpu0 = crate::driver::own_cpu();
    let ddb0 = ddb.map(|d| d.cpu());
    let start = Instant::now() + Duration::from_millis(50);
    let mut msgs: Vec<Msg> = (0..total)
        .map(|i| {
            let (chat, sender) = phase.slots[i % phase.slots.len()];
            let offset = interval * i as u32;
            Msg {
                scheduled: start + offset,
                chat,
                sender,
                measured: offset >= phase.warmup,
                ack: None,
                acks: 0,
                error: None,
                deliveries: Vec::new(),
            }
        })
        .collect();
    let plan: Vec<(Instant, usize, String)> = msgs
        .iter()
        .map(|m| (m.scheduled, m.sender, phase.chats[m.chat].id.to_string()))
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let tag = phase.tag.clone();
    let scheduler = async {
        let mut failed = Vec::new();
        for (i, (at, sender, chat)) in plan.iter().enumerate() {
            tokio::time::sleep_until((*at).into()).await;
            let frame = json!({
                "action": "sendMessage",
                "chatId": chat,
                "clientMessageId": format!("{tag}-{i}"),
                "text": format!("load {tag} {i}"),
            });
            if !clients[*sender].send(&frame) {
                failed.push(i);
            }
        }
        done.store(true, Ordering::Release);
        failed
    };
    let probe_chat = phase.chats[0].id.clone();
    let probe = async {
        let mut samples = Vec::new();
        while !done.load(Ordering::Acquire) {
            let t = Instant::now();
            if store.get_chat(&probe_chat, true).await.is_ok() {
                samples.push(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    };

    let prefix = format!("{}-", phase.tag);
    let index_of = |cmid: &str| -> Option<usize> {
        cmid.strip_prefix(&prefix)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < total)
    };
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicated = 0usize;
    let mut reordered = 0usize;
    // (receiver, chat, sender) -> last message index delivered.
    let mut last_seen: HashMap<(usize, usize, usize), usize> = HashMap::new();
    let mut outstanding_acks = total;
    let mut outstanding_deliveries = 0usize;
    // Per client, its sends not yet answered, oldest first: the gateway's own error
    // frame ("Internal server error", e.g. a function timeout) names no message, but a
    // connection's frames are handled one at a time, so it answers the oldest.
    let mut unanswered: HashMap<usize, std::collections::VecDeque<usize>> = HashMap::new();
    let mut next_to_send = 0usize;
    let collector = async {
        // After the last send: wait while answers keep coming (a saturated run drains a
        // backlog), until `drain` passes without progress.
        let mut last_progress = tokio::time::Instant::now();
        loop {
            if done.load(Ordering::Acquire) {
                if outstanding_acks == 0 && outstanding_deliveries == 0 {
                    break;
                }
                if last_progress.elapsed() >= phase.drain {
                    break;
                }
            }
            // Sends scheduled by now are in flight.
            let now = Instant::now();
            while next_to_send < msgs.len() && msgs[next_to_send].scheduled <= now {
                let m = &msgs[next_to_send];
                unanswered
                    .entry(m.sender)
                    .or_default()
                    .push_back(next_to_send);
                next_to_send += 1;
            }
            let next = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
            let Ok(Some((client, at, event))) = next else {
                continue;
            };
            last_progress = tokio::time::Instant::now();
            match event {
                Event::Ack {
                    cmid,
                    position,
                    duplicate,
                    ..
                } => {
                    let Some(i) = index_of(&cmid) else { continue };
                    let m = &mut msgs[i];
                    m.acks += 1;
                    if duplicate || m.acks > 1 || client != m.sender {
                        duplicated += 1;
                        continue;
                    }
                    m.ack = Some((at, position));
                    if let Some(q) = unanswered.get_mut(&m.sender) {
                        q.retain(|j| *j != i);
                    }
                    if m.error.is_none() {
                        outstanding_acks -= 1;
                    }
                    outstanding_deliveries += phase.chats[m.chat].members.len() - 1;
                    outstanding_deliveries -= m.deliveries.len().min(outstanding_deliveries);
                }
                Event::Message {
                    cmid: Some(cmid), ..
                } => {
                    let Some(i) = index_of(&cmid) else { continue };
                    let m = &mut msgs[i];
                    if m.deliveries.iter().any(|(c, _)| *c == client)
                        || client == m.sender
                        || !phase.chats[m.chat].members.contains(&client)
                    {
                        duplicated += 1;
                        continue;
                    }
                    m.deliveries.push((client, at));
                    if m.ack.is_some() && outstanding_deliveries > 0 {
                        outstanding_deliveries -= 1;
                    }
                    let key = (client, m.chat, m.sender);
                    if let Some(prev) = last_seen.insert(key, i) {
                        if prev > i {
                            reordered += 1;
                        }
                    }
                }
                Event::Error { code, cmid } => {
                    *errors.entry(code).or_default() += 1;
                    let named = cmid.as_deref().and_then(index_of);
                    let target = match (named, cmid.is_none()) {
                        (Some(i), _) => {
                            if let Some(q) = unanswered.get_mut(&client) {
                                q.retain(|j| *j != i);
                            }
                            Some(i)
                        }
                        (None, true) => unanswered.get_mut(&client).and_then(|q| q.pop_front()),
                        (None, false) => None,
                    };
                    if let Some(i) = target {
                        let m = &mut msgs[i];
                        if m.ack.is_none() && m.error.is_none() {
                            outstanding_acks -= 1;
                        }
                        m.error = Some("error".into());
                    }
                }
                Event::Closed => {
                    *errors.entry("connection closed".into()).or_default() += 1;
                }
                _ => {}
            }
        }
    };
    let (failed, probe_samples, ()) = tokio::join!(scheduler, probe, collector);
    for i in failed {
        msgs[i].error.get_or_insert_with(|| "send failed".into());
        *errors
            .entry("send failed (socket gone)".into())
            .or_default() += 1;
    }
    let cpu = crate::driver::own_cpu().saturating_sub(cpu0);
    let ddb_cpu = ddb.zip(ddb0).map(|(d, c0)| d.cpu().saturating_sub(c0));

    // Checks and figures.
    let mut lost = 0;
    let mut unacked = 0;
    let mut ack_lat = Vec::new();
    let mut del_lat = Vec::new();
    let mut last_lat = Vec::new();
    let mut deliveries = 0;
    let mut measured = 0;
    let mut first_measured: Option<Instant> = None;
    let mut last_delivery: Option<Instant> = None;
    let mut positions: HashMap<usize, Vec<u64>> = HashMap::new();
    // Per sender and chat, ack positions must grow with the send order.
    let mut sender_pos: HashMap<(usize, usize), u64> = HashMap::new();
    for m in &msgs {
        deliveries += m.deliveries.len();
        let Some((ack_at, position)) = m.ack else {
            if m.error.is_none() {
                unacked += 1;
                if std::env::var_os("CHAT_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "unanswered: sender {} chat {} acks {} deliveries {:?}",
                        m.sender, m.chat, m.acks, m.deliveries
                    );
                }
            }
            continue;
        };
        positions.entry(m.chat).or_default().push(position);
        if let Some(prev) = sender_pos.insert((m.chat, m.sender), position) {
            if prev >= position {
                reordered += 1;
            }
        }
        let expected = phase.chats[m.chat].members.len() - 1;
        lost += expected.saturating_sub(m.deliveries.len());
        if !m.measured {
            continue;
        }
        measured += 1;
        first_measured.get_or_insert(m.scheduled);
        ack_lat.push(ack_at.saturating_duration_since(m.scheduled));
        for (_, at) in &m.deliveries {
            del_lat.push(at.saturating_duration_since(m.scheduled));
        }
        if m.deliveries.len() == expected {
            if let Some(latest) = m.deliveries.iter().map(|d| d.1).max() {
                last_lat.push(latest.saturating_duration_since(m.scheduled));
                last_delivery = Some(last_delivery.map_or(latest, |l: Instant| l.max(latest)));
            }
        }
    }
    // A send answered by an error (e.g. `ws-message` timing out under saturation) may
    // still have stored its message: its chat's acknowledged positions can then skip
    // one, which is no gap in the chat. Only chats without such sends are checked.
    let errored: std::collections::HashSet<usize> = msgs
        .iter()
        .filter(|m| m.error.is_some())
        .map(|m| m.chat)
        .collect();
    let mut gaps = 0;
    for (_, ps) in positions.iter_mut().filter(|(c, _)| !errored.contains(c)) {
        ps.sort_unstable();
        gaps += ps.windows(2).filter(|w| w[1] != w[0] + 1).count();
    }
    let achieved = match (first_measured, last_delivery) {
        (Some(a), Some(b)) if b > a => last_lat.len() as f64 / (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let sent = msgs.len();
    let recipients: usize = msgs
        .iter()
        .map(|m| phase.chats[m.chat].members.len() - 1)
        .sum();
    let to_ms = |v: &[Duration]| -> Vec<f64> { v.iter().map(|d| d.as_secs_f64() * 1e3).collect() };
    let delivery = Summary::of(&del_lat);
    PhaseResult {
        name: phase.name,
        connected: phase.connected,
        offered: phase.rate,
        fanout: recipients as f64 / sent.max(1) as f64,
        achieved,
        ack: Summary::of(&ack_lat),
        last: Summary::of(&last_lat),
        last_ms: to_ms(&last_lat),
        delivery_ms: to_ms(&del_lat),
        delivery,
        sent,
        measured,
        deliveries,
        lost,
        unacked,
        duplicated,
        reordered,
        gaps,
        errors,
        cpu_ms_per_msg: cpu.as_secs_f64() * 1e3 / sent.max(1) as f64,
        ddb_cpu_ms_per_msg: ddb_cpu.map(|c| c.as_secs_f64() * 1e3 / sent.max(1) as f64),
        probe: Summary::of(&probe_samples),
        saturated: achieved < 0.9 * phase.rate || delivery.p50 > 1000.0,
    }
}
