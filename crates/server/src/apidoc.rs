//! The pieces an operation's OpenAPI description is made of. Each handler module describes
//! its own operations with them (a `describe` function beside the handlers), and `docs.rs`
//! assembles the document from those descriptions and the route table.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};
use skymeter_store::Page;

/// `Page<T>` documented as `TPage` (schemars would number the instances `Page`, `Page2`…).
pub struct PageOf<T>(std::marker::PhantomData<T>);

impl<T: JsonSchema> JsonSchema for PageOf<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}Page", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> schemars::Schema {
        Page::<T>::json_schema(generator)
    }
}

/// Collects component schemas while operations are described.
pub struct Schemas(SchemaGenerator);

impl Schemas {
    /// Schemas as OpenAPI 3.1 has them: JSON Schema 2020-12 under `#/components/schemas`.
    pub fn new() -> Schemas {
        Schemas(
            SchemaSettings::draft2020_12()
                .with(|st| {
                    st.definitions_path = "/components/schemas".into();
                    st.meta_schema = None;
                })
                .into_generator(),
        )
    }

    /// A `$ref` to `T`'s schema under `#/components/schemas`.
    pub fn of<T: JsonSchema>(&mut self) -> Value {
        self.0.subschema_for::<T>().to_value()
    }

    /// Every schema referred to so far, by name.
    pub fn into_definitions(mut self) -> Map<String, Value> {
        self.0.take_definitions(true)
    }
}

/// A query parameter. The server reads an empty value (`?limit=`) as absent, as HTML forms
/// send unset fields (`Params::take`, `Form::get`), so a typed parameter also admits `""`.
pub fn query_param(name: &str, description: &str, schema: Value) -> Value {
    let typed = schema["type"]
        .as_str()
        .is_some_and(|t| t == "integer" || t == "number" || t == "boolean");
    let schema = if typed {
        json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
    } else {
        schema
    };
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

pub fn string() -> Value {
    json!({"type": "string"})
}

pub fn page_params() -> Vec<Value> {
    vec![
        query_param(
            "limit",
            "Page size, 1 to 1000; default 100.",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        query_param("cursor", "`next_cursor` of the previous page.", string()),
    ]
}

pub fn time_param(name: &str, default: &str) -> Value {
    query_param(
        name,
        &format!(
            "RFC 3339 (`2026-11-22T10:00:00Z`), Unix seconds, `now`, or relative to now \
             (`-1h`, `now-30m`). {default}"
        ),
        string(),
    )
}

/// An empty value (`?stat=`) counts as absent, as HTML forms send unset fields.
pub fn stat_schema() -> Value {
    json!({"type": "string", "enum": ["", "avg", "max", "min", "sum", "count", "last", "p50", "p95", "p99"]})
}

pub fn series_params() -> Vec<Value> {
    let mut p = vec![
        query_param(
            "metric",
            "Metric name, exact or a glob with `*` (`cpu.*`).",
            string(),
        ),
        query_param(
            "resource",
            "A resource key, `provider/account/region/id`.",
            string(),
        ),
        query_param(
            "provider",
            "Resource provider (`aws`, `host`, …).",
            string(),
        ),
        query_param(
            "account",
            "Resource account / project / subscription.",
            string(),
        ),
        query_param("region", "Resource region.", string()),
        query_param("stat", "Only series of this statistic.", stat_schema()),
        query_param(
            "label.KEY",
            "Point label that must match exactly, one parameter per label: `label.cpu=3`.",
            string(),
        ),
    ];
    p.extend(page_params());
    p
}

/// A success answer: status, description, and the content type and schema of its body.
pub type OkResponse = (&'static str, &'static str, Option<(&'static str, Value)>);

/// What one operation says, before the common parts are added.
pub struct Op {
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Value>,
    pub body: Option<(Value, &'static str)>,
    /// Status → (description, content type, schema).
    pub ok: Vec<OkResponse>,
    /// Route-specific error statuses, besides the common ones.
    pub errors: Vec<(&'static str, &'static str)>,
}
