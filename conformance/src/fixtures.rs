//! Records, keys and unique names for the suites.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use relay_domain::chain::seal;
use relay_domain::{
    Actor, ActorSource, ChainSeq, Checksum, Device, EventKind, GENESIS, KeyId, Payload, Project,
    Record, Subject, TimeLabel, Timestamp, TrailId, TrailKey,
};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this run and call: `<tag>-<pid>-<micros>-<n>`, made of characters every id
/// type accepts, so suites never collide on a shared service.
pub fn unique(tag: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{micros}-{n}", std::process::id())
}

/// A fresh trail id for one rule of a suite.
pub fn unique_trail(tag: &str) -> TrailId {
    must(TrailId::new(unique(tag)), "unique trail id")
}

/// Unwraps a result in a suite, panicking with what was being done and the error.
#[track_caller]
pub fn must<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e:?}"),
    }
}

/// Unwraps an option in a suite, panicking with what was expected.
#[track_caller]
pub fn present<T>(option: Option<T>, what: &str) -> T {
    match option {
        Some(v) => v,
        None => panic!("{what}: expected a value, found none"),
    }
}

/// The key every suite signs records with (a fixed test key, never a real one).
pub fn test_key() -> TrailKey {
    must(
        TrailKey::new(must(KeyId::new("conformance-key"), "key id"), &[0x42; 32]),
        "test key",
    )
}

/// A payload from JSON text (canonicalized).
pub fn payload(json: &str) -> Payload {
    must(Payload::parse(json), "test payload")
}

/// Builds a valid chain for one trail, record by record.
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    trail: TrailId,
    key: TrailKey,
    next: ChainSeq,
    prev: Checksum,
}

impl ChainBuilder {
    /// A builder starting at seq 1 of `trail`, signing with [`test_key`].
    pub fn new(trail: TrailId) -> Self {
        Self {
            trail,
            key: test_key(),
            next: ChainSeq::FIRST,
            prev: GENESIS,
        }
    }

    /// The trail.
    pub fn trail(&self) -> &TrailId {
        &self.trail
    }

    /// The next record, with a small payload naming its seq.
    pub fn next_record(&mut self) -> Record {
        let p = payload(&format!(
            r#"{{"n":{},"note":"conformance"}}"#,
            self.next.get()
        ));
        self.next_with_payload(p)
    }

    /// The next record with `payload`.
    pub fn next_with_payload(&mut self, payload: Payload) -> Record {
        let r = record(&self.trail, &self.key, self.next, self.prev, payload);
        self.next = self.next.next();
        self.prev = r.checksum;
        r
    }

    /// The next record, of `kind` instead of `FILE_CREATED`.
    pub fn next_of_kind(&mut self, kind: EventKind) -> Record {
        let p = payload(&format!(r#"{{"n":{}}}"#, self.next.get()));
        let mut r = record(&self.trail, &self.key, self.next, self.prev, p);
        r.kind = kind;
        seal(&mut r, &self.key);
        self.next = self.next.next();
        self.prev = r.checksum;
        r
    }

    /// The next `n` records.
    pub fn batch(&mut self, n: usize) -> Vec<Record> {
        (0..n).map(|_| self.next_record()).collect()
    }
}

/// A sealed record of `trail` at `seq` linking to `prev`. Optional fields vary with the seq so
/// stores are exercised with and without them (and with non-ASCII text in them).
pub fn record(
    trail: &TrailId,
    key: &TrailKey,
    seq: ChainSeq,
    prev: Checksum,
    payload: Payload,
) -> Record {
    let n = seq.get();
    let base = 1_764_075_475_000_000i64;
    let at = |offset: i64| must(Timestamp::from_unix_micros(base + offset), "timestamp");
    let mut r = Record {
        actor: must(Actor::new("conformance Prüfer"), "actor"),
        actor_source: if n.is_multiple_of(2) {
            ActorSource::OsSession
        } else {
            ActorSource::System
        },
        chain_seq: seq,
        device: must(Device::new("conformance-ws.01"), "device"),
        key_id: key.id().clone(),
        kind: must(EventKind::new("FILE_CREATED"), "kind"),
        occurred_at: at(n as i64 * 1_000),
        payload,
        prev_checksum: prev,
        project: (n % 2 == 1).then(|| must(Project::new("Studie Ü-1 / NMR"), "project")),
        recorded_at: at(n as i64 * 1_000 + 7),
        subject: (!n.is_multiple_of(3))
            .then(|| must(Subject::new(format!("raw/run {n}\tä.fid")), "subject")),
        time_source: if n.is_multiple_of(4) {
            TimeLabel::Validated {
                offset_micros: -1250,
            }
        } else {
            TimeLabel::System
        },
        trail_id: trail.clone(),
        checksum: GENESIS,
    };
    seal(&mut r, key);
    r
}
