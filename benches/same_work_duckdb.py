"""benches/same_work.py's job written for DuckDB: a hand-written SQL script doing roughly
the work `vaxarc migrate` does, as a benchmark peer for benches/e2e.sh (SAME_WORK=1).

The same steps as same_work.py (read that file's docstring for them and for what neither
script does that vaxarc does), in DuckDB SQL, with what DuckDB lacks done the way a user
would: NFKC through a vectorised Python function (pyarrow's `utf8_normalize`; DuckDB has
only NFC), CP932 files decoded by Python into UTF-8 copies first (DuckDB reads UTF-8 and
Latin-1 without extensions), the keyed hash as SHA-256 over secret, kind and value (DuckDB
has no keyed hash), and age encryption of the Parquet files DuckDB writes with pyrage.

    python3 benches/same_work_duckdb.py SOURCES_DIR OUT_DIR
"""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow.compute as pc
import pyrage
from duckdb.sqltypes import VARCHAR
from pyrage import x25519
from same_work import Lap, encoding  # beside this file

BUCKETS = 16
ERA_YEAR = (
    "CASE e WHEN 'M' THEN 1867 WHEN '明治' THEN 1867 WHEN 'T' THEN 1911 WHEN '大正' THEN 1911 "
    "WHEN 'S' THEN 1925 WHEN '昭和' THEN 1925 WHEN 'H' THEN 1988 WHEN '平成' THEN 1988 "
    "WHEN 'R' THEN 2018 WHEN '令和' THEN 2018 END"
)
ERA = r"^(明治|大正|昭和|平成|令和|[MTSHR])(\d{1,2}|元)[./年-](\d{1,2})[./月-](\d{1,2})"
WEST = r"^(\d{4})[./-]?(\d{1,2})[./-]?(\d{1,2})"

# Ledger columns kept under a name (others are kept normalised as extra_N), and how each
# is normalised when not plain text: k = a key without spaces, a = 宛名番号, d = a date.
LEDGER = {
    "宛名番号": ("atena", "a"),
    "漢字氏名": ("kanji", "k"),
    "かな氏名": ("kana", "k"),
    "生年月日": ("birth", "d"),
    "性別": ("sex", "n"),
    "郵便番号": ("postal", "n"),
    "住所": ("address", "n"),
    "電話番号": ("phone", "n"),
    "接種名称": ("vaccine", "n"),
    "接種数": ("dose", "n"),
    "Lot番号": ("lot", "n"),
    "メーカー": ("maker", "n"),
    "接種日": ("date", "d"),
    "接種医療機関": ("site", "n"),
    "個人番号": ("kojin", "k"),
}


def utf8_path(path, scratch):
    """The file as UTF-8 for DuckDB: itself when it is, else a decoded copy."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
        return path
    except UnicodeDecodeError:
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        out = os.path.join(scratch, os.path.basename(path))
        with open(out, "w", encoding="utf-8", newline="") as f:
            f.write(raw.decode(encoding(raw), errors="replace"))
        return out


def csv(path):
    # The exports' dialect given outright (DuckDB's sniffer gives up on them), as e2e.sh does.
    return (
        f"read_csv('{path}', delim=',', quote='\"', escape='\"', header=true, "
        "all_varchar=true, null_padding=true, parallel=false, ignore_errors=true)"
    )


def form(column, how):
    q = f'"{column}"'
    return {"n": f"n({q})", "k": f"k({q})", "a": f"a({q})", "d": f"d(k({q}))"}[how]


def main(sources, out):
    lap = Lap()
    scratch = os.path.join(out, "utf8")
    os.makedirs(scratch, exist_ok=True)
    con = duckdb.connect()
    con.create_function(
        "nfkc", lambda a: pc.utf8_normalize(a, "NFKC"), [VARCHAR], VARCHAR, type="arrow"
    )
    con.execute("CREATE MACRO n(x) AS trim(nfkc(x))")
    con.execute(r"CREATE MACRO k(x) AS regexp_replace(n(x), '\s', '', 'g')")
    con.execute("CREATE MACRO a(x) AS lpad(k(x), 10, '0')")
    con.execute(
        f"""CREATE MACRO d(s) AS (
          WITH p AS (SELECT regexp_extract(s, '{ERA}', ['e', 'y', 'm', 'd']) AS era,
                            regexp_extract(s, '{WEST}', ['y', 'm', 'd']) AS west)
          SELECT try_strptime(concat_ws('-',
                   coalesce((SELECT {ERA_YEAR} FROM (SELECT nullif(era.e, '') AS e))
                              + try_cast(replace(nullif(era.y, ''), '元', '1') AS INT),
                            try_cast(nullif(west.y, '') AS INT)),
                   coalesce(nullif(era.m, ''), nullif(west.m, '')),
                   coalesce(nullif(era.d, ''), nullif(west.d, ''))), '%Y-%m-%d')::DATE
          FROM p)"""
    )
    secret = os.urandom(32).hex()
    con.execute(f"CREATE MACRO keyed(kind, v) AS sha256(concat('{secret}', kind, chr(0), v))")

    ledgers = []
    for name in sorted(os.listdir(os.path.join(sources, "ledger"))):
        path = utf8_path(os.path.join(sources, "ledger", name), scratch)
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {csv(path)}").fetchall()]
        select = ", ".join(
            f"{form(c, LEDGER[c][1])} AS {LEDGER[c][0]}"
            if c in LEDGER
            else f'n("{c}") AS extra_{i}'
            for i, c in enumerate(columns)
        )
        ledgers.append(
            f"SELECT {select}, '{name[:-4]}' AS source, row_number() OVER () AS line "
            f"FROM {csv(path)}"
        )
    con.execute(f"CREATE TABLE ledger AS {' UNION ALL BY NAME '.join(ledgers)}")
    export = utf8_path(os.path.join(sources, "vrs", "vrs-ledger-export.csv"), scratch)
    groups = " UNION ALL ".join(
        f"""SELECT a("個別宛名番号") AS atena, d(k("{k}回目接種日")) AS date,
                   n("{k}回目券番号") AS ticket, n("{k}回目接種会場名") AS site,
                   n("{k}回目ワクチンメーカー") AS maker, n("{k}回目ワクチンロット番号") AS lot,
                   '{k}' AS dose, line FROM export"""
        for k in range(1, 8)
    )
    con.execute(f"CREATE TABLE export AS SELECT *, row_number() OVER () AS line FROM {csv(export)}")
    persons = utf8_path(os.path.join(sources, "vrs", "vrs-persons.csv"), scratch)
    registry = utf8_path(os.path.join(sources, "registry", "registry.csv"), scratch)

    def person_list(path, prefix, extra):
        return f"""SELECT DISTINCT ON ({prefix}atena) a("宛名番号") AS {prefix}atena,
                   k("個人番号") AS {prefix}kojin, k("氏名") AS {prefix}kanji,
                   k("カナ") AS {prefix}kana, d(k("生年月日")) AS {prefix}birth, {extra}
                   FROM {csv(path)}"""

    con.execute("CREATE TABLE persons AS " + person_list(persons, "", 'n("性別") AS sex'))
    con.execute(
        f"""CREATE TABLE vrs AS SELECT g.*, '新型コロナウイルス感染症' AS vaccine,
                   'vrs' AS source, p.kojin, p.kanji, p.kana, p.birth, p.sex
            FROM ({groups}) g LEFT JOIN persons p USING (atena) WHERE g.date IS NOT NULL"""
    )
    con.execute(
        "CREATE TABLE reg AS "
        + person_list(
            registry, "reg_", 'n("住民区分") AS reg_status, d(k("異動日")) AS reg_status_date'
        )
    )
    con.execute("CREATE TABLE doses AS SELECT * FROM ledger UNION ALL BY NAME SELECT * FROM vrs")
    lap("read+normalise")
    # Link: by 宛名番号, else by kana key and birth date (only where that is unique).
    con.execute(
        """CREATE TABLE linked AS
           WITH by_name AS (SELECT * FROM reg QUALIFY count(*) OVER (PARTITION BY reg_kana,
                                                                      reg_birth) = 1)
           SELECT d.*, r.* FROM doses d JOIN reg r ON d.atena = r.reg_atena
           UNION ALL BY NAME
           SELECT d.*, r.* FROM doses d LEFT JOIN by_name r
                  ON d.kana = r.reg_kana AND d.birth = r.reg_birth
           WHERE d.atena IS NULL OR d.atena NOT IN (SELECT reg_atena FROM reg)"""
    )
    lap("link")
    con.execute(
        f"""CREATE TABLE merged AS
            WITH keyed_rows AS (
              SELECT *, coalesce(reg_atena, atena, kana || '|' || birth,
                                 source || '#' || line) AS person_key,
                        regexp_replace(vaccine, '\\s', '', 'g') AS vaccine_key FROM linked),
            firsts AS (SELECT * FROM keyed_rows
                       QUALIFY row_number() OVER (PARTITION BY person_key, vaccine_key, date
                                                  ORDER BY source, line) = 1),
            people AS (SELECT person_key, keyed('person', person_key) AS person_hash
                       FROM (SELECT DISTINCT person_key FROM firsts))
            SELECT f.*, p.person_hash,
                   ('0x' || left(p.person_hash, 8))::UBIGINT % {BUCKETS} AS bucket,
                   CASE WHEN source = 'vrs' THEN 'covid_special' ELSE 'routine_5y' END AS class,
                   coalesce(least(greatest(year(date) + 6, 2020), 2031), 9999) AS expiry,
                   kana || '|' || birth AS kana_birth
            FROM firsts f JOIN people p USING (person_key)"""
    )
    lap("merge+hash")
    recipients = [x25519.Identity.generate().to_public() for _ in range(2)]
    index = " UNION ".join(
        f"""SELECT '{kind}' AS kind, keyed('{kind}', v) AS key_hash, person_hash
            FROM (SELECT DISTINCT {col}::VARCHAR AS v, person_hash FROM merged
                  WHERE {col} IS NOT NULL)"""
        for col, kind in [
            ("reg_kojin", "kojin_bango"),
            ("atena", "atena"),
            ("kana_birth", "kana_birth"),
        ]
    )
    plain = os.path.join(out, "plain")
    con.execute(
        f"COPY (SELECT * FROM ({index}) ORDER BY key_hash) TO '{plain}-index.parquet' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    lap("index")
    personal = "kanji, kana, address, phone, kojin, reg_kanji, reg_kana, reg_kojin"
    con.execute(
        f"""COPY (SELECT * EXCLUDE ({personal}) FROM merged ORDER BY person_hash)
            TO '{plain}-data' (FORMAT parquet, COMPRESSION zstd,
                               PARTITION_BY (class, expiry, bucket))"""
    )
    con.execute(
        f"""COPY (SELECT class, expiry, bucket, person_hash, {personal} FROM merged
                  ORDER BY person_hash)
            TO '{plain}-vault' (FORMAT parquet, COMPRESSION zstd,
                                PARTITION_BY (class, expiry, bucket))"""
    )
    files = [os.path.join(plain + "-index.parquet")] + [
        os.path.join(root, f)
        for tree in (plain + "-data", plain + "-vault")
        for root, _, names in os.walk(tree)
        for f in names
    ]

    def seal(path):
        # Encrypted beside the plaintext, which is then removed (DuckDB cannot write through
        # an encryptor: this plaintext on disk is what vaxarc never writes).
        with open(path, "rb") as f:
            data = f.read()
        with open(path + ".age", "wb") as f:
            f.write(pyrage.encrypt(data, recipients))
        os.remove(path)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(seal, files))
    lap("partitions")
    rows = con.execute(
        "SELECT (SELECT count(*) FROM doses), (SELECT count(*) FROM merged)"
    ).fetchone()
    lap.report(f"{rows[0]} dose rows, {rows[1]} after merging, {len(files) - 1} objects")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
