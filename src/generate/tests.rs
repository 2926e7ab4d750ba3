//! Generator tests: determinism, truth ↔ files, dirt rates, CP932 vs iconv.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

use super::*;

/// One shared 5,000-person run for the read-back tests.
fn fixture() -> &'static (tempfile::TempDir, PathBuf, Summary, Config) {
    static F: OnceLock<(tempfile::TempDir, PathBuf, Summary, Config)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let config = Config {
            people: 5000,
            seed: 42,
            ..Config::default()
        };
        let summary = generate(&config, &out).expect("generate");
        (dir, out, summary, config)
    })
}

fn all_files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(
                    rel,
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                );
            }
        }
    }
    out
}

#[test]
fn generate_is_deterministic_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        people: 300,
        seed: 7,
        ..Config::default()
    };
    let mut hashes = Vec::new();
    for threads in [1, 4] {
        let out = dir.path().join(format!("t{threads}"));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| generate(&config, &out)).unwrap();
        hashes.push(all_files(&out));
    }
    assert!(hashes[0].len() >= 15, "{:?}", hashes[0].keys());
    assert_eq!(hashes[0], hashes[1]);
    // several chunks (CHUNK people each) scheduled differently
    let big = Config {
        people: 2 * CHUNK + 100,
        ..config.clone()
    };
    let mut big_hashes = Vec::new();
    for threads in [1, 3] {
        let out = dir.path().join(format!("big{threads}"));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| generate(&big, &out)).unwrap();
        big_hashes.push(all_files(&out));
    }
    assert_eq!(big_hashes[0], big_hashes[1]);
    // the first 300 people of the big run are the 300-person run (per-person RNG)
    let small = std::fs::read_to_string(dir.path().join("t1/truth/persons.csv")).unwrap();
    let bigp = std::fs::read_to_string(dir.path().join("big1/truth/persons.csv")).unwrap();
    assert!(bigp.starts_with(&small));
    // a different seed gives different data
    let out = dir.path().join("other");
    generate(
        &Config {
            seed: 8,
            ..config.clone()
        },
        &out,
    )
    .unwrap();
    assert_ne!(
        all_files(&out)["truth/persons.csv"],
        hashes[0]["truth/persons.csv"]
    );
    // refuses a non-empty directory
    assert!(generate(&config, &dir.path().join("t1")).is_err());
}

#[test]
fn generate_config_from_toml() {
    let c = Config::from_toml("people = 5\nseed = 3\n[dirt]\nkana_typo = 0.5\n").unwrap();
    assert_eq!(c.people, 5);
    assert_eq!(c.dirt.kana_typo, 0.5);
    assert_eq!(c.dirt.kojin_missing, Dirt::default().kojin_missing);
    assert_eq!(c.municipality_code, "131091");
    assert!(Config::from_toml("[dirt]\nkana_typo = 1.5\n").is_err());
    assert!(Config::from_toml("[dirt]\nno_such_rate = 0.1\n").is_err());
    assert!(Config::from_toml("municipality_code = \"131092\"\n").is_err());
}

#[test]
fn generate_pools_are_cp932_safe() {
    let p = names::pools();
    for e in p.family.iter().chain(&p.male).chain(&p.female) {
        let mut texts: Vec<String> = e.kanji.iter().map(|s| s.to_string()).collect();
        texts.push(e.kana.into());
        texts.push(names::to_halfwidth(e.kana));
        texts.push(names::to_hiragana(e.kana));
        for t in texts {
            let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(&t);
            assert!(!bad, "{t} not encodable in CP932");
            let (back, _, bad) = encoding_rs::SHIFT_JIS.decode(&b);
            assert!(!bad && back == t, "{t} does not round-trip");
        }
    }
}

/// Decode a source file as its summary says.
fn decode(bytes: &[u8], enc: &str) -> String {
    match enc {
        "cp932" => encoding_rs::SHIFT_JIS
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
        "utf-8-bom" => {
            assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
            String::from_utf8_lossy(&bytes[3..]).into_owned()
        }
        _ => {
            assert!(!bytes.starts_with(b"\xEF\xBB\xBF"));
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

type TruthLine = BTreeMap<String, String>;

fn truth_rows(out: &Path) -> Vec<TruthLine> {
    let mut r = csv::Reader::from_path(out.join("truth/rows.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            h.iter()
                .zip(rec.iter())
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        })
        .collect()
}

/// A western date (2024/09/30, 2024-9-30, 20240930) → YYYY-MM-DD, else None.
fn western(s: &str) -> Option<String> {
    let valid = |y: &str, m: &str, d: &str| -> Option<String> {
        let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        crate::record::days_from_civil(y, m, d).map(crate::record::format_date)
    };
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return valid(&s[..4], &s[4..6], &s[6..]);
    }
    let parts: Vec<&str> = s.split(['/', '-']).collect();
    if parts.len() == 3
        && parts[0].len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return valid(parts[0], parts[1], parts[2]);
    }
    None
}

/// What the normaliser does to a name, as far as the test can do without it.
fn fold_name(s: &str, kana: bool) -> String {
    let n: String = s.nfkc().collect();
    let mut out = String::new();
    let mut in_space = false;
    for c in n.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push('\u{3000}');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        if kana && ('\u{3041}'..='\u{3096}').contains(&c) {
            out.push(char::from_u32(c as u32 + 0x60).unwrap());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn generate_truth_agrees_with_files() {
    let (_d, out, summary, _config) = fixture();
    let truth = truth_rows(out);
    let mut by_file: BTreeMap<&str, BTreeMap<u64, Vec<&TruthLine>>> = BTreeMap::new();
    for t in &truth {
        by_file
            .entry(t["file_id"].as_str())
            .or_default()
            .entry(t["line"].parse().unwrap())
            .or_default()
            .push(t);
    }
    let mut checked = BTreeMap::<&str, u64>::new();
    for f in &summary.files {
        let bytes = std::fs::read(out.join(&f.path)).unwrap();
        assert_eq!(bytes.len() as u64, f.bytes);
        if f.crlf {
            // every LF is part of a CRLF
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\n' {
                    assert_eq!(bytes[i - 1], b'\r', "{} bare LF", f.id);
                }
            }
        } else {
            assert!(!bytes.contains(&b'\r'), "{} has CR", f.id);
        }
        let text = decode(&bytes, &f.encoding);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rec = csv::StringRecord::new();
        let mut header_len = 0;
        let mut seen = BTreeSet::new();
        let expect = by_file.get(f.id.as_str()).cloned().unwrap_or_default();
        let mut n = 0u64;
        let tb = text.as_bytes();
        let (mut cur_byte, mut cur_line) = (0usize, 1u64);
        while rdr.read_record(&mut rec).unwrap() {
            // csv's Position::line() is off by one after CRLF terminators (the LF is
            // consumed with the next record), so count physical lines from the byte offset.
            let mut b = rec.position().unwrap().byte() as usize;
            while b < tb.len() && (tb[b] == b'\r' || tb[b] == b'\n') {
                b += 1;
            }
            cur_line += tb[cur_byte..b].iter().filter(|x| **x == b'\n').count() as u64;
            cur_byte = b;
            let line = cur_line;
            if line == 1 {
                header_len = rec.len();
                continue;
            }
            n += 1;
            let ts = expect
                .get(&line)
                .unwrap_or_else(|| panic!("{} line {line}: no truth", f.id));
            seen.insert(line);
            let wrong = ts.iter().any(|t| t["reason"] == "wrong_column_count");
            if wrong {
                assert_ne!(rec.len(), header_len, "{} line {line}", f.id);
                continue;
            }
            assert_eq!(rec.len(), header_len, "{} line {line}", f.id);
            if ts.iter().any(|t| t["reason"] == "undecodable_bytes") {
                continue;
            }
            for t in ts {
                check_row(&f.layout, &rec, t, line);
                *checked.entry(t["outcome"].as_str()).or_default() += 1;
            }
        }
        assert_eq!(n, f.rows, "{}", f.id);
        let missing: Vec<_> = expect.keys().filter(|l| !seen.contains(l)).collect();
        assert!(
            missing.is_empty(),
            "{}: truth lines without a row: {missing:?}",
            f.id
        );
    }
    assert!(
        checked.get("record").copied().unwrap_or(0) > 10_000,
        "{checked:?}"
    );
    assert!(
        checked.get("person").copied().unwrap_or(0) > 5_000,
        "{checked:?}"
    );
    // every person id in rows.csv exists in persons.csv
    let persons = std::fs::read_to_string(out.join("truth/persons.csv")).unwrap();
    assert_eq!(persons.lines().count(), 5001);
    // dose keys shared by VRS and ledger copies are the merged / conflict ones
    let mut keys: BTreeMap<&str, Vec<&TruthLine>> = BTreeMap::new();
    for t in &truth {
        if !t["dose_key"].is_empty() {
            keys.entry(t["dose_key"].as_str()).or_default().push(t);
        }
    }
    let (mut merged, mut conflict) = (0, 0);
    for (k, ts) in &keys {
        assert!(ts.len() <= 2, "{k}");
        let recs: Vec<_> = ts.iter().filter(|t| t["outcome"] == "record").collect();
        for t in &recs {
            match t["merge"].as_str() {
                "merged" | "conflict" => assert_eq!(recs.len(), 2, "{k}"),
                "single" => assert_eq!(recs.len(), 1, "{k}"),
                m => panic!("{k}: merge {m}"),
            }
        }
        if recs.len() == 2 {
            assert_eq!(recs[0]["merge"], recs[1]["merge"]);
            let same = recs[0]["vaccination_date"] == recs[1]["vaccination_date"]
                && recs[0]["lot_number"] == recs[1]["lot_number"];
            assert_eq!(same, recs[0]["merge"] == "merged", "{k}");
            assert_eq!(recs[0]["manufacturer_code"], recs[1]["manufacturer_code"]);
            if same {
                merged += 1;
            } else {
                conflict += 1;
            }
        }
    }
    assert!(
        merged > 1000 && conflict > 5,
        "merged {merged} conflict {conflict}"
    );
}

fn check_row(layout: &str, rec: &csv::StringRecord, t: &TruthLine, line: u64) {
    let ctx = format!("{layout} line {line}");
    let quarantined = t["outcome"] == "quarantined";
    let kojin_ok = |raw: &str| {
        if !t["kojin_bango"].is_empty() {
            assert_eq!(raw, t["kojin_bango"], "{ctx}");
            assert!(kojin_valid(raw), "{ctx}");
        } else if t["flags"].contains("invalid_check_digit") {
            assert!(raw.len() == 12 && !kojin_valid(raw), "{ctx}");
        } else {
            assert_eq!(raw, "", "{ctx}");
        }
    };
    let names_ok = |kanji: &str, kana: &str| {
        assert_eq!(fold_name(kanji, false), t["kanji_name"], "{ctx}");
        assert_eq!(fold_name(kana, true), t["kana_name"], "{ctx}");
    };
    match layout {
        "registry" => {
            assert_eq!(&rec[0], t["atena_number"], "{ctx}");
            kojin_ok(&rec[2]);
            names_ok(&rec[3], &rec[4]);
            if let Some(d) = western(&rec[5]) {
                assert_eq!(d, t["birth_date"], "{ctx}");
            }
        }
        "vrs-persons" => {
            assert_eq!(&rec[0], t["atena_number"], "{ctx}");
            kojin_ok(&rec[1]);
            names_ok(&rec[2], &rec[3]);
            assert_eq!(western(&rec[4]).unwrap(), t["birth_date"], "{ctx}");
            assert_eq!(&rec[6], t["municipality_code"], "{ctx}");
            assert!(municipality_valid(&rec[6]));
            assert_eq!(&rec[7], t["ticket_number"], "{ctx}");
        }
        "vrs-ledger-export" => {
            let n: usize = t["dose"].parse().expect("dose group");
            let g = 1 + (n - 1) * 8;
            assert_eq!(&rec[0], t["atena_number"], "{ctx}");
            assert_eq!(rec[g].len(), 14, "{ctx}");
            if !quarantined {
                assert_eq!(
                    western(&rec[g + 1]).unwrap(),
                    t["vaccination_date"],
                    "{ctx}"
                );
            } else if t["reason"] == "missing_vaccination_date" {
                assert_eq!(&rec[g + 1], "", "{ctx}");
            } else {
                assert!(western(&rec[g + 1]).is_none(), "{ctx}");
            }
            assert_eq!(&rec[g + 2], t["ticket_number"], "{ctx}");
            assert_eq!(&rec[g + 3], t["municipality_code"], "{ctx}");
            assert_eq!(rec[g + 7].to_uppercase(), t["lot_number"], "{ctx}");
            assert_eq!(t["dose_number"], n.to_string());
        }
        "ledger" => {
            assert_eq!(rec[0].trim_start_matches('0'), t["atena_number"], "{ctx}");
            names_ok(&rec[1], &rec[2]);
            kojin_ok(&rec[26]);
            assert_eq!(rec[14].to_uppercase(), t["lot_number"], "{ctx}");
            if let Some(d) = western(&rec[18]) {
                assert!(!quarantined, "{ctx}");
                assert_eq!(d, t["vaccination_date"], "{ctx}");
            }
            if t["reason"] == "missing_vaccination_date" {
                assert_eq!(&rec[18], "", "{ctx}");
            } else {
                assert!(!rec[18].is_empty(), "{ctx}");
            }
            if let Some(d) = western(&rec[3]) {
                assert_eq!(d, t["birth_date"], "{ctx}");
            }
            if rec[15].is_empty() {
                assert_eq!(t["manufacturer_code"], "", "{ctx}");
            }
        }
        _ => panic!("layout {layout}"),
    }
}

#[test]
fn generate_dirt_rates_match_config() {
    let (_d, out, _summary, config) = fixture();
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("truth/summary.json")).unwrap()).unwrap();
    let dirt = s["dirt"].as_object().unwrap();
    let mut report = Vec::new();
    for (name, v) in dirt {
        let p = config
            .dirt
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in Dirt"));
        let n = v["eligible"].as_u64().unwrap();
        let count = v["count"].as_u64().unwrap();
        assert!(n > 0, "{name}: no eligible unit");
        let r = count as f64 / n as f64;
        let tol = 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1.0 / n as f64;
        report.push(format!(
            "{name}: {count}/{n} = {r:.4} (configured {p}, tol {tol:.4})"
        ));
        assert!((r - p).abs() <= tol, "{}", report.last().unwrap());
        // row-level kinds must actually occur in a 5,000-person run
        if n >= 1000 && p * n as f64 >= 10.0 {
            assert!(count > 0, "{name} never occurs");
        }
    }
    // every Dirt field is counted
    for (name, _) in config.dirt.rates() {
        assert!(dirt.contains_key(&name), "{name} not in summary.json");
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn generate_cp932_files_decode_like_iconv() {
    let (_d, out, summary, _config) = fixture();
    if std::process::Command::new("iconv")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("iconv is not installed: install it (Debian: libc-bin, `which iconv`)");
    }
    let truth = truth_rows(out);
    let mut checked = 0;
    for f in summary.files.iter().filter(|f| f.encoding == "cp932") {
        let bytes = std::fs::read(out.join(&f.path)).unwrap();
        let starts: BTreeSet<u64> = truth
            .iter()
            .filter(|t| t["file_id"] == f.id)
            .map(|t| t["line"].parse().unwrap())
            .collect();
        let bad: BTreeSet<u64> = truth
            .iter()
            .filter(|t| t["file_id"] == f.id && t["reason"] == "undecodable_bytes")
            .map(|t| t["line"].parse().unwrap())
            .collect();
        // physical lines of undecodable records: from their start to the next record start
        let mut skip = BTreeSet::new();
        for &b in &bad {
            let next = starts.range(b + 1..).next().copied().unwrap_or(u64::MAX);
            let mut l = b;
            while l < next && l < b + 10 {
                skip.insert(l);
                l += 1;
            }
        }
        let mut kept = Vec::new();
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            if !skip.contains(&(i as u64 + 1)) {
                kept.extend_from_slice(line);
            }
        }
        let (ours, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&kept);
        assert!(
            !had_errors,
            "{}: encoding_rs errors outside undecodable lines",
            f.id
        );
        let mut child = std::process::Command::new("iconv")
            .args(["-f", "CP932", "-t", "UTF-8"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run iconv");
        let mut stdin = child.stdin.take().unwrap();
        let data = kept.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&data).unwrap();
        });
        let res = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(res.status.success(), "{}: iconv failed", f.id);
        let theirs = String::from_utf8(res.stdout).unwrap();
        if theirs != ours {
            let (a, b): (Vec<char>, Vec<char>) = (ours.chars().collect(), theirs.chars().collect());
            let i = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{}: encoding_rs and iconv differ at char {i}: {:?} vs {:?}",
                f.id,
                a.get(i).map(|c| format!("U+{:04X}", *c as u32)),
                b.get(i).map(|c| format!("U+{:04X}", *c as u32))
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no CP932 file in the fixture");
}

/// `cargo test --release --lib generate_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn generate_speed_1m() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        people: std::env::var("VAXARC_GEN_PEOPLE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000),
        ..Config::default()
    };
    let t = std::time::Instant::now();
    let s = generate(&config, &dir.path().join("out")).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let bytes: u64 = s.files.iter().map(|f| f.bytes).sum();
    eprintln!(
        "{} people, {} records, {} source bytes in {secs:.1}s ({} threads)",
        s.people,
        s.records,
        bytes,
        rayon::current_num_threads()
    );
}

/// `VAXARC_GEN_OUT=/tmp/x cargo test --lib generate_to_dir -- --ignored`
#[test]
#[ignore]
fn generate_to_dir() {
    let out = std::env::var("VAXARC_GEN_OUT").expect("VAXARC_GEN_OUT");
    let people = std::env::var("VAXARC_GEN_PEOPLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let seed = std::env::var("VAXARC_GEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    generate(
        &Config {
            people,
            seed,
            ..Config::default()
        },
        Path::new(&out),
    )
    .unwrap();
}

/// Documents a `csv` crate quirk the ingest stage must know: after a CRLF terminator the
/// LF is counted with the next record, so `Position::line()` is one too small.
#[test]
fn generate_csv_positions_probe() {
    let lines = |text: &str| {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut rec = csv::StringRecord::new();
        let mut v = Vec::new();
        while rdr.read_record(&mut rec).unwrap() {
            v.push(rec.position().unwrap().line());
        }
        v
    };
    assert_eq!(lines("h\na\nb\n\"x\ny\"\nc\n"), vec![1, 2, 3, 4, 6]);
    assert_eq!(
        lines("h\r\na\r\nb\r\n\"x\r\ny\"\r\nc\r\n"),
        vec![1, 1, 2, 3, 5]
    );
}

/// Phase timing of the pure core: `cargo test --release --lib generate_core_profile -- --ignored --nocapture`
#[test]
#[ignore]
fn generate_core_profile() {
    let mut config = Config {
        people: 100_000,
        ..Config::default()
    };
    if std::env::var("NO_CP932").is_ok() {
        config.dirt.ledger_cp932 = 0.0;
        config.dirt.registry_cp932 = 0.0;
    }
    let specs = rows::file_specs(&config);
    let mix = people::SeedMix::new(config.seed);
    let t = std::time::Instant::now();
    let ps: Vec<_> = (0..config.people as u64)
        .map(|i| people::person(&config, &mix, i))
        .collect();
    let t1 = t.elapsed();
    let mut out = rows::ChunkOut::new();
    for p in &ps {
        rows::person_rows(&config, &specs, p, &mut out);
    }
    let t2 = t.elapsed() - t1;
    let bytes: usize = out.files.iter().map(|f| f.bytes.len()).sum();
    eprintln!(
        "people {t1:?}, rows {t2:?}, {bytes} bytes, {} truth",
        out.truth.len()
    );
}

#[test]
fn generate_cp932_table_matches_encoding_rs() {
    let samples = "宛名番号,髙橋　﨑,ｶﾞｯｺｳ ①②③ ＭＳＤ 武田／モデルナ DPT―IPV ー〒\\~ 令和元年";
    let mut ours = Vec::new();
    rows::encode_into_for_test(&mut ours, samples);
    let (theirs, _, bad) = encoding_rs::SHIFT_JIS.encode(samples);
    assert!(!bad);
    assert_eq!(ours, theirs.into_owned());
}
