//! How a function is packaged. Every Lambda of this project is a [`Function`]: a value
//! built once at init from its environment ([`crate::config::Env`]) that turns the
//! exact event JSON Lambda delivers into the JSON Lambda expects back. The same value
//! serves two hosts:
//!
//! - in AWS, [`run`] hands it to `lambda_runtime` (each function's `main.rs` is one
//!   line calling it);
//! - locally, the gateway (`infra/local`) calls [`Function::invoke`] in-process with
//!   the event it built, so local runs exercise the same deserialization as AWS.
//!
//! HTTP API functions are written as `lambda_http` services (`Request` in, `Response`
//! out) and wrapped by [`http`], which uses `lambda_http`'s own adapter for the
//! payload-format-2.0 mapping. WebSocket and SNS functions take their typed event from
//! `aws_lambda_events` through [`typed`].
//!
//! Both wrappers run every invocation through [`observe`]: one `invocation` span
//! (`request_id`, `function`, `route`, `trace_id`; see [`crate::telemetry`]), one
//! current EMF record ([`crate::metrics::scope`]) flushed at the end, and one
//! `invocation done` line with `outcome` and `duration_ms`. The function's name is
//! `Context::env_config.function_name` (`AWS_LAMBDA_FUNCTION_NAME` in AWS; the local
//! gateway puts the binary name there).

use crate::config::Env;
use lambda_http::{Body, Request, Response, Service};
use lambda_runtime::{Context, Error, LambdaEvent};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One Lambda function: event JSON in, response JSON out.
pub trait Function: Send + Sync + 'static {
    fn invoke(&self, event: Value, ctx: Context) -> BoxFuture<'_, Result<Value, Error>>;
}

/// A shared, type-erased function.
pub type SharedFunction = Arc<dyn Function>;

/// How a function crate builds its `Function` from the environment (at init).
pub type Builder = fn(Env) -> BoxFuture<'static, Result<SharedFunction, Error>>;

type Invoke = dyn Fn(Value, Context) -> BoxFuture<'static, Result<Value, Error>> + Send + Sync;

struct FnFunction(Box<Invoke>);

impl Function for FnFunction {
    fn invoke(&self, event: Value, ctx: Context) -> BoxFuture<'_, Result<Value, Error>> {
        (self.0)(event, ctx)
    }
}

/// A function over a typed event (WebSocket routes, SNS subscriptions).
pub fn typed<E, R, F, Fut>(f: F) -> SharedFunction
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(E, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    Arc::new(FnFunction(Box::new(
        move |event, ctx| -> BoxFuture<'static, Result<Value, Error>> {
            let route = route_of(&event);
            match serde_json::from_value::<E>(event) {
                Err(e) => Box::pin(observe(ctx, route, async move {
                    Err(Error::from(format!("event does not deserialize: {e}")))
                })),
                Ok(ev) => {
                    let fut = f(ev, ctx.clone());
                    Box::pin(observe(ctx, route, async move {
                        Ok(serde_json::to_value(fut.await?)?)
                    }))
                }
            }
        },
    )))
}

/// The `build` of a function over typed events (WebSocket routes, SNS subscriptions):
/// `init` makes its state once, at init (clients, configuration); then each event goes
/// to `handler` with the shared state. HTTP functions do the same through
/// [`crate::http::Router::into_function`].
///
/// ```ignore
/// pub fn build(env: Env) -> BoxFuture<'static, Result<SharedFunction, Error>> {
///     function::with_state(Notifier::init(env), |n, event: SnsEvent, _ctx| async move {
///         n.handle(event).await
///     })
/// }
/// ```
pub fn with_state<S, E, R, I, F, Fut>(
    init: I,
    handler: F,
) -> BoxFuture<'static, Result<SharedFunction, Error>>
where
    S: Send + Sync + 'static,
    I: Future<Output = Result<S, Error>> + Send + 'static,
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Arc<S>, E, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    Box::pin(async move {
        let state = Arc::new(init.await?);
        Ok(typed(move |event: E, ctx| {
            handler(state.clone(), event, ctx)
        }))
    })
}

/// A function behind the HTTP API, written as a `lambda_http` handler.
pub fn http<F, Fut>(f: F) -> SharedFunction
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, Error>> + Send + 'static,
{
    Arc::new(FnFunction(Box::new(
        move |event, ctx| -> BoxFuture<'static, Result<Value, Error>> {
            let f = f.clone();
            let route = route_of(&event);
            Box::pin(observe(ctx.clone(), route, async move {
                let payload: lambda_http::request::LambdaRequest = serde_json::from_value(event)
                    .map_err(|e| Error::from(format!("event does not deserialize: {e}")))?;
                let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(f));
                let response = adapter.call(LambdaEvent::new(payload, ctx)).await?;
                Ok(serde_json::to_value(response)?)
            }))
        },
    )))
}

/// The route of an event: `requestContext.routeKey` for API Gateway (HTTP and
/// WebSocket), `sns` for SNS notifications, `unknown` otherwise.
pub fn route_of(event: &Value) -> String {
    if let Some(r) = event["requestContext"]["routeKey"].as_str() {
        return r.to_owned();
    }
    let source = &event["Records"][0];
    if source["EventSource"] == "aws:sns" || source["eventSource"] == "aws:sns" {
        return "sns".to_owned();
    }
    "unknown".to_owned()
}

/// The function's name for logs and metrics: the Lambda configuration's, else
/// `AWS_LAMBDA_FUNCTION_NAME`, else `unknown`.
pub fn function_name(ctx: &Context) -> String {
    let n = &ctx.env_config.function_name;
    if !n.is_empty() {
        return n.clone();
    }
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".to_owned())
}

/// Run one invocation observed: span, current metrics record, completion line.
pub async fn observe<F>(ctx: Context, route: String, fut: F) -> Result<Value, Error>
where
    F: Future<Output = Result<Value, Error>> + Send,
{
    // Boxed: handler futures are large, and each wrapper below would otherwise copy
    // them on the stack (debug builds overflow a 2 MB worker stack).
    let fut = Box::pin(fut);
    let function = function_name(&ctx);
    let span = tracing::info_span!(
        "invocation",
        request_id = %ctx.request_id,
        function = %function,
        route = %route,
        trace_id = ctx.xray_trace_id.as_deref().unwrap_or(""),
        action = tracing::field::Empty,
        user_id = tracing::field::Empty,
        chat_id = tracing::field::Empty,
    );
    let mut metrics = crate::metrics::Metrics::new(&function);
    metrics.property("requestId", ctx.request_id.clone());
    let start = Instant::now();
    let work = async move {
        let (result, noted) = crate::telemetry::with_status_note(fut).await;
        let status = match &result {
            Ok(v) => v["statusCode"].as_u64().unwrap_or(200) as u16,
            Err(_) => 500,
        }
        .max(noted);
        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        let outcome = crate::telemetry::outcome(status);
        match &result {
            Ok(_) => tracing::info!(
                outcome,
                status,
                duration_ms = (duration_ms * 100.0).round() / 100.0,
                "invocation done"
            ),
            // The handler gave up (Lambda reports the error and may retry the event).
            Err(e) => tracing::error!(
                outcome,
                status,
                duration_ms = (duration_ms * 100.0).round() / 100.0,
                error = %e,
                "invocation failed"
            ),
        }
        result
    };
    crate::metrics::scope(metrics, Box::pin(work.instrument(span))).await
}

/// The whole of a function's `main`: logging, init from the process environment,
/// then the Lambda runtime loop.
pub async fn run(build: Builder) -> Result<(), Error> {
    let env = Env::from_process();
    crate::telemetry::init(&env);
    let function = build(env).await?;
    lambda_runtime::run(lambda_runtime::service_fn(move |ev: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.invoke(ev.payload, ev.context).await }
    }))
    .await
}
