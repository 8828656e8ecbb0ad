//! The OpenAPI 3.1 document, generated from the live schema at start-up:
//! every route, parameter, resource schema and problem type.

use crate::error::Problem;
use brisk_query::params::Operator;
use brisk_query::schema::{Cardinality, Column, ColumnKind, Resource};
use brisk_query::write::WriteMethod;
use brisk_query::{Limits, Schema};
use serde_json::{Map, Value, json};

/// The document of what one role may do: `schema` is what it may read,
/// `may_write` which write methods it may use on which resource, and
/// `api_key_header` is set when credentials are accepted at all (then the
/// security schemes and the 401, 403 and 429 answers are described).
pub fn document(
    schema: &Schema,
    limits: &Limits,
    may_write: &dyn Fn(&str, WriteMethod) -> bool,
    api_key_header: Option<&str>,
) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for resource in schema.resources() {
        schemas.insert(resource.name.clone(), resource_schema(resource));
        let tag = json!([resource.name]);
        let mut collection = json!({ "get": {
            "operationId": format!("list_{}", resource.name),
            "summary": format!("A page of {}", resource.name),
            "tags": tag,
            "parameters": collection_parameters(schema, resource, limits),
            "responses": collection_responses(&resource.name),
        }});
        let key = RowAddress::of(resource);
        let mut row = key.as_ref().map(|key| {
            json!({ "get": {
                "operationId": format!("get_{}", resource.name),
                "summary": format!("One row of {} by {}", resource.name, key.names),
                "tags": tag,
                "parameters": row_parameters(schema, resource, key),
                "responses": single_responses(&resource.name, false),
            }})
        });
        let methods = |method| may_write(&resource.name, method);
        if [
            WriteMethod::Post,
            WriteMethod::Patch,
            WriteMethod::Put,
            WriteMethod::Delete,
        ]
        .into_iter()
        .any(methods)
        {
            let row = key.as_ref().zip(row.as_mut());
            write_operations(resource, &methods, &mut collection, row);
            schemas.insert(format!("{}_input", resource.name), input_schema(resource));
            schemas.insert(format!("{}_update", resource.name), update_schema(resource));
            schemas.insert(format!("{}_patch", resource.name), patch_schema(resource));
        }
        paths.insert(format!("/v1/{}", resource.name), collection);
        let (Some(key), Some(row)) = (key, row) else {
            continue;
        };
        paths.insert(format!("/v1/{}/{}", resource.name, key.template), row);
        for relation in &resource.relations {
            let target = schema
                .resource(&relation.target)
                .expect("relation targets exist");
            let path = format!("/v1/{}/{}/{}", resource.name, key.template, relation.name);
            let operation_id = format!("get_{}_{}", resource.name, relation.name);
            let operation = match relation.cardinality {
                Cardinality::ToMany => {
                    let mut parameters = key.parameters.clone();
                    parameters.extend(collection_parameters(schema, target, limits));
                    json!({
                        "operationId": operation_id,
                        "summary": format!("The {} of one row of {}", relation.name, resource.name),
                        "tags": tag,
                        "parameters": parameters,
                        "responses": collection_responses(&target.name),
                    })
                }
                // the parent's key, the target's fields and relations
                Cardinality::ToOne => json!({
                    "operationId": operation_id,
                    "summary": format!("The {} of one row of {} (null when unset)", relation.name, resource.name),
                    "tags": tag,
                    "parameters": row_parameters(schema, target, &key),
                    "responses": single_responses(&target.name, true),
                }),
            };
            paths.insert(path, json!({ "get": operation }));
        }
    }
    paths.insert(
        "/v1/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": { "200": { "description": "The OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } },
        }}),
    );
    paths.insert(
        "/healthz".into(),
        json!({ "get": {
            "operationId": "healthz",
            "summary": "Liveness: the process answers",
            "responses": { "200": status_response("ok") },
        }}),
    );
    paths.insert(
        "/readyz".into(),
        json!({ "get": {
            "operationId": "readyz",
            "summary": "Readiness: the database answers",
            "responses": { "200": status_response("ready"), "503": problem_ref("503") },
        }}),
    );
    // every request may be refused for the length of its URL (414) or
    // headers (431); with access control, also for its credentials, its
    // role or a spent limit
    for (path, item) in paths.iter_mut() {
        let refusals: &[&str] = if api_key_header.is_some() && path.starts_with("/v1/") {
            &["401", "403", "414", "429", "431"]
        } else {
            &["414", "431"]
        };
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            if let Some(responses) = operation["responses"].as_object_mut() {
                for status in refusals {
                    responses
                        .entry(*status)
                        .or_insert_with(|| problem_ref(status));
                }
            }
        }
    }
    schemas.insert("Problem".into(), problem_schema());
    schemas.insert("Meta".into(), meta_schema());
    schemas.insert("Links".into(), links_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "brisk",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A REST API generated from the database schema. Errors are application/problem+json (RFC 9457); \
                            the `type` of each names one of the problem types listed under x-problem-types.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": problem_responses(),
            "securitySchemes": api_key_header.map_or_else(|| json!({}), security_schemes),
        },
        "security": if api_key_header.is_some() { json!([{}, { "bearer": [] }, { "apiKey": [] }]) } else { json!([]) },
        "x-problem-types": Problem::ALL.iter().map(|p| json!({
            "type": p.type_uri(),
            "title": p.title(),
            "status": p.status().as_u16(),
        })).collect::<Vec<_>>(),
    })
}

/// POST on the collection; PATCH, PUT and DELETE on the row (when rows
/// have a key to address them by): those granted.
fn write_operations(
    resource: &Resource,
    granted: &dyn Fn(WriteMethod) -> bool,
    collection: &mut Value,
    row: Option<(&RowAddress, &mut Value)>,
) {
    let name = &resource.name;
    let input = json!({ "$ref": format!("#/components/schemas/{name}_input") });
    let created = json!({
        "description": "Created; the rows as stored",
        "headers": {
            "Location": { "description": "the row's URL (one row)", "schema": { "type": "string" } },
            "ETag": { "description": "the row's ETag (one row)", "schema": { "type": "string" } },
        },
        "content": { "application/json": { "schema": { "type": "object", "properties": { "data": {
            "oneOf": [
                { "$ref": format!("#/components/schemas/{name}") },
                { "type": "array", "items": { "$ref": format!("#/components/schemas/{name}") } },
            ],
        }}}}},
    });
    let written = json!({
        "description": "The row as stored",
        "headers": { "ETag": { "schema": { "type": "string" } } },
        "content": { "application/json": { "schema": { "type": "object", "properties": { "data": { "$ref": format!("#/components/schemas/{name}") } } } } },
    });
    let problems = |codes: &[&str]| -> Map<String, Value> {
        codes
            .iter()
            .map(|c| (c.to_string(), problem_ref(c)))
            .collect()
    };
    let if_match = json!({
        "name": "If-Match", "in": "header", "required": false,
        "description": "the row's ETag: the write runs only if the row has not changed (412 otherwise); * requires the row to exist",
        "schema": { "type": "string" },
    });
    let mut post_responses = problems(&["400", "403", "404", "409", "413", "415", "422"]);
    post_responses.insert("201".into(), created);
    if granted(WriteMethod::Post) {
        collection["post"] = json!({
        "operationId": format!("create_{name}"),
        "summary": format!("Create one row of {name}, or several in one transaction"),
        "tags": [name],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "oneOf": [input.clone(), { "type": "array", "items": input.clone(), "minItems": 1 }],
        }}}},
        "responses": post_responses,
        });
    }
    let Some((key, row)) = row else {
        return;
    };
    for (method, summary, body_required) in [
        ("patch", "Change the fields given", true),
        (
            "put",
            "Replace every writable field (one left out becomes null)",
            true,
        ),
        ("delete", "Delete the row", false),
    ] {
        let write_method = match method {
            "patch" => WriteMethod::Patch,
            "put" => WriteMethod::Put,
            _ => WriteMethod::Delete,
        };
        if !granted(write_method) {
            continue;
        }
        let mut responses = problems(&[
            "400", "403", "404", "409", "412", "413", "415", "422", "428",
        ]);
        if method == "delete" {
            responses.insert("204".into(), json!({ "description": "Deleted" }));
        } else {
            responses.insert("200".into(), written.clone());
        }
        let mut operation = json!({
            "operationId": format!("{method}_{name}"),
            "summary": summary,
            "tags": [name],
            "parameters": key.parameters.iter().chain([&if_match]).collect::<Vec<_>>(),
            "responses": responses,
        });
        if body_required {
            // the key is in the URL; PATCH changes the fields given: none
            // is required, one at least
            let schema = if method == "patch" {
                json!({ "$ref": format!("#/components/schemas/{name}_patch") })
            } else {
                json!({ "$ref": format!("#/components/schemas/{name}_update") })
            };
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema } } });
        }
        row[method] = operation;
    }
}

/// A write body: the writable columns, those an insert needs required.
fn input_schema(resource: &Resource) -> Value {
    let writable = resource.columns.iter().filter(|c| !c.read_only);
    let properties: Map<String, Value> = writable
        .clone()
        .map(|c| {
            let mut schema = column_schema(c);
            // what the column stores, for bodies (a filter compares with anything)
            if let (ColumnKind::Numeric, Some(precision)) = (c.kind, c.precision) {
                numeric_bounds(&mut schema, precision);
            }
            if let (ColumnKind::Text, Some(max)) = (c.kind, c.max_chars) {
                schema["maxLength"] = json!(max);
            }
            if c.kind == ColumnKind::Timestamp {
                // served without an offset on PostgreSQL's timestamp, but
                // written in RFC 3339 on every column
                schema["format"] = json!("date-time");
            }
            (c.name.clone(), schema)
        })
        .collect();
    let required: Vec<&str> = writable
        .filter(|c| c.required())
        .map(|c| c.name.as_str())
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "required": required,
    })
}

/// What `numeric(p, s)` stores, for write bodies (a filter may compare
/// with any number): `s` digits after the point (`multipleOf`), fewer than
/// 10^(p - s) before it. The largest value, 99999999.99 for
/// `numeric(10, 2)`, is the bound where a double holds it exactly; beyond 15
/// digits the bound is exclusive, 10^(p - s).
fn numeric_bounds(schema: &mut Value, (precision, scale): (u32, u32)) {
    let whole = precision.saturating_sub(scale) as i32;
    if scale > 0 {
        schema["multipleOf"] = json!(10f64.powi(-(scale as i32)));
    }
    if precision <= 15 {
        let nines = |n: u32| "9".repeat(n as usize);
        let largest = match (whole as u32, scale) {
            (0, scale) => format!("0.{}", nines(scale)),
            (whole, 0) => nines(whole),
            (whole, scale) => format!("{}.{}", nines(whole), nines(scale)),
        };
        let largest: f64 = largest.parse().expect("a decimal");
        schema["maximum"] = json!(largest);
        schema["minimum"] = json!(-largest);
    } else {
        schema["exclusiveMaximum"] = json!(10f64.powi(whole));
        schema["exclusiveMinimum"] = json!(-10f64.powi(whole));
    }
}

/// A PUT body: as an insert's, without the key, which the URL gives (a
/// body may repeat it, but not change it).
fn update_schema(resource: &Resource) -> Value {
    let mut schema = input_schema(resource);
    for key in &resource.primary_key {
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.remove(key);
        }
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|name| name != key.as_str());
        }
    }
    schema
}

/// A PATCH body: any writable columns but the key, at least one.
fn patch_schema(resource: &Resource) -> Value {
    let mut schema = update_schema(resource);
    let object = schema.as_object_mut().expect("an object schema");
    object.remove("required");
    object.insert("minProperties".into(), json!(1));
    schema
}

/// A column's JSON schema; generated and identity columns are marked
/// read-only, since writes refuse them.
fn column_schema(column: &Column) -> Value {
    let mut schema = value_schema(column);
    if column.read_only {
        schema["readOnly"] = json!(true);
    }
    schema
}

fn value_schema(column: &Column) -> Value {
    if !column.values.is_empty() {
        // an enum: its values, and null when the column allows it
        let mut values: Vec<Value> = column.values.iter().map(|v| json!(v)).collect();
        let kind = if column.nullable {
            values.push(Value::Null);
            json!(["string", "null"])
        } else {
            json!("string")
        };
        return json!({ "type": kind, "enum": values, "description": column.db_type });
    }
    if column.kind == ColumnKind::Array {
        let items = column_schema(&Column {
            nullable: true,
            ..column.item()
        });
        let kind = if column.nullable {
            json!(["array", "null"])
        } else {
            json!("array")
        };
        return json!({ "type": kind, "items": items, "description": column.db_type });
    }
    // PostgreSQL's own types carry their schema (`pg_catalog.float8`)
    let postgres = column.db_type.contains('.');
    if column.kind == ColumnKind::Real && postgres {
        // NaN and ±Infinity, which JSON numbers cannot hold, travel as strings
        let mut choices = vec![
            json!({ "type": "number" }),
            json!({ "enum": ["NaN", "Infinity", "-Infinity"] }),
        ];
        if column.nullable {
            choices.push(json!({ "type": "null" }));
        }
        return json!({ "anyOf": choices, "description": column.db_type });
    }
    let (kind, format) = match column.kind {
        ColumnKind::Integer => ("integer", None),
        ColumnKind::Real | ColumnKind::Numeric => ("number", None),
        ColumnKind::Text => ("string", None),
        ColumnKind::Boolean => ("boolean", None),
        // PostgreSQL's timestamp without time zone has no offset, so it is
        // not an RFC 3339 date-time
        ColumnKind::Timestamp if column.db_type == "pg_catalog.timestamp" => ("string", None),
        ColumnKind::Timestamp => ("string", Some("date-time")),
        ColumnKind::Date => ("string", Some("date")),
        ColumnKind::Uuid => ("string", Some("uuid")),
        ColumnKind::Blob => ("string", Some("byte")),
        // PostgreSQL renders any other type as its text
        ColumnKind::Other | ColumnKind::Range if postgres => ("string", None),
        ColumnKind::Json | ColumnKind::Array | ColumnKind::Other | ColumnKind::Range => {
            return json!({ "description": column.db_type });
        }
    };
    let mut schema = Map::new();
    schema.insert(
        "type".into(),
        if column.nullable {
            json!([kind, "null"])
        } else {
            json!(kind)
        },
    );
    if let Some(format) = format {
        schema.insert("format".into(), json!(format));
    }
    if column.kind == ColumnKind::Blob {
        schema.insert("contentEncoding".into(), json!("base64"));
    }
    if column.db_type == "pg_catalog.timestamp" {
        schema.insert(
            "description".into(),
            json!("timestamp without time zone: an ISO 8601 date and time without an offset (2024-01-02T03:04:05); filters take RFC 3339"),
        );
    }
    if column.kind == ColumnKind::Integer {
        let (minimum, maximum) = brisk_query::write::integer_range(&column.db_type);
        schema.insert("minimum".into(), json!(minimum));
        schema.insert("maximum".into(), json!(maximum));
    }
    if column.kind == ColumnKind::Text {
        // text takes anything but NUL, which neither database stores
        schema.insert("pattern".into(), json!("^[^\\u0000]*$"));
    }
    if matches!(column.kind, ColumnKind::Other | ColumnKind::Range) {
        schema.insert(
            "description".into(),
            json!(format!("{}, as PostgreSQL writes it", column.db_type)),
        );
    }
    Value::Object(schema)
}

fn resource_schema(resource: &Resource) -> Value {
    let mut properties = Map::new();
    for column in &resource.columns {
        properties.insert(column.name.clone(), column_schema(column));
    }
    for relation in &resource.relations {
        let target = json!({ "$ref": format!("#/components/schemas/{}", relation.target) });
        let schema = match relation.cardinality {
            Cardinality::ToOne => {
                json!({ "description": format!("embedded with include={}", relation.name), "oneOf": [target, { "type": "null" }] })
            }
            Cardinality::ToMany => {
                json!({ "description": format!("embedded with include={}", relation.name), "type": "array", "items": target })
            }
        };
        properties.insert(relation.name.clone(), schema);
    }
    json!({
        "type": "object",
        "description": "Fields are all columns unless `fields` names some; relations appear when included.",
        "properties": properties,
    })
}

fn query_parameter(name: &str, description: &str, mut schema: Value) -> Value {
    no_nul(&mut schema);
    if let Some(items) = schema.get_mut("items") {
        no_nul(items);
    }
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// No query value may hold a NUL character (brisk refuses `%00`, which no
/// text column stores): said as a pattern on every string without one.
fn no_nul(schema: &mut Value) {
    let is_string = match &schema["type"] {
        Value::String(kind) => kind == "string",
        Value::Array(kinds) => kinds.iter().any(|k| k == "string"),
        _ => false,
    };
    if is_string && schema.get("pattern").is_none() && schema.get("enum").is_none() {
        schema["pattern"] = json!("^[^\\u0000]*$");
    }
}

/// How a row is addressed: `{id}` for a single-column key, `{a},{b}` (a
/// path parameter per column) for a composite one.
struct RowAddress {
    template: String,
    parameters: Vec<Value>,
    /// The key's columns, in words.
    names: String,
}

impl RowAddress {
    fn of(resource: &Resource) -> Option<RowAddress> {
        let columns = brisk_query::key::key_columns(resource).ok()?;
        let parameter = |name: &str, column: &Column| json!({ "name": name, "in": "path", "required": true, "description": format!("the {}", column.name), "schema": column_schema(&Column { nullable: false, ..column.clone() }) });
        let names = columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Some(match columns.as_slice() {
            [only] => RowAddress {
                template: "{id}".into(),
                parameters: vec![parameter("id", only)],
                names,
            },
            several => RowAddress {
                template: several
                    .iter()
                    .map(|c| format!("{{{}}}", c.name))
                    .collect::<Vec<_>>()
                    .join(","),
                parameters: several.iter().map(|c| parameter(&c.name, c)).collect(),
                names,
            },
        })
    }
}

/// A comma-separated list of some of `values` (`fields=name,email`),
/// described as an array so that clients and fuzzers send only those.
fn list_parameter(name: &str, description: &str, values: &[String]) -> Value {
    let mut parameter = query_parameter(
        name,
        description,
        json!({ "type": "array", "items": { "type": "string", "enum": values }, "minItems": 1 }),
    );
    parameter["style"] = json!("form");
    parameter["explode"] = json!(false);
    parameter
}

fn fields_parameter(resource: &Resource) -> Value {
    let names: Vec<String> = resource.columns.iter().map(|c| c.name.clone()).collect();
    list_parameter(
        "fields",
        &format!(
            "Comma-separated fields to return (of {}: {}); `relation.field` trims an included relation.",
            resource.name,
            names.join(", ")
        ),
        &names,
    )
}

/// The relations to embed, listed two levels deep (deeper paths, up to
/// `limits.max_include_depth`, work too); none when there are none.
fn include_parameter(schema: &Schema, resource: &Resource) -> Option<Value> {
    let mut paths = Vec::new();
    for relation in &resource.relations {
        paths.push(relation.name.clone());
        if let Some(target) = schema.resource(&relation.target) {
            paths.extend(
                target
                    .relations
                    .iter()
                    .map(|nested| format!("{}.{}", relation.name, nested.name)),
            );
        }
    }
    if paths.is_empty() {
        return None;
    }
    let relations: Vec<&str> = resource.relations.iter().map(|r| r.name.as_str()).collect();
    Some(list_parameter(
        "include",
        &format!(
            "Comma-separated relations to embed, nested with dots (relations of {}: {}). One database round trip.",
            resource.name,
            relations.join(", ")
        ),
        &paths,
    ))
}

/// A single row's parameters: the key in the path, and the fields and (when
/// it has relations) include of `resource`.
fn row_parameters(schema: &Schema, resource: &Resource, key: &RowAddress) -> Value {
    let mut parameters = key.parameters.clone();
    parameters.push(fields_parameter(resource));
    parameters.extend(include_parameter(schema, resource));
    Value::Array(parameters)
}

fn collection_parameters(schema: &Schema, resource: &Resource, limits: &Limits) -> Vec<Value> {
    let sortable: Vec<&str> = resource
        .columns
        .iter()
        .filter(|c| c.kind.is_ordered())
        .map(|c| c.name.as_str())
        .collect();
    let sort_keys: Vec<String> = sortable
        .iter()
        .flat_map(|name| {
            [
                name.to_string(),
                format!("-{name}"),
                format!("{name}_asc"),
                format!("{name}_desc"),
            ]
        })
        .collect();
    let mut parameters = vec![fields_parameter(resource)];
    parameters.extend(include_parameter(schema, resource));
    parameters.extend([
        list_parameter(
            "sort",
            &format!(
                "Comma-separated sort keys: `name` or `name_asc` ascending, `-name` or `name_desc` descending. \
                 The primary key is the last tie-breaker. NULL sorts after every value ascending. Sortable: {}.",
                sortable.join(", ")
            ),
            &sort_keys,
        ),
        query_parameter(
            "limit",
            &format!("Rows per page (default {}).", limits.default_limit),
            json!({ "type": "integer", "minimum": 1, "maximum": limits.max_limit, "default": limits.default_limit }),
        ),
        query_parameter(
            "page",
            "1-based page number; not with cursor. A page starts at most limits.max_offset rows deep (page × limit), so the deepest is max_offset + 1 with limit=1.",
            json!({ "type": "integer", "minimum": 1, "maximum": limits.max_offset.saturating_add(1) }),
        ),
        query_parameter(
            "cursor",
            "Keyset cursor from meta.next_cursor or meta.prev_cursor; valid only with the same sort and filters.",
            json!({ "type": "string", "minLength": 1 }),
        ),
        query_parameter(
            "count",
            "`exact` adds meta.total.",
            json!({ "type": "string", "enum": ["exact"] }),
        ),
    ]);
    for column in &resource.columns {
        for operator in Operator::ALL {
            if !operator_applies(operator, column) {
                continue;
            }
            let (name, description, schema) = match operator {
                Operator::Null => (
                    format!("{}[null]", column.name),
                    "true: only rows where it is null; false: only rows where it is not"
                        .to_string(),
                    json!({ "type": "boolean" }),
                ),
                Operator::In | Operator::Nin => (
                    format!("{}[{}]", column.name, operator.name()),
                    format!(
                        "Comma-separated values ({}); quote an item holding a comma with double quotes.",
                        if operator == Operator::In {
                            "any of"
                        } else {
                            "none of"
                        }
                    ),
                    list_schema(column, limits),
                ),
                _ if column.kind == ColumnKind::Range && operator.takes_range() => (
                    format!("{}[{}]", column.name, operator.name()),
                    format!(
                        "A range literal of {} ([1,10), (2024-01-01,2024-02-01], empty){}: rows whose range {}.",
                        column.db_type,
                        if operator == Operator::Cs { ", or one value" } else { "" },
                        match operator {
                            Operator::Cs => "contains it (@>)",
                            Operator::Cd => "is contained by it (<@)",
                            Operator::Ov => "overlaps it (&&)",
                            Operator::Sl => "is strictly left of it (<<)",
                            Operator::Sr => "is strictly right of it (>>)",
                            Operator::Nxr => "does not extend to the right of it (&<)",
                            Operator::Nxl => "does not extend to the left of it (&>)",
                            _ => "is adjacent to it (-|-)",
                        }
                    ),
                    json!({ "type": "string", "minLength": 1 }),
                ),
                Operator::Cs | Operator::Cd | Operator::Ov => (
                    format!("{}[{}]", column.name, operator.name()),
                    format!(
                        "Comma-separated items: rows whose array {}.",
                        match operator {
                            Operator::Cs => "contains them all (@>)",
                            Operator::Cd => "holds only items among them (<@)",
                            _ => "shares at least one of them (&&)",
                        }
                    ),
                    json!({ "type": "string" }),
                ),
                // a word (not only spaces), and no NUL anywhere: `\S` alone
                // would let the one non-space character be a NUL
                Operator::Fts => (
                    format!("{}[fts]", column.name),
                    "Words to search for (full text): rows that hold them all; \"a phrase\" in double quotes. \
                     PostgreSQL also reads websearch syntax (or, -word) and stems words in the database's text search configuration."
                        .to_string(),
                    json!({ "type": "string", "minLength": 1, "maxLength": limits.max_pattern_length, "pattern": "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$" }),
                ),
                Operator::Like | Operator::Ilike => (
                    format!("{}[{}]", column.name, operator.name()),
                    format!(
                        "Pattern: % or * for any run, _ for one character, \\ escapes; {}.",
                        if operator == Operator::Like {
                            "case-sensitive"
                        } else {
                            "case-insensitive"
                        }
                    ),
                    json!({ "type": "string" }),
                ),
                _ => (
                    format!("{}[{}]", column.name, operator.name()),
                    format!("{} {} the value", column.name, operator.name()),
                    if column.kind == ColumnKind::Timestamp {
                        // filters take RFC 3339, whatever the column renders
                        json!({ "type": "string", "format": "date-time" })
                    } else {
                        value_schema(&Column {
                            nullable: false,
                            ..column.clone()
                        })
                    },
                ),
            };
            let mut parameter = query_parameter(&name, &description, schema.clone());
            if schema["type"] == "array" {
                // `id[in]=1,2,3`
                parameter["style"] = json!("form");
                parameter["explode"] = json!(false);
            }
            parameters.push(parameter);
            if operator == Operator::Eq {
                parameters.push(query_parameter(&column.name, "Shorthand for [eq].", schema));
            }
        }
    }
    parameters
}

/// The value of `[in]` and `[nin]`: for types whose values hold no comma
/// (numbers, booleans, instants, dates, UUIDs, enums without commas), an
/// array of values of the column's own type, sent comma-separated; for
/// text and the rest, the list as text (an empty one is one empty item).
fn list_schema(column: &Column, limits: &Limits) -> Value {
    let plain_enum = !column.values.is_empty()
        && column
            .values
            .iter()
            .all(|v| !v.contains([',', '"']) && !v.is_empty());
    let typed = column.values.is_empty()
        && matches!(
            column.kind,
            ColumnKind::Integer
                | ColumnKind::Real
                | ColumnKind::Numeric
                | ColumnKind::Boolean
                | ColumnKind::Timestamp
                | ColumnKind::Date
                | ColumnKind::Uuid
        );
    if plain_enum || typed {
        let item = if column.kind == ColumnKind::Timestamp && !plain_enum {
            json!({ "type": "string", "format": "date-time" })
        } else {
            value_schema(&Column {
                nullable: false,
                ..column.clone()
            })
        };
        return json!({ "type": "array", "items": item, "minItems": 1, "maxItems": limits.max_list_values });
    }
    // items unquoted (no comma, not starting with a quote) or quoted
    // ("a, b", with \ escaping); no NUL anywhere
    const ITEM: &str = r#"(?:"(?:[^"\\\u0000]|\\[^\u0000])*"|[^",\u0000][^,\u0000]*|)"#;
    let pattern = format!("^{ITEM}(?:,{ITEM})*$");
    if column.kind == ColumnKind::Text {
        json!({ "type": "string", "pattern": pattern })
    } else {
        json!({ "type": "string", "minLength": 1, "pattern": pattern })
    }
}

fn operator_applies(operator: Operator, column: &Column) -> bool {
    let kind = column.kind;
    match operator {
        Operator::Fts => column.searchable,
        Operator::Null => true,
        Operator::Like | Operator::Ilike => kind.is_textual(),
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => kind.is_ordered(),
        Operator::Cs | Operator::Cd | Operator::Ov => {
            matches!(kind, ColumnKind::Array | ColumnKind::Range)
        }
        _ if kind == ColumnKind::Range => operator.takes_range() || kind.is_comparable(),
        Operator::Sl | Operator::Sr | Operator::Nxr | Operator::Nxl | Operator::Adj => false,
        _ => kind.is_comparable(),
    }
}

fn collection_responses(resource: &str) -> Value {
    json!({
        "200": {
            "description": format!("A page of {resource}, with a Link header (RFC 8288) to the first, previous, next and last pages"),
            "headers": { "Link": { "schema": { "type": "string" } } },
            "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["data", "meta", "links"],
                "properties": {
                    "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/{resource}") } },
                    "meta": { "$ref": "#/components/schemas/Meta" },
                    "links": { "$ref": "#/components/schemas/Links" },
                },
            }}},
        },
        "400": problem_ref("400"),
        "404": problem_ref("404"),
        "503": problem_ref("503"),
    })
}

fn single_responses(resource: &str, nullable: bool) -> Value {
    let row = json!({ "$ref": format!("#/components/schemas/{resource}") });
    let data = if nullable {
        json!({ "oneOf": [row, { "type": "null" }] })
    } else {
        row
    };
    json!({
        "200": {
            "description": format!("One row of {resource}"),
            "content": { "application/json": { "schema": {
                "type": "object",
                "required": ["data"],
                "properties": { "data": data },
            }}},
        },
        "400": problem_ref("400"),
        "404": problem_ref("404"),
        "503": problem_ref("503"),
    })
}

fn status_response(status: &str) -> Value {
    json!({
        "description": format!("{{\"status\":\"{status}\"}}"),
        "content": { "application/json": { "schema": { "type": "object", "properties": { "status": { "const": status } } } } },
    })
}

fn problem_ref(status: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/Problem{status}") })
}

fn problem_responses() -> Value {
    let mut responses = Map::new();
    for (status, description) in [
        (
            "400",
            "The request is malformed: each problem is named in `errors`",
        ),
        (
            "401",
            "The credentials are malformed, unknown, expired or badly signed; see WWW-Authenticate",
        ),
        (
            "403",
            "The caller's role may not do this, or writes are switched off",
        ),
        (
            "429",
            "The caller's rate limit is spent; see Retry-After and RateLimit",
        ),
        ("404", "No such resource, row, relation or route"),
        ("405", "The route does not allow the method; see Allow"),
        (
            "409",
            "A unique or foreign key constraint, or a row still referenced",
        ),
        ("412", "If-Match does not match the row's current ETag"),
        ("413", "The body is too large"),
        (
            "414",
            "The path and query are longer than limits.max_url_bytes",
        ),
        (
            "431",
            "The request's headers are larger than limits.max_header_bytes",
        ),
        ("415", "The body is not application/json, or is compressed"),
        (
            "422",
            "A field is unknown, of the wrong type, out of range or missing; each is named by JSON pointer",
        ),
        ("428", "If-Match is required on this server"),
        (
            "503",
            "The database is not answering or the query ran too long; see Retry-After",
        ),
    ] {
        responses.insert(
            format!("Problem{status}"),
            json!({
                "description": description,
                "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
            }),
        );
    }
    Value::Object(responses)
}

/// API keys and JWTs, both as `Authorization: Bearer`; keys also in their
/// own header. No credentials is allowed too: the `anonymous` role.
fn security_schemes(api_key_header: &str) -> Value {
    json!({
        "bearer": { "type": "http", "scheme": "bearer", "description": "an API key (`brisk key new`) or a JWT" },
        "apiKey": { "type": "apiKey", "in": "header", "name": api_key_header, "description": "an API key (auth.api_key_header)" },
    })
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string", "format": "uri", "enum": Problem::ALL.iter().map(|p| p.type_uri()).collect::<Vec<_>>() },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["detail"],
                    "description": "a query parameter or path part (`parameter`), or a body field by JSON pointer (`pointer`)",
                    "properties": {
                        "parameter": { "type": "string" },
                        "pointer": { "type": "string" },
                        "detail": { "type": "string" },
                    },
                },
            },
        },
    })
}

fn meta_schema() -> Value {
    json!({
        "type": "object",
        "required": ["limit"],
        "properties": {
            "limit": { "type": "integer" },
            "page": { "type": "integer", "description": "present when paging by number" },
            "next_cursor": { "type": "string", "description": "absent on the last page" },
            "prev_cursor": { "type": "string" },
            "total": { "type": "integer", "description": "with count=exact" },
        },
    })
}

fn links_schema() -> Value {
    json!({
        "type": "object",
        "required": ["self", "first"],
        "properties": {
            "self": { "type": "string" },
            "first": { "type": "string" },
            "prev": { "type": "string" },
            "next": { "type": "string" },
            "last": { "type": "string", "description": "with count=exact" },
        },
    })
}
