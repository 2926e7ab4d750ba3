//! Records ↔ Arrow record batches, driven by the schema (no hand-written field list).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampSecondArray, TimestampSecondBuilder,
};
use arrow::datatypes::Schema as ArrowSchema;
use arrow::record_batch::RecordBatch;

use crate::record::{Record, Value, ValueRef};
use crate::schema::{FieldType, Schema};

/// A text field whose values are given beside the records rather than read from them:
/// field `field` of record `k` is the lowercase hex of `hashes[k]` (the archive writer's
/// person hashes, computed for every record it writes: storing each in its record first
/// rebuilt every record once more).
#[derive(Clone, Copy)]
pub struct HashColumn<'a> {
    /// The field (schema index).
    pub field: usize,
    /// One hash per record, in the records' order.
    pub hashes: &'a [[u8; 32]],
}

/// Build a batch of the given schema columns (`indices` into the record) from records;
/// with `given`, that field's values come from it instead of the records.
///
/// Records are read once each, field by field in order (a sparse [`Record`] is cheapest
/// to walk that way), each value appended to its column's builder.
pub fn to_batch(
    schema: &Schema,
    indices: &[usize],
    arrow_schema: Arc<ArrowSchema>,
    records: &[&Record],
    given: Option<HashColumn<'_>>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = records.len();
    let mut builders: Vec<Builder> = indices
        .iter()
        .map(|&i| Builder::new(schema.fields[i].field_type, n))
        .collect();
    // Field → its builder(s); a field may be asked for twice.
    let mut slots: Vec<Vec<usize>> = vec![Vec::new(); schema.len()];
    for (k, &i) in indices.iter().enumerate() {
        slots[i].push(k);
    }
    if let Some(g) = given {
        assert_eq!(g.hashes.len(), n, "one given hash per record");
    }
    let given_field = given.map_or(usize::MAX, |g| g.field);
    for (row, r) in records.iter().enumerate() {
        for (i, (slot, v)) in slots.iter().zip(r.iter()).enumerate() {
            if i == given_field {
                continue;
            }
            for &k in slot {
                builders[k].append(v);
            }
        }
        if let Some(g) = given {
            let hex = blake3::Hash::from_bytes(g.hashes[row]).to_hex();
            for &k in &slots[g.field] {
                builders[k].append(ValueRef::Str(hex.as_str()));
            }
        }
    }
    let columns = builders.into_iter().map(Builder::finish).collect();
    RecordBatch::try_new(arrow_schema, columns)
}

/// One column being built; a value of another kind than the column's is a null.
enum Builder {
    Utf8(StringBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Date32(Date32Builder),
    TimestampS(TimestampSecondBuilder),
}

impl Builder {
    fn new(field_type: FieldType, n: usize) -> Builder {
        match field_type {
            FieldType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(n, n * 8)),
            FieldType::Int16 => Builder::Int16(Int16Builder::with_capacity(n)),
            FieldType::Int32 => Builder::Int32(Int32Builder::with_capacity(n)),
            FieldType::Int64 => Builder::Int64(Int64Builder::with_capacity(n)),
            FieldType::Float64 => Builder::Float64(Float64Builder::with_capacity(n)),
            FieldType::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            FieldType::Date32 => Builder::Date32(Date32Builder::with_capacity(n)),
            FieldType::TimestampS => Builder::TimestampS(TimestampSecondBuilder::with_capacity(n)),
        }
    }

    #[inline]
    fn append(&mut self, v: ValueRef<'_>) {
        match self {
            Builder::Utf8(b) => b.append_option(v.as_str()),
            Builder::Int16(b) => b.append_option(v.as_int().and_then(|v| i16::try_from(v).ok())),
            Builder::Int32(b) => b.append_option(v.as_int().and_then(|v| i32::try_from(v).ok())),
            Builder::Int64(b) => b.append_option(v.as_int()),
            Builder::Float64(b) => b.append_option(match v {
                ValueRef::Float(f) => Some(f),
                _ => None,
            }),
            Builder::Bool(b) => b.append_option(match v {
                ValueRef::Bool(x) => Some(x),
                _ => None,
            }),
            Builder::Date32(b) => b.append_option(v.as_date()),
            Builder::TimestampS(b) => b.append_option(match v {
                ValueRef::Timestamp(t) => Some(t),
                _ => None,
            }),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Utf8(mut b) => Arc::new(b.finish()),
            Builder::Int16(mut b) => Arc::new(b.finish()),
            Builder::Int32(mut b) => Arc::new(b.finish()),
            Builder::Int64(mut b) => Arc::new(b.finish()),
            Builder::Float64(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Date32(mut b) => Arc::new(b.finish()),
            Builder::TimestampS(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Read records back from a batch whose columns are named as schema fields; fields the
/// batch lacks stay Null.
pub fn from_batch(schema: &Schema, batch: &RecordBatch) -> Vec<Record> {
    let n = batch.num_rows();
    // Built as one value per field, packed once complete.
    let mut out: Vec<Vec<Value>> = (0..n).map(|_| vec![Value::Null; schema.len()]).collect();
    for (c, field) in batch.schema().fields().iter().enumerate() {
        let Some(i) = schema.index(field.name()) else {
            continue;
        };
        let col = batch.column(c);
        macro_rules! fill {
            ($ty:ty, $conv:expr) => {
                if let Some(a) = col.as_any().downcast_ref::<$ty>() {
                    for (row, rec) in out.iter_mut().enumerate() {
                        if a.is_valid(row) {
                            rec[i] = $conv(a.value(row));
                        }
                    }
                }
            };
        }
        fill!(StringArray, |v: &str| Value::Str(v.into()));
        fill!(Int16Array, |v: i16| Value::Int(v as i64));
        fill!(Int32Array, |v: i32| Value::Int(v as i64));
        fill!(Int64Array, Value::Int);
        fill!(Float64Array, Value::Float);
        fill!(BooleanArray, Value::Bool);
        fill!(Date32Array, Value::Date);
        fill!(TimestampSecondArray, Value::Timestamp);
    }
    out.into_iter().map(Record::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Class;

    /// A given hash column gives the batch the records would give with each hash's hex
    /// stored in that field — whatever the records held there.
    #[test]
    fn a_given_hash_column_is_the_records_with_the_hex_stored() {
        let schema = Schema::embedded();
        let field = schema.idx("person_hash");
        let names = ["record_id", "person_hash", "kana_name"];
        let indices: Vec<usize> = names.iter().map(|n| schema.idx(n)).collect();
        let all = schema.arrow_schema(|c| c != Class::NumberVault);
        let arrow = Arc::new(ArrowSchema::new(
            names
                .iter()
                .map(|n| all.field_with_name(n).unwrap().clone())
                .collect::<Vec<_>>(),
        ));
        let hashes: Vec<[u8; 32]> = (0..5u8).map(|i| *blake3::hash(&[i]).as_bytes()).collect();
        let record = |i: usize, stored: Value| {
            let mut values = vec![Value::Null; schema.len()];
            values[schema.idx("record_id")] = Value::Str(format!("r{i}").into());
            values[schema.idx("kana_name")] = Value::Str("ヤマダ タロウ".into());
            values[field] = stored;
            Record::from(values)
        };
        // What the records hold there is ignored: nothing, or some other text.
        let held: Vec<Record> = (0..5)
            .map(|i| match i % 2 {
                0 => record(i, Value::Null),
                _ => record(i, Value::Str("stale".into())),
            })
            .collect();
        let stored: Vec<Record> = (0..5)
            .map(|i| {
                let hex = blake3::Hash::from_bytes(hashes[i]).to_hex();
                record(i, Value::Str(hex.as_str().into()))
            })
            .collect();
        let given = HashColumn {
            field,
            hashes: &hashes,
        };
        let with_given = to_batch(
            schema,
            &indices,
            arrow.clone(),
            &held.iter().collect::<Vec<_>>(),
            Some(given),
        )
        .unwrap();
        let from_records = to_batch(
            schema,
            &indices,
            arrow,
            &stored.iter().collect::<Vec<_>>(),
            None,
        )
        .unwrap();
        assert_eq!(with_given, from_records);
        let column = with_given
            .column_by_name("person_hash")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        assert_eq!(
            column.value(3),
            blake3::Hash::from_bytes(hashes[3]).to_hex().as_str()
        );
    }
}
