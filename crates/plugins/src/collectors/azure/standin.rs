//! A local stand-in for the Azure APIs the collector calls, answering in the shapes of the
//! official REST references: the Entra ID OAuth2 client-credentials token endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, over TLS with a throwaway certificate, since
//! azure_identity refuses http authorities), ARM lists with `nextLink` paging, Azure
//! Monitor `metrics:getBatch`, and the Cost Management query with `properties.nextLink`.
//! It counts every call and can answer 429 (with Retry-After), 401 and 403.
//!
//! Compiled for the collector's unit tests and, with the `standin` feature, for
//! `crates/cli/tests/azure.rs` and `bench/azure_standin`. Binds 127.0.0.1 only.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0c9a1b2e-3f4d-4a5b-8c6d-7e8f9a0b1c2d";
pub const CLIENT_SECRET: &str = "s3cr3t-v4lue-never-printed";
pub const SUB: &str = "8f1c2d3e-4a5b-4c6d-9e7f-0a1b2c3d4e5f";
pub const ARM_TOKEN: &str = "arm-access-token";
pub const METRICS_TOKEN: &str = "metrics-access-token";

/// What the stand-in serves and how it misbehaves.
#[derive(Debug, Clone)]
pub struct Spec {
    pub vms: usize,
    pub region: String,
    /// Items per ARM list page.
    pub page_size: usize,
    /// The first getBatch call answers 429 with `Retry-After: 1`.
    pub throttle_first_batch: bool,
    /// Requests whose path and query contain one of these answer 403 AuthorizationFailed.
    pub deny: Vec<String>,
    /// Every ARM and metrics call answers 401.
    pub reject_tokens: bool,
    /// The other resource types (disks, AKS, sites, SQL, storage) and cost rows.
    pub others: bool,
    /// Added to every answer (the benchmark's stand-in for Azure's own answer time).
    pub latency_ms: u64,
    /// The Cost Management query answers `204 No Content` (no body), as it does when there
    /// are no rows.
    pub cost_no_content: bool,
    /// What waste findings look for: an unattached disk, snapshots, public IPs (in use,
    /// unused, a Basic dynamic one without an address, one of a NAT gateway), load balancers
    /// (Standard with 7 rules, Basic internal) and a NAT gateway.
    pub waste: bool,
    /// A fleet of the test's own: when set, the VM, disk, snapshot and public IP lists answer
    /// exactly its items (`vms` and `waste` do not apply to them), and getBatch its values.
    pub fleet: Option<Fleet>,
}

/// What a test puts in the subscription instead of the generated VMs and waste items.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub vms: Vec<FleetVm>,
    /// Managed disks, snapshots and public IPs as their List answers show them
    /// ([`disk_json`], [`snapshot_json`], [`public_ip_json`]).
    pub disks: Vec<Value>,
    pub snapshots: Vec<Value>,
    pub public_ips: Vec<Value>,
    /// The value of (resource id, metric name, aggregation) in the interval starting at the
    /// Unix second given; `None` leaves the aggregation out of that data point, as Azure
    /// Monitor does for an interval without data. Unset: [`value`].
    pub values: Option<MetricValues>,
}

/// A [`Fleet`]'s metric values: (resource id, metric name, aggregation, interval start) →
/// the value.
pub type MetricValues = fn(&str, &str, &str, i64) -> Option<f64>;

/// A VM of a [`Fleet`]: Linux, in `rg-prod`, its id [`vm_id_named`].
#[derive(Debug, Clone)]
pub struct FleetVm {
    pub name: String,
    /// `hardwareProfile.vmSize` (`Standard_D8s_v5`).
    pub size: String,
    /// PowerState/running, else PowerState/deallocated.
    pub running: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            vms: 3,
            region: "eastus".into(),
            page_size: 2,
            throttle_first_batch: false,
            deny: Vec::new(),
            reject_tokens: false,
            others: true,
            latency_ms: 0,
            cost_no_content: false,
            waste: false,
            fleet: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    /// Calls per key (`token`, `vms`, `vmSizes`, `disks`, `aks`, `sites`, `sqlServers`,
    /// `sqlDatabases`, `storage`, `getBatch`, `cost`).
    pub calls: BTreeMap<String, u64>,
    /// Form bodies of the token requests.
    pub token_forms: Vec<HashMap<String, String>>,
    /// Resource ids per getBatch call, and its query.
    pub batches: Vec<(Vec<String>, HashMap<String, String>)>,
    /// Cost query bodies.
    pub cost_bodies: Vec<Value>,
    /// Requests being answered now, and the most at once.
    pub in_flight: usize,
    pub max_in_flight: usize,
}

pub struct Mock {
    /// `http://127.0.0.1:port` (ARM, metrics under `/metrics/{region}`, cost).
    pub arm: String,
    /// `https://127.0.0.1:port` (token endpoint).
    pub login: String,
    /// The PEM of the token endpoint's certificate (trust it with `ca_file`).
    pub ca_file: PathBuf,
    pub seen: Arc<Mutex<Seen>>,
    _dir: tempfile::TempDir,
}

struct Ctx {
    spec: Spec,
    seen: Arc<Mutex<Seen>>,
    arm: String,
}

impl Mock {
    pub async fn start(spec: Spec) -> Mock {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let arm_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let arm = format!("http://{}", arm_listener.local_addr().unwrap());
        let ctx = Arc::new(Ctx {
            spec,
            seen: seen.clone(),
            arm: arm.clone(),
        });
        let c = ctx.clone();
        let app = Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| {
            let c = c.clone();
            async move { answer(&c, m, u, h, b).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(arm_listener, app.clone()).await;
        });

        // The token endpoint over TLS.
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ck.cert.pem()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
            ck.key_pair.serialize_der().into(),
        );
        let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let login_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let login = format!("https://{}", login_listener.local_addr().unwrap());
        let c = ctx.clone();
        let login_app = Router::new().fallback(move |m: Method, u: Uri, h: HeaderMap, b: Bytes| {
            let c = c.clone();
            async move { answer(&c, m, u, h, b).await }
        });
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = login_listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = login_app.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                });
            }
        });
        Mock {
            arm,
            login,
            ca_file,
            seen,
            _dir: dir,
        }
    }

    /// The metrics endpoint template for `metrics_endpoint`.
    pub fn metrics_endpoint(&self) -> String {
        format!("{}/metrics/{{region}}", self.arm)
    }

    pub fn calls(&self, key: &str) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .calls
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// A TOML config for the collector against this stand-in.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "subscriptions = [\"{SUB}\"]\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nauthority_host = \"{}\"\nresource_manager_endpoint = \"{}\"\nmetrics_endpoint = \"{}\"\nca_file = \"{}\"\ndelay = \"0s\"\nbackoff = \"10ms\"\n{extra}",
            self.login,
            self.arm,
            self.metrics_endpoint(),
            self.ca_file.display()
        )
    }
}

fn count(c: &Ctx, key: &str) {
    *c.seen.lock().unwrap().calls.entry(key.into()).or_default() += 1;
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn query(u: &Uri) -> HashMap<String, String> {
    u.query().map(|q| form(q.as_bytes())).unwrap_or_default()
}

/// `application/x-www-form-urlencoded` (the stand-in has no form crate).
fn form(b: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(b)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Every request: the latency, the in-flight count, then the answer.
async fn answer(c: &Ctx, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path() == "/_stats" {
        let s = c.seen.lock().unwrap();
        return axum::Json(json!({
            "calls": s.calls,
            "batch_sizes": s.batches.iter().map(|b| b.0.len()).collect::<Vec<_>>(),
            "max_in_flight": s.max_in_flight,
        }))
        .into_response();
    }
    {
        let mut s = c.seen.lock().unwrap();
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
    }
    if c.spec.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(c.spec.latency_ms)).await;
    }
    let r = handle(c, method, uri, headers, body);
    c.seen.lock().unwrap().in_flight -= 1;
    r
}

fn handle(c: &Ctx, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    if path.ends_with("/oauth2/v2.0/token") {
        return token(c, &method, &path, &body);
    }
    let q = query(&uri);
    if path == "/api/retail/prices" {
        return retail_prices(c, &q);
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_metrics = path.starts_with("/metrics/");
    let want = if is_metrics { METRICS_TOKEN } else { ARM_TOKEN };
    if c.spec.reject_tokens || auth != format!("Bearer {want}") {
        count(c, "rejected");
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        );
    }
    let full = uri.to_string();
    if let Some(d) = c.spec.deny.iter().find(|d| full.contains(d.as_str())) {
        count(c, "denied");
        return arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!("The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have authorization to perform action '{d}/read' over scope '/subscriptions/{SUB}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
        );
    }
    let sub_prefix = format!("/subscriptions/{SUB}/providers/");
    if is_metrics && path.ends_with("/metrics:getBatch") && method == Method::POST {
        return get_batch(c, &path, q, &body);
    }
    let Some(rest) = path.strip_prefix(&sub_prefix) else {
        if path.contains("/providers/Microsoft.Sql/servers/") && path.ends_with("/databases") {
            count(c, "sqlDatabases");
            return page(c, &path, &q, sql_databases(&path));
        }
        return arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route {path}"),
        );
    };
    let others = c.spec.others;
    let waste = c.spec.waste;
    // ARM refuses a request without its api-version.
    if !q.contains_key("api-version") {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    match rest {
        "Microsoft.Compute/virtualMachines" => {
            let status = q.get("statusOnly").map(String::as_str) == Some("true");
            count(c, if status { "vmStatus" } else { "vms" });
            let items = match &c.spec.fleet {
                Some(f) => f
                    .vms
                    .iter()
                    .map(|v| vm_json(c, &v.name, &v.size, !v.running, status, None))
                    .collect(),
                None => (0..c.spec.vms).map(|i| vm(c, i, status)).collect(),
            };
            page(c, &path, &q, items)
        }
        r if r.starts_with("Microsoft.Compute/locations/") && r.ends_with("/vmSizes") => {
            count(c, "vmSizes");
            axum::Json(json!({ "value": [
                { "name": "Standard_D2s_v3", "numberOfCores": 2, "osDiskSizeInMB": 1047552,
                  "resourceDiskSizeInMB": 16384, "memoryInMB": 8192, "maxDataDiskCount": 4 },
                { "name": "Standard_B1s", "numberOfCores": 1, "osDiskSizeInMB": 1047552,
                  "resourceDiskSizeInMB": 4096, "memoryInMB": 1024, "maxDataDiskCount": 2 },
                // Dsv5 (learn.microsoft.com/azure/virtual-machines/sizes, Dsv5 series: 4 GiB
                // per vCPU, no temporary disk).
                { "name": "Standard_D2s_v5", "numberOfCores": 2, "osDiskSizeInMB": 1047552,
                  "resourceDiskSizeInMB": 0, "memoryInMB": 8192, "maxDataDiskCount": 4 },
                { "name": "Standard_D4s_v5", "numberOfCores": 4, "osDiskSizeInMB": 1047552,
                  "resourceDiskSizeInMB": 0, "memoryInMB": 16384, "maxDataDiskCount": 8 },
                { "name": "Standard_D8s_v5", "numberOfCores": 8, "osDiskSizeInMB": 1047552,
                  "resourceDiskSizeInMB": 0, "memoryInMB": 32768, "maxDataDiskCount": 16 }
            ]}))
            .into_response()
        }
        "Microsoft.Compute/disks" => {
            count(c, "disks");
            let mut items = if others { vec![disk(c)] } else { vec![] };
            if waste {
                items.push(orphan_disk(c));
            }
            if let Some(f) = &c.spec.fleet {
                items = f.disks.clone();
            }
            page(c, &path, &q, items)
        }
        "Microsoft.Compute/snapshots" => {
            count(c, "snapshots");
            let items = match &c.spec.fleet {
                Some(f) => f.snapshots.clone(),
                None if waste => snapshots(c),
                None => vec![],
            };
            page(c, &path, &q, items)
        }
        "Microsoft.Network/publicIPAddresses" => {
            count(c, "publicIps");
            let items = match &c.spec.fleet {
                Some(f) => f.public_ips.clone(),
                None if waste => public_ips(c),
                None => vec![],
            };
            page(c, &path, &q, items)
        }
        "Microsoft.Network/loadBalancers" => {
            count(c, "loadBalancers");
            page(c, &path, &q, if waste { load_balancers(c) } else { vec![] })
        }
        "Microsoft.Network/natGateways" => {
            count(c, "natGateways");
            page(
                c,
                &path,
                &q,
                if waste { vec![nat_gateway(c)] } else { vec![] },
            )
        }
        "Microsoft.ContainerService/managedClusters" => {
            count(c, "aks");
            page(c, &path, &q, if others { vec![aks(c)] } else { vec![] })
        }
        "Microsoft.Web/sites" => {
            count(c, "sites");
            page(c, &path, &q, if others { sites(c) } else { vec![] })
        }
        "Microsoft.Sql/servers" => {
            count(c, "sqlServers");
            page(
                c,
                &path,
                &q,
                if others { vec![sql_server(c)] } else { vec![] },
            )
        }
        "Microsoft.Storage/storageAccounts" => {
            count(c, "storage");
            page(c, &path, &q, if others { vec![storage(c)] } else { vec![] })
        }
        "Microsoft.CostManagement/query" if method == Method::POST => cost(c, &q, &body),
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route {path}"),
        ),
    }
}

fn token(c: &Ctx, method: &Method, path: &str, body: &[u8]) -> Response {
    count(c, "token");
    let f = form(body);
    c.seen.lock().unwrap().token_forms.push(f.clone());
    let ok = *method == Method::POST
        && path == format!("/{TENANT}/oauth2/v2.0/token")
        && f.get("grant_type").map(String::as_str) == Some("client_credentials")
        && f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                "error_codes": [7000215],
                "timestamp": "2024-05-01 10:00:00Z",
                "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
                "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd"
            })),
        )
            .into_response();
    }
    let access = match f.get("scope").map(String::as_str) {
        Some("https://management.azure.com/.default") => ARM_TOKEN,
        Some("https://metrics.monitor.azure.com/.default") => METRICS_TOKEN,
        _ => "unknown-scope-token",
    };
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access
    }))
    .into_response()
}

/// One page of an ARM list: `value` and, when more remain, `nextLink` (`$skiptoken`).
fn page(c: &Ctx, path: &str, q: &HashMap<String, String>, items: Vec<Value>) -> Response {
    let from: usize = q
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let to = (from + c.spec.page_size).min(items.len());
    let mut out = json!({ "value": items[from.min(to)..to] });
    if to < items.len() {
        let mut query: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "$skiptoken")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.sort();
        query.push(format!("$skiptoken={to}"));
        out["nextLink"] = json!(format!("{}{path}?{}", c.arm, query.join("&")));
    }
    axum::Json(out).into_response()
}

fn rg_id(c: &Ctx, rest: &str) -> String {
    let _ = c;
    format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/{rest}")
}

pub fn vm_id(i: usize) -> String {
    vm_id_named(&format!("vm-{i:04}"))
}

/// The ARM id of the VM `name` in `rg-prod`.
pub fn vm_id_named(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// A VM as List All answers it; with `statusOnly=true`, the run-time status only (the
/// instance view, no hardware profile, no tags).
fn vm(c: &Ctx, i: usize, status_only: bool) -> Value {
    let stopped = i % 10 == 9; // every tenth VM deallocated
    let env = if i.is_multiple_of(2) { "prod" } else { "dev" };
    let mut v = vm_json(
        c,
        &format!("vm-{i:04}"),
        "Standard_D2s_v3",
        stopped,
        status_only,
        Some(env),
    );
    if !status_only {
        v["properties"]["vmId"] = json!(format!("0f4c2a7e-0000-4000-8000-{i:012}"));
    }
    v
}

/// The VM `name` (Linux, `size`, tag `env` when given) as List All answers it, or its
/// `statusOnly=true` view.
fn vm_json(
    c: &Ctx,
    name: &str,
    size: &str,
    stopped: bool,
    status_only: bool,
    env: Option<&str>,
) -> Value {
    if status_only {
        return json!({
            "name": name,
            "id": vm_id_named(name),
            "type": "Microsoft.Compute/virtualMachines",
            "location": c.spec.region,
            "properties": {
                "instanceView": { "statuses": [
                    { "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded" },
                    { "code": if stopped { "PowerState/deallocated" } else { "PowerState/running" }, "level": "Info",
                      "displayStatus": if stopped { "VM deallocated" } else { "VM running" } }
                ]}
            }
        });
    }
    let mut v = json!({
        "name": name,
        "id": vm_id_named(name),
        "type": "Microsoft.Compute/virtualMachines",
        "location": c.spec.region,
        "zones": ["1"],
        "properties": {
            "vmId": "0f4c2a7e-0000-4000-8000-000000000000",
            "hardwareProfile": { "vmSize": size },
            "storageProfile": { "osDisk": { "osType": "Linux", "name": format!("{name}-os"), "createOption": "FromImage" } },
            "provisioningState": "Succeeded",
            "timeCreated": "2024-05-01T10:00:00.0000000+00:00"
        }
    });
    if let Some(env) = env {
        v["tags"] = json!({ "env": env });
    }
    v
}

/// Items of the Retail Prices API in `region`, as its reference shows them: VM sizes (Linux,
/// Windows, Spot, Low Priority), managed-disk tiers and disk operations, the AKS tiers, and
/// a reservation price that `priceType eq 'Consumption'` leaves out.
pub fn retail_items(region: &str) -> Vec<Value> {
    let item = |service: &str,
                family: &str,
                product: &str,
                sku: &str,
                meter: &str,
                arm_sku: &str,
                unit: &str,
                price: f64,
                kind: &str| {
        json!({
            "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
            "armRegionName": region, "location": "US East", "effectiveStartDate": "2024-03-01T00:00:00Z",
            "meterId": "00000000-0000-0000-0000-000000000000", "meterName": meter,
            "productId": "DZH318Z0BQ4L", "skuId": "DZH318Z0BQ4L/00TG", "availabilityId": null,
            "productName": product, "skuName": sku, "serviceName": service,
            "serviceId": "DZH313Z7MMC8", "serviceFamily": family, "unitOfMeasure": unit,
            "type": kind, "isPrimaryMeterRegion": true, "armSkuName": arm_sku
        })
    };
    let vm = |product: &str, sku: &str, arm: &str, price: f64| {
        item(
            "Virtual Machines",
            "Compute",
            product,
            sku,
            sku,
            arm,
            "1 Hour",
            price,
            "Consumption",
        )
    };
    let disk = |product: &str, tier: &str, price: f64| {
        item(
            "Storage",
            "Storage",
            product,
            tier,
            &format!("{tier} Disk"),
            "",
            "1/Month",
            price,
            "Consumption",
        )
    };
    let mut reservation = vm(
        "Virtual Machines DSv3 Series",
        "D2s v3",
        "Standard_D2s_v3",
        525.6,
    );
    reservation["type"] = json!("Reservation");
    reservation["reservationTerm"] = json!("1 Year");
    vec![
        vm(
            "Virtual Machines DSv3 Series",
            "D2s v3",
            "Standard_D2s_v3",
            0.096,
        ),
        vm(
            "Virtual Machines DSv3 Series Windows",
            "D2s v3",
            "Standard_D2s_v3",
            0.188,
        ),
        vm(
            "Virtual Machines DSv3 Series",
            "D2s v3 Spot",
            "Standard_D2s_v3",
            0.0106,
        ),
        vm(
            "Virtual Machines DSv3 Series",
            "D2s v3 Low Priority",
            "Standard_D2s_v3",
            0.0192,
        ),
        vm(
            "Virtual Machines DSv3 Series",
            "D4s v3",
            "Standard_D4s_v3",
            0.192,
        ),
        vm("Virtual Machines BS Series", "B1s", "Standard_B1s", 0.0104),
        reservation,
        disk("Premium SSD Managed Disks", "P10 LRS", 19.71),
        disk("Premium SSD Managed Disks", "P20 LRS", 73.22),
        disk("Standard SSD Managed Disks", "E10 LRS", 9.6),
        disk("Standard HDD Managed Disks", "S10 LRS", 5.89),
        item(
            "Storage",
            "Storage",
            "Standard HDD Managed Disks",
            "S10 LRS",
            "LRS Disk Operations",
            "",
            "10K",
            0.0005,
            "Consumption",
        ),
        item(
            "Azure Kubernetes Service",
            "Compute",
            "Azure Kubernetes Service",
            "Standard",
            "Standard Uptime SLA",
            "",
            "1 Hour",
            0.1,
            "Consumption",
        ),
        item(
            "Azure Kubernetes Service",
            "Compute",
            "Azure Kubernetes Service",
            "Premium",
            "Premium Long Term Support",
            "",
            "1 Hour",
            0.6,
            "Consumption",
        ),
    ]
}

/// The Retail Prices items of disk snapshots, public IPs, load balancers and NAT gateways
/// (with [`Spec::waste`]), meters and units as the API names them; an IPv6 address, a free
/// data meter and a Standard SSD snapshot meter that the collector must leave out.
pub fn retail_waste_items(region: &str) -> Vec<Value> {
    let item = |service: &str, product: &str, sku: &str, meter: &str, unit: &str, price: f64| {
        json!({
            "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": price, "unitPrice": price,
            "armRegionName": region, "location": "US East", "effectiveStartDate": "2024-03-01T00:00:00Z",
            "meterId": "00000000-0000-0000-0000-000000000001", "meterName": meter,
            "productId": "DZH318Z0BNVX", "skuId": "DZH318Z0BNVX/0002", "availabilityId": null,
            "productName": product, "skuName": sku, "serviceName": service,
            "serviceId": "DZH313Z7MMC8", "serviceFamily": "Networking", "unitOfMeasure": unit,
            "type": "Consumption", "isPrimaryMeterRegion": true, "armSkuName": ""
        })
    };
    let mut hdd_snapshot = item(
        "Storage",
        "Standard HDD Managed Disks",
        "Snapshots LRS",
        "LRS Snapshots",
        "1 GB/Month",
        0.05,
    );
    hdd_snapshot["serviceFamily"] = json!("Storage");
    let mut ssd_snapshot = item(
        "Storage",
        "Standard SSD Managed Disks",
        "Snapshots LRS",
        "LRS Snapshots",
        "1 GB/Month",
        0.07,
    );
    ssd_snapshot["serviceFamily"] = json!("Storage");
    vec![
        hdd_snapshot,
        ssd_snapshot,
        item(
            "Virtual Network",
            "IP Addresses",
            "Standard",
            "Standard IPv4 Static Public IP",
            "1 Hour",
            0.005,
        ),
        item(
            "Virtual Network",
            "IP Addresses",
            "Basic",
            "Basic IPv4 Dynamic Public IP",
            "1 Hour",
            0.004,
        ),
        item(
            "Virtual Network",
            "IP Addresses",
            "Standard",
            "Standard IPv6 Static Public IP",
            "1 Hour",
            0.0,
        ),
        item(
            "Load Balancer",
            "Load Balancer",
            "Standard",
            "Standard Included LB Rules and Outbound Rules",
            "1 Hour",
            0.025,
        ),
        item(
            "Load Balancer",
            "Load Balancer",
            "Standard",
            "Standard Overage LB Rules and Outbound Rules",
            "1/Hour",
            0.01,
        ),
        item(
            "Load Balancer",
            "Load Balancer",
            "Standard",
            "Standard Data Processed",
            "1 GB",
            0.005,
        ),
        item(
            "Load Balancer",
            "Load Balancer",
            "Standard",
            "Standard Data Processed - Free",
            "1 GB",
            0.0,
        ),
        item(
            "NAT Gateway",
            "NAT Gateway",
            "Standard",
            "Standard Gateway",
            "1 Hour",
            0.045,
        ),
        item(
            "NAT Gateway",
            "NAT Gateway",
            "Standard",
            "Standard Data Processed",
            "1 GB",
            0.045,
        ),
    ]
}

/// `GET /api/retail/prices`: no credentials; `$filter` with `field eq 'value'` clauses
/// joined by `and` (the only form the collector sends); pages of `page_size` items with
/// `NextPageLink` carrying `$skip`, as the real API pages.
fn retail_prices(c: &Ctx, q: &HashMap<String, String>) -> Response {
    count(c, "retailPrices");
    let filter = q.get("$filter").cloned().unwrap_or_default();
    let mut clauses: Vec<(String, String)> = Vec::new();
    for clause in filter.split(" and ").filter(|s| !s.trim().is_empty()) {
        let Some((field, value)) = clause.split_once(" eq ") else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"Error": {"Code": "InvalidFilter", "Message": format!("unsupported clause {clause}")}})),
            )
                .into_response();
        };
        clauses.push((
            field.trim().to_string(),
            value.trim().trim_matches('\'').to_string(),
        ));
    }
    let region = clauses
        .iter()
        .find(|(f, _)| f == "armRegionName")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| c.spec.region.clone());
    let mut all = retail_items(&region);
    if c.spec.waste {
        all.extend(retail_waste_items(&region));
    }
    let items: Vec<Value> = all
        .into_iter()
        .filter(|i| {
            clauses.iter().all(|(f, v)| {
                let field = if f == "priceType" { "type" } else { f.as_str() };
                i[field].as_str() == Some(v.as_str())
            })
        })
        .collect();
    let skip: usize = q.get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let to = (skip + c.spec.page_size).min(items.len());
    let page = items.get(skip.min(to)..to).unwrap_or_default().to_vec();
    let next = (to < items.len()).then(|| {
        format!(
            "{}/api/retail/prices?api-version=2023-01-01-preview&currencyCode=USD&$filter={}&$skip={to}",
            c.arm,
            encode(&filter)
        )
    });
    axum::Json(json!({
        "BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
        "Items": page, "NextPageLink": next, "Count": page.len()
    }))
    .into_response()
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn disk(c: &Ctx) -> Value {
    json!({
        "name": "vm-0000-data",
        "id": rg_id(c, "Microsoft.Compute/disks/vm-0000-data"),
        "type": "Microsoft.Compute/disks",
        "location": c.spec.region,
        "managedBy": vm_id(0),
        "sku": { "name": "Premium_LRS", "tier": "Premium" },
        "zones": ["1"],
        "properties": { "creationData": { "createOption": "Empty" }, "diskSizeGB": 128,
            "diskIOPSReadWrite": 500, "diskMBpsReadWrite": 100, "timeCreated": "2024-05-01T10:00:00.0000000+00:00",
            "provisioningState": "Succeeded", "diskState": "Attached", "diskSizeBytes": 137438953472u64 }
    })
}

/// A Standard HDD disk nobody uses (`diskState` Unattached, no `managedBy`).
fn orphan_disk(c: &Ctx) -> Value {
    let mut d = disk_json(
        &c.spec.region,
        "orphan-disk",
        "Standard_LRS",
        32,
        None,
        "2023-02-01T08:00:00.1234567+00:00",
    );
    d["tags"] = json!({ "env": "dev" });
    d
}

/// A managed disk in `rg-prod` as Disks - List shows it: attached to the VM `managed_by`
/// (`diskState` Attached) or to nothing (Unattached, no `managedBy`).
pub fn disk_json(
    region: &str,
    name: &str,
    sku: &str,
    gb: u64,
    managed_by: Option<&str>,
    created: &str,
) -> Value {
    let tier = sku.split('_').next().unwrap_or(sku);
    let mut d = json!({
        "name": name,
        "id": format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/disks/{name}"),
        "type": "Microsoft.Compute/disks",
        "location": region,
        "sku": { "name": sku, "tier": tier },
        "properties": { "creationData": { "createOption": "Empty" }, "diskSizeGB": gb,
            "timeCreated": created, "provisioningState": "Succeeded",
            "diskState": if managed_by.is_some() { "Attached" } else { "Unattached" },
            "diskSizeBytes": gb << 30 }
    });
    if let Some(vm) = managed_by {
        d["managedBy"] = json!(vm);
    }
    d
}

pub fn snapshot_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/snapshots/{name}"
    )
}

/// An incremental snapshot of the disk `vm-0000-data` in `rg-prod` as Snapshots - List
/// shows it, made at `created` (ARM's `timeCreated`, seven decimals and an offset).
pub fn snapshot_json(region: &str, name: &str, sku: &str, gb: u64, created: &str) -> Value {
    json!({
        "name": name,
        "id": snapshot_id(name),
        "type": "Microsoft.Compute/snapshots",
        "location": region,
        "sku": { "name": sku, "tier": "Standard" },
        "tags": { "env": "prod" },
        "properties": {
            "osType": "Linux",
            "hyperVGeneration": "V2",
            "creationData": { "createOption": "Copy",
                "sourceResourceId": format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/disks/vm-0000-data"),
                "sourceUniqueId": "d1b2c3d4-0000-1111-2222-333344445555" },
            "diskSizeGB": gb,
            "diskSizeBytes": gb << 30,
            "encryption": { "type": "EncryptionAtRestWithPlatformKey" },
            "incremental": true,
            "timeCreated": created,
            "provisioningState": "Succeeded",
            "diskState": "Unattached",
            "uniqueId": "a1b2c3d4-0000-1111-2222-333344445555"
        }
    })
}

fn snapshots(c: &Ctx) -> Vec<Value> {
    let one = |name: &str, sku: &str, gb: u64, created: &str| {
        snapshot_json(&c.spec.region, name, sku, gb, created)
    };
    vec![
        one(
            "snap-old",
            "Standard_LRS",
            128,
            "2024-01-01T00:00:00.0000000+00:00",
        ),
        one(
            "snap-zrs",
            "Standard_ZRS",
            64,
            "2025-06-01T12:30:00.5000000+02:00",
        ),
    ]
}

pub fn public_ip_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Network/publicIPAddresses/{name}")
}

fn public_ips(c: &Ctx) -> Vec<Value> {
    let nic = rg_id(
        c,
        "Microsoft.Network/networkInterfaces/vm-0000-nic/ipConfigurations/ipconfig1",
    );
    let nat = rg_id(c, "Microsoft.Network/natGateways/nat-1");
    let one = |name: &str, sku: &str, alloc: &str, ip: Option<&str>, user: Option<(&str, &str)>| {
        public_ip_json(&c.spec.region, name, sku, alloc, ip, user)
    };
    vec![
        one(
            "pip-vm",
            "Standard",
            "Static",
            Some("20.1.2.3"),
            Some(("ipConfiguration", &nic)),
        ),
        one("pip-unused", "Standard", "Static", Some("20.1.2.4"), None),
        one("pip-basic", "Basic", "Dynamic", None, None),
        one(
            "pip-nat",
            "Standard",
            "Static",
            Some("20.1.2.5"),
            Some(("natGateway", &nat)),
        ),
    ]
}

/// A public IP address in `rg-prod` as Public IP Addresses - List All shows it: `ip` its
/// address (none: a dynamic one not allocated), `user` the property naming what uses it
/// (`ipConfiguration` of a NIC or frontend, `natGateway`) and that resource's id.
pub fn public_ip_json(
    region: &str,
    name: &str,
    sku: &str,
    alloc: &str,
    ip: Option<&str>,
    user: Option<(&str, &str)>,
) -> Value {
    let mut props = json!({
        "provisioningState": "Succeeded",
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": alloc,
        "idleTimeoutInMinutes": 4,
        "ipTags": []
    });
    if let Some(ip) = ip {
        props["ipAddress"] = json!(ip);
    }
    if let Some((field, id)) = user {
        props[field] = json!({ "id": id });
    }
    json!({
        "name": name,
        "id": public_ip_id(name),
        "type": "Microsoft.Network/publicIPAddresses",
        "location": region,
        "sku": { "name": sku, "tier": "Regional" },
        "properties": props
    })
}

fn load_balancers(c: &Ctx) -> Vec<Value> {
    let lb = rg_id(c, "Microsoft.Network/loadBalancers/lb-web");
    let rules: Vec<Value> = (0..7)
        .map(|i| json!({ "name": format!("rule-{i}"), "id": format!("{lb}/loadBalancingRules/rule-{i}"),
            "properties": { "protocol": "Tcp", "frontendPort": 8000 + i, "backendPort": 8000 + i } }))
        .collect();
    vec![
        json!({
            "name": "lb-web", "id": lb, "type": "Microsoft.Network/loadBalancers",
            "location": c.spec.region,
            "sku": { "name": "Standard", "tier": "Regional" },
            "properties": {
                "provisioningState": "Succeeded",
                "frontendIPConfigurations": [{ "name": "fe", "id": format!("{lb}/frontendIPConfigurations/fe"),
                    "properties": { "publicIPAddress": { "id": public_ip_id("pip-lb") } } }],
                "backendAddressPools": [{ "name": "be", "id": format!("{lb}/backendAddressPools/be") }],
                "loadBalancingRules": rules,
                "probes": [], "inboundNatRules": [], "outboundRules": []
            }
        }),
        json!({
            "name": "lb-int", "id": rg_id(c, "Microsoft.Network/loadBalancers/lb-int"),
            "type": "Microsoft.Network/loadBalancers", "location": c.spec.region,
            "sku": { "name": "Basic", "tier": "Regional" },
            "properties": {
                "provisioningState": "Succeeded",
                "frontendIPConfigurations": [{ "name": "fe", "properties": {
                    "privateIPAddress": "10.0.0.4", "privateIPAllocationMethod": "Dynamic" } }],
                "backendAddressPools": [], "loadBalancingRules": [], "probes": [],
                "inboundNatRules": [], "outboundRules": []
            }
        }),
    ]
}

fn nat_gateway(c: &Ctx) -> Value {
    json!({
        "name": "nat-1", "id": rg_id(c, "Microsoft.Network/natGateways/nat-1"),
        "type": "Microsoft.Network/natGateways", "location": c.spec.region,
        "sku": { "name": "Standard" },
        "properties": {
            "provisioningState": "Succeeded", "idleTimeoutInMinutes": 4,
            "publicIpAddresses": [{ "id": public_ip_id("pip-nat") }],
            "subnets": [{ "id": rg_id(c, "Microsoft.Network/virtualNetworks/vnet/subnets/default") }]
        }
    })
}

fn aks(c: &Ctx) -> Value {
    json!({
        "id": rg_id(c, "Microsoft.ContainerService/managedClusters/aks-prod"),
        "location": c.spec.region,
        "name": "aks-prod",
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": { "env": "prod" },
        "sku": { "name": "Base", "tier": "Standard" },
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": { "code": "Running" },
            "kubernetesVersion": "1.29",
            "currentKubernetesVersion": "1.29.4",
            "dnsPrefix": "aks-prod",
            "agentPoolProfiles": [
                { "name": "system", "count": 3, "vmSize": "Standard_D2s_v3", "osType": "Linux", "mode": "System",
                  "orchestratorVersion": "1.29", "currentOrchestratorVersion": "1.29.4",
                  "provisioningState": "Succeeded", "powerState": { "code": "Running" } }
            ]
        }
    })
}

fn sites(c: &Ctx) -> Vec<Value> {
    vec![
        json!({
            "id": rg_id(c, "Microsoft.Web/sites/fn-orders"),
            "name": "fn-orders", "type": "Microsoft.Web/sites", "kind": "functionapp,linux",
            "location": c.spec.region, "tags": { "env": "prod" },
            "properties": { "state": "Running", "hostNames": ["fn-orders.azurewebsites.net"],
                "siteConfig": { "linuxFxVersion": "Python|3.11" } }
        }),
        json!({
            "id": rg_id(c, "Microsoft.Web/sites/web-shop"),
            "name": "web-shop", "type": "Microsoft.Web/sites", "kind": "app",
            "location": c.spec.region,
            "properties": { "state": "Running" }
        }),
    ]
}

fn sql_server(c: &Ctx) -> Value {
    json!({
        "id": rg_id(c, "Microsoft.Sql/servers/sql-prod"),
        "name": "sql-prod", "type": "Microsoft.Sql/servers", "location": c.spec.region, "kind": "v12.0",
        "properties": { "administratorLogin": "dbadmin", "version": "12.0", "state": "Ready",
            "fullyQualifiedDomainName": "sql-prod.database.windows.net" }
    })
}

fn sql_databases(path: &str) -> Vec<Value> {
    let server = path.trim_end_matches("/databases");
    let db = |name: &str, sku: &str, tier: &str| {
        json!({
            "id": format!("{server}/databases/{name}"),
            "name": name, "type": "Microsoft.Sql/servers/databases", "location": "eastus",
            "sku": { "name": sku, "tier": tier },
            "kind": "v12.0,user",
            "properties": { "collation": "SQL_Latin1_General_CP1_CI_AS", "maxSizeBytes": 268435456000u64,
                "status": "Online", "databaseId": "6c764297-577b-470f-9af4-96d3d41e2ba3",
                "creationDate": "2024-05-01T10:00:00Z", "currentServiceObjectiveName": sku }
        })
    };
    vec![
        db("master", "System", "System"),
        db("orders", "S0", "Standard"),
    ]
}

fn storage(c: &Ctx) -> Value {
    json!({
        "id": rg_id(c, "Microsoft.Storage/storageAccounts/stprodlogs"),
        "kind": "StorageV2", "location": c.spec.region, "name": "stprodlogs",
        "sku": { "name": "Standard_LRS", "tier": "Standard" },
        "type": "Microsoft.Storage/storageAccounts",
        "properties": { "provisioningState": "Succeeded", "creationTime": "2024-05-01T10:00:00.0000000Z",
            "accessTier": "Hot", "primaryLocation": c.spec.region, "statusOfPrimary": "available" }
    })
}

/// The value the stand-in serves for (resource, metric, aggregation): VM i's CPU average is
/// 10 + i and maximum 30 + i; memory available 4 GiB average, 2 GiB minimum, 6 GiB maximum
/// (of 8 GiB); per-minute totals 6,000 average, 12,000 maximum; others 42.
pub fn value(resource: &str, metric: &str, agg: &str) -> f64 {
    let i: f64 = resource
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    match (metric, agg) {
        ("Percentage CPU", "average") => 10.0 + i,
        ("Percentage CPU", "maximum") => 30.0 + i,
        ("Percentage CPU", "minimum") => 1.0,
        ("Available Memory Bytes", "average") => 4.0 * GIB,
        ("Available Memory Bytes", "minimum") => 2.0 * GIB,
        ("Available Memory Bytes", "maximum") => 6.0 * GIB,
        (m, "average") if m.ends_with("Bytes") || m.ends_with("Total") => 6000.0,
        (m, "maximum") if m.ends_with("Bytes") || m.ends_with("Total") => 12000.0,
        (_, "total") => 300.0,
        (_, "count") => 5.0,
        _ => 42.0,
    }
}

fn get_batch(c: &Ctx, path: &str, q: HashMap<String, String>, body: &[u8]) -> Response {
    count(c, "getBatch");
    let first = c.seen.lock().unwrap().calls.get("getBatch").copied() == Some(1);
    if c.spec.throttle_first_batch && first {
        let mut r = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is throttled; retry after 1 second.",
        );
        r.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return r;
    }
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let ids: Vec<String> = req["resourceids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 50 {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "resourceids must list 1 to 50 resource ids",
        );
    }
    c.seen
        .lock()
        .unwrap()
        .batches
        .push((ids.clone(), q.clone()));
    let region = path
        .trim_start_matches("/metrics/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let parse = |k: &str| {
        q.get(k)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (parse("starttime"), parse("endtime")) else {
        return arm_error(StatusCode::BAD_REQUEST, "BadRequest", "starttime/endtime");
    };
    let step = match q.get("interval").map(String::as_str) {
        Some("PT1M") => 60,
        Some("PT5M") => 300,
        Some("PT1H") => 3600,
        _ => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "unsupported interval",
            )
        }
    };
    let names: Vec<&str> = q
        .get("metricnames")
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    // The metric definitions of the network namespaces (Azure Monitor's supported-metrics
    // lists): a name not defined for the namespace is refused as Azure Monitor does.
    let namespace = q.get("metricnamespace").map(String::as_str).unwrap_or("");
    let defined: Option<&[&str]> = match namespace {
        "Microsoft.Network/loadBalancers" => Some(&[
            "ByteCount",
            "PacketCount",
            "SYNCount",
            "VipAvailability",
            "DipAvailability",
            "AllocatedSnatPorts",
            "UsedSnatPorts",
            "SnatConnectionCount",
        ]),
        "Microsoft.Network/natGateways" => Some(&[
            "ByteCount",
            "PacketCount",
            "DroppedPackets",
            "SNATConnectionCount",
            "TotalConnectionCount",
            "DatapathAvailability",
        ]),
        _ => None,
    };
    // `filter=Direction eq '*'`: one series per direction, each with its metadatavalues
    // (ByteCount and PacketCount of the network namespaces have the dimension).
    let split = match q.get("filter").map(String::as_str) {
        None => false,
        Some("Direction eq '*'") if defined.is_some() => true,
        Some(f) => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Metric filter {f} is not valid for namespace {namespace}"),
            )
        }
    };
    if let Some(defined) = defined {
        if let Some(bad) = names.iter().find(|n| !defined.contains(n)) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Failed to find metric configuration for provider: Microsoft.Network, resource Type: {}, metric: {bad}, Valid metrics: {}", namespace.trim_start_matches("Microsoft.Network/"), defined.join(",")),
            );
        }
    }
    let aggs: Vec<&str> = q
        .get("aggregation")
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let values: Vec<Value> = ids
        .iter()
        .map(|id| {
            let metrics: Vec<Value> = names
                .iter()
                .map(|name| {
                    let series = |direction: Option<&str>| {
                        let mut data = Vec::new();
                        let mut t = start;
                        while t < end {
                            let mut dp = serde_json::Map::new();
                            dp.insert("timeStamp".into(), json!(iso(t)));
                            for a in &aggs {
                                // Out carries two thirds of the traffic, In one third.
                                let v = match c.spec.fleet.as_ref().and_then(|f| f.values) {
                                    Some(f) => match f(id, name, a, t.timestamp()) {
                                        Some(v) => v,
                                        None => continue,
                                    },
                                    None => value(id, name, a),
                                };
                                let v = match direction {
                                    Some("Out") => v * 2.0 / 3.0,
                                    Some(_) => v / 3.0,
                                    None => v,
                                };
                                dp.insert((*a).into(), json!(v));
                            }
                            data.push(Value::Object(dp));
                            t += Duration::seconds(step);
                        }
                        let meta: Vec<Value> = direction
                            .map(|d| json!({"name": {"value": "direction", "localizedValue": "Direction"}, "value": d}))
                            .into_iter()
                            .collect();
                        json!({ "metadatavalues": meta, "data": data })
                    };
                    let timeseries: Vec<Value> = if split {
                        vec![series(Some("Out")), series(Some("In"))]
                    } else {
                        vec![series(None)]
                    };
                    json!({
                        "id": format!("{id}/providers/Microsoft.Insights/metrics/{name}"),
                        "type": "Microsoft.Insights/metrics",
                        "name": { "value": name, "localizedValue": name },
                        "displayDescription": "",
                        "unit": "Unspecified",
                        "timeseries": timeseries,
                        "errorCode": "Success"
                    })
                })
                .collect();
            json!({
                "starttime": iso(start),
                "endtime": iso(end),
                "interval": q.get("interval"),
                "value": metrics,
                "namespace": q.get("metricnamespace"),
                "resourceregion": region,
                "resourceid": id
            })
        })
        .collect();
    axum::Json(json!({ "values": values })).into_response()
}

fn cost(c: &Ctx, q: &HashMap<String, String>, body: &[u8]) -> Response {
    count(c, "cost");
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    c.seen.lock().unwrap().cost_bodies.push(req);
    if c.spec.cost_no_content {
        return StatusCode::NO_CONTENT.into_response();
    }
    let columns = json!([
        { "name": "Cost", "type": "Number" },
        { "name": "UsageDate", "type": "Number" },
        { "name": "ResourceId", "type": "String" },
        { "name": "ServiceName", "type": "String" },
        { "name": "Currency", "type": "String" }
    ]);
    let vm0 = vm_id(0).to_ascii_lowercase();
    let second = q.contains_key("$skiptoken");
    let (rows, next) = if !c.spec.others {
        (json!([]), Value::Null)
    } else if second {
        (
            json!([[0.25, 20240502, "", "Bandwidth", "USD"]]),
            Value::Null,
        )
    } else {
        (
            json!([
                [2.304, 20240501, vm0, "Virtual Machines", "USD"],
                [1.5, 20240502, vm0, "Virtual Machines", "USD"]
            ]),
            json!(format!(
                "{}/subscriptions/{SUB}/providers/Microsoft.CostManagement/query?api-version=2023-11-01&$skiptoken=page2",
                c.arm
            )),
        )
    };
    axum::Json(json!({
        "id": format!("subscriptions/{SUB}/providers/Microsoft.CostManagement/query/00000000-0000-0000-0000-000000000000"),
        "name": "00000000-0000-0000-0000-000000000000",
        "type": "Microsoft.CostManagement/query",
        "location": null,
        "sku": null,
        "eTag": null,
        "properties": { "nextLink": next, "columns": columns, "rows": rows }
    }))
    .into_response()
}
