//! skymeter's cost lines as FinOps **FOCUS 1.2** rows: the columns of an export, the rules
//! that fill the columns a line does not carry, CSV and Parquet writers that stream, and a
//! checker of the FOCUS 1.2 column rules (used by the tests on both formats).
//!
//! The rules are listed in `docs/focus.md`; each is also written beside its code in
//! [`map`]. In short: a column the stored line carries is exported as it is (with the
//! allowed-value fixes FOCUS needs); a mandatory column it lacks is derived from the columns
//! it has, never invented from outside; and skymeter's own columns follow, prefixed `x_`.

pub mod check;
mod columns;
mod map;
mod write;

pub use columns::{datetime_text, decimal_text, Cell, Column, Kind, Level, COLUMNS, MANDATORY};
pub use map::{focus_service_category, map, Row, SERVICE_CATEGORIES};
pub use write::{CsvWriter, Format, ParquetWriter, RowWriter, PARQUET_ROW_GROUP};
