//! Malformed requests: each gets a 4xx application/problem+json that names
//! what was wrong, never a 5xx.

use crate::on_both;
use crate::support::*;

/// (method, path and query, status, a phrase the detail or errors must hold)
const MALFORMED: &[(&str, &str, u16, &str)] = &[
    ("GET", "/v1/nope", 404, "there is no resource 'nope'"),
    ("GET", "/v1/user", 404, "did you mean 'users'?"),
    (
        "GET",
        "/v1/users/987654321",
        404,
        "no row with id 987654321",
    ),
    (
        "GET",
        "/v1/users/abc",
        400,
        "'abc' is not a valid value for id (expected integer)",
    ),
    ("GET", "/v1/users/1.5", 400, "expected integer"),
    ("GET", "/v1/users/1/order", 404, "did you mean 'orders'?"),
    ("GET", "/v1/users/1/orders/2", 404, "no route matches"),
    (
        "GET",
        "/v1/users/987654321/orders",
        404,
        "no row with key 987654321",
    ),
    (
        "GET",
        "/v1/orders/987654321/user",
        404,
        "no row with key 987654321",
    ),
    ("GET", "/v2/users", 404, "resources are served under /v1/"),
    ("GET", "/v1/users/", 404, "did you mean /v1/users?"),
    ("GET", "/", 404, "no route matches /"),
    (
        "GET",
        "/v1/users?fields=nmae",
        400,
        "unknown field 'nmae' in users; did you mean 'name'?",
    ),
    ("GET", "/v1/users?fields=name,,email", 400, "empty name"),
    (
        "GET",
        "/v1/users?fields=orders.id",
        400,
        "add include=orders",
    ),
    (
        "GET",
        "/v1/users?fields=orders",
        400,
        "is a relation; add it to include",
    ),
    ("GET", "/v1/orders?include=usr", 400, "did you mean 'user'?"),
    (
        "GET",
        "/v1/orders?include=order_items.prodcut",
        400,
        "did you mean 'product'?",
    ),
    (
        "GET",
        "/v1/orders?include=user.nothing",
        400,
        "has no relation 'nothing'",
    ),
    (
        "GET",
        "/v1/products?sort=prce",
        400,
        "unknown field 'prce' in sort; did you mean 'price'?",
    ),
    (
        "GET",
        "/v1/products?sort=price_up",
        400,
        "unknown field 'price_up'",
    ),
    ("GET", "/v1/products?sort=-", 400, "unknown field ''"),
    ("GET", "/v1/orders?sort=user.name", 400, "related field"),
    (
        "GET",
        "/v1/products?sort=price&sort=name",
        400,
        "more than once",
    ),
    (
        "GET",
        "/v1/products?limit=0",
        400,
        "limit must be between 1 and 1000",
    ),
    (
        "GET",
        "/v1/products?limit=1001",
        400,
        "limit must be between 1 and 1000",
    ),
    (
        "GET",
        "/v1/products?limit=-5",
        400,
        "limit must be a whole number",
    ),
    (
        "GET",
        "/v1/products?limit=ten",
        400,
        "limit must be a whole number",
    ),
    (
        "GET",
        "/v1/products?limit=99999999999999999999999",
        400,
        "too large",
    ),
    ("GET", "/v1/products?page=0", 400, "page numbers start at 1"),
    (
        "GET",
        "/v1/products?page=x",
        400,
        "page must be a page number",
    ),
    (
        "GET",
        "/v1/products?page=999999999999999999",
        400,
        "limits.max_offset",
    ),
    ("GET", "/v1/products?cursor=", 400, "cursor is empty"),
    (
        "GET",
        "/v1/products?cursor=bm90IGEgY3Vyc29y",
        400,
        "the cursor was altered",
    ),
    (
        "GET",
        "/v1/products?cursor=%%%",
        400,
        "malformed percent-escape",
    ),
    (
        "GET",
        "/v1/products?page=2&cursor=abc",
        400,
        "cursor and page cannot be combined",
    ),
    (
        "GET",
        "/v1/products?count=yes",
        400,
        "count must be 'exact'",
    ),
    (
        "GET",
        "/v1/products?colour=red",
        400,
        "'colour' is neither a parameter nor a column",
    ),
    (
        "GET",
        "/v1/products?categry=books",
        400,
        "did you mean 'category'?",
    ),
    (
        "GET",
        "/v1/products?price[gte]=cheap",
        400,
        "'cheap' is not a valid value for price (expected number)",
    ),
    ("GET", "/v1/products?price[gte]=NaN", 400, "expected number"),
    ("GET", "/v1/products?stock=1e3", 400, "expected integer"),
    (
        "GET",
        "/v1/products?stock[in]=1,two",
        400,
        "'two' is not a valid value for stock",
    ),
    (
        "GET",
        "/v1/products?price[between]=1,2",
        400,
        "unknown operator 'between'",
    ),
    (
        "GET",
        "/v1/products?price[gtee]=1",
        400,
        "did you mean 'gte'?",
    ),
    (
        "GET",
        "/v1/products?price[like]=1*",
        400,
        "patterns apply to text columns only",
    ),
    (
        "GET",
        "/v1/products?name[null]=maybe",
        400,
        "[null] takes true or false",
    ),
    ("GET", "/v1/products?name[eq=x", 400, "is not a filter"),
    ("GET", "/v1/products?[eq]=x", 400, "is not a filter"),
    ("GET", "/v1/products?name[eq][eq]=x", 400, "is not a filter"),
    (
        "GET",
        "/v1/products?name=%ff%fe",
        400,
        "does not decode to UTF-8",
    ),
    ("GET", "/v1/users?email=a%00b", 400, "NUL"),
    (
        "GET",
        "/v1/orders?status[in]=%22open",
        400,
        "quoted item is not closed",
    ),
    (
        "GET",
        "/v1/users/1?sort=name",
        400,
        "sort applies to collections",
    ),
    (
        "GET",
        "/v1/users/1?limit=5",
        400,
        "limit applies to collections",
    ),
    (
        "GET",
        "/v1/users/1?name=Ada",
        400,
        "name applies to collections",
    ),
    (
        "GET",
        "/v1/orders/1/user?page=2",
        400,
        "page applies to collections",
    ),
    (
        "GET",
        "/healthz?verbose=1",
        400,
        "takes no query parameters",
    ),
    (
        "GET",
        "/v1/openapi.json?x=1",
        400,
        "takes no query parameters",
    ),
    ("POST", "/v1/users", 403, "writes = true"),
    ("DELETE", "/v1/users/1", 403, "read-only"),
    ("POST", "/v1/users/1/orders", 405, "allows GET, HEAD"),
    ("PATCH", "/v1/users", 405, "allows GET, HEAD\""), // read-only: no POST either
    ("PUT", "/v1/openapi.json", 405, "allows GET, HEAD"),
];

on_both! {
    async fn every_malformed_request_gets_a_clear_problem(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        assert!(MALFORMED.len() >= 40);
        for (method, path, status, phrase) in MALFORMED {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = fx.client.request(method.clone(), fx.url(path)).send().await.unwrap();
            let got = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
            let text = response.text().await.unwrap();
            assert_eq!(got, *status, "{method} {path}: {text}");
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{method} {path}");
            let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(problem["status"], *status, "{path}");
            assert!(problem["type"].as_str().unwrap().starts_with("https://brisk.dev/problems/") || problem["type"] == "about:blank");
            assert!(problem["title"].is_string());
            assert!(text.contains(phrase), "{method} {path}: expected {phrase:?} in {text}");
            if *status == 400 && !path.starts_with("/healthz") && !path.starts_with("/v1/openapi") && !path.contains("/users/a") && !path.contains("/users/1.") {
                let errors = problem["errors"].as_array().unwrap_or_else(|| panic!("{path}: no errors list: {text}"));
                assert!(errors.iter().all(|e| e["parameter"].is_string() && e["detail"].is_string()));
            }
            if *status == 405 {
                assert!(allow.as_deref().is_some_and(|a| a.starts_with("GET, HEAD")), "{path}: {allow:?}");
            }
        }
    }

    async fn typed_columns_check_their_values(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        // SQLite stores the demo's timestamps as TEXT, where any text is a
        // valid value; PostgreSQL's timestamptz checks them.
        if fx.backend == Backend::Postgres {
            for value in ["yesterday", "2024-02-30", "2024-01-01T25:00:00Z"] {
                let problem = fx.json(&format!("/v1/orders?created_at[gt]={value}"), 400).await;
                assert!(problem["detail"].as_str().unwrap().contains("expected timestamp"), "{problem}");
            }
        }
        fx.json("/v1/orders?created_at[gt]=2024-01-01T00:00:00Z&limit=1", 200).await;
    }

    async fn several_problems_are_reported_together(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let problem = fx.json("/v1/products?fields=nme&sort=prce&limit=0&colour=red", 400).await;
        let parameters: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["parameter"].as_str().unwrap()).collect();
        assert_eq!(parameters, ["fields", "colour", "sort", "limit"]);
        assert!(problem["detail"].as_str().unwrap().contains("and 3 more problems"));
    }

    async fn hostile_input_never_reaches_sql(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        for path in [
            "/v1/users?name=x'%20OR%20'1'='1",
            "/v1/users?name[like]=%25'%3B%20DROP%20TABLE%20users%3B--",
            "/v1/users?name[in]=a',b",
        ] {
            let body = fx.json(path, 200).await;
            assert_eq!(body["data"], serde_json::json!([]), "{path}");
        }
        for path in ["/v1/users%22%3B--", "/v1/users?fields=name%22--", "/v1/users?sort=name%22"] {
            let response = fx.get(path).await;
            assert!(response.status().is_client_error(), "{path}");
        }
        assert_eq!(fx.sql_column("SELECT count(*) AS n FROM users").await[0].as_i64(), Some(1000));
    }
}
