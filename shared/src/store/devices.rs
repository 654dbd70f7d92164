//! Push devices: key (`userId`, `deviceId`); GSI `byToken` (`tokenKey` = platform and
//! SHA-256 of the platform token) finds every registration of one physical device, so
//! registering a token again (by the same user, or by another after a logout) moves the
//! registration instead of duplicating it.
//!
//! Push delivery markers live in `MessageDedup` under keys `push#{messageId}#{userId}#{deviceId}`
//! (the table's other keys start with a chat id, `grp_`/`dm_`, so the prefix cannot
//! collide). A marker is claimed (conditional put, state `pending`) before the push
//! notifier publishes to a device and set to `sent` afterwards, so a redelivered event
//! skips devices that already got their push; a failed publish releases its claim, and
//! a claim left `pending` by a crashed attempt is taken over once it is older than the
//! lease. Markers expire through the table's TTL (`ttl`).

use super::codec::{is_condition_failed, n, s, Item, Reader};
use super::{ttl_seconds, Store, StoreError, StoreResult};
use crate::ids::{DeviceId, MessageId, UserId};
use crate::model::{Device, Millis, PushPlatform};
use aws_sdk_dynamodb::types::ReturnValue;
use sha2::{Digest, Sha256};

/// The index key of a platform token.
pub fn token_key(platform: PushPlatform, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}#{hex}", platform.as_str())
}

fn device_from(item: &Item, table: &str) -> StoreResult<Device> {
    let r = Reader::new(item, table);
    Ok(Device {
        device_id: r.parsed("deviceId", DeviceId::parse)?,
        user_id: r.parsed("userId", UserId::parse)?,
        platform: r.parsed("platform", |p| PushPlatform::parse(p).ok_or(()))?,
        token: r.string("token")?,
        endpoint_arn: r.opt_string("endpointArn")?,
        created_at: r.num("createdAt")?,
    })
}

impl Store {
    /// Every registration of a platform token, whoever holds it.
    pub async fn devices_with_token(
        &self,
        platform: PushPlatform,
        token: &str,
    ) -> StoreResult<Vec<Device>> {
        let out = self
            .db
            .query()
            .table_name(&self.t.devices)
            .index_name("byToken")
            .key_condition_expression("tokenKey = :k")
            .expression_attribute_values(":k", s(token_key(platform, token)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        out.items()
            .iter()
            .map(|i| device_from(i, &self.t.devices))
            .collect()
    }

    /// Store a registration. Any other registration of the same token (another user's,
    /// or an older one of this user) is removed, so a token is held once.
    pub async fn put_device(&self, d: &Device) -> StoreResult<()> {
        for other in self.devices_with_token(d.platform, &d.token).await? {
            if other.device_id != d.device_id {
                self.delete_device(&other.user_id, &other.device_id).await?;
            }
        }
        let mut put = self
            .db
            .put_item()
            .table_name(&self.t.devices)
            .item("userId", s(d.user_id.as_str()))
            .item("deviceId", s(d.device_id.as_str()))
            .item("platform", s(d.platform.as_str()))
            .item("token", s(&d.token))
            .item("tokenKey", s(token_key(d.platform, &d.token)))
            .item("createdAt", n(d.created_at));
        if let Some(arn) = &d.endpoint_arn {
            put = put.item("endpointArn", s(arn));
        }
        put.send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// Remove a registration; returns it if it existed.
    pub async fn delete_device(&self, user: &UserId, id: &DeviceId) -> StoreResult<Option<Device>> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.t.devices)
            .key("userId", s(user.as_str()))
            .key("deviceId", s(id.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        out.attributes()
            .filter(|a| !a.is_empty())
            .map(|a| device_from(a, &self.t.devices))
            .transpose()
    }

    /// A user's devices (one Query).
    pub async fn list_devices(&self, user: &UserId) -> StoreResult<Vec<Device>> {
        let out = self
            .db
            .query()
            .table_name(&self.t.devices)
            .key_condition_expression("userId = :u")
            .expression_attribute_values(":u", s(user.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        out.items()
            .iter()
            .map(|i| device_from(i, &self.t.devices))
            .collect()
    }
}

/// How long a `pending` push claim protects its device from a concurrent or later
/// attempt. Longer than the push notifier's timeout, so only a crashed attempt's claim
/// is ever taken over.
pub const PUSH_CLAIM_LEASE_MS: Millis = 60_000;

/// How long a push marker is kept (longer than SNS/Lambda keep retrying an event).
pub const PUSH_MARKER_TTL_MS: Millis = 24 * 3600 * 1000;

/// Identifies one push: a message, to one recipient, on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushKey<'a> {
    pub message_id: &'a MessageId,
    pub recipient: &'a UserId,
    pub device_id: &'a DeviceId,
}

impl PushKey<'_> {
    fn key(&self) -> String {
        format!(
            "push#{}#{}#{}",
            self.message_id, self.recipient, self.device_id
        )
    }
}

/// The outcome of claiming a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushClaim {
    /// This attempt owns the push and should publish it.
    Claimed,
    /// The push was already sent (an earlier delivery of the same event).
    AlreadySent,
    /// Another attempt claimed it less than the lease ago and may still be sending.
    InFlight,
}

impl Store {
    /// Claim the right to send one push (see the module notes). `now` is the claim time;
    /// the same value must be passed to [`Store::release_push`].
    pub async fn claim_push(&self, key: &PushKey<'_>, now: Millis) -> StoreResult<PushClaim> {
        let out = self
            .db
            .put_item()
            .table_name(&self.t.message_dedup)
            .item("dedupKey", s(key.key()))
            .item("state", s("pending"))
            .item("claimedAt", n(now))
            .item("ttl", n(ttl_seconds(now + PUSH_MARKER_TTL_MS)))
            .condition_expression(
                "attribute_not_exists(dedupKey) OR (#st = :pending AND claimedAt < :stale)",
            )
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":stale", n(now - PUSH_CLAIM_LEASE_MS))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(PushClaim::Claimed),
            Err(e) if is_condition_failed(&e) => {
                let sent = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    })
                    .and_then(|item| Reader::new(item, &self.t.message_dedup).str("state").ok())
                    .is_some_and(|st| st == "sent");
                Ok(if sent {
                    PushClaim::AlreadySent
                } else {
                    PushClaim::InFlight
                })
            }
            Err(e) => Err(StoreError::sdk("PutItem", e)),
        }
    }

    /// Record that a claimed push was handed to SNS (or need not be sent again).
    pub async fn mark_push_sent(&self, key: &PushKey<'_>, now: Millis) -> StoreResult<()> {
        self.db
            .put_item()
            .table_name(&self.t.message_dedup)
            .item("dedupKey", s(key.key()))
            .item("state", s("sent"))
            .item("claimedAt", n(now))
            .item("ttl", n(ttl_seconds(now + PUSH_MARKER_TTL_MS)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// Give up a claim after a failed publish, so a redelivery sends the push; only the
    /// claim made at `claimed_at` is removed (not a newer attempt's, not a `sent` marker).
    pub async fn release_push(&self, key: &PushKey<'_>, claimed_at: Millis) -> StoreResult<()> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.t.message_dedup)
            .key("dedupKey", s(key.key()))
            .condition_expression("#st = :pending AND claimedAt = :at")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":at", n(claimed_at))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("DeleteItem", e)),
        }
    }
}
