//! The statements of a read: the page of rows, the optional count, and the
//! parent check that tells "no rows" from "no parent".
//!
//! NULL ordering is the same on both databases: NULL sorts after every value
//! ascending and before every value descending (PostgreSQL's default, spelled
//! out for SQLite).

use super::columns::{self, EmbedQuery};
use super::{Dialect, Sql, Writer};
use crate::cursor::Direction;
use crate::params::Operator;
use crate::plan::{CollectionPlan, Filter, Locate, OrderKey, Position, Scope, SinglePlan};
use crate::rows::{PageShape, Shape};
use crate::schema::Column;
use crate::value::SqlValue;

/// The statements of a read: the rows, and what else the request needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSql {
    /// A collection's page: up to `limit + 1` rows (the extra row only tells
    /// that there is more; for a `Before` cursor they come in reverse and the
    /// caller turns them round). A single row: zero or one row.
    pub rows: Sql,
    /// How the rows' cells become JSON.
    pub shape: Shape,
    /// The embedded relations, one statement per level.
    pub embeds: Vec<EmbedQuery>,
    /// `SELECT count(*)` under the same filters, when `count=exact`.
    pub count: Option<Sql>,
    /// For nested routes: one row if the parent exists. Needed only when
    /// `rows` is empty.
    pub parent: Option<Sql>,
    /// Which of the rows the answer shows, and in which order.
    pub page: PageShape,
}

pub fn render_collection(plan: &CollectionPlan, dialect: Dialect) -> ReadSql {
    let reverse = matches!(plan.window.position, Position::Cursor(Direction::Before, _));
    let keys: Vec<&Column> = plan.order.iter().map(|k| &k.column).collect();
    let (cells, mut shape, parent_cells) = columns::level(&plan.selection, &keys, None);
    let (embed_shapes, embeds) = columns::embeds(&plan.selection, &parent_cells, dialect);
    shape.embeds = embed_shapes;
    let mut w = Writer::new(dialect);
    let alias = w.alias();
    w.push("SELECT ");
    w.select_list(&cells, &alias);
    w.from(&plan.resource, &alias);
    let offset = plan.window.offset();
    if dialect == Dialect::Postgres && offset > 0 && !plan.key.is_empty() {
        // A deferred join: PostgreSQL computes the select list (casts,
        // to_json) for every row an OFFSET skips, so the offset walks the
        // key alone and only the page's rows are read in full.
        w.push(" JOIN (SELECT ");
        let inner = w.alias();
        for (i, key) in plan.key.iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.column(&inner, &key.name);
        }
        w.from(&plan.resource, &inner);
        w.filters(plan, &inner, &mut Conditions::default());
        w.order_by(&plan.order, &inner, reverse);
        w.push(" LIMIT ");
        w.number(plan.window.limit + 1);
        w.push(" OFFSET ");
        w.number(offset);
        w.push(") ");
        let page = w.alias();
        w.push(&page);
        w.push(" ON ");
        for (i, key) in plan.key.iter().enumerate() {
            if i > 0 {
                w.push(" AND ");
            }
            w.column(&alias, &key.name);
            w.push(" = ");
            w.column(&page, &key.name);
        }
        w.order_by(&plan.order, &alias, reverse);
    } else {
        let mut conditions = Conditions::default();
        w.filters(plan, &alias, &mut conditions);
        if let Position::Cursor(direction, values) = &plan.window.position {
            conditions.next(&mut w);
            w.keyset(&plan.order, values, *direction, &alias);
        }
        w.order_by(&plan.order, &alias, reverse);
        w.push(" LIMIT ");
        w.number(plan.window.limit + 1);
        if offset > 0 {
            w.push(" OFFSET ");
            w.number(offset);
        }
    }
    let count = plan.count.then(|| {
        let mut w = Writer::new(dialect);
        let alias = w.alias();
        w.push("SELECT count(*)");
        w.from(&plan.resource, &alias);
        w.filters(plan, &alias, &mut Conditions::default());
        w.finish()
    });
    ReadSql {
        rows: w.finish(),
        shape,
        embeds,
        count,
        parent: plan
            .scope
            .as_ref()
            .map(|scope| parent_check(scope, dialect)),
        page: PageShape {
            take: plan.window.limit as usize,
            reverse,
            prefix: "{\"data\":[",
        },
    }
}

pub fn render_single(plan: &SinglePlan, dialect: Dialect) -> ReadSql {
    let (cells, mut shape, parent_cells) = columns::level(&plan.selection, &[], None);
    let (embed_shapes, embeds) = columns::embeds(&plan.selection, &parent_cells, dialect);
    shape.embeds = embed_shapes;
    let mut w = Writer::new(dialect);
    let alias = w.alias();
    w.push("SELECT ");
    w.select_list(&cells, &alias);
    w.from(&plan.resource, &alias);
    w.push(" WHERE ");
    let parent = match &plan.locate {
        Locate::Key(key) => {
            w.row_key_equals(&alias, key);
            None
        }
        Locate::Related(scope) => {
            w.scope(scope, &alias);
            Some(parent_check(scope, dialect))
        }
    };
    for filter in &plan.rules {
        w.push(" AND ");
        w.filter(filter, &alias);
    }
    ReadSql {
        rows: w.finish(),
        shape,
        embeds,
        count: None,
        parent,
        page: PageShape {
            take: 1,
            reverse: false,
            prefix: "{\"data\":",
        },
    }
}

/// `SELECT 1 FROM parent WHERE key = $1`
fn parent_check(scope: &Scope, dialect: Dialect) -> Sql {
    let mut w = Writer::new(dialect);
    let alias = w.alias();
    w.push("SELECT 1");
    w.from(&scope.parent, &alias);
    w.push(" WHERE ");
    w.row_key_equals(&alias, &scope.key);
    for filter in &scope.parent_rules {
        w.push(" AND ");
        w.filter(filter, &alias);
    }
    w.finish()
}

/// Joins WHERE conditions with AND.
#[derive(Default)]
struct Conditions {
    any: bool,
}

impl Conditions {
    fn next(&mut self, w: &mut Writer) {
        w.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
    }
}

impl Writer {
    fn order_by(&mut self, order: &[OrderKey], alias: &str, reverse: bool) {
        self.push(" ORDER BY ");
        for (i, key) in order.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.order_key(key, alias, reverse);
        }
    }

    fn from(&mut self, table: &str, alias: &str) {
        self.push(" FROM ");
        self.table(table);
        self.push(" ");
        self.push(alias);
    }

    /// The scope of a nested route, every filter and the row rule, ANDed.
    fn filters(&mut self, plan: &CollectionPlan, alias: &str, conditions: &mut Conditions) {
        if let Some(scope) = &plan.scope {
            conditions.next(self);
            self.scope(scope, alias);
        }
        for filter in plan.filters.iter().chain(&plan.rules) {
            conditions.next(self);
            self.filter(filter, alias);
        }
    }

    /// `alias.remote = (SELECT p.local FROM parent p WHERE p.key = $1)`: the
    /// rows a parent's relation reaches (none when the parent is absent).
    fn scope(&mut self, scope: &Scope, alias: &str) {
        let relation = &scope.relation;
        self.column(alias, &relation.remote_column);
        self.push(" = (SELECT ");
        let parent = self.alias();
        self.column(&parent, &relation.local_column);
        self.from(&scope.parent, &parent);
        self.push(" WHERE ");
        self.row_key_equals(&parent, &scope.key);
        for filter in &scope.parent_rules {
            self.push(" AND ");
            self.filter(filter, &parent);
        }
        self.push(")");
    }

    pub(super) fn filter(&mut self, filter: &Filter, alias: &str) {
        if !filter.path.is_empty() {
            self.path_filter(filter, alias);
            return;
        }
        let column = &filter.column;
        let name = column.name.as_str();
        let op = match filter.operator {
            Operator::Eq => " = ",
            Operator::Ne => " <> ",
            Operator::Gt => " > ",
            Operator::Gte => " >= ",
            Operator::Lt => " < ",
            Operator::Lte => " <= ",
            Operator::Cs => " @> ",
            Operator::Cd => " <@ ",
            Operator::Ov => " && ",
            Operator::Sl => " << ",
            Operator::Sr => " >> ",
            Operator::Nxr => " &< ",
            Operator::Nxl => " &> ",
            Operator::Adj => " -|- ",
            Operator::Null => {
                self.column(alias, name);
                self.push(match filter.values.first() {
                    Some(SqlValue::Bool(false)) => " IS NOT NULL",
                    _ => " IS NULL",
                });
                return;
            }
            Operator::In | Operator::Nin => {
                let instants = self.compares_instants(column);
                if instants {
                    self.instant(|w| w.column(alias, name));
                } else {
                    self.column(alias, name);
                }
                self.push(if filter.operator == Operator::In {
                    " IN ("
                } else {
                    " NOT IN ("
                });
                for (i, value) in filter.values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    if instants {
                        self.instant(|w| w.value(value.clone(), column));
                    } else {
                        self.value(value.clone(), column);
                    }
                }
                self.push(")");
                return;
            }
            Operator::Like | Operator::Ilike => {
                self.pattern(filter, alias);
                return;
            }
            Operator::Fts => {
                self.search(filter, alias);
                return;
            }
        };
        if self.compares_instants(column) {
            self.instant(|w| w.column(alias, name));
            self.push(op);
            let value = filter.values[0].clone();
            self.instant(|w| w.value(value, column));
            return;
        }
        self.column(alias, name);
        self.push(op);
        self.value(filter.values[0].clone(), column);
    }

    /// Whether comparisons on `column` must compare instants rather than
    /// text: SQLite date-times, which may be spelled `2026-12-01 04:17:47`
    /// (as SQLite writes them) or `2026-12-01T04:17:47Z`.
    fn compares_instants(&self, column: &crate::schema::Column) -> bool {
        self.dialect == Dialect::Sqlite && column.kind == crate::schema::ColumnKind::Timestamp
    }

    /// `strftime('%Y-%m-%d %H:%M:%f', …)`: SQLite's `datetime()` in UTC, to
    /// the millisecond.
    fn instant(&mut self, inner: impl FnOnce(&mut Self)) {
        self.push("strftime('%Y-%m-%d %H:%M:%f', ");
        inner(self);
        self.push(")");
    }

    /// A filter on the value at a key path in a JSON column. Compared as
    /// the text PostgreSQL's `#>>` gives (booleans `true`/`false`, JSON null
    /// as NULL), both databases alike; `gt`/`lt` given a number compare
    /// numbers only (other values never match).
    fn path_filter(&mut self, filter: &Filter, alias: &str) {
        let column = filter.column.name.as_str();
        let numeric = matches!(filter.values.first(), Some(SqlValue::Real(_)));
        let path = match self.dialect {
            Dialect::Postgres => {
                let keys: Vec<SqlValue> = filter.path.iter().cloned().map(SqlValue::Text).collect();
                self.bind(SqlValue::Text(crate::value::array_literal(&keys)))
            }
            Dialect::Sqlite => self.bind(SqlValue::Text(sqlite_json_path(&filter.path))),
        };
        match (self.dialect, numeric) {
            (Dialect::Postgres, false) => {
                self.push("(");
                self.json_at("#>>", alias, column, path);
                self.push(")");
            }
            (Dialect::Postgres, true) => {
                self.push("CASE WHEN jsonb_typeof(");
                self.json_at("#>", alias, column, path);
                self.push(") = 'number' THEN (");
                self.json_at("#>>", alias, column, path);
                self.push(")::numeric END");
            }
            (Dialect::Sqlite, false) => {
                self.push("CASE WHEN json_valid(");
                self.column(alias, column);
                self.push(") THEN CASE ");
                self.json_at("json_type", alias, column, path);
                self.push(" WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(");
                self.json_at("json_extract", alias, column, path);
                self.push(" AS TEXT) END END");
            }
            (Dialect::Sqlite, true) => {
                self.push("CASE WHEN json_valid(");
                self.column(alias, column);
                self.push(") AND ");
                self.json_at("json_type", alias, column, path);
                self.push(" IN ('integer', 'real') THEN ");
                self.json_at("json_extract", alias, column, path);
                self.push(" END");
            }
        }
        let value_type = if numeric {
            "pg_catalog.numeric"
        } else {
            "pg_catalog.text"
        };
        let bind = |w: &mut Self, value: &SqlValue| {
            let index = w.bind(value.clone());
            w.placeholder(index, Some(value_type));
        };
        match filter.operator {
            Operator::Null => self.push(match filter.values.first() {
                Some(SqlValue::Bool(false)) => " IS NOT NULL",
                _ => " IS NULL",
            }),
            Operator::In | Operator::Nin => {
                self.push(if filter.operator == Operator::In {
                    " IN ("
                } else {
                    " NOT IN ("
                });
                for (i, value) in filter.values.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    bind(self, value);
                }
                self.push(")");
            }
            operator => {
                self.push(match operator {
                    Operator::Ne => " <> ",
                    Operator::Gt => " > ",
                    Operator::Gte => " >= ",
                    Operator::Lt => " < ",
                    Operator::Lte => " <= ",
                    _ => " = ",
                });
                bind(self, &filter.values[0]);
            }
        }
    }

    /// The value at the bound key path `path` of a JSON column, through
    /// `operator`: `alias."meta"::jsonb #>> $1` on PostgreSQL,
    /// `json_extract(alias."meta", ?1)` on SQLite.
    fn json_at(&mut self, operator: &str, alias: &str, column: &str, path: usize) {
        match self.dialect {
            Dialect::Postgres => {
                self.column(alias, column);
                self.push("::jsonb ");
                self.push(operator);
                self.push(" ");
                self.placeholder(path, Some("pg_catalog._text"));
            }
            Dialect::Sqlite => {
                self.push(operator);
                self.push("(");
                self.column(alias, column);
                self.push(", ");
                self.placeholder(path, None);
                self.push(")");
            }
        }
    }

    /// Full-text search. PostgreSQL: `websearch_to_tsquery` in the
    /// database's `default_text_search_config`, against a tsvector column
    /// or the text's `to_tsvector`. SQLite: FTS5's `MATCH` on the column,
    /// every word (or `"phrase"`) quoted, so that no input is FTS5 syntax.
    fn search(&mut self, filter: &Filter, alias: &str) {
        let words = filter.values[0].as_text().unwrap_or_default();
        let column = &filter.column;
        match self.dialect {
            Dialect::Postgres => {
                if column.db_type == "pg_catalog.tsvector" {
                    self.column(alias, &column.name);
                } else {
                    self.push("to_tsvector(");
                    self.column(alias, &column.name);
                    self.push("::text)");
                }
                self.push(" @@ websearch_to_tsquery(");
                let index = self.bind(SqlValue::Text(words));
                self.placeholder(index, Some("pg_catalog.text"));
                self.push(")");
            }
            Dialect::Sqlite => {
                self.column(alias, &column.name);
                self.push(" MATCH ");
                let index = self.bind(SqlValue::Text(fts5_terms(&words)));
                self.placeholder(index, None);
            }
        }
    }

    /// `like` is case-sensitive and `ilike` is not, on both databases. SQLite's
    /// LIKE ignores ASCII case, so `like` becomes an equivalent GLOB there.
    fn pattern(&mut self, filter: &Filter, alias: &str) {
        let pattern = match &filter.values[0] {
            SqlValue::Text(p) => p.clone(),
            other => other.as_text().unwrap_or_default(),
        };
        let column = &filter.column;
        match (self.dialect, filter.operator) {
            (Dialect::Sqlite, Operator::Like) => {
                self.column(alias, &column.name);
                self.push(" GLOB ");
                self.value(SqlValue::Text(like_to_glob(&pattern)), column);
            }
            (dialect, operator) => {
                if dialect == Dialect::Postgres && column.kind != crate::schema::ColumnKind::Text {
                    // enum and other text-like types: match their text form
                    self.column(alias, &column.name);
                    self.push("::text");
                } else {
                    self.column(alias, &column.name);
                }
                self.push(match (dialect, operator) {
                    (Dialect::Postgres, Operator::Ilike) => " ILIKE ",
                    _ => " LIKE ",
                });
                let index = self.bind(SqlValue::Text(pattern));
                self.placeholder(index, Some("pg_catalog.text"));
                self.push(" ESCAPE '\\'");
            }
        }
    }

    /// `ORDER BY` for one key; `reverse` flips it, for pages before a cursor.
    fn order_key(&mut self, key: &OrderKey, alias: &str, reverse: bool) {
        let descending = key.descending != reverse;
        self.column(alias, &key.column.name);
        if descending {
            self.push(" DESC");
        }
        if self.dialect == Dialect::Sqlite && key.column.nullable {
            self.push(if descending {
                " NULLS FIRST"
            } else {
                " NULLS LAST"
            });
        }
    }

    /// The rows strictly after (or before) the boundary row in the order.
    ///
    /// With every key in one direction and none nullable this is a row-value
    /// comparison, which both databases answer from an index. Otherwise it
    /// is the expanded form: OR over i of (keys before i equal AND key i beyond).
    fn keyset(
        &mut self,
        order: &[OrderKey],
        values: &[SqlValue],
        direction: Direction,
        alias: &str,
    ) {
        let before = direction == Direction::Before;
        let uniform = order.iter().all(|k| k.descending == order[0].descending);
        let nullable = order
            .iter()
            .zip(values)
            .any(|(k, v)| k.column.nullable || *v == SqlValue::Null);
        if uniform && !nullable {
            let forward = order[0].descending == before;
            self.push("(");
            for (i, key) in order.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.column(alias, &key.column.name);
            }
            self.push(if forward { ") > (" } else { ") < (" });
            for (i, (key, value)) in order.iter().zip(values).enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.value(value.clone(), &key.column);
            }
            self.push(")");
            return;
        }
        self.push("(");
        let mut first_branch = true;
        for i in 0..order.len() {
            let key = &order[i];
            // With NULL largest, "beyond" a NULL ascending is impossible.
            let ascending = key.descending == before;
            if ascending && values[i] == SqlValue::Null {
                continue;
            }
            if !first_branch {
                self.push(" OR ");
            }
            first_branch = false;
            self.push("(");
            for j in 0..i {
                self.key_equals(&order[j].column, &values[j], alias);
                self.push(" AND ");
            }
            self.key_beyond(&key.column, &values[i], ascending, alias);
            self.push(")");
        }
        if first_branch {
            self.push("1 = 0");
        }
        self.push(")");
    }

    fn key_equals(&mut self, column: &Column, value: &SqlValue, alias: &str) {
        self.column(alias, &column.name);
        if *value == SqlValue::Null {
            self.push(" IS NULL");
        } else {
            self.push(" = ");
            self.value(value.clone(), column);
        }
    }

    /// The key is strictly later than `value` in the given direction, NULL
    /// being larger than every value.
    fn key_beyond(&mut self, column: &Column, value: &SqlValue, ascending: bool, alias: &str) {
        match (ascending, value == &SqlValue::Null) {
            (true, _) => {
                self.push("(");
                self.column(alias, &column.name);
                self.push(" > ");
                self.value(value.clone(), column);
                if column.nullable {
                    self.push(" OR ");
                    self.column(alias, &column.name);
                    self.push(" IS NULL");
                }
                self.push(")");
            }
            (false, true) => {
                self.column(alias, &column.name);
                self.push(" IS NOT NULL");
            }
            (false, false) => {
                self.column(alias, &column.name);
                self.push(" < ");
                self.value(value.clone(), column);
            }
        }
    }
}

/// Turns a LIKE pattern (`%`, `_`, `\` escapes) into the equivalent GLOB
/// pattern, in which `*`, `?` and `[` are the specials.
fn like_to_glob(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '%' => {
                glob.push('*');
                continue;
            }
            '_' => {
                glob.push('?');
                continue;
            }
            '\\' => chars.next().unwrap_or('\\'),
            other => other,
        };
        match literal {
            '*' | '?' | '[' => {
                glob.push('[');
                glob.push(literal);
                glob.push(']');
            }
            _ => glob.push(literal),
        }
    }
    glob
}

#[cfg(test)]
mod glob_tests {
    use super::like_to_glob;

    #[test]
    fn translates_like_to_glob() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob(r"100\%"), "100%");
        assert_eq!(like_to_glob("what?*[x]"), "what[?][*][[]x]");
        assert_eq!(like_to_glob(r"a\_b\\"), r"a_b\");
    }
}

/// A SQLite JSON path: `$."size"[0]`, array positions as indexes.
fn sqlite_json_path(keys: &[String]) -> String {
    let mut path = String::from("$");
    for key in keys {
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{key}]"));
        } else {
            path.push_str(&format!(".\"{key}\""));
        }
    }
    path
}

/// Words for FTS5 as strings it takes literally: `quick "brown fox"` →
/// `"quick" "brown fox"` (both must appear), inner quotes doubled.
fn fts5_terms(words: &str) -> String {
    let mut terms = Vec::new();
    for (i, part) in words.split('"').enumerate() {
        // odd parts were inside quotes: one phrase each
        let phrases: Vec<&str> = if i % 2 == 1 {
            vec![part.trim()]
        } else {
            part.split_whitespace().collect()
        };
        terms.extend(
            phrases
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| format!("\"{}\"", p.replace('"', "\"\""))),
        );
    }
    if terms.is_empty() {
        // nothing but quotes: search for nothing, not for everything
        terms.push("\"\"".to_string());
    }
    terms.join(" ")
}

#[cfg(test)]
mod tests {
    use super::fts5_terms;

    #[test]
    fn fts5_terms_are_quoted_words_and_phrases() {
        assert_eq!(fts5_terms("quick fox"), r#""quick" "fox""#);
        assert_eq!(
            fts5_terms(r#"a "brown fox" NOT"#),
            r#""a" "brown fox" "NOT""#
        );
        assert_eq!(fts5_terms(r#"odd "quote"#), r#""odd" "quote""#);
        assert_eq!(fts5_terms(r#""""#), r#""""#);
        assert_eq!(fts5_terms("col:term*"), r#""col:term*""#);
    }
}
