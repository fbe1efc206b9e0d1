//! Bounds on password checking, so a flood of logins can neither exhaust memory nor bypass the
//! lockout (issue 18):
//!
//! - [`Argon2Gate`]: at most one Argon2 computation per core runs at a time (each takes ~19 MiB
//!   and tens of milliseconds); a short queue waits for a slot, and beyond it the request is
//!   answered 503 with `Retry-After` at once, costing nothing. Checks run [`with_priority`]
//!   (a known client's login, a signed-in user's re-authentication) have a queue of their
//!   own, so a flood that fills the common queue does not refuse them.
//! - [`AccountLocks`]: the checks of one account run one after the other, so N parallel wrong
//!   passwords count N failures and, once the account is locked, a request already in flight
//!   cannot slip a right password through.
//! - [`UnknownFailures`]: failures against usernames that do not exist are counted like those of
//!   real accounts, so a lockout answer does not tell which names exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use relay_domain::Timestamp;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How many Argon2 computations may wait for a slot, per slot.
const QUEUE_PER_SLOT: usize = 16;
/// Most concurrent Argon2 computations whatever the core count: ~19 MiB each, and a relay
/// needs a few dozen logins a second at most, not all its cores hashing.
const MAX_SLOTS: usize = 4;
/// How long a queued computation waits for a slot before it is answered 503.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// A computation handed to a worker thread.
type Job = Box<dyn FnOnce() + Send>;

tokio::task_local! {
    /// Whether the password checks of the current task queue as priority checks.
    static PRIORITY: bool;
}

/// Runs `work` with its password checks queued as priority checks when `priority`: they wait
/// in a queue of their own (as long as the common one), so a flood of other checks filling
/// the common queue does not answer them `busy`, and they wait for a slot behind at most one
/// common check per slot, not behind the whole common queue.
pub(crate) async fn with_priority<T>(priority: bool, work: impl Future<Output = T>) -> T {
    PRIORITY.scope(priority, work).await
}

/// Bounds concurrent Argon2 computations (hashing and verifying) of the whole process.
///
/// The computations run on `slots` dedicated threads, never on the runtime's blocking pool:
/// each Argon2 run allocates ~19 MiB, and the allocator keeps such memory per thread, so
/// runs spread over many pool threads kept hundreds of MiB (16 arenas x 19 MiB) after a
/// flood. A fixed set of threads bounds it to `slots` x 19 MiB.
pub(crate) struct Argon2Gate {
    slots: Semaphore,
    /// Common (not priority) checks hold one of these while they wait for a slot and run, so
    /// at most one per slot stands in the slots' queue ahead of a priority check.
    common: Semaphore,
    waiting: AtomicUsize,
    /// Priority checks waiting (see [`with_priority`]), bounded like `waiting`.
    waiting_priority: AtomicUsize,
    max_waiting: usize,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl std::fmt::Debug for Argon2Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Gate")
            .field("max_waiting", &self.max_waiting)
            .finish_non_exhaustive()
    }
}

impl Argon2Gate {
    /// A gate of `slots` concurrent computations (at least 1) on as many worker threads, and a
    /// queue of [`QUEUE_PER_SLOT`] per slot.
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..slots {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok(job) = job else { return };
                        // A panicking job drops its answer channel (the caller gets an error);
                        // the worker lives on.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a password computation panicked");
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password worker thread");
            }
        }
        Self {
            slots: Semaphore::new(slots),
            common: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            waiting_priority: AtomicUsize::new(0),
            max_waiting: slots * QUEUE_PER_SLOT,
            jobs: Mutex::new(jobs),
        }
    }

    /// A gate of one slot per core, at most [`MAX_SLOTS`].
    pub(crate) fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self::new(cores.min(MAX_SLOTS))
    }

    /// 503 `busy` when the queue a check of the current task would wait in is full: checked
    /// before the account is read, so a flood answered `busy` costs no store read either
    /// ([`run`](Self::run) checks again).
    pub(crate) fn refuse_if_full(&self) -> Result<(), ApiError> {
        let waiting = if PRIORITY.try_with(|p| *p).unwrap_or(false) {
            &self.waiting_priority
        } else {
            &self.waiting
        };
        if waiting.load(Ordering::SeqCst) >= self.max_waiting {
            return Err(busy());
        }
        Ok(())
    }

    /// Runs `work` (blocking, CPU-heavy) on a worker thread once a slot is free. A full queue
    /// (the priority one for a task run [`with_priority`]), or a wait beyond [`MAX_WAIT`], is
    /// 503 `busy` with `Retry-After`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let priority = PRIORITY.try_with(|p| *p).unwrap_or(false);
        let waiting = if priority {
            &self.waiting_priority
        } else {
            &self.waiting
        };
        let queued = waiting.fetch_add(1, Ordering::SeqCst);
        let permits = if queued >= self.max_waiting {
            Err(())
        } else {
            let acquire = async {
                let common = if priority {
                    None
                } else {
                    Some(self.common.acquire().await?)
                };
                Ok::<_, tokio::sync::AcquireError>((common, self.slots.acquire().await?))
            };
            match tokio::time::timeout(MAX_WAIT, acquire).await {
                Ok(Ok(permits)) => Ok(permits),
                _ => Err(()),
            }
        };
        waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(_permits) = permits else {
            tracing::warn!(
                what,
                queued,
                priority,
                "password check refused: every Argon2 slot is busy and the queue is full"
            );
            return Err(busy());
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that left while the job was queued (client disconnected) released its
            // slot: skip the work, so abandoned requests cannot pile up computations.
            if answer.is_closed() {
                tracing::debug!("a password check was abandoned before it ran");
                return;
            }
            // The caller may also leave while it runs; nothing waits for the result then.
            if answer.send(work()).is_err() {
                tracing::debug!("a password check finished after its caller left");
            }
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job);
        if sent.is_err() {
            return Err(ApiError::internal(
                what,
                &std::io::Error::other("no password worker thread is running"),
            ));
        }
        answered.await.map_err(|e| ApiError::internal(what, &e))
    }
}

fn busy() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "too many password checks are in progress; retry shortly",
    );
    e.retry_after = Some(1);
    e
}

/// One async lock per account name, so the password checks of one account are serialized.
#[derive(Debug, Default)]
pub(crate) struct AccountLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl AccountLocks {
    /// Waits for and holds the lock of `username` (an existing account's name: the map grows
    /// with the number of accounts, never with what clients type).
    pub(crate) async fn lock(&self, username: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(username.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Most distinct unknown names tracked; beyond it, expired entries are dropped first, then all.
const UNKNOWN_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct UnknownEntry {
    attempts: u32,
    window_start: Timestamp,
    locked_until: Option<Timestamp>,
}

/// Failure counts of usernames that do not exist, kept like those of real accounts (same
/// threshold, window and lock) so the answers do not reveal which names exist. In memory and
/// bounded: they protect no account, only the answer's shape.
#[derive(Debug, Default)]
pub(crate) struct UnknownFailures {
    entries: Mutex<HashMap<String, UnknownEntry>>,
}

impl UnknownFailures {
    /// Seconds `name` stays locked at `now`, if it is.
    pub(crate) fn locked_for(&self, name: &str, now: Timestamp) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let until = entries.get(&key(name))?.locked_until?;
        (until > now)
            .then(|| u64::try_from((until.micros_since(now) + 999_999) / 1_000_000).unwrap_or(1))
    }

    /// Counts a failure of `name` at `now`; returns whether it reached `threshold` (and is now
    /// locked for `lock_for`).
    pub(crate) fn count(
        &self,
        name: &str,
        now: Timestamp,
        window: Duration,
        threshold: u32,
        lock_for: Duration,
    ) -> bool {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= UNKNOWN_CAPACITY {
            entries.retain(|_, e| {
                now.micros_since(e.window_start) <= micros(window)
                    || e.locked_until.is_some_and(|u| u > now)
            });
            if entries.len() >= UNKNOWN_CAPACITY {
                entries.clear();
            }
        }
        let entry = entries.entry(key(name)).or_insert(UnknownEntry {
            attempts: 0,
            window_start: now,
            locked_until: None,
        });
        if now.micros_since(entry.window_start) > micros(window) {
            entry.attempts = 0;
            entry.window_start = now;
        }
        entry.attempts = entry.attempts.saturating_add(1);
        if entry.attempts >= threshold {
            entry.locked_until =
                Timestamp::from_unix_micros(now.unix_micros().saturating_add(micros(lock_for)))
                    .ok();
            entry.attempts = 0;
            return true;
        }
        false
    }
}

/// The key of a typed name: case-folded and cut to a bounded length.
fn key(name: &str) -> String {
    name.chars()
        .take(256)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + secs * 1_000_000).unwrap()
    }

    // REQ: R3.3
    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_slots_bound_the_running_work() {
        let gate = Arc::new(Argon2Gate::new(1));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let mut tasks = Vec::new();
        // One runs and blocks until released; 16 queue; the 18th finds the queue full.
        for _ in 0..(1 + QUEUE_PER_SLOT) {
            let (gate, running, peak, hold) =
                (gate.clone(), running.clone(), peak.clone(), hold.clone());
            tasks.push(tokio::spawn(async move {
                gate.run("test", move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = hold.lock().unwrap().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // Wait until every task holds its place (one running, the rest queued).
        while gate.waiting.load(Ordering::SeqCst) < QUEUE_PER_SLOT {
            tokio::task::yield_now().await;
        }
        let refused = gate.run("test", || ()).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after, Some(1));
        for _ in 0..=QUEUE_PER_SLOT {
            release.send(()).unwrap();
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            1,
            "one slot: never two at once"
        );
    }

    // REQ: R3.3
    #[tokio::test]
    async fn a_check_abandoned_while_queued_is_never_computed() {
        let gate = Arc::new(Gate1::new());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        // A runs and blocks the only worker; its caller then leaves (the slot is released).
        let a = {
            let (gate, hold) = (gate.0.clone(), hold.clone());
            tokio::spawn(async move {
                gate.run("a", move || {
                    let _ = hold.lock().unwrap().recv();
                })
                .await
            })
        };
        while gate.0.slots.available_permits() != 0 {
            tokio::task::yield_now().await;
        }
        a.abort();
        while gate.0.slots.available_permits() != 1 {
            tokio::task::yield_now().await;
        }
        // B takes the free slot and queues behind A on the worker; its caller leaves too.
        let computed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = {
            let (gate, computed) = (gate.0.clone(), computed.clone());
            tokio::spawn(async move {
                gate.run("b", move || computed.store(true, Ordering::SeqCst))
                    .await
            })
        };
        while gate.0.slots.available_permits() != 0 {
            tokio::task::yield_now().await;
        }
        b.abort();
        while gate.0.slots.available_permits() != 1 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        // C runs after B on the one worker (first in, first out).
        assert_eq!(gate.0.run("c", || 7).await.unwrap(), 7);
        assert!(
            !computed.load(Ordering::SeqCst),
            "an abandoned check was computed"
        );
    }

    // REQ: R3.3
    #[tokio::test]
    async fn a_priority_check_queues_while_the_common_queue_is_full_and_runs_next() {
        let gate = Arc::new(Argon2Gate::new(1));
        let order = Arc::new(AtomicUsize::new(0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let mut tasks = Vec::new();
        for _ in 0..(1 + QUEUE_PER_SLOT) {
            let (gate, hold, order) = (gate.clone(), hold.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                gate.run("flood", move || {
                    let _ = hold.lock().unwrap().recv();
                    order.fetch_add(1, Ordering::SeqCst)
                })
                .await
            }));
        }
        while gate.waiting.load(Ordering::SeqCst) < QUEUE_PER_SLOT {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.run("common", || 0).await.unwrap_err().code,
            "busy",
            "the common queue is full"
        );
        let known = {
            let (gate, order) = (gate.clone(), order.clone());
            tokio::spawn(with_priority(true, async move {
                gate.run("known", move || order.fetch_add(1, Ordering::SeqCst))
                    .await
            }))
        };
        while gate.waiting_priority.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        for _ in 0..=QUEUE_PER_SLOT {
            release.send(()).unwrap();
        }
        assert_eq!(
            known.await.unwrap().unwrap(),
            1,
            "queued, not refused, and run right after the running check"
        );
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }

    /// A one-slot gate.
    struct Gate1(Arc<Argon2Gate>);

    impl Gate1 {
        fn new() -> Self {
            Self(Arc::new(Argon2Gate::new(1)))
        }
    }

    // REQ: R3.3
    #[test]
    fn unknown_names_lock_like_accounts_case_insensitively_and_expire() {
        let f = UnknownFailures::default();
        let (window, lock_for) = (Duration::from_secs(300), Duration::from_secs(60));
        for i in 0..4 {
            assert!(!f.count("Ghost", at(i), window, 5, lock_for));
            assert_eq!(f.locked_for("ghost", at(i)), None);
        }
        assert!(f.count("GHOST", at(4), window, 5, lock_for));
        assert_eq!(f.locked_for("ghost", at(4)), Some(60));
        assert_eq!(f.locked_for("ghost", at(64)), None, "the lock expires");
        // Failures outside the window start a new count.
        assert!(!f.count("other", at(0), window, 2, lock_for));
        assert!(!f.count("other", at(1000), window, 2, lock_for));
    }

    // REQ: R3.3
    #[tokio::test]
    async fn checks_of_one_account_never_overlap() {
        let locks = Arc::new(AccountLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock("alice").await;
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two checks at once"
                );
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}
