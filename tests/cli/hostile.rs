//! Hostile input (testdata/malformed/) and hostile archives: quarantined rows or a
//! one-line error, never a panic, never unbounded memory.

use std::path::{Path, PathBuf};

use crate::{run_ok, vaxarc};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/malformed")
        .join(name)
}

/// Keys and a one-source pipeline for `source` in a fresh folder.
fn pipeline_for(dir: &Path, source: &Path) -> PathBuf {
    let keys = dir.join("keys");
    run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(keys.join("c1.key"))
            .arg("--signing-key")
            .arg(keys.join("signing.key")),
    );
    run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(keys.join("c2.key")),
    );
    run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(keys.join("vault.key")),
    );
    let p = dir.join("pipeline.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"hostile\"\nmunicipality_code = \"131091\"\n[[source]]\nid = \"ledger-x\"\nlayout = \"ledger\"\npath = \"{}\"\n[archive]\ncustodians = [\"keys/c1.pub\", \"keys/c2.pub\"]\nvault = [\"keys/vault.pub\"]\nsigning_key = \"keys/signing.key\"\n",
            source.display()
        ),
    )
    .unwrap();
    p
}

/// Run migrate on one file; returns (exit code, stdout JSON or stderr text).
fn migrate(source: &Path) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_for(dir.path(), source);
    let out = vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(&p)
        .arg("--archive")
        .arg(dir.path().join("archive"))
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("panicked"),
        "panic on {}: {stderr}",
        source.display()
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

fn reasons(stdout: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(v["balanced"], true);
    v["quarantine_by_reason"].clone()
}

#[test]
fn every_malformed_file_quarantines_or_refuses_in_one_line() {
    let one_line_error = |name: &str, needle: &str| {
        let (code, _, err) = migrate(&corpus(name));
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(err.lines().count(), 2, "{name}: error and hint only: {err}");
        assert!(err.contains(needle), "{name}: {err}");
    };
    one_line_error("empty.csv", "no header row");
    one_line_error("duplicate-headers.csv", "header `接種日` appears twice");
    one_line_error("missing-headers.csv", "header `接種日` required by layout");
    one_line_error(
        "extra-header-column.csv",
        "all 2 rows were quarantined, from line 2 on (mostly `wrong_column_count`)",
    );

    let (code, out, err) = migrate(&corpus("header-only.csv"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(reasons(&out), serde_json::json!({}));

    for (name, reason, count) in [
        ("truncated-multibyte.csv", "undecodable_bytes", 1),
        ("nul-bytes.csv", "undecodable_bytes", 1),
        ("mixed-encodings.csv", "undecodable_bytes", 1),
        ("bom-mid-file.csv", "unparseable_date", 1),
        ("ten-thousand-columns.csv", "wrong_column_count", 1),
        ("stray-quote.csv", "unbalanced_quote", 1),
    ] {
        let (code, out, err) = migrate(&corpus(name));
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(reasons(&out)[reason], count, "{name}: {out}");
    }
    // The stray quote's row is named with the lines it swallowed (no value).
    let (_, out, _) = migrate(&corpus("stray-quote.csv"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{out}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("line 3") && w.contains("runs over 3 lines"),
        "{w}"
    );
    assert!(!w.contains("品川") && !w.contains("1003"), "{w}");
}

#[test]
fn a_100_mb_line_is_quarantined_not_archived() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.csv");
    let mut text = String::from("宛名番号,接種名称,接種日,備考\n1,MR,R2.5.1,ok\n2,MR,R2.5.1,");
    text.push_str(&"x".repeat(100 << 20));
    text.push_str("\n3,MR,R2.5.2,ok\n");
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = migrate(&path);
    assert_eq!(code, 0, "{err}");
    assert_eq!(reasons(&out)["field_too_long"], 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["records"], 2);
}

#[test]
fn hostile_manifests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_for(dir.path(), &corpus("header-only.csv"));
    let archive = dir.path().join("archive");
    run_ok(
        vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(&p)
            .arg("--archive")
            .arg(&archive)
            .arg("--quiet"),
    );
    let manifest = archive.join("MANIFEST.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    for bad in ["../../etc/passwd", "/etc/passwd", "data/../../x"] {
        m["files"][0]["path"] = serde_json::Value::String(bad.into());
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        let out = vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a safe relative path"), "{err}");
    }
    std::fs::write(&manifest, &original).unwrap();
    assert!(vaxarc()
        .arg("verify")
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap()
        .status
        .success());
    // A symlink inside the archive is reported, not followed.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", archive.join("data-link")).unwrap();
        let out = vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stdout).contains("data-link"));
    }
}
