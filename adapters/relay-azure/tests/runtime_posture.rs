//! The Azure adapters under the server of record: the notary's degraded posture (Azurite,
//! `allow_non_worm`) and the Key Vault provider reach the `_relay` start-up event exactly as
//! the filesystem notary's posture does, and the final notarization anchors into the container.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fakes;

use std::sync::Arc;
use std::time::Duration;

use common::AzuriteHarness;
use fakes::KeyVaultProtocolFake;
use relay_azure::{AzureConfig, AzureCredential, KeyVaultSettings};
use relay_domain::memory::{InMemoryAccountStore, InMemoryRecordStore, ManualClock};
use relay_domain::ports::{Notary, RecordStore};
use relay_domain::{Device, EventKind, Timestamp, TrailId};
use relay_runtime::server::{ServerRuntime, ServerSettings, ServerStores};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_records_the_unenforced_azure_notary_in_its_startup_posture() {
    let Some(az) = AzuriteHarness::start("runtime posture (Azurite + Key Vault fake)").await else {
        return;
    };
    let fake = KeyVaultProtocolFake::start().await;
    let mut config = az.config(true);
    config.credential = AzureCredential::ClientSecret {
        tenant_id: fake.tenant.clone(),
        client_id: fake.client_id.clone(),
        client_secret: fake.client_secret.clone(),
    };
    let mut vault = KeyVaultSettings::new(&fake.url);
    vault.verify_challenge_resource = false;
    config.key_vault = Some(vault);
    config.authority_host = Some(fake.url.clone());
    config.ca_file = Some(fake.ca_file.path().to_owned());
    let adapters = relay_azure::open(&config).await.unwrap();
    let _: &AzureConfig = adapters.clients.config();

    let records = Arc::new(InMemoryRecordStore::new());
    let exports = tempfile::TempDir::new().unwrap();
    let stores = ServerStores {
        provider: "azure",
        records: records.clone(),
        accounts: Arc::new(InMemoryAccountStore::new()),
        secrets: adapters.secrets.clone().unwrap(),
        notary: adapters.notary.clone(),
        clock: Arc::new(ManualClock::new(
            Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
        )),
        changes: None,
        receipts: None,
        fleet: None,
    };
    let device = Device::new("azure-server-1").unwrap();
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
    assert_eq!(posture["notary"]["kind"], "azure-immutable-blob");
    assert_eq!(
        posture["notary"]["worm"], "unenforced",
        "the degraded posture must be on record: {posture}"
    );
    assert_eq!(posture["secret_provider"], "azure-key-vault");
    assert_eq!(posture["record_store"], "azure");
    // The server's own keys went to Key Vault.
    assert!(
        fake.names().contains(&"relay-trail--hmac".to_owned()),
        "{:?}",
        fake.names()
    );

    // Shutdown notarizes every head: the `_relay` head lands in the Azure container.
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
}
