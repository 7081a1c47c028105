//! Config checks the cloud collectors (aws, gcp, azure) share, with the same messages.

use skymeter_model::Stat;
use skymeter_plugin_api::{ConfigError, RawConfig};

/// The `stats` key: each a stat the collector's API can give (`allowed`), none twice, at
/// least one.
pub fn parse_stats(
    raw: &RawConfig<'_>,
    names: &[String],
    allowed: &[Stat],
) -> Result<Vec<Stat>, ConfigError> {
    let allowed_list = allowed
        .iter()
        .map(Stat::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if names.is_empty() {
        return Err(raw.error("stats", format!("list at least one of {allowed_list}")));
    }
    let mut stats = Vec::new();
    for s in names {
        match s.parse::<Stat>().ok().filter(|p| allowed.contains(p)) {
            Some(p) if !stats.contains(&p) => stats.push(p),
            Some(_) => return Err(raw.error("stats", format!("\"{s}\" is listed twice"))),
            None => {
                return Err(raw.error(
                    "stats",
                    format!("unknown stat \"{s}\"; allowed: {allowed_list}"),
                ))
            }
        }
    }
    Ok(stats)
}

/// Counts and bounds that must be at least 1 (`max_concurrency`, `max_attempts`, …).
pub fn at_least_one(raw: &RawConfig<'_>, keys: &[(&str, usize)]) -> Result<(), ConfigError> {
    match keys.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(raw.error(key, "must be at least 1")),
        None => Ok(()),
    }
}
