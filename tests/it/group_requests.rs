//! Idempotent group creation (issue 21): a client request id makes a retried
//! `POST /chats` return the first group. Real retries: after a try that failed half-way
//! (the first message's transaction refused by an injected DynamoDB error, after the
//! members and the chat item were written), after a try that succeeded, and three
//! concurrent tries of one request.

use chat_local::proxy::{ProxyFault, ProxyFaultAction};
use chat_tests::api::{Api, ApiUser};
use chat_tests::{TestStack, TestStackOptions};
use serde_json::{json, Value};

async fn create(api: &Api, by: &ApiUser, members: &[&ApiUser], request: &str) -> (u16, Value) {
    let ids: Vec<String> = members.iter().map(|u| u.id.to_string()).collect();
    let r = api
        .send_json(
            Some(&by.access_token),
            "POST",
            "/chats",
            Some(json!({"kind": "group", "name": "Trip", "memberIds": ids, "clientRequestId": request})),
        )
        .await;
    (r.status, r.body)
}

/// The groups in `user`'s chat list.
async fn groups(api: &Api, user: &ApiUser) -> Vec<String> {
    let list = api
        .send_json(Some(&user.access_token), "GET", "/chats?limit=100", None)
        .await
        .expect(200);
    list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "group")
        .map(|c| c["chatId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_retried_group_create_makes_one_group() {
    chat_tests::needs_backend!();
    let stack = TestStack::start_with(TestStackOptions::default().proxy_dynamodb()).await;
    let api = Api::new(&stack);
    let (alice, bob) = tokio::join!(api.register("alice"), api.register("bob"));

    // The first try dies after writing the members and the chat item: its first
    // message's transaction is refused (once; not a retryable error).
    stack.dynamodb_proxy().add_fault(
        ProxyFault::new(ProxyFaultAction::Error {
            status: 400,
            code: "ValidationException".into(),
        })
        .for_operation("TransactWriteItems")
        .times(1),
    );
    // (`request`: a 500 is not in the contract.)
    let (status, body) = api
        .call(
            &alice,
            "POST",
            "/chats",
            Some(json!({"kind": "group", "name": "Trip", "memberIds": [bob.id], "clientRequestId": "req-1"})),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(groups(&api, &alice).await.is_empty());

    // The retry finishes that group; later retries return it and write nothing.
    let (status, first) = create(&api, &alice, &[&bob], "req-1").await;
    assert_eq!(status, 201, "{first}");
    let id = first["chatId"].as_str().unwrap().to_owned();
    assert_eq!(first["lastPosition"], 1, "{first}");
    let (status, again) = create(&api, &alice, &[&bob], "req-1").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["chatId"], id.as_str());
    assert_eq!(again["lastPosition"], 1, "no second chatCreated message");
    assert_eq!(groups(&api, &alice).await, vec![id.clone()]);
    assert_eq!(groups(&api, &bob).await, vec![id.clone()]);

    // Three concurrent tries of one request: one group, one 201.
    let members = [&bob];
    let tries =
        futures::future::join_all((0..3).map(|_| create(&api, &alice, &members, "req-2"))).await;
    let ids: std::collections::BTreeSet<&str> = tries
        .iter()
        .map(|(_, b)| b["chatId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{tries:?}");
    assert_eq!(
        tries.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{tries:?}"
    );
    assert!(tries.iter().all(|(s, _)| *s == 200 || *s == 201));
    assert_eq!(groups(&api, &bob).await.len(), 2);

    // Another request id is another group; a malformed one is refused.
    let (status, _) = create(&api, &alice, &[&bob], "req-3").await;
    assert_eq!(status, 201);
    let (status, body) = create(&api, &alice, &[&bob], "not a valid id").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("clientRequestId"))
    );
    assert_eq!(groups(&api, &alice).await.len(), 3);
}

#[tokio::test]
async fn group_creation_is_capped_per_day() {
    let stack = TestStack::start().await;
    let api = Api::new(&stack);
    let (alice, bob) = tokio::join!(api.register("alice"), api.register("bob"));
    let cap = chat_core::store::MAX_GROUPS_PER_DAY as usize;
    for i in 0..cap {
        let (status, body) = create(&api, &alice, &[&bob], &format!("day-{i}")).await;
        assert_eq!(status, 201, "group {i}: {body}");
    }
    let (status, body) = create(&api, &alice, &[&bob], "one-too-many").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited"))
    );
    // A retry of a request that made a group still answers it; others are refused too.
    let (status, _) = create(&api, &alice, &[&bob], "day-0").await;
    assert_eq!(status, 200);
    let r = api
        .send_json(
            Some(&alice.access_token),
            "POST",
            "/chats",
            Some(json!({"kind": "group", "name": "Trip", "memberIds": [bob.id]})),
        )
        .await;
    r.expect_error(429, "rate_limited");
    assert_eq!(groups(&api, &bob).await.len(), cap);
    // Someone else is not affected.
    let (status, _) = create(&api, &bob, &[&alice], "bob-1").await;
    assert_eq!(status, 201);
}
