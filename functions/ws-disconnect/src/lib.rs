//! `ws-disconnect`: the WebSocket `$disconnect` route. Forgets the connection; when it
//! was the user's last one, records last seen and tells their online direct-chat
//! partners (`presence` offline). API Gateway may not deliver every `$disconnect`:
//! connection records also expire by TTL and are removed when a post answers 410.

use chat_core::config::Env;
use chat_core::function::{self, BoxFuture, SharedFunction};
use chat_core::messaging::ChatServices;
use chat_core::model::now_millis;
use chat_core::ws::{self, WsEvent, WsResponse};
use lambda_runtime::Error;

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    function::with_state(ChatServices::init(env), |s, event: WsEvent, _| async move {
        Ok(handle(&s, event).await)
    })
}

/// Handle one `$disconnect` (always 200: API Gateway ignores the answer).
pub async fn handle(services: &ChatServices, event: WsEvent) -> WsResponse {
    let Some(id) = ws::connection_id(&event) else {
        return ws::ok();
    };
    let now = now_millis();
    match services.store().remove_connection(&id, now).await {
        Ok(Some((user, went_offline))) => {
            chat_core::telemetry::record_user(&user);
            chat_core::metrics::count("Disconnects", 1);
            tracing::info!(connection = %id, went_offline, "disconnected");
            if went_offline {
                if let Err(e) = services.announce_presence(&user, false, Some(now)).await {
                    e.log();
                }
            }
        }
        Ok(None) => tracing::info!(connection = %id, "disconnect of an unknown connection"),
        Err(e) => {
            chat_core::metrics::store_error(&e);
            tracing::error!(error = %e, connection = %id, "could not remove the connection")
        }
    }
    ws::ok()
}
