//! Plans to SQL text and bound values, for SQLite and PostgreSQL.
//!
//! [`Writer`] is the only code that writes identifiers (always quoted, from
//! the schema) and parameters (always bound) into SQL text. Rendering is
//! deterministic: the same plan gives the same text, so the drivers'
//! prepared-statement caches hit.
//!
//! Row queries return plain columns ([`columns`]), which
//! [`crate::rows`] turns into JSON; embedded relations take one statement per
//! level, batched by the join values of the level above.

mod columns;
mod select;
mod write;

pub use columns::{EmbedQuery, fetch_related, take_rows};
pub use select::{ReadSql, render_collection, render_single};
pub use write::{CurrentRow, WriteSql, render_write};

use crate::schema::Column;
use crate::value::SqlValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One statement and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
}

/// Builds one statement.
struct Writer {
    dialect: Dialect,
    text: String,
    params: Vec<SqlValue>,
    aliases: usize,
}

impl Writer {
    fn new(dialect: Dialect) -> Writer {
        Writer {
            dialect,
            text: String::with_capacity(512),
            params: Vec::new(),
            aliases: 0,
        }
    }

    fn finish(self) -> Sql {
        Sql {
            text: self.text,
            params: self.params,
        }
    }

    fn push(&mut self, sql: &str) {
        self.text.push_str(sql);
    }

    /// A fresh table alias: `t0`, `t1`, ...
    fn alias(&mut self) -> String {
        let alias = format!("t{}", self.aliases);
        self.aliases += 1;
        alias
    }

    /// A double-quoted identifier, inner quotes doubled: the one way names
    /// reach SQL.
    fn ident(&mut self, name: &str) {
        self.text.push('"');
        self.text.push_str(&name.replace('"', "\"\""));
        self.text.push('"');
    }

    /// A resource's table: `"schema"."table"` for a schema-qualified
    /// PostgreSQL resource (`sales.orders`), else `"table"`.
    fn table(&mut self, resource: &str) {
        match (self.dialect, crate::schema::table_of(resource)) {
            (Dialect::Postgres, (Some(schema), table)) => {
                self.ident(schema);
                self.push(".");
                self.ident(table);
            }
            _ => self.ident(resource),
        }
    }

    /// `alias."column"`
    fn column(&mut self, alias: &str, column: &str) {
        self.push(alias);
        self.push(".");
        self.ident(column);
    }

    /// `alias."a" = $1 AND alias."b" = $2`: the row with this key.
    fn row_key_equals(&mut self, alias: &str, key: &crate::key::RowKey) {
        for (i, (column, value)) in key.columns.iter().zip(&key.values).enumerate() {
            if i > 0 {
                self.push(" AND ");
            }
            self.column(alias, &column.name);
            self.push(" = ");
            self.value(value.clone(), column);
        }
    }

    /// Binds a value compared with `column`, and writes its placeholder:
    /// `?N` on SQLite; `$N::type` on PostgreSQL, where every value is bound
    /// as text and cast to the column's type by the server.
    fn value(&mut self, value: SqlValue, column: &Column) {
        let index = self.bind(value);
        self.placeholder(index, Some(&column.db_type));
    }

    /// Binds a value that is not compared with a column (a LIMIT), as bigint.
    fn number(&mut self, value: u64) {
        let index = self.bind(SqlValue::Integer(value.min(i64::MAX as u64) as i64));
        self.placeholder(index, Some("pg_catalog.int8"));
    }

    fn bind(&mut self, value: SqlValue) -> usize {
        self.params.push(value);
        self.params.len()
    }

    /// Writes the placeholder of an already bound parameter again.
    fn placeholder(&mut self, index: usize, db_type: Option<&str>) {
        match self.dialect {
            Dialect::Sqlite => self.push(&format!("?{index}")),
            Dialect::Postgres => {
                self.push(&format!("${index}"));
                if let Some(db_type) = db_type {
                    self.push("::");
                    self.type_name(db_type);
                }
            }
        }
    }

    /// A PostgreSQL type as `"schema"."name"`.
    fn type_name(&mut self, db_type: &str) {
        match db_type.split_once('.') {
            Some((schema, name)) => {
                self.ident(schema);
                self.push(".");
                self.ident(name);
            }
            None => self.ident(db_type),
        }
    }
}

#[cfg(test)]
mod tests;
