//! The Secret Manager provider against the protocol fake (`fakes::secret_manager`): rotation,
//! naming, interrupted creates, and the limits every call runs under (retries, timeouts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fakes;

use std::time::{Duration, Instant};

use common::{bounded, test_connection};
use fakes::secret_manager::FakeSecretManager;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretProviderExt};
use relay_gcp::{GcpClient, GcpConnection, SecretManagerOptions, SecretManagerProvider};

async fn provider_with(connection: GcpConnection) -> SecretManagerProvider {
    let client = GcpClient::new(&connection).await.unwrap();
    SecretManagerProvider::new(&client, SecretManagerOptions::default()).unwrap()
}

async fn provider(fake: &FakeSecretManager) -> SecretManagerProvider {
    provider_with(test_connection("http://127.0.0.1:1", &fake.endpoint)).await
}

fn name(tag: &str) -> SecretName {
    SecretName::new(common::unique(tag)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_yields_a_new_key_id_and_the_old_still_resolves() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let p = provider(&fake).await;
        let n = SecretName::new("trail-hmac").unwrap();
        let v1 = p.create(&n).await.unwrap();
        assert_eq!(v1.id().as_str(), "trail-hmac.v1");
        let v2 = p.rotate(&n).await.unwrap();
        assert_eq!(v2.id().as_str(), "trail-hmac.v2");
        assert_ne!(v1.expose(), v2.expose());
        assert_eq!(p.current(&n).await.unwrap().id(), v2.id());
        let old = p.version(&n, v1.id()).await.unwrap();
        assert!(
            old.ct_matches(v1.expose()),
            "the old version still resolves to its bytes"
        );
        let ring = p.key_ring(&n).await.unwrap();
        assert!(ring.get(v1.id()).is_some());
        assert_eq!(ring.current().unwrap().id(), v2.id());
        // Stored as two versions of one Secret Manager secret.
        assert_eq!(fake.version_count("relay-trail-hmac"), 2);
        // Resolving the old key never lists or guesses: it reads exactly version 1.
        assert!(
            fake.log()
                .iter()
                .any(|l| l.ends_with("/secrets/relay-trail-hmac/versions/1:access")),
            "{:?}",
            fake.log()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_dots_map_to_escaped_secret_ids() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let p = provider(&fake).await;
        let n = SecretName::new("ingest-token.nmr_01").unwrap();
        let v = p.create(&n).await.unwrap();
        assert_eq!(
            fake.secret_ids(),
            vec!["relay-ingest-token_2enmr_5f01".to_owned()]
        );
        assert_eq!(p.current(&n).await.unwrap().id(), v.id());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_create_is_completed_not_stuck() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let p = provider(&fake).await;
        let n = name("half-made");
        fake.create_empty(&p.secret_id(&n));
        assert!(matches!(
            p.current(&n).await,
            Err(SecretError::NotFound { .. })
        ));
        let v = p.current_or_create(&n).await.unwrap();
        assert_eq!(v.expose().len(), 32);
        assert_eq!(p.versions(&n).await.unwrap(), vec![v.id().clone()]);
        // A complete secret is AlreadyExists, as the contract says.
        assert!(matches!(
            p.create(&n).await,
            Err(SecretError::AlreadyExists { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_retried_a_bounded_number_of_times() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let p = provider(&fake).await;
        let n = name("retry");
        let v = p.create(&n).await.unwrap();
        // Two 503s then success: within 3 attempts.
        fake.fail_next(&[503, 429]);
        let before = fake.log().len();
        assert_eq!(p.current(&n).await.unwrap().id(), v.id());
        assert_eq!(fake.log().len() - before, 3);
        // Three 503s exhaust the 3 attempts: Unavailable (temporary), nothing more is sent.
        fake.fail_next(&[503, 503, 503, 503]);
        let before = fake.log().len();
        let e = p.current(&n).await.unwrap_err();
        assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
        assert_eq!(e.status(), relay_domain::error::ErrorStatus::Temporary);
        assert_eq!(fake.log().len() - before, 3);
        fake.fail_next(&[]);
        // A refusal is permanent: one attempt, PermissionDenied naming the secret.
        fake.fail_next(&[403]);
        let before = fake.log().len();
        match p.current(&n).await {
            Err(SecretError::PermissionDenied { name, .. }) => assert_eq!(name, n),
            other => panic!("403 must be PermissionDenied, got {other:?}"),
        }
        assert_eq!(fake.log().len() - before, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_service_is_cut_at_the_timeouts() {
    bounded(async {
        let fake = FakeSecretManager::start().await;
        let connection = test_connection("http://127.0.0.1:1", &fake.endpoint)
            .timeouts(
                Duration::from_secs(1),
                Duration::from_millis(300),
                Duration::from_secs(2),
            )
            .max_attempts(2);
        let p = provider_with(connection).await;
        let n = name("slow");
        fake.delay(Some(Duration::from_secs(20)));
        let started = Instant::now();
        let e = p.current(&n).await.unwrap_err();
        assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
        // Two attempts of at most 1 s each and a 300 ms pause take ~2.3 s; the fake would hang
        // for 20 s. The bound leaves room for a loaded machine while still telling a call cut
        // at its timeouts from one that waited for the answer.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(fake.log().len(), 2, "two bounded attempts, then give up");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_is_unavailable_not_not_found() {
    bounded(async {
        // Nothing listens on port 1.
        let client = GcpClient::new(&test_connection("http://127.0.0.1:1", "http://127.0.0.1:1"))
            .await
            .unwrap();
        let p = SecretManagerProvider::new(&client, SecretManagerOptions::default()).unwrap();
        let e = p.current(&name("nowhere")).await.unwrap_err();
        assert!(matches!(e, SecretError::Unavailable { .. }), "{e:?}");
    })
    .await;
}

#[tokio::test]
async fn a_provider_needs_a_project_and_a_valid_prefix() {
    let mut connection = test_connection("http://127.0.0.1:1", "http://127.0.0.1:1");
    connection.project = None;
    let client = GcpClient::new(&connection).await.unwrap();
    let e = SecretManagerProvider::new(&client, SecretManagerOptions::default()).unwrap_err();
    assert!(e.to_string().contains("project"), "{e}");
    let client = GcpClient::new(&test_connection("http://127.0.0.1:1", "http://127.0.0.1:1"))
        .await
        .unwrap();
    let e = SecretManagerProvider::new(
        &client,
        SecretManagerOptions {
            prefix: "relay.".into(),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("prefix"), "{e}");
}
