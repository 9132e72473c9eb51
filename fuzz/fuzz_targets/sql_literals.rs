//! The SQL value writer against a parser of MySQL literals (the mydumper reader): any bytes,
//! integer and decimal written into an INSERT statement read back as the same values.
#![no_main]
use dbtrail_core::{ColumnDef, ColumnType, TableRef, TableSchema, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bin = ColumnDef::new("b", ColumnType::VarChar);
    bin.collation = Some(dbtrail_core::schema::BINARY_COLLATION);
    let mut text = ColumnDef::new("t", ColumnType::Blob);
    text.collation = Some(45); // utf8mb4_general_ci
    let schema = TableSchema {
        table: TableRef::new("d", "t"),
        version: 0,
        columns: vec![ColumnDef::new("i", ColumnType::BigInt), bin, text],
        primary_key: vec![0],
        foreign_keys: Vec::new(),
    };
    let (head, rest) = data.split_at(data.len().min(8));
    let mut n = [0u8; 8];
    n[..head.len()].copy_from_slice(head);
    let int = i64::from_le_bytes(n);
    let split = rest.len() / 2;
    let row = vec![
        Value::Int(int),
        Value::Bytes(rest[..split].to_vec()),
        Value::Str(rest[split..].to_vec()),
    ];
    let mut sql = dbtrail_replay::sql::DATA_FILE_HEADER.as_bytes().to_vec();
    sql.extend_from_slice(&dbtrail_replay::sql::insert_prefix(&schema, false));
    dbtrail_replay::sql::write_row(&mut sql, &schema, &row);
    sql.extend_from_slice(b";\n");
    let mut back = Vec::new();
    let n = dbtrail_replay::mydumper::read_rows(
        std::io::Cursor::new(sql),
        "fuzz.sql",
        &schema,
        |r| -> Result<(), dbtrail_replay::mydumper::MydumperError> {
            back.push(r);
            Ok(())
        },
    )
    .expect("what the writer wrote parses");
    assert_eq!(n, 1);
    assert_eq!(back, vec![row]);
});
