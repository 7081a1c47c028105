//! Findings (placeholder).
