//! Rows as the drivers decode them ([`Cell`]s), the [`Shape`] that says how
//! they become JSON, and the JSON itself.
//!
//! The database returns plain columns; this module turns them into the JSON
//! objects of the API, embeds included (their statements, and the order in
//! which they run, are [`crate::sql`]'s). Measured against JSON built by the
//! database (`json_object`/`json_build_object` with embeds as correlated
//! subqueries), this is 1.2x to 2x faster on the demo questions on both
//! databases (BENCHMARKS.md), and a deep OFFSET no longer renders the rows it
//! skips.

use crate::envelope::Row;
use crate::schema::{Cardinality, ColumnKind};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::borrow::Cow;
use std::io::Write;

/// What one answer may hold: rows across every level of `include`, and
/// bytes of JSON. An answer past either is refused, never cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// Which part of its [`Budget`] an answer would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Rows,
    Bytes,
}

/// One value of one row, as a driver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Text; for exact numerics and JSON columns, their text (written raw).
    Text(String),
    /// Bytes (SQLite BLOB, PostgreSQL bytea), written as base64 in JSON.
    Bytes(Vec<u8>),
}

/// A result set: rows of cells, in select-list order.
pub type Rows = Vec<Vec<Cell>>;

impl Cell {
    /// The value as a join or row key (`5`, `abc`): what a URL segment reads.
    pub fn key_text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Bool(b) => Some(b.to_string()),
            Cell::Text(t) => Some(t.clone()),
            Cell::Bytes(b) => Some(hex(b)),
        }
    }

    /// The value as a relation's two sides compare it: as its key text
    /// reads (`5` and `"5"` are one value: SQLite may keep either), without
    /// making that text for integers, the common key.
    pub fn join_key(&self) -> Option<JoinKey<'_>> {
        match self {
            Cell::Null => None,
            Cell::Int(i) => Some(JoinKey::Int(*i)),
            Cell::Text(t) => Some(JoinKey::of_text(Cow::Borrowed(t))),
            other => other.key_text().map(|t| JoinKey::of_text(Cow::Owned(t))),
        }
    }

    /// Writes the value as JSON, as a column of `kind` reads.
    pub fn write_json(&self, kind: ColumnKind, out: &mut Vec<u8>) {
        match (self, kind) {
            (Cell::Null, _) => out.extend_from_slice(b"null"),
            // SQLite keeps booleans as 0 and 1
            (Cell::Int(i), ColumnKind::Boolean) => {
                out.extend_from_slice(if *i != 0 { b"true" } else { b"false" })
            }
            (Cell::Int(i), _) => {
                let _ = write!(out, "{i}");
            }
            (Cell::Float(f), _) if f.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, f);
            }
            // PostgreSQL floats hold NaN and ±Infinity, which JSON numbers cannot
            (Cell::Float(f), _) => out.extend_from_slice(non_finite(*f).as_bytes()),
            (Cell::Bool(b), _) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            (Cell::Text(t), ColumnKind::Json | ColumnKind::Array) => {
                out.extend_from_slice(t.as_bytes())
            }
            (Cell::Text(t), ColumnKind::Numeric | ColumnKind::Real | ColumnKind::Integer)
                if is_json_number(t) =>
            {
                out.extend_from_slice(t.as_bytes())
            }
            (Cell::Text(t), _) => write_json_string(t, out),
            (Cell::Bytes(b), _) => {
                out.push(b'"');
                out.extend_from_slice(STANDARD.encode(b).as_bytes());
                out.push(b'"');
            }
        }
    }
}

/// Writes `text` as a JSON string, escaped as serde_json escapes it. Most
/// text needs no escape, so plain bytes are skipped eight at a time and
/// copied in runs (escaping byte by byte took up to a tenth of a miss;
/// BENCHMARKS.md).
pub fn write_json_string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // bytes[..copied] are in `out`
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8)
            && !needs_escape(word)
        {
            i += 8;
            continue;
        }
        let byte = bytes[i];
        i += 1;
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..i - 1]);
        out.extend_from_slice(escape);
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether any of eight bytes is a control character, a quote or a
/// backslash. `x - 0x0101..·n & !x & 0x8080..` is non-zero exactly when
/// some byte of `x` is below `n` (for `n` up to 0x80); a byte equal to `b`
/// is a zero byte of `x ^ 0x0101..·b`.
fn needs_escape(word: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & (ONES * 0x80);
    let x = u64::from_ne_bytes(word.try_into().expect("eight bytes"));
    below(x, 0x20)
        | below(x ^ (ONES * u64::from(b'"')), 1)
        | below(x ^ (ONES * u64::from(b'\\')), 1)
        != 0
}

/// `"NaN"`, `"Infinity"` or `"-Infinity"`, as PostgreSQL spells them.
fn non_finite(f: f64) -> &'static str {
    if f.is_nan() {
        "\"NaN\""
    } else if f > 0.0 {
        "\"Infinity\""
    } else {
        "\"-Infinity\""
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `-?digits[.digits][e[+-]digits]`: numeric text JSON takes as it is
/// (not `NaN` or `Infinity`, which become strings).
fn is_json_number(text: &str) -> bool {
    let s = text.strip_prefix('-').unwrap_or(text);
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 || (s.starts_with('0') && digits_end > 1) {
        return false;
    }
    let mut rest = &s[digits_end..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        return !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit());
    }
    rest.is_empty()
}

/// How a result set's rows become JSON objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The fields shown, in output order, with their cell positions.
    pub fields: Vec<Field>,
    /// Cells of the sort keys, in order, and their kinds (for cursors).
    pub keys: Vec<(usize, ColumnKind)>,
    pub embeds: Vec<EmbedShape>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The member name as JSON with its colon (`"name":`), escaped once
    /// when the shape is made rather than for every row.
    pub key: String,
    pub kind: ColumnKind,
    pub cell: usize,
}

/// An embedded relation: which cell of the parent row joins, and how the
/// related rows (fetched by one query per level) look.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedShape {
    /// The member name as JSON with its colon, as in [`Field::key`].
    pub key: String,
    pub cardinality: Cardinality,
    /// The parent's cell holding the join value.
    pub parent_cell: usize,
    /// The related rows' cell holding the join value.
    pub child_cell: usize,
    pub shape: Shape,
}

/// `"name":`: the start of a JSON object member.
pub fn member_key(name: &str) -> String {
    let mut key = serde_json::to_string(name).expect("a string serializes");
    key.push(':');
    key
}

/// A join value as [`Cell::join_key`] reads it: an integer (however it was
/// stored), else its key text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JoinKey<'a> {
    Int(i64),
    Text(Cow<'a, str>),
}

impl<'a> JoinKey<'a> {
    /// Text that spells an integer as `i64` would (`5`, `-12`; not `05`,
    /// `+5` or `-0`) is that integer.
    fn of_text(text: Cow<'a, str>) -> JoinKey<'a> {
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && text.as_ref() != "-0";
        match text.parse::<i64>() {
            Ok(i) if canonical => JoinKey::Int(i),
            _ => JoinKey::Text(text),
        }
    }

    fn into_owned(self) -> JoinKey<'static> {
        match self {
            JoinKey::Int(i) => JoinKey::Int(i),
            JoinKey::Text(t) => JoinKey::Text(Cow::Owned(t.into_owned())),
        }
    }
}

/// The related rows of one embed, grouped by their join value.
#[derive(Debug, Default)]
pub struct Related {
    pub rows: Rows,
    /// Join value → row positions, in query order.
    groups: foldhash::HashMap<JoinKey<'static>, Vec<usize>>,
    /// One entry per embed of the related rows' shape.
    pub nested: Vec<Related>,
}

impl Related {
    pub fn new(rows: Rows, child_cell: usize) -> Related {
        let mut groups = foldhash::HashMap::default();
        for (i, row) in rows.iter().enumerate() {
            if let Some(key) = row[child_cell].join_key() {
                groups
                    .entry(key.into_owned())
                    .or_insert_with(Vec::new)
                    .push(i);
            }
        }
        Related {
            rows,
            groups,
            nested: Vec::new(),
        }
    }

    /// The positions of the rows whose join value is `cell`'s.
    pub fn group(&self, cell: &Cell) -> &[usize] {
        let found = match cell.join_key() {
            Some(JoinKey::Int(i)) => self.groups.get(&JoinKey::Int(i)),
            Some(key) => self.groups.get(&key.into_owned()),
            None => None,
        };
        found.map_or(&[], Vec::as_slice)
    }
}

/// The distinct join values of `rows` at `cell`, in first-seen order.
pub fn join_values(rows: &[Vec<Cell>], cell: usize) -> Vec<Cell> {
    let mut seen = foldhash::HashSet::default();
    rows.iter()
        .map(|row| &row[cell])
        .filter(|c| c.join_key().is_some_and(|key| seen.insert(key)))
        .cloned()
        .collect()
}

/// Which rows of a result set an answer holds, in which order, and how its
/// body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageShape {
    /// Rows shown at most (a collection fetches one more, to know there is more).
    pub take: usize,
    /// The rows came in reverse (a `before` cursor): show them turned round.
    pub reverse: bool,
    /// What the body starts with: `{"data":[` for a collection,
    /// `{"data":` for a single row.
    pub prefix: &'static str,
}

/// An answer's rows written straight into its body, and what the envelope
/// needs of them: how many, whether there were more, and the sort keys of
/// the first and last row shown (for cursors), of no other.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The prefix, then the rows' JSON, comma-joined, in the order shown.
    pub body: Vec<u8>,
    pub count: usize,
    pub more: bool,
    pub first_keys: Option<String>,
    pub last_keys: Option<String>,
}

/// Room for what the envelope appends after the rows (`meta`, `links`).
const ENVELOPE_BYTES: usize = 1024;

/// Renders the rows `page` shows into one body; refused when the JSON
/// would pass `max_bytes`.
pub fn render_page(
    shape: &Shape,
    rows: &[Vec<Cell>],
    related: &[Related],
    max_bytes: usize,
    page: PageShape,
) -> Result<Rendered, Exceeded> {
    let shown = rows.len().min(page.take);
    let mut body = Vec::with_capacity(page.prefix.len() + shown * 192);
    body.extend_from_slice(page.prefix.as_bytes());
    let limit = max_bytes.saturating_add(body.len());
    let order = |n: usize| if page.reverse { shown - 1 - n } else { n };
    for n in 0..shown {
        if n > 0 {
            body.push(b',');
        }
        write_row(shape, &rows[order(n)], related, &mut body, limit)?;
        if n == 0 {
            // the rows ahead are about as long as the first: grow the body
            // once now, not by doubling (each doubling copies it)
            let row = body.len() - page.prefix.len() + 1;
            body.reserve((row + row / 16) * (shown - 1) + ENVELOPE_BYTES);
        }
    }
    Ok(Rendered {
        body,
        count: shown,
        more: rows.len() > page.take,
        first_keys: (shown > 0).then(|| keys_json(shape, &rows[order(0)])),
        last_keys: (shown > 0).then(|| keys_json(shape, &rows[order(shown - 1)])),
    })
}

/// Each row's JSON and sort keys, one by one: for writes, whose rows are
/// few and are answered or checked one at a time.
pub fn render(
    shape: &Shape,
    rows: &[Vec<Cell>],
    related: &[Related],
    max_bytes: usize,
) -> Result<Vec<Row>, Exceeded> {
    let mut left = max_bytes;
    rows.iter()
        .map(|row| {
            let mut json = Vec::with_capacity(256);
            write_row(shape, row, related, &mut json, left)?;
            left = left.saturating_sub(json.len());
            Ok(Row {
                json: String::from_utf8(json).expect("JSON is UTF-8"),
                keys: keys_json(shape, row),
            })
        })
        .collect()
}

/// Writes one row as a JSON object, embeds included, as long as `out`
/// stays within `limit` bytes (embeds nest, so one row can be large).
pub fn write_row(
    shape: &Shape,
    row: &[Cell],
    related: &[Related],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Exceeded> {
    out.push(b'{');
    let mut first = true;
    for field in &shape.fields {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(field.key.as_bytes());
        match (&row[field.cell], field.kind) {
            (Cell::Text(text), ColumnKind::Timestamp) if sqlite_datetime(text) => {
                write_rfc3339(text, out)
            }
            (cell, kind) => cell.write_json(kind, out),
        }
    }
    if out.len() > limit {
        return Err(Exceeded::Bytes);
    }
    for (embed, related) in shape.embeds.iter().zip(related) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(embed.key.as_bytes());
        let group = related.group(&row[embed.parent_cell]);
        match embed.cardinality {
            Cardinality::ToOne => match group.first() {
                Some(&i) => write_row(&embed.shape, &related.rows[i], &related.nested, out, limit)?,
                None => out.extend_from_slice(b"null"),
            },
            Cardinality::ToMany => {
                out.push(b'[');
                for (n, &i) in group.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_row(&embed.shape, &related.rows[i], &related.nested, out, limit)?;
                }
                out.push(b']');
            }
        }
    }
    out.push(b'}');
    if out.len() > limit {
        return Err(Exceeded::Bytes);
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM[:SS[.fff]]`: a date-time as SQLite's own functions
/// write it (`CURRENT_TIMESTAMP`, `datetime('now')`), in UTC.
fn sqlite_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b' '
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16..]
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b':' || *c == b'.')
}

/// The same instant in RFC 3339: `T` between date and time, seconds
/// always, `Z` for UTC (body rendering only; cursors keep the stored text,
/// which is what the database orders).
fn write_rfc3339(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(&text.as_bytes()[..10]);
    out.push(b'T');
    out.extend_from_slice(&text.as_bytes()[11..]);
    if text.len() == 16 {
        out.extend_from_slice(b":00");
    }
    out.extend_from_slice(b"Z\"");
}

/// A row's sort keys as a JSON array (for cursors).
pub fn keys_json(shape: &Shape, row: &[Cell]) -> String {
    let mut out = Vec::with_capacity(32);
    out.push(b'[');
    for (n, &(cell, kind)) in shape.keys.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        row[cell].write_json(kind, &mut out);
    }
    out.push(b']');
    String::from_utf8(out).expect("JSON is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(cell: Cell, kind: ColumnKind) -> String {
        let mut out = Vec::new();
        cell.write_json(kind, &mut out);
        String::from_utf8(out).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(text in "(?s).{0,40}", ascii in "[ -~\\x00-\\x1f\\x7f]{0,40}") {
            for text in [text, ascii] {
                let mut out = Vec::new();
                write_json_string(&text, &mut out);
                proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn join_values_match_as_their_key_text_reads() {
        let text = |t: &str| Cell::Text(t.to_string());
        let rows = vec![
            vec![text("5")],
            vec![Cell::Int(5)],
            vec![text("05")],
            vec![text("-0")],
            vec![text("99999999999999999999")],
            vec![Cell::Float(7.0)],
            vec![Cell::Null],
        ];
        let related = Related::new(rows.clone(), 0);
        assert_eq!(related.group(&Cell::Int(5)), [0, 1]);
        assert_eq!(related.group(&text("5")), [0, 1]);
        assert_eq!(related.group(&text("05")), [2]);
        assert_eq!(related.group(&text("-0")), [3]);
        assert!(related.group(&Cell::Int(0)).is_empty());
        assert_eq!(related.group(&text("99999999999999999999")), [4]);
        assert_eq!(related.group(&Cell::Int(7)), [5], "7.0 reads 7");
        assert!(related.group(&Cell::Null).is_empty());
        assert_eq!(
            join_values(&rows, 0),
            [
                text("5"),
                text("05"),
                text("-0"),
                text("99999999999999999999"),
                Cell::Float(7.0)
            ]
        );
    }

    #[test]
    fn sqlite_date_times_are_served_in_rfc_3339() {
        for (stored, served) in [
            ("2026-12-01 04:17:47", Some("\"2026-12-01T04:17:47Z\"")),
            (
                "2026-12-01 04:17:47.123",
                Some("\"2026-12-01T04:17:47.123Z\""),
            ),
            ("2026-12-01 04:17", Some("\"2026-12-01T04:17:00Z\"")),
            ("2026-12-01T04:17:47Z", None),
            ("2026-12-01", None),
            ("2026-12-01 04:17:47+02:00", None),
            ("yesterday at noon", None),
        ] {
            let rendered = sqlite_datetime(stored).then(|| {
                let mut out = Vec::new();
                write_rfc3339(stored, &mut out);
                String::from_utf8(out).unwrap()
            });
            assert_eq!(rendered.as_deref(), served, "{stored}");
        }
    }

    #[test]
    fn cells_as_json() {
        use ColumnKind::*;
        assert_eq!(json(Cell::Int(5), Integer), "5");
        assert_eq!(json(Cell::Int(1), Boolean), "true");
        assert_eq!(json(Cell::Float(12.5), Real), "12.5");
        assert_eq!(json(Cell::Float(3.0), Real), "3.0");
        assert_eq!(json(Cell::Float(0.1 + 0.2), Real), "0.30000000000000004");
        assert_eq!(json(Cell::Float(f64::NAN), Real), "\"NaN\"");
        assert_eq!(json(Cell::Float(f64::INFINITY), Real), "\"Infinity\"");
        assert_eq!(json(Cell::Float(f64::NEG_INFINITY), Real), "\"-Infinity\"");
        assert_eq!(json(Cell::Text("12.50".into()), Numeric), "12.50");
        assert_eq!(json(Cell::Text("NaN".into()), Numeric), "\"NaN\"");
        assert_eq!(json(Cell::Text("{\"a\":1}".into()), Json), "{\"a\":1}");
        assert_eq!(
            json(Cell::Text("say \"hi\"\n".into()), Text),
            "\"say \\\"hi\\\"\\n\""
        );
        assert_eq!(json(Cell::Bytes(vec![0, 255, 1]), Blob), "\"AP8B\"");
        assert_eq!(json(Cell::Null, Text), "null");
    }

    #[test]
    fn json_numbers() {
        for good in ["0", "-1", "12.50", "1e5", "1.5E-3", "0.0"] {
            assert!(is_json_number(good), "{good}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "NaN", "Infinity", "1e", "0x1", "1 ",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn rows_with_embeds() {
        let user = Shape {
            fields: vec![Field {
                key: member_key("name"),
                kind: ColumnKind::Text,
                cell: 0,
            }],
            keys: vec![],
            embeds: vec![],
        };
        let item = Shape {
            fields: vec![Field {
                key: member_key("qty"),
                kind: ColumnKind::Integer,
                cell: 1,
            }],
            keys: vec![],
            embeds: vec![],
        };
        let order = Shape {
            fields: vec![Field {
                key: member_key("id"),
                kind: ColumnKind::Integer,
                cell: 0,
            }],
            keys: vec![(0, ColumnKind::Integer)],
            embeds: vec![
                EmbedShape {
                    key: member_key("user"),
                    cardinality: Cardinality::ToOne,
                    parent_cell: 1,
                    child_cell: 1,
                    shape: user,
                },
                EmbedShape {
                    key: member_key("items"),
                    cardinality: Cardinality::ToMany,
                    parent_cell: 0,
                    child_cell: 0,
                    shape: item,
                },
            ],
        };
        let users = Related::new(vec![vec![Cell::Text("Ada".into()), Cell::Int(7)]], 1);
        let items = Related::new(
            vec![
                vec![Cell::Int(1), Cell::Int(3)],
                vec![Cell::Int(1), Cell::Int(4)],
                vec![Cell::Int(2), Cell::Int(5)],
            ],
            0,
        );
        let related = [users, items];
        let mut out = Vec::new();
        write_row(
            &order,
            &[Cell::Int(1), Cell::Int(7)],
            &related,
            &mut out,
            1000,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":1,"user":{"name":"Ada"},"items":[{"qty":3},{"qty":4}]}"#
        );
        let mut out = Vec::new();
        write_row(
            &order,
            &[Cell::Int(3), Cell::Null],
            &related,
            &mut out,
            1000,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":3,"user":null,"items":[]}"#
        );
        assert_eq!(keys_json(&order, &[Cell::Int(3), Cell::Null]), "[3]");
        let small = write_row(
            &order,
            &[Cell::Int(1), Cell::Int(7)],
            &related,
            &mut Vec::new(),
            40,
        );
        assert_eq!(small, Err(Exceeded::Bytes), "refused, not cut short");
        assert_eq!(
            join_values(
                &[
                    vec![Cell::Int(1)],
                    vec![Cell::Int(1)],
                    vec![Cell::Null],
                    vec![Cell::Int(2)]
                ],
                0
            ),
            [Cell::Int(1), Cell::Int(2)]
        );
    }

    #[test]
    fn a_page_is_rendered_into_its_body_with_keys_of_its_ends_only() {
        let shape = Shape {
            fields: vec![Field {
                key: member_key("id"),
                kind: ColumnKind::Integer,
                cell: 0,
            }],
            keys: vec![(0, ColumnKind::Integer)],
            embeds: vec![],
        };
        let rows: Vec<Vec<Cell>> = (1..=4).map(|i| vec![Cell::Int(i)]).collect();
        let page = |take, reverse| PageShape {
            take,
            reverse,
            prefix: "[",
        };
        let forward = render_page(&shape, &rows, &[], 1000, page(3, false)).unwrap();
        assert_eq!(
            String::from_utf8(forward.body).unwrap(),
            r#"[{"id":1},{"id":2},{"id":3}"#
        );
        assert_eq!((forward.count, forward.more), (3, true));
        assert_eq!(forward.first_keys.as_deref(), Some("[1]"));
        assert_eq!(forward.last_keys.as_deref(), Some("[3]"));
        // rows of a `before` cursor come last first: the page turns them round
        let back = render_page(&shape, &rows, &[], 1000, page(3, true)).unwrap();
        assert_eq!(
            String::from_utf8(back.body).unwrap(),
            r#"[{"id":3},{"id":2},{"id":1}"#
        );
        assert_eq!(back.first_keys.as_deref(), Some("[3]"));
        let all = render_page(&shape, &rows, &[], 1000, page(10, false)).unwrap();
        assert!(!all.more);
        assert_eq!(
            render_page(&shape, &rows, &[], 20, page(4, false)),
            Err(Exceeded::Bytes)
        );
    }
}
