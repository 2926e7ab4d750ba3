use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().to_str().unwrap()).unwrap();
    (d, s)
}

fn manifest(id: &str) -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format": "vaxarc-archive", "format_version": 1, "archive_id": id, "generation": 1,
        "previous_root": null, "created": "2026-01-01T00:00:00Z",
        "program": {"name": "vaxarc", "version": "0"}, "municipality_code": "131091",
        "custodians": [], "vault_recipients": [], "signing_public_key": "", "buckets": 16,
        "schema_toml": "", "pipeline_toml": "", "accounting": [], "reconciliation": null,
        "partitions": [], "files": [], "totals": {"rows_read": 0, "records": 0, "merged": 0, "quarantined": 0, "review": 0},
        "merkle_root": ""
    }))
    .unwrap()
}

fn event(i: u64) -> Event {
    Event {
        archive_id: "a1".into(),
        generation: 1,
        time: "2026-01-01T00:00:00Z".into(),
        operator: "op1".into(),
        purpose: "test".into(),
        command: "lookup".into(),
        persons: vec![format!("person{i}")],
        query: Some(format!("atena\0{i}")),
        result_count: i,
        outcome: "found".into(),
    }
}

fn keys() -> (minisign::PublicKey, minisign::SecretKey) {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    (kp.pk, kp.sk)
}

#[test]
fn entries_hash_persons_and_queries_and_receipts_verify() {
    let (_d, s) = store();
    let secret = [7u8; 32];
    let mut receipts = Vec::new();
    for i in 0..5 {
        receipts.push(append(&s, Some(&secret), event(i)).unwrap());
    }
    let text = String::from_utf8(s.get(&segment_path(0)).unwrap()).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(
        !text.contains("person1") && !text.contains("atena"),
        "raw person or query in the log"
    );
    for r in &receipts {
        assert!(verify_inclusion(r));
        let mut bad = r.clone();
        bad.entry = bad.entry.replace("op1", "op2");
        assert!(!verify_inclusion(&bad));
    }
    // Persons without the key are refused.
    assert!(matches!(
        append(&s, None, event(9)),
        Err(AuditError::NoSecret)
    ));
    // A batch gets consecutive indexes and one rewrite.
    let batch = append_all(&s, Some(&secret), (10..13).map(event).collect()).unwrap();
    assert_eq!(
        batch.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert!(batch.iter().all(|r| r.size == 8 && verify_inclusion(r)));
}

#[test]
fn verify_accepts_a_good_log_and_names_tampering() {
    let (_d, s) = store();
    let m = manifest("a1");
    let (pk, sk) = keys();
    let secret = [1u8; 32];
    for i in 0..3 {
        append(&s, Some(&secret), event(i)).unwrap();
        checkpoint(&s, "a1", Some(&sk)).unwrap();
    }
    // An unsigned run checkpointing a size a signed run already signed keeps that
    // signature (the text is the same).
    checkpoint(&s, "a1", None).unwrap();
    append(&s, Some(&secret), event(3)).unwrap();
    checkpoint(&s, "a1", None).unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!((r.entries, r.checkpoints, r.signed_checkpoints), (4, 4, 3));
    assert_eq!(
        r.unsigned_checkpoints,
        vec!["audit/checkpoint-4.txt".to_string()]
    );

    let seg = segment_path(0);
    let good = s.get(&seg).unwrap();
    let lines: Vec<&[u8]> = good
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // Altered entry (still valid JSON, same seq).
    let altered = String::from_utf8(good.clone()).unwrap().replacen(
        "\"result_count\":1",
        "\"result_count\":0",
        1,
    );
    s.put(&seg, altered.into_bytes()).unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(!r.ok());
    assert!(
        r.problems
            .iter()
            .any(|p| p.path == LOG_PATHS && p.problem.contains("entries 2..=2")),
        "{:?}",
        r.problems
    );
    // Deleted middle entry.
    let mut deleted = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i != 1 {
            deleted.extend_from_slice(l);
            deleted.push(b'\n');
        }
    }
    s.put(&seg, deleted).unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.path == "audit/log-00000000.jsonl:2"),
        "{:?}",
        r.problems
    );
    // Truncated log.
    let mut truncated = Vec::new();
    for l in &lines[..2] {
        truncated.extend_from_slice(l);
        truncated.push(b'\n');
    }
    s.put(&seg, truncated).unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.problem.contains("entries were deleted")),
        "{:?}",
        r.problems
    );
    // Forged checkpoint signature.
    s.put(&seg, good).unwrap();
    let (_, other) = keys();
    let text = s.get("audit/checkpoint-2.txt").unwrap();
    let forged = crate::archive::manifest::sign(&other, &text, "x").unwrap();
    s.put("audit/checkpoint-2.txt.minisig", forged.into_bytes())
        .unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].path, "audit/checkpoint-2.txt.minisig");
}

/// A certificate's inclusion receipt is checked against the log: a log rewritten,
/// truncated or removed after an erasure fails `audit verify`, naming the certificate,
/// even with no checkpoint to compare with.
#[test]
fn verify_checks_certificate_receipts_against_the_log() {
    let (_d, s) = store();
    let m = manifest("a1");
    let secret = [1u8; 32];
    for i in 0..3 {
        append(&s, Some(&secret), event(i)).unwrap();
    }
    let receipt = append(&s, Some(&secret), event(3)).unwrap();
    append(&s, Some(&secret), event(4)).unwrap();
    let cert = "certificates/000002-erase.json";
    let body = serde_json::json!({"format": "x", "audit": receipt});
    s.put(cert, serde_json::to_vec(&body).unwrap()).unwrap();
    s.put("certificates/000002-erase.md", b"rendering".to_vec())
        .unwrap();
    let r = verify(&s, &m, None).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.receipts, 1);
    // With the archive's key, each certificate must carry its signature.
    let (pk, sk) = keys();
    let sig_path = format!("{cert}.minisig");
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.path == sig_path && p.problem.contains("missing")));
    let signed = s.get(cert).unwrap();
    let sig = crate::archive::manifest::sign(&sk, &signed, "c").unwrap();
    s.put(&sig_path, sig.into_bytes()).unwrap();
    assert!(verify(&s, &m, Some(&pk)).unwrap().ok());
    // A certificate rewritten (its receipt recomputed for a rewritten log) fails there.
    let mut forged: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    forged["format"] = "y".into();
    s.put(cert, serde_json::to_vec(&forged).unwrap()).unwrap();
    let r = verify(&s, &m, Some(&pk)).unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.path == sig_path && p.problem.contains("does not verify")));
    s.put(cert, signed).unwrap();

    let seg = segment_path(0);
    let good = s.get(&seg).unwrap();
    let lines: Vec<Vec<u8>> = good
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let names = |r: &Report, what: &str| {
        r.problems
            .iter()
            .any(|p| p.problem.contains(cert) && p.problem.contains(what))
    };
    // An entry before the proven one altered (the proven one intact): the receipt's tree
    // is no longer a prefix of the log.
    let mut altered = lines.clone();
    altered[1] = String::from_utf8(altered[1].clone())
        .unwrap()
        .replace("\"result_count\":1", "\"result_count\":0")
        .into_bytes();
    s.put(
        &seg,
        altered.join(&b'\n').into_iter().chain([b'\n']).collect(),
    )
    .unwrap();
    s.delete(FRONTIER).unwrap();
    let r = verify(&s, &m, None).unwrap();
    assert!(names(&r, "not consistent"), "{:?}", r.problems);
    // The log cut before the proven entry, or removed whole (no checkpoint exists).
    s.put(
        &seg,
        lines[..2].join(&b'\n').into_iter().chain([b'\n']).collect(),
    )
    .unwrap();
    let r = verify(&s, &m, None).unwrap();
    assert!(names(&r, "entry 4 is missing"), "{:?}", r.problems);
    s.delete(&seg).unwrap();
    let r = verify(&s, &m, None).unwrap();
    assert!(names(&r, "entry 4 is missing"), "{:?}", r.problems);
    // A certificate without a receipt.
    s.put(&seg, good).unwrap();
    s.put(cert, b"{}".to_vec()).unwrap();
    let r = verify(&s, &m, None).unwrap();
    assert!(
        r.problems
            .iter()
            .any(|p| p.path == cert && p.problem.contains("no audit-log inclusion receipt")),
        "{:?}",
        r.problems
    );
}

/// The tree root and receipts an append computes from the frontier equal the ones of
/// the whole log, across a segment boundary.
#[test]
fn appends_cross_segments_and_agree_with_the_whole_log() {
    let (_d, s) = store();
    let m = manifest("a1");
    let secret = [3u8; 32];
    let n = SEGMENT_ENTRIES + 5;
    let first = append_all(&s, Some(&secret), (0..n).map(event).collect()).unwrap();
    assert_eq!(first.len() as u64, n);
    assert!(
        s.exists(&segment_path(0)).unwrap() && s.exists(&segment_path(SEGMENT_ENTRIES)).unwrap()
    );
    let r = append(&s, Some(&secret), event(n)).unwrap();
    assert_eq!((r.index, r.size), (n, n + 1));
    let leaves = read_log(&s).unwrap().leaves();
    assert_eq!(r.root, merkle::hex(&merkle::root(&leaves)));
    assert_eq!(
        r.inclusion_proof,
        merkle::inclusion_proof(&leaves, n as usize)
            .iter()
            .map(merkle::hex)
            .collect::<Vec<_>>()
    );
    assert!(verify_inclusion(&r) && verify_inclusion(&first[4000]));
    checkpoint(&s, "a1", None).unwrap();
    let v = verify(&s, &m, None).unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.entries, n + 1);
}

/// A crash between the segment write and the frontier write: the next append finds the
/// frontier stale, rebuilds it from the log, and nothing is lost or doubled.
#[test]
fn a_stale_frontier_is_rebuilt() {
    let (_d, s) = store();
    let m = manifest("a1");
    let secret = [4u8; 32];
    append_all(&s, Some(&secret), (0..3).map(event).collect()).unwrap();
    let stale = s.get(FRONTIER).unwrap();
    append(&s, Some(&secret), event(3)).unwrap();
    s.put(FRONTIER, stale).unwrap();
    let v = verify(&s, &m, None).unwrap();
    assert!(
        v.ok(),
        "a smaller cached size is not a problem: {:?}",
        v.problems
    );
    let r = append(&s, Some(&secret), event(4)).unwrap();
    assert_eq!((r.index, r.size), (4, 5));
    let leaves = read_log(&s).unwrap().leaves();
    assert_eq!(r.root, merkle::hex(&merkle::root(&leaves)));
    checkpoint(&s, "a1", None).unwrap();
    assert!(verify(&s, &m, None).unwrap().ok());
    // A frontier of the right size but other hashes is named.
    let mut f: serde_json::Value = serde_json::from_slice(&s.get(FRONTIER).unwrap()).unwrap();
    f["blocks"][0] = serde_json::json!(merkle::hex(&[0u8; 32]));
    s.put(FRONTIER, serde_json::to_vec(&f).unwrap()).unwrap();
    let v = verify(&s, &m, None).unwrap();
    assert!(
        v.problems.iter().any(|p| p.path == FRONTIER),
        "{:?}",
        v.problems
    );
}

/// An archive written before segments: its `audit/log.jsonl` is read first, and new
/// entries continue in segments.
#[test]
fn a_legacy_log_is_continued_in_segments() {
    let (_d, s) = store();
    let m = manifest("a1");
    let secret = [5u8; 32];
    let legacy: Vec<u8> = (0..3u64)
        .flat_map(|i| {
            let mut l =
                serde_json::to_vec(&entry_of(Some(&secret), i, &event(i)).unwrap()).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    s.put(LEGACY_LOG, legacy).unwrap();
    let r = append(&s, Some(&secret), event(3)).unwrap();
    assert_eq!((r.index, r.size), (3, 4));
    assert!(s.exists(&segment_path(3)).unwrap());
    let log = read_log(&s).unwrap();
    assert_eq!((log.lines.len(), log.legacy), (4, 3));
    assert_eq!(r.root, merkle::hex(&merkle::root(&log.leaves())));
    append(&s, Some(&secret), event(4)).unwrap();
    checkpoint(&s, "a1", None).unwrap();
    let v = verify(&s, &m, None).unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.entries, 5);
}

#[test]
fn checkpoint_text_round_trips() {
    let root = merkle::leaf_hash(b"x");
    let t = checkpoint_text("abc", 12, &root);
    assert_eq!(
        parse_checkpoint(&t),
        Some(("vaxarc-audit/abc".to_string(), 12, root))
    );
    assert_eq!(t.lines().count(), 3);
}

#[test]
fn an_empty_log_gets_the_migration_entry_first_rebuilt_from_the_manifest() {
    let secret = Some(&[7u8; 32]);
    let mut m = manifest("a1");
    m.totals.records = 42;
    let with_manifest = |m: &Manifest| {
        let (d, s) = store();
        s.put(
            crate::archive::manifest::MANIFEST,
            serde_json::to_vec(m).unwrap(),
        )
        .unwrap();
        (d, s)
    };
    let first_entry =
        |s: &Store| -> Entry { serde_json::from_slice(&read_log(s).unwrap().lines[0]).unwrap() };
    // Not an archive: nothing to rebuild, the event is the first entry.
    let (_d, bare) = store();
    assert_eq!(append(&bare, secret, event(0)).unwrap().index, 0);

    // An archive whose migrate stopped after its commit.
    let (_d, s) = with_manifest(&m);
    let report = verify(&s, &m, None).unwrap();
    assert!(report.ok());
    assert!(
        report.notes.len() == 1 && report.notes[0].contains("the log is empty"),
        "{:?}",
        report.notes
    );
    let r = append_all(&s, secret, vec![event(1), event(2)]).unwrap();
    assert_eq!(
        r.iter().map(|r| r.index).collect::<Vec<_>>(),
        [1, 2],
        "receipts are the caller's events only"
    );
    assert!(r.iter().all(verify_inclusion));
    assert_eq!(read_log(&s).unwrap().lines.len(), 3);
    let e = first_entry(&s);
    assert_eq!(
        (
            e.command.as_str(),
            e.outcome.as_str(),
            e.time.as_str(),
            e.generation,
            e.result_count,
            e.archive_id.as_str(),
            e.operator.as_str(),
        ),
        (
            "migrate",
            RECOVERED,
            "2026-01-01T00:00:00Z",
            1,
            42,
            "a1",
            "unknown"
        )
    );
    let report = verify(&s, &m, None).unwrap();
    assert!(report.ok());
    assert!(
        report.notes.len() == 1 && report.notes[0].contains("rebuilt by a later command"),
        "{:?}",
        report.notes
    );
    // Written once: the next append adds only its own entry.
    append(&s, secret, event(3)).unwrap();
    assert_eq!(read_log(&s).unwrap().lines.len(), 4);

    // A migrate's own entry is never preceded by a rebuilt one.
    let (_d, fresh) = with_manifest(&m);
    let own = Event {
        command: "migrate".into(),
        outcome: "committed".into(),
        ..event(0)
    };
    assert_eq!(append(&fresh, secret, own).unwrap().index, 0);
    assert!(verify(&fresh, &m, None).unwrap().notes.is_empty());

    // After a purge, erase or rekey (generation 2, each of which logs) an empty log means
    // removed entries: not rebuilt, and `audit verify` says so.
    let mut later = m.clone();
    later.generation = 2;
    let (_d, past) = with_manifest(&later);
    let report = verify(&past, &later, None).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.problem.contains("entries were removed")),
        "{:?}",
        report.problems
    );
    append(&past, secret, event(4)).unwrap();
    assert_eq!(first_entry(&past).command, "lookup");
    // A log that was written and removed is not rebuilt: a checkpoint is left, or a
    // certificate exists (it names its entry).
    let (_d, checkpointed) = with_manifest(&m);
    checkpointed
        .put("audit/checkpoint-00000003.txt", b"x".to_vec())
        .unwrap();
    let (_d, certified) = with_manifest(&m);
    certified
        .put("certificates/000002-erase.json", b"{}".to_vec())
        .unwrap();
    for s in [&checkpointed, &certified] {
        append(s, secret, event(4)).unwrap();
        assert_eq!(first_entry(s).command, "lookup");
    }

    // A log that starts with something else is noted (not a failure).
    let (_d, old) = store();
    append(&old, secret, event(0)).unwrap();
    let report = verify(&old, &m, None).unwrap();
    assert!(report.ok() && report.notes[0].contains("not the migration's"));
}

/// A generation after the first with no purge, erase or rekey entry: a problem when its
/// records changed (an erase's entry removed with its certificate), a note when only the
/// wrapped keys did (a rekey logged by no older vaxarc) or when its purge or erase was
/// killed before its certificate.
#[test]
fn a_generation_without_its_entry_is_named() {
    let (_d, s) = store();
    let secret = [1u8; 32];
    // Data objects by path (their blake3 is the path's), and one wrapped key per
    // generation (a rekey re-wraps keys only).
    let at = |generation: u64, files: &[&str]| {
        let mut m = manifest("a1");
        m.generation = generation;
        m.files = files
            .iter()
            .map(|f| crate::archive::manifest::FileEntry::of(f, "partition", f.as_bytes()))
            .chain([crate::archive::manifest::FileEntry::of(
                "keys/k.key.age",
                "key",
                &generation.to_be_bytes(),
            )])
            .collect();
        m
    };
    let mut migrate = event(0);
    migrate.command = "migrate".into();
    append(&s, Some(&secret), migrate).unwrap();
    let mut erase = event(1);
    (erase.command, erase.outcome, erase.generation) = ("erase".into(), "erased".into(), 2);
    let receipt = append(&s, Some(&secret), erase).unwrap();
    let cert = "certificates/000002-erase.json";
    let body = serde_json::to_vec(&serde_json::json!({"audit": receipt})).unwrap();
    s.put(cert, body.clone()).unwrap();
    let keep = |g: u64, m: &Manifest| {
        let path = crate::archive::history_path(g, crate::archive::manifest::MANIFEST);
        s.put(&path, serde_json::to_vec(m).unwrap()).unwrap();
    };
    keep(1, &at(1, &["p1", "p2"]));
    keep(2, &at(2, &["p1"]));
    // Generation 2 logged and certified: fine; its certificate removed: a problem.
    let r = verify(&s, &at(2, &["p1"]), None).unwrap();
    assert!(
        r.ok() && r.notes.is_empty(),
        "{:?} {:?}",
        r.problems,
        r.notes
    );
    s.delete(cert).unwrap();
    let r = verify(&s, &at(2, &["p1"]), None).unwrap();
    assert!(
        r.problems.iter().any(|p| p
            .problem
            .contains("the erase of generation 2 has no certificate")),
        "{:?}",
        r.problems
    );
    s.put(cert, body).unwrap();
    // Generation 3 took a partition and left no entry: a problem.
    let r = verify(&s, &at(3, &["p3"]), None).unwrap();
    assert!(
        r.problems.iter().any(|p| p
            .problem
            .contains("generation 3 changed the archive's records")),
        "{:?}",
        r.problems
    );
    // Generation 3 with generation 2's data objects: keys only (a rekey), a note.
    let r = verify(&s, &at(3, &["p1"]), None).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("generation 3 changed only the wrapped keys")));
    // A list rewritten (an `erase --quarantine`) is not a rekey.
    let mut listed = at(3, &["p1"]);
    listed.files.push(crate::archive::manifest::FileEntry::of(
        "quarantine/q.parquet.age",
        "quarantine",
        b"q",
    ));
    let r = verify(&s, &listed, None).unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.problem.contains("generation 3 changed")));
    // With the key, a history manifest must carry its signature.
    let (pk, _) = keys();
    let r = verify(&s, &at(3, &["p1"]), Some(&pk)).unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.problem.contains("generation 3 changed")));
    // Generation 3 committed by a purge killed before its certificate: a note.
    s.put(&crate::archive::pending_path(3), b"x".to_vec())
        .unwrap();
    let r = verify(&s, &at(3, &["p3"]), None).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("killed before its certificate")));
}
