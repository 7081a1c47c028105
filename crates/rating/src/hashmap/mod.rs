//! The hashmap module: CloudKitty's table-driven rating.
//!
//! Rules hang off **services** (what is rated) and their **fields** (an attribute of the
//! points: a `groupby` or `metadata` key). A **mapping** gives a cost: on a service it applies
//! to every point, on a field to the points whose attribute equals its `value`. A
//! **threshold** gives a cost from a level on: on a service the level is the point's
//! quantity, on a field the attribute read as a number. Both are `flat` (a price per unit)
//! or `rate` (a multiplier), and belong to a **group** (or to the default one).
//!
//! Per point and group: the most expensive matching flat, times every matching rate,
//! times the quantity; only the highest threshold reached applies (a field threshold adds
//! to the flat or multiplies the rate, a service one adds to or multiplies the group's
//! result). Groups are independent and their results add up. A mapping or threshold with a
//! `tenant_id` applies to that scope only, and replaces the unscoped one of the same group
//! and value (or level) there.
//!
//! [`HashMapRules`] holds the rules as CloudKitty's API shows them (ids, parents) and
//! enforces its constraints on every change; [`HashMapRules::compile`] turns them, for one
//! scope at one time, into the form [`CompiledHashMap::rate`] evaluates quickly.

mod eval;
mod rules;
#[cfg(test)]
mod tests;

pub use eval::{CompiledHashMap, Scratch};
pub use rules::{Field, Group, HashMapRules, MapType, Mapping, RuleError, Service, Threshold};
