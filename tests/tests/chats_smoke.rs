//! TEMPORARY in-process smoke test of `http-chats` on DynamoDB Local (endpoint from
//! `CHAT_DYNAMODB_ENDPOINT`), invoking the function with hand-built HTTP API events.
//! Superseded by `tests/chats.rs` once `chat_tests::TestStack` exists; delete then.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use chat_core::auth::tokens::TokenConfig;
use chat_core::config::{Env, Tables};
use chat_core::function::SharedFunction;
use chat_core::ids::{SessionId, UserId};
use chat_core::input::{DisplayName, UserName};
use chat_core::model::now_millis;
use chat_core::store::Store;
use chat_local::template::Template;
use serde_json::{json, Value};
use std::collections::HashMap;

struct Smoke {
    f: SharedFunction,
    store: Store,
    tokens: TokenConfig,
}

async fn setup() -> Option<Smoke> {
    let endpoint = std::env::var("CHAT_DYNAMODB_ENDPOINT").ok()?;
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
    Some(Smoke {
        f,
        store: Store::new(db, tables),
        tokens: TokenConfig::from_env(&env).unwrap(),
    })
}

impl Smoke {
    async fn user(&self) -> (UserId, String) {
        let id = UserId::generate();
        let name = format!("u{}", &id.as_str()[10..]).to_lowercase();
        self.store
            .create_user(
                &id,
                &UserName::parse(&name).unwrap(),
                &DisplayName::parse("T").unwrap(),
                "h",
                now_millis(),
            )
            .await
            .unwrap();
        let t = self
            .tokens
            .issue(&id, &SessionId::generate(), 0, now_millis());
        (id, t)
    }

    async fn call(
        &self,
        token: &str,
        route: &str,
        path: &str,
        params: Value,
        query: Value,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (method, _) = route.split_once(' ').unwrap();
        let raw_query: Vec<String> = query
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let ev = json!({
            "version": "2.0",
            "routeKey": route,
            "rawPath": path,
            "rawQueryString": raw_query.join("&"),
            "headers": {"authorization": format!("Bearer {token}"), "content-type": "application/json"},
            "queryStringParameters": query,
            "pathParameters": params,
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "localhost", "domainPrefix": "localhost",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": route, "stage": "$default", "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 0
            },
            "body": body.map(|b| b.to_string()),
            "isBase64Encoded": false
        });
        let out = self
            .f
            .invoke(ev, lambda_runtime::Context::default())
            .await
            .unwrap();
        let status = out["statusCode"].as_u64().unwrap() as u16;
        let body = out["body"]
            .as_str()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap_or(Value::Null);
        (status, body)
    }
}

#[tokio::test]
async fn smoke() {
    let Some(s) = setup().await else {
        eprintln!("CHAT_DYNAMODB_ENDPOINT not set; skipped");
        return;
    };
    let (a, ta) = s.user().await;
    let (b, tb) = s.user().await;
    let (_c, tc) = s.user().await;
    let (st, body) = s
        .call(
            &ta,
            "POST /chats",
            "/chats",
            json!({}),
            json!({}),
            Some(json!({"kind":"direct","userId": b})),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let dm = body["chatId"].as_str().unwrap().to_owned();
    let (st, body) = s
        .call(
            &tb,
            "POST /chats",
            "/chats",
            json!({}),
            json!({}),
            Some(json!({"kind":"direct","userId": a})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["chatId"], dm.as_str());
    println!("{body:#}");

    let (st, body) = s
        .call(
            &ta,
            "POST /chats",
            "/chats",
            json!({}),
            json!({}),
            Some(json!({"kind":"group","name":"G","memberIds":[b]})),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let g = body["chatId"].as_str().unwrap().to_owned();
    let (st, body) = s
        .call(
            &tb,
            "PATCH /chats/{chatId}",
            "/",
            json!({"chatId": g}),
            json!({}),
            Some(json!({"name":"H"})),
        )
        .await;
    assert_eq!(st, 403, "{body}");
    let (st, body) = s
        .call(
            &tc,
            "GET /chats/{chatId}",
            "/",
            json!({"chatId": g}),
            json!({}),
            None,
        )
        .await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = s
        .call(
            &ta,
            "GET /chats",
            "/chats",
            json!({}),
            json!({"limit": "1"}),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["chats"].as_array().unwrap().len(), 1);
    let cur = body["nextCursor"].as_str().unwrap().to_owned();
    let (st, body) = s
        .call(
            &ta,
            "GET /chats",
            "/chats",
            json!({}),
            json!({"limit": "1", "cursor": cur}),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["chats"].as_array().unwrap().len(), 1);
    assert_eq!(body["nextCursor"], Value::Null);
    let (st, body) = s
        .call(
            &ta,
            "GET /chats/{chatId}/messages",
            "/",
            json!({"chatId": g}),
            json!({"after": "0"}),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    println!("{body:#}");
    let (st, body) = s
        .call(
            &ta,
            "DELETE /chats/{chatId}/members/{userId}",
            "/",
            json!({"chatId": g, "userId": "me"}),
            json!({}),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["promoted"], b.as_str());
    let (st, body) = s
        .call(
            &ta,
            "GET /chats",
            "/chats",
            json!({}),
            json!({"limit": "0"}),
            None,
        )
        .await;
    assert_eq!(st, 400, "{body}");
    println!("{body:#}");
}
