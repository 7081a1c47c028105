//! Codecs and helpers that several plugins share.

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub mod api_calls;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub mod cloud_config;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
pub mod price_list;
pub mod prom_points;
pub mod prom_text;
pub mod retry_after;
pub mod series;
#[cfg(test)]
pub(crate) mod testing;
