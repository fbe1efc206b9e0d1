//! How the previous run of the relay ended, read from its own `_relay` trail at start-up.
//!
//! A run begins with a `STARTUP` record and, when it stops gracefully, ends with a `SHUTDOWN`
//! record. Walking `_relay` back from its head, the first of the two found tells: `SHUTDOWN`
//! means the previous run ended cleanly; `STARTUP` means it ended without one (killed, crashed,
//! power lost), and the relay records an `UNCLEAN_SHUTDOWN` SYSTEM event naming the last record
//! stored before the end. Other commands (`export`, `keys rotate`, `qualify`) may append to
//! `_relay` between runs; they are neither kind and are skipped.

use relay_domain::ports::{RecordStore, RecordStoreError};
use relay_domain::{Device, EventKind, Record, TrailId};

use crate::journal::Journal;

/// How the previous run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviousRun {
    /// No earlier `STARTUP`: this is the installation's first run.
    FirstRun,
    /// The previous run recorded its `SHUTDOWN` (at this `_relay` seq).
    Clean {
        /// The seq of that `SHUTDOWN`.
        shutdown_seq: u64,
    },
    /// The previous run (started at `startup_seq`) has no `SHUTDOWN`.
    Unclean {
        /// The seq of its `STARTUP`.
        startup_seq: u64,
        /// The newest record stored in any trail before this start (by `recorded_at`).
        last_record: Option<RecordRef>,
    },
}

/// Names one record: trail, seq, kind and when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// The trail.
    pub trail: String,
    /// Its chain_seq.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// Its `recorded_at`, canonical.
    pub recorded_at: String,
    /// Its checksum (hex).
    pub checksum: String,
}

impl RecordRef {
    fn of(r: &Record) -> Self {
        Self {
            trail: r.trail_id.as_str().to_owned(),
            seq: r.chain_seq.get(),
            kind: r.kind.as_str().to_owned(),
            recorded_at: r.recorded_at.to_canonical(),
            checksum: r.checksum.to_string(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "trail": self.trail, "seq": self.seq, "kind": self.kind,
            "recorded_at": self.recorded_at, "checksum": self.checksum,
        })
    }
}

/// Records read back per page while looking for the last `STARTUP` / `SHUTDOWN`.
const PAGE: u64 = 256;

impl PreviousRun {
    /// Reads how the previous run of `device` ended from `store`, before this run appends
    /// anything. Only `device`'s own `STARTUP` and `SHUTDOWN` records count: replicas of a
    /// server of record share one `_relay`, and a running sibling is not an unclean end.
    pub async fn read(store: &dyn RecordStore, device: &Device) -> Result<Self, RecordStoreError> {
        let relay = TrailId::relay();
        let Some(head) = store.head(&relay).await? else {
            return Ok(Self::FirstRun);
        };
        let (startup, shutdown) = (EventKind::startup(), EventKind::shutdown());
        let mut end = head.seq.get();
        while end > 0 {
            let start = end.saturating_sub(PAGE);
            let page = store
                .read(&relay, start, usize::try_from(end - start).unwrap_or(256))
                .await?;
            for r in page.iter().rev().filter(|r| &r.device == device) {
                if r.kind == shutdown {
                    return Ok(Self::Clean {
                        shutdown_seq: r.chain_seq.get(),
                    });
                }
                if r.kind == startup {
                    return Ok(Self::Unclean {
                        startup_seq: r.chain_seq.get(),
                        last_record: newest_record(store).await?,
                    });
                }
            }
            end = start;
        }
        Ok(Self::FirstRun)
    }

    /// The `previous_run` field of the STARTUP posture.
    pub fn posture(&self) -> serde_json::Value {
        match self {
            Self::FirstRun => serde_json::json!({ "ended": "first_run" }),
            Self::Clean { shutdown_seq } => {
                serde_json::json!({ "ended": "clean", "shutdown_seq": shutdown_seq })
            }
            Self::Unclean {
                startup_seq,
                last_record,
            } => serde_json::json!({
                "ended": "unclean",
                "startup_seq": startup_seq,
                "last_record": last_record.as_ref().map(RecordRef::to_json),
            }),
        }
    }

    /// Records an `UNCLEAN_SHUTDOWN` SYSTEM event when the previous run ended without its
    /// `SHUTDOWN`; returns its seq.
    pub async fn record(
        &self,
        journal: &Journal,
    ) -> Result<Option<u64>, relay_domain::AppendError> {
        let Self::Unclean {
            startup_seq,
            last_record,
        } = self
        else {
            return Ok(None);
        };
        tracing::warn!(
            startup_seq,
            "the previous run ended without a SHUTDOWN record (killed, crashed or power lost); \
             recorded as UNCLEAN_SHUTDOWN"
        );
        let r = journal
            .system(
                "UNCLEAN_SHUTDOWN",
                serde_json::json!({
                    "previous_startup_seq": startup_seq,
                    "last_record_before": last_record.as_ref().map(RecordRef::to_json),
                    "detail": "the previous run has a STARTUP but no SHUTDOWN record: it was killed, \
                               crashed or lost power; last_record_before is the newest record \
                               stored before it ended (nothing after it was acknowledged)",
                }),
            )
            .await?;
        Ok(Some(r.chain_seq.get()))
    }
}

/// The newest record of any trail, by `recorded_at` (the heads are the candidates).
async fn newest_record(store: &dyn RecordStore) -> Result<Option<RecordRef>, RecordStoreError> {
    let mut newest: Option<Record> = None;
    for (trail, head) in store.trails().await? {
        let page = store.read(&trail, head.seq.get() - 1, 1).await?;
        if let Some(r) = page.into_iter().next()
            && newest
                .as_ref()
                .is_none_or(|n| r.recorded_at.to_canonical() > n.recorded_at.to_canonical())
        {
            newest = Some(r);
        }
    }
    Ok(newest.as_ref().map(RecordRef::of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_domain::memory::{InMemoryRecordStore, ManualClock};
    use relay_domain::{AppendService, KeyId, Timestamp, TrailKey};
    use std::sync::Arc;

    async fn journal() -> (Arc<InMemoryRecordStore>, Journal) {
        let store = Arc::new(InMemoryRecordStore::new());
        let key = TrailKey::new(KeyId::new("k1").unwrap(), &[7; 32]).unwrap();
        let clock = Arc::new(ManualClock::new(
            Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap(),
        ));
        let appender = Arc::new(AppendService::new(store.clone(), clock, key));
        let journal = Journal::new(
            appender,
            crate::metrics::Metrics::new(),
            Device::new("ws-1").unwrap(),
        );
        (store, journal)
    }

    #[tokio::test]
    async fn previous_run_tells_first_clean_and_unclean_apart() {
        let (store, journal) = journal().await;
        let ws = Device::new("ws-1").unwrap();
        assert_eq!(
            PreviousRun::read(store.as_ref(), &ws).await.unwrap(),
            PreviousRun::FirstRun
        );
        journal
            .record(EventKind::startup(), None, serde_json::json!({}))
            .await
            .unwrap();
        journal.system("x", serde_json::json!({})).await.unwrap();
        let unclean = PreviousRun::read(store.as_ref(), &ws).await.unwrap();
        let PreviousRun::Unclean {
            startup_seq,
            last_record,
        } = &unclean
        else {
            panic!("{unclean:?}")
        };
        assert_eq!(*startup_seq, 1);
        assert_eq!(last_record.as_ref().unwrap().seq, 2);
        assert_eq!(unclean.record(&journal).await.unwrap(), Some(3));
        journal
            .record(EventKind::shutdown(), None, serde_json::json!({}))
            .await
            .unwrap();
        journal
            .system("after", serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(
            PreviousRun::read(store.as_ref(), &ws).await.unwrap(),
            PreviousRun::Clean { shutdown_seq: 4 }
        );
        // Another device's run (a sibling replica) says nothing about this one's.
        let other = Device::new("ws-2").unwrap();
        assert_eq!(
            PreviousRun::read(store.as_ref(), &other).await.unwrap(),
            PreviousRun::FirstRun
        );
    }
}
