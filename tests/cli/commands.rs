//! keygen, normalise, demo, testdata score, refusals.

use crate::{run_ok, vaxarc, Fixture};

#[test]
fn normalise_prints_values_flags_and_rejects() {
    use std::io::Write;
    let mut child = vaxarc()
        .args(["normalise", "--field", "date"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("R06.09.30\n平成31年5月1日\n2023-02-30\n5060930\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2024-09-30");
    assert!(
        lines[1].starts_with("2019-05-01") && lines[1].contains("era_after_end"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "REJECT impossible_date");
    assert_eq!(lines[3], "2024-09-30");
}

#[test]
fn normalise_json_is_one_object() {
    use std::io::Write;
    let mut child = vaxarc()
        .args(["normalise", "--field", "kojin_bango", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"123456789018\n123456789019\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["value"], "123456789018");
    assert_eq!(v["results"][1]["flag"], "invalid_check_digit");
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .lines()
            .count(),
        1
    );
}

#[test]
fn normalise_refuses_unknown_kind_with_hint() {
    let out = vaxarc()
        .args(["normalise", "--field", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: unknown field kind `nonsense`"),
        "{err}"
    );
    assert!(err.contains("hint: use one of:"), "{err}");
}

/// Who changed the archive and why go into certificates and the audit log: blank values
/// are refused before anything is opened, as lookup refuses them.
#[test]
fn blank_operator_and_reason_are_refused() {
    let common = ["--archive", "nowhere", "--identity", "none.key"];
    for (args, flag) in [
        (
            vec!["erase", "--operator", " ", "--reason", "r", "--atena", "1"],
            "--operator",
        ),
        (
            vec!["erase", "--operator", "op", "--reason", "", "--atena", "1"],
            "--reason",
        ),
        (
            vec!["purge", "--operator", "", "--as-of", "2026-04-01"],
            "--operator",
        ),
        (
            vec![
                "rekey",
                "--operator",
                " ",
                "--custodian",
                "a",
                "--signing-key",
                "k",
            ],
            "--operator",
        ),
        (
            vec![
                "lookup",
                "--operator",
                " ",
                "--purpose",
                "p",
                "--atena",
                "1",
            ],
            "--operator",
        ),
        (
            vec![
                "erase",
                "--operator",
                "\u{200B}",
                "--reason",
                "r",
                "--atena",
                "1",
            ],
            "--operator",
        ),
    ] {
        let out = vaxarc().args(&args).args(common).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(&format!("error: {flag}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("must not be empty"), "{err}");
    }
}

#[test]
fn demo_runs_end_to_end_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = run_ok(
        vaxarc()
            .args(["demo", "--people", "150", "--json", "--dir"])
            .arg(&demo),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["migrate"]["balanced"], true);
    assert!(v["migrate"]["records"].as_u64().unwrap() > 100);
    // A second demo replaces the first (it carries the demo marker).
    run_ok(
        vaxarc()
            .args(["demo", "--people", "50", "--quiet", "--dir"])
            .arg(&demo),
    );
    // A folder not made by demo is refused.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("precious.txt"), "x").unwrap();
    let out = vaxarc()
        .args(["demo", "--dir"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(other.join("precious.txt").exists());
}

#[test]
fn score_meets_quality_targets_on_generated_data() {
    let f = Fixture::new(3000, 11);
    let out = run_ok(
        vaxarc()
            .args(["testdata", "score", "--json", "--dir"])
            .arg(f.input()),
    );
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = |k: &str| q[k].as_f64().unwrap_or_else(|| panic!("no {k} in {q}"));
    assert!(get("link_precision") >= 0.999, "{q}");
    assert!(get("link_recall") >= 0.995, "{q}");
    assert!(get("merge_precision") >= 0.999, "{q}");
}

#[test]
fn migrate_refusals_are_one_line_with_hint() {
    let f = Fixture::new(30, 3);
    // Malformed pipeline: names the line.
    let bad = f.input().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nmunicipality_code = 131091\n").unwrap();
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(&bad)
        .arg("--archive")
        .arg(f.dir.path().join("a1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("line 2") && err.contains("hint:"), "{err}");
    // One custodian listed twice: an archive needs two.
    let text = std::fs::read_to_string(f.pipeline()).unwrap();
    let one = f.input().join("one-custodian.toml");
    std::fs::write(
        &one,
        text.replace("keys/custodian-2.pub", "keys/custodian-1.pub"),
    )
    .unwrap();
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(&one)
        .arg("--archive")
        .arg(f.dir.path().join("a0"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names 1 distinct recipient") && err.contains("hint:"),
        "{err}"
    );
    assert!(!f.dir.path().join("a0").exists());
    // Missing key file.
    std::fs::remove_file(f.key("vault.pub")).unwrap();
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(f.dir.path().join("a2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vault.pub"), "{err}");
    // Unreadable source.
    run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(f.key("vault.key"))
            .arg("--force"),
    );
    std::fs::remove_file(f.input().join("sources/ledger/MR.csv")).unwrap();
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(f.dir.path().join("a3"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ledger-MR") && err.contains("MR.csv"), "{err}");
    assert!(!f.dir.path().join("a3/MANIFEST.json").exists());
}

#[test]
fn keygen_prints_only_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(dir.path().join("k.key")),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.trim().starts_with("age1"));
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("AGE-SECRET-KEY"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity written"));
    // `--quiet`: the recipient on stdout, nothing on stderr.
    let quiet = run_ok(
        vaxarc()
            .args(["keygen", "--quiet", "--output"])
            .arg(dir.path().join("q.key")),
    );
    assert!(String::from_utf8_lossy(&quiet.stdout)
        .trim()
        .starts_with("age1"));
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let again = vaxarc()
        .args(["keygen", "--output"])
        .arg(dir.path().join("k.key"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}
