//! `file`: appends batches to a local file, as JSON lines (every record) or CSV (points, and
//! FOCUS cost lines to a second file), with size-based rotation.
//!
//! Writes go through a buffer and reach the OS at the end of every batch; `flush` (at
//! shutdown) also fsyncs. File I/O runs on tokio's blocking pool so a slow disk never stalls
//! the runtime.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, ChargeCategory, Cost, Labels, Point, RecordRef};
use skymeter_plugin_api::config::ByteSize;
use skymeter_plugin_api::{
    async_trait, BuildContext, ConfigError, ErrorKind, PluginDescription, PluginError, PluginKind,
    Publisher, PublisherFactory, RawConfig,
};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `file` settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to; its directory is created when missing. snap's file
    /// publisher calls it `file`, which is accepted too (not both).
    #[serde(alias = "file")]
    pub path: PathBuf,
    /// `json_lines` (every record, one per line) or `csv` (one row per point).
    #[serde(default)]
    pub format: FileFormat,
    /// With `format = "csv"`: where cost lines go, as CSV with FOCUS column names. Without
    /// it, CSV output has no costs.
    pub costs_path: Option<PathBuf>,
    /// Rotate a file before it would grow past this size: `"100MB"`, `"1GiB"`, or bytes.
    /// No rotation when absent.
    pub max_size: Option<ByteSize>,
    /// Rotated files kept (`path.1` newest … `path.N` oldest); the oldest is deleted.
    #[serde(default = "five")]
    pub max_files: u32,
}

fn five() -> u32 {
    5
}

/// The file format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    JsonLines,
    Csv,
}

pub fn factory() -> PublisherFactory {
    PublisherFactory {
        description: PluginDescription {
            name: "file",
            kind: PluginKind::Publisher,
            summary: "appends batches to a file as JSON lines or CSV, with size-based rotation",
            config_schema: PluginDescription::schema_of::<FileConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Publisher>, ConfigError> {
    let cfg: FileConfig = raw.decode()?;
    if cfg.path.as_os_str().is_empty() {
        return Err(raw.error("path", "`path` is empty: give the file to write to"));
    }
    if cfg.max_size == Some(ByteSize(0)) {
        return Err(raw.error(
            "max_size",
            "must be more than 0; leave it out for no rotation",
        ));
    }
    if let Some(costs) = &cfg.costs_path {
        if cfg.format != FileFormat::Csv {
            return Err(raw.error(
                "costs_path",
                "`costs_path` is for format = \"csv\"; json_lines writes costs into `path`",
            ));
        }
        if costs == &cfg.path {
            return Err(raw.error("costs_path", "must differ from `path`"));
        }
    }
    let max_size = cfg.max_size.map(|s| s.0);
    let csv_header = |cols: &[&str]| {
        let mut lines = Lines::default();
        lines.csv_row(cols.iter().copied());
        lines.buf
    };
    let main = Rotating::new(
        cfg.path,
        (cfg.format == FileFormat::Csv).then(|| csv_header(&POINT_COLUMNS)),
        max_size,
        cfg.max_files,
    );
    let costs = cfg
        .costs_path
        .map(|p| Rotating::new(p, Some(csv_header(&COST_COLUMNS)), max_size, cfg.max_files));
    Ok(Box::new(FilePublisher {
        format: cfg.format,
        files: Arc::new(Mutex::new(Files { main, costs })),
    }))
}

/// The CSV columns of a point row.
pub const POINT_COLUMNS: [&str; 11] = [
    "ts",
    "provider",
    "account",
    "region",
    "resource_id",
    "metric",
    "stat",
    "unit",
    "value",
    "period_s",
    "labels",
];

/// The CSV columns of a cost row: the FOCUS 1.2 names of the record format's `Cost`.
pub const COST_COLUMNS: [&str; 21] = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ProviderName",
    "ServiceName",
    "ServiceCategory",
    "SubAccountId",
    "RegionId",
    "ResourceId",
    "ResourceType",
    "SkuId",
    "PricingQuantity",
    "PricingUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "Tags",
    "x_source",
];

/// The publisher.
pub struct FilePublisher {
    format: FileFormat,
    /// Shared with the blocking task that does the I/O; only one runs at a time.
    files: Arc<Mutex<Files>>,
}

struct Files {
    main: Rotating,
    costs: Option<Rotating>,
}

/// Encoded records, one after the other, with the end offset of each.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Lines {
    fn push_json(&mut self, record: &RecordRef<'_>) {
        // Serializing the record types into memory cannot fail (all map keys are strings).
        serde_json::to_writer(&mut self.buf, record).expect("records serialize");
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
    }

    fn csv_row<'a>(&mut self, fields: impl IntoIterator<Item = &'a str>) {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(&mut self.buf);
        // Writing to memory cannot fail.
        w.write_record(fields).expect("csv into memory");
        w.flush().expect("csv into memory");
        drop(w);
        self.ends.push(self.buf.len());
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.buf[s..e])
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `k=v;k=v`, with `\`, `;` and `=` inside names and values escaped by a backslash.
pub fn csv_labels(labels: &Labels) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(';', "\\;")
            .replace('=', "\\=")
    };
    labels
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join(";")
}

fn point_row(lines: &mut Lines, p: &Point) {
    let fields = [
        time(p.ts),
        p.resource.provider.to_string(),
        p.resource.account.to_string(),
        p.resource.region.to_string(),
        p.resource.id.to_string(),
        p.metric.to_string(),
        p.stat.to_string(),
        p.unit.to_string(),
        p.value.to_string(),
        p.period_s.to_string(),
        csv_labels(&p.labels),
    ];
    lines.csv_row(fields.iter().map(String::as_str));
}

fn cost_row(lines: &mut Lines, c: &Cost) {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let category = match c.charge_category {
        ChargeCategory::Usage => "Usage",
        ChargeCategory::Purchase => "Purchase",
        ChargeCategory::Tax => "Tax",
        ChargeCategory::Credit => "Credit",
        ChargeCategory::Adjustment => "Adjustment",
    };
    let source = c.x_source.as_str();
    let tags = if c.tags.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&c.tags).expect("string map serializes")
    };
    let fields = [
        c.billed_cost.to_string(),
        c.effective_cost.to_string(),
        num(c.list_cost),
        c.billing_currency.clone(),
        time(c.charge_period_start),
        time(c.charge_period_end),
        category.to_string(),
        c.provider_name.clone(),
        c.service_name.clone(),
        text(&c.service_category),
        text(&c.sub_account_id),
        text(&c.region_id),
        text(&c.resource_id),
        text(&c.resource_type),
        text(&c.sku_id),
        num(c.pricing_quantity),
        text(&c.pricing_unit),
        num(c.consumed_quantity),
        text(&c.consumed_unit),
        tags,
        source.to_string(),
    ];
    lines.csv_row(fields.iter().map(String::as_str));
}

#[async_trait]
impl Publisher for FilePublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let mut main = Lines::default();
        let mut costs = Lines::default();
        match self.format {
            FileFormat::JsonLines => batch.records().for_each(|r| main.push_json(&r)),
            FileFormat::Csv => {
                batch.points.iter().for_each(|p| point_row(&mut main, p));
                batch.costs.iter().for_each(|c| cost_row(&mut costs, c));
                // CSV has no place for them; keep them visible in the agent's log.
                for e in &batch.errors {
                    tracing::warn!(target: "skymeter::file", plugin = %e.plugin, "collection error: {}", e.message);
                }
            }
        }
        self.with_files(move |f| {
            f.main.write_all(&main)?;
            if let Some(c) = &mut f.costs {
                c.write_all(&costs)?;
            }
            f.main.flush(false)?;
            if let Some(c) = &mut f.costs {
                c.flush(false)?;
            }
            Ok(())
        })
        .await
    }

    async fn flush(&mut self) -> Result<(), PluginError> {
        self.with_files(|f| {
            f.main.flush(true)?;
            if let Some(c) = &mut f.costs {
                c.flush(true)?;
            }
            Ok(())
        })
        .await
    }
}

impl FilePublisher {
    /// Runs blocking file I/O on tokio's blocking pool.
    async fn with_files(
        &self,
        op: impl FnOnce(&mut Files) -> Result<(), PluginError> + Send + 'static,
    ) -> Result<(), PluginError> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = files
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            op(&mut f)
        })
        .await
        .map_err(|e| PluginError::new(ErrorKind::Other, format!("file writer stopped: {e}")))?
    }
}

/// One output file with size-based rotation.
struct Rotating {
    path: PathBuf,
    /// Written at the start of every new file (the CSV header row).
    header: Option<Vec<u8>>,
    max_size: Option<u64>,
    max_files: u32,
    file: Option<BufWriter<File>>,
    /// Bytes in the current file, buffered ones included.
    size: u64,
    /// Whether the current file holds more than its header.
    has_records: bool,
}

impl Rotating {
    fn new(path: PathBuf, header: Option<Vec<u8>>, max_size: Option<u64>, max_files: u32) -> Self {
        Rotating {
            path,
            header,
            max_size,
            max_files,
            file: None,
            size: 0,
            has_records: false,
        }
    }

    fn error(&self, what: &str, e: &io::Error) -> PluginError {
        let kind = match e.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::Permission,
            _ => ErrorKind::Other,
        };
        PluginError::new(
            kind,
            format!(
                "cannot {what} {}: {e}; check the path, its permissions and free space",
                self.path.display()
            ),
        )
        .with("path", self.path.display().to_string())
    }

    fn open(&mut self) -> Result<(), PluginError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                PluginError::new(
                    if e.kind() == io::ErrorKind::PermissionDenied {
                        ErrorKind::Permission
                    } else {
                        ErrorKind::Config
                    },
                    format!(
                        "cannot create directory {} for {}: {e}; create it, or set `path` to a writable place",
                        dir.display(),
                        self.path.display()
                    ),
                )
                .with("path", self.path.display().to_string())
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error("open", &e))?;
        self.size = file.metadata().map_err(|e| self.error("open", &e))?.len();
        // An existing file is taken to have its header already.
        self.has_records = self.size > 0;
        let mut w = BufWriter::new(file);
        if self.size == 0 {
            if let Some(h) = &self.header {
                w.write_all(h).map_err(|e| self.error("write to", &e))?;
                self.size = h.len() as u64;
            }
        }
        self.file = Some(w);
        Ok(())
    }

    /// `path` with `.n` appended: `out.jsonl.1`.
    fn numbered(&self, n: u32) -> PathBuf {
        let mut s: OsString = self.path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// `path` → `path.1` → … → `path.{max_files}`, deleting the oldest.
    fn rotate(&mut self) -> Result<(), PluginError> {
        if let Some(mut w) = self.file.take() {
            w.flush().map_err(|e| self.error("write to", &e))?;
        }
        let rename = |from: &Path, to: &Path| match fs::rename(from, to) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        let result = if self.max_files == 0 {
            fs::remove_file(&self.path)
        } else {
            match fs::remove_file(self.numbered(self.max_files)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
            .and_then(|()| {
                for n in (1..self.max_files).rev() {
                    rename(&self.numbered(n), &self.numbered(n + 1))?;
                }
                rename(&self.path, &self.numbered(1))
            })
        };
        result.map_err(|e| self.error("rotate", &e))?;
        self.open()
    }

    fn write_all(&mut self, lines: &Lines) -> Result<(), PluginError> {
        let res = lines.records().try_for_each(|r| self.write_record(r));
        if res.is_err() {
            // Reopen on the next write: the file may have gone or the disk filled up.
            self.file = None;
        }
        res
    }

    fn write_record(&mut self, record: &[u8]) -> Result<(), PluginError> {
        if self.file.is_none() {
            self.open()?;
        }
        let len = record.len() as u64;
        if self
            .max_size
            .is_some_and(|max| self.has_records && self.size + len > max)
        {
            self.rotate()?;
        }
        let Some(w) = self.file.as_mut() else {
            return Err(PluginError::new(
                ErrorKind::Other,
                "file writer lost its file",
            ));
        };
        match w.write_all(record) {
            Ok(()) => {
                self.size += len;
                self.has_records = true;
                Ok(())
            }
            Err(e) => Err(self.error("write to", &e)),
        }
    }

    /// Pushes buffered bytes to the OS; with `sync`, to the disk.
    fn flush(&mut self, sync: bool) -> Result<(), PluginError> {
        let Some(w) = self.file.as_mut() else {
            return Ok(());
        };
        let res = w
            .flush()
            .and_then(|()| if sync { w.get_ref().sync_all() } else { Ok(()) });
        res.map_err(|e| self.error("write to", &e))
    }
}

#[cfg(test)]
mod tests;
