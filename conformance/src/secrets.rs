//! The `SecretProvider` suite: create once, rotate without losing old versions, not-found, and
//! secret bytes never shown.

use relay_domain::KeyId;
use relay_domain::ports::{SecretError, SecretName, SecretProvider, SecretProviderExt};

use crate::fixtures::{must, present, unique};

fn name(tag: &str) -> SecretName {
    must(SecretName::new(unique(tag)), "secret name")
}

/// Runs every rule of the secret provider contract against `provider`, with fresh names.
pub async fn suite(provider: &dyn SecretProvider) {
    creates_a_256_bit_secret_once(provider).await;
    rotation_keeps_old_versions_readable(provider).await;
    missing_secrets_are_not_found(provider).await;
    never_shows_secret_bytes(provider).await;
    key_ring_holds_every_version(provider).await;
    imports_keep_their_ids_or_are_refused_whole(provider).await;
}

/// `create` makes 32 random bytes; a second `create` is `AlreadyExists` and changes nothing.
pub async fn creates_a_256_bit_secret_once(provider: &dyn SecretProvider) {
    assert!(!provider.kind().is_empty(), "a provider names its kind");
    let n = name("sec-create");
    let created = must(provider.create(&n).await, "create");
    assert_eq!(created.expose().len(), 32, "a new secret is 256 bits");
    assert!(
        created.expose().iter().any(|b| *b != 0),
        "a new secret is not all zeros"
    );
    match provider.create(&n).await {
        Err(SecretError::AlreadyExists { name }) => assert_eq!(name, n),
        other => panic!("second create must be AlreadyExists, got {other:?}"),
    }
    let current = must(provider.current(&n).await, "current");
    assert_eq!(current.id(), created.id());
    assert!(current.ct_matches(created.expose()));
    assert_eq!(
        must(provider.versions(&n).await, "versions"),
        vec![created.id().clone()]
    );
    let other = must(
        provider.create(&name("sec-create-other")).await,
        "create another",
    );
    assert_ne!(other.expose(), created.expose(), "two secrets must differ");
    assert_ne!(other.id(), created.id());
}

/// `rotate` adds a new current version with a new id; older versions stay readable by id.
pub async fn rotation_keeps_old_versions_readable(provider: &dyn SecretProvider) {
    let n = name("sec-rotate");
    let v1 = must(provider.create(&n).await, "create");
    let v2 = must(provider.rotate(&n).await, "rotate once");
    let v3 = must(provider.rotate(&n).await, "rotate twice");
    assert_ne!(v2.id(), v1.id(), "a rotated version has a new id");
    assert_ne!(v3.id(), v2.id());
    assert_ne!(v2.expose(), v1.expose(), "a rotated version has new bytes");
    let current = must(provider.current(&n).await, "current");
    assert_eq!(current.id(), v3.id(), "the newest version is current");
    assert!(current.ct_matches(v3.expose()));
    for old in [&v1, &v2, &v3] {
        let got = must(provider.version(&n, old.id()).await, "version by id");
        assert_eq!(got.id(), old.id());
        assert!(got.ct_matches(old.expose()), "version {} changed", old.id());
    }
    let ids = must(provider.versions(&n).await, "versions");
    assert_eq!(
        ids,
        vec![v1.id().clone(), v2.id().clone(), v3.id().clone()],
        "oldest first"
    );
    let all = must(provider.all_versions(&n).await, "all versions");
    assert_eq!(all.len(), 3, "all_versions holds every version");
    for (got, want) in all.iter().zip([&v1, &v2, &v3]) {
        assert_eq!(got.id(), want.id(), "all_versions is oldest first");
        assert!(
            got.ct_matches(want.expose()),
            "version {} changed",
            want.id()
        );
    }
}

/// Every read of a missing secret or version is `NotFound` naming it.
pub async fn missing_secrets_are_not_found(provider: &dyn SecretProvider) {
    let n = name("sec-missing");
    match provider.current(&n).await {
        Err(SecretError::NotFound { name, version }) => {
            assert_eq!(name, n);
            assert_eq!(version, None);
        }
        other => panic!("current of a missing secret must be NotFound, got {other:?}"),
    }
    assert!(matches!(
        provider.versions(&n).await,
        Err(SecretError::NotFound { .. })
    ));
    assert!(matches!(
        provider.all_versions(&n).await,
        Err(SecretError::NotFound { .. })
    ));
    assert!(matches!(
        provider.key_ring(&n).await,
        Err(SecretError::NotFound { .. })
    ));
    assert!(matches!(
        provider.rotate(&n).await,
        Err(SecretError::NotFound { .. })
    ));
    must(provider.create(&n).await, "create");
    let unknown = must(KeyId::new("k-0000000000000000"), "key id");
    match provider.version(&n, &unknown).await {
        Err(SecretError::NotFound { version, .. }) => assert_eq!(version, Some(unknown)),
        other => panic!("an unknown version must be NotFound, got {other:?}"),
    }
}

/// Neither the value's `Debug`, the provider's `Debug`, nor any error text holds the bytes.
pub async fn never_shows_secret_bytes(provider: &dyn SecretProvider) {
    let n = name("sec-redact");
    let v = must(provider.create(&n).await, "create");
    let hex_lower = hex::encode(v.expose());
    let hex_upper = hex_lower.to_uppercase();
    let bytes_debug = format!("{:?}", v.expose());
    let mut shown = vec![
        format!("{v:?}"),
        format!("{provider:?}"),
        format!("{:?}", must(provider.current(&n).await, "current")),
    ];
    if let Err(e) = provider.create(&n).await {
        shown.push(format!("{e} / {e:?}"));
    }
    let key = must(v.to_trail_key(), "trail key");
    shown.push(format!("{key:?}"));
    for text in shown {
        assert!(
            !text.contains(&hex_lower),
            "secret bytes (hex) shown in {text:?}"
        );
        assert!(
            !text.contains(&hex_upper),
            "secret bytes (HEX) shown in {text:?}"
        );
        assert!(
            !text.contains(&bytes_debug),
            "secret bytes (list) shown in {text:?}"
        );
    }
}

/// `key_ring` holds every version as a trail key, the newest current.
pub async fn key_ring_holds_every_version(provider: &dyn SecretProvider) {
    let n = name("sec-ring");
    let v1 = must(provider.create(&n).await, "create");
    let v2 = must(provider.rotate(&n).await, "rotate");
    let ring = must(provider.key_ring(&n).await, "key ring");
    assert!(ring.get(v1.id()).is_some(), "old version in the ring");
    let current = present(ring.current(), "current key");
    assert_eq!(current.id(), v2.id());
    assert_eq!(current.expose_secret(), v2.expose());
    let via_ext = must(provider.current_or_create(&n).await, "current_or_create");
    assert_eq!(
        via_ext.id(),
        v2.id(),
        "current_or_create must not replace an existing secret"
    );
}

/// `import` (issue 24) either keeps versions made elsewhere with their ids (a missing secret is
/// created, the last imported is current, an identical re-import adds nothing, an id already
/// held with other bytes is refused and stores nothing), or, for a provider that assigns its
/// own ids, is refused as a whole and creates nothing.
pub async fn imports_keep_their_ids_or_are_refused_whole(provider: &dyn SecretProvider) {
    use relay_domain::ports::SecretValue;
    let n = name("sec-import");
    let v = |id: &str, byte: u8| {
        SecretValue::new(
            must(KeyId::new(format!("{id}-{}", unique("k"))), "key id"),
            vec![byte; 32],
        )
    };
    let (a, b) = (v("edge-a", 1), v("edge-b", 2));
    match provider.import(&n, &[a.clone(), b.clone()]).await {
        Err(SecretError::ImportUnsupported { .. }) => {
            assert!(
                matches!(
                    provider.versions(&n).await,
                    Err(SecretError::NotFound { .. })
                ),
                "a refused import creates nothing"
            );
            return;
        }
        Err(e) => panic!("import into a new secret failed: {e}"),
        Ok(added) => assert_eq!(added, vec![a.id().clone(), b.id().clone()]),
    }
    assert_eq!(
        must(provider.versions(&n).await, "versions"),
        vec![a.id().clone(), b.id().clone()]
    );
    let current = must(provider.current(&n).await, "current");
    assert_eq!(current.id(), b.id(), "the last imported is current");
    assert!(current.ct_matches(b.expose()));
    assert_eq!(
        must(
            provider.import(&n, &[a.clone(), b.clone()]).await,
            "re-import"
        ),
        Vec::<KeyId>::new(),
        "an identical re-import adds nothing"
    );
    let swapped = SecretValue::new(a.id().clone(), vec![9; 32]);
    let c = v("edge-c", 3);
    assert!(
        matches!(
            provider.import(&n, &[c.clone(), swapped]).await,
            Err(SecretError::VersionConflict { .. })
        ),
        "an id held with other bytes is refused"
    );
    assert_eq!(
        must(provider.versions(&n).await, "versions after the refusal"),
        vec![a.id().clone(), b.id().clone()],
        "a refused import stores nothing, not even its other versions"
    );
    let held = must(provider.version(&n, a.id()).await, "version a");
    assert!(held.ct_matches(a.expose()), "the held bytes are unchanged");
    // A rotation after an import keeps every imported version.
    let rotated = must(provider.rotate(&n).await, "rotate");
    let ids = must(provider.versions(&n).await, "versions after rotate");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids.last(), Some(rotated.id()));
}
