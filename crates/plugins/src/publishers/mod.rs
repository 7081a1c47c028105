//! Publishers: destinations for batches.

#[doc(hidden)]
pub const NONE: () = ();
