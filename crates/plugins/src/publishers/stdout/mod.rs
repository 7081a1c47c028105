//! `stdout`: prints batches, as tables for people or as JSON lines for programs. The same
//! rendering serves `skymeter collect --format json|table` through [`render`] and
//! [`write_batch`].
//!
//! A closed stdout (`skymeter collect | head`) is the reader saying it has seen enough:
//! the publisher stops writing and reports success instead of failing or panicking.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{CellAlignment, Table};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, Labels, RecordRef};
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ErrorKind, PluginDescription, PluginError, PluginKind,
    Publisher, PublisherFactory, RawConfig,
};
use std::io::{self, Write};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `stdout` settings.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `table` for people, `json` for one JSON record per line.
    #[serde(default)]
    pub format: Format,
}

/// How a batch is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Tables of points, resources, costs and errors.
    #[default]
    Table,
    /// One record per line: `{"type":"point",...}`, the `skymeter_model::Record` shape.
    Json,
}

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "stdout",
            kind: PluginKind::Publisher,
            summary: "prints batches to standard output as tables or JSON lines",
            config_schema: PluginDescription::schema_of::<StdoutConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: StdoutConfig = raw.decode()?;
    Ok(Box::new(Stdout::new(cfg.format, tokio::io::stdout())))
}

/// The publisher, over any writer (standard output outside tests).
pub struct Stdout<W> {
    format: Format,
    out: W,
    /// The reader went away; nothing more is written.
    closed: bool,
}

impl<W: AsyncWrite + Unpin + Send> Stdout<W> {
    pub fn new(format: Format, out: W) -> Self {
        Stdout {
            format,
            out,
            closed: false,
        }
    }

    /// Writes `bytes`; once the reader has gone, writes nothing and succeeds.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), PluginError> {
        if self.closed {
            return Ok(());
        }
        let res = async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        }
        .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(PluginError::new(
                ErrorKind::Other,
                format!("cannot write to standard output: {e}"),
            )),
        }
    }
}

#[async_trait]
impl<W: AsyncWrite + Unpin + Send> Publisher for Stdout<W> {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let text = render(batch, self.format);
        self.write(text.as_bytes()).await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.write(b"").await
    }
}

/// The text `stdout` prints for `batch`.
pub fn render(batch: &Batch, format: Format) -> String {
    let mut buf = Vec::new();
    // Writing to memory cannot fail, and the records serialize infallibly (string keys only).
    write_batch(&mut buf, batch, format).expect("rendering into memory");
    String::from_utf8(buf).expect("JSON and tables are UTF-8")
}

/// Writes `batch` in `format` to `w`: what [`render`] returns, without building a string
/// (for `skymeter collect`, which writes to a locked stdout; treat `BrokenPipe` as done).
pub fn write_batch(w: &mut dyn Write, batch: &Batch, format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            for record in batch.records() {
                write_json_line(w, &record)?;
            }
            Ok(())
        }
        Format::Table => write_tables(w, batch),
    }
}

/// One record as one line: exactly `serde_json::to_string(&record)` and `\n`.
pub fn write_json_line(w: &mut dyn Write, record: &RecordRef<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *w, record)?;
    w.write_all(b"\n")
}

/// Borderless, a dashed line under the header, two spaces between columns: readable in a
/// terminal, a log file or an email alike.
const STYLE: &str = "     -             ";

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(STYLE)
        .force_no_tty()
        .set_header(header.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// A table's lines without the padding that trails the last column.
fn write_table(w: &mut dyn Write, title: &str, t: &Table) -> io::Result<()> {
    writeln!(w, "\n{title}")?;
    for line in t.lines() {
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_tables(w: &mut dyn Write, batch: &Batch) -> io::Result<()> {
    writeln!(
        w,
        "task {} at {}: {} resources, {} points, {} costs, {} errors",
        batch.task,
        batch
            .collected_at
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        batch.resources.len(),
        batch.points.len(),
        batch.costs.len(),
        batch.errors.len(),
    )?;
    if !batch.points.is_empty() {
        let mut t = new_table(&[
            "provider", "account", "region", "resource", "metric", "labels", "stat", "value",
            "unit", "ts",
        ]);
        for p in &batch.points {
            t.add_row(vec![
                p.resource.provider.clone(),
                p.resource.account.clone(),
                p.resource.region.clone(),
                p.resource.id.clone(),
                p.metric.clone(),
                pairs(&p.labels).into(),
                p.stat.to_string().into(),
                number(p.value).into(),
                p.unit.to_string().into(),
                time(p.ts).into(),
            ]);
        }
        align_right(&mut t, &[7]);
        write_table(w, "points", &t)?;
    }
    if !batch.resources.is_empty() {
        let mut t = new_table(&["provider", "account", "region", "kind", "id", "name"]);
        for r in &batch.resources {
            t.add_row(vec![
                &r.provider,
                &r.account,
                &r.region,
                &r.kind,
                &r.id,
                &r.name,
            ]);
        }
        write_table(w, "resources", &t)?;
    }
    if !batch.costs.is_empty() {
        let mut t = new_table(&[
            "ProviderName",
            "ServiceName",
            "SubAccountId",
            "ResourceId",
            "BilledCost",
            "EffectiveCost",
            "BillingCurrency",
            "ChargePeriodStart",
        ]);
        for c in &batch.costs {
            t.add_row(vec![
                c.provider_name.clone(),
                c.service_name.clone(),
                c.sub_account_id.clone().unwrap_or_default(),
                c.resource_id.clone().unwrap_or_default(),
                number(c.billed_cost),
                number(c.effective_cost),
                c.billing_currency.clone(),
                time(c.charge_period_start),
            ]);
        }
        align_right(&mut t, &[4, 5]);
        write_table(w, "costs", &t)?;
    }
    if !batch.errors.is_empty() {
        let mut t = new_table(&["plugin", "message", "context"]);
        for e in &batch.errors {
            t.add_row(vec![e.plugin.clone(), e.message.clone(), pairs(&e.context)]);
        }
        let title = format!(
            "!! ERRORS: {} collection problem(s), the data above may be incomplete",
            batch.errors.len()
        );
        write_table(w, &title, &t)?;
    }
    if batch.is_empty() {
        writeln!(w, "(no records)")?;
    }
    Ok(())
}

fn align_right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// `k=v,k=v`.
fn pairs(labels: &Labels) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Numbers for people: integers as integers, three decimals from 1 up, six significant
/// decimals below 1, scientific notation for the very small and very large; trailing zeros
/// trimmed.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-6..1e15).contains(&a) {
        return format!("{v:.3e}");
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let s = if a >= 1.0 {
        format!("{v:.3}")
    } else {
        // Six significant digits: 0.0123456 → 0.0123456, 0.5 → 0.5.
        let decimals = 6 - (a.log10().floor() as i32) - 1;
        format!("{v:.*}", decimals.max(0) as usize)
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests;
