use std::sync::Arc;

use super::*;
use crate::memory::{InMemoryRecordStore, ManualClock};
use crate::ports::{Role, Username};
use crate::{
    Actor, ActorSource, AppendService, Device, EventDraft, EventKind, KeyId, Payload, Record,
    TrailId, TrailKey,
};

fn at(s: &str) -> Timestamp {
    Timestamp::parse_canonical(s).unwrap()
}

fn chain(events: &[(&str, &str, serde_json::Value)]) -> Vec<Record> {
    let key = TrailKey::new(KeyId::new("k-t").unwrap(), &[3u8; 32]).unwrap();
    let store = Arc::new(InMemoryRecordStore::new());
    let clock = Arc::new(ManualClock::new(at("2026-01-01T00:00:00.000000Z")));
    let service = AppendService::new(store, clock, key);
    futures::executor::block_on(async {
        let mut out = Vec::new();
        for (kind, actor, payload) in events {
            out.push(
                service
                    .append(EventDraft {
                        trail_id: TrailId::relay(),
                        kind: EventKind::new(*kind).unwrap(),
                        actor: Some(Actor::new(*actor).unwrap()),
                        actor_source: ActorSource::Token,
                        occurred_at: None,
                        device: Device::new("ws").unwrap(),
                        project: None,
                        subject: None,
                        payload: Payload::from_value(payload).unwrap(),
                    })
                    .await
                    .unwrap(),
            );
        }
        out
    })
}

fn account(name: &str, role: Role, changed: Option<&str>) -> Account {
    Account {
        username: Username::new(name.to_owned()).unwrap(),
        full_name: format!("{name} Person"),
        role,
        password_hash: "h".into(),
        totp_secret: None,
        disabled: false,
        password_changed_at: changed.map(at),
        failed_attempts: 0,
        failure_window_start: None,
        locked_until: None,
        created_at: at("2026-01-01T00:00:00.000000Z"),
        version: 1,
        password_history: Vec::new(),
        last_login_at: None,
    }
}

fn replay(records: &[Record]) -> AccountReplay {
    let mut r = AccountReplay::new();
    for record in records {
        r.observe(record);
    }
    r
}

fn events() -> Vec<Record> {
    use serde_json::json;
    chain(&[
        (
            "REGISTER",
            "ada",
            json!({"username": "ada", "full_name": "ada Person", "role": "admin", "bootstrap": true}),
        ),
        (
            "REGISTER",
            "ada",
            json!({"username": "bob", "full_name": "bob Person", "role": "admin", "bootstrap": "second_admin", "reason": "second admin"}),
        ),
        (
            "REGISTER",
            "ada",
            json!({"username": "rita", "full_name": "rita Person", "role": "operator", "bootstrap": false, "reason": "new hire"}),
        ),
        (
            "CHANGE_PROPOSED",
            "ada",
            json!({"change_id": "cr-1", "setting": "account_role", "reason": "promotion"}),
        ),
        (
            "ACCOUNT_CHANGED",
            "bob",
            json!({"username": "rita", "changes": {"role": {"from": "operator", "to": "reviewer"}}, "change_id": "cr-1", "proposer": "ada"}),
        ),
        (
            "LOGIN_FAILED",
            "relay",
            json!({"username": "RITA", "answer": "invalid_credentials"}),
        ),
        (
            "LOGIN_FAILED",
            "relay",
            json!({"username": "nobody", "answer": "invalid_credentials"}),
        ),
    ])
}

// REQ: R3.2
#[test]
fn review_lists_role_history_with_the_four_eyes_change_and_flags_the_bootstrap_admin() {
    let records = events();
    let r = replay(&records);
    let accounts = vec![
        account("ada", Role::Admin, Some("2026-01-01T00:00:00.000000Z")),
        account("bob", Role::Admin, None),
        account("rita", Role::Reviewer, None),
    ];
    let review = build_review(&accounts, &r, at("2026-01-02T00:00:00.000000Z"), i64::MAX);
    let bob = &review.accounts[1];
    assert!(bob.flags.contains(&"bootstrap_second_admin".to_owned()));
    assert_eq!(bob.creation, Some(Creation::SecondAdminBootstrap));
    let rita = &review.accounts[2];
    assert_eq!(rita.role_history.len(), 2);
    let change = &rita.role_history[1];
    assert_eq!(change.from.as_deref(), Some("operator"));
    assert_eq!(change.to, "reviewer");
    assert_eq!(change.by, "bob");
    assert_eq!(change.proposed_by.as_deref(), Some("ada"));
    assert_eq!(change.reason.as_deref(), Some("promotion"));
    assert_eq!(rita.failed_logins, 1);
    assert_eq!(review.failed_logins_unknown_names, 1);
    assert_eq!(review.digest, review.content_digest());
    assert!(
        row_disagreements(&accounts, &r).is_empty(),
        "{:?}",
        row_disagreements(&accounts, &r)
    );
}

// REQ: R3.2
#[test]
fn an_edited_row_is_named_with_its_field() {
    let records = events();
    let r = replay(&records);
    let mut rita = account("rita", Role::Admin, None);
    rita.disabled = true;
    let accounts = vec![
        account("ada", Role::Admin, Some("2026-01-01T00:00:00.000000Z")),
        account("bob", Role::Admin, Some("2025-06-01T00:00:00.000000Z")),
        rita,
        account("mallory", Role::Admin, None),
    ];
    let found: Vec<String> = row_disagreements(&accounts, &r)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        found.contains(&"rita: role stored=admin chained=reviewer".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"rita: disabled stored=true chained=false".to_owned()),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("bob: password_changed_at stored=2025-06-01")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("mallory: account stored=present")),
        "{found:?}"
    );
}

// REQ: R3.2
#[test]
fn the_digest_changes_with_the_content_but_not_with_the_time_of_generation() {
    let records = events();
    let r = replay(&records);
    let accounts = vec![account(
        "ada",
        Role::Admin,
        Some("2026-01-01T00:00:00.000000Z"),
    )];
    let one = build_review(&accounts, &r, at("2026-01-02T00:00:00.000000Z"), i64::MAX);
    let mut later = build_review(&accounts, &r, at("2026-01-02T00:00:01.000000Z"), i64::MAX);
    assert_eq!(one.digest, later.digest);
    later.accounts[0].role = "auditor".into();
    assert_ne!(one.digest, later.content_digest());
}
