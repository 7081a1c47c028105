//! Storage for the server: one [`Store`] trait, so that backends (the embedded one here, a
//! PostgreSQL one later) are interchangeable, and the types its queries return.
//!
//! The trait is synchronous: backends do blocking file and database I/O, and the server
//! calls them from `tokio::task::spawn_blocking`. Every list is a [`Page`] with an opaque
//! cursor; walking the pages of a query returns each row exactly once, even while ingest
//! goes on (keyset pagination on an immutable unique key).

mod embedded;
pub mod prom;
pub mod scaleout;
mod store;
mod types;

pub use embedded::codec::{from_ns, to_ns_saturating};
pub use embedded::tsdb::{bucket_end, each_bucket};
pub use embedded::{tokens, EmbeddedOptions, EmbeddedStore, TokenAdmin};
pub use prom::PromQuerier;
pub use scaleout::{PgMeta, PointWriter, ScaleOutOptions, ScaleOutStore};
pub use store::{for_each_resource, Store};
pub use types::{
    AgentRecord, CostGroup, CostLineQuery, CostQuery, ExtentFn, IngestOutcome, Page, PageQuery,
    PointsQuery, ResourceChange, ResourceQuery, RetentionReport, ScanFn, Scope, SeriesExtent,
    SeriesInfo, SeriesKey, SeriesPoints, SeriesQuery, SeriesScan, StoreError, StoreStats,
    StoredResource, TokenInfo,
};
