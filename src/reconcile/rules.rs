//! Match rules: the Fellegi–Sunter m/u probabilities, the thresholds and the blocking
//! keys, read from `pipelines/match/default.toml` (embedded) or a user file.
//!
//! The file is data, not code: the weights are derived here once, as
//! `log2(m / u)` for an agreement level and `log2((1 − Σm) / (1 − Σu))` for
//! disagreement, where the sums run over the comparison's agreement levels.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The embedded default rules file.
pub const DEFAULT_RULES_TOML: &str = include_str!("../../pipelines/match/default.toml");

/// Comparisons the scorer knows, with their agreement levels in scoring order.
pub(crate) const COMPARISONS: &[(&str, &[&str])] = &[
    ("kana_key", &["exact", "near"]),
    ("kanji_key", &["exact"]),
    ("birth_date", &["exact", "one_component"]),
    ("sex", &["exact"]),
    ("postal_code", &["exact"]),
    ("address", &["exact"]),
];

/// Key parts a blocking rule may combine.
pub(crate) const KEY_PARTS: &[&str] = &[
    "kana_key",
    "kanji_key",
    "birth_date",
    "birth_year",
    "sex",
    "postal_code",
];

/// One comparison's m and u probability for one agreement level.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mu {
    /// P(level | the pair is the same person).
    pub m: f64,
    /// P(level | the pair is two different people).
    pub u: f64,
}

/// The weights of one comparison, derived from its m/u probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// log2(m/u) per agreement level, in the order of [`COMPARISONS`].
    pub agree: Vec<f64>,
    /// log2((1 − Σm)/(1 − Σu)) when no agreement level applies.
    pub disagree: f64,
}

/// A part of a blocking key: a named key, optionally cut to its first `prefix` chars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPart {
    /// One of [`KEY_PARTS`].
    pub name: String,
    /// Keep only the first this-many characters.
    pub prefix: Option<usize>,
}

/// Validated match rules. Build with [`Rules::from_toml`] or use [`Rules::embedded`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Score at or above which a unique best candidate is linked.
    pub upper: f64,
    /// Score at or above which a candidate goes to review (below: no link).
    pub lower: f64,
    /// Minimum gap between the best and second-best candidate for a link.
    pub margin: f64,
    /// Registry rows per blocking key above which that key is skipped.
    pub max_block_size: Option<u32>,
    /// Blocking rules: a pair is compared when any rule's key parts all agree.
    pub blocking: Vec<Vec<KeyPart>>,
    /// Comparison weights by name ([`COMPARISONS`]); a comparison left out scores 0.
    pub comparisons: BTreeMap<String, Comparison>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    thresholds: Thresholds,
    blocking: Blocking,
    comparison: BTreeMap<String, BTreeMap<String, Mu>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    upper: f64,
    lower: f64,
    margin: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Blocking {
    max_block_size: Option<u32>,
    rules: Vec<Vec<String>>,
}

impl Rules {
    /// The rules in `pipelines/match/default.toml`.
    pub fn embedded() -> &'static Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES.get_or_init(|| {
            Rules::from_toml(DEFAULT_RULES_TOML)
                .expect("the embedded pipelines/match/default.toml is valid")
        })
    }

    /// Parse and validate a rules file. The error names the offending item, never data.
    pub fn from_toml(s: &str) -> Result<Rules, String> {
        let file: RulesFile =
            toml::from_str(s).map_err(|e| format!("match rules: {}", e.message()))?;
        let t = &file.thresholds;
        if !(t.lower.is_finite() && t.upper.is_finite() && t.margin.is_finite()) {
            return Err("match rules: thresholds must be finite numbers".into());
        }
        if t.lower > t.upper {
            return Err("match rules: `thresholds.lower` is above `thresholds.upper`".into());
        }
        if t.margin < 0.0 {
            return Err("match rules: `thresholds.margin` is negative".into());
        }
        let mut blocking = Vec::new();
        for (i, rule) in file.blocking.rules.iter().enumerate() {
            if rule.is_empty() {
                return Err(format!("match rules: blocking rule {} is empty", i + 1));
            }
            let mut parts = Vec::new();
            for part in rule {
                let (name, prefix) = match part.split_once(':') {
                    Some((n, p)) => {
                        let p: usize = p.parse().map_err(|_| {
                            format!("match rules: blocking key `{part}` has a bad prefix length")
                        })?;
                        if p == 0 {
                            return Err(format!(
                                "match rules: blocking key `{part}` has a zero prefix"
                            ));
                        }
                        (n, Some(p))
                    }
                    None => (part.as_str(), None),
                };
                if !KEY_PARTS.contains(&name) {
                    return Err(format!(
                        "match rules: unknown blocking key `{name}` (known: {})",
                        KEY_PARTS.join(", ")
                    ));
                }
                parts.push(KeyPart {
                    name: name.to_string(),
                    prefix,
                });
            }
            blocking.push(parts);
        }
        let mut comparisons = BTreeMap::new();
        for (name, levels) in &file.comparison {
            let Some((_, known)) = COMPARISONS.iter().find(|(n, _)| n == name) else {
                return Err(format!("match rules: unknown comparison `{name}`"));
            };
            for level in levels.keys() {
                if !known.contains(&level.as_str()) {
                    return Err(format!(
                        "match rules: comparison `{name}` has no level `{level}` (known: {})",
                        known.join(", ")
                    ));
                }
            }
            let (mut sum_m, mut sum_u) = (0.0, 0.0);
            let mut agree = Vec::new();
            for level in known.iter() {
                let Some(mu) = levels.get(*level) else {
                    // A level left out never applies.
                    agree.push(0.0);
                    continue;
                };
                let ok = |p: f64| p > 0.0 && p < 1.0;
                if !ok(mu.m) || !ok(mu.u) {
                    return Err(format!(
                        "match rules: `{name}.{level}`: m and u must lie strictly between 0 and 1"
                    ));
                }
                sum_m += mu.m;
                sum_u += mu.u;
                agree.push((mu.m / mu.u).log2());
            }
            if sum_m >= 1.0 || sum_u >= 1.0 {
                return Err(format!(
                    "match rules: `{name}`: the m (or u) of its levels sum to 1 or more"
                ));
            }
            let disagree = ((1.0 - sum_m) / (1.0 - sum_u)).log2();
            comparisons.insert(name.clone(), Comparison { agree, disagree });
        }
        Ok(Rules {
            upper: t.upper,
            lower: t.lower,
            margin: t.margin,
            max_block_size: file.blocking.max_block_size,
            blocking,
            comparisons,
        })
    }

    /// The weight of comparison `name` at agreement level `level` (`None`: disagreement).
    /// A comparison the rules leave out weighs 0.
    pub(crate) fn weight(&self, name: &str, level: Option<usize>) -> f64 {
        match self.comparisons.get(name) {
            None => 0.0,
            Some(c) => match level {
                Some(i) => c.agree.get(i).copied().unwrap_or(0.0),
                None => c.disagree,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse() {
        let r = Rules::embedded();
        assert!(r.lower < r.upper);
        assert!(!r.blocking.is_empty());
        let kana = &r.comparisons["kana_key"];
        assert!(kana.agree[0] > kana.agree[1] && kana.agree[1] > 0.0);
        assert!(kana.disagree < 0.0);
    }

    #[test]
    fn formula() {
        let r = Rules::from_toml(
            r#"
            [thresholds]
            upper = 10.0
            lower = 5.0
            margin = 1.0
            [blocking]
            rules = [["kana_key:2", "birth_date"]]
            [comparison.sex]
            exact = { m = 0.9, u = 0.5 }
            "#,
        )
        .unwrap();
        assert!((r.weight("sex", Some(0)) - (0.9f64 / 0.5).log2()).abs() < 1e-12);
        assert!((r.weight("sex", None) - (0.1f64 / 0.5).log2()).abs() < 1e-12);
        assert_eq!(r.weight("address", None), 0.0);
        assert_eq!(r.blocking[0][0].prefix, Some(2));
    }

    #[test]
    fn rejects_bad_files() {
        let base = "[thresholds]\nupper = 10.0\nlower = 5.0\nmargin = 1.0\n";
        let bad = [
            format!("{base}[blocking]\nrules = [[\"shoe_size\"]]\n[comparison]\n"),
            format!("{base}[blocking]\nrules = []\n[comparison.sex]\nexact = {{ m = 1.0, u = 0.5 }}\n"),
            format!("{base}[blocking]\nrules = []\n[comparison.sex]\nnear = {{ m = 0.5, u = 0.5 }}\n"),
            format!("{base}[blocking]\nrules = []\n[comparison.height]\n"),
            "[thresholds]\nupper = 1.0\nlower = 5.0\nmargin = 1.0\n[blocking]\nrules = []\n[comparison]\n".to_string(),
        ];
        for text in bad {
            assert!(Rules::from_toml(&text).is_err(), "accepted: {text}");
        }
    }
}
