//! Query strings: parsed by hand because filters have open keys (`tag.env=prod`,
//! `label.cpu=3`). Every parameter is checked: an unknown one, a bad number or time is a
//! `400` that names the parameter and says what it takes, never silently ignored.

use crate::error::ApiErr;
use chrono::{DateTime, Utc};
use skymeter_store::PageQuery;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// The parameters of one request, consumed one by one; [`Params::finish`] rejects leftovers.
pub struct Params {
    pairs: Vec<(String, String)>,
    known: Vec<&'static str>,
    prefixes: Vec<&'static str>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiErr> {
        let pairs: Vec<(String, String)> = match raw {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| ApiErr::bad_request(format!("cannot read the query string: {e}")))?,
        };
        Ok(Params {
            pairs,
            known: Vec::new(),
            prefixes: Vec::new(),
        })
    }

    /// The value of `name`, if given; given twice is an error.
    pub fn take(&mut self, name: &'static str) -> Result<Option<String>, ApiErr> {
        self.known.push(name);
        let mut found: Option<String> = None;
        let mut dup = false;
        self.pairs.retain(|(k, v)| {
            if k == name {
                dup |= found.is_some();
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        if dup {
            return Err(ApiErr::bad_request(format!(
                "query parameter `{name}` is given more than once"
            )));
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// `name`, parsed with `FromStr`; the error says what was given and what is wanted.
    pub fn take_parsed<T: FromStr>(
        &mut self,
        name: &'static str,
        wanted: &str,
    ) -> Result<Option<T>, ApiErr>
    where
        T::Err: std::fmt::Display,
    {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|e| {
                ApiErr::bad_request(format!("query parameter `{name}`=`{v}`: {e}; {wanted}"))
            }),
        }
    }

    /// Every `PREFIX.KEY=VALUE` parameter, as KEY → VALUE.
    pub fn take_prefixed(
        &mut self,
        prefix: &'static str,
    ) -> Result<BTreeMap<String, String>, ApiErr> {
        self.prefixes.push(prefix);
        let mut out = BTreeMap::new();
        let mut err = None;
        self.pairs.retain(|(k, v)| match k.strip_prefix(prefix) {
            Some(key) => {
                if key.is_empty() {
                    err = Some(format!(
                        "query parameter `{k}` needs a key after `{prefix}`"
                    ));
                } else if out.insert(key.to_string(), v.clone()).is_some() {
                    err = Some(format!("query parameter `{k}` is given more than once"));
                }
                false
            }
            None => true,
        });
        match err {
            Some(e) => Err(ApiErr::bad_request(e)),
            None => Ok(out),
        }
    }

    /// `limit` (1-1000) and `cursor`.
    pub fn take_page(&mut self) -> Result<PageQuery, ApiErr> {
        let limit = self.take_parsed::<u32>("limit", "use a whole number from 1 to 1000")?;
        if let Some(l) = limit {
            if l == 0 || l > PageQuery::MAX_LIMIT {
                return Err(ApiErr::bad_request(format!(
                    "query parameter `limit`={l} is out of range; use 1 to {}",
                    PageQuery::MAX_LIMIT
                )));
            }
        }
        Ok(PageQuery {
            limit,
            cursor: self.take("cursor")?,
        })
    }

    /// A duration in humantime form (`30s`, `5m`, `1h 30m`, `1d`).
    pub fn take_duration(&mut self, name: &'static str) -> Result<Option<Duration>, ApiErr> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => parse_duration(&v)
                .map(Some)
                .map_err(|e| ApiErr::bad_request(format!("query parameter `{name}`: {e}"))),
        }
    }

    /// A time: RFC 3339, Unix seconds, `now`, or relative to now (`-1h`, `now-30m`).
    pub fn take_time(
        &mut self,
        name: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ApiErr> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => parse_time(&v, now)
                .map(Some)
                .map_err(|e| ApiErr::bad_request(format!("query parameter `{name}`: {e}"))),
        }
    }

    /// Fails on any parameter no `take*` asked for, listing the ones this endpoint takes.
    pub fn finish(self) -> Result<(), ApiErr> {
        let Some((k, _)) = self.pairs.first() else {
            return Ok(());
        };
        let mut allowed: Vec<String> = self.known.iter().map(|s| s.to_string()).collect();
        allowed.extend(self.prefixes.iter().map(|p| format!("{p}KEY")));
        Err(ApiErr::bad_request(format!(
            "unknown query parameter `{k}`; this endpoint takes: {}",
            allowed.join(", ")
        )))
    }
}

pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v.trim())
        .map_err(|e| format!("cannot read `{v}` as a duration ({e}); use e.g. 30s, 5m, 1h, 1d"))?;
    if d.is_zero() {
        return Err(format!("`{v}` is zero; use a positive duration"));
    }
    Ok(d)
}

/// A time: RFC 3339, Unix seconds, `now`, or relative to now (`-1h`, `now-30m`); within
/// years 0 to 9999 (the bounds of [`skymeter_promql::TimeRange`]), so that any later
/// arithmetic on it stays in range.
pub fn parse_time(v: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = parse_any_time(v, now)?;
    skymeter_promql::check_time("time", t.timestamp_millis()).map_err(|_| {
        format!(
            "`{}` is outside the supported times, years 0 to 9999",
            v.trim()
        )
    })?;
    Ok(t)
}

fn parse_any_time(v: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let v = v.trim();
    let hint = "use RFC 3339 (2026-11-22T10:00:00Z), Unix seconds, `now`, or a time relative \
                to now such as `-1h` or `now-30m`";
    if v == "now" {
        return Ok(now);
    }
    if let Some(rel) = v.strip_prefix("now-").or_else(|| v.strip_prefix('-')) {
        let d = humantime::parse_duration(rel)
            .map_err(|e| format!("cannot read `{v}` as a time ({e}); {hint}"))?;
        let d = chrono::Duration::from_std(d).map_err(|_| format!("`{v}` is too far back"))?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("`{v}` is too far back"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = v.parse::<f64>() {
        // In range before the conversion, which would saturate.
        let ms = (secs * 1000.0).round();
        if ms.is_finite() && ms.abs() < 9.0e18 {
            if let Some(t) = DateTime::from_timestamp_millis(ms as i64) {
                return Ok(t);
            }
        }
    }
    Err(format!("cannot read `{v}` as a time; {hint}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn times_absolute_and_relative() {
        let now: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        let t = |s| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(t("now"), "2026-11-22T10:00:00+00:00");
        assert_eq!(t("-1h"), "2026-11-22T09:00:00+00:00");
        assert_eq!(t("now-30m"), "2026-11-22T09:30:00+00:00");
        assert_eq!(t("2026-11-21T00:00:00+02:00"), "2026-11-20T22:00:00+00:00");
        assert_eq!(t("1795341600"), "2026-11-22T10:00:00+00:00");
        assert!(parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[test]
    fn times_outside_years_0_to_9999_are_refused() {
        let now: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
        for bad in [
            "-9100000000000000",
            "253402300800",
            "now-100000y",
            "-3000y",
            "1e300",
        ] {
            let e = parse_time(bad, now).unwrap_err();
            assert!(
                e.contains("outside the supported times")
                    || e.contains("too far back")
                    || e.contains("cannot read"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse_time("253402300800", now).unwrap_err(),
            "`253402300800` is outside the supported times, years 0 to 9999"
        );
        assert!(parse_time("253402300799", now).is_ok());
        assert!(parse_time("0000-01-01T00:00:00Z", now).is_ok());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected() {
        let mut p = Params::parse(Some("provider=aws&tag.env=prod&bogus=1")).unwrap();
        assert_eq!(p.take("provider").unwrap().as_deref(), Some("aws"));
        assert_eq!(p.take_prefixed("tag.").unwrap()["env"], "prod");
        let e = p.finish().unwrap_err();
        assert!(
            e.body.message.contains("`bogus`") && e.body.message.contains("tag.KEY"),
            "{:?}",
            e.body
        );
        let mut p = Params::parse(Some("limit=5&limit=6")).unwrap();
        assert!(p.take_page().is_err());
        let mut p = Params::parse(Some("limit=0")).unwrap();
        assert!(p
            .take_page()
            .unwrap_err()
            .body
            .message
            .contains("out of range"));
    }

    /// Property tests: outside text never makes the parsers panic, and what they accept
    /// is consistent. 256 cases each (`PROPTEST_CASES` overrides).
    pub(crate) mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        pub(crate) fn runner() -> TestRunner {
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            TestRunner::new(Config {
                cases,
                failure_persistence: None,
                ..Config::default()
            })
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,40}",
                "[-+now0-9.eE:TZyhmsdw ]{0,30}",
                any::<f64>().prop_map(|f| f.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                (any::<u32>(), "[yhmsdw]|ms|us|ns").prop_map(|(n, u)| format!("-{n}{u}")),
            ]
        }

        #[test]
        fn times_parse_without_panic_and_stay_in_bounds() {
            let now: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
            let count = std::cell::Cell::new(0);
            runner()
                .run(&text(), |v| {
                    count.set(count.get() + 1);
                    if let Ok(t) = parse_time(&v, now) {
                        let ms = t.timestamp_millis();
                        prop_assert!(skymeter_promql::check_time("t", ms).is_ok(), "{v}: {t}");
                    }
                    if let Ok(d) = parse_duration(&v) {
                        prop_assert!(!d.is_zero(), "{v}");
                    }
                    Ok(())
                })
                .unwrap();
            eprintln!("params times: {} cases run", count.get());
        }

        #[test]
        fn query_strings_parse_without_panic_and_consistently() {
            let key =
                prop::sample::select(vec!["limit", "cursor", "tag.env", "tag.", "x", "start"]);
            let pair = (key, ".{0,8}").prop_map(|(k, v)| format!("{k}={v}"));
            let raw = prop_oneof![
                prop::collection::vec(pair, 0..6).prop_map(|p| p.join("&")),
                ".{0,60}",
            ];
            let count = std::cell::Cell::new(0);
            runner()
                .run(&raw, |q| {
                    count.set(count.get() + 1);
                    let Ok(mut p) = Params::parse(Some(&q)) else {
                        return Ok(());
                    };
                    let limit = p.take_page();
                    let tags = p.take_prefixed("tag.");
                    let start = p.take_time("start", Utc::now());
                    let x = p.take("x");
                    let finish = p.finish();
                    // A page limit, when accepted, is in range.
                    if let Ok(page) = &limit {
                        if let Some(l) = page.limit {
                            prop_assert!((1..=PageQuery::MAX_LIMIT).contains(&l));
                        }
                    }
                    // With every taken name read, what is left over is exactly the
                    // names this endpoint does not take.
                    if limit.is_ok() && tags.is_ok() && start.is_ok() && x.is_ok() {
                        let pairs: Vec<(String, String)> =
                            serde_urlencoded::from_str(&q).unwrap_or_default();
                        let known = |k: &str| {
                            ["limit", "cursor", "start", "x"].contains(&k) || k.starts_with("tag.")
                        };
                        let all_known = pairs.iter().all(|(k, _)| known(k));
                        prop_assert_eq!(finish.is_ok(), all_known, "{}", q);
                    }
                    Ok(())
                })
                .unwrap();
            eprintln!("params query strings: {} cases run", count.get());
        }
    }
}
