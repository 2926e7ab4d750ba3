//! Issue 9 item 4: several municipalities' shards run as parallel processes, each to its
//! own archive; their manifests and the catalogue agree, and the catalogue's checks
//! against an earlier catalogue find a replaced, rolled-back or missing archive.

use std::path::{Path, PathBuf};

use crate::{make_keys, run_ok, vaxarc};

/// Municipality codes (valid check digits): 港区, 品川区, 目黒区.
const CODES: [&str; 3] = ["131032", "131091", "131105"];

fn catalogue(
    args: &[&Path],
    previous: Option<&Path>,
    out: Option<&Path>,
) -> (i32, serde_json::Value) {
    let mut c = vaxarc();
    c.arg("catalogue").arg("--json");
    for a in args {
        c.arg(a);
    }
    if let Some(p) = previous {
        c.arg("--previous").arg(p);
    }
    if let Some(o) = out {
        c.arg("--out").arg(o);
    }
    let o = c.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "catalogue JSON: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn municipalities_migrate_in_parallel_and_the_catalogue_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    // One input set per municipality, each with its own keys.
    let mut inputs = Vec::new();
    for (i, code) in CODES.iter().enumerate() {
        let cfg = dir.path().join(format!("{code}.toml"));
        std::fs::write(&cfg, format!("municipality_code = \"{code}\"\n")).unwrap();
        let input = dir.path().join(format!("in-{code}"));
        run_ok(
            vaxarc()
                .args(["testdata", "--out"])
                .arg(&input)
                .args([
                    "--people",
                    "300",
                    "--seed",
                    &(40 + i).to_string(),
                    "--config",
                ])
                .arg(&cfg),
        );
        make_keys(&input);
        inputs.push(input);
    }
    // The shards run at once, as a scheduler's array job would run them.
    let archives: Vec<PathBuf> = CODES
        .iter()
        .map(|c| dir.path().join(format!("archive-{c}")))
        .collect();
    let children: Vec<_> = inputs
        .iter()
        .zip(&archives)
        .map(|(input, archive)| {
            vaxarc()
                .arg("migrate")
                .arg("--pipeline")
                .arg(input.join("pipeline.toml"))
                .arg("--archive")
                .arg(archive)
                .arg("--json")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let manifests: Vec<serde_json::Value> = archives
        .iter()
        .map(|a| serde_json::from_slice(&std::fs::read(a.join("MANIFEST.json")).unwrap()).unwrap())
        .collect();
    for (m, code) in manifests.iter().zip(CODES) {
        assert_eq!(m["municipality_code"], code);
    }
    let refs: Vec<&Path> = archives.iter().map(PathBuf::as_path).collect();
    let cat = dir.path().join("catalogue.json");
    let (code, v) = catalogue(&refs, None, Some(&cat));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    let entries = v["archives"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (e, (m, a)) in entries.iter().zip(manifests.iter().zip(&archives)) {
        // Sorted by municipality code, as CODES is.
        assert_eq!(e["municipality_code"], m["municipality_code"]);
        assert_eq!(e["archive_id"], m["archive_id"]);
        assert_eq!(e["merkle_root"], m["merkle_root"]);
        assert_eq!(e["generation"], 1);
        assert_eq!(e["records"], m["totals"]["records"]);
        assert_eq!(e["location"], a.to_str().unwrap());
    }
    // Unchanged: the check against the saved catalogue passes.
    let (code, v) = catalogue(&refs, Some(&cat), None);
    assert_eq!(code, 0, "{v}");

    // A manifest whose signature fails is a problem named by location.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let mut text = std::fs::read(archives[0].join("MANIFEST.json")).unwrap();
    text.extend_from_slice(b"\n");
    std::fs::write(broken.join("MANIFEST.json"), text).unwrap();
    std::fs::copy(
        archives[0].join("MANIFEST.json.minisig"),
        broken.join("MANIFEST.json.minisig"),
    )
    .unwrap();
    let (code, v) = catalogue(&[&broken], None, None);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["problems"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{v}"
    );

    // Replace one archive by another municipality's, lose a second: both are found.
    std::fs::rename(&archives[0], dir.path().join("moved")).unwrap();
    std::fs::rename(&archives[1], &archives[0]).unwrap();
    let (code, v) = catalogue(&[&archives[0], &archives[2]], Some(&cat), None);
    assert_eq!(code, 1, "{v}");
    let problems: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["location"], p["problem"]))
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("archive-131032") && p.contains("replaced")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("archive-131091") && p.contains("missing")),
        "{problems:?}"
    );
}
