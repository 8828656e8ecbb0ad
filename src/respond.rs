//! The one writer of read responses: a 200 with an answer's bytes (cached or
//! fresh, in the coding chosen), or the 304 that stands for it when the
//! request's preconditions say the client holds it already (RFC 9110
//! §13.2.2), each with the headers that describe the answer: ETag,
//! Last-Modified, Cache-Control, Vary, Link, Age and Server-Timing.

use crate::conditional::{self, Etag};
use crate::encoding::Coding;
use crate::error::{ApiError, Problem};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use std::time::{Duration, Instant, SystemTime};

const VARY: HeaderValue = HeaderValue::from_static("accept-encoding");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// How the answer was found, for `Server-Timing` and the cache's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    /// From the second-level cache shared through Redis.
    Shared,
    Stale,
    Miss,
    /// Answered 304 from versions alone, without an entry or a query.
    Revalidated,
    /// The cache is off for this answer.
    Off,
}

/// Where a response's time went, stage by stage, as PostgREST reports it:
/// `cache;desc=miss, parse;dur=0.010, plan;dur=0.020, db;dur=0.300,
/// render;dur=0.050, compress;dur=0.400, total;dur=0.850` (milliseconds).
/// Stages that did not run are left out.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub started: Instant,
    pub cache: CacheOutcome,
    pub parse: Option<Duration>,
    pub plan: Option<Duration>,
    pub db: Option<Duration>,
    pub render: Option<Duration>,
    pub compress: Option<Duration>,
}

impl Timing {
    pub fn new(started: Instant, cache: CacheOutcome) -> Timing {
        Timing {
            started,
            cache,
            parse: None,
            plan: None,
            db: None,
            render: None,
            compress: None,
        }
    }

    fn header(&self) -> HeaderValue {
        use std::fmt::Write;
        let desc = match self.cache {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Shared => "shared",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Revalidated => "revalidated",
            CacheOutcome::Off => "off",
        };
        let mut text = String::with_capacity(96);
        let _ = write!(text, "cache;desc={desc}");
        let stages = [
            ("parse", self.parse),
            ("plan", self.plan),
            ("db", self.db),
            ("render", self.render),
            ("compress", self.compress),
            ("total", Some(self.started.elapsed())),
        ];
        for (name, duration) in stages {
            if let Some(duration) = duration {
                // milliseconds with three decimals, from whole microseconds
                let micros = duration.as_micros();
                let _ = write!(text, ", {name};dur={}.{:03}", micros / 1000, micros % 1000);
            }
        }
        HeaderValue::try_from(text).expect("ASCII")
    }
}

/// What describes an answer, on its 200 and on its 304s.
pub struct Described<'a> {
    /// The answer's tag, which `If-None-Match` is compared with.
    pub etag: &'a Etag,
    /// The `ETag` sent: the tag of the coding sent (or of identity).
    pub etag_sent: HeaderValue,
    pub last_modified: SystemTime,
    pub last_modified_header: HeaderValue,
    pub cache_control: &'a HeaderValue,
    /// Seconds the answer has been cached, for `Age`.
    pub age: Option<u64>,
}

/// An answer's bytes as they are sent.
pub struct Content {
    pub body: Body,
    pub coding: Option<Coding>,
    pub link: Option<HeaderValue>,
}

/// The 200 for `described`, or its 304 when the request's `If-None-Match`
/// (else `If-Modified-Since`) matches. `content` is made only for a 200.
pub fn answer(
    request: &HeaderMap,
    mut described: Described<'_>,
    content: impl FnOnce() -> Content,
    timing: Timing,
) -> Response<Body> {
    if let Some(revalidated) =
        conditional::not_modified(request, described.etag, Some(described.last_modified))
    {
        if let Some(tag) = revalidated.client_tag {
            described.etag_sent = tag;
        }
        return not_modified(described, &timing);
    }
    let content = content();
    let mut response = Response::new(content.body);
    let headers = response.headers_mut();
    headers.reserve(12);
    headers.insert(header::CONTENT_TYPE, JSON);
    if let Some(coding) = content.coding {
        headers.insert(header::CONTENT_ENCODING, coding.header_value());
    }
    if let Some(link) = content.link {
        headers.insert(header::LINK, link);
    }
    described.write(headers);
    headers.insert(SERVER_TIMING, timing.header());
    response
}

/// 304: no body, and the validators and caching headers a 200 would carry
/// (RFC 9110 §15.4.5).
pub fn not_modified(described: Described<'_>, timing: &Timing) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    described.write(headers);
    headers.insert(SERVER_TIMING, timing.header());
    response
}

/// 406: `Accept-Encoding` refuses identity and every coding brisk has.
pub fn not_acceptable() -> Response<Body> {
    let mut response = ApiError::new(
        Problem::NotAcceptable,
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

impl Described<'_> {
    fn write(self, headers: &mut HeaderMap) {
        headers.insert(header::ETAG, self.etag_sent);
        headers.insert(header::LAST_MODIFIED, self.last_modified_header);
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        headers.insert(header::VARY, VARY);
        if let Some(age) = self.age {
            headers.insert(header::AGE, HeaderValue::from(age));
        }
    }
}
