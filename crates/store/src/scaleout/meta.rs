//! Everything but points in PostgreSQL: batch ids (dedupe across every server sharing the
//! database), the series catalog, resources with their history, cost lines, agents, API
//! tokens and the server's small state. The same rows and rules as the embedded store's
//! SQLite (`embedded/meta.rs`), so that both answer alike; what differs is the dialect and
//! that several servers write at once, which the statements below are written for
//! (`ON CONFLICT`, row locks, one transaction per batch).
//!
//! The schema is versioned with refinery (`migrations/V*.sql`, history in
//! `refinery_schema_history`); servers starting together take a PostgreSQL advisory lock
//! around the migration so that exactly one of them applies it. The tables go to the
//! first schema of the connection's `search_path` (`public` unless the URL says otherwise,
//! e.g. `?options=-csearch_path%3Dskymeter`).

use crate::embedded::codec::{decode_cursor, encode_cursor, from_ns, to_ns_saturating};
use crate::embedded::meta::diff;
use crate::embedded::tokens;
use crate::types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, Page, PageQuery, ResourceChange,
    ResourceQuery, Scope, SeriesInfo, SeriesKey, SeriesQuery, StoreError, StoredResource,
    TokenInfo,
};
use postgres::types::ToSql;
use postgres::Transaction;
use r2d2_postgres::PostgresConnectionManager;
use serde_json::{json, Value};
use skymeter_model::api::{AgentRegistration, AgentStatus, Heartbeat};
use skymeter_model::{Batch, Cost, Resource};
use skymeter_pgconn::{MakeRustlsConnect, PgTarget};
use std::collections::HashMap;
use std::time::Duration;

mod embedded_migrations {
    refinery::embed_migrations!("src/scaleout/migrations");
}

/// The advisory lock key servers take while migrating (any constant; "skymeter" in ASCII).
const MIGRATION_LOCK: i64 = 0x736b_796d_6574_6572;

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

/// A boxed SQL argument, for statements whose argument list is built at run time.
type Arg = Box<dyn ToSql + Sync + Send>;

/// The URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "the --metadata URL".to_string(),
    }
}

fn db(context: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    // `Display` of `postgres::Error` is only "db error" for a server's error: the server's
    // message, detail and hint are in the `DbError`.
    move |e| match e.as_db_error() {
        Some(d) => StoreError::Database(format!("PostgreSQL, {context}: {d}")),
        None => StoreError::Database(format!("PostgreSQL, {context}: {e}")),
    }
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt {
        path: "PostgreSQL metadata".into(),
        message: what,
    }
}

/// One stored series' identity and how a batch extends it.
pub struct SeriesExtent<'a> {
    pub id: String,
    pub key: &'a SeriesKey,
    pub first: i64,
    pub last: i64,
    pub points: i64,
}

/// The metadata of the scale-out store.
pub struct PgMeta {
    /// Always `Some` but in `drop`.
    pool: Option<Pool>,
    /// The URL without its password, for messages.
    shown: String,
}

impl PgMeta {
    /// Connects (a pool of up to `max_connections`) and brings the schema to this
    /// skymeter's version. Fails with a message naming the database and what to do.
    pub fn connect(url: &str, max_connections: u32) -> Result<PgMeta, StoreError> {
        let shown = redact(url);
        let target = PgTarget::parse(url)
            .map_err(|e| StoreError::BadRequest(format!("--metadata {shown}: {e}")))?;
        let config = postgres::Config::from(target.config);
        let manager = PostgresConnectionManager::new(config.clone(), target.tls.clone());
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| {
                // r2d2 keeps only the last error's top line ("error performing TLS
                // handshake"); one direct attempt gives the whole reason.
                let why = match config.connect(target.tls) {
                    Err(direct) => skymeter_pgconn::describe(&direct),
                    Ok(_) => e.to_string(),
                };
                StoreError::Database(format!(
                    "cannot connect to PostgreSQL at {shown}: {why}; check that it runs, that the database exists, that the user may log in and, with sslmode=verify-ca/verify-full, that sslrootcert holds the CA of the server's certificate"
                ))
            })?;
        let meta = PgMeta {
            pool: Some(pool),
            shown,
        };
        meta.migrate()?;
        Ok(meta)
    }

    pub(crate) fn conn(&self) -> Result<Conn, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .expect("the pool lives as long as the store");
        pool.get().map_err(|e| {
            StoreError::Database(format!(
                "no PostgreSQL connection to {} within 10 s: {e}",
                self.shown
            ))
        })
    }

    /// Runs a statement whose arguments were built at run time.
    fn query(
        &self,
        sql: &str,
        args: &[Arg],
        context: &str,
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        self.conn()?.query(sql, &refs).map_err(db(context))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db("taking the migration lock"))?;
        let result = embedded_migrations::migrations::runner()
            .set_abort_divergent(true)
            .run(&mut *c);
        let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
        match result {
            Ok(report) => {
                for m in report.applied_migrations() {
                    tracing::info!(db = %self.shown, version = m.version(), name = m.name(), "applied a metadata schema migration");
                }
            }
            Err(e) => {
                return Err(StoreError::Database(format!(
                    "migrating the metadata schema in {}: {e}; a database written by a newer skymeter needs that version",
                    self.shown
                )))
            }
        }
        unlock.map_err(db("releasing the migration lock"))?;
        Ok(())
    }

    /// The newest migration applied, for `/health`.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        let mut c = self.conn()?;
        c.query_one(
            "SELECT COALESCE(max(version), 0) FROM refinery_schema_history",
            &[],
        )
        .map(|r| r.get(0))
        .map_err(db("reading the schema version"))
    }

    pub fn check(&self) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        c.query_one("SELECT 1", &[])
            .map(|_| ())
            .map_err(db("health check"))
    }

    // ---- batches ----

    /// `None` when the batch id is unknown, else the stored content hash.
    pub fn batch_hash(&self, id: uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn()?;
        c.query_opt(
            "SELECT content_hash FROM batches WHERE id = $1::text::uuid",
            &[&id.to_string()],
        )
        .map(|r| r.map(|r| r.get(0)))
        .map_err(db("looking up a batch id"))
    }

    /// Stores a batch's rows in one transaction. `Ok(Some(hash))` when another server
    /// stored the same batch id first (nothing written), `Ok(None)` when stored.
    pub fn apply_batch(
        &self,
        b: &Batch,
        content_hash: &[u8; 32],
        series: &[SeriesExtent<'_>],
        extents: &[SeriesExtent<'_>],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db("starting a transaction"))?;
        let errors = (!b.errors.is_empty()).then(|| serde_json::to_value(&b.errors).unwrap());
        let now = to_ns_saturating(chrono::Utc::now());
        let inserted = tx
            .execute(
                "INSERT INTO batches (id, agent_id, task, collected_at, received_at, resources, points, costs, errors, content_hash)
                 VALUES ($1::text::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                &[
                    &b.batch_id.to_string(),
                    &b.agent_id,
                    &b.task,
                    &to_ns_saturating(b.collected_at),
                    &now,
                    &(b.resources.len() as i32),
                    &(b.points.len() as i32),
                    &(b.costs.len() as i32),
                    &errors,
                    &content_hash.as_slice(),
                ],
            )
            .map_err(db("recording the batch id"))?;
        if inserted == 0 {
            drop(tx);
            return Ok(Some(
                self.batch_hash(b.batch_id)?
                    .unwrap_or_else(|| content_hash.to_vec()),
            ));
        }
        upsert_series(&mut tx, series)?;
        widen_extents(&mut tx, extents)?;
        for r in &b.resources {
            upsert_resource(&mut tx, r)?;
        }
        if !b.costs.is_empty() {
            upsert_costs(&mut tx, b)?;
        }
        tx.commit().map_err(db("committing a batch"))?;
        Ok(None)
    }

    // ---- series ----

    /// The catalog's series matching `q`, in id order, one page.
    pub fn series(&self, q: &SeriesQuery) -> Result<Page<SeriesInfo>, StoreError> {
        let mut sql =
            String::from("SELECT id, key, first_ts, last_ts, points FROM series WHERE true");
        let mut args: Vec<Arg> = Vec::new();
        if let Some(m) = q.metric.as_deref().filter(|m| !m.is_empty()) {
            if m.contains('*') {
                let like: String = m
                    .chars()
                    .flat_map(|ch| match ch {
                        '*' => vec!['%'],
                        '%' | '_' | '\\' => vec!['\\', ch],
                        c => vec![c],
                    })
                    .collect();
                args.push(Box::new(like));
                sql += &format!(" AND metric LIKE ${}", args.len());
            } else {
                args.push(Box::new(m.to_string()));
                sql += &format!(" AND metric = ${}", args.len());
            }
        }
        push_equal(
            &mut sql,
            &mut args,
            [
                ("resource_key", &q.resource),
                ("provider", &q.provider),
                ("account", &q.account),
                ("region", &q.region),
            ],
        );
        if let Some(s) = q.stat {
            args.push(Box::new(s.as_str().to_string()));
            sql += &format!(" AND stat = ${}", args.len());
        }
        if !q.labels.is_empty() {
            args.push(Box::new(serde_json::to_value(&q.labels).unwrap()));
            sql += &format!(" AND labels @> ${}", args.len());
        }
        if let Some(c) = &q.page.cursor {
            let v = decode_cursor(c, "series")?;
            let after = v.get("k").and_then(Value::as_str).unwrap_or_default();
            args.push(Box::new(after.to_string()));
            sql += &format!(" AND id > ${}", args.len());
        }
        let limit = q.page.limit() as usize;
        sql += &format!(" ORDER BY id LIMIT {}", limit + 1);
        let mut rows = self.query(&sql, &args, "listing series")?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            let id: String = rows.last().unwrap().get(0);
            encode_cursor(&json!({"kind": "series", "k": id}))
        });
        let items = rows
            .into_iter()
            .map(|r| {
                let id: String = r.get(0);
                let key: SeriesKey = serde_json::from_value(r.get(1))
                    .map_err(|e| corrupt(format!("series {id} has an unreadable key ({e})")))?;
                Ok(SeriesInfo {
                    key,
                    first_ts: from_ns(r.get(2)),
                    last_ts: from_ns(r.get(3)),
                    points: r.get::<_, i64>(4).max(0) as u64,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page { items, next_cursor })
    }

    /// Every Prometheus name with the skymeter metric and unit behind it.
    pub fn prom_metrics(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut c = self.conn()?;
        let rows = c
            .query(
                "SELECT DISTINCT prom_name, metric, unit FROM series ORDER BY 1, 2, 3",
                &[],
            )
            .map_err(db("listing metric names"))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
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
        let numeric = col.ends_with("_seen");
        let sort_col = if numeric {
            format!("{col}::text")
        } else {
            col.to_string()
        };
        let mut sql = format!(
            "SELECT key, record, first_seen, last_seen, {sort_col} AS sort_value FROM resources r WHERE true"
        );
        let mut args: Vec<Arg> = Vec::new();
        push_equal(
            &mut sql,
            &mut args,
            [
                ("provider", &q.provider),
                ("account", &q.account),
                ("region", &q.region),
                ("kind", &q.kind),
            ],
        );
        if !q.tags.is_empty() {
            args.push(Box::new(serde_json::to_value(&q.tags).unwrap()));
            sql += &format!(" AND tags @> ${}", args.len());
        }
        if let Some(s) = q.q.as_deref().filter(|s| !s.is_empty()) {
            args.push(Box::new(s.to_lowercase()));
            let n = args.len();
            sql += &format!(" AND (strpos(lower(name), ${n}) > 0 OR strpos(lower(rid), ${n}) > 0)");
        }
        let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
        // `COLLATE "C"`: byte order, as SQLite and the embedded store sort text.
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
                args.push(Box::new(key));
                sql += &format!(" AND key COLLATE \"C\" {cmp} ${}", args.len());
            } else {
                match (numeric, v.get("v")) {
                    (true, Some(Value::Number(n))) => args.push(Box::new(n.as_i64().unwrap_or(0))),
                    (false, Some(Value::String(s))) => args.push(Box::new(s.clone())),
                    _ => return Err(StoreError::BadRequest("malformed cursor".into())),
                }
                args.push(Box::new(key));
                let n = args.len();
                let c = if numeric {
                    col.to_string()
                } else {
                    format!("{col} COLLATE \"C\"")
                };
                sql += &format!(
                    " AND ({c}, key COLLATE \"C\") {cmp} (${}, ${n} COLLATE \"C\")",
                    n - 1
                );
            }
        }
        if col == "key" {
            sql += &format!(" ORDER BY key COLLATE \"C\" {dir}");
        } else if numeric {
            sql += &format!(" ORDER BY r.{col} {dir}, key COLLATE \"C\" {dir}");
        } else {
            sql += &format!(" ORDER BY {col} COLLATE \"C\" {dir}, key COLLATE \"C\" {dir}");
        }
        let limit = q.page.limit() as usize;
        sql += &format!(" LIMIT {}", limit + 1);
        let mut rows = self.query(&sql, &args, "listing resources")?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            let last = rows.last().unwrap();
            let key: String = last.get(0);
            let v: String = last.get(4);
            let v = if numeric {
                json!(v.parse::<i64>().unwrap_or(0))
            } else {
                json!(v)
            };
            encode_cursor(&json!({"kind": "resources", "sort": sort, "k": key, "v": v}))
        });
        let items = rows
            .into_iter()
            .map(|r| stored(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    pub fn resource(&self, key: &str) -> Result<Option<StoredResource>, StoreError> {
        let mut c = self.conn()?;
        let row = c
            .query_opt(
                "SELECT record, first_seen, last_seen FROM resources WHERE key = $1",
                &[&key],
            )
            .map_err(db("reading a resource"))?;
        row.map(|r| stored(key.to_string(), r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    /// The latest records of the resources whose keys are given (those that exist).
    pub fn resources_by_key(&self, keys: &[String]) -> Result<Vec<Resource>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn()?;
        let rows = c
            .query(
                "SELECT key, record FROM resources WHERE key = ANY($1)",
                &[&keys],
            )
            .map_err(db("reading resources"))?;
        rows.into_iter()
            .map(|r| {
                let key: String = r.get(0);
                serde_json::from_value(r.get(1))
                    .map_err(|e| corrupt(format!("resource {key} has an unreadable record ({e})")))
            })
            .collect()
    }

    pub fn resource_history(&self, key: &str) -> Result<Vec<ResourceChange>, StoreError> {
        let mut c = self.conn()?;
        let rows = c
            .query(
                "SELECT at, changes FROM resource_history WHERE key = $1 ORDER BY at, n",
                &[&key],
            )
            .map_err(db("reading a resource's history"))?;
        rows.into_iter()
            .map(|r| {
                Ok(ResourceChange {
                    at: from_ns(r.get(0)),
                    changes: serde_json::from_value(r.get(1))
                        .map_err(|e| corrupt(format!("history of {key} is unreadable ({e})")))?,
                })
            })
            .collect()
    }

    // ---- costs ----

    pub fn costs(&self, q: &CostQuery) -> Result<Vec<CostGroup>, StoreError> {
        let (keys, exprs) = crate::embedded::meta::cost_group_columns(
            &q.group_by,
            "to_char(to_timestamp(start_ns / 1000000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            "to_char(to_timestamp(start_ns / 1000000000) AT TIME ZONE 'UTC', 'YYYY-MM')",
        )?;
        // `COLLATE "C"`: groups in byte order, as the embedded store (SQLite) sorts them.
        let mut sql = String::from("SELECT ");
        for e in &exprs {
            sql += &format!("({e}) COLLATE \"C\", ");
        }
        sql += "currency COLLATE \"C\", SUM(billed), SUM(effective), COUNT(*), MIN(price_date) FROM costs WHERE true";
        let mut args: Vec<Arg> = Vec::new();
        cost_filter(
            q.start,
            q.end,
            q.provider.as_deref(),
            q.source.as_deref(),
            &mut sql,
            &mut args,
        )?;
        let mut group = String::new();
        for (i, _) in exprs.iter().enumerate() {
            group += &format!("{}, ", i + 1);
        }
        group += &format!("{}", exprs.len() + 1);
        sql += &format!(" GROUP BY {group} ORDER BY {group}");
        let n = exprs.len();
        let rows = self.query(&sql, &args, "grouping costs")?;
        let rows: Vec<crate::embedded::meta::CostRow> = rows
            .into_iter()
            .map(|r| {
                let vals = (0..n)
                    .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                    .collect();
                (
                    vals,
                    r.get(n),
                    r.get(n + 1),
                    r.get(n + 2),
                    r.get(n + 3),
                    r.get(n + 4),
                )
            })
            .collect();
        Ok(crate::embedded::meta::cost_groups(&keys, rows))
    }

    /// One page of stored cost lines in insertion order, after the line `q.cursor` names.
    pub fn cost_lines(&self, q: &CostLineQuery) -> Result<Page<Cost>, StoreError> {
        let after = q.after()?;
        let limit = q.limit();
        let mut sql = String::from("SELECT n, record FROM costs WHERE n > $1");
        let mut args: Vec<Arg> = vec![Box::new(after)];
        cost_filter(
            q.start,
            q.end,
            q.provider.as_deref(),
            q.source.as_deref(),
            &mut sql,
            &mut args,
        )?;
        sql += &format!(" ORDER BY n LIMIT {limit}");
        let rows = self.query(&sql, &args, "reading cost lines")?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|r| r.get::<_, i64>(0).to_string()))
            .flatten();
        let items = rows
            .into_iter()
            .map(|r| {
                let n: i64 = r.get(0);
                serde_json::from_value::<Cost>(r.get(1)).map_err(|e| {
                    corrupt(format!(
                        "cost line {n} of table `costs` does not read back ({e}); delete that row"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor })
    }

    pub fn delete_costs(&self, source: &str, start: i64, end: i64) -> Result<u64, StoreError> {
        let mut c = self.conn()?;
        c.execute(
            "DELETE FROM costs WHERE source = $1 AND start_ns >= $2 AND start_ns < $3",
            &[&source, &start, &end],
        )
        .map_err(db("deleting cost lines"))
    }

    // ---- agents ----

    pub fn register_agent(&self, a: &AgentRegistration, now: i64) -> Result<(), StoreError> {
        let reg = serde_json::to_value(a).expect("registrations serialize");
        let stats = serde_json::to_value(Heartbeat::default()).unwrap();
        let mut c = self.conn()?;
        c.execute(
            "INSERT INTO agents (id, registration, registered_at, last_heartbeat, stats)
             VALUES ($1, $2, $3, $3, $4)
             ON CONFLICT (id) DO UPDATE SET registration = $2, registered_at = $3, last_heartbeat = $3",
            &[&a.id, &reg, &now, &stats],
        )
        .map(|_| ())
        .map_err(db("registering an agent"))
    }

    pub fn heartbeat(&self, id: &str, stats: &Heartbeat, now: i64) -> Result<bool, StoreError> {
        let stats = serde_json::to_value(stats).unwrap();
        let mut c = self.conn()?;
        c.execute(
            "UPDATE agents SET last_heartbeat = GREATEST(last_heartbeat, $2), stats = $3 WHERE id = $1",
            &[&id, &now, &stats],
        )
        .map(|n| n > 0)
        .map_err(db("recording a heartbeat"))
    }

    pub fn agent_registration(&self, id: &str) -> Result<Option<AgentRegistration>, StoreError> {
        let mut c = self.conn()?;
        let row = c
            .query_opt("SELECT registration FROM agents WHERE id = $1", &[&id])
            .map_err(db("looking up an agent"))?;
        row.map(|r| {
            serde_json::from_value(r.get(0))
                .map_err(|e| corrupt(format!("agent {id} has an unreadable registration ({e})")))
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
        let mut c = self.conn()?;
        let mut rows = c
            .query(
                "SELECT id, registration, registered_at, last_heartbeat, stats FROM agents
                 WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
                &[&after, &((limit + 1) as i64)],
            )
            .map_err(db("listing agents"))?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            encode_cursor(&json!({"kind": "agents", "k": rows.last().unwrap().get::<_, String>(0)}))
        });
        let items = rows
            .into_iter()
            .map(|r| {
                let id: String = r.get(0);
                let bad = |e: serde_json::Error| {
                    corrupt(format!("agent {id} has an unreadable record ({e})"))
                };
                let registration: AgentRegistration =
                    serde_json::from_value(r.get(1)).map_err(bad)?;
                let last_heartbeat = from_ns(r.get(3));
                Ok(AgentRecord {
                    status: AgentStatus::at(now, last_heartbeat, registration.heartbeat_interval_s),
                    registration,
                    registered_at: from_ns(r.get(2)),
                    last_heartbeat,
                    last_heartbeat_stats: serde_json::from_value(r.get(4)).map_err(bad)?,
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
        let scopes_json = serde_json::to_value(&scopes).unwrap();
        let mut c = self.conn()?;
        loop {
            let (id, token) = tokens::generate();
            let hash = tokens::hash(&token);
            let inserted = c
                .execute(
                    "INSERT INTO tokens (id, name, scopes, created_at, hash) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &name, &scopes_json, &to_ns_saturating(now), &hash.as_slice()],
                )
                .map_err(db("creating a token"))?;
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
        let mut c = self.conn()?;
        let row = c
            .query_opt(
                "SELECT name, scopes, created_at, hash FROM tokens WHERE id = $1",
                &[&id],
            )
            .map_err(db("authenticating a token"))?;
        let Some(row) = row else { return Ok(None) };
        let stored: Vec<u8> = row.get(3);
        if !tokens::ct_eq(&tokens::hash(token), &stored) {
            return Ok(None);
        }
        Ok(Some(TokenInfo {
            id: id.to_string(),
            name: row.get(0),
            scopes: serde_json::from_value(row.get(1)).unwrap_or_default(),
            created_at: from_ns(row.get(2)),
        }))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut c = self.conn()?;
        let rows = c
            .query(
                "SELECT id, name, scopes, created_at FROM tokens ORDER BY created_at, id COLLATE \"C\"",
                &[],
            )
            .map_err(db("listing tokens"))?;
        Ok(rows
            .into_iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                name: r.get(1),
                scopes: serde_json::from_value(r.get(2)).unwrap_or_default(),
                created_at: from_ns(r.get(3)),
            })
            .collect())
    }

    pub fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut c = self.conn()?;
        c.execute("DELETE FROM tokens WHERE id = $1", &[&id])
            .map(|n| n > 0)
            .map_err(db("revoking a token"))
    }

    // ---- state, sizes, retention ----

    pub fn server_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn()?;
        c.query_opt("SELECT value FROM server_state WHERE key = $1", &[&key])
            .map(|r| r.map(|r| r.get(0)))
            .map_err(db("reading the server's state"))
    }

    pub fn put_server_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut c = self.conn()?;
        c.execute(
            "INSERT INTO server_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = $2",
            &[&key, &value],
        )
        .map(|_| ())
        .map_err(db("saving the server's state"))
    }

    /// Rows of resources, costs, agents and batches; series and their points; the
    /// database's size.
    pub fn counts(&self) -> Result<([u64; 4], u64, u64, u64), StoreError> {
        let mut c = self.conn()?;
        let mut out = [0u64; 4];
        for (i, t) in ["resources", "costs", "agents", "batches"]
            .iter()
            .enumerate()
        {
            out[i] = c
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .map_err(db("counting rows"))?
                .get::<_, i64>(0) as u64;
        }
        let r = c
            .query_one(
                "SELECT count(*), COALESCE(sum(points), 0)::bigint, pg_database_size(current_database()) FROM series",
                &[],
            )
            .map_err(db("counting series"))?;
        Ok((
            out,
            r.get::<_, i64>(0) as u64,
            r.get::<_, i64>(1) as u64,
            r.get::<_, i64>(2) as u64,
        ))
    }

    /// Deletes costs that ended at or before `before`, resources last seen before it
    /// (with their history), series last written before it and batch ids received before
    /// it. Returns (costs, resources, series).
    pub fn retention(&self, before: i64) -> Result<(u64, u64, u64), StoreError> {
        let mut c = self.conn()?;
        let mut tx = c.transaction().map_err(db("starting retention"))?;
        let costs = tx
            .execute("DELETE FROM costs WHERE end_ns <= $1", &[&before])
            .map_err(db("deleting old cost lines"))?;
        tx.execute(
            "DELETE FROM resource_history WHERE key IN (SELECT key FROM resources WHERE last_seen < $1)",
            &[&before],
        )
        .map_err(db("deleting old resource history"))?;
        let resources = tx
            .execute("DELETE FROM resources WHERE last_seen < $1", &[&before])
            .map_err(db("deleting old resources"))?;
        let series = tx
            .execute("DELETE FROM series WHERE last_ts < $1", &[&before])
            .map_err(db("deleting old series"))?;
        tx.execute("DELETE FROM batches WHERE received_at < $1", &[&before])
            .map_err(db("forgetting old batch ids"))?;
        tx.commit().map_err(db("committing retention"))?;
        Ok((costs, resources, series))
    }
}

impl Drop for PgMeta {
    /// A connection of the `postgres` crate owns a small runtime, which must not be dropped
    /// on an async task (tokio refuses to); the store's last owner may well be one, so the
    /// pool is dropped on a thread of its own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("pg-pool-close".into())
                .spawn(move || drop(pool));
        }
    }
}

fn stored(key: String, record: Value, first: i64, last: i64) -> Result<StoredResource, StoreError> {
    let resource = serde_json::from_value(record)
        .map_err(|e| corrupt(format!("resource {key} has an unreadable record ({e})")))?;
    Ok(StoredResource {
        key,
        resource,
        first_seen: from_ns(first),
        last_seen: from_ns(last),
    })
}

/// `AND column = $n` for each filter that is set.
fn push_equal<const N: usize>(
    sql: &mut String,
    args: &mut Vec<Arg>,
    filters: [(&str, &Option<String>); N],
) {
    for (col, v) in filters {
        if let Some(v) = v {
            args.push(Box::new(v.clone()));
            *sql += &format!(" AND {col} = ${}", args.len());
        }
    }
}

/// The filters cost queries share (see [`CostQuery`]).
fn cost_filter(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
    provider: Option<&str>,
    source: Option<&str>,
    sql: &mut String,
    args: &mut Vec<Arg>,
) -> Result<(), StoreError> {
    if let Some(s) = start {
        args.push(Box::new(to_ns_saturating(s)));
        *sql += &format!(" AND start_ns >= ${}", args.len());
    }
    if let Some(e) = end {
        args.push(Box::new(to_ns_saturating(e)));
        *sql += &format!(" AND start_ns < ${}", args.len());
    }
    if let Some(p) = provider {
        args.push(Box::new(p.to_lowercase()));
        let n = args.len();
        *sql += &format!(" AND (provider = ${n} OR lower(provider_name) = ${n})");
    }
    if let Some(s) = source {
        if skymeter_model::CostSource::parse(s).is_none() {
            return Err(StoreError::BadRequest(format!(
                "unknown cost source `{s}`; use billed, estimated or rated"
            )));
        }
        args.push(Box::new(s.to_string()));
        *sql += &format!(" AND source = ${}", args.len());
    }
    Ok(())
}

/// Adds new series to the catalog and widens the extent of known ones, in one statement
/// (arrays unnested), in id order so that concurrent batches lock rows in one order.
fn upsert_series(tx: &mut Transaction<'_>, series: &[SeriesExtent<'_>]) -> Result<(), StoreError> {
    if series.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&SeriesExtent<'_>> = series.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut ids = Vec::with_capacity(sorted.len());
    let mut metrics = Vec::with_capacity(sorted.len());
    let mut units = Vec::with_capacity(sorted.len());
    let mut stats = Vec::with_capacity(sorted.len());
    let mut prom = Vec::with_capacity(sorted.len());
    let mut rkeys = Vec::with_capacity(sorted.len());
    let mut providers = Vec::with_capacity(sorted.len());
    let mut accounts = Vec::with_capacity(sorted.len());
    let mut regions = Vec::with_capacity(sorted.len());
    let mut labels = Vec::with_capacity(sorted.len());
    let mut keys = Vec::with_capacity(sorted.len());
    let mut firsts = Vec::with_capacity(sorted.len());
    let mut lasts = Vec::with_capacity(sorted.len());
    let mut counts = Vec::with_capacity(sorted.len());
    for s in sorted {
        let k = s.key;
        ids.push(s.id.clone());
        metrics.push(k.metric.clone());
        units.push(k.unit.as_str().to_string());
        stats.push(k.stat.as_str().to_string());
        prom.push(skymeter_model::prom::metric_name(&k.metric, k.unit));
        rkeys.push(k.resource.key());
        providers.push(k.resource.provider.to_string());
        accounts.push(k.resource.account.to_string());
        regions.push(k.resource.region.to_string());
        labels.push(serde_json::to_value(&k.labels).unwrap());
        keys.push(serde_json::to_value(k).unwrap());
        firsts.push(s.first);
        lasts.push(s.last);
        counts.push(s.points);
    }
    tx.execute(
        "INSERT INTO series (id, metric, unit, stat, prom_name, resource_key, provider, account, region, labels, key, first_ts, last_ts, points)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::bigint[], $13::bigint[], $14::bigint[])
         ON CONFLICT (id) DO UPDATE SET
             first_ts = LEAST(series.first_ts, excluded.first_ts),
             last_ts = GREATEST(series.last_ts, excluded.last_ts),
             points = series.points + excluded.points",
        &[
            &ids, &metrics, &units, &stats, &prom, &rkeys, &providers, &accounts, &regions,
            &labels, &keys, &firsts, &lasts, &counts,
        ],
    )
    .map(|_| ())
    .map_err(db("recording series"))
}

/// Widens the extent of series known to be in the catalog (no key written: the rows stay
/// where they are, and with no indexed column changed PostgreSQL updates them in place).
fn widen_extents(tx: &mut Transaction<'_>, extents: &[SeriesExtent<'_>]) -> Result<(), StoreError> {
    if extents.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&SeriesExtent<'_>> = extents.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = sorted.iter().map(|e| e.id.as_str()).collect();
    let firsts: Vec<i64> = sorted.iter().map(|e| e.first).collect();
    let lasts: Vec<i64> = sorted.iter().map(|e| e.last).collect();
    let counts: Vec<i64> = sorted.iter().map(|e| e.points).collect();
    tx.execute(
        "UPDATE series SET first_ts = LEAST(series.first_ts, e.f), last_ts = GREATEST(series.last_ts, e.l),
                           points = series.points + e.n
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS e(id, f, l, n)
         WHERE series.id = e.id",
        &[&ids, &firsts, &lasts, &counts],
    )
    .map(|_| ())
    .map_err(db("widening series extents"))
}

/// Writes extents gathered since the last batch, in a transaction of their own.
pub fn flush_extents(meta: &PgMeta, extents: &[SeriesExtent<'_>]) -> Result<(), StoreError> {
    let mut c = meta.conn()?;
    let mut tx = c.transaction().map_err(db("starting a transaction"))?;
    widen_extents(&mut tx, extents)?;
    tx.commit().map_err(db("committing series extents"))
}

/// Upserts by key as the embedded store does: the first observation inserts; a newer one
/// (observed_at ≥ last_seen) replaces the record, moves last_seen and records what
/// changed; an older one only moves first_seen back. The row is locked (`FOR UPDATE`) so
/// two servers storing the same resource at once apply their observations one after the
/// other.
fn upsert_resource(tx: &mut Transaction<'_>, r: &Resource) -> Result<(), StoreError> {
    let key = r.reference().key();
    let at = to_ns_saturating(r.observed_at);
    let record = serde_json::to_value(r).unwrap();
    let tags = serde_json::to_value(&r.tags).unwrap();
    let inserted = tx
        .execute(
            "INSERT INTO resources (key, provider, account, region, rid, kind, name, tags, first_seen, last_seen, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) ON CONFLICT (key) DO NOTHING",
            &[
                &key,
                &r.provider.to_string(),
                &r.account.to_string(),
                &r.region.to_string(),
                &r.id.to_string(),
                &r.kind,
                &r.name,
                &tags,
                &at,
                &record,
            ],
        )
        .map_err(db("storing a resource"))?;
    if inserted == 1 {
        return Ok(());
    }
    let old = tx
        .query_one(
            "SELECT record, first_seen, last_seen FROM resources WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .map_err(db("reading a resource to update"))?;
    let (first, last): (i64, i64) = (old.get(1), old.get(2));
    if at >= last {
        let old: Option<Resource> = serde_json::from_value(old.get(0)).ok();
        let changes = old.map(|o| diff(&o, r)).unwrap_or_default();
        if !changes.is_empty() {
            tx.execute(
                "INSERT INTO resource_history (key, at, changes) VALUES ($1, $2, $3)",
                &[&key, &at, &serde_json::to_value(&changes).unwrap()],
            )
            .map_err(db("recording a resource change"))?;
        }
        tx.execute(
            "UPDATE resources SET kind = $2, name = $3, tags = $4, first_seen = $5, last_seen = $6, record = $7 WHERE key = $1",
            &[&key, &r.kind, &r.name, &tags, &first.min(at), &at, &record],
        )
        .map_err(db("updating a resource"))?;
    } else if at < first {
        tx.execute(
            "UPDATE resources SET first_seen = $2 WHERE key = $1",
            &[&key, &at],
        )
        .map_err(db("updating a resource"))?;
    }
    Ok(())
}

/// Stores a batch's cost lines by key, with the embedded store's rule: a stored line is
/// replaced unless it came from a batch collected later; within a batch the last line of a
/// key wins.
fn upsert_costs(tx: &mut Transaction<'_>, b: &Batch) -> Result<(), StoreError> {
    let collected_at = to_ns_saturating(b.collected_at);
    let st = tx
        .prepare(
            "INSERT INTO costs (provider, provider_name, service, account, region, resource, sku, category, source,
                                currency, start_ns, end_ns, billed, effective, price_date, collected_at, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (source, provider_name, account, region, service, resource, sku, category, start_ns, end_ns, currency)
             DO UPDATE SET
                 provider = excluded.provider, billed = excluded.billed, effective = excluded.effective,
                 price_date = excluded.price_date, collected_at = excluded.collected_at, record = excluded.record
             WHERE excluded.collected_at >= costs.collected_at",
        )
        .map_err(db("preparing the cost line insert"))?;
    let mut repeated: HashMap<String, usize> = HashMap::new();
    for c in &b.costs {
        let category = serde_json::to_value(c.charge_category).unwrap();
        let category = category.as_str().unwrap_or_default().to_string();
        let source = c.x_source.as_str();
        let account = c.sub_account_id.as_deref().unwrap_or_default();
        let region = c.region_id.as_deref().unwrap_or_default();
        let resource = c.resource_id.as_deref().unwrap_or_default();
        let sku = c.sku_id.as_deref().unwrap_or_default();
        let start = to_ns_saturating(c.charge_period_start);
        let end = to_ns_saturating(c.charge_period_end);
        tx.execute(
            &st,
            &[
                &skymeter_model::provider::slug(&c.provider_name),
                &c.provider_name,
                &c.service_name,
                &account,
                &region,
                &resource,
                &sku,
                &category,
                &source,
                &c.billing_currency,
                &start,
                &end,
                &c.billed_cost,
                &c.effective_cost,
                &c.x_price_date,
                &collected_at,
                &serde_json::to_value(c).unwrap(),
            ],
        )
        .map_err(db("storing a cost line"))?;
        let key = format!(
            "{source}\u{1f}{}\u{1f}{account}\u{1f}{region}\u{1f}{}\u{1f}{resource}\u{1f}{sku}\u{1f}{category}\u{1f}{start}\u{1f}{end}\u{1f}{}",
            c.provider_name, c.service_name, c.billing_currency
        );
        *repeated.entry(key).or_default() += 1;
    }
    let repeated: usize = repeated.values().map(|n| n - 1).sum();
    if repeated > 0 {
        tracing::warn!(
            batch_id = %b.batch_id, agent_id = %b.agent_id, task = %b.task, lines = repeated,
            "cost lines in one batch repeat the key of an earlier line of the same batch and replaced it; give such lines a SkuId or ResourceId of their own"
        );
    }
    Ok(())
}

/// Groups a batch's points by series: each series' key, time extent and point count.
/// Points are grouped by a 64-bit hash of their identity and the key is built once per
/// series (a batch is thousands of points of few series); a hash collision is told apart by
/// comparing the keys.
pub fn series_extents(b: &Batch) -> Vec<(SeriesKey, i64, i64, i64)> {
    let hasher = crate::embedded::series::KeyHasher::default();
    let mut by_hash: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut out: Vec<(SeriesKey, i64, i64, i64)> = Vec::new();
    for p in &b.points {
        let ts = to_ns_saturating(p.ts);
        let slots = by_hash.entry(hasher.hash_point(p)).or_default();
        let found = slots.iter().copied().find(|&i| {
            let k = &out[i].0;
            k.metric == p.metric.as_str()
                && k.unit == p.unit
                && k.stat == p.stat
                && k.resource == *p.resource
                && k.labels == *p.labels
        });
        match found {
            Some(i) => {
                let e = &mut out[i];
                e.1 = e.1.min(ts);
                e.2 = e.2.max(ts);
                e.3 += 1;
            }
            None => {
                slots.push(out.len());
                out.push((crate::embedded::series::key_of(p), ts, ts, 1));
            }
        }
    }
    out
}

/// A series' id in the catalog.
pub fn series_id(key: &SeriesKey) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(key).expect("series keys serialize");
    let digest = Sha256::digest(&json);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}
