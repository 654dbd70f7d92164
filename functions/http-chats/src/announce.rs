//! Membership changes reach online members. TEMPORARY: a no-op until the realtime
//! branch lands `chat_core::messaging::announce_membership` (system message already
//! stored by the store; this adds the `membership` events to live connections). Then
//! this module forwards to it, so REST and WebSocket share one implementation.

use crate::App;
use chat_core::ids::UserId;
use chat_core::store::MembershipChange;

/// Tell online members (and `affected` users, e.g. the one removed) about `change`.
pub async fn membership(_app: &App, _change: &MembershipChange, _affected: &[UserId]) {}
