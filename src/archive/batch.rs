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

/// Build a batch of the given schema columns (`indices` into the record) from records.
///
/// Records are read once each, field by field in order (a sparse [`Record`] is cheapest
/// to walk that way), each value appended to its column's builder.
pub fn to_batch(
    schema: &Schema,
    indices: &[usize],
    arrow_schema: Arc<ArrowSchema>,
    records: &[&Record],
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
    for r in records {
        for (slot, v) in slots.iter().zip(r.iter()) {
            for &k in slot {
                builders[k].append(v);
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
