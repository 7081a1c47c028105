//! The script module: rating rules tables cannot express, written in Rhai (an embedded
//! language made for this: sandboxed, no file, network or process access exists in it).
//!
//! A script sees what a CloudKitty pyscript sees: a variable `data` holding the period's
//! frame, `#{ period: #{ begin, end }, usage: #{ <service>: [ #{ vol: #{ unit, qty },
//! rating: #{ price }, groupby: #{..}, metadata: #{..} } ] } }`, and leaves the rated frame
//! in `data`. Every number with a decimal point is a decimal (the engine has no floats), so
//! `item.vol.qty * 0.35` is exact. Functions see the script's constants as `global::NAME`. A script runs under bounds: operations, wall time,
//! string, array and map sizes, call depth (`import` finds nothing); past any of them it fails with a message that
//! names the bound, and the period is not rated (it is retried).
//!
//! ```rhai
//! let flavors = #{ "m1.micro": 0.65, "m1.nano": 0.35 };
//! if "instance" in data.usage {
//!     // `for item in array` walks copies: change the frame by index.
//!     for i in 0..data.usage.instance.len() {
//!         let item = data.usage.instance[i];
//!         let price = flavors[item.metadata.flavor_name] ?? 0;
//!         data.usage.instance[i].rating.price = item.vol.qty * price;
//!     }
//! }
//! ```

use crate::error::RateError;
use crate::frame::{Attrs, DataFrame, DataPoint, Rating, Volume};
use rhai::{Array, Dynamic, Engine, Map, Scope, AST};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bounds a script runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Rhai operations (roughly: expressions evaluated) per run, per point of the frame.
    pub operations_per_point: u64,
    /// Operations per run whatever the frame's size.
    pub operations_base: u64,
    pub wall_time: Duration,
    /// Memory, as Rhai counts it: a value's strings (bytes), array items and map entries,
    /// summed over everything it holds. Each bound is a base plus an allowance per point,
    /// since `data` itself grows with the frame.
    pub data_base: DataSize,
    pub data_per_point: DataSize,
    pub max_call_depth: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            operations_per_point: 10_000,
            operations_base: 1_000_000,
            wall_time: Duration::from_secs(10),
            data_base: DataSize {
                string_bytes: 16 << 20,
                array_items: 1_000_000,
                map_entries: 1_000_000,
            },
            data_per_point: DataSize {
                string_bytes: 2048,
                array_items: 16,
                map_entries: 64,
            },
            max_call_depth: 64,
        }
    }
}

/// Sizes of script data (see [`ScriptLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSize {
    pub string_bytes: usize,
    pub array_items: usize,
    pub map_entries: usize,
}

impl DataSize {
    fn for_points(base: DataSize, per_point: DataSize, points: usize) -> DataSize {
        let grow = |b: usize, p: usize| b.saturating_add(p.saturating_mul(points));
        DataSize {
            string_bytes: grow(base.string_bytes, per_point.string_bytes),
            array_items: grow(base.array_items, per_point.array_items),
            map_entries: grow(base.map_entries, per_point.map_entries),
        }
    }
}

/// One compiled script.
#[derive(Clone)]
pub struct Script {
    pub name: String,
    pub source: Arc<str>,
    ast: Arc<AST>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("name", &self.name).finish()
    }
}

impl Script {
    /// Compiles `source`; a syntax error names the line and column.
    pub fn compile(name: &str, source: &str) -> Result<Script, String> {
        let limits = ScriptLimits::default();
        let engine = engine(&limits, limits.data_base, None);
        let ast = engine.compile(source).map_err(|e| {
            let pos = e.position();
            match (pos.line(), pos.position()) {
                (Some(l), Some(c)) => {
                    format!("script `{name}`, line {l}, column {c}: {}", e.err_type())
                }
                (Some(l), None) => format!("script `{name}`, line {l}: {}", e.err_type()),
                _ => format!("script `{name}`: {}", e.err_type()),
            }
        })?;
        Ok(Script {
            name: name.to_string(),
            source: Arc::from(source),
            ast: Arc::new(ast),
        })
    }

    /// Runs the script over `frame` and returns the frame it leaves in `data`.
    pub fn run(&self, frame: &DataFrame, limits: &ScriptLimits) -> Result<DataFrame, RateError> {
        let points = frame.len() as u64;
        let ops = limits
            .operations_base
            .saturating_add(limits.operations_per_point.saturating_mul(points));
        let data = DataSize::for_points(limits.data_base, limits.data_per_point, frame.len());
        let mut engine = engine(limits, data, Some(Instant::now() + limits.wall_time));
        engine.set_max_operations(ops);
        let mut scope = Scope::new();
        scope.push("data", frame_to_dynamic(frame));
        let fail = |message: String| RateError::Script {
            script: self.name.clone(),
            message,
        };
        engine
            .run_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| fail(describe_eval_error(&e, ops, limits)))?;
        let data = scope
            .get_value::<Dynamic>("data")
            .ok_or_else(|| fail("the script removed the variable `data`".into()))?;
        frame_from_dynamic(frame, data).map_err(fail)
    }
}

fn engine(limits: &ScriptLimits, data: DataSize, deadline: Option<Instant>) -> Engine {
    let mut e = Engine::new();
    e.set_max_call_levels(limits.max_call_depth);
    e.set_max_expr_depths(128, 64);
    e.set_max_string_size(data.string_bytes);
    e.set_max_array_size(data.array_items);
    e.set_max_map_size(data.map_entries);
    // `import` would read script files from disk: resolve nothing.
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    // `eval` would run text built at run time; nothing needs it.
    e.disable_symbol("eval");
    // `print` and `debug` go to the server's log, never to its stdout.
    e.on_print(|s| tracing::debug!(target: "skymeter::rating::script", "{s}"));
    e.on_debug(|s, _, pos| tracing::debug!(target: "skymeter::rating::script", "{pos:?}: {s}"));
    if let Some(deadline) = deadline {
        e.on_progress(move |ops| {
            // Checking the clock every operation would cost more than the script.
            if ops % 4096 == 0 && Instant::now() >= deadline {
                Some(Dynamic::from("wall time"))
            } else {
                None
            }
        });
    }
    e
}

fn describe_eval_error(e: &rhai::EvalAltResult, ops: u64, limits: &ScriptLimits) -> String {
    use rhai::EvalAltResult as E;
    let at = e.position();
    let place = match at.line() {
        Some(l) => format!("line {l}: "),
        None => String::new(),
    };
    match e {
        E::ErrorTooManyOperations(_) => format!(
            "{place}stopped after {ops} operations (the bound for this frame: {} + {} per point)",
            limits.operations_base, limits.operations_per_point
        ),
        E::ErrorTerminated(..) => format!(
            "{place}stopped after running {:?} (the wall-time bound)",
            limits.wall_time
        ),
        E::ErrorDataTooLarge(what, _) => format!("{place}{what} grew past its bound"),
        E::ErrorStackOverflow(_) => format!(
            "{place}functions nested deeper than {} calls",
            limits.max_call_depth
        ),
        other => format!("{place}{other}"),
    }
}

fn attrs_to_map(a: &Attrs) -> Map {
    a.iter()
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.to_string())))
        .collect()
}

fn frame_to_dynamic(frame: &DataFrame) -> Dynamic {
    let mut period = Map::new();
    period.insert(
        "begin".into(),
        Dynamic::from(frame.period.begin.to_rfc3339()),
    );
    period.insert("end".into(), Dynamic::from(frame.period.end.to_rfc3339()));
    let mut usage = Map::new();
    for (service, points) in &frame.usage {
        let items: Array = points
            .iter()
            .map(|p| {
                let mut vol = Map::new();
                vol.insert("unit".into(), Dynamic::from(p.vol.unit.clone()));
                vol.insert("qty".into(), Dynamic::from_decimal(p.vol.qty));
                let mut rating = Map::new();
                rating.insert("price".into(), Dynamic::from_decimal(p.rating.price));
                let mut item = Map::new();
                item.insert("vol".into(), Dynamic::from_map(vol));
                item.insert("rating".into(), Dynamic::from_map(rating));
                item.insert(
                    "groupby".into(),
                    Dynamic::from_map(attrs_to_map(&p.groupby)),
                );
                item.insert(
                    "metadata".into(),
                    Dynamic::from_map(attrs_to_map(&p.metadata)),
                );
                Dynamic::from_map(item)
            })
            .collect();
        usage.insert(service.as_str().into(), Dynamic::from_array(items));
    }
    let mut data = Map::new();
    data.insert("period".into(), Dynamic::from_map(period));
    data.insert("usage".into(), Dynamic::from_map(usage));
    Dynamic::from_map(data)
}

/// Reads the frame a script left behind. The period stays the one rated (a script
/// cannot move usage to another period); every point must keep CloudKitty's shape.
fn frame_from_dynamic(input: &DataFrame, data: Dynamic) -> Result<DataFrame, String> {
    let data = data
        .try_cast::<Map>()
        .ok_or("`data` is no longer a map; leave the frame in `data`")?;
    let usage = data
        .get("usage")
        .cloned()
        .and_then(|u| u.try_cast::<Map>())
        .ok_or("`data.usage` is missing or not a map")?;
    let mut out = DataFrame::new(input.period.begin, input.period.end);
    for (service, items) in usage {
        let items = items
            .try_cast::<Array>()
            .ok_or_else(|| format!("`data.usage[\"{service}\"]` is not an array"))?;
        let mut points = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let at = || format!("data.usage[\"{service}\"][{i}]");
            let item = item
                .try_cast::<Map>()
                .ok_or_else(|| format!("`{}` is not a map", at()))?;
            let vol = sub_map(&item, "vol")
                .ok_or_else(|| format!("`{}.vol` is missing or not a map", at()))?;
            let unit = vol
                .get("unit")
                .and_then(|u| u.clone().into_string().ok())
                .ok_or_else(|| format!("`{}.vol.unit` is missing or not a string", at()))?;
            let qty = vol
                .get("qty")
                .and_then(number)
                .ok_or_else(|| format!("`{}.vol.qty` is missing or not a number", at()))?;
            let price = match sub_map(&item, "rating") {
                None => Decimal::ZERO,
                Some(r) => match r.get("price") {
                    None => Decimal::ZERO,
                    Some(p) => number(p)
                        .ok_or_else(|| format!("`{}.rating.price` is not a number", at()))?,
                },
            };
            points.push(DataPoint {
                vol: Volume { unit, qty },
                rating: Rating { price },
                groupby: attrs(&item, "groupby"),
                metadata: attrs(&item, "metadata"),
            });
        }
        out.usage.insert(service.to_string(), points);
    }
    Ok(out)
}

fn sub_map(m: &Map, key: &str) -> Option<Map> {
    m.get(key).and_then(|v| v.clone().try_cast::<Map>())
}

fn number(v: &Dynamic) -> Option<Decimal> {
    if let Ok(d) = v.as_decimal() {
        return Some(d);
    }
    v.as_int().ok().map(Decimal::from)
}

fn attrs(m: &Map, key: &str) -> Attrs {
    sub_map(m, key)
        .map(|a| {
            a.into_iter()
                .map(|(k, v)| (k.as_str().into(), v.to_string().into()))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
