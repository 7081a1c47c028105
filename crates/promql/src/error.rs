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

/// A failed query: its kind, a message for people, and for parse errors the byte offset
/// in the query where parsing stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
    pub position: Option<usize>,
}

impl QueryError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        QueryError {
            kind,
            message: message.into(),
            position: None,
        }
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
