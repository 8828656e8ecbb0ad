//! Filters: `column[operator]=value`, each value checked against the
//! column's type before any SQL exists.

use super::Limits;
use crate::error::{ErrorKind, QueryError, did_you_mean};
use crate::params::{Operator, RESERVED, RawFilter, split_list};
use crate::schema::{Column, ColumnKind, Resource};
use crate::value::{SqlValue, array_literal, parse_value};

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: Column,
    pub operator: Operator,
    /// One value, several for `in`/`nin`, and for `null` the wanted
    /// nullness as a Bool.
    pub values: Vec<SqlValue>,
    /// Keys into a JSON column (`meta->size->0`): the filter compares the
    /// value found there, as text, or as a number when `gt`/`lt` are given
    /// one. Empty for a plain column filter.
    pub path: Vec<String>,
}

/// The most keys one JSON path may hold.
pub const MAX_JSON_PATH: usize = 16;

pub(super) fn plan_filter(
    resource: &Resource,
    raw: &RawFilter,
    limits: &Limits,
) -> Result<Filter, QueryError> {
    let column = resource.column(&raw.column);
    // `meta->color`: a key path into a JSON column, unless a column is
    // named so
    if column.is_none()
        && let Some((name, keys)) = raw.column.split_once("->")
        && let Some(column) = resource.column(name)
    {
        let path = keys.split("->").map(str::to_string).collect();
        return plan_path_filter(column, path, raw, limits);
    }
    let column = column.ok_or_else(|| {
        let candidates = RESERVED
            .iter()
            .copied()
            .chain(resource.columns.iter().map(|c| c.name.as_str()));
        QueryError::new(
            ErrorKind::UnknownParameter,
            raw.parameter.as_str(),
            format!(
                "'{}' is neither a parameter nor a column of {}{}",
                raw.column,
                resource.name,
                did_you_mean(&raw.column, candidates)
            ),
        )
    })?;
    let invalid =
        |detail: String| QueryError::new(ErrorKind::InvalidValue, raw.parameter.as_str(), detail);
    let too_costly =
        |detail: String| QueryError::new(ErrorKind::LimitExceeded, raw.parameter.as_str(), detail);
    let unsupported = |why: &str| {
        QueryError::new(
            ErrorKind::InvalidOperator,
            raw.parameter.as_str(),
            format!(
                "operator '{}' does not apply to {} ({}): {why}",
                raw.operator.name(),
                column.name,
                column.kind.describe()
            ),
        )
    };
    let values = match raw.operator {
        Operator::Null => match raw.value.as_str() {
            "true" => vec![SqlValue::Bool(true)],
            "false" => vec![SqlValue::Bool(false)],
            other => {
                return Err(invalid(format!(
                    "[null] takes true or false, not '{other}'"
                )));
            }
        },
        Operator::Fts if !column.searchable => {
            return Err(unsupported(
                "full-text search applies to PostgreSQL text and tsvector columns and to SQLite FTS5 tables",
            ));
        }
        Operator::Fts => {
            if raw.value.trim().is_empty() {
                return Err(invalid("[fts] takes the words to search for".into()));
            }
            if raw.value.chars().count() > limits.max_pattern_length {
                return Err(too_costly(format!(
                    "the search is {} characters long, and limits.max_pattern_length is {}",
                    raw.value.chars().count(),
                    limits.max_pattern_length
                )));
            }
            vec![SqlValue::Text(raw.value.clone())]
        }
        _ if column.kind == ColumnKind::Range && raw.operator.takes_range() => {
            vec![range_value(column, raw.operator, &raw.value).map_err(invalid)?]
        }
        Operator::Sl | Operator::Sr | Operator::Nxr | Operator::Nxl | Operator::Adj => {
            return Err(unsupported("sl, sr, nxr, nxl and adj apply to ranges"));
        }
        Operator::Cs | Operator::Cd | Operator::Ov if column.kind != ColumnKind::Array => {
            return Err(unsupported("cs, cd and ov apply to arrays and ranges"));
        }
        Operator::Cs | Operator::Cd | Operator::Ov => {
            let items = split_list(&raw.value).map_err(|e| invalid(format!("bad list: {e}")))?;
            if items.len() > limits.max_list_values {
                return Err(too_costly(format!(
                    "the list holds {} values, and limits.max_list_values is {}: split the request",
                    items.len(),
                    limits.max_list_values
                )));
            }
            let item = column.item();
            let values = items
                .iter()
                .map(|raw| parse_value(&item, raw).map_err(invalid))
                .collect::<Result<Vec<_>, _>>()?;
            vec![SqlValue::Text(array_literal(&values))]
        }
        _ if column.kind == ColumnKind::Array => {
            return Err(unsupported("arrays take [cs], [cd], [ov] and [null]"));
        }
        _ if !column.kind.is_comparable() => {
            return Err(unsupported("only [null] filters this column"));
        }
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
            if !column.kind.is_ordered() =>
        {
            return Err(unsupported("its values have no order"));
        }
        Operator::Like | Operator::Ilike if !column.kind.is_textual() => {
            return Err(unsupported("patterns apply to text columns only"));
        }
        Operator::Like | Operator::Ilike => {
            check_pattern(&raw.value, limits).map_err(too_costly)?;
            vec![SqlValue::Text(star_to_percent(&raw.value))]
        }
        Operator::In | Operator::Nin => {
            let items = split_list(&raw.value).map_err(|e| invalid(format!("bad list: {e}")))?;
            if items.len() > limits.max_list_values {
                return Err(too_costly(format!(
                    "the list holds {} values, and limits.max_list_values is {}: split the request",
                    items.len(),
                    limits.max_list_values
                )));
            }
            items
                .iter()
                .map(|item| parse_value(column, item).map_err(invalid))
                .collect::<Result<_, _>>()?
        }
        _ => vec![parse_value(column, &raw.value).map_err(invalid)?],
    };
    Ok(Filter {
        column: column.clone(),
        operator: raw.operator,
        values,
        path: Vec::new(),
    })
}

/// A filter on the value at `path` in a JSON column: compared as text
/// (`meta->color=red`, `meta->tags->0[in]=a,b`), or as a number by
/// `gt`/`gte`/`lt`/`lte` when given one (`meta->size[gt]=10`).
fn plan_path_filter(
    column: &Column,
    path: Vec<String>,
    raw: &RawFilter,
    limits: &Limits,
) -> Result<Filter, QueryError> {
    let error = |kind, detail: String| QueryError::new(kind, raw.parameter.as_str(), detail);
    // PostgreSQL json/jsonb; on SQLite, a column declared JSON
    let holds_json = column.kind == ColumnKind::Json
        || (column.kind == ColumnKind::Text
            && column.db_type.to_ascii_uppercase().contains("JSON"));
    if !holds_json {
        return Err(error(
            ErrorKind::InvalidOperator,
            format!(
                "{} holds {}, not JSON: key paths (column->key) apply to JSON columns",
                column.name,
                column.kind.describe()
            ),
        ));
    }
    if path.len() > MAX_JSON_PATH {
        return Err(error(
            ErrorKind::LimitExceeded,
            format!(
                "a key path may hold at most {MAX_JSON_PATH} keys, not {}",
                path.len()
            ),
        ));
    }
    if let Some(bad) = path.iter().find(|key| {
        key.is_empty() || key.contains(['"', '\\']) || key.chars().any(char::is_control)
    }) {
        return Err(error(
            ErrorKind::InvalidValue,
            format!(
                "'{bad}' is not a key brisk can follow: keys are not empty and hold no double quote, backslash or control character"
            ),
        ));
    }
    let text = |value: &str| SqlValue::Text(value.to_string());
    let values = match raw.operator {
        Operator::Eq | Operator::Ne => vec![text(&raw.value)],
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
            vec![match raw.value.parse::<f64>() {
                Ok(number) if number.is_finite() && crate::value::is_decimal_number(&raw.value) => {
                    SqlValue::Real(number)
                }
                _ => text(&raw.value),
            }]
        }
        Operator::In | Operator::Nin => {
            let items = split_list(&raw.value)
                .map_err(|e| error(ErrorKind::InvalidValue, format!("bad list: {e}")))?;
            if items.len() > limits.max_list_values {
                return Err(error(
                    ErrorKind::LimitExceeded,
                    format!(
                        "the list holds {} values, and limits.max_list_values is {}: split the request",
                        items.len(),
                        limits.max_list_values
                    ),
                ));
            }
            items.iter().map(|item| text(item)).collect()
        }
        Operator::Null => match raw.value.as_str() {
            "true" => vec![SqlValue::Bool(true)],
            "false" => vec![SqlValue::Bool(false)],
            other => {
                return Err(error(
                    ErrorKind::InvalidValue,
                    format!("[null] takes true or false, not '{other}'"),
                ));
            }
        },
        other => {
            return Err(error(
                ErrorKind::InvalidOperator,
                format!(
                    "operator '{}' does not apply to a key path; use eq, ne, gt, gte, lt, lte, in, nin or null",
                    other.name()
                ),
            ));
        }
    };
    Ok(Filter {
        column: column.clone(),
        operator: raw.operator,
        values,
        path,
    })
}

/// A pattern's length and wildcards, within the limits: each wildcard can
/// multiply the work of matching a row.
/// The value a range operator compares with, as a literal of the column's
/// own type: a range (`[2024-01-01,2024-02-01)`, `(1,5]`, `empty`), a
/// multirange for a multirange column (`{[1,3),[7,9)}`; a single range is
/// taken as one), or, for `cs`, one element (`2024-01-15`), which is the
/// range `["e","e"]` that holds exactly it. PostgreSQL checks the literal.
fn range_value(column: &Column, operator: Operator, raw: &str) -> Result<SqlValue, String> {
    let value = raw.trim();
    let is_range = value.starts_with(['[', '('])
        || value.eq_ignore_ascii_case("empty")
        || value.starts_with('{');
    let range = if is_range {
        value.to_string()
    } else if operator == Operator::Cs && !value.is_empty() {
        let quoted = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        format!("[{quoted},{quoted}]")
    } else {
        return Err(format!(
            "[{}] on {} takes a range such as [1,10) or (2024-01-01,2024-02-01]{}, not '{value}'",
            operator.name(),
            column.name,
            if operator == Operator::Cs {
                ", or one value the range must hold"
            } else {
                ""
            }
        ));
    };
    let multirange = column.db_type.ends_with("multirange");
    Ok(SqlValue::Text(if multirange && !range.starts_with('{') {
        format!("{{{range}}}")
    } else {
        range
    }))
}

fn check_pattern(pattern: &str, limits: &Limits) -> Result<(), String> {
    let length = pattern.chars().count();
    if length > limits.max_pattern_length {
        return Err(format!(
            "the pattern has {length} characters, and limits.max_pattern_length is {}",
            limits.max_pattern_length
        ));
    }
    let wildcards = pattern
        .chars()
        .filter(|c| matches!(c, '*' | '%' | '_'))
        .count();
    if wildcards > limits.max_pattern_wildcards {
        return Err(format!(
            "the pattern has {wildcards} wildcards, and limits.max_pattern_wildcards is {}",
            limits.max_pattern_wildcards
        ));
    }
    Ok(())
}

/// `*` is a friendlier spelling of `%` in patterns (no percent-escape
/// needed); `\*` stays a literal star.
fn star_to_percent(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        out.push(if c == '*' && !escaped { '%' } else { c });
        escaped = c == '\\' && !escaped;
    }
    out
}
