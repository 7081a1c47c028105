//! Codecs and helpers that several plugins share.

pub mod prom_text;
