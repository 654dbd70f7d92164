//! `http-chats`: the REST chat API behind the HTTP API (payload format 2.0). Chats,
//! groups and members, history pages, REST send, read markers, unread counts and
//! catch-up sync. Requests are routed on `requestContext.routeKey` (the route the
//! template declares), authenticated with the bearer access token, and handed to one
//! plain async function per route in [`handlers`]. Routes, bodies and errors are
//! documented in `docs/openapi.yaml`.

mod announce;
pub mod cursor;
pub mod handlers;
pub mod live;
pub mod views;

use chat_core::auth::bearer;
use chat_core::config::Env;
use chat_core::error::ApiError;
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::http;
use chat_core::messaging::ChatServices;
use chat_core::store::Store;
use handlers::parse_chat_id;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::Error;
use std::sync::Arc;

/// What every request needs, built once at init: the chat services shared with the
/// WebSocket (store, tokens, delivery to connections, offline topic).
pub struct App {
    pub services: ChatServices,
}

impl App {
    pub async fn from_env(env: &Env) -> Result<Self, Error> {
        Ok(App {
            services: ChatServices::from_env(env).await?,
        })
    }

    pub fn store(&self) -> &Store {
        self.services.store()
    }
}

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let app = Arc::new(App::from_env(&env).await?);
        Ok(chat_core::function::http(move |req: Request| {
            let app = app.clone();
            async move { Ok::<_, Error>(handle(&app, req).await) }
        }))
    })
}

/// One request: route, authenticate, run the handler; every failure becomes the
/// error body with its status.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    match route(app, &req).await {
        Ok(resp) => resp,
        Err(e) => http::error_response(&e),
    }
}

async fn route(app: &App, req: &Request) -> handlers::Reply {
    let key = http::route_key(req).unwrap_or_default().to_owned();
    let me = bearer::authenticate(req, app.services.tokens(), app.store()).await?;
    let path = req.path_parameters();
    let query = req.query_string_parameters();
    let chat_id = || parse_chat_id(path.first("chatId"));
    match key.as_str() {
        "POST /chats" => {
            handlers::create_chat(app, &me, http::parse_json(req, http::SMALL_BODY)?).await
        }
        "GET /chats" => {
            handlers::list_chats(app, &me, query.first("limit"), query.first("cursor")).await
        }
        "GET /chats/{chatId}" => handlers::get_chat(app, &me, &chat_id()?).await,
        "PATCH /chats/{chatId}" => {
            let id = chat_id()?;
            handlers::rename_chat(app, &me, &id, http::parse_json(req, http::SMALL_BODY)?).await
        }
        "POST /chats/{chatId}/members" => {
            let id = chat_id()?;
            handlers::add_members(app, &me, &id, http::parse_json(req, http::SMALL_BODY)?).await
        }
        "DELETE /chats/{chatId}/members/{userId}" => {
            handlers::remove_member(app, &me, &chat_id()?, path.first("userId")).await
        }
        "PATCH /chats/{chatId}/members/me" => {
            let id = chat_id()?;
            handlers::set_muted(app, &me, &id, http::parse_json(req, http::SMALL_BODY)?).await
        }
        "GET /chats/{chatId}/messages" => {
            handlers::list_messages(
                app,
                &me,
                &chat_id()?,
                query.first("before"),
                query.first("after"),
                query.first("limit"),
            )
            .await
        }
        "POST /chats/{chatId}/messages" => {
            let id = chat_id()?;
            live::send_message(app, &me, &id, http::parse_json(req, http::MESSAGE_BODY)?).await
        }
        "POST /chats/{chatId}/read" => {
            let id = chat_id()?;
            live::mark_read(app, &me, &id, http::parse_json(req, http::SMALL_BODY)?).await
        }
        "GET /sync" => live::sync(app, &me, query.first("cursor"), query.first("limit")).await,
        _ => Err(ApiError::NotFound(format!(
            "no route {key:?} in this function"
        ))),
    }
}
