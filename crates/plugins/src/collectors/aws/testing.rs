//! Test helpers shared by the aws collector's test modules: moto on a free loopback port and
//! an SDK config pointing at it.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// moto_server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto, or prints why not and returns None (the test then skips).
pub fn moto(test: &str) -> Option<Moto> {
    let Some(bin) = std::env::var_os("SKYMETER_MOTO_SERVER") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: SKYMETER_MOTO_SERVER is not set (scripts/test installs moto and sets it)"
        );
        return None;
    };
    if !std::path::Path::new(&bin).exists() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: SKYMETER_MOTO_SERVER={} does not exist",
            bin.to_string_lossy()
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let m = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not listen on 127.0.0.1:{port} within 30s");
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
