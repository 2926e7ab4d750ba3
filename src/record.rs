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
pub type Record = Vec<Value>;

/// One field value of a canonical record.
#[derive(Clone, PartialEq, PartialOrd)]
pub enum Value {
    /// No value.
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
    fn debug_hides_content() {
        let v = Value::Str("品川太郎".into());
        assert_eq!(format!("{v:?}"), "Str(<4 chars>)");
    }
}
