//! AWS clients, built once per function instance at init and reused. One slim
//! rustls+ring HTTPS client serves every SDK (the SDK's default stacks double the build
//! time). Endpoints come from the standard variables (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SNS`) read from the function's `Env`,
//! so the same code talks to AWS, to the local stack or to LocalStack.
//!
//! Trusted roots: by default only Amazon Trust Services' roots (Amazon Root CA 1-4 and
//! Starfield Services Root CA G2, `shared/certs/amazon-trust-services.pem`), which every
//! AWS endpoint we call chains to; parsing five bundled certificates instead of the
//! operating system's ~150 takes most of the TLS set-up out of a cold start.
//! `CHAT_TLS_ROOTS=native` trusts the operating system's store instead (an endpoint
//! behind another CA, e.g. a corporate proxy or LocalStack with TLS); the local stack
//! speaks plain HTTP and needs neither.

use crate::config::{ConfigError, Env};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

/// Amazon Trust Services' root certificates (PEM), the default trust store.
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which root certificates the HTTPS client trusts (`CHAT_TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Amazon Trust Services' roots, bundled in the binary (default).
    Amazon,
    /// The operating system's store (rustls-native-certs).
    Native,
}

impl TlsRoots {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get("CHAT_TLS_ROOTS") {
            None | Some("amazon") => Ok(Self::Amazon),
            Some("native") => Ok(Self::Native),
            Some(other) => Err(ConfigError(format!(
                "CHAT_TLS_ROOTS={other:?} is not valid (amazon or native)"
            ))),
        }
    }

    fn trust_store(self) -> tls::TrustStore {
        match self {
            Self::Amazon => {
                tls::TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS)
            }
            Self::Native => tls::TrustStore::default(),
        }
    }
}

/// The shared SDK configuration: region, credentials, HTTP client, timeouts, retries.
pub async fn sdk_config(env: &Env) -> SdkConfig {
    // A misspelt switch falls back to the wider store (never to no roots at all).
    let roots = TlsRoots::from_env(env).unwrap_or_else(|e| {
        tracing::error!("{e}; trusting the operating system's roots");
        TlsRoots::Native
    });
    let tls_context = tls::TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .expect("a TlsContext builder without server names cannot fail");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .unwrap_or("us-east-1")
        .to_owned();
    loader = loader.region(Region::new(region));
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        let creds = aws_credential_types::Credentials::new(
            id,
            secret,
            env.get("AWS_SESSION_TOKEN").map(str::to_owned),
            None,
            "environment",
        );
        loader = loader.credentials_provider(creds);
    }
    // One attempt may take 5 s by default (a function has 10 s); the local stack raises
    // it because DynamoDB Local under load is far slower than DynamoDB.
    let attempt_ms = env
        .get("CHAT_AWS_ATTEMPT_TIMEOUT_MS")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(5_000);
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(std::time::Duration::from_millis(attempt_ms))
        .build();
    loader = loader.timeout_config(timeouts);
    loader.load().await
}

fn endpoint<'a>(env: &'a Env, service_var: &str) -> Option<&'a str> {
    env.get(service_var).or_else(|| env.get("AWS_ENDPOINT_URL"))
}

pub fn dynamodb(sdk: &SdkConfig, env: &Env) -> aws_sdk_dynamodb::Client {
    let mut b = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(url) = endpoint(env, "AWS_ENDPOINT_URL_DYNAMODB") {
        b = b.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

pub fn sns(sdk: &SdkConfig, env: &Env) -> aws_sdk_sns::Client {
    let mut b = aws_sdk_sns::config::Builder::from(sdk);
    if let Some(url) = endpoint(env, "AWS_ENDPOINT_URL_SNS") {
        b = b.endpoint_url(url);
    }
    aws_sdk_sns::Client::from_conf(b.build())
}

/// The `@connections` client for this stack's WebSocket stage (without SDK retries), from
/// `WEBSOCKET_MANAGEMENT_ENDPOINT` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`
/// in AWS, `http://127.0.0.1:{port}/{stage}` locally).
pub fn management(
    sdk: &SdkConfig,
    env: &Env,
) -> Result<aws_sdk_apigatewaymanagement::Client, ConfigError> {
    let url = env.require("WEBSOCKET_MANAGEMENT_ENDPOINT")?;
    // No SDK retries: `delivery::Poster` retries each post itself (bounded, with its
    // own short backoff). Both together made 3 x 3 = 9 tries per failing connection
    // with the SDK's 1 s-based backoff between them.
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
        .endpoint_url(url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    Ok(aws_sdk_apigatewaymanagement::Client::from_conf(conf))
}

/// The S3 client for attachments (`AWS_ENDPOINT_URL_S3`). With a custom endpoint
/// (moto locally) it addresses buckets by path, so presigned URLs name the endpoint's
/// host; on AWS it uses virtual-hosted URLs.
pub fn s3(sdk: &SdkConfig, env: &Env) -> aws_sdk_s3::Client {
    // Checksums only where S3 requires them: a presigned upload must not carry a
    // checksum of an empty body.
    let mut b = aws_sdk_s3::config::Builder::from(sdk)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired);
    if let Some(url) = endpoint(env, "AWS_ENDPOINT_URL_S3") {
        b = b.endpoint_url(url).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn bundled_roots_are_five_parsable_certificates() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
    }

    #[test]
    fn roots_switch_defaults_to_amazon_and_refuses_typos() {
        let mut env = Env::default();
        assert_eq!(TlsRoots::from_env(&env).unwrap(), TlsRoots::Amazon);
        env.set("CHAT_TLS_ROOTS", "native");
        assert_eq!(TlsRoots::from_env(&env).unwrap(), TlsRoots::Native);
        env.set("CHAT_TLS_ROOTS", "nativ");
        assert!(TlsRoots::from_env(&env).is_err());
    }
}
