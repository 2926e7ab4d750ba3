//! Merging doses recorded twice (VRS export + ledger) and flagging doses that disagree.
//!
//! Groups are formed by polars ([`super::frames::group_ids`]) on
//! (linked registry atena, vaccine_code, dose_number); within a group, plain Rust pairs
//! the VRS records with the ledger records. Only linked records with a dose number take
//! part: an unlinked record is never merged, because nothing says whose dose it is.

use rayon::prelude::*;

use super::frames;
use super::Fields;
use crate::record::{Record, Value, ValueRef};

/// The source kind whose values survive a merge.
pub(crate) const VRS_KIND: &str = "vrs-ledger-export";
/// The source kind that is absorbed.
pub(crate) const LEDGER_KIND: &str = "ledger";

/// Fields a merge never fills from the absorbed row: provenance and bookkeeping.
const KEEP: &[&str] = &[
    "record_id",
    "source_kind",
    "source_file_id",
    "source_line",
    "raw_row_blake3",
    "merged_provenance",
    "match_method",
    "match_score",
    "registry_atena_number",
    "registry_status",
    "registry_status_date",
    "conflicts",
    "merge_status",
];

/// `file_id:line:blake3` of a record's source row.
pub(crate) fn provenance(f: &Fields, r: &Record) -> String {
    let s = |i: usize| r.at(i).as_str().unwrap_or("").to_string();
    let line = r
        .at(f.source_line)
        .as_int()
        .map_or(String::new(), |l| l.to_string());
    format!("{}:{}:{}", s(f.source_file_id), line, s(f.raw_row_blake3))
}

/// Add a name to a record's `;`-separated conflicts (kept in a fixed order).
pub(crate) fn add_conflict(f: &Fields, r: &mut Record, name: &str) {
    let mut set: Vec<String> = r
        .at(f.conflicts)
        .as_str()
        .map(|s| s.split(';').map(str::to_string).collect())
        .unwrap_or_default();
    if !set.iter().any(|c| c == name) {
        set.push(name.to_string());
    }
    set.sort_by_key(|c| {
        CONFLICT_ORDER
            .iter()
            .position(|o| o == c)
            .unwrap_or(CONFLICT_ORDER.len())
    });
    r.set(f.conflicts, Value::Str(set.join(";").into()));
}

/// Order of names in the conflicts field.
pub(crate) const CONFLICT_ORDER: &[&str] = &[
    "birth_date",
    "sex",
    "kana_name",
    "kanji_name",
    "dose_date",
    "lot_number",
    "ticket_atena",
];

fn lots_compatible(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    a.is_null() || b.is_null() || a == b
}

/// Merge in place. Returns the records that remain (absorbed rows removed) and the
/// number of absorbed rows. Sets `merge_status` on every record.
pub(crate) fn merge(
    schema: &crate::schema::Schema,
    f: &Fields,
    keep_idx: &[usize],
    mut records: Vec<Record>,
) -> (Vec<Record>, u64) {
    fn kind<'r>(f: &Fields, r: &'r Record) -> &'r str {
        r.at(f.source_kind).as_str().unwrap_or("")
    }
    let keyed: frames::Keyed = records
        .par_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            // The person: the registry resident a record is linked to, else (a person
            // the registry does not know) the record's person key (`archive::person_key`:
            // 個人番号, else ticket, else 宛名番号, with the birth date, as no registry row
            // vouches for them — so copies that merge share a person bucket), and only when
            // it has a birth date — but not a record awaiting review: the review list names
            // it, and a reviewer may still link it to a resident.
            let text = |i: usize| r.at(i).as_str().filter(|s| !s.is_empty());
            let dose = r.at(f.dose_number).as_int()?;
            let vaccine = r.at(f.vaccine_code).as_str().unwrap_or("");
            let key = match text(f.registry_atena_number) {
                Some(a) => format!("R:{a}\u{1f}{vaccine}\u{1f}{dose}"),
                _ if text(f.match_method) == Some("review") => return None,
                _ => {
                    r.at(f.birth_date).as_date()?;
                    format!(
                        "{}\u{1f}{vaccine}\u{1f}{dose}",
                        crate::archive::person_key(schema, r)
                    )
                }
            };
            Some((i as u32, frames::key(&key)))
        })
        .collect();
    // Groups in group-id order, members in row order (a group's id is its first row).
    let mut pairs = frames::group_ids(keyed);
    pairs.par_sort_unstable_by_key(|&(row, group)| (group, row));
    let groups = pairs
        .chunk_by(|a, b| a.1 == b.1)
        .filter(|g| g.len() > 1)
        .map(|g| {
            g.iter()
                .map(|&(row, _)| row as usize)
                .collect::<Vec<usize>>()
        });

    let mut absorbed_by: Vec<Option<usize>> = vec![None; records.len()];
    let mut status: Vec<&'static str> = vec!["single"; records.len()];
    for members in groups {
        let vrs: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| kind(f, &records[i]) == VRS_KIND)
            .collect();
        let ledger: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| kind(f, &records[i]) == LEDGER_KIND)
            .collect();
        if vrs.is_empty() || ledger.is_empty() {
            continue;
        }
        // Copies of a person no registry row vouches for must also agree on the kana name
        // and sex where both have them (else they are two people: neither merged nor in
        // conflict).
        let unlinked = records[members[0]]
            .at(f.registry_atena_number)
            .as_str()
            .is_none_or(str::is_empty);
        let same_person = |v: usize, l: usize| {
            let agree = |i: usize, key: fn(&str) -> String| match (
                records[v].at(i).as_str(),
                records[l].at(i).as_str(),
            ) {
                (Some(a), Some(b)) => key(a) == key(b),
                _ => true,
            };
            !unlinked || (agree(f.kana_name, super::keys::kana) && agree(f.sex, str::to_string))
        };
        // Pair: each ledger row goes to the first VRS row (by record order) it agrees with.
        for &l in &ledger {
            let found = vrs.iter().copied().find(|&v| {
                records[v].at(f.vaccination_date) == records[l].at(f.vaccination_date)
                    && lots_compatible(records[v].at(f.lot_number), records[l].at(f.lot_number))
                    && same_person(v, l)
            });
            if let Some(v) = found {
                absorbed_by[l] = Some(v);
                status[v] = "merged";
            }
        }
        // Same dose, different date or lot, across the two sources: keep both, flag both.
        let mut flags = Vec::new();
        for &v in &vrs {
            for &l in ledger
                .iter()
                .filter(|&&l| absorbed_by[l].is_none() && same_person(v, l))
            {
                let what = if records[v].at(f.vaccination_date) != records[l].at(f.vaccination_date)
                {
                    "dose_date"
                } else {
                    "lot_number"
                };
                flags.push((v, l, what));
            }
        }
        for (v, l, what) in flags {
            for i in [v, l] {
                add_conflict(f, &mut records[i], what);
                status[i] = "conflict";
            }
        }
    }

    // Fold absorbed rows into their survivors: take each absorbed row out (in row order),
    // then every survivor folds its own in parallel — first absorbed row first, so the
    // result is the serial fold's.
    let mut absorbed: Vec<Vec<Record>> = vec![Vec::new(); records.len()];
    for (l, v) in absorbed_by.iter().enumerate() {
        if let Some(v) = *v {
            absorbed[v].push(std::mem::take(&mut records[l]));
        }
    }
    // Each absorbed row is freed as soon as it is folded, so the survivors' new rows reuse
    // its memory instead of touching fresh pages (the merge step was migrate's peak RSS).
    records
        .par_iter_mut()
        .zip(absorbed.par_iter_mut())
        .filter(|(_, rows)| !rows.is_empty())
        .for_each(|(survivor, rows)| {
            let rows = std::mem::take(rows);
            let mut list: Vec<String> = rows.iter().map(|r| provenance(f, r)).collect();
            for row in rows {
                survivor.fill_from(&row, |i| !keep_idx.contains(&i));
                if let Some(c) = row.at(f.conflicts).as_str() {
                    for name in c.split(';') {
                        add_conflict(f, survivor, name);
                    }
                }
            }
            list.sort();
            survivor.set(f.merged_provenance, Value::Str(list.join(";").into()));
        });
    drop(absorbed);
    let mut merged_rows = 0;
    let mut out = Vec::with_capacity(records.len());
    for (i, mut r) in records.into_iter().enumerate() {
        if absorbed_by[i].is_some() {
            merged_rows += 1;
            continue;
        }
        // Most records keep the status ingest gave them ("single"): `set` then leaves
        // the packed record as it is.
        r.set(f.merge_status, Value::Str(status[i].into()));
        out.push(r);
    }
    (out, merged_rows)
}

/// Indices of [`KEEP`] in the schema.
pub(crate) fn keep_indices(schema: &crate::schema::Schema) -> Vec<usize> {
    KEEP.iter().filter_map(|n| schema.index(n)).collect()
}
