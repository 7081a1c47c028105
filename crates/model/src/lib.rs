//! The standard records every skymeter component speaks.
//!
//! Collectors produce them, processors transform them, publishers and the server consume
//! them. This crate is deliberately inert: no I/O, no async, no cloud SDK, so that every
//! other crate (and every plugin author) can depend on it cheaply. The JSON shape is
//! versioned by [`SCHEMA_VERSION`]; `docs/schema/` holds the JSON Schema generated from these
//! types and a test fails when the two drift apart.

pub mod api;
pub mod catalog;
pub mod cost_series;
mod labels;
pub mod limits;
pub mod prom;
#[cfg(feature = "prompb")]
pub mod prompb;
pub mod provider;
mod record;
pub mod schema;
mod unit;
mod whole;

pub use labels::{Labels, PointLabels};
pub use record::*;
/// The string type of the fields every point carries (see [`ResourceRef`]).
pub use smol_str::SmolStr;
pub use unit::{Stat, Unit};
