//! The export's per-record work that needs nothing but the record, done ahead of its ordered
//! pass and on several threads (issue 23): the HMAC verdict, the Merkle leaf hash and the
//! record's rows in `records.jsonl`, `records.csv` and `records.json`.
//!
//! Each record is encoded in canonical form once; the HMAC, the leaf hash and the
//! `records.jsonl` line are all taken from that one encoding (the line is the canonical layout
//! the package verifier requires: RFC 8785 without `checksum`, then `checksum`). The ordered
//! pass (links, anchors, Merkle accumulation, selection, writing) stays with the caller, which
//! feeds each verdict to [`ChainVerifier::push_prepared`]: the verdict, and the first bad record
//! it names, are exactly those of [`ChainVerifier::push`]. Scoped threads only, no I/O.

use std::ops::Range;

use crate::canonical::{EVENT_DOMAIN_TAG, write_canonical};
use crate::export::LAYOUT_CHECKSUM_KEY;
use crate::export::render::{
    SignatureIndex, write_csv_prefix, write_csv_signatures, write_json_prefix,
    write_json_signatures,
};
use crate::ids::Checksum;
use crate::keys::KeyRing;
use crate::merkle::canonical_leaf_hash;
use crate::record::Record;
use crate::verify::{ChainVerifier, Hmac, VerifyFailure, hmac_verdict_of_canonical};

/// Below this many records a page is prepared on the calling thread alone.
const PARALLEL_MIN_RECORDS: usize = 256;

/// What the export writes besides `records.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renderings {
    /// `records.csv`.
    pub csv: bool,
    /// `records.json`.
    pub json: bool,
}

/// A page of records prepared for the export's ordered pass ([`PreparedPage::rows`]). Its
/// buffers are kept from one page to the next ([`PreparedPage::prepare`] refills them), so a
/// long export does not allocate and fault in fresh memory for every page.
#[derive(Default)]
pub struct PreparedPage {
    /// One part per thread, in record order.
    parts: Vec<Part>,
}

/// The records prepared by one thread: per record its verdict, leaf and where its rows are in
/// the part's three buffers.
#[derive(Default)]
struct Part {
    rows: Vec<RowIndex>,
    jsonl: Vec<u8>,
    csv: Vec<u8>,
    json: Vec<u8>,
    canonical: Vec<u8>,
}

impl Part {
    /// Empties the part, keeping its buffers.
    fn clear(&mut self) {
        self.rows.clear();
        self.jsonl.clear();
        self.csv.clear();
        self.json.clear();
    }
}

/// One record of a [`Part`].
struct RowIndex {
    hmac: Option<Hmac>,
    leaf: Checksum,
    jsonl: Range<usize>,
    csv: Range<usize>,
    json: Range<usize>,
}

/// One prepared record, in the order of the page.
pub struct PreparedRow<'a> {
    /// The HMAC verdict under the verifier's keys (none for a links-only verifier).
    hmac: Option<Hmac>,
    /// The record's Merkle leaf hash ([`crate::merkle::record_leaf_hash`]).
    pub leaf: Checksum,
    /// Its `records.jsonl` line, with its `\n` (empty when the record is not rendered).
    pub jsonl: &'a [u8],
    /// Its `records.csv` row with its signatures cell and `\r\n` (empty when not rendered).
    pub csv: &'a [u8],
    /// Its `records.json` row with its signatures, without the separator that precedes every
    /// row but the first (empty when not rendered).
    pub json: &'a [u8],
}

/// What every record of a page is prepared with.
#[derive(Clone, Copy)]
struct Context<'a> {
    keys: Option<&'a KeyRing>,
    signatures: &'a SignatureIndex,
    renderings: Renderings,
    render: &'a (dyn Fn(&Record) -> bool + Sync),
}

impl PreparedPage {
    /// An empty page, to be filled by [`prepare`](Self::prepare).
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares `records` (replacing the previous page) on up to `threads` scoped threads:
    /// every record's HMAC verdict under `verifier`'s keys and its leaf hash; the rows of
    /// those `render` selects, with the signatures `signatures` holds for them.
    pub fn prepare(
        &mut self,
        verifier: &ChainVerifier<'_>,
        records: &[Record],
        signatures: &SignatureIndex,
        renderings: Renderings,
        render: &(dyn Fn(&Record) -> bool + Sync),
        threads: usize,
    ) {
        let cx = Context {
            keys: verifier.keys(),
            signatures,
            renderings,
            render,
        };
        let threads = if records.len() < PARALLEL_MIN_RECORDS {
            1
        } else {
            threads.max(1)
        };
        self.parts.resize_with(threads, Part::default);
        for part in &mut self.parts {
            part.clear();
        }
        if threads == 1 {
            prepare_part(&mut self.parts[0], records, cx);
            return;
        }
        let chunk = records.len().div_ceil(threads);
        let failed: Vec<usize> = std::thread::scope(|scope| {
            let mut work = records.chunks(chunk).zip(self.parts.iter_mut());
            // The calling thread prepares the first chunk itself.
            let first = work.next();
            let handles: Vec<_> = work
                .map(|(part_records, part)| {
                    scope.spawn(move || prepare_part(part, part_records, cx))
                })
                .collect();
            if let Some((part_records, part)) = first {
                prepare_part(part, part_records, cx);
            }
            handles
                .into_iter()
                .enumerate()
                .filter_map(|(i, handle)| handle.join().is_err().then_some(i + 1))
                .collect()
        });
        // Preparing does not panic; should a thread fail anyway, its records are prepared
        // again here rather than lost or shifted.
        for i in failed {
            let part = &mut self.parts[i];
            part.clear();
            let start = (i * chunk).min(records.len());
            let end = (start + chunk).min(records.len());
            prepare_part(part, &records[start..end], cx);
        }
    }

    /// The prepared records, in the order of the page.
    pub fn rows(&self) -> impl Iterator<Item = PreparedRow<'_>> {
        self.parts.iter().flat_map(|part| {
            part.rows.iter().map(move |row| PreparedRow {
                hmac: row.hmac,
                leaf: row.leaf,
                jsonl: &part.jsonl[row.jsonl.clone()],
                csv: &part.csv[row.csv.clone()],
                json: &part.json[row.json.clone()],
            })
        })
    }
}

/// Prepares `records` into `part` on the calling thread.
fn prepare_part(part: &mut Part, records: &[Record], cx: Context<'_>) {
    part.rows.reserve(records.len());
    let Part {
        rows,
        jsonl,
        csv,
        json,
        canonical,
    } = part;
    for record in records {
        canonical.clear();
        write_canonical(record, canonical);
        let hmac = cx.keys.map(|keys| {
            hmac_verdict_of_canonical(canonical, &record.key_id, &record.checksum, keys)
        });
        let leaf = canonical_leaf_hash(canonical, &record.checksum);
        let (jsonl_at, csv_at, json_at) = (jsonl.len(), csv.len(), json.len());
        if (cx.render)(record) {
            write_jsonl_line(canonical, &record.checksum, jsonl);
            let sigs = cx.signatures.on(&record.checksum);
            if cx.renderings.csv {
                write_csv_prefix(record, csv);
                write_csv_signatures(sigs, csv);
            }
            if cx.renderings.json {
                write_json_prefix(record, json);
                write_json_signatures(sigs, json);
            }
        }
        rows.push(RowIndex {
            hmac,
            leaf,
            jsonl: jsonl_at..jsonl.len(),
            csv: csv_at..csv.len(),
            json: json_at..json.len(),
        });
    }
}

/// The `records.jsonl` line of a record from its canonical encoding (domain tag, then the
/// RFC 8785 object without `checksum`): the object with `"checksum":"<hex>"` as its last
/// member, then `\n`.
fn write_jsonl_line(canonical: &[u8], checksum: &Checksum, out: &mut Vec<u8>) {
    let object = &canonical[EVENT_DOMAIN_TAG.len()..canonical.len() - 1];
    out.extend_from_slice(object);
    out.extend_from_slice(LAYOUT_CHECKSUM_KEY);
    checksum.write_hex(out);
    out.extend_from_slice(b"\"}\n");
}

impl ChainVerifier<'_> {
    /// [`push`](Self::push) with the record's HMAC verdict taken from its prepared row
    /// ([`PreparedPage::prepare`] with this verifier): the same checks, in the same order.
    pub fn push_prepared(
        &mut self,
        record: &Record,
        row: &PreparedRow<'_>,
    ) -> Result<(), VerifyFailure> {
        match row.hmac {
            Some(hmac) => self.push_with_verdict(record, hmac),
            None => self.push(record),
        }
    }
}
