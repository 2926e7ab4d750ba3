//! Rendering people into dirty source rows plus their ground truth (pure, no I/O).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::codes::codes;
use super::config::Config;
use super::dates::{fullwidth_digits, reiwa_start, render, render_ymd, Style, WAREKI, WESTERN};
use super::names::{self, pools};
use super::people::{age_on, named_rng, person_rng, Person, Status, VACCINES, V_COVID};
use crate::record::{civil_from_days, format_date};

// ---------------------------------------------------------------- files

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enc {
    Cp932,
    Utf8,
    Utf8Bom,
}

impl Enc {
    pub fn name(self) -> &'static str {
        match self {
            Enc::Cp932 => "cp932",
            Enc::Utf8 => "utf-8",
            Enc::Utf8Bom => "utf-8-bom",
        }
    }
}

pub const F_REGISTRY: usize = 0;
pub const F_VRS_PERSONS: usize = 1;
pub const F_VRS_EXPORT: usize = 2;
pub const F_LEDGER0: usize = 3;
pub const N_FILES: usize = 3 + VACCINES.len();

/// Per-file decisions.
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub id: String,
    pub layout: &'static str,
    pub path: String,
    pub header: Vec<String>,
    pub enc: Enc,
    pub crlf: bool,
    pub zero_pad: bool,
    pub hiragana: bool,
    pub western: Style,
    pub wareki: Style,
    /// 1/2 instead of 男/女
    pub sex_codes: bool,
    pub vaccine_aliases: Vec<String>,
    pub maker_aliases: Vec<(String, Vec<String>)>,
}

pub const LEDGER_HEADER: [&str; 29] = [
    "宛名番号",
    "漢字氏名",
    "かな氏名",
    "生年月日",
    "年齢",
    "性別",
    "住登外",
    "郵便番号",
    "住所",
    "電話番号",
    "接種名称",
    "接種数",
    "接種区分",
    "接種種別",
    "Lot番号",
    "メーカー",
    "接種量",
    "登録日",
    "接種日",
    "接種医療機関",
    "予診票発行",
    "依頼書発行",
    "証明書発行",
    "自己負担区分",
    "生活保護等",
    "障害者情報",
    "個人番号",
    "団体内統合宛名番号",
    "備考",
];
pub const REGISTRY_HEADER: [&str; 11] = [
    "宛名番号",
    "団体内統合宛名番号",
    "個人番号",
    "氏名",
    "カナ",
    "生年月日",
    "性別",
    "郵便番号",
    "住所",
    "住民区分",
    "異動日",
];
pub const VRS_PERSONS_HEADER: [&str; 17] = [
    "宛名番号",
    "個人番号",
    "氏名",
    "カナ",
    "生年月日",
    "性別",
    "自治体コード",
    "接種券番号",
    "接種状況",
    "ローマ字氏名",
    "国籍",
    "旅券番号",
    "旧姓・別姓・別名",
    "証明書ID",
    "証明書発行年月日",
    "ワクチン種類",
    "製品名",
];
const VRS_GROUP: [&str; 8] = [
    "回目接種履歴登録日時",
    "回目接種日",
    "回目券番号",
    "回目接種自治体コード",
    "回目接種会場名",
    "回目接種医師名",
    "回目ワクチンメーカー",
    "回目ワクチンロット番号",
];

const MAKERS: [&str; 11] = [
    "PFIZER",
    "MODERNA",
    "ASTRAZENECA",
    "NOVAVAX",
    "DAIICHI-SANKYO",
    "BIKEN",
    "KM-BIOLOGICS",
    "DENKA",
    "MSD",
    "JAPAN-BCG",
    "TAKEDA",
];

/// Stratified choice: floor(rate*n + u) of n items, at random.
fn stratified(rng: &mut ChaCha8Rng, n: usize, rate: f64) -> Vec<bool> {
    let k = ((rate * n as f64) + rng.random::<f64>()).floor() as usize;
    let mut v: Vec<bool> = (0..n).map(|i| i < k.min(n)).collect();
    v.shuffle(rng);
    v
}

/// Decide every file's encoding and habits from the seed.
pub fn file_specs(config: &Config) -> Vec<FileSpec> {
    let d = &config.dirt;
    let mut rng = named_rng(config.seed, "files");
    let nl = VACCINES.len();
    let cp = stratified(&mut rng, nl, d.ledger_cp932);
    let pad = stratified(&mut rng, nl, d.ledger_zero_pad_atena);
    let hira = stratified(&mut rng, nl, d.ledger_hiragana_kana);
    let mut specs = Vec::new();
    for f in 0..N_FILES {
        let (id, layout, path, header): (String, &'static str, String, Vec<String>) = match f {
            F_REGISTRY => (
                "registry".into(),
                "registry",
                "sources/registry/registry.csv".into(),
                REGISTRY_HEADER.iter().map(|s| s.to_string()).collect(),
            ),
            F_VRS_PERSONS => (
                "vrs-persons".into(),
                "vrs-persons",
                "sources/vrs/vrs-persons.csv".into(),
                VRS_PERSONS_HEADER.iter().map(|s| s.to_string()).collect(),
            ),
            F_VRS_EXPORT => {
                let mut h = vec!["個別宛名番号".to_string()];
                for n in 1..=7 {
                    for g in VRS_GROUP {
                        h.push(format!("{n}{g}"));
                    }
                }
                (
                    "vrs-ledger-export".into(),
                    "vrs-ledger-export",
                    "sources/vrs/vrs-ledger-export.csv".into(),
                    h,
                )
            }
            _ => {
                let code = VACCINES[f - F_LEDGER0];
                (
                    format!("ledger-{code}"),
                    "ledger",
                    format!("sources/ledger/{code}.csv"),
                    LEDGER_HEADER.iter().map(|s| s.to_string()).collect(),
                )
            }
        };
        let vrs = f == F_VRS_PERSONS || f == F_VRS_EXPORT;
        let cp932 = match f {
            F_REGISTRY => rng.random_bool(d.registry_cp932),
            F_VRS_PERSONS | F_VRS_EXPORT => false,
            _ => cp[f - F_LEDGER0],
        };
        let enc = if cp932 {
            Enc::Cp932
        } else if rng.random_bool(if vrs { d.vrs_bom } else { d.utf8_bom }) {
            Enc::Utf8Bom
        } else {
            Enc::Utf8
        };
        let crlf = cp932 || rng.random_bool(d.utf8_crlf);
        let ledger = f >= F_LEDGER0;
        let western = WESTERN[rng.random_range(0..WESTERN.len())];
        let wareki = WAREKI[rng.random_range(0..WAREKI.len())];
        let sex_codes = rng.random_bool(0.5);
        let c = codes();
        let vaccine_aliases = if ledger {
            let mut a = c.vaccine_aliases(VACCINES[f - F_LEDGER0], cp932);
            a.shuffle(&mut rng);
            a
        } else {
            Vec::new()
        };
        let maker_aliases = MAKERS
            .iter()
            .map(|m| (m.to_string(), c.maker_aliases(m, cp932)))
            .collect();
        specs.push(FileSpec {
            id,
            layout,
            path,
            header,
            enc,
            crlf,
            zero_pad: ledger && pad[f - F_LEDGER0],
            hiragana: ledger && hira[f - F_LEDGER0],
            western,
            wareki,
            sex_codes,
            vaccine_aliases,
            maker_aliases,
        });
    }
    specs
}

// ---------------------------------------------------------------- counters

macro_rules! kinds {
    ($($name:ident),* $(,)?) => {
        /// Dirt kinds counted in the summary (names = the Dirt field names).
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug)]
        #[repr(usize)]
        pub enum K { $($name),* }
        pub const KIND_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}
kinds!(
    has_kojin_bango,
    has_integrated_atena,
    moved_out,
    deceased,
    non_resident,
    not_in_registry,
    registry_cp932,
    ledger_cp932,
    utf8_bom,
    utf8_crlf,
    vrs_bom,
    ledger_zero_pad_atena,
    ledger_hiragana_kana,
    wareki_date,
    era_after_end,
    fullwidth_digits,
    halfwidth_kana,
    name_halfwidth_space,
    name_no_space,
    variant_kanji,
    kana_small_large,
    kana_long_vowel,
    kana_typo,
    kojin_missing,
    kojin_invalid,
    vrs_atena_blank,
    vrs_no_dose,
    certificate_holder,
    former_name,
    covid_in_ledger,
    covid_conflict,
    covid_ledger_only,
    remarks_multiline,
    wrong_column_count,
    missing_vaccination_date,
    impossible_date,
    undecodable_bytes,
);

/// (count, eligible) per dirt kind.
#[derive(Clone, Debug)]
pub struct Counters(pub Vec<(u64, u64)>);

impl Default for Counters {
    fn default() -> Self {
        Counters(vec![(0, 0); KIND_NAMES.len()])
    }
}

impl Counters {
    pub fn add(&mut self, k: K, hit: bool) {
        let c = &mut self.0[k as usize];
        c.1 += 1;
        if hit {
            c.0 += 1;
        }
    }
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            a.0 += b.0;
            a.1 += b.1;
        }
    }
}

/// Roll and count.
fn roll(rng: &mut ChaCha8Rng, ctr: &mut Counters, k: K, p: f64) -> bool {
    let hit = rng.random_bool(p);
    ctr.add(k, hit);
    hit
}

// ---------------------------------------------------------------- output buffers

/// One file's bytes for a chunk of people.
#[derive(Default, Debug)]
pub struct FileBuf {
    pub bytes: Vec<u8>,
    /// Physical lines written.
    pub lines: u64,
    pub rows: u64,
}

/// One truth line, with a line number relative to the chunk.
#[derive(Debug)]
pub struct TruthRow {
    pub file: u8,
    pub rel_line: u64,
    /// VRS dose group (1..7), 0 = none.
    pub dose: u8,
    pub person: u64,
    pub outcome: &'static str,
    pub reason: &'static str,
    /// Index of the dose among the chunk's doses.
    pub dose_local: Option<u64>,
    pub merge: &'static str,
    /// The value columns (atena_number .. flags), CSV-escaped and joined.
    pub values: String,
}

/// Everything a chunk of people produces.
#[derive(Debug)]
pub struct ChunkOut {
    pub files: Vec<FileBuf>,
    pub truth: Vec<TruthRow>,
    pub persons: String,
    pub doses: u64,
    pub ctr: Counters,
}

impl ChunkOut {
    pub fn new() -> Self {
        ChunkOut {
            files: (0..N_FILES).map(|_| FileBuf::default()).collect(),
            truth: Vec::new(),
            persons: String::new(),
            doses: 0,
            ctr: Counters::default(),
        }
    }
}

impl Default for ChunkOut {
    fn default() -> Self {
        Self::new()
    }
}

/// Quote a CSV field only when needed.
pub fn csv_field(out: &mut String, f: &str, crlf: bool) {
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        for c in f.chars() {
            match c {
                '"' => out.push_str("\"\""),
                '\n' if crlf => out.push_str("\r\n"),
                _ => out.push(c),
            }
        }
        out.push('"');
    } else {
        out.push_str(f);
    }
}

/// CP932 bytes per BMP code point (0 = not encodable), built once from the encoding_rs
/// Shift_JIS encoder, so the output is exactly what encoding_rs would write (its kanji
/// encoder searches its index and is slow).
fn cp932_table() -> &'static [u16] {
    static T: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = vec![0u16; 0x10000];
        let mut buf = [0u8; 4];
        for cp in 0x80u32..0x10000 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(c.encode_utf8(&mut buf));
            if bad {
                continue;
            }
            t[cp as usize] = match b.len() {
                1 => b[0] as u16,
                2 => ((b[0] as u16) << 8) | b[1] as u16,
                _ => continue,
            };
        }
        t
    })
}

fn encode_into(out: &mut Vec<u8>, s: &str, enc: Enc) {
    match enc {
        Enc::Cp932 => {
            let t = cp932_table();
            for c in s.chars() {
                let cp = c as u32;
                if cp < 0x80 {
                    out.push(cp as u8);
                    continue;
                }
                let v = if cp < 0x10000 { t[cp as usize] } else { 0 };
                assert!(v != 0, "U+{cp:04X} is not encodable in CP932");
                if v < 0x100 {
                    out.push(v as u8);
                } else {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        _ => out.extend_from_slice(s.as_bytes()),
    }
}

/// Header bytes (with BOM when the encoding has one).
pub fn header_bytes(spec: &FileSpec) -> Vec<u8> {
    let mut out = Vec::new();
    if spec.enc == Enc::Utf8Bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut s = String::new();
    for (i, h) in spec.header.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        csv_field(&mut s, h, spec.crlf);
    }
    s.push_str(if spec.crlf { "\r\n" } else { "\n" });
    encode_into(&mut out, &s, spec.enc);
    out
}

/// Append a record; `inject` puts a raw undecodable byte after the first character of a
/// field. Returns the chunk-relative physical line where the record starts.
fn emit(buf: &mut FileBuf, spec: &FileSpec, fields: &[String], inject: Option<(usize, u8)>) -> u64 {
    let start = buf.lines;
    let mut s = String::with_capacity(256);
    let mut tail = String::new();
    let mut split = false;
    for (i, f) in fields.iter().enumerate() {
        let target = if split { &mut tail } else { &mut s };
        if i > 0 {
            target.push(',');
        }
        match inject {
            Some((fi, _)) if fi == i && !f.is_empty() => {
                let cut = f.chars().next().unwrap().len_utf8();
                csv_field(target, &f[..cut], spec.crlf);
                split = true;
                csv_field(&mut tail, &f[cut..], spec.crlf);
            }
            _ => csv_field(target, f, spec.crlf),
        }
        buf.lines += f.matches('\n').count() as u64;
    }
    let nl = if spec.crlf { "\r\n" } else { "\n" };
    if split {
        tail.push_str(nl);
    } else {
        s.push_str(nl);
    }
    encode_into(&mut buf.bytes, &s, spec.enc);
    if split {
        buf.bytes.push(inject.unwrap().1);
        encode_into(&mut buf.bytes, &tail, spec.enc);
    }
    buf.lines += 1;
    buf.rows += 1;
    start
}

/// The value columns of a truth line.
#[derive(Default)]
struct Tv {
    atena: String,
    kojin: String,
    kanji: String,
    kana: String,
    birth: String,
    sex: &'static str,
    vaccine: &'static str,
    stage: &'static str,
    dose_number: String,
    date: String,
    lot: String,
    maker: &'static str,
    muni: String,
    ticket: String,
    flags: Vec<&'static str>,
}

impl Tv {
    fn join(&self) -> String {
        let flags = self.flags.join(";");
        let cols: [&str; 15] = [
            &self.atena,
            &self.kojin,
            &self.kanji,
            &self.kana,
            &self.birth,
            self.sex,
            self.vaccine,
            self.stage,
            &self.dose_number,
            &self.date,
            &self.lot,
            self.maker,
            &self.muni,
            &self.ticket,
            &flags,
        ];
        let mut s = String::with_capacity(128);
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            csv_field(&mut s, c, false);
        }
        s
    }
}

pub const TRUTH_ROWS_HEADER: &str = "file_id,line,dose,person_id,outcome,reason,dose_key,merge,atena_number,kojin_bango,kanji_name,kana_name,birth_date,sex,vaccine_code,stage,dose_number,vaccination_date,lot_number,manufacturer_code,municipality_code,ticket_number,flags";
pub const TRUTH_PERSONS_HEADER: &str = "person_id,in_registry,atena_number,integrated_atena_number,kojin_bango,kanji_name,kana_name,birth_date,sex,registry_status,registry_status_date,municipality_code,ticket_number";

// ---------------------------------------------------------------- field renderers

struct Ctx<'a> {
    config: &'a Config,
}

/// A date in a ledger / registry file. Sets `era_flag` when written in an ended era.
fn date_field(
    rng: &mut ChaCha8Rng,
    ctr: &mut Counters,
    ctx: &Ctx,
    spec: &FileSpec,
    days: i32,
    era_flag: &mut bool,
) -> String {
    let d = &ctx.config.dirt;
    let mut style = if rng.random_bool(d.wareki_date) {
        if rng.random_bool(0.7) {
            spec.wareki
        } else {
            WAREKI[rng.random_range(0..WAREKI.len())]
        }
    } else if rng.random_bool(0.7) {
        spec.western
    } else {
        WESTERN[rng.random_range(0..WESTERN.len())]
    };
    let mut old = false;
    if days >= reiwa_start() && roll(rng, ctr, K::era_after_end, d.era_after_end) {
        old = true;
        if !style.is_wareki() {
            style = spec.wareki;
        }
        *era_flag = true;
    }
    ctr.add(K::wareki_date, style.is_wareki());
    let s = render(days, style, old);
    if roll(rng, ctr, K::fullwidth_digits, d.fullwidth_digits) {
        fullwidth_digits(&s)
    } else {
        s
    }
}

struct NameOut {
    kanji: String,
    kana: String,
    t_kanji: String,
    t_kana: String,
}

/// Render a person's name for one row. `reference`: the registry (no typos or variants).
fn name_field(
    rng: &mut ChaCha8Rng,
    ctr: &mut Counters,
    ctx: &Ctx,
    p: &Person,
    reference: bool,
    hiragana: bool,
) -> NameOut {
    let d = &ctx.config.dirt;
    let u: f64 = rng.random();
    let (sep, t_sep) = if u < d.name_no_space {
        ("", "")
    } else if u < d.name_no_space + d.name_halfwidth_space {
        (" ", "\u{3000}")
    } else {
        ("\u{3000}", "\u{3000}")
    };
    ctr.add(K::name_no_space, sep.is_empty());
    ctr.add(K::name_halfwidth_space, sep == " ");
    let mut fam = p.family_kanji;
    let given = p.given_kanji();
    let mut fk = p.family.kana.to_string();
    let mut gk = p.given.kana.to_string();
    if !reference {
        if p.family.kanji.len() > 1 && roll(rng, ctr, K::variant_kanji, d.variant_kanji) {
            let others: Vec<&&str> = p.family.kanji.iter().filter(|k| **k != fam).collect();
            fam = others[rng.random_range(0..others.len())];
        }
        if (names::has_small(&fk) || names::has_small(&gk))
            && roll(rng, ctr, K::kana_small_large, d.kana_small_large)
        {
            if names::has_small(&gk) {
                gk = names::small_to_large(&gk);
            } else {
                fk = names::small_to_large(&fk);
            }
        }
        if roll(rng, ctr, K::kana_long_vowel, d.kana_long_vowel) {
            gk = names::long_vowel(&gk);
        }
        if roll(rng, ctr, K::kana_typo, d.kana_typo) {
            let chars: Vec<char> = gk.chars().collect();
            let at = rng.random_range(0..chars.len());
            let pool: Vec<char> = names::TYPO_KANA
                .chars()
                .filter(|c| *c != chars[at])
                .collect();
            gk = names::substitute(&gk, at, pool[rng.random_range(0..pool.len())]);
        }
    }
    let t_kana = format!("{fk}{t_sep}{gk}");
    let full = format!("{fk}{sep}{gk}");
    let kana = if hiragana {
        names::to_hiragana(&full)
    } else if roll(rng, ctr, K::halfwidth_kana, d.halfwidth_kana) {
        names::to_halfwidth(&full)
    } else {
        full
    };
    NameOut {
        kanji: format!("{fam}{sep}{given}"),
        kana,
        t_kanji: format!("{fam}{t_sep}{given}"),
        t_kana,
    }
}

/// 個人番号 in a source row: (written, truth, invalid-check-digit flag).
fn kojin_field(
    rng: &mut ChaCha8Rng,
    ctr: &mut Counters,
    ctx: &Ctx,
    p: &Person,
) -> (String, String, bool) {
    let d = &ctx.config.dirt;
    let Some(k) = &p.kojin else {
        return (String::new(), String::new(), false);
    };
    let u: f64 = rng.random();
    let missing = u < d.kojin_missing;
    let invalid = !missing && u < d.kojin_missing + d.kojin_invalid;
    ctr.add(K::kojin_missing, missing);
    ctr.add(K::kojin_invalid, invalid);
    if missing {
        (String::new(), String::new(), false)
    } else if invalid {
        let last = k.as_bytes()[11] - b'0';
        let wrong = (last + rng.random_range(1..10)) % 10;
        (format!("{}{}", &k[..11], wrong), String::new(), true)
    } else {
        (k.clone(), k.clone(), false)
    }
}

fn sex_field(spec: &FileSpec, male: bool) -> String {
    match (spec.sex_codes, male) {
        (true, true) => "1".into(),
        (true, false) => "2".into(),
        (false, true) => "男".into(),
        (false, false) => "女".into(),
    }
}

fn circled(n: u8) -> char {
    char::from_u32(0x2460 + n as u32 - 1).unwrap()
}

/// 接種数 text for a dose: (text, stage truth, dose number truth).
fn stage_form(
    rng: &mut ChaCha8Rng,
    vaccine: usize,
    stage: Option<&'static str>,
    number: Option<u8>,
) -> (String, &'static str, Option<u8>) {
    let fw = |n: u8| fullwidth_digits(&n.to_string());
    match (stage, number) {
        (Some("1期初回"), Some(n)) => {
            let t = match rng.random_range(0..5) {
                0 => format!("第1期初回{n}回目"),
                1 => format!("1期初回 {n}回目"),
                2 => format!("1期初回{}", circled(n)),
                3 => format!("第１期初回{}回目", fw(n)),
                _ => format!("初回{n}回目"),
            };
            (t, "1期初回", Some(n))
        }
        (Some("1期追加"), _) => {
            let t = ["1期追加", "第1期追加", "追加"][rng.random_range(0..3)];
            (t.into(), "1期追加", None)
        }
        (Some(s), _) => {
            let digit = if s == "1期" { 1 } else { 2 };
            let t = match rng.random_range(0..3) {
                0 => format!("第{digit}期"),
                1 => format!("{digit}期"),
                _ => format!("{}期", fw(digit)),
            };
            (t, s, None)
        }
        (None, Some(n)) => {
            // single-dose routine vaccines often leave the column blank
            if vaccine != V_COVID && vaccine != super::people::V_HPV && rng.random_bool(0.6) {
                return (String::new(), "", None);
            }
            let t = match rng.random_range(0..5) {
                0 => format!("{n}回目"),
                1 => format!("{}回目", fw(n)),
                2 => circled(n).to_string(),
                3 => format!("{n}回"),
                _ => format!("第{n}回"),
            };
            (t, "", Some(n))
        }
        (None, None) => (String::new(), "", None),
    }
}

const CLINICS: [&str; 10] = [
    "品川クリニック",
    "大井町内科医院",
    "五反田こどもクリニック",
    "荏原病院",
    "戸越銀座診療所",
    "大崎ファミリークリニック",
    "旗の台小児科",
    "西大井医院",
    "中延内科クリニック",
    "品川区医師会館",
];
const VENUES: [&str; 6] = [
    "品川区役所集団接種会場",
    "大井町集団接種会場",
    "五反田集団接種会場",
    "荏原集団接種会場",
    "品川クリニック",
    "大崎ファミリークリニック",
];
const REMARKS: [&str; 4] = ["集団接種", "転入前接種分", "予診のみ後日接種", "保護者同伴"];
const MULTILINE: [&str; 3] = [
    "体温36.5度,異常なし\n次回予約済み",
    "接種部位:左上腕,発赤なし\n保護者より聴取",
    "転入者,前住所地の記録あり\n証明書確認済み",
];

fn bad_byte(rng: &mut ChaCha8Rng, enc: Enc) -> u8 {
    match enc {
        Enc::Cp932 => [0xA0, 0xFD, 0xFE, 0xFF][rng.random_range(0..4)],
        _ => 0xFF,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    WrongCols,
    Undecodable,
    Missing,
    Impossible,
}

impl Fate {
    fn reason(self) -> &'static str {
        match self {
            Fate::Ok => "",
            Fate::WrongCols => "wrong_column_count",
            Fate::Undecodable => "undecodable_bytes",
            Fate::Missing => "missing_vaccination_date",
            Fate::Impossible => "impossible_date",
        }
    }
}

fn row_fate(rng: &mut ChaCha8Rng, ctr: &mut Counters, ctx: &Ctx, whole: bool, date: bool) -> Fate {
    let d = &ctx.config.dirt;
    let u: f64 = rng.random();
    let mut acc = 0.0;
    let mut fate = Fate::Ok;
    let kinds: [(bool, f64, K, Fate); 4] = [
        (
            whole,
            d.wrong_column_count,
            K::wrong_column_count,
            Fate::WrongCols,
        ),
        (
            whole,
            d.undecodable_bytes,
            K::undecodable_bytes,
            Fate::Undecodable,
        ),
        (
            date,
            d.missing_vaccination_date,
            K::missing_vaccination_date,
            Fate::Missing,
        ),
        (
            date,
            d.impossible_date,
            K::impossible_date,
            Fate::Impossible,
        ),
    ];
    for (on, p, k, f) in kinds {
        if !on {
            continue;
        }
        let hit = fate == Fate::Ok && u >= acc && u < acc + p;
        acc += p;
        ctr.add(k, hit);
        if hit {
            fate = f;
        }
    }
    fate
}

fn wrong_columns(rng: &mut ChaCha8Rng, fields: &mut Vec<String>) {
    if rng.random_bool(0.5) {
        let i = rng.random_range(1..fields.len());
        fields.remove(i);
    } else {
        let i = rng.random_range(1..=fields.len());
        fields.insert(i, String::new());
    }
}

fn impossible_ymd(rng: &mut ChaCha8Rng, days: i32) -> (i32, u8, u8) {
    let (y, _, _) = civil_from_days(days);
    let (m, d) = [(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)][rng.random_range(0..6)];
    (y, m, d)
}

fn maker_alias(rng: &mut ChaCha8Rng, spec: &FileSpec, code: &str) -> String {
    let a = &spec
        .maker_aliases
        .iter()
        .find(|(c, _)| c == code)
        .expect("maker")
        .1;
    a[rng.random_range(0..a.len())].clone()
}

/// VRS maker free text: mostly the presets.
fn vrs_maker(rng: &mut ChaCha8Rng, spec: &FileSpec, code: &str) -> String {
    if rng.random_bool(0.8) {
        match code {
            "PFIZER" => return "ファイザー".into(),
            "MODERNA" => return "武田/モデルナ".into(),
            "ASTRAZENECA" => return "アストラゼネカ".into(),
            _ => {}
        }
    }
    maker_alias(rng, spec, code)
}

fn compact(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

// ---------------------------------------------------------------- per person

/// Render one person into the chunk: registry, VRS and ledger rows plus truth.
pub fn person_rows(config: &Config, specs: &[FileSpec], p: &Person, out: &mut ChunkOut) {
    let ctx = Ctx { config };
    let d = &config.dirt;
    let mut rng = person_rng(config.seed, p.idx, b"rows");
    let rng = &mut rng;
    let dose_base = out.doses;
    out.doses += p.doses.len() as u64;
    let muni = config.municipality_code.as_str();
    let birth_t = format_date(p.birth);
    let sex_t = if p.male { "M" } else { "F" };
    let pid = p.idx;

    // ---- person-level counters
    {
        let ctr = &mut out.ctr;
        ctr.add(K::has_kojin_bango, p.kojin.is_some());
        ctr.add(K::has_integrated_atena, p.integrated.is_some());
        ctr.add(K::not_in_registry, !p.in_registry);
        if p.in_registry {
            ctr.add(K::moved_out, p.status == Some(Status::MovedOut));
            ctr.add(K::deceased, p.status == Some(Status::Deceased));
            ctr.add(K::non_resident, p.status == Some(Status::NonResident));
        }
        if age_on(p.birth, super::people::reference()) >= 5 {
            ctr.add(K::vrs_no_dose, p.vrs_no_dose);
        }
        let covid: Vec<_> = p.doses.iter().filter(|x| x.vaccine == V_COVID).collect();
        if let Some(last) = covid.last() {
            ctr.add(K::covid_ledger_only, !last.in_vrs);
        }
        for x in covid.iter().filter(|x| x.in_vrs) {
            ctr.add(K::covid_in_ledger, x.in_ledger);
            if x.in_ledger {
                ctr.add(K::covid_conflict, x.conflict);
            }
        }
    }

    // ---- persons.csv
    {
        let in_vrs = p.in_vrs();
        let cols = [
            p.person_id(),
            p.in_registry.to_string(),
            p.atena.to_string(),
            p.integrated.map(|x| x.to_string()).unwrap_or_default(),
            p.kojin.clone().unwrap_or_default(),
            format!("{}\u{3000}{}", p.family_kanji, p.given_kanji()),
            format!("{}\u{3000}{}", p.family.kana, p.given.kana),
            birth_t.clone(),
            sex_t.into(),
            p.status.map(|s| s.canonical()).unwrap_or("").into(),
            p.status_date.map(format_date).unwrap_or_default(),
            if in_vrs { muni.into() } else { String::new() },
            if in_vrs {
                p.ticket.to_string()
            } else {
                String::new()
            },
        ];
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.persons.push(',');
            }
            csv_field(&mut out.persons, c, false);
        }
        out.persons.push('\n');
    }

    // ---- registry
    if p.in_registry {
        let spec = &specs[F_REGISTRY];
        let ctr = &mut out.ctr;
        let mut era = false;
        let name = name_field(rng, ctr, &ctx, p, true, false);
        let birth = date_field(rng, ctr, &ctx, spec, p.birth, &mut era);
        let status = p.status.unwrap();
        let words = rng.random_bool(0.4);
        let st = match (status, words) {
            (Status::Resident, false) => "1",
            (Status::MovedOut, false) => "2",
            (Status::Deceased, false) => "3",
            (Status::NonResident, false) => "4",
            (Status::Resident, true) => "住民",
            (Status::MovedOut, true) => "転出",
            (Status::Deceased, true) => "死亡",
            (Status::NonResident, true) => "住登外",
        };
        let sd = match p.status_date {
            Some(x) => date_field(rng, ctr, &ctx, spec, x, &mut era),
            None => String::new(),
        };
        let fields = vec![
            p.atena.to_string(),
            p.integrated.map(|x| x.to_string()).unwrap_or_default(),
            p.kojin.clone().unwrap_or_default(),
            name.kanji,
            name.kana,
            birth,
            sex_field(spec, p.male),
            p.postal.clone(),
            p.address.clone(),
            st.into(),
            sd,
        ];
        let line = emit(&mut out.files[F_REGISTRY], spec, &fields, None);
        let tv = Tv {
            atena: p.atena.to_string(),
            kojin: p.kojin.clone().unwrap_or_default(),
            kanji: name.t_kanji,
            kana: name.t_kana,
            birth: birth_t.clone(),
            sex: sex_t,
            flags: if era { vec!["era_after_end"] } else { vec![] },
            ..Default::default()
        };
        out.truth.push(TruthRow {
            file: F_REGISTRY as u8,
            rel_line: line,
            dose: 0,
            person: pid,
            outcome: "person",
            reason: "",
            dose_local: None,
            merge: "",
            values: tv.join(),
        });
    }

    // ---- VRS persons
    let vrs_doses: Vec<usize> = (0..p.doses.len()).filter(|&i| p.doses[i].in_vrs).collect();
    if p.in_vrs() {
        let spec = &specs[F_VRS_PERSONS];
        let ctr = &mut out.ctr;
        let name = name_field(rng, ctr, &ctx, p, false, false);
        let (kw, kt, kinv) = kojin_field(rng, ctr, &ctx, p);
        let mut fields = vec![
            p.atena.to_string(),
            kw,
            name.kanji,
            name.kana,
            compact(p.birth),
            if p.male { "男".into() } else { "女".into() },
            muni.into(),
            p.ticket.to_string(),
            if vrs_doses.is_empty() {
                "未実施".into()
            } else {
                "実施".into()
            },
        ];
        let mut cert = vec![String::new(); 8];
        if !vrs_doses.is_empty() && roll(rng, ctr, K::certificate_holder, d.certificate_holder) {
            let first = p.doses[vrs_doses[0]]
                .date
                .max(super::people::ymd(2021, 7, 26));
            let last_day = super::people::ymd(2024, 3, 31);
            let issued = rng.random_range(first.min(last_day)..=last_day);
            let maker = vrs_doses
                .iter()
                .map(|&i| &p.doses[i])
                .rfind(|x| x.date <= issued)
                .map(|x| x.maker)
                .unwrap_or("PFIZER");
            let product = match maker {
                "PFIZER" => "コミナティ",
                "MODERNA" => "スパイクバックス",
                "NOVAVAX" => "ヌバキソビッド",
                _ => "バキスゼブリア",
            };
            let letters = b"ABCDEFGHJKLMNPRSTUVWXYZ";
            let alnum = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
            let nat = if rng.random_bool(0.95) {
                "日本"
            } else {
                ["中国", "韓国", "ベトナム", "フィリピン", "米国"][rng.random_range(0..5)]
            };
            cert[0] = format!(
                "{} {}",
                names::romaji(p.family.kana),
                names::romaji(p.given.kana)
            );
            cert[1] = nat.into();
            cert[2] = format!(
                "{}{}{:07}",
                letters[rng.random_range(0..letters.len())] as char,
                letters[rng.random_range(0..letters.len())] as char,
                rng.random_range(0..10_000_000)
            );
            if roll(rng, ctr, K::former_name, d.former_name) {
                let f = &pools().family[rng.random_range(0..pools().family.len())];
                cert[3] = format!("{}\u{3000}{}", f.kanji[0], p.given_kanji());
            }
            cert[4] = (0..12)
                .map(|_| alnum[rng.random_range(0..alnum.len())] as char)
                .collect();
            cert[5] = compact(issued);
            cert[6] = "新型コロナワクチン".into();
            cert[7] = product.into();
        }
        fields.extend(cert);
        let line = emit(&mut out.files[F_VRS_PERSONS], spec, &fields, None);
        let tv = Tv {
            atena: p.atena.to_string(),
            kojin: kt,
            kanji: name.t_kanji,
            kana: name.t_kana,
            birth: birth_t.clone(),
            sex: sex_t,
            muni: muni.into(),
            ticket: p.ticket.to_string(),
            flags: if kinv {
                vec!["invalid_check_digit"]
            } else {
                vec![]
            },
            ..Default::default()
        };
        out.truth.push(TruthRow {
            file: F_VRS_PERSONS as u8,
            rel_line: line,
            dose: 0,
            person: pid,
            outcome: "person",
            reason: "",
            dose_local: None,
            merge: "",
            values: tv.join(),
        });
    }

    // ---- fates of VRS groups and ledger rows (needed for the merge expectation)
    let mut vrs_ok = vec![false; p.doses.len()];
    let mut vrs_row_fate = Fate::Ok;
    let mut group_fates = Vec::new();
    let mut atena_blank = false;
    if !vrs_doses.is_empty() {
        let ctr = &mut out.ctr;
        atena_blank = roll(rng, ctr, K::vrs_atena_blank, d.vrs_atena_blank);
        vrs_row_fate = row_fate(rng, ctr, &ctx, true, false);
        for &i in &vrs_doses {
            let f = if vrs_row_fate == Fate::Ok {
                row_fate(rng, ctr, &ctx, false, true)
            } else {
                vrs_row_fate
            };
            vrs_ok[i] = f == Fate::Ok;
            group_fates.push(f);
        }
    }
    let mut ledger_fate = vec![Fate::Ok; p.doses.len()];
    for (i, x) in p.doses.iter().enumerate() {
        if x.in_ledger {
            ledger_fate[i] = row_fate(rng, &mut out.ctr, &ctx, true, true);
        }
    }
    let merge_of = |i: usize| -> &'static str {
        let x = &p.doses[i];
        if x.in_vrs && x.in_ledger && vrs_ok[i] && ledger_fate[i] == Fate::Ok {
            if x.conflict {
                "conflict"
            } else {
                "merged"
            }
        } else {
            "single"
        }
    };

    // ---- VRS wide export
    if !vrs_doses.is_empty() {
        let spec = &specs[F_VRS_EXPORT];
        let mut fields = vec![if atena_blank {
            String::new()
        } else {
            p.atena.to_string()
        }];
        let mut inject = None;
        for (g, &i) in vrs_doses.iter().enumerate() {
            let x = &p.doses[i];
            let reg = x.date + [0, 0, 0, 1, 1, 2, 3, 5][rng.random_range(0..8)];
            let (y, m, dd) = civil_from_days(reg);
            let date = match group_fates[g] {
                Fate::Missing => String::new(),
                Fate::Impossible => {
                    let (y, m, d) = impossible_ymd(rng, x.date);
                    format!("{y:04}{m:02}{d:02}")
                }
                _ => compact(x.date),
            };
            fields.extend([
                format!(
                    "{y:04}{m:02}{dd:02}{:02}{:02}{:02}",
                    rng.random_range(9..21),
                    rng.random_range(0..60),
                    rng.random_range(0..60)
                ),
                date,
                p.ticket.to_string(),
                muni.to_string(),
                VENUES[rng.random_range(0..VENUES.len())].to_string(),
                {
                    let f = &pools().family[rng.random_range(0..pools().family.len())];
                    let gp = if rng.random_bool(0.5) {
                        &pools().male
                    } else {
                        &pools().female
                    };
                    format!(
                        "{}\u{3000}{}",
                        f.kanji[0],
                        gp[rng.random_range(0..gp.len())].kanji[0]
                    )
                },
                vrs_maker(rng, spec, x.maker),
                x.lot.clone(),
            ]);
        }
        for _ in vrs_doses.len()..7 {
            fields.extend(std::iter::repeat_n(String::new(), 8));
        }
        match vrs_row_fate {
            Fate::WrongCols => wrong_columns(rng, &mut fields),
            Fate::Undecodable => inject = Some((5, bad_byte(rng, spec.enc))),
            _ => {}
        }
        let line = emit(&mut out.files[F_VRS_EXPORT], spec, &fields, inject);
        if vrs_row_fate != Fate::Ok {
            out.truth.push(TruthRow {
                file: F_VRS_EXPORT as u8,
                rel_line: line,
                dose: 0,
                person: pid,
                outcome: "quarantined",
                reason: vrs_row_fate.reason(),
                dose_local: None,
                merge: "",
                values: Tv::default().join(),
            });
        } else {
            for (g, &i) in vrs_doses.iter().enumerate() {
                let x = &p.doses[i];
                let f = group_fates[g];
                let tv = Tv {
                    atena: if atena_blank {
                        String::new()
                    } else {
                        p.atena.to_string()
                    },
                    vaccine: "COVID19",
                    dose_number: (g + 1).to_string(),
                    date: if f == Fate::Ok {
                        format_date(x.date)
                    } else {
                        String::new()
                    },
                    lot: x.lot.to_uppercase(),
                    maker: x.maker,
                    muni: muni.into(),
                    ticket: p.ticket.to_string(),
                    ..Default::default()
                };
                out.truth.push(TruthRow {
                    file: F_VRS_EXPORT as u8,
                    rel_line: line,
                    dose: g as u8 + 1,
                    person: pid,
                    outcome: if f == Fate::Ok {
                        "record"
                    } else {
                        "quarantined"
                    },
                    reason: f.reason(),
                    dose_local: Some(dose_base + i as u64),
                    merge: if f == Fate::Ok { merge_of(i) } else { "" },
                    values: tv.join(),
                });
            }
        }
    }

    // ---- ledger rows
    for (i, x) in p.doses.iter().enumerate() {
        if !x.in_ledger {
            continue;
        }
        let fi = F_LEDGER0 + x.vaccine;
        let spec = &specs[fi];
        let ctr = &mut out.ctr;
        let fate = ledger_fate[i];
        let mut era = false;
        let name = name_field(rng, ctr, &ctx, p, false, spec.hiragana);
        let birth = date_field(rng, ctr, &ctx, spec, p.birth, &mut era);
        let (kw, kt, kinv) = kojin_field(rng, ctr, &ctx, p);
        let date = if x.vaccine == V_COVID {
            x.ledger_date
        } else {
            x.date
        };
        let lot = if x.vaccine == V_COVID {
            x.ledger_lot.clone()
        } else {
            x.lot.clone()
        };
        let (stage_text, stage_t, number_t) = stage_form(rng, x.vaccine, x.stage, x.number);
        let maker_blank = x.vaccine != V_COVID && rng.random_bool(0.1);
        let maker = if maker_blank {
            String::new()
        } else {
            maker_alias(rng, spec, x.maker)
        };
        let reg_day = date + rng.random_range(0..30);
        let reg = date_field(rng, ctr, &ctx, spec, reg_day, &mut era);
        let vdate = match fate {
            Fate::Missing => String::new(),
            Fate::Impossible => {
                let (y, m, dd) = impossible_ymd(rng, date);
                let style = if rng.random_bool(d.wareki_date) {
                    spec.wareki
                } else {
                    spec.western
                };
                render_ymd(y, m, dd, style, false)
            }
            _ => date_field(rng, ctr, &ctx, spec, date, &mut era),
        };
        let remarks = if roll(rng, ctr, K::remarks_multiline, d.remarks_multiline) {
            MULTILINE[rng.random_range(0..MULTILINE.len())].to_string()
        } else if rng.random_bool(0.05) {
            REMARKS[rng.random_range(0..REMARKS.len())].to_string()
        } else {
            String::new()
        };
        let atena = if spec.zero_pad {
            format!("{:010}", p.atena)
        } else {
            p.atena.to_string()
        };
        let volume = match (x.vaccine, x.maker) {
            (0, _) => "",
            (V_COVID, "PFIZER") => "0.3",
            _ => "0.5",
        };
        let mut fields = vec![
            atena,
            name.kanji,
            name.kana,
            birth,
            age_on(p.birth, date).to_string(),
            sex_field(spec, p.male),
            if !p.in_registry || p.status == Some(Status::NonResident) {
                "1".into()
            } else {
                String::new()
            },
            p.postal.clone(),
            p.address.clone(),
            p.phone.clone(),
            spec.vaccine_aliases[if rng.random_bool(0.8) {
                0
            } else {
                rng.random_range(0..spec.vaccine_aliases.len())
            }]
            .clone(),
            stage_text,
            if x.vaccine == V_COVID {
                "特例臨時".into()
            } else {
                "定期".into()
            },
            if rng.random_bool(0.7) {
                "個別".into()
            } else {
                "集団".into()
            },
            lot.clone(),
            maker,
            if rng.random_bool(0.2) && !volume.is_empty() {
                format!("{volume}ml")
            } else {
                volume.into()
            },
            reg,
            vdate,
            CLINICS[rng.random_range(0..CLINICS.len())].into(),
            if rng.random_bool(0.8) {
                "済".into()
            } else {
                String::new()
            },
            if rng.random_bool(0.1) {
                "有".into()
            } else {
                String::new()
            },
            if rng.random_bool(0.05) {
                "済".into()
            } else {
                String::new()
            },
            ["無料", "無料", "無料", "一部負担", "免除"][rng.random_range(0..5)].into(),
            if rng.random_bool(0.03) {
                "1".into()
            } else {
                String::new()
            },
            String::new(),
            kw,
            p.integrated.map(|v| v.to_string()).unwrap_or_default(),
            remarks,
        ];
        let mut inject = None;
        match fate {
            Fate::WrongCols => wrong_columns(rng, &mut fields),
            Fate::Undecodable => inject = Some((8, bad_byte(rng, spec.enc))),
            _ => {}
        }
        let line = emit(&mut out.files[fi], spec, &fields, inject);
        let mut flags = Vec::new();
        if era {
            flags.push("era_after_end");
        }
        if kinv {
            flags.push("invalid_check_digit");
        }
        let ok = fate == Fate::Ok;
        let tv = Tv {
            atena: p.atena.to_string(),
            kojin: kt,
            kanji: name.t_kanji,
            kana: name.t_kana,
            birth: birth_t.clone(),
            sex: sex_t,
            vaccine: VACCINES[x.vaccine],
            stage: stage_t,
            dose_number: number_t.map(|n| n.to_string()).unwrap_or_default(),
            date: if ok || fate == Fate::WrongCols || fate == Fate::Undecodable {
                format_date(date)
            } else {
                String::new()
            },
            lot: lot.to_uppercase(),
            maker: if maker_blank { "" } else { x.maker },
            flags,
            ..Default::default()
        };
        out.truth.push(TruthRow {
            file: fi as u8,
            rel_line: line,
            dose: 0,
            person: pid,
            outcome: if ok { "record" } else { "quarantined" },
            reason: fate.reason(),
            dose_local: Some(dose_base + i as u64),
            merge: if ok { merge_of(i) } else { "" },
            values: tv.join(),
        });
    }
}

#[cfg(test)]
pub fn encode_into_for_test(out: &mut Vec<u8>, s: &str) {
    encode_into(out, s, Enc::Cp932)
}
