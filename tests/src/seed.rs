//! Seeding a [`TestStack`] through its store, for tests about what happens after
//! registration: users with minted access tokens (no Argon2id, no HTTP round trip),
//! direct chats and groups, exactly as the functions would have written them.

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

/// Writes users and chats into one stack's tables.
pub struct Seeder {
    store: Store,
    tokens: TokenConfig,
}

impl Seeder {
    pub fn new(stack: &TestStack) -> Self {
        Seeder {
            store: stack.store().clone(),
            tokens: TokenConfig::from_env(stack.env()).expect("JWT config in the stack env"),
        }
    }

    /// A user with a unique user name derived from `name` and an access token.
    pub async fn user(&self, name: &str) -> SeededUser {
        let id = UserId::generate();
        let unique = format!("{name}{}", &id.as_str()[20..]).to_ascii_lowercase();
        self.store
            .create_user(
                &id,
                &UserName::parse(&unique).unwrap(),
                &DisplayName::parse(name).unwrap(),
                "not-a-real-hash",
                now_millis(),
            )
            .await
            .expect("create user");
        let token = self
            .tokens
            .issue(&id, &SessionId::generate(), 0, now_millis());
        SeededUser {
            id,
            token,
            name: name.to_owned(),
        }
    }

    /// The direct chat of `a` and `b`.
    pub async fn direct(&self, a: &SeededUser, b: &SeededUser) -> ChatId {
        self.store
            .get_or_create_direct(&a.id, &b.id, now_millis())
            .await
            .expect("direct chat")
            .0
            .chat_id
    }

    /// A group "Team"; its creation is position 1 (a system message).
    pub async fn group(&self, creator: &SeededUser, others: &[&SeededUser]) -> ChatId {
        let (chat, _) = self
            .store
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
