//! Orchestration: one task owns the capture state (index, pending files, running jobs) and reacts
//! to watcher signals, ticks, scan reports and finished jobs. Hashing runs on blocking threads,
//! appends run as concurrent tasks (so the append service can group-commit them), and the index
//! changes only from records the store acknowledged.
//!
//! Why this file is long (~1,250 lines): the capture state machine is one actor, and its
//! handlers share that state; splitting them across files would spread one invariant (a file is
//! marked captured only after its record was acknowledged) over several. About half of it is the
//! unit tests of that machine.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use relay_domain::record::PayloadError;
use relay_domain::{ActorSource, AppendError, AppendService, EventKind, Record, Subject};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{self, JoinError, JoinHandle, JoinSet};
use tokio::time::{self, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::beneath;
use crate::config::{CaptureConfig, DETECTED_BY_REHASH_AUDIT, MAX_RETRY_BACKOFF};
use crate::error::{CaptureError, CaptureFailure, FailureReason};
use crate::event::{EventContext, subject_lossy};
use crate::hash::{FileDigest, HashOutcome, hash_settled};
use crate::index::{CaptureIndex, FailureKey, IndexEntry};
use crate::paths::{FileKey, Located, PathRejection, Roots};
use crate::scan::{ScanProblemKind, ScanReport, ScanScope, walk};
use crate::settle::{SettleTracker, Settled};
use crate::stat::{FileKind, FileStat, Seen};
use crate::stats::CaptureStats;
use crate::watcher::{FolderWatcher, SIGNAL_QUEUE, WatchSignal};

/// The most captures and appends running at once; further settled files wait in `ready`.
const MAX_JOBS: usize = 256;

/// The most files stat'ed per tick (one blocking call of a few milliseconds). Observing is
/// not bounded by [`MAX_JOBS`]: a burst of files settles at the rate they can be stat'ed, and
/// the settled ones queue for a job slot instead of waiting for later ticks to be looked at.
const OBSERVE_PER_TICK: usize = 4096;

/// The shortest wait between two settle ticks when the next one is timed to the end of the
/// earliest settle window (each tick is one pass over the pending files).
const MIN_TICK: Duration = Duration::from_millis(20);

/// The subject used for problems with a root folder itself.
const ROOT_SUBJECT: &str = ".";

/// Starts capture. See [`Capture::start`].
#[derive(Debug)]
pub struct Capture;

impl Capture {
    /// Derives the capture index from the trail, starts watching every root, and starts the
    /// capture task, whose first act is a full rescan reconciling disk with the trail.
    ///
    /// Must be called within a Tokio runtime. Events go to `config.trail_id` through `append`;
    /// the index is read from `append.store()`.
    pub async fn start(
        config: CaptureConfig,
        append: Arc<AppendService>,
    ) -> Result<CaptureHandle, CaptureError> {
        config.validate()?;
        let roots = Arc::new(Roots::resolve(&config.roots)?);
        let index = CaptureIndex::load(append.store().as_ref(), &config.trail_id, &roots)
            .await
            .map_err(|source| CaptureError::Index {
                trail_id: config.trail_id.clone(),
                source,
            })?;
        let (signal_tx, signals) = mpsc::channel(SIGNAL_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let watcher = FolderWatcher::start(&roots, signal_tx, overflow.clone())?;
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (stats_tx, stats_rx) = watch::channel(CaptureStats::default());
        info!(
            trail = %config.trail_id,
            roots = ?roots.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
            indexed = index.len(),
            settle_ms = config.settle.as_millis() as u64,
            rehash_secs = config.rehash_interval.map(|d| d.as_secs()),
            "capture started"
        );
        let shared = Arc::new(Shared {
            append,
            events: EventContext {
                trail_id: config.trail_id.clone(),
                device: config.device.clone(),
                project: config.project.clone(),
                attribution: config.attribution.clone(),
            },
            roots: roots.clone(),
            hash_slots: Arc::new(Semaphore::new(config.hash_workers)),
            hash_buffer: config.hash_buffer,
        });
        let engine = Engine {
            shared,
            roots,
            index,
            tracker: SettleTracker::new(config.settle),
            busy: HashSet::new(),
            dirty: HashSet::new(),
            ready: VecDeque::new(),
            failing: HashSet::new(),
            retries: HashMap::new(),
            jobs: JoinSet::new(),
            job_tags: HashMap::new(),
            scans: JoinSet::new(),
            want_full: true,
            want_scopes: BTreeSet::new(),
            signals,
            commands,
            overflow,
            watcher: Some(watcher),
            counters: CaptureStats::default(),
            stats_tx,
            poll: config.effective_poll_interval(),
            rescan_every: config.rescan_interval,
            rehash_every: config.rehash_interval,
            audit: Audit {
                parallel: config.hash_workers.saturating_sub(1).max(1),
                ..Audit::default()
            },
            retry_backoff: config.retry_backoff,
            stopping: false,
        };
        let task = tokio::spawn(engine.run());
        Ok(CaptureHandle {
            commands: commands_tx,
            stats: stats_rx,
            task,
        })
    }
}

#[derive(Debug)]
enum Command {
    Rescan,
    Rehash,
    Shutdown,
}

/// A running capture. Dropping it without [`shutdown`](Self::shutdown) also stops capture, but
/// nobody waits for the in-flight work to finish.
#[derive(Debug)]
pub struct CaptureHandle {
    commands: mpsc::UnboundedSender<Command>,
    stats: watch::Receiver<CaptureStats>,
    task: JoinHandle<CaptureStats>,
}

impl CaptureHandle {
    /// The latest progress snapshot.
    pub fn stats(&self) -> CaptureStats {
        *self.stats.borrow()
    }

    /// A receiver that sees every progress snapshot (for metrics or health endpoints).
    pub fn subscribe(&self) -> watch::Receiver<CaptureStats> {
        self.stats.clone()
    }

    /// Asks for a full rescan now (e.g. on SIGHUP), in addition to the periodic one.
    pub fn request_rescan(&self) -> Result<(), CaptureError> {
        self.commands
            .send(Command::Rescan)
            .map_err(|_| CaptureError::Stopped("capture task is not running".into()))
    }

    /// Asks for a re-hash audit now: every captured file whose size, mtime, ctime and inode
    /// still match the trail is hashed again, and a content difference is recorded as
    /// `FILE_MODIFIED` with `detected_by: "rehash_audit"`. A pass already running is not
    /// restarted.
    pub fn request_rehash(&self) -> Result<(), CaptureError> {
        self.commands
            .send(Command::Rehash)
            .map_err(|_| CaptureError::Stopped("capture task is not running".into()))
    }

    /// Waits until a snapshot satisfies `done`, at most `timeout`.
    pub async fn wait_until(
        &self,
        done: impl FnMut(&CaptureStats) -> bool,
        timeout: Duration,
    ) -> Result<CaptureStats, CaptureError> {
        let mut rx = self.stats.clone();
        match time::timeout(timeout, rx.wait_for(done)).await {
            Ok(Ok(stats)) => Ok(*stats),
            Ok(Err(_)) => Err(CaptureError::Stopped("capture task ended".into())),
            Err(_) => Err(CaptureError::Timeout(timeout)),
        }
    }

    /// Waits until capture is idle (see [`CaptureStats::is_idle`]), at most `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<CaptureStats, CaptureError> {
        self.wait_until(CaptureStats::is_idle, timeout).await
    }

    /// Stops watching, lets every running capture finish (a file already hashed is appended
    /// before this returns), and returns the final counters. Files still settling are left to
    /// the next start's rescan.
    pub async fn shutdown(self) -> Result<CaptureStats, CaptureError> {
        if self.commands.send(Command::Shutdown).is_err() {
            // The task already ended; joining it below says how.
            debug!("capture task had already stopped");
        }
        self.task
            .await
            .map_err(|e| CaptureError::Stopped(format!("capture task failed: {e}")))
    }
}

/// What capture jobs share.
struct Shared {
    append: Arc<AppendService>,
    events: EventContext,
    roots: Arc<Roots>,
    hash_slots: Arc<Semaphore>,
    hash_buffer: usize,
}

/// Why a draft could not be recorded.
#[derive(Debug)]
enum RecordError {
    Append(AppendError),
    Payload(PayloadError),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Append(e) => {
                // With its causes, so a log line says why (e.g. "database or disk is full").
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            RecordError::Payload(e) => write!(f, "payload refused: {e}"),
        }
    }
}

/// How an attempt to capture one settled file ended.
#[derive(Debug)]
enum CaptureOutcome {
    /// `FILE_CREATED` or `FILE_MODIFIED` was appended.
    Recorded(Box<Record>),
    /// Re-hashed; the content is what the trail already holds.
    Unchanged(FileStat),
    /// Not the settled version any more: settle again.
    Changed,
    /// Gone before it could be opened; `FileStat` is the version that settled.
    Vanished(FileStat),
    /// Cannot be captured.
    Failed(CaptureFailure, Option<FileStat>),
    /// Hashed, but the append failed; keep the digest for the retry.
    AppendFailed {
        stat: FileStat,
        digest: FileDigest,
        error: RecordError,
    },
}

enum JobTag {
    File(FileKey, PathBuf),
    Failure(FailureKey),
}

enum JobDone {
    Capture {
        key: FileKey,
        path: PathBuf,
        outcome: CaptureOutcome,
    },
    Delete {
        key: FileKey,
        path: PathBuf,
        result: Result<Box<Record>, RecordError>,
    },
    Failure {
        key: FailureKey,
        path: String,
        result: Result<Box<Record>, RecordError>,
    },
}

/// What a settle tick left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickOutcome {
    /// Every due file was observed.
    Done,
    /// The tick observed as many files as it may; more may be due already.
    MoreDue,
}

enum Step {
    Command(Option<Command>),
    Signal(WatchSignal),
    Job(Result<(task::Id, JobDone), JoinError>),
    Scan(Result<ScanReport, JoinError>),
    Tick,
    PeriodicRescan,
    PeriodicRehash,
}

/// The re-hash audit: captured files queued for a content check, a few at a time.
#[derive(Debug, Default)]
struct Audit {
    /// A pass is running (queued or in flight).
    active: bool,
    /// Files still to check, in subject order.
    queue: VecDeque<FileKey>,
    /// Files being checked now.
    running: HashSet<FileKey>,
    /// How many audit checks may run at once.
    parallel: usize,
    /// Files checked and changes recorded in this pass.
    checked: u64,
    changed: u64,
}

/// Waits for the next tick of an optional interval; never, when there is none.
async fn tick_opt(interval: &mut Option<time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

struct Engine {
    shared: Arc<Shared>,
    roots: Arc<Roots>,
    index: CaptureIndex,
    tracker: SettleTracker,
    /// Files with a capture or delete job running.
    busy: HashSet<FileKey>,
    /// Busy files that saw activity meanwhile: look again when the job ends.
    dirty: HashSet<FileKey>,
    /// Settled files waiting for a job slot, oldest first (their keys are in `busy`).
    ready: VecDeque<(FileKey, Settled)>,
    /// Failures being appended.
    failing: HashSet<FailureKey>,
    retries: HashMap<FileKey, u32>,
    jobs: JoinSet<JobDone>,
    job_tags: HashMap<task::Id, JobTag>,
    scans: JoinSet<ScanReport>,
    want_full: bool,
    want_scopes: BTreeSet<ScanScope>,
    signals: mpsc::Receiver<WatchSignal>,
    commands: mpsc::UnboundedReceiver<Command>,
    overflow: Arc<AtomicBool>,
    watcher: Option<FolderWatcher>,
    counters: CaptureStats,
    stats_tx: watch::Sender<CaptureStats>,
    poll: Duration,
    rescan_every: Duration,
    rehash_every: Option<Duration>,
    audit: Audit,
    retry_backoff: Duration,
    stopping: bool,
}

impl Engine {
    fn trail(&self) -> &relay_domain::TrailId {
        &self.shared.events.trail_id
    }

    async fn run(mut self) -> CaptureStats {
        let mut tick = time::interval(self.poll);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When the settle tick fires next (at the latest): ticks are only ever moved earlier.
        let mut next_tick = Instant::now();
        let mut rescan =
            time::interval_at(time::Instant::now() + self.rescan_every, self.rescan_every);
        rescan.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rehash = self.rehash_every.map(|every| {
            let mut i = time::interval_at(time::Instant::now() + every, every);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        loop {
            self.start_scan_if_wanted();
            self.publish();
            let step = tokio::select! {
                command = self.commands.recv() => Step::Command(command),
                Some(signal) = self.signals.recv() => Step::Signal(signal),
                Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => Step::Job(done),
                Some(report) = self.scans.join_next(), if !self.scans.is_empty() => Step::Scan(report),
                _ = tick.tick() => Step::Tick,
                _ = rescan.tick() => Step::PeriodicRescan,
                _ = tick_opt(&mut rehash) => Step::PeriodicRehash,
            };
            match step {
                Step::Command(Some(Command::Rescan)) | Step::PeriodicRescan => {
                    self.want_full = true
                }
                Step::Command(Some(Command::Rehash)) | Step::PeriodicRehash => {
                    self.start_audit_pass();
                    self.continue_audit();
                }
                // A dropped handle stops capture like a shutdown.
                Step::Command(Some(Command::Shutdown) | None) => break,
                Step::Signal(signal) => {
                    let pending = self.tracker.len();
                    self.on_signal(signal);
                    // A new file's first look (which starts its settle window) comes at once,
                    // not up to a poll interval later.
                    let soon = Instant::now() + MIN_TICK;
                    if self.tracker.len() > pending && next_tick > soon {
                        tick.reset_at(time::Instant::from_std(soon));
                        next_tick = soon;
                    }
                }
                Step::Job(done) => {
                    self.on_job(done);
                    self.start_ready();
                    self.continue_audit();
                }
                Step::Scan(report) => self.on_scan(report),
                Step::Tick => {
                    // A burst leaves more files due than one tick observes: look again at
                    // once instead of a poll interval later, so observing keeps pace with the
                    // burst (each file still waits its whole settle window).
                    next_tick = Instant::now() + self.poll;
                    match self.on_tick().await {
                        TickOutcome::MoreDue => {
                            tick.reset_immediately();
                            next_tick = Instant::now();
                        }
                        // The next tick when the earliest settle window ends, rather than up
                        // to a poll interval after it (never sooner than MIN_TICK from now).
                        TickOutcome::Done => {
                            if let Some(at) = self.tracker.next_check() {
                                let at = at.max(Instant::now() + MIN_TICK);
                                if at < next_tick {
                                    tick.reset_at(time::Instant::from_std(at));
                                    next_tick = at;
                                }
                            }
                        }
                    }
                }
            }
        }
        self.stop().await
    }

    async fn stop(mut self) -> CaptureStats {
        self.stopping = true;
        // Stop the watch first: nothing new is looked at from here on.
        self.watcher = None;
        // A walk cannot be interrupted; its report is no longer needed.
        self.scans.detach_all();
        // Settled files still waiting for a slot: those with a digest get their one more try
        // below; the rest are picked up by the next start's rescan.
        let waiting = std::mem::take(&mut self.ready);
        if !waiting.is_empty() {
            warn!(trail = %self.trail(), files = waiting.len(),
                "settled files not recorded before shutdown; the next start's rescan captures them");
        }
        for (key, settled) in waiting {
            self.busy.remove(&key);
            if let (Some(cached), Seen::Present(stat)) = (settled.cached, &settled.seen) {
                self.spawn_capture(key, settled.path, *stat, Some(cached));
            }
        }
        // Digests already computed but not yet appended: one more try before returning.
        for (key, path, stat, digest) in self.tracker.with_cached_digest() {
            if !self.busy.contains(&key) {
                self.spawn_capture(key, path, stat, Some((stat, digest)));
            }
        }
        while let Some(done) = self.jobs.join_next_with_id().await {
            self.on_job(done);
        }
        self.publish();
        let stats = *self.stats_tx.borrow();
        info!(
            trail = %self.trail(),
            captured = stats.captured,
            modified = stats.modified,
            deleted = stats.deleted,
            failed = stats.failed,
            left_pending = stats.pending,
            "capture stopped"
        );
        stats
    }

    fn publish(&mut self) {
        let mut snapshot = self.counters;
        snapshot.pending = self.tracker.len() + self.ready.len();
        snapshot.in_flight = self.jobs.len();
        snapshot.auditing = self.audit.queue.len() + self.audit.running.len();
        snapshot.scanning = !self.scans.is_empty()
            || (!self.stopping && (self.want_full || !self.want_scopes.is_empty()));
        self.stats_tx.send_if_modified(|current| {
            if *current == snapshot {
                false
            } else {
                *current = snapshot;
                true
            }
        });
    }

    fn start_scan_if_wanted(&mut self) {
        if self.stopping || !self.scans.is_empty() {
            return;
        }
        let (scopes, full) = if self.want_full {
            let all = (0..self.roots.len())
                .map(|root| ScanScope { root, under: None })
                .collect();
            (all, true)
        } else if !self.want_scopes.is_empty() {
            (
                std::mem::take(&mut self.want_scopes).into_iter().collect(),
                false,
            )
        } else {
            return;
        };
        self.want_full = false;
        self.want_scopes.clear();
        debug!(trail = %self.trail(), full, "scan started");
        let roots = self.roots.clone();
        self.scans
            .spawn_blocking(move || walk(&roots, scopes, full));
    }

    // ---- watcher signals ----

    fn on_signal(&mut self, signal: WatchSignal) {
        let now = Instant::now();
        match signal {
            WatchSignal::Rescan { why } => {
                warn!(trail = %self.trail(), why = %why, "events may have been lost; full rescan");
                self.counters.watcher_rescans += 1;
                self.want_full = true;
            }
            WatchSignal::Activity(paths) => {
                for path in paths {
                    self.on_path(path, now);
                }
            }
            WatchSignal::Renamed { from, to } => {
                if let Located::Under(key) = self.roots.locate(&from) {
                    self.tracker.mark_renamed(&key);
                }
                self.on_path(to, now);
            }
        }
    }

    fn on_path(&mut self, path: PathBuf, now: Instant) {
        match self.roots.locate(&path) {
            Located::Under(key) => {
                if self.busy.contains(&key) {
                    self.dirty.insert(key);
                } else {
                    self.tracker.touch(key, path, None, now);
                }
            }
            // The root itself changed (removed, moved, permissions): look at all of it.
            Located::Root(root) => {
                self.want_scopes.insert(ScanScope { root, under: None });
            }
            Located::Rejected(root, rejection) => {
                let rel = self
                    .roots
                    .get(root)
                    .and_then(|r| path.strip_prefix(&r.path).ok())
                    .map_or_else(
                        || path.to_string_lossy().into_owned(),
                        |p| p.to_string_lossy().into_owned(),
                    );
                let reason = match rejection {
                    PathRejection::NotUtf8 => FailureReason::NonUtf8Path,
                    _ => FailureReason::UnsafePath,
                };
                self.record_failure(
                    Some(root),
                    &rel,
                    CaptureFailure::new(reason, format!("{rejection}: {rel:?}")),
                    None,
                );
            }
            Located::Outside => self.record_failure(
                None,
                &path.to_string_lossy(),
                CaptureFailure::new(
                    FailureReason::OutsideRoots,
                    "path lies outside every watched root",
                ),
                None,
            ),
        }
    }

    // ---- settling ----

    /// Observes the pending files that are due (at most [`OBSERVE_PER_TICK`]) and says
    /// whether more may be due already.
    async fn on_tick(&mut self) -> TickOutcome {
        if self.overflow.swap(false, Ordering::SeqCst) {
            warn!(trail = %self.trail(), "watcher signal queue overflowed; full rescan");
            self.counters.watcher_rescans += 1;
            self.want_full = true;
        }
        if self.stopping {
            return TickOutcome::Done;
        }
        let due = self.tracker.due(Instant::now(), OBSERVE_PER_TICK);
        if due.is_empty() {
            return TickOutcome::Done;
        }
        let outcome = if due.len() >= OBSERVE_PER_TICK {
            TickOutcome::MoreDue
        } else {
            TickOutcome::Done
        };
        let roots = self.roots.clone();
        let observed = task::spawn_blocking(move || {
            due.into_iter()
                .map(|(key, path)| {
                    let seen = roots
                        .get(key.root)
                        .map_or(Seen::Missing, |root| Seen::observe(&root.path, &key.rel));
                    (key, path, seen)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let observed = match observed {
            Ok(observed) => observed,
            Err(e) => {
                error!(trail = %self.trail(), error = %e, "stat task failed; retrying next tick");
                return TickOutcome::Done;
            }
        };
        let now = Instant::now();
        for (key, path, seen) in observed {
            if self.busy.contains(&key) {
                self.tracker.remove(&key);
                self.dirty.insert(key);
                continue;
            }
            // A folder is walked at once rather than settled: files moved in with it have no
            // events of their own.
            if matches!(&seen, Seen::Present(s) if s.kind == FileKind::Dir) {
                self.tracker.remove(&key);
                if self.index.live(&key).is_some() {
                    self.spawn_delete(key.clone(), path);
                }
                self.want_scopes.insert(ScanScope {
                    root: key.root,
                    under: Some(key.rel),
                });
                continue;
            }
            if let Some(settled) = self.tracker.observe(&key, seen, now) {
                if self.ready.is_empty() && self.jobs.len() < MAX_JOBS {
                    self.on_settled(key, settled);
                } else {
                    self.busy.insert(key.clone());
                    self.ready.push_back((key, settled));
                }
            }
        }
        outcome
    }

    /// Starts queued settled files while job slots are free. A file that saw activity while
    /// it waited settles again instead (its queued observation is stale).
    fn start_ready(&mut self) {
        while self.jobs.len() < MAX_JOBS && !self.stopping {
            let Some((key, settled)) = self.ready.pop_front() else {
                return;
            };
            self.busy.remove(&key);
            if self.dirty.remove(&key) {
                self.tracker
                    .touch(key, settled.path, settled.last_regular, Instant::now());
                continue;
            }
            self.on_settled(key, settled);
        }
    }

    fn on_settled(&mut self, key: FileKey, settled: Settled) {
        let Settled {
            path,
            seen,
            last_regular,
            renamed_away,
            cached,
        } = settled;
        let stat = match seen {
            Seen::Missing => {
                // A folder that vanished (moved out of the root, say) takes its captured files
                // with it; each is confirmed missing over its own window.
                let now = Instant::now();
                for inner in self.index.live_keys_under(key.root, Some(&key.rel)) {
                    if let Some(inner_path) = self.roots.path_of(&inner)
                        && !self.busy.contains(&inner)
                    {
                        self.tracker.seed(inner, inner_path, Seen::Missing, now);
                    }
                }
                if self.index.live(&key).is_some() {
                    self.spawn_delete(key, path);
                } else if let (Some(last), false) = (last_regular, renamed_away) {
                    self.record_failure(
                        Some(key.root),
                        &key.rel,
                        CaptureFailure::new(
                            FailureReason::VanishedBeforeComplete,
                            "file was removed before it was complete",
                        ),
                        Some(last),
                    );
                }
                return;
            }
            Seen::Unreadable { kind, message } => {
                let reason = if kind == io::ErrorKind::PermissionDenied {
                    FailureReason::PermissionDenied
                } else {
                    FailureReason::Io
                };
                self.record_failure(
                    Some(key.root),
                    &key.rel,
                    CaptureFailure::new(reason, format!("stat: {message}")),
                    None,
                );
                return;
            }
            Seen::Present(stat) => stat,
        };
        match stat.kind {
            FileKind::File => {
                if self.index.live(&key).is_some_and(|e| e.matches(&stat)) {
                    self.retries.remove(&key);
                    return;
                }
                self.spawn_capture(key, path, stat, cached);
            }
            FileKind::Symlink | FileKind::Special => {
                if self.index.live(&key).is_some() {
                    // The captured file was replaced by something that cannot be captured.
                    self.spawn_delete(key.clone(), path);
                }
                let failure = if stat.kind == FileKind::Symlink {
                    CaptureFailure::new(
                        FailureReason::Symlink,
                        "symbolic link; links are not followed",
                    )
                } else {
                    CaptureFailure::new(
                        FailureReason::NotRegularFile,
                        "FIFO, socket or device, not a regular file",
                    )
                };
                self.record_failure(Some(key.root), &key.rel, failure, Some(stat));
            }
            FileKind::Dir => {
                self.want_scopes.insert(ScanScope {
                    root: key.root,
                    under: Some(key.rel),
                });
            }
        }
    }

    // ---- scans ----

    fn on_scan(&mut self, report: Result<ScanReport, JoinError>) {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                error!(trail = %self.trail(), error = %e, "scan task failed; the periodic rescan will retry");
                return;
            }
        };
        self.counters.scans_completed += 1;
        if report.full {
            self.counters.full_scans_completed += 1;
        }
        debug!(trail = %self.trail(), full = report.full, items = report.items.len(), "scan finished");
        let now = Instant::now();
        let mut on_disk = HashSet::with_capacity(report.items.len());
        for item in report.items.iter() {
            on_disk.insert(item.key.clone());
            if self.busy.contains(&item.key) {
                self.dirty.insert(item.key.clone());
                continue;
            }
            if let Seen::Present(stat) = &item.seen
                && stat.kind == FileKind::File
                && self.index.live(&item.key).is_some_and(|e| e.matches(stat))
            {
                continue;
            }
            self.tracker
                .seed(item.key.clone(), item.path.clone(), item.seen.clone(), now);
        }
        for problem in &report.problems {
            let rel = if problem.rel.is_empty() {
                ROOT_SUBJECT
            } else {
                problem.rel.as_str()
            };
            let failure = match &problem.kind {
                ScanProblemKind::Unlistable(e) => CaptureFailure::io("list folder", e),
                ScanProblemKind::NonUtf8 => {
                    CaptureFailure::new(FailureReason::NonUtf8Path, "name is not valid UTF-8")
                }
                ScanProblemKind::RootUnavailable(why) => {
                    CaptureFailure::new(FailureReason::RootUnavailable, why.clone())
                }
            };
            self.record_failure(Some(problem.root), rel, failure, None);
        }
        // Captured files the walk did not find may be gone: confirm over a settle window.
        for scope in &report.scopes {
            for key in self
                .index
                .live_keys_under(scope.root, scope.under.as_deref())
            {
                if on_disk.contains(&key)
                    || self.busy.contains(&key)
                    || report.blind_to(key.root, &key.rel)
                {
                    continue;
                }
                if let Some(path) = self.roots.path_of(&key) {
                    self.tracker.seed(key, path, Seen::Missing, now);
                }
            }
        }
    }

    // ---- jobs ----

    fn spawn_capture(
        &mut self,
        key: FileKey,
        path: PathBuf,
        stat: FileStat,
        cached: Option<(FileStat, FileDigest)>,
    ) {
        let prior = self.index.entry(&key).cloned();
        self.busy.insert(key.clone());
        let shared = self.shared.clone();
        let (k, p) = (key.clone(), path.clone());
        let handle = self.jobs.spawn(async move {
            let outcome = capture_file(&shared, &k, stat, prior, cached, None).await;
            JobDone::Capture {
                key: k,
                path: p,
                outcome,
            }
        });
        self.job_tags.insert(handle.id(), JobTag::File(key, path));
    }

    fn spawn_delete(&mut self, key: FileKey, path: PathBuf) {
        let Some(prior) = self.index.live(&key).cloned() else {
            return;
        };
        let Some(root) = self.roots.get(key.root).map(|r| r.label.clone()) else {
            return;
        };
        self.busy.insert(key.clone());
        let shared = self.shared.clone();
        let (k, p) = (key.clone(), path.clone());
        let handle = self.jobs.spawn(async move {
            let subject = subject_lossy(&k.rel);
            let who = shared.events.attribute(prior.owner_uid).await;
            let result = match shared.events.file_deleted(&root, subject, &prior, &who) {
                Ok(draft) => shared
                    .append
                    .append(draft)
                    .await
                    .map(Box::new)
                    .map_err(RecordError::Append),
                Err(e) => Err(RecordError::Payload(e)),
            };
            JobDone::Delete {
                key: k,
                path: p,
                result,
            }
        });
        self.job_tags.insert(handle.id(), JobTag::File(key, path));
    }

    /// Appends a `CAPTURE_FAILED` unless the same failure (path, reason, file version) is already
    /// in the trail or on its way there.
    fn record_failure(
        &mut self,
        root: Option<usize>,
        rel: &str,
        failure: CaptureFailure,
        stat: Option<FileStat>,
    ) {
        let root_label = root
            .and_then(|i| self.roots.get(i))
            .map(|r| r.label.clone());
        let subject = subject_lossy(rel);
        let key = FailureKey {
            root: root_label.clone(),
            subject: subject.as_str().to_owned(),
            reason: failure.reason.code().to_owned(),
            size: stat.map(|s| s.size),
            mtime: stat.map(|s| s.mtime_text()),
        };
        if self.index.has_failure(&key) || self.failing.contains(&key) {
            debug!(trail = %self.trail(), path = %subject, reason = %failure.reason, "failure already recorded");
            return;
        }
        warn!(trail = %self.trail(), path = %subject, reason = %failure.reason, detail = %failure.detail, "file cannot be captured");
        self.failing.insert(key.clone());
        let shared = self.shared.clone();
        let k = key.clone();
        let handle = self.jobs.spawn(async move {
            let path = subject.as_str().to_owned();
            let who = shared.events.attribute(stat.map(|s| s.uid)).await;
            let result = match shared.events.capture_failed(
                root_label.as_deref(),
                subject,
                &failure,
                stat.as_ref(),
                &who,
            ) {
                Ok(draft) => shared
                    .append
                    .append(draft)
                    .await
                    .map(Box::new)
                    .map_err(RecordError::Append),
                Err(e) => Err(RecordError::Payload(e)),
            };
            JobDone::Failure {
                key: k,
                path,
                result,
            }
        });
        self.job_tags.insert(handle.id(), JobTag::Failure(key));
    }

    fn on_job(&mut self, done: Result<(task::Id, JobDone), JoinError>) {
        let done = match done {
            Ok((id, done)) => {
                self.job_tags.remove(&id);
                done
            }
            Err(e) => {
                error!(trail = %self.trail(), error = %e, "capture job failed");
                match self.job_tags.remove(&e.id()) {
                    Some(JobTag::File(key, path)) => {
                        self.audit.running.remove(&key);
                        self.retry_later(key, path, None)
                    }
                    Some(JobTag::Failure(key)) => {
                        self.failing.remove(&key);
                    }
                    None => {}
                }
                return;
            }
        };
        let now = Instant::now();
        match done {
            JobDone::Capture { key, path, outcome } => {
                if self.audit.running.remove(&key) {
                    self.counters.rehashed += 1;
                    self.audit.checked += 1;
                    if matches!(&outcome, CaptureOutcome::Recorded(_)) {
                        self.audit.changed += 1;
                    }
                }
                self.on_capture_done(key, path, outcome, now);
            }
            JobDone::Delete { key, path, result } => match result {
                Ok(record) => {
                    self.counters.deleted += 1;
                    self.count_attribution(&record);
                    info!(trail = %record.trail_id, seq = %record.chain_seq, kind = %record.kind, path = %key.rel, "file recorded");
                    self.index.apply(&self.roots, &record);
                    self.finish(key, path, now);
                }
                Err(error) => {
                    self.counters.append_errors += 1;
                    error!(trail = %self.trail(), path = %key.rel, error = %error, "append failed; deletion will be retried");
                    self.retry_later(key, path, None);
                }
            },
            JobDone::Failure { key, path, result } => {
                self.failing.remove(&key);
                match result {
                    Ok(record) => {
                        self.counters.failed += 1;
                        self.count_attribution(&record);
                        info!(trail = %record.trail_id, seq = %record.chain_seq, kind = %record.kind, path = %path, "failure recorded");
                        self.index.apply(&self.roots, &record);
                    }
                    Err(error) => {
                        self.counters.append_errors += 1;
                        error!(trail = %self.trail(), path = %path, error = %error, "append of a capture failure failed; the next rescan retries");
                    }
                }
            }
        }
    }

    /// Counts a capture record no person could be attributed to: capture writes the `service`
    /// source only then (its payload says `"unattributed": true`).
    fn count_attribution(&mut self, record: &Record) {
        if record.actor_source == ActorSource::Service {
            self.counters.unattributed += 1;
            // Debug, not warn: one line per capture would flood the log of a relay that is
            // expected to record them (warned once at start-up; counted in the metric).
            debug!(trail = %record.trail_id, seq = %record.chain_seq, kind = %record.kind, "no person could be attributed; recorded as the service identity (unattributed)");
        }
    }

    fn on_capture_done(
        &mut self,
        key: FileKey,
        path: PathBuf,
        outcome: CaptureOutcome,
        now: Instant,
    ) {
        match outcome {
            CaptureOutcome::Recorded(record) => {
                if record.kind == EventKind::file_modified() {
                    self.counters.modified += 1;
                } else {
                    self.counters.captured += 1;
                }
                self.count_attribution(&record);
                info!(trail = %record.trail_id, seq = %record.chain_seq, kind = %record.kind, path = %key.rel, "file recorded");
                self.index.apply(&self.roots, &record);
                self.finish(key, path, now);
            }
            CaptureOutcome::Unchanged(stat) => {
                debug!(trail = %self.trail(), path = %key.rel, "content unchanged; nothing recorded");
                self.counters.unchanged += 1;
                self.index.note_unchanged(&key, &stat);
                self.finish(key, path, now);
            }
            CaptureOutcome::Changed => {
                self.busy.remove(&key);
                self.dirty.remove(&key);
                self.tracker.touch(key, path, None, now);
            }
            CaptureOutcome::Vanished(stat) => {
                self.busy.remove(&key);
                self.dirty.remove(&key);
                self.tracker.touch(key, path, Some(stat), now);
            }
            CaptureOutcome::Failed(failure, stat) => {
                let vanished = failure.reason == FailureReason::VanishedMidHash;
                self.record_failure(Some(key.root), &key.rel, failure, stat);
                if vanished {
                    // If it was a captured file, its deletion is recorded once confirmed.
                    self.busy.remove(&key);
                    self.dirty.remove(&key);
                    self.tracker.touch(key, path, None, now);
                } else {
                    self.finish(key, path, now);
                }
            }
            CaptureOutcome::AppendFailed {
                stat,
                digest,
                error,
            } => {
                self.counters.append_errors += 1;
                error!(trail = %self.trail(), path = %key.rel, error = %error, "append failed; capture will be retried");
                self.retry_later(key, path, Some((stat, digest)));
            }
        }
    }

    // ---- re-hash audit ----

    /// Queues every live captured file for a content check, unless a pass is running.
    fn start_audit_pass(&mut self) {
        if self.audit.active || self.stopping {
            debug!(trail = %self.trail(), "re-hash audit already running");
            return;
        }
        self.audit.queue = self.index.live_keys().into();
        self.audit.active = true;
        self.audit.checked = 0;
        self.audit.changed = 0;
        info!(trail = %self.trail(), files = self.audit.queue.len(), "re-hash audit started");
    }

    /// Starts audit checks while the audit's share of hash workers is free, and notes the end of
    /// a pass.
    fn continue_audit(&mut self) {
        if !self.audit.active {
            return;
        }
        while !self.stopping
            && self.audit.running.len() < self.audit.parallel
            && self.jobs.len() < MAX_JOBS
        {
            let Some(key) = self.audit.queue.pop_front() else {
                break;
            };
            // A file with activity of its own is settled and hashed by the ordinary path.
            if self.busy.contains(&key) || self.tracker.contains(&key) {
                continue;
            }
            self.spawn_audit(key);
        }
        if self.audit.queue.is_empty() && self.audit.running.is_empty() {
            self.audit.active = false;
            self.counters.rehash_audits_completed += 1;
            info!(
                trail = %self.trail(),
                checked = self.audit.checked,
                changed = self.audit.changed,
                "re-hash audit finished"
            );
        }
    }

    fn spawn_audit(&mut self, key: FileKey) {
        let Some(prior) = self.index.live(&key).cloned() else {
            return;
        };
        let Some(path) = self.roots.path_of(&key) else {
            return;
        };
        self.busy.insert(key.clone());
        self.audit.running.insert(key.clone());
        let shared = self.shared.clone();
        let (k, p) = (key.clone(), path.clone());
        let handle = self.jobs.spawn(async move {
            let outcome = audit_file(&shared, &k, prior).await;
            JobDone::Capture {
                key: k,
                path: p,
                outcome,
            }
        });
        self.job_tags.insert(handle.id(), JobTag::File(key, path));
    }

    /// A job for `key` ended for good: release it, and look again if it saw activity meanwhile.
    fn finish(&mut self, key: FileKey, path: PathBuf, now: Instant) {
        self.busy.remove(&key);
        self.retries.remove(&key);
        if self.dirty.remove(&key) {
            self.tracker.touch(key, path, None, now);
        }
    }

    fn retry_later(&mut self, key: FileKey, path: PathBuf, cached: Option<(FileStat, FileDigest)>) {
        self.busy.remove(&key);
        self.dirty.remove(&key);
        if self.stopping {
            error!(trail = %self.trail(), path = %key.rel, "not recorded before shutdown; the next start's rescan captures it");
            return;
        }
        let attempts = self.retries.entry(key.clone()).or_insert(0);
        let delay = self
            .retry_backoff
            .saturating_mul(1u32 << (*attempts).min(6))
            .min(MAX_RETRY_BACKOFF);
        *attempts = attempts.saturating_add(1);
        self.tracker
            .retry(key, path, cached, Instant::now() + delay);
    }
}

/// Hashes a settled file (or reuses a digest whose append failed) and appends its event.
async fn capture_file(
    shared: &Shared,
    key: &FileKey,
    expect: FileStat,
    prior: Option<IndexEntry>,
    cached: Option<(FileStat, FileDigest)>,
    detected_by: Option<&'static str>,
) -> CaptureOutcome {
    let Some(root) = shared.roots.get(key.root) else {
        return CaptureOutcome::Failed(
            CaptureFailure::new(FailureReason::OutsideRoots, "root is not configured"),
            None,
        );
    };
    // A name no subject can hold (e.g. only whitespace) is refused before any byte is read.
    let subject = match Subject::new(key.rel.clone()) {
        Ok(subject) => subject,
        Err(e) => {
            return CaptureOutcome::Failed(
                CaptureFailure::new(FailureReason::UnsafePath, format!("{e}: {:?}", key.rel)),
                Some(expect),
            );
        }
    };
    let hashed = match cached.filter(|(stat, _)| stat.same_version(&expect)) {
        Some((stat, digest)) => {
            let (root_path, rel) = (root.path.clone(), key.rel.clone());
            match task::spawn_blocking(move || beneath::stat(&root_path, &rel)).await {
                Ok(Ok(now)) if now.same_version(&stat) => HashOutcome::Hashed { stat, digest },
                Ok(Ok(_)) => HashOutcome::Changed,
                Ok(Err(e)) if e.is_missing() => HashOutcome::Vanished,
                Ok(Err(e)) => HashOutcome::Failed(CaptureFailure::new(
                    FailureReason::Io,
                    format!("stat: {e}"),
                )),
                Err(e) => {
                    error!(trail = %shared.events.trail_id, path = %key.rel, error = %e, "stat task failed");
                    HashOutcome::Changed
                }
            }
        }
        None => {
            let Ok(permit) = shared.hash_slots.clone().acquire_owned().await else {
                // The semaphore is never closed; settle again rather than guess.
                return CaptureOutcome::Changed;
            };
            let (root_path, rel) = (root.path.clone(), key.rel.clone());
            // Small files do not need the whole buffer; one extra byte lets EOF show in one read.
            let len = usize::try_from(expect.size.saturating_add(1))
                .unwrap_or(usize::MAX)
                .clamp(4096, shared.hash_buffer);
            let result = task::spawn_blocking(move || {
                let _permit = permit;
                let mut buf = vec![0u8; len];
                hash_settled(&root_path, &rel, &expect, &mut buf)
            })
            .await;
            match result {
                Ok(outcome) => outcome,
                Err(e) => {
                    error!(trail = %shared.events.trail_id, path = %key.rel, error = %e, "hash task failed");
                    HashOutcome::Changed
                }
            }
        }
    };
    let (stat, digest) = match hashed {
        HashOutcome::Hashed { stat, digest } => (stat, digest),
        HashOutcome::Changed => return CaptureOutcome::Changed,
        HashOutcome::Vanished => return CaptureOutcome::Vanished(expect),
        HashOutcome::Failed(failure) => return CaptureOutcome::Failed(failure, Some(expect)),
    };
    if let Some(p) = prior.as_ref().filter(|p| !p.deleted)
        && p.sha256 == digest.sha256
    {
        return CaptureOutcome::Unchanged(stat);
    }
    let who = shared.events.attribute(Some(stat.uid)).await;
    let draft = match &prior {
        Some(p) if !p.deleted => {
            shared
                .events
                .file_modified(&root.label, subject, &stat, &digest, p, detected_by, &who)
        }
        _ => shared
            .events
            .file_created(&root.label, subject, &stat, &digest, &who),
    };
    let draft = match draft {
        Ok(draft) => draft,
        Err(e) => {
            return CaptureOutcome::AppendFailed {
                stat,
                digest,
                error: RecordError::Payload(e),
            };
        }
    };
    match shared.append.append(draft).await {
        Ok(record) => CaptureOutcome::Recorded(Box::new(record)),
        Err(e) => CaptureOutcome::AppendFailed {
            stat,
            digest,
            error: RecordError::Append(e),
        },
    }
}

/// One re-hash audit check: if the file still looks like the version the trail holds (size,
/// mtime, ctime, inode), hash it and record a `FILE_MODIFIED` if the content differs. Anything
/// else (gone, replaced, visibly changed) goes back to the ordinary settle path.
async fn audit_file(shared: &Shared, key: &FileKey, prior: IndexEntry) -> CaptureOutcome {
    let Some(root) = shared.roots.get(key.root) else {
        return CaptureOutcome::Changed;
    };
    let (root_path, rel) = (root.path.clone(), key.rel.clone());
    let seen = match task::spawn_blocking(move || Seen::observe(&root_path, &rel)).await {
        Ok(seen) => seen,
        Err(e) => {
            error!(trail = %shared.events.trail_id, path = %key.rel, error = %e, "stat task failed");
            return CaptureOutcome::Changed;
        }
    };
    match seen {
        Seen::Present(stat) if stat.kind == FileKind::File && prior.matches(&stat) => {
            capture_file(
                shared,
                key,
                stat,
                Some(prior),
                None,
                Some(DETECTED_BY_REHASH_AUDIT),
            )
            .await
        }
        _ => CaptureOutcome::Changed,
    }
}
