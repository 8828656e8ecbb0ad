//! brisk's integration tests: one binary, a module per feature, each test
//! run against the real SQLite file and the real PostgreSQL database over
//! real HTTP.

mod support;

mod access;
mod caching;
mod chinook;
mod cluster;
mod cursors;
mod errors;
mod limits;
mod observability;
mod openapi;
mod property;
mod questions;
mod rate_limits;
mod reads;
mod schema;
mod types;
mod writes;
