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
