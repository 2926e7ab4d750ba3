//! `vaxarc lookup`: one query or a batch, each an entry of the audit log.

use std::collections::{BTreeSet, HashSet};

use super::{now_rfc3339, refuse, Context};
use crate::archive::store::Store;
use crate::audit::{self, Event};
use crate::cli::{LookupArgs, LookupFormat};
use crate::exit_codes::ExitCode;
use crate::lookup::{self, shell::Reader, Answer, Query, Roles, View};
use crate::normalise::Tables;
use crate::schema::Schema;

fn query_of(args: &LookupArgs) -> Result<Query, lookup::QueryError> {
    if let Some(a) = &args.atena {
        return Query::atena(a);
    }
    if let Some(k) = &args.kojin_bango {
        return Query::kojin_bango(k);
    }
    if let Some(t) = &args.ticket {
        return Query::ticket(t);
    }
    if let Some(p) = &args.person {
        return Query::person(p);
    }
    match (&args.kana, &args.birth) {
        (Some(k), Some(b)) => Query::kana_birth(k, b),
        _ => Err(lookup::QueryError("give one of --atena, --kojin-bango, --ticket, --kana with --birth, --person or --batch".into())),
    }
}

/// Answer one query with an opened reader.
fn answer_one(
    reader: &mut Reader<'_>,
    q: &Query,
    roles: &Roles,
    role: Option<&str>,
    show_vault: bool,
) -> anyhow::Result<Answer> {
    let schema = Schema::embedded();
    let (role_name, r) = roles.get(role).ok_or_else(|| {
        refuse(
            "unknown --role",
            "use a role defined in pipelines/roles.toml",
        )
    })?;
    let mut persons = reader.resolve(q)?;
    if matches!(q, Query::Atena(_) | Query::KojinBango(_) | Query::Ticket(_)) {
        reader.join_unlinked(&mut persons)?;
    }
    let buckets: BTreeSet<u16> = persons.iter().map(|p| p.1).collect();
    let records = reader.person_records(&persons)?;
    let hashes: Vec<String> = persons.into_iter().map(|p| p.0).collect();
    let mut vault = Default::default();
    if show_vault && View::role_wants_vault(schema, r) && !records.is_empty() {
        let rid = schema.idx("record_id");
        let ids: HashSet<String> = records
            .iter()
            .filter_map(|r| r.at(rid).as_str().map(str::to_string))
            .collect();
        vault = reader.vault(&buckets, &ids)?;
    }
    let view = View::new(
        schema,
        role_name,
        r,
        reader.vault_open == Some(true),
        show_vault,
    );
    Ok(lookup::answer(
        schema,
        Tables::embedded(),
        q,
        &hashes,
        &records,
        &vault,
        &view,
    ))
}

fn event(reader: &Reader<'_>, args: &LookupArgs, q: Option<&Query>, a: Option<&Answer>) -> Event {
    Event {
        archive_id: reader.manifest.archive_id.clone(),
        generation: reader.manifest.generation,
        time: now_rfc3339(),
        operator: args.operator.clone(),
        purpose: args.purpose.clone(),
        command: if args.batch.is_some() {
            "lookup-batch".into()
        } else {
            "lookup".into()
        },
        persons: a
            .map(|a| {
                if a.status == "candidates" {
                    a.candidates.iter().map(|c| c.person_hash.clone()).collect()
                } else {
                    a.persons.clone()
                }
            })
            .unwrap_or_default(),
        query: q.map(Query::audit_text),
        result_count: a
            .map(|a| {
                if a.status == "candidates" {
                    a.candidates.len() as u64
                } else {
                    a.records
                }
            })
            .unwrap_or(0),
        outcome: a
            .map(|a| a.status.clone())
            .unwrap_or_else(|| "invalid_query".into()),
    }
}

fn render(format: LookupFormat, a: &Answer) -> anyhow::Result<String> {
    Ok(match format {
        LookupFormat::Text => lookup::render_text(Schema::embedded(), a),
        LookupFormat::Json => format!("{}\n", serde_json::to_string(a)?),
        LookupFormat::Fhir => format!("{}\n", serde_json::to_string(&lookup::render_fhir(a))?),
    })
}

/// `vaxarc lookup`.
pub fn run(args: LookupArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    if super::blank(&args.operator) || super::blank(&args.purpose) {
        return Err(refuse(
            "--operator and --purpose must not be empty",
            "every lookup is logged with who and why",
        ));
    }
    let schema = Schema::embedded();
    let roles = match &args.roles {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                refuse(
                    format!("cannot read roles file `{}`: {e}", p.display()),
                    "pass a readable roles TOML",
                )
            })?;
            Roles::from_toml(&text, schema).map_err(|e| {
                refuse(
                    format!("roles file `{}`: {e}", p.display()),
                    "see pipelines/roles.toml and docs/lookup.md",
                )
            })?
        }
        None => Roles::embedded(),
    };
    if roles.get(args.role.as_deref()).is_none() {
        return Err(refuse(
            format!(
                "role `{}` is not defined",
                args.role.as_deref().unwrap_or_default()
            ),
            format!(
                "use one of: {}",
                roles.role.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    // Refuse a bad query before touching keys or the archive.
    let single = if args.batch.is_none() {
        Some(
            query_of(&args)
                .map_err(|e| refuse(e.0, "see `vaxarc lookup --help` for the query forms"))?,
        )
    } else {
        None
    };
    if args.batch.is_some() && args.format == LookupFormat::Text {
        return Err(refuse(
            "--batch writes JSON lines",
            "add --format json (or fhir)",
        ));
    }
    let identities = crate::keys::load_identities(&args.identity, ctx.allow_insecure_identity)?;
    let store = Store::open(&args.archive)?;
    // Only the archive's own key signs its checkpoints (another key's signature would
    // make `audit verify` fail from then on).
    let signer = match args.signing_key.as_deref() {
        Some(p) => {
            let (m, _) = crate::archive::read_manifest(&store)?;
            Some(super::purge::archive_signing_key(p, &m, ctx)?.0)
        }
        None => None,
    };
    let mut reader = Reader::open(&store, schema, &identities)?;
    if let Some((_, r)) = roles.get(args.role.as_deref()) {
        reader.set_columns(lookup::columns_for(r));
    }
    let mut events = Vec::new();
    // The answers are printed only once their audit entries are written: a lookup whose
    // entry cannot be written (a read-only or full archive) shows nothing.
    let mut out = String::new();
    if let Some(q) = single {
        let a = answer_one(
            &mut reader,
            &q,
            &roles,
            args.role.as_deref(),
            args.show_vault,
        )?;
        events.push(event(&reader, &args, Some(&q), Some(&a)));
        out = render(args.format, &a)?;
    } else if let Some(path) = &args.batch {
        let text = std::fs::read_to_string(path).map_err(|e| {
            refuse(
                format!("cannot read batch file `{}`: {e}", path.display()),
                "pass a UTF-8 file with one query per line",
            )
        })?;
        let mut queries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            queries.push((i + 1, Query::parse_line(line)));
        }
        // Every index shard, then every person, once: grouped, so each partition's
        // footer is read once and each of its row groups decoded once for the batch.
        let valid: Vec<&Query> = queries
            .iter()
            .filter_map(|(_, q)| q.as_ref().ok())
            .collect();
        reader.load_shards(&valid)?;
        let (mut persons, mut exact) = (Vec::new(), Vec::new());
        for q in &valid {
            let found = reader.resolve(q)?;
            if matches!(q, Query::Atena(_) | Query::KojinBango(_) | Query::Ticket(_)) {
                exact.extend(found.iter().cloned());
            }
            persons.extend(found);
        }
        reader.load_persons(&persons)?;
        reader.prefetch_joins(&exact)?;
        for (line, q) in &queries {
            match q {
                Ok(q) => {
                    let a = answer_one(
                        &mut reader,
                        q,
                        &roles,
                        args.role.as_deref(),
                        args.show_vault,
                    )?;
                    events.push(event(&reader, &args, Some(q), Some(&a)));
                    let mut v = match args.format {
                        LookupFormat::Fhir => lookup::render_fhir(&a),
                        _ => serde_json::to_value(&a)?,
                    };
                    v["line"] = serde_json::json!(line);
                    out.push_str(&serde_json::to_string(&v)?);
                    out.push('\n');
                }
                Err(e) => {
                    events.push(event(&reader, &args, None, None));
                    out.push_str(&serde_json::to_string(
                        &serde_json::json!({"line": line, "status": "error", "error": e.0}),
                    )?);
                    out.push('\n');
                }
            }
        }
    }
    let secret = *reader.secret();
    let archive_id = reader.manifest.archive_id.clone();
    let n = events.len();
    audit::append_all(&store, Some(&secret), events)?;
    print!("{out}");
    let cp = audit::checkpoint(&store, &archive_id, signer.as_ref())?;
    ctx.printer.note(&format!(
        "{n} lookup(s) logged in the audit log (checkpoint {}, {}); {} of {} partitions and {} of {} index shards read",
        cp.size,
        if cp.signed { "signed" } else { "unsigned: pass --signing-key to sign" },
        reader.partitions_decrypted,
        reader.manifest.partitions.len(),
        reader.shards_decrypted,
        reader.manifest.index_shards
    ));
    Ok(ExitCode::Success)
}
