//! Everything but points, in SQLite (`meta.sqlite`, WAL journal mode): batch ids for
//! dedupe, the series index, resources with first/last seen and their change history,
//! cost lines, agents and API tokens, and a little state (the sealed WAL position).
//!
//! `synchronous = NORMAL`: a commit survives a crash of the process but may be lost with
//! the machine's power. That is safe because every batch is in the store's own WAL, fsynced,
//! before it is applied here, and a WAL segment is deleted only after a commit with
//! `synchronous = FULL` (which syncs SQLite's WAL, and with it every earlier commit).
//! Replaying the store's WAL re-applies whatever SQLite lost: a batch's rows are written in
//! one transaction with its `batches` row, so a batch is applied exactly once.
//!
//! Agents and tokens are not in the store's WAL, so their changes (register an agent,
//! create or revoke a token) commit with `synchronous = FULL` ([`Meta::write_durably`]):
//! once the call returns they survive a power cut, as an acknowledged batch does. A
//! revoked token stays revoked. Heartbeats stay `NORMAL`: losing the last few to a power
//! cut only makes an agent look late for one interval.
//!
//! Times are INTEGER nanoseconds since the epoch.

use super::codec::{decode_cursor, encode_cursor, from_ns, to_ns_saturating};
use super::tokens;
use crate::types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, Page, PageQuery, ResourceChange,
    ResourceQuery, Scope, SeriesKey, StoreError, StoredResource, TokenInfo,
};
use parking_lot::Mutex;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::{json, Value};
use skymeter_model::api::{AgentRegistration, AgentStatus, Heartbeat};
use skymeter_model::{CollectError, Cost, Resource};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS server_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id BLOB PRIMARY KEY, agent_id TEXT NOT NULL, task TEXT NOT NULL,
    collected_at INTEGER NOT NULL, received_at INTEGER NOT NULL,
    resources INTEGER NOT NULL, points INTEGER NOT NULL, costs INTEGER NOT NULL,
    errors TEXT, content_hash BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_received ON batches (received_at);
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    rid TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_name ON resources (name, key);
CREATE INDEX IF NOT EXISTS resources_kind ON resources (kind, key);
CREATE INDEX IF NOT EXISTS resources_last_seen ON resources (last_seen, key);
CREATE INDEX IF NOT EXISTS resources_first_seen ON resources (first_seen, key);
CREATE INDEX IF NOT EXISTS resources_par ON resources (provider, account, region);
CREATE TABLE IF NOT EXISTS resource_tags (
    key TEXT NOT NULL, tag TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_tags_tv ON resource_tags (tag, value);
CREATE TABLE IF NOT EXISTS resource_history (
    n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at INTEGER NOT NULL, changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_history_key ON resource_history (key, at);
CREATE TABLE IF NOT EXISTS costs (
    n INTEGER PRIMARY KEY, provider TEXT NOT NULL, provider_name TEXT NOT NULL, service TEXT NOT NULL,
    account TEXT NOT NULL, region TEXT NOT NULL, resource TEXT NOT NULL, category TEXT NOT NULL,
    source TEXT NOT NULL, currency TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    billed REAL NOT NULL, effective REAL NOT NULL, record TEXT NOT NULL,
    sku TEXT NOT NULL DEFAULT '', price_date TEXT, collected_at INTEGER NOT NULL DEFAULT 0
);
-- Every column the grouping reads and filters on, after `start`: a grouping over a window
-- reads this index alone, never the rows with their JSON record (at a year of daily lines
-- per resource, those are most of the file). It serves lookups by `start` too.
DROP INDEX IF EXISTS costs_start;
CREATE INDEX IF NOT EXISTS costs_cover ON costs (
    start, source, provider, provider_name, account, service, category, region, resource,
    currency, billed, effective, price_date
);
CREATE INDEX IF NOT EXISTS costs_end ON costs (end);
CREATE UNIQUE INDEX IF NOT EXISTS costs_key ON costs (
    source, provider_name, account, region, service, resource, sku, category, start, end, currency
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, registration TEXT NOT NULL, registered_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL, interval_s INTEGER NOT NULL, stats TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scopes TEXT NOT NULL, created_at INTEGER NOT NULL,
    hash BLOB NOT NULL
);
"#;

/// The layout `SCHEMA` creates, kept in SQLite's `user_version`. 0 is the first layout, from
/// before versions were recorded; each step up is a function in [`migrate`].
/// 1: cost lines are keyed (`costs_key`): columns `sku`, `price_date`, `collected_at`.
pub const SCHEMA_VERSION: i64 = 1;

/// The columns of a cost line's key, in the order of the `costs_key` index: a line whose key
/// is stored replaces the stored one. `''` stands for an absent optional field.
const COST_KEY: &str =
    "source, provider_name, account, region, service, resource, sku, category, start, end, currency";

pub fn db_err(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database(format!("{context}: {e}"))
}

/// The non-point part of a batch, borrowed from a `Batch` (live) or a WAL record (replay).
pub struct BatchView<'a> {
    pub id: uuid::Uuid,
    pub agent_id: &'a str,
    pub task: &'a str,
    pub collected_at: chrono::DateTime<chrono::Utc>,
    pub received_at: i64,
    pub resources: &'a [Resource],
    pub costs: &'a [Cost],
    pub errors: &'a [CollectError],
    pub points: usize,
    pub content_hash: Option<[u8; 32]>,
}

pub struct Meta {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Database(format!("opening {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err("setting busy_timeout"))?;
    Ok(conn)
}

/// Brings a database of any earlier layout to [`SCHEMA_VERSION`] in one transaction (a crash
/// midway leaves the old layout, migrated again at the next open), then creates whatever is
/// missing. A database from a newer skymeter is refused rather than written in a layout it
/// does not know.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    // IMMEDIATE: the version is read under the write lock, so a second process opening the
    // same file (`skymeter token` beside a server) cannot migrate it a second time.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err("starting the schema migration"))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err("reading the schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "{} has schema version {version}, newer than this skymeter's {SCHEMA_VERSION}: run the skymeter version that wrote it, or a newer one",
            path.display()
        )));
    }
    let has_costs: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'costs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_err("reading the schema"))?
        > 0;
    if version == 0 && has_costs {
        let dropped = key_costs(&tx).map_err(db_err(
            "migrating the costs table to keyed cost lines (schema version 1)",
        ))?;
        tracing::info!(
            db = %path.display(), duplicate_cost_lines_dropped = dropped,
            "migrated the metadata schema to version 1: cost lines are keyed, a re-sent line replaces the stored one"
        );
    }
    tx.execute_batch(SCHEMA)
        .map_err(db_err("creating the schema"))?;
    // Added without a version step (a nullable column: old rows read as "no hash"), so
    // that it composes with whatever version the layout is at.
    let has_hash: bool = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info('batches') WHERE name = 'content_hash'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_err("reading the batches table's columns"))?
        > 0;
    if !has_hash {
        tx.execute_batch("ALTER TABLE batches ADD COLUMN content_hash BLOB")
            .map_err(db_err("adding batches.content_hash"))?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(db_err("recording the schema version"))?;
    tx.commit()
        .map_err(db_err("committing the schema migration"))
}

/// Version 0 → 1: adds the key's missing column (`sku`) and `price_date`, `collected_at`
/// (0: unknown, so any line sent again replaces it), fills `sku` and `price_date` from each
/// line's record, and keeps only the newest line (the last stored) of each key. Returns how
/// many lines were dropped as duplicates.
fn key_costs(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<usize> {
    tx.execute_batch(
        "ALTER TABLE costs ADD COLUMN sku TEXT NOT NULL DEFAULT '';
         ALTER TABLE costs ADD COLUMN price_date TEXT;
         ALTER TABLE costs ADD COLUMN collected_at INTEGER NOT NULL DEFAULT 0;",
    )?;
    let rows: Vec<(i64, String)> = {
        let mut st = tx.prepare("SELECT n, record FROM costs")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    {
        let mut st = tx.prepare("UPDATE costs SET sku = ?2, price_date = ?3 WHERE n = ?1")?;
        for (n, record) in rows {
            // A record that does not parse keeps sku '' and no price date: its other key
            // columns were written from the parsed line when it was stored.
            let v: Value = serde_json::from_str(&record).unwrap_or(Value::Null);
            let sku = v.get("SkuId").and_then(Value::as_str).unwrap_or_default();
            let price_date = v.get("x_price_date").and_then(Value::as_str);
            if !sku.is_empty() || price_date.is_some() {
                st.execute(params![n, sku, price_date])?;
            }
        }
    }
    // Rowids only grow (a new row takes max + 1), so the largest `n` of a key is the line
    // stored last.
    tx.execute(
        &format!("DELETE FROM costs WHERE n NOT IN (SELECT max(n) FROM costs GROUP BY {COST_KEY})"),
        [],
    )
}

impl Meta {
    pub fn open(path: &Path) -> Result<Meta, StoreError> {
        let mut conn = open_conn(path)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(db_err("setting WAL journal mode"))?;
        migrate(&mut conn, path)?;
        Ok(Meta {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn read<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.lock().pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let res = f(&conn).map_err(db_err(context));
        let mut pool = self.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        res
    }

    pub fn write<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        f(&mut self.writer.lock()).map_err(db_err(context))
    }

    /// A write whose commit is synced to disk before this returns (see the module docs):
    /// `synchronous = FULL` for this transaction only.
    pub fn write_durably<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.write(context, |c| {
            c.execute_batch("PRAGMA synchronous = FULL")?;
            let r = f(c);
            c.execute_batch("PRAGMA synchronous = NORMAL")?;
            r
        })
    }

    pub fn state(&self, k: &str) -> Result<Option<i64>, StoreError> {
        self.read("reading state", |c| {
            c.query_row("SELECT v FROM state WHERE k = ?", [k], |r| r.get(0))
                .optional()
        })
    }

    /// Records the sealed WAL position with a fully synced commit, which also makes every
    /// earlier commit durable (see the module docs).
    pub fn set_sealed_durably(&self, seq: u64) -> Result<(), StoreError> {
        self.write_durably("recording the sealed WAL position", |c| {
            c.execute(
                "INSERT OR REPLACE INTO state (k, v) VALUES ('sealed_seq', ?)",
                [seq as i64],
            )
            .map(|_| ())
        })
    }

    /// A read-only probe of the database for `/health`: a query on a reader connection.
    /// It takes neither the writer connection nor SQLite's write lock (WAL mode readers
    /// never wait for writers), so it answers at once under any ingest load, and a busy
    /// server does not turn probes into 503s.
    pub fn check(&self) -> Result<(), StoreError> {
        self.read("health check read", |c| {
            c.prepare_cached("SELECT count(*) FROM state")?
                .query_row([], |r| r.get::<_, i64>(0))
        })
        .map(|_| ())
    }

    /// `None` when the batch id is unknown; `Some(None)` when it is stored without a
    /// content hash (stored by a skymeter from before hashes were kept).
    pub fn batch_hash(&self, id: uuid::Uuid) -> Result<Option<Option<[u8; 32]>>, StoreError> {
        self.read("looking up a batch id", |c| {
            c.prepare_cached("SELECT content_hash FROM batches WHERE id = ?")?
                .query_row([id.as_bytes().as_slice()], |r| {
                    r.get::<_, Option<Vec<u8>>>(0)
                })
                .map(|h| Some(h.and_then(|h| <[u8; 32]>::try_from(h).ok())))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
        })
    }

    pub fn has_batch(&self, id: uuid::Uuid) -> Result<bool, StoreError> {
        self.read("looking up a batch id", |c| {
            c.prepare_cached("SELECT 1 FROM batches WHERE id = ?")?
                .exists([id.as_bytes().as_slice()])
        })
    }

    pub fn load_series(&self) -> Result<Vec<(u64, SeriesKey)>, StoreError> {
        let rows: Vec<(i64, String)> = self.read("loading the series index", |c| {
            let mut st = c.prepare("SELECT id, key FROM series")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(id, key)| {
                serde_json::from_str(&key)
                    .map(|k| (id as u64, k))
                    .map_err(|e| StoreError::Corrupt {
                        path: self.path.display().to_string(),
                        message: format!("series {id} has an unreadable key ({e})"),
                    })
            })
            .collect()
    }

    /// Removes series from the registry (retention emptied them) and records `next_id`,
    /// the lowest id a new series may take, in the same transaction: ids are not reused,
    /// even after the highest ones are removed and the store is reopened.
    pub fn delete_series(&self, ids: &[u64], next_id: u64) -> Result<(), StoreError> {
        self.write("removing series that retention emptied", |c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached("DELETE FROM series WHERE id = ?")?;
                for id in ids {
                    st.execute([*id as i64])?;
                }
            }
            tx.execute(
                "INSERT INTO state (k, v) VALUES ('next_series_id', ?1)
                 ON CONFLICT (k) DO UPDATE SET v = max(v, ?1)",
                [next_id as i64],
            )?;
            tx.commit()
        })
    }

    /// Applies a batch's rows in one transaction. Returns false (and changes nothing) when
    /// the batch was applied before.
    pub fn apply_batch(
        &self,
        b: &BatchView<'_>,
        new_series: &[(u64, &SeriesKey)],
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn
            .transaction()
            .map_err(db_err("starting a transaction"))?;
        let applied = apply_in_tx(&tx, b, new_series).map_err(db_err("storing a batch"))?;
        if applied {
            tx.commit().map_err(db_err("committing a batch"))?;
        }
        Ok(applied)
    }

    pub fn counts(&self) -> Result<[u64; 4], StoreError> {
        self.read("counting rows", |c| {
            let mut out = [0u64; 4];
            for (i, t) in ["resources", "costs", "agents", "batches"]
                .iter()
                .enumerate()
            {
                out[i] = c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
            }
            Ok(out)
        })
    }

    // ---- resources ----

    pub fn resources(&self, q: &ResourceQuery) -> Result<Page<StoredResource>, StoreError> {
        let sort = q.sort.as_deref().unwrap_or("key");
        let (desc, col) = match sort.strip_prefix('-') {
            Some(c) => (true, c),
            None => (false, sort),
        };
        if !["key", "name", "kind", "last_seen", "first_seen"].contains(&col) {
            return Err(StoreError::BadRequest(format!(
                "unknown sort `{sort}`; use key, name, kind, last_seen or first_seen, with `-` in front for descending"
            )));
        }
        let mut sql = format!(
            "SELECT key, record, first_seen, last_seen, {col} FROM resources r WHERE 1 = 1"
        );
        let mut args: Vec<SqlValue> = Vec::new();
        for (c, v) in [
            ("provider", &q.provider),
            ("account", &q.account),
            ("region", &q.region),
            ("kind", &q.kind),
        ] {
            if let Some(v) = v {
                sql += &format!(" AND {c} = ?");
                args.push(SqlValue::Text(v.clone()));
            }
        }
        for (t, v) in &q.tags {
            sql += " AND EXISTS (SELECT 1 FROM resource_tags t WHERE t.key = r.key AND t.tag = ? AND t.value = ?)";
            args.push(SqlValue::Text(t.clone()));
            args.push(SqlValue::Text(v.clone()));
        }
        if let Some(s) = q.q.as_deref().filter(|s| !s.is_empty()) {
            sql += " AND (instr(lower(name), ?) > 0 OR instr(lower(rid), ?) > 0)";
            args.push(SqlValue::Text(s.to_lowercase()));
            args.push(SqlValue::Text(s.to_lowercase()));
        }
        let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
        if let Some(c) = &q.page.cursor {
            let v = decode_cursor(c, "resources")?;
            if v.get("sort").and_then(Value::as_str) != Some(sort) {
                return Err(StoreError::BadRequest(format!(
                    "this cursor belongs to a listing sorted by another key than `{sort}`; start again without a cursor"
                )));
            }
            let key = v
                .get("k")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if col == "key" {
                sql += &format!(" AND key {cmp} ?");
            } else {
                sql += &format!(" AND ({col}, key) {cmp} (?, ?)");
                args.push(match v.get("v") {
                    Some(Value::Number(n)) => SqlValue::Integer(n.as_i64().unwrap_or(0)),
                    Some(Value::String(s)) => SqlValue::Text(s.clone()),
                    _ => return Err(StoreError::BadRequest("malformed cursor".into())),
                });
            }
            args.push(SqlValue::Text(key));
        }
        if col == "key" {
            sql += &format!(" ORDER BY key {dir}");
        } else {
            sql += &format!(" ORDER BY {col} {dir}, key {dir}");
        }
        let limit = q.page.limit() as usize;
        sql += &format!(" LIMIT {}", limit + 1);
        let mut rows: Vec<(String, String, i64, i64, SqlValue)> =
            self.read("listing resources", |c| {
                let mut st = c.prepare_cached(&sql)?;
                let rows = st.query_map(params_from_iter(args), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect()
            })?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            let (key, _, _, _, v) = rows.last().unwrap();
            let v = match v {
                SqlValue::Integer(i) => json!(i),
                SqlValue::Text(s) => json!(s),
                _ => Value::Null,
            };
            Some(encode_cursor(
                &json!({"kind": "resources", "sort": sort, "k": key, "v": v}),
            ))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|(key, record, first, last, _)| self.stored(key, &record, first, last))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    fn stored(
        &self,
        key: String,
        record: &str,
        first: i64,
        last: i64,
    ) -> Result<StoredResource, StoreError> {
        let resource = serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("resource {key} has an unreadable record ({e})"),
        })?;
        Ok(StoredResource {
            key,
            resource,
            first_seen: from_ns(first),
            last_seen: from_ns(last),
        })
    }

    /// Per resource: key, last seen (ns) and what Prometheus labels take from it.
    pub fn resource_labels(
        &self,
    ) -> Result<Vec<(String, i64, crate::prom::ResourceLabels)>, StoreError> {
        self.read("loading resource labels", |c| {
            let mut tags: std::collections::HashMap<
                String,
                std::collections::BTreeMap<String, String>,
            > = Default::default();
            let mut st = c.prepare("SELECT key, tag, value FROM resource_tags")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (k, t, v) = row?;
                tags.entry(k).or_default().insert(t, v);
            }
            let mut st = c.prepare("SELECT key, last_seen, kind, name FROM resources")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (key, last, kind, name) = row?;
                let tags = tags.remove(&key).unwrap_or_default();
                Ok((key, last, crate::prom::ResourceLabels { kind, name, tags }))
            })
            .collect()
        })
    }

    pub fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        let row: Option<(String, i64, i64)> = self.read("reading a resource", |c| {
            c.query_row(
                "SELECT record, first_seen, last_seen FROM resources WHERE key = ?",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        row.map(|(rec, f, l)| self.stored(key.to_string(), &rec, f, l))
            .transpose()
    }

    pub fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError> {
        let rows: Vec<(i64, String)> = self.read("reading a resource's history", |c| {
            let mut st = c.prepare_cached(
                "SELECT at, changes FROM resource_history WHERE key = ? ORDER BY at, n",
            )?;
            let rows = st.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(at, ch)| {
                Ok(ResourceChange {
                    at: from_ns(at),
                    changes: serde_json::from_str(&ch).map_err(|e| StoreError::Corrupt {
                        path: self.path.display().to_string(),
                        message: format!("history of {key} is unreadable ({e})"),
                    })?,
                })
            })
            .collect()
    }

    // ---- costs ----

    pub fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError> {
        Ok(self.group_costs(&[q], true)?.pop().unwrap_or_default())
    }

    /// Several groupings from one read of the lines when none filters by provider or
    /// source (those filters are SQL's); else one read per query.
    pub fn costs_many(&self, qs: &[CostQuery]) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        if qs.len() > 1
            && qs
                .iter()
                .all(|q| q.provider.is_none() && q.source.is_none())
        {
            let refs: Vec<&CostQuery> = qs.iter().collect();
            return self.group_costs(&refs, false);
        }
        qs.iter().map(|q| self.costs(q)).collect()
    }

    /// Groups in Rust rather than with SQL `GROUP BY`: SQLite groups by sorting every
    /// matching line in a temporary b-tree, which at millions of lines took most of a
    /// findings or budgets round; a hash map over one pass of the covering index does not.
    /// Sums follow SQLite's `SUM` (Kahan-Babuska-Neumaier), so figures do not depend on
    /// which side summed them. One pass serves every query in `qs`: the read covers their
    /// windows together and each line counts for the queries whose window holds it.
    /// `sql_filters`: the provider and source filters of the single query go into SQL.
    fn group_costs(
        &self,
        qs: &[&CostQuery],
        sql_filters: bool,
    ) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        let mut keys_of = Vec::with_capacity(qs.len());
        let mut columns: Vec<&'static str> = Vec::new();
        // Per query, per key: the column it is read from and, for `day` and `month`, how
        // `start` becomes the period.
        let mut plan: Vec<Vec<(usize, Option<Period>)>> = Vec::with_capacity(qs.len());
        for q in qs {
            // `day` and `month` are read as `start` and formatted here.
            let (keys, exprs) = cost_group_columns(&q.group_by, "start", "start")?;
            plan.push(
                keys.iter()
                    .zip(exprs)
                    .map(|(k, e)| {
                        let col = columns.iter().position(|c| *c == e).unwrap_or_else(|| {
                            columns.push(e);
                            columns.len() - 1
                        });
                        let period = match *k {
                            "day" => Some(Period::Day),
                            "month" => Some(Period::Month),
                            _ => None,
                        };
                        (col, period)
                    })
                    .collect(),
            );
            keys_of.push(keys);
        }
        let n = columns.len();
        let mut sql = String::from("SELECT ");
        for c in &columns {
            sql += c;
            sql += ", ";
        }
        sql += "start, currency, billed, effective, price_date FROM costs WHERE 1 = 1";
        let mut args: Vec<SqlValue> = Vec::new();
        // The union of the windows (any query without a bound: no bound).
        let start = qs
            .iter()
            .map(|q| q.start)
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min());
        let end = qs
            .iter()
            .map(|q| q.end)
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        cost_filter(
            CostFilter {
                start,
                end,
                provider: if sql_filters {
                    qs[0].provider.as_deref()
                } else {
                    None
                },
                source: if sql_filters {
                    qs[0].source.as_deref()
                } else {
                    None
                },
                scan: false,
            },
            &mut sql,
            &mut args,
        )?;
        let windows: Vec<(i64, i64)> = qs
            .iter()
            .map(|q| {
                (
                    q.start.map_or(i64::MIN, to_ns_saturating),
                    q.end.map_or(i64::MAX, to_ns_saturating),
                )
            })
            .collect();
        let groups = self.read("grouping costs", |c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params_from_iter(args))?;
            let mut groups: Vec<HashMap<String, GroupSums>> = vec![HashMap::new(); qs.len()];
            // A group's identity as one string (values, then currency, each ended by a
            // unit separator; periods as their number), so a line of a known group costs a
            // lookup and no allocation.
            let mut id = String::new();
            while let Some(r) = rows.next()? {
                let line_start: i64 = r.get(n)?;
                let currency = text_at(r, n + 1)?;
                let billed: f64 = r.get(n + 2)?;
                let effective: f64 = r.get(n + 3)?;
                let price_date = r.get_ref(n + 4)?.as_str_or_null()?;
                for ((cols, &(lo, hi)), groups) in plan.iter().zip(&windows).zip(&mut groups) {
                    if line_start < lo || line_start >= hi {
                        continue;
                    }
                    id.clear();
                    for (col, period) in cols {
                        match period {
                            Some(p) => {
                                let _ = write!(id, "{}", p.number(r.get::<_, i64>(*col)?));
                            }
                            None => id.push_str(text_at(r, *col)?),
                        }
                        id.push('\u{1f}');
                    }
                    id.push_str(currency);
                    let g = match groups.get_mut(id.as_str()) {
                        Some(g) => g,
                        None => {
                            let vals = cols
                                .iter()
                                .map(|(col, period)| {
                                    Ok(match period {
                                        Some(p) => p.label(r.get::<_, i64>(*col)?),
                                        None => text_at(r, *col)?.to_string(),
                                    })
                                })
                                .collect::<rusqlite::Result<Vec<String>>>()?;
                            groups.entry(id.clone()).or_insert(GroupSums {
                                vals,
                                currency: currency.to_string(),
                                billed: Neumaier::default(),
                                effective: Neumaier::default(),
                                lines: 0,
                                price_date: None,
                            })
                        }
                    };
                    g.billed.add(billed);
                    g.effective.add(effective);
                    g.lines += 1;
                    if let Some(d) = price_date {
                        if g.price_date.as_deref().is_none_or(|have| d < have) {
                            g.price_date = Some(d.to_string());
                        }
                    }
                }
            }
            Ok(groups)
        })?;
        Ok(groups
            .into_iter()
            .zip(&keys_of)
            .map(|(groups, keys)| {
                let mut rows: Vec<CostRow> = groups
                    .into_values()
                    .map(|g| {
                        (
                            g.vals,
                            g.currency,
                            g.billed.total(),
                            g.effective.total(),
                            g.lines,
                            g.price_date,
                        )
                    })
                    .collect();
                rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                cost_groups(keys, rows)
            })
            .collect())
    }

    /// One page of stored cost lines in rowid order, after the rowid `q.cursor` names.
    /// The filters do not use the `start` index (`+start`): the scan walks rowids from the
    /// cursor, so each page costs what it reads and a whole export reads the table once,
    /// instead of sorting every match by rowid for every page.
    pub fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError> {
        let after = q.after()?;
        let limit = q.limit();
        let mut sql = String::from("SELECT n, record FROM costs WHERE n > ?");
        let mut args = vec![SqlValue::Integer(after)];
        cost_filter(
            CostFilter {
                start: q.start,
                end: q.end,
                provider: q.provider.as_deref(),
                source: q.source.as_deref(),
                scan: true,
            },
            &mut sql,
            &mut args,
        )?;
        sql += " ORDER BY n LIMIT ?";
        args.push(SqlValue::Integer(i64::from(limit)));
        let rows: Vec<(i64, String)> = self.read("reading cost lines", |c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        let next_cursor = if rows.len() == limit as usize {
            rows.last().map(|(n, _)| n.to_string())
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|(n, record)| {
                serde_json::from_str::<Cost>(&record).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!(
                        "cost line {n} of table `costs` does not read back ({e}); restore the \
                         file from a backup or delete that row"
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }

    /// See `Store::for_each_cost_line`: one statement over the `start` range of the covering
    /// index, each line's record read by rowid and parsed as it comes. (`cost_lines` walks
    /// rowids from its cursor so that each page costs what it reads; for a month of a year's
    /// lines that walk reads the whole table.)
    pub fn for_each_cost_line(
        &self,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        f: &mut dyn FnMut(&Cost),
    ) -> Result<(), StoreError> {
        let mut bad: Option<StoreError> = None;
        self.read("reading cost lines", |c| {
            let mut st =
                c.prepare_cached("SELECT n, record FROM costs WHERE start >= ? AND start < ?")?;
            let mut rows = st.query(params![to_ns_saturating(start), to_ns_saturating(end)])?;
            while let Some(r) = rows.next()? {
                let record = r.get_ref(1)?.as_str()?;
                match serde_json::from_str::<Cost>(record) {
                    Ok(line) => f(&line),
                    Err(e) => {
                        let n: i64 = r.get(0)?;
                        bad = Some(StoreError::Corrupt {
                            path: self.path.display().to_string(),
                            message: format!(
                                "cost line {n} of table `costs` does not read back ({e}); restore \
                                 the file from a backup or delete that row"
                            ),
                        });
                        break;
                    }
                }
            }
            Ok(())
        })?;
        bad.map_or(Ok(()), Err)
    }

    // ---- agents ----

    pub fn register_agent(&self, a: &AgentRegistration, now: i64) -> Result<(), StoreError> {
        let reg = serde_json::to_string(a).expect("registrations serialize");
        let stats = serde_json::to_string(&Heartbeat::default()).unwrap();
        self.write_durably("registering an agent", |c| {
            c.execute(
                "INSERT INTO agents (id, registration, registered_at, last_heartbeat, interval_s, stats)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET registration = ?2, registered_at = ?3, last_heartbeat = ?3, interval_s = ?4",
                params![a.id, reg, now, a.heartbeat_interval_s as i64, stats],
            )
            .map(|_| ())
        })
    }

    pub fn heartbeat(&self, id: &str, stats: &Heartbeat, now: i64) -> Result<bool, StoreError> {
        let stats = serde_json::to_string(stats).unwrap();
        self.write("recording a heartbeat", |c| {
            c.execute(
                "UPDATE agents SET last_heartbeat = ?2, stats = ?3 WHERE id = ?1",
                params![id, now, stats],
            )
            .map(|n| n > 0)
        })
    }

    pub fn agent_registration(&self, id: &str) -> Result<Option<AgentRegistration>, StoreError> {
        let reg: Option<String> = self.read("looking up an agent", |c| {
            c.prepare_cached("SELECT registration FROM agents WHERE id = ?")?
                .query_row([id], |r| r.get(0))
                .optional()
        })?;
        reg.map(|reg| {
            serde_json::from_str(&reg).map_err(|e| StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!("agent {id} has an unreadable registration ({e})"),
            })
        })
        .transpose()
    }

    pub fn agents(
        &self,
        page: &PageQuery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Page<AgentRecord>, StoreError> {
        let after = match &page.cursor {
            Some(c) => decode_cursor(c, "agents")?
                .get("k")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        };
        let limit = page.limit() as usize;
        let mut rows: Vec<(String, String, i64, i64, String)> = self.read("listing agents", |c| {
            let mut st = c.prepare_cached(
                "SELECT id, registration, registered_at, last_heartbeat, stats FROM agents WHERE id > ? ORDER BY id LIMIT ?",
            )?;
            let rows = st.query_map(params![after, (limit + 1) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            encode_cursor(&json!({"kind": "agents", "k": rows.last().unwrap().0}))
        });
        let corrupt = |id: &str, e: serde_json::Error| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("agent {id} has an unreadable record ({e})"),
        };
        let items = rows
            .into_iter()
            .map(|(id, reg, registered, last, stats)| {
                let registration: AgentRegistration =
                    serde_json::from_str(&reg).map_err(|e| corrupt(&id, e))?;
                let last_heartbeat = from_ns(last);
                Ok(AgentRecord {
                    status: AgentStatus::at(now, last_heartbeat, registration.heartbeat_interval_s),
                    registration,
                    registered_at: from_ns(registered),
                    last_heartbeat,
                    last_heartbeat_stats: serde_json::from_str(&stats)
                        .map_err(|e| corrupt(&id, e))?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page { items, next_cursor })
    }

    // ---- tokens ----

    pub fn create_token(
        &self,
        name: &str,
        scopes: &[Scope],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(String, TokenInfo), StoreError> {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let scopes_json = serde_json::to_string(&scopes).unwrap();
        loop {
            let (id, token) = tokens::generate();
            let hash = tokens::hash(&token);
            let inserted = self.write_durably("creating a token", |c| {
                c.execute(
                    "INSERT OR IGNORE INTO tokens (id, name, scopes, created_at, hash) VALUES (?, ?, ?, ?, ?)",
                    params![id, name, scopes_json, to_ns_saturating(now), hash.as_slice()],
                )
            })?;
            if inserted == 1 {
                let info = TokenInfo {
                    id,
                    name: name.to_string(),
                    scopes,
                    created_at: now,
                };
                return Ok((token, info));
            }
            // The 40-bit public id collided with an existing one: draw again.
        }
    }

    pub fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        let Some(id) = tokens::public_id(token) else {
            return Ok(None);
        };
        let row: Option<(String, String, i64, Vec<u8>)> =
            self.read("authenticating a token", |c| {
                c.prepare_cached("SELECT name, scopes, created_at, hash FROM tokens WHERE id = ?")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()
            })?;
        let Some((name, scopes, created, stored)) = row else {
            return Ok(None);
        };
        if !tokens::ct_eq(&tokens::hash(token), &stored) {
            return Ok(None);
        }
        Ok(Some(TokenInfo {
            id: id.to_string(),
            name,
            scopes: serde_json::from_str(&scopes).unwrap_or_default(),
            created_at: from_ns(created),
        }))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read("listing tokens", |c| {
            let mut st = c.prepare_cached(
                "SELECT id, name, scopes, created_at FROM tokens ORDER BY created_at, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    scopes: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    created_at: from_ns(r.get(3)?),
                })
            })?;
            rows.collect()
        })
    }

    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        self.write_durably("revoking a token", |c| {
            c.execute("DELETE FROM tokens WHERE id = ?", [id])
                .map(|n| n > 0)
        })
    }

    // ---- retention ----

    /// Deletes costs that ended at or before `before`, resources last seen before it (with
    /// their tags and history), and batch ids received before it. Returns (costs, resources).
    pub fn retention(&self, before: i64) -> Result<(u64, u64), StoreError> {
        self.write("enforcing retention", |c| {
            let tx = c.transaction()?;
            let costs = tx.execute("DELETE FROM costs WHERE end <= ?", [before])?;
            tx.execute("DELETE FROM resource_tags WHERE key IN (SELECT key FROM resources WHERE last_seen < ?)", [before])?;
            tx.execute("DELETE FROM resource_history WHERE key IN (SELECT key FROM resources WHERE last_seen < ?)", [before])?;
            let resources = tx.execute("DELETE FROM resources WHERE last_seen < ?", [before])?;
            tx.execute("DELETE FROM batches WHERE received_at < ?", [before])?;
            tx.execute(
                "INSERT INTO state (k, v) VALUES ('retention_before', ?1)
                 ON CONFLICT (k) DO UPDATE SET v = max(v, ?1)",
                [before],
            )?;
            tx.commit()?;
            Ok((costs as u64, resources as u64))
        })
    }

    /// Deletes the cost lines of `source` whose charge period starts in `[start, end)`.
    pub fn delete_costs(&self, source: &str, start: i64, end: i64) -> Result<u64, StoreError> {
        self.write_durably("deleting cost lines", |c| {
            c.execute(
                "DELETE FROM costs WHERE source = ? AND start >= ? AND start < ?",
                params![source, start, end],
            )
            .map(|n| n as u64)
        })
    }

    pub fn server_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read("reading the server's state", |c| {
            c.query_row("SELECT value FROM server_state WHERE key = ?", [key], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write_durably("saving the server's state", |c| {
            c.execute(
                "INSERT INTO server_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map(|_| ())
        })
    }

    /// Forgets batch ids received before `before` (the dedupe window).
    pub fn prune_batches(&self, before: i64) -> Result<u64, StoreError> {
        self.write("pruning old batch ids", |c| {
            c.execute("DELETE FROM batches WHERE received_at < ?", [before])
                .map(|n| n as u64)
        })
    }
}

fn apply_in_tx(
    tx: &rusqlite::Transaction<'_>,
    b: &BatchView<'_>,
    new_series: &[(u64, &SeriesKey)],
) -> rusqlite::Result<bool> {
    let errors = (!b.errors.is_empty()).then(|| serde_json::to_string(b.errors).unwrap());
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (id, agent_id, task, collected_at, received_at, resources, points, costs, errors, content_hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            b.id.as_bytes().as_slice(),
            b.agent_id,
            b.task,
            to_ns_saturating(b.collected_at),
            b.received_at,
            b.resources.len() as i64,
            b.points as i64,
            b.costs.len() as i64,
            errors,
            b.content_hash.as_ref().map(|h| h.as_slice())
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    {
        let mut st = tx.prepare_cached("INSERT OR IGNORE INTO series (id, key) VALUES (?, ?)")?;
        for (id, key) in new_series {
            st.execute(params![*id as i64, serde_json::to_string(key).unwrap()])?;
        }
    }
    for r in b.resources {
        upsert_resource(tx, r)?;
    }
    if !b.costs.is_empty() {
        upsert_costs(tx, b)?;
    }
    Ok(true)
}

/// The filters cost queries share (see [`CostQuery`]).
struct CostFilter<'a> {
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
    provider: Option<&'a str>,
    source: Option<&'a str>,
    /// Keep SQLite off the `start` index (a rowid scan reads pages in rowid order).
    scan: bool,
}

/// Adds `f`'s conditions to `sql` (which ends in a `WHERE` clause) and their values to `args`.
fn cost_filter(
    f: CostFilter<'_>,
    sql: &mut String,
    args: &mut Vec<SqlValue>,
) -> Result<(), StoreError> {
    let start = if f.scan { "+start" } else { "start" };
    if let Some(s) = f.start {
        *sql += &format!(" AND {start} >= ?");
        args.push(SqlValue::Integer(to_ns_saturating(s)));
    }
    if let Some(e) = f.end {
        *sql += &format!(" AND {start} < ?");
        args.push(SqlValue::Integer(to_ns_saturating(e)));
    }
    if let Some(p) = f.provider {
        *sql += " AND (provider = ? OR lower(provider_name) = ?)";
        args.push(SqlValue::Text(p.to_lowercase()));
        args.push(SqlValue::Text(p.to_lowercase()));
    }
    if let Some(s) = f.source {
        if skymeter_model::CostSource::parse(s).is_none() {
            return Err(StoreError::BadRequest(format!(
                "unknown cost source `{s}`; use billed, estimated or rated"
            )));
        }
        *sql += " AND source = ?";
        args.push(SqlValue::Text(s.to_string()));
    }
    Ok(())
}

/// Stores a batch's cost lines by key (`costs_key`): a line whose key is stored replaces the
/// stored line unless that came from a batch collected later (a late retry of an old batch
/// does not undo fresher figures); equal collection times: the line applied last wins, so
/// within a batch too. Re-reading a billing period thus replaces its lines instead of adding
/// them again.
fn upsert_costs(tx: &rusqlite::Transaction<'_>, b: &BatchView<'_>) -> rusqlite::Result<()> {
    let collected_at = to_ns_saturating(b.collected_at);
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO costs (provider, provider_name, service, account, region, resource, sku, category, source,
                            currency, start, end, billed, effective, price_date, collected_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT ({COST_KEY}) DO UPDATE SET
             provider = excluded.provider, billed = excluded.billed, effective = excluded.effective,
             price_date = excluded.price_date, collected_at = excluded.collected_at, record = excluded.record
         WHERE excluded.collected_at >= costs.collected_at"
    ))?;
    let mut keys = std::collections::HashSet::with_capacity(b.costs.len());
    let mut repeated = 0usize;
    for c in b.costs {
        let category = serde_json::to_value(c.charge_category).unwrap();
        let category = category.as_str().unwrap_or_default();
        let source = c.x_source.as_str();
        let account = c.sub_account_id.as_deref().unwrap_or_default();
        let region = c.region_id.as_deref().unwrap_or_default();
        let resource = c.resource_id.as_deref().unwrap_or_default();
        let sku = c.sku_id.as_deref().unwrap_or_default();
        let start = to_ns_saturating(c.charge_period_start);
        let end = to_ns_saturating(c.charge_period_end);
        st.execute(params![
            skymeter_model::provider::slug(&c.provider_name),
            c.provider_name,
            c.service_name,
            account,
            region,
            resource,
            sku,
            category,
            source,
            c.billing_currency,
            start,
            end,
            c.billed_cost,
            c.effective_cost,
            c.x_price_date,
            collected_at,
            serde_json::to_string(c).unwrap(),
        ])?;
        let key = (
            source.to_string(),
            &c.provider_name,
            account,
            region,
            &c.service_name,
            resource,
            sku,
            category.to_string(),
            start,
            end,
            &c.billing_currency,
        );
        if !keys.insert(key) {
            repeated += 1;
        }
    }
    if repeated > 0 {
        // Not an error (the batch is valid), but the sender probably meant the lines to add
        // up: say so where an operator looks.
        tracing::warn!(
            batch_id = %b.id, agent_id = b.agent_id, task = b.task, lines = repeated,
            "cost lines in one batch repeat the key of an earlier line of the same batch and replaced it; lines are keyed by x_source, ProviderName, SubAccountId, RegionId, ServiceName, ResourceId, SkuId, ChargeCategory, ChargePeriodStart/End and BillingCurrency: give such lines a SkuId or ResourceId of their own"
        );
    }
    Ok(())
}

/// Upserts by key: the first observation inserts; a newer one (observed_at ≥ last_seen)
/// replaces the record, moves last_seen and records what changed; an older one only moves
/// first_seen back.
fn upsert_resource(tx: &rusqlite::Transaction<'_>, r: &Resource) -> rusqlite::Result<()> {
    let key = r.reference().key();
    let at = to_ns_saturating(r.observed_at);
    let old: Option<(String, i64, i64)> = tx
        .prepare_cached("SELECT record, first_seen, last_seen FROM resources WHERE key = ?")?
        .query_row([&key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let record = serde_json::to_string(r).unwrap();
    let write_tags = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<()> {
        tx.prepare_cached("DELETE FROM resource_tags WHERE key = ?")?
            .execute([&key])?;
        let mut st =
            tx.prepare_cached("INSERT INTO resource_tags (key, tag, value) VALUES (?, ?, ?)")?;
        for (t, v) in &r.tags {
            st.execute(params![key, t, v])?;
        }
        Ok(())
    };
    match old {
        None => {
            tx.prepare_cached(
                "INSERT INTO resources (key, provider, account, region, rid, kind, name, first_seen, last_seen, record)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![key, r.provider, r.account, r.region, r.id, r.kind, r.name, at, at, record])?;
            write_tags(tx)?;
        }
        Some((old_record, first, last)) if at >= last => {
            let old: Option<Resource> = serde_json::from_str(&old_record).ok();
            let changes = old.map(|o| diff(&o, r)).unwrap_or_default();
            if !changes.is_empty() {
                tx.prepare_cached(
                    "INSERT INTO resource_history (key, at, changes) VALUES (?, ?, ?)",
                )?
                .execute(params![
                    key,
                    at,
                    serde_json::to_string(&changes).unwrap()
                ])?;
            }
            tx.prepare_cached(
                "UPDATE resources SET kind = ?2, name = ?3, first_seen = ?4, last_seen = ?5, record = ?6 WHERE key = ?1",
            )?
            .execute(params![key, r.kind, r.name, first.min(at), at, record])?;
            if changes.keys().any(|k| k.starts_with("tags.")) {
                write_tags(tx)?;
            }
        }
        Some((_, first, _)) => {
            if at < first {
                tx.prepare_cached("UPDATE resources SET first_seen = ? WHERE key = ?")?
                    .execute(params![at, key])?;
            }
        }
    }
    Ok(())
}

/// What changed between two observations: `name`, `kind`, `attributes.<k>`, `tags.<k>` →
/// [old, new], null for absent.
pub fn diff(old: &Resource, new: &Resource) -> std::collections::BTreeMap<String, [Value; 2]> {
    let mut out = std::collections::BTreeMap::new();
    if old.name != new.name {
        out.insert("name".into(), [json!(old.name), json!(new.name)]);
    }
    if old.kind != new.kind {
        out.insert("kind".into(), [json!(old.kind), json!(new.kind)]);
    }
    let keys: std::collections::BTreeSet<&String> =
        old.attributes.keys().chain(new.attributes.keys()).collect();
    for k in keys {
        let (a, b) = (old.attributes.get(k), new.attributes.get(k));
        if a != b {
            out.insert(
                format!("attributes.{k}"),
                [
                    a.cloned().unwrap_or(Value::Null),
                    b.cloned().unwrap_or(Value::Null),
                ],
            );
        }
    }
    let keys: std::collections::BTreeSet<&String> =
        old.tags.keys().chain(new.tags.keys()).collect();
    for k in keys {
        let (a, b) = (old.tags.get(k), new.tags.get(k));
        if a != b {
            let v = |x: Option<&String>| x.map_or(Value::Null, |s| json!(s));
            out.insert(format!("tags.{k}"), [v(a), v(b)]);
        }
    }
    out
}

/// A text column of a grouping row (`''` for NULL).
fn text_at<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    Ok(r.get_ref(i)?.as_str_or_null()?.unwrap_or_default())
}

/// A calendar period a grouping can be by, of a line's `start` (nanoseconds): the same
/// truncation as SQLite's `strftime(…, start / 1000000000, 'unixepoch')`.
#[derive(Clone, Copy)]
enum Period {
    Day,
    Month,
}

impl Period {
    fn date(start_ns: i64) -> chrono::NaiveDate {
        chrono::DateTime::from_timestamp(start_ns / 1_000_000_000, 0)
            .unwrap_or_default()
            .date_naive()
    }

    /// A number that is the same for two starts exactly when their labels are.
    fn number(self, start_ns: i64) -> i64 {
        let days = (start_ns / 1_000_000_000).div_euclid(86_400);
        match self {
            Period::Day => days,
            Period::Month => {
                use chrono::Datelike;
                let d = Self::date(start_ns);
                i64::from(d.year()) * 12 + i64::from(d.month0())
            }
        }
    }

    fn label(self, start_ns: i64) -> String {
        let d = Self::date(start_ns);
        match self {
            Period::Day => d.format("%Y-%m-%d").to_string(),
            Period::Month => d.format("%Y-%m").to_string(),
        }
    }
}

/// A group's running sums while the lines stream by.
#[derive(Clone)]
struct GroupSums {
    vals: Vec<String>,
    currency: String,
    billed: Neumaier,
    effective: Neumaier,
    lines: i64,
    price_date: Option<String>,
}

/// Compensated summation as SQLite's `SUM` does it over floating-point values
/// (Kahan-Babuska-Neumaier, SQLite 3.43 on), so that sums made here equal the ones SQL made.
#[derive(Clone, Default)]
struct Neumaier {
    sum: f64,
    err: f64,
}

impl Neumaier {
    fn add(&mut self, r: f64) {
        let s = self.sum;
        let t = s + r;
        if s.abs() > r.abs() {
            self.err += (s - t) + r;
        } else {
            self.err += (r - t) + s;
        }
        self.sum = t;
    }

    fn total(&self) -> f64 {
        if self.err.is_finite() {
            self.sum + self.err
        } else {
            self.sum
        }
    }
}

/// The distinct `group_by` names of a cost query, in order, and the SQL expression of each
/// (`day` and `month` as the dialect writes them).
pub(crate) fn cost_group_columns<'a>(
    group_by: &'a [String],
    day: &'static str,
    month: &'static str,
) -> Result<(Vec<&'a str>, Vec<&'static str>), StoreError> {
    let mut keys: Vec<&str> = Vec::new();
    for g in group_by {
        if !keys.contains(&g.as_str()) {
            keys.push(g.as_str());
        }
    }
    let exprs = keys
        .iter()
        .map(|k| match *k {
            "provider" => Ok("provider_name"),
            "service" => Ok("service"),
            "account" => Ok("account"),
            "region" => Ok("region"),
            "resource" => Ok("resource"),
            "category" => Ok("category"),
            "source" => Ok("source"),
            "currency" => Ok("currency"),
            "day" => Ok(day),
            "month" => Ok(month),
            other => Err(StoreError::BadRequest(format!(
                "cannot group costs by `{other}`; use provider, service, account, region, resource, category, source, currency, day or month"
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok((keys, exprs))
}

/// A row of a cost grouping query: the group's values, currency, billed and effective sums,
/// line count and oldest price date.
pub(crate) type CostRow = (Vec<String>, String, f64, f64, i64, Option<String>);

/// One [`CostGroup`] per row of a grouping query (group values, currency, sums, line count,
/// oldest price date), rows ordered by group values then currency: a run of equal values
/// with more than one currency is split by currency, each part naming its currency.
pub(crate) fn cost_groups(keys: &[&str], rows: Vec<CostRow>) -> Vec<CostGroup> {
    // Which rows share their values with a neighbour (a run split by currency), then the
    // rows moved into groups: a grouping by resource has a row per resource, and cloning
    // every value would hold the answer twice at its largest.
    let mixed: Vec<bool> = (0..rows.len())
        .map(|i| {
            (i > 0 && rows[i - 1].0 == rows[i].0)
                || (i + 1 < rows.len() && rows[i + 1].0 == rows[i].0)
        })
        .collect();
    rows.into_iter()
        .zip(mixed)
        .map(
            |((vals, currency, billed, effective, lines, price_date), mixed)| {
                let mut group: std::collections::BTreeMap<String, String> =
                    keys.iter().map(|k| k.to_string()).zip(vals).collect();
                if mixed {
                    group.insert("currency".into(), currency.clone());
                }
                CostGroup {
                    group,
                    billed_cost: billed,
                    effective_cost: effective,
                    currency,
                    lines: lines as u64,
                    oldest_price_date: price_date,
                }
            },
        )
        .collect()
}
