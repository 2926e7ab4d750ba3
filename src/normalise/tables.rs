//! Code tables: vaccines, manufacturers, stages and kanji variants, parsed from the
//! TOML files in `schemas/codes/` (embedded at compile time).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::text::{compact, is_dash, is_ideograph};

/// One vaccine of `schemas/codes/vaccines.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VaccineInfo {
    /// Canonical code, e.g. `"DPT-IPV"`.
    pub code: String,
    /// Display name, e.g. `"四種混合"`.
    pub name: String,
    /// `routine_a` | `routine_b` | `covid_special`.
    pub category: String,
    /// Every spelling seen in legacy exports.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Standard ages in years, `[from, to)`.
    pub target_ages: [u32; 2],
    /// Doses in the routine schedule.
    pub doses: u32,
}

/// One manufacturer of `schemas/codes/manufacturers.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ManufacturerInfo {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// One rule of `schemas/codes/stages.toml`: `pattern` found in the text → `stage`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StageRule {
    pub pattern: String,
    pub stage: String,
}

#[derive(Deserialize)]
struct VaccinesFile {
    vaccine: Vec<VaccineInfo>,
}

#[derive(Deserialize)]
struct ManufacturersFile {
    manufacturer: Vec<ManufacturerInfo>,
}

#[derive(Deserialize)]
struct StagesFile {
    stage: Vec<StageRule>,
}

#[derive(Deserialize)]
struct KanjiFile {
    family: Vec<KanjiFamily>,
}

#[derive(Deserialize)]
struct KanjiFamily {
    standard: String,
    variants: Vec<String>,
}

/// The code tables the normalisers use.
#[derive(Debug, Clone)]
pub struct Tables {
    vaccines: Vec<VaccineInfo>,
    vaccine_keys: HashMap<String, usize>,
    manufacturers: Vec<ManufacturerInfo>,
    manufacturer_keys: HashMap<String, usize>,
    /// Folded pattern → canonical stage, longest pattern first (stable in file order).
    stage_rules: Vec<(String, String)>,
    stages: Vec<StageRule>,
    /// variant → standard, sorted by variant.
    kanji: Vec<(char, char)>,
}

const VACCINES_TOML: &str = include_str!("../../schemas/codes/vaccines.toml");
const MANUFACTURERS_TOML: &str = include_str!("../../schemas/codes/manufacturers.toml");
const STAGES_TOML: &str = include_str!("../../schemas/codes/stages.toml");
const KANJI_TOML: &str = include_str!("../../schemas/codes/kanji_variants.toml");

/// Match key for vaccine names and aliases: NFKC, no whitespace, dash variants → `-`,
/// ASCII lowercase.
pub(crate) fn vaccine_key(s: &str) -> String {
    compact(s)
        .chars()
        .map(|c| {
            if is_dash(c) {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Match key for manufacturers: as [`vaccine_key`], then a trailing 株式会社 or 社 and a
/// leading or trailing (株) dropped.
pub(crate) fn manufacturer_key(s: &str) -> String {
    let mut k = vaccine_key(s);
    for prefix in ["株式会社", "(株)"] {
        if let Some(rest) = k.strip_prefix(prefix) {
            k = rest.to_string();
        }
    }
    for suffix in ["株式会社", "(株)", "社"] {
        if let Some(rest) = k.strip_suffix(suffix) {
            k = rest.to_string();
            break;
        }
    }
    k
}

/// Fold for stage patterns and stage text: NFKC, no whitespace, a leading 第 dropped.
pub(crate) fn stage_fold(s: &str) -> String {
    let c = compact(s);
    c.strip_prefix('第').unwrap_or(&c).to_string()
}

fn one_char(s: &str, what: &str) -> Result<char, String> {
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (Some(c), None) if is_ideograph(c) => Ok(c),
        _ => Err(format!("kanji_variants: {what} {s:?} is not one ideograph")),
    }
}

impl Tables {
    /// The tables embedded from `schemas/codes/` (parsed once).
    pub fn embedded() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            Tables::from_toml(VACCINES_TOML, MANUFACTURERS_TOML, STAGES_TOML, KANJI_TOML)
                .expect("embedded code tables in schemas/codes/ are valid")
        })
    }

    /// Build tables from the four TOML texts. Errors name the table and the offending
    /// alias/pattern (code-table content, not personal data).
    pub fn from_toml(
        vaccines: &str,
        manufacturers: &str,
        stages: &str,
        kanji: &str,
    ) -> Result<Tables, String> {
        let vaccines: VaccinesFile =
            toml::from_str(vaccines).map_err(|e| format!("vaccines.toml: {e}"))?;
        let manufacturers: ManufacturersFile =
            toml::from_str(manufacturers).map_err(|e| format!("manufacturers.toml: {e}"))?;
        let stages: StagesFile = toml::from_str(stages).map_err(|e| format!("stages.toml: {e}"))?;
        let kanji: KanjiFile =
            toml::from_str(kanji).map_err(|e| format!("kanji_variants.toml: {e}"))?;

        let mut vaccine_keys: HashMap<String, usize> = HashMap::new();
        for (i, v) in vaccines.vaccine.iter().enumerate() {
            let spellings = std::iter::once(&v.code)
                .chain(std::iter::once(&v.name))
                .chain(v.aliases.iter());
            for s in spellings {
                let key = vaccine_key(s);
                if key.is_empty() {
                    return Err(format!("vaccines.toml: {}: blank alias", v.code));
                }
                if let Some(&j) = vaccine_keys.get(&key) {
                    if j != i {
                        return Err(format!(
                            "vaccines.toml: alias {s:?} of {} also matches {}",
                            v.code, vaccines.vaccine[j].code
                        ));
                    }
                }
                vaccine_keys.insert(key, i);
            }
        }

        let mut manufacturer_keys: HashMap<String, usize> = HashMap::new();
        for (i, m) in manufacturers.manufacturer.iter().enumerate() {
            let spellings = std::iter::once(&m.code)
                .chain(std::iter::once(&m.name))
                .chain(m.aliases.iter());
            for s in spellings {
                let key = manufacturer_key(s);
                if key.is_empty() {
                    return Err(format!("manufacturers.toml: {}: blank alias", m.code));
                }
                if let Some(&j) = manufacturer_keys.get(&key) {
                    if j != i {
                        return Err(format!(
                            "manufacturers.toml: alias {s:?} of {} also matches {}",
                            m.code, manufacturers.manufacturer[j].code
                        ));
                    }
                }
                manufacturer_keys.insert(key, i);
            }
        }

        let mut stage_rules: Vec<(String, String)> = Vec::new();
        for r in &stages.stage {
            let p = stage_fold(&r.pattern);
            if p.is_empty() {
                return Err("stages.toml: blank pattern".to_string());
            }
            stage_rules.push((p, r.stage.clone()));
        }
        // Canonical stages must map to themselves (so stage(render(v)) == v).
        stage_rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.chars().count()));
        for r in &stages.stage {
            let folded = stage_fold(&r.stage);
            let got = stage_rules
                .iter()
                .find(|(p, _)| folded.contains(p.as_str()))
                .map(|(_, s)| s);
            if got != Some(&r.stage) {
                return Err(format!(
                    "stages.toml: canonical stage {:?} does not map to itself",
                    r.stage
                ));
            }
        }

        let mut map: HashMap<char, char> = HashMap::new();
        for f in &kanji.family {
            let standard = one_char(&f.standard, "standard")?;
            for v in &f.variants {
                let variant = one_char(v, "variant")?;
                if variant == standard {
                    return Err(format!("kanji_variants: {v:?} maps to itself"));
                }
                if let Some(old) = map.insert(variant, standard) {
                    if old != standard {
                        return Err(format!("kanji_variants: {v:?} is in two families"));
                    }
                }
            }
        }
        for (&variant, &standard) in &map {
            if map.contains_key(&standard) {
                return Err(format!(
                    "kanji_variants: standard {standard:?} (of {variant:?}) is itself a variant"
                ));
            }
        }
        let mut kanji: Vec<(char, char)> = map.into_iter().collect();
        kanji.sort_unstable();

        Ok(Tables {
            vaccines: vaccines.vaccine,
            vaccine_keys,
            manufacturers: manufacturers.manufacturer,
            manufacturer_keys,
            stage_rules,
            stages: stages.stage,
            kanji,
        })
    }

    /// The vaccine with this canonical code.
    pub fn vaccine(&self, code: &str) -> Option<&VaccineInfo> {
        self.vaccines.iter().find(|v| v.code == code)
    }

    /// Every vaccine, in file order.
    pub fn vaccines(&self) -> &[VaccineInfo] {
        &self.vaccines
    }

    /// The manufacturer with this canonical code.
    pub fn manufacturer(&self, code: &str) -> Option<&ManufacturerInfo> {
        self.manufacturers.iter().find(|m| m.code == code)
    }

    /// Every manufacturer, in file order.
    pub fn manufacturers(&self) -> &[ManufacturerInfo] {
        &self.manufacturers
    }

    /// Every stage rule, in file order.
    pub fn stages(&self) -> &[StageRule] {
        &self.stages
    }

    /// The kanji variant table as (variant, standard) pairs, sorted by variant.
    pub fn kanji_variants(&self) -> &[(char, char)] {
        &self.kanji
    }

    /// Canonical vaccine code for a raw name (any alias spelling).
    pub(crate) fn match_vaccine(&self, raw: &str) -> Option<&VaccineInfo> {
        self.vaccine_keys
            .get(&vaccine_key(raw))
            .map(|&i| &self.vaccines[i])
    }

    /// Canonical manufacturer for a raw maker string.
    pub(crate) fn match_manufacturer(&self, raw: &str) -> Option<&ManufacturerInfo> {
        self.manufacturer_keys
            .get(&manufacturer_key(raw))
            .map(|&i| &self.manufacturers[i])
    }

    /// The canonical stage for folded stage text: the longest pattern it contains.
    pub(crate) fn match_stage(&self, folded: &str) -> Option<&str> {
        self.stage_rules
            .iter()
            .find(|(p, _)| folded.contains(p.as_str()))
            .map(|(_, s)| s.as_str())
    }

    /// The standard form of one ideograph for [`super::kanji_key`]: the table's
    /// standard, else (for compatibility ideographs) the canonical decomposition's
    /// standard, else the character itself.
    pub(crate) fn kanji_standard(&self, c: char) -> char {
        if let Ok(i) = self.kanji.binary_search_by_key(&c, |&(v, _)| v) {
            return self.kanji[i].1;
        }
        if matches!(c as u32, 0xF900..=0xFAFF | 0x2F800..=0x2FA1F) {
            if let Some(d) = std::iter::once(c).nfd().next() {
                if d != c {
                    if let Ok(i) = self.kanji.binary_search_by_key(&d, |&(v, _)| v) {
                        return self.kanji[i].1;
                    }
                    return d;
                }
            }
        }
        c
    }
}
