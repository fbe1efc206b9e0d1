#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/).

Records, rows and ingest batches come from the chain test vectors (docs/spec/chain-vectors.json,
keys k-test-0001 / k-test-0002, which relay_fuzz::seed_ring holds). Export packages come from
real `relay-edge export` output: pass the package directories and zips with --package / --zip
(how they were made is in fuzz/seeds/README.md); without them the package seeds are left as
they are.

    python3 fuzz/make_seeds.py [--package DIR ...] [--zip FILE ...]
"""

import argparse
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
SEP = b"\xff\xfe--file--\xfe\xff"  # relay_fuzz::FILE_SEPARATOR
PACKAGE_FILES = ["manifest.json", "anchors.json", "records.jsonl", "records.csv",
                 "records.json", "proofs.jsonl"]


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def vectors():
    data = json.loads((ROOT / "docs/spec/chain-vectors.json").read_text())
    return [v["record"] for v in data["vectors"]]


def record_seeds(records):
    for i, r in enumerate(records, 1):
        write("record_json", f"vector-{i}.json", compact(r))
    # Same record, other key order and spacing: the decoder must not care.
    write("record_json", "vector-1-pretty.json", json.dumps(records[0], indent=2, sort_keys=False))


def columns_seeds(records):
    # EVENT_LOG_COLUMNS order; NULL project/subject as an empty column.
    order = ["trail_id", "chain_seq", "prev_checksum", "checksum", "kind", "actor", "actor_source",
             "occurred_at", "recorded_at", "time_source", "device", "project", "subject", "payload",
             "key_id"]
    for i, r in enumerate(records[:3], 1):
        cols = []
        for name in order:
            v = r[name]
            if name == "payload":
                v = compact(v)  # the vectors' payloads are already in canonical key order
            cols.append("" if v is None else str(v))
        write("record_columns", f"row-{i}.bin",
              struct.pack("<q", r["chain_seq"]) + "\x1f".join(cols).encode())


def ingest_seeds(records):
    trail = [r for r in records if r["trail_id"] == "nmr-01"]
    relay = [r for r in records if r["trail_id"] == "_relay"]
    write("ingest_batch", "whole-trail.json", compact({"trail_id": "nmr-01", "records": trail}))
    write("ingest_batch", "first-record.json", compact({"trail_id": "nmr-01", "records": trail[:1]}))
    write("ingest_batch", "gap.json", compact({"trail_id": "nmr-01", "records": trail[1:3]}))
    write("ingest_batch", "reserved-trail.json", compact({"trail_id": "_relay", "records": relay}))
    write("ingest_batch", "unprovisioned.json",
          compact({"trail_id": "unprovisioned-01", "records": trail[:1]}))


def config_seeds():
    write("config_load", "edge.toml", """data_dir = "/srv/relay"
watch = ["/data/nmr", "/data/hplc"]
project = "PRJ-42"
device = "nmr-01"
trail = "nmr-01"
listen = "127.0.0.1:8470"
settle_ms = 2000
rescan_secs = 60
notary_interval_secs = 900
log_format = "json"
registration_closed = false
lockout_threshold = 5
lockout_window_secs = 900
session_idle_secs = 900
password_max_age_days = 90
forward_url = "https://relay-server.example:8471"
forward_batch = 500
forward_ca_file = "/etc/relay/ca.pem"
time_source = "ntp"
ntp_servers = ["pool.ntp.org:123", "time.example"]
""")
    write("config_load", "server.toml", """data_dir = "/srv/relay-server"
device = "relay-server"
listen = "0.0.0.0:8471"
tls_cert = "/etc/relay/cert.pem"
tls_key = "/etc/relay/key.pem"
ingest_edges = ["nmr-01", "hplc-02"]
clock_skew_threshold_ms = 2000
notary_interval_secs = 900
time_source = "system"
registration_closed = true

[storage]
provider = "selfhosted"
pg_dsn = "postgres://relay@db/relay?sslmode=require"
s3_bucket = "relay-anchors"
""")
    write("config_load", "empty.toml", "")
    write("config_load", "unicode.toml",
          'project = "Pr\\u00f6be \\"7\\"\\n"\ndevice = "ws-01"\nwatch = [\'/d/\u6e2c\u5b9a\']\n')


def token_seeds():
    header = compact({"alg": "HS256", "typ": "JWT", "kid": "$KID"})
    claims = ('{"sub":"$SUB","iss":"gims-relay","aud":"gims-relay-api","exp":$EXP,'
              '"iat":$IAT,"jti":"$JTI"}')
    write("api_token", "bearer.txt", b"\x00Bearer $TOKEN")
    write("api_token", "bearer-lowercase-spaces.txt", b"\x00bearer   $TOKEN  ")
    write("api_token", "basic.txt", b"\x00Basic YWRhOnBhc3N3b3Jk")
    write("api_token", "signed-valid.bin", b"\x01" + header.encode() + SEP + claims.encode())
    write("api_token", "signed-alg-none.bin",
          b"\x01" + compact({"alg": "none", "kid": "$KID"}).encode() + SEP + claims.encode())
    write("api_token", "signed-expired.bin", b"\x01" + header.encode() + SEP
          + claims.replace("$EXP", "1000").replace("$IAT", "900").encode())


def package_seeds(packages, zips):
    if packages:
        for old in (SEEDS / "export_package").glob("*"):
            old.unlink()
    for p in packages:
        p = pathlib.Path(p)
        parts = []
        for name in PACKAGE_FILES:
            f = p / name
            parts.append(f.read_bytes() if f.exists() else b"!")
        write("export_package", f"{p.name}.bin", SEP.join(parts))
    if zips:
        for old in (SEEDS / "package_zip").glob("*"):
            old.unlink()
    for z in zips:
        z = pathlib.Path(z)
        write("package_zip", z.name, z.read_bytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", action="append", default=[])
    ap.add_argument("--zip", action="append", default=[])
    args = ap.parse_args()
    records = vectors()
    record_seeds(records)
    columns_seeds(records)
    ingest_seeds(records)
    config_seeds()
    token_seeds()
    package_seeds(args.package, args.zip)


if __name__ == "__main__":
    main()
