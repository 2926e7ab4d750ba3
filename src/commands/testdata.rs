//! `vaxarc testdata`: synthetic sources with ground truth; `testdata score`.

use super::{print_json, refuse, Context};
use crate::cli::{ScoreArgs, TestdataAction, TestdataArgs};
use crate::exit_codes::ExitCode;
use crate::generate::{self, Config};
use crate::normalise::Tables;
use crate::pipeline::Pipeline;
use crate::reconcile::{self, Rules};
use crate::schema::Schema;

/// `vaxarc testdata`.
pub fn run(args: TestdataArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let Some(TestdataAction::Score(score)) = args.action {
        return run_score(score, ctx);
    }
    let Some(out) = args.out else {
        return Err(refuse(
            "`vaxarc testdata` needs --out DIR (or the `score` subcommand)",
            "e.g. `vaxarc testdata --out ./synthetic --people 10000`",
        ));
    };
    let mut config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                refuse(
                    format!("cannot read `{}`: {e}", p.display()),
                    "check the --config path",
                )
            })?;
            Config::from_toml(&text).map_err(|e| {
                refuse(
                    format!("generator config `{}`: {e}", p.display()),
                    "see docs/generator.md for the keys",
                )
            })?
        }
        None => Config::default(),
    };
    config.people = args.people;
    config.seed = args.seed;
    let spinner = ctx.printer.spinner("generate");
    let summary = generate::generate(&config, &out)?;
    spinner.finish_and_clear();
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "wrote {} people, {} dose records in {} files to `{}`",
            summary.people,
            summary.records,
            summary.files.len(),
            out.display()
        );
        for f in &summary.files {
            println!(
                "  {:<22} {:>9} rows {:>12} bytes  {}",
                f.id, f.rows, f.bytes, f.encoding
            );
        }
    }
    Ok(ExitCode::Success)
}

fn run_score(args: ScoreArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let schema = Schema::embedded();
    let pipeline = Pipeline::load(&args.dir.join("pipeline.toml"), schema)?;
    let spinner = ctx.printer.spinner("ingest");
    let ingested = crate::ingest::ingest(&pipeline.sources, schema, Tables::embedded(), &|_| {})?;
    spinner.finish_and_clear();
    let spinner = ctx.printer.spinner("reconcile");
    let outcome = reconcile::reconcile(
        schema,
        ingested.records,
        &ingested.registry,
        &ingested.vrs_persons,
        Rules::embedded(),
    );
    spinner.finish_and_clear();
    let quality = reconcile::score(&outcome, schema, &args.dir.join("truth"))?;
    if args.json {
        print_json(&quality)?;
    } else {
        print!("{}", quality.render_text());
    }
    Ok(ExitCode::Success)
}
