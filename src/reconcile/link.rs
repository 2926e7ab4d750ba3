//! Linking records to registry people: deterministic keys first, then Fellegi–Sunter.
//!
//! Pure: takes indexed records and registry rows, returns one [`Link`] per record.
//! Every join runs in [`super::frames`]; the per-pair scoring is plain Rust in parallel
//! (rayon), collected in input order so results do not depend on the thread count.

use std::collections::BTreeSet;

use rayon::prelude::*;

use super::frames::{self, Keyed};
use super::keys;
use super::rules::Rules;
use super::Fields;
use crate::record::{civil_from_days, Record, ValueRef};

/// How a record was (or was not) linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Atena,
    IntegratedAtena,
    KojinBango,
    Ticket,
    Probabilistic,
    Review,
    None,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Atena => "atena",
            Method::IntegratedAtena => "integrated_atena",
            Method::KojinBango => "kojin_bango",
            Method::Ticket => "ticket",
            Method::Probabilistic => "probabilistic",
            Method::Review => "review",
            Method::None => "none",
        }
    }
}

/// The linking decision for one record.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub method: Method,
    /// Best Fellegi–Sunter score (probabilistic and review only).
    pub score: Option<f64>,
    /// Index of the linked registry row.
    pub registry: Option<usize>,
    /// Review candidates: registry row and score, best first.
    pub candidates: Vec<(usize, f64)>,
    /// Deterministic keys that pointed at a suspicious person and were not followed.
    pub suspicious: u32,
}

/// Which identifiers a VRS dose got from its person row via the ticket (not its own).
/// Enrichment copied them into the record's `atena_number` / `kojin_bango`; flags, not
/// copies (two strings per record were a quarter of a GB at 5M rows).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TicketIds {
    pub atena: bool,
    pub kojin_bango: bool,
    /// The ticket's person row names another registry resident than the dose's own
    /// 宛名番号 does: nothing was filled from it (conflict `ticket_atena`).
    pub mismatch: bool,
}

/// The person items a comparison looks at, with the name keys computed once.
///
/// Compact, as the linker keeps one per registry row for the whole run: the four texts
/// share one allocation, and the address — only ever compared for equality — is kept as
/// its 128-bit hash (about a third of the size of five strings; 190 MB less at 5M rows).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Person {
    /// The kana key, kanji key, sex and postal code, one after the other.
    text: Box<str>,
    /// Where each of the four parts of `text` ends (fields are at most
    /// [`crate::ingest::MAX_FIELD_BYTES`], so they fit).
    ends: [u32; 4],
    /// Bit `k`: part `k` is present (a present part may be empty: a postal code of dashes).
    present: u8,
    pub birth: Option<i32>,
    /// xxh3-128 of the address with white space removed.
    address: Option<[u8; 16]>,
}

/// The parts of [`Person::text`].
const KANA: usize = 0;
const KANJI: usize = 1;
const SEX: usize = 2;
const POSTAL: usize = 3;

fn text(v: ValueRef<'_>) -> Option<&str> {
    v.as_str().filter(|s| !s.trim().is_empty())
}

/// Everything [`Person::of`] reads from a row: rows with equal inputs have equal persons.
type Inputs<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<i32>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn inputs<'a>(f: &Fields, r: &'a Record) -> Inputs<'a> {
    (
        text(r.at(f.kana_name)),
        text(r.at(f.kanji_name)),
        r.at(f.birth_date).as_date(),
        text(r.at(f.sex)),
        text(r.at(f.postal_code)),
        text(r.at(f.address)),
    )
}

/// [`Person::of`] of many rows, computed once per distinct inputs: a person's doses repeat
/// one name, birth date and address, so 5M dose rows hold about a million distinct persons
/// (the kana and kanji keys — NFKC, folding — are the costly part, and five strings per row
/// were a large share of reconciliation's memory). `people[i]` is row `i`'s person.
pub(crate) struct People {
    distinct: Vec<Person>,
    person_of: Vec<u32>,
}

impl People {
    /// The persons of `rows`, in parallel. Deterministic (fixed hash seed; ids in row order).
    pub(crate) fn of(f: &Fields, rows: &[Record]) -> People {
        use std::hash::BuildHasher;
        let state = foldhash::fast::FixedState::with_seed(0x7661_7861_7263);
        let mut hashed: Vec<(u64, u32)> = rows
            .par_iter()
            .enumerate()
            .map(|(i, r)| (state.hash_one(inputs(f, r)), i as u32))
            .collect();
        hashed.par_sort_unstable();
        // Each row's representative: the lowest-indexed row with equal inputs (a run of
        // one hash is in row order, and almost always holds one distinct input).
        let pairs: Vec<(u32, u32)> = hashed
            .par_chunk_by(|a, b| a.0 == b.0)
            .flat_map_iter(|run| {
                let mut firsts: Vec<(u32, Inputs<'_>)> = Vec::new();
                run.iter()
                    .map(|&(_, i)| {
                        let mine = inputs(f, &rows[i as usize]);
                        let rep = match firsts.iter().find(|(_, x)| *x == mine) {
                            Some(&(j, _)) => j,
                            None => {
                                firsts.push((i, mine));
                                i
                            }
                        };
                        (i, rep)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        drop(hashed);
        let mut rep = vec![0u32; rows.len()];
        for (i, r) in pairs {
            rep[i as usize] = r;
        }
        // Dense ids in row order; a representative precedes the rows it stands for.
        let mut person_of = vec![0u32; rows.len()];
        let mut reps = Vec::new();
        for i in 0..rows.len() {
            let r = rep[i] as usize;
            person_of[i] = if r == i {
                reps.push(i);
                (reps.len() - 1) as u32
            } else {
                person_of[r]
            };
        }
        let distinct = reps.par_iter().map(|&i| Person::of(f, &rows[i])).collect();
        People {
            distinct,
            person_of,
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.person_of.len()
    }

    /// Number of distinct persons.
    #[cfg(test)]
    pub(crate) fn distinct(&self) -> usize {
        self.distinct.len()
    }

    /// Append the rows of `more` after this one's (a row's person is unchanged; persons
    /// equal across the two are kept twice, which only costs memory).
    pub(crate) fn append(&mut self, more: People) {
        let base = self.distinct.len() as u32;
        self.distinct.extend(more.distinct);
        self.person_of
            .extend(more.person_of.into_iter().map(|d| base + d));
    }

    /// Free the persons (millions of small strings) over the pool.
    pub(crate) fn free(self) {
        self.distinct.into_par_iter().for_each(drop);
    }
}

/// The registry as [`link`] needs it, prepared once for all chunks of records: its persons
/// (match keys), its side of every join, and of its rows only the fields a link copies
/// (the full rows are not needed once this is built: at 5M source rows they were a
/// quarter of a GB).
pub(crate) struct Registry {
    /// Registry rows with only 宛名番号, status and status date.
    pub rows: Vec<Record>,
    pub people: People,
    pub(crate) atena: frames::Right,
    integrated_atena: frames::Right,
    kojin_bango: frames::Right,
    /// One per blocking rule of [`Rules::blocking`], in order.
    blocks: Vec<frames::Right>,
}

impl Registry {
    pub(crate) fn new(f: &Fields, rows: &[Record], rules: &Rules) -> Self {
        let mut builder = RegistryBuilder::default();
        builder.add(f, rows);
        builder.finish(rules)
    }
}

/// A [`Registry`] built from its rows a chunk at a time, so that the registry's full rows
/// never sit in memory together (at 20M source rows, a registry of 3.8M residents, they
/// set the migrate's peak). Chunks must come in row order; the result is the one
/// [`Registry::new`] gives over all rows at once (tested).
#[derive(Default)]
pub(crate) struct RegistryBuilder {
    rows: Vec<Record>,
    people: Option<People>,
    atena: frames::KeyColumns,
    integrated_atena: frames::KeyColumns,
    kojin_bango: frames::KeyColumns,
}

impl RegistryBuilder {
    /// Take the next rows of the registry.
    pub(crate) fn add(&mut self, f: &Fields, rows: &[Record]) {
        let base = self.rows.len() as u32;
        let all = |_: usize| true;
        self.atena
            .extend_shifted(keyed(rows, f.atena_number, all), base);
        self.integrated_atena
            .extend_shifted(keyed(rows, f.integrated_atena_number, all), base);
        self.kojin_bango
            .extend_shifted(keyed(rows, f.kojin_bango, all), base);
        let people = People::of(f, rows);
        match &mut self.people {
            Some(p) => p.append(people),
            None => self.people = Some(people),
        }
        // 個人番号 too: not for linking (the join side holds it) but for the lookup index
        // (`Linker::linked_persons`).
        let kept = [
            f.atena_number,
            f.kojin_bango,
            f.registry_status,
            f.registry_status_date,
        ];
        self.rows.par_extend(rows.par_iter().map(|r| {
            let mut s = Record::new(r.len());
            s.fill_from(r, |i| kept.contains(&i));
            s
        }));
    }

    /// Number of rows taken so far.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The registry: the blocking sides of `rules` and the identifier sides.
    pub(crate) fn finish(self, rules: &Rules) -> Registry {
        let people = self.people.unwrap_or(People {
            distinct: Vec::new(),
            person_of: Vec::new(),
        });
        // The identifier sides first: each frees its collected keys before the blocking
        // sides are built.
        let atena = frames::Right::of_columns(self.atena, None);
        let integrated_atena = frames::Right::of_columns(self.integrated_atena, None);
        let kojin_bango = frames::Right::of_columns(self.kojin_bango, None);
        let blocks = rules
            .blocking
            .iter()
            .map(|rule| {
                let right: Keyed = (0..people.len())
                    .into_par_iter()
                    .filter_map(|g| {
                        people[g]
                            .block_key(rule)
                            .map(|k| (g as u32, frames::key(&k)))
                    })
                    .collect();
                frames::Right::new(right, rules.max_block_size)
            })
            .collect();
        Registry {
            rows: self.rows,
            atena,
            integrated_atena,
            kojin_bango,
            blocks,
            people,
        }
    }
}

impl std::ops::Index<usize> for People {
    type Output = Person;
    fn index(&self, row: usize) -> &Person {
        &self.distinct[self.person_of[row] as usize]
    }
}

impl Person {
    pub(crate) fn of(f: &Fields, r: &Record) -> Person {
        let key = |v: ValueRef<'_>, k: fn(&str) -> String| text(v).map(k).filter(|s| !s.is_empty());
        let parts = [
            key(r.at(f.kana_name), keys::kana),
            key(r.at(f.kanji_name), keys::kanji),
            text(r.at(f.sex)).filter(|s| *s != "U").map(str::to_string),
            text(r.at(f.postal_code)).map(|s| s.replace(['-', 'ー', '－'], "")),
        ];
        let mut all = String::with_capacity(parts.iter().flatten().map(String::len).sum());
        let (mut ends, mut present) = ([0u32; 4], 0u8);
        for (k, part) in parts.iter().enumerate() {
            if let Some(part) = part {
                all.push_str(part);
                present |= 1 << k;
            }
            ends[k] = all.len() as u32;
        }
        Person {
            text: all.into_boxed_str(),
            ends,
            present,
            birth: r.at(f.birth_date).as_date(),
            address: text(r.at(f.address)).map(|s| {
                let joined: String = s.split_whitespace().collect();
                xxhash_rust::xxh3::xxh3_128(joined.as_bytes()).to_le_bytes()
            }),
        }
    }

    fn get(&self, k: usize) -> Option<&str> {
        let start = if k == 0 { 0 } else { self.ends[k - 1] as usize };
        (self.present & (1 << k) != 0).then(|| &self.text[start..self.ends[k] as usize])
    }

    pub(crate) fn kana(&self) -> Option<&str> {
        self.get(KANA)
    }

    pub(crate) fn kanji(&self) -> Option<&str> {
        self.get(KANJI)
    }

    pub(crate) fn sex(&self) -> Option<&str> {
        self.get(SEX)
    }

    fn postal(&self) -> Option<&str> {
        self.get(POSTAL)
    }

    fn has_identity(&self) -> bool {
        self.kana().is_some() || self.kanji().is_some()
    }

    /// The value of a blocking key part, cut to `prefix` characters.
    fn part(&self, name: &str, prefix: Option<usize>) -> Option<String> {
        let full = match name {
            "kana_key" => self.kana().map(str::to_string),
            "kanji_key" => self.kanji().map(str::to_string),
            "birth_date" => self.birth.map(|d| d.to_string()),
            "birth_year" => self.birth.map(|d| civil_from_days(d).0.to_string()),
            "sex" => self.sex().map(str::to_string),
            "postal_code" => self.postal().map(str::to_string),
            _ => None,
        }?;
        Some(match prefix {
            Some(n) => full.chars().take(n).collect(),
            None => full,
        })
    }

    fn block_key(&self, rule: &[super::rules::KeyPart]) -> Option<String> {
        let mut key = String::new();
        for part in rule {
            key.push_str(&self.part(&part.name, part.prefix)?);
            key.push('\u{1f}');
        }
        Some(key)
    }
}

/// Does a deterministic key point at someone else? Both the birth date and the kana key
/// disagree (each present on both sides).
pub(crate) fn suspicious(record: &Person, registry: &Person) -> bool {
    let birth = matches!((record.birth, registry.birth), (Some(a), Some(b)) if a != b);
    let kana = matches!((record.kana(), registry.kana()), (Some(a), Some(b)) if a != b);
    birth && kana
}

/// Whether the optimal-string-alignment distance of `a` and `b` is at most 1 (one
/// substitution, deletion, insertion or adjacent transposition).
pub(crate) fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if p == a.len() && p == b.len() {
        return true;
    }
    let (ra, rb) = (&a[p..], &b[p..]);
    // substitution, deletion, insertion, or adjacent transposition at the first difference
    ra.get(1..) == rb.get(1..)
        || ra.get(1..) == Some(rb)
        || Some(ra) == rb.get(1..)
        || (ra.len() >= 2
            && rb.len() >= 2
            && ra[0] == rb[1]
            && ra[1] == rb[0]
            && ra[2..] == rb[2..])
}

fn one_component_off(a: i32, b: i32) -> bool {
    let (ya, ma, da) = civil_from_days(a);
    let (yb, mb, db) = civil_from_days(b);
    [(ya != yb), (ma != mb), (da != db)]
        .iter()
        .filter(|x| **x)
        .count()
        == 1
}

/// The Fellegi–Sunter score of a record against a registry person.
pub(crate) fn score(rules: &Rules, r: &Person, g: &Person) -> f64 {
    let mut total = 0.0;
    if let (Some(a), Some(b)) = (r.kana(), g.kana()) {
        let level = if a == b {
            Some(0)
        } else if within_one_edit(a, b) {
            Some(1)
        } else {
            None
        };
        total += rules.weight("kana_key", level);
    }
    if let (Some(a), Some(b)) = (r.kanji(), g.kanji()) {
        total += rules.weight("kanji_key", (a == b).then_some(0));
    }
    if let (Some(a), Some(b)) = (r.birth, g.birth) {
        let level = if a == b {
            Some(0)
        } else if one_component_off(a, b) {
            Some(1)
        } else {
            None
        };
        total += rules.weight("birth_date", level);
    }
    fn exact<T: PartialEq>(rules: &Rules, name: &str, a: Option<T>, b: Option<T>) -> f64 {
        match (a, b) {
            (Some(a), Some(b)) => rules.weight(name, (a == b).then_some(0)),
            _ => 0.0,
        }
    }
    total += exact(rules, "sex", r.sex(), g.sex());
    total += exact(rules, "postal_code", r.postal(), g.postal());
    total += exact(rules, "address", r.address, g.address);
    total
}

fn keyed(rows: &[Record], field: usize, only: impl Fn(usize) -> bool + Sync) -> Keyed {
    rows.par_iter()
        .enumerate()
        .filter(|(i, _)| only(*i))
        .filter_map(|(i, r)| text(r.at(field)).map(|s| (i as u32, frames::key(s))))
        .collect()
}

/// No registry row has the record's key.
const NO_HIT: u32 = u32::MAX;
/// Two or more registry rows have the record's key (it identifies no one).
const MANY_HITS: u32 = u32::MAX - 1;

/// Per record: the one registry row its key hits, or [`NO_HIT`] / [`MANY_HITS`].
fn hits_per_record(n: usize, pairs: Vec<(u32, u32)>) -> Vec<u32> {
    let mut hits = vec![NO_HIT; n];
    for (r, g) in pairs {
        let h = &mut hits[r as usize];
        *h = if *h == NO_HIT { g } else { MANY_HITS };
    }
    hits
}

/// The registry row each of `rows` (VRS person rows) names, for the lookup index: by its
/// 宛名番号, else by its 個人番号 — a key shared by two registry rows naming no one — and
/// only when the row and that registry person agree on both the kana key and the birth
/// date (each present). Stricter than linking (which follows a key unless both disagree):
/// a ticket indexed under the wrong person would answer a lookup with another person's
/// records, while one not indexed only leaves that ticket unanswered.
pub(crate) fn registry_rows_of_persons(
    f: &Fields,
    rows: &[Record],
    reg: &Registry,
) -> Vec<Option<usize>> {
    let n = rows.len();
    let all = |_: usize| true;
    let by_atena = hits_per_record(
        n,
        frames::join_with(keyed(rows, f.atena_number, all), &reg.atena),
    );
    let by_kojin = hits_per_record(
        n,
        frames::join_with(keyed(rows, f.kojin_bango, all), &reg.kojin_bango),
    );
    (0..n)
        .into_par_iter()
        .map(|i| {
            let candidates = [by_atena[i], by_kojin[i]];
            let mut hits = candidates
                .into_iter()
                .filter(|&g| g != NO_HIT && g != MANY_HITS);
            hits.clone().next()?;
            // Only what is compared (`Person::of` would make the kanji key too).
            let kana = text(rows[i].at(f.kana_name))
                .map(keys::kana)
                .filter(|k| !k.is_empty())?;
            let birth = rows[i].at(f.birth_date).as_date()?;
            hits.find(|&g| {
                let person = &reg.people[g as usize];
                person.kana() == Some(kana.as_str()) && person.birth == Some(birth)
            })
            .map(|g| g as usize)
        })
        .collect()
}

impl Registry {
    /// Whether registry row `g`'s 個人番号 is held by no other registry row (a number two
    /// rows share identifies no one, as in linking).
    pub(crate) fn kojin_bango_unique(&self, f: &Fields, g: usize) -> bool {
        text(self.rows[g].at(f.kojin_bango))
            .is_some_and(|k| self.kojin_bango.rows_of(frames::key(k)).len() == 1)
    }
}

/// Link every record. `ticket[i]` holds the identifiers record `i` got via its ticket;
/// `people` are [`Person::of`] of each record.
pub(crate) fn link(
    f: &Fields,
    records: &[Record],
    ticket: &[TicketIds],
    reg: &Registry,
    rules: &Rules,
    people: &People,
) -> Vec<Link> {
    let n = records.len();
    let (registry, reg_people) = (&reg.rows, &reg.people);

    // Deterministic keys, in order of precedence. A record's own 宛名番号 / 個人番号 count
    // for `atena` / `kojin_bango`; those its VRS person row filled in count for `ticket`.
    let all = |_: usize| true;
    let own_atena = |i: usize| !ticket[i].atena;
    let own_kojin = |i: usize| !ticket[i].kojin_bango;
    let ticket_keyed = |pick: fn(&TicketIds) -> bool, field: usize| -> Keyed {
        ticket
            .par_iter()
            .enumerate()
            .filter(|(_, t)| pick(t))
            .filter_map(|(i, _)| {
                records[i]
                    .at(field)
                    .as_str()
                    .map(|s| (i as u32, frames::key(s)))
            })
            .collect()
    };
    let steps: Vec<(Method, Vec<u32>)> = vec![
        (
            Method::Atena,
            frames::join_with(keyed(records, f.atena_number, own_atena), &reg.atena),
        ),
        (
            Method::IntegratedAtena,
            frames::join_with(
                keyed(records, f.integrated_atena_number, all),
                &reg.integrated_atena,
            ),
        ),
        (
            Method::KojinBango,
            frames::join_with(keyed(records, f.kojin_bango, own_kojin), &reg.kojin_bango),
        ),
        (
            Method::Ticket,
            frames::join_with(ticket_keyed(|t| t.atena, f.atena_number), &reg.atena),
        ),
        (
            Method::Ticket,
            frames::join_with(
                ticket_keyed(|t| t.kojin_bango, f.kojin_bango),
                &reg.kojin_bango,
            ),
        ),
    ]
    .into_iter()
    .map(|(m, pairs)| (m, hits_per_record(n, pairs)))
    .collect();

    let mut links: Vec<Link> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut suspicious_keys = 0;
            for (method, hits) in &steps {
                // A key shared by two registry rows identifies no one: skip it.
                let g = hits[i] as usize;
                if hits[i] != NO_HIT && hits[i] != MANY_HITS {
                    if suspicious(&people[i], &reg_people[g]) {
                        suspicious_keys += 1;
                        continue;
                    }
                    return Link {
                        method: *method,
                        score: None,
                        registry: Some(g),
                        candidates: Vec::new(),
                        suspicious: suspicious_keys,
                    };
                }
            }
            Link {
                method: Method::None,
                score: None,
                registry: None,
                candidates: Vec::new(),
                suspicious: suspicious_keys,
            }
        })
        .collect();

    // Probabilistic: blocking joins generate candidate pairs for the records left.
    let open = |i: usize| links[i].registry.is_none() && people[i].has_identity();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (rule, right) in rules.blocking.iter().zip(&reg.blocks) {
        let left: Keyed = (0..n)
            .into_par_iter()
            .filter(|&i| open(i))
            .filter_map(|i| {
                people[i]
                    .block_key(rule)
                    .map(|k| (i as u32, frames::key(&k)))
            })
            .collect();
        pairs.extend(frames::join_with(left, right));
    }
    pairs.sort_unstable();
    pairs.dedup();
    // A 個人番号 on both sides that differs (each passed its check digit when read) says
    // two people, whatever the names and birth dates: no candidate. Otherwise a person
    // from elsewhere with a resident's name and a birth date one part off links to the
    // resident, and a lookup by either shows the other's doses.
    fn number(r: &Record, field: usize) -> Option<&str> {
        text(r.at(field))
    }
    pairs.retain(|&(r, g)| {
        match (
            number(&records[r as usize], f.kojin_bango),
            number(&registry[g as usize], f.kojin_bango),
        ) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    });
    // A 宛名番号 more than one typing slip from the resident's (a slip is how one person's
    // number goes wrong; another person's differs in several digits) is no automatic link:
    // at most a review candidate, for a person to decide.
    let far_atena: Vec<bool> = pairs
        .par_iter()
        .map(|&(r, g)| {
            match (
                number(&records[r as usize], f.atena_number),
                number(&registry[g as usize], f.atena_number),
            ) {
                (Some(a), Some(b)) => !within_one_edit(a, b),
                _ => false,
            }
        })
        .collect();
    let scores: Vec<f64> = pairs
        .par_iter()
        .map(|&(r, g)| score(rules, &people[r as usize], &reg_people[g as usize]))
        .collect();

    let atena_of = |g: usize| {
        text(registry[g].at(f.atena_number))
            .unwrap_or("")
            .to_string()
    };
    let mut start = 0;
    while start < pairs.len() {
        let r = pairs[start].0 as usize;
        let mut end = start;
        while end < pairs.len() && pairs[end].0 as usize == r {
            end += 1;
        }
        let mut candidates: Vec<(usize, f64)> = (start..end)
            .map(|k| (pairs[k].1 as usize, scores[k]))
            .collect();
        let far: BTreeSet<usize> = (start..end)
            .filter(|&k| far_atena[k])
            .map(|k| pairs[k].1 as usize)
            .collect();
        candidates.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| atena_of(a.0).cmp(&atena_of(b.0)))
                .then(a.0.cmp(&b.0))
        });
        let best = candidates[0];
        let second = candidates.get(1).map_or(f64::NEG_INFINITY, |c| c.1);
        let link = &mut links[r];
        if best.1 >= rules.upper && best.1 - second >= rules.margin && !far.contains(&best.0) {
            link.method = Method::Probabilistic;
            link.score = Some(best.1);
            link.registry = Some(best.0);
        } else if best.1 >= rules.lower {
            link.method = Method::Review;
            link.score = Some(best.1);
            candidates.retain(|c| c.1 >= rules.lower);
            candidates.truncate(MAX_REVIEW_CANDIDATES);
            link.candidates = candidates;
        }
        start = end;
    }
    links
}

/// How many candidates a review item lists at most.
pub(crate) const MAX_REVIEW_CANDIDATES: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_one() {
        assert!(within_one_edit("タナカ", "タナカ"));
        assert!(within_one_edit("タナカ", "タナガ"));
        assert!(within_one_edit("タナカ", "タカナ"));
        assert!(within_one_edit("タナカ", "タナ"));
        assert!(within_one_edit("タナカ", "タナカア"));
        assert!(within_one_edit("タナカ", "アタナカ"));
        assert!(!within_one_edit("タナカ", "サトウ"));
        assert!(!within_one_edit("タナカ", "ナタガ"));
        assert!(!within_one_edit("タナカ", "タ"));
    }

    #[test]
    fn birth_components() {
        let d = |y, m, dd| crate::record::days_from_civil(y, m, dd).unwrap();
        assert!(one_component_off(d(1980, 1, 2), d(1981, 1, 2)));
        assert!(one_component_off(d(1980, 1, 2), d(1980, 1, 3)));
        assert!(!one_component_off(d(1980, 1, 2), d(1980, 2, 3)));
    }
}
