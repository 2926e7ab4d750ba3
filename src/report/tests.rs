//! Unit tests of the report core and renderings.

use super::*;

fn manifest() -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format": "vaxarc-archive", "format_version": 1, "archive_id": "a".repeat(32), "generation": 1,
        "previous_root": null, "created": "2025-04-01T00:00:00Z",
        "program": {"name": "vaxarc", "version": "0"}, "municipality_code": "131091",
        "custodians": [], "vault_recipients": [], "signing_public_key": "", "buckets": 4,
        "schema_toml": "", "pipeline_toml": "", "accounting": [],
        "reconciliation": {"by_method": {"atena": 30, "none": 2}, "merged_rows": 12, "conflicts": 3, "review": 0},
        "partitions": [
            {"id": "1", "retention_class": "routine_5y", "expiry": "2029", "bucket": 0, "rows": 25, "vault_rows": 0, "file": "f", "key": "k", "vault_file": null, "vault_key": null, "plaintext_blake3": "", "vault_plaintext_blake3": null},
            {"id": "2", "retention_class": "routine_5y", "expiry": "2029", "bucket": 1, "rows": 5, "vault_rows": 0, "file": "f2", "key": "k2", "vault_file": null, "vault_key": null, "plaintext_blake3": "", "vault_plaintext_blake3": null},
            {"id": "3", "retention_class": "covid_special", "expiry": "open", "bucket": 1, "rows": 3, "vault_rows": 0, "file": "f3", "key": "k3", "vault_file": null, "vault_key": null, "plaintext_blake3": "", "vault_plaintext_blake3": null}
        ],
        "files": [], "totals": {"rows_read": 40, "records": 33, "merged": 12, "quarantined": 2, "review": 0},
        "merkle_root": ""
    }))
    .unwrap()
}

fn day(y: i32, m: u8, d: u8) -> i32 {
    crate::record::days_from_civil(y, m, d).unwrap()
}

/// 12 children born 2022-06-01 (all resident), 11 of them with one MR dose in 2023,
/// plus one adult with a COVID dose.
fn facts() -> Vec<Fact> {
    let mut out = Vec::new();
    for i in 0..12 {
        let child = Fact {
            vaccine_code: "BCG".into(),
            stage: None,
            dose: Some(1),
            vaccination_date: Some(day(2022, 12, 1)),
            birth_date: Some(day(2022, 6, 1)),
            person: format!("p{i}"),
            match_method: "atena".into(),
            registry_status: "resident".into(),
            done: true,
            conflicts: None,
        };
        if i < 11 {
            out.push(Fact {
                vaccine_code: "MR".into(),
                stage: Some("1期".into()),
                vaccination_date: Some(day(2023, 7, 1)),
                ..child.clone()
            });
        }
        out.push(child);
    }
    out.push(Fact {
        vaccine_code: "COVID19".into(),
        dose: Some(3),
        vaccination_date: Some(day(2022, 1, 5)),
        birth_date: Some(day(1950, 3, 3)),
        person: "adult".into(),
        match_method: "ticket".into(),
        registry_status: "deceased".into(),
        done: true,
        conflicts: Some("lot_number;birth_date".into()),
        ..Fact::default()
    });
    out
}

fn report(facts: &[Fact], below: u64) -> Report {
    let m = manifest();
    let q = vec![
        QuarantineFact {
            file_id: "ledger-MR".into(),
            reason: "impossible_date".into(),
        };
        3
    ];
    build(&Input {
        resident_births: None,
        manifest: &m,
        facts,
        quarantine: &q,
        as_of: day(2025, 4, 1),
        suppress_below: below,
    })
    .unwrap()
}

#[test]
fn counts_below_the_threshold_are_withheld_zero_is_shown() {
    assert_eq!(Count::new(0, 10).value, Some(0));
    assert_eq!(
        Count::new(9, 10),
        Count {
            value: None,
            suppressed: true
        }
    );
    assert_eq!(Count::new(10, 10).value, Some(10));
    assert_eq!(Count::new(9, 10).display(10), "<10");
    let json = serde_json::to_value(Count::new(3, 10)).unwrap();
    assert_eq!(json, serde_json::json!({"value": null, "suppressed": true}));
    assert_eq!(
        serde_json::to_value(Count::new(30, 10)).unwrap(),
        serde_json::json!({"value": 30})
    );
}

#[test]
fn ages_and_bands() {
    assert_eq!(age_on(day(2000, 3, 1), day(2010, 2, 28)), 9);
    assert_eq!(age_on(day(2000, 3, 1), day(2010, 3, 1)), 10);
    assert_eq!(age_band(Some(0)), "0");
    assert_eq!(age_band(Some(70)), "65-74");
    assert_eq!(age_band(None), "unknown");
    assert_eq!(parse_date("2025-04-01T00:00:00Z"), Some(day(2025, 4, 1)));
    assert_eq!(date_text(day(2025, 4, 1)), "2025-04-01");
}

#[test]
fn people_per_vaccine_stage_year_band() {
    let r = report(&facts(), 10);
    let bcg = r
        .vaccine_totals
        .iter()
        .find(|v| v.vaccine == "BCG")
        .unwrap();
    assert_eq!(bcg.people.value, Some(12));
    assert_eq!(bcg.vaccine_name, "BCG");
    let mr = r.vaccinated.iter().find(|v| v.vaccine == "MR").unwrap();
    assert_eq!(
        (
            mr.stage.as_deref(),
            mr.year,
            mr.age_band.as_str(),
            mr.people.value
        ),
        (Some("1期"), Some(2023), "1-5", Some(11))
    );
    // One COVID person: suppressed everywhere it appears.
    let covid = r
        .vaccine_totals
        .iter()
        .find(|v| v.vaccine == "COVID19")
        .unwrap();
    assert!(covid.people.suppressed && covid.people.value.is_none());
    // Threshold 1 shows everything.
    let r1 = report(&facts(), 1);
    assert_eq!(
        r1.vaccine_totals
            .iter()
            .find(|v| v.vaccine == "COVID19")
            .unwrap()
            .people
            .value,
        Some(1)
    );
}

#[test]
fn unvaccinated_counts_known_residents_in_target_ages() {
    // On 2025-04-01 the children are 2: in MR's target ages [1, 7), not in BCG's [0, 1).
    let r = report(&facts(), 1);
    let mr = r.unvaccinated.iter().find(|u| u.vaccine == "MR").unwrap();
    assert_eq!(
        (
            mr.target_population.value,
            mr.vaccinated.value,
            mr.unvaccinated.value
        ),
        (Some(12), Some(11), Some(1))
    );
    let bcg = r.unvaccinated.iter().find(|u| u.vaccine == "BCG").unwrap();
    assert_eq!(bcg.target_population.value, Some(0));
    // Suppressed at 10: the single unvaccinated child is withheld — and so is the
    // vaccinated count beside it, which with the shown target (12) would give it away.
    let r10 = report(&facts(), 10);
    let mr10 = r10.unvaccinated.iter().find(|u| u.vaccine == "MR").unwrap();
    assert_eq!(mr10.target_population.value, Some(12));
    assert!(mr10.unvaccinated.suppressed && mr10.vaccinated.suppressed);
    // Processing counts stay exact whatever the threshold: the 3 quarantined rows.
    assert_eq!(r10.quarantine[0].rows.value, Some(3));
    assert_eq!(r10.quarantine_by_reason[0].count.value, Some(3));
    assert_eq!(
        r10.totals.quarantined.value,
        Some(2),
        "the manifest's total, exact"
    );
}

#[test]
fn numbers_and_codes_as_staff_read_them() {
    assert_eq!(super::thousands(0), "0");
    assert_eq!(super::thousands(999), "999");
    assert_eq!(super::thousands(1000), "1,000");
    assert_eq!(super::thousands(1234567), "1,234,567");
    assert_eq!(Count::new(25854, 10).display(10), "25,854");
    assert_eq!(render::label("atena"), "宛名番号 / atena");
    assert_eq!(render::label("routine_5y"), "定期（5年保存） / routine_5y");
    assert_eq!(render::label("something_new"), "something_new");
}

#[test]
fn reconciliation_quarantine_retention() {
    let r = report(&facts(), 1);
    let atena = r
        .reconciliation
        .outcomes
        .iter()
        .find(|o| o.method == "atena" && o.status == "resident")
        .unwrap();
    assert_eq!(atena.records.value, Some(23));
    assert_eq!(r.reconciliation.conflicts_by_field.len(), 2);
    assert_eq!(r.reconciliation.merged_rows.value, Some(12));
    assert_eq!(r.quarantine.len(), 1);
    assert_eq!(r.quarantine[0].rows.value, Some(3));
    assert_eq!(r.retention.len(), 2);
    let y2029 = r.retention.iter().find(|x| x.expiry == "2029").unwrap();
    assert_eq!((y2029.partitions, y2029.records.value), (2, Some(30)));
    // As of 2025-04-01: 2029 is ahead, `open` has no expiry, nothing is due.
    assert_eq!(y2029.status, "future");
    assert_eq!(r.totals.past_retention.value, Some(0));
    for (expiry, year, status) in [
        ("2024", 2025, "past"),
        ("2025", 2025, "this_year"),
        ("2026", 2025, "future"),
        ("open", 2025, "open"),
    ] {
        assert_eq!(super::retention_status(expiry, year), status, "{expiry}");
    }
    assert_eq!(r.totals.people.value, Some(13));
}

#[test]
fn renderings_show_figures_and_marks() {
    let r = report(&facts(), 10);
    let t = render::text(&r);
    assert!(t.contains("接種の種類ごとの実施人数"), "{t}");
    assert!(
        !r.synthetic && !t.contains("DEMO"),
        "no banner on a real archive's report"
    );
    assert!(t.contains("<10"));
    // Without a registry summary, 未接種者数 counts residents with a record, and says so.
    assert_eq!(r.unvaccinated_population, "residents_with_records");
    assert!(t.contains("現在、記録のある住民）"), "{t}");
    let h = render::html(&r);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("<svg") && h.contains("&lt;10"));
    assert!(
        !h.contains("http://")
            || !h
                .replace("http://www.w3.org/2000/svg", "")
                .contains("http://")
    );
    assert!(!h.contains("<script") && !h.contains("https://") && !h.contains("<link"));
    // Alignment counts Japanese characters as two cells.
    assert_eq!(render::width("未接種 a"), 8);
}

/// Partitions whose expiry year is over on the as-of date are marked due for purge, in
/// every rendering, and their records are summed in the summary.
#[test]
fn retention_past_its_year_is_marked_due() {
    let m = manifest();
    let r = build(&Input {
        resident_births: None,
        manifest: &m,
        facts: &facts(),
        quarantine: &[],
        as_of: day(2030, 1, 2),
        suppress_below: 1,
    })
    .unwrap();
    let y2029 = r.retention.iter().find(|x| x.expiry == "2029").unwrap();
    assert_eq!(y2029.status, "past");
    assert_eq!(r.totals.past_retention.value, Some(30));
    let t = render::text(&r);
    assert!(t.contains("満了（消去対象） / past"), "{t}");
    assert!(t.contains("records past retention (purge due)"), "{t}");
    let h = render::html(&r);
    assert_eq!(
        h.matches("<tr class=\"due\">").count(),
        1,
        "the 2029 row only"
    );
}
