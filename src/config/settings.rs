//! [`Settings`]: the configuration checked once, at start-up, and cut into
//! one typed section per component. Each component is handed its own
//! section; "not set" is `None`; a bad value stops brisk with a message that
//! names the key.

use super::Config;
use crate::encoding::Levels;
use anyhow::{Context, bail};
use axum::http::HeaderValue;
use brisk_query::Limits;
use brisk_query::rows::Budget;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The configuration, checked and ready to use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub schema: SchemaSettings,
    pub reads: ReadSettings,
    pub writes: WriteSettings,
    pub cache: CacheSettings,
    pub compression: CompressionSettings,
    /// `None`: no Redis, one instance on its own.
    pub redis: Option<RedisSettings>,
    pub changes: ChangeSettings,
    pub log: LogSettings,
    /// Where `/metrics` is served apart from the API, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub cors: CorsSettings,
    pub access: super::AccessSettings,
    /// Names this process in change notifications, so it skips its own.
    pub instance_id: String,
}

/// Connections and what a request may send: the bounds checked before a
/// request reaches a handler.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// A connection without a complete request head for this long is closed.
    pub idle_timeout: Duration,
    /// A request body not received in full within this time: 408.
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub max_url_bytes: usize,
    pub max_header_bytes: usize,
}

/// Where the data lives and how brisk talks to it.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Connections in the pool (SQLite: read connections).
    pub pool_size: usize,
    pub statement_timeout: Duration,
    /// The PostgreSQL schemas served, the first the one whose tables are
    /// named without their schema (SQLite: ignored).
    pub schemas: Vec<String>,
    /// Requests that may wait for a connection beyond those being served.
    pub max_waiting: usize,
}

/// Which tables and columns are served.
#[derive(Debug, Clone)]
pub struct SchemaSettings {
    /// When not empty, only these tables and views.
    tables: Vec<String>,
    hidden_tables: Vec<String>,
    /// Per table: (served columns, or all when empty; hidden columns).
    columns: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

/// What the read path needs beyond the schema.
#[derive(Debug, Clone)]
pub struct ReadSettings {
    pub limits: Limits,
    /// What one answer may hold, checked while it is made.
    pub budget: Budget,
    /// One deadline for a request's database work.
    pub timeout: Duration,
    /// The key that signs cursors: configured, or random per process.
    pub cursor_secret: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub struct WriteSettings {
    /// Whether POST, PATCH, PUT and DELETE are allowed at all.
    pub enabled: bool,
    /// Whether PATCH, PUT and DELETE must carry `If-Match` (428 otherwise).
    pub require_if_match: bool,
    /// The most rows one POST may create.
    pub max_rows: usize,
    /// The largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// A body not received in full within this time: 408.
    pub body_timeout: Duration,
}

/// The response cache and each resource's policy.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub enabled: bool,
    pub max_bytes: u64,
    /// Whether a request's `Cache-Control: no-cache` skips the server cache.
    pub honor_client_no_cache: bool,
    default: CachePolicy,
    /// Per resource: (whether cached, TTL if its own, `Cache-Control` if its own).
    resources: BTreeMap<String, (bool, Option<Duration>, Option<HeaderValue>)>,
}

/// How one resource's answers are cached and described to HTTP caches.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    pub cache: bool,
    pub ttl: Duration,
    /// Past the TTL, how long the entry may be served while one refresh runs.
    pub stale: Duration,
    pub cache_control: HeaderValue,
}

#[derive(Debug, Clone, Copy)]
pub struct CompressionSettings {
    pub levels: Levels,
    /// Bodies smaller than this go uncompressed.
    pub min_bytes: usize,
    /// After this many hits an entry is recompressed at the highest levels
    /// in the background; `None`: never.
    pub recompress_after_hits: Option<u64>,
    /// Larger answers are not recompressed.
    pub recompress_max_bytes: usize,
    /// The share of one CPU (0 to 1) background recompression may use.
    pub recompress_cpu_share: f64,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key and channel, so clusters can share a Redis.
    pub prefix: String,
    /// While Redis is away, cached answers older than this are not served.
    pub degraded_ttl: Duration,
}

/// Watching for writes made by other programs.
#[derive(Debug, Clone, Copy)]
pub struct ChangeSettings {
    /// How often SQLite is checked; `None`: outside writes are not watched.
    pub poll: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A tracing filter: `brisk=info`, `brisk=debug,tower_http=trace`.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which browser origins may read answers (CORS).
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Empty: no CORS headers.
    pub origins: Vec<HeaderValue>,
    pub any_origin: bool,
    pub max_age: HeaderValue,
}

impl CorsSettings {
    /// The `Access-Control-Allow-Origin` for a request from `origin`, if allowed.
    pub fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin {
            Some(HeaderValue::from_static("*"))
        } else {
            self.origins.iter().find(|o| *o == origin).cloned()
        }
    }

    pub fn enabled(&self) -> bool {
        self.any_origin || !self.origins.is_empty()
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<DatabaseUrl> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.is_empty() {
            bail!(
                "no database given: pass --db shop.db or --db postgres://..., or set database.url"
            );
        }
        if path.contains("://") {
            bail!(
                "'{url}' is not a database brisk serves: give a SQLite file path or a postgres:// URL"
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// The URL without a password, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if url[scheme + 3..at].contains(':') => {
                    let user_end = scheme + 3 + url[scheme + 3..at].find(':').unwrap_or(0);
                    write!(f, "{}:***{}", &url[..user_end], &url[at..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

impl Settings {
    pub fn from_config(config: Config) -> anyhow::Result<Settings> {
        let listen = config.listen.parse().with_context(|| {
            format!(
                "listen '{}' is not an address like 127.0.0.1:8080",
                config.listen
            )
        })?;
        Ok(Settings {
            listen,
            http: http(&config)?,
            database: database(&config)?,
            schema: schema(&config),
            reads: reads(&config)?,
            writes: WriteSettings {
                enabled: config.writes,
                require_if_match: config.http.require_if_match,
                max_rows: config.limits.max_write_rows as usize,
                max_body_bytes: config.limits.max_body_bytes as usize,
                body_timeout: Duration::from_millis(config.http.body_timeout_ms.max(100)),
            },
            cache: cache(&config)?,
            compression: compression(&config)?,
            redis: config.redis.url.as_ref().map(|url| RedisSettings {
                url: url.clone(),
                prefix: config.redis.prefix.clone(),
                degraded_ttl: Duration::from_millis(config.redis.degraded_ttl_ms),
            }),
            changes: ChangeSettings {
                poll: (config.changes.poll_ms > 0)
                    .then(|| Duration::from_millis(config.changes.poll_ms)),
            },
            log: log(&config)?,
            metrics_listen: match &config.metrics.listen {
                Some(address) => Some(address.parse().with_context(|| {
                    format!("metrics.listen '{address}' is not an address like 127.0.0.1:9090")
                })?),
                None => None,
            },
            cors: cors(&config)?,
            access: super::access::access(&config)?,
            instance_id: random_hex(8),
        })
    }
}

fn http(config: &Config) -> anyhow::Result<HttpSettings> {
    let http = &config.http;
    let at_least = |key: &str, value: u64, least: u64| {
        if value < least {
            bail!("{key} must be at least {least}, not {value}");
        }
        Ok(value)
    };
    Ok(HttpSettings {
        idle_timeout: Duration::from_millis(at_least(
            "http.idle_timeout_ms",
            http.idle_timeout_ms,
            100,
        )?),
        body_timeout: Duration::from_millis(at_least(
            "http.body_timeout_ms",
            http.body_timeout_ms,
            100,
        )?),
        max_connections: at_least("http.max_connections", http.max_connections, 1)? as usize,
        shutdown_grace: Duration::from_millis(http.shutdown_grace_ms),
        max_url_bytes: at_least("limits.max_url_bytes", config.limits.max_url_bytes, 256)? as usize,
        max_header_bytes: at_least(
            "limits.max_header_bytes",
            config.limits.max_header_bytes,
            1024,
        )? as usize,
    })
}

fn database(config: &Config) -> anyhow::Result<DatabaseSettings> {
    if config.database.pool_size == 0 {
        bail!("database.pool_size must be at least 1");
    }
    Ok(DatabaseSettings {
        url: DatabaseUrl::parse(&config.database.url)?,
        pool_size: config.database.pool_size,
        statement_timeout: Duration::from_millis(config.database.statement_timeout_ms),
        schemas: schemas(&config.schema)?,
        max_waiting: config.limits.max_waiting as usize,
    })
}

/// `schema.names`, or `schema.name` alone; never both, and no schema twice.
fn schemas(config: &super::SchemaConfig) -> anyhow::Result<Vec<String>> {
    if config.names.is_empty() {
        return Ok(vec![config.name.clone()]);
    }
    if config.name != "public" && config.name != config.names[0] {
        bail!(
            "schema.name ('{}') and schema.names ({}) are both set: set only schema.names, whose first schema is the one named without a prefix",
            config.name,
            config.names.join(", ")
        );
    }
    let mut seen = std::collections::HashSet::new();
    for name in &config.names {
        if !seen.insert(name) {
            bail!("schema.names lists '{name}' twice");
        }
        if name.contains('.') && config.names.len() > 1 {
            bail!(
                "schema '{name}' has a dot in its name, which cannot be told apart in resource names (schema.table); serve it alone with schema.name"
            );
        }
    }
    Ok(config.names.clone())
}

fn schema(config: &Config) -> SchemaSettings {
    SchemaSettings {
        tables: config.schema.tables.clone(),
        hidden_tables: config.schema.hidden_tables.clone(),
        columns: config
            .resources
            .iter()
            .map(|(name, r)| (name.clone(), (r.columns.clone(), r.hidden_columns.clone())))
            .collect(),
    }
}

fn reads(config: &Config) -> anyhow::Result<ReadSettings> {
    let raw = &config.limits;
    let limits = Limits {
        default_limit: raw.default_limit,
        max_limit: raw.max_limit,
        max_offset: raw.max_offset,
        max_include_depth: raw.max_include_depth as usize,
        max_filters: raw.max_filters as usize,
        max_list_values: raw.max_list_values as usize,
        max_pattern_length: raw.max_pattern_length as usize,
        max_pattern_wildcards: raw.max_pattern_wildcards as usize,
    };
    if limits.max_limit == 0 || !(1..=limits.max_limit).contains(&limits.default_limit) {
        bail!(
            "limits.default_limit ({}) must be between 1 and limits.max_limit ({})",
            limits.default_limit,
            limits.max_limit
        );
    }
    if raw.max_answer_rows < raw.max_limit {
        bail!(
            "limits.max_answer_rows ({}) must be at least limits.max_limit ({}): a full page must fit",
            raw.max_answer_rows,
            raw.max_limit
        );
    }
    if raw.request_timeout_ms == 0 {
        bail!("limits.request_timeout_ms must be at least 1");
    }
    let cursor_secret = match &config.cursor.secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => random_bytes(32),
    };
    Ok(ReadSettings {
        limits,
        budget: Budget {
            max_rows: raw.max_answer_rows as usize,
            max_bytes: raw.max_answer_bytes as usize,
        },
        timeout: Duration::from_millis(raw.request_timeout_ms),
        cursor_secret,
    })
}

fn cache(config: &Config) -> anyhow::Result<CacheSettings> {
    let header = |key: &str, value: &str| {
        HeaderValue::from_str(value)
            .with_context(|| format!("{key} '{value}' is not a header value"))
    };
    let default = CachePolicy {
        cache: config.cache.enabled,
        ttl: Duration::from_secs(config.cache.ttl_seconds),
        stale: Duration::from_secs(config.cache.stale_while_revalidate_seconds),
        cache_control: header("http.cache_control", &config.http.cache_control)?,
    };
    let mut resources = BTreeMap::new();
    for (name, resource) in &config.resources {
        let cache_control = match resource.cache_control.as_str() {
            "" => None,
            value => Some(header(&format!("resources.{name}.cache_control"), value)?),
        };
        let ttl = (resource.cache_ttl_seconds > 0)
            .then(|| Duration::from_secs(resource.cache_ttl_seconds));
        resources.insert(name.clone(), (resource.cache, ttl, cache_control));
    }
    Ok(CacheSettings {
        enabled: config.cache.enabled,
        max_bytes: config.cache.max_bytes,
        honor_client_no_cache: config.cache.honor_client_no_cache,
        default,
        resources,
    })
}

fn compression(config: &Config) -> anyhow::Result<CompressionSettings> {
    let compression = &config.compression;
    let level = |name: &str, value: i64, range: std::ops::RangeInclusive<i64>| {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(anyhow::anyhow!(
                "compression.{name} must be between {} and {}, not {value}",
                range.start(),
                range.end()
            ))
        }
    };
    // zstd stops at 19: RFC 9659 caps the window HTTP clients must accept.
    let levels = Levels {
        zstd: level("zstd_level", compression.zstd_level, 1..=19)? as i32,
        br: level("br_level", compression.br_level, 0..=11)? as u32,
        gzip: level("gzip_level", compression.gzip_level, 1..=12)? as u32,
        deflate: level("deflate_level", compression.deflate_level, 1..=12)? as u32,
    };
    if !(1..=100).contains(&compression.recompress_cpu_percent) {
        bail!(
            "compression.recompress_cpu_percent must be between 1 and 100, not {}",
            compression.recompress_cpu_percent
        );
    }
    Ok(CompressionSettings {
        levels,
        min_bytes: compression.min_bytes as usize,
        recompress_after_hits: (compression.recompress_after_hits > 0)
            .then_some(compression.recompress_after_hits),
        recompress_max_bytes: compression.recompress_max_bytes as usize,
        recompress_cpu_share: compression.recompress_cpu_percent as f64 / 100.0,
    })
}

impl CacheSettings {
    /// The cache policy of one resource: its own settings over the global ones.
    pub fn policy(&self, resource: &str) -> CachePolicy {
        let Some((cache, ttl, cache_control)) = self.resources.get(resource) else {
            return self.default.clone();
        };
        CachePolicy {
            cache: self.default.cache && *cache,
            ttl: ttl.unwrap_or(self.default.ttl),
            stale: self.default.stale,
            cache_control: cache_control
                .clone()
                .unwrap_or_else(|| self.default.cache_control.clone()),
        }
    }
}

impl SchemaSettings {
    /// Whether `table` is served, by `schema.tables` and `schema.hidden_tables`.
    pub fn serves_table(&self, table: &str) -> bool {
        (self.tables.is_empty() || self.tables.iter().any(|t| t == table))
            && !self.hidden_tables.iter().any(|t| t == table)
    }

    /// Whether `table.column` is served, by the resource's `columns` and
    /// `hidden_columns`.
    pub fn serves_column(&self, table: &str, column: &str) -> bool {
        match self.columns.get(table) {
            None => true,
            Some((columns, hidden)) => {
                (columns.is_empty() || columns.iter().any(|c| c == column))
                    && !hidden.iter().any(|c| c == column)
            }
        }
    }
}

fn log(config: &Config) -> anyhow::Result<LogSettings> {
    tracing_subscriber::EnvFilter::try_new(&config.log.filter).with_context(|| {
        format!(
            "log.filter '{}' is not a filter like brisk=info",
            config.log.filter
        )
    })?;
    let format = match config.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => bail!("log.format must be text or json, not '{other}'"),
    };
    Ok(LogSettings {
        filter: config.log.filter.clone(),
        format,
    })
}

fn cors(config: &Config) -> anyhow::Result<CorsSettings> {
    let any_origin = config.cors.origins.iter().any(|o| o == "*");
    let origins = config
        .cors
        .origins
        .iter()
        .filter(|o| *o != "*")
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/')).with_context(|| {
                format!("cors.origins: '{o}' is not an origin like https://app.example")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(CorsSettings {
        origins,
        any_origin,
        max_age: HeaderValue::from(config.cors.max_age_seconds),
    })
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    bytes
}

fn random_hex(n: usize) -> String {
    random_bytes(n).iter().map(|b| format!("{b:02x}")).collect()
}
