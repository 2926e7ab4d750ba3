//! purge, erase and certificate verify: the purged set equals an independent oracle's,
//! nothing unexpired is touched, a second purge changes nothing, erased rows cannot be
//! recovered with any key left, certificates verify and detect tampering, the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use vaxarc::archive::store::Store;
use vaxarc::archive::{self, crypto};
use vaxarc::record::{days_from_civil, Record};
use vaxarc::schema::Schema;

use crate::{files_under, run_ok, vaxarc, Fixture};

const AS_OF: &str = "2028-07-15";

fn day(s: &str) -> i32 {
    let p: Vec<&str> = s.split('-').collect();
    days_from_civil(
        p[0].parse().unwrap(),
        p[1].parse().unwrap(),
        p[2].parse().unwrap(),
    )
    .unwrap()
}

/// `days` + `n` calendar years; 29 February → 28 February (the oracle's own arithmetic).
fn plus_years(days: i32, n: i32) -> i32 {
    let (y, m, d) = vaxarc::record::civil_from_days(days);
    days_from_civil(y + n, m, d).unwrap_or_else(|| days_from_civil(y + n, m, d - 1).unwrap())
}

/// Every record of the archive by record id (decrypted with the custodian identity).
fn records(archive: &Path, custodian: &Path) -> BTreeMap<String, Record> {
    let schema = Schema::embedded();
    let ids = vaxarc::keys::load_identities(&[custodian.to_path_buf()], false).unwrap();
    let store = Store::open(archive.to_str().unwrap()).unwrap();
    let (m, _) = archive::read_manifest(&store).unwrap();
    let rid = schema.idx("record_id");
    let mut out = BTreeMap::new();
    for p in &m.partitions {
        for r in archive::read_partition(&store, schema, p, &ids).unwrap() {
            out.insert(r.at(rid).as_str().unwrap().to_string(), r);
        }
    }
    out
}

struct Truth {
    /// record id → (person id, vaccine code, 接種日)
    rows: BTreeMap<String, (String, String, Option<i32>)>,
    /// person id → (atena, death date)
    persons: BTreeMap<String, (String, Option<i32>)>,
}

fn truth(input: &Path) -> Truth {
    let mut rows = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(input.join("truth/rows.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let c = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (file, line, dose, person, outcome, vaccine, date) = (
        c("file_id"),
        c("line"),
        c("dose"),
        c("person_id"),
        c("outcome"),
        c("vaccine_code"),
        c("vaccination_date"),
    );
    for r in rdr.records() {
        let r = r.unwrap();
        if &r[outcome] != "record" {
            continue;
        }
        let dose_n = r[dose].parse::<u16>().ok();
        let id = vaxarc::ingest::record_id(&r[file], r[line].parse().unwrap(), dose_n);
        let vdate = (!r[date].is_empty()).then(|| day(&r[date]));
        rows.insert(id, (r[person].to_string(), r[vaccine].to_string(), vdate));
    }
    let mut persons = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(input.join("truth/persons.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let c = |n: &str| h.iter().position(|x| x == n).unwrap();
    for r in rdr.records() {
        let r = r.unwrap();
        let death = (&r[c("registry_status")] == "deceased"
            && !r[c("registry_status_date")].is_empty())
        .then(|| day(&r[c("registry_status_date")]));
        persons.insert(
            r[c("person_id")].to_string(),
            (r[c("atena_number")].to_string(), death),
        );
    }
    Truth { rows, persons }
}

/// The oracle: 予防接種法施行規則 第3条 (5 years from 接種日, 初日不算入) and 附則第17条
/// (COVID 2021-02-17..2024-03-31: later of death + 1 day + 5 years and provision).
fn oracle_expired(
    vaccine: &str,
    vdate: Option<i32>,
    death: Option<i32>,
    provided: Option<i32>,
    as_of: i32,
) -> bool {
    let Some(v) = vdate else { return false };
    let special = vaccine == "COVID19" && v >= day("2021-02-17") && v <= day("2024-03-31");
    let keep_until = if special {
        match (death, provided) {
            (Some(d), Some(p)) => plus_years(d + 1, 5).max(p),
            _ => return false,
        }
    } else {
        plus_years(v, 5)
    };
    as_of > keep_until
}

fn purge_cmd(f: &Fixture, archive: &Path, extra: &[&std::ffi::OsStr]) -> std::process::Command {
    purge_cmd_as_of(f, archive, AS_OF, extra)
}

fn purge_cmd_as_of(
    f: &Fixture,
    archive: &Path,
    as_of: &str,
    extra: &[&std::ffi::OsStr],
) -> std::process::Command {
    let mut c = vaxarc();
    c.arg("purge").arg("--archive").arg(archive);
    c.arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"));
    c.args(["--as-of", as_of, "--operator", "test-op", "--json"]);
    c.arg("--signing-key").arg(f.key("signing.key"));
    c.args(extra);
    c
}

/// `vaxarc erase` on `archive` with both identities, operator `op`, `reason` and the
/// signing key; the identifier and output flags come in `extra`.
fn erase_cmd(f: &Fixture, archive: &Path, reason: &str, extra: &[&str]) -> std::process::Command {
    let mut c = vaxarc();
    c.arg("erase").arg("--archive").arg(archive);
    c.arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"));
    c.args(["--operator", "op", "--reason", reason]);
    c.arg("--signing-key").arg(f.key("signing.key"));
    c.args(extra);
    c
}

fn cert_verify(f: &Fixture, archive: &Path, cert: &Path) -> std::process::Output {
    vaxarc()
        .args(["certificate", "verify"])
        .arg(cert)
        .arg("--archive")
        .arg(archive)
        .arg("--pubkey")
        .arg(f.key("signing.pub"))
        .output()
        .unwrap()
}

fn verify_ok(f: &Fixture, archive: &Path) {
    let v = vaxarc()
        .arg("verify")
        .arg("--archive")
        .arg(archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn purge_removes_exactly_the_oracles_set_and_certifies_it() {
    let f = Fixture::new(300, 11);
    let (archive, _) = f.migrate("archive");
    let before = records(&archive, &f.key("custodian-1.key"));
    let t = truth(&f.input());
    let schema = Schema::embedded();

    // A newer registry extract: three living persons with COVID records have died.
    let mut covid_persons: BTreeSet<String> = BTreeSet::new();
    for id in before.keys() {
        if let Some((p, v, _)) = t.rows.get(id) {
            if v == "COVID19" {
                covid_persons.insert(p.clone());
            }
        }
    }
    // Linked to their registry row (so the extract's death applies to their records).
    let ra = schema.idx("registry_atena_number");
    let linked: BTreeSet<String> = before
        .iter()
        .filter_map(|(id, r)| {
            t.rows
                .get(id)
                .filter(|(p, v, _)| {
                    v == "COVID19" && r.at(ra).as_str() == Some(t.persons[p].0.as_str())
                })
                .map(|x| x.0.clone())
        })
        .collect();
    let newly_dead: Vec<String> = covid_persons
        .iter()
        .filter(|p| t.persons[*p].1.is_none() && linked.contains(*p))
        .take(3)
        .cloned()
        .collect();
    assert_eq!(newly_dead.len(), 3);
    let newly_dead: BTreeSet<String> = newly_dead.into_iter().collect();
    let new_death = day("2021-11-01");
    let mut deaths: BTreeMap<String, i32> = t
        .persons
        .iter()
        .filter_map(|(p, (_, d))| d.map(|d| (p.clone(), d)))
        .collect();
    let registry_in = f.input().join("sources/registry/registry.csv");
    let registry_out = f.dir.path().join("registry-2027.csv");
    {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&registry_in)
            .unwrap();
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_path(&registry_out)
            .unwrap();
        let dead_atena: BTreeSet<&str> =
            newly_dead.iter().map(|p| t.persons[p].0.as_str()).collect();
        let mut changed = BTreeSet::new();
        for (i, r) in rdr.records().enumerate() {
            let mut r: Vec<String> = r.unwrap().iter().map(str::to_string).collect();
            let atena = r[0].trim().trim_start_matches('0').to_string();
            if i > 0 && dead_atena.contains(atena.as_str()) {
                r[9] = "死亡".into();
                r[10] = "2021-11-01".into();
                changed.insert(atena);
            }
            w.write_record(&r).unwrap();
        }
        // A row the layout cannot read: counted in the certificate, not silently dropped.
        w.write_record(["1"]).unwrap();
        w.flush().unwrap();
        for p in &newly_dead {
            if changed.contains(&t.persons[p].0) {
                deaths.insert(p.clone(), new_death);
            }
        }
    }

    // Submissions: every COVID record of the dead persons, by 宛名番号 for half of the
    // persons and by record id for the others; one person provided late (after as-of),
    // one never.
    let dead_covid: Vec<String> = covid_persons
        .iter()
        .filter(|p| deaths.contains_key(*p))
        .cloned()
        .collect();
    assert!(
        dead_covid.len() >= 4,
        "too few deceased COVID persons: {}",
        dead_covid.len()
    );
    assert!(
        newly_dead.iter().all(|p| deaths.get(p) == Some(&new_death)),
        "the registry update did not mark the newly dead"
    );
    let mut provided: BTreeMap<String, i32> = BTreeMap::new(); // record id → date
    let mut csv_text = String::from("record_id,atena_number,atena_hash,provided_date\n");
    for (i, p) in dead_covid.iter().enumerate() {
        // The newly dead (2021-11-01) are provided in time; the others: never, late, in time.
        let date = if newly_dead.contains(p) {
            Some("2026-07-01")
        } else {
            [None, Some("2030-01-10"), Some("2026-07-01")][i % 3]
        };
        let Some(date) = date else { continue };
        let recs: Vec<&String> = before
            .keys()
            .filter(|id| {
                t.rows
                    .get(*id)
                    .is_some_and(|(pp, v, _)| pp == p && v == "COVID19")
            })
            .collect();
        if i % 2 == 0 {
            csv_text.push_str(&format!(",{},,{date}\n", t.persons[p].0));
        } else {
            for id in &recs {
                csv_text.push_str(&format!("{id},,,{date}\n"));
            }
        }
        for id in recs {
            provided.insert(id.clone(), day(date));
        }
    }
    let subs = f.dir.path().join("submissions.csv");
    std::fs::write(&subs, csv_text).unwrap();

    // The oracle, from the truth alone.
    let as_of = day(AS_OF);
    let mut expected = BTreeSet::new();
    for id in before.keys() {
        let (p, v, vdate) = t
            .rows
            .get(id)
            .unwrap_or_else(|| panic!("archived record without a truth row"));
        if oracle_expired(
            v,
            *vdate,
            deaths.get(p).copied(),
            provided.get(id).copied(),
            as_of,
        ) {
            expected.insert(id.clone());
        }
    }
    assert!(!expected.is_empty() && expected.len() < before.len());
    let covid_expected = expected
        .iter()
        .filter(|id| t.rows[*id].1 == "COVID19")
        .count();
    eprintln!(
        "oracle: {} of {} records expired, {covid_expected} COVID; {} deceased COVID persons",
        expected.len(),
        before.len(),
        dead_covid.len()
    );
    assert!(
        covid_expected > 0,
        "the oracle expects no COVID record: weak test"
    );

    // Dry run changes nothing.
    let snapshot: Vec<(std::path::PathBuf, Vec<u8>)> = files_under(&archive)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let out = run_ok(&mut purge_cmd(
        &f,
        &archive,
        &[
            "--dry-run".as_ref(),
            "--registry-update".as_ref(),
            registry_out.as_os_str(),
            "--national-db-submissions".as_ref(),
            subs.as_os_str(),
        ],
    ));
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dry["erased"]["records"].as_u64().unwrap(),
        expected.len() as u64,
        "{dry}"
    );
    let after_dry: Vec<(std::path::PathBuf, Vec<u8>)> = files_under(&archive)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(snapshot == after_dry, "dry run changed the archive");

    // An object left by an interrupted run is removed first.
    let stray = archive.join("keys/ffffffffffffffff.key.age");
    std::fs::write(&stray, b"left by a killed run").unwrap();

    let out = run_ok(&mut purge_cmd(
        &f,
        &archive,
        &[
            "--registry-update".as_ref(),
            registry_out.as_os_str(),
            "--national-db-submissions".as_ref(),
            subs.as_os_str(),
        ],
    ));
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!stray.exists());
    assert_eq!(o["recovered_objects"], 1);
    assert_eq!(o["verification"]["passed"], true, "{o}");
    let after = records(&archive, &f.key("custodian-1.key"));
    let purged: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(purged, expected, "purged set differs from the oracle's");
    // Nothing unexpired touched: every survivor is unchanged, and nothing new appeared.
    assert_eq!(after.len() + purged.len(), before.len());
    for (id, r) in &after {
        assert!(before.get(id) == Some(r), "a surviving record changed");
    }
    verify_ok(&f, &archive);

    // The certificate verifies; no personal value in it.
    let cert = archive.join("certificates/000002-purge.json");
    let c = cert_verify(&f, &archive, &cert);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stdout));
    let found = crate::matcher(&crate::personal_values(&f.input()));
    for p in [
        "certificates/000002-purge.json",
        "certificates/000002-purge.md",
    ] {
        assert!(
            found
                .find(&std::fs::read(archive.join(p)).unwrap())
                .is_none(),
            "personal value in {p}"
        );
    }
    let cj: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    assert_eq!(
        cj["erased"]["records"].as_u64().unwrap(),
        expected.len() as u64
    );
    assert_eq!(cj["sanitization"]["method_type"], "Purge");
    let unreadable: u64 = cj["request"]["registry_update_rows_unreadable"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        unreadable >= 1,
        "the short row is counted: {}",
        cj["request"]
    );
    // The purge's audit-log entry, with its inclusion proof.
    assert_eq!(
        cj["audit"]["index"].as_u64(),
        Some(cj["audit"]["size"].as_u64().unwrap() - 1)
    );
    assert!(cj["audit"]["inclusion_proof"].is_array());
    assert!(cj["audit"]["entry"]
        .as_str()
        .unwrap()
        .contains("\"command\":\"purge\""));
    assert!(cj["destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["role"] == "key"));

    // The same purge again changes nothing.
    let out = run_ok(&mut purge_cmd(
        &f,
        &archive,
        &[
            "--registry-update".as_ref(),
            registry_out.as_os_str(),
            "--national-db-submissions".as_ref(),
            subs.as_os_str(),
        ],
    ));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["erased"]["records"], 0);
    assert_eq!(again["generation"], 2);
    assert!(again["certificate"].is_null());

    // Put a destroyed object back: the certificate no longer verifies and names it.
    let destroyed = cj["destroyed"][0]["path"].as_str().unwrap().to_string();
    let original = snapshot
        .iter()
        .find(|(p, _)| p.ends_with(&destroyed))
        .unwrap();
    std::fs::write(archive.join(&destroyed), &original.1).unwrap();
    let c = cert_verify(&f, &archive, &cert);
    assert_eq!(c.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&c.stdout).contains(&destroyed));
    std::fs::remove_file(archive.join(&destroyed)).unwrap();
    assert!(cert_verify(&f, &archive, &cert).status.success());

    // Alter the certificate: the signature fails, naming the file.
    let altered = String::from_utf8(std::fs::read(&cert).unwrap())
        .unwrap()
        .replacen("\"Purge\"", "\"Clear\"", 1);
    std::fs::write(&cert, altered).unwrap();
    let c = cert_verify(&f, &archive, &cert);
    assert_eq!(c.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&c.stdout).contains("000002-purge.json"));
}

#[test]
fn erase_makes_a_person_unrecoverable_and_a_second_purge_refuses_while_locked() {
    let f = Fixture::new(200, 12);
    let (archive, _) = f.migrate("archive");
    let schema = Schema::embedded();
    let before = records(&archive, &f.key("custodian-1.key"));
    // A person linked to the registry with several records.
    let (ra, ph) = (
        schema.idx("registry_atena_number"),
        schema.idx("person_hash"),
    );
    let mut by_atena: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in before.values() {
        if let Some(a) = r.at(ra).as_str() {
            by_atena.entry(a.to_string()).or_default().push(r);
        }
    }
    let (atena, recs) = by_atena.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let person = recs[0].at(ph).as_str().unwrap().to_string();
    let erased: BTreeSet<String> = before
        .iter()
        .filter(|(_, r)| r.at(ph).as_str() == Some(&person))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(erased.len() >= 2);

    // Positive control: before the erase, the scan does find them.
    assert_eq!(recoverable(&f, &archive, &erased).0, erased.len());

    // Locked: refuses, changes nothing.
    std::fs::write(archive.join("LOCK"), b"{}").unwrap();
    let mut c = vaxarc();
    c.arg("erase")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"));
    c.args([
        "--operator",
        "op",
        "--reason",
        "deletion request 17",
        "--atena",
        atena,
        "--json",
    ])
    .arg("--signing-key")
    .arg(f.key("signing.key"));
    let locked = c.output().unwrap();
    assert_eq!(locked.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&locked.stderr).contains("locked"));
    assert!(!String::from_utf8_lossy(&locked.stderr).contains(atena.as_str()));
    let p = purge_cmd(&f, &archive, &[]).output().unwrap();
    assert_eq!(p.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&p.stderr).contains("LOCK"));
    std::fs::remove_file(archive.join("LOCK")).unwrap();

    let out = run_ok(&mut c);
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        o["erased"]["records"].as_u64().unwrap(),
        erased.len() as u64
    );
    assert_eq!(o["verification"]["passed"], true, "{o}");
    assert!(!archive.join("LOCK").exists());
    let after = records(&archive, &f.key("custodian-1.key"));
    assert_eq!(after.len(), before.len() - erased.len());
    assert!(erased.iter().all(|id| !after.contains_key(id)));
    verify_ok(&f, &archive);
    let cert = archive.join("certificates/000002-erase.json");
    assert!(cert_verify(&f, &archive, &cert).status.success());
    // The certificate's signature verifies with the standard minisign CLI too.
    let status = std::process::Command::new("minisign")
        .arg("-Vm")
        .arg(&cert)
        .arg("-p")
        .arg(f.key("signing.pub"))
        .arg("-q")
        .status()
        .expect("minisign is installed by .ci/run");
    assert!(
        status.success(),
        "minisign -V rejected the erasure certificate"
    );

    // No key left in the archive opens any object holding an erased record id.
    let (found, opened) = recoverable(&f, &archive, &erased);
    assert!(opened > 10);
    assert_eq!(found, 0, "erased record ids can still be decrypted");
    // A lookup of the erased person finds nothing (and is itself audited).
    let lookup = vaxarc()
        .arg("lookup")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .args([
            "--operator",
            "op",
            "--purpose",
            "証明書交付",
            "--format",
            "json",
            "--atena",
            atena,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&lookup.stdout);
    assert!(
        lookup.status.success(),
        "{}",
        String::from_utf8_lossy(&lookup.stderr)
    );
    let found: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found["status"], "not_found", "{found}");
    assert!(
        found["persons"].as_array().is_none_or(|p| p.is_empty()),
        "{found}"
    );
    assert!(erased.iter().all(|id| !text.contains(id.as_str())));
    // The certificate's audit receipt is in the log, and a deleted log entry is caught.
    let log = archive.join("audit/log-00000000.jsonl");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let shortened: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(&log, shortened).unwrap();
    assert_eq!(cert_verify(&f, &archive, &cert).status.code(), Some(1));
    std::fs::write(&log, original).unwrap();
    assert!(cert_verify(&f, &archive, &cert).status.success());
    // Erasing again finds nobody.
    let again = c.output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no person"));
}

/// Try every wrapped key of the archive with every test identity, decrypt every object
/// with every key obtained, read it as Parquet and collect the erased record ids found
/// (in `record_id` columns). Returns (ids found, objects opened).
fn recoverable(f: &Fixture, archive: &Path, erased: &BTreeSet<String>) -> (usize, usize) {
    use arrow::array::{Array, StringArray};
    let ids = vaxarc::keys::load_identities(
        &[
            f.key("custodian-1.key"),
            f.key("vault.key"),
            f.key("custodian-2.key"),
        ],
        false,
    )
    .unwrap();
    let mut object_keys = Vec::new();
    for file in files_under(archive) {
        if file.to_string_lossy().ends_with(".key.age") {
            if let Ok(k) = crypto::unwrap_key("k", &ids, &std::fs::read(&file).unwrap()) {
                object_keys.push(k);
            }
        }
    }
    let needles = crate::matcher(&erased.iter().cloned().collect::<Vec<_>>());
    let mut found = BTreeSet::new();
    let mut opened = 0;
    for file in files_under(archive) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            needles.find(&bytes).is_none(),
            "an erased record id in clear in {}",
            file.display()
        );
        if !file.to_string_lossy().ends_with(".parquet.age") {
            continue;
        }
        for k in &object_keys {
            let Ok(plain) = crypto::decrypt("o", std::slice::from_ref(k), &bytes) else {
                continue;
            };
            opened += 1;
            for b in archive::read_parquet("o", plain).unwrap() {
                let Some(col) = b
                    .column_by_name("record_id")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                else {
                    continue;
                };
                for i in 0..col.len() {
                    if col.is_valid(i) && erased.contains(col.value(i)) {
                        found.insert(col.value(i).to_string());
                    }
                }
            }
        }
    }
    (found.len(), opened)
}

#[test]
fn killed_purges_leave_the_old_or_new_state_and_rerun_to_the_same_result() {
    let f = Fixture::new(250, 52);
    let (reference, _) = f.migrate("reference");
    let started = std::time::Instant::now();
    run_ok(&mut purge_cmd(&f, &reference, &[]));
    let full = started.elapsed();
    let expected: BTreeSet<String> = records(&reference, &f.key("custodian-1.key"))
        .into_keys()
        .collect();
    let before_count = {
        let (fresh, _) = f.migrate("count");
        records(&fresh, &f.key("custodian-1.key")).len()
    };
    assert!(
        expected.len() < before_count,
        "the purge must erase something for this test to mean anything"
    );
    let mut recovered = 0;
    for i in 0..crate::KILL_POINTS {
        let (archive, _) = f.migrate(&format!("killed{i}"));
        let mut child = purge_cmd(&f, &archive, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(crate::kill_point(full, i));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // The committed state is intact: every problem verify reports is a leftover of
        // the interrupted run (an unlisted object), never a missing or changed object.
        let v = vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--json")
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        // Leftovers, or a commit interrupted between its two puts (rerun completes it).
        for p in report["problems"].as_array().unwrap() {
            let problem = p["problem"].as_str().unwrap();
            assert!(
                problem.contains("not listed") || problem.contains("an interrupted commit"),
                "kill point {i}: {p}"
            );
        }
        // The operator removes the stale lock (docs/purge.md) and runs the purge again.
        let _ = std::fs::remove_file(archive.join("LOCK"));
        run_ok(&mut purge_cmd(&f, &archive, &[]));
        verify_ok(&f, &archive);
        recovered += u32::from(certified(&f, &archive, "purge", i));
        let got: BTreeSet<String> = records(&archive, &f.key("custodian-1.key"))
            .into_keys()
            .collect();
        assert_eq!(got, expected, "kill point {i}");
    }
    eprintln!(
        "{recovered} of {} kill points certified on recovery",
        crate::KILL_POINTS
    );
}

/// Every generation after the first has its certificate (a run killed after its commit is
/// certified by the rerun) that `certificate verify` accepts, and no pending object is
/// left. Whether one of them was issued on recovery.
fn certified(f: &Fixture, archive: &Path, kind: &str, i: u32) -> bool {
    let mut recovered = false;
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let generation = m["generation"].as_u64().unwrap();
    assert!(generation >= 2, "kill point {i}: the rerun committed");
    for g in 2..=generation {
        let cert = archive.join(format!("certificates/{g:06}-{kind}.json"));
        assert!(
            cert.is_file(),
            "kill point {i}: no certificate of generation {g}"
        );
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
        assert_eq!(
            c["sanitization"]["verification"]["passed"], true,
            "kill point {i}"
        );
        recovered |= c["recovered"].is_string();
        let checked = cert_verify(f, archive, &cert);
        assert!(
            checked.status.success(),
            "kill point {i}: generation {g}: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
    }
    let pending: Vec<PathBuf> = files_under(&archive.join("history"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("pending"))
        .collect();
    assert!(pending.is_empty(), "kill point {i}: {pending:?}");
    recovered
}

#[test]
fn killed_erasures_leave_the_old_or_new_state_and_rerun_to_the_same_result() {
    let f = Fixture::new(150, 53);
    let (reference, _) = f.migrate("reference");
    let schema = Schema::embedded();
    let all = records(&reference, &f.key("custodian-1.key"));
    let ra = schema.idx("registry_atena_number");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in all.values() {
        if let Some(a) = r.at(ra).as_str() {
            *counts.entry(a.to_string()).or_default() += 1;
        }
    }
    let atena = counts.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    let erase = |archive: &Path| {
        erase_cmd(
            &f,
            archive,
            "deletion request",
            &["--atena", &atena, "--quiet"],
        )
    };
    let started = std::time::Instant::now();
    run_ok(&mut erase(&reference));
    let full = started.elapsed();
    let expected: BTreeSet<String> = records(&reference, &f.key("custodian-1.key"))
        .into_keys()
        .collect();
    assert!(expected.len() < all.len());
    let mut recovered = 0;
    for i in 0..crate::KILL_POINTS {
        let (archive, _) = f.migrate(&format!("killed{i}"));
        let mut child = erase(&archive)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(crate::kill_point(full, i));
        let _ = child.kill();
        let _ = child.wait();
        let v = vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--json")
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        // Only an interrupted run's leftovers, or a commit interrupted between its two puts
        // (the next generation's signature in place), which the rerun completes.
        for p in report["problems"].as_array().unwrap() {
            let problem = p["problem"].as_str().unwrap();
            assert!(
                problem.contains("not listed") || problem.contains("an interrupted commit"),
                "kill point {i}: {p}"
            );
        }
        let _ = std::fs::remove_file(archive.join("LOCK"));
        let again = erase(&archive).output().unwrap();
        if !again.status.success() {
            // The killed run had committed: the re-run cleans up and finds nobody left.
            assert!(
                String::from_utf8_lossy(&again.stderr).contains("no person"),
                "kill point {i}"
            );
        }
        verify_ok(&f, &archive);
        recovered += u32::from(certified(&f, &archive, "erase", i));
        let got: BTreeSet<String> = records(&archive, &f.key("custodian-1.key"))
            .into_keys()
            .collect();
        assert_eq!(got, expected, "kill point {i}");
    }
    eprintln!(
        "{recovered} of {} kill points certified on recovery",
        crate::KILL_POINTS
    );
}

/// One list object (`review` or `quarantine`) of an archive, decrypted with the custodian
/// identity (through the archive's own files, not vaxarc's list code).
fn open_list(
    archive: &Path,
    custodian: &Path,
    role: &str,
) -> Vec<arrow::record_batch::RecordBatch> {
    let ids = vaxarc::keys::load_identities(&[custodian.to_path_buf()], false).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let path_of = |role: &str| {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["role"] == role)
            .map(|f| archive.join(f["path"].as_str().unwrap()))
            .unwrap()
    };
    let key = crypto::unwrap_key(
        "k",
        &ids,
        &std::fs::read(path_of(&format!("{role}-key"))).unwrap(),
    )
    .unwrap();
    let plain = crypto::decrypt("o", &[key], &std::fs::read(path_of(role)).unwrap()).unwrap();
    archive::read_parquet("o", plain).unwrap()
}

/// The review list `(record_id, candidate_atena_number)` and the quarantined rows' raw
/// bytes of an archive.
fn lists(archive: &Path, custodian: &Path) -> (Vec<(String, String)>, Vec<Vec<u8>>) {
    use arrow::array::{Array, BinaryArray, StringArray};
    let open = |role: &str| open_list(archive, custodian, role);
    let mut review = Vec::new();
    for b in open("review") {
        let col = |c: &str| {
            b.column_by_name(c)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (r, c) = (col("record_id"), col("candidate_atena_number"));
        for i in 0..b.num_rows() {
            review.push((r.value(i).to_string(), c.value(i).to_string()));
        }
    }
    let mut quarantine = Vec::new();
    for b in open("quarantine") {
        let raw = b.column_by_name("raw").unwrap();
        let raw = raw.as_any().downcast_ref::<BinaryArray>().unwrap();
        for i in 0..raw.len() {
            quarantine.push(raw.value(i).to_vec());
        }
    }
    (review, quarantine)
}

/// The quarantined rows of an archive: raw bytes, 接種日 and vaccine code as migrate
/// read them.
type QuarantineFacts = Vec<(Vec<u8>, Option<i32>, Option<String>)>;

fn quarantine_facts(archive: &Path, custodian: &Path) -> QuarantineFacts {
    use arrow::array::{Array, BinaryArray, Date32Array, StringArray};
    let mut out = Vec::new();
    for b in open_list(archive, custodian, "quarantine") {
        let col = |c: &str| b.column_by_name(c).unwrap().clone();
        let (raw, date, code) = (col("raw"), col("vaccination_date"), col("vaccine_code"));
        let raw = raw.as_any().downcast_ref::<BinaryArray>().unwrap();
        let date = date.as_any().downcast_ref::<Date32Array>().unwrap();
        let code = code.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..raw.len() {
            out.push((
                raw.value(i).to_vec(),
                date.is_valid(i).then(|| date.value(i)),
                code.is_valid(i).then(|| code.value(i).to_string()),
            ));
        }
    }
    out
}

/// Whether the test's oracle says a quarantined row has expired on `as_of` (no death or
/// provision date: a COVID-19 dose of the special period never does).
fn quarantined_expired(
    (_, date, code): &(Vec<u8>, Option<i32>, Option<String>),
    as_of: i32,
) -> bool {
    code.as_deref()
        .is_some_and(|v| oracle_expired(v, *date, None, None, as_of))
}

/// What an erasure takes from the quarantine list, as this test reads it: a whole field
/// that is one of the person's 宛名番号 (leading zeros and width ignored) or 接種券番号, or
/// one of their names (by the match keys linking uses) in a row that also holds their
/// birth date.
fn quarantined_row_names(raw: &[u8], person: &PersonIds) -> bool {
    use unicode_normalization::UnicodeNormalization;
    use vaxarc::normalise::{self, Kind, Tables};
    let text = match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(raw).0.into_owned(),
    };
    let by_number = text.split(',').any(|f| {
        let f: String = f.nfkc().collect();
        let f = f.trim().trim_matches('"').trim();
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let stripped = f.trim_start_matches('0');
        person
            .atena
            .contains(if stripped.is_empty() { "0" } else { stripped })
            || (f.len() == 10 && person.tickets.contains(f))
    });
    let t = Tables::embedded();
    let fields: Vec<&str> = text.split(',').map(|f| f.trim_matches('"')).collect();
    let births: BTreeSet<i32> = fields
        .iter()
        .filter_map(|f| normalise::normalise(Kind::Date, f, t).ok()?.value.as_date())
        .collect();
    let by_name = fields.iter().any(|f| {
        [normalise::kana_key(f), normalise::kanji_key(f, t)]
            .iter()
            .any(|k| {
                !k.is_empty()
                    && births
                        .iter()
                        .any(|b| person.names.contains(&(k.clone(), *b)))
            })
    });
    by_number || by_name
}

/// A person's record ids, 宛名番号, ticket numbers and (name match key, birth date) pairs.
#[derive(Default)]
struct PersonIds {
    records: BTreeSet<String>,
    atena: BTreeSet<String>,
    tickets: BTreeSet<String>,
    names: BTreeSet<(String, i32)>,
}

/// Append rows to the first UTF-8 ledger source (by file name, among those `wanted`) with a
/// plain row (no quotes, every field) that `make(header, row)` accepts: the rows it gives
/// go at the end of the file, in its line ending. Returns the file and those rows.
fn append_to_ledger(
    input: &Path,
    wanted: impl Fn(&Path) -> bool,
    mut make: impl FnMut(&[&str], &str) -> Option<Vec<Vec<u8>>>,
) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let mut files: Vec<_> = std::fs::read_dir(input.join("sources/ledger"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| wanted(p))
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = body.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        for line in lines {
            if line.contains('"') || line.split(',').count() != header.len() {
                continue;
            }
            let Some(rows) = make(&header, line) else {
                continue;
            };
            let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
            let mut out = bytes.clone();
            if !text.ends_with('\n') {
                out.extend_from_slice(newline.as_bytes());
            }
            for row in &rows {
                out.extend_from_slice(row);
                out.extend_from_slice(newline.as_bytes());
            }
            std::fs::write(&path, out).unwrap();
            return (path, rows);
        }
    }
    panic!("no UTF-8 ledger source with a plain row");
}

/// Append to a UTF-8 ledger source a copy of one of its rows with the 宛名番号, the
/// integrated 宛名番号 and the 個人番号 blanked and one field too many: a row quarantined
/// (wrong column count) that names its person only by name and birth date. Returns the
/// row's original 宛名番号 and the raw row as the quarantine list keeps it.
fn add_name_only_row(input: &Path) -> (String, Vec<u8>) {
    let mut atena = String::new();
    let (_, mut rows) = append_to_ledger(
        input,
        |_| true,
        |header, line| {
            let col = |h: &str| header.iter().position(|x| *x == h).unwrap();
            let mut fields: Vec<&str> = line.split(',').collect();
            if fields[0].is_empty() || !fields[0].bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            atena = fields[0].to_string();
            for i in [col("宛名番号"), col("団体内統合宛名番号"), col("個人番号")]
            {
                fields[i] = "";
            }
            fields.push("x");
            Some(vec![fields.join(",").into_bytes()])
        },
    );
    (atena, rows.remove(0))
}

#[test]
fn purge_and_erase_take_the_list_rows_of_what_they_erase() {
    // Dirtier than the default, so that a thousand people give possible matches to review
    // (VRS records without a 宛名番号 or 個人番号 — numbers that differ from a resident's keep
    // a record from being their candidate — whose kana has a typo).
    let f = Fixture::with_dirt(
        1000,
        23,
        "[dirt]\nvrs_atena_blank = 0.6\nkana_typo = 0.3\nnot_in_registry = 0.2\nkojin_missing = 0.8\n",
    );
    let (name_only_atena, name_only_row) = add_name_only_row(&f.input());
    let (archive, _) = f.migrate("archive");
    let c1 = f.key("custodian-1.key");
    let schema = Schema::embedded();
    let before = records(&archive, &c1);
    let (review0, quarantine0) = lists(&archive, &c1);
    let facts0 = quarantine_facts(&archive, &c1);
    assert!(quarantine0.contains(&name_only_row));
    assert!(review0.iter().all(|(id, _)| before.contains_key(id)));

    // A purge: the review rows of purged records go (here none: the records under review
    // are unlinked COVID records, which never expire) and the quarantined rows whose
    // retention ran out by the oracle; nothing else in either list.
    let out = run_ok(&mut purge_cmd(&f, &archive, &[]));
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["verification"]["passed"], true, "{o}");
    assert!(o["erased"]["records"].as_u64().unwrap() > 0);
    let mut recs = records(&archive, &c1);
    let (mut review, mut quarantine) = lists(&archive, &c1);
    let expected: Vec<(String, String)> = review0
        .iter()
        .filter(|(id, _)| recs.contains_key(id))
        .cloned()
        .collect();
    assert_eq!(review, expected);
    let kept: Vec<Vec<u8>> = facts0
        .iter()
        .filter(|q| !quarantined_expired(q, day(AS_OF)))
        .map(|q| q.0.clone())
        .collect();
    assert_eq!(quarantine, kept);
    assert!(quarantine.contains(&name_only_row));
    assert_eq!(
        o["review_rows_removed"].as_u64(),
        Some((review0.len() - review.len()) as u64)
    );
    assert_eq!(
        o["quarantine_rows_removed"].as_u64(),
        Some((quarantine0.len() - quarantine.len()) as u64)
    );
    let cert = |g: u32, kind: &str| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(archive.join(format!("certificates/{g:06}-{kind}.json"))).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        cert(2, "purge")["sanitization"]["verification"]["list_rows_remaining"],
        0
    );

    // Erasures, each checked against the test's own reading of the lists: the review rows
    // of the person's records or naming their 宛名番号 as the candidate go, and the
    // quarantined rows holding their 宛名番号 or ticket number; nothing else.
    let (ra, an, tn, mc, ph, rid) = (
        schema.idx("registry_atena_number"),
        schema.idx("atena_number"),
        schema.idx("ticket_number"),
        schema.idx("municipality_code"),
        schema.idx("person_hash"),
        schema.idx("record_id"),
    );
    let (kana, kanji, birth) = (
        schema.idx("kana_name"),
        schema.idx("kanji_name"),
        schema.idx("birth_date"),
    );
    let person_ids = |recs: &BTreeMap<String, Record>, person: &str| -> PersonIds {
        let t = vaxarc::normalise::Tables::embedded();
        let mut ids = PersonIds::default();
        for r in recs.values().filter(|r| r.at(ph).as_str() == Some(person)) {
            ids.records.insert(r.at(rid).as_str().unwrap().to_string());
            for i in [ra, an] {
                if let Some(a) = r.at(i).as_str() {
                    ids.atena.insert(a.to_string());
                }
            }
            if let Some(t) = r.at(tn).as_str() {
                ids.tickets.insert(t.to_string());
            }
            if let Some(b) = r.at(birth).as_date() {
                for n in [r.at(kana).as_str(), r.at(kanji).as_str()]
                    .into_iter()
                    .flatten()
                {
                    for k in [
                        vaxarc::normalise::kana_key(n),
                        vaxarc::normalise::kanji_key(n, t),
                    ] {
                        if !k.is_empty() {
                            ids.names.insert((k, b));
                        }
                    }
                }
            }
        }
        ids
    };
    let person_of = |recs: &BTreeMap<String, Record>, pick: &dyn Fn(&Record) -> bool| {
        recs.values()
            .filter(|r| pick(r))
            .filter_map(|r| r.at(ph).as_str().map(str::to_string))
            .next()
    };
    // 1. The person of a record under review, by its ticket; 2. a registry person named as
    // a review candidate, by 宛名番号; 3. a linked person with a quarantined row.
    let review_ids: BTreeSet<&String> = review.iter().map(|r| &r.0).collect();
    let under_review = person_of(&recs, &|r| {
        review_ids.contains(&r.at(rid).as_str().unwrap().to_string())
            && r.at(tn).as_str().is_some()
            && r.at(mc).as_str().is_some()
    })
    .expect("a record under review with a ticket number");
    let candidates: BTreeSet<&String> = review.iter().map(|r| &r.1).collect();
    let candidate = person_of(&recs, &|r| {
        r.at(ra)
            .as_str()
            .is_some_and(|a| candidates.contains(&a.to_string()))
    })
    .expect("a review candidate with records");
    let mut quarantined = None;
    for r in recs.values().filter(|r| r.at(ra).as_str().is_some()) {
        let p = r.at(ph).as_str().unwrap();
        if quarantine
            .iter()
            .any(|q| quarantined_row_names(q, &person_ids(&recs, p)))
        {
            quarantined = Some(p.to_string());
            break;
        }
    }
    let quarantined = quarantined.expect("a linked person with a quarantined row");
    // 4. The person of the row that names them only by name and birth date.
    let named_only = person_of(&recs, &|r| {
        [ra, an]
            .iter()
            .any(|&i| r.at(i).as_str() == Some(name_only_atena.as_str()))
    })
    .expect("the person of the name-only row has records");
    let mut generation = 2;
    let mut removed = [0usize; 2];
    for person in [under_review, candidate, quarantined, named_only] {
        let r = recs
            .values()
            .find(|r| r.at(ph).as_str() == Some(&person))
            .unwrap();
        let by: Vec<String> = match r.at(ra).as_str() {
            Some(a) => vec!["--atena".into(), a.to_string()],
            None => vec![
                "--ticket".into(),
                format!(
                    "{}:{}",
                    r.at(mc).as_str().unwrap(),
                    r.at(tn).as_str().unwrap()
                ),
            ],
        };
        let out = run_ok(
            vaxarc()
                .arg("erase")
                .arg("--archive")
                .arg(&archive)
                .arg("--identity")
                .arg(&c1)
                .arg("--identity")
                .arg(f.key("vault.key"))
                .args(["--operator", "op", "--reason", "deletion request 18"])
                .args(&by)
                .arg("--json")
                .arg("--signing-key")
                .arg(f.key("signing.key")),
        );
        let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(o["verification"]["passed"], true, "{o}");
        generation += 1;
        // The person, and any unlinked key of theirs the erase joined (`persons_joined`).
        let after = records(&archive, &c1);
        let gone: BTreeSet<String> = recs
            .iter()
            .filter(|(id, _)| !after.contains_key(*id))
            .map(|(_, r)| r.at(ph).as_str().unwrap().to_string())
            .collect();
        assert!(gone.contains(&person));
        assert_eq!(
            gone.len() as u64,
            1 + o["persons_joined"].as_u64().unwrap(),
            "{o}"
        );
        // Keys named as left are not erased and still hold records.
        for p in o["persons_left"].as_array().expect("persons_left") {
            let p = p.as_str().unwrap();
            assert!(!gone.contains(p), "{o}");
            assert!(after.values().any(|r| r.at(ph).as_str() == Some(p)), "{o}");
        }
        let mut ids = PersonIds::default();
        for p in &gone {
            let more = person_ids(&recs, p);
            ids.records.extend(more.records);
            ids.atena.extend(more.atena);
            ids.tickets.extend(more.tickets);
            ids.names.extend(more.names);
        }
        let (theirs, atena) = (&ids.records, &ids.atena);
        let (r2, q2) = lists(&archive, &c1);
        let kept_r: Vec<(String, String)> = review
            .iter()
            .filter(|(id, cand)| !theirs.contains(id) && !atena.contains(cand))
            .cloned()
            .collect();
        let kept_q: Vec<Vec<u8>> = quarantine
            .iter()
            .filter(|q| !quarantined_row_names(q, &ids))
            .cloned()
            .collect();
        assert_eq!(r2, kept_r);
        assert_eq!(q2, kept_q);
        // A record whose review row named the person stays, and its key is named as left.
        let left: BTreeSet<&str> = o["persons_left"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for (id, _) in review
            .iter()
            .filter(|(id, cand)| atena.contains(cand) && !theirs.contains(id))
        {
            let key = recs[id].at(ph).as_str().unwrap();
            assert!(after.contains_key(id) && left.contains(key), "{o}");
        }
        assert_eq!(
            o["review_rows_removed"].as_u64(),
            Some((review.len() - r2.len()) as u64)
        );
        assert_eq!(
            o["quarantine_rows_removed"].as_u64(),
            Some((quarantine.len() - q2.len()) as u64)
        );
        let c = cert(generation, "erase");
        assert_eq!(c["erased"]["review_rows_removed"], o["review_rows_removed"]);
        assert_eq!(
            c["erased"]["quarantine_rows_removed"],
            o["quarantine_rows_removed"]
        );
        let roles: BTreeSet<&str> = c["destroyed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles.contains("review") && roles.contains("review-key"),
            r2.len() < review.len()
        );
        assert_eq!(roles.contains("quarantine"), q2.len() < quarantine.len());
        let cert_path = archive.join(format!("certificates/{generation:06}-erase.json"));
        assert!(cert_verify(&f, &archive, &cert_path).status.success());
        removed[0] += review.len() - r2.len();
        removed[1] += quarantine.len() - q2.len();
        (review, quarantine) = (r2, q2);
        recs = after;
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
        let ids: BTreeSet<&String> = review.iter().map(|r| &r.0).collect();
        assert_eq!(m["totals"]["review"].as_u64(), Some(ids.len() as u64));
        assert_eq!(
            m["totals"]["quarantined"].as_u64(),
            Some(quarantine.len() as u64)
        );
    }
    // Not vacuous: the erasures did take rows from both lists, the name-only row among them.
    assert!(removed[0] >= 2 && removed[1] >= 2, "{removed:?}");
    assert!(!quarantine.contains(&name_only_row));
    verify_ok(&f, &archive);

    // The whole quarantine list (its rows dealt with by staff):
    // every row goes, nothing else; a second run refuses and changes nothing.
    let erase_quarantine = || {
        let mut c = vaxarc();
        c.arg("erase")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(&c1)
            .args([
                "--operator",
                "op",
                "--reason",
                "quarantine corrected, run 2",
            ])
            .args(["--quarantine", "--json"])
            .arg("--signing-key")
            .arg(f.key("signing.key"));
        c
    };
    assert!(!quarantine.is_empty());
    let out = run_ok(&mut erase_quarantine());
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["verification"]["passed"], true, "{o}");
    assert_eq!(
        o["quarantine_rows_removed"].as_u64(),
        Some(quarantine.len() as u64)
    );
    assert_eq!(o["erased"]["records"].as_u64(), Some(0));
    let (r3, q3) = lists(&archive, &c1);
    assert!(q3.is_empty());
    assert_eq!(r3, review);
    assert_eq!(records(&archive, &c1).len(), recs.len());
    generation += 1;
    let c = cert(generation, "erase");
    assert_eq!(c["request"]["identifier_kind"], "quarantine");
    let roles: BTreeSet<&str> = c["destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["quarantine", "quarantine-key"]),
        "only the old list and its key"
    );
    let cert_path = archive.join(format!("certificates/{generation:06}-erase.json"));
    assert!(cert_verify(&f, &archive, &cert_path).status.success());
    verify_ok(&f, &archive);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(m["totals"]["quarantined"].as_u64(), Some(0));
    let committed = std::fs::read(archive.join("MANIFEST.json")).unwrap();
    let again = erase_quarantine().output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("quarantine list is empty"));
    assert_eq!(
        std::fs::read(archive.join("MANIFEST.json")).unwrap(),
        committed
    );
}

/// How a crafted copy of a ledger row is quarantined.
#[derive(Clone, Copy, PartialEq)]
enum Spoil {
    /// Its address holds a byte that is no character in UTF-8 or CP932.
    Undecodable,
    /// It has one field too many (its columns cannot be trusted).
    ExtraField,
}

/// Append to the first UTF-8 ledger source other than COVID-19 one copy of one of its
/// plain rows per `(接種日, spoil)`, the date written as given. Returns the source's
/// vaccine code (its file name) and each copy's bytes as the quarantine list keeps them.
fn add_quarantined_copies(input: &Path, copies: &[(&str, Spoil)]) -> (String, Vec<Vec<u8>>) {
    let (path, rows) = append_to_ledger(
        input,
        |p| !p.ends_with("COVID19.csv"),
        |header, line| {
            let col = |h: &str| header.iter().position(|x| *x == h).unwrap();
            let (date, address) = (col("接種日"), col("住所"));
            let rows = copies
                .iter()
                .map(|(vdate, spoil)| {
                    let mut fields: Vec<&[u8]> = line.split(',').map(str::as_bytes).collect();
                    fields[date] = vdate.as_bytes();
                    match spoil {
                        Spoil::Undecodable => fields[address] = b"\xFF\xFE",
                        Spoil::ExtraField => fields.push(b"x"),
                    }
                    fields.join(&b","[..])
                })
                .collect();
            Some(rows)
        },
    );
    let code = path.file_stem().unwrap().to_str().unwrap().to_string();
    (code, rows)
}

#[test]
fn a_purge_destroys_the_quarantined_rows_whose_retention_ran_out() {
    let f = Fixture::new(300, 31);
    // Every generated 接種日 is on or before 2024-09-30: a row vaccinated 2025-06-01 is
    // the last thing in the archive to expire (after 2030-06-01) other than COVID-19
    // doses of the special period, which never expire without a death date.
    let (code, rows) = add_quarantined_copies(
        &f.input(),
        &[
            ("2010-05-10", Spoil::Undecodable),
            ("2025-06-01", Spoil::Undecodable),
            ("2010-05-10", Spoil::ExtraField),
        ],
    );
    let (archive, _) = f.migrate("archive");
    let c1 = f.key("custodian-1.key");
    let facts0 = quarantine_facts(&archive, &c1);
    // Migrate read each copy's 接種日 and vaccine as its record's — except the copy whose
    // columns do not line up.
    let find = |facts: &QuarantineFacts, row: &[u8]| facts.iter().find(|q| q.0 == row).cloned();
    let fact = |i: usize| find(&facts0, &rows[i]).expect("the crafted row is quarantined");
    assert_eq!(fact(0).1, Some(day("2010-05-10")));
    assert_eq!(fact(1).1, Some(day("2025-06-01")));
    assert_eq!(fact(0).2.as_deref(), Some(code.as_str()));
    assert_eq!((fact(2).1, fact(2).2), (None, None));

    let purge = |as_of: &str| {
        let out = run_ok(&mut purge_cmd_as_of(&f, &archive, as_of, &[]));
        let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(o["verification"]["passed"], true, "{o}");
        assert_eq!(o["verification"]["list_rows_remaining"], 0, "{o}");
        o
    };
    let manifest = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap()
    };
    // Each purge removes exactly the rows the oracle says expired (the first crafted copy
    // among them at the first, the second alone at the second), keeps the rest, and
    // says so in its output, its certificate and the manifest's totals.
    let mut facts = facts0;
    for (generation, as_of) in [(2, "2030-06-01"), (3, "2030-06-02")] {
        let list_objects: Vec<String> = manifest()["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["role"] == "quarantine" || f["role"] == "quarantine-key")
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(list_objects.len(), 2);
        let o = purge(as_of);
        let expected: QuarantineFacts = facts
            .iter()
            .filter(|q| !quarantined_expired(q, day(as_of)))
            .cloned()
            .collect();
        let after = quarantine_facts(&archive, &c1);
        // Rows by a short hash of their bytes: a failure shows no row.
        let brief = |q: &QuarantineFacts| -> Vec<(String, Option<i32>, Option<String>)> {
            q.iter()
                .map(|(raw, d, c)| (blake3::hash(raw).to_hex()[..12].to_string(), *d, c.clone()))
                .collect()
        };
        assert_eq!(brief(&after), brief(&expected), "as of {as_of}");
        let removed = (facts.len() - after.len()) as u64;
        assert_eq!(o["quarantine_rows_removed"].as_u64(), Some(removed));
        assert_eq!(
            manifest()["totals"]["quarantined"].as_u64(),
            Some(after.len() as u64)
        );
        let cert_path = archive.join(format!("certificates/{generation:06}-purge.json"));
        let cert: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cert_path).unwrap()).unwrap();
        assert_eq!(
            cert["erased"]["quarantine_rows_removed"].as_u64(),
            Some(removed)
        );
        let v = cert_verify(&f, &archive, &cert_path);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        // The old list and its key are destroyed (key first) and named in the certificate.
        let destroyed: Vec<&str> = cert["destroyed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        for path in &list_objects {
            assert!(!archive.join(path).exists(), "{path}");
            assert!(destroyed.contains(&path.as_str()), "{path}");
        }
        if generation == 2 {
            assert!(o["erased"]["records"].as_u64().unwrap() > 0);
            assert!(find(&after, &rows[0]).is_none());
            assert!(find(&after, &rows[1]).is_some());
        } else {
            // Only the quarantined row expired: the purge still ran and certified it.
            assert_eq!(o["erased"]["records"].as_u64(), Some(0), "{o}");
            assert_eq!(removed, 1);
            assert!(find(&after, &rows[1]).is_none());
        }
        assert!(find(&after, &rows[2]).is_some());
        facts = after;
    }
    verify_ok(&f, &archive);
}

/// An identifier can reach two person keys: a person the registry does not know whose
/// VRS records carry a 個人番号 (keyed by it) and whose ledger records do not (keyed by
/// 宛名番号), both with the 宛名番号, which therefore reaches both (a lookup lists both).
/// Erased by the 個人番号, which reaches only the first, the second goes too (linked to no
/// resident, it shares the 宛名番号 and the birth date) — a lookup by the 個人番号 shows
/// both beforehand — and afterwards neither identifier finds anything.
#[test]
fn erase_by_an_identifier_takes_every_person_key_it_reaches() {
    let f = Fixture::new(800, 21);
    let (archive, _) = f.migrate("archive");
    let schema = Schema::embedded();
    let before = records(&archive, &f.key("custodian-1.key"));
    let (a, ra, ph) = (
        schema.idx("atena_number"),
        schema.idx("registry_atena_number"),
        schema.idx("person_hash"),
    );
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in before.values() {
        for i in [a, ra] {
            if let Some(v) = r.at(i).as_str().filter(|s| !s.is_empty()) {
                let person = r.at(ph).as_str().unwrap().to_string();
                keys.entry(v.to_string()).or_default().insert(person);
            }
        }
    }
    // Each person's 個人番号 (a vault item, not in the records read here), from the truth.
    let mut rdr = csv::Reader::from_path(f.input().join("truth/persons.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let c = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (ac, kc) = (c("atena_number"), c("kojin_bango"));
    let kojin_of: BTreeMap<String, String> = rdr
        .records()
        .map(|r| r.unwrap())
        .filter(|r| !r[kc].is_empty())
        .map(|r| (r[ac].to_string(), r[kc].to_string()))
        .collect();
    let lookup = |archive: &Path, flag: &str, value: &str| -> serde_json::Value {
        let out = run_ok(
            vaxarc()
                .arg("lookup")
                .arg("--archive")
                .arg(archive)
                .arg("--identity")
                .arg(f.key("custodian-1.key"))
                .args(["--operator", "op", "--purpose", "test", flag, value])
                .args(["--format", "json"]),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let persons_found = |archive: &Path, flag, value| -> BTreeSet<String> {
        lookup(archive, flag, value)["persons"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    // Whether any record of a person key carries a 個人番号 (the vault, shown to its role).
    let carries_kojin = |person: &str| -> bool {
        let out = run_ok(
            vaxarc()
                .arg("lookup")
                .arg("--archive")
                .arg(&archive)
                .arg("--identity")
                .arg(f.key("custodian-1.key"))
                .arg("--identity")
                .arg(f.key("vault.key"))
                .args(["--operator", "op", "--purpose", "test", "--person", person])
                .args([
                    "--role",
                    "vault_officer",
                    "--show-vault",
                    "--format",
                    "json",
                ]),
        );
        let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        a["person"].get("kojin_bango").is_some()
    };
    // A 宛名番号 reaching two person keys, one of them without the 個人番号 (a ledger key):
    // a lookup by the 個人番号 joins it (same birth date, kana, sex), as the erase does.
    let (atena, kojin, persons) = keys
        .iter()
        .filter(|(_, p)| p.len() >= 2)
        .find_map(|(atena, persons)| {
            let kojin = kojin_of.get(atena)?;
            let by_kojin = persons_found(&archive, "--kojin-bango", kojin);
            (by_kojin == *persons && !persons.iter().all(|p| carries_kojin(p)))
                .then(|| (atena.clone(), kojin.clone(), persons.clone()))
        })
        .expect("the fixture has a 宛名番号 reaching two person keys, one without its 個人番号");
    assert_eq!(persons_found(&archive, "--atena", &atena), persons);
    let erased: BTreeSet<String> = before
        .iter()
        .filter(|(_, r)| persons.contains(r.at(ph).as_str().unwrap()))
        .map(|(k, _)| k.clone())
        .collect();

    let out = run_ok(&mut erase_cmd(
        &f,
        &archive,
        "request 1",
        &["--kojin-bango", &kojin, "--json"],
    ));
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reached = persons.len() as u64;
    assert_eq!(
        o["persons_removed_from_index"].as_u64(),
        Some(reached),
        "{o}"
    );
    assert!(o["persons_joined"].as_u64().unwrap() >= 1, "{o}");
    assert_eq!(o["erased"]["records"].as_u64(), Some(erased.len() as u64));
    assert_eq!(o["verification"]["passed"], true, "{o}");
    let after = records(&archive, &f.key("custodian-1.key"));
    assert_eq!(after.len(), before.len() - erased.len());
    assert!(erased.iter().all(|id| !after.contains_key(id)));
    for (flag, value) in [("--atena", &atena), ("--kojin-bango", &kojin)] {
        assert_eq!(lookup(&archive, flag, value)["status"], "not_found");
    }
    // A commit interrupted between its two puts — generation 2's signature over generation
    // 1's manifest — is named as such by verify, not as a forged signature.
    std::fs::copy(
        archive.join("history/000001/MANIFEST.json"),
        archive.join("MANIFEST.json"),
    )
    .unwrap();
    let v = vaxarc()
        .args(["verify", "--json", "--archive"])
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("an interrupted commit"),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
}
