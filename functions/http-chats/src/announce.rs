//! Membership changes reach online members: the store already wrote the system message
//! in the same transaction as the change; this sends it and a `membership` event to the
//! live connections of every member and of the `affected` users (the one removed or
//! leaving learns at once), through the services the WebSocket uses too.

use chat_core::ids::UserId;
use chat_core::messaging::ChatServices;
use chat_core::store::MembershipChange;

/// Tell online members (and `affected` users) about `change`. The change is stored
/// either way; a failed announcement is logged, and clients catch up through sync.
pub async fn membership(app: &ChatServices, change: &MembershipChange, affected: &[UserId]) {
    if let Err(e) = app.announce_membership(change, affected).await {
        e.log();
    }
}
