//! The hashmap rules as CloudKitty's API shows them, with its constraints held on each
//! change (see the module docs of `hashmap`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `flat`: a cost per unit; `rate`: a multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapType {
    Flat,
    Rate,
}

impl MapType {
    pub fn parse(s: &str) -> Option<MapType> {
        match s {
            "flat" => Some(MapType::Flat),
            "rate" => Some(MapType::Rate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub service_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub field_id: Uuid,
    pub service_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub group_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub mapping_id: Uuid,
    /// The attribute value a field mapping matches; none on a service mapping.
    pub value: Option<String>,
    pub map_type: MapType,
    pub cost: Decimal,
    pub service_id: Option<Uuid>,
    pub field_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    /// The scope it is limited to; every scope when none.
    pub tenant_id: Option<String>,
    /// In force from `start` (always when none) until before `end` (for ever when none).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub threshold_id: Uuid,
    pub level: Decimal,
    pub map_type: MapType,
    pub cost: Decimal,
    pub service_id: Option<Uuid>,
    pub field_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub tenant_id: Option<String>,
}

/// A rule change the rules refuse, in words an API answer or a config error can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// Every hashmap rule, with CloudKitty's constraints held on each change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashMapRules {
    pub services: Vec<Service>,
    pub fields: Vec<Field>,
    pub groups: Vec<Group>,
    pub mappings: Vec<Mapping>,
    pub thresholds: Vec<Threshold>,
}

impl Mapping {
    /// A mapping of `cost` with no parent yet: set `service_id` or `field_id` (and
    /// `value` for a field).
    pub fn new(map_type: MapType, cost: Decimal) -> Mapping {
        Mapping {
            mapping_id: Uuid::new_v4(),
            value: None,
            map_type,
            cost,
            service_id: None,
            field_id: None,
            group_id: None,
            tenant_id: None,
            start: None,
            end: None,
            name: None,
            description: None,
        }
    }

    pub(super) fn in_force(&self, at: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at < e)
    }
}

impl Threshold {
    pub fn new(level: Decimal, map_type: MapType, cost: Decimal) -> Threshold {
        Threshold {
            threshold_id: Uuid::new_v4(),
            level,
            map_type,
            cost,
            service_id: None,
            field_id: None,
            group_id: None,
            tenant_id: None,
        }
    }
}

impl HashMapRules {
    pub fn service(&self, id: Uuid) -> Result<&Service, RuleError> {
        self.services
            .iter()
            .find(|s| s.service_id == id)
            .ok_or_else(|| not_found("service", id))
    }

    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn field(&self, id: Uuid) -> Result<&Field, RuleError> {
        self.fields
            .iter()
            .find(|f| f.field_id == id)
            .ok_or_else(|| not_found("field", id))
    }

    pub fn field_named(&self, service_id: Uuid, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.service_id == service_id && f.name == name)
    }

    pub fn group(&self, id: Uuid) -> Result<&Group, RuleError> {
        self.groups
            .iter()
            .find(|g| g.group_id == id)
            .ok_or_else(|| not_found("group", id))
    }

    pub fn group_named(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn add_service(&mut self, name: &str) -> Result<Service, RuleError> {
        check_name("service", name)?;
        if self.service_named(name).is_some() {
            return Err(RuleError::Conflict(format!(
                "service `{name}` already exists"
            )));
        }
        let s = Service {
            service_id: Uuid::new_v4(),
            name: name.to_string(),
        };
        self.services.push(s.clone());
        Ok(s)
    }

    pub fn add_field(&mut self, service_id: Uuid, name: &str) -> Result<Field, RuleError> {
        check_name("field", name)?;
        let service = self.service(service_id)?.name.clone();
        if self.field_named(service_id, name).is_some() {
            return Err(RuleError::Conflict(format!(
                "field `{name}` already exists in service `{service}`"
            )));
        }
        let f = Field {
            field_id: Uuid::new_v4(),
            service_id,
            name: name.to_string(),
        };
        self.fields.push(f.clone());
        Ok(f)
    }

    pub fn add_group(&mut self, name: &str) -> Result<Group, RuleError> {
        check_name("group", name)?;
        if self.group_named(name).is_some() {
            return Err(RuleError::Conflict(format!(
                "group `{name}` already exists"
            )));
        }
        let g = Group {
            group_id: Uuid::new_v4(),
            name: name.to_string(),
        };
        self.groups.push(g.clone());
        Ok(g)
    }

    /// Adds `m` after CloudKitty's checks: one parent, a value exactly on field mappings,
    /// the parent and group exist, and no other mapping of the same parent, value, group
    /// and scope overlaps it in time.
    pub fn add_mapping(&mut self, m: Mapping) -> Result<Mapping, RuleError> {
        self.check_mapping(&m, None)?;
        self.mappings.push(m.clone());
        Ok(m)
    }

    /// Replaces the mapping with `m`'s id, under the same checks as adding it.
    pub fn update_mapping(&mut self, m: Mapping) -> Result<Mapping, RuleError> {
        let at = index_of(&self.mappings, "mapping", m.mapping_id, |x| x.mapping_id)?;
        self.check_mapping(&m, Some(m.mapping_id))?;
        self.mappings[at] = m.clone();
        Ok(m)
    }

    fn check_mapping(&self, m: &Mapping, replacing: Option<Uuid>) -> Result<(), RuleError> {
        self.check_parent("mapping", m.service_id, m.field_id, m.group_id, m.cost)?;
        if m.service_id.is_some() && m.value.is_some() {
            return Err(invalid(
                "a service mapping has no value (values belong to field mappings)",
            ));
        }
        if m.field_id.is_some() && m.value.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("a field mapping needs the value it matches"));
        }
        if let (Some(s), Some(e)) = (m.start, m.end) {
            if e <= s {
                return Err(invalid("a mapping's end must come after its start"));
            }
        }
        let clash = self.mappings.iter().find(|x| {
            Some(x.mapping_id) != replacing
                && x.service_id == m.service_id
                && x.field_id == m.field_id
                && x.value == m.value
                && x.group_id == m.group_id
                && x.tenant_id == m.tenant_id
                && overlaps(x, m)
        });
        if let Some(x) = clash {
            return Err(RuleError::Conflict(format!(
                "mapping {} already rates {} in this group and scope over an overlapping period",
                x.mapping_id,
                match &m.value {
                    Some(v) => format!("value `{v}`"),
                    None => "this service".into(),
                }
            )));
        }
        Ok(())
    }

    pub fn add_threshold(&mut self, t: Threshold) -> Result<Threshold, RuleError> {
        self.check_threshold(&t, None)?;
        self.thresholds.push(t.clone());
        Ok(t)
    }

    pub fn update_threshold(&mut self, t: Threshold) -> Result<Threshold, RuleError> {
        let at = index_of(&self.thresholds, "threshold", t.threshold_id, |x| {
            x.threshold_id
        })?;
        self.check_threshold(&t, Some(t.threshold_id))?;
        self.thresholds[at] = t.clone();
        Ok(t)
    }

    fn check_threshold(&self, t: &Threshold, replacing: Option<Uuid>) -> Result<(), RuleError> {
        self.check_parent("threshold", t.service_id, t.field_id, t.group_id, t.cost)?;
        let clash = self.thresholds.iter().find(|x| {
            Some(x.threshold_id) != replacing
                && x.service_id == t.service_id
                && x.field_id == t.field_id
                && x.level == t.level
                && x.tenant_id == t.tenant_id
        });
        if let Some(x) = clash {
            return Err(RuleError::Conflict(format!(
                "threshold {} already starts at level {} on this parent and scope",
                x.threshold_id, t.level
            )));
        }
        Ok(())
    }

    /// What mappings and thresholds both need: exactly one parent, a service or a field,
    /// that exists; a group that exists; a cost CloudKitty can store.
    fn check_parent(
        &self,
        what: &str,
        service_id: Option<Uuid>,
        field_id: Option<Uuid>,
        group_id: Option<Uuid>,
        cost: Decimal,
    ) -> Result<(), RuleError> {
        match (service_id, field_id) {
            (Some(_), Some(_)) => {
                return Err(invalid(&format!(
                    "a {what} has one parent: a service or a field, not both"
                )))
            }
            (None, None) => {
                return Err(invalid(&format!(
                    "a {what} needs a parent: a service_id or a field_id"
                )))
            }
            (Some(s), None) => {
                self.service(s)?;
            }
            (None, Some(f)) => {
                self.field(f)?;
            }
        }
        if let Some(g) = group_id {
            self.group(g)?;
        }
        check_cost(cost)
    }

    /// Deletes a service with its fields, mappings and thresholds.
    pub fn delete_service(&mut self, id: Uuid) -> Result<(), RuleError> {
        self.service(id)?;
        let fields: Vec<Uuid> = self
            .fields
            .iter()
            .filter(|f| f.service_id == id)
            .map(|f| f.field_id)
            .collect();
        self.services.retain(|s| s.service_id != id);
        self.fields.retain(|f| f.service_id != id);
        let gone = |s: Option<Uuid>, f: Option<Uuid>| {
            s == Some(id) || f.is_some_and(|f| fields.contains(&f))
        };
        self.mappings.retain(|m| !gone(m.service_id, m.field_id));
        self.thresholds.retain(|t| !gone(t.service_id, t.field_id));
        Ok(())
    }

    /// Deletes a field with its mappings and thresholds.
    pub fn delete_field(&mut self, id: Uuid) -> Result<(), RuleError> {
        self.field(id)?;
        self.fields.retain(|f| f.field_id != id);
        self.mappings.retain(|m| m.field_id != Some(id));
        self.thresholds.retain(|t| t.field_id != Some(id));
        Ok(())
    }

    /// Deletes a group. Its mappings and thresholds go with it when `recursive`, else they
    /// move to the default group (CloudKitty's `ON DELETE SET NULL`).
    pub fn delete_group(&mut self, id: Uuid, recursive: bool) -> Result<(), RuleError> {
        self.group(id)?;
        self.groups.retain(|g| g.group_id != id);
        if recursive {
            self.mappings.retain(|m| m.group_id != Some(id));
            self.thresholds.retain(|t| t.group_id != Some(id));
        } else {
            for m in self.mappings.iter_mut().filter(|m| m.group_id == Some(id)) {
                m.group_id = None;
            }
            for t in self
                .thresholds
                .iter_mut()
                .filter(|t| t.group_id == Some(id))
            {
                t.group_id = None;
            }
        }
        Ok(())
    }

    pub fn delete_mapping(&mut self, id: Uuid) -> Result<(), RuleError> {
        let at = index_of(&self.mappings, "mapping", id, |m| m.mapping_id)?;
        self.mappings.remove(at);
        Ok(())
    }

    pub fn delete_threshold(&mut self, id: Uuid) -> Result<(), RuleError> {
        let at = index_of(&self.thresholds, "threshold", id, |t| t.threshold_id)?;
        self.thresholds.remove(at);
        Ok(())
    }
}

/// Where the rule with `id` is, or `NotFound` naming `kind`.
fn index_of<T>(
    items: &[T],
    kind: &'static str,
    id: Uuid,
    id_of: impl Fn(&T) -> Uuid,
) -> Result<usize, RuleError> {
    items
        .iter()
        .position(|x| id_of(x) == id)
        .ok_or_else(|| not_found(kind, id))
}

fn overlaps(a: &Mapping, b: &Mapping) -> bool {
    let starts_before_end = |x: &Mapping, y: &Mapping| match (x.start, y.end) {
        (Some(s), Some(e)) => s < e,
        _ => true,
    };
    starts_before_end(a, b) && starts_before_end(b, a)
}

fn check_name(kind: &str, name: &str) -> Result<(), RuleError> {
    if name.trim().is_empty() {
        return Err(invalid(&format!("a {kind} needs a name")));
    }
    if name.len() > 255 {
        return Err(invalid(&format!(
            "a {kind} name has at most 255 characters"
        )));
    }
    Ok(())
}

/// CloudKitty stores costs as NUMERIC(40, 28): at most 12 digits before the point.
fn check_cost(cost: Decimal) -> Result<(), RuleError> {
    if cost.abs() >= Decimal::from(1_000_000_000_000u64) {
        return Err(invalid(&format!(
            "cost {cost} is too large (at most 12 digits before the decimal point)"
        )));
    }
    Ok(())
}

fn not_found(kind: &'static str, id: Uuid) -> RuleError {
    RuleError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn invalid(msg: &str) -> RuleError {
    RuleError::Invalid(msg.to_string())
}
