//! Unit and property tests of the normalisers.

use proptest::prelude::*;

use super::*;
use crate::record::days_from_civil;

fn t() -> &'static Tables {
    Tables::embedded()
}

fn norm(kind: Kind, raw: &str) -> Result<Normalised, Reject> {
    normalise(kind, raw, t())
}

fn d(y: i32, m: u8, dd: u8) -> Value {
    Value::Date(days_from_civil(y, m, dd).expect("valid test date"))
}

fn str_v(s: &str) -> Value {
    Value::Str(s.into())
}

#[track_caller]
fn ok(kind: Kind, raw: &str, want: Value) {
    assert_eq!(
        norm(kind, raw),
        Ok(Normalised::ok(want)),
        "{kind} {raw:?} should normalise unflagged"
    );
}

#[track_caller]
fn flagged(kind: Kind, raw: &str, want: Value, flag: Flag) {
    assert_eq!(
        norm(kind, raw),
        Ok(Normalised::flagged(want, flag)),
        "{kind} {raw:?} should normalise with flag {flag}"
    );
}

#[track_caller]
fn rejected(kind: Kind, raw: &str, reason: Reject) {
    assert_eq!(norm(kind, raw), Err(reason), "{kind} {raw:?} should reject");
}

#[track_caller]
fn s_ok(kind: Kind, raw: &str, want: &str) {
    ok(kind, raw, str_v(want));
}

/// ASCII → full-width forms (U+FF01..U+FF5E).
fn fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            c => c,
        })
        .collect()
}

const ERA_KANJI: [&str; 5] = ["明治", "大正", "昭和", "平成", "令和"];
const ERA_ABBR: [&str; 5] = ["明", "大", "昭", "平", "令"];
const ERA_LETTER: [&str; 5] = ["M", "T", "S", "H", "R"];
const ERA_START: [(i32, u8, u8); 5] = [
    (1868, 1, 25),
    (1912, 7, 30),
    (1926, 12, 25),
    (1989, 1, 8),
    (2019, 5, 1),
];

/// Every 和暦 spelling of (era, year-of-era, month, day) that `date` accepts.
fn wareki_spellings(era: usize, n: u32, m: u8, dd: u8) -> Vec<String> {
    let k = ERA_KANJI[era];
    let a = ERA_ABBR[era];
    let l = ERA_LETTER[era];
    let lo = l.to_ascii_lowercase();
    let mut v = vec![
        format!("{k}{n}年{m}月{dd}日"),
        format!("{k}{n:02}年{m:02}月{dd:02}日"),
        format!("{k}{n}年{m}月{dd}"),
        format!("{k} {n}年 {m}月 {dd}日"),
        format!("{k}{n}.{m}.{dd}"),
        format!("{k}{n}/{m}/{dd}"),
        format!("{a}{n}.{m}.{dd}"),
        format!("{l}{n:02}.{m:02}.{dd:02}"),
        format!("{l}{n}.{m}.{dd}"),
        format!("{l}{n}/{m}/{dd}"),
        format!("{l}{n}-{m}-{dd}"),
        format!("{lo}{n:02}/{m:02}/{dd:02}"),
        format!("{l}{n}年{m}月{dd}日"),
        format!("{l}{n:02}{m:02}{dd:02}"),
        format!("{}{n:02}{m:02}{dd:02}", era + 1),
        fullwidth(&format!("{l}{n:02}.{m:02}.{dd:02}")),
        fullwidth(&format!("{lo}{n}/{m}/{dd}")),
        format!(
            "{k}{}年{}月{}日",
            fullwidth(&n.to_string()),
            fullwidth(&m.to_string()),
            fullwidth(&dd.to_string())
        ),
    ];
    if n == 1 {
        v.push(format!("{k}元年{m}月{dd}日"));
        v.push(format!("{k}元年{m:02}月{dd:02}日"));
        v.push(format!("{l}元.{m}.{dd}"));
    }
    v
}

/// Every western spelling of (y, m, d) that `date` accepts.
fn western_spellings(y: i32, m: u8, dd: u8) -> Vec<String> {
    vec![
        format!("{y}/{m:02}/{dd:02}"),
        format!("{y}/{m}/{dd}"),
        format!("{y}-{m}-{dd}"),
        format!("{y}-{m:02}-{dd:02}"),
        format!("{y}.{m}.{dd}"),
        format!("{y}年{m}月{dd}日"),
        format!("{y}{m:02}{dd:02}"),
        format!("{y}{m:02}{dd:02}093015"),
        format!("{y}-{m:02}-{dd:02}T09:30:15"),
        format!("{y}/{m:02}/{dd:02} 09:30:15"),
        fullwidth(&format!("{y}/{m:02}/{dd:02}")),
        fullwidth(&format!("{y}{m:02}{dd:02}")),
        format!("  {y}-{m}-{dd}\u{3000}"),
    ]
}

#[track_caller]
fn all_wareki(era: usize, n: u32, m: u8, dd: u8, want: Result<Normalised, Reject>) {
    for sp in wareki_spellings(era, n, m, dd) {
        assert_eq!(norm(Kind::Date, &sp), want, "date {sp:?}");
    }
}

// ---------------------------------------------------------------- kinds, enums

#[test]
fn kind_spellings_round_trip() {
    for k in Kind::ALL {
        assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        assert_eq!(k.to_string(), k.as_str());
    }
    assert_eq!("datetime_date".parse::<Kind>(), Ok(Kind::DatetimeDate));
    assert!("Date".parse::<Kind>().is_err());
    assert!("nope".parse::<Kind>().is_err());
    #[derive(serde::Deserialize)]
    struct Col {
        normaliser: Kind,
    }
    let col: Col = toml::from_str("normaliser = \"name_kana\"").unwrap();
    assert_eq!(col.normaliser, Kind::NameKana);
    assert!(toml::from_str::<Col>("normaliser = \"bogus\"").is_err());
    // every normaliser named by a source layout is a Kind
    for layout in [
        include_str!("../../schemas/sources/ledger.toml"),
        include_str!("../../schemas/sources/registry.toml"),
        include_str!("../../schemas/sources/vrs-ledger-export.toml"),
        include_str!("../../schemas/sources/vrs-persons.toml"),
    ] {
        for line in layout.lines() {
            if let Some(rest) = line.trim().strip_prefix("normaliser = \"") {
                let name = rest.split('"').next().unwrap();
                assert!(name.parse::<Kind>().is_ok(), "{name}");
            }
        }
    }
    let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 27);
}

#[test]
fn flag_and_reject_names() {
    assert_eq!(Flag::EraAfterEnd.as_str(), "era_after_end");
    assert_eq!(Flag::InvalidCheckDigit.as_str(), "invalid_check_digit");
    assert_eq!(Flag::MalformedNumber.as_str(), "malformed_number");
    assert_eq!(Flag::UnknownManufacturer.as_str(), "unknown_manufacturer");
    assert_eq!(Flag::InvalidValue.as_str(), "invalid_value");
    assert_eq!(Flag::PaddedTicket.as_str(), "padded_ticket");
    assert_eq!(Reject::Unparseable.as_str(), "unparseable_date");
    assert_eq!(Reject::ImpossibleDate.as_str(), "impossible_date");
    assert_eq!(Reject::DateBeforeEra.as_str(), "date_before_era");
    assert_eq!(Reject::UnknownVaccine.as_str(), "unknown_vaccine");
    assert_eq!(Reject::InvalidValue.as_str(), "invalid_value");
    for r in Reject::ALL {
        assert_eq!(r.to_string(), r.as_str());
    }
    for f in Flag::ALL {
        assert_eq!(f.to_string(), f.as_str());
    }
}

#[test]
fn errors_and_debug_never_show_the_input() {
    let secret = "山田花子";
    for k in Kind::ALL {
        let out = format!("{:?}", norm(k, secret));
        assert!(!out.contains(secret), "{k}: {out}");
        assert!(!out.contains('山'), "{k}: {out}");
    }
    let out = format!("{:?}", norm(Kind::KojinBango, "123456789018"));
    assert!(!out.contains("1234"), "{out}");
}

#[test]
fn blank_is_null_for_every_kind() {
    for k in Kind::ALL {
        for raw in ["", " ", "\u{3000}", " \t\u{3000} ", "\r\n"] {
            assert_eq!(norm(k, raw), Ok(Normalised::null()), "{k} {raw:?}");
        }
    }
}

#[test]
fn render_forms() {
    assert_eq!(render(&Value::Null), "NULL");
    assert_eq!(render(&d(2024, 9, 30)), "2024-09-30");
    let ts = i64::from(days_from_civil(2024, 9, 30).unwrap()) * 86_400 + 9 * 3600 + 5 * 60 + 7;
    assert_eq!(render(&Value::Timestamp(ts)), "2024-09-30T09:05:07");
    assert_eq!(render(&Value::Timestamp(-1)), "1969-12-31T23:59:59");
    assert_eq!(render(&Value::Int(-42)), "-42");
    assert_eq!(render(&Value::Float(0.5)), "0.5");
    assert_eq!(render(&Value::Float(1.0)), "1");
    assert_eq!(render(&Value::Bool(true)), "true");
    assert_eq!(render(&str_v("髙橋")), "髙橋");
}

// ---------------------------------------------------------------- dates

#[test]
fn date_examples_from_the_contract() {
    let want = d(2024, 9, 30);
    for raw in [
        "R06.09.30",
        "R6/9/30",
        "r6.9.30",
        "Ｒ０６．０９．３０",
        "令和6年9月30日",
        "令和６年９月３０日",
        "5060930",
        "2024/09/30",
        "2024-9-30",
        "2024.9.30",
        "2024年9月30日",
        "20240930",
        "20240930235959",
        "２０２４／０９／３０",
        "2024-09-30T10:00:00",
        "\u{32FF}6年9月30日", // ㋿ (NFKC → 令和)
    ] {
        ok(Kind::Date, raw, want.clone());
    }
    ok(Kind::Date, "令和元年5月1日", d(2019, 5, 1));
    ok(Kind::Date, "H31.4.30", d(2019, 4, 30));
    ok(Kind::Date, "S64.1.7", d(1989, 1, 7));
    ok(Kind::Date, "\u{337B}31年4月30日", d(2019, 4, 30)); // ㍻
    ok(Kind::Date, "1868-01-25", d(1868, 1, 25));
    ok(Kind::Date, "2100-12-31", d(2100, 12, 31));
}

#[test]
fn era_boundaries_in_every_spelling() {
    let good = |y, m, dd| Ok(Normalised::ok(d(y, m, dd)));
    let late = |y, m, dd| Ok(Normalised::flagged(d(y, m, dd), Flag::EraAfterEnd));
    let before = || Err(Reject::DateBeforeEra);
    // 明治 / 大正
    all_wareki(0, 45, 7, 29, good(1912, 7, 29));
    all_wareki(1, 1, 7, 29, before());
    all_wareki(1, 1, 7, 30, good(1912, 7, 30));
    all_wareki(0, 45, 7, 30, late(1912, 7, 30));
    // 大正 / 昭和
    all_wareki(1, 15, 12, 24, good(1926, 12, 24));
    all_wareki(2, 1, 12, 24, before());
    all_wareki(2, 1, 12, 25, good(1926, 12, 25));
    all_wareki(1, 15, 12, 25, late(1926, 12, 25));
    // 昭和 / 平成
    all_wareki(2, 64, 1, 7, good(1989, 1, 7));
    all_wareki(3, 1, 1, 7, before());
    all_wareki(3, 1, 1, 8, good(1989, 1, 8));
    all_wareki(2, 64, 1, 8, late(1989, 1, 8));
    // 平成 / 令和
    all_wareki(3, 31, 4, 30, good(2019, 4, 30));
    all_wareki(4, 1, 4, 30, before());
    all_wareki(4, 1, 5, 1, good(2019, 5, 1));
    all_wareki(3, 31, 5, 1, late(2019, 5, 1));
    // 明治 start
    all_wareki(0, 1, 1, 25, good(1868, 1, 25));
    all_wareki(0, 1, 1, 24, before());
    for (y, m, dd) in [
        (1912, 7, 29),
        (1912, 7, 30),
        (1926, 12, 24),
        (1926, 12, 25),
        (1989, 1, 7),
        (1989, 1, 8),
        (2019, 4, 30),
        (2019, 5, 1),
    ] {
        for sp in western_spellings(y, m, dd) {
            ok(Kind::Date, &sp, d(y, m, dd));
        }
    }
}

#[test]
fn dates_written_after_their_era_are_flagged() {
    flagged(
        Kind::Date,
        "平成31年5月1日",
        d(2019, 5, 1),
        Flag::EraAfterEnd,
    );
    flagged(
        Kind::Date,
        "平成32年1月1日",
        d(2020, 1, 1),
        Flag::EraAfterEnd,
    );
    flagged(
        Kind::Date,
        "昭和64年1月8日",
        d(1989, 1, 8),
        Flag::EraAfterEnd,
    );
    flagged(Kind::Date, "H32.1.1", d(2020, 1, 1), Flag::EraAfterEnd);
    flagged(Kind::Date, "4320101", d(2020, 1, 1), Flag::EraAfterEnd);
}

#[test]
fn date_rejects() {
    rejected(Kind::Date, "令和1年4月30日", Reject::DateBeforeEra);
    rejected(Kind::Date, "R1.4.30", Reject::DateBeforeEra);
    rejected(Kind::Date, "平成1年1月7日", Reject::DateBeforeEra);
    rejected(Kind::Date, "5010430", Reject::DateBeforeEra);
    rejected(Kind::Date, "2023-02-30", Reject::ImpossibleDate);
    rejected(Kind::Date, "20230230", Reject::ImpossibleDate);
    rejected(Kind::Date, "令和5年2月30日", Reject::ImpossibleDate);
    rejected(Kind::Date, "2023-13-01", Reject::ImpossibleDate);
    rejected(Kind::Date, "2024-00-10", Reject::ImpossibleDate);
    for raw in [
        "garbage",
        "240930", // 6 digits
        "060930",
        "R6",
        "2024/09",
        "2024/9-30", // mixed separators
        "24/9/30",   // 2-digit year
        "1867-12-31",
        "1868-01-24",
        "2101-01-01",
        "0999-01-01",
        "令和0年1月1日",
        "昭和100年1月1日", // era years have 1-2 digits
        "令和99年1月1日",  // 2117
        "6060930",         // era code 6
        "0060930",
        "2024/09/30 25:00:00",
        "20240930246000",
        "2024/09/30/",
        "2024年9月30日(月)",
        "X6.9.30",
        "123456789012345",
    ] {
        rejected(Kind::Date, raw, Reject::Unparseable);
    }
}

#[test]
fn leap_days() {
    ok(Kind::Date, "2024-02-29", d(2024, 2, 29));
    ok(Kind::Date, "令和6年2月29日", d(2024, 2, 29));
    rejected(Kind::Date, "2100-02-29", Reject::ImpossibleDate);
    ok(Kind::Date, "2000-02-29", d(2000, 2, 29));
}

#[test]
fn datetimes() {
    let day = i64::from(days_from_civil(2021, 6, 1).unwrap()) * 86_400;
    let ts = Value::Timestamp(day + 13 * 3600 + 45 * 60 + 2);
    for raw in [
        "20210601134502",
        "2021/06/01 13:45:02",
        "2021-06-01 13:45:02",
        "2021-06-01T13:45:02",
        "２０２１０６０１１３４５０２",
    ] {
        ok(Kind::Datetime, raw, ts.clone());
    }
    ok(
        Kind::Datetime,
        "2021-06-01 13:45",
        Value::Timestamp(day + 13 * 3600 + 45 * 60),
    );
    for raw in [
        "20210601",
        "2021-06-01",
        "20210631134502",
        "2021-06-01 24:00",
        "nope",
    ] {
        rejected(Kind::Datetime, raw, Reject::Unparseable);
    }
    ok(Kind::DatetimeDate, "20210601134502", d(2021, 6, 1));
    ok(Kind::DatetimeDate, "2021/06/01 13:45:02", d(2021, 6, 1));
    ok(Kind::DatetimeDate, "2021-06-01", d(2021, 6, 1));
    rejected(Kind::DatetimeDate, "20210601996666", Reject::Unparseable);
}

// ---------------------------------------------------------------- names and keys

#[test]
fn name_kanji_keeps_variants_and_normalises_spaces() {
    s_ok(Kind::NameKanji, "髙橋　太郎", "髙橋　太郎");
    s_ok(Kind::NameKanji, "  髙橋 \t\u{3000} 太郎 ", "髙橋　太郎");
    s_ok(Kind::NameKanji, "髙橋太郎", "髙橋太郎");
    for v in ["\u{FA11}", "\u{FA10}", "邊", "邉", "齋", "齊", "\u{2F8A6}"] {
        let name = format!("{v}田 花子");
        s_ok(Kind::NameKanji, &name, &format!("{v}田\u{3000}花子"));
    }
    s_ok(Kind::NameKanji, "ﾀﾛｳ ＡＢＣ", "タロウ\u{3000}ABC");
    s_ok(Kind::NameKanji, "ｶﾞｸ", "ガク");
    s_ok(
        Kind::NameKanji,
        "山田 ジョン Smith",
        "山田\u{3000}ジョン\u{3000}Smith",
    );
}

#[test]
fn name_kana() {
    s_ok(Kind::NameKana, "やまだ　たろう", "ヤマダ\u{3000}タロウ");
    s_ok(Kind::NameKana, "ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ\u{3000}タロウ");
    s_ok(Kind::NameKana, "ヤマダ  タロウ", "ヤマダ\u{3000}タロウ");
    s_ok(Kind::NameKana, "きょうこ", "キョウコ");
    s_ok(Kind::NameKana, "ｻﾄｰ", "サトー");
    s_ok(Kind::NameKana, "ゔぃおら", "ヴィオラ");
    s_ok(Kind::NameKana, "カ゛ク", "ガク");
}

/// The characters `nfkc_stable` lets past the Unicode tables are NFKC alone and in every
/// pair (composition only ever joins two neighbours): exhaustive over the set.
#[test]
fn nfkc_stable_characters_are_nfkc_alone_and_in_pairs() {
    use unicode_normalization::UnicodeNormalization;
    let set: Vec<char> = (0u32..0x1_0000)
        .filter_map(char::from_u32)
        .filter(|c| text::nfkc_stable(*c))
        .collect();
    assert_eq!(set.len(), 95 + 86 + 90 + 1);
    let mut pair = String::new();
    for &a in &set {
        assert_eq!(a.to_string().nfkc().collect::<String>(), a.to_string());
        for &b in &set {
            pair.clear();
            pair.push(a);
            pair.push(b);
            assert!(pair.nfkc().eq(pair.chars()), "{a}{b}");
        }
    }
    // And not what NFKC changes or what composes.
    for c in [
        '\u{3000}', '\u{3099}', '\u{309B}', 'ｱ', '\u{30FF}', '\u{309F}', '\u{7F}',
    ] {
        assert!(!text::nfkc_stable(c), "{c:?}");
    }
}

#[test]
fn kana_keys() {
    assert_eq!(kana_key("ヤマダ　タロウ"), "ヤマダタロウ");
    assert_eq!(kana_key("やまだ たろう"), "ヤマダタロウ");
    assert_eq!(kana_key("ｷｮｳｺ"), "キヨウコ");
    assert_eq!(kana_key("キョウコ"), kana_key("キヨウコ"));
    assert_eq!(kana_key("ヴァイオリン"), "バイオリン");
    assert_eq!(kana_key("ヴィ ヴ ヴェ ヴォ"), "ビブベボ");
    assert_eq!(kana_key("ヴ"), "ブ");
    assert_eq!(kana_key("ヅヂヲヰヱ"), "ズジオイエ");
    assert_eq!(kana_key("サトー"), "サト");
    assert_eq!(kana_key("サト‐ウ"), "サトウ");
    assert_eq!(kana_key("ｼﾞｮｰｼﾞ"), "ジヨジ");
    assert_eq!(
        kana_key("ァィゥェォッャュョヮヵヶ"),
        "アイウエオツヤユヨワカケ"
    );
    assert_eq!(kana_key("サトウ〜"), "サトウ");
    assert_eq!(kana_key("サトウ―—−-ｰ"), "サトウ");
}

#[test]
fn kanji_keys() {
    let k = |s: &str| kanji_key(s, t());
    assert_eq!(k("髙橋 太郎"), "高橋太郎");
    assert_eq!(k("渡邊"), "渡辺");
    assert_eq!(k("渡邉"), k("渡辺"));
    for v in ["齋藤", "齊藤", "斎藤", "斉藤"] {
        assert_eq!(k(v), "斉藤");
    }
    assert_eq!(k("山\u{FA11}"), "山崎");
    assert_eq!(k("宮嵜"), "宮崎");
    assert_eq!(k("大\u{FA10}"), "大塚");
    assert_eq!(k("\u{F91D}"), "\u{6B04}"); // compat 欄 → unified via decomposition
    assert_eq!(k("葛\u{E0100}飾"), "葛飾"); // IVS selector dropped
    assert_eq!(k("ＡＢ　ｶ"), "ABカ");
    assert_eq!(
        k("澤 濱 廣 國 櫻 嶋 嶌 曾 德 眞 槇 圓 惠 藏 壽 龍 瀨 冨 桒 籠"),
        "沢浜広国桜島島曽徳真槙円恵蔵寿竜瀬富桑篭"
    );
}

#[test]
fn kanji_table_is_consistent() {
    let table = t().kanji_variants();
    assert!(table.len() >= 40);
    for &(v, s) in table {
        assert_ne!(v, s);
        assert!(
            table.binary_search_by_key(&s, |&(x, _)| x).is_err(),
            "chain via {s}"
        );
    }
    // A table with a chain is refused.
    let bad = "[[family]]\nstandard = \"高\"\nvariants = [\"髙\"]\n[[family]]\nstandard = \"髙\"\nvariants = [\"A\"]\n";
    assert!(Tables::from_toml(
        include_str!("../../schemas/codes/vaccines.toml"),
        include_str!("../../schemas/codes/manufacturers.toml"),
        include_str!("../../schemas/codes/stages.toml"),
        bad
    )
    .is_err());
}

// ---------------------------------------------------------------- numbers

#[test]
fn kojin_bango_check_digits() {
    s_ok(Kind::KojinBango, "123456789018", "123456789018");
    s_ok(Kind::KojinBango, "1234 5678 9018", "123456789018");
    s_ok(Kind::KojinBango, "1234-5678-9018", "123456789018");
    s_ok(Kind::KojinBango, "１２３４５６７８９０１８", "123456789018");
    for last in 0..=9 {
        if last == 8 {
            continue;
        }
        let raw = format!("12345678901{last}");
        assert_eq!(
            norm(Kind::KojinBango, &raw),
            Ok(Normalised::null_flagged(Flag::InvalidCheckDigit)),
            "{raw}"
        );
    }
    for raw in ["12345678901", "1234567890188", "12345678901a", "一二三"] {
        assert_eq!(
            norm(Kind::KojinBango, raw),
            Ok(Normalised::null_flagged(Flag::MalformedNumber)),
            "{raw}"
        );
    }
    // remainder ≤ 1 → 0
    assert_eq!(number::kojin_bango_check_digit(&[0; 11]), 0);
}

#[test]
fn municipality_codes() {
    for code in ["131091", "131016", "011002", "271403", "130001"] {
        s_ok(Kind::MunicipalityCode, code, code);
        s_ok(Kind::MunicipalityCode, &code[..5], code);
        s_ok(Kind::MunicipalityCode, &fullwidth(code), code);
        let last = code.as_bytes()[5] - b'0';
        let wrong = format!("{}{}", &code[..5], (last + 1) % 10);
        assert_eq!(
            norm(Kind::MunicipalityCode, &wrong),
            Ok(Normalised::null_flagged(Flag::InvalidCheckDigit))
        );
    }
    for raw in ["1310", "1310911", "13109X"] {
        assert_eq!(
            norm(Kind::MunicipalityCode, raw),
            Ok(Normalised::null_flagged(Flag::MalformedNumber))
        );
    }
}

#[test]
fn ticket_numbers() {
    s_ok(Kind::TicketNumber, "1234567890", "1234567890");
    s_ok(Kind::TicketNumber, "１２３４５６７８９０", "1234567890");
    s_ok(Kind::TicketNumber, "0000012345", "0000012345");
    flagged(
        Kind::TicketNumber,
        "12345",
        str_v("0000012345"),
        Flag::PaddedTicket,
    );
    flagged(
        Kind::TicketNumber,
        " 1 ",
        str_v("0000000001"),
        Flag::PaddedTicket,
    );
    for raw in ["12345678901", "12345abc", "券"] {
        assert_eq!(
            norm(Kind::TicketNumber, raw),
            Ok(Normalised::null_flagged(Flag::MalformedNumber))
        );
    }
}

/// A BOM or zero-width character inside a value (concatenated exports, pasted text) does
/// not make a number, name or date differ from the same value without it.
#[test]
fn invisible_format_characters_are_removed_first() {
    s_ok(Kind::Atena, "\u{FEFF}18902251", "18902251");
    s_ok(Kind::Atena, "\u{200B}18902251\u{200D}", "18902251");
    assert_eq!(
        norm(Kind::NameKana, "ヤマ\u{200B}ダ\u{2060} タロウ"),
        norm(Kind::NameKana, "ヤマダ タロウ")
    );
    assert_eq!(
        norm(Kind::NameKanji, "\u{FEFF}山田\u{200C}　太郎"),
        norm(Kind::NameKanji, "山田　太郎")
    );
    assert_eq!(
        norm(Kind::Date, "R06.09.30\u{200B}"),
        norm(Kind::Date, "R06.09.30")
    );
    assert_eq!(norm(Kind::Atena, "\u{200B}\u{FEFF}"), norm(Kind::Atena, ""));
}

#[test]
fn atena_numbers() {
    s_ok(Kind::Atena, "000012345", "12345");
    s_ok(Kind::Atena, "  12345", "12345");
    s_ok(Kind::Atena, "０００１２", "12");
    s_ok(Kind::Atena, "0", "0");
    s_ok(Kind::Atena, "0000", "0");
    s_ok(Kind::Atena, " ab-0012 ", "AB-0012");
    s_ok(Kind::Atena, "ａｂ１２", "AB12");
}

#[test]
fn postal_codes() {
    for raw in [
        "150-0001",
        "1500001",
        "〒150-0001",
        "〒 1500001",
        "１５０－０００１",
        "150ー0001",
        "150‐0001",
    ] {
        s_ok(Kind::PostalCode, raw, "150-0001");
    }
    for raw in ["15-00001", "150001", "15000011", "150-000a", "150--0001"] {
        assert_eq!(
            norm(Kind::PostalCode, raw),
            Ok(Normalised::null_flagged(Flag::InvalidValue)),
            "{raw}"
        );
    }
}

#[test]
fn phones() {
    s_ok(Kind::Phone, "03(1234)5678", "03-1234-5678");
    s_ok(Kind::Phone, "(03)1234-5678", "03-1234-5678");
    s_ok(Kind::Phone, "03 1234 5678", "03-1234-5678");
    s_ok(Kind::Phone, "090-1234-5678", "090-1234-5678");
    s_ok(Kind::Phone, "０３－１２３４－５６７８", "03-1234-5678");
    s_ok(Kind::Phone, "0312345678", "0312345678");
    s_ok(Kind::Phone, "03--1234--5678", "03-1234-5678");
    for raw in ["1234", "03-1234-567a", "+81-3-1234-5678", "090-1234-5678-9"] {
        assert_eq!(
            norm(Kind::Phone, raw),
            Ok(Normalised::null_flagged(Flag::InvalidValue)),
            "{raw}"
        );
    }
}

#[test]
fn integers_and_volumes() {
    ok(Kind::Integer, "42", Value::Int(42));
    ok(Kind::Integer, "４２", Value::Int(42));
    ok(Kind::Integer, "-7", Value::Int(-7));
    ok(Kind::Integer, "+7", Value::Int(7));
    ok(Kind::Integer, "-9223372036854775808", Value::Int(i64::MIN));
    for raw in ["4.2", "12歳", "9223372036854775808", "-", "1 2"] {
        assert_eq!(
            norm(Kind::Integer, raw),
            Ok(Normalised::null_flagged(Flag::InvalidValue)),
            "{raw}"
        );
    }
    for (raw, v) in [
        ("0.3", 0.3),
        ("0.30ml", 0.3),
        ("０．５ｍＬ", 0.5),
        ("0.5 mL", 0.5),
        ("0.5ML", 0.5),
        ("0.25cc", 0.25),
        ("1", 1.0),
        (".5", 0.5),
        ("0.5\u{3396}", 0.5), // ㎖
        // twelve digits after a leading zero that render adds (found by fuzzing)
        (".123451234567", 0.123451234567),
        ("0.123451234567", 0.123451234567),
        ("0000.5", 0.5),
    ] {
        ok(Kind::DoseVolume, raw, Value::Float(v));
    }
    for raw in [
        "abc", "0.5.1", "5.", "ml", "-0.5", "1e3", "0.5l", "NaN", "inf",
    ] {
        assert_eq!(
            norm(Kind::DoseVolume, raw),
            Ok(Normalised::null_flagged(Flag::InvalidValue)),
            "{raw}"
        );
    }
}

// ---------------------------------------------------------------- text-like

#[test]
fn addresses() {
    s_ok(
        Kind::Address,
        "東京都品川区広町２ー１ー３６　品川区役所",
        "東京都品川区広町2-1-36 品川区役所",
    );
    s_ok(Kind::Address, "  髙田馬場1−2‐3  ", "髙田馬場1-2-3");
    s_ok(Kind::Address, "ｺｰﾎﾟ山田 101", "コーポ山田 101");
    s_ok(Kind::Address, "1丁目 \t 2番", "1丁目 2番");
    s_ok(Kind::Address, "山\u{FA11}町1-2", "山\u{FA11}町1-2");
}

#[test]
fn texts() {
    s_ok(
        Kind::Text,
        "  ﾃｽﾄ会場\r\n2行目\r3行目 ",
        "テスト会場\n2行目\n3行目",
    );
    s_ok(Kind::Text, "e\u{301}", "é");
    s_ok(Kind::Text, "ＡＢＣ①", "ＡＢＣ①");
    s_ok(Kind::Text, "ｶﾞｯｺｳ", "ガッコウ");
    s_ok(Kind::Text, "plain ascii ", "plain ascii");
}

#[test]
fn lot_romaji_passport() {
    s_ok(Kind::Lot, " ｆｆ１２３４ ", "FF1234");
    s_ok(Kind::Lot, "ab-12", "AB-12");
    s_ok(Kind::Romaji, "  yamada\u{3000}\u{3000}taro ", "YAMADA TARO");
    s_ok(Kind::Romaji, "ＹＡＭＡＤＡ Taro", "YAMADA TARO");
    s_ok(Kind::Passport, "tk 123 4567", "TK1234567");
    s_ok(Kind::Passport, "ＴＲ１２３４５６７", "TR1234567");
    for raw in ["TK12", "TK1234567890123", "TK-123456", "旅券123456"] {
        assert_eq!(
            norm(Kind::Passport, raw),
            Ok(Normalised::null_flagged(Flag::InvalidValue)),
            "{raw}"
        );
    }
}

// ---------------------------------------------------------------- vocabularies

#[test]
fn sexes() {
    for raw in ["男", "男性", "1", "M", "m", "Ｍ", "１"] {
        s_ok(Kind::Sex, raw, "M");
    }
    for raw in ["女", "女性", "2", "F", "f", "Ｆ"] {
        s_ok(Kind::Sex, raw, "F");
    }
    for raw in ["不明", "9", "0", "U", "u"] {
        s_ok(Kind::Sex, raw, "U");
    }
    for raw in ["3", "X", "男女", "male"] {
        rejected(Kind::Sex, raw, Reject::InvalidValue);
    }
}

#[test]
fn vaccines() {
    for (raw, code) in [
        ("BCG", "BCG"),
        ("ＢＣＧ", "BCG"),
        ("bcg", "BCG"),
        ("結核", "BCG"),
        ("4種混合", "DPT-IPV"),
        ("４種混合", "DPT-IPV"),
        ("四種混合", "DPT-IPV"),
        ("dpt-ipv", "DPT-IPV"),
        ("DPT―IPV", "DPT-IPV"),
        ("DPT－IPV", "DPT-IPV"),
        ("麻しん 風しん", "MR"),
        ("ＭＲ", "MR"),
        ("インフルエンザ（高齢者）", "FLU-ELDERLY"),
        ("インフルエンザ(高齢者)", "FLU-ELDERLY"),
        ("FLU-ELDERLY", "FLU-ELDERLY"),
        ("PPSV23", "PPSV23"),
        ("covid-19", "COVID19"),
        ("COVID19", "COVID19"),
        ("ﾋﾄﾊﾟﾋﾟﾛｰﾏｳｲﾙｽ", "HPV"),
        ("日本脳炎", "JE"),
    ] {
        s_ok(Kind::Vaccine, raw, code);
    }
    rejected(Kind::Vaccine, "水痘", Reject::UnknownVaccine);
    rejected(Kind::Vaccine, "BCGX", Reject::UnknownVaccine);
    let v = t().vaccine("DPT-IPV").expect("DPT-IPV");
    assert_eq!(v.name, "四種混合");
    assert_eq!(v.category, "routine_a");
    assert_eq!(v.target_ages, [0, 8]);
    assert_eq!(v.doses, 4);
    assert_eq!(t().vaccines().len(), 9);
    assert!(t().vaccine("nope").is_none());
}

#[test]
fn manufacturers() {
    for (raw, code) in [
        ("ファイザー", "PFIZER"),
        ("ファイザー社", "PFIZER"),
        ("ﾌｧｲｻﾞｰ", "PFIZER"),
        ("ﾌｧｲｻﾞｰ社", "PFIZER"),
        ("ファイザー株式会社", "PFIZER"),
        ("PFIZER", "PFIZER"),
        ("pfizer", "PFIZER"),
        ("武田／モデルナ社", "MODERNA"),
        ("武田/モデルナ", "MODERNA"),
        ("モデルナ 社", "MODERNA"),
        ("第一三共株式会社", "DAIICHI-SANKYO"),
        ("DAIICHI-SANKYO", "DAIICHI-SANKYO"),
        ("Daiichi Sankyo", "DAIICHI-SANKYO"),
        ("ＫＭバイオロジクス", "KM-BIOLOGICS"),
        ("武田", "TAKEDA"),
        ("武田（ノババックス）", "NOVAVAX"),
        ("アストラゼネカ", "ASTRAZENECA"),
    ] {
        s_ok(Kind::Manufacturer, raw, code);
    }
    assert_eq!(
        norm(Kind::Manufacturer, "謎製薬"),
        Ok(Normalised::null_flagged(Flag::UnknownManufacturer))
    );
}

#[test]
fn stages_and_dose_numbers() {
    let cases: [(&str, Option<&str>, Option<i64>); 16] = [
        ("第1期初回2回目", Some("1期初回"), Some(2)),
        ("1期初回 2回目", Some("1期初回"), Some(2)),
        ("第１期初回１回目", Some("1期初回"), Some(1)),
        ("1期追加", Some("1期追加"), None),
        ("第2期", Some("2期"), None),
        ("1期", Some("1期"), None),
        ("3期", Some("3期"), None),
        ("①", None, Some(1)),
        ("⑳", None, Some(20)),
        ("1回目", None, Some(1)),
        ("２回目", None, Some(2)),
        ("初回", Some("1期初回"), None),
        ("追加", Some("1期追加"), None),
        ("3回", None, Some(3)),
        ("1期初回③", Some("1期初回"), Some(3)),
        ("0回目", None, None),
    ];
    for (raw, stage, dose) in cases {
        let s = stage.map_or(Value::Null, str_v);
        ok(Kind::Stage, raw, s);
        ok(Kind::DoseNumber, raw, dose.map_or(Value::Null, Value::Int));
    }
    ok(Kind::DoseNumber, "2", Value::Int(2));
    ok(Kind::Stage, "不明", Value::Null);
}

#[test]
fn classes_statuses_flags() {
    for raw in [
        "定期",
        "定期A",
        "A類",
        "定期(A類)",
        "定期（A類）",
        "定期 A類",
        "定期a",
    ] {
        s_ok(Kind::VaccinationClass, raw, "routine_a");
    }
    for raw in ["B類", "定期B", "定期(B類)", "定期（Ｂ類）"] {
        s_ok(Kind::VaccinationClass, raw, "routine_b");
    }
    s_ok(Kind::VaccinationClass, "任意", "voluntary");
    s_ok(Kind::VaccinationClass, "特例臨時", "special_temporary");
    s_ok(Kind::VaccinationClass, "特例臨時接種", "special_temporary");
    s_ok(Kind::VaccinationClass, "臨時", "temporary");
    assert_eq!(
        norm(Kind::VaccinationClass, "C類"),
        Ok(Normalised::null_flagged(Flag::InvalidValue))
    );

    for raw in ["実施", "済", "接種済", "1", "done", "DONE"] {
        s_ok(Kind::VaccinationStatus, raw, "done");
    }
    for raw in ["未実施", "未", "未接種", "0", "not_done"] {
        s_ok(Kind::VaccinationStatus, raw, "not_done");
    }
    assert_eq!(
        norm(Kind::VaccinationStatus, "2"),
        Ok(Normalised::null_flagged(Flag::InvalidValue))
    );

    for (raws, want) in [
        (&["1", "住民", "住登者"][..], "resident"),
        (&["2", "転出"][..], "moved_out"),
        (&["3", "死亡"][..], "deceased"),
        (&["4", "住登外", "４"][..], "non_resident"),
    ] {
        for raw in raws {
            s_ok(Kind::ResidentStatus, raw, want);
        }
    }
    rejected(Kind::ResidentStatus, "5", Reject::InvalidValue);
    rejected(Kind::ResidentStatus, "転入", Reject::InvalidValue);

    for raw in ["あり", "有", "1", "○", "◯", "Y", "y", "true", "TRUE", "Ｙ"] {
        ok(Kind::Flag, raw, Value::Bool(true));
    }
    for raw in ["なし", "無", "0", "×", "N", "n", "false"] {
        ok(Kind::Flag, raw, Value::Bool(false));
    }
    assert_eq!(
        norm(Kind::Flag, "maybe"),
        Ok(Normalised::null_flagged(Flag::InvalidValue))
    );
}

// ---------------------------------------------------------------- normalise_lines

#[test]
fn normalise_lines_writes_one_line_per_input() {
    let input = "R06.09.30\n平成31年5月1日\r\nxyz\n\n令和1年4月30日\n2023-02-30";
    let mut out = Vec::new();
    normalise_lines(Kind::Date, input.as_bytes(), &mut out, t()).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2024-09-30\n2019-05-01\t# flag: era_after_end\nREJECT unparseable_date\nNULL\n\
         REJECT date_before_era\nREJECT impossible_date\n"
    );
    let mut out = Vec::new();
    normalise_lines(
        Kind::TicketNumber,
        &b"123\n\xff\n1234567890\n"[..],
        &mut out,
        t(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "0000000123\t# flag: padded_ticket\nNULL\t# flag: malformed_number\n1234567890\n"
    );
}

// ---------------------------------------------------------------- properties

/// Characters that exercise the normalisers: kana of both widths, small kana, voicing
/// marks, long-vowel marks and dashes, spaces, digits of both widths, era kanji, variant
/// and compatibility ideographs, circled digits, combining marks.
const INTERESTING: &[char] = &[
    'ア',
    'カ',
    'ガ',
    'ヴ',
    'ァ',
    'ッ',
    'ャ',
    'ョ',
    'ー',
    'ｰ',
    'ｶ',
    'ﾞ',
    'ﾟ',
    'ｧ',
    'ﾜ',
    'あ',
    'か',
    'わ',
    'ぁ',
    'ゔ',
    '゛',
    '゜',
    '\u{3099}',
    '\u{309A}',
    '\u{301}',
    'ヲ',
    'ヂ',
    'ヅ',
    ' ',
    '\u{3000}',
    '\t',
    '\n',
    '\r',
    '0',
    '1',
    '2',
    '3',
    '5',
    '9',
    '０',
    '１',
    '９',
    '-',
    '‐',
    '−',
    '―',
    '－',
    '.',
    '/',
    ':',
    '(',
    ')',
    'T',
    'R',
    'H',
    'S',
    'M',
    'm',
    'l',
    'c',
    'A',
    'B',
    'x',
    '年',
    '月',
    '日',
    '元',
    '令',
    '和',
    '平',
    '成',
    '昭',
    '明',
    '大',
    '正',
    '期',
    '回',
    '目',
    '第',
    '初',
    '追',
    '加',
    '①',
    '⑳',
    '〒',
    '髙',
    '\u{FA11}',
    '\u{FA10}',
    '\u{F91D}',
    '邊',
    '齋',
    '山',
    '田',
    '社',
    '株',
    '式',
    '会',
    '類',
    '定',
    '男',
    '女',
    '〜',
    '~',
    '¨',
    '\u{E0100}',
    'ß',
    'ǅ',
    '㍻',
    '㋿',
    '㎖',
    'ΐ',
];

fn interesting_string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(INTERESTING), 0..14)
        .prop_map(|v| v.into_iter().collect())
}

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        interesting_string(),
        "[0-9０-９ .\\-/年月日RHS]{0,16}"
    ]
}

/// Render a (y, m, d) in its correct era, in a spelling chosen by `pick`.
fn correct_era_spelling(y: i32, m: u8, dd: u8, pick: usize) -> String {
    let era = (0..5).rev().find(|&e| (y, m, dd) >= ERA_START[e]).unwrap();
    let n = (y - ERA_START[era].0 + 1) as u32;
    let all = wareki_spellings(era, n, m, dd);
    all[pick % all.len()].clone()
}

fn date_strategy() -> impl Strategy<Value = (i32, u8, u8)> {
    let lo = days_from_civil(1868, 1, 25).unwrap();
    let hi = days_from_civil(2100, 12, 31).unwrap();
    (lo..=hi).prop_map(crate::record::civil_from_days)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn prop_date_round_trips_in_every_spelling((y, m, dd) in date_strategy(), pick in 0usize..64) {
        let want = Normalised::ok(d(y, m, dd));
        let wareki = correct_era_spelling(y, m, dd, pick);
        prop_assert_eq!(norm(Kind::Date, &wareki), Ok(want.clone()), "{}", wareki);
        let western = western_spellings(y, m, dd);
        let w = &western[pick % western.len()];
        prop_assert_eq!(norm(Kind::Date, w), Ok(want.clone()), "{}", w);
        let canonical = render(&want.value);
        prop_assert_eq!(norm(Kind::Date, &canonical), Ok(want.clone()));
        prop_assert_eq!(norm(Kind::DatetimeDate, &canonical), Ok(want));
    }

    #[test]
    fn prop_correct_era_never_flagged((y, m, dd) in date_strategy()) {
        for sp in wareki_spellings(
            (0..5).rev().find(|&e| (y, m, dd) >= ERA_START[e]).unwrap(),
            (y - ERA_START[(0..5).rev().find(|&e| (y, m, dd) >= ERA_START[e]).unwrap()].0 + 1) as u32,
            m,
            dd,
        ) {
            let got = norm(Kind::Date, &sp);
            prop_assert_eq!(got.as_ref().map(|n| n.flag), Ok(None), "{}", sp);
        }
    }

    #[test]
    fn prop_datetime_round_trips(days in -36_500i32..47_000, secs in 0i64..86_400) {
        let (y, _, _) = crate::record::civil_from_days(days);
        prop_assume!((1869..=2100).contains(&y));
        let v = Value::Timestamp(i64::from(days) * 86_400 + secs);
        let r = render(&v);
        prop_assert_eq!(norm(Kind::Datetime, &r), Ok(Normalised::ok(v.clone())));
        let compact: String = r.chars().filter(char::is_ascii_digit).collect();
        prop_assert_eq!(norm(Kind::Datetime, &compact), Ok(Normalised::ok(v)));
        prop_assert_eq!(norm(Kind::DatetimeDate, &compact), Ok(Normalised::ok(Value::Date(days))));
    }

    #[test]
    fn prop_every_kind_is_idempotent_and_total(raw in any_input()) {
        for kind in Kind::ALL {
            // no panic on any input
            let Ok(first) = norm(kind, &raw) else { continue };
            if first.value.is_null() {
                continue;
            }
            let rendered = render(&first.value);
            let second = norm(kind, &rendered);
            prop_assert_eq!(
                second,
                Ok(Normalised::ok(first.value.clone())),
                "{} not idempotent on {:?} -> {:?}", kind, raw, rendered
            );
        }
    }

    /// The plain-kana fast path of `kana_key` gives what the general path gives, on
    /// names mixing plain kana with everything that is not (ヴ, half-width kana,
    /// combining marks, other spaces and dashes).
    #[test]
    fn prop_kana_key_fast_path_is_the_general_path(
        raw in "[あ-んァ-ンーゔヴヵヶｱ-ﾝﾞﾟ\u{3099}\u{309A} \u{3000}\t‐ｰ〜a山]{0,12}"
    ) {
        prop_assert_eq!(kana_key(&raw), text::kana_key_general(&raw));
    }

    /// The same on names of plain kana alone (every one takes the fast path).
    #[test]
    fn prop_kana_key_fast_path_on_plain_kana(raw in "[あ-んァ-ンー \u{3000}]{0,12}") {
        prop_assert_eq!(kana_key(&raw), text::kana_key_general(&raw));
    }

    #[test]
    fn prop_kana_key_idempotent(raw in any_input()) {
        let k = kana_key(&raw);
        prop_assert_eq!(kana_key(&k), k.clone());
        prop_assert!(!k.chars().any(char::is_whitespace));
        // the key of the stored form equals the key of the raw form
        let stored = norm(Kind::NameKana, &raw).unwrap().value;
        if let Value::Str(s) = stored {
            prop_assert_eq!(kana_key(&s), k);
        }
    }

    #[test]
    fn prop_kanji_key_idempotent(raw in any_input()) {
        let k = kanji_key(&raw, t());
        prop_assert_eq!(kanji_key(&k, t()), k.clone());
        let stored = norm(Kind::NameKanji, &raw).unwrap().value;
        if let Value::Str(s) = stored {
            prop_assert_eq!(kanji_key(&s, t()), k);
        }
    }

    #[test]
    fn prop_municipality_five_digits_get_a_valid_check_digit(code in 0u32..100_000) {
        let five = format!("{code:05}");
        let got = norm(Kind::MunicipalityCode, &five).unwrap();
        let Value::Str(six) = got.value else { panic!("expected a code") };
        prop_assert_eq!(&six[..5], five.as_str());
        prop_assert_eq!(norm(Kind::MunicipalityCode, &six), Ok(Normalised::ok(Value::Str(six.clone()))));
    }

    #[test]
    fn prop_kojin_bango_exactly_one_valid_check_digit(first in 0u64..100_000_000_000) {
        let base = format!("{first:011}");
        let valid = (0..=9)
            .filter(|cd| norm(Kind::KojinBango, &format!("{base}{cd}")).unwrap().flag.is_none())
            .count();
        prop_assert_eq!(valid, 1);
    }
}
