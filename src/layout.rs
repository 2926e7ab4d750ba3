//! Source layouts, loaded from `schemas/sources/*.toml`.
//!
//! A layout says how one kind of legacy export maps onto the canonical record: its
//! encoding and CSV dialect, which header feeds which field through which normaliser,
//! what a row must yield, and (for the VRS export) how a wide row pivots into one record
//! per dose. A city whose export differs writes a new layout file, not code.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::schema::Schema;

/// Built-in layouts, embedded at compile time: (id, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("ledger", include_str!("../schemas/sources/ledger.toml")),
    (
        "vrs-ledger-export",
        include_str!("../schemas/sources/vrs-ledger-export.toml"),
    ),
    (
        "vrs-persons",
        include_str!("../schemas/sources/vrs-persons.toml"),
    ),
    ("registry", include_str!("../schemas/sources/registry.toml")),
];

/// What a source produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// 予防接種台帳 rows: one dose record per row.
    Ledger,
    /// VRS wide export: one dose record per non-empty dose group.
    VrsLedgerExport,
    /// VRS person / ticket list: person rows, no dose records.
    VrsPersons,
    /// Resident registry: person rows, no dose records.
    Registry,
}

impl SourceKind {
    /// The layout spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Ledger => "ledger",
            SourceKind::VrsLedgerExport => "vrs-ledger-export",
            SourceKind::VrsPersons => "vrs-persons",
            SourceKind::Registry => "registry",
        }
    }

    /// True for kinds whose rows become dose records.
    pub fn produces_records(self) -> bool {
        matches!(self, SourceKind::Ledger | SourceKind::VrsLedgerExport)
    }
}

/// Declared text encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncodingChoice {
    /// BOM, then strict UTF-8, then CP932.
    Auto,
    /// UTF-8 (a BOM is skipped).
    #[serde(rename = "utf-8")]
    Utf8,
    /// CP932 / Windows-31J.
    Cp932,
}

/// What an unparseable value does to its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReject {
    /// The row goes to quarantine with the normaliser's reason.
    Quarantine,
    /// The field is nulled and flagged; the row is kept.
    Null,
}

/// One header → field mapping.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Header text in the source (for pivot columns, with `{n}` for the dose number).
    pub header: String,
    /// Canonical field name.
    pub field: String,
    /// Normaliser kind (see `docs/normalisers.md`).
    pub normaliser: String,
    /// What a rejected value does; default: quarantine for date kinds, else null.
    pub on_reject: Option<OnReject>,
}

/// The wide → long pivot of the VRS export.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pivot {
    /// Number of dose groups (N = 1..=groups).
    pub groups: u16,
    /// Group columns; `{n}` in `header` is replaced by the group number.
    pub column: Vec<Column>,
}

/// A source layout.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Layout id.
    pub id: String,
    /// What the source produces.
    pub kind: SourceKind,
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// Declared encoding.
    pub encoding: EncodingChoice,
    /// Field delimiter (one ASCII character).
    pub delimiter: char,
    /// Quote character (one ASCII character).
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Whether the first row is a header (layouts locate columns by header name, so
    /// this must be true today).
    pub has_header: bool,
    /// Fields a row must yield.
    #[serde(default)]
    pub require: Vec<String>,
    /// Groups of fields of which at least one group must be complete (person keys).
    #[serde(default)]
    pub require_any: Vec<Vec<String>>,
    /// Constant field values for every record of this source.
    #[serde(default)]
    pub constants: BTreeMap<String, String>,
    /// Per-row columns.
    #[serde(default)]
    pub column: Vec<Column>,
    /// Wide → long pivot (VRS export).
    pub pivot: Option<Pivot>,
}

fn default_quote() -> char {
    '"'
}

/// A layout file that cannot be used: what is wrong, never a value.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Not valid TOML or not the layout shape.
    #[error("layout is not valid: {0}")]
    Toml(String),
    /// A column names a field the schema lacks.
    #[error("layout `{layout}` maps header `{header}` to unknown field `{field}`")]
    UnknownField {
        layout: String,
        header: String,
        field: String,
    },
    /// A column names an unknown normaliser.
    #[error("layout `{layout}` uses unknown normaliser `{normaliser}` for header `{header}`")]
    UnknownNormaliser {
        layout: String,
        header: String,
        normaliser: String,
    },
    /// Some other inconsistency.
    #[error("layout `{layout}`: {message}")]
    Invalid { layout: String, message: String },
    /// No built-in layout has that id.
    #[error("no built-in layout named `{0}`")]
    UnknownBuiltin(String),
    /// A layout file (not a built-in layout) is bad: which file, then what.
    #[error("layout file `{path}`: {error}")]
    File {
        /// The layout file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        error: Box<LayoutError>,
    },
}

impl Layout {
    /// Parse and validate a layout against the schema.
    pub fn from_toml(text: &str, schema: &Schema) -> Result<Layout, LayoutError> {
        let layout: Layout = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let (line, column) = crate::pipeline::line_column(text, span.start);
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            LayoutError::Toml(format!("{at}{}", e.message()))
        })?;
        layout.validate(schema)?;
        Ok(layout)
    }

    /// A built-in layout by id.
    pub fn builtin(id: &str, schema: &Schema) -> Result<Layout, LayoutError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(name, _)| *name == id)
            .ok_or_else(|| LayoutError::UnknownBuiltin(id.to_string()))?;
        Layout::from_toml(text, schema)
    }

    fn validate(&self, schema: &Schema) -> Result<(), LayoutError> {
        let invalid = |message: String| LayoutError::Invalid {
            layout: self.id.clone(),
            message,
        };
        if !self.has_header {
            return Err(invalid(
                "has_header = false is not supported: columns are located by header name".into(),
            ));
        }
        if !self.delimiter.is_ascii() || !self.quote.is_ascii() {
            return Err(invalid(
                "delimiter and quote must be ASCII characters".into(),
            ));
        }
        let pivot_columns = self.pivot.iter().flat_map(|p| p.column.iter());
        for column in self.column.iter().chain(pivot_columns) {
            if schema.index(&column.field).is_none() {
                return Err(LayoutError::UnknownField {
                    layout: self.id.clone(),
                    header: column.header.clone(),
                    field: column.field.clone(),
                });
            }
            if column.normaliser.parse::<crate::normalise::Kind>().is_err() {
                return Err(LayoutError::UnknownNormaliser {
                    layout: self.id.clone(),
                    header: column.header.clone(),
                    normaliser: column.normaliser.clone(),
                });
            }
        }
        let names = self
            .require
            .iter()
            .chain(self.require_any.iter().flatten())
            .chain(self.constants.keys());
        for name in names {
            if schema.index(name).is_none() {
                return Err(invalid(format!("requires unknown field `{name}`")));
            }
        }
        if let Some(pivot) = &self.pivot {
            if pivot.groups == 0 || pivot.groups > 99 {
                return Err(invalid("pivot.groups must be 1..=99".into()));
            }
            if pivot.column.is_empty() {
                return Err(invalid(
                    "a [pivot] needs at least one [[pivot.column]]".into(),
                ));
            }
            if pivot.column.iter().any(|c| !c.header.contains("{n}")) {
                return Err(invalid(
                    "every pivot column header must contain `{n}`".into(),
                ));
            }
        }
        if self.kind == SourceKind::VrsLedgerExport && self.pivot.is_none() {
            return Err(invalid("a vrs-ledger-export layout needs a [pivot]".into()));
        }
        Ok(())
    }
}

/// The default `on_reject` for a normaliser kind: dates quarantine, the rest null.
pub fn default_on_reject(normaliser: &str) -> OnReject {
    match normaliser {
        "date" | "vaccine" => OnReject::Quarantine,
        _ => OnReject::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_layout_validates() {
        let schema = Schema::embedded();
        for (id, _) in BUILTIN {
            let layout = Layout::builtin(id, schema).unwrap();
            assert_eq!(&layout.id, id);
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let schema = Schema::embedded();
        let text = BUILTIN[0]
            .1
            .replace("field = \"phone\"", "field = \"telephone\"");
        let err = Layout::from_toml(&text, schema).unwrap_err().to_string();
        assert!(
            err.contains("`telephone`") && err.contains("`電話番号`"),
            "{err}"
        );
    }
}
