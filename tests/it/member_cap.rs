//! The 100-member cap under concurrent joins (issue 21), end to end: ten admins' REST
//! adds of two users each race into a group of 90. Exactly five succeed, the others
//! get `409 group_full`, and the group ends with exactly 100 members (the cap is a
//! condition inside each add's transaction, not a check before it).

use chat_tests::api::Api;
use chat_tests::seed::Seeder;
use chat_tests::TestStack;
use serde_json::json;

#[tokio::test]
async fn the_member_cap_holds_under_concurrent_adds() {
    let stack = TestStack::start().await;
    let seed = Seeder::new(&stack);
    let api = Api::new(&stack);
    let names: Vec<String> = (0..110).map(|i| format!("m{i}")).collect();
    let users = futures::future::join_all(names.iter().map(|n| seed.user(n))).await;
    let (owner, rest) = users.split_first().unwrap();
    let (members, joiners) = rest.split_at(89);
    let group = seed.group(owner, &members.iter().collect::<Vec<_>>()).await;
    let adds = futures::future::join_all(joiners.chunks(2).map(|pair| {
        let ids: Vec<String> = pair.iter().map(|u| u.id.to_string()).collect();
        let (api, path, token) = (&api, format!("/chats/{group}/members"), &owner.token);
        async move {
            api.send_json(Some(token), "POST", &path, Some(json!({"memberIds": ids})))
                .await
        }
    }))
    .await;
    assert_eq!(adds.len(), 10);
    let ok = adds.iter().filter(|r| r.status == 200).count();
    let full = adds
        .iter()
        .filter(|r| r.status == 409 && r.code() == "group_full")
        .count();
    assert_eq!((ok, full), (5, 5), "{adds:?}");
    let detail = api
        .send_json(Some(&owner.token), "GET", &format!("/chats/{group}"), None)
        .await
        .expect(200);
    assert_eq!(detail["memberCount"], 100);
    assert_eq!(detail["members"].as_array().unwrap().len(), 100);
}
