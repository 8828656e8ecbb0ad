//! The database schema as plain data: resources, columns, keys and relations.
//!
//! The server fills a [`Schema`] by introspecting SQLite or PostgreSQL; every
//! identifier that ever reaches SQL comes from here.

use std::collections::BTreeMap;

/// Every exposed table and view, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    resources: BTreeMap<String, Resource>,
}

/// A table or view served at `/v1/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub kind: ResourceKind,
    pub columns: Vec<Column>,
    /// Columns of the primary key, in key order; empty for views and keyless tables.
    pub primary_key: Vec<String>,
    pub relations: Vec<Relation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Table,
    View,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    /// The type as the database names it: the declared type on SQLite, a
    /// schema-qualified type name on PostgreSQL (used for parameter casts).
    pub db_type: String,
    pub nullable: bool,
    /// Whether the database fills the column when an insert leaves it out.
    pub has_default: bool,
}

/// What a column holds, as far as checking values and sorting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    /// Binary floating point (SQLite REAL, PostgreSQL float4/float8).
    Real,
    /// Exact decimal (PostgreSQL numeric).
    Numeric,
    Text,
    Boolean,
    Timestamp,
    Date,
    Uuid,
    Json,
    Blob,
    /// Anything else: compared as text, and the database checks the value.
    Other,
}

impl ColumnKind {
    /// Whether values of this kind have an order (sort keys, gt/lt filters).
    pub fn is_ordered(self) -> bool {
        !matches!(self, ColumnKind::Json | ColumnKind::Blob)
    }

    /// Whether `eq`/`ne`/`in` make sense for this kind.
    pub fn is_comparable(self) -> bool {
        !matches!(self, ColumnKind::Json | ColumnKind::Blob)
    }

    pub fn is_textual(self) -> bool {
        matches!(self, ColumnKind::Text | ColumnKind::Other)
    }

    /// A short name for error messages and the OpenAPI document.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnKind::Integer => "integer",
            ColumnKind::Real | ColumnKind::Numeric => "number",
            ColumnKind::Text | ColumnKind::Other => "text",
            ColumnKind::Boolean => "boolean (true or false)",
            ColumnKind::Timestamp => "timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z)",
            ColumnKind::Date => "date (YYYY-MM-DD)",
            ColumnKind::Uuid => "UUID",
            ColumnKind::Json => "JSON",
            ColumnKind::Blob => "binary",
        }
    }
}

/// A foreign key seen from one side.
///
/// Rows of `target` are related when `target.remote_column = self.local_column`.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub name: String,
    pub cardinality: Cardinality,
    pub target: String,
    pub local_column: String,
    pub remote_column: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// `orders.user`: the referenced row (or null).
    ToOne,
    /// `users.orders`: the referencing rows.
    ToMany,
}

/// A foreign key as the database reports it, before relations are named.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub table: String,
    pub column: String,
    pub referenced_table: String,
    pub referenced_column: String,
}

impl Schema {
    /// Builds the schema from introspected resources and single-column foreign
    /// keys, naming relations as API.md says: to-one by the column without
    /// `_id`, to-many by the referencing table (`{table}_{column}` when one
    /// table references the same target twice). A relation whose name is taken
    /// by a column or an earlier relation is left out.
    pub fn new(resources: Vec<Resource>, foreign_keys: &[ForeignKey]) -> Schema {
        let mut resources: BTreeMap<String, Resource> =
            resources.into_iter().map(|r| (r.name.clone(), r)).collect();
        for fk in foreign_keys {
            if !resources.contains_key(&fk.table) || !resources.contains_key(&fk.referenced_table) {
                continue;
            }
            let to_one_name = fk
                .column
                .strip_suffix("_id")
                .filter(|stem| !stem.is_empty())
                .unwrap_or(&fk.referenced_table)
                .to_string();
            let twins = foreign_keys
                .iter()
                .filter(|other| {
                    other.table == fk.table && other.referenced_table == fk.referenced_table
                })
                .count();
            let to_many_name = if twins > 1 {
                format!("{}_{}", fk.table, to_one_name)
            } else {
                fk.table.clone()
            };
            add_relation(
                &mut resources,
                &fk.table,
                Relation {
                    name: to_one_name,
                    cardinality: Cardinality::ToOne,
                    target: fk.referenced_table.clone(),
                    local_column: fk.column.clone(),
                    remote_column: fk.referenced_column.clone(),
                },
            );
            add_relation(
                &mut resources,
                &fk.referenced_table,
                Relation {
                    name: to_many_name,
                    cardinality: Cardinality::ToMany,
                    target: fk.table.clone(),
                    local_column: fk.referenced_column.clone(),
                    remote_column: fk.column.clone(),
                },
            );
        }
        Schema { resources }
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.get(name)
    }

    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    pub fn resource_names(&self) -> impl Iterator<Item = &str> {
        self.resources.keys().map(String::as_str)
    }

    /// Keeps only the resources `keep` accepts and, within them, the columns
    /// `keep_column` accepts; relations to dropped resources or through
    /// dropped columns go too.
    pub fn restrict(
        mut self,
        keep: impl Fn(&str) -> bool,
        keep_column: impl Fn(&str, &str) -> bool,
    ) -> Schema {
        self.resources.retain(|name, _| keep(name));
        let names: Vec<String> = self.resources.keys().cloned().collect();
        for resource in self.resources.values_mut() {
            let table = resource.name.clone();
            resource.columns.retain(|c| keep_column(&table, &c.name));
            let has = |columns: &[Column], name: &str| columns.iter().any(|c| c.name == name);
            if !resource
                .primary_key
                .iter()
                .all(|k| has(&resource.columns, k))
            {
                resource.primary_key.clear();
            }
            let columns = resource.columns.clone();
            resource.relations.retain(|r| {
                names.contains(&r.target)
                    && has(&columns, &r.local_column)
                    && keep_column(&r.target, &r.remote_column)
            });
        }
        self
    }
}

fn add_relation(resources: &mut BTreeMap<String, Resource>, table: &str, relation: Relation) {
    let Some(resource) = resources.get_mut(table) else {
        return;
    };
    let taken =
        resource.column(&relation.name).is_some() || resource.relation(&relation.name).is_some();
    if !taken {
        resource.relations.push(relation);
    }
}

impl Resource {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn relation(&self, name: &str) -> Option<&Relation> {
        self.relations.iter().find(|r| r.name == name)
    }

    /// The primary key column when the key is a single column: the one that
    /// `/v1/{resource}/{id}` addresses.
    pub fn row_key(&self) -> Option<&Column> {
        match self.primary_key.as_slice() {
            [only] => self.column(only),
            _ => None,
        }
    }

    /// The columns that make a sort total: the primary key, or, for views and
    /// keyless tables, every ordered column (rows may still tie, so such
    /// resources get no cursors).
    pub fn tie_breakers(&self) -> Vec<&Column> {
        if self.primary_key.is_empty() {
            self.columns
                .iter()
                .filter(|c| c.kind.is_ordered())
                .collect()
        } else {
            self.primary_key
                .iter()
                .filter_map(|k| self.column(k))
                .collect()
        }
    }

    pub fn has_unique_order(&self) -> bool {
        !self.primary_key.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! The demo shop's schema, as introspection reports it, for unit tests.
    use super::*;

    fn column(name: &str, kind: ColumnKind, nullable: bool) -> Column {
        Column {
            name: name.into(),
            kind,
            db_type: match kind {
                ColumnKind::Integer => "pg_catalog.int4",
                ColumnKind::Numeric => "pg_catalog.numeric",
                ColumnKind::Timestamp => "pg_catalog.timestamptz",
                _ => "pg_catalog.text",
            }
            .into(),
            nullable,
            has_default: name == "id",
        }
    }

    fn table(name: &str, columns: Vec<Column>) -> Resource {
        Resource {
            name: name.into(),
            kind: ResourceKind::Table,
            columns,
            primary_key: vec!["id".into()],
            relations: vec![],
        }
    }

    fn fk(table: &str, column: &str, target: &str) -> ForeignKey {
        ForeignKey {
            table: table.into(),
            column: column.into(),
            referenced_table: target.into(),
            referenced_column: "id".into(),
        }
    }

    pub fn shop() -> Schema {
        use ColumnKind::*;
        let stamps = || {
            vec![
                column("created_at", Timestamp, false),
                column("updated_at", Timestamp, false),
            ]
        };
        let users = table(
            "users",
            [
                vec![
                    column("id", Integer, false),
                    column("name", Text, false),
                    column("email", Text, false),
                    column("profile_picture", Text, true),
                    column("country", Text, false),
                ],
                stamps(),
            ]
            .concat(),
        );
        let products = table(
            "products",
            [
                vec![
                    column("id", Integer, false),
                    column("name", Text, false),
                    column("category", Text, false),
                    column("price", Numeric, false),
                    column("stock", Integer, false),
                    column("description", Text, false),
                ],
                stamps(),
            ]
            .concat(),
        );
        let orders = table(
            "orders",
            [
                vec![
                    column("id", Integer, false),
                    column("user_id", Integer, false),
                    column("status", Text, false),
                    column("total", Numeric, false),
                ],
                stamps(),
            ]
            .concat(),
        );
        let order_items = table(
            "order_items",
            vec![
                column("id", Integer, false),
                column("order_id", Integer, false),
                column("product_id", Integer, false),
                column("quantity", Integer, false),
                column("unit_price", Numeric, false),
            ],
        );
        Schema::new(
            vec![users, products, orders, order_items],
            &[
                fk("orders", "user_id", "users"),
                fk("order_items", "order_id", "orders"),
                fk("order_items", "product_id", "products"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_are_named_from_foreign_keys() {
        let schema = fixtures::shop();
        let orders = schema.resource("orders").unwrap();
        let user = orders.relation("user").unwrap();
        assert_eq!(user.cardinality, Cardinality::ToOne);
        assert_eq!(
            (user.local_column.as_str(), user.remote_column.as_str()),
            ("user_id", "id")
        );
        let users = schema.resource("users").unwrap();
        let to_many = users.relation("orders").unwrap();
        assert_eq!(to_many.cardinality, Cardinality::ToMany);
        assert_eq!(
            (
                to_many.local_column.as_str(),
                to_many.remote_column.as_str()
            ),
            ("id", "user_id")
        );
        let products = schema.resource("products").unwrap();
        assert!(products.relation("order_items").is_some());
    }

    #[test]
    fn two_keys_to_one_table_get_distinct_to_many_names() {
        let mut shop = fixtures::shop();
        let users = shop.resource("users").unwrap().clone();
        let mut messages = users.clone();
        messages.name = "messages".into();
        messages.relations.clear();
        let fks = [
            ForeignKey {
                table: "messages".into(),
                column: "sender_id".into(),
                referenced_table: "users".into(),
                referenced_column: "id".into(),
            },
            ForeignKey {
                table: "messages".into(),
                column: "recipient_id".into(),
                referenced_table: "users".into(),
                referenced_column: "id".into(),
            },
        ];
        let mut plain_users = users;
        plain_users.relations.clear();
        shop = Schema::new(vec![plain_users, messages], &fks);
        let users = shop.resource("users").unwrap();
        let names: Vec<&str> = users.relations.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["messages_sender", "messages_recipient"]);
        let messages = shop.resource("messages").unwrap();
        assert!(messages.relation("sender").is_some());
        assert!(messages.relation("recipient").is_some());
    }

    #[test]
    fn restrict_drops_hidden_resources_columns_and_their_relations() {
        let schema = fixtures::shop().restrict(
            |name| name != "order_items",
            |table, column| !(table == "orders" && column == "user_id"),
        );
        assert!(schema.resource("order_items").is_none());
        let orders = schema.resource("orders").unwrap();
        assert!(orders.column("user_id").is_none());
        assert!(orders.relation("user").is_none());
        assert!(
            schema
                .resource("users")
                .unwrap()
                .relation("orders")
                .is_none()
        );
        assert!(schema.resource("products").unwrap().relations.is_empty());
    }
}
