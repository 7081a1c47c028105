//! The embedded backend: everything in one data directory, no external service.
//! (Implementation in progress.)

use std::path::PathBuf;

/// Options of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub dir: PathBuf,
}

/// The embedded store.
pub struct EmbeddedStore {
    #[allow(dead_code)]
    options: EmbeddedOptions,
}
