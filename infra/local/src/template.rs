//! A typed reading of `infra/template.yaml`, the single source of truth for routes,
//! tables, topics and functions. The local backend creates tables and topics from it;
//! the local gateway takes its WebSocket routes, HTTP routes, SNS subscriptions and
//! each function's environment from it. Intrinsic functions (`!Ref`, `!Sub`,
//! `!GetAtt`, `!If`, `!Equals`, and their `Fn::` long forms) are resolved against a
//! [`Resolver`] that knows the local names of things.

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub resources: BTreeMap<String, Resource>,
    pub parameters: BTreeMap<String, Parameter>,
    pub globals_environment: BTreeMap<String, Value>,
    pub conditions: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Value,
    pub metadata: Value,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub default: Option<String>,
}

/// A DynamoDB table as the template defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub logical_id: String,
    /// (name, type) pairs: `S`, `N` or `B`.
    pub attributes: Vec<(String, String)>,
    pub hash_key: String,
    pub range_key: Option<String>,
    pub indexes: Vec<IndexDef>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub hash_key: String,
    pub range_key: Option<String>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
}

/// A Lambda function of the template.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    /// Globals merged with the function's own variables; values still unresolved.
    pub environment: BTreeMap<String, Value>,
    pub http_routes: Vec<HttpRoute>,
    /// Logical ids of the topics the function is subscribed to.
    pub sns_topics: Vec<String>,
    /// Logical ids of the topics its policies let it `sns:Publish` to (`!Ref Topic`).
    pub publishes_to: Vec<String>,
    /// `RecursiveLoop: Allow`: Lambda lets a function -> topic -> same function chain
    /// run past its ~16-hop loop detection (the local SNS bridge emulates it).
    pub recursive_loop_allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpRoute {
    pub method: String,
    /// With `{param}` segments, as in the template.
    pub path: String,
    pub function: String,
}

/// The WebSocket API.
#[derive(Debug, Clone)]
pub struct WebSocketApiDef {
    pub logical_id: String,
    pub route_selection_expression: String,
    /// Route key (`$connect`, `$default`, `sendMessage`, ...) to function logical id.
    pub routes: BTreeMap<String, String>,
}

/// What a reference points at in the running stack.
pub trait Resolver {
    /// `!Ref X` for a resource or parameter.
    fn reference(&self, name: &str) -> Option<String>;
    /// `!GetAtt X.Attr`.
    fn attribute(&self, resource: &str, attr: &str) -> Option<String>;
    /// `{{resolve:secretsmanager:...}}` dynamic references: the secret's value.
    fn secret(&self, reference: &str) -> Option<String>;
    /// `AWS::Region`, `AWS::AccountId`, `AWS::Partition`, `AWS::StackName`.
    fn pseudo(&self, name: &str) -> Option<String>;
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()
        .and_then(|m| m.get(Value::String(key.to_owned())))
}

fn get_str(v: &Value, key: &str) -> Option<String> {
    get(v, key).and_then(|x| match x {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn mapping_entries(v: Option<&Value>) -> Vec<(String, Value)> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| k.as_str().map(|k| (k.to_owned(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The template of this repository (`infra/template.yaml`).
    pub fn default_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("template.yaml")
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(text)?;
        let mut resources = BTreeMap::new();
        for (id, r) in mapping_entries(get(&doc, "Resources")) {
            let kind = get_str(&r, "Type").ok_or_else(|| anyhow!("resource {id} has no Type"))?;
            resources.insert(
                id.clone(),
                Resource {
                    logical_id: id,
                    kind,
                    properties: get(&r, "Properties").cloned().unwrap_or(Value::Null),
                    metadata: get(&r, "Metadata").cloned().unwrap_or(Value::Null),
                },
            );
        }
        let parameters = mapping_entries(get(&doc, "Parameters"))
            .into_iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    Parameter {
                        name,
                        default: get_str(&p, "Default"),
                    },
                )
            })
            .collect();
        let globals_environment = get(&doc, "Globals")
            .and_then(|g| get(g, "Function"))
            .and_then(|f| get(f, "Environment"))
            .and_then(|e| get(e, "Variables"));
        let globals_environment = mapping_entries(globals_environment).into_iter().collect();
        let conditions = mapping_entries(get(&doc, "Conditions"))
            .into_iter()
            .collect();
        Ok(Template {
            resources,
            parameters,
            globals_environment,
            conditions,
        })
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.values().filter(move |r| r.kind == kind)
    }

    pub fn tables(&self) -> Result<Vec<TableDef>> {
        self.of_kind("AWS::DynamoDB::Table")
            .map(table_def)
            .collect()
    }

    /// Logical ids of the SNS topics.
    pub fn topics(&self) -> Vec<String> {
        self.of_kind("AWS::SNS::Topic")
            .map(|r| r.logical_id.clone())
            .collect()
    }

    /// Logical ids of the S3 buckets.
    pub fn buckets(&self) -> Vec<String> {
        self.of_kind("AWS::S3::Bucket")
            .map(|r| r.logical_id.clone())
            .collect()
    }

    /// Logical ids of the SQS queues.
    pub fn queues(&self) -> Vec<String> {
        self.of_kind("AWS::SQS::Queue")
            .map(|r| r.logical_id.clone())
            .collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionDef>> {
        let mut out = Vec::new();
        for r in self.of_kind("AWS::Serverless::Function") {
            let binary = get(&r.metadata, "BuildProperties")
                .and_then(|b| get_str(b, "Binary"))
                .ok_or_else(|| {
                    anyhow!(
                        "function {} has no Metadata.BuildProperties.Binary",
                        r.logical_id
                    )
                })?;
            let mut environment = self.globals_environment.clone();
            let own = get(&r.properties, "Environment").and_then(|e| get(e, "Variables"));
            environment.extend(mapping_entries(own));
            let mut http_routes = Vec::new();
            let mut sns_topics = Vec::new();
            for (name, ev) in mapping_entries(get(&r.properties, "Events")) {
                let props = get(&ev, "Properties").cloned().unwrap_or(Value::Null);
                match get_str(&ev, "Type").as_deref() {
                    Some("HttpApi") => {
                        let method = get_str(&props, "Method").ok_or_else(|| {
                            anyhow!("event {name} of {} has no Method", r.logical_id)
                        })?;
                        let path = get_str(&props, "Path").ok_or_else(|| {
                            anyhow!("event {name} of {} has no Path", r.logical_id)
                        })?;
                        http_routes.push(HttpRoute {
                            method: method.to_ascii_uppercase(),
                            path,
                            function: r.logical_id.clone(),
                        });
                    }
                    Some("SNS") => {
                        let topic = get(&props, "Topic").and_then(ref_target).ok_or_else(|| {
                            anyhow!(
                                "SNS event {name} of {} must name its topic with !Ref",
                                r.logical_id
                            )
                        })?;
                        sns_topics.push(topic);
                    }
                    other => bail!(
                        "event {name} of {}: type {other:?} is not supported locally",
                        r.logical_id
                    ),
                }
            }
            out.push(FunctionDef {
                logical_id: r.logical_id.clone(),
                binary,
                timeout_secs: get_str(&r.properties, "Timeout")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(10),
                memory_mb: get_str(&r.properties, "MemorySize")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(256),
                environment,
                http_routes,
                sns_topics,
                publishes_to: sns_publish_targets(get(&r.properties, "Policies")),
                recursive_loop_allowed: get_str(&r.properties, "RecursiveLoop").as_deref()
                    == Some("Allow"),
            });
        }
        Ok(out)
    }

    /// Every HTTP API route, sorted.
    pub fn http_routes(&self) -> Result<Vec<HttpRoute>> {
        let mut routes: Vec<HttpRoute> = self
            .functions()?
            .into_iter()
            .flat_map(|f| f.http_routes)
            .collect();
        routes.sort();
        Ok(routes)
    }

    /// The WebSocket API with each route's function (through its integration).
    pub fn websocket_api(&self) -> Result<WebSocketApiDef> {
        let api = self
            .of_kind("AWS::ApiGatewayV2::Api")
            .find(|r| get_str(&r.properties, "ProtocolType").as_deref() == Some("WEBSOCKET"))
            .ok_or_else(|| anyhow!("the template has no WebSocket API"))?;
        let selection = get_str(&api.properties, "RouteSelectionExpression").ok_or_else(|| {
            anyhow!(
                "WebSocket API {} has no RouteSelectionExpression",
                api.logical_id
            )
        })?;
        let mut routes = BTreeMap::new();
        for r in self.of_kind("AWS::ApiGatewayV2::Route") {
            let key = get_str(&r.properties, "RouteKey")
                .ok_or_else(|| anyhow!("route {} has no RouteKey", r.logical_id))?;
            let target = get(&r.properties, "Target")
                .and_then(sub_text)
                .ok_or_else(|| anyhow!("route {key} has no Target"))?;
            let integration = target
                .strip_prefix("integrations/${")
                .and_then(|t| t.strip_suffix('}'))
                .ok_or_else(|| {
                    anyhow!("route {key}: Target must be !Sub \"integrations/${{Integration}}\"")
                })?;
            let integ = self
                .resources
                .get(integration)
                .ok_or_else(|| anyhow!("route {key}: integration {integration} is not defined"))?;
            let uri = get(&integ.properties, "IntegrationUri")
                .ok_or_else(|| anyhow!("integration {integration} has no IntegrationUri"))?;
            let function = integration_function(uri).ok_or_else(|| {
                anyhow!(
                    "integration {integration}: IntegrationUri names no function \
                     (${{X.Arn}}, or a !Sub variable that is !Ref X.Alias)"
                )
            })?;
            let function = function.as_str();
            match self.resources.get(function) {
                Some(f) if f.kind == "AWS::Serverless::Function" => {}
                _ => bail!("route {key}: function {function} is not defined in the template"),
            }
            routes.insert(key, function.to_owned());
        }
        Ok(WebSocketApiDef {
            logical_id: api.logical_id.clone(),
            route_selection_expression: selection,
            routes,
        })
    }

    /// Resolve a property value to a string (environment variables, ARNs).
    pub fn resolve(&self, v: &Value, r: &dyn Resolver) -> Result<String> {
        match v {
            Value::String(s) => resolve_dynamic(s, r),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(t) => {
                self.intrinsic(t.tag.to_string().trim_start_matches('!'), &t.value, r)
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, val) = m.iter().next().expect("one entry");
                let k = k.as_str().unwrap_or_default();
                match k.strip_prefix("Fn::") {
                    Some(f) => self.intrinsic(f, val, r),
                    None if k == "Ref" => self.intrinsic("Ref", val, r),
                    None => bail!("cannot resolve mapping {k}"),
                }
            }
            other => bail!("cannot resolve {other:?}"),
        }
    }

    fn intrinsic(&self, f: &str, arg: &Value, r: &dyn Resolver) -> Result<String> {
        match f {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| anyhow!("!Ref takes a name"))?;
                self.reference(name, r)
            }
            "GetAtt" => {
                let (res, attr) = match arg {
                    Value::String(s) => s
                        .split_once('.')
                        .ok_or_else(|| anyhow!("!GetAtt {s}: expected X.Attr"))?,
                    Value::Sequence(seq) if seq.len() == 2 => (
                        seq[0].as_str().unwrap_or_default(),
                        seq[1].as_str().unwrap_or_default(),
                    ),
                    _ => bail!("!GetAtt takes X.Attr"),
                };
                r.attribute(res, attr)
                    .ok_or_else(|| anyhow!("cannot resolve !GetAtt {res}.{attr} locally"))
            }
            "Sub" => {
                let text = arg
                    .as_str()
                    .ok_or_else(|| anyhow!("!Sub with variables is not supported locally"))?;
                let mut out = String::new();
                let mut rest = text;
                while let Some(i) = rest.find("${") {
                    out.push_str(&rest[..i]);
                    let after = &rest[i + 2..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| anyhow!("unclosed ${{ in {text}"))?;
                    let name = &after[..end];
                    let value = match name.split_once('.') {
                        Some((res, attr)) if !name.starts_with("AWS::") => {
                            r.attribute(res, attr)
                                .ok_or_else(|| anyhow!("cannot resolve ${{{name}}} locally"))?
                        }
                        _ => self.reference(name, r)?,
                    };
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                resolve_dynamic(&out, r)
            }
            "If" => {
                let seq = arg
                    .as_sequence()
                    .filter(|s| s.len() == 3)
                    .ok_or_else(|| anyhow!("!If takes 3 items"))?;
                let cond = seq[0]
                    .as_str()
                    .ok_or_else(|| anyhow!("!If needs a condition name"))?;
                let branch = if self.condition(cond, r)? {
                    &seq[1]
                } else {
                    &seq[2]
                };
                self.resolve(branch, r)
            }
            "Join" => {
                let seq = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .ok_or_else(|| anyhow!("!Join takes 2 items"))?;
                let sep = seq[0].as_str().unwrap_or_default();
                let parts = match &seq[1] {
                    Value::Sequence(items) => items
                        .iter()
                        .map(|i| self.resolve(i, r))
                        .collect::<Result<Vec<_>>>()?,
                    other => vec![self.resolve(other, r)?],
                };
                Ok(parts.join(sep))
            }
            other => bail!("intrinsic function {other} is not supported locally"),
        }
    }

    fn reference(&self, name: &str, r: &dyn Resolver) -> Result<String> {
        if name.starts_with("AWS::") {
            return r
                .pseudo(name)
                .ok_or_else(|| anyhow!("pseudo parameter {name} is not known locally"));
        }
        if let Some(v) = r.reference(name) {
            return Ok(v);
        }
        if let Some(p) = self.parameters.get(name) {
            return Ok(p.default.clone().unwrap_or_default());
        }
        bail!("cannot resolve !Ref {name} locally")
    }

    /// Evaluate a named condition (`!Equals` of resolvable values).
    pub fn condition(&self, name: &str, r: &dyn Resolver) -> Result<bool> {
        let c = self
            .conditions
            .get(name)
            .ok_or_else(|| anyhow!("condition {name} is not defined"))?;
        let (f, arg) = match c {
            Value::Tagged(t) => (
                t.tag.to_string().trim_start_matches('!').to_owned(),
                t.value.clone(),
            ),
            _ => bail!("condition {name}: unsupported form"),
        };
        match f.as_str() {
            "Equals" => {
                let seq = arg
                    .as_sequence()
                    .filter(|s| s.len() == 2)
                    .ok_or_else(|| anyhow!("!Equals takes 2"))?;
                Ok(self.resolve(&seq[0], r)? == self.resolve(&seq[1], r)?)
            }
            other => bail!("condition function {other} is not supported locally"),
        }
    }
}

/// Replace `{{resolve:...}}` dynamic references.
fn resolve_dynamic(s: &str, r: &dyn Resolver) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{resolve:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("unclosed dynamic reference in {s}"))?;
        let reference = &after[..end];
        out.push_str(
            &r.secret(reference)
                .ok_or_else(|| anyhow!("cannot resolve {{{{{reference}}}}} locally"))?,
        );
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Topics (`!Ref X`) named as the resource of a policy statement that allows
/// `sns:Publish`, in a function's `Policies` (statements under `!If` included).
fn sns_publish_targets(policies: Option<&Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Mapping(m) => {
                let publishes = match get(v, "Action") {
                    Some(Value::String(a)) => a == "sns:Publish",
                    Some(Value::Sequence(seq)) => {
                        seq.iter().any(|a| a.as_str() == Some("sns:Publish"))
                    }
                    _ => false,
                };
                if publishes {
                    if let Some(t) = get(v, "Resource").and_then(ref_target) {
                        out.push(t);
                    }
                }
                for (_, x) in m {
                    walk(x, out);
                }
            }
            Value::Sequence(seq) => seq.iter().for_each(|x| walk(x, out)),
            Value::Tagged(t) => walk(&t.value, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(p) = policies {
        walk(p, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// The target of `!Ref X` (or `{Ref: X}`).
fn ref_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(str::to_owned),
        Value::Mapping(_) => get_str(v, "Ref"),
        _ => None,
    }
}

/// The text of `!Sub "..."` (or a plain string).
/// The function an integration's `IntegrationUri` invokes: `!Sub "...${X.Arn}..."` (the
/// unqualified function), or `!Sub ["...${F}...", { F: !Ref X.Alias }]` (the `live` alias
/// of SAM's AutoPublishAlias, which gradual deployments shift; cfn-lint does not accept
/// `${X.Alias}` inside a !Sub string, so the template passes it as a variable).
fn integration_function(uri: &Value) -> Option<String> {
    let (text, vars) = match uri {
        Value::Tagged(t) if t.tag == "Sub" => match &t.value {
            Value::Sequence(parts) if parts.len() == 2 => {
                (parts[0].as_str()?.to_owned(), Some(&parts[1]))
            }
            _ => (sub_text(uri)?, None),
        },
        _ => (sub_text(uri)?, None),
    };
    text.split("${")
        .filter_map(|p| p.split_once('}').map(|(name, _)| name))
        .find_map(|name| {
            if let Some(f) = name.strip_suffix(".Arn") {
                return Some(f.to_owned());
            }
            let var = get(vars?, name)?;
            let target = match var {
                Value::Tagged(t) if t.tag == "Ref" => t.value.as_str()?.to_owned(),
                Value::Mapping(_) => get_str(var, "Ref")?,
                _ => return None,
            };
            target
                .strip_suffix(".Alias")
                .or_else(|| target.strip_suffix(".Arn"))
                .map(str::to_owned)
        })
}

fn sub_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().map(str::to_owned),
        Value::Mapping(_) => get_str(v, "Fn::Sub"),
        _ => None,
    }
}

fn table_def(r: &Resource) -> Result<TableDef> {
    let p = &r.properties;
    let attributes = get(p, "AttributeDefinitions")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("table {} has no AttributeDefinitions", r.logical_id))?
        .iter()
        .map(|a| {
            Ok((
                get_str(a, "AttributeName").ok_or_else(|| anyhow!("attribute without name"))?,
                get_str(a, "AttributeType").ok_or_else(|| anyhow!("attribute without type"))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (hash_key, range_key) = key_schema(get(p, "KeySchema"), &r.logical_id)?;
    let mut indexes = Vec::new();
    for gsi in get(p, "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = get_str(gsi, "IndexName")
            .ok_or_else(|| anyhow!("GSI without IndexName in {}", r.logical_id))?;
        let (h, rk) = key_schema(get(gsi, "KeySchema"), &name)?;
        let projection = get(gsi, "Projection")
            .and_then(|pr| get_str(pr, "ProjectionType"))
            .unwrap_or_else(|| "ALL".into());
        indexes.push(IndexDef {
            name,
            hash_key: h,
            range_key: rk,
            projection,
        });
    }
    let ttl_attribute = get(p, "TimeToLiveSpecification").and_then(|t| get_str(t, "AttributeName"));
    Ok(TableDef {
        logical_id: r.logical_id.clone(),
        attributes,
        hash_key,
        range_key,
        indexes,
        ttl_attribute,
    })
}

fn key_schema(v: Option<&Value>, owner: &str) -> Result<(String, Option<String>)> {
    let keys = v
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("{owner} has no KeySchema"))?;
    let mut hash = None;
    let mut range = None;
    for k in keys {
        let name =
            get_str(k, "AttributeName").ok_or_else(|| anyhow!("{owner}: key without name"))?;
        match get_str(k, "KeyType").as_deref() {
            Some("HASH") => hash = Some(name),
            Some("RANGE") => range = Some(name),
            _ => bail!("{owner}: key {name} has no KeyType HASH or RANGE"),
        }
    }
    Ok((
        hash.ok_or_else(|| anyhow!("{owner} has no HASH key"))?,
        range,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Resolver for Fake {
        fn reference(&self, name: &str) -> Option<String> {
            match name {
                "Api" | "Stage" => None,
                n if n.ends_with("Table") => Some(format!("t-{n}")),
                n => Some(n.to_owned()),
            }
        }
        fn attribute(&self, res: &str, attr: &str) -> Option<String> {
            Some(format!("{res}:{attr}"))
        }
        fn secret(&self, _: &str) -> Option<String> {
            Some("s3cret".into())
        }
        fn pseudo(&self, name: &str) -> Option<String> {
            Some(name.trim_start_matches("AWS::").to_lowercase())
        }
    }

    #[test]
    fn reads_the_repository_template() {
        let t = Template::load(&Template::default_path()).unwrap();
        let tables = t.tables().unwrap();
        assert!(tables
            .iter()
            .any(|t| t.logical_id == "MessagesTable" && t.range_key.as_deref() == Some("pos")));
        let ws = t.websocket_api().unwrap();
        assert_eq!(ws.route_selection_expression, "$request.body.action");
        assert_eq!(
            ws.routes.get("$connect").map(String::as_str),
            Some("WsConnectFunction")
        );
        assert_eq!(
            ws.routes.get("sendMessage").map(String::as_str),
            Some("WsMessageFunction")
        );
        let routes = t.http_routes().unwrap();
        assert!(routes
            .iter()
            .any(|r| r.method == "POST" && r.path == "/auth/register"));
        let push = t
            .functions()
            .unwrap()
            .into_iter()
            .find(|f| f.logical_id == "PushNotifierFunction")
            .unwrap();
        assert_eq!(push.sns_topics, vec!["OfflineMessageTopic".to_owned()]);
        assert!(push.publishes_to.is_empty());
        assert!(!push.recursive_loop_allowed);
        let env = &push.environment;
        assert_eq!(
            t.resolve(&env["USERS_TABLE"], &Fake).unwrap(),
            "t-UsersTable"
        );
        assert_eq!(t.resolve(&env["JWT_SIGNING_KEY"], &Fake).unwrap(), "s3cret");
    }

    #[test]
    fn resolves_sub_and_if() {
        let t = Template::parse(
            "Parameters:\n  Stage: {Type: String, Default: prod}\nConditions:\n  IsProd: !Equals [!Ref Stage, prod]\nResources: {}\n",
        )
        .unwrap();
        let v: Value =
            serde_yaml::from_str("!Sub \"https://${Api}.x.${AWS::Region}/${Stage}\"").unwrap();
        assert!(
            t.resolve(&v, &Fake).is_err(),
            "Api is not resolvable by the fake"
        );
        let v: Value =
            serde_yaml::from_str("!Sub \"${UsersTable}/${Stage}/${AWS::Region}\"").unwrap();
        assert_eq!(t.resolve(&v, &Fake).unwrap(), "t-UsersTable/prod/region");
        let v: Value = serde_yaml::from_str("!If [IsProd, yes, no]").unwrap();
        assert_eq!(t.resolve(&v, &Fake).unwrap(), "yes");
    }
}
