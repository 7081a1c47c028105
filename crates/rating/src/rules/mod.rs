//! Every rating rule in one value: the rated services, the modules' state (enabled,
//! priority), the hashmap rules and the scripts; and [`RatingRules::rate`], which runs the
//! enabled modules over a frame.

mod file;
mod ruleset;

pub use file::{load_file, parse_rules, RulesFileError};
pub use ruleset::{ModuleState, RatingRules};
