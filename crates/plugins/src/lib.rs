//! skymeter's built-in plugins. One folder per plugin (code, `README.md`, `sample.toml`,
//! tests); [`builtin`] lists them. Plugins depend on `skymeter-model` and
//! `skymeter-plugin-api` only, never on the pipeline, the server, the CLI or each other; what
//! several plugins share (parsers of common formats) lives in `common/`, and what the cloud
//! collectors share (the cloud driver) in `cloud/`.

pub mod cloud;
pub mod collectors;
pub mod common;
pub mod processors;
pub mod publishers;
mod registry;

pub use registry::builtin;
