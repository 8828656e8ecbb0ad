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
}

pub(super) fn plan_filter(
    resource: &Resource,
    raw: &RawFilter,
    limits: &Limits,
) -> Result<Filter, QueryError> {
    let column = resource.column(&raw.column).ok_or_else(|| {
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
        Operator::Cs | Operator::Cd | Operator::Ov if column.kind != ColumnKind::Array => {
            return Err(unsupported("cs, cd and ov apply to arrays"));
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
    })
}

/// A pattern's length and wildcards, within the limits: each wildcard can
/// multiply the work of matching a row.
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
