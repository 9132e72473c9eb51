//! The mydumper layout a restore writes, importable unchanged by `myloader -d DIR` and, file
//! by file, by `mysql`:
//!
//! - `DB-schema-create.sql`: `CREATE DATABASE IF NOT EXISTS`;
//! - `DB.TABLE-schema.sql`: the table's `SHOW CREATE TABLE` at the baseline;
//! - `DB.TABLE.NNNNN.sql`: data chunks of at most about `chunk_bytes`, each starting with
//!   [`DATA_FILE_HEADER`] (binary names, UTC, a sql_mode admitting zero dates and id 0) and
//!   holding multi-row `INSERT INTO t (cols) VALUES ...;` statements of at most about
//!   `statement_bytes` (generated columns left out, invisible ones in; values byte-exact);
//! - views, triggers, routines and events ([`write_objects`]), as mydumper writes them so
//!   that `myloader` creates them after the data: `DB.VIEW-schema.sql` (a placeholder table
//!   with the view's columns, so other objects can name it) and `DB.VIEW-schema-view.sql`
//!   (drops it, creates the view), `DB.TABLE-schema-triggers.sql` (the table's triggers in
//!   firing order), `DB-schema-post.sql` (routines and events); each `CREATE` runs under the
//!   `character_set_client` and `collation_connection` it was created with;
//! - `metadata`: mydumper's header (with the position reached as `SHOW MASTER STATUS`) and
//!   what dbtrail restored.
//!
//! Memory holds one statement at a time.
use crate::sql::{DATA_FILE_HEADER, insert_prefix, write_row};
use dbtrail_core::objects::{ObjectKind, SchemaObject};
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

/// Writes `DB-schema-create.sql` unless it exists.
fn write_database(dir: &Path, db: &str) -> Result<u64, DumpError> {
    check_name("database", db)?;
    let db_file = dir.join(format!("{db}-schema-create.sql"));
    if db_file.exists() {
        return Ok(0);
    }
    let text = format!("CREATE DATABASE IF NOT EXISTS {};\n", quote_ident(db));
    write_file(&db_file, text.as_bytes())?;
    Ok(text.len() as u64)
}

/// `create` run under the charsets it was created with (mydumper's wrapper). myloader ends a
/// statement at a line ending in `;`, so such a line inside the definition gets a trailing
/// space (the only change to the text).
fn wrapped(o: &SchemaObject, drop: Option<&str>) -> String {
    let charset = if o.charset_client.is_empty() {
        "utf8mb4"
    } else {
        &o.charset_client
    };
    let collation = if o.collation_connection.is_empty() {
        "utf8mb4_general_ci"
    } else {
        &o.collation_connection
    };
    let mut s = String::new();
    if let Some(d) = drop {
        s.push_str(d);
    }
    s.push_str(
        "SET @PREV_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT;\n\
         SET @PREV_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS;\n\
         SET @PREV_COLLATION_CONNECTION=@@COLLATION_CONNECTION;\n",
    );
    s.push_str(&format!(
        "SET character_set_client = {charset};\nSET character_set_results = {charset};\n\
         SET collation_connection = {collation};\n"
    ));
    let body = o.create.trim_end().trim_end_matches(';');
    let lines: Vec<&str> = body.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        s.push_str(line);
        if i + 1 < lines.len() {
            if line.ends_with(';') {
                s.push(' ');
            }
            s.push('\n');
        }
    }
    s.push_str(
        ";\nSET character_set_client = @PREV_CHARACTER_SET_CLIENT;\n\
         SET character_set_results = @PREV_CHARACTER_SET_RESULTS;\n\
         SET collation_connection = @PREV_COLLATION_CONNECTION;\n",
    );
    s
}

/// Writes the views, triggers, routines and events `objects` (in creation order; triggers
/// in firing order per table) in mydumper's files; returns the bytes written.
pub fn write_objects(dir: &Path, objects: &[SchemaObject]) -> Result<u64, DumpError> {
    use std::collections::BTreeMap;
    let mut bytes = 0;
    let mut triggers: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let mut post: BTreeMap<&str, String> = BTreeMap::new();
    for o in objects {
        check_name("database", &o.db)?;
        bytes += write_database(dir, &o.db)?;
        match o.kind {
            ObjectKind::View => {
                check_name("view", &o.name)?;
                let cols: Vec<String> = if o.columns.is_empty() {
                    vec![format!("{} int", quote_ident("dbtrail_columns_unknown"))]
                } else {
                    o.columns
                        .iter()
                        .map(|c| format!("{} int", quote_ident(c)))
                        .collect()
                };
                let placeholder = format!(
                    "/*!40101 SET NAMES binary*/;\nCREATE TABLE {}(\n{}\n)ENGINE=MyISAM;\n",
                    quote_ident(&o.name),
                    cols.join(",\n")
                );
                write_file(
                    &dir.join(format!("{}.{}-schema.sql", o.db, o.name)),
                    placeholder.as_bytes(),
                )?;
                let name = quote_ident(&o.name);
                let view = format!(
                    "/*!40101 SET NAMES binary*/;\n{}",
                    wrapped(
                        o,
                        Some(&format!(
                            "DROP TABLE IF EXISTS {name};\nDROP VIEW IF EXISTS {name};\n"
                        ))
                    )
                );
                write_file(
                    &dir.join(format!("{}.{}-schema-view.sql", o.db, o.name)),
                    view.as_bytes(),
                )?;
                bytes += (placeholder.len() + view.len()) as u64;
            }
            ObjectKind::Trigger => {
                let table = o.table.as_deref().unwrap_or_default();
                check_name("table", table)?;
                triggers
                    .entry((&o.db, table))
                    .or_insert_with(|| "/*!40101 SET NAMES binary*/;\n".to_string())
                    .push_str(&wrapped(o, None));
            }
            ObjectKind::Procedure | ObjectKind::Function | ObjectKind::Event => {
                let drop = format!(
                    "DROP {} IF EXISTS {};\n",
                    o.kind.keyword(),
                    quote_ident(&o.name)
                );
                post.entry(&o.db)
                    .or_insert_with(|| "/*!40101 SET NAMES binary*/;\n".to_string())
                    .push_str(&wrapped(o, Some(&drop)));
            }
        }
    }
    for ((db, table), text) in triggers {
        write_file(
            &dir.join(format!("{db}.{table}-schema-triggers.sql")),
            text.as_bytes(),
        )?;
        bytes += text.len() as u64;
    }
    for (db, text) in post {
        write_file(&dir.join(format!("{db}-schema-post.sql")), text.as_bytes())?;
        bytes += text.len() as u64;
    }
    Ok(bytes)
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

    #[test]
    fn objects_in_mydumpers_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let o = |kind, name: &str, table: Option<&str>, create: &str| SchemaObject {
            kind,
            db: "d".into(),
            name: name.into(),
            table: table.map(Into::into),
            create: create.into(),
            charset_client: "utf8mb3".into(),
            collation_connection: "utf8mb3_general_ci".into(),
            columns: vec!["id".into(), "what".into()],
        };
        write_objects(
            dir.path(),
            &[
                o(
                    ObjectKind::View,
                    "vv",
                    None,
                    "CREATE VIEW `vv` AS select 1 AS `id`,2 AS `what`",
                ),
                o(
                    ObjectKind::Trigger,
                    "a",
                    Some("t"),
                    "CREATE TRIGGER a AFTER INSERT ON t FOR EACH ROW BEGIN SET @x = 1; END",
                ),
                o(
                    ObjectKind::Trigger,
                    "b",
                    Some("t"),
                    "CREATE TRIGGER b AFTER INSERT ON t FOR EACH ROW SET @y = 1",
                ),
                o(
                    ObjectKind::Procedure,
                    "p1",
                    None,
                    "CREATE PROCEDURE `p1`(IN x INT)\nBEGIN SELECT x;\nSELECT x+1; END",
                ),
            ],
        )
        .expect("write");
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect(f);
        assert_eq!(
            read("d.vv-schema.sql"),
            "/*!40101 SET NAMES binary*/;\nCREATE TABLE `vv`(\n`id` int,\n`what` int\n)ENGINE=MyISAM;\n"
        );
        let view = read("d.vv-schema-view.sql");
        assert!(view.starts_with(
            "/*!40101 SET NAMES binary*/;\nDROP TABLE IF EXISTS `vv`;\nDROP VIEW IF EXISTS `vv`;\n\
             SET @PREV_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT;\n"
        ));
        assert!(view.contains(
            "SET collation_connection = utf8mb3_general_ci;\nCREATE VIEW `vv` AS select 1 AS `id`,2 AS `what`;\n\
             SET character_set_client = @PREV_CHARACTER_SET_CLIENT;\n"
        ));
        let tr = read("d.t-schema-triggers.sql");
        assert!(tr.contains("BEGIN SET @x = 1; END;\n") && tr.contains("SET @y = 1;\n"));
        let post = read("d-schema-post.sql");
        assert!(post.contains("DROP PROCEDURE IF EXISTS `p1`;\n"));
        assert!(
            post.contains("(IN x INT)\nBEGIN SELECT x; \nSELECT x+1; END;\n"),
            "{post}"
        );
        assert!(dir.path().join("d-schema-create.sql").exists());
    }
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
