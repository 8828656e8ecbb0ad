//! What is served: views and keyless tables as collections, and tables and
//! columns hidden by the config.

use crate::on_both;
use crate::support::*;
use serde_json::json;

const EXTRA_SQL: &str = "
    CREATE VIEW big_orders AS SELECT DISTINCT id, user_id, total FROM orders WHERE total > 500;
    CREATE TABLE events (kind TEXT NOT NULL, n INTEGER NOT NULL);
    INSERT INTO events VALUES ('a', 1), ('a', 1), ('b', 2), ('c', 3);
";

on_both! {
    async fn views_and_keyless_tables_are_collections(backend: Backend) {
        let url = writable_shop(backend, "views").await;
        execute(backend, &url, EXTRA_SQL).await;
        let fx = Fixture::serve(backend, &url, |_| {}).await;
        let rows = fx.data("/v1/big_orders?sort=-total&limit=5").await;
        let want = fx
            .sql_column("SELECT id FROM orders WHERE total > 500 ORDER BY total DESC, id DESC LIMIT 5")
            .await;
        assert_eq!(
            rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
            want
        );
        let body = fx.json("/v1/big_orders?limit=2", 200).await;
        assert!(
            body["meta"].get("next_cursor").is_none(),
            "no cursors without a primary key"
        );
        assert!(body["links"]["next"].as_str().unwrap().contains("page=2"));
        let problem = fx.json("/v1/big_orders/1", 404).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("no primary key")
        );
        fx.json("/v1/big_orders?cursor=abc", 400).await;
        // a keyless table pages stably by all its columns
        let events = fx.data("/v1/events?sort=-n").await;
        assert_eq!(
            events,
            vec![
                json!({"kind": "c", "n": 3}),
                json!({"kind": "b", "n": 2}),
                json!({"kind": "a", "n": 1}),
                json!({"kind": "a", "n": 1})
            ]
        );
        let page = fx.data("/v1/events?limit=2&page=2").await;
        assert_eq!(
            page,
            vec![json!({"kind": "b", "n": 2}), json!({"kind": "c", "n": 3})]
        );
    }

    async fn hidden_tables_and_columns_are_not_served(backend: Backend) {
        let fx = Fixture::configured(backend, |config| {
            config.schema.hidden_tables = vec!["order_items".into()];
            config.resources.insert(
                "users".into(),
                brisk::config::ResourceConfig {
                    columns: vec![],
                    hidden_columns: vec!["email".into()],
                    ..Default::default()
                },
            );
            config.resources.insert(
                "products".into(),
                brisk::config::ResourceConfig {
                    columns: vec!["id".into(), "name".into()],
                    hidden_columns: vec![],
                    ..Default::default()
                },
            );
        })
        .await;
        fx.json("/v1/order_items", 404).await;
        fx.json("/v1/orders?include=order_items", 400).await;
        let user = fx.json("/v1/users/1", 200).await;
        assert!(user["data"].get("email").is_none());
        assert!(user["data"].get("name").is_some());
        fx.json("/v1/users?fields=email", 400).await;
        fx.json("/v1/users?email=x", 400).await;
        fx.json("/v1/users?sort=email", 400).await;
        let product = fx.json("/v1/products/1", 200).await;
        assert_eq!(
            product["data"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["id", "name"]
        );
        let document = fx.json("/v1/openapi.json", 200).await;
        assert!(document["paths"].get("/v1/order_items").is_none());
        assert!(
            document["components"]["schemas"]["users"]["properties"]
                .get("email")
                .is_none()
        );
    }

    async fn allow_and_writes_say_what_each_resource_takes(backend: Backend) {
        let url = writable_shop(backend, "allow").await;
        execute(backend, &url, EXTRA_SQL).await;
        let fx = Fixture::serve(backend, &url, |config| {
            config.writes = true;
            config.resources.insert(
                "users".into(),
                brisk::config::ResourceConfig {
                    hidden_columns: vec!["email".into()],
                    ..Default::default()
                },
            );
        })
        .await;
        let allow = |method: &'static str, path: &'static str| {
            let fx = &fx;
            async move {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let response = fx.client.request(method, fx.url(path)).body("{}").header("content-type", "application/json").send().await.unwrap();
                let allow = header(&response, "allow");
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                (allow.unwrap_or_default(), body["detail"].as_str().unwrap_or_default().to_string())
            }
        };
        assert_eq!(allow("OPTIONS", "/v1/products").await.0, "GET, HEAD, POST");
        assert_eq!(allow("OPTIONS", "/v1/products/1").await.0, "GET, HEAD, PATCH, PUT, DELETE");
        // DISTINCT: not a view PostgreSQL can update (see
        // a_postgres_view_the_database_can_update_is_written for one it can)
        let (view, detail) = allow("POST", "/v1/big_orders").await;
        assert_eq!(view, "GET, HEAD");
        assert!(detail.contains("is a view the database cannot write through"), "{detail}");
        assert_eq!(allow("OPTIONS", "/v1/big_orders").await.0, "GET, HEAD");
        // a keyless table takes new rows, which have no URL to change them by
        assert_eq!(allow("OPTIONS", "/v1/events").await.0, "GET, HEAD, POST");
        let created = fx.send("POST", "/v1/events", r#"{"kind":"d","n":4}"#, &[]).await;
        assert_eq!(created.status(), 201);
        assert!(header(&created, "location").is_none() && header(&created, "etag").is_none());
        let created: serde_json::Value = created.json().await.unwrap();
        assert_eq!(created["data"], json!({"kind": "d", "n": 4}));
        assert_eq!(fx.sql_column("SELECT n FROM events WHERE kind = 'd'").await, [json!(4)]);
        assert_eq!(fx.data("/v1/events?kind=d").await, [json!({"kind": "d", "n": 4})], "the cached page is stale after the write");
        let (keyless, detail) = allow("PATCH", "/v1/events/1").await;
        assert_eq!(keyless, "GET, HEAD");
        assert!(detail.contains("no primary key"), "{detail}");
        // users' email is required and hidden: rows cannot be created, and
        // neither the answer nor the document names the column
        let (users, detail) = allow("POST", "/v1/users").await;
        assert_eq!(users, "GET, HEAD");
        assert!(detail.contains("required column") && !detail.contains("email"), "{detail}");
        let patched = fx.send("PATCH", "/v1/users/1", r#"{"name":"Ada"}"#, &[]).await;
        assert_eq!(patched.status(), 200);
        let document = fx.json("/v1/openapi.json", 200).await;
        assert!(document["paths"]["/v1/users"].get("post").is_none());
        assert!(document["paths"]["/v1/users/{id}"].get("patch").is_some());
        assert!(document["paths"]["/v1/products"].get("post").is_some());
        assert!(document["paths"]["/v1/events"].get("post").is_some());
        assert!(document["paths"].get("/v1/events/{id}").is_none());
    }
}

/// A view PostgreSQL can update is written through, by the key of the
/// table below it; the table's cached answers are stale after the write. A
/// view over a join takes no writes, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_view_the_database_can_update_is_written() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("view_writes"))
        .await
        .unwrap()
    else {
        skipped("writes through PostgreSQL views");
        return;
    };
    load_small_shop(Backend::Postgres, &url).await;
    execute(
        Backend::Postgres,
        &url,
        "CREATE VIEW paid_orders AS SELECT id, user_id, status, total, created_at, updated_at FROM orders WHERE status = 'paid';
         CREATE VIEW order_users AS SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id;",
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| c.writes = true).await;
    let options = |path: &'static str| {
        let fx = &fx;
        async move {
            let response = fx
                .client
                .request(reqwest::Method::OPTIONS, fx.url(path))
                .send()
                .await
                .unwrap();
            header(&response, "allow").unwrap_or_default()
        }
    };
    assert_eq!(options("/v1/paid_orders").await, "GET, HEAD, POST");
    assert_eq!(
        options("/v1/paid_orders/1").await,
        "GET, HEAD, PATCH, PUT, DELETE"
    );
    assert_eq!(options("/v1/order_users").await, "GET, HEAD");
    let refused = fx
        .send("POST", "/v1/order_users", r#"{"name":"x"}"#, &[])
        .await;
    assert_eq!(refused.status(), 405);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("cannot write through"),
        "{refused}"
    );
    let document = fx.json("/v1/openapi.json", 200).await;
    assert!(document["paths"]["/v1/paid_orders/{id}"]["patch"].is_object());
    assert!(document["paths"].get("/v1/order_users/{id}").is_none());

    let id = fx
        .sql_column("SELECT min(id) AS id FROM orders WHERE status = 'paid'")
        .await[0]
        .clone();
    let through_table = format!("/v1/orders/{id}");
    let before = fx.json(&through_table, 200).await;
    let patched = fx
        .send(
            "PATCH",
            &format!("/v1/paid_orders/{id}"),
            r#"{"total":"1234.50"}"#,
            &[],
        )
        .await;
    assert_eq!(patched.status(), 200);
    let stored = fx
        .sql_column(&format!(
            "SELECT total::text AS total FROM orders WHERE id = {id}"
        ))
        .await;
    assert_eq!(stored, [json!("1234.50")]);
    let after = fx.json(&through_table, 200).await;
    assert_ne!(before["data"]["total"], after["data"]["total"]);
    assert_eq!(
        after["data"]["total"],
        json!(1234.5),
        "the table's cached row is stale after a write through the view"
    );

    let created = fx
        .send("POST", "/v1/paid_orders", r#"{"user_id":1,"status":"paid","total":"5.00","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#, &[])
        .await;
    assert_eq!(created.status(), 201);
    let location = header(&created, "location").unwrap();
    assert!(location.starts_with("/v1/paid_orders/"), "{location}");
    let new_id = location.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        fx.sql_column(&format!("SELECT status FROM orders WHERE id = {new_id}"))
            .await,
        [json!("paid")]
    );
    let deleted = fx.send("DELETE", &location, "", &[]).await;
    assert_eq!(deleted.status(), 204);
    assert!(
        fx.sql_column(&format!("SELECT id FROM orders WHERE id = {new_id}"))
            .await
            .is_empty()
    );
    // a view that leaves out a column its table requires
    execute(
        Backend::Postgres,
        &url,
        "CREATE VIEW order_totals AS SELECT id, total FROM orders",
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| c.writes = true).await;
    let refused = fx
        .send("POST", "/v1/order_totals", r#"{"total":"1.00"}"#, &[])
        .await;
    assert_eq!(refused.status(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.contains("a column that order_totals does not show") && !detail.contains("user_id"),
        "{detail}"
    );
    fx.json(&format!("/v1/orders/{new_id}"), 404).await;
}

/// A schema other than `public`, with a space in its name and a decoy
/// table of the same name in `public`: reads, embeds, counts and writes
/// reach the served schema's tables, as SQL on them says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_other_than_public_is_served() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("schemas"))
        .await
        .unwrap()
    else {
        skipped("a PostgreSQL schema other than public");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        r#"
        CREATE SCHEMA "ware house";
        CREATE TABLE "ware house".warehouses (id serial PRIMARY KEY, city text NOT NULL);
        CREATE TABLE "ware house".bins (
            id serial PRIMARY KEY,
            warehouse_id int NOT NULL REFERENCES "ware house".warehouses (id),
            label text NOT NULL
        );
        INSERT INTO "ware house".warehouses (city) VALUES ('Lyon'), ('Oslo');
        INSERT INTO "ware house".bins (warehouse_id, label) VALUES (1, 'A1'), (1, 'A2'), (2, 'B1');
        CREATE TABLE public.warehouses (id serial PRIMARY KEY, city text NOT NULL);
        INSERT INTO public.warehouses (city) VALUES ('decoy');
        "#,
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| {
        c.schema.name = "ware house".into();
        c.writes = true;
    })
    .await;
    let cities = fx
        .sql_column(r#"SELECT city FROM "ware house".warehouses ORDER BY id"#)
        .await;
    let page = fx
        .json("/v1/warehouses?sort=id&count=exact&include=bins", 200)
        .await;
    let served: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["city"].clone())
        .collect();
    assert_eq!(served, cities);
    assert_eq!(page["meta"]["total"], 2);
    let labels = fx
        .sql_column(r#"SELECT label FROM "ware house".bins WHERE warehouse_id = 1 ORDER BY id"#)
        .await;
    let embedded: Vec<_> = page["data"][0]["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["label"].clone())
        .collect();
    assert_eq!(embedded, labels);
    assert_eq!(fx.data("/v1/warehouses?city=Oslo").await.len(), 1);
    assert_eq!(fx.data("/v1/warehouses?city=decoy").await.len(), 0);
    let created = fx
        .send(
            "POST",
            "/v1/bins",
            r#"{"warehouse_id": 2, "label": "B2"}"#,
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        fx.sql_column(r#"SELECT id FROM "ware house".bins WHERE label = 'B2'"#)
            .await
            .len(),
        1
    );
    assert_eq!(fx.data("/v1/warehouses/2/bins").await.len(), 2);
    // a schema that is not there is named at start-up, with those that are
    let mut config = brisk::config::Config::load(
        None,
        &brisk::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            database: Some(url.clone()),
        },
    )
    .unwrap();
    config.schema.name = "warehouse".into();
    let settings = brisk::config::Settings::from_config(config).unwrap();
    let error = format!(
        "{:#}",
        brisk::app::App::build(&settings).await.err().unwrap()
    );
    assert!(
        error.contains("'warehouse' does not exist") && error.contains("ware house"),
        "{error}"
    );
}

/// The message of `brisk serve` failing to start over `url`.
async fn start_up_error(url: &str) -> String {
    let config = brisk::config::Config::load(
        None,
        &brisk::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            database: Some(url.to_string()),
        },
    )
    .unwrap();
    let settings = brisk::config::Settings::from_config(config).unwrap();
    format!(
        "{:#}",
        brisk::app::App::build(&settings).await.err().unwrap()
    )
}

/// A database that is not there, a login refused, a server not running:
/// each start-up error says which, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_start_up_errors_say_what_is_wrong() {
    if postgres_shop().is_none() {
        skipped("PostgreSQL start-up errors");
        return;
    }
    let admin = postgres_admin_url();
    let base = admin.rsplit_once('/').unwrap().0;
    let missing = start_up_error(&format!("{base}/brisk_no_such_database")).await;
    assert!(
        missing.contains("\"brisk_no_such_database\" does not exist")
            && missing.contains("createdb"),
        "{missing}"
    );
    let server = admin.trim_start_matches("postgres://");
    let server = server.rsplit_once('@').map_or(server, |(_, server)| server);
    let stranger = start_up_error(&format!("postgres://brisk_no_such_role@{server}")).await;
    assert!(
        stranger.contains("brisk_no_such_role") && stranger.contains("refused the login"),
        "{stranger}"
    );
    let nobody = start_up_error(&format!("postgres://127.0.0.1:{}/test", free_port())).await;
    assert!(nobody.contains("is PostgreSQL running"), "{nobody}");
}

/// A materialized view never populated is a 503 that says what to run,
/// not a 500; once refreshed it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpopulated_materialized_view_says_what_to_run() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("matview"))
        .await
        .unwrap()
    else {
        skipped("an unpopulated materialized view");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        "CREATE TABLE sales (id serial PRIMARY KEY, amount int NOT NULL);
         INSERT INTO sales (amount) VALUES (3), (4);
         CREATE MATERIALIZED VIEW totals AS SELECT sum(amount) AS total FROM sales WITH NO DATA;",
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |_| {}).await;
    let response = fx.get("/v1/totals").await;
    assert_eq!(response.status(), 503);
    let problem: serde_json::Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"totals\" has not been populated")
            && detail.contains("REFRESH MATERIALIZED VIEW"),
        "{problem}"
    );
    execute(Backend::Postgres, &url, "REFRESH MATERIALIZED VIEW totals").await;
    let rows = fx.data("/v1/totals").await;
    assert_eq!(rows, vec![json!({"total": 7})]);
}

/// PostgreSQL enums: filtered and sorted in the enum's order, a value it
/// does not take refused before any SQL (400 naming the parameter, 422
/// naming the field, both listing the values), its values in the OpenAPI
/// document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_enums_name_their_values() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("enums"))
        .await
        .unwrap()
    else {
        skipped("PostgreSQL enums");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, mood mood NOT NULL, later mood);
         INSERT INTO people (name, mood) VALUES ('a', 'happy'), ('b', 'sad'), ('c', 'ok'), ('d', 'happy');",
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| c.writes = true).await;
    let ids =
        |rows: Vec<serde_json::Value>| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(fx.data("/v1/people?mood=happy&sort=id").await),
        fx.sql_column("SELECT id FROM people WHERE mood = 'happy' ORDER BY id")
            .await
    );
    assert_eq!(
        ids(fx.data("/v1/people?sort=mood,id").await),
        fx.sql_column("SELECT id FROM people ORDER BY mood, id")
            .await
    );
    assert_eq!(
        ids(fx.data("/v1/people?mood[gt]=sad&sort=id").await),
        fx.sql_column("SELECT id FROM people WHERE mood > 'sad' ORDER BY id")
            .await
    );
    assert_eq!(
        fx.data("/v1/people?mood[like]=ha%25").await.len(),
        2,
        "patterns match the enum's text"
    );
    assert_eq!(fx.data("/v1/people?mood[in]=sad,ok").await.len(), 2);
    let problem = fx.json("/v1/people?mood=angry", 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "mood", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("'sad', 'ok', 'happy'"),
        "{problem}"
    );
    let refused = fx
        .send(
            "POST",
            "/v1/people",
            r#"{"name": "e", "mood": "angry"}"#,
            &[],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/mood", "{problem}");
    let created = fx
        .send(
            "POST",
            "/v1/people",
            r#"{"name": "e", "mood": "ok", "later": null}"#,
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    let document = fx.json("/v1/openapi.json", 200).await;
    let properties = &document["components"]["schemas"]["people"]["properties"];
    assert_eq!(properties["mood"]["enum"], json!(["sad", "ok", "happy"]));
    assert_eq!(
        properties["later"]["enum"],
        json!(["sad", "ok", "happy", null])
    );
}

/// PostgreSQL arrays: JSON arrays in and out, `cs`, `cd`, `ov` filters
/// finding what `@>`, `<@`, `&&` find, items checked by their type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_arrays_are_json_arrays() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("arrays"))
        .await
        .unwrap()
    else {
        skipped("PostgreSQL arrays");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        r#"CREATE TABLE films (id serial PRIMARY KEY, title text NOT NULL, features text[] NOT NULL DEFAULT '{}', scores int[]);
           INSERT INTO films (title, features, scores) VALUES
             ('a', '{Trailers,"Deleted Scenes"}', '{1,2}'), ('b', '{Trailers}', NULL), ('c', '{}', '{3}');"#,
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| c.writes = true).await;
    let first = fx.json("/v1/films/1", 200).await;
    assert_eq!(
        first["data"]["features"],
        json!(["Trailers", "Deleted Scenes"])
    );
    assert_eq!(first["data"]["scores"], json!([1, 2]));
    let ids =
        |rows: Vec<serde_json::Value>| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    for (query, condition) in [
        ("features[cs]=Trailers", "features @> '{Trailers}'"),
        (
            "features[cd]=Trailers,Commentaries",
            "features <@ '{Trailers,Commentaries}'",
        ),
        (
            "features[ov]=\"Deleted Scenes\",Commentaries",
            "features && '{\"Deleted Scenes\",Commentaries}'",
        ),
        ("scores[cs]=2,1", "scores @> '{2,1}'"),
    ] {
        let want = fx
            .sql_column(&format!(
                "SELECT id FROM films WHERE {condition} ORDER BY id"
            ))
            .await;
        assert!(!want.is_empty(), "{query}");
        assert_eq!(
            ids(fx.data(&format!("/v1/films?{query}&sort=id")).await),
            want,
            "{query}"
        );
    }
    let problem = fx.json("/v1/films?scores[cs]=x", 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "scores[cs]", "{problem}");
    fx.json("/v1/films?features=Trailers", 400).await;
    fx.json("/v1/films?title[cs]=a", 400).await;
    let created = fx
        .send("POST", "/v1/films", r#"{"title": "d", "features": ["Behind the Scenes", "a \"quoted\" {one}"], "scores": [4, null]}"#, &[])
        .await;
    assert_eq!(created.status(), 201);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        body["data"]["features"],
        json!(["Behind the Scenes", "a \"quoted\" {one}"])
    );
    assert_eq!(body["data"]["scores"], json!([4, null]));
    assert_eq!(
        fx.sql_column("SELECT features[2] FROM films WHERE title = 'd'")
            .await,
        vec![json!("a \"quoted\" {one}")]
    );
    let refused = fx
        .send(
            "POST",
            "/v1/films",
            r#"{"title": "e", "scores": ["x"]}"#,
            &[],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/scores", "{problem}");
    let document = fx.json("/v1/openapi.json", 200).await;
    let features = &document["components"]["schemas"]["films"]["properties"]["features"];
    assert_eq!(features["type"], "array", "{features}");
    assert_eq!(
        features["items"]["type"],
        json!(["string", "null"]),
        "{features}"
    );
    let parameters: Vec<&str> = document["paths"]["/v1/films"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|parameter| parameter["name"].as_str())
        .collect();
    for offered in ["features[cs]", "features[cd]", "scores[ov]"] {
        assert!(parameters.contains(&offered), "{offered} in {parameters:?}");
    }
    for absent in ["title[cs]", "features[gt]"] {
        assert!(!parameters.contains(&absent), "{absent} in {parameters:?}");
    }
    let patch = &document["paths"]["/v1/films/{id}"]["patch"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(patch, "#/components/schemas/films_patch");
    let patch_schema = &document["components"]["schemas"]["films_patch"];
    assert_eq!(patch_schema["minProperties"], 1, "{patch_schema}");
    assert!(patch_schema.get("required").is_none(), "{patch_schema}");
}

/// Two schemas served at once (`schema.names`): the first's tables by their
/// names, the other's as `sales.table`, one of them named like a table of
/// the first; relations across the schemas; reads, embeds, writes and
/// outside writes (through `brisk install-triggers`) reach the right table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_postgres_schemas_are_served_together() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("several_schemas"))
        .await
        .unwrap()
    else {
        skipped("several PostgreSQL schemas");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        r#"
        CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL);
        CREATE SCHEMA sales;
        CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL, region text);
        CREATE TABLE sales.orders (
            id serial PRIMARY KEY,
            customer_id int NOT NULL REFERENCES public.customers (id),
            total numeric(10, 2) NOT NULL
        );
        CREATE TABLE sales.order_lines (
            order_id int NOT NULL REFERENCES sales.orders (id),
            line int NOT NULL,
            qty int NOT NULL,
            PRIMARY KEY (order_id, line)
        );
        CREATE SCHEMA hidden;
        CREATE TABLE hidden.secrets (id serial PRIMARY KEY);
        INSERT INTO public.customers (name) VALUES ('Ada'), ('Grace');
        INSERT INTO sales.customers (name, region) VALUES ('Sales Ada', 'EU'), ('Sales Bob', 'US'), ('Sales Cy', 'EU');
        INSERT INTO sales.orders (customer_id, total) VALUES (1, 10.50), (1, 20.00), (2, 7.25);
        INSERT INTO sales.order_lines VALUES (1, 1, 2), (1, 2, 1), (3, 1, 5);
        "#,
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |c| {
        c.schema.names = vec!["public".into(), "sales".into()];
        c.writes = true;
    })
    .await;
    let document = fx.json("/v1/openapi.json", 200).await;
    let mut paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|p| p.starts_with("/v1/") && !p.contains('{') && *p != "/v1/openapi.json")
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/v1/customers",
            "/v1/sales.customers",
            "/v1/sales.order_lines",
            "/v1/sales.orders"
        ]
    );
    let names =
        |rows: Vec<serde_json::Value>| rows.iter().map(|r| r["name"].clone()).collect::<Vec<_>>();
    assert_eq!(
        names(fx.data("/v1/sales.customers?region=EU&sort=id").await),
        fx.sql_column("SELECT name FROM sales.customers WHERE region = 'EU' ORDER BY id")
            .await
    );
    assert_eq!(
        names(fx.data("/v1/customers?sort=id").await),
        fx.sql_column("SELECT name FROM public.customers ORDER BY id")
            .await
    );
    // relations across schemas, named by the tables without their schema
    let orders = fx
        .json(
            "/v1/sales.orders?include=customer,order_lines&sort=id&count=exact",
            200,
        )
        .await;
    assert_eq!(orders["meta"]["total"], 3);
    let joined = fx
        .sql("SELECT o.id, c.name, (SELECT count(*) FROM sales.order_lines l WHERE l.order_id = o.id) AS lines
              FROM sales.orders o JOIN public.customers c ON c.id = o.customer_id ORDER BY o.id")
        .await;
    for (order, want) in orders["data"].as_array().unwrap().iter().zip(&joined) {
        assert_eq!(order["id"], want["id"]);
        assert_eq!(order["customer"]["name"], want["name"]);
        assert_eq!(
            order["order_lines"].as_array().unwrap().len() as i64,
            want["lines"].as_i64().unwrap()
        );
    }
    let ada_orders = fx.data("/v1/customers/1/orders?sort=id").await;
    assert_eq!(ada_orders.len(), 2);
    assert_eq!(
        fx.json("/v1/sales.order_lines/1,2", 200).await["data"]["qty"],
        1
    );

    // writes reach the named schema's table, and stale nothing
    let before = fx.data("/v1/customers/1/orders").await.len();
    let created = fx
        .send(
            "POST",
            "/v1/sales.orders",
            r#"{"customer_id":1,"total":"3.00"}"#,
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    let location = header(&created, "location").unwrap();
    assert!(location.starts_with("/v1/sales.orders/"), "{location}");
    assert_eq!(fx.data("/v1/customers/1/orders").await.len(), before + 1);
    let renamed = fx
        .send(
            "PATCH",
            "/v1/sales.customers/1",
            r#"{"name":"Renamed"}"#,
            &[],
        )
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        fx.sql_column("SELECT name FROM sales.customers WHERE id = 1")
            .await,
        [json!("Renamed")]
    );
    assert_eq!(
        fx.sql_column("SELECT name FROM public.customers WHERE id = 1")
            .await,
        [json!("Ada")]
    );

    // outside writes to either schema, through the triggers
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(["install-triggers", "--db", &url])
        .env_remove("BRISK_DATABASE_URL")
        .env("BRISK_SCHEMA_NAMES", "public, sales")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && said.contains("on 4 tables"),
        "{said}"
    );
    for (path, update, want) in [
        (
            "/v1/sales.customers/2",
            "UPDATE sales.customers SET name = 'Outside' WHERE id = 2",
            "Outside",
        ),
        (
            "/v1/customers/2",
            "UPDATE public.customers SET name = 'Outside too' WHERE id = 2",
            "Outside too",
        ),
    ] {
        fx.get(path).await;
        assert_eq!(cache_status(&fx.get(path).await), "hit");
        execute(Backend::Postgres, &url, update).await;
        let written = std::time::Instant::now();
        while fx.json(path, 200).await["data"]["name"] != want {
            assert!(
                written.elapsed() < std::time::Duration::from_secs(2),
                "{path}: not noticed within 2 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    // a schema that does not exist is named at start-up
    let config = brisk::config::Config {
        database: brisk::config::DatabaseConfig {
            url: url.clone(),
            ..Default::default()
        },
        schema: brisk::config::SchemaConfig {
            names: vec!["public".into(), "nope".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let error = match brisk::app::App::build(&brisk::config::Settings::from_config(config).unwrap())
        .await
    {
        Ok(_) => panic!("a missing schema was served"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("'nope' does not exist") && error.contains("schema.names"),
        "{error}"
    );
}
