//! Push devices tied to login sessions: a registration records the session
//! (`sessionId`) whose access token registered it, so logging that session out
//! unregisters the device ([`Store::remove_session_devices`]) and log-out-everywhere,
//! a password change or deletion unregister them all ([`Store::remove_all_devices`]).
//! A stolen phone stops showing message previews on its lock screen once its owner
//! logs it out. Registrations from before this attribute existed have no session and
//! are removed only by the "all" variant.

use super::codec::{s, Reader};
use super::{Store, StoreError, StoreResult};
use crate::ids::{DeviceId, SessionId, UserId};

impl Store {
    /// Record that `session` registered `device` (after [`Store::put_device`]).
    pub async fn tie_device_to_session(
        &self,
        user: &UserId,
        device: &DeviceId,
        session: &SessionId,
    ) -> StoreResult<()> {
        self.db
            .update_item()
            .table_name(&self.t.devices)
            .key("userId", s(user.as_str()))
            .key("deviceId", s(device.as_str()))
            .update_expression("SET sessionId = :s")
            .condition_expression("attribute_exists(deviceId)")
            .expression_attribute_values(":s", s(session.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    /// Remove the devices `session` registered; returns how many.
    pub async fn remove_session_devices(
        &self,
        user: &UserId,
        session: &SessionId,
    ) -> StoreResult<usize> {
        self.remove_devices_where(user, Some(session)).await
    }

    /// Remove every device of `user`; returns how many.
    pub async fn remove_all_devices(&self, user: &UserId) -> StoreResult<usize> {
        self.remove_devices_where(user, None).await
    }

    async fn remove_devices_where(
        &self,
        user: &UserId,
        session: Option<&SessionId>,
    ) -> StoreResult<usize> {
        let out = self
            .db
            .query()
            .table_name(&self.t.devices)
            .key_condition_expression("userId = :u")
            .expression_attribute_values(":u", s(user.as_str()))
            .projection_expression("deviceId, sessionId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", e))?;
        let mut removed = 0;
        for item in out.items() {
            let r = Reader::new(item, &self.t.devices);
            let sid = r.opt_parsed("sessionId", SessionId::parse)?;
            if session.is_some() && sid.as_ref() != session {
                continue;
            }
            let id = r.parsed("deviceId", DeviceId::parse)?;
            if self.delete_device(user, &id).await?.is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
