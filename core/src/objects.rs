//! The rest of a database's schema: views, triggers, stored procedures and functions, and
//! events ([`SchemaObject`]), and what a logged DDL statement does to them
//! ([`object_changes`]), read from its text alone.
//!
//! A full baseline records every object of its databases as `SHOW CREATE ...` gives it; a
//! restore of a whole database applies the object statements logged after it, in log order,
//! to know each object's definition at the target. That is exact for the statements that
//! carry a whole definition (`CREATE [OR REPLACE] ...`, `ALTER VIEW`, which the server logs
//! with its full definition) and for drops; `ALTER PROCEDURE`, `ALTER FUNCTION` and
//! `ALTER EVENT` change only some characteristics, so after one the definition is
//! [`ObjectChange::Altered`]: not known. Tables' statements matter too: dropping a table drops
//! its triggers, renaming it moves them, and `DROP DATABASE` drops every object in it.
use crate::ddl::{Ddl, DdlEffect, Tok, classify_recorded, plain_tokens, split_use_prefix};
use crate::schema::TableRef;
use serde::{Deserialize, Serialize};

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// `CREATE VIEW`.
    View,
    /// `CREATE TRIGGER` (on one table).
    Trigger,
    /// `CREATE PROCEDURE`.
    Procedure,
    /// `CREATE FUNCTION` (a stored one).
    Function,
    /// `CREATE EVENT`.
    Event,
}

impl ObjectKind {
    /// The SQL keyword (`VIEW`, `TRIGGER`, ...).
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::View => "VIEW",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Event => "EVENT",
        }
    }

    fn from_keyword(w: &str) -> Option<ObjectKind> {
        [
            ObjectKind::View,
            ObjectKind::Trigger,
            ObjectKind::Procedure,
            ObjectKind::Function,
            ObjectKind::Event,
        ]
        .into_iter()
        .find(|k| k.keyword().eq_ignore_ascii_case(w))
    }
}

/// One view, trigger, routine or event, as its database defines it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its database.
    pub db: String,
    /// Its name.
    pub name: String,
    /// A trigger's table (in `db`).
    #[serde(default)]
    pub table: Option<String>,
    /// The `CREATE` statement, as `SHOW CREATE ...` gives it or as the log holds it.
    pub create: String,
    /// The `character_set_client` it was created with (empty: not known).
    #[serde(default)]
    pub charset_client: String,
    /// The `collation_connection` it was created with (empty: not known).
    #[serde(default)]
    pub collation_connection: String,
    /// A view's column names (empty: not known).
    #[serde(default)]
    pub columns: Vec<String>,
}

impl SchemaObject {
    /// Whether `self` is the object `kind` `db`.`name` (names compared without case, as the
    /// server does for routines and events and as `lower_case_table_names` may).
    pub fn is(&self, kind: ObjectKind, db: &str, name: &str) -> bool {
        self.kind == kind
            && self.db.eq_ignore_ascii_case(db)
            && self.name.eq_ignore_ascii_case(name)
    }

    /// How messages name it: `trigger d.tr`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}.{}",
            self.kind.keyword().to_ascii_lowercase(),
            self.db,
            self.name
        )
    }
}

/// What one statement did to the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectChange {
    /// The object exists afterwards with this definition (`create`; charsets and columns not
    /// known). With `if_not_exists`, an existing one is kept as it was.
    Define {
        /// The object.
        object: SchemaObject,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// The object (if it existed) is gone.
    Drop {
        /// What.
        kind: ObjectKind,
        /// Its database.
        db: String,
        /// Its name.
        name: String,
    },
    /// The object exists, and its definition changed in a way the statement does not fully
    /// give.
    Altered {
        /// What.
        kind: ObjectKind,
        /// Its database.
        db: String,
        /// Its name.
        name: String,
    },
    /// The table was dropped, and its triggers with it.
    DropTable(TableRef),
    /// The table was renamed; its triggers follow it.
    RenameTable {
        /// The old name.
        from: TableRef,
        /// The new name.
        to: TableRef,
    },
    /// The database and every object in it are gone.
    DropDatabase(String),
}

/// What the recorded statement (with capture's `` USE `db`; `` prefix) does to objects, in
/// order; empty when nothing. Err: an object statement this reading does not understand
/// (the reason says why).
pub fn object_changes(recorded: &str) -> Result<Vec<ObjectChange>, String> {
    let (db, text) = split_use_prefix(recorded);
    let default_db = db.unwrap_or_default();
    match classify_recorded(recorded) {
        Ddl::Tables(effects) => {
            return Ok(effects
                .into_iter()
                .filter_map(|e| match e {
                    DdlEffect::Drop(t) => Some(ObjectChange::DropTable(t)),
                    DdlEffect::Rename { from, to } => Some(ObjectChange::RenameTable { from, to }),
                    DdlEffect::DropDatabase(d) => Some(ObjectChange::DropDatabase(d)),
                    _ => None,
                })
                .collect());
        }
        // Table statements this reading does not follow are the tables' checks to refuse.
        Ddl::Unknown(_) => {
            if !mentions_object(text) {
                return Ok(Vec::new());
            }
        }
        Ddl::NoTables => {}
    }
    let toks = plain_tokens(text)?;
    Reader {
        toks: &toks,
        i: 0,
        default_db: &default_db,
        text,
    }
    .statement()
}

/// Whether the statement's leading words name an object kind (cheap pre-check).
fn mentions_object(text: &str) -> bool {
    let head: String = text
        .chars()
        .take(400)
        .collect::<String>()
        .to_ascii_uppercase();
    ["VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"]
        .iter()
        .any(|k| head.contains(k))
}

struct Reader<'a> {
    toks: &'a [Tok],
    i: usize,
    default_db: &'a str,
    text: &'a str,
}

impl Reader<'_> {
    fn peek_word(&self) -> Option<String> {
        match self.toks.get(self.i) {
            Some(Tok::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn eat(&mut self, kw: &str) -> bool {
        if self.peek_word().as_deref() == Some(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, p: char) -> bool {
        if self.toks.get(self.i) == Some(&Tok::Punct(p)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// One name part: a quoted or unquoted identifier.
    fn ident(&mut self) -> Result<String, String> {
        match self.toks.get(self.i) {
            Some(Tok::Ident(s)) | Some(Tok::Word(s)) => {
                self.i += 1;
                Ok(s.clone())
            }
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    /// `[db.]name`.
    fn qualified(&mut self) -> Result<(String, String), String> {
        let first = self.ident()?;
        if self.eat_punct('.') {
            let second = self.ident()?;
            return Ok((first, second));
        }
        if self.default_db.is_empty() {
            return Err(format!(
                "{first:?} is not qualified and the statement ran without a default database"
            ));
        }
        Ok((self.default_db.to_string(), first))
    }

    /// `ALGORITHM=x`, `DEFINER=user[@host]`, `SQL SECURITY x`, `AGGREGATE`, in any order.
    fn options(&mut self) -> Result<(), String> {
        loop {
            if self.eat("ALGORITHM") {
                self.eat_punct('=');
                self.ident()?;
            } else if self.eat("DEFINER") {
                self.eat_punct('=');
                match self.toks.get(self.i) {
                    Some(Tok::Str) => self.i += 1,
                    _ => {
                        self.ident()?;
                    }
                }
                if self.eat_punct('(') {
                    self.eat_punct(')');
                }
                if self.eat_punct('@') {
                    match self.toks.get(self.i) {
                        Some(Tok::Str) => self.i += 1,
                        _ => {
                            self.ident()?;
                        }
                    }
                }
            } else if self.eat("SQL") {
                if !self.eat("SECURITY") {
                    return Err("SQL not followed by SECURITY".into());
                }
                self.ident()?;
            } else if !self.eat("AGGREGATE") {
                return Ok(());
            }
        }
    }

    fn kind(&mut self) -> Option<ObjectKind> {
        let k = ObjectKind::from_keyword(&self.peek_word()?)?;
        self.i += 1;
        Some(k)
    }

    fn statement(mut self) -> Result<Vec<ObjectChange>, String> {
        let Some(verb) = self.peek_word() else {
            return Ok(Vec::new());
        };
        self.i += 1;
        match verb.as_str() {
            "CREATE" => self.create(false),
            "ALTER" => {
                let start = self.i;
                self.options()?;
                match self.kind() {
                    // The server logs ALTER VIEW with the whole definition.
                    Some(ObjectKind::View) => {
                        self.i = start;
                        self.create(true)
                    }
                    Some(kind) => {
                        let (db, name) = self.qualified()?;
                        // ALTER EVENT e ... RENAME TO [db.]e2: e is gone, e2 not known.
                        let mut rename = None;
                        while self.i < self.toks.len() {
                            if self.eat("RENAME") && self.eat("TO") {
                                rename = Some(self.qualified()?);
                                break;
                            }
                            self.i += 1;
                        }
                        Ok(match rename {
                            Some((to_db, to)) if kind == ObjectKind::Event => vec![
                                ObjectChange::Drop { kind, db, name },
                                ObjectChange::Altered {
                                    kind,
                                    db: to_db,
                                    name: to,
                                },
                            ],
                            _ => vec![ObjectChange::Altered { kind, db, name }],
                        })
                    }
                    None => Ok(Vec::new()),
                }
            }
            "DROP" => {
                let Some(kind) = self.kind() else {
                    return Ok(Vec::new());
                };
                if self.eat("IF") && !self.eat("EXISTS") {
                    return Err("IF not followed by EXISTS".into());
                }
                // Without a database, an unqualified DROP FUNCTION drops a loadable function.
                if kind == ObjectKind::Function
                    && self.default_db.is_empty()
                    && self.toks.get(self.i + 1) != Some(&Tok::Punct('.'))
                {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                loop {
                    let (db, name) = self.qualified()?;
                    out.push(ObjectChange::Drop { kind, db, name });
                    if kind != ObjectKind::View || !self.eat_punct(',') {
                        break;
                    }
                }
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// After `CREATE` (or `ALTER` of a view, which becomes the `CREATE` text).
    fn create(&mut self, alter_view: bool) -> Result<Vec<ObjectChange>, String> {
        if self.eat("OR") && !self.eat("REPLACE") {
            return Err("OR not followed by REPLACE".into());
        }
        self.options()?;
        let Some(kind) = self.kind() else {
            return Ok(Vec::new());
        };
        let mut if_not_exists = false;
        if self.eat("IF") {
            if !(self.eat("NOT") && self.eat("EXISTS")) {
                return Err("IF not followed by NOT EXISTS".into());
            }
            if_not_exists = true;
        }
        if kind == ObjectKind::Function && self.loadable() {
            // A loadable function (UDF): not a database's object.
            return Ok(Vec::new());
        }
        let (db, name) = self.qualified()?;
        let mut table = None;
        if kind == ObjectKind::Trigger {
            if !(self.eat("BEFORE") || self.eat("AFTER")) {
                return Err(format!("trigger {name}: expected BEFORE or AFTER"));
            }
            if !(self.eat("INSERT") || self.eat("UPDATE") || self.eat("DELETE")) {
                return Err(format!("trigger {name}: expected INSERT, UPDATE or DELETE"));
            }
            if !self.eat("ON") {
                return Err(format!("trigger {name}: expected ON"));
            }
            let (tdb, t) = self.qualified()?;
            if !tdb.eq_ignore_ascii_case(&db) {
                return Err(format!("trigger {name} is in {db} but on a table of {tdb}"));
            }
            table = Some(t);
        }
        let text = self.text.trim();
        let create = if alter_view {
            match text.get(..5) {
                Some(a) if a.eq_ignore_ascii_case("ALTER") => format!("CREATE{}", &text[5..]),
                _ => return Err("ALTER VIEW text does not begin with ALTER".into()),
            }
        } else {
            text.to_string()
        };
        Ok(vec![ObjectChange::Define {
            object: SchemaObject {
                kind,
                db,
                name,
                table,
                create,
                charset_client: String::new(),
                collation_connection: String::new(),
                columns: Vec::new(),
            },
            if_not_exists,
        }])
    }

    /// `RETURNS {STRING|INTEGER|REAL|DECIMAL} SONAME`.
    fn loadable(&self) -> bool {
        self.toks[self.i..]
            .iter()
            .any(|t| matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("SONAME")))
            && !self.toks[self.i..]
                .iter()
                .any(|t| matches!(t, Tok::Punct('(')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn define(recorded: &str) -> (SchemaObject, bool) {
        match object_changes(recorded).expect(recorded).as_slice() {
            [
                ObjectChange::Define {
                    object,
                    if_not_exists,
                },
            ] => (object.clone(), *if_not_exists),
            other => panic!("{recorded}: {other:?}"),
        }
    }

    #[test]
    fn creates_as_mysql_9_and_mariadb_10_11_log_them() {
        let (v, _) = define(
            "USE `d`; CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY \
             DEFINER VIEW `vv` AS SELECT id, v FROM t WHERE v > 1",
        );
        assert_eq!(
            (v.kind, v.db.as_str(), v.name.as_str()),
            (ObjectKind::View, "d", "vv")
        );
        assert!(v.create.starts_with("CREATE ALGORITHM"));
        let (v, _) = define(
            "USE `d`; CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL \
             SECURITY DEFINER VIEW `vv` AS SELECT id FROM t",
        );
        assert_eq!(v.name, "vv");
        let (v, _) = define(
            "USE `d`; ALTER ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER \
             VIEW `vv` AS SELECT v FROM t",
        );
        assert!(
            v.create.starts_with("CREATE ALGORITHM=UNDEFINED"),
            "{}",
            v.create
        );
        let (t, _) = define(
            "USE `d`; CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t FOR EACH \
             ROW BEGIN INSERT INTO a(w) VALUES ('x'); SET NEW.v = NEW.v+1; END",
        );
        assert_eq!(
            (t.kind, t.name.as_str(), t.table.as_deref()),
            (ObjectKind::Trigger, "tr", Some("t"))
        );
        let (p, _) = define(
            "USE `d`; CREATE DEFINER=`root`@`localhost` PROCEDURE `p1`(IN x INT)\nBEGIN SELECT \
             x; SELECT x+1; END",
        );
        assert_eq!((p.kind, p.name.as_str()), (ObjectKind::Procedure, "p1"));
        let (f, _) = define(
            "USE `d`; CREATE DEFINER=`root`@`localhost` FUNCTION `f1`(x INT) RETURNS int(11)\n    \
             DETERMINISTIC\nRETURN x+1",
        );
        assert_eq!((f.kind, f.name.as_str()), (ObjectKind::Function, "f1"));
        let (e, _) = define(
            "USE `d`; CREATE DEFINER=`root`@`localhost` EVENT ev ON SCHEDULE EVERY 1 DAY \
             DISABLE DO INSERT INTO a(w) VALUES('e')",
        );
        assert_eq!((e.kind, e.db.as_str()), (ObjectKind::Event, "d"));
        let (t, ine) = define(
            "CREATE DEFINER='u'@'%' TRIGGER IF NOT EXISTS `o`.`tr2` AFTER UPDATE ON `o`.`t` FOR \
             EACH ROW SET @x = 1",
        );
        assert!(ine);
        assert_eq!((t.db.as_str(), t.table.as_deref()), ("o", Some("t")));
        assert_eq!(
            object_changes("CREATE FUNCTION metaphon RETURNS STRING SONAME 'udf.so'"),
            Ok(Vec::new())
        );
    }

    #[test]
    fn drops_alters_and_tables() {
        let drop = |kind, db: &str, name: &str| ObjectChange::Drop {
            kind,
            db: db.into(),
            name: name.into(),
        };
        assert_eq!(
            object_changes("USE `d`; DROP VIEW IF EXISTS vv, e.w2 CASCADE"),
            Ok(vec![
                drop(ObjectKind::View, "d", "vv"),
                drop(ObjectKind::View, "e", "w2")
            ])
        );
        assert_eq!(
            object_changes("USE `d`; DROP TRIGGER tr"),
            Ok(vec![drop(ObjectKind::Trigger, "d", "tr")])
        );
        assert_eq!(
            object_changes("USE `d`; DROP FUNCTION IF EXISTS objprobe.f1"),
            Ok(vec![drop(ObjectKind::Function, "objprobe", "f1")])
        );
        assert_eq!(
            object_changes("USE `d`; DROP EVENT ev"),
            Ok(vec![drop(ObjectKind::Event, "d", "ev")])
        );
        assert_eq!(
            object_changes("USE `d`; ALTER PROCEDURE p1 COMMENT 'c'"),
            Ok(vec![ObjectChange::Altered {
                kind: ObjectKind::Procedure,
                db: "d".into(),
                name: "p1".into()
            }])
        );
        assert_eq!(
            object_changes("USE `d`; ALTER DEFINER=`root`@`%` EVENT ev DISABLE"),
            Ok(vec![ObjectChange::Altered {
                kind: ObjectKind::Event,
                db: "d".into(),
                name: "ev".into()
            }])
        );
        assert_eq!(
            object_changes("USE `d`; ALTER EVENT ev RENAME TO e.ev2"),
            Ok(vec![
                drop(ObjectKind::Event, "d", "ev"),
                ObjectChange::Altered {
                    kind: ObjectKind::Event,
                    db: "e".into(),
                    name: "ev2".into()
                }
            ])
        );
        assert_eq!(
            object_changes("DROP FUNCTION IF EXISTS metaphon"),
            Ok(Vec::new())
        );
        assert_eq!(
            object_changes("DROP FUNCTION d.f"),
            Ok(vec![drop(ObjectKind::Function, "d", "f")])
        );
        assert_eq!(
            object_changes("USE `d`; DROP TABLE t"),
            Ok(vec![ObjectChange::DropTable(TableRef::new("d", "t"))])
        );
        assert_eq!(
            object_changes("USE `d`; RENAME TABLE t TO u"),
            Ok(vec![ObjectChange::RenameTable {
                from: TableRef::new("d", "t"),
                to: TableRef::new("d", "u")
            }])
        );
        assert_eq!(
            object_changes("DROP DATABASE d"),
            Ok(vec![ObjectChange::DropDatabase("d".into())])
        );
        assert_eq!(
            object_changes("USE `d`; CREATE TABLE x (a int)"),
            Ok(Vec::new())
        );
        assert_eq!(object_changes("GRANT SELECT ON d.* TO u"), Ok(Vec::new()));
        assert!(
            object_changes("DROP VIEW vv").is_err(),
            "no default database"
        );
        assert!(
            object_changes("USE `d`; CREATE /*!90000 OR REPLACE */ VIEW v AS SELECT 1").is_err()
        );
    }

    #[test]
    fn json_round_trip() {
        let (v, _) = define("USE `d`; CREATE VIEW v AS SELECT 1");
        let s = serde_json::to_string(&vec![v.clone()]).expect("json");
        let back: Vec<SchemaObject> = serde_json::from_str(&s).expect("back");
        assert_eq!(back, vec![v]);
    }
}
