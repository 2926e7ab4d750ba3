//! The population and its vaccinations: pure functions of (seed, person index).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::Config;
use super::dates::kojin_bango;
use super::names::{pools, NameEntry};
use crate::record::days_from_civil;

/// Ledger files / vaccines, in file order.
pub const VACCINES: [&str; 8] = [
    "BCG",
    "DPT-IPV",
    "MR",
    "JE",
    "HPV",
    "FLU-ELDERLY",
    "PPSV23",
    "COVID19",
];
pub const V_BCG: usize = 0;
pub const V_DPT: usize = 1;
pub const V_MR: usize = 2;
pub const V_JE: usize = 3;
pub const V_HPV: usize = 4;
pub const V_FLU: usize = 5;
pub const V_PPSV: usize = 6;
pub const V_COVID: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Resident,
    MovedOut,
    Deceased,
    NonResident,
}

impl Status {
    pub fn canonical(self) -> &'static str {
        match self {
            Status::Resident => "resident",
            Status::MovedOut => "moved_out",
            Status::Deceased => "deceased",
            Status::NonResident => "non_resident",
        }
    }
}

/// One true dose.
#[derive(Clone, Debug)]
pub struct Dose {
    pub vaccine: usize,
    /// Canonical stage (stages.toml) or None.
    pub stage: Option<&'static str>,
    /// Dose number within the stage / series, or None.
    pub number: Option<u8>,
    pub date: i32,
    pub maker: &'static str,
    pub lot: String,
    /// COVID: recorded in VRS.
    pub in_vrs: bool,
    /// Recorded in the ledger (always for routine doses).
    pub in_ledger: bool,
    /// COVID doses in both: the ledger copy's date and lot (differ when in conflict).
    pub ledger_date: i32,
    pub ledger_lot: String,
    pub conflict: bool,
}

/// One synthetic person.
#[derive(Clone, Debug)]
pub struct Person {
    pub idx: u64,
    pub atena: u64,
    pub integrated: Option<u64>,
    pub kojin: Option<String>,
    pub family: &'static NameEntry,
    /// The registry's spelling of the family name.
    pub family_kanji: &'static str,
    pub given: &'static NameEntry,
    pub male: bool,
    pub birth: i32,
    pub postal: String,
    pub address: String,
    pub phone: String,
    pub in_registry: bool,
    pub status: Option<Status>,
    pub status_date: Option<i32>,
    pub ticket: u64,
    /// Registered in VRS without any dose (接種状況 未実施).
    pub vrs_no_dose: bool,
    pub doses: Vec<Dose>,
}

impl Person {
    pub fn person_id(&self) -> String {
        format!("P{:07}", self.idx + 1)
    }
    pub fn given_kanji(&self) -> &'static str {
        self.given.kanji[0]
    }
    /// Has a row in vrs-persons.
    pub fn in_vrs(&self) -> bool {
        self.vrs_no_dose || self.doses.iter().any(|d| d.in_vrs)
    }
}

/// Constants derived from the seed (number offsets).
#[derive(Clone, Debug)]
pub struct SeedMix {
    pub atena_off: u64,
    pub integ_off: u64,
    pub kojin_off: u64,
    pub ticket_off: u64,
}

impl SeedMix {
    pub fn new(seed: u64) -> SeedMix {
        let h = blake3::hash(&[b"vaxarc-gen-mix".as_slice(), &seed.to_le_bytes()].concat());
        let b = h.as_bytes();
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        SeedMix {
            atena_off: w(0),
            integ_off: w(1),
            kojin_off: w(2),
            ticket_off: w(3),
        }
    }
}

/// The per-person RNG: ChaCha8 seeded with blake3(tag, seed, index).
pub fn person_rng(seed: u64, idx: u64, tag: &[u8]) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"vaxarc-gen-person");
    h.update(tag);
    h.update(&seed.to_le_bytes());
    h.update(&idx.to_le_bytes());
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}

/// An RNG for a named file-level decision.
pub fn named_rng(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"vaxarc-gen-named");
    h.update(&seed.to_le_bytes());
    h.update(name.as_bytes());
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}

pub fn ymd(y: i32, m: u8, d: u8) -> i32 {
    days_from_civil(y, m, d).expect("valid constant date")
}

/// The reference date (VRS freeze).
pub fn reference() -> i32 {
    ymd(2024, 9, 30)
}

/// Age in whole years on `on` for a person born `birth`.
pub fn age_on(birth: i32, on: i32) -> i32 {
    let (by, bm, bd) = crate::record::civil_from_days(birth);
    let (y, m, d) = crate::record::civil_from_days(on);
    let mut a = y - by;
    if (m, d) < (bm, bd) {
        a -= 1;
    }
    a
}

/// The day `years` after `birth` (birthdays on 29 Feb fall on 1 Mar).
pub fn add_years(birth: i32, years: i32) -> i32 {
    let (y, m, d) = crate::record::civil_from_days(birth);
    days_from_civil(y + years, m, d).unwrap_or_else(|| ymd(y + years, 3, 1))
}

/// Age pyramid, 5-year bands from 0 (share in ‰), Tokyo-ward shaped; band 21 = 105.
const PYRAMID: [f64; 22] = [
    38.0, 36.0, 33.0, 36.0, 62.0, 82.0, 80.0, 75.0, 74.0, 84.0, 86.0, 70.0, 55.0, 46.0, 50.0, 43.0,
    32.0, 20.0, 9.0, 3.0, 0.6, 0.05,
];

fn sample_age(rng: &mut ChaCha8Rng) -> i32 {
    let total: f64 = PYRAMID.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in PYRAMID.iter().enumerate() {
        if u < *w {
            return if i == 21 {
                105
            } else {
                i as i32 * 5 + rng.random_range(0..5)
            };
        }
        u -= w;
    }
    40
}

/// Share of people aged 60+ under the pyramid.
fn old_share() -> f64 {
    let total: f64 = PYRAMID.iter().sum();
    PYRAMID[12..].iter().sum::<f64>() / total
}

const TOWNS: [&str; 24] = [
    "北品川",
    "東品川",
    "西品川",
    "南品川",
    "上大崎",
    "大崎",
    "東五反田",
    "西五反田",
    "大井",
    "東大井",
    "西大井",
    "南大井",
    "広町",
    "二葉",
    "豊町",
    "戸越",
    "平塚",
    "荏原",
    "中延",
    "東中延",
    "西中延",
    "旗の台",
    "小山",
    "八潮",
];

/// Generate person `idx`.
pub fn person(config: &Config, mix: &SeedMix, idx: u64) -> Person {
    let d = &config.dirt;
    let mut rng = person_rng(config.seed, idx, b"person");
    let pools = pools();
    let male = rng.random_bool(0.48);
    let age = sample_age(&mut rng);
    let reference = reference();
    // born in the year before the `age`-th birthday preceding the reference date
    let birth = add_years(reference, -age) - rng.random_range(0..365);
    let family = &pools.family[rng.random_range(0..pools.family.len())];
    let family_kanji = if family.kanji.len() > 1 && rng.random_bool(0.3) {
        family.kanji[rng.random_range(1..family.kanji.len())]
    } else {
        family.kanji[0]
    };
    let given_pool = if male { &pools.male } else { &pools.female };
    let given = &given_pool[rng.random_range(0..given_pool.len())];

    let in_registry = !rng.random_bool(d.not_in_registry);
    // numbers: bijective scrambles of the index, so unique
    let atena = if in_registry {
        1_000_000 + (idx.wrapping_mul(48_271) + mix.atena_off % 99_000_000) % 99_000_000
    } else {
        100_000_000 + (idx.wrapping_mul(7_919) + mix.atena_off % 900_000_000) % 900_000_000
    };
    let integrated = rng.random_bool(d.has_integrated_atena).then(|| {
        8_000_000_000
            + (idx.wrapping_mul(7_654_321) + mix.integ_off % 1_000_000_000) % 1_000_000_000
    });
    let kojin = rng.random_bool(d.has_kojin_bango).then(|| {
        kojin_bango(
            10_000_000_000
                + (idx.wrapping_mul(7_654_321) + mix.kojin_off % 90_000_000_000) % 90_000_000_000,
        )
    });
    let ticket = 1_000_000_000
        + (idx.wrapping_mul(7_654_321) + mix.ticket_off % 9_000_000_000) % 9_000_000_000;

    let town = TOWNS[rng.random_range(0..TOWNS.len())];
    let address = format!(
        "東京都品川区{}{}丁目{}番{}号",
        town,
        rng.random_range(1..7),
        rng.random_range(1..30),
        rng.random_range(1..25)
    );
    let postal = format!("140-{:04}", rng.random_range(1..10000));
    let phone = if rng.random_bool(0.6) {
        format!(
            "03-{:04}-{:04}",
            rng.random_range(3000..8000),
            rng.random_range(0..10000)
        )
    } else {
        format!(
            "0{}0-{:04}-{:04}",
            [7, 8, 9][rng.random_range(0..3)],
            rng.random_range(1000..10000),
            rng.random_range(0..10000)
        )
    };

    let (status, status_date) = if in_registry {
        let old = age >= 60;
        let f = old_share();
        // deaths are age-weighted (3:0.3) but average to the configured rate
        let w = if old { 3.0 } else { 0.3 };
        let p_dec = (d.deceased * w / (3.0 * f + 0.3 * (1.0 - f))).min(1.0);
        let u: f64 = rng.random();
        let lo = ymd(2015, 1, 1).max(birth + 1);
        if u < d.moved_out && lo < reference {
            (Status::MovedOut, Some(rng.random_range(lo..=reference)))
        } else if u >= d.moved_out && u < d.moved_out + p_dec {
            let hi = ymd(2026, 10, 31);
            (Status::Deceased, Some(rng.random_range(lo..=hi)))
        } else if u >= d.moved_out + p_dec && u < d.moved_out + p_dec + d.non_resident {
            (Status::NonResident, None)
        } else {
            (Status::Resident, None)
        }
    } else {
        (Status::Resident, None)
    };
    let status = in_registry.then_some(status);
    let end = match (status, status_date) {
        (Some(Status::MovedOut | Status::Deceased), Some(sd)) => sd.min(reference),
        _ => reference,
    };

    let mut p = Person {
        idx,
        atena,
        integrated,
        kojin,
        family,
        family_kanji,
        given,
        male,
        birth,
        postal,
        address,
        phone,
        in_registry,
        status,
        status_date,
        ticket,
        vrs_no_dose: false,
        doses: Vec::new(),
    };
    let mut vrng = person_rng(config.seed, idx, b"doses");
    routine(&mut p, &mut vrng, end);
    covid(&mut p, config, &mut vrng, end);
    p
}

#[allow(clippy::too_many_arguments)]
fn push(
    p: &mut Person,
    v: usize,
    stage: Option<&'static str>,
    number: Option<u8>,
    date: i32,
    maker: &'static str,
    lot: String,
    lo: i32,
    hi: i32,
) {
    if date < lo || date > hi {
        return;
    }
    p.doses.push(Dose {
        vaccine: v,
        stage,
        number,
        date,
        maker,
        ledger_lot: lot.clone(),
        lot,
        in_vrs: false,
        in_ledger: true,
        ledger_date: date,
        conflict: false,
    });
}

/// A routine lot: prefix + digits, shared by everyone vaccinated in the same half-year.
fn routine_lot(v: usize, date: i32, k: u64) -> String {
    let prefix = ["KH", "4K", "MR", "JR", "S0", "HA", "W0"][v];
    let period = (date.max(0) / 182) as u64;
    format!(
        "{prefix}{:03}",
        mix64(period * 31 + v as u64 * 1_000_003 + k) % 1000
    )
}

pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn routine(p: &mut Person, rng: &mut ChaCha8Rng, end: i32) {
    let lo = ymd(2015, 1, 1);
    let b = p.birth;
    let pick =
        |rng: &mut ChaCha8Rng, makers: &[&'static str]| makers[rng.random_range(0..makers.len())];
    // BCG
    if rng.random_bool(0.97) {
        let d = b + rng.random_range(150..330);
        push(
            p,
            V_BCG,
            None,
            Some(1),
            d,
            "JAPAN-BCG",
            routine_lot(V_BCG, d, rng.random_range(0..3)),
            lo,
            end,
        );
    }
    // DPT-IPV: 1期初回 x3, 1期追加
    if rng.random_bool(0.95) {
        let m = pick(rng, &["BIKEN", "KM-BIOLOGICS", "DAIICHI-SANKYO"]);
        let mut d = b + rng.random_range(60..120);
        for n in 1..=3u8 {
            push(
                p,
                V_DPT,
                Some("1期初回"),
                Some(n),
                d,
                m,
                routine_lot(V_DPT, d, rng.random_range(0..3)),
                lo,
                end,
            );
            d += rng.random_range(20..56);
        }
        d += rng.random_range(180..540);
        push(
            p,
            V_DPT,
            Some("1期追加"),
            None,
            d,
            m,
            routine_lot(V_DPT, d, rng.random_range(0..3)),
            lo,
            end,
        );
    }
    // MR 1期, 2期
    let m = pick(rng, &["BIKEN", "TAKEDA", "KM-BIOLOGICS"]);
    if rng.random_bool(0.96) {
        let d = b + rng.random_range(365..450);
        push(
            p,
            V_MR,
            Some("1期"),
            None,
            d,
            m,
            routine_lot(V_MR, d, rng.random_range(0..3)),
            lo,
            end,
        );
    }
    if rng.random_bool(0.93) {
        let d = add_years(b, 5) + rng.random_range(0..365);
        push(
            p,
            V_MR,
            Some("2期"),
            None,
            d,
            m,
            routine_lot(V_MR, d, rng.random_range(0..3)),
            lo,
            end,
        );
    }
    // JE
    if rng.random_bool(0.8) {
        let m = pick(rng, &["BIKEN", "KM-BIOLOGICS"]);
        let mut d = add_years(b, 3) + rng.random_range(0..300);
        push(
            p,
            V_JE,
            Some("1期初回"),
            Some(1),
            d,
            m,
            routine_lot(V_JE, d, rng.random_range(0..3)),
            lo,
            end,
        );
        d += rng.random_range(6..28);
        push(
            p,
            V_JE,
            Some("1期初回"),
            Some(2),
            d,
            m,
            routine_lot(V_JE, d, rng.random_range(0..3)),
            lo,
            end,
        );
        d += rng.random_range(300..420);
        push(
            p,
            V_JE,
            Some("1期追加"),
            None,
            d,
            m,
            routine_lot(V_JE, d, rng.random_range(0..3)),
            lo,
            end,
        );
        if rng.random_bool(0.85) {
            let d = add_years(b, 9) + rng.random_range(0..360);
            push(
                p,
                V_JE,
                Some("2期"),
                None,
                d,
                m,
                routine_lot(V_JE, d, rng.random_range(0..3)),
                lo,
                end,
            );
        }
    }
    // HPV: some girls, 3 doses starting between 12 and 16
    if !p.male && rng.random_bool(0.35) {
        let d1 = add_years(b, rng.random_range(12..17)) + rng.random_range(0..300);
        let ds = [
            d1,
            d1 + rng.random_range(30..60),
            d1 + rng.random_range(180..200),
        ];
        for (i, d) in ds.into_iter().enumerate() {
            push(
                p,
                V_HPV,
                None,
                Some(i as u8 + 1),
                d,
                "MSD",
                routine_lot(V_HPV, d, rng.random_range(0..3)),
                lo,
                end,
            );
        }
    }
    // elderly influenza: seasons 2015..2023, age >= 65
    let propensity = [0.2, 0.6, 0.9][rng.random_range(0..3)];
    for y in 2015..=2023 {
        let d = ymd(y, 10, 1) + rng.random_range(0..90);
        if age_on(b, d) >= 65 && rng.random_bool(propensity) {
            let m = pick(rng, &["BIKEN", "KM-BIOLOGICS", "DENKA", "DAIICHI-SANKYO"]);
            push(
                p,
                V_FLU,
                None,
                Some(1),
                d,
                m,
                routine_lot(V_FLU, d, rng.random_range(0..4)),
                lo,
                end,
            );
        }
    }
    // PPSV23 once at 65+
    if rng.random_bool(0.4) {
        let d = add_years(b, 65) + rng.random_range(0..5 * 365);
        push(
            p,
            V_PPSV,
            None,
            Some(1),
            d,
            "MSD",
            routine_lot(V_PPSV, d, rng.random_range(0..2)),
            lo,
            end,
        );
    }
    p.doses.sort_by_key(|d| d.date);
}

fn covid_lot(maker: &str, date: i32, k: u64) -> String {
    let month = (date - ymd(2021, 2, 1)).max(0) as u64 / 30;
    let h = mix64(month * 131 + k * 7 + maker.len() as u64 * 1_000_003);
    match maker {
        "PFIZER" => {
            const P: [&str; 24] = [
                "EP", "ER", "ET", "EW", "EY", "FA", "FC", "FD", "FE", "FF", "FH", "FJ", "FK", "FL",
                "FM", "FN", "FP", "FR", "GH", "GK", "HA", "HF", "HK", "JA",
            ];
            let i = ((month as usize) * 24 / 40 + (h % 2) as usize).min(23);
            format!("{}{:04}", P[i], h / 7 % 10000)
        }
        "MODERNA" => format!("{:07}", 3_000_000 + h % 100_000),
        "ASTRAZENECA" => format!("ABV{:04}", h % 10000),
        _ => format!("4300{:03}A", h % 1000),
    }
}

fn covid(p: &mut Person, config: &Config, rng: &mut ChaCha8Rng, end: i32) {
    let d = &config.dirt;
    let age = age_on(p.birth, reference());
    if age < 5 {
        return;
    }
    if rng.random_bool(d.vrs_no_dose) {
        p.vrs_no_dose = true;
        return;
    }
    let weights: &[f64] = match age {
        5..=11 => &[0.7, 0.0, 0.2, 0.1],
        12..=19 => &[0.15, 0.0, 0.35, 0.4, 0.1],
        20..=59 => &[0.12, 0.02, 0.2, 0.4, 0.12, 0.1, 0.03, 0.01],
        60..=64 => &[0.08, 0.0, 0.1, 0.25, 0.25, 0.2, 0.08, 0.04],
        _ => &[0.07, 0.0, 0.05, 0.1, 0.13, 0.2, 0.2, 0.25],
    };
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    let mut n = 0;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            n = i;
            break;
        }
        u -= w;
    }
    if n == 0 {
        return;
    }
    let first = if age >= 65 {
        ymd(2021, 4, 12) + rng.random_range(0..110)
    } else if age >= 12 {
        if rng.random_bool(0.04) {
            ymd(2021, 2, 17) + rng.random_range(0..70)
        } else {
            ymd(2021, 6, 1) + rng.random_range(0..150)
        }
    } else {
        ymd(2022, 3, 1) + rng.random_range(0..180)
    };
    let earliest = [
        0,
        0,
        0,
        ymd(2021, 12, 1),
        ymd(2022, 5, 25),
        ymd(2022, 9, 20),
        ymd(2023, 5, 8),
        ymd(2023, 9, 20),
    ];
    let last_day = ymd(2024, 3, 31).min(end);
    let young = age < 12;
    let mut maker = "PFIZER";
    let mut date = first;
    let mut covid_doses = Vec::new();
    #[allow(clippy::needless_range_loop)]
    for k in 1..=n {
        if k == 2 {
            date += rng.random_range(21..35);
        } else if k >= 3 {
            date = (date + rng.random_range(150..220)).max(earliest[k] + rng.random_range(0..60));
        }
        if date > last_day {
            break;
        }
        if date < ymd(2021, 2, 17) {
            continue;
        }
        let u: f64 = rng.random();
        maker = if young {
            "PFIZER"
        } else if k == 1 {
            if u < 0.80 {
                "PFIZER"
            } else if u < 0.97 {
                "MODERNA"
            } else if u < 0.99 {
                "ASTRAZENECA"
            } else {
                "NOVAVAX"
            }
        } else if k == 2 && u < 0.95 {
            maker
        } else if u < 0.55 {
            "PFIZER"
        } else if u < 0.98 {
            "MODERNA"
        } else {
            "NOVAVAX"
        };
        let lot = covid_lot(maker, date, rng.random_range(0..4));
        covid_doses.push(Dose {
            vaccine: V_COVID,
            stage: None,
            number: Some(k as u8),
            date,
            maker,
            ledger_lot: lot.clone(),
            lot,
            in_vrs: true,
            in_ledger: false,
            ledger_date: date,
            conflict: false,
        });
    }
    if covid_doses.is_empty() {
        return;
    }
    // the last dose recorded only in the ledger
    if rng.random_bool(d.covid_ledger_only) {
        let last = covid_doses.last_mut().unwrap();
        last.in_vrs = false;
        last.in_ledger = true;
    }
    for dose in covid_doses.iter_mut().filter(|x| x.in_vrs) {
        if rng.random_bool(d.covid_in_ledger) {
            dose.in_ledger = true;
            if rng.random_bool(d.covid_conflict) {
                dose.conflict = true;
                if rng.random_bool(0.5) {
                    dose.ledger_date = dose.date + [-2, -1, 1, 2, 3, 7][rng.random_range(0..6)];
                } else {
                    // one character of the lot differs
                    let mut chars: Vec<char> = dose.lot.chars().collect();
                    let i = chars.len() - 1 - rng.random_range(0..2);
                    chars[i] = if chars[i] == '1' { '7' } else { '1' };
                    dose.ledger_lot = chars.into_iter().collect();
                }
            }
        }
    }
    p.doses.extend(covid_doses);
}
