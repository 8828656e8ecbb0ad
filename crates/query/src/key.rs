//! A row's address in a URL: `/v1/{resource}/{key}`.
//!
//! A single-column key is its value (`/v1/users/7`). A composite key is its
//! values in the key's column order, separated by commas
//! (`/v1/playlist_track/1,3377`); a comma inside a value is percent-encoded
//! (`%2C`), as are a percent sign, a slash and what a path cannot hold.

use crate::error::{ErrorKind, QueryError};
use crate::schema::{Column, Resource};
use crate::value::{SqlValue, parse_value};
use percent_encoding::{AsciiSet, percent_decode_str, utf8_percent_encode};

/// What is encoded in one value of a key: what a path segment cannot hold,
/// and the separator of a composite key's values.
const IN_KEY: &AsciiSet = &crate::canonical::SEGMENT.add(b',');

/// A primary key's columns and the values a URL (or a written row) gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct RowKey {
    pub columns: Vec<Column>,
    pub values: Vec<SqlValue>,
}

impl RowKey {
    /// Reads the path segment `raw` (still percent-encoded) as a key of
    /// `resource`, each value checked against its column.
    pub fn parse(resource: &Resource, raw: &str) -> Result<RowKey, QueryError> {
        let columns = key_columns(resource)?;
        let parts: Vec<&str> = if columns.len() == 1 {
            vec![raw]
        } else {
            raw.split(',').collect()
        };
        if parts.len() != columns.len() {
            return Err(QueryError::new(
                ErrorKind::NotFound,
                "id",
                format!(
                    "a row of {} is addressed by its {} key values ({}) in that order, separated by commas (a comma inside a value is %2C), and {} were given",
                    resource.name,
                    columns.len(),
                    names(&columns),
                    parts.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(parts.len());
        for (column, part) in columns.iter().zip(parts) {
            let text = percent_decode_str(part).decode_utf8().map_err(|_| {
                QueryError::new(
                    ErrorKind::Malformed,
                    "id",
                    "the row key is not UTF-8 once percent-decoded",
                )
            })?;
            let value = parse_value(column, &text)
                .map_err(|detail| QueryError::new(ErrorKind::InvalidValue, "id", detail))?;
            values.push(value);
        }
        Ok(RowKey {
            columns: columns.into_iter().cloned().collect(),
            values,
        })
    }

    /// The key spelled one way, as a path segment (`/v1/users/007` and
    /// `/v1/users/7` are one row): in routes, cache keys and row versions.
    pub fn text(&self) -> String {
        spell(
            self.values
                .iter()
                .map(|v| v.as_text().unwrap_or_default())
                .collect(),
        )
    }

    /// `PlaylistId 1, TrackId 3377`: the key in a sentence.
    pub fn describe(&self) -> String {
        self.columns
            .iter()
            .zip(&self.values)
            .map(|(c, v)| format!("{} {}", c.name, v.as_text().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The key's values as one path segment: each percent-encoded, joined by
/// commas.
pub fn spell(values: Vec<String>) -> String {
    values
        .iter()
        .map(|v| utf8_percent_encode(v, IN_KEY).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The primary key's columns, or why the resource's rows have no URL.
pub fn key_columns(resource: &Resource) -> Result<Vec<&Column>, QueryError> {
    let columns: Vec<&Column> = resource
        .primary_key
        .iter()
        .filter_map(|name| resource.column(name))
        .collect();
    if columns.is_empty() || columns.len() != resource.primary_key.len() {
        return Err(QueryError::new(
            ErrorKind::NotFound,
            "id",
            format!(
                "{} has no primary key, so its rows have no URL; read it as a collection with filters",
                resource.name
            ),
        ));
    }
    Ok(columns)
}

fn names(columns: &[&Column]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnKind, ResourceKind};

    fn pairs() -> Resource {
        Resource {
            name: "pairs".into(),
            kind: ResourceKind::Table,
            columns: vec![
                Column::new("a", ColumnKind::Integer, "integer"),
                Column::new("b", ColumnKind::Text, "text"),
            ],
            primary_key: vec!["a".into(), "b".into()],
            relations: Vec::new(),
            insertable: true,
            writable: crate::schema::Writable::ALL,
        }
    }

    #[test]
    fn composite_keys_are_values_in_key_order() {
        let key = RowKey::parse(&pairs(), "007,x%2Cy%25").unwrap();
        assert_eq!(
            key.values,
            [SqlValue::Integer(7), SqlValue::Text("x,y%".into())]
        );
        assert_eq!(key.text(), "7,x%2Cy%25");
        assert_eq!(key.describe(), "a 7, b x,y%");
    }

    #[test]
    fn a_key_of_the_wrong_length_names_the_columns() {
        let error = RowKey::parse(&pairs(), "1").unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert!(error.detail.contains("2 key values (a, b)"), "{error:?}");
        let error = RowKey::parse(&pairs(), "x,y").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidValue);
    }
}
