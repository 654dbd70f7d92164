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

use crate::config::Env;
use lambda_http::{Body, Request, Response, Service};
use lambda_runtime::{Context, Error, LambdaEvent};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
            match serde_json::from_value::<E>(event) {
                Err(e) => {
                    Box::pin(
                        async move { Err(Error::from(format!("event does not deserialize: {e}"))) },
                    )
                }
                Ok(ev) => {
                    let fut = f(ev, ctx);
                    Box::pin(async move { Ok(serde_json::to_value(fut.await?)?) })
                }
            }
        },
    )))
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
            Box::pin(async move {
                let payload: lambda_http::request::LambdaRequest = serde_json::from_value(event)
                    .map_err(|e| Error::from(format!("event does not deserialize: {e}")))?;
                let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(f));
                let response = adapter.call(LambdaEvent::new(payload, ctx)).await?;
                Ok(serde_json::to_value(response)?)
            })
        },
    )))
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
