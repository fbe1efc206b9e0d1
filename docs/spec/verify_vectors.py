#!/usr/bin/env python3
"""Independent re-implementation of the GIMS Relay chain checksum (docs/spec/chain.md).

Uses only the Python standard library, shares no code with the Rust implementation, and
checks every vector in chain-vectors.json: the canonical bytes and the HMAC-SHA256 checksum.
An auditor can adapt `canonical_bytes` and `checksum` to verify exported records. It also
checks consistency-vectors.json (chain.md section 5.1): RFC 9162 tree heads and consistency
proofs, recomputed and verified here.

    python3 docs/spec/verify_vectors.py [docs/spec/chain-vectors.json [docs/spec/consistency-vectors.json]]
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


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tree_head(leaves):
    """RFC 9162 MTH."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(tree_head(leaves[:k]), tree_head(leaves[k:]))


def proof_of(m, leaves, whole=True):
    """RFC 9162 SUBPROOF(m, D[n], b), written from section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [tree_head(leaves)]
    k = split_point(n)
    if m <= k:
        return proof_of(m, leaves[:k], whole) + [tree_head(leaves[k:])]
    return proof_of(m - k, leaves[k:], False) + [tree_head(leaves[:k])]


def consistent(old_size, new_size, old_root, new_root, proof):
    """RFC 9162 section 2.1.4.2, step by step."""
    if old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = ([old_root] if old_size & (old_size - 1) == 0 else []) + list(proof)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)


def check_consistency(path):
    """docs/spec/consistency-vectors.json: heads and proofs recomputed here, then verified."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    failures = 0
    for i, v in enumerate(doc["vectors"], 1):
        old, new = v["old_size"], v["new_size"]
        old_root, new_root = bytes.fromhex(v["old_root"]), bytes.fromhex(v["new_root"])
        proof = [bytes.fromhex(h) for h in v["proof"]]
        holds = consistent(old, new, old_root, new_root, proof)
        ok = holds == v["valid"]
        if v["valid"]:
            leaves = [leaf_hash(j.to_bytes(8, "big")) for j in range(new)]
            ok = ok and tree_head(leaves[:old]) == old_root and tree_head(leaves) == new_root
            ok = ok and (proof_of(old, leaves) if 0 < old < new else []) == proof
        failures += not ok
        if not ok:
            print(f"consistency vector {i}: {old} -> {new} ({v.get('case', 'valid')}): FAIL")
    print(f"consistency proofs: {len(doc['vectors']) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    here = __file__.rsplit("/", 1)[0]
    status = main(sys.argv[1] if len(sys.argv) > 1 else here + "/chain-vectors.json")
    status |= check_consistency(sys.argv[2] if len(sys.argv) > 2 else here + "/consistency-vectors.json")
    sys.exit(status)
