//! Tests of [`super::reconcile`] on hand-built registries and records.

use proptest::prelude::*;

use super::*;
use crate::record::days_from_civil;

fn schema() -> &'static Schema {
    Schema::embedded()
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

fn date(y: i32, m: u8, d: u8) -> Value {
    Value::Date(days_from_civil(y, m, d).unwrap())
}

fn row(values: &[(&str, Value)]) -> Record {
    let schema = schema();
    let mut r = Record::new(schema.len());
    for (name, v) in values {
        r.set(schema.idx(name), v.clone());
    }
    r
}

fn get<'a>(r: &'a Record, name: &str) -> ValueRef<'a> {
    r.at(schema().idx(name))
}

/// A registry person.
fn person(atena: &str, kanji: &str, kana: &str, birth: Value, sex: &str) -> Record {
    row(&[
        ("atena_number", s(atena)),
        ("integrated_atena_number", s(&format!("9{atena}"))),
        ("kojin_bango", s(&format!("{:0>12}", atena))),
        ("kanji_name", s(kanji)),
        ("kana_name", s(kana)),
        ("birth_date", birth),
        ("sex", s(sex)),
        ("registry_status", s("resident")),
    ])
}

/// A ledger dose with the given person items.
fn ledger(id: &str, line: i64, person: &[(&str, Value)]) -> Record {
    let mut values = vec![
        ("record_id", s(id)),
        ("vaccine_code", s("COVID19")),
        ("dose_number", Value::Int(1)),
        ("vaccination_date", date(2021, 6, 1)),
        ("lot_number", s("FA1234")),
        ("source_kind", s("ledger")),
        ("source_file_id", s("ledger1")),
        ("source_line", Value::Int(line)),
        ("raw_row_blake3", s(&format!("hash{id}"))),
    ];
    values.extend(person.iter().cloned());
    row(&values)
}

/// A VRS-export dose for a ticket.
fn vrs(id: &str, line: i64, ticket: &str, extra: &[(&str, Value)]) -> Record {
    let mut values = vec![
        ("record_id", s(id)),
        ("vaccine_code", s("COVID19")),
        ("dose_number", Value::Int(1)),
        ("vaccination_date", date(2021, 6, 1)),
        ("municipality_code", s("131091")),
        ("ticket_number", s(ticket)),
        ("manufacturer_code", s("PFIZER")),
        ("source_kind", s("vrs-ledger-export")),
        ("source_file_id", s("vrs1")),
        ("source_line", Value::Int(line)),
        ("raw_row_blake3", s(&format!("hash{id}"))),
    ];
    values.extend(extra.iter().cloned());
    row(&values)
}

fn vrs_person(ticket: &str, atena: Option<&str>, kanji: &str, kana: &str, birth: Value) -> Record {
    let mut values = vec![
        ("municipality_code", s("131091")),
        ("ticket_number", s(ticket)),
        ("kanji_name", s(kanji)),
        ("kana_name", s(kana)),
        ("birth_date", birth),
        // The registry's sex for the test people (only 佐藤 花子 is F).
        ("sex", s(if kana.contains("ハナコ") { "F" } else { "M" })),
        ("certificate_id", s("CERT-1")),
    ];
    if let Some(a) = atena {
        values.push(("atena_number", s(a)));
    }
    row(&values)
}

fn registry() -> Vec<Record> {
    vec![
        person(
            "1001",
            "髙橋 一郎",
            "タカハシ\u{3000}イチロウ",
            date(1980, 5, 5),
            "M",
        ),
        person(
            "1002",
            "佐藤 花子",
            "サトウ\u{3000}ハナコ",
            date(1975, 1, 2),
            "F",
        ),
        person(
            "1003",
            "山田 太郎",
            "ヤマダ\u{3000}タロウ",
            date(1990, 3, 3),
            "M",
        ),
        person(
            "1004",
            "鈴木 次郎",
            "スズキ\u{3000}ジロウ",
            date(1960, 7, 7),
            "M",
        ),
    ]
}

fn run(records: Vec<Record>, registry: &[Record], persons: &[Record]) -> Outcome {
    let n = records.len() as u64;
    let out = reconcile(schema(), records, registry, persons, Rules::embedded());
    assert_eq!(
        n,
        out.records.len() as u64 + out.stats.merged_rows,
        "count identity"
    );
    assert_eq!(out.stats.records_in, n);
    out
}

fn only(out: &Outcome) -> &Record {
    assert_eq!(out.records.len(), 1);
    &out.records[0]
}

fn method(r: &Record) -> &str {
    get(r, "match_method").as_str().unwrap()
}

#[test]
fn links_by_atena() {
    let out = run(
        vec![ledger("a", 2, &[("atena_number", s("1002"))])],
        &registry(),
        &[],
    );
    let r = only(&out);
    assert_eq!(method(r), "atena");
    assert_eq!(get(r, "registry_atena_number"), s("1002"));
    assert_eq!(get(r, "registry_status"), s("resident"));
    assert_eq!(get(r, "match_score"), Value::Null);
    assert_eq!(get(r, "merge_status"), s("single"));
}

#[test]
fn links_by_integrated_atena() {
    let rec = ledger(
        "a",
        2,
        &[
            ("atena_number", s("555")),
            ("integrated_atena_number", s("91003")),
        ],
    );
    let r = run(vec![rec], &registry(), &[]);
    assert_eq!(method(only(&r)), "integrated_atena");
    assert_eq!(get(only(&r), "registry_atena_number"), s("1003"));
}

#[test]
fn links_by_kojin_bango_and_reports_conflicts() {
    let rec = ledger(
        "a",
        2,
        &[
            ("kojin_bango", s("000000001004")),
            ("kana_name", s("スズキ ジロウ")),
            ("birth_date", date(1960, 7, 8)),
            ("sex", s("F")),
        ],
    );
    let out = run(vec![rec], &registry(), &[]);
    let r = only(&out);
    assert_eq!(method(r), "kojin_bango");
    assert_eq!(get(r, "registry_atena_number"), s("1004"));
    assert_eq!(get(r, "conflicts"), s("birth_date;sex"));
    assert_eq!(out.stats.conflicts, 1);
}

#[test]
fn vrs_dose_enriched_and_linked_by_ticket() {
    let persons = vec![vrs_person(
        "0000000001",
        Some("1003"),
        "山田 太郎",
        "ヤマダ タロウ",
        date(1990, 3, 3),
    )];
    let out = run(vec![vrs("v", 5, "0000000001", &[])], &registry(), &persons);
    let r = only(&out);
    assert_eq!(method(r), "ticket");
    assert_eq!(get(r, "registry_atena_number"), s("1003"));
    assert_eq!(get(r, "kanji_name"), s("山田 太郎"));
    assert_eq!(get(r, "birth_date"), date(1990, 3, 3));
    assert_eq!(get(r, "certificate_id"), s("CERT-1"));
    assert_eq!(get(r, "conflicts"), Value::Null);
    assert_eq!(out.stats.vrs_enriched, 1);
}

/// A dose whose own 宛名番号 is a resident's and whose ticket's person row names another
/// resident takes nothing from that row (its 個人番号 and names would be filed under the
/// wrong person); a 宛名番号 no resident has (a typo) still yields to the ticket — whose
/// 個人番号, differing from the resident's, then keeps the dose from linking by name.
#[test]
fn a_ticket_naming_another_resident_than_the_doses_atena_is_not_followed() {
    let mut row = vrs_person(
        "0000000001",
        Some("1004"),
        "鈴木 次郎",
        "スズキ ジロウ",
        date(1960, 7, 7),
    );
    row.set(
        Schema::embedded().index("kojin_bango").unwrap(),
        s("123456789018"),
    );
    let persons = vec![row];
    let out = run(
        vec![
            vrs("v", 5, "0000000001", &[("atena_number", s("1003"))]),
            vrs("w", 6, "0000000001", &[("atena_number", s("9999"))]),
        ],
        &registry(),
        &persons,
    );
    let by_id = |id: &str| {
        out.records
            .iter()
            .find(|r| get(r, "record_id") == s(id))
            .unwrap()
    };
    let v = by_id("v");
    assert_eq!(method(v), "atena");
    assert_eq!(get(v, "registry_atena_number"), s("1003"));
    assert_eq!(get(v, "kojin_bango"), Value::Null);
    assert_eq!(get(v, "kanji_name"), Value::Null);
    assert_eq!(get(v, "birth_date"), Value::Null);
    assert_eq!(get(v, "certificate_id"), Value::Null);
    assert_eq!(get(v, "conflicts"), s("ticket_atena"));
    // The ticket filled `w`'s names and 個人番号; the names fit resident 1004, but the
    // 個人番号 is not theirs (000000001004): two numbers that differ are two people, so
    // no link, not even a review candidate.
    let w = by_id("w");
    assert_eq!(
        method(w),
        "none",
        "a 個人番号 that differs from the resident's"
    );
    assert_eq!(get(w, "registry_atena_number"), Value::Null);
    assert_eq!(get(w, "kojin_bango"), s("123456789018"));
    assert_eq!(
        (
            out.stats.vrs_enriched,
            out.stats.vrs_ticket_mismatch,
            out.stats.vrs_ticket_unknown
        ),
        (1, 1, 0)
    );
}

#[test]
fn vrs_dose_without_atena_links_probabilistically_after_enrichment() {
    let persons = vec![vrs_person(
        "0000000002",
        None,
        "佐藤 花子",
        "サトウ ハナコ",
        date(1975, 1, 2),
    )];
    let out = run(vec![vrs("v", 5, "0000000002", &[])], &registry(), &persons);
    let r = only(&out);
    assert_eq!(method(r), "probabilistic");
    assert_eq!(get(r, "registry_atena_number"), s("1002"));
}

#[test]
fn variant_kanji_and_kana_typo_link_probabilistically() {
    let rec = ledger(
        "a",
        2,
        &[
            ("kanji_name", s("高橋 一郎")),
            ("kana_name", s("タカハシ イチロ")),
            ("birth_date", date(1980, 5, 5)),
            ("sex", s("M")),
        ],
    );
    let out = run(vec![rec], &registry(), &[]);
    let r = only(&out);
    assert_eq!(method(r), "probabilistic");
    assert_eq!(get(r, "registry_atena_number"), s("1001"));
    let score = match get(r, "match_score") {
        ValueRef::Float(x) => x,
        _ => panic!("no score"),
    };
    assert!(score >= Rules::embedded().upper);
    assert_eq!(get(r, "conflicts"), s("kana_name"));
}

/// Numbers that say two people keep a dose from linking by name: a 個人番号 other than the
/// resident's (no candidate at all), a 宛名番号 more than one slip from theirs (a review
/// candidate, never an automatic link); a 宛名番号 one slip off (a typo) still links.
#[test]
fn numbers_that_differ_keep_a_name_match_from_linking() {
    let same = [
        ("kanji_name", s("高橋 一郎")),
        ("kana_name", s("タカハシ イチロウ")),
        ("birth_date", date(1980, 5, 6)),
        ("sex", s("M")),
    ];
    let with = |extra: (&str, Value)| {
        let mut p = same.to_vec();
        p.push(extra);
        ledger("a", 2, &p)
    };
    let baseline = run(vec![ledger("a", 2, &same)], &registry(), &[]);
    assert_eq!(
        method(only(&baseline)),
        "probabilistic",
        "the name match alone links"
    );
    let kojin = run(
        vec![with(("kojin_bango", s("123456789018")))],
        &registry(),
        &[],
    );
    assert_eq!(method(only(&kojin)), "none");
    assert!(kojin.review.is_empty());
    let far = run(
        vec![with(("atena_number", s("50003905")))],
        &registry(),
        &[],
    );
    assert_eq!(method(only(&far)), "review");
    assert_eq!(get(only(&far), "registry_atena_number"), Value::Null);
    let slip = run(vec![with(("atena_number", s("1011")))], &registry(), &[]);
    assert_eq!(method(only(&slip)), "probabilistic");
    assert_eq!(get(only(&slip), "registry_atena_number"), s("1001"));
}

#[test]
fn twins_go_to_review_never_linked() {
    let mut reg = registry();
    reg.push(person(
        "2001",
        "田中 優",
        "タナカ ユウ",
        date(2000, 2, 2),
        "F",
    ));
    reg.push(person(
        "2002",
        "田中 優",
        "タナカ ユウ",
        date(2000, 2, 2),
        "F",
    ));
    let rec = ledger(
        "a",
        2,
        &[
            ("kanji_name", s("田中 優")),
            ("kana_name", s("タナカ ユウ")),
            ("birth_date", date(2000, 2, 2)),
        ],
    );
    let out = run(vec![rec], &reg, &[]);
    let r = only(&out);
    assert_eq!(method(r), "review");
    assert_eq!(get(r, "registry_atena_number"), Value::Null);
    assert_eq!(get(r, "registry_status"), s("unlinked"));
    assert!(matches!(get(r, "match_score"), ValueRef::Float(_)));
    assert_eq!(out.review.len(), 1);
    let atenas: Vec<&str> = out.review[0]
        .candidates
        .iter()
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(atenas, ["2001", "2002"]);
    assert_eq!(out.stats.review, 1);
    // Debug never shows the candidates' numbers.
    let shown = format!("{:?} {:?}", out.review[0], out);
    assert!(
        !shown.contains("2001") && !shown.contains("2002"),
        "{shown}"
    );
}

#[test]
fn person_not_in_registry_is_none() {
    let rec = ledger(
        "a",
        2,
        &[
            ("kanji_name", s("伊藤 誠")),
            ("kana_name", s("イトウ マコト")),
            ("birth_date", date(1999, 9, 9)),
        ],
    );
    let out = run(vec![rec, ledger("b", 3, &[])], &registry(), &[]);
    for r in &out.records {
        assert_eq!(method(r), "none");
        assert_eq!(get(r, "registry_status"), s("unlinked"));
        assert_eq!(get(r, "match_score"), Value::Null);
    }
}

#[test]
fn suspicious_deterministic_key_falls_through() {
    // The atena points at 佐藤 花子 (1975), but the record is 山田 太郎 (1990).
    let rec = ledger(
        "a",
        2,
        &[
            ("atena_number", s("1002")),
            ("kanji_name", s("山田 太郎")),
            ("kana_name", s("ヤマダ タロウ")),
            ("birth_date", date(1990, 3, 3)),
            ("sex", s("M")),
        ],
    );
    let out = run(vec![rec], &registry(), &[]);
    let r = only(&out);
    assert_eq!(method(r), "probabilistic");
    assert_eq!(get(r, "registry_atena_number"), s("1003"));
    assert_eq!(out.stats.suspicious_keys, 1);
}

fn merge_pair(ledger_lot: &str, vrs_lot: Option<&str>) -> Outcome {
    let persons = vec![vrs_person(
        "0000000001",
        Some("1003"),
        "山田 太郎",
        "ヤマダ タロウ",
        date(1990, 3, 3),
    )];
    let mut extra = Vec::new();
    if let Some(l) = vrs_lot {
        extra.push(("lot_number", s(l)));
    }
    let records = vec![
        vrs("zz-vrs", 5, "0000000001", &extra),
        ledger(
            "aa-ledger",
            9,
            &[
                ("atena_number", s("1003")),
                ("lot_number", s(ledger_lot)),
                ("medical_institution", s("品川クリニック")),
            ],
        ),
    ];
    run(records, &registry(), &persons)
}

#[test]
fn identical_doses_merge_with_provenance() {
    let out = merge_pair("FA1234", None);
    let r = only(&out);
    assert_eq!(get(r, "record_id"), s("zz-vrs"));
    assert_eq!(get(r, "merge_status"), s("merged"));
    assert_eq!(get(r, "merged_provenance"), s("ledger1:9:hashaa-ledger"));
    // VRS values kept, Nulls filled from the ledger copy.
    assert_eq!(get(r, "manufacturer_code"), s("PFIZER"));
    assert_eq!(get(r, "lot_number"), s("FA1234"));
    assert_eq!(get(r, "medical_institution"), s("品川クリニック"));
    assert_eq!(get(r, "source_kind"), s("vrs-ledger-export"));
    assert_eq!(out.stats.merged_rows, 1);
}

#[test]
fn different_lot_is_a_conflict() {
    let out = merge_pair("FA1234", Some("EX9999"));
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.stats.merged_rows, 0);
    for r in &out.records {
        assert_eq!(get(r, "merge_status"), s("conflict"));
        assert_eq!(get(r, "conflicts"), s("lot_number"));
        assert_eq!(get(r, "merged_provenance"), Value::Null);
    }
}

#[test]
fn different_date_is_a_conflict_and_unlinked_never_merge() {
    let persons = vec![vrs_person(
        "0000000001",
        Some("1003"),
        "山田 太郎",
        "ヤマダ タロウ",
        date(1990, 3, 3),
    )];
    let mut late = ledger("b", 3, &[("atena_number", s("1003"))]);
    late.set(schema().idx("vaccination_date"), date(2021, 6, 20));
    let records = vec![
        vrs("v", 5, "0000000001", &[]),
        late,
        // Two unlinked copies of one dose stay two records.
        vrs("x1", 6, "0000000099", &[]),
        ledger("x2", 4, &[]),
    ];
    let out = run(records, &registry(), &persons);
    assert_eq!(out.records.len(), 4);
    let by_id = |id: &str| {
        out.records
            .iter()
            .find(|r| get(r, "record_id") == s(id))
            .unwrap()
    };
    for id in ["v", "b"] {
        assert_eq!(get(by_id(id), "conflicts"), s("dose_date"));
        assert_eq!(get(by_id(id), "merge_status"), s("conflict"));
    }
    for id in ["x1", "x2"] {
        assert_eq!(get(by_id(id), "merge_status"), s("single"));
    }
}

/// Two copies of one dose of a person the registry does not know, filed under the same
/// person key (here the 個人番号) and birth date by VRS and the ledger, merge; copies under
/// different keys or birth dates (or without a birth date) do not, nor copies whose kana
/// names or sexes differ (two people: not even a conflict), nor a copy awaiting review (the
/// review list names it).
#[test]
fn unlinked_copies_of_one_person_merge_unless_in_review() {
    let who = |kojin: &str, birth: Option<Value>| {
        let mut v = vec![("kojin_bango", s(kojin)), ("atena_number", s("7777"))];
        v.extend(birth.map(|b| ("birth_date", b)));
        v
    };
    let born = || Some(date(1950, 1, 1));
    let named = |mut v: Vec<(&'static str, Value)>, kana: &str| {
        v.push(("kana_name", s(kana)));
        v
    };
    let out = run(
        vec![
            vrs(
                "x1",
                6,
                "0000000099",
                &named(who("100000000001", born()), "ア イ"),
            ),
            ledger("x2", 4, &named(who("100000000001", born()), "アイ")),
            vrs("y1", 7, "0000000098", &who("100000000002", born())),
            ledger("y2", 5, &who("100000000003", born())),
            vrs("w1", 8, "0000000097", &who("100000000004", born())),
            ledger("w2", 6, &who("100000000004", Some(date(1951, 1, 1)))),
            vrs("v1", 9, "0000000096", &who("100000000005", None)),
            ledger("v2", 7, &who("100000000005", None)),
            vrs(
                "u1",
                10,
                "0000000095",
                &named(who("100000000006", born()), "アイ"),
            ),
            ledger("u2", 8, &named(who("100000000006", born()), "カキ")),
        ],
        &registry(),
        &[],
    );
    assert_eq!(out.records.len(), 9);
    assert_eq!(out.stats.merged_rows, 1);
    let by_id = |id: &str| {
        out.records
            .iter()
            .find(|r| get(r, "record_id") == s(id))
            .unwrap()
    };
    let x = by_id("x1");
    assert_eq!(get(x, "merge_status"), s("merged"));
    assert_eq!(get(x, "registry_status"), s("unlinked"));
    assert_eq!(get(x, "merged_provenance"), s("ledger1:4:hashx2"));
    for id in ["u1", "u2", "y1", "y2", "w1", "w2", "v1", "v2"] {
        assert_eq!(get(by_id(id), "merge_status"), s("single"), "{id}");
        assert_eq!(get(by_id(id), "conflicts"), Value::Null, "{id}");
    }

    let mut pair = vec![
        vrs("z1", 8, "0000000097", &who("100000000007", born())),
        ledger("z2", 6, &who("100000000007", born())),
    ];
    pair[1].set(schema().idx("match_method"), s("review"));
    let (settled, merged) = super::settle(schema(), pair);
    assert_eq!((settled.len(), merged), (2, 0));
}

fn mixed_input() -> (Vec<Record>, Vec<Record>, Vec<Record>) {
    let mut reg = registry();
    reg.push(person(
        "2001",
        "田中 優",
        "タナカ ユウ",
        date(2000, 2, 2),
        "F",
    ));
    reg.push(person(
        "2002",
        "田中 優",
        "タナカ ユウ",
        date(2000, 2, 2),
        "F",
    ));
    let persons = vec![
        vrs_person(
            "0000000001",
            Some("1003"),
            "山田 太郎",
            "ヤマダ タロウ",
            date(1990, 3, 3),
        ),
        vrs_person(
            "0000000002",
            None,
            "佐藤 花子",
            "サトウ ハナコ",
            date(1975, 1, 2),
        ),
    ];
    let mut records = vec![
        vrs("v1", 5, "0000000001", &[]),
        vrs("v2", 6, "0000000002", &[]),
        ledger("l1", 2, &[("atena_number", s("1003"))]),
        ledger("l2", 3, &[("atena_number", s("1002"))]),
        ledger(
            "l3",
            4,
            &[
                ("kanji_name", s("田中 優")),
                ("kana_name", s("タナカ ユウ")),
                ("birth_date", date(2000, 2, 2)),
            ],
        ),
        ledger(
            "l4",
            5,
            &[
                ("kanji_name", s("高橋 一郎")),
                ("kana_name", s("タカハシ イチロ")),
                ("birth_date", date(1980, 5, 5)),
            ],
        ),
    ];
    for (i, r) in records.iter_mut().enumerate() {
        if i % 2 == 0 {
            r.set(schema().idx("dose_number"), Value::Int(2));
        }
    }
    (records, reg, persons)
}

#[test]
fn shuffled_input_gives_identical_output() {
    let (records, reg, persons) = mixed_input();
    let a = run(records.clone(), &reg, &persons);
    for rotation in 1..records.len() {
        let mut shuffled = records.clone();
        shuffled.rotate_left(rotation);
        shuffled.reverse();
        let b = run(shuffled, &reg, &persons);
        assert!(
            a.records == b.records,
            "records differ after rotation {rotation}"
        );
        assert_eq!(a.review, b.review);
        assert_eq!(a.stats, b.stats);
    }
    let ids: Vec<ValueRef<'_>> = a.records.iter().map(|r| get(r, "record_id")).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(ids, sorted);
}

#[test]
fn any_chunking_gives_identical_output() {
    let (records, reg, persons) = mixed_input();
    let a = run(records.clone(), &reg, &persons);
    for chunk in [1, 2, 3, 7, records.len()] {
        let b = super::reconcile_in_chunks(
            schema(),
            records.clone(),
            &reg,
            &persons,
            Rules::embedded(),
            chunk,
        );
        assert!(
            a.records == b.records,
            "records differ with chunks of {chunk}"
        );
        assert_eq!(a.review, b.review);
        assert_eq!(a.stats, b.stats);
    }
}

/// Settling person buckets one at a time (a streaming migrate) gives the records,
/// merges and counts of settling all records at once.
#[test]
fn settling_person_buckets_apart_equals_settling_all() {
    let (records, reg, persons) = mixed_input();
    let whole = run(records.clone(), &reg, &persons);
    let mut records = records;
    let linker = super::Linker::new(schema(), &reg, &persons, Rules::embedded());
    let linked = linker.link(&mut records);
    for buckets in [2u16, 3, 5] {
        let mut parts: Vec<Vec<Record>> = vec![Vec::new(); buckets as usize];
        for r in records.iter().cloned() {
            let key = crate::archive::person_key(schema(), &r);
            let hash = crate::archive::keyed_hash(&[9; 32], "person", &key);
            parts[crate::archive::bucket_of(&hash, buckets) as usize].push(r);
        }
        let mut settled = Vec::new();
        let mut stats = linked.stats.clone();
        for part in parts {
            let (out, merged) = super::settle(schema(), part);
            stats.merged_rows += merged;
            stats.add(&super::Stats::count(schema(), &out));
            settled.extend(out);
        }
        super::sort_records(&super::Fields::new(schema()), &mut settled);
        assert!(
            settled == whole.records,
            "records differ with {buckets} buckets"
        );
        stats.records_in = whole.stats.records_in;
        stats.review = whole.stats.review;
        assert_eq!(stats, whole.stats);
        assert!(whole.stats.merged_rows > 0, "the input has merges to check");
    }
}

/// A linker whose registry and VRS person list were taken a chunk at a time (a streaming
/// migrate: [`RegistryBuilder`], [`PersonListBuilder`]) links exactly as one built from all
/// their rows at once: identifier hits in later chunks, a person repeated across chunks,
/// a blocking key over the cap only once all chunks are in, twins in review.
#[test]
fn linker_built_from_chunks_links_as_one_built_at_once() {
    let (mut records, mut reg, mut persons) = mixed_input();
    let mut rules = Rules::embedded().clone();
    rules.max_block_size = Some(4);
    // Five rows of one person in different chunks: over the cap of 4 only together.
    for k in 0..5 {
        reg.push(person(
            &format!("300{k}"),
            "鈴木 次郎",
            "スズキ ジロウ",
            date(1960, 7, 7),
            "M",
        ));
    }
    // A person once, late in the registry; and three of a family of four by name.
    reg.push(person(
        "4001",
        "伊藤 三郎",
        "イトウ サブロウ",
        date(1955, 4, 4),
        "M",
    ));
    for k in 0..3 {
        reg.push(person(
            &format!("410{k}"),
            "伊藤 花",
            "イトウ ハナ",
            date(1990, 1, 1),
            "F",
        ));
    }
    persons.push(vrs_person(
        "0000000003",
        Some("4001"),
        "伊藤 三郎",
        "イトウ サブロウ",
        date(1955, 4, 4),
    ));
    records.extend([
        ledger("l5", 6, &[("atena_number", s("3004"))]),
        ledger(
            "l6",
            7,
            &[
                ("kanji_name", s("鈴木 次郎")),
                ("kana_name", s("スズキ ジロウ")),
                ("birth_date", date(1960, 7, 7)),
            ],
        ),
        ledger(
            "l7",
            8,
            &[
                ("kanji_name", s("伊藤 三郎")),
                ("kana_name", s("イトウ サブロウ")),
                ("birth_date", date(1955, 4, 4)),
            ],
        ),
        ledger(
            "l8",
            9,
            &[
                ("kanji_name", s("伊藤 花")),
                ("kana_name", s("イトウ ハナ")),
                ("birth_date", date(1990, 1, 1)),
            ],
        ),
        vrs("v3", 7, "0000000003", &[]),
    ]);
    let whole = Linker::new(schema(), &reg, &persons, &rules);
    let mut expected = records.clone();
    let want = whole.link(&mut expected);
    let methods: Vec<&str> = expected.iter().map(method).collect();
    for m in ["atena", "ticket", "probabilistic", "review", "none"] {
        assert!(
            methods.contains(&m),
            "the input has a {m} link to check: {methods:?}"
        );
    }
    for chunk in [1, 2, 3, 7, reg.len()] {
        let mut registry = RegistryBuilder::new(schema());
        for rows in reg.chunks(chunk) {
            registry.add(rows);
        }
        let mut list = PersonListBuilder::new(schema());
        for rows in persons.chunks(chunk) {
            list.add(rows);
        }
        let linker = Linker::with_person_list(registry.finish(&rules), list, &rules);
        let mut got = records.clone();
        let linked = linker.link(&mut got);
        assert!(got == expected, "records differ with chunks of {chunk}");
        assert_eq!(linked.review, want.review, "chunks of {chunk}");
        assert_eq!(linked.stats, want.stats, "chunks of {chunk}");
    }
}

#[test]
fn same_result_with_one_thread() {
    let (records, reg, persons) = mixed_input();
    let a = run(records.clone(), &reg, &persons);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = pool.install(|| run(records, &reg, &persons));
    assert!(a.records == b.records);
}

const KANA: &[&str] = &["タナカ ユウ", "タナカ ユ", "サトウ ハナコ", "ヤマダ タロウ"];
const KANJI: &[&str] = &["田中 優", "佐藤 花子", "山田 太郎"];

fn arb_person_items() -> impl Strategy<Value = (Option<usize>, usize, usize, u8, bool)> {
    (
        proptest::option::of(0usize..6),
        0..KANA.len(),
        0..KANJI.len(),
        1u8..4,
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn count_identity_and_single_links(
        reg_items in proptest::collection::vec(arb_person_items(), 0..6),
        rec_items in proptest::collection::vec((arb_person_items(), any::<bool>(), 1i64..3, 0u8..3, proptest::option::of(0u8..2)), 0..14),
    ) {
        let registry: Vec<Record> = reg_items.iter().enumerate().map(|(i, (_, kana, kanji, day, male))| {
            person(&format!("{}", 100 + i), KANJI[*kanji], KANA[*kana], date(2000, 1, *day), if *male { "M" } else { "F" })
        }).collect();
        let persons: Vec<Record> = (0..6).map(|t| {
            vrs_person(&format!("{t:010}"), (t % 2 == 0).then(|| format!("{}", 100 + t)).as_deref(), KANJI[t % KANJI.len()], KANA[t % KANA.len()], date(2000, 1, 1 + (t % 3) as u8))
        }).collect();
        let records: Vec<Record> = rec_items.iter().enumerate().map(|(i, ((atena, kana, kanji, day, _), is_vrs, dose, when, lot))| {
            let mut r = if *is_vrs {
                vrs(&format!("r{i:02}"), i as i64, &format!("{:010}", atena.unwrap_or(9)), &[])
            } else {
                let mut items = vec![("kana_name", s(KANA[*kana])), ("kanji_name", s(KANJI[*kanji])), ("birth_date", date(2000, 1, *day))];
                if let Some(a) = atena { items.push(("atena_number", s(&format!("{}", 100 + a)))); }
                ledger(&format!("r{i:02}"), i as i64, &items)
            };
            r.set(schema().idx("dose_number"), Value::Int(*dose));
            r.set(schema().idx("vaccination_date"), date(2021, 6, 1 + *when));
            r.set(schema().idx("lot_number"), lot.map_or(Value::Null, |l| s(&format!("L{l}"))));
            r
        }).collect();
        let f = Fields::new(schema());
        let mut expected: Vec<String> = records.iter().map(|r| merge::provenance(&f, r)).collect();
        let out = run(records, &registry, &persons);
        // Every input row is in the output exactly once: as a record or as merged provenance.
        let mut seen: Vec<String> = Vec::new();
        for r in &out.records {
            seen.push(merge::provenance(&f, r));
            if let Some(p) = get(r, "merged_provenance").as_str() {
                seen.extend(p.split(';').map(str::to_string));
            }
            let m = method(r);
            let linked = ["atena", "integrated_atena", "kojin_bango", "ticket", "probabilistic"].contains(&m);
            let atena = get(r, "registry_atena_number");
            prop_assert_eq!(linked, !atena.is_null());
            if let Some(a) = atena.as_str() {
                // Linked to exactly one registry person, which exists.
                let hits = registry.iter().filter(|g| get(g, "atena_number").as_str() == Some(a)).count();
                prop_assert_eq!(hits, 1);
            }
        }
        expected.sort();
        seen.sort();
        prop_assert_eq!(expected, seen);
    }
}

#[test]
fn quality_against_truth_files() {
    let out = merge_pair("FA1234", None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("persons.csv"),
        "person_id,in_registry,atena_number,integrated_atena_number,kojin_bango,kanji_name,kana_name,birth_date,sex,registry_status,registry_status_date,municipality_code,ticket_number\n\
         P1,true,1003,,,,,,,,,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rows.csv"),
        "file_id,line,dose,person_id,outcome,reason,dose_key,merge,atena_number\n\
         vrs1,5,1,P1,record,,K1,merged,\n\
         ledger1,9,,P1,record,,K1,merged,1003\n\
         ledger1,10,,P1,quarantine,bad date,,,\n",
    )
    .unwrap();
    let q = score(&out, schema(), dir.path()).unwrap();
    assert_eq!(q.records_scored, 2);
    assert_eq!((q.linked, q.correct_links, q.true_links), (2, 2, 2));
    assert_eq!(
        (q.merged_pairs, q.correct_merges, q.true_merge_pairs),
        (1, 1, 1)
    );
    assert_eq!(q.link_precision, 1.0);
    assert_eq!(q.merge_recall, 1.0);
    assert!(q.render_text().contains("link precision"));
    assert!(score(&out, schema(), &dir.path().join("missing")).is_err());
}

/// A scale check: `cargo test --lib reconcile::tests::scale -- --ignored --nocapture`.
#[test]
#[ignore = "slow in debug builds"]
fn scale() {
    let family = [
        "サトウ",
        "スズキ",
        "タカハシ",
        "タナカ",
        "ワタナベ",
        "イトウ",
        "ヤマモト",
        "ナカムラ",
    ];
    let given = [
        "ハナコ",
        "タロウ",
        "ユウ",
        "マコト",
        "アキラ",
        "ケンジ",
        "ヨウコ",
        "ヒロシ",
        "サクラ",
        "ダイキ",
    ];
    let n = 50_000;
    let registry: Vec<Record> = (0..n)
        .map(|i| {
            let kana = format!("{}\u{3000}{}", family[i % 8], given[(i / 8) % 10]);
            person(
                &format!("{}", 10_000 + i),
                &format!("名{i}"),
                &kana,
                Value::Date(-3000 + (i as i32 * 7919) % 30000),
                "F",
            )
        })
        .collect();
    let records: Vec<Record> = (0..2 * n)
        .map(|i| {
            let g = &registry[i % n];
            ledger(
                &format!("r{i:07}"),
                i as i64,
                &[
                    ("kana_name", get(g, "kana_name").to_value()),
                    ("kanji_name", get(g, "kanji_name").to_value()),
                    ("birth_date", get(g, "birth_date").to_value()),
                ],
            )
        })
        .collect();
    let start = std::time::Instant::now();
    let out = run(records, &registry, &[]);
    eprintln!(
        "{} records in {:?}: {:?}",
        2 * n,
        start.elapsed(),
        out.stats.by_method
    );
}

proptest! {
    /// The key-array sort gives exactly the stable `sort_by(record_order)` order: ids
    /// sharing 16-byte prefixes, short ids, missing ids and full ties included.
    #[test]
    fn sort_records_is_the_stable_record_order(
        rows in proptest::collection::vec(
            (
                proptest::option::of(prop_oneof![
                    "[0-9a-f]{32}",
                    "0123456789abcdef[0-9a-f]{0,3}",
                    "[ab]{0,3}",
                ]),
                0i64..3,
                0u8..3,
            ),
            0..60,
        )
    ) {
        let f = Fields::new(schema());
        let records: Vec<Record> = rows
            .iter()
            .map(|(id, line, lot)| {
                row(&[
                    ("record_id", id.as_deref().map_or(Value::Null, s)),
                    ("source_line", Value::Int(*line)),
                    ("lot_number", s(&lot.to_string())),
                ])
            })
            .collect();
        let mut expected = records.clone();
        expected.sort_by(|a, b| record_order(&f, a, b));
        let mut got = records;
        sort_records(&f, &mut got);
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Persons computed once per distinct inputs equal the per-row persons, whatever
    /// repeats, blanks (whitespace-only counts as blank) and orders the rows hold.
    #[test]
    fn people_of_equals_person_of_every_row(
        rows in proptest::collection::vec(
            (0..KANA.len() + 1, 0..KANJI.len() + 1, proptest::option::of(1u8..3), 0u8..4, 0u8..3, 0u8..3),
            0..40,
        ),
    ) {
        let blank_or = |i: usize, pool: &[&str]| pool.get(i).map_or(s(" "), |v| s(v));
        let records: Vec<Record> = rows.iter().map(|&(kana, kanji, day, sex, postal, address)| {
            let mut items = vec![("kana_name", blank_or(kana, KANA)), ("kanji_name", blank_or(kanji, KANJI))];
            if let Some(d) = day { items.push(("birth_date", date(2000, 1, d))); }
            if sex > 0 { items.push(("sex", s(["M", "F", "U"][usize::from(sex) - 1]))); }
            if postal > 0 { items.push(("postal_code", s(["140-0001", "1400002"][usize::from(postal) - 1]))); }
            if address > 0 { items.push(("address", s(["品川区 大井1", "品川区大井 1"][usize::from(address) - 1]))); }
            row(&items)
        }).collect();
        let f = Fields::new(schema());
        let people = link::People::of(&f, &records);
        prop_assert!(people.distinct() <= records.len());
        for (i, r) in records.iter().enumerate() {
            prop_assert_eq!(&people[i], &link::Person::of(&f, r));
        }
    }
}

#[test]
fn linked_persons_give_the_registry_and_person_list_identifiers_of_linked_persons_only() {
    let schema = schema();
    let registry = registry();
    let mut by_kojin = vrs_person("T3", None, "佐藤 花子", "サトウ ハナコ", date(1975, 1, 2));
    by_kojin.set(schema.idx("kojin_bango"), s("000000001002"));
    let persons = vec![
        // Names linked registry row 1001 by 宛名番号.
        vrs_person(
            "T1",
            Some("1001"),
            "髙橋 一郎",
            "タカハシ イチロウ",
            date(1980, 5, 5),
        ),
        // Names 1003, which no record reached.
        vrs_person(
            "T2",
            Some("1003"),
            "山田 太郎",
            "ヤマダ タロウ",
            date(1990, 3, 3),
        ),
        // Names linked row 1002 by 個人番号 alone.
        by_kojin,
        // Names 1002 by 宛名番号, but is someone else (birth date and kana disagree).
        vrs_person(
            "T4",
            Some("1002"),
            "山田 太郎",
            "ヤマダ タロウ",
            date(1990, 3, 3),
        ),
        // Names nobody.
        vrs_person(
            "T5",
            Some("9999"),
            "田中 三郎",
            "タナカ サブロウ",
            date(1950, 1, 1),
        ),
        // Names 1001 with 1001's birth date, but another kana: someone else's row with a
        // wrong 宛名番号 (linking would follow it; the index must not).
        vrs_person(
            "T6",
            Some("1001"),
            "髙橋 二郎",
            "タカハシ ジロウ",
            date(1980, 5, 5),
        ),
        // Names 1002 rightly, but a VRS dose was enriched from it: the dose record carries
        // the ticket, indexed under whoever the dose links to.
        vrs_person(
            "T7",
            Some("1002"),
            "佐藤 花子",
            "サトウ ハナコ",
            date(1975, 1, 2),
        ),
        // One ticket in two person rows, both naming 1001: identifies no one.
        vrs_person(
            "T8",
            Some("1001"),
            "髙橋 一郎",
            "タカハシ イチロウ",
            date(1980, 5, 5),
        ),
        vrs_person(
            "T8",
            Some("1001"),
            "髙橋 一郎",
            "タカハシ イチロウ",
            date(1980, 5, 5),
        ),
    ];
    // A fifth registry row shares 1001's 個人番号: that number identifies no one.
    let mut registry = registry;
    let mut shares = person("1005", "木村 五郎", "キムラ ゴロウ", date(1970, 1, 1), "M");
    shares.set(schema.idx("kojin_bango"), s("000000001001"));
    registry.push(shares);
    let linker = Linker::new(schema, &registry, &persons, Rules::embedded());
    let mut records = vec![
        ledger("a", 2, &[("atena_number", s("1001"))]),
        ledger("b", 3, &[("atena_number", s("1002"))]),
        vrs("c", 4, "T7", &[]),
    ];
    linker.link(&mut records);
    let mut got: Vec<(String, Vec<(&str, String)>)> = Vec::new();
    linker
        .linked_persons(|rows| {
            for r in rows {
                let key = crate::archive::person_key(schema, &r);
                let mut ids = crate::archive::identifiers(schema, &r);
                ids.retain(|(kind, _)| *kind != "atena");
                got.push((key, ids));
            }
            Ok::<_, ()>(())
        })
        .unwrap();
    let birth = |y, m, d| days_from_civil(y, m, d).unwrap().to_string();
    let want = vec![
        (
            "R:1001".to_string(),
            vec![(
                "kana_birth",
                format!("タカハシイチロウ:{}", birth(1980, 5, 5)),
            )],
        ),
        (
            "R:1002".to_string(),
            vec![
                ("kana_birth", format!("サトウハナコ:{}", birth(1975, 1, 2))),
                ("kojin_bango", "000000001002".to_string()),
            ],
        ),
        (
            "R:1001".to_string(),
            vec![("ticket", "131091:T1".to_string())],
        ),
        (
            "R:1002".to_string(),
            vec![("ticket", "131091:T3".to_string())],
        ),
    ];
    assert_eq!(got, want);
    // Every slim record is keyed as the linked records are.
    for r in &records {
        let key = crate::archive::person_key(schema, r);
        assert!(got.iter().any(|(k, _)| *k == key), "{key}");
    }
}
