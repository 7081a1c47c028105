//! The findings' shared half: their config, the price tables, and the last computation
//! (findings read every series of two weeks: one computation serves the requests of the
//! next minute). `handlers/savings.rs` serves them.

use crate::error::ApiErr;
use chrono::{DateTime, Utc};
use skymeter_savings::findings::{self, Finding, FindingsConfig, Prices};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the findings are computed with, and the last computation (findings read every
/// series of two weeks: one computation serves the requests of the next minute).
pub struct Savings {
    pub config: FindingsConfig,
    pub prices: Prices,
    cache: std::sync::Mutex<Option<Cached>>,
}

struct Cached {
    at: DateTime<Utc>,
    computed: Instant,
    findings: Arc<Vec<Finding>>,
}

/// How long a computation "as of now" answers later requests.
const FRESH_FOR: Duration = Duration::from_secs(60);

impl Savings {
    pub fn new(config: FindingsConfig, prices: Prices) -> Savings {
        Savings {
            config,
            prices,
            cache: std::sync::Mutex::new(None),
        }
    }

    /// The findings as of `at` (`None`: now, or the computation of the last minute).
    pub fn findings(
        &self,
        store: &dyn skymeter_store::Store,
        at: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, Arc<Vec<Finding>>), ApiErr> {
        if at.is_none() {
            if let Some(c) = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                if c.computed.elapsed() < FRESH_FOR {
                    return Ok((c.at, c.findings.clone()));
                }
            }
        }
        let when = at.unwrap_or_else(Utc::now);
        let found = Arc::new(
            findings::compute(store, &self.prices, &self.config, when).map_err(ApiErr::store)?,
        );
        if at.is_none() {
            *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
                at: when,
                computed: Instant::now(),
                findings: found.clone(),
            });
        }
        Ok((when, found))
    }
}
