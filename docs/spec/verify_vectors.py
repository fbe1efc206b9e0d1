#!/usr/bin/env python3
"""Independent re-implementation of the GIMS Relay chain checksum (docs/spec/chain.md).

Uses only the Python standard library, shares no code with the Rust implementation, and
checks every vector in chain-vectors.json: the canonical bytes and the HMAC-SHA256 checksum.
An auditor can adapt `canonical_bytes` and `checksum` to verify exported records. It also
checks consistency-vectors.json (chain.md section 5.1): RFC 9162 tree heads and consistency
proofs, recomputed and verified here. And it checks checkpoint-vectors.json (checkpoint.md):
signed checkpoints (C2SP signed-note + tlog-checkpoint, Ed25519) rebuilt, re-signed and verified
with its own Ed25519 (RFC 8032 section 6, self-tested against RFC 8032 section 7.1 on every run).
An auditor calls `open_checkpoint(note, seal_public_key)` to verify one checkpoint. Without a
third argument, a missing docs/spec/checkpoint-vectors.json is skipped (and said so).

    python3 docs/spec/verify_vectors.py [docs/spec/chain-vectors.json [docs/spec/consistency-vectors.json
                                         [docs/spec/checkpoint-vectors.json]]]
"""
import base64
import hashlib
import hmac
import json
import math
import os
import re
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


# ---------------------------------------------------------------- Ed25519 (RFC 8032 section 6)
# The RFC's own illustration of pure Ed25519 (no context, no pre-hash), kept close to its names.
# Not constant-time: it verifies and reproduces published values, it is not for holding real keys.
ED_P = 2**255 - 19                                          # base field Z_p
ED_Q = 2**252 + 27742317777372353535851937790883648493      # group order (L)
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P         # curve constant d
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)                  # a square root of -1


def _sha512_modq(data):
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % ED_Q


def _point_add(p, q):
    """Points are extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, x*y = T/Z."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % ED_P
    b = (p[1] + p[0]) * (q[1] + q[0]) % ED_P
    c = 2 * p[3] * q[3] * ED_D % ED_P
    d = 2 * p[2] * q[2] % ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P)


def _point_mul(s, p):
    """[s]p, double-and-add."""
    q = (0, 1, 1, 0)  # the neutral element
    while s > 0:
        if s & 1:
            q = _point_add(q, p)
        p = _point_add(p, p)
        s >>= 1
    return q


def _point_equal(p, q):
    # x1 / z1 == x2 / z2  <=>  x1 * z2 == x2 * z1, and the same for y
    return (p[0] * q[2] - q[0] * p[2]) % ED_P == 0 and (p[1] * q[2] - q[1] * p[2]) % ED_P == 0


def _recover_x(y, sign):
    """The x with low bit `sign` on the curve at y, or None."""
    if y >= ED_P:
        return None
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P != 0:
        x = x * ED_SQRT_M1 % ED_P
    if (x * x - x2) % ED_P != 0:
        return None
    if (x & 1) != sign:
        x = ED_P - x
    return x


ED_GY = 4 * pow(5, ED_P - 2, ED_P) % ED_P
ED_GX = _recover_x(ED_GY, 0)
ED_G = (ED_GX, ED_GY, 1, ED_GX * ED_GY % ED_P)              # the base point B


def _point_compress(p):
    zinv = pow(p[2], ED_P - 2, ED_P)
    x, y = p[0] * zinv % ED_P, p[1] * zinv % ED_P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _point_decompress(s):
    """RFC 8032 section 5.1.3; None when `s` is not the encoding of a point."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % ED_P)


def _secret_expand(seed):
    """The clamped scalar a and the nonce prefix from a 32-byte seed (RFC 8032 section 5.1.5)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public_key(seed):
    a, _ = _secret_expand(seed)
    return _point_compress(_point_mul(a, ED_G))


def ed25519_sign(seed, message):
    """RFC 8032 section 5.1.6: deterministic, so one seed and message give one signature."""
    a, prefix = _secret_expand(seed)
    public = _point_compress(_point_mul(a, ED_G))
    r = _sha512_modq(prefix + message)
    r_bytes = _point_compress(_point_mul(r, ED_G))
    h = _sha512_modq(r_bytes + public + message)
    return r_bytes + int.to_bytes((r + h * a) % ED_Q, 32, "little")


def ed25519_verify(public, message, signature):
    """RFC 8032 section 5.1.7: A and R decode, S < L, and [S]B = R + [k]A."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a_point, r_point = _point_decompress(public), _point_decompress(signature[:32])
    if a_point is None or r_point is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= ED_Q:
        return False
    k = _sha512_modq(signature[:32] + public + message)
    return _point_equal(_point_mul(s, ED_G), _point_add(r_point, _point_mul(k, a_point)))


# RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte): secret key (the seed),
# public key, message, signature.
RFC8032_TESTS = [
    ("TEST 1",
     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
     "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("TEST 2",
     "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
     "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]


def ed25519_self_test():
    """Derive, sign and verify each RFC test exactly; a changed message or signature must fail."""
    failures = 0
    for name, seed, public, message, signature in RFC8032_TESTS:
        seed, public, message, signature = map(bytes.fromhex, (seed, public, message, signature))
        flipped = signature[:-1] + bytes([signature[-1] ^ 0x01])
        ok = (ed25519_public_key(seed) == public and ed25519_sign(seed, message) == signature
              and ed25519_verify(public, message, signature)
              and not ed25519_verify(public, message + b"x", signature)
              and not ed25519_verify(public, message, flipped))
        failures += not ok
        if not ok:
            print(f"ed25519 self-test: RFC 8032 7.1 {name}: FAIL")
    print(f"ed25519 self-test (RFC 8032 7.1): {len(RFC8032_TESTS) - failures} passed, {failures} failed")
    return 1 if failures else 0


# ---------------------------------------------------------------- signed checkpoints (checkpoint.md)
ORIGIN_PREFIX = "gims-relay/"
KEY_NAME_PREFIX = "gims-relay-seal-"
ED25519_TYPE = b"\x01"         # c2sp.org/signed-note signature type of Ed25519
SIGNATURE_PREFIX = "\u2014 "   # em dash, space
TRAIL_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
HEX64 = re.compile(r"[0-9a-f]{64}")


class NoteError(Exception):
    """A note or checkpoint that does not verify; the message says why."""


def key_name(public):
    """The key name: gims-relay-seal- + the seal fingerprint (hex of SHA-256(public key)[:16])."""
    return KEY_NAME_PREFIX + hashlib.sha256(public).hexdigest()[:32]


def key_id(name, public):
    """c2sp.org/signed-note: SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public).digest()[:4]


def verifier_key(public):
    """The signed-note verifier key: name + "+" + 8 hex of the key id + "+" + base64(0x01 || key)."""
    name = key_name(public)
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(ED25519_TYPE + public).decode()}"


def checkpoint_body(trail, size, root, head, time):
    """The note text: origin, tree size, base64 root, then the `head` and `time` extension lines."""
    return (f"{ORIGIN_PREFIX}{trail}\n{size}\n{base64.b64encode(root).decode()}\n"
            f"head {head.hex()}\ntime {time}\n")


def sign_checkpoint(seed, body):
    """The signed note: body, a blank line, one signature line by the key of `seed`."""
    public = ed25519_public_key(seed)
    name = key_name(public)
    sig = base64.b64encode(key_id(name, public) + ed25519_sign(seed, body.encode("utf-8"))).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{name} {sig}\n"


def split_note(note):
    """(body, signature lines), split at the last blank line; the body keeps its final newline."""
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("control character in the note")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("the note is not valid UTF-8") from None
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("no blank line before the signatures, or no final newline")
    return note[:cut + 1], note[cut + 2:-1].split("\n")


def open_note(note, public):
    """c2sp.org/signed-note verification against one Ed25519 key; returns the body.

    Signature lines of other keys (another name or key id) are ignored; a line of this key that
    does not verify, or no line of this key at all, refuses the note."""
    body, lines = split_note(note)
    name = key_name(public)
    kid = key_id(name, public)
    found = False
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise NoteError(f"malformed signature line {line!r}")
        line_name, b64 = line[len(SIGNATURE_PREFIX):].split(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except ValueError:
            raise NoteError(f"signature of {line_name} is not base64") from None
        if not line_name or "+" in line_name or any(c.isspace() for c in line_name) or len(sig) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        if line_name != name or sig[:4] != kid:
            continue
        if not ed25519_verify(public, body.encode("utf-8"), sig[4:]):
            raise NoteError(f"the signature of {name} does not verify")
        found = True
    if not found:
        raise NoteError(f"no signature by {name}+{kid.hex()}")
    return body


def parse_checkpoint(body):
    """The fields of a checkpoint body (checkpoint.md section 1), or NoteError."""
    lines = body[:-1].split("\n")
    if len(lines) != 5:
        raise NoteError(f"{len(lines)} body lines, not 5")
    origin, size, root, head, time = lines
    trail = origin[len(ORIGIN_PREFIX):]
    if not origin.startswith(ORIGIN_PREFIX) or not TRAIL_ID.fullmatch(trail):
        raise NoteError(f"origin {origin!r} is not {ORIGIN_PREFIX}<trail>")
    if not TREE_SIZE.fullmatch(size):
        raise NoteError(f"tree size {size!r} is not a decimal without leading zeros")
    try:
        root_bytes = base64.b64decode(root, validate=True)
    except ValueError:
        root_bytes = b""
    if len(root_bytes) != 32 or base64.b64encode(root_bytes).decode() != root:
        raise NoteError(f"root {root!r} is not the base64 of 32 bytes")
    if not head.startswith("head ") or not HEX64.fullmatch(head[5:]):
        raise NoteError(f"{head!r} is not 'head <64 lowercase hex>'")
    if not time.startswith("time ") or len(time) == 5:
        raise NoteError(f"{time!r} is not 'time <anchored_at>'")
    return {"trail": trail, "size": int(size), "root": root_bytes, "head": bytes.fromhex(head[5:]),
            "time": time[5:]}


def open_checkpoint(note, public):
    """Verify a signed checkpoint under the seal key `public` (32 bytes); returns its fields."""
    return parse_checkpoint(open_note(note, public))


def check_checkpoints(path):
    """docs/spec/checkpoint-vectors.json: valid notes rebuilt, re-signed, verified; tampered ones refused."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if doc.get("format") != "gims-relay-checkpoint-vectors-v1":
        print(f"checkpoint vectors: unknown format {doc.get('format')!r}: FAIL")
        return 1
    failures = 0
    for i, v in enumerate(doc["vectors"], 1):
        public, note = bytes.fromhex(v["public_key"]), v["note"]
        try:
            fields = open_checkpoint(note, public)
            verdict = "verifies"
        except NoteError as e:
            fields, verdict = None, f"refused: {e}"
        if v["valid"]:
            seed = bytes.fromhex(v["seed"])
            want = {"trail": v["trail"], "size": v["size"], "root": bytes.fromhex(v["root"]),
                    "head": bytes.fromhex(v["head"]), "time": v["time"]}
            body = checkpoint_body(*want.values())
            try:
                note_body = split_note(note)[0]
            except NoteError:
                note_body = None
            checks = {
                "key": ed25519_public_key(seed) == public,         # the public key of the seed
                "body": note_body is not None and note_body.encode("utf-8") == body.encode("utf-8"),
                "vkey": verifier_key(public) == v["verifier_key"],  # key name, key id, key
                "sig": fields is not None,   # a line with this key name and id, and its signature holds
                "fields": fields == want,
                "exact": sign_checkpoint(seed, body) == note,       # Ed25519 is deterministic
            }
            ok = all(checks.values())
            detail = " ".join(f"{k}={c}" for k, c in checks.items()) + ("" if fields else f" ({verdict})")
        else:
            ok = fields is None
            detail = verdict if ok else "verifies, but the vector is a tampered note"
        failures += not ok
        kind = "valid" if v["valid"] else "invalid"
        print(f"checkpoint vector {i}: {v['name']} ({kind}): {detail} -> {'ok' if ok else 'FAIL'}")
    print(f"checkpoints: {len(doc['vectors']) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    status = main(sys.argv[1] if len(sys.argv) > 1 else here + "/chain-vectors.json")
    status |= check_consistency(sys.argv[2] if len(sys.argv) > 2 else here + "/consistency-vectors.json")
    status |= ed25519_self_test()
    checkpoints = sys.argv[3] if len(sys.argv) > 3 else here + "/checkpoint-vectors.json"
    if os.path.exists(checkpoints):
        status |= check_checkpoints(checkpoints)
    elif len(sys.argv) > 3:
        print(f"checkpoint vectors: {checkpoints} not found: FAIL")
        status |= 1
    else:
        print(f"checkpoint vectors: {checkpoints} not found, skipped")
    sys.exit(status)
