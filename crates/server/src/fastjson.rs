//! A fast path for parsing a [`Batch`]: ingest's hot spot.
//!
//! serde_json parses the record format at about 0.7 M points/s per core (measured on the
//! project's machine): a point is ~20 short strings (keys included), each scanned, UTF-8
//! checked and dispatched through serde's generic machinery, plus chrono's general
//! timestamp parser. The ingest target (1.5 M points/s on 2 cores, HTTP included) needs
//! more, so this module parses the shape that agents actually send — the envelope and its
//! `points`, with plain strings, canonical RFC 3339 timestamps and JSON numbers — directly
//! from the bytes, about three times faster.
//!
//! It is strictly a subset: whenever it meets anything it does not handle exactly as serde
//! would (an escape in a string, an unknown or repeated key, a missing field, a value of
//! another type, a timestamp in another form, a number out of range…) it returns `None`
//! and the caller parses with serde_json, which then accepts or explains the error with
//! its path. So the result is always what serde_json would give (tests check this on
//! generated and on randomly mutated batches); `resources`, `costs`, `errors` and
//! `window` are always handed to serde_json. A field added to `Point` or `Batch` fails to
//! compile here (struct literals) until this parser knows it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use skymeter_model::{Batch, Labels, Point, PointLabels, ResourceRef, SmolStr, Stat, Unit};
use std::sync::Arc;

/// The batch in `bytes`, or `None` when the fast path cannot tell (parse with serde_json).
pub fn parse_batch(bytes: &[u8]) -> Option<Batch> {
    // One UTF-8 check of the whole body (fast on ASCII) instead of one per string; every
    // slice taken below starts and ends next to an ASCII delimiter, so on a char boundary.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut p = Parser {
        s: text,
        b: bytes,
        i: 0,
        last_resource: None,
    };
    let batch = p.batch()?;
    p.ws();
    (p.i == bytes.len()).then_some(batch)
}

/// Bytes that end the fast scan of a string: the closing quote, an escape, a control
/// character (invalid in JSON strings; serde explains it).
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// The previous point's resource: collectors write a resource's points one after
    /// another, so they share one allocation, as they did in the collector.
    last_resource: Option<Arc<ResourceRef>>,
}

fn set<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None; // a repeated field is an error for serde's derive
    }
    *slot = Some(v);
    Some(())
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After a member: `true` at `,` (another follows), `false` at the closing `close`.
    fn next_member(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A string without escapes or control characters.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let len = rest.iter().position(|&c| STOP[usize::from(c)])?;
        if rest[len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        self.s.get(start..start + len)
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    /// A short string (up to 23 bytes) is stored inline: no allocation per point.
    fn smol(&mut self) -> Option<SmolStr> {
        self.str().map(SmolStr::new)
    }

    /// The text of a JSON number (RFC 8259 grammar).
    fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        let b = self.b;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > s
        };
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.i = i;
        self.s.get(start..i)
    }

    fn f64(&mut self) -> Option<f64> {
        // Rust's parser is correctly rounded; a JSON number is valid Rust float syntax.
        let v: f64 = self.number()?.parse().ok()?;
        v.is_finite().then_some(v)
    }

    fn u32(&mut self) -> Option<u32> {
        let n = self.number()?;
        if n.bytes().any(|c| !c.is_ascii_digit()) {
            return None; // negative, fraction or exponent: not an integer for serde
        }
        n.parse().ok()
    }

    /// Skips one JSON value and returns its bytes (for serde_json to parse).
    fn raw_value(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.i;
        let b = self.b;
        let mut depth = 0usize;
        let mut i = start;
        loop {
            match *b.get(i)? {
                b'"' => {
                    i += 1;
                    loop {
                        match *b.get(i)? {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    i += 1;
                }
                b'{' | b'[' => {
                    depth += 1;
                    i += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    i += 1;
                }
                b',' if depth == 0 => break,
                _ => i += 1,
            }
            if depth == 0 && matches!(b.get(i), None | Some(b',' | b'}' | b']')) {
                break;
            }
        }
        self.i = i;
        Some(&b[start..i])
    }

    fn delegated<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        serde_json::from_slice(self.raw_value()?).ok()
    }

    fn batch(&mut self) -> Option<Batch> {
        self.eat(b'{')?;
        let (mut schema, mut batch_id, mut agent_id, mut task, mut collected_at) =
            (None, None, None, None, None);
        let (mut window, mut resources, mut points, mut costs, mut errors) =
            (None, None, None, None, None);
        if self.peek()? != b'}' {
            loop {
                let key = self.str()?;
                self.eat(b':')?;
                match key {
                    "schema" => set(&mut schema, self.u32()?)?,
                    "batch_id" => set(&mut batch_id, uuid::Uuid::try_parse(self.str()?).ok()?)?,
                    "agent_id" => set(&mut agent_id, self.string()?)?,
                    "task" => set(&mut task, self.string()?)?,
                    "collected_at" => set(&mut collected_at, timestamp(self.str()?)?)?,
                    "window" => set(&mut window, self.delegated()?)?,
                    "resources" => set(&mut resources, self.delegated()?)?,
                    "costs" => set(&mut costs, self.delegated()?)?,
                    "errors" => set(&mut errors, self.delegated()?)?,
                    "points" => set(&mut points, self.points()?)?,
                    _ => return None,
                }
                if !self.next_member(b'}')? {
                    break;
                }
            }
        } else {
            self.i += 1;
        }
        Some(Batch {
            schema: schema?,
            batch_id: batch_id?,
            agent_id: agent_id?,
            task: task?,
            collected_at: collected_at?,
            window: window.flatten(),
            resources: resources.unwrap_or_default(),
            points: points.unwrap_or_default(),
            costs: costs.unwrap_or_default(),
            errors: errors.unwrap_or_default(),
        })
    }

    fn points(&mut self) -> Option<Vec<Point>> {
        self.eat(b'[')?;
        // About 200 bytes a point: reserve once instead of growing and copying.
        let mut out = Vec::with_capacity((self.b.len() - self.i) / 200);
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(self.point()?);
            if !self.next_member(b']')? {
                return Some(out);
            }
        }
    }

    fn point(&mut self) -> Option<Point> {
        self.eat(b'{')?;
        let (mut metric, mut unit, mut stat, mut period_s) = (None, None, None, None);
        let (mut ts, mut value, mut resource, mut labels) = (None, None, None, None);
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            match key {
                "metric" => set(&mut metric, self.smol()?)?,
                "unit" => set(&mut unit, self.str()?.parse::<Unit>().ok()?)?,
                "stat" => set(&mut stat, self.str()?.parse::<Stat>().ok()?)?,
                "period_s" => set(&mut period_s, self.u32()?)?,
                "ts" => set(&mut ts, timestamp(self.str()?)?)?,
                "value" => set(&mut value, self.f64()?)?,
                "resource" => set(&mut resource, self.resource()?)?,
                "labels" => set(&mut labels, self.labels()?)?,
                _ => return None,
            }
            if !self.next_member(b'}')? {
                break;
            }
        }
        Some(Point {
            metric: metric?,
            unit: unit?,
            stat: stat?,
            period_s: period_s?,
            ts: ts?,
            value: value?,
            resource: self.shared(resource?),
            labels: labels.map(PointLabels::from).unwrap_or_default(),
        })
    }

    fn shared(&mut self, r: ResourceRef) -> Arc<ResourceRef> {
        match &self.last_resource {
            Some(last) if **last == r => last.clone(),
            _ => {
                let r = Arc::new(r);
                self.last_resource = Some(r.clone());
                r
            }
        }
    }

    fn resource(&mut self) -> Option<ResourceRef> {
        self.eat(b'{')?;
        let (mut provider, mut account, mut region, mut id) = (None, None, None, None);
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            match key {
                "provider" => set(&mut provider, self.smol()?)?,
                "account" => set(&mut account, self.smol()?)?,
                "region" => set(&mut region, self.smol()?)?,
                "id" => set(&mut id, self.smol()?)?,
                _ => return None,
            }
            if !self.next_member(b'}')? {
                break;
            }
        }
        Some(ResourceRef {
            provider: provider?,
            account: account.unwrap_or_default(),
            region: region.unwrap_or_default(),
            id: id?,
        })
    }

    fn labels(&mut self) -> Option<Labels> {
        self.eat(b'{')?;
        let mut out = Labels::new();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(out);
        }
        loop {
            let k = self.string()?;
            self.eat(b':')?;
            let v = self.string()?;
            // A repeated key in a map: the last one wins, as with serde.
            out.insert(k, v);
            if !self.next_member(b'}')? {
                return Some(out);
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`: the form agents write.
/// Anything else (lowercase, a space, a leap second, more than 9 fraction digits) is left
/// to chrono.
fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        nanos = num(start..i)? * 10u32.pow(9 - n as u32);
    }
    let offset_s: i64 = match *b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    if sec > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, min, sec, nanos)?;
    let utc =
        NaiveDateTime::new(date, time).checked_sub_signed(chrono::Duration::seconds(offset_s))?;
    Some(utc.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "schema": 1,
            "batch_id": "0190d5a8-7c1e-7a35-9d9c-6a0f6c1e2b3d",
            "agent_id": "agent-é",
            "task": "host",
            "collected_at": "2026-11-22T10:00:00.123Z",
            "window": {"start": "2026-11-22T09:59:00Z", "end": "2026-11-22T10:00:00Z"},
            "resources": [{"provider": "host", "kind": "host", "id": "h1", "observed_at": "2026-11-22T10:00:00Z"}],
            "points": [
                {"metric": "cpu.utilization", "unit": "percent", "stat": "avg", "period_s": 60,
                 "ts": "2026-11-22T10:00:00Z", "value": 12.5,
                 "resource": {"provider": "host", "account": "lab", "region": "", "id": "h1"}},
                {"metric": "disk.read_throughput", "unit": "bytes/s", "stat": "max", "period_s": 0,
                 "ts": "2026-11-22T12:00:00.5+02:00", "value": -1.25e-3,
                 "resource": {"provider": "host", "id": "h1"}, "labels": {"device": "sda", "ü": "ß"}},
                {"metric": "x", "unit": "count", "stat": "p99", "period_s": 4294967295u32,
                 "ts": "1999-12-31T23:59:59.999999999-05:30", "value": 0,
                 "resource": {"id": "h2", "provider": "aws", "region": "eu"}, "labels": {}}
            ],
            "costs": [],
            "errors": [{"plugin": "aws", "message": "throttled \"a lot\"", "at": "2026-11-22T10:00:00Z"}]
        })
    }

    fn same(a: &Batch, b: &Batch) {
        let (mut a, mut b) = (a.clone(), b.clone());
        assert_eq!(a.points.len(), b.points.len());
        for (p, q) in a.points.iter_mut().zip(b.points.iter_mut()) {
            // serde_json's default float parsing is best-effort (within an ulp); ours is
            // correctly rounded.
            let ulps = (p.value.to_bits() as i64 - q.value.to_bits() as i64).abs();
            assert!(
                ulps <= 1 || p.value == q.value,
                "{} vs {}",
                p.value,
                q.value
            );
            q.value = p.value;
        }
        assert_eq!(a, b);
    }

    #[test]
    fn matches_serde_on_the_shapes_agents_send() {
        let bytes = serde_json::to_vec_pretty(&sample()).unwrap();
        let fast = parse_batch(&bytes).expect("the fast path handles this batch");
        let slow: Batch = serde_json::from_slice(&bytes).unwrap();
        same(&fast, &slow);
        assert_eq!(
            fast.points[1].ts.to_rfc3339(),
            "2026-11-22T10:00:00.500+00:00"
        );
        assert_eq!(
            fast.points[2].ts.to_rfc3339(),
            "2000-01-01T05:29:59.999999999+00:00"
        );
    }

    #[test]
    fn handles_its_own_serialization_exactly() {
        // If this fails, the model changed its JSON shape: teach this parser the change.
        let mut b = Batch::new("agent", "task", Utc::now());
        for i in 0..500 {
            b.points.push(Point {
                metric: format!("m.{}", i % 7).into(),
                unit: Unit::ALL[i % Unit::ALL.len()],
                stat: Stat::ALL[i % Stat::ALL.len()],
                period_s: i as u32,
                ts: Utc::now() - chrono::Duration::nanoseconds(i as i64 * 1_234_567_891),
                value: (i as f64 - 250.0) / 7.0 * 1e-3f64.powi(i as i32 % 5),
                resource: ResourceRef {
                    provider: "aws".into(),
                    account: if i % 2 == 0 {
                        String::new().into()
                    } else {
                        "1".into()
                    },
                    region: "r".into(),
                    id: format!("i-{i}").into(),
                }
                .into(),
                labels: (0..i % 3)
                    .map(|k| (format!("k{k}"), format!("v{i}")))
                    .collect(),
            });
        }
        let bytes = serde_json::to_vec(&b).unwrap();
        assert_eq!(parse_batch(&bytes).expect("handled"), b, "exact round trip");
    }

    #[test]
    fn leaves_everything_unusual_to_serde() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("escape", json!({"metric": "a\"b"})),
            ("unknown field", json!({"colour": "red"})),
            ("integer as float", json!({"period_s": 60.0})),
            ("negative period", json!({"period_s": -1})),
            ("too large", json!({"period_s": 4294967296u64})),
            ("lowercase t", json!({"ts": "2026-11-22t10:00:00Z"})),
            ("space separator", json!({"ts": "2026-11-22 10:00:00Z"})),
            ("leap second", json!({"ts": "2026-12-31T23:59:60Z"})),
            ("no offset", json!({"ts": "2026-11-22T10:00:00"})),
            ("bad date", json!({"ts": "2026-02-30T10:00:00Z"})),
            ("null labels", json!({"labels": null})),
            ("number label", json!({"labels": {"a": 1}})),
            ("unknown unit", json!({"unit": "furlongs"})),
            ("string value", json!({"value": "1"})),
        ];
        for (name, patch) in cases {
            let mut v = sample();
            for (k, val) in patch.as_object().unwrap() {
                v["points"][0][k] = val.clone();
            }
            let bytes = serde_json::to_vec(&v).unwrap();
            assert!(
                parse_batch(&bytes).is_none(),
                "{name}: the fast path must step aside"
            );
        }
        let mut v = sample();
        v["points"][0].as_object_mut().unwrap().remove("ts");
        assert!(
            parse_batch(&serde_json::to_vec(&v).unwrap()).is_none(),
            "missing field"
        );
        let text = serde_json::to_string(&sample()).unwrap();
        let dup = text.replacen("\"task\":\"host\"", "\"task\":\"host\",\"task\":\"x\"", 1);
        assert!(parse_batch(dup.as_bytes()).is_none(), "repeated field");
        assert!(
            parse_batch(format!("{text} x").as_bytes()).is_none(),
            "trailing text"
        );
        assert!(
            parse_batch(&text.as_bytes()[..text.len() - 1]).is_none(),
            "truncated"
        );
    }

    /// Random single-byte mutations of a valid batch: whenever the fast path accepts the
    /// result, serde_json accepts it too and reads the same batch.
    #[test]
    fn never_accepts_what_serde_would_not() {
        let base = serde_json::to_vec(&sample()).unwrap();
        let alphabet = b" \t\n{}[]:,\"\\0123456789-+.eEZT:abcnulltrue";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut m = base.clone();
            for _ in 0..1 + rand() % 2 {
                let at = rand() as usize % m.len();
                match rand() % 3 {
                    0 => m[at] = alphabet[rand() as usize % alphabet.len()],
                    1 => {
                        m.remove(at);
                    }
                    _ => m.insert(at, alphabet[rand() as usize % alphabet.len()]),
                }
            }
            if let Some(fast) = parse_batch(&m) {
                accepted += 1;
                let slow: Batch = serde_json::from_slice(&m).unwrap_or_else(|e| {
                    panic!(
                        "fast path accepted what serde refuses ({e}): {}",
                        String::from_utf8_lossy(&m)
                    )
                });
                same(&fast, &slow);
            }
        }
        assert!(
            accepted > 1000,
            "mutations that stay valid are exercised too ({accepted})"
        );
    }
}

/// Property tests: on generated batches, on mutations of them and on random bytes, the
/// ingest path (fast parser, serde_json when it steps aside) and serde_json alone agree on
/// accept / reject, on the decoded batch and on `Batch::validate`'s verdict. 256 cases per
/// property; `PROPTEST_CASES` raises it (`scripts/fuzz`-style long runs).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use skymeter_model::{CollectError, Resource};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// How often the fast path itself decided (rather than stepping aside): a generator
    /// that never reaches it would test nothing.
    static FAST: AtomicUsize = AtomicUsize::new(0);

    fn config() -> ProptestConfig {
        ProptestConfig {
            // Regressions are reported in the failure message; nothing is written into
            // the source tree.
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Strings as collectors make them, plus the unusual: escapes, controls, non-ASCII,
    /// empty, long.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-zA-Z0-9_.:/-]{1,12}",
            2 => "\\PC{0,8}",
            1 => any::<String>().prop_map(|s| s.chars().take(10).collect()),
            1 => Just(String::new()),
            1 => prop::sample::select(vec!["a\"b", "tab\there", "nul\u{0}", "é✓", "\\", "\u{7f}\u{85}"])
                .prop_map(str::to_owned),
            1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
        ]
    }

    fn labels() -> impl Strategy<Value = Labels> {
        prop_oneof![
            8 => prop::collection::btree_map(text(), text(), 0..4),
            1 => (60usize..70).prop_map(|n| (0..n).map(|i| (format!("k{i}"), "v".into())).collect()),
        ]
    }

    fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
        (
            -2_000_000_000i64..5_000_000_000,
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
        )
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            -1e6..1e6f64,
            Just(0.0),
            Just(-0.0),
            (0u32..1000).prop_map(f64::from),
        ]
    }

    fn resource_ref() -> impl Strategy<Value = ResourceRef> {
        (
            prop_oneof![4 => Just("aws".to_string()), 1 => text()],
            text(),
            text(),
            text(),
        )
            .prop_map(|(p, a, r, id)| ResourceRef {
                provider: p.into(),
                account: a.into(),
                region: r.into(),
                id: id.into(),
            })
    }

    fn point() -> impl Strategy<Value = Point> {
        (
            text(),
            prop::sample::select(Unit::ALL.to_vec()),
            prop::sample::select(Stat::ALL.to_vec()),
            any::<u32>(),
            timestamp(),
            value(),
            resource_ref(),
            labels(),
        )
            .prop_map(|(m, unit, stat, period_s, ts, value, r, l)| Point {
                metric: m.into(),
                unit,
                stat,
                period_s,
                ts,
                value,
                resource: Arc::new(r),
                labels: l.into(),
            })
    }

    fn resource() -> impl Strategy<Value = Resource> {
        (resource_ref(), text(), labels(), timestamp()).prop_map(|(r, kind, tags, at)| Resource {
            provider: r.provider.to_string(),
            account: r.account.to_string(),
            region: r.region.to_string(),
            kind,
            native_type: String::new(),
            id: r.id.to_string(),
            name: String::new(),
            tags,
            attributes: [("vcpus".to_string(), serde_json::json!(2))].into(),
            observed_at: at,
        })
    }

    fn batch() -> impl Strategy<Value = Batch> {
        (
            prop_oneof![Just(0u128), any::<u128>()],
            text(),
            text(),
            timestamp(),
            prop::collection::vec(point(), 0..6),
            prop::collection::vec(resource(), 0..2),
            prop::collection::vec((text(), text(), timestamp()), 0..2),
            prop_oneof![Just(1u32), any::<u32>()],
        )
            .prop_map(
                |(id, agent, task, at, points, resources, errs, schema)| Batch {
                    schema,
                    batch_id: uuid::Uuid::from_u128(id),
                    agent_id: agent,
                    task,
                    collected_at: at,
                    window: None,
                    resources,
                    points,
                    costs: vec![],
                    errors: errs
                        .into_iter()
                        .map(|(plugin, message, at)| CollectError {
                            plugin,
                            message,
                            context: Labels::new(),
                            at,
                        })
                        .collect(),
                },
            )
    }

    /// Serialized as agents and other clients might: compact, pretty, or with every
    /// whole number written as a float.
    fn encoded() -> impl Strategy<Value = Vec<u8>> {
        (batch(), 0..3u8).prop_map(|(b, style)| match style {
            0 => serde_json::to_vec(&b).unwrap(),
            1 => serde_json::to_vec_pretty(&b).unwrap(),
            _ => {
                let mut v = serde_json::to_value(&b).unwrap();
                v["schema"] = f64::from(b.schema).into();
                for p in v["points"].as_array_mut().unwrap() {
                    p["period_s"] = p["period_s"].as_f64().unwrap().into();
                }
                serde_json::to_vec(&v).unwrap()
            }
        })
    }

    /// 1 to 4 edits with bytes that matter to JSON.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let edit = (
            any::<prop::sample::Index>(),
            0..4u8,
            prop::sample::select(b" \t\n{}[]:,\"\\0123456789-+.eEZT:abcnulltrue\x00\xff".to_vec()),
        );
        (encoded(), prop::collection::vec(edit, 1..5)).prop_map(|(mut bytes, edits)| {
            for (at, kind, c) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = c,
                    1 => {
                        bytes.remove(i);
                    }
                    2 => bytes.insert(i, c),
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
    }

    /// What the server does: the fast path, serde_json when it steps aside.
    fn ingest_decode(bytes: &[u8]) -> Option<Batch> {
        match parse_batch(bytes) {
            Some(b) => {
                FAST.fetch_add(1, Ordering::Relaxed);
                Some(b)
            }
            None => serde_json::from_slice(bytes).ok(),
        }
    }

    fn verdict(b: &Batch) -> Result<(), Vec<String>> {
        b.validate()
            .map_err(|errs| errs.iter().map(ToString::to_string).collect())
    }

    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        let ours = ingest_decode(bytes);
        let reference: Option<Batch> = serde_json::from_slice(bytes).ok();
        prop_assert_eq!(
            ours.is_some(),
            reference.is_some(),
            "accept / reject differ"
        );
        if let (Some(a), Some(b)) = (ours, reference) {
            prop_assert_eq!(verdict(&a), verdict(&b));
            prop_assert_eq!(a.points.len(), b.points.len());
            for (p, q) in a.points.iter().zip(&b.points) {
                // Bit for bit: both parse correctly rounded (serde_json's
                // `float_roundtrip`), `-0.0` included.
                prop_assert_eq!(
                    p.value.to_bits(),
                    q.value.to_bits(),
                    "{} vs {}",
                    p.value,
                    q.value
                );
            }
            prop_assert_eq!(a, b);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn generated_batches_decode_and_validate_alike(bytes in encoded()) {
            agree(&bytes)?;
        }

        #[test]
        fn mutated_batches_are_accepted_and_refused_alike(bytes in mutated()) {
            agree(&bytes)?;
        }

        #[test]
        fn random_bytes_never_panic_and_agree(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            agree(&bytes)?;
        }

        #[test]
        fn a_valid_prefix_with_garbage_agrees(b in encoded(), tail in prop::collection::vec(any::<u8>(), 0..16), cut in any::<prop::sample::Index>()) {
            let mut bytes = b[..cut.index(b.len() + 1).max(1).min(b.len())].to_vec();
            bytes.extend(tail);
            agree(&bytes)?;
        }
    }

    #[test]
    fn the_generators_reach_the_fast_path() {
        let mut runner = proptest::test_runner::TestRunner::new(config());
        let before = FAST.load(Ordering::Relaxed);
        runner.run(&encoded(), |bytes| agree(&bytes)).unwrap();
        assert!(
            FAST.load(Ordering::Relaxed) > before,
            "no generated batch took the fast path"
        );
    }
}
