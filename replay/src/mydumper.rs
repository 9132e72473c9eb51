//! Reading mydumper 0.10 backups as exact [`Value`]s: the `metadata` file, the directory
//! layout and the data files. The parser is the inverse of what mydumper (and [`crate::sql`])
//! write, checked against real dumps of MySQL 9.7 and MariaDB 10.11 (the apt `mydumper`).
//!
//! # What mydumper 0.10 writes
//! - `metadata`: `Started dump at:`, then `SHOW MASTER STATUS:` with `Log:`, `Pos:`, `GTID:`
//!   (a MySQL GTID set may continue on following lines), optional `SHOW SLAVE STATUS:`
//!   blocks, and `Finished dump at:` once the dump is complete. Times are the dump host's
//!   local time. On MySQL 8.4+/9.x it writes **no position** (it still runs
//!   `SHOW MASTER STATUS`, which those servers removed), so [`Metadata::binlog`] is `None`.
//! - Files: `db-schema-create.sql`, `db.t-schema.sql`, data in `db.t.sql` or in chunks
//!   `db.t.00000.sql`, `db.t.00001.sql`, ... (`-r`/`-F`), views as `db.v-schema.sql` plus
//!   `db.v-schema-view.sql`, triggers `db.t-schema-triggers.sql`, routines
//!   `db-schema-post.sql`, no data file for an empty table. Names are **not escaped**: table
//!   `a.b` of `db` is `db.a.b.sql`, table `t.00001` is `db.t.00001.sql` (the same name as
//!   chunk 1 of table `t`), and a table name with `/` is not dumped at all. [`tables`] reads
//!   each table's real name from its `CREATE TABLE` and resolves chunk names against it.
//! - Data files start with `/*!40101 SET NAMES binary*/;` and (unless `--skip-tz-utc`)
//!   `/*!40103 SET TIME_ZONE='+00:00' */;`, then `INSERT [IGNORE] INTO `t` [(cols)] VALUES
//!   (..),(..);` statements. Values are the server's **text protocol** output: numeric columns
//!   (integers, DECIMAL, FLOAT, DOUBLE, YEAR) unquoted, everything else double-quoted with
//!   `mysql_real_escape_string` (`\0 \' \" \\ \n \r \Z`; tab and `%` raw), JSON (MySQL) as
//!   `CONVERT("..." USING UTF8MB4)`. Because of `SET NAMES binary` the quoted bytes are the
//!   column's raw bytes: strings in their own charset, binary strings and VECTOR as raw
//!   bytes, BIT(M) as its ⌈M/8⌉ big-endian bytes, GEOMETRY as the internal SRID + WKB
//!   bytes, ENUM/SET as member text, TIMESTAMP in UTC. 0.10 has no `--hex-blob`.
//!
//! # Exactness
//! Every literal converts to exactly the [`Value`] a consistent snapshot reads from the live
//! table (`dbtrail_binlog::snapshot::read_table`), or the file is rejected with an error
//! naming file, table, column and literal. Three things the dump itself does not hold:
//! - FLOAT: the server prints 6 significant digits, so a FLOAT whose shortest round-trip
//!   form is longer (e.g. `1.2345678`) is dumped rounded (`1.23457`). It is imported as the
//!   FLOAT that text denotes, which is exactly what myloader would restore, not the live
//!   value. DOUBLE is printed round-trip exact.
//! - Generated columns are never dumped (mydumper lists the other columns): they are
//!   [`Value::Null`] here; the server recomputes them when the rows are restored.
//! - INVISIBLE columns are left out by mydumper 0.10 unless the table also has a generated
//!   column (it dumps `SELECT *`): such a file is rejected, never filled with guesses.
//!
//! Reading is streaming: one row at a time from a `BufRead`, memory bounded by the largest
//! row, whatever the size of the file.
use dbtrail_core::gtid::GtidSet;
use dbtrail_core::value::{Date, DateTime, days_from_civil};
use dbtrail_core::{ColumnDef, ColumnType, Row, TableRef, TableSchema, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Errors reading a mydumper backup.
#[derive(Debug, thiserror::Error)]
pub enum MydumperError {
    /// A file could not be read.
    #[error("reading mydumper file {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The `metadata` file is not what mydumper 0.10 writes, or says the dump is unfinished.
    #[error("mydumper metadata line {line}: {detail}")]
    Metadata {
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The directory's files cannot be mapped to tables unambiguously.
    #[error("mydumper directory {dir}: {detail}")]
    Layout {
        /// The dump directory.
        dir: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A data file is not valid mydumper SQL (or is truncated).
    #[error("mydumper data file {file} at byte {offset}: {detail}")]
    Syntax {
        /// The data file.
        file: String,
        /// Byte offset of the problem.
        offset: u64,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A data file's INSERT does not fit the table's schema (table, column list, row width).
    #[error("mydumper data file {file} for {table}: {detail}")]
    Columns {
        /// The data file.
        file: String,
        /// The table the schema describes.
        table: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A literal cannot be converted exactly to its column's value.
    #[error(
        "mydumper data file {file}: value {literal} of {table}.{column} cannot be imported \
         exactly: {detail}"
    )]
    Value {
        /// The data file.
        file: String,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The literal as written in the file (shortened).
        literal: String,
        /// Why.
        detail: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MydumperError + '_ {
    move |source| MydumperError::Io {
        path: path.display().to_string(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// metadata

/// The `metadata` file of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// `Started dump at:` (the dump host's local time, zone not recorded).
    pub started: DateTime,
    /// `Finished dump at:` (same clock). Its absence makes [`Metadata::parse`] fail.
    pub finished: DateTime,
    /// The dumped server's own binlog position (`SHOW MASTER STATUS:` block); `None` when
    /// mydumper wrote none (MySQL 8.4+/9.x, or binary logging off).
    pub binlog: Option<BinlogStatus>,
    /// `SHOW SLAVE STATUS:` blocks: where the dumped server, a replica, was in its source's
    /// binlog. Empty unless the dumped server replicates.
    pub replicas: Vec<ReplicaStatus>,
}

/// A binlog position as mydumper recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogStatus {
    /// `Log:` the binlog file.
    pub file: String,
    /// `Pos:` the offset in it.
    pub pos: u64,
    /// `GTID:` the executed GTID set (MariaDB: `@@gtid_binlog_pos`); `None` when empty.
    pub gtid_set: Option<GtidSet>,
}

/// One `SHOW SLAVE STATUS:` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// `Connection name:` (MariaDB multi-source only).
    pub connection_name: Option<String>,
    /// `Host:` the source server.
    pub source_host: String,
    /// The source's binlog position executed (`Relay_Master_Log_File`, `Exec_Master_Log_Pos`)
    /// and `Executed_Gtid_Set` / `Gtid_Slave_Pos`.
    pub position: BinlogStatus,
}

#[derive(Default)]
struct Block {
    line: usize,
    replica: bool,
    connection_name: Option<String>,
    host: Option<String>,
    file: Option<String>,
    pos: Option<String>,
    gtid: Option<String>,
    in_gtid: bool,
}

impl Metadata {
    /// Reads `dir/metadata`. A `metadata.partial` without `metadata` means mydumper is still
    /// running or died.
    pub fn read(dir: &Path) -> Result<Metadata, MydumperError> {
        let path = dir.join("metadata");
        if !path.exists() && dir.join("metadata.partial").exists() {
            return Err(MydumperError::Metadata {
                line: 0,
                detail: format!(
                    "{} has only metadata.partial: the dump is still running or did not \
                     finish; wait for mydumper to end or take a new dump",
                    dir.display()
                ),
            });
        }
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
            .map_err(io_err(&path))?;
        Metadata::parse(&text)
    }

    /// Parses the text of a `metadata` file.
    pub fn parse(text: &str) -> Result<Metadata, MydumperError> {
        let err = |line: usize, detail: String| MydumperError::Metadata { line, detail };
        let mut started = None;
        let mut finished = None;
        let mut binlog = None;
        let mut replicas = Vec::new();
        let mut block: Option<Block> = None;
        let finish = |b: Block,
                      binlog: &mut Option<BinlogStatus>,
                      replicas: &mut Vec<ReplicaStatus>|
         -> Result<(), MydumperError> {
            let what = if b.replica {
                "SHOW SLAVE STATUS"
            } else {
                "SHOW MASTER STATUS"
            };
            let (Some(file), Some(pos)) = (b.file, b.pos) else {
                return Err(err(
                    b.line,
                    format!("the {what} block lacks its Log: or Pos: line"),
                ));
            };
            let pos = pos.parse::<u64>().map_err(|_| {
                err(
                    b.line,
                    format!("the {what} block has a non-numeric position {pos:?}"),
                )
            })?;
            let gtid = b.gtid.unwrap_or_default();
            let gtid_set = if gtid.is_empty() || gtid == "(null)" {
                None
            } else {
                Some(gtid.parse::<GtidSet>().map_err(|e| {
                    err(
                        b.line,
                        format!("the {what} block has an invalid GTID set {gtid:?}: {e}"),
                    )
                })?)
            };
            let position = BinlogStatus {
                file,
                pos,
                gtid_set,
            };
            if b.replica {
                replicas.push(ReplicaStatus {
                    connection_name: b.connection_name,
                    source_host: b.host.ok_or_else(|| {
                        err(b.line, "the SHOW SLAVE STATUS block lacks Host:".into())
                    })?,
                    position,
                });
            } else if binlog.replace(position).is_some() {
                return Err(err(b.line, "two SHOW MASTER STATUS blocks".into()));
            }
            Ok(())
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                if let Some(b) = block.take() {
                    finish(b, &mut binlog, &mut replicas)?;
                }
                continue;
            }
            if let Some(b) = block.as_mut() {
                if line.starts_with(['\t', ' ']) {
                    let Some((key, value)) = line.trim_start().split_once(':') else {
                        return Err(err(n, format!("expected `Key: value`, found {line:?}")));
                    };
                    let value = value.trim().to_string();
                    b.in_gtid = false;
                    match key.trim() {
                        "Log" => b.file = Some(value),
                        "Pos" => b.pos = Some(value),
                        "Host" if b.replica => b.host = Some(value),
                        "Connection name" if b.replica => b.connection_name = Some(value),
                        "GTID" => {
                            b.gtid = Some(value);
                            b.in_gtid = true;
                        }
                        other => {
                            return Err(err(n, format!("unknown key {other:?} in a status block")));
                        }
                    }
                    continue;
                }
                if b.in_gtid && !is_header(line) {
                    // MySQL prints multi-uuid GTID sets over several lines.
                    if let Some(g) = b.gtid.as_mut() {
                        g.push_str(line.trim());
                    }
                    continue;
                }
                if let Some(b) = block.take() {
                    finish(b, &mut binlog, &mut replicas)?;
                }
            }
            if let Some(t) = line.strip_prefix("Started dump at:") {
                started = Some(parse_meta_time(t).ok_or_else(|| bad_time(n, line))?);
            } else if let Some(t) = line.strip_prefix("Finished dump at:") {
                finished = Some(parse_meta_time(t).ok_or_else(|| bad_time(n, line))?);
            } else if line.starts_with("SHOW MASTER STATUS:")
                || line.starts_with("SHOW BINARY LOG STATUS:")
            {
                block = Some(Block {
                    line: n,
                    ..Block::default()
                });
            } else if line.starts_with("SHOW SLAVE STATUS:")
                || line.starts_with("SHOW REPLICA STATUS:")
            {
                block = Some(Block {
                    line: n,
                    replica: true,
                    ..Block::default()
                });
            } else {
                return Err(err(
                    n,
                    format!(
                        "unexpected line {line:?}: not a mydumper 0.10 metadata file (newer \
                         mydumper versions write another format)"
                    ),
                ));
            }
        }
        if let Some(b) = block.take() {
            finish(b, &mut binlog, &mut replicas)?;
        }
        let started = started.ok_or_else(|| {
            err(
                0,
                "no `Started dump at:` line: not a mydumper metadata file".into(),
            )
        })?;
        let finished = finished.ok_or_else(|| {
            err(
                0,
                "no `Finished dump at:` line: the dump did not finish (mydumper failed or was \
                 killed); take a new dump"
                    .into(),
            )
        })?;
        Ok(Metadata {
            started,
            finished,
            binlog,
            replicas,
        })
    }
}

fn is_header(line: &str) -> bool {
    ["Started dump at:", "Finished dump at:", "SHOW "]
        .iter()
        .any(|h| line.starts_with(h))
}

fn bad_time(line: usize, text: &str) -> MydumperError {
    MydumperError::Metadata {
        line,
        detail: format!("expected a time YYYY-MM-DD HH:MM:SS in {text:?}"),
    }
}

fn parse_meta_time(t: &str) -> Option<DateTime> {
    let dt = parse_datetime(t.trim().as_bytes())?;
    (dt.date.month >= 1 && dt.date.day >= 1 && dt.micros == 0).then_some(dt)
}

// ---------------------------------------------------------------------------------------------
// directory layout

/// One table of a dump directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpTable {
    /// The database.
    pub db: String,
    /// The table, as its `CREATE TABLE` names it.
    pub table: String,
    /// `db.t-schema.sql`.
    pub schema_file: PathBuf,
    /// `db.t.sql`, or the chunks in chunk order; empty for an empty table.
    pub data_files: Vec<PathBuf>,
}

impl DumpTable {
    /// `db.table`.
    pub fn table_ref(&self) -> TableRef {
        TableRef::new(&self.db, &self.table)
    }
}

/// The tables of a dump directory, sorted by database and name. Views, triggers, routines
/// and database files are left out. Every data file must belong to exactly one table: an
/// orphan (e.g. a `--no-schemas` dump) or a file name two tables could own is an error.
pub fn tables(dir: &Path) -> Result<Vec<DumpTable>, MydumperError> {
    let layout = |detail: String| MydumperError::Layout {
        dir: dir.display().to_string(),
        detail,
    };
    let mut schemas = BTreeSet::new();
    let mut views = BTreeSet::new();
    let mut data = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if !std::fs::metadata(&path).map_err(io_err(&path))?.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(layout(format!(
                "file name {:?} is not UTF-8; mydumper writes UTF-8 names: is this a \
                 mydumper directory?",
                entry.file_name()
            )));
        };
        if [".sql.gz", ".sql.zst"].iter().any(|s| name.ends_with(s)) {
            return Err(layout(format!(
                "{name} is compressed (mydumper -c): decompress the directory first \
                 (gunzip *.gz) and import again"
            )));
        }
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        if stem.ends_with("-schema-create")
            || stem.ends_with("-schema-triggers")
            || stem.ends_with("-schema-post")
            || stem.ends_with("-checksum")
        {
            continue;
        }
        if let Some(s) = stem.strip_suffix("-schema-view") {
            views.insert(s.to_string());
        } else if let Some(s) = stem.strip_suffix("-schema") {
            schemas.insert(s.to_string());
        } else {
            data.push(stem.to_string());
        }
    }
    let mut out: Vec<DumpTable> = Vec::new();
    let mut by_stem: HashMap<String, usize> = HashMap::new();
    for stem in schemas.iter().filter(|s| !views.contains(*s)) {
        let schema_file = dir.join(format!("{stem}-schema.sql"));
        let (db, table) = create_table_name(&schema_file)?;
        let db = match db {
            Some(db) => db,
            None => stem
                .strip_suffix(table.as_str())
                .and_then(|s| s.strip_suffix('.'))
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    layout(format!(
                        "{stem}-schema.sql creates table `{table}`, which does not match its \
                         file name db.table"
                    ))
                })?
                .to_string(),
        };
        by_stem.insert(stem.clone(), out.len());
        out.push(DumpTable {
            db,
            table,
            schema_file,
            data_files: Vec::new(),
        });
    }
    // Each data stem is `db.t` (whole table) or `db.t.NNNNN` (a chunk). Unescaped names can
    // make both readings possible; resolve those after the unambiguous ones.
    let mut whole: BTreeMap<usize, String> = BTreeMap::new();
    let mut chunks: BTreeMap<usize, Vec<(u64, String)>> = BTreeMap::new();
    let mut ambiguous = Vec::new();
    for stem in data {
        let as_whole = by_stem.get(&stem).copied();
        let as_chunk = stem.rsplit_once('.').and_then(|(base, n)| {
            let chunk = n.len() >= 5 && n.bytes().all(|b| b.is_ascii_digit());
            let t = by_stem.get(base).copied()?;
            chunk.then(|| n.parse::<u64>().ok().map(|n| (t, n)))?
        });
        match (as_whole, as_chunk) {
            (Some(t), None) => {
                whole.insert(t, stem);
            }
            (None, Some((t, n))) => chunks.entry(t).or_default().push((n, stem)),
            (Some(t), Some(c)) => ambiguous.push((stem, t, c)),
            (None, None) if views.contains(&stem) => {}
            (None, None) => {
                return Err(layout(format!(
                    "data file {stem}.sql has no schema file {stem}-schema.sql: dumps made \
                     with --no-schemas (-m) cannot be imported; run mydumper without -m"
                )));
            }
        }
    }
    for (stem, t, (owner, n)) in ambiguous {
        // A table's data is either one whole file or chunks, never both.
        let owner_is_whole = whole.contains_key(&owner);
        let t_is_chunked = chunks.contains_key(&t);
        if owner_is_whole && !t_is_chunked {
            whole.insert(t, stem);
        } else if t_is_chunked && !owner_is_whole {
            chunks.entry(owner).or_default().push((n, stem));
        } else {
            return Err(layout(format!(
                "{stem}.sql is both the data of table {} and chunk {n} of table {}: mydumper \
                 0.10 does not escape names, so one overwrote the other; rename one table \
                 or dump them separately",
                out[t].table_ref(),
                out[owner].table_ref()
            )));
        }
    }
    for (t, stem) in whole {
        if chunks.contains_key(&t) {
            return Err(layout(format!(
                "table {} has both {stem}.sql and chunk files: mixed dumps cannot be \
                 imported; take a new dump into an empty directory",
                out[t].table_ref()
            )));
        }
        out[t].data_files.push(dir.join(format!("{stem}.sql")));
    }
    for (t, mut list) in chunks {
        list.sort();
        out[t].data_files = list
            .into_iter()
            .map(|(_, stem)| dir.join(format!("{stem}.sql")))
            .collect();
    }
    out.sort_by(|a, b| (&a.db, &a.table).cmp(&(&b.db, &b.table)));
    Ok(out)
}

/// The (optional db and) table name of the `CREATE TABLE` in a schema file.
fn create_table_name(path: &Path) -> Result<(Option<String>, String), MydumperError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(16 << 20).read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let bad = |detail: &str| MydumperError::Layout {
        dir: path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        detail: format!(
            "schema file {}: {detail}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8"))?;
    let start = text
        .find("CREATE TABLE ")
        .ok_or_else(|| bad("no CREATE TABLE statement"))?;
    let mut rest = text[start + "CREATE TABLE ".len()..].trim_start();
    if let Some(r) = rest.strip_prefix("IF NOT EXISTS ") {
        rest = r.trim_start();
    }
    let (first, after) = ident(rest).ok_or_else(|| bad("no table name after CREATE TABLE"))?;
    if let Some(after) = after.strip_prefix('.') {
        let (second, _) = ident(after).ok_or_else(|| bad("no table name after the db"))?;
        return Ok((Some(first), second));
    }
    Ok((None, first))
}

/// A backquoted (`` ` `` doubled inside) or bare identifier at the start of `s`.
fn ident(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if body[i + 1..].starts_with('`') {
                    name.push('`');
                    chars.next();
                } else {
                    return Some((name, &body[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_string(), &s[end..]))
}

// ---------------------------------------------------------------------------------------------
// data files

/// Streams the rows of one data file of `schema`'s table, in file order, converting every
/// literal to the exact [`Value`] of its column; returns the number of rows. Columns the file
/// does not hold (generated ones) are [`Value::Null`].
pub fn for_each_row<E: From<MydumperError>>(
    path: &Path,
    schema: &TableSchema,
    visit: impl FnMut(Row) -> Result<(), E>,
) -> Result<u64, E> {
    let file = std::fs::File::open(path).map_err(|e| E::from(io_err(path)(e)))?;
    read_rows(
        BufReader::with_capacity(1 << 20, file),
        &path.display().to_string(),
        schema,
        visit,
    )
}

/// [`for_each_row`] over any reader; `file` names it in errors.
pub fn read_rows<R: BufRead, E: From<MydumperError>>(
    reader: R,
    file: &str,
    schema: &TableSchema,
    mut visit: impl FnMut(Row) -> Result<(), E>,
) -> Result<u64, E> {
    let mut p = Parser {
        r: reader,
        file,
        schema,
        off: 0,
        names: None,
        time_zone: None,
    };
    let mut rows = 0u64;
    loop {
        p.skip_ws()?;
        let Some(b) = p.peek()? else {
            return Ok(rows);
        };
        match b {
            b';' => p.bump(),
            b'/' => {
                let body = p.comment()?;
                if let Some(sql) = body.strip_prefix(b"!") {
                    let sql = sql.trim_ascii_start();
                    let digits = sql.iter().take_while(|c| c.is_ascii_digit()).count();
                    p.statement_text(&sql[digits..])?;
                }
            }
            b'-' | b'#' => p.line_comment()?,
            _ => {
                let at = p.off;
                let word = p.word()?.to_ascii_uppercase();
                match word.as_str() {
                    "SET" => {
                        let mut text = b"SET ".to_vec();
                        text.extend(p.until_semicolon()?);
                        p.statement_text(&text)?;
                    }
                    "INSERT" | "REPLACE" => p.insert(&mut rows, &mut visit)?,
                    _ => {
                        return Err(p
                            .syntax_at(
                                at,
                                format!(
                                    "unexpected statement {word:?}: a mydumper data file holds \
                                     only SET and INSERT statements"
                                ),
                            )
                            .into());
                    }
                }
            }
        }
    }
}

/// One literal of a VALUES tuple.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    /// Unquoted number text, e.g. `-1.5e3`.
    Number(String),
    /// A quoted string, unescaped.
    Quoted(Vec<u8>),
    /// `0xAB` / `X'AB'`.
    Hex(Vec<u8>),
    /// `b'101'` / `0b101`.
    Bits(u64),
    /// `_charset 'x'`.
    Introduced(String, Box<Lit>),
    /// `CONVERT('x' USING charset)`.
    Convert(Box<Lit>, String),
}

fn shorten(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let mut s: String = bytes[..bytes.len().min(MAX)].escape_ascii().to_string();
    if bytes.len() > MAX {
        let _ = write!(s, "...({} bytes)", bytes.len());
    }
    s
}

impl Lit {
    fn describe(&self) -> String {
        match self {
            Lit::Null => "NULL".into(),
            Lit::Number(s) => shorten(s.as_bytes()),
            Lit::Quoted(b) => format!("\"{}\"", shorten(b)),
            Lit::Hex(b) => {
                let mut s = String::from("0x");
                for x in b.iter().take(40) {
                    let _ = write!(s, "{x:02X}");
                }
                if b.len() > 40 {
                    let _ = write!(s, "...({} bytes)", b.len());
                }
                s
            }
            Lit::Bits(v) => format!("b'{v:b}'"),
            Lit::Introduced(cs, l) => format!("_{cs} {}", l.describe()),
            Lit::Convert(l, cs) => format!("CONVERT({} USING {cs})", l.describe()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Lit::Null => "NULL",
            Lit::Number(_) => "number",
            Lit::Quoted(_) => "quoted string",
            Lit::Hex(_) => "hex string",
            Lit::Bits(_) => "bit string",
            Lit::Introduced(..) => "string with a character set introducer",
            Lit::Convert(..) => "CONVERT(..)",
        }
    }
}

struct Parser<'a, R> {
    r: R,
    file: &'a str,
    schema: &'a TableSchema,
    off: u64,
    /// `SET NAMES` value seen, lowercase.
    names: Option<String>,
    /// `SET TIME_ZONE` value seen.
    time_zone: Option<String>,
}

/// Longest SET statement or comment kept in memory.
const MAX_STATEMENT_TEXT: usize = 1 << 20;

impl<R: BufRead> Parser<'_, R> {
    fn syntax_at(&self, offset: u64, detail: String) -> MydumperError {
        MydumperError::Syntax {
            file: self.file.to_string(),
            offset,
            detail,
        }
    }

    fn syntax(&self, detail: impl Into<String>) -> MydumperError {
        self.syntax_at(self.off, detail.into())
    }

    fn eof(&self, inside: &str) -> MydumperError {
        self.syntax(format!(
            "the file ends inside {inside}: it is truncated (did mydumper finish?); take a \
             new dump"
        ))
    }

    fn columns_err(&self, detail: String) -> MydumperError {
        MydumperError::Columns {
            file: self.file.to_string(),
            table: self.schema.table.to_string(),
            detail,
        }
    }

    fn io(&self, e: std::io::Error) -> MydumperError {
        MydumperError::Io {
            path: self.file.to_string(),
            source: e,
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, MydumperError> {
        match self.r.fill_buf() {
            Ok(buf) => Ok(buf.first().copied()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.peek(),
            Err(e) => Err(self.io(e)),
        }
    }

    fn bump(&mut self) {
        self.r.consume(1);
        self.off += 1;
    }

    fn next_byte(&mut self) -> Result<Option<u8>, MydumperError> {
        let b = self.peek()?;
        if b.is_some() {
            self.bump();
        }
        Ok(b)
    }

    fn skip_ws(&mut self) -> Result<(), MydumperError> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                break;
            }
            self.bump();
        }
        Ok(())
    }

    fn expect(&mut self, want: u8, inside: &str) -> Result<(), MydumperError> {
        self.skip_ws()?;
        match self.next_byte()? {
            Some(b) if b == want => Ok(()),
            Some(b) => Err(self.syntax(format!(
                "expected '{}' in {inside}, found '{}'",
                want as char,
                [b].escape_ascii()
            ))),
            None => Err(self.eof(inside)),
        }
    }

    /// A run of bytes accepted by `keep` (at least one).
    fn token(&mut self, keep: impl Fn(u8) -> bool) -> Result<String, MydumperError> {
        let mut out = Vec::new();
        while let Some(b) = self.peek()? {
            if !keep(b) {
                break;
            }
            out.push(b);
            self.bump();
            if out.len() > 4096 {
                return Err(self.syntax("a token longer than 4096 bytes"));
            }
        }
        if out.is_empty() {
            let found = self.peek()?;
            return Err(match found {
                Some(b) => self.syntax(format!("unexpected '{}'", [b].escape_ascii())),
                None => self.eof("a statement"),
            });
        }
        // Only ASCII bytes are kept by every caller.
        Ok(out.iter().map(|&b| b as char).collect())
    }

    fn word(&mut self) -> Result<String, MydumperError> {
        self.token(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    fn expect_word(&mut self, want: &str, inside: &str) -> Result<(), MydumperError> {
        self.skip_ws()?;
        let w = self.word()?;
        if w.eq_ignore_ascii_case(want) {
            Ok(())
        } else {
            Err(self.syntax(format!("expected {want} in {inside}, found {w:?}")))
        }
    }

    /// `/* ... */` (the opening `/` is next); returns the body.
    fn comment(&mut self) -> Result<Vec<u8>, MydumperError> {
        self.bump();
        if self.next_byte()? != Some(b'*') {
            return Err(self.syntax("expected '/*'"));
        }
        let mut body = Vec::new();
        loop {
            match self.next_byte()? {
                None => return Err(self.eof("a /* comment */")),
                Some(b'*') if self.peek()? == Some(b'/') => {
                    self.bump();
                    return Ok(body);
                }
                Some(b) => {
                    body.push(b);
                    if body.len() > MAX_STATEMENT_TEXT {
                        return Err(self.syntax("a comment longer than 1 MiB"));
                    }
                }
            }
        }
    }

    /// `-- ...` or `# ...` up to the end of the line.
    fn line_comment(&mut self) -> Result<(), MydumperError> {
        if self.next_byte()? == Some(b'-') && self.peek()? != Some(b'-') {
            return Err(self.syntax("unexpected '-' outside a statement"));
        }
        while let Some(b) = self.next_byte()? {
            if b == b'\n' {
                break;
            }
        }
        Ok(())
    }

    /// The text up to (and consuming) the next `;` outside quotes.
    fn until_semicolon(&mut self) -> Result<Vec<u8>, MydumperError> {
        let mut out = Vec::new();
        let mut quote = None;
        loop {
            let Some(b) = self.next_byte()? else {
                return Err(self.eof("a SET statement"));
            };
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) if b == b'\\' => {
                    out.push(b);
                    if let Some(e) = self.next_byte()? {
                        out.push(e);
                    }
                    continue;
                }
                Some(_) => {}
                None if b == b';' => return Ok(out),
                None if matches!(b, b'\'' | b'"' | b'`') => quote = Some(b),
                None => {}
            }
            out.push(b);
            if out.len() > MAX_STATEMENT_TEXT {
                return Err(self.syntax("a SET statement longer than 1 MiB"));
            }
        }
    }

    /// Records the session settings a `SET` statement makes; other statements in versioned
    /// comments are not expected in data files.
    fn statement_text(&mut self, sql: &[u8]) -> Result<(), MydumperError> {
        let text = String::from_utf8_lossy(sql);
        let text = text.trim().trim_end_matches(';').trim();
        let Some(rest) = text
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("SET "))
            .map(|_| &text[4..])
        else {
            return Err(self.syntax(format!(
                "unexpected statement {:?} in a data file",
                shorten(text.as_bytes())
            )));
        };
        let rest = rest.trim();
        if let Some(names) = rest
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("NAMES "))
            .map(|_| &rest[6..])
        {
            let cs = names
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['\'', '"']);
            self.names = Some(cs.to_ascii_lowercase());
            return Ok(());
        }
        for assignment in rest.split(',') {
            let Some((name, value)) = assignment.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let name = name
                .trim_start_matches("@@session.")
                .trim_start_matches("session ")
                .trim();
            if name == "time_zone" {
                self.time_zone = Some(value.trim().trim_matches(['\'', '"']).to_string());
            }
        }
        Ok(())
    }

    /// `INSERT [IGNORE] INTO t [(cols)] VALUES (..),(..);` after its first word.
    fn insert<E: From<MydumperError>>(
        &mut self,
        rows: &mut u64,
        visit: &mut impl FnMut(Row) -> Result<(), E>,
    ) -> Result<(), E> {
        const WHAT: &str = "an INSERT statement";
        let at = self.off;
        self.skip_ws()?;
        let mut w = self.word()?;
        if w.eq_ignore_ascii_case("IGNORE") {
            self.skip_ws()?;
            w = self.word()?;
        }
        if !w.eq_ignore_ascii_case("INTO") {
            return Err(self
                .syntax(format!("expected INTO in {WHAT}, found {w:?}"))
                .into());
        }
        self.skip_ws()?;
        let mut name = self.identifier()?;
        if self.peek()? == Some(b'.') {
            self.bump();
            name = self.identifier()?;
        }
        if name != self.schema.table.table {
            return Err(self
                .columns_err(format!(
                    "the file inserts into table `{name}`: pass the schema of that table"
                ))
                .into());
        }
        if self.names.as_deref() != Some("binary") {
            return Err(self
                .syntax_at(
                    at,
                    format!(
                        "the file sets NAMES {} before its rows, not binary: string bytes \
                         would be transcoded; only mydumper's default (SET NAMES binary) is \
                         exact",
                        self.names.as_deref().unwrap_or("(nothing)")
                    ),
                )
                .into());
        }
        self.skip_ws()?;
        let list = if self.peek()? == Some(b'(') {
            self.bump();
            let mut names = Vec::new();
            loop {
                self.skip_ws()?;
                names.push(self.identifier()?);
                self.skip_ws()?;
                match self.next_byte()? {
                    Some(b',') => {}
                    Some(b')') => break,
                    Some(b) => {
                        return Err(self
                            .syntax(format!(
                                "unexpected '{}' in the column list",
                                [b].escape_ascii()
                            ))
                            .into());
                    }
                    None => return Err(self.eof(WHAT).into()),
                }
            }
            Some(names)
        } else {
            None
        };
        let map = column_map(self.schema, list.as_deref()).map_err(|d| self.columns_err(d))?;
        self.expect_word("VALUES", WHAT)?;
        let tz_utc = self.time_zone.as_deref().is_some_and(|tz| {
            matches!(tz, "+00:00" | "-00:00" | "+0:00") || tz.eq_ignore_ascii_case("UTC")
        });
        loop {
            self.expect(b'(', WHAT)?;
            let mut lits = Vec::with_capacity(map.len());
            loop {
                lits.push(self.literal()?);
                self.skip_ws()?;
                match self.next_byte()? {
                    Some(b',') => {}
                    Some(b')') => break,
                    Some(b) => {
                        return Err(self
                            .syntax(format!(
                                "unexpected '{}' between values",
                                [b].escape_ascii()
                            ))
                            .into());
                    }
                    None => return Err(self.eof(WHAT).into()),
                }
            }
            if lits.len() != map.len() {
                return Err(self
                    .columns_err(format!(
                        "row {} has {} values, the INSERT names {} columns",
                        *rows + 1,
                        lits.len(),
                        map.len()
                    ))
                    .into());
            }
            let mut row = vec![Value::Null; self.schema.columns.len()];
            for (lit, &i) in lits.into_iter().zip(&map) {
                let col = &self.schema.columns[i];
                row[i] = convert(col, &lit, tz_utc).map_err(|detail| MydumperError::Value {
                    file: self.file.to_string(),
                    table: self.schema.table.to_string(),
                    column: col.name.clone(),
                    literal: lit.describe(),
                    detail,
                })?;
            }
            visit(row)?;
            *rows += 1;
            self.skip_ws()?;
            match self.next_byte()? {
                Some(b',') => {}
                Some(b';') => return Ok(()),
                Some(b) => {
                    return Err(self
                        .syntax(format!("unexpected '{}' after a row", [b].escape_ascii()))
                        .into());
                }
                None => return Err(self.eof(WHAT).into()),
            }
        }
    }

    fn identifier(&mut self) -> Result<String, MydumperError> {
        let bytes = if self.peek()? == Some(b'`') {
            self.bump();
            let mut out = Vec::new();
            loop {
                match self.next_byte()? {
                    None => return Err(self.eof("an identifier")),
                    Some(b'`') if self.peek()? == Some(b'`') => {
                        self.bump();
                        out.push(b'`');
                    }
                    Some(b'`') => break,
                    Some(b) => out.push(b),
                }
                if out.len() > 1024 {
                    return Err(self.syntax("an identifier longer than 1024 bytes"));
                }
            }
            out
        } else {
            self.word()?.into_bytes()
        };
        String::from_utf8(bytes).map_err(|_| self.syntax("an identifier that is not UTF-8"))
    }

    /// The body of a quoted string, after its opening quote `q`, unescaped as MySQL does
    /// (https://dev.mysql.com/doc/refman/8.4/en/string-literals.html).
    fn string_body(&mut self, q: u8) -> Result<Vec<u8>, MydumperError> {
        let mut out = Vec::new();
        loop {
            let (taken, stop) = {
                let buf = match self.r.fill_buf() {
                    Ok(buf) => buf,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io(e)),
                };
                if buf.is_empty() {
                    return Err(self.eof("a quoted string"));
                }
                match buf.iter().position(|&c| c == q || c == b'\\') {
                    None => {
                        out.extend_from_slice(buf);
                        (buf.len(), None)
                    }
                    Some(i) => {
                        out.extend_from_slice(&buf[..i]);
                        (i + 1, Some(buf[i]))
                    }
                }
            };
            self.r.consume(taken);
            self.off += taken as u64;
            match stop {
                None => {}
                Some(b'\\') => {
                    let Some(e) = self.next_byte()? else {
                        return Err(self.eof("a quoted string"));
                    };
                    match e {
                        b'0' => out.push(0),
                        b'b' => out.push(8),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'Z' => out.push(0x1a),
                        // Kept with their backslash (they are LIKE escapes).
                        b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                        other => out.push(other),
                    }
                }
                Some(_) => {
                    if self.peek()? == Some(q) {
                        self.bump();
                        out.push(q);
                    } else {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// The body of `X'..'` or `B'..'` after its opening quote.
    fn quoted_digits(&mut self) -> Result<String, MydumperError> {
        let digits = self.token(|b| b.is_ascii_hexdigit())?;
        self.expect(b'\'', "a hex or bit literal")?;
        Ok(digits)
    }

    fn literal(&mut self) -> Result<Lit, MydumperError> {
        self.skip_ws()?;
        let at = self.off;
        let Some(b) = self.peek()? else {
            return Err(self.eof("a VALUES tuple"));
        };
        let bad = |p: &Self, what: &str| p.syntax_at(at, format!("invalid {what} literal"));
        match b {
            b'\'' | b'"' => {
                self.bump();
                Ok(Lit::Quoted(self.string_body(b)?))
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let tok =
                    self.token(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'-'))?;
                if let Some(h) = tok.strip_prefix("0x") {
                    return unhex(h).map(Lit::Hex).ok_or_else(|| bad(self, "hex"));
                }
                if let Some(bits) = tok.strip_prefix("0b") {
                    return unbits(bits).map(Lit::Bits).ok_or_else(|| bad(self, "bit"));
                }
                Ok(Lit::Number(tok))
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let w = self.word()?;
                let quote_next = self.peek()? == Some(b'\'');
                match w.to_ascii_uppercase().as_str() {
                    "NULL" => Ok(Lit::Null),
                    "X" if quote_next => {
                        self.bump();
                        let d = self.quoted_digits()?;
                        unhex(&d).map(Lit::Hex).ok_or_else(|| bad(self, "hex"))
                    }
                    "B" if quote_next => {
                        self.bump();
                        let d = self.quoted_digits()?;
                        unbits(&d).map(Lit::Bits).ok_or_else(|| bad(self, "bit"))
                    }
                    "CONVERT" => {
                        self.expect(b'(', "CONVERT(..)")?;
                        let inner = self.literal()?;
                        self.expect_word("USING", "CONVERT(..)")?;
                        self.skip_ws()?;
                        let cs = self.word()?.to_ascii_lowercase();
                        self.expect(b')', "CONVERT(..)")?;
                        Ok(Lit::Convert(Box::new(inner), cs))
                    }
                    u if u.starts_with('_') && u.len() > 1 => {
                        let inner = self.literal()?;
                        Ok(Lit::Introduced(
                            w[1..].to_ascii_lowercase(),
                            Box::new(inner),
                        ))
                    }
                    _ => Err(self.syntax_at(at, format!("unexpected word {w:?} as a value"))),
                }
            }
            other => Err(self.syntax(format!(
                "unexpected '{}' where a value belongs",
                [other].escape_ascii()
            ))),
        }
    }
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
        .collect()
}

fn unbits(b: &str) -> Option<u64> {
    if b.is_empty() || b.len() > 64 || !b.bytes().all(|c| c == b'0' || c == b'1') {
        return None;
    }
    u64::from_str_radix(b, 2).ok()
}

/// Schema column indexes the values of each row go to.
fn column_map(schema: &TableSchema, list: Option<&[String]>) -> Result<Vec<usize>, String> {
    let cols = &schema.columns;
    let map: Vec<usize> = match list {
        None => (0..cols.len()).filter(|&i| !cols[i].invisible).collect(),
        Some(names) => {
            let mut map = Vec::with_capacity(names.len());
            for name in names {
                let i = cols
                    .iter()
                    .position(|c| &c.name == name)
                    .or_else(|| {
                        let mut ci = cols
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| c.name.eq_ignore_ascii_case(name));
                        match (ci.next(), ci.next()) {
                            (Some((i, _)), None) => Some(i),
                            _ => None,
                        }
                    })
                    .ok_or_else(|| {
                        format!(
                            "the INSERT names column `{name}`, which the schema does not have: \
                             import with the table's schema at the time of the dump"
                        )
                    })?;
                if map.contains(&i) {
                    return Err(format!("the INSERT names column `{name}` twice"));
                }
                map.push(i);
            }
            map
        }
    };
    let missing: Vec<&ColumnDef> = cols
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.generated && !map.contains(i))
        .map(|(_, c)| c)
        .collect();
    if let Some(c) = missing.first() {
        let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
        return Err(if c.invisible {
            format!(
                "the dump has no values for INVISIBLE column(s) {}: mydumper 0.10 dumps \
                 `SELECT *`, which leaves them out; make them VISIBLE before dumping (or add \
                 --complete-insert with a generated column) and dump again",
                names.join(", ")
            )
        } else {
            format!(
                "the dump has no values for column(s) {}: import with the table's schema at \
                 the time of the dump",
                names.join(", ")
            )
        });
    }
    Ok(map)
}

// ---------------------------------------------------------------------------------------------
// literal -> Value

/// Converts one literal of column `col`; `tz_utc` says the file set `TIME_ZONE='+00:00'`.
pub(crate) fn convert(col: &ColumnDef, lit: &Lit, tz_utc: bool) -> Result<Value, String> {
    let wrong = || {
        format!(
            "a {} cannot be a {} value here (not what mydumper writes for this type)",
            lit.kind(),
            col.sql_type.as_deref().unwrap_or(type_name(&col.ty))
        )
    };
    if *lit == Lit::Null {
        return Ok(Value::Null);
    }
    Ok(match &col.ty {
        t if t.is_integer() => {
            let Lit::Number(s) = lit else {
                return Err(wrong());
            };
            integer(t, col.unsigned, s)?
        }
        ColumnType::Float => {
            let Lit::Number(s) = lit else {
                return Err(wrong());
            };
            // As the server reads it: to double, then to float.
            let f = float(s)? as f32;
            if !f.is_finite() {
                return Err("out of the FLOAT range".into());
            }
            Value::Float(f)
        }
        ColumnType::Double => {
            let Lit::Number(s) = lit else {
                return Err(wrong());
            };
            Value::Double(float(s)?)
        }
        ColumnType::Decimal { precision, scale } => {
            let Lit::Number(s) = lit else {
                return Err(wrong());
            };
            Value::Decimal(decimal(s, *precision, *scale, col.unsigned)?)
        }
        ColumnType::Year => {
            let Lit::Number(s) = lit else {
                return Err(wrong());
            };
            let y = s
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse::<u16>().ok())
                .flatten()
                .filter(|y| *y == 0 || (1901..=2155).contains(y))
                .ok_or("not a YEAR (0000 or 1901..2155)")?;
            Value::Year(y)
        }
        ColumnType::Bit { bits } => {
            let v = match lit {
                Lit::Bits(v) => *v,
                Lit::Number(s) => s
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| s.parse::<u64>().ok())
                    .flatten()
                    .ok_or("not an unsigned integer")?,
                _ => {
                    let b = raw_bytes(lit).ok_or_else(wrong)?;
                    if b.len() > 8 {
                        return Err(format!("{} bytes for a BIT of at most 8", b.len()));
                    }
                    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
                }
            };
            if *bits < 64 && v >> bits != 0 {
                return Err(format!("does not fit BIT({bits})"));
            }
            Value::Bit(v)
        }
        ColumnType::Enum => match lit {
            Lit::Number(s) => {
                let i = s.parse::<u16>().map_err(|_| "not an ENUM index")?;
                if usize::from(i) > col.members.len() {
                    return Err(format!("index beyond the {} members", col.members.len()));
                }
                Value::Enum(i)
            }
            _ => {
                let b = raw_bytes(lit).ok_or_else(wrong)?;
                Value::Enum(enum_index(col, &b)?)
            }
        },
        ColumnType::Set => match lit {
            Lit::Number(s) => {
                let v = s.parse::<u64>().map_err(|_| "not a SET bitmask")?;
                if col.members.len() < 64 && v >> col.members.len() != 0 {
                    return Err(format!("bitmask beyond the {} members", col.members.len()));
                }
                Value::Set(v)
            }
            _ => {
                let b = raw_bytes(lit).ok_or_else(wrong)?;
                Value::Set(set_mask(col, &b)?)
            }
        },
        ColumnType::Date => {
            let b = raw_bytes(lit).ok_or_else(wrong)?;
            Value::Date(parse_date(&b).ok_or("not a DATE YYYY-MM-DD")?)
        }
        ColumnType::DateTime { .. } => {
            let b = raw_bytes(lit).ok_or_else(wrong)?;
            Value::DateTime(
                parse_datetime(&b).ok_or("not a DATETIME YYYY-MM-DD HH:MM:SS[.ffffff]")?,
            )
        }
        ColumnType::Timestamp { .. } => {
            let b = raw_bytes(lit).ok_or_else(wrong)?;
            if !tz_utc {
                return Err(
                    "the file does not set TIME_ZONE='+00:00' (dumped with --skip-tz-utc), so \
                     its TIMESTAMPs are in an unknown session time zone; dump again without \
                     --skip-tz-utc"
                        .into(),
                );
            }
            let dt = parse_datetime(&b).ok_or("not a TIMESTAMP YYYY-MM-DD HH:MM:SS[.ffffff]")?;
            Value::Timestamp(timestamp_micros(&dt)?)
        }
        ColumnType::Time { .. } => {
            let b = raw_bytes(lit).ok_or_else(wrong)?;
            Value::Time(parse_time(&b).ok_or("not a TIME [-]HHH:MM:SS[.ffffff]")?)
        }
        ColumnType::Json => {
            let b = match lit {
                Lit::Convert(inner, cs) | Lit::Introduced(cs, inner)
                    if matches!(cs.as_str(), "utf8mb4" | "utf8mb3" | "utf8") =>
                {
                    raw_bytes(inner).ok_or_else(wrong)?
                }
                _ => return Err(wrong()),
            };
            Value::Json(String::from_utf8(b).map_err(|_| "JSON text that is not UTF-8")?)
        }
        ColumnType::Geometry => Value::Geometry(raw_bytes(lit).ok_or_else(wrong)?),
        ColumnType::Vector => Value::Bytes(raw_bytes(lit).ok_or_else(wrong)?),
        ColumnType::Char | ColumnType::VarChar | ColumnType::Blob => {
            let b = raw_bytes(lit).ok_or_else(wrong)?;
            if col.is_binary() {
                Value::Bytes(b)
            } else {
                Value::Str(b)
            }
        }
        // Integer types are handled by the guard above.
        _ => return Err(wrong()),
    })
}

fn type_name(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::TinyInt => "TINYINT",
        ColumnType::SmallInt => "SMALLINT",
        ColumnType::MediumInt => "MEDIUMINT",
        ColumnType::Int => "INT",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Float => "FLOAT",
        ColumnType::Double => "DOUBLE",
        ColumnType::Decimal { .. } => "DECIMAL",
        ColumnType::Year => "YEAR",
        ColumnType::Date => "DATE",
        ColumnType::Time { .. } => "TIME",
        ColumnType::DateTime { .. } => "DATETIME",
        ColumnType::Timestamp { .. } => "TIMESTAMP",
        ColumnType::Char => "CHAR",
        ColumnType::VarChar => "VARCHAR",
        ColumnType::Blob => "BLOB/TEXT",
        ColumnType::Enum => "ENUM",
        ColumnType::Set => "SET",
        ColumnType::Bit { .. } => "BIT",
        ColumnType::Json => "JSON",
        ColumnType::Geometry => "GEOMETRY",
        ColumnType::Vector => "VECTOR",
    }
}

/// The bytes of a string literal exactly as stored: quoted (under `SET NAMES binary`), hex,
/// or with the `_binary` introducer. Other introducers would make the server transcode.
fn raw_bytes(lit: &Lit) -> Option<Vec<u8>> {
    match lit {
        Lit::Quoted(b) | Lit::Hex(b) => Some(b.clone()),
        Lit::Introduced(cs, inner) if cs == "binary" => match inner.as_ref() {
            Lit::Quoted(b) | Lit::Hex(b) => Some(b.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn integer(ty: &ColumnType, unsigned: bool, s: &str) -> Result<Value, String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not an integer".into());
    }
    let v: i128 = s.parse().map_err(|_| "not an integer")?;
    let bits = match ty {
        ColumnType::TinyInt => 8,
        ColumnType::SmallInt => 16,
        ColumnType::MediumInt => 24,
        ColumnType::Int => 32,
        _ => 64,
    };
    let (lo, hi) = if unsigned {
        (0i128, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    };
    if v < lo || v > hi {
        return Err(format!("out of the column's range {lo}..={hi}"));
    }
    Ok(if unsigned {
        Value::UInt(v as u64)
    } else {
        Value::Int(v as i64)
    })
}

/// A finite number in plain or exponent notation (no `inf`/`nan` words).
fn float(s: &str) -> Result<f64, String> {
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    let f: f64 = ok.then(|| s.parse().ok()).flatten().ok_or("not a number")?;
    if !f.is_finite() {
        return Err("out of the DOUBLE range".into());
    }
    Ok(f)
}

/// DECIMAL text as the server prints it: optional `-`, integer digits without leading zeros,
/// and exactly `scale` fraction digits; `-0` is `0`. Any other exact spelling is normalised;
/// a value needing rounding or out of range is an error.
fn decimal(s: &str, precision: u8, scale: u8, unsigned: bool) -> Result<String, String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("not a DECIMAL (digits with an optional point)".into());
    }
    let scale = usize::from(scale);
    if frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0') {
        return Err(format!("more than {scale} fraction digits"));
    }
    let mut frac = frac[..frac.len().min(scale)].to_string();
    while frac.len() < scale {
        frac.push('0');
    }
    let int = int.trim_start_matches('0');
    if int.len() > usize::from(precision).saturating_sub(scale) {
        return Err(format!("out of the range of DECIMAL({precision},{scale})"));
    }
    let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
    if neg && unsigned && !zero {
        return Err("negative value in an UNSIGNED DECIMAL".into());
    }
    let mut out = String::with_capacity(s.len() + scale);
    if neg && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if scale > 0 {
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

fn enum_index(col: &ColumnDef, text: &[u8]) -> Result<u16, String> {
    if col.members.is_empty() {
        return Err("the schema lists no ENUM members".into());
    }
    match col.members.iter().position(|m| m.as_slice() == text) {
        Some(i) if !text.is_empty() => Ok(i as u16 + 1),
        Some(_) => Err(
            "'' is both a member and the empty error value of this ENUM; the text dump \
             cannot say which"
                .into(),
        ),
        None if text.is_empty() => Ok(0),
        None => Err("not a member of the ENUM".into()),
    }
}

fn set_mask(col: &ColumnDef, text: &[u8]) -> Result<u64, String> {
    if col.members.is_empty() {
        return Err("the schema lists no SET members".into());
    }
    let has_empty = col.members.iter().any(|m| m.is_empty());
    if text.is_empty() {
        return if has_empty {
            Err("'' is both a member and the empty SET; the text dump cannot say which".into())
        } else {
            Ok(0)
        };
    }
    let mut mask = 0u64;
    for part in text.split(|&b| b == b',') {
        let i = col
            .members
            .iter()
            .position(|m| m.as_slice() == part)
            .ok_or_else(|| format!("{:?} is not a member of the SET", shorten(part)))?;
        mask |= 1u64 << i;
    }
    Ok(mask)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn parse_date(b: &[u8]) -> Option<Date> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&b[..4])?, digits(&b[5..7])?, digits(&b[8..])?);
    (month <= 12 && day <= 31).then_some(Date {
        year: year as u16,
        month: month as u8,
        day: day as u8,
    })
}

/// `.f` to `.ffffff` as microseconds.
fn fraction(b: &[u8]) -> Option<u32> {
    let f = b.strip_prefix(b".")?;
    if f.is_empty() || f.len() > 6 {
        return None;
    }
    Some(digits(f)? * 10u32.pow(6 - f.len() as u32))
}

fn parse_datetime(b: &[u8]) -> Option<DateTime> {
    if b.len() < 19 || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = parse_date(&b[..10])?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let micros = if b.len() > 19 { fraction(&b[19..])? } else { 0 };
    (hour <= 23 && minute <= 59 && second <= 59).then_some(DateTime {
        date,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        micros,
    })
}

/// UTC calendar time to epoch microseconds; the zero value is 0.
fn timestamp_micros(dt: &DateTime) -> Result<i64, String> {
    let d = dt.date;
    if d.year == 0 && d.month == 0 && d.day == 0 {
        if (dt.hour, dt.minute, dt.second, dt.micros) == (0, 0, 0, 0) {
            return Ok(0);
        }
        return Err("a zero date with a time is not a TIMESTAMP".into());
    }
    if d.month == 0 || d.day == 0 {
        return Err("a TIMESTAMP cannot have a zero month or day".into());
    }
    let days = days_from_civil(i64::from(d.year), d.month, d.day);
    let secs = days * 86_400
        + i64::from(dt.hour) * 3600
        + i64::from(dt.minute) * 60
        + i64::from(dt.second);
    Ok(secs * 1_000_000 + i64::from(dt.micros))
}

/// `[-]H..H:MM:SS[.f]` as signed microseconds.
fn parse_time(b: &[u8]) -> Option<i64> {
    let (neg, b) = match b.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, b),
    };
    let colon = b.iter().position(|&c| c == b':')?;
    if !(1..=3).contains(&colon) || b.len() < colon + 6 || b[colon + 3] != b':' {
        return None;
    }
    let hours = digits(&b[..colon])?;
    let (minutes, seconds) = (
        digits(&b[colon + 1..colon + 3])?,
        digits(&b[colon + 4..colon + 6])?,
    );
    let micros = if b.len() > colon + 6 {
        fraction(&b[colon + 6..])?
    } else {
        0
    };
    if hours > 838 || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = (i64::from(hours) * 3600 + i64::from(minutes) * 60 + i64::from(seconds))
        * 1_000_000
        + i64::from(micros);
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtrail_core::value::utc_datetime;

    /// Real `metadata` of mydumper 0.10 dumping MariaDB 10.11 (port 33063).
    const META_MARIADB: &str = "Started dump at: 2026-11-24 21:55:37\n\
SHOW MASTER STATUS:\n\
\tLog: mbin.000012\n\
\tPos: 7916\n\
\tGTID:0-3-5579\n\
\n\
Finished dump at: 2026-11-24 21:55:37\n";

    /// Real `metadata` of mydumper 0.10 dumping MySQL 9.7 (GTID and no-GTID alike): no
    /// position, because it still asks SHOW MASTER STATUS.
    const META_MYSQL9: &str = "Started dump at: 2026-11-24 21:55:37\n\
Finished dump at: 2026-11-24 21:55:37\n";

    /// What mydumper 0.10's format string (`SHOW MASTER STATUS:\n\tLog: %s\n\tPos: %s\n\t
    /// GTID:%s\n\n`) makes of a MySQL 8.0 replica with two GTID uuids (`gtid_executed`
    /// prints them over two lines). Synthesised: no MySQL < 8.4 is in the test bed.
    const META_MYSQL8_REPLICA: &str = "Started dump at: 2026-01-02 03:04:05\n\
SHOW MASTER STATUS:\n\
\tLog: binlog.000003\n\
\tPos: 157\n\
\tGTID:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n\
4f11fa47-71ca-11e1-9e33-c80aa9429562:1-3\n\
\n\
SHOW SLAVE STATUS:\n\
\tHost: 10.0.0.1\n\
\tLog: source-bin.000042\n\
\tPos: 99\n\
\tGTID:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5\n\
\n\
Finished dump at: 2026-01-02 03:04:09\n";

    fn dt(s: &str) -> DateTime {
        parse_datetime(s.as_bytes()).expect("valid")
    }

    #[test]
    fn metadata_mariadb() {
        let m = Metadata::parse(META_MARIADB).expect("parses");
        assert_eq!(m.started, dt("2026-11-24 21:55:37"));
        assert_eq!(m.finished, dt("2026-11-24 21:55:37"));
        let b = m.binlog.expect("position");
        assert_eq!((b.file.as_str(), b.pos), ("mbin.000012", 7916));
        assert_eq!(
            b.gtid_set.map(|g| g.to_string()).as_deref(),
            Some("0-3-5579")
        );
        assert!(m.replicas.is_empty());
    }

    #[test]
    fn metadata_mysql9_has_no_position() {
        let m = Metadata::parse(META_MYSQL9).expect("parses");
        assert_eq!(m.binlog, None);
        assert_eq!(m.started, m.finished);
    }

    #[test]
    fn metadata_multiline_gtid_and_replica() {
        let m = Metadata::parse(META_MYSQL8_REPLICA).expect("parses");
        let b = m.binlog.expect("position");
        assert_eq!((b.file.as_str(), b.pos), ("binlog.000003", 157));
        assert_eq!(
            b.gtid_set.expect("gtids").to_compact_string(),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4f11fa47-71ca-11e1-9e33-c80aa9429562:1-3"
        );
        assert_eq!(m.replicas.len(), 1);
        assert_eq!(m.replicas[0].source_host, "10.0.0.1");
        assert_eq!(m.replicas[0].position.pos, 99);
        assert_eq!(m.finished, dt("2026-01-02 03:04:09"));
    }

    #[test]
    fn metadata_variants_and_errors() {
        // Empty and "(null)" GTIDs (no GTIDs; a server without gtid_binlog_pos), and the
        // 8.4 wording of the header.
        for gtid in ["", "(null)"] {
            let text = format!(
                "Started dump at: 2026-01-02 03:04:05\nSHOW BINARY LOG STATUS:\n\tLog: b.1\n\
                 \tPos: 4\n\tGTID:{gtid}\n\nFinished dump at: 2026-01-02 03:04:05\n"
            );
            let m = Metadata::parse(&text).expect("parses");
            let b = m.binlog.expect("position");
            assert_eq!((b.file.as_str(), b.pos, b.gtid_set), ("b.1", 4, None));
        }
        let unfinished = META_MARIADB.replace("Finished dump at: 2026-11-24 21:55:37\n", "");
        let e = Metadata::parse(&unfinished).unwrap_err().to_string();
        assert!(e.contains("did not finish"), "{e}");
        let e = Metadata::parse("[master]\nFile = x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("0.10"), "{e}");
        let e = Metadata::parse(&META_MARIADB.replace("7916", "x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-numeric"), "{e}");
    }

    fn col(name: &str, ty: ColumnType) -> ColumnDef {
        let mut c = ColumnDef::new(name, ty);
        if matches!(
            c.ty,
            ColumnType::Char | ColumnType::VarChar | ColumnType::Blob
        ) {
            c.collation = Some(255);
        }
        c
    }

    fn binary(mut c: ColumnDef) -> ColumnDef {
        c.collation = Some(dbtrail_core::schema::BINARY_COLLATION);
        c
    }

    fn unsigned(mut c: ColumnDef) -> ColumnDef {
        c.unsigned = true;
        c
    }

    fn members(mut c: ColumnDef, m: &[&str]) -> ColumnDef {
        c.members = m.iter().map(|s| s.as_bytes().to_vec()).collect();
        c
    }

    fn schema(columns: Vec<ColumnDef>) -> TableSchema {
        TableSchema {
            table: TableRef::new("mdx", "tm"),
            version: 0,
            columns,
            primary_key: vec![0],
            foreign_keys: Vec::new(),
        }
    }

    /// The columns of the real dump below (a subset of the daemon tests' type matrix).
    fn matrix_schema() -> TableSchema {
        use ColumnType as T;
        schema(vec![
            col("id", T::Int),
            col("ti", T::TinyInt),
            unsigned(col("biu", T::BigInt)),
            col("f", T::Float),
            col("d", T::Double),
            col(
                "dec1",
                T::Decimal {
                    precision: 65,
                    scale: 30,
                },
            ),
            col(
                "dec4",
                T::Decimal {
                    precision: 20,
                    scale: 10,
                },
            ),
            col("b1", T::Bit { bits: 1 }),
            col("b13", T::Bit { bits: 13 }),
            col("b64", T::Bit { bits: 64 }),
            col("y", T::Year),
            col("dt", T::Date),
            col("dt6", T::DateTime { fsp: 6 }),
            col("ts0", T::Timestamp { fsp: 0 }),
            col("ts2", T::Timestamp { fsp: 2 }),
            col("t1", T::Time { fsp: 1 }),
            col("c", T::Char),
            col("vcl", T::VarChar),
            binary(col("bn", T::Char)),
            binary(col("vb", T::VarChar)),
            col("tx", T::Blob),
            binary(col("bl", T::Blob)),
            members(col("e", T::Enum), &["a", "b", "c"]),
            members(col("s", T::Set), &["x", "y", "z"]),
            col("j", T::Json),
            col("g", T::Geometry),
        ])
    }

    /// Rows 1 and 2 of a real mydumper 0.10 dump of MySQL 9.7 (bytes as written).
    const REAL_DUMP: &[u8] = b"/*!40101 SET NAMES binary*/;\n\
/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n\
/*!40103 SET TIME_ZONE='+00:00' */;\n\
INSERT INTO `tm` VALUES\n\
(1,127,18446744073709551615,3.40282e38,1.7976931348623157e308,99999999999999999999999999999999999.999999999999999999999999999999,-1234567890.0123456789,\"\x01\",\"\x15U\",\"\xff\xff\xff\xff\xff\xff\xff\xff\",2155,\"9999-12-31\",\"9999-12-31 23:59:59.999999\",\"2038-01-19 03:14:07\",\"2038-01-19 03:14:07.99\",\"-838:59:58.9\",\"abc\",\"\xe9\xffA\",\"\\0\x01\\0\\0\",\"\xff\\0\",\"line1\\nline2 \\' \\\" \\\\ \t \\r \\0 \\Z %\",\"\\0\xff\x7f\x80\",\"c\",\"x,z\",CONVERT(\"{\\\"a\\\": [1, 2.5, \\\"x\\\\n\\'\\\", null, true]}\" USING UTF8MB4),\"\\0\\0\\0\\0\x01\x01\\0\\0\\0\\0\\0\\0\\0\\0\\0\xf0?\\0\\0\\0\\0\\0\\0\\0@\"),\n\
(2,-128,0,-1.17549e-38,-2.2250738585072014e-308,0.000000000000000000000000000000,0.0000000001,\"\\0\",\"\\0\\0\",\"\\0\\0\\0\\0\\0\\0\\0\\0\",0000,\"0000-00-00\",\"0000-00-00 00:00:00.000000\",\"1970-01-01 00:00:01\",\"0000-00-00 00:00:00.00\",\"-00:00:00.1\",\"\",\"\",\"\\0\\0\\0\\0\",\"\",\"\",\"\",\"\",\"\",CONVERT(\"[]\" USING UTF8MB4),NULL),\n\
(3,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL);\n";

    fn rows_of(data: &[u8], s: &TableSchema) -> Result<Vec<Row>, MydumperError> {
        let mut out = Vec::new();
        read_rows(data, "test.sql", s, |r| {
            out.push(r);
            Ok::<_, MydumperError>(())
        })?;
        Ok(out)
    }

    fn ymd(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn real_dump_converts_exactly() {
        let rows = rows_of(REAL_DUMP, &matrix_schema()).expect("parses");
        assert_eq!(rows.len(), 3);
        let max_ts = (2_147_483_647i64) * 1_000_000;
        let point = {
            let mut g = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
            g.extend(1.0f64.to_le_bytes());
            g.extend(2.0f64.to_le_bytes());
            g
        };
        assert_eq!(
            rows[0],
            vec![
                Value::Int(1),
                Value::Int(127),
                Value::UInt(u64::MAX),
                Value::Float(3.40282e38),
                Value::Double(f64::MAX),
                Value::Decimal(
                    "99999999999999999999999999999999999.999999999999999999999999999999".into()
                ),
                Value::Decimal("-1234567890.0123456789".into()),
                Value::Bit(1),
                Value::Bit(0b1010101010101),
                Value::Bit(u64::MAX),
                Value::Year(2155),
                Value::Date(ymd(9999, 12, 31)),
                Value::DateTime(DateTime {
                    date: ymd(9999, 12, 31),
                    hour: 23,
                    minute: 59,
                    second: 59,
                    micros: 999_999
                }),
                Value::Timestamp(max_ts),
                Value::Timestamp(max_ts + 990_000),
                Value::Time(-(838 * 3600 + 59 * 60 + 58) * 1_000_000 - 900_000),
                Value::Str(b"abc".to_vec()),
                Value::Str(vec![0xe9, 0xff, b'A']),
                Value::Bytes(vec![0, 1, 0, 0]),
                Value::Bytes(vec![0xff, 0]),
                Value::Str(b"line1\nline2 ' \" \\ \t \r \0 \x1a %".to_vec()),
                Value::Bytes(vec![0, 0xff, 0x7f, 0x80]),
                Value::Enum(3),
                Value::Set(0b101),
                Value::Json("{\"a\": [1, 2.5, \"x\\n'\", null, true]}".into()),
                Value::Geometry(point),
            ]
        );
        assert_eq!(
            utc_datetime(max_ts).to_mysql_string(0),
            "2038-01-19 03:14:07"
        );
        assert_eq!(
            rows[1],
            vec![
                Value::Int(2),
                Value::Int(-128),
                Value::UInt(0),
                Value::Float(-1.17549e-38),
                Value::Double(-2.2250738585072014e-308),
                Value::Decimal("0.000000000000000000000000000000".into()),
                Value::Decimal("0.0000000001".into()),
                Value::Bit(0),
                Value::Bit(0),
                Value::Bit(0),
                Value::Year(0),
                Value::Date(ymd(0, 0, 0)),
                Value::DateTime(DateTime::ZERO),
                Value::Timestamp(1_000_000),
                Value::Timestamp(0),
                Value::Time(-100_000),
                Value::Str(vec![]),
                Value::Str(vec![]),
                Value::Bytes(vec![0; 4]),
                Value::Bytes(vec![]),
                Value::Str(vec![]),
                Value::Bytes(vec![]),
                Value::Enum(0),
                Value::Set(0),
                Value::Json("[]".into()),
                Value::Null,
            ]
        );
        assert!(rows[2][1..].iter().all(Value::is_null));
    }

    #[test]
    fn string_escapes_are_mysqls() {
        let s = schema(vec![col("id", ColumnType::Int), col("v", ColumnType::Blob)]);
        let data = b"/*!40101 SET NAMES binary*/;\nINSERT INTO `tm` VALUES (1,'a''b\\%\\_\\x\\b\\t'),(2,\"q\"\"\");";
        let rows = rows_of(data, &s).expect("parses");
        assert_eq!(rows[0][1], Value::Str(b"a'b\\%\\_x\x08\t".to_vec()));
        assert_eq!(rows[1][1], Value::Str(b"q\"".to_vec()));
    }

    #[test]
    fn column_lists_map_by_name_and_generated_columns_stay_null() {
        let mut g = col("gen", ColumnType::BigInt);
        g.generated = true;
        let mut inv = col("inv", ColumnType::Int);
        inv.invisible = true;
        let s = schema(vec![
            col("id", ColumnType::Int),
            col("i", ColumnType::Int),
            g,
            inv,
        ]);
        let data = b"/*!40101 SET NAMES binary*/;\n\
INSERT IGNORE INTO `tm` (`inv`,`id`,`i`) VALUES\n(7,1,5),\n(NULL,2,NULL);\n";
        let rows = rows_of(data, &s).expect("parses");
        assert_eq!(
            rows,
            vec![
                vec![Value::Int(1), Value::Int(5), Value::Null, Value::Int(7)],
                vec![Value::Int(2), Value::Null, Value::Null, Value::Null],
            ]
        );
        // mydumper 0.10 without a column list leaves invisible columns out.
        let data = b"/*!40101 SET NAMES binary*/;\nINSERT INTO `tm` VALUES (1,5,6);\n";
        let e = rows_of(data, &s).unwrap_err().to_string();
        assert!(e.contains("INVISIBLE column(s) inv"), "{e}");
    }

    #[test]
    fn errors_name_file_table_column_and_literal() {
        let s = schema(vec![
            col("id", ColumnType::Int),
            members(col("e", ColumnType::Enum), &["a", "b"]),
        ]);
        let head = "/*!40101 SET NAMES binary*/;\n/*!40103 SET TIME_ZONE='+00:00' */;\n";
        let cases = [
            (
                "INSERT INTO `tm` VALUES (1,\"zz\");",
                "value \"zz\" of mdx.tm.e",
            ),
            (
                "INSERT INTO `tm` VALUES (300000000000,\"a\");",
                "out of the column's range",
            ),
            ("INSERT INTO `tm` VALUES (1,\"a\"),(2,\"b", "truncated"),
            ("INSERT INTO `tm` VALUES (1,\"a\")", "truncated"),
            (
                "INSERT INTO `other` VALUES (1,\"a\");",
                "inserts into table `other`",
            ),
            ("INSERT INTO `tm` VALUES (1);", "has 1 values"),
            ("INSERT INTO `tm` VALUES (1,2,3);", "has 3 values"),
            ("DROP TABLE `tm`;", "unexpected statement \"DROP\""),
            ("INSERT INTO `tm` VALUES (1,\"a\" \"b\");", "between values"),
            ("INSERT INTO `tm` VALUES (1e3,\"a\");", "not an integer"),
            ("INSERT INTO `tm` VALUES (1,3);", "index beyond"),
        ];
        for (sql, want) in cases {
            let e = rows_of(format!("{head}{sql}").as_bytes(), &s)
                .unwrap_err()
                .to_string();
            assert!(e.contains("test.sql") && e.contains(want), "{sql}: {e}");
        }
        let e = rows_of(b"INSERT INTO `tm` VALUES (1,\"a\");", &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SET NAMES binary"), "{e}");
        // TIMESTAMPs need the UTC header (--skip-tz-utc dumps are in an unknown zone).
        let ts = schema(vec![col("ts", ColumnType::Timestamp { fsp: 0 })]);
        let e = rows_of(
            b"/*!40101 SET NAMES binary*/;\nINSERT INTO `tm` VALUES (\"2001-01-01 00:00:00\");",
            &ts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--skip-tz-utc") && e.contains("mdx.tm.ts"),
            "{e}"
        );
    }

    #[test]
    fn literal_edge_cases() {
        use ColumnType as T;
        let tz = true;
        let c = |ty| col("c", ty);
        let num = |s: &str| Lit::Number(s.into());
        let q = |s: &[u8]| Lit::Quoted(s.to_vec());
        let dec = |p, s| T::Decimal {
            precision: p,
            scale: s,
        };
        assert_eq!(
            convert(&c(dec(5, 2)), &num("-0.00"), tz),
            Ok(Value::Decimal("0.00".into()))
        );
        assert_eq!(
            convert(&c(dec(5, 2)), &num("007.5"), tz),
            Ok(Value::Decimal("7.50".into()))
        );
        assert_eq!(
            convert(&c(dec(5, 0)), &num("-99999"), tz),
            Ok(Value::Decimal("-99999".into()))
        );
        assert!(convert(&c(dec(5, 2)), &num("1.005"), tz).is_err());
        assert!(convert(&c(dec(5, 2)), &num("1000.00"), tz).is_err());
        assert!(convert(&unsigned(c(dec(5, 2))), &num("-1.00"), tz).is_err());
        assert!(convert(&c(T::Double), &num("inf"), tz).is_err());
        assert!(convert(&c(T::Double), &num("1e999"), tz).is_err());
        assert!(convert(&c(T::Float), &num("1e39"), tz).is_err());
        assert_eq!(
            convert(&c(T::Float), &num("0.1"), tz),
            Ok(Value::Float(0.1))
        );
        assert_eq!(
            convert(&c(T::Double), &num("5e-324"), tz),
            Ok(Value::Double(5e-324))
        );
        assert_eq!(
            convert(&c(T::Bit { bits: 13 }), &q(b"\x15U"), tz),
            Ok(Value::Bit(0x1555))
        );
        assert!(convert(&c(T::Bit { bits: 3 }), &q(b"\x08"), tz).is_err());
        assert_eq!(
            convert(&c(T::Bit { bits: 3 }), &Lit::Bits(5), tz),
            Ok(Value::Bit(5))
        );
        assert!(convert(&c(T::Year), &num("1900"), tz).is_err());
        assert_eq!(
            convert(&c(T::Time { fsp: 0 }), &q(b"838:59:59"), tz),
            Ok(Value::Time(3_020_399_000_000))
        );
        assert!(convert(&c(T::Time { fsp: 0 }), &q(b"839:00:00"), tz).is_err());
        assert!(convert(&c(T::Date), &q(b"2001-13-01"), tz).is_err());
        assert!(
            convert(
                &c(T::DateTime { fsp: 6 }),
                &q(b"2001-01-01 00:00:00.1234567"),
                tz
            )
            .is_err()
        );
        assert!(convert(&c(T::Timestamp { fsp: 0 }), &q(b"2001-00-01 00:00:00"), tz).is_err());
        // The empty ENUM/SET text is ambiguous when '' is also a member.
        let e = members(c(T::Enum), &["", "a"]);
        assert!(convert(&e, &q(b""), tz).is_err());
        assert_eq!(convert(&e, &q(b"a"), tz), Ok(Value::Enum(2)));
        let s = members(c(T::Set), &["", "a"]);
        assert!(convert(&s, &q(b""), tz).is_err());
        assert_eq!(convert(&s, &q(b",a"), tz), Ok(Value::Set(3)));
        // A string column never takes a number or a transcoding introducer.
        assert!(convert(&c(T::VarChar), &num("1"), tz).is_err());
        let latin = Lit::Introduced("latin1".into(), Box::new(q(b"x")));
        assert!(convert(&c(T::VarChar), &latin, tz).is_err());
        // MySQL JSON needs a character set; a binary string is refused by the server too.
        assert!(convert(&c(T::Json), &q(b"[]"), tz).is_err());
    }

    #[test]
    fn reads_what_the_sql_writer_writes() {
        use crate::sql::{DATA_FILE_HEADER, insert_prefix, write_row};
        let s = matrix_schema();
        let mut data = DATA_FILE_HEADER.as_bytes().to_vec();
        let mut want = rows_of(REAL_DUMP, &s).expect("parses");
        want.push(vec![
            Value::Int(4),
            Value::Int(-1),
            Value::UInt(1),
            Value::Float(1.2345678),
            Value::Double(0.1 + 0.2),
            Value::Decimal("-0.000000000000000000000000000001".into()),
            Value::Decimal("1.5000000000".into()),
            Value::Bit(1),
            Value::Bit(8191),
            Value::Bit(1 << 63),
            Value::Year(1901),
            Value::Date(ymd(2000, 2, 29)),
            Value::DateTime(DateTime {
                date: ymd(1000, 1, 1),
                hour: 0,
                minute: 0,
                second: 0,
                micros: 1,
            }),
            Value::Timestamp(1_000_000),
            Value::Timestamp(1_234_567_890_120_000),
            Value::Time(90_000_123_456),
            Value::Str("é😀".as_bytes().to_vec()),
            Value::Str(vec![0xe9]),
            Value::Bytes(b"\0'\\\n".to_vec()),
            Value::Bytes(vec![]),
            Value::Str(b"\x1a\r\"%_\\".to_vec()),
            Value::Bytes(vec![0x1a, 0x5c, 0x27]),
            Value::Enum(1),
            Value::Set(7),
            Value::Json("{\"k\": \"it's\"}".into()),
            Value::Geometry(vec![1, 2, 3]),
        ]);
        for row in &want {
            data.extend(insert_prefix(&s, false));
            write_row(&mut data, &s, row);
            data.extend(b";\n");
        }
        let got = rows_of(&data, &s).expect("parses");
        assert_eq!(got, want);
    }

    proptest::proptest! {
        #[test]
        fn sql_writer_round_trip(
            i in proptest::num::i64::ANY,
            u in proptest::num::u64::ANY,
            f in proptest::num::f32::NORMAL | proptest::num::f32::SUBNORMAL | proptest::num::f32::ZERO,
            d in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            text in ".{0,20}",
            micros in 1_000_000i64..2_147_483_647_999_999,
            time in -3_020_399_000_000i64..=3_020_399_000_000,
        ) {
            use crate::sql::{insert_prefix, write_row, DATA_FILE_HEADER};
            use ColumnType as T;
            let s = schema(vec![
                col("i", T::BigInt),
                unsigned(col("u", T::BigInt)),
                col("f", T::Float),
                col("d", T::Double),
                binary(col("b", T::Blob)),
                col("t", T::VarChar),
                col("raw", T::VarChar),
                col("ts", T::Timestamp { fsp: 6 }),
                col("tm", T::Time { fsp: 6 }),
            ]);
            let row = vec![
                Value::Int(i),
                Value::UInt(u),
                Value::Float(f),
                Value::Double(d),
                Value::Bytes(bytes.clone()),
                Value::Str(text.into_bytes()),
                Value::Str(bytes),
                Value::Timestamp(micros),
                Value::Time(time),
            ];
            let mut data = DATA_FILE_HEADER.as_bytes().to_vec();
            data.extend(insert_prefix(&s, false));
            write_row(&mut data, &s, &row);
            data.push(b';');
            let got = rows_of(&data, &s).expect("parses");
            proptest::prop_assert_eq!(got, vec![row]);
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    fn create(table: &str) -> String {
        format!(
            "/*!40101 SET NAMES binary*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\n\n\
             CREATE TABLE `{}` (\n  `id` int\n);\n",
            table.replace('`', "``")
        )
    }

    fn listing(dir: &Path) -> Vec<(String, String, Vec<String>)> {
        tables(dir)
            .expect("lists")
            .into_iter()
            .map(|t| {
                let files = t
                    .data_files
                    .iter()
                    .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
                    .collect();
                (t.db, t.table, files)
            })
            .collect()
    }

    #[test]
    fn directory_listing_resolves_unescaped_names() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        write(d, "metadata", META_MARIADB);
        write(d, "mdx-schema-create.sql", "CREATE DATABASE `mdx`;");
        write(d, "mdx-schema-post.sql", "");
        for (table, stem) in [
            ("t", "mdx.t"),
            ("big", "mdx.big"),
            ("a.b", "mdx.a.b"),
            ("t.00001", "mdx.t.00001"),
            ("empty", "mdx.empty"),
            ("a-b c", "mdx.a-b c"),
            ("v", "mdx.v"),
        ] {
            write(d, &format!("{stem}-schema.sql"), &create(table));
        }
        write(d, "my.db.x-schema.sql", &create("x"));
        write(d, "my.db.x.sql", "");
        write(d, "mdx.v-schema-view.sql", "CREATE VIEW ...");
        write(d, "mdx.t-schema-triggers.sql", "");
        for f in [
            "mdx.t.sql",
            "mdx.a.b.sql",
            "mdx.t.00001.sql",
            "mdx.a-b c.sql",
            "mdx.big.00010.sql",
            "mdx.big.00002.sql",
            "mdx.big.00000.sql",
            "mdx.big.100000.sql",
        ] {
            write(d, f, "");
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            listing(d),
            vec![
                ("mdx".into(), "a-b c".into(), s(&["mdx.a-b c.sql"])),
                ("mdx".into(), "a.b".into(), s(&["mdx.a.b.sql"])),
                (
                    "mdx".into(),
                    "big".into(),
                    s(&[
                        "mdx.big.00000.sql",
                        "mdx.big.00002.sql",
                        "mdx.big.00010.sql",
                        "mdx.big.100000.sql"
                    ])
                ),
                ("mdx".into(), "empty".into(), vec![]),
                ("mdx".into(), "t".into(), s(&["mdx.t.sql"])),
                ("mdx".into(), "t.00001".into(), s(&["mdx.t.00001.sql"])),
                ("my.db".into(), "x".into(), s(&["my.db.x.sql"])),
            ]
        );
        // `t` chunked too: `mdx.t.00001.sql` could be either table's; refuse.
        std::fs::remove_file(d.join("mdx.t.sql")).expect("rm");
        write(d, "mdx.t.00000.sql", "");
        let e = tables(d).unwrap_err().to_string();
        assert!(e.contains("does not escape names"), "{e}");
        // Orphans (a --no-schemas dump) and compressed dumps are refused with the fix.
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "mdx.t.sql", "");
        let e = tables(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("without -m"), "{e}");
        write(tmp.path(), "mdx.t.sql.gz", "");
        let e = tables(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("gunzip"), "{e}");
    }

    #[test]
    fn reads_files_in_small_buffers() {
        // Every parser path must work when the reader hands out one byte at a time.
        let s = matrix_schema();
        let whole = rows_of(REAL_DUMP, &s).expect("parses");
        let mut got = Vec::new();
        read_rows(BufReader::with_capacity(1, REAL_DUMP), "x", &s, |r| {
            got.push(r);
            Ok::<_, MydumperError>(())
        })
        .expect("parses");
        assert_eq!(got, whole);
    }
}
