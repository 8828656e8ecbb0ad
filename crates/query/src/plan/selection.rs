//! The selection tree: which columns (`fields`) and which embedded
//! relations (`include`) an answer renders, at every level.

use super::Limits;
use crate::error::{ErrorKind, QueryError, QueryErrors, did_you_mean};
use crate::params::QueryParams;
use crate::schema::{Column, Relation, Resource, Schema};

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
    /// The caller's row rule for the target: rows it may not see are not
    /// embedded.
    pub rules: Vec<super::Filter>,
}

/// Builds the selection tree from `include` (which relations) and `fields`
/// (which columns at each level; a level not named keeps all its columns).
pub(super) fn plan_selection(
    schema: &Schema,
    resource: &Resource,
    params: &QueryParams,
    limits: &Limits,
) -> Result<Selection, QueryErrors> {
    let mut errors = QueryErrors::default();
    let mut root = Node::default();
    for path in &params.include {
        let depth = path.split('.').count();
        if depth > limits.max_include_depth {
            errors.push(QueryError::new(
                ErrorKind::LimitExceeded,
                "include",
                format!(
                    "'{}' goes {depth} relations deep, and limits.max_include_depth is {}: \
                     include fewer levels, and read deeper rows with their own requests",
                    shorten(path),
                    limits.max_include_depth
                ),
            ));
            continue;
        }
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
                    rules: Vec::new(),
                    relation,
                }
            })
            .collect();
        Selection { columns, embeds }
    }
}

/// Client text as an error message quotes it: at most 64 characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
