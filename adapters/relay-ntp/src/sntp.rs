//! One SNTP exchange (RFC 4330): send a client packet, check the reply, compute the offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use crate::error::NtpError;

/// Seconds from the NTP era (1900-01-01) to the Unix epoch.
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// One measurement against one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The server answered by.
    pub server: String,
    /// Reference minus host clock, in microseconds (positive: the host is behind).
    pub offset_micros: i64,
    /// Round-trip delay, in microseconds.
    pub delay_micros: i64,
    /// The server's stratum (1 = primary reference).
    pub stratum: u8,
}

/// Host clock as microseconds since the Unix epoch.
pub(crate) fn host_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix microseconds as a 64-bit NTP timestamp (32.32 fixed point since 1900).
pub fn to_ntp(unix_micros: i64) -> u64 {
    let micros = u64::try_from(unix_micros).unwrap_or(0);
    let secs = micros / 1_000_000 + NTP_UNIX_OFFSET_SECS;
    let frac = ((micros % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// A 64-bit NTP timestamp as Unix microseconds.
pub fn from_ntp(ts: u64) -> i64 {
    let secs = (ts >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
    let micros = ((ts & 0xffff_ffff) * 1_000_000) >> 32;
    i64::try_from(secs * 1_000_000 + micros).unwrap_or(i64::MAX)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Checks a reply to our request sent at `t1` (NTP format) and received at `t4` (Unix micros).
pub(crate) fn parse_reply(
    server: &str,
    reply: &[u8],
    t1: u64,
    t4: i64,
) -> Result<Sample, NtpError> {
    let bad = |why: &str| NtpError::BadReply {
        server: server.to_owned(),
        why: why.to_owned(),
    };
    if reply.len() < 48 {
        return Err(bad("reply shorter than 48 bytes"));
    }
    let leap = reply[0] >> 6;
    let mode = reply[0] & 0x7;
    let stratum = reply[1];
    if mode != 4 {
        return Err(bad("not a server-mode reply"));
    }
    if leap == 3 {
        return Err(bad("server clock is unsynchronized (leap indicator 3)"));
    }
    if stratum == 0 {
        let code = String::from_utf8_lossy(&reply[12..16]).into_owned();
        return Err(bad(&format!("kiss-o'-death {code:?}")));
    }
    if stratum > 15 {
        return Err(bad("stratum above 15"));
    }
    if read_u64(reply, 24) != t1 {
        return Err(bad(
            "originate timestamp does not echo our request (stale or spoofed reply)",
        ));
    }
    let t2 = from_ntp(read_u64(reply, 32));
    let t3 = from_ntp(read_u64(reply, 40));
    let t1 = from_ntp(t1);
    let offset_micros = ((t2 - t1) + (t3 - t4)) / 2;
    let delay_micros = (t4 - t1) - (t3 - t2);
    Ok(Sample {
        server: server.to_owned(),
        offset_micros,
        delay_micros,
        stratum,
    })
}

/// Asks one server once.
pub async fn query(server: &str, timeout: Duration) -> Result<Sample, NtpError> {
    let io = |source| NtpError::Io {
        server: server.to_owned(),
        source,
    };
    let exchange = async {
        let addr = tokio::net::lookup_host(server)
            .await
            .map_err(io)?
            .next()
            .ok_or_else(|| {
                io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no address",
                ))
            })?;
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        let mut request = [0u8; 48];
        request[0] = 0x23; // leap 0, version 4, mode 3 (client)
        let t1 = to_ntp(host_micros());
        request[40..48].copy_from_slice(&t1.to_be_bytes());
        socket.send(&request).await.map_err(io)?;
        let mut reply = [0u8; 512];
        let n = socket.recv(&mut reply).await.map_err(io)?;
        let t4 = host_micros();
        parse_reply(server, &reply[..n], t1, t4)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(NtpError::Timeout {
            server: server.to_owned(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_timestamps_round_trip_to_the_microsecond() {
        for micros in [0i64, 1, 999_999, 1_764_075_475_123_456] {
            let back = from_ntp(to_ntp(micros));
            assert!((back - micros).abs() <= 1, "{micros} -> {back}");
        }
    }

    fn reply(mode: u8, leap: u8, stratum: u8, origin: u64, t2: i64, t3: i64) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0] = (leap << 6) | (4 << 3) | mode;
        r[1] = stratum;
        r[24..32].copy_from_slice(&origin.to_be_bytes());
        r[32..40].copy_from_slice(&to_ntp(t2).to_be_bytes());
        r[40..48].copy_from_slice(&to_ntp(t3).to_be_bytes());
        r
    }

    #[test]
    fn computes_offset_and_delay() {
        let t1 = 1_000_000_000_000i64;
        // Server is 5 s ahead; 10 ms each way; 2 ms processing.
        let t2 = t1 + 10_000 + 5_000_000;
        let t3 = t2 + 2_000;
        let t4 = t1 + 22_000;
        let s = parse_reply("x", &reply(4, 0, 2, to_ntp(t1), t2, t3), to_ntp(t1), t4).unwrap();
        assert!((s.offset_micros - 5_000_000).abs() <= 2, "{s:?}");
        assert!((s.delay_micros - 20_000).abs() <= 2, "{s:?}");
    }

    #[test]
    fn refuses_unusable_replies() {
        let t1 = to_ntp(1_000_000_000_000);
        let now = 1_000_000_000_000;
        for (r, why) in [
            (reply(3, 0, 2, t1, now, now), "server-mode"),
            (reply(4, 3, 2, t1, now, now), "unsynchronized"),
            (reply(4, 0, 0, t1, now, now), "kiss-o'-death"),
            (reply(4, 0, 16, t1, now, now), "stratum"),
            (reply(4, 0, 2, t1 + 1, now, now), "originate"),
        ] {
            let err = parse_reply("x", &r, t1, now).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should mention {why}");
        }
        assert!(parse_reply("x", &[0u8; 10], t1, now).is_err());
    }
}
