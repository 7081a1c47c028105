//! A fast local stand-in for the AWS APIs skymeter's `aws` collector calls, for
//! `bench/aws_collect.sh`: one HTTP/1.1 endpoint (the collector's `endpoint_url`) that answers
//! EC2, CloudWatch GetMetricData, STS, RDS, Lambda, S3, EKS, Cost Explorer and Pricing in the
//! wire shapes of the real APIs, over a fleet of `--instances` EC2 instances whose metric
//! values are a deterministic function of (instance, metric, statistic, timestamp), so the
//! bench can check what the collector printed.
//!
//! Routing: `X-Amz-Target` (JSON 1.1), else the form body's `Version` and `Action` (Query
//! protocols; EC2 2016-11-15, CloudWatch 2010-08-01, STS 2011-06-15, RDS 2014-10-31), else
//! the path (REST). Every call waits `--latency-ms` before it is answered, as AWS's answer
//! time would. Calls per API, error answers and the most calls in flight at once are counted:
//! `GET /_stats` returns them as JSON and they are printed on SIGINT/SIGTERM.
//! `GET /_value?instance=ID&metric=NAME&stat=STAT&ts=EPOCH` returns the value CloudWatch
//! answers for that period (see `fleet::datapoint`).

mod cloudwatch;
mod ec2;
mod fleet;
mod others;
mod wire;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::{Form, Reply};

#[derive(Parser, Debug)]
#[command(about = "Stand-in for the AWS APIs skymeter's aws collector calls (benchmarks)")]
struct Args {
    /// Address to listen on; port 0 picks a free port. The first line on stdout is
    /// `listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// EC2 instances in the account: i-0000000000000001 … (16 hex digits).
    #[arg(long, default_value_t = 10_000)]
    instances: u64,
    /// Added to every call before it is answered (AWS answers GetMetricData in ~50–300 ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// GetMetricData's own latency instead of `--latency-ms` (e.g. to hold every metric call
    /// open and look at the collector's memory once it has planned them all).
    #[arg(long)]
    metric_data_latency_ms: Option<u64>,
    /// The region the instances are in (availability zones REGIONa/b/c).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Tokio worker threads. One leaves the other core to the collector on a 2-core machine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Counters of the calls answered.
struct Stats {
    started: Instant,
    calls: Mutex<BTreeMap<String, u64>>,
    /// Per API: seconds since start when its first call arrived and its last answer left,
    /// so a run's phases (inventory pages, then metric calls) can be told apart.
    spans: Mutex<BTreeMap<String, (f64, f64)>>,
    error_answers: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    metric_data_queries: AtomicU64,
    datapoints: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Holds one slot of `in_flight` for as long as a call is being answered.
struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stats {
    fn new() -> Stats {
        Stats {
            started: Instant::now(),
            calls: Mutex::default(),
            spans: Mutex::default(),
            error_answers: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            metric_data_queries: AtomicU64::new(0),
            datapoints: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    fn record(
        &self,
        api: &str,
        arrived: Instant,
        reply: &Reply,
        work: cloudwatch::Work,
        bytes_in: usize,
    ) {
        {
            let first = arrived.duration_since(self.started).as_secs_f64();
            let last = self.started.elapsed().as_secs_f64();
            let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
            let span = spans.entry(api.to_string()).or_insert((first, last));
            span.0 = span.0.min(first);
            span.1 = span.1.max(last);
        }
        let bump = |m: &Mutex<BTreeMap<String, u64>>| {
            let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry(api.to_string()).or_default() += 1;
        };
        bump(&self.calls);
        if reply.is_error() {
            bump(&self.error_answers);
        }
        self.metric_data_queries
            .fetch_add(work.queries as u64, Ordering::Relaxed);
        self.datapoints
            .fetch_add(work.datapoints as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in as u64, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(reply.body.len() as u64, Ordering::Relaxed);
    }

    fn to_json(&self) -> serde_json::Value {
        let map =
            |m: &Mutex<BTreeMap<String, u64>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        serde_json::json!({
            "calls": map(&self.calls),
            "error_answers": map(&self.error_answers),
            "spans_s": self
                .spans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(api, (first, last))| (api.clone(), serde_json::json!({ "first_call": first, "last_answer": last })))
                .collect::<serde_json::Map<_, _>>(),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "metric_data_queries": self.metric_data_queries.load(Ordering::Relaxed),
            "datapoints": self.datapoints.load(Ordering::Relaxed),
            "bytes_in": self.bytes_in.load(Ordering::Relaxed),
            "bytes_out": self.bytes_out.load(Ordering::Relaxed),
            "cpu_seconds": own_cpu_seconds(),
            "uptime_s": self.started.elapsed().as_secs_f64(),
        })
    }
}

/// utime + stime of this process from `/proc/self/stat` (USER_HZ is 100 on Linux).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct App {
    ec2: ec2::Ec2,
    cloudwatch: cloudwatch::CloudWatch,
    latency: Duration,
    metric_data_latency: Duration,
    stats: Stats,
}

impl App {
    /// The API name (`service:Action`) a request is for and its answer.
    fn route(
        &self,
        method: &Method,
        path: &str,
        target: Option<&str>,
        body: &[u8],
    ) -> (String, Reply, cloudwatch::Work) {
        let none = cloudwatch::Work::default();
        if let Some(t) = target {
            let (api, reply) = others::json_target(t);
            return (api, reply, none);
        }
        if method == Method::POST {
            let form = Form::parse(body);
            let action = form.get("Action").unwrap_or_default();
            return match form.get("Version") {
                Some("2016-11-15") => (
                    format!("ec2:{action}"),
                    self.ec2.handle(action, &form),
                    none,
                ),
                Some("2010-08-01") => {
                    let (reply, work) = self.cloudwatch.handle(action, &form);
                    (format!("cloudwatch:{action}"), reply, work)
                }
                Some("2011-06-15") => (format!("sts:{action}"), others::sts(action), none),
                Some("2014-10-31") => (format!("rds:{action}"), others::rds(action), none),
                v => (
                    format!("unknown:POST {path} Version={}", v.unwrap_or("(none)")),
                    wire::query_error(
                        400,
                        "",
                        "InvalidAction",
                        &format!(
                            "The stand-in serves Query versions 2016-11-15 (EC2), 2010-08-01 (CloudWatch), \
                             2011-06-15 (STS), 2014-10-31 (RDS); got Version={v:?} Action={action:?}"
                        ),
                    ),
                    none,
                ),
            };
        }
        if method == Method::GET {
            if path.starts_with("/2015-03-31/functions") {
                return (
                    "lambda:ListFunctions".into(),
                    others::lambda_list_functions(),
                    none,
                );
            }
            if path == "/clusters" {
                return ("eks:ListClusters".into(), others::eks_list_clusters(), none);
            }
            if path == "/" {
                return ("s3:ListBuckets".into(), others::s3_list_buckets(), none);
            }
        }
        (
            format!("unknown:{method} {path}"),
            wire::json_error(
                404,
                "application/json",
                "UnknownOperationException",
                &format!("The stand-in does not serve {method} {path}"),
            ),
            none,
        )
    }
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && path == "/_stats" {
        let body = app.stats.to_json().to_string();
        return Ok(respond(200, "application/json", body));
    }
    if req.method() == Method::GET && path == "/_value" {
        let q = req.uri().query().unwrap_or_default();
        let args: BTreeMap<String, String> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let arg = |k: &str| args.get(k).map(String::as_str).unwrap_or_default();
        return Ok(match (fleet::instance_number(arg("instance")), arg("ts").parse::<i64>()) {
            (Some(n), Ok(ts)) => respond(
                200,
                "text/plain",
                fleet::datapoint(n, arg("metric"), arg("stat"), ts).to_string(),
            ),
            _ => respond(
                400,
                "text/plain",
                "usage: /_value?instance=i-0000000000000001&metric=CPUUtilization&stat=Average&ts=EPOCH_SECONDS\n".into(),
            ),
        });
    }

    let arrived = Instant::now();
    let _slot = app.stats.enter();
    let method = req.method().clone();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(respond(
                400,
                "text/plain",
                format!("cannot read the body: {e}"),
            ))
        }
    };
    let (api, reply, work) = app.route(&method, &path, target.as_deref(), &body);
    let latency = if api == "cloudwatch:GetMetricData" {
        app.metric_data_latency
    } else {
        app.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    app.stats.record(&api, arrived, &reply, work, body.len());
    let request_id = wire::request_id();
    let mut r = respond(reply.status, reply.content_type, reply.body);
    if let Ok(v) = request_id.parse() {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    if let Some(v) = reply.error_type.and_then(|t| t.parse().ok()) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    Ok(r)
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        ec2: ec2::Ec2 {
            instances: args.instances,
            region: args.region.clone(),
        },
        cloudwatch: cloudwatch::CloudWatch {
            instances: args.instances,
        },
        latency: Duration::from_millis(args.latency_ms),
        metric_data_latency: Duration::from_millis(
            args.metric_data_latency_ms.unwrap_or(args.latency_ms),
        ),
        stats: Stats::new(),
    });
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(app.clone(), req));
            // A client closing its keep-alive connection is not worth a message.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    println!("{}", app.stats.to_json());
    std::io::stdout().flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            ec2: ec2::Ec2 {
                instances: 3,
                region: "eu-west-1".into(),
            },
            cloudwatch: cloudwatch::CloudWatch { instances: 3 },
            latency: Duration::ZERO,
            metric_data_latency: Duration::ZERO,
            stats: Stats::new(),
        }
    }

    #[test]
    fn routes_by_target_then_version_then_path() {
        let a = app();
        let post = |body: &str| a.route(&Method::POST, "/", None, body.as_bytes());
        let (api, r, _) = post("Action=GetCallerIdentity&Version=2011-06-15");
        assert_eq!(api, "sts:GetCallerIdentity");
        assert!(r.body.contains("<Account>123456789012</Account>"));
        let (api, r, _) = post("Action=DescribeDBInstances&Version=2014-10-31");
        assert_eq!(api, "rds:DescribeDBInstances");
        assert!(r.body.contains("<DescribeDBInstancesResult><DBInstances/>"));
        let (api, r, _) = post("Action=DescribeInstances&Version=2016-11-15");
        assert_eq!(api, "ec2:DescribeInstances");
        assert!(r
            .body
            .contains("<availabilityZone>eu-west-1a</availabilityZone>"));
        let (api, r, _) = post("Action=ListMetrics&Version=2010-08-01");
        assert_eq!(api, "cloudwatch:ListMetrics");
        assert_eq!(r.status, 400);
        let (api, r, _) = post("Action=Nope&Version=1999-01-01");
        assert!(api.starts_with("unknown:"));
        assert!(r.body.contains("Version=Some(\"1999-01-01\")"));

        let ce = a.route(
            &Method::POST,
            "/",
            Some("AWSInsightsIndexService.GetCostAndUsage"),
            b"{}",
        );
        assert_eq!(ce.0, "ce:GetCostAndUsage");
        assert!(ce.1.body.contains(r#""ResultsByTime":[]"#));
        let get = |path: &str| a.route(&Method::GET, path, None, b"");
        assert_eq!(get("/2015-03-31/functions").0, "lambda:ListFunctions");
        assert_eq!(get("/2015-03-31/functions/").1.body, r#"{"Functions":[]}"#);
        assert_eq!(get("/clusters").1.body, r#"{"clusters":[]}"#);
        assert!(get("/").1.body.contains("<Buckets></Buckets>"));
        let missing = get("/nothing");
        assert_eq!(missing.1.status, 404);
        assert_eq!(
            missing.1.error_type.as_deref(),
            Some("UnknownOperationException")
        );
    }

    #[test]
    fn stats_count_calls_errors_and_the_most_in_flight() {
        let s = Stats::new();
        let one = s.enter();
        let two = s.enter();
        drop(one);
        drop(two);
        let _three = s.enter();
        let ok = Reply::xml(String::from("<x/>"));
        let bad = wire::ec2_error("InvalidAction", "no");
        let work = cloudwatch::Work {
            queries: 500,
            datapoints: 1000,
        };
        s.record("cloudwatch:GetMetricData", Instant::now(), &ok, work, 10);
        s.record(
            "ec2:RunInstances",
            Instant::now(),
            &bad,
            Default::default(),
            5,
        );
        let j = s.to_json();
        assert_eq!(j["max_in_flight"], 2);
        assert_eq!(j["in_flight"], 1);
        assert_eq!(j["calls"]["cloudwatch:GetMetricData"], 1);
        assert_eq!(j["error_answers"]["ec2:RunInstances"], 1);
        assert_eq!(j["metric_data_queries"], 500);
        assert_eq!(j["bytes_in"], 15);
    }
}
