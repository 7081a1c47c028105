//! The head: points not yet sealed into a block, per series, in the order they were
//! applied (WAL order). Readers sort and de-duplicate on the way out; a later write of the
//! same series and timestamp wins.

use super::series::IdMap;

#[derive(Default, Clone)]
pub struct SeriesBuf {
    pub ts: Vec<i64>,
    pub vals: Vec<f64>,
    pub min_ts: i64,
    pub max_ts: i64,
}

#[derive(Default)]
pub struct Head {
    pub series: IdMap<SeriesBuf>,
    pub points: usize,
}

impl Head {
    pub fn push(&mut self, id: u64, ts: i64, val: f64) {
        let b = self.series.entry(id).or_insert_with(|| SeriesBuf {
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ..SeriesBuf::default()
        });
        b.ts.push(ts);
        b.vals.push(val);
        b.min_ts = b.min_ts.min(ts);
        b.max_ts = b.max_ts.max(ts);
        self.points += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Points of one series in `[start, end)`, in apply order.
    pub fn range(
        &self,
        id: u64,
        start: i64,
        end: i64,
        out_ts: &mut Vec<i64>,
        out_vals: &mut Vec<f64>,
    ) {
        if let Some(b) = self.series.get(&id) {
            if b.max_ts < start || b.min_ts >= end {
                return;
            }
            for (t, v) in b.ts.iter().zip(&b.vals) {
                if *t >= start && *t < end {
                    out_ts.push(*t);
                    out_vals.push(*v);
                }
            }
        }
    }

    /// Drops points before `before`; returns how many.
    pub fn drop_before(&mut self, before: i64) -> u64 {
        let mut dropped = 0u64;
        self.series.retain(|_, b| {
            if b.min_ts >= before {
                return true;
            }
            let (mut ts, mut vals) = (Vec::new(), Vec::new());
            for (t, v) in b.ts.iter().zip(&b.vals) {
                if *t >= before {
                    ts.push(*t);
                    vals.push(*v);
                }
            }
            dropped += (b.ts.len() - ts.len()) as u64;
            b.min_ts = ts.iter().copied().min().unwrap_or(i64::MAX);
            b.ts = ts;
            b.vals = vals;
            !b.ts.is_empty()
        });
        self.points -= dropped as usize;
        dropped
    }
}

/// Sorts by time keeping apply order among equal timestamps, then keeps the last of each
/// run of equal timestamps: the later write wins.
pub fn sort_dedup(ts: &mut Vec<i64>, vals: &mut Vec<f64>) {
    if ts.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    let mut idx: Vec<u32> = (0..ts.len() as u32).collect();
    idx.sort_by_key(|&i| ts[i as usize]); // stable
    let mut nt = Vec::with_capacity(ts.len());
    let mut nv: Vec<f64> = Vec::with_capacity(ts.len());
    for i in idx {
        let (t, v) = (ts[i as usize], vals[i as usize]);
        if nt.last() == Some(&t) {
            *nv.last_mut().unwrap() = v;
        } else {
            nt.push(t);
            nv.push(v);
        }
    }
    *ts = nt;
    *vals = nv;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_write_wins() {
        let mut ts = vec![3, 1, 2, 1, 3];
        let mut vals = vec![30.0, 10.0, 20.0, 11.0, 31.0];
        sort_dedup(&mut ts, &mut vals);
        assert_eq!(ts, [1, 2, 3]);
        assert_eq!(vals, [11.0, 20.0, 31.0]);
    }
}
