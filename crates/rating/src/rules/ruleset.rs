//! [`RatingRules`]: every rule in one value, and the run of the enabled modules.

use crate::error::{RateError, MODULES};
use crate::frame::DataFrame;
use crate::hashmap::{HashMapRules, Scratch};
use crate::script::{Script, ScriptLimits};
use crate::service::ServiceDef;
use std::collections::BTreeMap;

/// A module's switch and order. Higher priority runs first, as in CloudKitty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleState {
    pub enabled: bool,
    pub priority: i32,
}

#[derive(Debug, Clone)]
pub struct RatingRules {
    pub services: Vec<ServiceDef>,
    /// Module name (see [`MODULES`]) → its state.
    pub modules: BTreeMap<String, ModuleState>,
    pub hashmap: HashMapRules,
    /// Run one after the other, in this order, each on the frame the previous one left.
    pub scripts: Vec<Script>,
    pub script_limits: ScriptLimits,
}

impl Default for RatingRules {
    fn default() -> Self {
        let modules = MODULES
            .iter()
            .map(|m| {
                (
                    m.name.to_string(),
                    ModuleState {
                        enabled: m.name == "hashmap",
                        priority: 1,
                    },
                )
            })
            .collect();
        RatingRules {
            services: Vec::new(),
            modules,
            hashmap: HashMapRules::default(),
            scripts: Vec::new(),
            script_limits: ScriptLimits::default(),
        }
    }
}

impl RatingRules {
    pub fn module(&self, name: &str) -> Option<ModuleState> {
        self.modules.get(name).copied()
    }

    /// The enabled modules, first to run first: priority high to low, then by name.
    pub fn run_order(&self) -> Vec<&str> {
        let mut on: Vec<(&str, i32)> = self
            .modules
            .iter()
            .filter(|(_, s)| s.enabled)
            .map(|(n, s)| (n.as_str(), s.priority))
            .collect();
        on.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        on.into_iter().map(|(n, _)| n).collect()
    }

    /// Rates `frame`, the usage of `scope` (the tenant scoped rules apply to) over its
    /// period. Prices start from what the frame holds; the hashmap adds to them, scripts
    /// set them.
    pub fn rate(&self, frame: DataFrame, scope: Option<&str>) -> Result<DataFrame, RateError> {
        let begin = frame.period.begin;
        let mut out = frame;
        for module in self.run_order() {
            match module {
                "hashmap" => {
                    let compiled = self.hashmap.compile(scope, begin);
                    let mut scratch = Scratch::default();
                    for (service, points) in out.usage.iter_mut() {
                        if !compiled.rates(service) {
                            continue;
                        }
                        for p in points.iter_mut() {
                            let add = compiled.price(service, p, &mut scratch)?;
                            p.rating.price = p.rating.price.checked_add(add).ok_or_else(|| {
                                RateError::Overflow {
                                    service: service.clone(),
                                    qty: p.vol.qty,
                                }
                            })?;
                        }
                    }
                }
                "script" => {
                    for s in &self.scripts {
                        out = s.run(&out, &self.script_limits)?;
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
