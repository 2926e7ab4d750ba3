//! The canonical record schema, loaded from `schemas/record.toml`.
//!
//! That file is the only list of fields: this module turns it into an Arrow schema and
//! into name → index lookups. The file is embedded at compile time so the binary is
//! self-contained; the archive's manifest carries a copy of it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, TimeUnit};
use serde::{Deserialize, Serialize};

/// The embedded `schemas/record.toml`.
pub const RECORD_TOML: &str = include_str!("../schemas/record.toml");

/// Protection class of a field (see `schemas/record.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 個人番号 and the items restricted to the vault recipients.
    NumberVault,
    /// Identifies or describes a person.
    Personal,
    /// The vaccination itself.
    Health,
    /// Provenance, reconciliation and retention bookkeeping.
    Operational,
}

/// Arrow type of a field, as spelled in the schema file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Utf8,
    Int16,
    Int32,
    Int64,
    Float64,
    Bool,
    Date32,
    TimestampS,
}

impl FieldType {
    /// The Arrow data type.
    pub fn arrow(self) -> DataType {
        match self {
            FieldType::Utf8 => DataType::Utf8,
            FieldType::Int16 => DataType::Int16,
            FieldType::Int32 => DataType::Int32,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Bool => DataType::Boolean,
            FieldType::Date32 => DataType::Date32,
            FieldType::TimestampS => DataType::Timestamp(TimeUnit::Second, None),
        }
    }
}

/// One field of the canonical record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// English snake_case name (the Parquet column name).
    pub name: String,
    /// Japanese label.
    pub label: String,
    /// Arrow type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether nulls are allowed.
    pub nullable: bool,
    /// Protection class.
    pub class: Class,
    /// Where the item comes from.
    #[serde(default)]
    pub source: String,
}

#[derive(Deserialize)]
struct SchemaFile {
    format_version: u32,
    field: Vec<Field>,
}

/// The canonical record schema.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Version of the archive format this schema belongs to.
    pub format_version: u32,
    /// Fields in column order.
    pub fields: Vec<Field>,
    /// Name → position. foldhash, not SipHash: looked up per record in hot loops
    /// (`idx`), never iterated, built from our own schema file.
    index: HashMap<String, usize, foldhash::fast::FixedState>,
}

/// An error in a schema file: what and where, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The TOML did not parse.
    #[error("schema file is not valid TOML: {0}")]
    Toml(String),
    /// Two fields share a name.
    #[error("schema field `{0}` is defined twice")]
    Duplicate(String),
    /// The code needs a field the schema lacks.
    #[error("schema has no field `{0}`, which vaxarc requires")]
    Missing(String),
    /// More fields than a record can hold.
    #[error("schema has {0} fields; a record holds at most {max}", max = crate::record::MAX_FIELDS)]
    TooWide(usize),
}

/// Fields the pipeline code computes itself; the schema must define them.
pub const REQUIRED_FIELDS: &[&str] = &[
    "record_id",
    "vaccine_code",
    "vaccination_date",
    "source_kind",
    "source_file_id",
    "source_line",
    "raw_row_blake3",
    "match_method",
    "registry_status",
    "merge_status",
    "retention_class",
];

impl Schema {
    /// Parse a schema file.
    pub fn from_toml(text: &str) -> Result<Schema, SchemaError> {
        let file: SchemaFile =
            toml::from_str(text).map_err(|e| SchemaError::Toml(e.message().to_string()))?;
        if file.field.len() > crate::record::MAX_FIELDS {
            return Err(SchemaError::TooWide(file.field.len()));
        }
        let mut index = HashMap::with_hasher(foldhash::fast::FixedState::default());
        for (i, f) in file.field.iter().enumerate() {
            if index.insert(f.name.clone(), i).is_some() {
                return Err(SchemaError::Duplicate(f.name.clone()));
            }
        }
        for name in REQUIRED_FIELDS {
            if !index.contains_key(*name) {
                return Err(SchemaError::Missing((*name).to_string()));
            }
        }
        Ok(Schema {
            format_version: file.format_version,
            fields: file.field,
            index,
        })
    }

    /// The embedded canonical schema.
    pub fn embedded() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::from_toml(RECORD_TOML).expect("the embedded schemas/record.toml is valid")
        })
    }

    /// Index of a field by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Index of a field the code relies on (listed in [`REQUIRED_FIELDS`] or checked at
    /// layout load time). Panics on an unknown name: that is a programming error.
    pub fn idx(&self, name: &str) -> usize {
        match self.index.get(name) {
            Some(i) => *i,
            None => panic!("field `{name}` is not in the schema"),
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the schema has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The Arrow schema of the columns whose class is accepted by `keep`, with the
    /// Japanese label and class as field metadata.
    pub fn arrow_schema(&self, keep: impl Fn(Class) -> bool) -> Arc<ArrowSchema> {
        let fields: Vec<ArrowField> = self
            .fields
            .iter()
            .filter(|f| keep(f.class))
            .map(|f| {
                let mut meta = HashMap::new();
                meta.insert("vaxarc:label".to_string(), f.label.clone());
                meta.insert(
                    "vaxarc:class".to_string(),
                    serde_json::to_value(f.class)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                );
                ArrowField::new(&f.name, f.field_type.arrow(), f.nullable).with_metadata(meta)
            })
            .collect();
        Arc::new(ArrowSchema::new(fields))
    }

    /// Indices of the fields whose class is accepted by `keep`, in column order.
    pub fn indices(&self, keep: impl Fn(Class) -> bool) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&i| keep(self.fields[i].class))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_loads_and_has_every_attachment_2_item() {
        let s = Schema::embedded();
        for name in [
            "atena_number",
            "kanji_name",
            "kana_name",
            "birth_date",
            "age_at_vaccination",
            "sex",
            "non_resident",
            "postal_code",
            "address",
            "phone",
            "vaccine_name",
            "stage",
            "dose_number",
            "vaccination_class",
            "vaccination_type",
            "lot_number",
            "dose_volume_ml",
            "registered_date",
            "vaccination_date",
            "medical_institution",
            "prescreening_issued",
            "request_letter_issued",
            "certificate_issued",
            "copay_class",
            "welfare_recipient",
            "disability",
            "kojin_bango",
            "integrated_atena_number",
            "info_provision_id",
            "municipality_code",
            "ticket_number",
            "vaccination_status",
            "manufacturer_raw",
            "vaccine_type",
            "product_name",
            "former_name",
            "romaji_name",
            "nationality",
            "passport_number",
            "certificate_id",
            "certificate_issued_date",
        ] {
            assert!(s.index(name).is_some(), "missing {name}");
        }
    }

    #[test]
    fn vault_items_are_number_vault() {
        let s = Schema::embedded();
        for name in [
            "kojin_bango",
            "info_provision_id",
            "passport_number",
            "romaji_name",
            "former_name",
            "nationality",
        ] {
            assert_eq!(s.fields[s.idx(name)].class, Class::NumberVault, "{name}");
        }
        let plain = s.arrow_schema(|c| c != Class::NumberVault);
        assert!(plain.field_with_name("kojin_bango").is_err());
        assert!(plain.field_with_name("vaccination_date").is_ok());
    }

    #[test]
    fn duplicate_and_missing_fields_are_refused() {
        let dup = "format_version = 1\n[[field]]\nname='a'\nlabel='x'\ntype='utf8'\nnullable=true\nclass='personal'\n[[field]]\nname='a'\nlabel='x'\ntype='utf8'\nnullable=true\nclass='personal'\n";
        assert!(matches!(
            Schema::from_toml(dup),
            Err(SchemaError::Duplicate(_))
        ));
        let missing = "format_version = 1\n[[field]]\nname='a'\nlabel='x'\ntype='utf8'\nnullable=true\nclass='personal'\n";
        assert!(matches!(
            Schema::from_toml(missing),
            Err(SchemaError::Missing(_))
        ));
        // A schema wider than a record can hold (e.g. in a hostile manifest) is refused,
        // not a panic later.
        let mut wide = String::from("format_version = 1\n");
        for i in 0..=crate::record::MAX_FIELDS {
            wide.push_str(&format!(
                "[[field]]\nname='f{i}'\nlabel='x'\ntype='utf8'\nnullable=true\nclass='personal'\n"
            ));
        }
        assert!(matches!(
            Schema::from_toml(&wide),
            Err(SchemaError::TooWide(129))
        ));
    }
}
