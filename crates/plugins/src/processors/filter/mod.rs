//! `filter`: keeps the points (and optionally resources) a task wants and drops the rest:
//! metric name globs, Prometheus-style label matchers, resource kinds, whole record types.
//!
//! Label matchers are parsed here by hand (a few dozen lines) because the crates that parse
//! PromQL bring a whole query language for the one production we need.

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use skymeter_model::{Batch, Point, ResourceRef};
use skymeter_plugin_api::{
    BuildContext, ConfigError, MetricSelection, PluginDescription, PluginKind, Processor,
    ProcessorFactory, RawConfig,
};
use std::collections::HashSet;

/// `filter` settings. With none of them set, everything passes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Metric name globs to keep (`cpu.*`); empty keeps every metric.
    #[serde(default)]
    pub include: Vec<String>,
    /// Metric name globs to drop, applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Prometheus label matchers a point must all satisfy: `name="v"`, `name!="v"`,
    /// `name=~"regex"`, `name!~"regex"`. Besides the point's labels, `provider`, `account`,
    /// `region`, `resource_id` (the point's resource) and `__name__` (the metric) can be
    /// matched. A missing label matches as the empty string.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Resource kind globs to keep (`compute.*`, `host`); empty keeps every kind. Resources
    /// of other kinds are dropped, and so are the points of those resources when the
    /// resource is in the same batch.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Record types to drop whole: `resources`, `points`, `costs`, `errors`.
    #[serde(default)]
    pub drop: Vec<RecordType>,
}

/// A type of record in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordType {
    Resources,
    Points,
    Costs,
    Errors,
}

pub fn factory() -> ProcessorFactory {
    ProcessorFactory {
        description: PluginDescription {
            name: "filter",
            kind: PluginKind::Processor,
            summary: "keeps or drops points by metric glob and label matcher, resources by kind, and whole record types",
            config_schema: PluginDescription::schema_of::<FilterConfig>,
            metrics: PluginDescription::no_metrics,
        },
        build,
    }
}

fn build(raw: &RawConfig<'_>, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigError> {
    let cfg: FilterConfig = raw.decode()?;
    Ok(Box::new(
        Filter::new(&cfg).map_err(|(key, msg)| raw.error(key, msg))?,
    ))
}

/// The compiled filter.
#[derive(Debug)]
pub struct Filter {
    include: MetricSelection,
    /// `None` when no exclude globs are set (an empty [`MetricSelection`] means "all").
    exclude: Option<MetricSelection>,
    matchers: Vec<LabelMatcher>,
    kinds: Option<GlobSet>,
    drop: Vec<RecordType>,
}

impl Filter {
    /// Compiles a config; errors name the key and say what is wrong.
    pub fn new(cfg: &FilterConfig) -> Result<Filter, (&'static str, String)> {
        let include = MetricSelection::new(&cfg.include).map_err(|e| ("include", e))?;
        let exclude = if cfg.exclude.is_empty() {
            None
        } else {
            Some(MetricSelection::new(&cfg.exclude).map_err(|e| ("exclude", e))?)
        };
        let matchers = cfg
            .labels
            .iter()
            .map(|m| LabelMatcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("labels", e))?;
        let kinds = if cfg.kinds.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for k in &cfg.kinds {
                b.add(Glob::new(k).map_err(|e| ("kinds", format!("bad kind glob `{k}`: {e}")))?);
            }
            Some(b.build().map_err(|e| ("kinds", e.to_string()))?)
        };
        Ok(Filter {
            include,
            exclude,
            matchers,
            kinds,
            drop: cfg.drop.clone(),
        })
    }

    fn keeps_point(&self, p: &Point) -> bool {
        self.include.matches(&p.metric)
            && !self.exclude.as_ref().is_some_and(|e| e.matches(&p.metric))
            && self.matchers.iter().all(|m| m.matches(p))
    }
}

impl Processor for Filter {
    fn process(&mut self, batch: &mut Batch) {
        let dropping = |t| self.drop.contains(&t);
        if dropping(RecordType::Costs) {
            batch.costs.clear();
        }
        if dropping(RecordType::Errors) {
            batch.errors.clear();
        }
        // Resources of unwanted kinds, remembered before they go so that their points can go
        // with them.
        let mut unwanted: HashSet<ResourceRef> = HashSet::new();
        if let Some(kinds) = &self.kinds {
            batch.resources.retain(|r| {
                let keep = kinds.is_match(&r.kind);
                if !keep {
                    unwanted.insert(r.reference());
                }
                keep
            });
        }
        if dropping(RecordType::Resources) {
            batch.resources.clear();
        }
        if dropping(RecordType::Points) {
            batch.points.clear();
        } else {
            batch
                .points
                .retain(|p| !unwanted.contains(&p.resource) && self.keeps_point(p));
        }
    }
}

/// How a matcher compares; regexes are anchored at both ends, as Prometheus does.
#[derive(Debug)]
enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

/// One Prometheus label matcher, `name op "value"`.
#[derive(Debug)]
pub struct LabelMatcher {
    name: String,
    op: MatchOp,
}

const MATCHER_HELP: &str =
    r#"write `name="value"`, `name!="value"`, `name=~"regex"` or `name!~"regex"`"#;

impl LabelMatcher {
    /// Parses `device=~"sd.*"`. Values are quoted with `"`, `'` or `` ` `` (raw); inside
    /// `"` and `'`, `\\`, `\"`, `\'`, `\n` and `\t` are escapes, as in PromQL.
    pub fn parse(text: &str) -> Result<LabelMatcher, String> {
        let bad = |why: &str| format!("label matcher `{text}`: {why}; {MATCHER_HELP}");
        let s = text.trim();
        let name_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..name_len];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(bad("expected a label name first"));
        }
        let rest = s[name_len..].trim_start();
        let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
            ("=~", r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            ("!~", r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            ("!=", r)
        } else if let Some(r) = rest.strip_prefix('=') {
            ("=", r)
        } else {
            return Err(bad("expected one of = != =~ !~ after the label name"));
        };
        let rest = rest.trim_start();
        let mut chars = rest.chars();
        let quote = match chars.next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(bad("the value must be quoted")),
        };
        let mut value = String::new();
        let mut closed = None;
        while let Some(c) = chars.next() {
            if c == quote {
                closed = Some(chars.as_str());
                break;
            }
            if c == '\\' && quote != '`' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(e @ ('\\' | '"' | '\'')) => value.push(e),
                    // Unknown escapes are kept as written, so that regex escapes such as
                    // `\d` and `\.` work without doubling the backslash.
                    Some(e) => {
                        value.push('\\');
                        value.push(e);
                    }
                    None => break,
                }
            } else {
                value.push(c);
            }
        }
        match closed {
            None => return Err(bad("the value's closing quote is missing")),
            Some(after) if !after.trim().is_empty() => {
                return Err(bad(&format!(
                    "unexpected `{}` after the value",
                    after.trim()
                )))
            }
            Some(_) => {}
        }
        let anchored =
            || Regex::new(&format!("^(?:{value})$")).map_err(|e| bad(&format!("bad regex: {e}")));
        let op = match op {
            "=~" => MatchOp::Regex(anchored()?),
            "!~" => MatchOp::NotRegex(anchored()?),
            "!=" => MatchOp::NotEqual(value),
            _ => MatchOp::Equal(value),
        };
        Ok(LabelMatcher {
            name: name.to_string(),
            op,
        })
    }

    /// The value of the matcher's label on `p`; the resource's fields win over point labels
    /// of the same name.
    fn value_of<'a>(&self, p: &'a Point) -> &'a str {
        match self.name.as_str() {
            "provider" => &p.resource.provider,
            "account" => &p.resource.account,
            "region" => &p.resource.region,
            "resource_id" => &p.resource.id,
            "__name__" => &p.metric,
            other => p.labels.get(other).map_or("", String::as_str),
        }
    }

    pub fn matches(&self, p: &Point) -> bool {
        let v = self.value_of(p);
        match &self.op {
            MatchOp::Equal(want) => v == want,
            MatchOp::NotEqual(want) => v != want,
            MatchOp::Regex(re) => re.is_match(v),
            MatchOp::NotRegex(re) => !re.is_match(v),
        }
    }
}

#[cfg(test)]
mod tests;
