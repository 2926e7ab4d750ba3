//! Issue 10 item 5: after a full run — migrate, lookup, purge, erase, report, verify,
//! audit verify, certificate verify — no name, kana, address, phone, 個人番号, 旅券番号 or
//! other identifier of the input appears in any output stream or any file outside the
//! input folder, except the lookup's stdout, which is the disclosure the operator asked
//! for (its stderr is scanned).

use std::path::Path;

use crate::{files_under, matcher, personal_values, run_ok, vaxarc, Fixture};

/// Values of the given headers in every source file (decoded as the file's encoding).
fn source_values(input: &Path, headers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files_under(&input.join("sources")) {
        let raw = std::fs::read(&file).unwrap();
        let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&raw).to_vec();
        let text = match String::from_utf8(raw.clone()) {
            Ok(t) => t,
            Err(_) => encoding_rs::SHIFT_JIS.decode(&raw).0.into_owned(),
        };
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let h = rdr.headers().unwrap().clone();
        let cols: Vec<usize> = h
            .iter()
            .enumerate()
            .filter(|(_, x)| headers.contains(x))
            .map(|(i, _)| i)
            .collect();
        // (Rows with a wrong column count are skipped: their columns are shifted.)
        for row in rdr.records().flatten().filter(|r| r.len() == h.len()) {
            for &c in &cols {
                if let Some(v) = row.get(c) {
                    let v = v.trim();
                    if v.chars().count() >= 6 {
                        out.push(v.to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn a_full_run_leaks_no_personal_data_outside_the_input() {
    let f = Fixture::new(200, 71);
    let mut values = personal_values(&f.input());
    values.extend(source_values(
        &f.input(),
        &[
            "住所",
            "電話番号",
            "旅券番号",
            "ローマ字氏名",
            "個人番号",
            "接種券番号",
        ],
    ));
    values.sort();
    values.dedup();
    assert!(
        values.iter().any(|v| v.contains("品川区")),
        "addresses must be among the scanned values"
    );
    let found = matcher(&values);
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut keep = |what: &str, out: &std::process::Output, stdout_too: bool| {
        if stdout_too {
            outputs.push((format!("{what} stdout"), out.stdout.clone()));
        }
        outputs.push((format!("{what} stderr"), out.stderr.clone()));
    };
    let (archive, out) = f.migrate("archive");
    keep("migrate", &out, true);
    let custodian = f.key("custodian-1.key");
    let vault = f.key("vault.key");
    // Atena numbers of people with archived COVID records (never expired by the purge).
    let atena = {
        let mut rdr = csv::Reader::from_path(f.input().join("truth/rows.csv")).unwrap();
        let h = rdr.headers().unwrap().clone();
        let col = |n: &str| h.iter().position(|x| x == n).unwrap();
        let (file, outcome, a) = (col("file_id"), col("outcome"), col("atena_number"));
        let mut v: Vec<String> = rdr
            .records()
            .flatten()
            .filter(|x| &x[file] == "ledger-COVID19" && &x[outcome] == "record" && !x[a].is_empty())
            .map(|x| x[a].to_string())
            .collect();
        v.dedup();
        v.truncate(3);
        v
    };
    assert_eq!(atena.len(), 3);
    for a in &atena {
        for format in ["text", "json", "fhir"] {
            let out = run_ok(
                vaxarc()
                    .arg("lookup")
                    .arg("--archive")
                    .arg(&archive)
                    .arg("--identity")
                    .arg(&custodian)
                    .args([
                        "--operator",
                        "op",
                        "--purpose",
                        "証明書交付",
                        "--format",
                        format,
                        "--atena",
                        a,
                    ]),
            );
            keep("lookup", &out, false);
        }
    }
    let sign = f.key("signing.key");
    let out = run_ok(
        vaxarc()
            .arg("purge")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&custodian)
            .arg("--identity")
            .arg(&vault)
            .args([
                "--as-of",
                "2028-07-15",
                "--operator",
                "op",
                "--json",
                "--signing-key",
            ])
            .arg(&sign),
    );
    keep("purge", &out, true);
    let out = run_ok(
        vaxarc()
            .arg("erase")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&custodian)
            .arg("--identity")
            .arg(&vault)
            .args([
                "--operator",
                "op",
                "--reason",
                "request",
                "--json",
                "--atena",
                &atena[0],
                "--signing-key",
            ])
            .arg(&sign),
    );
    keep("erase", &out, true);
    let html = f.dir.path().join("report.html");
    let out = run_ok(
        vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&custodian)
            .arg("--html")
            .arg(&html),
    );
    keep("report", &out, true);
    let out = run_ok(
        vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&custodian)
            .arg("--json"),
    );
    keep("report json", &out, true);
    let out = run_ok(
        vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&custodian)
            .arg("--identity")
            .arg(&vault),
    );
    keep("verify", &out, true);
    let out = run_ok(
        vaxarc()
            .args(["audit", "verify", "--archive"])
            .arg(&archive)
            .arg("--pubkey")
            .arg(f.key("signing.pub")),
    );
    keep("audit verify", &out, true);
    for cert in files_under(&archive.join("certificates"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let out = run_ok(
            vaxarc()
                .args(["certificate", "verify"])
                .arg(&cert)
                .arg("--archive")
                .arg(&archive)
                .arg("--pubkey")
                .arg(f.key("signing.pub")),
        );
        keep("certificate verify", &out, true);
    }
    for (what, bytes) in &outputs {
        // (Synthetic values: safe to show in a failing test.)
        if let Some(m) = found.find(bytes) {
            panic!("personal data in {what}: `{}`", values[m]);
        }
    }
    // Every file outside the input folder: archive (ciphertext, manifest, audit log,
    // certificates, history), the HTML report.
    let mut scanned = 0;
    for file in files_under(f.dir.path()) {
        if file.starts_with(f.input()) {
            continue;
        }
        if let Some(m) = found.find(&std::fs::read(&file).unwrap()) {
            panic!("personal data in {}: `{}`", file.display(), values[m]);
        }
        scanned += 1;
    }
    assert!(scanned > 50, "{scanned}");
    // Positive control: the scanner finds them where they are in clear.
    let registry = std::fs::read(f.input().join("truth/persons.csv")).unwrap();
    assert!(found.find(&registry).is_some());
}
