//! Vocabulary normalisers: sex, vaccine, manufacturer, stage and dose number, the
//! vaccination/resident status codes, flags, lot, romaji and passport.

use crate::record::Value;

use super::tables::stage_fold;
use super::text::{compact, nfkc};
use super::{Flag, Normalised, Reject, Tables};

fn s(v: &str) -> Normalised {
    Normalised::ok(Value::Str(v.into()))
}

/// `sex` → `"M"` / `"F"` / `"U"`; anything else is rejected.
pub(crate) fn sex(raw: &str) -> Result<Normalised, Reject> {
    let k = compact(raw);
    match k.as_ref() {
        "男" | "男性" | "1" | "M" | "m" => Ok(s("M")),
        "女" | "女性" | "2" | "F" | "f" => Ok(s("F")),
        "不明" | "9" | "0" | "U" | "u" => Ok(s("U")),
        _ => Err(Reject::InvalidValue),
    }
}

/// `vaccine` → canonical code from `vaccines.toml` (aliases, name or code).
pub(crate) fn vaccine(raw: &str, tables: &Tables) -> Result<Normalised, Reject> {
    tables
        .match_vaccine(raw)
        .map(|v| s(&v.code))
        .ok_or(Reject::UnknownVaccine)
}

/// `manufacturer` → canonical code from `manufacturers.toml`; unknown → null, flagged.
pub(crate) fn manufacturer(raw: &str, tables: &Tables) -> Normalised {
    match tables.match_manufacturer(raw) {
        Some(m) => s(&m.code),
        None => Normalised::null_flagged(Flag::UnknownManufacturer),
    }
}

/// `stage` → the canonical stage of the longest `stages.toml` pattern in the text.
pub(crate) fn stage(raw: &str, tables: &Tables) -> Normalised {
    let folded = stage_fold(raw);
    match tables.match_stage(&folded) {
        Some(st) => s(st),
        None => Normalised::null(),
    }
}

/// The dose number in 接種数 text: a circled digit ①–⑳, else N of the first `N回`
/// (`N回目`), else a bare number; `None` otherwise (or for 0).
pub(crate) fn dose_number_of(raw: &str) -> Option<i64> {
    if let Some(c) = raw.chars().find(|c| ('\u{2460}'..='\u{2473}').contains(c)) {
        return Some(i64::from(c as u32 - 0x2460 + 1));
    }
    let folded = compact(raw);
    let text = folded.as_ref();
    if !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|&n: &i64| n > 0);
    }
    for (i, _) in text.match_indices('回') {
        let before = &text[..i];
        let digits = before.bytes().rev().take_while(u8::is_ascii_digit).count();
        if (1..=4).contains(&digits) {
            let n: i64 = before[before.len() - digits..].parse().ok()?;
            if n > 0 {
                return Some(n);
            }
        }
    }
    None
}

/// `dose_number` → `Int(N)` or null.
pub(crate) fn dose_number(raw: &str) -> Normalised {
    match dose_number_of(raw) {
        Some(n) => Normalised::ok(Value::Int(n)),
        None => Normalised::null(),
    }
}

/// `vaccination_class` → routine_a | routine_b | voluntary | special_temporary |
/// temporary; else null, flagged.
pub(crate) fn vaccination_class(raw: &str) -> Normalised {
    let k = compact(raw).to_ascii_uppercase();
    match k.as_str() {
        "定期" | "定期A" | "A類" | "定期(A類)" | "定期A類" | "定期接種" | "ROUTINE_A" => {
            s("routine_a")
        }
        "B類" | "定期B" | "定期(B類)" | "定期B類" | "ROUTINE_B" => s("routine_b"),
        "任意" | "任意接種" | "VOLUNTARY" => s("voluntary"),
        "特例臨時" | "特例臨時接種" | "SPECIAL_TEMPORARY" => s("special_temporary"),
        "臨時" | "臨時接種" | "TEMPORARY" => s("temporary"),
        _ => Normalised::null_flagged(Flag::InvalidValue),
    }
}

/// `vaccination_status` → done | not_done; else null, flagged.
pub(crate) fn vaccination_status(raw: &str) -> Normalised {
    let k = compact(raw).to_ascii_lowercase();
    match k.as_str() {
        "実施" | "済" | "済み" | "接種済" | "接種済み" | "1" | "done" => s("done"),
        "未実施" | "未" | "未接種" | "0" | "not_done" => s("not_done"),
        _ => Normalised::null_flagged(Flag::InvalidValue),
    }
}

/// `resident_status` → resident | moved_out | deceased | non_resident; else rejected.
pub(crate) fn resident_status(raw: &str) -> Result<Normalised, Reject> {
    let k = compact(raw).to_ascii_lowercase();
    match k.as_str() {
        "1" | "住民" | "住登者" | "resident" => Ok(s("resident")),
        "2" | "転出" | "moved_out" => Ok(s("moved_out")),
        "3" | "死亡" | "deceased" => Ok(s("deceased")),
        "4" | "住登外" | "non_resident" => Ok(s("non_resident")),
        _ => Err(Reject::InvalidValue),
    }
}

/// `flag` → `Bool`; else null, flagged.
pub(crate) fn flag(raw: &str) -> Normalised {
    let k = compact(raw).to_ascii_lowercase();
    match k.as_str() {
        "あり" | "有" | "有り" | "1" | "○" | "◯" | "y" | "yes" | "true" => {
            Normalised::ok(Value::Bool(true))
        }
        "なし" | "無" | "無し" | "0" | "×" | "n" | "no" | "false" => {
            Normalised::ok(Value::Bool(false))
        }
        _ => Normalised::null_flagged(Flag::InvalidValue),
    }
}

/// `lot`: NFKC, trimmed, ASCII uppercase.
pub(crate) fn lot(raw: &str) -> Normalised {
    Normalised::ok(Value::Str(nfkc(raw).trim().to_ascii_uppercase().into()))
}

/// `romaji`: NFKC, ASCII uppercase, whitespace runs → one space, trimmed.
pub(crate) fn romaji(raw: &str) -> Normalised {
    let n = nfkc(raw);
    let mut out = String::with_capacity(n.len());
    for part in n.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out.make_ascii_uppercase();
    Normalised::ok(Value::Str(out.into()))
}

/// `passport`: NFKC, whitespace removed, ASCII uppercase; 6–12 ASCII letters/digits.
pub(crate) fn passport(raw: &str) -> Normalised {
    let k = compact(raw).to_ascii_uppercase();
    if (6..=12).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Normalised::ok(Value::Str(k.into()))
    } else {
        Normalised::null_flagged(Flag::InvalidValue)
    }
}
