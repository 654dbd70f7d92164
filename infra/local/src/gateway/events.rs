//! The exact event JSON API Gateway and SNS hand to Lambda, and the mapping of a
//! function's response back. WebSocket events follow the shape of
//! `aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest` as API Gateway sends it
//! (see the fixtures of that crate); HTTP events are payload format 2.0
//! (`ApiGatewayV2httpRequest`); SNS events are `SnsEvent` records. Everything here is
//! pure (no I/O) so `generate-event` and the tests can use it too.

use base64::Engine;
use chrono::{TimeZone, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `09/Feb/2024:18:23:28 +0000`, the `requestTime` format of API Gateway.
pub fn request_time(epoch_ms: i64) -> String {
    Utc.timestamp_millis_opt(epoch_ms)
        .single()
        .unwrap_or_else(Utc::now)
        .format("%d/%b/%Y:%H:%M:%S +0000")
        .to_string()
}

const B64ISH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A connection id in API Gateway's format: 16 characters, base64-looking, ending in
/// `=` (e.g. `ZbVp8dZ9IAMCLvQ=`).
pub fn connection_id() -> String {
    let mut rng = rand::thread_rng();
    let mut s: String = (0..15)
        .map(|_| B64ISH[rng.gen_range(0..B64ISH.len())] as char)
        .collect();
    s.push('=');
    s
}

/// A request id like API Gateway's `extendedRequestId`/`requestId` (`ZbVqGFJ5IAMF8wQ=`).
pub fn request_id() -> String {
    connection_id()
}

/// A UUID-shaped id (Lambda request ids, SNS message ids).
pub fn uuid() -> String {
    let b: [u8; 16] = rand::thread_rng().gen();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A lowercase 10-character API id (`abcd1234ef`).
pub fn api_id() -> String {
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| {
            let c = B64ISH[26 + rng.gen_range(0..36)];
            c as char
        })
        .collect::<String>()
        .to_ascii_lowercase()
}

/// What API Gateway knows about one WebSocket connection.
#[derive(Debug, Clone)]
pub struct WsContext {
    pub api_id: String,
    pub stage: String,
    pub domain_name: String,
    pub connection_id: String,
    pub connected_at: i64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

impl WsContext {
    fn request_context(&self, route_key: &str, event_type: &str, now: i64) -> Map<String, Value> {
        let rid = request_id();
        let mut identity = Map::new();
        identity.insert("sourceIp".into(), json!(self.source_ip));
        if event_type == "CONNECT" {
            if let Some(ua) = &self.user_agent {
                identity.insert("userAgent".into(), json!(ua));
            }
        }
        let mut m = Map::new();
        m.insert("routeKey".into(), json!(route_key));
        m.insert("eventType".into(), json!(event_type));
        m.insert("extendedRequestId".into(), json!(rid));
        m.insert("requestTime".into(), json!(request_time(now)));
        m.insert("messageDirection".into(), json!("IN"));
        m.insert("stage".into(), json!(self.stage));
        m.insert("connectedAt".into(), json!(self.connected_at));
        m.insert("requestTimeEpoch".into(), json!(now));
        m.insert("identity".into(), Value::Object(identity));
        m.insert("requestId".into(), json!(rid));
        m.insert("domainName".into(), json!(self.domain_name));
        m.insert("connectionId".into(), json!(self.connection_id));
        m.insert("apiId".into(), json!(self.api_id));
        m
    }
}

/// Title-case a lowercased header name (`sec-websocket-key` -> `Sec-Websocket-Key`),
/// close to what API Gateway passes on `$connect` (HTTP/1.1 names lose their case in
/// the local server; functions read headers case-insensitively anyway).
pub fn title_case(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Parse `a=1&b=2&a=3` into ordered (key, value) pairs, percent-decoded.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decode `%XX` escapes (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `$connect` event: headers and query string of the upgrade request.
pub fn ws_connect(ctx: &WsContext, headers: &[(String, String)], query: Option<&str>) -> Value {
    let now = ctx.connected_at;
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let k = title_case(k);
        single.insert(k.clone(), json!(v));
        match multi.get_mut(&k) {
            Some(Value::Array(a)) => a.push(json!(v)),
            _ => {
                multi.insert(k, json!([v]));
            }
        }
    }
    for (k, v) in [
        ("X-Forwarded-For", ctx.source_ip.as_str()),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Proto", "https"),
    ] {
        single.insert(k.into(), json!(v));
        multi.insert(k.into(), json!([v]));
    }
    let mut event = Map::new();
    event.insert("headers".into(), Value::Object(single));
    event.insert("multiValueHeaders".into(), Value::Object(multi));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        let pairs = parse_query(q);
        let mut qs = Map::new();
        let mut mqs: Map<String, Value> = Map::new();
        for (k, v) in pairs {
            qs.insert(k.clone(), json!(v));
            match mqs.get_mut(&k) {
                Some(Value::Array(a)) => a.push(json!(v)),
                _ => {
                    mqs.insert(k, json!([v]));
                }
            }
        }
        event.insert("queryStringParameters".into(), Value::Object(qs));
        event.insert("multiValueQueryStringParameters".into(), Value::Object(mqs));
    }
    event.insert(
        "requestContext".into(),
        Value::Object(ctx.request_context("$connect", "CONNECT", now)),
    );
    event.insert("isBase64Encoded".into(), json!(false));
    Value::Object(event)
}

/// A message event: one complete WebSocket message routed to `route_key`.
pub fn ws_message(ctx: &WsContext, route_key: &str, body: &[u8], binary: bool) -> Value {
    let now = now_ms();
    let mut rc = ctx.request_context(route_key, "MESSAGE", now);
    rc.insert("messageId".into(), json!(request_id()));
    let (body, b64) = match (binary, std::str::from_utf8(body)) {
        (false, Ok(text)) => (text.to_owned(), false),
        _ => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    json!({
        "requestContext": Value::Object(rc),
        "body": body,
        "isBase64Encoded": b64,
    })
}

/// The `$disconnect` event, with the close code and reason API Gateway reports.
pub fn ws_disconnect(ctx: &WsContext, status_code: u16, reason: &str) -> Value {
    let now = now_ms();
    let mut rc = ctx.request_context("$disconnect", "DISCONNECT", now);
    rc.insert("disconnectStatusCode".into(), json!(status_code));
    rc.insert("disconnectReason".into(), json!(reason));
    json!({
        "headers": {
            "Host": ctx.domain_name,
            "x-api-key": "",
            "X-Forwarded-For": "",
            "x-restapi": "",
        },
        "multiValueHeaders": {
            "Host": [ctx.domain_name],
            "x-api-key": [""],
            "X-Forwarded-For": [""],
            "x-restapi": [""],
        },
        "requestContext": Value::Object(rc),
        "isBase64Encoded": false,
    })
}

/// What API Gateway knows about one HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub api_id: String,
    pub stage: String,
    pub domain_name: String,
    /// `METHOD /path/{param}` of the matched route (or `$default`).
    pub route_key: String,
    pub method: String,
    /// The path as the client sent it (with the stage prefix for a named stage).
    pub raw_path: String,
    pub raw_query: String,
    /// Header (lowercase name, value) pairs in arrival order.
    pub headers: Vec<(String, String)>,
    pub path_parameters: Vec<(String, String)>,
    pub source_ip: String,
    pub body: Vec<u8>,
}

/// Content types API Gateway passes as text; anything else is base64-encoded.
pub fn is_text_content(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.ends_with("/json")
        || ct.ends_with("+json")
        || ct.ends_with("/xml")
        || ct.ends_with("+xml")
        || ct == "application/javascript"
        || ct == "application/x-www-form-urlencoded"
}

/// A payload format 2.0 event (`ApiGatewayV2httpRequest`).
pub fn http_v2(req: &HttpRequest) -> Value {
    let now = now_ms();
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<String> = Vec::new();
    let mut user_agent = String::new();
    let mut content_type = None;
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        if k == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        if k == "user-agent" {
            user_agent = v.clone();
        }
        if k == "content-type" {
            content_type = Some(v.clone());
        }
        match headers.get_mut(&k) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(v);
            }
            _ => {
                headers.insert(k, json!(v));
            }
        }
    }
    headers.insert("x-forwarded-for".into(), json!(req.source_ip));
    headers
        .entry("x-forwarded-proto")
        .or_insert_with(|| json!("https"));
    headers
        .entry("x-forwarded-port")
        .or_insert_with(|| json!("443"));
    let rid = request_id();
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(req.route_key));
    event.insert("rawPath".into(), json!(req.raw_path));
    event.insert("rawQueryString".into(), json!(req.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !req.raw_query.is_empty() {
        let mut qs: Map<String, Value> = Map::new();
        for (k, v) in parse_query(&req.raw_query) {
            match qs.get_mut(&k) {
                Some(Value::String(s)) => {
                    s.push(',');
                    s.push_str(&v);
                }
                _ => {
                    qs.insert(k, json!(v));
                }
            }
        }
        event.insert("queryStringParameters".into(), Value::Object(qs));
    }
    if !req.path_parameters.is_empty() {
        let pp: Map<String, Value> = req
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        event.insert("pathParameters".into(), Value::Object(pp));
    }
    let domain_prefix = req
        .domain_name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": "000000000000",
            "apiId": req.api_id,
            "domainName": req.domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": req.method,
                "path": req.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": rid,
            "routeKey": req.route_key,
            "stage": req.stage,
            "time": request_time(now),
            "timeEpoch": now,
        }),
    );
    if !req.body.is_empty() {
        let text = is_text_content(content_type.as_deref());
        match (text, std::str::from_utf8(&req.body)) {
            (true, Ok(s)) => {
                event.insert("body".into(), json!(s));
                event.insert("isBase64Encoded".into(), json!(false));
            }
            _ => {
                event.insert(
                    "body".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(&req.body)),
                );
                event.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        event.insert("isBase64Encoded".into(), json!(false));
    }
    Value::Object(event)
}

/// An HTTP response as API Gateway builds it from a function's payload-2.0 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// (name, value) pairs; `set-cookie` once per cookie.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Map a function's answer to the HTTP response, as API Gateway does for payload
/// format 2.0: an object with `statusCode` is a structured response (`headers`,
/// `multiValueHeaders`, `cookies`, `body`, `isBase64Encoded`); anything else is
/// returned as a 200 JSON body.
pub fn http_response(v: &Value) -> Result<HttpResponse, String> {
    let obj = match v {
        Value::Object(o) if o.contains_key("statusCode") => o,
        other => {
            let body = match other {
                Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            };
            return Ok(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            });
        }
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .filter(|s| (100..=599).contains(s))
        .ok_or("statusCode is not an HTTP status")? as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (k, v) in h {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            headers.push((k.to_ascii_lowercase(), v));
        }
    }
    if let Some(Value::Object(h)) = obj.get("multiValueHeaders") {
        for (k, vs) in h {
            let k = k.to_ascii_lowercase();
            if headers.iter().any(|(n, _)| *n == k) {
                continue;
            }
            for v in vs.as_array().into_iter().flatten() {
                if let Some(s) = v.as_str() {
                    headers.push((k.clone(), s.to_owned()));
                }
            }
        }
    }
    if let Some(Value::Array(cookies)) = obj.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            headers.push(("set-cookie".into(), c.to_owned()));
        }
    }
    let b64 = obj
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if b64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("body is not base64: {e}"))?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// One SNS notification as it arrives in an SQS queue subscribed to the topic (or
/// as it is published), for the SNS event record.
#[derive(Debug, Clone)]
pub struct SnsNotification {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    /// name -> {"Type", "Value"}
    pub message_attributes: Map<String, Value>,
}

/// The event Lambda receives from an SNS subscription (one record).
pub fn sns_event(n: &SnsNotification, subscription_arn: &str) -> Value {
    json!({
        "Records": [{
            "EventVersion": "1.0",
            "EventSubscriptionArn": subscription_arn,
            "EventSource": "aws:sns",
            "Sns": {
                "SignatureVersion": "1",
                "Timestamp": n.timestamp,
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-local.pem",
                "MessageId": n.message_id,
                "Message": n.message,
                "MessageAttributes": Value::Object(n.message_attributes.clone()),
                "Type": "Notification",
                "UnsubscribeUrl": format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"),
                "TopicArn": n.topic_arn,
                "Subject": n.subject,
            }
        }]
    })
}

/// Read an SNS notification from the JSON envelope SNS puts in an SQS message.
pub fn sns_from_envelope(body: &str) -> Result<SnsNotification, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(SnsNotification {
        message_id: s("MessageId").ok_or("no MessageId")?,
        topic_arn: s("TopicArn").ok_or("no TopicArn")?,
        subject: s("Subject"),
        message: s("Message").ok_or("no Message")?,
        timestamp: s("Timestamp").unwrap_or_else(|| Utc::now().to_rfc3339()),
        message_attributes: v
            .get("MessageAttributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};

    fn ctx() -> WsContext {
        WsContext {
            api_id: api_id(),
            stage: "prod".into(),
            domain_name: "127.0.0.1:1".into(),
            connection_id: connection_id(),
            connected_at: now_ms(),
            source_ip: "127.0.0.1".into(),
            user_agent: Some("ua".into()),
        }
    }

    #[test]
    fn ids_look_like_api_gateway_ids() {
        let id = connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert_eq!(uuid().len(), 36);
        assert_eq!(percent_decode("a%3Db%2"), "a=b%2");
        assert_eq!(percent_decode("%3D"), "=");
    }

    #[test]
    fn websocket_events_deserialize_as_the_typed_event() {
        let c = ctx();
        let ev = ws_connect(
            &c,
            &[("user-agent".into(), "ua".into())],
            Some("token=a%20b&x=1&x=2"),
        );
        let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.request_context.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(typed.query_string_parameters.first("token"), Some("a b"));
        assert_eq!(
            typed.request_context.connection_id.as_deref(),
            Some(c.connection_id.as_str())
        );
        let ev = ws_message(&c, "sendMessage", b"{\"action\":\"x\"}", false);
        let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(ev).unwrap();
        assert!(typed.request_context.message_id.is_some());
        assert_eq!(typed.body.as_deref(), Some("{\"action\":\"x\"}"));
        let ev = ws_disconnect(&c, 1000, "bye");
        let typed: ApiGatewayWebsocketProxyRequest = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.request_context.disconnect_status_code, Some(1000));
    }

    #[test]
    fn http_event_deserializes_and_response_maps() {
        let req = HttpRequest {
            api_id: "abc".into(),
            stage: "prod".into(),
            domain_name: "127.0.0.1:1".into(),
            route_key: "GET /chats/{chatId}".into(),
            method: "GET".into(),
            raw_path: "/prod/chats/c1".into(),
            raw_query: "a=1&a=2".into(),
            headers: vec![
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into()),
                ("cookie".into(), "s=1; t=2".into()),
            ],
            path_parameters: vec![("chatId".into(), "c1".into())],
            source_ip: "127.0.0.1".into(),
            body: vec![0xff, 0x00],
        };
        let ev = http_v2(&req);
        assert_eq!(ev["headers"]["x-a"], "1,2");
        assert_eq!(ev["queryStringParameters"]["a"], "1,2");
        assert_eq!(ev["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(ev["isBase64Encoded"], true);
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.route_key.as_deref(), Some("GET /chats/{chatId}"));
        let r = http_response(&json!({"statusCode": 201, "headers": {"X-Y": "z"},
            "cookies": ["a=1", "b=2"], "body": "aGk=", "isBase64Encoded": true}))
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hi");
        assert_eq!(
            r.headers.iter().filter(|(k, _)| k == "set-cookie").count(),
            2
        );
        let r = http_response(&json!({"ok": true})).unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn sns_event_deserializes() {
        let n = sns_from_envelope(
            r#"{"Type":"Notification","MessageId":"m1","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"hi","Timestamp":"2024-01-01T00:00:00.000Z","MessageAttributes":{"k":{"Type":"String","Value":"v"}}}"#,
        )
        .unwrap();
        let ev = sns_event(&n, "arn:sub");
        let typed: aws_lambda_events::sns::SnsEvent = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.records[0].sns.message, "hi");
        assert_eq!(typed.records[0].sns.message_attributes["k"].value, "v");
    }
}
