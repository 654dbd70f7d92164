//! `docs/openapi.yaml` against the template and against itself: every HTTP route the
//! SAM template declares is documented (and nothing else is), every `$ref` resolves,
//! and the response checker the end-to-end tests use really rejects what does not
//! match (so a passing end-to-end run means something).

use chat_local::template::Template;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn every_template_route_is_documented_and_nothing_else() {
    let template = Template::load(&Template::default_path()).expect("template");
    let routes: BTreeSet<(String, String)> = template
        .http_routes()
        .expect("routes")
        .into_iter()
        .map(|r| (r.method.to_uppercase(), r.path))
        .collect();
    assert!(routes.len() > 10, "the template declares the HTTP API");
    let documented: BTreeSet<(String, String)> = chat_tests::openapi::doc()
        .operations()
        .into_iter()
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes not in docs/openapi.yaml: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        extra.is_empty(),
        "documented but not in the template: {extra:?}"
    );
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let api = chat_tests::openapi::doc();
    let doc = api.doc();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Every operation documents its error answers with the shared Error schema.
    for (method, path) in api.operations() {
        let op = &doc["paths"][&path][method.to_lowercase()];
        assert!(
            op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|s| s.starts_with('4')),
            "{method} {path} documents no 4xx"
        );
        // Every route that reads a body caps it (chat_core::http): the 413 is part of
        // the contract (found missing on seven routes by tests/it/limits.rs).
        if op.get("requestBody").is_some() {
            assert!(
                op["responses"].get("413").is_some(),
                "{method} {path} takes a body but documents no 413"
            );
        }
    }
}

#[test]
fn the_checker_rejects_what_does_not_match() {
    let api = chat_tests::openapi::doc();
    let err = json!({"error": {"code": "not_found", "message": "chat not found"}});
    api.check_response("GET", "/chats/grp_01J00000000000000000000000", 404, &err)
        .expect("a documented error passes");
    for bad in [
        json!({"error": {"code": "not_found"}}),
        json!({"error": {"code": 4, "message": "x"}}),
        json!([]),
    ] {
        assert!(
            api.check_response("GET", "/chats/grp_01J00000000000000000000000", 404, &bad)
                .is_err(),
            "{bad} should fail"
        );
    }
    // An undocumented status fails too.
    assert!(api.check_response("GET", "/chats", 418, &err).is_err());
    // Literal segments win over parameters.
    assert_eq!(
        api.template_for("PATCH", "/chats/dm_X/members/me")
            .as_deref(),
        Some("/chats/{chatId}/members/me")
    );
    // Closed objects refuse unknown fields.
    let mut page = json!({"messages": [], "hasMore": false});
    api.check_schema("MessagePage", &page).expect("valid page");
    page["extra"] = json!(1);
    assert!(api.check_schema("MessagePage", &page).is_err());
    let message = json!({
        "chatId": "grp_01J00000000000000000000000",
        "messageId": "msg_01J00000000000000000000000",
        "position": 1,
        "kind": "text",
        "senderId": "usr_01J00000000000000000000000",
        "text": "hi",
        "sentAt": "2025-01-01T00:00:00.000Z"
    });
    api.check_schema("Message", &message)
        .expect("valid message");
    let mut wrong = message.clone();
    wrong["position"] = json!(0);
    assert!(api.check_schema("Message", &wrong).is_err());
    wrong = message.clone();
    wrong["sentAt"] = json!("yesterday");
    assert!(api.check_schema("Message", &wrong).is_err());
    wrong = message;
    wrong["senderId"] = json!("bob");
    assert!(api.check_schema("Message", &wrong).is_err());
}
