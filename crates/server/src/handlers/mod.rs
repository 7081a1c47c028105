//! One module per group of endpoints. Handlers parse and check the request, call the
//! store off the async threads, and shape the answer; they hold no state of their own.

pub mod agents;
pub mod budgets;
pub mod export;
pub mod ingest;
pub mod ops;
pub mod prom;
pub mod query;
pub mod rating;
pub mod remote_write;
pub mod savings;

use crate::body::{self, Encoding};
use crate::error::ApiErr;
use crate::state::AppState;
use axum::body::Body;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

/// A small JSON body (registration, heartbeat): same encodings and limits as ingest,
/// parsed on the request's own task. An empty body is refused.
pub(crate) async fn small_json<T: DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiErr> {
    body::check_content_type(headers)?;
    let enc = Encoding::from_headers(headers)?;
    let raw = body::read_raw(headers, body, enc, st.limits).await?;
    let bytes = body::decode(raw, enc, st.limits.max_bytes)?;
    // The document marks these bodies required; an empty one is refused, not read as `{}`,
    // so that a client which forgot its body hears about it.
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiErr::bad_request(
            "the request body is empty; send a JSON object (`{}` at least)",
        ));
    }
    // serde reads a struct from a JSON array too (`[0]` as the first field); the document
    // says object, and so does the server.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiErr::bad_request(
            "the request body must be a JSON object (`{...}`)",
        ));
    }
    body::parse_json(&bytes, "bad_request")
}
