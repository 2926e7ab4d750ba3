//! Remembered results of the normalisers for the kinds whose raw values repeat from row
//! to row: vaccine names, manufacturers, lots, codes, dates. A source of a million rows
//! holds a few thousand distinct values of each; normalising each only once saves the
//! Unicode normalisation and table matching of the rest (docs/performance.md).
//!
//! Exact by construction: every normaliser is a pure function of the kind, the raw text
//! and the code tables, and a memo serves one set of tables (the caller keeps one memo
//! per [`Tables`] it normalises with).

use std::collections::HashMap;

use super::{normalise, Kind, Normalised, Reject, Tables};

/// Distinct raw values remembered per kind; past this the kind's memo starts again (a
/// column with more distinct values than this gains little from remembering).
const CAP: usize = 4096;

type Map = HashMap<Box<str>, Result<Normalised, Reject>, foldhash::fast::FixedState>;

/// Results of [`normalise`] by kind and raw text, for the repeating kinds.
#[derive(Default)]
pub struct Memo {
    maps: Vec<Map>,
}

impl Memo {
    /// [`normalise`], answered from memory when this raw text of this kind was normalised
    /// before with this memo.
    pub fn normalise(
        &mut self,
        kind: Kind,
        raw: &str,
        tables: &Tables,
    ) -> Result<Normalised, Reject> {
        if !repeats(kind) {
            return normalise(kind, raw, tables);
        }
        self.remembered(kind, raw, tables)
    }

    /// [`normalise`] remembered whatever the kind: for a column whose values repeat by
    /// nature though its kind's do not in general (free text naming a vaccine, an
    /// institution, a doctor: the fields ingest interns).
    pub fn normalise_repeating(
        &mut self,
        kind: Kind,
        raw: &str,
        tables: &Tables,
    ) -> Result<Normalised, Reject> {
        self.remembered(kind, raw, tables)
    }

    fn remembered(&mut self, kind: Kind, raw: &str, tables: &Tables) -> Result<Normalised, Reject> {
        if self.maps.is_empty() {
            self.maps = (0..Kind::ALL.len()).map(|_| Map::default()).collect();
        }
        let map = &mut self.maps[kind as usize];
        if let Some(known) = map.get(raw) {
            return known.clone();
        }
        let result = normalise(kind, raw, tables);
        if map.len() >= CAP {
            map.clear();
        }
        map.insert(raw.into(), result.clone());
        result
    }
}

/// Kinds whose raw values repeat across rows. Names, addresses, numbers that identify a
/// person, free text and timestamps are mostly distinct: remembering them would only
/// cost memory.
fn repeats(kind: Kind) -> bool {
    match kind {
        Kind::Date
        | Kind::Sex
        | Kind::MunicipalityCode
        | Kind::Vaccine
        | Kind::Manufacturer
        | Kind::Stage
        | Kind::DoseNumber
        | Kind::DoseVolume
        | Kind::VaccinationClass
        | Kind::VaccinationStatus
        | Kind::ResidentStatus
        | Kind::Flag
        | Kind::Lot => true,
        Kind::Datetime
        | Kind::DatetimeDate
        | Kind::NameKanji
        | Kind::NameKana
        | Kind::KojinBango
        | Kind::TicketNumber
        | Kind::Atena
        | Kind::PostalCode
        | Kind::Phone
        | Kind::Address
        | Kind::Text
        | Kind::Integer
        | Kind::Romaji
        | Kind::Passport => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Raw values as they come: codes, names of vaccines and manufacturers in full and
    /// half width, dates in several spellings, junk.
    fn raw() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(" ".to_string()),
            "[0-9]{1,8}",
            "[0-9]{4}[/.-][0-9]{1,2}[/.-][0-9]{1,2}",
            "(令和|平成|R|H)[0-9]{1,2}年[0-9]{1,2}月[0-9]{1,2}日",
            "[A-Za-zＡ-Ｚａ-ｚ０-９ー・ 　]{1,12}",
            "(ファイザー|ﾌｧｲｻﾞｰ|モデルナ|Pfizer|コミナティ|BCG|MR|男|女|1|2|済|未)",
            "\\PC{0,10}",
        ]
    }

    proptest! {
        /// Asked twice, or after other values, the memo gives what the normaliser gives.
        #[test]
        fn the_memo_answers_as_the_normaliser(values in prop::collection::vec((0..Kind::ALL.len(), raw()), 1..60)) {
            let tables = Tables::embedded();
            let mut memo = Memo::default();
            for _ in 0..2 {
                for (k, v) in &values {
                    let kind = Kind::ALL[*k];
                    prop_assert_eq!(memo.normalise(kind, v, tables), normalise(kind, v, tables));
                    prop_assert_eq!(memo.normalise_repeating(kind, v, tables), normalise(kind, v, tables));
                }
            }
        }
    }

    #[test]
    fn a_full_memo_starts_again_and_stays_exact() {
        let tables = Tables::embedded();
        let mut memo = Memo::default();
        for i in 0..(CAP * 2 + 10) {
            let v = format!("{}", 20_000_101 + i);
            assert_eq!(
                memo.normalise(Kind::Date, &v, tables),
                normalise(Kind::Date, &v, tables)
            );
        }
        assert!(memo.maps[Kind::Date as usize].len() <= CAP);
        assert_eq!(
            memo.normalise(Kind::Date, "2021/06/15", tables),
            normalise(Kind::Date, "2021/06/15", tables)
        );
    }
}
