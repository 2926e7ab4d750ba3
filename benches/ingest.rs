//! Criterion: ingest + normalise, and reconciliation, over generated sources.
//!
//! `VAXARC_BENCH_PEOPLE` (default 50,000 people ≈ 200k dose rows) sets the size; the
//! sources are generated once into a temporary folder. Throughput is reported in bytes
//! (ingest) and elements (records) so MB/s and rows/s can be read off.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use vaxarc::generate::{self, Config};
use vaxarc::normalise::Tables;
use vaxarc::pipeline::Pipeline;
use vaxarc::reconcile::{self, Rules};
use vaxarc::schema::Schema;

fn people() -> usize {
    std::env::var("VAXARC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        people: people(),
        seed: 1,
        ..Config::default()
    };
    generate::generate(&config, dir.path()).unwrap();
    let schema = Schema::embedded();
    let pipeline = Pipeline::load(&dir.path().join("pipeline.toml"), schema).unwrap();
    let bytes = vaxarc::ingest::total_bytes(&pipeline.sources);
    let sample =
        vaxarc::ingest::ingest(&pipeline.sources, schema, Tables::embedded(), &|_| {}).unwrap();
    let rows: u64 = sample.accounting.iter().map(|a| a.rows_read).sum();
    eprintln!(
        "{} people: {} source rows, {} bytes, {} dose records",
        config.people,
        rows,
        bytes,
        sample.records.len()
    );

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("ingest+normalise (bytes)", |b| {
        b.iter(|| {
            vaxarc::ingest::ingest(&pipeline.sources, schema, Tables::embedded(), &|_| {}).unwrap()
        })
    });
    g.throughput(Throughput::Elements(rows));
    g.bench_function("ingest+normalise (rows)", |b| {
        b.iter(|| {
            vaxarc::ingest::ingest(&pipeline.sources, schema, Tables::embedded(), &|_| {}).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("reconcile");
    g.sample_size(10);
    g.throughput(Throughput::Elements(sample.records.len() as u64));
    g.bench_function("reconcile (records)", |b| {
        b.iter_batched(
            || sample.records.clone(),
            |records| {
                reconcile::reconcile(
                    schema,
                    records,
                    &sample.registry,
                    &sample.vrs_persons,
                    Rules::embedded(),
                )
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
