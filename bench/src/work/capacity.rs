//! Does DynamoDB Local report capacity the way DynamoDB bills it? A few calls with
//! known item sizes on a scratch table, through an [`AwsProxy`] that asks for
//! `ReturnConsumedCapacity: TOTAL`, compared with AWS's rules: writes 1 WCU per 1 KB,
//! reads 1 RCU per 4 KB strongly consistent and half that eventually consistent,
//! transactions twice, and (with `TOTAL`) each global secondary index written counted
//! as well.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};
use chat_local::backend::BackendEndpoints;
use chat_local::proxy::{AwsProxy, Protocol};
use serde::{Deserialize, Serialize};

/// One check: what AWS would charge and what DynamoDB Local reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityCheck {
    pub call: String,
    pub aws_rule: f64,
    pub reported: Option<f64>,
}

impl CapacityCheck {
    pub fn matches(&self) -> bool {
        self.reported
            .is_some_and(|r| (r - self.aws_rule).abs() < 1e-9)
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// An item of about `bytes` bytes (DynamoDB's size: attribute names plus values).
fn item(
    pk: &str,
    bytes: usize,
    indexed: bool,
) -> std::collections::HashMap<String, AttributeValue> {
    let mut m = std::collections::HashMap::new();
    m.insert("pk".to_owned(), s(pk));
    if indexed {
        m.insert("g".to_owned(), s("x"));
    }
    let used = 2 + pk.len() + if indexed { 2 } else { 0 } + 3;
    m.insert("pad".to_owned(), s(&"p".repeat(bytes.saturating_sub(used))));
    m
}

/// Run the checks on a table `{prefix}-capacity-check` (deleted afterwards).
pub async fn check(backend: &BackendEndpoints, prefix: &str) -> Result<Vec<CapacityCheck>> {
    let proxy = AwsProxy::start(&backend.dynamodb, Protocol::DynamoDb).await?;
    let env = BackendEndpoints {
        dynamodb: proxy.url().to_owned(),
        moto: backend.moto.clone(),
    }
    .aws_env();
    let sdk = chat_core::aws::sdk_config(&env).await;
    let db = chat_core::aws::dynamodb(&sdk, &env);
    let table = format!("{prefix}-capacity-check");
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    db.create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("g")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byG")
                .key_schema(key("g", KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        )
        .send()
        .await
        .context("creating the capacity-check table")?;
    proxy.record_capacity(true);
    let result = run_checks(&db, &table, &proxy).await;
    proxy.record_capacity(false);
    let _ = db.delete_table().table_name(&table).send().await;
    result
}

async fn run_checks(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    proxy: &AwsProxy,
) -> Result<Vec<CapacityCheck>> {
    let mut out = Vec::new();
    let mut note = |call: &str, aws_rule: f64| {
        let calls = proxy.take_calls();
        out.push(CapacityCheck {
            call: call.to_owned(),
            aws_rule,
            reported: calls.last().and_then(|c| c.capacity_units),
        });
    };
    let put = |pk: &str, bytes: usize, indexed: bool| {
        db.put_item()
            .table_name(table)
            .set_item(Some(item(pk, bytes, indexed)))
            .send()
    };
    put("a", 500, false).await?;
    note("PutItem, 0.5 KB", 1.0);
    put("b", 1500, false).await?;
    note("PutItem, 1.5 KB", 2.0);
    put("c", 3500, false).await?;
    note("PutItem, 3.5 KB", 4.0);
    put("d", 5000, false).await?;
    note("PutItem, 5 KB", 5.0);
    put("e", 500, true).await?;
    note("PutItem, 0.5 KB, also in a GSI (projection ALL)", 2.0);
    db.update_item()
        .table_name(table)
        .key("pk", s("b"))
        .update_expression("SET n = :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await?;
    note("UpdateItem of a 1.5 KB item", 2.0);
    let get = |pk: &str, consistent: bool| {
        db.get_item()
            .table_name(table)
            .key("pk", s(pk))
            .consistent_read(consistent)
            .send()
    };
    get("a", true).await?;
    note("GetItem, 0.5 KB, consistent", 1.0);
    get("a", false).await?;
    note("GetItem, 0.5 KB, eventually consistent", 0.5);
    get("d", true).await?;
    note("GetItem, 5 KB, consistent", 2.0);
    get("d", false).await?;
    note("GetItem, 5 KB, eventually consistent", 1.0);
    let keys = KeysAndAttributes::builder()
        .keys([("pk".to_owned(), s("a"))].into())
        .keys([("pk".to_owned(), s("b"))].into())
        .consistent_read(false)
        .build()?;
    db.batch_get_item()
        .request_items(table, keys)
        .send()
        .await?;
    note("BatchGetItem, 0.5 + 1.5 KB, eventually consistent", 1.0);
    let tput = |pk: &str, indexed: bool| -> Result<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(table)
                    .set_item(Some(item(pk, 500, indexed)))
                    .build()?,
            )
            .build())
    };
    db.transact_write_items()
        .transact_items(tput("t1", false)?)
        .transact_items(tput("t2", false)?)
        .send()
        .await?;
    note("TransactWriteItems, 2 puts of 0.5 KB", 4.0);
    db.transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(table)
                        .key("pk", s("a"))
                        .update_expression("SET n = :one")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .build()?,
                )
                .build(),
        )
        .send()
        .await?;
    note("TransactWriteItems, 1 update of a 0.5 KB item", 2.0);
    db.transact_write_items()
        .transact_items(tput("t3", true)?)
        .send()
        .await?;
    note("TransactWriteItems, 1 put of 0.5 KB, also in a GSI", 4.0);
    let failed = db
        .put_item()
        .table_name(table)
        .set_item(Some(item("a", 500, false)))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    if failed.is_ok() {
        anyhow::bail!("the conditional put should have failed");
    }
    note(
        "PutItem, 0.5 KB, condition false (AWS still charges the write)",
        1.0,
    );
    db.query()
        .table_name(table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("d"))
        .consistent_read(true)
        .send()
        .await?;
    note("Query, one 5 KB item, consistent", 2.0);
    Ok(out)
}
