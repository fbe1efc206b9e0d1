//! The `ObjectStore` suite: round trips, create vs overwrite, not-found, key safety, listing,
//! and the WORM and conditional-put claims.

use std::sync::Arc;

use relay_domain::ports::{ObjectKey, ObjectStore, ObjectStoreError, PutMode, WormPosture};

use crate::fixtures::{must, unique};

fn key(prefix: &str, rest: &str) -> ObjectKey {
    must(ObjectKey::new(format!("{prefix}{rest}")), "object key")
}

/// Runs every rule of the object store contract against `store`, under a fresh key prefix.
pub async fn suite(store: Arc<dyn ObjectStore>) {
    let s = store.as_ref();
    puts_gets_heads_lists_and_deletes(s, &unique("os-basic")).await;
    create_refuses_an_existing_key(s, &unique("os-create")).await;
    overwrite_and_delete_follow_the_worm_posture(s, &unique("os-worm")).await;
    missing_keys_are_not_found(s, &unique("os-missing")).await;
    refuses_traversal_keys_and_keeps_odd_keys_inside(s, &unique("os-keys")).await;
    round_trips_large_and_empty_objects(s, &unique("os-large")).await;
    lists_sorted_and_filtered_by_prefix(s, &unique("os-list")).await;
    racing_creates_have_exactly_one_winner(store, &unique("os-race")).await;
}

/// The basic cycle: put, get, head, list, delete, and the key is gone.
pub async fn puts_gets_heads_lists_and_deletes(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "/evidence/run 1/spectrum ü.fid");
    let bytes = b"\x00\x01binary\xffdata".to_vec();
    let meta = must(store.put(&k, bytes.clone(), PutMode::Create).await, "put");
    assert_eq!(meta.key, k);
    assert_eq!(meta.size, bytes.len() as u64);
    assert_eq!(must(store.get(&k).await, "get"), bytes);
    let head = must(store.head(&k).await, "head");
    assert_eq!((head.key, head.size), (k.clone(), bytes.len() as u64));
    let listed = must(store.list(Some(prefix)).await, "list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, k);
    assert_eq!(listed[0].size, bytes.len() as u64);
    if store.capabilities().worm == WormPosture::Enforced {
        return;
    }
    must(store.delete(&k).await, "delete");
    assert!(matches!(
        store.get(&k).await,
        Err(ObjectStoreError::NotFound { .. })
    ));
    assert!(must(store.list(Some(prefix)).await, "list after delete").is_empty());
}

/// `PutMode::Create` on an existing key is `AlreadyExists` and leaves the object as it was.
pub async fn create_refuses_an_existing_key(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "/manifest.json");
    must(
        store.put(&k, b"first".to_vec(), PutMode::Create).await,
        "first create",
    );
    match store.put(&k, b"second".to_vec(), PutMode::Create).await {
        Err(ObjectStoreError::AlreadyExists { key }) => assert_eq!(key, k),
        other => panic!("second create must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(must(store.get(&k).await, "get"), b"first");
}

/// A WORM store refuses overwrite and delete with `PermissionDenied`; any other store does both.
pub async fn overwrite_and_delete_follow_the_worm_posture(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "/object");
    must(
        store.put(&k, b"v1".to_vec(), PutMode::Create).await,
        "create",
    );
    let overwrite = store.put(&k, b"v2".to_vec(), PutMode::Overwrite).await;
    if store.capabilities().worm == WormPosture::Enforced {
        assert!(
            matches!(overwrite, Err(ObjectStoreError::PermissionDenied { .. })),
            "a WORM store must refuse overwrite, got {overwrite:?}"
        );
        let delete = store.delete(&k).await;
        assert!(
            matches!(delete, Err(ObjectStoreError::PermissionDenied { .. })),
            "a WORM store must refuse delete, got {delete:?}"
        );
        assert_eq!(must(store.get(&k).await, "get"), b"v1");
    } else {
        let meta = must(overwrite, "overwrite");
        assert_eq!(meta.size, 2);
        assert_eq!(must(store.get(&k).await, "get"), b"v2");
        must(store.delete(&k).await, "delete");
        assert!(matches!(
            store.head(&k).await,
            Err(ObjectStoreError::NotFound { .. })
        ));
    }
}

/// `get`, `head` and `delete` of a missing key are `NotFound` naming the key.
pub async fn missing_keys_are_not_found(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "/never/written");
    match store.get(&k).await {
        Err(ObjectStoreError::NotFound { key }) => assert_eq!(key, k),
        other => panic!("get of a missing key must be NotFound, got {other:?}"),
    }
    assert!(matches!(
        store.head(&k).await,
        Err(ObjectStoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&k).await,
        Err(ObjectStoreError::NotFound { .. })
    ));
    // A prefix of a stored key is not an object.
    let deep = key(prefix, "/dir/leaf");
    must(
        store.put(&deep, b"x".to_vec(), PutMode::Create).await,
        "put leaf",
    );
    let dir = key(prefix, "/dir");
    assert!(matches!(
        store.get(&dir).await,
        Err(ObjectStoreError::NotFound { .. })
    ));
}

/// Keys that could escape the store are refused before reaching it; odd but valid keys are
/// stored under their prefix and nowhere else.
pub async fn refuses_traversal_keys_and_keeps_odd_keys_inside(
    store: &dyn ObjectStore,
    prefix: &str,
) {
    for bad in [
        format!("{prefix}/../escape"),
        format!("../{prefix}"),
        format!("/{prefix}/abs"),
        format!("{prefix}/./x"),
        format!("{prefix}//x"),
        format!("{prefix}\\..\\x"),
        format!("{prefix}/C:/x"),
        format!("{prefix}/nul\u{0}"),
        format!("{prefix}/"),
    ] {
        assert!(
            ObjectKey::new(bad.as_str()).is_err(),
            "{bad:?} must be refused"
        );
    }
    let odd = [
        key(prefix, "/..."),
        key(prefix, "/a..b/..c"),
        key(prefix, "/.hidden"),
    ];
    for k in &odd {
        must(
            store
                .put(k, k.as_str().as_bytes().to_vec(), PutMode::Create)
                .await,
            "put odd key",
        );
    }
    for k in &odd {
        assert_eq!(
            must(store.get(k).await, "get odd key"),
            k.as_str().as_bytes()
        );
    }
    let listed: Vec<ObjectKey> = must(store.list(Some(prefix)).await, "list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    let mut expected = odd.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
}

/// An 8 MiB object and an empty object round-trip exactly.
pub async fn round_trips_large_and_empty_objects(store: &dyn ObjectStore, prefix: &str) {
    let big: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let k = key(prefix, "/big.bin");
    let meta = must(
        store.put(&k, big.clone(), PutMode::Create).await,
        "put 8 MiB",
    );
    assert_eq!(meta.size, big.len() as u64);
    assert!(
        must(store.get(&k).await, "get 8 MiB") == big,
        "8 MiB object differs"
    );
    assert_eq!(must(store.head(&k).await, "head").size, big.len() as u64);
    let empty = key(prefix, "/empty");
    must(
        store.put(&empty, Vec::new(), PutMode::Create).await,
        "put empty",
    );
    assert!(must(store.get(&empty).await, "get empty").is_empty());
    assert_eq!(must(store.head(&empty).await, "head empty").size, 0);
}

/// `list` returns every key under the prefix, sorted, and nothing else; the prefix is a string
/// prefix, not a directory.
pub async fn lists_sorted_and_filtered_by_prefix(store: &dyn ObjectStore, prefix: &str) {
    let names = ["/b/2", "/a", "/b/1", "/ab", "/c/d/e/f", "/b2"];
    for n in names {
        must(
            store
                .put(&key(prefix, n), n.as_bytes().to_vec(), PutMode::Create)
                .await,
            "put",
        );
    }
    let all: Vec<String> = must(store.list(Some(prefix)).await, "list")
        .into_iter()
        .map(|m| m.key.as_str().trim_start_matches(prefix).to_owned())
        .collect();
    assert_eq!(all, ["/a", "/ab", "/b/1", "/b/2", "/b2", "/c/d/e/f"]);
    let b: Vec<String> = must(store.list(Some(&format!("{prefix}/b"))).await, "list b")
        .into_iter()
        .map(|m| m.key.as_str().trim_start_matches(prefix).to_owned())
        .collect();
    assert_eq!(b, ["/b/1", "/b/2", "/b2"]);
    let slash_b: Vec<String> = must(store.list(Some(&format!("{prefix}/b/"))).await, "list b/")
        .into_iter()
        .map(|m| m.key.as_str().trim_start_matches(prefix).to_owned())
        .collect();
    assert_eq!(slash_b, ["/b/1", "/b/2"]);
    let everything = must(store.list(None).await, "list all");
    let keys: Vec<&ObjectKey> = everything.iter().map(|m| &m.key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "list(None) must be sorted"
    );
    assert!(
        keys.iter()
            .filter(|k| k.as_str().starts_with(prefix))
            .count()
            == names.len()
    );
}

/// Where `conditional_put` is claimed, 8 racing `Create`s of one key have exactly one winner,
/// and the object holds the winner's bytes.
pub async fn racing_creates_have_exactly_one_winner(store: Arc<dyn ObjectStore>, prefix: &str) {
    if !store.capabilities().conditional_put {
        eprintln!("NOTE: {store:?} does not claim conditional_put; racing creates not checked");
        return;
    }
    let k = key(prefix, "/contested");
    let mut handles = Vec::new();
    for i in 0..8u8 {
        let store = Arc::clone(&store);
        let k = k.clone();
        handles.push(tokio::spawn(async move {
            let bytes = vec![i; 64 * 1024];
            (i, store.put(&k, bytes, PutMode::Create).await)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        match must(h.await, "racer task") {
            (i, Ok(_)) => winners.push(i),
            (_, Err(ObjectStoreError::AlreadyExists { .. })) => {}
            (_, Err(e)) => panic!("a losing create must be AlreadyExists, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create may win");
    assert_eq!(
        must(store.get(&k).await, "get"),
        vec![winners[0]; 64 * 1024]
    );
}
