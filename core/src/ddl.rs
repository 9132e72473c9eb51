//! Which tables a logged DDL statement affects, read from its text alone.
//!
//! The binlog gives DDL as statement text (a QUERY event); capture records it as
//! `` USE `db`; text `` ([`split_use_prefix`] takes the prefix apart). The restore engine
//! and capture need to know which tables such a statement created, changed, renamed,
//! emptied or dropped, because none of that is logged as row events. [`classify`] answers
//! with a [`Ddl`]: the affected tables in statement order, "no table", or
//! [`Ddl::Unknown`].
//!
//! Invariant: a [`Ddl::Tables`] answer lists every table whose rows or layout the statement
//! can have changed, and [`Ddl::NoTables`] is given only for statement kinds that change no
//! table's rows or layout (views, triggers, routines, events, accounts, databases'
//! options, `ANALYZE`, `FLUSH`, savepoints). A wrong `NoTables`, or a missing table, would
//! make a restore silently wrong, while a wrong `Unknown` only costs work (callers treat it
//! as possibly affecting every table). So anything this reading does not fully understand
//! is `Unknown`, with the reason. In particular:
//!
//! - The text is read under every `sql_mode` reading that matters to it (`ANSI_QUOTES`
//!   makes `"x"` a name, `NO_BACKSLASH_ESCAPES` changes where strings end) and for every
//!   server version an executable comment distinguishes (`/*!NNNNN ... */` runs on servers
//!   at version NNNNN or later, `/*M!NNNNNN ... */` on MariaDB only:
//!   <https://dev.mysql.com/doc/refman/9.0/en/comments.html>,
//!   <https://mariadb.com/kb/en/comment-syntax/>). Readings the server would have rejected
//!   (an unterminated string) are dropped, since the statement was logged; if the
//!   remaining readings disagree, the answer is `Unknown`. Comments at or below `80000`
//!   run on every supported server (MySQL 8.0 and later, MariaDB 10.6 and later), so
//!   mysqldump's `/*!40101 ... */` is simply read.
//! - Names are returned as written; whether `Orders` and `orders` are the same table
//!   depends on the server's `lower_case_table_names`, which the caller knows.
//! - A temporary table can shadow a real one of the same name within its session. Under
//!   `binlog_format=ROW` statements on temporary tables are not logged; a logged
//!   `CREATE TEMPORARY TABLE` shows that a session logs them, so it is `Unknown`
//!   (<https://dev.mysql.com/doc/refman/9.0/en/replication-features-temptables.html>).
//!   `DROP TEMPORARY TABLE` drops only temporary tables, so it is `NoTables`
//!   (<https://dev.mysql.com/doc/refman/9.0/en/drop-table.html>).
use crate::schema::TableRef;

/// What one statement did to one table (or database). A statement's effects are listed
/// in the order the server applied them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdlEffect {
    /// The table exists after the statement. Unless `if_not_exists`, it did not exist
    /// before; with `IF NOT EXISTS` an existing table is left as it was, rows and layout.
    Create {
        /// The created table.
        table: TableRef,
        /// The statement said `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// The table was changed in place under the same name: its layout may differ, and its
    /// rows may have changed without row events (dropped columns, converted values,
    /// dropped or truncated partitions, exchanged partitions, `IMPORT TABLESPACE`,
    /// `REPAIR TABLE`, `OPTIMIZE TABLE`'s rebuild).
    Alter(TableRef),
    /// The table's rows and layout are now under `to`; `from` no longer exists.
    Rename {
        /// The old name.
        from: TableRef,
        /// The new name.
        to: TableRef,
    },
    /// Every row was removed without row events; the layout is unchanged.
    Truncate(TableRef),
    /// The table (if it existed) is gone.
    Drop(TableRef),
    /// The database (if it existed) and every table in it are gone.
    DropDatabase(String),
}

/// What a logged statement does to tables, as far as its text tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ddl {
    /// Understood: exactly these effects, in order, and no other table is touched.
    Tables(Vec<DdlEffect>),
    /// Understood, and no table's rows or layout change.
    NoTables,
    /// Not understood (the reason says what): treat as possibly affecting every table.
    Unknown(String),
}

/// Splits the `` USE `db`; `` prefix capture puts before a statement logged with a
/// default database: `` "USE `d``b`; DROP TABLE t" `` gives `(Some("d`b"), "DROP TABLE t")`.
/// Text without that exact prefix is returned whole, with `None`.
pub fn split_use_prefix(recorded: &str) -> (Option<String>, &str) {
    let Some(rest) = recorded.strip_prefix("USE `") else {
        return (None, recorded);
    };
    let mut db = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '`' {
            db.push(c);
            continue;
        }
        if rest[i + 1..].starts_with('`') {
            db.push('`');
            chars.next();
            continue;
        }
        return match rest[i + 1..].strip_prefix("; ") {
            Some(text) => (Some(db), text),
            None => (None, recorded),
        };
    }
    (None, recorded)
}

/// Classifies a recorded statement: [`split_use_prefix`], then [`classify`] with the
/// prefix's database as the default (none: unqualified names are `Unknown`).
pub fn classify_recorded(recorded: &str) -> Ddl {
    let (db, text) = split_use_prefix(recorded);
    classify(text, db.as_deref().unwrap_or(""))
}

/// Classifies one statement's text; unqualified table names belong to `default_db` (the
/// session's database when the statement ran; empty when it had none).
pub fn classify(statement: &str, default_db: &str) -> Ddl {
    let mut modes = vec![Mode {
        backslash_escapes: true,
        ansi_quotes: false,
    }];
    if statement.contains('\\') {
        modes.push(Mode {
            backslash_escapes: false,
            ansi_quotes: false,
        });
    }
    if statement.contains('"') {
        let plain = modes.clone();
        modes.extend(plain.into_iter().map(|m| Mode {
            ansi_quotes: true,
            ..m
        }));
    }
    let mut readings: Vec<Ddl> = Vec::new();
    let mut lex_error = None;
    for mode in modes {
        let toks = match lex(statement, mode) {
            Ok(t) => t,
            // The server rejects this reading's text, so the session did not use it.
            Err(LexError::Invalid(reason)) => {
                lex_error.get_or_insert(reason);
                continue;
            }
            Err(LexError::Unsupported(reason)) => return Ddl::Unknown(reason),
        };
        let servers = servers(&toks);
        if servers.len() > MAX_READINGS {
            return Ddl::Unknown(
                "too many executable comments with different versions".to_string(),
            );
        }
        for (mariadb, version) in servers {
            let kept: Vec<&Tok> = toks
                .iter()
                .filter(|(_, c)| c.runs_on(mariadb, version))
                .map(|(t, _)| t)
                .collect();
            readings.push(parse(&kept, default_db));
        }
    }
    let Some(first) = readings.first() else {
        return Ddl::Unknown(lex_error.unwrap_or_else(|| "empty statement".to_string()));
    };
    if readings.iter().all(|r| r == first) || matches!(first, Ddl::Unknown(_)) {
        return first.clone();
    }
    Ddl::Unknown(
        "the statement reads differently depending on sql_mode (ANSI_QUOTES, \
         NO_BACKSLASH_ESCAPES) or on the server's version (executable comments)"
            .to_string(),
    )
}

/// The tokens of `text` read with backslash escapes and without `ANSI_QUOTES` (the defaults),
/// for readers of statements whose names are all that matters ([`crate::objects`]): an
/// executable comment that depends on the server's version, or unterminated text, is an error.
pub(crate) fn plain_tokens(text: &str) -> Result<Vec<Tok>, String> {
    let toks = lex(
        text,
        Mode {
            backslash_escapes: true,
            ansi_quotes: false,
        },
    )
    .map_err(|e| match e {
        LexError::Invalid(r) | LexError::Unsupported(r) => r,
    })?;
    if toks.iter().any(|(_, c)| *c != Cond::Always) {
        return Err("an executable comment that depends on the server's version".into());
    }
    Ok(toks.into_iter().map(|(t, _)| t).collect())
}

/// Executable comments at or below this version run on every supported server
/// (MySQL 8.0.0 and later, MariaDB 10.6 and later).
const EVERY_SERVER: u32 = 80000;

/// At most this many server readings per `sql_mode` reading (bounds the work on odd text).
const MAX_READINGS: usize = 32;

/// How the lexer reads quotes (the `sql_mode` flags that change token boundaries).
#[derive(Clone, Copy, Debug)]
struct Mode {
    backslash_escapes: bool,
    ansi_quotes: bool,
}

/// A token. Keywords are [`Tok::Word`]s; only they are compared with keywords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An unquoted identifier, keyword or number.
    Word(String),
    /// A quoted identifier, unescaped.
    Ident(String),
    /// A string literal (its content is never needed).
    Str,
    /// Any other character.
    Punct(char),
}

/// Which servers read a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cond {
    /// Every supported server.
    Always,
    /// Servers at this version or later (`/*!NNNNN ... */` above [`EVERY_SERVER`]).
    Version(u32),
    /// MariaDB at this version or later (`/*M!NNNNNN ... */`, 0 without a version).
    Mariadb(u32),
}

impl Cond {
    fn runs_on(self, mariadb: bool, version: u32) -> bool {
        match self {
            Cond::Always => true,
            Cond::Version(v) => v <= version,
            Cond::Mariadb(v) => mariadb && v <= version,
        }
    }
}

/// The (is MariaDB, version) pairs that read `toks` differently: one when no executable
/// comment depends on the server, else every flavor with every version boundary (more
/// readings than real servers only makes the answer more cautious).
fn servers(toks: &[(Tok, Cond)]) -> Vec<(bool, u32)> {
    let mut versions: Vec<u32> = toks
        .iter()
        .filter_map(|(_, c)| match c {
            Cond::Always => None,
            Cond::Version(v) | Cond::Mariadb(v) => Some(*v),
        })
        .collect();
    if versions.is_empty() {
        return vec![(false, 0)];
    }
    versions.push(0);
    versions.sort_unstable();
    versions.dedup();
    [true, false]
        .into_iter()
        .flat_map(|m| versions.iter().rev().map(move |v| (m, *v)))
        .collect()
}

enum LexError {
    /// The server would reject the text in this reading (an unterminated string).
    Invalid(String),
    /// A form this reading does not follow.
    Unsupported(String),
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

fn is_space(c: char) -> bool {
    c.is_ascii_whitespace() || c == '\u{0b}'
}

fn lex(text: &str, mode: Mode) -> Result<Vec<(Tok, Cond)>, LexError> {
    let c: Vec<char> = text.chars().collect();
    let unsupported = |s: &str| Err(LexError::Unsupported(s.to_string()));
    let mut out = Vec::new();
    let mut exec: Option<Cond> = None;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if is_space(ch) {
            i += 1;
        } else if ch == '/' && next == Some('*') {
            if exec.is_some() {
                return unsupported("a comment inside an executable comment");
            }
            let (mariadb, skip) = match (c.get(i + 2), c.get(i + 3)) {
                (Some('!'), _) => (false, 3),
                (Some('M'), Some('!')) => (true, 4),
                _ => {
                    let end = (i + 2..c.len().saturating_sub(1))
                        .find(|&j| c[j] == '*' && c[j + 1] == '/');
                    match end {
                        Some(e) => i = e + 2,
                        None => return unsupported("an unterminated comment"),
                    }
                    continue;
                }
            };
            let start = i + skip;
            let digits = c[start..].iter().take_while(|d| d.is_ascii_digit()).count();
            let version: u32 = match digits {
                0 => 0,
                5 | 6 => c[start..start + digits]
                    .iter()
                    .fold(0, |n, d| n * 10 + d.to_digit(10).unwrap_or(0)),
                _ => return unsupported("an executable comment's version is not 5 or 6 digits"),
            };
            exec = Some(if mariadb {
                Cond::Mariadb(version)
            } else if version <= EVERY_SERVER {
                Cond::Always
            } else {
                Cond::Version(version)
            });
            i = start + digits;
        } else if ch == '*' && next == Some('/') && exec.is_some() {
            exec = None;
            i += 2;
        } else if ch == '#'
            || (ch == '-'
                && next == Some('-')
                && c.get(i + 2)
                    .is_none_or(|x| is_space(*x) || x.is_ascii_control()))
        {
            if exec.is_some() {
                return unsupported("a comment inside an executable comment");
            }
            match c[i..].iter().position(|x| *x == '\n') {
                Some(e) => i += e + 1,
                None => i = c.len(),
            }
        } else {
            let cond = exec.unwrap_or(Cond::Always);
            let tok = match ch {
                '`' => {
                    let (s, end) = quoted(&c, i, '`', false)?;
                    i = end;
                    Tok::Ident(s)
                }
                '"' if mode.ansi_quotes => {
                    let (s, end) = quoted(&c, i, '"', false)?;
                    i = end;
                    Tok::Ident(s)
                }
                '\'' | '"' => {
                    let (_, end) = quoted(&c, i, ch, mode.backslash_escapes)?;
                    i = end;
                    Tok::Str
                }
                _ if is_ident_char(ch) => {
                    let n = c[i..].iter().take_while(|x| is_ident_char(**x)).count();
                    let w: String = c[i..i + n].iter().collect();
                    i += n;
                    Tok::Word(w)
                }
                _ => {
                    i += 1;
                    Tok::Punct(ch)
                }
            };
            out.push((tok, cond));
        }
    }
    if exec.is_some() {
        return unsupported("an unterminated executable comment");
    }
    Ok(out)
}

/// Reads quoted text starting at `c[start]` (the quote): the unescaped content and the
/// index after the closing quote. A doubled quote stands for itself.
fn quoted(c: &[char], start: usize, q: char, backslash: bool) -> Result<(String, usize), LexError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match c.get(i) {
            None => return Err(LexError::Invalid(format!("unterminated {q}-quoted text"))),
            Some('\\') if backslash => {
                if let Some(n) = c.get(i + 1) {
                    s.push(*n);
                }
                i += 2;
            }
            Some(x) if *x == q => {
                if c.get(i + 1) == Some(&q) {
                    s.push(q);
                    i += 2;
                } else {
                    return Ok((s, i + 1));
                }
            }
            Some(x) => {
                s.push(*x);
                i += 1;
            }
        }
    }
}

/// Reserved words that are never an unquoted table name; seeing one where a name belongs
/// means this reading went wrong.
const NOT_A_NAME: &[&str] = &[
    "ALTER",
    "AND",
    "AS",
    "COLUMN",
    "CREATE",
    "DROP",
    "EXISTS",
    "FROM",
    "IF",
    "INDEX",
    "KEY",
    "LIKE",
    "NOT",
    "ON",
    "OR",
    "PARTITION",
    "RENAME",
    "SELECT",
    "SET",
    "TABLE",
    "TO",
    "USING",
    "WHERE",
    "WITH",
];

type R<T> = Result<T, String>;

fn parse(toks: &[&Tok], default_db: &str) -> Ddl {
    let mut toks = toks;
    while let [rest @ .., Tok::Punct(';')] = toks {
        toks = rest;
    }
    if toks.is_empty() {
        return Ddl::Unknown("empty statement".to_string());
    }
    let mut p = P {
        t: toks,
        i: 0,
        db: default_db,
        body: false,
    };
    match p.statement() {
        Ok(_) if !p.body && toks.iter().any(|t| **t == Tok::Punct(';')) => {
            Ddl::Unknown("more than one statement".to_string())
        }
        Ok(d) => d,
        Err(reason) => Ddl::Unknown(reason),
    }
}

fn is_word(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

fn is_number(t: &Tok) -> bool {
    matches!(t, Tok::Word(w) if all_digits(w))
}

fn all_digits(w: &str) -> bool {
    w.bytes().all(|b| b.is_ascii_digit())
}

/// Modifiers between `CREATE`/`ALTER` and the object kind.
#[derive(Default)]
struct Mods {
    or_replace: bool,
    temporary: bool,
    /// `ALGORITHM=`, `SQL SECURITY` (views).
    view: bool,
    definer: bool,
    /// `UNIQUE`, `FULLTEXT`, `SPATIAL`, `ONLINE`, `OFFLINE`, `IGNORE` (indexes, tables).
    index: bool,
    aggregate: bool,
    undo: bool,
}

impl Mods {
    /// True when only the modifiers in `allowed` (by name) were given, `OR REPLACE` aside.
    fn only(&self, allowed: &[&str]) -> bool {
        let given = [
            ("temporary", self.temporary),
            ("view", self.view),
            ("definer", self.definer),
            ("index", self.index),
            ("aggregate", self.aggregate),
            ("undo", self.undo),
        ];
        given.iter().all(|(n, on)| !on || allowed.contains(n))
    }
}

struct P<'a> {
    t: &'a [&'a Tok],
    i: usize,
    db: &'a str,
    /// The statement is a compound definition (routine, trigger, event) whose body may
    /// hold `;`.
    body: bool,
}

impl P<'_> {
    fn at(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k).copied()
    }

    fn is(&self, kw: &str) -> bool {
        self.at(0).is_some_and(|t| is_word(t, kw))
    }

    fn eat(&mut self, kw: &str) -> bool {
        let yes = self.is(kw);
        if yes {
            self.i += 1;
        }
        yes
    }

    /// Consumes the keywords `kws` if all come next, else nothing.
    fn eat_seq(&mut self, kws: &[&str]) -> bool {
        let yes = kws
            .iter()
            .enumerate()
            .all(|(k, kw)| self.at(k).is_some_and(|t| is_word(t, kw)));
        if yes {
            self.i += kws.len();
        }
        yes
    }

    fn expect(&mut self, kw: &str) -> R<()> {
        if self.eat(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw} {}", self.here()))
        }
    }

    fn punct(&mut self, c: char) -> bool {
        let yes = self.at(0) == Some(&Tok::Punct(c));
        if yes {
            self.i += 1;
        }
        yes
    }

    fn done(&self) -> bool {
        self.i >= self.t.len()
    }

    /// Where the reading stands, for reasons.
    fn here(&self) -> String {
        match self.at(0) {
            None => "at the end".to_string(),
            Some(Tok::Word(w)) => format!("at {w:?}"),
            Some(Tok::Ident(s)) => format!("at `{s}`"),
            Some(Tok::Str) => "at a string".to_string(),
            Some(Tok::Punct(c)) => format!("at {c:?}"),
        }
    }

    /// One name part: a quoted identifier or an unquoted non-reserved word.
    fn name(&mut self) -> R<String> {
        let n = match self.at(0) {
            Some(Tok::Ident(s)) if !s.is_empty() => s.clone(),
            Some(Tok::Word(w))
                if !NOT_A_NAME.iter().any(|k| w.eq_ignore_ascii_case(k)) && !all_digits(w) =>
            {
                w.clone()
            }
            _ => return Err(format!("expected a name {}", self.here())),
        };
        self.i += 1;
        Ok(n)
    }

    /// `name` or `db.name`; unqualified names belong to the default database.
    fn table(&mut self) -> R<TableRef> {
        let first = self.name()?;
        if self.punct('.') {
            let table = self.name()?;
            return Ok(TableRef::new(first, table));
        }
        if self.db.is_empty() {
            return Err(format!(
                "table {first:?} is not qualified and there is no default database"
            ));
        }
        Ok(TableRef::new(self.db, first))
    }

    /// `t [, t]...`.
    fn tables(&mut self) -> R<Vec<TableRef>> {
        let mut v = vec![self.table()?];
        while self.punct(',') {
            v.push(self.table()?);
        }
        Ok(v)
    }

    /// MariaDB's `WAIT n` / `NOWAIT`.
    fn lock_wait(&mut self) {
        if self.eat("NOWAIT") {
            return;
        }
        if self.is("WAIT") && self.at(1).is_some_and(is_number) {
            self.i += 2;
        }
    }

    /// The rest must be only these keywords, numbers and `=`.
    fn trailing(&mut self, allowed: &[&str], what: &str) -> R<()> {
        while let Some(t) = self.at(0) {
            let ok = is_number(t) || *t == Tok::Punct('=') || allowed.iter().any(|k| is_word(t, k));
            if !ok {
                return Err(format!("unexpected text after {what} {}", self.here()));
            }
            self.i += 1;
        }
        Ok(())
    }

    /// A `DEFINER` account: `CURRENT_USER[()]` or `name[@host]`.
    fn user(&mut self) -> R<()> {
        if self.eat("CURRENT_USER") {
            if self.punct('(') && !self.punct(')') {
                return Err(format!("expected ) {}", self.here()));
            }
            return Ok(());
        }
        let part = |p: &mut Self| match p.at(0) {
            Some(Tok::Word(_) | Tok::Ident(_) | Tok::Str) => {
                p.i += 1;
                Ok(())
            }
            _ => Err(format!("expected an account name {}", p.here())),
        };
        part(self)?;
        if self.punct('@') {
            part(self)?;
        }
        Ok(())
    }

    fn mods(&mut self) -> R<Mods> {
        let mut m = Mods::default();
        loop {
            if self.eat_seq(&["OR", "REPLACE"]) {
                m.or_replace = true;
            } else if self.eat("ALGORITHM") {
                self.punct('=');
                self.name()?;
                m.view = true;
            } else if self.eat("DEFINER") {
                self.punct('=');
                self.user()?;
                m.definer = true;
            } else if self.eat_seq(&["SQL", "SECURITY"]) {
                self.name()?;
                m.view = true;
            } else if self.eat("TEMPORARY") {
                m.temporary = true;
            } else if ["UNIQUE", "FULLTEXT", "ONLINE", "OFFLINE", "IGNORE"]
                .iter()
                .any(|k| self.is(k))
                // SPATIAL REFERENCE SYSTEM is an object kind, not an index modifier.
                || (self.is("SPATIAL") && !self.at(1).is_some_and(|t| is_word(t, "REFERENCE")))
            {
                self.i += 1;
                m.index = true;
            } else if self.eat("AGGREGATE") {
                m.aggregate = true;
            } else if self.eat("UNDO") {
                m.undo = true;
            } else {
                return Ok(m);
            }
        }
    }

    fn statement(&mut self) -> R<Ddl> {
        let Some(Tok::Word(first)) = self.at(0) else {
            return Err(format!("a statement cannot start {}", self.here()));
        };
        let first = first.to_ascii_uppercase();
        self.i += 1;
        match first.as_str() {
            "CREATE" => self.create(),
            "ALTER" => self.alter(),
            "DROP" => self.drop(),
            "RENAME" => self.rename(),
            "TRUNCATE" => {
                self.eat("TABLE");
                let t = self.table()?;
                self.trailing(&["WAIT", "NOWAIT"], "TRUNCATE TABLE")?;
                Ok(Ddl::Tables(vec![DdlEffect::Truncate(t)]))
            }
            "OPTIMIZE" | "REPAIR" => {
                let _ = self.eat("NO_WRITE_TO_BINLOG") || self.eat("LOCAL");
                if !(self.eat("TABLE") || self.eat("TABLES")) {
                    return Err(format!("{first} is not followed by TABLE"));
                }
                let tables = self.tables()?;
                self.trailing(
                    &["QUICK", "EXTENDED", "USE_FRM", "FORCE", "WAIT", "NOWAIT"],
                    &format!("{first} TABLE"),
                )?;
                Ok(Ddl::Tables(
                    tables.into_iter().map(DdlEffect::Alter).collect(),
                ))
            }
            "ANALYZE" => {
                let _ = self.eat("NO_WRITE_TO_BINLOG") || self.eat("LOCAL");
                if self.eat("TABLE") || self.eat("TABLES") {
                    Ok(Ddl::NoTables)
                } else {
                    // MariaDB's ANALYZE SELECT/UPDATE/DELETE runs the statement.
                    Err("ANALYZE is not followed by TABLE".to_string())
                }
            }
            "GRANT" | "REVOKE" | "FLUSH" | "SAVEPOINT" => Ok(Ddl::NoTables),
            "RELEASE" if self.is("SAVEPOINT") => Ok(Ddl::NoTables),
            "SET" if self.is("PASSWORD") || self.eat_seq(&["DEFAULT", "ROLE"]) => Ok(Ddl::NoTables),
            "INSTALL" | "UNINSTALL"
                if self.is("PLUGIN") || self.is("COMPONENT") || self.is("SONAME") =>
            {
                Ok(Ddl::NoTables)
            }
            // ROLLBACK TO SAVEPOINT undoes logged row changes; XA, DML, ... are not DDL.
            _ => Err(format!("{first} statements are not understood")),
        }
    }

    fn create(&mut self) -> R<Ddl> {
        let m = self.mods()?;
        let Some(Tok::Word(kind)) = self.at(0) else {
            return Err(format!("expected what CREATE makes {}", self.here()));
        };
        let kind = kind.to_ascii_uppercase();
        self.i += 1;
        match kind.as_str() {
            "TABLE" if m.only(&["temporary"]) => {
                let if_not_exists = self.eat_seq(&["IF", "NOT", "EXISTS"]);
                let table = self.table()?;
                if m.temporary {
                    return Err(
                        "CREATE TEMPORARY TABLE: a session logs statements on temporary \
                         tables, which later statements name like real tables"
                            .to_string(),
                    );
                }
                if m.or_replace && if_not_exists {
                    return Err("CREATE OR REPLACE TABLE with IF NOT EXISTS".to_string());
                }
                // The rest (columns, LIKE, SELECT, options) names no other changed table.
                let mut effects = Vec::new();
                if m.or_replace {
                    effects.push(DdlEffect::Drop(table.clone()));
                }
                effects.push(DdlEffect::Create {
                    table,
                    if_not_exists,
                });
                Ok(Ddl::Tables(effects))
            }
            "INDEX" if m.only(&["index"]) => {
                self.eat_seq(&["IF", "NOT", "EXISTS"]);
                self.name()?;
                if self.eat("USING") {
                    self.name()?;
                }
                self.expect("ON")?;
                let t = self.table()?;
                Ok(Ddl::Tables(vec![DdlEffect::Alter(t)]))
            }
            "VIEW" if m.only(&["view", "definer"]) => Ok(Ddl::NoTables),
            "TRIGGER" | "PROCEDURE" | "EVENT" | "PACKAGE" if m.only(&["definer"]) => {
                self.body = true;
                Ok(Ddl::NoTables)
            }
            "FUNCTION" if m.only(&["definer", "aggregate"]) => {
                self.body = true;
                Ok(Ddl::NoTables)
            }
            // MariaDB's CREATE OR REPLACE DATABASE drops the old database first.
            "DATABASE" | "SCHEMA" if m.only(&[]) && m.or_replace => {
                let db = self.name()?;
                Ok(Ddl::Tables(vec![DdlEffect::DropDatabase(db)]))
            }
            "DATABASE" | "SCHEMA" | "USER" | "ROLE" | "SERVER" | "LOGFILE" | "RESOURCE"
                if m.only(&[]) =>
            {
                Ok(Ddl::NoTables)
            }
            "TABLESPACE" if m.only(&["undo"]) => Ok(Ddl::NoTables),
            "SPATIAL" if m.only(&[]) && self.eat_seq(&["REFERENCE", "SYSTEM"]) => Ok(Ddl::NoTables),
            // SEQUENCE (MariaDB: a table of its own), unexpected modifiers, ...
            _ => Err(format!("CREATE {kind} is not understood")),
        }
    }

    fn alter(&mut self) -> R<Ddl> {
        let m = self.mods()?;
        let Some(Tok::Word(kind)) = self.at(0) else {
            return Err(format!("expected what ALTER changes {}", self.here()));
        };
        let kind = kind.to_ascii_uppercase();
        self.i += 1;
        match kind.as_str() {
            "TABLE" if m.only(&["index"]) && !m.or_replace => {
                self.eat_seq(&["IF", "EXISTS"]);
                let t = self.table()?;
                self.lock_wait();
                self.alter_specs(t)
            }
            "VIEW" if m.only(&["view", "definer"]) => Ok(Ddl::NoTables),
            "EVENT" | "PROCEDURE" | "FUNCTION" if m.only(&["definer"]) => {
                self.body = true;
                Ok(Ddl::NoTables)
            }
            "DATABASE" | "SCHEMA" | "USER" | "ROLE" | "SERVER" | "LOGFILE" | "RESOURCE"
            | "INSTANCE"
                if m.only(&[]) =>
            {
                Ok(Ddl::NoTables)
            }
            "TABLESPACE" if m.only(&["undo"]) => Ok(Ddl::NoTables),
            _ => Err(format!("ALTER {kind} is not understood")),
        }
    }

    /// The comma-separated clauses of `ALTER TABLE t`: `RENAME [TO|AS] u` renames,
    /// `EXCHANGE PARTITION p WITH TABLE u` changes `u` too, any other clause naming a
    /// table is not understood.
    fn alter_specs(&mut self, t: TableRef) -> R<Ddl> {
        let rest = &self.t[self.i..];
        self.i = self.t.len();
        let mut specs: Vec<&[&Tok]> = Vec::new();
        let (mut depth, mut start) = (0usize, 0);
        for (k, tok) in rest.iter().enumerate() {
            match tok {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| "unbalanced parentheses in ALTER TABLE".to_string())?;
                }
                Tok::Punct(',') if depth == 0 => {
                    specs.push(&rest[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err("unbalanced parentheses in ALTER TABLE".to_string());
        }
        if !rest.is_empty() {
            specs.push(&rest[start..]);
        }
        let mut changed = specs.is_empty();
        let mut renamed: Option<TableRef> = None;
        let mut others = Vec::new();
        for spec in specs {
            let Some(head) = spec.first() else {
                return Err("an empty ALTER TABLE clause".to_string());
            };
            let inner = |from: usize| {
                let mut p = P {
                    t: &spec[from.min(spec.len())..],
                    i: 0,
                    db: self.db,
                    body: false,
                };
                (p.table(), p.done())
            };
            for (k, tok) in spec.iter().enumerate().skip(1) {
                let exchange = is_word(tok, "EXCHANGE")
                    && spec.get(k + 1).is_some_and(|n| is_word(n, "PARTITION"));
                if is_word(tok, "RENAME") || exchange {
                    return Err("RENAME or EXCHANGE inside an ALTER TABLE clause".to_string());
                }
            }
            if is_word(head, "RENAME") {
                let second = spec.get(1).copied();
                if ["COLUMN", "INDEX", "KEY"]
                    .iter()
                    .any(|k| second.is_some_and(|s| is_word(s, k)))
                {
                    changed = true;
                    continue;
                }
                let from = if second.is_some_and(|s| is_word(s, "TO") || is_word(s, "AS")) {
                    2
                } else {
                    1
                };
                let (to, done) = inner(from);
                if !done {
                    return Err("unexpected text after ALTER TABLE ... RENAME TO".to_string());
                }
                if renamed.replace(to?).is_some() {
                    return Err("two RENAME clauses in one ALTER TABLE".to_string());
                }
            } else if is_word(head, "EXCHANGE") {
                let mut p = P {
                    t: spec,
                    i: 1,
                    db: self.db,
                    body: false,
                };
                p.expect("PARTITION")?;
                p.name()?;
                p.expect("WITH")?;
                p.expect("TABLE")?;
                let u = p.table()?;
                p.trailing(&["WITH", "WITHOUT", "VALIDATION"], "EXCHANGE PARTITION")?;
                changed = true;
                others.push(DdlEffect::Alter(u));
            } else if spec.iter().any(|tok| is_word(tok, "TABLE")) {
                // MariaDB's CONVERT PARTITION p TO TABLE u / CONVERT TABLE u TO PARTITION.
                return Err("an ALTER TABLE clause naming another table".to_string());
            } else if !(is_word(head, "ALGORITHM") || is_word(head, "LOCK")) {
                changed = true;
            }
        }
        let mut effects = Vec::new();
        if changed || renamed.is_none() {
            effects.push(DdlEffect::Alter(t.clone()));
        }
        effects.extend(others);
        if let Some(to) = renamed {
            effects.push(DdlEffect::Rename { from: t, to });
        }
        Ok(Ddl::Tables(effects))
    }

    fn drop(&mut self) -> R<Ddl> {
        let temporary = self.eat("TEMPORARY");
        let Some(Tok::Word(kind)) = self.at(0) else {
            return Err(format!("expected what DROP removes {}", self.here()));
        };
        let kind = kind.to_ascii_uppercase();
        self.i += 1;
        match kind.as_str() {
            "TABLE" | "TABLES" => {
                self.eat_seq(&["IF", "EXISTS"]);
                let tables = self.tables()?;
                self.trailing(&["WAIT", "NOWAIT", "RESTRICT", "CASCADE"], "DROP TABLE")?;
                if temporary {
                    return Ok(Ddl::NoTables);
                }
                Ok(Ddl::Tables(
                    tables.into_iter().map(DdlEffect::Drop).collect(),
                ))
            }
            _ if temporary => Err(format!("DROP TEMPORARY {kind} is not understood")),
            "INDEX" => {
                self.eat_seq(&["IF", "EXISTS"]);
                self.name()?;
                self.lock_wait();
                self.expect("ON")?;
                let t = self.table()?;
                self.trailing(
                    &[
                        "ALGORITHM",
                        "LOCK",
                        "DEFAULT",
                        "INPLACE",
                        "COPY",
                        "INSTANT",
                        "NOCOPY",
                        "NONE",
                        "SHARED",
                        "EXCLUSIVE",
                        "WAIT",
                        "NOWAIT",
                    ],
                    "DROP INDEX",
                )?;
                Ok(Ddl::Tables(vec![DdlEffect::Alter(t)]))
            }
            "DATABASE" | "SCHEMA" => {
                self.eat_seq(&["IF", "EXISTS"]);
                let db = self.name()?;
                if !self.done() {
                    return Err(format!(
                        "unexpected text after DROP DATABASE {}",
                        self.here()
                    ));
                }
                Ok(Ddl::Tables(vec![DdlEffect::DropDatabase(db)]))
            }
            "VIEW" | "TRIGGER" | "PROCEDURE" | "FUNCTION" | "EVENT" | "PACKAGE" | "USER"
            | "ROLE" | "SERVER" | "TABLESPACE" | "UNDO" | "LOGFILE" | "RESOURCE" | "SPATIAL" => {
                Ok(Ddl::NoTables)
            }
            // SEQUENCE (MariaDB: a table of its own), PREPARE, ...
            _ => Err(format!("DROP {kind} is not understood")),
        }
    }

    fn rename(&mut self) -> R<Ddl> {
        if self.eat("USER") {
            return Ok(Ddl::NoTables);
        }
        if !(self.eat("TABLE") || self.eat("TABLES")) {
            return Err(format!("RENAME {} is not understood", self.here()));
        }
        self.eat_seq(&["IF", "EXISTS"]);
        let mut effects = Vec::new();
        loop {
            let from = self.table()?;
            self.lock_wait();
            self.expect("TO")?;
            let to = self.table()?;
            effects.push(DdlEffect::Rename { from, to });
            if !self.punct(',') {
                break;
            }
        }
        if !self.done() {
            return Err(format!(
                "unexpected text after RENAME TABLE {}",
                self.here()
            ));
        }
        Ok(Ddl::Tables(effects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(db: &str, table: &str) -> TableRef {
        TableRef::new(db, table)
    }

    /// Classifies with `shop` as the default database.
    fn c(sql: &str) -> Ddl {
        classify(sql, "shop")
    }

    fn tables(sql: &str) -> Vec<DdlEffect> {
        match c(sql) {
            Ddl::Tables(v) => v,
            other => panic!("{sql}: expected tables, got {other:?}"),
        }
    }

    fn unknown(sql: &str) {
        assert!(
            matches!(c(sql), Ddl::Unknown(_)),
            "{sql}: expected Unknown, got {:?}",
            c(sql)
        );
    }

    fn none(sql: &str) {
        assert_eq!(c(sql), Ddl::NoTables, "{sql}");
    }

    fn create(db: &str, table: &str) -> DdlEffect {
        DdlEffect::Create {
            table: t(db, table),
            if_not_exists: false,
        }
    }

    fn alter(table: &str) -> DdlEffect {
        DdlEffect::Alter(t("shop", table))
    }

    fn rename(from: TableRef, to: TableRef) -> DdlEffect {
        DdlEffect::Rename { from, to }
    }

    #[test]
    fn use_prefix_splits_as_capture_writes_it() {
        assert_eq!(
            split_use_prefix("USE `shop`; DROP TABLE `t` /* generated by server */"),
            (
                Some("shop".into()),
                "DROP TABLE `t` /* generated by server */"
            )
        );
        assert_eq!(
            split_use_prefix("USE `we``ird; db`; TRUNCATE t"),
            (Some("we`ird; db".into()), "TRUNCATE t")
        );
        assert_eq!(split_use_prefix("DROP TABLE a.b"), (None, "DROP TABLE a.b"));
        assert_eq!(split_use_prefix("USE `x`"), (None, "USE `x`"));
        assert_eq!(split_use_prefix("USE `x"), (None, "USE `x"));
        assert_eq!(
            classify_recorded("USE `shop`; TRUNCATE TABLE orders"),
            Ddl::Tables(vec![DdlEffect::Truncate(t("shop", "orders"))])
        );
        assert!(matches!(
            classify_recorded("TRUNCATE orders"),
            Ddl::Unknown(_)
        ));
        assert_eq!(
            classify_recorded("TRUNCATE b.orders"),
            Ddl::Tables(vec![DdlEffect::Truncate(t("b", "orders"))])
        );
    }

    #[test]
    fn create_table_forms() {
        assert_eq!(
            tables(
                "CREATE TABLE `orders` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci"
            ),
            vec![create("shop", "orders")]
        );
        assert_eq!(
            tables("create table if not exists `other`.`t` (a int)"),
            vec![DdlEffect::Create {
                table: t("other", "t"),
                if_not_exists: true
            }]
        );
        assert_eq!(
            tables("CREATE TABLE t2 LIKE t1"),
            vec![create("shop", "t2")]
        );
        assert_eq!(
            tables("CREATE TABLE t2 (LIKE t1)"),
            vec![create("shop", "t2")]
        );
        assert_eq!(
            tables("CREATE TABLE t2 AS SELECT * FROM t1 WHERE a > 1"),
            vec![create("shop", "t2")]
        );
        // MySQL 8.0.21+ logs CREATE TABLE ... SELECT as its own definition.
        assert_eq!(
            tables("CREATE TABLE `t2` (\n  `a` int DEFAULT NULL\n) START TRANSACTION"),
            vec![create("shop", "t2")]
        );
        assert_eq!(
            tables(
                "CREATE TABLE `p` (`a` int NOT NULL, PRIMARY KEY (`a`)) ENGINE=InnoDB \
                 /*!50100 PARTITION BY RANGE (`a`)\n(PARTITION p0 VALUES LESS THAN (10) ENGINE = InnoDB) */"
            ),
            vec![create("shop", "p")]
        );
        // MariaDB's CREATE OR REPLACE drops the old table first.
        assert_eq!(
            tables("CREATE OR REPLACE TABLE t (a int)"),
            vec![DdlEffect::Drop(t("shop", "t")), create("shop", "t")]
        );
        assert_eq!(
            tables("CREATE TABLE `db.with.dots`.`t``q` (a int) COMMENT 'x, RENAME TO y'"),
            vec![create("db.with.dots", "t`q")]
        );
        assert_eq!(
            tables("CREATE TABLE `naïve name` (`ünï` int)"),
            vec![create("shop", "naïve name")]
        );
        assert_eq!(
            tables("CREATE TABLE café (a int)"),
            vec![create("shop", "café")]
        );
        assert_eq!(
            tables("/* app=billing */ CREATE TABLE t (a int);"),
            vec![create("shop", "t")]
        );
        assert_eq!(
            tables("-- migration 42\nCREATE TABLE t (a int) # trailing\n"),
            vec![create("shop", "t")]
        );
        unknown("CREATE TEMPORARY TABLE tmp (a int)");
        unknown("CREATE OR REPLACE TABLE IF NOT EXISTS t (a int)");
        unknown("CREATE SEQUENCE s START WITH 1");
        unknown("CREATE TABLE t (a int); DROP TABLE u");
        unknown("CREATE TABLE (a int)");
    }

    #[test]
    fn unqualified_names_need_a_default_database() {
        assert!(matches!(classify("DROP TABLE t", ""), Ddl::Unknown(_)));
        assert_eq!(
            classify("DROP TABLE d.t", ""),
            Ddl::Tables(vec![DdlEffect::Drop(t("d", "t"))])
        );
        assert!(matches!(
            classify("RENAME TABLE d.a TO b", ""),
            Ddl::Unknown(_)
        ));
        assert_eq!(classify("CREATE VIEW v AS SELECT 1", ""), Ddl::NoTables);
    }

    #[test]
    fn drop_table_forms() {
        assert_eq!(
            tables("DROP TABLE `t` /* generated by server */"),
            vec![DdlEffect::Drop(t("shop", "t"))]
        );
        assert_eq!(
            tables("DROP TABLE IF EXISTS `a`,`b`,`other`.`c` /* generated by server */"),
            vec![
                DdlEffect::Drop(t("shop", "a")),
                DdlEffect::Drop(t("shop", "b")),
                DdlEffect::Drop(t("other", "c"))
            ]
        );
        assert_eq!(
            tables("drop tables a, b restrict"),
            vec![
                DdlEffect::Drop(t("shop", "a")),
                DdlEffect::Drop(t("shop", "b"))
            ]
        );
        assert_eq!(
            tables("DROP TABLE IF EXISTS /* comment to save */ t WAIT 5"),
            vec![DdlEffect::Drop(t("shop", "t"))]
        );
        assert_eq!(
            tables("DROP TABLE tables"),
            vec![DdlEffect::Drop(t("shop", "tables"))]
        );
        none("DROP TEMPORARY TABLE IF EXISTS `tmp` /* generated by server */");
        // MySQL's log of temporary tables left at session end.
        none("DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `tmp1`,`tmp2`");
        unknown("DROP TABLE a b");
        unknown("DROP TABLE a,");
        unknown("DROP TABLE");
        unknown("DROP SEQUENCE s");
        unknown("DROP TEMPORARY SEQUENCE s");
    }

    #[test]
    fn drop_database() {
        assert_eq!(
            tables("DROP DATABASE `shop`"),
            vec![DdlEffect::DropDatabase("shop".into())]
        );
        assert_eq!(
            tables("drop schema if exists old_db"),
            vec![DdlEffect::DropDatabase("old_db".into())]
        );
        none(
            "CREATE DATABASE `n` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */",
        );
        none("CREATE DATABASE IF NOT EXISTS n");
        assert_eq!(
            tables("CREATE OR REPLACE DATABASE `n` CHARACTER SET utf8mb4"),
            vec![DdlEffect::DropDatabase("n".into())]
        );
        unknown("CREATE OR REPLACE DATABASE IF NOT EXISTS n");
        none("ALTER DATABASE `n` CHARACTER SET utf8mb4");
        none("ALTER SCHEMA n READ ONLY = 1");
    }

    #[test]
    fn alter_table_forms() {
        assert_eq!(
            tables(
                "ALTER TABLE `orders` ADD COLUMN `note` varchar(20) DEFAULT NULL, ALGORITHM=INPLACE, LOCK=NONE"
            ),
            vec![alter("orders")]
        );
        assert_eq!(tables("ALTER TABLE t ENGINE=InnoDB"), vec![alter("t")]);
        assert_eq!(tables("ALTER TABLE t"), vec![alter("t")]);
        assert_eq!(tables("ALTER TABLE t FORCE"), vec![alter("t")]);
        assert_eq!(
            tables("ALTER TABLE t RENAME INDEX a TO b"),
            vec![alter("t")]
        );
        assert_eq!(tables("ALTER TABLE t RENAME KEY a TO b"), vec![alter("t")]);
        assert_eq!(
            tables("ALTER TABLE t RENAME COLUMN a TO b"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("ALTER TABLE t RENAME TO u"),
            vec![rename(t("shop", "t"), t("shop", "u"))]
        );
        assert_eq!(
            tables("alter table t rename as other.u"),
            vec![rename(t("shop", "t"), t("other", "u"))]
        );
        assert_eq!(
            tables("ALTER TABLE `t` RENAME `u`, ALGORITHM=INSTANT"),
            vec![rename(t("shop", "t"), t("shop", "u"))]
        );
        assert_eq!(
            tables("ALTER TABLE t ADD COLUMN c INT, RENAME TO u"),
            vec![alter("t"), rename(t("shop", "t"), t("shop", "u"))]
        );
        assert_eq!(
            tables("ALTER TABLE t RENAME COLUMN a TO b, RENAME TO u"),
            vec![alter("t"), rename(t("shop", "t"), t("shop", "u"))]
        );
        assert_eq!(
            tables(
                "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE"
            ),
            vec![alter("t")]
        );
        assert_eq!(
            tables(
                "ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (40)), ALGORITHM=INPLACE"
            ),
            vec![alter("t")]
        );
        assert_eq!(
            tables("ALTER TABLE t DROP PARTITION p0, p1"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.u WITHOUT VALIDATION"),
            vec![alter("t"), DdlEffect::Alter(t("other", "u"))]
        );
        assert_eq!(
            tables("ALTER TABLE t COMMENT 'RENAME TO x, EXCHANGE PARTITION'"),
            vec![alter("t")]
        );
        // MariaDB.
        assert_eq!(
            tables("ALTER ONLINE IGNORE TABLE t ADD UNIQUE (a)"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("ALTER TABLE IF EXISTS t NOWAIT RENAME TO u"),
            vec![rename(t("shop", "t"), t("shop", "u"))]
        );
        unknown("ALTER TABLE t CONVERT PARTITION p0 TO TABLE u");
        unknown("ALTER TABLE t CONVERT TABLE u TO PARTITION p0 VALUES LESS THAN (10)");
        unknown("ALTER TABLE t RENAME TO u, RENAME TO v");
        unknown("ALTER TABLE t RENAME TO u v");
        unknown("ALTER TABLE t ADD COLUMN c INT RENAME TO u");
        unknown("ALTER TABLE t ADD COLUMN (c INT");
        unknown("ALTER TABLE t ADD COLUMN c INT,");
        unknown("ALTER SEQUENCE s RESTART 10");
    }

    #[test]
    fn rename_table_pairs_in_order() {
        assert_eq!(
            tables("RENAME TABLE a TO b, b TO c"),
            vec![
                rename(t("shop", "a"), t("shop", "b")),
                rename(t("shop", "b"), t("shop", "c"))
            ]
        );
        assert_eq!(
            tables("RENAME TABLE `a` TO `tmp`, `b` TO `a`, `tmp` TO `b`"),
            vec![
                rename(t("shop", "a"), t("shop", "tmp")),
                rename(t("shop", "b"), t("shop", "a")),
                rename(t("shop", "tmp"), t("shop", "b"))
            ]
        );
        assert_eq!(
            tables("rename tables d1.x to d2.x"),
            vec![rename(t("d1", "x"), t("d2", "x"))]
        );
        // MariaDB.
        assert_eq!(
            tables("RENAME TABLE IF EXISTS a WAIT 3 TO b"),
            vec![rename(t("shop", "a"), t("shop", "b"))]
        );
        none("RENAME USER 'a'@'%' TO 'b'@'%'");
        unknown("RENAME TABLE a TO b c");
        unknown("RENAME TABLE a b");
    }

    #[test]
    fn indexes_alter_their_table() {
        assert_eq!(tables("CREATE INDEX i ON t (c)"), vec![alter("t")]);
        assert_eq!(
            tables(
                "CREATE UNIQUE INDEX `i` USING BTREE ON `d`.`t` (`c`(10) DESC) ALGORITHM=INPLACE"
            ),
            vec![DdlEffect::Alter(t("d", "t"))]
        );
        assert_eq!(
            tables("CREATE FULLTEXT INDEX f ON t (body)"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("CREATE SPATIAL INDEX g ON t (geo)"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("CREATE OR REPLACE INDEX IF NOT EXISTS i ON t (c)"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("DROP INDEX i ON db.t"),
            vec![DdlEffect::Alter(t("db", "t"))]
        );
        assert_eq!(
            tables("DROP INDEX `PRIMARY` ON t ALGORITHM = INPLACE LOCK = DEFAULT"),
            vec![alter("t")]
        );
        assert_eq!(tables("DROP INDEX IF EXISTS i ON t"), vec![alter("t")]);
        unknown("DROP INDEX i ON t, u");
        unknown("CREATE INDEX i t (c)");
    }

    #[test]
    fn truncate_and_maintenance() {
        assert_eq!(
            tables("TRUNCATE TABLE `t`"),
            vec![DdlEffect::Truncate(t("shop", "t"))]
        );
        assert_eq!(
            tables("truncate d.t"),
            vec![DdlEffect::Truncate(t("d", "t"))]
        );
        unknown("TRUNCATE TABLE a, b");
        assert_eq!(tables("OPTIMIZE TABLE t"), vec![alter("t")]);
        assert_eq!(
            tables("OPTIMIZE NO_WRITE_TO_BINLOG TABLE a, d.b"),
            vec![alter("a"), DdlEffect::Alter(t("d", "b"))]
        );
        assert_eq!(tables("REPAIR TABLE t QUICK EXTENDED"), vec![alter("t")]);
        none("ANALYZE TABLE t");
        none("ANALYZE LOCAL TABLE t UPDATE HISTOGRAM ON c WITH 16 BUCKETS");
        none("ANALYZE TABLE t PERSISTENT FOR ALL");
        unknown("ANALYZE DELETE FROM t");
        unknown("OPTIMIZE t");
    }

    #[test]
    fn definitions_touch_no_table() {
        none(
            "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select `t`.`a` AS `a` from `t`",
        );
        none("CREATE OR REPLACE VIEW v AS SELECT * FROM t");
        none("ALTER ALGORITHM=MERGE DEFINER=CURRENT_USER() VIEW v AS SELECT 1");
        none("DROP VIEW IF EXISTS v, w");
        none(
            "CREATE DEFINER=`root`@`localhost` TRIGGER `trg` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = NEW.a + 1",
        );
        none(
            "CREATE DEFINER=`root`@`%` TRIGGER trg AFTER DELETE ON t FOR EACH ROW BEGIN INSERT INTO audit VALUES (OLD.id); UPDATE c SET n = n - 1; END",
        );
        none(
            "CREATE DEFINER=`root`@`%` PROCEDURE `p`(IN x INT)\nBEGIN\n  DELETE FROM t WHERE id = x;\n  DROP TABLE u;\nEND",
        );
        none(
            "CREATE DEFINER='app'@'10.0.0.%' FUNCTION f(x INT) RETURNS int DETERMINISTIC RETURN x + 1",
        );
        none("CREATE AGGREGATE FUNCTION agg(x INT) RETURNS INT BEGIN RETURN 1; END");
        none(
            "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO DELETE FROM t",
        );
        none("ALTER DEFINER=`root`@`localhost` EVENT e DISABLE");
        none("ALTER EVENT e RENAME TO e2");
        none("DROP TRIGGER IF EXISTS `shop`.`trg`");
        none("DROP PROCEDURE IF EXISTS p");
        none("DROP FUNCTION f");
        none("DROP EVENT e");
        unknown("CREATE TEMPORARY VIEW v AS SELECT 1");
        unknown("CREATE DEFINER=`root`@`%` TABLE t (a int)");
        unknown("CREATE UNIQUE TABLE t (a int)");
    }

    #[test]
    fn accounts_and_server_statements_touch_no_table() {
        none("GRANT SELECT, INSERT ON `shop`.`t` TO 'app'@'%'");
        none("REVOKE ALL PRIVILEGES ON *.* FROM 'x'@'localhost'");
        none(
            "CREATE USER 'app'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$abc' REQUIRE NONE PASSWORD EXPIRE DEFAULT",
        );
        none("ALTER USER 'app'@'%' IDENTIFIED BY 'it\\'s'");
        none("DROP USER IF EXISTS 'app'@'%'");
        none("CREATE ROLE r");
        none("DROP ROLE r");
        none("SET PASSWORD FOR 'app'@'%' = 'x'");
        none("SET DEFAULT ROLE r TO 'app'@'%'");
        none("FLUSH PRIVILEGES");
        none("FLUSH TABLES");
        none("SAVEPOINT `sp1`");
        none("RELEASE SAVEPOINT sp1");
        none("INSTALL PLUGIN x SONAME 'x.so'");
        none("CREATE TABLESPACE ts ADD DATAFILE 'ts.ibd'");
        none("CREATE UNDO TABLESPACE u ADD DATAFILE 'u.ibu'");
        none("DROP UNDO TABLESPACE u");
        none("CREATE SPATIAL REFERENCE SYSTEM 4120 NAME 'x' DEFINITION 'y'");
        unknown("SET GLOBAL x = 1");
        unknown("ROLLBACK TO SAVEPOINT sp1");
    }

    #[test]
    fn mysqldump_definitions() {
        none(
            "/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n/*!50001 VIEW `v` AS select 1 AS `1` */",
        );
        none(
            "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `trg` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1 */",
        );
        assert_eq!(
            tables("/*!40000 ALTER TABLE `t` ENABLE KEYS */;"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("DROP TABLE IF EXISTS `t`;"),
            vec![DdlEffect::Drop(t("shop", "t"))]
        );
    }

    #[test]
    fn many_version_comments_are_unknown() {
        let mut sql = "CREATE TABLE t (a int)".to_string();
        for v in 0..40 {
            sql.push_str(&format!(" /*!{} COMMENT 'x' */", 80100 + v));
        }
        unknown(&sql);
        let few = "CREATE TABLE t (a int) /*!80100 COMMENT 'x' */ /*!80200 COMMENT 'y' */";
        assert_eq!(tables(few), vec![create("shop", "t")]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,80}") {
            let _ = classify(&s, "d");
            let _ = classify_recorded(&s);
        }

        #[test]
        fn never_panics_on_sql_like_text(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "CREATE", "ALTER", "DROP", "RENAME", "TABLE", "TEMPORARY", "IF", "NOT",
                    "EXISTS", "TO", "AS", "INDEX", "ON", "`a``b`", "t", ".", ",", "(", ")",
                    ";", "'s\\'", "\"q\"", "/*!80100", "/*M!", "/*!", "*/", "/*", "--",
                    "#", "\n", "RENAME TO", "EXCHANGE PARTITION p WITH TABLE", "DEFINER=",
                    "@", "USE `d`; ", "=", "WAIT", "5",
                ]),
                0..24,
            )
        ) {
            let sql = parts.join(" ");
            let _ = classify(&sql, "d");
            let _ = classify(&sql, "");
            let _ = classify_recorded(&sql);
        }
    }

    #[test]
    fn not_ddl_is_unknown() {
        unknown("XA COMMIT X'31',X'',1");
        unknown("BEGIN");
        unknown("INSERT INTO t VALUES (1)");
        unknown("DELETE FROM t");
        unknown("");
        unknown("   ");
        unknown("/* only a comment */");
        unknown(";");
        unknown("USE `shop`; DROP TABLE t");
        unknown("(SELECT 1)");
    }

    #[test]
    fn executable_comments() {
        // At or below 8.0.0: every supported server reads them.
        assert_eq!(
            tables("/*!40000 ALTER TABLE `t` DISABLE KEYS */"),
            vec![alter("t")]
        );
        assert_eq!(
            tables("DROP TABLE /*!40005 IF EXISTS */ `t`"),
            vec![DdlEffect::Drop(t("shop", "t"))]
        );
        assert_eq!(
            tables("/*! TRUNCATE t */"),
            vec![DdlEffect::Truncate(t("shop", "t"))]
        );
        // Newer: both readings agree.
        assert_eq!(
            tables("CREATE TABLE t (a int) /*!80023 COMMENT 'x' */"),
            vec![create("shop", "t")]
        );
        // IF NOT EXISTS only on MariaDB (or MySQL 10.1+): not known to have been said.
        unknown("CREATE TABLE /*M!100100 IF NOT EXISTS */ t (a int)");
        unknown("CREATE TABLE /*!100100 IF NOT EXISTS */ t (a int)");
        assert_eq!(
            tables("CREATE TABLE /*!40100 IF NOT EXISTS */ t (a int)"),
            vec![DdlEffect::Create {
                table: t("shop", "t"),
                if_not_exists: true
            }]
        );
        // Readings disagree.
        unknown("DROP TABLE a /*!90000 , b */");
        unknown("DROP TABLE a /*M!100500 , b */");
        unknown("/*!90000 DROP TABLE t */");
        unknown("/*!80000 ALTER TABLE t */ /*!90100 , RENAME TO u */");
        unknown("/*!8000 DROP TABLE t */");
        unknown("/*!40000 DROP TABLE t");
        unknown("/*!40000 DROP TABLE t /* x */ */");
        unknown("/* DROP TABLE t");
    }

    #[test]
    fn quoting_and_sql_modes() {
        assert_eq!(
            tables("DROP TABLE `a``b`, `c.d`, `e f`.`g`"),
            vec![
                DdlEffect::Drop(t("shop", "a`b")),
                DdlEffect::Drop(t("shop", "c.d")),
                DdlEffect::Drop(t("e f", "g"))
            ]
        );
        assert_eq!(
            tables("ALTER TABLE t COMMENT 'it''s, RENAME TO u'"),
            vec![alter("t")]
        );
        // Only the backslash reading is valid: NO_BACKSLASH_ESCAPES leaves a quote open.
        assert_eq!(
            tables("ALTER TABLE t COMMENT 'it\\'s, RENAME TO u'"),
            vec![alter("t")]
        );
        // Both readings are valid and differ.
        unknown("ALTER TABLE t COMMENT 'x\\' , RENAME TO u, COMMENT \\'y'");
        // Double quotes: a string, or under ANSI_QUOTES a name.
        assert_eq!(
            tables("ALTER TABLE t COMMENT \"x, RENAME TO u\""),
            vec![alter("t")]
        );
        unknown("DROP TABLE \"t\"");
        unknown("DROP TABLE 't'");
        unknown("DROP TABLE ``");
        unknown("DROP TABLE 123");
        unknown("DROP TABLE `t");
        assert_eq!(
            tables("DROP TABLE t$1, _x"),
            vec![
                DdlEffect::Drop(t("shop", "t$1")),
                DdlEffect::Drop(t("shop", "_x"))
            ]
        );
        assert_eq!(
            tables("dRoP\tTaBlE\n`T`"),
            vec![DdlEffect::Drop(t("shop", "T"))]
        );
        assert_eq!(
            tables("DROP TABLE `d` . `t`"),
            vec![DdlEffect::Drop(t("d", "t"))]
        );
        // A backquoted keyword is a name, not a keyword.
        assert_eq!(
            tables("DROP TABLE `if`, `table`"),
            vec![
                DdlEffect::Drop(t("shop", "if")),
                DdlEffect::Drop(t("shop", "table"))
            ]
        );
    }
}
