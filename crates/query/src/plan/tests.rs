use super::*;
use crate::schema::fixtures::shop;

fn plan(
    resource: &str,
    id: Option<&str>,
    relation: Option<&str>,
    query: &str,
) -> Result<ReadPlan, QueryErrors> {
    let params = QueryParams::parse(query)?;
    plan_read(
        &shop(),
        &ReadRequest {
            resource,
            id,
            relation,
            params: &params,
        },
        &Limits::default(),
        &CursorCodec::new(b"k".to_vec()),
    )
}

fn collection(resource: &str, query: &str) -> CollectionPlan {
    match plan(resource, None, None, query).unwrap() {
        ReadPlan::Collection(c) => c,
        other => panic!("{other:?}"),
    }
}

fn error_details(
    resource: &str,
    id: Option<&str>,
    relation: Option<&str>,
    query: &str,
) -> Vec<String> {
    plan(resource, id, relation, query)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| format!("{:?} {}: {}", e.kind, e.parameter, e.detail))
        .collect()
}

#[test]
fn both_sort_spellings_give_the_same_order_with_the_key_last() {
    let a = collection("products", "sort=price_asc,name_desc");
    let b = collection("products", "sort=price,-name");
    assert_eq!(a.order, b.order);
    assert_eq!(a.canonical_sort(), "price,-name,-id");
    assert_eq!(
        collection("products", "sort=-price").canonical_sort(),
        "-price,-id"
    );
    assert_eq!(collection("products", "").canonical_sort(), "id");
    assert_eq!(collection("products", "sort=-id").canonical_sort(), "-id");
}

#[test]
fn fields_and_include_build_the_tree() {
    let plan = collection(
        "orders",
        "include=user,order_items.product&fields=id,user.name,order_items.product.price",
    );
    let names = |s: &Selection| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&plan.selection), ["id"]);
    let user = &plan.selection.embeds[0];
    assert_eq!(
        (user.relation.name.as_str(), names(&user.selection)),
        ("user", vec!["name".to_string()])
    );
    let items = &plan.selection.embeds[1];
    assert_eq!(
        names(&items.selection).len(),
        5,
        "order_items not restricted"
    );
    assert_eq!(names(&items.selection.embeds[0].selection), ["price"]);
}

#[test]
fn dependencies_name_everything_an_answer_is_built_from() {
    let deps = |resource, id, relation, query| {
        let plan = plan(resource, id, relation, query).unwrap();
        let deps = plan.dependencies();
        (
            deps.tables
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            deps.rows
                .iter()
                .map(|(t, k)| (t.to_string(), k.clone()))
                .collect::<Vec<_>>(),
        )
    };
    let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(
        deps("orders", None, None, "include=user,order_items.product"),
        (s(&["order_items", "orders", "products", "users"]), vec![])
    );
    assert_eq!(
        deps("users", Some("1"), Some("orders"), ""),
        (s(&["orders"]), vec![("users".to_string(), "1".to_string())])
    );
    assert_eq!(
        deps("orders", Some("01"), Some("user"), ""),
        (s(&["users"]), vec![("orders".to_string(), "1".to_string())])
    );
    assert_eq!(
        deps("products", Some("7"), None, "include=order_items"),
        (
            s(&["order_items"]),
            vec![("products".to_string(), "7".to_string())]
        )
    );
}

#[test]
fn filters_are_typed_and_canonical() {
    let plan = collection(
        "orders",
        "status[in]=shipped,paid&total[gte]=10.5&user_id=3",
    );
    assert_eq!(
        plan.canonical_filters(),
        [
            ("status[in]".to_string(), "shipped,paid".to_string()),
            ("total[gte]".into(), "10.5".into()),
            ("user_id[eq]".into(), "3".into()),
        ]
    );
    assert_eq!(plan.filters[2].values, [SqlValue::Integer(3)]);
}

#[test]
fn explains_every_mistake() {
    expect_test::expect![[r#"
        [
            "UnknownField fields: unknown field 'emial' in users; did you mean 'email'?",
            "UnknownParameter nme: 'nme' is neither a parameter nor a column of users; did you mean 'name'?",
            "InvalidValue id[gt]: 'x' is not a valid value for id (expected integer)",
            "UnknownField sort: unknown field 'nam' in sort; did you mean 'name'?; write name, -name, name_asc or name_desc",
            "InvalidValue limit: limit must be between 1 and 1000, not 5000",
        ]
    "#]]
    .assert_debug_eq(&error_details("users", None, None, "fields=emial&nme=x&id[gt]=x&sort=nam&limit=5000"));
    expect_test::expect![[r#"
        [
            "UnknownRelation include: orders has no relation 'usr'; did you mean 'user'?",
            "UnknownRelation fields: 'order_items.id' needs the relation included: add include=order_items",
        ]
    "#]]
    .assert_debug_eq(&error_details("orders", None, None, "include=usr&fields=order_items.id"));
    expect_test::expect![[r#"
        [
            "Conflict sort: sort applies to collections, and /v1/users/1 is a single row",
            "Conflict name: name applies to collections, and /v1/users/1 is a single row",
        ]
    "#]]
    .assert_debug_eq(&error_details("users", Some("1"), None, "sort=name&name=x"));
    expect_test::expect![[r#"
        [
            "NotFound resource: there is no resource 'user'; did you mean 'users'?",
        ]
    "#]]
    .assert_debug_eq(&error_details("user", None, None, ""));
    expect_test::expect![[r#"
        [
            "NotFound relation: users has no relation 'order'; did you mean 'orders'?",
        ]
    "#]]
    .assert_debug_eq(&error_details("users", Some("1"), Some("order"), ""));
    expect_test::expect![[r#"
        [
            "InvalidValue id: 'x' is not a valid value for id (expected integer)",
        ]
    "#]]
    .assert_debug_eq(&error_details("users", Some("x"), None, ""));
    expect_test::expect![[r#"
        [
            "InvalidOperator id[like]: operator 'like' does not apply to id (integer): patterns apply to text columns only",
            "InvalidValue created_at[lt]: 'soon' is not a valid value for created_at (expected timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
            "Conflict cursor: cursor and page cannot be combined; follow links.next, or use page alone",
        ]
    "#]].assert_debug_eq(&error_details(
        "users",
        None,
        None,
        "id[like]=1&name[gt]=a&created_at[lt]=soon&page=0&cursor=abc",
    ));
    expect_test::expect![[r#"
        [
            "UnknownRelation include: users (in 'orders.user.nope') has no relation 'nope'",
            "Conflict cursor: cursor and page cannot be combined; follow links.next, or use page alone",
        ]
    "#]].assert_debug_eq(&error_details(
        "users",
        None,
        None,
        "page=2&cursor=abc&sort=-name,name&fields=orders&include=orders.user.nope",
    ));
}

#[test]
fn cursors_are_bound_to_sort_and_filters() {
    let codec = CursorCodec::new(b"k".to_vec());
    let base = collection("products", "category=books&sort=-price");
    let cursor = codec.encode(Direction::After, "[12.5,7]", &base.fingerprint());
    let params = QueryParams::parse(&format!(
        "category=books&sort=-price&cursor={cursor}&limit=5"
    ))
    .unwrap();
    let request = ReadRequest {
        resource: "products",
        id: None,
        relation: None,
        params: &params,
    };
    let ReadPlan::Collection(next) =
        plan_read(&shop(), &request, &Limits::default(), &codec).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        next.window.position,
        Position::Cursor(
            Direction::After,
            vec![SqlValue::Decimal("12.5".into()), SqlValue::Integer(7)]
        )
    );
    for other in [
        "category=toys&sort=-price",
        "category=books&sort=price",
        "category=books",
    ] {
        let params = QueryParams::parse(&format!("{other}&cursor={cursor}")).unwrap();
        let request = ReadRequest {
            resource: "products",
            id: None,
            relation: None,
            params: &params,
        };
        let errors = plan_read(&shop(), &request, &Limits::default(), &codec).unwrap_err();
        assert_eq!(errors.primary_kind(), ErrorKind::InvalidCursor, "{other}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Query strings made of the pieces the grammar uses, in any order and
    /// number, so that the fuzzer reaches deep into planning.
    fn query_string() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("fields".to_string()),
            Just("include".to_string()),
            Just("sort".to_string()),
            Just("limit".to_string()),
            Just("page".to_string()),
            Just("cursor".to_string()),
            Just("count".to_string()),
            Just("name".to_string()),
            Just("price[gte]".to_string()),
            Just("id[in]".to_string()),
            Just("status[like]".to_string()),
            Just("user.name".to_string()),
            "[a-z_\\[\\]%.]{0,12}",
        ];
        let value = prop_oneof![
            "[a-z_.,*\\-\"\\\\%0-9]{0,24}",
            Just("user.orders.user.orders".to_string()),
            Just("-price,name_desc".to_string()),
            Just("18446744073709551615".to_string()),
            Just("%ff%00".to_string()),
        ];
        proptest::collection::vec((key, value), 0..12).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any query string, on any route, is planned or refused with
        /// errors: never a panic.
        #[test]
        fn any_query_string_is_planned_or_refused(
            query in prop_oneof![query_string(), ".{0,200}"],
            route in 0usize..4,
        ) {
            let (resource, id, relation) = [
                ("products", None, None),
                ("orders", Some("5"), None),
                ("users", Some("7"), Some("orders")),
                ("orders", Some("x"), Some("user")),
            ][route];
            match plan(resource, id, relation, &query) {
                Ok(_) => {}
                Err(errors) => prop_assert!(!errors.0.is_empty()),
            }
        }
    }
}
