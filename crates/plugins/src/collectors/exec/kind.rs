//! What a value read from a command's output becomes: a gauge or a counter
//! ([`ValueType`], as configured), a checked CSV [`Column`], and the [`Reading`] made of it.
//! Both the configuration (mod.rs) and the output readers (output.rs) use these.

use crate::common::series::{Reading, ReadingKind};
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Stat, Unit};

/// Gauge or counter, for compact JSON points and CSV columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Emitted as read.
    #[default]
    Gauge,
    /// A growing total, emitted as a per-second rate between two runs.
    Counter,
}

/// One CSV column, checked.
#[derive(Debug, Clone)]
pub(super) enum Column {
    Label(String),
    Metric {
        name: String,
        factor: f64,
        kind: ReadingKind,
    },
    Skip,
}

/// The kind of a reading of a gauge or counter in `unit`.
pub(super) fn reading_kind(value_type: ValueType, unit: Unit, stat: Stat) -> ReadingKind {
    match value_type {
        ValueType::Gauge => ReadingKind::Gauge { unit, stat },
        ValueType::Counter => ReadingKind::Counter {
            rate_unit: crate::common::series::rate_unit(unit),
        },
    }
}

/// What a [`Reading`] of a compact point or CSV cell is made of.
pub(super) fn reading(
    metric: String,
    labels: skymeter_model::Labels,
    value: f64,
    kind: ReadingKind,
) -> Reading {
    Reading {
        metric,
        labels,
        value,
        kind,
    }
}
