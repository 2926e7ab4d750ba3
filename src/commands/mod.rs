//! One module per command; each exposes `run(args, &Context) -> anyhow::Result<ExitCode>`.

pub mod audit;
pub mod catalogue;
pub mod certificate;
pub mod demo;
pub mod erase;
pub mod keygen;
pub mod lookup;
pub mod migrate;
pub mod normalise;
pub mod purge;
pub mod rekey;
pub mod report;
pub mod testdata;
pub mod verify;

use crate::cli::{Cli, Command};
use crate::exit_codes::ExitCode;
use crate::progress::Printer;

/// What every command gets.
pub struct Context {
    /// Progress and notes.
    pub printer: Printer,
    /// Accept identity files readable by others.
    pub allow_insecure_identity: bool,
}

/// Dispatch a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context {
        printer: Printer::new(cli.global.quiet),
        allow_insecure_identity: cli.global.allow_insecure_identity,
    };
    match cli.command {
        Command::Demo(a) => demo::run(a, &ctx),
        Command::Keygen(a) => keygen::run(a, &ctx),
        Command::Testdata(a) => testdata::run(a, &ctx),
        Command::Normalise(a) => normalise::run(a, &ctx),
        Command::Migrate(a) => migrate::run(a, &ctx),
        Command::Verify(a) => verify::run(a, &ctx),
        Command::Report(a) => report::run(a, &ctx),
        Command::Rekey(a) => rekey::run(a, &ctx),
        Command::Catalogue(a) => catalogue::run(a, &ctx),
        Command::Purge(a) => purge::run(a, &ctx),
        Command::Erase(a) => erase::run(a, &ctx),
        Command::Certificate(a) => certificate::run(a, &ctx),
        Command::Lookup(a) => lookup::run(a, &ctx),
        Command::Audit(a) => audit::run(a, &ctx),
    }
}

/// Current UTC time, RFC 3339 (the only clock read, in the shell).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Print a value as one JSON object on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// "1 problem", "2 problems".
pub fn problems(n: usize) -> String {
    format!("{n} problem{}", if n == 1 { "" } else { "s" })
}

/// An error with the operator's next step attached.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// A refusal with a hint.
pub fn refuse(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// Refuse a blank value of a flag that names who acts or why (`--operator`, `--reason`):
/// the certificate and the audit log record it.
pub fn not_blank(flag: &str, value: &str) -> anyhow::Result<()> {
    if blank(value) {
        return Err(refuse(
            format!("{flag} must not be empty"),
            "the certificate and the audit log record who changed the archive and why",
        ));
    }
    Ok(())
}

/// Whether a value shows nothing: only whitespace, control or zero-width characters.
pub fn blank(value: &str) -> bool {
    value.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
    })
}

/// An error as one line: its message, then each cause whose text the line does not
/// already hold (many errors name their source in their own message; anyhow's `{:#}`
/// repeated it), line breaks replaced by spaces.
pub fn message_of(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

/// The hint for an error: its own, or one chosen by the error's type.
pub fn hint_for(err: &anyhow::Error) -> String {
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            return h.hint.clone();
        }
        if let Some(e) = cause.downcast_ref::<crate::pipeline::PipelineError>() {
            return match e {
                crate::pipeline::PipelineError::Read { .. } => {
                    "check the --pipeline path (a pipeline.toml; `vaxarc testdata` writes an example)".into()
                }
                crate::pipeline::PipelineError::Layout { .. } => {
                    "fix the layout at the place named; the built-in layouts in schemas/sources/ are commented examples (docs/pipeline.md)".into()
                }
                _ => "fix the pipeline file at the place named; `docs/pipeline.md` lists every key"
                    .into(),
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::ingest::IngestError>() {
            return match e {
                crate::ingest::IngestError::MissingHeader { .. } | crate::ingest::IngestError::DuplicateHeader { .. } => {
                    "check that the file matches its layout in `schemas/sources/`, or write a layout for this export".into()
                }
                crate::ingest::IngestError::HeaderEncoding { .. } => {
                    "the file is in another encoding than the one used: set the layout's `encoding` (utf-8 or cp932; `auto` guesses from the first MiB), or convert the file".into()
                }
                _ => "check that the source file exists, is readable, and is the export the pipeline names".into(),
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::keys::KeyError>() {
            return match e {
                crate::keys::KeyError::Insecure { .. } => {
                    "run `chmod 600` on the identity file, or pass --allow-insecure-identity".into()
                }
                _ => "check the key file path; make keys with `vaxarc keygen`".into(),
            };
        }
        if let Some(e) = cause.downcast_ref::<crate::audit::AuditError>() {
            return match e {
                crate::audit::AuditError::NoSecret => {
                    "pass a custodian identity with --identity".into()
                }
                _ => "run `vaxarc audit verify --archive DIR`; see docs/audit.md".into(),
            };
        }
        if cause
            .downcast_ref::<crate::archive::crypto::CryptoError>()
            .is_some()
        {
            return "pass the identity of a custodian (or vault holder) of this archive with --identity".into();
        }
        if cause
            .downcast_ref::<crate::archive::store::StoreError>()
            .is_some()
        {
            return "check the --archive location and that it is reachable and writable".into();
        }
        if cause.downcast_ref::<crate::report::ReportError>().is_some() {
            return "the report could not aggregate the decrypted records; run `vaxarc verify --identity` on the archive and report the message".into();
        }
        if let Some(e) = cause.downcast_ref::<crate::archive::ArchiveError>() {
            return archive_hint(e);
        }
    }
    "see `vaxarc --help` and docs/cli.md".into()
}

/// Hints for refusals of the archive layer (`ArchiveError::State`), by a part of their
/// message, first match wins.
const STATE_HINTS: &[(&str, &str)] = &[
    ("is locked", "wait for the running migrate, purge, erase or rekey to finish; if it was killed, see docs/runbooks.md before removing `LOCK`"),
    ("quarantine list is empty", "nothing to erase: the quarantine list holds no rows (see `vaxarc report`)"),
    ("no person in the archive's index", "check the identifier; `vaxarc lookup` with it shows whether the archive holds the person"),
    ("signing key is needed", "pass the minisign secret key that signs this archive with --signing-key"),
    ("not the one that signed", "pass the minisign secret key that signed this archive with --signing-key"),
    ("pass a vault identity", "pass a vault holder's identity too (--identity keys/vault.key)"),
    ("manifest was lost", "restore MANIFEST.json and MANIFEST.json.minisig from a backup (the last generation's are also under history/), then `vaxarc verify`; or choose an empty folder"),
    ("already holds an archive", "choose a new, empty folder (or prefix) for --archive; if you are re-running a migrate that was killed after its commit, check the archive with `vaxarc verify` instead"),
    ("is not empty", "choose a new, empty folder (or prefix) for --archive"),
    ("killed before its certificate", "run the interrupted purge or erase again (the same command): its recovery certifies that run first, then rekey (docs/purge.md)"),
    ("different registry residents", "look the identifier up (`vaxarc lookup … --format json`: it answers `candidates`) and erase each person by --atena or --person; see docs/purge.md (erase)"),
    ("records disagree", "look the identifier up (`vaxarc lookup … --format json` lists the key as a candidate) and erase it by --person only if its records are one person's; see docs/purge.md (erase)"),
    ("not shown to be one person", "look the identifier up (`vaxarc lookup … --format json` lists the keys) and erase each person by --person; see docs/purge.md (erase)"),
    ("does not allow deleting", "see docs/object-storage.md (object lock, MFA delete): keep the archive in a bucket that allows deletion"),
];

/// The hint for an archive error. Its wrapped errors are `transparent`: the error chain
/// skips them, so they are matched here rather than by type in [`hint_for`].
fn archive_hint(e: &crate::archive::ArchiveError) -> String {
    use crate::archive::ArchiveError;
    let verify = "run `vaxarc verify` on the archive; see docs/runbooks.md (failed verify)";
    match e {
        ArchiveError::Crypto(_) => {
            "pass the identity of a custodian (or vault holder) of this archive with --identity"
                .into()
        }
        ArchiveError::Store(_) => {
            "check the --archive location and that it is reachable and writable".into()
        }
        ArchiveError::Spill(_) => {
            "check free space and permissions of the temporary folder (TMPDIR), then run again"
                .into()
        }
        ArchiveError::State(m) => STATE_HINTS
            .iter()
            .find(|(part, _)| m.contains(part))
            .map_or(verify, |(_, hint)| hint)
            .into(),
        _ => verify.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::hint_for;
    use crate::archive::crypto::CryptoError;
    use crate::archive::ArchiveError;

    fn hint(e: ArchiveError) -> String {
        hint_for(&anyhow::Error::new(e).context("while doing something"))
    }

    /// A cause already spelled out in its error's message is not repeated; others are
    /// appended; the result is one line.
    #[test]
    fn messages_are_one_line_without_repeated_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(crate::pipeline::PipelineError::Read {
            path: "p.toml".into(),
            source: io,
        });
        assert_eq!(
            super::message_of(&e),
            "cannot read pipeline `p.toml`: No such file"
        );
        let e = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(super::message_of(&e), "outer: inner second line");
    }

    /// An archive error's hint names its cause's next step, also for the wrapped
    /// (transparent) errors the error chain does not show by type.
    #[test]
    fn archive_errors_get_the_hint_of_their_cause() {
        let wrong_key = ArchiveError::Crypto(CryptoError::Decrypt {
            what: "keys/x.key.age".into(),
            message: "no matching keys".into(),
        });
        assert!(hint(wrong_key).contains("--identity"));
        let empty = ArchiveError::State(
            "the archive's quarantine list is empty; nothing was changed".into(),
        );
        assert!(hint(empty).starts_with("nothing to erase"));
        let unsigned = ArchiveError::State("a signing key is needed to change the archive".into());
        assert!(hint(unsigned).contains("--signing-key"));
        let taken = ArchiveError::State(
            "`./a` already holds an archive (MANIFEST.json exists); migrate writes new archives only"
                .into(),
        );
        assert!(hint(taken).contains("empty folder"));
        // An erase refused for want of one person points at lookup, not at verify.
        for refusal in [
            "this atena identifier reaches one person key whose records disagree (…); nothing was changed",
            "this atena identifier reaches the records of 2 person keys not shown to be one person (…)",
            "this atena identifier reaches the records of 2 different registry residents (…)",
        ] {
            let h = hint(ArchiveError::State(refusal.into()));
            assert!(h.contains("vaxarc lookup") && !h.contains("verify"), "{h}");
        }
        let broken = ArchiveError::Manifest("not JSON".into());
        assert!(hint(broken).contains("vaxarc verify"));
    }
}
