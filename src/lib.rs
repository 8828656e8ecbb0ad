//! brisk: one binary that serves a SQLite file or a PostgreSQL database as a
//! versioned REST API. See ARCHITECTURE.md for the path of a request.

pub mod access;
pub mod app;
pub mod auth;
pub mod cache;
pub mod changes;
pub mod cli;
pub mod cluster;
pub mod conditional;
pub mod config;
pub mod dataset;
pub mod db;
pub mod encoding;
pub mod error;
pub mod front;
pub mod gate;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod rate_limit;
pub mod read;
pub mod respond;
pub mod roles;
pub mod routes;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod validators;
pub mod versions;
pub mod write;
