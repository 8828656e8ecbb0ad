//! Select lists: which columns a query returns, how each is read on each
//! database, and the [`Shape`] that turns the returned cells into JSON.
//! Embedded relations are fetched by one query per level, batched by the
//! join values of the level above.

use super::{Dialect, Sql, Writer};
use crate::plan::{Embed, Selection};
use crate::rows::{
    Cell, EmbedShape, Exceeded, Field, Related, Rows, Shape, join_values, member_key,
};
use crate::schema::{Cardinality, Column, ColumnKind};
use crate::value::SqlValue;

/// The columns one query level returns, in cell order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Cells {
    pub columns: Vec<Column>,
}

impl Cells {
    /// The position of `column`, added if new.
    fn cell(&mut self, column: &Column) -> usize {
        match self.columns.iter().position(|c| c.name == column.name) {
            Some(i) => i,
            None => {
                self.columns.push(column.clone());
                self.columns.len() - 1
            }
        }
    }
}

/// The statement of one embed level, waiting for the join values.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedQuery {
    /// Fixed text whose first parameter is the join values and second the
    /// row budget, so it is prepared once.
    text: String,
    /// The values of the row rule's filters, bound after those two.
    rule_values: Vec<SqlValue>,
    dialect: Dialect,
    /// The next level down, one per embed of this level's shape.
    pub nested: Vec<EmbedQuery>,
}

impl EmbedQuery {
    /// The statement text (its one parameter is the list of join values).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The statement for these join values (distinct, not null), returning
    /// at most `max_rows` rows.
    pub fn sql(&self, values: &[Cell], max_rows: usize) -> Sql {
        let list = match self.dialect {
            // json_each(?1) over a JSON array
            Dialect::Sqlite => {
                let mut out = Vec::with_capacity(values.len() * 8 + 2);
                out.push(b'[');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let kind = if matches!(value, Cell::Int(_) | Cell::Float(_)) {
                        ColumnKind::Integer
                    } else {
                        ColumnKind::Text
                    };
                    value.write_json(kind, &mut out);
                }
                out.push(b']');
                String::from_utf8(out).expect("JSON is UTF-8")
            }
            // = ANY($1::type[]) over an array literal
            Dialect::Postgres => {
                let items: Vec<String> = values
                    .iter()
                    .filter_map(Cell::key_text)
                    .map(|v| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        };
        let mut params = Vec::with_capacity(2 + self.rule_values.len());
        params.extend([SqlValue::Text(list), SqlValue::Integer(max_rows as i64)]);
        params.extend(self.rule_values.iter().cloned());
        Sql {
            text: self.text.clone(),
            params,
        }
    }
}

impl Writer {
    /// Writes the select list of `cells` for the row at `alias`.
    pub(super) fn select_list(&mut self, cells: &Cells, alias: &str) {
        for (i, column) in cells.columns.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.select_column(column, alias);
        }
    }

    /// A column as the driver reads it: natively where its type maps to a
    /// cell, else as text PostgreSQL renders (exact numerics, JSON, UUIDs,
    /// timestamps as JSON spells them).
    fn select_column(&mut self, column: &Column, alias: &str) {
        match (self.dialect, column.kind) {
            (Dialect::Sqlite, _)
            | (
                Dialect::Postgres,
                ColumnKind::Integer
                | ColumnKind::Real
                | ColumnKind::Boolean
                | ColumnKind::Text
                | ColumnKind::Blob,
            ) => self.column(alias, &column.name),
            // the type's own output (inet `10.0.0.1`, where a cast to text
            // gives `10.0.0.1/32`), as to_json spells timestamps
            (
                Dialect::Postgres,
                ColumnKind::Timestamp | ColumnKind::Date | ColumnKind::Other | ColumnKind::Range,
            ) => {
                self.push("to_json(");
                self.column(alias, &column.name);
                self.push(")#>>'{}'");
            }
            (Dialect::Postgres, ColumnKind::Array) => {
                self.push("array_to_json(");
                self.column(alias, &column.name);
                self.push(")::text");
            }
            (Dialect::Postgres, ColumnKind::Numeric | ColumnKind::Json | ColumnKind::Uuid) => {
                self.column(alias, &column.name);
                self.push("::text");
            }
        }
    }
}

/// The cells and shape of a level: the selected fields, the sort keys, and
/// the join column of each embed.
pub(super) fn level(
    selection: &Selection,
    keys: &[&Column],
    extra: Option<&Column>,
) -> (Cells, Shape, Vec<usize>) {
    let mut cells = Cells::default();
    let fields = selection
        .columns
        .iter()
        .map(|c| Field {
            key: member_key(&c.name),
            kind: c.kind,
            cell: cells.cell(c),
        })
        .collect();
    let keys = keys.iter().map(|c| (cells.cell(c), c.kind)).collect();
    let parent_cells: Vec<usize> = selection
        .embeds
        .iter()
        .map(|e| cells.cell(&e.local))
        .collect();
    let extra_cell = extra.map(|c| cells.cell(c));
    let shape = Shape {
        fields,
        keys,
        embeds: Vec::new(),
    };
    (
        cells,
        shape,
        parent_cells.into_iter().chain(extra_cell).collect(),
    )
}

/// The shapes and statements of a selection's embeds, level by level.
pub(super) fn embeds(
    selection: &Selection,
    parent_cells: &[usize],
    dialect: Dialect,
) -> (Vec<EmbedShape>, Vec<EmbedQuery>) {
    selection
        .embeds
        .iter()
        .zip(parent_cells)
        .map(|(embed, &parent_cell)| embed_level(embed, parent_cell, dialect))
        .unzip()
}

fn embed_level(embed: &Embed, parent_cell: usize, dialect: Dialect) -> (EmbedShape, EmbedQuery) {
    let keys: Vec<&Column> = embed.order.iter().collect();
    let (cells, mut shape, child_cells) = level(&embed.selection, &[], Some(&embed.remote));
    let child_cell = *child_cells.last().expect("the join column was added last");
    let (nested_shapes, nested) = embeds(
        &embed.selection,
        &child_cells[..child_cells.len() - 1],
        dialect,
    );
    shape.embeds = nested_shapes;
    let mut w = Writer::new(dialect);
    // the join values and the row budget are bound first, as ?1 and ?2
    w.params.extend([SqlValue::Null, SqlValue::Null]);
    let alias = w.alias();
    w.push("SELECT ");
    w.select_list(&cells, &alias);
    w.push(" FROM ");
    w.table(&embed.relation.target);
    w.push(" ");
    w.push(&alias);
    w.push(" WHERE ");
    w.column(&alias, &embed.remote.name);
    match dialect {
        Dialect::Sqlite => w.push(" IN (SELECT value FROM json_each(?1))"),
        // The list arrives as one text parameter. Cast inside `= ANY(...)`
        // it was cast again for every row (10,000 keys: over 100 s); the
        // ARRAY(SELECT ...) sub-query is evaluated once (0.1 s).
        Dialect::Postgres => {
            w.push(" = ANY(ARRAY(SELECT unnest($1::");
            w.type_name(&embed.remote.db_type);
            w.push("[])))");
        }
    }
    for filter in &embed.rules {
        w.push(" AND ");
        w.filter(filter, &alias);
    }
    // Rows are grouped by join value in the order they come, so ordering by
    // the key orders every group; a to-one group has one row.
    if embed.relation.cardinality == Cardinality::ToMany {
        w.push(" ORDER BY ");
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.column(&alias, &key.name);
        }
    }
    // the row budget: one more than may be used tells that it was passed
    w.push(match dialect {
        Dialect::Sqlite => " LIMIT ?2",
        Dialect::Postgres => " LIMIT $2::\"pg_catalog\".\"int8\"",
    });
    let shape = EmbedShape {
        key: member_key(&embed.relation.name),
        cardinality: embed.relation.cardinality,
        parent_cell,
        child_cell,
        shape,
    };
    let sql = w.finish();
    let query = EmbedQuery {
        text: sql.text,
        rule_values: sql.params[2..].to_vec(),
        dialect,
        nested,
    };
    (shape, query)
}

/// Fetches the related rows of every embed, level by level: one statement
/// per embed and level, for all the parent rows at once. `fetch` runs a
/// statement (the caller owns the connection). `rows_left` is what the
/// answer's budget still allows; a level that would pass it is refused.
pub fn fetch_related<E: From<Exceeded>>(
    queries: &[EmbedQuery],
    shapes: &[EmbedShape],
    parents: &[Vec<Cell>],
    rows_left: &mut usize,
    fetch: &mut impl FnMut(&Sql) -> Result<Rows, E>,
) -> Result<Vec<Related>, E> {
    queries
        .iter()
        .zip(shapes)
        .map(|(query, shape)| {
            let values = join_values(parents, shape.parent_cell);
            let rows = if values.is_empty() {
                Vec::new()
            } else {
                fetch(&query.sql(&values, *rows_left + 1))?
            };
            *rows_left = take_rows(*rows_left, rows.len())?;
            let mut related = Related::new(rows, shape.child_cell);
            related.nested = fetch_related(
                &query.nested,
                &shape.shape.embeds,
                &related.rows,
                rows_left,
                fetch,
            )?;
            Ok(related)
        })
        .collect()
}

/// What is left of a row budget after `taken` more rows; refused past it.
pub fn take_rows(left: usize, taken: usize) -> Result<usize, Exceeded> {
    left.checked_sub(taken).ok_or(Exceeded::Rows)
}
