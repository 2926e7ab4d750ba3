//! Field normalisers (see issue 3). TEMPORARY STUB on main: replaced by the
//! `normalise` branch.
use crate::record::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind { Date, Text }
impl std::str::FromStr for Kind {
    type Err = ();
    fn from_str(s: &str) -> Result<Kind, ()> { match s { "date" => Ok(Kind::Date), _ => Ok(Kind::Text) } }
}
pub struct Tables;
impl Tables { pub fn embedded() -> &'static Tables { &Tables } }
pub struct Normalised { pub value: Value, pub flag: Option<Flag> }
#[derive(Clone, Copy, Debug)]
pub enum Flag { EraAfterEnd }
impl Flag { pub fn as_str(&self) -> &'static str { "era_after_end" } }
#[derive(Clone, Copy, Debug)]
pub enum Reject { Unparseable }
impl Reject { pub fn as_str(&self) -> &'static str { "unparseable_date" } }
pub fn normalise(_kind: Kind, raw: &str, _t: &Tables) -> Result<Normalised, Reject> {
    Ok(Normalised { value: if raw.trim().is_empty() { Value::Null } else { Value::Str(raw.to_string()) }, flag: None })
}
pub struct VaccineInfo { pub code: String, pub category: String }
impl Tables { pub fn vaccine(&self, _c: &str) -> Option<&VaccineInfo> { None } }
pub fn kana_key(s: &str) -> String { s.replace([' ', '\u{3000}'], "") }
