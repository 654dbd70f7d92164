//! Seeding a [`TestStack`], for tests about what happens after registration: users
//! with access tokens, direct chats and groups. On a local stack through its store
//! (minted tokens: no Argon2id, no HTTP round trip; exactly what the functions would
//! have written); on a remote stack ([`crate::remote`]) through the public API
//! (`POST /auth/register`, `POST /chats`), with the same results.

use crate::api::Api;
use crate::TestStack;
use chat_core::auth::tokens::TokenConfig;
use chat_core::ids::{ChatId, SessionId, UserId};
use chat_core::input::{DisplayName, GroupName, UserName};
use chat_core::model::now_millis;
use chat_core::store::{NewGroup, Store};

/// A user written to the store, with a valid access token of the stack.
#[derive(Debug, Clone)]
pub struct SeededUser {
    pub id: UserId,
    pub token: String,
    /// The display name it was created with.
    pub name: String,
}

/// Writes users and chats into one stack (see the module documentation).
pub enum Seeder {
    Store {
        store: Box<Store>,
        tokens: Box<TokenConfig>,
    },
    Api(Api),
}

impl Seeder {
    pub fn new(stack: &TestStack) -> Self {
        if stack.is_remote() {
            return Seeder::Api(Api::new(stack));
        }
        Seeder::Store {
            store: Box::new(stack.store().clone()),
            tokens: Box::new(
                TokenConfig::from_env(stack.env()).expect("JWT config in the stack env"),
            ),
        }
    }

    /// A user with a unique user name derived from `name` and an access token.
    pub async fn user(&self, name: &str) -> SeededUser {
        let (store, tokens) = match self {
            Seeder::Store { store, tokens } => (store, tokens),
            Seeder::Api(api) => {
                let u = api.register(name).await;
                return SeededUser {
                    id: u.id,
                    token: u.access_token,
                    name: name.to_owned(),
                };
            }
        };
        let id = UserId::generate();
        let unique = format!("{name}{}", &id.as_str()[20..]).to_ascii_lowercase();
        store
            .create_user(
                &id,
                &UserName::parse(&unique).unwrap(),
                &DisplayName::parse(name).unwrap(),
                "not-a-real-hash",
                now_millis(),
            )
            .await
            .expect("create user");
        let token = tokens.issue(&id, &SessionId::generate(), 0, now_millis());
        SeededUser {
            id,
            token,
            name: name.to_owned(),
        }
    }

    /// The direct chat of `a` and `b`.
    pub async fn direct(&self, a: &SeededUser, b: &SeededUser) -> ChatId {
        let store = match self {
            Seeder::Store { store, .. } => store,
            Seeder::Api(api) => {
                let r = api
                    .send_json(
                        Some(&a.token),
                        "POST",
                        "/chats",
                        Some(serde_json::json!({"kind": "direct", "userId": b.id})),
                    )
                    .await;
                assert!(
                    r.status == 200 || r.status == 201,
                    "direct chat: {}",
                    r.body
                );
                return chat_id_of(&r.body);
            }
        };
        store
            .get_or_create_direct(&a.id, &b.id, now_millis())
            .await
            .expect("direct chat")
            .0
            .chat_id
    }

    /// A group "Team"; its creation is position 1 (a system message).
    pub async fn group(&self, creator: &SeededUser, others: &[&SeededUser]) -> ChatId {
        let store = match self {
            Seeder::Store { store, .. } => store,
            Seeder::Api(api) => {
                let ids: Vec<&str> = others.iter().map(|u| u.id.as_str()).collect();
                let body = api
                    .send_json(
                        Some(&creator.token),
                        "POST",
                        "/chats",
                        Some(
                            serde_json::json!({"kind": "group", "name": "Team", "memberIds": ids}),
                        ),
                    )
                    .await
                    .expect(201);
                return chat_id_of(&body);
            }
        };
        let (chat, _) = store
            .create_group(
                &NewGroup {
                    creator: creator.id.clone(),
                    name: GroupName::parse("Team").unwrap(),
                    members: others.iter().map(|u| u.id.clone()).collect(),
                },
                now_millis(),
            )
            .await
            .expect("group");
        chat.chat_id
    }
}

fn chat_id_of(body: &serde_json::Value) -> ChatId {
    ChatId::parse(body["chatId"].as_str().expect("chatId in the answer")).expect("a chat id")
}
