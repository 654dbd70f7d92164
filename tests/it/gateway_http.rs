//! The local gateway's HTTP API with a real HTTP client against recording fakes:
//! payload format 2.0 events, response mapping, CORS, 404 and 413 as API Gateway.

use chat_tests::fakes::FakeGateway;
use serde_json::Value;

async fn echo(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("the fake echoes the event")
}

#[tokio::test]
async fn request_becomes_a_payload_2_event() {
    let fg = FakeGateway::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .delete(format!(
            "{}/chats/grp_1/members/usr%5F2?a=1&a=2&b=x%20y",
            fg.gateway.http_url()
        ))
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("cookie", "s=1; t=2")
        .header("content-type", "application/json")
        .header("user-agent", "http-test/1")
        .body(r#"{"muted":true}"#)
        .send()
        .await
        .unwrap();
    let ev = echo(resp).await;
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["routeKey"], "DELETE /chats/{chatId}/members/{userId}");
    assert_eq!(ev["rawPath"], "/prod/chats/grp_1/members/usr%5F2");
    assert_eq!(ev["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(ev["pathParameters"]["chatId"], "grp_1");
    assert_eq!(ev["pathParameters"]["userId"], "usr_2");
    assert_eq!(ev["queryStringParameters"]["a"], "1,2");
    assert_eq!(ev["queryStringParameters"]["b"], "x y");
    assert_eq!(ev["headers"]["x-multi"], "one,two");
    assert!(ev["headers"].get("cookie").is_none());
    assert_eq!(ev["cookies"], serde_json::json!(["s=1", "t=2"]));
    assert_eq!(ev["body"], r#"{"muted":true}"#);
    assert_eq!(ev["isBase64Encoded"], false);
    let http_ctx = &ev["requestContext"]["http"];
    assert_eq!(http_ctx["method"], "DELETE");
    assert_eq!(http_ctx["path"], "/prod/chats/grp_1/members/usr%5F2");
    assert_eq!(http_ctx["sourceIp"], "127.0.0.1");
    assert_eq!(http_ctx["userAgent"], "http-test/1");
    assert_eq!(http_ctx["protocol"], "HTTP/1.1");
    assert_eq!(ev["requestContext"]["stage"], "prod");
    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(ev.clone()).expect("typed event");
    assert_eq!(
        typed.path_parameters.get("chatId").map(String::as_str),
        Some("grp_1")
    );
    let call = fg
        .calls
        .wait_for("http-chats", |c| c.binary == "http-chats")
        .await;
    assert_eq!(call.event["routeKey"], ev["routeKey"]);
}

#[tokio::test]
async fn static_segment_wins_over_parameter() {
    let fg = FakeGateway::start().await;
    let ev = echo(
        reqwest::Client::new()
            .patch(format!("{}/chats/grp_1/members/me", fg.gateway.http_url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ev["routeKey"], "PATCH /chats/{chatId}/members/me");
    assert!(ev.get("body").is_none());
}

#[tokio::test]
async fn binary_bodies_travel_base64() {
    let fg = FakeGateway::start().await;
    let bytes = vec![0u8, 159, 146, 150, 255];
    let ev = echo(
        reqwest::Client::new()
            .post(format!("{}/devices", fg.gateway.http_url()))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ev["isBase64Encoded"], true);
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(ev["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, bytes);
}

#[tokio::test]
async fn response_maps_status_headers_cookies_and_base64() {
    let fg = FakeGateway::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/me", fg.gateway.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-function"], "http-users");
    let multi: Vec<_> = resp.headers().get_all("x-multi").iter().collect();
    assert_eq!(multi.len(), 2);
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        cookies,
        vec![
            "session=abc; Path=/; HttpOnly".to_owned(),
            "theme=dark".into()
        ]
    );
    let resp = http
        .get(format!("{}/me", fg.gateway.http_url()))
        .header("x-binary", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &[0u8, 1, 2, 255]);
    let resp = http
        .get(format!("{}/me", fg.gateway.http_url()))
        .header("x-fail", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Internal Server Error");
}

#[tokio::test]
async fn unknown_routes_are_404_not_found() {
    let fg = FakeGateway::start().await;
    let http = reqwest::Client::new();
    let base = fg.gateway.http_url().to_owned();
    let root = base.trim_end_matches("/prod").to_owned();
    for (method, url) in [
        (reqwest::Method::GET, format!("{base}/nope")),
        (reqwest::Method::PUT, format!("{base}/me")),
        (reqwest::Method::GET, format!("{base}/chats/a/b/c/d")),
        (reqwest::Method::GET, format!("{root}/me")),
    ] {
        let resp = http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{method} {url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"message": "Not Found"}));
    }
}

#[tokio::test]
async fn bodies_above_10_mb_are_413() {
    let fg = FakeGateway::start().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/login", fg.gateway.http_url()))
        .body(vec![b'a'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn cors_preflight_and_headers_follow_the_configuration() {
    let fg = FakeGateway::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/chats", fg.gateway.http_url());
    let allowed = "http://localhost:5173";
    let resp = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    assert_eq!(
        h["access-control-allow-methods"],
        "GET,POST,PATCH,DELETE,OPTIONS"
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert_eq!(h["access-control-max-age"], "600");
    // The preflight never reaches a function.
    assert!(fg.calls.drain().await.is_empty());
    // A disallowed origin gets no CORS headers.
    let resp = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Actual requests from an allowed origin carry the allow-origin header.
    let resp = http
        .get(&url)
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);
    // A browser client may read Retry-After (429 rate limits, 503 overload) only when
    // the template's CorsConfiguration exposes it (issue 17).
    assert_eq!(
        resp.headers()["access-control-expose-headers"],
        "retry-after",
        "the HTTP API's CORS must expose Retry-After"
    );
}
