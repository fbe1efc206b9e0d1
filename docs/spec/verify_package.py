#!/usr/bin/env python3
"""Independent verifier of a GIMS Relay export package (docs/spec/export.md), standard library only.

It shares no code with the Rust `relay-verify` and implements every check of export.md §4 in the
order §4.1 gives, including Ed25519 (RFC 8032 with the checks of §3, in pure Python: slow, about
20 ms per seal, but exact) and the anchor history of checkpoint.md §6.1 (signed checkpoints,
frontiers, RFC 9162 consistency links, forks). It reads whole files into memory, so it is meant
for packages up to a few hundred MB; `relay-verify` streams.

    python3 docs/spec/verify_package.py PACKAGE [--key-file trail-hmac.json]
        [--expect-fingerprint FP]... [--trust-file FILE]... [--json]

Exit codes, as relay-verify: 0 verified (intact and sealed by a pinned key); 1 a check failed;
2 unusable input; 3 intact but the seal key is not pinned.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import stat
import sys
import zipfile
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_vectors import DOMAIN_TAG, canonical_bytes, consistent, jcs  # noqa: E402  (same directory)

EXPORT_FORMAT = "gims-relay export v2"
EXPORT_FORMATS = {"gims-relay export v1": 1, EXPORT_FORMAT: 2}  # v1: read, never written
MANIFEST_TAG = b"gims-relay:export-manifest:v1\n"
ROWS_TAG = b"gims-relay:export-rows:v1\n"
MANIFEST, JSONL, CSV, JSONR, ANCHORS, PROOFS, RECEIPTS, REVIEW = (
    "manifest.json", "records.jsonl", "records.csv", "records.json", "anchors.json", "proofs.jsonl",
    "receipts.jsonl", "access_review.json")
PACKAGE_FILES = [MANIFEST, JSONL, CSV, JSONR, ANCHORS, PROOFS, RECEIPTS, REVIEW]
REVIEW_FORMAT = "gims-relay access review v1"
REVIEW_TAG = b"gims-relay:access-review:v1\n"
CSV_HEADER = (b"chain_seq,checksum,prev_checksum,kind,actor,actor_source,occurred_at,recorded_at,"
              b"time_source,device,project,subject,key_id,payload,signatures\r\n")
GENESIS = "0" * 64
MAX_LINE = 16 * 1024 * 1024
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
KIND = re.compile(r"^[A-Z0-9_]{1,64}$")
TIME_SOURCE = re.compile(r"^(system|ntp:[+-]\d+us)$")
ACTOR_SOURCES = {"os_session", "file_owner", "console_session", "relay_login", "token", "system", "service"}


class Unusable(Exception):
    """Exit 2: not a package, unreadable manifest, bad arguments."""


# ---------------------------------------------------------------- Ed25519 (RFC 8032 §5.1.7)
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _encode(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decode(s):
    """RFC 8032 §5.1.3; None when the encoding is not canonical (y >= p) or not a point."""
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (P + 3) // 8, P)
        if (x * x - x2) % P:
            x = x * SQRT_M1 % P
        if (x * x - x2) % P:
            return None
        if (x & 1) != sign:
            x = P - x
    return (x, y, 1, x * y % P)


def _small_order(pt):
    return _encode(_mul(8, pt)) == _encode((0, 1, 1, 0))


B_POINT = _decode(int.to_bytes(4 * pow(5, P - 2, P) % P, 32, "little"))


def ed25519_verify(public, message, signature):
    """RFC 8032 verification, strict: S < L, A and R not of small order, R compared as bytes."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode(public)
    r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L or _small_order(a) or _small_order(r):
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    neg_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return _encode(_add(_mul(s, B_POINT), _mul(k, neg_a))) == signature[:32]


# ---------------------------------------------------------------- Merkle (RFC 9162)
def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def frontier_root(size, frontier):
    """The tree head (hex) a frontier folds to (checkpoint.md §6): one node per set bit of size,
    largest subtree first, folded from the right. None when the count is wrong."""
    if len(frontier) != bin(size).count("1"):
        return None
    nodes = [bytes.fromhex(h) for h in frontier]
    h = nodes[-1]
    for left in reversed(nodes[:-1]):
        h = node_hash(left, h)
    return h.hex()


# ---------------------------------------------------------------- signed checkpoints (checkpoint.md)
# As relay-verify reads them (crates/relay-domain/src/checkpoint.rs): the C2SP signed note is split
# at its last blank line, the seal key's line (its name and key id) is the first that decides, lines
# of other keys are skipped, and the body must be the five lines of checkpoint.md §1, canonical.
ORIGIN_PREFIX = "gims-relay/"
SIGNATURE_PREFIX = "\u2014 "   # em dash, space
MAX_NOTE_BYTES = 16 * 1024
TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(Exception):
    """A checkpoint that does not hold; the message is relay-verify's."""


def b64_strict(text):
    """Standard base64 with its padding, in canonical form only (as the relay decodes it), or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def note_key_name(public):
    """checkpoint.md §3: gims-relay-seal- + the seal fingerprint."""
    return "gims-relay-seal-" + hashlib.sha256(public).hexdigest()[:32]


def note_key_id(name, public):
    """checkpoint.md §3: SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public).digest()[:4]


def parse_checkpoint_body(body):
    """checkpoint.md §1: the five lines -> {origin, size, root (bytes), head (hex), time}."""
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint is malformed: the body does not end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) != 5:
        raise CheckpointError("checkpoint is malformed: the body is not five lines")
    origin, size, root, head, time = lines
    if len(origin) <= len(ORIGIN_PREFIX) or not origin.startswith(ORIGIN_PREFIX):
        raise CheckpointError("checkpoint is malformed: the origin is not gims-relay/<trail>")
    if not TREE_SIZE.fullmatch(size) or int(size) >= 2**64:
        raise CheckpointError("checkpoint is malformed: the tree size is not a decimal number")
    root_bytes = b64_strict(root)
    if root_bytes is None or len(root_bytes) != 32:
        raise CheckpointError("checkpoint is malformed: the root is not 32 bytes of base64")
    if not (head.startswith("head ") and HEX64.fullmatch(head[5:])):
        raise CheckpointError("checkpoint is malformed: the fourth line is not 'head <64 lowercase hex>'")
    if not time.startswith("time ") or time == "time ":
        raise CheckpointError("checkpoint is malformed: the fifth line is not 'time <RFC 3339>'")
    # (each line above is already in its only form, so the body is canonical)
    return {"origin": origin, "size": int(size), "root": root_bytes, "head": head[5:], "time": time[5:]}


def open_checkpoint(note, public):
    """checkpoint.md §4 steps 1-4 under the seal key `public` (32 bytes): the fields, or CheckpointError."""
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise CheckpointError("checkpoint is malformed: the note is too large")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("checkpoint is malformed: no blank line before the signatures")
    body, signatures = note[:cut + 1], note[cut + 2:]
    if not signatures.endswith("\n"):
        raise CheckpointError("checkpoint is malformed: the note does not end with a newline")
    name = note_key_name(public)
    kid = note_key_id(name, public)
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX) or " " not in line[len(SIGNATURE_PREFIX):]:
            raise CheckpointError("checkpoint is malformed: a signature line is not '\u2014 <name> <signature>'")
        line_name, b64 = line[len(SIGNATURE_PREFIX):].split(" ", 1)
        sig = b64_strict(b64)
        if sig is None:
            raise CheckpointError("checkpoint is malformed: a signature is not base64")
        if line_name != name or len(sig) != 68 or sig[:4] != kid:
            continue  # another key's line (a witness cosignature): not ours to judge
        if not ed25519_verify(public, body.encode("utf-8"), sig[4:]):
            raise CheckpointError(f"checkpoint signature by {name} does not verify (edited, or signed by another key)")
        return parse_checkpoint_body(body)
    raise CheckpointError(f"checkpoint carries no signature by {name}")


def checkpoint_problem(a, note, seal_key):
    """checkpoint.md §6.1 rule 1 for anchor `a`: None when its checkpoint holds, else what is wrong.
    Without the seal key the signature is not checked, but the body (up to the last blank line,
    as relay-verify takes it, checkpoint.md §4) must still state what the anchor states."""
    try:
        if seal_key is not None:
            cp = open_checkpoint(note, seal_key)
        else:
            cut = note.rfind("\n\n")
            if cut < 0:
                raise CheckpointError("checkpoint is malformed: no blank line before the signatures")
            cp = parse_checkpoint_body(note[:cut + 1])
    except CheckpointError as e:
        return str(e)
    expected = {"origin": ORIGIN_PREFIX + a["trail_id"], "size": a["seq"],
                "root": bytes.fromhex(a["merkle_root"] or "00" * 32), "head": a["checksum"],
                "time": a["anchored_at"]}
    for field in ("origin", "size", "root", "head", "time"):
        if cp[field] != expected[field]:
            found, want = cp[field], expected[field]
            if field == "root":
                found, want = found.hex(), want.hex()
            return f"checkpoint {field} is {json.dumps(str(found))}, the anchor says {json.dumps(str(want))}"
    return None


# ---------------------------------------------------------------- anchor history (checkpoint.md §6.1)
ANCHOR_VERSION = 2  # the format with frontier, consistency link and checkpoint
ANCHOR_KEYS = {"trail_id", "seq", "checksum", "anchored_at", "time_source"}
ANCHOR_OPTIONAL = {"merkle_root", "version", "frontier", "consistency", "checkpoint"}


def is_hex64(v):
    return isinstance(v, str) and HEX64.fullmatch(v) is not None


def anchor_ok(a):
    """One anchors.json entry as relay-verify reads it: the version 1 members, then the optional
    members of format v2. `version` is a byte (relay-verify reads any 0-255; 1 when absent, and
    2 and up are checked as version 2); `consistency` and `checkpoint` may also be null."""
    if not (isinstance(a, dict) and ANCHOR_KEYS <= set(a) <= ANCHOR_KEYS | ANCHOR_OPTIONAL):
        return False
    link, note = a.get("consistency"), a.get("checkpoint")
    return (is_int(a["seq"]) and a["seq"] >= 1 and is_hex64(a["checksum"])
            and (a.get("merkle_root") is None or is_hex64(a["merkle_root"]))
            and isinstance(a["anchored_at"], str) and TS.fullmatch(a["anchored_at"]) is not None
            and is_int(a.get("version", 1)) and 0 <= a.get("version", 1) <= 255
            and isinstance(a.get("frontier", []), list) and all(is_hex64(h) for h in a.get("frontier", []))
            and (link is None or (isinstance(link, dict) and set(link) == {"from_seq", "from_root", "proof"}
                                  and is_int(link["from_seq"]) and 1 <= link["from_seq"] < 2**64
                                  and is_hex64(link["from_root"]) and isinstance(link["proof"], list)
                                  and all(is_hex64(h) for h in link["proof"])))
            and (note is None or (isinstance(note, str) and utf8_ok(note))))


def unique_members(pairs):
    """json.loads hook: an object naming a member twice is refused, as relay-verify refuses it
    (json.loads alone would keep the last)."""
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("a member appears twice")
    return dict(pairs)


def utf8_ok(text):
    """False for a string holding a lone surrogate (json.loads lets "\\ud800" through, JSON readers
    such as relay-verify's refuse it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def anchor_history(trail, anchors, seal_key):
    """checkpoint.md §6.1 over the anchors of `trail`, as relay-verify checks them
    (crates/relay-domain/src/anchor_history.rs): per seq, ascending, first the fork check, then
    each version 2 anchor's checkpoint, frontier and consistency link. `seal_key` is the seal's
    public key once the seal held, else None. Returns [(seq, message)], by seq."""
    by_seq = {}
    for a in anchors:
        if a["trail_id"] == trail:
            by_seq.setdefault(a["seq"], []).append(a)
    findings = []

    def find(a, problem):
        findings.append((a["seq"], f"anchor at chain_seq {a['seq']} ({a['anchored_at']}): {problem}"))

    for seq in sorted(by_seq):
        same = by_seq[seq]
        # Rule 4: two tree heads for one seq are a fork, reported on the first anchor of the seq.
        roots = [a["merkle_root"] for a in same if a["merkle_root"] is not None]
        other = next((r for r in roots[1:] if r != roots[0]), None) if roots else None
        if other is not None:
            find(same[0], f"another anchor of the same chain_seq holds Merkle root {other}: the trail forked")
        for a in same:
            if a["version"] < ANCHOR_VERSION:
                continue  # version 1: only a link target and in the fork check
            # Rule 1: the checkpoint (required once the seal key is known).
            if a["checkpoint"] is not None:
                problem = checkpoint_problem(a, a["checkpoint"], seal_key)
                if problem:
                    find(a, problem)
            elif seal_key is not None:
                find(a, "version 2 anchor without a signed checkpoint")
            # Rule 2: the frontier, when there is one, folds to the anchor's tree head.
            if a["frontier"] and frontier_root(seq, a["frontier"]) != a["merkle_root"]:
                find(a, "its frontier does not yield its Merkle root")
            # Rule 3: the consistency link. A proof that fails is named before a missing target.
            link = a["consistency"]
            if link is not None:
                linked = any(p["merkle_root"] == link["from_root"] for p in by_seq.get(link["from_seq"], []))
                holds = a["merkle_root"] is not None and consistent(
                    link["from_seq"], seq, bytes.fromhex(link["from_root"]), bytes.fromhex(a["merkle_root"]),
                    [bytes.fromhex(h) for h in link["proof"]])
                if not holds:
                    find(a, f"the consistency proof from the anchor at chain_seq {link['from_seq']} does not "
                            "hold: the tree shrank or was rewritten")
                elif not linked:
                    find(a, f"its consistency link names an anchor at chain_seq {link['from_seq']} that the "
                            "notary does not hold (anchors deleted, or this one forged)")
    findings.sort(key=lambda f: f[0])
    return findings


# ---------------------------------------------------------------- renderings (export.md §2)
def js(s):
    return json.dumps(s, ensure_ascii=False)


def csv_cell(s):
    guard = s[:1] in ("=", "+", "-", "@", "\t", "\r")
    quote = any(c in s for c in ',"\r\n') or s.startswith(" ") or s.endswith(" ")
    body = ("'" if guard else "") + s.replace('"', '""')
    return '"' + body + '"' if quote else body


def csv_prefix(r):
    cells = [str(r["chain_seq"]), r["checksum"], r["prev_checksum"], csv_cell(r["kind"]),
             csv_cell(r["actor"]), csv_cell(r["actor_source"]), r["occurred_at"], r["recorded_at"],
             csv_cell(r["time_source"]), csv_cell(r["device"]), csv_cell(r["project"] or ""),
             csv_cell(r["subject"] or ""), csv_cell(r["key_id"]), csv_cell(jcs(r["payload"]))]
    return ("".join(c + "," for c in cells)).encode("utf-8")


def json_prefix(r):
    opt = lambda v: "null" if v is None else js(v)  # noqa: E731
    return ("{" + f'"chain_seq":{r["chain_seq"]},"checksum":{js(r["checksum"])},'
            f'"prev_checksum":{js(r["prev_checksum"])},"kind":{js(r["kind"])},"actor":{js(r["actor"])},'
            f'"actor_source":{js(r["actor_source"])},"occurred_at":{js(r["occurred_at"])},'
            f'"recorded_at":{js(r["recorded_at"])},"time_source":{js(r["time_source"])},'
            f'"device":{js(r["device"])},"project":{opt(r["project"])},"subject":{opt(r["subject"])},'
            f'"key_id":{js(r["key_id"])},"payload":{jcs(r["payload"])},"signatures":').encode("utf-8")


def manifestation(r):
    """(target checksum, manifestation) of a SIGNATURE record, else None (export.md §2)."""
    if r["kind"] != "SIGNATURE":
        return None
    p = r["payload"]
    target = p.get("target_checksum")
    if not isinstance(target, str) or not HEX64.match(target):
        return None
    text = lambda k: p[k] if isinstance(p.get(k), str) else ""  # noqa: E731
    return target, {"printed_name": text("printed_name"), "username": r["actor"], "signed_at": r["recorded_at"],
                    "meaning": text("meaning"), "reason": text("reason"),
                    "signature_seq": r["chain_seq"], "signature_checksum": r["checksum"]}


def json_signatures(ms, version):
    user = lambda m: f'"username":{js(m["username"])},' if version >= 2 else ""  # noqa: E731
    return ("[" + ",".join(
        "{" + f'"printed_name":{js(m["printed_name"])},{user(m)}"signed_at":{js(m["signed_at"])},'
        f'"meaning":{js(m["meaning"])},"reason":{js(m["reason"])},"signature_seq":{m["signature_seq"]},'
        f'"signature_checksum":{js(m["signature_checksum"])}' + "}" for m in ms) + "]").encode("utf-8")


def escape_field(text):
    """export.md §2, format v2: backslash, |, ;, CR and LF escaped with a backslash."""
    out = []
    for c in text:
        out.append({"\\": "\\\\", "|": "\\|", ";": "\\;", "\r": "\\r", "\n": "\\n"}.get(c, c))
    return "".join(out)


def csv_signatures(ms, version):
    if version >= 2:
        entries = (" | ".join(escape_field(f) for f in (m["printed_name"], m["username"], m["signed_at"],
                                                         m["meaning"], m["reason"])) for m in ms)
    else:
        entries = (f'{m["printed_name"]} | {m["signed_at"]} | {m["meaning"]} | {m["reason"]}' for m in ms)
    return csv_cell("; ".join(entries)).encode("utf-8")


# ---------------------------------------------------------------- records (chain.md §1)
RECORD_KEYS = {"actor", "actor_source", "chain_seq", "device", "key_id", "kind", "occurred_at",
               "payload", "prev_checksum", "project", "recorded_at", "subject", "time_source",
               "trail_id", "checksum"}


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def parse_record(text):
    """A records.jsonl line (bytes, no newline) -> record dict; ValueError names the fault."""
    try:
        r = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from None
    if not isinstance(r, dict) or set(r) != RECORD_KEYS:
        raise ValueError("not a record object with exactly the 15 fields")
    ok = (is_int(r["chain_seq"]) and 1 <= r["chain_seq"] <= 2**53
          and all(isinstance(r[k], str) and HEX64.match(r[k]) for k in ("checksum", "prev_checksum"))
          and isinstance(r["trail_id"], str) and ID.match(r["trail_id"])
          and isinstance(r["device"], str) and ID.match(r["device"])
          and isinstance(r["kind"], str) and KIND.match(r["kind"])
          and isinstance(r["actor"], str) and r["actor"] != ""
          and r["actor_source"] in ACTOR_SOURCES
          and all(isinstance(r[k], str) and TS.match(r[k]) for k in ("occurred_at", "recorded_at"))
          and isinstance(r["time_source"], str) and TIME_SOURCE.match(r["time_source"])
          and isinstance(r["key_id"], str) and r["key_id"] != ""
          and (r["project"] is None or isinstance(r["project"], str))
          and (r["subject"] is None or isinstance(r["subject"], str))
          and isinstance(r["payload"], dict))
    if not ok:
        raise ValueError("a field has the wrong type or form")
    body = canonical_bytes(r)[len(DOMAIN_TAG):]
    if text != body[:-1] + b',"checksum":"' + r["checksum"].encode() + b'"}':
        raise ValueError("line is not the record's canonical layout")
    return r


def record_leaf(r):
    return leaf_hash(canonical_bytes(r) + bytes.fromhex(r["checksum"]))


# ---------------------------------------------------------------- opening a package
def open_package(path):
    """-> (files: name -> bytes, others: [names refused])."""
    files, others = {}, []
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            mode = os.lstat(os.path.join(path, name)).st_mode
            if name in PACKAGE_FILES and stat.S_ISREG(mode):
                with open(os.path.join(path, name), "rb") as f:
                    files[name] = f.read()
            elif name in PACKAGE_FILES:
                others.append(name + " (not a regular file)")
            else:
                others.append(name)
    elif os.path.isfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
                counts = {}
                for i in infos:
                    counts[i.filename] = counts.get(i.filename, 0) + 1
                if infos and min(i.header_offset for i in infos) != 0:
                    others.append("(bytes before the first entry)")
                for i in infos:
                    if counts[i.filename] > 1:
                        others.append(i.filename + " (duplicate entry)")
                    elif i.filename in PACKAGE_FILES:
                        try:
                            files[i.filename] = z.read(i)
                        except zipfile.BadZipFile as e:  # e.g. the local header names another file
                            others.append(f"{i.filename} ({e})")
                    else:
                        others.append(i.filename)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
            raise Unusable(f"{path} is not a readable zip: {e}") from None
    else:
        raise Unusable(f"{path} is neither a package directory nor a .zip file")
    if MANIFEST not in files:
        raise Unusable(f"{path} has no manifest.json: not an export package")
    return files, others


def parse_manifest(data):
    try:
        m = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Unusable(f"manifest.json is not a valid manifest: {e}") from None
    if not isinstance(m, dict) or "seal" not in m:
        raise Unusable("manifest.json is not a sealed manifest object")
    seal = m.pop("seal")
    keys = {"format", "trail_id", "range", "filter", "records", "head", "rows_digest", "merkle_root",
            "rendered_sha256", "generated_at", "time_source", "generated_by", "relay_version"}
    try:
        ok = (set(m) == keys and isinstance(seal, dict)
              and set(seal) == {"algorithm", "public_key", "fingerprint", "signature"}
              and all(isinstance(v, str) for v in seal.values())
              and set(m["range"]) == {"from_seq", "to_seq"} and set(m["filter"]) == {"project", "kind"}
              and set(m["head"]) == {"seq", "checksum", "merkle_root"}
              and all(is_int(v) and v >= 1 for v in (m["range"]["from_seq"], m["range"]["to_seq"], m["head"]["seq"]))
              and is_int(m["records"])
              and all(HEX64.match(v) for v in (m["rows_digest"], m["merkle_root"], m["head"]["checksum"], m["head"]["merkle_root"]))
              and all(set(d) == {"sha256", "bytes"} and HEX64.match(d["sha256"]) and is_int(d["bytes"])
                      for d in m["rendered_sha256"].values()))
    except (TypeError, AttributeError, KeyError):
        ok = False
    if not ok:
        raise Unusable("manifest.json is not a valid manifest (fields or types)")
    if m["format"] not in EXPORT_FORMATS:
        raise Unusable(f"manifest.json has format {m['format']!r}; this verifier reads "
                       f"{' and '.join(repr(f) for f in EXPORT_FORMATS)}")
    return m, seal


def read_key_file(path):
    with open(path, "rb") as f:
        doc = json.load(f)
    if doc.get("format") != "gims-relay-secret-v1" or not doc.get("versions"):
        raise Unusable(f"key file {path}: not a gims-relay-secret-v1 file with versions")
    return {v["id"]: bytes.fromhex(v["secret_hex"]) for v in doc["versions"]}


def parse_pin(key, label):
    key = key.lower()
    if re.fullmatch(r"[0-9a-f]{32}", key):
        return (key, None, label)
    if re.fullmatch(r"[0-9a-f]{64}", key) and _decode(bytes.fromhex(key)) is not None:
        return (hashlib.sha256(bytes.fromhex(key)).hexdigest()[:32], key, label)
    raise Unusable(f"{key[:80]!r} is neither a fingerprint nor an Ed25519 public key")


def read_trust_file(path):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").lstrip("\ufeff").splitlines()
    if not lines or lines[0].rstrip() != "gims-relay-trust-v1":
        raise Unusable(f"trust file {path}: the first line must be 'gims-relay-trust-v1'")
    pins = []
    for n, line in enumerate(lines[1:], 2):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, label = line.partition(" ") if " " in line else line.partition("\t")
            try:
                pins.append(parse_pin(key, label.strip()))
            except Unusable as e:
                raise Unusable(f"trust file {path}: line {n}: {e}") from None
    if not pins:
        raise Unusable(f"trust file {path}: lists no seal key")
    return pins


# ---------------------------------------------------------------- the verifier (export.md §4)
class Report:
    def __init__(self):
        self.findings = []
        self.receipts = None

    def fail(self, file, row, seq, check, detail):
        if not any(f["file"] == file and f["check"] == check for f in self.findings):
            self.findings.append({"file": file, "row": row, "seq": seq, "check": check, "detail": detail})

    def has(self, file):
        return any(f["file"] == file for f in self.findings)


def lines_of(data):
    """Lines split at b"\n" only, each with its newline (the last may lack it)."""
    if not data:
        return []
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    return out + [parts[-1]] if parts[-1] else out


def csv_rows(data):
    """CSV records: lines joined while a quote is open (export.md §2)."""
    rows, cur = [], b""
    for line in lines_of(data):
        cur += line
        if cur.count(b'"') % 2 == 0:
            rows.append(cur)
            cur = b""
    if cur:
        rows.append(cur)
    return rows


def verify(files, others, keys, pins):
    rep = Report()
    fail = rep.fail
    m, seal = parse_manifest(files[MANIFEST])
    version = EXPORT_FORMATS[m["format"]]
    signing = MANIFEST_TAG + jcs(m).encode("utf-8")
    trail, head, rng, flt = m["trail_id"], m["head"], m["range"], m["filter"]
    listed = m["rendered_sha256"]

    # 1. the seal
    try:
        public, sig = bytes.fromhex(seal["public_key"]), bytes.fromhex(seal["signature"])
    except ValueError:
        public, sig = b"", b""
    fingerprint = hashlib.sha256(public).hexdigest()[:32]
    if (seal["algorithm"] != "ed25519" or len(public) != 32 or fingerprint != seal["fingerprint"]
            or not ed25519_verify(public, signing, sig)):
        fail(MANIFEST, None, None, "seal", "the seal does not hold")
        seal_key = None
    else:
        seal_key = public  # it also signs the anchors' checkpoints (checkpoint.md §4)
    # 2. the pins (inserted after the seal finding, as the spec orders them)
    origin = None
    if pins:
        match = [p for p in pins if p[0] == seal["fingerprint"] and (p[1] is None or p[1] == seal["public_key"].lower())]
        if not match:
            rep.findings.insert(1 if rep.findings else 0, {"file": MANIFEST, "row": None, "seq": None,
                                                           "check": "seal key", "detail": "not pinned"})
        elif not rep.findings:
            origin = match[0]
    # 3. file list and presence
    for name in sorted(listed):
        if name == MANIFEST or name not in PACKAGE_FILES:
            fail(MANIFEST, None, None, "file list", f"lists {name!r}")
    for name in (JSONL, CSV, JSONR, PROOFS, ANCHORS, RECEIPTS, REVIEW):
        if name in listed and name not in files:
            fail(name, None, None, "presence", "listed in the manifest but missing")
        elif name in files and name not in listed:
            fail(name, None, None, "presence", "present but not covered by the seal")
    for other in others:
        fail(other[:200], None, None, "presence", "unexpected entry in the package")
    for required in (JSONL, ANCHORS):
        if required not in listed:
            fail(required, None, None, "presence", "required file is not in the manifest")
    whole = (flt["project"] is None and flt["kind"] is None and rng["from_seq"] == 1
             and rng["to_seq"] == head["seq"])
    contiguous = flt["project"] is None and flt["kind"] is None
    if not whole and PROOFS not in listed:
        fail(PROOFS, None, None, "presence", "a partial export must carry Merkle proofs")

    def check_digest(name):
        if name in listed and name in files:
            d = files[name]
            if hashlib.sha256(d).hexdigest() != listed[name]["sha256"] or len(d) != listed[name]["bytes"]:
                fail(name, None, None, "sha256", "digest or length differs from the manifest")

    # 4. anchors
    anchors = []
    if ANCHORS in files:
        check_digest(ANCHORS)
        try:
            anchors = json.loads(files[ANCHORS].decode("utf-8"), object_pairs_hook=unique_members)
            if not isinstance(anchors, list) or not all(anchor_ok(a) for a in anchors):
                raise ValueError("not a list of anchors")
            for a in anchors:  # absent members: a version 1 anchor
                a.setdefault("merkle_root", None)
                a.setdefault("version", 1)
                a.setdefault("frontier", [])
                a.setdefault("consistency", None)
                a.setdefault("checkpoint", None)
        except (UnicodeDecodeError, ValueError, TypeError):
            fail(ANCHORS, None, None, "parse", "not a list of anchors")
            anchors = []
    for i, a in enumerate(anchors, 1):
        if a["trail_id"] != trail:
            fail(ANCHORS, i, a["seq"], "anchor", "anchor of another trail")
        if a["seq"] > head["seq"]:
            fail(ANCHORS, i, a["seq"], "anchor", "anchor beyond the exported head: trail truncated")
    head_anchors = [a for a in anchors if a["seq"] == head["seq"]]
    if not head_anchors:
        fail(ANCHORS, None, head["seq"], "anchor", "no anchor covers the exported head")
    for a in head_anchors:
        if a["checksum"] != head["checksum"] or a["merkle_root"] not in (None, head["merkle_root"]):
            fail(ANCHORS, None, head["seq"], "anchor", "the head's anchor differs from the manifest's head")
    # ... the anchors agree with each other (checkpoint.md §6.1): checkpoints signed with the key
    # that sealed this package (once the seal held), frontiers, consistency links, no fork
    for seq, message in anchor_history(trail, anchors, seal_key):
        fail(ANCHORS, None, seq, "anchor", message)

    # 5. renderings open
    csv_list = csv_rows(files[CSV]) if CSV in files else None
    json_list = lines_of(files[JSONR]) if JSONR in files else None
    proof_list = lines_of(files[PROOFS]) if PROOFS in files else None
    ci, ji, pi = 1, 1, 0
    if csv_list is not None and (not csv_list or csv_list[0] != CSV_HEADER):
        fail(CSV, 1, None, "rendering", "the header row is not the expected one")
    if json_list is not None and (not json_list or json_list[0] != b"[\n"):
        fail(JSONR, 1, None, "rendering", "the file does not open with [")

    # 6. records, in lockstep with renderings and proofs
    anchor_roots = {a["seq"]: a["merkle_root"] for a in anchors if whole and a["merkle_root"]}
    chain_anchors = {a["seq"]: a["checksum"] for a in anchors
                     if a["trail_id"] == trail and rng["from_seq"] <= a["seq"] <= rng["to_seq"]}
    chain = {"last": None, "failed": None}
    leaves, exported, signed, rendered = [], set(), {}, {}
    recorded = {}  # with receipts.jsonl: chain_seq -> recorded_at (microseconds)
    records_ok, count, last = JSONL in files, 0, None
    jl = lines_of(files.get(JSONL, b""))
    for row, line in enumerate(jl, 1):
        if not records_ok:
            break
        if len(line) > MAX_LINE:
            fail(JSONL, row, None, "parse", "line is too long")
            records_ok = False
            break
        if not line.endswith(b"\n"):
            fail(JSONL, row, None, "parse", "last line is not terminated")
            records_ok = False
            break
        try:
            r = parse_record(line[:-1])
        except ValueError as e:
            fail(JSONL, row, None, "parse", str(e))
            records_ok = False
            break
        seq = r["chain_seq"]
        count += 1
        if RECEIPTS in files:
            recorded.setdefault(seq, micros_of(r["recorded_at"]))
        if r["trail_id"] != trail:
            fail(JSONL, row, seq, "selection", "record of another trail")
        if not rng["from_seq"] <= seq <= rng["to_seq"]:
            fail(JSONL, row, seq, "selection", "outside the exported range")
        if (flt["project"] is not None and r["project"] != flt["project"]) or (
                flt["kind"] is not None and r["kind"] != flt["kind"]):
            fail(JSONL, row, seq, "selection", "not selected by the export filter")
        if last is not None and seq <= last[0]:
            fail(JSONL, row, seq, "order", f"comes after chain_seq {last[0]}")
        mac_ok = None
        if keys is not None:
            key = keys.get(r["key_id"])
            mac_ok = key is not None and hmac.compare_digest(
                hmac.new(key, canonical_bytes(r), hashlib.sha256).hexdigest(), r["checksum"])
        if contiguous:
            fault = chain_push(chain, r, trail, rng, keys, mac_ok, chain_anchors)
            if fault:
                fail(JSONL, row, fault[0], "chain", fault[1])
        elif keys is not None and not mac_ok:
            fail(JSONL, row, seq, "hmac", "checksum mismatch or unknown key")
        leaf = record_leaf(r)
        leaves.append(leaf)
        if len(leaves) in anchor_roots and merkle_root(leaves).hex() != anchor_roots[len(leaves)]:
            fail(JSONL, row, seq, "anchor", "Merkle root differs from the notarized one")
        if proof_list is not None:
            pi += 1
            check_proof_line(proof_list, pi, seq, leaf, head, fail)
        ms = manifestation(r)
        if ms:
            signed.setdefault(ms[0], []).append(ms[1])
        if not whole:
            exported.add(r["checksum"])
        entry = {"row_seq": seq, "json_row": None, "json": b"[]", "csv_row": None, "csv": b""}
        if json_list is not None and not rep.has(JSONR):
            ji += 1
            if ji > len(json_list):
                fail(JSONR, ji, seq, "rendering", "row missing")
            else:
                body = json_list[ji - 1]
                body = body[:-2] if body.endswith(b",\n") else body[:-1] if body.endswith(b"\n") else body
                pre = json_prefix(r)
                if not (body.startswith(pre) and body.endswith(b"}")):
                    fail(JSONR, ji, seq, "rendering", "row differs from the record in records.jsonl")
                else:
                    entry["json_row"], entry["json"] = ji, body[len(pre):-1]
        if csv_list is not None and not rep.has(CSV):
            ci += 1
            if ci > len(csv_list):
                fail(CSV, ci, seq, "rendering", "row missing")
            else:
                cr, pre = csv_list[ci - 1], csv_prefix(r)
                if not (cr.startswith(pre) and cr.endswith(b"\r\n")):
                    fail(CSV, ci, seq, "rendering", "row differs from the record in records.jsonl")
                else:
                    entry["csv_row"], entry["csv"] = ci, cr[len(pre):-2]
        if entry["json"] != b"[]" or entry["csv"] != b"":
            rendered[r["checksum"]] = entry
        last = (seq, r["checksum"])

    # 7. evidence lines: SIGNATURE records on exported records, after the records' proofs
    if records_ok and proof_list is not None and not whole:
        last_ev = 0
        while pi < len(proof_list):
            pi += 1
            line = proof_list[pi - 1]
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("unterminated line")
                ev = json.loads(line[:-1].decode("utf-8"))
                if not isinstance(ev, dict) or set(ev) != {"seq", "proof", "record"}:
                    raise ValueError("not an evidence line")
                head_bytes = ('{"seq":%d,"proof":%s,"record":' % (
                    ev["seq"], json.dumps(ev["proof"], separators=(",", ":")))).encode()
                if not (is_int(ev["seq"]) and line.startswith(head_bytes) and line.endswith(b"}\n")):
                    raise ValueError("evidence line is not in its layout")
                r = parse_record(line[len(head_bytes):-2])
            except (ValueError, UnicodeDecodeError, TypeError) as e:
                fail(PROOFS, pi, None, "parse", str(e))
                break
            seq = r["chain_seq"]
            in_export = (rng["from_seq"] <= seq <= rng["to_seq"]
                         and (flt["project"] is None or r["project"] == flt["project"])
                         and (flt["kind"] is None or r["kind"] == flt["kind"]))
            ms = manifestation(r)
            if ev["seq"] != seq or r["trail_id"] != trail:
                fail(PROOFS, pi, seq, "signature", "the evidence line's seq or trail differs")
            elif seq <= last_ev or in_export or seq > head["seq"]:
                fail(PROOFS, pi, seq, "signature", "evidence out of order, beyond the head, or exported")
            elif not proof_ok(ev["proof"], record_leaf(r), seq, head):
                fail(PROOFS, pi, seq, "merkle", "the SIGNATURE record is not in the trail head's tree")
            elif keys is not None and not (r["key_id"] in keys and hmac.compare_digest(
                    hmac.new(keys[r["key_id"]], canonical_bytes(r), hashlib.sha256).hexdigest(), r["checksum"])):
                fail(PROOFS, pi, seq, "hmac", "checksum mismatch or unknown key")
            elif ms and ms[0] in exported:
                signed.setdefault(ms[0], []).append(ms[1])
            else:
                fail(PROOFS, pi, seq, "signature", "not a SIGNATURE record on an exported record")
            last_ev = seq

    # 8. rendered signatures
    if records_ok and (csv_list is not None or json_list is not None):
        def compare(entry, ms):
            if json_list is not None and entry["json"] != json_signatures(ms, version):
                fail(JSONR, entry["json_row"], entry["row_seq"], "signature", "rendered signatures differ")
            if csv_list is not None and entry["csv"] != csv_signatures(ms, version):
                fail(CSV, entry["csv_row"], entry["row_seq"], "signature", "rendered signatures differ")
        for target, ms in sorted(signed.items(), key=lambda kv: kv[1][0]["signature_seq"]):
            ms.sort(key=lambda x: x["signature_seq"])
            if target in rendered:
                compare(rendered.pop(target), ms)
            elif whole or target in exported:
                fail(JSONR if json_list is not None else CSV, None, ms[0]["signature_seq"], "signature",
                     "a SIGNATURE record names an exported record whose row does not render it")
        for entry in sorted(rendered.values(), key=lambda e: e["row_seq"]):
            compare(entry, [])

    # 9. totals
    if records_ok:
        if count != m["records"]:
            fail(JSONL, None, None, "count", f"{count} records, the manifest says {m['records']}")
        rows = hashlib.sha256(ROWS_TAG + b"".join(leaves)).hexdigest()
        if rows != m["rows_digest"]:
            fail(JSONL, None, None, "rows_digest", "rows digest differs from the manifest")
        root = merkle_root(leaves).hex()
        if root != m["merkle_root"]:
            fail(JSONL, None, None, "merkle", "Merkle root over the exported records differs")
        if contiguous:
            if chain["last"] is not None or chain["failed"]:
                fault = chain["failed"] or next(
                    ((s, "trail truncated: a notary anchor covers a missing chain_seq")
                     for s in sorted(chain_anchors) if s > chain["last"][0]), None)
                if fault:
                    fail(JSONL, None, fault[0], "chain", fault[1])
            if (count == 0 and m["records"] != 0) or (last is not None and last[0] != rng["to_seq"]):
                fail(JSONL, None, last and last[0], "count", "the export does not end at the range's end")
        if whole and not (root == head["merkle_root"] and last is not None and last[1] == head["checksum"]):
            fail(JSONL, None, head["seq"], "head", "the records do not end at the manifest's head")
    # 10. digests, and rows beyond the records
    check_digest(JSONL)
    for name, rows_list, used, extra_ok in ((CSV, csv_list, ci, 0), (JSONR, json_list, ji, 1),
                                            (PROOFS, proof_list, pi, 0)):
        if rows_list is None:
            continue
        if records_ok and not rep.has(name) and len(rows_list) - used > extra_ok:
            fail(name, used + 1, None, "rendering", "rows beyond the exported records")
        check_digest(name)
    # 11. receipts.jsonl: layout, ascending seqs of exported records, each late flag, its digest
    if RECEIPTS in files:
        summary = {"records": 0, "late": 0, "late_after_secs": None}
        prev = 0
        for row, line in enumerate(lines_of(files[RECEIPTS]), 1):
            if len(line) > MAX_LINE:
                fail(RECEIPTS, row, None, "parse", "line is too long")
                break
            if not line.endswith(b"\n"):
                fail(RECEIPTS, row, None, "parse", "last line is not terminated")
                break
            try:
                rc = parse_receipt(line[:-1])
            except (ValueError, UnicodeDecodeError, TypeError, KeyError) as e:
                fail(RECEIPTS, row, None, "parse", str(e))
                break
            seq = rc["seq"]
            if seq <= prev:
                fail(RECEIPTS, row, seq, "order", f"comes after chain_seq {prev}")
            prev = seq
            if records_ok:
                if seq not in recorded:
                    fail(RECEIPTS, row, seq, "selection", "no exported record has this chain_seq")
                elif (micros_of(rc["received_at"]) - recorded[seq] > rc["late_after_secs"] * 1_000_000) != rc["late"]:
                    fail(RECEIPTS, row, seq, "receipt", "the late flag contradicts the times")
            summary["records"] += 1
            summary["late"] += 1 if rc["late"] else 0
            summary["late_after_secs"] = rc["late_after_secs"]
        check_digest(RECEIPTS)
        rep.receipts = summary
    # 12. access_review.json: a _relay package, a review of the known format, its digest, its seq
    if REVIEW in files:
        if trail != "_relay":
            fail(REVIEW, None, None, "selection", "an access review travels only in a _relay package")
        try:
            review = json.loads(files[REVIEW].decode("utf-8"))
            ok = (isinstance(review, dict) and review.get("format") == REVIEW_FORMAT
                  and isinstance(review.get("digest"), str) and is_int(review.get("relay_seq"))
                  and isinstance(review.get("accounts"), list))
        except (ValueError, UnicodeDecodeError):
            review, ok = None, False
        if not ok:
            fail(REVIEW, None, None, "parse", "not an access review of the known format")
        else:
            content = {k: v for k, v in review.items() if k not in ("generated_at", "relay_seq", "digest")}
            digest = hashlib.sha256(REVIEW_TAG + jcs(content).encode("utf-8")).hexdigest()
            if digest != review["digest"]:
                fail(REVIEW, None, None, "digest", "the review's content gives another digest")
            elif review["relay_seq"] > head["seq"]:
                fail(REVIEW, None, None, "head", "built beyond the package's head")
        check_digest(REVIEW)
    return rep, origin, seal


def micros_of(ts):
    """Microseconds since the Unix epoch of a canonical UTC timestamp."""
    if not isinstance(ts, str) or not TS.match(ts):
        raise ValueError(f"not a canonical timestamp: {ts!r}")
    dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def parse_receipt(text):
    """A receipts.jsonl line (without its newline), in exactly its layout (export.md §2)."""
    rc = json.loads(text.decode("utf-8"))
    if not isinstance(rc, dict) or set(rc) != {"seq", "received_at", "late", "late_after_secs"}:
        raise ValueError("not a receipt line")
    if not (is_int(rc["seq"]) and rc["seq"] >= 0 and is_int(rc["late_after_secs"])
            and rc["late_after_secs"] >= 0 and isinstance(rc["late"], bool)):
        raise ValueError("not a receipt line")
    micros_of(rc["received_at"])
    again = '{"seq":%d,"received_at":"%s","late":%s,"late_after_secs":%d}' % (
        rc["seq"], rc["received_at"], "true" if rc["late"] else "false", rc["late_after_secs"])
    if again.encode("utf-8") != text:
        raise ValueError("the line is not in the receipts.jsonl layout")
    return rc


def proof_ok(proof, leaf, seq, head):
    try:
        path = [bytes.fromhex(h) for h in proof]
    except (ValueError, TypeError):
        return False
    return (isinstance(proof, list) and len(path) <= 64 and all(len(h) == 32 for h in path)
            and verify_inclusion(leaf, seq - 1, head["seq"], path, bytes.fromhex(head["merkle_root"])))


def check_proof_line(proof_list, pi, seq, leaf, head, fail):
    if pi > len(proof_list):
        fail(PROOFS, pi, seq, "merkle", "no proof for this record")
        return
    line = proof_list[pi - 1]
    try:
        if not line.endswith(b"\n"):
            raise ValueError("unterminated line")
        p = json.loads(line[:-1].decode("utf-8"))
        if not isinstance(p, dict) or set(p) != {"seq", "proof"} or not isinstance(p["proof"], list):
            raise ValueError("not a proof line")
    except (ValueError, UnicodeDecodeError) as e:
        fail(PROOFS, pi, seq, "parse", str(e))
        return
    if p["seq"] != seq:
        fail(PROOFS, pi, seq, "merkle", f"proof is for chain_seq {p['seq']}")
    elif not proof_ok(p["proof"], leaf, seq, head):
        fail(PROOFS, pi, seq, "merkle", "the record is not included in the trail head's Merkle tree")


def chain_push(chain, r, trail, rng, keys, mac_ok, anchors):
    """chain.md §4 steps 1-5 for one record; returns (seq, reason) on the first failure."""
    if chain["failed"]:
        return chain["failed"]
    seq = r["chain_seq"]
    if chain["last"] is None and rng["from_seq"] > 1:
        chain["last"] = (rng["from_seq"] - 1, r["prev_checksum"])
    last = chain["last"]
    exp_seq, exp_prev = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    fault = None
    if r["trail_id"] != trail:
        fault = (seq, "wrong trail")
    elif seq != exp_seq:
        if last is not None and seq == last[0]:
            fault = (seq, "duplicate chain_seq")
        elif last is not None and seq < last[0]:
            fault = (seq, "reorder")
        else:
            fault = (exp_seq, f"gap: expected chain_seq {exp_seq}")
    elif r["prev_checksum"] != exp_prev:
        fault = (seq, "broken link")
    elif keys is not None and not mac_ok:
        fault = (seq, "unknown key or checksum mismatch")
    elif seq in anchors and anchors[seq] != r["checksum"]:
        fault = (seq, "differs from the notarized anchor")
    if fault:
        chain["failed"] = fault
        return fault
    chain["last"] = (seq, r["checksum"])
    return None


def self_test():
    """RFC 8032 §7.1 TEST 1, and the strict rules of export.md §3 on it."""
    pk = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33ba"
                        "cc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    s_plus_l = int.to_bytes(int.from_bytes(sig[32:], "little") + L, 32, "little")
    identity = int.to_bytes(1, 32, "little")
    checks = {
        "RFC 8032 test 1 verifies": ed25519_verify(pk, b"", sig),
        "another message fails": not ed25519_verify(pk, b"x", sig),
        "non-canonical S (S + L) is refused": not ed25519_verify(pk, b"", sig[:32] + s_plus_l),
        "small-order key (identity) is refused": not ed25519_verify(identity, b"", identity + bytes(32)),
    }
    for name, ok in checks.items():
        print(f"{'ok' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    args, opts = [], {"--key-file": [], "--expect-fingerprint": [], "--trust-file": []}
    as_json, i = False, 0
    while i < len(argv):
        a = argv[i]
        if a in opts and i + 1 < len(argv):
            opts[a].append(argv[i + 1])
            i += 2
            continue
        if a == "--json":
            as_json = True
        elif a.startswith("--"):
            print(f"verify_package.py: error: unknown option {a}", file=sys.stderr)
            return 2
        else:
            args.append(a)
        i += 1
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        keys = read_key_file(opts["--key-file"][0]) if opts["--key-file"] else None
        pins = [parse_pin(fp, "--expect-fingerprint") for fp in opts["--expect-fingerprint"]]
        for path in opts["--trust-file"]:
            pins.extend(read_trust_file(path))
        files, others = open_package(args[0])
        rep, origin, seal = verify(files, others, keys, pins)
    except (Unusable, OSError, ValueError, KeyError) as e:
        print(f"verify_package.py: error: {e}", file=sys.stderr)
        return 2
    code = 1 if rep.findings else (0 if origin else 3)
    verdict = {0: "VERIFIED", 1: "NOT VERIFIED", 3: "INTACT, ORIGIN NOT PINNED"}[code]
    if as_json:
        print(json.dumps({"verdict": verdict, "exit": code, "seal_fingerprint": seal["fingerprint"],
                          "receipts": rep.receipts, "failures": rep.findings}))
    else:
        for f in rep.findings:
            where = f["file"] + (f" row {f['row']}" if f["row"] else "") + (
                f" (chain_seq {f['seq']})" if f["seq"] else "")
            print(f"  FAIL  {where}: {f['check']} check failed: {f['detail']}")
        if rep.receipts is not None:
            print(f"Receipts: {rep.receipts['records']} records with a time of receipt, "
                  f"{rep.receipts['late']} received late")
        print(f"VERDICT: {verdict} (seal key {seal['fingerprint']})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
