//! skymeter's rating engine: CloudKitty's rating, in Rust and in decimal arithmetic.
//!
//! Usage of one scope over one period arrives as a [`DataFrame`] (points per service, each
//! with a quantity and the attributes it was grouped by); the enabled modules run on it by
//! priority, highest first, each adding to (hashmap) or setting (script) the points' prices.
//! What gets rated, and how collected quantities are converted first, is a list of
//! [`ServiceDef`]s, CloudKitty's `metrics.yml`.
//!
//! - [`hashmap`]: services, fields, mappings (flat / rate, per scope), thresholds, groups;
//! - [`script`]: Rhai scripts over the same frame CloudKitty's pyscripts see;
//! - [`rules`]: all of it from one TOML file, with errors that name the file and line.

pub mod decimal;
mod error;
pub mod frame;
pub mod hashmap;
pub mod rules;
pub mod script;
pub mod service;
pub mod usage;

pub use error::{ModuleInfo, RateError, MODULES};
pub use frame::{Attrs, DataFrame, DataPoint, Period};
pub use hashmap::{CompiledHashMap, HashMapRules, MapType};
pub use rules::RatingRules;
pub use rust_decimal::prelude::ToPrimitive;
pub use rust_decimal::Decimal;
pub use script::{DataSize, Script, ScriptLimits};
pub use service::{Aggregate, Mutate, Ratio, ServiceDef, Usage};
pub use usage::{cost_lines, LineDefaults, UsageFrames};
