//! How an SNS Publish to a platform endpoint failed, which decides what happens to
//! the device: a disabled or vanished endpoint removes the device, a temporary
//! failure asks for the event to be delivered again, anything else is logged and
//! dropped (sending the same request again would fail the same way).

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// The category of a failed publish, with the SNS error code for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishFailure {
    /// `EndpointDisabled` (the platform said the token is invalid, or the endpoint was
    /// disabled), `NotFound`, or an `InvalidParameter` about the target endpoint.
    EndpointGone(String),
    /// Throttling, SNS internal errors, time-outs, no connection.
    Transient(String),
    /// Anything else (a bad payload, missing permissions).
    Permanent(String),
}

/// Classify by error code and message (works for AWS and for moto, which use the same
/// codes: `EndpointDisabled`, `NotFound`, `InvalidParameter`, `Throttled`, ...).
pub fn classify_code(code: &str, message: &str, server_error: bool) -> PublishFailure {
    let c = code.to_owned();
    let about_endpoint = {
        let m = message.to_ascii_lowercase();
        m.contains("targetarn") || m.contains("endpoint")
    };
    match code {
        "EndpointDisabled" | "EndpointDisabledException" => PublishFailure::EndpointGone(c),
        "NotFound" | "NotFoundException" => PublishFailure::EndpointGone(c),
        "InvalidParameter" | "InvalidParameterException" if about_endpoint => {
            PublishFailure::EndpointGone(c)
        }
        "Throttled"
        | "ThrottledException"
        | "Throttling"
        | "ThrottlingException"
        | "InternalError"
        | "InternalErrorException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "KMSThrottling"
        | "KMSThrottlingException"
        | "RequestTimeout" => PublishFailure::Transient(c),
        _ if server_error => PublishFailure::Transient(c),
        _ => PublishFailure::Permanent(c),
    }
}

pub fn classify<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> PublishFailure {
    match e {
        SdkError::TimeoutError(_) => PublishFailure::Transient("timeout".into()),
        SdkError::DispatchFailure(_) => PublishFailure::Transient("dispatch".into()),
        SdkError::ResponseError(_) => PublishFailure::Transient("response".into()),
        SdkError::ServiceError(se) => classify_code(
            se.err().code().unwrap_or("unknown"),
            se.err().message().unwrap_or(""),
            se.raw().status().is_server_error(),
        ),
        _ => PublishFailure::Permanent("construction".into()),
    }
}

/// A one-line description of any SNS error for logs (code and message only).
pub fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("unknown"),
            se.err().message().unwrap_or("")
        ),
        SdkError::TimeoutError(_) => "timeout".into(),
        SdkError::DispatchFailure(_) => "dispatch failure".into(),
        _ => "request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_or_missing_endpoints_are_gone() {
        assert!(matches!(
            classify_code("EndpointDisabled", "Endpoint is disabled", false),
            PublishFailure::EndpointGone(_)
        ));
        assert!(matches!(
            classify_code("NotFound", "Endpoint does not exist", false),
            PublishFailure::EndpointGone(_)
        ));
        assert!(matches!(
            classify_code("InvalidParameter", "Invalid parameter: TargetArn", false),
            PublishFailure::EndpointGone(_)
        ));
    }

    #[test]
    fn a_bad_payload_is_not_blamed_on_the_device() {
        assert!(matches!(
            classify_code(
                "InvalidParameter",
                "Invalid parameter: Message Structure - No default entry in JSON message body",
                false
            ),
            PublishFailure::Permanent(_)
        ));
        assert!(matches!(
            classify_code("AuthorizationError", "not allowed", false),
            PublishFailure::Permanent(_)
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for code in ["Throttled", "InternalError", "KMSThrottling"] {
            assert!(matches!(
                classify_code(code, "", false),
                PublishFailure::Transient(_)
            ));
        }
        assert!(matches!(
            classify_code("Whatever", "", true),
            PublishFailure::Transient(_)
        ));
    }
}
