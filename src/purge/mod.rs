//! Retention purge and one person's erasure (issue 6).
//!
//! - [`Rules`]: the retention rules as data (`pipelines/retention/*.toml`) and legal holds;
//! - [`expired`]: the pure per-record evaluator;
//! - [`inputs`]: death dates from a registry extract, provision dates from the national
//!   database submissions file;
//! - [`rewrite`]: the machinery shared by purge and erase (lock, recovery, rewrite of
//!   partly erased partitions under new keys, destruction of old objects, new
//!   generation of the manifest with `history/`);
//! - [`lists`]: what leaves the review and quarantine lists with the erased records;
//! - [`certificate`]: signed erasure certificates and their verification.
//!
//! See `docs/purge.md`.

pub mod certificate;
pub mod inputs;
pub mod lists;
pub mod rewrite;
pub mod run;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{civil_from_days, days_from_civil, format_date};

/// The rules shipped with vaxarc (used when `--rules` is not given).
pub const JAPAN_2026: &str = include_str!("../../pipelines/retention/japan-2026.toml");

/// A rules-file problem: where and what.
#[derive(Debug, thiserror::Error)]
#[error("retention rules `{file}`: {message}")]
pub struct RulesError {
    /// File (or "embedded").
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// How the last day of retention is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryKind {
    /// `years` from 接種日.
    VaccinationPlusYears,
    /// Later of (`years` from the day after death) and the national-DB provision date.
    LaterOfDeathAndProvision,
}

/// One retention rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, named in decisions and certificates.
    pub id: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// Legal basis (article, ordinance).
    pub legal_basis: String,
    /// First day the rule is in force (YYYY-MM-DD).
    pub effective_from: String,
    /// Last day the rule is in force, if it has ended.
    #[serde(default)]
    pub effective_to: Option<String>,
    /// Vaccine categories covered (`schemas/codes/vaccines.toml` `category`).
    pub categories: Vec<String>,
    /// First 接種日 covered.
    #[serde(default)]
    pub vaccinated_from: Option<String>,
    /// Last 接種日 covered.
    #[serde(default)]
    pub vaccinated_to: Option<String>,
    /// Expiry expression.
    pub expiry: ExpiryKind,
    /// Years of the period.
    pub years: u32,
}

/// A legal hold: a record or a person excluded from purges.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// A record id.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Keyed hash of a 宛名番号 (the index `key_hash` of kind `atena`).
    #[serde(default)]
    pub atena_hash: Option<String>,
    /// Why.
    pub reason: String,
}

/// A rules file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Name of the rule set.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Whether the starting day counts as day 1 (false: 民法第140条 初日不算入).
    #[serde(default)]
    pub first_day_counts: bool,
    /// Rules, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// Legal holds.
    #[serde(default, rename = "hold")]
    pub holds: Vec<Hold>,
}

/// A compiled rule (dates as days since 1970-01-01).
#[derive(Clone, Debug)]
pub struct CompiledRule {
    /// The rule as written.
    pub rule: Rule,
    effective_from: i32,
    effective_to: Option<i32>,
    vaccinated_from: Option<i32>,
    vaccinated_to: Option<i32>,
}

/// Validated rules.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Name.
    pub name: String,
    /// First day counts.
    pub first_day_counts: bool,
    /// Rules in order.
    pub rules: Vec<CompiledRule>,
    /// blake3 of the rules text (named in certificates).
    pub text_blake3: String,
}

/// Legal holds resolved for evaluation.
#[derive(Clone, Debug, Default)]
pub struct Holds {
    /// record id → reason.
    pub records: BTreeMap<String, String>,
    /// atena key hash → reason.
    pub persons: BTreeMap<String, String>,
}

impl Holds {
    /// From the rules file's `[[hold]]` entries.
    pub fn from_file(f: &RulesFile) -> Holds {
        let mut h = Holds::default();
        for hold in &f.holds {
            if let Some(r) = &hold.record_id {
                h.records.insert(r.trim().to_string(), hold.reason.clone());
            }
            if let Some(a) = &hold.atena_hash {
                h.persons
                    .insert(a.trim().to_ascii_lowercase(), hold.reason.clone());
            }
        }
        h
    }
}

/// Parse `YYYY-MM-DD` to days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let s = s.trim();
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    days_from_civil(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `days + years` on the calendar; 29 February → 28 February when the target year has none.
pub fn add_years(days: i32, years: u32) -> i32 {
    let (y, m, d) = civil_from_days(days);
    let ty = y + years as i32;
    days_from_civil(ty, m, d)
        .or_else(|| days_from_civil(ty, m, d - 1))
        .unwrap_or(days)
}

/// Last day of a period of `years` years starting with the event on day `start`.
pub fn period_end(start: i32, years: u32, first_day_counts: bool) -> i32 {
    if first_day_counts {
        add_years(start, years) - 1
    } else {
        add_years(start, years)
    }
}

impl Rules {
    /// Parse and validate a rules file; also returns its holds.
    pub fn from_toml(file: &str, text: &str) -> Result<(Rules, Holds), RulesError> {
        let err = |message: String| RulesError {
            file: file.to_string(),
            message,
        };
        let f: RulesFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            match e.span() {
                Some(span) => err(format!(
                    "line {}: {msg}",
                    text[..span.start].lines().count().max(1)
                )),
                None => err(msg),
            }
        })?;
        if f.rules.is_empty() {
            return Err(err("no [[rule]]".into()));
        }
        let date = |rule: &str, key: &str, v: &str| {
            parse_date(v)
                .ok_or_else(|| err(format!("rule `{rule}`: `{key}` is not a YYYY-MM-DD date")))
        };
        let mut rules = Vec::new();
        for r in &f.rules {
            if r.categories.is_empty() {
                return Err(err(format!("rule `{}`: `categories` is empty", r.id)));
            }
            if r.years == 0 || r.years > 200 {
                return Err(err(format!("rule `{}`: `years` must be 1..=200", r.id)));
            }
            rules.push(CompiledRule {
                effective_from: date(&r.id, "effective_from", &r.effective_from)?,
                effective_to: r
                    .effective_to
                    .as_deref()
                    .map(|v| date(&r.id, "effective_to", v))
                    .transpose()?,
                vaccinated_from: r
                    .vaccinated_from
                    .as_deref()
                    .map(|v| date(&r.id, "vaccinated_from", v))
                    .transpose()?,
                vaccinated_to: r
                    .vaccinated_to
                    .as_deref()
                    .map(|v| date(&r.id, "vaccinated_to", v))
                    .transpose()?,
                rule: r.clone(),
            });
        }
        for (i, h) in f.holds.iter().enumerate() {
            if h.record_id.is_none() == h.atena_hash.is_none() {
                return Err(err(format!(
                    "[[hold]] {}: give exactly one of `record_id`, `atena_hash`",
                    i + 1
                )));
            }
            if h.reason.trim().is_empty() {
                return Err(err(format!("[[hold]] {}: `reason` is empty", i + 1)));
            }
        }
        Ok((
            Rules {
                name: f.name.clone(),
                first_day_counts: f.first_day_counts,
                rules,
                text_blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
            },
            Holds::from_file(&f),
        ))
    }

    /// The rules shipped with vaxarc.
    pub fn embedded() -> (Rules, Holds) {
        Rules::from_toml("pipelines/retention/japan-2026.toml", JAPAN_2026)
            .expect("embedded retention rules are valid")
    }
}

/// What the evaluator needs of one record (no other personal data).
#[derive(Clone, Debug, Default)]
pub struct RecordFacts {
    /// Record id.
    pub record_id: String,
    /// Vaccine category (`routine_a`, `routine_b`, `covid_special`), if the code is known.
    pub category: Option<String>,
    /// 接種日 (days since 1970-01-01).
    pub vaccination_date: Option<i32>,
    /// Keyed hashes of the record's 宛名番号s (for person holds).
    pub atena_hashes: Vec<String>,
}

/// The evaluator's answer for one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The record may be destroyed on `as_of`.
    pub expired: bool,
    /// Rule that decided (`hold`, `none` when no rule covers the record).
    pub rule: String,
    /// Why, in words (no personal data).
    pub reason: String,
}

/// Decide whether a record has expired on `as_of` (pure). `death_date` is the person's
/// date of death if known to be deceased; `provided_date` the day the record was
/// provided to the national vaccination database, if it was.
pub fn expired(
    record: &RecordFacts,
    rules: &Rules,
    as_of: i32,
    death_date: Option<i32>,
    provided_date: Option<i32>,
    holds: &Holds,
) -> Decision {
    let decide = |expired: bool, rule: &str, reason: String| Decision {
        expired,
        rule: rule.to_string(),
        reason,
    };
    if let Some(reason) = holds.records.get(&record.record_id) {
        return decide(false, "hold", format!("record under legal hold: {reason}"));
    }
    if let Some(reason) = record
        .atena_hashes
        .iter()
        .find_map(|h| holds.persons.get(h))
    {
        return decide(false, "hold", format!("person under legal hold: {reason}"));
    }
    let Some(vdate) = record.vaccination_date else {
        return decide(false, "none", "no 接種日: retention cannot start".into());
    };
    let Some(category) = record.category.as_deref() else {
        return decide(
            false,
            "none",
            "unknown vaccine code: no rule applies".into(),
        );
    };
    let rule = rules.rules.iter().find(|r| {
        as_of >= r.effective_from
            && r.effective_to.is_none_or(|t| as_of <= t)
            && r.rule.categories.iter().any(|c| c == category)
            && r.vaccinated_from.is_none_or(|f| vdate >= f)
            && r.vaccinated_to.is_none_or(|t| vdate <= t)
    });
    let Some(rule) = rule else {
        return decide(false, "none", "no rule in force covers this record".into());
    };
    let id = rule.rule.id.as_str();
    let years = rule.rule.years;
    let keep_until = match rule.rule.expiry {
        ExpiryKind::VaccinationPlusYears => period_end(vdate, years, rules.first_day_counts),
        ExpiryKind::LaterOfDeathAndProvision => {
            let Some(death) = death_date else {
                return decide(false, id, "person not known to be deceased: kept".into());
            };
            let Some(provided) = provided_date else {
                return decide(
                    false,
                    id,
                    "never provided to the national database: kept".into(),
                );
            };
            period_end(death + 1, years, rules.first_day_counts).max(provided)
        }
    };
    if as_of > keep_until {
        decide(
            true,
            id,
            format!("kept through {}", format_date(keep_until)),
        )
    } else {
        decide(
            false,
            id,
            format!("kept through {}", format_date(keep_until)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> i32 {
        parse_date(s).unwrap()
    }

    fn facts(cat: &str, vdate: &str) -> RecordFacts {
        RecordFacts {
            record_id: "r1".into(),
            category: Some(cat.into()),
            vaccination_date: Some(d(vdate)),
            atena_hashes: vec!["aa".into()],
        }
    }

    #[test]
    fn routine_five_years_first_day_not_counted() {
        let (rules, holds) = Rules::embedded();
        assert!(!rules.first_day_counts);
        let r = facts("routine_a", "2020-04-10");
        assert!(!expired(&r, &rules, d("2025-04-10"), None, None, &holds).expired);
        let dec = expired(&r, &rules, d("2025-04-11"), None, None, &holds);
        assert!(dec.expired);
        assert_eq!(dec.rule, "routine-5y");
        // First day counts: one day earlier.
        let mut counted = rules.clone();
        counted.first_day_counts = true;
        assert!(!expired(&r, &counted, d("2025-04-09"), None, None, &holds).expired);
        assert!(expired(&r, &counted, d("2025-04-10"), None, None, &holds).expired);
    }

    #[test]
    fn leap_day_anniversary_is_28_february() {
        assert_eq!(add_years(d("2020-02-29"), 5), d("2025-02-28"));
        assert_eq!(add_years(d("2020-02-28"), 4), d("2024-02-28"));
    }

    #[test]
    fn covid_special_needs_death_and_provision() {
        let (rules, holds) = Rules::embedded();
        let r = facts("covid_special", "2021-06-01");
        let as_of = d("2031-01-01");
        // Living: never.
        let dec = expired(&r, &rules, as_of, None, Some(d("2026-07-01")), &holds);
        assert!(!dec.expired);
        assert_eq!(dec.rule, "covid-special-2021");
        // Deceased, never provided: never.
        assert!(!expired(&r, &rules, as_of, Some(d("2022-01-10")), None, &holds).expired);
        // Deceased 2022-01-10: (a) ends 2027-01-11 (day after death 01-11, +5y, 初日不算入).
        let death = Some(d("2022-01-10"));
        let provided = Some(d("2026-07-01"));
        assert!(!expired(&r, &rules, d("2027-01-11"), death, provided, &holds).expired);
        assert!(expired(&r, &rules, d("2027-01-12"), death, provided, &holds).expired);
        // (b) later than (a): the provision date decides.
        let late = Some(d("2028-03-01"));
        assert!(!expired(&r, &rules, d("2028-03-01"), death, late, &holds).expired);
        assert!(expired(&r, &rules, d("2028-03-02"), death, late, &holds).expired);
    }

    #[test]
    fn covid_after_special_period_is_routine() {
        let (rules, holds) = Rules::embedded();
        let r = facts("covid_special", "2024-10-01");
        let dec = expired(&r, &rules, d("2029-10-02"), None, None, &holds);
        assert!(dec.expired);
        assert_eq!(dec.rule, "routine-5y");
    }

    #[test]
    fn rules_not_yet_in_force_and_unknowns_keep() {
        let (rules, holds) = Rules::embedded();
        // The COVID rule is in force from 2026-02-01; before that day the routine rule
        // (which lists covid_special too) decided.
        let r = facts("covid_special", "2021-02-20");
        let before = expired(&r, &rules, d("2026-01-31"), None, None, &holds);
        assert_eq!(before.rule, "routine-5y");
        assert!(!before.expired);
        let mut none = facts("routine_a", "2010-01-01");
        none.category = None;
        assert!(!expired(&none, &rules, d("2030-01-01"), None, None, &holds).expired);
        none.category = Some("routine_a".into());
        none.vaccination_date = None;
        assert!(!expired(&none, &rules, d("2030-01-01"), None, None, &holds).expired);
    }

    #[test]
    fn holds_win() {
        let (rules, mut holds) = Rules::embedded();
        let r = facts("routine_a", "2010-01-01");
        holds.records.insert("r1".into(), "litigation".into());
        let dec = expired(&r, &rules, d("2026-01-01"), None, None, &holds);
        assert_eq!((dec.expired, dec.rule.as_str()), (false, "hold"));
        let mut holds = Holds::default();
        holds.persons.insert("aa".into(), "disclosure".into());
        assert!(!expired(&r, &rules, d("2026-01-01"), None, None, &holds).expired);
    }

    #[test]
    fn malformed_rules_name_the_line() {
        let e = Rules::from_toml("x.toml", "name = \"x\"\n[[rule]]\nid = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml") && e.contains("line"), "{e}");
        let bad_hold = format!("{JAPAN_2026}\n[[hold]]\nreason = \"r\"\n");
        assert!(Rules::from_toml("x.toml", &bad_hold)
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
    }
}
