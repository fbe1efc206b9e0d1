//! The GCP adapters under the server of record: the notary's degraded posture (emulator bucket,
//! `allow_non_worm`) and the Secret Manager provider reach the `_relay` start-up event exactly
//! as the filesystem notary's posture does, and the final notarization anchors into the bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fakes;

use std::sync::Arc;
use std::time::Duration;

use common::{GcsHarness, bounded, test_connection};
use fakes::secret_manager::FakeSecretManager;
use relay_domain::memory::{InMemoryAccountStore, InMemoryRecordStore, ManualClock};
use relay_domain::ports::{Notary, RecordStore};
use relay_domain::{Device, EventKind, Timestamp, TrailId};
use relay_gcp::GcpConfig;
use relay_runtime::server::{ServerRuntime, ServerSettings, ServerStores};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_records_the_unenforced_gcs_notary_in_its_startup_posture() {
    bounded(async {
        let Some(gcs) = GcsHarness::start(
            "runtime posture (GCS emulator + Secret Manager fake)",
            Some(3600),
        )
        .await
        else {
            return;
        };
        let fake = FakeSecretManager::start().await;
        let mut config = GcpConfig::new(&gcs.bucket);
        config.connection = test_connection(&gcs.endpoint, &fake.endpoint);
        config.notary.allow_non_worm = true;
        let adapters = relay_gcp::open(&config).await.unwrap();

        let records = Arc::new(InMemoryRecordStore::new());
        let exports = tempfile::TempDir::new().unwrap();
        let stores = ServerStores {
            provider: "gcp",
            records: records.clone(),
            accounts: Arc::new(InMemoryAccountStore::new()),
            secrets: adapters.secrets.clone(),
            notary: adapters.notary.clone(),
            clock: Arc::new(ManualClock::new(
                Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
            )),
            changes: None,
            receipts: None,
            fleet: None,
        };
        let device = Device::new("gcp-server-1").unwrap();
        let settings = ServerSettings {
            device: device.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            ingest: relay_api::IngestConfig::default(),
            api: relay_api::ApiConfig::new(device),
            notary_interval: Duration::from_secs(3600),
            exports_dir: exports.path().to_owned(),
            config: None,
        };
        let server = ServerRuntime::start(stores, settings).await.unwrap();

        let relay = TrailId::relay();
        let first = records.read(&relay, 0, 1).await.unwrap();
        let startup = first
            .first()
            .expect("the server records its start-up posture");
        assert_eq!(startup.kind, EventKind::startup());
        let posture = startup.payload.to_value().unwrap();
        assert_eq!(posture["notary"]["kind"], "gcs-retention-lock");
        assert_eq!(
            posture["notary"]["worm"], "unenforced",
            "the degraded posture must be on record: {posture}"
        );
        assert_eq!(posture["secret_provider"], "gcp-secret-manager");
        assert_eq!(posture["record_store"], "gcp");
        // The server's own keys went to Secret Manager.
        assert!(
            fake.secret_ids().contains(&"relay-trail-hmac".to_owned()),
            "{:?}",
            fake.secret_ids()
        );
        assert_eq!(
            posture["key_id"], "trail-hmac.v1",
            "the posture names the Secret Manager version: {posture}"
        );

        // Shutdown notarizes every head: the `_relay` head lands in the bucket.
        server.shutdown().await;
        let anchors = adapters.notary.anchors(&relay).await.unwrap();
        // The last record is the ANCHORED event of that very anchor (it cannot cover itself).
        let all = records.read(&relay, 0, 10_000).await.unwrap();
        let (own, covered) = all.split_last().unwrap();
        assert_eq!(own.kind, EventKind::anchored());
        let head = covered.last().unwrap();
        assert!(
            anchors
                .iter()
                .any(|a| a.seq == head.chain_seq && a.checksum == head.checksum),
            "final anchor of {relay} missing: {anchors:?} vs {head:?}"
        );
        assert!(!gcs.object_names("anchors/_relay/").await.is_empty());
    })
    .await;
}
