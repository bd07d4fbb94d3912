//! One batch of changes to one table, folded to the last state of each key: what a single
//! MERGE (or, after a TRUNCATE, an overwrite) must do to the Delta table.
//!
//! Each surviving row carries the *match key*: the key of the target row it becomes (it may
//! differ from its own key after a key change), or none for a row new in this batch. Cells
//! of unchanged TOASTed values that could not be resolved from earlier changes in the batch
//! stay [`Cell::Keep`]: the MERGE keeps the matched target row's value.

use std::collections::{HashMap, HashSet};

/// One column value of a folded row (binary, as pgoutput and binary COPY send it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// NULL.
    Null,
    /// A value.
    Value(Vec<u8>),
    /// Unchanged TOASTed value: keep what the target row holds.
    Keep,
}

/// A key: the key columns' values, each as a length-prefixed byte string.
pub type Key = Vec<u8>;

/// Encodes key values (in key column order) as a [`Key`]; `None` when one is NULL or
/// unchanged (a key never is).
pub fn encode_key<'a>(values: impl IntoIterator<Item = &'a Cell>) -> Option<Key> {
    let mut key = Vec::new();
    for v in values {
        let Cell::Value(bytes) = v else { return None };
        key.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        key.extend_from_slice(bytes);
    }
    Some(key)
}

/// The values of a [`Key`], in key column order.
pub fn decode_key(key: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= key.len() {
        let len = u32::from_be_bytes(key[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 4;
        let end = (at + len).min(key.len());
        out.push(&key[at..end]);
        at = end;
    }
    out
}

/// A row that exists after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The target row this row replaces (`None`: new in this batch).
    pub match_key: Option<Key>,
    /// Its cells, by table column slot.
    pub cells: Vec<Cell>,
}

/// What the source did, counted before folding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Counts {
    /// All changes.
    pub fn changes(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// The folded changes of one table in one batch.
#[derive(Debug, Default)]
pub struct TableFold {
    /// Rows that exist after the batch, by their current key.
    pub live: HashMap<Key, Row>,
    /// Target rows (by their key at the start of the batch) to delete.
    pub deletes: HashSet<Key>,
    /// Target keys whose row was re-keyed within the batch.
    moved: HashSet<Key>,
    /// The table was truncated in the batch: the rows in `live` replace all of it.
    pub truncated: bool,
    /// Raw changes.
    pub counts: Counts,
    /// Roughly the memory held.
    pub bytes: usize,
}

fn cells_bytes(cells: &[Cell]) -> usize {
    64 + cells
        .iter()
        .map(|c| match c {
            Cell::Value(v) => v.len() + 24,
            _ => 24,
        })
        .sum::<usize>()
}

/// Fills the `Keep` cells of `cells` from `from` (a value or NULL there wins).
fn resolve(cells: &mut [Cell], from: &[Cell]) {
    for (i, c) in cells.iter_mut().enumerate() {
        if *c == Cell::Keep {
            if let Some(v) = from.get(i) {
                if *v != Cell::Keep {
                    *c = v.clone();
                }
            }
        }
    }
}

impl TableFold {
    /// Whether the batch holds anything for this table.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.deletes.is_empty() && !self.truncated
    }

    /// A row inserted with key `key`.
    pub fn insert(&mut self, key: Key, cells: Vec<Cell>) {
        self.counts.inserted += 1;
        self.bytes += cells_bytes(&cells) + key.len();
        let match_key = if self.moved.contains(&key) {
            None
        } else {
            self.deletes.remove(&key);
            Some(key.clone())
        };
        self.live.insert(key, Row { match_key, cells });
    }

    /// A row updated: `old_key` when its key changed, `old_row` the old row's cells when the
    /// source sent them (REPLICA IDENTITY FULL), `key` and `cells` the new row.
    pub fn update(
        &mut self,
        old_key: Option<Key>,
        old_row: Option<&[Cell]>,
        key: Key,
        mut cells: Vec<Cell>,
    ) {
        self.counts.updated += 1;
        self.bytes += cells_bytes(&cells) + key.len();
        if let Some(old) = old_row {
            resolve(&mut cells, old);
        }
        let match_key = match old_key.filter(|o| *o != key) {
            None => match self.live.get(&key) {
                Some(p) => {
                    resolve(&mut cells, &p.cells);
                    p.match_key.clone()
                }
                None => Some(key.clone()),
            },
            Some(old) => {
                let m = match self.live.remove(&old) {
                    Some(p) => {
                        resolve(&mut cells, &p.cells);
                        p.match_key
                    }
                    None => Some(old),
                };
                if let Some(m) = &m {
                    self.moved.insert(m.clone());
                }
                m
            }
        };
        self.live.insert(key, Row { match_key, cells });
    }

    /// A row deleted.
    pub fn delete(&mut self, key: Key) {
        self.counts.deleted += 1;
        self.bytes += key.len() + 64;
        match self.live.remove(&key) {
            Some(p) => {
                if let Some(m) = p.match_key {
                    self.deletes.insert(m);
                }
            }
            None => {
                self.deletes.insert(key);
            }
        }
    }

    /// The table truncated: everything before is moot.
    pub fn truncate(&mut self) {
        self.live.clear();
        self.deletes.clear();
        self.moved.clear();
        self.truncated = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Rows of the model: key -> value (`None` = NULL).
    type Model = BTreeMap<u8, Option<u8>>;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, Option<u8>),
        /// `None`: the value is unchanged (TOAST).
        Update(u8, Option<Option<u8>>),
        Rekey(u8, u8),
        Delete(u8),
        Truncate,
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..6;
        let v = proptest::option::of(0u8..4);
        prop_oneof![
            4 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
            4 => (k.clone(), proptest::option::of(v)).prop_map(|(k, v)| Op::Update(k, v)),
            2 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::Rekey(a, b)),
            2 => k.prop_map(Op::Delete),
            1 => Just(Op::Truncate),
        ]
    }

    fn key(k: u8) -> Key {
        encode_key(&[Cell::Value(vec![k])]).unwrap()
    }

    fn cell(v: Option<u8>) -> Cell {
        v.map_or(Cell::Null, |v| Cell::Value(vec![v]))
    }

    /// Applies the fold to `target` as the MERGE (or overwrite) does.
    fn merge(target: &Model, fold: &TableFold) -> Model {
        let value = |c: &Cell, old: Option<Option<u8>>| match c {
            Cell::Null => None,
            Cell::Value(v) => Some(v[0]),
            Cell::Keep => old.expect("a kept value has a matched row"),
        };
        if fold.truncated {
            return fold
                .live
                .values()
                .map(|r| {
                    let Cell::Value(k) = &r.cells[0] else {
                        panic!()
                    };
                    (k[0], value(&r.cells[1], None))
                })
                .collect();
        }
        let mut out = Model::new();
        let mut matched = HashSet::new();
        for (k, v) in target {
            if fold.deletes.contains(&key(*k)) {
                assert!(matched.insert(key(*k)), "matched twice");
                continue;
            }
            match fold
                .live
                .values()
                .find(|r| r.match_key.as_ref() == Some(&key(*k)))
            {
                Some(r) => {
                    assert!(matched.insert(key(*k)), "matched twice");
                    let Cell::Value(nk) = &r.cells[0] else {
                        panic!()
                    };
                    assert!(out.insert(nk[0], value(&r.cells[1], Some(*v))).is_none());
                }
                None => {
                    assert!(out.insert(*k, *v).is_none());
                }
            }
        }
        for r in fold.live.values() {
            let is_match = r
                .match_key
                .as_ref()
                .is_some_and(|m| target.contains_key(&m[4]));
            if !is_match && !r.cells.contains(&Cell::Keep) {
                let Cell::Value(nk) = &r.cells[0] else {
                    panic!()
                };
                assert!(out.insert(nk[0], value(&r.cells[1], None)).is_none());
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Folding a batch and merging it gives what applying its changes one by one gives.
        #[test]
        fn a_folded_batch_merges_to_the_sequential_result(
            start in proptest::collection::btree_map(0u8..6, proptest::option::of(0u8..4), 0..6),
            ops in proptest::collection::vec(op(), 0..24),
        ) {
            let mut model = start.clone();
            let mut fold = TableFold::default();
            for op in ops {
                match op {
                    Op::Insert(k, v) if !model.contains_key(&k) => {
                        model.insert(k, v);
                        fold.insert(key(k), vec![Cell::Value(vec![k]), cell(v)]);
                    }
                    Op::Update(k, v) if model.contains_key(&k) => {
                        let c = match v {
                            Some(v) => { model.insert(k, v); cell(v) }
                            None => Cell::Keep,
                        };
                        fold.update(None, None, key(k), vec![Cell::Value(vec![k]), c]);
                    }
                    Op::Rekey(a, b) if model.contains_key(&a) && !model.contains_key(&b) => {
                        let v = model.remove(&a).unwrap();
                        model.insert(b, v);
                        fold.update(Some(key(a)), None, key(b), vec![Cell::Value(vec![b]), Cell::Keep]);
                    }
                    Op::Delete(k) if model.contains_key(&k) => {
                        model.remove(&k);
                        fold.delete(key(k));
                    }
                    Op::Truncate => {
                        model.clear();
                        fold.truncate();
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(merge(&start, &fold), model);
        }
    }

    #[test]
    fn keys_round_trip() {
        let k = encode_key(&[Cell::Value(b"ab".to_vec()), Cell::Value(vec![])]).unwrap();
        assert_eq!(decode_key(&k), vec![&b"ab"[..], &b""[..]]);
        assert!(encode_key(&[Cell::Null]).is_none());
    }
}
