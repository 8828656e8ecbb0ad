//! Values bound to SQL parameters, and the checks that turn client text into
//! them according to a column's kind.

use crate::schema::{Column, ColumnKind};

/// A value bound to one SQL parameter; never spliced into SQL text.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    /// An exact decimal kept as its checked text, so PostgreSQL numerics
    /// lose no digits.
    Decimal(String),
    Text(String),
    Bool(bool),
    /// Binary data (BLOB, bytea), sent as base64 by clients.
    Bytes(Vec<u8>),
}

impl SqlValue {
    /// The value as text, the way the PostgreSQL driver binds it (the SQL
    /// casts it to the column's type). `None` for NULL.
    pub fn as_text(&self) -> Option<String> {
        match self {
            SqlValue::Null => None,
            SqlValue::Integer(i) => Some(i.to_string()),
            SqlValue::Real(f) if f.is_nan() => Some("NaN".into()),
            SqlValue::Real(f) if f.is_infinite() => {
                Some(if *f > 0.0 { "Infinity" } else { "-Infinity" }.into())
            }
            SqlValue::Real(f) => Some(f.to_string()),
            SqlValue::Decimal(d) => Some(d.clone()),
            SqlValue::Text(t) => Some(t.clone()),
            SqlValue::Bool(b) => Some(b.to_string()),
            // bytea's hex input form
            SqlValue::Bytes(bytes) => {
                use std::fmt::Write;
                let mut hex = String::with_capacity(2 + 2 * bytes.len());
                hex.push_str("\\x");
                for byte in bytes {
                    let _ = write!(hex, "{byte:02x}");
                }
                Some(hex)
            }
        }
    }
}

/// Checks `raw` against the column's kind. The error is a lowercase
/// sentence saying what the column expects.
pub fn parse_value(column: &Column, raw: &str) -> Result<SqlValue, String> {
    let expected = || {
        format!(
            "'{raw}' is not a valid value for {} (expected {})",
            column.name,
            column.kind.describe()
        )
    };
    if !column.values.is_empty() && !column.values.iter().any(|v| v == raw) {
        return Err(not_a_value(column, raw));
    }
    match column.kind {
        // `5.0` is the integer 5, as JSON Schema reads it
        ColumnKind::Integer => raw
            .parse::<i64>()
            .or_else(|e| match raw.split_once('.') {
                Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => {
                    whole.parse::<i64>()
                }
                _ => Err(e),
            })
            .map(SqlValue::Integer)
            .map_err(|_| expected()),
        ColumnKind::Real => {
            if let Some(f) = non_finite(column, raw) {
                Ok(SqlValue::Real(f))
            } else if is_decimal_number(raw) {
                raw.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(SqlValue::Real)
                    .ok_or_else(expected)
            } else {
                Err(expected())
            }
        }
        ColumnKind::Numeric if is_decimal_number(raw) => Ok(SqlValue::Decimal(raw.to_string())),
        ColumnKind::Numeric => Err(expected()),
        // PostgreSQL reads a range literal, and refuses a bad one naming the parameter
        ColumnKind::Text | ColumnKind::Range => Ok(SqlValue::Text(raw.to_string())),
        // Untyped (SQLite view expressions) or exotic: numbers bind as numbers,
        // as SQLite's own numeric affinity would read them; PostgreSQL casts
        // the text either way.
        ColumnKind::Other => Ok(if let Ok(i) = raw.parse::<i64>() {
            SqlValue::Integer(i)
        } else if is_decimal_number(raw) {
            raw.parse()
                .map_or_else(|_| SqlValue::Text(raw.to_string()), SqlValue::Real)
        } else {
            SqlValue::Text(raw.to_string())
        }),
        ColumnKind::Boolean => match raw {
            "true" => Ok(SqlValue::Bool(true)),
            "false" => Ok(SqlValue::Bool(false)),
            _ => Err(expected()),
        },
        ColumnKind::Timestamp if is_timestamp(raw) => Ok(SqlValue::Text(instant(column, raw))),
        ColumnKind::Date if is_date(raw) => Ok(SqlValue::Text(raw.to_string())),
        ColumnKind::Uuid if is_uuid(raw) => Ok(SqlValue::Text(raw.to_ascii_lowercase())),
        ColumnKind::Timestamp | ColumnKind::Date | ColumnKind::Uuid => Err(expected()),
        ColumnKind::Json | ColumnKind::Blob | ColumnKind::Array => Err(format!(
            "{} holds {} and cannot be compared",
            column.name,
            column.kind.describe()
        )),
    }
}

/// A PostgreSQL array literal of checked values: `{"a","b c",NULL}`, every
/// item quoted and escaped, so the text casts to the column's array type.
pub fn array_literal(values: &[SqlValue]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|value| match value.as_text() {
            None => "NULL".to_string(),
            Some(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// The refusal of a value an enum does not take, listing those it does.
pub fn not_a_value(column: &Column, raw: &str) -> String {
    const LISTED: usize = 20;
    let mut listed = column
        .values
        .iter()
        .take(LISTED)
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if column.values.len() > LISTED {
        listed.push_str(&format!(" and {} more", column.values.len() - LISTED));
    }
    format!(
        "'{raw}' is not a value of {}; it takes {listed}",
        column.name
    )
}

/// Converts a key value rendered as JSON (in a cursor) back to
/// a bound value for the column.
pub fn from_json(column: &Column, value: &serde_json::Value) -> Option<SqlValue> {
    use serde_json::Value;
    Some(match (value, column.kind) {
        (Value::Null, _) => SqlValue::Null,
        (Value::Bool(b), _) => SqlValue::Bool(*b),
        (Value::Number(n), ColumnKind::Numeric) => SqlValue::Decimal(n.to_string()),
        (Value::Number(n), ColumnKind::Boolean) => SqlValue::Integer(n.as_i64()?),
        (Value::Number(n), _) => match n.as_i64() {
            Some(i) if column.kind == ColumnKind::Integer => SqlValue::Integer(i),
            _ => SqlValue::Real(n.as_f64()?),
        },
        (Value::String(s), ColumnKind::Real) => SqlValue::Real(non_finite(column, s)?),
        (Value::String(s), _) => SqlValue::Text(s.clone()),
        (Value::Array(_) | Value::Object(_), _) => return None,
    })
}

/// `NaN`, `Infinity` or `-Infinity` for a PostgreSQL float column, which
/// holds them (SQLite turns NaN into NULL, so its columns take numbers only).
pub fn non_finite(column: &Column, raw: &str) -> Option<f64> {
    if !column.db_type.starts_with("pg_catalog.float") {
        return None;
    }
    match raw {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// `-?digits[.digits][e[+-]digits]`: what both databases read as a number.
pub fn is_decimal_number(raw: &str) -> bool {
    let s = raw.strip_prefix('-').unwrap_or(raw);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_empty() || digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    digits(whole) && fraction_ok && exponent_ok && !mantissa.ends_with('.')
}

/// A checked date-time (or date) as the column's database reads it.
/// PostgreSQL reads offsets up to ±15:59 only, where RFC 3339 allows
/// ±23:59: a `timestamptz` gets the same instant in UTC (what it stores
/// anyway), a `timestamp` the local part (it ignores the offset itself).
/// Anything else, and a date alone, as given.
fn instant(column: &Column, raw: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(raw, &Rfc3339) else {
        return raw.to_string();
    };
    match column.db_type.as_str() {
        "pg_catalog.timestamptz" => at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_else(|_| raw.to_string()),
        // the offset is `Z` or the last six characters (`+05:30`)
        "pg_catalog.timestamp" => raw
            .strip_suffix(['Z', 'z'])
            .or_else(|| raw.get(..raw.len() - 6))
            .unwrap_or(raw)
            .to_string(),
        _ => raw.to_string(),
    }
}

fn is_timestamp(raw: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(raw, &Rfc3339).is_ok() || is_date(raw)
}

fn is_date(raw: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    raw.len() == 10 && time::Date::parse(raw, &format).is_ok()
}

fn is_uuid(raw: &str) -> bool {
    let groups: Vec<&str> = raw.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(kind: ColumnKind) -> Column {
        Column::new("c", kind, "")
    }

    #[test]
    fn postgres_instants_reach_the_database_in_a_form_it_reads() {
        let tz = Column::new("c", ColumnKind::Timestamp, "pg_catalog.timestamptz");
        let local = Column::new("c", ColumnKind::Timestamp, "pg_catalog.timestamp");
        // PostgreSQL reads offsets up to ±15:59 only: the same instant in UTC
        assert_eq!(
            parse_value(&tz, "2024-01-02T23:04:05.25+20:00"),
            Ok(SqlValue::Text("2024-01-02T03:04:05.25Z".into()))
        );
        // a timestamp without time zone ignores the offset, as PostgreSQL does
        assert_eq!(
            parse_value(&local, "2024-01-02T23:04:05-16:46"),
            Ok(SqlValue::Text("2024-01-02T23:04:05".into()))
        );
        assert_eq!(
            parse_value(&local, "2024-01-02T23:04:05Z"),
            Ok(SqlValue::Text("2024-01-02T23:04:05".into()))
        );
        assert_eq!(
            parse_value(&local, "2024-01-02"),
            Ok(SqlValue::Text("2024-01-02".into()))
        );
        assert!(parse_value(&local, "2024-01-02T25:00:00Z").is_err());
    }

    #[test]
    fn integral_decimals_are_integers() {
        assert_eq!(
            parse_value(&column(ColumnKind::Integer), "5.00"),
            Ok(SqlValue::Integer(5))
        );
        assert!(parse_value(&column(ColumnKind::Integer), "5.5").is_err());
        assert!(parse_value(&column(ColumnKind::Integer), "5.").is_err());
    }

    #[test]
    fn checks_values_against_the_column_kind() {
        use ColumnKind::*;
        assert_eq!(
            parse_value(&column(Integer), "42"),
            Ok(SqlValue::Integer(42))
        );
        assert!(parse_value(&column(Integer), "4.2").is_err());
        assert!(parse_value(&column(Integer), "99999999999999999999").is_err());
        assert_eq!(
            parse_value(&column(Real), "-1.5e3"),
            Ok(SqlValue::Real(-1500.0))
        );
        for bad in ["inf", "NaN", "1.", ".5", "1e", "--1", "0x10", "1,5", ""] {
            assert!(parse_value(&column(Real), bad).is_err(), "{bad}");
            assert!(parse_value(&column(Numeric), bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_value(&column(Numeric), "10.50"),
            Ok(SqlValue::Decimal("10.50".into()))
        );
        assert_eq!(
            parse_value(&column(Boolean), "true"),
            Ok(SqlValue::Bool(true))
        );
        assert!(parse_value(&column(Boolean), "yes").is_err());
        assert!(parse_value(&column(Timestamp), "2024-05-01T12:00:00Z").is_ok());
        assert!(parse_value(&column(Timestamp), "2024-05-01").is_ok());
        assert!(parse_value(&column(Timestamp), "2024-13-01").is_err());
        assert!(parse_value(&column(Timestamp), "yesterday").is_err());
        assert!(parse_value(&column(Date), "2024-02-30").is_err());
        assert!(parse_value(&column(Uuid), "123e4567-e89b-12d3-a456-426614174000").is_ok());
        assert!(parse_value(&column(Uuid), "123e4567").is_err());
        assert!(parse_value(&column(Json), "{}").is_err());
    }
}
