//! Evaluating hashmap rules. CloudKitty walks dictionaries of groups per point; here the
//! rules of one scope are flattened once per period into per-service lists and a
//! value → rules table per field, so that a point costs one lookup per field and a few
//! decimal operations per matching group.

use super::rules::{HashMapRules, MapType, Mapping, Threshold};
use crate::decimal::parse_decimal;
use crate::error::RateError;
use crate::frame::DataPoint;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

impl HashMapRules {
    /// The rules in force for `scope` at `at` (the start of the period being rated), in
    /// the form rating evaluates.
    pub fn compile(&self, scope: Option<&str>, at: DateTime<Utc>) -> CompiledHashMap {
        compile(self, scope, at)
    }
}

/// Group index 0 is CloudKitty's `_DEFAULT_` (rules in no group).
type GroupIx = usize;

#[derive(Debug, Clone, Copy)]
struct Rule {
    group: GroupIx,
    map_type: MapType,
    cost: Decimal,
}

#[derive(Debug, Clone, Copy)]
struct Level {
    group: GroupIx,
    level: Decimal,
    map_type: MapType,
    cost: Decimal,
}

#[derive(Debug, Default)]
struct FieldRules {
    name: String,
    /// Fx: attribute values are short strings, looked up once per field per point; SipHash's
    /// flooding resistance buys nothing against rules the operator wrote.
    by_value: FxHashMap<String, Vec<Rule>>,
    thresholds: Vec<Level>,
}

#[derive(Debug, Default)]
struct ServiceRules {
    mappings: Vec<Rule>,
    thresholds: Vec<Level>,
    fields: Vec<FieldRules>,
}

/// The hashmap rules of one scope at one time, ready to rate points.
#[derive(Debug, Default)]
pub struct CompiledHashMap {
    groups: usize,
    services: FxHashMap<String, ServiceRules>,
}

fn compile(rules: &HashMapRules, scope: Option<&str>, at: DateTime<Utc>) -> CompiledHashMap {
    let group_ix: HashMap<Uuid, GroupIx> = rules
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.group_id, i + 1))
        .collect();
    let group_of = |g: Option<Uuid>| g.and_then(|g| group_ix.get(&g).copied()).unwrap_or(0);
    // Unscoped rules first, then the scope's own, so that the scope's replace the
    // unscoped ones with the same key, as CloudKitty's dict updates do.
    let applies = |tenant: &Option<String>, pass: u8| match (tenant, pass) {
        (None, 0) => true,
        (Some(t), 1) => Some(t.as_str()) == scope,
        _ => false,
    };
    let mut out = CompiledHashMap {
        groups: rules.groups.len() + 1,
        services: FxHashMap::default(),
    };
    for service in &rules.services {
        let mut svc = ServiceRules::default();
        let mut maps: BTreeMap<GroupIx, Rule> = BTreeMap::new();
        let mut levels: BTreeMap<(GroupIx, Decimal), Level> = BTreeMap::new();
        for pass in 0..2 {
            for m in rules.mappings.iter().filter(|m| {
                m.service_id == Some(service.service_id)
                    && applies(&m.tenant_id, pass)
                    && m.in_force(at)
            }) {
                let r = rule(m, group_of(m.group_id));
                maps.insert(r.group, r);
            }
            for t in rules
                .thresholds
                .iter()
                .filter(|t| t.service_id == Some(service.service_id) && applies(&t.tenant_id, pass))
            {
                let l = level(t, group_of(t.group_id));
                levels.insert((l.group, l.level), l);
            }
        }
        svc.mappings = maps.into_values().collect();
        svc.thresholds = levels.into_values().collect();
        for field in rules
            .fields
            .iter()
            .filter(|f| f.service_id == service.service_id)
        {
            let mut maps: BTreeMap<(String, GroupIx), Rule> = BTreeMap::new();
            let mut levels: BTreeMap<(GroupIx, Decimal), Level> = BTreeMap::new();
            for pass in 0..2 {
                for m in rules.mappings.iter().filter(|m| {
                    m.field_id == Some(field.field_id)
                        && applies(&m.tenant_id, pass)
                        && m.in_force(at)
                }) {
                    let r = rule(m, group_of(m.group_id));
                    maps.insert((m.value.clone().unwrap_or_default(), r.group), r);
                }
                for t in rules
                    .thresholds
                    .iter()
                    .filter(|t| t.field_id == Some(field.field_id) && applies(&t.tenant_id, pass))
                {
                    let l = level(t, group_of(t.group_id));
                    levels.insert((l.group, l.level), l);
                }
            }
            let mut fr = FieldRules {
                name: field.name.clone(),
                ..FieldRules::default()
            };
            for ((value, _), r) in maps {
                fr.by_value.entry(value).or_default().push(r);
            }
            fr.thresholds = levels.into_values().collect();
            if !fr.by_value.is_empty() || !fr.thresholds.is_empty() {
                svc.fields.push(fr);
            }
        }
        out.services.insert(service.name.clone(), svc);
    }
    out
}

fn rule(m: &Mapping, group: GroupIx) -> Rule {
    Rule {
        group,
        map_type: m.map_type,
        cost: m.cost,
    }
}

fn level(t: &Threshold, group: GroupIx) -> Level {
    Level {
        group,
        level: t.level,
        map_type: t.map_type,
        cost: t.cost,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Service,
    Field,
}

/// One group's running result for one point (CloudKitty's `_res[group]`).
#[derive(Debug, Clone, Copy)]
struct GroupResult {
    used: bool,
    flat: Decimal,
    rate: Decimal,
    threshold_level: Decimal,
    threshold: Option<(MapType, Decimal, Reach)>,
}

const FRESH: GroupResult = GroupResult {
    used: false,
    flat: Decimal::ZERO,
    rate: Decimal::ONE,
    threshold_level: Decimal::NEGATIVE_ONE,
    threshold: None,
};

/// Scratch space reused from point to point.
#[derive(Debug, Default)]
pub struct Scratch {
    results: Vec<GroupResult>,
    touched: Vec<GroupIx>,
}

impl CompiledHashMap {
    /// Whether any rule names `service`.
    pub fn rates(&self, service: &str) -> bool {
        self.services.contains_key(service)
    }

    /// The price the rules put on `point` of `service` (0 when no rule matches), to add to
    /// the point's price.
    pub fn price(
        &self,
        service: &str,
        point: &DataPoint,
        scratch: &mut Scratch,
    ) -> Result<Decimal, RateError> {
        let Some(svc) = self.services.get(service) else {
            return Ok(Decimal::ZERO);
        };
        if scratch.results.len() != self.groups {
            scratch.results = vec![FRESH; self.groups];
        }
        let qty = point.vol.qty;
        let res = &mut scratch.results;
        let touched = &mut scratch.touched;
        for r in &svc.mappings {
            update_mapping(res, touched, r);
        }
        for l in &svc.thresholds {
            if qty >= l.level {
                update_threshold(res, touched, l, Reach::Service);
            }
        }
        for f in &svc.fields {
            let Some(value) = point.desc(&f.name) else {
                continue;
            };
            if let Some(rules) = f.by_value.get(value) {
                for r in rules {
                    update_mapping(res, touched, r);
                }
            }
            if !f.thresholds.is_empty() {
                // CloudKitty reads the attribute as a number here and fails the whole
                // period when it is not one; a non-numeric value simply reaches no level.
                if let Ok(v) = parse_decimal(value) {
                    for l in &f.thresholds {
                        if v >= l.level {
                            update_threshold(res, touched, l, Reach::Field);
                        }
                    }
                }
            }
        }
        let mut price = Decimal::ZERO;
        let mut failed = false;
        for &g in touched.iter() {
            let r = res[g];
            res[g] = FRESH;
            match group_price(&r, qty) {
                Some(p) => match price.checked_add(p) {
                    Some(sum) => price = sum,
                    None => failed = true,
                },
                None => failed = true,
            }
        }
        touched.clear();
        if failed {
            return Err(RateError::Overflow {
                service: service.to_string(),
                qty,
            });
        }
        Ok(price)
    }
}

fn touch(res: &mut [GroupResult], touched: &mut Vec<GroupIx>, g: GroupIx) {
    if !res[g].used {
        res[g].used = true;
        touched.push(g);
    }
}

fn update_mapping(res: &mut [GroupResult], touched: &mut Vec<GroupIx>, r: &Rule) {
    touch(res, touched, r.group);
    let g = &mut res[r.group];
    match r.map_type {
        MapType::Rate => g.rate = g.rate.checked_mul(r.cost).unwrap_or(Decimal::MAX),
        MapType::Flat => {
            if r.cost > g.flat {
                g.flat = r.cost;
            }
        }
    }
}

fn update_threshold(res: &mut [GroupResult], touched: &mut Vec<GroupIx>, l: &Level, reach: Reach) {
    touch(res, touched, l.group);
    let g = &mut res[l.group];
    if l.level > g.threshold_level {
        g.threshold_level = l.level;
        g.threshold = Some((l.map_type, l.cost, reach));
    }
}

/// CloudKitty's `add_rating_informations` for one group: a field threshold adds to the
/// flat or multiplies the rate, then rate × flat × quantity, then a service threshold adds
/// to or multiplies that. `None` on overflow.
fn group_price(r: &GroupResult, qty: Decimal) -> Option<Decimal> {
    let mut flat = r.flat;
    let mut rate = r.rate;
    if let Some((t, cost, Reach::Field)) = r.threshold {
        match t {
            MapType::Flat => flat = flat.checked_add(cost)?,
            MapType::Rate => rate = rate.checked_mul(cost)?,
        }
    }
    let mut p = rate.checked_mul(flat)?.checked_mul(qty)?;
    if let Some((t, cost, Reach::Service)) = r.threshold {
        match t {
            MapType::Flat => p = p.checked_add(cost)?,
            MapType::Rate => p = p.checked_mul(cost)?,
        }
    }
    Some(p)
}
