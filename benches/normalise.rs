//! Per-normaliser throughput (values per second) of `vaxarc::normalise`.
//!
//! `cargo bench --bench normalise -- --quick`; numbers go into docs/normalisers.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vaxarc::normalise::{kana_key, kanji_key, normalise, Kind, Tables};

/// Runs `f` over every input of `inputs` once per iteration; throughput is per value.
fn bench_values(c: &mut Criterion, group: &str, name: &str, inputs: &[&str], f: impl Fn(&str)) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for raw in inputs {
                f(black_box(raw));
            }
        })
    });
    g.finish();
}

fn bench_kind(c: &mut Criterion, kind: Kind, name: &str, inputs: &[&str]) {
    let tables = Tables::embedded();
    bench_values(c, kind.as_str(), name, inputs, |raw| {
        let _ = black_box(normalise(kind, raw, tables));
    });
}

fn normalisers(c: &mut Criterion) {
    let tables = Tables::embedded();

    bench_kind(
        c,
        Kind::Date,
        "western_8digit",
        &["20240930", "19890107", "20190501", "20230228"],
    );
    bench_kind(
        c,
        Kind::Date,
        "western_slash",
        &["2024/09/30", "1989-1-7", "2019.5.1", "2023/02/28"],
    );
    bench_kind(
        c,
        Kind::Date,
        "wareki_letter",
        &["R06.09.30", "S64.1.7", "H31/4/30", "r5.2.28"],
    );
    bench_kind(
        c,
        Kind::Date,
        "wareki_kanji",
        &[
            "令和6年9月30日",
            "昭和64年1月7日",
            "平成31年4月30日",
            "令和元年5月1日",
        ],
    );
    bench_kind(
        c,
        Kind::Date,
        "era_code_7digit",
        &["5060930", "3640107", "4310430", "5050228"],
    );
    bench_kind(
        c,
        Kind::Date,
        "fullwidth",
        &[
            "２０２４／０９／３０",
            "Ｒ０６．０９．３０",
            "令和６年９月３０日",
            "Ｈ３１．４．３０",
        ],
    );
    bench_kind(
        c,
        Kind::Datetime,
        "14digit",
        &["20240930101500", "20210601134502"],
    );

    let kanji_names = [
        "髙橋　太郎",
        "山田 花子",
        "渡邊  一郎",
        "佐藤健",
        "齋藤\u{3000}美咲",
        "ｽﾐｽ ジョン",
    ];
    bench_kind(c, Kind::NameKanji, "mixed", &kanji_names);
    let kana_names = [
        "ヤマダ　タロウ",
        "やまだ はなこ",
        "ﾜﾀﾅﾍﾞ ｲﾁﾛｳ",
        "サトウ ケン",
        "キョウコ",
        "ヴァイオレット",
    ];
    bench_kind(c, Kind::NameKana, "mixed", &kana_names);
    bench_values(c, "kana_key", "mixed", &kana_names, |raw| {
        black_box(kana_key(raw));
    });
    bench_values(c, "kanji_key", "mixed", &kanji_names, |raw| {
        black_box(kanji_key(raw, tables));
    });

    bench_kind(
        c,
        Kind::KojinBango,
        "mixed",
        &[
            "123456789018",
            "1234 5678 9018",
            "１２３４５６７８９０１８",
            "123456789011",
        ],
    );
    bench_kind(
        c,
        Kind::Vaccine,
        "mixed",
        &[
            "BCG",
            "４種混合",
            "麻しん風しん",
            "インフルエンザ（高齢者）",
            "COVID-19",
            "日本脳炎",
        ],
    );
    bench_kind(
        c,
        Kind::Manufacturer,
        "mixed",
        &[
            "ファイザー",
            "ﾌｧｲｻﾞｰ社",
            "武田/モデルナ",
            "Moderna",
            "第一三共株式会社",
            "謎製薬",
        ],
    );
    bench_kind(
        c,
        Kind::Stage,
        "mixed",
        &["第1期初回2回目", "1期追加", "①", "２回目", "初回", "第2期"],
    );
    bench_kind(
        c,
        Kind::DoseNumber,
        "mixed",
        &["第1期初回2回目", "1期追加", "①", "２回目", "初回", "第2期"],
    );
}

criterion_group!(benches, normalisers);
criterion_main!(benches);
