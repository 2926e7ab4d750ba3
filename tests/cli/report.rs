//! report (text, JSON, HTML rendered in headless Chromium), rekey, and `--help`
//! examples for every subcommand.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{matcher, personal_values, run_ok, vaxarc, Fixture};

fn report_json(
    archive: &Path,
    identity: &Path,
    extra: &[&str],
) -> (serde_json::Value, std::process::Output) {
    let out = run_ok(
        vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(archive)
            .arg("--identity")
            .arg(identity)
            .arg("--json")
            .args(extra),
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "--json prints one line: {text}"
    );
    (serde_json::from_str(&text).unwrap(), out)
}

/// Every `{"value": …}` count in a JSON tree: (value, suppressed).
fn counts(v: &serde_json::Value, out: &mut Vec<(Option<u64>, bool)>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key("value") && m.len() <= 2 {
                out.push((
                    m["value"].as_u64(),
                    m.get("suppressed")
                        .and_then(|s| s.as_bool())
                        .unwrap_or(false),
                ));
            } else {
                m.values().for_each(|x| counts(x, out));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| counts(x, out)),
        _ => {}
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let ok = Command::new(name)
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            ok.then(|| PathBuf::from(name))
        })
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Distinct colours of a PNG (8-bit RGB/RGBA, non-interlaced), decoded with Python's
/// standard library only (zlib + the five PNG row filters).
fn png_colours(png: &Path) -> usize {
    const SCRIPT: &str = r#"
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos+8])
    body = data[pos+8:pos+8+n]
    if kind == b'IHDR':
        w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours = set()
for y in range(h):
    f = raw[y*(stride+1)]
    line = bytearray(raw[y*(stride+1)+1:(y+1)*(stride+1)])
    for i in range(stride):
        a = line[i-bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i-bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pr) & 255
    for x in range(0, stride, bpp * 3):
        colours.add(bytes(line[x:x+3]))
    prev = line
print(len(colours))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(png)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn report_shows_aggregates_only_and_renders_in_chromium() {
    let f = Fixture::new(400, 11);
    let (archive, _) = f.migrate("archive");
    let html = f.dir.path().join("report.html");
    let (json, out) = report_json(
        &archive,
        &f.key("custodian-1.key"),
        &["--html", html.to_str().unwrap()],
    );
    let text_out = run_ok(
        vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(f.key("custodian-1.key")),
    );
    let text = String::from_utf8(text_out.stdout.clone()).unwrap();
    let page = std::fs::read_to_string(&html).unwrap();

    // Figures: the totals of --json appear in the text and the HTML.
    let records = json["totals"]["records"]["value"].as_u64().unwrap();
    let people = json["totals"]["people"]["value"].as_u64().unwrap();
    assert!(records > 100 && people > 50, "{json}");
    for figure in [records, people] {
        // Shown with thousands separators.
        let figure = vaxarc::report::thousands(figure);
        assert!(
            text.contains(&format!(" {figure}\n")),
            "{figure} not in text:\n{text}"
        );
        assert!(
            page.contains(&format!(">{figure}<")),
            "{figure} not in HTML"
        );
    }
    assert!(text.contains("未接種者数") && text.contains("隔離") && text.contains("保存期限"));
    // Made from `vaxarc testdata` sources: every rendering says the data is synthetic.
    assert_eq!(json["synthetic"], true);
    assert!(text.contains("DEMO: synthetic data") && page.contains("DEMO: synthetic data"));
    // Suppression: small counts of people and doses are null + suppressed, nothing 1..9 is
    // published; processing counts (accounting, quarantine, the totals of rows) are exact.
    let mut people_and_doses = json.clone();
    let mut exact = Vec::new();
    for key in ["accounting", "quarantine", "quarantine_by_reason"] {
        counts(&people_and_doses[key].take(), &mut exact);
    }
    for key in [
        "rows_read",
        "records",
        "merged",
        "quarantined",
        "registry_rows",
    ] {
        counts(&people_and_doses["totals"][key].take(), &mut exact);
    }
    assert!(exact.len() > 20 && exact.iter().all(|(v, s)| v.is_some() && !s));
    let mut all = Vec::new();
    counts(&people_and_doses, &mut all);
    assert!(all.len() > 50);
    assert!(
        all.iter().any(|(v, s)| v.is_none() && *s),
        "no suppressed count in a 400-person report"
    );
    assert!(all.iter().all(|(v, s)| match v {
        Some(n) => (*n == 0 || *n >= 10) && !s,
        None => *s,
    }));
    assert_eq!(json["suppress_below"], 10);
    // Threshold 1 shows the small counts.
    let (json1, _) = report_json(
        &archive,
        &f.key("custodian-1.key"),
        &["--suppress-below", "1"],
    );
    let mut all1 = Vec::new();
    counts(&json1, &mut all1);
    assert!(all1.iter().all(|(v, _)| v.is_some()));

    // No personal value anywhere: HTML, JSON, text, stderr.
    let values = personal_values(&f.input());
    let found = matcher(&values);
    for (what, bytes) in [
        ("html", page.as_bytes()),
        ("json", &out.stdout[..]),
        ("text", text.as_bytes()),
        ("stderr", &out.stderr[..]),
    ] {
        if let Some(m) = found.find(bytes) {
            panic!("personal value #{} appears in the report's {what}", m);
        }
    }
    // Self-contained: no scripts, no external resources.
    assert!(
        !page.contains("<script")
            && !page.contains("<link")
            && !page.contains("https://")
            && !page.contains("url(http")
    );
    assert!(page.contains("<svg"));

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("VAXARC_REQUIRE_CHROMIUM").is_none(),
            "chromium is required (VAXARC_REQUIRE_CHROMIUM is set)"
        );
        eprintln!("skipping the Chromium rendering check: no chromium on PATH (install it: apt-get install -y chromium)");
        return;
    };
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().unwrap();
    let png = f.dir.path().join("report.png");
    let shot = headless(&browser, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let colours = png_colours(&png);
    assert!(colours > 8, "screenshot looks blank: {colours} colours");
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&browser, profile.path())
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<svg")
            && dom.contains(&format!(">{}<", vaxarc::report::thousands(records)))
            && dom.contains(&format!(">{}<", vaxarc::report::thousands(people))),
        "figures missing from the rendered DOM"
    );
}

#[test]
fn report_refuses_wrong_identity_and_existing_html() {
    let f = Fixture::new(60, 2);
    let (archive, _) = f.migrate("archive");
    let stranger = f.dir.path().join("stranger.key");
    run_ok(vaxarc().args(["keygen", "--output"]).arg(&stranger));
    let out = vaxarc()
        .arg("report")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(&stranger)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hint:"), "{err}");
    let html = f.dir.path().join("r.html");
    std::fs::write(&html, "x").unwrap();
    let out = vaxarc()
        .arg("report")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: choose another --html path"));
}

fn recipient(key: &Path) -> String {
    let text = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    text.lines()
        .find(|l| l.starts_with("age1"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn report_rekey_rotates_custodians_without_touching_data() {
    use vaxarc::archive::crypto;
    let f = Fixture::new(120, 4);
    let (archive, _) = f.migrate("archive");
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let keys = f.dir.path().join("new");
    for name in ["new-1.key", "new-2.key", "new-vault.key"] {
        run_ok(vaxarc().args(["keygen", "--output"]).arg(keys.join(name)));
    }
    let out = run_ok(
        vaxarc()
            .arg("rekey")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(f.key("custodian-1.key"))
            .arg("--identity")
            .arg(f.key("vault.key"))
            .arg("--custodian")
            .arg(recipient(&keys.join("new-1.key")))
            .arg("--custodian")
            .arg(keys.join("new-2.key").with_extension("pub"))
            .arg("--vault-recipient")
            .arg(recipient(&keys.join("new-vault.key")))
            .arg("--signing-key")
            .arg(f.key("signing.key"))
            .arg("--json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["generation"], 2, "{v}");
    assert_eq!(v["verified"], true);
    assert!(
        v["keys_rewrapped"].as_u64().unwrap() > 5
            && v["vault_keys_rewrapped"].as_u64().unwrap() > 0,
        "{v}"
    );

    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(after["previous_root"], before["merkle_root"]);
    assert!(
        archive.join("history/000001/MANIFEST.json").is_file()
            && archive
                .join("history/000001/MANIFEST.json.minisig")
                .is_file()
    );
    // Data objects untouched: same paths, sizes and hashes.
    let data = |m: &serde_json::Value| -> Vec<serde_json::Value> {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| !f["role"].as_str().unwrap().contains("key") && f["role"] != "index-secret")
            .cloned()
            .collect()
    };
    assert_eq!(data(&before), data(&after));
    // The old identities open no key; the new ones open every key.
    let load = |p: &Path| vaxarc::keys::load_identities(&[p.to_path_buf()], false).unwrap();
    let (old, old_vault) = (load(&f.key("custodian-1.key")), load(&f.key("vault.key")));
    let (new1, new2, new_vault) = (
        load(&keys.join("new-1.key")),
        load(&keys.join("new-2.key")),
        load(&keys.join("new-vault.key")),
    );
    let mut checked = 0;
    for file in after["files"].as_array().unwrap() {
        let role = file["role"].as_str().unwrap();
        if !(role.ends_with("key") || role == "index-secret") {
            continue;
        }
        let path = file["path"].as_str().unwrap();
        let bytes = std::fs::read(archive.join(path)).unwrap();
        assert!(
            crypto::decrypt(path, &old, &bytes).is_err()
                && crypto::decrypt(path, &old_vault, &bytes).is_err(),
            "old identity opens `{path}`"
        );
        let new = if role == "vault-key" {
            &new_vault
        } else {
            &new2
        };
        assert!(
            crypto::decrypt(path, new, &bytes).is_ok(),
            "new identity cannot open `{path}`"
        );
        checked += 1;
    }
    assert!(checked > 10);
    // No old wrapped key is left anywhere outside history/.
    for file in before["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        if file["role"].as_str().unwrap().ends_with("key")
            && !after["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == path)
        {
            assert!(
                !archive.join(path).exists(),
                "old wrapped key `{path}` still exists"
            );
        }
    }
    // verify --identity NEW passes with the deep checks; the old identity fails them.
    let ok = run_ok(
        vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(keys.join("new-1.key"))
            .arg("--identity")
            .arg(keys.join("new-vault.key"))
            .arg("--json"),
    );
    let ok: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(ok["ok"], true);
    assert!(
        ok["partitions_decrypted"].as_u64().unwrap() > 0
            && ok["vault_decrypted"].as_u64().unwrap() > 0,
        "{ok}"
    );
    let _ = new1;
    let bad = vaxarc()
        .arg("verify")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .output()
        .unwrap();
    assert_ne!(bad.status.code(), Some(0));
    // The report works with the new identity.
    report_json(&archive, &keys.join("new-1.key"), &[]);
    // Rekeying again to the same recipients changes nothing.
    let again = run_ok(
        vaxarc()
            .arg("rekey")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(keys.join("new-1.key"))
            .arg("--custodian")
            .arg(recipient(&keys.join("new-1.key")))
            .arg("--custodian")
            .arg(recipient(&keys.join("new-2.key")))
            .arg("--signing-key")
            .arg(f.key("signing.key"))
            .arg("--operator")
            .arg("staff-0042")
            .arg("--json"),
    );
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (again["unchanged"].as_bool(), again["generation"].as_u64()),
        (Some(true), Some(2)),
        "{again}"
    );
    // Both rekeys are in the audit log (a change of custody), which verifies.
    let log = std::fs::read_to_string(archive.join("audit/log-00000000.jsonl")).unwrap();
    let rekeys: Vec<(u64, String, String)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["command"] == "rekey")
        .map(|e| {
            (
                e["generation"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap().to_string(),
                e["operator"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (gen, unchanged, op) = (2, "unchanged".to_string(), "staff-0042".to_string());
    assert_eq!(rekeys[1], (gen, unchanged, op), "--operator is logged");
    assert_eq!(rekeys.len(), 2);
    assert_eq!((rekeys[0].0, rekeys[0].1.as_str()), (2, "committed"));
    run_ok(
        vaxarc()
            .args(["audit", "verify", "--archive"])
            .arg(&archive),
    );
    // One custodian is refused.
    let one = vaxarc()
        .arg("rekey")
        .arg("--archive")
        .arg(&archive)
        .arg("--identity")
        .arg(keys.join("new-1.key"))
        .arg("--custodian")
        .arg(recipient(&keys.join("new-1.key")))
        .arg("--signing-key")
        .arg(f.key("signing.key"))
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&one.stderr).contains("hint:"));
}

/// Subcommand names listed under `Commands:` in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn report_every_subcommand_help_has_an_example() {
    let top = String::from_utf8(run_ok(vaxarc().arg("--help")).stdout).unwrap();
    let commands = subcommands(&top);
    assert!(
        commands.len() >= 8
            && commands.iter().any(|c| c == "report")
            && commands.iter().any(|c| c == "rekey"),
        "{commands:?}"
    );
    let mut checked = 0;
    let mut queue: Vec<Vec<String>> = commands.into_iter().map(|c| vec![c]).collect();
    while let Some(path) = queue.pop() {
        let help = String::from_utf8(run_ok(vaxarc().args(&path).arg("--help")).stdout).unwrap();
        assert!(
            help.contains("Example"),
            "`vaxarc {} --help` has no Example section",
            path.join(" ")
        );
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            queue.push(p);
        }
        checked += 1;
    }
    assert!(checked >= 9);
}

#[test]
fn report_rekey_recovers_leftovers_of_a_run_killed_before_its_commit() {
    let f = Fixture::new(60, 8);
    let (archive, _) = f.migrate("archive");
    // What a rekey killed before its commit leaves: new wrapped keys and staged history.
    std::fs::write(
        archive.join("keys/0000000000000000.g2.key.age"),
        b"age-encryption.org/v1 leftover",
    )
    .unwrap();
    std::fs::create_dir_all(archive.join("history/000002")).unwrap();
    std::fs::write(archive.join("history/000002/MANIFEST.json"), b"{}").unwrap();
    let stale = vaxarc()
        .arg("verify")
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(
        stale.status.code(),
        Some(1),
        "the leftover is reported by verify"
    );
    let keys = f.dir.path().join("new");
    for name in ["n1.key", "n2.key"] {
        run_ok(vaxarc().args(["keygen", "--output"]).arg(keys.join(name)));
    }
    let out = run_ok(
        vaxarc()
            .arg("rekey")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(f.key("custodian-2.key"))
            .arg("--custodian")
            .arg(recipient(&keys.join("n1.key")))
            .arg("--custodian")
            .arg(recipient(&keys.join("n2.key")))
            .arg("--signing-key")
            .arg(f.key("signing.key"))
            .arg("--json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["verified"].as_bool(), v["generation"].as_u64()),
        (Some(true), Some(2)),
        "{v}"
    );
    assert!(
        v["recovery"]["removed_unlisted"].as_u64().unwrap() >= 2,
        "{v}"
    );
    assert!(
        !archive.join("keys/0000000000000000.g2.key.age").exists()
            && !archive.join("LOCK").exists()
    );
    run_ok(
        vaxarc()
            .arg("verify")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(keys.join("n2.key")),
    );
}

/// 未接種者数's target population counts every resident of the registry extract in the
/// target ages (from the archive's registry summary), checked against the truth files.
#[test]
fn report_unvaccinated_target_population_comes_from_the_registry() {
    let f = crate::Fixture::new(400, 81);
    let (archive, _) = f.migrate("archive");
    let out = crate::run_ok(
        crate::vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(f.key("custodian-1.key"))
            .args(["--json", "--suppress-below", "1"]),
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["unvaccinated_population"], "registry_extract");
    let text = crate::run_ok(
        crate::vaxarc()
            .arg("report")
            .arg("--archive")
            .arg(&archive)
            .arg("--identity")
            .arg(f.key("custodian-1.key")),
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("現在、移行時の住民基本台帳の住民）"),
        "the heading names the registry extract as the population"
    );
    let as_of = r["as_of"].as_str().unwrap().to_string();
    let ymd = |s: &str| -> (i32, u32, u32) {
        let p: Vec<&str> = s.split('-').collect();
        (
            p[0].parse().unwrap(),
            p[1].parse().unwrap(),
            p[2].parse().unwrap(),
        )
    };
    let (ay, am, ad) = ymd(&as_of);
    let mut rdr = csv::Reader::from_path(f.input().join("truth/persons.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (inreg, status, birth) = (
        col("in_registry"),
        col("registry_status"),
        col("birth_date"),
    );
    let residents: Vec<i32> = rdr
        .records()
        .flatten()
        .filter(|x| &x[inreg] == "true" && &x[status] == "resident")
        .map(|x| {
            let (y, m, d) = ymd(&x[birth]);
            ay - y - i32::from((am, ad) < (m, d))
        })
        .collect();
    let mut checked = 0;
    for row in r["unvaccinated"].as_array().unwrap() {
        let ages = row["target_ages"].as_array().unwrap();
        let (from, to) = (
            ages[0].as_i64().unwrap() as i32,
            ages[1].as_i64().unwrap() as i32,
        );
        let expected = residents.iter().filter(|a| **a >= from && **a < to).count() as u64;
        assert_eq!(
            row["target_population"]["value"].as_u64(),
            Some(expected),
            "{row}"
        );
        checked += u64::from(expected > 0);
    }
    assert!(
        checked >= 3,
        "too few vaccines with a target population to mean anything"
    );
}
