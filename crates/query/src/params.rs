//! The query string, parsed for syntax only: which parameters, which
//! operators, which values. Whether a name is a real column is [`crate::plan`]'s job.
//!
//! ```text
//! query     = [ pair *( "&" pair ) ]            ; empty pairs are skipped
//! pair      = key [ "=" value ]                 ; both percent-decoded, "+" is a space
//! key       = "fields" / "include" / "sort" / "limit" / "page" / "cursor" / "count"
//!           / column [ "[" operator "]" ]       ; anything else is a filter
//! fields    = path *( "," path )                ; name, or relation.name
//! include   = path *( "," path )                ; relation, or relation.relation...
//! path      = name *( "." name )
//! sort      = sortkey *( "," sortkey )
//! sortkey   = [ "-" ] name / name ( "_asc" / "_desc" )
//! limit     = 1*DIGIT                           ; 1..=max_limit
//! page      = 1*DIGIT                           ; 1-based
//! cursor    = base64url                         ; from meta.next_cursor or links
//! count     = "exact"
//! operator  = "eq" / "ne" / "gt" / "gte" / "lt" / "lte"
//!           / "in" / "nin" / "like" / "ilike" / "null"
//! list      = item *( "," item )                ; for in and nin
//! item      = 1*( any but "," ) / DQUOTE *( any but DQUOTE / "\" any ) DQUOTE
//! ```
//!
//! A filter without brackets means `eq`. A reserved key used as a column name
//! needs explicit brackets: `limit[eq]=5` filters on a column named `limit`.

use crate::error::{ErrorKind, QueryError, QueryErrors};
use percent_encoding::percent_decode;

/// The reserved parameter names, in canonical order.
pub const RESERVED: [&str; 7] = [
    "fields", "include", "sort", "limit", "page", "cursor", "count",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// Dotted paths in the order given.
    pub fields: Option<Vec<String>>,
    pub include: Vec<String>,
    /// Sort keys as written (`-price`, `price_asc`, `name`).
    pub sort: Option<Vec<String>>,
    pub limit: Option<u64>,
    pub page: Option<u64>,
    pub cursor: Option<String>,
    pub count: bool,
    pub filters: Vec<RawFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFilter {
    /// The key as the client wrote it, for error messages.
    pub parameter: String,
    pub column: String,
    pub operator: Operator,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Like,
    Ilike,
    Null,
    /// Array or range contains (`@>`), is contained by (`<@`), overlaps
    /// (`&&`).
    Cs,
    Cd,
    Ov,
    /// Ranges: strictly left of (`<<`), strictly right of (`>>`), does not
    /// extend to the right of (`&<`), nor to the left of (`&>`), adjacent
    /// to (`-|-`).
    Sl,
    Sr,
    Nxr,
    Nxl,
    Adj,
    /// Full-text search: PostgreSQL `@@ websearch_to_tsquery`, SQLite FTS5
    /// `MATCH`, on columns marked [`Column::searchable`](crate::schema::Column).
    Fts,
}

impl Operator {
    pub const ALL: [Operator; 20] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::In,
        Operator::Nin,
        Operator::Like,
        Operator::Ilike,
        Operator::Null,
        Operator::Cs,
        Operator::Cd,
        Operator::Ov,
        Operator::Sl,
        Operator::Sr,
        Operator::Nxr,
        Operator::Nxl,
        Operator::Adj,
        Operator::Fts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Ne => "ne",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::In => "in",
            Operator::Nin => "nin",
            Operator::Like => "like",
            Operator::Ilike => "ilike",
            Operator::Null => "null",
            Operator::Cs => "cs",
            Operator::Cd => "cd",
            Operator::Ov => "ov",
            Operator::Sl => "sl",
            Operator::Sr => "sr",
            Operator::Nxr => "nxr",
            Operator::Nxl => "nxl",
            Operator::Adj => "adj",
            Operator::Fts => "fts",
        }
    }

    /// Whether a range column takes it (with a range, or for `cs` an element).
    pub fn takes_range(self) -> bool {
        matches!(
            self,
            Operator::Cs
                | Operator::Cd
                | Operator::Ov
                | Operator::Sl
                | Operator::Sr
                | Operator::Nxr
                | Operator::Nxl
                | Operator::Adj
        )
    }

    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl QueryParams {
    /// Parses a raw query string (without the `?`), collecting every problem.
    pub fn parse(query: &str) -> Result<QueryParams, QueryErrors> {
        let mut params = QueryParams::default();
        let mut errors = QueryErrors::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = match decode(raw_key) {
                Ok(key) => key,
                Err(detail) => {
                    errors.push(QueryError::new(ErrorKind::Malformed, raw_key, detail));
                    continue;
                }
            };
            let value = match decode(raw_value) {
                Ok(value) => value,
                Err(detail) => {
                    errors.push(QueryError::new(ErrorKind::Malformed, key, detail));
                    continue;
                }
            };
            if let Err(error) = params.add(key, value) {
                errors.push(error);
            }
        }
        errors.into_result(params)
    }

    fn add(&mut self, key: String, value: String) -> Result<(), QueryError> {
        let duplicate = |key: &str| {
            QueryError::new(
                ErrorKind::Duplicate,
                key,
                format!(
                    "'{key}' is given more than once; give it once, with a comma-separated list where it takes several values"
                ),
            )
        };
        match key.as_str() {
            "fields" if self.fields.is_some() => Err(duplicate(&key)),
            "fields" => {
                self.fields = Some(split_names(&key, &value)?);
                Ok(())
            }
            "include" if !self.include.is_empty() => Err(duplicate(&key)),
            "include" => {
                self.include = split_names(&key, &value)?;
                Ok(())
            }
            "sort" if self.sort.is_some() => Err(duplicate(&key)),
            "sort" => {
                self.sort = Some(split_names(&key, &value)?);
                Ok(())
            }
            "limit" if self.limit.is_some() => Err(duplicate(&key)),
            "limit" => {
                self.limit = Some(parse_count(
                    &key,
                    &value,
                    "a whole number of rows, e.g. limit=50",
                )?);
                Ok(())
            }
            "page" if self.page.is_some() => Err(duplicate(&key)),
            "page" => {
                self.page = Some(parse_count(
                    &key,
                    &value,
                    "a page number from 1, e.g. page=2",
                )?);
                Ok(())
            }
            "cursor" if self.cursor.is_some() => Err(duplicate(&key)),
            "cursor" if value.is_empty() => Err(QueryError::new(
                ErrorKind::InvalidValue,
                key,
                "cursor is empty; pass meta.next_cursor from the previous page, or leave cursor out for the first page",
            )),
            "cursor" => {
                self.cursor = Some(value);
                Ok(())
            }
            "count" if self.count => Err(duplicate(&key)),
            "count" if value == "exact" => {
                self.count = true;
                Ok(())
            }
            "count" => Err(QueryError::new(
                ErrorKind::InvalidValue,
                key,
                format!("count must be 'exact', not '{value}'"),
            )),
            _ => {
                self.filters.push(parse_filter(key, value)?);
                Ok(())
            }
        }
    }
}

/// Percent-decodes one key or value; `+` is a space, as in HTML forms.
fn decode(raw: &str) -> Result<String, String> {
    let bytes = raw.replace('+', " ");
    let bytes = bytes.as_bytes();
    // percent_decode leaves a malformed escape as it is; we refuse it instead,
    // so that "%zz" is never silently read as the three characters.
    let mut i = 0;
    while let Some(pos) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + pos;
        let hex = bytes.get(at + 1..at + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(format!(
                "'{raw}' has a malformed percent-escape at byte {at}; write '%' as %25"
            ));
        }
        i = at + 3;
    }
    let text = percent_decode(bytes)
        .decode_utf8()
        .map_err(|_| format!("'{raw}' does not decode to UTF-8 text"))?;
    if text.contains('\0') {
        return Err(format!(
            "'{raw}' holds a NUL character (%00), which no text can hold"
        ));
    }
    Ok(text.into_owned())
}

fn split_names(key: &str, value: &str) -> Result<Vec<String>, QueryError> {
    let names: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(QueryError::new(
            ErrorKind::InvalidValue,
            key,
            format!("{key} has an empty name in '{value}'; give a comma-separated list of names"),
        ));
    }
    Ok(names)
}

fn parse_count(key: &str, value: &str, expected: &str) -> Result<u64, QueryError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::new(
            ErrorKind::InvalidValue,
            key,
            format!("{key} must be {expected}, not '{value}'"),
        ));
    }
    value.parse().map_err(|_| {
        QueryError::new(
            ErrorKind::InvalidValue,
            key,
            format!("{key} '{value}' is too large"),
        )
    })
}

fn parse_filter(key: String, value: String) -> Result<RawFilter, QueryError> {
    let (column, operator) = match key.find('[') {
        None => (key.clone(), Operator::Eq),
        Some(open) => {
            let (column, rest) = key.split_at(open);
            let Some(name) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
                return Err(QueryError::new(
                    ErrorKind::Malformed,
                    key.as_str(),
                    format!(
                        "'{key}' is not a filter; write column[operator]=value, e.g. price[gte]=10"
                    ),
                ));
            };
            if column.is_empty() || name.contains(['[', ']']) {
                return Err(QueryError::new(
                    ErrorKind::Malformed,
                    key.as_str(),
                    format!(
                        "'{key}' is not a filter; write column[operator]=value, e.g. price[gte]=10"
                    ),
                ));
            }
            let Some(operator) = Operator::from_name(name) else {
                let names = Operator::ALL.map(Operator::name);
                return Err(QueryError::new(
                    ErrorKind::InvalidOperator,
                    key.as_str(),
                    format!(
                        "unknown operator '{name}'{}; operators are {}",
                        crate::error::did_you_mean(name, names),
                        names.join(", ")
                    ),
                ));
            };
            (column.to_string(), operator)
        }
    };
    Ok(RawFilter {
        parameter: key,
        column,
        operator,
        value,
    })
}

/// Splits an `in`/`nin` value into items: commas separate, double quotes
/// protect commas, and a backslash escapes the next character inside quotes.
pub fn split_list(value: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => item.push(c),
                        None => return Err("a backslash ends the list".into()),
                    },
                    Some(c) => item.push(c),
                    None => return Err("a quoted item is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    items.push(item);
                    return Ok(items);
                }
                Some(',') => items.push(item),
                Some(c) => {
                    return Err(format!(
                        "'{c}' follows a closing quote; put a comma between items"
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        items.push(item);
                        return Ok(items);
                    }
                    Some(',') => break,
                    Some(c) => item.push(c),
                }
            }
            items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> QueryParams {
        QueryParams::parse(q).unwrap()
    }

    fn errors(q: &str) -> Vec<(ErrorKind, String)> {
        QueryParams::parse(q)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.kind, e.parameter))
            .collect()
    }

    #[test]
    fn parses_every_reserved_parameter() {
        let p = parse(
            "fields=name,email&include=user,order_items.product&sort=-price,name&limit=50&page=2&count=exact",
        );
        assert_eq!(p.fields.unwrap(), ["name", "email"]);
        assert_eq!(p.include, ["user", "order_items.product"]);
        assert_eq!(p.sort.unwrap(), ["-price", "name"]);
        assert_eq!((p.limit, p.page, p.count), (Some(50), Some(2), true));
    }

    #[test]
    fn parses_filters_with_and_without_brackets() {
        let p = parse("category=electronics&price%5Bgte%5D=10&status[in]=paid,shipped&name=a+b");
        let got: Vec<_> = p
            .filters
            .iter()
            .map(|f| (f.column.as_str(), f.operator, f.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("category", Operator::Eq, "electronics"),
                ("price", Operator::Gte, "10"),
                ("status", Operator::In, "paid,shipped"),
                ("name", Operator::Eq, "a b"),
            ]
        );
    }

    #[test]
    fn reports_every_problem_with_its_parameter() {
        assert_eq!(
            errors("limit=ten&sort=a&sort=b&price[gtx]=1&x[=1&count=all&cursor=&fields=a,,b"),
            [
                (ErrorKind::InvalidValue, "limit".to_string()),
                (ErrorKind::Duplicate, "sort".into()),
                (ErrorKind::InvalidOperator, "price[gtx]".into()),
                (ErrorKind::Malformed, "x[".into()),
                (ErrorKind::InvalidValue, "count".into()),
                (ErrorKind::InvalidValue, "cursor".into()),
                (ErrorKind::InvalidValue, "fields".into()),
            ]
        );
        assert_eq!(errors("name=%zz")[0].0, ErrorKind::Malformed);
        assert_eq!(errors("name=%ff")[0].0, ErrorKind::Malformed);
        assert_eq!(errors("a[b][c]=1")[0].0, ErrorKind::Malformed);
        assert_eq!(
            errors("limit=99999999999999999999999")[0].0,
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn splits_lists_with_quotes() {
        assert_eq!(split_list("a,b").unwrap(), ["a", "b"]);
        assert_eq!(split_list(r#""a,b",c"#).unwrap(), ["a,b", "c"]);
        assert_eq!(split_list(r#""say \"hi\"""#).unwrap(), [r#"say "hi""#]);
        assert_eq!(split_list("").unwrap(), [""]);
        assert!(split_list(r#""open"#).is_err());
        assert!(split_list(r#""a"b"#).is_err());
    }
}
