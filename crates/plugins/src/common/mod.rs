//! Codecs and helpers that several plugins share.

pub mod prom_points;
pub mod prom_text;
pub mod series;
#[cfg(test)]
pub(crate) mod testing;
