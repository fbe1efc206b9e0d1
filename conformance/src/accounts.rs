//! The `AccountStore` suite: unique names, atomic bootstrap, optimistic updates, verbatim reads,
//! and secrets kept out of `Debug`.

use std::sync::Arc;

use relay_domain::Timestamp;
use relay_domain::ports::{Account, AccountStore, AccountStoreError, Role, TotpSecret, Username};

use crate::fixtures::{must, present, unique};

fn at(offset_secs: i64) -> Timestamp {
    must(
        Timestamp::from_unix_micros(1_764_075_475_000_000 + offset_secs * 1_000_000),
        "timestamp",
    )
}

/// A sample account with a fresh name (the hash is a syntactically valid PHC string).
pub fn sample_account(tag: &str, role: Role) -> Account {
    Account {
        username: must(Username::new(unique(tag)), "username"),
        full_name: "Dr. Jöns Prüfer".into(),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
        totp_secret: None,
        disabled: false,
        password_changed_at: Some(at(0)),
        failed_attempts: 0,
        failure_window_start: None,
        locked_until: None,
        created_at: at(0),
        version: 0,
        password_history: Vec::new(),
        last_login_at: None,
    }
}

/// Runs every rule of the account store contract. `empty` must be a store holding no account
/// (for the bootstrap rule); the other rules run on it after that one.
pub async fn suite(empty: Arc<dyn AccountStore>) {
    let s = empty.as_ref();
    create_first_is_atomic_and_only_on_an_empty_store(empty.clone()).await;
    creates_once_and_reads_back_verbatim(s).await;
    updates_are_optimistic_and_keep_identity(s).await;
    update_of_a_missing_account_is_not_found(s).await;
    lists_in_username_order_and_counts(s).await;
    never_shows_secrets_in_debug(s).await;
    keeps_password_history_and_last_login(s).await;
}

/// `create_first` succeeds once on an empty store; concurrent or later calls are `Precondition`.
pub async fn create_first_is_atomic_and_only_on_an_empty_store(store: Arc<dyn AccountStore>) {
    assert_eq!(
        must(store.count().await, "count"),
        0,
        "the store must start empty"
    );
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_first(&sample_account(&format!("first{i}"), Role::Admin))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match must(t.await, "join") {
            Ok(()) => won += 1,
            Err(AccountStoreError::Precondition(_)) => {}
            Err(e) => panic!("create_first must be Ok or Precondition, got {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one concurrent bootstrap may succeed");
    assert_eq!(must(store.count().await, "count"), 1);
}

/// `create` stores every field verbatim; a second `create` of the name is `AlreadyExists`.
pub async fn creates_once_and_reads_back_verbatim(store: &dyn AccountStore) {
    let mut a = sample_account("acct-create", Role::Reviewer);
    a.totp_secret = Some(TotpSecret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into()));
    a.failed_attempts = 3;
    a.failure_window_start = Some(at(10));
    a.locked_until = Some(at(20));
    a.password_changed_at = None;
    a.password_history = vec![
        "$argon2id$v=19$m=19456,t=2,p=1$b2xkc2FsdG9sZHNhbHQ$b2xkaGFzaG9sZGhhc2hvbGRoYXNob2xkaGFzaA"
            .into(),
    ];
    a.last_login_at = Some(at(5));
    must(store.create(&a).await, "create");
    let got = present(must(store.get(&a.username).await, "get"), "created account");
    assert_eq!(got, a, "an account reads back verbatim");
    let mut other = sample_account("acct-create-dup", Role::Admin);
    other.username = a.username.clone();
    match store.create(&other).await {
        Err(AccountStoreError::AlreadyExists(name)) => assert_eq!(name, a.username),
        other => panic!("a second create must be AlreadyExists, got {other:?}"),
    }
    let still = present(must(store.get(&a.username).await, "get"), "account");
    assert_eq!(
        still.role,
        Role::Reviewer,
        "a refused create changes nothing"
    );
    let missing = must(Username::new(unique("acct-missing")), "username");
    assert!(must(store.get(&missing).await, "get missing").is_none());
}

/// `update` needs the stored version, bumps it, and never changes `created_at`.
pub async fn updates_are_optimistic_and_keep_identity(store: &dyn AccountStore) {
    let a = sample_account("acct-update", Role::Operator);
    must(store.create(&a).await, "create");
    let mut changed = a.clone();
    changed.role = Role::Auditor;
    changed.disabled = true;
    changed.full_name = "Renamed Person".into();
    changed.created_at = at(999);
    changed.failed_attempts = 5;
    changed.locked_until = Some(at(900));
    let v1 = must(store.update(&changed).await, "update");
    assert_eq!(v1, a.version + 1, "update returns the new version");
    let got = present(must(store.get(&a.username).await, "get"), "account");
    assert_eq!(got.version, v1);
    assert_eq!(got.role, Role::Auditor);
    assert!(got.disabled);
    assert_eq!(got.full_name, "Renamed Person");
    assert_eq!(got.failed_attempts, 5);
    assert_eq!(got.locked_until, Some(at(900)));
    assert_eq!(got.created_at, a.created_at, "created_at never changes");
    // The caller's copy is now stale.
    match store.update(&changed).await {
        Err(AccountStoreError::Precondition(_)) => {}
        other => panic!("a stale update must be Precondition, got {other:?}"),
    }
    let after = present(must(store.get(&a.username).await, "get"), "account");
    assert_eq!(after.version, v1, "a refused update changes nothing");
}

/// Updating an account that does not exist is `NotFound`.
pub async fn update_of_a_missing_account_is_not_found(store: &dyn AccountStore) {
    let ghost = sample_account("acct-ghost", Role::Operator);
    match store.update(&ghost).await {
        Err(AccountStoreError::NotFound(name)) => assert_eq!(name, ghost.username),
        other => panic!("update of a missing account must be NotFound, got {other:?}"),
    }
}

/// `list` is ordered by username and holds every account; `count` agrees.
pub async fn lists_in_username_order_and_counts(store: &dyn AccountStore) {
    let before = must(store.count().await, "count");
    let b = sample_account("zz-list", Role::Reviewer);
    let a = sample_account("aa-list", Role::Reviewer);
    must(store.create(&b).await, "create b");
    must(store.create(&a).await, "create a");
    let list = must(store.list().await, "list");
    assert_eq!(list.len() as u64, before + 2);
    assert_eq!(must(store.count().await, "count"), before + 2);
    let names: Vec<&Username> = list.iter().map(|x| &x.username).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "list is ordered by username");
    assert!(names.contains(&&a.username) && names.contains(&&b.username));
}

/// Neither the account's `Debug` nor the store's shows the password hash or TOTP secret.
pub async fn never_shows_secrets_in_debug(store: &dyn AccountStore) {
    let mut a = sample_account("acct-debug", Role::Reviewer);
    a.totp_secret = Some(TotpSecret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into()));
    must(store.create(&a).await, "create");
    let got = present(must(store.get(&a.username).await, "get"), "account");
    for text in [format!("{got:?}"), format!("{store:?}")] {
        assert!(!text.contains("argon2id"), "hash shown in {text}");
        assert!(!text.contains("GEZDGNBV"), "TOTP secret shown in {text}");
    }
}

/// The password history (newest first, in order) and the last login are stored and updated
/// verbatim, and an empty history reads back empty.
pub async fn keeps_password_history_and_last_login(store: &dyn AccountStore) {
    let a = sample_account("acct-history", Role::Reviewer);
    must(store.create(&a).await, "create");
    let got = present(must(store.get(&a.username).await, "get"), "account");
    assert!(
        got.password_history.is_empty(),
        "a new account has no history"
    );
    assert_eq!(got.last_login_at, None);
    let mut changed = got.clone();
    changed.password_history = (0..5)
        .map(|i| format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ{i}$aGFzaGhhc2g{i}"))
        .collect();
    changed.last_login_at = Some(at(42));
    must(store.update(&changed).await, "update");
    let got = present(must(store.get(&a.username).await, "get"), "account");
    assert_eq!(
        got.password_history, changed.password_history,
        "history in order"
    );
    assert_eq!(got.last_login_at, Some(at(42)));
    let text = format!("{got:?}");
    assert!(
        !text.contains("c2FsdHNhbHQ"),
        "history hashes shown in {text}"
    );
}
