//! Who is asking: API keys and JWT bearer tokens.

pub mod jwt;
pub mod keys;

use serde_json::{Map, Value};

/// The value at a dotted path in the claims (`app.role`).
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = claims.get(parts.next()?)?;
    parts.try_fold(first, |value, key| value.get(key))
}
