use super::*;

#[test]
fn queries_are_canonicalised_and_never_debug_their_value() {
    assert_eq!(
        Query::atena("００１２３４５").unwrap(),
        Query::atena("12345").unwrap()
    );
    let t = Query::ticket("131091:１２３４５６７８９０").unwrap();
    assert_eq!(t.value(), "131091:1234567890");
    assert!(Query::ticket("131091").is_err());
    assert!(
        Query::kojin_bango("123456789012").is_err() || Query::kojin_bango("123456789012").is_ok()
    );
    let a = Query::kana_birth("ヤマダ　タロウ", "1980-04-01").unwrap();
    let b = Query::kana_birth("ﾔﾏﾀﾞ ﾀﾛｳ", "S55.04.01").unwrap();
    assert_eq!(a, b);
    assert_eq!(format!("{a:?}"), "Query(kana_birth)");
    assert!(Query::parse_line("kana=ヤマダ,birth=1980-04-01").is_ok());
    assert!(Query::parse_line("ticket=131091:1234567890").is_ok());
    assert!(Query::parse_line("name=x").is_err());
    // A mistyped line is refused without echoing what stood where a key belongs.
    let e = Query::parse_line("山田太郎=1980-04-01")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("山田") && !e.contains("1980"), "{e}");
    let e = Query::parse_line("25479007=x").unwrap_err().to_string();
    assert!(!e.contains("25479007"), "{e}");
    // A key given twice is refused, not the last one taken.
    let e = Query::parse_line("atena=1,atena=2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("twice"), "{e}");
    // Errors name the argument, never the value.
    let e = Query::ticket("999:abc").unwrap_err();
    assert!(!e.0.contains("999") && !e.0.contains("abc"), "{}", e.0);
}

#[test]
fn embedded_roles_are_valid_and_vault_items_need_the_vault() {
    let schema = Schema::embedded();
    let roles = Roles::embedded();
    let (name, clerk) = roles.get(None).unwrap();
    assert_eq!(name, "clerk");
    assert!(!View::role_wants_vault(schema, clerk));
    let (_, vo) = roles.get(Some("vault_officer")).unwrap();
    assert!(View::role_wants_vault(schema, vo));
    assert!(!View::new(schema, "vault_officer", vo, false, true)
        .items
        .contains("kojin_bango"));
    assert!(!View::new(schema, "vault_officer", vo, true, false)
        .items
        .contains("kojin_bango"));
    assert!(View::new(schema, "vault_officer", vo, true, true)
        .items
        .contains("kojin_bango"));
    assert!(Roles::from_toml("default = \"x\"\n[role.x]\nitems = [\"nope\"]\n", schema).is_err());
}

/// Give a test record the bookkeeping fields every archived record holds (a linked VRS
/// dose, single, in the covid class) and its source line.
fn archived(schema: &Schema, r: &mut Record, line: i64) {
    for (k, v) in [
        ("source_kind", "vrs"),
        ("source_file_id", "f"),
        ("raw_row_blake3", "x"),
        ("match_method", "atena"),
        ("registry_status", "resident"),
        ("merge_status", "single"),
        ("retention_class", "covid_special"),
    ] {
        r.set(schema.idx(k), Value::Str(v.into()));
    }
    r.set(schema.idx("source_line"), Value::Int(line));
}

/// A custodian identity and write keys for it (fresh vault and signing keys).
fn write_keys() -> (age::x25519::Identity, crate::archive::WriteKeys) {
    use crate::archive::crypto::Recipients;
    let custodian = age::x25519::Identity::generate();
    let vault = age::x25519::Identity::generate();
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let keys = crate::archive::WriteKeys {
        custodians: Recipients(vec![custodian.to_public()]),
        vault: Recipients(vec![vault.to_public()]),
        signing_public: kp.pk.to_base64(),
        signing: kp.sk,
    };
    (custodian, keys)
}

/// Write a new archive of `records` (no lists; hash key `[7; 32]`).
fn write_archive(
    store: &crate::archive::store::Store,
    records: Vec<Record>,
    buckets: u16,
    keys: &crate::archive::WriteKeys,
) -> crate::archive::manifest::Manifest {
    use crate::archive::{self, NewArchive};
    archive::write_new(
        store,
        NewArchive {
            schema: Schema::embedded(),
            records,
            buckets,
            index_secret: [7; 32],
            rest: archive::test_rest(vec![]),
        },
        keys,
        &|_| {},
    )
    .unwrap()
}

/// A writer given records of one partition in two sets refuses the second (its object
/// would be written again under the same name).
#[test]
fn a_writer_refuses_a_partition_written_twice() {
    use crate::archive::{store::Store, Writer};
    let schema = Schema::embedded();
    let (_, keys) = write_keys();
    let mut records: Vec<Record> = (0..2)
        .map(|i| {
            let mut r = rec(schema, &format!("r{i}"), "", "COVID19", 1, 19000);
            r.set(
                schema.idx("registry_atena_number"),
                Value::Str("1001".into()),
            );
            archived(schema, &mut r, i + 2);
            r
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let mut writer = Writer::new(&store, schema, &keys, [7; 32], 4, &|_| {});
    let second = records.split_off(1);
    writer.add(records).unwrap();
    let e = writer.add(second).unwrap_err().to_string();
    assert!(e.contains("written by an earlier set"), "{e}");
}

fn rec(schema: &Schema, id: &str, person: &str, code: &str, dose: i64, date: i32) -> Record {
    let mut r = Record::new(schema.len());
    r.set(schema.idx("record_id"), Value::Str(id.into()));
    r.set(schema.idx("person_hash"), Value::Str(person.into()));
    r.set(schema.idx("vaccine_code"), Value::Str(code.into()));
    r.set(schema.idx("dose_number"), Value::Int(dose));
    r.set(schema.idx("vaccination_date"), Value::Date(date));
    r.set(schema.idx("kanji_name"), Value::Str("山田　太郎".into()));
    r.set(schema.idx("sex"), Value::Str("M".into()));
    r
}

#[test]
fn answer_orders_doses_filters_persons_and_lists_candidates() {
    let schema = Schema::embedded();
    let tables = Tables::embedded();
    let roles = Roles::embedded();
    let (_, clerk) = roles.get(None).unwrap();
    let view = View::new(schema, "clerk", clerk, false, false);
    let records = vec![
        rec(schema, "r3", "p1", "COVID19", 2, 19000),
        rec(schema, "r1", "p1", "COVID19", 1, 18950),
        rec(schema, "r2", "p1", "MR", 1, 10000),
        rec(schema, "r9", "p2", "COVID19", 1, 18960),
    ];
    let q = Query::atena("1").unwrap();
    let a = answer(
        schema,
        tables,
        &q,
        &["p1".into()],
        &records,
        &BTreeMap::new(),
        &view,
    );
    assert_eq!(a.status, "found");
    assert_eq!(a.records, 3);
    assert_eq!(
        a.covid
            .iter()
            .map(|d| d.record_id.as_str())
            .collect::<Vec<_>>(),
        vec!["r1", "r3"]
    );
    assert_eq!(a.routine.len(), 1);
    assert_eq!(
        a.person.get("kanji_name").map(String::as_str),
        Some("山田　太郎")
    );
    let text = render_text(schema, &a);
    assert!(text.contains("接種回") && text.contains("漢字氏名"));
    let fhir = render_fhir(&a);
    assert_eq!(fhir["entry"].as_array().unwrap().len(), 4);
    assert_eq!(
        fhir["entry"][1]["resource"]["meta"]["profile"][0],
        JP_IMMUNIZATION
    );
    // Two persons for a kana + birth query: candidates only.
    let q = Query::kana_birth("ヤマダ", "2000-01-01").unwrap();
    let a = answer(
        schema,
        tables,
        &q,
        &["p1".into(), "p2".into()],
        &records,
        &BTreeMap::new(),
        &view,
    );
    assert_eq!(a.status, "candidates");
    assert_eq!(a.candidates.len(), 2);
    assert!(a.covid.is_empty() && a.person.is_empty() && a.records == 0);
    // In FHIR: one OperationOutcome saying so, not an empty bundle.
    let fhir = render_fhir(&a);
    let entries = fhir["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let issue = &entries[0]["resource"]["issue"][0];
    assert_eq!(entries[0]["resource"]["resourceType"], "OperationOutcome");
    assert_eq!(issue["code"], "multiple-matches");
    assert!(issue["diagnostics"]
        .as_str()
        .unwrap()
        .contains("2 person keys"));
    // An exact identifier reaching both: one answer while they can be one person (a key
    // reconciliation could not join), candidates once they cannot — two birth dates, or
    // two registry residents — whatever the role shows.
    let exact = |records: &[Record], view: &View| {
        answer(
            schema,
            tables,
            &Query::atena("1").unwrap(),
            &["p1".into(), "p2".into()],
            records,
            &BTreeMap::new(),
            view,
        )
    };
    // Without birth dates nothing shows the two keys are one person (missing facts are
    // not agreement); with one birth date on every record, one answer.
    let a = exact(&records, &view);
    assert_eq!(a.status, "candidates");
    let mut born = records.clone();
    for r in born.iter_mut() {
        r.set(schema.idx("birth_date"), Value::Date(100));
    }
    let a = exact(&born, &view);
    assert_eq!((a.status.as_str(), a.records), ("found", 4));
    // A registry resident's key and an unlinked key carrying the same birth date: one;
    // the unlinked key without a birth date: two, even though the resident's has one.
    let mut linked = born.clone();
    for r in linked.iter_mut() {
        if r.at(schema.idx("person_hash")).as_str() == Some("p1") {
            r.set(
                schema.idx("registry_atena_number"),
                Value::Str("1001".into()),
            );
        }
    }
    assert_eq!(exact(&linked, &view).status, "found");
    for r in linked.iter_mut() {
        if r.at(schema.idx("person_hash")).as_str() == Some("p2") {
            r.set(schema.idx("birth_date"), Value::Null);
        }
    }
    assert_eq!(exact(&linked, &view).status, "candidates");
    let (_, h) = roles.get(Some("health_only")).unwrap();
    let blind = View::new(schema, "health_only", h, false, false);
    for (field, values) in [
        ("birth_date", [Value::Date(100), Value::Date(200)]),
        (
            "registry_atena_number",
            [Value::Str("1001".into()), Value::Str("1002".into())],
        ),
        ("sex", [Value::Str("M".into()), Value::Str("F".into())]),
    ] {
        let mut apart = born.clone();
        for r in apart.iter_mut() {
            let p2 = r.at(schema.idx("person_hash")).as_str() == Some("p2");
            r.set(schema.idx(field), values[usize::from(p2)].clone());
        }
        for view in [&view, &blind] {
            let a = exact(&apart, view);
            assert_eq!(a.status, "candidates", "{field}");
            assert!(a.covid.is_empty() && a.person.is_empty() && a.records == 0);
        }
    }
    // Two residents, one of them the one whose 宛名番号 is asked (its own row carries
    // it) and the other reached through a row of theirs typed under it (a twin's dose):
    // the resident asked for alone.
    let mut twins = born.clone();
    for r in twins.iter_mut() {
        let p2 = r.at(schema.idx("person_hash")).as_str() == Some("p2");
        let resident = if p2 { "1002" } else { "1" };
        r.set(
            schema.idx("registry_atena_number"),
            Value::Str(resident.into()),
        );
    }
    let a = exact(&twins, &view);
    assert_eq!(
        (a.status.as_str(), a.persons.as_slice()),
        ("found", &["p1".to_string()][..])
    );
    assert_eq!(a.records, 3, "p1's records only");
    // Candidates show only what the role sees: no vaccine codes to a role without them.
    let mut narrow = view.clone();
    narrow.items.remove("vaccine_code");
    let a = exact(&records, &narrow);
    assert_eq!(a.status, "candidates");
    assert!(a
        .candidates
        .iter()
        .all(|c| c.vaccines.is_empty() && c.records > 0));
    let a = exact(&records, &view);
    assert_eq!(a.candidates[0].vaccines, ["COVID19", "MR"]);
    // One unlinked key whose own records disagree (two kana names under one number and
    // birth date): a candidate, not an answer — by the number or by kana + birth; by
    // --person, as it is.
    let mut twins = born.clone();
    for (i, r) in twins.iter_mut().enumerate() {
        let kana = if i % 2 == 0 {
            "ヤマダ　タロウ"
        } else {
            "ヤマダ　ハナコ"
        };
        r.set(schema.idx("kana_name"), Value::Str(kana.into()));
    }
    let one = |q: Query| {
        answer(
            schema,
            tables,
            &q,
            &["p1".into()],
            &twins,
            &BTreeMap::new(),
            &view,
        )
    };
    let a = one(Query::atena("1").unwrap());
    assert_eq!((a.status.as_str(), a.candidates.len()), ("candidates", 1));
    assert!(a.covid.is_empty() && a.records == 0);
    let a = one(Query::kana_birth("ヤマダ　タロウ", "1970-04-11").unwrap());
    assert_eq!(a.status, "candidates");
    let a = one(Query::Person("p1".into()));
    assert_eq!((a.status.as_str(), a.records), ("found", 3));
    // health_only sees no name.
    let view = View::new(schema, "health_only", h, false, false);
    let a = answer(
        schema,
        tables,
        &Query::atena("1").unwrap(),
        &["p1".into()],
        &records,
        &BTreeMap::new(),
        &view,
    );
    assert!(!a.person.contains_key("kanji_name"));
    // Nobody.
    let a = answer(
        schema,
        tables,
        &Query::atena("1").unwrap(),
        &["zz".into()],
        &records,
        &BTreeMap::new(),
        &view,
    );
    assert_eq!(a.status, "not_found");
}

/// Twins (same kana and birth date, different 宛名番号) through a real archive: the kana
/// query gives candidates, each atena query exactly one person, and only the buckets of the
/// persons are decrypted.
#[test]
fn twins_through_a_written_archive_give_candidates() {
    use crate::archive::store::Store;
    let schema = Schema::embedded();
    let (custodian, keys) = write_keys();
    let mut records = Vec::new();
    for (i, atena) in ["1001", "1002", "1003", "1004", "1005", "1006"]
        .iter()
        .enumerate()
    {
        let mut r = rec(schema, &format!("r{i}"), "", "COVID19", 1, 19000 + i as i32);
        let set = |r: &mut Record, k: &str, v: Value| r.set(schema.idx(k), v);
        set(&mut r, "atena_number", Value::Str((*atena).into()));
        set(&mut r, "registry_atena_number", Value::Str((*atena).into()));
        // 1001 and 1002 are twins.
        set(
            &mut r,
            "kana_name",
            Value::Str(if i < 2 {
                "ヤマダ　タロウ".into()
            } else {
                format!("サトウ　{i}").into()
            }),
        );
        set(
            &mut r,
            "birth_date",
            Value::Date(if i < 2 { 7000 } else { 7000 + i as i32 }),
        );
        archived(schema, &mut r, i as i64 + 2);
        set(&mut r, "raw_row_blake3", Value::Str(format!("x{i}").into()));
        records.push(r);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let m = write_archive(&store, records, 64, &keys);
    let ids = [custodian];
    let mut reader = shell::Reader::open(&store, schema, &ids).unwrap();
    let q = Query::KanaBirth(format!("{}:7000", normalise::kana_key("ヤマダ　タロウ")));
    let persons = reader.resolve(&q).unwrap();
    assert_eq!(persons.len(), 2, "twins share the kana + birth key");
    let all: Vec<Record> = reader.person_records(&persons).unwrap();
    assert!(
        reader.partitions_decrypted < m.partitions.len() as u64,
        "only the persons' buckets are decrypted"
    );
    let hashes: Vec<String> = persons.iter().map(|p| p.0.clone()).collect();
    let roles = Roles::embedded();
    let (_, clerk) = roles.get(None).unwrap();
    let view = View::new(schema, "clerk", clerk, false, false);
    let a = answer(
        schema,
        Tables::embedded(),
        &q,
        &hashes,
        &all,
        &BTreeMap::new(),
        &view,
    );
    assert_eq!(a.status, "candidates");
    assert_eq!(a.candidates.len(), 2);
    assert!(a.covid.is_empty());
    // Each twin by atena: exactly one person, one record; then by --person.
    for atena in ["1001", "1002"] {
        let p = reader.resolve(&Query::atena(atena).unwrap()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(reader.resolve(&Query::person(&p[0].0).unwrap()).unwrap(), p);
        assert_eq!(reader.person_records(&p).unwrap().len(), 1);
    }
}

/// A person the registry does not know, keyed twice (VRS doses by 個人番号, a ledger dose by
/// 宛名番号): a lookup by the 個人番号 joins the ledger key through the 宛名番号 the VRS
/// records carry — but not another unregistered person under that 宛名番号 (another birth
/// date: their own key), a copy without a birth date, or a registry resident whose row
/// carries the number. By the 宛名番号 itself the five keys are candidates.
#[test]
fn a_lookup_by_number_joins_the_same_unlinked_person_only() {
    use crate::archive::store::Store;
    let schema = Schema::embedded();
    let (custodian, keys) = write_keys();
    let mut records = Vec::new();
    type Person<'a> = (&'a [(&'a str, &'a str)], Option<i32>);
    let people: [Person; 5] = [
        (&[("kojin_bango", "123456789018")], Some(7000)),
        (&[], Some(7000)),
        (&[], Some(7001)),
        (&[], None),
        (&[("registry_atena_number", "1001")], Some(9000)),
    ];
    for (i, (fields, birth)) in people.iter().enumerate() {
        let mut r = rec(schema, &format!("r{i}"), "", "COVID19", 1, 19000 + i as i32);
        archived(schema, &mut r, i as i64 + 2);
        let set = |r: &mut Record, k: &str, v: Value| r.set(schema.idx(k), v);
        set(&mut r, "registry_status", Value::Str("unlinked".into()));
        set(&mut r, "match_method", Value::Str("none".into()));
        set(&mut r, "raw_row_blake3", Value::Str(format!("x{i}").into()));
        set(&mut r, "atena_number", Value::Str("5005".into()));
        set(&mut r, "kana_name", Value::Str("ヤマダ　タロウ".into()));
        if let Some(b) = birth {
            set(&mut r, "birth_date", Value::Date(*b));
        }
        for (k, v) in fields.iter() {
            set(&mut r, k, Value::Str((*v).into()));
        }
        if i == 4 {
            set(&mut r, "registry_status", Value::Str("resident".into()));
        }
        records.push(r);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    write_archive(&store, records, 4, &keys);
    let ids = [custodian];
    let mut reader = shell::Reader::open(&store, schema, &ids).unwrap();
    let roles = Roles::embedded();
    let (_, clerk) = roles.get(None).unwrap();
    let view = View::new(schema, "clerk", clerk, false, false);
    let mut ask = |q: Query| {
        let mut persons = reader.resolve(&q).unwrap();
        let joined = reader.join_unlinked(&mut persons).unwrap();
        let all = reader.person_records(&persons).unwrap();
        let hashes: Vec<String> = persons.iter().map(|p| p.0.clone()).collect();
        let a = answer(
            schema,
            Tables::embedded(),
            &q,
            &hashes,
            &all,
            &BTreeMap::new(),
            &view,
        );
        (joined, a)
    };
    let (joined, a) = ask(Query::kojin_bango("123456789018").unwrap());
    assert_eq!(
        (joined, a.status.as_str(), a.persons.len()),
        (1, "found", 2)
    );
    let mut got: Vec<&str> = a.covid.iter().map(|d| d.record_id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["r0", "r1"]);
    let (joined, a) = ask(Query::atena("5005").unwrap());
    assert_eq!(
        (joined, a.status.as_str(), a.candidates.len()),
        (0, "candidates", 5)
    );
}
