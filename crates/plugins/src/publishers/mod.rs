//! Publishers: destinations for batches.

pub mod file;
pub mod stdout;
