//! Processors: transform batches between collection and publishing.

pub mod aggregate;
pub mod filter;
pub mod passthru;
pub mod relabel;
pub mod scale;
