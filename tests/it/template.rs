//! Checks that `infra/template.yaml` is deployable as the code expects, without AWS and
//! without the local backend (it only reads files):
//!
//! - every HTTP and WebSocket route (and the SNS subscription) reaches a function whose
//!   `Metadata.BuildProperties.Binary` is a `[[bin]]` of a workspace crate;
//! - every function is built the same way (provided.al2023, arm64, cargo-lambda), states
//!   its memory and timeout, and logs to its own log group with a retention;
//! - every function's environment names only parameters and resources the template
//!   defines, and sets every variable the code `require`s;
//! - every function's `Policies` grant exactly what `functions/<crate>/permissions.yaml`
//!   lists (explicit statements only, no wildcard actions, `*` only where the service
//!   has no resource type), naming only tables, indexes and topics that exist;
//! - the code needs no more than that list, and the list holds nothing the code does
//!   not use: the test reads `shared/src/store/`, works out which DynamoDB actions on
//!   which tables each store method needs (following calls between store methods),
//!   then finds the store methods and SDK operations each function crate calls,
//!   directly or through the chat-core functions it reaches by name.
//!
//! The code analysis follows a function crate into chat-core by name: a chat-core
//! function counts as used when the code so far calls it (`name(`, `.name(` or
//! `Owner::name`); a name defined more than once also needs its impl type or module
//! mentioned. `TEMPLATE_TEST_TRACE=<crate>` prints what it reached for one crate.
//!
//! What it cannot prove: the code analysis is textual. It sees a call by its method name
//! (`.append_text(`), not by type, so a same-named method of another type counts (an
//! over-approximation); it cannot see calls made through function pointers, macros or
//! a raw client taken from `Store::client()` (the project rule is that only the store
//! builds DynamoDB requests, and raw item calls outside the store fail this test); it
//! counts every branch (a method needing `GetItem` only on its error path still needs
//! it); and it cannot tell which topic or endpoint an SNS `Publish` targets, only that
//! the list allows `Publish` somewhere. IAM semantics (that these actions really
//! authorize these calls) come from AWS's documentation, not from this test; the
//! deployed end-to-end run (docs/deployment.md) is the check of that.

use chat_core::config::Tables;
use chat_local::template::Template;
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn template() -> (Template, Value) {
    let path = root().join("infra/template.yaml");
    let text = read(&path);
    let t = Template::parse(&text).expect("the template parses");
    let doc: Value = serde_yaml::from_str(&text).expect("the template is YAML");
    (t, doc)
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()
        .and_then(|m| m.get(Value::String(key.to_owned())))
}

fn tag<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        _ => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(seq)) => seq
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

// ------------------------------------------------------------------ workspace

/// Workspace member directories and the `[[bin]]` names each declares.
fn workspace_bins() -> BTreeMap<String, PathBuf> {
    let manifest = read(&root().join("Cargo.toml"));
    let members = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("workspace members list");
    let mut bins = BTreeMap::new();
    for member in members.split(',').filter_map(|m| {
        let m = m.trim().trim_matches('"');
        (!m.is_empty()).then(|| m.to_owned())
    }) {
        let dir = root().join(&member);
        let text = read(&dir.join("Cargo.toml"));
        for section in text.split("[[bin]]").skip(1) {
            let section = section.split("\n[").next().unwrap_or_default();
            if let Some(name) = section.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
            }) {
                bins.insert(name, dir.clone());
            }
        }
    }
    bins
}

#[test]
fn every_route_reaches_a_function_built_from_a_workspace_binary() {
    let (t, _) = template();
    let bins = workspace_bins();
    let functions = t.functions().unwrap();
    let by_id: BTreeMap<_, _> = functions
        .iter()
        .map(|f| (f.logical_id.clone(), f))
        .collect();

    let ws = t.websocket_api().unwrap();
    for key in ["$connect", "$disconnect", "$default"] {
        assert!(
            ws.routes.contains_key(key),
            "WebSocket route {key} is missing"
        );
    }
    let mut reached = BTreeSet::new();
    for (key, function) in &ws.routes {
        assert!(
            by_id.contains_key(function),
            "route {key}: no function {function}"
        );
        reached.insert(function.clone());
    }
    let routes = t.http_routes().unwrap();
    assert!(!routes.is_empty(), "the HTTP API has no routes");
    let mut seen = BTreeSet::new();
    for r in &routes {
        assert!(
            seen.insert((r.method.clone(), r.path.clone())),
            "HTTP route {} {} is defined twice",
            r.method,
            r.path
        );
        reached.insert(r.function.clone());
    }
    for f in &functions {
        if !f.sns_topics.is_empty() {
            for topic in &f.sns_topics {
                assert!(
                    t.topics().contains(topic),
                    "{}: no topic {topic}",
                    f.logical_id
                );
            }
            reached.insert(f.logical_id.clone());
        }
        let dir = bins.get(&f.binary).unwrap_or_else(|| {
            panic!(
                "{}: binary {} is no [[bin]] of a workspace crate",
                f.logical_id, f.binary
            )
        });
        assert!(
            dir.join("src/main.rs").exists() && dir.join("src/lib.rs").exists(),
            "{}: {} needs src/main.rs and src/lib.rs",
            f.logical_id,
            rel(dir)
        );
        assert!(
            reached.contains(&f.logical_id),
            "{} is reached by no route or topic",
            f.logical_id
        );
    }
}

#[test]
fn every_function_is_built_for_arm64_and_logs_with_retention() {
    let (t, doc) = template();
    let globals = get(&doc, "Globals")
        .and_then(|g| get(g, "Function"))
        .unwrap();
    assert_eq!(
        get(globals, "Runtime").and_then(Value::as_str),
        Some("provided.al2023")
    );
    assert_eq!(
        strings(get(globals, "Architectures")),
        vec!["arm64".to_owned()]
    );
    assert!(
        tag(get(globals, "Tracing").unwrap(), "!Ref").and_then(Value::as_str) == Some("Tracing"),
        "Globals.Function.Tracing must follow the Tracing parameter"
    );
    for (id, r) in &t.resources {
        if r.kind != "AWS::Serverless::Function" {
            continue;
        }
        let p = &r.properties;
        assert_eq!(
            get(&r.metadata, "BuildMethod").and_then(Value::as_str),
            Some("rust-cargolambda"),
            "{id}: Metadata.BuildMethod"
        );
        for own in ["Runtime", "Architectures", "CodeUri", "Handler"] {
            assert!(get(p, own).is_none(), "{id}: {own} must come from Globals");
        }
        for stated in ["MemorySize", "Timeout", "Description"] {
            assert!(get(p, stated).is_some(), "{id}: state its {stated}");
        }
        let group = get(p, "LoggingConfig")
            .and_then(|l| get(l, "LogGroup"))
            .and_then(|g| tag(g, "!Ref"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup: !Ref its log group"));
        let lg = t.resources.get(group).expect("log group defined");
        assert_eq!(lg.kind, "AWS::Logs::LogGroup", "{id}: {group}");
        assert!(
            get(&lg.properties, "RetentionInDays").is_some(),
            "{group}: RetentionInDays"
        );
    }
}

// ------------------------------------------------------------------ environment

/// Names an intrinsic value refers to (`!Ref X`, `!GetAtt X.Y`, `${X}` in `!Sub`).
fn references(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Tagged(t) => match t.tag.to_string().as_str() {
            "!Ref" => out.extend(t.value.as_str().map(str::to_owned)),
            "!GetAtt" => out.extend(
                t.value
                    .as_str()
                    .and_then(|s| s.split('.').next())
                    .map(str::to_owned),
            ),
            "!Sub" => {
                let text = t.value.as_str().unwrap_or_default();
                for part in text.split("${").skip(1) {
                    let name = part.split('}').next().unwrap_or_default();
                    out.insert(name.split('.').next().unwrap_or_default().to_owned());
                }
            }
            _ => references(&t.value, out),
        },
        Value::Sequence(s) => s.iter().for_each(|x| references(x, out)),
        Value::Mapping(m) => m.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Variables the runtime or the local stack provide, never the template.
const PROVIDED: [&str; 4] = [
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

#[test]
fn function_environments_name_only_what_the_template_defines() {
    let (t, _) = template();
    let store = StoreModel::load();
    for f in t.functions().unwrap() {
        for (name, value) in &f.environment {
            let mut refs = BTreeSet::new();
            references(value, &mut refs);
            for r in refs {
                assert!(
                    r.starts_with("AWS::")
                        || t.resources.contains_key(&r)
                        || t.parameters.contains_key(&r),
                    "{}: {name} refers to {r}, which the template does not define",
                    f.logical_id
                );
            }
        }
        for (var, logical) in Tables::VARS {
            assert!(
                f.environment.contains_key(var),
                "{}: {var} is not set",
                f.logical_id
            );
            let mut refs = BTreeSet::new();
            references(&f.environment[var], &mut refs);
            assert!(
                refs.contains(logical),
                "{}: {var} must be !Ref {logical}",
                f.logical_id
            );
        }
        let code = FunctionCode::load(&f.binary, &store);
        for var in &code.required_env {
            assert!(
                f.environment.contains_key(var) || PROVIDED.contains(&var.as_str()),
                "{}: the code requires {var}, which the template does not set",
                f.logical_id
            );
        }
    }
}

// ------------------------------------------------------------------ permissions

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionList {
    function: String,
    #[serde(default)]
    dynamodb: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    sns: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    manage_connections: Vec<String>,
    /// `Bucket/prefix/*` -> S3 object actions.
    #[serde(default)]
    s3: BTreeMap<String, Vec<String>>,
}

/// One grant: (service, action, resource) with resources as template names:
/// `UsersTable`, `MembersTable/index/byUser`, `OfflineMessageTopic`,
/// `ApnsPlatformApplicationArn/endpoints`, `WebSocketApi`, or `*`.
type Grant = (String, String, String);

impl PermissionList {
    fn load(dir: &Path) -> Self {
        let path = dir.join("permissions.yaml");
        serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn grants(&self) -> BTreeSet<Grant> {
        let mut out = BTreeSet::new();
        for (service, map) in [
            ("dynamodb", &self.dynamodb),
            ("sns", &self.sns),
            ("s3", &self.s3),
        ] {
            for (res, actions) in map {
                for a in actions {
                    out.insert((service.into(), a.clone(), res.clone()));
                }
            }
        }
        for m in &self.manage_connections {
            out.insert(("execute-api".into(), m.clone(), "WebSocketApi".into()));
        }
        out
    }
}

/// SNS actions without a resource type in IAM: `*` is the only resource they take.
const NO_RESOURCE_TYPE: [&str; 4] = [
    "CreatePlatformEndpoint",
    "DeleteEndpoint",
    "GetEndpointAttributes",
    "SetEndpointAttributes",
];

/// The template name of a policy resource.
fn resource_name(v: &Value) -> Result<String, String> {
    if let Some(x) = tag(v, "!GetAtt").and_then(Value::as_str) {
        return x
            .strip_suffix(".Arn")
            .map(str::to_owned)
            .ok_or_else(|| format!("!GetAtt {x}: expected X.Arn"));
    }
    if let Some(x) = tag(v, "!Ref").and_then(Value::as_str) {
        return Ok(x.to_owned());
    }
    if let Some(s) = tag(v, "!Sub").and_then(Value::as_str) {
        if let Some((table, index)) = s
            .strip_prefix("${")
            .and_then(|r| r.split_once(".Arn}/index/"))
        {
            return Ok(format!("{table}/index/{index}"));
        }
        // Objects under a prefix of a bucket: ${Bucket.Arn}/prefix/*
        if let Some((bucket, objects)) = s.strip_prefix("${").and_then(|r| r.split_once(".Arn}/")) {
            return Ok(format!("{bucket}/{objects}"));
        }
        if s.contains(":execute-api:") {
            let tail = s
                .split_once("${WebSocketApi}/${StageName}/")
                .map(|(_, t)| t)
                .ok_or_else(|| format!("{s}: not this API's stage"))?;
            let method = tail
                .strip_suffix("/@connections/*")
                .ok_or_else(|| format!("{s}: expected .../METHOD/@connections/*"))?;
            return Ok(format!("WebSocketApi/{method}"));
        }
        return Err(format!("unrecognised !Sub resource {s}"));
    }
    if let Some(parts) = tag(v, "!Join") {
        // !Join ["", [!Select [0, !Split [":app/", !Ref P]], ":endpoint/", !Select [1, ...], "/*"]]
        let mut refs = BTreeSet::new();
        references(parts, &mut refs);
        let text = serde_yaml::to_string(parts).unwrap_or_default();
        if refs.len() == 1 && text.contains(":endpoint/") && text.contains(":app/") {
            return Ok(format!(
                "{}/endpoints",
                refs.into_iter().next().unwrap_or_default()
            ));
        }
        return Err(format!("unrecognised !Join resource {text}"));
    }
    match v {
        Value::String(s) if s == "*" => Ok(s.clone()),
        Value::String(s) => Err(format!("literal ARN {s}: use !GetAtt/!Ref/!Sub")),
        _ => Err(format!("unrecognised resource {v:?}")),
    }
}

/// The grants of a function's `Policies` (explicit statements, optionally under `!If`).
fn template_grants(id: &str, properties: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let policies = get(properties, "Policies")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{id}: no Policies"));
    for p in policies {
        let doc = match tag(p, "!If").and_then(Value::as_sequence) {
            Some(branches) if branches.len() == 3 => {
                assert!(
                    tag(&branches[2], "!Ref").and_then(Value::as_str) == Some("AWS::NoValue"),
                    "{id}: a conditional policy's else branch must be AWS::NoValue"
                );
                &branches[1]
            }
            _ => p,
        };
        let statements = get(doc, "Statement")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| {
                panic!("{id}: use explicit Statement policies, not {p:?} (policy templates grant more than the code needs)")
            });
        for s in statements {
            assert_eq!(
                get(s, "Effect").and_then(Value::as_str),
                Some("Allow"),
                "{id}"
            );
            let resources: Vec<Value> = match get(s, "Resource") {
                Some(Value::Sequence(seq)) => seq.clone(),
                Some(v) => vec![v.clone()],
                None => panic!("{id}: statement without Resource"),
            };
            for action in strings(get(s, "Action")) {
                assert!(!action.contains('*'), "{id}: wildcard action {action}");
                let (service, name) = action
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{id}: action {action}"));
                for r in &resources {
                    let res = resource_name(r).unwrap_or_else(|e| panic!("{id}: {e}"));
                    let grant = match (service, name) {
                        ("execute-api", "ManageConnections") => {
                            let method = res.strip_prefix("WebSocketApi/").unwrap_or_else(|| {
                                panic!("{id}: ManageConnections on {res}, not this API's stage")
                            });
                            ("execute-api".into(), method.into(), "WebSocketApi".into())
                        }
                        _ => (service.into(), name.into(), res),
                    };
                    out.insert(grant);
                }
            }
        }
    }
    out
}

fn crate_dir(binary: &str) -> PathBuf {
    workspace_bins()
        .remove(binary)
        .unwrap_or_else(|| panic!("no crate with binary {binary}"))
}

/// `functions/x` rather than `/abs/tests/../functions/x` in messages.
fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn policies_grant_exactly_the_permission_lists() {
    let (t, _) = template();
    let tables: BTreeMap<_, _> = t
        .tables()
        .unwrap()
        .into_iter()
        .map(|d| (d.logical_id.clone(), d))
        .collect();
    let topics = t.topics();
    for f in t.functions().unwrap() {
        let dir = crate_dir(&f.binary);
        let list = PermissionList::load(&dir);
        assert_eq!(
            list.function,
            f.logical_id,
            "{}/permissions.yaml",
            rel(&dir)
        );
        let granted = template_grants(&f.logical_id, &t.resources[&f.logical_id].properties);
        let listed = list.grants();
        let extra: Vec<_> = granted.difference(&listed).collect();
        let missing: Vec<_> = listed.difference(&granted).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{}: the template grants {extra:?} beyond {}/permissions.yaml and lacks {missing:?}",
            f.logical_id,
            rel(&dir)
        );
        for (service, action, res) in &listed {
            match service.as_str() {
                "dynamodb" => {
                    let (table, index) = match res.split_once("/index/") {
                        Some((t, i)) => (t, Some(i)),
                        None => (res.as_str(), None),
                    };
                    let def = tables
                        .get(table)
                        .unwrap_or_else(|| panic!("{}: no table {table}", f.logical_id));
                    if let Some(index) = index {
                        assert!(
                            def.indexes.iter().any(|i| i.name == index),
                            "{}: {table} has no index {index}",
                            f.logical_id
                        );
                        assert_eq!(
                            action, "Query",
                            "{}: an index only serves Query",
                            f.logical_id
                        );
                    }
                }
                "sns" => {
                    if res == "*" {
                        assert!(
                            NO_RESOURCE_TYPE.contains(&action.as_str()),
                            "{}: sns:{action} on * although it has a resource type",
                            f.logical_id
                        );
                    } else if let Some(param) = res.strip_suffix("/endpoints") {
                        assert!(
                            t.parameters.contains_key(param),
                            "{}: {param}",
                            f.logical_id
                        );
                    } else {
                        assert!(topics.contains(res), "{}: no topic {res}", f.logical_id);
                    }
                }
                "execute-api" => assert!(
                    ["POST", "GET", "DELETE"].contains(&action.as_str()),
                    "{}: @connections method {action}",
                    f.logical_id
                ),
                "s3" => {
                    let bucket = res.split('/').next().unwrap_or_default();
                    assert!(
                        t.buckets().iter().any(|b| b == bucket) && res.ends_with("/*"),
                        "{}: s3 on {res}: expected BucketLogicalId/prefix/*",
                        f.logical_id
                    );
                }
                other => panic!("{}: unexpected service {other}", f.logical_id),
            }
        }
    }
}

// ------------------------------------------------------------------ code analysis

/// Source text without `//` comments and without whitespace except one space between
/// two words, so that calls split over lines read as one token string
/// (`self.db.get_item().table_name(&self.t.users)`) and `let pair` stays two words.
fn compact(text: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for l in text.lines() {
        let l = match l.find("//") {
            // keep "https://..." inside strings
            Some(i) if !l[..i].ends_with(':') => &l[..i],
            _ => l,
        };
        for c in l.chars().chain(std::iter::once('\n')) {
            if c.is_whitespace() {
                gap = true;
                continue;
            }
            if gap && word(c) && out.chars().next_back().is_some_and(word) {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        }
    }
    out
}

/// DynamoDB request markers in store code and the IAM action each needs.
const DYNAMODB_OPS: [(&str, &str); 14] = [
    (".get_item()", "GetItem"),
    (".put_item()", "PutItem"),
    (".update_item()", "UpdateItem"),
    (".delete_item()", "DeleteItem"),
    (".query()", "Query"),
    (".scan()", "Scan"),
    (".batch_get_item()", "BatchGetItem"),
    (".batch_write_item()", "BatchWriteItem"),
    // items of TransactWriteItems / TransactGetItems
    ("Put::builder()", "PutItem"),
    ("Update::builder()", "UpdateItem"),
    ("Delete::builder()", "DeleteItem"),
    ("ConditionCheck::builder()", "ConditionCheckItem"),
    ("Get::builder()", "GetItem"),
    ("PutRequest::builder()", "BatchWriteItem"),
];

/// (resource, action): `MembersTable` / `MembersTable/index/byUser`, `GetItem`.
type Need = (String, String);

#[derive(Debug, Default)]
struct Method {
    public: bool,
    ops: BTreeSet<Need>,
    /// Actions on a table the method takes as an argument (`batch_get(table, ..)`).
    param_ops: BTreeSet<String>,
    calls: BTreeSet<String>,
    /// `(&self.t.x, ..)` call arguments: tables passed to a parameterised request.
    table_args: Vec<(String, String)>,
}

struct StoreModel {
    methods: BTreeMap<String, Method>,
}

fn table_of_field(field: &str) -> String {
    let var = format!("{}_TABLE", field.to_ascii_uppercase());
    Tables::VARS
        .iter()
        .find(|(v, _)| *v == var)
        .map(|(_, l)| (*l).to_owned())
        .unwrap_or_else(|| panic!("store field self.t.{field} has no table variable {var}"))
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Split a source file into its `fn` items: (name, is `pub async`, compact body).
fn functions_of(text: &str) -> Vec<(String, bool, String)> {
    let mut out: Vec<(String, bool, String)> = Vec::new();
    let mut current: Option<(String, bool, String)> = None;
    for line in text.lines() {
        let l = line.trim_start();
        let header = [
            "pub(crate) async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub fn ",
            "async fn ",
            "fn ",
        ]
        .iter()
        .find_map(|p| {
            // a Store method callable from functions: `pub async fn`
            l.strip_prefix(p)
                .map(|rest| (p.starts_with("pub async"), ident_at(rest)))
        });
        if let Some((public, name)) = header {
            out.extend(current.take());
            current = Some((name.to_owned(), public, String::new()));
        }
        if let Some((_, _, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.extend(current);
    out.into_iter()
        .map(|(n, p, b)| (n, p, compact(&b)))
        .collect()
}

impl StoreModel {
    fn load() -> Self {
        let dir = root().join("shared/src/store");
        let mut methods = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            for (name, public, body) in functions_of(&read(&path)) {
                if name == "tests" {
                    continue;
                }
                let m = methods.entry(name).or_insert_with(Method::default);
                m.public |= public;
                Self::scan(&body, m);
            }
        }
        let names: Vec<String> = methods.keys().cloned().collect();
        for m in methods.values_mut() {
            m.calls.retain(|c| names.contains(c));
        }
        StoreModel { methods }
    }

    fn scan(body: &str, m: &mut Method) {
        let mut markers: Vec<(usize, &str)> = DYNAMODB_OPS
            .iter()
            .flat_map(|(marker, action)| body.match_indices(marker).map(move |(i, _)| (i, *action)))
            .collect();
        markers.sort();
        for (k, (pos, action)) in markers.iter().enumerate() {
            let end = markers.get(k + 1).map(|(p, _)| *p).unwrap_or(body.len());
            let span = &body[*pos..end];
            let table = span
                .find(".table_name(")
                .map(|i| &span[i + ".table_name(".len()..])
                .and_then(|rest| rest.strip_prefix("&self.t."))
                .map(ident_at);
            match table {
                Some(field) => {
                    let mut res = table_of_field(field);
                    if let Some(i) = span.find(".index_name(\"") {
                        let index = &span[i + ".index_name(\"".len()..];
                        res = format!("{res}/index/{}", &index[..index.find('"').unwrap_or(0)]);
                    }
                    m.ops.insert((res, (*action).to_owned()));
                }
                None => {
                    m.param_ops.insert((*action).to_owned());
                }
            }
        }
        // self.method( calls and the tables passed as first arguments
        for (i, _) in body.match_indices("self.") {
            let rest = &body[i + "self.".len()..];
            let name = ident_at(rest);
            let after = &rest[name.len()..];
            if after.starts_with('(') && name != "t" && name != "db" {
                m.calls.insert(name.to_owned());
                if let Some(arg) = after[1..].strip_prefix("&self.t.") {
                    m.table_args
                        .push((name.to_owned(), table_of_field(ident_at(arg))));
                }
            }
        }
        // closures / helpers called with a table: `put(&self.t.chats, ..)`
        for (i, _) in body.match_indices("(&self.t.") {
            if !body[..i].ends_with(".table_name") {
                let field = ident_at(&body[i + "(&self.t.".len()..]);
                m.table_args.push((String::new(), table_of_field(field)));
            }
        }
    }

    /// Everything `name` needs, following calls to other store methods.
    fn needs(&self, name: &str) -> BTreeSet<Need> {
        let mut out = BTreeSet::new();
        self.collect(name, &mut out, &mut BTreeSet::new());
        out
    }

    fn collect(&self, name: &str, out: &mut BTreeSet<Need>, seen: &mut BTreeSet<String>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        let Some(m) = self.methods.get(name) else {
            return;
        };
        out.extend(m.ops.iter().cloned());
        // a parameterised request inside this method: the tables this method passes
        // to its own closures
        if !m.param_ops.is_empty() {
            for (callee, table) in &m.table_args {
                if callee.is_empty() {
                    for a in &m.param_ops {
                        out.insert((table.clone(), a.clone()));
                    }
                }
            }
        }
        for (callee, table) in &m.table_args {
            if let Some(c) = self.methods.get(callee) {
                for a in &c.param_ops {
                    out.insert((table.clone(), a.clone()));
                }
            }
        }
        for c in &m.calls {
            self.collect(c, out, seen);
        }
    }

    fn public_methods(&self) -> impl Iterator<Item = &String> {
        self.methods
            .iter()
            .filter(|(n, m)| m.public && !["new", "tables", "client"].contains(&n.as_str()))
            .map(|(n, _)| n)
    }
}

/// SDK calls a function may make directly and the grant each needs
/// (resource `?` = "any resource the list names for this action").
const SDK_OPS: [(&str, &str, &str); 15] = [
    (".publish()", "sns", "Publish"),
    // PublishBatch is authorized by sns:Publish
    (".publish_batch()", "sns", "Publish"),
    (
        ".create_platform_endpoint()",
        "sns",
        "CreatePlatformEndpoint",
    ),
    (".set_endpoint_attributes()", "sns", "SetEndpointAttributes"),
    (".get_endpoint_attributes()", "sns", "GetEndpointAttributes"),
    (".delete_endpoint()", "sns", "DeleteEndpoint"),
    (".post_to_connection()", "execute-api", "POST"),
    (".delete_connection()", "execute-api", "DELETE"),
    (".get_connection()", "execute-api", "GET"),
    // A presigned request acts with the presigner's rights.
    (".put_object()", "s3", "PutObject"),
    // The signed `x-amz-tagging` of a presigned upload.
    (".tagging(", "s3", "PutObjectTagging"),
    (".get_object()", "s3", "GetObject"),
    // HeadObject is authorized by s3:GetObject
    (".head_object()", "s3", "GetObject"),
    (".delete_object()", "s3", "DeleteObject"),
    (".delete_object_tagging()", "s3", "DeleteObjectTagging"),
];

/// Raw DynamoDB item calls: only the store may make them.
const RAW_DYNAMODB: [&str; 8] = [
    ".get_item()",
    ".put_item()",
    ".update_item()",
    ".delete_item()",
    ".batch_get_item()",
    ".batch_write_item()",
    ".transact_write_items()",
    ".scan()",
];

struct FunctionCode {
    files: Vec<PathBuf>,
    store_calls: BTreeSet<String>,
    needs: BTreeSet<Grant>,
    /// SDK actions used directly: (service, action).
    sdk: BTreeSet<(String, String)>,
    required_env: BTreeSet<String>,
    raw_dynamodb: Vec<String>,
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            rust_files(&e.unwrap().path(), out);
        }
    } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
        out.push(path.to_owned());
    }
}

/// Identifiers of a compact source.
fn identifiers(code: &str) -> BTreeSet<String> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            w.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The `fn` items of chat-core outside the store: (module file, owner, name, compact
/// body), the owner being the `impl` type of a method or the module of a free function.
fn chat_core_functions() -> Vec<(PathBuf, String, String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    let store = root().join("shared/src/store");
    let mut out = Vec::new();
    for f in files.into_iter().filter(|f| !f.starts_with(&store)) {
        let text = read(&f);
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        // owner of each fn header, in order
        let mut owners = Vec::new();
        let mut current_impl = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("impl") {
                let rest = rest.trim_start();
                let rest = if rest.starts_with('<') {
                    rest.split_once('>').map(|(_, r)| r).unwrap_or(rest)
                } else {
                    rest
                };
                let ty = rest.split_once(" for ").map(|(_, t)| t).unwrap_or(rest);
                current_impl = ident_at(ty.trim_start()).to_owned();
            }
            let l = line.trim_start();
            let is_fn = [
                "pub(crate) async fn ",
                "pub async fn ",
                "pub(crate) fn ",
                "pub fn ",
                "async fn ",
                "fn ",
            ]
            .iter()
            .any(|p| l.starts_with(p));
            if is_fn {
                owners.push(if line.starts_with(' ') {
                    current_impl.clone()
                } else {
                    stem.clone()
                });
            }
        }
        for ((name, _, body), owner) in functions_of(&text).into_iter().zip(owners) {
            out.push((f.clone(), owner, name, body));
        }
    }
    out
}

impl FunctionCode {
    /// The code of a function crate plus every chat-core function it can reach by name
    /// (any mention of a function's name counts as a use, so functions passed as
    /// values, e.g. route handlers, are followed too).
    fn load(binary: &str, store: &StoreModel) -> Self {
        let dir = crate_dir(binary);
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        let mut bodies: Vec<(PathBuf, String)> = files
            .iter()
            .map(|f| (f.clone(), compact(&read(f))))
            .collect();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for (_, b) in &bodies {
            names.extend(identifiers(b));
        }
        let mut corpus: String = bodies.iter().map(|(_, b)| b.as_str()).collect();
        let core = chat_core_functions();
        // A name defined more than once in chat-core (`new`, `from_env`, `parse`) only
        // counts as reached when its owner (impl type or module) is mentioned too.
        let mut defined: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, name, _) in &core {
            *defined.entry(name.as_str()).or_default() += 1;
        }
        let mut taken = vec![false; core.len()];
        loop {
            let mut grew = false;
            for (i, (file, owner, name, body)) in core.iter().enumerate() {
                // a method (owner is a type) needs a method call `.name(` or a path
                // `Owner::name`; a free function a mention of its module
                let is_method = owner.chars().next().is_some_and(|c| c.is_ascii_uppercase());
                let called = if is_method {
                    corpus.contains(&format!(".{name}("))
                        || corpus.contains(&format!("{owner}::{name}"))
                } else {
                    corpus
                        .match_indices(&format!("{name}("))
                        .chain(corpus.match_indices(&format!("{name})")))
                        .chain(corpus.match_indices(&format!("{name},")))
                        .any(|(i, _)| {
                            let before = corpus[..i].chars().next_back();
                            !before
                                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                        })
                };
                let reached = names.contains(name)
                    && called
                    && (defined[name.as_str()] == 1 || names.contains(owner));
                if !taken[i] && reached {
                    taken[i] = true;
                    grew = true;
                    if std::env::var("TEMPLATE_TEST_TRACE").as_deref() == Ok(binary) {
                        eprintln!("{binary} reaches {}: {owner}::{name}", rel(file));
                    }
                    names.extend(identifiers(body));
                    corpus.push_str(body);
                    bodies.push((file.clone(), body.clone()));
                }
            }
            if !grew {
                break;
            }
        }
        let mut code = FunctionCode {
            files: files.clone(),
            store_calls: BTreeSet::new(),
            needs: BTreeSet::new(),
            sdk: BTreeSet::new(),
            required_env: BTreeSet::new(),
            raw_dynamodb: Vec::new(),
        };
        for (f, text) in &bodies {
            for m in store.public_methods() {
                let pat = format!(".{m}(");
                if text
                    .match_indices(&pat)
                    .any(|(i, _)| !text[i + pat.len()..].starts_with(')'))
                {
                    code.store_calls.insert(m.clone());
                }
            }
            for (marker, service, action) in SDK_OPS {
                if text.contains(marker) {
                    code.sdk.insert((service.into(), action.into()));
                }
            }
            for raw in RAW_DYNAMODB {
                if text.contains(raw) {
                    code.raw_dynamodb.push(format!("{} calls {raw}", rel(f)));
                }
            }
            for (i, _) in text.match_indices(".require(\"") {
                let rest = &text[i + ".require(\"".len()..];
                code.required_env
                    .insert(rest[..rest.find('"').unwrap_or(0)].to_owned());
            }
        }
        for m in &code.store_calls {
            for (res, action) in store.needs(m) {
                code.needs.insert(("dynamodb".into(), action, res));
            }
        }
        code
    }
}

#[test]
fn the_store_analysis_sees_each_request() {
    let s = StoreModel::load();
    let need = |m: &str, res: &str, a: &str| {
        assert!(
            s.needs(m).contains(&(res.to_owned(), a.to_owned())),
            "{m} should need {a} on {res}; derived {:?}",
            s.needs(m)
        )
    };
    // one transaction of four items, after a consistent read
    need("append_text", "ChatsTable", "GetItem");
    need("append_text", "ChatsTable", "UpdateItem");
    need("append_text", "MessagesTable", "PutItem");
    need("append_text", "MessageDedupTable", "PutItem");
    need("append_text", "MembersTable", "UpdateItem");
    // the duplicate path reads the original
    need("append_text", "MessageDedupTable", "GetItem");
    // GSI queries name their index
    need(
        "list_user_memberships",
        "MembersTable/index/byUser",
        "Query",
    );
    need("devices_with_token", "DevicesTable/index/byToken", "Query");
    // a transaction built by a closure that takes the table as an argument
    need("get_or_create_direct", "ChatsTable", "PutItem");
    need("get_or_create_direct", "MembersTable", "PutItem");
    // parameterised batch helpers resolve to their callers' tables
    need("presence_of", "PresenceTable", "BatchGetItem");
    need("get_profiles", "UsersTable", "BatchGetItem");
    need("create_group", "MembersTable", "BatchWriteItem");
    need("rename_group", "MembersTable", "ConditionCheckItem");
    let direct = s.needs("get_account");
    assert_eq!(
        direct,
        BTreeSet::from([("UsersTable".to_owned(), "GetItem".to_owned())]),
        "a single GetItem needs exactly that"
    );
    assert!(
        s.methods
            .values()
            .all(|m| !m.ops.iter().any(|(_, a)| a == "Scan")),
        "no Scan on a request path"
    );
}

#[test]
fn code_needs_no_more_than_its_permission_list() {
    let (t, _) = template();
    let store = StoreModel::load();
    let mut problems = Vec::new();
    for f in t.functions().unwrap() {
        let dir = crate_dir(&f.binary);
        let list = PermissionList::load(&dir);
        let permitted = list.grants();
        let code = FunctionCode::load(&f.binary, &store);
        eprintln!(
            "{}: store calls {:?}, SDK calls {:?}",
            f.logical_id, code.store_calls, code.sdk
        );
        problems.extend(code.raw_dynamodb.iter().map(|r| {
            format!(
                "{}: {r}; DynamoDB requests belong in shared/src/store",
                f.logical_id
            )
        }));
        for need in &code.needs {
            if !permitted.contains(need) {
                let callers: Vec<_> = code
                    .store_calls
                    .iter()
                    .filter(|m| store.needs(m).contains(&(need.2.clone(), need.1.clone())))
                    .collect();
                problems.push(format!(
                    "{}: store calls {callers:?} need {}:{} on {}, which {}/permissions.yaml does not list",
                    f.logical_id,
                    need.0,
                    need.1,
                    need.2,
                    rel(&dir)
                ));
            }
        }
        for (service, action) in &code.sdk {
            if !permitted
                .iter()
                .any(|(s, a, _)| s == service && a == action)
            {
                problems.push(format!(
                    "{}: the code calls {service}:{action}, which {}/permissions.yaml does not list",
                    f.logical_id,
                    rel(&dir)
                ));
            }
        }
        // The other direction: nothing listed that the code does not use. Skipped
        // while a crate is still a placeholder (it calls nothing at all yet).
        if code.store_calls.is_empty() && code.sdk.is_empty() {
            eprintln!(
                "{}: no store or SDK calls found in {} files; unused-grant check skipped",
                f.logical_id,
                code.files.len()
            );
            continue;
        }
        for grant in &permitted {
            let used = match grant.0.as_str() {
                "dynamodb" => code.needs.contains(grant),
                _ => code.sdk.contains(&(grant.0.clone(), grant.1.clone())),
            };
            if !used {
                problems.push(format!(
                    "{}: {}/permissions.yaml lists {}:{} on {}, which the code does not use; remove it (and from the template)",
                    f.logical_id,
                    rel(&dir),
                    grant.0,
                    grant.1,
                    grant.2
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
