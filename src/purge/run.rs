//! Purge and erase, end to end: evaluate, apply, verify, certify.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::certificate::{
    self, Certificate, Erased, Media, Person, Roots, Sanitization, Verification,
};
use super::inputs::{Deaths, Submissions};
use super::lists::{self, Needles, QuarantineExpiry};
use super::rewrite::{self, Applied, Change, Destroyed};
use super::{expired, Holds, RecordFacts, Rules};
use crate::archive::index::IndexEntry;
use crate::archive::manifest::{Manifest, Partition};
use crate::archive::store::Store;
use crate::archive::PersonFacts as Facts;
use crate::archive::{self, crypto, ArchiveError, ClassifyName, WriteKeys};
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// Of those, erase only: persons the identifier does not reach but whose records, linked
    /// to no registry resident, share a 宛名番号, 個人番号 or ticket with the erased
    /// person's ([`join_unlinked`]).
    pub persons_joined: u64,
    /// Erase only: person keys left in the archive that share an exact identifier
    /// (宛名番号, 個人番号, ticket) with the erased records — not shown to be the erased
    /// person (a birth date missing or differing, a kana typo, or a registry resident whose
    /// row carries the number) — or hold a record whose review row named the erased person
    /// as its candidate. Look each up with `vaxarc lookup --person HASH`, and erase it with
    /// `--person HASH` if it is the same human.
    pub persons_left: Vec<String>,
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
    /// The certificate written now for an earlier purge or erase that was killed after its
    /// commit and before its certificate ([`certify_interrupted`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_certificate: Option<String>,
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

/// The lookup identifiers (kind, keyed hash) that the surviving records of each person
/// carry.
type Carried = BTreeMap<String, BTreeSet<(&'static str, [u8; 32])>>;

/// Person hashes that still have a record, among `persons`, reading the partitions of
/// their buckets that are not in `evaluated` (whose survivors are given), with the
/// identifiers their surviving records carry.
fn still_present(
    store: &Store,
    schema: &Schema,
    m: &Manifest,
    ids: &[age::x25519::Identity],
    persons: &BTreeSet<String>,
    evaluated: &BTreeMap<String, Vec<Record>>,
    secret: &[u8; 32],
) -> Result<Carried, ArchiveError> {
    let ph = schema.idx("person_hash");
    let buckets: BTreeSet<u16> = persons
        .iter()
        .map(|p| archive::bucket_of(p, m.buckets))
        .collect();
    let mut present = Carried::new();
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
                present
                    .entry(h.to_string())
                    .or_default()
                    .extend(archive::identifier_hashes(schema, r, secret));
            }
        }
    }
    Ok(present)
}

/// The index rows (kind, keyed hash, person hash) of identifiers that only destroyed
/// records of a surviving person carried: a purge that takes a person's COVID-19 doses
/// and keeps their routine ones takes the ticket numbers (接種券番号) the COVID-19 records
/// carried out of the index, so that a lookup by a destroyed record's identifier no
/// longer finds the person. Exact identifiers only (宛名番号, ticket; 個人番号 lives in
/// the vault objects, which a purge does not read for this): kana + birth date stays while
/// the person has records — the registry and the VRS person list index it for the person
/// too (docs/lookup.md), in rows no different from a record's, and surviving ledger
/// records often carry no kana name. Pure.
fn identifiers_gone(
    schema: &Schema,
    secret: &[u8; 32],
    removed: &[Record],
    present: &Carried,
) -> BTreeSet<(String, String, String)> {
    let ph = schema.idx("person_hash");
    let mut gone = BTreeSet::new();
    for r in removed {
        let Some((person, kept)) = r.at(ph).as_str().and_then(|h| present.get_key_value(h)) else {
            continue;
        };
        for id in archive::identifier_hashes(schema, r, secret) {
            if id.0 != "kana_birth" && !kept.contains(&id) {
                let hex = blake3::Hash::from(id.1).to_hex().to_string();
                gone.insert((id.0.to_string(), hex, person.clone()));
            }
        }
    }
    gone
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
        log_rekeys(store, keys)?;
        out.recovered_objects = rec.removed_unlisted.len() as u64;
        out.rolled_forward = rec.rolled_forward;
        out.recovered_certificate = certify_interrupted(store, schema, keys, signer, &rec)?;
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
        &secret,
    )?;
    change.removed_persons = removed_persons
        .iter()
        .filter(|p| !present.contains_key(*p))
        .cloned()
        .collect();
    change.identifiers_gone = identifiers_gone(schema, &secret, &removed_records, &present);
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
    let counts = out.erased.clone();
    let pending = Pending::of(
        "purge",
        req.request.clone(),
        &counts,
        &out,
        &persons,
        &removed_ids,
        signer,
    );
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
        &|a| pending.seal(a, write),
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
    finish(
        store, &mut out, applied, v, pending, signer, write, &secret, None,
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
    log_rekeys(store, keys)?;
    out.recovered_objects = rec.removed_unlisted.len() as u64;
    out.rolled_forward = rec.rolled_forward;
    out.recovered_certificate = certify_interrupted(store, Schema::embedded(), keys, signer, &rec)?;
    let (m, _) = archive::read_manifest(store)?;
    let secret = rewrite::read_secret(store, keys.identities)?;
    Ok((lock, out, m, secret))
}

/// Append the audit entries of rekeys killed between their commit and their entry
/// ([`archive::rekey::log_staged`]) before this run's own generation (needs the signing
/// key; without it they wait for a run that has it).
fn log_rekeys(store: &Store, keys: &RunKeys<'_>) -> Result<(), ArchiveError> {
    if let Some(w) = keys.write {
        archive::rekey::log_staged(store, &w.signing)?;
    }
    Ok(())
}

/// The partitions an erase decrypts, each once: those holding a record of a person looked
/// at while deciding whom it takes are kept for the pass that removes the records (all
/// that pass changes), and the record count of every partition read is remembered (a
/// partition read and not kept holds none of the erased persons' records).
struct Read<'a> {
    store: &'a Store,
    schema: &'a Schema,
    m: &'a Manifest,
    identities: &'a [age::x25519::Identity],
    held: BTreeMap<String, Vec<Record>>,
    scanned: BTreeMap<String, u64>,
}

impl Read<'_> {
    /// The records of `persons` among the partitions kept ([`Self::facts_of`] keeps every
    /// partition holding a record of a person it looked at).
    fn records_of<'s>(&'s self, persons: &'s BTreeSet<String>) -> impl Iterator<Item = &'s Record> {
        let ph = self.schema.idx("person_hash");
        self.held
            .values()
            .flatten()
            .filter(move |r| r.at(ph).as_str().is_some_and(|h| persons.contains(h)))
    }

    /// The [`Facts`] of each of `persons` that has records (partitions of their buckets;
    /// one holding a record of theirs is kept, and read again only if it was not kept).
    fn facts_of(
        &mut self,
        persons: &BTreeSet<&str>,
    ) -> Result<BTreeMap<String, Facts>, ArchiveError> {
        let (schema, m) = (self.schema, self.m);
        let ph = schema.idx("person_hash");
        let buckets: BTreeSet<u16> = persons
            .iter()
            .map(|p| archive::bucket_of(p, m.buckets))
            .collect();
        let mut out: BTreeMap<String, Facts> = BTreeMap::new();
        for p in m.partitions.iter().filter(|p| buckets.contains(&p.bucket)) {
            let fresh = match self.held.contains_key(&p.id) {
                true => None,
                false => Some(archive::read_partition(
                    self.store,
                    schema,
                    p,
                    self.identities,
                )?),
            };
            if let Some(f) = &fresh {
                self.scanned.insert(p.id.clone(), f.len() as u64);
            }
            let records = fresh.as_ref().unwrap_or_else(|| &self.held[&p.id]);
            let mut theirs = false;
            for r in records {
                if let Some(h) = r.at(ph).as_str().filter(|h| persons.contains(h)) {
                    out.entry(h.to_string()).or_default().add_record(schema, r);
                    theirs = true;
                }
            }
            if let (true, Some(f)) = (theirs, fresh) {
                self.held.insert(p.id.clone(), f);
            }
        }
        Ok(out)
    }
}

/// Add to `persons` every person key whose records are linked to no registry resident,
/// carry one birth date that the erased person's records carry too and kana names and
/// sexes that meet theirs ([`Facts::confirms`]: a key without a birth date, or with two,
/// is never joined),
/// agree with every key already taken, and share an exact identifier (宛名番号, 個人番号
/// or ticket; not kana + birth date, which many people share) that the records of an
/// unlinked key already taken carry, transitively; returns how many were added. `facts`
/// holds the [`Facts`] of `persons` and gains those read here.
///
/// Reconciliation keys a person the registry does not know by what each source gives: the
/// VRS records by 個人番号, the ledger records without one by 宛名番号. Erased by the
/// 個人番号, such a person's ledger records would stay, and a lookup by the 宛名番号 the
/// VRS records also carry would still find them. Identifiers are followed only from
/// unlinked keys: a resident's records can carry a number mistyped from another person's.
fn join_unlinked(
    read: &mut Read<'_>,
    index: &[archive::index::IndexEntry],
    persons: &mut BTreeSet<String>,
    facts: &mut BTreeMap<String, Facts>,
    secret: &[u8; 32],
) -> Result<u64, ArchiveError> {
    let mut erased = Facts::default();
    for p in persons.iter() {
        erased.add(&facts.get(p).cloned().unwrap_or_default());
    }
    // Every key taken agrees with every other (kana names one slip apart agree, which is
    // not transitive: each candidate is held against all, as a lookup's answer is).
    let mut members: Vec<Facts> = persons
        .iter()
        .filter_map(|p| facts.get(p).cloned())
        .collect();
    let unlinked = |f: Option<&Facts>| f.is_some_and(|f| f.residents.is_empty());
    let mut follow: BTreeSet<String> = persons
        .iter()
        .filter(|p| unlinked(facts.get(*p)))
        .cloned()
        .collect();
    let mut rejected: BTreeSet<String> = BTreeSet::new();
    let mut joined = 0;
    while !follow.is_empty() {
        // The identifiers the followed keys' records carry now (not index rows a purge
        // left behind for records it destroyed): what a lookup follows too.
        let mut ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (kind, h) in read
            .records_of(&follow)
            .flat_map(|r| archive::identifier_hashes(read.schema, r, secret))
            .filter(|(kind, _)| *kind != "kana_birth")
        {
            ids.entry(kind)
                .or_default()
                .insert(blake3::Hash::from(h).to_hex().to_string());
        }
        follow.clear();
        let candidates: BTreeSet<String> = index
            .iter()
            .filter(|e| ids.get(e.0.as_str()).is_some_and(|hs| hs.contains(&e.1)))
            .map(|e| e.2.clone())
            .filter(|p| !persons.contains(p) && !rejected.contains(p))
            .collect();
        if candidates.is_empty() {
            break;
        }
        let wanted: BTreeSet<&str> = candidates.iter().map(String::as_str).collect();
        facts.extend(read.facts_of(&wanted)?);
        for c in candidates {
            let f = facts.get(&c);
            let fits = |f: &Facts| erased.confirms(f) && members.iter().all(|m| m.agrees(f));
            if unlinked(f) && f.is_some_and(fits) {
                members.extend(f.cloned());
                persons.insert(c.clone());
                follow.insert(c);
                joined += 1;
            } else {
                rejected.insert(c);
            }
        }
    }
    Ok(joined)
}

/// The person keys outside `persons` that share an exact identifier (宛名番号, 個人番号,
/// ticket: not kana + birth date, which many people share) with a key of `persons`.
fn sharing_identifiers(
    index: &[archive::index::IndexEntry],
    persons: &BTreeSet<String>,
) -> Vec<String> {
    let ids: BTreeSet<(&str, &str)> = index
        .iter()
        .filter(|e| e.0 != "kana_birth" && persons.contains(&e.2))
        .map(|e| (e.0.as_str(), e.1.as_str()))
        .collect();
    let left: BTreeSet<&String> = index
        .iter()
        .filter(|e| ids.contains(&(e.0.as_str(), e.1.as_str())) && !persons.contains(&e.2))
        .map(|e| &e.2)
        .collect();
    left.into_iter().cloned().collect()
}

/// Erase one person, found by an identifier `(kind, canonical value)` of the index: every
/// person key the identifier reaches (a resident the registry does not know can hold two —
/// the VRS records' and the ledger records' — and a lookup by the identifier shows both),
/// refusing unless they can be one person ([`Facts::one_person`]), and every unlinked key
/// their other identifiers reach with evidence that it is the same person
/// ([`join_unlinked`]). Afterwards the identifier finds nothing; another identifier of the
/// erased records can still find a key that was not joined (no birth date, or one that
/// differs, e.g. by a typo) — the post-check counts only the erased keys, and
/// `persons_left` names the keys left that share an identifier with the erased records.
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
    // `person`: one person key itself (a `persons` entry of a lookup).
    let mut read = Read {
        store,
        schema,
        m: &m,
        identities: keys.identities,
        held: BTreeMap::new(),
        scanned: BTreeMap::new(),
    };
    let mut persons: BTreeSet<String> = index
        .iter()
        .filter(|(k, h, p, _)| match kind {
            "person" => p == value,
            _ => k == kind && *h == hash,
        })
        .map(|e| e.2.clone())
        .collect();
    if !persons.is_empty() {
        // The keys the identifier reaches must be one person: at most one registry
        // resident, and birth dates, kana names and sexes that meet (a number the sources
        // give two people, or a resident's row carrying another person's 宛名番号).
        let reached: BTreeSet<&str> = persons.iter().map(String::as_str).collect();
        let mut facts = read.facts_of(&reached)?;
        // By 宛名番号: another resident's key reached only through a row of theirs that
        // carries the number is not this resident (left, and named in `persons_left`).
        if kind == "atena" {
            let others: BTreeSet<String> =
                Facts::other_residents(value, facts.iter().map(|(k, f)| (k.as_str(), f)))
                    .into_iter()
                    .map(str::to_string)
                    .collect();
            persons.retain(|p| !others.contains(p));
            facts.retain(|p, _| !others.contains(p));
        }
        let residents: BTreeSet<&String> = facts.values().flat_map(|f| &f.residents).collect();
        if residents.len() > 1 {
            return Err(ArchiveError::State(format!(
                "this {kind} identifier reaches the records of {} different registry residents (a number the sources give more than one person); nothing was changed: look them up with `vaxarc lookup` and erase each by --atena or --person",
                residents.len()
            )));
        }
        // `--person` names one key: the operator's choice, taken as it is.
        if kind != "person" && !Facts::one_person(facts.values()) {
            return Err(ArchiveError::State(match facts.len() {
                1 => format!(
                    "this {kind} identifier reaches one person key whose records disagree (two kana names, sexes or birth dates under one number: two people the registry does not know, or one person typed two ways); nothing was changed: look it up with `vaxarc lookup`, and erase it by --person only if its records are one person's"
                ),
                n => format!(
                    "this {kind} identifier reaches the records of {n} person keys not shown to be one person (birth dates, kana names or sexes that differ, or a key without a birth date: a number the sources give more than one person, or a typo); nothing was changed: look them up with `vaxarc lookup` and erase each by --person"
                ),
            }));
        }
        // `--person` names one key: the operator's choice, taken alone.
        if kind != "person" {
            out.persons_joined =
                join_unlinked(&mut read, &index, &mut persons, &mut facts, &secret)?;
        }
    }
    if persons.is_empty() {
        let certified = out
            .recovered_certificate
            .as_ref()
            .map_or(String::new(), |c| {
                format!(
                    " (an earlier erase or purge killed after its commit was certified now: `{c}`)"
                )
            });
        return Err(ArchiveError::State(format!(
            "no person in the archive's index has this {kind} identifier; nothing was changed{certified}"
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
        // Every person taken was looked at (`facts_of`): a partition read then and not
        // held holds none of their records.
        let records = match (read.held.remove(&p.id), read.scanned.get(&p.id)) {
            (Some(records), _) => records,
            (None, Some(&n)) => {
                out.partitions_evaluated += 1;
                out.records_evaluated += n;
                continue;
            }
            (None, None) => archive::read_partition(store, schema, p, keys.identities)?,
        };
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
    // Left: keys sharing a number with the erased records, and records awaiting review
    // whose rows named the erased person as the candidate (the rows go with the
    // person's 宛名番号; the records stay).
    let mut left: BTreeSet<String> = sharing_identifiers(&index, &persons).into_iter().collect();
    let review = lists::read(store, &m, lists::List::Review, keys.identities)?.unwrap_or_default();
    left.extend(lists::review_persons_left(&review, &change.lists));
    left.retain(|p| !persons.contains(p));
    out.persons_left = left.into_iter().collect();
    let write = keys.write.ok_or_else(|| {
        ArchiveError::State("a signing key is needed to change the archive".into())
    })?;
    let persons = change.removed_persons.clone();
    let mut request = BTreeMap::new();
    request.insert("reason".into(), reason.to_string());
    request.insert("identifier_kind".into(), kind.to_string());
    let counts = out.erased.clone();
    let pending = Pending::of(
        "erase",
        request,
        &counts,
        &out,
        &persons,
        &change.lists.records,
        signer,
    );
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
        &|a| pending.seal(a, write),
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
    finish(
        store, &mut out, applied, v, pending, signer, write, &secret, None,
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
    let none = BTreeSet::new();
    let mut request = BTreeMap::new();
    request.insert("reason".into(), reason.to_string());
    request.insert("identifier_kind".into(), "quarantine".into());
    let pending = Pending::of(
        "erase",
        request,
        &Counts::default(),
        &out,
        &none,
        &none,
        signer,
    );
    let applied = rewrite::apply(
        store,
        schema,
        &m,
        keys.identities,
        write,
        change,
        signer.now,
        &|a| pending.seal(a, write),
    )?;
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
    finish(
        store, &mut out, applied, v, pending, signer, write, &secret, None,
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
    // And no row that left the index is in the new one (also rows of a person who keeps
    // records, for identifiers only their destroyed records carried).
    let rows: BTreeSet<(&str, &str, &str)> = applied
        .index
        .iter()
        .map(|(k, h, p, _)| (k.as_str(), h.as_str(), p.as_str()))
        .collect();
    v.lookups_found += applied
        .removed_index
        .iter()
        .filter(|(k, h, p, _)| rows.contains(&(k.as_str(), h.as_str(), p.as_str())))
        .count() as u64;
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

/// What a purge or erase decided, staged encrypted to the custodians beside its new
/// generation before the commit ([`rewrite::pending_path`]) and deleted once its
/// certificate is written: a run killed between the two is certified from it by the next
/// purge or erase ([`certify_interrupted`]). PERSONAL DATA (the erased person's identifiers
/// among the list needles): no `Debug`, only ever stored encrypted.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// `purge` or `erase`.
    kind: String,
    /// The certificate's request (operator included).
    request: BTreeMap<String, String>,
    /// When the run started.
    started: String,
    /// Records erased, by rule, vaccine and year.
    counts: Counts,
    /// Persons whose identifiers leave the index.
    persons_removed_from_index: u64,
    /// Person keys left sharing an identifier with the erased records (erase).
    #[serde(default)]
    persons_left: u64,
    /// Their person hashes.
    persons: BTreeSet<String>,
    /// Record ids removed.
    records: BTreeSet<String>,
}

/// The pending object: the run's decisions and what it is about to commit.
#[derive(Deserialize)]
struct Stored {
    pending: Pending,
    applied: Staged,
}

/// [`Stored`], borrowed, as it is written.
#[derive(Serialize)]
struct StoredRef<'a> {
    pending: &'a Pending,
    applied: &'a Staged,
}

/// The parts of [`Applied`] a certificate names that cannot be read back after the commit.
#[derive(Serialize, Deserialize)]
struct Staged {
    dropped: Vec<String>,
    rewritten: Vec<(String, String)>,
    index_rows_removed: u64,
    review_rows_removed: u64,
    quarantine_rows_removed: u64,
    /// The removed index rows of the erased persons (looked up again afterwards).
    removed_index: Vec<IndexEntry>,
    needles: Needles,
}

impl Pending {
    fn of(
        kind: &str,
        mut request: BTreeMap<String, String>,
        counts: &Counts,
        out: &Outcome,
        persons: &BTreeSet<String>,
        records: &BTreeSet<String>,
        signer: &Signer<'_>,
    ) -> Pending {
        request
            .entry("operator".into())
            .or_insert_with(|| signer.operator.to_string());
        Pending {
            kind: kind.into(),
            request,
            started: signer.now.to_string(),
            counts: counts.clone(),
            persons_removed_from_index: out.persons_removed_from_index,
            persons_left: out.persons_left.len() as u64,
            persons: persons.clone(),
            records: records.clone(),
        }
    }

    /// The pending object's bytes: this, with what `a` is about to commit, as JSON
    /// encrypted to the custodians.
    fn seal(&self, a: &Applied, write: &WriteKeys) -> Result<Vec<u8>, ArchiveError> {
        let staged = Staged {
            dropped: a.dropped.clone(),
            rewritten: a.rewritten.clone(),
            index_rows_removed: a.index_rows_removed,
            review_rows_removed: a.review_rows_removed,
            quarantine_rows_removed: a.quarantine_rows_removed,
            removed_index: a
                .removed_index
                .iter()
                .filter(|e| self.persons.contains(&e.2))
                .cloned()
                .collect(),
            needles: a.lists.clone(),
        };
        let json = serde_json::to_vec(&StoredRef {
            pending: self,
            applied: &staged,
        })
        .map_err(|e| ArchiveError::State(format!("cannot write the pending object: {e}")))?;
        let path = rewrite::pending_path(a.after.generation);
        Ok(crypto::encrypt(&path, &write.custodians.0, &json)?)
    }
}

/// Certify the purge or erase that committed the current generation and was killed before
/// its certificate: its pending object is still there ([`Pending`]). The objects the new
/// generation no longer lists are destroyed (recovery deleted them already; each is named
/// with the version ids deleted), the verification is done again now — records of the
/// erased persons and the removed record ids, every removed index row of the erased
/// persons, the list rows, the destroyed objects, `verify` — and the certificate, its
/// audit entry and checkpoint are written as the killed run would have, with a
/// `recovered` note. `None` when there is nothing to certify (no pending object, or its
/// certificate exists: then the pending object is deleted).
fn certify_interrupted(
    store: &Store,
    schema: &Schema,
    keys: &RunKeys<'_>,
    signer: &Signer<'_>,
    rec: &rewrite::Recovery,
) -> Result<Option<String>, ArchiveError> {
    let (m, _) = archive::read_manifest(store)?;
    let path = rewrite::pending_path(m.generation);
    if !store.exists(&path)? {
        return Ok(None);
    }
    let plain = crypto::decrypt(&path, keys.identities, &store.get(&path)?)?;
    let Stored { pending, applied: staged } = serde_json::from_slice(&plain).map_err(|e| {
        ArchiveError::State(format!(
            "`{path}` (an interrupted run's pending certificate) cannot be read: line {}, column {}: {}",
            e.line(),
            e.column(),
            e.classify_name()
        ))
    })?;
    if store.exists(&certificate::path(m.generation, &pending.kind))? {
        store.delete_all_versions(&path)?;
        return Ok(None);
    }
    let write = keys.write.ok_or_else(|| {
        ArchiveError::State(
            "a signing key is needed to certify the interrupted run that changed the archive"
                .into(),
        )
    })?;
    let before =
        archive::parse_manifest(&store.get(&rewrite::history_manifest(m.generation - 1))?)?;
    let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    let mut destroyed: Vec<Destroyed> = before
        .files
        .iter()
        .filter(|f| !listed.contains(f.path.as_str()))
        .map(|f| Destroyed {
            path: f.path.clone(),
            role: f.role.clone(),
            size: f.size,
            blake3: f.blake3.clone(),
            version_ids: rec.versions.get(&f.path).cloned().unwrap_or_default(),
        })
        .collect();
    destroyed.sort_by_key(|d| (!d.role.ends_with("key"), d.path.clone()));
    for d in &mut destroyed {
        // Recovery deleted every unlisted object; one still here is destroyed now.
        if store.exists(&d.path)? {
            d.version_ids.extend(store.delete_all_versions(&d.path)?);
        }
    }
    let (_, index) = rewrite::read_index(store, &m, keys.identities)?;
    let applied = Applied {
        before,
        after: m.clone(),
        destroyed,
        dropped: staged.dropped,
        rewritten: staged.rewritten,
        index_rows_removed: staged.index_rows_removed,
        review_rows_removed: staged.review_rows_removed,
        quarantine_rows_removed: staged.quarantine_rows_removed,
        index,
        removed_index: staged.removed_index,
        lists: staged.needles,
    };
    let secret = rewrite::read_secret(store, keys.identities)?;
    let (ph, rid) = (schema.idx("person_hash"), schema.idx("record_id"));
    let v = post_check(
        store,
        schema,
        &applied,
        keys.identities,
        &secret,
        &[],
        &pending.persons,
        &|r| {
            r.at(ph)
                .as_str()
                .is_some_and(|h| pending.persons.contains(h))
                || r.at(rid)
                    .as_str()
                    .is_some_and(|id| pending.records.contains(id))
        },
    )?;
    let note = format!(
        "issued by a later run (operator {}, {}) for the {} started {} that was killed after it committed generation {} and before its certificate: what was erased is as that run decided it; the verification was done again by the later run (records checked by person and record id; quarantined rows whose retention ran out are not re-evaluated)",
        signer.operator, signer.now, pending.kind, pending.started, m.generation
    );
    let mut out = Outcome::default();
    finish(
        store,
        &mut out,
        applied,
        v,
        pending,
        signer,
        write,
        &secret,
        Some(note),
    )?;
    Ok(out.certificate)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    store: &Store,
    out: &mut Outcome,
    applied: Applied,
    v: Verification,
    pending: Pending,
    signer: &Signer<'_>,
    write: &WriteKeys,
    secret: &[u8; 32],
    recovered: Option<String>,
) -> Result<(), ArchiveError> {
    #[cfg(test)]
    if tests::KILLED_AT.with(std::cell::Cell::get) == 1 {
        return Err(ArchiveError::State("test: killed after the commit".into()));
    }
    let a = &applied;
    let Pending {
        kind,
        request,
        counts,
        persons,
        persons_removed_from_index,
        persons_left,
        ..
    } = pending;
    let (kind, counts, persons) = (kind.as_str(), &counts, &persons);
    // The audit entry of this erasure (persons as keyed hashes only), then a signed
    // checkpoint; the certificate carries the entry's inclusion proof. Certifying a killed
    // run, the entry that run appended (if it got that far) is taken, not a second one.
    let appended = match &recovered {
        Some(_) => crate::audit::find_entry(store, |e| {
            e.archive_id == a.after.archive_id
                && e.generation == a.after.generation
                && e.command == kind
                && e.outcome == "erased"
        })
        .map_err(|e| ArchiveError::State(format!("cannot read the audit log: {e}")))?,
        None => None,
    };
    let receipt = match appended {
        Some(r) => r,
        None => crate::audit::append(
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
        .map_err(|e| {
            ArchiveError::State(format!("cannot append the {kind} to the audit log: {e}"))
        })?,
    };
    crate::audit::checkpoint(store, &a.after.archive_id, Some(&write.signing))
        .map_err(|e| ArchiveError::State(format!("cannot write the audit checkpoint: {e}")))?;
    #[cfg(test)]
    if tests::KILLED_AT.with(std::cell::Cell::get) == 2 {
        return Err(ArchiveError::State(
            "test: killed after the audit entry".into(),
        ));
    }
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
            persons_removed_from_index,
            persons_left,
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
        recovered,
    };
    let (path, _) = certificate::write(store, &cert, &write.signing)?;
    // Certified: the pending object (the erased person's identifiers among its needles)
    // goes, every version.
    store.delete_all_versions(&rewrite::pending_path(a.after.generation))?;
    out.generation = a.after.generation;
    out.merkle_root = a.after.merkle_root.clone();
    out.review_rows_removed = a.review_rows_removed;
    out.quarantine_rows_removed = a.quarantine_rows_removed;
    out.certificate = Some(path);
    out.verification = Some(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{crypto::Recipients, store::Store, NewArchive};
    use crate::record::Value;

    thread_local! {
        /// Where `finish` fails, as if the run were killed there: 1 at once (after the
        /// commit), 2 after the audit entry and checkpoint (before the certificate).
        pub(super) static KILLED_AT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    }

    /// An archive of two linked persons (宛名番号 1001 and 1002), two COVID doses each.
    fn archive(dir: &std::path::Path) -> (Store, [age::x25519::Identity; 2], WriteKeys) {
        let schema = Schema::embedded();
        let records = (0..4)
            .map(|i| {
                let mut r = Record::new(schema.len());
                let atena = if i < 2 { "1001" } else { "1002" };
                for (k, v) in [
                    ("record_id", format!("r{i}")),
                    ("registry_atena_number", atena.into()),
                    ("atena_number", atena.into()),
                    ("vaccine_code", "COVID19".into()),
                    ("source_kind", "ledger".into()),
                    ("source_file_id", "f".into()),
                    ("raw_row_blake3", format!("x{i}")),
                    ("match_method", "atena".into()),
                    ("registry_status", "resident".into()),
                    ("merge_status", "single".into()),
                    ("retention_class", "covid_special".into()),
                    // One 個人番号 on both persons' records (a source error).
                    ("kojin_bango", "123456789018".into()),
                ] {
                    r.set(schema.idx(k), Value::Str(v.into()));
                }
                r.set(schema.idx("dose_number"), Value::Int(i % 2 + 1));
                r.set(
                    schema.idx("vaccination_date"),
                    Value::Date(19000 + i as i32),
                );
                r.set(schema.idx("source_line"), Value::Int(i + 2));
                r
            })
            .collect();
        archive_of(dir, records)
    }

    /// An erase by `(kind, value)` with reason "request", signed by `op-1` on 2026-02-01.
    fn erase_request(
        store: &Store,
        keys: &RunKeys<'_>,
        kind: &str,
        value: &str,
    ) -> Result<Outcome, ArchiveError> {
        erase(
            store,
            Schema::embedded(),
            kind,
            value,
            "request",
            keys,
            &signer("2026-02-01T00:00:00Z"),
        )
    }

    /// Every file under `dir`.
    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    /// An archive of `records` (4 buckets).
    fn archive_of(
        dir: &std::path::Path,
        records: Vec<Record>,
    ) -> (Store, [age::x25519::Identity; 2], WriteKeys) {
        archive_with(dir, records, vec![])
    }

    /// An archive of `records` and a review list (4 buckets, hash key `[7; 32]`).
    fn archive_with(
        dir: &std::path::Path,
        records: Vec<Record>,
        review: Vec<archive::ReviewRow>,
    ) -> (Store, [age::x25519::Identity; 2], WriteKeys) {
        let schema = Schema::embedded();
        let custodian = age::x25519::Identity::generate();
        let vault = age::x25519::Identity::generate();
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let keys = WriteKeys {
            custodians: Recipients(vec![custodian.to_public()]),
            vault: Recipients(vec![vault.to_public()]),
            signing_public: kp.pk.to_base64(),
            signing: kp.sk,
        };
        let store = Store::create(dir.to_str().unwrap()).unwrap();
        archive::write_new(
            &store,
            NewArchive {
                schema,
                records,
                buckets: 4,
                index_secret: [7; 32],
                rest: archive::test_rest(review),
            },
            &keys,
            &|_| {},
        )
        .unwrap();
        (store, [custodian, vault], keys)
    }

    /// The run keys of [`archive`]'s identities and write keys.
    fn run_keys<'a>(ids: &'a [age::x25519::Identity], write: &'a WriteKeys) -> RunKeys<'a> {
        RunKeys {
            identities: ids,
            write: Some(write),
        }
    }

    /// Operator `op-1` signing at `now`.
    fn signer(now: &str) -> Signer<'_> {
        Signer {
            operator: "op-1",
            performer: Person::default(),
            now,
        }
    }

    /// The fields of a ledger dose the registry does not know, under 宛名番号 7007.
    fn unlinked_7007(kana: &'static str, sex: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("atena_number", "7007"),
            ("source_kind", "ledger"),
            ("registry_status", "unlinked"),
            ("match_method", "none"),
            ("kana_name", kana),
            ("sex", sex),
        ]
    }

    /// A COVID dose record `r<i>` with `fields` (strings) set.
    fn dose(i: i64, fields: &[(&str, &str)]) -> Record {
        let schema = Schema::embedded();
        let mut r = Record::new(schema.len());
        for (k, v) in [
            ("record_id", format!("r{i}").as_str()),
            ("vaccine_code", "COVID19"),
            ("source_file_id", "f"),
            ("raw_row_blake3", &format!("x{i}")),
            ("merge_status", "single"),
            ("retention_class", "covid_special"),
        ]
        .into_iter()
        .chain(fields.iter().copied())
        {
            r.set(schema.idx(k), Value::Str(v.into()));
        }
        r.set(schema.idx("dose_number"), Value::Int(i % 3 + 1));
        r.set(
            schema.idx("vaccination_date"),
            Value::Date(19000 + i as i32),
        );
        r.set(schema.idx("source_line"), Value::Int(i + 2));
        r
    }

    /// A rekey killed between its commit and its audit entry leaves the entry staged
    /// beside the new generation; the next rekey appends it, and so does the next erase
    /// (or purge) — once.
    #[test]
    fn a_rekey_killed_after_its_commit_is_logged_by_the_next_run() {
        use crate::archive::rekey::{self, NewRecipients, Rotation, KILLED_AFTER_COMMIT};
        let rekey_entries = |store: &Store| {
            crate::audit::read_log(store)
                .unwrap()
                .lines
                .iter()
                .filter_map(|l| serde_json::from_slice::<crate::audit::Entry>(l).ok())
                .filter(|e| e.command == "rekey")
                .map(|e| (e.generation, e.operator, e.outcome))
                .collect::<Vec<_>>()
        };
        for next in ["rekey", "erase"] {
            let dir = tempfile::tempdir().unwrap();
            let (store, [c1, vault], write) = archive(dir.path());
            let (c2, c3) = (
                age::x25519::Identity::generate(),
                age::x25519::Identity::generate(),
            );
            let new = NewRecipients {
                custodians: Recipients(vec![c2.to_public(), c3.to_public()]),
                vault: None,
            };
            let rotate = |id: &age::x25519::Identity| {
                rekey::rekey(
                    &store,
                    std::slice::from_ref(id),
                    &new,
                    &Rotation {
                        signing: &write.signing,
                        signing_public: &write.signing_public,
                        now: "2026-03-01T00:00:00Z",
                        operator: "op-2",
                    },
                    &|_| {},
                )
            };
            KILLED_AFTER_COMMIT.with(|k| k.set(true));
            let e = rotate(&c1).map(|_| ()).unwrap_err();
            KILLED_AFTER_COMMIT.with(|k| k.set(false));
            assert!(e.to_string().contains("killed after the commit"), "{e}");
            assert_eq!(archive::read_manifest(&store).unwrap().0.generation, 2);
            let staged = archive::history_path(2, rekey::STAGED_ENTRY);
            assert!(store.exists(&staged).unwrap());
            assert!(rekey_entries(&store).is_empty());
            if next == "rekey" {
                let out = rotate(&c2).unwrap();
                assert!(out.unchanged);
                assert_eq!(out.recovery.logged, [2]);
            } else {
                let w = WriteKeys {
                    custodians: new.custodians.clone(),
                    vault: write.vault.clone(),
                    signing: write.signing.clone(),
                    signing_public: write.signing_public.clone(),
                };
                let ids = [c2.clone(), vault];
                let out = erase_request(&store, &run_keys(&ids, &w), "atena", "1001").unwrap();
                assert_eq!(out.erased.records, 2);
            }
            let want = [(2, "op-2".to_string(), "committed".to_string())];
            assert_eq!(rekey_entries(&store), want, "{next}");
            assert!(!store.exists(&staged).unwrap());
            let out = rotate(&c2).unwrap();
            assert!(out.recovery.logged.is_empty());
            assert_eq!(rekey_entries(&store), want, "logged once");
        }
    }

    /// A purge that takes one of a resident's records and keeps another takes the
    /// identifiers only the destroyed record carried (its ticket) out of the index and
    /// keeps those a surviving record carries (the 宛名番号): a lookup by the destroyed
    /// record's ticket no longer finds the person.
    #[test]
    fn purge_takes_identifiers_only_destroyed_records_carried() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let day = |y, m, d| crate::record::days_from_civil(y, m, d).unwrap();
        let routine = |i: i64, date: i32, ticket: Option<&'static str>| {
            let mut f = vec![
                ("registry_atena_number", "1001"),
                ("atena_number", "1001"),
                ("registry_status", "resident"),
                ("match_method", "atena"),
                ("source_kind", "ledger"),
                ("vaccine_code", "MR"),
                ("retention_class", "routine_5y"),
            ];
            if let Some(t) = ticket {
                f.extend([("municipality_code", "131091"), ("ticket_number", t)]);
            }
            let mut r = dose(i, &f);
            r.set(schema.idx("vaccination_date"), Value::Date(date));
            r
        };
        let records = vec![
            routine(0, day(2015, 4, 1), Some("0000000001")),
            routine(1, day(2024, 4, 1), None),
        ];
        let (store, ids, write) = archive_of(dir.path(), records);
        let keys = run_keys(&ids, &write);
        let secret = [7u8; 32];
        let ticket = archive::keyed_hash(&secret, "ticket", "131091:0000000001");
        let atena = archive::keyed_hash(&secret, "atena", "1001");
        let index_has = |hash: &str| {
            let (m, _) = archive::read_manifest(&store).unwrap();
            archive::index::read_all(&store, &m, &ids)
                .unwrap()
                .iter()
                .any(|e| e.1 == hash)
        };
        assert!(index_has(&ticket) && index_has(&atena));
        let (rules, holds) = crate::purge::Rules::embedded();
        let req = PurgeRequest {
            as_of: day(2026, 4, 1),
            rules: &rules,
            holds: &holds,
            deaths: None,
            submissions: None,
            request: BTreeMap::new(),
        };
        let out = purge(
            &store,
            schema,
            &req,
            &keys,
            &signer("2026-04-01T00:00:00Z"),
            false,
        )
        .unwrap();
        assert_eq!(out.erased.records, 1);
        assert_eq!(
            out.persons_removed_from_index, 0,
            "the person keeps a record"
        );
        assert!(out.verification.as_ref().is_some_and(|v| v.passed));
        assert!(
            !index_has(&ticket),
            "the destroyed record's ticket left the index"
        );
        assert!(index_has(&atena), "the surviving record's 宛名番号 stays");
    }

    /// Joins hold every key against every other: ヤマダヨウコ meets ヤマダヨーコ and
    /// ヤマダヨウコウ (one slip each) but those two do not meet, so an erase by the first's
    /// 個人番号 takes one of them, not both (and names the other as left); `--person`
    /// takes its key alone.
    #[test]
    fn joins_agree_pairwise_and_person_takes_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let unlinked = |kana: &'static str, kojin: Option<&'static str>| {
            let mut f = vec![
                ("atena_number", "8008"),
                ("registry_status", "unlinked"),
                ("match_method", "none"),
                ("source_kind", "ledger"),
                ("kana_name", kana),
                ("sex", "F"),
            ];
            f.extend(kojin.map(|k| ("kojin_bango", k)));
            f
        };
        let born = |mut r: Record| {
            r.set(schema.idx("birth_date"), Value::Date(-4000));
            r
        };
        let records = vec![
            born(dose(0, &unlinked("ヤマダ　ヨウコ", Some("123456789018")))),
            born(dose(1, &unlinked("ヤマダ　ヨーコ", None))),
            born(dose(2, &unlinked("ヤマダ　ヨウコウ", Some("000000000019")))),
        ];
        let (store, ids, write) = archive_of(dir.path(), records);
        let keys = run_keys(&ids, &write);
        let copy = tempfile::tempdir().unwrap();
        let run = |store: &Store, kind: &str, value: &str| {
            erase_request(store, &keys, kind, value).unwrap()
        };
        let (m, _) = archive::read_manifest(&store).unwrap();
        let key_of: BTreeMap<String, String> = m
            .partitions
            .iter()
            .flat_map(|p| archive::read_partition(&store, schema, p, &ids).unwrap())
            .map(|r| {
                let get = |n: &str| r.at(schema.idx(n)).as_str().unwrap().to_string();
                (get("record_id"), get("person_hash"))
            })
            .collect();
        // `--person` on a copy: the key alone, the two others left.
        for e in walkdir(dir.path()) {
            let to = copy.path().join(e.strip_prefix(dir.path()).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&e, &to).unwrap();
        }
        let other = Store::open(copy.path().to_str().unwrap()).unwrap();
        let out = run(&other, "person", &key_of["r0"]);
        assert_eq!((out.erased.records, out.persons_joined), (1, 0));
        assert_eq!(out.persons_left.len(), 2);
        // By the 個人番号: one of the two joined, the other left.
        let out = run(&store, "kojin_bango", "123456789018");
        assert_eq!((out.erased.records, out.persons_joined), (2, 1));
        assert_eq!(out.persons_left.len(), 1);
    }

    /// A record awaiting review names a resident as its candidate: erasing the resident
    /// removes the review row (it holds the resident's 宛名番号) but not the record, and
    /// names the record's key among the keys left.
    #[test]
    fn erase_names_the_records_whose_review_rows_named_the_person() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let resident = [
            ("registry_atena_number", "1001"),
            ("atena_number", "1001"),
            ("registry_status", "resident"),
            ("match_method", "atena"),
            ("source_kind", "ledger"),
        ];
        let typo = [
            ("atena_number", "1010"),
            ("registry_status", "unlinked"),
            ("match_method", "review"),
            ("source_kind", "ledger"),
        ];
        let records = vec![dose(0, &resident), dose(1, &typo)];
        let hash = archive::person_hash(schema, &records[1], &[7; 32])
            .to_hex()
            .to_string();
        let review = vec![archive::ReviewRow {
            record_id: "r1".into(),
            candidate_atena_number: "1001".into(),
            score: 0.8,
            person_hash: hash.clone(),
        }];
        let (store, ids, write) = archive_with(dir.path(), records, review);
        let keys = run_keys(&ids, &write);
        let out = erase(
            &store,
            schema,
            "atena",
            "1001",
            "request",
            &keys,
            &signer("2026-02-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!((out.erased.records, out.review_rows_removed), (1, 1));
        assert_eq!(out.persons_left, [hash]);
    }

    /// Twins the registry does not know, filed under one mistyped 宛名番号 with one birth
    /// date, share one person key: its records disagree (two kana names and sexes), so an
    /// erase by the 宛名番号 refuses, changing nothing; `--person` takes the key as it is.
    #[test]
    fn erase_refuses_one_key_whose_records_disagree() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let twin = unlinked_7007;
        let born = |mut r: Record| {
            r.set(schema.idx("birth_date"), Value::Date(-3000));
            r
        };
        let records = vec![
            born(dose(0, &twin("オオタ　リョウコ", "F"))),
            born(dose(1, &twin("オオタ　ヨシオ", "M"))),
        ];
        let (store, ids, write) = archive_of(dir.path(), records);
        let keys = run_keys(&ids, &write);
        let run = |kind: &str, value: &str| erase_request(&store, &keys, kind, value);
        let e = run("atena", "7007").unwrap_err().to_string();
        assert!(e.contains("one person key whose records disagree"), "{e}");
        assert!(!e.contains("7007") && !e.contains("オオタ"), "{e}");
        let (m, _) = archive::read_manifest(&store).unwrap();
        let left: Vec<Record> = m
            .partitions
            .iter()
            .flat_map(|p| archive::read_partition(&store, schema, p, &ids).unwrap())
            .collect();
        assert_eq!(left.len(), 2, "nothing changed");
        let key = left[0]
            .at(schema.idx("person_hash"))
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            left[1].at(schema.idx("person_hash")).as_str(),
            Some(key.as_str())
        );
        let out = run("person", &key).unwrap();
        assert_eq!(out.erased.records, 2);
    }

    /// A twin's dose typed under the other twin's 宛名番号 and linked to its own resident
    /// (by name): an erase by the first twin's number takes that twin alone and names the
    /// other's key as left; by the other's number, the other twin, that dose included.
    #[test]
    fn erase_by_a_residents_number_leaves_the_twin_whose_row_carries_it() {
        let resident = |own: &'static str, typed: &'static str| {
            vec![
                ("registry_atena_number", own),
                ("atena_number", typed),
                ("registry_status", "resident"),
                ("match_method", "probabilistic"),
                ("source_kind", "ledger"),
            ]
        };
        for (asked, erased, left) in [("1001", 2, 1), ("1002", 2, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let records = vec![
                dose(0, &resident("1001", "1001")),
                dose(1, &resident("1001", "1001")),
                dose(2, &resident("1002", "1002")),
                // 1002's dose typed under 1001.
                dose(3, &resident("1002", "1001")),
            ];
            let (store, ids, write) = archive_of(dir.path(), records);
            let keys = run_keys(&ids, &write);
            let out = erase_request(&store, &keys, "atena", asked).unwrap();
            assert_eq!(out.erased.records, erased, "{asked}");
            assert_eq!(out.persons_left.len(), left, "{asked}");
        }
    }

    /// Twins one kana apart (ユウキ/ユウト), same birth date and sex, no kanji names, under
    /// one mistyped 宛名番号: a kana replaced is not shown to be a typo, so an erase by the
    /// number refuses; a kana dropped (ユウキ/ユキ) is one person typed two ways.
    #[test]
    fn erase_refuses_twins_one_kana_apart_without_kanji_names() {
        let schema = Schema::embedded();
        for (second, refused) in [("オオタ　ユウト", true), ("オオタ　ユキ", false)] {
            let dir = tempfile::tempdir().unwrap();
            let twin = |kana: &'static str| unlinked_7007(kana, "M");
            let born = |mut r: Record| {
                r.set(schema.idx("birth_date"), Value::Date(-3000));
                r
            };
            let records = vec![
                born(dose(0, &twin("オオタ　ユウキ"))),
                born(dose(1, &twin(second))),
            ];
            let (store, ids, write) = archive_of(dir.path(), records);
            let keys = run_keys(&ids, &write);
            match erase_request(&store, &keys, "atena", "7007") {
                Err(e) if refused => {
                    let e = e.to_string();
                    assert!(e.contains("one person key whose records disagree"), "{e}");
                }
                Ok(out) if !refused => assert_eq!(out.erased.records, 2),
                other => panic!("{second}: {:?}", other.map(|o| o.erased.records)),
            }
        }
    }

    /// Who is erased with an identifier that reaches several keys: a resident's row with a
    /// mistyped 宛名番号 makes it reach a resident and a person the registry does not know
    /// (refused: their birth dates differ); erasing the resident does not follow that row's
    /// 宛名番号 to the other person (it names the keys left, `persons_left`); erasing the
    /// other by 個人番号 joins their ledger key (same 宛名番号, birth date) but not a key
    /// sharing only a ticket whose birth date differs, nor another unregistered person
    /// under the same 宛名番号 (their own key: the birth date is part of it); that 宛名番号
    /// then reaches one person; `--person` erases one key.
    #[test]
    fn erase_takes_one_person_and_refuses_an_identifier_of_several() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let unlinked = [("registry_status", "unlinked"), ("match_method", "none")];
        let ticket = [
            ("municipality_code", "131091"),
            ("ticket_number", "0000000777"),
        ];
        let vrs = [
            &[
                ("kojin_bango", "123456789018"),
                ("atena_number", "5005"),
                ("source_kind", "vrs-ledger-export"),
            ][..],
            &ticket[..],
            &unlinked[..],
        ]
        .concat();
        let ledger = [
            &[("atena_number", "5005"), ("source_kind", "ledger")][..],
            &unlinked[..],
        ]
        .concat();
        let resident = [
            ("registry_atena_number", "1001"),
            ("atena_number", "5005"),
            ("registry_status", "resident"),
            ("match_method", "kojin_bango"),
            ("source_kind", "ledger"),
        ];
        let other = [
            &[("source_kind", "vrs-ledger-export")][..],
            &ticket[..],
            &unlinked[..],
        ]
        .concat();
        let born = |mut r: Record, y: i32| {
            r.set(
                schema.idx("birth_date"),
                Value::Date(crate::record::days_from_civil(y, 1, 1).unwrap()),
            );
            r
        };
        let records = vec![
            born(dose(0, &vrs), 1950),
            born(dose(1, &vrs), 1950),
            born(dose(2, &ledger), 1950),
            born(dose(3, &resident), 1980),
            born(dose(4, &other), 1960),
            // Another person the registry does not know, filed under the same 宛名番号:
            // a key of their own (the birth date is part of an unlinked key).
            born(dose(5, &ledger), 1970),
        ];
        let (store, ids, write) = archive_of(dir.path(), records);
        let keys = run_keys(&ids, &write);
        let run = |kind: &str, value: &str| erase_request(&store, &keys, kind, value);
        let left = || -> BTreeMap<String, String> {
            let (m, _) = archive::read_manifest(&store).unwrap();
            m.partitions
                .iter()
                .flat_map(|p| archive::read_partition(&store, schema, p, &ids).unwrap())
                .map(|r| {
                    let get = |n: &str| r.at(schema.idx(n)).as_str().unwrap().to_string();
                    (get("record_id"), get("person_hash"))
                })
                .collect()
        };
        let e = run("atena", "5005").unwrap_err().to_string();
        assert!(e.contains("not shown to be one person"), "{e}");
        assert!(!e.contains("5005") && !e.contains("1950"), "{e}");
        let all = left();
        assert_eq!(all.len(), 6, "nothing changed");
        assert_ne!(
            all["r2"], all["r5"],
            "two people under one 宛名番号, two keys"
        );

        // The resident's erase leaves the keys sharing its row's 宛名番号, and says so.
        let out = run("atena", "1001").unwrap();
        assert_eq!((out.erased.records, out.persons_joined), (1, 0));
        assert!(!left().contains_key("r3"));
        let mut shared = vec![all["r0"].clone(), all["r2"].clone(), all["r5"].clone()];
        shared.sort();
        assert_eq!(out.persons_left, shared);

        let out = run("kojin_bango", "123456789018").unwrap();
        assert_eq!((out.erased.records, out.persons_joined), (3, 1));
        let rest = left();
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["r4", "r5"]);
        let mut shared = vec![rest["r4"].clone(), rest["r5"].clone()];
        shared.sort();
        assert_eq!(out.persons_left, shared);

        let out = run("atena", "5005").unwrap();
        assert_eq!((out.erased.records, out.persons_left.len()), (1, 0));
        let out = run("person", &rest["r4"]).unwrap();
        assert_eq!(out.erased.records, 1);
        assert!(out.persons_left.is_empty());
        assert!(left().is_empty());
    }

    /// A person the registry does not know, keyed twice (VRS doses with a 個人番号 by it, one
    /// without by its ticket): erased by the 個人番号, the other dose goes too (it shares
    /// the ticket and the birth date), but not a registry resident's record that carries the
    /// same ticket, nor a key sharing the 宛名番号 without a birth date, nor a person
    /// sharing nothing.
    #[test]
    fn erase_joins_unlinked_persons_sharing_an_identifier_but_no_resident() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::embedded();
        let unlinked = [("registry_status", "unlinked"), ("match_method", "none")];
        let ticket = [
            ("source_kind", "vrs-ledger-export"),
            ("municipality_code", "131091"),
            ("ticket_number", "0000000777"),
        ];
        let vrs = [
            &[("kojin_bango", "123456789018"), ("atena_number", "8008")][..],
            &ticket[..],
        ]
        .concat();
        let resident = [
            ("registry_atena_number", "1001"),
            ("atena_number", "1001"),
            ("registry_status", "resident"),
            ("match_method", "ticket"),
        ];
        let born = |mut r: Record| {
            r.set(schema.idx("birth_date"), Value::Date(-7000));
            r
        };
        let ledger = |atena| {
            [
                &[("atena_number", atena), ("source_kind", "ledger")][..],
                &unlinked[..],
            ]
            .concat()
        };
        let records = vec![
            born(dose(0, &[&vrs[..], &unlinked[..]].concat())),
            born(dose(1, &[&vrs[..], &unlinked[..]].concat())),
            born(dose(2, &[&ticket[..], &unlinked[..]].concat())),
            born(dose(3, &[&ticket[..], &resident[..]].concat())),
            dose(4, &ledger("6006")),
            // Shares the 宛名番号 but carries no birth date: no evidence, not joined.
            dose(5, &ledger("8008")),
        ];
        let (store, ids, write) = archive_of(dir.path(), records);
        let keys = run_keys(&ids, &write);
        let out = erase(
            &store,
            schema,
            "kojin_bango",
            "123456789018",
            "request",
            &keys,
            &signer("2026-02-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(out.erased.records, 3);
        assert_eq!((out.persons_removed_from_index, out.persons_joined), (2, 1));
        // Left, and named: the resident sharing the ticket, the key without a birth date.
        assert_eq!(out.persons_left.len(), 2);
        let cert: Certificate =
            serde_json::from_slice(&store.get(&certificate::path(2, "erase")).unwrap()).unwrap();
        let v = &cert.sanitization.verification;
        assert!(v.passed && v.archive_verifies, "{v:?}");
        assert_eq!(
            cert.erased.persons_left, 2,
            "the certificate counts the keys left"
        );
        assert!(certificate::render_markdown(&cert).contains("Persons sharing a number"));
        let (m, _) = archive::read_manifest(&store).unwrap();
        let left: BTreeSet<String> = m
            .partitions
            .iter()
            .flat_map(|p| archive::read_partition(&store, schema, p, &ids).unwrap())
            .map(|r| r.at(schema.idx("record_id")).as_str().unwrap().to_string())
            .collect();
        assert_eq!(left, BTreeSet::from(["r3", "r4", "r5"].map(str::to_string)));
    }

    /// An erase killed after its commit leaves a committed generation without its
    /// certificate; the next erase certifies it (with a `recovered` note and a passed
    /// verification, naming the destroyed objects), deletes the pending object, and then
    /// does its own work with its own certificate.
    #[test]
    fn a_run_killed_after_its_commit_is_certified_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids, write) = archive(dir.path());
        let schema = Schema::embedded();
        let keys = run_keys(&ids, &write);
        let erase_one = |atena: &str, now| {
            erase(
                &store,
                schema,
                "atena",
                atena,
                "request",
                &keys,
                &signer(now),
            )
        };
        KILLED_AT.with(|k| k.set(1));
        let e = erase_one("1001", "2026-02-01T00:00:00Z").unwrap_err();
        KILLED_AT.with(|k| k.set(0));
        assert!(e.to_string().contains("killed after the commit"), "{e}");
        let (m, _) = archive::read_manifest(&store).unwrap();
        assert_eq!(m.generation, 2);
        assert!(!store.exists(&certificate::path(2, "erase")).unwrap());
        // Staged encrypted (it holds the erased person's identifiers).
        let pending = store.get(&rewrite::pending_path(2)).unwrap();
        assert!(pending.starts_with(b"age-encryption.org/v1\n"));
        let report = archive::verify::verify(&store, schema, None, &[]).unwrap();
        assert!(report.ok() && report.uncertified, "{:?}", report.problems);
        // Killed between the commit's two puts instead (generation 2's signature over
        // generation 1's manifest): verify says to rerun the purge or erase, not rekey.
        let committed = store.get(archive::manifest::MANIFEST).unwrap();
        let old = store
            .get(&archive::history_path(1, archive::manifest::MANIFEST))
            .unwrap();
        store.put(archive::manifest::MANIFEST, old).unwrap();
        let report = archive::verify::verify(&store, schema, None, &[]).unwrap();
        assert!(
            report.problems.iter().any(|p| p
                .problem
                .contains("an interrupted commit of a purge or erase")),
            "{:?}",
            report.problems
        );
        store.put(archive::manifest::MANIFEST, committed).unwrap();

        let out = erase_one("1002", "2026-02-02T00:00:00Z").unwrap();
        assert_eq!(
            out.recovered_certificate.as_deref(),
            Some(certificate::path(2, "erase").as_str())
        );
        assert!(!store.exists(&rewrite::pending_path(2)).unwrap());
        let cert: Certificate =
            serde_json::from_slice(&store.get(&certificate::path(2, "erase")).unwrap()).unwrap();
        assert!(cert
            .recovered
            .as_deref()
            .unwrap()
            .contains("killed after it committed generation 2"));
        assert_eq!(cert.erased.records, 2);
        assert_eq!(cert.erased.persons_removed_from_index, 1);
        assert!(cert.erased.index_rows_removed >= 1);
        assert_eq!(cert.request["operator"], "op-1");
        let v = &cert.sanitization.verification;
        assert!(v.passed && v.archive_verifies, "{v:?}");
        assert_eq!(v.lookups_found, 0);
        assert!(v.lookups_attempted >= 1);
        assert_eq!(v.records_scanned, 2, "generation 2 holds 1002's records");
        assert!(!cert.destroyed.is_empty());
        for d in &cert.destroyed {
            assert!(!store.exists(&d.path).unwrap(), "{} still there", d.path);
        }
        assert_eq!(
            (
                cert.manifest.generation_before,
                cert.manifest.generation_after
            ),
            (1, 2)
        );
        assert!(
            !archive::verify::verify(&store, schema, None, &[])
                .unwrap()
                .uncertified
        );
        // The second erase did its own work and certified it.
        assert_eq!(out.generation, 3);
        assert!(store.exists(&certificate::path(3, "erase")).unwrap());
        assert!(!store.exists(&rewrite::pending_path(3)).unwrap());
        // A pending object left beside its certificate (killed between the two) is no
        // uncertified generation; without the certificate it is.
        store.put(&rewrite::pending_path(3), b"x".to_vec()).unwrap();
        assert!(!archive::uncertified(&store, 3).unwrap());
        let cert3 = certificate::path(3, "erase");
        let json3 = store.get(&cert3).unwrap();
        store.delete(&cert3).unwrap();
        assert!(archive::uncertified(&store, 3).unwrap());
        store.put(&cert3, json3).unwrap();
        store.delete(&rewrite::pending_path(3)).unwrap();
        // A third run finds nothing to certify.
        let again = erase_one("1002", "2026-02-03T00:00:00Z")
            .unwrap_err()
            .to_string();
        assert!(
            again.contains("no person") && !again.contains("certified"),
            "{again}"
        );
    }

    /// An identifier that reaches the records of two registry residents (one 個人番号
    /// on both persons' records) erases neither: the erase refuses and changes nothing.
    #[test]
    fn an_identifier_of_two_residents_erases_neither() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids, write) = archive(dir.path());
        let keys = run_keys(&ids, &write);
        let signer = signer("2026-02-01T00:00:00Z");
        let schema = Schema::embedded();
        let e = erase(
            &store,
            schema,
            "kojin_bango",
            "123456789018",
            "r",
            &keys,
            &signer,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("2 different registry residents") && e.contains("nothing was changed"),
            "{e}"
        );
        let (m, _) = archive::read_manifest(&store).unwrap();
        assert_eq!(m.generation, 1);
        assert_eq!(m.totals.records, 4);
        // Each by 宛名番号 is erased alone.
        let out = erase(&store, schema, "atena", "1001", "r", &keys, &signer).unwrap();
        assert_eq!(out.erased.records, 2);
    }

    /// A run killed after its audit entry and before its certificate: the certifying run
    /// takes that entry (its receipt proves it in the log as it is now) instead of
    /// appending a second erasure of the same generation.
    #[test]
    fn a_run_killed_after_its_audit_entry_is_certified_with_that_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids, write) = archive(dir.path());
        let schema = Schema::embedded();
        let keys = run_keys(&ids, &write);
        KILLED_AT.with(|k| k.set(2));
        let e = erase(
            &store,
            schema,
            "atena",
            "1001",
            "r",
            &keys,
            &signer("2026-02-01T00:00:00Z"),
        );
        KILLED_AT.with(|k| k.set(0));
        assert!(e.unwrap_err().to_string().contains("after the audit entry"));
        let out = erase(
            &store,
            schema,
            "atena",
            "1002",
            "r",
            &keys,
            &signer("2026-02-02T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            out.recovered_certificate.as_deref(),
            Some(certificate::path(2, "erase").as_str())
        );
        let log = crate::audit::read_log(&store).unwrap();
        let entries: Vec<crate::audit::Entry> = log
            .lines
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let of = |g: u64| {
            entries
                .iter()
                .filter(|e| e.generation == g && e.command == "erase")
                .count()
        };
        assert_eq!((of(2), of(3)), (1, 1), "one entry per erasure");
        let cert: Certificate =
            serde_json::from_slice(&store.get(&certificate::path(2, "erase")).unwrap()).unwrap();
        let receipt: crate::audit::AppendReceipt =
            serde_json::from_value(cert.audit.clone().unwrap()).unwrap();
        assert_eq!(receipt.index, 0);
        assert!(crate::audit::verify_inclusion(&receipt));
        assert_eq!(receipt.entry.as_bytes(), log.lines[0].as_slice());
    }
}
