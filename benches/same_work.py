"""A hand-written python-polars script doing roughly the work `vaxarc migrate` does.

Not part of vaxarc and not a test: a benchmark peer for benches/e2e.sh (SAME_WORK=1), so
that the time of `vaxarc migrate` can be set beside what a user's own polars script would
cost for comparable work — not only beside a plain CSV-to-Parquet conversion, which does
none of it. What it does, on the original source files (CP932, UTF-8, UTF-8 with BOM):

1. decode each file to text (CP932 or UTF-8) and read it with every column as text;
2. normalise every text value (NFKC, trimmed), names to match keys (no spaces), 宛名番号 to
   ten digits, and dates in the exports' forms (西暦 with / - . or none, 和暦 with an era
   letter or name: H28.4.8, R5/5/24, 平成28年7月5日);
3. turn the VRS export's seven dose groups per row into one row per dose and enrich them
   with the VRS person list (by 宛名番号);
4. link every dose row to the registry: by 宛名番号, else by kana key and birth date;
5. merge duplicates across sources (same person, vaccine and date: the first row kept);
6. hash each person's key with a keyed hash (blake2b, keyed; vaxarc uses keyed blake3),
   hashing each distinct key once, and three identifiers per person for an index;
7. split into partitions by retention class, expiry year and one of 16 buckets of the
   person hash; write each partition's non-personal columns and its personal columns
   (names, address, phone, 個人番号) as two zstd Parquet objects, each encrypted with age
   (pyrage) to two recipients, plus an encrypted index of identifier hashes.

What it does not do and vaxarc does: per-field validation with file/line/column in every
error, quarantine, review queues, probabilistic scoring, conflict lists, provenance,
accounting that proves every source row is somewhere, a manifest with a Merkle root and
signature, crash-safe commits, bounded memory (this holds everything in memory), one key
per object wrapped for custodians. So it is a floor for a polars solution, not its equal.

    python3 benches/same_work.py SOURCES_DIR OUT_DIR
"""

import hashlib
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pyrage
from pyrage import x25519

ERAS = {
    "M": 1867,
    "T": 1911,
    "S": 1925,
    "H": 1988,
    "R": 2018,
    "明治": 1867,
    "大正": 1911,
    "昭和": 1925,
    "平成": 1988,
    "令和": 2018,
}
BUCKETS = 16


def encoding(raw):
    """UTF-8 or CP932, whichever gives fewer replacement characters over the first MiB: the
    exports are one or the other, some with a few broken bytes on purpose."""
    head = raw[: 1 << 20]
    return min(["utf-8", "cp932"], key=lambda e: head.decode(e, errors="replace").count("\ufffd"))


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")  # valid UTF-8: polars reads the bytes as they are
        data = raw
    except UnicodeDecodeError:
        data = raw.decode(encoding(raw), errors="replace").encode()
    return pl.read_csv(data, infer_schema=False, truncate_ragged_lines=True)


def norm(col):
    return pl.col(col).str.normalize("NFKC").str.strip_chars()


def key(col):
    return norm(col).str.replace_all(r"\s", "")


def atena(col):
    return key(col).str.zfill(10)


def date(col):
    """A date from the forms the exports use; null when none fits."""
    s = key(col)
    era = s.str.extract_groups(
        r"^(明治|大正|昭和|平成|令和|[MTSHR])(\d{1,2}|元)[./年-](\d{1,2})[./月-](\d{1,2})"
    )
    west = s.str.extract_groups(r"^(\d{4})[./-]?(\d{1,2})[./-]?(\d{1,2})")
    era_year = era.struct.field("1").replace_strict(
        ERAS, default=None, return_dtype=pl.Int32
    ) + era.struct.field("2").replace("元", "1").cast(pl.Int32, strict=False)
    y = pl.coalesce(era_year, west.struct.field("1").cast(pl.Int32, strict=False))
    m = pl.coalesce(era.struct.field("3"), west.struct.field("2")).cast(pl.Int32, strict=False)
    d = pl.coalesce(era.struct.field("4"), west.struct.field("3")).cast(pl.Int32, strict=False)
    return pl.format("{}-{}-{}", y, m, d).str.to_date("%Y-%m-%d", strict=False)


# Ledger columns kept under a name (others are kept normalised as extra_N), and how each
# is normalised when not plain text.
LEDGER = {
    "宛名番号": "atena",
    "漢字氏名": "kanji",
    "かな氏名": "kana",
    "生年月日": "birth",
    "性別": "sex",
    "郵便番号": "postal",
    "住所": "address",
    "電話番号": "phone",
    "接種名称": "vaccine",
    "接種数": "dose",
    "Lot番号": "lot",
    "メーカー": "maker",
    "接種日": "date",
    "接種医療機関": "site",
    "個人番号": "kojin",
}
LEDGER_FORMS = {
    "宛名番号": atena,
    "漢字氏名": key,
    "かな氏名": key,
    "生年月日": date,
    "接種日": date,
    "個人番号": key,
}


def ledger(path, source):
    df = read(path)
    return df.select(
        LEDGER_FORMS.get(c, norm)(c).alias(LEDGER.get(c, f"extra_{i}"))
        for i, c in enumerate(df.columns)
    ).with_columns(pl.lit(source).alias("source"), pl.int_range(pl.len()).alias("line"))


def vrs(export_path, persons_path):
    ex = read(export_path)
    doses = []
    for k in range(1, 8):
        p = f"{k}回目"
        doses.append(
            ex.select(
                atena("個別宛名番号").alias("atena"),
                date(p + "接種日").alias("date"),
                norm(p + "券番号").alias("ticket"),
                norm(p + "接種会場名").alias("site"),
                norm(p + "ワクチンメーカー").alias("maker"),
                norm(p + "ワクチンロット番号").alias("lot"),
                pl.lit(str(k)).alias("dose"),
                pl.int_range(pl.len()).alias("line"),
            ).filter(pl.col("date").is_not_null())
        )
    long = pl.concat(doses).with_columns(
        pl.lit("新型コロナウイルス感染症").alias("vaccine"), pl.lit("vrs").alias("source")
    )
    persons = person_list(persons_path, "", norm("性別").alias("sex"))
    return long.join(persons, on="atena", how="left")


def person_list(path, prefix, *extra):
    """A list of persons (the registry, the VRS person list): one row per 宛名番号."""
    return (
        read(path)
        .select(
            atena("宛名番号").alias(prefix + "atena"),
            key("個人番号").alias(prefix + "kojin"),
            key("氏名").alias(prefix + "kanji"),
            key("カナ").alias(prefix + "kana"),
            date("生年月日").alias(prefix + "birth"),
            *extra,
        )
        .unique(prefix + "atena", keep="first")
    )


def registry(path):
    return person_list(
        path,
        "reg_",
        norm("住民区分").alias("reg_status"),
        date("異動日").alias("reg_status_date"),
    )


def keyed(values, secret, kind):
    """Keyed hash of each distinct value (hex), as a frame to join on."""
    uniq = values.drop_nulls().unique()
    hashes = [
        hashlib.blake2b((kind + "\0" + v).encode(), key=secret, digest_size=32).hexdigest()
        for v in uniq.to_list()
    ]
    return pl.DataFrame({values.name: uniq, kind + "_hash": hashes})


def seal(df, recipients):
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd")
    return pyrage.encrypt(buf.getvalue(), recipients)


class Lap:
    """Seconds per step, printed to stderr at the end (report)."""

    def __init__(self):
        self.t, self.steps = time.perf_counter(), []

    def __call__(self, step):
        now = time.perf_counter()
        self.steps.append(f"{step} {now - self.t:.2f} s")
        self.t = now

    def report(self, counts):
        """Print what was done (`counts`) and the seconds of each step to stderr."""
        print(f"{counts};", ", ".join(self.steps), file=sys.stderr)


def main(sources, out):
    lap = Lap()
    os.makedirs(out, exist_ok=True)
    recipients = [x25519.Identity.generate().to_public() for _ in range(2)]
    secret = os.urandom(32)
    files = sorted(
        os.path.join(sources, "ledger", f) for f in os.listdir(os.path.join(sources, "ledger"))
    )
    doses = pl.concat(
        [ledger(f, "ledger-" + os.path.basename(f)[:-4]) for f in files]
        + [
            vrs(
                os.path.join(sources, "vrs", "vrs-ledger-export.csv"),
                os.path.join(sources, "vrs", "vrs-persons.csv"),
            )
        ],
        how="diagonal_relaxed",
    )
    reg = registry(os.path.join(sources, "registry", "registry.csv"))
    lap("read+normalise")
    # Link: by 宛名番号, else by kana key and birth date (only where that is unique).
    by_atena = doses.join(reg, left_on="atena", right_on="reg_atena", how="left", coalesce=False)
    linked = by_atena.filter(pl.col("reg_atena").is_not_null())
    rest = by_atena.filter(pl.col("reg_atena").is_null()).select(doses.columns)
    by_name = reg.filter(pl.len().over("reg_kana", "reg_birth") == 1)
    rest = rest.join(
        by_name,
        left_on=["kana", "birth"],
        right_on=["reg_kana", "reg_birth"],
        how="left",
        coalesce=False,
    )
    linked = pl.concat([linked, rest], how="diagonal_relaxed")
    linked = linked.with_columns(
        pl.coalesce(
            "reg_atena",
            "atena",
            pl.format("{}|{}", "kana", "birth"),
            pl.format("{}#{}", "source", "line"),
        ).alias("person_key"),
        pl.col("vaccine").str.replace_all(r"\s", "").alias("vaccine_key"),
    )
    lap("link")
    # Merge the same dose from several sources: the first row kept.
    merged = linked.unique(["person_key", "vaccine_key", "date"], keep="first", maintain_order=True)
    people = keyed(merged["person_key"], secret, "person")
    merged = (
        merged.join(people, on="person_key", how="left")
        .with_columns(
            (pl.col("person_hash").str.slice(0, 8).str.to_integer(base=16) % BUCKETS).alias(
                "bucket"
            ),
            pl.when(pl.col("source") == "vrs")
            .then(pl.lit("covid_special"))
            .otherwise(pl.lit("routine_5y"))
            .alias("class"),
            # Expiry years clipped to the range vaxarc's retention rules give this data, so that
            # both write about as many partitions (≈ 270 at 1M rows).
            (pl.col("date").dt.year() + 6).clip(2020, 2031).fill_null(9999).alias("expiry"),
        )
        .sort("person_hash")
    )
    lap("merge+hash")
    # Index: three identifiers per person, each hashed once per distinct value.
    index = []
    merged = merged.with_columns(pl.format("{}|{}", "kana", "birth").alias("kana_birth"))
    for col, kind in [
        ("reg_kojin", "kojin_bango"),
        ("atena", "atena"),
        ("kana_birth", "kana_birth"),
    ]:
        h = keyed(merged[col].cast(pl.String), secret, kind)
        index.append(
            merged.select(col, "person_hash")
            .unique()
            .join(h, on=col)
            .select(
                pl.lit(kind).alias("kind"), pl.col(kind + "_hash").alias("key_hash"), "person_hash"
            )
        )
    with open(os.path.join(out, "index.parquet.age"), "wb") as f:
        f.write(seal(pl.concat(index).unique().sort("key_hash"), recipients))
    lap("index")
    personal = ["kanji", "kana", "address", "phone", "kojin", "reg_kanji", "reg_kana", "reg_kojin"]
    personal = [c for c in personal if c in merged.columns]

    def write(item):
        (cls, exp, b), part = item
        name = f"{cls}-{exp}-{b:02}"
        with open(os.path.join(out, name + ".parquet.age"), "wb") as f:
            f.write(seal(part.drop(personal), recipients))
        with open(os.path.join(out, name + ".vault.parquet.age"), "wb") as f:
            f.write(seal(part.select("person_hash", *personal), recipients))

    parts = merged.partition_by(["class", "expiry", "bucket"], as_dict=True)
    # One partition per core at a time (polars and pyrage work outside the GIL).
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, parts.items()))
    lap("partitions")
    lap.report(f"{doses.height} dose rows, {merged.height} after merging, {len(parts)} partitions")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
