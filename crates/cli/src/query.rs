//! `skymeter query`: a PromQL query through the server's Prometheus-compatible API, printed
//! as a table (one row per series) or as the API's `data` JSON.
//!
//! Exit codes: 0 answered; 2 the query or the arguments are wrong (the server's
//! `bad_data`, or a time this command cannot read); 1 anything else (server unreachable,
//! auth, evaluation failed).

use crate::cli::{OutputFormat, QueryArgs};
use crate::output::{FAILURE, USAGE};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// A time as the API takes it (Unix seconds), from RFC 3339, Unix seconds, `now`, `-1h`
/// or `now-30m`.
fn api_time(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(seconds(now));
    }
    if let Some(rel) = s.strip_prefix("now-").or_else(|| s.strip_prefix('-')) {
        let d = humantime::parse_duration(rel)
            .map_err(|e| format!("`{s}`: bad duration after `-` ({e}); write e.g. -1h, now-30m"))?;
        let too_far = || format!("`{s}` is too far back");
        let d = chrono::Duration::from_std(d).map_err(|_| too_far())?;
        return Ok(seconds(now.checked_sub_signed(d).ok_or_else(too_far)?));
    }
    if s.parse::<f64>().is_ok_and(f64::is_finite) {
        return Ok(s.to_string());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| seconds(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            format!(
                "`{s}` is not a time; use RFC 3339 (2026-01-01T00:00:00Z), Unix seconds, \
                 `now`, or relative to now (-1h, now-30m)"
            )
        })
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> String {
    let ms = t.timestamp_millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// An API path and its form parameters.
type Request = (&'static str, Vec<(&'static str, String)>);

/// The request's parameters and path, from the arguments.
fn request(args: &QueryArgs) -> Result<Request, String> {
    let now = chrono::Utc::now();
    let mut params = vec![("query", args.query.clone())];
    match args.range {
        None => {
            let time = api_time(args.time.as_deref().unwrap_or("now"), now)
                .map_err(|e| format!("--time {e}"))?;
            params.push(("time", time));
            Ok(("/api/v1/query", params))
        }
        Some(range) => {
            if range.is_zero() {
                return Err("--range must be longer than 0".into());
            }
            let end: f64 = api_time(args.end.as_deref().unwrap_or("now"), now)
                .map_err(|e| format!("--end {e}"))?
                .parse()
                .map_err(|e| format!("--end: {e}"))?;
            let step = args
                .step
                .unwrap_or_else(|| (range / 120).max(Duration::from_secs(1)));
            if step.is_zero() {
                return Err("--step must be longer than 0".into());
            }
            params.push(("start", format!("{:.3}", end - range.as_secs_f64())));
            params.push(("end", format!("{end:.3}")));
            params.push(("step", format!("{:.3}", step.as_secs_f64())));
            Ok(("/api/v1/query_range", params))
        }
    }
}

pub async fn query(args: QueryArgs) -> ExitCode {
    let (path, params) = match request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let url = format!("{}{path}", args.server.server.trim_end_matches('/'));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build an HTTP client: {e}");
            return ExitCode::from(FAILURE);
        }
    };
    let mut req = client.post(&url).form(&params);
    if let Some(t) = &args.server.token {
        req = req.bearer_auth(t);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: POST {url}: {e}; is the server running there? (--server or SKYMETER_SERVER)"
            );
            return ExitCode::from(FAILURE);
        }
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            eprintln!(
                "error: POST {url}: {status}, not a JSON answer: {}",
                text.trim()
            );
            return ExitCode::from(FAILURE);
        }
    };
    if body["status"] != "success" {
        // Prometheus' error shape, or skymeter's own (auth, routing).
        let (kind, message) = match (body["errorType"].as_str(), body["error"].as_str()) {
            (Some(k), Some(m)) => (k.to_string(), m.to_string()),
            _ => (
                body["error"]["code"]
                    .as_str()
                    .unwrap_or("error")
                    .to_string(),
                body["error"]["message"]
                    .as_str()
                    .unwrap_or(text.trim())
                    .to_string(),
            ),
        };
        eprintln!("error: {kind}: {message}");
        if status == 401 || status == 403 {
            eprintln!("give a token with the `read` scope: --token or SKYMETER_TOKEN");
        }
        return ExitCode::from(if kind == "bad_data" { USAGE } else { FAILURE });
    }
    let data = &body["data"];
    match args.format {
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(data).unwrap_or_default());
        }
        OutputFormat::Table => match table(data) {
            Some(t) => println!("{t}"),
            None => println!("(no series)"),
        },
    }
    ExitCode::SUCCESS
}

/// `name{a="1", b="2"}` as Prometheus prints a series.
fn series_name(metric: &Value) -> String {
    let Some(m) = metric.as_object() else {
        return "{}".into();
    };
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = m
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").into())))
        .collect();
    if labels.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", labels.join(", "))
    }
}

fn when(t: &Value) -> String {
    let Some(secs) = t.as_f64() else {
        return t.to_string();
    };
    chrono::DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| secs.to_string())
}

fn num(v: &Value) -> Option<f64> {
    v.as_str().and_then(|s| match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    })
}

/// One row per series: for a vector its value and time; for a matrix its number of
/// points, first and last value, min and max; for a scalar or string the value.
fn table(data: &Value) -> Option<Table> {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let result = &data["result"];
    match data["resultType"].as_str()? {
        "vector" => {
            let rows = result.as_array()?;
            if rows.is_empty() {
                return None;
            }
            t.set_header(vec!["series", "value", "time"]);
            for s in rows {
                t.add_row(vec![
                    series_name(&s["metric"]),
                    s["value"][1].as_str().unwrap_or("").to_string(),
                    when(&s["value"][0]),
                ]);
            }
        }
        "matrix" => {
            let rows = result.as_array()?;
            if rows.is_empty() {
                return None;
            }
            t.set_header(vec!["series", "points", "first", "last", "min", "max"]);
            for s in rows {
                let pts = s["values"].as_array().cloned().unwrap_or_default();
                let vals: Vec<f64> = pts.iter().filter_map(|p| num(&p[1])).collect();
                let show = |p: Option<&Value>| {
                    p.map(|p| format!("{} @ {}", p[1].as_str().unwrap_or(""), when(&p[0])))
                        .unwrap_or_default()
                };
                let fold = |f: fn(f64, f64) -> f64| {
                    vals.iter()
                        .copied()
                        .reduce(f)
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                t.add_row(vec![
                    series_name(&s["metric"]),
                    pts.len().to_string(),
                    show(pts.first()),
                    show(pts.last()),
                    fold(f64::min),
                    fold(f64::max),
                ]);
            }
        }
        "scalar" | "string" => {
            t.set_header(vec![data["resultType"].as_str()?, "value", "time"]);
            t.add_row(vec![
                String::new(),
                result[1].as_str().unwrap_or("").to_string(),
                when(&result[0]),
            ]);
        }
        _ => return None,
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form() {
        let now = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        assert_eq!(api_time("now", now).unwrap(), "1767225600.000");
        assert_eq!(api_time("-1h", now).unwrap(), "1767222000.000");
        assert_eq!(api_time("now-30m", now).unwrap(), "1767223800.000");
        assert_eq!(api_time("1767225600.5", now).unwrap(), "1767225600.5");
        assert_eq!(
            api_time("2026-01-01T00:00:01Z", now).unwrap(),
            "1767225601.000"
        );
        assert!(api_time("tomorrow", now).unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn series_print_like_prometheus() {
        let m = serde_json::json!({"__name__": "up", "job": "a\"b"});
        assert_eq!(series_name(&m), r#"up{job="a\"b"}"#);
        assert_eq!(
            series_name(&serde_json::json!({"region": "x"})),
            r#"{region="x"}"#
        );
        assert_eq!(series_name(&serde_json::json!({})), "{}");
    }
}
