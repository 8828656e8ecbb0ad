//! brisk's query layer, free of IO: the URL language of `/v1/...` reads,
//! from the raw query string to SQL text with bound values, and from the
//! rows the database returned to the response body.
//!
//! The path of a read through this crate:
//!
//! 1. [`params`]: query string → [`QueryParams`] (syntax only)
//! 2. [`plan`]: params + [`Schema`] → [`ReadPlan`] (every semantic check)
//! 3. [`sql`]: plan + [`Dialect`] → [`Sql`] text and [`SqlValue`]s, one
//!    statement per embed level
//! 4. [`rows`]: the cells the drivers decoded → each row's JSON
//! 5. [`envelope`]: rows → the body with `meta` and `links`
//!
//! [`canonical`] spells equivalent requests alike (links, cache keys,
//! cursor fingerprints), [`cursor`] signs keyset cursors, and [`write`]
//! checks write bodies against the schema.

pub mod canonical;
pub mod cursor;
pub mod envelope;
pub mod error;
pub mod key;
pub mod params;
pub mod plan;
pub mod rows;
pub mod schema;
pub mod sql;
pub mod value;
pub mod write;

pub use cursor::CursorCodec;
pub use error::{ErrorKind, QueryError, QueryErrors};
pub use params::QueryParams;
pub use plan::{Limits, ReadPlan, ReadRequest, plan_read};
pub use schema::Schema;
pub use sql::{Dialect, Sql};
pub use value::SqlValue;
