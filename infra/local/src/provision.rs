//! Creating a stack's resources on the local backend from `infra/template.yaml`, and
//! resolving the template's references against what was created.
//!
//! A local stack is a name prefix: every table is `{prefix}-{LogicalId}` (keys,
//! attribute definitions, GSIs with their projections, on-demand billing and TTL as
//! the template says), every SNS topic, SQS queue and S3 bucket likewise (buckets in
//! lower case), plus two moto SNS
//! platform applications (`{prefix}-apns`, Platform `APNS`; `{prefix}-fcm`, Platform
//! `GCM`) with dummy credentials, so push code can create platform endpoints. Many
//! stacks share one backend (each test provisions its own). Provisioning is
//! idempotent: existing tables, topics and queues are kept as they are.
//!
//! - [`provision`] creates everything and returns a [`ProvisionedStack`];
//!   [`provision_tables`] creates only the tables (the store tests need nothing else).
//! - [`LocalResolver`] implements [`Resolver`] for a provisioned stack.
//! - [`function_env`] is the environment a function of the template runs with locally.

use crate::backend::{BackendEndpoints, ACCOUNT_ID, REGION};
use crate::template::{FunctionDef, Resolver, TableDef, Template};
use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use chat_core::config::{Env, Tables};
use std::collections::BTreeMap;

/// An SNS topic of a local stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub arn: String,
}

/// An SQS queue of a local stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// moto SNS platform applications of a local stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformApplications {
    /// Platform `APNS`.
    pub apns: String,
    /// Platform `GCM` (FCM).
    pub fcm: String,
}

/// What [`provision`] created (or found).
#[derive(Debug, Clone)]
pub struct ProvisionedStack {
    pub prefix: String,
    pub tables: Tables,
    /// By template logical id (e.g. `OfflineMessageTopic`).
    pub topics: BTreeMap<String, TopicInfo>,
    /// By template logical id (e.g. `PushNotifierDeadLetterQueue`).
    pub queues: BTreeMap<String, QueueInfo>,
    pub platform_applications: PlatformApplications,
    /// Bucket names by template logical id (e.g. `AttachmentsBucket`).
    pub buckets: BTreeMap<String, String>,
}

impl ProvisionedStack {
    /// The local name of a resource of the template: `{prefix}-{LogicalId}`.
    pub fn name_of(&self, logical_id: &str) -> String {
        resource_name(&self.prefix, logical_id)
    }

    /// The ARN of a topic by logical id.
    pub fn topic_arn(&self, logical_id: &str) -> Option<&str> {
        self.topics.get(logical_id).map(|t| t.arn.as_str())
    }
}

/// `{prefix}-{LogicalId}`, the local naming convention.
pub fn resource_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}")
}

/// Check that a stack prefix makes valid table, topic and queue names.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 40
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("stack prefix {prefix:?}: use 1 to 40 characters of A-Z a-z 0-9 - _");
    }
    Ok(())
}

/// Create every table, topic, queue and platform application of `template` on the
/// backend at `endpoints`, named with `prefix`. Idempotent.
pub async fn provision(
    template: &Template,
    endpoints: &BackendEndpoints,
    prefix: &str,
) -> Result<ProvisionedStack> {
    check_prefix(prefix)?;
    let env = endpoints.aws_env();
    let sdk = chat_core::aws::sdk_config(&env).await;
    let db = chat_core::aws::dynamodb(&sdk, &env);
    let sns = chat_core::aws::sns(&sdk, &env);
    let sqs = sqs_client(&sdk, endpoints);

    let s3 = chat_core::aws::s3(&sdk, &env);
    let (tables, topics, queues, platform_applications, buckets) = tokio::try_join!(
        provision_tables(&db, template, prefix),
        create_topics(&sns, template, prefix),
        create_queues(&sqs, template, prefix),
        create_platform_applications(&sns, prefix),
        create_buckets(&s3, template, prefix),
    )?;
    Ok(ProvisionedStack {
        prefix: prefix.to_owned(),
        tables,
        topics,
        queues,
        platform_applications,
        buckets,
    })
}

/// An SQS client for moto, built on the shared SDK configuration (slim HTTP client).
pub fn sqs_client(
    sdk: &aws_config::SdkConfig,
    endpoints: &BackendEndpoints,
) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .endpoint_url(&endpoints.moto)
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// Create the template's tables only (all at once), named `{prefix}-{LogicalId}`.
/// Fails if the template lacks a table the store needs.
pub async fn provision_tables(
    db: &aws_sdk_dynamodb::Client,
    template: &Template,
    prefix: &str,
) -> Result<Tables> {
    check_prefix(prefix)?;
    let defs = template.tables()?;
    for (_, logical) in Tables::VARS {
        if !defs.iter().any(|d| d.logical_id == logical) {
            bail!("the template defines no table {logical}, which the store needs");
        }
    }
    futures::future::try_join_all(
        defs.iter()
            .map(|d| create_table(db, d, resource_name(prefix, &d.logical_id))),
    )
    .await?;
    Ok(Tables::with_prefix(prefix))
}

fn scalar_type(t: &str) -> Result<ScalarAttributeType> {
    Ok(match t {
        "S" => ScalarAttributeType::S,
        "N" => ScalarAttributeType::N,
        "B" => ScalarAttributeType::B,
        other => bail!("attribute type {other} is not S, N or B"),
    })
}

fn key_schema(hash: &str, range: Option<&str>) -> Result<Vec<KeySchemaElement>> {
    let mut keys = vec![KeySchemaElement::builder()
        .attribute_name(hash)
        .key_type(KeyType::Hash)
        .build()?];
    if let Some(r) = range {
        keys.push(
            KeySchemaElement::builder()
                .attribute_name(r)
                .key_type(KeyType::Range)
                .build()?,
        );
    }
    Ok(keys)
}

async fn create_table(db: &aws_sdk_dynamodb::Client, def: &TableDef, name: String) -> Result<()> {
    let mut req = db
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&def.hash_key, def.range_key.as_deref())?));
    for (attr, ty) in &def.attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(scalar_type(ty)?)
                .build()?,
        );
    }
    for ix in &def.indexes {
        let projection = match ix.projection.as_str() {
            "ALL" => ProjectionType::All,
            "KEYS_ONLY" => ProjectionType::KeysOnly,
            "INCLUDE" => bail!(
                "GSI {} of {}: INCLUDE projections are not supported locally yet",
                ix.name,
                def.logical_id
            ),
            other => bail!("GSI {}: unknown projection {other}", ix.name),
        };
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&ix.name)
                .set_key_schema(Some(key_schema(&ix.hash_key, ix.range_key.as_deref())?))
                .projection(Projection::builder().projection_type(projection).build())
                .build()?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) => {}
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("creating table {name}")));
        }
    }
    if let Some(attr) = &def.ttl_attribute {
        let current = db
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .with_context(|| format!("reading the TTL of {name}"))?;
        let enabled = current.time_to_live_description().is_some_and(|d| {
            matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled) | Some(TimeToLiveStatus::Enabling)
            ) && d.attribute_name() == Some(attr.as_str())
        });
        if !enabled {
            db.update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attr)
                        .enabled(true)
                        .build()?,
                )
                .send()
                .await
                .with_context(|| format!("enabling TTL on {name}.{attr}"))?;
        }
    }
    Ok(())
}

async fn create_topics(
    sns: &aws_sdk_sns::Client,
    template: &Template,
    prefix: &str,
) -> Result<BTreeMap<String, TopicInfo>> {
    let mut out = BTreeMap::new();
    for logical in template.topics() {
        let name = resource_name(prefix, &logical);
        let arn = sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .with_context(|| format!("creating SNS topic {name}"))?
            .topic_arn()
            .ok_or_else(|| anyhow!("CreateTopic {name} returned no ARN"))?
            .to_owned();
        out.insert(logical, TopicInfo { name, arn });
    }
    Ok(out)
}

/// `{prefix}-{logicalid}` in lower case with `_` as `-` (S3 bucket names allow only
/// lower-case letters, digits, `-` and `.`).
pub fn bucket_name(prefix: &str, logical_id: &str) -> String {
    resource_name(prefix, logical_id)
        .to_ascii_lowercase()
        .replace('_', "-")
}

async fn create_buckets(
    s3: &aws_sdk_s3::Client,
    template: &Template,
    prefix: &str,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for logical in template.buckets() {
        let name = bucket_name(prefix, &logical);
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()
                }) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating S3 bucket {name}")))
            }
        }
        out.insert(logical, name);
    }
    Ok(out)
}

async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    template: &Template,
    prefix: &str,
) -> Result<BTreeMap<String, QueueInfo>> {
    let mut out = BTreeMap::new();
    for logical in template.queues() {
        let name = resource_name(prefix, &logical);
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("creating SQS queue {name}"))?
            .queue_url()
            .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))?
            .to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .with_context(|| format!("reading the ARN of queue {name}"))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| anyhow!("queue {name} has no QueueArn"))?;
        out.insert(logical, QueueInfo { name, url, arn });
    }
    Ok(out)
}

async fn create_platform_applications(
    sns: &aws_sdk_sns::Client,
    prefix: &str,
) -> Result<PlatformApplications> {
    let create = |name: String, platform: &'static str| async move {
        let mut req = sns
            .create_platform_application()
            .name(&name)
            .platform(platform)
            // moto checks nothing; these are placeholders, not credentials.
            .attributes("PlatformCredential", "local-dummy-credential");
        if platform == "APNS" {
            req = req.attributes("PlatformPrincipal", "local-dummy-principal");
        }
        let out = req
            .send()
            .await
            .with_context(|| format!("creating SNS platform application {name} ({platform})"))?;
        out.platform_application_arn()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("CreatePlatformApplication {name} returned no ARN"))
    };
    let (apns, fcm) = tokio::try_join!(
        create(format!("{prefix}-apns"), "APNS"),
        create(format!("{prefix}-fcm"), "GCM"),
    )?;
    Ok(PlatformApplications { apns, fcm })
}

/// A fresh random HMAC key for a local stack's access tokens (64 alphanumerics).
pub fn generate_signing_key() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}

/// Resolves the template's references for a local stack.
///
/// - `!Ref Table` -> the table name; `!Ref Topic` -> its ARN; `!Ref Queue` -> its URL;
///   `!Ref Function` -> `{prefix}-{LogicalId}`; `!Ref JwtSigningKey` (the secret) ->
///   a local secret ARN whose `{{resolve:secretsmanager:...}}` is the signing key
///   given to [`LocalResolver::new`].
/// - `!GetAtt Topic.TopicName`/`.TopicArn`, `Queue.Arn`/`.QueueName`/`.QueueUrl`,
///   `Table.Arn`, `Function.Arn`.
/// - `AWS::Region` = `us-east-1`, `AWS::AccountId` = `123456789012`, `AWS::Partition`
///   = `aws`, `AWS::StackName` = the prefix.
/// - Parameters: the template's defaults, except `ApnsPlatformApplicationArn` and
///   `FcmPlatformApplicationArn`, which default to the stack's moto platform
///   applications; [`LocalResolver::parameter`] overrides any of them.
/// - The WebSocket API (`!Ref WebSocketApi`) and `WEBSOCKET_MANAGEMENT_ENDPOINT` are
///   unknown until the local gateway listens: it supplies them with
///   [`LocalResolver::websocket`]. Without them, resolving anything that names the
///   WebSocket API is an error.
#[derive(Debug, Clone)]
pub struct LocalResolver {
    stack: ProvisionedStack,
    signing_key: String,
    parameters: BTreeMap<String, String>,
    websocket_api_id: Option<String>,
    management_endpoint: Option<String>,
}

impl LocalResolver {
    pub fn new(stack: ProvisionedStack, jwt_signing_key: impl Into<String>) -> Self {
        let mut parameters = BTreeMap::new();
        parameters.insert(
            "ApnsPlatformApplicationArn".to_owned(),
            stack.platform_applications.apns.clone(),
        );
        parameters.insert(
            "FcmPlatformApplicationArn".to_owned(),
            stack.platform_applications.fcm.clone(),
        );
        LocalResolver {
            stack,
            signing_key: jwt_signing_key.into(),
            parameters,
            websocket_api_id: None,
            management_endpoint: None,
        }
    }

    /// Override a template parameter (e.g. `LogLevel`, `StageName`).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// The local WebSocket API: its id (what `!Ref WebSocketApi` gives) and the
    /// `@connections` endpoint functions post to
    /// (`WEBSOCKET_MANAGEMENT_ENDPOINT`, e.g. `http://127.0.0.1:PORT/STAGE`).
    pub fn websocket(
        mut self,
        api_id: impl Into<String>,
        management_endpoint: impl Into<String>,
    ) -> Self {
        self.websocket_api_id = Some(api_id.into());
        self.management_endpoint = Some(management_endpoint.into());
        self
    }

    pub fn stack(&self) -> &ProvisionedStack {
        &self.stack
    }

    pub fn signing_key(&self) -> &str {
        &self.signing_key
    }

    pub fn management_endpoint(&self) -> Option<&str> {
        self.management_endpoint.as_deref()
    }

    fn table_name(&self, logical: &str) -> Option<String> {
        Tables::VARS
            .iter()
            .any(|(_, l)| *l == logical)
            .then(|| self.stack.name_of(logical))
    }

    fn secret_arn(&self, logical: &str) -> String {
        format!(
            "arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{}",
            self.stack.name_of(logical)
        )
    }
}

/// The logical id of the JWT signing key secret in the template.
const JWT_SECRET: &str = "JwtSigningKey";

impl Resolver for LocalResolver {
    fn reference(&self, name: &str) -> Option<String> {
        if let Some(v) = self.parameters.get(name) {
            return Some(v.clone());
        }
        if let Some(t) = self.table_name(name) {
            return Some(t);
        }
        if let Some(t) = self.stack.topics.get(name) {
            return Some(t.arn.clone());
        }
        if let Some(q) = self.stack.queues.get(name) {
            return Some(q.url.clone());
        }
        if let Some(b) = self.stack.buckets.get(name) {
            return Some(b.clone());
        }
        match name {
            JWT_SECRET => Some(self.secret_arn(name)),
            "WebSocketApi" => self.websocket_api_id.clone(),
            n if n.ends_with("Function") => Some(self.stack.name_of(n)),
            _ => None,
        }
    }

    fn attribute(&self, resource: &str, attr: &str) -> Option<String> {
        if let Some(t) = self.stack.topics.get(resource) {
            return match attr {
                "TopicName" => Some(t.name.clone()),
                "TopicArn" => Some(t.arn.clone()),
                _ => None,
            };
        }
        if let Some(q) = self.stack.queues.get(resource) {
            return match attr {
                "Arn" => Some(q.arn.clone()),
                "QueueName" => Some(q.name.clone()),
                "QueueUrl" => Some(q.url.clone()),
                _ => None,
            };
        }
        if let Some(b) = self.stack.buckets.get(resource) {
            return (attr == "Arn").then(|| format!("arn:aws:s3:::{b}"));
        }
        if let Some(t) = self.table_name(resource) {
            return (attr == "Arn")
                .then(|| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{t}"));
        }
        if resource.ends_with("Function") && attr == "Arn" {
            return Some(format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
                self.stack.name_of(resource)
            ));
        }
        None
    }

    fn secret(&self, reference: &str) -> Option<String> {
        // `[resolve:]secretsmanager:{arn}:SecretString:key[:{version-stage}]` (the
        // template reader passes the reference with its `resolve:` prefix). A local
        // stack's secret has one version, which every stage label names.
        let reference = reference.strip_prefix("resolve:").unwrap_or(reference);
        let rest = reference.strip_prefix("secretsmanager:")?;
        let arn = self.secret_arn(JWT_SECRET);
        let rest = rest.strip_prefix(arn.as_str())?;
        let pinned = rest
            .strip_prefix(":SecretString:key:")
            .is_some_and(|stage| !stage.is_empty() && !stage.contains(':'));
        (pinned || matches!(rest, ":SecretString:key" | "::" | ""))
            .then(|| self.signing_key.clone())
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => Some(REGION.to_owned()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_owned()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::StackName" => Some(self.stack.prefix.clone()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            _ => None,
        }
    }
}

/// The environment `function` runs with in a local stack: its template variables
/// (globals merged with its own) resolved by `resolver`, `WEBSOCKET_MANAGEMENT_ENDPOINT`
/// from the resolver when it knows the gateway, the backend's endpoints
/// (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SNS`, `AWS_ENDPOINT_URL_SQS`),
/// `AWS_REGION`, test credentials, and `AWS_LAMBDA_FUNCTION_NAME` /
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` as Lambda sets them.
pub fn function_env(
    template: &Template,
    function: &FunctionDef,
    resolver: &LocalResolver,
    endpoints: &BackendEndpoints,
) -> Result<Env> {
    let mut env = Env::default();
    for (name, value) in &function.environment {
        if name == "WEBSOCKET_MANAGEMENT_ENDPOINT" {
            if let Some(url) = resolver.management_endpoint() {
                env.set(name, url);
                continue;
            }
        }
        let v = template.resolve(value, resolver).with_context(|| {
            let hint = if name == "WEBSOCKET_MANAGEMENT_ENDPOINT" {
                " (the local gateway supplies it with LocalResolver::websocket)"
            } else {
                ""
            };
            format!(
                "resolving {name} of {} for the local stack{hint}",
                function.logical_id
            )
        })?;
        env.set(name, v);
    }
    for (k, v) in endpoints.aws_vars() {
        env.set(k, v);
    }
    env.set(
        "AWS_LAMBDA_FUNCTION_NAME",
        resolver.stack().name_of(&function.logical_id),
    );
    env.set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        function.memory_mb.to_string(),
    );
    Ok(env)
}
