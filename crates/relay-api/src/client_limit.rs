//! The per-client limit on failed logins (issue 18, "login that survives a flood").
//!
//! The per-account lockout protects one account; it does not stop one client from trying a
//! password against every name, nor from keeping the Argon2 slots busy. So failed logins
//! (`401` and the lockout's `429 locked`) are also counted per client address, and once a client
//! has failed [`ApiConfig::client_failure_limit`](crate::ApiConfig::client_failure_limit) times
//! within [`ApiConfig::client_failure_window`](crate::ApiConfig::client_failure_window), its
//! further attempts are answered `429 too_many_attempts` with `Retry-After` before any password
//! work, whatever the username (so the answer tells nothing about which names exist).
//!
//! - **The client** is the peer address the listener saw, never a header. An IPv6 client is its
//!   /64 prefix (one host usually holds a whole /64); an IPv4-mapped IPv6 address is the IPv4
//!   address. Behind a reverse proxy every client has the proxy's address (docs/operations.md).
//! - **The window** starts at a client's first failure and is fixed: at most `limit` failures
//!   per window, then refusals until the window ends; the next failure opens a new window. A
//!   successful login does not clear a client's count (one valid account must not reset it).
//! - **Exact under parallel requests.** An admitted attempt is held as pending until it ends;
//!   a client is refused while its failures plus its pending attempts reach the limit, so N
//!   parallel wrong passwords from one client never exceed the limit.
//! - **Refusals are counted**, per window: the caller records the 1st, 2nd, 4th, 8th, ... of
//!   them (with the count), since they cost no password check and one address can make
//!   thousands a second.
//! - **Known clients.** A client whose login succeeded within [`TRUST_FOR`] is known: its
//!   password checks wait in a queue of their own at the Argon2 gate, so a flood from many
//!   other addresses, which fills the common queue, does not refuse them (`busy`). Knowing a
//!   client takes a right password, which a flood does not have; it changes no limit.
//! - **Bounded memory.** At most [`CAPACITY`] clients are tracked. When full, entries with no
//!   running window go first, then entries under the limit and not known, then the blocked
//!   entries whose windows end soonest (known clients last), down to three quarters of the
//!   capacity: a flood from many addresses costs a few MiB at most, and eviction work is
//!   amortized over the inserts that follow.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most clients tracked at once (about 80 bytes each with the map's overhead: ~4 MiB).
pub(crate) const CAPACITY: usize = 50_000;

/// How long a client stays known after a successful login.
pub(crate) const TRUST_FOR: Duration = Duration::from_secs(12 * 3600);

/// What a client is counted as: an IPv4 address, or the /64 prefix of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of peer address `ip`.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Self(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures counted in the current window.
    failures: u32,
    /// Attempts admitted and not yet ended.
    pending: u32,
    /// When the current window started (the first failure of it).
    window_start: Option<Instant>,
    /// Attempts refused in the current window.
    refused: u64,
    /// Until when the client is known (a successful login).
    known_until: Option<Instant>,
}

impl Entry {
    const NEW: Entry = Entry {
        failures: 0,
        pending: 0,
        window_start: None,
        refused: 0,
        known_until: None,
    };

    /// Whether the client is known at `now`.
    fn known(&self, now: Instant) -> bool {
        self.known_until.is_some_and(|until| until > now)
    }

    /// Whether a window started and has ended at `now`.
    fn ended(&self, now: Instant, window: Duration) -> bool {
        self.window_start
            .is_some_and(|start| now.saturating_duration_since(start) >= window)
    }

    /// Whether a window is running at `now`.
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.window_start
            .is_some_and(|start| now.saturating_duration_since(start) < window)
    }

    /// When the current window ends.
    fn window_end(&self, window: Duration) -> Option<Instant> {
        self.window_start.map(|start| start + window)
    }
}

/// Failed logins per client, in memory; see the module documentation.
#[derive(Debug)]
pub(crate) struct ClientFailures {
    limit: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<ClientKey, Entry>>,
}

/// Why an attempt was not admitted: the client's failures reached the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Seconds until the client's window ends (at least 1).
    pub(crate) retry_after: u64,
    /// Refusals of this client in its window, this one included.
    pub(crate) refused_in_window: u64,
}

impl ClientFailures {
    /// A limit of `limit` failures per `window`; `limit` 0 or an empty window: no limit.
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, CAPACITY)
    }

    fn with_capacity(limit: u32, window: Duration, capacity: usize) -> Self {
        Self {
            limit,
            window,
            capacity: capacity.max(4),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        self.limit > 0 && !self.window.is_zero()
    }

    /// Admits an attempt of `client` at `now`, or refuses it when the client's failures (and
    /// attempts still running) reached the limit. No client (in-process) or no limit: always
    /// admitted, untracked. The attempt stays pending until the returned guard is dropped or
    /// marked [`failed`](ClientAttempt::failed).
    pub(crate) fn admit(
        &self,
        client: Option<ClientKey>,
        now: Instant,
    ) -> Result<ClientAttempt<'_>, Refused> {
        let Some(key) = client.filter(|_| self.enabled()) else {
            return Ok(ClientAttempt {
                limits: self,
                key: None,
                known: false,
            });
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            self.evict(&mut entries, now);
        }
        let entry = entries.entry(key).or_insert(Entry::NEW);
        if entry.ended(now, self.window) {
            entry.failures = 0;
            entry.window_start = None;
            entry.refused = 0;
        }
        if entry.failures.saturating_add(entry.pending) >= self.limit {
            // Pending attempts alone can reach the limit only before any failure; then the
            // client retries once they end.
            let retry_after = entry.window_end(self.window).map_or(1, |end| {
                let left = end.saturating_duration_since(now);
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            });
            entry.refused = entry.refused.saturating_add(1);
            return Err(Refused {
                retry_after: retry_after.max(1),
                refused_in_window: entry.refused,
            });
        }
        entry.pending += 1;
        Ok(ClientAttempt {
            limits: self,
            key: Some(key),
            known: entry.known(now),
        })
    }

    /// Ends a pending attempt of `key` as `how`.
    fn end(&self, key: ClientKey, how: Ending) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get_mut(&key) else {
            // Evicted while running (only when the map was full of blocked clients).
            return;
        };
        entry.pending = entry.pending.saturating_sub(1);
        match how {
            Ending::Failed(now) => {
                if !entry.live(now, self.window) {
                    // The first failure opens the window (refusals before it were of attempts
                    // in flight, and are counted on).
                    entry.failures = 0;
                    entry.window_start = Some(now);
                }
                entry.failures = entry.failures.saturating_add(1);
            }
            Ending::Succeeded(now) => entry.known_until = Some(now + TRUST_FOR),
            Ending::Neither => {}
        }
    }

    /// Makes room: expired entries first, then those under the limit, then the blocked ones
    /// whose windows end soonest (known clients last), until at most three quarters of the
    /// capacity remain.
    fn evict(&self, entries: &mut HashMap<ClientKey, Entry>, now: Instant) {
        let low_water = self.capacity / 4 * 3;
        let before = entries.len();
        entries.retain(|_, e| e.pending > 0 || e.known(now) || e.live(now, self.window));
        if entries.len() > low_water {
            entries.retain(|_, e| e.pending > 0 || e.known(now) || e.failures >= self.limit);
        }
        if entries.len() > low_water {
            let mut ends: Vec<((bool, Instant), ClientKey)> = entries
                .iter()
                .filter(|(_, e)| e.pending == 0)
                .map(|(k, e)| {
                    let end = if e.known(now) {
                        e.known_until
                    } else {
                        e.window_end(self.window)
                    };
                    ((e.known(now), end.unwrap_or(now)), *k)
                })
                .collect();
            let drop = (entries.len() - low_water).min(ends.len());
            if drop > 0 {
                ends.select_nth_unstable_by_key(drop - 1, |(order, _)| *order);
                for (_, key) in &ends[..drop] {
                    entries.remove(key);
                }
            }
        }
        tracing::warn!(
            before,
            after = entries.len(),
            capacity = self.capacity,
            "per-client login failure table full: entries evicted (a login flood from many addresses?)"
        );
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The credentials failed (counted).
    Failed(Instant),
    /// The credentials were right (the client becomes known).
    Succeeded(Instant),
    /// Neither (refused for another reason, or abandoned).
    Neither,
}

/// An admitted attempt; it stays pending for its client until dropped or ended.
#[derive(Debug)]
pub(crate) struct ClientAttempt<'a> {
    limits: &'a ClientFailures,
    key: Option<ClientKey>,
    known: bool,
}

impl ClientAttempt<'_> {
    /// Whether the client was known (a successful login within [`TRUST_FOR`]) when admitted.
    pub(crate) fn known(&self) -> bool {
        self.known
    }

    /// Ends the attempt as a failure of its client at `now`.
    pub(crate) fn failed(mut self, now: Instant) {
        if let Some(key) = self.key.take() {
            self.limits.end(key, Ending::Failed(now));
        }
    }

    /// Ends the attempt as a success at `now`: its client is known for [`TRUST_FOR`].
    pub(crate) fn succeeded(mut self, now: Instant) {
        if let Some(key) = self.key.take() {
            self.limits.end(key, Ending::Succeeded(now));
        }
    }
}

impl Drop for ClientAttempt<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.limits.end(key, Ending::Neither);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client 10.x.y.z numbered `i`.
    fn client(i: u32) -> Option<ClientKey> {
        let [_, x, y, z] = i.to_be_bytes();
        Some(ClientKey::of(IpAddr::from([10, x, y, z])))
    }

    /// `n` failures of `client` at `now`, each admitted first.
    fn fail(f: &ClientFailures, client: Option<ClientKey>, now: Instant, n: u32) {
        for _ in 0..n {
            f.admit(client, now).unwrap().failed(now);
        }
    }

    // REQ: R3.3
    #[test]
    fn a_client_at_the_limit_is_refused_until_its_window_ends_others_are_not() {
        let t0 = Instant::now();
        let f = ClientFailures::new(3, Duration::from_secs(300));
        fail(&f, client(1), t0, 3);
        let refused = f
            .admit(client(1), t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(refused.retry_after, 290);
        let again = f
            .admit(client(1), t0 + Duration::from_secs(11))
            .unwrap_err();
        assert_eq!((refused.refused_in_window, again.refused_in_window), (1, 2));
        // Another address is not affected.
        assert!(f.admit(client(2), t0).is_ok());
        // The window is fixed from the first failure: at its end the client may try again.
        let later = t0 + Duration::from_secs(300);
        f.admit(client(1), later).unwrap().failed(later);
        assert!(f.admit(client(1), later).is_ok(), "a new window: 1 of 3");
    }

    // REQ: R3.3
    #[test]
    fn a_success_neither_counts_nor_clears_failures() {
        let t0 = Instant::now();
        let f = ClientFailures::new(2, Duration::from_secs(60));
        fail(&f, client(1), t0, 1);
        drop(f.admit(client(1), t0).unwrap()); // a successful login
        drop(f.admit(client(1), t0).unwrap());
        fail(&f, client(1), t0, 1);
        assert!(f.admit(client(1), t0).is_err());
    }

    // REQ: R3.3
    #[test]
    fn parallel_attempts_of_one_client_never_exceed_the_limit() {
        let t0 = Instant::now();
        let f = ClientFailures::new(5, Duration::from_secs(60));
        let (admitted, refused): (Vec<_>, Vec<_>) = (0..20)
            .map(|_| f.admit(client(1), t0))
            .partition(Result::is_ok);
        assert_eq!(
            admitted.len(),
            5,
            "five in flight, the rest refused at once"
        );
        let counts: Vec<u64> = refused
            .into_iter()
            .map(|r| r.unwrap_err().refused_in_window)
            .collect();
        assert_eq!(
            counts,
            (1..=15).collect::<Vec<_>>(),
            "refusals are counted on"
        );
        let admitted: Vec<_> = admitted.into_iter().map(Result::unwrap).collect();
        for attempt in admitted {
            attempt.failed(t0);
        }
        let refused = f.admit(client(1), t0).unwrap_err();
        assert_eq!((refused.retry_after, refused.refused_in_window), (60, 16));
    }

    // REQ: R3.3
    #[test]
    fn no_address_or_a_zero_limit_is_never_refused() {
        let t0 = Instant::now();
        let f = ClientFailures::new(1, Duration::from_secs(60));
        fail(&f, None, t0, 10);
        assert!(f.admit(None, t0).is_ok());
        let off = ClientFailures::new(0, Duration::from_secs(60));
        fail(&off, client(1), t0, 10);
        assert!(off.admit(client(1), t0).is_ok());
        assert_eq!(off.tracked(), 0);
    }

    // REQ: R3.3
    #[test]
    fn ipv6_clients_are_their_64_prefix_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            ClientKey::of(mapped),
            ClientKey::of(IpAddr::from([10, 0, 0, 1]))
        );
    }

    // REQ: R3.3
    #[test]
    fn a_flood_from_many_addresses_stays_within_the_capacity_and_keeps_blocked_clients() {
        let t0 = Instant::now();
        let f = ClientFailures::with_capacity(3, Duration::from_secs(300), 1000);
        // A blocked client, then 20,000 addresses failing once each.
        fail(&f, client(1_000_000), t0, 3);
        for i in 0..20_000 {
            fail(&f, client(i), t0, 1);
            assert!(f.tracked() <= 1000, "{} tracked", f.tracked());
        }
        assert!(
            f.admit(client(1_000_000), t0).is_err(),
            "the blocked client is still blocked"
        );
        // A table full of blocked clients still takes new ones (the soonest to end go).
        for i in 0..3000 {
            let at = t0 + Duration::from_millis(u64::from(i));
            fail(&f, client(100_000 + i), at, 3);
            assert!(f.tracked() <= 1000);
        }
        let newest = t0 + Duration::from_millis(2999);
        assert!(f.admit(client(102_999), newest).is_err());
    }

    // REQ: R3.3
    #[test]
    fn a_successful_login_makes_its_client_known_for_a_while_and_eviction_keeps_it() {
        let t0 = Instant::now();
        let f = ClientFailures::with_capacity(3, Duration::from_secs(300), 1000);
        assert!(!f.admit(client(1), t0).unwrap().known());
        f.admit(client(1), t0).unwrap().succeeded(t0);
        assert!(f.admit(client(1), t0).unwrap().known());
        // Known changes no limit.
        fail(&f, client(1), t0, 3);
        assert!(f.admit(client(1), t0).is_err());
        // A flood of other addresses does not evict it.
        let later = t0 + Duration::from_secs(400);
        for i in 0..5000 {
            fail(&f, client(10_000 + i), later, 1);
        }
        assert!(f.admit(client(1), later).unwrap().known());
        let much_later = t0 + TRUST_FOR + Duration::from_secs(1);
        assert!(!f.admit(client(1), much_later).unwrap().known());
    }

    // REQ: R3.3
    #[test]
    fn an_attempt_dropped_while_pending_is_released() {
        let t0 = Instant::now();
        let f = ClientFailures::new(1, Duration::from_secs(60));
        let attempt = f.admit(client(1), t0).unwrap();
        assert!(
            f.admit(client(1), t0).is_err(),
            "one in flight fills a limit of 1"
        );
        drop(attempt); // the client went away, or the attempt did not fail
        assert!(f.admit(client(1), t0).is_ok());
    }
}
