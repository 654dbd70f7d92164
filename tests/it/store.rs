//! The store against DynamoDB Local: every access pattern of `shared/src/store/`,
//! conditional writes, pagination in both directions, TTL attributes, and the
//! ordering/idempotency guarantees under concurrent senders. Each test provisions its
//! own tables (`chat_tests::store_for_test`). Run with `./dev test`.

use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::ids::{ChatId, ClientMessageId, ConnectionId, DeviceId, SessionId, UserId};
use chat_core::input::{
    AvatarUrl, DisplayName, GroupName, MessageText, StatusText, UserName, UserNamePrefix,
};
use chat_core::model::{
    now_millis, ChatKind, Connection, Device, MessageKind, Millis, PushPlatform, Role, Session,
    SystemEvent,
};
use chat_core::store::{
    Conflict, NewGroup, ProfileUpdate, ReceiptKind, Rotation, Store, StoreError, WindowCount,
    WindowOpened,
};
use chat_tests::store_for_test;
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ helpers

async fn user(store: &Store, name: &str) -> UserId {
    let id = UserId::generate();
    store
        .create_user(
            &id,
            &UserName::parse(name).unwrap(),
            &DisplayName::parse(&format!("{name} display")).unwrap(),
            "$argon2id$fake-hash",
            now_millis(),
        )
        .await
        .unwrap();
    id
}

fn cid(s: &str) -> ClientMessageId {
    ClientMessageId::parse(s).unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::parse(s).unwrap()
}

fn group_name(s: &str) -> GroupName {
    GroupName::parse(s).unwrap()
}

fn conflict(e: StoreError) -> &'static str {
    match e {
        StoreError::Conflict(c) => c.code(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn group(store: &Store, creator: &UserId, others: &[UserId]) -> ChatId {
    let (chat, _) = store
        .create_group(
            &NewGroup {
                creator: creator.clone(),
                name: group_name("team"),
                members: others.to_vec(),
            },
            now_millis(),
        )
        .await
        .unwrap();
    chat.chat_id
}

/// A raw item, to check attributes the domain types do not expose (TTL).
async fn raw_item(
    store: &Store,
    table: &str,
    key: &[(&str, AttributeValue)],
) -> std::collections::HashMap<String, AttributeValue> {
    let mut req = store
        .client()
        .get_item()
        .table_name(table)
        .consistent_read(true);
    for (k, v) in key {
        req = req.key(*k, v.clone());
    }
    req.send()
        .await
        .unwrap()
        .item()
        .cloned()
        .expect("item exists")
}

fn num(item: &std::collections::HashMap<String, AttributeValue>, attr: &str) -> i64 {
    item.get(attr)
        .and_then(|v| v.as_n().ok())
        .unwrap_or_else(|| panic!("{attr} missing or not a number"))
        .parse()
        .unwrap()
}

// ------------------------------------------------------------------ users

#[tokio::test]
async fn create_user_claims_the_name_in_any_case() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let alice = user(&store, "Alice.W").await;

    let other = UserId::generate();
    let err = store
        .create_user(
            &other,
            &UserName::parse("alice.w").unwrap(),
            &DisplayName::parse("Impostor").unwrap(),
            "h",
            now_millis(),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict(err), "user_name_taken");
    // All or nothing: the losing registration left no account behind.
    assert!(store.get_account(&other).await.unwrap().is_none());
    assert!(store
        .presence_of(std::slice::from_ref(&other), now_millis())
        .await
        .unwrap()[&other]
        .last_seen_at
        .is_none());

    let account = store.get_account(&alice).await.unwrap().unwrap();
    assert_eq!(account.user_name, "Alice.W");
    assert_eq!(account.profile.display_name, "Alice.W display");
    assert_eq!(account.token_version, 0);
    assert_eq!(account.failed_logins, 0);
    assert!(!account.deleted);

    assert_eq!(
        store.find_user_by_name("ALICE.w").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.find_user_by_name("alice.x").await.unwrap(), None);
    assert!(store
        .get_account(&UserId::generate())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn search_users_by_prefix_pages_through_every_match() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let name = format!("Bob{i}");
        user(&store, &name).await;
        expected.push(name);
    }
    user(&store, "bobby").await;
    expected.push("bobby".into());
    user(&store, "boa").await; // same bucket, outside the "bob" prefix
    user(&store, "carl").await;

    let prefix = UserNamePrefix::parse("bob").unwrap();
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = store
            .search_users(&prefix, 3, after.as_deref())
            .await
            .unwrap();
        assert!(page.len() <= 3);
        found.extend(page.into_iter().map(|p| p.user_name));
        pages += 1;
        assert!(pages < 10, "paging does not end");
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(found, expected, "every match once, in name order");
    assert!(pages >= 3);

    let (carl, next) = store
        .search_users(&UserNamePrefix::parse("CA").unwrap(), 10, None)
        .await
        .unwrap();
    assert_eq!(
        carl.iter()
            .map(|p| p.user_name.as_str())
            .collect::<Vec<_>>(),
        ["carl"]
    );
    assert!(next.is_none());
    let (none, _) = store
        .search_users(&UserNamePrefix::parse("zz").unwrap(), 10, None)
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn profiles_in_batches_and_profile_updates() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let mut ids = Vec::new();
    for i in 0..105 {
        ids.push(user(&store, &format!("user{i:03}")).await);
    }
    let unknown = UserId::generate();
    let mut ask = ids.clone();
    ask.push(unknown.clone());
    ask.push(ids[0].clone()); // duplicates are fine
    let profiles = store.get_profiles(&ask).await.unwrap();
    assert_eq!(profiles.len(), 105, "BatchGet over 100 keys finds all");
    assert!(!profiles.contains_key(&unknown));
    assert_eq!(profiles[&ids[42]].user_name, "user042");

    let me = &ids[0];
    let changed = store
        .update_profile(
            me,
            &ProfileUpdate {
                display_name: Some(DisplayName::parse("New Name").unwrap()),
                status_text: Some(StatusText::parse("busy").unwrap()),
                avatar_url: Some(Some(AvatarUrl::parse("https://example.com/a.png").unwrap())),
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.display_name, "New Name");
    assert_eq!(changed.status_text, "busy");
    assert_eq!(
        changed.avatar_url.as_deref(),
        Some("https://example.com/a.png")
    );
    assert_eq!(changed.user_name, "user000");

    let cleared = store
        .update_profile(
            me,
            &ProfileUpdate {
                avatar_url: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.avatar_url, None);
    assert_eq!(cleared.display_name, "New Name", "untouched fields stay");
    let same = store
        .update_profile(me, &ProfileUpdate::default())
        .await
        .unwrap();
    assert_eq!(same, cleared);
    let stored = store.get_account(me).await.unwrap().unwrap().profile;
    assert_eq!(stored, cleared);

    let err = store
        .update_profile(
            &unknown,
            &ProfileUpdate {
                status_text: Some(StatusText::parse("x").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("user")), "{err:?}");
    assert!(
        store.get_account(&unknown).await.unwrap().is_none(),
        "no item created"
    );
}

#[tokio::test]
async fn token_version_bumps_and_failed_logins_lock() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = user(&store, "carol").await;
    assert_eq!(store.bump_token_version(&u).await.unwrap(), 1);
    assert_eq!(store.bump_token_version(&u).await.unwrap(), 2);
    assert_eq!(
        store.get_account(&u).await.unwrap().unwrap().token_version,
        2
    );
    assert!(matches!(
        store.bump_token_version(&UserId::generate()).await,
        Err(StoreError::NotFound("user"))
    ));

    let now = now_millis();
    assert_eq!(
        store.record_failed_login(&u, now, 3, 60_000).await.unwrap(),
        None
    );
    assert_eq!(
        store.record_failed_login(&u, now, 3, 60_000).await.unwrap(),
        None
    );
    let acc = store.get_account(&u).await.unwrap().unwrap();
    assert_eq!(acc.failed_logins, 2);
    assert_eq!(acc.locked_until, None);
    assert_eq!(
        store.record_failed_login(&u, now, 3, 60_000).await.unwrap(),
        Some(now + 60_000)
    );
    let acc = store.get_account(&u).await.unwrap().unwrap();
    assert_eq!(acc.locked_until, Some(now + 60_000));
    assert_eq!(acc.failed_logins, 0, "the count starts again after a lock");

    store.reset_failed_logins(&u).await.unwrap();
    let acc = store.get_account(&u).await.unwrap().unwrap();
    assert_eq!(acc.locked_until, None);
    assert_eq!(acc.failed_logins, 0);
}

// ------------------------------------------------------------------ sessions

fn session(user: &UserId, hash: &str, created_at: Millis, expires_at: Millis) -> Session {
    Session {
        session_id: SessionId::generate(),
        user_id: user.clone(),
        current_hash: hash.into(),
        generation: 0,
        token_version: 0,
        created_at,
        last_used_at: created_at,
        expires_at,
        revoked: false,
        user_agent: "test".into(),
    }
}

#[tokio::test]
async fn sessions_rotate_and_reuse_revokes_the_family() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = UserId::generate();
    let now = now_millis();
    let s1 = session(&u, "h0", now - 10, now + 3_600_000);
    store.create_session(&s1).await.unwrap();
    assert!(matches!(
        store.create_session(&s1).await,
        Err(StoreError::Failed { .. })
    ));

    let id = &s1.session_id;
    assert_eq!(
        store.rotate_session(id, "h0", "h1", now).await.unwrap(),
        Rotation::Rotated
    );
    let got = store.get_session(id).await.unwrap().unwrap();
    assert_eq!(got.current_hash, "h1");
    assert_eq!(got.generation, 1);
    assert_eq!(got.last_used_at, now);
    assert!(!got.revoked);

    // The old token comes back: reuse. The whole family dies, the holder of h1 too.
    assert_eq!(
        store.rotate_session(id, "h0", "h2", now).await.unwrap(),
        Rotation::ReuseDetected
    );
    assert!(store.get_session(id).await.unwrap().unwrap().revoked);
    assert_eq!(
        store.rotate_session(id, "h1", "h3", now).await.unwrap(),
        Rotation::Invalid
    );
    assert_eq!(
        store
            .rotate_session(&SessionId::generate(), "x", "y", now)
            .await
            .unwrap(),
        Rotation::Invalid
    );

    // Expired: invalid, and not treated as reuse.
    let old = session(&u, "e0", now - 20, now - 1);
    store.create_session(&old).await.unwrap();
    assert_eq!(
        store
            .rotate_session(&old.session_id, "e0", "e1", now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(
        !store
            .get_session(&old.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    // Logout: idempotent, also for unknown sessions.
    let s3 = session(&u, "k0", now, now + 3_600_000);
    store.create_session(&s3).await.unwrap();
    store.revoke_session(&s3.session_id).await.unwrap();
    store.revoke_session(&s3.session_id).await.unwrap();
    store.revoke_session(&SessionId::generate()).await.unwrap();
    assert_eq!(
        store
            .rotate_session(&s3.session_id, "k0", "k1", now)
            .await
            .unwrap(),
        Rotation::Invalid
    );

    // Listing: newest first, only this user's.
    store
        .create_session(&session(&UserId::generate(), "z", now, now + 1000))
        .await
        .unwrap();
    let listed: Vec<SessionId> = store
        .list_sessions(&u)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(
        listed,
        vec![
            s3.session_id.clone(),
            s1.session_id.clone(),
            old.session_id.clone()
        ]
    );

    // TTL attribute: expiry in epoch seconds.
    let item = raw_item(
        &store,
        &store.tables().sessions,
        &[("sessionId", AttributeValue::S(s1.session_id.to_string()))],
    )
    .await;
    assert_eq!(num(&item, "ttl"), s1.expires_at / 1000);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_have_one_winner() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let now = now_millis();
    let s = session(&UserId::generate(), "h0", now, now + 3_600_000);
    store.create_session(&s).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let id = s.session_id.clone();
            tokio::spawn(async move {
                store
                    .rotate_session(&id, "h0", &format!("n{i}"), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Rotation::Rotated).count(),
        1,
        "{outcomes:?}"
    );
    // The first loser to look finds the family live and revokes it; later losers
    // find it revoked already (Invalid). Either way every loser is refused.
    assert!(outcomes.contains(&Rotation::ReuseDetected), "{outcomes:?}");
    assert!(
        store
            .get_session(&s.session_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

// ------------------------------------------------------------------ chats

#[tokio::test]
async fn direct_chat_is_one_chat_whichever_side_asks() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let now = now_millis();
    let (c1, created1) = store.get_or_create_direct(&a, &b, now).await.unwrap();
    let (c2, created2) = store.get_or_create_direct(&b, &a, now).await.unwrap();
    assert!(created1);
    assert!(!created2);
    assert_eq!(c1.chat_id, c2.chat_id);
    assert_eq!(c1.kind, ChatKind::Direct);
    assert_eq!(c1.member_count, 2);
    assert_eq!(c1.last_position, 0);
    let members: BTreeSet<UserId> = store
        .list_members(&c1.chat_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, BTreeSet::from([a.clone(), b.clone()]));
    // Batch reads: duplicates and unknown ids are fine.
    let chats = store
        .get_chats(&[c1.chat_id.clone(), c1.chat_id.clone(), ChatId::new_group()])
        .await
        .unwrap();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[&c1.chat_id], c1);
    // An empty direct chat is listed (a group only once its first message exists).
    let page = store.list_user_chats(&b, 10, None).await.unwrap();
    assert_eq!(page.chats.len(), 1);
    assert_eq!(page.chats[0].0.chat_id, c1.chat_id);
    assert_eq!(page.chats[0].1.role, Role::Member);

    // Concurrently, from both sides: one creation, one chat.
    let c = UserId::generate();
    let d = UserId::generate();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let (x, y) = if i % 2 == 0 {
                (c.clone(), d.clone())
            } else {
                (d.clone(), c.clone())
            };
            tokio::spawn(async move { store.get_or_create_direct(&x, &y, now).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (chat, was_created) = t.await.unwrap();
        created += usize::from(was_created);
        ids.insert(chat.chat_id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    let chat_id = ids.into_iter().next().unwrap();
    assert_eq!(store.list_members(&chat_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn group_of_one_hundred_and_no_more() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let creator = UserId::generate();
    let mut others: Vec<UserId> = (0..99).map(|_| UserId::generate()).collect();
    others.push(others[0].clone()); // duplicates and the creator are ignored
    others.push(creator.clone());
    let now = now_millis();
    let (chat, first) = store
        .create_group(
            &NewGroup {
                creator: creator.clone(),
                name: group_name("Everyone"),
                members: others.clone(),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(chat.kind, ChatKind::Group);
    assert_eq!(chat.name.as_deref(), Some("Everyone"));
    assert_eq!(chat.member_count, 100);
    assert_eq!(chat.last_position, 1);
    assert_eq!(first.position, 1);
    assert_eq!(first.kind, MessageKind::System);
    match &first.system {
        Some(SystemEvent::ChatCreated { by, members, name }) => {
            assert_eq!(by, &creator);
            assert_eq!(members.len(), 99);
            assert_eq!(name.as_deref(), Some("Everyone"));
        }
        other => panic!("unexpected first message {other:?}"),
    }
    let stored = store.get_chat(&chat.chat_id, true).await.unwrap().unwrap();
    assert_eq!(stored, chat);
    let members = store.list_members(&chat.chat_id).await.unwrap();
    assert_eq!(members.len(), 100);
    let me = members.iter().find(|m| m.user_id == creator).unwrap();
    assert_eq!(me.role, Role::Admin);
    assert_eq!(me.read_position, 1);
    assert_eq!(members.iter().filter(|m| m.role == Role::Admin).count(), 1);
    // Visible in a member's chat list.
    let page = store.list_user_chats(&others[5], 10, None).await.unwrap();
    assert_eq!(page.chats[0].0.chat_id, chat.chat_id);

    let too_many: Vec<UserId> = (0..100).map(|_| UserId::generate()).collect();
    let err = store
        .create_group(
            &NewGroup {
                creator: creator.clone(),
                name: group_name("Too big"),
                members: too_many,
            },
            now,
        )
        .await
        .unwrap_err();
    assert_eq!(conflict(err), "group_full");
}

#[tokio::test]
async fn rename_is_for_admins_only() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let admin = UserId::generate();
    let member = UserId::generate();
    let outsider = UserId::generate();
    let chat_id = group(&store, &admin, std::slice::from_ref(&member)).await;

    let change = store
        .rename_group(&chat_id, &admin, &group_name("Renamed"), now_millis())
        .await
        .unwrap();
    assert_eq!(change.chat.name.as_deref(), Some("Renamed"));
    assert_eq!(change.message.position, 2);
    assert!(matches!(
        change.message.system,
        Some(SystemEvent::Renamed { ref name, .. }) if name == "Renamed"
    ));

    let err = store
        .rename_group(&chat_id, &member, &group_name("Mine"), now_millis())
        .await
        .unwrap_err();
    assert_eq!(conflict(err), "not_admin");
    let err = store
        .rename_group(&chat_id, &outsider, &group_name("Mine"), now_millis())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("chat")), "{err:?}");
    // Refusals wrote nothing.
    let chat = store.get_chat(&chat_id, true).await.unwrap().unwrap();
    assert_eq!(chat.name.as_deref(), Some("Renamed"));
    assert_eq!(chat.last_position, 2);

    let (direct, _) = store
        .get_or_create_direct(&admin, &member, now_millis())
        .await
        .unwrap();
    let err = store
        .rename_group(&direct.chat_id, &admin, &group_name("x"), now_millis())
        .await
        .unwrap_err();
    assert_eq!(conflict(err), "not_a_group");
    let err = store
        .rename_group(&ChatId::new_group(), &admin, &group_name("x"), now_millis())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("chat")));
}

#[tokio::test]
async fn add_members_holds_the_cap_under_ten_concurrent_adds() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let admin = UserId::generate();
    let member = UserId::generate();
    let mut others: Vec<UserId> = (0..88).map(|_| UserId::generate()).collect();
    others.push(member.clone());
    let chat_id = group(&store, &admin, &others).await; // 90 members

    assert_eq!(
        conflict(
            store
                .add_members(&chat_id, &admin, &[], now_millis())
                .await
                .unwrap_err()
        ),
        "no_members"
    );
    assert_eq!(
        conflict(
            store
                .add_members(
                    &chat_id,
                    &admin,
                    std::slice::from_ref(&member),
                    now_millis()
                )
                .await
                .unwrap_err()
        ),
        "already_member"
    );
    assert_eq!(
        conflict(
            store
                .add_members(&chat_id, &member, &[UserId::generate()], now_millis())
                .await
                .unwrap_err()
        ),
        "not_admin"
    );
    assert!(matches!(
        store
            .add_members(
                &chat_id,
                &UserId::generate(),
                &[UserId::generate()],
                now_millis()
            )
            .await
            .unwrap_err(),
        StoreError::NotFound("chat")
    ));
    assert_eq!(
        store
            .get_chat(&chat_id, true)
            .await
            .unwrap()
            .unwrap()
            .last_position,
        1,
        "refused adds wrote nothing"
    );

    // Ten admins' requests at once, two new users each: ten free places, so exactly
    // five succeed and five are refused as full.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let chat_id = chat_id.clone();
            let admin = admin.clone();
            let new = vec![UserId::generate(), UserId::generate()];
            tokio::spawn(async move {
                (
                    new.clone(),
                    store
                        .add_members(&chat_id, &admin, &new, now_millis())
                        .await,
                )
            })
        })
        .collect();
    let mut added = Vec::new();
    let mut full = 0;
    for t in tasks {
        let (new, res) = t.await.unwrap();
        match res {
            Ok(change) => {
                assert!(matches!(
                    change.message.system,
                    Some(SystemEvent::MembersAdded { ref members, .. }) if members.len() == 2
                ));
                added.extend(new);
            }
            Err(StoreError::Conflict(Conflict::GroupFull)) => full += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(added.len(), 10);
    assert_eq!(full, 5);
    let chat = store.get_chat(&chat_id, true).await.unwrap().unwrap();
    assert_eq!(chat.member_count, 100);
    assert_eq!(chat.last_position, 1 + 5);
    let members: HashSet<UserId> = store
        .list_members(&chat_id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members.len(), 100);
    assert!(added.iter().all(|u| members.contains(u)));
    let history = store.messages_after(&chat_id, 0, 100).await.unwrap();
    let positions: Vec<u64> = history.messages.iter().map(|m| m.position).collect();
    assert_eq!(positions, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn remove_leave_and_last_admin_promotion() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let admin = UserId::generate();
    let b = UserId::generate();
    let c = UserId::generate();
    let d = UserId::generate();
    let chat_id = group(&store, &admin, &[b.clone(), c.clone(), d.clone()]).await;

    // A member may not remove others; outsiders learn nothing.
    assert_eq!(
        conflict(
            store
                .remove_member(&chat_id, &b, &c, now_millis())
                .await
                .unwrap_err()
        ),
        "not_admin"
    );
    assert!(matches!(
        store
            .remove_member(&chat_id, &UserId::generate(), &c, now_millis())
            .await
            .unwrap_err(),
        StoreError::NotFound("chat")
    ));
    assert!(matches!(
        store
            .remove_member(&chat_id, &admin, &UserId::generate(), now_millis())
            .await
            .unwrap_err(),
        StoreError::NotFound("member")
    ));

    let removed = store
        .remove_member(&chat_id, &admin, &d, now_millis())
        .await
        .unwrap();
    assert_eq!(removed.chat.member_count, 3);
    assert!(matches!(
        removed.message.system,
        Some(SystemEvent::MemberRemoved { ref member, .. }) if *member == d
    ));
    assert!(store.get_membership(&chat_id, &d).await.unwrap().is_none());
    assert!(matches!(
        store
            .append_text(
                &chat_id,
                &d,
                &cid("after-removal"),
                &text("hi"),
                now_millis()
            )
            .await,
        Err(StoreError::NotMember)
    ));

    // A member leaves: no promotion needed.
    let left = store
        .remove_member(&chat_id, &c, &c, now_millis())
        .await
        .unwrap();
    assert_eq!(left.promoted, None);
    assert_eq!(left.chat.member_count, 2);

    // The last admin leaves: the remaining member becomes admin in the same step.
    let left = store
        .remove_member(&chat_id, &admin, &admin, now_millis())
        .await
        .unwrap();
    assert_eq!(left.promoted.as_ref(), Some(&b));
    assert!(matches!(
        left.message.system,
        Some(SystemEvent::MemberLeft { ref member, ref promoted }) if *member == admin && promoted.as_ref() == Some(&b)
    ));
    let bm = store.get_membership(&chat_id, &b).await.unwrap().unwrap();
    assert_eq!(bm.role, Role::Admin);
    let chat = store.get_chat(&chat_id, true).await.unwrap().unwrap();
    assert_eq!(chat.member_count, 1);
    assert_eq!(chat.last_position, 4);
    // The new admin can act as one.
    store
        .add_members(&chat_id, &b, &[UserId::generate()], now_millis())
        .await
        .unwrap();
}

#[tokio::test]
async fn promotion_picks_the_longest_standing_member() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let admin = UserId::generate();
    let early = vec![UserId::generate(), UserId::generate()];
    let chat_id = group(&store, &admin, &early).await;
    let late = UserId::generate();
    store
        .add_members(
            &chat_id,
            &admin,
            std::slice::from_ref(&late),
            now_millis() + 1000,
        )
        .await
        .unwrap();
    let change = store
        .remove_member(&chat_id, &admin, &admin, now_millis() + 2000)
        .await
        .unwrap();
    let expected = early.iter().min().unwrap().clone(); // same join time: smallest id
    assert_eq!(change.promoted, Some(expected.clone()));
    let admins: Vec<UserId> = store
        .list_members(&chat_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Admin)
        .map(|m| m.user_id)
        .collect();
    assert_eq!(admins, vec![expected]);
}

#[tokio::test]
async fn mute_is_per_member() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let m = store.set_muted(&chat.chat_id, &a, true).await.unwrap();
    assert!(m.muted);
    assert!(
        store
            .get_membership(&chat.chat_id, &a)
            .await
            .unwrap()
            .unwrap()
            .muted
    );
    assert!(
        !store
            .get_membership(&chat.chat_id, &b)
            .await
            .unwrap()
            .unwrap()
            .muted
    );
    assert!(
        !store
            .set_muted(&chat.chat_id, &a, false)
            .await
            .unwrap()
            .muted
    );
    assert!(matches!(
        store
            .set_muted(&chat.chat_id, &UserId::generate(), true)
            .await,
        Err(StoreError::NotFound("chat"))
    ));
}

#[tokio::test]
async fn chat_list_is_ordered_by_activity_and_pages() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let me = UserId::generate();
    let base = now_millis();
    let mut expected = Vec::new();
    for i in 0..5 {
        let other = UserId::generate();
        let (chat, _) = store.get_or_create_direct(&me, &other, base).await.unwrap();
        store
            .append_text(
                &chat.chat_id,
                &other,
                &cid(&format!("m{i}")),
                &text("hello"),
                base + 10 * (i as i64 + 1),
            )
            .await
            .unwrap();
        expected.push(chat.chat_id);
    }
    expected.reverse(); // most recent first
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_user_chats(&me, 2, after.as_ref()).await.unwrap();
        assert!(page.chats.len() <= 2);
        seen.extend(page.chats.iter().map(|(c, _)| c.chat_id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let (chat, membership) = &store.list_user_chats(&me, 1, None).await.unwrap().chats[0];
    assert_eq!(chat.last_message.as_ref().unwrap().preview, "hello");
    assert_eq!(membership.read_position, 0);
    assert_eq!(
        chat_of(&store, &expected[0], &me).await.0.chat_id,
        chat.chat_id
    );
}

async fn chat_of(
    store: &Store,
    chat: &ChatId,
    user: &UserId,
) -> (chat_core::model::Chat, chat_core::model::Membership) {
    store.chat_for_member(chat, user).await.unwrap()
}

// ------------------------------------------------------------------ messages

#[tokio::test]
async fn a_retried_send_returns_the_original_and_writes_nothing() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let t0 = now_millis();
    let first = store
        .append_text(&chat.chat_id, &a, &cid("c-1"), &text("hello"), t0)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.message.position, 1);
    assert_eq!(first.chat.last_position, 1);
    assert_eq!(first.message.sender_id.as_ref(), Some(&a));
    assert_eq!(first.message.text, "hello");
    let after_first = store.get_chat(&chat.chat_id, true).await.unwrap().unwrap();

    let retry = store
        .append_text(
            &chat.chat_id,
            &a,
            &cid("c-1"),
            &text("hello again"),
            t0 + 500,
        )
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.message, first.message, "the original, text and all");
    assert_eq!(
        store.get_chat(&chat.chat_id, true).await.unwrap().unwrap(),
        after_first,
        "the chat item is untouched"
    );
    assert_eq!(
        store
            .messages_after(&chat.chat_id, 0, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    assert_eq!(
        store
            .find_by_client_id(&chat.chat_id, &a, &cid("c-1"))
            .await
            .unwrap(),
        Some(first.message.clone())
    );

    // The same client id from the other member is another message.
    let theirs = store
        .append_text(&chat.chat_id, &b, &cid("c-1"), &text("hi"), t0 + 1)
        .await
        .unwrap();
    assert!(!theirs.duplicate);
    assert_eq!(theirs.message.position, 2);
    // Sending marks the sender's own read and delivered positions.
    let bm = store
        .get_membership(&chat.chat_id, &b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((bm.read_position, bm.delivered_position), (2, 2));
    let am = store
        .get_membership(&chat.chat_id, &a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(am.read_position, 1);
    assert_eq!(
        store.get_message(&chat.chat_id, 2).await.unwrap(),
        Some(theirs.message)
    );
    assert_eq!(store.get_message(&chat.chat_id, 3).await.unwrap(), None);
}

#[tokio::test]
async fn only_members_send_and_only_to_existing_chats() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let outsider = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let err = store
        .append_text(
            &chat.chat_id,
            &outsider,
            &cid("x"),
            &text("let me in"),
            now_millis(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotMember), "{err:?}");
    let after = store.get_chat(&chat.chat_id, true).await.unwrap().unwrap();
    assert_eq!(after.last_position, 0, "nothing written");
    assert!(store
        .find_by_client_id(&chat.chat_id, &outsider, &cid("x"))
        .await
        .unwrap()
        .is_none());

    let err = store
        .append_text(
            &ChatId::new_group(),
            &a,
            &cid("y"),
            &text("hello?"),
            now_millis(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("chat")), "{err:?}");
    assert!(matches!(
        store.chat_for_member(&chat.chat_id, &outsider).await,
        Err(StoreError::NotFound("chat"))
    ));
}

#[tokio::test]
async fn history_pages_forwards_and_backwards_without_gap_or_repeat() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    for i in 1..=250u64 {
        let sender = if i % 3 == 0 { &b } else { &a };
        let sent = store
            .append_text(
                &chat.chat_id,
                sender,
                &cid(&format!("m{i}")),
                &text(&format!("message {i}")),
                now_millis(),
            )
            .await
            .unwrap();
        assert_eq!(sent.message.position, i);
    }

    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .messages_after(&chat.chat_id, after, 40)
            .await
            .unwrap();
        assert!(page.messages.len() <= 40);
        for w in page.messages.windows(2) {
            assert_eq!(w[1].position, w[0].position + 1);
        }
        if let Some(last) = page.messages.last() {
            after = last.position;
        }
        forward.extend(page.messages);
        if !page.has_more {
            break;
        }
    }
    let positions: Vec<u64> = forward.iter().map(|m| m.position).collect();
    assert_eq!(positions, (1..=250).collect::<Vec<_>>());
    assert!(forward
        .iter()
        .all(|m| m.text == format!("message {}", m.position)));

    let mut backward = Vec::new();
    let mut before = u64::MAX;
    let mut pages = 0;
    loop {
        let page = store
            .messages_before(&chat.chat_id, before, 40)
            .await
            .unwrap();
        pages += 1;
        // Each page comes back in ascending order.
        for w in page.messages.windows(2) {
            assert_eq!(w[1].position, w[0].position + 1);
        }
        if let Some(first) = page.messages.first() {
            before = first.position;
        }
        let mut msgs = page.messages;
        msgs.reverse();
        backward.extend(msgs);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(pages, 7);
    backward.reverse();
    assert_eq!(backward, forward);

    // Middle windows.
    let mid = store.messages_after(&chat.chat_id, 100, 5).await.unwrap();
    assert_eq!(
        mid.messages.iter().map(|m| m.position).collect::<Vec<_>>(),
        [101, 102, 103, 104, 105]
    );
    assert!(mid.has_more);
    let mid = store.messages_before(&chat.chat_id, 101, 3).await.unwrap();
    assert_eq!(
        mid.messages.iter().map(|m| m.position).collect::<Vec<_>>(),
        [98, 99, 100]
    );
    let end = store.messages_after(&chat.chat_id, 250, 10).await.unwrap();
    assert!(end.messages.is_empty());
    assert!(!end.has_more);
}

#[tokio::test]
async fn the_longest_message_fits_one_item() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    // 100,000 characters of 4 bytes each: 400,000 bytes of UTF-8.
    let long: String = "\u{1F600}".repeat(chat_core::input::MAX_MESSAGE_CHARS);
    assert_eq!(long.len(), 400_000);
    let sent = store
        .append_text(&chat.chat_id, &a, &cid("big"), &text(&long), now_millis())
        .await
        .unwrap();
    let back = store.get_message(&chat.chat_id, 1).await.unwrap().unwrap();
    assert_eq!(back.text, long);
    assert_eq!(back, sent.message);
    let chat = store.get_chat(&chat.chat_id, true).await.unwrap().unwrap();
    let preview = chat.last_message.unwrap().preview;
    assert!(preview.chars().count() <= chat_core::model::PREVIEW_CHARS + 1);
}

// ------------------------------------------------------------------ receipts

#[tokio::test]
async fn receipts_never_move_back() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let id = &chat.chat_id;
    assert!(store.advance_delivered(id, &b, 3).await.unwrap());
    assert!(!store.advance_delivered(id, &b, 2).await.unwrap());
    assert!(!store.advance_delivered(id, &b, 3).await.unwrap());
    let m = store.get_membership(id, &b).await.unwrap().unwrap();
    assert_eq!((m.delivered_position, m.read_position), (3, 0));

    assert!(store.advance_read(id, &b, 5).await.unwrap());
    let m = store.get_membership(id, &b).await.unwrap().unwrap();
    assert_eq!(
        (m.delivered_position, m.read_position),
        (5, 5),
        "read implies delivered"
    );
    assert!(!store.advance_read(id, &b, 4).await.unwrap());
    assert!(store.advance_delivered(id, &b, 7).await.unwrap());
    assert!(store.advance_read(id, &b, 6).await.unwrap());
    let m = store.get_membership(id, &b).await.unwrap().unwrap();
    assert_eq!(
        (m.delivered_position, m.read_position),
        (7, 6),
        "a read behind delivered leaves delivered alone"
    );
    assert!(matches!(
        store.advance_read(id, &UserId::generate(), 1).await,
        Err(StoreError::NotMember)
    ));
    assert!(matches!(
        store.advance_delivered(id, &UserId::generate(), 1).await,
        Err(StoreError::NotMember)
    ));
}

/// A receipt decided from a member item read before another receipt moved it: the
/// one conditional write still never moves a position back, and a read receipt
/// overtaken by a delivered one still moves the read position.
#[tokio::test]
async fn receipts_from_a_stale_member_read_never_move_back() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let id = &chat.chat_id;
    let stale = store.get_membership(id, &b).await.unwrap().unwrap();
    assert!(store.advance_delivered(id, &b, 7).await.unwrap());
    assert!(!store
        .advance_receipt(&stale, ReceiptKind::Delivered, 3)
        .await
        .unwrap());
    assert!(store
        .advance_receipt(&stale, ReceiptKind::Read, 5)
        .await
        .unwrap());
    let m = store.get_membership(id, &b).await.unwrap().unwrap();
    assert_eq!((m.delivered_position, m.read_position), (7, 5));
    assert!(!store
        .advance_receipt(&stale, ReceiptKind::Read, 4)
        .await
        .unwrap());
    let m = store.get_membership(id, &b).await.unwrap().unwrap();
    assert_eq!((m.delivered_position, m.read_position), (7, 5));
    let mut outsider = stale.clone();
    outsider.user_id = UserId::generate();
    assert!(matches!(
        store.advance_receipt(&outsider, ReceiptKind::Read, 1).await,
        Err(StoreError::NotMember)
    ));
}

// ------------------------------------------------------------------ connections

fn connection(id: &str, user: &UserId, connected_at: Millis, expires_at: Millis) -> Connection {
    Connection {
        connection_id: ConnectionId::parse(id).unwrap(),
        user_id: user.clone(),
        device_label: "laptop".into(),
        connected_at,
        expires_at,
        source_ip: "127.0.0.1".into(),
        credential: None,
    }
}

#[tokio::test]
async fn presence_follows_connections() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = user(&store, "dave").await; // has a presence record from registration
    let stranger = UserId::generate(); // has none
    let now = now_millis();
    let hour = 3_600_000;
    let c1 = connection("conn1AAA=", &u, now, now + 2 * hour);
    let c2 = connection("conn2BBB=", &u, now + 1, now + 2 * hour);
    assert!(store.put_connection(&c1).await.unwrap(), "came online");
    assert!(!store.put_connection(&c2).await.unwrap(), "already online");
    assert_eq!(
        store.get_connection(&c1.connection_id).await.unwrap(),
        Some(c1.clone())
    );
    let item = raw_item(
        &store,
        &store.tables().connections,
        &[(
            "connectionId",
            AttributeValue::S(c1.connection_id.to_string()),
        )],
    )
    .await;
    assert_eq!(
        num(&item, "ttl"),
        c1.expires_at / 1000,
        "TTL in epoch seconds"
    );

    let p = store
        .presence_of(&[u.clone(), stranger.clone()], now + 10)
        .await
        .unwrap();
    assert_eq!(
        p[&u].connections,
        vec![c1.connection_id.clone(), c2.connection_id.clone()]
    );
    assert!(p[&u].presence().online);
    assert!(!p[&stranger].presence().online);

    assert_eq!(
        store
            .remove_connection(&c1.connection_id, now + 20)
            .await
            .unwrap(),
        Some((u.clone(), false))
    );
    assert_eq!(
        store
            .remove_connection(&c2.connection_id, now + 30)
            .await
            .unwrap(),
        Some((u.clone(), true)),
        "went offline"
    );
    assert_eq!(
        store
            .remove_connection(&c2.connection_id, now + 40)
            .await
            .unwrap(),
        None,
        "already gone"
    );
    let p = store
        .presence_of(std::slice::from_ref(&u), now + 50)
        .await
        .unwrap();
    assert!(!p[&u].presence().online);
    assert_eq!(p[&u].last_seen_at, Some(now + 30));
    assert!(store
        .get_connection(&c1.connection_id)
        .await
        .unwrap()
        .is_none());

    // A user without a presence record (no registration in this table) comes online.
    let c3 = connection("conn3CCC=", &stranger, now, now + hour);
    assert!(store.put_connection(&c3).await.unwrap());
    assert!(
        store
            .presence_of(std::slice::from_ref(&stranger), now + 1)
            .await
            .unwrap()[&stranger]
            .presence()
            .online
    );
}

#[tokio::test]
async fn stale_and_expired_connections_do_not_count() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = user(&store, "erin").await;
    let now = now_millis();
    // A connection whose $disconnect was lost: its entry expires.
    let old = connection("old111==", &u, now - 10_000, now - 1);
    store.put_connection(&old).await.unwrap();
    let p = store
        .presence_of(std::slice::from_ref(&u), now)
        .await
        .unwrap();
    assert!(!p[&u].presence().online, "an expired entry is not presence");
    let fresh = connection("new222==", &u, now, now + 60_000);
    assert!(
        store.put_connection(&fresh).await.unwrap(),
        "only expired entries before: came online"
    );

    // A post answered 410: forget it.
    assert!(store
        .forget_stale_connection(&u, &fresh.connection_id, now + 1)
        .await
        .unwrap());
    assert!(store
        .get_connection(&fresh.connection_id)
        .await
        .unwrap()
        .is_none());
    let p = store
        .presence_of(std::slice::from_ref(&u), now + 2)
        .await
        .unwrap();
    assert!(p[&u].connections.is_empty());
    assert_eq!(p[&u].last_seen_at, Some(now + 1));
}

/// Regression (found by the load benchmark): a post answered 410 for a connection
/// whose `$connect` was still running (two partners connecting at once) removed it
/// from presence, so its live socket never got a message again.
#[tokio::test]
async fn gone_connection_is_kept_while_it_may_still_be_connecting() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = user(&store, "gina").await;
    let now = now_millis();
    let young = connection("young111=", &u, now - 1_000, now + 60_000);
    store.put_connection(&young).await.unwrap();
    assert_eq!(
        store
            .forget_gone_connection(&u, &young.connection_id, now)
            .await
            .unwrap(),
        None,
        "kept"
    );
    assert!(store
        .get_connection(&young.connection_id)
        .await
        .unwrap()
        .is_some());
    let p = store
        .presence_of(std::slice::from_ref(&u), now)
        .await
        .unwrap();
    assert_eq!(p[&u].connections, vec![young.connection_id.clone()]);

    // Past the grace period a 410 means the connection is dead: forgotten.
    let later = now + chat_core::store::CONNECT_GRACE_MS;
    assert_eq!(
        store
            .forget_gone_connection(&u, &young.connection_id, later)
            .await
            .unwrap(),
        Some(true),
        "forgotten, and the user is offline"
    );
    assert!(store
        .get_connection(&young.connection_id)
        .await
        .unwrap()
        .is_none());
    let p = store
        .presence_of(std::slice::from_ref(&u), later)
        .await
        .unwrap();
    assert!(p[&u].connections.is_empty());
}

#[tokio::test]
async fn deferred_rate_counter_leaves_opening_a_window_to_the_caller() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = UserId::generate();
    let now = now_millis();
    let c = connection("rated123", &u, now, now + 60_000);
    store.put_connection(&c).await.unwrap();
    let id = &c.connection_id;
    // The connection's first frame opens a window: counted as 1, the write deferred.
    let WindowCount::NeedsNewWindow(w, reset) = store
        .count_request_deferring_reset(id, 7, now + 1)
        .await
        .unwrap()
    else {
        panic!("a new window to open")
    };
    assert_eq!((w.count, w.connection.user_id.clone()), (1, u.clone()));
    assert_eq!(
        store.apply_window_reset(&reset).await.unwrap(),
        WindowOpened::Opened
    );
    // Then counted in one call per frame.
    for expected in 2..=3 {
        let counted = store
            .count_request_deferring_reset(id, 7, now + expected as i64)
            .await
            .unwrap();
        let WindowCount::Counted(w) = counted else {
            panic!("counted in the open window, got {counted:?}")
        };
        assert_eq!(w.count, expected);
    }
    // Unknown and expired connections are refused, and nothing is created.
    let nobody = ConnectionId::parse("nobody").unwrap();
    assert!(matches!(
        store
            .count_request_deferring_reset(&nobody, 8, now)
            .await
            .unwrap(),
        WindowCount::Gone
    ));
    assert!(matches!(
        store
            .count_request_deferring_reset(id, 9, now + 60_001)
            .await
            .unwrap(),
        WindowCount::Gone
    ));
    assert!(store.get_connection(&nobody).await.unwrap().is_none());
    // A window opened for a connection that has gone since: nothing to do.
    store.remove_connection(id, now + 2).await.unwrap();
    assert_eq!(
        store.apply_window_reset(&reset).await.unwrap(),
        WindowOpened::ConnectionGone
    );
    assert!(store.get_connection(id).await.unwrap().is_none());
}

#[tokio::test]
async fn rate_counter_counts_per_window() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u = UserId::generate();
    let now = now_millis();
    let c = connection("rate1234", &u, now, now + 60_000);
    store.put_connection(&c).await.unwrap();
    let id = &c.connection_id;
    for expected in 1..=3 {
        let w = store
            .count_request(id, 7, now + expected as i64)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w.count, expected);
        assert_eq!(w.connection.user_id, u);
    }
    let w = store.count_request(id, 8, now + 10).await.unwrap().unwrap();
    assert_eq!(w.count, 1, "a new window starts from one");
    let w = store.count_request(id, 8, now + 11).await.unwrap().unwrap();
    assert_eq!(w.count, 2);
    assert!(store
        .count_request(&ConnectionId::parse("nobody").unwrap(), 8, now)
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .count_request(id, 9, now + 60_001)
            .await
            .unwrap()
            .is_none(),
        "expired connection"
    );
    assert!(
        store.get_connection(id).await.unwrap().is_some(),
        "counting an unknown connection created nothing"
    );
    assert!(store
        .get_connection(&ConnectionId::parse("nobody").unwrap())
        .await
        .unwrap()
        .is_none());
}

// ------------------------------------------------------------------ devices

#[tokio::test]
async fn a_push_token_is_held_once() {
    chat_tests::needs_backend!();
    let store = store_for_test().await;
    let u1 = UserId::generate();
    let u2 = UserId::generate();
    let now = now_millis();
    let d1 = Device {
        device_id: DeviceId::generate(),
        user_id: u1.clone(),
        platform: PushPlatform::Fcm,
        token: "token-abc".into(),
        endpoint_arn: Some("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/x/1".into()),
        created_at: now,
    };
    store.put_device(&d1).await.unwrap();
    let other = Device {
        device_id: DeviceId::generate(),
        token: "token-apns".into(),
        platform: PushPlatform::Apns,
        endpoint_arn: None,
        ..d1.clone()
    };
    store.put_device(&other).await.unwrap();
    assert_eq!(store.list_devices(&u1).await.unwrap().len(), 2);
    // Same token string on another platform is another device.
    assert_eq!(
        store
            .devices_with_token(PushPlatform::Apns, "token-abc")
            .await
            .unwrap(),
        vec![]
    );

    // The phone changes hands: the token moves to u2.
    let d2 = Device {
        device_id: DeviceId::generate(),
        user_id: u2.clone(),
        created_at: now + 1,
        ..d1.clone()
    };
    store.put_device(&d2).await.unwrap();
    assert_eq!(store.list_devices(&u1).await.unwrap(), vec![other.clone()]);
    assert_eq!(store.list_devices(&u2).await.unwrap(), vec![d2.clone()]);
    assert_eq!(
        store
            .devices_with_token(PushPlatform::Fcm, "token-abc")
            .await
            .unwrap(),
        vec![d2.clone()]
    );
    // Registering the same device again changes nothing.
    store.put_device(&d2).await.unwrap();
    assert_eq!(store.list_devices(&u2).await.unwrap(), vec![d2.clone()]);

    assert_eq!(
        store.delete_device(&u2, &d2.device_id).await.unwrap(),
        Some(d2.clone())
    );
    assert_eq!(store.delete_device(&u2, &d2.device_id).await.unwrap(), None);
    assert!(store.list_devices(&u2).await.unwrap().is_empty());
}

// ------------------------------------------------------------------ concurrency

/// 8 senders x 50 messages into one chat, while a reader follows `messages_after`:
/// positions are exactly 1..=400, every message stored once, and the reader never
/// sees a gap.
#[tokio::test]
async fn concurrent_senders_get_gap_free_positions_and_readers_never_skip() {
    chat_tests::needs_backend!();
    const TASKS: usize = 8;
    const PER_TASK: usize = 50;
    const TOTAL: u64 = (TASKS * PER_TASK) as u64;
    let store = store_for_test().await;
    let a = UserId::generate();
    let b = UserId::generate();
    let (chat, _) = store
        .get_or_create_direct(&a, &b, now_millis())
        .await
        .unwrap();
    let chat_id = chat.chat_id;

    let reader = {
        let store = store.clone();
        let chat_id = chat_id.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(240);
            let mut seen = 0u64;
            let mut reads = 0u32;
            while seen < TOTAL {
                assert!(Instant::now() < deadline, "reader stuck at {seen}");
                let page = store.messages_after(&chat_id, seen, 100).await.unwrap();
                reads += 1;
                for m in page.messages {
                    assert_eq!(m.position, seen + 1, "the reader skipped a position");
                    seen = m.position;
                }
                // Poll again shortly: waiting for the condition "more messages".
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (seen, reads)
        })
    };

    let senders: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let chat_id = chat_id.clone();
            let sender = if t % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut acks = Vec::new();
                let mut retries = 0;
                for i in 0..PER_TASK {
                    let client_id = cid(&format!("t{t}-m{i}"));
                    let body = text(&format!("task {t} message {i}"));
                    // A client whose send failed for contention retries with the same
                    // client id; the store must not create a second message.
                    let mut tries = 0;
                    let appended = loop {
                        tries += 1;
                        match store
                            .append_text(&chat_id, &sender, &client_id, &body, now_millis())
                            .await
                        {
                            Ok(a) => break a,
                            Err(e) if e.is_transient() && tries < 5 => continue,
                            Err(e) => panic!("send failed: {e:?}"),
                        }
                    };
                    retries += tries - 1;
                    acks.push((client_id, appended.message));
                }
                (acks, retries)
            })
        })
        .collect();

    let mut positions = Vec::new();
    let mut acked = Vec::new();
    let mut retries = 0;
    for s in senders {
        let (acks, r) = s.await.unwrap();
        retries += r;
        for (client_id, message) in acks {
            positions.push(message.position);
            acked.push((client_id, message));
        }
    }
    positions.sort_unstable();
    assert_eq!(
        positions,
        (1..=TOTAL).collect::<Vec<_>>(),
        "acks: 1..=400, each once"
    );

    let (seen, reads) = reader.await.unwrap();
    eprintln!(
        "{TOTAL} sends: {retries} client retries after contention; reader polled {reads} times"
    );
    assert_eq!(seen, TOTAL);

    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages_after(&chat_id, after, 1000).await.unwrap();
        if let Some(m) = page.messages.last() {
            after = m.position;
        }
        all.extend(page.messages);
        if !page.has_more {
            break;
        }
    }
    assert_eq!(all.len() as u64, TOTAL, "no duplicate, no loss");
    let ids: HashSet<_> = all.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len() as u64, TOTAL);
    let keys: HashSet<_> = all
        .iter()
        .map(|m| (m.sender_id.clone(), m.client_message_id.clone()))
        .collect();
    assert_eq!(
        keys.len() as u64,
        TOTAL,
        "each (sender, client id) stored once"
    );
    for (client_id, message) in &acked {
        let stored = &all[(message.position - 1) as usize];
        assert_eq!(stored, message, "the ack names the stored message");
        assert_eq!(stored.client_message_id.as_ref(), Some(client_id));
    }
    let chat = store.get_chat(&chat_id, true).await.unwrap().unwrap();
    assert_eq!(chat.last_position, TOTAL);
}
