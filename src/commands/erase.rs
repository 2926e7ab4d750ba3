//! `vaxarc erase`: one person's records (or, with `--quarantine`, every quarantined source
//! row), by the purge's rewrite machinery.

use super::{now_rfc3339, print_json, refuse, Context};
use crate::archive::store::Store;
use crate::archive::{self};
use crate::cli::EraseArgs;
use crate::exit_codes::ExitCode;
use crate::normalise::{normalise, Kind, Tables};
use crate::purge::run::{self, RunKeys, Signer};
use crate::record::Value;
use crate::schema::Schema;

fn canonical(kind: Kind, raw: &str, what: &str) -> anyhow::Result<String> {
    match normalise(kind, raw, Tables::embedded()) {
        Ok(n) => match n.value {
            Value::Str(s) if !s.is_empty() => Ok(s.into()),
            _ => Err(refuse(
                format!("{what} is not valid"),
                "check the number (the value is not echoed)",
            )),
        },
        Err(_) => Err(refuse(
            format!("{what} is not valid"),
            "check the number (the value is not echoed)",
        )),
    }
}

/// The index identifier `(kind, canonical value)` of the request.
pub fn identifier(args: &EraseArgs) -> anyhow::Result<(&'static str, String)> {
    if let Some(a) = &args.atena {
        return Ok(("atena", canonical(Kind::Atena, a, "--atena")?));
    }
    if let Some(k) = &args.kojin_bango {
        return Ok((
            "kojin_bango",
            canonical(Kind::KojinBango, k, "--kojin-bango")?,
        ));
    }
    if let Some(p) = &args.person {
        let p = p.trim().to_ascii_lowercase();
        if p.len() != 64 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse(
                "--person must be a person hash (64 hex digits)",
                "take it from `persons` or `candidates[].person_hash` of `vaxarc lookup --format json`",
            ));
        }
        return Ok(("person", p));
    }
    let t = args.ticket.as_deref().unwrap_or_default();
    let Some((m, n)) = t.split_once(':') else {
        return Err(refuse(
            "--ticket must be MUNICIPALITY:NUMBER",
            "e.g. --ticket 131091:0123456789",
        ));
    };
    Ok((
        "ticket",
        format!(
            "{}:{}",
            canonical(Kind::MunicipalityCode, m, "--ticket municipality code")?,
            canonical(Kind::TicketNumber, n, "--ticket number")?
        ),
    ))
}

/// `vaxarc erase`.
pub fn run(args: EraseArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    super::not_blank("--operator", &args.operator)?;
    super::not_blank("--reason", &args.reason)?;
    let schema = Schema::embedded();
    let who = if args.quarantine {
        None
    } else {
        Some(identifier(&args)?)
    };
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    let store = Store::open(&args.archive)?;
    let (m, _) = archive::read_manifest(&store)?;
    let write = super::purge::write_keys(&m, args.signing_key.as_deref(), ctx)?;
    let now = now_rfc3339();
    let signer = Signer {
        operator: &args.operator,
        performer: super::purge::performer(args.performer.as_deref(), &args.operator)?,
        now: &now,
    };
    let keys = RunKeys {
        identities: &identities,
        write: Some(&write),
    };
    let spinner = ctx.printer.spinner("erase");
    let out = match &who {
        Some((kind, value)) => {
            run::erase(&store, schema, kind, value, &args.reason, &keys, &signer)
        }
        None => run::erase_quarantine(&store, schema, &args.reason, &keys, &signer),
    };
    spinner.finish_and_clear();
    let out = out.map_err(super::purge::hinted)?;
    if args.json {
        print_json(&out)?;
    } else {
        print!("{}", super::purge::render(&out, &args.archive));
    }
    Ok(super::purge::exit_of(&out))
}
