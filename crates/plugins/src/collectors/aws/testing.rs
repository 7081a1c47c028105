//! Test helpers shared by the aws collector's test modules: moto on a free loopback port and
//! an SDK config pointing at it.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;

use super::standin::Moto;

/// moto for `test`, or the testkit's missing-tool rule (a skip on a laptop, a failure under
/// CI) and `None`.
#[track_caller]
pub fn moto(test: &str) -> Option<Moto> {
    skymeter_testkit::tool::require_tool(test, Moto::start())
}

pub async fn sdk(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}
