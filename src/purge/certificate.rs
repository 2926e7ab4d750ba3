//! Erasure certificates (データ消去証明書): NIST SP 800-88 Rev.1 Appendix G fields adapted
//! to data in an archive, signed with minisign, with a printable Markdown rendering.
//! No personal data: counts, object paths, hashes and roots only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rewrite::{history_manifest, history_signature, Destroyed};
use crate::archive::manifest::{self, Manifest};
use crate::archive::store::Store;

/// Certificate format id.
pub const FORMAT: &str = "vaxarc-erasure-certificate";

/// What the certificate does not cover, in words (also printed).
pub const NOT_COVERED: &[&str] = &[
    "Copies outside this archive: exports, printouts, downloads, other systems, and backups of the storage taken before this purge are not erased by file deletion (their partitions are unreadable once the wrapped keys are destroyed only if the keys were never copied elsewhere). 本アーカイブ外の複製は対象外。",
    "The original source files (legacy CSV exports, registry extracts) and any staging copies: they were never encrypted and need their own sanitization record. 移行元ファイルは対象外。",
    "Previous versions of objects kept by the storage (snapshots, versioned buckets, file-system journals): issue 11. ストレージの旧版は対象外。",
    "Quarantined source rows (rows that never became records): a purge destroys those whose retention has run out by the 接種日 and vaccine code migrate read from their columns; it cannot decide, and keeps, a row whose 接種日 or vaccine code could not be read, a row with the wrong number of fields, a COVID-19 dose of the special period (its period counts from a death), a quarantined row of the resident registry or the VRS person list (persons, not doses), and every row of an archive migrated before vaxarc kept those facts. A purge or erase removes the review-list rows of the erased records; an erase also removes review rows naming the person as a candidate and quarantined rows holding one of the person's 宛名番号, 個人番号 or 接種券番号 as a whole field, or one of the names of the person's records (kana or kanji, compared by match key) together with their birth date — a quarantined row naming the person by name alone, by birth date alone, or by a name spelled otherwise than in their records (a typo, a former name) is not found, and another person's quarantined row holding the same number, or the same name and birth date, is removed too. The whole list is destroyed only by `vaxarc erase --quarantine`, with its own certificate. 隔離行は接種日とワクチンが読めたもののみ保存期間で評価（読めない行・列数違い・特例臨時接種分は保持。消去では本人の番号、または氏名と生年月日を含む行を削除、全件は erase --quarantine）。",
    "An erase takes the person keys its identifier reaches (refusing when they are not shown to be one person) and the keys of records linked to no registry resident that share a number with them and are shown to be the same person (one birth date, kana name and sex agreeing: docs/purge.md). A key sharing one of the person's numbers that is not shown to be them — a copy without a birth date or with a mistyped one, a kana typo, a registry resident whose row carries the number — is not erased: the run names it (`persons_left`), and it is erased only by its own `vaxarc erase --person`. 本人と確認できない同一番号の記録は対象外（persons_left に列挙）。",
    "Custodian identities: anyone holding a copy of a destroyed wrapped key together with a custodian identity can still decrypt a copy of the destroyed ciphertext.",
];

/// Performer or validator (App. G).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Person {
    /// Name (staff name as printed on the certificate; not the data subject).
    pub name: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Organisation.
    pub organisation: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Signature and date are given on paper (validator) or by the minisign signature.
    pub date: Option<String>,
}

/// Media section.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Media {
    /// Archive id.
    pub archive_id: String,
    /// 地方公共団体コード.
    pub municipality_code: String,
    /// Media type.
    pub media_type: String,
    /// Partitions whose every record was erased (object paths).
    pub partitions_dropped: Vec<String>,
    /// Partitions rewritten with their survivors under a new key: (old, new).
    pub partitions_rewritten: Vec<(String, String)>,
    /// Data backed up (App. G): unknown to vaxarc.
    pub data_backed_up: String,
}

/// Sanitization section.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sanitization {
    /// Clear / Purge / Destroy.
    pub method_type: String,
    /// Method used.
    pub method_used: String,
    /// Details.
    pub method_details: String,
    /// Tool and version.
    pub tool: String,
    /// Full / Quick sampling / Other.
    pub verification_method: String,
    /// Verification results.
    pub verification: Verification,
}

/// The post-erasure checks actually run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    /// Partitions decrypted after the erasure.
    pub partitions_scanned: u64,
    /// Records re-evaluated.
    pub records_scanned: u64,
    /// Records that still should be gone (must be 0).
    pub expired_records_remaining: u64,
    /// Identifier hashes of erased persons looked up in the new index.
    pub lookups_attempted: u64,
    /// Lookups that found an erased person (must be 0).
    pub lookups_found: u64,
    /// Destroyed objects still present (must be 0).
    pub destroyed_objects_present: u64,
    /// Rows of the new review and quarantine lists that still name an erased record or
    /// person (must be 0).
    #[serde(default)]
    pub list_rows_remaining: u64,
    /// `vaxarc verify` of the new generation found no problem.
    pub archive_verifies: bool,
    /// All of the above hold.
    pub passed: bool,
}

/// Records erased.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Erased {
    /// Records.
    pub records: u64,
    /// By rule id (or `erase`).
    pub by_rule: BTreeMap<String, u64>,
    /// By vaccine code.
    pub by_vaccine: BTreeMap<String, u64>,
    /// By year of 接種日.
    pub by_year: BTreeMap<String, u64>,
    /// Persons whose identifiers left the lookup index.
    pub persons_removed_from_index: u64,
    /// Index rows removed.
    pub index_rows_removed: u64,
    /// Review-list rows removed (naming an erased record, or an erased person as the
    /// candidate).
    #[serde(default)]
    pub review_rows_removed: u64,
    /// Quarantine-list rows removed (holding an erased person's identifier).
    #[serde(default)]
    pub quarantine_rows_removed: u64,
    /// Erase: person keys left that share a 宛名番号, 個人番号 or ticket with the erased
    /// records but were not shown to be the same person (the run's `persons_left`; not
    /// erased, and not covered by this certificate).
    #[serde(default)]
    pub persons_left: u64,
}

/// Manifest roots.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Roots {
    /// Generation before.
    pub generation_before: u64,
    /// Merkle root before.
    pub root_before: String,
    /// Generation after.
    pub generation_after: u64,
    /// Merkle root after.
    pub root_after: String,
}

/// An erasure certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Certificate {
    /// [`FORMAT`].
    pub format: String,
    /// 1.
    pub format_version: u32,
    /// `purge` or `erase`.
    pub kind: String,
    /// Id: `<archive id>-g<generation>-<kind>`.
    pub certificate_id: String,
    /// UTC issue time.
    pub issued: String,
    /// Operator id.
    pub operator: String,
    /// Performer (App. G).
    pub performer: Person,
    /// Validator slot (App. G): filled and signed on paper by a second person.
    pub validator: Person,
    /// What was sanitized.
    pub media: Media,
    /// How.
    pub sanitization: Sanitization,
    /// The request: as-of date, rules and inputs (by hash), or the erase reason.
    pub request: BTreeMap<String, String>,
    /// Records erased.
    pub erased: Erased,
    /// Every destroyed ciphertext and wrapped key.
    pub destroyed: Vec<Destroyed>,
    /// Manifest roots before and after.
    pub manifest: Roots,
    /// Inclusion proof of this erasure's audit-log entry (an `audit::AppendReceipt`:
    /// index, size, root, leaf hash, inclusion proof, the entry line).
    pub audit: Option<serde_json::Value>,
    /// What this certificate does not cover.
    pub not_covered: Vec<String>,
    /// Set when a later run issued this certificate for a run killed after its commit and
    /// before its certificate: who issued it, and what was checked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

/// Where certificates are stored (each `<generation>-<kind>.json`, [`path`]).
pub const PREFIX: &str = "certificates/";

/// Object path of a certificate.
pub fn path(generation: u64, kind: &str) -> String {
    format!("{PREFIX}{generation:06}-{kind}.json")
}

/// Write the certificate, its signature and its printable rendering into the archive.
pub fn write(
    store: &Store,
    cert: &Certificate,
    signing: &minisign::SecretKey,
) -> Result<(String, Vec<u8>), crate::archive::ArchiveError> {
    let json = serde_json::to_vec_pretty(cert)
        .map_err(|e| crate::archive::ArchiveError::State(e.to_string()))?;
    let comment = format!(
        "vaxarc certificate {} root={}",
        cert.certificate_id, cert.manifest.root_after
    );
    let sig = manifest::sign(signing, &json, &comment).map_err(|e| {
        crate::archive::ArchiveError::State(format!("cannot sign the certificate: {e}"))
    })?;
    let p = path(cert.manifest.generation_after, &cert.kind);
    // The signature and the printable form first, the JSON last: a certificate whose JSON
    // exists is complete (a run killed in between leaves no JSON, and the next purge or
    // erase writes all three again).
    store.put(&format!("{p}.minisig"), sig.into_bytes())?;
    store.put(
        &p.replace(".json", ".md"),
        render_markdown(cert).into_bytes(),
    )?;
    store.put(&p, json.clone())?;
    Ok((p, json))
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Printable rendering with Japanese and English labels.
pub fn render_markdown(c: &Certificate) -> String {
    let mut s = String::new();
    let title = if c.kind == "erase" {
        "個人データ消去証明書 / Certificate of Erasure (one person)"
    } else {
        "データ消去証明書 / Certificate of Sanitization (retention purge)"
    };
    s.push_str(&format!("# {title}\n\n"));
    s.push_str(&format!(
        "証明書ID / Certificate id: `{}`  \n発行日時 / Issued: {}  \n",
        c.certificate_id, c.issued
    ));
    if let Some(r) = &c.recovered {
        s.push_str(&format!(
            "\n> 中断された処理の後続実行による発行 / Issued on recovery: {r}\n"
        ));
    }
    s.push_str("\n## 実施者 / Performer\n\n| 項目 / Field | 内容 / Value |\n|---|---|\n");
    for (l, v) in [
        ("氏名 / Name", opt(&c.performer.name)),
        ("役職 / Title", opt(&c.performer.title)),
        ("所属 / Organisation", opt(&c.performer.organisation)),
        ("場所 / Location", opt(&c.performer.location)),
        ("電話 / Phone", opt(&c.performer.phone)),
        ("操作者ID / Operator id", c.operator.as_str()),
    ] {
        s.push_str(&format!("| {l} | {v} |\n"));
    }
    s.push_str("\n## 対象 / Media\n\n| 項目 / Field | 内容 / Value |\n|---|---|\n");
    s.push_str(&format!(
        "| アーカイブID / Archive id | `{}` |\n",
        c.media.archive_id
    ));
    s.push_str(&format!(
        "| 団体コード / Municipality | {} |\n",
        c.media.municipality_code
    ));
    s.push_str(&format!(
        "| 媒体種別 / Media type | {} |\n",
        c.media.media_type
    ));
    s.push_str(&format!(
        "| 削除パーティション / Partitions dropped | {} |\n",
        c.media.partitions_dropped.len()
    ));
    s.push_str(&format!(
        "| 再暗号化パーティション / Partitions rewritten | {} |\n",
        c.media.partitions_rewritten.len()
    ));
    s.push_str(&format!(
        "| バックアップ / Data backed up | {} |\n",
        c.media.data_backed_up
    ));
    s.push_str("\n## 消去方法 / Sanitization\n\n| 項目 / Field | 内容 / Value |\n|---|---|\n");
    let v = &c.sanitization.verification;
    for (l, val) in [
        ("方式 / Method type", c.sanitization.method_type.clone()),
        ("手法 / Method used", c.sanitization.method_used.clone()),
        ("詳細 / Details", c.sanitization.method_details.clone()),
        ("ツール / Tool", c.sanitization.tool.clone()),
        (
            "検証方法 / Verification method",
            c.sanitization.verification_method.clone(),
        ),
        (
            "検証結果 / Verification passed",
            if v.passed {
                "合格 / passed".into()
            } else {
                "不合格 / FAILED".into()
            },
        ),
        (
            "再走査レコード / Records rescanned",
            v.records_scanned.to_string(),
        ),
        (
            "残存期限切れ / Expired records remaining",
            v.expired_records_remaining.to_string(),
        ),
        (
            "照会ヒット / Lookups of erased persons found",
            format!("{} of {}", v.lookups_found, v.lookups_attempted),
        ),
        (
            "残存オブジェクト / Destroyed objects present",
            v.destroyed_objects_present.to_string(),
        ),
        (
            "リスト残存行 / Review and quarantine rows remaining",
            v.list_rows_remaining.to_string(),
        ),
    ] {
        s.push_str(&format!("| {l} | {val} |\n"));
    }
    s.push_str("\n## 依頼 / Request\n\n");
    for (k, val) in &c.request {
        s.push_str(&format!("- {k}: {val}\n"));
    }
    s.push_str(&format!(
        "\n## 消去件数 / Records erased: {}\n\n",
        c.erased.records
    ));
    for (label, map) in [
        ("規則 / Rule", &c.erased.by_rule),
        ("ワクチン / Vaccine", &c.erased.by_vaccine),
        ("接種年 / Year", &c.erased.by_year),
    ] {
        s.push_str(&format!("| {label} | 件数 / Records |\n|---|---:|\n"));
        for (k, n) in map {
            s.push_str(&format!("| {k} | {n} |\n"));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "- 索引から削除した人 / Persons removed from the index: {}\n- 照合待ちリストから削除した行 / Review rows removed: {}\n- 隔離リストから削除した行 / Quarantined rows removed: {}\n\n",
        c.erased.persons_removed_from_index, c.erased.review_rows_removed, c.erased.quarantine_rows_removed
    ));
    if c.erased.persons_left > 0 {
        s.push_str(&format!(
            "- 同一番号を持つが本人と確認できず残した人 / Persons sharing a number with the erased records, left (not shown to be the same person; not covered): {}\n\n",
            c.erased.persons_left
        ));
    }
    s.push_str(&format!(
        "## マニフェスト / Manifest\n\n- 世代 / Generation {} → {}\n- Merkle root 前 / before: `{}`\n- Merkle root 後 / after: `{}`\n",
        c.manifest.generation_before, c.manifest.generation_after, c.manifest.root_before, c.manifest.root_after
    ));
    s.push_str(&format!("\n## 破棄オブジェクト / Destroyed objects ({})\n\n| path | role | blake3 |\n|---|---|---|\n", c.destroyed.len()));
    for d in &c.destroyed {
        s.push_str(&format!("| `{}` | {} | `{}` |\n", d.path, d.role, d.blake3));
    }
    s.push_str("\n## 対象外 / Not covered\n\n");
    for n in &c.not_covered {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str("\n## 確認者 / Validator\n\n| 氏名 / Name | 役職 / Title | 所属 / Organisation | 署名 / Signature | 日付 / Date |\n|---|---|---|---|---|\n|  |  |  |  |  |\n");
    s.push_str("\nThe JSON certificate beside this file is signed with minisign (`minisign -Vm <file>.json -p signing.pub`); this rendering is for printing only.\n");
    s
}

/// One problem found by [`verify`], naming the file.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// File or object.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// Check a certificate: signature, every destroyed object absent, roots agree with the
/// archive's `history/` manifests (themselves signed).
pub fn verify(
    cert_path: &std::path::Path,
    store: &Store,
    public: &minisign::PublicKey,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let name = cert_path.display().to_string();
    let mut problem = |path: &str, what: String| {
        problems.push(Problem {
            path: path.to_string(),
            problem: what,
        })
    };
    let sig_path = format!("{name}.minisig");
    let bytes = match std::fs::read(cert_path) {
        Ok(b) => b,
        Err(e) => {
            problem(&name, format!("cannot read: {e}"));
            return problems;
        }
    };
    match std::fs::read_to_string(&sig_path) {
        Ok(sig) => {
            if let Err(e) = manifest::verify_signature(public, &bytes, &sig) {
                problem(
                    &name,
                    format!("signature `{sig_path}` does not verify: {e}"),
                );
            }
        }
        Err(e) => problem(&sig_path, format!("cannot read the signature: {e}")),
    }
    let cert: Certificate = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            problem(
                &name,
                format!(
                    "not a certificate (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            );
            return problems;
        }
    };
    if cert.format != FORMAT {
        problem(&name, format!("`format` is not {FORMAT}"));
    }
    // The erasure's audit entry: the proof must verify, and the entry must still be the
    // log's leaf at that index (a deleted or altered entry breaks this).
    match cert
        .audit
        .as_ref()
        .map(|v| serde_json::from_value::<crate::audit::AppendReceipt>(v.clone()))
    {
        None => problem(&name, "carries no audit-log inclusion proof".into()),
        Some(Err(_)) => problem(&name, "`audit` is not an inclusion receipt".into()),
        Some(Ok(receipt)) => {
            if !crate::audit::verify_inclusion(&receipt) {
                problem(&name, "the audit inclusion proof does not verify".into());
            }
            match crate::audit::read_log(store) {
                Ok(log) => {
                    let i = receipt.index as usize;
                    let line = log.lines.get(i).map(|l| String::from_utf8_lossy(l));
                    if line.as_deref() != Some(receipt.entry.as_str()) {
                        problem(
                            &log.place(i),
                            format!(
                                "entry {} differs from the one this certificate proves",
                                receipt.index + 1
                            ),
                        );
                    }
                }
                Err(e) => problem(crate::audit::SEGMENT_PREFIX, e.to_string()),
            }
        }
    }
    let current = crate::archive::read_manifest(store).ok().map(|(m, _)| m);
    if let Some(m) = &current {
        if m.archive_id != cert.media.archive_id {
            problem(&name, "names another archive id".into());
        }
    }
    for d in &cert.destroyed {
        if store.is_object_storage() {
            match store.list_versions(&d.path) {
                Ok(v) if !v.is_empty() => problem(
                    &d.path,
                    format!(
                        "{} version(s) of a destroyed object remain in the bucket",
                        v.len()
                    ),
                ),
                Ok(_) => {}
                Err(e) => problem(&d.path, e.to_string()),
            }
        }
        match store.exists(&d.path) {
            Ok(true) => problem(
                &d.path,
                "destroyed by this certificate but present in the archive".into(),
            ),
            Ok(false) => {}
            Err(e) => problem(&d.path, e.to_string()),
        }
        if current
            .as_ref()
            .is_some_and(|m| m.files.iter().any(|f| f.path == d.path))
        {
            problem(
                &d.path,
                "destroyed by this certificate but listed in the current manifest".into(),
            );
        }
    }
    let load = |generation: u64| -> Result<Manifest, (String, String)> {
        let p = history_manifest(generation);
        let text = store.get(&p).map_err(|e| (p.clone(), e.to_string()))?;
        let sp = history_signature(generation);
        let sig = store.get(&sp).map_err(|e| (sp.clone(), e.to_string()))?;
        manifest::verify_signature(public, &text, &String::from_utf8_lossy(&sig))
            .map_err(|e| (sp.clone(), format!("does not verify: {e}")))?;
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| (p.clone(), format!("not a manifest: {e}")))?;
        if manifest::files_root(&m.files) != m.merkle_root {
            return Err((p, "Merkle root does not match its file list".into()));
        }
        Ok(m)
    };
    let r = &cert.manifest;
    match (load(r.generation_before), load(r.generation_after)) {
        (Ok(before), Ok(after)) => {
            if before.merkle_root != r.root_before {
                problem(
                    &history_manifest(r.generation_before),
                    "Merkle root differs from the certificate's root before".into(),
                );
            }
            if after.merkle_root != r.root_after {
                problem(
                    &history_manifest(r.generation_after),
                    "Merkle root differs from the certificate's root after".into(),
                );
            }
            if after.previous_root.as_deref() != Some(before.merkle_root.as_str()) {
                problem(
                    &history_manifest(r.generation_after),
                    "previous_root does not chain to the generation before".into(),
                );
            }
            for d in &cert.destroyed {
                if !before
                    .files
                    .iter()
                    .any(|f| f.path == d.path && f.blake3 == d.blake3 && f.size == d.size)
                {
                    problem(
                        &d.path,
                        "not listed with this blake3 in the manifest before the erasure".into(),
                    );
                }
                if after.files.iter().any(|f| f.path == d.path) {
                    problem(
                        &d.path,
                        "still listed in the manifest after the erasure".into(),
                    );
                }
            }
        }
        (b, a) => {
            for e in [b.err(), a.err()].into_iter().flatten() {
                problem(&e.0, e.1);
            }
        }
    }
    problems
}
