//! TCP ports for the servers that process-level tests start on a port they choose in advance
//! (a server restarted on the same port, an edge configured with the server's URL before the
//! server runs).
//!
//! The usual trick, binding port 0 and dropping the listener, hands out a port from the kernel's
//! **ephemeral range**: the range every `connect()` on the machine draws its local port from. In
//! the time between choosing the port and the server's `bind` (seconds, when an edge starts
//! first, and again each time a test kills and restarts the server), any client connection of
//! any process (a pooled Postgres connection of a test running beside it, say) can take that port
//! as its own local port, and the server's `bind` then fails with `EADDRINUSE` for as long as the
//! connection lives. That made a fault test fail about once in many CI runs, with an edge that
//! never reached its server.
//!
//! [`reserve_port`] chooses a port **below** the ephemeral range, which no `connect()` and no
//! `bind` to port 0 ever takes, and reserves it for the life of the test process with a lock
//! that the kernel drops when the process ends (an abstract Unix socket named after the port),
//! so two tests running at once never choose the same one.

use std::net::TcpListener;
use std::sync::Mutex;

/// The lowest port handed out: above the well-known and registered service ports the test
/// machines run (PostgreSQL 5432, the emulators at 5000, 9023 and 10000-10002, ...).
const LOWEST: u16 = 20_000;

/// The kernel's ephemeral range starts here unless `/proc` says otherwise (Linux's default).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

/// The reservations of this process, held until it exits.
static HELD: Mutex<Vec<Reservation>> = Mutex::new(Vec::new());

/// What keeps a port reserved: on Linux an abstract Unix socket bound to a name made of the
/// port, which exactly one process can hold and which vanishes with it.
struct Reservation {
    #[cfg(target_os = "linux")]
    _lock: std::os::unix::net::UnixListener,
}

/// A free TCP port on 127.0.0.1 that no other process will take while this one runs: outside
/// the kernel's ephemeral range and reserved against other tests choosing it too. Panics (test
/// code) when no port in the range is free.
pub fn reserve_port() -> u16 {
    let (low, high) = range();
    let span = u32::from(high - low);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for step in 0..span {
        let offset = u16::try_from((seed.wrapping_add(step)) % span).unwrap_or(0);
        let port = low + offset;
        let Some(reservation) = lock(port) else {
            continue;
        };
        // Free for TCP right now (no listener, no connection using it as its local port).
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HELD.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(reservation);
        return port;
    }
    panic!("no free TCP port in {low}..{high}");
}

/// The ports [`reserve_port`] chooses from: from [`LOWEST`] up to the start of the ephemeral
/// range.
fn range() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START);
    // An ephemeral range that starts this low leaves no room below it; the lock and the bind
    // check still keep tests apart, but a client connection could then take the port.
    if start > LOWEST + 1_000 {
        (LOWEST, start)
    } else {
        (LOWEST, LOWEST + 10_000)
    }
}

/// Takes the machine-wide lock of `port`; `None` when another process holds it.
#[cfg(target_os = "linux")]
fn lock(port: u16) -> Option<Reservation> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("gims-relay-test-port-{port}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).ok()?;
    Some(Reservation { _lock: listener })
}

/// Elsewhere the bind check alone decides (no machine-wide lock).
#[cfg(not(target_os = "linux"))]
fn lock(_port: u16) -> Option<Reservation> {
    Some(Reservation {})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let (_, ephemeral_start) = range();
        let ports: Vec<u16> = (0..50).map(|_| reserve_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        assert!(ports.iter().all(|p| *p < ephemeral_start), "{ports:?}");
        // A reserved port is still free for the server that is meant to take it.
        let listener = TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
        drop(listener);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reserved_port_is_locked_against_another_reservation() {
        let port = reserve_port();
        assert!(
            lock(port).is_none(),
            "the reservation of {port} is not held"
        );
    }

    #[test]
    fn a_port_in_use_is_never_handed_out() {
        // Occupy many ports of the range; none of them may come back.
        let (low, _) = range();
        let taken: Vec<TcpListener> = (low..low + 200)
            .filter_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        let occupied: Vec<u16> = taken
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        for _ in 0..50 {
            assert!(!occupied.contains(&reserve_port()));
        }
    }
}
