//! The HTTP API: every route of the template under `/{stage}`, matched as API Gateway
//! does (static segments before `{param}` before greedy `{proxy+}`; `ANY`; `$default`),
//! turned into a payload format 2.0 event, and the function's answer mapped back
//! (status, headers, cookies, base64 bodies). CORS follows the template's
//! `CorsConfiguration`: the gateway answers preflight `OPTIONS` itself and sets the
//! CORS headers on every response for an allowed origin. Unknown routes get 404
//! `{"message":"Not Found"}`; bodies above 10 MB get 413.

use super::events::{self, HttpRequest};
use super::Shared;
use crate::template::HttpRoute;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param(String),
    Greedy(String),
}

/// One route, ready to match.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub route: HttpRoute,
    segments: Vec<Segment>,
}

impl CompiledRoute {
    pub fn new(route: HttpRoute) -> Self {
        let segments = route
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) => match p.strip_suffix('+') {
                        Some(g) => Segment::Greedy(g.to_owned()),
                        None => Segment::Param(p.to_owned()),
                    },
                    None => Segment::Static(s.to_owned()),
                },
            )
            .collect();
        CompiledRoute { route, segments }
    }

    /// `METHOD /path` as in the event's `routeKey`.
    pub fn key(&self) -> String {
        if self.route.path == "$default" {
            "$default".into()
        } else {
            format!("{} {}", self.route.method, self.route.path)
        }
    }

    fn matches(&self, method: &str, parts: &[&str]) -> Option<Vec<(String, String)>> {
        if self.route.method != "ANY" && self.route.method != method {
            return None;
        }
        let mut params = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Greedy(name) => {
                    if i >= parts.len() {
                        return None;
                    }
                    params.push((name.clone(), parts[i..].join("/")));
                    return Some(params);
                }
                Segment::Static(s) => {
                    if parts.get(i) != Some(&s.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let v = parts.get(i)?;
                    params.push((name.clone(), events::percent_decode(v)));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// Higher is more specific.
    fn rank(&self) -> (usize, usize, bool) {
        let statics = self
            .segments
            .iter()
            .take_while(|s| matches!(s, Segment::Static(_)))
            .count();
        let greedy = self
            .segments
            .iter()
            .any(|s| matches!(s, Segment::Greedy(_)));
        (
            statics,
            self.segments.len(),
            self.route.method != "ANY" && !greedy,
        )
    }
}

/// The API's routes.
#[derive(Debug, Clone, Default)]
pub struct HttpRoutes {
    pub routes: Vec<CompiledRoute>,
}

impl HttpRoutes {
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        HttpRoutes {
            routes: routes.into_iter().map(CompiledRoute::new).collect(),
        }
    }

    /// The best route for a request (path without the stage prefix).
    pub fn find(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&CompiledRoute, Vec<(String, String)>)> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(&CompiledRoute, Vec<(String, String)>)> = None;
        for r in self.routes.iter().filter(|r| r.route.path != "$default") {
            if let Some(params) = r.matches(method, &parts) {
                if best.as_ref().is_none_or(|(b, _)| r.rank() > b.rank()) {
                    best = Some((r, params));
                }
            }
        }
        best.or_else(|| {
            self.routes
                .iter()
                .find(|r| r.route.path == "$default")
                .map(|r| (r, Vec::new()))
        })
    }
}

/// The API's CORS configuration.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

impl Cors {
    fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some(if self.allow_credentials {
                origin.to_owned()
            } else {
                "*".to_owned()
            });
        }
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_owned())
    }

    fn apply(&self, origin: &str, headers: &mut axum::http::HeaderMap, preflight: bool) {
        let Some(allowed) = self.allowed_origin(origin) else {
            return;
        };
        // API Gateway's CORS headers replace any the function set.
        for h in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-expose-headers",
        ] {
            headers.remove(h);
        }
        let mut set = |k: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(HeaderName::from_static(k), v);
            }
        };
        set("access-control-allow-origin", allowed);
        if self.allow_credentials {
            set("access-control-allow-credentials", "true".into());
        }
        if preflight {
            set("access-control-allow-methods", self.allow_methods.join(","));
            set("access-control-allow-headers", self.allow_headers.join(","));
            if let Some(age) = self.max_age {
                set("access-control-max-age", age.to_string());
            }
        } else if !self.expose_headers.is_empty() {
            set(
                "access-control-expose-headers",
                self.expose_headers.join(","),
            );
        }
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

/// Every request on the HTTP port.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let origin = parts
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = route(&shared, peer, parts, body).await;
    if let (Some(cors), Some(origin)) = (&shared.cors, &origin) {
        let preflight = response.1;
        cors.apply(origin, response.0.headers_mut(), preflight);
    }
    response.0
}

async fn route(
    shared: &Shared,
    peer: SocketAddr,
    parts: axum::http::request::Parts,
    body: Body,
) -> (Response, bool) {
    let raw_path = parts.uri.path().to_owned();
    let stage_prefix = format!("/{}", shared.stage);
    let path = match raw_path.strip_prefix(&stage_prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_owned(),
        _ => return (message(StatusCode::NOT_FOUND, "Not Found"), false),
    };
    let method = parts.method.as_str().to_owned();
    if parts.method == Method::OPTIONS
        && shared.cors.is_some()
        && parts.headers.contains_key("access-control-request-method")
    {
        return (StatusCode::NO_CONTENT.into_response(), true);
    }
    let Some((route, params)) = shared.http.find(&method, &path) else {
        return (message(StatusCode::NOT_FOUND, "Not Found"), false);
    };
    let body: Bytes = match axum::body::to_bytes(body, shared.limits.http_payload_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return (
                message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
                false,
            )
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let key = route.key();
    let req = HttpRequest {
        api_id: shared.http_api_id.clone(),
        stage: shared.stage.clone(),
        domain_name: shared.http_domain.clone(),
        route_key: key.clone(),
        method,
        raw_path,
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        path_parameters: params,
        source_ip: peer.ip().to_string(),
        body: body.to_vec(),
    };
    let event = events::http_v2(&req);
    let result = shared
        .invoker
        .invoke(&route.route.function, &key, event)
        .await;
    let out = match result {
        Err(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Ok(v) => match events::http_response(&v) {
            Err(e) => {
                tracing::warn!(route = %key, "malformed function response: {e}");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            Ok(r) => {
                let mut resp = Response::new(Body::from(r.body));
                *resp.status_mut() =
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                for (k, v) in r.headers {
                    if let (Ok(k), Ok(v)) = (
                        HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(&v),
                    ) {
                        resp.headers_mut().append(k, v);
                    }
                }
                resp
            }
        },
    };
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: &str, p: &str) -> HttpRoute {
        HttpRoute {
            method: m.into(),
            path: p.into(),
            function: "F".into(),
        }
    }

    #[test]
    fn static_beats_param_beats_greedy() {
        let routes = HttpRoutes::new(vec![
            r("PATCH", "/chats/{chatId}/members/me"),
            r("DELETE", "/chats/{chatId}/members/{userId}"),
            r("PATCH", "/chats/{chatId}/members/{userId}"),
            r("ANY", "/files/{proxy+}"),
            r("GET", "/chats/{chatId}"),
        ]);
        let (m, p) = routes.find("PATCH", "/chats/c1/members/me").unwrap();
        assert_eq!(m.key(), "PATCH /chats/{chatId}/members/me");
        assert_eq!(p, vec![("chatId".to_owned(), "c1".to_owned())]);
        let (m, p) = routes.find("PATCH", "/chats/c1/members/u2").unwrap();
        assert_eq!(m.key(), "PATCH /chats/{chatId}/members/{userId}");
        assert_eq!(p[1], ("userId".to_owned(), "u2".to_owned()));
        let (m, p) = routes.find("GET", "/files/a/b/c").unwrap();
        assert_eq!(m.key(), "ANY /files/{proxy+}");
        assert_eq!(p, vec![("proxy".to_owned(), "a/b/c".to_owned())]);
        assert!(routes.find("GET", "/chats").is_none());
        assert!(routes.find("POST", "/chats/c1").is_none());
    }
}
