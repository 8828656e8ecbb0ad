//! Validators and conditional requests (RFC 9110 §8.8, §13).
//!
//! An answer's ETag is strong and derived from what it was built from (the
//! canonical request and the versions of its tables), so it is known before
//! the query runs. Each content coding gets its own strong tag: the base tag
//! plus a suffix naming the coding and level (`"3f2a…-br4"`); the suffix is
//! stripped before If-None-Match compares, so any coding of a current answer
//! is "not modified".

use crate::encoding::Coding;
use axum::http::{HeaderMap, HeaderValue, header};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// The opaque part of an answer's identity ETag (no quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag(pub String);

impl Etag {
    /// The tag of a body by its content: what a single row's answer is
    /// tagged with, so that a write can check `If-Match` against the row as
    /// stored, on any instance.
    pub fn of_content(body: &[u8]) -> Etag {
        Etag(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body)))
    }

    /// `"<base>"`
    pub fn identity_header(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("\"{}\"", self.0)).expect("ETags are hex")
    }

    /// `"<base>-<coding><level>"`: bytes made at another level are other bytes.
    pub fn coded_header(&self, coding: Coding, level: i32) -> HeaderValue {
        HeaderValue::from_str(&format!("\"{}-{}{}\"", self.0, coding.etag_suffix(), level))
            .expect("ETags are hex")
    }
}

/// The seed mixed into every ETag. A random one per process, so that a tag
/// never outlives the versions it was made from; with Redis, one shared by
/// the cluster, so every instance gives the same answer the same tag.
pub struct EtagSeed {
    local: [u8; 16],
    shared: RwLock<Option<Vec<u8>>>,
    use_shared: AtomicBool,
}

impl EtagSeed {
    pub fn new() -> EtagSeed {
        let mut local = [0u8; 16];
        getrandom::fill(&mut local).expect("the operating system provides random bytes");
        EtagSeed {
            local,
            shared: RwLock::new(None),
            use_shared: AtomicBool::new(false),
        }
    }

    pub fn local_hex(&self) -> String {
        self.local.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cluster's seed, agreed through Redis.
    pub fn set_shared(&self, seed: &str) {
        *self.shared.write().expect("seed lock") = Some(seed.as_bytes().to_vec());
    }

    /// Whether tags are made with the cluster's seed (while Redis is there).
    pub fn use_shared(&self, on: bool) {
        self.use_shared.store(on, Ordering::Release);
    }

    pub fn hash_into(&self, hasher: &mut xxhash_rust::xxh3::Xxh3) {
        if self.use_shared.load(Ordering::Acquire)
            && let Some(shared) = self.shared.read().expect("seed lock").as_deref()
        {
            hasher.update(shared);
            return;
        }
        hasher.update(&self.local);
    }
}

impl Default for EtagSeed {
    fn default() -> Self {
        EtagSeed::new()
    }
}

/// Whether a GET or HEAD may be answered 304, by RFC 9110 §13.2.2: If-None-Match
/// when present (weak comparison), else If-Modified-Since.
pub fn not_modified(
    headers: &HeaderMap,
    etag: &Etag,
    last_modified: Option<SystemTime>,
) -> Option<Revalidated> {
    let mut if_none_match = headers.get_all(header::IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        if if_none_match.any(|value| value.to_str().is_ok_and(|v| v.trim() == "*")) {
            return Some(Revalidated { client_tag: None });
        }
        return not_modified_by_tag(headers, etag);
    }
    let since = single_date(headers, header::IF_MODIFIED_SINCE)?;
    (truncate_to_seconds(last_modified?) <= since).then_some(Revalidated { client_tag: None })
}

/// A 304 is due; `client_tag` is the member of If-None-Match that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revalidated {
    /// Echoed in the 304's ETag: it names the variant the client holds,
    /// which is still current (a 304 must not point a cache at another one).
    pub client_tag: Option<HeaderValue>,
}

/// Whether `If-None-Match` lists this tag (not `*`): enough to answer 304
/// before knowing whether the answer exists, since brisk only ever gave out
/// the tag with a 200 of this request at these versions.
pub fn not_modified_by_tag(headers: &HeaderMap, etag: &Etag) -> Option<Revalidated> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .find_map(|value| {
            let text = value.to_str().ok()?;
            let matched = entity_tags(text).find(|opaque| strip_coding(opaque) == etag.0)?;
            let tag = HeaderValue::from_str(&format!("\"{matched}\"")).ok()?;
            Some(Revalidated {
                client_tag: Some(tag),
            })
        })
}

/// Strong comparison (§8.8.3.2) of an `If-Match` list with the current tag:
/// weak tags never match; any coding's variant of the current tag does.
pub fn strong_match(list: &str, etag: &Etag) -> bool {
    list.split(',').any(|member| {
        let member = member.trim();
        !member.starts_with("W/")
            && member
                .strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .is_some_and(|opaque| !opaque.contains('"') && strip_coding(opaque) == etag.0)
    })
}

/// Weak comparison (§8.8.3.2) of an `If-None-Match` list with the current
/// tag: `W/` is ignored; any coding's variant of the current tag matches.
pub fn weak_match(list: &str, etag: &Etag) -> bool {
    entity_tags(list).any(|opaque| strip_coding(opaque) == etag.0)
}

/// The opaque parts of a list of entity tags, weak or strong; malformed
/// members are skipped.
fn entity_tags(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter_map(|member| {
        let member = member.trim();
        let quoted = member.strip_prefix("W/").unwrap_or(member);
        let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
        (!opaque.contains('"')).then_some(opaque)
    })
}

/// `3f2a-br5` → `3f2a`: the base tag of any coding's variant.
fn strip_coding(opaque: &str) -> &str {
    match opaque.rsplit_once('-') {
        Some((base, suffix))
            if Coding::ALL.iter().any(|c| {
                suffix.strip_prefix(c.etag_suffix()).is_some_and(|level| {
                    !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit())
                })
            }) =>
        {
            base
        }
        _ => opaque,
    }
}

/// An HTTP-date field with exactly one valid member; otherwise ignored (§13.1.3).
fn single_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds)
}

/// An IMF-fixdate header value.
pub fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).expect("dates are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn if_none_match_uses_weak_comparison_across_codings() {
        let tag = Etag("abc".into());
        let check =
            |value: &str| not_modified(&headers(&[("if-none-match", value)]), &tag, None).is_some();
        assert!(check("\"abc\""));
        assert!(check("W/\"abc\""));
        assert!(check("\"abc-br5\""), "a coding's tag names the same answer");
        assert!(check("W/\"abc-zst3\""));
        assert!(check("\"x\", \"abc-gz6\""), "lists");
        assert!(check("*"));
        assert!(!check("\"abd\""));
        assert!(!check("\"abc-br\""), "a suffix without level is not ours");
        assert!(!check("\"abc-xx5\""));
        assert!(!check("abc"), "unquoted is malformed");
        assert!(!check("\"ab\"c\""));
        assert!(!check(""));
    }

    #[test]
    fn if_match_uses_strong_comparison() {
        let tag = Etag("abc".into());
        assert!(strong_match("\"abc\"", &tag));
        assert!(strong_match("\"x\", \"abc-gz6\"", &tag));
        assert!(
            !strong_match("W/\"abc\"", &tag),
            "weak tags never pass If-Match"
        );
        assert!(!strong_match("\"abd\"", &tag));
        assert!(!strong_match("abc", &tag));
    }

    #[test]
    fn if_modified_since_is_second_grained_and_loses_to_if_none_match() {
        let tag = Etag("abc".into());
        let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(784_111_777_500);
        let check =
            |pairs: &[(&str, &str)]| not_modified(&headers(pairs), &tag, Some(modified)).is_some();
        assert!(check(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT"
        )]));
        assert!(
            check(&[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")]),
            "rfc850"
        );
        assert!(
            check(&[("if-modified-since", "Sun Nov  6 08:49:37 1994")]),
            "asctime"
        );
        assert!(!check(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:36 GMT"
        )]));
        assert!(
            !check(&[("if-modified-since", "yesterday")]),
            "invalid dates are ignored"
        );
        assert!(!check(&[
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]));
        assert!(!check(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
        ]));
        let no_date = headers(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(not_modified(&no_date, &tag, None).is_none());
        let list = headers(&[("if-none-match", "W/\"x\", \"abc-br11\"")]);
        let echoed = not_modified(&list, &tag, None).unwrap();
        assert_eq!(
            echoed.client_tag.unwrap(),
            "\"abc-br11\"",
            "the client's own tag comes back"
        );
    }
}
