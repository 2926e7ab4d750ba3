//! Identifiers and numbers: 個人番号, 自治体コード, 接種券番号, 宛名番号, 郵便番号,
//! 電話番号, integers and dose volumes.

use crate::record::Value;

use super::text::{is_dash_or_long, nfkc};
use super::{Flag, Normalised};

/// NFKC, whitespace and dash variants removed; `None` unless only ASCII digits remain.
/// Writes the digits into `buf` (no allocation for ≤ 16 digits).
fn digits_only<'a>(raw: &str, buf: &'a mut [u8; 16]) -> Result<&'a [u8], ()> {
    let s = nfkc(raw);
    let mut n = 0;
    for c in s.chars() {
        if c.is_whitespace() || is_dash_or_long(c) {
            continue;
        }
        if !c.is_ascii_digit() || n == buf.len() {
            return Err(());
        }
        buf[n] = c as u8 - b'0';
        n += 1;
    }
    Ok(&buf[..n])
}

fn digits_to_string(d: &[u8]) -> String {
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// 個人番号 check digit for the first 11 digits (総務省令 第5条).
pub(crate) fn kojin_bango_check_digit(first11: &[u8]) -> u8 {
    debug_assert_eq!(first11.len(), 11);
    let mut sum = 0u32;
    for n in 1..=11usize {
        let p = u32::from(first11[11 - n]);
        let q = if n <= 6 { n as u32 + 1 } else { n as u32 - 5 };
        sum += p * q;
    }
    let r = sum % 11;
    if r <= 1 {
        0
    } else {
        (11 - r) as u8
    }
}

/// 地方公共団体コード check digit for the first 5 digits.
pub(crate) fn municipality_check_digit(first5: &[u8]) -> u8 {
    debug_assert_eq!(first5.len(), 5);
    let sum: u32 = first5
        .iter()
        .zip([6u32, 5, 4, 3, 2])
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    ((11 - sum % 11) % 10) as u8
}

/// `kojin_bango`: 12 digits with a valid check digit → `Str`; never rejects.
pub(crate) fn kojin_bango(raw: &str) -> Normalised {
    let mut buf = [0u8; 16];
    match digits_only(raw, &mut buf) {
        Ok(d) if d.len() == 12 => {
            if kojin_bango_check_digit(&d[..11]) == d[11] {
                Normalised::ok(Value::Str(digits_to_string(d).into()))
            } else {
                Normalised::null_flagged(Flag::InvalidCheckDigit)
            }
        }
        _ => Normalised::null_flagged(Flag::MalformedNumber),
    }
}

/// `municipality_code`: 6 digits with a valid check digit, or 5 digits (check digit
/// appended) → `Str` of 6 digits.
pub(crate) fn municipality_code(raw: &str) -> Normalised {
    let mut buf = [0u8; 16];
    match digits_only(raw, &mut buf) {
        Ok(d) if d.len() == 6 => {
            if municipality_check_digit(&d[..5]) == d[5] {
                Normalised::ok(Value::Str(digits_to_string(d).into()))
            } else {
                Normalised::null_flagged(Flag::InvalidCheckDigit)
            }
        }
        Ok(d) if d.len() == 5 => {
            let mut s = digits_to_string(d);
            s.push(char::from(b'0' + municipality_check_digit(d)));
            Normalised::ok(Value::Str(s.into()))
        }
        _ => Normalised::null_flagged(Flag::MalformedNumber),
    }
}

/// `ticket_number`: 10 digits → `Str`; 1–9 digits → zero-padded to 10, flagged.
pub(crate) fn ticket_number(raw: &str) -> Normalised {
    let mut buf = [0u8; 16];
    match digits_only(raw, &mut buf) {
        Ok(d) if d.len() == 10 => Normalised::ok(Value::Str(digits_to_string(d).into())),
        Ok(d) if (1..10).contains(&d.len()) => {
            let mut s = "0".repeat(10 - d.len());
            s.push_str(&digits_to_string(d));
            Normalised::flagged(Value::Str(s.into()), Flag::PaddedTicket)
        }
        _ => Normalised::null_flagged(Flag::MalformedNumber),
    }
}

/// `atena`: all digits → leading zeros stripped ("0" stays); otherwise trimmed and
/// ASCII-uppercased.
pub(crate) fn atena(raw: &str) -> Normalised {
    let s = nfkc(raw);
    let s = s.trim();
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let stripped = s.trim_start_matches('0');
        let out = if stripped.is_empty() { "0" } else { stripped };
        Normalised::ok(Value::Str(out.into()))
    } else {
        Normalised::ok(Value::Str(s.to_ascii_uppercase().into()))
    }
}

/// `postal_code`: 7 digits, with or without a dash after the third → `NNN-NNNN`.
pub(crate) fn postal_code(raw: &str) -> Normalised {
    let s = nfkc(raw);
    let mut d = [0u8; 7];
    let mut n = 0;
    let mut dash_at: Option<usize> = None;
    for c in s.chars() {
        if c.is_whitespace() || c == '〒' {
            continue;
        }
        if c.is_ascii_digit() && n < 7 {
            d[n] = c as u8;
            n += 1;
        } else if is_dash_or_long(c) && dash_at.is_none() && n == 3 {
            dash_at = Some(n);
        } else {
            return Normalised::null_flagged(Flag::InvalidValue);
        }
    }
    if n != 7 {
        return Normalised::null_flagged(Flag::InvalidValue);
    }
    let mut out = String::with_capacity(8);
    out.extend(d[..3].iter().map(|&b| char::from(b)));
    out.push('-');
    out.extend(d[3..].iter().map(|&b| char::from(b)));
    Normalised::ok(Value::Str(out.into()))
}

/// `phone`: digits separated by dashes, parentheses or spaces → digits joined by single
/// `-` where the input had separators; 10–11 digits.
pub(crate) fn phone(raw: &str) -> Normalised {
    let s = nfkc(raw);
    let mut out = String::with_capacity(13);
    let mut digits = 0;
    let mut pending_sep = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if pending_sep && !out.is_empty() {
                out.push('-');
            }
            pending_sep = false;
            out.push(c);
            digits += 1;
        } else if c.is_whitespace() || is_dash_or_long(c) || c == '(' || c == ')' {
            pending_sep = true;
        } else {
            return Normalised::null_flagged(Flag::InvalidValue);
        }
    }
    if !(10..=11).contains(&digits) {
        return Normalised::null_flagged(Flag::InvalidValue);
    }
    Normalised::ok(Value::Str(out.into()))
}

/// `integer`: optional sign and ASCII digits (after NFKC) → `Int`.
pub(crate) fn integer(raw: &str) -> Normalised {
    let s = nfkc(raw);
    let s = s.trim();
    let (neg, digits) = match s.chars().next() {
        Some('+') => (false, &s[1..]),
        Some('-') => (true, &s[1..]),
        Some('\u{2212}') => (true, &s['\u{2212}'.len_utf8()..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Normalised::null_flagged(Flag::InvalidValue);
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        v = match v.checked_mul(10).and_then(|v| {
            if neg {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        }) {
            Some(v) => v,
            None => return Normalised::null_flagged(Flag::InvalidValue),
        };
    }
    Normalised::ok(Value::Int(v))
}

/// `dose_volume`: a decimal number with an optional unit ml / cc (any case) → `Float`
/// millilitres.
pub(crate) fn dose_volume(raw: &str) -> Normalised {
    let s = nfkc(raw);
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let num = lower
        .strip_suffix("ml")
        .or_else(|| lower.strip_suffix("cc"))
        .unwrap_or(&lower)
        .trim_end();
    let valid = {
        let mut parts = num.splitn(2, '.');
        let int = parts.next().unwrap_or("");
        let frac = parts.next();
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        all_digits(int)
            && frac.is_none_or(|f| !f.is_empty() && all_digits(f))
            && !(int.is_empty() && frac.is_none())
            // At most 12 digits, not counting leading zeros of the integer part: the
            // rendered form of `.123451234567` is `0.123451234567`, which must normalise
            // back to the same value (found by fuzzing).
            && int.trim_start_matches('0').len() + frac.map_or(0, str::len) <= 12
    };
    match num.parse::<f64>() {
        Ok(v) if valid && v.is_finite() => Normalised::ok(Value::Float(v)),
        _ => Normalised::null_flagged(Flag::InvalidValue),
    }
}
