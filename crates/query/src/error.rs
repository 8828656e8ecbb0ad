//! What went wrong with a request and where: no HTTP status, no wording of
//! the envelope. The server maps each [`ErrorKind`] to a problem type (and
//! its status, slug and title) in its one table of problems.

use std::fmt;

/// One problem with a request, naming the parameter (or path segment) at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub kind: ErrorKind,
    /// The parameter as the client wrote it (`sort`, `price[gte]`), or a
    /// path part (`resource`, `id`, `relation`).
    pub parameter: String,
    /// A lowercase sentence that helps the client fix the request.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The resource, row key shape or relation in the path does not exist.
    NotFound,
    /// A parameter name that is neither reserved nor a column.
    UnknownParameter,
    /// A field, sort key or filter column that the resource does not have.
    UnknownField,
    /// An `include` or `fields` path through a relation that does not exist.
    UnknownRelation,
    /// A value that does not fit its parameter or column type.
    InvalidValue,
    /// An unknown filter operator, or one the column type does not support.
    InvalidOperator,
    /// A cursor that was altered, or made for another query.
    InvalidCursor,
    /// Parameters that cannot be used together, or not on this route.
    Conflict,
    /// A parameter given more than once.
    Duplicate,
    /// The query string itself is malformed (bad percent-encoding, not UTF-8).
    Malformed,
    /// A request body that is not JSON, or not an object (or array of them).
    MalformedBody,
    /// A body field that is unknown, of the wrong type, out of range,
    /// missing, or not writable.
    InvalidField,
    /// The request asks for more work than a limit allows (`limits.*`).
    LimitExceeded,
    /// The caller's credentials do not allow it (a row rule that cannot be
    /// applied to them).
    Forbidden,
}

impl QueryError {
    pub fn new(kind: ErrorKind, parameter: impl Into<String>, detail: impl Into<String>) -> Self {
        QueryError {
            kind,
            parameter: parameter.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.detail)
    }
}

impl std::error::Error for QueryError {}

/// Every problem found in one request, so a client can fix them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryErrors(pub Vec<QueryError>);

impl QueryErrors {
    pub fn push(&mut self, error: QueryError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kind that decides the status: not-found outranks bad input.
    pub fn primary_kind(&self) -> ErrorKind {
        if self.0.iter().any(|e| e.kind == ErrorKind::NotFound) {
            ErrorKind::NotFound
        } else {
            self.0.first().map_or(ErrorKind::Malformed, |e| e.kind)
        }
    }

    /// `Ok(value)` when nothing was pushed.
    pub fn into_result<T>(self, value: T) -> Result<T, QueryErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<QueryError> for QueryErrors {
    fn from(error: QueryError) -> Self {
        QueryErrors(vec![error])
    }
}

impl fmt::Display for QueryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// `"; did you mean 'price'?"` when a candidate is close to `given`, else `""`.
///
/// Close means a Jaro-Winkler similarity of at least 0.8, or the same name
/// in another case.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let lower = given.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            let score = if candidate.to_lowercase() == lower {
                1.0
            } else {
                strsim::jaro_winkler(&lower, &candidate.to_lowercase())
            };
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, best)| format!("; did you mean '{best}'?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(
            did_you_mean("prce", ["name", "price", "category"]),
            "; did you mean 'price'?"
        );
        assert_eq!(
            did_you_mean("Email", ["name", "email"]),
            "; did you mean 'email'?"
        );
        assert_eq!(did_you_mean("zzz", ["name", "price"]), "");
    }
}
