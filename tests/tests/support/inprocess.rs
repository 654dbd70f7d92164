//! TEMPORARY stand-in for `chat_tests::TestStack` while it is being written: fresh,
//! uniquely prefixed tables on DynamoDB Local (`CHAT_DYNAMODB_ENDPOINT`) and the real
//! `http-chats` function invoked in-process with the HTTP API events the gateway would
//! build (route matched against `infra/template.yaml`). Delete when TestStack lands.

#![allow(dead_code)]

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use chat_core::config::{Env, Tables};
use chat_core::function::SharedFunction;
use chat_core::ids::UserId;
use chat_core::store::Store;
use chat_local::template::{HttpRoute, Template};
use serde_json::json;
use std::collections::HashMap;

pub struct Stack {
    f: SharedFunction,
    store: Store,
    env: Env,
    routes: Vec<HttpRoute>,
}

impl Stack {
    pub async fn start() -> Self {
        let endpoint = std::env::var("CHAT_DYNAMODB_ENDPOINT")
            .expect("CHAT_DYNAMODB_ENDPOINT (DynamoDB Local) must be set");
        let prefix = format!("smoke{}", &UserId::generate().as_str()[20..]).to_lowercase();
        let tables = Tables::with_prefix(&prefix);
        let mut vars: HashMap<String, String> = HashMap::from([
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("JWT_SIGNING_KEY".into(), "k".repeat(40)),
            (
                "OFFLINE_TOPIC_ARN".into(),
                "arn:aws:sns:us-east-1:123456789012:t".into(),
            ),
            (
                "WEBSOCKET_MANAGEMENT_ENDPOINT".into(),
                "http://127.0.0.1:9".into(),
            ),
        ]);
        for (var, logical) in Tables::VARS {
            vars.insert(var.into(), format!("{prefix}-{logical}"));
        }
        let env = Env::from_map(vars);
        let sdk = chat_core::aws::sdk_config(&env).await;
        let db = chat_core::aws::dynamodb(&sdk, &env);
        let template = Template::load(&Template::default_path()).unwrap();
        for t in template.tables().unwrap() {
            let key = |name: &str, kt: KeyType| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kt)
                    .build()
                    .unwrap()
            };
            let mut req = db
                .create_table()
                .table_name(format!("{prefix}-{}", t.logical_id))
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key(&t.hash_key, KeyType::Hash));
            if let Some(r) = &t.range_key {
                req = req.key_schema(key(r, KeyType::Range));
            }
            for (name, ty) in &t.attributes {
                req = req.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(match ty.as_str() {
                            "N" => ScalarAttributeType::N,
                            "B" => ScalarAttributeType::B,
                            _ => ScalarAttributeType::S,
                        })
                        .build()
                        .unwrap(),
                );
            }
            for i in &t.indexes {
                let mut g = GlobalSecondaryIndex::builder()
                    .index_name(&i.name)
                    .key_schema(key(&i.hash_key, KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    );
                if let Some(r) = &i.range_key {
                    g = g.key_schema(key(r, KeyType::Range));
                }
                req = req.global_secondary_indexes(g.build().unwrap());
            }
            req.send().await.unwrap();
        }
        let f = http_chats::build(env.clone()).await.unwrap();
        Stack {
            f,
            store: Store::new(db, tables),
            env,
            routes: template.http_routes().unwrap(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// One request as the HTTP API would deliver it: (status, body text).
    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, String) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, &HttpRoute, HashMap<String, String>)> = None;
        for r in &self.routes {
            if !r.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let t: Vec<&str> = r.path.trim_matches('/').split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut params = HashMap::new();
            let mut literal = 0;
            let ok = t.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    params.insert(name.to_owned(), (*s).to_owned());
                    true
                } else {
                    literal += 1;
                    t == s
                }
            });
            if ok && best.as_ref().is_none_or(|(l, _, _)| literal > *l) {
                best = Some((literal, r, params));
            }
        }
        let Some((_, route, params)) = best else {
            return (404, r#"{"message":"Not Found"}"#.to_owned());
        };
        let route_key = format!("{} {}", route.method.to_uppercase(), route.path);
        let mut headers = json!({"content-type": "application/json"});
        if let Some(t) = token {
            headers["authorization"] = json!(format!("Bearer {t}"));
        }
        let ev = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "pathParameters": params,
            "requestContext": {
                "accountId": "1", "apiId": "local", "domainName": "localhost",
                "domainPrefix": "localhost",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": UserId::generate().to_string(), "routeKey": route_key,
                "stage": "$default", "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": false
        });
        let out = self
            .f
            .invoke(ev, lambda_runtime::Context::default())
            .await
            .expect("function invocation");
        let status = out["statusCode"].as_u64().unwrap_or(500) as u16;
        (status, out["body"].as_str().unwrap_or("").to_owned())
    }
}
