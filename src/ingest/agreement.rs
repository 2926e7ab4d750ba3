//! Ingest + normalise against the generator's ground truth: every source row either
//! normalises to the truth's values or is quarantined with the truth's reason — 100 %.

use std::collections::HashMap;

use crate::generate::{self, Config};
use crate::normalise::{render, Tables};
use crate::pipeline::Pipeline;
use crate::schema::Schema;

/// Truth columns compared with the record field of the same name.
const COMPARED: &[&str] = &[
    "atena_number",
    "kojin_bango",
    "kanji_name",
    "kana_name",
    "birth_date",
    "sex",
    "vaccine_code",
    "stage",
    "dose_number",
    "vaccination_date",
    "lot_number",
    "manufacturer_code",
    "municipality_code",
    "ticket_number",
];

#[test]
fn every_row_normalises_to_the_truth_or_is_quarantined_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        people: 1500,
        seed: 42,
        ..Config::default()
    };
    generate::generate(&config, dir.path()).unwrap();
    let schema = Schema::embedded();
    let pipeline = Pipeline::load(&dir.path().join("pipeline.toml"), schema).unwrap();
    let out = super::ingest(&pipeline.sources, schema, Tables::embedded(), &|_| {}).unwrap();

    // Everything ingest produced, by (file id, line, dose).
    let file_idx = schema.idx("source_file_id");
    let line_idx = schema.idx("source_line");
    let dose_idx = schema.idx("dose_number");
    let kind_idx = schema.idx("source_kind");
    let mut produced: HashMap<(String, String, String), &crate::record::Record> = HashMap::new();
    let kinds: HashMap<&str, crate::layout::SourceKind> = pipeline
        .sources
        .iter()
        .map(|s| (s.id.as_str(), s.layout.kind))
        .collect();
    for r in out
        .records
        .iter()
        .chain(&out.registry)
        .chain(&out.vrs_persons)
    {
        let file = r.at(file_idx).as_str().unwrap().to_string();
        let line = r.at(line_idx).as_int().unwrap().to_string();
        let dose = if r.at(kind_idx).as_str() == Some("vrs-ledger-export") {
            r.at(dose_idx)
                .as_int()
                .map(|d| d.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        assert!(
            produced.insert((file, line, dose), r).is_none(),
            "two records for one source unit"
        );
    }
    let quarantined: HashMap<(String, String, String), &str> = out
        .quarantine
        .iter()
        .map(|q| {
            (
                (
                    q.file_id.clone(),
                    q.line.to_string(),
                    q.dose.map(|d| d.to_string()).unwrap_or_default(),
                ),
                q.reason.as_str(),
            )
        })
        .collect();

    let mut rdr = csv::Reader::from_path(dir.path().join("truth/rows.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (c_file, c_line, c_dose, c_outcome, c_reason, c_flags) = (
        col("file_id"),
        col("line"),
        col("dose"),
        col("outcome"),
        col("reason"),
        col("flags"),
    );
    let (mut checked_values, mut checked_quarantine, mut units) = (0usize, 0usize, 0usize);
    let mut disagreements = Vec::new();
    for row in rdr.records() {
        let row = row.unwrap();
        units += 1;
        let key = (
            row[c_file].to_string(),
            row[c_line].to_string(),
            row[c_dose].to_string(),
        );
        let here = format!("{}:{} dose {:?}", key.0, key.1, key.2);
        match &row[c_outcome] {
            "quarantined" => match quarantined.get(&key) {
                Some(reason) if *reason == &row[c_reason] => checked_quarantine += 1,
                Some(reason) => disagreements.push(format!(
                    "{here}: quarantined as {reason}, truth says {}",
                    &row[c_reason]
                )),
                None => disagreements.push(format!(
                    "{here}: not quarantined, truth says {}",
                    &row[c_reason]
                )),
            },
            _ => {
                let Some(record) = produced.get(&key) else {
                    let why = quarantined.get(&key).copied().unwrap_or("missing");
                    disagreements.push(format!("{here}: no record ({why})"));
                    continue;
                };
                let is_person = !kinds[key.0.as_str()].produces_records();
                for name in COMPARED {
                    // Person rows carry no dose fields.
                    if is_person
                        && matches!(
                            *name,
                            "vaccine_code"
                                | "stage"
                                | "dose_number"
                                | "vaccination_date"
                                | "lot_number"
                                | "manufacturer_code"
                        )
                    {
                        continue;
                    }
                    let expected = &row[col(name)];
                    let value = record.at(schema.idx(name));
                    let got = if value.is_null() {
                        String::new()
                    } else {
                        render(&value.to_value())
                    };
                    if got != expected {
                        disagreements.push(format!("{here}: field {name} differs"));
                    }
                    checked_values += 1;
                }
                let flags = record
                    .at(schema.idx("normalisation_flags"))
                    .as_str()
                    .unwrap_or("");
                for flag in row[c_flags].split(';').filter(|f| !f.is_empty()) {
                    if !flags.split(';').any(|f| f.starts_with(flag)) {
                        disagreements.push(format!("{here}: flag {flag} missing"));
                    }
                }
            }
        }
    }
    // Nothing produced or quarantined that the truth does not know.
    assert_eq!(
        produced.len() + quarantined.len(),
        units,
        "ingest produced units the truth does not list"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements, first: {:#?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(15)]
    );
    assert!(
        checked_quarantine > 5 && checked_values > 10_000,
        "{checked_quarantine} {checked_values}"
    );
}
