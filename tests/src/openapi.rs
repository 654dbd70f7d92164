//! `docs/openapi.yaml` ([`doc`], parsed once per test binary) and a focused OpenAPI 3.1
//! response checker for the end-to-end tests: finds the operation a request hit (method + concrete path against the document's templated
//! paths), picks the response for the status, and validates the JSON body against its
//! schema. It implements the JSON Schema subset `docs/openapi.yaml` uses: `$ref` (local),
//! `type` (one or a list), `const`, `enum`, `properties`, `required`,
//! `additionalProperties` (bool or schema), `items`, `minItems`/`maxItems`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`, `format: date-time`,
//! `allOf`/`anyOf`/`oneOf`. A keyword outside the subset fails loudly, so the checker
//! never silently accepts what it does not understand.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `docs/openapi.yaml`, loaded once for the whole test binary.
pub fn doc() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(OpenApi::load)
}

pub struct OpenApi {
    doc: Value,
}

const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "const",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "allOf",
    "anyOf",
    "oneOf",
    "description",
    "default",
    "example",
    "examples",
    "title",
    "deprecated",
    "readOnly",
    "writeOnly",
];

impl OpenApi {
    /// The repository's `docs/openapi.yaml`.
    pub fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
        Self::from_path(&path)
    }

    pub fn from_path(path: &std::path::Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let doc: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        OpenApi { doc }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every (METHOD, /templated/path) the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(paths) = self.doc["paths"].as_object() {
            for (path, item) in paths {
                for (method, _) in item.as_object().into_iter().flatten() {
                    if ["get", "put", "post", "delete", "patch", "head", "options"]
                        .contains(&method.as_str())
                    {
                        out.push((method.to_uppercase(), path.clone()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The templated path of the operation `method` `concrete` (a URL path without
    /// the stage), preferring literal segments over `{param}` ones.
    pub fn template_for(&self, method: &str, concrete: &str) -> Option<String> {
        let segs: Vec<&str> = concrete.trim_matches('/').split('/').collect();
        let method = method.to_lowercase();
        let mut best: Option<(usize, String)> = None;
        for (path, item) in self.doc["paths"].as_object()? {
            if item.get(&method).is_none() {
                continue;
            }
            let tsegs: Vec<&str> = path.trim_matches('/').split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let matches = tsegs.iter().zip(&segs).all(|(t, s)| {
                if t.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    t == s
                }
            });
            if matches && best.as_ref().is_none_or(|(l, _)| literal > *l) {
                best = Some((literal, path.clone()));
            }
        }
        best.map(|(_, p)| p)
    }

    /// Check a response: the operation exists, documents `status`, and `body`
    /// validates against that response's JSON schema.
    pub fn check_response(
        &self,
        method: &str,
        concrete_path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let template = self.template_for(method, concrete_path).ok_or_else(|| {
            format!("{method} {concrete_path}: no such operation in the document")
        })?;
        let op = &self.doc["paths"][&template][method.to_lowercase()];
        let responses = &op["responses"];
        let mut response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| format!("{method} {template}: status {status} is not documented"))?;
        let mut hops = 0;
        while let Some(r) = response.get("$ref").and_then(Value::as_str) {
            response = self.resolve(r)?;
            hops += 1;
            if hops > 10 {
                return Err(format!("{r}: $ref loop"));
            }
        }
        let Some(content) = response.get("content") else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(format!(
                    "{method} {template} {status}: documented without a body, got {body}"
                ))
            };
        };
        let schema = &content["application/json"]["schema"];
        if schema.is_null() {
            return Err(format!(
                "{method} {template} {status}: no application/json schema"
            ));
        }
        let mut errors = Vec::new();
        self.validate(schema, body, "$", &mut errors, 0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} {status}: body does not match the document:\n  {}\nbody: {body}",
                errors.join("\n  ")
            ))
        }
    }

    fn resolve(&self, reference: &str) -> Result<&Value, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("{reference}: only local $refs are supported"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("{reference}: does not resolve"))
    }

    /// Validate `value` against `schema`, collecting errors (JSON-path style).
    pub fn validate(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 {
            errors.push(format!("{at}: schema nesting too deep"));
            return;
        }
        let Some(obj) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                errors.push(format!("{at}: no value allowed"));
            }
            return;
        };
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str()) {
                errors.push(format!("{at}: schema keyword `{key}` is not supported"));
            }
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Ok(target) => self.validate(target, value, at, errors, depth + 1),
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
        if let Some(t) = obj.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_matches(t, value)) {
                errors.push(format!("{at}: expected {types:?}, got {}", kind(value)));
                return;
            }
        }
        if let Some(c) = obj.get("const") {
            if c != value {
                errors.push(format!("{at}: expected {c}, got {value}"));
            }
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            if !e.contains(value) {
                errors.push(format!("{at}: {value} is not one of {e:?}"));
            }
        }
        if let Value::Object(map) = value {
            let props = obj.get("properties").and_then(Value::as_object);
            if let Some(required) = obj.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errors.push(format!("{at}: missing required `{r}`"));
                    }
                }
            }
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.validate(s, v, &format!("{at}.{k}"), errors, depth + 1),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: unexpected property `{k}`"))
                        }
                        Some(s @ Value::Object(_)) => {
                            self.validate(s, v, &format!("{at}.{k}"), errors, depth + 1)
                        }
                        _ => {}
                    },
                }
            }
        }
        if let Value::Array(items) = value {
            if let Some(s) = obj.get("items") {
                for (i, v) in items.iter().enumerate() {
                    self.validate(s, v, &format!("{at}[{i}]"), errors, depth + 1);
                }
            }
            if let Some(n) = obj.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < n {
                    errors.push(format!("{at}: fewer than {n} items"));
                }
            }
            if let Some(n) = obj.get("maxItems").and_then(Value::as_u64) {
                if (items.len() as u64) > n {
                    errors.push(format!("{at}: more than {n} items"));
                }
            }
        }
        if let Some(x) = value.as_f64() {
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    errors.push(format!("{at}: {x} < minimum {min}"));
                }
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    errors.push(format!("{at}: {x} > maximum {max}"));
                }
            }
        }
        if let Some(s) = value.as_str() {
            let chars = s.chars().count() as u64;
            if let Some(n) = obj.get("minLength").and_then(Value::as_u64) {
                if chars < n {
                    errors.push(format!("{at}: shorter than {n}"));
                }
            }
            if let Some(n) = obj.get("maxLength").and_then(Value::as_u64) {
                if chars > n {
                    errors.push(format!("{at}: longer than {n}"));
                }
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                match regex_lite::Regex::new(p) {
                    Ok(re) if re.is_match(s) => {}
                    Ok(_) => errors.push(format!("{at}: {s:?} does not match /{p}/")),
                    Err(e) => errors.push(format!("{at}: bad pattern /{p}/: {e}")),
                }
            }
            if obj.get("format").and_then(Value::as_str) == Some("date-time")
                && chrono::DateTime::parse_from_rfc3339(s).is_err()
            {
                errors.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
            }
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.validate(s, value, at, errors, depth + 1);
            }
        }
        if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
            if !any.iter().any(|s| self.passes(s, value, at, depth)) {
                errors.push(format!("{at}: matches none of anyOf"));
            }
        }
        if let Some(one) = obj.get("oneOf").and_then(Value::as_array) {
            let mut branch_errors = Vec::new();
            let n = one
                .iter()
                .filter(|s| {
                    let mut e = Vec::new();
                    self.validate(s, value, at, &mut e, depth + 1);
                    let ok = e.is_empty();
                    branch_errors.extend(e);
                    ok
                })
                .count();
            if n != 1 {
                errors.push(format!(
                    "{at}: matches {n} of oneOf (exactly 1 required): {}",
                    branch_errors.join("; ")
                ));
            }
        }
    }

    fn passes(&self, schema: &Value, value: &Value, at: &str, depth: usize) -> bool {
        let mut e = Vec::new();
        self.validate(schema, value, at, &mut e, depth + 1);
        e.is_empty()
    }

    /// Validate `value` against `#/components/schemas/{name}`.
    pub fn check_schema(&self, name: &str, value: &Value) -> Result<(), String> {
        let schema = &self.doc["components"]["schemas"][name];
        if schema.is_null() {
            return Err(format!("no schema {name}"));
        }
        let mut errors = Vec::new();
        self.validate(schema, value, "$", &mut errors, 0);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
