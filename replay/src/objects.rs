//! Views, triggers, routines and events at a target: a full baseline's objects with the
//! object statements logged after it applied in log order ([`objects_at_target`]).
//!
//! Exact because every statement that changes an object either gives its whole definition
//! (`CREATE`, `CREATE OR REPLACE`, `ALTER VIEW`, logged with the full definition) or drops
//! it (`DROP ...`, `DROP TABLE` for its triggers, `DROP DATABASE`), or moves it with its
//! table (`RENAME TABLE` for triggers); the rest (`ALTER PROCEDURE`, `ALTER FUNCTION`,
//! `ALTER EVENT`) leave the definition [`Unknown`] until a later statement gives it whole.
//! Applying a statement again to a state that already holds it gives the same state, which
//! is what makes a baseline's objects, read just after its snapshot started, usable.
use dbtrail_core::objects::{ObjectChange, ObjectKind, SchemaObject, object_changes};

/// An object whose definition at the target the log cannot give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown {
    /// What.
    pub kind: ObjectKind,
    /// Its database.
    pub db: String,
    /// Its name.
    pub name: String,
    /// The statement that made it unknown.
    pub statement: String,
}

/// The objects at the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectsAtTarget {
    /// Known definitions, in the order to create them (triggers in firing order).
    pub objects: Vec<SchemaObject>,
    /// Objects that exist but whose definition is not known.
    pub unknown: Vec<Unknown>,
}

impl ObjectsAtTarget {
    /// Keeps the objects `keep` accepts (by database and, for triggers, table).
    pub fn retain(&mut self, keep: impl Fn(&str, Option<&str>) -> bool) {
        self.objects.retain(|o| keep(&o.db, o.table.as_deref()));
        self.unknown.retain(|u| keep(&u.db, None));
    }

    /// Err naming the first unknown object and the statement that made it so.
    pub fn check(&self) -> Result<(), String> {
        match self.unknown.first() {
            None => Ok(()),
            Some(u) => Err(format!(
                "the definition of {} {}.{} at the target is not known: {:?} changed it \
                 without logging its whole definition; restore with --tables (tables only), \
                 or take a baseline after it",
                u.kind.keyword().to_ascii_lowercase(),
                u.db,
                u.name,
                u.statement
            )),
        }
    }
}

/// `base` (a full baseline's objects) with the recorded DDL statements `ddls` (after the
/// baseline up to the target, in log order) applied. Err: a statement about objects that
/// cannot be read (it names the statement).
pub fn objects_at_target<'a>(
    base: Vec<SchemaObject>,
    ddls: impl IntoIterator<Item = &'a str>,
) -> Result<ObjectsAtTarget, String> {
    let mut s = ObjectsAtTarget {
        objects: base,
        unknown: Vec::new(),
    };
    for text in ddls {
        let changes = object_changes(text).map_err(|why| {
            format!(
                "the logged statement {text:?} may change a view, trigger, routine or event, \
                 but it cannot be read ({why}); restore with --tables (tables only), or take a \
                 baseline after it"
            )
        })?;
        for c in changes {
            apply(&mut s, c, text);
        }
    }
    Ok(s)
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn apply(s: &mut ObjectsAtTarget, c: ObjectChange, text: &str) {
    match c {
        ObjectChange::Define {
            mut object,
            if_not_exists,
        } => {
            let (kind, db, name) = (object.kind, object.db.clone(), object.name.clone());
            let unknown = s
                .unknown
                .iter()
                .any(|u| u.kind == kind && same(&u.db, &db) && same(&u.name, &name));
            let at = s.objects.iter().position(|o| o.is(kind, &db, &name));
            if if_not_exists && (at.is_some() || unknown) {
                return;
            }
            s.unknown
                .retain(|u| !(u.kind == kind && same(&u.db, &db) && same(&u.name, &name)));
            match at {
                Some(i) => {
                    let old = &s.objects[i];
                    if object.charset_client.is_empty() {
                        object.charset_client = old.charset_client.clone();
                        object.collation_connection = old.collation_connection.clone();
                    }
                    s.objects[i] = object;
                }
                None => s.objects.push(object),
            }
        }
        ObjectChange::Drop { kind, db, name } => {
            s.objects.retain(|o| !o.is(kind, &db, &name));
            s.unknown
                .retain(|u| !(u.kind == kind && same(&u.db, &db) && same(&u.name, &name)));
        }
        ObjectChange::Altered { kind, db, name } => {
            s.objects.retain(|o| !o.is(kind, &db, &name));
            if let Some(u) = s
                .unknown
                .iter_mut()
                .find(|u| u.kind == kind && same(&u.db, &db) && same(&u.name, &name))
            {
                u.statement = text.to_string();
            } else {
                s.unknown.push(Unknown {
                    kind,
                    db,
                    name,
                    statement: text.to_string(),
                });
            }
        }
        ObjectChange::DropTable(t) => s.objects.retain(|o| {
            !(o.kind == ObjectKind::Trigger
                && same(&o.db, &t.db)
                && o.table.as_deref().is_some_and(|x| same(x, &t.table)))
        }),
        ObjectChange::RenameTable { from, to } => {
            // RENAME TABLE also renames a view; its text still names the old one.
            let view = |o: &SchemaObject| o.is(ObjectKind::View, &from.db, &from.table);
            if s.objects.iter().any(view) {
                s.objects.retain(|o| !view(o));
                s.unknown.push(Unknown {
                    kind: ObjectKind::View,
                    db: to.db.clone(),
                    name: to.table.clone(),
                    statement: text.to_string(),
                });
            }
            for o in &mut s.objects {
                if o.kind == ObjectKind::Trigger
                    && same(&o.db, &from.db)
                    && o.table.as_deref().is_some_and(|x| same(x, &from.table))
                {
                    match retarget_trigger(&o.create, &to.table).filter(|_| same(&from.db, &to.db))
                    {
                        Some(create) => {
                            o.create = create;
                            o.table = Some(to.table.clone());
                        }
                        None => {
                            s.unknown.push(Unknown {
                                kind: ObjectKind::Trigger,
                                db: o.db.clone(),
                                name: o.name.clone(),
                                statement: text.to_string(),
                            });
                            o.name.clear();
                        }
                    }
                }
            }
            s.objects.retain(|o| !o.name.is_empty());
        }
        ObjectChange::DropDatabase(db) => {
            s.objects.retain(|o| !same(&o.db, &db));
            s.unknown.retain(|u| !same(&u.db, &db));
        }
    }
}

/// A trigger's `CREATE` text with the table after `{BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON`
/// replaced by `table` (None: that place was not found).
pub fn retarget_trigger(create: &str, table: &str) -> Option<String> {
    // Words and quoted names with their byte spans, up to the table's name.
    let b = create.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'`' || c == b'\'' || c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() {
                if b[i] == b'\\' && c != b'`' {
                    i += 2;
                    continue;
                }
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            spans.push((start, i.min(b.len())));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            if c == b'.' {
                spans.push((i, i + 1));
            }
            i += 1;
        }
    }
    let word = |k: usize| create.get(spans[k].0..spans[k].1).unwrap_or("");
    let k = (0..spans.len().saturating_sub(3)).find(|&k| {
        let (a, e, on) = (word(k), word(k + 1), word(k + 2));
        (same(a, "BEFORE") || same(a, "AFTER"))
            && ["INSERT", "UPDATE", "DELETE"].iter().any(|x| same(e, x))
            && same(on, "ON")
    })?;
    let first = k + 3;
    let last = if spans.len() > first + 2 && word(first + 1) == "." {
        first + 2
    } else {
        first
    };
    let (start, end) = (spans[first].0, spans[last].1);
    Some(format!(
        "{}{}{}",
        &create[..start],
        dbtrail_core::schema::quote_ident(table),
        &create[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: ObjectKind, name: &str, table: Option<&str>, create: &str) -> SchemaObject {
        SchemaObject {
            kind,
            db: "d".into(),
            name: name.into(),
            table: table.map(Into::into),
            create: create.into(),
            charset_client: "utf8mb4".into(),
            collation_connection: "utf8mb4_0900_ai_ci".into(),
            columns: vec!["id".into()],
        }
    }

    fn base() -> Vec<SchemaObject> {
        vec![
            obj(
                ObjectKind::View,
                "v",
                None,
                "CREATE VIEW `v` AS select 1 AS `id`",
            ),
            obj(
                ObjectKind::Trigger,
                "tr",
                Some("t"),
                "CREATE DEFINER=`root`@`%` TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
            ),
            obj(
                ObjectKind::Procedure,
                "p",
                None,
                "CREATE PROCEDURE `p`() SELECT 1",
            ),
            obj(
                ObjectKind::Event,
                "e",
                None,
                "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1",
            ),
        ]
    }

    #[test]
    fn statements_after_the_baseline_give_the_objects_at_the_target() {
        let s = objects_at_target(
            base(),
            [
                "USE `d`; CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY \
                 DEFINER VIEW `v` AS select 2 AS `id`",
                "USE `d`; DROP TRIGGER tr",
                "USE `d`; CREATE DEFINER=`root`@`%` TRIGGER tr AFTER INSERT ON t FOR EACH ROW SET @x = 1",
                "USE `d`; CREATE DEFINER=`root`@`%` PROCEDURE `p2`() SELECT 2",
                "USE `d`; DROP EVENT e",
                "USE `d`; INSERT INTO x VALUES (1)",
            ],
        )
        .expect("objects");
        assert!(s.unknown.is_empty());
        let names: Vec<(ObjectKind, &str)> = s
            .objects
            .iter()
            .map(|o| (o.kind, o.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (ObjectKind::View, "v"),
                (ObjectKind::Procedure, "p"),
                (ObjectKind::Trigger, "tr"),
                (ObjectKind::Procedure, "p2")
            ]
        );
        assert!(s.objects[0].create.contains("select 2"));
        assert_eq!(
            s.objects[0].charset_client, "utf8mb4",
            "kept from the replaced view"
        );
        assert!(
            s.objects[0].columns.is_empty(),
            "a new definition's columns are unknown"
        );
        assert!(s.objects[2].create.contains("AFTER INSERT"));
    }

    #[test]
    fn partial_alters_are_unknown_until_redefined_and_tables_carry_triggers() {
        let s = objects_at_target(base(), ["USE `d`; ALTER PROCEDURE p COMMENT 'x'"]).expect("ok");
        assert!(s.check().unwrap_err().contains("ALTER PROCEDURE p"));
        let mut other = s.clone();
        other.retain(|db, _| db != "d");
        assert!(other.check().is_ok());
        let s = objects_at_target(
            base(),
            [
                "USE `d`; ALTER PROCEDURE p COMMENT 'x'",
                "USE `d`; DROP PROCEDURE IF EXISTS p",
                "USE `d`; CREATE PROCEDURE p() SELECT 3",
            ],
        )
        .expect("ok");
        assert!(s.check().is_ok());
        let s = objects_at_target(base(), ["USE `d`; RENAME TABLE t TO u"]).expect("ok");
        let tr = s.objects.iter().find(|o| o.name == "tr").expect("moved");
        assert_eq!(tr.table.as_deref(), Some("u"));
        assert!(
            tr.create.contains("BEFORE INSERT ON `u` FOR EACH ROW"),
            "{}",
            tr.create
        );
        let s = objects_at_target(base(), ["USE `d`; RENAME TABLE v TO v2"]).expect("ok");
        assert!(s.check().unwrap_err().contains("view d.v2"));
        let s = objects_at_target(base(), ["USE `d`; ALTER EVENT e RENAME TO e2"]).expect("ok");
        assert!(s.check().unwrap_err().contains("event d.e2"));
        let s = objects_at_target(base(), ["USE `d`; DROP TABLE t"]).expect("ok");
        assert!(s.objects.iter().all(|o| o.kind != ObjectKind::Trigger));
        let s = objects_at_target(base(), ["DROP DATABASE d"]).expect("ok");
        assert!(s.objects.is_empty());
        assert!(objects_at_target(base(), ["DROP VIEW v"]).is_err());
    }

    #[test]
    fn retargets_qualified_names() {
        assert_eq!(
            retarget_trigger(
                "CREATE TRIGGER `a b` AFTER delete on `d`.`t` FOR EACH ROW SET @on = 1",
                "n"
            ),
            Some("CREATE TRIGGER `a b` AFTER delete on `n` FOR EACH ROW SET @on = 1".into())
        );
    }
}
