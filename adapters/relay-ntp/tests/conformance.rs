//! The NTP time source against a small SNTP responder on 127.0.0.1, and the time-source
//! conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_domain::TimeLabel;
use relay_domain::ports::TimeSource;
use relay_ntp::{NtpConfig, NtpTimeSource};
use tokio::net::UdpSocket;

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn to_ntp(unix_micros: i64) -> u64 {
    let micros = unix_micros as u64;
    ((micros / 1_000_000 + 2_208_988_800) << 32) | (((micros % 1_000_000) << 32) / 1_000_000)
}

/// A minimal SNTP server whose clock runs `offset` ahead of the host; `stratum` 0 makes it
/// answer with kiss-o'-death.
struct Responder {
    addr: String,
    offset_micros: Arc<AtomicI64>,
    stratum: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

async fn responder(offset_micros: i64) -> Responder {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let offset = Arc::new(AtomicI64::new(offset_micros));
    let stratum = Arc::new(AtomicU8::new(2));
    let (o, st) = (offset.clone(), stratum.clone());
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if n < 48 {
                continue;
            }
            let t2 = now_micros() + o.load(Ordering::SeqCst);
            let mut r = [0u8; 48];
            r[0] = (4 << 3) | 4; // version 4, server mode
            r[1] = st.load(Ordering::SeqCst);
            r[12..16].copy_from_slice(b"DENY");
            r[24..32].copy_from_slice(&buf[40..48]); // originate = client's transmit
            r[32..40].copy_from_slice(&to_ntp(t2).to_be_bytes());
            r[40..48]
                .copy_from_slice(&to_ntp(now_micros() + o.load(Ordering::SeqCst)).to_be_bytes());
            if socket.send_to(&r, peer).await.is_err() {
                return;
            }
        }
    });
    Responder {
        addr,
        offset_micros: offset,
        stratum,
        task,
    }
}

fn config(servers: Vec<String>) -> NtpConfig {
    NtpConfig::new(servers)
        .timeout(Duration::from_millis(300))
        .poll_interval(Duration::from_secs(3600))
}

#[tokio::test]
async fn ntp_source_passes_the_time_source_suite() {
    let r = responder(0).await;
    let clock = NtpTimeSource::start(config(vec![r.addr.clone()])).await;
    relay_conformance::time_source::suite(&clock).await;
    assert_eq!(clock.posture().kind, "ntp");
    assert!(matches!(
        clock.now().await.unwrap().label,
        TimeLabel::Validated { .. }
    ));
    r.task.abort();
}

// REQ: R9.1
#[tokio::test]
async fn measures_the_offset_and_corrects_instants_by_it() {
    let r = responder(5_000_000).await;
    let clock = NtpTimeSource::start(config(vec![r.addr.clone()])).await;
    let instant = clock.now().await.unwrap();
    let TimeLabel::Validated { offset_micros } = instant.label else {
        panic!("expected validated time")
    };
    assert!(
        (offset_micros - 5_000_000).abs() < 50_000,
        "offset {offset_micros}"
    );
    let ahead = instant.at.unix_micros() - now_micros();
    assert!(
        (ahead - 5_000_000).abs() < 100_000,
        "instant is {ahead} us ahead of the host"
    );
    assert!(clock.posture().detail.contains("validated against"));
    r.task.abort();
}

// REQ: R9.1
#[tokio::test]
async fn falls_back_loudly_to_system_time_when_no_server_answers() {
    // A bound socket that never answers, then a refused port.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let servers = vec![
        silent.local_addr().unwrap().to_string(),
        "127.0.0.1:9".into(),
    ];
    let clock = NtpTimeSource::start(config(servers)).await;
    let instant = clock.now().await.unwrap();
    assert_eq!(instant.label, TimeLabel::System);
    assert!((instant.at.unix_micros() - now_micros()).abs() < 1_000_000);
    let posture = clock.posture();
    assert_eq!(posture.label, TimeLabel::System);
    assert!(posture.detail.contains("FALLBACK"), "{}", posture.detail);
    assert!(clock.sync_now().await.is_err());
}

#[tokio::test]
async fn refuses_a_kiss_of_death_and_uses_the_next_server() {
    let deny = responder(0).await;
    deny.stratum.store(0, Ordering::SeqCst);
    let good = responder(2_000_000).await;
    let clock = NtpTimeSource::manual(config(vec![deny.addr.clone(), good.addr.clone()]));
    let sample = clock.sync_now().await.unwrap();
    assert_eq!(sample.server, good.addr);
    assert!((sample.offset_micros - 2_000_000).abs() < 50_000);
    deny.task.abort();
    good.task.abort();
}

// REQ: R9.1
#[tokio::test]
async fn stale_validation_falls_back_to_system_time() {
    let r = responder(3_000_000).await;
    let clock = NtpTimeSource::manual(
        config(vec![r.addr.clone()]).max_staleness(Duration::from_millis(200)),
    );
    clock.sync_now().await.unwrap();
    assert!(matches!(
        clock.now().await.unwrap().label,
        TimeLabel::Validated { .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(clock.now().await.unwrap().label, TimeLabel::System);
    r.offset_micros.store(0, Ordering::SeqCst);
    r.task.abort();
}
