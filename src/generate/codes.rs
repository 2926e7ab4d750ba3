//! Vaccine and manufacturer aliases, read from the crate's code tables at compile time so
//! the generator only writes spellings the normaliser can map.

use serde::Deserialize;

#[derive(Deserialize)]
struct Vaccines {
    vaccine: Vec<VaccineEntry>,
}
#[derive(Deserialize)]
struct VaccineEntry {
    code: String,
    aliases: Vec<String>,
}
#[derive(Deserialize)]
struct Makers {
    manufacturer: Vec<MakerEntry>,
}
#[derive(Deserialize)]
struct MakerEntry {
    code: String,
    aliases: Vec<String>,
}

/// Aliases per code.
pub struct Codes {
    vaccines: Vec<(String, Vec<String>)>,
    makers: Vec<(String, Vec<String>)>,
}

/// True if every character of `s` can be written in CP932 (encoding_rs Shift_JIS encoder).
pub fn cp932_ok(s: &str) -> bool {
    !encoding_rs::SHIFT_JIS.encode(s).2
}

impl Codes {
    /// Aliases of a vaccine code (all, or only the CP932-encodable ones).
    pub fn vaccine_aliases(&self, code: &str, cp932: bool) -> Vec<String> {
        pick(&self.vaccines, code, cp932)
    }
    /// Aliases of a manufacturer code.
    pub fn maker_aliases(&self, code: &str, cp932: bool) -> Vec<String> {
        pick(&self.makers, code, cp932)
    }
}

fn pick(table: &[(String, Vec<String>)], code: &str, cp932: bool) -> Vec<String> {
    let v: Vec<String> = table
        .iter()
        .find(|(c, _)| c == code)
        .map(|(_, a)| a.clone())
        .unwrap_or_else(|| panic!("code {code} missing from the code tables"))
        .into_iter()
        .filter(|a| !cp932 || cp932_ok(a))
        .collect();
    assert!(!v.is_empty(), "no usable alias for {code}");
    v
}

/// The parsed tables (once).
pub fn codes() -> &'static Codes {
    static C: std::sync::OnceLock<Codes> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let v: Vaccines = toml::from_str(include_str!("../../schemas/codes/vaccines.toml"))
            .expect("schemas/codes/vaccines.toml");
        let m: Makers = toml::from_str(include_str!("../../schemas/codes/manufacturers.toml"))
            .expect("schemas/codes/manufacturers.toml");
        Codes {
            vaccines: v.vaccine.into_iter().map(|e| (e.code, e.aliases)).collect(),
            makers: m
                .manufacturer
                .into_iter()
                .map(|e| (e.code, e.aliases))
                .collect(),
        }
    })
}
