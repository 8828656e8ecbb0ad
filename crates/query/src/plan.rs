//! From a read request (path and parsed parameters) and the schema to a
//! [`ReadPlan`]. Every semantic check lives here: names against the schema,
//! values against column types, limits, cursors, which parameters a route
//! takes. A plan that exists is valid; rendering it cannot fail.

use crate::cursor::{CursorCodec, Direction};
use crate::error::{ErrorKind, QueryError, QueryErrors, did_you_mean};
use crate::params::{Operator, QueryParams, RESERVED, RawFilter, split_list};
use crate::schema::{Cardinality, Column, Relation, Resource, Schema};
use crate::value::{SqlValue, from_json, parse_value};

/// Most values an `in` or `nin` list may hold.
pub const MAX_LIST_ITEMS: usize = 1000;

/// Page sizes, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default_limit: u64,
    pub max_limit: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_limit: 20,
            max_limit: 1000,
        }
    }
}

/// What the path names: `/v1/{resource}[/{id}[/{relation}]]`.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest<'a> {
    pub resource: &'a str,
    pub id: Option<&'a str>,
    pub relation: Option<&'a str>,
    pub params: &'a QueryParams,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadPlan {
    Collection(CollectionPlan),
    Single(SinglePlan),
}

/// A page of rows: `/v1/{resource}` or a to-many `/v1/{resource}/{id}/{relation}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPlan {
    pub resource: String,
    pub scope: Option<Scope>,
    pub selection: Selection,
    pub filters: Vec<Filter>,
    /// Sort keys, ending with the tie-breakers that make the order total.
    pub order: Vec<OrderKey>,
    pub window: Window,
    pub count: bool,
    /// Whether the order is unique, so keyset cursors are exact.
    pub cursors: bool,
}

/// One row: `/v1/{resource}/{id}` or a to-one `/v1/{resource}/{id}/{relation}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinglePlan {
    pub resource: String,
    pub selection: Selection,
    pub locate: Locate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Locate {
    /// The row whose key column equals the value.
    Key { column: Column, value: SqlValue },
    /// The row a to-one relation of a parent row points at.
    Related(Scope),
}

/// The parent row of a nested route, and how its relation reaches the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub parent: String,
    pub parent_key: Column,
    pub key: SqlValue,
    pub relation: Relation,
}

/// Which columns and embedded relations to render, in output order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    pub columns: Vec<Column>,
    pub embeds: Vec<Embed>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Embed {
    pub relation: Relation,
    /// The parent's column the relation joins on.
    pub local: Column,
    /// The target's column the relation joins on.
    pub remote: Column,
    /// The target's key, ordering a to-many embed.
    pub order: Vec<Column>,
    pub selection: Selection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: Column,
    pub operator: Operator,
    /// One value, several for `in`/`nin`, and for `null` the wanted
    /// nullness as a Bool.
    pub values: Vec<SqlValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub column: Column,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub limit: u64,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// 1-based page of `limit` rows.
    Page(u64),
    /// Keyset: the rows strictly after (or before) a boundary row's keys.
    Cursor(Direction, Vec<SqlValue>),
}

impl ReadPlan {
    /// The resource whose rows the answer holds.
    pub fn resource(&self) -> &str {
        match self {
            ReadPlan::Collection(plan) => &plan.resource,
            ReadPlan::Single(plan) => &plan.resource,
        }
    }

    /// What the answer is built from, for invalidation: whole tables (the
    /// collection's, every embedded relation's target) and single rows (the
    /// row of `/v1/t/{id}`, the parent of a nested route). A change to any
    /// may change the answer; a change to anything else cannot.
    pub fn dependencies(&self) -> Dependencies<'_> {
        let mut deps = Dependencies::default();
        let selection = match self {
            ReadPlan::Collection(plan) => {
                deps.tables.push(plan.resource.as_str());
                if let Some(scope) = &plan.scope {
                    deps.rows.push((
                        scope.parent.as_str(),
                        scope.key.as_text().unwrap_or_default(),
                    ));
                }
                &plan.selection
            }
            ReadPlan::Single(plan) => {
                match &plan.locate {
                    Locate::Key { value, .. } => deps
                        .rows
                        .push((plan.resource.as_str(), value.as_text().unwrap_or_default())),
                    Locate::Related(scope) => {
                        deps.tables.push(plan.resource.as_str());
                        deps.rows.push((
                            scope.parent.as_str(),
                            scope.key.as_text().unwrap_or_default(),
                        ));
                    }
                }
                &plan.selection
            }
        };
        fn embeds<'a>(selection: &'a Selection, tables: &mut Vec<&'a str>) {
            for embed in &selection.embeds {
                tables.push(&embed.relation.target);
                embeds(&embed.selection, tables);
            }
        }
        embeds(selection, &mut deps.tables);
        deps.tables.sort_unstable();
        deps.tables.dedup();
        deps
    }
}

/// The tables and rows an answer depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies<'a> {
    pub tables: Vec<&'a str>,
    /// (table, key as text)
    pub rows: Vec<(&'a str, String)>,
}

impl Window {
    pub fn offset(&self) -> u64 {
        match self.position {
            Position::Page(page) => (page - 1) * self.limit,
            Position::Cursor(..) => 0,
        }
    }
}

/// Validates a read request against the schema.
pub fn plan_read(
    schema: &Schema,
    request: &ReadRequest<'_>,
    limits: &Limits,
    cursors: &CursorCodec,
) -> Result<ReadPlan, QueryErrors> {
    let resource = find_resource(schema, request.resource)?;
    let params = request.params;
    let Some(id) = request.id else {
        return plan_collection(schema, resource, None, params, limits, cursors);
    };
    let key_column = resource.row_key().ok_or_else(|| {
        QueryError::new(
            ErrorKind::NotFound,
            "id",
            format!(
                "{} has no single-column primary key, so its rows have no URL; read it as a collection",
                resource.name
            ),
        )
    })?;
    let key = parse_value(key_column, id)
        .map_err(|detail| QueryError::new(ErrorKind::InvalidValue, "id", detail))?;
    let Some(relation_name) = request.relation else {
        reject_collection_parameters(params, &format!("/v1/{}/{id}", resource.name))?;
        let selection = plan_selection(schema, resource, params)?;
        return Ok(ReadPlan::Single(SinglePlan {
            resource: resource.name.clone(),
            selection,
            locate: Locate::Key {
                column: key_column.clone(),
                value: key,
            },
        }));
    };
    let relation = resource.relation(relation_name).ok_or_else(|| {
        QueryError::new(
            ErrorKind::NotFound,
            "relation",
            format!(
                "{} has no relation '{relation_name}'{}",
                resource.name,
                did_you_mean(
                    relation_name,
                    resource.relations.iter().map(|r| r.name.as_str())
                )
            ),
        )
    })?;
    let target = schema
        .resource(&relation.target)
        .expect("relations point at resources of the same schema");
    let scope = Scope {
        parent: resource.name.clone(),
        parent_key: key_column.clone(),
        key,
        relation: relation.clone(),
    };
    match relation.cardinality {
        Cardinality::ToMany => {
            plan_collection(schema, target, Some(scope), params, limits, cursors)
        }
        Cardinality::ToOne => {
            reject_collection_parameters(
                params,
                &format!("/v1/{}/{id}/{relation_name}", resource.name),
            )?;
            let selection = plan_selection(schema, target, params)?;
            Ok(ReadPlan::Single(SinglePlan {
                resource: target.name.clone(),
                selection,
                locate: Locate::Related(scope),
            }))
        }
    }
}

fn find_resource<'s>(schema: &'s Schema, name: &str) -> Result<&'s Resource, QueryError> {
    schema.resource(name).ok_or_else(|| {
        QueryError::new(
            ErrorKind::NotFound,
            "resource",
            format!(
                "there is no resource '{name}'{}",
                did_you_mean(name, schema.resource_names())
            ),
        )
    })
}

fn reject_collection_parameters(params: &QueryParams, route: &str) -> Result<(), QueryErrors> {
    let mut errors = QueryErrors::default();
    let mut reject = |parameter: &str| {
        errors.push(QueryError::new(
            ErrorKind::Conflict,
            parameter,
            format!("{parameter} applies to collections, and {route} is a single row"),
        ))
    };
    for (given, name) in [
        (params.sort.is_some(), "sort"),
        (params.limit.is_some(), "limit"),
        (params.page.is_some(), "page"),
        (params.cursor.is_some(), "cursor"),
        (params.count, "count"),
    ] {
        if given {
            reject(name);
        }
    }
    for filter in &params.filters {
        reject(&filter.parameter);
    }
    errors.into_result(())
}

fn plan_collection(
    schema: &Schema,
    resource: &Resource,
    scope: Option<Scope>,
    params: &QueryParams,
    limits: &Limits,
    cursors: &CursorCodec,
) -> Result<ReadPlan, QueryErrors> {
    let mut errors = QueryErrors::default();
    let selection = plan_selection(schema, resource, params).unwrap_or_else(|e| {
        errors.0.extend(e.0);
        Selection::default()
    });
    let filters: Vec<Filter> = params
        .filters
        .iter()
        .filter_map(|raw| plan_filter(resource, raw).map_err(|e| errors.push(e)).ok())
        .collect();
    let order = plan_order(resource, params.sort.as_deref()).unwrap_or_else(|e| {
        errors.0.extend(e.0);
        Vec::new()
    });
    let limit = params.limit.unwrap_or(limits.default_limit);
    if !(1..=limits.max_limit).contains(&limit) {
        errors.push(QueryError::new(
            ErrorKind::InvalidValue,
            "limit",
            format!(
                "limit must be between 1 and {}, not {limit}",
                limits.max_limit
            ),
        ));
    }
    let mut plan = CollectionPlan {
        resource: resource.name.clone(),
        scope,
        selection,
        filters,
        order,
        window: Window {
            limit,
            position: Position::Page(1),
        },
        count: params.count,
        cursors: resource.has_unique_order(),
    };
    match (params.page, params.cursor.as_deref()) {
        (Some(_), Some(_)) => errors.push(QueryError::new(
            ErrorKind::Conflict,
            "cursor",
            "cursor and page cannot be combined; follow links.next, or use page alone",
        )),
        (Some(0), None) => errors.push(QueryError::new(
            ErrorKind::InvalidValue,
            "page",
            "page numbers start at 1",
        )),
        (Some(page), None) => match (page - 1).checked_mul(limit).filter(|o| *o <= i64::MAX as u64) {
            Some(_) => plan.window.position = Position::Page(page),
            None => errors.push(QueryError::new(
                ErrorKind::InvalidValue,
                "page",
                format!("page {page} is beyond any table"),
            )),
        },
        (None, Some(_)) if !plan.cursors => errors.push(QueryError::new(
            ErrorKind::Conflict,
            "cursor",
            format!(
                "{} has no primary key, so its order is not unique and cursors are not offered; use page",
                resource.name
            ),
        )),
        (None, Some(cursor)) if errors.is_empty() => {
            match decode_cursor(&plan, cursor, cursors) {
                Some(position) => plan.window.position = position,
                None => errors.push(QueryError::new(
                    ErrorKind::InvalidCursor,
                    "cursor",
                    "the cursor was altered, has expired, or belongs to another sort or filter; \
                     repeat the sort and filters of the request that gave it, or start again without a cursor",
                )),
            }
        }
        (None, _) => {}
    }
    errors.into_result(ReadPlan::Collection(plan))
}

fn decode_cursor(plan: &CollectionPlan, cursor: &str, codec: &CursorCodec) -> Option<Position> {
    let (direction, keys) = codec.decode(cursor, &plan.fingerprint())?;
    if keys.len() != plan.order.len() {
        return None;
    }
    let values = plan
        .order
        .iter()
        .zip(&keys)
        .map(|(key, json)| from_json(&key.column, json))
        .collect::<Option<Vec<_>>>()?;
    Some(Position::Cursor(direction, values))
}

impl CollectionPlan {
    /// What a cursor is bound to: the rows' set and order, not the page size
    /// or the fields shown.
    pub fn fingerprint(&self) -> String {
        let mut text = self.resource.clone();
        if let Some(scope) = &self.scope {
            text.push_str(&format!(
                "|{}/{:?}/{}",
                scope.parent, scope.key, scope.relation.name
            ));
        }
        for filter in self.canonical_filters() {
            text.push('|');
            text.push_str(&filter.0);
            text.push('=');
            text.push_str(&filter.1);
        }
        text.push_str("|sort=");
        text.push_str(&self.canonical_sort());
        text
    }

    /// Filters as (key, value) query pairs, sorted, so that equivalent
    /// requests spell them alike.
    pub fn canonical_filters(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .filters
            .iter()
            .map(|f| {
                let key = format!("{}[{}]", f.column.name, f.operator.name());
                let value = match f.operator {
                    Operator::In | Operator::Nin => f
                        .values
                        .iter()
                        .map(|v| quote_list_item(&v.as_text().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => f
                        .values
                        .first()
                        .and_then(SqlValue::as_text)
                        .unwrap_or_default(),
                };
                (key, value)
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// The sort as `-price,name`, tie-breakers included.
    pub fn canonical_sort(&self) -> String {
        self.order
            .iter()
            .map(|k| {
                if k.descending {
                    format!("-{}", k.column.name)
                } else {
                    k.column.name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn quote_list_item(item: &str) -> String {
    if item.contains([',', '"', '\\']) || item.starts_with('"') {
        format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        item.to_string()
    }
}

fn plan_filter(resource: &Resource, raw: &RawFilter) -> Result<Filter, QueryError> {
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
        Operator::Like | Operator::Ilike => vec![SqlValue::Text(star_to_percent(&raw.value))],
        Operator::In | Operator::Nin => {
            let items = split_list(&raw.value).map_err(|e| invalid(format!("bad list: {e}")))?;
            if items.len() > MAX_LIST_ITEMS {
                return Err(invalid(format!(
                    "a list holds at most {MAX_LIST_ITEMS} values, not {}",
                    items.len()
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

fn plan_order(resource: &Resource, sort: Option<&[String]>) -> Result<Vec<OrderKey>, QueryErrors> {
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
            errors.push(QueryError::new(
                ErrorKind::Duplicate,
                "sort",
                format!("{} appears twice in sort", column.name),
            ));
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

/// Builds the selection tree from `include` (which relations) and `fields`
/// (which columns at each level; a level not named keeps all its columns).
fn plan_selection(
    schema: &Schema,
    resource: &Resource,
    params: &QueryParams,
) -> Result<Selection, QueryErrors> {
    let mut errors = QueryErrors::default();
    let mut root = Node::default();
    for path in &params.include {
        let mut node = &mut root;
        let mut at = resource;
        for (depth, name) in path.split('.').enumerate() {
            let Some(relation) = at.relation(name) else {
                let within = if depth == 0 {
                    at.name.clone()
                } else {
                    format!("{} (in '{path}')", at.name)
                };
                errors.push(QueryError::new(
                    ErrorKind::UnknownRelation,
                    "include",
                    format!(
                        "{within} has no relation '{name}'{}",
                        did_you_mean(name, at.relations.iter().map(|r| r.name.as_str()))
                    ),
                ));
                break;
            };
            at = schema
                .resource(&relation.target)
                .expect("relation targets exist");
            node = node.child(name);
        }
    }
    for path in params.fields.iter().flatten() {
        let names: Vec<&str> = path.split('.').collect();
        let (relations, field) = names.split_at(names.len() - 1);
        let mut node = &mut root;
        let mut at = resource;
        let mut ok = true;
        for name in relations {
            match node.children.iter().position(|(n, _)| n == name) {
                Some(i) => {
                    node = &mut node.children[i].1;
                    let relation = at.relation(name).expect("included relations exist");
                    at = schema
                        .resource(&relation.target)
                        .expect("relation targets exist");
                }
                None => {
                    let prefix = path.rsplit_once('.').map_or(path.as_str(), |(p, _)| p);
                    let detail = if at.relation(name).is_some() {
                        format!("'{path}' needs the relation included: add include={prefix}")
                    } else {
                        format!(
                            "{} has no relation '{name}' (in fields '{path}'){}",
                            at.name,
                            did_you_mean(name, at.relations.iter().map(|r| r.name.as_str()))
                        )
                    };
                    errors.push(QueryError::new(
                        ErrorKind::UnknownRelation,
                        "fields",
                        detail,
                    ));
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let field = field[0];
        if at.column(field).is_some() {
            if !node.fields.iter().any(|f| f == field) {
                node.fields.push(field.to_string());
            }
        } else if node.children.iter().any(|(n, _)| n == field) {
            // naming an included relation in fields keeps it, as it would be anyway
        } else if at.relation(field).is_some() {
            errors.push(QueryError::new(
                ErrorKind::UnknownRelation,
                "fields",
                format!("'{path}' is a relation; add it to include to embed it"),
            ));
        } else {
            let candidates = at
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .chain(at.relations.iter().map(|r| r.name.as_str()));
            errors.push(QueryError::new(
                ErrorKind::UnknownField,
                "fields",
                format!(
                    "unknown field '{field}' in {}{}",
                    at.name,
                    did_you_mean(field, candidates)
                ),
            ));
        }
    }
    errors.into_result(())?;
    Ok(root.into_selection(schema, resource))
}

/// The requested shape before it is resolved against the schema.
#[derive(Default)]
struct Node {
    fields: Vec<String>,
    children: Vec<(String, Node)>,
}

impl Node {
    fn child(&mut self, name: &str) -> &mut Node {
        let i = match self.children.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.children.push((name.to_string(), Node::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[i].1
    }

    fn into_selection(self, schema: &Schema, resource: &Resource) -> Selection {
        let columns = if self.fields.is_empty() {
            resource.columns.clone()
        } else {
            self.fields
                .iter()
                .filter_map(|f| resource.column(f).cloned())
                .collect()
        };
        let embeds = self
            .children
            .into_iter()
            .map(|(name, node)| {
                let relation = resource
                    .relation(&name)
                    .expect("checked while building")
                    .clone();
                let target = schema
                    .resource(&relation.target)
                    .expect("relation targets exist");
                let joins = "relations join on columns of their tables";
                Embed {
                    local: resource
                        .column(&relation.local_column)
                        .expect(joins)
                        .clone(),
                    remote: target.column(&relation.remote_column).expect(joins).clone(),
                    order: target.tie_breakers().into_iter().cloned().collect(),
                    selection: node.into_selection(schema, target),
                    relation,
                }
            })
            .collect();
        Selection { columns, embeds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::shop;

    fn plan(
        resource: &str,
        id: Option<&str>,
        relation: Option<&str>,
        query: &str,
    ) -> Result<ReadPlan, QueryErrors> {
        let params = QueryParams::parse(query)?;
        plan_read(
            &shop(),
            &ReadRequest {
                resource,
                id,
                relation,
                params: &params,
            },
            &Limits::default(),
            &CursorCodec::new(b"k".to_vec()),
        )
    }

    fn collection(resource: &str, query: &str) -> CollectionPlan {
        match plan(resource, None, None, query).unwrap() {
            ReadPlan::Collection(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn error_details(
        resource: &str,
        id: Option<&str>,
        relation: Option<&str>,
        query: &str,
    ) -> Vec<String> {
        plan(resource, id, relation, query)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| format!("{:?} {}: {}", e.kind, e.parameter, e.detail))
            .collect()
    }

    #[test]
    fn both_sort_spellings_give_the_same_order_with_the_key_last() {
        let a = collection("products", "sort=price_asc,name_desc");
        let b = collection("products", "sort=price,-name");
        assert_eq!(a.order, b.order);
        assert_eq!(a.canonical_sort(), "price,-name,-id");
        assert_eq!(
            collection("products", "sort=-price").canonical_sort(),
            "-price,-id"
        );
        assert_eq!(collection("products", "").canonical_sort(), "id");
        assert_eq!(collection("products", "sort=-id").canonical_sort(), "-id");
    }

    #[test]
    fn fields_and_include_build_the_tree() {
        let plan = collection(
            "orders",
            "include=user,order_items.product&fields=id,user.name,order_items.product.price",
        );
        let names = |s: &Selection| s.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.selection), ["id"]);
        let user = &plan.selection.embeds[0];
        assert_eq!(
            (user.relation.name.as_str(), names(&user.selection)),
            ("user", vec!["name".to_string()])
        );
        let items = &plan.selection.embeds[1];
        assert_eq!(
            names(&items.selection).len(),
            5,
            "order_items not restricted"
        );
        assert_eq!(names(&items.selection.embeds[0].selection), ["price"]);
    }

    #[test]
    fn dependencies_name_everything_an_answer_is_built_from() {
        let deps = |resource, id, relation, query| {
            let plan = plan(resource, id, relation, query).unwrap();
            let deps = plan.dependencies();
            (
                deps.tables
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>(),
                deps.rows
                    .iter()
                    .map(|(t, k)| (t.to_string(), k.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            deps("orders", None, None, "include=user,order_items.product"),
            (s(&["order_items", "orders", "products", "users"]), vec![])
        );
        assert_eq!(
            deps("users", Some("1"), Some("orders"), ""),
            (s(&["orders"]), vec![("users".to_string(), "1".to_string())])
        );
        assert_eq!(
            deps("orders", Some("01"), Some("user"), ""),
            (s(&["users"]), vec![("orders".to_string(), "1".to_string())])
        );
        assert_eq!(
            deps("products", Some("7"), None, "include=order_items"),
            (
                s(&["order_items"]),
                vec![("products".to_string(), "7".to_string())]
            )
        );
    }

    #[test]
    fn filters_are_typed_and_canonical() {
        let plan = collection(
            "orders",
            "status[in]=shipped,paid&total[gte]=10.5&user_id=3",
        );
        assert_eq!(
            plan.canonical_filters(),
            [
                ("status[in]".to_string(), "shipped,paid".to_string()),
                ("total[gte]".into(), "10.5".into()),
                ("user_id[eq]".into(), "3".into()),
            ]
        );
        assert_eq!(plan.filters[2].values, [SqlValue::Integer(3)]);
    }

    #[test]
    fn explains_every_mistake() {
        expect_test::expect![[r#"
            [
                "UnknownField fields: unknown field 'emial' in users; did you mean 'email'?",
                "UnknownParameter nme: 'nme' is neither a parameter nor a column of users; did you mean 'name'?",
                "InvalidValue id[gt]: 'x' is not a valid value for id (expected integer)",
                "UnknownField sort: unknown field 'nam' in sort; did you mean 'name'?; write name, -name, name_asc or name_desc",
                "InvalidValue limit: limit must be between 1 and 1000, not 5000",
            ]
        "#]]
        .assert_debug_eq(&error_details("users", None, None, "fields=emial&nme=x&id[gt]=x&sort=nam&limit=5000"));
        expect_test::expect![[r#"
            [
                "UnknownRelation include: orders has no relation 'usr'; did you mean 'user'?",
                "UnknownRelation fields: 'order_items.id' needs the relation included: add include=order_items",
            ]
        "#]]
        .assert_debug_eq(&error_details("orders", None, None, "include=usr&fields=order_items.id"));
        expect_test::expect![[r#"
            [
                "Conflict sort: sort applies to collections, and /v1/users/1 is a single row",
                "Conflict name: name applies to collections, and /v1/users/1 is a single row",
            ]
        "#]]
        .assert_debug_eq(&error_details("users", Some("1"), None, "sort=name&name=x"));
        expect_test::expect![[r#"
            [
                "NotFound resource: there is no resource 'user'; did you mean 'users'?",
            ]
        "#]]
        .assert_debug_eq(&error_details("user", None, None, ""));
        expect_test::expect![[r#"
            [
                "NotFound relation: users has no relation 'order'; did you mean 'orders'?",
            ]
        "#]]
        .assert_debug_eq(&error_details("users", Some("1"), Some("order"), ""));
        expect_test::expect![[r#"
            [
                "InvalidValue id: 'x' is not a valid value for id (expected integer)",
            ]
        "#]]
        .assert_debug_eq(&error_details("users", Some("x"), None, ""));
        expect_test::expect![[r#"
            [
                "InvalidOperator id[like]: operator 'like' does not apply to id (integer): patterns apply to text columns only",
                "InvalidValue created_at[lt]: 'soon' is not a valid value for created_at (expected timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z))",
                "Conflict cursor: cursor and page cannot be combined; follow links.next, or use page alone",
            ]
        "#]].assert_debug_eq(&error_details(
            "users",
            None,
            None,
            "id[like]=1&name[gt]=a&created_at[lt]=soon&page=0&cursor=abc",
        ));
        expect_test::expect![[r#"
            [
                "UnknownRelation include: users (in 'orders.user.nope') has no relation 'nope'",
                "Duplicate sort: name appears twice in sort",
                "Conflict cursor: cursor and page cannot be combined; follow links.next, or use page alone",
            ]
        "#]].assert_debug_eq(&error_details(
            "users",
            None,
            None,
            "page=2&cursor=abc&sort=-name,name&fields=orders&include=orders.user.nope",
        ));
    }

    #[test]
    fn cursors_are_bound_to_sort_and_filters() {
        let codec = CursorCodec::new(b"k".to_vec());
        let base = collection("products", "category=books&sort=-price");
        let cursor = codec.encode(Direction::After, "[12.5,7]", &base.fingerprint());
        let params = QueryParams::parse(&format!(
            "category=books&sort=-price&cursor={cursor}&limit=5"
        ))
        .unwrap();
        let request = ReadRequest {
            resource: "products",
            id: None,
            relation: None,
            params: &params,
        };
        let ReadPlan::Collection(next) =
            plan_read(&shop(), &request, &Limits::default(), &codec).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            next.window.position,
            Position::Cursor(
                Direction::After,
                vec![SqlValue::Decimal("12.5".into()), SqlValue::Integer(7)]
            )
        );
        for other in [
            "category=toys&sort=-price",
            "category=books&sort=price",
            "category=books",
        ] {
            let params = QueryParams::parse(&format!("{other}&cursor={cursor}")).unwrap();
            let request = ReadRequest {
                resource: "products",
                id: None,
                relation: None,
                params: &params,
            };
            let errors = plan_read(&shop(), &request, &Limits::default(), &codec).unwrap_err();
            assert_eq!(errors.primary_kind(), ErrorKind::InvalidCursor, "{other}");
        }
    }
}
