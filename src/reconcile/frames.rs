//! The relational steps of reconciliation on narrow `(row index, key hash)` lists: the
//! merge group-by in polars, and the joins of record batches against sides built once
//! (the registry's, the VRS person list's) by lookups in a sorted [`Right`].
//!
//! A key is joined by its 128-bit xxh3 hash, not its text: the sides the linker keeps
//! for the whole run (the registry's side of every join) take a third of the memory, and
//! joins compare fixed-width values. Two different keys share a hash
//! with probability about n²/2¹²⁹ — for the ten million keys of a large run, 10⁻²⁵.
//!
//! Callers build key lists in plain Rust (the keys are personal data; they never leave
//! this process and are never printed) and get back row-index pairs. All results are
//! sorted, so the output does not depend on thread scheduling.

use polars::prelude::*;
use rayon::prelude::*;

/// A row index paired with its join key's hash ([`key`]). Rows without a key are simply
/// left out.
pub(crate) type Keyed = Vec<(u32, u128)>;

/// A [`Keyed`] list held as two columns, for a side collected over a long time (a
/// registry read a chunk at a time): 20 bytes a row instead of 32 (the `(u32, u128)`
/// pair is padded to the key's alignment).
#[derive(Default)]
pub(crate) struct KeyColumns {
    keys: Vec<u128>,
    rows: Vec<u32>,
}

impl KeyColumns {
    /// Append `more`, its rows shifted by `base`.
    pub(crate) fn extend_shifted(&mut self, more: Keyed, base: u32) {
        self.keys.reserve(more.len());
        self.rows.reserve(more.len());
        for (i, k) in more {
            self.keys.push(k);
            self.rows.push(base + i);
        }
    }
}

/// The hash a key is joined and grouped by.
#[inline]
pub(crate) fn key(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// The key columns of a frame.
fn key_cols() -> [Expr; 2] {
    [col("k1"), col("k2")]
}

fn frame(index_name: &str, rows: Keyed) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let (mut index, mut k1, mut k2) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (i, h) in rows {
        index.push(i);
        k1.push((h >> 64) as u64);
        k2.push(h as u64);
    }
    DataFrame::new(
        n,
        vec![
            Column::new(index_name.into(), index),
            Column::new("k1".into(), k1),
            Column::new("k2".into(), k2),
        ],
    )
}

fn inner_join(l: LazyFrame, r: LazyFrame) -> LazyFrame {
    l.join(r, key_cols(), key_cols(), JoinArgs::new(JoinType::Inner))
}

fn pairs_of(df: &DataFrame, left: &str, right: &str) -> PolarsResult<Vec<(u32, u32)>> {
    let l = df.column(left)?.u32()?;
    let r = df.column(right)?.u32()?;
    let mut out: Vec<(u32, u32)> = l
        .iter()
        .zip(r.iter())
        .filter_map(|(a, b)| Some((a?, b?)))
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The right side of [`join_with`], built once and joined against many left sides (the
/// registry against every batch of records): its `(key hash, row)` pairs sorted, with a
/// table of where each value of the hash's top [`RADIX_BITS`] bits starts.
///
/// Not a polars frame: a polars join builds a hash table over, or probes with, the whole
/// registry side on every call, and row-encodes its two key columns each time — a cost
/// per batch that grows with the registry, so migrate time grew faster than its rows
/// (docs/decisions.md). A lookup here costs a few comparisons per left row, and the side
/// takes the same 20 bytes per row the frame did.
#[derive(Clone, Default)]
pub(crate) struct Right {
    /// Key hashes, ascending (ties: by row).
    keys: Vec<u128>,
    /// The row of each key.
    rows: Vec<u32>,
    /// `starts[b]..starts[b + 1]`: the positions whose key's top bits are `b`
    /// (empty when the side is).
    starts: Vec<u32>,
}

/// Top bits of a key hash that index [`Right::starts`] (2¹⁶ + 1 entries, 256 KiB).
const RADIX_BITS: u32 = 16;

impl Right {
    /// `rows` as a join's right side. Keys held by more than `max_right_per_key` rows are
    /// dropped (a blocking key that common says nothing and costs quadratic time).
    pub(crate) fn new(rows: Keyed, max_right_per_key: Option<u32>) -> Right {
        Self::of_pairs(
            rows.into_iter().map(|(i, k)| (k, i)).collect(),
            max_right_per_key,
        )
    }

    /// [`Right::new`] of rows held as two columns ([`KeyColumns`]: 20 bytes a row
    /// instead of 32 while a side is being collected).
    pub(crate) fn of_columns(rows: KeyColumns, max_right_per_key: Option<u32>) -> Right {
        let KeyColumns { keys, rows } = rows;
        let pairs = keys.into_iter().zip(rows).collect();
        Self::of_pairs(pairs, max_right_per_key)
    }

    fn of_pairs(mut pairs: Vec<(u128, u32)>, max_right_per_key: Option<u32>) -> Right {
        pairs.par_sort_unstable();
        // The cap counts a key's rows as given (as polars' `len().over(key)` did).
        if let Some(cap) = max_right_per_key {
            let cap = cap as usize;
            let mut kept = Vec::with_capacity(pairs.len());
            for run in pairs.chunk_by(|a, b| a.0 == b.0) {
                if run.len() <= cap {
                    kept.extend_from_slice(run);
                }
            }
            pairs = kept;
        }
        pairs.dedup();
        if pairs.is_empty() {
            return Right::default();
        }
        let n = u32::try_from(pairs.len()).expect("a join side has fewer than 2³² rows");
        let mut starts = vec![n; (1 << RADIX_BITS) + 1];
        // Backwards, so each bucket keeps its first position; empty buckets take the
        // start of the next non-empty one.
        for (p, (k, _)) in pairs.iter().enumerate().rev() {
            starts[top(*k)] = p as u32;
        }
        for b in (0..1 << RADIX_BITS).rev() {
            starts[b] = starts[b].min(starts[b + 1]);
        }
        let (keys, rows) = pairs.into_iter().unzip();
        Right { keys, rows, starts }
    }

    /// Rows whose key hash is `k`, ascending.
    #[inline]
    pub(crate) fn rows_of(&self, k: u128) -> &[u32] {
        if self.keys.is_empty() {
            return &[];
        }
        let b = top(k);
        let (lo, hi) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let bucket = &self.keys[lo..hi];
        let first = bucket.partition_point(|x| *x < k);
        let len = bucket[first..].partition_point(|x| *x == k);
        &self.rows[lo + first..lo + first + len]
    }
}

#[inline]
fn top(k: u128) -> usize {
    (k >> (128 - RADIX_BITS)) as usize
}

/// Inner join of `left` and a prepared right side on the key: every `(left row, right
/// row)` pair whose keys are equal, sorted and deduplicated.
pub(crate) fn join_with(left: Keyed, right: &Right) -> Vec<(u32, u32)> {
    if left.is_empty() || right.keys.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(u32, u32)> = left
        .par_iter()
        .with_min_len(4096)
        .flat_map_iter(|&(l, k)| right.rows_of(k).iter().map(move |&r| (l, r)))
        .collect();
    out.par_sort_unstable();
    out.dedup();
    out
}

/// Group rows by key: for each row, the smallest row index with the same key (the
/// group's id), as `(row, group)` sorted by row.
pub(crate) fn group_ids(rows: Keyed) -> Vec<(u32, u32)> {
    if rows.is_empty() {
        return Vec::new();
    }
    let run = || -> PolarsResult<Vec<(u32, u32)>> {
        let rows = frame("row", rows)?.lazy();
        let groups = rows
            .clone()
            .group_by(key_cols())
            .agg([col("row").min().alias("group")]);
        let joined = inner_join(rows, groups)
            .select([col("row"), col("group")])
            .collect()?;
        pairs_of(&joined, "row", "group")
    };
    run().expect("grouping a (row, key hash) frame cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(v: &[(u32, &str)]) -> Keyed {
        v.iter().map(|(i, k)| (*i, key(k))).collect()
    }

    #[test]
    fn join_finds_equal_keys() {
        let l = keyed(&[(0, "a"), (1, "b"), (2, "c"), (3, "a")]);
        let r = keyed(&[(10, "a"), (11, "c"), (12, "c"), (13, "z")]);
        assert_eq!(
            join_with(l.clone(), &Right::new(r.clone(), None)),
            vec![(0, 10), (2, 11), (2, 12), (3, 10)]
        );
        assert_eq!(
            join_with(l.clone(), &Right::new(r, Some(1))),
            vec![(0, 10), (3, 10)]
        );
        assert!(join_with(l, &Right::new(Vec::new(), None)).is_empty());
    }

    /// A side collected a chunk at a time as columns joins as the same side built at once.
    #[test]
    fn a_side_collected_as_columns_in_chunks_is_the_same_side() {
        let all = keyed(&[(0, "a"), (1, "b"), (2, "a"), (3, "c"), (4, "a"), (5, "b")]);
        let left = keyed(&[(0, "a"), (1, "b"), (2, "c"), (3, "z")]);
        for cap in [None, Some(2)] {
            let whole = join_with(left.clone(), &Right::new(all.clone(), cap));
            for chunk in [1, 2, 4, 6] {
                let mut cols = KeyColumns::default();
                for (n, part) in all.chunks(chunk).enumerate() {
                    let base = (n * chunk) as u32;
                    let local = part.iter().map(|&(i, k)| (i - base, k)).collect();
                    cols.extend_shifted(local, base);
                }
                let side = Right::of_columns(cols, cap);
                assert_eq!(join_with(left.clone(), &side), whole, "{chunk}, {cap:?}");
            }
        }
        assert_eq!(
            join_with(left.clone(), &Right::new(all.clone(), Some(2))),
            vec![(1, 1), (1, 5), (2, 3)]
        );
    }

    proptest::proptest! {
        /// The sorted side finds exactly the pairs a nested loop over both sides finds,
        /// with any cap, and keys spread over and within the radix buckets.
        #[test]
        fn join_equals_nested_loop(
            left in proptest::collection::vec((0u32..50, 0u8..12, proptest::bool::ANY), 0..60),
            right in proptest::collection::vec((0u32..50, 0u8..12, proptest::bool::ANY), 0..60),
            cap in proptest::option::of(1u32..4),
        ) {
            // Keys near each other in the top bits (same radix bucket) and far apart.
            let k = |v: u8, far: bool| {
                if far { (u128::from(v) << 120) | 7 } else { u128::from(v) }
            };
            let l: Keyed = left.iter().map(|&(i, v, far)| (i, k(v, far))).collect();
            let r: Keyed = right.iter().map(|&(i, v, far)| (i, k(v, far))).collect();
            let mut want = Vec::new();
            for &(li, lk) in &l {
                let held = r.iter().filter(|(_, rk)| *rk == lk).count() as u32;
                if cap.is_some_and(|c| held > c) {
                    continue;
                }
                for &(ri, rk) in &r {
                    if rk == lk {
                        want.push((li, ri));
                    }
                }
            }
            want.sort_unstable();
            want.dedup();
            proptest::prop_assert_eq!(join_with(l, &Right::new(r, cap)), want);
        }
    }

    #[test]
    fn groups_by_key() {
        let rows = keyed(&[(5, "x"), (1, "y"), (3, "x"), (7, "z")]);
        assert_eq!(group_ids(rows), vec![(1, 1), (3, 3), (5, 3), (7, 7)]);
    }
}
