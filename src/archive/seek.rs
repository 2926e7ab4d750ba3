//! Reading part of an encrypted partition: the persons a lookup asks for, without
//! decrypting or decoding the rest.
//!
//! age encrypts in 64 KiB chunks, each authenticated on its own, so its stream reader
//! can seek ([`age::stream::StreamReader`] implements `Seek`). Over an object fetched by
//! ranges ([`Store::ranged`]) that gives Parquet a random-access plaintext
//! ([`AgeChunks`]): the footer, then only the row groups whose `person_hash` statistics
//! and bloom filter admit one of the persons (partitions are sorted by person hash, see
//! [`super::partition_properties`]), filtered row by row on `person_hash`. Every chunk
//! read is authenticated as in a whole-file decrypt.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;

use super::crypto::{self, CryptoError};
use super::manifest::Partition;
use super::store::{Ranged, Store};
use super::{pq, ArchiveError};
use crate::record::Record;
use crate::schema::Schema;

type Stream = age::stream::StreamReader<Ranged>;

/// age's plaintext chunk size.
const AGE_CHUNK: u64 = 64 * 1024;
/// Decrypted chunks an [`AgeChunks`] keeps: Parquet's readers hop between the column
/// chunks of a row group (one skip or read per column per selected run of rows), and
/// each hop to another age chunk would decrypt it again.
const CHUNK_CACHE: usize = 32;

/// The plaintext of an age object as a Parquet [`ChunkReader`]: seeks decrypt only the
/// chunks they touch, each once while it stays in a small cache. Cheap to clone (shared
/// reader).
#[derive(Clone)]
pub struct AgeChunks {
    inner: Arc<Mutex<Cached>>,
    len: u64,
}

/// The stream and its most recently used decrypted chunks (most recent last).
struct Cached {
    stream: Stream,
    chunks: Vec<(u64, Arc<Vec<u8>>)>,
}

impl Cached {
    fn chunk(&mut self, n: u64, len: u64) -> std::io::Result<Arc<Vec<u8>>> {
        if let Some(i) = self.chunks.iter().position(|(c, _)| *c == n) {
            let hit = self.chunks.remove(i);
            let bytes = hit.1.clone();
            self.chunks.push(hit);
            return Ok(bytes);
        }
        let start = n * AGE_CHUNK;
        let size = AGE_CHUNK.min(len.saturating_sub(start)) as usize;
        self.stream.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf)?;
        let bytes = Arc::new(buf);
        if self.chunks.len() >= CHUNK_CACHE {
            self.chunks.remove(0);
        }
        self.chunks.push((n, bytes.clone()));
        Ok(bytes)
    }
}

impl AgeChunks {
    /// Open an age object of `store` with `identity`.
    pub fn open(
        store: &Store,
        path: &str,
        identity: &age::x25519::Identity,
    ) -> Result<AgeChunks, ArchiveError> {
        let mut object = store.ranged(path)?;
        let err = |message: String| CryptoError::Decrypt {
            what: path.into(),
            message,
        };
        // The same header limits as a whole-object decrypt. The bytes checked stay in the
        // reader's window: age parses its header from them (line by line, buffered)
        // instead of a read per few bytes, and the first chunk starts there.
        let head = object
            .prefetch(crypto::HEADER_LIMIT)
            .map_err(|e| err(e.to_string()))?;
        crypto::check_header(path, &head)?;
        let decryptor = age::Decryptor::new_buffered(object).map_err(|e| err(e.to_string()))?;
        let mut stream = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| err(e.to_string()))?;
        let len = stream
            .seek(SeekFrom::End(0))
            .map_err(|e| err(e.to_string()))?;
        Ok(AgeChunks {
            inner: Arc::new(Mutex::new(Cached {
                stream,
                chunks: Vec::new(),
            })),
            len,
        })
    }

    /// Read from plaintext offset `start` into `buf`, at most to the end of one chunk.
    fn read_at(&self, start: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        if start >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let n = start / AGE_CHUNK;
        let chunk = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .chunk(n, self.len)?;
        let off = (start - n * AGE_CHUNK) as usize;
        let take = (chunk.len() - off).min(buf.len());
        buf[..take].copy_from_slice(&chunk[off..off + take]);
        Ok(take)
    }
}

impl Length for AgeChunks {
    fn len(&self) -> u64 {
        self.len
    }
}

/// A reader at an offset of [`AgeChunks`].
pub struct AgeRead {
    chunks: AgeChunks,
    pos: u64,
}

impl Read for AgeRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunks.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl ChunkReader for AgeChunks {
    // Buffered: Parquet reads page headers (thrift) a few bytes at a time.
    type T = std::io::BufReader<AgeRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::with_capacity(
            4096,
            AgeRead {
                chunks: self.clone(),
                pos: start,
            },
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(parquet::errors::ParquetError::EOF(
                "range past the end of the object".into(),
            ));
        }
        let mut buf = vec![0u8; length];
        let mut done = 0;
        while done < length {
            let n = self.read_at(start + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(parquet::errors::ParquetError::EOF("short read".into()));
            }
            done += n;
        }
        Ok(buf.into())
    }
}

/// An age-encrypted Parquet object opened for reading part of it: its footer read,
/// row groups chosen by the statistics (and bloom filter) of one text column.
pub struct OpenParquet {
    what: String,
    chunks: AgeChunks,
    meta: ArrowReaderMetadata,
}

impl OpenParquet {
    /// Open object `path` with its identity (already unwrapped).
    pub fn open(
        store: &Store,
        path: &str,
        identity: &age::x25519::Identity,
    ) -> Result<OpenParquet, ArchiveError> {
        let chunks = AgeChunks::open(store, path, identity)?;
        // The page index (offset index of every column, column index of the sort column)
        // when the object has one: archives written before it are read by row group.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load(&chunks, options).map_err(pq(path))?;
        let declared = meta.metadata().file_metadata().num_rows();
        if !(0..=1_000_000_000).contains(&declared) {
            return Err(ArchiveError::Parquet {
                what: path.into(),
                message: "footer declares an impossible row count; refused".into(),
            });
        }
        Ok(OpenParquet {
            what: path.into(),
            chunks,
            meta,
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.meta
            .parquet_schema()
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
    }

    /// Row groups that can hold one of `values` in text column `column`: by its min/max
    /// statistics, then by its bloom filter when there is one. Without statistics or
    /// filter a row group is kept.
    pub fn row_groups(
        &self,
        column: &str,
        values: &BTreeSet<String>,
    ) -> Result<Vec<usize>, ArchiveError> {
        let Some(col) = self.column(column) else {
            return Ok((0..self.meta.metadata().num_row_groups()).collect());
        };
        let mut out = Vec::new();
        for (i, rg) in self.meta.metadata().row_groups().iter().enumerate() {
            let chunk = rg.column(col);
            let in_range: Vec<&String> = match chunk.statistics() {
                Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                    (Some(min), Some(max)) => between(values, min.data(), max.data()),
                    _ => values.iter().collect(),
                },
                _ => values.iter().collect(),
            };
            if in_range.is_empty() {
                continue;
            }
            if chunk.bloom_filter_offset().is_some() {
                let bloom =
                    Sbbf::read_from_column_chunk(chunk, &self.chunks).map_err(pq(&self.what))?;
                if let Some(bloom) = bloom {
                    if !in_range.iter().any(|v| bloom.check(v.as_str())) {
                        continue;
                    }
                }
            }
            out.push(i);
        }
        Ok(out)
    }

    /// Within row groups `groups`, the rows of the pages whose `column` statistics (the
    /// column index) admit one of `values`, as a selection over those row groups in
    /// order; None when the object has no page index for `column` (every row is read).
    /// With the offset index, the reader then skips unselected pages of every column
    /// without decrypting or decompressing them.
    fn page_selection(
        &self,
        column: &str,
        values: &BTreeSet<String>,
        groups: &[usize],
    ) -> Option<RowSelection> {
        let col = self.column(column)?;
        let meta = self.meta.metadata();
        let mut ranges = Vec::new();
        let mut base = 0usize;
        for &g in groups {
            let rows = usize::try_from(meta.row_group(g).num_rows()).ok()?;
            let index = meta.page_index_for_row_group(g);
            let (Some(ColumnIndexMetaData::BYTE_ARRAY(ci)), Some(oi)) =
                (index.column_index(col), index.offset_index(col))
            else {
                return None;
            };
            let pages = oi.page_locations();
            if pages.len() as u64 != ci.num_pages() {
                return None;
            }
            for (i, page) in pages.iter().enumerate() {
                let start = usize::try_from(page.first_row_index).ok()?;
                let end = match pages.get(i + 1) {
                    Some(next) => usize::try_from(next.first_row_index).ok()?,
                    None => rows,
                };
                if start > end || end > rows {
                    return None;
                }
                let admitted = match (ci.min_value(i), ci.max_value(i)) {
                    (Some(min), Some(max)) => !between(values, min, max).is_empty(),
                    // A page of nulls holds no value; a page without statistics may.
                    _ => !ci.is_null_page(i),
                };
                if admitted {
                    ranges.push(base + start..base + end);
                }
            }
            base += rows;
        }
        Some(RowSelection::from_consecutive_ranges(
            ranges.into_iter(),
            base,
        ))
    }

    /// The rows whose text column `column` is one of `values`, reading only the row
    /// groups that can hold them, and of them only the columns in `columns` (all when
    /// None; `column` always).
    pub fn rows_where(
        &self,
        column: &str,
        values: &BTreeSet<String>,
        columns: Option<&BTreeSet<String>>,
    ) -> Result<Vec<RecordBatch>, ArchiveError> {
        let groups = self.row_groups(column, values)?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let selection = self.page_selection(column, values, &groups);
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.chunks.clone(),
            self.meta.clone(),
        )
        .with_row_groups(groups)
        .with_batch_size(8192);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let descr = self.meta.parquet_schema();
        let projected = |name: &str| name == column || columns.is_none_or(|c| c.contains(name));
        let Some(col) = self.column(column) else {
            // No such column: nothing to filter on, every admitted row is read.
            let leaves =
                (0..descr.num_columns()).filter(|&i| projected(&descr.column(i).path().string()));
            let reader = builder
                .with_projection(ProjectionMask::leaves(descr, leaves))
                .build()
                .map_err(pq(&self.what))?;
            return reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.arrow_err());
        };
        // The filter decodes `column`'s pages; the rows it keeps are taken from there, so
        // the read that follows decodes only the other columns (when there are any).
        let others: Vec<usize> = (0..descr.num_columns())
            .filter(|&i| i != col && projected(&descr.column(i).path().string()))
            .collect();
        let capture = !others.is_empty();
        let leaves = if capture { others } else { vec![col] };
        builder = builder.with_projection(ProjectionMask::leaves(descr, leaves));
        let kept: Arc<Mutex<Vec<arrow::array::ArrayRef>>> = Arc::default();
        let wanted: Arc<BTreeSet<String>> = Arc::new(values.clone());
        let sink = kept.clone();
        let predicate = ArrowPredicateFn::new(ProjectionMask::leaves(descr, [col]), move |batch| {
            let hashes = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    arrow::error::ArrowError::SchemaError("filter column is not text".into())
                })?;
            let keep: BooleanArray = hashes
                .iter()
                .map(|h| Some(h.is_some_and(|h| wanted.contains(h))))
                .collect();
            if capture {
                let rows = arrow::compute::filter(hashes, &keep)?;
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(rows);
            }
            Ok(keep)
        });
        let reader = builder
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            .build()
            .map_err(pq(&self.what))?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.arrow_err())?;
        if !capture {
            return Ok(batches);
        }
        // The filter sees the selected rows in order, before they are read: the values it
        // kept are the output rows' values, in the same order.
        let kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner()));
        let kept: Vec<&dyn Array> = kept.iter().map(|a| a.as_ref()).collect();
        let kept = if kept.is_empty() {
            arrow::array::new_empty_array(&arrow::datatypes::DataType::Utf8)
        } else {
            arrow::compute::concat(&kept).map_err(self.arrow_err())?
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if kept.len() != rows {
            return Err(ArchiveError::Parquet {
                what: self.what.clone(),
                message: format!(
                    "the filter kept {} rows, the read returned {rows}",
                    kept.len()
                ),
            });
        }
        let field = Arc::new(arrow::datatypes::Field::new(
            column,
            kept.data_type().clone(),
            true,
        ));
        let mut at = 0;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let mut fields: Vec<_> = b.schema().fields().iter().cloned().collect();
            let mut arrays = b.columns().to_vec();
            fields.push(field.clone());
            arrays.push(kept.slice(at, b.num_rows()));
            at += b.num_rows();
            let schema = Arc::new(arrow::datatypes::Schema::new(fields));
            out.push(RecordBatch::try_new(schema, arrays).map_err(self.arrow_err())?);
        }
        Ok(out)
    }

    fn arrow_err(&self) -> impl Fn(arrow::error::ArrowError) -> ArchiveError + '_ {
        |e| ArchiveError::Parquet {
            what: self.what.clone(),
            message: e.to_string(),
        }
    }
}

/// The values within `[min, max]`, compared as bytes (Parquet's order for text).
fn between<'v>(values: &'v BTreeSet<String>, min: &[u8], max: &[u8]) -> Vec<&'v String> {
    match (std::str::from_utf8(min), std::str::from_utf8(max)) {
        (Ok(lo), Ok(hi)) if lo <= hi => values
            .range::<str, _>((std::ops::Bound::Included(lo), std::ops::Bound::Included(hi)))
            .collect(),
        _ => values
            .iter()
            .filter(|v| v.as_bytes() >= min && v.as_bytes() <= max)
            .collect(),
    }
}

/// A partition opened for person lookups: its key unwrapped, its footer read.
pub struct OpenPartition(OpenParquet);

impl OpenPartition {
    /// Open partition `p` (its wrapped key unwrapped with a custodian identity).
    pub fn open(
        store: &Store,
        p: &Partition,
        identities: &[age::x25519::Identity],
    ) -> Result<OpenPartition, ArchiveError> {
        let key = crypto::unwrap_key(&p.key, identities, &store.get(&p.key)?)?;
        Ok(OpenPartition(OpenParquet::open(store, &p.file, &key)?))
    }

    /// The records of `persons` in this partition (plain columns; vault columns Null;
    /// with `columns`, only those filled, the others Null).
    pub fn records_of(
        &self,
        schema: &Schema,
        persons: &BTreeSet<String>,
        columns: Option<&BTreeSet<String>>,
    ) -> Result<Vec<Record>, ArchiveError> {
        let ph = schema.idx("person_hash");
        Ok(self
            .0
            .rows_where("person_hash", persons, columns)?
            .iter()
            .flat_map(|b| super::batch::from_batch(schema, b))
            .filter(|r| r.at(ph).as_str().is_some_and(|h| persons.contains(h)))
            .collect())
    }
}

/// The records of `persons` in partition `p`, reading only what can hold them.
pub fn read_persons(
    store: &Store,
    schema: &Schema,
    p: &Partition,
    identities: &[age::x25519::Identity],
    persons: &BTreeSet<String>,
) -> Result<Vec<Record>, ArchiveError> {
    OpenPartition::open(store, p, identities)?.records_of(schema, persons, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeking_reads_match_the_whole_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let (secret, recipient) = crypto::fresh_identity();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let ct = crypto::encrypt("t", &[recipient], &plain).unwrap();
        store.put("obj.age", ct).unwrap();
        let id: age::x25519::Identity = age::secrecy::ExposeSecret::expose_secret(&secret)
            .parse()
            .unwrap();
        let chunks = AgeChunks::open(&store, "obj.age", &id).unwrap();
        assert_eq!(chunks.len(), plain.len() as u64);
        for (start, len) in [
            (0usize, 10usize),
            (65_530, 20),
            (299_990, 10),
            (131_072, 70_000),
        ] {
            let got = chunks.get_bytes(start as u64, len).unwrap();
            assert_eq!(&got[..], &plain[start..start + len], "at {start}");
        }
        let mut r = chunks.get_read(65_000).unwrap();
        let mut buf = vec![0u8; 1000];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &plain[65_000..66_000]);
        assert!(chunks.get_bytes(299_999, 2).is_err());
    }

    #[test]
    fn a_flipped_byte_in_a_chunk_read_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let (secret, recipient) = crypto::fresh_identity();
        let plain = vec![1u8; 200_000];
        let mut ct = crypto::encrypt("t", &[recipient], &plain).unwrap();
        let n = ct.len();
        ct[n - 70_000] ^= 1;
        store.put("obj.age", ct).unwrap();
        let id: age::x25519::Identity = age::secrecy::ExposeSecret::expose_secret(&secret)
            .parse()
            .unwrap();
        // The flip lands in the second-to-last or last chunk: reading it fails.
        match AgeChunks::open(&store, "obj.age", &id) {
            Err(_) => {}
            Ok(c) => assert!(c.get_bytes(100_000, 100_000).is_err()),
        }
    }

    /// `batch` sealed as a lookup object sorted by `key` (row groups of `row_group_rows`),
    /// stored in a fresh folder (kept alive by the returned guard) and opened.
    fn sealed_and_opened(
        batch: RecordBatch,
        key: &str,
        row_group_rows: usize,
    ) -> (tempfile::TempDir, OpenParquet) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let (secret, recipient) = crypto::fresh_identity();
        let props = crate::archive::lookup_properties(key, row_group_rows, true);
        let (ct, _) = crate::archive::seal_parquet_to(
            "t",
            [Ok(batch.clone())],
            batch.schema(),
            &recipient,
            props,
        )
        .unwrap();
        store.put("obj.age", ct).unwrap();
        let id: age::x25519::Identity = age::secrecy::ExposeSecret::expose_secret(&secret)
            .parse()
            .unwrap();
        let open = OpenParquet::open(&store, "obj.age", &id).unwrap();
        (dir, open)
    }

    /// A sorted object of 5,000 rows in pages of `LOOKUP_PAGE_ROWS`: a read of a few
    /// keys selects only their pages, and returns exactly their rows.
    #[test]
    fn lookups_read_only_the_pages_that_can_hold_the_keys() {
        use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
        let keys: Vec<String> = (0..5000).map(|i| format!("{:06}", i / 2)).collect();
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.clone())),
                Arc::new(StringArray::from(
                    (0..5000).map(|i| format!("row{i}")).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let (_dir, open) = sealed_and_opened(batch, "k", 64 * 1024);
        assert_eq!(open.meta.metadata().num_row_groups(), 1);
        let wanted: BTreeSet<String> = ["000000", "001300", "002499"].map(String::from).into();
        let groups = open.row_groups("k", &wanted).unwrap();
        let selection = open.page_selection("k", &wanted, &groups).unwrap();
        let selected: usize = selection
            .iter()
            .filter(|s| !s.skip)
            .map(|s| s.row_count)
            .sum();
        assert!(
            selected > 0 && selected <= 3 * crate::archive::LOOKUP_PAGE_ROWS,
            "{selected}"
        );
        let only_v: BTreeSet<String> = ["v".to_string()].into();
        let batches = open.rows_where("k", &wanted, Some(&only_v)).unwrap();
        let mut got: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let v = b.column_by_name("v").unwrap();
                let v = v.as_any().downcast_ref::<StringArray>().unwrap();
                v.iter().map(|x| x.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            ["row0", "row1", "row2600", "row2601", "row4998", "row4999"]
        );
        let none: BTreeSet<String> = ["000000x".to_string()].into();
        assert!(open
            .rows_where("k", &none, None)
            .unwrap()
            .iter()
            .all(|b| b.num_rows() == 0));
    }

    /// The filter column's values come from the filter, the others from the read that
    /// follows: every output row pairs its own key with its own value, whatever the
    /// projection (other columns, all, the key alone) and across row groups.
    #[test]
    fn filtered_rows_pair_each_key_with_its_own_row() {
        use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
        let n = 7000;
        let key = |i: usize| format!("{:06}", i / 3);
        let schema = Arc::new(ArrowSchema::new(vec![
            Field::new("v", DataType::Utf8, true),
            Field::new("k", DataType::Utf8, false),
            Field::new("w", DataType::Utf8, true),
        ]));
        let col = |f: &dyn Fn(usize) -> String| -> arrow::array::ArrayRef {
            Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
        };
        let batch = RecordBatch::try_new(
            schema,
            vec![
                col(&|i| format!("v{i}")),
                col(&key),
                col(&|i| format!("w{i}")),
            ],
        )
        .unwrap();
        // Row groups of 1,000 rows: the wanted keys fall in several of them.
        let (_dir, open) = sealed_and_opened(batch, "k", 1000);
        assert!(open.meta.metadata().num_row_groups() > 3);
        let wanted: BTreeSet<String> = [0usize, 400, 1001, 2333, 2334]
            .map(|i| format!("{i:06}"))
            .into();
        let expected: Vec<usize> = (0..n).filter(|&i| wanted.contains(&key(i))).collect();
        let text = |b: &RecordBatch, name: &str| -> Vec<String> {
            let c = b.column_by_name(name).unwrap();
            let c = c.as_any().downcast_ref::<StringArray>().unwrap();
            c.iter().map(|x| x.unwrap().to_string()).collect()
        };
        let only_w: BTreeSet<String> = ["w".to_string()].into();
        let only_k: BTreeSet<String> = BTreeSet::new();
        for projection in [None, Some(&only_w), Some(&only_k)] {
            let batches = open.rows_where("k", &wanted, projection).unwrap();
            let keys: Vec<String> = batches.iter().flat_map(|b| text(b, "k")).collect();
            assert_eq!(keys, expected.iter().map(|&i| key(i)).collect::<Vec<_>>());
            if projection.is_none_or(|p| p.contains("w")) {
                let w: Vec<String> = batches.iter().flat_map(|b| text(b, "w")).collect();
                assert_eq!(
                    w,
                    expected.iter().map(|i| format!("w{i}")).collect::<Vec<_>>()
                );
            }
            if projection.is_none() {
                let v: Vec<String> = batches.iter().flat_map(|b| text(b, "v")).collect();
                assert_eq!(
                    v,
                    expected.iter().map(|i| format!("v{i}")).collect::<Vec<_>>()
                );
            } else {
                assert!(batches.iter().all(|b| b.column_by_name("v").is_none()));
            }
        }
    }
}
