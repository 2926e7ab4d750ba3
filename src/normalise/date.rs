//! Dates (和暦 and western) and datetimes.
//!
//! The input is NFKC-folded (full-width digits, ㍻ → 平成), tokenised, and matched
//! against a small grammar; see `docs/normalisers.md` for the accepted spellings.

use std::borrow::Cow;

use crate::record::{days_from_civil, Value};

use super::text::{is_dash, nfkc};
use super::{Flag, Normalised, Reject};

/// Era starts (year, month, day): 明治 (earliest accepted day), 大正, 昭和, 平成, 令和.
const ERA_START: [(u32, u32, u32); 5] = [
    (1868, 1, 25),
    (1912, 7, 30),
    (1926, 12, 25),
    (1989, 1, 8),
    (2019, 5, 1),
];
const MIN_YEAR: u32 = 1868;
const MAX_YEAR: u32 = 2100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    /// A digit run: value and digit count (at most 14).
    Num(u64, u8),
    /// An era, 0 = 明治 … 4 = 令和.
    Era(u8),
    /// 元 (first year of an era).
    Gan,
    Nen,
    Tsuki,
    Hi,
    /// `.` `/` `-` (dash variants fold to `-`).
    Sep(u8),
    Colon,
    /// The `T` between a date and a time.
    T,
}

const MAX_TOKS: usize = 16;

struct Toks {
    t: [Tok; MAX_TOKS],
    n: usize,
}

impl Toks {
    fn push(&mut self, t: Tok) -> Option<()> {
        if self.n == MAX_TOKS {
            return None;
        }
        self.t[self.n] = t;
        self.n += 1;
        Some(())
    }
    fn as_slice(&self) -> &[Tok] {
        &self.t[..self.n]
    }
}

fn era_letter(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        'M' => Some(0),
        'T' => Some(1),
        'S' => Some(2),
        'H' => Some(3),
        'R' => Some(4),
        _ => None,
    }
}

/// Full-width ASCII (U+FF01–U+FF5E) → ASCII, as NFKC would.
fn fold_fullwidth(c: char) -> char {
    if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
        char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
    } else {
        c
    }
}

fn tokenize(s: &str) -> Option<Toks> {
    let mut toks = Toks {
        t: [Tok::Colon; MAX_TOKS],
        n: 0,
    };
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let c = fold_fullwidth(c);
        let tok = match c {
            '0'..='9' => {
                let mut v = u64::from(c as u8 - b'0');
                let mut len = 1u8;
                while let Some(&d) = chars.peek() {
                    let d = fold_fullwidth(d);
                    if !d.is_ascii_digit() {
                        break;
                    }
                    chars.next();
                    len += 1;
                    if len > 14 {
                        return None;
                    }
                    v = v * 10 + u64::from(d as u8 - b'0');
                }
                Tok::Num(v, len)
            }
            c if c.is_whitespace() => continue,
            '.' => Tok::Sep(b'.'),
            '/' => Tok::Sep(b'/'),
            c if is_dash(c) => Tok::Sep(b'-'),
            ':' => Tok::Colon,
            'T' | 't' if matches!(toks.as_slice().last(), Some(Tok::Num(..))) => Tok::T,
            c if c.is_ascii_alphabetic() => Tok::Era(era_letter(c)?),
            '元' => Tok::Gan,
            '年' => Tok::Nen,
            '月' => Tok::Tsuki,
            '日' => Tok::Hi,
            '明' | '大' | '昭' | '平' | '令' => {
                let (era, second) = match c {
                    '明' => (0, '治'),
                    '大' => (1, '正'),
                    '昭' => (2, '和'),
                    '平' => (3, '成'),
                    _ => (4, '和'),
                };
                if chars.peek().map(|&c| fold_fullwidth(c)) == Some(second) {
                    chars.next();
                }
                Tok::Era(era)
            }
            _ => return None,
        };
        toks.push(tok)?;
    }
    Some(toks)
}

/// A parsed date: days since 1970-01-01, whether it was written in an era after that
/// era's end, and the seconds of the day when a time was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub days: i32,
    pub era_after_end: bool,
    pub secs: Option<u32>,
}

fn civil(y: u32, m: u64, d: u64) -> Result<i32, Reject> {
    if m > 99 || d > 99 {
        return Err(Reject::Unparseable);
    }
    days_from_civil(y as i32, m as u8, d as u8).ok_or(Reject::ImpossibleDate)
}

fn western(y: u64, m: u64, d: u64) -> Result<(i32, bool), Reject> {
    if !(u64::from(MIN_YEAR)..=u64::from(MAX_YEAR)).contains(&y) {
        return Err(Reject::Unparseable);
    }
    let y = y as u32;
    let days = civil(y, m, d)?;
    if (y, m as u32, d as u32) < ERA_START[0] {
        return Err(Reject::Unparseable);
    }
    Ok((days, false))
}

fn wareki(era: u8, n: u64, m: u64, d: u64) -> Result<(i32, bool), Reject> {
    let e = usize::from(era);
    let start = ERA_START[e];
    if n == 0 || n > u64::from(MAX_YEAR) {
        return Err(Reject::Unparseable);
    }
    let y = start.0 as u64 + n - 1;
    if y > u64::from(MAX_YEAR) {
        return Err(Reject::Unparseable);
    }
    let y = y as u32;
    let days = civil(y, m, d)?;
    let ymd = (y, m as u32, d as u32);
    if ymd < start {
        return Err(Reject::DateBeforeEra);
    }
    let after_end = e + 1 < ERA_START.len() && ymd >= ERA_START[e + 1];
    Ok((days, after_end))
}

fn time_of(h: u64, mi: u64, s: u64) -> Result<u32, Reject> {
    if h > 23 || mi > 59 || s > 59 {
        return Err(Reject::Unparseable);
    }
    Ok((h * 3600 + mi * 60 + s) as u32)
}

/// Month, day and the tokens after them, for `sep M sep D` or `年 M 月 D 日?`.
fn month_day(rest: &[Tok]) -> Result<(u64, u64, &[Tok]), Reject> {
    use Tok::*;
    match rest {
        [Sep(a), Num(m, 1..=2), Sep(b), Num(d, 1..=2), r @ ..] if a == b => Ok((*m, *d, r)),
        [Nen, Num(m, 1..=2), Tsuki, Num(d, 1..=2), Hi, r @ ..]
        | [Nen, Num(m, 1..=2), Tsuki, Num(d, 1..=2), r @ ..] => Ok((*m, *d, r)),
        _ => Err(Reject::Unparseable),
    }
}

/// An optional time after a date: `[T] H:MM[:SS]`.
fn time_suffix(rest: &[Tok]) -> Result<Option<u32>, Reject> {
    use Tok::*;
    let rest = match rest {
        [] => return Ok(None),
        [T, r @ ..] => r,
        r => r,
    };
    match rest {
        [Num(h, 1..=2), Colon, Num(mi, 2), Colon, Num(s, 2)] => time_of(*h, *mi, *s).map(Some),
        [Num(h, 1..=2), Colon, Num(mi, 2)] => time_of(*h, *mi, 0).map(Some),
        _ => Err(Reject::Unparseable),
    }
}

fn split_ymd(v: u64) -> (u64, u64, u64) {
    (v / 10_000, v / 100 % 100, v % 100)
}

fn parse_toks(t: &[Tok]) -> Result<Parsed, Reject> {
    use Tok::*;
    let ((days, era_after_end), secs) = match t {
        // EYYMMDD, E = 1 明治 … 5 令和
        [Num(v, 7)] => {
            let e = v / 1_000_000;
            if !(1..=5).contains(&e) {
                return Err(Reject::Unparseable);
            }
            let (y, m, d) = split_ymd(v % 1_000_000);
            (wareki(e as u8 - 1, y, m, d)?, None)
        }
        [Num(v, 8)] => {
            let (y, m, d) = split_ymd(*v);
            (western(y, m, d)?, None)
        }
        [Num(v, 14)] => {
            let (y, m, d) = split_ymd(v / 1_000_000);
            let (h, mi, s) = split_ymd(v % 1_000_000);
            let secs = time_of(h, mi, s)?;
            (western(y, m, d)?, Some(secs))
        }
        // H310430: era letter + YYMMDD
        [Era(e), Num(v, 6)] => {
            let (y, m, d) = split_ymd(*v);
            (wareki(*e, y, m, d)?, None)
        }
        [Era(e), rest @ ..] => {
            let (n, rest) = match rest {
                [Num(n, 1..=2), r @ ..] => (*n, r),
                [Gan, r @ ..] => (1, r),
                _ => return Err(Reject::Unparseable),
            };
            let (m, d, rest) = month_day(rest)?;
            let secs = time_suffix(rest)?;
            (wareki(*e, n, m, d)?, secs)
        }
        [Num(y, 4), rest @ ..] => {
            let (m, d, rest) = month_day(rest)?;
            let secs = time_suffix(rest)?;
            (western(*y, m, d)?, secs)
        }
        _ => return Err(Reject::Unparseable),
    };
    Ok(Parsed {
        days,
        era_after_end,
        secs,
    })
}

/// Characters the tokenizer handles itself, so that NFKC can be skipped: ASCII,
/// full-width ASCII (folded in [`tokenize`]), U+3000 and the era/date kanji.
fn tokenizer_native(c: char) -> bool {
    c.is_ascii()
        || ('\u{FF01}'..='\u{FF5E}').contains(&c)
        || matches!(
            c,
            '\u{3000}'
                | '年'
                | '月'
                | '日'
                | '元'
                | '明'
                | '治'
                | '大'
                | '正'
                | '昭'
                | '和'
                | '平'
                | '成'
                | '令'
        )
}

/// Parse any accepted date or datetime spelling.
pub(crate) fn parse(raw: &str) -> Result<Parsed, Reject> {
    let raw = raw.trim();
    let s: Cow<'_, str> = if raw.chars().all(tokenizer_native) {
        Cow::Borrowed(raw)
    } else {
        nfkc(raw)
    };
    let toks = tokenize(&s).ok_or(Reject::Unparseable)?;
    parse_toks(toks.as_slice())
}

/// `date` → `Value::Date`, flagged `era_after_end` when written past its era's end.
pub(crate) fn date(raw: &str) -> Result<Normalised, Reject> {
    let p = parse(raw)?;
    let value = Value::Date(p.days);
    Ok(if p.era_after_end {
        Normalised::flagged(value, Flag::EraAfterEnd)
    } else {
        Normalised::ok(value)
    })
}

/// `datetime` → `Value::Timestamp` (wall clock). A time is required; every failure is
/// `unparseable_date`.
pub(crate) fn datetime(raw: &str) -> Result<Normalised, Reject> {
    let p = parse(raw).map_err(|_| Reject::Unparseable)?;
    let secs = p.secs.ok_or(Reject::Unparseable)?;
    let value = Value::Timestamp(i64::from(p.days) * 86_400 + i64::from(secs));
    Ok(if p.era_after_end {
        Normalised::flagged(value, Flag::EraAfterEnd)
    } else {
        Normalised::ok(value)
    })
}

/// `datetime_date` → `Value::Date` of a datetime's date part (a bare date is accepted
/// too, with the `date` rules).
pub(crate) fn datetime_date(raw: &str) -> Result<Normalised, Reject> {
    date(raw)
}
