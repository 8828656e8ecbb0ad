//! What several instances share through Redis: the version clock and the
//! versions of tables and rows (so every instance stamps and validates
//! answers alike, and derives the same ETags), an invalidation channel, and a
//! second-level response cache.
//!
//! Keys, under `redis.prefix` (`P`):
//! - `P:clock`: the version counter; `P:seed`: the ETag seed of the cluster
//! - `P:versions`, `P:floors`: hashes of table → version, table → floor
//! - `P:rows:<table>`: hash of row key → version
//! - `P:entry:<hash>`: a cached answer, zstd-compressed, with its TTL
//! - `P:limit:<quota>:<caller>`: a shared rate limit's theoretical arrival time
//! - channel `P:changes`: one message per write, after it committed
//!
//! Redis holds the whole version state, so an instance that starts, or comes
//! back after losing Redis, subscribes and then reloads it: nothing missed.
//! While Redis is away, each instance keeps serving from its own cache and
//! the database, with ETags of its own, and treats cached answers older than
//! `redis.degraded_ttl_ms` as stale (writes on other instances cannot reach
//! it). Tables it wrote meanwhile are announced again when Redis is back.

use crate::conditional::EtagSeed;
use crate::config::RedisSettings;
use crate::versions::{Change, Versions};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Claims a version for rows just written and stamps them with it.
const CLAIM: &str = r"
local v = redis.call('INCR', KEYS[1])
if v < 2 then v = redis.call('INCR', KEYS[1]) end
for i = 1, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], v) end
return v
";

/// Records committed changes and tells every instance. ARGV: the prefix,
/// then triples of table, version, and `*` (every row) or the written rows'
/// keys joined by the unit separator (their stamps were set by CLAIM).
const ANNOUNCE: &str = r"
local prefix = ARGV[1]
local message = {}
for i = 2, #ARGV, 3 do
  local t, v, rows = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if v > tonumber(redis.call('HGET', prefix .. ':versions', t) or '1') then
    redis.call('HSET', prefix .. ':versions', t, v)
  end
  local key = prefix .. ':rows:' .. t
  if rows == '*' or redis.call('HLEN', key) > 100000 then
    if v > tonumber(redis.call('HGET', prefix .. ':floors', t) or '1') then
      redis.call('HSET', prefix .. ':floors', t, v)
    end
    redis.call('DEL', key)
    rows = '*'
  end
  table.insert(message, t .. '\t' .. v .. '\t' .. rows)
end
redis.call('PUBLISH', prefix .. ':changes', table.concat(message, '\n'))
return 1
";

/// Raises the shared clock and table versions to at least this instance's
/// (Redis may have restarted empty): versions made from then on are new to
/// every instance. ARGV: the prefix, the local clock, then pairs of table and
/// version.
const RAISE: &str = r"
local prefix = ARGV[1]
if tonumber(redis.call('GET', prefix .. ':clock') or '0') < tonumber(ARGV[2]) then
  redis.call('SET', prefix .. ':clock', ARGV[2])
end
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > tonumber(redis.call('HGET', prefix .. ':versions', ARGV[i]) or '1') then
    redis.call('HSET', prefix .. ':versions', ARGV[i], ARGV[i + 1])
  end
end
return 1
";

/// One step of GCRA (the generic cell rate algorithm) on a shared limit, on
/// Redis's clock so instances with skewed clocks agree. The key holds the
/// theoretical arrival time (TAT), in microseconds. ARGV: the emission
/// interval (window / requests) in microseconds, the burst (requests), the
/// cost. Returns allowed (1 or 0), requests left, microseconds until
/// allowed, microseconds until the quota is whole again.
const GCRA: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + cost * interval
local allowed_at = after - burst * interval
if now < allowed_at then
  return {0, math.floor((burst * interval - (tat - now)) / interval), allowed_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.ceil((after - now) / 1000))
return {1, math.floor((burst * interval - (after - now)) / interval), 0, after - now}
";

/// What a shared limit said: allowed, requests left, microseconds until
/// allowed, microseconds until whole.
pub type GcraStep = (bool, u64, u64, u64);

/// The connection to Redis and what is known of its health.
pub struct Cluster {
    prefix: String,
    client: redis::Client,
    manager: tokio::sync::RwLock<Option<ConnectionManager>>,
    connected: AtomicBool,
    /// Changes announced to the other instances, and received from them.
    pub changes_sent: AtomicU64,
    pub changes_received: AtomicU64,
    claim: Script,
    announce: Script,
    gcra: Script,
    /// Tables this instance wrote while Redis was away.
    unannounced: Mutex<BTreeSet<String>>,
}

/// The outcome of claiming a version for a write.
pub enum Claim {
    Version(u64),
    /// Redis did not answer; the write goes on with a local version.
    Unavailable,
}

const TIMEOUT: Duration = Duration::from_millis(500);

impl Cluster {
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Arc<Cluster>> {
        let url = &settings.url;
        let client = redis::Client::open(url.as_str())
            .map_err(|e| anyhow::anyhow!("redis.url '{url}' is not usable: {e}"))?;
        Ok(Arc::new(Cluster {
            prefix: settings.prefix.clone(),
            client,
            manager: tokio::sync::RwLock::new(None),
            connected: AtomicBool::new(false),
            changes_sent: AtomicU64::new(0),
            changes_received: AtomicU64::new(0),
            claim: Script::new(CLAIM),
            announce: Script::new(ANNOUNCE),
            gcra: Script::new(GCRA),
            unannounced: Mutex::default(),
        }))
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if !self.is_connected() {
            return None;
        }
        self.manager.read().await.clone()
    }

    fn failed(&self, error: &redis::RedisError) {
        if self.connected.swap(false, Ordering::AcqRel) {
            tracing::warn!(%error, "lost Redis; serving from this instance's cache and the database until it is back");
        }
    }

    /// Runs the subscription and (re)synchronisation loop until the process
    /// ends: subscribe, load the whole version state, announce what was
    /// written while away, then apply changes as they come.
    pub async fn run(self: Arc<Cluster>, versions: Arc<Versions>, seed: Arc<EtagSeed>) {
        use futures_util::StreamExt;
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            first = false;
            let pubsub = tokio::time::timeout(TIMEOUT, self.client.get_async_pubsub()).await;
            let mut pubsub = match pubsub {
                Ok(Ok(pubsub)) => pubsub,
                _ => continue,
            };
            if pubsub.subscribe(self.key("changes")).await.is_err() {
                continue;
            }
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(TIMEOUT))
                .set_response_timeout(Some(TIMEOUT))
                .set_number_of_retries(1);
            let manager = match self.client.get_connection_manager_with_config(config).await {
                Ok(manager) => manager,
                Err(_) => continue,
            };
            if let Err(error) = self.synchronise(manager.clone(), &versions, &seed).await {
                tracing::warn!(%error, "cannot load the shared versions from Redis; retrying");
                continue;
            }
            *self.manager.write().await = Some(manager);
            self.connected.store(true, Ordering::Release);
            seed.use_shared(true);
            tracing::info!("connected to Redis: sharing cache, versions and invalidations");
            let away: Vec<String> = std::mem::take(&mut *self.unannounced.lock().expect("lock"))
                .into_iter()
                .collect();
            if !away.is_empty() {
                let version = self
                    .next_version()
                    .await
                    .unwrap_or_else(|| versions.next_version());
                let changes = Change::whole_tables(away, version);
                for change in &changes {
                    versions.apply(change);
                }
                self.announce(&changes).await;
            }
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                for change in parse_message(&payload) {
                    self.changes_received.fetch_add(1, Ordering::Relaxed);
                    versions.apply(&change);
                }
                if !self.is_connected() {
                    break;
                }
            }
            drop(messages);
            seed.use_shared(false);
            if self.connected.swap(false, Ordering::AcqRel) {
                tracing::warn!(
                    "lost Redis; serving from this instance's cache and the database until it is back"
                );
            }
        }
    }

    /// Loads the whole shared state into the local versions (taking the
    /// larger of each), and agrees on the ETag seed.
    async fn synchronise(
        &self,
        mut redis: ConnectionManager,
        versions: &Versions,
        seed: &EtagSeed,
    ) -> redis::RedisResult<()> {
        let raise_script = Script::new(RAISE);
        let mut raise = raise_script.prepare_invoke();
        raise.arg(&self.prefix).arg(versions.clock());
        for (table, version) in versions.table_versions() {
            raise.arg(table).arg(version);
        }
        raise.invoke_async::<i64>(&mut redis).await?;
        let candidate = seed.local_hex();
        let _: bool = redis.set_nx(self.key("seed"), &candidate).await?;
        let shared: String = redis.get(self.key("seed")).await?;
        seed.set_shared(&shared);
        let clock: Option<u64> = redis.get(self.key("clock")).await?;
        let tables: HashMap<String, u64> = redis.hgetall(self.key("versions")).await?;
        let floors: HashMap<String, u64> = redis.hgetall(self.key("floors")).await?;
        for table in versions.table_names() {
            let rows: HashMap<String, u64> =
                redis.hgetall(self.key(&format!("rows:{table}"))).await?;
            versions.merge(
                table,
                tables.get(table).copied().unwrap_or(1),
                floors.get(table).copied().unwrap_or(1),
                &rows,
            );
        }
        versions.observe_clock(clock.unwrap_or(1));
        Ok(())
    }

    /// Claims a version from the shared clock for rows just written.
    pub async fn claim(&self, table: &str, keys: &[String]) -> Claim {
        let Some(mut redis) = self.connection().await else {
            self.note_away(table);
            return Claim::Unavailable;
        };
        let mut invocation = self.claim.key(self.key("clock"));
        invocation.key(self.key(&format!("rows:{table}")));
        for key in keys {
            invocation.arg(key);
        }
        match invocation.invoke_async::<i64>(&mut redis).await {
            Ok(version) => Claim::Version(version as u64),
            Err(error) => {
                self.failed(&error);
                self.note_away(table);
                Claim::Unavailable
            }
        }
    }

    /// A new version from the shared clock; `None` while Redis is away.
    pub async fn next_version(&self) -> Option<u64> {
        let mut redis = self.connection().await?;
        match redis.incr::<_, _, u64>(self.key("clock"), 1).await {
            Ok(version) if version >= 2 => Some(version),
            Ok(_) => redis.incr::<_, _, u64>(self.key("clock"), 1).await.ok(),
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    /// Records committed changes and tells every instance, before the
    /// write's response goes out.
    pub async fn announce(&self, changes: &[Change]) {
        let Some(mut redis) = self.connection().await else {
            for change in changes {
                self.note_away(&change.table);
            }
            return;
        };
        let mut invocation = self.announce.prepare_invoke();
        invocation.arg(&self.prefix);
        for change in changes {
            invocation
                .arg(&change.table)
                .arg(change.version)
                .arg(match &change.rows {
                    Some(keys) => keys.join("\u{1f}"),
                    None => "*".to_string(),
                });
        }
        match invocation.invoke_async::<i64>(&mut redis).await {
            Ok(_) => {
                self.changes_sent
                    .fetch_add(changes.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                self.failed(&error);
                for change in changes {
                    self.note_away(&change.table);
                }
            }
        }
    }

    fn note_away(&self, table: &str) {
        self.unannounced
            .lock()
            .expect("lock")
            .insert(table.to_string());
    }

    /// A cached answer from the second level, if any.
    pub async fn get_entry(&self, key: &str) -> Option<Vec<u8>> {
        let mut redis = self.connection().await?;
        match redis.get::<_, Option<Vec<u8>>>(self.entry_key(key)).await {
            Ok(bytes) => bytes,
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    /// Stores an answer in the second level for `ttl`.
    pub async fn put_entry(&self, key: &str, bytes: Vec<u8>, ttl: Duration) {
        let Some(mut redis) = self.connection().await else {
            return;
        };
        let millis = ttl.as_millis().max(1) as u64;
        if let Err(error) = redis
            .pset_ex::<_, _, ()>(self.entry_key(key), bytes, millis)
            .await
        {
            self.failed(&error);
        }
    }

    /// Spends `cost` of the shared limit `limit` (a quota and a caller):
    /// `None` while Redis is away, and the caller decides alone.
    pub async fn gcra(
        &self,
        limit: &str,
        interval: Duration,
        burst: u32,
        cost: u32,
    ) -> Option<GcraStep> {
        let mut redis = self.connection().await?;
        let step = self
            .gcra
            .key(format!("{}:limit:{limit}", self.prefix))
            .arg(interval.as_micros().max(1) as u64)
            .arg(burst)
            .arg(cost)
            .invoke_async::<(i64, i64, i64, i64)>(&mut redis)
            .await;
        match step {
            Ok((allowed, left, wait, whole)) => Some((
                allowed == 1,
                left.max(0) as u64,
                wait.max(0) as u64,
                whole.max(0) as u64,
            )),
            Err(error) => {
                self.failed(&error);
                None
            }
        }
    }

    fn entry_key(&self, canonical: &str) -> String {
        let hash = xxhash_rust::xxh3::xxh3_128(canonical.as_bytes());
        format!("{}:entry:{hash:032x}", self.prefix)
    }
}

/// `table \t version \t rows` lines; rows `*` means every row, otherwise
/// the written keys joined by the unit separator.
fn parse_message(payload: &str) -> Vec<Change> {
    payload
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let table = parts.next()?.to_string();
            let version = parts.next()?.parse().ok()?;
            let rows = match parts.next()? {
                "*" => None,
                "" => Some(Vec::new()),
                keys => Some(keys.split('\u{1f}').map(str::to_string).collect()),
            };
            Some(Change {
                table,
                version,
                rows,
            })
        })
        .collect()
}
