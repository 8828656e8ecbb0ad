//! The server-side response cache: answers stored as bytes with their
//! compressed variants and validators, bounded in bytes.
//!
//! One quick_cache map holds two kinds of slot. An entry is filed under its
//! canonical request (`=` + route + canonical query), so equivalent requests
//! share it. An alias is filed under the raw path and query a client sent
//! (which always starts with `/`) and points weakly at an entry, so a
//! repeated request finds its answer without parsing or planning anything.
//! Concurrent misses on one canonical key wait for one loader
//! (`get_value_or_guard_async`). quick_cache rather than moka: a get costs
//! tens of nanoseconds instead of about a microsecond here, and a hit must
//! cost less than nginx serving a file (BENCHMARKS.md).

use crate::conditional::Etag;
use crate::encoding::Coding;
use crate::versions::{Snapshot, Versions};
use axum::http::HeaderValue;
use bytes::Bytes;
use quick_cache::sync::{Cache, PlaceholderGuard};
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

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
    /// The canonical key it is filed under.
    pub key: String,
    pub identity: Bytes,
    variants: RwLock<[Option<Variant>; 4]>,
    pub etag: Etag,
    pub identity_etag: HeaderValue,
    pub last_modified: HeaderValue,
    pub last_modified_time: std::time::SystemTime,
    pub link: Option<HeaderValue>,
    pub cache_control: HeaderValue,
    /// The versions of the tables the answer was built from.
    pub versions: Snapshot,
    pub created: Instant,
    pub fresh_until: Instant,
    /// Past `fresh_until` and before this, the entry may be served while a
    /// refresh runs (stale-while-revalidate).
    pub stale_until: Instant,
    pub hits: AtomicU64,
    pub refreshing: AtomicBool,
    pub recompressing: AtomicBool,
}

/// The answer in one content coding.
#[derive(Clone)]
pub struct Variant {
    pub coding: Coding,
    pub bytes: Bytes,
    pub etag: HeaderValue,
    pub level: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its TTL but within stale-while-revalidate; never after a write.
    Stale,
    Expired,
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: String,
        identity: Bytes,
        etag: Etag,
        last_modified_time: std::time::SystemTime,
        link: Option<HeaderValue>,
        cache_control: HeaderValue,
        versions: Snapshot,
        ttl: std::time::Duration,
        stale: std::time::Duration,
    ) -> Entry {
        let created = Instant::now();
        Entry {
            key,
            identity,
            variants: RwLock::new([None, None, None, None]),
            identity_etag: etag.identity_header(),
            etag,
            last_modified: crate::conditional::http_date(last_modified_time),
            last_modified_time,
            link,
            cache_control,
            versions,
            created,
            fresh_until: created + ttl,
            stale_until: created + ttl + stale,
            hits: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            recompressing: AtomicBool::new(false),
        }
    }

    pub fn freshness(&self, versions: &Versions, now: Instant) -> Freshness {
        if !versions.is_current(&self.versions) {
            Freshness::Expired
        } else if now < self.fresh_until {
            Freshness::Fresh
        } else if now < self.stale_until {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }

    pub fn variant(&self, coding: Coding) -> Option<Variant> {
        self.variants.read().expect("variants lock")[coding.index()].clone()
    }

    pub fn set_variant(&self, coding: Coding, variant: Variant) {
        self.variants.write().expect("variants lock")[coding.index()] = Some(variant);
    }

    /// The codings made so far.
    pub fn codings(&self) -> Vec<Coding> {
        let variants = self.variants.read().expect("variants lock");
        Coding::ALL
            .into_iter()
            .filter(|c| variants[c.index()].is_some())
            .collect()
    }

    /// Bytes the entry holds: body, variants, key, headers.
    pub fn weight(&self) -> u64 {
        let variants: usize = self
            .variants
            .read()
            .expect("variants lock")
            .iter()
            .flatten()
            .map(|v| v.bytes.len())
            .sum();
        let headers = self.link.as_ref().map_or(0, |l| l.len()) + 256;
        (self.identity.len() + variants + self.key.len() + headers) as u64
    }

    /// The entry as the second-level cache stores it: validators, then the
    /// body compressed with zstd (which also serves zstd clients directly).
    pub fn to_shared(&self, zstd_level: i32) -> Vec<u8> {
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
        let mut bytes = format!("{}\n{seconds}\n{link}\n{zstd_level}\n", self.etag.0).into_bytes();
        bytes.extend_from_slice(&packed);
        bytes
    }

    /// Reads a second-level entry, if it is the answer with `etag` (the tag
    /// this request has at the current versions: an older entry has another).
    pub fn from_shared(bytes: &[u8], etag: &Etag, fields: SharedFields) -> Option<Entry> {
        let mut parts = bytes.splitn(5, |b| *b == b'\n');
        let stored_etag = std::str::from_utf8(parts.next()?).ok()?;
        if stored_etag != etag.0 {
            return None;
        }
        let seconds: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let link = std::str::from_utf8(parts.next()?).ok()?;
        let level: i32 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let packed = parts.next()?;
        let identity = zstd::decode_all(packed).ok()?;
        let entry = Entry::new(
            fields.key,
            Bytes::from(identity),
            etag.clone(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
            (!link.is_empty())
                .then(|| HeaderValue::from_str(link).ok())
                .flatten(),
            fields.cache_control,
            fields.versions,
            fields.ttl,
            fields.stale,
        );
        entry.set_variant(
            Coding::Zstd,
            Variant {
                coding: Coding::Zstd,
                bytes: Bytes::copy_from_slice(packed),
                etag: entry.etag.coded_header(Coding::Zstd, level),
                level,
            },
        );
        Some(entry)
    }

    /// Seconds since it was made, for `Age`.
    pub fn age_seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_secs()
    }
}

/// What a second-level entry does not carry: this instance's view of it.
pub struct SharedFields {
    pub key: String,
    pub cache_control: HeaderValue,
    pub versions: Snapshot,
    pub ttl: std::time::Duration,
    pub stale: std::time::Duration,
}

#[derive(Clone)]
pub struct SlotWeighter;

impl Weighter<String, Slot> for SlotWeighter {
    fn weight(&self, key: &String, slot: &Slot) -> u64 {
        match slot {
            Slot::Entry(_, weight) => *weight,
            Slot::Alias(_) => key.len() as u64 + 64,
        }
    }
}

/// Counts evicted entries (aliases are not counted).
#[derive(Clone, Default)]
pub struct CountEvictions(Arc<AtomicU64>);

impl Lifecycle<String, Slot> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: String, slot: Slot) {
        if matches!(slot, Slot::Entry(..)) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type Map = Cache<String, Slot, SlotWeighter, DefaultHashBuilder, CountEvictions>;

/// Counters of the cache's work, read by tests and (later) the metrics endpoint.
#[derive(Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    /// 304s answered (from an entry or from versions alone).
    pub not_modified: AtomicU64,
    /// Identity bytes minus encoded bytes, summed over encoded answers sent.
    pub bytes_saved: AtomicU64,
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
}

pub type Guard<'a> =
    PlaceholderGuard<'a, String, Slot, SlotWeighter, DefaultHashBuilder, CountEvictions>;

impl ResponseCache {
    pub fn new(max_bytes: u64) -> ResponseCache {
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
        }
    }

    /// The entry a raw path and query led to before, if it is still held.
    pub fn by_alias(&self, path_and_query: &str) -> Option<Arc<Entry>> {
        match self.map.get(path_and_query)? {
            Slot::Alias(entry) => entry.upgrade(),
            Slot::Entry(..) => None,
        }
    }

    /// The entry under `key`, or a guard that makes the caller its loader
    /// while other callers for the same key wait.
    pub async fn get_or_guard(&self, key: &str) -> Result<Arc<Entry>, Guard<'_>> {
        loop {
            match self.map.get_value_or_guard_async(key).await {
                Ok(Slot::Entry(entry, _)) => return Ok(entry),
                // an alias under a canonical key cannot happen (`=` vs `/`)
                Ok(Slot::Alias(_)) => {
                    self.map.remove(key);
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
        self.map.insert(entry.key.clone(), Slot::entry(entry));
    }

    pub fn alias(&self, path_and_query: &str, entry: &Arc<Entry>) {
        let fresh = match self.map.peek(path_and_query) {
            Some(Slot::Alias(existing)) => !std::ptr::eq(existing.as_ptr(), Arc::as_ptr(entry)),
            _ => true,
        };
        if fresh {
            self.map.insert(
                path_and_query.to_string(),
                Slot::Alias(Arc::downgrade(entry)),
            );
        }
    }

    /// Drops `entry` if it is still the one filed under its key.
    pub fn remove(&self, entry: &Arc<Entry>) {
        self.map.remove_if(
            entry.key.as_str(),
            |slot| matches!(slot, Slot::Entry(current, _) if Arc::ptr_eq(current, entry)),
        );
    }

    /// Re-files an entry whose variants grew, so its weight counts them.
    pub fn reweigh(&self, entry: &Arc<Entry>) {
        let _ = self
            .map
            .replace(entry.key.clone(), Slot::entry(entry), true);
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
            bytes_saved: self.stats.bytes_saved.load(Ordering::Relaxed),
            entries,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.map.capacity()
    }
}
