//! The command line: `serve`, `demo`, `load-demo`, `install-triggers` and
//! `openapi`.

use crate::app::{App, load_schema, role_document};
use crate::config::{Config, DatabaseUrl, LogConfig, LogFormat, LogSettings, Overrides, Settings};
use crate::dataset::{self, DemoSpec, Target};
use crate::db::Database;
use crate::roles::Roles;
use crate::telemetry;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// brisk serves a SQLite file or a PostgreSQL database as a fast, versioned
/// REST API: pagination, sparse fields, filters, sorting and embedded
/// relations under /v1/{table}; answers cached and compressed, with ETags;
/// validated writes that invalidate exactly what they change; problem+json
/// errors; an OpenAPI document at /v1/openapi.json.
#[derive(Debug, Parser)]
#[command(
    name = "brisk",
    version,
    after_help = "Examples:\n  \
      brisk demo                                  # the demo shop on http://127.0.0.1:8080\n  \
      brisk serve --db shop.db --listen 0.0.0.0:8080\n  \
      BRISK_WRITES=true brisk serve --db postgres://app@db/shop\n  \
      brisk load-demo --db postgres://app@db/shop --scale 1\n\n\
      Configuration: ./brisk.toml, or BRISK_* variables (docs/configuration.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a database: brisk serve --db shop.db, or --db postgres://user@host/db
    Serve {
        /// A SQLite file (shop.db, sqlite://shop.db) or a postgres:// URL [config: database.url]
        #[arg(long)]
        db: Option<String>,
        #[command(flatten)]
        common: ServeOptions,
    },
    /// Create the demo shop in a SQLite file (if absent) and serve it
    Demo {
        /// The SQLite file holding the demo shop
        #[arg(long, default_value = "shop.db")]
        db: PathBuf,
        /// Scale factor of the generated data (1 = 10,000 users, 100,000 orders)
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Seed of the generated data; the same seed gives the same rows
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[command(flatten)]
        common: ServeOptions,
    },
    /// Write the demo shop (users, products, orders, order_items) into a database
    LoadDemo {
        /// A SQLite file (created if absent) or a postgres:// URL
        #[arg(long)]
        db: String,
        /// Scale factor (1 = 10,000 users, 5,000 products, 100,000 orders, ~300,000 items)
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Seed of the generated data; the same seed and scale give the same rows on both databases
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Drop the four demo tables first if they exist
        #[arg(long)]
        force: bool,
    },
    /// Install (or remove) the triggers that tell brisk which tables other programs wrote to
    ///
    /// PostgreSQL: statement triggers that NOTIFY brisk. SQLite: row triggers
    /// that count changes in a `_brisk_changes` table; without them brisk
    /// still notices outside writes, but drops every cached answer for each.
    /// Run it again after creating or recreating a table.
    InstallTriggers {
        /// A SQLite file or a postgres:// URL [config: database.url]
        #[arg(long)]
        db: Option<String>,
        /// Remove the triggers (and their function or table) instead
        #[arg(long)]
        remove: bool,
        /// A brisk.toml [default: ./brisk.toml if present]
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the OpenAPI 3.1 document of a database's API
    Openapi {
        /// A SQLite file or a postgres:// URL [config: database.url]
        #[arg(long)]
        db: Option<String>,
        /// A brisk.toml [default: ./brisk.toml if present]
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Describe what this role may do
        #[arg(long, default_value = "anonymous")]
        role: String,
    },
    /// API keys: `brisk key new --role reader` prints a new key once, and
    /// the lines that let it in (only the key's SHA-256 digest is stored)
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Make a new random API key for a role
    New {
        /// The role the key acts as (a [roles.NAME] of brisk.toml)
        #[arg(long)]
        role: String,
        /// The key's name in logs and rate limits [default: the role and a random suffix]
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeOptions {
    /// Address to listen on [config: listen; default 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<String>,
    /// A brisk.toml [default: ./brisk.toml if present]
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { db, common } => {
            let settings = settings(
                common.config.as_deref(),
                Overrides {
                    listen: common.listen,
                    database: db,
                },
            )?;
            serve(settings, None).await
        }
        Command::Demo {
            db,
            scale,
            seed,
            common,
        } => {
            check_scale(scale)?;
            let settings = settings(
                common.config.as_deref(),
                Overrides {
                    listen: common.listen,
                    database: Some(db.display().to_string()),
                },
            )?;
            if !db.exists() {
                eprintln!(
                    "creating the demo shop in {} (scale {scale}, seed {seed})",
                    db.display()
                );
                dataset::load(Target::Sqlite(&db), DemoSpec { scale, seed }, false).await?;
            }
            serve(settings, Some("the demo shop")).await
        }
        Command::LoadDemo {
            db,
            scale,
            seed,
            force,
        } => {
            check_scale(scale)?;
            telemetry::init(&LogSettings {
                filter: LogConfig::default().filter,
                format: LogFormat::Text,
            });
            let url = DatabaseUrl::parse(&db)?;
            let target = match &url {
                DatabaseUrl::Sqlite(path) => Target::Sqlite(path),
                DatabaseUrl::Postgres(url) => Target::Postgres(url),
            };
            let report = dataset::load(target, DemoSpec { scale, seed }, force).await?;
            eprintln!(
                "loaded {} users, {} products, {} orders and {} order items into {url} in {:.1} s",
                report.users,
                report.products,
                report.orders,
                report.order_items,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Command::InstallTriggers { db, remove, config } => {
            let settings = settings(
                config.as_deref(),
                Overrides {
                    listen: None,
                    database: db,
                },
            )?;
            let database = Database::connect(&settings.database).await?;
            let schema =
                load_schema(&database, &settings.database.schemas, &settings.schema).await?;
            let tables: Vec<String> = schema
                .resources()
                .filter(|r| r.kind == brisk_query::schema::ResourceKind::Table)
                .map(|r| r.name.clone())
                .collect();
            database
                .install_triggers(&settings.database.schemas, &tables, remove)
                .await
                .context("installing the triggers")?;
            let place = match &settings.database.url {
                DatabaseUrl::Postgres(_) => {
                    format!("schema {}", settings.database.schemas.join(", "))
                }
                DatabaseUrl::Sqlite(path) => path.display().to_string(),
            };
            eprintln!(
                "{} the change triggers {} {} tables of {place}: {}",
                if remove { "removed" } else { "installed" },
                if remove { "from" } else { "on" },
                tables.len(),
                tables.join(", ")
            );
            Ok(())
        }
        Command::Key {
            command: KeyCommand::New { role, name },
        } => {
            let issued = crate::auth::keys::issue(&role, name.as_deref())?;
            println!("{}", issued.instructions());
            Ok(())
        }
        Command::Openapi { db, config, role } => {
            let settings = settings(
                config.as_deref(),
                Overrides {
                    listen: None,
                    database: db,
                },
            )?;
            let database = Database::connect(&settings.database).await?;
            let schema =
                load_schema(&database, &settings.database.schemas, &settings.schema).await?;
            let roles = Roles::new(&settings.access, &schema, settings.reads.limits)?;
            let role = roles
                .get(&role)
                .with_context(|| format!("--role {role} is not a configured role"))?;
            let document = role_document(role, &settings);
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
    }
}

fn check_scale(scale: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        scale.is_finite() && scale > 0.0,
        "--scale must be a positive number, not {scale}"
    );
    Ok(())
}

/// Reads the config file (the given one, or ./brisk.toml if present), the
/// environment and the flags, and starts logging as they say.
fn settings(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
    let default_file = Path::new("brisk.toml");
    let file = config.or_else(|| default_file.exists().then_some(default_file));
    let settings = Settings::from_config(Config::load(file, &overrides)?)?;
    telemetry::init(&settings.log);
    if let Some(file) = file {
        tracing::info!(file = %file.display(), "configuration read");
    }
    Ok(settings)
}

async fn serve(settings: Settings, what: Option<&str>) -> anyhow::Result<()> {
    let app = App::build(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let resources: Vec<&str> = app.state.schema.resource_names().collect();
    tracing::info!(database = %settings.database.url, resources = resources.len(), "serving on http://{address}");
    let example = resources
        .iter()
        .copied()
        .find(|r| *r == "users")
        .or(resources.first().copied());
    let try_line = match example {
        Some(example) => format!("try: curl 'http://{address}/v1/{example}?limit=3'"),
        None => format!(
            "no tables or views to serve: the database (PostgreSQL: schema {}) has none, or schema.tables / schema.hidden_tables leave none",
            settings.database.schemas.join(", ")
        ),
    };
    eprintln!(
        "brisk is serving {} ({}) at http://{address}\n  resources: {}\n  {try_line}\n  the API document: curl http://{address}/v1/openapi.json",
        what.unwrap_or("the database"),
        settings.database.url,
        resources.join(", "),
    );
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
