//! Certificate lookups (`docs/lookup.md`).
//!
//! Pure core: canonicalise a query with the normalisers ([`Query`]), and turn the
//! decrypted records of the persons found into an [`Answer`]: COVID doses in
//! certificate order, certificate history, routine vaccinations by vaccine and stage,
//! filtered by the operator's [`Role`]. Rendering: [`render_text`], [`Answer`] as JSON,
//! [`render_fhir`]. The shell ([`shell`]) decrypts the hash key, the index and only the
//! partitions of the buckets that can hold the person.

pub mod shell;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::normalise::{self, Kind, Tables};
use crate::record::{Record, Value, ValueRef};
use crate::schema::{Class, Schema};

/// JSON schema identifier of [`Answer`].
pub const SCHEMA: &str = "vaxarc-lookup/1";
/// JP Core Immunization profile.
pub const JP_IMMUNIZATION: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Immunization";
/// JP Core Patient profile.
pub const JP_PATIENT: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient";
/// The embedded default roles.
pub const ROLES_TOML: &str = include_str!("../../pipelines/roles.toml");

/// A canonical query. Holds personal data: never print it (its `Debug` shows the kind).
#[derive(Clone, PartialEq, Eq)]
pub enum Query {
    /// 宛名番号 (canonical: without leading zeros).
    Atena(String),
    /// 12-digit 個人番号.
    KojinBango(String),
    /// `<自治体コード>:<券番号>`.
    Ticket(String),
    /// `<kana match key>:<birth date as days>`.
    KanaBirth(String),
    /// A person hash (as listed among candidates).
    Person(String),
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Query({})", self.kind())
    }
}

/// A query that cannot be canonicalised: which part, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn canon(kind: Kind, raw: &str, what: &str) -> Result<Value, QueryError> {
    match normalise::normalise(kind, raw, Tables::embedded()) {
        Ok(n) if !n.value.is_null() => Ok(n.value),
        Ok(n) => Err(QueryError(format!(
            "{what} is not valid{}",
            n.flag.map(|f| format!(" ({f})")).unwrap_or_default()
        ))),
        Err(r) => Err(QueryError(format!("{what} is not valid ({r})"))),
    }
}

impl Query {
    /// Index kind (`atena`, `kojin_bango`, `ticket`, `kana_birth`) or `person`.
    pub fn kind(&self) -> &'static str {
        match self {
            Query::Atena(_) => "atena",
            Query::KojinBango(_) => "kojin_bango",
            Query::Ticket(_) => "ticket",
            Query::KanaBirth(_) => "kana_birth",
            Query::Person(_) => "person",
        }
    }

    /// The canonical value (personal data).
    pub fn value(&self) -> &str {
        match self {
            Query::Atena(v)
            | Query::KojinBango(v)
            | Query::Ticket(v)
            | Query::KanaBirth(v)
            | Query::Person(v) => v,
        }
    }

    /// `kind \0 value`: the text the audit log hashes.
    pub fn audit_text(&self) -> String {
        format!("{}\0{}", self.kind(), self.value())
    }

    /// 宛名番号 query.
    pub fn atena(raw: &str) -> Result<Query, QueryError> {
        Ok(Query::Atena(
            canon(Kind::Atena, raw, "--atena")?
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// 個人番号 query (check digit verified).
    pub fn kojin_bango(raw: &str) -> Result<Query, QueryError> {
        Ok(Query::KojinBango(
            canon(Kind::KojinBango, raw, "--kojin-bango")?
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// `MUNI:NUMBER` ticket query.
    pub fn ticket(raw: &str) -> Result<Query, QueryError> {
        let (m, t) = raw
            .split_once([':', '：'])
            .ok_or_else(|| QueryError("--ticket must be <自治体コード>:<券番号>".into()))?;
        let m = canon(Kind::MunicipalityCode, m, "the 自治体コード of --ticket")?;
        let t = canon(Kind::TicketNumber, t, "the 券番号 of --ticket")?;
        Ok(Query::Ticket(format!(
            "{}:{}",
            m.as_str().unwrap_or_default(),
            t.as_str().unwrap_or_default()
        )))
    }

    /// Kana name + birth date query.
    pub fn kana_birth(kana: &str, birth: &str) -> Result<Query, QueryError> {
        let k = canon(Kind::NameKana, kana, "--kana")?;
        let b = canon(Kind::Date, birth, "--birth")?;
        let key = normalise::kana_key(k.as_str().unwrap_or_default());
        if key.is_empty() {
            return Err(QueryError("--kana has no kana".into()));
        }
        Ok(Query::KanaBirth(format!(
            "{key}:{}",
            b.as_date().unwrap_or_default()
        )))
    }

    /// A person hash (64 hex digits).
    pub fn person(raw: &str) -> Result<Query, QueryError> {
        let h = raw.trim().to_ascii_lowercase();
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(QueryError(
                "--person must be a person hash of 64 hex digits".into(),
            ));
        }
        Ok(Query::Person(h))
    }

    /// One line of a batch file: `atena=N`, `kojin_bango=N`, `ticket=MUNI:NUMBER`,
    /// `kana=NAME,birth=DATE`, `person=HASH`.
    pub fn parse_line(line: &str) -> Result<Query, QueryError> {
        let mut kv: BTreeMap<&str, &str> = BTreeMap::new();
        for part in line.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                QueryError(
                    "expected key=value (atena=, kojin_bango=, ticket=, kana=…,birth=…, person=)"
                        .into(),
                )
            })?;
            // A key is named, never echoed: a mistyped line may hold a name or a number
            // where the key belongs.
            const KEYS: [&str; 6] = ["atena", "kojin_bango", "ticket", "kana", "birth", "person"];
            let k = k.trim();
            let Some(known) = KEYS.iter().find(|known| **known == k) else {
                return Err(QueryError(
                    "a key that is not atena, kojin_bango, ticket, kana, birth or person (not shown: it may be personal data)".into(),
                ));
            };
            if kv.insert(*known, v.trim()).is_some() {
                return Err(QueryError(format!("`{known}` is given twice")));
            }
        }
        let keys: Vec<&str> = kv.keys().copied().collect();
        match keys.as_slice() {
            ["atena"] => Query::atena(kv["atena"]),
            ["kojin_bango"] => Query::kojin_bango(kv["kojin_bango"]),
            ["ticket"] => Query::ticket(kv["ticket"]),
            ["person"] => Query::person(kv["person"]),
            ["birth", "kana"] => Query::kana_birth(kv["kana"], kv["birth"]),
            _ => Err(QueryError(format!("keys {keys:?} do not make a query; use atena=, kojin_bango=, ticket=, kana=…,birth=… or person="))),
        }
    }
}

/// One role: the items it sees.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Role {
    /// What the role is for.
    #[serde(default)]
    pub description: String,
    /// Field names of `schemas/record.toml` the role sees.
    pub items: BTreeSet<String>,
}

/// The roles file.
#[derive(Clone, Debug, Deserialize)]
pub struct Roles {
    /// Role used without --role.
    pub default: String,
    /// Roles by name.
    pub role: BTreeMap<String, Role>,
}

impl Roles {
    /// Parse and check a roles file against the schema (every item must be a field).
    pub fn from_toml(text: &str, schema: &Schema) -> Result<Roles, String> {
        let roles: Roles = toml::from_str(text).map_err(|e| e.to_string())?;
        if !roles.role.contains_key(&roles.default) {
            return Err(format!(
                "`default = \"{}\"` names no [role.…]",
                roles.default
            ));
        }
        for (name, r) in &roles.role {
            for item in &r.items {
                if schema.index(item).is_none() {
                    return Err(format!(
                        "[role.{name}] item `{item}` is not a field of schemas/record.toml"
                    ));
                }
            }
        }
        Ok(roles)
    }

    /// The embedded `pipelines/roles.toml`.
    pub fn embedded() -> Roles {
        Roles::from_toml(ROLES_TOML, Schema::embedded()).expect("embedded roles are valid")
    }

    /// A role by name (default when `None`).
    pub fn get(&self, name: Option<&str>) -> Option<(&str, &Role)> {
        let n = name.unwrap_or(&self.default);
        self.role.get_key_value(n).map(|(k, v)| (k.as_str(), v))
    }
}

/// What the operator may see in this run: the role's items, minus vault items unless
/// the vault was opened and --show-vault was given.
#[derive(Clone, Debug)]
pub struct View {
    /// Role name.
    pub role: String,
    /// Visible field names.
    pub items: BTreeSet<String>,
    /// Whether vault items are shown.
    pub vault_shown: bool,
}

impl View {
    /// Build the view.
    pub fn new(schema: &Schema, role: &str, r: &Role, vault_open: bool, show_vault: bool) -> View {
        let vault_shown = vault_open && show_vault;
        let items = r
            .items
            .iter()
            .filter(|i| {
                vault_shown
                    || schema
                        .index(i)
                        .map(|x| schema.fields[x].class != Class::NumberVault)
                        .unwrap_or(false)
            })
            .cloned()
            .collect();
        View {
            role: role.to_string(),
            items,
            vault_shown,
        }
    }

    /// Whether the role lists any vault item.
    pub fn role_wants_vault(schema: &Schema, r: &Role) -> bool {
        r.items.iter().any(|i| {
            schema
                .index(i)
                .map(|x| schema.fields[x].class == Class::NumberVault)
                .unwrap_or(false)
        })
    }

    fn sees(&self, item: &str) -> bool {
        self.items.contains(item)
    }
}

/// Person items shown in the `person` block, in this order.
/// Fields [`answer`] reads directly (not only through the role's items): with the role's
/// items, the columns a lookup decodes ([`columns_for`]).
pub const ANSWER_FIELDS: [&str; 9] = [
    "person_hash",
    "record_id",
    "registry_atena_number",
    "vaccine_code",
    "dose_number",
    "vaccination_date",
    "stage",
    "municipality_code",
    "registry_status",
];

/// The record columns a lookup for `role` needs: [`ANSWER_FIELDS`], [`PERSON_ITEMS`] and
/// the role's items. Other columns are never decoded.
pub fn columns_for(role: &Role) -> BTreeSet<String> {
    ANSWER_FIELDS
        .iter()
        .chain(PERSON_ITEMS.iter())
        .map(|s| s.to_string())
        .chain(role.items.iter().cloned())
        .collect()
}

pub const PERSON_ITEMS: [&str; 14] = [
    "kanji_name",
    "kana_name",
    "birth_date",
    "sex",
    "atena_number",
    "municipality_code",
    "ticket_number",
    "registry_status",
    "kojin_bango",
    "info_provision_id",
    "former_name",
    "romaji_name",
    "nationality",
    "passport_number",
];

/// One dose.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dose {
    /// 接種回.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dose_number: Option<i64>,
    /// 接種日 (YYYY-MM-DD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vaccination_date: Option<String>,
    /// ワクチンコード.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vaccine_code: Option<String>,
    /// 期.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// メーカー (canonical code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer_code: Option<String>,
    /// メーカー (display name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// 製品名.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// ロット番号.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot_number: Option<String>,
    /// 接種自治体コード.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vaccination_municipality_code: Option<String>,
    /// 接種医療機関.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub medical_institution: Option<String>,
    /// 接種区分.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vaccination_class: Option<String>,
    /// Record id (operational, always shown: it names the archived record).
    pub record_id: String,
}

/// One certificate issued.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Certificate {
    /// 発行年月日.
    pub issued_date: Option<String>,
    /// 証明書ID.
    pub certificate_id: String,
}

/// Routine doses of one vaccine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Routine {
    /// ワクチンコード.
    pub vaccine_code: String,
    /// 接種名称 (canonical name from schemas/codes/vaccines.toml).
    pub vaccine_name: String,
    /// Doses by stage (期; "" when none), each in date order.
    pub stages: Vec<Stage>,
}

/// Doses of one stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// 期 ("" when the source gave none).
    pub stage: String,
    /// Doses in date order.
    pub doses: Vec<Dose>,
}

/// One candidate of an ambiguous kana + birth query: minimal, non-sensitive.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// The person hash: re-query with `--person HASH`.
    pub person_hash: String,
    /// 性別 (when the role sees it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    /// 住民区分.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_status: Option<String>,
    /// Records archived for the candidate.
    pub records: u64,
    /// Vaccine codes of those records.
    pub vaccines: Vec<String>,
}

/// The answer to one query (the `json` format; documented in docs/lookup.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Query kind (never its value).
    pub query_kind: String,
    /// `found`, `not_found` or `candidates`.
    pub status: String,
    /// Role the output was filtered for.
    pub role: String,
    /// Whether vault items are included.
    pub vault_shown: bool,
    /// Person hashes whose records are included.
    pub persons: Vec<String>,
    /// Records included.
    pub records: u64,
    /// Person items (field name → value), only those the role sees.
    pub person: BTreeMap<String, String>,
    /// COVID doses in certificate order (接種回, then 接種日).
    pub covid: Vec<Dose>,
    /// Certificates issued (発行年月日 order).
    pub certificates: Vec<Certificate>,
    /// Routine and other vaccinations by vaccine, then stage.
    pub routine: Vec<Routine>,
    /// Candidates of an ambiguous query (then everything else is empty).
    pub candidates: Vec<Candidate>,
}

fn text_of(v: ValueRef<'_>) -> Option<String> {
    if v.is_null() {
        None
    } else {
        Some(normalise::render(&v.to_value()))
    }
}

/// Build the answer from the decrypted records of the persons found (pure).
/// `persons` are the person hashes the index gave; `records` may hold other persons'
/// rows (whole partitions): they are filtered by `person_hash`. `vault` maps record id
/// to its vault row (only when the vault was opened).
pub fn answer(
    schema: &Schema,
    tables: &Tables,
    query: &Query,
    persons: &[String],
    records: &[Record],
    vault: &BTreeMap<String, Record>,
    view: &View,
) -> Answer {
    let ph = schema.idx("person_hash");
    let wanted: BTreeSet<&str> = persons.iter().map(String::as_str).collect();
    let mut mine: Vec<&Record> = records
        .iter()
        .filter(|r| r.at(ph).as_str().is_some_and(|p| wanted.contains(p)))
        .collect();
    let rid = schema.idx("record_id");
    mine.sort_by(|a, b| a.at(rid).as_str().cmp(&b.at(rid).as_str()));
    mine.dedup_by(|a, b| a.at(rid) == b.at(rid));
    let mut out = Answer {
        schema: SCHEMA.into(),
        query_kind: query.kind().into(),
        status: "not_found".into(),
        role: view.role.clone(),
        vault_shown: view.vault_shown,
        persons: Vec::new(),
        records: 0,
        person: BTreeMap::new(),
        covid: Vec::new(),
        certificates: Vec::new(),
        routine: Vec::new(),
        candidates: Vec::new(),
    };
    // By 宛名番号: keys of other registry residents reached through a row of theirs that
    // carries the number are not the resident asked for (`PersonFacts::other_residents`).
    if let Query::Atena(v) = query {
        let mut facts: BTreeMap<&str, crate::archive::PersonFacts> = BTreeMap::new();
        for r in &mine {
            if let Some(p) = r.at(ph).as_str() {
                facts.entry(p).or_default().add_record(schema, r);
            }
        }
        let others: BTreeSet<String> =
            crate::archive::PersonFacts::other_residents(v, facts.iter().map(|(k, f)| (*k, f)))
                .into_iter()
                .map(str::to_string)
                .collect();
        if !others.is_empty() {
            mine.retain(|r| r.at(ph).as_str().is_none_or(|p| !others.contains(p)));
        }
    }
    let found: BTreeSet<&str> = mine.iter().filter_map(|r| r.at(ph).as_str()).collect();
    if found.is_empty() {
        return out;
    }
    let get = |r: &Record, name: &str| -> Option<String> {
        if !view.sees(name) {
            return None;
        }
        let i = schema.idx(name);
        if schema.fields[i].class == Class::NumberVault {
            let id = r.at(rid).as_str()?;
            return vault.get(id).and_then(|v| text_of(v.at(i)));
        }
        text_of(r.at(i))
    };
    // An ambiguous kana + birth query lists the candidates, never a merged answer; so
    // does an exact identifier that reaches person keys not shown to be one person
    // (`PersonFacts::one_person`: two registry residents, birth dates, kana names or sexes
    // that differ — a number the sources give two people — or a key without a birth
    // date), read from the records whatever the role shows.
    let apart = || {
        let mut facts: BTreeMap<&str, crate::archive::PersonFacts> = BTreeMap::new();
        for r in &mine {
            if let Some(p) = r.at(ph).as_str() {
                facts.entry(p).or_default().add_record(schema, r);
            }
        }
        !crate::archive::PersonFacts::one_person(facts.values())
    };
    // One key alone is a candidate too when its own records disagree (two kana names or
    // sexes under one unlinked key: two people under one number and birth date). A
    // `--person` query shows its key as it is: the operator chose it from candidates.
    let ambiguous = match query {
        Query::KanaBirth(_) => found.len() > 1 || apart(),
        Query::Person(_) => false,
        _ => apart(),
    };
    if ambiguous {
        out.status = "candidates".into();
        for p in &found {
            let rs: Vec<&&Record> = mine
                .iter()
                .filter(|r| r.at(ph).as_str() == Some(p))
                .collect();
            let first = |name: &str| rs.iter().find_map(|r| get(r, name));
            let vaccines: BTreeSet<String> =
                rs.iter().filter_map(|r| get(r, "vaccine_code")).collect();
            out.candidates.push(Candidate {
                person_hash: p.to_string(),
                sex: first("sex"),
                registry_status: first("registry_status"),
                records: rs.len() as u64,
                vaccines: vaccines.into_iter().collect(),
            });
        }
        return out;
    }
    out.status = "found".into();
    out.persons = found.iter().map(|s| s.to_string()).collect();
    out.records = mine.len() as u64;
    // Person items: from a registry-linked record first.
    let reg = schema.idx("registry_atena_number");
    let mut ordered: Vec<&&Record> = mine.iter().collect();
    ordered.sort_by_key(|r| r.at(reg).is_null());
    for item in PERSON_ITEMS {
        let value = if item == "atena_number" && view.sees(item) {
            ordered
                .iter()
                .find_map(|r| text_of(r.at(reg)))
                .or_else(|| ordered.iter().find_map(|r| get(r, item)))
        } else {
            ordered.iter().find_map(|r| get(r, item))
        };
        if let Some(v) = value {
            out.person.insert(item.to_string(), v);
        }
    }
    let code_idx = schema.idx("vaccine_code");
    let dose_of = |r: &Record| -> Dose {
        let manufacturer_code = get(r, "manufacturer_code");
        Dose {
            dose_number: if view.sees("dose_number") {
                r.at(schema.idx("dose_number")).as_int()
            } else {
                None
            },
            vaccination_date: get(r, "vaccination_date"),
            vaccine_code: get(r, "vaccine_code"),
            stage: get(r, "stage"),
            manufacturer: manufacturer_code.as_deref().map(|c| {
                tables
                    .manufacturer(c)
                    .map(|m| m.name.clone())
                    .unwrap_or_else(|| c.to_string())
            }),
            manufacturer_code,
            product_name: get(r, "product_name"),
            lot_number: get(r, "lot_number"),
            vaccination_municipality_code: get(r, "vaccination_municipality_code").or_else(|| {
                if view.sees("vaccination_municipality_code") {
                    text_of(r.at(schema.idx("municipality_code")))
                } else {
                    None
                }
            }),
            medical_institution: get(r, "medical_institution"),
            vaccination_class: get(r, "vaccination_class"),
            record_id: r.at(rid).as_str().unwrap_or_default().to_string(),
        }
    };
    let is_covid = |r: &Record| {
        r.at(code_idx)
            .as_str()
            .and_then(|c| tables.vaccine(c))
            .is_some_and(|v| v.category == "covid_special")
    };
    let date_idx = schema.idx("vaccination_date");
    let mut covid: Vec<&&Record> = mine.iter().filter(|r| is_covid(r)).collect();
    covid.sort_by_key(|r| {
        (
            r.at(schema.idx("dose_number")).as_int().unwrap_or(i64::MAX),
            r.at(date_idx).as_date(),
            r.at(rid).as_str().map(str::to_string),
        )
    });
    out.covid = covid.iter().map(|r| dose_of(r)).collect();
    let mut certs = BTreeSet::new();
    for r in &mine {
        if let Some(id) = get(r, "certificate_id") {
            certs.insert(Certificate {
                issued_date: get(r, "certificate_issued_date"),
                certificate_id: id,
            });
        }
    }
    out.certificates = certs.into_iter().collect();
    let mut routine: BTreeMap<String, BTreeMap<String, Vec<&Record>>> = BTreeMap::new();
    for r in mine.iter().filter(|r| !is_covid(r)) {
        let code = r.at(code_idx).as_str().unwrap_or_default().to_string();
        let stage = r
            .at(schema.idx("stage"))
            .as_str()
            .unwrap_or_default()
            .to_string();
        routine
            .entry(code)
            .or_default()
            .entry(stage)
            .or_default()
            .push(r);
    }
    for (code, stages) in routine {
        out.routine.push(Routine {
            vaccine_name: tables
                .vaccine(&code)
                .map(|v| v.name.clone())
                .unwrap_or_else(|| code.clone()),
            vaccine_code: code,
            stages: stages
                .into_iter()
                .map(|(stage, mut rs)| {
                    rs.sort_by_key(|r| {
                        (
                            r.at(date_idx).as_date(),
                            r.at(schema.idx("dose_number")).as_int(),
                        )
                    });
                    Stage {
                        stage: if view.sees("stage") {
                            stage
                        } else {
                            String::new()
                        },
                        doses: rs.iter().map(|r| dose_of(r)).collect(),
                    }
                })
                .collect(),
        });
    }
    out
}

/// Japanese label of a field.
fn label(schema: &Schema, name: &str) -> String {
    schema
        .index(name)
        .map(|i| schema.fields[i].label.clone())
        .unwrap_or_else(|| name.to_string())
}

/// Printable summary with Japanese labels, like the paper certificate's content.
pub fn render_text(schema: &Schema, a: &Answer) -> String {
    let mut out = String::new();
    match a.status.as_str() {
        "not_found" => {
            out.push_str("該当者なし (no person found for this query)\n");
            return out;
        }
        "candidates" => {
            out.push_str(&format!(
                "候補者が複数います ({} candidates): 宛名番号・個人番号・接種券番号で、または --person で再検索してください\n",
                a.candidates.len()
            ));
            for (i, c) in a.candidates.iter().enumerate() {
                out.push_str(&format!(
                    "  {}. person {}  性別 {}  住民区分 {}  記録 {} 件  ワクチン {}\n",
                    i + 1,
                    c.person_hash,
                    c.sex.as_deref().unwrap_or("-"),
                    c.registry_status.as_deref().unwrap_or("-"),
                    c.records,
                    if c.vaccines.is_empty() {
                        "-".to_string()
                    } else {
                        c.vaccines.join(",")
                    }
                ));
            }
            return out;
        }
        _ => {}
    }
    out.push_str("予防接種記録 (vaccination record)\n");
    out.push_str(&format!("  役割 (role): {}\n", a.role));
    for k in PERSON_ITEMS {
        if let Some(v) = a.person.get(k) {
            out.push_str(&format!("  {}: {}\n", label(schema, k), v));
        }
    }
    let d = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    if !a.covid.is_empty() {
        out.push_str("\n新型コロナウイルス感染症 予防接種 (COVID-19)\n");
        out.push_str("  接種回  接種日      メーカー          製品名                ロット番号    接種自治体\n");
        for x in &a.covid {
            out.push_str(&format!(
                "  {:<6}  {:<10}  {:<16}  {:<20}  {:<12}  {}\n",
                x.dose_number
                    .map(|n| format!("{n}回目"))
                    .unwrap_or_else(|| "-".into()),
                d(&x.vaccination_date),
                d(&x.manufacturer),
                d(&x.product_name),
                d(&x.lot_number),
                d(&x.vaccination_municipality_code)
            ));
        }
    }
    if !a.certificates.is_empty() {
        out.push_str(
            "\n証明書交付履歴 (certificates issued)\n  証明書ID                  発行年月日\n",
        );
        for c in &a.certificates {
            out.push_str(&format!(
                "  {:<24}  {}\n",
                c.certificate_id,
                c.issued_date.as_deref().unwrap_or("-")
            ));
        }
    }
    if !a.routine.is_empty() {
        out.push_str("\n定期接種等 (routine vaccinations)\n");
        for r in &a.routine {
            out.push_str(&format!("  {} ({})\n", r.vaccine_name, r.vaccine_code));
            for s in &r.stages {
                for x in &s.doses {
                    out.push_str(&format!(
                        "    期 {:<8} 接種回 {:<4} 接種日 {:<10}  ロット番号 {}\n",
                        if s.stage.is_empty() { "-" } else { &s.stage },
                        x.dose_number
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                        d(&x.vaccination_date),
                        d(&x.lot_number)
                    ));
                }
            }
        }
    }
    out.push_str(&format!("\n記録数 (records): {}\n", a.records));
    out
}

/// A deterministic `urn:uuid:` from a name (blake3, UUID version 8 layout).
fn urn_uuid(name: &str) -> String {
    let h = blake3::hash(name.as_bytes());
    let b = h.as_bytes();
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// FHIR R4 Bundle (type collection) of one Patient and one Immunization per dose,
/// following JP Core (JP_Patient, JP_Immunization). Only items the role sees appear. An
/// answer that is not `found` is one `OperationOutcome` saying why (`not-found`, or
/// `multiple-matches` for `candidates`: an empty bundle would read as "no doses").
pub fn render_fhir(a: &Answer) -> serde_json::Value {
    use serde_json::json;
    let patient_url = urn_uuid(&format!("patient\0{}", a.persons.join(",")));
    let mut entries = Vec::new();
    if a.status != "found" {
        let (severity, code, text) = if a.status == "candidates" {
            (
                "warning",
                "multiple-matches",
                format!(
                    "候補者が複数います / the query reaches {} person keys not shown to be one person: list them with --format json and query one with --person",
                    a.candidates.len()
                ),
            )
        } else {
            (
                "information",
                "not-found",
                "該当者なし / no person in this archive matches the query".to_string(),
            )
        };
        entries.push(json!({
            "fullUrl": urn_uuid(&format!("outcome\0{}\0{}", a.status, a.candidates.len())),
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": severity, "code": code, "diagnostics": text}],
            },
        }));
    }
    if a.status == "found" {
        let p = &a.person;
        let mut patient = json!({"resourceType": "Patient", "meta": {"profile": [JP_PATIENT]}});
        let mut names = Vec::new();
        let split = |s: &str| -> serde_json::Value {
            let mut parts = s.split(['\u{3000}', ' ']).filter(|x| !x.is_empty());
            let family = parts.next().unwrap_or_default().to_string();
            let given: Vec<String> = parts.map(str::to_string).collect();
            let mut n = json!({"use": "official", "text": s, "family": family});
            if !given.is_empty() {
                n["given"] = json!(given);
            }
            n
        };
        if let Some(k) = p.get("kanji_name") {
            let mut n = split(k);
            n["extension"] = json!([{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE"}]);
            names.push(n);
        }
        if let Some(k) = p.get("kana_name") {
            let mut n = split(k);
            n["extension"] = json!([{"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "SYL"}]);
            names.push(n);
        }
        if let Some(k) = p.get("romaji_name") {
            names.push(json!({"use": "official", "text": k}));
        }
        if !names.is_empty() {
            patient["name"] = json!(names);
        }
        if let Some(b) = p.get("birth_date") {
            patient["birthDate"] = json!(b);
        }
        if let Some(s) = p.get("sex") {
            patient["gender"] = json!(match s.as_str() {
                "M" => "male",
                "F" => "female",
                _ => "unknown",
            });
        }
        let mut ids = Vec::new();
        if let Some(v) = p.get("atena_number") {
            let muni = p.get("municipality_code").cloned().unwrap_or_default();
            ids.push(json!({"system": format!("urn:vaxarc:atena:{muni}"), "value": v}));
        }
        if let Some(v) = p.get("kojin_bango") {
            ids.push(json!({"system": "urn:vaxarc:kojin-bango", "value": v}));
        }
        if let Some(v) = p.get("passport_number") {
            ids.push(json!({"system": "urn:vaxarc:passport", "value": v}));
        }
        if !ids.is_empty() {
            patient["identifier"] = json!(ids);
        }
        entries.push(json!({"fullUrl": patient_url, "resource": patient}));
        let doses = a.covid.iter().map(|d| {
            (
                d,
                "新型コロナウイルス感染症".to_string(),
                "COVID19".to_string(),
            )
        });
        let routine = a.routine.iter().flat_map(|r| {
            r.stages.iter().flat_map(move |s| {
                s.doses
                    .iter()
                    .map(move |d| (d, r.vaccine_name.clone(), r.vaccine_code.clone()))
            })
        });
        for (d, name, code) in doses.chain(routine) {
            let mut imm = json!({
                "resourceType": "Immunization",
                "meta": {"profile": [JP_IMMUNIZATION]},
                "identifier": [{"system": "urn:vaxarc:record-id", "value": d.record_id}],
                "status": "completed",
                "vaccineCode": {"coding": [{"system": "urn:vaxarc:vaccine-code", "code": d.vaccine_code.clone().unwrap_or(code), "display": name}], "text": name},
                "patient": {"reference": patient_url},
            });
            match &d.vaccination_date {
                Some(date) => imm["occurrenceDateTime"] = json!(date),
                None => imm["occurrenceString"] = json!("不明"),
            }
            if let Some(l) = &d.lot_number {
                imm["lotNumber"] = json!(l);
            }
            if let Some(m) = &d.manufacturer {
                imm["manufacturer"] = json!({"display": m});
            }
            if let Some(m) = &d.vaccination_municipality_code {
                imm["location"] = json!({"display": format!("接種自治体 {m}")});
            }
            let mut applied = match d.dose_number {
                Some(n) if n > 0 => json!({"doseNumberPositiveInt": n}),
                _ => json!({"doseNumberString": d.stage.clone().unwrap_or_else(|| "不明".into())}),
            };
            if let Some(s) = &d.stage {
                applied["series"] = json!(s);
            }
            imm["protocolApplied"] = json!([applied]);
            if let Some(p) = &d.product_name {
                imm["note"] = json!([{"text": format!("製品名: {p}")}]);
            }
            entries.push(json!({"fullUrl": urn_uuid(&format!("immunization\0{}", d.record_id)), "resource": imm}));
        }
    }
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

#[cfg(test)]
mod tests;
