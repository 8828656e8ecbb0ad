//! JSON built by the database: one object per row, embeds as correlated
//! subqueries, so a request with `include` is still one statement.

use super::{Dialect, Writer};
use crate::plan::{Embed, Selection};
use crate::schema::{Cardinality, Column, ColumnKind};

/// PostgreSQL functions take at most 100 arguments, so `json_build_object`
/// takes at most 50 pairs; wider selections use `row_to_json`.
const MAX_PAIRS: usize = 50;

impl Writer {
    /// The JSON object for the row at `alias`.
    pub(super) fn row_json(&mut self, selection: &Selection, alias: &str) {
        let pairs = selection.columns.len() + selection.embeds.len();
        match self.dialect {
            Dialect::Postgres if pairs > MAX_PAIRS => {
                self.push("(SELECT row_to_json(r) FROM (SELECT ");
                let mut first = true;
                for column in &selection.columns {
                    self.separator(&mut first);
                    self.column_json(column, alias);
                    self.push(" AS ");
                    self.ident(&column.name);
                }
                for embed in &selection.embeds {
                    self.separator(&mut first);
                    self.embed(embed, alias);
                    self.push(" AS ");
                    self.ident(&embed.relation.name);
                }
                self.push(") r)");
            }
            _ => {
                self.push(match self.dialect {
                    Dialect::Sqlite => "json_object(",
                    Dialect::Postgres => "json_build_object(",
                });
                let mut first = true;
                for column in &selection.columns {
                    self.separator(&mut first);
                    self.string_literal(&column.name);
                    self.push(", ");
                    self.column_json(column, alias);
                }
                for embed in &selection.embeds {
                    self.separator(&mut first);
                    self.string_literal(&embed.relation.name);
                    self.push(", ");
                    self.embed(embed, alias);
                }
                self.push(")");
            }
        }
    }

    /// A JSON array of the row's sort key values, for cursors.
    pub(super) fn keys_json(&mut self, keys: &[&Column], alias: &str) {
        self.push(match self.dialect {
            Dialect::Sqlite => "json_array(",
            Dialect::Postgres => "json_build_array(",
        });
        let mut first = true;
        for column in keys {
            self.separator(&mut first);
            self.column(alias, &column.name);
        }
        self.push(")");
    }

    fn separator(&mut self, first: &mut bool) {
        if !*first {
            self.push(", ");
        }
        *first = false;
    }

    /// A column value as JSON can hold it: binary as lowercase hex.
    fn column_json(&mut self, column: &Column, alias: &str) {
        match (column.kind, self.dialect) {
            (ColumnKind::Blob, Dialect::Sqlite) => {
                self.push("lower(hex(");
                self.column(alias, &column.name);
                self.push("))");
            }
            (ColumnKind::Blob, Dialect::Postgres) => {
                self.push("encode(");
                self.column(alias, &column.name);
                self.push(", 'hex')");
            }
            _ => self.column(alias, &column.name),
        }
    }

    /// The related row (to-one, or null) or rows (to-many, ordered by key).
    fn embed(&mut self, embed: &Embed, parent_alias: &str) {
        let alias = self.alias();
        let relation = &embed.relation;
        // A subquery's value loses SQLite's JSON subtype; json() restores it.
        let wrap = self.dialect == Dialect::Sqlite;
        if wrap {
            self.push("json(");
        }
        self.push("(SELECT ");
        match (relation.cardinality, self.dialect) {
            (Cardinality::ToOne, _) => self.row_json(&embed.selection, &alias),
            (Cardinality::ToMany, dialect) => {
                self.push(match dialect {
                    Dialect::Sqlite => "json_group_array(",
                    Dialect::Postgres => "coalesce(json_agg(",
                });
                self.row_json(&embed.selection, &alias);
                self.push(" ORDER BY ");
                let mut first = true;
                for column in &embed.order {
                    self.separator(&mut first);
                    self.column(&alias, &column.name);
                }
                self.push(match dialect {
                    Dialect::Sqlite => ")",
                    Dialect::Postgres => "), '[]'::json)",
                });
            }
        }
        self.push(" FROM ");
        self.ident(&relation.target);
        self.push(" ");
        self.push(&alias);
        self.push(" WHERE ");
        self.column(&alias, &relation.remote_column);
        self.push(" = ");
        self.column(parent_alias, &relation.local_column);
        self.push(")");
        if wrap {
            self.push(")");
        }
    }
}
