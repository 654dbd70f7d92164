//! The gateway serves exactly the template's routes and functions, refuses to start
//! when a route's function cannot run, and runs functions as processes behind the
//! Lambda Runtime API when asked to.

use chat_local::gateway::functions::Registry;
use chat_local::gateway::process::{peak_memory_kb, ProcessOptions};
use chat_local::gateway::{FunctionMode, Gateway, GatewayConfig};
use chat_local::template::Template;
use chat_tests::fakes::{self, FakeGateway};
use futures::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[tokio::test]
async fn gateway_routes_equal_the_template() {
    let t = fakes::template();
    let fg = FakeGateway::start().await;
    let routes = fg.gateway.routes();
    let ws = t.websocket_api().unwrap();
    assert_eq!(routes.websocket, ws.routes);
    assert_eq!(routes.route_selection_expression, "$request.body.action");
    assert_eq!(routes.http, t.http_routes().unwrap());
    let expected: BTreeMap<String, String> = t
        .functions()
        .unwrap()
        .into_iter()
        .filter(|f| !f.http_routes.is_empty() || ws.routes.values().any(|v| *v == f.logical_id))
        .map(|f| (f.logical_id, f.binary))
        .collect();
    assert_eq!(routes.functions, expected);
    assert_eq!(
        routes.sns.get("PushNotifierFunction"),
        Some(&vec!["OfflineMessageTopic".to_owned()])
    );
    // Every HTTP route of the template answers (none is a 404).
    let http = reqwest::Client::new();
    for r in &routes.http {
        let path = r.path.replace('{', "x").replace('}', "");
        let resp = http
            .request(
                r.method.parse().unwrap(),
                format!("{}{path}", fg.gateway.http_url()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{} {}", r.method, r.path);
        let ev: Value = resp.json().await.unwrap();
        assert_eq!(ev["routeKey"], format!("{} {}", r.method, r.path));
    }
}

#[tokio::test]
async fn a_route_without_a_function_is_a_start_up_error() {
    let (mut registry, _calls) = fakes::registry();
    let mut without = Registry::empty();
    for b in registry.binaries().map(str::to_owned).collect::<Vec<_>>() {
        if b != "ws-message" {
            without.register(&b, {
                let build = registry.get(&b).unwrap();
                move |env| build(env)
            });
        }
    }
    registry = without;
    let err = Gateway::start(GatewayConfig::new(fakes::template(), registry))
        .await
        .err()
        .expect("start-up fails");
    let msg = format!("{err:#}");
    assert!(msg.contains("WebSocket route sendMessage"), "{msg}");
    assert!(msg.contains("WsMessageFunction"), "{msg}");
    assert!(msg.contains("`ws-message`"), "{msg}");

    // A route naming a function that is not in the template at all.
    // (The integration invokes the function's `live` alias, passed as a !Sub variable.)
    let text = fakes::template_text();
    assert!(text.contains("{ Function: !Ref WsMessageFunction.Alias }"));
    let broken = text.replacen(
        "{ Function: !Ref WsMessageFunction.Alias }",
        "{ Function: !Ref NoSuchFunction.Alias }",
        1,
    );
    let err = Gateway::start(GatewayConfig::new(
        Template::parse(&broken).unwrap(),
        fakes::registry().0,
    ))
    .await
    .err()
    .expect("start-up fails");
    assert!(format!("{err:#}").contains("NoSuchFunction"), "{err:#}");
}

fn echo_template() -> Template {
    let mut text = fakes::template_text();
    for b in [
        "ws-connect",
        "ws-disconnect",
        "ws-message",
        "http-auth",
        "http-users",
        "http-chats",
        "http-devices",
        "push-notifier",
        "account-purger",
        "thumbnailer",
    ] {
        text = text.replace(&format!("Binary: {b}\n"), "Binary: echo-function\n");
    }
    let mut template = Template::parse(&text).unwrap();
    // The function behind GET /me gets a 2 s timeout, whatever the real template says.
    template
        .resources
        .get_mut("HttpUsersFunction")
        .expect("HttpUsersFunction is in the template")
        .properties
        .as_mapping_mut()
        .expect("its Properties are a mapping")
        .insert("Timeout".into(), serde_yaml::Value::Number(2.into()));
    template
}

async fn pid_of(resp: reqwest::Response) -> u32 {
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["pid"].as_u64().unwrap() as u32
}

#[tokio::test]
async fn process_mode_runs_binaries_behind_the_runtime_api() {
    assert!(peak_memory_kb(std::process::id()).unwrap() > 0);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_echo-function"))
        .parent()
        .unwrap()
        .to_owned();
    let mut cfg = GatewayConfig::new(echo_template(), Registry::empty());
    cfg.functions = FunctionMode::Process(ProcessOptions::new(bin_dir));
    let gw = Gateway::start(cfg).await.expect("starts");
    let http = reqwest::Client::new();
    let me = format!("{}/me", gw.http_url());

    // Cold start, then the same warm process.
    let p1 = pid_of(http.get(&me).send().await.unwrap()).await;
    let p2 = pid_of(http.get(&me).send().await.unwrap()).await;
    assert_eq!(p1, p2, "kept warm");
    assert_ne!(p1, std::process::id(), "not in-process");

    // A function error comes back as API Gateway's 500; the process stays.
    let resp = http.get(&me).header("x-fail", "1").send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(pid_of(http.get(&me).send().await.unwrap()).await, p1);

    // Two concurrent invocations need two processes.
    let (a, b) = tokio::join!(
        http.get(&me).header("x-sleep", "1").send(),
        http.get(&me).header("x-sleep", "1").send()
    );
    let (a, b) = (pid_of(a.unwrap()).await, pid_of(b.unwrap()).await);
    assert_ne!(a, b);

    // Past the function's timeout (2 s in this template) the process is killed and replaced.
    let resp = http.get(&me).header("x-sleep", "5").send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    assert!(
        [a, b].iter().filter(|p| alive(**p)).count() == 1,
        "one of the two processes was killed"
    );

    // The WebSocket API through processes too.
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.ws_url())
        .await
        .expect("$connect through a process");
    let survivors: Vec<u32> = [a, b].into_iter().filter(|p| alive(*p)).collect();
    gw.shutdown().await;
    assert!(matches!(
        ws.next().await,
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
    ));
    for p in survivors {
        assert!(!alive(p), "process {p} stopped with the gateway");
    }
}
