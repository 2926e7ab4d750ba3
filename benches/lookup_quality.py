#!/usr/bin/env python3
"""Lookup quality against the generator's truth (docs/quality.md, "Lookups").

Looks up every truth person's 宛名番号 and 個人番号 in one batch and compares the doses
each answer shows — (vaccine code, 接種日) — with the person's doses in truth/rows.csv:
doses missing from the answer, doses of someone else in it (a mixed answer: must be 0),
and answers that are `candidates`.

    benches/lookup_quality.py VAXARC DATA_DIR ARCHIVE

DATA_DIR is a `vaxarc testdata` folder (keys/custodian-1.key made by `vaxarc keygen`),
ARCHIVE the archive migrated from it. Prints one JSON object.
"""
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile


def main(vaxarc, data, archive):
    with open(os.path.join(data, "truth/persons.csv"), encoding="utf-8") as f:
        persons = list(csv.DictReader(f))
    doses = collections.defaultdict(set)
    with open(os.path.join(data, "truth/rows.csv"), encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["vaccination_date"]:
                doses[r["person_id"]].add((r["vaccine_code"], r["vaccination_date"]))
    queries = []
    for p in persons:
        for kind in ("atena_number", "kojin_bango"):
            if p[kind]:
                queries.append((kind, p[kind], p["person_id"]))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for kind, value, _ in queries:
            f.write(f"{'atena' if kind == 'atena_number' else 'kojin_bango'}={value}\n")
        batch = f.name
    out = subprocess.run(
        [vaxarc, "lookup", "--archive", archive, "--identity",
         os.path.join(data, "keys/custodian-1.key"), "--operator", "quality",
         "--purpose", "measurement", "--batch", batch, "--format", "json"],
        check=True, capture_output=True, text=True,
    ).stdout
    os.unlink(batch)
    result = {}
    for line in out.splitlines():
        a = json.loads(line)
        kind, _, pid = queries[a["line"] - 1]
        got = set()
        for d in a["covid"]:
            got.add((d.get("vaccine_code"), d.get("vaccination_date")))
        for v in a["routine"]:
            for s in v["stages"]:
                for d in s["doses"]:
                    got.add((d.get("vaccine_code"), d.get("vaccination_date")))
        r = result.setdefault(kind, collections.Counter())
        r["queries"] += 1
        r[a["status"]] += 1
        r["joined_keys"] += max(0, len(a["persons"]) - 1)
        r["truth_doses"] += len(doses[pid])
        r["doses_missing"] += len(doses[pid] - got)
        r["doses_of_someone_else"] += len(got - doses[pid])
    print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:4])
