//! Folding a table's ordered changes into their net effect, and applying that to a baseline.
//!
//! Reconstruction = image + ordered deltas: `state(B) = apply(baseline(A), fold(changes in
//! (A, B]))`, where the changes are in log order. Images are FULL, so the last image of a key
//! wins:
//! - insert(after): key(after) becomes `after`;
//! - update(before, after): when the key changed, key(before) is deleted; key(after) becomes
//!   `after` (a primary-key change is a delete of the old key plus an upsert of the new one);
//! - delete(before): key(before) is deleted.
//!
//! Keys compare by their exact stored bytes (the images carry what the server stored, so a
//! row is always named by the same bytes). Tables without a primary key are multisets of
//! full rows (docs/correctness.md, C12): an insert adds one copy, a delete removes one copy,
//! an update does both, so duplicate rows are never over-deleted.
//!
//! Memory is proportional to the keys touched, not to the table.
//!
//! # Backward from a newer image
//! With FULL images a table is also rebuilt from an image taken AFTER the target:
//! `state(T) = apply(image(I), fold_backward(changes in (T, I]))`, the changes again pushed in
//! log order ([`Fold::backward`]). Per key, the state at T is the before-image of the key's
//! FIRST change after T (absent when that change inserted it; a primary-key update names two
//! keys: its old key had `before`, its new key was absent, or the update would have failed
//! on a duplicate key); a key with no change after T is at T as it is in the image. Why that
//! is exact: a key's value only changes through its logged changes, and the before-image of
//! the first one is the value the key held since T, because nothing changed it in between.
//! So the backward fold keeps the FIRST touch of each key (`or_insert`), where the forward
//! fold keeps the last. For tables without a key (multisets) every change is inverted (an
//! insert removes one copy, a delete adds one, an update does both the other way); additions
//! and removals of copies commute, so their order does not matter, and a removal the image
//! cannot satisfy means the log does not continue to the image.
use dbtrail_core::{Row, RowChange, Value, codec};
use rustc_hash::FxHashMap;

/// Errors while folding.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FoldError {
    /// A delete or update names a row the baseline and earlier changes do not have.
    #[error(
        "a change removes a row that is not there ({what}); the log does not continue the baseline"
    )]
    MissingRow {
        /// Which row.
        what: String,
    },
}

/// What happens to one key.
#[derive(Clone, Debug, PartialEq)]
pub enum Net {
    /// The key ends with this row.
    Upsert(Row),
    /// The key ends absent.
    Delete,
}

/// The net effect of a sequence of changes on one table, or on one hash partition of its
/// keys (see [`Fold::partition`]).
pub struct Fold {
    kind: Kind,
    /// Folding changes after the target onto a newer image (see the module doc).
    backward: bool,
    /// (partitions, this one): only keys whose hash falls in this partition are held.
    part: (u64, u64),
}

enum Kind {
    /// A table with a primary key: key bytes -> net effect.
    Keyed {
        /// Indexes of the key columns.
        pk: Vec<usize>,
        /// Net effect per key.
        net: FxHashMap<Vec<u8>, Net>,
    },
    /// A table without a primary key: full-row bytes -> (row, copies added minus removed).
    Multiset {
        /// Net copies per distinct row.
        net: FxHashMap<Vec<u8>, (Row, i64)>,
    },
}

/// Whether `key` belongs to partition `part.1` of `part.0` (a stable hash of its bytes).
pub(crate) fn mine(part: (u64, u64), key: &[u8]) -> bool {
    if part.0 <= 1 {
        return true;
    }
    // FNV-1a: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % part.0 == part.1
}

/// Appends the key of `row` to `buf` (cleared first): the postcard encodings of its key
/// values, one after the other (each is self-delimiting, so the whole is injective).
pub(crate) fn key_into(buf: &mut Vec<u8>, pk: &[usize], row: &[Value]) {
    buf.clear();
    for i in pk {
        let v = row.get(*i).unwrap_or(&Value::Null);
        // Serializing plain data into a Vec cannot fail.
        if let Ok(out) = postcard::to_extend(v, std::mem::take(buf)) {
            *buf = out;
        }
    }
}

pub(crate) fn key_bytes(pk: &[usize], row: &[Value]) -> Vec<u8> {
    let mut k = Vec::new();
    key_into(&mut k, pk, row);
    k
}

impl Fold {
    /// An empty fold for a table whose primary key is `pk` (empty: no key).
    pub fn new(pk: &[usize]) -> Fold {
        Fold::partition(pk, 1, 0)
    }

    /// An empty fold holding only the keys of hash partition `index` of `parts`. Replaying a
    /// table in `parts` passes, one per partition, each over all its changes and all its
    /// baseline rows, gives the same rows as one pass, with a `parts`-th of the memory:
    /// a key's changes and its baseline row land in the same partition, and every other
    /// row is left to its own pass.
    pub fn partition(pk: &[usize], parts: u64, index: u64) -> Fold {
        let kind = if pk.is_empty() {
            Kind::Multiset {
                net: FxHashMap::default(),
            }
        } else {
            Kind::Keyed {
                pk: pk.to_vec(),
                net: FxHashMap::default(),
            }
        };
        Fold {
            kind,
            backward: false,
            part: (parts.max(1), index),
        }
    }

    /// The same fold for changes AFTER the target, applied to a newer image (the module doc
    /// has the rule); changes are still pushed in log order.
    pub fn backward(mut self) -> Fold {
        self.backward = true;
        self
    }

    /// Adds the next change in log order.
    pub fn push(&mut self, change: RowChange) {
        if self.backward {
            return self.push_backward(change);
        }
        let part = self.part;
        match &mut self.kind {
            Kind::Keyed { pk, net } => match change {
                RowChange::Insert { after } => {
                    let ka = key_bytes(pk, &after);
                    if mine(part, &ka) {
                        net.insert(ka, Net::Upsert(after));
                    }
                }
                RowChange::Update { before, after } => {
                    let kb = key_bytes(pk, &before);
                    let ka = key_bytes(pk, &after);
                    if kb != ka && mine(part, &kb) {
                        net.insert(kb, Net::Delete);
                    }
                    if mine(part, &ka) {
                        net.insert(ka, Net::Upsert(after));
                    }
                }
                RowChange::Delete { before } => {
                    let kb = key_bytes(pk, &before);
                    if mine(part, &kb) {
                        net.insert(kb, Net::Delete);
                    }
                }
            },
            Kind::Multiset { net } => {
                let mut add = |row: Row, n: i64| {
                    let k = codec::encode(&row);
                    if !mine(part, &k) {
                        return;
                    }
                    let e = net.entry(k).or_insert((row, 0));
                    e.1 += n;
                };
                match change {
                    RowChange::Insert { after } => add(after, 1),
                    RowChange::Update { before, after } => {
                        add(before, -1);
                        add(after, 1);
                    }
                    RowChange::Delete { before } => add(before, -1),
                }
            }
        }
    }

    /// A change after the target: each key keeps its state before its first change; key-less
    /// rows are inverted.
    fn push_backward(&mut self, change: RowChange) {
        let part = self.part;
        match &mut self.kind {
            Kind::Keyed { pk, net } => {
                let mut first = |k: Vec<u8>, n: Net| {
                    if mine(part, &k) {
                        net.entry(k).or_insert(n);
                    }
                };
                match change {
                    RowChange::Insert { after } => first(key_bytes(pk, &after), Net::Delete),
                    RowChange::Update { before, after } => {
                        let kb = key_bytes(pk, &before);
                        let ka = key_bytes(pk, &after);
                        if ka != kb {
                            first(ka, Net::Delete);
                        }
                        first(kb, Net::Upsert(before));
                    }
                    RowChange::Delete { before } => {
                        first(key_bytes(pk, &before), Net::Upsert(before))
                    }
                }
            }
            Kind::Multiset { .. } => {
                let inverse = match change {
                    RowChange::Insert { after } => RowChange::Delete { before: after },
                    RowChange::Delete { before } => RowChange::Insert { after: before },
                    RowChange::Update { before, after } => RowChange::Update {
                        before: after,
                        after: before,
                    },
                };
                self.backward = false;
                self.push(inverse);
                self.backward = true;
            }
        }
    }

    /// Applies the fold to baseline rows (any order), emitting the resulting rows.
    pub fn apply(
        self,
        baseline: impl IntoIterator<Item = Row>,
        mut emit: impl FnMut(Row),
    ) -> Result<(), FoldError> {
        let mut a = self.applier();
        for row in baseline {
            a.feed(row, &mut emit);
        }
        a.finish(emit)
    }

    /// Keys (or distinct rows) the fold holds: its memory is proportional to this.
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Keyed { net, .. } => net.len(),
            Kind::Multiset { net } => net.len(),
        }
    }

    /// True when no change was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the fold to a baseline streamed one row at a time.
    pub fn applier(self) -> Applier {
        Applier {
            fold: self,
            key: Vec::new(),
        }
    }
}

/// A fold being applied to baseline rows as they stream by: [`Applier::feed`] each baseline
/// row, then [`Applier::finish`] emits what the baseline did not have.
pub struct Applier {
    fold: Fold,
    /// The key of the row being fed (reused).
    key: Vec<u8>,
}

impl Applier {
    /// One baseline row: emits it, its replacement, or nothing (deleted).
    pub fn feed(&mut self, row: Row, emit: &mut impl FnMut(Row)) {
        let part = self.fold.part;
        match &mut self.fold.kind {
            Kind::Keyed { pk, net } => {
                if net.is_empty() && part.0 <= 1 {
                    return emit(row);
                }
                key_into(&mut self.key, pk, &row);
                if !mine(part, &self.key) {
                    return;
                }
                match net.remove(self.key.as_slice()) {
                    None => emit(row),
                    Some(Net::Upsert(r)) => emit(r),
                    Some(Net::Delete) => {}
                }
            }
            Kind::Multiset { net } => {
                let k = codec::encode(&row);
                if !mine(part, &k) {
                    return;
                }
                match net.get_mut(&k) {
                    Some((_, n)) if *n < 0 => *n += 1, // one copy removed
                    _ => emit(row),
                }
            }
        }
    }

    /// Emits the rows the changes added; fails if changes removed rows the baseline lacked.
    pub fn finish(self, mut emit: impl FnMut(Row)) -> Result<(), FoldError> {
        match self.fold.kind {
            Kind::Keyed { net, .. } => {
                for (_, n) in net {
                    if let Net::Upsert(r) = n {
                        emit(r);
                    }
                }
                Ok(())
            }
            Kind::Multiset { net } => {
                for (_, (row, n)) in net {
                    if n < 0 {
                        return Err(FoldError::MissingRow {
                            what: format!("{} copies of {row:?}", -n),
                        });
                    }
                    for _ in 0..n {
                        emit(row.clone());
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(i64, i64),
        Update(usize, i64, i64),
        Delete(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0i64..20, any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
                (any::<usize>(), 0i64..20, any::<i64>()).prop_map(|(i, k, v)| Op::Update(i, k, v)),
                any::<usize>().prop_map(Op::Delete),
            ],
            0..60,
        )
    }

    fn row(k: i64, v: i64) -> Row {
        vec![Value::Int(k), Value::Int(v)]
    }

    proptest! {
        /// baseline@A + fold(changes(A,B]) == state@B, for a keyed table.
        #[test]
        fn keyed_reconstruction(base in prop::collection::btree_map(0i64..20, any::<i64>(), 0..10), ops in ops()) {
            let mut state: BTreeMap<i64, i64> = base.clone();
            let mut fold = Fold::new(&[0]);
            for op in ops {
                let keys: Vec<i64> = state.keys().copied().collect();
                match op {
                    Op::Insert(k, v) if !state.contains_key(&k) => {
                        state.insert(k, v);
                        fold.push(RowChange::Insert { after: row(k, v) });
                    }
                    Op::Update(i, k, v) if !keys.is_empty() => {
                        let old = keys[i % keys.len()];
                        if k != old && state.contains_key(&k) { continue; }
                        let ov = state.remove(&old).unwrap_or_default();
                        state.insert(k, v);
                        fold.push(RowChange::Update { before: row(old, ov), after: row(k, v) });
                    }
                    Op::Delete(i) if !keys.is_empty() => {
                        let old = keys[i % keys.len()];
                        let ov = state.remove(&old).unwrap_or_default();
                        fold.push(RowChange::Delete { before: row(old, ov) });
                    }
                    _ => {}
                }
            }
            let mut got = BTreeMap::new();
            let mut twice = false;
            fold.apply(base.iter().map(|(k, v)| row(*k, *v)), |r| {
                if let (Value::Int(k), Value::Int(v)) = (&r[0], &r[1]) {
                    twice |= got.insert(*k, *v).is_some();
                }
            }).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(!twice, "a key was emitted twice");
            prop_assert_eq!(got, state);
        }

        /// Replaying in hash partitions gives exactly the rows of one pass.
        #[test]
        fn partitions_add_up(base in prop::collection::btree_map(0i64..20, any::<i64>(), 0..10), ops in ops(), parts in 1u64..5, keyless in any::<bool>()) {
            let pk: &[usize] = if keyless { &[] } else { &[0] };
            let mut changes = Vec::new();
            let mut state: BTreeMap<i64, i64> = base.clone();
            for op in ops {
                let keys: Vec<i64> = state.keys().copied().collect();
                match op {
                    Op::Insert(k, v) if !state.contains_key(&k) => {
                        state.insert(k, v);
                        changes.push(RowChange::Insert { after: row(k, v) });
                    }
                    Op::Update(i, k, v) if !keys.is_empty() => {
                        let old = keys[i % keys.len()];
                        if old == k || !state.contains_key(&k) {
                            let ov = state.remove(&old).unwrap_or_default();
                            state.insert(k, v);
                            changes.push(RowChange::Update { before: row(old, ov), after: row(k, v) });
                        }
                    }
                    Op::Delete(i) if !keys.is_empty() => {
                        let old = keys[i % keys.len()];
                        let ov = state.remove(&old).unwrap_or_default();
                        changes.push(RowChange::Delete { before: row(old, ov) });
                    }
                    _ => {}
                }
            }
            let run = |parts: u64, index: u64| -> Result<Vec<Row>, FoldError> {
                let mut f = Fold::partition(pk, parts, index);
                for c in &changes {
                    f.push(c.clone());
                }
                let mut out = Vec::new();
                f.apply(base.iter().map(|(k, v)| row(*k, *v)), |r| out.push(r))?;
                Ok(out)
            };
            let mut one = run(1, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut split = Vec::new();
            for i in 0..parts {
                split.extend(run(parts, i).map_err(|e| TestCaseError::fail(e.to_string()))?);
            }
            one.sort_by_key(codec::encode);
            split.sort_by_key(codec::encode);
            prop_assert_eq!(one, split);
        }

        /// Any image, before or after, any target: `state(T)` from `state(I)` forward
        /// (I <= T) or backward (I > T), keyed or key-less, in any number of partitions.
        #[test]
        fn images_in_both_directions(base in prop::collection::btree_map(0i64..12, 0i64..4, 0..8), ops in ops(), image in any::<usize>(), target in any::<usize>(), parts in 1u64..4, keyless in any::<bool>()) {
            let pk: &[usize] = if keyless { &[] } else { &[0] };
            // The states after each change, and the changes (key-less tables may hold
            // duplicate rows: values are small so duplicates happen).
            let mut states: Vec<Vec<(i64, i64)>> = vec![base.iter().map(|(k, v)| (*k, *v)).collect()];
            let mut changes = Vec::new();
            for op in ops {
                let mut s = states.last().cloned().unwrap_or_default();
                let has = |s: &Vec<(i64, i64)>, k: i64| !keyless && s.iter().any(|r| r.0 == k);
                let change = match op {
                    Op::Insert(k, v) if !has(&s, k) => {
                        s.push((k, v.rem_euclid(4)));
                        RowChange::Insert { after: row(k, v.rem_euclid(4)) }
                    }
                    Op::Update(i, k, v) if !s.is_empty() => {
                        let idx = i % s.len();
                        let old = s[idx];
                        if old.0 != k && has(&s, k) { continue; }
                        s[idx] = (k, v.rem_euclid(4));
                        RowChange::Update { before: row(old.0, old.1), after: row(k, v.rem_euclid(4)) }
                    }
                    Op::Delete(i) if !s.is_empty() => {
                        let old = s.remove(i % s.len());
                        RowChange::Delete { before: row(old.0, old.1) }
                    }
                    _ => continue,
                };
                changes.push(change);
                states.push(s);
            }
            let n = states.len();
            let (i, t) = (image % n, target % n);
            let mut got = Vec::new();
            for index in 0..parts {
                let mut f = Fold::partition(pk, parts, index);
                let window = if i <= t { &changes[i..t] } else { f = f.backward(); &changes[t..i] };
                for c in window {
                    f.push(c.clone());
                }
                f.apply(states[i].iter().map(|(k, v)| row(*k, *v)), |r| {
                    if let (Value::Int(k), Value::Int(v)) = (&r[0], &r[1]) {
                        got.push((*k, *v));
                    }
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let mut want = states[t].clone();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want, "image {} target {}", i, t);
        }

        /// Same for a table without a key, with duplicate rows (a multiset).
        #[test]
        fn multiset_reconstruction(base in prop::collection::vec((0i64..3, 0i64..3), 0..8), ops in ops()) {
            let mut state: Vec<(i64, i64)> = base.clone();
            let mut fold = Fold::new(&[]);
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let (k, v) = (k % 3, v.rem_euclid(3));
                        state.push((k, v));
                        fold.push(RowChange::Insert { after: row(k, v) });
                    }
                    Op::Update(i, k, v) if !state.is_empty() => {
                        let idx = i % state.len();
                        let old = state[idx];
                        let new = (k % 3, v.rem_euclid(3));
                        state[idx] = new;
                        fold.push(RowChange::Update { before: row(old.0, old.1), after: row(new.0, new.1) });
                    }
                    Op::Delete(i) if !state.is_empty() => {
                        let old = state.remove(i % state.len());
                        fold.push(RowChange::Delete { before: row(old.0, old.1) });
                    }
                    _ => {}
                }
            }
            let mut got = Vec::new();
            fold.apply(base.iter().map(|(k, v)| row(*k, *v)), |r| {
                if let (Value::Int(k), Value::Int(v)) = (&r[0], &r[1]) {
                    got.push((*k, *v));
                }
            }).map_err(|e| TestCaseError::fail(e.to_string()))?;
            got.sort();
            state.sort();
            prop_assert_eq!(got, state);
        }
    }
}
