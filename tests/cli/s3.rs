//! The archive on S3-compatible object storage (issue 11), against a real S3-protocol
//! server: moto's standalone server (PyPI `moto[server]`), started here on a free port
//! bound to 127.0.0.1 and stopped when the test ends. Buckets are created and inspected
//! with boto3 (which moto depends on), an oracle independent of vaxarc's own client.
//!
//! `cargo test --test cli s3` runs them. All traffic goes to 127.0.0.1.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vaxarc::archive::store::{Store, StoreError, Versioning};

use crate::{personal_values, run_ok, vaxarc, Fixture};

const KEY_ID: &str = "AKIAVAXARCTESTKEY01";
const SECRET: &str = "vaxarcTestSecretAccessKeyNeverPrinted000";

/// Runs moto until dropped. Its stdin is a pipe: when this process dies without dropping
/// (a panic abort, a kill), the pipe closes and the server exits by itself.
struct Moto {
    child: Child,
    port: u16,
}

/// moto's server, exiting when its stdin closes. It serves one request at a time: moto's
/// threaded server checks `If-None-Match: *` and stores the object in two steps, so two
/// racing creates could both succeed there (seen here: both writers won in one round of
/// eight), while S3 guarantees that exactly one does. Serialised, moto gives S3's
/// guarantee, and the tests check that vaxarc sends the condition and handles the refusal.
const MOTO: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
os.environ.setdefault("MOTO_PORT", sys.argv[1])
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
"#;

impl Moto {
    fn start() -> Moto {
        for _attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("python3")
                .args(["-c", MOTO, &port.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect(
                    "python3 with moto[server] (pip install 'moto[server]'; .ci/run installs it)",
                );
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Moto { child, port };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto server did not start (is `moto[server]` installed?)");
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment vaxarc gets: this server, test keys, no profile, and the instance
    /// metadata endpoint pointed at a closed local port so no fallback leaves the machine.
    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()),
            ("AWS_REGION".into(), "ap-northeast-1".into()),
            ("AWS_METADATA_ENDPOINT".into(), "http://127.0.0.1:9".into()),
        ]
    }

    /// A vaxarc command with [`Moto::vars`] and no other AWS variable.
    fn vaxarc(&self) -> Command {
        let mut c = vaxarc();
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.envs(self.vars());
        c
    }

    fn store(&self, location: &str) -> Store {
        Store::open_with_env(location, &self.vars()).unwrap()
    }

    /// Run a boto3 snippet with `s3` bound to a client of this server; returns stdout.
    fn boto(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='{KEY_ID}', \
             aws_secret_access_key='{SECRET}', region_name='ap-northeast-1')\n",
            self.endpoint()
        );
        let mut child = Command::new("python3")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("AWS_PROFILE")
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{prelude}{script}").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "boto3 script failed:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn bucket(&self, name: &str, versioned: bool) {
        let mut script = format!("s3.create_bucket(Bucket='{name}', CreateBucketConfiguration={{'LocationConstraint': 'ap-northeast-1'}})\n");
        if versioned {
            script.push_str(&format!("s3.put_bucket_versioning(Bucket='{name}', VersioningConfiguration={{'Status': 'Enabled'}})\n"));
        }
        self.boto(&script);
    }

    /// Every version and delete marker under a key prefix: (key, version id, is delete marker).
    fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
        let out = self.boto(&format!(
            "out = []\nfor page in s3.get_paginator('list_object_versions').paginate(Bucket='{bucket}', Prefix='{prefix}'):\n    \
             out += [(v['Key'], v['VersionId'], False) for v in page.get('Versions', [])]\n    \
             out += [(v['Key'], v['VersionId'], True) for v in page.get('DeleteMarkers', [])]\nprint(json.dumps(out))\n"
        ));
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verify(moto: &Moto, archive: &str, identities: &[&Path]) -> Output {
    let mut c = moto.vaxarc();
    c.arg("verify").arg("--archive").arg(archive).arg("--json");
    for p in identities {
        c.arg("--identity").arg(p);
    }
    c.output().unwrap()
}

fn migrate(moto: &Moto, f: &Fixture, archive: &str) -> Output {
    moto.vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(archive)
        .arg("--json")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn s3_migrate_verify_and_interrupted_rerun_on_a_versioned_bucket() {
    let moto = Moto::start();
    moto.bucket("gov-archive", true);
    let f = Fixture::new(120, 41);
    let archive = "s3://gov-archive/city-131016/vaccination";
    let out = run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(archive)
            .arg("--json"),
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["balanced"], true);
    assert!(summary["records"].as_u64().unwrap() > 50);

    // Everything is under the prefix; nothing outside it.
    let all = moto.versions("gov-archive", "");
    assert!(all.len() > 10);
    assert!(
        all.iter()
            .all(|(k, _, _)| k.starts_with("city-131016/vaccination/")),
        "{all:?}"
    );
    assert!(all
        .iter()
        .any(|(k, _, _)| k == "city-131016/vaccination/MANIFEST.json"));

    // No personal value in any stored object, nor in the output.
    let found = crate::matcher(&personal_values(&f.input()));
    let store = moto.store(archive);
    let objects = store.list().unwrap();
    assert_eq!(
        objects.len(),
        all.len(),
        "one version per object after a fresh migrate"
    );
    for o in &objects {
        assert!(
            found.find(&store.get(&o.path).unwrap()).is_none(),
            "personal value in {}",
            o.path
        );
    }
    assert!(found.find(&out.stdout).is_none() && found.find(&out.stderr).is_none());

    // verify, shallow and deep.
    let v = verify(&moto, archive, &[]);
    assert!(v.status.success(), "{}", text(&v));
    let v = verify(
        &moto,
        archive,
        &[&f.key("custodian-1.key"), &f.key("vault.key")],
    );
    assert!(v.status.success(), "{}", text(&v));
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert!(report["partitions_decrypted"].as_u64().unwrap() > 0);
    assert!(report["vault_decrypted"].as_u64().unwrap() > 0);
    assert_eq!(report["records_checked"], summary["records"]);

    // A second migrate into a committed archive is refused.
    let again = migrate(&moto, &f, archive);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("already holds an archive"),
        "{}",
        text(&again)
    );

    // A run killed before its commit: every object but the manifest and the audit log
    // (appended only after a commit), under another prefix.
    let partial = "s3://gov-archive/city-131016/partial";
    let target = moto.store(partial);
    let mut copied = 0u64;
    for o in &objects {
        if o.path != "MANIFEST.json" && !o.path.starts_with("audit/") {
            target.put(&o.path, store.get(&o.path).unwrap()).unwrap();
            copied += 1;
        }
    }
    let v = verify(&moto, partial, &[]);
    assert_eq!(
        v.status.code(),
        Some(1),
        "objects without a manifest must never verify: {}",
        text(&v)
    );
    assert!(text(&v).contains("MANIFEST.json"));
    // Re-running completes it; the stale objects are gone with every version of them.
    let out = run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(partial)
            .arg("--json"),
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["removed_stale_objects"].as_u64().unwrap(), copied);
    let v = verify(&moto, partial, &[&f.key("custodian-2.key")]);
    assert!(v.status.success(), "{}", text(&v));
    // (The audit log is rewritten on every append — verify appends too — so its older
    // versions are expected; they hold no personal data. Everything else: one version.)
    let versions: Vec<_> = moto
        .versions("gov-archive", "city-131016/partial/")
        .into_iter()
        .filter(|(k, _, _)| !k.starts_with("city-131016/partial/audit/"))
        .collect();
    let current: Vec<_> = target
        .list()
        .unwrap()
        .into_iter()
        .filter(|o| !o.path.starts_with("audit/"))
        .collect();
    assert_eq!(
        versions.len(),
        current.len(),
        "an uncommitted run's objects must not survive as old versions or delete markers"
    );
    assert!(versions.iter().all(|(_, _, marker)| !marker));
}

#[test]
fn s3_two_concurrent_commits_only_one_wins() {
    let moto = Moto::start();
    moto.bucket("commit-race", true);
    // The server honours If-None-Match: * at all.
    let store = moto.store("s3://commit-race/a");
    store.put_new("MANIFEST.json", b"first".to_vec()).unwrap();
    match store.put_new("MANIFEST.json", b"second".to_vec()) {
        Err(StoreError::AlreadyExists { path }) => assert_eq!(path, "MANIFEST.json"),
        other => panic!("a second conditional create must fail, got {other:?}"),
    }
    assert_eq!(store.get("MANIFEST.json").unwrap(), b"first");
    // Two writers at the same instant, several rounds.
    for round in 0..8 {
        let location = format!("s3://commit-race/round{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = (0..2u8)
            .map(|writer| {
                let (barrier, location, vars) = (barrier.clone(), location.clone(), moto.vars());
                std::thread::spawn(move || {
                    let store = Store::open_with_env(&location, &vars).unwrap();
                    barrier.wait();
                    store.put_new("MANIFEST.json", vec![b'0' + writer; 64 * 1024])
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        let lost = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::AlreadyExists { .. })))
            .count();
        assert_eq!((won, lost), (1, 1), "round {round}: {results:?}");
        let winner = results.iter().position(|r| r.is_ok()).unwrap() as u8;
        let stored = moto.store(&location).get("MANIFEST.json").unwrap();
        assert!(
            stored.iter().all(|&b| b == b'0' + winner),
            "round {round}: the stored manifest is the winner's"
        );
    }
}

#[test]
fn s3_delete_all_versions_leaves_no_version() {
    let moto = Moto::start();
    moto.bucket("versioned", true);
    let store = moto.store("s3://versioned/archive");
    for i in 0..3u8 {
        store.put("keys/p1.key.age", vec![i; 10]).unwrap();
    }
    store.delete("keys/p1.key.age").unwrap(); // a delete marker: the old versions stay
    assert!(!store.exists("keys/p1.key.age").unwrap());
    store.put("keys/p1.key.age", vec![9; 10]).unwrap();
    // Neighbours sharing the key as a prefix must not be touched.
    store.put("keys/p1.key.age.bak", b"n".to_vec()).unwrap();
    store.put("keys/p10.key.age", b"n".to_vec()).unwrap();

    let versions = store.list_versions("keys/p1.key.age").unwrap();
    assert_eq!(versions.len(), 5, "{versions:?}");
    assert_eq!(versions.iter().filter(|v| v.delete_marker).count(), 1);
    let oldest = versions
        .iter()
        .find(|v| !v.delete_marker && !v.is_latest && v.size == 10)
        .unwrap()
        .version_id
        .clone();
    assert_eq!(
        store.get_version("keys/p1.key.age", &oldest).unwrap().len(),
        10,
        "old versions are readable before"
    );

    let mut deleted = store.delete_all_versions("keys/p1.key.age").unwrap();
    let mut expected: Vec<String> = versions.iter().map(|v| v.version_id.clone()).collect();
    deleted.sort();
    expected.sort();
    assert_eq!(deleted, expected);

    // Nothing left, checked by vaxarc and by boto3.
    assert!(store.list_versions("keys/p1.key.age").unwrap().is_empty());
    let left: Vec<_> = moto
        .versions("versioned", "archive/keys/p1.key.age")
        .into_iter()
        .filter(|(k, _, _)| k == "archive/keys/p1.key.age")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        store.get_version("keys/p1.key.age", &oldest),
        Err(StoreError::NotFound { .. })
    ));
    let by_boto = moto.boto(&format!(
        "try:\n    s3.get_object(Bucket='versioned', Key='archive/keys/p1.key.age', VersionId='{oldest}')\n    print('readable')\n\
         except s3.exceptions.ClientError as e:\n    print('gone', e.response['Error']['Code'])\n"
    ));
    assert!(by_boto.starts_with("gone"), "{by_boto}");
    assert!(
        store.exists("keys/p1.key.age.bak").unwrap() && store.exists("keys/p10.key.age").unwrap()
    );
    // Absent: nothing to delete.
    assert!(store
        .delete_all_versions("keys/never.key.age")
        .unwrap()
        .is_empty());

    // A local folder: a plain delete, no version ids.
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(&dir.path().to_string_lossy()).unwrap();
    local.put("a", b"x".to_vec()).unwrap();
    assert!(local.delete_all_versions("a").unwrap().is_empty());
    assert!(!local.exists("a").unwrap());
}

#[test]
fn s3_deletion_guard_reports_versioning_and_object_lock() {
    let moto = Moto::start();
    moto.bucket("versioned", true);
    moto.bucket("plain", false);
    moto.boto(
        "s3.create_bucket(Bucket='locked', ObjectLockEnabledForBucket=True, \
         CreateBucketConfiguration={'LocationConstraint': 'ap-northeast-1'})\n\
         s3.put_object_lock_configuration(Bucket='locked', ObjectLockConfiguration={'ObjectLockEnabled': 'Enabled', \
         'Rule': {'DefaultRetention': {'Mode': 'COMPLIANCE', 'Days': 30}}})\n",
    );

    let g = moto.store("s3://versioned/x").deletion_guard().unwrap();
    assert_eq!(g.versioning, Versioning::Enabled);
    assert!(g.deletion_allowed() && g.keeps_versions() && !g.object_lock);

    let g = moto.store("s3://plain/x").deletion_guard().unwrap();
    assert_eq!(g.versioning, Versioning::Unversioned);
    assert!(g.deletion_allowed() && !g.keeps_versions());

    let g = moto.store("s3://locked/x").deletion_guard().unwrap();
    assert!(g.object_lock, "{g:?}");
    assert_eq!(
        g.versioning,
        Versioning::Enabled,
        "object lock implies versioning"
    );
    let r = g.default_retention.clone().unwrap();
    assert_eq!((r.mode.as_str(), r.days), ("COMPLIANCE", Some(30)));
    assert!(!g.deletion_allowed());
    let why = g.refusal.unwrap();
    assert!(
        why.contains("object lock") && why.contains("COMPLIANCE") && why.contains("30 day"),
        "{why}"
    );

    let dir = tempfile::tempdir().unwrap();
    let g = Store::open(&dir.path().to_string_lossy())
        .unwrap()
        .deletion_guard()
        .unwrap();
    assert_eq!(g.versioning, Versioning::NotApplicable);
    assert!(g.deletion_allowed());
}

#[test]
fn s3_errors_name_the_object_and_never_carry_credentials() {
    let moto = Moto::start();
    moto.bucket("exists", false);
    // A bucket that does not exist: a clear error with a hint, no credential.
    let out = verify(&moto, "s3://no-such-bucket/archive", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("bucket `no-such-bucket` does not exist"),
        "a missing bucket is not an uncommitted archive: {t}"
    );
    assert!(
        !t.contains(SECRET) && !t.contains(KEY_ID),
        "credential in output: {t}"
    );
    // Bad locations are refused before any request.
    for bad in [
        "s3://Upper_Case/x",
        "s3://AKIA:secret@bucket/x",
        "s3://exists/a/../b",
    ] {
        let out = verify(&moto, bad, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(!text(&out).contains("secret@"), "{}", text(&out));
    }
    // An endpoint with user info is refused without echoing it.
    let out = moto
        .vaxarc()
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://user:pa55word@127.0.0.1:{}", moto.port),
        )
        .args(["verify", "--archive", "s3://exists/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out).contains("pa55word"), "{}", text(&out));
    // Plain http beyond loopback is refused (no request is made).
    let out = moto
        .vaxarc()
        .env("AWS_ENDPOINT_URL", "http://192.0.2.1:9000")
        .args(["verify", "--archive", "s3://exists/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("plain http"), "{}", text(&out));
    // An empty prefix is not a committed archive: verify says so (exit 1).
    let out = verify(&moto, "s3://exists/empty", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn s3_credentials_from_a_profile() {
    let moto = Moto::start();
    moto.bucket("profiled", false);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, format!("[default]\naws_access_key_id = nope\n\n[city]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")).unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[profile city]\nregion = ap-northeast-1\n[profile sso]\nsso_session = x\n",
    )
    .unwrap();
    let with_profile = |name: &str| {
        let mut c = moto.vaxarc();
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_REGION");
        c.env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_PROFILE", name);
        c.args(["verify", "--archive", "s3://profiled/empty"]);
        c.output().unwrap()
    };
    // The profile's keys are used (no fallback to instance metadata, which points at a
    // closed local port here): the empty prefix is read and found uncommitted.
    let out = with_profile("city");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A profile without static keys is refused with what to do instead.
    let out = with_profile("sso");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("export-credentials"), "{}", text(&out));
    assert!(!text(&out).contains(SECRET));
}

/// An atena number of a person with archived ledger records.
fn some_atena(f: &Fixture) -> String {
    let mut rdr = csv::Reader::from_path(f.input().join("truth/rows.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (file, outcome, atena) = (col("file_id"), col("outcome"), col("atena_number"));
    rdr.records()
        .map(|r| r.unwrap())
        .find(|r| r[file].starts_with("ledger-") && &r[outcome] == "record" && !r[atena].is_empty())
        .map(|r| r[atena].to_string())
        .unwrap()
}

#[test]
fn s3_erase_deletes_every_version_and_a_locked_bucket_refuses_purge() {
    let moto = Moto::start();
    moto.bucket("gov-archive", true);
    let f = Fixture::new(80, 43);
    let archive = "s3://gov-archive/erase";
    run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(archive)
            .arg("--quiet"),
    );
    let out = run_ok(
        moto.vaxarc()
            .args([
                "erase",
                "--archive",
                archive,
                "--operator",
                "op-1",
                "--reason",
                "deletion request",
                "--json",
                "--atena",
            ])
            .arg(some_atena(&f))
            .arg("--identity")
            .arg(f.key("custodian-1.key"))
            .arg("--identity")
            .arg(f.key("vault.key"))
            .arg("--signing-key")
            .arg(f.key("signing.key")),
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        outcome["erased"]["records"].as_u64().unwrap() > 0,
        "{outcome}"
    );
    assert_eq!(outcome["verification"]["passed"], true, "{outcome}");
    // The certificate (stored in the bucket) names every destroyed object's versions,
    // and no version of any of them remains.
    let store = moto.store(archive);
    let cert_path = outcome["certificate"].as_str().unwrap();
    let cert: serde_json::Value = serde_json::from_slice(&store.get(cert_path).unwrap()).unwrap();
    let destroyed = cert["destroyed"].as_array().unwrap();
    assert!(!destroyed.is_empty());
    for d in destroyed {
        let path = d["path"].as_str().unwrap();
        assert!(!d["version_ids"].as_array().unwrap().is_empty(), "{d}");
        let left = moto.versions("gov-archive", &format!("erase/{path}"));
        assert!(left.is_empty(), "{path} still has versions: {left:?}");
    }
    assert!(cert["audit"]["inclusion_proof"].is_array(), "{cert}");
    // The archive still verifies over S3.
    assert!(verify(&moto, archive, &[&f.key("custodian-1.key")])
        .status
        .success());

    // A bucket with object lock: purge refuses before changing anything.
    let script = "s3.create_bucket(Bucket='locked', CreateBucketConfiguration={'LocationConstraint': 'ap-northeast-1'}, ObjectLockEnabledForBucket=True)\n";
    moto.boto(script);
    let locked = "s3://locked/a";
    run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(locked)
            .arg("--quiet"),
    );
    let before = moto.versions("locked", "");
    let out = moto
        .vaxarc()
        .args([
            "purge",
            "--archive",
            locked,
            "--as-of",
            "2040-01-01",
            "--operator",
            "op-1",
        ])
        .arg("--identity")
        .arg(f.key("custodian-1.key"))
        .arg("--identity")
        .arg(f.key("vault.key"))
        .arg("--signing-key")
        .arg(f.key("signing.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not allow deleting"),
        "{}",
        text(&out)
    );
    let after = moto.versions("locked", "");
    assert_eq!(
        before.len(),
        after.len(),
        "the refused purge changed the bucket"
    );
}

#[test]
fn s3_lookup_purge_and_a_killed_migrate_on_a_versioned_bucket() {
    let moto = Moto::start();
    moto.bucket("gov-archive", true);
    let f = Fixture::new(120, 44);
    let archive = "s3://gov-archive/full";
    run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg(archive)
            .arg("--quiet"),
    );
    // Lookup over S3.
    let out = run_ok(
        moto.vaxarc()
            .args([
                "lookup",
                "--archive",
                archive,
                "--operator",
                "op-1",
                "--purpose",
                "証明書交付",
                "--format",
                "json",
                "--atena",
            ])
            .arg(some_atena(&f))
            .arg("--identity")
            .arg(f.key("custodian-1.key")),
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "found", "{answer}");
    assert!(answer["records"].as_u64().unwrap() > 0);
    // Purge over S3: every destroyed object loses every version.
    let out = run_ok(
        moto.vaxarc()
            .args([
                "purge",
                "--archive",
                archive,
                "--as-of",
                "2028-07-15",
                "--operator",
                "op-1",
                "--json",
            ])
            .arg("--identity")
            .arg(f.key("custodian-1.key"))
            .arg("--identity")
            .arg(f.key("vault.key"))
            .arg("--signing-key")
            .arg(f.key("signing.key")),
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        outcome["erased"]["records"].as_u64().unwrap() > 0,
        "{outcome}"
    );
    assert_eq!(outcome["verification"]["passed"], true);
    let store = moto.store(archive);
    let cert: serde_json::Value =
        serde_json::from_slice(&store.get(outcome["certificate"].as_str().unwrap()).unwrap())
            .unwrap();
    // The purge's audit entry follows the migrate's and the lookup's in the same log (each
    // append found the earlier segment by listing `audit/` in the bucket).
    assert_eq!(
        cert["audit"]["index"].as_u64(),
        Some(2),
        "{}",
        cert["audit"]
    );
    assert_eq!(cert["audit"]["size"].as_u64(), Some(3), "{}", cert["audit"]);
    // `audit verify` reads the whole log from the bucket (its segments found by listing
    // `audit/log-`): the three entries.
    let out = run_ok(
        moto.vaxarc()
            .args(["audit", "verify", "--archive", archive]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 entries"), "{text}");
    for d in cert["destroyed"].as_array().unwrap() {
        let path = d["path"].as_str().unwrap();
        assert!(
            moto.versions("gov-archive", &format!("full/{path}"))
                .is_empty(),
            "{path}"
        );
    }
    assert!(verify(&moto, archive, &[&f.key("custodian-1.key")])
        .status
        .success());

    // A migrate killed mid-run over S3 never verifies, and a re-run completes it.
    let killed = "s3://gov-archive/killed";
    let started = std::time::Instant::now();
    run_ok(
        moto.vaxarc()
            .arg("migrate")
            .arg("--pipeline")
            .arg(f.pipeline())
            .arg("--archive")
            .arg("s3://gov-archive/timing")
            .arg("--quiet"),
    );
    let full = started.elapsed();
    let mut child = moto
        .vaxarc()
        .arg("migrate")
        .arg("--pipeline")
        .arg(f.pipeline())
        .arg("--archive")
        .arg(killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(full / 2);
    let _ = child.kill();
    let _ = child.wait();
    let committed = !moto
        .versions("gov-archive", "killed/MANIFEST.json")
        .is_empty();
    if !committed {
        assert_eq!(verify(&moto, killed, &[]).status.code(), Some(1));
        run_ok(
            moto.vaxarc()
                .arg("migrate")
                .arg("--pipeline")
                .arg(f.pipeline())
                .arg("--archive")
                .arg(killed)
                .arg("--quiet"),
        );
    }
    assert!(verify(&moto, killed, &[&f.key("custodian-1.key")])
        .status
        .success());
}

#[test]
fn s3_killed_purges_and_erasures_rerun_to_the_same_result() {
    let moto = Moto::start();
    moto.bucket("gov-archive", true);
    let f = Fixture::new(80, 45);
    let atena = some_atena(&f);
    let id = |c: &mut Command| {
        c.arg("--identity")
            .arg(f.key("custodian-1.key"))
            .arg("--identity")
            .arg(f.key("vault.key"))
            .arg("--signing-key")
            .arg(f.key("signing.key"));
    };
    let purge = |archive: &str| {
        let mut c = moto.vaxarc();
        c.args([
            "purge",
            "--archive",
            archive,
            "--as-of",
            "2028-07-15",
            "--operator",
            "op",
            "--quiet",
        ]);
        id(&mut c);
        c
    };
    let erase = |archive: &str| {
        let mut c = moto.vaxarc();
        c.args([
            "erase",
            "--archive",
            archive,
            "--operator",
            "op",
            "--reason",
            "request",
            "--quiet",
            "--atena",
            &atena,
        ]);
        id(&mut c);
        c
    };
    let records = |archive: &str| -> u64 {
        let m: serde_json::Value =
            serde_json::from_slice(&moto.store(archive).get("MANIFEST.json").unwrap()).unwrap();
        m["totals"]["records"].as_u64().unwrap()
    };
    for (name, command) in [
        ("purge", &purge as &dyn Fn(&str) -> Command),
        ("erase", &erase),
    ] {
        let reference = format!("s3://gov-archive/{name}-reference");
        run_ok(
            moto.vaxarc()
                .arg("migrate")
                .arg("--pipeline")
                .arg(f.pipeline())
                .arg("--archive")
                .arg(&reference)
                .arg("--quiet"),
        );
        let started = Instant::now();
        run_ok(&mut command(&reference));
        let full = started.elapsed();
        let expected = records(&reference);
        for i in 0..3u32 {
            let archive = format!("s3://gov-archive/{name}-killed{i}");
            run_ok(
                moto.vaxarc()
                    .arg("migrate")
                    .arg("--pipeline")
                    .arg(f.pipeline())
                    .arg("--archive")
                    .arg(&archive)
                    .arg("--quiet"),
            );
            let mut child = command(&archive)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(crate::kill_point(full, i * 7 + 3));
            let _ = child.kill();
            let _ = child.wait();
            let v = verify(&moto, &archive, &[]);
            let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
            // Leftovers, or a commit interrupted between its two puts (rerun completes it).
            for p in report["problems"].as_array().unwrap() {
                let problem = p["problem"].as_str().unwrap();
                assert!(
                    problem.contains("not listed") || problem.contains("an interrupted commit"),
                    "{name} kill {i}: {p}"
                );
            }
            moto.store(&archive).delete("LOCK").unwrap();
            let again = command(&archive).output().unwrap();
            if !again.status.success() {
                assert!(
                    name == "erase" && text(&again).contains("no person"),
                    "{name} kill {i}: {}",
                    text(&again)
                );
            }
            assert!(
                verify(&moto, &archive, &[&f.key("custodian-1.key")])
                    .status
                    .success(),
                "{name} kill {i}"
            );
            assert_eq!(records(&archive), expected, "{name} kill {i}");
        }
    }
}

/// Audit appends from several writers at the same instant (clerks looking up at once) on
/// object storage: each segment write is conditional on the version read, so the loser
/// reads the tail again and appends after the winner — every entry is in the log once, in
/// a log that verifies, and every receipt proves its entry.
#[test]
fn s3_concurrent_audit_appends_lose_no_entry() {
    let moto = Moto::start();
    moto.bucket("audit-race", true);
    let f = Fixture::new(30, 61);
    let archive = "s3://audit-race/a";
    let out = migrate(&moto, &f, archive);
    assert!(out.status.success(), "{}", text(&out));
    let store = moto.store(archive);
    let (manifest, _) = vaxarc::archive::read_manifest(&store).unwrap();
    let (writers, each) = (6, 5);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (barrier, vars, id) = (barrier.clone(), moto.vars(), manifest.archive_id.clone());
            std::thread::spawn(move || {
                let store = Store::open_with_env(archive, &vars).unwrap();
                barrier.wait();
                (0..each)
                    .map(|i| {
                        vaxarc::audit::append(
                            &store,
                            None,
                            vaxarc::audit::Event {
                                archive_id: id.clone(),
                                generation: 1,
                                time: "2026-12-07T00:00:00Z".into(),
                                operator: format!("clerk-{w}"),
                                purpose: format!("request {i}"),
                                command: "lookup".into(),
                                outcome: "found".into(),
                                ..Default::default()
                            },
                        )
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let receipts: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let indices: std::collections::BTreeSet<u64> = receipts.iter().map(|r| r.index).collect();
    assert_eq!(
        indices.len(),
        writers * each,
        "every append got its own entry"
    );
    assert!(receipts.iter().all(vaxarc::audit::verify_inclusion));
    let key = minisign::PublicKey::from_base64(&manifest.signing_public_key).unwrap();
    let report = vaxarc::audit::verify(&store, &manifest, Some(&key)).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        report.entries,
        1 + (writers * each) as u64,
        "migrate's and every append"
    );
}
