//! The global budget of in-flight ingest bytes: what keeps many agents posting at once
//! (say, all of them flushing their buffers after the server restarted) from holding more
//! request bodies in memory than the server can afford.
//!
//! Each ingest-scope request reserves, before its body is read, the most memory its body
//! can take: its `Content-Length` (or the size cap when it does not say), plus, when it is
//! compressed, the decompressed size cap (a small gzip body may expand to that). The
//! reservation is held until the answer is made. A request that does not fit is answered
//! `429 overloaded` with `Retry-After`, which the agent's `server` publisher honours
//! (keeping the batch). Reserving up front, not while reading, keeps the rule "limits are
//! enforced before the work".

use crate::body::{Encoding, Limits};
use crate::error::ApiErr;
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What a client is told to wait before trying again.
pub const RETRY_AFTER_S: u64 = 1;

/// The budget: one permit per byte.
pub struct IngestBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    limits: Limits,
}

impl IngestBudget {
    /// `total` must be at most [`Semaphore::MAX_PERMITS`] (checked by the config).
    pub fn new(total: usize, limits: Limits) -> IngestBudget {
        IngestBudget {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
            limits,
        }
    }

    /// The bytes a request with these headers reserves.
    pub fn reservation(&self, headers: &axum::http::HeaderMap) -> usize {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // An unknown encoding is refused by the handler before any reading: count it as
        // identity, as it costs nothing more.
        let encoding = Encoding::from_headers(headers).unwrap_or(Encoding::Identity);
        let (cap, expands_to) = match encoding {
            Encoding::Identity => (self.limits.max_bytes, 0),
            Encoding::Gzip | Encoding::Zstd => {
                (self.limits.max_compressed_bytes, self.limits.max_bytes)
            }
        };
        // A body over its cap is refused (413) after reading at most the cap.
        let received = declared.map_or(cap, |n| n.min(cap as u64) as usize);
        received.saturating_add(expands_to)
    }

    /// Bytes reserved right now.
    pub fn in_flight(&self) -> usize {
        self.total
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.bytes.available_permits())
    }
}

/// The middleware on the ingest-scope routes.
pub async fn reserve(
    State((budget, metrics)): State<(Arc<IngestBudget>, Arc<Metrics>)>,
    req: Request,
    next: Next,
) -> Response {
    let want = budget.reservation(req.headers());
    // The config keeps the budget at least one request's worst case, so `want` fits when
    // the server is idle; u32 is the semaphore's unit of one acquisition.
    let permits = u32::try_from(want).unwrap_or(u32::MAX);
    let Ok(reserved) = budget.bytes.clone().try_acquire_many_owned(permits) else {
        metrics.budget_refusals.fetch_add(1, Ordering::Relaxed);
        let mut resp = ApiErr::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "the server is busy: ingest requests in flight hold {} of its {} byte budget \
                 (`ingest_budget_bytes`) and this one needs {want}; try again in \
                 {RETRY_AFTER_S} s, as Retry-After says",
                budget.in_flight(),
                budget.total
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        return resp;
    };
    let resp = next.run(req).await;
    drop(reserved);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn budget() -> IngestBudget {
        IngestBudget::new(
            100 << 20,
            Limits {
                max_bytes: 32 << 20,
                max_compressed_bytes: 8 << 20,
            },
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_request_reserves_its_worst_case() {
        let b = budget();
        assert_eq!(b.reservation(&headers(&[("content-length", "1000")])), 1000);
        assert_eq!(b.reservation(&HeaderMap::new()), 32 << 20);
        assert_eq!(
            b.reservation(&headers(&[("content-length", "999999999999")])),
            32 << 20
        );
        assert_eq!(
            b.reservation(&headers(&[
                ("content-length", "1000"),
                ("content-encoding", "gzip")
            ])),
            1000 + (32 << 20)
        );
        assert_eq!(
            b.reservation(&headers(&[("content-encoding", "zstd")])),
            (8 << 20) + (32 << 20)
        );
    }
}
