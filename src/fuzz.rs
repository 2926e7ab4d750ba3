//! Fuzz harness bodies: one function per cargo-fuzz target in `testdata/fuzz/`.
//!
//! Each function takes the fuzzer's bytes, feeds them to the real parsing code (the same
//! entry points the commands use) and asserts properties that must hold for every input:
//! no panic, no unbounded work, and cheap invariants where the code documents them
//! (accounting balances, a normaliser's output normalises to itself, a parsed manifest
//! or pipeline re-serialises and re-parses to the same value). A failed property is a
//! panic, which libFuzzer reports as a crash.
//!
//! The bodies live in the library, not in the fuzz crate, so that stable CI runs every
//! one over the seed corpora (`testdata/fuzz/corpus/`, `testdata/malformed/`): see the
//! tests at the end of this file and `docs/fuzzing.md`. Assertion messages never print
//! field values, only positions and kinds: a crash report must not carry personal data
//! even when a seed does not.

use std::path::Path;
use std::sync::OnceLock;

use crate::ingest::{self, FileAccounting, IngestError};
use crate::layout::Layout;
use crate::normalise::{self, Kind, Tables};
use crate::pipeline::{Pipeline, PipelineFile, Source};
use crate::schema::Schema;

/// Built-in layout ids, in the order of the `csv_*` targets.
pub const LAYOUTS: [&str; 4] = ["ledger", "vrs-ledger-export", "vrs-persons", "registry"];

/// A source reading the fuzz input with a built-in layout (parsed once per process).
fn builtin_source(id: &'static str) -> &'static Source {
    static SOURCES: OnceLock<Vec<Source>> = OnceLock::new();
    let sources = SOURCES.get_or_init(|| {
        LAYOUTS
            .iter()
            .map(|layout| Source {
                id: format!("fuzz-{layout}"),
                path: format!("fuzz-{layout}.csv").into(),
                layout: Layout::builtin(layout, Schema::embedded())
                    .expect("built-in layouts are valid"),
            })
            .collect()
    });
    let i = LAYOUTS
        .iter()
        .position(|l| *l == id)
        .expect("a built-in layout id");
    &sources[i]
}

/// Read `data` as a source file with `source`'s layout and check what ingest promises:
/// every row accounted for, records and quarantine entries consistent with the counts,
/// line numbers past the header, and errors that name a place rather than a value.
fn ingest_bytes(source: &Source, data: &[u8]) {
    let schema = Schema::embedded();
    let tables = Tables::embedded();
    match ingest::read_bytes(source, schema, tables, data, &|_| {}) {
        Ok((records, quarantine, accounting)) => {
            check_accounting(source, &accounting, records.len(), &quarantine);
            let line = schema.idx("source_line");
            for r in &records {
                let l = r.at(line).as_int().unwrap_or(0);
                assert!(l >= 2, "a record on line {l}, at or before the header");
            }
            for q in &quarantine {
                assert!(q.line >= 2, "a quarantine entry on line {}", q.line);
                assert_eq!(q.file_id, source.id);
            }
        }
        Err(e) => {
            // Every failure is one of the documented, one-line refusals.
            let message = e.to_string();
            assert!(!message.contains('\n'), "a multi-line error");
            match e {
                IngestError::Empty { .. }
                | IngestError::MissingHeader { .. }
                | IngestError::DuplicateHeader { .. }
                | IngestError::HeaderEncoding { .. }
                | IngestError::Csv { .. } => {}
                IngestError::Io { .. } => panic!("an I/O error reading bytes in memory"),
            }
        }
    }
}

fn check_accounting(
    source: &Source,
    accounting: &FileAccounting,
    records: usize,
    quarantine: &[ingest::QuarantineEntry],
) {
    assert!(accounting.balanced(), "accounting does not balance");
    let produced = if source.layout.kind.produces_records() {
        accounting.records
    } else {
        accounting.persons
    };
    assert_eq!(produced, records as u64, "records differ from the count");
    let whole = quarantine.iter().filter(|q| q.dose.is_none()).count() as u64;
    let groups = quarantine.len() as u64 - whole;
    assert_eq!(whole, accounting.rows_quarantined, "quarantined rows");
    assert_eq!(
        groups, accounting.dose_groups_quarantined,
        "quarantined dose groups"
    );
}

/// Target `csv_ledger`: a 予防接種台帳 export (`schemas/sources/ledger.toml`).
pub fn csv_ledger(data: &[u8]) {
    ingest_bytes(builtin_source("ledger"), data);
}

/// Target `csv_vrs_ledger_export`: the wide VRS export, pivoted per dose.
pub fn csv_vrs_ledger_export(data: &[u8]) {
    ingest_bytes(builtin_source("vrs-ledger-export"), data);
}

/// Target `csv_vrs_persons`: VRS person rows.
pub fn csv_vrs_persons(data: &[u8]) {
    ingest_bytes(builtin_source("vrs-persons"), data);
}

/// Target `csv_registry`: the 住民基本台帳 extract.
pub fn csv_registry(data: &[u8]) {
    ingest_bytes(builtin_source("registry"), data);
}

/// Target `normalise`: the first byte picks the [`Kind`] (modulo the number of kinds, so
/// every kind is reachable), the rest is the raw value (invalid UTF-8 replaced, as the
/// `vaxarc normalise` command does). Checks the documented contract of
/// [`normalise::normalise`]: blank input is `Null` without a flag, and a non-null result
/// renders to text that normalises back to the same value, without a flag.
pub fn normalise(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(selector) % Kind::ALL.len()];
    let raw = String::from_utf8_lossy(rest);
    let tables = Tables::embedded();
    let result = normalise::normalise(kind, &raw, tables);
    if raw.chars().all(char::is_whitespace) {
        assert_eq!(
            result,
            Ok(normalise::Normalised::null()),
            "{kind}: blank input is not Null"
        );
    }
    let Ok(first) = result else { return };
    if first.value.is_null() {
        return;
    }
    let rendered = normalise::render(&first.value);
    let second = normalise::normalise(kind, &rendered, tables);
    assert!(
        second == Ok(normalise::Normalised::ok(first.value.clone())),
        "{kind}: not idempotent (the rendered value normalises to something else)"
    );
}

/// A fixed minisign public key for signature parsing when the manifest has none.
fn fallback_public_key() -> &'static minisign::PublicKey {
    static KEY: OnceLock<minisign::PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // "Ed", key id 1..=8, 32 bytes of key: well-formed, matches no real signer.
        let mut raw = b"Ed".to_vec();
        raw.extend(1..=8u8);
        raw.extend(std::iter::repeat_n(7u8, 32));
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(raw);
        minisign::PublicKey::from_base64(&text).expect("a well-formed public key")
    })
}

/// Target `manifest`: `MANIFEST.json` bytes, optionally followed by a NUL byte and the
/// text of `MANIFEST.json.minisig`. Runs what `verify` does with those two untrusted
/// objects before it touches any other object: parse and path checks
/// ([`crate::archive::parse_manifest`]), the signing key from the manifest, the
/// signature over the manifest bytes, the Merkle root over the file list and the key id.
/// A manifest that parses must re-serialise and re-parse to the same value.
pub fn manifest(data: &[u8]) {
    use crate::archive::{manifest as m, parse_manifest, verify};
    let (text, signature) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let signature = signature.map(String::from_utf8_lossy);
    let parsed = parse_manifest(text);
    let Ok(manifest) = parsed else {
        if let Some(sig) = &signature {
            let _ = m::verify_signature(fallback_public_key(), text, sig);
        }
        return;
    };
    for f in &manifest.files {
        assert!(verify::safe_object_path(&f.path), "an unsafe path accepted");
    }
    let key = minisign::PublicKey::from_base64(&manifest.signing_public_key).ok();
    if let Some(sig) = &signature {
        let key = key.as_ref().unwrap_or_else(|| fallback_public_key());
        let _ = m::verify_signature(key, text, sig);
    }
    let _ = m::files_root(&manifest.files);
    let _ = verify::key_id_of(&manifest);
    // Round trip: what purge, erase and rekey write back must read the same.
    let again = serde_json::to_vec_pretty(&manifest).expect("a parsed manifest serialises");
    let reparsed = parse_manifest(&again).expect("a re-serialised manifest parses");
    let a = serde_json::to_value(&manifest).expect("to a JSON value");
    let b = serde_json::to_value(&reparsed).expect("to a JSON value");
    assert!(json_equal(&a, &b), "manifest changed in a round trip");
}

/// JSON equality where floats may differ in the last place (serde_json's default float
/// parsing is not correctly rounded; a statistic off by one ulp is not a finding).
fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
                _ => false,
            }
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Target `pipeline`: `pipeline.toml` text, optionally followed by a NUL byte and the
/// text every non-built-in `layout = "…"` path reads as (no file is ever opened).
/// A pipeline that parses must re-serialise to TOML that parses to the same file; each
/// of its sources must compile against a header of its own layout's columns and read
/// a one-row file.
pub fn pipeline(data: &[u8]) {
    let (text, layout) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], String::from_utf8_lossy(&data[i + 1..])),
        None => (data, "".into()),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let schema = Schema::embedded();
    let read_layout = |_: &Path| Ok(layout.to_string());
    let Ok(pipeline) = Pipeline::parse_with(
        text,
        Path::new("pipeline.toml"),
        Path::new("/nonexistent-vaxarc-fuzz"),
        schema,
        &read_layout,
    ) else {
        return;
    };
    let again = toml::to_string(&pipeline.file).expect("a parsed pipeline serialises");
    let reparsed: PipelineFile = toml::from_str(&again).expect("a re-serialised pipeline parses");
    assert_eq!(
        serde_json::to_value(&pipeline.file).ok(),
        serde_json::to_value(&reparsed).ok(),
        "pipeline changed in a round trip"
    );
    for source in &pipeline.sources {
        read_own_header(source);
    }
}

/// Compile a (possibly fuzzed) layout against a file made of its own headers and one
/// row of the same text, through the real ingest path.
fn read_own_header(source: &Source) {
    let layout = &source.layout;
    let mut headers: Vec<String> = layout.column.iter().map(|c| c.header.clone()).collect();
    if let Some(pivot) = &layout.pivot {
        // Two groups are enough to exercise the pivot; 99 would only cost time.
        for n in 1..=pivot.groups.min(2) {
            for c in &pivot.column {
                headers.push(c.header.replace("{n}", &n.to_string()));
            }
        }
    }
    let delimiter = char::from(layout.delimiter as u8).to_string();
    let line = headers.join(&delimiter);
    let file = format!("{line}\n{line}\n");
    ingest_bytes(source, file.as_bytes());
}

/// Target `config`: the other TOML files a run reads. The first byte picks the parser
/// (modulo 8): the record schema, a retention policy, match rules, a source layout
/// (then read through ingest as in [`pipeline`]), or one of the four code tables (the
/// other three embedded).
pub fn config(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    const VACCINES: &str = include_str!("../schemas/codes/vaccines.toml");
    const MANUFACTURERS: &str = include_str!("../schemas/codes/manufacturers.toml");
    const STAGES: &str = include_str!("../schemas/codes/stages.toml");
    const KANJI: &str = include_str!("../schemas/codes/kanji_variants.toml");
    match selector % 8 {
        0 => {
            let _ = Schema::from_toml(text);
        }
        1 => {
            let _ = crate::purge::Rules::from_toml("retention.toml", text);
        }
        2 => {
            let _ = crate::reconcile::Rules::from_toml(text);
        }
        3 => {
            if let Ok(layout) = Layout::from_toml(text, Schema::embedded()) {
                read_own_header(&Source {
                    id: "fuzz-layout".into(),
                    path: "fuzz-layout.csv".into(),
                    layout,
                });
            }
        }
        4 => {
            let _ = Tables::from_toml(text, MANUFACTURERS, STAGES, KANJI);
        }
        5 => {
            let _ = Tables::from_toml(VACCINES, text, STAGES, KANJI);
        }
        6 => {
            let _ = Tables::from_toml(VACCINES, MANUFACTURERS, text, KANJI);
        }
        _ => {
            let _ = Tables::from_toml(VACCINES, MANUFACTURERS, STAGES, text);
        }
    }
}

/// A target body.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `testdata/fuzz/fuzz_targets/`), for the
/// seed-corpus test.
pub const TARGETS: [(&str, Target); 8] = [
    ("csv_ledger", csv_ledger),
    ("csv_vrs_ledger_export", csv_vrs_ledger_export),
    ("csv_vrs_persons", csv_vrs_persons),
    ("csv_registry", csv_registry),
    ("normalise", normalise),
    ("manifest", manifest),
    ("pipeline", pipeline),
    ("config", config),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.retain(|p| p.is_file());
        out.sort();
        out
    }

    /// Every harness over its own seed corpus and over `testdata/malformed/`: what the
    /// long fuzz runs check, on the inputs we keep, in every CI run.
    #[test]
    fn every_target_passes_its_seeds_and_the_malformed_corpus() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let malformed = files_in(&root.join("malformed"));
        assert!(!malformed.is_empty());
        for (name, target) in TARGETS {
            let seeds = files_in(&root.join("fuzz/corpus").join(name));
            assert!(!seeds.is_empty(), "no seeds for `{name}`");
            for path in seeds.iter().chain(&malformed) {
                let data = std::fs::read(path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "`{name}` fails on {}", path.display());
            }
        }
    }

    /// The in-memory reader the fuzz targets use agrees with the file reader.
    #[test]
    fn read_bytes_agrees_with_read_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let schema = Schema::embedded();
        let tables = Tables::embedded();
        for (layout, target) in LAYOUTS.iter().zip(TARGETS) {
            let dir = root.join("fuzz/corpus").join(target.0);
            for path in files_in(&dir)
                .iter()
                .chain(&files_in(&root.join("malformed")))
            {
                let data = std::fs::read(path).unwrap();
                let source = Source {
                    id: "same".into(),
                    path: path.clone(),
                    layout: Layout::builtin(layout, schema).unwrap(),
                };
                let from_file = ingest::read_file(&source, schema, tables, &|_| {});
                let from_bytes = ingest::read_bytes(&source, schema, tables, &data, &|_| {});
                match (from_file, from_bytes) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.0, b.0, "{}", path.display());
                        assert_eq!(a.2, b.2, "{}", path.display());
                        let lines = |q: &[ingest::QuarantineEntry]| {
                            q.iter()
                                .map(|e| (e.line, e.reason.clone(), e.raw.clone()))
                                .collect::<Vec<_>>()
                        };
                        assert_eq!(lines(&a.1), lines(&b.1), "{}", path.display());
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    _ => panic!("read_file and read_bytes disagree on {}", path.display()),
                }
            }
        }
    }

    /// The hand-made seeds are valid inputs, so the fuzzers start past the parsers'
    /// front doors (a seed that stops parsing would silently weaken the runs).
    #[test]
    fn seeds_reach_the_deep_paths() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz/corpus");
        let read = |p: &str| std::fs::read(corpus.join(p)).unwrap();
        let schema = Schema::embedded();
        let tables = Tables::embedded();
        for (layout, (name, _)) in LAYOUTS.iter().zip(TARGETS) {
            let data = read(&format!("{name}/utf8.csv"));
            let (records, quarantine, _) =
                ingest::read_bytes(builtin_source(layout), schema, tables, &data, &|_| {}).unwrap();
            assert!(!records.is_empty(), "{name}: {quarantine:?}");
        }
        crate::archive::parse_manifest(&read("manifest/manifest.json")).unwrap();
        let text = String::from_utf8(read("pipeline/builtin-layouts.toml")).unwrap();
        let p = Pipeline::parse(&text, Path::new("p"), Path::new("."), schema).unwrap();
        assert_eq!(p.sources.len(), 4);
        for layout in LAYOUTS {
            let data = read(&format!("pipeline/custom-{layout}"));
            let i = data.iter().position(|&b| b == 0).unwrap();
            let text = std::str::from_utf8(&data[..i]).unwrap();
            let layout_text = String::from_utf8(data[i + 1..].to_vec()).unwrap();
            let read_layout = |_: &Path| Ok(layout_text.clone());
            Pipeline::parse_with(text, Path::new("p"), Path::new("."), schema, &read_layout)
                .unwrap();
        }
    }

    #[test]
    fn every_kind_is_reachable_from_the_selector_byte() {
        let reached: std::collections::HashSet<Kind> = (0..=255u8)
            .map(|b| Kind::ALL[usize::from(b) % Kind::ALL.len()])
            .collect();
        assert_eq!(reached.len(), Kind::ALL.len());
    }
}
