//! The response cache over real HTTP: hits, misses, single flight, TTLs,
//! stale-while-revalidate and the byte bound; conditional requests and
//! validators; content coding of cached and uncached answers.

use crate::on_both;
use crate::support::*;
use reqwest::Response;
use std::io::Read;
use std::time::Duration;

/// Q7 in the test shop: 500 products, about 300 KB of JSON.
const LARGE: &str = "/v1/products?limit=1000";
/// Well under the 1 KiB compression threshold.
const SMALL: &str = "/v1/users/7?fields=name";

fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out = body.to_vec(),
        Some("zstd") => out = zstd::decode_all(body).unwrap(),
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// GETs with headers and returns (status, headers, decoded body).
async fn fetch(
    fx: &Fixture,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = fx.get_with(path, headers).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.bytes().await.unwrap();
    (status, headers, decode(coding.as_deref(), &body))
}

/// The conditional-request matrix, on one path, for every Accept-Encoding.
async fn conditional_matrix(fx: &Fixture, path: &str) {
    for accept in [None, Some("gzip"), Some("br"), Some("zstd, br;q=0.5")] {
        let base: Vec<(&str, &str)> = accept
            .map(|a| vec![("accept-encoding", a)])
            .unwrap_or_default();
        let first = fx.get_with(path, &base).await;
        assert_eq!(first.status(), 200, "{path}");
        let etag = header(&first, "etag").expect("an ETag on every 200");
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong tag: {etag}"
        );
        let last_modified = header(&first, "last-modified").expect("Last-Modified");
        assert_eq!(header(&first, "vary").as_deref(), Some("accept-encoding"));
        assert_eq!(header(&first, "cache-control").as_deref(), Some("no-cache"));
        let opaque = etag.trim_matches('"').to_string();
        let base_tag = opaque.split('-').next().unwrap().to_string();
        let with = |extra: &[(&'static str, String)]| {
            let mut headers: Vec<(&str, String)> =
                base.iter().map(|(k, v)| (*k, v.to_string())).collect();
            headers.extend(extra.iter().cloned());
            headers
        };
        let cases: Vec<(Vec<(&str, String)>, u16)> = vec![
            (with(&[("if-none-match", etag.clone())]), 304),
            (with(&[("if-none-match", format!("W/{etag}"))]), 304),
            (with(&[("if-none-match", format!("\"nope\", {etag}"))]), 304),
            (with(&[("if-none-match", format!("\"{base_tag}\""))]), 304),
            (
                with(&[("if-none-match", format!("\"{base_tag}-br11\""))]),
                304,
            ),
            (with(&[("if-none-match", "*".into())]), 304),
            (with(&[("if-none-match", "\"nope\"".into())]), 200),
            (with(&[("if-none-match", "garbage".into())]), 200),
            (with(&[("if-modified-since", last_modified.clone())]), 304),
            (
                with(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT".into())]),
                200,
            ),
            (with(&[("if-modified-since", "not a date".into())]), 200),
            // If-None-Match wins over If-Modified-Since
            (
                with(&[
                    ("if-none-match", "\"nope\"".into()),
                    ("if-modified-since", last_modified.clone()),
                ]),
                200,
            ),
            (
                with(&[
                    ("if-none-match", etag.clone()),
                    ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT".into()),
                ]),
                304,
            ),
        ];
        for (headers, want) in cases {
            for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
                let mut request = fx.client.request(method.clone(), fx.url(path));
                for (name, value) in &headers {
                    request = request.header(*name, value);
                }
                let response = request.send().await.unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    want,
                    "{method} {path} {headers:?}"
                );
                if want == 304 {
                    let sent = headers
                        .iter()
                        .find(|(n, _)| *n == "if-none-match")
                        .map(|(_, v)| v.clone());
                    let echoed = header(&response, "etag").unwrap();
                    match sent.as_deref() {
                        // the tag of the variant the client holds, as it sent it
                        Some(list) if list != "*" => {
                            assert!(
                                list.contains(&echoed[1..echoed.len() - 1]),
                                "{echoed} from {list}"
                            )
                        }
                        _ => assert_eq!(echoed, etag, "304 carries the tag a 200 would"),
                    }
                    assert_eq!(
                        header(&response, "vary").as_deref(),
                        Some("accept-encoding")
                    );
                    assert!(header(&response, "cache-control").is_some());
                    assert!(header(&response, "content-type").is_none());
                    assert!(header(&response, "content-encoding").is_none());
                    assert!(response.bytes().await.unwrap().is_empty());
                }
            }
        }
        // HEAD carries the GET's headers and no body
        let head = fx
            .client
            .head(fx.url(path))
            .headers(to_map(&base))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&head, "etag"), Some(etag.clone()));
        assert_eq!(
            header(&head, "content-encoding"),
            header(&first, "content-encoding")
        );
        assert!(head.bytes().await.unwrap().is_empty());
    }
}

fn to_map(headers: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

on_both! {
    async fn conditional_requests_on_cached_answers(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        for path in [LARGE, SMALL, "/v1/orders/3/user", "/v1/users/3/orders?limit=2&count=exact"] {
            conditional_matrix(fx, path).await;
        }
        // a 404 is never turned into a 304
        let response = fx.get_with("/v1/users/987654", &[("if-none-match", "*")]).await;
        assert_eq!(response.status(), 404);
    }

    async fn every_coding_decodes_to_the_identity_body(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let (_, identity_headers, identity) = fetch(fx, LARGE, &[]).await;
        assert!(identity_headers.get("content-encoding").is_none());
        assert!(identity.len() > 100_000);
        let identity_tag = identity_headers["etag"].to_str().unwrap().to_string();
        let mut tags = vec![identity_tag];
        let mut sizes = std::collections::BTreeMap::new();
        for (accept, coding) in [("zstd", "zstd"), ("br", "br"), ("gzip", "gzip"), ("deflate", "deflate"), ("gzip, deflate, br, zstd", "smallest"), ("br;q=1, gzip;q=0.9", "br"), ("*", "smallest")] {
            // once every coding is made, a client that takes several alike
            // gets the smallest made
            let coding = if coding == "smallest" {
                sizes.iter().min_by_key(|(_, size)| **size).map(|(c, _): (&&str, _)| *c).unwrap()
            } else {
                coding
            };
            let response = fx.get_with(LARGE, &[("accept-encoding", accept)]).await;
            assert_eq!(header(&response, "content-encoding").as_deref(), Some(coding), "{accept}");
            let tag = header(&response, "etag").unwrap();
            let length: usize = header(&response, "content-length").expect("buffered bodies have a length").parse().unwrap();
            let body = response.bytes().await.unwrap();
            assert_eq!(body.len(), length);
            assert!(body.len() < identity.len() / 2, "{coding} compresses");
            sizes.insert(coding, body.len());
            assert_eq!(decode(Some(coding), &body), identity, "{coding} decodes to the identity body");
            tags.push(tag);
        }
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), 5, "one strong tag per coding: {tags:?}");
        // small bodies go as identity
        let (_, headers, _) = fetch(fx, SMALL, &[("accept-encoding", "br, gzip")]).await;
        assert!(headers.get("content-encoding").is_none());
        // unless identity is refused
        let (_, headers, body) = fetch(fx, SMALL, &[("accept-encoding", "identity;q=0, gzip")]).await;
        assert_eq!(headers["content-encoding"], "gzip");
        assert!(String::from_utf8(body).unwrap().starts_with("{\"data\""));
    }

    async fn negotiation_failures_and_malformed_headers(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        for accept in ["identity;q=0", "*;q=0", "compress, identity;q=0"] {
            let response = fx.get_with(LARGE, &[("accept-encoding", accept)]).await;
            assert_eq!(response.status(), 406, "{accept}");
            assert_eq!(header(&response, "content-type").as_deref(), Some("application/problem+json"));
            assert_eq!(header(&response, "vary").as_deref(), Some("accept-encoding"));
            assert!(header(&response, "accept-encoding").unwrap().contains("zstd"));
        }
        for accept in ["gzip;q=2", ";;,,", "br;q=abc, gzip", "identity;q=-1", "g\u{e9}zip"] {
            let response = fx.client.get(fx.url(LARGE)).header("accept-encoding", reqwest::header::HeaderValue::from_bytes(accept.as_bytes()).unwrap()).send().await.unwrap();
            assert_eq!(response.status(), 200, "{accept:?}");
        }
        let (_, headers, _) = fetch(fx, LARGE, &[("accept-encoding", "")]).await;
        assert!(headers.get("content-encoding").is_none(), "an empty header means identity");
    }

    async fn a_hit_runs_no_query_and_says_so(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let path = "/v1/orders?status=shipped&limit=7&fields=id,total";
        let miss = fx.get(path).await;
        assert_eq!(cache_status(&miss), "miss");
        assert!(header(&miss, "server-timing").unwrap().contains("db;dur="));
        assert!(header(&miss, "age").is_none());
        let before = fx.statements();
        for _ in 0..5 {
            let hit = fx.get_with(path, &[("accept-encoding", "gzip")]).await;
            assert_eq!(cache_status(&hit), "hit");
            assert!(header(&hit, "age").is_some());
        }
        assert_eq!(fx.statements(), before, "hits run no statement");
        let counters = fx.state.cache.counters();
        assert!(counters.hits >= 5 && counters.misses >= 1 && counters.bytes_held > 0, "{counters:?}");
    }

    async fn server_timing_names_each_stage(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let stages = |response: &Response| -> Vec<String> {
            header(response, "server-timing")
                .unwrap()
                .split(", ")
                .map(|metric| metric.split(';').next().unwrap().to_string())
                .collect()
        };
        let path = "/v1/products?limit=40&fields=id,name,description";
        let miss = fx.get_with(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(stages(&miss), ["cache", "parse", "plan", "db", "render", "compress", "total"]);
        let hit = fx.get_with(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(stages(&hit), ["cache", "total"], "a hit does none of the work");
        let other_coding = fx.get_with(path, &[("accept-encoding", "br")]).await;
        assert_eq!(stages(&other_coding), ["cache", "compress", "total"], "a new variant is compressed once");
        let uncached = Fixture::configured(backend, |c| c.cache.enabled = false).await;
        let off = uncached.get_with(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(cache_status(&off), "off");
        assert_eq!(stages(&off), ["cache", "parse", "plan", "db", "render", "compress", "total"]);
        for metric in header(&off, "server-timing").unwrap().split(", ").skip(1) {
            let (_, duration) = metric.split_once(";dur=").unwrap();
            assert!(duration.parse::<f64>().unwrap() >= 0.0, "{metric}");
        }
    }

    async fn equivalent_requests_share_one_entry(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let first = fx.get("/v1/products?page=2&limit=15&category=books&sort=price_asc").await;
        assert_eq!(cache_status(&first), "miss");
        let before = fx.statements();
        for same in [
            "/v1/products?sort=price&category[eq]=books&limit=15&page=2",
            "/v1/products?limit=15&page=2&sort=price_asc,id&category=books",
            "/v1/products?category=books&page=2&limit=15&sort=price",
        ] {
            let response = fx.get(same).await;
            assert_eq!(cache_status(&response), "hit", "{same}");
            assert_eq!(header(&response, "etag"), header(&first, "etag"));
        }
        assert_eq!(fx.statements(), before);
        let other = fx.get("/v1/products?page=2&limit=15&category=books&sort=-price").await;
        assert_eq!(cache_status(&other), "miss");
    }

    async fn concurrent_misses_run_one_query(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        // one read of this shape takes a statement per level: the page and
        // three embed levels
        let before = fx.statements();
        fx.get("/v1/order_items?include=product,order.user&limit=200&quantity[gte]=3").await;
        let one_read = fx.statements() - before;
        assert_eq!(one_read, 4);
        let path = "/v1/order_items?include=product,order.user&limit=200&quantity[gte]=2";
        let before = fx.statements();
        let requests = (0..24).map(|_| fx.get(path));
        let responses = futures_util::future::join_all(requests).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        assert_eq!(fx.statements() - before, one_read, "one read for 24 concurrent misses");
    }

    async fn errors_are_never_cached(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let before = fx.statements();
        for _ in 0..3 {
            let response = fx.get("/v1/users/987654?fields=name").await;
            assert_eq!(response.status(), 404);
            assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
        }
        assert_eq!(fx.statements() - before, 3);
    }

    async fn revalidation_needs_no_query(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let path = "/v1/users?country=DE&limit=3&fields=id";
        let first = fx.get(path).await;
        let etag = header(&first, "etag").unwrap();
        // another server over the same data and the same versions would not
        // know the tag; this one answers from versions even when the entry is
        // gone, as long as the tables have not changed
        let before = fx.statements();
        let response = fx.get_with("/v1/users?fields=id&limit=3&country[eq]=DE", &[("if-none-match", &etag)]).await;
        assert_eq!(response.status(), 304);
        assert_eq!(fx.statements(), before);
    }
}

on_both! {
    async fn uncached_answers_behave_the_same(backend: Backend) {
        let fx = Fixture::configured(backend, |c| c.cache.enabled = false).await;
        for path in [LARGE, SMALL] {
            conditional_matrix(&fx, path).await;
        }
        let (_, identity_headers, identity) = fetch(&fx, LARGE, &[]).await;
        assert_eq!(identity_headers["server-timing"].to_str().unwrap().split(',').next(), Some("cache;desc=off"));
        for coding in ["zstd", "br", "gzip", "deflate"] {
            let response = fx.get_with(LARGE, &[("accept-encoding", coding)]).await;
            assert_eq!(header(&response, "content-encoding").as_deref(), Some(coding));
            // compressed with the body, on the thread that rendered it: sent whole
            let length: usize = header(&response, "content-length").unwrap().parse().unwrap();
            let body = response.bytes().await.unwrap();
            assert_eq!(body.len(), length);
            assert_eq!(decode(Some(coding), &body), identity, "{coding}");
        }
        let before = fx.statements();
        fx.get(SMALL).await;
        fx.get(SMALL).await;
        assert_eq!(fx.statements() - before, 2, "no cache, a query each time");
    }

    async fn the_byte_bound_holds_under_distinct_keys(backend: Backend) {
        let max_bytes = 512 * 1024;
        let fx = Fixture::configured(backend, |c| c.cache.max_bytes = max_bytes).await;
        for n in 0..200 {
            let response = fx.get_with(&format!("/v1/products?limit=40&stock[gte]={n}"), &[("accept-encoding", "gzip")]).await;
            assert_eq!(response.status(), 200);
            let counters = fx.state.cache.counters();
            assert!(counters.bytes_held <= max_bytes, "{counters:?}");
        }
        let counters = fx.state.cache.counters();
        assert!(counters.evictions > 0, "{counters:?}");
        assert!(counters.bytes_held > max_bytes / 4, "{counters:?}");
    }

    async fn entries_expire_after_their_ttl(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            c.cache.ttl_seconds = 1;
            c.resources.entry("products".into()).or_default().cache_ttl_seconds = 30;
        })
        .await;
        assert_eq!(cache_status(&fx.get(SMALL).await), "miss");
        assert_eq!(cache_status(&fx.get(SMALL).await), "hit");
        assert_eq!(cache_status(&fx.get("/v1/products/1").await), "miss");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(cache_status(&fx.get(SMALL).await), "miss", "past the TTL");
        assert_eq!(cache_status(&fx.get("/v1/products/1").await), "hit", "a resource's own TTL");
    }

    async fn stale_while_revalidate_serves_once_stale_then_fresh(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            c.cache.ttl_seconds = 1;
            c.cache.stale_while_revalidate_seconds = 30;
        })
        .await;
        fx.get(SMALL).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before = fx.statements();
        assert_eq!(cache_status(&fx.get(SMALL).await), "stale");
        for _ in 0..50 {
            if fx.statements() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fx.statements() - before, 1, "one background refresh");
        assert_eq!(cache_status(&fx.get(SMALL).await), "hit");
    }

    async fn caching_and_cache_control_per_resource(backend: Backend) {
        let fx = Fixture::configured(backend, |c| {
            c.resources.entry("users".into()).or_default().cache = false;
            c.resources.entry("products".into()).or_default().cache_control = "public, max-age=60".into();
        })
        .await;
        assert_eq!(cache_status(&fx.get(SMALL).await), "off");
        assert_eq!(cache_status(&fx.get(SMALL).await), "off");
        let products = fx.get("/v1/products/2").await;
        assert_eq!(header(&products, "cache-control").as_deref(), Some("public, max-age=60"));
        assert_eq!(header(&fx.get("/v1/orders/2").await, "cache-control").as_deref(), Some("no-cache"));
    }

    async fn clients_bypass_the_cache_only_when_allowed(backend: Backend) {
        let strict = Fixture::configured(backend, |_| {}).await;
        strict.get(SMALL).await;
        assert_eq!(cache_status(&strict.get_with(SMALL, &[("cache-control", "no-cache")]).await), "hit");
        let lenient = Fixture::configured(backend, |c| c.cache.honor_client_no_cache = true).await;
        lenient.get(SMALL).await;
        assert_eq!(cache_status(&lenient.get_with(SMALL, &[("cache-control", "no-cache")]).await), "off");
        assert_eq!(cache_status(&lenient.get(SMALL).await), "hit");
    }

    async fn hot_entries_are_recompressed_at_the_highest_level(backend: Backend) {
        let fx = Fixture::configured(backend, |c| c.compression.recompress_after_hits = 2).await;
        // a smaller body than Q7, so that brotli 11 is quick in a debug build
        const HOT: &str = "/v1/products?limit=100";
        let (_, _, identity) = fetch(&fx, HOT, &[]).await;
        let first = fx.get_with(HOT, &[("accept-encoding", "br")]).await;
        let first_tag = header(&first, "etag").unwrap();
        assert!(first_tag.ends_with("-br2\""), "{first_tag}");
        let first_len = first.bytes().await.unwrap().len();
        let mut last = (first_tag.clone(), first_len);
        for _ in 0..300 {
            let response = fx.get_with(HOT, &[("accept-encoding", "br")]).await;
            let tag = header(&response, "etag").unwrap();
            let body = response.bytes().await.unwrap();
            assert_eq!(decode(Some("br"), &body), identity);
            last = (tag, body.len());
            if last.0.ends_with("-br11\"") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last.0.ends_with("-br11\""), "recompressed: {}", last.0);
        let best = brisk::encoding::compress(brisk::encoding::Coding::Br, 11, &identity).len();
        assert!(last.1 < first_len);
        assert!(last.1 as f64 <= best as f64 * 1.10, "{} vs brotli 11's {best}", last.1);
        // a client that takes gzip as well as br gets the small br it holds,
        // rather than a new gzip; a new answer goes in the cheapest of the two
        let either = fx.get_with(HOT, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(header(&either, "content-encoding").as_deref(), Some("br"));
        let fresh = fx.get_with("/v1/products?limit=99", &[("accept-encoding", "br, gzip, deflate")]).await;
        assert_eq!(header(&fresh, "content-encoding").as_deref(), Some("gzip"));
        assert!(header(&fresh, "etag").unwrap().ends_with("-gz1\""));
        // the client's old tag still revalidates
        let response = fx.get_with(HOT, &[("accept-encoding", "br"), ("if-none-match", &first_tag)]).await;
        assert_eq!(response.status(), 304);
        assert!(fx.state.cache.counters().bytes_saved > 0);
    }
}

on_both! {
    async fn clients_that_hang_up_cost_no_connections(backend: Backend) {
        let fx = Fixture::configured(backend, |c| c.cache.enabled = false).await;
        let slow = "/v1/order_items?include=order.user,product&limit=1000";
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(2)).build().unwrap();
        for _ in 0..40 {
            // most of these give up while the query runs
            let _ = impatient.get(fx.url(slow)).send().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..12 {
            assert_eq!(fx.get("/v1/users/1?fields=id").await.status(), 200, "the pool is whole");
        }
        assert_eq!(fx.get(slow).await.status(), 200);
    }
}
