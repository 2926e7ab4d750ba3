//! `vaxarc report`: the statistics and reconciliation report of an archive, for the
//! city's records (接種の種類ごとの実施人数、未接種者数, 照合結果, 隔離, 保存期限).
//!
//! Pure core: [`Facts`] (the few columns the report needs, extracted from decrypted
//! records, plus the quarantine rows' file and reason) and the manifest in, a
//! [`Report`] of aggregates out ([`build`]). Rendering is pure too ([`render`]). The
//! shell (`commands/report.rs`) decrypts the partitions and the quarantine object.
//!
//! **No personal data leaves this module.** [`Facts`] hold person hashes and dates in
//! memory only; a [`Report`] holds only group labels (codes, file ids, years, age
//! bands) and counts, and every count below the threshold is replaced by
//! [`Count::suppressed`] before it is stored, so no renderer can show it.
//!
//! Limitations (also printed in every report, see [`LIMITATIONS`]):
//! - The target population of 未接種者数 comes from the archive's encrypted registry
//!   summary (residents of the registry extract by birth date, written by migrate): every
//!   resident in the target ages, recorded or not. Archives written before the summary
//!   existed fall back to the residents *known to the archive* (persons with at least one
//!   archived record), an undercount. The summary is as of migration: moves and deaths
//!   since then are not reflected.
//! - The retention outlook shows expiry by partition under the rules of migration time;
//!   legal holds (in the purge rules file) are applied by purge, not shown here.
//! - Counts of people and doses are withheld from 1 to the threshold; in 未接種者数 the
//!   sibling that would give a withheld cell away (vaccinated + unvaccinated = target) is
//!   withheld too. Other totals are not adjusted, so a withheld cell may sometimes still be
//!   derived from a total and the other cells. Processing counts (source rows, records,
//!   quarantined rows, accounting) are exact: they count rows, not people, and a reader
//!   must be able to check that they add up.

pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::archive::manifest::Manifest;
use crate::normalise::Tables;
use crate::record::{civil_from_days, Record};
use crate::schema::Schema;

/// Default suppression threshold: counts from 1 to 9 are shown as `<10`.
pub const DEFAULT_SUPPRESS_BELOW: u64 = 10;

/// The limitations every report states.
pub const LIMITATIONS: &[&str] = &[
    "未接種者数: the target population is the residents of the registry extract used at migration (an encrypted summary by birth date; archives without it count only residents with a record); moves and deaths since migration are not reflected / 対象者は移行時の住民基本台帳の住民（生年月日別の集計）です",
    "retention: expiry is shown per partition under the rules applied at migration, with its status on the as-of date (満了（消去対象） = the expiry year is over: run `vaxarc purge`); legal holds (the purge rules file's holds) are applied by purge and not shown here / 状態は基準日時点（満了 = 消去対象）。訴訟ホールド等による保存延長は消去時に適用され、本表には反映されません",
    "suppression: counts of people and doses from 1 to one below the threshold are shown as <N, and in 未接種者数 the sibling that would give a withheld cell away is withheld too; other totals are not adjusted, so a withheld cell can sometimes still be derived from a total and its neighbours. Processing counts (source rows, records, quarantined rows, accounting) are exact: they count rows, not people, and must add up / 人数・接種件数の1〜閾値未満は秘匿（未接種者数では差し引きで分かる隣の値も秘匿）。その他の合計値は調整しないため、合計と隣接値から秘匿値が分かる場合があります。入力行・記録・隔離・件数照合は行数であり、照合のため正確な値を表示します",
];

/// A count as shown: the value, or suppressed (too small to publish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The value; `None` when suppressed.
    pub value: Option<u64>,
    /// True when the value was below the threshold and is withheld.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Count {
    /// Apply the threshold: 0 and counts ≥ `below` are shown; 1..below-1 are withheld.
    /// A zero identifies nobody, so it is shown.
    pub fn new(n: u64, below: u64) -> Count {
        if n > 0 && n < below {
            Count {
                value: None,
                suppressed: true,
            }
        } else {
            Count {
                value: Some(n),
                suppressed: false,
            }
        }
    }

    /// A processing count (source rows, quarantined rows, accounting): not a count of
    /// people or their doses, shown exactly — the accounting must add up for a reader.
    pub fn exact(n: u64) -> Count {
        Count {
            value: Some(n),
            suppressed: false,
        }
    }

    /// Withheld whatever its value: a cell from which a withheld sibling could be
    /// computed (complementary suppression).
    pub fn withheld() -> Count {
        Count {
            value: None,
            suppressed: true,
        }
    }

    /// Text for a table cell: the number with thousands separators, or `<N`.
    pub fn display(&self, below: u64) -> String {
        match self.value {
            Some(v) => thousands(v),
            None => format!("<{below}"),
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The columns of one record the report needs. Personal (person hash, dates): kept in
/// memory only, never rendered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fact {
    /// Canonical vaccine code.
    pub vaccine_code: String,
    /// Canonical stage (1期, 2期, …).
    pub stage: Option<String>,
    /// 接種回.
    pub dose: Option<i64>,
    /// 接種日, days since 1970-01-01.
    pub vaccination_date: Option<i32>,
    /// 生年月日, days since 1970-01-01.
    pub birth_date: Option<i32>,
    /// Keyed person hash.
    pub person: String,
    /// match_method.
    pub match_method: String,
    /// registry_status.
    pub registry_status: String,
    /// False for VRS rows whose 接種状況 is not_done.
    pub done: bool,
    /// `;`-separated conflicting field names (no values).
    pub conflicts: Option<String>,
}

/// Extract the report's columns from decrypted records (pure).
pub fn facts_of(schema: &Schema, records: &[Record]) -> Vec<Fact> {
    let i = |n: &str| schema.idx(n);
    let (vc, st, dn, vd, bd, ph, mm, rs, vs, cf) = (
        i("vaccine_code"),
        i("stage"),
        i("dose_number"),
        i("vaccination_date"),
        i("birth_date"),
        i("person_hash"),
        i("match_method"),
        i("registry_status"),
        i("vaccination_status"),
        i("conflicts"),
    );
    let text = |r: &Record, k: usize| {
        r.at(k)
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    records
        .iter()
        .map(|r| Fact {
            vaccine_code: text(r, vc).unwrap_or_else(|| "unknown".into()),
            stage: text(r, st),
            dose: r.at(dn).as_int(),
            vaccination_date: r.at(vd).as_date(),
            birth_date: r.at(bd).as_date(),
            person: text(r, ph).unwrap_or_default(),
            match_method: text(r, mm).unwrap_or_else(|| "none".into()),
            registry_status: text(r, rs).unwrap_or_else(|| "unlinked".into()),
            done: r.at(vs).as_str() != Some("not_done"),
            conflicts: text(r, cf),
        })
        .collect()
}

/// One quarantined row: its source file and reason only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineFact {
    /// Source file id.
    pub file_id: String,
    /// Reason code (docs/quarantine.md).
    pub reason: String,
}

/// Everything the report is built from.
pub struct Input<'a> {
    /// The archive's manifest.
    pub manifest: &'a Manifest,
    /// One fact per archived record (`done` or not).
    pub facts: &'a [Fact],
    /// The quarantined rows.
    pub quarantine: &'a [QuarantineFact],
    /// Reference date of ages (days since 1970-01-01).
    pub as_of: i32,
    /// Suppression threshold.
    pub suppress_below: u64,
    /// Residents of the registry extract by birth date (days, count), from the archive's
    /// encrypted registry summary; `None` for archives written before it existed.
    pub resident_births: Option<&'a [(i32, u64)]>,
}

/// People vaccinated: one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VaccinatedRow {
    /// Vaccine code.
    pub vaccine: String,
    /// Vaccine name (Japanese).
    pub vaccine_name: String,
    /// Stage, if recorded.
    pub stage: Option<String>,
    /// 接種回, if recorded.
    pub dose: Option<i64>,
    /// Calendar year of 接種日.
    pub year: Option<i32>,
    /// Age band at vaccination.
    pub age_band: String,
    /// Distinct people.
    pub people: Count,
}

/// People vaccinated per vaccine (all stages, doses and years).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VaccineTotal {
    /// Vaccine code.
    pub vaccine: String,
    /// Vaccine name.
    pub vaccine_name: String,
    /// Distinct people with at least one dose.
    pub people: Count,
    /// Dose records.
    pub doses: Count,
}

/// 未接種者数 of one routine vaccine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnvaccinatedRow {
    /// Vaccine code.
    pub vaccine: String,
    /// Vaccine name.
    pub vaccine_name: String,
    /// Target ages in years, `[from, to)`.
    pub target_ages: [u32; 2],
    /// Residents known to the archive in the target ages on the reference date.
    pub target_population: Count,
    /// Of them, with at least one dose recorded.
    pub vaccinated: Count,
    /// Of them, with no dose recorded (未接種者数).
    pub unvaccinated: Count,
}

/// A labelled count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Labelled {
    /// Group label (a code, never a value of a record).
    pub label: String,
    /// The count.
    pub count: Count,
}

/// Records by match method and registry status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutcomeRow {
    /// match_method.
    pub method: String,
    /// registry_status.
    pub status: String,
    /// Records.
    pub records: Count,
}

/// The reconciliation section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reconciliation {
    /// Records by method × status (from the decrypted records).
    pub outcomes: Vec<OutcomeRow>,
    /// Records per match method (manifest).
    pub by_method: Vec<Labelled>,
    /// Records per registry status (manifest).
    pub by_status: Vec<Labelled>,
    /// Records per merge status (manifest).
    pub by_merge_status: Vec<Labelled>,
    /// Rows merged into another record.
    pub merged_rows: Count,
    /// Records with conflicting fields.
    pub conflicts: Count,
    /// Conflicting records per field name.
    pub conflicts_by_field: Vec<Labelled>,
    /// Possible matches awaiting review.
    pub awaiting_review: Count,
}

/// Quarantined rows of one source file and reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuarantineRow {
    /// Source file id.
    pub file_id: String,
    /// Reason code.
    pub reason: String,
    /// Rows (or VRS dose groups).
    pub rows: Count,
}

/// The accounting of one source file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountingRow {
    /// Source file id.
    pub file_id: String,
    /// Layout kind.
    pub kind: String,
    /// Rows read.
    pub rows_read: Count,
    /// Records produced.
    pub records: Count,
    /// Records archived.
    pub archived: Count,
    /// Records merged into another.
    pub merged: Count,
    /// Rows and dose groups quarantined.
    pub quarantined: Count,
    /// Person rows loaded.
    pub persons: Count,
    /// The accounting identities hold.
    pub balanced: bool,
}

/// Records that expire in one year, per retention class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetentionRow {
    /// Expiry year, or `open` (held indefinitely).
    pub expiry: String,
    /// Retention class.
    pub retention_class: String,
    /// Partitions.
    pub partitions: u64,
    /// Records.
    pub records: Count,
    /// Against the report's as-of date: `past` (the expiry year is over: every record's
    /// retention under the migration rules has run out, a purge is due), `this_year` (some
    /// may have), `future`, or `open`.
    pub status: &'static str,
}

/// [`RetentionRow::status`] of an expiry year on a date's year (pure).
pub fn retention_status(expiry: &str, as_of_year: i32) -> &'static str {
    match expiry.parse::<i32>() {
        Ok(y) if y < as_of_year => "past",
        Ok(y) if y == as_of_year => "this_year",
        Ok(_) => "future",
        Err(_) => "open",
    }
}

/// Archive-wide figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Totals {
    /// Rows read over all sources.
    pub rows_read: Count,
    /// Records archived.
    pub records: Count,
    /// Distinct people in the archive.
    pub people: Count,
    /// Records merged.
    pub merged: Count,
    /// Rows and dose groups quarantined.
    pub quarantined: Count,
    /// Rows of the registry extract(s) read at migration.
    pub registry_rows: Count,
    /// Records in partitions whose expiry year is over on the as-of date (retention run
    /// out under the migration rules; legal holds are applied by purge): a purge is due.
    pub past_retention: Count,
}

/// The report: aggregates only.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Archive id.
    pub archive_id: String,
    /// Manifest generation.
    pub generation: u64,
    /// Municipality code.
    pub municipality_code: String,
    /// Manifest time.
    pub archive_created: String,
    /// Reference date of ages (YYYY-MM-DD).
    pub as_of: String,
    /// Threshold below which counts are withheld.
    pub suppress_below: u64,
    /// The archive was made from synthetic sources (its pipeline says `synthetic = true`):
    /// every rendering carries a banner.
    pub synthetic: bool,
    /// Archive-wide figures.
    pub totals: Totals,
    /// People vaccinated per vaccine.
    pub vaccine_totals: Vec<VaccineTotal>,
    /// People vaccinated per vaccine, stage, dose, year, age band.
    pub vaccinated: Vec<VaccinatedRow>,
    /// 未接種者数 for the routine schedule.
    pub unvaccinated: Vec<UnvaccinatedRow>,
    /// Whom 未接種者数 counts: `registry_extract` (every resident of the registry extract
    /// used at migration, from the archive's registry summary) or `residents_with_records`
    /// (archives without the summary: residents with at least one archived record).
    pub unvaccinated_population: String,
    /// Reconciliation.
    pub reconciliation: Reconciliation,
    /// Quarantine by file and reason.
    pub quarantine: Vec<QuarantineRow>,
    /// Quarantine by reason.
    pub quarantine_by_reason: Vec<Labelled>,
    /// Accounting per source file.
    pub accounting: Vec<AccountingRow>,
    /// Records expiring per year.
    pub retention: Vec<RetentionRow>,
    /// What the report does not cover.
    pub limitations: Vec<String>,
}

/// A report failure (a polars error; no values).
#[derive(Debug, thiserror::Error)]
#[error("report aggregation failed: {0}")]
pub struct ReportError(String);

impl From<PolarsError> for ReportError {
    fn from(e: PolarsError) -> Self {
        ReportError(e.to_string())
    }
}

/// Age in whole years on `on` of someone born on `birth` (days since 1970-01-01).
pub fn age_on(birth: i32, on: i32) -> i32 {
    let (by, bm, bd) = civil_from_days(birth);
    let (y, m, d) = civil_from_days(on);
    y - by - i32::from((m, d) < (bm, bd))
}

/// The age band of an age at vaccination.
pub fn age_band(age: Option<i32>) -> &'static str {
    match age {
        None => "unknown",
        Some(a) if a < 1 => "0",
        Some(1..=5) => "1-5",
        Some(6..=12) => "6-12",
        Some(13..=19) => "13-19",
        Some(20..=64) => "20-64",
        Some(65..=74) => "65-74",
        Some(_) => "75+",
    }
}

/// Order of the age bands in tables.
pub const AGE_BANDS: &[&str] = &[
    "0", "1-5", "6-12", "13-19", "20-64", "65-74", "75+", "unknown",
];

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn date_text(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of the date part of an RFC 3339 time or `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<i32> {
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    crate::record::days_from_civil(y, m, d)
}

fn u64_column(df: &DataFrame, name: &str) -> Result<Vec<u64>, ReportError> {
    let c = df.column(name)?.cast(&DataType::UInt64)?;
    Ok(c.u64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

fn str_column(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>, ReportError> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

fn labelled(map: impl IntoIterator<Item = (String, u64)>, below: u64) -> Vec<Labelled> {
    map.into_iter()
        .map(|(label, n)| Labelled {
            label,
            count: Count::new(n, below),
        })
        .collect()
}

/// The statistics of the manifest's `reconciliation` object that the report shows.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ManifestStats {
    by_method: BTreeMap<String, u64>,
    by_status: BTreeMap<String, u64>,
    by_merge_status: BTreeMap<String, u64>,
    merged_rows: u64,
    conflicts: u64,
    review: u64,
}

/// Build the report (pure).
pub fn build(input: &Input<'_>) -> Result<Report, ReportError> {
    let below = input.suppress_below.max(1);
    let c = |n: u64| Count::new(n, below);
    let m = input.manifest;
    let tables = Tables::embedded();
    let name_of = |code: &str| {
        tables
            .vaccine(code)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| code.to_string())
    };
    let done: Vec<&Fact> = input.facts.iter().filter(|f| f.done).collect();

    // People vaccinated by vaccine, stage, dose, year, age band (polars group-by).
    let n = done.len();
    let df = DataFrame::new(
        n,
        vec![
            Column::new(
                "vaccine".into(),
                done.iter()
                    .map(|f| f.vaccine_code.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "stage".into(),
                done.iter().map(|f| f.stage.as_deref()).collect::<Vec<_>>(),
            ),
            Column::new(
                "dose".into(),
                done.iter().map(|f| f.dose).collect::<Vec<_>>(),
            ),
            Column::new(
                "year".into(),
                done.iter()
                    .map(|f| f.vaccination_date.map(|d| civil_from_days(d).0))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "band".into(),
                done.iter()
                    .map(|f| {
                        age_band(
                            f.birth_date
                                .zip(f.vaccination_date)
                                .map(|(b, v)| age_on(b, v)),
                        )
                    })
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "person".into(),
                done.iter().map(|f| f.person.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let grouped = df
        .clone()
        .lazy()
        .group_by([
            col("vaccine"),
            col("stage"),
            col("dose"),
            col("year"),
            col("band"),
        ])
        .agg([col("person").n_unique().alias("people")])
        .collect()?;
    let vaccines = str_column(&grouped, "vaccine")?;
    let stages = str_column(&grouped, "stage")?;
    let doses: Vec<Option<i64>> = grouped
        .column("dose")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect();
    let years: Vec<Option<i32>> = grouped
        .column("year")?
        .cast(&DataType::Int32)?
        .i32()?
        .iter()
        .collect();
    let bands = str_column(&grouped, "band")?;
    let people = u64_column(&grouped, "people")?;
    let band_rank = |b: &str| {
        AGE_BANDS
            .iter()
            .position(|x| *x == b)
            .unwrap_or(AGE_BANDS.len())
    };
    let mut vaccinated: Vec<(usize, VaccinatedRow)> = (0..grouped.height())
        .map(|i| {
            let code = vaccines[i].clone().unwrap_or_default();
            let band = bands[i].clone().unwrap_or_default();
            (
                band_rank(&band),
                VaccinatedRow {
                    vaccine_name: name_of(&code),
                    vaccine: code,
                    stage: stages[i].clone(),
                    dose: doses[i],
                    year: years[i],
                    age_band: band,
                    people: c(people[i]),
                },
            )
        })
        .collect();
    let vaccine_rank = |code: &str| {
        tables
            .vaccines()
            .iter()
            .position(|v| v.code == code)
            .unwrap_or(usize::MAX)
    };
    vaccinated.sort_by(|(ra, a), (rb, b)| {
        (
            vaccine_rank(&a.vaccine),
            &a.vaccine,
            &a.stage,
            a.dose,
            a.year,
            ra,
        )
            .cmp(&(
                vaccine_rank(&b.vaccine),
                &b.vaccine,
                &b.stage,
                b.dose,
                b.year,
                rb,
            ))
    });
    let vaccinated: Vec<VaccinatedRow> = vaccinated.into_iter().map(|(_, r)| r).collect();

    // Per vaccine: people and doses.
    let per_vaccine = df
        .lazy()
        .group_by([col("vaccine")])
        .agg([
            col("person").n_unique().alias("people"),
            len().alias("doses"),
        ])
        .collect()?;
    let pv_codes = str_column(&per_vaccine, "vaccine")?;
    let pv_people = u64_column(&per_vaccine, "people")?;
    let pv_doses = u64_column(&per_vaccine, "doses")?;
    let mut vaccine_totals: Vec<VaccineTotal> = (0..per_vaccine.height())
        .map(|i| {
            let code = pv_codes[i].clone().unwrap_or_default();
            VaccineTotal {
                vaccine_name: name_of(&code),
                vaccine: code,
                people: c(pv_people[i]),
                doses: c(pv_doses[i]),
            }
        })
        .collect();
    vaccine_totals.sort_by(|a, b| {
        (vaccine_rank(&a.vaccine), &a.vaccine).cmp(&(vaccine_rank(&b.vaccine), &b.vaccine))
    });

    // 未接種者数: residents known to the archive in the target ages on the reference date.
    let mut birth: HashMap<&str, i32> = HashMap::new();
    let mut residents: HashSet<&str> = HashSet::new();
    for f in input.facts {
        if let Some(b) = f.birth_date {
            birth.entry(f.person.as_str()).or_insert(b);
        }
        if f.registry_status == "resident" {
            residents.insert(f.person.as_str());
        }
    }
    let mut has_dose: HashSet<(&str, &str)> = HashSet::new();
    for f in &done {
        has_dose.insert((f.person.as_str(), f.vaccine_code.as_str()));
    }
    let unvaccinated = tables
        .vaccines()
        .iter()
        .filter(|v| v.category == "routine_a" && v.target_ages[1] > v.target_ages[0])
        .map(|v| {
            let (from, to) = (v.target_ages[0] as i32, v.target_ages[1] as i32);
            let mut target = 0u64;
            let mut with = 0u64;
            for p in &residents {
                let Some(&b) = birth.get(p) else { continue };
                let age = age_on(b, input.as_of);
                if age >= from && age < to {
                    target += 1;
                    if has_dose.contains(&(*p, v.code.as_str())) {
                        with += 1;
                    }
                }
            }
            // With the registry summary the target population is every resident of the
            // registry extract in the target ages, recorded or not.
            if let Some(births) = input.resident_births {
                target = births
                    .iter()
                    .filter(|(b, _)| {
                        let age = age_on(*b, input.as_of);
                        age >= from && age < to
                    })
                    .map(|(_, n)| n)
                    .sum::<u64>()
                    .max(with);
            }
            // vaccinated + unvaccinated = target: with the target shown, withholding one
            // of the two withholds the other too, or it would give the first away.
            let (mut vaccinated, mut unvaccinated) = (c(with), c(target - with));
            if c(target).value.is_some() && (vaccinated.suppressed || unvaccinated.suppressed) {
                vaccinated = Count::withheld();
                unvaccinated = Count::withheld();
            }
            UnvaccinatedRow {
                vaccine: v.code.clone(),
                vaccine_name: v.name.clone(),
                target_ages: v.target_ages,
                target_population: c(target),
                vaccinated,
                unvaccinated,
            }
        })
        .collect();

    // Reconciliation outcomes: method × status over every archived record (polars).
    let all = input.facts;
    let outcome_df = DataFrame::new(
        all.len(),
        vec![
            Column::new(
                "method".into(),
                all.iter()
                    .map(|f| f.match_method.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                all.iter()
                    .map(|f| f.registry_status.as_str())
                    .collect::<Vec<_>>(),
            ),
        ],
    )?
    .lazy()
    .group_by([col("method"), col("status")])
    .agg([len().alias("records")])
    .sort(["method", "status"], SortMultipleOptions::default())
    .collect()?;
    let methods = str_column(&outcome_df, "method")?;
    let statuses = str_column(&outcome_df, "status")?;
    let counts = u64_column(&outcome_df, "records")?;
    let outcomes = (0..outcome_df.height())
        .map(|i| OutcomeRow {
            method: methods[i].clone().unwrap_or_default(),
            status: statuses[i].clone().unwrap_or_default(),
            records: c(counts[i]),
        })
        .collect();
    let mut conflicts_by_field: BTreeMap<String, u64> = BTreeMap::new();
    for f in all {
        if let Some(cf) = &f.conflicts {
            let fields: BTreeSet<&str> = cf
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for field in fields {
                *conflicts_by_field.entry(field.to_string()).or_default() += 1;
            }
        }
    }
    let stats: ManifestStats = serde_json::from_value(m.reconciliation.clone()).unwrap_or_default();
    let reconciliation = Reconciliation {
        outcomes,
        by_method: labelled(stats.by_method, below),
        by_status: labelled(stats.by_status, below),
        by_merge_status: labelled(stats.by_merge_status, below),
        merged_rows: c(stats.merged_rows),
        conflicts: c(stats.conflicts),
        conflicts_by_field: labelled(conflicts_by_field, below),
        awaiting_review: c(m.totals.review.max(stats.review)),
    };

    // Quarantine by file and reason (polars).
    let q = input.quarantine;
    let qdf = DataFrame::new(
        q.len(),
        vec![
            Column::new(
                "file".into(),
                q.iter().map(|x| x.file_id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                q.iter().map(|x| x.reason.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )?
    .lazy()
    .group_by([col("file"), col("reason")])
    .agg([len().alias("rows")])
    .sort(["file", "reason"], SortMultipleOptions::default())
    .collect()?;
    let qf = str_column(&qdf, "file")?;
    let qr = str_column(&qdf, "reason")?;
    let qn = u64_column(&qdf, "rows")?;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let quarantine = (0..qdf.height())
        .map(|i| {
            let reason = qr[i].clone().unwrap_or_default();
            *by_reason.entry(reason.clone()).or_default() += qn[i];
            QuarantineRow {
                file_id: qf[i].clone().unwrap_or_default(),
                reason,
                rows: Count::exact(qn[i]),
            }
        })
        .collect();

    let accounting = m
        .accounting
        .iter()
        .map(|a| AccountingRow {
            file_id: a.file_id.clone(),
            kind: a.kind.clone(),
            rows_read: Count::exact(a.rows_read),
            records: Count::exact(a.records),
            archived: Count::exact(a.records_archived),
            merged: Count::exact(a.records_merged),
            quarantined: Count::exact(a.rows_quarantined + a.dose_groups_quarantined),
            persons: Count::exact(a.persons),
            balanced: a.balanced(),
        })
        .collect();

    // Retention outlook from the partitions.
    let mut retention: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for p in &m.partitions {
        let e = retention
            .entry((p.expiry.clone(), p.retention_class.clone()))
            .or_default();
        e.0 += 1;
        e.1 += p.rows;
    }
    let as_of_year = crate::record::civil_from_days(input.as_of).0;
    let past_retention: u64 = retention
        .iter()
        .filter(|((expiry, _), _)| retention_status(expiry, as_of_year) == "past")
        .map(|(_, (_, rows))| rows)
        .sum();
    let retention = retention
        .into_iter()
        .map(
            |((expiry, retention_class), (partitions, rows))| RetentionRow {
                status: retention_status(&expiry, as_of_year),
                expiry,
                retention_class,
                partitions,
                records: c(rows),
            },
        )
        .collect();

    let people: HashSet<&str> = input.facts.iter().map(|f| f.person.as_str()).collect();
    let registry_rows = m
        .accounting
        .iter()
        .filter(|a| a.kind.contains("registry"))
        .map(|a| a.rows_read)
        .sum();
    Ok(Report {
        archive_id: m.archive_id.clone(),
        generation: m.generation,
        municipality_code: m.municipality_code.clone(),
        archive_created: m.created.clone(),
        as_of: date_text(input.as_of),
        suppress_below: below,
        synthetic: toml::from_str::<crate::pipeline::PipelineFile>(&m.pipeline_toml)
            .is_ok_and(|p| p.synthetic),
        totals: Totals {
            rows_read: Count::exact(m.totals.rows_read),
            records: Count::exact(input.facts.len() as u64),
            people: c(people.len() as u64),
            merged: Count::exact(m.totals.merged),
            quarantined: Count::exact(m.totals.quarantined),
            registry_rows: Count::exact(registry_rows),
            past_retention: c(past_retention),
        },
        vaccine_totals,
        vaccinated,
        unvaccinated,
        unvaccinated_population: if input.resident_births.is_some() {
            "registry_extract"
        } else {
            "residents_with_records"
        }
        .to_string(),
        reconciliation,
        quarantine,
        quarantine_by_reason: by_reason
            .into_iter()
            .map(|(label, n)| Labelled {
                label,
                count: Count::exact(n),
            })
            .collect(),
        accounting,
        retention,
        limitations: LIMITATIONS.iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests;
