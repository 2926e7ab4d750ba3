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
/// Stored sparsely: a bit per field says whether it holds a value, and only those values
/// are kept, in field order. A ledger record fills about 30 of the 64 fields and a
/// registry row about 15, so this holds a record in about half (registry rows a quarter)
/// of the memory of one `Value` per field (docs/performance.md, "Allocator and sparse records").
/// Indexing reads like a slice (`record[i]`, [`Value::Null`] for an empty field);
/// `record[i] = v` through [`IndexMut`](std::ops::IndexMut) makes room for the field
/// first. [`Record::set`] stores a `Null` as an empty field.
#[derive(Clone, Default)]
pub struct Record {
    /// Bit `i % 64` of word `i / 64`: field `i` has an entry in `values`.
    present: [u64; 2],
    /// Number of fields (the schema's width).
    len: u16,
    /// The entries, in field order.
    values: Vec<Value>,
}

/// Most fields a [`Record`] can have.
pub const MAX_FIELDS: usize = 128;

static NULL: Value = Value::Null;

/// Free entries [`Record::compact`] leaves, and a full record grows by.
const SPARE: usize = 8;

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
            values: Vec::new(),
        }
    }

    /// A record of `len` fields, all [`Value::Null`], with room for `values` of them
    /// before it reallocates.
    pub fn with_capacity(len: usize, values: usize) -> Record {
        let mut r = Record::new(len);
        r.values.reserve_exact(values.min(len));
        r
    }

    /// Make room for `additional` more values before the record reallocates.
    pub fn reserve(&mut self, additional: usize) {
        self.values.reserve_exact(additional);
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

    #[inline]
    fn has(&self, i: usize) -> bool {
        self.present[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// Position of field `i`'s entry in `values` (entries of fields before it).
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
    pub fn get(&self, i: usize) -> Option<&Value> {
        if i >= self.len() {
            None
        } else if self.has(i) {
            Some(&self.values[self.rank(i)])
        } else {
            Some(&NULL)
        }
    }

    /// Store `v` in field `i` (a `Null` empties the field).
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn set(&mut self, i: usize, v: Value) {
        if v.is_null() {
            self.take(i);
        } else {
            self[i] = v;
        }
    }

    /// Take field `i`'s value, leaving it empty.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn take(&mut self, i: usize) -> Value {
        assert!(i < self.len(), "field {i} out of range");
        if !self.has(i) {
            return Value::Null;
        }
        let at = self.rank(i);
        self.present[i / 64] &= !(1u64 << (i % 64));
        self.values.remove(at)
    }

    /// Copy into each empty field `i` of this record for which `wanted(i)` holds the value
    /// `from` has there, if any; returns how many fields were filled. One pass over both
    /// records, however many fields it fills.
    pub fn fill_from(&mut self, from: &Record, mut wanted: impl FnMut(usize) -> bool) -> usize {
        let mut fill = [0u64; 2];
        let mut k = 0;
        for i in 0..from.len().min(self.len()) {
            if !from.has(i) {
                continue;
            }
            let v = &from.values[k];
            k += 1;
            if !v.is_null() && self[i].is_null() && wanted(i) {
                fill[i / 64] |= 1u64 << (i % 64);
            }
        }
        let count = (fill[0].count_ones() + fill[1].count_ones()) as usize;
        if count == 0 {
            return 0;
        }
        let present = [self.present[0] | fill[0], self.present[1] | fill[1]];
        let n = (present[0].count_ones() + present[1].count_ones()) as usize;
        let mut values =
            Vec::with_capacity(n + SPARE.min(self.values.capacity() - self.values.len()));
        let mut own = std::mem::take(&mut self.values).into_iter();
        for i in 0..self.len() {
            let filled = fill[i / 64] & (1u64 << (i % 64)) != 0;
            let had = self.has(i);
            if had {
                let v = own.next().unwrap_or_default();
                if !filled {
                    values.push(v);
                }
            }
            if filled {
                values.push(from[i].clone());
            }
        }
        self.values = values;
        self.present = present;
        count
    }

    /// Every field in order, [`Value::Null`] for the empty ones.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            record: self,
            field: 0,
            entry: 0,
        }
    }

    /// Drop entries that hold `Null` (left by `record[i] = Value::Null`) and spare capacity
    /// beyond a few entries.
    pub fn compact(&mut self) {
        if self.values.iter().any(Value::is_null) {
            let mut k = 0;
            for i in 0..self.len() {
                if self.has(i) {
                    if self.values[k].is_null() {
                        self.values.remove(k);
                        self.present[i / 64] &= !(1u64 << (i % 64));
                    } else {
                        k += 1;
                    }
                }
            }
        }
        // Room for the fields reconciliation fills in (status, score, person hash,
        // registry number and dates, conflicts, provenance) without doubling.
        self.values.shrink_to(self.values.len() + SPARE);
    }

    /// Every field as a vector, in order.
    pub fn to_vec(&self) -> Vec<Value> {
        self.iter().cloned().collect()
    }
}

/// The fields of a [`Record`] in order ([`Record::iter`]).
pub struct Iter<'a> {
    record: &'a Record,
    field: usize,
    entry: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Value;

    #[inline]
    fn next(&mut self) -> Option<&'a Value> {
        if self.field >= self.record.len() {
            return None;
        }
        let i = self.field;
        self.field += 1;
        if self.record.has(i) {
            self.entry += 1;
            Some(&self.record.values[self.entry - 1])
        } else {
            Some(&NULL)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.record.len() - self.field;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Record {
    type Item = &'a Value;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<usize> for Record {
    type Output = Value;

    #[inline]
    fn index(&self, i: usize) -> &Value {
        match self.get(i) {
            Some(v) => v,
            None => panic!("field {i} out of range of a record of {} fields", self.len),
        }
    }
}

impl std::ops::IndexMut<usize> for Record {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Value {
        assert!(
            i < self.len(),
            "field {i} out of range of a record of {} fields",
            self.len
        );
        let at = self.rank(i);
        if !self.has(i) {
            if self.values.len() == self.values.capacity() {
                // A few fields at a time: doubling would waste half a record.
                self.values.reserve_exact(SPARE);
            }
            self.present[i / 64] |= 1u64 << (i % 64);
            self.values.insert(at, Value::Null);
        }
        &mut self.values[at]
    }
}

impl From<Vec<Value>> for Record {
    fn from(values: Vec<Value>) -> Record {
        let mut r = Record::new(values.len());
        for (i, v) in values.into_iter().enumerate() {
            if !v.is_null() {
                r.present[i / 64] |= 1u64 << (i % 64);
                r.values.push(v);
            }
        }
        r.values.shrink_to_fit();
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
        // Never print the content: values are personal data.
        match self {
            Value::Null => write!(f, "Null"),
            Value::Str(s) => write!(f, "Str(<{} chars>)", s.chars().count()),
            Value::Int(_) => write!(f, "Int(<redacted>)"),
            Value::Float(_) => write!(f, "Float(<redacted>)"),
            Value::Bool(_) => write!(f, "Bool(<redacted>)"),
            Value::Date(_) => write!(f, "Date(<redacted>)"),
            Value::Timestamp(_) => write!(f, "Timestamp(<redacted>)"),
        }
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
    fn sparse_record_reads_like_a_vector() {
        let mut r = Record::new(70);
        assert_eq!(r.len(), 70);
        assert!(r.iter().all(Value::is_null));
        r[66] = Value::Int(1);
        r[3] = Value::Str("a".into());
        r.set(64, Value::Int(2));
        r[10] = Value::Null; // an explicit Null entry
        assert_eq!(r[3], Value::Str("a".into()));
        assert_eq!(r[64], Value::Int(2));
        assert_eq!(r[66], Value::Int(1));
        assert_eq!(r[65], Value::Null);
        assert_eq!(r.get(70), None);
        let mut v = vec![Value::Null; 70];
        v[3] = Value::Str("a".into());
        v[64] = Value::Int(2);
        v[66] = Value::Int(1);
        assert_eq!(r.to_vec(), v);
        assert_eq!(r, Record::from(v.clone()));
        r.compact();
        assert_eq!(r.values.len(), 3);
        assert_eq!(r.to_vec(), v);
        assert_eq!(r.take(64), Value::Int(2));
        assert_eq!(r.take(64), Value::Null);
        r.set(3, Value::Null);
        assert_eq!(r.values.len(), 1);
        assert_eq!(r[66], Value::Int(1));
        if let Value::Int(i) = &mut r[66] {
            *i = 5;
        }
        assert_eq!(r[66], Value::Int(5));
    }

    #[test]
    fn fill_from_fills_only_empty_wanted_fields() {
        let mut a = Record::from(vec![Value::Int(1), Value::Null, Value::Null, Value::Int(4)]);
        a[2] = Value::Null; // an explicit Null entry counts as empty
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
        assert_eq!(a[1], Value::Int(8));
        assert_eq!(a.fill_from(&b, |_| true), 0);
    }

    proptest::proptest! {
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
                    r[i] = Value::Null; // explicit Null entries
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
        /// Any sequence of writes, takes and sets leaves the record equal to the same
        /// operations applied to a plain vector.
        #[test]
        fn sparse_record_matches_a_vector(
            len in 0usize..=128,
            ops in proptest::collection::vec((0usize..128, 0u8..4, -5i64..5), 0..200),
        ) {
            let mut r = Record::new(len);
            let mut v = vec![Value::Null; len];
            for (i, op, x) in ops {
                if i >= len {
                    continue;
                }
                let value = if x == 0 { Value::Null } else { Value::Int(x) };
                match op {
                    0 => { r[i] = value.clone(); v[i] = value; }
                    1 => { r.set(i, value.clone()); v[i] = value; }
                    2 => { proptest::prop_assert_eq!(r.take(i), std::mem::take(&mut v[i])); }
                    _ => r.compact(),
                }
                proptest::prop_assert_eq!(&r[i], &v[i]);
            }
            proptest::prop_assert_eq!(r.to_vec(), v.clone());
            proptest::prop_assert_eq!(r.iter().len(), len);
            proptest::prop_assert_eq!(&r, &Record::from(v));
        }
    }

    #[test]
    fn debug_hides_content() {
        let v = Value::Str("品川太郎".into());
        assert_eq!(format!("{v:?}"), "Str(<4 chars>)");
    }
}
