//! The local AWS backend itself: provisioning a stack from the template on the running
//! DynamoDB Local and moto (tables as the template says, topics, queues, platform
//! applications; idempotent), the resolver and a function's local environment, and
//! the backend's lifecycle (start on free ports, reuse when started twice, stop).

use aws_sdk_dynamodb::types::{ProjectionType, TimeToLiveStatus};
use chat_core::config::Tables;
use chat_core::ids::UserId;
use chat_core::input::{DisplayName, UserName};
use chat_local::backend::{Backend, BackendConfig, Mode};
use chat_local::provision::{function_env, provision, LocalResolver};
use chat_tests::backend::{dynamodb_client, endpoints, template, unique_prefix};

#[tokio::test]
async fn provisioning_creates_the_template_resources_idempotently() {
    chat_tests::needs_backend!();
    let prefix = unique_prefix("pv");
    let ep = endpoints();
    let stack = provision(template(), &ep, &prefix).await.unwrap();
    assert_eq!(stack.prefix, prefix);
    assert_eq!(stack.tables.messages, format!("{prefix}-MessagesTable"));

    // Tables: keys, GSIs with projections, on-demand billing and TTL as in the template.
    let db = dynamodb_client().await;
    for def in template().tables().unwrap() {
        let name = format!("{prefix}-{}", def.logical_id);
        let t = db.describe_table().table_name(&name).send().await.unwrap();
        let t = t.table().unwrap();
        let keys: Vec<&str> = t.key_schema().iter().map(|k| k.attribute_name()).collect();
        let mut expected = vec![def.hash_key.as_str()];
        expected.extend(def.range_key.as_deref());
        assert_eq!(keys, expected, "{name}");
        assert_eq!(
            t.billing_mode_summary().and_then(|b| b.billing_mode()),
            Some(&aws_sdk_dynamodb::types::BillingMode::PayPerRequest),
            "{name}"
        );
        let gsis = t.global_secondary_indexes();
        assert_eq!(gsis.len(), def.indexes.len(), "{name}");
        for ix in &def.indexes {
            let g = gsis
                .iter()
                .find(|g| g.index_name() == Some(ix.name.as_str()))
                .unwrap_or_else(|| panic!("{name} lacks GSI {}", ix.name));
            assert_eq!(
                g.projection().and_then(|p| p.projection_type()),
                Some(&ProjectionType::from(ix.projection.as_str()))
            );
        }
        let ttl = db
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        match &def.ttl_attribute {
            Some(attr) => {
                assert_eq!(ttl.attribute_name(), Some(attr.as_str()), "{name}");
                assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
            }
            None => assert_ne!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled)),
        }
    }

    // Topics, queues and platform applications exist in moto.
    let env = ep.aws_env();
    let sdk = chat_core::aws::sdk_config(&env).await;
    let sns = chat_core::aws::sns(&sdk, &env);
    let topic = stack.topic_arn("OfflineMessageTopic").unwrap().to_owned();
    assert!(topic.ends_with(&format!(":{prefix}-OfflineMessageTopic")));
    sns.get_topic_attributes()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    let dlq = &stack.queues["PushNotifierDeadLetterQueue"];
    assert!(dlq.arn.starts_with("arn:aws:sqs:us-east-1:123456789012:"));
    let sqs = chat_local::provision::sqs_client(&sdk, &ep);
    sqs.get_queue_attributes()
        .queue_url(&dlq.url)
        .send()
        .await
        .unwrap();
    for arn in [
        &stack.platform_applications.apns,
        &stack.platform_applications.fcm,
    ] {
        sns.get_platform_application_attributes()
            .platform_application_arn(arn)
            .send()
            .await
            .unwrap();
    }
    assert!(stack.platform_applications.apns.contains("/APNS/"));
    assert!(stack.platform_applications.fcm.contains("/GCM/"));

    // Again: same resources, no error.
    let again = provision(template(), &ep, &prefix).await.unwrap();
    assert_eq!(again.topics, stack.topics);
    assert_eq!(again.queues, stack.queues);
    assert_eq!(again.platform_applications, stack.platform_applications);

    assert!(provision(template(), &ep, "bad prefix!").await.is_err());
}

#[tokio::test]
async fn a_function_gets_a_working_local_environment() {
    chat_tests::needs_backend!();
    let prefix = unique_prefix("fe");
    let ep = endpoints();
    let stack = provision(template(), &ep, &prefix).await.unwrap();
    let key = chat_local::provision::generate_signing_key();
    assert_eq!(key.len(), 64);
    let resolver = LocalResolver::new(stack.clone(), key.clone())
        .parameter("LogLevel", "debug")
        .websocket("localapi", "http://127.0.0.1:9/prod");
    let functions = template().functions().unwrap();
    let push = functions
        .iter()
        .find(|f| f.logical_id == "PushNotifierFunction")
        .unwrap();
    let env = function_env(template(), push, &resolver, &ep).unwrap();
    assert_eq!(
        env.get("USERS_TABLE"),
        Some(format!("{prefix}-UsersTable").as_str())
    );
    assert_eq!(
        env.get("OFFLINE_TOPIC_ARN"),
        stack.topic_arn("OfflineMessageTopic")
    );
    assert_eq!(env.get("JWT_SIGNING_KEY"), Some(key.as_str()));
    assert_eq!(env.get("LOG_LEVEL"), Some("debug"));
    assert_eq!(
        env.get("WEBSOCKET_MANAGEMENT_ENDPOINT"),
        Some("http://127.0.0.1:9/prod")
    );
    assert_eq!(
        env.get("APNS_PLATFORM_APPLICATION_ARN"),
        Some(stack.platform_applications.apns.as_str())
    );
    assert_eq!(
        env.get("FCM_PLATFORM_APPLICATION_ARN"),
        Some(stack.platform_applications.fcm.as_str())
    );
    assert_eq!(
        env.get("AWS_ENDPOINT_URL_DYNAMODB"),
        Some(ep.dynamodb.as_str())
    );
    assert_eq!(env.get("AWS_ENDPOINT_URL_SNS"), Some(ep.moto.as_str()));
    assert_eq!(env.get("AWS_ENDPOINT_URL_SQS"), Some(ep.moto.as_str()));
    assert_eq!(env.get("AWS_REGION"), Some("us-east-1"));
    assert_eq!(env.get("AWS_ACCESS_KEY_ID"), Some("test"));

    // Every function of the template resolves.
    for f in &functions {
        let env = function_env(template(), f, &resolver, &ep).unwrap();
        assert!(Tables::from_env(&env).is_ok(), "{}", f.logical_id);
    }
    // Without the gateway's WebSocket endpoint, resolution fails and says why.
    let bare = LocalResolver::new(stack, key);
    let err = function_env(template(), push, &bare, &ep).unwrap_err();
    assert!(format!("{err:#}").contains("WEBSOCKET_MANAGEMENT_ENDPOINT"));

    // The environment is what a function builds its clients from: it works.
    let sdk = chat_core::aws::sdk_config(&env).await;
    let store = chat_core::store::Store::new(
        chat_core::aws::dynamodb(&sdk, &env),
        Tables::from_env(&env).unwrap(),
    );
    let id = UserId::generate();
    store
        .create_user(
            &id,
            &UserName::parse("envuser").unwrap(),
            &DisplayName::parse("Env").unwrap(),
            "h",
            1,
        )
        .await
        .unwrap();
    assert_eq!(store.find_user_by_name("envuser").await.unwrap(), Some(id));
    let sns = chat_core::aws::sns(&sdk, &env);
    sns.publish()
        .topic_arn(env.get("OFFLINE_TOPIC_ARN").unwrap())
        .message("{}")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_backend_starts_is_reused_when_started_twice_and_stops() {
    chat_tests::needs_backend!();
    let config = BackendConfig::new(Mode::InMemory).free_ports();
    let mut first = Backend::start(&config).await.unwrap();
    assert!(first.owns_servers());
    let ep = first.endpoints().clone();
    chat_local::backend::dynamodb_answers(&ep.aws_env())
        .await
        .unwrap();
    chat_local::backend::moto_answers(&ep.aws_env())
        .await
        .unwrap();

    // Started again on the same ports: reuses the running servers.
    let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let mut again = config.clone();
    again.dynamodb_port = port(&ep.dynamodb);
    again.moto_port = port(&ep.moto);
    let mut second = Backend::start(&again).await.unwrap();
    assert!(!second.owns_servers());
    assert_eq!(second.reused_from(), Some(std::process::id()));
    assert_eq!(second.endpoints(), &ep);
    second.stop().await;
    chat_local::backend::dynamodb_answers(&ep.aws_env())
        .await
        .expect("stopping a reused backend leaves it running");

    first.stop().await;
    assert!(chat_local::backend::dynamodb_answers(&ep.aws_env())
        .await
        .is_err());
    assert!(chat_local::backend::moto_answers(&ep.aws_env())
        .await
        .is_err());
}
