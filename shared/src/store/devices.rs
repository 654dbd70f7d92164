//! Push devices: key (`userId`, `deviceId`); GSI `byToken` (`tokenKey` = platform and
//! SHA-256 of the platform token) finds every registration of one physical device, so
//! registering a token again (by the same user, or by another after a logout) moves the
//! registration instead of duplicating it.

use super::codec::{n, s, Item, Reader};
use super::{Store, StoreError, StoreResult};
use crate::ids::{DeviceId, UserId};
use crate::model::{Device, PushPlatform};
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
