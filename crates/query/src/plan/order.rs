//! Sort keys: both spellings (`-price`, `price_desc`), and the tie-breakers
//! that make every order total.

use crate::error::{ErrorKind, QueryError, QueryErrors, did_you_mean};
use crate::schema::{Column, Resource};

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub column: Column,
    pub descending: bool,
}

pub(super) fn plan_order(
    resource: &Resource,
    sort: Option<&[String]>,
) -> Result<Vec<OrderKey>, QueryErrors> {
    let mut errors = QueryErrors::default();
    let mut order: Vec<OrderKey> = Vec::new();
    for token in sort.unwrap_or_default() {
        let spelled = if let Some(name) = token.strip_prefix('-') {
            Some((name, true))
        } else if resource.column(token).is_some() {
            Some((token.as_str(), false))
        } else if let Some(name) = token.strip_suffix("_asc") {
            Some((name, false))
        } else {
            token.strip_suffix("_desc").map(|name| (name, true))
        };
        let found = spelled.and_then(|(name, descending)| {
            resource.column(name).map(|column| (column, descending))
        });
        let Some((column, descending)) = found else {
            let given = spelled.map_or(token.as_str(), |(name, _)| name);
            let detail = if given.contains('.') {
                format!(
                    "sorting by a related field ('{given}') is not supported; sort by a column of {}",
                    resource.name
                )
            } else {
                format!(
                    "unknown field '{given}' in sort{}; write name, -name, name_asc or name_desc",
                    did_you_mean(given, resource.columns.iter().map(|c| c.name.as_str()))
                )
            };
            errors.push(QueryError::new(ErrorKind::UnknownField, "sort", detail));
            continue;
        };
        if !column.kind.is_ordered() {
            errors.push(QueryError::new(
                ErrorKind::InvalidValue,
                "sort",
                format!(
                    "{} holds {} and cannot be sorted",
                    column.name,
                    column.kind.describe()
                ),
            ));
        } else if order.iter().any(|k| k.column.name == column.name) {
            // as in SQL, a later key on a column the rows are already
            // ordered by changes nothing (`sort=id,-id` is `sort=id`)
        } else {
            order.push(OrderKey {
                column: column.clone(),
                descending,
            });
        }
    }
    // Tie-breakers run in the direction of the last key, so that a keyset
    // condition stays a row-value comparison an index can answer.
    let descending = order.last().is_some_and(|k| k.descending);
    for column in resource.tie_breakers() {
        if !order.iter().any(|k| k.column.name == column.name) {
            order.push(OrderKey {
                column: column.clone(),
                descending,
            });
        }
    }
    errors.into_result(order)
}
