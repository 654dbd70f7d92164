//! SNS platform endpoints: one per (platform application, token), created or reused
//! following the SNS guide on token management: `CreatePlatformEndpoint` is idempotent
//! for the same token and attributes; when an endpoint with the same token but other
//! attributes exists (another user's `CustomUserData`, or `Enabled=false` after the
//! platform rejected the token once), SNS answers `InvalidParameter` naming that
//! endpoint's ARN, and we take that endpoint over with `SetEndpointAttributes`
//! (`CustomUserData` = the new owner, `Enabled=true`, `Token`).

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chat_core::ids::UserId;
use chat_core::input::InvalidInput;
use chat_core::ApiError;

/// Why an endpoint could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error("SNS {op}: {code}")]
pub struct SnsFailure {
    pub op: &'static str,
    pub code: String,
    pub message: String,
    pub transient: bool,
}

impl SnsFailure {
    fn from_sdk<E: ProvideErrorMetadata>(op: &'static str, e: &SdkError<E, HttpResponse>) -> Self {
        match e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("unknown").to_owned();
                let transient = se.raw().status().is_server_error()
                    || matches!(
                        code.as_str(),
                        "Throttled" | "Throttling" | "InternalError" | "ServiceUnavailable"
                    );
                SnsFailure {
                    op,
                    message: se.err().message().unwrap_or("").to_owned(),
                    code,
                    transient,
                }
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => SnsFailure {
                op,
                code: "unreachable".into(),
                message: String::new(),
                transient: true,
            },
            _ => SnsFailure {
                op,
                code: "request".into(),
                message: String::new(),
                transient: false,
            },
        }
    }
}

impl From<SnsFailure> for ApiError {
    fn from(f: SnsFailure) -> Self {
        if f.op == "CreatePlatformEndpoint" && f.code == "InvalidParameter" {
            // The platform application refused the token itself.
            ApiError::Validation(InvalidInput::new(
                "token",
                "the push service does not accept this token",
            ))
        } else if f.transient {
            ApiError::Unavailable(Box::new(f))
        } else {
            ApiError::Internal(Box::new(f))
        }
    }
}

/// The endpoint ARN named by SNS's "already exists with the same Token, but different
/// attributes" message.
pub fn existing_endpoint_arn(message: &str) -> Option<&str> {
    let lower = message.to_ascii_lowercase();
    if !lower.contains("already exists with the same token") {
        return None;
    }
    let start = message.find("arn:")?;
    let rest = &message[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Make sure an enabled endpoint for `token` exists under `application_arn`, owned by
/// `user` (`CustomUserData`); returns its ARN.
pub async fn ensure_endpoint(
    sns: &aws_sdk_sns::Client,
    application_arn: &str,
    token: &str,
    user: &UserId,
) -> Result<String, SnsFailure> {
    let created = sns
        .create_platform_endpoint()
        .platform_application_arn(application_arn)
        .token(token)
        .custom_user_data(user.as_str())
        .attributes("Enabled", "true")
        .send()
        .await;
    let err = match created {
        Ok(out) => {
            return out.endpoint_arn().map(str::to_owned).ok_or(SnsFailure {
                op: "CreatePlatformEndpoint",
                code: "no EndpointArn".into(),
                message: String::new(),
                transient: false,
            })
        }
        Err(e) => e,
    };
    let arn = err
        .as_service_error()
        .and_then(|se| se.message())
        .and_then(existing_endpoint_arn)
        .map(str::to_owned);
    let Some(arn) = arn else {
        return Err(SnsFailure::from_sdk("CreatePlatformEndpoint", &err));
    };
    sns.set_endpoint_attributes()
        .endpoint_arn(&arn)
        .attributes("CustomUserData", user.as_str())
        .attributes("Enabled", "true")
        .attributes("Token", token)
        .send()
        .await
        .map_err(|e| SnsFailure::from_sdk("SetEndpointAttributes", &e))?;
    Ok(arn)
}

/// Delete an endpoint (idempotent: a missing endpoint is fine).
pub async fn delete_endpoint(sns: &aws_sdk_sns::Client, arn: &str) -> Result<(), SnsFailure> {
    match sns.delete_endpoint().endpoint_arn(arn).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let f = SnsFailure::from_sdk("DeleteEndpoint", &e);
            if f.code == "NotFound" {
                Ok(())
            } else {
                Err(f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_existing_endpoint_in_the_error() {
        let m = "Invalid parameter: Token Reason: Endpoint arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/830d456e-dbea-304f-a2af-e2e9e666cd70 already exists with the same Token, but different attributes.";
        assert_eq!(
            existing_endpoint_arn(m),
            Some("arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/830d456e-dbea-304f-a2af-e2e9e666cd70")
        );
        assert_eq!(existing_endpoint_arn("Invalid parameter: Token"), None);
        assert_eq!(
            existing_endpoint_arn("already exists with the same token but no arn"),
            None
        );
    }
}
