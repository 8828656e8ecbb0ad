//! The server-side response cache: answers stored as bytes with their
//! compressed variants and validators, bounded in bytes.
//!
//! One quick_cache map holds two kinds of slot, told apart by their
//! [`SlotKey`]. An entry is filed under its [`CanonicalRequest`], so
//! equivalent requests share it. An alias is filed under the raw path and
//! query a client sent and points weakly at an entry, so a repeated request
//! finds its answer without parsing or planning anything.
//! Concurrent misses on one canonical key wait for one loader
//! (`get_value_or_guard_async`). quick_cache rather than moka: a get costs
//! tens of nanoseconds instead of about a microsecond here, and a hit must
//! cost less than nginx serving a file (BENCHMARKS.md).

use crate::conditional::Etag;
use crate::config::{CachePolicy, CacheSettings};
use crate::encoding::{Coding, Codings};
use crate::validators::Lifetime;
use crate::versions::Snapshot;
use axum::http::HeaderValue;
use brisk_query::canonical::CanonicalRequest;
use bytes::Bytes;
use quick_cache::sync::{Cache, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, Weighter};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::SystemTime;

/// What a slot is filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKey {
    /// An entry, under the request's one spelling.
    Answer(CanonicalRequest),
    /// An alias, under the caller's partition (see `access::Viewer`) and
    /// the raw path and query it sent.
    Alias(Arc<str>, Box<str>),
}

impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            SlotKey::Answer(request) => {
                state.write_u8(0);
                request.as_str().hash(state);
            }
            SlotKey::Alias(partition, raw) => AliasKey(partition, raw).hash(state),
        }
    }
}

/// An alias key borrowed from a request: looked up on every hit, so
/// without allocating.
struct AliasKey<'a>(&'a str, &'a str);

impl Hash for AliasKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(1);
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<SlotKey> for AliasKey<'_> {
    fn equivalent(&self, key: &SlotKey) -> bool {
        matches!(key, SlotKey::Alias(partition, raw) if **partition == *self.0 && **raw == *self.1)
    }
}

/// What one slot of the map holds.
#[derive(Clone)]
pub enum Slot {
    /// An entry and its weight when filed: quick_cache needs a slot's weight
    /// to stay what it was, while an entry grows variants.
    Entry(Arc<Entry>, u64),
    /// A raw request's way to its entry; gone when the entry is.
    Alias(Weak<Entry>),
}

impl Slot {
    fn entry(entry: &Arc<Entry>) -> Slot {
        Slot::Entry(entry.clone(), entry.weight())
    }
}

/// A cached 200 answer.
pub struct Entry {
    /// The request it is filed under.
    pub key: CanonicalRequest,
    pub identity: Bytes,
    variants: RwLock<[Option<Variant>; 4]>,
    pub etag: Etag,
    pub identity_etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub last_modified_time: SystemTime,
    pub link: Option<HeaderValue>,
    pub cache_control: HeaderValue,
    /// The versions of the tables and rows the answer was built from.
    pub built_from: Snapshot,
    pub lifetime: Lifetime,
    pub hits: AtomicU64,
    pub refreshing: AtomicBool,
    pub recompressing: AtomicBool,
}

/// An answer as it is filed: its body and what validates it.
pub struct Answered {
    pub identity: Bytes,
    pub link: Option<HeaderValue>,
    pub etag: Etag,
    pub last_modified: SystemTime,
    pub built_from: Snapshot,
}

/// The answer in one content coding.
#[derive(Clone)]
pub struct Variant {
    pub coding: Coding,
    pub bytes: Bytes,
    pub etag: HeaderValue,
}

impl Entry {
    /// Files an answer under `key`, cached as `policy` says.
    pub fn new(key: CanonicalRequest, answer: Answered, policy: &CachePolicy) -> Entry {
        Entry {
            key,
            identity: answer.identity,
            variants: RwLock::new([None, None, None, None]),
            identity_etag: answer.etag.identity_header(),
            etag: answer.etag,
            last_modified: crate::conditional::http_date(answer.last_modified),
            last_modified_time: answer.last_modified,
            link: answer.link,
            cache_control: policy.cache_control.clone(),
            built_from: answer.built_from,
            lifetime: Lifetime::starting_now(policy.ttl, policy.stale),
            hits: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            recompressing: AtomicBool::new(false),
        }
    }

    pub fn variant(&self, coding: Coding) -> Option<Variant> {
        self.variants.read().expect("variants lock")[coding.index()].clone()
    }

    pub fn set_variant(&self, coding: Coding, variant: Variant) {
        self.variants.write().expect("variants lock")[coding.index()] = Some(variant);
    }

    /// This entry's body as `bytes` in `coding` at `level`, with the ETag
    /// that tells it from the other codings and levels.
    pub fn coded(&self, coding: Coding, level: i32, bytes: Bytes) -> Variant {
        Variant {
            coding,
            etag: self.etag.coded_header(coding, level),
            bytes,
        }
    }

    /// The coding, of `codings`, whose variant is smallest, if any is made.
    pub fn smallest_variant(&self, codings: Codings) -> Option<Coding> {
        let variants = self.variants.read().expect("variants lock");
        Coding::ALL
            .into_iter()
            .filter(|c| codings.contains(*c))
            .filter_map(|c| variants[c.index()].as_ref().map(|v| (c, v.bytes.len())))
            .min_by_key(|(_, size)| *size)
            .map(|(c, _)| c)
    }

    /// The codings made so far.
    pub fn codings(&self) -> Vec<Coding> {
        let variants = self.variants.read().expect("variants lock");
        Coding::ALL
            .into_iter()
            .filter(|c| variants[c.index()].is_some())
            .collect()
    }

    /// Bytes the entry holds: body, variants, its key (here and in the
    /// map), headers, and the entry itself with its slot (measured: about
    /// 600 bytes on top of the bodies).
    pub fn weight(&self) -> u64 {
        let variants: usize = self
            .variants
            .read()
            .expect("variants lock")
            .iter()
            .flatten()
            .map(|v| v.bytes.len())
            .sum();
        let headers = self.link.as_ref().map_or(0, |l| l.len()) + ENTRY_OVERHEAD;
        (self.identity.len() + variants + 2 * self.key.as_str().len() + headers) as u64
    }

    /// The entry as the second-level cache stores it: validators, then the
    /// body compressed with zstd (which also serves zstd clients directly).
    /// `version_tag` is the tag of the request at the versions the entry was
    /// built from: what a reader checks to know the entry is current.
    pub fn to_shared(&self, zstd_level: i32, version_tag: &Etag) -> Vec<u8> {
        let packed = crate::encoding::compress(Coding::Zstd, zstd_level, &self.identity);
        let seconds = self
            .last_modified_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let link = self
            .link
            .as_ref()
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        let mut bytes = format!(
            "{}\n{}\n{seconds}\n{link}\n{zstd_level}\n",
            version_tag.0, self.etag.0
        )
        .into_bytes();
        bytes.extend_from_slice(&packed);
        bytes
    }

    /// Reads a second-level entry, if it was built at the versions that
    /// give `version_tag` (the tag this request has at the current versions:
    /// an older entry has another).
    pub fn from_shared(
        bytes: &[u8],
        key: CanonicalRequest,
        version_tag: &Etag,
        built_from: Snapshot,
        policy: &CachePolicy,
    ) -> Option<Entry> {
        let mut parts = bytes.splitn(6, |b| *b == b'\n');
        let stored_version = std::str::from_utf8(parts.next()?).ok()?;
        if stored_version != version_tag.0 {
            return None;
        }
        let etag = Etag(std::str::from_utf8(parts.next()?).ok()?.to_string());
        let seconds: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let link = std::str::from_utf8(parts.next()?).ok()?;
        let level: i32 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let packed = parts.next()?;
        let identity = zstd::decode_all(packed).ok()?;
        let answer = Answered {
            identity: Bytes::from(identity),
            link: (!link.is_empty())
                .then(|| HeaderValue::from_str(link).ok())
                .flatten(),
            etag,
            last_modified: std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
            built_from,
        };
        let entry = Entry::new(key, answer, policy);
        let variant = entry.coded(Coding::Zstd, level, Bytes::copy_from_slice(packed));
        entry.set_variant(Coding::Zstd, variant);
        Some(entry)
    }
}

/// What an entry holds beyond its bodies, key and `Link`: the struct, its
/// validators and versions, the map's slot.
const ENTRY_OVERHEAD: usize = 640;

/// What an alias holds beyond its key: the slot and the map's bookkeeping.
const ALIAS_OVERHEAD: u64 = 128;

#[derive(Clone)]
pub struct SlotWeighter;

impl Weighter<SlotKey, Slot> for SlotWeighter {
    fn weight(&self, key: &SlotKey, slot: &Slot) -> u64 {
        match (key, slot) {
            (_, Slot::Entry(_, weight)) => *weight,
            (SlotKey::Alias(_, raw), Slot::Alias(_)) => raw.len() as u64 + ALIAS_OVERHEAD,
            (SlotKey::Answer(request), Slot::Alias(_)) => {
                request.as_str().len() as u64 + ALIAS_OVERHEAD
            }
        }
    }
}

/// Counts evicted entries (aliases are not counted).
#[derive(Clone, Default)]
pub struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<SlotKey, Slot> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: SlotKey, slot: Slot) {
        if matches!(slot, Slot::Entry(..)) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Map = Cache<SlotKey, Slot, SlotWeighter, DefaultHashBuilder, CountEvictions>;

/// Counters of the cache's work, read by tests and (later) the metrics endpoint.
#[derive(Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    /// 304s answered (from an entry or from versions alone).
    pub not_modified: AtomicU64,
    /// Identity bytes minus encoded bytes, summed over encoded answers sent,
    /// per coding (in `Coding::ALL` order).
    pub bytes_saved: [AtomicU64; 4],
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub not_modified: u64,
    pub evictions: u64,
    pub bytes_held: u64,
    pub bytes_saved: u64,
    pub entries: usize,
}

pub struct ResponseCache {
    map: Map,
    evictions: Arc<AtomicU64>,
    pub stats: CacheStats,
    /// Whether answers are cached at all.
    pub enabled: bool,
    /// Whether a request's `Cache-Control: no-cache` skips the cache.
    pub honor_client_no_cache: bool,
    policies: HashMap<String, CachePolicy>,
}

pub type Guard<'a> =
    PlaceholderGuard<'a, SlotKey, Slot, SlotWeighter, DefaultHashBuilder, CountEvictions>;

impl ResponseCache {
    /// A cache as `settings` say, with the policy of each of `resources`.
    pub fn new<'a>(
        settings: &CacheSettings,
        resources: impl IntoIterator<Item = &'a str>,
    ) -> ResponseCache {
        let max_bytes = settings.max_bytes;
        let lifecycle = CountEvictions::default();
        let evictions = lifecycle.0.clone();
        // quick_cache sizes its tables from an item estimate: a few KiB per entry.
        let estimated_items = (max_bytes / 4096).clamp(64, 1 << 20) as usize;
        let map = Cache::with(
            estimated_items,
            max_bytes,
            SlotWeighter,
            DefaultHashBuilder::default(),
            lifecycle,
        );
        ResponseCache {
            map,
            evictions,
            stats: CacheStats::default(),
            enabled: settings.enabled,
            honor_client_no_cache: settings.honor_client_no_cache,
            policies: resources
                .into_iter()
                .map(|name| (name.to_string(), settings.policy(name)))
                .collect(),
        }
    }

    /// How answers of `resource` are cached.
    pub fn policy(&self, resource: &str) -> &CachePolicy {
        self.policies
            .get(resource)
            .expect("every served resource has a policy")
    }

    /// The entry a raw path and query led to before, for callers of this
    /// partition, if it is still held.
    pub fn by_alias(&self, partition: &str, path_and_query: &str) -> Option<Arc<Entry>> {
        match self.map.get(&AliasKey(partition, path_and_query))? {
            Slot::Alias(entry) => entry.upgrade(),
            Slot::Entry(..) => None,
        }
    }

    /// The entry under `key`, or a guard that makes the caller its loader
    /// while other callers for the same key wait.
    pub async fn get_or_guard(&self, key: &CanonicalRequest) -> Result<Arc<Entry>, Guard<'_>> {
        let key = SlotKey::Answer(key.clone());
        loop {
            match self.map.get_value_or_guard_async(&key).await {
                Ok(Slot::Entry(entry, _)) => return Ok(entry),
                // only entries are filed under answer keys; an alias here is a bug
                Ok(Slot::Alias(_)) => {
                    self.map.remove(&key);
                }
                Err(guard) => return Err(guard),
            }
        }
    }

    pub fn insert(&self, guard: Guard<'_>, entry: &Arc<Entry>) {
        let _ = guard.insert(Slot::entry(entry));
    }

    /// Files an entry under its key, replacing whatever is there (refreshes).
    pub fn put(&self, entry: &Arc<Entry>) {
        self.map
            .insert(SlotKey::Answer(entry.key.clone()), Slot::entry(entry));
    }

    pub fn alias(&self, partition: &Arc<str>, path_and_query: &str, entry: &Arc<Entry>) {
        let fresh = match self.map.peek(&AliasKey(partition, path_and_query)) {
            Some(Slot::Alias(existing)) => !std::ptr::eq(existing.as_ptr(), Arc::as_ptr(entry)),
            _ => true,
        };
        if fresh {
            self.map.insert(
                SlotKey::Alias(partition.clone(), path_and_query.into()),
                Slot::Alias(Arc::downgrade(entry)),
            );
        }
    }

    /// Drops `entry` if it is still the one filed under its key.
    pub fn remove(&self, entry: &Arc<Entry>) {
        self.map.remove_if(
            &SlotKey::Answer(entry.key.clone()),
            |slot| matches!(slot, Slot::Entry(current, _) if Arc::ptr_eq(current, entry)),
        );
    }

    /// Re-files an entry whose variants grew, so its weight counts them.
    pub fn reweigh(&self, entry: &Arc<Entry>) {
        let _ = self
            .map
            .replace(SlotKey::Answer(entry.key.clone()), Slot::entry(entry), true);
    }

    pub fn counters(&self) -> CacheCounters {
        let entries = self
            .map
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Entry(..)))
            .count();
        CacheCounters {
            hits: self.stats.hits.load(Ordering::Relaxed),
            misses: self.stats.misses.load(Ordering::Relaxed),
            stale: self.stats.stale.load(Ordering::Relaxed),
            not_modified: self.stats.not_modified.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes_held: self.map.weight(),
            bytes_saved: self
                .stats
                .bytes_saved
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum(),
            entries,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.map.capacity()
    }
}
