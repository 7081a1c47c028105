//! The rating rules file (`rating.toml`): rated services, module switches, hashmap rules
//! nested under their service, and scripts. Every mistake is reported with the file, line
//! and key, and nothing of a file with a mistake is used.
//!
//! ```toml
//! [[service]]
//! metric = "volume.size"        # what the usage comes from
//! unit = "GiB"
//!
//! [modules.hashmap]
//! enabled = true
//! priority = 1
//!
//! [[hashmap.group]]
//! name = "volume_thresholds"
//!
//! [[hashmap.service]]
//! name = "volume.size"
//! mapping = [{ type = "flat", cost = "0.001", group = "volume_thresholds" }]
//! threshold = [{ level = 50, type = "rate", cost = "0.98", group = "volume_thresholds" }]
//!
//! [[hashmap.service.field]]
//! name = "volume_type"
//! mapping = [{ value = "ssd", type = "rate", cost = "1.5" }]
//!
//! [[script]]
//! name = "gpu"
//! file = "gpu.rhai"             # next to this file; or `source = '''...'''`
//! ```
//!
//! Costs and levels are decimals: write them as text (`"0.001"`) to keep every digit;
//! a TOML number is read by its shortest form, exact up to 15 significant digits.

use super::ruleset::{ModuleState, RatingRules};
use crate::decimal::{decimal_from_f64, parse_decimal};
use crate::error::MODULES;
use crate::hashmap::{MapType, Mapping, RuleError, Threshold};
use crate::script::Script;
use crate::service::{parse_factor, Aggregate, Mutate, Ratio, ServiceDef, Usage};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use skymeter_plugin_api::config::{ConfigError, Source};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;
use uuid::Uuid;

/// The mistakes of one rules file, each located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct RulesFileError(pub Vec<ConfigError>);

/// Reads and checks the rules file at `path`.
pub fn load_file(path: &Path) -> Result<RatingRules, RulesFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RulesFileError(vec![Source::new(path.display().to_string(), "")
            .error(None, format!("cannot read the rating rules file: {e}"))])
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_rules(Source::new(path.display().to_string(), text), dir)
}

/// Checks the rules in `source`; script files are read relative to `dir`.
pub fn parse_rules(source: Arc<Source>, dir: &Path) -> Result<RatingRules, RulesFileError> {
    let doc: FileToml = toml::from_str(&source.text)
        .map_err(|e| RulesFileError(vec![source.error(e.span(), first_line(e.message()))]))?;
    let mut b = Builder {
        source: &source,
        errors: Vec::new(),
        rules: RatingRules::default(),
    };
    let script_module_set = doc.modules.contains_key("script");
    b.services(doc.service);
    b.modules(doc.modules);
    b.hashmap(doc.hashmap);
    b.scripts(doc.script, dir);
    // Scripts in the file are meant to run: the script module is on unless the file says.
    if !script_module_set && !b.rules.scripts.is_empty() {
        if let Some(m) = b.rules.modules.get_mut("script") {
            m.enabled = true;
        }
    }
    if b.errors.is_empty() {
        Ok(b.rules)
    } else {
        Err(RulesFileError(b.errors))
    }
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_string()
}

/// A decimal written as text or as a TOML number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Num {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Num {
    fn decimal(&self) -> Result<Decimal, String> {
        match self {
            Num::Text(t) => parse_decimal(t),
            Num::Int(i) => Ok(Decimal::from(*i)),
            Num::Float(f) => decimal_from_f64(*f),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    service: Vec<Spanned<ServiceToml>>,
    #[serde(default)]
    modules: BTreeMap<String, Spanned<ModuleToml>>,
    #[serde(default)]
    hashmap: HashMapToml,
    #[serde(default)]
    script: Vec<Spanned<ScriptToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceToml {
    metric: String,
    alt_name: Option<String>,
    unit: String,
    factor: Option<Spanned<Num>>,
    offset: Option<Spanned<Num>>,
    #[serde(default)]
    mutate: Mutate,
    #[serde(default)]
    mutate_map: BTreeMap<String, Num>,
    #[serde(default)]
    groupby: Vec<String>,
    #[serde(default)]
    metadata: Vec<String>,
    description: Option<String>,
    usage: Option<Spanned<UsageToml>>,
    category: Option<String>,
}

/// `usage = { kind = "storage.volume", attribute = "size_gib" }` or
/// `usage = { metric = "gpu.utilization", aggregate = "avg" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageToml {
    kind: Option<String>,
    attribute: Option<String>,
    metric: Option<String>,
    aggregate: Option<Aggregate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleToml {
    enabled: Option<bool>,
    priority: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HashMapToml {
    #[serde(default)]
    group: Vec<Spanned<GroupToml>>,
    #[serde(default)]
    service: Vec<Spanned<HmServiceToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HmServiceToml {
    name: String,
    #[serde(default)]
    mapping: Vec<Spanned<MappingToml>>,
    #[serde(default)]
    threshold: Vec<Spanned<ThresholdToml>>,
    #[serde(default)]
    field: Vec<Spanned<FieldToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: String,
    #[serde(default)]
    mapping: Vec<Spanned<MappingToml>>,
    #[serde(default)]
    threshold: Vec<Spanned<ThresholdToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingToml {
    #[serde(rename = "type")]
    map_type: String,
    cost: Num,
    value: Option<String>,
    group: Option<String>,
    /// The one scope (account, project, tag value) it applies to.
    scope: Option<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdToml {
    #[serde(rename = "type")]
    map_type: String,
    level: Num,
    cost: Num,
    group: Option<String>,
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptToml {
    name: String,
    file: Option<String>,
    source: Option<String>,
}

struct Builder<'a> {
    source: &'a Arc<Source>,
    errors: Vec<ConfigError>,
    rules: RatingRules,
}

/// Which parent a mapping or threshold hangs off.
#[derive(Clone, Copy)]
enum Parent {
    Service(Uuid),
    Field(Uuid),
}

impl Builder<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.source.error(Some(span), message);
        self.errors.push(e);
    }

    fn decimal(&mut self, span: &Range<usize>, what: &str, n: &Num) -> Option<Decimal> {
        match n.decimal() {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(span.clone(), format!("{what}: {e}"));
                None
            }
        }
    }

    fn services(&mut self, services: Vec<Spanned<ServiceToml>>) {
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        for s in services {
            let span = s.span();
            let s = s.into_inner();
            let mut def = ServiceDef::new(&s.metric, &s.unit);
            def.alt_name = s.alt_name;
            def.mutate = s.mutate;
            def.groupby = s.groupby;
            def.metadata = s.metadata;
            def.description = s.description;
            def.category = s.category;
            if let Some(u) = s.usage {
                let span = u.span();
                match u.into_inner() {
                    UsageToml {
                        kind: Some(kind),
                        attribute,
                        metric: None,
                        aggregate: None,
                    } if !kind.is_empty() => def.usage = Some(Usage::Resources { kind, attribute }),
                    UsageToml {
                        kind: None,
                        attribute: None,
                        metric: Some(metric),
                        aggregate,
                    } if !metric.is_empty() => {
                        def.usage = Some(Usage::Metric {
                            metric,
                            aggregate: aggregate.unwrap_or_default(),
                        })
                    }
                    _ => self.error(
                        span,
                        "usage: give `kind` (resources of an inventory kind, optionally with \
                         `attribute`) or `metric` (optionally with `aggregate`), not both",
                    ),
                }
            }
            if let Some(v) = s.factor {
                let parsed = match v.get_ref() {
                    Num::Text(t) => parse_factor(t),
                    n => n.decimal().map(Ratio::whole),
                };
                match parsed {
                    Ok(r) => def.factor = r,
                    Err(e) => self.error(v.span(), format!("factor: {e}")),
                }
            }
            if let Some(v) = s.offset {
                if let Some(d) = self.decimal(&v.span(), "offset", v.get_ref()) {
                    def.offset = d;
                }
            }
            for (k, v) in &s.mutate_map {
                match (parse_decimal(k), v.decimal()) {
                    (Ok(k), Ok(v)) => {
                        def.mutate_map.insert(k.normalize(), v);
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        self.error(span.clone(), format!("mutate_map entry `{k}`: {e}"))
                    }
                }
            }
            if def.mutate == Mutate::Map && def.mutate_map.is_empty() {
                self.error(
                    span.clone(),
                    "mutate = \"MAP\" needs a mutate_map (quantity → quantity to rate)",
                );
            }
            let name = def.rated_name().to_string();
            if seen.insert(name.clone(), ()).is_some() {
                self.error(
                    span,
                    format!(
                        "a second service rated as `{name}`; give one of them another alt_name"
                    ),
                );
                continue;
            }
            self.rules.services.push(def);
        }
    }

    fn modules(&mut self, modules: BTreeMap<String, Spanned<ModuleToml>>) {
        for (name, m) in modules {
            let span = m.span();
            let m = m.into_inner();
            let Some(state) = self.rules.modules.get_mut(&name) else {
                let known: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
                self.error(
                    span,
                    format!("no rating module `{name}`; there are: {}", known.join(", ")),
                );
                continue;
            };
            *state = ModuleState {
                enabled: m.enabled.unwrap_or(state.enabled),
                priority: m.priority.unwrap_or(state.priority),
            };
        }
    }

    fn hashmap(&mut self, hm: HashMapToml) {
        for g in hm.group {
            let span = g.span();
            if let Err(e) = self.rules.hashmap.add_group(&g.get_ref().name) {
                self.error(span, e.to_string());
            }
        }
        for s in hm.service {
            let span = s.span();
            let s = s.into_inner();
            let service_id = match self.rules.hashmap.add_service(&s.name) {
                Ok(svc) => svc.service_id,
                Err(e) => {
                    self.error(span, e.to_string());
                    continue;
                }
            };
            self.mappings(Parent::Service(service_id), s.mapping);
            self.thresholds(Parent::Service(service_id), s.threshold);
            for f in s.field {
                let span = f.span();
                let f = f.into_inner();
                let field_id = match self.rules.hashmap.add_field(service_id, &f.name) {
                    Ok(field) => field.field_id,
                    Err(e) => {
                        self.error(span, e.to_string());
                        continue;
                    }
                };
                self.mappings(Parent::Field(field_id), f.mapping);
                self.thresholds(Parent::Field(field_id), f.threshold);
            }
        }
    }

    fn map_type(&mut self, span: &Range<usize>, t: &str) -> Option<MapType> {
        let parsed = MapType::parse(t);
        if parsed.is_none() {
            self.error(
                span.clone(),
                format!("type `{t}`: use \"flat\" (a cost per unit) or \"rate\" (a multiplier)"),
            );
        }
        parsed
    }

    fn group_id(&mut self, span: &Range<usize>, name: &Option<String>) -> Result<Option<Uuid>, ()> {
        let Some(name) = name else { return Ok(None) };
        match self.rules.hashmap.group_named(name) {
            Some(g) => Ok(Some(g.group_id)),
            None => {
                self.error(
                    span.clone(),
                    format!("no group `{name}`; declare it in a [[hashmap.group]]"),
                );
                Err(())
            }
        }
    }

    fn mappings(&mut self, parent: Parent, mappings: Vec<Spanned<MappingToml>>) {
        for m in mappings {
            let span = m.span();
            let m = m.into_inner();
            let map_type = self.map_type(&span, &m.map_type);
            let cost = self.decimal(&span, "cost", &m.cost);
            let group = self.group_id(&span, &m.group);
            let (Some(map_type), Some(cost), Ok(group_id)) = (map_type, cost, group) else {
                continue;
            };
            let mut mapping = Mapping::new(map_type, cost);
            mapping.value = m.value;
            mapping.group_id = group_id;
            mapping.tenant_id = m.scope;
            mapping.start = m.start;
            mapping.end = m.end;
            mapping.name = m.name;
            mapping.description = m.description;
            match parent {
                Parent::Service(id) => mapping.service_id = Some(id),
                Parent::Field(id) => mapping.field_id = Some(id),
            }
            if let Err(e) = self.rules.hashmap.add_mapping(mapping) {
                self.error(span, rule_message(e));
            }
        }
    }

    fn thresholds(&mut self, parent: Parent, thresholds: Vec<Spanned<ThresholdToml>>) {
        for t in thresholds {
            let span = t.span();
            let t = t.into_inner();
            let map_type = self.map_type(&span, &t.map_type);
            let level = self.decimal(&span, "level", &t.level);
            let cost = self.decimal(&span, "cost", &t.cost);
            let group = self.group_id(&span, &t.group);
            let (Some(map_type), Some(level), Some(cost), Ok(group_id)) =
                (map_type, level, cost, group)
            else {
                continue;
            };
            let mut threshold = Threshold::new(level, map_type, cost);
            threshold.group_id = group_id;
            threshold.tenant_id = t.scope;
            match parent {
                Parent::Service(id) => threshold.service_id = Some(id),
                Parent::Field(id) => threshold.field_id = Some(id),
            }
            if let Err(e) = self.rules.hashmap.add_threshold(threshold) {
                self.error(span, rule_message(e));
            }
        }
    }

    fn scripts(&mut self, scripts: Vec<Spanned<ScriptToml>>, dir: &Path) {
        for s in scripts {
            let span = s.span();
            let s = s.into_inner();
            let text = match (&s.file, &s.source) {
                (Some(_), Some(_)) | (None, None) => {
                    self.error(
                        span,
                        format!("script `{}`: give either `file` or `source`", s.name),
                    );
                    continue;
                }
                (None, Some(src)) => src.clone(),
                (Some(f), None) => {
                    let path = dir.join(f);
                    match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            self.error(
                                span,
                                format!("script `{}`: cannot read {}: {e}", s.name, path.display()),
                            );
                            continue;
                        }
                    }
                }
            };
            if self.rules.scripts.iter().any(|x| x.name == s.name) {
                self.error(span, format!("a second script named `{}`", s.name));
                continue;
            }
            match Script::compile(&s.name, &text) {
                Ok(script) => self.rules.scripts.push(script),
                Err(e) => self.error(span, e),
            }
        }
    }
}

fn rule_message(e: RuleError) -> String {
    match e {
        RuleError::NotFound { kind, id } => format!("no {kind} {id}"),
        RuleError::Conflict(m) | RuleError::Invalid(m) => m,
    }
}

#[cfg(test)]
mod tests;
