//! WebSocket connections and presence.
//!
//! - `Connections`: key `connectionId`; who is on it, the device label, when it
//!   connected, when it expires (`ttl`: API Gateway's 2-hour maximum plus a margin, so
//!   records whose `$disconnect` was lost disappear), and a fixed-window request
//!   counter for the per-connection rate limit.
//! - `Presence`: key `userId`; `conns` maps each live connection id to its expiry, and
//!   `lastSeenAt` is when the user's last connection closed. Fan-out reads the presence
//!   items of a chat's members with one BatchGetItem (100 keys), so its cost follows
//!   the chat's size, never the number of connected users. A user is online while
//!   `conns` holds an unexpired entry; entries whose post answered 410 are removed.

use super::codec::{b, n, s, Item, Reader};
use super::{ttl_seconds, Conflict, Store, StoreError, StoreResult};
use crate::ids::{ConnectionId, SessionId, UserId};
use crate::model::{Connection, ConnectionCredential, Millis, Presence};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

/// How long after it opened a connection that a post answered 410 for is still
/// presumed to be in its `$connect` (API Gateway's 29-second integration timeout,
/// rounded up): see [`Store::forget_gone_connection`].
pub const CONNECT_GRACE_MS: Millis = 30_000;

fn connection_from(item: &Item, table: &str) -> StoreResult<Connection> {
    let r = Reader::new(item, table);
    Ok(Connection {
        connection_id: r.parsed("connectionId", ConnectionId::parse)?,
        user_id: r.parsed("userId", UserId::parse)?,
        device_label: r.opt_string("deviceLabel")?.unwrap_or_default(),
        connected_at: r.num("connectedAt")?,
        expires_at: r.num("expiresAt")?,
        source_ip: r.opt_string("sourceIp")?.unwrap_or_default(),
        credential: match r.opt_num::<Millis>("tokenExpiresAt")? {
            None => None,
            Some(token_expires_at) => Some(ConnectionCredential {
                session_id: r.opt_parsed("sessionId", SessionId::parse)?,
                token_version: r.num_or("tokenVersion", 0)?,
                token_expires_at,
                revoked: r.bool_or("revoked", false)?,
            }),
        },
    })
}

/// Most live WebSocket connections one user may hold; the next `$connect` is refused
/// (`Conflict::TooManyConnections`). Bounds the fan-out one account can cause and
/// keeps the per-connection rate limit meaningful.
pub const MAX_CONNECTIONS_PER_USER: usize = 10;

/// Until when a connection counts as live in presence (fan-out posts to it): its
/// record's expiry, or its token's when sooner.
fn presence_expiry(c: &Connection) -> Millis {
    match &c.credential {
        Some(cred) => cred.token_expires_at.min(c.expires_at),
        None => c.expires_at,
    }
}

/// A connection as seen by one request on it, with its rate-limit count.
#[derive(Debug, Clone)]
pub struct RateWindow {
    pub connection: Connection,
    /// Requests counted in the current window, this one included.
    pub count: u32,
}

/// The write that opens a new rate-limit window, left to the caller by
/// [`Store::count_request_deferring_reset`].
#[derive(Debug, Clone)]
pub struct WindowReset {
    id: ConnectionId,
    window: i64,
    now: Millis,
}

/// What [`Store::count_request_deferring_reset`] found.
#[derive(Debug, Clone)]
pub enum WindowCount {
    /// The connection is unknown or expired: nothing counted.
    Gone,
    /// Counted in the connection's current window.
    Counted(RateWindow),
    /// The first request of a new window: counted as 1, and the write that opens the
    /// window is still to be made with [`Store::apply_window_reset`].
    NeedsNewWindow(RateWindow, WindowReset),
}

/// What [`Store::apply_window_reset`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOpened {
    /// The new window is open (count 1).
    Opened,
    /// The connection has gone or expired since it was counted: nothing written.
    ConnectionGone,
}

/// A user's presence and live connections, as fan-out needs them.
#[derive(Debug, Clone, Default)]
pub struct UserPresence {
    pub connections: Vec<ConnectionId>,
    pub last_seen_at: Option<Millis>,
}

impl UserPresence {
    pub fn presence(&self) -> Presence {
        Presence {
            online: !self.connections.is_empty(),
            last_seen_at: self.last_seen_at,
        }
    }
}

fn presence_from(item: &Item, table: &str, now: Millis) -> StoreResult<(UserId, UserPresence)> {
    let r = Reader::new(item, table);
    let user = r.parsed("userId", UserId::parse)?;
    let mut connections = Vec::new();
    if let Some(conns) = r.map("conns")? {
        for (id, exp) in conns {
            let live = match exp {
                AttributeValue::N(v) => v.parse::<Millis>().map(|e| e > now).unwrap_or(false),
                _ => false,
            };
            if live {
                if let Ok(cid) = ConnectionId::parse(id) {
                    connections.push(cid);
                }
            }
        }
    }
    connections.sort();
    Ok((
        user,
        UserPresence {
            connections,
            last_seen_at: r.opt_num("lastSeenAt")?,
        },
    ))
}

impl Store {
    /// Record a new connection and add it to the user's presence. Returns whether the
    /// user had no other live connection (came online).
    ///
    /// With a credential, the record is written in one transaction with a check that
    /// the user's token version is still the token's and the account not deleted
    /// (`NotFound("account")` otherwise): a `$connect` racing a log-out-everywhere
    /// either fails here or is written before the bump, where the bump's
    /// Connections-by-user query finds it. More than [`MAX_CONNECTIONS_PER_USER`] live
    /// connections: undone, `Conflict::TooManyConnections`.
    pub async fn put_connection(&self, c: &Connection) -> StoreResult<bool> {
        let mut put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.t.connections)
            .item("connectionId", s(c.connection_id.as_str()))
            .item("userId", s(c.user_id.as_str()))
            .item("deviceLabel", s(&c.device_label))
            .item("connectedAt", n(c.connected_at))
            .item("expiresAt", n(c.expires_at))
            .item("ttl", n(ttl_seconds(c.expires_at)))
            .item("sourceIp", s(&c.source_ip));
        match &c.credential {
            None => {
                let item = put.build().map_err(super::users::build_err)?;
                self.db
                    .put_item()
                    .table_name(&self.t.connections)
                    .set_item(Some(item.item().clone()))
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("PutItem", e))?;
            }
            Some(cred) => {
                put = put
                    .item("tokenVersion", n(cred.token_version))
                    .item("tokenExpiresAt", n(cred.token_expires_at))
                    .item("revoked", b(false));
                if let Some(sid) = &cred.session_id {
                    put = put.item("sessionId", s(sid.as_str()));
                }
                let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                    .table_name(&self.t.users)
                    .key("userId", s(c.user_id.as_str()))
                    .condition_expression(
                        "tokenVersion = :v AND (attribute_not_exists(deleted) OR deleted = :f)",
                    )
                    .expression_attribute_values(":v", n(cred.token_version))
                    .expression_attribute_values(":f", b(false))
                    .build()
                    .map_err(super::users::build_err)?;
                let res = self
                    .db
                    .transact_write_items()
                    .transact_items(
                        aws_sdk_dynamodb::types::TransactWriteItem::builder()
                            .put(put.build().map_err(super::users::build_err)?)
                            .build(),
                    )
                    .transact_items(
                        aws_sdk_dynamodb::types::TransactWriteItem::builder()
                            .condition_check(check)
                            .build(),
                    )
                    .send()
                    .await;
                if let Err(e) = res {
                    return match super::codec::cancelled_conditions(&e) {
                        Some(failed) if failed.get(1) == Some(&true) => {
                            Err(StoreError::NotFound("account"))
                        }
                        _ => Err(StoreError::sdk("TransactWriteItems", e)),
                    };
                }
            }
        }
        let res = self
            .db
            .update_item()
            .table_name(&self.t.presence)
            .key("userId", s(c.user_id.as_str()))
            .update_expression("SET conns.#c = :exp")
            .condition_expression("attribute_exists(conns)")
            .expression_attribute_names("#c", c.connection_id.as_str())
            .expression_attribute_values(":exp", n(presence_expiry(c)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match res {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) if super::codec::is_condition_failed(&e) => {
                // No presence record yet: create it with this connection.
                self.db
                    .put_item()
                    .table_name(&self.t.presence)
                    .item("userId", s(c.user_id.as_str()))
                    .item(
                        "conns",
                        AttributeValue::M(HashMap::from([(
                            c.connection_id.to_string(),
                            n(presence_expiry(c)),
                        )])),
                    )
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk("PutItem", e))?;
                HashMap::new()
            }
            Err(e) => {
                let _ = self.delete_connection_item(&c.connection_id).await;
                return Err(StoreError::sdk("UpdateItem", e));
            }
        };
        if old.is_empty() {
            return Ok(true);
        }
        let (_, before) = presence_from(&old, &self.t.presence, c.connected_at)?;
        let others = before
            .connections
            .iter()
            .filter(|id| *id != &c.connection_id)
            .count();
        if others >= MAX_CONNECTIONS_PER_USER {
            // Undo: the presence entry and the record (the handshake is refused).
            let _ = self
                .db
                .update_item()
                .table_name(&self.t.presence)
                .key("userId", s(c.user_id.as_str()))
                .update_expression("REMOVE conns.#c")
                .expression_attribute_names("#c", c.connection_id.as_str())
                .send()
                .await
                .map_err(|e| StoreError::sdk("UpdateItem", e))?;
            self.delete_connection_item(&c.connection_id).await?;
            return Err(StoreError::Conflict(Conflict::TooManyConnections));
        }
        Ok(others == 0)
    }

    /// The connections of `user` with their sessions (Query on the Connections
    /// `byUser` index, all pages; eventually consistent).
    pub async fn connections_by_user(
        &self,
        user: &UserId,
    ) -> StoreResult<Vec<(ConnectionId, Option<SessionId>)>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.t.connections)
                .index_name("byUser")
                .key_condition_expression("userId = :u")
                .expression_attribute_values(":u", s(user.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in page.items() {
                let r = Reader::new(item, &self.t.connections);
                out.push((
                    r.parsed("connectionId", ConnectionId::parse)?,
                    r.opt_parsed("sessionId", SessionId::parse)?,
                ));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Mark a connection's credential revoked: its next frame is refused and the
    /// socket closed. Nothing happens for an unknown connection.
    pub async fn revoke_connection(&self, id: &ConnectionId) -> StoreResult<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .update_expression("SET revoked = :t")
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":t", b(true))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::codec::is_condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// `authenticate`: the connection of `user` carries a fresh token from now on
    /// (its version, session and expiry), and its presence entry lives until the new
    /// expiry. `NotFound` when the connection is gone, expired, revoked or another
    /// user's.
    pub async fn reauthenticate_connection(
        &self,
        id: &ConnectionId,
        user: &UserId,
        cred: &ConnectionCredential,
        now: Millis,
    ) -> StoreResult<()> {
        let mut req = self
            .db
            .update_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .condition_expression(
                "userId = :u AND expiresAt > :now AND (attribute_not_exists(revoked) OR revoked = :f)",
            )
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":f", b(false))
            .expression_attribute_values(":v", n(cred.token_version))
            .expression_attribute_values(":exp", n(cred.token_expires_at))
            .return_values(ReturnValue::AllNew);
        req = match &cred.session_id {
            Some(sid) => req
                .update_expression("SET tokenVersion = :v, tokenExpiresAt = :exp, sessionId = :sid")
                .expression_attribute_values(":sid", s(sid.as_str())),
            None => req.update_expression("SET tokenVersion = :v, tokenExpiresAt = :exp"),
        };
        let conn = match req.send().await {
            Ok(out) => connection_from(
                &out.attributes().cloned().unwrap_or_default(),
                &self.t.connections,
            )?,
            Err(e) if super::codec::is_condition_failed(&e) => {
                return Err(StoreError::NotFound("connection"))
            }
            Err(e) => return Err(StoreError::sdk("UpdateItem", e)),
        };
        self.db
            .update_item()
            .table_name(&self.t.presence)
            .key("userId", s(user.as_str()))
            .update_expression("SET conns.#c = :exp")
            .condition_expression("attribute_exists(conns)")
            .expression_attribute_names("#c", id.as_str())
            .expression_attribute_values(":exp", n(presence_expiry(&conn)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    async fn delete_connection_item(&self, id: &ConnectionId) -> StoreResult<Option<Connection>> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        out.attributes()
            .filter(|a| !a.is_empty())
            .map(|a| connection_from(a, &self.t.connections))
            .transpose()
    }

    /// Forget a connection (on `$disconnect`, or when a post answered 410). Returns
    /// its user and whether that user has no live connection left (went offline), or
    /// None when the connection was already gone.
    pub async fn remove_connection(
        &self,
        id: &ConnectionId,
        now: Millis,
    ) -> StoreResult<Option<(UserId, bool)>> {
        let Some(conn) = self.delete_connection_item(id).await? else {
            return Ok(None);
        };
        let offline = self.remove_from_presence(&conn.user_id, id, now).await?;
        Ok(Some((conn.user_id, offline)))
    }

    /// Forget a connection whose post answered 410 Gone (its `$disconnect` was lost):
    /// the connection item and its presence entry. Returns whether the user is now
    /// offline.
    pub async fn forget_stale_connection(
        &self,
        user: &UserId,
        id: &ConnectionId,
        now: Millis,
    ) -> StoreResult<bool> {
        let _ = self.delete_connection_item(id).await?;
        self.remove_from_presence(user, id, now).await
    }

    /// Forget a connection a post answered 410 Gone for, unless it opened less than
    /// [`CONNECT_GRACE_MS`] ago: API Gateway answers 410 for a connection whose
    /// `$connect` is still running, and that connection is already in the store and
    /// in presence (`$connect` writes them before it returns). Forgetting it would
    /// leave a live socket that nobody posts to, so a young connection is kept (the
    /// post counts as not delivered; the client syncs after connecting). `Some(offline)`
    /// when it was forgotten, `None` when it was kept.
    pub async fn forget_gone_connection(
        &self,
        user: &UserId,
        id: &ConnectionId,
        now: Millis,
    ) -> StoreResult<Option<bool>> {
        let res = self
            .db
            .delete_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .condition_expression("attribute_not_exists(connectionId) OR connectedAt <= :cutoff")
            .expression_attribute_values(":cutoff", n(now - CONNECT_GRACE_MS))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Some(self.remove_from_presence(user, id, now).await?)),
            Err(e) if super::codec::is_condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk("DeleteItem", e)),
        }
    }

    /// Remove a connection id from a user's presence and record `lastSeenAt`. Returns
    /// whether the user is now offline.
    async fn remove_from_presence(
        &self,
        user: &UserId,
        id: &ConnectionId,
        now: Millis,
    ) -> StoreResult<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.t.presence)
            .key("userId", s(user.as_str()))
            .update_expression("REMOVE conns.#c SET lastSeenAt = :now")
            .condition_expression("attribute_exists(userId)")
            .expression_attribute_names("#c", id.as_str())
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                let (_, p) = presence_from(&item, &self.t.presence, now)?;
                Ok(p.connections.is_empty())
            }
            Err(e) if super::codec::is_condition_failed(&e) => Ok(true),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    pub async fn get_connection(&self, id: &ConnectionId) -> StoreResult<Option<Connection>> {
        let out = self
            .db
            .get_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        out.item()
            .map(|i| connection_from(i, &self.t.connections))
            .transpose()
    }

    /// Count one request on a connection in the fixed window `window` (e.g. the
    /// current 10-second slot number) and return the connection with the count. One
    /// UpdateItem in the common case; a second when a new window starts. None when the
    /// connection is unknown or expired.
    pub async fn count_request(
        &self,
        id: &ConnectionId,
        window: i64,
        now: Millis,
    ) -> StoreResult<Option<RateWindow>> {
        match self.count_request_deferring_reset(id, window, now).await? {
            WindowCount::Gone => Ok(None),
            WindowCount::Counted(w) => Ok(Some(w)),
            WindowCount::NeedsNewWindow(w, reset) => match self.apply_window_reset(&reset).await? {
                WindowOpened::Opened => Ok(Some(w)),
                WindowOpened::ConnectionGone => Ok(None),
            },
        }
    }

    /// [`Self::count_request`] in one round trip: when a new window starts, the
    /// request is the window's first (count 1) and the connection is known from the
    /// failed conditional update (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), so
    /// the write that opens the window is handed back as a [`WindowReset`] for the
    /// caller to make with [`Self::apply_window_reset`] alongside its own work, not before it.
    pub async fn count_request_deferring_reset(
        &self,
        id: &ConnectionId,
        window: i64,
        now: Millis,
    ) -> StoreResult<WindowCount> {
        let same = self
            .db
            .update_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(id.as_str()))
            .update_expression("SET lastActiveAt = :now ADD rlCount :one")
            .condition_expression("rlWindow = :w AND expiresAt > :now")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":w", n(window))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match same {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                let connection = connection_from(&item, &self.t.connections)?;
                let count = Reader::new(&item, &self.t.connections).num_or("rlCount", 1)?;
                Ok(WindowCount::Counted(RateWindow { connection, count }))
            }
            Err(e) if super::codec::is_condition_failed(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                    _ => None,
                };
                // No item: unknown connection. Expired: gone, whatever its window.
                let Some(old) = old else {
                    return Ok(WindowCount::Gone);
                };
                let connection = connection_from(&old, &self.t.connections)?;
                if connection.expires_at <= now {
                    return Ok(WindowCount::Gone);
                }
                let reset = WindowReset {
                    id: id.clone(),
                    window,
                    now,
                };
                Ok(WindowCount::NeedsNewWindow(
                    RateWindow {
                        connection,
                        count: 1,
                    },
                    reset,
                ))
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Open the new window a [`Self::count_request_deferring_reset`] found (count 1);
    /// [`WindowOpened::ConnectionGone`] when the connection has gone or expired since.
    pub async fn apply_window_reset(&self, reset: &WindowReset) -> StoreResult<WindowOpened> {
        let fresh = self
            .db
            .update_item()
            .table_name(&self.t.connections)
            .key("connectionId", s(reset.id.as_str()))
            .update_expression("SET lastActiveAt = :now, rlWindow = :w, rlCount = :one")
            .condition_expression("attribute_exists(connectionId) AND expiresAt > :now")
            .expression_attribute_values(":now", n(reset.now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":w", n(reset.window))
            .send()
            .await;
        match fresh {
            Ok(_) => Ok(WindowOpened::Opened),
            Err(e) if super::codec::is_condition_failed(&e) => Ok(WindowOpened::ConnectionGone),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Presence and live connections of several users (BatchGetItem, 100 keys a call).
    /// Users with no record are offline.
    pub async fn presence_of(
        &self,
        users: &[UserId],
        now: Millis,
    ) -> StoreResult<HashMap<UserId, UserPresence>> {
        let mut out = HashMap::new();
        let mut unique: Vec<&UserId> = users.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys = chunk
                .iter()
                .map(|u| HashMap::from([("userId".to_owned(), s(u.as_str()))]))
                .collect();
            for item in self.batch_get(&self.t.presence, keys, None).await? {
                let (u, p) = presence_from(&item, &self.t.presence, now)?;
                out.insert(u, p);
            }
        }
        for u in unique {
            out.entry(u.clone()).or_default();
        }
        Ok(out)
    }
}
