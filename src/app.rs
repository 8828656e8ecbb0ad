//! The wiring at the top: the application built from [`Settings`] (database
//! pool, schema, versions, cache, the Redis link, router) and served on an
//! injected listener until an injected shutdown signal, so tests run the
//! real app on port 0. Each component gets its own settings section.

use crate::access::Access;
use crate::cache::ResponseCache;
use crate::changes::{self, Changes};
use crate::cluster::Cluster;
use crate::conditional::EtagSeed;
use crate::config::{HttpSettings, SchemaSettings, Settings};
use crate::db::Database;
use crate::front::{self, Front, HeadBounds};
use crate::gate::Gate;
use crate::roles::{Role, Roles};
use crate::state::AppState;
use crate::validators::Validators;
use crate::versions::Versions;
use crate::{openapi, routes, server};
use anyhow::Context;
use brisk_query::schema::ResourceKind;
use brisk_query::{CursorCodec, Schema};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A built application, not yet listening.
pub struct App {
    pub state: Arc<AppState>,
    pub service: Front,
    http: HttpSettings,
    metrics_listen: Option<std::net::SocketAddr>,
}

impl App {
    /// Connects to the database, reads its schema and builds the router.
    /// Background work (outside-change watching, Redis) starts here too.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let db = Database::connect(&settings.database).await?;
        let schema = load_schema(&db, &settings.database.schemas, &settings.schema).await?;
        let roles = Roles::new(&settings.access, &schema, settings.reads.limits)?;
        let documents = roles
            .iter()
            .map(|role| {
                let document = role_document(role, settings);
                let bytes =
                    serde_json::to_vec(&document).context("rendering the OpenAPI document")?;
                Ok((role.name.to_string(), Bytes::from(bytes)))
            })
            .collect::<anyhow::Result<_>>()?;
        announce_access(settings, &roles);
        let versions = Arc::new(
            Versions::new(schema.resource_names(), db.last_changed().await).with_views(
                schema
                    .resources()
                    .filter(|r| r.kind == ResourceKind::View)
                    .map(|r| r.name.as_str()),
            ),
        );
        let cluster = settings.redis.as_ref().map(Cluster::new).transpose()?;
        let seed = Arc::new(EtagSeed::new());
        let validators = Validators::new(
            versions.clone(),
            seed.clone(),
            cluster
                .clone()
                .zip(settings.redis.as_ref().map(|r| r.degraded_ttl)),
        );
        let access = Access::new(&settings.access, roles, cluster.clone(), documents)?;
        let changes = Changes::new(versions.clone(), cluster.clone());
        if let Some(cluster) = &cluster {
            tokio::spawn(cluster.clone().run(versions, seed));
        }
        let tables: Vec<String> = schema
            .resources()
            .filter(|r| r.kind == ResourceKind::Table)
            .map(|r| r.name.clone())
            .collect();
        changes::watch(
            &changes,
            &db,
            tables,
            settings.changes,
            &settings.instance_id,
        );
        let state = Arc::new(AppState {
            cache: ResponseCache::new(&settings.cache, schema.resource_names()),
            gate: Gate::new(settings.database.pool_size, settings.database.max_waiting),
            budget: settings.reads.budget,
            read_timeout: settings.reads.timeout,
            schema,
            db,
            limits: settings.reads.limits,
            cursors: CursorCodec::new(settings.reads.cursor_secret.clone()),
            access,
            validators,
            changes,
            compression: settings.compression,
            recompression: tokio::sync::Semaphore::new(1),
            writes: settings.writes,
            cluster,
            instance_id: settings.instance_id.clone(),
            metrics: Arc::default(),
            metrics_here: settings.metrics_listen.is_none(),
            cors: Arc::new(settings.cors.clone()),
        });
        let bounds = HeadBounds {
            max_url_bytes: settings.http.max_url_bytes,
            max_header_bytes: settings.http.max_header_bytes,
        };
        let service = front::service(state.clone(), bounds);
        Ok(App {
            state,
            service,
            http: settings.http,
            metrics_listen: settings.metrics_listen,
        })
    }

    /// Serves until `shutdown` resolves, then lets the requests in flight
    /// finish within `http.shutdown_grace_ms`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use futures_util::FutureExt;
        let shutdown = shutdown.shared();
        if let Some(address) = self.metrics_listen {
            let admin = TcpListener::bind(address).await?;
            let state = self.state.clone();
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let state = state.clone();
                    async move { routes::metrics_text(&state) }
                }),
            );
            tokio::spawn(server::serve(admin, router, self.http, shutdown.clone()));
        }
        server::serve(listener, self.service, self.http, shutdown).await
    }
}

/// The OpenAPI document of what `role` may do.
pub fn role_document(role: &Role, settings: &Settings) -> serde_json::Value {
    let writes = settings.writes.enabled;
    openapi::document(
        &role.reads,
        &settings.reads.limits,
        &|resource, method| writes && role.may_write(resource, method),
        settings
            .access
            .configured
            .then_some(settings.access.api_key_header.as_str()),
    )
}

/// Says at start-up who may do what, loudly when anyone may do anything.
fn announce_access(settings: &Settings, roles: &Roles) {
    if !settings.access.configured {
        if settings.writes.enabled {
            tracing::warn!(
                "no API keys, tokens or roles are configured: anyone who reaches this address may read and WRITE every served resource (writes = true); see docs/auth.md"
            );
        } else {
            tracing::info!(
                "no API keys, tokens or roles are configured: anyone who reaches this address may read every served resource; see docs/auth.md"
            );
        }
        return;
    }
    let mut names: Vec<&str> = roles.iter().map(|r| &*r.name).collect();
    names.sort_unstable();
    tracing::info!(
        roles = names.join(", "),
        keys = settings.access.keys.len(),
        jwt = settings.access.jwt.is_some(),
        "access control on: callers without credentials are anonymous"
    );
}

/// Introspects the database (`schemas` on PostgreSQL) and applies the
/// config's served and hidden tables and columns.
pub async fn load_schema(
    db: &Database,
    schemas: &[String],
    served: &SchemaSettings,
) -> anyhow::Result<Schema> {
    let found = db
        .introspect(schemas)
        .await
        .context("cannot read the database schema")?;
    let schema = Schema::new(found.resources, &found.foreign_keys).restrict(
        |table| served.serves_table(table),
        |table, column| served.serves_column(table, column),
    );
    if schema.resources().next().is_none() {
        tracing::warn!("the database has no tables or views to serve");
    }
    Ok(schema)
}
