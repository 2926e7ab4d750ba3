//! Pure renderings of a [`Report`]: aligned text tables for the terminal and one
//! self-contained HTML file (inline CSS and SVG bar charts; no scripts, no external
//! fonts, stylesheets or images, so it opens offline and prints as it looks).
//!
//! Every number comes from a [`Count`], already suppressed below the threshold; a
//! suppressed count is shown as `<N` and drawn as a hatched stub of fixed height that
//! reveals nothing about its size.

use super::{Count, Labelled, Report};

/// Display width of a string in a terminal: East Asian wide characters take two cells.
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = (0x1100..=0x115F).contains(&u)
                || (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// An aligned text table: the first column left-aligned, the others right-aligned.
pub fn table(headings: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headings.len();
    let mut widths: Vec<usize> = headings.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from(" ");
        for (i, cell) in cells.iter().enumerate().take(cols) {
            let pad = " ".repeat(widths[i].saturating_sub(width(cell)));
            if i < 2 {
                out.push_str(&format!(" {cell}{pad} "));
            } else {
                out.push_str(&format!(" {pad}{cell} "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&headings.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty()
        && s.trim_start_matches('<')
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',')
}

/// A code as shown to staff: its Japanese name, then the code (`宛名番号 / atena`); codes
/// without a name here are shown as they are.
pub fn label(code: &str) -> String {
    let ja = match code {
        // Match methods (docs/reconcile.md).
        "atena" => "宛名番号",
        "integrated_atena" => "団体内統合宛名番号",
        "kojin_bango" => "個人番号",
        "ticket" => "接種券番号",
        "probabilistic" => "確率的照合",
        "review" => "要確認",
        "none" => "照合なし",
        // Registry statuses.
        "resident" => "住民",
        "moved_out" => "転出",
        "deceased" => "死亡",
        "non_resident" => "住民外",
        "unlinked" => "未連結",
        // Merge statuses.
        "single" => "単独",
        "merged" => "統合",
        "conflict" => "不一致",
        // Retention classes.
        "routine_5y" => "定期（5年保存）",
        "covid_special" => "新型コロナ特例",
        // Quarantine reasons (docs/quarantine.md).
        "wrong_column_count" => "列数不一致",
        "unbalanced_quote" => "引用符の不一致（複数行）",
        "undecodable_bytes" => "文字化け",
        "field_too_long" => "項目が長すぎる",
        "missing_vaccination_date" => "接種日なし",
        "missing_vaccine_code" => "接種名称なし",
        "missing_required_field" => "必須項目なし",
        "no_person_key" => "本人特定項目なし",
        "unparseable_date" => "日付を解釈できない",
        "impossible_date" => "存在しない日付",
        "date_before_era" => "元号開始前の日付",
        "unknown_vaccine" => "不明なワクチン",
        "invalid_value" => "不正な値",
        // Source kinds.
        "ledger" => "予防接種台帳",
        "vrs-ledger-export" => "VRS接種記録",
        "vrs-persons" => "VRS個人",
        "registry" => "住民記録",
        // Items a record's `conflicts` field names (docs/reconcile.md).
        "birth_date" => "生年月日",
        "sex" => "性別",
        "kana_name" => "カナ氏名",
        "kanji_name" => "漢字氏名",
        "dose_date" => "接種日",
        "lot_number" => "ロット番号",
        "ticket_atena" => "接種券番号と宛名番号",
        // Retention status against the as-of date.
        "past" => "満了（消去対象）",
        "this_year" => "本年満了",
        "future" => "保存中",
        "open" => "期限未定",
        _ => return code.to_string(),
    };
    format!("{ja} / {code}")
}

/// Target ages `[from, to)` as shown: `0歳`, `2–7歳`.
fn ages(range: [u32; 2]) -> String {
    let last = range[1].saturating_sub(1);
    if last <= range[0] {
        format!("{}歳", range[0])
    } else {
        format!("{}–{}歳", range[0], last)
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "-".into())
}

/// Table rows of every section, shared by the text and HTML renderings: (id,
/// heading, column headings, rows).
type Section = (&'static str, String, Vec<&'static str>, Vec<Vec<String>>);

fn sections(r: &Report) -> Vec<Section> {
    let b = r.suppress_below;
    let s = |c: &Count| c.display(b);
    let mut out: Vec<Section> = Vec::new();
    out.push((
        "totals",
        "概要 / Summary".into(),
        vec!["項目 / item", "件数 / count"],
        vec![
            vec!["入力行数 / rows read".into(), s(&r.totals.rows_read)],
            vec!["保存記録数 / records archived".into(), s(&r.totals.records)],
            vec![
                "記録のある人数 / people with records".into(),
                s(&r.totals.people),
            ],
            vec!["統合記録数 / records merged".into(), s(&r.totals.merged)],
            vec!["隔離件数 / quarantined".into(), s(&r.totals.quarantined)],
            vec![
                "住民記録行数 / registry rows read".into(),
                s(&r.totals.registry_rows),
            ],
            vec![
                "保存期間満了の記録（消去対象） / records past retention (purge due)".into(),
                s(&r.totals.past_retention),
            ],
        ],
    ));
    out.push((
        "vaccine-totals",
        "接種の種類ごとの実施人数 / People vaccinated per vaccine".into(),
        vec![
            "ワクチン / vaccine",
            "名称 / name",
            "人数 / people",
            "接種件数 / doses",
        ],
        r.vaccine_totals
            .iter()
            .map(|v| {
                vec![
                    v.vaccine.clone(),
                    v.vaccine_name.clone(),
                    s(&v.people),
                    s(&v.doses),
                ]
            })
            .collect(),
    ));
    out.push((
        "unvaccinated",
        format!(
            "定期接種の未接種者数（{}現在、{}） / Routine schedule: residents in the target ages with no dose recorded, as of {}",
            r.as_of,
            if r.unvaccinated_population == "registry_extract" {
                "移行時の住民基本台帳の住民"
            } else {
                "記録のある住民"
            },
            r.as_of
        ),
        vec!["ワクチン / vaccine", "名称 / name", "対象年齢 / ages", "対象者 / target", "接種済 / vaccinated", "未接種 / unvaccinated"],
        r.unvaccinated
            .iter()
            .map(|u| {
                // No archived dose of this vaccine at all: the sources probably hold none
                // (no ledger of it), and "everyone unvaccinated" would mislead.
                let none = !r.vaccine_totals.iter().any(|v| v.vaccine == u.vaccine);
                vec![
                    u.vaccine.clone(),
                    if none {
                        format!("{}（記録なし: 記録元を確認 / no dose of it archived: check the sources）", u.vaccine_name)
                    } else {
                        u.vaccine_name.clone()
                    },
                    ages(u.target_ages),
                    s(&u.target_population),
                    s(&u.vaccinated),
                    s(&u.unvaccinated),
                ]
            })
            .collect(),
    ));
    let rc = &r.reconciliation;
    out.push((
        "outcomes",
        "照合結果（照合方法 × 住民区分） / Reconciliation outcomes by method and registry status"
            .into(),
        vec!["照合方法 / method", "住民区分 / status", "記録数 / records"],
        rc.outcomes
            .iter()
            .map(|o| vec![label(&o.method), label(&o.status), s(&o.records)])
            .collect(),
    ));
    // Each row says what it counts (docs/reconcile.md, section 5).
    let merge_meaning = |status: &str| {
        match status {
        "single" => "保存記録: 他の入力に同じ接種なし / archived record: no copy of the dose in another source",
        "merged" => "保存記録: 他の入力の同じ接種を取り込んだ / archived record that absorbed copies of the same dose",
        "conflict" => "保存記録: VRSと台帳で接種日かロットが異なる（両方保存） / archived record: the VRS export and a ledger give another date or lot (both kept)",
        _ => "",
    }
    };
    let mut rec_rows: Vec<Vec<String>> = Vec::new();
    for l in &rc.by_merge_status {
        rec_rows.push(vec![
            format!("統合状態 / merge status: {}", label(&l.label)),
            s(&l.count),
            merge_meaning(&l.label).into(),
        ]);
    }
    rec_rows.push(vec![
        "統合された行 / merged rows".into(),
        s(&rc.merged_rows),
        "入力行: 他の記録に取り込まれ単独では保存せず（出所は merged_provenance） / source rows folded into another record, not archived on their own (named in its merged_provenance)".into(),
    ]);
    rec_rows.push(vec![
        "不一致のある記録 / records with conflicts".into(),
        s(&rc.conflicts),
        "保存記録: conflicts 欄が空でない / archived records whose conflicts field names an item"
            .into(),
    ]);
    for l in &rc.conflicts_by_field {
        rec_rows.push(vec![
            format!("不一致の項目 / conflicting item: {}", label(&l.label)),
            s(&l.count),
            "その項目が conflicts 欄にある保存記録（住民記録・他の入力と異なる） / archived records whose conflicts field names it (differs from the registry or the other source)".into(),
        ]);
    }
    rec_rows.push(vec![
        "確認待ち / possible matches awaiting review".into(),
        s(&rc.awaiting_review),
        "保存記録: 住民との照合候補あり、自動連結せず / archived records with a registry candidate not linked automatically (review list)".into(),
    ]);
    out.push((
        "reconciliation",
        "統合・不一致・確認待ち / Merges, conflicts, review".into(),
        vec!["項目 / item", "件数 / count", "意味 / meaning"],
        rec_rows,
    ));
    out.push((
        "quarantine",
        "隔離（入力ファイル・理由別） / Quarantine by source file and reason".into(),
        vec!["入力 / source", "理由 / reason", "件数 / rows"],
        r.quarantine
            .iter()
            .map(|q| vec![q.file_id.clone(), label(&q.reason), s(&q.rows)])
            .collect(),
    ));
    out.push((
        "accounting",
        "入力ファイルごとの件数照合（行 = 読込 + 接種なし + 隔離、記録 = 保存 + 統合。VRS接種記録は1行に複数回の接種） / Accounting per source (rows = loaded + without doses + quarantined; records = archived + merged; a VRS export row holds several doses)".into(),
        vec!["入力 / source", "種別 / kind", "行 / rows", "記録 / records", "保存 / archived", "統合 / merged", "隔離 / quarantined", "人 / persons", "一致 / balanced"],
        r.accounting
            .iter()
            .map(|a| {
                vec![
                    a.file_id.clone(),
                    label(&a.kind),
                    s(&a.rows_read),
                    s(&a.records),
                    s(&a.archived),
                    s(&a.merged),
                    s(&a.quarantined),
                    s(&a.persons),
                    if a.balanced { "一致 / yes" } else { "不一致 / NO" }.into(),
                ]
            })
            .collect(),
    ));
    out.push((
        "retention",
        "保存期限の見通し（open = 期限未定: 存命者の新型コロナ特例接種の記録） / Retention outlook (open = no expiry yet: COVID-19 special-period records of living persons)".into(),
        vec!["満了年 / expiry", "保存区分 / class", "区画 / partitions", "記録数 / records", "状態 / status"],
        r.retention
            .iter()
            .map(|x| vec![x.expiry.clone(), label(&x.retention_class), x.partitions.to_string(), s(&x.records), label(x.status)])
            .collect(),
    ));
    out.push((
        "vaccinated",
        "付表: 接種の種類・期・回・年・年齢区分ごとの実施人数（年 = 接種日の暦年、年齢 = 接種時の年齢、- = 記載なし） / Appendix: people vaccinated by vaccine, stage, dose, calendar year of vaccination and age at vaccination (- = not recorded)".into(),
        vec!["ワクチン / vaccine", "期 / stage", "回 / dose", "暦年 / year", "接種時年齢 / age", "人数 / people"],
        r.vaccinated
            .iter()
            .map(|v| vec![v.vaccine.clone(), opt(&v.stage), opt(&v.dose), opt(&v.year), v.age_band.clone(), s(&v.people)])
            .collect(),
    ));
    out
}

/// The terminal rendering: aligned tables with Japanese and English headings.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "予防接種記録アーカイブ 統計報告 / vaxarc archive report\narchive {} (generation {}, municipality {}, created {}), as of {}; counts from 1 to {} shown as <{}\n",
        r.archive_id,
        r.generation,
        r.municipality_code,
        r.archive_created,
        r.as_of,
        r.suppress_below.saturating_sub(1),
        r.suppress_below
    );
    if r.synthetic {
        out.push_str(&format!("\n*** {SYNTHETIC} ***\n"));
    }
    for (_, heading, cols, rows) in sections(r) {
        out.push('\n');
        out.push_str(&heading);
        out.push('\n');
        if rows.is_empty() {
            out.push_str("  (none / なし)\n");
        } else {
            out.push_str(&table(&cols, &rows));
        }
    }
    out.push_str("\n注記 / limitations\n");
    for l in &r.limitations {
        out.push_str(&format!("  - {l}\n"));
    }
    out
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart as inline SVG. Suppressed bars are a hatched stub.
pub fn bar_chart(title: &str, items: &[(String, Count)], below: u64) -> String {
    let max = items
        .iter()
        .filter_map(|(_, c)| c.value)
        .max()
        .unwrap_or(0)
        .max(1);
    let row_h = 24;
    let label_w = 260;
    let bar_w = 560;
    let height = 34 + row_h * items.len().max(1);
    let mut svg = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\"><title>{t}</title>\
<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e5e7eb\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9ca3af\" stroke-width=\"3\"/></pattern></defs>\
<text x=\"0\" y=\"18\" class=\"ct\">{t}</text>",
        w = label_w + bar_w + 90,
        t = escape(title)
    );
    if items.is_empty() {
        svg.push_str("<text x=\"0\" y=\"48\" class=\"cl\">(none / なし)</text>");
    }
    for (i, (label, count)) in items.iter().enumerate() {
        let y = 30 + i * row_h;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" class=\"cl\" text-anchor=\"end\">{}</text>",
            label_w - 8,
            y + 15,
            escape(label)
        ));
        match count.value {
            Some(v) => {
                let w = ((v as f64 / max as f64) * bar_w as f64).round().max(if v > 0 { 2.0 } else { 0.0 });
                svg.push_str(&format!(
                    "<rect x=\"{label_w}\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"#2563eb\"/><text x=\"{}\" y=\"{}\" class=\"cv\">{}</text>",
                    y + 3,
                    row_h - 6,
                    label_w as f64 + w + 6.0,
                    y + 15,
                    super::thousands(v)
                ));
            }
            None => svg.push_str(&format!(
                "<rect x=\"{label_w}\" y=\"{}\" width=\"24\" height=\"{}\" fill=\"url(#hatch)\"/><text x=\"{}\" y=\"{}\" class=\"cv\">&lt;{below}</text>",
                y + 3,
                row_h - 6,
                label_w + 30,
                y + 15
            )),
        }
    }
    svg.push_str("</svg>");
    if items.iter().any(|(_, c)| c.value.is_none()) {
        svg.push_str(&format!(
            "<p class=\"legend\">斜線 = {below}未満（秘匿） / hatched = fewer than {below} (withheld)</p>"
        ));
    }
    svg.push_str("</figure>\n");
    svg
}

fn labelled_items(list: &[Labelled]) -> Vec<(String, Count)> {
    list.iter().map(|l| (label(&l.label), l.count)).collect()
}

/// A vaccine as a chart label: code and name, the name once when it is the code.
fn vaccine_label(code: &str, name: &str) -> String {
    if code == name {
        code.to_string()
    } else {
        format!("{code} {name}")
    }
}

const CSS: &str = "body{font-family:'Noto Sans JP','Noto Sans CJK JP','Yu Gothic','Meiryo','Hiragino Sans','IPAGothic',sans-serif;margin:24px;color:#111827;background:#fff;max-width:1100px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:2px solid #2563eb;padding-bottom:4px}\
p.meta{color:#374151;font-size:13px;margin:2px 0}table{border-collapse:collapse;font-size:13px;margin:6px 0}\
th,td{border:1px solid #d1d5db;padding:3px 8px}th{background:#eff6ff;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
td.s{text-align:right;color:#6b7280}tr.due td{background:#fef3c7;font-weight:bold}figure{margin:8px 0}.ct{font-size:14px;font-weight:bold;fill:#111827}.cl{font-size:12px;fill:#111827}\
.cv{font-size:12px;fill:#374151}ul.lim{font-size:13px;color:#1f2937}\
figure svg{max-width:100%;height:auto}div.t{overflow-x:auto}td{word-break:keep-all}p.legend{font-size:12px;color:#374151;margin:2px 0}\
p.demo{background:#fef3c7;border:2px solid #d97706;padding:6px 10px;font-weight:bold;color:#78350f}\
@media(max-width:600px){body{margin:8px}}\
@page{size:A4;margin:15mm}\
@media print{body{max-width:none;margin:0}h2{break-after:avoid;break-inside:avoid}figure{break-inside:avoid;break-after:avoid}section:not(#vaccinated) table{break-inside:avoid}thead{display:table-header-group}}";

/// The banner of a report made from synthetic sources.
const SYNTHETIC: &str = "デモ用の合成データ — 実在の住民・実際の統計ではありません / DEMO: synthetic data — no real residents, not real statistics";

/// The HTML rendering: one self-contained file.
pub fn html(r: &Report) -> String {
    let b = r.suppress_below;
    let mut out = String::from("<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">");
    out.push_str(&format!(
        "<title>予防接種記録アーカイブ 統計報告 {}</title><style>{CSS}</style></head><body>\n",
        escape(&r.archive_id)
    ));
    out.push_str("<h1>予防接種記録アーカイブ 統計報告 / Vaccination record archive report</h1>\n");
    if r.synthetic {
        out.push_str(&format!("<p class=\"demo\">{}</p>\n", escape(SYNTHETIC)));
    }
    out.push_str(&format!(
        "<p class=\"meta\">アーカイブ / archive <code>{}</code> ・ 世代 / generation {} ・ 自治体コード / municipality {} ・ 作成 / created {}</p>\n\
<p class=\"meta\">基準日 / as of {} ・ 1〜{}の件数は「&lt;{}」と表示（個人の特定防止） / counts from 1 to {} are shown as &lt;{} to prevent re-identification</p>\n",
        escape(&r.archive_id),
        r.generation,
        escape(&r.municipality_code),
        escape(&r.archive_created),
        escape(&r.as_of),
        b.saturating_sub(1),
        b,
        b.saturating_sub(1),
        b
    ));
    let charts: Vec<(&str, String)> = vec![
        (
            "vaccine-totals",
            bar_chart(
                "接種の種類ごとの実施人数 / People vaccinated per vaccine",
                &r.vaccine_totals
                    .iter()
                    .map(|v| (vaccine_label(&v.vaccine, &v.vaccine_name), v.people))
                    .collect::<Vec<_>>(),
                b,
            ),
        ),
        (
            "unvaccinated",
            bar_chart(
                "未接種者数 / Residents with no dose recorded",
                &r.unvaccinated
                    .iter()
                    .map(|u| (vaccine_label(&u.vaccine, &u.vaccine_name), u.unvaccinated))
                    .collect::<Vec<_>>(),
                b,
            ),
        ),
        (
            "outcomes",
            bar_chart(
                "照合方法別の記録数 / Records by match method",
                &labelled_items(&r.reconciliation.by_method),
                b,
            ),
        ),
        (
            "quarantine",
            bar_chart(
                "隔離理由別 / Quarantine by reason",
                &labelled_items(&r.quarantine_by_reason),
                b,
            ),
        ),
        (
            "retention",
            bar_chart(
                "保存期限の満了年別の記録数 / Records by expiry year",
                &r.retention
                    .iter()
                    .map(|x| {
                        (
                            format!("{} {}", x.expiry, label(&x.retention_class)),
                            x.records,
                        )
                    })
                    .collect::<Vec<_>>(),
                b,
            ),
        ),
    ];
    for (id, heading, cols, rows) in sections(r) {
        out.push_str(&format!(
            "<section id=\"{id}\"><h2>{}</h2>\n",
            escape(&heading)
        ));
        for (_, chart) in charts.iter().filter(|(c, _)| *c == id) {
            out.push_str(chart);
        }
        if rows.is_empty() {
            out.push_str("<p>(none / なし)</p>");
        } else {
            out.push_str("<div class=\"t\"><table><thead><tr>");
            for c in &cols {
                out.push_str(&format!("<th>{}</th>", escape(c)));
            }
            out.push_str("</tr></thead><tbody>\n");
            let due = label("past");
            for row in &rows {
                // A retention row whose expiry year is over: a purge is due.
                out.push_str(if row.contains(&due) {
                    "<tr class=\"due\">"
                } else {
                    "<tr>"
                });
                for cell in row {
                    let class = if cell.starts_with('<') {
                        " class=\"s\""
                    } else if is_numeric(cell) {
                        " class=\"n\""
                    } else {
                        ""
                    };
                    out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody></table></div>");
        }
        out.push_str("</section>\n");
    }
    out.push_str("<h2>注記 / Limitations</h2><ul class=\"lim\">");
    for l in &r.limitations {
        out.push_str(&format!("<li>{}</li>", escape(l)));
    }
    out.push_str(&format!(
        "</ul><p class=\"meta\">vaxarc {} ・ 集計値のみ、個人情報を含みません / aggregates only, no personal data</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    ));
    out
}
