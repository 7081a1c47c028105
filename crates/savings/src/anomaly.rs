//! Daily cost anomalies (placeholder: filled by the anomaly work).
