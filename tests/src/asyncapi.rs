//! `docs/asyncapi.yaml` (the WebSocket protocol, AsyncAPI 3.0) and the frame checker
//! the WebSocket test client ([`crate::ws::Client`]) runs on every frame.
//!
//! A client frame is matched to the message whose payload has `action: {const: …}`
//! equal to its `action`; a server frame to the one with `type: {const: …}`; a frame
//! with neither is API Gateway's `gatewayError`. Payloads are validated with the
//! OpenAPI checker's JSON Schema subset ([`crate::openapi::OpenApi::validate`]). Client
//! frames are checked only when the server's own parser
//! ([`chat_core::protocol::parse_frame`]) accepts them: the tests send malformed frames
//! on purpose, and the document need not be able to tell every refusal.
//!
//! Every message seen is noted once per process in the file named by
//! `CHAT_ASYNCAPI_SEEN` (when set); `./dev test` sets it, runs the whole suite and then
//! runs the ignored test `asyncapi::every_documented_message_was_seen`, which reads the
//! file: every message the document lists must have appeared at least once.

use crate::openapi::OpenApi;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the file seen message names are appended to.
pub const SEEN_ENV: &str = "CHAT_ASYNCAPI_SEEN";

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (`operations.*.action: receive`), matched by `action`.
    ToServer,
    /// Server to client (`action: send`), matched by `type` (none: `gatewayError`).
    ToClient,
}

/// `docs/asyncapi.yaml`, indexed by discriminator.
pub struct AsyncApi {
    schemas: OpenApi,
    /// (direction, `action`/`type` value or "" for none) -> (message name, payload schema).
    by_key: BTreeMap<(u8, String), (String, Value)>,
}

fn dir_code(d: Direction) -> u8 {
    match d {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

/// The document, loaded and indexed once per test binary.
pub fn doc() -> &'static AsyncApi {
    static DOC: OnceLock<AsyncApi> = OnceLock::new();
    DOC.get_or_init(|| AsyncApi::load(&AsyncApi::default_path()))
}

impl AsyncApi {
    pub fn default_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/asyncapi.yaml")
    }

    /// Load and index; panics on a document the index cannot understand (an operation
    /// naming a missing message, a payload without its discriminator, two messages with
    /// one discriminator).
    pub fn load(path: &std::path::Path) -> Self {
        let schemas = OpenApi::from_path(path);
        let doc = schemas.doc().clone();
        let mut by_key = BTreeMap::new();
        let ops = doc["operations"]
            .as_object()
            .expect("asyncapi: `operations` is an object");
        for (op_name, op) in ops {
            let dir = match op["action"].as_str() {
                Some("receive") => Direction::ToServer,
                Some("send") => Direction::ToClient,
                other => panic!("asyncapi: operation {op_name}: action {other:?}"),
            };
            for m in op["messages"].as_array().into_iter().flatten() {
                let (name, payload) = resolve_message(&doc, m)
                    .unwrap_or_else(|e| panic!("asyncapi: operation {op_name}: {e}"));
                let key = discriminator(&doc, &payload, dir)
                    .unwrap_or_else(|e| panic!("asyncapi: message {name}: {e}"));
                if let Some((other, _)) =
                    by_key.insert((dir_code(dir), key.clone()), (name.clone(), payload))
                {
                    if other != name {
                        panic!("asyncapi: messages {other} and {name} share the key {key:?}");
                    }
                }
            }
        }
        AsyncApi { schemas, by_key }
    }

    pub fn doc(&self) -> &Value {
        self.schemas.doc()
    }

    /// Every documented message, by the key the checker notes: `"{dir}:{name}"`.
    pub fn message_keys(&self) -> Vec<String> {
        self.by_key
            .iter()
            .map(|((d, _), (name, _))| seen_key(*d, name))
            .collect()
    }

    /// Check one frame; the message's name when it validates.
    pub fn check(&self, dir: Direction, frame: &Value) -> Result<String, String> {
        let field = match dir {
            Direction::ToServer => "action",
            Direction::ToClient => "type",
        };
        let key = match frame.get(field) {
            Some(Value::String(s)) => s.clone(),
            None if dir == Direction::ToClient => String::new(),
            _ => return Err(format!("no string `{field}` in {frame}")),
        };
        let Some((name, payload)) = self.by_key.get(&(dir_code(dir), key.clone())) else {
            return Err(format!(
                "docs/asyncapi.yaml documents no {dir:?} message with {field} {key:?}: {frame}"
            ));
        };
        let mut errors = Vec::new();
        self.schemas.validate(payload, frame, "$", &mut errors, 0);
        if errors.is_empty() {
            Ok(name.clone())
        } else {
            Err(format!(
                "frame does not match message `{name}` of docs/asyncapi.yaml:\n  {}\nframe: {}",
                errors.join("\n  "),
                short(frame)
            ))
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 2000 {
        format!("{}…", s.chars().take(2000).collect::<String>())
    } else {
        s
    }
}

fn seen_key(dir: u8, name: &str) -> String {
    format!("{}:{name}", if dir == 0 { "client" } else { "server" })
}

fn follow<'a>(doc: &'a Value, mut v: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..10 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let p = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("non-local $ref {r}"))?;
                v = doc
                    .pointer(p)
                    .ok_or_else(|| format!("{r} does not resolve"))?;
            }
            None => return Ok(v),
        }
    }
    Err("$ref chain too long".into())
}

/// A message reference -> (its `name`, its payload schema).
fn resolve_message(doc: &Value, m: &Value) -> Result<(String, Value), String> {
    let msg = follow(doc, m)?;
    let name = msg["name"]
        .as_str()
        .ok_or_else(|| format!("message {m} has no name"))?
        .to_owned();
    if msg["payload"].is_null() {
        return Err(format!("message {name} has no payload"));
    }
    Ok((name, msg["payload"].clone()))
}

/// The `action`/`type` const of a payload ("" for a server message with no `type`).
fn discriminator(doc: &Value, payload: &Value, dir: Direction) -> Result<String, String> {
    let schema = follow(doc, payload)?;
    let field = match dir {
        Direction::ToServer => "action",
        Direction::ToClient => "type",
    };
    match schema["properties"].get(field) {
        Some(p) => p["const"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("`{field}` is not a string const")),
        None if dir == Direction::ToClient => Ok(String::new()),
        None => Err(format!("no `{field}` property")),
    }
}

/// Check a frame the test client sent or received; panics when it does not match the
/// document (so the test that produced it fails and names the frame), and notes the
/// message as seen.
pub fn check_frame(dir: Direction, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if dir == Direction::ToServer && chat_core::protocol::parse_frame(text).is_err() {
        return;
    }
    match doc().check(dir, &frame) {
        Ok(name) => note_seen(dir, &name),
        Err(e) => panic!("{e}"),
    }
}

fn note_seen(dir: Direction, name: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = seen_key(dir_code(dir), name);
    let first = SEEN
        .get_or_init(Default::default)
        .lock()
        .map(|mut s| s.insert(key.clone()))
        .unwrap_or(false);
    if !first {
        return;
    }
    if let Ok(path) = std::env::var(SEEN_ENV) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{key}");
        }
    }
}
