//! Provider names: Cloudforet calls GCP `google_cloud`, skymeter `gcp`; the others agree.

/// Cloudforet's provider name: `gcp` is `google_cloud` there; others are the same.
pub fn cloudforet_provider(provider: &str) -> &str {
    match provider {
        "gcp" => "google_cloud",
        p => p,
    }
}

/// skymeter's provider name of a Cloudforet one.
pub fn skymeter_provider(provider: &str) -> &str {
    match provider {
        "google_cloud" => "gcp",
        p => p,
    }
}
