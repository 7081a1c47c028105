//! Query errors, kinded like the `errorType` of Prometheus' HTTP API.

use std::fmt;

/// What went wrong, as Prometheus' HTTP API names it in `errorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query or its parameters are invalid (parse errors, bad step...). HTTP 400.
    BadData,
    /// Evaluation failed (many-to-many matching, too many samples...). HTTP 422.
    Execution,
    /// The query ran past its deadline. HTTP 503.
    Timeout,
    /// The query was canceled. HTTP 503.
    Canceled,
    /// The series source failed. HTTP 500.
    Internal,
}

impl ErrorKind {
    /// The `errorType` string of Prometheus' HTTP API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status Prometheus answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadData => 400,
            ErrorKind::Execution => 422,
            ErrorKind::Timeout | ErrorKind::Canceled => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// A configurable limit a query ran into, so that a server can name the setting behind
/// it (the engine knows only [`crate::Options`]' field names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`crate::Options::max_series`].
    MaxSeries,
    /// [`crate::Options::max_samples`].
    MaxSamples,
    /// [`crate::Options::timeout`].
    Timeout,
}

/// A failed query: its kind, a message for people, for parse errors the byte offset in
/// the query where parsing stopped, and for a query stopped by a limit, which one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
    pub position: Option<usize>,
    pub limit: Option<Limit>,
}

impl QueryError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        QueryError {
            kind,
            message: message.into(),
            position: None,
            limit: None,
        }
    }

    /// The query selects more than `max` series.
    pub fn too_many_series(max: usize) -> Self {
        QueryError {
            limit: Some(Limit::MaxSeries),
            ..Self::execution(format!(
                "query would select more than {max} series (limit max_series); narrow the selectors or the time range"
            ))
        }
    }

    /// The query loads or produces more than `max` samples.
    pub fn too_many_samples(max: usize) -> Self {
        QueryError {
            limit: Some(Limit::MaxSamples),
            ..Self::execution(format!(
                "query processing would load too many samples into memory in query execution (more than {max}, limit max_samples); narrow the selectors, the time range or a subquery's range, or use a larger step"
            ))
        }
    }

    /// The query ran past its deadline (`limit` as configured, for the message).
    pub fn timed_out(limit: Option<std::time::Duration>, during: &str) -> Self {
        let limit = limit.map_or("none".to_string(), |d| format!("{d:?}"));
        QueryError {
            limit: Some(Limit::Timeout),
            ..Self::timeout(format!(
                "query timed out in {during} (limit timeout = {limit})"
            ))
        }
    }

    /// The caller canceled the query (its client went away).
    pub fn canceled(during: &str) -> Self {
        Self::new(
            ErrorKind::Canceled,
            format!("query canceled in {during}: the client went away"),
        )
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadData, message)
    }

    pub fn execution(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Execution, message)
    }

    /// A failure of the series source (store), e.g. an I/O error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// The `errorType` of Prometheus' HTTP API.
    pub fn error_type(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

pub(crate) type Result<T> = std::result::Result<T, QueryError>;
