//! The OpenAPI document describes the live schema.

use crate::on_both;
use crate::support::*;

on_both! {
    async fn the_document_covers_every_route_and_resource(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let document = fx.json("/v1/openapi.json", 200).await;
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/v1/users", "/v1/users/{id}", "/v1/users/{id}/orders",
            "/v1/orders/{id}/user", "/v1/orders/{id}/order_items", "/v1/order_items/{id}/product",
            "/v1/products/{id}/order_items", "/v1/openapi.json", "/healthz", "/readyz",
        ] {
            assert!(paths.contains_key(path), "{path} missing");
        }
        let list = &paths["/v1/products"]["get"];
        let names: Vec<&str> = list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        for name in ["fields", "include", "sort", "limit", "page", "cursor", "count", "category", "price[gte]", "name[like]", "price[null]"] {
            assert!(names.contains(&name), "parameter {name} missing");
        }
        assert!(!names.contains(&"price[like]"), "like applies to text only");
        for status in ["200", "400", "404", "503"] {
            assert!(list["responses"].get(status).is_some(), "response {status} missing");
        }
        let users = &document["components"]["schemas"]["users"]["properties"];
        assert_eq!(users["id"]["type"], "integer");
        assert_eq!(users["profile_picture"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(users["orders"]["type"], "array");
        let problem_types = document["x-problem-types"].as_array().unwrap();
        assert!(problem_types.iter().any(|p| p["type"] == "https://brisk.dev/problems/invalid-cursor"));
        // brisk refuses a NUL in any query value, and every pattern says so
        // (a fuzzer once found `\S` letting one through `[fts]`)
        let mut patterns = 0;
        for operation in paths.values().flat_map(|p| p.as_object().unwrap().values()) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let schema = &parameter["schema"];
                for pattern in [&schema["pattern"], &schema["items"]["pattern"]] {
                    let Some(pattern) = pattern.as_str() else { continue };
                    let regex = regex::Regex::new(pattern).unwrap();
                    assert!(!regex.is_match("word\u{0}word"), "{} lets a NUL through: {pattern}", parameter["name"]);
                    patterns += 1;
                }
            }
        }
        assert!(patterns > 50, "only {patterns} patterns");
    }
}

crate::on_both! {
    async fn write_routes_are_described_when_writes_are_on(backend: Backend) {
        let read_only = Fixture::configured(backend, |_| {}).await;
        let document = read_only.json("/v1/openapi.json", 200).await;
        assert!(document["paths"]["/v1/users"].get("post").is_none(), "a read-only server offers no writes");
        let fx = Fixture::configured(backend, |c| c.writes = true).await;
        let document = fx.json("/v1/openapi.json", 200).await;
        let users = &document["paths"]["/v1/users"];
        assert!(users["post"]["requestBody"].is_object());
        assert!(users["post"]["responses"]["201"].is_object());
        assert!(users["post"]["responses"]["409"].is_object());
        let user = &document["paths"]["/v1/users/{id}"];
        for method in ["patch", "put", "delete"] {
            assert!(user[method]["responses"]["412"].is_object(), "{method}");
        }
        assert!(user["delete"]["responses"]["204"].is_object());
        let input = &document["components"]["schemas"]["users_input"];
        let required: Vec<&str> = input["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(required.contains(&"email") && !required.contains(&"id") && !required.contains(&"profile_picture"), "{required:?}");
        assert!(document["paths"]["/v1/users/{id}/orders"].get("post").is_none());
    }
}
