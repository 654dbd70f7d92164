//! `ws-disconnect`: the WebSocket `$disconnect` route. Forgets the connection; when it
//! was the user's last one, records last seen and tells their online direct-chat
//! partners (`presence` offline). API Gateway may not deliver every `$disconnect`:
//! connection records also expire by TTL and are removed when a post answers 410.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chat_core::config::Env;
use chat_core::function::{BoxFuture, SharedFunction};
use chat_core::ids::ConnectionId;
use chat_core::messaging::ChatServices;
use chat_core::model::now_millis;
use lambda_runtime::Error;
use std::sync::Arc;

/// Build the function from its environment (at init).
pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
    Box::pin(async move {
        let services = Arc::new(ChatServices::from_env(&env).await?);
        Ok(chat_core::function::typed(
            move |event: ApiGatewayWebsocketProxyRequest, _ctx| {
                let services = services.clone();
                async move { Ok::<_, Error>(handle(&services, event).await) }
            },
        ))
    })
}

/// Handle one `$disconnect` (always 200: API Gateway ignores the answer).
pub async fn handle(
    services: &ChatServices,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let mut ok = ApiGatewayProxyResponse::default();
    ok.status_code = 200;
    let Some(id) = event
        .request_context
        .connection_id
        .as_deref()
        .and_then(|c| ConnectionId::parse(c).ok())
    else {
        return ok;
    };
    let now = now_millis();
    match services.store().remove_connection(&id, now).await {
        Ok(Some((user, went_offline))) => {
            tracing::info!(user = %user, connection = %id, went_offline, "disconnected");
            if went_offline {
                if let Err(e) = services.announce_presence(&user, false, Some(now)).await {
                    e.log();
                }
            }
        }
        Ok(None) => tracing::info!(connection = %id, "disconnect of an unknown connection"),
        Err(e) => tracing::error!(error = %e, connection = %id, "could not remove the connection"),
    }
    ok
}
