//! Who may do what, over real HTTP on both databases: API keys, JWTs,
//! roles (resources, methods, columns, rows), the cache per role, and
//! every 401 and 403 path. Rate limits are in `rate_limits.rs`.

use crate::on_both;
use crate::support::*;
use brisk::auth::keys;
use brisk::config::Config;
use serde_json::{Value, json};

/// A key for `role`, with claims, and the config lines that let it in.
pub struct Key {
    pub key: String,
    pub toml: String,
}

pub fn key(name: &str, role: &str, claims: &str) -> Key {
    let issued = keys::issue(role, Some(name)).unwrap();
    Key {
        toml: format!(
            "[auth.keys.{name}]\nrole = \"{role}\"\nsha256 = \"{}\"\nclaims = {{ {claims} }}\n",
            issued.sha256
        ),
        key: issued.key,
    }
}

/// Applies the access sections of a `brisk.toml` snippet to `config`.
pub fn access(config: &mut Config, snippet: &str) {
    let parsed: Config = toml::from_str(snippet).unwrap_or_else(|e| panic!("{e}\n{snippet}"));
    config.auth = parsed.auth;
    config.roles = parsed.roles;
    config.rate_limit = parsed.rate_limit;
}

pub fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

async fn get_as(fx: &Fixture, path: &str, key: &str) -> reqwest::Response {
    fx.get_with(path, &[("authorization", &format!("Bearer {key}"))])
        .await
}

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json")
    );
    response.json().await.unwrap()
}

/// HS256 tokens for the tests, signed with `SECRET`.
const SECRET: &str = "a test secret of at least thirty-two bytes";

fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const JWT: &str = r#"
[auth.jwt]
algorithms = ["HS256"]
secret = "a test secret of at least thirty-two bytes"
role_claim = "app.role"
default_role = "anonymous"
"#;

on_both! {
    async fn bad_credentials_are_401_with_a_challenge(backend: Backend) {
        let reader = key("ci", "reader", "");
        let snippet = format!("{}{JWT}\n[roles.reader]\n", reader.toml);
        let fx = Fixture::configured(backend, |c| access(c, &snippet)).await;
        let expired = token(json!({"sub": "1", "app": {"role": "reader"}, "exp": now() - 3600}));
        let forged = {
            let good = token(json!({"sub": "1", "app": {"role": "reader"}, "exp": now() + 3600}));
            let (rest, _) = good.rsplit_once('.').unwrap();
            format!("{rest}.AAAA")
        };
        let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
            (vec![bearer("brisk_0000")], "not known"),
            (vec![("x-api-key", "brisk_0000".into())], "not known"),
            (vec![("authorization", "Basic dXNlcjpwYXNz".into())], "Bearer"),
            (vec![("authorization", "Bearer".into())], "Bearer"),
            (vec![bearer(&reader.key), ("x-api-key", reader.key.clone())], "one credential"),
            (vec![bearer(&expired)], "expired"),
            (vec![bearer(&forged)], "refused"),
            (vec![bearer("a.b.c")], "refused"),
        ];
        for (headers, says) in cases {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let response = fx.get_with("/v1/users/1", &headers).await;
            let challenge = header(&response, "www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer realm=\"brisk\""), "{headers:?}: {challenge}");
            let body = problem(response, 401).await;
            assert_eq!(body["type"], "https://brisk.dev/problems/unauthorized");
            assert!(body["detail"].as_str().unwrap().contains(says), "{headers:?}: {body}");
        }
        // the same credentials, right: 200
        assert_eq!(get_as(&fx, "/v1/users/1", &reader.key).await.status(), 200);
        let fine = token(json!({"sub": "1", "app": {"role": "reader"}, "exp": now() + 3600}));
        assert_eq!(get_as(&fx, "/v1/users/1", &fine).await.status(), 200);
        let metrics = fx.get("/metrics").await.text().await.unwrap();
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("brisk_auth_failures_total "))
            .unwrap();
        assert_eq!(failures, "8", "{metrics}");
    }

    async fn roles_grant_resources_and_methods(backend: Backend) {
        let clerk = key("clerk", "clerk", "");
        let snippet = format!(
            "{}{JWT}\n[roles.anonymous]\nread = [\"products\"]\n[roles.clerk]\nread = [\"*\"]\nwrite = [\"products:PATCH\", \"users\"]\n",
            clerk.toml
        );
        let fx = Fixture::writable(backend, "roles", |c| access(c, &snippet)).await;
        // anonymous: products only, no writes
        assert_eq!(fx.get("/v1/products/1").await.status(), 200);
        let body = problem(fx.get("/v1/users/1").await, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("may not read users"), "{body}");
        assert_eq!(problem(fx.get("/v1/products?include=nothing").await, 400).await["type"], "https://brisk.dev/problems/unknown-relation");
        let write = fx.send("PATCH", "/v1/products/1", r#"{"name":"x"}"#, &[]).await;
        assert_eq!(problem(write, 403).await["type"], "https://brisk.dev/problems/forbidden");
        // embeds reach only readable resources: orders are not anonymous's
        let embed = problem(fx.get("/v1/products/1?include=order_items").await, 400).await;
        assert_eq!(embed["type"], "https://brisk.dev/problems/unknown-relation", "{embed}");
        // the clerk: PATCH on products, every method on users, nothing on orders
        let auth = bearer(&clerk.key);
        let as_clerk = [(auth.0, auth.1.as_str())];
        let patched = fx.send("PATCH", "/v1/products/1", r#"{"name":"Renamed"}"#, &as_clerk).await;
        assert_eq!(patched.status(), 200);
        let deleted = fx.send("DELETE", "/v1/products/2", "", &as_clerk).await;
        let body = problem(deleted, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("may not DELETE products"), "{body}");
        let posted = fx.send("POST", "/v1/orders", "{}", &as_clerk).await;
        assert_eq!(posted.status(), 403);
        // a token naming a role that is not configured
        let stranger = token(json!({"sub": "9", "app": {"role": "admin"}, "exp": now() + 60}));
        let body = problem(get_as(&fx, "/v1/products/1", &stranger).await, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("'admin'"), "{body}");
        // each role's OpenAPI document says what it may do
        let anonymous: Value = fx.json("/v1/openapi.json", 200).await;
        assert!(anonymous["paths"]["/v1/products"].is_object());
        assert!(anonymous["paths"]["/v1/users"].is_null(), "users are not anonymous's");
        assert!(anonymous["paths"]["/v1/products/{id}"]["patch"].is_null());
        let clerks: Value = get_as(&fx, "/v1/openapi.json", &clerk.key).await.json().await.unwrap();
        assert!(clerks["paths"]["/v1/products/{id}"]["patch"].is_object());
        assert!(clerks["paths"]["/v1/products/{id}"]["delete"].is_null());
        assert!(clerks["paths"]["/v1/users/{id}"]["delete"].is_object());
        assert!(clerks["paths"]["/v1/orders"]["post"].is_null());
        assert!(clerks["components"]["securitySchemes"]["bearer"].is_object());
        assert!(clerks["paths"]["/v1/users"]["get"]["responses"]["429"].is_object());
        // every route may be refused for its length; only the API's for access
        let healthz = &clerks["paths"]["/healthz"]["get"]["responses"];
        assert!(healthz["414"].is_object() && healthz["401"].is_null(), "{healthz}");
        assert!(clerks["paths"]["/v1/users"]["get"]["responses"]["414"].is_object());
    }

    async fn a_hidden_column_never_leaks(backend: Backend) {
        let support = key("support", "support", "");
        let snippet = format!(
            "{}\n[roles.support]\n[roles.support.resources.users]\nhidden_columns = [\"email\"]\n",
            support.key_toml()
        );
        let fx = Fixture::configured(backend, |c| access(c, &snippet)).await;
        let as_support = |path: &'static str| {
            let fx = &fx;
            let key = support.key.clone();
            async move { get_as(fx, path, &key).await }
        };
        // every way to read, filter, sort or embed it
        for path in [
            "/v1/users?limit=3",
            "/v1/users/1",
            "/v1/orders/1/user",
            "/v1/orders?limit=3&include=user",
            "/v1/order_items?limit=2&include=order.user",
        ] {
            let response = as_support(path).await;
            assert_eq!(response.status(), 200, "{path}");
            let text = response.text().await.unwrap();
            assert!(!text.contains("\"email\""), "{path} leaks email: {text}");
            assert!(!text.contains("@"), "{path} leaks an address: {text}");
        }
        for (path, parameter) in [
            ("/v1/users?fields=name,email", "fields"),
            ("/v1/users?email=a@example.com", "email"),
            ("/v1/users?email[like]=*a*", "email[like]"),
            ("/v1/users?sort=email", "sort"),
            ("/v1/orders?include=user&fields=user.email", "fields"),
            ("/v1/users/1?fields=email", "fields"),
        ] {
            let body = problem(as_support(path).await, 400).await;
            assert_eq!(body["errors"][0]["parameter"], parameter, "{path}: {body}");
        }
        // no hint names it either
        let body = problem(as_support("/v1/users?sort=emai").await, 400).await;
        assert!(!body.to_string().contains("email"), "{body}");
        let body = problem(as_support("/v1/users?fields=emial").await, 400).await;
        assert!(!body.to_string().contains("email"), "{body}");
        let document: Value = as_support("/v1/openapi.json").await.json().await.unwrap();
        let users = &document["components"]["schemas"]["users"]["properties"];
        assert!(users["name"].is_object() && users["email"].is_null(), "{users}");
        assert!(!document.to_string().contains("\"email\""));
        // anonymous still sees it: the rule is the role's
        let anonymous = fx.json("/v1/users/1", 200).await;
        assert!(anonymous["data"]["email"].is_string());
    }

    async fn roles_never_see_each_others_cached_answers(backend: Backend) {
        let support = key("support", "support", "");
        let snippet = format!(
            "{}\n[roles.support]\n[roles.support.resources.users]\nhidden_columns = [\"email\"]\n",
            support.key_toml()
        );
        let fx = Fixture::configured(backend, |c| access(c, &snippet)).await;
        for round in 0..2 {
            for path in ["/v1/users/3", "/v1/users?limit=2", "/v1/orders/3?include=user"] {
                // the restricted role first, so its entry is the one in the cache
                let restricted = get_as(&fx, path, &support.key).await;
                let restricted_tag = header(&restricted, "etag").unwrap();
                let vary = restricted.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>().join(", ");
                assert!(vary.contains("authorization") && vary.contains("x-api-key"), "{vary}");
                assert!(header(&restricted, "cache-control").unwrap().starts_with("private"), "answers to credentials are private");
                if round == 1 {
                    assert_eq!(cache_status(&restricted), "hit", "{path}");
                }
                let restricted = restricted.text().await.unwrap();
                let open = fx.get(path).await;
                assert!(!header(&open, "cache-control").unwrap().contains("private"));
                assert_ne!(header(&open, "etag").unwrap(), restricted_tag, "{path}: different bytes, different tags");
                let open = open.text().await.unwrap();
                assert!(!restricted.contains("\"email\"") && open.contains("\"email\""), "{path}");
                // a 304 for one role's tag is not given to the other
                let revalidated = fx.get_with(path, &[("if-none-match", &restricted_tag)]).await;
                assert_eq!(revalidated.status(), 200, "{path}");
            }
        }
    }

    async fn row_rules_hold_on_reads_embeds_counts_and_writes(backend: Backend) {
        let alice = key("alice", "customer", "sub = 5");
        let nobody = key("nobody", "customer", "");
        let snippet = format!(
            "{}{}{JWT}\n[roles.customer]\nwrite = [\"orders\"]\n[roles.customer.resources.orders]\nrows = \"user_id=claims.sub\"\n",
            alice.toml, nobody.toml
        );
        let fx = Fixture::writable(backend, "rows", |c| access(c, &snippet)).await;
        let own: Vec<Value> = fx.sql_column("SELECT id FROM orders WHERE user_id = 5 ORDER BY id").await;
        assert!(!own.is_empty());
        let others = fx.sql_column("SELECT id FROM orders WHERE user_id <> 5 ORDER BY id LIMIT 1").await;
        let other = others[0].as_i64().unwrap();
        let as_alice = |path: String| {
            let fx = &fx;
            let key = alice.key.clone();
            async move { get_as(fx, &path, &key).await }
        };
        // the collection, its count and every page hold alice's rows only
        let page: Value = as_alice("/v1/orders?limit=1000&count=exact".into()).await.json().await.unwrap();
        let ids: Vec<Value> = page["data"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, own);
        assert_eq!(page["meta"]["total"], own.len());
        // another user's order does not exist for her, by key or nested route
        assert_eq!(as_alice(format!("/v1/orders/{other}")).await.status(), 404);
        let theirs: Value = as_alice("/v1/users/6/orders".into()).await.json().await.unwrap();
        assert_eq!(theirs["data"], json!([]));
        // embeds: users with their orders show hers only
        let users: Value = as_alice("/v1/users?id[in]=5,6&include=orders&sort=id".into()).await.json().await.unwrap();
        let embedded: Vec<usize> = users["data"].as_array().unwrap().iter().map(|u| u["orders"].as_array().unwrap().len()).collect();
        assert_eq!(embedded, [own.len(), 0]);
        let items: Value = as_alice(format!("/v1/order_items?order_id={other}&include=order")).await.json().await.unwrap();
        for item in items["data"].as_array().unwrap() {
            assert!(item["order"].is_null(), "{item}");
        }
        // writes: only her rows, and only rows that stay hers
        let auth = bearer(&alice.key);
        let headers = [(auth.0, auth.1.as_str())];
        let theirs = fx.send("PATCH", &format!("/v1/orders/{other}"), r#"{"status":"cancelled"}"#, &headers).await;
        assert_eq!(theirs.status(), 404);
        let gone = fx.send("DELETE", &format!("/v1/orders/{other}"), "", &headers).await;
        assert_eq!(gone.status(), 404);
        let order = |user: i64| format!(r#"{{"user_id":{user},"status":"pending","total":1.5,"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}}"#);
        let foreign = fx.send("POST", "/v1/orders", &order(6), &headers).await;
        let body = problem(foreign, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("row rule"), "{body}");
        let many = fx.send("POST", "/v1/orders", &format!("[{},{}]", order(5), order(6)), &headers).await;
        let body = problem(many, 403).await;
        assert_eq!(body["errors"][0]["pointer"], "/1", "{body}");
        let created = fx.send("POST", "/v1/orders", &order(5), &headers).await;
        assert_eq!(created.status(), 201);
        let id = created.json::<Value>().await.unwrap()["data"]["id"].as_i64().unwrap();
        let moved = fx.send("PATCH", &format!("/v1/orders/{id}"), r#"{"user_id":6}"#, &headers).await;
        assert_eq!(moved.status(), 403, "a row may not be moved out of the rule");
        let count = |sql: String| {
            let fx = &fx;
            async move { fx.sql_column(&sql).await.len() }
        };
        assert_eq!(count("SELECT id FROM orders WHERE user_id = 6 AND total = 1.5 AND status = 'pending'".into()).await, 0, "nothing of the refused writes was stored");
        assert_eq!(count(format!("SELECT id FROM orders WHERE id = {id} AND user_id = 5")).await, 1);
        // a token's claim works as a key's does; a missing claim is refused
        let jwt = token(json!({"sub": 5, "app": {"role": "customer"}, "exp": now() + 600}));
        let page: Value = get_as(&fx, "/v1/orders?limit=1000", &jwt).await.json().await.unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), own.len() + 1);
        let body = problem(get_as(&fx, "/v1/orders", &nobody.key).await, 403).await;
        assert!(body["detail"].as_str().unwrap().contains("claim 'sub'"), "{body}");
        // other resources are not limited by the orders rule
        assert_eq!(get_as(&fx, "/v1/users/6", &alice.key).await.status(), 200);
    }

    async fn without_access_settings_brisk_is_open(backend: Backend) {
        let fx = Fixture::writable(backend, "open", |_| {}).await;
        let any_key = fx.get_with("/v1/users/1", &[("authorization", "Bearer whatever")]).await;
        assert_eq!(any_key.status(), 200, "credentials are not looked at");
        assert!(header(&any_key, "vary").unwrap() == "accept-encoding");
        let patched = fx.send("PATCH", "/v1/users/1", r#"{"name":"Open"}"#, &[]).await;
        assert_eq!(patched.status(), 200, "writes = true opens writes to anyone");
        let document: Value = fx.json("/v1/openapi.json", 200).await;
        assert_eq!(document["components"]["securitySchemes"], json!({}));
    }
}

impl Key {
    /// Only the key's lines (the role section is the test's).
    fn key_toml(&self) -> &str {
        &self.toml
    }
}
