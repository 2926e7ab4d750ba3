//! The polars glue: every relational step of reconciliation (key joins, blocking joins,
//! the merge group-by) runs here, on narrow frames of `(row index, key hash)`.
//!
//! A key is joined by its 128-bit xxh3 hash (two u64 columns), not its text: the frames
//! the linker keeps for the whole run (the registry's side of every join) take a third of
//! the memory, and the joins hash fixed-width values. Two different keys share a hash
//! with probability about n²/2¹²⁹ — for the ten million keys of a large run, 10⁻²⁵.
//!
//! Callers build key lists in plain Rust (the keys are personal data; they never leave
//! this process and are never printed) and get back row-index pairs. All results are
//! sorted, so the output does not depend on polars' thread scheduling.

use polars::prelude::*;

/// A row index paired with its join key's hash ([`key`]). Rows without a key are simply
/// left out.
pub(crate) type Keyed = Vec<(u32, u128)>;

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
/// registry against every chunk of records).
#[derive(Clone)]
pub(crate) struct Right(Option<DataFrame>);

impl Right {
    /// `rows` as a join's right side. Keys held by more than `max_right_per_key` rows are
    /// dropped (a blocking key that common says nothing and costs quadratic time).
    pub(crate) fn new(rows: Keyed, max_right_per_key: Option<u32>) -> Right {
        if rows.is_empty() {
            return Right(None);
        }
        let run = || -> PolarsResult<DataFrame> {
            let mut r = frame("r", rows)?.lazy();
            if let Some(cap) = max_right_per_key {
                r = r.filter(len().over(key_cols())?.lt_eq(lit(cap)));
            }
            r.collect()
        };
        Right(Some(
            run().expect("building a (row, key hash) frame cannot fail"),
        ))
    }
}

/// Inner join of `left` and a prepared right side on the key: every `(left row, right
/// row)` pair whose keys are equal, sorted and deduplicated.
pub(crate) fn join_with(left: Keyed, right: &Right) -> Vec<(u32, u32)> {
    let Some(r) = &right.0 else {
        return Vec::new();
    };
    if left.is_empty() {
        return Vec::new();
    }
    let run = || -> PolarsResult<Vec<(u32, u32)>> {
        let joined = inner_join(frame("l", left)?.lazy(), r.clone().lazy())
            .select([col("l"), col("r")])
            .collect()?;
        pairs_of(&joined, "l", "r")
    };
    run().expect("joining two (row, key hash) frames cannot fail")
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

    #[test]
    fn groups_by_key() {
        let rows = keyed(&[(5, "x"), (1, "y"), (3, "x"), (7, "z")]);
        assert_eq!(group_ids(rows), vec![(1, 1), (3, 3), (5, 3), (7, 7)]);
    }
}
