//! Column types beyond the demo's, compared with what SQL itself says:
//! PostgreSQL's own JSON rendering (`to_jsonb`) for reads, and the stored
//! values for writes.

use crate::support::*;
use serde_json::{Value, json};

const POSTGRES_TYPES: &str = r#"
    CREATE DOMAIN positive AS int CHECK (VALUE > 0);
    CREATE TABLE kinds (
      id serial PRIMARY KEY,
      i2 smallint, i8 bigint, f4 real, f8 double precision, n numeric(10,2), b boolean,
      c char(3), u uuid, bin bytea, d date, tm time, ts timestamp, tstz timestamptz,
      iv interval, j jsonb, pos positive, r int4range, tv tsvector, ip inet,
      doubled int GENERATED ALWAYS AS (i2 * 2) STORED,
      serial_no int GENERATED ALWAYS AS IDENTITY
    );
    INSERT INTO kinds (i2, i8, f4, f8, n, b, c, u, bin, d, tm, ts, tstz, iv, j, pos, r, tv, ip) VALUES
      (1, 9007199254740993, 1.5, 'NaN', 1.25, true, 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '\x0001ff', '2024-01-02', '10:11:12.5', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+00',
       '1 day 02:03:04', '{"a": {"b": [1, 2]}}', 5, '[1,5)', to_tsvector('english', 'quick brown foxes'),
       '10.0.0.1'),
      (2, -1, '-Infinity', 'Infinity', -3.5, false, 'x', NULL, '', '2024-12-31', '23:59:59', NULL,
       '2024-06-01 12:00:00-05', '-1 mon', '[1, "two", null]', 1, 'empty', NULL, NULL),
      (3, 0, 0, -0.25, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null', NULL, NULL, NULL, NULL);
"#;

/// Every row as PostgreSQL renders it to JSON, bytea as base64 (brisk's
/// documented form; PostgreSQL's own is hex).
const AS_SQL_RENDERS: &str = r#"
    SELECT (jsonb_agg(to_jsonb(k) || jsonb_build_object('bin', translate(encode(bin, 'base64'), E'\n', ''))
            ORDER BY id))::text
    FROM kinds k"#;

async fn postgres_kinds(tag: &'static str) -> Option<Fixture> {
    let url = tokio::task::spawn_blocking(move || throwaway_postgres(tag))
        .await
        .unwrap()?;
    execute(Backend::Postgres, &url, POSTGRES_TYPES).await;
    Some(Fixture::serve(Backend::Postgres, &url, |c| c.writes = true).await)
}

/// Numbers compared by value: `0` and `0.0` are one number.
fn by_value(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 && !n.is_i64() && !n.is_u64() => {
                json!(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(by_value).collect()),
        Value::Object(fields) => fields.into_iter().map(|(k, v)| (k, by_value(v))).collect(),
        other => other,
    }
}

async fn sql_json(fx: &Fixture, query: &str) -> Value {
    let text = fx.sql_column(query).await;
    serde_json::from_str(text[0].as_str().expect("SQL gives JSON text")).unwrap()
}

#[tokio::test]
async fn postgres_types_read_as_sql_renders_them() {
    let Some(fx) = postgres_kinds("kinds_read").await else {
        skipped("PostgreSQL column types");
        return;
    };
    let served = fx.data("/v1/kinds?sort=id").await;
    let want = sql_json(&fx, AS_SQL_RENDERS).await;
    assert_eq!(by_value(Value::Array(served.clone())), by_value(want));
    // the values JSON numbers cannot hold travel as PostgreSQL spells them
    assert_eq!(served[0]["f8"], "NaN");
    assert_eq!(served[1]["f4"], "-Infinity");
    assert_eq!(served[0]["bin"], "AAH/");

    // filters find what SQL finds, on the same values
    let ids = |rows: Vec<Value>| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    for (query, condition) in [
        ("f8=NaN", "f8 = 'NaN'"),
        ("f8[gt]=1e300", "f8 > 1e300"),
        ("f4[lt]=0", "f4 < 0"),
        ("iv[gt]=1%20hour", "iv > '1 hour'"),
        ("r=empty", "r = 'empty'"),
        ("ip=10.0.0.1", "ip = '10.0.0.1'"),
        ("tm[gte]=12:00", "tm >= '12:00'"),
        // an offset PostgreSQL cannot read (beyond ±15:59), as the same instant
        (
            "tstz[lte]=2024-01-02T23:04:05%2B20:00",
            "tstz <= '2024-01-02 03:04:05+00'",
        ),
        // 1.0 is the integer 1
        ("i2=1.0", "i2 = 1"),
    ] {
        let want = fx
            .sql_column(&format!(
                "SELECT id FROM kinds WHERE {condition} ORDER BY id"
            ))
            .await;
        assert!(!want.is_empty(), "{query} finds rows in SQL");
        assert_eq!(
            ids(fx.data(&format!("/v1/kinds?{query}&sort=id")).await),
            want,
            "{query}"
        );
    }
    // sorting over NaN and the infinities pages on by cursor
    let first = fx
        .json("/v1/kinds?sort=-f8&limit=1&fields=id,f8", 200)
        .await;
    assert_eq!(first["data"][0]["f8"], "NaN", "NaN sorts above all");
    let next = first["links"]["next"].as_str().unwrap().to_string();
    let second = fx.json(&next, 200).await;
    assert_eq!(second["data"][0]["f8"], "Infinity");

    // a value only the database can check is refused naming the parameter
    let problem = fx.json("/v1/kinds?iv=soon", 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "iv[eq]", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("interval"),
        "{problem}"
    );
}

#[tokio::test]
async fn postgres_types_write_as_they_read() {
    let Some(fx) = postgres_kinds("kinds_write").await else {
        skipped("PostgreSQL column types");
        return;
    };
    let created = fx
        .send(
            "POST",
            "/v1/kinds",
            r#"{"i2": 7.0, "f8": "-Infinity", "f4": "NaN", "bin": "3q2+7w==", "iv": "3 days",
                "r": "[3,4]", "tv": "a b", "tm": "01:02:03", "pos": 2, "j": {"k": [true]}}"#,
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    let id = body["data"]["id"].as_i64().unwrap();
    let stored = fx
        .sql(&format!(
            "SELECT f8::text AS f8, f4::text AS f4, encode(bin, 'hex') AS bin, iv::text AS iv,
                    r::text AS r, doubled, j::text AS j FROM kinds WHERE id = {id}"
        ))
        .await;
    assert_eq!(
        Value::Object(stored[0].clone()),
        json!({"f8": "-Infinity", "f4": "NaN", "bin": "deadbeef", "iv": "3 days",
               "r": "[3,5)", "doubled": 14, "j": "{\"k\": [true]}"})
    );
    // the answer to the write is what a read gives
    assert_eq!(
        body["data"],
        fx.json(&format!("/v1/kinds/{id}"), 200).await["data"]
    );

    for (body, pointer, says) in [
        (r#"{"bin": "not base64!"}"#, "/bin", "base64"),
        (r#"{"f8": "nan"}"#, "/f8", "NaN"),
        (r#"{"iv": "soon"}"#, "/iv", "interval"),
        (r#"{"doubled": 3}"#, "/doubled", "generated"),
        (r#"{"serial_no": 3}"#, "/serial_no", "generated"),
        (r#"[{"ip": "10.0.0.2"}, {"ip": "nope"}]"#, "/1/ip", "inet"),
    ] {
        let refused = fx.send("POST", "/v1/kinds", body, &[]).await;
        assert_eq!(refused.status(), 422, "{body}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{says}: {problem}"
        );
    }
    // a domain's check is the database's to answer: 422, not 500
    let refused = fx.send("POST", "/v1/kinds", r#"{"pos": -1}"#, &[]).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        fx.sql_column("SELECT count(*)::int FROM kinds").await,
        vec![json!(4)],
        "refused writes left nothing behind"
    );

    let document = fx.json("/v1/openapi.json", 200).await;
    let properties = &document["components"]["schemas"]["kinds"]["properties"];
    assert_eq!(properties["doubled"]["readOnly"], true, "{properties}");
    assert_eq!(properties["serial_no"]["readOnly"], true, "{properties}");
    assert_eq!(properties["bin"]["contentEncoding"], "base64");
    assert_eq!(properties["iv"]["type"], json!(["string", "null"]));
    assert!(
        properties["f8"]["anyOf"]
            .to_string()
            .contains("\"Infinity\""),
        "{properties}"
    );
    let input = &document["components"]["schemas"]["kinds_input"]["properties"];
    assert!(
        input.get("doubled").is_none() && input.get("bin").is_some(),
        "{input}"
    );
}

#[tokio::test]
async fn sqlite_blobs_are_base64_both_ways() {
    let path = temp_sqlite("blobs");
    execute(
        Backend::Sqlite,
        &path,
        "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT NOT NULL, content BLOB);
         INSERT INTO files (name, content) VALUES ('a', x'0001ff'), ('b', NULL);",
    )
    .await;
    let fx = Fixture::serve(Backend::Sqlite, &path, |c| c.writes = true).await;
    let rows = fx.data("/v1/files?sort=id").await;
    let want = fx
        .sql_column("SELECT iif(content IS NULL, NULL, hex(content)) FROM files ORDER BY id")
        .await;
    assert_eq!(want, vec![json!("0001FF"), Value::Null]);
    assert_eq!(rows[0]["content"], "AAH/");
    assert_eq!(rows[1]["content"], Value::Null);
    let created = fx
        .send(
            "POST",
            "/v1/files",
            r#"{"name": "c", "content": "3q2+7w=="}"#,
            &[],
        )
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        fx.sql_column("SELECT hex(content) FROM files WHERE name = 'c'")
            .await,
        vec![json!("DEADBEEF")]
    );
    let refused = fx
        .send(
            "POST",
            "/v1/files",
            r#"{"name": "d", "content": "%%"}"#,
            &[],
        )
        .await;
    assert_eq!(refused.status(), 422);
    // the document lists the names the server takes, so clients send only those
    let document = fx.json("/v1/openapi.json", 200).await;
    let parameters = document["paths"]["/v1/files"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let parameter = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {parameters:?}"))
    };
    assert_eq!(
        parameter("fields")["schema"]["items"]["enum"],
        json!(["id", "name", "content"])
    );
    assert_eq!(parameter("fields")["explode"], false);
    let sort_keys = parameter("sort")["schema"]["items"]["enum"].to_string();
    assert!(sort_keys.contains("\"-name\"") && !sort_keys.contains("content"));
    assert!(
        parameters.iter().all(|p| p["name"] != "include"),
        "no relations, no include"
    );
    let update = &document["components"]["schemas"]["files_update"]["properties"];
    assert!(
        update.get("id").is_none() && update.get("name").is_some(),
        "{update}"
    );
}

#[tokio::test]
async fn postgres_full_text_search_finds_what_sql_finds() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("fts"))
        .await
        .unwrap()
    else {
        skipped("PostgreSQL full-text search");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        "SET default_text_search_config = 'pg_catalog.english';
         CREATE TABLE posts (id serial PRIMARY KEY, title text NOT NULL, search tsvector);
         INSERT INTO posts (title) VALUES ('The quick brown foxes'), ('Lazy dogs sleep'),
           ('A fox and a dog'), ('Brown bread recipes'), ('quick, quick!');
         UPDATE posts SET search = to_tsvector(title);",
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |_| {}).await;
    let ids = |rows: Vec<Value>| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    for (query, condition) in [
        ("search[fts]=fox", "search @@ websearch_to_tsquery('fox')"),
        (
            "search[fts]=quick%20fox",
            "search @@ websearch_to_tsquery('quick fox')",
        ),
        (
            "search[fts]=fox%20or%20bread",
            "search @@ websearch_to_tsquery('fox or bread')",
        ),
        (
            "search[fts]=%22brown%20foxes%22",
            "search @@ websearch_to_tsquery('\"brown foxes\"')",
        ),
        (
            "search[fts]=dog%20-lazy",
            "search @@ websearch_to_tsquery('dog -lazy')",
        ),
        (
            "title[fts]=dogs",
            "to_tsvector(title) @@ websearch_to_tsquery('dogs')",
        ),
    ] {
        let want = fx
            .sql_column(&format!(
                "SELECT id FROM posts WHERE {condition} ORDER BY id"
            ))
            .await;
        assert!(!want.is_empty(), "{query} finds rows in SQL");
        assert_eq!(
            ids(fx.data(&format!("/v1/posts?{query}&sort=id")).await),
            want,
            "{query}"
        );
    }
    // websearch syntax never errors, whatever the input
    fx.json("/v1/posts?search[fts]=%22%22%20or%20-%20%26%7C!(", 200)
        .await;
    let problem = fx.json("/v1/posts?search[fts]=%20", 400).await;
    assert_eq!(
        problem["errors"][0]["parameter"], "search[fts]",
        "{problem}"
    );
    fx.json("/v1/posts?id[fts]=1", 400).await;
    let document = fx.json("/v1/openapi.json", 200).await;
    let parameters = document["paths"]["/v1/posts"]["get"]["parameters"].to_string();
    assert!(parameters.contains("search[fts]") && parameters.contains("title[fts]"));
    assert!(!parameters.contains("id[fts]"));
}

#[tokio::test]
async fn sqlite_fts5_tables_are_searchable() {
    let path = temp_sqlite("fts5");
    execute(
        Backend::Sqlite,
        &path,
        "CREATE VIRTUAL TABLE notes USING fts5(title, body);
         INSERT INTO notes (title, body) VALUES ('quick fox', 'the lazy dog'),
           ('slow cat', 'a quick \"brown\" cow'), ('brown bread', 'recipes'), ('AND', 'NOT OR');
         CREATE TABLE plain (id INTEGER PRIMARY KEY, words TEXT);",
    )
    .await;
    let fx = Fixture::serve(Backend::Sqlite, &path, |_| {}).await;
    let titles = |rows: Vec<Value>| rows.iter().map(|r| r["title"].clone()).collect::<Vec<_>>();
    for (query, words) in [
        ("body[fts]=quick", "\"quick\""),
        ("title[fts]=brown", "\"brown\""),
        ("body[fts]=brown%20cow", "\"brown\" \"cow\""),
        ("body[fts]=%22lazy%20dog%22", "\"lazy dog\""),
        ("title[fts]=AND", "\"AND\""),
    ] {
        let column = query.split('[').next().unwrap();
        let want = fx
            .sql_column(&format!(
                "SELECT title FROM notes WHERE {column} MATCH '{}' ORDER BY title",
                words.replace('\'', "''")
            ))
            .await;
        assert!(!want.is_empty(), "{query} finds rows in SQL");
        assert_eq!(
            titles(fx.data(&format!("/v1/notes?{query}&sort=title")).await),
            want,
            "{query}"
        );
    }
    // FTS5 syntax in the input is taken literally, never a 500
    for hostile in ["AND(", "%22", "col%3Aterm*", "NEAR(a%20b)", "%5E"] {
        fx.json(&format!("/v1/notes?body[fts]={hostile}"), 200)
            .await;
    }
    fx.json("/v1/plain?words[fts]=x", 400).await;
    // FTS5's own storage tables are not resources
    let document = fx.json("/v1/openapi.json", 200).await;
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    assert!(
        !paths.iter().any(|p| p.contains("notes_")),
        "shadow tables served: {paths:?}"
    );
}

/// Documents for the key-path filters, the same on both databases.
const DOCUMENTS: &str = r#"
    INSERT INTO docs (meta) VALUES
      ('{"color": "red", "size": 10, "tags": ["a", "b"], "ok": true}'),
      ('{"color": "blue", "size": 9.5, "ok": false, "code": "12"}'),
      ('{"color": null, "size": "big"}'),
      ('[1, 2]'),
      (NULL);
"#;

/// `column->key` filters against the same question asked in SQL.
async fn key_paths_find_what_sql_finds(fx: &Fixture, conditions: &[(&str, &str)]) {
    let ids = |rows: Vec<Value>| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    for (query, condition) in conditions {
        let want = fx
            .sql_column(&format!(
                "SELECT id FROM docs WHERE {condition} ORDER BY id"
            ))
            .await;
        assert!(!want.is_empty(), "{query} finds rows in SQL");
        // `>` travels percent-encoded, as clients encode it
        let url = format!("/v1/docs?{}&sort=id", query.replace('>', "%3E"));
        assert_eq!(ids(fx.data(&url).await), want, "{query}");
    }
    let problem = fx.json("/v1/docs?meta-%3Ecolor[like]=r*", 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "meta->color[like]");
    fx.json("/v1/docs?id-%3Ex=1", 400).await;
    fx.json("/v1/docs?meta-%3E%22=1", 400).await;
}

#[tokio::test]
async fn postgres_json_key_paths_filter() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("json_paths"))
        .await
        .unwrap()
    else {
        skipped("PostgreSQL JSON key paths");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        &format!("CREATE TABLE docs (id serial PRIMARY KEY, meta jsonb); {DOCUMENTS}"),
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |_| {}).await;
    key_paths_find_what_sql_finds(
        &fx,
        &[
            ("meta->color=red", "meta #>> '{color}' = 'red'"),
            ("meta->color[ne]=red", "meta #>> '{color}' <> 'red'"),
            (
                "meta->size[gt]=9.7",
                "jsonb_typeof(meta -> 'size') = 'number' AND (meta ->> 'size')::numeric > 9.7",
            ),
            (
                "meta->size[lte]=10",
                "jsonb_typeof(meta -> 'size') = 'number' AND (meta ->> 'size')::numeric <= 10",
            ),
            ("meta->ok=true", "meta ->> 'ok' = 'true'"),
            ("meta->tags->1=b", "meta #>> '{tags,1}' = 'b'"),
            ("meta->color[null]=true", "meta #>> '{color}' IS NULL"),
            (
                "meta->color[in]=red,blue",
                "meta ->> 'color' IN ('red', 'blue')",
            ),
            ("meta->code=12", "meta ->> 'code' = '12'"),
            (
                "meta->0[gte]=1",
                "jsonb_typeof(meta #> '{0}') = 'number' AND (meta #>> '{0}')::numeric >= 1",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn sqlite_json_key_paths_filter() {
    let path = temp_sqlite("json_paths");
    execute(
        Backend::Sqlite,
        &path,
        &format!(
            "CREATE TABLE docs (id INTEGER PRIMARY KEY, meta JSON); {DOCUMENTS}
                  INSERT INTO docs (meta) VALUES ('not json');"
        ),
    )
    .await;
    let fx = Fixture::serve(Backend::Sqlite, &path, |_| {}).await;
    let valid = "json_valid(meta) AND";
    key_paths_find_what_sql_finds(
        &fx,
        &[
            ("meta->color=red", &format!("{valid} meta ->> '$.color' = 'red'")),
            ("meta->color[ne]=red", &format!("{valid} meta ->> '$.color' <> 'red'")),
            ("meta->size[gt]=9.7", &format!("{valid} json_type(meta, '$.size') IN ('integer', 'real') AND meta ->> '$.size' > 9.7")),
            ("meta->size[lte]=10", &format!("{valid} json_type(meta, '$.size') IN ('integer', 'real') AND meta ->> '$.size' <= 10")),
            ("meta->ok=true", &format!("{valid} json_type(meta, '$.ok') = 'true'")),
            ("meta->tags->1=b", &format!("{valid} meta ->> '$.tags[1]' = 'b'")),
            ("meta->color[null]=true", &format!("NOT ({valid} meta ->> '$.color' IS NOT NULL)")),
            ("meta->color[in]=red,blue", &format!("{valid} meta ->> '$.color' IN ('red', 'blue')")),
            ("meta->code=12", &format!("{valid} meta ->> '$.code' = '12'")),
            ("meta->0[gte]=1", &format!("{valid} json_type(meta, '$[0]') = 'integer' AND meta ->> '$[0]' >= 1")),
        ],
    )
    .await;
}

/// Range columns (int4range, numrange, daterange, tstzrange, a multirange):
/// every range operator finds the rows SQL's own operator finds, `cs` takes
/// one element too, and a literal PostgreSQL cannot read is a 400 naming
/// the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_range_operators_find_what_sql_finds() {
    let Some(url) = tokio::task::spawn_blocking(|| throwaway_postgres("ranges"))
        .await
        .unwrap()
    else {
        skipped("PostgreSQL ranges");
        return;
    };
    execute(
        Backend::Postgres,
        &url,
        r#"CREATE TABLE bookings (id serial PRIMARY KEY, seats int4range, price numrange,
               days daterange, slot tstzrange, spans int4multirange);
           INSERT INTO bookings (seats, price, days, slot, spans) VALUES
             ('[1,5)', '[10.5,20]', '[2024-01-01,2024-01-10)', '[2024-01-01 10:00+00,2024-01-01 12:00+00)', '{[1,3),[7,9)}'),
             ('[5,9)', '(20,30)', '[2024-01-10,2024-01-20)', '[2024-01-01 12:00+00,2024-01-01 14:00+00)', '{[2,4)}'),
             ('[3,4]', 'empty', '[2024-02-01,)', '(,2024-01-01 09:00+00]', '{}'),
             (NULL, NULL, NULL, NULL, NULL);"#,
    )
    .await;
    let fx = Fixture::serve(Backend::Postgres, &url, |_| {}).await;
    let first = fx.json("/v1/bookings/1", 200).await;
    assert_eq!(first["data"]["seats"], "[1,5)");
    assert_eq!(first["data"]["spans"], "{[1,3),[7,9)}");
    // %2B: a plus sign in a query is a space
    let cases = [
        ("seats", "cs", "4", "seats @> 4"),
        ("seats", "cs", "[2,3]", "seats @> '[2,3]'::int4range"),
        ("seats", "cd", "[0,6)", "seats <@ '[0,6)'::int4range"),
        ("seats", "ov", "[4,6)", "seats && '[4,6)'::int4range"),
        ("seats", "sl", "[5,10)", "seats << '[5,10)'::int4range"),
        ("seats", "sr", "(,3)", "seats >> '(,3)'::int4range"),
        ("seats", "nxr", "[0,5)", "seats &< '[0,5)'::int4range"),
        ("seats", "nxl", "[3,10)", "seats &> '[3,10)'::int4range"),
        ("seats", "adj", "[9,12)", "seats -|- '[9,12)'::int4range"),
        ("seats", "eq", "[3,5)", "seats = '[3,5)'::int4range"),
        ("seats", "gt", "[2,3)", "seats > '[2,3)'::int4range"),
        ("price", "cs", "20", "price @> 20::numeric"),
        ("price", "ov", "empty", "price && 'empty'::numrange"),
        ("days", "cs", "2024-01-15", "days @> '2024-01-15'::date"),
        (
            "days",
            "ov",
            "[2024-01-05,2024-01-12)",
            "days && '[2024-01-05,2024-01-12)'::daterange",
        ),
        (
            "slot",
            "cs",
            "2024-01-01T11:00:00Z",
            "slot @> '2024-01-01T11:00:00Z'::timestamptz",
        ),
        (
            "slot",
            "sl",
            "[2024-01-01 12:00%2B00,)",
            "slot << '[2024-01-01 12:00+00,)'::tstzrange",
        ),
        ("spans", "cs", "8", "spans @> 8"),
        ("spans", "ov", "[3,8)", "spans && '{[3,8)}'::int4multirange"),
        (
            "spans",
            "ov",
            "{[0,1),[3,4)}",
            "spans && '{[0,1),[3,4)}'::int4multirange",
        ),
    ];
    for (column, operator, value, condition) in cases {
        let want = fx
            .sql_column(&format!(
                "SELECT id FROM bookings WHERE {condition} ORDER BY id"
            ))
            .await;
        let got: Vec<Value> = fx
            .data(&format!(
                "/v1/bookings?{column}[{operator}]={value}&sort=id"
            ))
            .await
            .iter()
            .map(|row| row["id"].clone())
            .collect();
        assert_eq!(got, want, "{column}[{operator}]={value} vs {condition}");
    }
    let bad = fx.json("/v1/bookings?seats[ov]=[1,x)", 400).await;
    assert_eq!(bad["errors"][0]["parameter"], "seats[ov]", "{bad}");
    // PostgreSQL quotes a bound out of int4's range before its message
    let beyond = fx.json("/v1/bookings?seats[ov]=[1,30000000000)", 400).await;
    assert_eq!(beyond["errors"][0]["parameter"], "seats[ov]", "{beyond}");
    assert!(
        beyond["detail"].as_str().unwrap().contains("'30000000000'"),
        "{beyond}"
    );
    let element = fx.json("/v1/bookings?seats[ov]=4", 400).await;
    assert!(
        element["detail"]
            .as_str()
            .unwrap()
            .contains("takes a range"),
        "{element}"
    );
    let not_a_range = fx.json("/v1/bookings?id[adj]=[1,2)", 400).await;
    assert!(
        not_a_range["detail"]
            .as_str()
            .unwrap()
            .contains("apply to ranges"),
        "{not_a_range}"
    );
    let document = fx.json("/v1/openapi.json", 200).await;
    let names: Vec<&str> = document["paths"]["/v1/bookings"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["seats[cs]", "seats[adj]", "slot[sl]", "spans[ov]"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!names.contains(&"id[adj]") && !names.contains(&"seats[like]"));
}
