//! lookup + audit: answers equal the truth, candidates for ambiguous queries, vault items
//! only with the vault, no personal data in the audit log, tampering detected, FHIR valid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::{files_under, personal_values, run_ok, vaxarc, Fixture};

fn lookup(archive: &Path, identities: &[PathBuf], args: &[&str]) -> std::process::Output {
    let mut c = vaxarc();
    c.arg("lookup").arg("--archive").arg(archive).args([
        "--operator",
        "clerk-7",
        "--purpose",
        "certificate",
    ]);
    for i in identities {
        c.arg("--identity").arg(i);
    }
    c.args(args);
    run_ok(&mut c)
}

type Dose = (String, String, String);
type Row = BTreeMap<String, String>;

/// The truth's records per person: rows with outcome `record`, merged pairs counted once.
fn truth(input: &Path) -> (Vec<Row>, BTreeMap<String, Vec<Dose>>) {
    let read = |name: &str| -> Vec<BTreeMap<String, String>> {
        let mut rdr = csv::Reader::from_path(input.join("truth").join(name)).unwrap();
        let h = rdr.headers().unwrap().clone();
        rdr.records()
            .map(|r| {
                h.iter()
                    .zip(r.unwrap().iter())
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            })
            .collect()
    };
    let persons = read("persons.csv");
    let mut by_person: BTreeMap<String, Vec<Dose>> = BTreeMap::new();
    let mut merged_seen = BTreeSet::new();
    for r in read("rows.csv") {
        if r["outcome"] != "record" {
            continue;
        }
        if r["merge"] == "merged" && !merged_seen.insert(r["dose_key"].clone()) {
            continue; // the absorbed copy of a merged pair
        }
        by_person.entry(r["person_id"].clone()).or_default().push((
            r["vaccination_date"].clone(),
            r["vaccine_code"].clone(),
            r["dose_number"].clone(),
        ));
    }
    (persons, by_person)
}

fn doses_of(answer: &serde_json::Value) -> Vec<Dose> {
    let dose = |d: &serde_json::Value| {
        (
            d["vaccination_date"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            d["vaccine_code"].as_str().unwrap_or_default().to_string(),
            d["dose_number"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        )
    };
    let mut out: Vec<Dose> = answer["covid"]
        .as_array()
        .unwrap()
        .iter()
        .map(dose)
        .collect();
    for r in answer["routine"].as_array().unwrap() {
        for s in r["stages"].as_array().unwrap() {
            out.extend(s["doses"].as_array().unwrap().iter().map(dose));
        }
    }
    out
}

#[test]
fn lookups_return_exactly_the_truths_records() {
    let f = Fixture::new(250, 31);
    let (archive, _) = f.migrate("archive");
    let (persons, records) = truth(&f.input());
    let id = [f.key("custodian-1.key")];
    // 20 persons spread over the file, registry residents with records.
    let picked: Vec<&BTreeMap<String, String>> = persons
        .iter()
        .filter(|p| p["in_registry"] == "true" && records.contains_key(&p["person_id"]))
        .step_by(7)
        .take(20)
        .collect();
    assert_eq!(picked.len(), 20);
    let mut batch = String::new();
    let mut checked = 0;
    for p in &picked {
        let out = lookup(
            &archive,
            &id,
            &["--atena", &p["atena_number"], "--format", "json"],
        );
        let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(a["status"], "found", "person {}", p["person_id"]);
        let mut got = doses_of(&a);
        let mut want = records[&p["person_id"]].clone();
        got.sort();
        want.sort();
        assert_eq!(
            a["records"].as_u64().unwrap() as usize,
            want.len(),
            "count for {}",
            p["person_id"]
        );
        assert_eq!(got, want, "records of {}", p["person_id"]);
        // COVID doses come in certificate order.
        let covid: Vec<i64> = a["covid"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["dose_number"].as_i64())
            .collect();
        assert!(covid.windows(2).all(|w| w[0] <= w[1]));
        batch.push_str(&format!("atena={}\n", p["atena_number"]));
        checked += 1;
    }
    assert_eq!(checked, 20);
    // Batch mode gives the same answers, one JSON line per query.
    let file = f.dir.path().join("batch.txt");
    std::fs::write(&file, &batch).unwrap();
    let out = lookup(
        &archive,
        &id,
        &["--batch", file.to_str().unwrap(), "--format", "json"],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    for (a, p) in lines.iter().zip(&picked) {
        let mut got = doses_of(a);
        let mut want = records[&p["person_id"]].clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
    // Every identifier the city holds for a registry resident with records finds exactly
    // their records — also a 個人番号 only the registry holds, the ticket of a resident
    // whose doses are all in the ledgers, the registry's kana spelling (the index takes
    // the linked registry and VRS person rows' identifiers, not only the records').
    let mut queries = String::new();
    let mut asked: Vec<(&str, &String)> = Vec::new();
    for p in persons
        .iter()
        .filter(|p| p["in_registry"] == "true" && records.contains_key(&p["person_id"]))
    {
        let mut ask = |kind: &'static str, line: String| {
            queries.push_str(&line);
            queries.push('\n');
            asked.push((kind, &p["person_id"]));
        };
        if !p["kojin_bango"].is_empty() {
            ask("kojin_bango", format!("kojin_bango={}", p["kojin_bango"]));
        }
        if !p["ticket_number"].is_empty() {
            ask(
                "ticket",
                format!("ticket={}:{}", p["municipality_code"], p["ticket_number"]),
            );
        }
        if !p["kana_name"].is_empty() {
            ask(
                "kana",
                format!("kana={},birth={}", p["kana_name"], p["birth_date"]),
            );
        }
    }
    std::fs::write(&file, &queries).unwrap();
    let out = lookup(
        &archive,
        &id,
        &["--batch", file.to_str().unwrap(), "--format", "json"],
    );
    let answers: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), asked.len());
    assert!(asked.len() > 300, "{} queries", asked.len());
    for (a, (kind, person)) in answers.iter().zip(&asked) {
        assert_eq!(a["status"], "found", "{kind} of {person}");
        let mut got = doses_of(a);
        let mut want = records[*person].clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{kind} of {person}");
    }
    // A ticket query finds the same person as the atena query.
    let p = picked
        .iter()
        .find(|p| !p["ticket_number"].is_empty())
        .unwrap();
    let by_ticket = lookup(
        &archive,
        &id,
        &[
            "--ticket",
            &format!("{}:{}", p["municipality_code"], p["ticket_number"]),
            "--format",
            "json",
        ],
    );
    let by_atena = lookup(
        &archive,
        &id,
        &["--atena", &p["atena_number"], "--format", "json"],
    );
    let (t, a): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&by_ticket.stdout).unwrap(),
        serde_json::from_slice(&by_atena.stdout).unwrap(),
    );
    assert_eq!(t["persons"], a["persons"]);
    // Nobody: status not_found, exit 0.
    let out = lookup(
        &archive,
        &id,
        &["--atena", "99999999999", "--format", "json"],
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["status"], "not_found");
    // A manifest altered after signing (here its creation time): no answer is given from
    // it, and the refusal says what to run.
    let path = archive.join("MANIFEST.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"created\"").unwrap();
    let digit = at + text[at..].find("20").unwrap() + 3;
    let mut altered = text.into_bytes();
    altered[digit] = if altered[digit] == b'9' { b'8' } else { b'9' };
    std::fs::write(&path, altered).unwrap();
    let out = crate::vaxarc()
        .arg("lookup")
        .arg("--archive")
        .arg(&archive)
        .args(["--operator", "clerk-7", "--purpose", "certificate"])
        .arg("--identity")
        .arg(&id[0])
        .args(["--atena", &p["atena_number"], "--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{err}");
    assert!(
        err.contains("does not verify") && err.contains("vaxarc verify"),
        "{err}"
    );
}

#[test]
fn vault_items_appear_only_with_the_vault_identity_and_the_flag_and_the_log_holds_no_personal_data()
{
    let f = Fixture::new(120, 41);
    let (archive, _) = f.migrate("archive");
    let (persons, records) = truth(&f.input());
    let p = persons
        .iter()
        .find(|p| {
            p["in_registry"] == "true"
                && !p["kojin_bango"].is_empty()
                && records.contains_key(&p["person_id"])
        })
        .unwrap();
    let kojin = p["kojin_bango"].clone();
    let custodian = f.key("custodian-1.key");
    let vault = f.key("vault.key");
    for format in ["text", "json", "fhir"] {
        for role in ["clerk", "vault_officer"] {
            for (ids, flag) in [
                (vec![custodian.clone()], true),
                (vec![custodian.clone(), vault.clone()], false),
                (vec![custodian.clone()], false),
            ] {
                let mut args = vec![
                    "--atena",
                    p["atena_number"].as_str(),
                    "--format",
                    format,
                    "--role",
                    role,
                ];
                if flag {
                    args.push("--show-vault");
                }
                let out = lookup(&archive, &ids, &args);
                assert!(
                    !crate::contains(&out.stdout, &kojin),
                    "個人番号 shown: format {format} role {role} flag {flag} ids {}",
                    ids.len()
                );
            }
        }
    }
    // With the vault identity, the vault role and the flag, it is shown (when archived).
    let out = lookup(
        &archive,
        &[custodian.clone(), vault.clone()],
        &[
            "--atena",
            &p["atena_number"],
            "--format",
            "json",
            "--role",
            "vault_officer",
            "--show-vault",
        ],
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["vault_shown"], true);
    if let Some(k) = a["person"]["kojin_bango"].as_str() {
        assert_eq!(k, kojin);
    }
    // Search by 個人番号 works without showing it.
    let out = lookup(
        &archive,
        std::slice::from_ref(&custodian),
        &["--kojin-bango", &kojin, "--format", "json"],
    );
    assert!(!crate::contains(&out.stdout, &kojin));
    // The audit log and checkpoints hold no personal value, and stderr neither.
    assert!(!crate::contains(&out.stderr, &kojin));
    let values = personal_values(&f.input());
    let m = crate::matcher(&values);
    let mut n = 0;
    for file in files_under(&archive.join("audit")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            m.find(&bytes).is_none(),
            "personal value in {}",
            file.display()
        );
        n += 1;
    }
    assert!(n >= 3);
    let log = std::fs::read_to_string(archive.join("audit/log-00000000.jsonl")).unwrap();
    assert!(log.lines().count() >= 20, "every lookup is an entry");
    assert!(log
        .lines()
        .skip(1)
        .all(|l| l.contains("\"operator\":\"clerk-7\"")));

    // Vault keys that disagree (a key of the person's bucket wrapped to other recipients
    // than the first one the lookup opens): an error line naming the key, no 個人番号.
    let out = lookup(
        &archive,
        &[custodian.clone(), vault.clone()],
        &["--atena", &p["atena_number"], "--format", "json"],
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let person = a["persons"][0].as_str().unwrap().to_string();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let bucket = vaxarc::archive::bucket_of(&person, m["buckets"].as_u64().unwrap() as u16);
    let keys: Vec<&str> = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["bucket"].as_u64() == Some(u64::from(bucket)))
        .filter_map(|q| q["vault_key"].as_str())
        .collect();
    assert!(
        keys.len() >= 2,
        "the person's bucket has {} vault keys",
        keys.len()
    );
    let other = age::x25519::Identity::generate();
    let wrapped =
        vaxarc::archive::crypto::wrap_key("test", &other.to_string(), &[other.to_public()])
            .unwrap();
    let moved = keys[keys.len() - 1];
    std::fs::write(archive.join(moved), wrapped).unwrap();
    let out = vaxarc()
        .arg("lookup")
        .arg("--archive")
        .arg(&archive)
        .args(["--operator", "clerk-7", "--purpose", "certificate"])
        .arg("--identity")
        .arg(&custodian)
        .arg("--identity")
        .arg(&vault)
        .args([
            "--atena",
            &p["atena_number"],
            "--role",
            "vault_officer",
            "--show-vault",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains(moved) && first.contains("disagree"), "{err}");
    // One error line and the usual hint.
    assert!(err.trim().lines().count() <= 2, "{err}");
    assert!(!crate::contains(&out.stderr, &kojin) && !crate::contains(&out.stdout, &kojin));
}

#[test]
fn audit_verify_detects_altered_and_deleted_entries_and_names_the_log() {
    let f = Fixture::new(60, 43);
    let (archive, _) = f.migrate("archive");
    let (persons, _) = truth(&f.input());
    let id = [f.key("custodian-1.key")];
    for p in persons
        .iter()
        .filter(|p| p["in_registry"] == "true")
        .take(4)
    {
        lookup(
            &archive,
            &id,
            &[
                "--atena",
                &p["atena_number"],
                "--format",
                "json",
                "--signing-key",
                f.key("signing.key").to_str().unwrap(),
            ],
        );
    }
    // Another archive's signing key is refused (its checkpoint signatures would fail
    // `audit verify` from then on): exit 2, nothing answered or logged.
    let other = f.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    run_ok(
        vaxarc()
            .arg("keygen")
            .arg("--output")
            .arg(other.join("c.key"))
            .arg("--signing-key")
            .arg(other.join("s.key"))
            .arg("-q"),
    );
    let p = persons.iter().find(|p| p["in_registry"] == "true").unwrap();
    let wrong = vaxarc()
        .arg("lookup")
        .arg("--archive")
        .arg(&archive)
        .args([
            "--operator",
            "clerk-7",
            "--purpose",
            "certificate",
            "--identity",
        ])
        .arg(&id[0])
        .args(["--atena", &p["atena_number"], "--signing-key"])
        .arg(other.join("s.key"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(2), "{err}");
    assert!(err.contains("is not the key that signs"), "{err}");
    assert!(wrong.stdout.is_empty());
    let verify = |dir: &Path| {
        let out = vaxarc()
            .args(["audit", "verify", "--archive"])
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, text) = verify(&archive);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("5 entries"), "{text}");
    let log = archive.join("audit/log-00000000.jsonl");
    let good = std::fs::read_to_string(&log).unwrap();
    // Altered entry.
    std::fs::write(
        &log,
        good.replacen("\"operator\":\"clerk-7\"", "\"operator\":\"someone\"", 1),
    )
    .unwrap();
    let (code, text) = verify(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit/log-"), "{text}");
    // Deleted entry (the second lookup).
    let kept: Vec<&str> = good
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let (code, text) = verify(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit/log-00000000.jsonl:3"), "{text}");
    // Truncated log.
    let kept: Vec<&str> = good.lines().take(3).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let (code, text) = verify(&archive);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("deleted"), "{text}");
    // Restored, it verifies again; and the archive's own verify ignores audit/.
    std::fs::write(&log, &good).unwrap();
    assert_eq!(verify(&archive).0, Some(0));
    // A lookup whose audit entry cannot be written shows nothing: here the log segment's
    // place is taken by a folder, so the append fails.
    std::fs::rename(&log, archive.join("log.bak")).unwrap();
    std::fs::create_dir_all(log.join("blocked")).unwrap();
    let p = persons.iter().find(|p| p["in_registry"] == "true").unwrap();
    let mut c = vaxarc();
    c.arg("lookup")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .args(["--operator", "clerk-7", "--purpose", "certificate"])
        .args(["--atena", &p["atena_number"], "--format", "json"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "an unaudited lookup printed its answer"
    );
    std::fs::remove_dir_all(&log).unwrap();
    std::fs::rename(archive.join("log.bak"), &log).unwrap();
    assert!(vaxarc()
        .arg("verify")
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn lookup_fhir_output_validates_with_fhir_resources() {
    if std::process::Command::new("python3")
        .args(["-c", "import fhir.resources"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        if std::env::var("CI").is_ok() {
            panic!("python3 with fhir.resources is required in CI (.ci/run installs it)");
        }
        eprintln!("skipped: python3 -m pip install fhir.resources");
        return;
    }
    let f = Fixture::new(60, 47);
    let (archive, _) = f.migrate("archive");
    let (persons, _) = truth(&f.input());
    let id = [f.key("custodian-1.key")];
    let p = persons.iter().find(|p| p["in_registry"] == "true").unwrap();
    let out = lookup(
        &archive,
        &id,
        &["--atena", &p["atena_number"], "--format", "fhir"],
    );
    let file = f.dir.path().join("bundle.json");
    std::fs::write(&file, &out.stdout).unwrap();
    // A person not in the archive: one OperationOutcome (not an empty bundle).
    let missing = lookup(&archive, &id, &["--atena", "99999999", "--format", "fhir"]);
    let none_file = f.dir.path().join("none.json");
    std::fs::write(&none_file, &missing.stdout).unwrap();
    let script = r#"
import json, sys
from fhir.resources.R4B.bundle import Bundle
def load(path):
    data = json.load(open(path))
    b = Bundle.model_validate(data) if hasattr(Bundle, "model_validate") else Bundle.parse_obj(data)
    return [e.resource.__resource_type__ if hasattr(e.resource, "__resource_type__") else e.resource.resource_type for e in b.entry], b
kinds, b = load(sys.argv[1])
assert kinds[0] == "Patient", kinds
assert "Immunization" in kinds, kinds
for e in b.entry[1:]:
    assert e.resource.meta.profile[0] == "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Immunization"
kinds2, b2 = load(sys.argv[2])
assert kinds2 == ["OperationOutcome"], kinds2
assert b2.entry[0].resource.issue[0].code == "not-found"
print(len(kinds))
"#;
    let v = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .arg(&none_file)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "fhir.resources rejected the bundle: {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

/// Lookups started at the same instant on one local archive each get their audit entry
/// (appends are serialised): none is lost, and the log verifies. The archive's migrate
/// stopped after its commit, before its own entry: the lookups write that entry first,
/// once.
#[test]
fn simultaneous_lookups_lose_no_audit_entry() {
    let f = Fixture::new(60, 47);
    let (archive, _) = f.migrate("archive");
    std::fs::remove_dir_all(archive.join("audit")).unwrap();
    // `audit verify`'s text; it must pass.
    let audit_verify = || {
        let out = vaxarc()
            .args(["audit", "verify", "--archive"])
            .arg(&archive)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{text}");
        text
    };
    let text = audit_verify();
    assert!(
        text.contains("0 entries") && text.contains("note: the log is empty"),
        "{text}"
    );
    let (persons, _) = truth(&f.input());
    let p = persons.iter().find(|p| p["in_registry"] == "true").unwrap();
    let children: Vec<std::process::Child> = (0..8)
        .map(|_| {
            vaxarc()
                .arg("lookup")
                .arg("--archive")
                .arg(&archive)
                .arg("--identity")
                .arg(f.key("custodian-1.key"))
                .args(["--operator", "clerk-7", "--purpose", "certificate"])
                .args(["--atena", &p["atena_number"], "--format", "json", "--quiet"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = audit_verify();
    assert!(
        text.contains("9 entries"),
        "migrate's and eight lookups': {text}"
    );
    assert!(
        text.contains("note: the migration's entry (audit/log-00000000.jsonl:1)"),
        "{text}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let log = std::fs::read_to_string(archive.join("audit/log-00000000.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&first["command"], &first["outcome"], &first["time"]),
        (
            &serde_json::json!("migrate"),
            &serde_json::json!("recovered"),
            &manifest["created"]
        )
    );
    assert_eq!(first["result_count"], manifest["totals"]["records"]);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"command\":\"migrate\""))
            .count(),
        1,
        "the migration's entry is written once"
    );
}
