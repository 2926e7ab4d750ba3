//! Purge and erase, end to end: evaluate, apply, verify, certify.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::certificate::{
    self, Certificate, Erased, Media, Person, Roots, Sanitization, Verification,
};
use super::inputs::{Deaths, Submissions};
use super::lists::{self, Needles, QuarantineExpiry};
use super::rewrite::{self, Applied, Change};
use super::{expired, Holds, RecordFacts, Rules};
use crate::archive::manifest::{Manifest, Partition};
use crate::archive::store::Store;
use crate::archive::{self, ArchiveError, WriteKeys};
use crate::normalise::Tables;
use crate::record::{civil_from_days, Record};
use crate::schema::Schema;

/// Everything a purge is decided from.
pub struct PurgeRequest<'a> {
    /// As-of date (days since 1970-01-01).
    pub as_of: i32,
    /// Rules.
    pub rules: &'a Rules,
    /// Legal holds.
    pub holds: &'a Holds,
    /// Death dates from the newest registry extract.
    pub deaths: Option<&'a Deaths>,
    /// Provision dates.
    pub submissions: Option<&'a Submissions>,
    /// Request facts for the certificate (as-of, rules and inputs by hash; no personal data).
    pub request: BTreeMap<String, String>,
}

/// Counts by rule, vaccine and year.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Records.
    pub records: u64,
    /// By rule.
    pub by_rule: BTreeMap<String, u64>,
    /// By vaccine code.
    pub by_vaccine: BTreeMap<String, u64>,
    /// By 接種日 year.
    pub by_year: BTreeMap<String, u64>,
}

impl Counts {
    fn add(&mut self, rule: &str, vaccine: &str, year: Option<i32>) {
        self.records += 1;
        *self.by_rule.entry(rule.into()).or_default() += 1;
        *self.by_vaccine.entry(vaccine.into()).or_default() += 1;
        *self
            .by_year
            .entry(year.map_or("unknown".into(), |y| y.to_string()))
            .or_default() += 1;
    }
}

/// What a purge or erase decided (and did, unless a dry run). No personal data.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    /// Dry run: nothing changed.
    pub dry_run: bool,
    /// Partitions decrypted to evaluate.
    pub partitions_evaluated: u64,
    /// Records evaluated.
    pub records_evaluated: u64,
    /// Records kept by a legal hold that would otherwise have expired or been looked at.
    pub records_held: u64,
    /// Records erased (or that would be).
    pub erased: Counts,
    /// Partition files dropped whole.
    pub partitions_dropped: Vec<String>,
    /// Partition files rewritten with survivors.
    pub partitions_rewritten: Vec<String>,
    /// Persons whose identifiers leave the index.
    pub persons_removed_from_index: u64,
    /// Review-list rows that name an erased record or person (removed, or would be).
    pub review_rows_removed: u64,
    /// Quarantine-list rows removed (or that would be): an erase's rows holding the
    /// erased person's identifiers; a purge's rows whose retention has run out (their
    /// 接種日 and vaccine code were read at migrate).
    pub quarantine_rows_removed: u64,
    /// Objects removed by recovery of an interrupted run.
    pub recovered_objects: u64,
    /// An interrupted commit was completed.
    pub rolled_forward: bool,
    /// New generation and root.
    pub generation: u64,
    /// Merkle root after.
    pub merkle_root: String,
    /// Certificate object path.
    pub certificate: Option<String>,
    /// Post-erasure verification.
    pub verification: Option<Verification>,
    /// Wall seconds per phase (`purge` only): evaluate (decrypt the candidate partitions
    /// and decide every record), apply (rewrite, drop, index, commit, destroy), verify
    /// (the post-erasure check and the certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<PurgeTimings>,
}

/// Wall seconds of the phases of a purge.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PurgeTimings {
    /// Decrypting candidates and deciding.
    pub evaluate: f64,
    /// Writing the new generation and destroying the old objects.
    pub apply: f64,
    /// Post-erasure verification and the certificate.
    pub verify: f64,
    /// Records written again in rewritten partitions.
    pub records_rewritten: u64,
}

/// Keys and identities of a changing run.
pub struct RunKeys<'a> {
    /// Custodian (and vault) identities.
    pub identities: &'a [age::x25519::Identity],
    /// Writer keys (recipients from the manifest; the signing key must match it).
    pub write: Option<&'a WriteKeys>,
}

/// Who signs the certificate.
pub struct Signer<'a> {
    /// Operator id.
    pub operator: &'a str,
    /// Performer.
    pub performer: Person,
    /// Issue time.
    pub now: &'a str,
}

fn facts(
    schema: &Schema,
    tables: &Tables,
    r: &Record,
    secret: &[u8; 32],
    with_hashes: bool,
) -> RecordFacts {
    let s = |n: &str| r.at(schema.idx(n)).as_str().filter(|v| !v.is_empty());
    let atena_hashes = if with_hashes {
        [s("atena_number"), s("registry_atena_number")]
            .into_iter()
            .flatten()
            .map(|a| archive::keyed_hash(secret, "atena", a))
            .collect()
    } else {
        Vec::new()
    };
    RecordFacts {
        record_id: s("record_id").unwrap_or_default().to_string(),
        category: s("vaccine_code")
            .and_then(|c| tables.vaccine(c))
            .map(|v| v.category.clone()),
        vaccination_date: r.at(schema.idx("vaccination_date")).as_date(),
        atena_hashes,
    }
}

/// The evaluator's inputs for one record, then its decision.
fn decide(
    schema: &Schema,
    tables: &Tables,
    req: &PurgeRequest<'_>,
    secret: &[u8; 32],
    r: &Record,
) -> super::Decision {
    let with_hashes =
        !req.holds.persons.is_empty() || req.submissions.is_some_and(Submissions::needs_hashes);
    let f = facts(schema, tables, r, secret, with_hashes);
    let s = |n: &str| r.at(schema.idx(n)).as_str().filter(|v| !v.is_empty());
    let registry_atena = s("registry_atena_number");
    let stored_death = if s("registry_status") == Some("deceased") {
        r.at(schema.idx("registry_status_date")).as_date()
    } else {
        None
    };
    let death = match (req.deaths, registry_atena) {
        (Some(d), Some(a)) => match d.by_atena.get(a) {
            Some(newer) => *newer,
            None => stored_death,
        },
        _ => stored_death,
    };
    let atenas: Vec<&str> = [s("atena_number"), registry_atena]
        .into_iter()
        .flatten()
        .collect();
    let provided = req
        .submissions
        .and_then(|sub| sub.date_of(&f.record_id, &atenas, &f.atena_hashes));
    expired(&f, req.rules, req.as_of, death, provided, req.holds)
}

/// Partitions that can hold an expired record on `as_of` (see docs/purge.md).
pub fn candidates<'m>(m: &'m Manifest, req: &PurgeRequest<'_>) -> Vec<&'m Partition> {
    let as_of_year = civil_from_days(req.as_of).0;
    // Partition expiry years assume 5-year periods; shorter rules widen the net.
    let min_years = req
        .rules
        .rules
        .iter()
        .map(|r| r.rule.years)
        .min()
        .unwrap_or(5) as i32;
    let slack = (5 - min_years).max(0);
    // COVID-class records outside a special period fall under a years-from-接種日 rule:
    // the earliest year one of those can expire.
    let covid_routine_year = req
        .rules
        .rules
        .iter()
        .filter(|r| r.rule.expiry == super::ExpiryKind::LaterOfDeathAndProvision)
        .filter_map(|r| r.rule.vaccinated_to.as_deref().and_then(super::parse_date))
        .map(|d| civil_from_days(d).0 + min_years)
        .min()
        .unwrap_or(i32::MIN);
    m.partitions
        .iter()
        .filter(|p| {
            let year = p.expiry.parse::<i32>().ok();
            if p.retention_class == "covid_special" {
                req.submissions.is_some() || as_of_year >= covid_routine_year
            } else {
                year.is_some_and(|y| y - slack <= as_of_year)
            }
        })
        .collect()
}

fn year_of(schema: &Schema, r: &Record) -> Option<i32> {
    r.at(schema.idx("vaccination_date"))
        .as_date()
        .map(|d| civil_from_days(d).0)
}

/// Person hashes that still have a record, among `persons`, reading the partitions of
/// their buckets that are not in `evaluated` (whose survivors are given).
fn still_present(
    store: &Store,
    schema: &Schema,
    m: &Manifest,
    ids: &[age::x25519::Identity],
    persons: &BTreeSet<String>,
    evaluated: &BTreeMap<String, Vec<Record>>,
) -> Result<BTreeSet<String>, ArchiveError> {
    let ph = schema.idx("person_hash");
    let buckets: BTreeSet<u16> = persons
        .iter()
        .map(|p| archive::bucket_of(p, m.buckets))
        .collect();
    let mut present = BTreeSet::new();
    for p in &m.partitions {
        if !buckets.contains(&p.bucket) {
            continue;
        }
        let owned;
        let records: &Vec<Record> = match evaluated.get(&p.id) {
            Some(r) => r,
            None => {
                owned = archive::read_partition(store, schema, p, ids)?;
                &owned
            }
        };
        for r in records {
            if let Some(h) = r.at(ph).as_str().filter(|h| persons.contains(*h)) {
                present.insert(h.to_string());
            }
        }
    }
    Ok(present)
}

/// Run a purge (or its dry run).
pub fn purge(
    store: &Store,
    schema: &Schema,
    req: &PurgeRequest<'_>,
    keys: &RunKeys<'_>,
    signer: &Signer<'_>,
    dry_run: bool,
) -> Result<Outcome, ArchiveError> {
    let tables = Tables::embedded();
    let _lock = if dry_run {
        None
    } else {
        rewrite::ensure_deletable(store)?;
        Some(rewrite::acquire_lock(
            store,
            "purge",
            signer.operator,
            signer.now,
        )?)
    };
    let mut out = Outcome {
        dry_run,
        ..Outcome::default()
    };
    let clock = std::time::Instant::now();
    let mut timings = PurgeTimings::default();
    if !dry_run {
        let rec = rewrite::recover(store)?;
        out.recovered_objects = rec.removed_unlisted.len() as u64;
        out.rolled_forward = rec.rolled_forward;
    }
    let (m, _) = archive::read_manifest(store)?;
    let secret = rewrite::read_secret(store, keys.identities)?;
    let ph = schema.idx("person_hash");
    let vc = schema.idx("vaccine_code");
    let mut change = Change::default();
    let mut evaluated: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut removed_persons = BTreeSet::new();
    let mut removed_records: Vec<Record> = Vec::new();
    for p in candidates(&m, req) {
        let records = archive::read_partition(store, schema, p, keys.identities)?;
        out.partitions_evaluated += 1;
        let mut survivors = Vec::with_capacity(records.len());
        let mut removed = 0u64;
        for r in records {
            out.records_evaluated += 1;
            let d = decide(schema, tables, req, &secret, &r);
            if d.rule == "hold" {
                out.records_held += 1;
            }
            if d.expired {
                out.erased.add(
                    &d.rule,
                    r.at(vc).as_str().unwrap_or("unknown"),
                    year_of(schema, &r),
                );
                if let Some(h) = r.at(ph).as_str() {
                    removed_persons.insert(h.to_string());
                }
                removed += 1;
                removed_records.push(r);
            } else {
                survivors.push(r);
            }
        }
        if removed > 0 {
            if survivors.is_empty() {
                out.partitions_dropped.push(p.file.clone());
            } else {
                out.partitions_rewritten.push(p.file.clone());
            }
            change.survivors.insert(p.id.clone(), survivors.clone());
        }
        evaluated.insert(p.id.clone(), survivors);
    }
    let present = still_present(
        store,
        schema,
        &m,
        keys.identities,
        &removed_persons,
        &evaluated,
    )?;
    change.removed_persons = removed_persons.difference(&present).cloned().collect();
    change.records_removed = out.erased.records;
    out.persons_removed_from_index = change.removed_persons.len() as u64;
    out.generation = m.generation;
    out.merkle_root = m.merkle_root.clone();
    let removed_ids: BTreeSet<String> = removed_records
        .iter()
        .filter_map(|r| r.at(schema.idx("record_id")).as_str().map(str::to_string))
        .collect();
    change.lists = Needles {
        records: removed_ids.clone(),
        expiry: Some(QuarantineExpiry {
            rules: req.rules.clone(),
            holds: req.holds.clone(),
            as_of: req.as_of,
            secret,
        }),
        ..Needles::default()
    };
    // The lists are small (one object each): what leaves them is counted before
    // anything changes — a purge in which only quarantined rows expire still runs.
    [out.review_rows_removed, out.quarantine_rows_removed] =
        lists_going(store, &m, keys.identities, &change.lists)?;
    if dry_run || (change.survivors.is_empty() && out.quarantine_rows_removed == 0) {
        return Ok(out);
    }
    let write = keys.write.ok_or_else(|| {
        ArchiveError::State("a signing key is needed to change the archive".into())
    })?;
    let persons = change.removed_persons.clone();
    timings.records_rewritten = change.survivors.values().map(|v| v.len() as u64).sum();
    timings.evaluate = clock.elapsed().as_secs_f64();
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
    )?;
    timings.apply = clock.elapsed().as_secs_f64() - timings.evaluate;
    let v = post_check(
        store,
        schema,
        &applied,
        keys.identities,
        &secret,
        &removed_records,
        &persons,
        &|r| {
            removed_ids.contains(r.at(schema.idx("record_id")).as_str().unwrap_or_default())
                || decide(schema, tables, req, &secret, r).expired
        },
    )?;
    let counts = out.erased.clone();
    finish(
        store,
        &mut out,
        applied,
        v,
        "purge",
        req.request.clone(),
        &counts,
        signer,
        write,
        (&secret, &persons),
    )?;
    timings.verify = clock.elapsed().as_secs_f64() - timings.evaluate - timings.apply;
    out.timings = Some(timings);
    Ok(out)
}

/// What every erase starts with: the lock (held until the returned guard drops), recovery
/// of an interrupted run, the manifest and the archive's hash key.
fn begin_erase<'s>(
    store: &'s Store,
    keys: &RunKeys<'_>,
    signer: &Signer<'_>,
) -> Result<(rewrite::Lock<'s>, Outcome, Manifest, [u8; 32]), ArchiveError> {
    rewrite::ensure_deletable(store)?;
    let lock = rewrite::acquire_lock(store, "erase", signer.operator, signer.now)?;
    let mut out = Outcome::default();
    let rec = rewrite::recover(store)?;
    out.recovered_objects = rec.removed_unlisted.len() as u64;
    out.rolled_forward = rec.rolled_forward;
    let (m, _) = archive::read_manifest(store)?;
    let secret = rewrite::read_secret(store, keys.identities)?;
    Ok((lock, out, m, secret))
}

/// Erase one person, found by an identifier `(kind, canonical value)` of the index: every
/// person key the identifier reaches (a resident the registry does not know can hold two —
/// the VRS records' and the ledger records' — and a lookup by the identifier shows both),
/// so that afterwards the identifier finds nothing.
pub fn erase(
    store: &Store,
    schema: &Schema,
    kind: &str,
    value: &str,
    reason: &str,
    keys: &RunKeys<'_>,
    signer: &Signer<'_>,
) -> Result<Outcome, ArchiveError> {
    let (_lock, mut out, m, secret) = begin_erase(store, keys, signer)?;
    let hash = archive::keyed_hash(&secret, kind, value);
    let (_, index) = rewrite::read_index(store, &m, keys.identities)?;
    let persons: BTreeSet<String> = index
        .into_iter()
        .filter(|(k, h, _, _)| k == kind && *h == hash)
        .map(|e| e.2)
        .collect();
    if persons.is_empty() {
        return Err(ArchiveError::State(format!(
            "no person in the archive's index has this {kind} identifier; nothing was changed"
        )));
    }
    let buckets: BTreeSet<u16> = persons
        .iter()
        .map(|p| archive::bucket_of(p, m.buckets))
        .collect();
    let (ph, vc) = (schema.idx("person_hash"), schema.idx("vaccine_code"));
    let is_erased = |r: &Record| r.at(ph).as_str().is_some_and(|h| persons.contains(h));
    let mut change = Change::default();
    let mut removed_records = Vec::new();
    for p in m.partitions.iter().filter(|p| buckets.contains(&p.bucket)) {
        let records = archive::read_partition(store, schema, p, keys.identities)?;
        out.partitions_evaluated += 1;
        out.records_evaluated += records.len() as u64;
        let (gone, keep): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| is_erased(r));
        if gone.is_empty() {
            continue;
        }
        for r in &gone {
            out.erased.add(
                "erase",
                r.at(vc).as_str().unwrap_or("unknown"),
                year_of(schema, r),
            );
        }
        if keep.is_empty() {
            out.partitions_dropped.push(p.file.clone());
        } else {
            out.partitions_rewritten.push(p.file.clone());
        }
        change.survivors.insert(p.id.clone(), keep);
        removed_records.extend(gone);
    }
    change.removed_persons.extend(persons.iter().cloned());
    change.records_removed = out.erased.records;
    out.persons_removed_from_index = persons.len() as u64;
    change.lists.add_identifier(kind, value);
    for r in &removed_records {
        change
            .lists
            .add_person_record(schema, Tables::embedded(), r);
        if let Some(id) = r.at(schema.idx("record_id")).as_str() {
            change.lists.records.insert(id.to_string());
        }
    }
    let write = keys.write.ok_or_else(|| {
        ArchiveError::State("a signing key is needed to change the archive".into())
    })?;
    let persons = change.removed_persons.clone();
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
    )?;
    let v = post_check(
        store,
        schema,
        &applied,
        keys.identities,
        &secret,
        &removed_records,
        &persons,
        &is_erased,
    )?;
    let mut request = BTreeMap::new();
    request.insert("reason".into(), reason.to_string());
    request.insert("identifier_kind".into(), kind.to_string());
    let counts = out.erased.clone();
    finish(
        store,
        &mut out,
        applied,
        v,
        "erase",
        request,
        &counts,
        signer,
        write,
        (&secret, &persons),
    )?;
    Ok(out)
}

/// Erase every row of the quarantine list (source rows that never became records), with
/// its own certificate: once staff have dealt with them (entered by hand in the receiving
/// system, or judged not to be kept). Records, the index and the review list are
/// untouched. Refuses (changing nothing) when the list is empty.
pub fn erase_quarantine(
    store: &Store,
    schema: &Schema,
    reason: &str,
    keys: &RunKeys<'_>,
    signer: &Signer<'_>,
) -> Result<Outcome, ArchiveError> {
    let (_lock, mut out, m, secret) = begin_erase(store, keys, signer)?;
    let rows = lists::read(store, &m, lists::List::Quarantine, keys.identities)?
        .map_or(0, |b| lists::rows(&b));
    if rows == 0 {
        return Err(ArchiveError::State(
            "the archive's quarantine list is empty; nothing was changed".into(),
        ));
    }
    let write = keys.write.ok_or_else(|| {
        ArchiveError::State("a signing key is needed to change the archive".into())
    })?;
    let mut change = Change::default();
    change.lists.all_quarantine = true;
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
    )?;
    let none = BTreeSet::new();
    let v = post_check(
        store,
        schema,
        &applied,
        keys.identities,
        &secret,
        &[],
        &none,
        &|_| false,
    )?;
    let mut request = BTreeMap::new();
    request.insert("reason".into(), reason.to_string());
    request.insert("identifier_kind".into(), "quarantine".into());
    finish(
        store,
        &mut out,
        applied,
        v,
        "erase",
        request,
        &Counts::default(),
        signer,
        write,
        (&secret, &none),
    )?;
    Ok(out)
}

/// Rows of the review and quarantine lists of `m` that the needles say go (in that order).
fn lists_going(
    store: &Store,
    m: &Manifest,
    ids: &[age::x25519::Identity],
    needles: &Needles,
) -> Result<[u64; 2], ArchiveError> {
    let mut going = [0u64; 2];
    if needles.is_empty() {
        return Ok(going);
    }
    for (n, list) in going.iter_mut().zip(lists::LISTS) {
        for b in lists::read(store, m, list, ids)?.unwrap_or_default() {
            *n += lists::goes(list, &b, needles, Tables::embedded())?
                .iter()
                .filter(|g| **g)
                .count() as u64;
        }
    }
    Ok(going)
}

/// The full post-erasure check: decrypt every partition of the new generation and
/// count records that should be gone; look up every identifier hash of the erased
/// persons in the new index; check destroyed objects are absent; verify the archive.
#[allow(clippy::too_many_arguments)]
fn post_check(
    store: &Store,
    schema: &Schema,
    applied: &Applied,
    ids: &[age::x25519::Identity],
    secret: &[u8; 32],
    removed: &[Record],
    persons: &BTreeSet<String>,
    should_be_gone: &dyn Fn(&Record) -> bool,
) -> Result<Verification, ArchiveError> {
    let mut v = Verification::default();
    for p in &applied.after.partitions {
        let records = archive::read_partition(store, schema, p, ids)?;
        v.partitions_scanned += 1;
        v.records_scanned += records.len() as u64;
        v.expired_records_remaining += records.iter().filter(|r| should_be_gone(r)).count() as u64;
    }
    let index: BTreeMap<(&str, &str), &str> = applied
        .index
        .iter()
        .map(|(k, h, p, _)| ((k.as_str(), h.as_str()), p.as_str()))
        .collect();
    let ph = schema.idx("person_hash");
    let mut asked = BTreeSet::new();
    for r in removed
        .iter()
        .filter(|r| r.at(ph).as_str().is_some_and(|h| persons.contains(h)))
    {
        for (kind, value) in archive::identifiers(schema, r) {
            asked.insert((kind.to_string(), archive::keyed_hash(secret, kind, &value)));
        }
    }
    // And every identifier the index held for them (also those no removed record
    // carried: the registry's and the VRS person list's, docs/lookup.md).
    for (kind, key_hash, person, _) in &applied.removed_index {
        if persons.contains(person) {
            asked.insert((kind.clone(), key_hash.clone()));
        }
    }
    v.lookups_attempted = asked.len() as u64;
    v.lookups_found = asked
        .iter()
        .filter(|(k, h)| {
            index
                .get(&(k.as_str(), h.as_str()))
                .is_some_and(|p| persons.contains(*p))
        })
        .count() as u64;
    v.lookups_found += index.values().filter(|p| persons.contains(**p)).count() as u64;
    v.list_rows_remaining = lists_going(store, &applied.after, ids, &applied.lists)?
        .iter()
        .sum();
    for d in &applied.destroyed {
        if store.exists(&d.path)? {
            v.destroyed_objects_present += 1;
        }
    }
    v.archive_verifies = archive::verify::verify(store, schema, None, &[])?.ok();
    v.passed = v.expired_records_remaining == 0
        && v.list_rows_remaining == 0
        && v.lookups_found == 0
        && v.destroyed_objects_present == 0
        && v.archive_verifies;
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    store: &Store,
    out: &mut Outcome,
    applied: Applied,
    v: Verification,
    kind: &str,
    mut request: BTreeMap<String, String>,
    counts: &Counts,
    signer: &Signer<'_>,
    write: &WriteKeys,
    (secret, persons): (&[u8; 32], &BTreeSet<String>),
) -> Result<(), ArchiveError> {
    let a = &applied;
    request.insert("operator".into(), signer.operator.to_string());
    // The audit entry of this erasure (persons as keyed hashes only), then a signed
    // checkpoint; the certificate carries the entry's inclusion proof.
    let receipt = crate::audit::append(
        store,
        Some(secret),
        crate::audit::Event {
            archive_id: a.after.archive_id.clone(),
            generation: a.after.generation,
            time: signer.now.to_string(),
            operator: signer.operator.to_string(),
            purpose: request
                .get("reason")
                .cloned()
                .unwrap_or_else(|| kind.to_string()),
            command: kind.to_string(),
            persons: persons.iter().cloned().collect(),
            query: None,
            result_count: counts.records,
            outcome: "erased".into(),
        },
    )
    .map_err(|e| ArchiveError::State(format!("cannot append the {kind} to the audit log: {e}")))?;
    crate::audit::checkpoint(store, &a.after.archive_id, Some(&write.signing))
        .map_err(|e| ArchiveError::State(format!("cannot write the audit checkpoint: {e}")))?;
    let cert = Certificate {
        format: certificate::FORMAT.into(),
        format_version: 1,
        kind: kind.into(),
        certificate_id: format!("{}-g{}-{kind}", &a.after.archive_id[..16.min(a.after.archive_id.len())], a.after.generation),
        issued: signer.now.to_string(),
        operator: signer.operator.to_string(),
        performer: signer.performer.clone(),
        validator: Person::default(),
        media: Media {
            archive_id: a.after.archive_id.clone(),
            municipality_code: a.after.municipality_code.clone(),
            media_type: "vaxarc archive objects: age (X25519 + ChaCha20-Poly1305) encrypted Parquet, one wrapped key per object".into(),
            partitions_dropped: a.dropped.clone(),
            partitions_rewritten: a.rewritten.clone(),
            data_backed_up: "unknown to vaxarc (see not_covered)".into(),
        },
        sanitization: Sanitization {
            method_type: "Purge".into(),
            method_used: "Cryptographic Erase + file deletion".into(),
            method_details: "each destroyed partition's age identity (its only key) was deleted with the ciphertext; partly erased partitions were re-encrypted with their surviving records under a fresh identity before the old identity and ciphertext were deleted; the lookup index was rewritten without erased persons, and the review and quarantine lists without the rows naming erased records or the erased person and the quarantined rows whose retention had run out, each under a fresh identity".into(),
            tool: format!("vaxarc {}", env!("CARGO_PKG_VERSION")),
            verification_method: "Full".into(),
            verification: v.clone(),
        },
        request,
        erased: Erased {
            records: counts.records,
            by_rule: counts.by_rule.clone(),
            by_vaccine: counts.by_vaccine.clone(),
            by_year: counts.by_year.clone(),
            persons_removed_from_index: out.persons_removed_from_index,
            index_rows_removed: a.index_rows_removed,
            review_rows_removed: a.review_rows_removed,
            quarantine_rows_removed: a.quarantine_rows_removed,
        },
        destroyed: a.destroyed.clone(),
        manifest: Roots {
            generation_before: a.before.generation,
            root_before: a.before.merkle_root.clone(),
            generation_after: a.after.generation,
            root_after: a.after.merkle_root.clone(),
        },
        audit: Some(serde_json::to_value(&receipt).map_err(|e| ArchiveError::State(e.to_string()))?),
        not_covered: certificate::NOT_COVERED.iter().map(|s| s.to_string()).collect(),
    };
    let (path, _) = certificate::write(store, &cert, &write.signing)?;
    out.generation = a.after.generation;
    out.merkle_root = a.after.merkle_root.clone();
    out.review_rows_removed = a.review_rows_removed;
    out.quarantine_rows_removed = a.quarantine_rows_removed;
    out.certificate = Some(path);
    out.verification = Some(v);
    Ok(())
}
