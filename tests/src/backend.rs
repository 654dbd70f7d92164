//! Store-level test support: each test gets its own freshly provisioned tables on the
//! DynamoDB Local that `./dev test` started (endpoint in `CHAT_DYNAMODB_ENDPOINT`),
//! under a unique prefix, so tests run in parallel without seeing each other's data.

use chat_core::config::Env;
use chat_core::store::Store;
use chat_local::backend::BackendEndpoints;
use chat_local::provision::provision_tables;
use chat_local::template::Template;
use std::sync::OnceLock;

/// The running backend's endpoints; panics with what to do when the tests were not
/// started by `./dev test`.
pub fn endpoints() -> BackendEndpoints {
    if crate::remote::is_remote() {
        panic!(
            "this test needs backend access (DynamoDB Local / moto), which the remote mode \
             does not give: start it with `chat_tests::needs_backend!();`"
        );
    }
    match BackendEndpoints::from_process_env() {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

/// `infra/template.yaml`, parsed once.
pub fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| Template::load(&Template::default_path()).expect("infra/template.yaml parses"))
}

/// A prefix no other test uses: `{tag}-{random}` (lowercase, valid in every name).
pub fn unique_prefix(tag: &str) -> String {
    let id = chat_core::ids::MessageId::generate();
    let ulid = &id.as_str()[chat_core::ids::MessageId::PREFIX.len()..];
    format!("{tag}-{}", ulid.to_ascii_lowercase())
}

/// The AWS environment of the local backend (endpoints, region, test credentials).
pub fn aws_env() -> Env {
    endpoints().aws_env()
}

/// A DynamoDB client for the local backend.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let env = aws_env();
    let sdk = chat_core::aws::sdk_config(&env).await;
    chat_core::aws::dynamodb(&sdk, &env)
}

/// A [`Store`] on freshly created tables of its own.
pub async fn store_for_test() -> Store {
    let db = dynamodb_client().await;
    let prefix = unique_prefix("st");
    let tables = provision_tables(&db, template(), &prefix)
        .await
        .unwrap_or_else(|e| panic!("creating tables {prefix}-*: {e:#}"));
    Store::new(db, tables)
}
