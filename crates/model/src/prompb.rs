//! The messages of Prometheus' remote-write 1.0 (`prompb/remote.proto` and `types.proto`)
//! that carry samples, declared by hand with prost's derive (field numbers as there): the
//! server's receiver decodes them and the `remote_write` publisher encodes them, so both
//! speak one declaration. Fields not declared here (metadata, exemplars, native histograms)
//! are skipped by the decoder: accepted and ignored.
//!
//! Declared by hand rather than generated: four small messages do not justify a `protoc`
//! build step, and no crate on crates.io publishes them without a client stack.
//!
//! The body of a request is a snappy *block* (not the framed format) of an encoded
//! [`WriteRequest`], with `Content-Encoding: snappy`, `Content-Type: application/x-protobuf`
//! and `X-Prometheus-Remote-Write-Version: 0.1.0`.

/// `prometheus.WriteRequest`; field 3 (`metadata`) is not declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`; fields 3 (`exemplars`) and 4 (`histograms`) are not declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, each name once (receivers such as Prometheus refuse otherwise).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Ordered by time.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time in milliseconds since the epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The value of `X-Prometheus-Remote-Write-Version` for these messages.
pub const VERSION: &str = "0.1.0";
