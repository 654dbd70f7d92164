//! `http-chats`: the REST chat API behind the HTTP API (payload format 2.0). Chats,
//! groups and members, history pages, REST send, read markers, unread counts and
//! catch-up sync. Every route is [`Router::signed_in`] (the router checks the bearer
//! access token) and is one plain async function: the chat routes in [`handlers`], the
//! ones that share their implementation with the WebSocket in [`live`] and [`edits`],
//! photos and files (presigned uploads and downloads) in [`attachments`]. The state is
//! the [`ChatServices`] the WebSocket uses too. Routes, bodies and errors are
//! documented in `docs/openapi.yaml`.

mod announce;
pub mod attachments;
pub mod edits;
pub mod handlers;
pub mod live;
pub mod views;

use chat_core::config::Env;
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::http::Router;
use chat_core::messaging::ChatServices;
use lambda_runtime::Error;

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move { Ok(router(ChatServices::from_env(&env).await?).into_function()) })
}

/// The routes of this function.
pub fn router(services: ChatServices) -> Router<ChatServices> {
    Router::new(services)
        .signed_in("POST /chats", handlers::create_chat)
        .signed_in("GET /chats", handlers::list_chats)
        .signed_in("GET /chats/{chatId}", handlers::get_chat)
        .signed_in("PATCH /chats/{chatId}", handlers::rename_chat)
        .signed_in("POST /chats/{chatId}/members", handlers::add_members)
        .signed_in(
            "DELETE /chats/{chatId}/members/{userId}",
            handlers::remove_member,
        )
        .signed_in("PATCH /chats/{chatId}/members/me", handlers::set_muted)
        .signed_in("GET /chats/{chatId}/messages", handlers::list_messages)
        .signed_in("POST /chats/{chatId}/messages", live::send_message)
        .signed_in("POST /chats/{chatId}/read", live::mark_read)
        .signed_in("GET /sync", live::sync)
        .signed_in(
            "PATCH /chats/{chatId}/messages/{position}",
            edits::edit_message,
        )
        .signed_in(
            "DELETE /chats/{chatId}/messages/{position}",
            edits::delete_message,
        )
        .signed_in("POST /chats/{chatId}/attachments", attachments::create)
        .signed_in(
            "GET /chats/{chatId}/attachments/{attachmentId}",
            attachments::download,
        )
        .signed_in(
            "GET /chats/{chatId}/attachments/{attachmentId}/thumbnail",
            attachments::thumbnail,
        )
}
