//! Codecs and helpers that several plugins share.

pub mod api_calls;
pub mod cloud_config;
pub mod delivery;
pub mod http_post;
pub mod price_list;
pub mod prom_points;
pub mod prom_text;
pub mod request_parts;
pub mod retry_after;
pub mod series;
#[cfg(test)]
pub(crate) mod testing;
