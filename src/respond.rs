//! GET and HEAD on reads: cache lookup, conditional requests, content
//! coding, and the response headers.
//!
//! A hit costs a map lookup by the raw path and query, a version check and
//! headers: no parsing, no database, no JSON, no compression. A miss plans
//! the read, answers a matching `If-None-Match` from table versions alone,
//! and otherwise runs one query per canonical key however many clients ask
//! at once.

use crate::app::AppState;
use crate::cache::{Entry, Freshness, SharedFields, Variant};
use crate::conditional::{self, Etag};
use crate::encoding::{self, AcceptEncoding, Coding, Negotiated};
use crate::error::{ApiError, Problem};
use crate::read::{self, Answer, PlannedRead, ReadPath};
use crate::versions::Snapshot;
use axum::body::Body;
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header,
};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The parts of a read request the response depends on.
pub struct ReadRequest<'a> {
    pub path: ReadPath<'a>,
    /// The raw path and query, as the client sent them: the alias key.
    pub path_and_query: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
}

/// How the answer was found, for `Server-Timing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Hit,
    /// From the second-level cache shared through Redis.
    Shared,
    Stale,
    Miss(Duration),
    /// Answered 304 from table versions, without an entry or a query.
    Versions,
    /// The cache is off for this answer.
    Uncached(Duration),
}

const VARY: HeaderValue = HeaderValue::from_static("accept-encoding");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

pub async fn get(state: &Arc<AppState>, request: ReadRequest<'_>) -> Response<Body> {
    let started = Instant::now();
    let accept = AcceptEncoding::parse(request.headers.get(header::ACCEPT_ENCODING));
    if accept.is_some_and(|a| a.choose(true) == Negotiated::NotAcceptable) {
        return not_acceptable();
    }
    let bypass = state.honor_client_no_cache && asks_no_cache(request.headers);
    if state.cache_enabled
        && !bypass
        && let Some(entry) = state.cache.by_alias(request.path_and_query)
        && let Some(response) = serve_current(state, &entry, &request, accept, started).await
    {
        return response;
    }
    let planned = match read::plan(state, request.path, request.query) {
        Ok(planned) => planned,
        Err(error) => return error.into_response(),
    };
    let policy = state.policy(planned.resource());
    let versions = state.versions.snapshot(&planned.dependencies());
    let etag = state.etag(&planned.canonical, &versions);
    let last_modified = state.versions.last_changed(&versions);
    if let Some(revalidated) = conditional::not_modified_by_tag(request.headers, &etag) {
        state
            .cache
            .stats
            .not_modified
            .fetch_add(1, Ordering::Relaxed);
        let headers = Validators {
            etag: &etag,
            identity: None,
            coded: revalidated.client_tag,
            last_modified: Some(conditional::http_date(last_modified)),
            cache_control: &policy.cache_control,
        };
        return not_modified(headers, Source::Versions, started);
    }
    if !policy.cache || bypass {
        return match read::execute(state, &planned).await {
            Ok(answer) => {
                serve_uncached(
                    state,
                    answer,
                    etag,
                    last_modified,
                    &policy.cache_control,
                    &request,
                    accept,
                    started,
                )
                .await
            }
            Err(error) => error.into_response(),
        };
    }
    let key = format!("={}", planned.canonical);
    loop {
        match state.cache.get_or_guard(&key).await {
            Ok(entry) => match serve_current(state, &entry, &request, accept, started).await {
                Some(response) => return response,
                None => state.cache.remove(&entry),
            },
            Err(guard) => {
                let versions = state.versions.snapshot(&planned.dependencies());
                if let Some(entry) = shared_entry(state, &key, &planned, &versions).await {
                    let entry = Arc::new(entry);
                    state.cache.insert(guard, &entry);
                    state.cache.alias(request.path_and_query, &entry);
                    return serve_entry(state, &entry, &request, accept, Source::Shared, started)
                        .await;
                }
                let answer = match read::execute(state, &planned).await {
                    Ok(answer) => answer,
                    Err(error) => return error.into_response(),
                };
                let db_time = answer.db_time;
                let entry = Arc::new(make_entry(state, key, &planned, answer, versions));
                state.cache.insert(guard, &entry);
                state.cache.alias(request.path_and_query, &entry);
                share_entry(state, &planned, &entry);
                return serve_entry(
                    state,
                    &entry,
                    &request,
                    accept,
                    Source::Miss(db_time),
                    started,
                )
                .await;
            }
        }
    }
}

/// The answer from the second-level cache (Redis), if it holds this
/// request's answer at the current versions.
async fn shared_entry(
    state: &AppState,
    key: &str,
    planned: &PlannedRead,
    versions: &Snapshot,
) -> Option<Entry> {
    let cluster = state.cluster.as_ref()?;
    let bytes = cluster.get_entry(&planned.canonical).await?;
    let policy = state.policy(planned.resource());
    let etag = state.etag(&planned.canonical, versions);
    Entry::from_shared(
        &bytes,
        &etag,
        SharedFields {
            key: key.to_string(),
            cache_control: policy.cache_control.clone(),
            versions: versions.clone(),
            ttl: policy.ttl,
            stale: policy.stale,
        },
    )
}

/// Stores a new entry in the second-level cache, in the background.
fn share_entry(state: &Arc<AppState>, planned: &PlannedRead, entry: &Arc<Entry>) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    if !cluster.is_connected() {
        return;
    }
    let (entry, canonical, ttl) = (
        entry.clone(),
        planned.canonical.clone(),
        state.policy(planned.resource()).ttl,
    );
    let level = state.levels.zstd;
    tokio::spawn(async move {
        let bytes = tokio::task::spawn_blocking(move || entry.to_shared(level)).await;
        if let Ok(bytes) = bytes {
            cluster.put_entry(&canonical, bytes, ttl).await;
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
    let source = match state.freshness(entry, Instant::now()) {
        Freshness::Fresh => Source::Hit,
        Freshness::Stale => {
            refresh_in_background(state, entry, request);
            Source::Stale
        }
        Freshness::Expired => return None,
    };
    state.cache.alias(request.path_and_query, entry);
    Some(serve_entry(state, entry, request, accept, source, started).await)
}

fn make_entry(
    state: &AppState,
    key: String,
    planned: &PlannedRead,
    answer: Answer,
    versions: Snapshot,
) -> Entry {
    let policy = state.policy(planned.resource());
    let etag = state.etag(&planned.canonical, &versions);
    let last_modified = state.versions.last_changed(&versions);
    Entry::new(
        key,
        answer.body,
        etag,
        last_modified,
        answer.link.and_then(|l| HeaderValue::try_from(l).ok()),
        policy.cache_control.clone(),
        versions,
        policy.ttl,
        policy.stale,
    )
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
    tokio::spawn(async move {
        let path = ReadPath {
            resource: &resource,
            id: id.as_deref(),
            relation: relation.as_deref(),
        };
        let Ok(planned) = read::plan(&state, path, &query) else {
            return;
        };
        let versions = state.versions.snapshot(&planned.dependencies());
        match read::execute(&state, &planned).await {
            Ok(answer) => {
                let fresh = Arc::new(make_entry(
                    &state,
                    entry.key.clone(),
                    &planned,
                    answer,
                    versions,
                ));
                state.cache.put(&fresh);
            }
            Err(_) => entry.refreshing.store(false, Ordering::Release),
        }
    });
}

/// The headers that describe an answer's validity.
struct Validators<'a> {
    etag: &'a Etag,
    /// The identity tag already made, if there is one.
    identity: Option<&'a HeaderValue>,
    /// The tag of the coded variant sent, if any.
    coded: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    cache_control: &'a HeaderValue,
}

async fn serve_entry(
    state: &Arc<AppState>,
    entry: &Arc<Entry>,
    request: &ReadRequest<'_>,
    accept: Option<AcceptEncoding>,
    source: Source,
    started: Instant,
) -> Response<Body> {
    let coding = chosen_coding(state, entry, accept);
    let variant = match coding {
        Some(coding) => Some(variant(state, entry, coding).await),
        None => None,
    };
    entry_response(state, entry, request.headers, variant, source, started)
}

/// The coding an entry goes out in for this client, if any.
fn chosen_coding(
    state: &AppState,
    entry: &Entry,
    accept: Option<AcceptEncoding>,
) -> Option<Coding> {
    let compressible = entry.identity.len() >= state.min_compress_bytes;
    match accept.map_or(Negotiated::Identity, |a| a.choose(compressible)) {
        Negotiated::Encode(coding) => Some(coding),
        _ => None,
    }
}

/// The fast path of a cache hit, before any routing: the raw path and query
/// lead to a fresh entry that already has the client's coding. `None` sends
/// the request the long way (routing, planning, compressing).
pub fn hit(state: &Arc<AppState>, request: &Request<Body>) -> Option<Response<Body>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) || !state.cache_enabled {
        return None;
    }
    let headers = request.headers();
    if state.honor_client_no_cache && asks_no_cache(headers) {
        return None;
    }
    let path_and_query = request.uri().path_and_query()?.as_str();
    let entry = state.cache.by_alias(path_and_query)?;
    let started = Instant::now();
    if state.freshness(&entry, started) != Freshness::Fresh {
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
        Source::Hit,
        started,
    ))
}

/// An entry as a 200 (or 304), in the coding of `variant` (identity if none).
fn entry_response(
    state: &Arc<AppState>,
    entry: &Arc<Entry>,
    request_headers: &HeaderMap,
    variant: Option<Variant>,
    source: Source,
    started: Instant,
) -> Response<Body> {
    match source {
        Source::Hit => state.cache.stats.hits.fetch_add(1, Ordering::Relaxed),
        Source::Miss(_) | Source::Shared => {
            state.cache.stats.misses.fetch_add(1, Ordering::Relaxed)
        }
        _ => 0,
    };
    let hits = entry.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if state.recompress_after_hits > 0 && hits == state.recompress_after_hits {
        recompress_in_background(state, entry);
    }
    let mut validators = Validators {
        etag: &entry.etag,
        identity: Some(&entry.identity_etag),
        coded: variant.as_ref().map(|v| v.etag.clone()),
        last_modified: Some(entry.last_modified.clone()),
        cache_control: &entry.cache_control,
    };
    let age = (!matches!(source, Source::Miss(_))).then(|| entry.age_seconds(started));
    let revalidated =
        conditional::not_modified(request_headers, &entry.etag, Some(entry.last_modified_time));
    if let Some(revalidated) = revalidated {
        if revalidated.client_tag.is_some() {
            validators.coded = revalidated.client_tag;
        }
        state
            .cache
            .stats
            .not_modified
            .fetch_add(1, Ordering::Relaxed);
        let mut response = not_modified(validators, source, started);
        if let Some(age) = age {
            response
                .headers_mut()
                .insert(header::AGE, HeaderValue::from(age));
        }
        return response;
    }
    let (body, coding_sent) = match variant {
        Some(variant) => {
            let saved = entry.identity.len().saturating_sub(variant.bytes.len());
            state
                .cache
                .stats
                .bytes_saved
                .fetch_add(saved as u64, Ordering::Relaxed);
            (variant.bytes, Some(variant.coding))
        }
        None => (entry.identity.clone(), None),
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.reserve(12);
    headers.insert(header::CONTENT_TYPE, JSON);
    validators.write(headers);
    if let Some(coding) = coding_sent {
        headers.insert(header::CONTENT_ENCODING, coding.header_value());
    }
    if let Some(link) = &entry.link {
        headers.insert(header::LINK, link.clone());
    }
    if let Some(age) = age {
        headers.insert(header::AGE, HeaderValue::from(age));
    }
    headers.insert(SERVER_TIMING, server_timing(source, started));
    response
}

/// The entry's variant in `coding`, made on first demand (on a blocking
/// thread when the body is large).
async fn variant(state: &AppState, entry: &Arc<Entry>, coding: Coding) -> Variant {
    if let Some(variant) = entry.variant(coding) {
        return variant;
    }
    let level = state.levels.level(coding);
    let bytes = if entry.identity.len() > encoding::LARGE_BODY {
        let identity = entry.identity.clone();
        tokio::task::spawn_blocking(move || encoding::compress(coding, level, &identity))
            .await
            .expect("compression does not panic")
    } else {
        encoding::compress(coding, level, &entry.identity)
    };
    let variant = Variant {
        coding,
        etag: entry.etag.coded_header(coding, level),
        bytes,
        level,
    };
    // Another request may have made it meanwhile; either copy is right.
    entry.set_variant(coding, variant.clone());
    state.cache.reweigh(entry);
    variant
}

/// Makes a hot entry's variants again at the highest levels, one entry at a
/// time, so that popular answers travel as small as they can.
fn recompress_in_background(state: &Arc<AppState>, entry: &Arc<Entry>) {
    if entry.identity.len() < state.min_compress_bytes
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
        for coding in entry.codings() {
            let level = match coding {
                Coding::Zstd => 19,
                Coding::Br => 11,
                Coding::Gzip | Coding::Deflate => 9,
            };
            let identity = entry.identity.clone();
            let Ok(bytes) =
                tokio::task::spawn_blocking(move || encoding::compress(coding, level, &identity))
                    .await
            else {
                return;
            };
            if entry
                .variant(coding)
                .is_some_and(|v| v.bytes.len() > bytes.len())
            {
                entry.set_variant(
                    coding,
                    Variant {
                        coding,
                        etag: entry.etag.coded_header(coding, level),
                        bytes,
                        level,
                    },
                );
            }
        }
        state.cache.reweigh(&entry);
    });
}

#[allow(clippy::too_many_arguments)]
async fn serve_uncached(
    state: &AppState,
    answer: Answer,
    etag: Etag,
    last_modified: std::time::SystemTime,
    cache_control: &HeaderValue,
    request: &ReadRequest<'_>,
    accept: Option<AcceptEncoding>,
    started: Instant,
) -> Response<Body> {
    let source = Source::Uncached(answer.db_time);
    let last_modified_value = conditional::http_date(last_modified);
    let compressible = answer.body.len() >= state.min_compress_bytes;
    let coding = match accept.map_or(Negotiated::Identity, |a| a.choose(compressible)) {
        Negotiated::Encode(coding) => Some(coding),
        _ => None,
    };
    let level = coding.map_or(0, |c| state.levels.level(c));
    let mut validators = Validators {
        etag: &etag,
        identity: None,
        coded: coding.map(|c| etag.coded_header(c, level)),
        last_modified: Some(last_modified_value),
        cache_control,
    };
    if let Some(revalidated) =
        conditional::not_modified(request.headers, &etag, Some(last_modified))
    {
        if revalidated.client_tag.is_some() {
            validators.coded = revalidated.client_tag;
        }
        return not_modified(validators, source, started);
    }
    let body = match coding {
        Some(coding) if answer.body.len() > encoding::LARGE_BODY => {
            encoding::compress_stream(coding, level, answer.body)
        }
        Some(coding) => Body::from(encoding::compress(coding, level, &answer.body)),
        None => Body::from(answer.body),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, JSON);
    validators.write(headers);
    if let Some(coding) = coding {
        headers.insert(header::CONTENT_ENCODING, coding.header_value());
    }
    if let Some(link) = answer.link.and_then(|l| HeaderValue::try_from(l).ok()) {
        headers.insert(header::LINK, link);
    }
    headers.insert(SERVER_TIMING, server_timing(source, started));
    response
}

impl Validators<'_> {
    fn write(self, headers: &mut HeaderMap) {
        headers.insert(
            header::ETAG,
            self.coded
                .or_else(|| self.identity.cloned())
                .unwrap_or_else(|| self.etag.identity_header()),
        );
        if let Some(last_modified) = self.last_modified {
            headers.insert(header::LAST_MODIFIED, last_modified);
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        headers.insert(header::VARY, VARY);
    }
}

/// 304: no body, and the validators and caching headers a 200 would carry
/// (RFC 9110 §15.4.5).
fn not_modified(validators: Validators<'_>, source: Source, started: Instant) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    validators.write(headers);
    headers.insert(SERVER_TIMING, server_timing(source, started));
    response
}

fn not_acceptable() -> Response<Body> {
    let mut response = ApiError::new(
        Problem::Status(StatusCode::NOT_ACCEPTABLE),
        "Accept-Encoding refuses identity and every coding brisk has; brisk sends zstd, br, gzip, deflate or identity",
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("zstd, br, gzip, deflate"),
    );
    headers.insert(header::VARY, VARY);
    response
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

/// `cache;desc=hit, db;dur=1.234, total;dur=1.456` (milliseconds).
fn server_timing(source: Source, started: Instant) -> HeaderValue {
    use std::fmt::Write;
    let (desc, db) = match source {
        Source::Hit => ("hit", None),
        Source::Shared => ("shared", None),
        Source::Stale => ("stale", None),
        Source::Versions => ("revalidated", None),
        Source::Miss(db) => ("miss", Some(db)),
        Source::Uncached(db) => ("off", Some(db)),
    };
    // milliseconds with three decimals, from whole microseconds
    let ms = |d: Duration| {
        let micros = d.as_micros();
        (micros / 1000, micros % 1000)
    };
    let mut text = String::with_capacity(64);
    let _ = write!(text, "cache;desc={desc}");
    if let Some(db) = db {
        let (whole, fraction) = ms(db);
        let _ = write!(text, ", db;dur={whole}.{fraction:03}");
    }
    let (whole, fraction) = ms(started.elapsed());
    let _ = write!(text, ", total;dur={whole}.{fraction:03}");
    HeaderValue::try_from(text).expect("ASCII")
}
