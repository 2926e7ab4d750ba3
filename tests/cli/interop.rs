//! The archive opens without vaxarc: the Debian `age` CLI unwraps a partition key with
//! a custodian identity and decrypts the partition, pyarrow reads it, and `minisign -V`
//! verifies the manifest signature. `.ci/run` installs age, minisign and pyarrow.

use std::process::Command;

use crate::Fixture;

fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: run .ci/run (it installs age, minisign and python3-pyarrow)"
    );
}

#[test]
fn age_cli_and_pyarrow_read_a_partition_and_minisign_verifies_the_manifest() {
    need("age");
    need("minisign");
    need("python3");
    let f = Fixture::new(120, 4);
    let (archive, _) = f.migrate("archive");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("MANIFEST.json")).unwrap()).unwrap();
    let p = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|p| p["rows"].as_u64().unwrap())
        .unwrap();
    let tmp = f.dir.path().join("plain");
    std::fs::create_dir_all(&tmp).unwrap();
    let key_txt = tmp.join("partition.key");
    let parquet = tmp.join("partition.parquet");
    let status = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(f.key("custodian-2.key"))
        .arg("-o")
        .arg(&key_txt)
        .arg(archive.join(p["key"].as_str().unwrap()))
        .status()
        .unwrap();
    assert!(status.success(), "age could not unwrap the partition key");
    let status = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key_txt)
        .arg("-o")
        .arg(&parquet)
        .arg(archive.join(p["file"].as_str().unwrap()))
        .status()
        .unwrap();
    assert!(status.success(), "age could not decrypt the partition");
    let script = "import sys, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1])\nprint(t.num_rows)\nprint(','.join(t.schema.names))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&parquet)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        p["rows"].as_u64().unwrap().to_string()
    );
    let columns = lines.next().unwrap();
    assert!(
        columns.starts_with("record_id,atena_number,kanji_name"),
        "{columns}"
    );
    assert!(
        !columns.contains("kojin_bango"),
        "個人番号 must live only in the vault"
    );
    let status = Command::new("minisign")
        .arg("-Vm")
        .arg(archive.join("MANIFEST.json"))
        .arg("-p")
        .arg(f.key("signing.pub"))
        .arg("-q")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "minisign -V rejected the manifest signature"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
