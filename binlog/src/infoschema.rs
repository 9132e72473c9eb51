//! Column facts the binlog does not carry, from `information_schema`.
//!
//! Table maps never say which columns are generated (dumps must leave them out of INSERTs) or
//! carry the full SQL type; and with `binlog_row_metadata=MINIMAL` (MySQL's default) they lack
//! column names, ENUM/SET members and the primary key. Those come from the server's current
//! definition, which is only valid for an event if it still matches the event's table map:
//! [`merge`] checks the column count and, where the map has names, every name, and refuses to
//! guess otherwise (docs/correctness.md, C9).
//!
//! Server metadata is read from columns that state a fact exactly, never by searching text:
//! - generated: `GENERATION_EXPRESSION` is non-empty (MySQL prints `''`, MariaDB `NULL` for
//!   other columns) and `EXTRA` holds the token pair `VIRTUAL GENERATED` / `STORED
//!   GENERATED` (MariaDB also `PERSISTENT GENERATED`). `EXTRA` alone is not enough: MySQL
//!   8.0.13+ prints `DEFAULT_GENERATED` for every column with an expression default
//!   (`DEFAULT CURRENT_TIMESTAMP`, `DEFAULT (uuid())`), and those are ordinary columns
//!   whose values dumps must carry. When the two signals disagree the read fails.
//! - invisible: the exact token `INVISIBLE` in `EXTRA` (tokens split at spaces and commas:
//!   MariaDB prints `VIRTUAL GENERATED, INVISIBLE`).
//! - unsigned: the `unsigned` word after the type's parenthesised arguments in
//!   `COLUMN_TYPE` (so `enum('unsigned')` is not unsigned).
//! - foreign keys: `REFERENTIAL_CONSTRAINTS` (`DELETE_RULE`, `UPDATE_RULE`, exact words) joined
//!   with `KEY_COLUMN_USAGE` for the column pairs (docs/correctness.md, C10 and C11).
use crate::BinlogError;
use dbtrail_core::{ColumnType, TableRef, TableSchema};
use dbtrail_core::{FkAction, ForeignKey};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// One column as information_schema describes it now.
#[derive(Clone, Debug)]
pub struct CurrentColumn {
    /// COLUMN_NAME
    pub name: String,
    /// COLUMN_TYPE, e.g. `int unsigned`, `enum('a','b')`
    pub column_type: String,
    /// DATA_TYPE, e.g. `int`
    pub data_type: String,
    /// Collation id, if any.
    pub collation: Option<u16>,
    /// A VIRTUAL or STORED generated column (see the module doc for how this is decided).
    pub generated: bool,
    /// EXTRA holds the token INVISIBLE.
    pub invisible: bool,
    /// Position in the primary key (1-based), if part of it.
    pub pk_position: Option<u32>,
    /// NUMERIC_PRECISION
    pub precision: Option<u64>,
    /// NUMERIC_SCALE
    pub scale: Option<u64>,
    /// DATETIME_PRECISION (fractional-second digits)
    pub fsp: Option<u64>,
    /// IS_NULLABLE = YES
    pub nullable: bool,
}

/// Reads the current definition of `table` (empty when it no longer exists).
pub async fn table_columns(
    conn: &mut Conn,
    table: &TableRef,
) -> Result<Vec<CurrentColumn>, BinlogError> {
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.DATA_TYPE, co.ID, c.EXTRA, k.ORDINAL_POSITION, \
             c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, c.IS_NULLABLE, \
             c.GENERATION_EXPRESSION \
             FROM information_schema.COLUMNS c \
             LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = c.COLLATION_NAME \
             LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA \
               AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME \
               AND k.CONSTRAINT_NAME = 'PRIMARY' \
             WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION",
            (table.db.as_str(), table.table.as_str()),
        )
        .await
        .map_err(BinlogError::driver(format!(
            "reading the columns of {table} from information_schema"
        )))?;
    let bad = |what: &str| BinlogError::Protocol {
        action: format!("reading the columns of {table} from information_schema"),
        detail: format!("missing {what}"),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let text = |i: usize, what: &str| -> Result<String, BinlogError> {
            r.get::<Option<String>, _>(i)
                .flatten()
                .ok_or_else(|| bad(what))
        };
        let num = |i: usize| r.get::<Option<u64>, _>(i).flatten();
        let name = text(0, "COLUMN_NAME")?;
        let extra = text(4, "EXTRA")?;
        let expression = r.get::<Option<String>, _>(10).flatten().unwrap_or_default();
        let (generated, invisible) =
            column_flags(&extra, &expression).map_err(|detail| BinlogError::Protocol {
                action: format!("reading the columns of {table} from information_schema"),
                detail: format!("column {name}: {detail}"),
            })?;
        out.push(CurrentColumn {
            name,
            column_type: text(1, "COLUMN_TYPE")?,
            data_type: text(2, "DATA_TYPE")?.to_ascii_lowercase(),
            collation: num(3).and_then(|c| u16::try_from(c).ok()),
            generated,
            invisible,
            pk_position: num(5).and_then(|p| u32::try_from(p).ok()),
            precision: num(6),
            scale: num(7),
            fsp: num(8),
            nullable: text(9, "IS_NULLABLE")?.eq_ignore_ascii_case("YES"),
        });
    }
    Ok(out)
}

/// (generated, invisible) from `EXTRA` and `GENERATION_EXPRESSION`, by exact tokens.
pub fn column_flags(extra: &str, generation_expression: &str) -> Result<(bool, bool), String> {
    let tokens: Vec<String> = extra
        .split([' ', ','])
        .filter(|t| !t.is_empty())
        .map(|t| t.to_ascii_uppercase())
        .collect();
    let by_token = tokens.windows(2).any(|w| {
        matches!(w[0].as_str(), "VIRTUAL" | "STORED" | "PERSISTENT") && w[1] == "GENERATED"
    });
    let by_expression = !generation_expression.is_empty();
    if by_token != by_expression {
        return Err(format!(
            "information_schema disagrees with itself about whether it is generated (EXTRA \
             {extra:?}, GENERATION_EXPRESSION {generation_expression:?}); dbtrail will not \
             guess. Report this server version"
        ));
    }
    Ok((by_token, tokens.iter().any(|t| t == "INVISIBLE")))
}

/// True when a `COLUMN_TYPE` such as `int(10) unsigned zerofill` is unsigned: the word
/// `unsigned` after the parenthesised arguments (never inside ENUM/SET member text).
pub fn is_unsigned(column_type: &str) -> bool {
    let tail = match column_type.rfind(')') {
        Some(i) => &column_type[i + 1..],
        None => column_type,
    };
    tail.split_ascii_whitespace()
        .any(|w| w.eq_ignore_ascii_case("unsigned"))
}

/// Reads the foreign keys of `table` (as the child), in constraint-name order.
pub async fn foreign_keys(
    conn: &mut Conn,
    table: &TableRef,
) -> Result<Vec<ForeignKey>, BinlogError> {
    let action = format!("reading the foreign keys of {table} from information_schema");
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT rc.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, \
             k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE, rc.UPDATE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
             JOIN information_schema.KEY_COLUMN_USAGE k \
               ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA \
              AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME \
             WHERE rc.CONSTRAINT_SCHEMA = ? AND rc.TABLE_NAME = ? \
             ORDER BY rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (table.db.as_str(), table.table.as_str()),
        )
        .await
        .map_err(BinlogError::driver(action.clone()))?;
    let mut out: Vec<ForeignKey> = Vec::new();
    for r in rows {
        let text = |i: usize, what: &str| -> Result<String, BinlogError> {
            r.get::<Option<String>, _>(i)
                .flatten()
                .ok_or_else(|| BinlogError::Protocol {
                    action: action.clone(),
                    detail: format!("missing {what}"),
                })
        };
        let rule = |i: usize, what: &str| -> Result<FkAction, BinlogError> {
            let t = text(i, what)?;
            FkAction::from_rule(&t).ok_or_else(|| BinlogError::Protocol {
                action: action.clone(),
                detail: format!("unknown {what} {t:?}"),
            })
        };
        let name = text(0, "CONSTRAINT_NAME")?;
        let column = text(1, "COLUMN_NAME")?;
        let parent = TableRef::new(
            text(2, "REFERENCED_TABLE_SCHEMA")?,
            text(3, "REFERENCED_TABLE_NAME")?,
        );
        let parent_column = text(4, "REFERENCED_COLUMN_NAME")?;
        let (on_delete, on_update) = (rule(5, "DELETE_RULE")?, rule(6, "UPDATE_RULE")?);
        match out.last_mut() {
            Some(fk) if fk.name == name => {
                fk.columns.push(column);
                fk.parent_columns.push(parent_column);
            }
            _ => out.push(ForeignKey {
                name,
                columns: vec![column],
                parent,
                parent_columns: vec![parent_column],
                on_delete,
                on_update,
            }),
        }
    }
    Ok(out)
}

/// Parses the members of `enum('a','b''c')` / `set(...)`.
pub fn members(column_type: &str) -> Vec<Vec<u8>> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[start + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut in_str = false;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if b == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    cur.push(b'\'');
                    i += 1;
                } else {
                    in_str = false;
                    out.push(std::mem::take(&mut cur));
                }
            } else if b == b'\\' && i + 1 < bytes.len() {
                cur.push(bytes[i + 1]);
                i += 1;
            } else {
                cur.push(b);
            }
        } else if b == b'\'' {
            in_str = true;
        }
        i += 1;
    }
    out
}

/// Does the binlog type fit information_schema's DATA_TYPE?
fn compatible(ty: &ColumnType, data_type: &str) -> bool {
    match ty {
        ColumnType::TinyInt => {
            data_type == "tinyint" || data_type == "bool" || data_type == "boolean"
        }
        ColumnType::SmallInt => data_type == "smallint",
        ColumnType::MediumInt => data_type == "mediumint",
        ColumnType::Int => data_type == "int" || data_type == "integer",
        ColumnType::BigInt => data_type == "bigint",
        ColumnType::Float => data_type == "float",
        ColumnType::Double => data_type == "double" || data_type == "real",
        ColumnType::Decimal { .. } => data_type == "decimal" || data_type == "numeric",
        ColumnType::Year => data_type == "year",
        ColumnType::Date => data_type == "date",
        ColumnType::Time { .. } => data_type == "time",
        ColumnType::DateTime { .. } => data_type == "datetime",
        ColumnType::Timestamp { .. } => data_type == "timestamp",
        ColumnType::Char => matches!(data_type, "char" | "binary" | "uuid" | "inet6" | "inet4"),
        ColumnType::VarChar => matches!(data_type, "varchar" | "varbinary"),
        ColumnType::Blob => {
            data_type.ends_with("text") || data_type.ends_with("blob") || data_type == "json"
        }
        ColumnType::Enum => data_type == "enum",
        ColumnType::Set => data_type == "set",
        ColumnType::Bit { .. } => data_type == "bit",
        ColumnType::Json => data_type == "json",
        ColumnType::Geometry => true,
        ColumnType::Vector => data_type == "vector",
    }
}

/// Completes `schema` (decoded from a table map) with `current` and the table's current
/// foreign keys. When the map lacks metadata (`lacks_metadata`), names, members and the key
/// come from `current`, which must then match column for column; otherwise only the extras
/// (generated, invisible, SQL type, foreign keys) are taken, and only when the names agree.
/// Foreign keys are kept only when every column they name exists in the event's schema.
pub fn merge(
    schema: &mut TableSchema,
    current: &[CurrentColumn],
    foreign_keys: &[ForeignKey],
    lacks_metadata: bool,
) -> Result<(), String> {
    merge_columns(schema, current, lacks_metadata)?;
    schema.foreign_keys = foreign_keys
        .iter()
        .filter(|fk| fk.columns.iter().all(|c| schema.column_index(c).is_some()))
        .cloned()
        .collect();
    Ok(())
}

fn merge_columns(
    schema: &mut TableSchema,
    current: &[CurrentColumn],
    lacks_metadata: bool,
) -> Result<(), String> {
    let same_names = current.len() == schema.columns.len()
        && schema
            .columns
            .iter()
            .zip(current)
            .all(|(a, b)| a.name == b.name);
    if !lacks_metadata {
        if same_names {
            for (c, cur) in schema.columns.iter_mut().zip(current) {
                c.generated = cur.generated;
                c.invisible |= cur.invisible;
                c.sql_type = Some(cur.column_type.clone());
            }
        }
        return Ok(());
    }
    let fits = current.len() == schema.columns.len()
        && schema
            .columns
            .iter()
            .zip(current)
            .all(|(a, b)| compatible(&a.ty, &b.data_type));
    if current.is_empty() {
        return Err(format!(
            "the table map has no column names (binlog_row_metadata is not FULL) and \
             information_schema shows no columns for {}: the table was dropped since, or the \
             replication user lacks SELECT on it (GRANT SELECT ON `{}`.* TO the dbtrail user). \
             Better: SET PERSIST binlog_row_metadata='FULL' on the source",
            schema.table, schema.table.db
        ));
    }
    if !fits {
        return Err(format!(
            "the table map has no column names (binlog_row_metadata is not FULL) and the \
             table's current definition in information_schema ({} columns) does not match the \
             event ({} columns); this event cannot be decoded exactly. Fix: SET PERSIST \
             binlog_row_metadata='FULL' on the source (applies to new events)",
            current.len(),
            schema.columns.len()
        ));
    }
    let mut pk: Vec<(u32, usize)> = Vec::new();
    for (i, (c, cur)) in schema.columns.iter_mut().zip(current).enumerate() {
        c.name = cur.name.clone();
        c.generated = cur.generated;
        c.invisible |= cur.invisible;
        c.sql_type = Some(cur.column_type.clone());
        if c.collation.is_none() {
            c.collation = cur.collation;
        }
        if matches!(c.ty, ColumnType::Enum | ColumnType::Set) && c.members.is_empty() {
            c.members = members(&cur.column_type);
        }
        if is_unsigned(&cur.column_type) {
            c.unsigned = true;
        }
        if let Some(p) = cur.pk_position {
            pk.push((p, i));
        }
    }
    if schema.primary_key.is_empty() {
        pk.sort();
        schema.primary_key = pk.into_iter().map(|(_, i)| i).collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members() {
        assert_eq!(
            members("enum('a','b''c','d,e')"),
            vec![b"a".to_vec(), b"b'c".to_vec(), b"d,e".to_vec()]
        );
        assert_eq!(members("set('')"), vec![Vec::<u8>::new()]);
        assert!(members("int").is_empty());
    }

    #[test]
    fn generated_and_invisible_by_exact_tokens() {
        // What MySQL 9.7 and MariaDB 10.11 print (EXTRA, GENERATION_EXPRESSION).
        let cases = [
            ("auto_increment", "", (false, false)),
            ("DEFAULT_GENERATED", "", (false, false)),
            (
                "DEFAULT_GENERATED on update CURRENT_TIMESTAMP(6)",
                "",
                (false, false),
            ),
            ("on update current_timestamp(6)", "", (false, false)),
            ("VIRTUAL GENERATED", "(`a` + 1)", (true, false)),
            ("STORED GENERATED", "(`a` * 2)", (true, false)),
            ("PERSISTENT GENERATED", "`a` * 2", (true, false)),
            ("INVISIBLE", "", (false, true)),
            ("DEFAULT_GENERATED INVISIBLE", "", (false, true)),
            ("VIRTUAL GENERATED INVISIBLE", "(`a` + 3)", (true, true)),
            ("VIRTUAL GENERATED, INVISIBLE", "`a` + 3", (true, true)),
            ("", "", (false, false)),
        ];
        for (extra, expr, want) in cases {
            assert_eq!(column_flags(extra, expr), Ok(want), "{extra:?}");
        }
        assert!(column_flags("DEFAULT_GENERATED", "`a` + 1").is_err());
        assert!(column_flags("VIRTUAL GENERATED", "").is_err());
    }

    #[test]
    fn unsigned_only_after_the_arguments() {
        assert!(is_unsigned("int unsigned"));
        assert!(is_unsigned("int(10) unsigned zerofill"));
        assert!(is_unsigned("decimal(10,2) unsigned"));
        assert!(!is_unsigned("int"));
        assert!(!is_unsigned("enum('unsigned','b')"));
        assert!(!is_unsigned("set('x unsigned')"));
        assert!(!is_unsigned("varchar(20)"));
    }
}
