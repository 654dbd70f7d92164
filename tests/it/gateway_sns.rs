//! SNS -> Lambda through moto: a message published to the offline topic reaches the
//! subscribed function as an SNS event, and a failing function is retried.
//! Uses the moto of `./dev test` (`CHAT_MOTO_ENDPOINT`) or starts one from `.local/`.

use chat_local::gateway::{Gateway, GatewayConfig, SnsOptions};
use chat_tests::fakes;
use std::collections::HashMap;
use std::time::Duration;

/// moto for this test: the shared one, or our own (stopped on drop).
struct Moto {
    url: String,
    _child: Option<tokio::process::Child>,
}

async fn moto() -> Moto {
    if let Ok(url) = std::env::var("CHAT_MOTO_ENDPOINT") {
        return Moto { url, _child: None };
    }
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/venv/bin/moto_server");
    assert!(
        bin.exists(),
        "no CHAT_MOTO_ENDPOINT and no {}: run scripts/install-local-deps.sh",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // Wait until it answers (bounded).
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if http.get(format!("{url}/moto-api/")).send().await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Moto {
        url,
        _child: Some(child),
    }
}

#[tokio::test]
async fn published_messages_reach_the_subscribed_function_as_sns_events() {
    chat_tests::needs_backend!();
    let moto = moto().await;
    let sdk = chat_local::gateway::sns::moto_sdk(&moto.url, "us-east-1").await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let prefix = format!("gwsns{}", rand::random::<u32>());
    let topic = sns
        .create_topic()
        .name(format!("{prefix}-OfflineMessageTopic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    // The template subscribes the account purger too; the gateway needs every topic.
    let purge_topic = sns
        .create_topic()
        .name(format!("{prefix}-AccountPurgeTopic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    // ... and the thumbnailer.
    let thumbnail_topic = sns
        .create_topic()
        .name(format!("{prefix}-ThumbnailTopic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let (registry, calls) = fakes::registry();
    let mut cfg = GatewayConfig::new(fakes::template(), registry);
    let mut opts = SnsOptions::new(
        &moto.url,
        HashMap::from([
            ("OfflineMessageTopic".to_owned(), topic.clone()),
            ("AccountPurgeTopic".to_owned(), purge_topic),
            ("ThumbnailTopic".to_owned(), thumbnail_topic),
        ]),
        &prefix,
    );
    opts.retry_backoff = Duration::from_millis(10);
    cfg.sns = Some(opts);
    let gw = Gateway::start(cfg).await.expect("starts with SNS delivery");
    sns.publish()
        .topic_arn(&topic)
        .subject("hello")
        .message(r#"{"chatId":"grp_1"}"#)
        .message_attributes(
            "kind",
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("offline")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let call = calls
        .wait_for("push-notifier", |c| c.binary == "push-notifier")
        .await;
    let typed: aws_lambda_events::sns::SnsEvent =
        serde_json::from_value(call.event.clone()).expect("an SnsEvent");
    let rec = &typed.records[0];
    assert_eq!(rec.event_source, "aws:sns");
    assert_eq!(rec.sns.topic_arn, topic);
    assert_eq!(rec.sns.message, r#"{"chatId":"grp_1"}"#);
    assert_eq!(rec.sns.subject.as_deref(), Some("hello"));
    assert_eq!(rec.sns.sns_message_type, "Notification");
    assert_eq!(rec.sns.message_attributes["kind"].value, "offline");
    gw.shutdown().await;
}
