//! The statements of a write, each returning the row as stored (as JSON,
//! the way a GET renders it) and its key.

use super::columns::{self, Cells};
use super::{Dialect, Sql, Writer};
use crate::key::RowKey;
use crate::plan::Selection;
use crate::rows::Shape;
use crate::schema::{Column, Resource};
use crate::value::SqlValue;
use crate::write::{Assignment, WriteAction, WritePlan};

/// One statement per written row, run in one transaction. Each returns at
/// most one row: the row as stored (every column), or for DELETE its key.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSql {
    /// The table written.
    pub table: String,
    pub statements: Vec<Sql>,
    /// How a returned row becomes JSON; `shape.keys` holds the row's key.
    pub shape: Shape,
    /// For a write to one row by key: that row as a GET renders it, read
    /// first in the same transaction (and locked, on PostgreSQL), so that
    /// preconditions are checked against what is stored.
    pub current: Option<CurrentRow>,
    /// With a row rule, each returned row ends with one more cell: whether
    /// the row as written still satisfies the rule (`true`, or 1 on
    /// SQLite). A row that does not must not be written.
    pub visible: Option<usize>,
}

/// A statement that reads the row a write targets, and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentRow {
    pub sql: Sql,
    pub shape: Shape,
}

pub fn render_write(plan: &WritePlan, resource: &Resource, dialect: Dialect) -> WriteSql {
    let returned = Selection {
        columns: match plan.action {
            WriteAction::Delete { .. } => plan.key.clone(),
            _ => resource.columns.clone(),
        },
        embeds: Vec::new(),
    };
    let key: Vec<&Column> = plan.key.iter().collect();
    let (cells, shape, _) = columns::level(&returned, &key, None);
    let checks_rule = !plan.rules.is_empty() && !matches!(plan.action, WriteAction::Delete { .. });
    let visible = checks_rule.then_some(cells.columns.len());
    let statements = match &plan.action {
        WriteAction::Insert { rows, .. } => rows
            .iter()
            .map(|row| {
                let mut w = Writer::new(dialect);
                w.push("INSERT INTO ");
                w.table(&plan.resource);
                if row.is_empty() {
                    w.push(" DEFAULT VALUES");
                } else {
                    w.push(" (");
                    for (i, a) in row.iter().enumerate() {
                        if i > 0 {
                            w.push(", ");
                        }
                        w.ident(&a.column.name);
                    }
                    w.push(") VALUES (");
                    for (i, a) in row.iter().enumerate() {
                        if i > 0 {
                            w.push(", ");
                        }
                        w.assigned(a);
                    }
                    w.push(")");
                }
                w.returning(plan, &cells);
                w.finish()
            })
            .collect(),
        WriteAction::Update { key, set } => {
            let mut w = Writer::new(dialect);
            w.push("UPDATE ");
            w.table(&plan.resource);
            w.push(" SET ");
            for (i, a) in set.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                w.ident(&a.column.name);
                w.push(" = ");
                w.assigned(a);
            }
            w.where_key(plan, key);
            w.returning(plan, &cells);
            vec![w.finish()]
        }
        WriteAction::Delete { key } => {
            let mut w = Writer::new(dialect);
            w.push("DELETE FROM ");
            w.table(&plan.resource);
            w.where_key(plan, key);
            w.returning(plan, &cells);
            vec![w.finish()]
        }
    };
    let current = match &plan.action {
        WriteAction::Update { key, .. } | WriteAction::Delete { key } => {
            Some(current_row(plan, resource, key, dialect))
        }
        WriteAction::Insert { .. } => None,
    };
    WriteSql {
        table: plan.resource.clone(),
        statements,
        shape,
        current,
        visible,
    }
}

/// `SELECT` every column of the target row, as `GET /v1/{table}/{key}` does.
fn current_row(
    plan: &WritePlan,
    resource: &Resource,
    key: &RowKey,
    dialect: Dialect,
) -> CurrentRow {
    let every_column = Selection {
        columns: resource.columns.clone(),
        embeds: Vec::new(),
    };
    let key_columns: Vec<&Column> = plan.key.iter().collect();
    let (cells, shape, _) = columns::level(&every_column, &key_columns, None);
    let mut w = Writer::new(dialect);
    w.push("SELECT ");
    w.select_list(&cells, &own_name(plan, dialect));
    w.push(" FROM ");
    w.table(&plan.resource);
    w.where_key(plan, key);
    if dialect == Dialect::Postgres {
        w.push(" FOR UPDATE");
    }
    CurrentRow {
        sql: w.finish(),
        shape,
    }
}

/// `"table"` (without its schema), which qualifies the written table's
/// columns in WHERE and RETURNING.
fn own_name(plan: &WritePlan, dialect: Dialect) -> String {
    let table = match dialect {
        Dialect::Postgres => crate::schema::table_of(&plan.resource).1,
        Dialect::Sqlite => &plan.resource,
    };
    format!("\"{}\"", table.replace('"', "\"\""))
}

impl Writer {
    fn assigned(&mut self, assignment: &Assignment) {
        if assignment.value == SqlValue::Null {
            self.push("NULL");
        } else {
            self.value(assignment.value.clone(), &assignment.column);
        }
    }

    /// The target row by key, and only if the row rule lets the caller see it.
    fn where_key(&mut self, plan: &WritePlan, key: &RowKey) {
        let table = own_name(plan, self.dialect);
        self.push(" WHERE ");
        self.row_key_equals(&table, key);
        for filter in &plan.rules {
            self.push(" AND ");
            self.filter(filter, &table);
        }
    }

    /// The row as stored and, under a row rule (not for DELETE), whether it
    /// satisfies the rule as written.
    fn returning(&mut self, plan: &WritePlan, cells: &Cells) {
        let table = own_name(plan, self.dialect);
        self.push(" RETURNING ");
        self.select_list(cells, &table);
        if !plan.rules.is_empty() && !matches!(plan.action, WriteAction::Delete { .. }) {
            // coalesce: a comparison with NULL is no permission
            self.push(", coalesce(");
            for (i, filter) in plan.rules.iter().enumerate() {
                if i > 0 {
                    self.push(" AND ");
                }
                self.push("(");
                self.filter(filter, &table);
                self.push(")");
            }
            self.push(", false)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::shop;
    use crate::write::{WriteMethod, WriteRequest, plan_write};

    fn render(method: WriteMethod, id: Option<&str>, body: &str, dialect: Dialect) -> String {
        let schema = shop();
        let plan = plan_write(
            &schema,
            &WriteRequest {
                method,
                resource: "orders",
                id,
                body: Some(body.as_bytes()),
                max_rows: 10,
            },
        )
        .unwrap();
        let sql = render_write(&plan, schema.resource("orders").unwrap(), dialect);
        sql.current
            .iter()
            .map(|current| &current.sql)
            .chain(&sql.statements)
            .map(|s| format!("{}\n  -- {:?}", s.text, s.params))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn writes_return_the_row_as_stored() {
        let insert = r#"{"user_id":3,"status":"paid","total":"12.50","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}"#;
        expect_test::expect![[r#"
            INSERT INTO "orders" ("user_id", "status", "total", "created_at", "updated_at") VALUES (?1, ?2, ?3, ?4, ?5) RETURNING "orders"."id", "orders"."user_id", "orders"."status", "orders"."total", "orders"."created_at", "orders"."updated_at"
              -- [Integer(3), Text("paid"), Decimal("12.50"), Text("2024-01-01T00:00:00Z"), Text("2024-01-01T00:00:00Z")]"#]].assert_eq(&render(
            WriteMethod::Post,
            None,
            insert,
            Dialect::Sqlite,
        ));
        expect_test::expect![[r#"
            INSERT INTO "orders" ("user_id", "status", "total", "created_at", "updated_at") VALUES ($1::"pg_catalog"."int4", $2::"pg_catalog"."text", $3::"pg_catalog"."numeric", $4::"pg_catalog"."timestamptz", $5::"pg_catalog"."timestamptz") RETURNING "orders"."id", "orders"."user_id", "orders"."status", "orders"."total"::text, to_json("orders"."created_at")#>>'{}', to_json("orders"."updated_at")#>>'{}'
              -- [Integer(3), Text("paid"), Decimal("12.50"), Text("2024-01-01T00:00:00Z"), Text("2024-01-01T00:00:00Z")]"#]].assert_eq(&render(
            WriteMethod::Post,
            None,
            insert,
            Dialect::Postgres,
        ));
        expect_test::expect![[r#"
            SELECT "orders"."id", "orders"."user_id", "orders"."status", "orders"."total"::text, to_json("orders"."created_at")#>>'{}', to_json("orders"."updated_at")#>>'{}' FROM "orders" WHERE "orders"."id" = $1::"pg_catalog"."int4" FOR UPDATE
              -- [Integer(9)]
            UPDATE "orders" SET "status" = $1::"pg_catalog"."text" WHERE "orders"."id" = $2::"pg_catalog"."int4" RETURNING "orders"."id", "orders"."user_id", "orders"."status", "orders"."total"::text, to_json("orders"."created_at")#>>'{}', to_json("orders"."updated_at")#>>'{}'
              -- [Text("shipped"), Integer(9)]"#]].assert_eq(&render(
            WriteMethod::Patch,
            Some("9"),
            r#"{"status":"shipped"}"#,
            Dialect::Postgres,
        ));
        expect_test::expect![[r#"
            SELECT "orders"."id", "orders"."user_id", "orders"."status", "orders"."total", "orders"."created_at", "orders"."updated_at" FROM "orders" WHERE "orders"."id" = ?1
              -- [Integer(9)]
            DELETE FROM "orders" WHERE "orders"."id" = ?1 RETURNING "orders"."id"
              -- [Integer(9)]"#]]
        .assert_eq(&render(WriteMethod::Delete, Some("9"), "", Dialect::Sqlite));
    }
}
