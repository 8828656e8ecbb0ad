//! From a write request (method, path, JSON body) and the schema to a
//! [`WritePlan`]. Every field is checked against the introspected columns
//! before any SQL runs: unknown names, JSON types, ranges, lengths, missing
//! required columns, read-only columns. Problems are reported together,
//! each with the JSON pointer of the field at fault.

use crate::error::{ErrorKind, QueryError, QueryErrors, did_you_mean};
use crate::key::{RowKey, key_columns};
use crate::schema::{Column, ColumnKind, Resource, Schema};
use crate::value::{SqlValue, parse_value};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteMethod {
    /// Create one row (an object) or several (an array), in one transaction.
    Post,
    /// Change the fields given.
    Patch,
    /// Replace every writable field; one left out becomes NULL.
    Put,
    Delete,
}

impl WriteMethod {
    /// The HTTP method.
    pub fn name(self) -> &'static str {
        match self {
            WriteMethod::Post => "POST",
            WriteMethod::Patch => "PATCH",
            WriteMethod::Put => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WriteRequest<'a> {
    pub method: WriteMethod,
    pub resource: &'a str,
    pub id: Option<&'a str>,
    /// The body, already read; `None` for DELETE.
    pub body: Option<&'a [u8]>,
    /// The most rows one POST may create.
    pub max_rows: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WritePlan {
    pub resource: String,
    /// The primary key's columns, which every written row is reported by.
    pub key: Vec<Column>,
    pub action: WriteAction,
    /// The caller's row rule for the table: the rows it may change, and
    /// what every row it writes must still satisfy.
    pub rules: Vec<crate::plan::Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteAction {
    /// One row per element, each the columns given; `many` when the body was
    /// an array (the answer is then an array too).
    Insert {
        rows: Vec<Vec<Assignment>>,
        many: bool,
    },
    /// PATCH or PUT of the row with this key.
    Update {
        key: RowKey,
        set: Vec<Assignment>,
    },
    Delete {
        key: RowKey,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub column: Column,
    pub value: SqlValue,
}

impl WritePlan {
    /// The key of the row a PATCH, PUT or DELETE addresses.
    pub fn target_key(&self) -> Option<&RowKey> {
        match &self.action {
            WriteAction::Update { key, .. } | WriteAction::Delete { key } => Some(key),
            WriteAction::Insert { .. } => None,
        }
    }
}

pub fn plan_write(schema: &Schema, request: &WriteRequest<'_>) -> Result<WritePlan, QueryErrors> {
    let resource = schema.resource(request.resource).ok_or_else(|| {
        QueryError::new(
            ErrorKind::NotFound,
            "resource",
            format!(
                "there is no resource '{}'{}",
                request.resource,
                did_you_mean(request.resource, schema.resource_names())
            ),
        )
    })?;
    if let Some(refusal) = resource.refusal(request.method) {
        return Err(QueryError::new(ErrorKind::NotFound, "resource", refusal).into());
    }
    // empty for a keyless table or view, which takes POST only (refused above otherwise)
    let key: Vec<Column> = key_columns(resource)
        .map(|key| key.into_iter().cloned().collect())
        .unwrap_or_default();
    let id = match request.id {
        Some(id) => Some(RowKey::parse(resource, id)?),
        None => None,
    };
    let body = match request.body {
        Some(bytes) if request.method != WriteMethod::Delete => Some(parse_body(bytes)?),
        _ => None,
    };
    let action = match (request.method, id, body) {
        (WriteMethod::Delete, Some(key), _) => WriteAction::Delete { key },
        (WriteMethod::Post, None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err(body_error("", "the array is empty; send at least one object").into());
            }
            if items.len() > request.max_rows {
                return Err(body_error(
                    "",
                    format!(
                        "{} rows in one request; send at most {}",
                        items.len(),
                        request.max_rows
                    ),
                )
                .into());
            }
            let mut errors = QueryErrors::default();
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match fields(resource, item, &format!("/{i}"), Mode::Insert) {
                    Ok(row) => rows.push(row),
                    Err(e) => errors.0.extend(e.0),
                }
            }
            errors.into_result(WriteAction::Insert { rows, many: true })?
        }
        (WriteMethod::Post, None, Some(item)) => WriteAction::Insert {
            rows: vec![fields(resource, &item, "", Mode::Insert)?],
            many: false,
        },
        (WriteMethod::Patch, Some(key_value), Some(item)) => {
            let set = fields(resource, &item, "", Mode::Patch)?;
            check_key_unchanged(&key_value, &set)?;
            WriteAction::Update {
                key: key_value,
                set,
            }
        }
        (WriteMethod::Put, Some(key_value), Some(item)) => {
            let set = fields(resource, &item, "", Mode::Put)?;
            check_key_unchanged(&key_value, &set)?;
            WriteAction::Update {
                key: key_value,
                set,
            }
        }
        (_, _, None) => {
            return Err(body_error("", "the request has no body; send a JSON object").into());
        }
        (method, _, _) => unreachable!("the router pairs {method:?} with its path"),
    };
    Ok(WritePlan {
        resource: resource.name.clone(),
        key,
        action,
        rules: Vec::new(),
    })
}

fn parse_body(bytes: &[u8]) -> Result<Value, QueryError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(body_error("", "the body is empty; send a JSON object"));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        QueryError::new(
            ErrorKind::MalformedBody,
            "",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(_) | Value::Array(_) => Ok(value),
        other => Err(body_error(
            "",
            format!("the body is {}, not a JSON object", json_type(&other)),
        )),
    }
}

fn body_error(pointer: &str, detail: impl Into<String>) -> QueryError {
    QueryError::new(ErrorKind::MalformedBody, pointer, detail)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Insert,
    Patch,
    Put,
}

/// Checks one object against the resource's columns.
fn fields(
    resource: &Resource,
    item: &Value,
    pointer: &str,
    mode: Mode,
) -> Result<Vec<Assignment>, QueryErrors> {
    let Value::Object(object) = item else {
        return Err(body_error(
            pointer,
            format!("expected a JSON object, got {}", json_type(item)),
        )
        .into());
    };
    let mut errors = QueryErrors::default();
    // Unknown names first (sorted), then the columns in table order: the
    // same problems and statement text whatever order the JSON had.
    let mut unknown: Vec<&String> = object
        .keys()
        .filter(|name| resource.column(name).is_none())
        .collect();
    unknown.sort();
    for name in unknown {
        errors.push(QueryError::new(
            ErrorKind::InvalidField,
            format!("{pointer}/{}", escape_pointer(name)),
            format!(
                "{} has no field '{name}'{}",
                resource.name,
                did_you_mean(name, resource.columns.iter().map(|c| c.name.as_str()))
            ),
        ));
    }
    let mut assignments = Vec::with_capacity(object.len());
    for column in &resource.columns {
        let at = format!("{pointer}/{}", escape_pointer(&column.name));
        let Some(value) = object.get(&column.name) else {
            let is_key = resource.primary_key.contains(&column.name);
            let missing = match mode {
                Mode::Patch => false,
                Mode::Insert => column.required(),
                // a full replace: what is left out becomes NULL
                Mode::Put => !column.nullable && !is_key && !column.read_only,
            };
            if missing {
                errors.push(QueryError::new(
                    ErrorKind::InvalidField,
                    at,
                    format!("{} is required ({})", column.name, column.kind.describe()),
                ));
            } else if mode == Mode::Put && !is_key && !column.read_only {
                assignments.push(Assignment {
                    column: column.clone(),
                    value: SqlValue::Null,
                });
            }
            continue;
        };
        if column.read_only {
            errors.push(QueryError::new(
                ErrorKind::InvalidField,
                at,
                format!(
                    "{} is generated by the database and cannot be written",
                    column.name
                ),
            ));
            continue;
        }
        match field_value(column, value) {
            Ok(value) => assignments.push(Assignment {
                column: column.clone(),
                value,
            }),
            Err(detail) => errors.push(QueryError::new(ErrorKind::InvalidField, at, detail)),
        }
    }
    if mode == Mode::Patch && object.is_empty() {
        errors.push(body_error(
            pointer,
            "the object is empty; send the fields to change",
        ));
    }
    errors.into_result(assignments)
}

/// A JSON value checked against a column and turned into a bound value.
fn field_value(column: &Column, value: &Value) -> Result<SqlValue, String> {
    let wrong = || {
        format!(
            "{} takes {}, not {}",
            column.name,
            column.kind.describe(),
            json_type(value)
        )
    };
    if value.is_null() {
        return if column.nullable {
            Ok(SqlValue::Null)
        } else {
            Err(format!("{} cannot be null", column.name))
        };
    }
    if !column.values.is_empty() {
        return match value {
            Value::String(text) if column.values.contains(text) => Ok(SqlValue::Text(text.clone())),
            Value::String(text) => Err(crate::value::not_a_value(column, text)),
            _ => Err(wrong()),
        };
    }
    let checked = match (column.kind, value) {
        (ColumnKind::Integer, Value::Number(n)) => {
            // 26.0 is the integer 26 to JSON (and JSON Schema); beyond 2^53
            // a float no longer says which integer it means
            let whole = n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
                .map(|f| f as i64);
            let i = n.as_i64().or(whole).ok_or_else(|| {
                format!(
                    "{} takes a whole number that fits 64 bits, not {n}",
                    column.name
                )
            })?;
            let (min, max) = integer_range(&column.db_type);
            if i < min || i > max {
                return Err(format!(
                    "{} must be between {min} and {max}, not {i}",
                    column.name
                ));
            }
            SqlValue::Integer(i)
        }
        (ColumnKind::Real, Value::Number(n)) => SqlValue::Real(n.as_f64().ok_or_else(wrong)?),
        (ColumnKind::Real, Value::String(text))
            if column.db_type.starts_with("pg_catalog.float") =>
        {
            SqlValue::Real(crate::value::non_finite(column, text).ok_or_else(|| {
                format!(
                    "{} takes a number, or \"NaN\", \"Infinity\" or \"-Infinity\"; not '{text}'",
                    column.name
                )
            })?)
        }
        (ColumnKind::Numeric, Value::Number(n)) => {
            let text = n.to_string();
            check_precision(column, &text)?;
            SqlValue::Decimal(text)
        }
        (ColumnKind::Numeric, Value::String(text)) => {
            let value = parse_value(column, text)?;
            check_precision(column, text)?;
            value
        }
        (ColumnKind::Boolean, Value::Bool(b)) => SqlValue::Bool(*b),
        (ColumnKind::Text, Value::String(text)) => {
            if let Some(max) = column.max_chars
                && text.chars().count() > max as usize
            {
                return Err(format!(
                    "{} holds at most {max} characters, not {}",
                    column.name,
                    text.chars().count()
                ));
            }
            if text.contains('\0') {
                return Err(format!("{} cannot hold a NUL character", column.name));
            }
            SqlValue::Text(text.clone())
        }
        (ColumnKind::Timestamp | ColumnKind::Date | ColumnKind::Uuid, Value::String(text)) => {
            parse_value(column, text)?
        }
        (ColumnKind::Json, value) => SqlValue::Text(value.to_string()),
        (ColumnKind::Array, Value::Array(items)) => {
            let item = column.item();
            let values = items
                .iter()
                .map(|value| match value {
                    Value::Array(_) => Err(format!(
                        "{} takes a flat array; nested arrays are not supported",
                        column.name
                    )),
                    value => field_value(&item, value),
                })
                .collect::<Result<Vec<_>, _>>()?;
            SqlValue::Text(crate::value::array_literal(&values))
        }
        (ColumnKind::Other | ColumnKind::Range, Value::String(text)) => {
            SqlValue::Text(text.clone())
        }
        (ColumnKind::Other, Value::Number(n)) => SqlValue::Text(n.to_string()),
        (ColumnKind::Other, Value::Bool(b)) => SqlValue::Text(b.to_string()),
        (ColumnKind::Blob, Value::String(text)) => {
            use base64::Engine;
            SqlValue::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| {
                        format!(
                            "{} is binary and takes base64 text (RFC 4648, with padding)",
                            column.name
                        )
                    })?,
            )
        }
        _ => return Err(wrong()),
    };
    Ok(checked)
}

/// The range of an integer column by its PostgreSQL type (SQLite's are 64-bit).
pub fn integer_range(db_type: &str) -> (i64, i64) {
    match db_type.rsplit('.').next() {
        Some("int2") => (i16::MIN.into(), i16::MAX.into()),
        Some("int4") => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    }
}

/// `numeric(p, s)` holds at most p - s digits before the point and s after
/// it. A value with more digits after the point is refused rather than
/// rounded, as PostgreSQL would round it, silently.
fn check_precision(column: &Column, text: &str) -> Result<(), String> {
    let Some((precision, scale)) = column.precision else {
        return Ok(());
    };
    let Some((before, after)) = decimal_digits(text) else {
        return Ok(());
    };
    if before > i64::from(precision) - i64::from(scale) {
        return Err(format!(
            "{} holds at most {} digits before the point (numeric({precision}, {scale})), not {text}",
            column.name,
            precision - scale
        ));
    }
    if after > i64::from(scale) {
        return Err(format!(
            "{} keeps {scale} digits after the point (numeric({precision}, {scale})); {text} has {after}: round it first",
            column.name
        ));
    }
    Ok(())
}

/// The significant digits of a decimal number before and after its point
/// (`-0012.3400e1` → (3, 1)); `None` if it is not one.
fn decimal_digits(text: &str) -> Option<(i64, i64)> {
    let unsigned = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !(whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + exponent;
    let leading = (digits.len() - digits.trim_start_matches('0').len()) as i64;
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return Some((0, 0));
    }
    let point = point - leading;
    let length = significant.len() as i64;
    Some((point.max(0), (length - point).max(0)))
}

/// A body may repeat the key the URL gives, but not change it.
fn check_key_unchanged(url_key: &RowKey, set: &[Assignment]) -> Result<(), QueryErrors> {
    let mut errors = QueryErrors::default();
    for (key, value) in url_key.columns.iter().zip(&url_key.values) {
        let changed = set
            .iter()
            .find(|a| a.column.name == key.name && a.value.as_text() != value.as_text());
        if let Some(a) = changed {
            errors.push(QueryError::new(
                ErrorKind::InvalidField,
                format!("/{}", escape_pointer(&key.name)),
                format!(
                    "{} is {}the row's key ({}) and cannot change to {}",
                    key.name,
                    if url_key.columns.len() == 1 {
                        ""
                    } else {
                        "part of "
                    },
                    value.as_text().unwrap_or_default(),
                    a.value.as_text().unwrap_or_else(|| "null".into())
                ),
            ));
        }
    }
    errors.into_result(())
}

/// RFC 6901: `~` is `~0` and `/` is `~1` in a pointer segment.
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::shop;

    #[test]
    fn decimal_digits_before_and_after_the_point() {
        for (text, digits) in [
            ("1.005", Some((1, 3))),
            ("-0012.3400", Some((2, 2))),
            ("12.34e1", Some((3, 1))),
            ("1E-7", Some((0, 7))),
            ("0.000", Some((0, 0))),
            ("100", Some((3, 0))),
            ("1e400", Some((401, 0))),
            ("0x10", None),
        ] {
            assert_eq!(decimal_digits(text), digits, "{text}");
        }
    }

    #[test]
    fn numerics_are_refused_rather_than_rounded() {
        let mut column = Column::new("price", ColumnKind::Numeric, "pg_catalog.numeric");
        column.precision = Some((10, 2));
        assert!(field_value(&column, &serde_json::json!(1.25)).is_ok());
        assert!(field_value(&column, &serde_json::json!("12345678.99")).is_ok());
        let rounded = field_value(&column, &serde_json::json!(1.005)).unwrap_err();
        assert!(
            rounded.contains("keeps 2 digits after the point"),
            "{rounded}"
        );
        let large = field_value(&column, &serde_json::json!("123456789")).unwrap_err();
        assert!(
            large.contains("at most 8 digits before the point"),
            "{large}"
        );
    }

    fn plan(
        method: WriteMethod,
        resource: &str,
        id: Option<&str>,
        body: &str,
    ) -> Result<WritePlan, QueryErrors> {
        plan_write(
            &shop(),
            &WriteRequest {
                method,
                resource,
                id,
                body: Some(body.as_bytes()),
                max_rows: 3,
            },
        )
    }

    fn problems(method: WriteMethod, resource: &str, id: Option<&str>, body: &str) -> Vec<String> {
        plan(method, resource, id, body)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| format!("{:?} {}: {}", e.kind, e.parameter, e.detail))
            .collect()
    }

    #[test]
    fn inserts_check_every_field() {
        let ok = plan(
            WriteMethod::Post,
            "products",
            None,
            r#"{"name":"Lamp","category":"home","price":"12.50","stock":3,"description":"d","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let WriteAction::Insert { rows, many: false } = ok.action else {
            panic!()
        };
        assert_eq!(rows[0].len(), 7);
        expect_test::expect![[r#"
            [
                "InvalidField /nme: products has no field 'nme'; did you mean 'name'?",
                "InvalidField /name: name is required (text)",
                "InvalidField /category: category is required (text)",
                "InvalidField /price: price holds at most 8 digits before the point (numeric(10, 2)), not 123456789",
                "InvalidField /stock: stock takes integer, not a string",
                "InvalidField /description: description is required (text)",
                "InvalidField /created_at: 'soon' is not a valid value for created_at (expected timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
                "InvalidField /updated_at: updated_at is required (timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
            ]
        "#]]
        .assert_debug_eq(&problems(
            WriteMethod::Post,
            "products",
            None,
            r#"{"nme":"Lamp","price":123456789,"stock":"3","created_at":"soon"}"#,
        ));
    }

    #[test]
    fn bodies_that_are_not_objects() {
        for (body, phrase) in [
            ("", "the body is empty"),
            ("{", "not valid JSON"),
            ("42", "a number, not a JSON object"),
            ("[]", "the array is empty"),
            ("[1]", "expected a JSON object, got a number"),
            (r#"[{},{},{},{}]"#, "4 rows in one request; send at most 3"),
        ] {
            let got = problems(WriteMethod::Post, "users", None, body).join("\n");
            assert!(got.contains(phrase), "{body}: {got}");
        }
        let got = problems(WriteMethod::Patch, "users", Some("1"), "{}").join("\n");
        assert!(got.contains("the object is empty"), "{got}");
    }

    #[test]
    fn patch_and_put() {
        let patch = plan(
            WriteMethod::Patch,
            "users",
            Some("5"),
            r#"{"name":"Ada","profile_picture":null}"#,
        )
        .unwrap();
        let WriteAction::Update { key, set } = patch.action else {
            panic!()
        };
        assert_eq!(key.values, [SqlValue::Integer(5)]);
        assert_eq!(set.len(), 2);
        assert_eq!(set[1].value, SqlValue::Null);
        let put = plan(
            WriteMethod::Put,
            "users",
            Some("5"),
            r#"{"name":"Ada","email":"a@b","country":"GB","created_at":"2024-01-01","updated_at":"2024-01-01"}"#,
        )
        .unwrap();
        let WriteAction::Update { set, .. } = put.action else {
            panic!()
        };
        let names: Vec<&str> = set.iter().map(|a| a.column.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "email",
                "profile_picture",
                "country",
                "created_at",
                "updated_at"
            ]
        );
        expect_test::expect![[r#"
            [
                "InvalidField /id: id is the row's key (5) and cannot change to 6",
            ]
        "#]]
        .assert_debug_eq(&problems(
            WriteMethod::Patch,
            "users",
            Some("5"),
            r#"{"id":6}"#,
        ));
        expect_test::expect![[r#"
            [
                "InvalidField /name: name cannot be null",
                "InvalidField /email: email is required (text)",
                "InvalidField /country: country is required (text)",
                "InvalidField /created_at: created_at is required (timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
                "InvalidField /updated_at: updated_at is required (timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
            ]
        "#]]
        .assert_debug_eq(&problems(WriteMethod::Put, "users", Some("5"), r#"{"name":null}"#));
        expect_test::expect![[r#"
            [
                "InvalidField /quantity: quantity must be between -2147483648 and 2147483647, not 9999999999",
            ]
        "#]]
        .assert_debug_eq(&problems(WriteMethod::Patch, "order_items", Some("1"), r#"{"quantity":9999999999}"#));
    }
}
