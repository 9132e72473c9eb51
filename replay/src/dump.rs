//! The mydumper layout a restore writes, importable unchanged by `myloader -d DIR` and, file
//! by file, by `mysql`:
//!
//! - `DB-schema-create.sql`: `CREATE DATABASE IF NOT EXISTS`;
//! - `DB.TABLE-schema.sql`: the table's `SHOW CREATE TABLE` at the baseline;
//! - `DB.TABLE.NNNNN.sql`: data chunks of at most about `chunk_bytes`, each starting with
//!   [`DATA_FILE_HEADER`] (binary names, UTC, a sql_mode admitting zero dates and id 0) and
//!   holding multi-row `INSERT INTO t (cols) VALUES ...;` statements of at most about
//!   `statement_bytes` (generated columns left out, invisible ones in; values byte-exact);
//! - `metadata`: mydumper's header (with the position reached as `SHOW MASTER STATUS`) and
//!   what dbtrail restored.
//!
//! Memory holds one statement at a time.
use crate::sql::{DATA_FILE_HEADER, insert_prefix, write_row};
use dbtrail_core::schema::quote_ident;
use dbtrail_core::{Row, TableRef, TableSchema};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors writing a dump.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// File system.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A name that cannot be a mydumper file name.
    #[error(
        "{what} {name:?} contains '/' or NUL, which mydumper file names cannot hold; restore it with --tables leaving it out"
    )]
    Name {
        /// Database or table.
        what: &'static str,
        /// The name.
        name: String,
    },
}

fn check_name(what: &'static str, name: &str) -> Result<(), DumpError> {
    if name.contains('/') || name.contains('\0') || name.is_empty() {
        return Err(DumpError::Name {
            what,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Writes `DB-schema-create.sql` (once per database) and `DB.TABLE-schema.sql`.
pub fn write_schema(dir: &Path, table: &TableRef, create_table: &str) -> Result<u64, DumpError> {
    check_name("database", &table.db)?;
    check_name("table", &table.table)?;
    let mut bytes = 0;
    let db_file = dir.join(format!("{}-schema-create.sql", table.db));
    if !db_file.exists() {
        let text = format!(
            "CREATE DATABASE IF NOT EXISTS {};\n",
            quote_ident(&table.db)
        );
        write_file(&db_file, text.as_bytes())?;
        bytes += text.len() as u64;
    }
    let text = format!(
        "/*!40101 SET NAMES binary*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n\n{};\n",
        create_table.trim_end().trim_end_matches(';')
    );
    write_file(
        &dir.join(format!("{}.{}-schema.sql", table.db, table.table)),
        text.as_bytes(),
    )?;
    Ok(bytes + text.len() as u64)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DumpError> {
    std::fs::write(path, bytes).map_err(|source| DumpError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Streams one table's rows into data chunk files.
pub struct TableWriter {
    dir: PathBuf,
    schema: TableSchema,
    prefix: Vec<u8>,
    chunk_bytes: u64,
    statement_bytes: usize,
    stmt: Vec<u8>,
    rows_in_stmt: usize,
    file: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    file_bytes: u64,
    next_chunk: u32,
    chunk_step: u32,
    /// Files written so far, in order.
    pub files: Vec<PathBuf>,
    /// Bytes written so far.
    pub bytes: u64,
    /// Rows written so far.
    pub rows: u64,
}

impl TableWriter {
    /// A writer for `schema`'s table into `dir`.
    pub fn new(
        dir: &Path,
        schema: &TableSchema,
        chunk_bytes: u64,
        statement_bytes: usize,
    ) -> Result<TableWriter, DumpError> {
        check_name("database", &schema.table.db)?;
        check_name("table", &schema.table.table)?;
        Ok(TableWriter {
            dir: dir.to_path_buf(),
            prefix: insert_prefix(schema, false),
            schema: schema.clone(),
            chunk_bytes: chunk_bytes.max(1),
            statement_bytes: statement_bytes.max(1),
            stmt: Vec::new(),
            rows_in_stmt: 0,
            file: None,
            file_bytes: 0,
            next_chunk: 0,
            chunk_step: 1,
            files: Vec::new(),
            bytes: 0,
            rows: 0,
        })
    }

    /// Numbers this writer's chunk files `first`, `first + step`, ...: several writers of one
    /// table (each with its own `first < step`) then never name the same file.
    pub fn with_chunks(mut self, first: u32, step: u32) -> Self {
        self.next_chunk = first;
        self.chunk_step = step.max(1);
        self
    }

    /// Appends one row.
    pub fn push(&mut self, row: &Row) -> Result<(), DumpError> {
        if self.rows_in_stmt == 0 {
            self.stmt.extend_from_slice(&self.prefix);
            self.stmt.push(b'\n');
        } else {
            self.stmt.extend_from_slice(b",\n");
        }
        write_row(&mut self.stmt, &self.schema, row);
        self.rows_in_stmt += 1;
        self.rows += 1;
        if self.stmt.len() >= self.statement_bytes {
            self.flush_statement()?;
        }
        Ok(())
    }

    fn flush_statement(&mut self) -> Result<(), DumpError> {
        if self.rows_in_stmt == 0 {
            return Ok(());
        }
        self.stmt.extend_from_slice(b";\n");
        if self.file.is_none() || self.file_bytes >= self.chunk_bytes {
            self.close_file()?;
            let path = self.dir.join(format!(
                "{}.{}.{:05}.sql",
                self.schema.table.db, self.schema.table.table, self.next_chunk
            ));
            self.next_chunk += self.chunk_step;
            let f = std::fs::File::create(&path).map_err(|source| DumpError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            w.write_all(DATA_FILE_HEADER.as_bytes())
                .map_err(|source| DumpError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            self.file_bytes = DATA_FILE_HEADER.len() as u64;
            self.bytes += self.file_bytes;
            self.files.push(path.clone());
            self.file = Some((path, w));
        }
        if let Some((path, w)) = &mut self.file {
            w.write_all(&self.stmt).map_err(|source| DumpError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        self.file_bytes += self.stmt.len() as u64;
        self.bytes += self.stmt.len() as u64;
        self.stmt.clear();
        self.rows_in_stmt = 0;
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), DumpError> {
        if let Some((path, mut w)) = self.file.take() {
            let io = |source| DumpError::Io {
                path: path.display().to_string(),
                source,
            };
            w.flush().map_err(io)?;
            w.get_ref().sync_all().map_err(io)?;
        }
        Ok(())
    }

    /// Writes what is buffered and closes the last file (an empty table has no data file,
    /// as with mydumper).
    pub fn finish(mut self) -> Result<(Vec<PathBuf>, u64, u64), DumpError> {
        self.flush_statement()?;
        self.close_file()?;
        Ok((self.files, self.bytes, self.rows))
    }
}

/// What the `metadata` file records.
pub struct Metadata<'a> {
    /// Local start/finish of the restore (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub started: &'a str,
    /// See `started`.
    pub finished: &'a str,
    /// Binlog file and offset after the last transaction included (the baseline's when none).
    pub file: &'a str,
    /// See `file`.
    pub pos: u64,
    /// The GTID set the restored state reflects.
    pub gtid_set: &'a str,
    /// The target as asked.
    pub target: &'a str,
    /// The rule applied to the target, in words.
    pub rule: &'a str,
    /// The last transaction included: GTID (or binlog end position) and commit time.
    pub last_included: &'a str,
    /// The baseline used.
    pub baseline: &'a str,
    /// Tables restored.
    pub tables: &'a [TableRef],
}

/// Writes `metadata`: mydumper's header (myloader and people read the position from it) and
/// the restore's own facts, indented under a `dbtrail point-in-time restore:` block.
pub fn write_metadata(dir: &Path, m: &Metadata<'_>) -> Result<u64, DumpError> {
    let mut s = format!(
        "Started dump at: {}\nSHOW MASTER STATUS:\n\tLog: {}\n\tPos: {}\n\tGTID:{}\n\n",
        m.started, m.file, m.pos, m.gtid_set
    );
    s.push_str("dbtrail point-in-time restore:\n");
    s.push_str(&format!("\tTarget: {}\n", m.target));
    s.push_str(&format!("\tRule: {}\n", m.rule));
    s.push_str(&format!(
        "\tLast included transaction: {}\n",
        m.last_included
    ));
    s.push_str(&format!("\tBaseline: {}\n", m.baseline));
    let names: Vec<String> = m.tables.iter().map(|t| t.to_string()).collect();
    s.push_str(&format!("\tTables: {}\n\n", names.join(", ")));
    s.push_str(&format!("Finished dump at: {}\n", m.finished));
    write_file(&dir.join("metadata"), s.as_bytes())?;
    Ok(s.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::{ColumnDef, ColumnType, Value};

    #[test]
    fn chunks_and_statements_are_bounded_and_complete() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut schema = TableSchema {
            table: TableRef::new("d", "t"),
            version: 0,
            columns: vec![
                ColumnDef::new("id", ColumnType::Int),
                ColumnDef::new("g", ColumnType::Int),
            ],
            primary_key: vec![0],
            foreign_keys: Vec::new(),
        };
        schema.columns[1].generated = true;
        let mut w = TableWriter::new(dir.path(), &schema, 200, 60).expect("writer");
        for i in 0..50 {
            w.push(&vec![Value::Int(i), Value::Int(i * 2)])
                .expect("push");
        }
        let (files, bytes, rows) = w.finish().expect("finish");
        assert_eq!(rows, 50);
        assert!(files.len() > 1, "chunked: {files:?}");
        let mut total = 0;
        let mut seen = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read");
            total += text.len() as u64;
            assert!(text.starts_with(DATA_FILE_HEADER));
            assert!(text.trim_end().ends_with(';'));
            for stmt in text[DATA_FILE_HEADER.len()..]
                .split(";\n")
                .filter(|s| !s.is_empty())
            {
                assert!(
                    stmt.starts_with("INSERT INTO `t` (`id`) VALUES\n"),
                    "{stmt}"
                );
                for v in stmt["INSERT INTO `t` (`id`) VALUES\n".len()..].split(",\n") {
                    seen.push(
                        v.trim_matches(|c| c == '(' || c == ')')
                            .parse::<i64>()
                            .expect("id"),
                    );
                }
            }
        }
        assert_eq!(total, bytes);
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert!(files[0].ends_with("d.t.00000.sql"));
        assert!(
            TableWriter::new(
                dir.path(),
                &TableSchema {
                    table: TableRef::new("d", "a/b"),
                    ..schema
                },
                1,
                1
            )
            .is_err()
        );
    }
}
