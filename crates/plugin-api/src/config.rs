//! Config decoding that remembers where every value came from.
//!
//! The whole file is parsed once into toml's spanned document tree ([`DeValue`]); each plugin
//! entry is handed to its plugin as a [`RawConfig`] (the entry's table plus the source text),
//! and decoded with serde straight from that tree. Because the tree keeps byte spans, every
//! serde error (unknown key, wrong type, missing key) and every check a plugin adds later can
//! name the file, line, column and key, with the offending line quoted.
//!
//! `${VAR}`, `${VAR:-default}` and `${file:/path}` references in string values are resolved
//! before decoding ([`interpolate`]); `$${` writes a literal `${`. Resolved values are
//! treated as secrets: they are blanked out of every error message.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// A config text and the name to report it by (a file path, or `--set` for the command line).
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
        })
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        // A span from a parser error may end inside a character; count from its start.
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }

    /// An error pointing at `span`.
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let mut err = ConfigError {
            file: self.name.clone(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
            snippet: None,
        };
        if let Some(span) = span {
            let (line, column) = self.line_col(span.start);
            let text = self.line_text(line);
            err.key = key_before(text, column);
            err.line = Some(line);
            err.column = Some(column);
            err.snippet = Some(text.trim_end().to_string());
        }
        err
    }

    /// Parses the whole text as a TOML document.
    pub fn parse(self: &Arc<Self>) -> Result<Spanned<DeValue<'_>>, ConfigError> {
        let table = toml::de::DeTable::parse(&self.text)
            .map_err(|e| self.error(e.span(), first_line(e.message())))?;
        let span = table.span();
        Ok(Spanned::new(span, DeValue::Table(table.into_inner())))
    }
}

/// The key written just before the value at 1-based `column` of `line` (`count` in
/// `{ plugin = "x", count = "three" }` when the column points at `"three"`), if any.
fn key_before(line: &str, column: usize) -> Option<String> {
    let before: String = line.chars().take(column.saturating_sub(1)).collect();
    let before = before.trim_end().strip_suffix('=')?.trim_end();
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"');
    // After the last character that cannot be part of a key (which may take several bytes).
    let start = before
        .char_indices()
        .rfind(|(_, c)| !is_key_char(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let key = before[start..].trim_matches('"');
    (!key.is_empty()).then(|| key.to_string())
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_string()
}

/// A config mistake, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key whose value is wrong, when known.
    pub key: Option<String>,
    pub message: String,
    /// The offending source line.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
            (Some(l), None) => write!(f, ":{l}")?,
            _ => {}
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            if !self.message.contains(&format!("`{k}`")) {
                write!(f, "key `{k}`: ")?;
            }
        }
        write!(f, "{}", self.message)?;
        if let (Some(l), Some(s)) = (self.line, &self.snippet) {
            write!(f, "\n  {l:>4} | {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One plugin entry of a task, as written, ready to decode into the plugin's config type.
#[derive(Clone)]
pub struct RawConfig<'a> {
    source: Arc<Source>,
    value: Spanned<DeValue<'a>>,
    secrets: Arc<Vec<String>>,
}

impl fmt::Debug for RawConfig<'_> {
    // The tree may hold resolved secrets: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawConfig({})", self.source.name)
    }
}

impl<'a> RawConfig<'a> {
    /// `value` must come from `source`'s parse; `secrets` are the resolved interpolations.
    pub fn new(
        source: Arc<Source>,
        value: Spanned<DeValue<'a>>,
        secrets: Arc<Vec<String>>,
    ) -> Self {
        RawConfig {
            source,
            value,
            secrets,
        }
    }

    /// An empty table (a plugin used with no settings).
    pub fn empty(source: Arc<Source>) -> RawConfig<'static> {
        RawConfig {
            source,
            value: Spanned::new(0..0, DeValue::Table(Default::default())),
            secrets: Arc::default(),
        }
    }

    pub fn source(&self) -> &Arc<Source> {
        &self.source
    }

    /// Decodes into a plugin's config type; serde errors come back located.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let de = ValueDeserializer::from(self.value.clone());
        T::deserialize(de)
            .map_err(|e| self.redact(self.source.error(e.span(), first_line(e.message()))))
    }

    /// The keys of this entry's table, in the order written (none when it is not a table).
    pub fn keys(&self) -> Vec<String> {
        match self.value.get_ref().as_table() {
            Some(t) => {
                let mut keys: Vec<(usize, String)> = t
                    .iter()
                    .map(|(k, v)| (v.span().start, k.get_ref().to_string()))
                    .collect();
                keys.sort();
                keys.into_iter().map(|(_, k)| k).collect()
            }
            None => Vec::new(),
        }
    }

    /// The span of `key` in this entry's table (of the entry itself when absent), for
    /// errors found after decoding.
    pub fn span_of(&self, key: &str) -> Range<usize> {
        let mut cur = &self.value;
        for part in key.split('.') {
            match cur.get_ref().as_table().and_then(|t| t.get(part)) {
                Some(v) => cur = v,
                None => return cur.span(),
            }
        }
        cur.span()
    }

    /// An error about the value of `key` (a dotted path within this entry).
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let mut e = self.redact(self.source.error(Some(self.span_of(key)), message));
        e.key = Some(key.to_string());
        e
    }

    fn redact(&self, mut e: ConfigError) -> ConfigError {
        for s in self.secrets.iter().filter(|s| s.len() >= 3) {
            e.message = e.message.replace(s.as_str(), "<redacted>");
            if let Some(snippet) = &mut e.snippet {
                *snippet = snippet.replace(s.as_str(), "<redacted>");
            }
        }
        e
    }
}

/// Resolves `${VAR}`, `${VAR:-default}` and `${file:/path}` in every string value of the
/// tree, in place. Returns the resolved values (to redact from errors) or every failure.
pub fn interpolate(
    source: &Source,
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, Vec<ConfigError>> {
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    walk(source, value, env, &mut secrets, &mut errors);
    if errors.is_empty() {
        Ok(secrets)
    } else {
        Err(errors)
    }
}

fn walk(
    source: &Source,
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
    errors: &mut Vec<ConfigError>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, env, secrets) {
            Ok(new) => *s = Cow::Owned(new),
            Err(msg) => errors.push(source.error(Some(span), msg)),
        },
        DeValue::Table(t) => {
            for (_, v) in t.iter_mut() {
                walk(source, v, env, secrets, errors);
            }
        }
        DeValue::Array(a) => {
            for v in a.iter_mut() {
                walk(source, v, env, secrets, errors);
            }
        }
        _ => {}
    }
}

/// Expands references in one string.
fn expand(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!(
                "unclosed `${{` in `{s}`: write `${{NAME}}`, or `$${{` for a literal `${{`"
            ));
        };
        let body = &body_start[..end];
        let resolved = if let Some(path) = body.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("cannot read `${{file:{path}}}`: {e}; check the path and its permissions")
            })?;
            text.trim_end_matches(['\n', '\r']).to_string()
        } else {
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("`${{{body}}}` is not a reference: use ${{NAME}}, ${{NAME:-default}} or ${{file:/path}}"));
            }
            match (env(name), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set; export it, or write ${{{name}:-default}}"
                    ))
                }
            }
        };
        if !resolved.is_empty() {
            secrets.push(resolved.clone());
        }
        out.push_str(&resolved);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration written as `"10s"`, `"5m"`, `"1h 30m"`, `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationStr(pub Duration);

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(DurationStr).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration `{s}` ({e}); write e.g. \"30s\", \"5m\", \"1h\""
            ))
        })
    }
}

impl serde::Serialize for DurationStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for DurationStr {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "A duration such as \"30s\", \"5m\", \"1h\".", "examples": ["30s"]})
    }
}

impl From<Duration> for DurationStr {
    fn from(d: Duration) -> Self {
        DurationStr(d)
    }
}

/// A size in bytes, written as `"100MB"` (10^6), `"100MiB"` (2^20) or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| ByteSize(b.as_u64()))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "bad size `{s}` ({e}); write e.g. \"100MB\", \"1GiB\" or a number of bytes"
                    ))
                }),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "description": "A size: \"100MB\" (10^6 bytes), \"100MiB\" (2^20 bytes), or bytes.",
            "examples": ["100MB"]
        })
    }
}

/// Who a custom source's points belong to. Collectors of custom sources (`prometheus`,
/// `http_json`, `exec`) take this as `resource = { … }` and fill in defaults of their own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceTemplate {
    /// Defaults to `custom`.
    pub provider: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// Normalized kind; defaults depend on the collector (`service`, `host`).
    pub kind: Option<String>,
    /// Defaults depend on the collector (the scrape target's `host:port`, the command).
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

impl ResourceTemplate {
    /// The resource, with the collector's defaults for what the user left out.
    pub fn build(
        &self,
        default_kind: &str,
        default_id: &str,
        observed_at: chrono::DateTime<chrono::Utc>,
    ) -> skymeter_model::Resource {
        let id = self.id.clone().unwrap_or_else(|| default_id.to_string());
        skymeter_model::Resource {
            provider: self.provider.clone().unwrap_or_else(|| "custom".into()),
            account: self.account.clone().unwrap_or_default(),
            region: self.region.clone().unwrap_or_default(),
            kind: self.kind.clone().unwrap_or_else(|| default_kind.into()),
            native_type: String::new(),
            name: self.name.clone().unwrap_or_else(|| id.clone()),
            id,
            tags: self.tags.clone(),
            attributes: Default::default(),
            observed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by crates/pipeline/tests/prop_config.rs: a key written in a script other than
    /// Latin made locating the error slice inside a character and panic.
    #[test]
    fn errors_after_keys_with_multibyte_characters_are_located() {
        // Quoted keys outside ASCII are not guessed (bare keys are ASCII); no panic either.
        assert_eq!(key_before("\"ключ\" = 1", 10), None);
        assert_eq!(key_before("{ ключ = 1, n = 2", 16), Some("n".to_string()));
        assert_eq!(key_before("é = 1", 5), None);
        let src = Source::new("t.toml", "a = \"é\"");
        let e = src.error(Some(6..7), "inside a character");
        assert_eq!((e.line, e.column), (Some(1), Some(6)));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Demo {
        url: String,
        #[serde(default)]
        retries: u32,
        interval: Option<DurationStr>,
    }

    fn raw_of(src: &Arc<Source>) -> (Spanned<DeValue<'_>>, Vec<String>) {
        let mut v = src.parse().unwrap();
        let env = |k: &str| (k == "TOKEN").then(|| "s3cr3t-value".to_string());
        let secrets = interpolate(src, &mut v, &env).unwrap_or_default();
        (v, secrets)
    }

    #[test]
    fn unknown_key_is_located() {
        let src = Source::new("demo.toml", "url = \"http://x\"\nretires = 3\n");
        let (v, s) = raw_of(&src);
        let err = RawConfig::new(src.clone(), v, Arc::new(s))
            .decode::<Demo>()
            .unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(1)), "{err}");
        let shown = err.to_string();
        assert!(
            shown.starts_with("demo.toml:2:1: unknown field `retires`"),
            "{shown}"
        );
        assert!(shown.contains("retires = 3"), "{shown}");
    }

    #[test]
    fn wrong_type_names_the_key_and_hides_secrets() {
        let src = Source::new("demo.toml", "url = \"http://x\"\nretries = \"${TOKEN}\"\n");
        let (v, s) = raw_of(&src);
        let err = RawConfig::new(src.clone(), v, Arc::new(s))
            .decode::<Demo>()
            .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.key.as_deref(), Some("retries"));
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn bad_duration_is_explained() {
        let src = Source::new("d.toml", "url = \"u\"\ninterval = \"10 parsecs\"\n");
        let (v, s) = raw_of(&src);
        let err = RawConfig::new(src.clone(), v, Arc::new(s))
            .decode::<Demo>()
            .unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("bad duration `10 parsecs`"), "{err}");
    }

    #[test]
    fn references_expand_and_unset_ones_fail_located() {
        let env = |k: &str| match k {
            "HOME_DIR" => Some("/home/x".to_string()),
            _ => None,
        };
        let mut secrets = Vec::new();
        assert_eq!(
            expand("${HOME_DIR}/a", &env, &mut secrets).unwrap(),
            "/home/x/a"
        );
        assert_eq!(expand("${NOPE:-dflt}", &env, &mut secrets).unwrap(), "dflt");
        assert_eq!(
            expand("cost $$5 and $${LITERAL}", &env, &mut secrets).unwrap(),
            "cost $$5 and ${LITERAL}"
        );
        let dir = std::env::temp_dir().join(format!("skymeter-secret-{}", std::process::id()));
        std::fs::write(&dir, "tok\n").unwrap();
        assert_eq!(
            expand(&format!("${{file:{}}}", dir.display()), &env, &mut secrets).unwrap(),
            "tok"
        );
        std::fs::remove_file(&dir).unwrap();

        let src = Source::new("t.toml", "a = 1\nb = \"${UNSET_VAR}\"\n");
        let mut v = src.parse().unwrap();
        let errs = interpolate(&src, &mut v, &env).unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert!(
            errs[0].message.contains("`UNSET_VAR` is not set"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn checks_after_decoding_point_at_the_key() {
        let src = Source::new("c.toml", "url = \"not a url\"\n");
        let (v, s) = raw_of(&src);
        let raw = RawConfig::new(src.clone(), v, Arc::new(s));
        let e = raw.error("url", "not an absolute URL");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("url")));
        assert!(
            e.to_string()
                .starts_with("c.toml:1:7: key `url`: not an absolute URL"),
            "{e}"
        );
    }
}
