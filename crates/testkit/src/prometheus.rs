//! The harness of the Prometheus differential tests (promql's engine against Prometheus, and
//! the server's HTTP API against Prometheus's): a data set written as OpenMetrics and
//! backfilled into a real Prometheus with `promtool tsdb create-blocks-from openmetrics`,
//! answers of the query API reduced to an [`Outcome`], and [`compare`], which says how two
//! outcomes differ (same series and points, values within a relative 1e-9, NaN equal to
//! NaN; or both failed with the same error type and status).
//!
//! Each test keeps its own data set, queries and way of asking skymeter; only what both do
//! the same is here. Plain `std` and `serde_json`: the readiness probe speaks HTTP/1.0 over
//! a `TcpStream`, so the harness works from a blocking test and from inside a Tokio runtime
//! alike.

use crate::net::free_port;
use crate::tool::{program, require_tool};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Points of a series: (time in ms since the epoch, value).
pub type Points = Vec<(i64, f64)>;

/// A result's series in answer order: labels (`__name__` included when the answer has it)
/// and points.
pub type ResultSeries = Vec<(BTreeMap<String, String>, Points)>;

/// One metric family of a data set, as OpenMetrics describes it.
pub struct Family {
    /// The family name (for a counter, without the `_total` its samples carry).
    pub name: String,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// Labels (without `__name__`) and points of each series.
    pub series: Vec<(Vec<(String, String)>, Points)>,
}

impl Family {
    /// The `__name__` of the family's samples: OpenMetrics names a counter's samples
    /// `<family>_total`.
    pub fn sample_name(&self) -> String {
        if self.kind == "counter" {
            format!("{}_total", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// The families as an OpenMetrics text exposition with explicit timestamps (seconds with
/// millisecond decimals), ending in `# EOF`, as `promtool tsdb create-blocks-from
/// openmetrics` reads it.
pub fn openmetrics(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families {
        writeln!(out, "# TYPE {} {}", family.name, family.kind).unwrap();
        let name = family.sample_name();
        for (labels, points) in &family.series {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            for &(t, v) in points {
                writeln!(
                    out,
                    "{name}{{{}}} {} {}.{:03}",
                    labels.join(","),
                    openmetrics_number(v),
                    t.div_euclid(1000),
                    t.rem_euclid(1000)
                )
                .unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// OpenMetrics spells the special values `NaN`, `+Inf` and `-Inf` (Rust's `inf` is not one).
fn openmetrics_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A time in ms as the query API's seconds with millisecond decimals (`1767225600.500`).
pub fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Where `prometheus` and `promtool` are.
pub struct Tools {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

/// Both programs from PATH; when one is missing, the CI-aware skip of [`crate::tool`] for
/// `test` and `None`.
#[track_caller]
pub fn tools(test: &str) -> Option<Tools> {
    let found = program("prometheus", "prometheus").and_then(|prometheus| {
        Ok(Tools {
            prometheus,
            promtool: program("promtool", "prometheus")?,
        })
    });
    require_tool(test, found)
}

/// A running Prometheus over a backfilled data set, killed (and its directory removed) when
/// dropped, also when a test panics.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Backfills `families` with promtool into a fresh TSDB in a temporary directory named
    /// after `tag` and the process, starts Prometheus on it (retention long enough for data
    /// in the past) on a free loopback port, and waits up to 60 s until it is ready.
    pub fn start(tools: &Tools, families: &[Family], tag: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("skymeter-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data.om");
        std::fs::write(&data, openmetrics(families)).unwrap();
        let tsdb = dir.join("tsdb");
        let out = Command::new(&tools.promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&data)
            .arg(&tsdb)
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool tsdb create-blocks-from openmetrics {} failed:\n{}\n{}",
            data.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n",
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&tools.prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let mut p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while status_of(port, "/-/ready") != Some(200) {
            if let Ok(Some(status)) = p.child.try_wait() {
                let log = std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default();
                panic!("prometheus exited with {status} before it was ready:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }
}

/// The status code of `GET path` on 127.0.0.1:`port`, or None when nothing answers.
fn status_of(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An answer reduced to what is compared: the result type and, per series, its labels and
/// points; or the error.
#[derive(Debug)]
pub enum Outcome {
    Ok {
        result_type: String,
        series: ResultSeries,
    },
    Err {
        /// The HTTP status, when the answer came over HTTP (compared only when both have one).
        status: Option<u16>,
        error_type: String,
        message: String,
    },
}

impl Outcome {
    /// A whole answer of the query API (`{"status": …, "data" | "errorType", "error"}`),
    /// received with HTTP `status` when there was one.
    pub fn from_answer(status: Option<u16>, body: &Json) -> Outcome {
        if body["status"] == "success" {
            Outcome::from_data(&body["data"])
        } else {
            Outcome::Err {
                status,
                error_type: body["errorType"].as_str().unwrap_or("").to_string(),
                message: body["error"].as_str().unwrap_or("").to_string(),
            }
        }
    }

    /// The `data` object of a successful answer (`resultType` and `result`).
    pub fn from_data(data: &Json) -> Outcome {
        let result_type = data["resultType"]
            .as_str()
            .expect("resultType is a string")
            .to_string();
        let r = &data["result"];
        let series = match result_type.as_str() {
            "scalar" => vec![(BTreeMap::new(), vec![parse_point(r)])],
            // A string result: its text as a pseudo-label, so that compare sees it.
            "string" => {
                let t = (r[0].as_f64().expect("string time") * 1000.0).round() as i64;
                let text = r[1].as_str().expect("string value").to_string();
                vec![(
                    BTreeMap::from([("__string".to_string(), text)]),
                    vec![(t, 0.0)],
                )]
            }
            "vector" => r
                .as_array()
                .expect("vector result is an array")
                .iter()
                .map(|s| (metric(&s["metric"]), vec![parse_point(&s["value"])]))
                .collect(),
            "matrix" => r
                .as_array()
                .expect("matrix result is an array")
                .iter()
                .map(|s| {
                    let values = s["values"].as_array().expect("values is an array");
                    (
                        metric(&s["metric"]),
                        values.iter().map(parse_point).collect(),
                    )
                })
                .collect(),
            other => panic!("unknown resultType {other}"),
        };
        Outcome::Ok {
            result_type,
            series,
        }
    }

    /// Whether this is a success with at least one series (a comparison of two empty
    /// results shows little).
    pub fn has_data(&self) -> bool {
        matches!(self, Outcome::Ok { series, .. } if !series.is_empty())
    }
}

/// A sample value: the API writes numbers as strings, with `NaN`, `+Inf` and `-Inf`.
fn parse_value(v: &Json) -> f64 {
    match v.as_str().expect("sample value is a string") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s
            .parse()
            .unwrap_or_else(|e| panic!("bad sample value {s:?}: {e}")),
    }
}

/// `[seconds, "value"]` as (ms, value).
fn parse_point(p: &Json) -> (i64, f64) {
    let t = p[0].as_f64().expect("timestamp is a number");
    ((t * 1000.0).round() as i64, parse_value(&p[1]))
}

fn metric(m: &Json) -> BTreeMap<String, String> {
    m.as_object()
        .expect("metric is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
        .collect()
}

/// Equal within a relative 1e-9, NaN equal to NaN; plus an absolute 1e-12 for results that
/// cancel to about 0, where the order of float operations leaves different dust (3e-15
/// against 0).
pub fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-9 * a.abs().max(b.abs()) || diff <= 1e-12
}

/// The first few series and points, for a failure message.
fn show(series: &ResultSeries) -> String {
    let mut s = String::new();
    for (labels, points) in series.iter().take(8) {
        let shown: Vec<String> = points
            .iter()
            .take(4)
            .map(|(t, v)| format!("{t}:{v}"))
            .collect();
        let more = if points.len() > 4 { ", ..." } else { "" };
        writeln!(s, "    {labels:?} [{}{more}]", shown.join(", ")).unwrap();
    }
    if series.len() > 8 {
        writeln!(s, "    ... {} series", series.len()).unwrap();
    }
    s
}

/// Compares skymeter's outcome with Prometheus's; the error describes the first difference.
/// With `ordered` the series must come in the same order (`sort`, `topk` in an instant
/// query); otherwise they are compared sorted by labels.
pub fn compare(ordered: bool, ours: &Outcome, theirs: &Outcome) -> Result<(), String> {
    match (ours, theirs) {
        (
            Outcome::Err {
                status: sa,
                error_type: ea,
                message: ma,
            },
            Outcome::Err {
                status: sb,
                error_type: eb,
                message: mb,
            },
        ) => {
            let same_status = sa.is_none() || sb.is_none() || sa == sb;
            if ea == eb && same_status {
                Ok(())
            } else {
                Err(format!(
                    "errors differ: ours {sa:?} {ea} ({ma}), prometheus {sb:?} {eb} ({mb})"
                ))
            }
        }
        (Outcome::Err { .. }, _) | (_, Outcome::Err { .. }) => Err(format!(
            "only one failed:\n  ours: {ours:?}\n  prometheus: {theirs:?}"
        )),
        (
            Outcome::Ok {
                result_type: ta,
                series: sa,
            },
            Outcome::Ok {
                result_type: tb,
                series: sb,
            },
        ) => {
            if ta != tb {
                return Err(format!("result types differ: ours {ta}, prometheus {tb}"));
            }
            let detail = || format!("\n  ours:\n{}  prometheus:\n{}", show(sa), show(sb));
            if sa.len() != sb.len() {
                return Err(format!(
                    "{} series vs prometheus' {}{}",
                    sa.len(),
                    sb.len(),
                    detail()
                ));
            }
            let (mut sa, mut sb): (Vec<_>, Vec<_>) = (sa.iter().collect(), sb.iter().collect());
            if !ordered {
                sa.sort_by(|x, y| x.0.cmp(&y.0));
                sb.sort_by(|x, y| x.0.cmp(&y.0));
            }
            for (x, y) in sa.iter().zip(&sb) {
                if x.0 != y.0 {
                    return Err(format!(
                        "series differ: {:?} vs prometheus' {:?}{}",
                        x.0,
                        y.0,
                        detail()
                    ));
                }
                if x.1.len() != y.1.len() {
                    return Err(format!(
                        "{:?}: {} points vs prometheus' {}{}",
                        x.0,
                        x.1.len(),
                        y.1.len(),
                        detail()
                    ));
                }
                for (p, q) in x.1.iter().zip(&y.1) {
                    if p.0 != q.0 || !close(p.1, q.1) {
                        return Err(format!("{:?}: point {p:?} vs prometheus' {q:?}", x.0));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openmetrics_names_counter_samples_total_and_spells_special_values() {
        let families = [Family {
            name: "bytes".into(),
            kind: "counter",
            series: vec![(
                vec![("host".into(), "a".into())],
                vec![(1_500, 1.0), (2_000, f64::NAN), (3_250, f64::INFINITY)],
            )],
        }];
        assert_eq!(
            openmetrics(&families),
            "# TYPE bytes counter\nbytes_total{host=\"a\"} 1 1.500\n\
             bytes_total{host=\"a\"} NaN 2.000\nbytes_total{host=\"a\"} +Inf 3.250\n# EOF\n"
        );
    }

    #[test]
    fn outcomes_compare_within_tolerance_and_by_error_type() {
        let answer = |v: &str| {
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"a": "1"}, "value": [10.5, v]}]}})
        };
        let a = Outcome::from_answer(Some(200), &answer("1.0000000000001"));
        let b = Outcome::from_answer(Some(200), &answer("1"));
        assert!(a.has_data());
        assert_eq!(compare(true, &a, &b), Ok(()));
        let c = Outcome::from_answer(Some(200), &answer("1.1"));
        assert!(compare(true, &a, &c)
            .unwrap_err()
            .contains("point (10500, 1.0"));
        let bad = |status, kind: &str| {
            Outcome::from_answer(
                status,
                &json!({"status": "error", "errorType": kind, "error": "x"}),
            )
        };
        assert_eq!(
            compare(false, &bad(None, "bad_data"), &bad(Some(400), "bad_data")),
            Ok(())
        );
        assert!(compare(
            false,
            &bad(Some(422), "bad_data"),
            &bad(Some(400), "bad_data")
        )
        .is_err());
        assert!(compare(false, &bad(None, "execution"), &bad(None, "bad_data")).is_err());
        assert!(compare(false, &a, &bad(None, "bad_data")).is_err());
        assert!(close(f64::NAN, f64::NAN) && !close(f64::NAN, 0.0) && close(3e-15, 0.0));
    }
}
