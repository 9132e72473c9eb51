//! Reverse SQL: statements that undo one transaction's row changes.
//!
//! The changes are undone in reverse order: an insert becomes a `DELETE` of that row, a
//! delete an `INSERT` of its before-image, an update an `UPDATE` back to its before-image.
//! Rows are found by primary key, or for tables without one by every column (`LIMIT 1`, so
//! one copy of duplicate rows). Comparisons use `<=>` (NULL-safe) against literals written by
//! [`crate::sql`]; under `SET NAMES binary` they compare exact bytes. Generated columns are
//! never written. Each statement must affect exactly one row when applied to the table as
//! the transaction left it; the caller checks later changes to the same keys first.
use crate::sql::{DATA_FILE_HEADER, insert_prefix, write_row, write_value};
use dbtrail_core::schema::quote_ident;
use dbtrail_core::{ColumnType, Row, RowChange, TableSchema};

fn where_clause(out: &mut Vec<u8>, schema: &TableSchema, row: &Row) {
    let cols: Vec<usize> = if schema.primary_key.is_empty() {
        (0..schema.columns.len())
            .filter(|i| !schema.columns[*i].generated)
            .collect()
    } else {
        schema.primary_key.clone()
    };
    out.extend_from_slice(b" WHERE ");
    for (n, i) in cols.iter().enumerate() {
        if n > 0 {
            out.extend_from_slice(b" AND ");
        }
        let col = &schema.columns[*i];
        out.extend_from_slice(quote_ident(&col.name).as_bytes());
        out.extend_from_slice(b" <=> ");
        let v = row.get(*i).cloned().unwrap_or(dbtrail_core::Value::Null);
        if matches!(col.ty, ColumnType::Json) && !v.is_null() {
            out.extend_from_slice(b"CAST(");
            write_value(out, col, &v);
            out.extend_from_slice(b" AS JSON)");
        } else {
            write_value(out, col, &v);
        }
    }
    out.extend_from_slice(b" LIMIT 1");
}

/// Appends the statement that undoes one change.
pub fn undo_change(out: &mut Vec<u8>, schema: &TableSchema, change: &RowChange) {
    match change {
        RowChange::Insert { after } => {
            out.extend_from_slice(format!("DELETE FROM {}", schema.table.quoted()).as_bytes());
            where_clause(out, schema, after);
        }
        RowChange::Delete { before } => {
            out.extend_from_slice(&insert_prefix(schema, true));
            write_row(out, schema, before);
        }
        RowChange::Update { before, after } => {
            out.extend_from_slice(format!("UPDATE {} SET ", schema.table.quoted()).as_bytes());
            let mut first = true;
            for (i, col) in schema.columns.iter().enumerate() {
                if col.generated {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(quote_ident(&col.name).as_bytes());
                out.push(b'=');
                write_value(
                    out,
                    col,
                    before.get(i).unwrap_or(&dbtrail_core::Value::Null),
                );
            }
            where_clause(out, schema, after);
        }
    }
    out.extend_from_slice(b";\n");
}

/// An undo script's header: `title` and `rule` as comment lines, then the session settings
/// every value literal is written for ([`DATA_FILE_HEADER`]).
pub fn script_header(out: &mut Vec<u8>, title: &str, rule: &str) {
    for line in title.lines().chain(rule.lines()) {
        out.extend_from_slice(format!("-- {line}\n").as_bytes());
    }
    out.extend_from_slice(DATA_FILE_HEADER.as_bytes());
}

/// A whole script undoing `changes` (in log order, each with its schema), in one transaction.
pub fn undo_script<'a>(
    title: &str,
    changes: impl DoubleEndedIterator<Item = (&'a TableSchema, &'a RowChange)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    script_header(
        &mut out,
        title,
        "Every statement must report exactly 1 row affected; if one does not, ROLLBACK:\n\
         the table no longer holds what the transaction left.",
    );
    out.extend_from_slice(b"START TRANSACTION;\n");
    for (schema, change) in changes.rev() {
        undo_change(&mut out, schema, change);
    }
    out.extend_from_slice(b"COMMIT;\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::{ColumnDef, TableRef, Value};

    #[test]
    fn undoes_in_reverse_order() {
        let schema = TableSchema {
            table: TableRef::new("shop", "orders"),
            version: 1,
            columns: vec![
                ColumnDef::new("id", ColumnType::Int),
                ColumnDef::new("s", ColumnType::VarChar),
            ],
            primary_key: vec![0],
            foreign_keys: Vec::new(),
        };
        let ins = RowChange::Insert {
            after: vec![Value::Int(1), Value::Str(b"a".to_vec())],
        };
        let upd = RowChange::Update {
            before: vec![Value::Int(1), Value::Str(b"a".to_vec())],
            after: vec![Value::Int(2), Value::Str(b"b".to_vec())],
        };
        let script = undo_script("t", [(&schema, &ins), (&schema, &upd)].into_iter());
        let text = String::from_utf8(script).expect("utf8");
        let body: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("UPDATE") || l.starts_with("DELETE"))
            .collect();
        assert_eq!(
            body,
            [
                "UPDATE `shop`.`orders` SET `id`=1,`s`='a' WHERE `id` <=> 2 LIMIT 1;",
                "DELETE FROM `shop`.`orders` WHERE `id` <=> 1 LIMIT 1;",
            ]
        );
    }
}
