//! The trails' witnesses, as `verify` reports them (issue 19): what left the machine and so
//! cannot be taken back by someone with the data directory.
//!
//! Two witnesses exist: the notary's anchors (every trail head on an interval, at shutdown and
//! on export) and, when forwarding is configured, the server of record, whose head of each
//! forwarded trail is asked for at `verify` time. A local trail shorter than what a witness
//! holds, or whose record at the witnessed seq differs, is BROKEN: its tail was deleted or an
//! old copy was restored. For each trail `verify` also says how much is not yet witnessed (the
//! records after the newest witnessed seq, and how old the oldest of them is), because those
//! records could still be removed without a trace.

use relay_api::WitnessedHead;
use relay_domain::ports::{Notary, RecordStore, RecordStoreExt};
use relay_domain::{ChainSeq, Timestamp, TrailId};

/// What the server of record's head says about one local trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerWitness {
    /// The local trail holds the server's head record, identical.
    Holds {
        /// The server's head seq.
        server_seq: u64,
    },
    /// The local trail ends before the server's head: records were removed locally.
    Shorter {
        /// The local head seq (0: empty or absent).
        local_seq: u64,
        /// The server's head seq.
        server_seq: u64,
    },
    /// The local record at the server's head seq is not the one the server holds.
    Differs {
        /// The seq compared.
        seq: u64,
        /// The server's checksum at that seq.
        server_checksum: String,
        /// The local checksum at that seq.
        local_checksum: String,
    },
}

impl ServerWitness {
    /// Whether the local trail agrees with the server.
    pub fn holds(&self) -> bool {
        matches!(self, Self::Holds { .. })
    }
}

/// One trail's witness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailWitness {
    /// The trail.
    pub trail: TrailId,
    /// The local head seq (0: empty).
    pub local_seq: u64,
    /// The newest anchored seq the notary holds (0: none).
    pub anchored_seq: u64,
    /// The server of record's verdict, when it was asked and stores the trail.
    pub server: Option<ServerWitness>,
    /// Records after the newest witnessed seq.
    pub unwitnessed: u64,
    /// When the oldest of them was recorded.
    pub oldest_unwitnessed: Option<Timestamp>,
}

impl TrailWitness {
    /// The newest seq a witness holds.
    pub fn witnessed_seq(&self) -> u64 {
        let server = match &self.server {
            Some(ServerWitness::Holds { server_seq }) => *server_seq,
            _ => 0,
        };
        self.anchored_seq.max(server).min(self.local_seq)
    }

    /// Whether no witness contradicts the local trail: the server agrees (when asked) and the
    /// notary holds no anchor beyond the local head.
    pub fn holds(&self) -> bool {
        self.server.as_ref().is_none_or(ServerWitness::holds) && !self.notary_ahead()
    }

    /// Whether the notary holds an anchor beyond the local head: records were removed, or an
    /// older copy of the store was restored while the (write-once) notary kept the newer heads.
    pub fn notary_ahead(&self) -> bool {
        self.anchored_seq > self.local_seq
    }
}

/// The witness section of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReport {
    /// Per trail (capture trails and `_relay`), by trail id.
    pub trails: Vec<TrailWitness>,
    /// The server of record asked (its URL), and why it could not be, if it could not.
    pub server: Option<(String, Result<(), String>)>,
}

impl WitnessReport {
    /// Whether every witness agrees with the local trails (an unreachable server is reported
    /// but is not a finding against the trails).
    pub fn holds(&self) -> bool {
        self.trails.iter().all(TrailWitness::holds)
    }
}

/// Compares every trail of `store` (or `only`) with its witnesses: the notary's anchors, and
/// `server` (the URL and the server's answer to `GET /api/v1/ingest/heads`) when forwarding is
/// configured.
pub async fn check(
    store: &dyn RecordStore,
    notary: &dyn Notary,
    only: Option<&TrailId>,
    server: Option<(String, Result<Vec<WitnessedHead>, String>)>,
) -> Result<WitnessReport, String> {
    let err = |e: &dyn std::error::Error| relay_domain::error_chain(e);
    let local = store.trails().await.map_err(|e| err(&e))?;
    let heads = server.as_ref().and_then(|(_, r)| r.as_ref().ok());
    let mut trails: Vec<TrailId> = local.iter().map(|(t, _)| t.clone()).collect();
    // A trail the server holds but the workstation no longer has at all is the worst case.
    for h in heads.into_iter().flatten() {
        if let Ok(t) = TrailId::new(h.trail_id.clone())
            && !trails.contains(&t)
        {
            trails.push(t);
        }
    }
    trails.sort();
    let mut out = Vec::new();
    for trail in trails {
        if only.is_some_and(|o| o != &trail) {
            continue;
        }
        let local_seq = local
            .iter()
            .find(|(t, _)| t == &trail)
            .map_or(0, |(_, h)| h.seq.get());
        let anchored_seq = notary
            .newest_anchor(&trail)
            .await
            .map_err(|e| err(&e))?
            .map_or(0, |a| a.seq.get());
        let server_witness =
            match heads.and_then(|h| h.iter().find(|h| h.trail_id == trail.as_str())) {
                None => None,
                Some(h) => Some(compare_with_server(store, &trail, local_seq, h).await?),
            };
        let mut witness = TrailWitness {
            trail: trail.clone(),
            local_seq,
            anchored_seq,
            server: server_witness,
            unwitnessed: 0,
            oldest_unwitnessed: None,
        };
        let witnessed = witness.witnessed_seq();
        witness.unwitnessed = local_seq.saturating_sub(witnessed);
        if witness.unwitnessed > 0 {
            witness.oldest_unwitnessed = store
                .get(&trail, ChainSeq::new(witnessed + 1).map_err(|e| err(&e))?)
                .await
                .map_err(|e| err(&e))?
                .map(|r| r.recorded_at);
        }
        out.push(witness);
    }
    Ok(WitnessReport {
        trails: out,
        server: server.map(|(url, r)| (url, r.map(|_| ()))),
    })
}

async fn compare_with_server(
    store: &dyn RecordStore,
    trail: &TrailId,
    local_seq: u64,
    head: &WitnessedHead,
) -> Result<ServerWitness, String> {
    if head.head_seq == 0 {
        return Ok(ServerWitness::Holds { server_seq: 0 });
    }
    if local_seq < head.head_seq {
        return Ok(ServerWitness::Shorter {
            local_seq,
            server_seq: head.head_seq,
        });
    }
    let seq = ChainSeq::new(head.head_seq).map_err(|e| e.to_string())?;
    let local = store
        .get(trail, seq)
        .await
        .map_err(|e| relay_domain::error_chain(&e))?;
    let local_checksum = local.map(|r| r.checksum.to_string()).unwrap_or_default();
    Ok(if local_checksum == head.head_checksum {
        ServerWitness::Holds {
            server_seq: head.head_seq,
        }
    } else {
        ServerWitness::Differs {
            seq: head.head_seq,
            server_checksum: head.head_checksum.clone(),
            local_checksum,
        }
    })
}

/// The lines `verify` prints for `report`: `BROKEN` for a trail a witness contradicts, then one
/// `WITNESS` line per trail saying how far it is witnessed and what is not yet.
pub fn lines(report: &WitnessReport) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((url, Err(why))) = &report.server {
        out.push(format!(
            "WITNESS UNREACHABLE server of record {url}: {why}; the local trails were NOT \
             compared with the server's heads"
        ));
    }
    for t in &report.trails {
        match &t.server {
            Some(ServerWitness::Shorter {
                local_seq,
                server_seq,
            }) => out.push(format!(
                "BROKEN {}: shorter than the server of record's witnessed head: the local trail \
                 ends at seq {local_seq}, the server holds seq {server_seq} (records {}..={server_seq} \
                 missing here: deleted, or an older copy restored)",
                t.trail,
                local_seq + 1
            )),
            Some(ServerWitness::Differs {
                seq,
                server_checksum,
                local_checksum,
            }) => out.push(format!(
                "BROKEN {}: record {seq} differs from the one the server of record witnessed \
                 (server {server_checksum}, here {local_checksum})",
                t.trail
            )),
            _ => {}
        }
        let by = match (&t.server, t.anchored_seq) {
            (Some(ServerWitness::Holds { server_seq }), a) if *server_seq >= a => {
                "server of record"
            }
            (_, a) if a > 0 => "notary anchor",
            _ => "nothing",
        };
        let tail = if t.unwitnessed == 0 {
            "nothing unwitnessed".to_owned()
        } else {
            format!(
                "{} record(s) not yet witnessed{}",
                t.unwitnessed,
                t.oldest_unwitnessed
                    .map(|at| format!(", the oldest recorded {}", at.to_canonical()))
                    .unwrap_or_default()
            )
        };
        out.push(format!(
            "WITNESS {}: head {}, witnessed up to seq {} ({by}); {tail}",
            t.trail,
            t.local_seq,
            t.witnessed_seq()
        ));
    }
    out
}

/// The `SYSTEM` event recorded at start-up for each trail the server of record holds more of
/// (or differently) than the store: a tail was removed, or an older copy was restored.
pub const WITNESS_AHEAD_EVENT: &str = "WITNESS_AHEAD_OF_STORE";

/// How long start-up waits for the server of record's heads before it goes on without them.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The start-up comparison with the witnesses: the notary's newest anchor of each trail (one
/// read per trail) and, when forwarding is configured, the server of record's heads of this
/// edge's trails, asked with the ingest token (`forward.token`, or the secret provider's). Never
/// fails the start: what could not be asked is reported as such.
pub async fn at_start(
    store: &dyn RecordStore,
    notary: &dyn Notary,
    secrets: &dyn relay_domain::ports::SecretProvider,
    forward: Option<&crate::forwarder::ForwardSettings>,
) -> WitnessReport {
    let Some(forward) = forward else {
        return match check(store, notary, None, None).await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "the store could not be compared with the notary at start-up");
                WitnessReport {
                    trails: Vec::new(),
                    server: None,
                }
            }
        };
    };
    let mut settings = forward.clone();
    settings.request_timeout = START_TIMEOUT;
    let heads = if settings.token.is_empty() {
        match crate::forwarder::load_forward_token(secrets).await {
            Ok(token) => {
                settings.token = token;
                crate::forwarder::witnessed_heads(&settings).await
            }
            Err(e) => Err(format!("no ingest token: {e}")),
        }
    } else {
        crate::forwarder::witnessed_heads(&settings).await
    };
    let url = settings.url.clone();
    match check(store, notary, None, Some((url.clone(), heads))).await {
        Ok(report) => report,
        Err(e) => WitnessReport {
            trails: Vec::new(),
            server: Some((url, Err(format!("the store could not be compared: {e}")))),
        },
    }
}

/// The `witness` section of the `STARTUP` posture.
pub fn posture(report: &WitnessReport) -> serde_json::Value {
    let contradicted: Vec<serde_json::Value> = report
        .trails
        .iter()
        .filter_map(|t| match &t.server {
            Some(ServerWitness::Shorter {
                local_seq,
                server_seq,
            }) => Some(serde_json::json!({
                "trail": t.trail.as_str(), "local_seq": local_seq, "server_seq": server_seq,
            })),
            Some(ServerWitness::Differs { seq, .. }) => Some(serde_json::json!({
                "trail": t.trail.as_str(), "differs_at": seq,
            })),
            _ if t.notary_ahead() => Some(serde_json::json!({
                "trail": t.trail.as_str(), "local_seq": t.local_seq, "anchored_seq": t.anchored_seq,
            })),
            _ => None,
        })
        .collect();
    serde_json::json!({
        "server": report.server.as_ref().map(|(url, _)| url),
        "asked": report.server.as_ref().is_some_and(|(_, r)| r.is_ok()),
        "error": report.server.as_ref().and_then(|(_, r)| r.as_ref().err()),
        "holds": report.holds(),
        "contradicted": contradicted,
    })
}

/// Makes a store behind a witness (the server of record, or the notary) loud at start-up: an
/// error log and one `SYSTEM` event [`WITNESS_AHEAD_EVENT`] per contradicted trail. Returns the journal's error if an event
/// could not be recorded.
pub async fn report_at_start(
    report: &WitnessReport,
    journal: &crate::journal::Journal,
) -> Result<(), relay_domain::AppendError> {
    if let Some((url, Err(why))) = &report.server {
        tracing::warn!(server = %url, reason = %why,
            "the server of record's heads could not be read at start-up; not compared");
    }
    for t in &report.trails {
        let payload = match &t.server {
            Some(ServerWitness::Shorter {
                local_seq,
                server_seq,
            }) => serde_json::json!({
                "trail": t.trail.as_str(),
                "local_seq": local_seq,
                "server_seq": server_seq,
                "missing": format!("{}..={server_seq}", local_seq + 1),
                "detail": "the server of record holds records of this trail the store does not: \
                           a tail was removed here, or an older copy was restored",
            }),
            Some(ServerWitness::Differs {
                seq,
                server_checksum,
                local_checksum,
            }) => serde_json::json!({
                "trail": t.trail.as_str(),
                "differs_at": seq,
                "server_checksum": server_checksum,
                "local_checksum": local_checksum,
                "detail": "the store's record differs from the one the server of record holds",
            }),
            _ if t.notary_ahead() => serde_json::json!({
                "trail": t.trail.as_str(),
                "local_seq": t.local_seq,
                "anchored_seq": t.anchored_seq,
                "missing": format!("{}..={}", t.local_seq + 1, t.anchored_seq),
                "detail": "the notary holds an anchor of this trail beyond the store's head: a \
                           tail was removed here, or an older copy was restored",
            }),
            _ => continue,
        };
        tracing::error!(trail = %t.trail, payload = %payload,
            "A WITNESS HOLDS MORE OF THIS TRAIL THAN THE STORE (records removed or an older copy \
             restored); `verify` reports it BROKEN");
        journal.system(WITNESS_AHEAD_EVENT, payload).await?;
    }
    Ok(())
}
