//! Writes over real HTTP on real databases: every route, every validation
//! error, constraints, If-Match, exact invalidation, writes behind brisk's
//! back.

use crate::on_both;
use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NEW_USER: &str = r#"{"name":"Grace Hopper","email":"grace@example.com","country":"US","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#;

on_both! {
    // A table keyed by two columns: its rows are `/v1/order_tags/{order_id},{label}`,
    // a comma inside a value sent as `%2C`; every write method works, and a
    // write makes the cached row stale at once.
    async fn rows_of_a_composite_key_are_addressed_and_written(backend: Backend) {
        let url = writable_shop(backend, "composite").await;
        execute(backend, &url, "
            CREATE TABLE order_tags (order_id INTEGER NOT NULL REFERENCES orders(id), label TEXT NOT NULL, note TEXT, PRIMARY KEY (order_id, label));
            INSERT INTO order_tags VALUES (1, 'a,b', 'comma'), (1, 'gift', NULL), (2, 'gift', 'second');
            CREATE TABLE pairs (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b));
            INSERT INTO pairs VALUES (1, 2);
        ").await;
        let fx = Fixture::serve(backend, &url, |config| config.writes = true).await;
        let document = fx.json("/v1/openapi.json", 200).await;
        let row = &document["paths"]["/v1/order_tags/{order_id},{label}"];
        assert!(row["get"].is_object() && row["patch"].is_object() && row["delete"].is_object(), "{row}");
        assert!(document["paths"]["/v1/order_tags"]["post"].is_object());

        let comma = fx.json("/v1/order_tags/1,a%2Cb", 200).await;
        assert_eq!(comma["data"], json!({"order_id": 1, "label": "a,b", "note": "comma"}));
        let want = fx.sql("SELECT order_id, label, note FROM order_tags WHERE order_id = 2 AND label = 'gift'").await;
        assert_eq!(fx.json("/v1/order_tags/002,gift", 200).await["data"], Value::Object(want[0].clone()));
        let missing = fx.json("/v1/order_tags/3,gift", 404).await;
        assert!(missing["detail"].as_str().unwrap().contains("order_id 3, label gift"), "{missing}");
        let short = fx.json("/v1/order_tags/1", 404).await;
        assert!(short["detail"].as_str().unwrap().contains("2 key values (order_id, label)"), "{short}");
        fx.json("/v1/order_tags/x,gift", 400).await;

        let created = fx.send("POST", "/v1/order_tags", r#"{"order_id":2,"label":"new tag, red","note":"n"}"#, &[]).await;
        assert_eq!(created.status(), 201);
        let location = header(&created, "location").unwrap();
        assert_eq!(location, "/v1/order_tags/2,new%20tag%2C%20red");
        let etag = fx.json(&location, 200).await;
        assert_eq!(etag["data"]["note"], "n");
        let read = fx.get(&location).await;
        let etag = header(&read, "etag").unwrap();
        let patched = fx.send("PATCH", &location, r#"{"note":"changed"}"#, &[("if-match", &etag)]).await;
        assert_eq!(patched.status(), 200);
        assert_eq!(fx.json(&location, 200).await["data"]["note"], "changed", "the cached row is stale after the write");
        let moved = fx.send("PATCH", &location, r#"{"label":"other"}"#, &[]).await;
        assert_eq!(moved.status(), 422);
        let moved: Value = moved.json().await.unwrap();
        assert_eq!(moved["errors"][0]["pointer"], "/label", "{moved}");
        let replaced = fx.send("PUT", &location, r#"{"order_id":2,"label":"new tag, red"}"#, &[]).await;
        assert_eq!(replaced.status(), 200);
        assert_eq!(fx.sql_column("SELECT note FROM order_tags WHERE order_id = 2 AND label = 'new tag, red'").await, [Value::Null]);
        let deleted = fx.send("DELETE", &location, "", &[]).await;
        assert_eq!(deleted.status(), 204);
        fx.json(&location, 404).await;
        assert_eq!(fx.sql_column("SELECT count(*) AS n FROM order_tags").await, [json!(3)]);
        // a table that is all key: a row has nothing to change, only to delete
        let put = fx.send("PUT", "/v1/pairs/1,2", "{}", &[]).await;
        assert_eq!(put.status(), 405);
        assert_eq!(header(&put, "allow").as_deref(), Some("GET, HEAD, DELETE"));
        assert!(put.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("nothing to change"));
        let created = fx.send("POST", "/v1/pairs", r#"{"a":3,"b":4}"#, &[]).await;
        assert_eq!(created.status(), 201, "a key of several INTEGER columns is not SQLite's rowid");
        let missing = fx.send("POST", "/v1/pairs", r#"{"b":4}"#, &[]).await;
        assert_eq!(missing.status(), 422);
        assert!(missing.json::<Value>().await.unwrap()["errors"][0]["detail"].as_str().unwrap().contains("a is required"));
        assert_eq!(fx.send("DELETE", "/v1/pairs/3,4", "", &[]).await.status(), 204);
        // the parent route of a composite key reaches its to-one relation
        let order = fx.json("/v1/order_tags/1,gift/order", 200).await;
        assert_eq!(order["data"]["id"], 1);
    }

    async fn create_read_update_replace_delete(backend: Backend) {
        let fx = Fixture::writable(backend, "crud", |_| {}).await;
        let created = fx.send("POST", "/v1/users", NEW_USER, &[]).await;
        assert_eq!(created.status(), 201);
        let location = header(&created, "location").expect("Location on 201");
        let etag = header(&created, "etag").expect("ETag on 201");
        let body: Value = created.json().await.unwrap();
        assert_eq!(body["data"]["name"], "Grace Hopper");
        assert!(body["data"]["id"].as_i64().unwrap() > 100, "the database chose the id");
        assert!(body["data"]["profile_picture"].is_null(), "as stored");
        assert_eq!(location, format!("/v1/users/{}", body["data"]["id"]));
        // the write's ETag is the one a GET gives
        let read = fx.get(&location).await;
        assert_eq!(header(&read, "etag"), Some(etag.clone()));
        assert_eq!(read.json::<Value>().await.unwrap(), body);

        let patched = fx.send("PATCH", &location, r#"{"name":"Rear Admiral Hopper"}"#, &[("if-match", &etag)]).await;
        assert_eq!(patched.status(), 200);
        let new_etag = header(&patched, "etag").unwrap();
        assert_ne!(new_etag, etag);
        let patched: Value = patched.json().await.unwrap();
        assert_eq!(patched["data"]["name"], "Rear Admiral Hopper");
        assert_eq!(patched["data"]["email"], "grace@example.com", "PATCH keeps what it was not given");
        assert_eq!(fx.json(&location, 200).await, patched, "read your write");

        let stale = fx.send("PATCH", &location, r#"{"name":"x"}"#, &[("if-match", &etag)]).await;
        assert_eq!(stale.status(), 412, "an old ETag is refused");
        let weak = fx.send("PATCH", &location, r#"{"name":"x"}"#, &[("if-match", &format!("W/{new_etag}"))]).await;
        assert_eq!(weak.status(), 412, "weak tags never pass If-Match");

        let replaced = fx
            .send(
                "PUT",
                &location,
                r#"{"name":"G. Hopper","email":"g@example.com","country":"US","profile_picture":"https://img.example.com/g.jpg","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-06-01T00:00:00Z"}"#,
                &[("if-match", &new_etag)],
            )
            .await;
        assert_eq!(replaced.status(), 200);
        let replaced_etag = header(&replaced, "etag").unwrap();
        let replaced: Value = replaced.json().await.unwrap();
        assert_eq!(replaced["data"]["profile_picture"], "https://img.example.com/g.jpg");
        let put_without = fx
            .send("PUT", &location, r#"{"name":"G","email":"g@example.com","country":"US","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-06-01T00:00:00Z"}"#, &[])
            .await;
        assert_eq!(put_without.status(), 200);
        assert!(put_without.json::<Value>().await.unwrap()["data"]["profile_picture"].is_null(), "PUT sets what it leaves out to null");

        assert_eq!(fx.send("DELETE", &location, "", &[("if-match", &replaced_etag)]).await.status(), 412);
        let deleted = fx.send("DELETE", &location, "", &[("if-match", "*")]).await;
        assert_eq!(deleted.status(), 204);
        fx.json(&location, 404).await;
        assert_eq!(fx.send("DELETE", &location, "", &[]).await.status(), 404);
        assert_eq!(fx.send("PATCH", &location, r#"{"name":"x"}"#, &[("if-match", "*")]).await.status(), 412);
        assert_eq!(fx.send("PATCH", &location, r#"{"name":"x"}"#, &[]).await.status(), 404);
    }

    async fn a_post_of_many_rows_is_one_transaction(backend: Backend) {
        let fx = Fixture::writable(backend, "many", |_| {}).await;
        let count = || fx.sql_column("SELECT count(*) AS n FROM users");
        let before = count().await[0].as_i64().unwrap();
        let rows: Vec<Value> = (0..3)
            .map(|i| json!({"name": format!("U{i}"), "email": format!("u{i}@example.com"), "country": "DE", "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}))
            .collect();
        let created = fx.send("POST", "/v1/users", &Value::Array(rows.clone()).to_string(), &[]).await;
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.unwrap();
        let names: Vec<&str> = body["data"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["U0", "U1", "U2"], "in the order sent");
        assert_eq!(count().await[0].as_i64().unwrap(), before + 3);
        // one duplicate email fails the whole batch
        let mut again = rows.clone();
        again[0]["email"] = json!("fresh@example.com");
        let conflict = fx.send("POST", "/v1/users", &Value::Array(again).to_string(), &[]).await;
        assert_eq!(conflict.status(), 409);
        assert_eq!(count().await[0].as_i64().unwrap(), before + 3, "nothing of a failed batch is kept");
    }

    async fn bad_bodies_are_named_field_by_field(backend: Backend) {
        let fx = Fixture::writable(backend, "validation", |c| c.limits.max_body_bytes = 4096).await;
        let cases: &[(&str, &str, &str, u16, &str)] = &[
            ("POST", "/v1/users", "", 400, "the body is empty"),
            ("POST", "/v1/users", "{\"name\":", 400, "not valid JSON"),
            ("POST", "/v1/users", "\"text\"", 400, "a string, not a JSON object"),
            ("POST", "/v1/users", "[]", 400, "the array is empty"),
            ("POST", "/v1/users", "[1,2]", 400, "expected a JSON object, got a number"),
            ("POST", "/v1/users", "{}", 422, "/name"),
            ("POST", "/v1/users", r#"{"nmae":"x"}"#, 422, "did you mean 'name'?"),
            ("POST", "/v1/users", r#"{"name":5,"email":"a","country":"DE","created_at":"2024-01-01","updated_at":"2024-01-01"}"#, 422, "name takes text, not a number"),
            ("POST", "/v1/users", r#"{"name":null,"email":"a","country":"DE","created_at":"2024-01-01","updated_at":"2024-01-01"}"#, 422, "name cannot be null"),
            ("POST", "/v1/orders", r#"{"user_id":"1","status":"paid","total":1,"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#, 422, "user_id takes integer, not a string"),
            ("POST", "/v1/orders", r#"{"user_id":1.5,"status":"paid","total":1,"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#, 422, "whole number"),
            ("PATCH", "/v1/products/1", r#"{"stock":"many"}"#, 422, "stock takes integer"),
            ("PATCH", "/v1/products/1", r#"{"price":true}"#, 422, "price takes number"),
            ("PATCH", "/v1/products/1", r#"{"id":2}"#, 422, "cannot change"),
            ("PATCH", "/v1/products/1", "{}", 400, "the object is empty"),
            ("PATCH", "/v1/products/1", r#"{"nope":1,"stock":-1,"name":[]}"#, 422, "/nope"),
            ("PATCH", "/v1/products/abc", r#"{"stock":1}"#, 400, "expected integer"),
            ("PATCH", "/v1/nothing/1", r#"{"stock":1}"#, 404, "no resource 'nothing'"),
            ("PUT", "/v1/products/1", r#"{"name":"x"}"#, 422, "category is required"),
            ("POST", "/v1/users", &format!("{{\"name\":\"{}\"}}", "x".repeat(5000)), 413, "larger than 4096 bytes"),
        ];
        for (method, path, body, status, phrase) in cases {
            let response = fx.send(method, path, body, &[]).await;
            let got = response.status().as_u16();
            let content_type = header(&response, "content-type");
            let text = response.text().await.unwrap();
            assert_eq!(got, *status, "{method} {path} {body}: {text}");
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{method} {path}");
            assert!(text.contains(phrase), "{method} {path} {body}: expected {phrase:?} in {text}");
        }
        // several bad fields are all named, each by its JSON pointer
        let problem = fx.send("PATCH", "/v1/products/1", r#"{"nope":1,"stock":"x","name":[]}"#, &[]).await.json::<Value>().await.unwrap();
        let pointers: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
        assert_eq!(pointers, ["/nope", "/name", "/stock"]);
        // media types
        let form = fx.client.post(fx.url("/v1/users")).header("content-type", "text/plain").body(NEW_USER).send().await.unwrap();
        assert_eq!(form.status(), 415);
        let gzipped = fx.client.post(fx.url("/v1/users")).header("content-type", "application/json").header("content-encoding", "gzip").body(NEW_USER).send().await.unwrap();
        assert_eq!(gzipped.status(), 415);
        assert_eq!(header(&gzipped, "accept-encoding").as_deref(), Some("identity"));
        let with_charset = fx.client.post(fx.url("/v1/users")).header("content-type", "application/json; charset=utf-8").body(NEW_USER).send().await.unwrap();
        assert_eq!(with_charset.status(), 201);
    }

    async fn constraint_violations_are_4xx_with_the_column(backend: Backend) {
        let fx = Fixture::writable(backend, "constraints", |_| {}).await;
        let email = fx.sql_column("SELECT email FROM users WHERE id = 1").await[0].as_str().unwrap().to_string();
        let duplicate = NEW_USER.replace("grace@example.com", &email);
        let response = fx.send("POST", "/v1/users", &duplicate, &[]).await;
        assert_eq!(response.status(), 409);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["pointer"], "/email", "{problem}");
        // in a bulk POST, the pointer starts with the row's index; nothing is stored
        let fresh = NEW_USER.replace("grace@example.com", "bulk-first@example.com");
        let response = fx.send("POST", "/v1/users", &format!("[{fresh},{duplicate}]"), &[]).await;
        assert_eq!(response.status(), 409);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["pointer"], "/1/email", "{problem}");
        assert!(fx.sql_column("SELECT id FROM users WHERE email = 'bulk-first@example.com'").await.is_empty());
        let orphan = r#"{"user_id":999999,"status":"paid","total":1,"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#;
        let response = fx.send("POST", "/v1/orders", orphan, &[]).await;
        assert_eq!(response.status(), 409);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["pointer"], "/user_id", "{problem}");
        let response = fx.send("PATCH", "/v1/users/2", &format!("{{\"email\":\"{email}\"}}"), &[]).await;
        assert_eq!(response.status(), 409);
        let user = fx.sql_column("SELECT user_id FROM orders LIMIT 1").await[0].as_i64().unwrap();
        let response = fx.send("DELETE", &format!("/v1/users/{user}"), "", &[]).await;
        assert_eq!(response.status(), 409);
        let problem: Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("orders"), "{problem}");
        fx.json(&format!("/v1/users/{user}"), 200).await;
    }

    async fn concurrent_writes_with_one_etag_let_exactly_one_win(backend: Backend) {
        let fx = Fixture::writable(backend, "race", |_| {}).await;
        let fx = Arc::new(fx);
        for round in 0..10 {
            let etag = header(&fx.get("/v1/products/3").await, "etag").unwrap();
            let attempts = (0..4).map(|i| {
                let fx = fx.clone();
                let etag = etag.clone();
                tokio::spawn(async move {
                    fx.send("PATCH", "/v1/products/3", &format!("{{\"stock\":{}}}", round * 10 + i), &[("if-match", &etag)])
                        .await
                        .status()
                        .as_u16()
                })
            });
            let mut statuses: Vec<u16> = futures_util::future::join_all(attempts).await.into_iter().map(|r| r.unwrap()).collect();
            statuses.sort();
            assert_eq!(statuses, [200, 412, 412, 412], "round {round}");
        }
    }

    async fn if_match_holds_across_instances_without_redis(backend: Backend) {
        // two instances over one database, sharing nothing but the data (no
        // cache either, so that each reads the row as stored)
        let a = Fixture::writable(backend, "ifmatch_noredis", |c| c.cache.enabled = false).await;
        let b = Fixture::serve(backend, &a.db_url, |c| {
            c.writes = true;
            c.cache.enabled = false;
        })
        .await;
        let (a, b) = (Arc::new(a), Arc::new(b));
        for round in 0..20 {
            let tag = header(&a.get("/v1/products/4").await, "etag").unwrap();
            assert_eq!(header(&b.get("/v1/products/4").await, "etag").unwrap(), tag, "one row, one tag");
            let patch = |fx: Arc<Fixture>, stock: i64| {
                let tag = tag.clone();
                tokio::spawn(async move {
                    let body = format!("{{\"stock\":{stock}}}");
                    fx.send("PATCH", "/v1/products/4", &body, &[("if-match", &tag)]).await.status().as_u16()
                })
            };
            let (on_a, on_b) = (patch(a.clone(), round * 2), patch(b.clone(), round * 2 + 1));
            let mut statuses = [on_a.await.unwrap(), on_b.await.unwrap()];
            statuses.sort();
            assert_eq!(statuses, [200, 412], "round {round}: exactly one winner");
        }
        // a precondition is ignored when the row is absent: the answer is 404
        let missing = a.send("PATCH", "/v1/products/987654", r#"{"stock":1}"#, &[("if-match", "\"abc\"")]).await;
        assert_eq!(missing.status(), 404);
        let star = a.send("PATCH", "/v1/products/987654", r#"{"stock":1}"#, &[("if-match", "*")]).await;
        assert_eq!(star.status(), 412, "If-Match: * asks for the row to exist");
    }

    async fn reads_never_see_a_write_undone(backend: Backend) {
        let fx = Fixture::writable(backend, "ryw", |_| {}).await;
        let fx = Arc::new(fx);
        const HOT: [i64; 3] = [1, 2, 3];
        // the stock each hot product was last confirmed to have by a write
        let confirmed: Arc<Vec<AtomicI64>> = Arc::new(HOT.iter().map(|_| AtomicI64::new(-1)).collect());
        let stale = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for (slot, id) in HOT.iter().enumerate() {
            let (fx, confirmed) = (fx.clone(), confirmed.clone());
            tasks.push(tokio::spawn(async move {
                let mut stock = 0;
                while Instant::now() < deadline {
                    stock += 1;
                    let response = fx.send("PATCH", &format!("/v1/products/{id}"), &format!("{{\"stock\":{stock}}}"), &[]).await;
                    assert_eq!(response.status(), 200);
                    confirmed[slot].store(stock, Ordering::SeqCst);
                }
            }));
        }
        for reader in 0..4 {
            let (fx, confirmed, stale, reads) = (fx.clone(), confirmed.clone(), stale.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let slot = reader % HOT.len();
                    let floor = confirmed[slot].load(Ordering::SeqCst);
                    let path = if reader < 2 {
                        format!("/v1/products/{}?fields=stock", HOT[slot])
                    } else {
                        "/v1/products?id[in]=1,2,3&fields=id,stock&limit=3".to_string()
                    };
                    let body = fx.json(&path, 200).await;
                    let stock = match &body["data"] {
                        Value::Array(rows) => rows[slot]["stock"].as_i64().unwrap(),
                        row => row["stock"].as_i64().unwrap(),
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    if floor > 0 && stock < floor {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(reads.load(Ordering::Relaxed) > 50);
        assert_eq!(stale.load(Ordering::Relaxed), 0, "reads older than a confirmed write");
    }

    async fn a_write_invalidates_exactly_what_it_could_change(backend: Backend) {
        let fx = Fixture::writable(backend, "exact", |_| {}).await;
        let watched = [
            ("/v1/users/1", "hit"),
            ("/v1/users?limit=5", "hit"),
            ("/v1/products/2", "hit"),
            ("/v1/products/1", "miss"),
            ("/v1/products?limit=5", "miss"),
            ("/v1/order_items?include=product&limit=5", "miss"),
            ("/v1/orders?limit=5", "hit"),
        ];
        for (path, _) in watched {
            fx.get(path).await;
            assert_eq!(cache_status(&fx.get(path).await), "hit", "{path} is cached");
        }
        let response = fx.send("PATCH", "/v1/products/1", r#"{"stock":77}"#, &[]).await;
        assert_eq!(response.status(), 200);
        for (path, want) in watched {
            assert_eq!(cache_status(&fx.get(path).await), want, "{path} after a write to products/1");
        }
        let fresh = fx.json("/v1/products/1?fields=stock", 200).await;
        assert_eq!(fresh["data"]["stock"], 77);
    }

    async fn writes_are_refused_unless_switched_on(backend: Backend) {
        let fx = Fixture::configured(backend, |_| {}).await;
        let response = fx.send("POST", "/v1/users", NEW_USER, &[]).await;
        assert_eq!(response.status(), 403);
        assert_eq!(header(&response, "content-type").as_deref(), Some("application/problem+json"));
        let strict = Fixture::writable(backend, "require", |c| c.http.require_if_match = true).await;
        assert_eq!(strict.send("PATCH", "/v1/users/1", r#"{"name":"x"}"#, &[]).await.status(), 428);
        let etag = header(&strict.get("/v1/users/1").await, "etag").unwrap();
        assert_eq!(strict.send("PATCH", "/v1/users/1", r#"{"name":"x"}"#, &[("if-match", &etag)]).await.status(), 200);
    }

    async fn writes_behind_bricks_back_are_noticed(backend: Backend) {
        let fx = Fixture::writable(backend, "outside", |_| {}).await;
        if backend == Backend::Postgres {
            // `brisk install-triggers`, twice: it is idempotent
            install_triggers(&fx.db_url, false);
            install_triggers(&fx.db_url, false);
        }
        let path = "/v1/products/4?fields=name";
        fx.get(path).await;
        assert_eq!(cache_status(&fx.get(path).await), "hit");
        let outside_write = "UPDATE products SET name = 'Changed outside' WHERE id = 4";
        match backend {
            Backend::Sqlite => {
                rusqlite::Connection::open(&fx.db_url).unwrap().execute_batch(outside_write).unwrap();
            }
            Backend::Postgres => {
                let (client, connection) = tokio_postgres::connect(&fx.db_url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client.batch_execute(outside_write).await.unwrap();
            }
        }
        let written = Instant::now();
        loop {
            let body = fx.json(path, 200).await;
            if body["data"]["name"] == "Changed outside" {
                break;
            }
            assert!(written.elapsed() < Duration::from_millis(500), "not noticed within 500 ms");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(fx.state.changes.outside_changes() > 0);
        if backend == Backend::Postgres {
            install_triggers(&fx.db_url, true);
            let (client, connection) = tokio_postgres::connect(&fx.db_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let left = client
                .query_one("SELECT count(*) FROM pg_trigger WHERE tgname = 'brisk_changes'", &[])
                .await
                .unwrap()
                .get::<_, i64>(0);
            assert_eq!(left, 0, "removal leaves no trigger");
        }
    }
}

/// Waits until `path` answers `field` = `value`, for at most 500 ms.
async fn until_fresh(fx: &Fixture, path: &str, field: &str, value: &str) {
    let written = Instant::now();
    while fx.json(path, 200).await["data"][field] != value {
        assert!(
            written.elapsed() < Duration::from_millis(500),
            "{path}: not noticed within 500 ms"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_change_triggers_name_the_table_another_program_wrote() {
    let shop = writable_shop(Backend::Sqlite, "changelog").await;
    assert!(install_triggers(&shop, false).contains("installed the change triggers on 4 tables"));
    install_triggers(&shop, false); // idempotent
    let fx = Fixture::serve(Backend::Sqlite, &shop, |c| c.writes = true).await;
    let outside = |sql: &str| {
        rusqlite::Connection::open(&shop)
            .unwrap()
            .execute_batch(sql)
            .unwrap()
    };
    let users = "/v1/users?limit=5&fields=name";
    let product = "/v1/products/4?fields=name";
    let hit = |path: &'static str| {
        let fx = &fx;
        async move { cache_status(&fx.get(path).await) == "hit" }
    };
    fx.get(users).await;
    fx.get(product).await;
    assert!(hit(users).await && hit(product).await);
    let poll = Duration::from_millis(200); // four times changes.poll_ms

    // brisk's own writes are not taken for outside ones
    let response = fx
        .send("PATCH", "/v1/products/5", r#"{"stock": 7}"#, &[])
        .await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(poll).await;
    assert_eq!(fx.state.changes.outside_changes(), 0);
    assert!(
        hit(users).await && hit(product).await,
        "a write to product 5 stales neither"
    );

    // another program's write to products stales products, not users
    outside("UPDATE products SET name = 'Changed outside' WHERE id = 4");
    until_fresh(&fx, product, "name", "Changed outside").await;
    assert!(fx.state.changes.outside_changes() >= 1);
    assert!(hit(users).await, "users answers stay cached");

    // and to users, users
    fx.get("/v1/users/1?fields=name").await;
    assert!(hit("/v1/users/1?fields=name").await);
    outside("UPDATE users SET name = 'Renamed outside' WHERE id = 1");
    until_fresh(&fx, "/v1/users/1?fields=name", "name", "Renamed outside").await;
    let listed = fx.json("/v1/users?limit=5&fields=id,name", 200).await;
    assert_eq!(
        listed["data"][0],
        json!({"id": 1, "name": "Renamed outside"}),
        "{listed}"
    );

    // without the triggers, outside writes are still noticed (every table)
    assert!(install_triggers(&shop, true).contains("removed the change triggers from 4 tables"));
    tokio::time::sleep(poll).await;
    fx.get(users).await;
    fx.get(product).await;
    assert!(hit(users).await && hit(product).await);
    outside("UPDATE products SET name = 'Again' WHERE id = 4");
    until_fresh(&fx, product, "name", "Again").await;
    assert!(
        !hit(users).await,
        "without the log every table counts as changed"
    );
}
