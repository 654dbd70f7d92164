//! `ws-message`: every WebSocket action (`sendMessage`, `ack`, `read`, `typing`,
//! `sync`, `ping`, `authenticate`, `editMessage`,
//! `deleteMessage`) and `$default`. Each frame is parsed by
//! `chat_core::protocol`, counted against the connection's rate limit, its
//! connection's credential checked ([`credential`]: revoked or expired ends the
//! socket), and handed to the shared `ChatServices`. Answers (`messageAck`, `syncResult`, `pong`, `error`) are posted to
//! the connection (the routes have no route responses, so a Lambda's return body
//! would not reach the client in AWS); the function itself always returns 200.
//!
//! `sendMessage` posts `messageAck` to the sender's connection as soon as the message
//! is stored, then fans out within the same invocation. The acknowledgement waits on
//! two sequential DynamoDB round trips: the rate counter together with the chat read,
//! then the append transaction (the write that opens a new rate window runs
//! alongside; `docs/performance.md`, "Work per message"). `AckLatency` (EMF) is the time
//! from API Gateway receiving the frame (`requestContext.requestTimeEpoch`) to the
//! acknowledgement being posted.

use chat_core::config::Env;
use chat_core::error::ApiError;
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::ids::{ConnectionId, UserId};
use chat_core::messaging::{ChatServices, WS_SYNC_MAX_BYTES};
use chat_core::model::{now_millis, Chat};
use chat_core::protocol::{
    parse_frame, ClientAction, FrameError, Pong, ServerEvent, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use chat_core::ws::{self, frame_text, WsEvent, WsResponse};
use lambda_runtime::Error;
use rate::{Counted, Verdict};

pub mod credential;
pub mod rate;

pub use rate::{REQUESTS_PER_WINDOW, TYPING_PER_WINDOW, WINDOW_MS};

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    function::with_state(ChatServices::init(env), |s, event: WsEvent, _| async move {
        Ok(handle(&s, event).await)
    })
}

/// Handle one frame.
pub async fn handle(services: &ChatServices, event: WsEvent) -> WsResponse {
    let Some(conn) = ws::connection_id(&event) else {
        return ws::unknown_connection();
    };
    let now = now_millis();
    // When API Gateway received the frame (falls back to now if absent or skewed).
    let received_at = match event.request_context.request_time_epoch {
        t if t > 0 && t <= now => t,
        _ => now,
    };
    let (parsed, bytes) = match frame_text(&event) {
        Ok(text) => (parse_frame(&text), text.len()),
        Err(e) => (Err(FrameError::from(e)), 0),
    };
    // A send needs its chat: read it while the connection is being counted, so that
    // the acknowledgement waits on two DynamoDB round trips (this pair, then the
    // append), not three. The read is wasted only when the frame is then refused.
    let chat_read = async {
        match &parsed {
            Ok(ClientAction::SendMessage { chat_id, .. }) => services
                .store()
                .get_chat(chat_id, true)
                .await
                .ok()
                .flatten(),
            _ => None,
        }
    };
    let (counted, pre_read) = tokio::join!(Counted::count(services.store(), &conn, now), chat_read);
    let counted = match counted {
        Ok(Some(c)) => c,
        Ok(None) => return ws::unknown_connection(),
        Err(e) => {
            // Nothing was done: tell the client, which retries (a `sendMessage` with
            // the same clientMessageId).
            let e = ApiError::from(e);
            e.log();
            let action = parsed.as_ref().ok();
            let ev = ServerEvent::error(
                &e,
                action.map(|a| a.name()),
                action.and_then(ClientAction::client_message_id),
            );
            services.post_to_connection(&conn, &ev).await;
            return ws::ok();
        }
    };
    let (response, ()) = tokio::join!(
        handle_counted(
            services,
            &conn,
            &counted,
            (parsed, bytes),
            pre_read,
            received_at
        ),
        counted.open_window(services.store())
    );
    response
}

/// The rest of [`handle`] once the frame is counted: refuse what the frame parser or
/// the rate limit refused, else [`dispatch`] the action.
async fn handle_counted(
    services: &ChatServices,
    conn: &ConnectionId,
    counted: &Counted,
    (parsed, bytes): (Result<ClientAction, FrameError>, usize),
    pre_read: Option<Chat>,
    received_at: i64,
) -> WsResponse {
    let user = counted.user().clone();
    chat_core::telemetry::record_user(&user);
    // The credential, from the item the count already read (no extra call): a revoked
    // or expired token ends the socket; only `authenticate` may extend an expired one.
    let is_authenticate = matches!(parsed, Ok(ClientAction::Authenticate { .. }));
    if let Some(refusal) = credential::refusal(counted.connection(), now_millis(), is_authenticate)
    {
        chat_core::telemetry::note_status(401);
        tracing::info!(
            code = refusal.code(),
            "frame on an ended credential; closing"
        );
        chat_core::metrics::count("ConnectionsEnded", 1);
        let action = parsed.as_ref().ok();
        services
            .post_event(
                &user,
                conn,
                &ServerEvent::error(&refusal, action.map(|a| a.name()), None),
            )
            .await;
        services.poster().end_connection(conn).await;
        return ws::ok();
    }
    let action = match parsed {
        Ok(a) => a,
        Err(e) => {
            chat_core::telemetry::note_status(400);
            tracing::info!(code = e.code(), bytes, "frame refused");
            services.post_event(&user, conn, &e.to_event()).await;
            return ws::ok();
        }
    };
    chat_core::telemetry::record_action(action.name());
    match counted.verdict(&action) {
        Verdict::Allow => {}
        Verdict::DropTyping => {
            chat_core::metrics::count("TypingDropped", 1);
            tracing::debug!("typing dropped by the rate limit");
            return ws::ok();
        }
        Verdict::Refuse(e) => {
            e.log();
            services
                .post_event(
                    &user,
                    conn,
                    &ServerEvent::error(&e, Some(action.name()), action.client_message_id()),
                )
                .await;
            return ws::ok();
        }
    }
    dispatch(services, &user, conn, action, pre_read, received_at).await;
    ws::ok()
}

async fn dispatch(
    services: &ChatServices,
    user: &UserId,
    conn: &ConnectionId,
    action: ClientAction,
    pre_read: Option<Chat>,
    received_at: i64,
) {
    let name = action.name();
    let reply = |ev: ServerEvent| async move {
        services.post_event(user, conn, &ev).await;
    };
    let fail = |e: ApiError, cmid: Option<chat_core::ids::ClientMessageId>| async move {
        e.log();
        services
            .post_event(
                user,
                conn,
                &ServerEvent::error(&e, Some(name), cmid.as_ref()),
            )
            .await;
    };
    match action {
        ClientAction::SendMessage {
            chat_id,
            client_message_id,
            text,
        } => {
            match services
                .send_message(
                    user,
                    &chat_id,
                    &client_message_id,
                    &text,
                    Some(conn.clone()),
                    pre_read,
                )
                .await
            {
                Ok(sent) => {
                    let acked = services
                        .post_event(user, conn, &ServerEvent::MessageAck(sent.ack()))
                        .await;
                    if acked == chat_core::delivery::PostOutcome::Delivered {
                        chat_core::metrics::milliseconds(
                            "AckLatency",
                            (now_millis() - received_at) as f64,
                        );
                    }
                    if let Err(e) = services.fan_out(&sent).await {
                        // Already acknowledged: the sender must not retry; the
                        // failure (offline events not published) is logged.
                        e.log();
                    }
                }
                Err(e) => fail(e, Some(client_message_id)).await,
            }
        }
        ClientAction::SendWithAttachments {
            chat_id,
            client_message_id,
            text,
            attachments,
        } => {
            match services
                .send_with_attachments(
                    user,
                    &chat_id,
                    &client_message_id,
                    text.as_ref(),
                    &attachments,
                    Some(conn.clone()),
                )
                .await
            {
                Ok(sent) => {
                    services
                        .post_event(user, conn, &ServerEvent::MessageAck(sent.ack()))
                        .await;
                    if let Err(e) = services.fan_out(&sent).await {
                        // Already acknowledged (as for a text send).
                        e.log();
                    }
                }
                Err(e) => fail(e, Some(client_message_id)).await,
            }
        }
        ClientAction::Ack { chat_id, position } => {
            if let Err(e) = services
                .acknowledge_delivered(user, &chat_id, position)
                .await
            {
                fail(e, None).await;
            }
        }
        ClientAction::Read { chat_id, position } => {
            if let Err(e) = services
                .mark_read(user, &chat_id, position, Some(conn))
                .await
            {
                fail(e, None).await;
            }
        }
        ClientAction::Typing { chat_id, state } => {
            chat_core::telemetry::record_chat(&chat_id);
            if let Err(e) = services.typing(user, &chat_id, state, Some(conn)).await {
                fail(e, None).await;
            }
        }
        ClientAction::Sync {
            chats,
            limit,
            cursor,
        } => match services
            .sync(user, &chats, limit, cursor.as_deref(), WS_SYNC_MAX_BYTES)
            .await
        {
            Ok(result) => {
                let ev = ServerEvent::SyncResult(result);
                debug_assert!(ev.to_json().len() <= MAX_FRAME_BYTES);
                reply(ev).await;
            }
            Err(e) => fail(e, None).await,
        },
        ClientAction::Authenticate { token } => {
            match credential::authenticate(services, user, conn, &token).await {
                Ok(ev) => reply(ev).await,
                Err(e) => fail(e, None).await,
            }
        }
        ClientAction::Ping { id } => {
            reply(ServerEvent::Pong(Pong {
                id,
                server_time: now_millis(),
                protocol_version: PROTOCOL_VERSION,
            }))
            .await;
        }
        // The answer is the `messageEdited` / `messageDeleted` event every member's
        // connections get, this one included.
        ClientAction::EditMessage {
            chat_id,
            position,
            text,
        } => {
            chat_core::telemetry::record_chat(&chat_id);
            if let Err(e) = services.edit_message(user, &chat_id, position, &text).await {
                fail(e, None).await;
            }
        }
        ClientAction::DeleteMessage { chat_id, position } => {
            chat_core::telemetry::record_chat(&chat_id);
            match services.delete_message(user, &chat_id, position).await {
                // Already deleted: nothing was announced; answer with the tombstone.
                Ok(change) if !change.changed => {
                    reply(ServerEvent::MessageDeleted(
                        chat_core::protocol::MessageChanged::new(
                            &change.message,
                            change.chat.change_seq,
                            user,
                        ),
                    ))
                    .await;
                }
                Ok(_) => {}
                Err(e) => fail(e, None).await,
            }
        }
    }
}
