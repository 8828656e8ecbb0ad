//! The configuration, read in one place and in two phases: the raw
//! [`Config`] from defaults, `brisk.toml`, `BRISK_*` environment variables
//! and command-line flags (later wins), then [`Settings`] ([`settings`]):
//! checked, typed, one section per component. Nothing else in brisk reads
//! the environment (clippy's `disallowed-methods` holds the rest of the
//! code to that).
//!
//! Every key has an environment variable: `BRISK_` and the upper-case key
//! path joined by `_`, e.g. `limits.max_limit` is `BRISK_LIMITS_MAX_LIMIT`
//! and `resources.users.hidden_columns` is `BRISK_RESOURCES_USERS_HIDDEN_COLUMNS`.
//! Lists are comma-separated in the environment. `docs/configuration.md`
//! lists every key.

mod access;
mod settings;

pub use access::{ANONYMOUS, AccessSettings, ApiKeySettings, RateLimitSettings};
pub use settings::{
    CachePolicy, CacheSettings, ChangeSettings, CompressionSettings, CorsSettings,
    DatabaseSettings, DatabaseUrl, HttpSettings, LogFormat, LogSettings, ReadSettings,
    RedisSettings, SchemaSettings, Settings, WriteSettings,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The raw configuration, as `brisk.toml` spells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Whether POST, PATCH, PUT and DELETE are allowed (403 otherwise).
    pub writes: bool,
    pub database: DatabaseConfig,
    pub limits: LimitsConfig,
    pub schema: SchemaConfig,
    pub cursor: CursorConfig,
    pub cache: CacheConfig,
    pub compression: CompressionConfig,
    pub http: HttpConfig,
    pub redis: RedisConfig,
    pub changes: ChangesConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub cors: CorsConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    /// Per-resource settings, by table or view name.
    pub resources: BTreeMap<String, ResourceConfig>,
    /// What each role may do, by role name (`anonymous`: callers without
    /// credentials). In the file only; see `docs/auth.md`.
    pub roles: BTreeMap<String, RoleConfig>,
}

/// Who is asking: API keys and JWT bearer tokens. See `docs/auth.md`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A header that may carry an API key, besides `Authorization: Bearer`.
    pub api_key_header: String,
    /// API keys by name (the name shows in logs and partitions rate
    /// limits); in the file only, as `brisk key new` prints them.
    pub keys: BTreeMap<String, KeyConfig>,
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_key_header: "x-api-key".into(),
            keys: BTreeMap::new(),
            jwt: JwtConfig::default(),
        }
    }
}

/// One API key: only its SHA-256 digest is kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    pub role: String,
    /// The key's SHA-256 digest, in hex.
    pub sha256: String,
    /// Claims the key carries for row rules (`{ sub = "42" }`).
    pub claims: toml::Table,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Accepted signature algorithms; empty: JWTs are not accepted.
    pub algorithms: Vec<String>,
    /// The shared secret of HS256, HS384 and HS512.
    #[serde(with = "empty_is_unset")]
    pub secret: Option<String>,
    /// A PEM public key (RSA, EC or Ed25519).
    #[serde(with = "empty_is_unset")]
    pub public_key_file: Option<String>,
    /// A JWKS file, re-read when it changes.
    #[serde(with = "empty_is_unset")]
    pub jwks_file: Option<String>,
    /// Accepted `aud` values; empty: `aud` is not checked.
    pub audience: Vec<String>,
    /// The required `iss`, if any.
    #[serde(with = "empty_is_unset")]
    pub issuer: Option<String>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Where the role is in the claims: a dotted path.
    pub role_claim: String,
    /// The role of a token without one.
    pub default_role: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            algorithms: Vec::new(),
            secret: None,
            public_key_file: None,
            jwks_file: None,
            audience: Vec::new(),
            issuer: None,
            leeway_seconds: 30,
            role_claim: "role".into(),
            default_role: "anonymous".into(),
        }
    }
}

/// How many requests a client may make. See `docs/auth.md`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per window for every client of a role without its own
    /// limit; 0: no limit.
    pub requests: u64,
    pub window_seconds: u64,
    /// What a cache miss costs, in requests (a hit costs 1).
    pub miss_cost: u64,
    /// Proxies (addresses or CIDR ranges) whose `Forwarded` or
    /// `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests: 0,
            window_seconds: 60,
            miss_cost: 1,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What one role may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    /// Resources it may read (`*`: every served one).
    pub read: Vec<String>,
    /// Resources it may write: `orders` (every method) or `orders:POST`.
    pub write: Vec<String>,
    /// Its own rate limit, instead of `[rate_limit]`'s.
    pub rate_limit: Option<RoleRateLimit>,
    /// Columns and rows, per resource.
    pub resources: BTreeMap<String, RoleResourceConfig>,
}

impl Default for RoleConfig {
    fn default() -> Self {
        RoleConfig {
            read: vec!["*".into()],
            write: Vec::new(),
            rate_limit: None,
            resources: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleRateLimit {
    /// Requests per window; 0: no limit for this role.
    pub requests: u64,
    #[serde(default = "default_window")]
    pub window_seconds: u64,
}

fn default_window() -> u64 {
    60
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoleResourceConfig {
    /// When not empty, the role sees only these columns.
    pub columns: Vec<String>,
    /// Columns the role never sees.
    pub hidden_columns: Vec<String>,
    /// The rows it may see and write, as filters (`user_id=claims.sub`).
    pub rows: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A SQLite file (`shop.db`, `sqlite://shop.db`) or `postgres://...`.
    pub url: String,
    /// Connections in the pool (SQLite: read connections).
    pub pool_size: usize,
    /// Longest a statement may run before it is cancelled, in milliseconds.
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Rows per page when `limit` is not given.
    pub default_limit: u64,
    /// The largest `limit` a client may ask for.
    pub max_limit: u64,
    /// The deepest row a `page` may start at (cursors go deeper).
    pub max_offset: u64,
    /// Relations in one `include` path.
    pub max_include_depth: u64,
    /// Filter conditions in one request.
    pub max_filters: u64,
    /// Values in one `in` or `nin` list.
    pub max_list_values: u64,
    /// Characters in one `like` or `ilike` pattern.
    pub max_pattern_length: u64,
    /// Wildcards in one `like` or `ilike` pattern.
    pub max_pattern_wildcards: u64,
    /// Rows one answer may hold, across every level of `include`.
    pub max_answer_rows: u64,
    /// Bytes of one answer's body, before compression.
    pub max_answer_bytes: u64,
    /// One deadline for a request's database work: waiting for a
    /// connection, the statements and rendering the rows.
    pub request_timeout_ms: u64,
    /// Requests that may wait for the database beyond those it is serving;
    /// more are refused at once (503).
    pub max_waiting: u64,
    /// Bytes of the request target (path and query; 414 beyond).
    pub max_url_bytes: u64,
    /// Bytes of all request header names and values together (431 beyond).
    pub max_header_bytes: u64,
    /// The largest request body, in bytes (413 beyond).
    pub max_body_bytes: u64,
    /// The most rows one POST may create.
    pub max_write_rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// The PostgreSQL schema to serve.
    pub name: String,
    /// Several PostgreSQL schemas to serve (instead of `name`): tables of
    /// the first are named as they are, the others' `schema.table`.
    pub names: Vec<String>,
    /// When not empty, only these tables and views are served.
    pub tables: Vec<String>,
    /// Tables and views never served.
    pub hidden_tables: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CursorConfig {
    /// The key that signs pagination cursors. Give every instance behind one
    /// load balancer the same secret; when unset, a random one is made at
    /// start-up and cursors do not survive a restart.
    #[serde(with = "empty_is_unset")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Whether answers are cached at all.
    pub enabled: bool,
    /// The most bytes the cache holds: bodies, compressed variants, keys.
    pub max_bytes: u64,
    /// How long an answer is served from the cache; writes through brisk
    /// invalidate it sooner.
    pub ttl_seconds: u64,
    /// After the TTL, how long an answer may still be served while one
    /// refresh runs in the background (0: off).
    pub stale_while_revalidate_seconds: u64,
    /// Whether a request's `Cache-Control: no-cache` skips the server cache.
    /// Off by default: it would let any client force database work.
    pub honor_client_no_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Bodies smaller than this go uncompressed.
    pub min_bytes: u64,
    pub zstd_level: i64,
    pub br_level: i64,
    pub gzip_level: i64,
    pub deflate_level: i64,
    /// After this many hits, a cached answer's variants are made again in
    /// the background at the highest levels (0: never).
    pub recompress_after_hits: u64,
    /// Answers larger than this are not recompressed (each costs seconds).
    pub recompress_max_bytes: u64,
    /// The share of one CPU that background recompression may use, in
    /// percent: after each, it rests so long that its work stays within.
    pub recompress_cpu_percent: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `Cache-Control` of read answers, unless a resource sets its own.
    pub cache_control: String,
    /// Whether PATCH, PUT and DELETE must carry `If-Match` (428 otherwise).
    pub require_if_match: bool,
    /// A connection that sends no complete request head for this long (an
    /// idle keep-alive connection, or headers dribbled in) is closed.
    pub idle_timeout_ms: u64,
    /// A request body not received in full within this time: 408.
    pub body_timeout_ms: u64,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: u64,
    /// On SIGTERM or Ctrl-C, how long requests in flight may finish.
    pub shutdown_grace_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:6379/0`; unset: no Redis, one instance on its own.
    #[serde(with = "empty_is_unset")]
    pub url: Option<String>,
    /// Prefix of every key and channel, so clusters can share a Redis.
    pub prefix: String,
    /// While Redis is away, cached answers older than this are not served.
    pub degraded_ttl_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// How often SQLite is checked for writes by other programs (0: never).
    pub poll_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Which log lines are written, as a tracing filter (`brisk=debug`).
    pub filter: String,
    /// `text` (one plain line each) or `json` (one JSON object each).
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "brisk=info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` on this address instead of the main one
    /// (an admin port); unset: on the main address.
    #[serde(with = "empty_is_unset")]
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to read answers from a browser (`https://app.example`),
    /// or `*` for any; empty: no CORS headers at all.
    pub origins: Vec<String>,
    /// How long browsers may keep a preflight's answer, in seconds.
    pub max_age_seconds: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            origins: Vec::new(),
            max_age_seconds: 600,
        }
    }
}

/// Text keys that may be unset. The Rust side is an `Option`; in the file
/// and the environment, where no value cannot be written, the empty string
/// unsets them, and unset is written as empty so that such keys have an
/// environment variable and a line in the reference like every other.
mod empty_is_unset {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<String>, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(value.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(input)?;
        Ok((!text.is_empty()).then_some(text))
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            prefix: "brisk".into(),
            degraded_ttl_ms: 1000,
        }
    }
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig { poll_ms: 50 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceConfig {
    /// When not empty, only these columns are served.
    pub columns: Vec<String>,
    /// Columns never served.
    pub hidden_columns: Vec<String>,
    /// Whether answers of this resource are cached.
    pub cache: bool,
    /// This resource's cache TTL (0: `cache.ttl_seconds`).
    pub cache_ttl_seconds: u64,
    /// This resource's `Cache-Control` (empty: `http.cache_control`).
    pub cache_control: String,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        ResourceConfig {
            columns: Vec::new(),
            hidden_columns: Vec::new(),
            cache: true,
            cache_ttl_seconds: 0,
            cache_control: String::new(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: 256 * 1024 * 1024,
            ttl_seconds: 60,
            stale_while_revalidate_seconds: 0,
            honor_client_no_cache: false,
        }
    }
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            min_bytes: 1024,
            zstd_level: 3,
            br_level: 2,
            gzip_level: 1,
            deflate_level: 1,
            recompress_after_hits: 100,
            recompress_max_bytes: 1024 * 1024,
            recompress_cpu_percent: 10,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            cache_control: "no-cache".into(),
            require_if_match: false,
            idle_timeout_ms: 15_000,
            body_timeout_ms: 15_000,
            max_connections: 512,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            writes: false,
            database: DatabaseConfig::default(),
            limits: LimitsConfig::default(),
            schema: SchemaConfig::default(),
            cursor: CursorConfig::default(),
            cache: CacheConfig::default(),
            compression: CompressionConfig::default(),
            http: HttpConfig::default(),
            redis: RedisConfig::default(),
            changes: ChangesConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            cors: CorsConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            resources: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            pool_size: 8,
            statement_timeout_ms: 10_000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = brisk_query::Limits::default();
        LimitsConfig {
            default_limit: limits.default_limit,
            max_limit: limits.max_limit,
            max_offset: limits.max_offset,
            max_include_depth: limits.max_include_depth as u64,
            max_filters: limits.max_filters as u64,
            max_list_values: limits.max_list_values as u64,
            max_pattern_length: limits.max_pattern_length as u64,
            max_pattern_wildcards: limits.max_pattern_wildcards as u64,
            max_answer_rows: 10_000,
            max_answer_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 10_000,
            max_waiting: 128,
            max_url_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            max_write_rows: 1000,
        }
    }
}

impl Default for SchemaConfig {
    fn default() -> Self {
        SchemaConfig {
            name: "public".into(),
            names: Vec::new(),
            tables: Vec::new(),
            hidden_tables: Vec::new(),
        }
    }
}

/// Values given on the command line, which win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<String>,
}

impl Config {
    /// Defaults, then the file (if any), then the environment, then flags.
    #[allow(clippy::disallowed_methods)] // the one reader of the environment
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut table = toml::Table::try_from(Config::default()).context("serialising defaults")?;
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read config file {}", file.display()))?;
            let from_file: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", file.display()))?;
            merge(&mut table, from_file);
        }
        apply_environment(&mut table, std::env::vars())?;
        if let Some(listen) = &overrides.listen {
            table.insert("listen".into(), listen.clone().into());
        }
        if let Some(database) = &overrides.database {
            let db = table
                .entry("database")
                .or_insert_with(|| toml::Table::new().into());
            if let Some(db) = db.as_table_mut() {
                db.insert("url".into(), database.clone().into());
            }
        }
        let origin = file.map_or_else(
            || "the environment".to_string(),
            |f| f.display().to_string(),
        );
        table
            .try_into()
            .with_context(|| format!("invalid configuration (from defaults, {origin} and flags)"))
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `BRISK_*` variables to the keys that the defaults (and
/// `ResourceConfig`) define; an unknown `BRISK_*` variable is an error, so
/// a typo never goes unnoticed.
fn apply_environment(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    let defaults = toml::Table::try_from(Config::default())?;
    let mut leaves = Vec::new();
    collect_leaves(&defaults, &mut Vec::new(), &mut leaves);
    let resource_defaults = toml::Table::try_from(ResourceConfig::default())?;
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("BRISK_") else {
            continue;
        };
        if let Some((path, default)) = leaves.iter().find(|(path, _)| env_name(path) == rest) {
            let value = env_value(&name, &raw, default)?;
            set_path(table, path, value);
        } else if let Some(spec) = rest.strip_prefix("RESOURCES_") {
            // the longest key that ends the name: HIDDEN_COLUMNS, not COLUMNS
            let Some((key, default)) = resource_defaults
                .iter()
                .filter(|(key, _)| spec.ends_with(&format!("_{}", key.to_uppercase())))
                .max_by_key(|(key, _)| key.len())
            else {
                bail!("{name} names no per-resource setting; see docs/configuration.md");
            };
            let resource = spec[..spec.len() - key.len() - 1].to_lowercase();
            let value = env_value(&name, &raw, default)?;
            set_path(table, &["resources".into(), resource, key.clone()], value);
        } else {
            bail!("{name} is not a brisk setting; see docs/configuration.md for the list");
        }
    }
    Ok(())
}

fn collect_leaves(
    table: &toml::Table,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, toml::Value)>,
) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            // tables keyed by names the file chooses have no variables
            toml::Value::Table(inner)
                if !matches!(key.as_str(), "resources" | "roles" | "keys") =>
            {
                collect_leaves(inner, path, out)
            }
            toml::Value::Table(_) => {}
            leaf => out.push((path.clone(), leaf.clone())),
        }
        path.pop();
    }
}

fn env_name(path: &[String]) -> String {
    path.join("_").to_uppercase()
}

/// Reads an environment value as the type of the key's default.
fn env_value(name: &str, raw: &str, default: &toml::Value) -> anyhow::Result<toml::Value> {
    Ok(match default {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .with_context(|| format!("{name} must be a whole number, not '{raw}'"))?,
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => bail!("{name} must be true or false, not '{raw}'"),
        },
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .with_context(|| format!("{name} must be a number, not '{raw}'"))?,
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut at = table;
    for key in parents {
        at = at
            .entry(key.clone())
            .or_insert_with(|| toml::Table::new().into())
            .as_table_mut()
            .expect("config sections are tables");
    }
    at.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let mut table = toml::Table::try_from(Config::default())?;
        apply_environment(
            &mut table,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        Ok(table.try_into()?)
    }

    #[test]
    fn every_key_has_an_environment_variable() {
        let config = with_env(&[
            ("BRISK_LISTEN", "0.0.0.0:9000"),
            ("BRISK_DATABASE_URL", "postgres://db/shop"),
            ("BRISK_LIMITS_MAX_LIMIT", "500"),
            ("BRISK_SCHEMA_HIDDEN_TABLES", "secrets, audit"),
            ("BRISK_RESOURCES_ORDER_ITEMS_HIDDEN_COLUMNS", "unit_price"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.database.url, "postgres://db/shop");
        assert_eq!(config.limits.max_limit, 500);
        assert_eq!(config.schema.hidden_tables, ["secrets", "audit"]);
        assert_eq!(
            config.resources["order_items"].hidden_columns,
            ["unit_price"]
        );
    }

    #[test]
    fn the_configuration_reference_lists_every_key() {
        let reference = include_str!("../../docs/configuration.md");
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut leaves = Vec::new();
        collect_leaves(&defaults, &mut Vec::new(), &mut leaves);
        for (path, _) in leaves {
            let key = format!("`{}`", path.join("."));
            let env = format!("`BRISK_{}`", env_name(&path));
            assert!(
                reference.contains(&key),
                "docs/configuration.md does not list {key}"
            );
            assert!(
                reference.contains(&env),
                "docs/configuration.md does not list {env}"
            );
        }
        for key in toml::Table::try_from(ResourceConfig::default())
            .unwrap()
            .keys()
        {
            assert!(
                reference.contains(&format!("`resources.<table>.{key}`")),
                "docs/configuration.md does not list resources.<table>.{key}"
            );
        }
    }

    #[test]
    fn unset_is_none_and_empty_text_unsets() {
        let config = with_env(&[("BRISK_REDIS_URL", ""), ("BRISK_DATABASE_URL", "a.db")]).unwrap();
        assert_eq!(config.redis.url, None);
        assert!(Settings::from_config(config).unwrap().redis.is_none());
        let config = with_env(&[
            ("BRISK_REDIS_URL", "redis://127.0.0.1:6379"),
            ("BRISK_DATABASE_URL", "a.db"),
        ])
        .unwrap();
        assert_eq!(
            Settings::from_config(config).unwrap().redis.unwrap().url,
            "redis://127.0.0.1:6379"
        );
        let stray = with_env(&[("BRISK_LOG", "debug")]).unwrap_err();
        assert!(stray.to_string().contains("not a brisk setting"), "{stray}");
    }

    #[test]
    fn refuses_unknown_and_mistyped_variables() {
        let typo = with_env(&[("BRISK_LIMITS_MAX_LIMITS", "5")]).unwrap_err();
        assert!(
            typo.to_string()
                .contains("BRISK_LIMITS_MAX_LIMITS is not a brisk setting"),
            "{typo}"
        );
        let mistyped = with_env(&[("BRISK_LIMITS_MAX_LIMIT", "lots")]).unwrap_err();
        assert!(
            mistyped.to_string().contains("must be a whole number"),
            "{mistyped}"
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("brisk.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\n[database]\nurl = \"a.db\"\n[resources.users]\nhidden_columns = [\"email\"]\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            &Overrides {
                listen: None,
                database: Some("b.db".into()),
            },
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.database.url, "b.db");
        let settings = Settings::from_config(config).unwrap();
        assert!(!settings.schema.serves_column("users", "email"));
        assert!(settings.schema.serves_column("users", "name"));
        std::fs::write(&file, "listen = 5\n").unwrap();
        assert!(Config::load(Some(&file), &Overrides::default()).is_err());
        std::fs::write(&file, "[limits]\nmax_limt = 5\n").unwrap();
        let unknown = format!(
            "{:#}",
            Config::load(Some(&file), &Overrides::default()).unwrap_err()
        );
        assert!(unknown.contains("max_limt"), "{unknown}");
    }

    #[test]
    fn several_schemas_or_one() {
        let served = |name: &str, names: &[&str]| {
            let mut config = Config::default();
            config.schema.name = name.into();
            config.schema.names = names.iter().map(|n| n.to_string()).collect();
            config.database.url = "postgres://db/shop".into();
            Settings::from_config(config)
                .map(|s| s.database.schemas)
                .map_err(|e| e.to_string())
        };
        assert_eq!(served("shop", &[]).unwrap(), ["shop"]);
        assert_eq!(served("public", &["a", "b"]).unwrap(), ["a", "b"]);
        assert_eq!(served("a", &["a", "b"]).unwrap(), ["a", "b"]);
        assert!(served("c", &["a", "b"]).unwrap_err().contains("both set"));
        assert!(served("public", &["a", "a"]).unwrap_err().contains("twice"));
        assert!(served("public", &["a.b", "c"]).unwrap_err().contains("dot"));
        assert_eq!(served("public", &["a.b"]).unwrap(), ["a.b"]);
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("shop.db").unwrap(),
            DatabaseUrl::Sqlite("shop.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://x/shop.db").unwrap(),
            DatabaseUrl::Sqlite("x/shop.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgres://u:secret@h/db")
                .unwrap()
                .to_string(),
            "postgres://u:***@h/db"
        );
    }
}
