//! Row rules: which rows of a resource a role may see, written in the
//! query language's own filters (`user_id=claims.sub&status[ne]=deleted`),
//! where a value `claims.<path>` stands for a claim of the caller's token.
//! A rule is checked against the schema when the configuration is read, and
//! bound to each caller's claims when a request is planned; the bound
//! filters are ANDed into every statement that reads the resource: the
//! page, the count, embeds, a nested route's parent, and writes.

use super::Limits;
use super::filter::{Filter, plan_filter};
use crate::error::{ErrorKind, QueryError};
use crate::params::{Operator, QueryParams, RawFilter};
use crate::schema::Schema;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The prefix of a rule value that names a claim.
pub const CLAIM_PREFIX: &str = "claims.";

/// One role's row rules, by resource, as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowRules {
    by_resource: BTreeMap<String, Vec<RawFilter>>,
    limits: Limits,
}

/// A role's rules with one caller's claim values in place: per resource,
/// filters to AND into every read of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoundRules {
    by_resource: BTreeMap<String, Vec<Filter>>,
}

impl RowRules {
    pub fn new(limits: Limits) -> RowRules {
        RowRules {
            by_resource: BTreeMap::new(),
            limits,
        }
    }

    /// Adds the rule of `resource`: filters only, each checked against the
    /// column it names (claims with a stand-in value of the right type is
    /// not possible, so a claim is checked when it is bound).
    pub fn add(&mut self, schema: &Schema, resource: &str, rule: &str) -> Result<(), String> {
        let table = schema
            .resource(resource)
            .ok_or_else(|| format!("there is no resource '{resource}'"))?;
        let params = QueryParams::parse(rule).map_err(|e| {
            let first = e.0.first().map(|e| e.to_string()).unwrap_or_default();
            format!("'{rule}' is not a filter like user_id=claims.sub: {first}")
        })?;
        if params
            != (QueryParams {
                filters: params.filters.clone(),
                ..QueryParams::default()
            })
        {
            return Err(format!(
                "'{rule}' may hold filters only (column=value, column[op]=value, joined by &)"
            ));
        }
        if params.filters.is_empty() {
            return Err("a row rule needs at least one filter".into());
        }
        for raw in &params.filters {
            if raw
                .value
                .strip_prefix(CLAIM_PREFIX)
                .is_some_and(str::is_empty)
            {
                return Err(format!(
                    "'{}' names no claim after 'claims.'",
                    raw.parameter
                ));
            }
            if claim_path(raw).is_none() {
                plan_filter(table, raw, &self.limits).map_err(|e| e.detail)?;
            } else if table.column(&raw.column).is_none() {
                return Err(format!("{resource} has no column '{}'", raw.column));
            }
        }
        self.by_resource
            .entry(resource.to_string())
            .or_default()
            .extend(params.filters);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_resource.is_empty()
    }

    /// The resources that have a rule.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.by_resource.keys().map(String::as_str)
    }

    /// The claim paths the rules use, each once, in order: a cached answer
    /// is shared by the callers of a role that agree on these.
    pub fn claims(&self) -> Vec<&str> {
        let paths: BTreeSet<&str> = self
            .by_resource
            .values()
            .flatten()
            .filter_map(claim_path)
            .collect();
        paths.into_iter().collect()
    }

    /// The rules with the caller's claims in place. `claim` looks a path up
    /// in the caller's claims. A claim that is missing, or that is not a
    /// value of its column's type, is refused with a problem that says so:
    /// a rule never quietly matches everything.
    pub fn bind(
        &self,
        schema: &Schema,
        claim: &dyn Fn(&str) -> Option<Value>,
    ) -> Result<BoundRules, QueryError> {
        let mut bound = BoundRules::default();
        for (resource, filters) in &self.by_resource {
            let table = schema
                .resource(resource)
                .expect("rules name resources of the schema they were checked against");
            let mut planned = Vec::with_capacity(filters.len());
            for raw in filters {
                let filter = match claim_path(raw) {
                    None => plan_filter(table, raw, &self.limits),
                    Some(path) => {
                        let value = claim(path)
                            .filter(|v| !v.is_null())
                            .ok_or_else(|| forbidden(format!(
                                "the credentials carry no claim '{path}', which the row rule of {resource} needs"
                            )))?;
                        let text = claim_text(&value, raw.operator).ok_or_else(|| {
                            forbidden(format!(
                                "the claim '{path}' is {}, which the row rule of {resource} cannot compare with {}",
                                describe(&value),
                                raw.column
                            ))
                        })?;
                        let raw = RawFilter {
                            value: text,
                            ..raw.clone()
                        };
                        plan_filter(table, &raw, &self.limits)
                    }
                };
                planned.push(filter.map_err(|e| {
                    forbidden(format!(
                        "the row rule of {resource} does not apply to these credentials: {}",
                        e.detail
                    ))
                })?);
            }
            bound.by_resource.insert(resource.clone(), planned);
        }
        Ok(bound)
    }
}

impl BoundRules {
    /// The filters that limit the rows of `resource` (none: every row).
    pub fn of(&self, resource: &str) -> &[Filter] {
        self.by_resource.get(resource).map_or(&[], Vec::as_slice)
    }
}

fn claim_path(raw: &RawFilter) -> Option<&str> {
    raw.value
        .strip_prefix(CLAIM_PREFIX)
        .filter(|path| !path.is_empty())
}

/// A claim as the filter's text: strings as they are, numbers and booleans
/// as JSON spells them, and an array (for `[in]` and `[nin]` only) as a
/// quoted list.
fn claim_text(value: &Value, operator: Operator) -> Option<String> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match value {
        Value::Array(items) if matches!(operator, Operator::In | Operator::Nin) => {
            let quoted: Option<Vec<String>> = items
                .iter()
                .map(|item| {
                    scalar(item)
                        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                })
                .collect();
            quoted.filter(|q| !q.is_empty()).map(|q| q.join(","))
        }
        other => scalar(other),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
        _ => "a value",
    }
}

fn forbidden(detail: String) -> QueryError {
    QueryError::new(ErrorKind::Forbidden, "authorization", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::shop;
    use serde_json::json;

    fn rules(resource: &str, rule: &str) -> Result<RowRules, String> {
        let mut rules = RowRules::new(Limits::default());
        rules.add(&shop(), resource, rule)?;
        Ok(rules)
    }

    #[test]
    fn rules_are_filters_checked_against_the_schema() {
        assert!(rules("orders", "user_id=claims.sub&status[ne]=cancelled").is_ok());
        for (rule, says) in [
            ("owner=claims.sub", "no column 'owner'"),
            ("user_id=abc", "abc"),
            ("user_id=claims.sub&limit=5", "filters only"),
            ("sort=id", "filters only"),
            ("user_id=claims.", "names no claim"),
            ("", "at least one filter"),
        ] {
            let error = rules("orders", rule).unwrap_err();
            assert!(error.contains(says), "{rule}: {error}");
        }
        assert!(
            rules("nowhere", "id=1")
                .unwrap_err()
                .contains("no resource")
        );
    }

    #[test]
    fn binding_puts_the_claims_in_place() {
        let rules = rules("orders", "user_id=claims.sub&status[in]=claims.app.states").unwrap();
        assert_eq!(rules.claims(), ["app.states", "sub"]);
        let claims = json!({"sub": 7, "app": {"states": ["paid", "shipped"]}});
        let lookup = |path: &str| {
            path.split('.')
                .try_fold(&claims, |v, key| v.get(key))
                .cloned()
        };
        let bound = rules.bind(&shop(), &lookup).unwrap();
        let filters = bound.of("orders");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].values, [crate::SqlValue::Integer(7)]);
        assert_eq!(
            filters[1].values,
            [
                crate::SqlValue::Text("paid".into()),
                crate::SqlValue::Text("shipped".into())
            ]
        );
        assert!(bound.of("users").is_empty());
    }

    #[test]
    fn a_missing_or_mistyped_claim_is_refused_not_ignored() {
        let rules = rules("orders", "user_id=claims.sub").unwrap();
        for claims in [
            json!({}),
            json!({"sub": null}),
            json!({"sub": "abc"}),
            json!({"sub": [1, 2]}),
        ] {
            let lookup = |path: &str| claims.get(path).cloned();
            let error = rules.bind(&shop(), &lookup).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Forbidden, "{claims}");
        }
    }
}
