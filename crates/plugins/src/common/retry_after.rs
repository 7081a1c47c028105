//! `Retry-After`, read one way for every HTTP client of the plugins (the server and http
//! publishers, the GCP and Azure collectors): delay-seconds or an HTTP date (RFC 9110
//! §10.2.3). Each caller caps the wait to what it is willing to honour.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The wait a response's `Retry-After` header asks for, if it has a readable one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse(v, Utc::now())
}

/// A `Retry-After` value at `now`: whole seconds, or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 2822 with `GMT` as the zone) — a date in the past
/// is no wait. Anything else is `None`.
pub fn parse(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or_default())
}
