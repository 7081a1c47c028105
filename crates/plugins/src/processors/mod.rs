//! Processors: transform batches between collection and publishing.

#[doc(hidden)]
pub const NONE: () = ();
