//! Pipeline definitions (`pipeline.toml`): which source files to read with which
//! layout, where the keys are, and which rules apply.
//!
//! Paths in a pipeline are relative to the pipeline file's folder. A pipeline is
//! validated completely (every layout found and valid, every path present) before any
//! work starts, so a bad pipeline is a one-line refusal, not a half-done run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, LayoutError};
use crate::schema::Schema;

/// A pipeline file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Name of the run (free text, no personal data).
    pub name: String,
    /// The sources are synthetic (`vaxarc testdata` sets it): reports made from the
    /// archive say so in a banner, so that demo figures are never taken for a city's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
    /// The municipality's 6-digit 地方公共団体コード.
    pub municipality_code: String,
    /// Source files.
    #[serde(rename = "source")]
    pub sources: Vec<SourceEntry>,
    /// Key locations.
    #[serde(default)]
    pub archive: ArchiveEntry,
    /// Reconciliation settings.
    #[serde(default)]
    pub reconcile: ReconcileEntry,
    /// Retention settings.
    #[serde(default)]
    pub retention: RetentionEntry,
}

/// One source file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Id of the file in manifests and accounting (no personal data).
    pub id: String,
    /// A built-in layout id, or a path to a layout file.
    pub layout: String,
    /// Path to the CSV file.
    pub path: PathBuf,
}

/// Key locations.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveEntry {
    /// Custodian recipients: `age1…` strings or paths to files holding them.
    #[serde(default)]
    pub custodians: Vec<String>,
    /// Vault recipients (個人番号 and passport items).
    #[serde(default)]
    pub vault: Vec<String>,
    /// minisign secret key that signs the manifest.
    pub signing_key: Option<PathBuf>,
    /// Number of person buckets (default: [`crate::archive::default_buckets`] of the record count).
    pub buckets: Option<u16>,
}

/// Reconciliation settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileEntry {
    /// A match-rules file replacing `pipelines/match/default.toml`.
    pub rules: Option<PathBuf>,
}

/// Retention settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionEntry {
    /// A retention policy file replacing the built-in one.
    pub policy: Option<PathBuf>,
}

/// A source resolved against its layout.
#[derive(Clone, Debug)]
pub struct Source {
    /// Id of the file.
    pub id: String,
    /// Absolute or pipeline-relative path resolved.
    pub path: PathBuf,
    /// The layout.
    pub layout: Layout,
}

/// A validated pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The file as written (stored in the manifest).
    pub file: PipelineFile,
    /// The text as written.
    pub text: String,
    /// Folder the relative paths start from.
    pub base: PathBuf,
    /// Resolved sources.
    pub sources: Vec<Source>,
}

/// A pipeline that cannot be used: what and where, never a value.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Could not read the pipeline file.
    #[error("cannot read pipeline `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML / wrong shape; carries line and column.
    #[error("pipeline `{path}` is not valid{location}: {message}")]
    Parse {
        path: PathBuf,
        location: String,
        message: String,
    },
    /// A source's layout is bad.
    #[error("pipeline `{path}`, source `{source_id}`{location}: {error}")]
    Layout {
        path: PathBuf,
        source_id: String,
        /// " at line L, column C" of the source's `layout = …`, when written so.
        location: String,
        error: Box<LayoutError>,
    },
    /// Some other inconsistency.
    #[error("pipeline `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Pipeline {
    /// Read and validate a pipeline file.
    pub fn load(path: &Path, schema: &Schema) -> Result<Pipeline, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Pipeline::parse(&text, path, &base, schema)
    }

    /// Parse and validate pipeline text; `path` is only used in messages.
    pub fn parse(
        text: &str,
        path: &Path,
        base: &Path,
        schema: &Schema,
    ) -> Result<Pipeline, PipelineError> {
        Pipeline::parse_with(text, path, base, schema, &|p| std::fs::read_to_string(p))
    }

    /// [`Pipeline::parse`] with the reader of layout files given: the fuzz target
    /// (`vaxarc::fuzz::pipeline`) supplies layout text without touching the filesystem.
    pub fn parse_with(
        text: &str,
        path: &Path,
        base: &Path,
        schema: &Schema,
        read_layout: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Pipeline, PipelineError> {
        let file: PipelineFile = toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map(|span| {
                    let (line, column) = line_column(text, span.start);
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            PipelineError::Parse {
                path: path.to_path_buf(),
                location,
                message: e.message().to_string(),
            }
        })?;
        let invalid = |message: String| PipelineError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if !crate::normalise::municipality_code_valid(&file.municipality_code) {
            // The value itself is public (a municipality's code), but say where, not what.
            return Err(PipelineError::Parse {
                path: path.to_path_buf(),
                location: key_location(text, "municipality_code"),
                message: "`municipality_code` must be the 6-digit 地方公共団体コード with its check digit (e.g. 131091 for 品川区)".into(),
            });
        }
        if file.sources.is_empty() {
            return Err(invalid("has no [[source]]".into()));
        }
        // Paths and recipients end up in one-line messages and logs: a control character
        // (a newline) in one would split or forge a line (found by fuzzing).
        if let Some(key) = control_character_in(&file) {
            return Err(invalid(format!(
                "`{key}` holds a control character; paths and recipients must be plain text"
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut sources = Vec::new();
        for (n, entry) in file.sources.iter().enumerate() {
            if !is_safe_id(&entry.id) {
                return Err(invalid(format!(
                    "source id{} must be 1-64 characters of A-Z a-z 0-9 . _ -",
                    source_location(text, n, "id")
                )));
            }
            if !seen.insert(entry.id.clone()) {
                return Err(invalid(format!(
                    "source id `{}`{} is used twice",
                    entry.id,
                    source_location(text, n, "id")
                )));
            }
            let layout =
                resolve_layout(&entry.layout, base, schema, read_layout).map_err(|error| {
                    PipelineError::Layout {
                        path: path.to_path_buf(),
                        source_id: entry.id.clone(),
                        location: source_location(text, n, "layout"),
                        error: Box::new(error),
                    }
                })?;
            sources.push(Source {
                id: entry.id.clone(),
                path: base.join(&entry.path),
                layout,
            });
        }
        if let Some((n, second)) = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.layout.kind == crate::layout::SourceKind::Registry)
            .nth(1)
        {
            return Err(invalid(format!(
                "source `{}`{} is a second registry source; a pipeline has one registry",
                second.id,
                source_location(text, n, "layout")
            )));
        }
        if file.archive.buckets == Some(0) {
            return Err(PipelineError::Parse {
                path: path.to_path_buf(),
                location: locate_in(text, "archive", "buckets"),
                message: "`buckets` must be at least 1 (or left out: the writer picks a power of two from the record count)".into(),
            });
        }
        Ok(Pipeline {
            file,
            text: text.to_string(),
            base: base.to_path_buf(),
            sources,
        })
    }

    /// " at line L, column C" of the value of `key = …` in the pipeline's `[table]`, or
    /// nothing when it is not written on a line of its own there.
    pub fn location_of(&self, table: &str, key: &str) -> String {
        locate_in(&self.text, table, key)
    }

    /// Resolve a pipeline-relative path.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }
}

fn resolve_layout(
    spec: &str,
    base: &Path,
    schema: &Schema,
    read_layout: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Layout, LayoutError> {
    if crate::layout::BUILTIN.iter().any(|(id, _)| *id == spec) {
        return Layout::builtin(spec, schema);
    }
    let path = base.join(spec);
    let text = read_layout(&path)
        .map_err(|e| LayoutError::Toml(format!("cannot read `{}`: {e}", path.display())))?;
    Layout::from_toml(&text, schema).map_err(|error| LayoutError::File {
        path,
        error: Box::new(error),
    })
}

/// The first key whose value (a path or a recipient) holds a control character.
fn control_character_in(file: &PipelineFile) -> Option<&'static str> {
    let bad = |s: &str| s.chars().any(char::is_control);
    let bad_path = |p: &Path| bad(&p.to_string_lossy());
    let checks: [(&'static str, bool); 7] = [
        (
            "source.path",
            file.sources.iter().any(|s| bad_path(&s.path)),
        ),
        ("source.layout", file.sources.iter().any(|s| bad(&s.layout))),
        (
            "archive.custodians",
            file.archive.custodians.iter().any(|c| bad(c)),
        ),
        ("archive.vault", file.archive.vault.iter().any(|c| bad(c))),
        (
            "archive.signing_key",
            file.archive.signing_key.as_deref().is_some_and(bad_path),
        ),
        (
            "reconcile.rules",
            file.reconcile.rules.as_deref().is_some_and(bad_path),
        ),
        (
            "retention.policy",
            file.retention.policy.as_deref().is_some_and(bad_path),
        ),
    ];
    checks.into_iter().find(|(_, b)| *b).map(|(k, _)| k)
}

/// " at line L, column C" of the value of `key = …` in the `n`-th (0-based) `[[source]]`
/// table, or nothing when it is not written on a line of its own there.
pub fn source_location(text: &str, n: usize, key: &str) -> String {
    locate(text, Some(n), key)
}

/// " at line L, column C" of the value of the top-level `key = …` line, or nothing.
fn key_location(text: &str, key: &str) -> String {
    locate(text, None, key)
}

/// Where the value of `key = …` is written: at the top level (`source` None, before any
/// table) or in the `n`-th `[[source]]` table.
fn locate(text: &str, source: Option<usize>, key: &str) -> String {
    let mut sources = 0;
    locate_by(text, key, source.is_none(), |header| {
        if header.starts_with("[[source]]") {
            sources += 1;
            source == Some(sources - 1)
        } else {
            false
        }
    })
}

/// " at line L, column C" of the value of `key = …` in the `[table]` table, or nothing.
fn locate_in(text: &str, table: &str, key: &str) -> String {
    let header = format!("[{table}]");
    locate_by(text, key, false, |h| h.trim_end().starts_with(&header))
}

/// " at line L, column C" of the value of the first `key = …` line inside the wanted table:
/// `top` says whether the lines before any table header are, `enter` whether the table a
/// header line (`[…]`, trimmed at the start) opens is.
fn locate_by(text: &str, key: &str, top: bool, mut enter: impl FnMut(&str) -> bool) -> String {
    let (mut offset, mut inside) = (0, top);
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            inside = enter(t);
        } else if inside {
            if let Some(rest) = t.strip_prefix(key) {
                if let Some(after_eq) = rest.trim_start().strip_prefix('=') {
                    let value = line.len() - after_eq.trim_start().len();
                    let (l, c) = line_column(text, offset + value);
                    return format!(" at line {l}, column {c}");
                }
            }
        }
        offset += line.len();
    }
    String::new()
}

/// Ids appear in file names and manifests: keep them to a safe alphabet.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && !id.starts_with('.')
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal of a pipeline text, as one line.
    fn refusal(text: &str) -> String {
        Pipeline::parse(
            text,
            Path::new("p.toml"),
            Path::new("."),
            Schema::embedded(),
        )
        .unwrap_err()
        .to_string()
    }

    /// A bad layout, a second registry and `buckets = 0` are named with the line and
    /// column of what is at fault.
    #[test]
    fn layout_registry_and_bucket_errors_name_the_line() {
        let head = "name = \"x\"\nmunicipality_code = \"131091\"\n";
        let source = |id: &str, layout: &str| {
            format!("[[source]]\nid = \"{id}\"\nlayout = \"{layout}\"\npath = \"{id}.csv\"\n")
        };
        let err = refusal(&format!("{head}{}", source("a", "nonesuch.toml")));
        assert!(err.contains("source `a` at line 5, column 10"), "{err}");
        let err = refusal(&format!(
            "{head}{}{}",
            source("r1", "registry"),
            source("r2", "registry")
        ));
        assert!(
            err.contains("source `r2` at line 9, column 10 is a second registry source"),
            "{err}"
        );
        let err = refusal(&format!(
            "{head}{}[archive]\ncustodians = []\nbuckets = 0\n",
            source("a", "ledger")
        ));
        assert!(
            err.contains("at line 9, column 11") && err.contains("`buckets` must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn parse_error_names_line_and_column() {
        let text = "name = \"x\"\nmunicipality_code = \"131091\"\n[[source]]\nid = \"a\"\nlayout = \"ledger\"\npath = 3\n";
        let err = refusal(text);
        assert!(err.contains("line 6"), "{err}");
    }

    /// A municipality code that is not six digits with its check digit is refused, with
    /// the line and column of the value.
    #[test]
    fn municipality_codes_need_six_digits_and_their_check_digit() {
        for (code, ok) in [
            ("131091", true),
            ("131016", true),
            ("131092", false),
            ("13109", false),
            ("abc", false),
            ("１３１０９１", false),
        ] {
            let text = format!(
                "name = \"x\"\n  municipality_code = \"{code}\"\n[[source]]\nid = \"a\"\nlayout = \"ledger\"\npath = \"a.csv\"\n"
            );
            let r = Pipeline::parse(
                &text,
                Path::new("p.toml"),
                Path::new("."),
                Schema::embedded(),
            );
            match r {
                Ok(_) => assert!(ok, "{code} accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(!ok, "{code}: {e}");
                    assert!(
                        e.contains("at line 2, column 23") && e.contains("check digit"),
                        "{e}"
                    );
                }
            }
        }
    }

    /// Found by fuzzing (`testdata/fuzz/corpus/pipeline/regression-newline-in-path`): a
    /// source path with a newline made the read error two lines.
    #[test]
    fn control_characters_in_paths_are_refused() {
        let text = "name = \"x\"\nmunicipality_code = \"131091\"\n[[source]]\nid = \"a\"\nlayout = \"ledger\"\npath = \"a\\nb.csv\"\n";
        let err = refusal(text);
        assert!(
            err.contains("`source.path` holds a control character") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn source_errors_name_the_line() {
        let text = "name = \"x\"\nmunicipality_code = \"131091\"\n[[source]]\nid = \"a\"\nlayout = \"ledger\"\npath = \"a.csv\"\n[archive]\nvault = []\n[[source]]\n  id = \"a\"\nlayout = \"ledger\"\npath = \"b.csv\"\n";
        let err = refusal(text);
        assert!(
            err.contains("`a` at line 10, column 8 is used twice"),
            "{err}"
        );
        assert_eq!(source_location(text, 1, "path"), " at line 12, column 8");
        assert_eq!(source_location(text, 0, "path"), " at line 6, column 8");
        assert_eq!(source_location(text, 2, "path"), "");
    }

    #[test]
    fn unsafe_ids_are_refused() {
        assert!(is_safe_id("ledger-MR"));
        assert!(!is_safe_id("../x"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id(".hidden"));
    }
}
