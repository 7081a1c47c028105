//! The per-API call counter lives in the plugin API (price sources count with it too).

pub use skymeter_plugin_api::api_calls::ApiCallCounts;
