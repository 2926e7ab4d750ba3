//! Records ↔ Arrow record batches, driven by the schema (no hand-written field list).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    StringArray, StringBuilder, TimestampSecondArray, TimestampSecondBuilder,
};
use arrow::datatypes::Schema as ArrowSchema;
use arrow::record_batch::RecordBatch;

use crate::record::{Record, Value};
use crate::schema::{FieldType, Schema};

/// Build a batch of the given schema columns (`indices` into the record) from records.
pub fn to_batch(
    schema: &Schema,
    indices: &[usize],
    arrow_schema: Arc<ArrowSchema>,
    records: &[&Record],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let n = records.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(indices.len());
    for &i in indices {
        let column: ArrayRef = match schema.fields[i].field_type {
            FieldType::Utf8 => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for r in records {
                    b.append_option(r[i].as_str());
                }
                Arc::new(b.finish())
            }
            FieldType::Int16 => {
                let mut b = Int16Builder::with_capacity(n);
                for r in records {
                    b.append_option(r[i].as_int().and_then(|v| i16::try_from(v).ok()));
                }
                Arc::new(b.finish())
            }
            FieldType::Int32 => {
                let mut b = Int32Builder::with_capacity(n);
                for r in records {
                    b.append_option(r[i].as_int().and_then(|v| i32::try_from(v).ok()));
                }
                Arc::new(b.finish())
            }
            FieldType::Int64 => {
                let mut b = Int64Builder::with_capacity(n);
                for r in records {
                    b.append_option(r[i].as_int());
                }
                Arc::new(b.finish())
            }
            FieldType::Float64 => {
                let mut b = Float64Builder::with_capacity(n);
                for r in records {
                    b.append_option(match r[i] {
                        Value::Float(f) => Some(f),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            FieldType::Bool => {
                let mut b = BooleanBuilder::with_capacity(n);
                for r in records {
                    b.append_option(match r[i] {
                        Value::Bool(v) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            FieldType::Date32 => {
                let mut b = Date32Builder::with_capacity(n);
                for r in records {
                    b.append_option(r[i].as_date());
                }
                Arc::new(b.finish())
            }
            FieldType::TimestampS => {
                let mut b = TimestampSecondBuilder::with_capacity(n);
                for r in records {
                    b.append_option(match r[i] {
                        Value::Timestamp(t) => Some(t),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(arrow_schema, columns)
}

/// Read records back from a batch whose columns are named as schema fields; fields the
/// batch lacks stay Null.
pub fn from_batch(schema: &Schema, batch: &RecordBatch) -> Vec<Record> {
    let n = batch.num_rows();
    let mut out: Vec<Record> = (0..n).map(|_| vec![Value::Null; schema.len()]).collect();
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
    out
}
