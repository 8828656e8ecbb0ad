//! The application, built from [`Settings`]: database pool, schema, cache,
//! versions, the Redis link, router. The listener and the shutdown signal
//! are injected, so tests run the real app on port 0.

use crate::cache::{Entry, Freshness, ResponseCache};
use crate::cluster::Cluster;
use crate::conditional::Etag;
use crate::config::{CachePolicy, Settings};
use crate::db::Database;
use crate::encoding::Levels;
use crate::versions::{Change, Snapshot, Versions};
use crate::{changes, openapi, routes};
use anyhow::Context;
use brisk_query::schema::ResourceKind;
use brisk_query::{CursorCodec, Limits, Schema};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What every request handler shares.
pub struct AppState {
    pub schema: Schema,
    pub db: Database,
    pub limits: Limits,
    pub cursors: CursorCodec,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Bytes,
    pub versions: Arc<Versions>,
    pub cache: ResponseCache,
    pub cache_enabled: bool,
    pub honor_client_no_cache: bool,
    policies: HashMap<String, CachePolicy>,
    pub levels: Levels,
    pub min_compress_bytes: usize,
    pub recompress_after_hits: u64,
    /// One background recompression at a time.
    pub recompression: tokio::sync::Semaphore,
    etag_seed: Arc<EtagSeed>,
    pub writes_enabled: bool,
    pub require_if_match: bool,
    pub max_write_rows: usize,
    pub max_body_bytes: usize,
    /// Writes to one row go one at a time (striped by table and key).
    row_locks: Vec<tokio::sync::Mutex<()>>,
    /// Shared cache, versions and invalidations, when `redis.url` is set.
    pub cluster: Option<Arc<Cluster>>,
    /// While Redis is away, cached answers older than this are not served.
    degraded_ttl: Duration,
    /// Names this instance in change notifications, to skip its own.
    pub instance_id: String,
    /// How often SQLite is checked for outside writes (zero: never).
    pub change_poll: Duration,
    pub stats: AppStats,
}

/// Counters beyond the cache's.
#[derive(Default)]
pub struct AppStats {
    /// Changes made outside brisk that were noticed.
    pub external_changes: AtomicU64,
}

/// The seed mixed into every ETag. A random one per process, so that a tag
/// never outlives the versions it was made from; with Redis, one shared by
/// the cluster, so every instance gives the same answer the same tag.
pub struct EtagSeed {
    local: [u8; 16],
    shared: RwLock<Option<Vec<u8>>>,
    use_shared: AtomicBool,
}

impl EtagSeed {
    fn new() -> EtagSeed {
        let mut local = [0u8; 16];
        getrandom::fill(&mut local).expect("the operating system provides random bytes");
        EtagSeed {
            local,
            shared: RwLock::new(None),
            use_shared: AtomicBool::new(false),
        }
    }

    pub fn local_hex(&self) -> String {
        self.local.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn set_shared(&self, seed: &str) {
        *self.shared.write().expect("seed lock") = Some(seed.as_bytes().to_vec());
    }

    pub fn use_shared(&self, on: bool) {
        self.use_shared.store(on, Ordering::Release);
    }

    fn hash_into(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        if self.use_shared.load(Ordering::Acquire)
            && let Some(shared) = self.shared.read().expect("seed lock").as_deref()
        {
            hasher.update(shared);
            return;
        }
        hasher.update(&self.local);
    }
}

impl AppState {
    /// The lock that serialises writes to one row.
    pub fn row_lock(&self, table: &str, key: &str) -> &tokio::sync::Mutex<()> {
        let hash = xxhash_rust::xxh3::xxh3_64(format!("{table}\0{key}").as_bytes());
        &self.row_locks[(hash % self.row_locks.len() as u64) as usize]
    }

    /// Records changes this instance made: every answer built from what
    /// changed stops being served here at once, and on every other instance
    /// before this returns (when Redis is there).
    pub async fn announce(&self, changes: &[Change]) {
        for change in changes {
            self.versions.apply(change);
        }
        self.publish(changes).await;
    }

    /// A version for a change: from the cluster's clock when Redis is there,
    /// else from this instance's.
    pub async fn next_version(&self) -> u64 {
        if let Some(cluster) = &self.cluster
            && let Some(version) = cluster.next_version().await
        {
            self.versions.observe_clock(version);
            return version;
        }
        self.versions.next_version()
    }

    /// Tells the other instances of changes already applied here.
    pub async fn publish(&self, changes: &[Change]) {
        if let Some(cluster) = &self.cluster {
            cluster.announce(changes).await;
        }
    }

    pub fn policy(&self, resource: &str) -> &CachePolicy {
        self.policies
            .get(resource)
            .expect("every resource has a policy")
    }

    /// The strong ETag of a canonical request at the given versions.
    pub fn etag(&self, canonical: &str, versions: &Snapshot) -> Etag {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        self.etag_seed.hash_into(&mut hasher);
        hasher.update(canonical.as_bytes());
        versions.hash_into(&mut hasher);
        Etag(format!("{:032x}", hasher.digest128()))
    }

    /// Whether a cached entry may be served: current versions, within its
    /// TTL, and, while Redis is away, young enough that a write elsewhere
    /// could not have gone unnoticed for long.
    pub fn freshness(&self, entry: &Entry, now: Instant) -> Freshness {
        let freshness = entry.freshness(&self.versions, now);
        match &self.cluster {
            Some(cluster)
                if !cluster.is_connected()
                    && now.saturating_duration_since(entry.created) > self.degraded_ttl =>
            {
                Freshness::Expired
            }
            _ => freshness,
        }
    }
}

/// A built application, not yet listening.
pub struct App {
    pub state: Arc<AppState>,
    pub service: routes::Layered,
}

impl App {
    /// Connects to the database, reads its schema and builds the router.
    /// Background work (outside-change watching, Redis) starts here too.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let db = Database::connect(settings).await?;
        let schema = load_schema(&db, settings).await?;
        let openapi = openapi::document(&schema, &settings.limits, settings.config.writes);
        let openapi =
            Bytes::from(serde_json::to_vec(&openapi).context("rendering the OpenAPI document")?);
        let versions = Arc::new(
            Versions::new(schema.resource_names(), db.last_changed().await).with_views(
                schema
                    .resources()
                    .filter(|r| r.kind == ResourceKind::View)
                    .map(|r| r.name.as_str()),
            ),
        );
        let policies = schema
            .resource_names()
            .map(|name| (name.to_string(), settings.cache_policy(name)))
            .collect();
        let config = &settings.config;
        let cluster = match config.redis.url.as_str() {
            "" => None,
            url => Some(Cluster::new(url, &config.redis.prefix)?),
        };
        let etag_seed = Arc::new(EtagSeed::new());
        let state = Arc::new(AppState {
            schema,
            db,
            limits: settings.limits,
            cursors: CursorCodec::new(settings.cursor_secret.clone()),
            openapi,
            versions: versions.clone(),
            cache: ResponseCache::new(config.cache.max_bytes),
            cache_enabled: config.cache.enabled,
            honor_client_no_cache: config.cache.honor_client_no_cache,
            policies,
            levels: settings.levels,
            min_compress_bytes: config.compression.min_bytes as usize,
            recompress_after_hits: config.compression.recompress_after_hits,
            recompression: tokio::sync::Semaphore::new(1),
            etag_seed: etag_seed.clone(),
            writes_enabled: config.writes,
            require_if_match: config.http.require_if_match,
            max_write_rows: config.limits.max_write_rows as usize,
            max_body_bytes: config.limits.max_body_bytes as usize,
            row_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            cluster: cluster.clone(),
            degraded_ttl: Duration::from_millis(config.redis.degraded_ttl_ms),
            instance_id: settings.instance_id.clone(),
            change_poll: Duration::from_millis(config.changes.poll_ms),
            stats: AppStats::default(),
        });
        if let Some(cluster) = cluster {
            tokio::spawn(cluster.run(versions, etag_seed));
        }
        changes::watch(&state);
        let service = routes::service(state.clone());
        Ok(App { state, service })
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, tower::make::Shared::new(self.service))
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
