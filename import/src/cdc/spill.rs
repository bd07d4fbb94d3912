//! The changes of the source transaction being received: held in memory up to a size, then
//! written to an unnamed temporary file (spilled) and read back once, in order, at the
//! transaction's commit. A transaction is applied whole or not at all, so its changes must
//! be kept until its commit arrives; this keeps a huge one (an `UPDATE` of every row) off
//! the heap.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use super::fold::{Cell, Key};
use crate::{Error, ErrorKind, Result};

/// One change, as received (applied at its transaction's commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Insert(Key, Vec<Cell>),
    Update {
        old_key: Option<Key>,
        old_row: Option<Vec<Cell>>,
        key: Key,
        cells: Vec<Cell>,
    },
    Delete(Key),
    Truncate,
}

fn cells_bytes(cells: &[Cell]) -> usize {
    24 + cells
        .iter()
        .map(|c| match c {
            Cell::Value(v) => v.len() + 40,
            _ => 24,
        })
        .sum::<usize>()
}

impl Change {
    /// Roughly the memory it holds.
    fn bytes(&self) -> usize {
        64 + match self {
            Change::Insert(k, c) => k.len() + cells_bytes(c),
            Change::Update {
                old_key,
                old_row,
                key,
                cells,
            } => {
                old_key.as_ref().map_or(0, Vec::len)
                    + old_row.as_deref().map_or(0, cells_bytes)
                    + key.len()
                    + cells_bytes(cells)
            }
            Change::Delete(k) => k.len(),
            Change::Truncate => 0,
        }
    }
}

/// The changes of one source transaction, by table index, in the order received.
pub(crate) struct TxnChanges {
    memory: Vec<(usize, Change)>,
    bytes: usize,
    /// Spill once the changes in memory hold more than this.
    limit: usize,
    file: Option<BufWriter<File>>,
    /// The write buffer of the file.
    buffer: usize,
    spilled: u64,
    /// A change moved a row to another key.
    rekeyed: bool,
}

fn io_error(e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!(
            "a large source transaction is kept in a temporary file ({}), which failed: {e} (set TMPDIR to a directory with room)",
            std::env::temp_dir().display()
        ),
    )
    .with_source(e)
}

impl TxnChanges {
    /// No changes yet; more than `limit` bytes of them go to a temporary file.
    pub(crate) fn new(limit: usize) -> TxnChanges {
        TxnChanges::with_buffer(limit, 1 << 20)
    }

    /// [`Self::new`], with a write buffer of `buffer` bytes once spilled.
    pub(crate) fn with_buffer(limit: usize, buffer: usize) -> TxnChanges {
        TxnChanges {
            memory: Vec::new(),
            bytes: 0,
            limit,
            file: None,
            buffer,
            spilled: 0,
            rekeyed: false,
        }
    }

    /// Whether a change moved a row to another key (an update of its key).
    pub(crate) fn rekeyed(&self) -> bool {
        self.rekeyed
    }

    /// Whether the changes are in a temporary file.
    pub(crate) fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Changes held.
    pub(crate) fn len(&self) -> u64 {
        self.spilled + self.memory.len() as u64
    }

    /// Adds a change of table `t`.
    pub(crate) fn push(&mut self, t: usize, change: Change) -> Result<()> {
        if let Change::Update {
            old_key: Some(old),
            key,
            ..
        } = &change
        {
            self.rekeyed |= old != key;
        }
        if let Some(file) = &mut self.file {
            self.spilled += 1;
            return write_change(file, t, &change).map_err(io_error);
        }
        self.bytes += change.bytes();
        self.memory.push((t, change));
        if self.bytes > self.limit {
            let mut file =
                BufWriter::with_capacity(self.buffer, tempfile::tempfile().map_err(io_error)?);
            for (t, c) in self.memory.drain(..) {
                write_change(&mut file, t, &c).map_err(io_error)?;
                self.spilled += 1;
            }
            self.memory = Vec::new();
            self.bytes = 0;
            self.file = Some(file);
        }
        Ok(())
    }

    /// The changes, in the order received.
    pub(crate) fn into_changes(self) -> Result<Changes> {
        match self.file {
            None => Ok(Changes::Memory(self.memory.into_iter())),
            Some(file) => {
                let mut file = file.into_inner().map_err(|e| io_error(e.into_error()))?;
                file.seek(SeekFrom::Start(0)).map_err(io_error)?;
                Ok(Changes::File(
                    BufReader::with_capacity(self.buffer, file),
                    self.spilled,
                ))
            }
        }
    }
}

/// The changes of a transaction, read back.
pub(crate) enum Changes {
    Memory(std::vec::IntoIter<(usize, Change)>),
    /// The file, and the changes left in it.
    File(BufReader<File>, u64),
}

impl Iterator for Changes {
    type Item = Result<(usize, Change)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Changes::Memory(it) => it.next().map(Ok),
            Changes::File(_, 0) => None,
            Changes::File(r, left) => {
                *left -= 1;
                Some(read_change(r).map_err(io_error))
            }
        }
    }
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(b)
}

fn put_cells(w: &mut impl Write, cells: &[Cell]) -> std::io::Result<()> {
    w.write_all(&(cells.len() as u32).to_le_bytes())?;
    for c in cells {
        match c {
            Cell::Null => w.write_all(&[0])?,
            Cell::Keep => w.write_all(&[2])?,
            Cell::Value(v) => {
                w.write_all(&[1])?;
                put_bytes(w, v)?;
            }
        }
    }
    Ok(())
}

fn write_change(w: &mut impl Write, t: usize, change: &Change) -> std::io::Result<()> {
    w.write_all(&(t as u32).to_le_bytes())?;
    match change {
        Change::Insert(k, c) => {
            w.write_all(b"I")?;
            put_bytes(w, k)?;
            put_cells(w, c)
        }
        Change::Update {
            old_key,
            old_row,
            key,
            cells,
        } => {
            w.write_all(&[b'U', old_key.is_some() as u8, old_row.is_some() as u8])?;
            if let Some(k) = old_key {
                put_bytes(w, k)?;
            }
            if let Some(r) = old_row {
                put_cells(w, r)?;
            }
            put_bytes(w, key)?;
            put_cells(w, cells)
        }
        Change::Delete(k) => {
            w.write_all(b"D")?;
            put_bytes(w, k)
        }
        Change::Truncate => w.write_all(b"T"),
    }
}

fn get_u8(r: &mut impl Read) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn get_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn get_bytes(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; get_u32(r)? as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn get_cells(r: &mut impl Read) -> std::io::Result<Vec<Cell>> {
    let n = get_u32(r)? as usize;
    let mut cells = Vec::with_capacity(n);
    for _ in 0..n {
        cells.push(match get_u8(r)? {
            0 => Cell::Null,
            2 => Cell::Keep,
            _ => Cell::Value(get_bytes(r)?),
        });
    }
    Ok(cells)
}

fn read_change(r: &mut impl Read) -> std::io::Result<(usize, Change)> {
    let t = get_u32(r)? as usize;
    let change = match get_u8(r)? {
        b'I' => Change::Insert(get_bytes(r)?, get_cells(r)?),
        b'U' => {
            let (has_old_key, has_old_row) = (get_u8(r)? == 1, get_u8(r)? == 1);
            let old_key = if has_old_key {
                Some(get_bytes(r)?)
            } else {
                None
            };
            let old_row = if has_old_row {
                Some(get_cells(r)?)
            } else {
                None
            };
            Change::Update {
                old_key,
                old_row,
                key: get_bytes(r)?,
                cells: get_cells(r)?,
            }
        }
        b'D' => Change::Delete(get_bytes(r)?),
        b'T' => Change::Truncate,
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a spilled change of unknown kind {other}"),
            ))
        }
    };
    Ok((t, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> Vec<(usize, Change)> {
        let v = |b: &[u8]| Cell::Value(b.to_vec());
        vec![
            (
                0,
                Change::Insert(vec![1, 2], vec![v(b"a"), Cell::Null, Cell::Keep]),
            ),
            (
                1,
                Change::Update {
                    old_key: Some(vec![9]),
                    old_row: Some(vec![v(b"old"), Cell::Null]),
                    key: vec![3],
                    cells: vec![v(b""), Cell::Keep],
                },
            ),
            (
                0,
                Change::Update {
                    old_key: None,
                    old_row: None,
                    key: vec![4],
                    cells: vec![v(&[0u8; 300])],
                },
            ),
            (2, Change::Delete(vec![5, 6, 7])),
            (0, Change::Truncate),
        ]
    }

    #[test]
    fn changes_come_back_in_order_from_memory_and_from_the_file() {
        for limit in [usize::MAX, 0, 200] {
            let mut txn = TxnChanges::new(limit);
            for (t, c) in changes() {
                txn.push(t, c).unwrap();
            }
            assert_eq!(txn.len(), 5);
            assert_eq!(txn.is_spilled(), limit != usize::MAX, "limit {limit}");
            let back: Vec<_> = txn.into_changes().unwrap().map(Result::unwrap).collect();
            assert_eq!(back, changes(), "limit {limit}");
        }
    }
}
