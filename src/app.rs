//! The application, built from [`Settings`]: database pool, schema, router.
//! The listener and the shutdown signal are injected, so tests run the real
//! app on port 0.

use crate::cache::ResponseCache;
use crate::conditional::Etag;
use crate::config::{CachePolicy, Settings};
use crate::db::Database;
use crate::encoding::Levels;
use crate::versions::{Snapshot, Versions};
use crate::{openapi, routes};
use anyhow::Context;
use axum::Router;
use brisk_query::{CursorCodec, Limits, Schema};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every request handler shares.
pub struct AppState {
    pub schema: Schema,
    pub db: Database,
    pub limits: Limits,
    pub cursors: CursorCodec,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Bytes,
    pub versions: Versions,
    pub cache: ResponseCache,
    pub cache_enabled: bool,
    pub honor_client_no_cache: bool,
    policies: HashMap<String, CachePolicy>,
    pub levels: Levels,
    pub min_compress_bytes: usize,
    pub recompress_after_hits: u64,
    /// One background recompression at a time.
    pub recompression: tokio::sync::Semaphore,
    /// Mixed into every ETag: differs between processes (and configs), so a
    /// tag never outlives the versions it was computed from.
    etag_seed: [u8; 16],
}

impl AppState {
    pub fn policy(&self, resource: &str) -> &CachePolicy {
        self.policies
            .get(resource)
            .expect("every resource has a policy")
    }

    /// The strong ETag of a canonical request at the given table versions.
    pub fn etag(&self, canonical: &str, versions: &Snapshot) -> Etag {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.etag_seed);
        hasher.update(canonical.as_bytes());
        versions.hash_into(&mut hasher);
        Etag(format!("{:032x}", hasher.digest128()))
    }
}

/// A built application, not yet listening.
pub struct App {
    pub state: Arc<AppState>,
    pub router: Router,
}

impl App {
    /// Connects to the database, reads its schema and builds the router.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let db = Database::connect(settings).await?;
        let schema = load_schema(&db, settings).await?;
        let openapi = openapi::document(&schema, &settings.limits);
        let openapi =
            Bytes::from(serde_json::to_vec(&openapi).context("rendering the OpenAPI document")?);
        let versions = Versions::new(schema.resource_names(), db.last_changed().await);
        let policies = schema
            .resource_names()
            .map(|name| (name.to_string(), settings.cache_policy(name)))
            .collect();
        let mut etag_seed = [0u8; 16];
        getrandom::fill(&mut etag_seed).expect("the operating system provides random bytes");
        let config = &settings.config;
        let state = Arc::new(AppState {
            schema,
            db,
            limits: settings.limits,
            cursors: CursorCodec::new(settings.cursor_secret.clone()),
            openapi,
            versions,
            cache: ResponseCache::new(config.cache.max_bytes),
            cache_enabled: config.cache.enabled,
            honor_client_no_cache: config.cache.honor_client_no_cache,
            policies,
            levels: settings.levels,
            min_compress_bytes: config.compression.min_bytes as usize,
            recompress_after_hits: config.compression.recompress_after_hits,
            recompression: tokio::sync::Semaphore::new(1),
            etag_seed,
        });
        let router = routes::router(state.clone());
        Ok(App { state, router })
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Introspects the database and applies the config's exposed and hidden
/// tables and columns.
pub async fn load_schema(db: &Database, settings: &Settings) -> anyhow::Result<Schema> {
    let found = db
        .introspect(&settings.schema_name)
        .await
        .context("cannot read the database schema")?;
    let schema = Schema::new(found.resources, &found.foreign_keys).restrict(
        |table| settings.serves_table(table),
        |table, column| settings.serves_column(table, column),
    );
    if schema.resources().next().is_none() {
        tracing::warn!("the database has no tables or views to serve");
    }
    Ok(schema)
}
