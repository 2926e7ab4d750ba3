//! Unicode helpers and the text-like normalisers: names, kana/kanji match keys,
//! address, free text.
//!
//! NFKC is applied to everything *except* CJK ideographs (unified and compatibility):
//! NFKC would fold some compatibility ideographs onto their unified forms, and a
//! person's name must keep the variant it was written with (髙, 﨑, 邊, …).

use std::borrow::Cow;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::Tables;

/// Ideographic space, the canonical separator between name parts.
pub(crate) const IDEOGRAPHIC_SPACE: char = '\u{3000}';

/// True for empty or whitespace-only input (Unicode White_Space, incl. U+3000).
/// Format characters with no glyph and no meaning in a name, number or date, which NFKC
/// keeps: zero-width space, non-joiner and joiner, word joiner, BOM (zero-width no-break
/// space). Removed from every raw value before it is normalised.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

pub(crate) fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// CJK unified ideographs (incl. extensions A–H) and CJK compatibility ideographs.
pub(crate) fn is_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF      // extension A
        | 0x4E00..=0x9FFF    // unified
        | 0xF900..=0xFAFF    // compatibility
        | 0x20000..=0x3FFFF) // extensions B–H, compatibility supplement
}

/// Variation selectors (incl. ideographic variation sequences' selectors).
pub(crate) fn is_variation_selector(c: char) -> bool {
    matches!(c as u32, 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)
}

/// Dash-like characters that legacy data uses interchangeably with `-`.
/// (Not ー U+30FC, which is a kana long-vowel mark; see [`is_dash_or_long`].)
pub(crate) fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{FF0D}'
            | '\u{FE63}'
            | '\u{2500}'
            | '\u{2501}'
    )
}

/// A dash or a kana long-vowel mark (ー, ｰ), which forms also use as a hyphen.
pub(crate) fn is_dash_or_long(c: char) -> bool {
    is_dash(c) || c == '\u{30FC}' || c == '\u{FF70}'
}

/// The spacing voicing marks ゛゜ have a compatibility decomposition to
/// SPACE + combining mark; map them to the combining marks first so that
/// カ゛ becomes ガ rather than カ + space + mark.
fn spacing_voicing_to_combining(c: char) -> char {
    match c {
        '\u{309B}' => '\u{3099}',
        '\u{309C}' => '\u{309A}',
        c => c,
    }
}

/// Characters NFKC leaves as they are whatever surrounds them (printable ASCII, hiragana
/// ぁ..ゖ, katakana ァ..ヺ, ー): a run of only these is NFKC without asking the Unicode
/// tables (most names and codes; tested against the tables' quick check). Excludes
/// combining marks, the spacing voicing marks, U+3000 and half-width forms.
pub(crate) fn nfkc_stable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{3041}'..='\u{3096}' | '\u{30A1}'..='\u{30FA}' | 'ー')
}

fn nfkc_run(run: &str, sink: &mut impl FnMut(char)) {
    if run.chars().all(nfkc_stable) || is_nfkc_quick(run.chars()) == IsNormalized::Yes {
        run.chars().for_each(sink);
    } else {
        run.chars()
            .map(spacing_voicing_to_combining)
            .nfkc()
            .for_each(sink);
    }
}

/// Feed the NFKC form of `s` to `sink`, leaving CJK ideographs as written.
pub(crate) fn nfkc_keep_ideographs(s: &str, mut sink: impl FnMut(char)) {
    if s.is_ascii() {
        s.chars().for_each(sink);
        return;
    }
    let mut run_start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        if is_ideograph(c) {
            if let Some(start) = run_start.take() {
                nfkc_run(&s[start..i], &mut sink);
            }
            sink(c);
        } else if run_start.is_none() {
            run_start = Some(i);
        }
    }
    if let Some(start) = run_start {
        nfkc_run(&s[start..], &mut sink);
    }
}

/// Full NFKC (ideographs included), borrowing when the input is already NFKC.
pub(crate) fn nfkc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || s.chars().all(nfkc_stable) || is_nfkc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().map(spacing_voicing_to_combining).nfkc().collect())
    }
}

/// NFKC (ideographs included) with all whitespace removed.
pub(crate) fn compact(s: &str) -> Cow<'_, str> {
    let n = nfkc(s);
    if n.chars().any(char::is_whitespace) {
        Cow::Owned(n.chars().filter(|c| !c.is_whitespace()).collect())
    } else {
        n
    }
}

/// Hiragana U+3041–U+3096 → katakana (+0x60).
pub(crate) fn hira_to_kata(c: char) -> char {
    if ('\u{3041}'..='\u{3096}').contains(&c) {
        char::from_u32(c as u32 + 0x60).unwrap_or(c)
    } else {
        c
    }
}

fn has_combining(s: &str) -> bool {
    !s.is_ascii() && s.chars().any(is_combining_mark)
}

/// Re-apply `f` while the output still holds combining marks that a second pass could
/// compose (e.g. ワ + U+3099 → ヷ after hiragana→katakana). Bounded; normally 0 extra passes.
fn settle(mut s: String, f: impl Fn(&str) -> String) -> String {
    for _ in 0..4 {
        if !has_combining(&s) {
            break;
        }
        let t = f(&s);
        if t == s {
            break;
        }
        s = t;
    }
    s
}

/// NFKC except ideographs; whitespace runs → one `sep`; trimmed. `kana`: hiragana →
/// katakana.
fn name_like(raw: &str, kana: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending = false;
    nfkc_keep_ideographs(raw, |c| {
        if c.is_whitespace() {
            pending = true;
            return;
        }
        if pending {
            if !out.is_empty() {
                out.push(IDEOGRAPHIC_SPACE);
            }
            pending = false;
        }
        out.push(if kana { hira_to_kata(c) } else { c });
    });
    out
}

/// `name_kanji`: ideographs as written, NFKC elsewhere, parts separated by one U+3000.
pub(crate) fn name_kanji(raw: &str) -> String {
    name_like(raw, false)
}

/// `name_kana`: as `name_kanji`, plus hiragana → katakana.
pub(crate) fn name_kana(raw: &str) -> String {
    settle(name_like(raw, true), |s| name_like(s, true))
}

fn kana_fold(c: char) -> char {
    match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        'ヂ' => 'ジ',
        'ヅ' => 'ズ',
        'ヲ' => 'オ',
        'ヰ' => 'イ',
        'ヱ' => 'エ',
        'ヷ' => 'バ',
        'ヸ' => 'ビ',
        'ヹ' => 'ベ',
        'ヺ' => 'ボ',
        c => c,
    }
}

fn is_long_vowel_mark(c: char) -> bool {
    matches!(
        c,
        'ー' | 'ｰ'
            | '‐'
            | '‑'
            | '‒'
            | '–'
            | '-'
            | '−'
            | '―'
            | '—'
            | '〜'
            | '～'
            | '~'
            | '－'
    )
}

fn kana_key_once(kana: &str) -> String {
    let mut out = String::with_capacity(kana.len());
    let mut after_vu = false;
    nfkc_keep_ideographs(kana, |c| {
        if c.is_whitespace() {
            return;
        }
        let c = hira_to_kata(c);
        if after_vu {
            after_vu = false;
            match c {
                'ァ' => return out.push('バ'),
                'ィ' => return out.push('ビ'),
                'ェ' => return out.push('ベ'),
                'ォ' => return out.push('ボ'),
                _ => out.push('ブ'),
            }
        }
        if c == 'ヴ' {
            after_vu = true;
        } else if !is_long_vowel_mark(c) {
            out.push(kana_fold(c));
        }
    });
    if after_vu {
        out.push('ブ');
    }
    out
}

/// Match key for a kana name (never stored): the `name_kana` form without whitespace,
/// small kana → full size, ヴァ/ヴィ/ヴ/ヴェ/ヴォ → バ/ビ/ブ/ベ/ボ, ヂ→ジ, ヅ→ズ, ヲ→オ,
/// ヰ→イ, ヱ→エ, long-vowel marks and dashes removed.
pub fn kana_key(kana: &str) -> String {
    kana_key_plain(kana).unwrap_or_else(|| kana_key_general(kana))
}

/// [`kana_key`] by the general path: NFKC, then the folds, until settled.
pub(crate) fn kana_key_general(kana: &str) -> String {
    settle(kana_key_once(kana), kana_key_once)
}

/// [`kana_key`] of a name written only in plain kana — hiragana あ..ん, katakana ァ..ン,
/// ー, and spaces (the form the `name_kana` normaliser stores) — without NFKC: none of
/// those characters changes under NFKC or composes with another, so the key is the
/// per-character folds alone (tested against [`kana_key_general`]). `None` for any
/// other character (ヴ and its hiragana, half-width kana, combining marks, …).
fn kana_key_plain(kana: &str) -> Option<String> {
    let plain = |c: char| matches!(c, '\u{3041}'..='\u{3093}' | '\u{30A1}'..='\u{30F3}' | 'ー' | ' ' | '\u{3000}');
    if !kana.chars().all(plain) {
        return None;
    }
    let mut out = String::with_capacity(kana.len());
    for c in kana.chars() {
        if c == ' ' || c == '\u{3000}' || c == 'ー' {
            continue;
        }
        out.push(kana_fold(hira_to_kata(c)));
    }
    Some(out)
}

fn kanji_key_once(kanji: &str, tables: &Tables) -> String {
    let mut out = String::with_capacity(kanji.len());
    nfkc_keep_ideographs(kanji, |c| {
        if c.is_whitespace() || is_variation_selector(c) {
            return;
        }
        out.push(if is_ideograph(c) {
            tables.kanji_standard(c)
        } else {
            c
        });
    });
    out
}

/// Match key for a kanji name (never stored): whitespace and variation selectors
/// removed, NFKC on non-ideographs, each variant ideograph mapped to its standard form
/// by `schemas/codes/kanji_variants.toml` (compatibility ideographs not in the table
/// fall back to their canonical decomposition).
pub fn kanji_key(kanji: &str, tables: &Tables) -> String {
    settle(kanji_key_once(kanji, tables), |s| kanji_key_once(s, tables))
}

fn address_once(raw: &str) -> String {
    let mut chars: Vec<char> = Vec::with_capacity(raw.len());
    let mut pending = false;
    nfkc_keep_ideographs(raw, |c| {
        if c.is_whitespace() {
            pending = true;
            return;
        }
        if pending {
            if !chars.is_empty() {
                chars.push(' ');
            }
            pending = false;
        }
        chars.push(c);
    });
    let mut out = String::with_capacity(raw.len());
    for i in 0..chars.len() {
        let c = chars[i];
        if is_dash_or_long(c)
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// `address`: NFKC on non-ideographs, trimmed, whitespace runs → one ASCII space,
/// dash variants between two digits → `-`.
pub(crate) fn address(raw: &str) -> String {
    settle(address_once(raw), address_once)
}

fn is_halfwidth_kana(c: char) -> bool {
    ('\u{FF61}'..='\u{FF9F}').contains(&c)
}

/// `text`: CRLF/CR → LF, half-width katakana → full-width, NFC, trimmed.
pub(crate) fn text(raw: &str) -> String {
    if raw.is_ascii() && !raw.contains('\r') {
        return raw.trim().to_string();
    }
    let mut buf = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    let mut hw_run = String::new();
    while let Some(c) = chars.next() {
        if is_halfwidth_kana(c) {
            hw_run.push(c);
            continue;
        }
        if !hw_run.is_empty() {
            buf.extend(hw_run.nfkc());
            hw_run.clear();
        }
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            buf.push('\n');
        } else {
            buf.push(c);
        }
    }
    if !hw_run.is_empty() {
        buf.extend(hw_run.nfkc());
    }
    let nfc: String = if unicode_normalization::is_nfc_quick(buf.chars()) == IsNormalized::Yes {
        buf
    } else {
        buf.nfc().collect()
    };
    let trimmed = nfc.trim();
    if trimmed.len() == nfc.len() {
        nfc
    } else {
        trimmed.to_string()
    }
}
