//! Metrics as CloudWatch Embedded Metric Format (EMF): one JSON line per invocation on
//! stdout, which CloudWatch Logs turns into metrics with no client library and no
//! extra API call. One dimension set, `[Function]`, so cardinality stays at the number
//! of functions (never user or chat ids); ids that help an investigation go in as plain
//! properties (searchable in Logs Insights, not dimensions).
//!
//! Use: `let mut m = Metrics::new("ws-message"); m.count("MessagesSent", 1);
//! m.milliseconds("AckLatency", 3.2); m.flush();` (also flushed on drop). Locally,
//! [`set_sink`] redirects the lines (the gateway's pretty mode, tests that assert on
//! them); [`summarize`] sums a log of such lines.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// The CloudWatch namespace of every metric of the project.
pub const NAMESPACE: &str = "ServerlessChat";

/// Where EMF lines go.
pub type Sink = Box<dyn Fn(&str) + Send + Sync>;

fn sink() -> &'static Mutex<Option<Sink>> {
    static SINK: OnceLock<Mutex<Option<Sink>>> = OnceLock::new();
    SINK.get_or_init(|| Mutex::new(None))
}

/// Send EMF lines somewhere else than stdout (None: back to stdout).
pub fn set_sink(s: Option<Sink>) {
    if let Ok(mut g) = sink().lock() {
        *g = s;
    }
}

fn emit(line: &str) {
    match sink().lock() {
        Ok(g) => match g.as_ref() {
            Some(f) => f(line),
            None => println!("{line}"),
        },
        Err(_) => println!("{line}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// The metrics of one invocation.
#[derive(Debug)]
pub struct Metrics {
    function: String,
    values: BTreeMap<String, (Unit, Vec<f64>)>,
    properties: Map<String, Value>,
    flushed: bool,
}

impl Metrics {
    pub fn new(function: &str) -> Self {
        Metrics {
            function: function.to_owned(),
            values: BTreeMap::new(),
            properties: Map::new(),
            flushed: false,
        }
    }

    fn put(&mut self, name: &str, unit: Unit, v: f64) {
        self.values
            .entry(name.to_owned())
            .or_insert_with(|| (unit, Vec::new()))
            .1
            .push(v);
    }

    /// Add `n` to a counter (several calls with the same name add up).
    pub fn count(&mut self, name: &str, n: u64) {
        match self.values.get_mut(name) {
            Some((Unit::Count, vals)) if vals.len() == 1 => vals[0] += n as f64,
            _ => self.put(name, Unit::Count, n as f64),
        }
    }

    /// Record a duration sample (several samples per invocation are kept apart, so
    /// CloudWatch percentiles see each).
    pub fn milliseconds(&mut self, name: &str, ms: f64) {
        self.put(name, Unit::Milliseconds, ms);
    }

    pub fn bytes(&mut self, name: &str, n: u64) {
        self.put(name, Unit::Bytes, n as f64);
    }

    /// A searchable property of the record (not a dimension).
    pub fn property(&mut self, key: &str, value: impl Into<Value>) {
        self.properties.insert(key.to_owned(), value.into());
    }

    /// The EMF JSON object, or None when nothing was recorded.
    pub fn to_json(&self, timestamp_ms: i64) -> Option<Value> {
        if self.values.is_empty() {
            return None;
        }
        let defs: Vec<Value> = self
            .values
            .iter()
            .map(|(name, (unit, _))| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut root = self.properties.clone();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": defs,
                }],
            }),
        );
        root.insert("Function".into(), Value::String(self.function.clone()));
        for (name, (_, vals)) in &self.values {
            let v = if vals.len() == 1 {
                json!(vals[0])
            } else {
                json!(vals)
            };
            root.insert(name.clone(), v);
        }
        Some(Value::Object(root))
    }

    /// Write the record now (once).
    pub fn flush(&mut self) {
        if self.flushed {
            return;
        }
        self.flushed = true;
        if let Some(v) = self.to_json(crate::model::now_millis()) {
            emit(&v.to_string());
        }
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Whether a log line is an EMF record.
pub fn is_emf(line: &str) -> bool {
    line.starts_with('{') && line.contains("\"_aws\"") && line.contains("CloudWatchMetrics")
}

/// Sum every metric over EMF lines (for a local run's summary): name -> (unit, count of
/// samples, sum, max).
pub fn summarize<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, (String, u64, f64, f64)> {
    let mut out: BTreeMap<String, (String, u64, f64, f64)> = BTreeMap::new();
    for line in lines {
        if !is_emf(line) {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let defs = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for d in defs {
            let (Some(name), Some(unit)) = (d["Name"].as_str(), d["Unit"].as_str()) else {
                continue;
            };
            let samples: Vec<f64> = match &v[name] {
                Value::Number(n) => n.as_f64().into_iter().collect(),
                Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
                _ => continue,
            };
            let e = out
                .entry(name.to_owned())
                .or_insert_with(|| (unit.to_owned(), 0, 0.0, f64::MIN));
            for s in samples {
                e.1 += 1;
                e.2 += s;
                e.3 = e.3.max(s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let mut m = Metrics::new("ws-message");
        m.count("MessagesSent", 1);
        m.count("MessagesSent", 2);
        m.milliseconds("AckLatency", 3.5);
        m.milliseconds("AckLatency", 4.5);
        m.property("requestId", "abc");
        let v = m.to_json(1_700_000_000_000).unwrap();
        m.flushed = true;
        assert_eq!(v["Function"], "ws-message");
        assert_eq!(v["MessagesSent"], 3.0);
        assert_eq!(v["AckLatency"], json!([3.5, 4.5]));
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        let line = v.to_string();
        let sum = summarize([line.as_str(), "not emf", line.as_str()]);
        assert_eq!(sum["MessagesSent"].2, 6.0);
        assert_eq!(sum["AckLatency"].1, 4);
        assert_eq!(sum["AckLatency"].3, 4.5);
    }

    #[test]
    fn empty_records_are_not_written() {
        let mut m = Metrics::new("x");
        assert!(m.to_json(0).is_none());
        m.flushed = true;
    }
}
