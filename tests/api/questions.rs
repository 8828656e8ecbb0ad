//! The seven questions of docs/dataset.md, answered by brisk and checked
//! against the same question asked directly in SQL on the same data.

use crate::on_both;
use crate::support::*;
use serde_json::Value;

fn objects(rows: Vec<serde_json::Map<String, Value>>) -> Vec<Value> {
    rows.into_iter()
        .map(Value::Object)
        .map(|v| normalise(&v))
        .collect()
}

fn normalised(rows: Vec<Value>) -> Vec<Value> {
    rows.iter().map(normalise).collect()
}

on_both! {
    async fn q1_first_page_of_users_two_fields(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let got = fx.data("/v1/users?page=1&limit=10&fields=name,email").await;
        let want = fx.sql("SELECT name, email FROM users ORDER BY id LIMIT 10").await;
        assert_eq!(got, objects(want));
        let keys: Vec<&String> = got[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "email"], "exactly the two fields, in order");
    }

    async fn q2_filtered_sorted_page_of_products(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        // the test shop has a tenth of the products: pages of 20, not 50
        let got = fx.data("/v1/products?page=2&limit=20&category=electronics&sort=price_asc").await;
        let want = fx
            .sql("SELECT * FROM products WHERE category = 'electronics' ORDER BY price, id LIMIT 20 OFFSET 20")
            .await;
        assert!(!want.is_empty(), "the test shop has a second page of electronics");
        assert_eq!(normalised(got), objects(want));
    }

    async fn q3_one_user_sparse_fields(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let got = fx.json("/v1/users/123?fields=name,email,profile_picture", 200).await;
        let want = fx.sql("SELECT name, email, profile_picture FROM users WHERE id = 123").await;
        assert_eq!(got, serde_json::json!({ "data": objects(want)[0] }));
    }

    async fn q4_one_users_orders(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let user: i64 = fx.sql_column("SELECT user_id FROM orders GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1").await[0]
            .as_i64()
            .unwrap();
        let got = fx.data(&format!("/v1/users/{user}/orders?limit=20")).await;
        let want = fx.sql(&format!("SELECT * FROM orders WHERE user_id = {user} ORDER BY id LIMIT 20")).await;
        assert!(want.len() > 1);
        assert_eq!(normalised(got), objects(want));
        let got = fx.data("/v1/users/123/orders?limit=20").await;
        let want = fx.sql("SELECT * FROM orders WHERE user_id = 123 ORDER BY id LIMIT 20").await;
        assert_eq!(normalised(got), objects(want));
    }

    async fn q5_orders_with_user_items_and_products(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let got = fx.data("/v1/orders?limit=50&include=user,order_items.product").await;
        let orders = fx.sql("SELECT * FROM orders ORDER BY id LIMIT 50").await;
        assert_eq!(got.len(), 50);
        for (order, want) in got.iter().zip(orders) {
            let id = want["id"].as_i64().unwrap();
            let user_id = want["user_id"].as_i64().unwrap();
            let mut expected = normalise(&Value::Object(want));
            let user = fx.sql(&format!("SELECT * FROM users WHERE id = {user_id}")).await;
            expected["user"] = objects(user).remove(0);
            let mut items = objects(fx.sql(&format!("SELECT * FROM order_items WHERE order_id = {id} ORDER BY id")).await);
            for item in &mut items {
                let product_id = item["product_id"].as_f64().unwrap() as i64;
                item["product"] = objects(fx.sql(&format!("SELECT * FROM products WHERE id = {product_id}")).await).remove(0);
            }
            assert!((1..=5).contains(&items.len()));
            expected["order_items"] = Value::Array(items);
            assert_eq!(normalise(order), expected, "order {id}");
        }
    }

    async fn q6_deep_page_and_the_same_rows_by_cursor(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        // offset 9,000 of 10,000 orders: the test shop's version of page 1801
        let by_page = fx.json("/v1/orders?page=181&limit=50", 200).await;
        let want = fx.sql_column("SELECT id FROM orders ORDER BY id LIMIT 50 OFFSET 9000").await;
        let ids = |body: &Value| -> Vec<Value> {
            body["data"].as_array().unwrap().iter().map(|r| normalise(&r["id"])).collect()
        };
        assert_eq!(ids(&by_page), normalised(want));
        let before = fx.json("/v1/orders?page=180&limit=50", 200).await;
        let cursor = before["meta"]["next_cursor"].as_str().expect("a next cursor");
        let by_cursor = fx.json(&format!("/v1/orders?limit=50&cursor={cursor}"), 200).await;
        assert_eq!(by_cursor["data"], by_page["data"]);
    }

    async fn q7_a_large_payload(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let got = fx.data("/v1/products?limit=1000").await;
        let want = fx.sql("SELECT * FROM products ORDER BY id LIMIT 1000").await;
        assert_eq!(got.len(), want.len());
        assert_eq!(normalised(got), objects(want));
    }
}
