//! What the server is told at start: where to listen, how to authenticate, TLS files, limits.
//! [`ServerConfig::validate`] checks it before anything binds, so that a mistake is reported
//! with the field it concerns and nothing half-starts.

use async_nats::ServerAddr;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// `Authorization: Bearer <token>`, checked against the store's API tokens.
    #[default]
    Tokens,
    /// Everything open. Refused unless the listen address is loopback.
    Disabled,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The server's configuration. Build it with `ServerConfig { listen, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    pub auth: Auth,
    /// Serve HTTPS with these files; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// Origins allowed to call the API from a browser (`https://grafana.example.com`, or
    /// `*` for any). Empty: no CORS headers, browsers allow same-origin calls only.
    pub cors_origins: Vec<String>,
    /// Host names (optionally `name:port`) that requests may address in their `Host`
    /// header besides the listen address, loopback names and IP literals; `*` allows any.
    /// Everything else is answered `421 host_not_allowed`, which stops DNS rebinding: a web
    /// page whose name resolves to this server still sends its own name as `Host`.
    pub allowed_hosts: Vec<String>,
    /// Most bytes of ingest-scope request bodies (ingest, agent registration, heartbeat) in
    /// flight at once, as reserved before each body is read (see `crate::budget`). A request
    /// that does not fit is answered `429` with `Retry-After`. Default 256 MiB.
    pub ingest_budget_bytes: usize,
    /// Largest request body after decompression. Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest compressed (`gzip`, `zstd`) request body as received. Default 8 MiB.
    pub max_compressed_body_bytes: usize,
    /// A request that takes longer is answered `503 timeout`. Default 30 s.
    pub request_timeout: Duration,
    /// A client that has not sent its request headers in this time is disconnected.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Most request headers per request (hyper answers 431 past it). Default 64.
    pub max_headers: usize,
    /// Largest request head (request line and headers) in bytes. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Points, costs and resources older than this are deleted, hourly. None: kept forever.
    pub retention: Option<Duration>,
    /// Gzip-compress responses for clients that accept it. Default true.
    pub compress_responses: bool,
    /// How long shutdown waits for requests in flight before closing their connections.
    /// Default 30 s.
    pub shutdown_grace: Duration,
    /// Limits of one PromQL query (`[server.query]`).
    pub query: QueryLimits,
    /// The rating job (`[rating]`); off when absent.
    pub rating: Option<crate::rating::RatingConfig>,
    /// Batches consumed from a NATS JetStream stream (`--consume nats://…`); off when
    /// absent.
    pub consume: Option<NatsConsume>,
    /// Findings (`[findings]`) and the price tables they price with.
    pub savings: SavingsConfig,
}

/// Findings, budgets, anomalies and the webhook (docs/savings.md).
#[derive(Clone)]
pub struct SavingsConfig {
    /// `[findings]`: what `/api/v1/findings` computes with.
    pub findings: skymeter_savings::findings::FindingsConfig,
    /// The price tables, by provider id; a provider without one gets findings without
    /// amounts.
    pub prices: skymeter_savings::findings::Prices,
    /// `[[budget]]`.
    pub budgets: Vec<skymeter_savings::budget::BudgetConfig>,
    /// `[anomalies]`.
    pub anomalies: skymeter_savings::anomaly::AnomalyConfig,
    /// `[webhook]`: where budget crossings and anomalies are posted; none: not posted.
    pub webhook: Option<skymeter_savings::notify::WebhookConfig>,
    /// How often budgets, anomalies and the findings totals are evaluated, written as
    /// series and sent to the webhook (`[savings] every`, default 15 minutes).
    pub every: Duration,
}

impl Default for SavingsConfig {
    fn default() -> Self {
        SavingsConfig {
            findings: Default::default(),
            prices: Default::default(),
            budgets: Vec::new(),
            anomalies: Default::default(),
            webhook: None,
            every: Duration::from_secs(15 * 60),
        }
    }
}

impl std::fmt::Debug for SavingsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavingsConfig")
            .field("findings", &self.findings)
            .field("prices", &self.prices.keys().collect::<Vec<_>>())
            .field("budgets", &self.budgets)
            .field("anomalies", &self.anomalies)
            .field("webhook", &self.webhook.as_ref().map(|w| &w.url))
            .field("every", &self.every)
            .finish()
    }
}

impl SavingsConfig {
    /// Checks the budgets, the anomaly settings and the webhook URL.
    pub fn check(&self) -> Result<(), ServerError> {
        let invalid = |field, message: String| ServerError::Invalid { field, message };
        self.findings
            .validate()
            .map_err(|e| invalid("findings", e.to_string()))?;
        skymeter_savings::budget::validate_budgets(&self.budgets)
            .map_err(|e| invalid("budget", e.to_string()))?;
        self.anomalies
            .validate()
            .map_err(|e| invalid("anomalies", e.to_string()))?;
        if let Some(w) = &self.webhook {
            skymeter_savings::notify::WebhookNotifier::new(
                w,
                std::sync::Arc::new(skymeter_savings::notify::MemorySentLog::default()),
            )
            .map_err(|e| invalid("webhook", e.to_string()))?;
        }
        if self.every < Duration::from_secs(1) {
            return Err(invalid(
                "savings.every",
                format!(
                    "is {}; use at least 1s",
                    humantime::format_duration(self.every)
                ),
            ));
        }
        Ok(())
    }
}

/// Limits of one PromQL query (`/api/v1/query`, `query_range`), `[server.query]` in the
/// config file. Over one, the answer is Prometheus' error body: 422 `execution` for the
/// series and sample limits, 503 `timeout` for the time limit, naming the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most series one query may select, over all its selectors; counted from the label
    /// index before any sample is read. Default 100,000.
    pub max_series: usize,
    /// Most samples one query may load and hold at once (raw samples of its selectors,
    /// points it produces); counted while they are read. Default 50,000,000, Prometheus'
    /// `--query.max-samples`; each takes about 16 bytes.
    pub max_samples: usize,
    /// Longest evaluation of one query; checked inside the store's reads too. Default
    /// 20 s; a client's `timeout` parameter can only shorten it, and it never exceeds
    /// `request_timeout` less 0.5 s.
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_series: 100_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(20),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: Auth::Tokens,
            tls: None,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            ingest_budget_bytes: 256 << 20,
            max_body_bytes: 32 << 20,
            max_compressed_body_bytes: 8 << 20,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_headers: 64,
            max_header_bytes: 16 << 10,
            retention: None,
            compress_responses: true,
            shutdown_grace: Duration::from_secs(30),
            query: QueryLimits::default(),
            rating: None,
            consume: None,
            savings: SavingsConfig::default(),
        }
    }
}

/// A configuration the server refuses to start with, or a failure to start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "authentication is disabled but the server would listen on {listen}, which is not a \
         loopback address: anyone who can reach it could write and read everything. Listen on \
         127.0.0.1 / [::1], or enable token authentication"
    )]
    OpenOnNetwork { listen: SocketAddr },
    #[error("server config: `{field}` {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS certificate file {}: {message}", path.display())]
    TlsCert { path: PathBuf, message: String },
    #[error("TLS key file {}: {message}", path.display())]
    TlsKey { path: PathBuf, message: String },
    #[error("TLS setup with {} and {}: {message}", cert.display(), key.display())]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

impl ServerConfig {
    /// Checks everything that can be checked without binding or reading files.
    pub fn validate(&self) -> Result<(), ServerError> {
        if self.auth == Auth::Disabled && !self.listen.ip().is_loopback() {
            return Err(ServerError::OpenOnNetwork {
                listen: self.listen,
            });
        }
        let positive = |field, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ServerError::Invalid {
                    field,
                    message: "must be greater than zero".into(),
                })
            }
        };
        if let Some(r) = &self.rating {
            r.check().map_err(|message| ServerError::Invalid {
                field: "rating",
                message,
            })?;
        }
        self.savings.check()?;
        positive("max_body_bytes", self.max_body_bytes > 0)?;
        positive(
            "max_compressed_body_bytes",
            self.max_compressed_body_bytes > 0,
        )?;
        positive("request_timeout", !self.request_timeout.is_zero())?;
        let request_worst_case = self
            .max_body_bytes
            .saturating_add(self.max_compressed_body_bytes);
        if self.ingest_budget_bytes < request_worst_case {
            return Err(ServerError::Invalid {
                field: "ingest_budget_bytes",
                message: format!(
                    "is {} bytes, less than one compressed request may need (max_body_bytes + \
                     max_compressed_body_bytes = {request_worst_case}); raise it or lower those",
                    self.ingest_budget_bytes
                ),
            });
        }
        for host in &self.allowed_hosts {
            if host != "*" && crate::host::HostPattern::parse(host).is_none() {
                return Err(ServerError::Invalid {
                    field: "allowed_hosts",
                    message: format!(
                        "has `{host}`, which is not a host name: use a name or address as \
                         clients write it in URLs (grafana.example.com, 10.0.0.5, [fd00::5], \
                         optionally with :port), or `*` for any"
                    ),
                });
            }
        }
        positive("header_read_timeout", !self.header_read_timeout.is_zero())?;
        positive("max_headers", self.max_headers > 0)?;
        positive("query.max_series", self.query.max_series > 0)?;
        positive("query.max_samples", self.query.max_samples > 0)?;
        positive("query.timeout", !self.query.timeout.is_zero())?;
        if self.max_header_bytes < 1024 {
            return Err(ServerError::Invalid {
                field: "max_header_bytes",
                message: format!("is {}; use at least 1024", self.max_header_bytes),
            });
        }
        if let Some(r) = self.retention {
            if r < Duration::from_secs(3600) {
                return Err(ServerError::Invalid {
                    field: "retention",
                    message: format!("is {}; use at least 1h", humantime::format_duration(r)),
                });
            }
        }
        for origin in &self.cors_origins {
            if origin == "*" {
                continue;
            }
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && axum::http::HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(ServerError::Invalid {
                    field: "cors_origins",
                    message: format!(
                        "has `{origin}`, which is not an origin: use scheme://host[:port] \
                         with no path, such as https://grafana.example.com, or `*`"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Where and how the server consumes batches from NATS.
#[derive(Debug, Clone)]
pub struct NatsConsume {
    /// The NATS servers (`nats://host:port`), one or a cluster's.
    pub servers: Vec<ServerAddr>,
    /// The stream the agents' `nats` publishers write to. Default `SKYMETER`.
    pub stream: String,
    /// Subjects taken from it; default: all of the stream's.
    pub subject: Option<String>,
    /// The durable consumer's name, the same on every server so that they share the work.
    /// Default `skymeter`.
    pub durable: String,
    /// How long a delivered message may stay unacknowledged before JetStream gives it to
    /// another server. Default 60 s.
    pub ack_wait: Duration,
    /// Batches being stored at once by this server, and the size of its pulls: a server
    /// holds at most about twice this unacknowledged. Default 16.
    pub max_in_flight: usize,
    pub login: NatsLogin,
}

/// How the consumer logs in to NATS.
#[derive(Debug, Clone, Default)]
pub enum NatsLogin {
    #[default]
    None,
    Token(SecretString),
    UserPassword(String, SecretString),
    CredsFile(PathBuf),
}

impl NatsConsume {
    pub fn new(servers: Vec<ServerAddr>) -> NatsConsume {
        NatsConsume {
            servers,
            stream: "SKYMETER".into(),
            subject: None,
            durable: "skymeter".into(),
            ack_wait: Duration::from_secs(60),
            max_in_flight: 16,
            login: NatsLogin::None,
        }
    }

    /// `nats://a:4222,nats://b:4222` as shown in logs (credentials are never in it: the
    /// URLs are refused with them).
    pub(crate) fn shown(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("{}://{}:{}", s.scheme(), s.host(), s.port()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_auth_is_refused_off_loopback() {
        let mut c = ServerConfig {
            auth: Auth::Disabled,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        c.listen = "[::1]:9000".parse().unwrap();
        assert!(c.validate().is_ok());
        c.listen = "0.0.0.0:9000".parse().unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("0.0.0.0:9000") && err.contains("loopback"),
            "{err}"
        );
        c.auth = Auth::Tokens;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn zero_query_limits_are_named() {
        let c = ServerConfig {
            query: QueryLimits {
                max_samples: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "server config: `query.max_samples` must be greater than zero"
        );
    }

    #[test]
    fn allowed_hosts_and_the_ingest_budget_are_checked() {
        let ok = ServerConfig {
            allowed_hosts: vec![
                "skymeter.example.com".into(),
                "10.0.0.5:8080".into(),
                "*".into(),
            ],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let bad = ServerConfig {
            allowed_hosts: vec!["https://skymeter.example.com/".into()],
            ..Default::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("allowed_hosts") && err.contains("https://skymeter.example.com/"),
            "{err}"
        );
        let small = ServerConfig {
            ingest_budget_bytes: 10 << 20,
            ..Default::default()
        };
        let err = small.validate().unwrap_err().to_string();
        assert!(
            err.contains("ingest_budget_bytes") && err.contains("max_body_bytes"),
            "{err}"
        );
    }

    #[test]
    fn bad_cors_origins_are_named() {
        let c = ServerConfig {
            cors_origins: vec!["https://ok.example".into(), "example.com/x".into()],
            ..Default::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("cors_origins") && err.contains("example.com/x"),
            "{err}"
        );
    }
}
