//! Rate limits: GCRA per caller and quota, on this instance (governor) or,
//! with Redis, shared by every instance (one script call per request, see
//! [`Cluster::gcra`]). When Redis is away each instance decides alone, says
//! so once in its log, and counts the decisions it made that way.
//!
//! GCRA lets a caller spend its whole quota at once and then one request
//! every `window / requests`; a cost of `n` spends `n` requests at once.

use crate::cluster::Cluster;
use axum::http::{HeaderMap, HeaderValue, header};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, clock::Clock};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Who a rate limit is counted for: an API key, else a token's subject,
/// else the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Key(Arc<str>),
    Subject(Arc<str>),
    Address(IpAddr),
}

impl LimitKey {
    /// A client's address; IPv6 clients count by their /64, the block one
    /// host is given, so a host cannot mint fresh limits from its block.
    pub fn address(client: IpAddr) -> LimitKey {
        match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let block = u128::from(v6) & (u128::MAX << 64);
                LimitKey::Address(IpAddr::V6(block.into()))
            }
            IpAddr::V6(v6) => LimitKey::Address(IpAddr::V4(v6.to_ipv4_mapped().expect("mapped"))),
            v4 => LimitKey::Address(v4),
        }
    }
}

impl std::fmt::Display for LimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitKey::Key(name) => write!(f, "key:{name}"),
            LimitKey::Subject(subject) => write!(f, "sub:{subject}"),
            LimitKey::Address(address) => write!(f, "ip:{address}"),
        }
    }
}

type LocalLimits = DefaultKeyedRateLimiter<LimitKey, StateInformationMiddleware>;

/// A named limit: `requests` per `window` for each caller.
pub struct Quota {
    pub name: Arc<str>,
    pub requests: u32,
    pub window: Duration,
    /// One request's share of the window.
    interval: Duration,
    /// Its `RateLimit-Policy` field, made once.
    policy: Option<HeaderValue>,
    local: LocalLimits,
    /// Decisions since the local state was last swept of idle callers.
    since_sweep: AtomicU64,
}

/// How many local decisions between sweeps of callers whose state is back
/// to fresh (governor's `retain_recent`): bounds memory under many callers.
const SWEEP_EVERY: u64 = 4096;

impl Quota {
    /// `requests` (at least 1) per `window` (at least 1 ms).
    pub fn new(name: Arc<str>, requests: u32, window: Duration) -> Quota {
        let requests = requests.max(1);
        let window = window.max(Duration::from_millis(1));
        let interval = (window / requests).max(Duration::from_nanos(1));
        let quota = governor::Quota::with_period(interval)
            .expect("a positive interval")
            .allow_burst(NonZeroU32::new(requests).expect("at least 1"));
        let policy = HeaderValue::from_str(&format!(
            "\"{name}\";q={requests};w={}",
            window.as_secs().max(1)
        ))
        .ok();
        Quota {
            name,
            requests,
            window,
            interval,
            policy,
            local: governor::RateLimiter::keyed(quota)
                .with_middleware::<StateInformationMiddleware>(),
            since_sweep: AtomicU64::new(0),
        }
    }

    /// One GCRA step on this instance's own state.
    fn spend_locally(&self, key: &LimitKey, cost: u32) -> Decision {
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.local.retain_recent();
        }
        let cost = NonZeroU32::new(cost.clamp(1, self.requests)).expect("at least 1");
        match self.local.check_key_n(key, cost) {
            Ok(Ok(state)) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    // whole again once the spent requests are earned back
                    reset: self.interval * (self.requests - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.local.clock().now());
                // allowed at TAT + (cost - 1) intervals - (requests - 1) intervals
                let whole = wait + self.interval * (self.requests - cost.get());
                self.refused(wait, whole)
            }
            Err(_) => unreachable!("the cost is clamped to the burst"),
        }
    }

    /// A refusal `wait` before the request would be allowed and `whole`
    /// before the quota is whole again.
    fn refused(&self, wait: Duration, whole: Duration) -> Decision {
        let spent = whole.as_nanos() / self.interval.as_nanos().max(1);
        Decision {
            allowed: false,
            remaining: (self.requests as u128).saturating_sub(spent + 1) as u32,
            reset: whole,
            retry_after: wait.max(Duration::from_secs(1)),
        }
    }
}

/// What a limit said about one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left in the quota after this one.
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// Until a request of this cost would be allowed (zero when allowed).
    pub retry_after: Duration,
}

impl Decision {
    /// The IETF draft's `RateLimit-Policy` and `RateLimit` fields, and
    /// `Retry-After` on a refusal.
    pub fn write_headers(&self, quota: &Quota, headers: &mut HeaderMap) {
        if let Some(policy) = &quota.policy {
            headers.insert("ratelimit-policy", policy.clone());
        }
        let limit = format!(
            "\"{}\";r={};t={}",
            quota.name,
            self.remaining,
            self.reset.as_secs_f64().ceil() as u64
        );
        if let Ok(limit) = HeaderValue::from_str(&limit) {
            headers.insert("ratelimit", limit);
        }
        if !self.allowed {
            let seconds = self.retry_after.as_secs_f64().ceil() as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

/// Spends quotas, on Redis when there is one and it answers.
pub struct RateLimiter {
    cluster: Option<Arc<Cluster>>,
    /// Whether the last decision was made alone though Redis is configured.
    alone: AtomicBool,
    fallbacks: AtomicU64,
}

impl RateLimiter {
    pub fn new(cluster: Option<Arc<Cluster>>) -> RateLimiter {
        RateLimiter {
            cluster,
            alone: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Spends `cost` requests of `quota` for `key`.
    pub async fn spend(&self, quota: &Quota, key: &LimitKey, cost: u32) -> Decision {
        let Some(cluster) = &self.cluster else {
            return quota.spend_locally(key, cost);
        };
        let limit = format!("{}:{key}", quota.name);
        let cost = cost.clamp(1, quota.requests);
        match cluster
            .gcra(&limit, quota.interval, quota.requests, cost)
            .await
        {
            Some((allowed, remaining, wait, whole)) => {
                if self.alone.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis is back: rate limits are shared again");
                }
                let whole = Duration::from_micros(whole);
                if allowed {
                    Decision {
                        allowed,
                        remaining: remaining.min(u32::MAX as u64) as u32,
                        reset: whole,
                        retry_after: Duration::ZERO,
                    }
                } else {
                    quota.refused(Duration::from_micros(wait), whole)
                }
            }
            None => {
                if !self.alone.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "Redis is away: each instance enforces rate limits alone until it is back"
                    );
                }
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                quota.spend_locally(key, cost)
            }
        }
    }

    /// Whether decisions are made alone though Redis is configured.
    pub fn is_local_fallback(&self) -> bool {
        self.alone.load(Ordering::Relaxed)
    }

    /// Decisions made alone because Redis was away.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(requests: u32, seconds: u64) -> Quota {
        Quota::new("q".into(), requests, Duration::from_secs(seconds))
    }

    #[test]
    fn a_burst_then_one_request_per_interval() {
        let quota = quota(5, 3600);
        let key = LimitKey::Key("k".into());
        let left: Vec<u32> = (0..5)
            .map(|_| quota.spend_locally(&key, 1))
            .inspect(|d| assert!(d.allowed))
            .map(|d| d.remaining)
            .collect();
        assert_eq!(left, [4, 3, 2, 1, 0]);
        let refused = quota.spend_locally(&key, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        let wait = refused.retry_after.as_secs_f64();
        assert!((719.0..=720.0).contains(&wait), "{wait}");
        // another caller has its own quota
        assert!(
            quota
                .spend_locally(&LimitKey::Key("other".into()), 1)
                .allowed
        );
    }

    #[test]
    fn a_cost_spends_several_requests_and_is_capped_at_the_quota() {
        let quota = quota(10, 60);
        let key = LimitKey::Subject("s".into());
        assert_eq!(quota.spend_locally(&key, 4).remaining, 6);
        let refused = quota.spend_locally(&key, 7);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 6, "a refusal spends nothing");
        assert_eq!(quota.spend_locally(&key, 6).remaining, 0);
        let other = LimitKey::Subject("t".into());
        let capped = quota.spend_locally(&other, 1000);
        assert!(capped.allowed, "a cost beyond the quota spends the quota");
        assert_eq!(capped.remaining, 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_64_block() {
        let a = LimitKey::address("2001:db8:1:2::1".parse().unwrap());
        let b = LimitKey::address("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = LimitKey::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = LimitKey::address("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped, LimitKey::address("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn headers_name_the_policy_and_what_is_left() {
        let quota = quota(600, 60);
        let decision = quota.spend_locally(&LimitKey::Key("k".into()), 1);
        let mut headers = HeaderMap::new();
        decision.write_headers(&quota, &mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"q\";q=600;w=60");
        assert_eq!(headers["ratelimit"], "\"q\";r=599;t=1");
        assert!(!headers.contains_key(header::RETRY_AFTER));
    }
}
