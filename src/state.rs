//! What every request handler shares: plain data, built once by
//! [`crate::app`]. The state offers no services of its own; each part does
//! its own job (the cache caches, the validators validate, changes announce
//! changes), and nothing below the handlers imports this module.

use crate::cache::ResponseCache;
use crate::changes::Changes;
use crate::cluster::Cluster;
use crate::config::{CompressionSettings, WriteSettings};
use crate::db::Database;
use crate::validators::Validators;
use brisk_query::{CursorCodec, Limits, Schema};
use bytes::Bytes;
use std::sync::Arc;

pub struct AppState {
    pub schema: Schema,
    pub db: Database,
    pub limits: Limits,
    pub cursors: CursorCodec,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Bytes,
    pub validators: Validators,
    pub changes: Changes,
    pub cache: ResponseCache,
    pub compression: CompressionSettings,
    /// One background recompression at a time.
    pub recompression: tokio::sync::Semaphore,
    pub writes: WriteSettings,
    pub row_locks: RowLocks,
    /// Shared cache, versions and invalidations, when Redis is configured.
    pub cluster: Option<Arc<Cluster>>,
    /// Names this instance in change notifications.
    pub instance_id: String,
}

/// Writes to one row go one at a time, so that a precondition checked
/// before a write still holds when it lands. Striped by table and key.
pub struct RowLocks(Vec<tokio::sync::Mutex<()>>);

impl RowLocks {
    pub fn new(stripes: usize) -> RowLocks {
        RowLocks((0..stripes).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    /// The lock that serialises writes to one row.
    pub fn of(&self, table: &str, key: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(table.as_bytes());
        hasher.update(&[0]);
        hasher.update(key.as_bytes());
        &self.0[(hasher.digest() % self.0.len() as u64) as usize]
    }
}
