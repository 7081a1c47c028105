//! What the CloudKitty endpoints share: errors in CloudKitty's shape, the rating job, JSON
//! bodies and decimals as its clients send them.

use crate::error::ApiErr;
use crate::rating::Rating;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use skymeter_rating::decimal::{decimal_from_f64, parse_decimal};
use skymeter_rating::hashmap::RuleError;
use skymeter_rating::Decimal;
use skymeter_store::StoreError;
use std::sync::Arc;

/// An error in WSME's shape (CloudKitty v1), which the client shows: `faultstring`.
pub struct CkErr {
    status: StatusCode,
    message: String,
}

impl CkErr {
    pub fn new(status: StatusCode, message: impl Into<String>) -> CkErr {
        CkErr {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> CkErr {
        CkErr::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> CkErr {
        CkErr::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for CkErr {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        (
            self.status,
            Json(
                json!({"faultcode": fault, "faultstring": self.message, "debuginfo": null,
                        // CloudKitty v2 (flask) answers `message`; both clients read theirs.
                        "message": self.message}),
            ),
        )
            .into_response()
    }
}

impl From<RuleError> for CkErr {
    fn from(e: RuleError) -> CkErr {
        let status = match e {
            RuleError::NotFound { .. } => StatusCode::NOT_FOUND,
            RuleError::Conflict(_) => StatusCode::CONFLICT,
            RuleError::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        CkErr::new(status, e.to_string())
    }
}

impl From<StoreError> for CkErr {
    fn from(e: StoreError) -> CkErr {
        let status = match e {
            StoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        CkErr::new(status, e.to_string())
    }
}

impl From<ApiErr> for CkErr {
    fn from(e: ApiErr) -> CkErr {
        CkErr::new(e.status, e.body.message)
    }
}

pub type CkResult<T> = Result<T, CkErr>;

/// The rating job, or CloudKitty's answer when the server rates nothing.
pub fn job(st: &AppState) -> CkResult<Arc<Rating>> {
    st.rating.clone().ok_or_else(|| {
        CkErr::not_found(
            "rating is not configured on this skymeter server: add a `[rating]` table with \
             `rules = \"FILE\"` to its config file (docs/rating.md)",
        )
    })
}

/// A JSON body, or the error naming what is wrong with it. CloudKitty's client sends
/// `Content-Type: application/json`; bodies are small (rules, quotes).
pub async fn json_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> CkResult<T> {
    let raw =
        crate::body::read_raw(headers, body, crate::body::Encoding::Identity, st.limits).await?;
    serde_json::from_slice(&raw).map_err(|e| {
        CkErr::bad_request(format!("the request body is not what this call takes: {e}"))
    })
}

/// A decimal as CloudKitty's clients send it: a JSON number (the CLI's `float`) or text.
pub fn decimal_field(v: &Value, field: &str) -> CkResult<Decimal> {
    match v {
        Value::String(s) => {
            parse_decimal(s).map_err(|e| CkErr::bad_request(format!("`{field}`: {e}")))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Decimal::from(i)),
            None => decimal_from_f64(n.as_f64().unwrap_or(f64::NAN))
                .map_err(|e| CkErr::bad_request(format!("`{field}`: {e}"))),
        },
        _ => Err(CkErr::bad_request(format!("`{field}` must be a number"))),
    }
}
