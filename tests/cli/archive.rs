//! migrate + verify: invariants (no plaintext PII, determinism, accounting), tamper
//! detection, crash leftovers, key refusals.

use std::path::{Path, PathBuf};

use crate::{files_under, personal_values, run_ok, vaxarc, Fixture};

fn manifest(archive: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap()
}

fn verify(archive: &Path, extra: &[&Path]) -> std::process::Output {
    let mut c = vaxarc();
    c.arg("verify").arg("--archive").arg(archive).arg("--json");
    for p in extra {
        c.arg("--identity").arg(p);
    }
    c.output().unwrap()
}

#[test]
fn archive_holds_no_plaintext_personal_data_and_output_neither() {
    let f = Fixture::new(200, 5);
    let (archive, out) = f.migrate("archive");
    let values = personal_values(&f.input());
    assert!(
        values.len() > 300,
        "too few values to scan: {}",
        values.len()
    );
    let found = crate::matcher(&values);
    // Positive control: the scanner does find the values where they are in clear.
    assert!(found
        .find(&std::fs::read(f.input().join("truth/persons.csv")).unwrap())
        .is_some());
    let mut scanned = 0;
    for file in files_under(&archive) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            found.find(&bytes).is_none(),
            "a personal value appears in plaintext in {}",
            file.display()
        );
        scanned += 1;
    }
    assert!(scanned > 10);
    // No temporary or staging files left beside the archive.
    for file in files_under(f.dir.path()) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.starts_with('.') && !name.contains("#"),
            "stray file {}",
            file.display()
        );
    }
    assert!(
        found.find(&out.stdout).is_none() && found.find(&out.stderr).is_none(),
        "personal value in migrate output"
    );
    let v = verify(&archive, &[&f.key("custodian-1.key"), &f.key("vault.key")]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(
        found.find(&v.stdout).is_none() && found.find(&v.stderr).is_none(),
        "personal value in verify output"
    );
}

#[test]
fn accounting_adds_up_and_is_in_the_manifest() {
    let f = Fixture::new(300, 9);
    let (archive, out) = f.migrate("archive");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["balanced"], true);
    let m = manifest(&archive);
    let mut records = 0;
    for a in m["accounting"].as_array().unwrap() {
        let n = |k: &str| a[k].as_u64().unwrap();
        assert_eq!(
            n("rows_read"),
            n("rows_loaded") + n("rows_without_doses") + n("rows_quarantined"),
            "{a}"
        );
        if n("records") > 0 {
            assert_eq!(
                n("records"),
                n("records_archived") + n("records_merged"),
                "{a}"
            );
        }
        records += n("records_archived");
    }
    assert_eq!(records, m["totals"]["records"].as_u64().unwrap());
    let rows: u64 = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, records);
    // The truth's quarantined rows are exactly the quarantined count.
    let mut rdr = csv::Reader::from_path(f.input().join("truth/rows.csv")).unwrap();
    let outcome = rdr
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "outcome")
        .unwrap();
    let expected = rdr
        .records()
        .filter(|r| &r.as_ref().unwrap()[outcome] == "quarantined")
        .count() as u64;
    assert_eq!(m["totals"]["quarantined"].as_u64().unwrap(), expected);
}

#[test]
fn two_runs_give_equal_plaintext_and_different_ciphertext() {
    let f = Fixture::new(150, 21);
    let (a, _) = f.migrate("a");
    let (b, _) = f.migrate("b");
    let key = |m: &serde_json::Value| {
        let mut v: Vec<String> = m["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {} {}",
                    p["retention_class"],
                    p["expiry"],
                    p["bucket"],
                    p["rows"],
                    p["plaintext_blake3"]
                )
            })
            .collect();
        v.sort();
        v
    };
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert_eq!(key(&ma), key(&mb));
    let ca: Vec<&str> = ma["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["blake3"].as_str().unwrap())
        .collect();
    let cb: Vec<&str> = mb["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["blake3"].as_str().unwrap())
        .collect();
    assert!(
        ca.iter().all(|h| !cb.contains(h)),
        "ciphertexts must differ between runs"
    );
}

/// Split a CSV export after half its rows into `first` (header and the first half) and
/// `second` (the same header bytes — a byte-order mark included — and the rest); returns
/// the rows in each.
fn split_csv(path: &Path, first: &Path, second: &Path) -> (usize, usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let starts: Vec<usize> = reader
        .byte_records()
        .map(|r| r.unwrap().position().unwrap().byte() as usize)
        .collect();
    let rows = starts.len() - 1;
    let (header_end, cut) = (starts[1], starts[1 + rows / 2]);
    std::fs::write(first, &bytes[..cut]).unwrap();
    let mut rest = bytes[..header_end].to_vec();
    rest.extend_from_slice(&bytes[cut..]);
    std::fs::write(second, rest).unwrap();
    (rows / 2, rows - rows / 2)
}

/// Person rows are taken a chunk at a time, one file after another in pipeline order (a
/// pipeline has one registry; the VRS person list may come in several files): the person
/// list split over two files links every record as one file does.
#[test]
fn a_person_list_split_over_two_files_gives_the_same_records() {
    let f = Fixture::new(150, 21);
    let (whole, _) = f.migrate("whole");
    let pipeline = std::fs::read_to_string(f.pipeline()).unwrap();
    let path = "sources/vrs/vrs-persons.csv";
    let source = f.input().join(path);
    let (rows_a, rows_b) = split_csv(
        &source,
        &source.with_extension("1.csv"),
        &source.with_extension("2.csv"),
    );
    assert!(rows_a > 10 && rows_b > 10, "{rows_a} + {rows_b} rows");
    let old = format!("id = \"vrs-persons\"\nlayout = \"vrs-persons\"\npath = \"{path}\"\n");
    let halves = format!(
        "id = \"vrs-persons-1\"\nlayout = \"vrs-persons\"\npath = \"{}\"\n\n[[source]]\nid = \"vrs-persons-2\"\nlayout = \"vrs-persons\"\npath = \"{}\"\n",
        path.replace(".csv", ".1.csv"),
        path.replace(".csv", ".2.csv"),
    );
    assert!(
        pipeline.contains(&old),
        "the person list in the generated pipeline"
    );
    let pipeline = pipeline.replace(&old, &halves);
    let split = f.input().join("split.toml");
    std::fs::write(&split, pipeline).unwrap();
    let (archive, out) = f.migrate_with(&split, "split");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = summary["accounting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["file_id"].as_str().unwrap())
        .collect();
    assert_eq!(&files[..3], ["registry", "vrs-persons-1", "vrs-persons-2"]);
    // Partitions cannot be compared: the keyed-hash secret, and so every person hash and
    // bucket, derives from the pipeline text and the sources' bytes. Linking's outcome
    // can: every method's count, enrichment through the ticket (which finds person rows
    // in either file), merges, review; and each dose file's accounting.
    let (a, b) = (manifest(&whole), manifest(&archive));
    assert!(a["reconciliation"]["vrs_enriched"].as_u64().unwrap() > 10);
    assert_eq!(a["reconciliation"], b["reconciliation"]);
    let doses = |m: &serde_json::Value| {
        m["accounting"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| !a["file_id"].as_str().unwrap().starts_with("vrs-persons"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(doses(&a), doses(&b));
    assert_eq!(a["totals"], b["totals"]);
}

#[test]
fn verify_detects_every_kind_of_tampering_and_names_the_file() {
    let f = Fixture::new(80, 13);
    let (archive, _) = f.migrate("archive");
    let base = tempfile::tempdir().unwrap();
    let m = manifest(&archive);
    let mut by_role = std::collections::BTreeMap::new();
    for file in m["files"].as_array().unwrap() {
        by_role
            .entry(file["role"].as_str().unwrap().to_string())
            .or_insert(file["path"].as_str().unwrap().to_string());
    }
    let mut targets: Vec<String> = by_role.values().cloned().collect();
    targets.push("MANIFEST.json".into());
    targets.push("MANIFEST.json.minisig".into());
    assert!(targets.len() >= 10, "{targets:?}");
    let copy = |name: &str| {
        let dst = base.path().join(name);
        for file in files_under(&archive) {
            let rel = file.strip_prefix(&archive).unwrap();
            let to = dst.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&file, &to).unwrap();
        }
        dst
    };
    for (i, target) in targets.iter().enumerate() {
        // Flip one byte in the middle.
        let dst = copy(&format!("flip{i}"));
        let p = dst.join(target);
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&p, bytes).unwrap();
        let out = verify(&dst, &[]);
        assert_ne!(
            out.status.code(),
            Some(0),
            "flipped byte in {target} not detected"
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let named = if target.starts_with("MANIFEST.json") {
            "MANIFEST.json".to_string()
        } else {
            target.clone()
        };
        assert!(
            text.contains(&named),
            "verify did not name {target}: {text}"
        );
        // Delete it.
        if !target.starts_with("MANIFEST") {
            let dst = copy(&format!("del{i}"));
            std::fs::remove_file(dst.join(target)).unwrap();
            let out = verify(&dst, &[]);
            assert_eq!(out.status.code(), Some(1), "deleted {target} not detected");
            assert!(String::from_utf8_lossy(&out.stdout).contains(target.as_str()));
        }
    }
    // Add an unlisted object.
    let dst = copy("add");
    std::fs::write(dst.join("data/extra.parquet.age"), b"x").unwrap();
    let out = verify(&dst, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("data/extra.parquet.age"));
    // Only unlisted objects: what an interrupted run leaves, and verify says so.
    assert!(String::from_utf8_lossy(&out.stderr).contains("rerun that command"));
    // The untouched archive verifies.
    assert!(verify(&archive, &[&f.key("custodian-2.key")])
        .status
        .success());
}

#[test]
fn wrong_key_fails_deep_verify_and_interrupted_runs_never_verify() {
    let f = Fixture::new(60, 17);
    let (archive, _) = f.migrate("archive");
    let stranger = f.dir.path().join("stranger.key");
    run_ok(vaxarc().args(["keygen", "--output"]).arg(&stranger));
    let out = verify(&archive, &[&stranger]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot unwrap"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("none of the given identities"),
        "the operator is told the identity is the problem"
    );
    // A mistyped location is refused, and no folder is made there.
    let missing = f.dir.path().join("no-such-archive");
    assert_eq!(verify(&missing, &[]).status.code(), Some(2));
    assert!(!missing.exists());
    // A second migrate into a committed archive is refused.
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds an archive"));
    // A committed archive whose manifest was lost (its audit log shows it was committed)
    // is refused, not cleared away as an interrupted run's leftovers.
    let lost = f.dir.path().join("lost");
    for file in files_under(&archive) {
        let rel = file.strip_prefix(&archive).unwrap();
        if rel.to_string_lossy() != "MANIFEST.json" {
            let to = lost.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&file, &to).unwrap();
        }
    }
    let before = files_under(&lost).len();
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(&lost)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("manifest was lost") && err.contains("hint: restore"),
        "{err}"
    );
    assert_eq!(files_under(&lost).len(), before, "nothing removed");
    // A migration running into a folder locks it: a second one is refused; the lock of a
    // killed migration (its process gone) is taken over.
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let lock = |pid: u32| {
        serde_json::json!({"command": "migrate", "operator": "-", "started": "t", "pid": pid, "host": host})
            .to_string()
    };
    let busy = f.dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("LOCK"), lock(std::process::id())).unwrap();
    let migrate_into = |dir: &Path| {
        vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = migrate_into(&busy);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is locked"));
    assert!(!busy.join("MANIFEST.json").exists());
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(busy.join("LOCK"), lock(dead)).unwrap();
    let out = migrate_into(&busy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!busy.join("LOCK").exists(), "the lock goes with the run");
    assert!(verify(&busy, &[]).status.success());
    // Simulate a run killed before its commit: objects without a manifest (and without
    // the audit log, which a migration appends to only after its commit).
    let partial = f.dir.path().join("partial");
    for file in files_under(&archive) {
        let rel = file.strip_prefix(&archive).unwrap();
        if rel.to_string_lossy() == "MANIFEST.json" || rel.starts_with("audit") {
            continue;
        }
        let to = partial.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
    let out = verify(&partial, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an uncommitted archive must not verify"
    );
    // Re-running completes it, without duplicates.
    let out = run_ok(
        vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(&partial)
            .arg("--json"),
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s["removed_stale_objects"].as_u64().unwrap() > 0);
    assert!(verify(&partial, &[&f.key("custodian-1.key")])
        .status
        .success());
    assert_eq!(
        manifest(&partial)["totals"]["records"],
        manifest(&archive)["totals"]["records"]
    );
}

#[cfg(unix)]
#[test]
fn identity_files_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(20, 2);
    let (archive, _) = f.migrate("archive");
    let key = f.key("custodian-1.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = verify(&archive, &[&key]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    let ok = vaxarc()
        .arg("--allow-insecure-identity")
        .arg("verify")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(&key)
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn killed_migrations_rerun_to_the_same_plaintext() {
    let f = Fixture::new(250, 33);
    let (reference, _) = f.migrate("reference");
    let plain = |archive: &Path| {
        let m = manifest(archive);
        let mut v: Vec<String> = m["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{} {}", p["rows"], p["plaintext_blake3"]))
            .collect();
        v.sort();
        v
    };
    let expected = plain(&reference);
    // Time one run to spread the kill points over it.
    let started = std::time::Instant::now();
    f.migrate("timing");
    let full = started.elapsed();
    let found = crate::matcher(&personal_values(&f.input()));
    let mut spills_left = 0;
    for i in 0..crate::KILL_POINTS {
        let archive = f.dir.path().join(format!("killed{i}"));
        // The killed run and its rerun share a temporary folder: the rerun must remove
        // the killed run's spill folder (ciphertext under a key that died with it).
        let tmp = f.dir.path().join(format!("tmp{i}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = vaxarc()
            .env("TMPDIR", &tmp)
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(crate::kill_point(full, i));
        let _ = child.kill(); // SIGKILL on unix
        let _ = child.wait();
        if archive.join("MANIFEST.json").exists() {
            // Finished before the kill: it must be complete and valid.
            assert!(verify(&archive, &[]).status.success());
        } else {
            if archive.exists() {
                assert_eq!(
                    verify(&archive, &[]).status.code(),
                    Some(1),
                    "an interrupted archive must not verify"
                );
            }
            let killed_left = crate::spill_folders(&tmp).len();
            spills_left += killed_left;
            // What the killed run left in its temporary folder is ciphertext only.
            for file in files_under(&tmp) {
                assert!(
                    found.find(&std::fs::read(&file).unwrap()).is_none(),
                    "kill point {i}: a personal value in plaintext in {}",
                    file.display()
                );
            }
            let rerun = run_ok(
                vaxarc()
                    .env("TMPDIR", &tmp)
                    .arg("migrate")
                    .arg("--pipeline")
                    .arg(f.pipeline())
                    .arg("--archive")
                    .arg(&archive),
            );
            let stderr = String::from_utf8_lossy(&rerun.stderr);
            assert_eq!(
                stderr.contains("removed 1 temporary spill folder left by killed runs"),
                killed_left == 1,
                "kill point {i}: {killed_left} spill folders left; stderr: {stderr}"
            );
        }
        assert_eq!(
            crate::spill_folders(&tmp),
            Vec::<PathBuf>::new(),
            "kill point {i}"
        );
        assert!(verify(&archive, &[&f.key("custodian-1.key")])
            .status
            .success());
        assert_eq!(plain(&archive), expected, "kill point {i}");
    }
    // The spill lives through most of a run: some kill must have left one (else the
    // check above proved nothing).
    assert!(spills_left > 0, "no kill point left a spill folder");
}

/// A small tmpfs mounted for one test, unmounted when dropped.
#[cfg(target_os = "linux")]
struct Tmpfs(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Tmpfs {
    /// Mount; `None` when this process may not mount (not root): the test then says so.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        assert!(
            ok || !root,
            "running as root but could not mount a tmpfs for the full-disk test"
        );
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount: {}; mounts: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string("/proc/mounts")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("tmp"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_gives_a_clear_error_and_leaves_the_previous_state() {
    let f = Fixture::new(150, 61);
    let Some(disk) = Tmpfs::mount(&f.dir.path().join("small"), "200k") else {
        eprintln!("skipped: not root, cannot mount a tmpfs");
        return;
    };
    // Migrate onto a disk too small for the archive: one-line error, nothing committed.
    let archive = disk.0.join("archive");
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("space") && err.contains("hint:"), "{err}");
    assert!(!archive.join("MANIFEST.json").exists());

    // A purge that runs out of space leaves the committed archive as it was.
    disk.resize("64m");
    std::fs::remove_dir_all(&archive).unwrap();
    run_ok(
        vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(&archive)
            .arg("--quiet"),
    );
    let before = std::fs::read(archive.join("MANIFEST.json")).unwrap();
    // Room for a few more small objects, not for the purge's rewrite (tmpfs counts pages).
    let df = std::process::Command::new("df")
        .args(["--output=used", "-k"])
        .arg(&disk.0)
        .output()
        .unwrap();
    let used_k: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    disk.resize(&format!("{}k", used_k + 48));
    let out = vaxarc()
        .arg("purge")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"))
        .args(["--as-of", "2028-07-15", "--operator", "op"])
        .arg("--signing-key")
        .arg(f.key("signing.key"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("space"), "{err}");
    assert_eq!(
        std::fs::read(archive.join("MANIFEST.json")).unwrap(),
        before,
        "the committed manifest changed"
    );
    let v = verify(&archive, &[]);
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    for p in report["problems"].as_array().unwrap() {
        assert!(p["problem"].as_str().unwrap().contains("not listed"), "{p}");
    }
    if !report["problems"].as_array().unwrap().is_empty() {
        assert!(
            String::from_utf8_lossy(&v.stderr).contains("rerun that command"),
            "the operator is told these are an interrupted run's leftovers"
        );
    }
}
