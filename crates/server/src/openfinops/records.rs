//! What the OpenFinOps mappings share: reading loosely typed JSON, and building resources,
//! points and hourly cost lines of one telemetry post.

use chrono::{DateTime, DurationRound, Utc};
use serde_json::{Map, Value};
use skymeter_model::{
    Batch, ChargeCategory, ChargeFrequency, CollectError, Cost, CostSource, Labels, Point,
    Resource, ResourceRef, Stat, Unit,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The date of the price tables inside the OpenFinOps 0.3.0 agents (their files' date in
/// the release): estimated lines carry it as `x_price_date`.
pub const AGENT_PRICE_DATE: &str = "2025-10-04";

/// A number, whatever JSON type the agent used (they send ints, floats and numeric text).
pub fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// Text, or a number written as text; empty is none.
pub fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The records of one post, built up by a mapping.
pub struct Records {
    pub at: DateTime<Utc>,
    pub task: String,
    pub resources: Vec<Resource>,
    pub points: Vec<Point>,
    pub costs: Vec<Cost>,
    pub errors: Vec<CollectError>,
}

impl Records {
    pub fn new(at: DateTime<Utc>, task: &str) -> Records {
        Records {
            at,
            task: task.to_string(),
            resources: Vec::new(),
            points: Vec::new(),
            costs: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a resource; returns its reference for its points.
    #[allow(clippy::too_many_arguments)]
    pub fn resource(
        &mut self,
        provider: &str,
        account: &str,
        region: &str,
        kind: &str,
        native_type: &str,
        id: &str,
        name: &str,
        tags: Labels,
        attributes: BTreeMap<String, Value>,
    ) -> Arc<ResourceRef> {
        let r = Resource {
            provider: provider.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            kind: kind.to_string(),
            native_type: native_type.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            tags,
            attributes: attributes
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect(),
            observed_at: self.at,
        };
        let reference = Arc::new(r.reference());
        self.resources.push(r);
        reference
    }

    /// Adds a point when the value is there.
    #[allow(clippy::too_many_arguments)]
    pub fn point(
        &mut self,
        resource: &Arc<ResourceRef>,
        metric: &str,
        unit: Unit,
        stat: Stat,
        period_s: u32,
        value: Option<f64>,
        labels: Labels,
    ) {
        let Some(value) = value else { return };
        self.points.push(Point {
            metric: metric.into(),
            unit,
            stat,
            period_s,
            ts: self.at,
            value,
            resource: resource.clone(),
            labels: labels.into(),
        });
    }

    /// An estimated cost line of `hourly` for the UTC hour of the post: several posts in
    /// one hour land on the same store key, the last one's figure wins.
    #[allow(clippy::too_many_arguments)]
    pub fn hourly_cost(
        &mut self,
        r: &ResourceRef,
        provider_name: &str,
        service: &str,
        category: &str,
        resource_type: &str,
        sku: &str,
        hourly: Option<f64>,
    ) {
        let Some(hourly) = hourly.filter(|h| *h >= 0.0) else {
            return;
        };
        let start = self
            .at
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(self.at);
        let mut c = Cost::billed(
            provider_name,
            ChargeCategory::Usage,
            hourly,
            hourly,
            "USD".into(),
            start,
            start + chrono::Duration::hours(1),
            service.to_string(),
        );
        c.x_source = CostSource::Estimated;
        c.x_price_date = Some(AGENT_PRICE_DATE.into());
        c.list_cost = Some(hourly);
        c.service_category = Some(category.into());
        c.charge_frequency = Some(ChargeFrequency::UsageBased);
        c.sub_account_id = (!r.account.is_empty()).then(|| r.account.to_string());
        c.region_id = (!r.region.is_empty()).then(|| r.region.to_string());
        c.resource_id = Some(r.id.to_string());
        c.resource_type = Some(resource_type.into());
        c.sku_id = Some(format!("openfinops/{sku}"));
        c.pricing_quantity = Some(1.0);
        c.pricing_unit = Some("Hours".into());
        c.charge_description = Some(format!(
            "{service}: an hour of {} as the OpenFinOps agent priced it",
            r.id
        ));
        self.costs.push(c);
    }

    /// A failure the agent reported (a service it could not read).
    pub fn error(&mut self, plugin: &str, message: String, context: &[(&str, &str)]) {
        self.errors.push(CollectError {
            plugin: plugin.to_string(),
            message,
            context: context
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            at: self.at,
        });
    }

    pub fn into_batch(self, agent_id: &str, received: DateTime<Utc>) -> Batch {
        let mut b = Batch::new(agent_id, self.task, received);
        b.resources = self.resources;
        b.points = self.points;
        b.costs = self.costs;
        b.errors = self.errors;
        b
    }
}

/// What one kind of entry in an agent's post becomes: the kind and native type skymeter's
/// own collector of that cloud gives the same resource, and the entry's fields renamed to
/// that collector's attribute names (`(field, attribute)`).
pub struct Kind {
    pub kind: &'static str,
    pub native_type: &'static str,
    pub attributes: &'static [(&'static str, &'static str)],
}

impl Kind {
    /// The resource of `entry`, with the attributes its fields give; name = id unless set.
    pub fn of(&'static self, entry: &Map<String, Value>, id: &str) -> Entry {
        Entry {
            kind: self,
            id: id.to_string(),
            name: None,
            region: None,
            tags: Labels::new(),
            attributes: attributes(entry, self.attributes),
        }
    }
}

/// The provider, account and region of an agent's resources, unless an entry has its own.
pub struct Place<'a> {
    pub provider: &'a str,
    pub account: &'a str,
    pub region: &'a str,
}

/// A resource being built from one entry of a post ([`Kind::of`]).
pub struct Entry {
    kind: &'static Kind,
    id: String,
    name: Option<String>,
    region: Option<String>,
    tags: Labels,
    attributes: BTreeMap<String, Value>,
}

impl Entry {
    pub fn name(mut self, name: Option<String>) -> Entry {
        self.name = name;
        self
    }

    /// The entry's own region (a zone's, a bucket's location), instead of the agent's.
    pub fn region(mut self, region: Option<String>) -> Entry {
        self.region = region;
        self
    }

    pub fn tags(mut self, tags: Labels) -> Entry {
        self.tags = tags;
        self
    }

    /// One more attribute, when there is a value.
    pub fn attr(mut self, key: &str, value: Option<Value>) -> Entry {
        if let Some(v) = value {
            self.attributes.insert(key.to_string(), v);
        }
        self
    }

    /// Adds the resource; returns its reference for its points and costs.
    pub fn add(self, place: &Place, out: &mut Records) -> Arc<ResourceRef> {
        let name = self.name.unwrap_or_else(|| self.id.clone());
        out.resource(
            place.provider,
            place.account,
            self.region.as_deref().unwrap_or(place.region),
            self.kind.kind,
            self.kind.native_type,
            &self.id,
            &name,
            self.tags,
            self.attributes,
        )
    }
}

/// How a payload figure is measured: the catalog metric, its unit, stat and period.
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub stat: Stat,
    pub period_s: u32,
}

impl Metric {
    pub const fn new(name: &'static str, unit: Unit, stat: Stat, period_s: u32) -> Metric {
        Metric {
            name,
            unit,
            stat,
            period_s,
        }
    }
}

impl Records {
    /// A point of `metric` without labels, when the value is there.
    pub fn measure(&mut self, r: &Arc<ResourceRef>, metric: &Metric, value: Option<f64>) {
        let m = metric;
        self.point(r, m.name, m.unit, m.stat, m.period_s, value, Labels::new());
    }

    /// The sections of a post (`services.*` of the AWS agent, `metrics.*` of the Azure and
    /// GCP agents): one the agent could not read, or read in part (`"error": …`), becomes a
    /// collection error naming it; `read` gets every section, so that what it did read of a
    /// partly read one is kept.
    pub fn sections(
        &mut self,
        sections: Option<&Map<String, Value>>,
        agent: &str,
        mut read: impl FnMut(&str, &Value, &mut Records),
    ) {
        for (name, section) in sections.into_iter().flatten() {
            if let Some(e) = text(section.get("error")) {
                let plugin = self.task.clone();
                self.error(
                    &plugin,
                    format!("the OpenFinOps {agent} agent could not read {name}: {e}"),
                    &[("service", name)],
                );
            }
            read(name, section, self);
        }
    }

    /// A post of an agent that wraps its sections in `metrics` (Azure, GCP): a collection
    /// that failed as a whole (`metrics: {"error": …}`) and the agent's events become
    /// collection errors; then [`Records::sections`] over `metrics`.
    pub fn metrics_post(
        &mut self,
        body: &Value,
        agent: &str,
        read: impl FnMut(&str, &Value, &mut Records),
    ) {
        let metrics = &body["metrics"];
        if let Some(e) = text(metrics.get("error")) {
            let plugin = self.task.clone();
            self.error(
                &plugin,
                format!("the OpenFinOps {agent} agent could not collect: {e}"),
                &[],
            );
        }
        self.events(body, agent);
        self.sections(metrics.as_object(), agent, read);
    }

    /// The agent's own events of type `collection_error` (a collection cycle that failed;
    /// the Azure, GCP and generic agents keep them until a post is answered 200).
    pub fn events(&mut self, body: &Value, agent: &str) {
        let events = body.get("events").and_then(Value::as_array);
        for e in events.into_iter().flatten() {
            if e.get("type").and_then(Value::as_str) != Some("collection_error") {
                continue;
            }
            let Some(error) = text(e.get("error")) else {
                continue;
            };
            let plugin = self.task.clone();
            self.error(
                &plugin,
                format!("a collection cycle of the OpenFinOps {agent} agent failed: {error}"),
                &[],
            );
        }
    }
}

/// The entries of `section[key]`: see [`entries`].
pub fn list<'a>(section: &'a Value, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    entries(section.get(key))
}

/// The objects of a JSON array, less those the agent could not read (they carry `error`
/// and zeros: not a measurement).
pub fn entries(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|o| !o.contains_key("error"))
}

/// Text in lower case (`RUNNING` → `running`), as skymeter's collectors write states.
pub fn lower(v: Option<&Value>) -> Option<Value> {
    text(v).map(|s| Value::String(s.to_ascii_lowercase()))
}

/// `key → value` attributes from an object's fields, renamed: `(field, attribute)`.
pub fn attributes(obj: &Map<String, Value>, fields: &[(&str, &str)]) -> BTreeMap<String, Value> {
    fields
        .iter()
        .filter_map(|(f, a)| obj.get(*f).map(|v| (a.to_string(), v.clone())))
        .collect()
}

/// String tags from a JSON object of tags.
pub fn tags(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| text(Some(v)).map(|t| (k.clone(), t)))
                .collect()
        })
        .unwrap_or_default()
}
