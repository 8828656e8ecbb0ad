//! What every request handler shares: plain data, built once by
//! [`crate::app`]. The state offers no services of its own; each part does
//! its own job (the cache caches, the validators validate, changes announce
//! changes), and nothing below the handlers imports this module.

use crate::access::Access;
use crate::cache::ResponseCache;
use crate::changes::Changes;
use crate::cluster::Cluster;
use crate::config::{CompressionSettings, CorsSettings, WriteSettings};
use crate::db::Database;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::validators::Validators;
use brisk_query::rows::Budget;
use brisk_query::{CursorCodec, Limits, Schema};
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub schema: Schema,
    pub db: Database,
    pub limits: Limits,
    pub cursors: CursorCodec,
    /// Who asks, as which role, within which rate limit; each role's
    /// OpenAPI document.
    pub access: Access,
    pub validators: Validators,
    pub changes: Changes,
    /// Admission to the database: its turns, in turn per client.
    pub gate: Gate,
    /// What one answer may hold.
    pub budget: Budget,
    /// One deadline for a request's database work.
    pub read_timeout: Duration,
    pub cache: ResponseCache,
    pub compression: CompressionSettings,
    /// One background recompression at a time.
    pub recompression: tokio::sync::Semaphore,
    pub writes: WriteSettings,
    /// Shared cache, versions and invalidations, when Redis is configured.
    pub cluster: Option<Arc<Cluster>>,
    /// Names this instance in change notifications.
    pub instance_id: String,
    pub metrics: Arc<Metrics>,
    /// Which browser origins may read answers.
    pub cors: Arc<CorsSettings>,
    /// Whether `/metrics` is served on the main address (not on `metrics.listen`).
    pub metrics_here: bool,
}
