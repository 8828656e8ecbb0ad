//! The application, built from [`Settings`]: database pool, schema, router.
//! The listener and the shutdown signal are injected, so tests run the real
//! app on port 0.

use crate::config::Settings;
use crate::db::Database;
use crate::{openapi, routes};
use anyhow::Context;
use axum::Router;
use brisk_query::{CursorCodec, Limits, Schema};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every request handler shares.
pub struct AppState {
    pub schema: Schema,
    pub db: Database,
    pub limits: Limits,
    pub cursors: CursorCodec,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: Bytes,
}

/// A built application, not yet listening.
pub struct App {
    pub state: Arc<AppState>,
    pub router: Router,
}

impl App {
    /// Connects to the database, reads its schema and builds the router.
    pub async fn build(settings: &Settings) -> anyhow::Result<App> {
        let db = Database::connect(settings).await?;
        let schema = load_schema(&db, settings).await?;
        let openapi = openapi::document(&schema, &settings.limits);
        let state = Arc::new(AppState {
            schema,
            db,
            limits: settings.limits,
            cursors: CursorCodec::new(settings.cursor_secret.clone()),
            openapi: Bytes::from(
                serde_json::to_vec(&openapi).context("rendering the OpenAPI document")?,
            ),
        });
        let router = routes::router(state.clone());
        Ok(App { state, router })
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Introspects the database and applies the config's exposed and hidden
/// tables and columns.
pub async fn load_schema(db: &Database, settings: &Settings) -> anyhow::Result<Schema> {
    let found = db
        .introspect(&settings.schema_name)
        .await
        .context("cannot read the database schema")?;
    let schema = Schema::new(found.resources, &found.foreign_keys).restrict(
        |table| settings.serves_table(table),
        |table, column| settings.serves_column(table, column),
    );
    if schema.resources().next().is_none() {
        tracing::warn!("the database has no tables or views to serve");
    }
    Ok(schema)
}
