//! Every error answer of the API, as one type: a status plus the [`ApiErrorBody`] that the
//! model crate defines, so that clients (the agent, the UI, curl users) always get the same
//! JSON shape with a machine-readable `code` and a message that says what to do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skymeter_model::api::{ApiError, ApiErrorBody};
use skymeter_model::FieldError;
use skymeter_store::StoreError;

/// An error answer: status, code, message and, for bodies, the bad fields.
#[derive(Debug, Clone)]
pub struct ApiErr {
    pub status: StatusCode,
    pub body: ApiError,
}

impl ApiErr {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            body: ApiError {
                code: code.to_string(),
                message: message.into(),
                fields: Vec::new(),
            },
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> ApiErr {
        self.body.fields = fields;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A storage failure: a bad cursor or range is the client's; anything else is ours and
    /// is logged with its full text, while the client gets a generic message (the text
    /// names files and tables on the server, which are none of a client's business).
    pub fn store(err: StoreError) -> ApiErr {
        match err {
            StoreError::BadRequest(m) => ApiErr::bad_request(m),
            other => {
                tracing::error!(error = %other, "storage failed");
                ApiErr::internal("storage failed; the server's log has the details")
            }
        }
    }

    /// A blocking task that panicked or was cancelled.
    pub fn join(err: tokio::task::JoinError) -> ApiErr {
        tracing::error!(error = %err, "request task failed");
        ApiErr::internal("the server failed while handling the request; see its log")
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let body = serde_json::to_vec(&ApiErrorBody { error: self.body })
            .expect("an error body serializes");
        let mut resp = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"skymeter\""),
            );
        }
        resp
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiErr>;

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> ApiErr {
        ApiErr::store(e)
    }
}
