//! The payload of one WAL record: one whole batch, with its points already resolved to
//! series ids.
//!
//! Points are the bulk, so they get a columnar binary form: series ids as varints,
//! timestamps as zigzag varint deltas from the previous point, values as raw f64 — about
//! 11 bytes a point for a typical batch, against ~218 in JSON and ~95 with postcard of
//! `Point` (see `benches/ingest.rs`). Series first used by this batch travel with it
//! (id + key as JSON), so a record never refers to a series that is not durable before it.
//! Everything else of the batch (resources, costs, errors, envelope) is small and carries
//! `serde_json::Value` attributes, which postcard and bincode cannot round-trip, so it is
//! one JSON document.
//!
//! ```text
//! u8 version=1 | u64 seq | [16] batch_id | i64 received_at (ns)
//! varint n_new_series, each: varint id, bytes key_json
//! varint n_points | n × varint series_id | n × zigzag varint ts delta | n × f64 LE
//! bytes meta_json
//! ```

use super::codec::{put_bytes, put_uvarint, unzigzag, zigzag, Reader};
use crate::SeriesKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skymeter_model::{CollectError, Cost, Resource, Window};

const VERSION: u8 = 1;

/// The non-point part of a batch, borrowed for writing.
#[derive(Serialize)]
pub struct MetaRef<'a> {
    pub agent_id: &'a str,
    pub task: &'a str,
    pub collected_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub resources: &'a [Resource],
    pub costs: &'a [Cost],
    pub errors: &'a [CollectError],
    /// `Batch::content_hash`, so that after a restart a reused `batch_id` is still told
    /// from a retry. Absent in records written before it existed.
    pub content_hash: [u8; 32],
}

/// The non-point part of a batch, owned, as read back.
#[derive(Deserialize)]
pub struct MetaOwned {
    pub agent_id: String,
    pub task: String,
    pub collected_at: DateTime<Utc>,
    #[serde(default)]
    #[allow(dead_code)]
    pub window: Option<Window>,
    pub resources: Vec<Resource>,
    pub costs: Vec<Cost>,
    pub errors: Vec<CollectError>,
    #[serde(default)]
    pub content_hash: Option<[u8; 32]>,
}

pub struct Encoder<'a> {
    pub seq: u64,
    pub batch_id: uuid::Uuid,
    pub received_at: i64,
    pub new_series: &'a [(u64, &'a SeriesKey)],
    pub ids: &'a [u64],
    pub ts: &'a [i64],
    pub vals: &'a [f64],
    pub meta_json: &'a [u8],
}

impl Encoder<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.ids.len();
        let mut out = Vec::with_capacity(64 + n * 12 + self.meta_json.len());
        out.push(VERSION);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(self.batch_id.as_bytes());
        out.extend_from_slice(&self.received_at.to_le_bytes());
        put_uvarint(&mut out, self.new_series.len() as u64);
        for (id, key) in self.new_series {
            put_uvarint(&mut out, *id);
            put_bytes(
                &mut out,
                &serde_json::to_vec(key).expect("series keys serialize"),
            );
        }
        put_uvarint(&mut out, n as u64);
        for id in self.ids {
            put_uvarint(&mut out, *id);
        }
        let mut prev = 0i64;
        for t in self.ts {
            put_uvarint(&mut out, zigzag(t.wrapping_sub(prev)));
            prev = *t;
        }
        for v in self.vals {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_bytes(&mut out, self.meta_json);
        out
    }
}

/// A decoded record; the meta JSON is parsed only when needed.
pub struct Decoded<'a> {
    pub seq: u64,
    pub batch_id: uuid::Uuid,
    pub received_at: i64,
    pub new_series: Vec<(u64, SeriesKey)>,
    pub ids: Vec<u64>,
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
    pub meta_json: &'a [u8],
}

pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, String> {
    let mut r = Reader::new(buf);
    let v = r.u8("version")?;
    if v != VERSION {
        return Err(format!("unknown WAL record version {v}"));
    }
    let seq = r.u64("seq")?;
    let batch_id = uuid::Uuid::from_slice(r.take(16, "batch id")?).map_err(|e| e.to_string())?;
    let received_at = r.i64("received_at")?;
    let n_new = r.uvarint("series count")? as usize;
    // Each series takes at least two bytes (id and key length): a damaged count cannot
    // make this reserve more than the record's size.
    let mut new_series = Vec::with_capacity(n_new.min(r.remaining() / 2));
    for _ in 0..n_new {
        let id = r.uvarint("series id")?;
        let key: SeriesKey = serde_json::from_slice(r.bytes("series key")?)
            .map_err(|e| format!("series key: {e}"))?;
        new_series.push((id, key));
    }
    let n = r.uvarint("point count")? as usize;
    if n > r.remaining() {
        return Err("point count larger than the record".into());
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(r.uvarint("point series id")?);
    }
    let mut ts = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.uvarint("point timestamp")?));
        ts.push(prev);
    }
    let mut vals = Vec::with_capacity(n);
    for _ in 0..n {
        vals.push(r.f64("point value")?);
    }
    let meta_json = r.bytes("batch metadata")?;
    Ok(Decoded {
        seq,
        batch_id,
        received_at,
        new_series,
        ids,
        ts,
        vals,
        meta_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skymeter_model::{Labels, ResourceRef, Stat, Unit};

    #[test]
    fn records_round_trip_and_points_take_about_eleven_bytes() {
        let key = SeriesKey {
            metric: "cpu.utilization".into(),
            unit: Unit::Percent,
            stat: Stat::Avg,
            resource: ResourceRef {
                provider: "aws".into(),
                account: "1".into(),
                region: "us-east-1".into(),
                id: "i-1".into(),
            },
            labels: Labels::from([("cpu".to_string(), "0".to_string())]),
        };
        // 10,000 points of 2,500 series at 4 timestamps, as an agent sends them.
        let ids: Vec<u64> = (0..10_000u64).map(|k| 1 + k % 2500).collect();
        let ts: Vec<i64> = (0..10_000i64)
            .map(|k| 1_700_000_000_000_000_000 + (k / 2500) * 60_000_000_000)
            .collect();
        let vals: Vec<f64> = (0..10_000).map(|k| (k % 9973) as f64 / 100.0).collect();
        let id = uuid::Uuid::now_v7();
        let enc = Encoder {
            seq: 42,
            batch_id: id,
            received_at: -5,
            new_series: &[(7, &key)],
            ids: &ids,
            ts: &ts,
            vals: &vals,
            meta_json: b"{}",
        }
        .encode();
        let d = decode(&enc).unwrap();
        assert_eq!((d.seq, d.batch_id, d.received_at), (42, id, -5));
        assert_eq!(d.new_series, [(7, key)]);
        assert_eq!(
            (d.ids, d.ts, d.vals, d.meta_json),
            (ids, ts, vals, &b"{}"[..])
        );
        let per_point = enc.len() as f64 / 10_000.0;
        assert!(per_point < 11.5, "{per_point} bytes per point");
        for cut in [0, 1, 10, enc.len() / 2, enc.len() - 1] {
            assert!(decode(&enc[..cut]).is_err());
        }
    }
}
