//! Prometheus' stale marker: the one NaN that means "this series ended here".

/// The bits of Prometheus' stale marker: a NaN that ends a series (a scrape target went
/// away). Any other NaN is an ordinary value.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale marker as a float, for sources that write one.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is Prometheus' stale marker (compared by bits: all NaNs are unequal).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}
