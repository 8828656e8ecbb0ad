//! GET and HEAD through the response cache.
//!
//! A hit ([`hit`], before any routing) costs a map lookup by the raw path
//! and query, a version check and headers: no parsing, no database, no JSON,
//! no compression. A miss ([`get`]) plans the read, answers a matching
//! `If-None-Match` from versions alone, and otherwise runs one query per
//! canonical request however many clients ask at once (single flight),
//! trying the second-level cache in Redis first. Entries gain their
//! compressed variants on first demand, are refreshed in the background
//! while served stale (stale-while-revalidate), and are recompressed at the
//! highest levels once they prove hot.

use crate::access::{Spent, Viewer};
use crate::cache::{Answered, Entry, Variant};
use crate::conditional::Etag;
use crate::encoding::{self, AcceptEncoding, Coding, Negotiated};
use crate::error::ApiError;
use crate::read::{self, Answer, Caller, PlannedRead, ReadPath};
use crate::respond::{self, CacheOutcome, Content, Described, Timing};
use crate::state::AppState;
use crate::validators::Freshness;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The parts of a read request the response depends on.
pub struct ReadRequest<'a> {
    /// Who asks: its role, rows, partition of the cache, and its address
    /// (whose turn a miss takes at the database).
    pub viewer: &'a Viewer,
    pub path: ReadPath<'a>,
    /// The raw path and query, as the client sent them: the alias key.
    pub path_and_query: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

/// The fast path of a cache hit, before any routing: the raw path and query
/// lead to a fresh entry that already has the client's coding. `None` sends
/// the request the long way (routing, planning, compressing).
pub fn hit(
    state: &Arc<AppState>,
    request: &Request<Body>,
    viewer: &Viewer,
) -> Option<Response<Body>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) || !state.cache.enabled {
        return None;
    }
    let headers = request.headers();
    if state.cache.honor_client_no_cache && asks_no_cache(headers) {
        return None;
    }
    let path_and_query = request.uri().path_and_query()?.as_str();
    let entry = state.cache.by_alias(&viewer.partition, path_and_query)?;
    let started = Instant::now();
    if state
        .validators
        .freshness(&entry.built_from, &entry.lifetime, started)
        != Freshness::Fresh
    {
        return None;
    }
    let accept = AcceptEncoding::parse(headers.get(header::ACCEPT_ENCODING));
    if accept.is_some_and(|a| a.choose(true) == Negotiated::NotAcceptable) {
        return None;
    }
    let variant = match chosen_coding(state, &entry, accept) {
        Some(coding) => Some(entry.variant(coding)?),
        None => None,
    };
    Some(entry_response(
        state,
        &entry,
        headers,
        variant,
        Timing::new(started, CacheOutcome::Hit),
    ))
}

/// GET and HEAD on a `/v1/...` route that the fast path did not answer.
pub async fn get(state: &Arc<AppState>, request: ReadRequest<'_>) -> Response<Body> {
    let started = Instant::now();
    let accept = AcceptEncoding::parse(request.headers.get(header::ACCEPT_ENCODING));
    if accept.is_some_and(|a| a.choose(true) == Negotiated::NotAcceptable) {
        return respond::not_acceptable();
    }
    let bypass = state.cache.honor_client_no_cache && asks_no_cache(request.headers);
    if state.cache.enabled
        && !bypass
        && let Some(entry) = state
            .cache
            .by_alias(&request.viewer.partition, request.path_and_query)
        && let Some(response) = serve_current(state, &entry, &request, accept, started).await
    {
        return response;
    }
    let planned = match read::plan(state, request.viewer, request.path, request.query) {
        Ok(planned) => Arc::new(planned),
        Err(error) => return error.into_response(),
    };
    let policy = state.cache.policy(planned.resource());
    let built_from = state.validators.snapshot(&planned.dependencies());
    let version_tag = state.validators.etag(&planned.canonical, &built_from);
    let last_modified = state.validators.last_modified(&built_from);
    let mut timing = Timing::new(started, CacheOutcome::Revalidated);
    timing.parse = Some(planned.parse_time);
    timing.plan = Some(planned.plan_time);
    // a row's tag is its content's, known only once it is read
    if !planned.is_row()
        && let Some(revalidated) =
            crate::conditional::not_modified_by_tag(request.headers, &version_tag)
    {
        let etag = &version_tag;
        state
            .cache
            .stats
            .not_modified
            .fetch_add(1, Ordering::Relaxed);
        let described = Described {
            etag,
            etag_sent: revalidated
                .client_tag
                .unwrap_or_else(|| etag.identity_header()),
            last_modified,
            last_modified_header: crate::conditional::http_date(last_modified),
            cache_control: &policy.cache_control,
            age: None,
        };
        return respond::not_modified(described, &timing);
    }
    let caller = Caller {
        client: request.viewer.client,
        since: started,
    };
    if !policy.cache || bypass {
        let spent = match spend_miss(state, request.viewer).await {
            Ok(spent) => spent,
            Err(error) => return error.into_response(),
        };
        let mut response = match read::execute(state, &planned, caller, accept).await {
            Ok(answer) => {
                timing.cache = CacheOutcome::Off;
                let etag = answer_etag(&planned, &answer, version_tag);
                let described = Described {
                    etag: &etag,
                    etag_sent: etag.identity_header(),
                    last_modified,
                    last_modified_header: crate::conditional::http_date(last_modified),
                    cache_control: &policy.cache_control,
                    age: None,
                };
                serve_uncached(answer, described, &request, timing)
            }
            Err(error) => error.into_response(),
        };
        if let Some(spent) = spent {
            response.extensions_mut().insert(spent);
        }
        return response;
    }
    loop {
        match state.cache.get_or_guard(&planned.canonical).await {
            Ok(entry) => match serve_current(state, &entry, &request, accept, started).await {
                Some(response) => return response,
                None => state.cache.remove(&entry),
            },
            Err(guard) => {
                let built_from = state.validators.snapshot(&planned.dependencies());
                let version_tag = state.validators.etag(&planned.canonical, &built_from);
                if let Some(entry) = shared_entry(state, &planned, &version_tag, &built_from).await
                {
                    let entry = Arc::new(entry);
                    state.cache.insert(guard, &entry);
                    state
                        .cache
                        .alias(&request.viewer.partition, request.path_and_query, &entry);
                    timing.cache = CacheOutcome::Shared;
                    return serve_entry(state, &entry, &request, accept, timing).await;
                }
                let spent = match spend_miss(state, request.viewer).await {
                    Ok(spent) => spent,
                    Err(error) => return error.into_response(),
                };
                let answer = match read::execute(state, &planned, caller, accept).await {
                    Ok(answer) => answer,
                    Err(error) => return error.into_response(),
                };
                timing.cache = CacheOutcome::Miss;
                timing.db = Some(answer.db_time);
                timing.render = Some(answer.render_time);
                timing.compress = answer.compressed.as_ref().map(|c| c.time);
                let entry = Arc::new(make_entry(state, &planned, answer, built_from));
                state.cache.insert(guard, &entry);
                state
                    .cache
                    .alias(&request.viewer.partition, request.path_and_query, &entry);
                share_entry(state, &planned, &entry, version_tag);
                let mut response = serve_entry(state, &entry, &request, accept, timing).await;
                if let Some(spent) = spent {
                    response.extensions_mut().insert(spent);
                }
                return response;
            }
        }
    }
}

/// The answer from the second-level cache (Redis), if it holds this
/// request's answer at the current versions.
async fn shared_entry(
    state: &AppState,
    planned: &PlannedRead,
    version_tag: &Etag,
    built_from: &crate::versions::Snapshot,
) -> Option<Entry> {
    let cluster = state.cluster.as_ref()?;
    let bytes = cluster.get_entry(planned.canonical.as_str()).await?;
    Entry::from_shared(
        &bytes,
        planned.canonical.clone(),
        version_tag,
        built_from.clone(),
        state.cache.policy(planned.resource()),
    )
}

/// Stores a new entry in the second-level cache, in the background.
fn share_entry(
    state: &Arc<AppState>,
    planned: &PlannedRead,
    entry: &Arc<Entry>,
    version_tag: Etag,
) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    if !cluster.is_connected() {
        return;
    }
    let entry = entry.clone();
    let ttl = state.cache.policy(planned.resource()).ttl;
    let level = state.compression.levels.zstd;
    tokio::spawn(async move {
        let key = entry.key.clone();
        let bytes = tokio::task::spawn_blocking(move || entry.to_shared(level, &version_tag)).await;
        if let Ok(bytes) = bytes {
            cluster.put_entry(key.as_str(), bytes, ttl).await;
        }
    });
}

/// Serves an entry that is still current: fresh, or stale within
/// stale-while-revalidate (then refreshed once in the background). `None`
/// when it has expired.
async fn serve_current(
    state: &Arc<AppState>,
    entry: &Arc<Entry>,
    request: &ReadRequest<'_>,
    accept: Option<AcceptEncoding>,
    started: Instant,
) -> Option<Response<Body>> {
    let freshness = state
        .validators
        .freshness(&entry.built_from, &entry.lifetime, Instant::now());
    let outcome = match freshness {
        Freshness::Fresh => CacheOutcome::Hit,
        Freshness::Stale => {
            refresh_in_background(state, entry, request);
            CacheOutcome::Stale
        }
        Freshness::Expired => return None,
    };
    state
        .cache
        .alias(&request.viewer.partition, request.path_and_query, entry);
    let timing = Timing::new(started, outcome);
    Some(serve_entry(state, entry, request, accept, timing).await)
}

fn make_entry(
    state: &AppState,
    planned: &PlannedRead,
    answer: Answer,
    built_from: crate::versions::Snapshot,
) -> Entry {
    let version_tag = state.validators.etag(&planned.canonical, &built_from);
    let answered = Answered {
        etag: answer_etag(planned, &answer, version_tag),
        identity: answer.body,
        link: answer.link.and_then(|l| HeaderValue::try_from(l).ok()),
        last_modified: state.validators.last_modified(&built_from),
        built_from,
    };
    let entry = Entry::new(
        planned.canonical.clone(),
        answered,
        state.cache.policy(planned.resource()),
    );
    if let Some(compressed) = answer.compressed {
        let variant = entry.coded(compressed.coding, compressed.level, compressed.bytes);
        entry.set_variant(compressed.coding, variant);
    }
    entry
}

/// An answer's ETag: its content's for a row by key (what writes check
/// `If-Match` against), else the one its versions give.
fn answer_etag(planned: &PlannedRead, answer: &Answer, version_tag: Etag) -> Etag {
    if planned.is_row() {
        Etag::of_content(&answer.body)
    } else {
        version_tag
    }
}

/// Refreshes a stale entry once, while the stale one is served.
fn refresh_in_background(state: &Arc<AppState>, entry: &Arc<Entry>, request: &ReadRequest<'_>) {
    if entry.refreshing.swap(true, Ordering::AcqRel) {
        return;
    }
    state.cache.stats.stale.fetch_add(1, Ordering::Relaxed);
    let state = state.clone();
    let entry = entry.clone();
    let (resource, id, relation) = (
        request.path.resource.to_string(),
        request.path.id.map(str::to_string),
        request.path.relation.map(str::to_string),
    );
    let query = request.query.to_string();
    // the refresh is made as the caller whose request found it stale (the
    // same partition), and waits its turn as that client
    let viewer = request.viewer.clone();
    tokio::spawn(async move {
        let path = ReadPath {
            resource: &resource,
            id: id.as_deref(),
            relation: relation.as_deref(),
        };
        let Ok(planned) = read::plan(&state, &viewer, path, &query).map(Arc::new) else {
            return;
        };
        let built_from = state.validators.snapshot(&planned.dependencies());
        let caller = Caller {
            client: viewer.client,
            since: Instant::now(),
        };
        match read::execute(&state, &planned, caller, None).await {
            Ok(answer) => {
                let fresh = Arc::new(make_entry(&state, &planned, answer, built_from));
                state.cache.put(&fresh);
            }
            Err(_) => entry.refreshing.store(false, Ordering::Release),
        }
    });
}

async fn serve_entry(
    state: &Arc<AppState>,
    entry: &Arc<Entry>,
    request: &ReadRequest<'_>,
    accept: Option<AcceptEncoding>,
    mut timing: Timing,
) -> Response<Body> {
    let variant = match chosen_coding(state, entry, accept) {
        Some(coding) => {
            let (variant, compress_time) = variant(state, entry, coding).await;
            // a miss's variant was made with its body, and timed there
            timing.compress = timing.compress.or(compress_time);
            Some(variant)
        }
        None => None,
    };
    entry_response(state, entry, request.headers, variant, timing)
}

/// The coding an entry goes out in for this client, if any: of the codings
/// the client weighs highest, the smallest one the entry holds already, else
/// the cheapest to make.
fn chosen_coding(
    state: &AppState,
    entry: &Entry,
    accept: Option<AcceptEncoding>,
) -> Option<Coding> {
    let accept = accept?;
    let compressible = entry.identity.len() >= state.compression.min_bytes;
    match accept.choose(compressible) {
        Negotiated::Encode(cheapest) => Some(
            entry
                .smallest_variant(accept.alike(cheapest))
                .unwrap_or(cheapest),
        ),
        _ => None,
    }
}

/// An entry as a 200 (or 304), in the coding of `variant` (identity if none).
fn entry_response(
    state: &Arc<AppState>,
    entry: &Arc<Entry>,
    request_headers: &HeaderMap,
    variant: Option<Variant>,
    timing: Timing,
) -> Response<Body> {
    let stats = &state.cache.stats;
    match timing.cache {
        CacheOutcome::Hit => stats.hits.fetch_add(1, Ordering::Relaxed),
        CacheOutcome::Miss | CacheOutcome::Shared => stats.misses.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    let hits = entry.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if state.compression.recompress_after_hits == Some(hits) {
        recompress_in_background(state, entry);
    }
    let described = Described {
        etag: &entry.etag,
        etag_sent: variant
            .as_ref()
            .map_or_else(|| entry.identity_etag.clone(), |v| v.etag.clone()),
        last_modified: entry.last_modified_time,
        last_modified_header: entry.last_modified.clone(),
        cache_control: &entry.cache_control,
        age: (timing.cache != CacheOutcome::Miss)
            .then(|| entry.lifetime.age_seconds(timing.started)),
    };
    let response = respond::answer(
        request_headers,
        described,
        || match variant {
            Some(variant) => {
                let saved = entry.identity.len().saturating_sub(variant.bytes.len());
                stats.bytes_saved[variant.coding.index()]
                    .fetch_add(saved as u64, Ordering::Relaxed);
                Content {
                    body: Body::from(variant.bytes),
                    coding: Some(variant.coding),
                    link: entry.link.clone(),
                }
            }
            None => Content {
                body: Body::from(entry.identity.clone()),
                coding: None,
                link: entry.link.clone(),
            },
        },
        timing,
    );
    if response.status() == StatusCode::NOT_MODIFIED {
        stats.not_modified.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// The entry's variant in `coding`, made on first demand (on a blocking
/// thread when the body is large), and the time making it took.
async fn variant(
    state: &AppState,
    entry: &Arc<Entry>,
    coding: Coding,
) -> (Variant, Option<Duration>) {
    if let Some(variant) = entry.variant(coding) {
        return (variant, None);
    }
    let started = Instant::now();
    let level = state.compression.levels.level(coding);
    let bytes = if entry.identity.len() > encoding::LARGE_BODY {
        let identity = entry.identity.clone();
        tokio::task::spawn_blocking(move || encoding::compress(coding, level, &identity))
            .await
            .expect("compression does not panic")
    } else {
        encoding::compress(coding, level, &entry.identity)
    };
    let variant = entry.coded(coding, level, bytes);
    // Another request may have made it meanwhile; either copy is right.
    entry.set_variant(coding, variant.clone());
    state.cache.reweigh(entry);
    (variant, Some(started.elapsed()))
}

/// Makes a hot entry's variants again at the highest levels, one entry at a
/// time, so that popular answers travel as small as they can. Within a CPU
/// budget: answers over `compression.recompress_max_bytes` are left as they
/// are, and after each recompression the worker rests long enough that it
/// uses at most `compression.recompress_cpu_percent` of one CPU.
fn recompress_in_background(state: &Arc<AppState>, entry: &Arc<Entry>) {
    let size = entry.identity.len();
    if size < state.compression.min_bytes
        || size > state.compression.recompress_max_bytes
        || entry.recompressing.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let state = state.clone();
    let entry = entry.clone();
    tokio::spawn(async move {
        let Ok(_permit) = state.recompression.acquire().await else {
            return;
        };
        let share = state.compression.recompress_cpu_share;
        for coding in entry.codings() {
            let level = match coding {
                Coding::Zstd => 19,
                Coding::Br => 11,
                Coding::Gzip | Coding::Deflate => 12,
            };
            let identity = entry.identity.clone();
            let started = Instant::now();
            let Ok(bytes) =
                tokio::task::spawn_blocking(move || encoding::compress(coding, level, &identity))
                    .await
            else {
                return;
            };
            let worked = started.elapsed();
            if entry
                .variant(coding)
                .is_some_and(|v| v.bytes.len() > bytes.len())
            {
                entry.set_variant(coding, entry.coded(coding, level, bytes));
            }
            state.cache.reweigh(&entry);
            tokio::time::sleep(worked.mul_f64((1.0 - share) / share)).await;
        }
    });
}

/// An answer the cache does not keep, in the coding it was compressed in
/// as it was made (identity if none).
fn serve_uncached(
    answer: Answer,
    mut described: Described<'_>,
    request: &ReadRequest<'_>,
    mut timing: Timing,
) -> Response<Body> {
    timing.db = Some(answer.db_time);
    timing.render = Some(answer.render_time);
    let link = answer.link.and_then(|l| HeaderValue::try_from(l).ok());
    let content = match answer.compressed {
        Some(compressed) => {
            timing.compress = Some(compressed.time);
            described.etag_sent = described
                .etag
                .coded_header(compressed.coding, compressed.level);
            Content {
                body: Body::from(compressed.bytes),
                coding: Some(compressed.coding),
                link,
            }
        }
        None => Content {
            body: Body::from(answer.body),
            coding: None,
            link,
        },
    };
    respond::answer(request.headers, described, || content, timing)
}

/// What a cache miss costs beyond the request's own share of the rate
/// limit (`rate_limit.miss_cost` less the 1 every request spends): the
/// answer's RateLimit fields then come from this later decision.
async fn spend_miss(state: &AppState, viewer: &Viewer) -> Result<Option<Spent>, ApiError> {
    match state.access.miss_cost.saturating_sub(1) {
        0 => Ok(None),
        extra => state.access.spend(viewer, extra, &state.metrics).await,
    }
}

/// `Cache-Control: no-cache` (or `no-store`) in a request.
fn asks_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(header::CACHE_CONTROL).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|d| {
                d.trim().eq_ignore_ascii_case("no-cache")
                    || d.trim().eq_ignore_ascii_case("no-store")
            })
        })
    })
}
