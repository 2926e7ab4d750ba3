//! `vaxarc demo`: the main job on embedded synthetic data — generate sources, make
//! DEMO keys (labelled as such), migrate, verify, print the accounting and
//! reconciliation summary.

use std::path::Path;

use super::{migrate, print_json, refuse, Context};
use crate::archive::store::Store;
use crate::archive::verify;
use crate::cli::DemoArgs;
use crate::exit_codes::ExitCode;
use crate::generate::{self, Config};
use crate::schema::Schema;

/// Marker file that says a folder holds a demo (and may be replaced by the next one).
pub const MARKER: &str = "VAXARC-DEMO.txt";

/// `vaxarc demo`.
pub fn run(args: DemoArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    prepare_dir(dir)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "This folder was made by `vaxarc demo`: synthetic data and DEMO KEYS ONLY.\nNever put real records here; the next `vaxarc demo` replaces it.\n",
    )?;
    let input = dir.join("input");
    let config = Config {
        people: args.people,
        seed: args.seed,
        ..Config::default()
    };
    ctx.printer.note(&format!(
        "generating synthetic sources for {} people ...",
        args.people
    ));
    let spinner = ctx.printer.spinner("generate");
    generate::generate(&config, &input)?;
    spinner.finish_and_clear();
    let keys = input.join("keys");
    let created = super::now_rfc3339();
    for (name, label, signing) in [
        (
            "custodian-1",
            "DEMO KEY - custodian 1 - not for real data",
            true,
        ),
        (
            "custodian-2",
            "DEMO KEY - custodian 2 - not for real data",
            false,
        ),
        (
            "vault",
            "DEMO KEY - vault (個人番号) - not for real data",
            false,
        ),
    ] {
        let signing_path = keys.join("signing.key");
        crate::keys::keygen(
            &keys.join(format!("{name}.key")),
            signing.then_some(signing_path.as_path()),
            Some(label),
            &created,
            false,
        )?;
    }
    let archive_dir = dir.join("archive");
    ctx.printer.note("migrating ...");
    let summary = migrate::migrate(
        &input.join("pipeline.toml"),
        &archive_dir.to_string_lossy(),
        None,
        ctx,
    )?;
    ctx.printer
        .note("verifying with custodian-1 and vault identities ...");
    let identities = crate::keys::load_identities(
        &[keys.join("custodian-1.key"), keys.join("vault.key")],
        ctx.allow_insecure_identity,
    )?;
    let store = Store::open(&archive_dir.to_string_lossy())?;
    let report = verify::verify(&store, Schema::embedded(), None, &identities)?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            dir: String,
            migrate: &'a migrate::Summary,
            verify: &'a verify::Report,
            verified: bool,
        }
        print_json(&Out {
            dir: dir.display().to_string(),
            migrate: &summary,
            verify: &report,
            verified: report.ok(),
        })?;
    } else {
        print!("{}", migrate::render(&summary));
        println!();
        print!(
            "{}",
            super::verify::render(&report, &archive_dir.display().to_string())
        );
        println!(
            "\ndemo folder: {} (synthetic sources and DEMO keys in input/, archive in archive/)",
            dir.display()
        );
    }
    Ok(if report.ok() {
        ExitCode::Success
    } else {
        ExitCode::CheckFailed
    })
}

/// A demo folder may be replaced only if absent, empty, or made by an earlier demo.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)?.next().is_none();
    if empty {
        return Ok(());
    }
    if dir.join(MARKER).is_file() {
        std::fs::remove_dir_all(dir)?;
        return Ok(());
    }
    Err(refuse(
        format!(
            "`{}` exists and was not made by `vaxarc demo`",
            dir.display()
        ),
        "choose another folder with --dir",
    ))
}
