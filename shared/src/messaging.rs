//! The chat services both edges call: one implementation of sending, fan-out,
//! receipts, membership announcements, typing, presence and catch-up sync, whether the
//! request came over the WebSocket (`ws-message`) or REST (`http-chats`).
//!
//! [`ChatServices`] is built once at init. Inputs are already-parsed newtypes (the
//! edges parse); outputs are domain values and [`ApiError`]s with stable codes.
//! Non-members get `not_found` exactly like unknown chats.
//!
//! Cost: every fan-out reads the chat's members (one Query) and their presence (one
//! BatchGetItem per 100 members), then posts to those members' connections only. The
//! number of connected users elsewhere in the system never matters.

use crate::auth::tokens::TokenConfig;
use crate::config::{ConfigError, Env, Tables};
use crate::cursor::{PendingChat, SyncContinuation};
use crate::delivery::{DeliveryReport, OfflinePublisher, PostOutcome, Poster, Target};
use crate::error::ApiError;
use crate::ids::{ChatId, ClientMessageId, ConnectionId, UserId};
use crate::input::{InvalidInput, MessageText};
use crate::model::{now_millis, Chat, ChatKind, Membership, Message, Millis, PREVIEW_CHARS};
use crate::protocol::{
    KnownPosition, MembershipEvent, MessageAck, MessageRef, OfflineMessageEvent, Receipt,
    ServerEvent, SyncChat, SyncResult, TypingEvent, TypingState, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use crate::store::{LogPage, MembershipChange, ReceiptKind, Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

mod presence;

/// Bytes of messages one WebSocket `syncResult` may carry: the 128 KB frame less room
/// for the envelope.
pub const WS_SYNC_MAX_BYTES: usize = MAX_FRAME_BYTES - 16 * 1024;

/// A stored message, as `send_message` returns it (before fan-out).
#[derive(Debug, Clone)]
pub struct Sent {
    pub message: Message,
    /// The chat after the append (for a duplicate: as read).
    pub chat: Chat,
    /// The clientMessageId was already stored: `message` is the original.
    pub duplicate: bool,
    /// The message still has to be delivered: always for a new message; for a
    /// duplicate only when the first attempt stopped before its fan-out finished (its
    /// function was killed or timed out after storing). Otherwise
    /// [`ChatServices::fan_out`] does nothing (it was delivered the first time).
    pub fan_out_pending: bool,
    /// The sender's idempotency key.
    pub client_message_id: ClientMessageId,
    /// The connection the send came in on (gets `messageAck`, not `message`).
    pub origin: Option<ConnectionId>,
}

impl Sent {
    /// The acknowledgement for the sender.
    pub fn ack(&self) -> MessageAck {
        MessageAck {
            chat_id: self.message.chat_id.clone(),
            client_message_id: self.client_message_id.clone(),
            message_id: self.message.message_id.clone(),
            position: self.message.position,
            sent_at: self.message.sent_at,
            duplicate: self.duplicate,
        }
    }
}

/// What a fan-out did.
#[derive(Debug, Clone, Default)]
pub struct FanOutReport {
    pub delivery: DeliveryReport,
    /// Recipients with no connection that accepted the post, published to the offline
    /// topic.
    pub offline: Vec<UserId>,
    /// True when the message went out as `messageRef` (too large for a frame).
    pub as_ref: bool,
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptOutcome {
    /// The position moved forward (and the other members were told).
    pub moved: bool,
}

/// The services, built once at init.
#[derive(Debug, Clone)]
pub struct ChatServices {
    store: Store,
    tokens: TokenConfig,
    poster: Poster,
    offline: OfflinePublisher,
    /// `None` when no bucket is configured (sends with attachments are refused).
    attachments: Option<crate::attachments::AttachmentService>,
}

impl crate::http::SignIn for ChatServices {
    fn token_config(&self) -> &TokenConfig {
        &self.tokens
    }
    fn account_store(&self) -> &Store {
        &self.store
    }
}

impl ChatServices {
    pub fn new(
        store: Store,
        tokens: TokenConfig,
        management: aws_sdk_apigatewaymanagement::Client,
        sns: aws_sdk_sns::Client,
        offline_topic_arn: impl Into<String>,
    ) -> Self {
        ChatServices {
            poster: Poster::new(management, store.clone()),
            offline: OfflinePublisher::new(sns, offline_topic_arn),
            store,
            tokens,
            attachments: None,
        }
    }

    /// With attachments stored through `service`.
    pub fn with_attachments(mut self, service: crate::attachments::AttachmentService) -> Self {
        self.attachments = Some(service);
        self
    }

    /// The attachment service, when this deployment has a bucket.
    pub fn attachments(&self) -> Option<&crate::attachments::AttachmentService> {
        self.attachments.as_ref()
    }

    /// Everything from the function's environment: tables, `JWT_*`,
    /// `WEBSOCKET_MANAGEMENT_ENDPOINT`, `OFFLINE_TOPIC_ARN`, AWS endpoints.
    pub async fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let sdk = crate::aws::sdk_config(env).await;
        let store = Store::new(crate::aws::dynamodb(&sdk, env), Tables::from_env(env)?);
        let tokens = TokenConfig::from_env(env)?;
        let management = crate::aws::management(&sdk, env)?;
        let sns = crate::aws::sns(&sdk, env);
        let topic = env.require("OFFLINE_TOPIC_ARN")?.to_owned();
        let mut services = Self::new(store, tokens, management, sns, topic);
        if let Some(config) = crate::config::AttachmentConfig::from_env(env)? {
            let s3 = crate::aws::s3(&sdk, env);
            let service = crate::attachments::AttachmentService::new(s3, config)
                .with_sns(crate::aws::sns(&sdk, env));
            services = services.with_attachments(service);
        }
        Ok(services)
    }

    /// [`ChatServices::from_env`] as a function's init step
    /// ([`crate::function::with_state`]).
    pub async fn init(env: Env) -> Result<Self, lambda_runtime::Error> {
        Ok(Self::from_env(&env).await?)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tokens(&self) -> &TokenConfig {
        &self.tokens
    }

    pub fn poster(&self) -> &Poster {
        &self.poster
    }

    /// Post one event to a connection whose owner is unknown (an error answered
    /// before the connection could be looked up).
    pub async fn post_to_connection(
        &self,
        connection: &ConnectionId,
        event: &ServerEvent,
    ) -> PostOutcome {
        self.poster
            .post_to_connection(connection, &event.to_json())
            .await
    }

    /// Post one event to one connection (acks, errors, pongs, sync results).
    pub async fn post_event(
        &self,
        user: &UserId,
        connection: &ConnectionId,
        event: &ServerEvent,
    ) -> PostOutcome {
        let target = Target {
            user: user.clone(),
            connection: connection.clone(),
        };
        self.poster.post(&target, &event.to_json()).await
    }

    /// Store a text message from `sender` in `chat_id` (idempotent on
    /// `client_message_id`, gap-free positions) and return it with what the sender's
    /// acknowledgement needs. Does not deliver: call [`Self::fan_out`] next (after
    /// acknowledging, so the acknowledgement never waits for delivery).
    ///
    /// `pre_read`: the chat, when the caller already read it (`Store::get_chat(chat_id,
    /// true)`; `ws-message` reads it while counting the frame), which saves the append
    /// one DynamoDB round trip. `None` reads it here.
    ///
    /// Errors: `not_found` (unknown chat, or `sender` is not a member; nothing stored),
    /// `unavailable` (DynamoDB throttling or down; retry with the same clientMessageId).
    pub async fn send_message(
        &self,
        sender: &UserId,
        chat_id: &ChatId,
        client_message_id: &ClientMessageId,
        text: &MessageText,
        origin_connection: Option<ConnectionId>,
        pre_read: Option<Chat>,
    ) -> Result<Sent, ApiError> {
        crate::telemetry::record_chat(chat_id);
        let appended = self
            .store
            .append_text_reusing_read(
                pre_read,
                chat_id,
                sender,
                client_message_id,
                text,
                now_millis(),
            )
            .await
            .map_err(ApiError::from)?;
        if !appended.duplicate {
            crate::metrics::count("MessagesSent", 1);
        }
        Ok(Sent {
            message: appended.message,
            chat: appended.chat,
            duplicate: appended.duplicate,
            fan_out_pending: appended.fan_out_pending,
            client_message_id: client_message_id.clone(),
            origin: origin_connection,
        })
    }

    /// [`Self::send_message`] for a message with photos or files (`attachments`, 1 to
    /// 10 ids of the sender's uploads to this chat; `text` may then be absent). Each
    /// upload is checked (there, the declared size and type) and kept from expiry
    /// before the append attaches it in the message's transaction; the same
    /// idempotency, ordering and fan-out as text follow. Errors besides those of
    /// `send_message`: `validation_failed` (field `attachments`: too many, not
    /// uploaded, size or type differ, unknown id), `attachment_unavailable` (409: not
    /// the sender's upload to this chat, or already in another message).
    pub async fn send_with_attachments(
        &self,
        sender: &UserId,
        chat_id: &ChatId,
        client_message_id: &ClientMessageId,
        text: Option<&MessageText>,
        attachment_ids: &[crate::ids::AttachmentId],
        origin_connection: Option<ConnectionId>,
    ) -> Result<Sent, ApiError> {
        crate::telemetry::record_chat(chat_id);
        let refs = crate::attachments::prepare_for_send(
            &self.store,
            self.attachments.as_ref(),
            sender,
            chat_id,
            attachment_ids,
        )
        .await?;
        let text = text.map(|t| t.as_str().to_owned()).unwrap_or_default();
        let appended = self
            .store
            .append_message(
                None,
                chat_id,
                sender,
                client_message_id,
                text,
                refs,
                now_millis(),
            )
            .await
            .map_err(ApiError::from)?;
        if !appended.duplicate {
            crate::metrics::count("MessagesSent", 1);
            if let Some(service) = &self.attachments {
                service
                    .request_thumbnails(chat_id, &appended.message.attachments)
                    .await;
            }
        }
        Ok(Sent {
            message: appended.message,
            chat: appended.chat,
            duplicate: appended.duplicate,
            fan_out_pending: appended.fan_out_pending,
            client_message_id: client_message_id.clone(),
            origin: origin_connection,
        })
    }

    /// Deliver a sent message: `message` (or `messageRef` when over 128 KB) to every
    /// connection of every member, the sender's other devices included, the origin
    /// connection excluded; then one offline event per member (never the sender, not
    /// muted members) that no connection accepted the post for; then the send's
    /// fan-out is marked done ([`Store::fan_out_done`]). A duplicate does nothing,
    /// unless the first attempt never finished its fan-out (see
    /// [`Sent::fan_out_pending`]): then this delivers it. An error means the members
    /// could not be read or offline events could not be published (deliveries may
    /// have happened); the fan-out stays pending, so a retry of the send delivers.
    pub async fn fan_out(&self, sent: &Sent) -> Result<FanOutReport, ApiError> {
        if !sent.fan_out_pending {
            return Ok(FanOutReport::default());
        }
        if sent.duplicate {
            crate::metrics::count("FanOutsResumed", 1);
            tracing::info!(
                chat = %sent.message.chat_id,
                position = sent.message.position,
                "a retried send resumes the fan-out its first attempt did not finish"
            );
        }
        let m = &sent.message;
        let members = self
            .store
            .list_members(&m.chat_id)
            .await
            .map_err(ApiError::from)?;
        let (delivery, as_ref) = self.deliver_live(sent, &members).await?;
        let offline = self.publish_offline(sent, &members, &delivery).await?;
        self.mark_fan_out_done(sent).await;
        let totals = delivery.totals();
        tracing::info!(
            chat = %m.chat_id,
            position = m.position,
            members = members.len(),
            attempted = totals.attempted,
            delivered = totals.delivered,
            gone = totals.gone,
            failed = totals.failed,
            offline = offline.len(),
            "fan-out done"
        );
        Ok(FanOutReport {
            delivery,
            offline,
            as_ref,
        })
    }

    /// Fan-out, step 1: post the message (`message`, or `messageRef` when it does not
    /// fit a frame) to every live connection of `members` but the one it came in on.
    /// Returns what each post did, and whether it went out as a `messageRef`.
    async fn deliver_live(
        &self,
        sent: &Sent,
        members: &[Membership],
    ) -> Result<(DeliveryReport, bool), ApiError> {
        let users: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
        let targets = self
            .connections_of(&users, sent.origin.as_ref(), None)
            .await?;
        let event = ServerEvent::for_message(&sent.message);
        let as_ref = matches!(event, ServerEvent::MessageRef(_));
        crate::metrics::sample(
            "FanOutSize",
            crate::metrics::Unit::Count,
            targets.len() as f64,
        );
        Ok((
            self.poster.post_all(&targets, &event.to_json()).await,
            as_ref,
        ))
    }

    /// Fan-out, step 2: one offline event per member that no connection accepted the
    /// post for (never the sender, never a member who muted the chat), published to
    /// the offline topic for `push-notifier`. Returns those members.
    async fn publish_offline(
        &self,
        sent: &Sent,
        members: &[Membership],
        delivery: &DeliveryReport,
    ) -> Result<Vec<UserId>, ApiError> {
        let m = &sent.message;
        let offline: Vec<&Membership> = members
            .iter()
            .filter(|mb| Some(&mb.user_id) != m.sender_id.as_ref())
            .filter(|mb| !mb.muted)
            .filter(|mb| !delivery.reached(&mb.user_id))
            .collect();
        let offline_ids: Vec<UserId> = offline.iter().map(|mb| mb.user_id.clone()).collect();
        let Some(sender) = m.sender_id.as_ref() else {
            return Ok(offline_ids);
        };
        if offline.is_empty() {
            return Ok(offline_ids);
        }
        let sender_name = self
            .store
            .get_profiles(std::slice::from_ref(sender))
            .await
            .map_err(ApiError::from)?
            .remove(sender)
            .map(|p| p.display_name)
            .unwrap_or_default();
        let events: Vec<OfflineMessageEvent> = offline
            .iter()
            .map(|mb| OfflineMessageEvent {
                kind: OfflineMessageEvent::KIND.to_owned(),
                version: PROTOCOL_VERSION,
                recipient_id: mb.user_id.clone(),
                chat_id: m.chat_id.clone(),
                chat_kind: sent.chat.kind,
                chat_name: sent.chat.name.clone(),
                message_id: m.message_id.clone(),
                position: m.position,
                sender_id: sender.clone(),
                sender_display_name: sender_name.clone(),
                preview: crate::input::preview(
                    &crate::attachments::preview_text(&m.text, &m.attachments),
                    PREVIEW_CHARS,
                ),
                sent_at: m.sent_at,
            })
            .collect();
        match self.offline.publish(&events).await {
            Ok(n) => crate::metrics::count("OfflineEvents", n as u64),
            Err(e) => {
                // Logged once, by the edge that handles the error (its message says
                // how many failed and why).
                crate::metrics::count("OfflineEvents", (e.total - e.failed) as u64);
                crate::metrics::count("OfflineEventsFailed", e.failed as u64);
                return Err(ApiError::Unavailable(Box::new(e)));
            }
        }
        Ok(offline_ids)
    }

    /// Fan-out, step 3: mark the send's fan-out done ([`Store::fan_out_done`]), so a
    /// retry of the send does not deliver it again. A failure is logged: it only costs
    /// a second delivery if the send is retried.
    async fn mark_fan_out_done(&self, sent: &Sent) {
        let m = &sent.message;
        let Some(sender) = m.sender_id.as_ref() else {
            return;
        };
        if let Err(e) = self
            .store
            .fan_out_done(&m.chat_id, sender, &sent.client_message_id)
            .await
        {
            crate::metrics::store_error(&e);
            tracing::warn!(error = %e, "could not mark the fan-out done");
        }
    }

    /// `user` has everything up to `position` of `chat_id` on a device. Moves the
    /// delivered position forward only; when it moved, the other members get a
    /// `delivered` receipt. `validation_failed` (field `position`) beyond the chat's
    /// last position; `not_found` for non-members.
    pub async fn acknowledge_delivered(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        position: u64,
    ) -> Result<ReceiptOutcome, ApiError> {
        self.receipt(user, chat_id, position, ReceiptKind::Delivered, None)
            .await
    }

    /// `user` read everything up to `position` of `chat_id`. Moves the read (and
    /// delivered) position forward only; when it moved, every member's connections
    /// get a `read` receipt (the user's own other devices too, to clear their unread
    /// state; not `origin`). Errors as for [`Self::acknowledge_delivered`].
    pub async fn mark_read(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        position: u64,
        origin: Option<&ConnectionId>,
    ) -> Result<ReceiptOutcome, ApiError> {
        self.receipt(user, chat_id, position, ReceiptKind::Read, origin)
            .await
    }

    /// A receipt in two sequential DynamoDB round trips: the chat (`GetItem`, for the
    /// position check) together with its members (`Query`: the caller's member item
    /// and the receipt's recipients), then the one conditional member update
    /// ([`Store::advance_receipt`]) together with the recipients' presence
    /// (`BatchGetItem`). A receipt that moves nothing writes nothing and reads no
    /// presence.
    async fn receipt(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        position: u64,
        kind: ReceiptKind,
        origin: Option<&ConnectionId>,
    ) -> Result<ReceiptOutcome, ApiError> {
        crate::telemetry::record_chat(chat_id);
        let (chat, members) = tokio::try_join!(
            self.store.get_chat(chat_id, true),
            self.store.list_members(chat_id)
        )
        .map_err(ApiError::from)?;
        let me = members.iter().find(|m| &m.user_id == user);
        let (Some(chat), Some(me)) = (chat, me) else {
            return Err(ApiError::from(StoreError::NotFound("chat")));
        };
        if position > chat.last_position {
            return Err(ApiError::Validation(InvalidInput::new(
                "position",
                format!(
                    "is beyond the chat's last position ({})",
                    chat.last_position
                ),
            )));
        }
        let behind = match kind {
            ReceiptKind::Delivered => me.delivered_position < position,
            ReceiptKind::Read => me.read_position < position,
        };
        if !behind {
            return Ok(ReceiptOutcome { moved: false });
        }
        // A delivered receipt goes to the other members; a read receipt to every
        // member's connections but the one it came from.
        let except_user = (kind == ReceiptKind::Delivered).then_some(user);
        let users: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
        let (moved, targets) = tokio::join!(
            self.store.advance_receipt(me, kind, position),
            self.connections_of(&users, origin, except_user)
        );
        let moved = moved.map_err(ApiError::from)?;
        if moved {
            let receipt = Receipt {
                chat_id: chat_id.clone(),
                user_id: user.clone(),
                position,
            };
            let ev = match kind {
                ReceiptKind::Delivered => {
                    crate::metrics::count("ReceiptsDelivered", 1);
                    ServerEvent::Delivered(receipt)
                }
                ReceiptKind::Read => {
                    crate::metrics::count("ReceiptsRead", 1);
                    ServerEvent::Read(receipt)
                }
            };
            self.poster.post_all(&targets?, &ev.to_json()).await;
        }
        Ok(ReceiptOutcome { moved })
    }

    /// Tell the chat about a membership change: its system message as a `message`
    /// event, then a `membership` event, to every connection of every current member
    /// and of `affected_users` (e.g. the member who was removed or left, who thereby
    /// learns they lost access).
    pub async fn announce_membership(
        &self,
        change: &MembershipChange,
        affected_users: &[UserId],
    ) -> Result<DeliveryReport, ApiError> {
        let chat_id = &change.chat.chat_id;
        let members = self
            .store
            .list_members(chat_id)
            .await
            .map_err(ApiError::from)?;
        let mut users: Vec<UserId> = members.into_iter().map(|m| m.user_id).collect();
        users.extend(affected_users.iter().cloned());
        users.sort();
        users.dedup();
        let targets = self.connections_of(&users, None, None).await?;
        let message = ServerEvent::for_message(&change.message);
        self.poster.post_all(&targets, &message.to_json()).await;
        let event = ServerEvent::Membership(MembershipEvent {
            chat_id: chat_id.clone(),
            position: change.message.position,
            change: change.message.system.clone().ok_or_else(|| {
                ApiError::Internal("membership change without a system event".into())
            })?,
            chat: change.chat.clone(),
            promoted: change.promoted.clone(),
        });
        Ok(self.poster.post_all(&targets, &event.to_json()).await)
    }

    /// `user` started or stopped typing in `chat_id`: a `typing` event to the other
    /// members' connections. Not stored. `not_found` for non-members.
    pub async fn typing(
        &self,
        user: &UserId,
        chat_id: &ChatId,
        state: TypingState,
        origin: Option<&ConnectionId>,
    ) -> Result<DeliveryReport, ApiError> {
        let members = self
            .store
            .list_members(chat_id)
            .await
            .map_err(ApiError::from)?;
        if !members.iter().any(|m| &m.user_id == user) {
            return Err(ApiError::not_found("chat"));
        }
        let users: Vec<UserId> = members
            .into_iter()
            .map(|m| m.user_id)
            .filter(|u| u != user)
            .collect();
        let targets = self.connections_of(&users, origin, None).await?;
        let ev = ServerEvent::Typing(TypingEvent {
            chat_id: chat_id.clone(),
            user_id: user.clone(),
            state,
        });
        Ok(self.poster.post_all(&targets, &ev.to_json()).await)
    }

    /// `user` came online or went offline: a `presence` event to the connections of
    /// their direct-chat partners who are online ([`Self::presence_targets`], then
    /// [`Self::post_presence`]).
    pub async fn announce_presence(
        &self,
        user: &UserId,
        online: bool,
        last_seen_at: Option<Millis>,
    ) -> Result<DeliveryReport, ApiError> {
        let targets = self.presence_targets(user).await?;
        Ok(self
            .post_presence(user, &targets, online, last_seen_at)
            .await)
    }

    /// Send `event` to the connections of a chat's members, except `origin` and
    /// `except_user`'s connections (edits and deletions; receipts read the members
    /// first and the presence alongside their write, see [`Self::receipt`]).
    pub(crate) async fn to_members(
        &self,
        chat_id: &ChatId,
        event: &ServerEvent,
        origin: Option<&ConnectionId>,
        except_user: Option<&UserId>,
    ) -> Result<DeliveryReport, ApiError> {
        let members = self
            .store
            .list_members(chat_id)
            .await
            .map_err(ApiError::from)?;
        let users: Vec<UserId> = members.into_iter().map(|m| m.user_id).collect();
        let targets = self.connections_of(&users, origin, except_user).await?;
        Ok(self.poster.post_all(&targets, &event.to_json()).await)
    }

    /// The live connections of `users` (one presence BatchGet per 100 users).
    async fn connections_of(
        &self,
        users: &[UserId],
        origin: Option<&ConnectionId>,
        except_user: Option<&UserId>,
    ) -> Result<Vec<Target>, ApiError> {
        let presence = self
            .store
            .presence_of(users, now_millis())
            .await
            .map_err(ApiError::from)?;
        let mut targets = Vec::new();
        for (user, p) in presence {
            if Some(&user) == except_user {
                continue;
            }
            for c in p.connections {
                if Some(&c) != origin {
                    targets.push(Target {
                        user: user.clone(),
                        connection: c,
                    });
                }
            }
        }
        Ok(targets)
    }

    /// Catch-up after a reconnect. For each chat of `user`: the messages after the
    /// position the client gave in `known` (ascending, gap-free, at most `limit` per
    /// chat per page), and every chat the client did not list (`known: false`, from
    /// position 0). Chats the client listed but may no longer see are in `removed`.
    /// A page holds at most `max_bytes` of chats and messages ([`WS_SYNC_MAX_BYTES`]
    /// over the WebSocket); a message too large for a page comes as a `MessageRef`.
    /// When more is left, `cursor` is set: call again with it (and `known` ignored).
    pub async fn sync(
        &self,
        user: &UserId,
        known: &[KnownPosition],
        limit: u32,
        cursor: Option<&str>,
        max_bytes: usize,
    ) -> Result<SyncResult, ApiError> {
        let memberships: HashMap<ChatId, Membership> = self
            .store
            .list_user_memberships(user)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|m| (m.chat_id.clone(), m))
            .collect();
        let continuation = cursor.map(SyncContinuation::decode).transpose()?;
        let member_of: BTreeSet<ChatId> = memberships.keys().cloned().collect();
        let SyncPlan {
            chats: plan,
            mut removed,
        } = plan_sync(&member_of, known, continuation);
        let ids: Vec<ChatId> = plan.iter().map(|p| p.chat_id.clone()).collect();
        let chats = self.store.get_chats(&ids).await.map_err(ApiError::from)?;
        let mut packer = SyncPacker::new(max_bytes);
        for planned in plan {
            let Some(chat) = chats.get(&planned.chat_id) else {
                if planned.known {
                    removed.push(planned.chat_id);
                }
                continue;
            };
            let Some(member) = memberships.get(&planned.chat_id) else {
                continue;
            };
            let Some(mut entry) = packer.start(&planned, chat, member) else {
                continue;
            };
            // Changes first: the log, then the messages it names, both read strongly
            // consistent, so each named message is at least that new (see
            // docs/data-model.md, "Change sequence").
            let changes_left = if planned.known && chat.change_seq > planned.change_seq {
                let log = self
                    .store
                    .changes_after(&planned.chat_id, planned.change_seq, limit)
                    .await
                    .map_err(ApiError::from)?;
                let positions: Vec<u64> = log
                    .entries
                    .iter()
                    .map(|e| e.position)
                    .filter(|p| *p <= planned.position)
                    .collect();
                let current = if positions.is_empty() {
                    Vec::new()
                } else {
                    self.store
                        .messages_at(&planned.chat_id, &positions)
                        .await
                        .map_err(ApiError::from)?
                };
                packer.add_changes(&mut entry, planned.position, &log, current)
            } else {
                false
            };
            let messages = if chat.last_position > planned.position {
                self.store
                    .messages_after(&planned.chat_id, planned.position, limit)
                    .await
                    .map_err(ApiError::from)?
                    .messages
            } else {
                Vec::new()
            };
            packer.add_with_changes(entry, planned.position, messages, changes_left);
        }
        let (out, pending) = packer.finish();
        let cursor = if pending.is_empty() {
            None
        } else {
            Some(SyncContinuation::new(pending).encode())
        };
        Ok(SyncResult {
            chats: out,
            removed,
            cursor,
        })
    }
}

/// Which chats a sync page covers and from which position ([`plan_sync`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPlan {
    /// In chat id order: each chat of the caller to look at, the position the client
    /// has and whether the client listed it.
    pub chats: Vec<PendingChat>,
    /// Chats the client listed that the caller is no longer a member of (sorted).
    pub removed: Vec<ChatId>,
}

/// The sync page planner, pure (no DynamoDB): from the chats the caller is a member
/// of, the positions the client sent (`known`) and, when this page continues a sync,
/// its continuation (then `known` is ignored, and only chats still the caller's are
/// kept). Without a continuation every membership is planned: from the client's
/// position when it listed the chat (`known: true`), else from 0 (`known: false`);
/// listed chats the caller is no longer a member of are `removed`.
pub fn plan_sync(
    member_of: &BTreeSet<ChatId>,
    known: &[KnownPosition],
    continuation: Option<SyncContinuation>,
) -> SyncPlan {
    let mut removed = Vec::new();
    let mut chats: Vec<PendingChat> = match continuation {
        Some(c) => c
            .pending
            .into_iter()
            .filter(|p| member_of.contains(&p.chat_id))
            .collect(),
        None => {
            let given: HashMap<&ChatId, (u64, u64)> = known
                .iter()
                .map(|k| (&k.chat_id, (k.position, k.change_seq.unwrap_or(0))))
                .collect();
            removed.extend(
                known
                    .iter()
                    .filter(|k| !member_of.contains(&k.chat_id))
                    .map(|k| k.chat_id.clone()),
            );
            member_of
                .iter()
                .map(|c| {
                    let (position, change_seq) = given.get(c).copied().unwrap_or((0, 0));
                    PendingChat {
                        chat_id: c.clone(),
                        position,
                        known: given.contains_key(c),
                        change_seq,
                    }
                })
                .collect()
        }
    };
    removed.sort();
    removed.dedup();
    chats.sort_by(|a, b| a.chat_id.cmp(&b.chat_id));
    SyncPlan { chats, removed }
}

/// The sync page packer, pure (no DynamoDB): fills a page of at most `max_bytes` of
/// chats and messages, chat by chat in plan order. [`SyncPacker::start`] says whether
/// a planned chat goes on this page at all; the caller then fetches its messages after
/// the planned position and hands them to [`SyncPacker::add`], which keeps what fits
/// (a message too large for a page as a `MessageRef`) and leaves the rest, with the
/// chats that did not fit, pending for the next page.
#[derive(Debug)]
pub struct SyncPacker {
    inline_max: usize,
    remaining: usize,
    out: Vec<SyncChat>,
    pending: Vec<PendingChat>,
    seen: HashSet<ChatId>,
}

impl SyncPacker {
    pub fn new(max_bytes: usize) -> Self {
        SyncPacker {
            inline_max: max_bytes.saturating_sub(8 * 1024),
            remaining: max_bytes,
            out: Vec::new(),
            pending: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// The page's entry for `planned`, with no messages yet; `None` when the chat is
    /// not on this page: a group whose creation has not committed, a listed chat with
    /// nothing new, a chat already on the page, or one that does not fit (then it is
    /// pending).
    pub fn start(
        &mut self,
        planned: &PendingChat,
        chat: &Chat,
        member: &Membership,
    ) -> Option<SyncChat> {
        // A group whose creation has not committed yet is invisible.
        if chat.kind == ChatKind::Group && chat.last_position == 0 {
            return None;
        }
        let changes_due = planned.known && chat.change_seq > planned.change_seq;
        if planned.known && chat.last_position <= planned.position && !changes_due {
            return None;
        }
        if !self.seen.insert(planned.chat_id.clone()) {
            return None;
        }
        let entry = SyncChat {
            chat_id: planned.chat_id.clone(),
            known: planned.known,
            chat: chat.clone(),
            read_position: member.read_position,
            delivered_position: member.delivered_position,
            messages: Vec::new(),
            refs: Vec::new(),
            // A chat new to the client comes as it is now: no changes to catch up.
            changed: Vec::new(),
            change_seq: if planned.known {
                planned.change_seq
            } else {
                chat.change_seq
            },
            has_more: false,
        };
        let base = json_len(&entry);
        if base > self.remaining && !self.out.is_empty() {
            self.pending.push(planned.clone());
            return None;
        }
        self.remaining = self.remaining.saturating_sub(base);
        Some(entry)
    }

    /// Put `entry` on the page with what fits of `messages` (those after `position`,
    /// ascending); when the chat has more, it is pending from the last one kept.
    pub fn add(&mut self, entry: SyncChat, position: u64, messages: Vec<Message>) {
        self.add_with_changes(entry, position, messages, false)
    }

    /// Put on `entry` what fits of the changes in `log` (entries after the client's
    /// change sequence, ascending) to messages up to `position`, `current` holding
    /// those messages as they are now; returns whether changes are left for the next
    /// page. Call before [`SyncPacker::add_with_changes`].
    pub fn add_changes(
        &mut self,
        entry: &mut SyncChat,
        position: u64,
        log: &LogPage,
        current: Vec<Message>,
    ) -> bool {
        let mut by_position: HashMap<u64, Message> =
            current.into_iter().map(|m| (m.position, m)).collect();
        let mut sent: HashSet<u64> = HashSet::new();
        for e in &log.entries {
            if e.position > position || sent.contains(&e.position) {
                // After the client's position the message itself comes, as it is now.
                entry.change_seq = e.seq;
                continue;
            }
            let Some(m) = by_position.remove(&e.position) else {
                entry.change_seq = e.seq;
                continue;
            };
            let size = json_len(&m);
            let (size, as_ref) = if size <= self.inline_max {
                (size, false)
            } else {
                (json_len(&MessageRef::of(&m)), true)
            };
            let page_empty =
                self.out.is_empty() && entry.changed.is_empty() && entry.refs.is_empty();
            if size > self.remaining && !page_empty {
                return true;
            }
            self.remaining = self.remaining.saturating_sub(size);
            sent.insert(m.position);
            entry.change_seq = e.seq;
            if as_ref {
                entry.refs.push(MessageRef::of(&m));
            } else {
                entry.changed.push(m);
            }
        }
        entry.changed.sort_by_key(|m| m.position);
        log.has_more
    }

    /// [`SyncPacker::add`], and `changes_left`: changes of this chat did not all fit
    /// ([`SyncPacker::add_changes`]), so it is pending even when its messages fit.
    pub fn add_with_changes(
        &mut self,
        mut entry: SyncChat,
        position: u64,
        messages: Vec<Message>,
        changes_left: bool,
    ) {
        let mut reached = position;
        for m in messages {
            let size = json_len(&m);
            let (size, as_ref) = if size <= self.inline_max {
                (size, false)
            } else {
                (json_len(&MessageRef::of(&m)), true)
            };
            let page_empty =
                self.out.is_empty() && entry.messages.is_empty() && entry.refs.is_empty();
            if size > self.remaining && !page_empty {
                break;
            }
            self.remaining = self.remaining.saturating_sub(size);
            reached = m.position;
            if as_ref {
                entry.refs.push(MessageRef::of(&m));
            } else {
                entry.messages.push(m);
            }
        }
        if entry.chat.last_position > reached || changes_left {
            entry.has_more = true;
            self.pending.push(PendingChat {
                chat_id: entry.chat_id.clone(),
                position: reached,
                known: true,
                change_seq: entry.change_seq,
            });
        }
        self.out.push(entry);
    }

    /// The page's chats and what is left for the next page.
    pub fn finish(self) -> (Vec<SyncChat>, Vec<PendingChat>) {
        (self.out, self.pending)
    }
}

fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v)
        .map(|b| b.len())
        .unwrap_or(usize::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::Conflict;
    use proptest::prelude::*;

    fn chat(n: u8) -> ChatId {
        ChatId::from_bits(true, u128::from(n) + 1)
    }

    proptest! {
        /// A first page plans every membership once, in chat id order, from the
        /// client's position when it listed the chat and from 0 otherwise; listed chats
        /// that are no longer the caller's are removed, each once.
        #[test]
        fn sync_plans_every_membership_once(
            members in prop::collection::btree_set(0u8..40, 0..20),
            listed in prop::collection::vec((0u8..40, any::<u64>()), 0..30),
        ) {
            let member_of: BTreeSet<ChatId> = members.iter().map(|n| chat(*n)).collect();
            let known: Vec<KnownPosition> = listed
                .iter()
                .map(|(n, p)| KnownPosition { chat_id: chat(*n), position: *p, change_seq: None })
                .collect();
            let plan = plan_sync(&member_of, &known, None);
            let planned: Vec<ChatId> = plan.chats.iter().map(|p| p.chat_id.clone()).collect();
            prop_assert_eq!(planned, member_of.iter().cloned().collect::<Vec<_>>());
            for p in &plan.chats {
                // The last position the client gave for the chat wins (as a map would).
                let given = known.iter().rev().find(|k| k.chat_id == p.chat_id);
                prop_assert_eq!(p.known, given.is_some());
                prop_assert_eq!(p.position, given.map_or(0, |k| k.position));
            }
            let mut expected: Vec<ChatId> = known
                .iter()
                .filter(|k| !member_of.contains(&k.chat_id))
                .map(|k| k.chat_id.clone())
                .collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(plan.removed, expected);
        }

        /// A continued page keeps the continuation's chats that are still the
        /// caller's, as they were, and ignores `known`.
        #[test]
        fn sync_continues_only_chats_still_the_callers(
            members in prop::collection::btree_set(0u8..40, 0..20),
            pending in prop::collection::btree_map(0u8..40, (any::<u64>(), any::<bool>()), 0..20),
        ) {
            let member_of: BTreeSet<ChatId> = members.iter().map(|n| chat(*n)).collect();
            let c = SyncContinuation::new(
                pending
                    .iter()
                    .map(|(n, (p, k))| PendingChat { chat_id: chat(*n), position: *p, known: *k, change_seq: 0 })
                    .collect(),
            );
            let stray = [KnownPosition { chat_id: chat(99), position: 1, change_seq: None }];
            let plan = plan_sync(&member_of, &stray, Some(c.clone()));
            let expected: Vec<PendingChat> = c
                .pending
                .into_iter()
                .filter(|p| member_of.contains(&p.chat_id))
                .collect();
            prop_assert_eq!(plan.chats, expected);
            prop_assert!(plan.removed.is_empty());
        }
    }

    /// A chat at `last` with the caller's membership, and its messages after
    /// `position` with texts of `sizes` characters.
    fn packable(
        n: u8,
        last: u64,
        position: u64,
        sizes: &[usize],
    ) -> (Chat, Membership, Vec<Message>) {
        let user = UserId::generate();
        let record = Chat {
            chat_id: chat(n),
            kind: ChatKind::Direct,
            name: None,
            created_by: user.clone(),
            created_at: 0,
            member_count: 2,
            last_position: last,
            last_message: None,
            last_activity_at: 0,
            change_seq: 0,
        };
        let member = Membership {
            chat_id: chat(n),
            user_id: user.clone(),
            role: crate::model::Role::Member,
            joined_at: 0,
            delivered_position: 0,
            read_position: 0,
            muted: false,
            blocked_by_peer: false,
            blocks_peer: false,
        };
        let messages = (position + 1..=last)
            .zip(sizes.iter().cycle())
            .map(|(p, size)| Message {
                chat_id: chat(n),
                message_id: crate::ids::MessageId::generate(),
                position: p,
                kind: crate::model::MessageKind::Text,
                sender_id: Some(user.clone()),
                client_message_id: None,
                text: "x".repeat(*size),
                system: None,
                sent_at: 0,
                deleted: false,
                edited_at: None,
                edit_count: 0,
                attachments: Vec::new(),
            })
            .collect();
        (record, member, messages)
    }

    proptest! {
        /// A packed page stays within its byte budget (only a page's first chat and
        /// first message may exceed it alone), keeps each chat's messages gap-free from
        /// the planned position, never inlines a message over the inline limit, and
        /// leaves pending exactly the chats with more to send, from where the page
        /// stopped.
        #[test]
        fn sync_pages_fit_and_continue_where_they_stop(
            max_bytes in 300usize..30_000,
            planned in prop::collection::btree_map(
                0u8..40,
                (0u64..8, 0u64..8, any::<bool>(), prop::collection::vec(0usize..12_000, 1..4)),
                0..8,
            ),
        ) {
            let mut packer = SyncPacker::new(max_bytes);
            let inline_max = max_bytes.saturating_sub(8 * 1024);
            let mut expected_pending = Vec::new();
            let mut budget = 0usize;
            let mut from_of = HashMap::new();
            for (n, (last, position, known, sizes)) in &planned {
                let position = if *known { *position } else { 0 };
                from_of.insert(chat(*n), position);
                let (chat_rec, member, messages) = packable(*n, *last, position, sizes);
                let plan = PendingChat { chat_id: chat(*n), position, known: *known, change_seq: 0 };
                let Some(entry) = packer.start(&plan, &chat_rec, &member) else {
                    if !(*known && *last <= position) {
                        expected_pending.push(plan);
                    }
                    continue;
                };
                budget += json_len(&entry);
                packer.add(entry, position, messages);
            }
            let (out, pending) = packer.finish();
            let mut used = budget;
            for entry in &out {
                used += entry.messages.iter().map(json_len).sum::<usize>();
                used += entry.refs.iter().map(json_len).sum::<usize>();
                prop_assert!(entry.messages.iter().all(|m| json_len(m) <= inline_max));
                let mut positions: Vec<u64> = entry
                    .messages
                    .iter()
                    .map(|m| m.position)
                    .chain(entry.refs.iter().map(|r| r.position))
                    .collect();
                positions.sort();
                let from = from_of[&entry.chat_id];
                let reached = positions.last().copied().unwrap_or(from);
                prop_assert_eq!(positions, (from + 1..=reached).collect::<Vec<_>>());
                prop_assert_eq!(entry.has_more, entry.chat.last_position > reached);
                if entry.has_more {
                    expected_pending.push(PendingChat {
                        chat_id: entry.chat_id.clone(),
                        position: reached,
                        known: true,
                        change_seq: 0,
                    });
                }
            }
            if used > max_bytes {
                prop_assert_eq!(out.len(), 1);
                prop_assert!(out[0].messages.len() + out[0].refs.len() <= 1);
            }
            let key = |p: &PendingChat| (p.chat_id.clone(), p.position, p.known);
            let mut got: Vec<_> = pending.iter().map(key).collect();
            let mut want: Vec<_> = expected_pending.iter().map(key).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn store_errors_map_to_client_codes() {
        assert_eq!(ApiError::from(StoreError::NotMember).code(), "not_found");
        assert_eq!(
            ApiError::from(StoreError::NotFound("chat")).code(),
            "not_found"
        );
        assert_eq!(
            ApiError::from(StoreError::Conflict(Conflict::GroupFull)).code(),
            "group_full"
        );
        assert_eq!(ApiError::from(StoreError::Contention).code(), "unavailable");
    }
}
