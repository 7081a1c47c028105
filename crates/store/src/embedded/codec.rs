//! Small binary helpers shared by the WAL and the block files: LEB128 varints, zigzag,
//! little-endian fixed ints, a bounds-checked reader, time conversion, and the opaque page
//! cursors.

use crate::StoreError;
use base64::Engine as _;
use chrono::{DateTime, Utc};

pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads what the `put_*` functions wrote; every read is bounds-checked and fails with a
/// message naming what was being read, never panics on bad input.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!("truncated {what}"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    pub fn i64(&mut self, what: &str) -> Result<i64, String> {
        Ok(self.u64(what)? as i64)
    }

    pub fn f64(&mut self, what: &str) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    pub fn uvarint(&mut self, what: &str) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!("bad varint in {what}"))
    }

    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.uvarint(what)? as usize;
        self.take(n, what)
    }
}

/// Nanoseconds since the epoch: the one time representation on disk and in SQLite.
/// It covers 1677–2262, which `ingest` checks.
pub fn to_ns(t: DateTime<Utc>) -> Option<i64> {
    t.timestamp_nanos_opt()
}

pub fn to_ns_saturating(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub fn from_ns(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// Page cursors are opaque to clients: base64url of a small JSON value. The JSON carries
/// a `kind` so a cursor from one list is refused by another.
pub fn encode_cursor(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn decode_cursor(s: &str, kind: &str) -> Result<serde_json::Value, StoreError> {
    let bad = || {
        StoreError::BadRequest(format!(
            "cursor `{s}` is not a cursor of this list; pass the next_cursor of the previous page unchanged"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("kind").and_then(|k| k.as_str()) != Some(kind) {
        return Err(bad());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        let mut out = Vec::new();
        let vals = [0u64, 1, 127, 128, 300, u64::MAX];
        for v in vals {
            put_uvarint(&mut out, v);
        }
        let mut r = Reader::new(&out);
        for v in vals {
            assert_eq!(r.uvarint("v").unwrap(), v);
        }
        assert_eq!(r.remaining(), 0);
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -60_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert!(Reader::new(&[0x80]).uvarint("x").is_err());
    }
}
