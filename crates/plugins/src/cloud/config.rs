//! The config keys every cloud collector has, decoded and checked once: the metric window
//! (`period`, `delay`, `stats`), the tag filter, call bounds (`max_concurrency`,
//! `max_attempts`, `backoff`), the cost sources (`cost`, `prices_file`, `billed_days`, `billed_every`)
//! and `dry_run`. A provider's own keys live in its `Config` type; the entry may hold the
//! keys of both and nothing else.

use super::provider::{CloudConfig, CloudProvider};
use crate::common::cloud_config;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::{ConfigError, RawConfig};
use std::collections::BTreeMap;

/// The keys shared by every cloud collector, as written (absent = the provider's default).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SharedKeys {
    /// Aggregation period of the metric API (a multiple of 60s). Default: the cloud's
    /// (300s).
    #[serde(default)]
    pub period: Option<DurationStr>,
    /// How far behind the collection's end the last period asked for ends (metrics are
    /// published minutes late); "0s" reads the newest period.
    #[serde(default)]
    pub delay: Option<DurationStr>,
    /// Statistics: any of those the cloud's metric API gives (avg, max, min, sum, count,
    /// p95). Default ["avg", "max"]. Each one is one call per metric (or batch).
    #[serde(default)]
    pub stats: Option<Vec<String>>,
    /// Only resources with all these tags (labels in GCP: `labels` is the same key).
    #[serde(default, alias = "labels")]
    pub tags: BTreeMap<String, String>,
    /// Metric calls in flight at once. Default 8.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Tries per API call (the first included): 429 waits `Retry-After` (at most 60 s) or a
    /// jittered backoff, 5xx and connection errors a jittered backoff. Default 5.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The first wait before a retry; it doubles each try (half of it jittered), up to 60 s.
    /// Default 500ms.
    #[serde(default)]
    pub backoff: Option<DurationStr>,
    /// Cost sources: "estimated" (the inventory × list prices of the price table, every
    /// collection) and/or "billed" (the cloud's billing API or export). [] for none.
    #[serde(default)]
    pub cost: Option<Vec<String>>,
    /// Estimated: a price table file (`skymeter prices <cloud> update` writes one).
    /// Default: `<data_dir>/prices/<cloud>.json` when it exists, else the table shipped in
    /// the binary.
    #[serde(default)]
    pub prices_file: Option<String>,
    /// Billed: the days read each time, today included (recent days are revised; the
    /// server replaces the lines it has). Default 3.
    #[serde(default)]
    pub billed_days: Option<u32>,
    /// Billed: the least time between two reads of the billing source. Default 6h.
    #[serde(default)]
    pub billed_every: Option<DurationStr>,
    /// Discover, then report the planned calls (`<cloud>.planned_calls{api}`) without
    /// calling the metric or billing APIs. `skymeter collect <cloud> --dry-run` sets it.
    #[serde(default)]
    pub dry_run: bool,
}

/// Decodes an entry of provider `P`: its own keys, the shared keys, and no other.
pub fn decode<P: CloudProvider>(
    raw: &RawConfig<'_>,
) -> Result<(P::Config, CloudConfig), ConfigError> {
    let mut known = key_names(&schema::<P>());
    // `tags`' other name (GCP calls them labels).
    known.push("labels".into());
    if let Some(k) = raw.keys().into_iter().find(|k| !known.contains(k)) {
        let mut list: Vec<&str> = known.iter().map(String::as_str).collect();
        list.sort_unstable();
        return Err(raw.error(
            &k,
            format!(
                "unknown key `{k}` of the {} collector; known keys: {}",
                P::PROVIDER.id,
                list.join(", ")
            ),
        ));
    }
    let shared: SharedKeys = raw.decode()?;
    let own: P::Config = raw.decode()?;
    let d = P::defaults();
    let stats = match &shared.stats {
        Some(names) => cloud_config::parse_stats(raw, names, P::STATS)?,
        None => d.stats.to_vec(),
    };
    let period = shared.period.map_or(d.period, |p| p.0);
    let secs = period.as_secs();
    if secs == 0 || !secs.is_multiple_of(60) || period.subsec_nanos() != 0 {
        return Err(raw.error(
            "period",
            "must be a whole number of minutes (metric APIs align to multiples of 60s), e.g. \"300s\"",
        ));
    }
    let mut cfg = CloudConfig {
        period,
        delay: shared.delay.map_or(d.delay, |p| p.0),
        stats,
        tags: shared.tags,
        max_concurrency: shared.max_concurrency.unwrap_or(d.max_concurrency),
        max_attempts: shared.max_attempts.unwrap_or(d.max_attempts),
        backoff: shared.backoff.map_or(d.backoff, |b| b.0),
        estimated: false,
        billed: false,
        prices_file: shared.prices_file,
        billed_days: shared.billed_days.unwrap_or(d.billed_days),
        billed_every: shared.billed_every.map_or(d.billed_every, |p| p.0),
        dry_run: shared.dry_run,
    };
    cloud_config::at_least_one(
        raw,
        &[
            ("max_concurrency", cfg.max_concurrency),
            ("max_attempts", cfg.max_attempts as usize),
            ("billed_days", cfg.billed_days as usize),
        ],
    )?;
    let sources: Vec<String> = match shared.cost {
        Some(list) => list,
        None => P::default_cost(&own)
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for c in &sources {
        match c.as_str() {
            "estimated" => cfg.estimated = true,
            "billed" => cfg.billed = true,
            _ => {
                return Err(raw.error(
                    "cost",
                    format!("unknown cost source \"{c}\"; allowed: estimated, billed"),
                ))
            }
        }
    }
    Ok((own, cfg))
}

/// The JSON Schema of an entry of provider `P`: the shared keys (with `P`'s defaults) and
/// its own, nothing else.
pub fn schema<P: CloudProvider>() -> serde_json::Value {
    let shared = serde_json::to_value(schemars::schema_for!(SharedKeys)).unwrap_or_default();
    let own = serde_json::to_value(schemars::schema_for!(P::Config)).unwrap_or_default();
    let mut out = own.clone();
    let Some(obj) = out.as_object_mut() else {
        return own;
    };
    obj.insert("additionalProperties".into(), false.into());
    let d = P::defaults();
    let defaults = serde_json::json!({
        "period": humantime::format_duration(d.period).to_string(),
        "delay": humantime::format_duration(d.delay).to_string(),
        "stats": d.stats.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "max_concurrency": d.max_concurrency,
        "max_attempts": d.max_attempts,
        "backoff": humantime::format_duration(d.backoff).to_string(),
        "billed_days": d.billed_days,
        "billed_every": humantime::format_duration(d.billed_every).to_string(),
        "dry_run": false,
    });
    for part in ["properties", "$defs"] {
        let Some(from) = shared.get(part).and_then(|v| v.as_object()) else {
            continue;
        };
        let to = obj
            .entry(part)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(to) = to.as_object_mut() {
            for (k, v) in from {
                let mut v = v.clone();
                if let (Some(d), Some(o)) = (defaults.get(k), v.as_object_mut()) {
                    o.insert("default".into(), d.clone());
                }
                to.entry(k.clone()).or_insert(v);
            }
        }
    }
    out
}

/// The property names of an object schema.
fn key_names(schema: &serde_json::Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}
