//! Date rendering (western and 和暦 forms) and check digits.

use crate::record::{civil_from_days, days_from_civil};

/// A date writing style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// 2024/09/30
    Slash,
    /// 2024/9/30
    SlashNoPad,
    /// 2024-09-30
    Dash,
    /// 2024-9-30
    DashNoPad,
    /// 20240930
    Compact,
    /// R06.09.30
    LetterDot,
    /// R6.9.30
    LetterDotNoPad,
    /// H28/1/1
    LetterSlash,
    /// 令和6年9月30日 (元年 for year 1)
    Kanji,
    /// 5060930 (era code digit + yymmdd)
    EraCode,
}

pub const WESTERN: [Style; 5] = [
    Style::Slash,
    Style::SlashNoPad,
    Style::Dash,
    Style::DashNoPad,
    Style::Compact,
];
pub const WAREKI: [Style; 5] = [
    Style::LetterDot,
    Style::LetterDotNoPad,
    Style::LetterSlash,
    Style::Kanji,
    Style::EraCode,
];

impl Style {
    pub fn is_wareki(self) -> bool {
        WAREKI.contains(&self)
    }
}

/// (code digit, letter, kanji, first day y, m, d)
const ERAS: [(u8, char, &str, i32, u8, u8); 5] = [
    (1, 'M', "明治", 1868, 1, 25),
    (2, 'T', "大正", 1912, 7, 30),
    (3, 'S', "昭和", 1926, 12, 25),
    (4, 'H', "平成", 1989, 1, 8),
    (5, 'R', "令和", 2019, 5, 1),
];

/// Index into ERAS of the era holding (y, m, d); the day may be impossible (2023-02-30),
/// then the era of the first of that month is used.
fn era_index(y: i32, m: u8, d: u8) -> usize {
    let key = (
        y,
        m,
        if days_from_civil(y, m, d).is_some() {
            d
        } else {
            1
        },
    );
    let mut idx = 0;
    for (i, e) in ERAS.iter().enumerate() {
        if key >= (e.3, e.4, e.5) {
            idx = i;
        }
    }
    idx
}

/// The first day of 令和 as days since 1970-01-01.
pub fn reiwa_start() -> i32 {
    days_from_civil(2019, 5, 1).unwrap()
}

/// Render (y, m, d) — which need not exist — in `style`. With `old_era`, a wareki style
/// uses the era before the real one (平成31年5月1日 for 2019-05-01).
pub fn render_ymd(y: i32, m: u8, d: u8, style: Style, old_era: bool) -> String {
    let mut ei = era_index(y, m, d);
    if old_era && ei > 0 {
        ei -= 1;
    }
    let (code, letter, kanji, start_y, _, _) = ERAS[ei];
    let ey = y - start_y + 1;
    match style {
        Style::Slash => format!("{y:04}/{m:02}/{d:02}"),
        Style::SlashNoPad => format!("{y}/{m}/{d}"),
        Style::Dash => format!("{y:04}-{m:02}-{d:02}"),
        Style::DashNoPad => format!("{y}-{m}-{d}"),
        Style::Compact => format!("{y:04}{m:02}{d:02}"),
        Style::LetterDot => format!("{letter}{ey:02}.{m:02}.{d:02}"),
        Style::LetterDotNoPad => format!("{letter}{ey}.{m}.{d}"),
        Style::LetterSlash => format!("{letter}{ey}/{m}/{d}"),
        Style::Kanji => {
            if ey == 1 {
                format!("{kanji}元年{m}月{d}日")
            } else {
                format!("{kanji}{ey}年{m}月{d}日")
            }
        }
        Style::EraCode => format!("{code}{ey:02}{m:02}{d:02}"),
    }
}

/// Render days since 1970-01-01.
pub fn render(days: i32, style: Style, old_era: bool) -> String {
    let (y, m, d) = civil_from_days(days);
    render_ymd(y, m, d, style, old_era)
}

/// ASCII digits → full-width digits.
pub fn fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap()
            } else {
                c
            }
        })
        .collect()
}

/// 個人番号 check digit for the first 11 digits (総務省令 第5条).
pub fn kojin_check_digit(first11: &[u8; 11]) -> u8 {
    let mut sum = 0u32;
    for n in 1..=11usize {
        let p = first11[11 - n] as u32;
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

/// A 12-digit 個人番号 from an 11-digit base.
pub fn kojin_bango(base: u64) -> String {
    let s = format!("{base:011}");
    let mut d = [0u8; 11];
    for (i, b) in s.bytes().enumerate() {
        d[i] = b - b'0';
    }
    format!("{s}{}", kojin_check_digit(&d))
}

/// True if a 12-digit string has a valid 個人番号 check digit.
pub fn kojin_valid(s: &str) -> bool {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let b = s.as_bytes();
    let mut d = [0u8; 11];
    for i in 0..11 {
        d[i] = b[i] - b'0';
    }
    kojin_check_digit(&d) == b[11] - b'0'
}

/// 地方公共団体コード check digit for the first 5 digits.
pub fn municipality_check_digit(first5: &str) -> Option<u8> {
    if first5.len() != 5 || !first5.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first5
        .bytes()
        .zip([6u32, 5, 4, 3, 2])
        .map(|(b, w)| (b - b'0') as u32 * w)
        .sum();
    Some(((11 - sum % 11) % 10) as u8)
}

/// True if a 6-digit municipality code has a valid check digit.
pub fn municipality_valid(code: &str) -> bool {
    code.len() == 6
        && municipality_check_digit(&code[..5]).map(|c| c + b'0') == Some(code.as_bytes()[5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_check_digits() {
        assert_eq!(kojin_bango(12345678901), "123456789018");
        assert!(kojin_valid("123456789018"));
        assert!(!kojin_valid("123456789017"));
        for (c, ok) in [
            ("131016", true),
            ("131091", true),
            ("011002", true),
            ("271403", true),
            ("130001", true),
            ("131092", false),
        ] {
            assert_eq!(municipality_valid(c), ok, "{c}");
        }
    }

    #[test]
    fn generate_wareki() {
        let d = |y, m, dd| days_from_civil(y, m, dd).unwrap();
        assert_eq!(render(d(2024, 9, 30), Style::LetterDot, false), "R06.09.30");
        assert_eq!(
            render(d(2024, 9, 30), Style::Kanji, false),
            "令和6年9月30日"
        );
        assert_eq!(render(d(2019, 5, 1), Style::Kanji, false), "令和元年5月1日");
        assert_eq!(
            render(d(2019, 4, 30), Style::LetterDotNoPad, false),
            "H31.4.30"
        );
        assert_eq!(
            render(d(1989, 1, 7), Style::LetterDotNoPad, false),
            "S64.1.7"
        );
        assert_eq!(render(d(1989, 1, 8), Style::Kanji, false), "平成元年1月8日");
        assert_eq!(render(d(2024, 9, 30), Style::EraCode, false), "5060930");
        assert_eq!(render(d(2019, 5, 1), Style::Kanji, true), "平成31年5月1日");
        assert_eq!(render(d(1920, 3, 1), Style::Kanji, false), "大正9年3月1日");
        assert_eq!(
            render_ymd(2023, 2, 30, Style::LetterDotNoPad, false),
            "R5.2.30"
        );
        assert_eq!(fullwidth_digits("2024/09/30"), "２０２４/０９/３０");
    }
}
