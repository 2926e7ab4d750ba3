//! Generator configuration: population size, seed, municipality and the dirt rates.

use serde::{Deserialize, Serialize};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of people (registry persons plus people from elsewhere).
    pub people: usize,
    /// Seed of everything; same config → byte-identical output.
    pub seed: u64,
    /// 6-digit 地方公共団体コード with check digit (品川区 = 131091).
    pub municipality_code: String,
    /// Rates of every kind of dirt.
    pub dirt: Dirt,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            people: 1000,
            seed: 1,
            municipality_code: "131091".into(),
            dirt: Dirt::default(),
        }
    }
}

/// Every rate of dirt, each a probability in [0, 1]. See docs/generator.md for the unit
/// each rate applies to (person, file, row, date, dose group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dirt {
    // ---- population (per person) ----
    pub has_kojin_bango: f64,
    pub has_integrated_atena: f64,
    pub moved_out: f64,
    pub deceased: f64,
    pub non_resident: f64,
    pub not_in_registry: f64,
    // ---- files (per file) ----
    pub registry_cp932: f64,
    pub ledger_cp932: f64,
    pub utf8_bom: f64,
    pub utf8_crlf: f64,
    pub vrs_bom: f64,
    pub ledger_zero_pad_atena: f64,
    pub ledger_hiragana_kana: f64,
    // ---- dates (per date written in a ledger / registry file) ----
    pub wareki_date: f64,
    pub era_after_end: f64,
    pub fullwidth_digits: f64,
    // ---- names (per name written) ----
    pub halfwidth_kana: f64,
    pub name_halfwidth_space: f64,
    pub name_no_space: f64,
    pub variant_kanji: f64,
    pub kana_small_large: f64,
    pub kana_long_vowel: f64,
    pub kana_typo: f64,
    // ---- numbers ----
    pub kojin_missing: f64,
    pub kojin_invalid: f64,
    pub vrs_atena_blank: f64,
    // ---- VRS / COVID ----
    pub vrs_no_dose: f64,
    pub certificate_holder: f64,
    pub former_name: f64,
    pub covid_in_ledger: f64,
    pub covid_conflict: f64,
    pub covid_ledger_only: f64,
    // ---- rows ----
    pub remarks_multiline: f64,
    pub wrong_column_count: f64,
    pub missing_vaccination_date: f64,
    pub impossible_date: f64,
    pub undecodable_bytes: f64,
}

impl Default for Dirt {
    fn default() -> Self {
        Dirt {
            has_kojin_bango: 0.90,
            has_integrated_atena: 0.60,
            moved_out: 0.04,
            deceased: 0.03,
            non_resident: 0.02,
            not_in_registry: 0.01,
            registry_cp932: 0.60,
            ledger_cp932: 0.60,
            utf8_bom: 0.30,
            utf8_crlf: 0.30,
            vrs_bom: 0.50,
            ledger_zero_pad_atena: 0.30,
            ledger_hiragana_kana: 0.05,
            wareki_date: 0.50,
            era_after_end: 0.005,
            fullwidth_digits: 0.02,
            halfwidth_kana: 0.05,
            name_halfwidth_space: 0.25,
            name_no_space: 0.10,
            variant_kanji: 0.03,
            kana_small_large: 0.02,
            kana_long_vowel: 0.01,
            kana_typo: 0.005,
            kojin_missing: 0.10,
            kojin_invalid: 0.01,
            vrs_atena_blank: 0.30,
            vrs_no_dose: 0.03,
            certificate_holder: 0.05,
            former_name: 0.05,
            covid_in_ledger: 0.40,
            covid_conflict: 0.02,
            covid_ledger_only: 0.01,
            remarks_multiline: 0.01,
            wrong_column_count: 0.001,
            missing_vaccination_date: 0.0007,
            impossible_date: 0.0008,
            undecodable_bytes: 0.0005,
        }
    }
}

impl Dirt {
    /// (name, value) of every rate, for validation and the summary.
    pub fn rates(&self) -> Vec<(String, f64)> {
        let v = serde_json::to_value(self).expect("serialise dirt");
        let mut out = Vec::new();
        if let serde_json::Value::Object(m) = v {
            for (k, val) in m {
                out.push((k, val.as_f64().unwrap_or(f64::NAN)));
            }
        }
        out
    }

    /// The configured rate of a named dirt kind.
    pub fn get(&self, name: &str) -> Option<f64> {
        let v = serde_json::to_value(self).ok()?;
        v.get(name)?.as_f64()
    }
}

impl Config {
    /// Parse a TOML config; every key is optional and overrides the default.
    ///
    /// ```toml
    /// people = 5000
    /// seed = 7
    /// municipality_code = "131091"
    /// [dirt]
    /// kana_typo = 0.01
    /// ```
    pub fn from_toml(s: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// Check the rates and the municipality code.
    pub fn validate(&self) -> Result<(), String> {
        let d = &self.dirt;
        for (name, v) in d.rates() {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("dirt.{name} = {v} is not in [0, 1]"));
            }
        }
        if d.moved_out + d.deceased + d.non_resident > 1.0 {
            return Err("moved_out + deceased + non_resident > 1".into());
        }
        if d.name_halfwidth_space + d.name_no_space > 1.0 {
            return Err("name_halfwidth_space + name_no_space > 1".into());
        }
        if !super::dates::municipality_valid(&self.municipality_code) {
            return Err(format!(
                "municipality_code {:?} is not 6 digits with a valid check digit",
                self.municipality_code
            ));
        }
        if self.people > 90_000_000 {
            return Err("people must be at most 90,000,000".into());
        }
        Ok(())
    }
}
