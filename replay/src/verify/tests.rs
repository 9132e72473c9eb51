//! Verification against an in-memory model: a keyed and a key-less table, a "rebuild" that is
//! the live table with random mutations, rows fed in any order and split over lanes. The
//! digests are equal exactly when there is no mutation, and the differences named are the
//! model's (computed by comparing the two tables directly, per key or per row count).
use super::*;
use crate::restore::tests::schemas;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Mutation {
    /// Drop the i-th row.
    Drop(usize),
    /// Add a row (keyed: a new key; key-less: any row, maybe a copy).
    Add(i64, i64),
    /// Change the non-key column of the i-th row.
    Change(usize, i64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Drop),
        (0i64..400, 0i64..5).prop_map(|(k, v)| Mutation::Add(k, v)),
        (any::<usize>(), 0i64..5).prop_map(|(i, v)| Mutation::Change(i, v)),
    ]
}

fn keyed_row(k: i64, v: i64) -> Row {
    vec![Value::Int(k), Value::Str(format!("v{v}").into_bytes())]
}

fn bag_row(x: i64, y: i64) -> Row {
    vec![Value::Int(x), Value::Int(y)]
}

fn mutate(t: usize, rows: &mut Vec<Row>, m: &Mutation) {
    match m {
        Mutation::Drop(i) if !rows.is_empty() => {
            let i = i % rows.len();
            rows.remove(i);
        }
        Mutation::Add(k, v) => {
            if t == 0 {
                if !rows.iter().any(|r| r[0] == Value::Int(*k)) {
                    rows.push(keyed_row(*k, *v));
                }
            } else {
                rows.push(bag_row(*k % 8, *v));
            }
        }
        Mutation::Change(i, v) if !rows.is_empty() => {
            let i = i % rows.len();
            let k = match rows[i][0] {
                Value::Int(k) => k,
                _ => unreachable!("the model's keys are ints"),
            };
            rows[i] = if t == 0 {
                keyed_row(k, *v)
            } else {
                bag_row(k, *v)
            };
        }
        _ => {}
    }
}

/// The model's differences, rendered to compare with [`differences`]'s.
fn model(t: usize, live: &[Row], rebuilt: &[Row]) -> Vec<String> {
    let s = &schemas()[t];
    let mut out = Vec::new();
    if t == 0 {
        let l: BTreeMap<String, &Row> = live.iter().map(|r| (describe_row_key(s, r), r)).collect();
        let r: BTreeMap<String, &Row> = rebuilt
            .iter()
            .map(|r| (describe_row_key(s, r), r))
            .collect();
        for (k, a) in &l {
            match r.get(k) {
                None => out.push(format!("missing {k} x1")),
                Some(b) if a != b => out.push(format!("differs {k} [v]")),
                Some(_) => {}
            }
        }
        for k in r.keys().filter(|k| !l.contains_key(*k)) {
            out.push(format!("extra {k} x1"));
        }
    } else {
        let count = |rows: &[Row]| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for r in rows {
                *m.entry(describe_row_key(s, r)).or_default() += 1;
            }
            m
        };
        let (l, r) = (count(live), count(rebuilt));
        for k in l.keys().chain(r.keys()).collect::<BTreeSet<_>>() {
            let (a, b) = (
                l.get(k).copied().unwrap_or(0),
                r.get(k).copied().unwrap_or(0),
            );
            if a > b {
                out.push(format!("missing {k} x{}", a - b));
            } else if b > a {
                out.push(format!("extra {k} x{}", b - a));
            }
        }
    }
    out.sort();
    out
}

fn render(d: &Difference) -> String {
    match d {
        Difference::Missing { key, copies } => format!("missing {key} x{copies}"),
        Difference::Extra { key, copies } => format!("extra {key} x{copies}"),
        Difference::Differs { key, columns } => {
            let names: Vec<&str> = columns.iter().map(|c| c.column.as_str()).collect();
            format!("differs {key} [{}]", names.join(","))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn digests_find_exactly_the_models_differences(
        t in 0usize..2,
        n in 0usize..120,
        mutations in prop::collection::vec(mutation(), 0..6),
        lanes in 1usize..4,
        seed in any::<u64>(),
    ) {
        let s = &schemas()[t];
        let live: Vec<Row> = (0..n as i64)
            .map(|i| if t == 0 { keyed_row(i * 3, i % 5) } else { bag_row(i % 8, i % 3) })
            .collect();
        let mut rebuilt = live.clone();
        for m in &mutations {
            mutate(t, &mut rebuilt, m);
        }
        // The rebuild's rows in another order, over lanes.
        let mut order: Vec<usize> = (0..rebuilt.len()).collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let rows = Rows::new(s);
        let mut d_live = Digest::default();
        for r in &live {
            d_live.add(&rows, r);
        }
        let mut d_rebuilt = Digest::default();
        for lane in 0..lanes {
            let mut part = Digest::default();
            for (j, &i) in order.iter().enumerate() {
                if j % lanes == lane {
                    part.add(&rows, &rebuilt[i]);
                }
            }
            d_rebuilt.merge(&part);
        }
        prop_assert_eq!(d_rebuilt.rows(), rebuilt.len() as u64);
        let want = model(t, &live, &rebuilt);
        let buckets = d_live.differing(&d_rebuilt);
        prop_assert_eq!(buckets.is_empty(), want.is_empty(), "buckets {:?}, model {:?}", buckets, want);
        let mut a = Collect::new(s, buckets.clone(), 1000);
        for r in &live {
            a.offer(r);
        }
        let mut b = Collect::new(s, buckets, 1000);
        for &i in &order {
            b.offer(&rebuilt[i]);
        }
        prop_assert_eq!(a.dropped + b.dropped, 0);
        let mut got: Vec<String> = differences(s, &a.kept, &b.kept).iter().map(render).collect();
        got.sort();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn the_limit_counts_what_it_drops() {
    let s = &schemas()[1];
    let rows = Rows::new(s);
    let r = bag_row(1, 1);
    let mut c = Collect::new(s, [rows.bucket(&r)].into(), 2);
    for _ in 0..5 {
        c.offer(&r);
    }
    assert_eq!((c.kept.len(), c.dropped), (2, 3));
}
