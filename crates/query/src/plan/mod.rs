//! From a read request (path and parsed parameters) and the schema to a
//! [`ReadPlan`]. Every semantic check lives here, one concern per file:
//! [`filter`] (filters against column types), [`order`] (sort keys and
//! tie-breakers), [`selection`] (fields and include); this file holds the
//! routes, limits, pages and cursors. A plan that exists is valid; rendering
//! it cannot fail. How a plan is spelled (links, cache keys, cursor
//! fingerprints) is [`crate::canonical`]'s job.

mod filter;
mod order;
mod rules;
mod selection;
#[cfg(test)]
mod tests;

pub use filter::Filter;
pub use order::OrderKey;
pub use rules::{BoundRules, CLAIM_PREFIX, RowRules};
pub use selection::{Embed, Selection};

use crate::cursor::{CursorCodec, Direction};
use crate::error::{ErrorKind, QueryError, QueryErrors, did_you_mean};
pub use crate::key::RowKey;
use crate::params::QueryParams;
use crate::schema::{Cardinality, Column, Relation, Resource, Schema};
use crate::value::{SqlValue, from_json};
use filter::plan_filter;
use order::plan_order;
use selection::plan_selection;

/// What one read may ask for (`limits.*` in the config). Every bound is
/// checked here, before any SQL exists, and a refusal names its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rows per page when `limit` is not given.
    pub default_limit: u64,
    pub max_limit: u64,
    /// The deepest row a `page` may start at; deeper, cursors (cheap at
    /// any depth) are the way.
    pub max_offset: u64,
    /// Relations in one `include` path (`user.orders` is 2).
    pub max_include_depth: usize,
    /// Filter conditions in one request.
    pub max_filters: usize,
    /// Values in one `in` or `nin` list.
    pub max_list_values: usize,
    /// Characters in one `like` or `ilike` pattern.
    pub max_pattern_length: usize,
    /// Wildcards (`*`, `%`, `_`) in one pattern.
    pub max_pattern_wildcards: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_limit: 20,
            max_limit: 1000,
            max_offset: 100_000,
            max_include_depth: 3,
            max_filters: 32,
            max_list_values: 1000,
            max_pattern_length: 200,
            max_pattern_wildcards: 10,
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
    /// The caller's row rule for this resource, ANDed with the filters but
    /// not part of the request's spelling (links, cursors, cache key).
    pub rules: Vec<Filter>,
    /// Sort keys, ending with the tie-breakers that make the order total.
    pub order: Vec<OrderKey>,
    pub window: Window,
    pub count: bool,
    /// Whether the order is unique, so keyset cursors are exact.
    pub cursors: bool,
    /// The primary key's columns (none for views and key-less tables).
    pub key: Vec<Column>,
}

/// One row: `/v1/{resource}/{id}` or a to-one `/v1/{resource}/{id}/{relation}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinglePlan {
    pub resource: String,
    pub selection: Selection,
    pub locate: Locate,
    /// The caller's row rule for this resource.
    pub rules: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Locate {
    /// The row with this primary key.
    Key(RowKey),
    /// The row a to-one relation of a parent row points at.
    Related(Scope),
}

/// The parent row of a nested route, and how its relation reaches the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub parent: String,
    /// The parent row's primary key.
    pub key: RowKey,
    pub relation: Relation,
    /// The caller's row rule for the parent: a parent the caller may not
    /// see has no rows to show.
    pub parent_rules: Vec<Filter>,
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

    /// Limits every level of the plan to the rows the caller's row rules
    /// let it see: the resource, a nested route's parent, every embed.
    pub fn restrict_rows(&mut self, rules: &BoundRules) {
        fn scope(scope: Option<&mut Scope>, rules: &BoundRules) {
            if let Some(scope) = scope {
                scope.parent_rules = rules.of(&scope.parent).to_vec();
            }
        }
        fn embeds(selection: &mut Selection, rules: &BoundRules) {
            for embed in &mut selection.embeds {
                embed.rules = rules.of(&embed.relation.target).to_vec();
                embeds(&mut embed.selection, rules);
            }
        }
        match self {
            ReadPlan::Collection(plan) => {
                plan.rules = rules.of(&plan.resource).to_vec();
                scope(plan.scope.as_mut(), rules);
                embeds(&mut plan.selection, rules);
            }
            ReadPlan::Single(plan) => {
                plan.rules = rules.of(&plan.resource).to_vec();
                if let Locate::Related(related) = &mut plan.locate {
                    scope(Some(related), rules);
                }
                embeds(&mut plan.selection, rules);
            }
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
                    deps.rows.push((scope.parent.as_str(), scope.key.text()));
                }
                &plan.selection
            }
            ReadPlan::Single(plan) => {
                match &plan.locate {
                    Locate::Key(key) => deps.rows.push((plan.resource.as_str(), key.text())),
                    Locate::Related(scope) => {
                        deps.tables.push(plan.resource.as_str());
                        deps.rows.push((scope.parent.as_str(), scope.key.text()));
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
    let key = RowKey::parse(resource, id)?;
    let Some(relation_name) = request.relation else {
        reject_collection_parameters(params, &format!("/v1/{}/{id}", resource.name))?;
        let selection = plan_selection(schema, resource, params, limits)?;
        return Ok(ReadPlan::Single(SinglePlan {
            resource: resource.name.clone(),
            selection,
            locate: Locate::Key(key),
            rules: Vec::new(),
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
        key,
        relation: relation.clone(),
        parent_rules: Vec::new(),
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
            let selection = plan_selection(schema, target, params, limits)?;
            Ok(ReadPlan::Single(SinglePlan {
                resource: target.name.clone(),
                selection,
                locate: Locate::Related(scope),
                rules: Vec::new(),
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
    let selection = plan_selection(schema, resource, params, limits).unwrap_or_else(|e| {
        errors.0.extend(e.0);
        Selection::default()
    });
    let filters: Vec<Filter> = if params.filters.len() > limits.max_filters {
        errors.push(QueryError::new(
            ErrorKind::LimitExceeded,
            params.filters[limits.max_filters].parameter.as_str(),
            format!(
                "{} filter conditions, and limits.max_filters is {}: filter on fewer columns, or use [in] for many values of one",
                params.filters.len(),
                limits.max_filters
            ),
        ));
        Vec::new()
    } else {
        params
            .filters
            .iter()
            .filter_map(|raw| {
                plan_filter(resource, raw, limits)
                    .map_err(|e| errors.push(e))
                    .ok()
            })
            .collect()
    };
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
        rules: Vec::new(),
        order,
        window: Window {
            limit,
            position: Position::Page(1),
        },
        count: params.count,
        cursors: resource.has_unique_order(),
        key: if resource.has_unique_order() {
            resource.tie_breakers().into_iter().cloned().collect()
        } else {
            Vec::new()
        },
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
        (Some(page), None) => match (page - 1).checked_mul(limit) {
            Some(offset) if offset <= limits.max_offset => {
                plan.window.position = Position::Page(page)
            }
            _ => errors.push(QueryError::new(
                ErrorKind::LimitExceeded,
                "page",
                format!(
                    "page {page} of {limit} rows starts deeper than limits.max_offset ({} rows); \
                     walk deep with cursors instead: follow links.next (meta.next_cursor), which costs the same at any depth",
                    limits.max_offset
                ),
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
