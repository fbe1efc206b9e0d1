//! The tamper-case table of docs/spec (`docs/spec/tamper-cases.json`) as a test: every case is
//! built from the real exporter's package (`fixtures/package`), written as a directory or zip,
//! and checked by the `relay-verify` binary AND by the standard-library Python verifier
//! `docs/spec/verify_package.py`; both must reach the table's verdict (exit code and the first
//! failure's file and check).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use relay_domain::anchor_history::{AnchorBase, build_anchor, expected_checkpoint};
use relay_domain::export::render::{
    CSV_HEADER, JSON_CLOSE_AFTER_ROW, JSON_CLOSE_EMPTY, JSON_OPEN, JSON_SEPARATOR,
    write_csv_prefix, write_csv_signatures, write_json_prefix, write_json_signatures,
};
use relay_domain::export::{
    Manifestation, ReceiptLine, SealKey, SignatureIndex, manifest_signing_bytes,
};
use relay_domain::merkle::{MerkleAccumulator, MerkleTree, record_leaf_hash, root_of};
use relay_domain::ports::{Anchor, ConsistencyLink};
use relay_domain::{EventKind, Record, TimeLabel, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod common;
use common::raw_zip;

const BIN: &str = env!("CARGO_BIN_EXE_relay-verify");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/package")
            .join(name),
    )
    .unwrap()
}

/// The test's "genuine" seal key (the fixture is re-sealed with it) and an attacker's.
fn genuine_key() -> SealKey {
    SealKey::from_seed(&[0x42; 32]).unwrap()
}

fn attacker_key() -> SealKey {
    SealKey::from_seed(&[0x66; 32]).unwrap()
}

/// A package: its files (manifest.json apart) and its unsealed manifest.
#[derive(Clone)]
struct Pkg {
    files: BTreeMap<String, Vec<u8>>,
    manifest: Value,
    manifest_bytes: Vec<u8>,
}

impl Pkg {
    /// Recomputes every file digest in the manifest and seals it with `key`.
    fn reseal(&mut self, key: &SealKey) {
        let mut digests = serde_json::Map::new();
        for (name, bytes) in &self.files {
            digests.insert(
                name.clone(),
                json!({"sha256": hex::encode(Sha256::digest(bytes)), "bytes": bytes.len()}),
            );
        }
        self.manifest["rendered_sha256"] = Value::Object(digests);
        let seal = key.seal(&manifest_signing_bytes(&self.manifest).unwrap());
        let mut sealed = self.manifest.clone();
        sealed["seal"] = serde_json::to_value(&seal).unwrap();
        self.manifest_bytes = serde_json::to_vec_pretty(&sealed).unwrap();
        self.manifest_bytes.push(b'\n');
    }

    fn edit_seal(&mut self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut v: Value = serde_json::from_slice(&self.manifest_bytes).unwrap();
        edit(v["seal"].as_object_mut().unwrap());
        self.manifest_bytes = serde_json::to_vec_pretty(&v).unwrap();
    }

    fn text(&self, name: &str) -> String {
        String::from_utf8(self.files[name].clone()).unwrap()
    }

    fn set_text(&mut self, name: &str, text: String) {
        self.files.insert(name.to_owned(), text.into_bytes());
    }

    fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![("manifest.json".to_owned(), self.manifest_bytes.clone())];
        out.extend(self.files.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

fn fixture_records() -> Vec<Record> {
    String::from_utf8(fixture("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Builds a package from the fixture trail as the exporter does (docs/spec/export.md §2).
fn build(base: &str) -> Pkg {
    let all = fixture_records();
    let head = all.last().unwrap().clone();
    let (from, to, kind, csv, json_out) = match base {
        "whole" => (1, 32, None, true, true),
        "whole_csv" => (1, 32, None, true, false),
        "filtered_csv" => (1, 32, Some("FILE_CREATED"), true, false),
        "range_json" => (1, 3, None, false, true),
        other => panic!("unknown base {other}"),
    };
    let whole = from == 1 && to == 32 && kind.is_none();
    let mut index = SignatureIndex::new();
    let mut buf = Vec::new();
    let leaves: Vec<_> = all
        .iter()
        .map(|r| {
            index.observe(r);
            record_leaf_hash(r, &mut buf)
        })
        .collect();
    let tree = MerkleTree::from_leaves(leaves.clone());
    let selected: Vec<&Record> = all
        .iter()
        .filter(|r| {
            let s = r.chain_seq.get();
            s >= from && s <= to && kind.is_none_or(|k| r.kind == EventKind::new(k).unwrap())
        })
        .collect();
    let (mut jsonl, mut csv_bytes, mut json_bytes, mut proofs) = (
        Vec::new(),
        CSV_HEADER.as_bytes().to_vec(),
        JSON_OPEN.to_vec(),
        Vec::new(),
    );
    let mut selected_leaves = Vec::new();
    let mut rows = Sha256::new();
    rows.update(b"gims-relay:export-rows:v1\n");
    for (i, r) in selected.iter().enumerate() {
        serde_json::to_writer(&mut jsonl, r).unwrap();
        jsonl.push(b'\n');
        let sigs = index.on(&r.checksum);
        write_csv_prefix(r, &mut csv_bytes);
        write_csv_signatures(sigs, &mut csv_bytes);
        if i > 0 {
            json_bytes.extend_from_slice(JSON_SEPARATOR);
        }
        write_json_prefix(r, &mut json_bytes);
        write_json_signatures(sigs, &mut json_bytes);
        let leaf = leaves[r.chain_seq.get() as usize - 1];
        selected_leaves.push(leaf);
        rows.update(leaf.0);
        let proof = tree.inclusion_proof(r.chain_seq.get() - 1);
        proofs.extend_from_slice(
            format!(
                "{{\"seq\":{},\"proof\":{}}}\n",
                r.chain_seq,
                serde_json::to_string(&proof).unwrap()
            )
            .as_bytes(),
        );
    }
    json_bytes.extend_from_slice(if selected.is_empty() {
        JSON_CLOSE_EMPTY
    } else {
        JSON_CLOSE_AFTER_ROW
    });
    // Evidence: SIGNATURE records on exported records that are not exported themselves.
    let exported: Vec<_> = selected.iter().map(|r| r.checksum).collect();
    for r in &all {
        let Some((target, _)) = Manifestation::from_signature_record(r) else {
            continue;
        };
        if selected.iter().any(|s| s.chain_seq == r.chain_seq) || !exported.contains(&target) {
            continue;
        }
        let proof = tree.inclusion_proof(r.chain_seq.get() - 1);
        proofs.extend_from_slice(
            format!(
                "{{\"seq\":{},\"proof\":{},\"record\":{}}}\n",
                r.chain_seq,
                serde_json::to_string(&proof).unwrap(),
                serde_json::to_string(r).unwrap()
            )
            .as_bytes(),
        );
    }
    let mut files = BTreeMap::new();
    files.insert("records.jsonl".to_owned(), jsonl);
    files.insert("anchors.json".to_owned(), fixture("anchors.json"));
    if csv {
        files.insert("records.csv".to_owned(), csv_bytes);
    }
    if json_out {
        files.insert("records.json".to_owned(), json_bytes);
    }
    if !whole {
        files.insert("proofs.jsonl".to_owned(), proofs);
    }
    let mut manifest: Value = serde_json::from_slice(&fixture("manifest.json")).unwrap();
    manifest.as_object_mut().unwrap().remove("seal");
    // The fixture was exported in format v1; the renderings above are the current format's.
    manifest["format"] = json!(relay_domain::export::EXPORT_FORMAT);
    manifest["range"] = json!({"from_seq": from, "to_seq": to});
    manifest["filter"] = json!({"project": null, "kind": kind});
    manifest["records"] = json!(selected.len());
    manifest["head"] = json!({"seq": 32, "checksum": head.checksum, "merkle_root": tree.root()});
    manifest["rows_digest"] = json!(hex::encode(rows.finalize()));
    manifest["merkle_root"] = json!(root_of(&selected_leaves));
    let mut pkg = Pkg {
        files,
        manifest,
        manifest_bytes: Vec::new(),
    };
    pkg.reseal(&genuine_key());
    pkg
}

/// How the package is written and which extra arguments the verifiers get.
enum Layout {
    Dir,
    Zip,
    /// A hand-written zip (stored entries), for duplicates and header tricks.
    RawZip(Vec<(String, String, Vec<u8>)>),
}

fn apply(edit: &str, pkg: &mut Pkg) -> (Layout, bool) {
    let mut pinned = true;
    let mut layout = Layout::Dir;
    let gk = genuine_key();
    match edit {
        "none" => {}
        "unpinned" => pinned = false,
        "zip" => layout = Layout::Zip,
        "reseal_attacker" => pkg.reseal(&attacker_key()),
        "reseal_attacker_unpinned" => {
            pkg.reseal(&attacker_key());
            pinned = false;
        }
        "zip_duplicate_csv" | "zip_local_name_differs" => {
            let mut entries: Vec<(String, String, Vec<u8>)> = pkg
                .entries()
                .into_iter()
                .map(|(n, b)| (n.clone(), n, b))
                .collect();
            let genuine = pkg.files["records.csv"].clone();
            let forged = pkg
                .text("records.csv")
                .replace("Rita Reviewer", "Rita Approver");
            if edit == "zip_duplicate_csv" {
                let at = entries.iter().position(|e| e.0 == "records.csv").unwrap();
                entries.insert(
                    at,
                    (
                        "records.csv".into(),
                        "records.csv".into(),
                        forged.into_bytes(),
                    ),
                );
                entries[at + 1].2 = genuine;
            } else {
                let at = entries.iter().position(|e| e.0 == "records.csv").unwrap();
                entries[at].1 = "records.cs_".into();
            }
            layout = Layout::RawZip(entries);
        }
        "dir_extra_file" => {
            pkg.files.insert("notes.txt".into(), b"hello\n".to_vec());
            // Not in the manifest: reseal only what the manifest lists.
            let notes = pkg.files.remove("notes.txt").unwrap();
            pkg.reseal(&gk);
            pkg.files.insert("notes.txt".into(), notes);
        }
        "manifest_records" => {
            let text = String::from_utf8(pkg.manifest_bytes.clone()).unwrap();
            pkg.manifest_bytes = text
                .replacen("\"records\": 32", "\"records\": 31", 1)
                .into_bytes();
        }
        "seal_small_order_key" => {
            // The identity point: y = 1. Its fingerprint is consistent, so only the
            // small-order rule refuses it (an all-zero signature satisfies the equation).
            let public = {
                let mut b = [0u8; 32];
                b[0] = 1;
                b
            };
            let fp = hex::encode(&Sha256::digest(public)[..16]);
            let mut sig = [0u8; 64];
            sig[0] = 1;
            pkg.edit_seal(|s| {
                s.insert("public_key".into(), json!(hex::encode(public)));
                s.insert("fingerprint".into(), json!(fp));
                s.insert("signature".into(), json!(hex::encode(sig)));
            });
        }
        "seal_noncanonical_s" => pkg.edit_seal(|s| {
            let mut sig = hex::decode(s["signature"].as_str().unwrap()).unwrap();
            // S + L, little-endian: still 32 bytes, same point equation, non-canonical.
            let l: [u8; 32] = [
                0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
                0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ];
            let mut carry = 0u16;
            for i in 0..32 {
                let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
                sig[32 + i] = (v & 0xff) as u8;
                carry = v >> 8;
            }
            s.insert("signature".into(), json!(hex::encode(sig)));
        }),
        "jsonl_drop_line_10" => edit_lines(pkg, |l| {
            l.remove(9);
        }),
        "jsonl_duplicate_line_5" => edit_lines(pkg, |l| {
            let line = l[4].clone();
            l.insert(5, line);
        }),
        "jsonl_swap_lines_5_6" => edit_lines(pkg, |l| l.swap(4, 5)),
        "jsonl_truncate_2_resealed" => {
            edit_lines(pkg, |l| l.truncate(30));
            pkg.reseal(&gk);
        }
        "payload_noncanonical_resealed" => {
            let text = pkg.text("records.jsonl");
            let edited = text.replacen("\"payload\":{\"sha256\":", "\"payload\":{ \"sha256\":", 1);
            assert_ne!(text, edited);
            pkg.set_text("records.jsonl", edited);
            pkg.reseal(&gk);
        }
        "anchor_checksum" => {
            let head = pkg.manifest["head"]["checksum"]
                .as_str()
                .unwrap()
                .to_owned();
            let text = pkg.text("anchors.json");
            pkg.set_text("anchors.json", text.replace(&head, &"ab".repeat(32)));
        }
        "csv_header" => {
            let text = pkg.text("records.csv");
            pkg.set_text("records.csv", text.replacen("chain_seq,", "seq,", 1));
        }
        "json_signature_forged_resealed" => {
            let text = pkg.text("records.json");
            pkg.set_text(
                "records.json",
                text.replacen("\"meaning\":\"reviewed\"", "\"meaning\":\"approved\"", 1),
            );
            pkg.reseal(&gk);
        }
        "csv_signature_forged_resealed" => {
            let text = pkg.text("records.csv");
            let edited = text.replacen("Rita Reviewer", "Rita Approver", 1);
            assert_ne!(text, edited);
            pkg.set_text("records.csv", edited);
            pkg.reseal(&gk);
        }
        "csv_signature_dropped_resealed" => {
            let text = pkg.text("records.csv");
            let row = text
                .split("\r\n")
                .find(|r| r.contains("Rita Reviewer"))
                .unwrap()
                .to_owned();
            let cut = row.rfind(",\"Rita").unwrap();
            pkg.set_text("records.csv", text.replacen(&row, &row[..=cut], 1));
            pkg.reseal(&gk);
        }
        "evidence_dropped_resealed" => {
            let text = pkg.text("proofs.jsonl");
            let kept: String = text
                .lines()
                .filter(|l| !l.contains("\"record\""))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_ne!(text, kept);
            pkg.set_text("proofs.jsonl", kept);
            pkg.reseal(&gk);
        }
        "evidence_forged_resealed" => {
            let text = pkg.text("proofs.jsonl");
            let edited = text.replacen("Rita Reviewer", "Rita Approver", 1);
            assert_ne!(text, edited);
            pkg.set_text("proofs.jsonl", edited);
            let text = pkg.text("records.json");
            pkg.set_text(
                "records.json",
                text.replacen("Rita Reviewer", "Rita Approver", 1),
            );
            pkg.reseal(&gk);
        }
        "receipts_added_resealed" => {
            add_receipts(pkg);
            pkg.reseal(&gk);
        }
        "receipts_unlisted" => add_receipts(pkg),
        "receipts_time_edited" => {
            add_receipts(pkg);
            pkg.reseal(&gk);
            // One microsecond later: the flag still agrees with the times, only the seal's
            // digest can tell.
            let text = pkg.text("receipts.jsonl");
            let first = text.lines().next().unwrap().to_owned();
            let mut line = ReceiptLine::parse(first.as_bytes()).unwrap();
            line.received_at =
                relay_domain::Timestamp::from_unix_micros(line.received_at.unix_micros() + 1)
                    .unwrap();
            let mut edited = Vec::new();
            line.write(&mut edited);
            let edited = String::from_utf8(edited).unwrap();
            pkg.set_text(
                "receipts.jsonl",
                text.replacen(&format!("{first}\n"), &edited, 1),
            );
        }
        "receipts_late_flipped_resealed" => {
            add_receipts(pkg);
            let text = pkg.text("receipts.jsonl");
            let edited = text.replacen("\"late\":false", "\"late\":true", 1);
            assert_ne!(text, edited);
            pkg.set_text("receipts.jsonl", edited);
            pkg.reseal(&gk);
        }
        "anchors_v2_resealed" => {
            let text = serde_json::to_string_pretty(&v2_anchors(&gk)).unwrap();
            pkg.set_text("anchors.json", format!("{text}\n"));
            pkg.reseal(&gk);
        }
        "anchor_history_shrinks_resealed" => {
            // Someone holding the seal key anchors the trail as it was at record 3, after the
            // head's anchor: every value of the forged anchor is true of records 1..=3 and its
            // checkpoint is genuinely signed, but its link from the head (32 records) to 3
            // records says the tree shrank, which no consistency proof can show.
            let records = fixture_records();
            let mut buf = Vec::new();
            let mut acc = MerkleAccumulator::new();
            for r in &records[..3] {
                acc.push_leaf_hash(record_leaf_hash(r, &mut buf));
            }
            let mut anchors: Vec<Value> =
                serde_json::from_slice(&pkg.files["anchors.json"]).unwrap();
            let head: Anchor = serde_json::from_value(anchors.last().unwrap().clone()).unwrap();
            assert_eq!(head.seq.get(), 32);
            let at =
                Timestamp::from_unix_micros(head.anchored_at.unix_micros() + 1_000_000).unwrap();
            let mut forged = build_anchor(
                &head.trail_id,
                records[2].chain_seq,
                records[2].checksum,
                &acc,
                None,
                &[],
                (at, TimeLabel::System),
                None,
            );
            forged.consistency = Some(ConsistencyLink {
                from_seq: head.seq,
                from_root: head.merkle_root.unwrap(),
                proof: vec![],
            });
            forged.checkpoint = Some(expected_checkpoint(&forged).sign(&gk));
            anchors.push(serde_json::to_value(&forged).unwrap());
            let text = serde_json::to_string_pretty(&anchors).unwrap();
            pkg.set_text("anchors.json", format!("{text}\n"));
            pkg.reseal(&gk);
        }
        other => panic!("unknown edit {other}"),
    }
    (layout, pinned)
}

/// A genuine version 2 anchor history of the fixture trail (docs/spec/checkpoint.md §6): anchors
/// at seqs 10, 20 and 32 (the head), a second after each anchored record was recorded, each with
/// its frontier, the consistency link from the one before and a checkpoint signed with `key`.
fn v2_anchors(key: &SealKey) -> Vec<Anchor> {
    let records = fixture_records();
    let mut buf = Vec::new();
    let leaves: Vec<_> = records
        .iter()
        .map(|r| record_leaf_hash(r, &mut buf))
        .collect();
    let mut acc = MerkleAccumulator::new();
    let mut base: Option<AnchorBase> = None;
    let mut out = Vec::new();
    for stop in [10usize, 20, 32] {
        let from = base.as_ref().map_or(0, |b| b.seq.get() as usize);
        for leaf in &leaves[from..stop] {
            acc.push_leaf_hash(*leaf);
        }
        let r = &records[stop - 1];
        let at = Timestamp::from_unix_micros(r.recorded_at.unix_micros() + 1_000_000).unwrap();
        let anchor = build_anchor(
            &r.trail_id,
            r.chain_seq,
            r.checksum,
            &acc,
            base.as_ref(),
            &leaves[from..stop],
            (at, TimeLabel::System),
            Some(key),
        );
        assert!(stop == 10 || anchor.consistency.is_some());
        base = AnchorBase::of(&anchor);
        out.push(anchor);
    }
    out
}

/// A server of record's `receipts.jsonl` for the package's records: records 30 and up were
/// received an hour after they were recorded (late, threshold 900 s), the others a second after.
fn add_receipts(pkg: &mut Pkg) {
    let mut out = Vec::new();
    for line in pkg.text("records.jsonl").lines() {
        let r: Record = serde_json::from_str(line).unwrap();
        let delay = if r.chain_seq.get() >= 30 { 3600 } else { 1 };
        ReceiptLine {
            seq: r.chain_seq.get(),
            received_at: relay_domain::Timestamp::from_unix_micros(
                r.recorded_at.unix_micros() + delay * 1_000_000,
            )
            .unwrap(),
            late: delay > 900,
            late_after_secs: 900,
        }
        .write(&mut out);
    }
    pkg.files.insert("receipts.jsonl".into(), out);
}

fn edit_lines(pkg: &mut Pkg, edit: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = pkg
        .text("records.jsonl")
        .lines()
        .map(str::to_owned)
        .collect();
    edit(&mut lines);
    pkg.set_text(
        "records.jsonl",
        lines.iter().map(|l| format!("{l}\n")).collect(),
    );
}

fn write(pkg: &Pkg, layout: Layout, dir: &Path) -> PathBuf {
    match layout {
        Layout::Dir => {
            let p = dir.join("pkg");
            std::fs::create_dir_all(&p).unwrap();
            for (name, bytes) in pkg.entries() {
                std::fs::write(p.join(name), bytes).unwrap();
            }
            p
        }
        Layout::Zip => {
            let entries: Vec<_> = pkg
                .entries()
                .into_iter()
                .map(|(n, b)| (n.clone(), n, b))
                .collect();
            let p = dir.join("pkg.zip");
            std::fs::write(&p, raw_zip(&entries)).unwrap();
            p
        }
        Layout::RawZip(entries) => {
            let p = dir.join("pkg.zip");
            std::fs::write(&p, raw_zip(&entries)).unwrap();
            p
        }
    }
}

/// (exit code, first failure's file (up to the first space) and check) from a `--json` run.
fn outcome(cmd: &mut Command) -> (i32, Option<(String, String)>, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let first = serde_json::from_str::<Value>(&stdout).ok().and_then(|v| {
        let f = v["failures"].get(0)?.clone();
        let file = f["file"].as_str()?.split(' ').next()?.to_owned();
        Some((file, f["check"].as_str()?.to_owned()))
    });
    (out.status.code().unwrap_or(-1), first, text)
}

// REQ: R5.3
#[test]
fn every_tamper_case_gets_the_same_verdict_from_relay_verify_and_the_python_verifier() {
    let table: Value =
        serde_json::from_slice(&std::fs::read(repo().join("docs/spec/tamper-cases.json")).unwrap())
            .unwrap();
    let fp = genuine_key().public().fingerprint();
    let mut bases: BTreeMap<String, Pkg> = BTreeMap::new();
    let mut failures = Vec::new();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let base = case["base"].as_str().unwrap();
        let mut pkg = bases
            .entry(base.to_owned())
            .or_insert_with(|| build(base))
            .clone();
        let (layout, pinned) = apply(case["edit"].as_str().unwrap(), &mut pkg);
        let tmp = tempfile::tempdir().unwrap();
        let path = write(&pkg, layout, tmp.path());
        let mut args = vec![path.display().to_string(), "--json".to_owned()];
        if pinned {
            args.extend(["--expect-fingerprint".to_owned(), fp.clone()]);
        }
        let expected_exit = case["exit"].as_i64().unwrap() as i32;
        let expected_first = case["file"]
            .as_str()
            .map(|f| (f.to_owned(), case["check"].as_str().unwrap().to_owned()));
        let rust = outcome(Command::new(BIN).args(&args));
        let python = outcome(
            Command::new("python3")
                .arg(repo().join("docs/spec/verify_package.py"))
                .args(&args),
        );
        for (who, (code, first, text)) in [("relay-verify", rust), ("verify_package.py", python)] {
            if code != expected_exit || first != expected_first {
                failures.push(format!(
                    "{name} [{who}]: exit {code}, first failure {first:?}; expected exit \
                     {expected_exit}, {expected_first:?}\n{text}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_python_verifier_passes_its_ed25519_self_test() {
    // RFC 8032 §7.1 test 1, and the strict refusals (S + L, a small-order key) of export.md §3.
    let out = Command::new("python3")
        .arg(repo().join("docs/spec/verify_package.py"))
        .arg("--self-test")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("ok  ").count(), 4, "{text}");
}
