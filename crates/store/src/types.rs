//! What the [`Store`](crate::Store) trait's methods take and return: queries, pages,
//! stored rows, and the error every backend reports.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skymeter_model::api::{AgentRegistration, AgentStatus, Heartbeat};
use skymeter_model::{Labels, ResourceRef, Stat, Unit};
use std::collections::BTreeMap;

/// A storage failure. Messages name the file or table and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request cannot be answered as asked (bad cursor, unknown sort key, bad range).
    #[error("{0}")]
    BadRequest(String),
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Data on disk that cannot be read back; the message says which file and what to do.
    #[error("corrupt data in {path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("database error: {0}")]
    Database(String),
}

/// What [`Store::ingest`](crate::Store::ingest) did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored, durably, whole.
    Stored,
    /// A batch with this `batch_id` and the same content
    /// ([`Batch::content_hash`](skymeter_model::Batch::content_hash)) was stored before;
    /// nothing was stored again.
    Duplicate,
    /// A batch with this `batch_id` but different content was stored before: the id was
    /// reused. Nothing was stored; the server answers 409.
    Conflict,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Page size and position, shared by every list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PageQuery {
    /// 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// Filters of `GET /api/v1/resources`. Empty filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceQuery {
    pub provider: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub kind: Option<String>,
    /// `tag.KEY=VALUE` filters: all must hold.
    pub tags: BTreeMap<String, String>,
    /// Case-insensitive substring of the name or id.
    pub q: Option<String>,
    /// `key` (default), `name`, `kind`, `last_seen`, `first_seen`; `-` in front for
    /// descending.
    pub sort: Option<String>,
    pub page: PageQuery,
}

/// A resource as stored: the latest record plus what the store knows about its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredResource {
    /// `provider/account/region/id`, the resource's key in URLs (percent-encoded).
    pub key: String,
    #[serde(flatten)]
    pub resource: skymeter_model::Resource,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One change of a resource's attributes, tags, name or kind, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceChange {
    pub at: DateTime<Utc>,
    /// Field path (`attributes.state`, `tags.env`, `name`) → [old, new] (null when absent).
    pub changes: BTreeMap<String, [serde_json::Value; 2]>,
}

/// What identifies a series: metric, unit, stat, resource and labels.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct SeriesKey {
    pub metric: String,
    pub unit: Unit,
    pub stat: Stat,
    pub resource: ResourceRef,
    pub labels: Labels,
}

/// Filters of `GET /api/v1/series`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesQuery {
    /// Exact metric name, or a glob with `*`.
    pub metric: Option<String>,
    /// A resource key (`provider/account/region/id`).
    pub resource: Option<String>,
    pub provider: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub stat: Option<Stat>,
    /// Point labels that must match exactly.
    pub labels: Labels,
    pub page: PageQuery,
}

/// A series and its extent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesInfo {
    #[serde(flatten)]
    pub key: SeriesKey,
    pub first_ts: DateTime<Utc>,
    pub last_ts: DateTime<Utc>,
    pub points: u64,
}

/// `GET /api/v1/points`: the series matching `series`, between `start` (inclusive) and
/// `end` (exclusive), downsampled to `step` with `agg`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointsQuery {
    pub series: SeriesQuery,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Bucket width in seconds; buckets are aligned to multiples of `step` since the epoch
    /// and stamped with their end. `None`: raw points.
    pub step_s: Option<u64>,
    /// How points within a bucket combine; default `avg` (`last` takes the latest).
    pub agg: Option<Stat>,
}

/// A read of every series matching `series` (its page is ignored) over `[start, end)`,
/// reduced by the caller one series at a time (see `Store::scan_points`).
pub struct SeriesScan<'a> {
    pub series: SeriesQuery,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Only the series it accepts are read (the others' chunks are not even decoded).
    pub want: Option<&'a (dyn Fn(&SeriesKey) -> bool + Sync)>,
}

/// What `Store::scan_points` hands over per series: its key, then its timestamps
/// (nanoseconds since the epoch, ascending, unique) and their values. Called from several
/// threads at once, in no particular order.
pub type ScanFn<'a> = &'a (dyn Fn(&SeriesKey, &[i64], &[f64]) + Sync);

/// What `Store::scan_extents` says of a series over a range: its first and last
/// timestamps (nanoseconds), how many points and the largest value (NaN values aside; NaN
/// when all are).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesExtent {
    pub first_ns: i64,
    pub last_ns: i64,
    pub points: u64,
    pub max: f64,
}

/// What `Store::scan_extents` hands over per series; called from several threads at once.
pub type ExtentFn<'a> = &'a (dyn Fn(&SeriesKey, SeriesExtent) + Sync);

/// One series' points in a range, `[ts, value]` pairs ordered by time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesPoints {
    #[serde(flatten)]
    pub key: SeriesKey,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// `GET /api/v1/costs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostQuery {
    /// Charges overlapping `[start, end)` (by `ChargePeriodStart`).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Any of `provider`, `service`, `account`, `region`, `resource`, `category`,
    /// `source`, `currency`, `day`, `month`; empty: one total.
    pub group_by: Vec<String>,
    pub provider: Option<String>,
    /// `billed`, `estimated` or `rated`.
    pub source: Option<String>,
}

/// The stored cost lines themselves, a page at a time (the FOCUS export reads them so).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostLineQuery {
    /// Lines whose `ChargePeriodStart` is in `[start, end)`, as [`CostQuery`] selects.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `ProviderName` (case-insensitive) or its slug (`aws`).
    pub provider: Option<String>,
    /// `billed`, `estimated` or `rated`.
    pub source: Option<String>,
    /// At most this many lines (1 to [`CostLineQuery::MAX_LIMIT`]; default 1000).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`: the page starts after the line it names.
    pub cursor: Option<String>,
}

impl CostLineQuery {
    pub const DEFAULT_LIMIT: u32 = 1000;
    pub const MAX_LIMIT: u32 = 100_000;

    pub fn limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }

    /// The cursor as the position (storage order) of the last line of the previous page;
    /// 0 before the first page.
    pub fn after(&self) -> Result<i64, StoreError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(0),
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "cost line cursor `{c}` is not one this server gave; start again without a cursor"
                ))
            }),
        }
    }
}

/// One group of cost lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostGroup {
    /// The group's values, by `group_by` name.
    pub group: BTreeMap<String, String>,
    pub billed_cost: f64,
    pub effective_cost: f64,
    pub currency: String,
    pub lines: u64,
    /// The oldest `x_price_date` among the group's lines: estimated lines carry the date of
    /// the price table they were computed from, so this says how current the prices behind
    /// the group are. Absent when no line has one (billed lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_price_date: Option<String>,
}

/// An agent as the server knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRecord {
    #[serde(flatten)]
    pub registration: AgentRegistration,
    pub registered_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub last_heartbeat_stats: Heartbeat,
    /// Computed when listed.
    pub status: AgentStatus,
}

/// What an API token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send batches, register and heartbeat.
    Ingest,
    /// Query.
    Read,
    /// Everything.
    Admin,
}

/// A token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    /// Short public id (the token's prefix), for listing and revoking.
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
}

/// Sizes, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreStats {
    pub resources: u64,
    pub series: u64,
    pub points: u64,
    pub costs: u64,
    pub agents: u64,
    pub batches: u64,
    /// Bytes of the data directory on disk.
    pub disk_bytes: u64,
    /// Bytes of sealed (compressed) point blocks, and the points in them.
    pub point_block_bytes: u64,
    pub point_block_points: u64,
}

/// What [`Store::enforce_retention`](crate::Store::enforce_retention) removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetentionReport {
    pub points: u64,
    pub costs: u64,
    pub resources: u64,
    /// Series left without any point, removed from the indexes and the registry.
    #[serde(default)]
    pub series: u64,
}
