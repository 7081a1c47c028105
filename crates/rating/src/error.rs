//! What rating can fail with, and the modules it rates with.

use rust_decimal::Decimal;

/// Why a period could not be rated. The period stays unrated and is tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("rating `{service}` (quantity {qty}) overflowed a decimal; check the rule's cost")]
    Overflow { service: String, qty: Decimal },
    #[error("script `{script}`: {message}")]
    Script { script: String, message: String },
}

/// The modules skymeter rates with, under the names CloudKitty's API lists.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "hashmap",
        description: "HashMap rating module.",
    },
    ModuleInfo {
        name: "script",
        description: "Rhai script rating module (the frame CloudKitty's pyscripts see).",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleInfo {
    pub name: &'static str,
    pub description: &'static str,
}
