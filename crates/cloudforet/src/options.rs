//! What a request asks for: the collector's `options` (period, filters, which resources),
//! a collect's `filter` (the same filters), and `secret_data` (where the skymeter server
//! is and the read token), each checked once here with errors that name the key.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::fmt;

/// A request's options or filter were wrong: the message names the key and what it takes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgument(pub String);

fn invalid(msg: impl Into<String>) -> InvalidArgument {
    InvalidArgument(msg.into())
}

/// The keys `options` takes (the schema `init` publishes lists them with their meaning).
pub const OPTION_KEYS: [&str; 9] = [
    "period_hours",
    "start",
    "end",
    "providers",
    "accounts",
    "regions",
    "kinds",
    "resource_ids",
    "include_cloud_services",
];

/// The keys a collect's `filter` (and its `task_options`) take.
pub const FILTER_KEYS: [&str; 5] = ["providers", "accounts", "regions", "kinds", "resource_ids"];

/// Longest period: ten years.
const MAX_PERIOD_HOURS: f64 = 87_600.0;

/// The period the monitoring values summarise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Period {
    /// The last this many seconds before the collect.
    Last(i64),
    /// From `start` to `end` (the collect's time when absent).
    Between {
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    },
}

/// A resolved period: `(start, end]`, whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn seconds(&self) -> i64 {
        (self.end - self.start).num_seconds()
    }
}

impl Period {
    /// The window at `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Window, InvalidArgument> {
        let now = trunc_seconds(now);
        let w = match *self {
            Period::Last(s) => Window {
                start: now - Duration::seconds(s),
                end: now,
            },
            Period::Between { start, end } => Window {
                start,
                end: end.unwrap_or(now),
            },
        };
        if w.seconds() < 1 {
            return Err(invalid(format!(
                "options.start ({}) must be at least a second before options.end ({})",
                w.start.to_rfc3339(),
                w.end.to_rfc3339()
            )));
        }
        if w.seconds() as f64 > MAX_PERIOD_HOURS * 3600.0 {
            return Err(invalid(
                "options.start to options.end is longer than 10 years; ask for less",
            ));
        }
        Ok(w)
    }
}

fn trunc_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Which resources to collect. An empty list lets everything through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub providers: Vec<String>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub kinds: Vec<String>,
    pub resource_ids: Vec<String>,
}

impl Filter {
    fn parse(
        obj: &Map<String, Value>,
        what: &str,
        strict: bool,
        known: &[&str],
    ) -> Result<Filter, InvalidArgument> {
        if strict {
            if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(invalid(format!(
                    "{what}.{k} is not a key this plugin knows; use {}",
                    known.join(", ")
                )));
            }
        }
        Ok(Filter {
            providers: strings(obj, what, "providers")?,
            accounts: strings(obj, what, "accounts")?,
            regions: strings(obj, what, "regions")?,
            kinds: strings(obj, what, "kinds")?,
            resource_ids: strings(obj, what, "resource_ids")?,
        })
    }

    /// A collect's `filter`: only [`FILTER_KEYS`].
    pub fn from_filter(obj: &Map<String, Value>) -> Result<Filter, InvalidArgument> {
        Filter::parse(obj, "filter", true, &FILTER_KEYS)
    }

    /// A collect's `task_options`: Cloudforet may put keys of its own there, so only
    /// [`FILTER_KEYS`] are read and anything else is left alone.
    pub fn from_task_options(obj: &Map<String, Value>) -> Result<Filter, InvalidArgument> {
        Filter::parse(obj, "task_options", false, &FILTER_KEYS)
    }

    /// Whether a resource passes: `provider` in either naming (`gcp` or Cloudforet's
    /// `google_cloud`), and the id either skymeter's or the `reference.resource_id` sent.
    pub fn passes(
        &self,
        provider: &str,
        account: &str,
        region: &str,
        kind: &str,
        ids: &[&str],
    ) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        (self.providers.is_empty()
            || self.providers.iter().any(|p| {
                p == provider || crate::provider::cloudforet_provider(provider) == p.as_str()
            }))
            && any(&self.accounts, account)
            && any(&self.regions, region)
            && any(&self.kinds, kind)
            && (self.resource_ids.is_empty()
                || ids
                    .iter()
                    .any(|id| self.resource_ids.iter().any(|x| x == id)))
    }
}

/// Several filters at once (the options', a collect's `filter`, its `task_options`): a
/// resource must pass each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters(pub Vec<Filter>);

impl Filters {
    /// Whether a resource passes every filter.
    pub fn passes(
        &self,
        provider: &str,
        account: &str,
        region: &str,
        kind: &str,
        ids: &[&str],
    ) -> bool {
        self.0
            .iter()
            .all(|f| f.passes(provider, account, region, kind, ids))
    }

    /// The one value a filter pins `field` to, if one does: the server can filter on it
    /// (every resource must have it anyway).
    pub fn pinned(&self, field: fn(&Filter) -> &Vec<String>) -> Option<&str> {
        self.0.iter().find_map(|f| match field(f).as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        })
    }

    /// The kinds a filter limits the resources to, if one does.
    pub fn kinds(&self) -> Option<&[String]> {
        self.0
            .iter()
            .map(|f| f.kinds.as_slice())
            .find(|k| !k.is_empty())
    }
}

/// A list of strings under `key`: absent or null is empty, one string is a list of one.
fn strings(
    obj: &Map<String, Value>,
    what: &str,
    key: &str,
) -> Result<Vec<String>, InvalidArgument> {
    let bad = || {
        invalid(format!(
            "{what}.{key} must be a string or a list of strings"
        ))
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// The collector's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub period: Period,
    pub filter: Filter,
    /// Besides servers (`compute.instance`, `host`) as `inventory.Server`, every other
    /// resource as `inventory.CloudService`.
    pub include_cloud_services: bool,
}

impl Options {
    pub fn parse(obj: &Map<String, Value>) -> Result<Options, InvalidArgument> {
        let filter = Filter::parse(obj, "options", true, &OPTION_KEYS)?;
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, InvalidArgument> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                    .map(|t| Some(trunc_seconds(t.with_timezone(&Utc))))
                    .map_err(|e| {
                        invalid(format!(
                            "options.{key}: `{s}` is not an RFC 3339 time ({e}); write e.g. \
                             2026-01-31T00:00:00Z"
                        ))
                    }),
                Some(_) => Err(invalid(format!(
                    "options.{key} must be an RFC 3339 time as a string"
                ))),
            }
        };
        let start = time("start")?;
        let end = time("end")?;
        let hours = match obj.get("period_hours") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|h| h.is_finite() && *h * 3600.0 >= 1.0 && *h <= MAX_PERIOD_HOURS)
                    .ok_or_else(|| {
                        invalid(format!(
                            "options.period_hours must be a number of hours from 1 second \
                             to {MAX_PERIOD_HOURS} (10 years), got {v}"
                        ))
                    })?,
            ),
        };
        let period = match (hours, start, end) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    "options.period_hours and options.start both set the period; give one",
                ))
            }
            (None, Some(start), end) => Period::Between { start, end },
            (hours, None, None) => Period::Last((hours.unwrap_or(24.0) * 3600.0).round() as i64),
            (hours, None, Some(end)) => Period::Between {
                start: end - Duration::seconds((hours.unwrap_or(24.0) * 3600.0).round() as i64),
                end: Some(end),
            },
        };
        let include_cloud_services = match obj.get("include_cloud_services") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    "options.include_cloud_services must be true or false",
                ))
            }
        };
        Ok(Options {
            period,
            filter,
            include_cloud_services,
        })
    }
}

/// Where the skymeter server is and the token to read it with.
#[derive(Clone, PartialEq)]
pub struct Secret {
    pub url: reqwest::Url,
    pub token: Option<String>,
}

/// Never prints the token.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The keys `secret_data` takes.
pub const SECRET_KEYS: [&str; 2] = ["skymeter_url", "token"];

impl Secret {
    /// `secret_data`'s `skymeter_url` and `token`, each falling back to the plugin's own
    /// (`--server`, `--token`). Never quotes the token in an error.
    pub fn parse(
        obj: &Map<String, Value>,
        fallback_url: Option<&str>,
        fallback_token: Option<&str>,
    ) -> Result<Secret, InvalidArgument> {
        if let Some(k) = obj.keys().find(|k| !SECRET_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "secret_data.{k} is not a key this plugin knows; use skymeter_url and token"
            )));
        }
        let text = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(invalid(format!("secret_data.{key} must be a string"))),
        };
        let url = text("skymeter_url")?
            .or_else(|| fallback_url.map(str::to_string))
            .ok_or_else(|| {
                invalid(
                    "no skymeter server: give secret_data.skymeter_url (e.g. \
                     http://skymeter.internal:8080), or start the plugin with --server",
                )
            })?;
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                invalid(format!(
                    "secret_data.skymeter_url `{url}` is not an http(s) URL; write e.g. \
                     http://skymeter.internal:8080"
                ))
            })?;
        let token = text("token")?.or_else(|| fallback_token.map(str::to_string));
        Ok(Secret { url: parsed, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_are_the_last_24_hours_of_servers() {
        let o = Options::parse(&Map::new()).unwrap();
        assert_eq!(o.period, Period::Last(86_400));
        assert!(!o.include_cloud_services);
        assert_eq!(o.filter, Filter::default());
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00.750Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = o.period.resolve(now).unwrap();
        assert_eq!(w.seconds(), 86_400);
        assert_eq!(w.end.to_rfc3339(), "2026-01-02T00:00:00+00:00");
    }

    #[test]
    fn periods_and_filters_parse_and_mistakes_name_the_key() {
        let o = Options::parse(&obj(json!({"period_hours": 6, "providers": "aws",
            "regions": ["us-east-1", "eu-west-1"], "include_cloud_services": true})))
        .unwrap();
        assert_eq!(o.period, Period::Last(6 * 3600));
        assert_eq!(o.filter.providers, ["aws"]);
        assert_eq!(o.filter.regions.len(), 2);
        let o = Options::parse(&obj(
            json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T12:00:00Z"}),
        ))
        .unwrap();
        assert_eq!(o.period.resolve(Utc::now()).unwrap().seconds(), 12 * 3600);

        for (bad, names) in [
            (json!({"period_hour": 6}), "options.period_hour"),
            (json!({"period_hours": 0}), "options.period_hours"),
            (json!({"period_hours": "6"}), "options.period_hours"),
            (json!({"start": "yesterday"}), "options.start"),
            (json!({"regions": [1]}), "options.regions"),
            (
                json!({"include_cloud_services": "yes"}),
                "options.include_cloud_services",
            ),
            (
                json!({"period_hours": 1, "start": "2026-01-01T00:00:00Z"}),
                "options.start",
            ),
        ] {
            let e = Options::parse(&obj(bad.clone())).unwrap_err();
            assert!(e.0.contains(names), "{bad}: {e}");
        }
        let backwards = Options::parse(&obj(
            json!({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
        ))
        .unwrap();
        assert!(backwards.period.resolve(Utc::now()).is_err());
        assert!(Filter::from_filter(&obj(json!({"zone": "a"})))
            .unwrap_err()
            .0
            .contains("filter.zone"));
        assert!(Filter::from_task_options(&obj(json!({"zone": "a"}))).is_ok());
    }

    #[test]
    fn filters_take_either_provider_name_and_either_id() {
        let f = Filter::from_filter(&obj(json!({"providers": "google_cloud",
            "resource_ids": ["https://x/instances/vm-1"]})))
        .unwrap();
        assert!(f.passes(
            "gcp",
            "p",
            "r",
            "compute.instance",
            &["123", "https://x/instances/vm-1"]
        ));
        assert!(!f.passes("gcp", "p", "r", "compute.instance", &["123"]));
        assert!(!f.passes(
            "aws",
            "p",
            "r",
            "compute.instance",
            &["https://x/instances/vm-1"]
        ));
        // Options and a collect's filter: both apply (not either).
        let both = Filters(vec![
            Filter::from_filter(&obj(json!({"accounts": "a", "providers": ["aws", "gcp"]})))
                .unwrap(),
            Filter::from_filter(&obj(json!({"providers": "aws", "kinds": ["host"]}))).unwrap(),
        ]);
        assert!(both.passes("aws", "a", "r", "host", &["h"]));
        assert!(!both.passes("aws", "b", "r", "host", &["h"]));
        assert!(!both.passes("gcp", "a", "r", "host", &["h"]));
        assert_eq!(both.pinned(|f| &f.providers), Some("aws"));
        assert_eq!(both.pinned(|f| &f.accounts), Some("a"));
        assert_eq!(both.pinned(|f| &f.regions), None);
        assert_eq!(both.kinds(), Some(&["host".to_string()][..]));
    }

    #[test]
    fn secrets_fall_back_to_the_command_line_and_never_show_the_token() {
        let s = Secret::parse(
            &obj(json!({"token": "sky_s3cret"})),
            Some("http://127.0.0.1:1"),
            None,
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "http://127.0.0.1:1/");
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = Secret::parse(&Map::new(), Some("http://h:2"), Some("t")).unwrap();
        assert_eq!(s.token.as_deref(), Some("t"));
        assert!(Secret::parse(&Map::new(), None, Some("t")).is_err());
        let e = Secret::parse(
            &obj(json!({"skymeter_url": "ftp://h", "token": "sky_s3cret"})),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            e.0.contains("secret_data.skymeter_url") && !e.0.contains("s3cret"),
            "{e}"
        );
        let e = Secret::parse(&obj(json!({"api_key": "sky_s3cret"})), None, None).unwrap_err();
        assert!(
            e.0.contains("secret_data.api_key") && !e.0.contains("s3cret"),
            "{e}"
        );
    }
}
