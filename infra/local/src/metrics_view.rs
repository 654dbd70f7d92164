//! EMF metrics on a laptop. In pretty mode (`LOG_FORMAT=pretty`, the default of
//! `chat-local`) every EMF record the in-process functions write is printed as one
//! readable line (`metrics ws-message: AckLatency=4ms DeliveriesSucceeded=2 ...`) and
//! added to a running total that `chat-local up` prints on exit. `chat-local
//! metrics-summary FILE` sums the EMF records of a saved log (JSON mode, or a
//! CloudWatch export: anything before the first `{` of a line is ignored).

use chat_core::metrics::{self, summarize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

/// name -> (unit, samples, sum, max), as [`metrics::summarize`] returns.
pub type Summary = BTreeMap<String, (String, u64, f64, f64)>;

fn totals() -> &'static Mutex<Summary> {
    static TOTALS: OnceLock<Mutex<Summary>> = OnceLock::new();
    TOTALS.get_or_init(|| Mutex::new(Summary::new()))
}

/// Add one summary into another.
pub fn merge(into: &mut Summary, more: Summary) {
    for (name, (unit, n, sum, max)) in more {
        let e = into.entry(name).or_insert_with(|| (unit, 0, 0.0, f64::MIN));
        e.1 += n;
        e.2 += sum;
        e.3 = e.3.max(max);
    }
}

/// One EMF line as a readable line: `metrics <Function>: Name=value ...`.
pub fn readable(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let function = v["Function"].as_str().unwrap_or("?");
    let defs = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array()?;
    let mut out = format!("metrics {function}:");
    for d in defs {
        let (Some(name), Some(unit)) = (d["Name"].as_str(), d["Unit"].as_str()) else {
            continue;
        };
        let suffix = if unit == "Milliseconds" { "ms" } else { "" };
        let fmt = |x: &Value| format!("{}{suffix}", x.as_f64().unwrap_or(f64::NAN));
        let value = match &v[name] {
            Value::Array(a) => format!("[{}]", a.iter().map(fmt).collect::<Vec<_>>().join(",")),
            x => fmt(x),
        };
        let _ = write!(out, " {name}={value}");
    }
    Some(out)
}

/// Print EMF records readably (through `tracing`) and keep a running total.
pub fn install_pretty_sink() {
    metrics::set_sink(Some(Box::new(|line: &str| {
        if let Some(text) = readable(line) {
            tracing::info!(target: "chat_local::metrics", "{text}");
        }
        if let Ok(mut t) = totals().lock() {
            merge(&mut t, summarize([line]));
        }
    })));
}

/// The running total of this process's EMF records (pretty mode).
pub fn totals_so_far() -> Summary {
    totals().lock().map(|t| t.clone()).unwrap_or_default()
}

/// Sum the EMF records of a log's text.
pub fn summarize_text(text: &str) -> Summary {
    summarize(
        text.lines()
            .filter_map(|l| l.find('{').map(|i| l[i..].trim_end())),
    )
}

/// A table: metric, unit, samples, sum, average, max.
pub fn render(summary: &Summary) -> String {
    if summary.is_empty() {
        return "no EMF metrics recorded\n".to_owned();
    }
    let mut out = format!(
        "{:<28} {:<13} {:>8} {:>12} {:>10} {:>10}\n",
        "metric", "unit", "samples", "sum", "avg", "max"
    );
    for (name, (unit, n, sum, max)) in summary {
        let avg = if *n > 0 { sum / *n as f64 } else { 0.0 };
        let _ = writeln!(
            out,
            "{name:<28} {unit:<13} {n:>8} {sum:>12.2} {avg:>10.2} {max:>10.2}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ServerlessChat","Dimensions":[["Function"]],"Metrics":[{"Name":"AckLatency","Unit":"Milliseconds"},{"Name":"MessagesSent","Unit":"Count"}]}]},"Function":"ws-message","AckLatency":[3.0,5.0],"MessagesSent":2.0}"#;

    #[test]
    fn readable_and_summary() {
        assert_eq!(
            readable(LINE).unwrap(),
            "metrics ws-message: AckLatency=[3ms,5ms] MessagesSent=2"
        );
        let text = format!("2026-01-01T00:00:00Z {LINE}\nnot json\n{LINE}\n");
        let s = summarize_text(&text);
        assert_eq!(s["MessagesSent"].2, 4.0);
        assert_eq!(s["AckLatency"].1, 4);
        assert_eq!(s["AckLatency"].3, 5.0);
        let mut total = Summary::new();
        merge(&mut total, s.clone());
        merge(&mut total, s);
        assert_eq!(total["MessagesSent"].2, 8.0);
        assert!(render(&total).contains("MessagesSent"));
    }
}
