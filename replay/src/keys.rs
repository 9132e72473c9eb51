//! Row keys given by people (`--where-key 'id=42'`, `--key`, a keys file), parsed against a
//! table's schema into exact values and matched against rows.
//!
//! A key is `column=value` pairs separated by `,` or `AND`: `id=42`, `a=1, b='x,y'`,
//! `` `order id`=7 AND region=eu ``. A value is a bare word, a single-quoted string (`''` or
//! `\'` inside), or `0x` hex for bytes. Each value is read as its column's type, exactly as a
//! dump literal is ([`crate::mydumper`]): DECIMAL to its scale, dates and times in their
//! MySQL text forms, TIMESTAMP in UTC, ENUM/SET by member name or number, strings as their
//! bytes. For a table with a primary key the pairs name exactly its columns (a point lookup);
//! for a table without one any columns may be named, and every row equal on all of them
//! matches.
//!
//! Matching compares exact values (the encoded bytes of each column's [`Value`]), not
//! collations: `'abc'` does not match a stored `'ABC'` even where the column's collation
//! calls them equal. That is what makes a match exact; the error for a key nothing matched
//! is the caller's.
use crate::mydumper::{Lit, convert};
use dbtrail_core::render::{is_numeric, render_value};
use dbtrail_core::schema::quote_ident;
use dbtrail_core::{ColumnDef, ColumnType, TableSchema, Value};

/// A key as text pairs, before it meets a schema.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySpec(pub Vec<(String, KeyText)>);

/// One value as given.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyText {
    /// A bare word (numbers, dates, names).
    Bare(String),
    /// A quoted string, unescaped.
    Quoted(Vec<u8>),
    /// `0x` hex: bytes.
    Hex(Vec<u8>),
}

/// A key resolved against a schema: the column indexes and their values.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// (column index, value), in the order the primary key lists them (or as given).
    pub columns: Vec<(usize, Value)>,
    /// Whether the columns are exactly the primary key.
    pub primary: bool,
}

fn bad(text: &str, why: &str) -> String {
    format!(
        "invalid key {text:?}: {why}; expected column=value pairs separated by ',' or AND, e.g. \
         'id=42' or \"a=1, b='x'\" (quote values holding commas, 0x.. for bytes)"
    )
}

impl KeySpec {
    /// Parses `text`; the error names what is wrong and the expected form.
    pub fn parse(text: &str) -> Result<KeySpec, String> {
        let b = text.as_bytes();
        let mut i = 0;
        let mut pairs = Vec::new();
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip_ws(&mut i);
            if i >= b.len() {
                break;
            }
            // Column name: `quoted` or a bare identifier.
            let name = if b[i] == b'`' {
                let mut n = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(bad(text, "unterminated `column`")),
                        Some(b'`') if b.get(i + 1) == Some(&b'`') => {
                            n.push(b'`');
                            i += 2;
                        }
                        Some(b'`') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            n.push(*c);
                            i += 1;
                        }
                    }
                }
                String::from_utf8(n).map_err(|_| bad(text, "a column name that is not UTF-8"))?
            } else {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if start == i {
                    return Err(bad(text, "a column name is missing"));
                }
                text[start..i].to_string()
            };
            skip_ws(&mut i);
            if b.get(i) != Some(&b'=') {
                return Err(bad(text, &format!("'=' expected after {name}")));
            }
            i += 1;
            skip_ws(&mut i);
            let value = match b.get(i) {
                None => return Err(bad(text, &format!("no value for {name}"))),
                Some(b'\'') => {
                    let mut v = Vec::new();
                    i += 1;
                    loop {
                        match b.get(i) {
                            None => return Err(bad(text, "unterminated quoted value")),
                            Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                                v.push(b'\'');
                                i += 2;
                            }
                            Some(b'\\') if i + 1 < b.len() => {
                                v.push(b[i + 1]);
                                i += 2;
                            }
                            Some(b'\'') => {
                                i += 1;
                                break;
                            }
                            Some(c) => {
                                v.push(*c);
                                i += 1;
                            }
                        }
                    }
                    KeyText::Quoted(v)
                }
                Some(_) => {
                    let start = i;
                    while i < b.len() && b[i] != b',' && !at_and(b, i) {
                        i += 1;
                    }
                    let word = text[start..i].trim();
                    if word.is_empty() {
                        return Err(bad(text, &format!("no value for {name}")));
                    }
                    if word.contains('=') {
                        return Err(bad(text, "',' or AND expected between pairs"));
                    }
                    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                        Some(h) => KeyText::Hex(
                            hex::decode(h).map_err(|_| bad(text, &format!("bad hex {word}")))?,
                        ),
                        None => KeyText::Bare(word.to_string()),
                    }
                }
            };
            pairs.push((name, value));
            skip_ws(&mut i);
            if i >= b.len() {
                break;
            }
            if b[i] == b',' {
                i += 1;
            } else if at_and(b, i) {
                i += 4;
            } else {
                return Err(bad(text, "',' or AND expected between pairs"));
            }
        }
        if pairs.is_empty() {
            return Err(bad(text, "it is empty"));
        }
        Ok(KeySpec(pairs))
    }

    /// Resolves the pairs against `schema` (module doc): every value converted to its
    /// column's type; with a primary key, exactly its columns.
    pub fn resolve(&self, schema: &TableSchema) -> Result<Key, String> {
        let table = &schema.table;
        let mut columns: Vec<(usize, Value)> = Vec::new();
        for (name, text) in &self.0 {
            let Some(i) = schema
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
            else {
                return Err(format!(
                    "{table} has no column {name:?} (its columns: {})",
                    names(schema, 0..schema.columns.len())
                ));
            };
            if columns.iter().any(|(j, _)| *j == i) {
                return Err(format!("the key names column {name} twice"));
            }
            let col = &schema.columns[i];
            let lit = match text {
                KeyText::Bare(w) if w.eq_ignore_ascii_case("NULL") => Lit::Null,
                KeyText::Bare(w) if number(col, w.as_bytes()) => Lit::Number(w.clone()),
                KeyText::Bare(w) => Lit::Quoted(w.as_bytes().to_vec()),
                KeyText::Quoted(v) if number(col, v) => {
                    Lit::Number(String::from_utf8_lossy(v).into_owned())
                }
                KeyText::Quoted(v) => Lit::Quoted(v.clone()),
                KeyText::Hex(v) => Lit::Hex(v.clone()),
            };
            let v = convert(col, &lit, true)
                .map_err(|e| format!("key value for {table}.{}: {e}", col.name))?;
            columns.push((i, v));
        }
        let primary = schema.has_primary_key();
        if primary {
            let given: Vec<usize> = columns.iter().map(|(i, _)| *i).collect();
            let mut sorted = given.clone();
            sorted.sort_unstable();
            let mut pk = schema.primary_key.clone();
            pk.sort_unstable();
            if sorted != pk {
                return Err(format!(
                    "a key of {table} names its primary key columns, exactly: {} (given: {})",
                    names(schema, schema.primary_key.iter().copied()),
                    names(schema, given.into_iter())
                ));
            }
            columns.sort_by_key(|(i, _)| {
                schema
                    .primary_key
                    .iter()
                    .position(|p| p == i)
                    .unwrap_or(usize::MAX)
            });
        }
        Ok(Key { columns, primary })
    }
}

/// Whether a value for `col` is read as a number: always for numeric types, for ENUM, SET
/// and BIT when it is all digits (a member index, bitmask or bit value).
fn number(col: &ColumnDef, text: &[u8]) -> bool {
    match col.ty {
        ColumnType::Enum | ColumnType::Set | ColumnType::Bit { .. } => {
            !text.is_empty() && text.iter().all(u8::is_ascii_digit)
        }
        ColumnType::Decimal { .. } | ColumnType::Year => true,
        ref t => is_numeric(t),
    }
}

fn at_and(b: &[u8], i: usize) -> bool {
    i > 0
        && b[i - 1].is_ascii_whitespace()
        && b.len() >= i + 4
        && b[i..i + 3].eq_ignore_ascii_case(b"and")
        && b[i + 3].is_ascii_whitespace()
}

fn names(schema: &TableSchema, idx: impl Iterator<Item = usize>) -> String {
    idx.filter_map(|i| schema.columns.get(i))
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn same(a: &Value, b: &Value) -> bool {
    a == b || dbtrail_core::codec::encode(a) == dbtrail_core::codec::encode(b)
}

impl Key {
    /// Whether `row` has this key (every named column equal, exactly).
    pub fn matches(&self, row: &[Value]) -> bool {
        self.columns
            .iter()
            .all(|(i, v)| row.get(*i).is_some_and(|r| same(r, v)))
    }

    /// The key as `col=value` text, values rendered as the events API renders them.
    pub fn describe(&self, schema: &TableSchema) -> String {
        describe(schema, self.columns.iter().map(|(i, v)| (*i, v)))
    }
}

/// `col=value, ...` for `row`'s primary key (every column for a table without one), for
/// messages: the form [`KeySpec::parse`] reads back.
pub fn describe_row_key(schema: &TableSchema, row: &[Value]) -> String {
    let cols: Vec<usize> = if schema.has_primary_key() {
        schema.primary_key.clone()
    } else {
        (0..schema.columns.len()).collect()
    };
    describe(
        schema,
        cols.into_iter()
            .map(|i| (i, row.get(i).unwrap_or(&Value::Null))),
    )
}

fn describe<'a>(schema: &TableSchema, cols: impl Iterator<Item = (usize, &'a Value)>) -> String {
    let mut out = Vec::new();
    for (i, v) in cols {
        let Some(col) = schema.columns.get(i) else {
            continue;
        };
        let text = match render_value(col, v) {
            serde_json::Value::String(s) => {
                if s.is_empty() || s.contains([',', '\'', ' ', '\\']) {
                    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
                } else {
                    s
                }
            }
            serde_json::Value::Object(o) => match o.get("hex") {
                Some(serde_json::Value::String(h)) => format!("0x{h}"),
                _ => serde_json::Value::Object(o).to_string(),
            },
            serde_json::Value::Null => "NULL".into(),
            other => other.to_string(),
        };
        let name = if col
            .name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
        {
            col.name.clone()
        } else {
            quote_ident(&col.name)
        };
        out.push(format!("{name}={text}"));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::TableRef;

    fn schema(pk: Vec<usize>) -> TableSchema {
        TableSchema {
            table: TableRef::new("shop", "orders"),
            version: 1,
            columns: vec![
                ColumnDef::new("id", ColumnType::Int),
                ColumnDef::new("region", ColumnType::VarChar),
                ColumnDef::new(
                    "amount",
                    ColumnType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                ),
                ColumnDef::new("day", ColumnType::Date),
            ],
            primary_key: pk,
            foreign_keys: Vec::new(),
        }
    }

    #[test]
    fn parses_pairs_and_quotes() {
        let k = KeySpec::parse("id=42, region='eu, west' AND `day` = 2026-11-30").expect("parse");
        assert_eq!(
            k.0,
            vec![
                ("id".into(), KeyText::Bare("42".into())),
                ("region".into(), KeyText::Quoted(b"eu, west".to_vec())),
                ("day".into(), KeyText::Bare("2026-11-30".into())),
            ]
        );
        assert_eq!(
            KeySpec::parse("region='it''s'").expect("quote").0[0].1,
            KeyText::Quoted(b"it's".to_vec())
        );
        assert_eq!(
            KeySpec::parse("region=0x00ff").expect("hex").0[0].1,
            KeyText::Hex(vec![0, 255])
        );
        for bad in ["", "id", "id=", "id=1 region=2", "region='x", "=1"] {
            let e = KeySpec::parse(bad).expect_err(bad);
            assert!(e.contains("column=value"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolves_to_the_primary_key_in_its_order() {
        let s = schema(vec![1, 0]);
        let k = KeySpec::parse("id=7, region=eu")
            .and_then(|k| k.resolve(&s))
            .expect("key");
        assert!(k.primary);
        assert_eq!(
            k.columns,
            vec![(1, Value::Str(b"eu".to_vec())), (0, Value::Int(7))]
        );
        let row = vec![
            Value::Int(7),
            Value::Str(b"eu".to_vec()),
            Value::Decimal("1.00".into()),
            Value::Null,
        ];
        assert!(k.matches(&row));
        assert_eq!(k.describe(&s), "region=eu, id=7");
        assert_eq!(describe_row_key(&s, &row), "region=eu, id=7");
        let e = KeySpec::parse("id=7")
            .and_then(|k| k.resolve(&s))
            .expect_err("partial");
        assert!(e.contains("`region`, `id`"), "{e}");
        let e = KeySpec::parse("idx=7")
            .and_then(|k| k.resolve(&s))
            .expect_err("unknown");
        assert!(e.contains("no column \"idx\""), "{e}");
        let e = KeySpec::parse("id=x, region=eu")
            .and_then(|k| k.resolve(&s))
            .expect_err("type");
        assert!(e.contains("shop.orders.id"), "{e}");
    }

    #[test]
    fn values_are_read_as_their_type() {
        let s = schema(vec![]);
        let k = KeySpec::parse("amount=1.5, day='2026-11-30'")
            .and_then(|k| k.resolve(&s))
            .expect("key");
        assert!(!k.primary);
        let row = vec![
            Value::Int(1),
            Value::Null,
            Value::Decimal("1.50".into()),
            Value::Date(dbtrail_core::value::Date {
                year: 2026,
                month: 11,
                day: 30,
            }),
        ];
        assert!(k.matches(&row));
        assert_eq!(
            describe_row_key(&s, &row),
            "id=1, region=NULL, amount=1.50, day=2026-11-30"
        );
    }
}
