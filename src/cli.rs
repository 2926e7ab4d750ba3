//! Command-line definition (clap derive). Only argument shapes live here; each command's
//! behaviour is in `commands/<verb>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// vaxarc: migrate Japanese vaccination records into an encrypted, verifiable archive.
#[derive(Debug, Parser)]
#[command(name = "vaxarc", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// No progress bars and no summaries on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Accept identity files that others can read (refused by default, as ssh does).
    #[arg(long, global = true)]
    pub allow_insecure_identity: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole job on embedded synthetic data: generate, make demo keys, migrate, verify.
    #[command(after_help = "Example:\n  vaxarc demo --dir ./vaxarc-demo --people 2000")]
    Demo(DemoArgs),
    /// Make an age X25519 identity (and optionally a minisign signing key pair).
    #[command(
        after_help = "Example:\n  vaxarc keygen --output keys/custodian-1.key --signing-key keys/signing.key"
    )]
    Keygen(KeygenArgs),
    /// Generate synthetic sources with ground truth, or score a run against the truth.
    #[command(
        after_help = "Examples:\n  vaxarc testdata --out ./synthetic --people 10000 --seed 7\n  vaxarc testdata score --dir ./synthetic"
    )]
    Testdata(TestdataArgs),
    /// Normalise values read one per line on stdin (operator's check of a new layout).
    #[command(
        after_help = "Example:\n  printf 'R06.09.30\\n平成31年5月1日\\n' | vaxarc normalise --field date"
    )]
    Normalise(NormaliseArgs),
    /// Ingest, normalise, reconcile and write a new encrypted archive.
    #[command(
        after_help = "Example:\n  vaxarc migrate --pipeline ./synthetic/pipeline.toml --archive ./archive --json"
    )]
    Migrate(MigrateArgs),
    /// Check an archive's signature, files, hashes and Merkle root; with identities, decrypt and count.
    #[command(
        after_help = "Example:\n  vaxarc verify --archive ./archive --identity keys/custodian-1.key --json"
    )]
    Verify(VerifyArgs),
    /// Statistics and reconciliation report (aggregates only, small counts suppressed), as tables, HTML or JSON.
    #[command(
        after_help = "Example:\n  vaxarc report --archive ./archive --identity keys/custodian-1.key --html report.html"
    )]
    Report(ReportArgs),
    /// Re-wrap every object key to a new custodian (and vault) recipient set without touching the data.
    #[command(
        after_help = "Example:\n  vaxarc rekey --archive ./archive --identity keys/custodian-1.key \\\n    --custodian keys/new-custodian-1.pub --custodian keys/new-custodian-2.pub \\\n    --signing-key keys/signing.key"
    )]
    Rekey(RekeyArgs),
    /// Catalogue several archives (id, municipality, generation, Merkle root) from their signed manifests; check it against an earlier catalogue.
    #[command(
        after_help = "Examples:\n  vaxarc catalogue s3://gov-archive/131091/vaccination \\\n    s3://gov-archive/131105/vaccination --out catalogue.json\n  vaxarc catalogue ./archives/* --previous catalogue.json --json"
    )]
    Catalogue(CatalogueArgs),
    /// Destroy every record whose retention has expired, with a signed erasure certificate.
    ///
    /// Also destroys the review rows of those records and the quarantined source rows whose
    /// retention has run out by the 接種日 and vaccine migrate read from their columns
    /// (rows without them are kept; docs/purge.md, "The lists").
    #[command(
        after_help = "Example:\n  vaxarc purge --archive ./archive --identity keys/custodian-1.key --identity keys/vault.key \\\n    --as-of 2026-04-01 --operator staff-0042 --registry-update registry-2026-03.csv \\\n    --national-db-submissions submissions.csv --signing-key keys/signing.key"
    )]
    Purge(PurgeArgs),
    /// Erase one person's records (deletion or correction request), with its own certificate.
    ///
    /// Also removes the person's index entries, the review rows of their records or naming
    /// them as a candidate, and quarantined source rows holding one of their numbers, or
    /// one of their names with their birth date, as whole fields (docs/purge.md, "The
    /// lists"). With --quarantine instead of a person:
    /// every quarantined source row.
    #[command(
        after_help = "Example:\n  vaxarc erase --archive ./archive --identity keys/custodian-1.key --identity keys/vault.key \\\n    --operator staff-0042 --reason \"deletion request 2026-17\" --atena 25479007 \\\n    --signing-key keys/signing.key"
    )]
    Erase(EraseArgs),
    /// Erasure certificates.
    #[command(
        after_help = "Example:\n  vaxarc certificate verify archive/certificates/000002-purge.json \\\n    --archive ./archive --pubkey keys/signing.pub"
    )]
    Certificate(CertificateArgs),
    /// Look up one person's vaccination history (decrypts only the buckets that can hold them).
    #[command(
        after_help = "Examples:\n  vaxarc lookup --archive ./archive --identity keys/custodian-1.key \\\n    --operator u123 --purpose 証明書交付 --atena 1234567\n  vaxarc lookup ... --kana 'ヤマダ タロウ' --birth 1980-04-01 --format json\n  vaxarc lookup ... --batch queries.txt --format json"
    )]
    Lookup(LookupArgs),
    /// Check the archive's audit log and its signed checkpoints.
    #[command(
        after_help = "Example:\n  vaxarc audit verify --archive ./archive --pubkey keys/signing.pub --json"
    )]
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// Custodian identity (repeat with a vault identity to rewrite vault objects).
    #[arg(long, required = true)]
    pub identity: Vec<PathBuf>,
    /// Evaluate retention as of this day (YYYY-MM-DD).
    #[arg(long)]
    pub as_of: String,
    /// Operator id (recorded in the lock and the certificate).
    #[arg(long)]
    pub operator: String,
    /// Newest resident-registry extract (registry layout) for death dates.
    #[arg(long)]
    pub registry_update: Option<PathBuf>,
    /// National vaccination database submissions (CSV, see docs/purge.md).
    #[arg(long)]
    pub national_db_submissions: Option<PathBuf>,
    /// Retention rules (default: the embedded pipelines/retention/japan-2026.toml).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Print what would go and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// minisign secret key (the archive's signing key); needed unless --dry-run.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Performer details for the certificate (TOML: name, title, organisation, location, phone).
    #[arg(long)]
    pub performer: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["atena", "kojin_bango", "ticket", "person", "quarantine"])))]
pub struct EraseArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// Custodian identity (repeat with a vault identity to rewrite vault objects).
    #[arg(long, required = true)]
    pub identity: Vec<PathBuf>,
    /// Operator id.
    #[arg(long)]
    pub operator: String,
    /// Why (a request number; no personal data).
    #[arg(long)]
    pub reason: String,
    /// 宛名番号.
    #[arg(long)]
    pub atena: Option<String>,
    /// 個人番号.
    #[arg(long)]
    pub kojin_bango: Option<String>,
    /// Vaccination ticket: 自治体コード:券番号.
    #[arg(long)]
    pub ticket: Option<String>,
    /// One person key: a `persons` entry of `vaxarc lookup` (64 hex digits), for an
    /// identifier that reaches several people.
    #[arg(long)]
    pub person: Option<String>,
    /// Instead of one person: every quarantined source row (once staff have dealt with
    /// them — entered by hand in the receiving system, or judged not to be kept). Records,
    /// index and review list stay.
    #[arg(long)]
    pub quarantine: bool,
    /// minisign secret key (the archive's signing key).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Performer details for the certificate (TOML).
    #[arg(long)]
    pub performer: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CertificateArgs {
    #[command(subcommand)]
    pub action: CertificateAction,
}

#[derive(Debug, Subcommand)]
pub enum CertificateAction {
    /// Check a certificate's signature, that every destroyed object is gone, and its roots against history/.
    #[command(
        after_help = "Example:\n  vaxarc certificate verify archive/certificates/000002-purge.json \\\n    --archive ./archive --pubkey keys/signing.pub --json"
    )]
    Verify(CertificateVerifyArgs),
}

#[derive(Debug, Args)]
pub struct CertificateVerifyArgs {
    /// The certificate JSON (its `.minisig` beside it).
    pub cert: PathBuf,
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// minisign public key.
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Output format of `lookup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LookupFormat {
    /// Printable summary with Japanese labels.
    Text,
    /// The `vaxarc-lookup/1` JSON schema (docs/lookup.md).
    Json,
    /// A FHIR R4 Bundle (JP Core Patient and Immunization).
    Fhir,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("query").args(["atena", "kojin_bango", "ticket", "kana", "person", "batch"]).required(true)))]
pub struct LookupArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// Identity files: a custodian's (required), and a vault holder's to see vault items.
    #[arg(long, required = true)]
    pub identity: Vec<PathBuf>,
    /// Operator id, recorded in the audit log.
    #[arg(long)]
    pub operator: String,
    /// Purpose of the lookup, recorded in the audit log (no personal data here).
    #[arg(long)]
    pub purpose: String,
    /// 宛名番号.
    #[arg(long)]
    pub atena: Option<String>,
    /// 個人番号 (12 digits).
    #[arg(long)]
    pub kojin_bango: Option<String>,
    /// VRS ticket as <自治体コード>:<券番号>.
    #[arg(long, value_name = "MUNI:NUMBER")]
    pub ticket: Option<String>,
    /// Kana name (with --birth).
    #[arg(long, requires = "birth")]
    pub kana: Option<String>,
    /// Birth date (with --kana); 和暦 and other spellings are accepted.
    #[arg(long, requires = "kana")]
    pub birth: Option<String>,
    /// A person hash, as listed among the candidates of an ambiguous query.
    #[arg(long)]
    pub person: Option<String>,
    /// One query per line (atena=…, kojin_bango=…, ticket=MUNI:NUMBER, kana=…,birth=…, person=…) → JSON lines.
    #[arg(long)]
    pub batch: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LookupFormat,
    /// Role (pipelines/roles.toml); default: the file's `default`.
    #[arg(long)]
    pub role: Option<String>,
    /// Roles file replacing the embedded pipelines/roles.toml.
    #[arg(long)]
    pub roles: Option<PathBuf>,
    /// Show 個人番号 and passport items (needs a vault identity and a role that lists them).
    #[arg(long)]
    pub show_vault: bool,
    /// minisign secret key to sign the audit checkpoint (unsigned without it).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the log's Merkle tree and check every checkpoint (signature, consistency).
    #[command(
        after_help = "Example:\n  vaxarc audit verify --archive ./archive --pubkey keys/signing.pub"
    )]
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// minisign public key to pin (default: the key recorded in the manifest).
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's sources, keys and archive (a previous demo there is replaced).
    #[arg(long, default_value = "vaxarc-demo")]
    pub dir: PathBuf,
    /// Synthetic people.
    #[arg(long, default_value_t = 2000)]
    pub people: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Identity file to write (mode 0600); the recipient goes beside it, its extension replaced
    /// by `.pub` (`keys/a.key` → `keys/a.pub`).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write a minisign secret key here (mode 0600) and its public key beside it with `.pub`.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// A label written into the key files' comments (e.g. a custodian's role).
    #[arg(long)]
    pub label: Option<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TestdataArgs {
    #[command(subcommand)]
    pub action: Option<TestdataAction>,
    /// Output folder (must be empty or absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Synthetic people.
    #[arg(long, default_value_t = 1000)]
    pub people: usize,
    /// Seed: the same arguments give byte-identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// TOML file overriding dirt rates.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TestdataAction {
    /// Ingest and reconcile a generated set in memory and score it against its truth files.
    #[command(after_help = "Example:\n  vaxarc testdata score --dir ./synthetic --json")]
    Score(ScoreArgs),
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A folder written by `vaxarc testdata --out`.
    #[arg(long)]
    pub dir: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NormaliseArgs {
    /// Normaliser kind: date, datetime, name_kanji, name_kana, kojin_bango, municipality_code, ...
    #[arg(long)]
    pub field: String,
    /// Print one JSON object (`{"field", "results": [{"value", "flag", "reject"}]}`) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Pipeline definition (TOML).
    #[arg(long)]
    pub pipeline: PathBuf,
    /// Archive location: a folder (new or empty).
    #[arg(long)]
    pub archive: String,
    /// minisign secret key; overrides the pipeline's `archive.signing_key`.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// Identity files (custodian, and vault for the vault objects) for the deep check.
    #[arg(long)]
    pub identity: Vec<PathBuf>,
    /// minisign public key to pin (default: the key recorded in the manifest).
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Operator id for the audit log.
    #[arg(long, default_value = "unspecified")]
    pub operator: String,
    /// Purpose for the audit log.
    #[arg(long, default_value = "verify")]
    pub purpose: String,
    /// minisign secret key to sign the audit checkpoint (unsigned without it).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// Custodian identity file(s) that open the partitions and the quarantine object.
    #[arg(long, required = true)]
    pub identity: Vec<PathBuf>,
    /// Also write the report as one self-contained HTML file here (refuses to overwrite unless --force).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Counts from 1 to N-1 are shown as `<N` (JSON: null with `suppressed: true`).
    #[arg(long, default_value_t = crate::report::DEFAULT_SUPPRESS_BELOW, value_parser = clap::value_parser!(u64).range(1..))]
    pub suppress_below: u64,
    /// Reference date of ages for 未接種者数 (YYYY-MM-DD; default: the archive's creation date).
    #[arg(long)]
    pub as_of: Option<String>,
    /// Replace an existing --html file.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// Archive locations (folders or s3://bucket/prefix).
    #[arg(required = true)]
    pub archives: Vec<String>,
    /// An earlier catalogue (from --out) to check against: missing, replaced or rolled-back
    /// archives and broken histories are reported and the exit code is 1.
    #[arg(long)]
    pub previous: Option<PathBuf>,
    /// Write the catalogue (JSON) to this file, for the next --previous.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Archive location.
    #[arg(long)]
    pub archive: String,
    /// A current custodian identity (and a vault identity to re-wrap the vault keys).
    #[arg(long, required = true)]
    pub identity: Vec<PathBuf>,
    /// New custodian recipients: `age1…` strings or files of recipient lines (at least two).
    #[arg(long, required = true)]
    pub custodian: Vec<String>,
    /// New vault recipients (`age1…` or files); needs a vault identity in --identity.
    #[arg(long)]
    pub vault_recipient: Vec<String>,
    /// minisign secret key that signs the new manifest.
    #[arg(long)]
    pub signing_key: PathBuf,
    /// Operator id for the lock and the audit log (default: $VAXARC_OPERATOR, else `-`).
    #[arg(long)]
    pub operator: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Report a command line clap could not read, without echoing what was typed where it may
/// be personal data (a 宛名番号 typed without its option is an "unexpected argument", and
/// clap's own message quotes it): help and version print as usual; any other error is one
/// `error:` line naming options only and one `hint:` line, exit 2.
pub fn usage_error(e: clap::Error) -> crate::exit_codes::ExitCode {
    use crate::exit_codes::ExitCode;
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.exit_code() == 0 {
            ExitCode::Success
        } else {
            ExitCode::Error
        };
    }
    let (message, hint) = usage_message(&e);
    eprintln!("error: {message}");
    eprintln!("hint: {hint}");
    ExitCode::Error
}

/// The `error:` and `hint:` texts of a clap error: option names, the command and the
/// values the program itself offers, never a value the operator typed.
pub fn usage_message(e: &clap::Error) -> (String, String) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let text = |kind: ContextKind| -> Option<String> {
        match e.get(kind)? {
            ContextValue::String(s) => Some(s.clone()),
            ContextValue::Strings(v) => Some(v.join(", ")),
            ContextValue::StyledStr(s) => Some(s.to_string()),
            _ => None,
        }
    };
    // An option name as typed (`--atna`, without any `=value`): dashes, then a letter,
    // then letters, digits or dashes (`--46396429` is a value, not shown), else nothing.
    let option_only = |s: &str| {
        let name = s.split('=').next().unwrap_or_default();
        let bare = name.trim_start_matches('-');
        (name.starts_with('-')
            && bare.starts_with(|c: char| c.is_ascii_alphabetic())
            && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| name.to_string())
    };
    let arg = text(ContextKind::InvalidArg).unwrap_or_else(|| "an option".into());
    let message = match e.kind() {
        ErrorKind::UnknownArgument => match text(ContextKind::InvalidArg).as_deref().and_then(option_only) {
            Some(o) => format!("unknown option `{o}`"),
            None => "an argument this command does not take (not shown: it may be personal data; a value goes after its option, as in `--atena N`)".into(),
        },
        // Not shown (a romanised name typed first would be): the commands are listed.
        ErrorKind::InvalidSubcommand => {
            use clap::CommandFactory;
            let commands: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            format!("unknown command (not shown); commands: {}", commands.join(", "))
        }
        ErrorKind::MissingRequiredArgument => format!("missing required argument(s): {arg}"),
        ErrorKind::MissingSubcommand => "no command given".into(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            match text(ContextKind::ValidValue).filter(|v| !v.is_empty()) {
                Some(valid) => format!("invalid value for `{arg}` (not shown); valid: {valid}"),
                None => format!("invalid value for `{arg}` (not shown)"),
            }
        }
        ErrorKind::ArgumentConflict => match text(ContextKind::PriorArg) {
            Some(prior) => format!("`{arg}` cannot be used with `{prior}`"),
            None => format!("`{arg}` cannot be used with another argument given"),
        },
        ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => {
            format!("wrong number of values for `{arg}` (or given twice)")
        }
        _ => "the command line could not be read".into(),
    };
    // The command, from clap's usage line (`Usage: vaxarc lookup [OPTIONS] …`).
    let command = text(ContextKind::Usage)
        .and_then(|u| {
            let words: Vec<String> = u
                .split_whitespace()
                .skip_while(|w| !w.ends_with("vaxarc"))
                .take_while(|w| {
                    !w.starts_with('-') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .map(str::to_string)
                .collect();
            (!words.is_empty()).then(|| words.join(" "))
        })
        .unwrap_or_else(|| "vaxarc".into());
    (
        message,
        format!("see `{command} --help` (and docs/cli.md) for the options it takes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(args: &[&str]) -> (String, String) {
        let mut all = vec!["vaxarc"];
        all.extend(args);
        usage_message(&Cli::try_parse_from(all).map(|_| ()).unwrap_err())
    }

    /// A value typed where it does not belong is never echoed; option names, the
    /// command and the program's own values are.
    #[test]
    fn usage_errors_name_options_never_values() {
        let lookup = [
            "lookup",
            "--archive",
            "a",
            "--identity",
            "k",
            "--operator",
            "o",
            "--purpose",
            "p",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = lookup.to_vec();
            v.extend(extra);
            message(&v)
        };
        let (m, h) = with(&["--atena", "46396429", "46396430"]);
        assert!(!m.contains("46396430") && m.contains("not shown"), "{m}");
        assert!(h.contains("vaxarc lookup --help"), "{h}");
        let (m, _) = with(&["--atna=46396429"]);
        assert_eq!(m, "unknown option `--atna`");
        let (m, _) = with(&["--atena", "1", "--format", "ヤマダ"]);
        assert!(
            !m.contains("ヤマダ") && m.contains("--format") && m.contains("json"),
            "{m}"
        );
        let (m, _) = with(&["--atena", "1", "--46396429"]);
        assert!(!m.contains("46396429"), "{m}");
        let (m, h) = message(&["lookup", "--archive", "a", "--nonesuch"]);
        assert_eq!(m, "unknown option `--nonesuch`");
        assert!(h.contains("`vaxarc lookup --help`"), "{h}");
        let (m, _) = message(&["tanaka"]);
        assert!(!m.contains("tanaka") && m.contains("lookup"), "{m}");
        let (m, _) = message(&["ヤマダ"]);
        assert!(!m.contains("ヤマダ"), "{m}");
        let (m, _) = message(&["lookup", "--archive", "a"]);
        assert!(m.starts_with("missing required argument(s): "), "{m}");
    }
}
