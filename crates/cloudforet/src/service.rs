//! The gRPC service: Cloudforet's `Collector` (init, verify, collect) over a skymeter
//! server, with gRPC health and server reflection (v1, and v1alpha, which Cloudforet's own
//! client uses to discover a plugin).

use crate::mapping::{self, Readings, METRICS};
use crate::options::{Filter, Filters, InvalidArgument, Options, Secret, Window, FILTER_KEYS};
use crate::proto::collector_server::{Collector, CollectorServer};
use crate::proto::{
    resource_info::State, CollectRequest, InitRequest, PluginInfo, ResourceInfo, VerifyRequest,
};
use crate::source::{Resource, ResourceQuery, Source, SourceError};
use crate::structs::{struct_of, to_json};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Resources per group of PromQL queries: each metric is asked for a group at once
/// (`resource_id=~"a|b|…"`), so a collect of N resources makes about N / 50 × 20 queries.
const CHUNK: usize = 50;

/// The plugin: where the skymeter server is when `secret_data` does not say.
#[derive(Clone, Default)]
pub struct Plugin {
    server: Option<String>,
    token: Option<String>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Plugin {
    /// `server` and `token` are the fallbacks of `secret_data.skymeter_url` and `.token`.
    pub fn new(server: Option<String>, token: Option<String>) -> Plugin {
        Plugin { server, token }
    }

    fn secret(&self, secret_data: Option<&prost_types::Struct>) -> Result<Secret, Status> {
        Secret::parse(
            &to_json(secret_data),
            self.server.as_deref(),
            self.token.as_deref(),
        )
        .map_err(invalid)
    }
}

fn invalid(e: InvalidArgument) -> Status {
    Status::invalid_argument(e.0)
}

fn status(e: SourceError) -> Status {
    match e {
        SourceError::Unavailable(m) => Status::unavailable(m),
        SourceError::Unauthenticated(m) => Status::unauthenticated(m),
        SourceError::PermissionDenied(m) => Status::permission_denied(m),
        SourceError::Failed(m) => Status::failed_precondition(m),
    }
}

/// What `init` returns: the resource types, schedules and features, the options schema,
/// and the filters a collect takes, in the shape Cloudforet's collectors publish.
pub fn metadata() -> Value {
    let list = |title: &str, description: &str| {
        json!({"title": title, "type": "array", "items": {"type": "string"},
               "description": description})
    };
    json!({
        "supported_resource_type": [mapping::SERVER, mapping::CLOUD_SERVICE],
        "supported_schedules": ["hours"],
        "supported_features": [],
        "filter_format": FILTER_KEYS.iter().map(|k| json!({
            "key": k, "name": k, "type": "list", "resource_type": "SERVER",
        })).collect::<Vec<_>>(),
        "options_schema": {
            "type": "object",
            "required": [],
            "order": ["period_hours", "start", "end", "providers", "accounts", "regions",
                      "kinds", "resource_ids", "include_cloud_services"],
            "properties": {
                "period_hours": {"title": "Period (hours)", "type": "number", "default": 24,
                    "minimum": 0.0003, "maximum": 87600,
                    "description": "data.monitoring summarises this many hours before the collect"},
                "start": {"title": "Start", "type": "string", "format": "date-time",
                    "description": "Instead of period_hours: the start of the period (RFC 3339)"},
                "end": {"title": "End", "type": "string", "format": "date-time",
                    "description": "The end of the period (RFC 3339; default: the collect's time)"},
                "providers": list("Providers", "Only these providers (aws, google_cloud or gcp, azure, host…)"),
                "accounts": list("Accounts", "Only these accounts (AWS account, GCP project, Azure subscription)"),
                "regions": list("Regions", "Only these regions"),
                "kinds": list("Kinds", "Only these skymeter kinds (compute.instance, host, database.instance…)"),
                "resource_ids": list("Resource IDs", "Only these resources (skymeter id or reference.resource_id)"),
                "include_cloud_services": {"title": "Include cloud services", "type": "boolean",
                    "default": false,
                    "description": "Besides servers, every other resource as inventory.CloudService"},
            },
        },
    })
}

#[tonic::async_trait]
impl Collector for Plugin {
    async fn init(&self, req: Request<InitRequest>) -> Result<Response<PluginInfo>, Status> {
        Options::parse(&to_json(req.get_ref().options.as_ref())).map_err(invalid)?;
        Ok(Response::new(PluginInfo {
            metadata: Some(struct_of(&metadata())),
        }))
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Result<Response<()>, Status> {
        let req = req.into_inner();
        Options::parse(&to_json(req.options.as_ref())).map_err(invalid)?;
        let secret = self.secret(req.secret_data.as_ref())?;
        let source = Source::new(secret);
        match source.check().await {
            Ok(()) => {
                tracing::info!(
                    server = source.server(),
                    "verify: the server answers and the token may read"
                );
                Ok(Response::new(()))
            }
            Err(e) => {
                tracing::warn!(server = source.server(), error = %e, "verify failed");
                Err(status(e))
            }
        }
    }

    type collectStream = ReceiverStream<Result<ResourceInfo, Status>>;

    async fn collect(
        &self,
        req: Request<CollectRequest>,
    ) -> Result<Response<Self::collectStream>, Status> {
        let req = req.into_inner();
        let options = Options::parse(&to_json(req.options.as_ref())).map_err(invalid)?;
        let filters = Filters(vec![
            options.filter.clone(),
            Filter::from_filter(&to_json(req.filter.as_ref())).map_err(invalid)?,
            Filter::from_task_options(&to_json(req.task_options.as_ref())).map_err(invalid)?,
        ]);
        let window = options
            .period
            .resolve(chrono::Utc::now())
            .map_err(invalid)?;
        let source = Source::new(self.secret(req.secret_data.as_ref())?);
        let started = Instant::now();
        let resources = list(&source, &filters, options.include_cloud_services)
            .await
            .map_err(|e| {
                tracing::warn!(server = source.server(), error = %e, "collect: cannot list resources");
                status(e)
            })?;
        tracing::info!(
            server = source.server(),
            resources = resources.len(),
            window_s = window.seconds(),
            "collect: listing done, reading utilization"
        );
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0usize, 0usize);
            for chunk in resources.chunks(CHUNK) {
                for item in collect_chunk(&source, chunk, &window).await {
                    if item.state == State::Failure as i32 {
                        failed += 1;
                    }
                    sent += 1;
                    if tx.send(Ok(item)).await.is_err() {
                        tracing::warn!("collect: the client went away");
                        return;
                    }
                }
            }
            tracing::info!(
                server = source.server(),
                sent,
                failed,
                took_ms = started.elapsed().as_millis() as u64,
                "collect done"
            );
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The resources to collect, filtered: the kinds a filter names, else servers (and every
/// other resource with `include_cloud_services`).
pub async fn list(
    source: &Source,
    filters: &Filters,
    include_cloud_services: bool,
) -> Result<Vec<Resource>, SourceError> {
    let mut kinds: Vec<Option<&str>> = match filters.kinds() {
        Some(kinds) => kinds.iter().map(|k| Some(k.as_str())).collect(),
        None if include_cloud_services => vec![None],
        None => mapping::SERVER_KINDS.iter().copied().map(Some).collect(),
    };
    kinds.sort();
    kinds.dedup();
    let provider = filters
        .pinned(|f| &f.providers)
        .map(mapping::skymeter_provider);
    let mut out = Vec::new();
    for kind in kinds {
        let q = ResourceQuery {
            provider,
            account: filters.pinned(|f| &f.accounts),
            region: filters.pinned(|f| &f.regions),
            kind,
        };
        for r in source.resources(&q).await? {
            let reference = mapping::reference_id(&r);
            if filters.passes(
                &r.provider,
                &r.account,
                &r.region,
                &r.kind,
                &[&r.id, &reference],
            ) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// A PromQL string literal of `s` (backslashes and quotes escaped).
fn promql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A regular expression matching exactly these strings.
fn alternation<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut parts: Vec<String> = values
        .into_iter()
        .map(|v| {
            let mut e = String::with_capacity(v.len());
            for c in v.chars() {
                if "\\.+*?()|[]{}^$".contains(c) {
                    e.push('\\');
                }
                e.push(c);
            }
            e
        })
        .collect();
    parts.sort();
    parts.dedup();
    parts.join("|")
}

/// The selector of `metric`'s series of these resources.
pub fn selector(metric: &str, resources: &[Resource]) -> String {
    let mut s = format!("{}{{", mapping::prometheus_name(metric));
    let mut one = |label: &str, values: Vec<&str>| {
        let mut v = values.clone();
        v.sort();
        v.dedup();
        if v.len() == 1 && !v[0].is_empty() {
            s.push_str(&format!("{label}={},", promql_string(v[0])));
        } else if !v.iter().any(|x| x.is_empty()) {
            s.push_str(&format!("{label}=~{},", promql_string(&alternation(v))));
        }
    };
    one(
        "provider",
        resources.iter().map(|r| r.provider.as_str()).collect(),
    );
    one(
        "resource_id",
        resources.iter().map(|r| r.id.as_str()).collect(),
    );
    if s.ends_with(',') {
        s.pop();
    }
    s.push('}');
    s
}

/// The `ResourceInfo` of each resource of `chunk`: 2 queries per metric for them all;
/// when a query fails, a failure item for each resource, naming it.
async fn collect_chunk(source: &Source, chunk: &[Resource], window: &Window) -> Vec<ResourceInfo> {
    let mut readings = Readings::default();
    let range = format!("[{}s]", window.seconds());
    // The 20 queries of a group at once: a collect takes as long as its slowest query per
    // group, not their sum.
    let mut queries = tokio::task::JoinSet::new();
    for metric in METRICS {
        let sel = selector(metric, chunk);
        for (func, is_max) in [("avg_over_time", false), ("max_over_time", true)] {
            let q = format!("{func}({sel}{range})");
            let (source, end) = (source.clone(), window.end);
            queries.spawn(async move { (metric, is_max, source.query(&q, end).await) });
        }
    }
    let mut error: Option<String> = None;
    while let Some(done) = queries.join_next().await {
        match done {
            Ok((metric, is_max, Ok(samples))) => readings.add(metric, is_max, samples),
            Ok((metric, _, Err(e))) => {
                error.get_or_insert_with(|| format!("{metric}: {e}"));
            }
            Err(e) => {
                error.get_or_insert_with(|| format!("a query task failed: {e}"));
            }
        }
    }
    chunk
        .iter()
        .map(|r| match &error {
            Some(e) => {
                tracing::warn!(resource = %r.key, error = %e, "collect: a resource failed");
                ResourceInfo {
                    state: State::Failure as i32,
                    message: format!(
                        "{} ({} {}): cannot read its utilization from skymeter: {e}",
                        r.key,
                        r.kind,
                        mapping::reference_id(r)
                    ),
                    resource_type: mapping::ERROR_RESOURCE.into(),
                    match_rules: None,
                    resource: Some(struct_of(&mapping::failure_resource(r))),
                    options: None,
                }
            }
            None => {
                let monitoring = readings.monitoring(&mapping::resource_ref(r));
                let (ty, rules, resource) = mapping::resource_info(r, monitoring, window);
                ResourceInfo {
                    state: State::Success as i32,
                    message: String::new(),
                    resource_type: ty.into(),
                    match_rules: Some(struct_of(&rules)),
                    resource: Some(struct_of(&resource)),
                    options: None,
                }
            }
        })
        .collect()
}

/// Where and how the plugin serves.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub server: Option<String>,
    pub token: Option<String>,
}

/// Why the plugin could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the gRPC server stopped: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves the Collector, health and reflection on `config.listen` until `shutdown`.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    let plugin = Plugin::new(config.server, config.token);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CollectorServer<Plugin>>().await;
    // Both reflection services know every service, each other included, so that either
    // lists all that this port serves.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let v1 = reflection().build_v1()?;
    let v1alpha = reflection().build_v1alpha()?;
    tracing::info!(
        listen = %local,
        server = plugin.server.as_deref().unwrap_or("(from secret_data)"),
        "serving Cloudforet's spaceone.api.inventory.plugin.Collector, gRPC health and reflection"
    );
    tonic::transport::Server::builder()
        .add_service(CollectorServer::new(plugin))
        .add_service(health_service)
        .add_service(v1)
        .add_service(v1alpha)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(provider: &str, id: &str) -> Resource {
        Resource {
            provider: provider.into(),
            id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn selectors_quote_and_escape_ids() {
        assert_eq!(
            selector("cpu.utilization", &[r("aws", "i-1")]),
            r#"cpu_utilization_percent{provider="aws",resource_id="i-1"}"#
        );
        assert_eq!(
            selector(
                "memory.usage",
                &[r("aws", "a.b"), r("gcp", "x\"y"), r("aws", "a.b")]
            ),
            r#"memory_usage_percent{provider=~"aws|gcp",resource_id=~"a\\.b|x\"y"}"#
        );
    }

    /// A server that answers every request with `status` and `body`; its base URL.
    async fn answering(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_failed_query_is_a_failure_item_naming_each_resource() {
        let base = answering("500 Internal Server Error", r#"{"error": "disk on fire"}"#).await;
        let secret = Secret::parse(&Default::default(), Some(&base), Some("sky_s3cret")).unwrap();
        let source = Source::new(secret);
        let web = Resource {
            key: "aws/1/us-east-1/i-1".into(),
            kind: "compute.instance".into(),
            ..r("aws", "i-1")
        };
        let db = Resource {
            key: "aws/1/us-east-1/orders".into(),
            kind: "database.instance".into(),
            ..r("aws", "orders")
        };
        let window = Window {
            start: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            end: chrono::DateTime::from_timestamp(3600, 0).unwrap(),
        };
        let items = collect_chunk(&source, &[web, db], &window).await;
        assert_eq!(items.len(), 2);
        for (item, key) in items
            .iter()
            .zip(["aws/1/us-east-1/i-1", "aws/1/us-east-1/orders"])
        {
            assert_eq!(item.state, State::Failure as i32);
            assert_eq!(item.resource_type, "inventory.ErrorResource");
            assert!(item.message.contains(key), "{}", item.message);
            assert!(item.message.contains("disk on fire"), "{}", item.message);
            assert!(!item.message.contains("s3cret"), "{}", item.message);
        }
        // And the whole call fails when the server is not there at all.
        let gone = Source::new(
            Secret::parse(&Default::default(), Some("http://127.0.0.1:9"), None).unwrap(),
        );
        let e = list(&gone, &Filters::default(), false).await.unwrap_err();
        assert!(matches!(e, SourceError::Unavailable(_)), "{e}");
    }

    #[test]
    fn metadata_lists_the_resource_types_and_every_option() {
        let m = metadata();
        assert_eq!(m["supported_resource_type"][0], "inventory.Server");
        let props = m["options_schema"]["properties"].as_object().unwrap();
        for k in crate::options::OPTION_KEYS {
            assert!(props.contains_key(k), "{k}");
        }
        assert_eq!(
            m["options_schema"]["order"].as_array().unwrap().len(),
            crate::options::OPTION_KEYS.len()
        );
    }
}
