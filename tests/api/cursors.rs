//! Keyset cursors: walks that return every row once and in order, forwards
//! and backwards, and cursors that are refused.

use crate::on_both;
use crate::support::*;
use serde_json::Value;

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// Follows `links.next` from `start`; returns every id seen and the last body.
async fn walk_forward(fx: &Fixture, start: &str) -> (Vec<i64>, Vec<Value>) {
    let mut seen = Vec::new();
    let mut bodies = Vec::new();
    let mut next = Some(start.to_string());
    while let Some(path) = next {
        let body = fx.json(&path, 200).await;
        seen.extend(ids(body["data"].as_array().unwrap()));
        let link = body["links"]["next"].as_str();
        let cursor = body["meta"]["next_cursor"].as_str();
        assert_eq!(
            link.is_some(),
            cursor.is_some(),
            "a next link comes with a next cursor"
        );
        if path.contains("cursor=") {
            // on a cursor page, links.next is the cursor's URL
            assert!(link.is_none_or(|l| l.contains(cursor.unwrap())), "{link:?}");
        }
        next = cursor.map(|c| format!("{start}&cursor={c}"));
        bodies.push(body);
        assert!(bodies.len() < 10_000, "walk does not end");
    }
    (seen, bodies)
}

on_both! {
    async fn cursor_walks_return_every_row_once_in_order(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let cases = [
            ("/v1/products?sort=-price&fields=id,price&limit=37", "SELECT id FROM products ORDER BY price DESC, id DESC"),
            ("/v1/products?sort=category,price&fields=id&limit=50", "SELECT id FROM products ORDER BY category, price, id"),
            ("/v1/products?sort=stock,-price&category=toys&fields=id&limit=9", "SELECT id FROM products WHERE category = 'toys' ORDER BY stock, price DESC, id DESC"),
            ("/v1/users?sort=profile_picture&fields=id&limit=101", "SELECT id FROM users ORDER BY profile_picture IS NULL, profile_picture, id"),
            ("/v1/users?sort=-profile_picture,country&fields=id&limit=64", "SELECT id FROM users ORDER BY profile_picture IS NOT NULL, profile_picture DESC, country, id"),
            ("/v1/users/5/orders?fields=id&limit=2", "SELECT id FROM orders WHERE user_id = 5 ORDER BY id"),
        ];
        for (start, reference) in cases {
            let (seen, _) = walk_forward(fx, start).await;
            let want: Vec<i64> = fx.sql_column(reference).await.iter().map(|v| v.as_i64().unwrap()).collect();
            assert_eq!(seen.len(), want.len(), "{start}");
            assert_eq!(seen, want, "{start}");
        }
    }

    async fn prev_cursors_walk_back_to_the_start(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let (forward, bodies) = walk_forward(fx, "/v1/products?sort=-price&fields=id&limit=40").await;
        let mut back = Vec::new();
        let mut body = bodies.last().unwrap().clone();
        back.splice(0..0, ids(body["data"].as_array().unwrap()));
        while let Some(prev) = body["links"]["prev"].as_str() {
            body = fx.json(prev, 200).await;
            let page = ids(body["data"].as_array().unwrap());
            assert_eq!(page.len(), 40, "every earlier page is full");
            back.splice(0..0, page);
        }
        assert_eq!(back, forward);
        assert!(body["meta"].get("prev_cursor").is_none(), "the first page has no prev");
    }

    async fn cursor_pages_are_the_offset_pages(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let first = fx.json("/v1/orders?sort=-total&limit=25", 200).await;
        let cursor = first["meta"]["next_cursor"].as_str().unwrap();
        let second = fx.json(&format!("/v1/orders?sort=-total&limit=25&cursor={cursor}"), 200).await;
        let by_page = fx.json("/v1/orders?sort=-total&limit=25&page=2", 200).await;
        assert_eq!(second["data"], by_page["data"]);
        assert!(second["meta"].get("page").is_none());
    }

    async fn foreign_and_forged_cursors_are_refused(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let body = fx.json("/v1/products?sort=price&category=books&limit=5", 200).await;
        let cursor = body["meta"]["next_cursor"].as_str().unwrap().to_string();
        fx.json(&format!("/v1/products?sort=price&category=books&limit=7&cursor={cursor}"), 200).await;
        for other in ["sort=-price&category=books", "sort=price&category=toys", "sort=price", "sort=price&category=books&stock[gt]=1"] {
            let problem = fx.json(&format!("/v1/products?{other}&cursor={cursor}"), 400).await;
            assert_eq!(problem["type"], "https://brisk.dev/problems/invalid-cursor", "{other}");
        }
        fx.json(&format!("/v1/orders?cursor={cursor}"), 400).await;
        let mut forged = cursor.clone().into_bytes();
        let middle = forged.len() / 2;
        forged[middle] = if forged[middle] == b'x' { b'y' } else { b'x' };
        let forged = String::from_utf8(forged).unwrap();
        fx.json(&format!("/v1/products?sort=price&category=books&cursor={forged}"), 400).await;
    }
}
