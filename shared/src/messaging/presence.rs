//! Presence events in two halves, so that `$connect` and `$disconnect` can look up
//! whom to tell while they write the connection: [`ChatServices::presence_targets`]
//! (reads only: the user's memberships, each direct chat's members, the partners'
//! presence) and [`ChatServices::post_presence`] (the posts). Run side by side with
//! the connection's own writes, the handshake waits on three sequential DynamoDB round
//! trips instead of six (`docs/performance.md`, "Work per message").

use super::ChatServices;
use crate::delivery::{DeliveryReport, Target};
use crate::error::ApiError;
use crate::ids::{ChatId, UserId};
use crate::model::{Membership, Millis};
use crate::protocol::{PresenceEvent, ServerEvent};
use crate::store::StoreError;
use futures::stream::{self, StreamExt};

impl ChatServices {
    /// The online connections of `user`'s direct-chat partners. Cost: one Query of the
    /// user's memberships (`byUser`), one small Query per direct chat (at most 8 at a
    /// time), then one presence BatchGetItem per 100 partners; nothing is written.
    pub async fn presence_targets(&self, user: &UserId) -> Result<Vec<Target>, ApiError> {
        let memberships = self
            .store
            .list_user_memberships(user)
            .await
            .map_err(ApiError::from)?;
        let direct: Vec<ChatId> = memberships
            .into_iter()
            .map(|m| m.chat_id)
            .filter(|c| !c.is_group())
            .collect();
        let store = self.store.clone();
        let lists: Vec<Result<Vec<Membership>, StoreError>> = stream::iter(direct)
            .map(move |chat_id| {
                let store = store.clone();
                async move { store.list_members(&chat_id).await }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut partners: Vec<UserId> = Vec::new();
        for list in lists {
            partners.extend(
                list.map_err(ApiError::from)?
                    .into_iter()
                    // `user` blocked this partner: no presence for them.
                    .filter(|m| !m.blocked_by_peer)
                    .map(|m| m.user_id)
                    .filter(|u| u != user),
            );
        }
        if partners.is_empty() {
            return Ok(Vec::new());
        }
        self.connections_of(&partners, None, None).await
    }

    /// Post `user`'s `presence` event to `targets` (from [`Self::presence_targets`]).
    pub async fn post_presence(
        &self,
        user: &UserId,
        targets: &[Target],
        online: bool,
        last_seen_at: Option<Millis>,
    ) -> DeliveryReport {
        if targets.is_empty() {
            return DeliveryReport::default();
        }
        let ev = ServerEvent::Presence(PresenceEvent {
            user_id: user.clone(),
            online,
            last_seen_at,
        });
        self.poster.post_all(targets, &ev.to_json()).await
    }
}
