#!/usr/bin/env python3
"""Independent re-implementation of the GIMS Relay chain checksum (docs/spec/chain.md).

Uses only the Python standard library, shares no code with the Rust implementation, and
checks every vector in chain-vectors.json: the canonical bytes and the HMAC-SHA256 checksum.
An auditor can adapt `canonical_bytes` and `checksum` to verify exported records.

    python3 docs/spec/verify_vectors.py [docs/spec/chain-vectors.json]
"""
import hashlib
import hmac
import json
import math
import sys

DOMAIN_TAG = b"gims-relay:event:v1\n"


def jcs_number(x):
    """RFC 8785 / ECMAScript Number::toString for the numbers JSON can hold."""
    if isinstance(x, bool):
        raise TypeError("bool is not a number")
    if isinstance(x, int):
        if abs(x) > 2**53:
            raise ValueError("integer beyond IEEE-754 exact range")
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN/Infinity are not JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits
    mantissa, _, exp = r.partition("e")
    exp = int(exp) if exp else 0
    int_part, _, frac = mantissa.partition(".")
    digits = (int_part + frac).lstrip("0")
    # position of the decimal point relative to the start of `digits`
    point = len(int_part.lstrip("0")) + exp if int_part.strip("0") else exp - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    m = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + m + "e" + ("+" if e > 0 else "-") + str(abs(e))


def jcs(value):
    """RFC 8785 canonical JSON text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return jcs_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(v) for k, v in items) + "}"
    raise TypeError(type(value))


def canonical_bytes(record):
    fields = {k: v for k, v in record.items() if k != "checksum"}
    return DOMAIN_TAG + jcs(fields).encode("utf-8")


def checksum(record, key):
    return hmac.new(key, canonical_bytes(record), hashlib.sha256).hexdigest()


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    failures = 0
    for i, v in enumerate(doc["vectors"], 1):
        rec, key = v["record"], bytes.fromhex(v["key_hex"])
        ok_bytes = canonical_bytes(rec) == v["canonical_bytes_utf8"].encode("utf-8")
        ok_mac = hmac.compare_digest(checksum(rec, key), v["expected_checksum"])
        ok_rec = rec["checksum"] == v["expected_checksum"]
        status = "ok" if ok_bytes and ok_mac and ok_rec else "FAIL"
        failures += status != "ok"
        print(f"vector {i}: {rec['trail_id']}#{rec['chain_seq']} {rec['kind']}: bytes={ok_bytes} hmac={ok_mac} -> {status}")
    print(f"{len(doc['vectors']) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else __file__.rsplit("/", 1)[0] + "/chain-vectors.json"))
