//! The logical replication stream as bytes: the CopyData payloads of `START_REPLICATION`
//! (XLogData, keepalives, standby status updates) and the `pgoutput` messages they carry
//! (protocol version 1, binary tuples). Pure functions over `&[u8]`: any input is parsed or
//! refused, never a panic.

use std::fmt;

/// A WAL position (log sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl Lsn {
    /// Parses PostgreSQL's `X/X` form.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// NULL.
    Null,
    /// An unchanged TOASTed value: not sent, the stored one stays.
    Unchanged,
    /// The value in text form (types without a binary send function).
    Text(&'a [u8]),
    /// The value in binary form (what binary COPY carries).
    Binary(&'a [u8]),
}

/// A column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelColumn<'a> {
    /// Part of the replica identity (the key).
    pub key: bool,
    /// The column's name.
    pub name: &'a str,
    /// Its type's OID.
    pub type_oid: u32,
    /// Its type modifier.
    pub typmod: i32,
}

/// A pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A transaction starts; `final_lsn` is where its commit record is.
    Begin { final_lsn: Lsn, commit_time: i64 },
    /// A transaction ends; `end_lsn` is past its commit record.
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    /// A table's columns, sent before its first change in a session and after a change.
    Relation {
        relid: u32,
        namespace: &'a str,
        name: &'a str,
        replident: u8,
        columns: Vec<RelColumn<'a>>,
    },
    /// A row inserted.
    Insert { relid: u32, new: Vec<Value<'a>> },
    /// A row updated: the old key (`K`) or old row (`O`) when sent, and the new row.
    Update {
        relid: u32,
        old: Option<(u8, Vec<Value<'a>>)>,
        new: Vec<Value<'a>>,
    },
    /// A row deleted: its key (`K`) or whole row (`O`).
    Delete {
        relid: u32,
        kind: u8,
        old: Vec<Value<'a>>,
    },
    /// Tables truncated.
    Truncate { relids: Vec<u32> },
    /// Anything else (Origin, Type, logical messages): nothing to apply.
    Other(u8),
}

/// A CopyData payload of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire<'a> {
    /// WAL data: one pgoutput message; `sent` is the server's clock when it sent it
    /// (microseconds since 2000-01-01).
    XLog {
        wal_end: Lsn,
        sent: i64,
        message: Message<'a>,
    },
    /// The server's keepalive: how far it has sent, its clock when it sent it, and whether
    /// it wants an answer now.
    Keepalive {
        wal_end: Lsn,
        sent: i64,
        reply: bool,
    },
}

/// A cursor over a message's bytes.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

type Parsed<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| "a truncated replication message".to_string())?;
        let v = &self.data[self.at..end];
        self.at = end;
        Ok(v)
    }
    fn u8(&mut self) -> Parsed<u8> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Parsed<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Parsed<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u32(&mut self) -> Parsed<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Parsed<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn lsn(&mut self) -> Parsed<Lsn> {
        Ok(Lsn(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8"),
        )))
    }
    fn string(&mut self) -> Parsed<&'a str> {
        let rest = &self.data[self.at..];
        let nul = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| "an unterminated string in a replication message".to_string())?;
        let s = std::str::from_utf8(&rest[..nul])
            .map_err(|_| "a name in a replication message is not UTF-8".to_string())?;
        self.at += nul + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Parsed<Vec<Value<'a>>> {
        let n = self.i16()?;
        if n < 0 {
            return Err("a negative column count in a replication message".into());
        }
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                kind @ (b't' | b'b') => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err("a negative value length in a replication message".into());
                    }
                    let v = self.take(len as usize)?;
                    if kind == b't' {
                        Value::Text(v)
                    } else {
                        Value::Binary(v)
                    }
                }
                other => {
                    return Err(format!(
                        "unknown tuple value kind {other:#04x} in a replication message"
                    ))
                }
            });
        }
        Ok(values)
    }
}

/// Parses one CopyData payload of the replication stream.
pub fn parse(payload: &[u8]) -> Result<Wire<'_>, String> {
    let mut r = Reader {
        data: payload,
        at: 0,
    };
    match r.u8()? {
        b'w' => {
            let _start = r.lsn()?;
            let wal_end = r.lsn()?;
            let sent = r.i64()?;
            let message = parse_message(&mut r)?;
            Ok(Wire::XLog {
                wal_end,
                sent,
                message,
            })
        }
        b'k' => {
            let wal_end = r.lsn()?;
            let sent = r.i64()?;
            let reply = r.u8()? == 1;
            Ok(Wire::Keepalive {
                wal_end,
                sent,
                reply,
            })
        }
        other => Err(format!(
            "unknown replication message {other:#04x} from the source"
        )),
    }
}

fn parse_message<'a>(r: &mut Reader<'a>) -> Parsed<Message<'a>> {
    Ok(match r.u8()? {
        b'B' => {
            let final_lsn = r.lsn()?;
            let commit_time = r.i64()?;
            let _xid = r.u32()?;
            Message::Begin {
                final_lsn,
                commit_time,
            }
        }
        b'C' => {
            let _flags = r.u8()?;
            let commit_lsn = r.lsn()?;
            let end_lsn = r.lsn()?;
            let commit_time = r.i64()?;
            Message::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            }
        }
        b'R' => {
            let relid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replident = r.u8()?;
            let n = r.i16()?;
            if n < 0 {
                return Err("a negative column count in a replication message".into());
            }
            let mut columns = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.string()?;
                let type_oid = r.u32()?;
                let typmod = r.i32()?;
                columns.push(RelColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid,
                    typmod,
                });
            }
            Message::Relation {
                relid,
                namespace,
                name,
                replident,
                columns,
            }
        }
        b'I' => {
            let relid = r.u32()?;
            match r.u8()? {
                b'N' => Message::Insert {
                    relid,
                    new: r.tuple()?,
                },
                _ => return Err("an insert without a new row".into()),
            }
        }
        b'U' => {
            let relid = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, r.tuple()?));
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err("an update without a new row".into());
            }
            Message::Update {
                relid,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relid = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err("a delete without its old key or row".into());
            }
            Message::Delete {
                relid,
                kind,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?;
            if n < 0 {
                return Err("a negative table count in a replication message".into());
            }
            let _flags = r.u8()?;
            let mut relids = Vec::new();
            for _ in 0..n {
                relids.push(r.u32()?);
            }
            Message::Truncate { relids }
        }
        other => Message::Other(other),
    })
}

/// Microseconds since 2000-01-01 (PostgreSQL's epoch) now.
pub fn pg_now_micros() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    unix - 946_684_800_000_000
}

/// A standby status update: `written` received, `flushed` durable (the slot's confirmed
/// position moves there), and whether the server should answer at once.
pub fn status_update(written: Lsn, flushed: Lsn, now_pg_micros: i64, reply: bool) -> [u8; 34] {
    let mut m = [0u8; 34];
    m[0] = b'r';
    m[1..9].copy_from_slice(&written.0.to_be_bytes());
    m[9..17].copy_from_slice(&flushed.0.to_be_bytes());
    m[17..25].copy_from_slice(&flushed.0.to_be_bytes());
    m[25..33].copy_from_slice(&now_pg_micros.to_be_bytes());
    m[33] = u8::from(reply);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn xlog(body: &[u8]) -> Vec<u8> {
        let mut m = vec![b'w'];
        m.extend_from_slice(&1u64.to_be_bytes());
        m.extend_from_slice(&0x1_0000_00ffu64.to_be_bytes());
        m.extend_from_slice(&7i64.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn lsns_print_and_parse_as_postgresql_does() {
        assert_eq!(Lsn(0x016B_3748).to_string(), "0/16B3748");
        assert_eq!(Lsn(0x2_0000_0010).to_string(), "2/10");
        assert_eq!(Lsn::parse("2/10"), Some(Lsn(0x2_0000_0010)));
        assert_eq!(Lsn::parse("0/16B3748"), Some(Lsn(0x16B_3748)));
        assert_eq!(Lsn::parse("nope"), None);
        assert_eq!(Lsn::parse("1/"), None);
    }

    #[test]
    fn every_message_layout_is_read() {
        let mut b = vec![b'B'];
        b.extend_from_slice(&0x20u64.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        b.extend_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            parse(&xlog(&b)).unwrap(),
            Wire::XLog {
                wal_end: Lsn(0x1_0000_00ff),
                sent: 7,
                message: Message::Begin {
                    final_lsn: Lsn(0x20),
                    commit_time: 5
                }
            }
        );
        let mut c = vec![b'C', 0];
        c.extend_from_slice(&0x20u64.to_be_bytes());
        c.extend_from_slice(&0x48u64.to_be_bytes());
        c.extend_from_slice(&5i64.to_be_bytes());
        let bytes = xlog(&c);
        let Wire::XLog { message, .. } = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(
            message,
            Message::Commit {
                commit_lsn: Lsn(0x20),
                end_lsn: Lsn(0x48),
                commit_time: 5
            }
        );
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        rel.extend_from_slice(b"public\0orders\0d");
        rel.extend_from_slice(&2i16.to_be_bytes());
        rel.extend_from_slice(b"\x01id\0");
        rel.extend_from_slice(&20u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        rel.extend_from_slice(b"\x00note\0");
        rel.extend_from_slice(&25u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        let bytes = xlog(&rel);
        let Wire::XLog { message, .. } = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(
            message,
            Message::Relation {
                relid: 16384,
                namespace: "public",
                name: "orders",
                replident: b'd',
                columns: vec![
                    RelColumn {
                        key: true,
                        name: "id",
                        type_oid: 20,
                        typmod: -1
                    },
                    RelColumn {
                        key: false,
                        name: "note",
                        type_oid: 25,
                        typmod: -1
                    }
                ]
            }
        );
        let tuple = |values: &[&[u8]]| {
            let mut t = (values.len() as i16).to_be_bytes().to_vec();
            for v in values {
                match *v {
                    b"n" => t.push(b'n'),
                    b"u" => t.push(b'u'),
                    v => {
                        t.push(b'b');
                        t.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        t.extend_from_slice(v);
                    }
                }
            }
            t
        };
        let mut upd = vec![b'U'];
        upd.extend_from_slice(&16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend_from_slice(&tuple(&[b"\0\0\0\0\0\0\0\x01", b"n"]));
        upd.push(b'N');
        upd.extend_from_slice(&tuple(&[b"\0\0\0\0\0\0\0\x02", b"u"]));
        let bytes = xlog(&upd);
        let Wire::XLog { message, .. } = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(
            message,
            Message::Update {
                relid: 16384,
                old: Some((
                    b'K',
                    vec![Value::Binary(b"\0\0\0\0\0\0\0\x01"), Value::Null]
                )),
                new: vec![Value::Binary(b"\0\0\0\0\0\0\0\x02"), Value::Unchanged]
            }
        );
        let mut del = vec![b'D'];
        del.extend_from_slice(&7u32.to_be_bytes());
        del.push(b'O');
        del.extend_from_slice(&tuple(&[b"x"]));
        let bytes = xlog(&del);
        let Wire::XLog { message, .. } = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(
            message,
            Message::Delete {
                relid: 7,
                kind: b'O',
                old: vec![Value::Binary(b"x")]
            }
        );
        let mut tr = vec![b'T'];
        tr.extend_from_slice(&2i32.to_be_bytes());
        tr.push(0);
        tr.extend_from_slice(&7u32.to_be_bytes());
        tr.extend_from_slice(&8u32.to_be_bytes());
        let bytes = xlog(&tr);
        let Wire::XLog { message, .. } = parse(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(message, Message::Truncate { relids: vec![7, 8] });
        let mut k = vec![b'k'];
        k.extend_from_slice(&0x99u64.to_be_bytes());
        k.extend_from_slice(&12i64.to_be_bytes());
        k.push(1);
        assert_eq!(
            parse(&k).unwrap(),
            Wire::Keepalive {
                wal_end: Lsn(0x99),
                sent: 12,
                reply: true
            }
        );
        // Cut anywhere, a message is refused.
        for cut in 0..upd.len() {
            assert!(parse(&xlog(&upd[..cut])).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn status_updates_have_the_protocols_layout() {
        let m = status_update(Lsn(0x10), Lsn(0x08), 3, true);
        assert_eq!(m[0], b'r');
        assert_eq!(&m[1..9], &0x10u64.to_be_bytes());
        assert_eq!(&m[9..17], &0x08u64.to_be_bytes());
        assert_eq!(&m[17..25], &0x08u64.to_be_bytes());
        assert_eq!(&m[25..33], &3i64.to_be_bytes());
        assert_eq!(m[33], 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                          tag in proptest::sample::select(b"BCRIUDTYO".to_vec())) {
            let _ = parse(&bytes);
            let mut m = xlog(&[tag]);
            m.extend_from_slice(&bytes);
            let _ = parse(&m);
        }
    }
}
