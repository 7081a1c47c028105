//! AWS SDK errors turned into `PluginError`s that say what to do: a denied call names the
//! IAM action to grant, rejected credentials say where they came from, and throttling that
//! outlasted the SDK's retries says how to call less.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use skymeter_plugin_api::{ErrorKind, PluginError};

/// An SDK error of `api` (e.g. `DescribeInstances`) as a `PluginError`. `action` is the IAM
/// action the call needs (`ec2:DescribeInstances`); `region` goes in the context.
pub fn api_error<E>(api: &str, action: &str, region: &str, e: &E) -> PluginError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    no_code_error(classify(api, action, region, e, error_text(e)))
}

fn classify<E: ProvideErrorMetadata>(
    api: &str,
    action: &str,
    region: &str,
    e: &E,
    text: String,
) -> PluginError {
    let code = e.code().unwrap_or("");
    let (kind, what) = match code {
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException"
        | "AuthorizationError" => (
            ErrorKind::Permission,
            format!("{api} was denied: grant the IAM action {action} to the credentials skymeter uses"),
        ),
        "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken"
        | "ExpiredTokenException" | "UnrecognizedClientException" | "InvalidAccessKeyId"
        | "MissingAuthenticationToken" => (
            ErrorKind::Auth,
            format!("{api}: AWS rejected the credentials ({code}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile`, and that an SSO session or token has not expired"),
        ),
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException"
        | "LimitExceededException" => (
            ErrorKind::Unavailable,
            format!("{api} stayed throttled after every retry: lower max_concurrency or run less often"),
        ),
        "" => (ErrorKind::Unavailable, format!("{api} failed: {text}")),
        _ => (ErrorKind::Other, format!("{api} failed ({code})")),
    };
    let msg = match e.message() {
        Some(m) if kind != ErrorKind::Unavailable || !code.is_empty() => format!("{what}: {m}"),
        _ => what,
    };
    let mut err = PluginError::new(kind, msg).with("api", api);
    if !region.is_empty() {
        err = err.with("region", region);
    }
    err
}

/// The full text of an error and its sources.
pub use skymeter_plugin_api::error_chain as error_text;

/// An error without an AWS code whose text says credentials are missing becomes an Auth error.
fn no_code_error(mut e: PluginError) -> PluginError {
    if e.kind == ErrorKind::Unavailable && e.message.contains("no credentials found in chain") {
        // The SDK lists every provider it tried, a paragraph a user does not need to
        // read to know what to set: it goes to the debug log, the error keeps one line.
        tracing::debug!(detail = %e.message, "the AWS credential chain found nothing");
        let call = e
            .message
            .split(": ")
            .next()
            .unwrap_or("the AWS call")
            .to_string();
        e.kind = ErrorKind::Auth;
        e.message = format!(
            "{call}: no AWS credentials found (the environment, profiles, web identity, ECS and \
             instance metadata were tried; `-v` shows each answer): set \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile`, or run where an \
             instance role is available"
        );
    } else if e.kind == ErrorKind::Unavailable && e.message.contains("credentials") {
        e.kind = ErrorKind::Auth;
        e.message = format!(
            "{}. No AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile`, or run where an instance role is available",
            e.message
        );
    }
    e
}
