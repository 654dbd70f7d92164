//! TEMPORARY stand-in for `chat_tests::TestStack` while it is being written: a freshly
//! provisioned stack (chat_local::provision) on the backend `./dev test` starts, and the
//! real `http-chats` function invoked in-process with the HTTP API events the gateway
//! would build (route matched against `infra/template.yaml`). Replace with TestStack
//! (requests over HTTP to `http_url()`) when it lands.

#![allow(dead_code)]

use chat_core::config::{Env, Tables};
use chat_core::function::SharedFunction;
use chat_core::ids::UserId;
use chat_core::store::Store;
use chat_local::provision::{generate_signing_key, provision};
use chat_local::template::HttpRoute;
use serde_json::json;
use std::collections::HashMap;

pub struct Stack {
    f: SharedFunction,
    store: Store,
    env: Env,
    routes: Vec<HttpRoute>,
}

impl Stack {
    /// A freshly provisioned stack (tables, topic, ...) on the backend `./dev test`
    /// started, and `http-chats` built with the environment the template gives it.
    pub async fn start() -> Self {
        let endpoints = chat_tests::backend::endpoints();
        let template = chat_tests::backend::template();
        let prefix = chat_tests::unique_prefix("chats");
        let stack = provision(template, &endpoints, &prefix)
            .await
            .expect("provision");
        // The variables the template gives the function, set directly (the resolver's
        // `{{resolve:secretsmanager:...}}` path did not resolve here). No WebSocket
        // clients here: posts to the management endpoint find no connections.
        let mut env = Env::default();
        for (k, v) in endpoints.aws_vars() {
            env.set(k, v);
        }
        for (var, logical) in Tables::VARS {
            env.set(var, stack.name_of(logical));
        }
        env.set("JWT_SIGNING_KEY", generate_signing_key());
        env.set(
            "OFFLINE_TOPIC_ARN",
            stack
                .topic_arn("OfflineMessageTopic")
                .expect("offline topic"),
        );
        env.set("WEBSOCKET_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/local");
        let sdk = chat_core::aws::sdk_config(&env).await;
        let store = Store::new(chat_core::aws::dynamodb(&sdk, &env), stack.tables.clone());
        let f = http_chats::build(env.clone()).await.expect("build");
        Stack {
            f,
            store,
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
