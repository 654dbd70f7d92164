//! `TestStack` itself: a provisioned stack behind the gateway, its environment, the
//! offline-topic observer and moto's recorded pushes. Needs the backend of `./dev test`.

use chat_tests::fakes;
use chat_tests::{TestStack, TestStackOptions};
use std::time::Duration;

#[tokio::test]
async fn test_stack_wires_gateway_backend_and_observers() {
    chat_tests::needs_backend!();
    let (registry, calls) = fakes::registry();
    let stack = TestStack::start_with(TestStackOptions {
        registry,
        ..TestStackOptions::default()
    })
    .await;
    let env = stack.env();
    assert_eq!(
        env.get("MESSAGES_TABLE"),
        Some(format!("{}-MessagesTable", stack.prefix()).as_str())
    );
    assert_eq!(
        env.get("WEBSOCKET_MANAGEMENT_ENDPOINT"),
        Some(stack.management_endpoint())
    );
    assert_eq!(env.get("JWT_SIGNING_KEY"), Some(stack.signing_key()));
    assert!(stack.ws_url().starts_with("ws://127.0.0.1:"));

    // The fakes get the stack's environment: ws-message answers through @connections.
    let (mut ws, _) = tokio_tungstenite::connect_async(stack.ws_url())
        .await
        .unwrap();
    use futures::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"action":"ping"}"#.into(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(matches!(
        reply,
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
    ));

    // A message on the offline topic is seen by the observer and by the push notifier.
    let aws = stack.backend().aws_env();
    let sdk = chat_core::aws::sdk_config(&aws).await;
    let sns = chat_core::aws::sns(&sdk, &aws);
    let topic = stack.stack().topic_arn("OfflineMessageTopic").unwrap();
    sns.publish()
        .topic_arn(topic)
        .message(r#"{"recipient":"usr_x"}"#)
        .send()
        .await
        .unwrap();
    let seen = stack.offline_messages(1, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json["recipient"], "usr_x");
    calls
        .wait_for("push-notifier", |c| c.binary == "push-notifier")
        .await;

    // Pushes to this stack's platform endpoints are visible; no others.
    assert!(stack.push_messages().await.is_empty());
    let endpoint = sns
        .create_platform_endpoint()
        .platform_application_arn(&stack.stack().platform_applications.fcm)
        .token(format!("tok-{}", stack.prefix()))
        .send()
        .await
        .unwrap()
        .endpoint_arn
        .unwrap();
    sns.publish()
        .target_arn(&endpoint)
        .message("hello device")
        .send()
        .await
        .unwrap();
    let pushes = stack.wait_push_messages(1, Duration::from_secs(10)).await;
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].platform, "GCM");
    assert_eq!(pushes[0].message, "hello device");
    stack.shutdown().await;
}

/// With `proxy_dynamodb`, the functions' DynamoDB calls cross the proxy: it records
/// them with their capacity, and its faults reach the client as AWS would cause them.
#[tokio::test]
async fn dynamodb_proxy_records_calls_and_injects_faults() {
    chat_tests::needs_backend!();
    use chat_local::proxy::{ProxyFault, ProxyFaultAction};
    let stack = TestStack::start_with(TestStackOptions::default().proxy_dynamodb()).await;
    let proxy = stack.dynamodb_proxy();
    let api = chat_tests::api::Api::new(&stack);
    proxy.record_capacity(true);
    let alice = api.register("Alice").await;
    let calls = proxy.take_calls();
    assert!(
        !calls.is_empty(),
        "registration reached DynamoDB through the proxy"
    );
    assert!(calls.iter().all(|c| c.status == 200), "{calls:?}");
    let users_table = format!("{}-UsersTable", stack.prefix());
    let write = calls
        .iter()
        .find(|c| c.tables.contains(&users_table) && c.operation != "GetItem")
        .unwrap_or_else(|| panic!("no write to {users_table}: {calls:?}"));
    assert!(
        write.capacity_units.is_some_and(|u| u >= 1.0),
        "capacity recorded: {write:?}"
    );

    // Two throttled answers: the SDK retries with backoff and the request succeeds.
    proxy.add_fault(ProxyFault::new(ProxyFaultAction::throttle()).times(2));
    let (status, _) = api
        .request(Some(&alice.access_token), "GET", "/me", None)
        .await;
    assert_eq!(status, 200);
    let calls = proxy.take_calls();
    assert_eq!(
        calls.iter().filter(|c| c.status == 400).count(),
        2,
        "{calls:?}"
    );
    assert!(proxy.faults().is_empty(), "both uses consumed");

    // DynamoDB unreachable: a clear 5xx, not a hang or a panic; then it recovers.
    proxy.add_fault(ProxyFault::new(ProxyFaultAction::Unreachable));
    let (status, body) = api
        .request(Some(&alice.access_token), "GET", "/me", None)
        .await;
    assert!(status >= 500, "{status} {body}");
    assert!(body["error"]["code"].is_string(), "typed error: {body}");
    proxy.clear_faults();
    let (status, _) = api
        .request(Some(&alice.access_token), "GET", "/me", None)
        .await;
    assert_eq!(status, 200);
    stack.shutdown().await;
}
