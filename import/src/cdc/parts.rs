//! A source transaction too large to fold in memory, split by key into parts that each fold
//! on their own.
//!
//! The changes of a row's key all land in the same part, in the order received, so folding
//! the parts one by one gives what folding the whole transaction gives, with the memory of
//! one part. That holds while no change moves a row to another key (a key update): a
//! transaction with one is folded whole, in memory ([`super::spill::TxnChanges::rekeyed`]).
//! A TRUNCATE makes every change before it moot: the parts start over.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use super::fold::{Cell, Counts, Key, TableFold};
use super::spill::{Change, Changes, TxnChanges};
use crate::Result;

/// Changes per part aimed at: a part folds in about 0.7 KiB per change.
pub(crate) const CHANGES_PER_PART: u64 = 100_000;

/// Most parts of one table (each an open temporary file with its write buffer).
const MAX_PARTS: u64 = 256;

/// The write buffer of a part's file.
const PART_BUFFER: usize = 64 << 10;

/// How many parts for a transaction of `changes` changes, `per_part` in each.
pub(crate) fn parts_for(changes: u64, per_part: u64) -> usize {
    changes.div_ceil(per_part.max(1)).clamp(1, MAX_PARTS) as usize
}

/// The changes of one table in one huge transaction, by part.
pub(crate) struct Parts {
    parts: Vec<TxnChanges>,
    /// The table was truncated: the rows of the parts replace all of it.
    pub truncated: bool,
    /// Raw changes, counted as they came.
    pub counts: Counts,
    /// Column slots with an unchanged (TOASTed) value in some change: every part's rows
    /// carry their keep flag, so that all parts have one schema.
    pub kept: BTreeSet<usize>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("parts", &self.parts.len())
            .field("truncated", &self.truncated)
            .field("counts", &self.counts)
            .finish()
    }
}

fn part(key: &Key, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % n as u64) as usize
}

fn new_parts(n: usize) -> Vec<TxnChanges> {
    (0..n)
        .map(|_| TxnChanges::with_buffer(0, PART_BUFFER))
        .collect()
}

impl Parts {
    /// `n` empty parts.
    pub(crate) fn new(n: usize) -> Parts {
        Parts {
            parts: new_parts(n.max(1)),
            truncated: false,
            counts: Counts::default(),
            kept: BTreeSet::new(),
        }
    }

    /// Adds a change (never one that moves a row to another key).
    pub(crate) fn push(&mut self, change: Change) -> Result<()> {
        let n = self.parts.len();
        let (key, cells) = match &change {
            Change::Insert(k, c) => {
                self.counts.inserted += 1;
                (k, Some(c))
            }
            Change::Update { key, cells, .. } => {
                self.counts.updated += 1;
                (key, Some(cells))
            }
            Change::Delete(k) => {
                self.counts.deleted += 1;
                (k, None)
            }
            Change::Truncate => {
                self.parts = new_parts(n);
                self.truncated = true;
                return Ok(());
            }
        };
        for (s, c) in cells.into_iter().flatten().enumerate() {
            if *c == Cell::Keep {
                self.kept.insert(s);
            }
        }
        let p = part(key, n);
        self.parts[p].push(0, change)
    }

    /// The changes of each part, in the order received.
    pub(crate) fn into_parts(self) -> Result<Vec<Changes>> {
        self.parts
            .into_iter()
            .map(TxnChanges::into_changes)
            .collect()
    }
}

/// Folds `change` into `fold`.
pub(crate) fn fold_change(fold: &mut TableFold, change: Change) {
    match change {
        Change::Insert(k, c) => fold.insert(k, c),
        Change::Update {
            old_key,
            old_row,
            key,
            cells,
        } => fold.update(old_key, old_row.as_deref(), key, cells),
        Change::Delete(k) => fold.delete(k),
        Change::Truncate => fold.truncate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::fold::encode_key;

    fn key(k: u32) -> Key {
        encode_key(&[Cell::Value(k.to_be_bytes().to_vec())]).unwrap()
    }

    fn row(k: u32, v: Option<u8>) -> Vec<Cell> {
        vec![
            Cell::Value(k.to_be_bytes().to_vec()),
            v.map_or(Cell::Keep, |v| Cell::Value(vec![v])),
        ]
    }

    /// A live row: its key, match key and cells.
    type Live = (Key, Option<Key>, Vec<Cell>);

    /// The state each fold leaves: its live rows, by key, and the deletes.
    fn state(fold: &TableFold) -> (Vec<Live>, Vec<Key>) {
        let mut live: Vec<_> = fold
            .live
            .iter()
            .map(|(k, r)| (k.clone(), r.match_key.clone(), r.cells.clone()))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deletes: Vec<_> = fold.deletes.iter().cloned().collect();
        deletes.sort();
        (live, deletes)
    }

    #[test]
    fn folding_the_parts_one_by_one_gives_the_fold_of_the_whole_transaction() {
        // Inserts, updates (some with unchanged values), deletes and re-inserts of 300 keys,
        // a truncate half-way, in 7 parts.
        let mut changes = Vec::new();
        for round in 0..2u32 {
            for k in 0..300u32 {
                changes.push(Change::Insert(key(k + 1000 * round), row(k, Some(1))));
            }
            for k in (0..300u32).step_by(3) {
                let v = (k % 2 == 0).then_some(2);
                changes.push(Change::Update {
                    old_key: None,
                    old_row: None,
                    key: key(k + 1000 * round),
                    cells: row(k, v),
                });
            }
            for k in (0..300u32).step_by(5) {
                changes.push(Change::Delete(key(k + 1000 * round)));
            }
            for k in (0..300u32).step_by(10) {
                changes.push(Change::Insert(key(k + 1000 * round), row(k, Some(3))));
            }
            // Keys the target holds from before the transaction.
            changes.push(Change::Delete(key(50_000 + round)));
            changes.push(Change::Update {
                old_key: None,
                old_row: None,
                key: key(60_000 + round),
                cells: row(60_000, None),
            });
            if round == 0 {
                changes.push(Change::Truncate);
            }
        }
        let mut whole = TableFold::default();
        let mut parts = Parts::new(7);
        for c in &changes {
            fold_change(&mut whole, c.clone());
            parts.push(c.clone()).unwrap();
        }
        assert!(parts.truncated);
        assert_eq!(parts.kept, BTreeSet::from([1]));
        assert_eq!(parts.counts.changes(), changes.len() as u64 - 1);
        let mut merged = TableFold::default();
        let mut sizes = Vec::new();
        for part in parts.into_parts().unwrap() {
            let mut fold = TableFold::default();
            let mut n = 0;
            for c in part {
                fold_change(&mut fold, c.unwrap().1);
                n += 1;
            }
            sizes.push(n);
            merged.live.extend(fold.live);
            merged.deletes.extend(fold.deletes);
        }
        assert!(sizes.iter().all(|n| *n > 0), "every part used: {sizes:?}");
        assert_eq!(state(&merged), state(&whole));
    }

    #[test]
    fn a_transaction_is_split_in_parts_of_about_100_000_changes() {
        let n = |changes| parts_for(changes, CHANGES_PER_PART);
        assert_eq!(n(0), 1);
        assert_eq!(n(100_000), 1);
        assert_eq!(n(100_001), 2);
        assert_eq!(n(1_030_418), 11);
        assert_eq!(n(u64::MAX), 256);
        assert_eq!(parts_for(10, 0), 10);
    }
}
