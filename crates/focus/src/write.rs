//! Writers of FOCUS rows: CSV (RFC 4180, a header line) and Parquet (row groups of
//! [`PARQUET_ROW_GROUP`] rows, snappy). Both write through to any `io::Write` as they go and
//! hold at most one row group: an export of any size runs in flat memory when the sink
//! forwards what it is given (the server's sends each flushed chunk to the HTTP body).

use crate::columns::{datetime_text, decimal_text, Cell, Kind, COLUMNS};
use crate::map::Row;
use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::{self, Write};
use std::sync::Arc;

/// Rows per Parquet row group (and per record batch handed to the Parquet writer).
pub const PARQUET_ROW_GROUP: usize = 64 * 1024;

/// The formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// `csv` or `parquet`.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// A writer of this format over `out`.
    pub fn writer<W: Write + Send + 'static>(self, out: W) -> io::Result<Box<dyn RowWriter>> {
        Ok(match self {
            Format::Csv => Box::new(CsvWriter::new(out)?),
            Format::Parquet => Box::new(ParquetWriter::new(out)?),
        })
    }
}

/// Writes rows, then `finish` completes the file (a Parquet footer) and flushes.
pub trait RowWriter: Send {
    fn write_row(&mut self, row: &Row) -> io::Result<()>;
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// CSV: a header line, then one line per row; null is an empty field, Decimal columns use
/// [`decimal_text`], Date/Time columns [`datetime_text`], Tags its JSON object.
pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
    num: String,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> io::Result<CsvWriter<W>> {
        let mut out = csv::WriterBuilder::new()
            .buffer_capacity(64 * 1024)
            .from_writer(out);
        out.write_record(COLUMNS.iter().map(|c| c.name))?;
        Ok(CsvWriter {
            out,
            num: String::new(),
        })
    }
}

impl<W: Write + Send> RowWriter for CsvWriter<W> {
    fn write_row(&mut self, row: &Row) -> io::Result<()> {
        for cell in row.cells() {
            match cell {
                Cell::Null => self.out.write_field("")?,
                Cell::Num(v) => {
                    self.num = decimal_text(v).unwrap_or_default();
                    self.out.write_field(&self.num)?
                }
                Cell::Str(s) => self.out.write_field(s)?,
                Cell::Time(t) => self.out.write_field(datetime_text(t))?,
            }
        }
        self.out.write_record(None::<&[u8]>)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}

/// The Arrow schema of an export: Decimal → `Float64`, String and Key-Value → `Utf8`,
/// Date/Time → `Timestamp(µs, UTC)`; a column FOCUS does not let be null is not nullable.
pub fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|c| {
                let t = match c.kind {
                    Kind::Decimal => DataType::Float64,
                    Kind::String | Kind::KeyValue => DataType::Utf8,
                    Kind::DateTime => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    }
                };
                Field::new(c.name, t, c.nullable)
            })
            .collect::<Vec<_>>(),
    ))
}

enum Builder {
    F(Float64Builder),
    S(StringBuilder),
    T(TimestampMicrosecondBuilder),
}

/// Parquet through Arrow: rows are gathered column by column, and every
/// [`PARQUET_ROW_GROUP`] rows become one record batch and one row group, flushed to `out`.
pub struct ParquetWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: usize,
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn new(out: W) -> io::Result<ParquetWriter<W>> {
        let schema = arrow_schema();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
            .set_created_by(format!("skymeter {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(io_err)?;
        Ok(ParquetWriter {
            writer,
            schema,
            builders: new_builders(),
            rows: 0,
        })
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let builders = std::mem::replace(&mut self.builders, new_builders());
        let arrays: Vec<ArrayRef> = builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::F(mut b) => Arc::new(b.finish()),
                    Builder::S(mut b) => Arc::new(b.finish()),
                    Builder::T(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(io_err)?;
        self.writer.write(&batch).map_err(io_err)?;
        self.writer.flush().map_err(io_err)?;
        self.rows = 0;
        Ok(())
    }
}

fn new_builders() -> Vec<Builder> {
    COLUMNS
        .iter()
        .map(|c| match c.kind {
            Kind::Decimal => Builder::F(Float64Builder::with_capacity(PARQUET_ROW_GROUP)),
            Kind::String | Kind::KeyValue => Builder::S(StringBuilder::new()),
            Kind::DateTime => Builder::T(
                TimestampMicrosecondBuilder::with_capacity(PARQUET_ROW_GROUP).with_timezone("UTC"),
            ),
        })
        .collect()
}

fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

impl<W: Write + Send> RowWriter for ParquetWriter<W> {
    fn write_row(&mut self, row: &Row) -> io::Result<()> {
        for (b, cell) in self.builders.iter_mut().zip(row.cells()) {
            match (b, cell) {
                (Builder::F(b), Cell::Num(v)) if v.is_finite() => b.append_value(v),
                (Builder::F(b), _) => b.append_null(),
                (Builder::S(b), Cell::Str(s)) => b.append_value(s),
                (Builder::S(b), _) => b.append_null(),
                (Builder::T(b), Cell::Time(t)) => b.append_value(t.timestamp_micros()),
                (Builder::T(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
        if self.rows == PARQUET_ROW_GROUP {
            self.write_batch()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.write_batch()?;
        // The footer; then whatever the sink still holds goes out.
        self.writer.finish().map_err(io_err)?;
        self.writer.inner_mut().flush()
    }
}
