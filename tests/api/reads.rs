//! Every read parameter and route of API.md, checked against SQL.

use crate::on_both;
use crate::support::*;
use serde_json::{Value, json};

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

async fn sql_ids(fx: &Fixture, query: &str) -> Vec<i64> {
    fx.sql_column(query)
        .await
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

on_both! {
    async fn a_repeated_sort_key_changes_nothing(backend: Backend) {
        let fx = Fixture::configured(backend, |_| {}).await;
        // as in SQL: the first key on a column decides, a later one is redundant
        let once = fx.json("/v1/products?sort=-price&limit=7", 200).await;
        let twice = fx.json("/v1/products?sort=-price,price,price_desc&limit=7", 200).await;
        assert_eq!(once["data"], twice["data"]);
        let want = fx.sql_column("SELECT id FROM products ORDER BY price DESC, id DESC LIMIT 7").await;
        let got: Vec<_> = twice["data"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
        assert_eq!(got, want);
    }

    async fn default_and_maximum_limit(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let body = fx.json("/v1/orders", 200).await;
        assert_eq!(body["data"].as_array().unwrap().len(), 20);
        assert_eq!(body["meta"]["limit"], 20);
        let body = fx.json("/v1/order_items?limit=1000", 200).await;
        assert_eq!(body["data"].as_array().unwrap().len(), 1000);
        fx.json("/v1/orders?limit=1001", 400).await;
        fx.json("/v1/orders?limit=0", 400).await;
    }

    async fn every_filter_operator_matches_sql(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let cases = [
            ("status=paid", "status = 'paid'"),
            ("status[eq]=paid", "status = 'paid'"),
            ("status[ne]=paid", "status <> 'paid'"),
            ("total[gt]=500", "total > 500"),
            ("total[gte]=500.5", "total >= 500.5"),
            ("total[lt]=20", "total < 20"),
            ("total[lte]=20", "total <= 20"),
            ("status[in]=paid,shipped", "status IN ('paid', 'shipped')"),
            ("status[nin]=paid,shipped,pending", "status NOT IN ('paid', 'shipped', 'pending')"),
            ("user_id[in]=1,2,3", "user_id IN (1, 2, 3)"),
            ("created_at[gte]=2024-01-01T00:00:00Z", "created_at >= '2024-01-01T00:00:00Z'"),
            ("user_id=7&status[ne]=cancelled", "user_id = 7 AND status <> 'cancelled'"),
            ("total[gte]=100&total[lt]=200", "total >= 100 AND total < 200"),
        ];
        for (filter, condition) in cases {
            let got = fx.json(&format!("/v1/orders?{filter}&fields=id&limit=1000&count=exact"), 200).await;
            let want = sql_ids(fx, &format!("SELECT id FROM orders WHERE {condition} ORDER BY id LIMIT 1000")).await;
            assert_eq!(ids(got["data"].as_array().unwrap()), want, "{filter}");
            let total = fx.sql_column(&format!("SELECT count(*) AS n FROM orders WHERE {condition}")).await;
            assert_eq!(got["meta"]["total"].as_i64(), total[0].as_i64(), "{filter} total");
            assert!(!want.is_empty() || filter.contains("nin"), "{filter} selects rows");
        }
    }

    async fn like_is_case_sensitive_and_ilike_is_not(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let name = fx.sql_column("SELECT name FROM users ORDER BY id LIMIT 1").await[0].as_str().unwrap().to_string();
        let first = name.split(' ').next().unwrap();
        let like = fx.data(&format!("/v1/users?name[like]={first}%25&fields=id&limit=1000")).await;
        let star = fx.data(&format!("/v1/users?name[like]={first}*&fields=id&limit=1000")).await;
        let want = sql_ids(fx, &format!("SELECT id FROM users WHERE substr(name, 1, {}) = '{first}' ORDER BY id", first.len())).await;
        assert_eq!(ids(&like), want);
        assert_eq!(ids(&star), want);
        let upper = first.to_uppercase();
        assert!(fx.data(&format!("/v1/users?name[like]={upper}*&fields=id")).await.is_empty());
        let ilike = fx.data(&format!("/v1/users?name[ilike]={upper}*&fields=id&limit=1000")).await;
        assert_eq!(ids(&ilike), want);
        let one_char = fx.data("/v1/orders?status[like]=pai_&fields=id&limit=5").await;
        assert_eq!(ids(&one_char), sql_ids(fx, "SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 5").await);
    }

    async fn null_filters_and_null_ordering(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let nulls = fx.json("/v1/users?profile_picture[null]=true&fields=id&count=exact&limit=1000", 200).await;
        let want = sql_ids(fx, "SELECT id FROM users WHERE profile_picture IS NULL ORDER BY id").await;
        assert!(!want.is_empty());
        assert_eq!(ids(nulls["data"].as_array().unwrap()), want);
        let not_null = fx.json("/v1/users?profile_picture[null]=false&fields=id&count=exact", 200).await;
        let total = fx.sql_column("SELECT count(*) AS n FROM users WHERE profile_picture IS NOT NULL").await;
        assert_eq!(not_null["meta"]["total"].as_i64(), total[0].as_i64());
        // NULL is larger than every value: last ascending, first descending.
        let ascending = fx.data("/v1/users?sort=profile_picture&fields=id,profile_picture&limit=1000").await;
        let want = sql_ids(fx, "SELECT id FROM users ORDER BY profile_picture IS NULL, profile_picture, id").await;
        assert_eq!(ids(&ascending), want[..1000.min(want.len())].to_vec());
        assert!(ascending.last().unwrap()["profile_picture"].is_null());
        let descending = fx.data("/v1/users?sort=-profile_picture&fields=id,profile_picture&limit=5").await;
        assert!(descending[0]["profile_picture"].is_null());
        let want = sql_ids(fx, "SELECT id FROM users ORDER BY profile_picture IS NOT NULL, profile_picture DESC, id DESC LIMIT 5").await;
        assert_eq!(ids(&descending), want);
    }

    async fn sort_in_both_spellings_with_several_keys(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let a = fx.data("/v1/products?sort=category_asc,price_desc&fields=id&limit=100").await;
        let b = fx.data("/v1/products?sort=category,-price&fields=id&limit=100").await;
        assert_eq!(a, b);
        let want = sql_ids(fx, "SELECT id FROM products ORDER BY category, price DESC, id DESC LIMIT 100").await;
        assert_eq!(ids(&a), want);
        // the primary key breaks ties, in the direction of the last key
        let ties = fx.data("/v1/orders?sort=status&fields=id,status&limit=300").await;
        let want = sql_ids(fx, "SELECT id FROM orders ORDER BY status, id LIMIT 300").await;
        assert_eq!(ids(&ties), want);
        let newest = fx.data("/v1/orders?sort=-id&fields=id&limit=3").await;
        assert_eq!(ids(&newest), sql_ids(fx, "SELECT id FROM orders ORDER BY id DESC LIMIT 3").await);
    }

    async fn fields_trim_embedded_objects(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let rows = fx.data("/v1/orders?include=user,order_items.product&fields=id,user.name,order_items.quantity,order_items.product.name&limit=3").await;
        for row in rows {
            let object = row.as_object().unwrap();
            assert_eq!(object.keys().collect::<Vec<_>>(), ["id", "user", "order_items"]);
            assert_eq!(row["user"].as_object().unwrap().keys().collect::<Vec<_>>(), ["name"]);
            for item in row["order_items"].as_array().unwrap() {
                assert_eq!(item.as_object().unwrap().keys().collect::<Vec<_>>(), ["quantity", "product"]);
                assert_eq!(item["product"].as_object().unwrap().keys().collect::<Vec<_>>(), ["name"]);
            }
        }
    }

    async fn include_to_many_from_the_one_side(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let users = fx.data("/v1/users?include=orders&fields=id,orders.id&limit=5").await;
        for user in users {
            let id = user["id"].as_i64().unwrap();
            let want = sql_ids(fx, &format!("SELECT id FROM orders WHERE user_id = {id} ORDER BY id")).await;
            assert_eq!(ids(user["orders"].as_array().unwrap()), want, "user {id}");
        }
        let one = fx.json("/v1/orders/1?include=user,order_items&fields=id,user.email", 200).await;
        let email = fx.sql_column("SELECT u.email FROM users u JOIN orders o ON o.user_id = u.id WHERE o.id = 1").await;
        assert_eq!(one["data"]["user"]["email"], email[0]);
        assert!(one["data"]["order_items"].as_array().is_some_and(|items| !items.is_empty()));
    }

    async fn nested_routes(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let user = fx.json("/v1/orders/5/user?fields=id,name", 200).await;
        let want = fx.sql("SELECT u.id, u.name FROM users u JOIN orders o ON o.user_id = u.id WHERE o.id = 5").await;
        assert_eq!(normalise(&user["data"]), normalise(&Value::Object(want[0].clone())));
        let items = fx.data("/v1/products/3/order_items?sort=-quantity&fields=id,quantity&limit=100").await;
        let want = sql_ids(fx, "SELECT id FROM order_items WHERE product_id = 3 ORDER BY quantity DESC, id DESC LIMIT 100").await;
        assert_eq!(ids(&items), want);
        // a user without orders: an empty page, not a 404
        let lonely = fx.sql_column("SELECT id FROM users WHERE id NOT IN (SELECT user_id FROM orders) LIMIT 1").await;
        if let Some(id) = lonely.first() {
            assert!(fx.data(&format!("/v1/users/{id}/orders")).await.is_empty());
        }
        let problem = fx.json("/v1/users/999999/orders", 404).await;
        assert!(problem["detail"].as_str().unwrap().contains("999999"), "{problem}");
        fx.json("/v1/orders/999999/user", 404).await;
    }

    async fn count_meta_and_links(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let response = fx.get("/v1/orders?status=paid&limit=25&page=2&count=exact&fields=id").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let link = response.headers()["link"].to_str().unwrap().to_string();
        let body: Value = response.json().await.unwrap();
        let total = fx.sql_column("SELECT count(*) AS n FROM orders WHERE status = 'paid'").await[0].as_i64().unwrap();
        assert_eq!(body["meta"]["total"], total);
        assert_eq!(body["meta"]["page"], 2);
        assert_eq!(body["meta"]["limit"], 25);
        let last = (total + 24) / 25;
        let links = &body["links"];
        let base = "/v1/orders?fields=id&status%5Beq%5D=paid&sort=id&limit=25";
        assert_eq!(links["self"], format!("{base}&page=2&count=exact"));
        assert_eq!(links["first"], format!("{base}&count=exact"));
        assert_eq!(links["prev"], format!("{base}&count=exact"));
        assert_eq!(links["next"], format!("{base}&page=3&count=exact"));
        assert_eq!(links["last"], format!("{base}&page={last}&count=exact"));
        assert_eq!(
            link,
            format!("<{base}&count=exact>; rel=\"first\", <{base}&count=exact>; rel=\"prev\", <{base}&page=3&count=exact>; rel=\"next\", <{base}&page={last}&count=exact>; rel=\"last\"")
        );
        // following links.next gives the next rows
        let next = fx.data(links["next"].as_str().unwrap()).await;
        let want = sql_ids(fx, "SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 25 OFFSET 50").await;
        assert_eq!(ids(&next), want);
        // without count=exact there is no total and no last link
        let plain = fx.json("/v1/orders?limit=5", 200).await;
        assert!(plain["meta"].get("total").is_none());
        assert!(plain["links"].get("last").is_none());
        assert!(plain["links"].get("prev").is_none());
        // past the end: empty data, no next, a prev
        let beyond = fx.json("/v1/orders?page=10000&limit=10", 200).await;
        assert_eq!(beyond["data"], json!([]));
        assert!(beyond["links"].get("next").is_none());
        assert!(beyond["meta"].get("next_cursor").is_none());
        assert!(beyond["links"]["prev"].as_str().unwrap().ends_with("page=9999"));
    }

    async fn single_rows_and_head(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        let body = fx.json("/v1/products/7", 200).await;
        let want = fx.sql("SELECT * FROM products WHERE id = 7").await;
        assert_eq!(normalise(&body["data"]), normalise(&Value::Object(want[0].clone())));
        let problem = fx.json("/v1/products/987654", 404).await;
        assert_eq!(problem["status"], 404);
        let head = fx.client.head(fx.url("/v1/products?limit=3")).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-type"], "application/json");
        assert!(head.headers().contains_key("link"));
        assert!(head.bytes().await.unwrap().is_empty());
        let head = fx.client.head(fx.url("/v1/products/987654")).send().await.unwrap();
        assert_eq!(head.status(), 404);
    }

    async fn health_and_readiness(backend: Backend) {
        let fx = &Fixture::shop(backend).await;
        assert_eq!(fx.json("/healthz", 200).await, json!({ "status": "ok" }));
        assert_eq!(fx.json("/readyz", 200).await, json!({ "status": "ready" }));
        let response = fx.get("/healthz").await;
        assert!(response.headers().contains_key("x-request-id"));
    }
}
