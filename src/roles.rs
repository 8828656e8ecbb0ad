//! Roles: what a caller may read and write, which columns it sees and which
//! rows. Each role is built once, at start-up, from `[roles]` and the served
//! schema: it gets the schema as it sees it, so a column or resource hidden
//! from it is absent from every check (fields, filters, sort, include,
//! cursors, errors, its OpenAPI document) by construction, not by a check
//! that could be forgotten.

use crate::config::{ANONYMOUS, AccessSettings, RoleConfig};
use anyhow::{Context, bail};
use brisk_query::plan::RowRules;
use brisk_query::write::WriteMethod;
use brisk_query::{Limits, Schema};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Every role, by name.
#[derive(Debug)]
pub struct Roles {
    by_name: HashMap<String, Arc<Role>>,
}

#[derive(Debug)]
pub struct Role {
    pub name: Arc<str>,
    /// What it may read: the resources granted, the columns it sees.
    pub reads: Schema,
    /// What it may write: the resources granted, the columns it sees.
    pub writes: Schema,
    /// The write methods granted, by resource.
    methods: BTreeMap<String, BTreeSet<WriteMethod>>,
    /// The rows it may see and write, by resource.
    pub rules: RowRules,
    /// The claims its row rules read: its callers share cached answers
    /// when these agree.
    pub rule_claims: Vec<String>,
    /// Requests per window for each of its callers, if limited.
    pub quota: Option<(u32, Duration)>,
}

const ALL_WRITES: [WriteMethod; 4] = [
    WriteMethod::Post,
    WriteMethod::Patch,
    WriteMethod::Put,
    WriteMethod::Delete,
];

impl Roles {
    /// Builds every role against the served schema. With no access
    /// settings at all, one role, `anonymous`, reads everything and writes
    /// everything when `writes = true` (brisk as a local tool).
    pub fn new(access: &AccessSettings, served: &Schema, limits: Limits) -> anyhow::Result<Roles> {
        let mut by_name = HashMap::new();
        for (name, config) in &access.roles {
            let mut config = config.clone();
            if !access.configured && name == ANONYMOUS {
                config.write = vec!["*".into()];
            }
            let role = build(name, &config, access, served, limits)
                .with_context(|| format!("in [roles.{name}]"))?;
            by_name.insert(name.clone(), Arc::new(role));
        }
        Ok(Roles { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Role>> {
        self.by_name.get(name)
    }

    pub fn anonymous(&self) -> &Arc<Role> {
        self.get(ANONYMOUS)
            .expect("the access settings always hold anonymous")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Role>> {
        self.by_name.values()
    }
}

impl Role {
    pub fn may_read(&self, resource: &str) -> bool {
        self.reads.resource(resource).is_some()
    }

    pub fn may_write(&self, resource: &str, method: WriteMethod) -> bool {
        self.methods
            .get(resource)
            .is_some_and(|methods| methods.contains(&method))
    }

    /// Whether it may write anything at all.
    pub fn writes_anything(&self) -> bool {
        !self.methods.is_empty()
    }
}

fn build(
    name: &str,
    config: &RoleConfig,
    access: &AccessSettings,
    served: &Schema,
    limits: Limits,
) -> anyhow::Result<Role> {
    let exists = |resource: &str, key: &str| -> anyhow::Result<()> {
        if served.resource(resource).is_none() {
            bail!("{key}: '{resource}' is not a served resource");
        }
        Ok(())
    };
    let readable: BTreeSet<String> = if config.read.iter().any(|r| r == "*") {
        served.resource_names().map(str::to_string).collect()
    } else {
        for resource in &config.read {
            exists(resource, "read")?;
        }
        config.read.iter().cloned().collect()
    };
    let mut methods: BTreeMap<String, BTreeSet<WriteMethod>> = BTreeMap::new();
    for grant in &config.write {
        let (resource, method) = match grant.split_once(':') {
            Some((resource, method)) => (resource, Some(method)),
            None => (grant.as_str(), None),
        };
        let granted: Vec<WriteMethod> = match method {
            None => ALL_WRITES.to_vec(),
            Some(method) => vec![parse_method(method).with_context(|| {
                format!("write: '{grant}' names no write method (POST, PATCH, PUT or DELETE)")
            })?],
        };
        let resources: Vec<String> = if resource == "*" {
            served.resource_names().map(str::to_string).collect()
        } else {
            exists(resource, "write")?;
            vec![resource.to_string()]
        };
        for resource in resources {
            let table = served.resource(&resource).expect("a served resource");
            // a method named outright must be one the resource takes; "*"
            // and a bare table grant what it takes
            if let (Some(_), Some(refusal)) = (method, table.refusal(granted[0])) {
                bail!("write: '{grant}': {refusal}");
            }
            let taken = granted.iter().copied().filter(|m| table.accepts(*m));
            methods.entry(resource).or_default().extend(taken);
        }
        methods.retain(|_, granted| !granted.is_empty());
    }
    let mut rules = RowRules::new(limits);
    for (resource, details) in &config.resources {
        exists(resource, "resources")?;
        let table = served.resource(resource).expect("checked above");
        for column in details.columns.iter().chain(&details.hidden_columns) {
            if table.column(column).is_none() {
                bail!("resources.{resource}: '{column}' is not a served column of {resource}");
            }
        }
        if !details.rows.is_empty() {
            rules
                .add(served, resource, &details.rows)
                .map_err(|e| anyhow::anyhow!("resources.{resource}.rows: {e}"))?;
        }
    }
    let sees = |resource: &str, column: &str| {
        config.resources.get(resource).is_none_or(|details| {
            (details.columns.is_empty() || details.columns.iter().any(|c| c == column))
                && !details.hidden_columns.iter().any(|c| c == column)
        })
    };
    let reads = served
        .clone()
        .restrict(|resource| readable.contains(resource), sees);
    let writes = served
        .clone()
        .restrict(|resource| methods.contains_key(resource), sees);
    for (resource, granted) in &methods {
        let table = served.resource(resource).expect("checked above");
        if granted.contains(&WriteMethod::Post)
            && let Some(column) = table
                .columns
                .iter()
                .find(|c| c.required() && !sees(resource, &c.name))
        {
            bail!(
                "write: the role may POST to {resource} but does not see its required column '{}', \
                 so it could never create a row; let it see the column, give the column a default, \
                 or grant {resource}:PATCH instead of every method",
                column.name
            );
        }
    }
    let quota = match &config.rate_limit {
        Some(limit) if limit.requests == 0 => None,
        Some(limit) => Some((
            limit.requests.min(u32::MAX as u64) as u32,
            Duration::from_secs(limit.window_seconds),
        )),
        None => access.rate_limit.default,
    };
    Ok(Role {
        name: name.into(),
        rule_claims: rules.claims().into_iter().map(str::to_string).collect(),
        reads,
        writes,
        methods,
        rules,
        quota,
    })
}

fn parse_method(method: &str) -> Option<WriteMethod> {
    match method.trim().to_ascii_uppercase().as_str() {
        "POST" => Some(WriteMethod::Post),
        "PATCH" => Some(WriteMethod::Patch),
        "PUT" => Some(WriteMethod::Put),
        "DELETE" => Some(WriteMethod::Delete),
        _ => None,
    }
}
