//! Every conformance suite against the Azure adapters: the object store and the notary on
//! Azurite (see `common` for how it is found), the Key Vault secret provider against the Key
//! Vault protocol fake (`fakes`; Key Vault has no emulator). What this proves and what only
//! real Azure can: docs/ARCHITECTURE.md, "Azure".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::AzuriteHarness;
use fakes::KeyVaultProtocolFake;
use relay_azure::{
    AzureBlobNotary, AzureBlobObjectStore, AzureClients, AzureConfig, AzureCredential,
    KeyVaultSecretProvider, KeyVaultSettings,
};
use relay_conformance::{notary, object_store, secrets};
use relay_domain::ports::{
    Anchor, Notary, NotaryError, ObjectStore, PutMode, SecretError, SecretName, SecretProvider,
    SecretProviderExt, WormPosture,
};
use relay_domain::{ChainSeq, Checksum, TimeLabel, Timestamp, TrailId};

/// The notary must give up on Azurite's endless 500s within this (3 attempts, short backoff).
const NOT_WORM_BOUND: Duration = Duration::from_secs(10);

// REQ: R10.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_object_store_passes_the_object_store_suite_on_azurite() {
    let Some(az) = AzuriteHarness::start("object_store suite (Azurite)").await else {
        return;
    };
    let clients = AzureClients::new(&az.config(false)).unwrap();
    let store = AzureBlobObjectStore::open(&clients).await.unwrap();
    assert_eq!(store.capabilities().worm, WormPosture::Unenforced);
    assert!(store.capabilities().conditional_put);
    object_store::suite(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_refuses_a_missing_container() {
    let Some(az) = AzuriteHarness::start("object store, missing container").await else {
        return;
    };
    let mut config = az.config(false);
    config.blob.as_mut().unwrap().object_container = Some(common::unique("missing"));
    let clients = AzureClients::new(&config).unwrap();
    let err = AzureBlobObjectStore::open(&clients).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

// REQ: R7.2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_refuses_a_container_that_cannot_lock_blobs_within_seconds() {
    let Some(az) = AzuriteHarness::start("notary refuses non-WORM (Azurite)").await else {
        return;
    };
    let clients = AzureClients::new(&az.config(false)).unwrap();
    let started = Instant::now();
    let err = AzureBlobNotary::open(&clients).await.unwrap_err();
    let took = started.elapsed();
    let NotaryError::NotWorm(reason) = &err else {
        panic!("a container that cannot lock blobs must be NotWorm, got {err:?}");
    };
    // Azurite answers the immutability-policy call with HTTP 500 and an empty body; the SDK's
    // default policy would retry it for minutes. Ours gives up after 3 attempts.
    assert!(
        took < NOT_WORM_BOUND,
        "refusal took {took:?}: timeouts or retries are not bounded"
    );
    assert!(reason.contains("could not be locked"), "{reason}");
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert!(reason.contains("version-level immutability"), "{reason}");
    assert!(reason.contains("allow_non_worm"), "{reason}");
    eprintln!("refused in {took:?}: {err}");
    // The unlocked probe blob was removed again: nothing is left behind (a second notary,
    // allowed to run unenforced, probes and cleans up the same way).
    let allowed = AzureBlobNotary::open(&AzureClients::new(&az.config(true)).unwrap())
        .await
        .unwrap();
    let everything = list_all(&allowed).await;
    assert!(everything.is_empty(), "probe left behind: {everything:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_with_allow_non_worm_passes_the_notary_suite_as_unenforced() {
    let Some(az) = AzuriteHarness::start("notary suite, allow_non_worm (Azurite)").await else {
        return;
    };
    let clients = AzureClients::new(&az.config(true)).unwrap();
    let started = Instant::now();
    let notary = AzureBlobNotary::open(&clients).await.unwrap();
    assert!(
        started.elapsed() < NOT_WORM_BOUND,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
    assert_eq!(notary.kind(), "azure-immutable-blob");
    notary::suite(&notary, None).await;

    // Anchors land as blobs under anchors/<trail>/, with no retention claimed.
    let trail = TrailId::new(common::unique("receipt")).unwrap();
    let receipt = notary.anchor(&anchor(&trail, 7)).await.unwrap();
    assert!(
        receipt.location.starts_with(&format!(
            "{}/{}/anchors/{trail}/",
            az.endpoint, az.container
        )),
        "{}",
        receipt.location
    );
    assert!(
        !receipt.location.contains("sig="),
        "a receipt must not hold the SAS"
    );
    assert_eq!(receipt.retain_until, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_reports_an_anchor_holding_another_trail() {
    let Some(az) = AzuriteHarness::start("notary, forged anchor (Azurite)").await else {
        return;
    };
    let clients = AzureClients::new(&az.config(true)).unwrap();
    let notary = AzureBlobNotary::open(&clients).await.unwrap();
    let victim = TrailId::new(common::unique("victim")).unwrap();
    let other = TrailId::new(common::unique("other")).unwrap();
    notary.anchor(&anchor(&victim, 1)).await.unwrap();
    // Someone with the container's credentials plants another trail's anchor in the folder.
    let forged = serde_json::to_vec(&anchor(&other, 99)).unwrap();
    let name = format!("{}forged.json", notary.trail_prefix(&victim));
    notary
        .container_client()
        .blob_client(&name)
        .upload(azure_core::http::RequestContent::from(forged), None)
        .await
        .unwrap();
    match notary.anchors(&victim).await {
        Err(NotaryError::InvalidAnchor(why)) => {
            assert!(why.contains(other.as_str()), "{why}");
        }
        other => panic!("a forged anchor must be InvalidAnchor, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_refuses_a_missing_container() {
    let Some(az) = AzuriteHarness::start("notary, missing container").await else {
        return;
    };
    let mut config = az.config(true);
    config.blob.as_mut().unwrap().notary_container = Some(common::unique("missing"));
    let clients = AzureClients::new(&config).unwrap();
    let err = AzureBlobNotary::open(&clients).await.unwrap_err();
    assert!(
        matches!(&err, NotaryError::Other { message, .. } if message.contains("does not exist")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_builds_every_configured_adapter() {
    let Some(az) = AzuriteHarness::start("open (Azurite + Key Vault fake)").await else {
        return;
    };
    let fake = KeyVaultProtocolFake::start().await;
    let mut config = az.config(true);
    let vault = vault_config(&fake);
    config.key_vault = vault.key_vault;
    config.credential = vault.credential;
    config.authority_host = vault.authority_host;
    config.ca_file = vault.ca_file;
    let adapters = relay_azure::open(&config).await.unwrap();
    assert_eq!(adapters.notary.worm_posture(), WormPosture::Unenforced);
    let store = adapters.object_store.unwrap();
    let key = relay_domain::ports::ObjectKey::new("exports/p.zip").unwrap();
    store
        .put(&key, b"zip".to_vec(), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), b"zip");
    let secrets = adapters.secrets.unwrap();
    let key = secrets
        .current_or_create(&SecretName::trail_hmac())
        .await
        .unwrap();
    assert_eq!(key.expose().len(), 32);
    assert_eq!(fake.names(), vec!["relay-trail--hmac".to_owned()]);
    // Without a notary container nothing opens: the notary is not optional.
    config.blob.as_mut().unwrap().notary_container = None;
    assert!(relay_azure::open(&config).await.is_err());
}

/// Settings that reach the fake: the vault and the token endpoint at its URL, its CA trusted.
fn vault_config(fake: &KeyVaultProtocolFake) -> AzureConfig {
    let mut config = AzureConfig::new(AzureCredential::ClientSecret {
        tenant_id: fake.tenant.clone(),
        client_id: fake.client_id.clone(),
        client_secret: fake.client_secret.clone(),
    });
    let mut vault = KeyVaultSettings::new(&fake.url);
    // The fake's challenge names vault.azure.net, which is not its own host (127.0.0.1).
    vault.verify_challenge_resource = false;
    config.key_vault = Some(vault);
    config.authority_host = Some(fake.url.clone());
    config.ca_file = Some(fake.ca_file.path().to_owned());
    config.limits = common::test_limits();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_provider_passes_the_secrets_suite_against_the_protocol_fake() {
    let fake = KeyVaultProtocolFake::start().await;
    let clients = AzureClients::new(&vault_config(&fake)).unwrap();
    let provider = KeyVaultSecretProvider::open(&clients).unwrap();
    assert_eq!(provider.kind(), "azure-key-vault");
    secrets::suite(&provider).await;
    // The client followed Key Vault's challenge: one unauthenticated request, then tokens.
    let log = fake.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("POST /relay-test-tenant/oauth2/v2.0/token"))
    );
    assert_eq!(
        log.iter()
            .filter(|l| l.ends_with(" none") && l.contains("/secrets/"))
            .count(),
        1,
        "{log:#?}"
    );
    assert!(log.iter().all(|l| !l.ends_with(" bad")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_yields_a_new_key_id_and_the_old_one_still_resolves() {
    let fake = KeyVaultProtocolFake::start().await;
    let clients = AzureClients::new(&vault_config(&fake)).unwrap();
    let provider = KeyVaultSecretProvider::open(&clients).unwrap();
    let name = SecretName::new("trail-hmac.nmr-01").unwrap();
    let v1 = provider.create(&name).await.unwrap();
    let mut ids = vec![v1.id().clone()];
    // Rotations inside one second: Key Vault's `created` cannot order them, the seq tag does.
    for _ in 0..4 {
        ids.push(provider.rotate(&name).await.unwrap().id().clone());
    }
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");
    assert_eq!(provider.current(&name).await.unwrap().id(), &ids[4]);
    let old = provider.version(&name, &ids[0]).await.unwrap();
    assert!(old.ct_matches(v1.expose()), "the first version changed");
    // The fake pages two versions at a time, newest first: the provider orders them.
    assert_eq!(provider.versions(&name).await.unwrap(), ids);
    let ring = provider.key_ring(&name).await.unwrap();
    assert!(ring.get(&ids[0]).is_some());
    assert_eq!(ring.current().unwrap().id(), &ids[4]);
    assert_eq!(
        fake.names(),
        vec!["relay-trail--hmac-dnmr--01".to_owned()],
        "names are escaped injectively"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_failures_map_to_port_errors_within_the_bounds() {
    let fake = KeyVaultProtocolFake::start().await;
    let clients = AzureClients::new(&vault_config(&fake)).unwrap();
    let provider = KeyVaultSecretProvider::open(&clients).unwrap();
    let name = SecretName::new("export-seal").unwrap();
    provider.create(&name).await.unwrap();

    // A version someone else wrote by hand is refused, never used as a key.
    fake.put_foreign_version(&provider.vault_name(&name), "hunter2", None);
    assert!(matches!(
        provider.current(&name).await,
        Err(SecretError::Malformed { .. })
    ));

    // An outage: every call answers 503. Three attempts, then Unavailable, in seconds.
    fake.fail_with(Some(503));
    let started = Instant::now();
    let err = provider.current(&name).await.unwrap_err();
    assert!(matches!(err, SecretError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < NOT_WORM_BOUND,
        "{:?}",
        started.elapsed()
    );
    fake.fail_with(None);

    // A wrong client secret: the token endpoint refuses, which is PermissionDenied.
    let mut wrong = vault_config(&fake);
    wrong.credential = AzureCredential::ClientSecret {
        tenant_id: fake.tenant.clone(),
        client_id: fake.client_id.clone(),
        client_secret: "not-the-secret".into(),
    };
    let denied = KeyVaultSecretProvider::open(&AzureClients::new(&wrong).unwrap()).unwrap();
    let err = denied.current(&name).await.unwrap_err();
    assert!(
        matches!(err, SecretError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("not-the-secret"));
}

fn anchor(trail: &TrailId, seq: u64) -> Anchor {
    Anchor {
        trail_id: trail.clone(),
        seq: ChainSeq::new(seq).unwrap(),
        checksum: Checksum([seq as u8; 32]),
        merkle_root: None,
        anchored_at: Timestamp::from_unix_micros(1_764_075_475_000_000).unwrap(),
        time_source: TimeLabel::System,
        version: 1,
        frontier: Vec::new(),
        consistency: None,
        checkpoint: None,
    }
}

/// Every blob name in the notary's container.
async fn list_all(notary: &AzureBlobNotary) -> Vec<String> {
    use futures::TryStreamExt;
    notary
        .container_client()
        .list_blobs(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|b| b.name)
        .collect()
}
