//! Reads points back from a Prometheus-compatible TSDB through its HTTP query API
//! (Prometheus, VictoriaMetrics single node or cluster `vmselect`, Mimir): raw samples with
//! an instant query of a range selector (`{…}[Nms]`), which both Prometheus and
//! VictoriaMetrics answer with the stored samples unchanged, and label sets from
//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.
//!
//! skymeter's own PromQL engine evaluates queries over these samples (the TSDB is a sample
//! store here, not a query engine), so a query means the same on either backend and the
//! server's limits (series, samples, time) hold: series are counted from the answer before
//! its samples are copied, and the request carries the query's remaining time.
//!
//! The HTTP client is ureq (blocking): the `Store` trait is synchronous and called from
//! blocking threads.

use crate::types::StoreError;
use serde::Deserialize;
use skymeter_promql::{Labels, MatchOp, Matcher, QueryError, SelectBudget, Series};
use std::time::Duration;

/// How long one request to the TSDB may take when the query has no deadline of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read from the TSDB (the query's sample limit normally stops a
/// query long before).
const MAX_BODY: u64 = 2 << 30;

/// Times further from now than this are clamped: the query API takes seconds as floats,
/// and the engine's "no bound" (`i64::MIN`/`MAX` ms) is not a time a TSDB accepts.
const HORIZON_MS: i64 = 100 * 365 * 86_400_000;

/// How far back a label or series listing without a start looks.
const ALL_TIME_MS: i64 = 10 * 365 * 86_400_000;

pub struct TsdbQuery {
    base: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Answer<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixEntry>,
}

#[derive(Deserialize)]
struct MatrixEntry {
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A PromQL string literal: double quotes, with `\` and `"` escaped and control characters
/// written as escapes (Go's string syntax, which both engines parse).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{name="v",…}` for a conjunction of matchers; every series when there are none.
pub fn selector(matchers: &[Matcher]) -> String {
    if matchers.is_empty() {
        return "{__name__=~\".+\"}".to_string();
    }
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::RegexMatch => "=~",
                MatchOp::RegexNoMatch => "!~",
            };
            format!("{}{op}{}", m.name, quote(&m.value))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Seconds with millisecond precision, as the query API takes them.
fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

impl TsdbQuery {
    /// `base`: the URL the query API hangs off (`http://vm:8428`, `http://prometheus:9090`,
    /// `http://vmselect:8481/select/0/prometheus`): `/api/v1/query` is appended.
    pub fn new(base: &str) -> Result<TsdbQuery, StoreError> {
        let parsed = url::Url::parse(base).map_err(|e| {
            StoreError::BadRequest(format!(
                "--tsdb query={base}: not a URL ({e}); write e.g. query=http://127.0.0.1:8428"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StoreError::BadRequest(format!(
                "--tsdb query={base}: use an http:// or https:// URL"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(DEFAULT_TIMEOUT))
            .user_agent(concat!("skymeter/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(TsdbQuery {
            base: base.trim_end_matches('/').to_string(),
            agent,
        })
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        params: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<T, String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in params {
            req = req.query(k, v);
        }
        if let Some(t) = timeout {
            req = req.config().timeout_global(Some(t)).build();
        }
        let mut resp = req
            .call()
            .map_err(|e| format!("GET {url} failed: {e}; is the TSDB running there?"))?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: reading the answer failed: {e}"))?;
        let answer: Answer<T> = serde_json::from_slice(&body).map_err(|e| {
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            format!("GET {url} answered {status} with a body that is not the Prometheus API's JSON ({e}): {excerpt}")
        })?;
        if answer.status != "success" {
            return Err(format!(
                "GET {url} answered {status}: {} {}",
                answer.error_type.unwrap_or_default(),
                answer.error.unwrap_or_default()
            ));
        }
        answer
            .data
            .ok_or_else(|| format!("GET {url} answered success without data"))
    }

    /// A quick query the TSDB answers when it is up, for `/health`.
    pub fn check(&self) -> Result<(), StoreError> {
        self.get::<serde_json::Value>(
            "/api/v1/query",
            &[("query", "1".to_string())],
            Some(Duration::from_secs(5)),
        )
        .map(|_| ())
        .map_err(StoreError::Database)
    }

    /// Every series matching `matchers` with its raw samples in `[start_ms, end_ms]` (at
    /// least), sorted by labels, within `budget`.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        budget: &SelectBudget,
    ) -> Result<Vec<Series>, QueryError> {
        budget.check_deadline()?;
        let now = now_ms();
        let end = end_ms.min(now.saturating_add(HORIZON_MS));
        let start = start_ms.max(now.saturating_sub(HORIZON_MS)).min(end);
        // `x[r]` at time t reads (t-r, t] in VictoriaMetrics and Prometheus 3, [t-r, t] in
        // Prometheus 2: one millisecond more covers [start, end] in both.
        let range = end - start + 1;
        let timeout = budget
            .deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(QueryError::timed_out(budget.timeout, "selecting series"));
        }
        let query = format!("{}[{range}ms]", selector(matchers));
        let data: QueryData = self
            .get(
                "/api/v1/query",
                &[("query", query), ("time", secs(end))],
                timeout,
            )
            .map_err(QueryError::internal)?;
        if data.result_type != "matrix" {
            return Err(QueryError::internal(format!(
                "the TSDB answered a range selector with a {} instead of a matrix",
                data.result_type
            )));
        }
        budget.check_series(data.result.len())?;
        let mut loaded = 0usize;
        let mut out = Vec::with_capacity(data.result.len());
        for entry in data.result {
            budget.check_deadline()?;
            let mut ts = Vec::with_capacity(entry.values.len());
            let mut vals = Vec::with_capacity(entry.values.len());
            for (t, v) in &entry.values {
                let t = (t * 1000.0).round() as i64;
                if t < start_ms || t > end_ms {
                    continue;
                }
                let v = parse_value(v).ok_or_else(|| {
                    QueryError::internal(format!(
                        "the TSDB sent a sample value `{v}` that is not a number"
                    ))
                })?;
                ts.push(t);
                vals.push(v);
            }
            loaded = loaded.saturating_add(ts.len());
            budget.check_samples(loaded)?;
            out.push(Series::new(Labels::from_pairs(entry.metric), ts, vals));
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn range_params(
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(&'static str, String)> {
        let mut params: Vec<(&'static str, String)> = Vec::new();
        for s in selectors {
            params.push(("match[]", selector(s)));
        }
        let now = now_ms();
        // No start means all time, as the embedded store answers it. A TSDB left without one
        // picks its own default (VictoriaMetrics: the last day), and VictoriaMetrics 1.79
        // answers nothing from `start=0`: ten years back stands for "all".
        params.push(("start", secs(start_ms.max(now.saturating_sub(ALL_TIME_MS)))));
        if end_ms < now.saturating_add(HORIZON_MS) {
            params.push(("end", secs(end_ms)));
        }
        params
    }

    /// The label sets of the series matching one of `selectors` (all when empty) with
    /// samples in the range, sorted.
    pub fn series(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StoreError> {
        let all = [Vec::new()];
        let selectors = if selectors.is_empty() {
            &all[..]
        } else {
            selectors
        };
        let params = Self::range_params(selectors, start_ms, end_ms);
        let sets: Vec<std::collections::BTreeMap<String, String>> = self
            .get("/api/v1/series", &params, None)
            .map_err(StoreError::Database)?;
        let mut out: Vec<Labels> = sets.into_iter().map(Labels::from_pairs).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub fn label_names(
        &self,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let params = Self::range_params(selectors, start_ms, end_ms);
        let mut names: Vec<String> = self
            .get("/api/v1/labels", &params, None)
            .map_err(StoreError::Database)?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub fn label_values(
        &self,
        name: &str,
        selectors: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let params = Self::range_params(selectors, start_ms, end_ms);
        let path = format!(
            "/api/v1/label/{}/values",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut values: Vec<String> = self
            .get(&path, &params, None)
            .map_err(StoreError::Database)?;
        values.retain(|v| !v.is_empty());
        values.sort();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_quote_values_as_promql_strings() {
        let m = [
            Matcher::new(MatchOp::Equal, "__name__", "cpu_utilization_percent").unwrap(),
            Matcher::new(MatchOp::RegexMatch, "resource_id", "i-\\d+|\"x\"").unwrap(),
            Matcher::new(MatchOp::NotEqual, "tag_env", "a\nb").unwrap(),
        ];
        assert_eq!(
            selector(&m),
            r#"{__name__="cpu_utilization_percent",resource_id=~"i-\\d+|\"x\"",tag_env!="a\nb"}"#
        );
        assert_eq!(selector(&[]), r#"{__name__=~".+"}"#);
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(secs(1_733_580_000_123), "1733580000.123");
        assert_eq!(secs(-1), "-0.001");
        assert_eq!(secs(5), "0.005");
    }

    #[test]
    fn values_parse_as_the_api_writes_them() {
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("0.1"), Some(0.1));
        assert_eq!(parse_value("x"), None);
    }
}
