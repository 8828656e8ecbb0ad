//! URL → SQL for both dialects, reviewed as text.

use super::*;
use crate::cursor::{CursorCodec, Direction};
use crate::params::QueryParams;
use crate::plan::{Limits, ReadPlan, ReadRequest, plan_read};
use crate::schema::fixtures::shop;
use expect_test::{Expect, expect};

fn render(path: &str, query: &str, dialect: Dialect) -> String {
    render_ruled(path, query, dialect, &[])
}

/// As `render`, for a caller with row rules (`(resource, rule)`) and the
/// claim `sub` = 5.
fn render_ruled(path: &str, query: &str, dialect: Dialect, rules: &[(&str, &str)]) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let params = QueryParams::parse(query).unwrap();
    let request = ReadRequest {
        resource: parts[0],
        id: parts.get(1).copied(),
        relation: parts.get(2).copied(),
        params: &params,
    };
    let mut plan = plan_read(
        &shop(),
        &request,
        &Limits::default(),
        &CursorCodec::new(vec![7]),
    )
    .unwrap();
    let mut row_rules = crate::plan::RowRules::new(Limits::default());
    for (resource, rule) in rules {
        row_rules.add(&shop(), resource, rule).unwrap();
    }
    let claims = serde_json::json!({"sub": 5});
    plan.restrict_rows(
        &row_rules
            .bind(&shop(), &|path| claims.get(path).cloned())
            .unwrap(),
    );
    let (mut statements, embeds): (Vec<Sql>, Vec<EmbedQuery>) = match &plan {
        ReadPlan::Collection(c) => {
            let sql = render_collection(c, dialect);
            let main = [Some(sql.rows), sql.count, sql.parent];
            (main.into_iter().flatten().collect(), sql.embeds)
        }
        ReadPlan::Single(s) => {
            let sql = render_single(s, dialect);
            (
                [Some(sql.rows), sql.parent].into_iter().flatten().collect(),
                sql.embeds,
            )
        }
    };
    // each embed level, for the join values 1 and 2
    fn levels(embeds: &[EmbedQuery], out: &mut Vec<Sql>) {
        for embed in embeds {
            out.push(embed.sql(&[crate::rows::Cell::Int(1), crate::rows::Cell::Int(2)], 100));
            levels(&embed.nested, out);
        }
    }
    levels(&embeds, &mut statements);
    statements
        .iter()
        .map(|s| format!("{}\n  -- {:?}", s.text, s.params))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(path: &str, query: &str, sqlite: Expect, postgres: Expect) {
    sqlite.assert_eq(&render(path, query, Dialect::Sqlite));
    postgres.assert_eq(&render(path, query, Dialect::Postgres));
}

#[test]
fn q1_first_page_with_two_fields() {
    check(
        "users",
        "page=1&limit=10&fields=name,email",
        expect![[r#"
            SELECT t0."name", t0."email", t0."id" FROM "users" t0 ORDER BY t0."id" LIMIT ?1
              -- [Integer(11)]"#]],
        expect![[r#"
            SELECT t0."name", t0."email", t0."id" FROM "users" t0 ORDER BY t0."id" LIMIT $1::"pg_catalog"."int8"
              -- [Integer(11)]"#]],
    );
}

#[test]
fn q2_filtered_sorted_page() {
    check(
        "products",
        "page=2&limit=50&category=electronics&sort=price_asc",
        expect![[r#"
            SELECT t0."id", t0."name", t0."category", t0."price", t0."stock", t0."description", t0."created_at", t0."updated_at" FROM "products" t0 WHERE t0."category" = ?1 ORDER BY t0."price", t0."id" LIMIT ?2 OFFSET ?3
              -- [Text("electronics"), Integer(51), Integer(50)]"#]],
        expect![[r#"
            SELECT t0."id", t0."name", t0."category", t0."price"::text, t0."stock", t0."description", to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "products" t0 JOIN (SELECT t1."id" FROM "products" t1 WHERE t1."category" = $1::"pg_catalog"."text" ORDER BY t1."price", t1."id" LIMIT $2::"pg_catalog"."int8" OFFSET $3::"pg_catalog"."int8") t2 ON t0."id" = t2."id" ORDER BY t0."price", t0."id"
              -- [Text("electronics"), Integer(51), Integer(50)]"#]],
    );
}

#[test]
fn q3_one_row() {
    check(
        "users/123",
        "fields=name,email,profile_picture",
        expect![[r#"
            SELECT t0."name", t0."email", t0."profile_picture" FROM "users" t0 WHERE t0."id" = ?1
              -- [Integer(123)]"#]],
        expect![[r#"
            SELECT t0."name", t0."email", t0."profile_picture" FROM "users" t0 WHERE t0."id" = $1::"pg_catalog"."int4"
              -- [Integer(123)]"#]],
    );
}

#[test]
fn q4_nested_route_with_count() {
    check(
        "users/123/orders",
        "limit=20&count=exact",
        expect![[r#"
            SELECT t0."id", t0."user_id", t0."status", t0."total", t0."created_at", t0."updated_at" FROM "orders" t0 WHERE t0."user_id" = (SELECT t1."id" FROM "users" t1 WHERE t1."id" = ?1) ORDER BY t0."id" LIMIT ?2
              -- [Integer(123), Integer(21)]
            SELECT count(*) FROM "orders" t0 WHERE t0."user_id" = (SELECT t1."id" FROM "users" t1 WHERE t1."id" = ?1)
              -- [Integer(123)]
            SELECT 1 FROM "users" t0 WHERE t0."id" = ?1
              -- [Integer(123)]"#]],
        expect![[r#"
            SELECT t0."id", t0."user_id", t0."status", t0."total"::text, to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "orders" t0 WHERE t0."user_id" = (SELECT t1."id" FROM "users" t1 WHERE t1."id" = $1::"pg_catalog"."int4") ORDER BY t0."id" LIMIT $2::"pg_catalog"."int8"
              -- [Integer(123), Integer(21)]
            SELECT count(*) FROM "orders" t0 WHERE t0."user_id" = (SELECT t1."id" FROM "users" t1 WHERE t1."id" = $1::"pg_catalog"."int4")
              -- [Integer(123)]
            SELECT 1 FROM "users" t0 WHERE t0."id" = $1::"pg_catalog"."int4"
              -- [Integer(123)]"#]],
    );
}

#[test]
fn q5_embeds_one_statement_per_level() {
    check(
        "orders",
        "limit=50&include=user,order_items.product&fields=id,user.name,order_items.product.name",
        expect![[r#"
            SELECT t0."id", t0."user_id" FROM "orders" t0 ORDER BY t0."id" LIMIT ?1
              -- [Integer(51)]
            SELECT t0."name", t0."id" FROM "users" t0 WHERE t0."id" IN (SELECT value FROM json_each(?1)) LIMIT ?2
              -- [Text("[1,2]"), Integer(100)]
            SELECT t0."id", t0."order_id", t0."product_id", t0."quantity", t0."unit_price" FROM "order_items" t0 WHERE t0."order_id" IN (SELECT value FROM json_each(?1)) ORDER BY t0."id" LIMIT ?2
              -- [Text("[1,2]"), Integer(100)]
            SELECT t0."name", t0."id" FROM "products" t0 WHERE t0."id" IN (SELECT value FROM json_each(?1)) LIMIT ?2
              -- [Text("[1,2]"), Integer(100)]"#]],
        expect![[r#"
            SELECT t0."id", t0."user_id" FROM "orders" t0 ORDER BY t0."id" LIMIT $1::"pg_catalog"."int8"
              -- [Integer(51)]
            SELECT t0."name", t0."id" FROM "users" t0 WHERE t0."id" = ANY(ARRAY(SELECT unnest($1::"pg_catalog"."int4"[]))) LIMIT $2::"pg_catalog"."int8"
              -- [Text("{\"1\",\"2\"}"), Integer(100)]
            SELECT t0."id", t0."order_id", t0."product_id", t0."quantity", t0."unit_price"::text FROM "order_items" t0 WHERE t0."order_id" = ANY(ARRAY(SELECT unnest($1::"pg_catalog"."int4"[]))) ORDER BY t0."id" LIMIT $2::"pg_catalog"."int8"
              -- [Text("{\"1\",\"2\"}"), Integer(100)]
            SELECT t0."name", t0."id" FROM "products" t0 WHERE t0."id" = ANY(ARRAY(SELECT unnest($1::"pg_catalog"."int4"[]))) LIMIT $2::"pg_catalog"."int8"
              -- [Text("{\"1\",\"2\"}"), Integer(100)]"#]],
    );
}

#[test]
fn to_one_nested_route() {
    check(
        "orders/5/user",
        "fields=name",
        expect![[r#"
            SELECT t0."name" FROM "users" t0 WHERE t0."id" = (SELECT t1."user_id" FROM "orders" t1 WHERE t1."id" = ?1)
              -- [Integer(5)]
            SELECT 1 FROM "orders" t0 WHERE t0."id" = ?1
              -- [Integer(5)]"#]],
        expect![[r#"
            SELECT t0."name" FROM "users" t0 WHERE t0."id" = (SELECT t1."user_id" FROM "orders" t1 WHERE t1."id" = $1::"pg_catalog"."int4")
              -- [Integer(5)]
            SELECT 1 FROM "orders" t0 WHERE t0."id" = $1::"pg_catalog"."int4"
              -- [Integer(5)]"#]],
    );
}

#[test]
fn every_filter_operator() {
    check(
        "users",
        "id[ne]=1&id[gt]=2&id[lte]=9&country[in]=DE,FR&country[nin]=\"A,B\"&name[like]=Ad*&email[ilike]=%25X%25&profile_picture[null]=true&profile_picture[null]=false",
        expect![[r#"
            SELECT t0."id", t0."name", t0."email", t0."profile_picture", t0."country", t0."created_at", t0."updated_at" FROM "users" t0 WHERE t0."id" <> ?1 AND t0."id" > ?2 AND t0."id" <= ?3 AND t0."country" IN (?4, ?5) AND t0."country" NOT IN (?6) AND t0."name" GLOB ?7 AND t0."email" LIKE ?8 ESCAPE '\' AND t0."profile_picture" IS NULL AND t0."profile_picture" IS NOT NULL ORDER BY t0."id" LIMIT ?9
              -- [Integer(1), Integer(2), Integer(9), Text("DE"), Text("FR"), Text("A,B"), Text("Ad*"), Text("%X%"), Integer(21)]"#]],
        expect![[r#"
            SELECT t0."id", t0."name", t0."email", t0."profile_picture", t0."country", to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "users" t0 WHERE t0."id" <> $1::"pg_catalog"."int4" AND t0."id" > $2::"pg_catalog"."int4" AND t0."id" <= $3::"pg_catalog"."int4" AND t0."country" IN ($4::"pg_catalog"."text", $5::"pg_catalog"."text") AND t0."country" NOT IN ($6::"pg_catalog"."text") AND t0."name" LIKE $7::"pg_catalog"."text" ESCAPE '\' AND t0."email" ILIKE $8::"pg_catalog"."text" ESCAPE '\' AND t0."profile_picture" IS NULL AND t0."profile_picture" IS NOT NULL ORDER BY t0."id" LIMIT $9::"pg_catalog"."int8"
              -- [Integer(1), Integer(2), Integer(9), Text("DE"), Text("FR"), Text("A,B"), Text("Ad%"), Text("%X%"), Integer(21)]"#]],
    );
}

#[test]
fn keyset_after_and_before_a_cursor() {
    let codec = CursorCodec::new(vec![7]);
    let params = QueryParams::parse("sort=-price").unwrap();
    let request = ReadRequest {
        resource: "products",
        id: None,
        relation: None,
        params: &params,
    };
    let ReadPlan::Collection(plan) =
        plan_read(&shop(), &request, &Limits::default(), &codec).unwrap()
    else {
        panic!()
    };
    let after = codec.encode(Direction::After, "[9.99,4]", &plan.fingerprint());
    let before = codec.encode(Direction::Before, "[9.99,4]", &plan.fingerprint());
    check(
        "products",
        &format!("sort=-price&fields=id&cursor={after}"),
        expect![[r#"
            SELECT t0."id", t0."price" FROM "products" t0 WHERE (t0."price", t0."id") < (?1, ?2) ORDER BY t0."price" DESC, t0."id" DESC LIMIT ?3
              -- [Decimal("9.99"), Integer(4), Integer(21)]"#]],
        expect![[r#"
            SELECT t0."id", t0."price"::text FROM "products" t0 WHERE (t0."price", t0."id") < ($1::"pg_catalog"."numeric", $2::"pg_catalog"."int4") ORDER BY t0."price" DESC, t0."id" DESC LIMIT $3::"pg_catalog"."int8"
              -- [Decimal("9.99"), Integer(4), Integer(21)]"#]],
    );
    check(
        "products",
        &format!("sort=-price&fields=id&cursor={before}"),
        expect![[r#"
            SELECT t0."id", t0."price" FROM "products" t0 WHERE (t0."price", t0."id") > (?1, ?2) ORDER BY t0."price", t0."id" LIMIT ?3
              -- [Decimal("9.99"), Integer(4), Integer(21)]"#]],
        expect![[r#"
            SELECT t0."id", t0."price"::text FROM "products" t0 WHERE (t0."price", t0."id") > ($1::"pg_catalog"."numeric", $2::"pg_catalog"."int4") ORDER BY t0."price", t0."id" LIMIT $3::"pg_catalog"."int8"
              -- [Decimal("9.99"), Integer(4), Integer(21)]"#]],
    );
}

#[test]
fn keyset_over_a_nullable_column_expands() {
    let codec = CursorCodec::new(vec![7]);
    let params = QueryParams::parse("sort=profile_picture").unwrap();
    let request = ReadRequest {
        resource: "users",
        id: None,
        relation: None,
        params: &params,
    };
    let ReadPlan::Collection(plan) =
        plan_read(&shop(), &request, &Limits::default(), &codec).unwrap()
    else {
        panic!()
    };
    for (keys, sqlite) in [
        (
            r#"["a.png",4]"#,
            expect![[r#"
                SELECT t0."id", t0."profile_picture" FROM "users" t0 WHERE (((t0."profile_picture" > ?1 OR t0."profile_picture" IS NULL)) OR (t0."profile_picture" = ?2 AND (t0."id" > ?3))) ORDER BY t0."profile_picture" NULLS LAST, t0."id" LIMIT ?4
                  -- [Text("a.png"), Text("a.png"), Integer(4), Integer(21)]"#]],
        ),
        (
            "[null,4]",
            expect![[r#"
                SELECT t0."id", t0."profile_picture" FROM "users" t0 WHERE ((t0."profile_picture" IS NULL AND (t0."id" > ?1))) ORDER BY t0."profile_picture" NULLS LAST, t0."id" LIMIT ?2
                  -- [Integer(4), Integer(21)]"#]],
        ),
    ] {
        let after = codec.encode(Direction::After, keys, &plan.fingerprint());
        sqlite.assert_eq(&render(
            "users",
            &format!("sort=profile_picture&fields=id&cursor={after}"),
            Dialect::Sqlite,
        ));
    }
}

#[test]
fn row_rules_reach_every_statement() {
    let rules = [("orders", "user_id=claims.sub"), ("users", "id=claims.sub")];
    let sqlite = render_ruled(
        "orders",
        "count=exact&include=user&status=paid",
        Dialect::Sqlite,
        &rules,
    );
    expect![[r#"
        SELECT t0."id", t0."user_id", t0."status", t0."total", t0."created_at", t0."updated_at" FROM "orders" t0 WHERE t0."status" = ?1 AND t0."user_id" = ?2 ORDER BY t0."id" LIMIT ?3
          -- [Text("paid"), Integer(5), Integer(21)]
        SELECT count(*) FROM "orders" t0 WHERE t0."status" = ?1 AND t0."user_id" = ?2
          -- [Text("paid"), Integer(5)]
        SELECT t0."id", t0."name", t0."email", t0."profile_picture", t0."country", t0."created_at", t0."updated_at" FROM "users" t0 WHERE t0."id" IN (SELECT value FROM json_each(?1)) AND t0."id" = ?3 LIMIT ?2
          -- [Text("[1,2]"), Integer(100), Integer(5)]"#]].assert_eq(&sqlite);
    let nested = render_ruled("users/7/orders", "", Dialect::Postgres, &rules);
    expect![[r#"
        SELECT t0."id", t0."user_id", t0."status", t0."total"::text, to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "orders" t0 WHERE t0."user_id" = (SELECT t1."id" FROM "users" t1 WHERE t1."id" = $1::"pg_catalog"."int4" AND t1."id" = $2::"pg_catalog"."int4") AND t0."user_id" = $3::"pg_catalog"."int4" ORDER BY t0."id" LIMIT $4::"pg_catalog"."int8"
          -- [Integer(7), Integer(5), Integer(5), Integer(21)]
        SELECT 1 FROM "users" t0 WHERE t0."id" = $1::"pg_catalog"."int4" AND t0."id" = $2::"pg_catalog"."int4"
          -- [Integer(7), Integer(5)]"#]].assert_eq(&nested);
    let single = render_ruled("orders/3", "include=user", Dialect::Postgres, &rules);
    expect![[r#"
        SELECT t0."id", t0."user_id", t0."status", t0."total"::text, to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "orders" t0 WHERE t0."id" = $1::"pg_catalog"."int4" AND t0."user_id" = $2::"pg_catalog"."int4"
          -- [Integer(3), Integer(5)]
        SELECT t0."id", t0."name", t0."email", t0."profile_picture", t0."country", to_json(t0."created_at")#>>'{}', to_json(t0."updated_at")#>>'{}' FROM "users" t0 WHERE t0."id" = ANY(ARRAY(SELECT unnest($1::"pg_catalog"."int4"[]))) AND t0."id" = $3::"pg_catalog"."int4" LIMIT $2::"pg_catalog"."int8"
          -- [Text("{\"1\",\"2\"}"), Integer(100), Integer(5)]"#]].assert_eq(&single);
}
