//! What makes an answer current, and what it is called: the versions of the
//! tables and rows it was built from ([`Versions`]), the strong ETag they
//! give together with the canonical request and the cluster's seed, its
//! Last-Modified, and whether a cached answer may still be served
//! ([`Freshness`]). All of it is known before any body exists, so a
//! revalidation is answered without the database. (A single row by its
//! key is tagged by its content instead, `Etag::of_content`, so that a
//! write can check `If-Match` against the row as stored.)

use crate::cluster::Cluster;
use crate::conditional::{Etag, EtagSeed};
use crate::versions::{Snapshot, Versions};
use brisk_query::canonical::CanonicalRequest;
use brisk_query::plan::Dependencies;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct Validators {
    versions: Arc<Versions>,
    seed: Arc<EtagSeed>,
    /// With Redis: its link, and how old a cached answer may be served
    /// while the link is down (writes elsewhere cannot reach this instance).
    cluster: Option<(Arc<Cluster>, Duration)>,
}

/// Whether a cached answer may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past its TTL but within stale-while-revalidate; never after a write.
    Stale,
    Expired,
}

/// When a cached answer was made and how long it may be served.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub created: Instant,
    pub fresh_until: Instant,
    /// Past `fresh_until` and before this, the answer may be served while a
    /// refresh runs (stale-while-revalidate).
    pub stale_until: Instant,
}

impl Lifetime {
    pub fn starting_now(ttl: Duration, stale: Duration) -> Lifetime {
        let created = Instant::now();
        Lifetime {
            created,
            fresh_until: created + ttl,
            stale_until: created + ttl + stale,
        }
    }

    /// Seconds since it was made, for `Age`.
    pub fn age_seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_secs()
    }
}

impl Validators {
    pub fn new(
        versions: Arc<Versions>,
        seed: Arc<EtagSeed>,
        cluster: Option<(Arc<Cluster>, Duration)>,
    ) -> Validators {
        Validators {
            versions,
            seed,
            cluster,
        }
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The current versions of what an answer depends on.
    pub fn snapshot(&self, dependencies: &Dependencies<'_>) -> Snapshot {
        self.versions.snapshot(dependencies)
    }

    /// The strong ETag of a canonical request at the given versions.
    pub fn etag(&self, request: &CanonicalRequest, built_from: &Snapshot) -> Etag {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        self.seed.hash_into(&mut hasher);
        hasher.update(request.as_str().as_bytes());
        built_from.hash_into(&mut hasher);
        Etag(format!("{:032x}", hasher.digest128()))
    }

    /// `Last-Modified` of an answer built from these versions.
    pub fn last_modified(&self, built_from: &Snapshot) -> SystemTime {
        self.versions.last_changed(built_from)
    }

    /// Whether an answer built from `built_from` may be served at `now`:
    /// its versions are current, it is within its TTL, and, while Redis is
    /// away, young enough that a write elsewhere could not have gone
    /// unnoticed for long.
    pub fn freshness(&self, built_from: &Snapshot, lifetime: &Lifetime, now: Instant) -> Freshness {
        if !self.versions.is_current(built_from) {
            return Freshness::Expired;
        }
        if let Some((cluster, degraded_ttl)) = &self.cluster
            && !cluster.is_connected()
            && now.saturating_duration_since(lifetime.created) > *degraded_ttl
        {
            return Freshness::Expired;
        }
        if now < lifetime.fresh_until {
            Freshness::Fresh
        } else if now < lifetime.stale_until {
            Freshness::Stale
        } else {
            Freshness::Expired
        }
    }
}
