//! Field normalisers: pure functions from one raw legacy value to one canonical
//! [`Value`] (see issue 3 and `docs/normalisers.md`).
//!
//! Every normaliser is pure: no files (the code tables are embedded with
//! `include_str!`), no clock, no randomness. Inputs may be personal data, so neither
//! [`Reject`] nor [`Flag`] ever carries any part of the input: only a reason.
//!
//! * [`normalise`] dispatches on a [`Kind`] (the `normaliser = "…"` spelling of the
//!   source layouts in `schemas/sources/`).
//! * [`render`] prints a canonical value; `normalise(kind, &render(&v))` gives `v`
//!   back for every non-null `v` that `normalise(kind, …)` produced.
//! * [`kana_key`] and [`kanji_key`] build match keys (never stored).
//! * [`normalise_lines`] is the core of `vaxarc normalise --field KIND`.

use std::fmt;
use std::io::{BufRead, Write};
use std::str::FromStr;

use crate::record::{format_date, Value};

mod code;
mod date;
mod memo;
mod number;
mod tables;
mod text;

#[cfg(test)]
mod tests;

pub use memo::Memo;
pub use tables::{ManufacturerInfo, StageRule, Tables, VaccineInfo};
pub use text::{kana_key, kanji_key};

/// Which normaliser a column uses; the spelling is the layout's `normaliser = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Date,
    Datetime,
    DatetimeDate,
    NameKanji,
    NameKana,
    Sex,
    KojinBango,
    MunicipalityCode,
    TicketNumber,
    Atena,
    PostalCode,
    Phone,
    Address,
    Text,
    Vaccine,
    Manufacturer,
    Stage,
    DoseNumber,
    DoseVolume,
    VaccinationClass,
    VaccinationStatus,
    ResidentStatus,
    Flag,
    Integer,
    Lot,
    Romaji,
    Passport,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 27] = [
        Kind::Date,
        Kind::Datetime,
        Kind::DatetimeDate,
        Kind::NameKanji,
        Kind::NameKana,
        Kind::Sex,
        Kind::KojinBango,
        Kind::MunicipalityCode,
        Kind::TicketNumber,
        Kind::Atena,
        Kind::PostalCode,
        Kind::Phone,
        Kind::Address,
        Kind::Text,
        Kind::Vaccine,
        Kind::Manufacturer,
        Kind::Stage,
        Kind::DoseNumber,
        Kind::DoseVolume,
        Kind::VaccinationClass,
        Kind::VaccinationStatus,
        Kind::ResidentStatus,
        Kind::Flag,
        Kind::Integer,
        Kind::Lot,
        Kind::Romaji,
        Kind::Passport,
    ];

    /// The layout spelling, e.g. `"name_kana"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::Datetime => "datetime",
            Kind::DatetimeDate => "datetime_date",
            Kind::NameKanji => "name_kanji",
            Kind::NameKana => "name_kana",
            Kind::Sex => "sex",
            Kind::KojinBango => "kojin_bango",
            Kind::MunicipalityCode => "municipality_code",
            Kind::TicketNumber => "ticket_number",
            Kind::Atena => "atena",
            Kind::PostalCode => "postal_code",
            Kind::Phone => "phone",
            Kind::Address => "address",
            Kind::Text => "text",
            Kind::Vaccine => "vaccine",
            Kind::Manufacturer => "manufacturer",
            Kind::Stage => "stage",
            Kind::DoseNumber => "dose_number",
            Kind::DoseVolume => "dose_volume",
            Kind::VaccinationClass => "vaccination_class",
            Kind::VaccinationStatus => "vaccination_status",
            Kind::ResidentStatus => "resident_status",
            Kind::Flag => "flag",
            Kind::Integer => "integer",
            Kind::Lot => "lot",
            Kind::Romaji => "romaji",
            Kind::Passport => "passport",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    /// From the layout spelling (`normaliser = "name_kana"`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A normaliser name that is not one of [`Kind::ALL`]. It holds the layout's (or the
/// command line's) spelling, which is configuration, not personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown normaliser kind {:?}", self.0)
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// A normalised value that was kept, but with a remark for the run report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// A 和暦 date written in an era after that era ended (平成31年5月1日); converted
    /// with that era's arithmetic.
    EraAfterEnd,
    /// A 個人番号 or 自治体コード whose check digit is wrong; the value is nulled.
    InvalidCheckDigit,
    /// A number with the wrong length or non-digits; the value is nulled.
    MalformedNumber,
    /// A manufacturer string not in `schemas/codes/manufacturers.toml`; nulled.
    UnknownManufacturer,
    /// A value outside the kind's vocabulary or syntax; nulled.
    InvalidValue,
    /// A 接種券番号 shorter than 10 digits, left-padded with zeros.
    PaddedTicket,
}

impl Flag {
    /// Every flag.
    pub const ALL: [Flag; 6] = [
        Flag::EraAfterEnd,
        Flag::InvalidCheckDigit,
        Flag::MalformedNumber,
        Flag::UnknownManufacturer,
        Flag::InvalidValue,
        Flag::PaddedTicket,
    ];

    /// snake_case name, e.g. `"era_after_end"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::EraAfterEnd => "era_after_end",
            Flag::InvalidCheckDigit => "invalid_check_digit",
            Flag::MalformedNumber => "malformed_number",
            Flag::UnknownManufacturer => "unknown_manufacturer",
            Flag::InvalidValue => "invalid_value",
            Flag::PaddedTicket => "padded_ticket",
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value could not be normalised at all. Carries only the reason, never the
/// input (which may be personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not a date (or datetime) in any accepted spelling, or a year outside
    /// 1868..=2100 / before 1868-01-25 for western dates. `"unparseable_date"`.
    Unparseable,
    /// Well-formed, but the day does not exist (2023-02-30). `"impossible_date"`.
    ImpossibleDate,
    /// A 和暦 date before its era began (令和1-04-30). `"date_before_era"`.
    DateBeforeEra,
    /// A vaccine name not in `schemas/codes/vaccines.toml`. `"unknown_vaccine"`.
    UnknownVaccine,
    /// A value outside a strict vocabulary (sex, resident status). `"invalid_value"`.
    InvalidValue,
}

impl Reject {
    /// Every reject reason.
    pub const ALL: [Reject; 5] = [
        Reject::Unparseable,
        Reject::ImpossibleDate,
        Reject::DateBeforeEra,
        Reject::UnknownVaccine,
        Reject::InvalidValue,
    ];

    /// snake_case reason, e.g. `"unparseable_date"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Unparseable => "unparseable_date",
            Reject::ImpossibleDate => "impossible_date",
            Reject::DateBeforeEra => "date_before_era",
            Reject::UnknownVaccine => "unknown_vaccine",
            Reject::InvalidValue => "invalid_value",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Reject {}

/// The result of a normaliser that kept the record: the canonical value (possibly
/// [`Value::Null`]) and an optional remark.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalised {
    pub value: Value,
    pub flag: Option<Flag>,
}

impl Normalised {
    /// A value without a flag.
    pub fn ok(value: Value) -> Normalised {
        Normalised { value, flag: None }
    }

    /// A value with a flag.
    pub fn flagged(value: Value, flag: Flag) -> Normalised {
        Normalised {
            value,
            flag: Some(flag),
        }
    }

    /// [`Value::Null`] without a flag.
    pub fn null() -> Normalised {
        Normalised::ok(Value::Null)
    }

    /// [`Value::Null`] with a flag.
    pub fn null_flagged(flag: Flag) -> Normalised {
        Normalised::flagged(Value::Null, flag)
    }
}

/// Normalise one raw value of the given kind.
///
/// Blank input (empty, or only whitespace including U+3000) is `Ok(Null)` without a
/// flag for every kind.
/// Whether `code` is a 地方公共団体コード as written in a pipeline: exactly six ASCII
/// digits whose last is the check digit of the first five.
pub fn municipality_code_valid(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 6 && b.iter().all(u8::is_ascii_digit) && {
        let d: Vec<u8> = b.iter().map(|c| c - b'0').collect();
        number::municipality_check_digit(&d[..5]) == d[5]
    }
}

pub fn normalise(kind: Kind, raw: &str, tables: &Tables) -> Result<Normalised, Reject> {
    // Invisible format characters NFKC keeps (a BOM left at the start of a line by
    // concatenated exports, zero-width spaces pasted from other systems) would make equal
    // numbers and names differ as keys: removed from every value first.
    if !raw.is_ascii() && raw.contains(text::is_invisible) {
        let visible: String = raw.chars().filter(|c| !text::is_invisible(*c)).collect();
        return normalise(kind, &visible, tables);
    }
    if text::is_blank(raw) {
        return Ok(Normalised::null());
    }
    match kind {
        Kind::Date => date::date(raw),
        Kind::Datetime => date::datetime(raw),
        Kind::DatetimeDate => date::datetime_date(raw),
        Kind::NameKanji => Ok(Normalised::ok(Value::Str(text::name_kanji(raw).into()))),
        Kind::NameKana => Ok(Normalised::ok(Value::Str(text::name_kana(raw).into()))),
        Kind::Sex => code::sex(raw),
        Kind::KojinBango => Ok(number::kojin_bango(raw)),
        Kind::MunicipalityCode => Ok(number::municipality_code(raw)),
        Kind::TicketNumber => Ok(number::ticket_number(raw)),
        Kind::Atena => Ok(number::atena(raw)),
        Kind::PostalCode => Ok(number::postal_code(raw)),
        Kind::Phone => Ok(number::phone(raw)),
        Kind::Address => Ok(Normalised::ok(Value::Str(text::address(raw).into()))),
        Kind::Text => Ok(Normalised::ok(Value::Str(text::text(raw).into()))),
        Kind::Vaccine => code::vaccine(raw, tables),
        Kind::Manufacturer => Ok(code::manufacturer(raw, tables)),
        Kind::Stage => Ok(code::stage(raw, tables)),
        Kind::DoseNumber => Ok(code::dose_number(raw)),
        Kind::DoseVolume => Ok(number::dose_volume(raw)),
        Kind::VaccinationClass => Ok(code::vaccination_class(raw)),
        Kind::VaccinationStatus => Ok(code::vaccination_status(raw)),
        Kind::ResidentStatus => code::resident_status(raw),
        Kind::Flag => Ok(code::flag(raw)),
        Kind::Integer => Ok(number::integer(raw)),
        Kind::Lot => Ok(code::lot(raw)),
        Kind::Romaji => Ok(code::romaji(raw)),
        Kind::Passport => Ok(code::passport(raw)),
    }
}

/// The canonical text of a value: `Date` → `YYYY-MM-DD`, `Timestamp` →
/// `YYYY-MM-DDTHH:MM:SS`, `Str` as is, `Int`/`Float` plain, `Bool` → `true`/`false`,
/// `Null` → `NULL`.
pub fn render(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => format_date(*d),
        Value::Timestamp(ts) => {
            let days = ts.div_euclid(86_400);
            let secs = ts.rem_euclid(86_400);
            let days = i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX });
            format!(
                "{}T{:02}:{:02}:{:02}",
                format_date(days),
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        }
    }
}

/// For `vaxarc normalise --field KIND`: read one value per line (LF or CRLF; invalid
/// UTF-8 is replaced with U+FFFD), write one line per input line: the rendered value,
/// followed by `\t# flag: <flag>` when flagged, or `REJECT <reason>`.
pub fn normalise_lines(
    kind: Kind,
    mut input: impl BufRead,
    mut output: impl Write,
    tables: &Tables,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = String::from_utf8_lossy(&buf);
        match normalise(kind, &line, tables) {
            Ok(n) => {
                output.write_all(render(&n.value).as_bytes())?;
                if let Some(flag) = n.flag {
                    write!(output, "\t# flag: {flag}")?;
                }
                output.write_all(b"\n")?;
            }
            Err(reject) => writeln!(output, "REJECT {reject}")?,
        }
    }
    output.flush()
}
