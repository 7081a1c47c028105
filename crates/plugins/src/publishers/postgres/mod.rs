//! `postgres`: the inventory and the FOCUS cost lines of each batch into PostgreSQL tables,
//! for the people who answer questions in SQL.
//!
//! Tables (created when missing, in `schema`):
//! - `skymeter_resources`: one row per resource (key provider, account, region, id), its
//!   latest record: a batch's resource replaces the row when it was observed at the same
//!   time or later;
//! - `skymeter_cost_lines`: one row per cost line, keyed by (batch id, line number in the
//!   batch), the main FOCUS columns typed and the whole line as `record jsonb`.
//!
//! Delivery goes through the publishers' shared on-disk buffer ([`crate::common::delivery`]):
//! each batch is written in one transaction, so it is in the tables whole or not at all; a
//! database that is down keeps it on disk until it is back; a batch sent twice (its commit
//! acknowledgement lost) changes nothing (the cost lines' key, the resources' upsert).
//! Points are not written: they belong in a time-series store.

use crate::common::delivery::{
    read_batch, BufferConfig, BufferedPublisher, Deliver, Failure, Outcome, Terms,
};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::Batch;
use skymeter_plugin_api::config::DurationStr;
use skymeter_plugin_api::retry::RetryPolicy;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ExposeSecret, PluginDescription, PluginKind, Publisher,
    PublisherFactory, RawConfig, SecretString,
};
use std::sync::Arc;
use std::time::Duration;

/// `postgres` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or key=value form). A secret when
    /// it carries a password: write `"${SKYMETER_PG_URL}"`. TLS as libpq's `sslmode`
    /// (`disable`, `prefer` by default, `require`, `verify-ca`, `verify-full`), `sslrootcert`
    /// (a PEM file or `system`), `sslcert` + `sslkey` for a client certificate.
    #[schemars(with = "String")]
    pub url: SecretString,
    /// The schema the tables live in (created when missing).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Time allowed for one delivery: connecting and writing one batch.
    #[serde(default = "thirty_seconds")]
    pub timeout: DurationStr,
    /// The waits between tries (`attempts` does not apply: a batch is never given up on).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The on-disk buffer (always on); default directory `<data_dir>/buffer/<task>/postgres`.
    #[serde(default)]
    pub buffer: BufferConfig,
}

fn default_schema() -> String {
    "public".into()
}

fn thirty_seconds() -> DurationStr {
    DurationStr(Duration::from_secs(30))
}

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "postgres",
            kind: PluginKind::Publisher,
            summary: "Writes each batch's resources and FOCUS cost lines into PostgreSQL tables, a transaction per batch, through a durable on-disk buffer",
            config_schema: PluginDescription::schema_of::<PostgresConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: PostgresConfig = raw.decode()?;
    let target = skymeter_pgconn::PgTarget::parse(cfg.url.expose_secret())
        .map_err(|e| raw.error("url", e.to_string()))?;
    let ident_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !ident_ok(&cfg.schema) {
        return Err(raw.error(
            "schema",
            "must be a plain lower-case identifier (letters, digits, `_`), e.g. \"finops\"",
        ));
    }
    if cfg.timeout.0.is_zero() {
        return Err(raw.error("timeout", "must be more than 0"));
    }
    let db = Arc::new(Database {
        config: target.config,
        tls: target.tls,
        shown: target.shown,
        schema: cfg.schema.clone(),
        timeout: cfg.timeout.0,
    });
    let publisher = BufferedPublisher::configured(
        raw,
        ctx,
        Terms::of_buffer_table("postgres", "the database"),
        cfg.buffer,
        cfg.retry,
        cfg.timeout.0,
        db,
    )?;
    // A batch with neither resources nor cost lines has nothing for these tables.
    Ok(Box::new(publisher.skipping(|b| {
        b.resources.is_empty() && b.costs.is_empty()
    })))
}

struct Database {
    config: tokio_postgres::Config,
    /// TLS as the URL's `sslmode`/`sslrootcert`/`sslcert`/`sslkey` ask (skymeter-pgconn).
    tls: skymeter_pgconn::MakeRustlsConnect,
    shown: String,
    schema: String,
    timeout: Duration,
}

/// The tables, created when missing (idempotent).
fn ddl(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.skymeter_resources (
    provider text NOT NULL, account text NOT NULL, region text NOT NULL, id text NOT NULL,
    kind text NOT NULL, native_type text NOT NULL, name text NOT NULL,
    tags jsonb NOT NULL, attributes jsonb NOT NULL, observed_at timestamptz NOT NULL,
    agent_id text NOT NULL, batch_id text NOT NULL,
    PRIMARY KEY (provider, account, region, id));
CREATE TABLE IF NOT EXISTS {schema}.skymeter_cost_lines (
    batch_id text NOT NULL, line integer NOT NULL,
    billed_cost double precision NOT NULL, effective_cost double precision NOT NULL,
    list_cost double precision, billing_currency text NOT NULL,
    charge_period_start timestamptz NOT NULL, charge_period_end timestamptz NOT NULL,
    charge_category text NOT NULL, provider_name text NOT NULL, service_name text NOT NULL,
    sub_account_id text, region_id text, resource_id text, sku_id text,
    pricing_quantity double precision, pricing_unit text, x_source text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (batch_id, line));"
    )
}

/// What went wrong, as PostgreSQL said it (message and detail), else the client's words.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut text = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                text = format!("{text}: {s}");
                src = s.source();
            }
            text
        }
    }
}

/// A string of a serde enum (`ChargeCategory`, `CostSource`) as it goes on the wire.
fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl Database {
    async fn write(&self, batch: &Batch) -> Result<(), Failure> {
        let fail = |message: String, needs_action: bool| Failure {
            message,
            retry_after: None,
            needs_action,
        };
        let (mut client, connection) =
            self.config.connect(self.tls.clone()).await.map_err(|e| {
                let auth = e.code().is_some_and(|c| {
                    *c == tokio_postgres::error::SqlState::INVALID_PASSWORD
                        || *c
                            == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                });
                fail(
                    format!(
                        "cannot connect to {}: {}{}",
                        self.shown,
                        pg_error(&e),
                        if auth {
                            "; check the user and password in `url`"
                        } else {
                            ""
                        }
                    ),
                    auth,
                )
            })?;
        let conn = tokio::spawn(async move {
            let _ = connection.await;
        });
        let sql_failure = |e: tokio_postgres::Error| {
            // Permissions and missing objects need a person; anything else may pass later.
            let needs_action = e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE
                    || *c == tokio_postgres::error::SqlState::UNDEFINED_TABLE
            });
            fail(
                format!(
                    "writing batch {} to {}: {}",
                    batch.batch_id,
                    self.shown,
                    pg_error(&e)
                ),
                needs_action,
            )
        };
        let result = async {
            client
                .batch_execute(&ddl(&self.schema))
                .await
                .map_err(sql_failure)?;
            let tx = client.transaction().await.map_err(sql_failure)?;
            let s = &self.schema;
            let upsert = tx
                .prepare(&format!(
                    "INSERT INTO {s}.skymeter_resources AS r VALUES ($1,$2,$3,$4,$5,$6,$7,$8::text::jsonb,$9::text::jsonb,$10,$11,$12)
                     ON CONFLICT (provider, account, region, id) DO UPDATE SET
                       kind = EXCLUDED.kind, native_type = EXCLUDED.native_type, name = EXCLUDED.name,
                       tags = EXCLUDED.tags, attributes = EXCLUDED.attributes,
                       observed_at = EXCLUDED.observed_at, agent_id = EXCLUDED.agent_id,
                       batch_id = EXCLUDED.batch_id
                     WHERE EXCLUDED.observed_at >= r.observed_at"
                ))
                .await
                .map_err(sql_failure)?;
            let batch_id = batch.batch_id.to_string();
            let agent_id = batch.agent_id.to_string();
            for r in &batch.resources {
                let tags = serde_json::to_string(&r.tags).unwrap_or_else(|_| "{}".into());
                let attrs = serde_json::to_string(&r.attributes).unwrap_or_else(|_| "{}".into());
                tx.execute(
                    &upsert,
                    &[
                        &r.provider,
                        &r.account,
                        &r.region,
                        &r.id,
                        &r.kind,
                        &r.native_type,
                        &r.name,
                        &tags,
                        &attrs,
                        &r.observed_at,
                        &agent_id,
                        &batch_id,
                    ],
                )
                .await
                .map_err(sql_failure)?;
            }
            let insert = tx
                .prepare(&format!(
                    "INSERT INTO {s}.skymeter_cost_lines VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19::text::jsonb)
                     ON CONFLICT (batch_id, line) DO NOTHING"
                ))
                .await
                .map_err(sql_failure)?;
            for (i, c) in batch.costs.iter().enumerate() {
                let line = i as i32;
                let record = serde_json::to_string(c).unwrap_or_else(|_| "{}".into());
                tx.execute(
                    &insert,
                    &[
                        &batch_id,
                        &line,
                        &c.billed_cost,
                        &c.effective_cost,
                        &c.list_cost,
                        &c.billing_currency,
                        &c.charge_period_start,
                        &c.charge_period_end,
                        &wire(&c.charge_category),
                        &c.provider_name,
                        &c.service_name,
                        &c.sub_account_id,
                        &c.region_id,
                        &c.resource_id,
                        &c.sku_id,
                        &c.pricing_quantity,
                        &c.pricing_unit,
                        &wire(&c.x_source),
                        &record,
                    ],
                )
                .await
                .map_err(sql_failure)?;
            }
            tx.commit().await.map_err(sql_failure)
        };
        let result = match tokio::time::timeout(self.timeout, result).await {
            Ok(r) => r,
            Err(_) => Err(fail(
                format!(
                    "writing batch {} to {} took longer than {}; raise `timeout` or check the database",
                    batch.batch_id,
                    self.shown,
                    humantime::format_duration(self.timeout)
                ),
                false,
            )),
        };
        drop(client);
        conn.abort();
        result
    }
}

#[async_trait]
impl Deliver for Database {
    fn destination(&self) -> &str {
        &self.shown
    }

    async fn deliver(&self, body: Vec<u8>, batch_id: &str) -> Outcome {
        let batch = match read_batch(&body, batch_id) {
            Ok(b) => b,
            Err(outcome) => return outcome,
        };
        match self.write(&batch).await {
            Ok(()) => Outcome::Delivered,
            Err(f) => Outcome::Failed(f),
        }
    }
}

#[cfg(test)]
mod tests;
