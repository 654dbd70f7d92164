//! `http-devices`: push device registration over REST (see `docs/openapi.yaml`, tag
//! `devices`, and `docs/protocol.md`, "Push notifications").
//!
//! - `POST /devices` `{"platform": "apns"|"fcm", "token": "..."}`: validates the token
//!   ([`token`]), makes sure an enabled SNS platform endpoint exists for it under the
//!   platform application configured for that platform ([`endpoints`]), and stores the
//!   device. A token is held by one registration only: registering it again moves it
//!   (from another user, or an older registration), so it is never pushed to twice.
//!   201 with the new device, 200 when the caller already had this token (same
//!   `deviceId`). When no platform application is configured for the platform, the
//!   device is stored without an endpoint and returned with `"pushEnabled": false`
//!   (registering again once one is configured enables it).
//! - `GET /devices`: the caller's devices.
//! - `DELETE /devices/{deviceId}`: deletes the endpoint and the record; 404 for an
//!   unknown device or someone else's.

pub mod endpoints;
pub mod token;

use chat_core::auth::{Authenticated, TokenConfig};
use chat_core::config::{Env, Tables};
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::http::{
    created, no_content, ok, parse_json, path_param, Router, SignIn, SMALL_BODY,
};
use chat_core::ids::DeviceId;
use chat_core::input::InvalidInput;
use chat_core::model::{as_rfc3339, now_millis, Device, Millis, PushPlatform};
use chat_core::store::Store;
use chat_core::ApiError;
use lambda_http::{Body, Request, Response};
use lambda_runtime::Error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use token::PushToken;

/// Devices one user may register (moving a token already held does not count).
pub const MAX_DEVICES_PER_USER: usize = 20;

pub use chat_core::config::PlatformApps;

/// A device as the API shows it (the token and the endpoint ARN stay server-side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub device_id: DeviceId,
    pub platform: PushPlatform,
    /// Whether pushes can reach it (an SNS endpoint exists for it).
    pub push_enabled: bool,
    #[serde(with = "as_rfc3339")]
    pub created_at: Millis,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> Self {
        DeviceView {
            device_id: d.device_id.clone(),
            platform: d.platform,
            push_enabled: d.endpoint_arn.is_some(),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    platform: String,
    token: String,
}

/// The function's state, built once at init.
pub struct Devices {
    store: Store,
    sns: aws_sdk_sns::Client,
    tokens: TokenConfig,
    apps: PlatformApps,
}

impl SignIn for Devices {
    fn token_config(&self) -> &TokenConfig {
        &self.tokens
    }
    fn account_store(&self) -> &Store {
        &self.store
    }
}

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let sdk = chat_core::aws::sdk_config(&env).await;
        let devices = Devices {
            store: Store::new(
                chat_core::aws::dynamodb(&sdk, &env),
                Tables::from_env(&env)?,
            ),
            sns: chat_core::aws::sns(&sdk, &env),
            tokens: TokenConfig::from_env(&env)?,
            apps: PlatformApps::from_env(&env),
        };
        Ok(Router::new(devices)
            .signed_in("POST /devices", register)
            .signed_in("GET /devices", list)
            .signed_in("DELETE /devices/{deviceId}", delete)
            .into_function())
    })
}

/// `POST /devices`.
pub async fn register(
    s: Arc<Devices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let session = me.session_id.clone();
    let user = me.user_id;
    let b: RegisterBody = parse_json(&req, SMALL_BODY)?;
    let platform = PushPlatform::parse(&b.platform)
        .ok_or_else(|| InvalidInput::new("platform", "must be \"apns\" or \"fcm\""))?;
    let token = PushToken::parse(platform, &b.token)?;
    let holders = s.store.devices_with_token(platform, token.as_str()).await?;
    let mine = holders.iter().find(|d| d.user_id == user).cloned();
    if mine.is_none() {
        let count = s.store.list_devices(&user).await?.len();
        if count >= MAX_DEVICES_PER_USER {
            return Err(ApiError::conflict(
                "too_many_devices",
                format!("at most {MAX_DEVICES_PER_USER} devices; delete one first"),
            ));
        }
    }
    let endpoint_arn = match s.apps.get(platform) {
        Some(app) => Some(endpoints::ensure_endpoint(&s.sns, app, token.as_str(), &user).await?),
        None => {
            tracing::info!(
                platform = platform.as_str(),
                "no platform application configured; device stored without an endpoint"
            );
            None
        }
    };
    let device = Device {
        device_id: mine
            .as_ref()
            .map(|d| d.device_id.clone())
            .unwrap_or_else(DeviceId::generate),
        user_id: user.clone(),
        platform,
        token: token.as_str().to_owned(),
        endpoint_arn: endpoint_arn.clone(),
        created_at: mine
            .as_ref()
            .map(|d| d.created_at)
            .unwrap_or_else(now_millis),
    };
    s.store.put_device(&device).await?;
    // Tied to the registering session: its logout unregisters the device.
    s.store
        .tie_device_to_session(&user, &device.device_id, &session)
        .await?;
    // Endpoints of earlier registrations under another application are orphans now.
    if let Some(new) = &endpoint_arn {
        for old in holders.iter().filter_map(|d| d.endpoint_arn.as_deref()) {
            if old != new {
                if let Err(e) = endpoints::delete_endpoint(&s.sns, old).await {
                    tracing::warn!(error = %e, "stale endpoint not deleted");
                }
            }
        }
    }
    tracing::info!(
        device = %device.device_id,
        platform = platform.as_str(),
        existed = mine.is_some(),
        moved = holders.iter().any(|d| d.user_id != user),
        push_enabled = device.endpoint_arn.is_some(),
        "device registered"
    );
    let view = DeviceView::from(&device);
    Ok(if mine.is_some() {
        ok(&view)
    } else {
        created(&view)
    })
}

/// `GET /devices`.
pub async fn list(
    s: Arc<Devices>,
    me: Authenticated,
    _: Request,
) -> Result<Response<Body>, ApiError> {
    let user = me.user_id;
    let devices: Vec<DeviceView> = s
        .store
        .list_devices(&user)
        .await?
        .iter()
        .map(DeviceView::from)
        .collect();
    Ok(ok(&serde_json::json!({ "devices": devices })))
}

/// `DELETE /devices/{deviceId}`.
pub async fn delete(
    s: Arc<Devices>,
    me: Authenticated,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let user = me.user_id;
    let id = DeviceId::parse(&path_param(&req, "deviceId")?)?;
    let device = s
        .store
        .list_devices(&user)
        .await?
        .into_iter()
        .find(|d| d.device_id == id)
        .ok_or_else(|| ApiError::not_found("device"))?;
    // Endpoint first: if SNS fails, the record stays and the client can retry.
    if let Some(arn) = &device.endpoint_arn {
        endpoints::delete_endpoint(&s.sns, arn).await?;
    }
    s.store.delete_device(&user, &id).await?;
    tracing::info!(device = %id, "device deleted");
    Ok(no_content())
}
