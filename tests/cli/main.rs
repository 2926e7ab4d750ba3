//! The one integration-test binary: runs the real `vaxarc` binary in temporary folders.
//! Topic modules hold the tests; helpers live here.

mod archive;
mod commands;
mod hostile;
mod interop;
mod leaks;
mod lookup;
mod purge;
mod report;
mod s3;
mod scaling;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test (`VAXARC_BIN` overrides it: with a target folder shared by
/// several worktrees, `target/debug/vaxarc` can be replaced by another branch's build
/// while the tests run).
pub fn vaxarc() -> Command {
    // VAXARC_BIN (or VAXARC_TEST_BIN) overrides the binary: a copy, when several worktrees
    // share one CARGO_TARGET_DIR and overwrite each other's `target/debug/vaxarc`.
    let bin = std::env::var_os("VAXARC_BIN")
        .or_else(|| std::env::var_os("VAXARC_TEST_BIN"))
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_vaxarc").into());
    let mut c = Command::new(bin);
    c.env("NO_PROGRESS", "1");
    // Each run gets its own temporary folder: a migrate removes the spill folders that
    // killed runs left in its temporary folder and says so on stderr, and tests run in
    // parallel (some kill migrations on purpose) must not see each other's.
    c.env("TMPDIR", private_tmp());
    c
}

/// A new folder under Cargo's per-target temporary folder, for one run's `TMPDIR`.
fn private_tmp() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-runs")
        .join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a run's temporary folder");
    dir
}

/// Spill folders (`vaxarc-spill-*`) in `dir`.
pub fn spill_folders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("vaxarc-spill-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Run and return output, asserting the exit code.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run vaxarc");
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Demo keys of a generated input folder: `keys/custodian-1.key` with `keys/signing.key`,
/// `keys/custodian-2.key`, `keys/vault.key` (the names its pipeline expects).
pub fn make_keys(input: &Path) {
    let keys = input.join("keys");
    run_ok(
        vaxarc()
            .args(["keygen", "--output"])
            .arg(keys.join("custodian-1.key"))
            .arg("--signing-key")
            .arg(keys.join("signing.key")),
    );
    for name in ["custodian-2.key", "vault.key"] {
        run_ok(vaxarc().args(["keygen", "--output"]).arg(keys.join(name)));
    }
}

/// A generated input set with demo keys, shared shape for tests.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Generate `people` synthetic people and keys into a fresh temp folder.
    pub fn new(people: usize, seed: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input");
        run_ok(vaxarc().args(["testdata", "--out"]).arg(&input).args([
            "--people",
            &people.to_string(),
            "--seed",
            &seed.to_string(),
        ]));
        make_keys(&input);
        Fixture { dir }
    }

    /// As [`Fixture::new`], with dirt rates from a `--config` TOML text.
    pub fn with_dirt(people: usize, seed: u64, config: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input");
        let cfg = dir.path().join("dirt.toml");
        std::fs::write(&cfg, config).unwrap();
        run_ok(
            vaxarc()
                .args(["testdata", "--out"])
                .arg(&input)
                .args(["--people", &people.to_string(), "--seed", &seed.to_string()])
                .arg("--config")
                .arg(&cfg),
        );
        make_keys(&input);
        Fixture { dir }
    }

    pub fn input(&self) -> PathBuf {
        self.dir.path().join("input")
    }

    pub fn pipeline(&self) -> PathBuf {
        self.input().join("pipeline.toml")
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.input().join("keys").join(name)
    }

    /// Migrate into `name` under the fixture folder; returns (archive path, output).
    pub fn migrate(&self, name: &str) -> (PathBuf, Output) {
        self.migrate_with(&self.pipeline(), name)
    }

    /// [`Fixture::migrate`] with another pipeline file.
    pub fn migrate_with(&self, pipeline: &Path, name: &str) -> (PathBuf, Output) {
        let archive = self.dir.path().join(name);
        let out = run_ok(
            vaxarc()
                .arg("migrate")
                .arg("--pipeline")
                .arg(pipeline)
                .arg("--archive")
                .arg(&archive)
                .arg("--json"),
        );
        (archive, out)
    }
}

/// Every personal value of the truth files that is long enough to be meaningful:
/// names, kana, atena, 個人番号, ticket numbers.
pub fn personal_values(input: &Path) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rdr = csv::Reader::from_path(input.join("truth/persons.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    for row in rdr.records() {
        let row = row.unwrap();
        for (h, v) in headers.iter().zip(row.iter()) {
            if matches!(
                h,
                "kanji_name"
                    | "kana_name"
                    | "atena_number"
                    | "kojin_bango"
                    | "ticket_number"
                    | "integrated_atena_number"
            ) && v.chars().count() >= 4
            {
                out.insert(v.to_string());
                // Also each part of a name.
                for part in v.split('\u{3000}').filter(|p| p.chars().count() >= 3) {
                    out.insert(part.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// How many kill -9 points each crash test tries (issue 10: 20 per command).
pub const KILL_POINTS: u32 = 20;

/// The i-th of [`KILL_POINTS`] kill times over a run that takes `full`: spread over the
/// whole run with a deterministic jitter, so different phases (ingest, sealing, the
/// commit, cleanup) are hit.
pub fn kill_point(full: std::time::Duration, i: u32) -> std::time::Duration {
    let jitter = (i.wrapping_mul(2_654_435_761) >> 8) % 1000; // 0..1000 per mille of one slot
    let slot = full / (KILL_POINTS + 1);
    slot * (i + 1) + slot * jitter / 1000 - slot / 2
}

/// Every file under a folder, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether `haystack` contains `needle` as UTF-8 bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && haystack.windows(n.len()).any(|w| w == n)
}

/// A matcher for many personal values at once (UTF-8 bytes).
pub fn matcher(values: &[String]) -> Scanner {
    Scanner {
        ac: aho_corasick::AhoCorasick::new(values.iter().map(|v| v.as_bytes())).unwrap(),
        digits: values
            .iter()
            .map(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .collect(),
    }
}

/// Finds personal values in bytes. A value made only of digits (an atena number, a
/// ticket number) counts only as a whole token: a 7-digit atena number inside a 64-digit
/// hex hash or a longer number is a coincidence, not a leak, and matching it there made the
/// scans flaky (a certificate holds dozens of hashes). Leading zeros are part of the value.
pub struct Scanner {
    ac: aho_corasick::AhoCorasick,
    digits: Vec<bool>,
}

impl Scanner {
    /// The index of the first personal value found in `hay`, if any.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        self.ac.find_overlapping_iter(hay).find_map(|m| {
            let i = m.pattern().as_usize();
            let alnum = |at: Option<&u8>| at.is_some_and(|b| b.is_ascii_alphanumeric());
            // Leading zeros still count as the value (the ledger zero-pads atena numbers).
            let start = hay[..m.start()]
                .iter()
                .rposition(|&b| b != b'0')
                .map_or(0, |p| p + 1);
            let glued = self.digits[i]
                && (alnum(start.checked_sub(1).and_then(|s| hay.get(s)))
                    || alnum(hay.get(m.end())));
            (!glued).then_some(i)
        })
    }
}

#[test]
fn scanner_matches_digit_values_only_as_whole_tokens() {
    let s = matcher(&["1234567".into(), "品川太郎".into()]);
    assert_eq!(s.find(b"{\"a\":\"1234567\"}"), Some(0));
    assert_eq!(s.find(b"1234567"), Some(0));
    assert_eq!(s.find(b"ab1234567"), None);
    assert_eq!(s.find(b"9f1234567e0"), None);
    assert_eq!(s.find(b"912345678"), None);
    assert_eq!(s.find(b",0001234567,"), Some(0));
    assert_eq!(s.find(b"a001234567"), None);
    assert_eq!(s.find(b"ab1234567 1234567,"), Some(0));
    assert_eq!(s.find("x品川太郎y".as_bytes()), Some(1));
    assert_eq!(s.find(b"nothing"), None);
}
