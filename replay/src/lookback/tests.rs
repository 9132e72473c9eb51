//! Looking back against the in-memory model of the restore engine's tests: random histories
//! over a keyed and a key-less table; an image at any boundary A, a target at any boundary B
//! (forward or backward): every key's rows at B from [`key_at`] == the model's; the diff of any
//! two boundaries == the difference of the model's states; a key's history == its changes.
use super::*;
use crate::restore::tests::{Model, op, record, schemas};
use crate::restore::{TableInput, Window};
use proptest::prelude::*;

fn image(dir: &std::path::Path, s: &TableSchema, rows: &[Row], name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).expect("create");
    let mut w = crate::baseline::BaselineWriter::new(f, s, Vec::new(), 5).expect("writer");
    for r in rows {
        w.push(r).expect("push");
    }
    w.finish().expect("finish");
    path
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

/// The key of table `t` (`id=..` for the keyed one, `x=..` for the key-less one).
fn spec_of(t: usize, id: i64) -> KeySpec {
    KeySpec::parse(&if t == 0 {
        format!("id={id}")
    } else {
        format!("x={id}")
    })
    .expect("spec")
}

fn names(change: &RowChange, k: i64) -> bool {
    let is = |r: &Row| r[0] == Value::Int(k);
    match change {
        RowChange::Insert { after } => is(after),
        RowChange::Delete { before } => is(before),
        RowChange::Update { before, after } => is(before) || is(after),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn keys_diffs_and_histories_give_the_model(
        txns in prop::collection::vec(prop::collection::vec(op(), 1..4), 0..30),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        c in any::<prop::sample::Index>(),
        parts in 1u64..4,
    ) {
        let schemas = schemas();
        let (log, states, id) = record(&txns);
        let states: Vec<Model> = states.into_iter().map(|(m, _)| m).collect();
        // Boundary i is the state after i transactions: commit times up to 1000 * i.
        let ia = a.index(states.len());
        let ib = b.index(states.len());
        let backward = ia > ib;
        let (base, want) = (&states[ia], &states[ib]);
        let (lo, hi) = if backward { (ib, ia) } else { (ia, ib) };
        let first_after = |upto: usize| {
            log.changes
                .iter()
                .find(|(_, c)| c.commit_us > 1_000 * upto as i64)
                .map_or(id, |(_, c)| c.event_id)
        };
        let window = Window {
            cut: first_after(lo),
            end: first_after(hi),
            since_us: 1_000 * lo as i64 + 1,
            until_us: 1_000 * hi as i64,
        };
        let dir = tempfile::tempdir().expect("tmp");
        for (t, s) in schemas.iter().enumerate() {
            let rows = base.rows(t as u32);
            let half = rows.len() / 2;
            let input = TableInput {
                table: s.table.clone(),
                window,
                backward,
                rows: rows.len() as u64,
                create_table: String::new(),
                table_id: Some(t as u32),
                files: vec![
                    image(dir.path(), s, &rows[..half], &format!("{t}-0.parquet")),
                    image(dir.path(), s, &rows[half..], &format!("{t}-1.parquet")),
                ],
                requested: true,
            };
            for k in 0..42i64 {
                let (got, _, _) = key_at(&log, &input, &spec_of(t, k)).expect("key_at");
                let expect: Vec<Row> = want
                    .rows(t as u32)
                    .into_iter()
                    .filter(|r| r[0] == Value::Int(k))
                    .collect();
                prop_assert_eq!(sorted(got), expect, "table {} key {} at {}", s.table, k, ib);
            }
        }
        // diff(i, j) for i <= j: the model's states at i and j, per key / per row copy.
        let ic = c.index(states.len());
        let (d0, d1) = if ic < ib { (ic, ib) } else { (ib, ic) };
        let span = Span { since_us: 1_000 * d0 as i64 + 1, until_us: 1_000 * d1 as i64 };
        for t in 0..schemas.len() {
            let mut got: Vec<DiffEntry> = Vec::new();
            for p in 0..parts {
                got.extend(diff_pass(&log, t as u32, span, (parts, p)).expect("diff").0);
            }
            let before = states[d0].rows(t as u32);
            let after = states[d1].rows(t as u32);
            if t == 0 {
                let find = |rows: &[Row], k: &Value| rows.iter().find(|r| &r[0] == k).cloned();
                let mut seen = std::collections::HashSet::new();
                let mut expect: Vec<(Option<Row>, Option<Row>)> = Vec::new();
                for k in before.iter().chain(&after).map(|r| r[0].clone()) {
                    if !seen.insert(format!("{k:?}")) {
                        continue;
                    }
                    let (b, a) = (find(&before, &k), find(&after, &k));
                    if b != a {
                        expect.push((b, a));
                    }
                }
                let mut got: Vec<(Option<Row>, Option<Row>)> =
                    got.into_iter().map(|e| (e.before, e.after)).collect();
                got.sort_by_key(|e| format!("{e:?}"));
                expect.sort_by_key(|e| format!("{e:?}"));
                prop_assert_eq!(got, expect, "keyed diff {}..{}", d0, d1);
            } else {
                // Net copies per distinct row.
                let mut net: BTreeMap<String, i64> = BTreeMap::new();
                for r in &before {
                    *net.entry(format!("{r:?}")).or_default() -= 1;
                }
                for r in &after {
                    *net.entry(format!("{r:?}")).or_default() += 1;
                }
                net.retain(|_, n| *n != 0);
                let got: BTreeMap<String, i64> = got
                    .into_iter()
                    .map(|e| (format!("{:?}", e.before.or(e.after).expect("row")), e.copies))
                    .collect();
                prop_assert_eq!(got, net, "bag diff {}..{}", d0, d1);
            }
        }
        // A key's history: every logged change naming it, in order.
        let all = Span { since_us: i64::MIN, until_us: i64::MAX };
        for k in 0..42i64 {
            let mut got = Vec::new();
            history(&log, 0, &spec_of(0, k), all, &mut |v| {
                got.push(v.change.event_id);
                true
            })
            .expect("history");
            let expect: Vec<u64> = log
                .changes
                .iter()
                .filter(|(t, c)| *t == 0 && names(&c.change, k))
                .map(|(_, c)| c.event_id)
                .collect();
            prop_assert_eq!(got, expect);
        }
    }
}
