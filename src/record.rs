//! A canonical record's values, independent of Arrow.
//!
//! Stages exchange records as a vector of [`Value`]s indexed by the field's position in
//! `schemas/record.toml` (see [`crate::schema`]). Values may be personal data: the
//! `Debug` impl shows only the kind and length of a value, never its content, so a
//! stray `{:?}` in a log or error cannot leak a name or number.

use std::fmt;

pub use compact_str::CompactString;

/// A canonical record: one [`Value`] per field of the schema, in schema order
/// (see [`crate::schema::Schema::idx`]). Registry and VRS person rows use the same
/// shape, with the fields their layout does not fill left [`Value::Null`].
///
/// Stored packed: a bit per field says whether it holds a value, and only those values
/// are kept, encoded one after another in field order in one byte buffer (a tag byte,
/// then a varint length and UTF-8 bytes for text, a zig-zag varint for integers, dates
/// and timestamps, 8 bytes for a float), after a table of each entry's start (u16, or
/// u32 when the entries exceed 64 KiB) so that reading a field costs the same wherever
/// it is. A ledger record fills about 30 of the 64 fields;
/// packed it takes about a third of the memory of one 24-byte [`Value`] per filled field
/// (docs/performance.md, "Packed records"). Reading gives a borrowed [`ValueRef`]
/// ([`Record::at`], [`Record::iter`]); writing ([`Record::set`], [`Record::set_many`])
/// re-encodes the record, so stages build a record as a `Vec<Value>` and pack it once
/// ([`Record::from`]).
#[derive(Clone, Default)]
pub struct Record {
    /// Bit `i % 64` of word `i / 64`: field `i` has an entry in `data`.
    present: [u64; 2],
    /// Number of fields (the schema's width).
    len: u16,
    /// The start table holds u32 (not u16) offsets.
    wide: bool,
    /// The start table, then the entries in field order, encoded (see the type's
    /// documentation). Starts count from the end of the table.
    data: Box<[u8]>,
}

/// Most fields a [`Record`] can have.
pub const MAX_FIELDS: usize = 128;

const T_STR: u8 = 1;
const T_INT: u8 = 2;
const T_FLOAT: u8 = 3;
const T_FALSE: u8 = 4;
const T_TRUE: u8 = 5;
const T_DATE: u8 = 6;
const T_TIMESTAMP: u8 = 7;
/// Text that is one of [`COMMON`], stored as its index (one byte).
const T_COMMON: u8 = 8;

/// Texts that recur in every dose record — source kinds, match methods, registry and merge
/// statuses, retention classes — stored in one tag and one index byte instead of up to 19
/// bytes of text each (about a sixth of a packed dose record). Only the in-memory form: the
/// list may change freely.
const COMMON: [&str; 21] = [
    "ledger",
    "vrs-ledger-export",
    "vrs-persons",
    "registry",
    "none",
    "atena",
    "integrated_atena",
    "kojin_bango",
    "ticket",
    "probabilistic",
    "review",
    "unlinked",
    "resident",
    "moved_out",
    "deceased",
    "non_resident",
    "single",
    "merged",
    "conflict",
    "routine_5y",
    "covid_special",
];

/// Text interned in the process-wide table ([`intern`]), stored as a varint id.
const T_INTERNED: u8 = 9;

/// A process-wide table of recurring texts (vaccine names, institutions, lot numbers, file
/// ids: a few thousand distinct values repeated over millions of records), so that a
/// packed record holds a small id instead of the text. Append-only and never freed (it
/// lives as long as the records of one run, in memory only); reading an id takes two
/// atomic loads and no lock, interning takes one of [`intern::SHARDS`] locks.
pub mod intern {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{LazyLock, Mutex, OnceLock};

    const SEGMENT_BITS: u32 = 12;
    const SEGMENT: usize = 1 << SEGMENT_BITS;
    const SEGMENTS: usize = 1024;
    /// Locks the interning side is split over.
    pub const SHARDS: usize = 16;
    /// Most distinct texts interned; beyond it texts are stored inline.
    pub const CAPACITY: usize = SEGMENT * SEGMENTS;

    type Ids = HashMap<&'static str, u32, foldhash::fast::FixedState>;

    /// A segment of [`SEGMENT`] slots, allocated when its first id is handed out.
    type Segment = Box<[OnceLock<Box<str>>]>;

    static TABLE: [OnceLock<Segment>; SEGMENTS] = [const { OnceLock::new() }; SEGMENTS];
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static IDS: LazyLock<Vec<Mutex<Ids>>> =
        LazyLock::new(|| (0..SHARDS).map(|_| Mutex::new(Ids::default())).collect());

    /// The id of `s`, interning it first if needed; `None` once the table is full.
    pub fn id(s: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        let shard =
            foldhash::fast::FixedState::with_seed(0x696e_7465_726e).hash_one(s) as usize % SHARDS;
        let mut ids = IDS[shard].lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = ids.get(s) {
            return Some(id);
        }
        // Full: stop counting, so the counter can never wrap around to ids in use (it
        // passes CAPACITY by at most the number of threads interning at that moment).
        if NEXT.load(Ordering::Relaxed) as usize >= CAPACITY {
            return None;
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if id as usize >= CAPACITY {
            return None;
        }
        let segment = TABLE[(id >> SEGMENT_BITS) as usize]
            .get_or_init(|| (0..SEGMENT).map(|_| OnceLock::new()).collect());
        let slot = &segment[id as usize & (SEGMENT - 1)];
        let stored: &'static str = slot.get_or_init(|| Box::from(s));
        ids.insert(stored, id);
        Some(id)
    }

    /// The text of an id [`id`] returned.
    ///
    /// # Panics
    /// If no text has that id (ids only come from [`id`], so never).
    #[inline]
    pub fn text(id: u32) -> &'static str {
        TABLE[(id >> SEGMENT_BITS) as usize]
            .get()
            .and_then(|segment| segment[id as usize & (SEGMENT - 1)].get())
            .expect("an interned id has its text")
    }
}

/// Index of `s` in [`COMMON`].
#[inline]
fn common_index(s: &str) -> Option<u8> {
    // Lengths first: most texts (names, numbers, codes) fail here without a comparison.
    if !matches!(s.len(), 4..=6 | 8 | 10..=13 | 16 | 17) {
        return None;
    }
    COMMON.iter().position(|c| *c == s).map(|i| i as u8)
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn varint_len(mut x: u64) -> usize {
    let mut n = 1;
    while x >= 0x80 {
        x >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

#[inline]
fn get_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut x = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        x |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return x;
        }
        shift += 7;
    }
}

/// Bytes [`encode`] writes for a non-null value.
fn encoded_len(v: ValueRef<'_>) -> usize {
    1 + match v {
        ValueRef::Null | ValueRef::Bool(_) => 0,
        ValueRef::Str(s) if common_index(s).is_some() => 1,
        ValueRef::Str(s) => varint_len(s.len() as u64) + s.len(),
        ValueRef::Int(i) | ValueRef::Timestamp(i) => varint_len(zigzag(i)),
        ValueRef::Date(d) => varint_len(zigzag(i64::from(d))),
        ValueRef::Float(_) => 8,
    }
}

/// Append a non-null value's entry.
fn encode(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => unreachable!("a Null value is never stored"),
        ValueRef::Str(s) => match common_index(s) {
            Some(k) => {
                out.push(T_COMMON);
                out.push(k);
            }
            None => {
                out.push(T_STR);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        },
        ValueRef::Int(i) => {
            out.push(T_INT);
            put_varint(out, zigzag(i));
        }
        ValueRef::Float(f) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        ValueRef::Bool(b) => out.push(if b { T_TRUE } else { T_FALSE }),
        ValueRef::Date(d) => {
            out.push(T_DATE);
            put_varint(out, zigzag(i64::from(d)));
        }
        ValueRef::Timestamp(t) => {
            out.push(T_TIMESTAMP);
            put_varint(out, zigzag(t));
        }
    }
}

/// The entry at `pos`, moving `pos` past it.
#[inline]
fn decode<'a>(b: &'a [u8], pos: &mut usize) -> ValueRef<'a> {
    let tag = b[*pos];
    *pos += 1;
    match tag {
        T_STR => {
            let n = get_varint(b, pos) as usize;
            let bytes = &b[*pos..*pos + n];
            *pos += n;
            // Only `encode` writes entries, always from a `&str`.
            ValueRef::Str(std::str::from_utf8(bytes).expect("record text is UTF-8"))
        }
        T_INT => ValueRef::Int(unzigzag(get_varint(b, pos))),
        T_FLOAT => {
            let mut f = [0u8; 8];
            f.copy_from_slice(&b[*pos..*pos + 8]);
            *pos += 8;
            ValueRef::Float(f64::from_le_bytes(f))
        }
        T_FALSE => ValueRef::Bool(false),
        T_TRUE => ValueRef::Bool(true),
        T_DATE => ValueRef::Date(unzigzag(get_varint(b, pos)) as i32),
        T_TIMESTAMP => ValueRef::Timestamp(unzigzag(get_varint(b, pos))),
        T_COMMON => {
            let k = b[*pos];
            *pos += 1;
            ValueRef::Str(COMMON[usize::from(k)])
        }
        T_INTERNED => ValueRef::Str(intern::text(get_varint(b, pos) as u32)),
        _ => unreachable!("unknown record entry tag"),
    }
}

/// One entry of a record being rebuilt: copied from a record, or a new value.
enum Piece<'a> {
    Old(&'a [u8]),
    New(ValueRef<'a>),
    Interned(u32),
}

impl Piece<'_> {
    fn len(&self) -> usize {
        match self {
            Piece::Old(bytes) => bytes.len(),
            Piece::New(v) => encoded_len(*v),
            Piece::Interned(id) => 1 + varint_len(u64::from(*id)),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Old(bytes) => out.extend_from_slice(bytes),
            Piece::New(v) => encode(out, *v),
            Piece::Interned(id) => {
                out.push(T_INTERNED);
                put_varint(out, u64::from(*id));
            }
        }
    }
}

/// The start table and entries of the entries `walk` emits; `walk` runs twice (lengths,
/// then bytes) and must emit the same entries both times.
fn build(walk: impl Fn(&mut dyn FnMut(Piece<'_>))) -> (bool, Box<[u8]>) {
    let mut lens = [0usize; MAX_FIELDS];
    let mut n = 0;
    walk(&mut |piece| {
        lens[n] = piece.len();
        n += 1;
    });
    assemble(&lens[..n], |out| walk(&mut |piece| piece.write(out)))
}

/// The start table and entries of entries of `lens` bytes each, whose bytes `write`
/// appends in order; returns whether the table is wide (u32).
fn assemble(lens: &[usize], write: impl FnOnce(&mut Vec<u8>)) -> (bool, Box<[u8]>) {
    let payload: usize = lens.iter().sum();
    let wide = payload > usize::from(u16::MAX);
    let width = if wide { 4 } else { 2 };
    let mut out = Vec::with_capacity(lens.len() * width + payload);
    let mut start = 0usize;
    for len in lens {
        if wide {
            out.extend_from_slice(&(start as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(start as u16).to_le_bytes());
        }
        start += len;
    }
    write(&mut out);
    debug_assert_eq!(out.len(), lens.len() * width + payload);
    (wide, out.into_boxed_slice())
}

impl Record {
    /// A record of `len` fields, all [`Value::Null`].
    ///
    /// # Panics
    /// If `len` exceeds [`MAX_FIELDS`] (a schema that wide is refused when loaded).
    pub fn new(len: usize) -> Record {
        assert!(
            len <= MAX_FIELDS,
            "a record has at most {MAX_FIELDS} fields"
        );
        Record {
            present: [0; 2],
            len: len as u16,
            wide: false,
            data: Box::default(),
        }
    }

    /// Number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the record has no fields at all (not when all are null).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the packed entries and their start table take (for memory accounting and
    /// tests).
    pub fn packed_bytes(&self) -> usize {
        self.data.len()
    }

    /// Append the record in its packed form (for [`crate::spill`]): present bits, width,
    /// table width, entry bytes. Interned text stays an id: the bytes are only valid in
    /// this process.
    pub(crate) fn write_packed(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.present[0].to_le_bytes());
        out.extend_from_slice(&self.present[1].to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.push(u8::from(self.wide));
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.data);
    }

    /// Read back one record [`Record::write_packed`] wrote at `bytes[*pos..]`, advancing
    /// `pos`; `None` if the bytes end early. The bytes must come from `write_packed` in
    /// this process (the spill's authenticated encryption sees to that).
    pub(crate) fn read_packed(bytes: &[u8], pos: &mut usize) -> Option<Record> {
        let mut take = |n: usize| -> Option<&[u8]> {
            let b = bytes.get(*pos..pos.checked_add(n)?)?;
            *pos += n;
            Some(b)
        };
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let present = [word(take(8)?), word(take(8)?)];
        let len = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes"));
        let wide = take(1)?[0] != 0;
        let n = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let data: Box<[u8]> = take(n)?.into();
        (usize::from(len) <= MAX_FIELDS).then_some(Record {
            present,
            len,
            wide,
            data,
        })
    }

    /// The fields holding a value.
    #[inline]
    pub fn filled(&self) -> Fields {
        Fields(self.present)
    }

    /// Number of entries (fields holding a value).
    #[inline]
    fn entries(&self) -> usize {
        (self.present[0].count_ones() + self.present[1].count_ones()) as usize
    }

    /// Byte length of the start table.
    #[inline]
    fn table(&self) -> usize {
        self.entries() * if self.wide { 4 } else { 2 }
    }

    /// Position in `data` of entry number `rank`.
    #[inline]
    fn offset(&self, rank: usize) -> usize {
        let start = if self.wide {
            let b = &self.data[rank * 4..rank * 4 + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        } else {
            u16::from_le_bytes([self.data[rank * 2], self.data[rank * 2 + 1]]) as usize
        };
        self.table() + start
    }

    /// The byte range in `data` of every entry, in rank order (read once from the start
    /// table: the rebuilding walks take each entry twice; reading two starts per entry
    /// and walk, with the table's size recounted each time, was ≈ 4 % of a migrate).
    fn entry_bounds(&self) -> [u32; MAX_FIELDS + 1] {
        let entries = self.entries();
        let table = self.table();
        let mut bounds = [0u32; MAX_FIELDS + 1];
        if self.wide {
            for (k, b) in self.data[..table].chunks_exact(4).enumerate() {
                bounds[k] = (table + u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) as u32;
            }
        } else {
            for (k, b) in self.data[..table].chunks_exact(2).enumerate() {
                bounds[k] = (table + usize::from(u16::from_le_bytes([b[0], b[1]]))) as u32;
            }
        }
        bounds[entries] = self.data.len() as u32;
        bounds
    }

    #[inline]
    fn has(&self, i: usize) -> bool {
        self.present[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Number of entries of fields before field `i`.
    #[inline]
    fn rank(&self, i: usize) -> usize {
        let below = |word: u64, bits: usize| {
            if bits >= 64 {
                word.count_ones() as usize
            } else {
                (word & ((1u64 << bits) - 1)).count_ones() as usize
            }
        };
        below(self.present[0], i)
            + if i > 64 {
                below(self.present[1], i - 64)
            } else {
                0
            }
    }

    /// Field `i`, or `None` when `i` is out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<ValueRef<'_>> {
        if i >= self.len() {
            None
        } else if self.has(i) {
            let mut pos = self.offset(self.rank(i));
            Some(decode(&self.data, &mut pos))
        } else {
            Some(ValueRef::Null)
        }
    }

    /// Field `i` ([`ValueRef::Null`] when empty).
    ///
    /// # Panics
    /// If `i` is out of range.
    #[inline]
    pub fn at(&self, i: usize) -> ValueRef<'_> {
        match self.get(i) {
            Some(v) => v,
            None => panic!("field {i} out of range of a record of {} fields", self.len),
        }
    }

    /// Store `v` in field `i` (a `Null` empties the field).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn set(&mut self, i: usize, v: Value) {
        self.set_many([(i, v)]);
    }

    /// Store several fields in one pass over the record (each a `Null` empties its
    /// field; for a field named twice, the last value counts). No allocation but the
    /// record's new buffer, and none at all when every field already holds its value
    /// (reconciliation writes ingest's defaults back to most records: rebuilding them
    /// all cost a third of a GB per million rows).
    ///
    /// # Panics
    /// If a field is out of range.
    pub fn set_many<const N: usize>(&mut self, mut updates: [(usize, Value); N]) {
        for (i, _) in &updates {
            assert!(*i < self.len(), "field {i} out of range");
        }
        if updates.iter().all(|(i, v)| self.at(*i) == *v) {
            return;
        }
        if let [(i, v)] = updates.as_slice() {
            if self.insert(*i, v.as_ref()) {
                return;
            }
        }
        // Stable: of a field's updates, the last stays last.
        updates.sort_by_key(|(i, _)| *i);
        let mut present = self.present;
        for (i, v) in &updates {
            if v.is_null() {
                present[i / 64] &= !(1u64 << (i % 64));
            } else {
                present[i / 64] |= 1u64 << (i % 64);
            }
        }
        // The result's entries in order, walked twice: once for their lengths, once to
        // write them.
        let bounds = self.entry_bounds();
        let old = |rank: usize| &self.data[bounds[rank] as usize..bounds[rank + 1] as usize];
        let walk = |emit: &mut dyn FnMut(Piece<'_>)| {
            let mut rank = 0;
            let mut next = 0;
            for i in 0..self.len() {
                let had = self.has(i);
                let mut new = None;
                while next < updates.len() && updates[next].0 == i {
                    new = Some(&updates[next].1);
                    next += 1;
                }
                match new {
                    Some(v) if !v.is_null() => emit(Piece::New(v.as_ref())),
                    Some(_) => {}
                    None if had => emit(Piece::Old(old(rank))),
                    None => {}
                }
                if had {
                    rank += 1;
                }
            }
        };
        let (wide, data) = build(walk);
        self.present = present;
        self.wide = wide;
        self.data = data;
    }

    /// Set the empty field `i` to a non-null `v` without re-walking the record: the new
    /// entry is spliced in at its rank and the start table gains one entry (the starts
    /// after it move by the entry's length). The bytes equal what the general path
    /// builds. Returns false (nothing changed) when that does not apply or the table would
    /// change width. (The archive writer stores each record's person hash this way: a full
    /// rebuild per record was ≈ 3 % of a migrate.)
    fn insert(&mut self, i: usize, v: ValueRef<'_>) -> bool {
        if v.is_null() || self.has(i) {
            return false;
        }
        let piece = Piece::New(v);
        let add = piece.len();
        let (entries, table) = (self.entries(), self.table());
        let payload = self.data.len() - table;
        let wide = payload + add > usize::from(u16::MAX);
        if wide != self.wide {
            return false;
        }
        let width = if wide { 4 } else { 2 };
        let rank = self.rank(i);
        let at = if rank < entries {
            self.offset(rank) - table
        } else {
            payload
        };
        let start = |k: usize| -> usize {
            let b = &self.data[k * width..k * width + width];
            if wide {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
            } else {
                usize::from(u16::from_le_bytes([b[0], b[1]]))
            }
        };
        let push = |out: &mut Vec<u8>, x: usize| {
            if wide {
                out.extend_from_slice(&(x as u32).to_le_bytes());
            } else {
                out.extend_from_slice(&(x as u16).to_le_bytes());
            }
        };
        let mut out = Vec::with_capacity(self.data.len() + width + add);
        out.extend_from_slice(&self.data[..rank * width]);
        push(&mut out, at);
        for k in rank..entries {
            push(&mut out, start(k) + add);
        }
        out.extend_from_slice(&self.data[table..table + at]);
        piece.write(&mut out);
        out.extend_from_slice(&self.data[table + at..]);
        self.present[i / 64] |= 1u64 << (i % 64);
        self.data = out.into_boxed_slice();
        true
    }

    /// Take field `i`'s value, leaving it empty.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn take(&mut self, i: usize) -> Value {
        let v = self.at(i).to_value();
        if !v.is_null() {
            self.set(i, Value::Null);
        }
        v
    }

    /// Copy into each empty field `i` of this record for which `wanted(i)` holds the value
    /// `from` has there, if any; returns how many fields were filled. One pass over both
    /// records, however many fields it fills.
    pub fn fill_from(&mut self, from: &Record, mut wanted: impl FnMut(usize) -> bool) -> usize {
        let mut fill = [0u64; 2];
        for i in 0..from.len().min(self.len()) {
            if from.has(i) && !self.has(i) && wanted(i) {
                fill[i / 64] |= 1u64 << (i % 64);
            }
        }
        let count = (fill[0].count_ones() + fill[1].count_ones()) as usize;
        if count == 0 {
            return 0;
        }
        let (own_bounds, their_bounds) = (self.entry_bounds(), from.entry_bounds());
        fn entry<'r>(r: &'r Record, b: &[u32; MAX_FIELDS + 1], k: usize) -> &'r [u8] {
            &r.data[b[k] as usize..b[k + 1] as usize]
        }
        let walk = |emit: &mut dyn FnMut(Piece<'_>)| {
            let (mut own, mut theirs) = (0, 0);
            for i in 0..self.len() {
                if self.has(i) {
                    emit(Piece::Old(entry(self, &own_bounds, own)));
                    own += 1;
                }
                if i < from.len() && from.has(i) {
                    if fill[i / 64] & (1u64 << (i % 64)) != 0 {
                        emit(Piece::Old(entry(from, &their_bounds, theirs)));
                    }
                    theirs += 1;
                }
            }
        };
        let (wide, data) = build(walk);
        self.present = [self.present[0] | fill[0], self.present[1] | fill[1]];
        self.wide = wide;
        self.data = data;
        count
    }

    /// Every field in order, [`ValueRef::Null`] for the empty ones.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            record: self,
            field: 0,
            pos: self.table(),
        }
    }

    /// Every field as a vector, in order.
    pub fn to_vec(&self) -> Vec<Value> {
        self.iter().map(ValueRef::to_value).collect()
    }
}

/// The fields of a [`Record`] in order ([`Record::iter`]).
pub struct Iter<'a> {
    record: &'a Record,
    field: usize,
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = ValueRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<ValueRef<'a>> {
        if self.field >= self.record.len() {
            return None;
        }
        let i = self.field;
        self.field += 1;
        if self.record.has(i) {
            Some(decode(&self.record.data, &mut self.pos))
        } else {
            Some(ValueRef::Null)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.record.len() - self.field;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Record {
    type Item = ValueRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// A set of field indices ([`Record::pack`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields([u64; 2]);

impl Fields {
    /// The set of these fields.
    ///
    /// # Panics
    /// If an index is [`MAX_FIELDS`] or more.
    pub fn of(indices: impl IntoIterator<Item = usize>) -> Fields {
        let mut set = [0u64; 2];
        for i in indices {
            assert!(i < MAX_FIELDS, "field {i} out of range");
            set[i / 64] |= 1u64 << (i % 64);
        }
        Fields(set)
    }

    /// Whether field `i` is in the set.
    #[inline]
    pub fn has(&self, i: usize) -> bool {
        i < MAX_FIELDS && self.0[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// The fields in either set.
    #[inline]
    pub fn union(self, other: Fields) -> Fields {
        Fields([self.0[0] | other.0[0], self.0[1] | other.0[1]])
    }
}

impl Record {
    /// Pack a record, keeping the text of the fields in `intern` in the process-wide table
    /// ([`intern`]) — for fields whose values repeat across records (codes, names of
    /// vaccines and institutions), never for ones that identify a record or a person.
    ///
    /// # Panics
    /// If `values` has more than [`MAX_FIELDS`] fields.
    pub fn pack(values: &[Value], intern: Fields) -> Record {
        let mut r = Record::new(values.len());
        fn piece(intern: Fields, i: usize, v: &Value) -> Option<Piece<'_>> {
            match v {
                Value::Null => None,
                Value::Str(s) if intern.has(i) && common_index(s).is_none() => {
                    Some(intern::id(s).map_or(Piece::New(v.as_ref()), Piece::Interned))
                }
                _ => Some(Piece::New(v.as_ref())),
            }
        }
        let mut pieces: [Piece<'_>; MAX_FIELDS] = [const { Piece::Interned(0) }; MAX_FIELDS];
        let mut lens = [0usize; MAX_FIELDS];
        let mut n = 0;
        for (i, v) in values.iter().enumerate() {
            if let Some(p) = piece(intern, i, v) {
                r.present[i / 64] |= 1u64 << (i % 64);
                lens[n] = p.len();
                pieces[n] = p;
                n += 1;
            }
        }
        let (wide, data) = assemble(&lens[..n], |out| {
            for p in &pieces[..n] {
                p.write(out);
            }
        });
        r.wide = wide;
        r.data = data;
        r
    }
}

impl From<Vec<Value>> for Record {
    fn from(values: Vec<Value>) -> Record {
        Record::from(values.as_slice())
    }
}

impl From<&[Value]> for Record {
    fn from(values: &[Value]) -> Record {
        let mut r = Record::new(values.len());
        let mut lens = [0usize; MAX_FIELDS];
        let mut n = 0;
        for (i, v) in values.iter().enumerate() {
            if !v.is_null() {
                r.present[i / 64] |= 1u64 << (i % 64);
                lens[n] = encoded_len(v.as_ref());
                n += 1;
            }
        }
        let (wide, data) = assemble(&lens[..n], |out| {
            for v in values.iter().filter(|v| !v.is_null()) {
                encode(out, v.as_ref());
            }
        });
        r.wide = wide;
        r.data = data;
        r
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each value's own Debug never shows content.
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A field value borrowed from a [`Record`]: [`Value`] without owning its text.
/// The same variants, compared and ordered as the [`Value`] they stand for.
#[derive(Clone, Copy, Default, PartialEq, PartialOrd)]
pub enum ValueRef<'a> {
    /// No value.
    #[default]
    Null,
    /// Text.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A civil date as days since 1970-01-01.
    Date(i32),
    /// A wall-clock timestamp as seconds since 1970-01-01T00:00:00.
    Timestamp(i64),
}

impl<'a> ValueRef<'a> {
    /// True for [`ValueRef::Null`].
    #[inline]
    pub fn is_null(self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// The text of a [`ValueRef::Str`], else `None`.
    #[inline]
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The days of a [`ValueRef::Date`], else `None`.
    #[inline]
    pub fn as_date(self) -> Option<i32> {
        match self {
            ValueRef::Date(d) => Some(d),
            _ => None,
        }
    }

    /// The integer of a [`ValueRef::Int`], else `None`.
    #[inline]
    pub fn as_int(self) -> Option<i64> {
        match self {
            ValueRef::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The owned value.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Str(s) => Value::Str(s.into()),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::Timestamp(t) => Value::Timestamp(t),
        }
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        *self == other.as_ref()
    }
}

impl fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the content: values are personal data.
        match self {
            ValueRef::Null => write!(f, "Null"),
            ValueRef::Str(s) => write!(f, "Str(<{} chars>)", s.chars().count()),
            ValueRef::Int(_) => write!(f, "Int(<redacted>)"),
            ValueRef::Float(_) => write!(f, "Float(<redacted>)"),
            ValueRef::Bool(_) => write!(f, "Bool(<redacted>)"),
            ValueRef::Date(_) => write!(f, "Date(<redacted>)"),
            ValueRef::Timestamp(_) => write!(f, "Timestamp(<redacted>)"),
        }
    }
}

/// One field value of a canonical record.
#[derive(Clone, Default, PartialEq, PartialOrd)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// Text, NFC/NFKC-normalised as the field's normaliser decides. Inline up to 24
    /// bytes (most codes, numbers, dates and kana names: no heap allocation).
    Str(CompactString),
    /// An integer (int16/int32/int64 columns).
    Int(i64),
    /// A float (float64 columns).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A civil date as days since 1970-01-01 (Arrow `Date32`).
    Date(i32),
    /// A wall-clock timestamp (JST, no zone) as seconds since 1970-01-01T00:00:00.
    Timestamp(i64),
}

impl Value {
    /// The borrowed form.
    #[inline]
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Str(s) => ValueRef::Str(s),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Date(d) => ValueRef::Date(*d),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a [`Value::Str`], else `None`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The days of a [`Value::Date`], else `None`.
    pub fn as_date(&self) -> Option<i32> {
        match self {
            Value::Date(d) => Some(*d),
            _ => None,
        }
    }

    /// The integer of a [`Value::Int`], else `None`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the content: the borrowed form's Debug shows kind and length only.
        fmt::Debug::fmt(&self.as_ref(), f)
    }
}

/// Days since 1970-01-01 for a civil date, or `None` if the date does not exist.
pub fn days_from_civil(year: i32, month: u8, day: u8) -> Option<i32> {
    let month = time::Month::try_from(month).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.to_julian_day() - EPOCH_JULIAN_DAY)
}

/// The civil date (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(days: i32) -> (i32, u8, u8) {
    let date = time::Date::from_julian_day(days + EPOCH_JULIAN_DAY).unwrap_or(time::Date::MIN);
    (date.year(), date.month() as u8, date.day())
}

/// `YYYY-MM-DD` for days since 1970-01-01.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Julian day number of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// The first `N` bytes of `text`, zero-padded. Arrays order like the texts' prefixes
/// (a shorter text pads with zeros, which sort first), so sorting on `(head, text)` gives
/// exactly the text order while most comparisons touch no heap memory.
pub fn text_head<const N: usize>(text: &str) -> [u8; N] {
    let mut head = [0u8; N];
    let n = text.len().min(N);
    head[..n].copy_from_slice(&text.as_bytes()[..n]);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2023, 2, 30), None);
        let d = days_from_civil(2019, 5, 1).unwrap();
        assert_eq!(civil_from_days(d), (2019, 5, 1));
        assert_eq!(format_date(d), "2019-05-01");
    }

    #[test]
    fn setting_values_a_record_already_holds_keeps_its_buffer() {
        let mut r = Record::from(vec![
            Value::Str("single".into()),
            Value::Null,
            Value::Int(7),
        ]);
        let before = r.data.as_ptr();
        r.set_many([
            (0, Value::Str("single".into())),
            (1, Value::Null),
            (2, Value::Int(7)),
        ]);
        r.set(2, Value::Int(7));
        assert_eq!(r.data.as_ptr(), before, "nothing changed: no new buffer");
        r.set_many([(1, Value::Null), (2, Value::Int(8))]);
        assert_eq!(r.at(2), ValueRef::Int(8));
        assert_eq!(r.at(0), ValueRef::Str("single"));
        assert!(r.at(1).is_null());
    }

    #[test]
    fn packed_record_reads_like_a_vector() {
        let mut r = Record::new(70);
        assert_eq!(r.len(), 70);
        assert!(r.iter().all(ValueRef::is_null));
        r.set(66, Value::Int(1));
        r.set(3, Value::Str("a".into()));
        r.set(64, Value::Int(2));
        r.set(10, Value::Null);
        assert_eq!(r.at(3), ValueRef::Str("a"));
        assert_eq!(r.at(64), ValueRef::Int(2));
        assert_eq!(r.at(66), ValueRef::Int(1));
        assert_eq!(r.at(65), ValueRef::Null);
        assert_eq!(r.get(70), None);
        let mut v = vec![Value::Null; 70];
        v[3] = Value::Str("a".into());
        v[64] = Value::Int(2);
        v[66] = Value::Int(1);
        assert_eq!(r.to_vec(), v);
        assert_eq!(r, Record::from(v.clone()));
        assert_eq!(r.take(64), Value::Int(2));
        assert_eq!(r.take(64), Value::Null);
        r.set(3, Value::Null);
        assert_eq!(r.packed_bytes(), 2 + 2); // one u16 start, then tag and varint
        assert_eq!(r.at(66), ValueRef::Int(1));
        r.set_many([
            (66, Value::Int(5)),
            (1, Value::Bool(true)),
            (66, Value::Int(6)),
        ]);
        assert_eq!(r.at(66), ValueRef::Int(6));
        assert_eq!(r.at(1), ValueRef::Bool(true));
    }

    /// Entries beyond 64 KiB switch the start table to u32, and back.
    #[test]
    fn wide_records_keep_every_value() {
        let long = "長".repeat(30_000); // 90,000 bytes
        let mut v = vec![Value::Null; 10];
        v[2] = Value::Str("a".into());
        v[5] = Value::Str(long.as_str().into());
        v[8] = Value::Int(-3);
        let mut r = Record::from(v.clone());
        assert_eq!(r.to_vec(), v);
        assert_eq!(r.at(8), ValueRef::Int(-3));
        r.set(9, Value::Date(7));
        assert_eq!(r.at(5), ValueRef::Str(&long));
        assert_eq!(r.at(9), ValueRef::Date(7));
        let mut other = Record::from(vec![Value::Bool(true); 10]);
        assert_eq!(other.fill_from(&r, |_| true), 0);
        let mut empty = Record::new(10);
        assert_eq!(empty.fill_from(&r, |i| i != 2), 3);
        assert_eq!(empty.at(5), ValueRef::Str(&long));
        assert_eq!(empty.at(2), ValueRef::Null);
        assert_eq!(r.take(5), Value::Str(long.as_str().into()));
        assert_eq!(r.at(8), ValueRef::Int(-3));
        assert!(r.packed_bytes() < 32);
        other.set(0, Value::Null);
        assert_eq!(other.at(1), ValueRef::Bool(true));
    }

    #[test]
    fn fill_from_fills_only_empty_wanted_fields() {
        let mut a = Record::from(vec![Value::Int(1), Value::Null, Value::Null, Value::Int(4)]);
        a.set(2, Value::Null);
        let b = Record::from(vec![
            Value::Int(9),
            Value::Int(8),
            Value::Int(7),
            Value::Null,
        ]);
        assert_eq!(a.fill_from(&b, |i| i != 1), 1);
        assert_eq!(
            a.to_vec(),
            vec![Value::Int(1), Value::Null, Value::Int(7), Value::Int(4)]
        );
        assert_eq!(a.fill_from(&b, |_| true), 1);
        assert_eq!(a.at(1), ValueRef::Int(8));
        assert_eq!(a.fill_from(&b, |_| true), 0);
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            ".{0,40}".prop_map(|s: String| Value::Str(s.into())),
            proptest::sample::select(COMMON.to_vec()).prop_map(|s| Value::Str(s.into())),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN never equals itself", |f| !f.is_nan())
                .prop_map(Value::Float),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::Timestamp),
        ]
    }

    #[test]
    fn interned_text_reads_back_and_packs_smaller() {
        let name = "インフルエンザＨＡワクチン「第一三共」"; // 57 bytes
        let values = vec![
            Value::Str(name.into()),
            Value::Str("single".into()),
            Value::Int(3),
        ];
        let plain = Record::from(values.clone());
        let interned = Record::pack(&values, Fields::of([0, 1]));
        assert_eq!(interned, plain);
        assert_eq!(interned.to_vec(), values);
        assert_eq!(interned.at(0), ValueRef::Str(name));
        assert!(interned.packed_bytes() + 50 < plain.packed_bytes());
        // The same text gets the same id; set and fill_from carry interned entries over.
        assert_eq!(intern::id(name), intern::id(name));
        assert_eq!(intern::text(intern::id(name).unwrap()), name);
        let mut copy = Record::new(3);
        assert_eq!(copy.fill_from(&interned, |_| true), 3);
        copy.set(2, Value::Null);
        assert_eq!(copy.at(0), ValueRef::Str(name));
        assert_eq!(copy.packed_bytes(), interned.packed_bytes() - 2 - 2);
    }

    proptest::proptest! {
        /// Packing with any fields interned reads back the same values as without.
        #[test]
        fn interning_changes_no_value(
            values in proptest::collection::vec(any_value(), 0..=128),
            mask in proptest::collection::vec(proptest::bool::ANY, 128),
        ) {
            let fields = Fields::of((0..values.len()).filter(|&i| mask[i]));
            let r = Record::pack(&values, fields);
            proptest::prop_assert_eq!(r.to_vec(), values.clone());
            proptest::prop_assert_eq!(&r, &Record::from(values));
        }

        /// Packing keeps every value of every kind, in place.
        #[test]
        fn packing_round_trips(values in proptest::collection::vec(any_value(), 0..=128)) {
            let r = Record::from(values.clone());
            proptest::prop_assert_eq!(r.to_vec(), values.clone());
            for (i, v) in values.iter().enumerate() {
                proptest::prop_assert!(r.at(i) == *v);
            }
        }

        /// `fill_from` equals filling field by field.
        #[test]
        fn fill_from_matches_field_by_field(
            a in proptest::collection::vec(proptest::option::of(0i64..3), 0..130),
            b in proptest::collection::vec(proptest::option::of(0i64..3), 0..130),
            skip in 0usize..130,
        ) {
            let len = a.len().min(b.len());
            let to = |v: &[Option<i64>]| -> Vec<Value> {
                v[..len].iter().map(|x| x.map_or(Value::Null, Value::Int)).collect()
            };
            let (va, vb) = (to(&a), to(&b));
            let mut r = Record::from(va.clone());
            for (i, x) in va.iter().enumerate() {
                if x == &Value::Int(0) {
                    r.set(i, Value::Null);
                }
            }
            let mut expect: Vec<Value> = r.to_vec();
            let mut n = 0;
            for i in 0..len {
                if i != skip && expect[i].is_null() && !vb[i].is_null() {
                    expect[i] = vb[i].clone();
                    n += 1;
                }
            }
            proptest::prop_assert_eq!(r.fill_from(&Record::from(vb), |i| i != skip), n);
            proptest::prop_assert_eq!(r.to_vec(), expect);
        }
    }

    proptest::proptest! {
        /// Any sequence of sets, batched sets and takes leaves the record equal to the same
        /// operations applied to a plain vector.
        #[test]
        fn packed_record_matches_a_vector(
            len in 1usize..=128,
            ops in proptest::collection::vec((0usize..128, 0u8..3, any_value(), 0usize..128), 0..200),
        ) {
            let mut r = Record::new(len);
            let mut v = vec![Value::Null; len];
            for (i, op, value, j) in ops {
                let (i, j) = (i % len, j % len);
                match op {
                    0 => { r.set(i, value.clone()); v[i] = value; }
                    1 => {
                        r.set_many([(i, value.clone()), (j, Value::Int(7)), (i, value.clone())]);
                        v[j] = Value::Int(7);
                        v[i] = value;
                    }
                    _ => { proptest::prop_assert_eq!(r.take(i), std::mem::take(&mut v[i])); }
                }
                proptest::prop_assert!(r.at(i) == v[i]);
            }
            proptest::prop_assert_eq!(r.to_vec(), v.clone());
            proptest::prop_assert_eq!(r.iter().len(), len);
            proptest::prop_assert_eq!(&r, &Record::from(v));
        }
    }

    proptest::proptest! {
        /// Setting an empty field gives the same bytes as packing the values whole.
        #[test]
        fn setting_an_empty_field_gives_the_packed_bytes(
            values in proptest::collection::vec(proptest::option::of(any_value()), 1..128),
            value in any_value(),
            pick in 0usize..128,
        ) {
            let mut v: Vec<Value> = values.into_iter().map(|x| x.unwrap_or(Value::Null)).collect();
            let empty: Vec<usize> = (0..v.len()).filter(|&k| v[k].is_null()).collect();
            if !empty.is_empty() {
                let at = empty[pick % empty.len()];
                let mut r = Record::from(v.clone());
                r.set(at, value.clone());
                v[at] = value;
                let whole = Record::from(v);
                proptest::prop_assert_eq!((r.present, r.wide), (whole.present, whole.wide));
                proptest::prop_assert_eq!(&r.data, &whole.data);
            }
        }
    }

    #[test]
    fn setting_past_64_kib_widens_the_table_as_packing_does() {
        let (big, y) = (
            Value::Str("x".repeat(65_000).into()),
            Value::Str("y".repeat(1_000).into()),
        );
        let mut r = Record::from(vec![Value::Null, big.clone(), Value::Null, Value::Int(3)]);
        r.set(0, y.clone());
        let whole = Record::from(vec![y.clone(), big.clone(), Value::Null, Value::Int(3)]);
        assert!(r.wide && whole.wide);
        assert_eq!(r.data, whole.data);
        // Wide stays wide: spliced in.
        r.set(2, Value::Int(5));
        let whole = Record::from(vec![y, big, Value::Int(5), Value::Int(3)]);
        assert_eq!(r.data, whole.data);
    }

    #[test]
    fn debug_hides_content() {
        let v = Value::Str("品川太郎".into());
        assert_eq!(format!("{v:?}"), "Str(<4 chars>)");
        assert_eq!(format!("{:?}", v.as_ref()), "Str(<4 chars>)");
    }
}
