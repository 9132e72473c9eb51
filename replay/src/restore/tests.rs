//! The restore engine against an in-memory model: random histories of inserts, updates,
//! deletes, key changes and key-less duplicates over two tables, logged in an in-memory
//! [`ChangeLog`]; a baseline image written at any transaction boundary; a restore to any later
//! boundary, in any memory bound (hash partitions) and with lanes, read back from the dump
//! with the mydumper parser == the model's state at the target.
use super::*;
use dbtrail_core::history::LoggedChange;
use dbtrail_core::{ColumnDef, ColumnType, RowChange, Value};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The log: (table id, change), in log order.
#[derive(Clone)]
pub(crate) struct MemLog {
    pub(crate) schemas: Vec<TableSchema>,
    pub(crate) changes: Vec<(u32, LoggedChange)>,
    /// The server logged its cascades (from event 0 on); else the log says nothing.
    pub(crate) logged: bool,
}

impl MemLog {
    /// An empty log of `schemas` whose server logged its cascades.
    pub(crate) fn new(schemas: Vec<TableSchema>) -> MemLog {
        MemLog {
            schemas,
            changes: Vec::new(),
            logged: true,
        }
    }
}

impl ChangeLog for MemLog {
    fn table_id(&self, table: &TableRef) -> Result<Option<u32>, HistoryError> {
        Ok(self
            .schemas
            .iter()
            .position(|s| &s.table == table)
            .map(|i| i as u32))
    }

    fn schema(&self, table_id: u32, version: u32) -> Result<Option<TableSchema>, HistoryError> {
        Ok(self
            .schemas
            .get(table_id as usize)
            .filter(|s| s.version == version)
            .cloned())
    }

    fn scan_table(
        &self,
        table_id: u32,
        since_us: i64,
        until_us: i64,
        ids: std::ops::Range<u64>,
        visit: &mut dyn FnMut(LoggedChange) -> bool,
    ) -> Result<(), HistoryError> {
        for (t, c) in &self.changes {
            if *t == table_id
                && c.commit_us >= since_us
                && c.commit_us <= until_us
                && ids.contains(&c.event_id)
                && !visit(c.clone())
            {
                break;
            }
        }
        Ok(())
    }

    fn cascades_logged(&self) -> Result<Vec<(u64, bool)>, HistoryError> {
        Ok(if self.logged {
            vec![(0, true)]
        } else {
            Vec::new()
        })
    }
}

pub(crate) fn schemas() -> Vec<TableSchema> {
    let keyed = TableSchema {
        table: TableRef::new("d", "k"),
        version: 1,
        columns: vec![
            ColumnDef::new("id", ColumnType::Int),
            ColumnDef::new("v", ColumnType::VarChar),
        ],
        primary_key: vec![0],
        foreign_keys: Vec::new(),
    };
    let bag = TableSchema {
        table: TableRef::new("d", "b"),
        version: 1,
        columns: vec![
            ColumnDef::new("x", ColumnType::Int),
            ColumnDef::new("y", ColumnType::Int),
        ],
        primary_key: Vec::new(),
        foreign_keys: Vec::new(),
    };
    vec![keyed, bag]
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Insert(i64, u8),
    Update(usize, u8),
    Rekey(usize, i64),
    Delete(usize),
    BagInsert(i64),
    BagDelete(usize),
    BagUpdate(usize, i64),
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..40, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::Update(i, v)),
        1 => (any::<usize>(), 0i64..40).prop_map(|(i, k)| Op::Rekey(i, k)),
        1 => any::<usize>().prop_map(Op::Delete),
        2 => (0i64..3).prop_map(Op::BagInsert),
        1 => any::<usize>().prop_map(Op::BagDelete),
        1 => (any::<usize>(), 0i64..3).prop_map(|(i, y)| Op::BagUpdate(i, y)),
    ]
}

#[derive(Clone, Default)]
pub(crate) struct Model {
    pub(crate) k: BTreeMap<i64, Vec<u8>>,
    /// Key-less rows, duplicates allowed.
    pub(crate) b: Vec<(i64, i64)>,
}

fn krow(id: i64, v: &[u8]) -> Row {
    vec![Value::Int(id), Value::Str(v.to_vec())]
}

fn brow(x: i64, y: i64) -> Row {
    vec![Value::Int(x), Value::Int(y)]
}

impl Model {
    /// Applies `op`; the change it logs, if any (table id, change).
    pub(crate) fn apply(&mut self, op: &Op) -> Option<(u32, RowChange)> {
        let keys: Vec<i64> = self.k.keys().copied().collect();
        match *op {
            Op::Insert(id, v) if !self.k.contains_key(&id) => {
                let v = format!("v{v}").into_bytes();
                self.k.insert(id, v.clone());
                Some((
                    0,
                    RowChange::Insert {
                        after: krow(id, &v),
                    },
                ))
            }
            Op::Update(i, v) if !keys.is_empty() => {
                let id = keys[i % keys.len()];
                let old = self.k[&id].clone();
                let new = format!("u{v}").into_bytes();
                self.k.insert(id, new.clone());
                Some((
                    0,
                    RowChange::Update {
                        before: krow(id, &old),
                        after: krow(id, &new),
                    },
                ))
            }
            Op::Rekey(i, new) if !keys.is_empty() && !self.k.contains_key(&new) => {
                let id = keys[i % keys.len()];
                let v = self.k.remove(&id).unwrap_or_default();
                self.k.insert(new, v.clone());
                Some((
                    0,
                    RowChange::Update {
                        before: krow(id, &v),
                        after: krow(new, &v),
                    },
                ))
            }
            Op::Delete(i) if !keys.is_empty() => {
                let id = keys[i % keys.len()];
                let v = self.k.remove(&id).unwrap_or_default();
                Some((
                    0,
                    RowChange::Delete {
                        before: krow(id, &v),
                    },
                ))
            }
            Op::BagInsert(x) => {
                self.b.push((x, 0));
                Some((1, RowChange::Insert { after: brow(x, 0) }))
            }
            Op::BagDelete(i) if !self.b.is_empty() => {
                let (x, y) = self.b.remove(i % self.b.len());
                Some((1, RowChange::Delete { before: brow(x, y) }))
            }
            Op::BagUpdate(i, y) if !self.b.is_empty() => {
                let n = i % self.b.len();
                let (x, old) = self.b[n];
                self.b[n] = (x, y);
                Some((
                    1,
                    RowChange::Update {
                        before: brow(x, old),
                        after: brow(x, y),
                    },
                ))
            }
            _ => None,
        }
    }

    pub(crate) fn rows(&self, table: u32) -> Vec<Row> {
        let mut rows: Vec<Row> = match table {
            0 => self.k.iter().map(|(id, v)| krow(*id, v)).collect(),
            _ => self.b.iter().map(|(x, y)| brow(*x, *y)).collect(),
        };
        rows.sort_by_key(|r| format!("{r:?}"));
        rows
    }
}

/// Logs `txns` (transaction n commits at 1000 * (n + 1) µs; event ids 0, 2, 4, ...): the log,
/// `states[i]` = the model after i transactions and the log's length then, and the next
/// event id.
pub(crate) fn record(txns: &[Vec<Op>]) -> (MemLog, Vec<(Model, usize)>, u64) {
    let mut m = Model::default();
    let mut log = MemLog::new(schemas());
    let mut states = vec![(m.clone(), 0usize)];
    let mut id = 0u64;
    for (n, ops) in txns.iter().enumerate() {
        for o in ops {
            if let Some((t, change)) = m.apply(o) {
                log.changes.push((
                    t,
                    LoggedChange {
                        commit_us: 1_000 * (n as i64 + 1),
                        event_id: id,
                        schema_version: 1,
                        gtid: None,
                        change,
                    },
                ));
                id += 2;
            }
        }
        states.push((m.clone(), log.changes.len()));
    }
    (log, states, id)
}

/// The rows of `schema`'s table in the dump at `out`, read with the mydumper parser, sorted
/// like [`Model::rows`].
pub(crate) fn dumped_rows(out: &Path, schema: &TableSchema) -> Vec<Row> {
    let tables = crate::mydumper::tables(out).expect("dump layout");
    let mut got: Vec<Row> = Vec::new();
    if let Some(dt) = tables.iter().find(|d| d.table_ref() == schema.table) {
        for f in &dt.data_files {
            crate::mydumper::for_each_row::<crate::mydumper::MydumperError>(f, schema, |r| {
                got.push(r);
                Ok(())
            })
            .expect("read back");
        }
    }
    got.sort_by_key(|r| format!("{r:?}"));
    got
}

pub(crate) struct Quiet;

impl Progress for Quiet {
    fn table_done(&self, _: &TableRef) {}
    fn rows(&self, _: u64) {}
}

pub(crate) fn create_table(s: &TableSchema) -> String {
    let cols: Vec<String> = s
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Int => format!("`{}` int", c.name),
            _ => format!("`{}` varchar(20)", c.name),
        })
        .collect();
    format!("CREATE TABLE `{}` ({})", s.table.table, cols.join(", "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// image at A + the engine over the log's changes between A and B == the model at B, for
    /// any A and B (forward when A <= B, backward when A > B), any memory bound and lanes.
    #[test]
    fn any_image_and_target_give_the_model_state(
        txns in prop::collection::vec(prop::collection::vec(op(), 1..4), 0..30),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        keys_in_memory in 1u64..12,
        threads in 1usize..4,
    ) {
        let schemas = schemas();
        let (log, states, id) = record(&txns);
        let ia = a.index(states.len());
        let ib = b.index(states.len());
        let backward = ia > ib;
        let (base, image_at) = &states[ia];
        let (want, target_at) = &states[ib];
        // The window: the changes between the image and the target, in log order.
        let (from, to) = if backward { (target_at, image_at) } else { (image_at, target_at) };
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        let mut inputs = Vec::new();
        for (t, s) in schemas.iter().enumerate() {
            let rows = base.rows(t as u32);
            // Table t's image in ranges of t + 2 rows (the last may be empty), as a baseline
            // splits a large table: read in order, they are the table in key order.
            let mut files = Vec::new();
            for (k, range) in rows.chunks(t + 2).chain(std::iter::once(&[][..])).enumerate() {
                let path = dir.path().join(format!("{t}.part-{k}.parquet"));
                let f = std::fs::File::create(&path).expect("create");
                let mut w = crate::baseline::BaselineWriter::new(f, s, Vec::new(), 7).expect("writer");
                for r in range {
                    w.push(r).expect("push");
                }
                w.finish().expect("finish");
                files.push(path);
            }
            inputs.push(TableInput {
                table: s.table.clone(),
                window: Window { cut: 0, end: 0, since_us: 0, until_us: 0 },
                backward,
                rows: rows.len() as u64,
                create_table: create_table(s),
                table_id: Some(t as u32),
                files,
                requested: true,
            });
        }
        let ev = |i: usize| log.changes.get(i).map(|(_, c)| (c.event_id, c.commit_us));
        let window = Window {
            cut: ev(*from).map_or(u64::MAX, |e| e.0),
            end: ev(*to).map_or(id, |e| e.0),
            since_us: ev(*from).map_or(i64::MAX, |e| e.1),
            until_us: if *to > 0 { log.changes[*to - 1].1.commit_us } else { i64::MIN },
        };
        for i in &mut inputs {
            i.window = window;
        }
        let settings = Settings { keys_in_memory, chunk_bytes: 300, statement_bytes: 120, threads };
        rebuild(&log, inputs, &out, &settings, &Quiet).expect("rebuild");
        for (t, s) in schemas.iter().enumerate() {
            prop_assert_eq!(&dumped_rows(&out, s), &want.rows(t as u32), "table {}", s.table);
        }
    }
}
