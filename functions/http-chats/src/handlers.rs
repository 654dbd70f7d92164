//! The chat routes, one plain async function each: parse what the client sent into
//! domain types, check that the caller is a member (non-members and removed members
//! get the same 404 as for a chat that does not exist), call the store, shape the
//! answer. No DynamoDB here: every access goes through `chat_core::store::Store`.

use crate::views::{ChatDetail, ChatList, ChatSummary, MemberRemoved, MessagePage, MyMembership};
use chat_core::auth::Authenticated;
use chat_core::cursor::{self, ChatListCursor};
use chat_core::error::ApiError;
use chat_core::http::{self, SMALL_BODY};
use chat_core::ids::{ChatId, ClientRequestId, UserId};
use chat_core::input::{self, GroupName, InvalidInput, MAX_GROUP_MEMBERS};
use chat_core::messaging::ChatServices;
use chat_core::model::{now_millis, Chat, ChatKind, Membership};
use chat_core::store::{GroupCreated, MembershipChange, NewGroup, StoreError};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use std::sync::Arc;

/// Page sizes of `GET /chats`.
pub const CHATS_DEFAULT_LIMIT: u32 = 20;
pub const CHATS_MAX_LIMIT: u32 = 100;
/// Page sizes of `GET /chats/{chatId}/messages`.
pub const MESSAGES_DEFAULT_LIMIT: u32 = 50;
pub const MESSAGES_MAX_LIMIT: u32 = 100;
/// Users one `POST /chats/{chatId}/members` may add (one DynamoDB transaction).
pub const MAX_ADD_PER_REQUEST: usize = MAX_GROUP_MEMBERS - 3;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::Validation(InvalidInput::new(field, reason))
}

fn parse_user(raw: &str, field: &'static str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| invalid(field, e.to_string()))
}

/// A path parameter as API Gateway gave it (`None` when absent).
pub(crate) fn path<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// A query parameter as the client sent it (`Some("")` for `?limit=`).
pub(crate) fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// The path's `chatId`.
pub fn chat_id(req: &Request) -> Result<ChatId, ApiError> {
    ChatId::parse(path(req, "chatId").unwrap_or_default())
        .map_err(|e| invalid("chatId", e.to_string()))
}

/// Users named in a request, each an existing account; `field` names them in errors.
async fn existing_users(
    app: &ChatServices,
    ids: &[UserId],
    field: &'static str,
) -> Result<(), ApiError> {
    let found = app
        .store()
        .get_profiles(ids)
        .await
        .map_err(ApiError::from)?;
    match ids.iter().find(|u| !found.contains_key(*u)) {
        Some(missing) => Err(invalid(field, format!("no such user: {missing}"))),
        None => Ok(()),
    }
}

/// `403 blocked` when any of `users` has blocked `me` (who wants to add them to a
/// group): one BatchGetItem of their block lists.
async fn refuse_blocked(app: &ChatServices, users: &[UserId], me: &UserId) -> Result<(), ApiError> {
    let blocking = app
        .store()
        .who_blocks(users, me)
        .await
        .map_err(ApiError::from)?;
    match blocking.is_empty() {
        true => Ok(()),
        false => Err(StoreError::Conflict(chat_core::store::Conflict::Blocked).into()),
    }
}

/// The chat with every member and their profiles, as the caller sees it.
async fn detail(app: &ChatServices, chat: &Chat, me: &Membership) -> Result<ChatDetail, ApiError> {
    let members = app
        .store()
        .list_members(&chat.chat_id)
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
    let profiles = app
        .store()
        .get_profiles(&ids)
        .await
        .map_err(ApiError::from)?;
    // The caller's own row is the freshest read of their membership.
    let me = members
        .iter()
        .find(|m| m.user_id == me.user_id)
        .cloned()
        .unwrap_or_else(|| me.clone());
    Ok(ChatDetail::new(chat, &me, members, profiles))
}

/// The chat and the caller's membership; 404 for anyone else.
async fn member_of(
    app: &ChatServices,
    me: &Authenticated,
    chat_id: &ChatId,
) -> Result<(Chat, Membership), ApiError> {
    app.store()
        .chat_for_member(chat_id, &me.user_id)
        .await
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CreateChat {
    #[serde(rename_all = "camelCase")]
    Direct { user_id: String },
    #[serde(rename_all = "camelCase")]
    Group {
        name: String,
        #[serde(default)]
        member_ids: Vec<String>,
        /// The idempotency key: a retry with the same id returns the first group.
        #[serde(default)]
        client_request_id: Option<String>,
    },
}

/// `POST /chats`: the direct chat with a user (200 when it already existed, 201 when
/// this call created it), or a new group (201) with the caller as its admin.
pub async fn create_chat(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let body: CreateChat = http::parse_json(&req, SMALL_BODY)?;
    let now = now_millis();
    match body {
        CreateChat::Direct { user_id } => {
            let other = parse_user(&user_id, "userId")?;
            if other == me.user_id {
                return Err(invalid("userId", "a direct chat needs another user"));
            }
            existing_users(&app, std::slice::from_ref(&other), "userId").await?;
            if let Some(refusal) = app
                .store()
                .block_between(&me.user_id, &other)
                .await
                .map_err(ApiError::from)?
            {
                return Err(StoreError::Conflict(refusal).into());
            }
            let (chat, created) = app
                .store()
                .get_or_create_direct(&me.user_id, &other, now)
                .await
                .map_err(ApiError::from)?;
            let (chat, mine) = member_of(&app, &me, &chat.chat_id).await?;
            let view = detail(&app, &chat, &mine).await?;
            Ok(http::json(if created { 201 } else { 200 }, &view))
        }
        CreateChat::Group {
            name,
            member_ids,
            client_request_id,
        } => {
            let name = GroupName::parse(&name)?;
            let request = client_request_id
                .as_deref()
                .map(ClientRequestId::parse)
                .transpose()?;
            let mut members = member_ids
                .iter()
                .map(|raw| parse_user(raw, "memberIds"))
                .collect::<Result<Vec<_>, _>>()?;
            members.retain(|u| *u != me.user_id);
            members.sort();
            members.dedup();
            if members.is_empty() {
                return Err(invalid("memberIds", "name at least one other user"));
            }
            if members.len() > MAX_GROUP_MEMBERS - 1 {
                return Err(invalid(
                    "memberIds",
                    format!("at most {} other members", MAX_GROUP_MEMBERS - 1),
                ));
            }
            existing_users(&app, &members, "memberIds").await?;
            refuse_blocked(&app, &members, &me.user_id).await?;
            let group = NewGroup {
                creator: me.user_id.clone(),
                name,
                members,
            };
            let created = match &request {
                Some(request) => app.store().create_group_once(&group, request, now).await,
                None => match app.store().count_group_created(&me.user_id, now).await {
                    Ok(()) => app
                        .store()
                        .create_group(&group, now)
                        .await
                        .map(|(chat, message)| GroupCreated::New(chat, Box::new(message))),
                    Err(e) => Err(e),
                },
            };
            let (chat, message) = match created.map_err(ApiError::from)? {
                GroupCreated::New(chat, message) => (chat, *message),
                // A retry of a request that created the group: 200, nothing new.
                GroupCreated::Existing(chat) => {
                    let (chat, mine) = member_of(&app, &me, &chat.chat_id).await?;
                    return Ok(http::json(200, &detail(&app, &chat, &mine).await?));
                }
            };
            let change = MembershipChange {
                chat,
                message,
                promoted: None,
            };
            crate::announce::membership(&app, &change, &[]).await;
            let chat = change.chat;
            let mine = app
                .store()
                .get_membership(&chat.chat_id, &me.user_id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::not_found("chat"))?;
            let view = detail(&app, &chat, &mine).await?;
            Ok(http::json(201, &view))
        }
    }
}

/// `GET /chats?limit=&cursor=`: the caller's chats, most recently active first.
pub async fn list_chats(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let limit = input::page_limit(query(&req, "limit"), CHATS_DEFAULT_LIMIT, CHATS_MAX_LIMIT)?;
    let after = query(&req, "cursor")
        .map(|raw| cursor::decode::<ChatListCursor>(raw, "cursor"))
        .transpose()?
        .map(|c| (c.at, c.id));
    let page = app
        .store()
        .list_user_chats(&me.user_id, limit as usize, after.as_ref())
        .await
        .map_err(ApiError::from)?;
    // Direct chats show the other member: one small Query per direct chat on the
    // page (in parallel), then one BatchGet for their profiles.
    let (app, me) = (&*app, &me);
    let peers = futures::future::try_join_all(
        page.chats
            .iter()
            .filter(|(c, _)| c.kind == ChatKind::Direct)
            .map(|(c, _)| async move {
                let members = app.store().list_members(&c.chat_id).await?;
                Ok::<_, StoreError>(
                    members
                        .into_iter()
                        .find(|m| m.user_id != me.user_id)
                        .map(|m| (c.chat_id.clone(), m.user_id)),
                )
            }),
    )
    .await
    .map_err(ApiError::from)?;
    let peers: std::collections::HashMap<ChatId, UserId> = peers.into_iter().flatten().collect();
    let peer_ids: Vec<UserId> = peers.values().cloned().collect();
    let profiles = app
        .store()
        .get_profiles(&peer_ids)
        .await
        .map_err(ApiError::from)?;
    let chats = page
        .chats
        .iter()
        .map(|(chat, m)| {
            let peer = peers
                .get(&chat.chat_id)
                .and_then(|u| profiles.get(u).cloned());
            ChatSummary::new(chat, m, peer)
        })
        .collect();
    let next_cursor = page
        .next
        .map(|(at, id)| cursor::encode(&ChatListCursor { at, id }));
    Ok(http::json(200, &ChatList { chats, next_cursor }))
}

/// `GET /chats/{chatId}`: the chat with its members, their roles and receipt positions.
pub async fn get_chat(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let (chat, mine) = member_of(&app, &me, &chat_id(&req)?).await?;
    Ok(http::json(200, &detail(&app, &chat, &mine).await?))
}

#[derive(Debug, Deserialize)]
pub struct Rename {
    pub name: String,
}

/// `PATCH /chats/{chatId}`: rename a group (admins only).
pub async fn rename_chat(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let body: Rename = http::parse_json(&req, SMALL_BODY)?;
    let name = GroupName::parse(&body.name)?;
    let (_, mine) = member_of(&app, &me, chat_id).await?;
    let change = app
        .store()
        .rename_group(chat_id, &me.user_id, &name, now_millis())
        .await
        .map_err(ApiError::from)?;
    crate::announce::membership(&app, &change, &[]).await;
    Ok(http::json(200, &detail(&app, &change.chat, &mine).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddMembers {
    pub member_ids: Vec<String>,
}

/// `POST /chats/{chatId}/members`: admins add users (the 100-member cap holds under
/// concurrent adds; the store checks it inside the transaction).
pub async fn add_members(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let body: AddMembers = http::parse_json(&req, SMALL_BODY)?;
    let mut users = body
        .member_ids
        .iter()
        .map(|raw| parse_user(raw, "memberIds"))
        .collect::<Result<Vec<_>, _>>()?;
    users.sort();
    users.dedup();
    if users.is_empty() {
        return Err(invalid("memberIds", "name at least one user"));
    }
    if users.len() > MAX_ADD_PER_REQUEST {
        return Err(invalid(
            "memberIds",
            format!("at most {MAX_ADD_PER_REQUEST} users per request"),
        ));
    }
    let (_, mine) = member_of(&app, &me, chat_id).await?;
    existing_users(&app, &users, "memberIds").await?;
    refuse_blocked(&app, &users, &me.user_id).await?;
    let change = app
        .store()
        .add_members(chat_id, &me.user_id, &users, now_millis())
        .await
        .map_err(ApiError::from)?;
    crate::announce::membership(&app, &change, &[]).await;
    Ok(http::json(200, &detail(&app, &change.chat, &mine).await?))
}

/// `DELETE /chats/{chatId}/members/{userId}`: an admin removes a member, or anyone
/// leaves (their own id, or `me`). When the last admin leaves, the longest-standing
/// member becomes admin.
pub async fn remove_member(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let target = match path(&req, "userId").unwrap_or_default() {
        "me" => me.user_id.clone(),
        raw => parse_user(raw, "userId")?,
    };
    member_of(&app, &me, chat_id).await?;
    let change = app
        .store()
        .remove_member(chat_id, &me.user_id, &target, now_millis())
        .await
        .map_err(ApiError::from)?;
    crate::announce::membership(&app, &change, std::slice::from_ref(&target)).await;
    Ok(http::json(
        200,
        &MemberRemoved {
            chat_id: chat_id.clone(),
            left: target == me.user_id,
            user_id: target,
            promoted: change.promoted.clone(),
            message: change.message,
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct MuteBody {
    pub muted: bool,
}

/// `PATCH /chats/{chatId}/members/me`: mute or unmute (no push while muted).
pub async fn set_muted(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let body: MuteBody = http::parse_json(&req, SMALL_BODY)?;
    let m = app
        .store()
        .set_muted(chat_id, &me.user_id, body.muted)
        .await
        .map_err(ApiError::from)?;
    Ok(http::json(200, &MyMembership::from(m)))
}

/// `GET /chats/{chatId}/messages?before=P|after=P&limit=N`: one page of history in
/// ascending position order. Without `before`/`after`: the latest page.
pub async fn list_messages(
    app: Arc<ChatServices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let chat_id = &chat_id(&req)?;
    let limit = input::page_limit(
        query(&req, "limit"),
        MESSAGES_DEFAULT_LIMIT,
        MESSAGES_MAX_LIMIT,
    )?;
    let before = query(&req, "before")
        .map(|b| input::position(b, "before"))
        .transpose()?;
    let after = query(&req, "after")
        .map(|a| input::position(a, "after"))
        .transpose()?;
    if before.is_some() && after.is_some() {
        return Err(invalid("before", "give either before or after, not both"));
    }
    let (chat, _) = member_of(&app, &me, chat_id).await?;
    let page = match after {
        Some(after) => {
            let page = app
                .store()
                .messages_after(chat_id, after, limit)
                .await
                .map_err(ApiError::from)?;
            let last = page.messages.last().map_or(after, |m| m.position);
            MessagePage {
                has_more: last < chat.last_position,
                messages: page.messages,
            }
        }
        None => {
            let before = before.unwrap_or(chat.last_position + 1);
            let page = app
                .store()
                .messages_before(chat_id, before, limit)
                .await
                .map_err(ApiError::from)?;
            let first = page.messages.first().map_or(before, |m| m.position);
            MessagePage {
                has_more: first > 1 && !page.messages.is_empty(),
                messages: page.messages,
            }
        }
    };
    Ok(http::json(200, &page))
}
