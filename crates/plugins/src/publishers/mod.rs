//! Publishers: destinations for batches.

pub mod stdout;
