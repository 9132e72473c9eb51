//! The cascade derivation against an in-memory model of InnoDB's foreign-key actions: random
//! histories on parent -> child -> grandchild tables and a self-referencing table, where the
//! "binlog" holds only the statements' own rows (as InnoDB's native foreign keys log them);
//! any baseline and any later target rebuilt from the log equals the model at the target.
use super::*;
use dbtrail_core::{ColumnDef, ColumnType};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn schema(name: &str, fks: Vec<ForeignKey>) -> TableSchema {
    let mut c2 = ColumnDef::new("ref", ColumnType::Int);
    c2.nullable = true;
    TableSchema {
        table: TableRef::new("db", name),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::Int),
            c2,
            ColumnDef::new("v", ColumnType::Int),
        ],
        primary_key: vec![0],
        foreign_keys: fks,
    }
}

fn fk(name: &str, parent: &str, on_delete: FkAction, on_update: FkAction) -> ForeignKey {
    ForeignKey {
        name: name.into(),
        columns: vec!["ref".into()],
        parent: TableRef::new("db", parent),
        parent_columns: vec!["id".into()],
        on_delete,
        on_update,
    }
}

/// A table in the model: id -> (ref, v).
type Table = BTreeMap<i64, (Option<i64>, i64)>;

fn row(id: i64, r: Option<i64>, v: i64) -> Row {
    vec![
        Value::Int(id),
        r.map_or(Value::Null, Value::Int),
        Value::Int(v),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum T {
    P,
    C,
    G,
    S,
}

#[derive(Clone, Debug)]
struct Model {
    tables: BTreeMap<T, Table>,
    /// Logged changes: (event id, table, change).
    log: Vec<(u64, T, RowChange)>,
    c_delete: FkAction,
    c_update: FkAction,
}

impl Model {
    fn t(&mut self, t: T) -> &mut Table {
        self.tables.entry(t).or_default()
    }
    fn get(&self, t: T) -> Table {
        self.tables.get(&t).cloned().unwrap_or_default()
    }
    fn logit(&mut self, t: T, c: RowChange) {
        let id = self.log.len() as u64 * 3 + 7; // ids need not be dense
        self.log.push((id, t, c));
    }
    /// The child table and actions of each parent.
    fn children(&self, parent: T) -> Vec<(T, FkAction, FkAction)> {
        match parent {
            T::P => vec![(T::C, self.c_delete, self.c_update)],
            T::C => vec![(T::G, FkAction::Cascade, FkAction::Cascade)],
            T::S => vec![(T::S, FkAction::Cascade, FkAction::Cascade)],
            T::G => vec![],
        }
    }
    /// Can the parent key `k` of `t` be deleted / re-keyed (RESTRICT children)?
    fn restricted(&self, t: T, k: i64, update: bool) -> bool {
        self.children(t).iter().any(|(c, d, u)| {
            let a = if update { *u } else { *d };
            matches!(a, FkAction::Restrict | FkAction::NoAction)
                && self.get(*c).values().any(|(r, _)| *r == Some(k))
        })
    }
    /// The engine's actions on the children of `t` when key `k` goes (new: re-keyed to).
    fn cascade(&mut self, t: T, k: i64, new: Option<i64>) {
        for (c, d, u) in self.children(t) {
            let action = if new.is_some() { u } else { d };
            let hit: Vec<i64> = self
                .get(c)
                .iter()
                .filter(|(_, (r, _))| *r == Some(k))
                .map(|(id, _)| *id)
                .collect();
            for id in hit {
                match (action, new) {
                    (FkAction::Cascade, None) => {
                        let gone = self.t(c).remove(&id);
                        if gone.is_some() {
                            self.cascade(c, id, None);
                        }
                    }
                    (FkAction::Cascade, Some(n)) => {
                        if let Some(e) = self.t(c).get_mut(&id) {
                            e.0 = Some(n);
                        }
                    }
                    (FkAction::SetNull, _) => {
                        if let Some(e) = self.t(c).get_mut(&id) {
                            e.0 = None;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    fn parent_of(t: T) -> Option<T> {
        match t {
            T::C => Some(T::P),
            T::G => Some(T::C),
            T::S => Some(T::S),
            T::P => None,
        }
    }
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Insert(t, id, r, v) => {
                if self.get(t).contains_key(&id) {
                    return;
                }
                let r = Model::parent_of(t).and_then(|p| {
                    let keys: Vec<i64> = self.get(p).keys().copied().collect();
                    r.filter(|_| !keys.is_empty()).map(|i| keys[i % keys.len()])
                });
                if (t == T::S && r == Some(id)) || (t == T::G && r.is_none()) {
                    return;
                }
                self.t(t).insert(id, (r, v));
                self.logit(
                    t,
                    RowChange::Insert {
                        after: row(id, r, v),
                    },
                );
            }
            Op::Delete(t, i) => {
                let keys: Vec<i64> = self.get(t).keys().copied().collect();
                if keys.is_empty() {
                    return;
                }
                let id = keys[i % keys.len()];
                if self.restricted(t, id, false) {
                    return;
                }
                let (r, v) = self.get(t)[&id];
                self.t(t).remove(&id);
                self.logit(
                    t,
                    RowChange::Delete {
                        before: row(id, r, v),
                    },
                );
                self.cascade(t, id, None);
            }
            Op::Rekey(t, i, new) => {
                let keys: Vec<i64> = self.get(t).keys().copied().collect();
                if keys.is_empty() || self.get(t).contains_key(&new) {
                    return;
                }
                let id = keys[i % keys.len()];
                if self.restricted(t, id, true) {
                    return;
                }
                // A self-referencing row pointing at itself would need its own cascade.
                if t == T::S && self.get(t).values().any(|(r, _)| *r == Some(id)) {
                    return;
                }
                let (r, v) = self.get(t)[&id];
                self.t(t).remove(&id);
                self.t(t).insert(new, (r, v));
                self.logit(
                    t,
                    RowChange::Update {
                        before: row(id, r, v),
                        after: row(new, r, v),
                    },
                );
                self.cascade(t, id, Some(new));
            }
            Op::SetRef(t, i, r) => {
                let Some(p) = Model::parent_of(t) else {
                    return;
                };
                let keys: Vec<i64> = self.get(t).keys().copied().collect();
                if keys.is_empty() {
                    return;
                }
                let id = keys[i % keys.len()];
                let pkeys: Vec<i64> = self.get(p).keys().copied().collect();
                let nr = r
                    .filter(|_| !pkeys.is_empty())
                    .map(|j| pkeys[j % pkeys.len()]);
                if (t == T::S && nr == Some(id)) || (t == T::G && nr.is_none()) {
                    return;
                }
                let (or, v) = self.get(t)[&id];
                self.t(t).insert(id, (nr, v + 1));
                self.logit(
                    t,
                    RowChange::Update {
                        before: row(id, or, v),
                        after: row(id, nr, v + 1),
                    },
                );
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(T, i64, Option<usize>, i64),
    Delete(T, usize),
    Rekey(T, usize, i64),
    SetRef(T, usize, Option<usize>),
}

fn table() -> impl Strategy<Value = T> {
    prop_oneof![Just(T::P), Just(T::C), Just(T::G), Just(T::S)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (table(), 0i64..12, prop::option::weighted(0.8, any::<usize>()), 0i64..100)
            .prop_map(|(t, id, r, v)| Op::Insert(t, id, r, v)),
        2 => (table(), any::<usize>()).prop_map(|(t, i)| Op::Delete(t, i)),
        1 => (table(), any::<usize>(), 0i64..16).prop_map(|(t, i, n)| Op::Rekey(t, i, n)),
        2 => (table(), any::<usize>(), prop::option::weighted(0.8, any::<usize>()))
            .prop_map(|(t, i, r)| Op::SetRef(t, i, r)),
    ]
}

fn action() -> impl Strategy<Value = FkAction> {
    prop_oneof![
        Just(FkAction::Cascade),
        Just(FkAction::SetNull),
        Just(FkAction::Restrict)
    ]
}

fn rows_of(t: &Table) -> Vec<Row> {
    t.iter().map(|(id, (r, v))| row(*id, *r, *v)).collect()
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| match r[0] {
        Value::Int(i) => i,
        _ => i64::MIN,
    });
    rows
}

/// Rebuilds every child table from `base` (the model at the baseline) and the log entries
/// after it up to `end` (exclusive), as a restore does.
fn rebuild_all(m: &Model, base_model: &Model, from: usize, end: usize) -> BTreeMap<T, Vec<Row>> {
    let schemas: BTreeMap<T, TableSchema> = [
        (T::P, schema("p", vec![])),
        (
            T::C,
            schema("c", vec![fk("c_p", "p", m.c_delete, m.c_update)]),
        ),
        (T::G, {
            // Keyed by (id, ref): re-keying its parent moves its rows to a new key.
            let mut g = schema(
                "g",
                vec![fk("g_c", "c", FkAction::Cascade, FkAction::Cascade)],
            );
            g.primary_key = vec![0, 1];
            g
        }),
        (
            T::S,
            schema(
                "s",
                vec![fk("s_s", "s", FkAction::Cascade, FkAction::Cascade)],
            ),
        ),
    ]
    .into_iter()
    .collect();
    let log = &m.log[from..end];
    let own = |t: T| -> Vec<(u64, RowChange)> {
        log.iter()
            .filter(|(_, x, _)| *x == t)
            .map(|(id, _, c)| (*id, c.clone()))
            .collect()
    };
    let mut out = BTreeMap::new();
    let mut derived: BTreeMap<T, Vec<Derived>> = BTreeMap::new();
    // P has no parent: the plain fold.
    let mut fold = crate::fold::Fold::new(&[0]);
    for (_, c) in own(T::P) {
        fold.push(c);
    }
    let mut p_rows = Vec::new();
    fold.apply(rows_of(&base_model.get(T::P)), |r| p_rows.push(r))
        .expect("fold");
    out.insert(T::P, sorted(p_rows));
    for t in [T::C, T::G, T::S] {
        let parent = Model::parent_of(t).expect("child");
        let s = &schemas[&t];
        let ps = &schemas[&parent];
        let parent_derived = derived.get(&parent).cloned().unwrap_or_default();
        let base = || -> Result<Triggers, CascadeError> {
            let mut tr =
                Triggers::new(s, |p| *p == ps.table)?.unwrap_or_else(|| Triggers::empty(s));
            for (id, c) in own(parent) {
                tr.add_parent_change(&ps.table, ps, (id, 0), &c)?;
            }
            if parent != t {
                for d in &parent_derived {
                    tr.add_parent_change(&ps.table, ps, d.at, &d.change)?;
                }
            }
            Ok(tr)
        };
        let pass = |tr: &Triggers, mv: &[(At, Row)]| {
            rebuild(s, rows_of(&base_model.get(t)), own(t), mv, tr, |_| {})
        };
        let Settled {
            triggers: tr,
            moved: mv,
            derived: d,
        } = settle(&s.table, s, base, pass).expect("settle");
        let mut rows = Vec::new();
        let again = rebuild(s, rows_of(&base_model.get(t)), own(t), &mv, &tr, |r| {
            rows.push(r)
        })
        .expect("rebuild");
        assert_eq!(again, d, "the settled pass derives the same changes");
        derived.insert(t, d);
        out.insert(t, sorted(rows));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// baseline@A + logged changes (A, B] + derived cascades == the model at B, for every
    /// table of a parent -> child -> grandchild chain and a self-referencing table.
    #[test]
    fn derived_cascades_match_the_engine(
        ops in prop::collection::vec(op(), 0..80),
        c_delete in action(),
        c_update in action(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let mut m = Model { tables: BTreeMap::new(), log: Vec::new(), c_delete, c_update };
        // States after each op, with the log length then.
        let mut states = vec![(m.clone(), 0usize)];
        for o in &ops {
            m.apply(o);
            states.push((m.clone(), m.log.len()));
        }
        let ia = a.index(states.len());
        let ib = ia + b.index(states.len() - ia);
        let (base, from) = &states[ia];
        let (want, end) = &states[ib];
        let got = rebuild_all(&m, base, *from, *end);
        for t in [T::P, T::C, T::G, T::S] {
            prop_assert_eq!(&got[&t], &rows_of(&want.get(t)), "table {:?}", t);
        }
    }
}

/// Triggers of `c` from changes of the parent `p`, finished.
fn triggers(c: &TableSchema, p: &TableSchema, changes: &[(At, RowChange)]) -> Triggers {
    let mut tr = Triggers::new(c, |_| true).expect("ok").expect("some");
    for (at, ch) in changes {
        tr.add_parent_change(&p.table, p, *at, ch).expect("add");
    }
    tr.finish();
    tr
}

#[test]
fn set_null_on_delete_and_cascade_on_update() {
    let c = schema(
        "c",
        vec![fk("c_p", "p", FkAction::SetNull, FkAction::Cascade)],
    );
    let p = schema("p", vec![]);
    let tr = triggers(
        &c,
        &p,
        &[
            (
                (10, 0),
                RowChange::Update {
                    before: row(1, None, 0),
                    after: row(5, None, 0),
                },
            ),
            (
                (20, 0),
                RowChange::Delete {
                    before: row(2, None, 0),
                },
            ),
        ],
    );
    let base = vec![
        row(100, Some(1), 1),
        row(101, Some(2), 1),
        row(102, None, 1),
    ];
    let mut rows = Vec::new();
    let d = rebuild(&c, base, vec![], &[], &tr, |r| rows.push(r)).expect("rebuild");
    assert_eq!(
        sorted(rows),
        vec![row(100, Some(5), 1), row(101, None, 1), row(102, None, 1)]
    );
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].at, (10, 1));
}

#[test]
fn a_log_that_contradicts_the_derivation_is_an_error() {
    let c = schema(
        "c",
        vec![fk("c_p", "p", FkAction::Cascade, FkAction::Restrict)],
    );
    let p = schema("p", vec![]);
    let tr = triggers(
        &c,
        &p,
        &[(
            (10, 0),
            RowChange::Delete {
                before: row(1, None, 0),
            },
        )],
    );
    // The log updates child 100 after its parent was deleted: the derivation deleted it.
    let own = vec![(
        11,
        RowChange::Update {
            before: row(100, Some(1), 1),
            after: row(100, Some(1), 2),
        },
    )];
    let err =
        rebuild(&c, vec![row(100, Some(1), 1)], own, &[], &tr, |_| {}).expect_err("disagrees");
    assert!(matches!(err, CascadeError::Disagrees { .. }), "{err}");
}

#[test]
fn case_only_matches_on_collated_strings_are_refused() {
    let mut c = schema(
        "c",
        vec![fk("c_p", "p", FkAction::Cascade, FkAction::Restrict)],
    );
    c.columns[1] = ColumnDef::new("ref", ColumnType::VarChar);
    c.columns[1].collation = Some(255);
    let mut p = schema("p", vec![]);
    p.columns[0] = ColumnDef::new("id", ColumnType::VarChar);
    p.columns[0].collation = Some(255);
    let prow = vec![Value::Str(b"ABC".to_vec()), Value::Null, Value::Int(0)];
    let tr = triggers(&c, &p, &[((10, 0), RowChange::Delete { before: prow })]);
    let child = vec![Value::Int(1), Value::Str(b"abc".to_vec()), Value::Int(0)];
    let err = rebuild(&c, vec![child], vec![], &[], &tr, |_| {}).expect_err("ambiguous");
    assert!(matches!(err, CascadeError::Ambiguous { .. }), "{err}");
}

#[test]
fn keyless_children_of_cascading_keys_are_unsupported() {
    let mut c = schema(
        "c",
        vec![fk("c_p", "p", FkAction::Cascade, FkAction::Restrict)],
    );
    c.primary_key.clear();
    assert!(matches!(
        Triggers::new(&c, |_| true),
        Err(CascadeError::Unsupported { .. })
    ));
    // Not a cascading key: nothing to derive, no error.
    let mut r = schema(
        "r",
        vec![fk("r_p", "p", FkAction::Restrict, FkAction::Restrict)],
    );
    r.primary_key.clear();
    assert!(Triggers::new(&r, |_| true).expect("ok").is_none());
}
