//! In-memory adapters: real implementations of the ports with no I/O, for embedding, examples
//! and tests (like `object_store`'s `InMemory`). Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::chain::check_batch;
use crate::ids::TrailId;
use crate::ports::accounts::{Account, AccountStore, AccountStoreError, Username};
use crate::ports::forward::{
    DeadLetter, ForwardCursor, ForwardCursorError, ForwardCursorStore, ForwardState,
};
use crate::ports::record_store::{
    AppendOnlyEnforcement, AppendReceipt, Head, RecordStore, RecordStoreCapabilities,
    RecordStoreError,
};
use crate::ports::time_source::{TimePosture, TimeSource, TimeSourceError, TimedInstant};
use crate::record::Record;
use crate::timestamp::{TimeLabel, Timestamp};

/// A record store in memory, enforcing the full [`RecordStore`] contract.
#[derive(Debug, Default)]
pub struct InMemoryRecordStore {
    trails: Mutex<BTreeMap<TrailId, Vec<Record>>>,
}

impl InMemoryRecordStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RecordStore for InMemoryRecordStore {
    fn capabilities(&self) -> RecordStoreCapabilities {
        // Nothing outside this type can reach the records, so append-only holds by construction.
        RecordStoreCapabilities::new(true, false)
    }

    async fn append_only_enforcement(&self) -> Result<AppendOnlyEnforcement, RecordStoreError> {
        Ok(AppendOnlyEnforcement {
            mechanism: "in-memory store (by construction)".into(),
            present: vec!["no operation updates or deletes a stored record".into()],
            missing: Vec::new(),
        })
    }

    async fn append(&self, records: &[Record]) -> Result<AppendReceipt, RecordStoreError> {
        let mut trails = self.trails.lock().unwrap_or_else(PoisonError::into_inner);
        let first = records
            .first()
            .ok_or_else(|| RecordStoreError::InvalidBatch("empty batch".into()))?;
        let stored = trails.entry(first.trail_id.clone()).or_default();
        let present = check_batch(stored, records)?;
        stored.extend_from_slice(&records[present..]);
        let last = stored
            .last()
            .ok_or_else(|| RecordStoreError::InvalidBatch("empty batch".into()))?;
        Ok(AppendReceipt::stored(
            records.len() - present,
            present,
            last,
        ))
    }

    async fn head(&self, trail: &TrailId) -> Result<Option<Head>, RecordStoreError> {
        let trails = self.trails.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(trails.get(trail).and_then(|v| v.last()).map(|r| Head {
            seq: r.chain_seq,
            checksum: r.checksum,
        }))
    }

    async fn read(
        &self,
        trail: &TrailId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, RecordStoreError> {
        let trails = self.trails.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(trails
            .get(trail)
            .map(|v| {
                v.iter()
                    .skip(after.min(v.len() as u64) as usize)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn trails(&self) -> Result<Vec<(TrailId, Head)>, RecordStoreError> {
        let trails = self.trails.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(trails
            .iter()
            .filter_map(|(t, v)| {
                v.last().map(|r| {
                    (
                        t.clone(),
                        Head {
                            seq: r.chain_seq,
                            checksum: r.checksum,
                        },
                    )
                })
            })
            .collect())
    }
}

/// An account store in memory, enforcing the full [`AccountStore`] contract.
#[derive(Debug, Default)]
pub struct InMemoryAccountStore {
    accounts: Mutex<BTreeMap<Username, Account>>,
}

impl InMemoryAccountStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AccountStore for InMemoryAccountStore {
    async fn create(&self, account: &Account) -> Result<(), AccountStoreError> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.contains_key(&account.username) {
            return Err(AccountStoreError::AlreadyExists(account.username.clone()));
        }
        accounts.insert(account.username.clone(), account.clone());
        Ok(())
    }

    async fn create_first(&self, account: &Account) -> Result<(), AccountStoreError> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if !accounts.is_empty() {
            return Err(AccountStoreError::Precondition(
                "an account already exists".into(),
            ));
        }
        accounts.insert(account.username.clone(), account.clone());
        Ok(())
    }

    async fn get(&self, username: &Username) -> Result<Option<Account>, AccountStoreError> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(accounts.get(username).cloned())
    }

    async fn list(&self) -> Result<Vec<Account>, AccountStoreError> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(accounts.values().cloned().collect())
    }

    async fn update(&self, account: &Account) -> Result<u64, AccountStoreError> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = accounts
            .get_mut(&account.username)
            .ok_or_else(|| AccountStoreError::NotFound(account.username.clone()))?;
        if stored.version != account.version {
            return Err(AccountStoreError::Precondition(format!(
                "account {} was changed meanwhile (version {} != {})",
                account.username, stored.version, account.version
            )));
        }
        let created_at = stored.created_at;
        *stored = account.clone();
        stored.created_at = created_at;
        stored.version = account.version + 1;
        Ok(stored.version)
    }

    async fn count(&self) -> Result<u64, AccountStoreError> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(accounts.len() as u64)
    }
}

/// A clock that reads a settable instant and advances one microsecond per reading.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<i64>,
    label: TimeLabel,
}

impl ManualClock {
    /// A clock starting at `start`, labelling instants `system`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start.unix_micros()),
            label: TimeLabel::System,
        }
    }

    /// Sets the clock (it may go backwards, like a real clock stepping).
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to.unix_micros();
    }
}

#[async_trait]
impl TimeSource for ManualClock {
    async fn now(&self) -> Result<TimedInstant, TimeSourceError> {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        let at = Timestamp::from_unix_micros(*now)
            .map_err(|e| TimeSourceError::OutOfRange(e.to_string()))?;
        *now += 1;
        Ok(TimedInstant {
            at,
            label: self.label,
        })
    }

    fn posture(&self) -> TimePosture {
        TimePosture {
            kind: "manual",
            label: self.label,
            detail: "manual clock (tests and embedding)".into(),
        }
    }
}

/// A [`ForwardCursorStore`] in memory (embedding, tests); durable only as long as the process.
#[derive(Debug, Default)]
pub struct InMemoryForwardCursorStore {
    cursors: Mutex<BTreeMap<TrailId, ForwardCursor>>,
}

impl InMemoryForwardCursorStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, trail: &TrailId, f: impl FnOnce(&mut ForwardCursor)) {
        let mut map = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        let cursor = map
            .entry(trail.clone())
            .or_insert_with(|| ForwardCursor::start(trail.clone()));
        f(cursor);
    }
}

#[async_trait]
impl ForwardCursorStore for InMemoryForwardCursorStore {
    async fn get(&self, trail: &TrailId) -> Result<Option<ForwardCursor>, ForwardCursorError> {
        let map = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(trail).cloned())
    }

    async fn set_acked(&self, trail: &TrailId, seq: u64) -> Result<(), ForwardCursorError> {
        self.update(trail, |c| c.acked_seq = c.acked_seq.max(seq));
        Ok(())
    }

    async fn set_poisoned(
        &self,
        trail: &TrailId,
        dead_letter: &DeadLetter,
    ) -> Result<(), ForwardCursorError> {
        self.update(trail, |c| {
            c.state = ForwardState::Poisoned(dead_letter.clone())
        });
        Ok(())
    }

    async fn resume(&self, trail: &TrailId) -> Result<(), ForwardCursorError> {
        self.update(trail, |c| c.state = ForwardState::Active);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ForwardCursor>, ForwardCursorError> {
        let map = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map.values().cloned().collect())
    }
}

/// A [`ReceiptStore`](crate::ports::ReceiptStore) in memory (embedding, tests), enforcing its
/// contract (first receipt wins, identical retries acknowledged).
#[derive(Debug, Default)]
pub struct InMemoryReceiptStore {
    receipts: Mutex<BTreeMap<(TrailId, u64), crate::ports::Receipt>>,
}

impl InMemoryReceiptStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::ports::ReceiptStore for InMemoryReceiptStore {
    async fn record(
        &self,
        receipt: &crate::ports::Receipt,
    ) -> Result<(), crate::ports::ReceiptError> {
        receipt.check()?;
        let mut map = self.receipts.lock().unwrap_or_else(PoisonError::into_inner);
        let overlapping: Vec<crate::ports::Receipt> = map
            .values()
            .filter(|r| {
                r.trail_id == receipt.trail_id && r.overlaps(receipt.first_seq, receipt.last_seq)
            })
            .cloned()
            .collect();
        if crate::ports::receipts::decide_record(receipt, &overlapping)? {
            map.insert(
                (receipt.trail_id.clone(), receipt.first_seq),
                receipt.clone(),
            );
        }
        Ok(())
    }

    async fn receipts(
        &self,
        trail: &TrailId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<crate::ports::Receipt>, crate::ports::ReceiptError> {
        let map = self.receipts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .values()
            .filter(|r| &r.trail_id == trail && r.overlaps(from_seq, to_seq))
            .cloned()
            .collect())
    }
}

/// A change-request store in memory, enforcing the full
/// [`ChangeRequestStore`](crate::ports::ChangeRequestStore) contract.
#[derive(Debug, Default)]
pub struct InMemoryChangeRequestStore {
    requests: Mutex<Vec<crate::ports::ChangeRequest>>,
    baseline: Mutex<Option<String>>,
}

impl InMemoryChangeRequestStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::ports::ChangeRequestStore for InMemoryChangeRequestStore {
    async fn propose(
        &self,
        request: &crate::ports::ChangeRequest,
    ) -> Result<(), crate::ports::ChangeStoreError> {
        let mut all = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if all.iter().any(|r| r.id == request.id) {
            return Err(crate::ports::ChangeStoreError::AlreadyExists(
                request.id.clone(),
            ));
        }
        all.push(request.clone());
        Ok(())
    }

    async fn get(
        &self,
        id: &str,
    ) -> Result<crate::ports::ChangeRequest, crate::ports::ChangeStoreError> {
        let all = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| crate::ports::ChangeStoreError::NotFound(id.to_owned()))
    }

    async fn list(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::ports::ChangeRequest>, crate::ports::ChangeStoreError> {
        let all = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all.iter().rev().take(limit).cloned().collect())
    }

    async fn decide(
        &self,
        id: &str,
        decision: &crate::ports::ChangeDecision,
    ) -> Result<crate::ports::ChangeRequest, crate::ports::ChangeStoreError> {
        let mut all = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let request = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| crate::ports::ChangeStoreError::NotFound(id.to_owned()))?;
        crate::ports::changes::apply_decision(request, decision)?;
        Ok(request.clone())
    }

    async fn config_baseline(&self) -> Result<Option<String>, crate::ports::ChangeStoreError> {
        Ok(self
            .baseline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn set_config_baseline(
        &self,
        canonical_json: &str,
    ) -> Result<(), crate::ports::ChangeStoreError> {
        *self.baseline.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(canonical_json.to_owned());
        Ok(())
    }
}

/// An object store in memory (like `object_store`'s `InMemory`): a real implementation of the
/// [`ObjectStore`](crate::ports::ObjectStore) contract for embedding and tests, with atomic
/// conditional puts and no WORM protection (anything in the process may overwrite or delete).
#[derive(Debug, Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<BTreeMap<String, (crate::ports::ObjectKey, Vec<u8>)>>,
}

impl InMemoryObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::ports::ObjectStore for InMemoryObjectStore {
    fn capabilities(&self) -> crate::ports::ObjectStoreCapabilities {
        crate::ports::ObjectStoreCapabilities::new(true, crate::ports::WormPosture::Unenforced)
    }

    async fn put(
        &self,
        key: &crate::ports::ObjectKey,
        bytes: Vec<u8>,
        mode: crate::ports::PutMode,
    ) -> Result<crate::ports::ObjectMeta, crate::ports::ObjectStoreError> {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if mode == crate::ports::PutMode::Create && objects.contains_key(key.as_str()) {
            return Err(crate::ports::ObjectStoreError::AlreadyExists { key: key.clone() });
        }
        let size = bytes.len() as u64;
        objects.insert(key.as_str().to_owned(), (key.clone(), bytes));
        Ok(crate::ports::ObjectMeta {
            key: key.clone(),
            size,
        })
    }

    async fn get(
        &self,
        key: &crate::ports::ObjectKey,
    ) -> Result<Vec<u8>, crate::ports::ObjectStoreError> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects
            .get(key.as_str())
            .map(|(_, bytes)| bytes.clone())
            .ok_or_else(|| crate::ports::ObjectStoreError::NotFound { key: key.clone() })
    }

    async fn head(
        &self,
        key: &crate::ports::ObjectKey,
    ) -> Result<crate::ports::ObjectMeta, crate::ports::ObjectStoreError> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects
            .get(key.as_str())
            .map(|(k, bytes)| crate::ports::ObjectMeta {
                key: k.clone(),
                size: bytes.len() as u64,
            })
            .ok_or_else(|| crate::ports::ObjectStoreError::NotFound { key: key.clone() })
    }

    async fn delete(
        &self,
        key: &crate::ports::ObjectKey,
    ) -> Result<(), crate::ports::ObjectStoreError> {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects
            .remove(key.as_str())
            .map(|_| ())
            .ok_or_else(|| crate::ports::ObjectStoreError::NotFound { key: key.clone() })
    }

    async fn list(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<crate::ports::ObjectMeta>, crate::ports::ObjectStoreError> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(objects
            .iter()
            .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
            .map(|(_, (key, bytes))| crate::ports::ObjectMeta {
                key: key.clone(),
                size: bytes.len() as u64,
            })
            .collect())
    }
}

/// A notary in memory: a real implementation of the [`Notary`](crate::ports::Notary) contract
/// for embedding and tests. It is not write-once storage and says so
/// ([`WormPosture::Unenforced`](crate::ports::WormPosture::Unenforced)).
#[derive(Debug, Default)]
pub struct InMemoryNotary {
    anchors: Mutex<BTreeMap<TrailId, Vec<crate::ports::Anchor>>>,
}

impl InMemoryNotary {
    /// An empty notary.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::ports::Notary for InMemoryNotary {
    fn kind(&self) -> &'static str {
        "in-memory"
    }

    fn worm_posture(&self) -> crate::ports::WormPosture {
        crate::ports::WormPosture::Unenforced
    }

    async fn anchor(
        &self,
        anchor: &crate::ports::Anchor,
    ) -> Result<crate::ports::AnchorReceipt, crate::ports::NotaryError> {
        let mut all = self.anchors.lock().unwrap_or_else(PoisonError::into_inner);
        let list = all.entry(anchor.trail_id.clone()).or_default();
        list.push(anchor.clone());
        // Ordered by seq then time, as the contract says; the sort is stable.
        list.sort_by_key(|a| (a.seq, a.anchored_at));
        Ok(crate::ports::AnchorReceipt {
            location: format!("memory:{}#{}", anchor.trail_id, list.len()),
            retain_until: None,
        })
    }

    async fn anchors(
        &self,
        trail: &TrailId,
    ) -> Result<Vec<crate::ports::Anchor>, crate::ports::NotaryError> {
        let all = self.anchors.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all.get(trail).cloned().unwrap_or_default())
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, crate::ports::NotaryError> {
        let all = self.anchors.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all.keys().cloned().collect())
    }
}

/// Where [`InMemorySecretProvider`] takes the bytes of new secrets: the domain has no source of
/// randomness, so the embedder injects one (e.g. `rand::random` or the OS CSPRNG).
pub type SeedSource = Box<dyn FnMut() -> [u8; 32] + Send>;

/// A secret provider in memory: a real implementation of the
/// [`SecretProvider`](crate::ports::SecretProvider) contract (versions, rotation, key ids from
/// [`TrailKey::fingerprint_id`](crate::TrailKey::fingerprint_id)) for embedding and tests.
/// Secrets live only as long as the process; new secret bytes come from an injected
/// [`SeedSource`].
pub struct InMemorySecretProvider {
    seeds: Mutex<SeedSource>,
    secrets: Mutex<BTreeMap<crate::ports::SecretName, Vec<crate::ports::SecretValue>>>,
}

impl std::fmt::Debug for InMemorySecretProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemorySecretProvider")
            .finish_non_exhaustive()
    }
}

impl InMemorySecretProvider {
    /// A provider drawing the bytes of each new secret version from `seeds`. Use a CSPRNG in
    /// anything but tests.
    pub fn with_seed_source(seeds: SeedSource) -> Self {
        Self {
            seeds: Mutex::new(seeds),
            secrets: Mutex::new(BTreeMap::new()),
        }
    }

    fn new_version(&self) -> crate::ports::SecretValue {
        let bytes = (self.seeds.lock().unwrap_or_else(PoisonError::into_inner))();
        let id = crate::TrailKey::fingerprint_id(&bytes);
        crate::ports::SecretValue::new(id, bytes.to_vec())
    }
}

#[async_trait]
impl crate::ports::SecretProvider for InMemorySecretProvider {
    fn kind(&self) -> &'static str {
        "in-memory"
    }

    async fn current(
        &self,
        name: &crate::ports::SecretName,
    ) -> Result<crate::ports::SecretValue, crate::ports::SecretError> {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets
            .get(name)
            .and_then(|v| v.last())
            .cloned()
            .ok_or_else(|| crate::ports::SecretError::NotFound {
                name: name.clone(),
                version: None,
            })
    }

    async fn version(
        &self,
        name: &crate::ports::SecretName,
        id: &crate::KeyId,
    ) -> Result<crate::ports::SecretValue, crate::ports::SecretError> {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets
            .get(name)
            .and_then(|v| v.iter().find(|s| s.id() == id))
            .cloned()
            .ok_or_else(|| crate::ports::SecretError::NotFound {
                name: name.clone(),
                version: Some(id.clone()),
            })
    }

    async fn versions(
        &self,
        name: &crate::ports::SecretName,
    ) -> Result<Vec<crate::KeyId>, crate::ports::SecretError> {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets
            .get(name)
            .map(|v| v.iter().map(|s| s.id().clone()).collect())
            .ok_or_else(|| crate::ports::SecretError::NotFound {
                name: name.clone(),
                version: None,
            })
    }

    async fn create(
        &self,
        name: &crate::ports::SecretName,
    ) -> Result<crate::ports::SecretValue, crate::ports::SecretError> {
        let value = self.new_version();
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        if secrets.contains_key(name) {
            return Err(crate::ports::SecretError::AlreadyExists { name: name.clone() });
        }
        secrets.insert(name.clone(), vec![value.clone()]);
        Ok(value)
    }

    async fn import(
        &self,
        name: &crate::ports::SecretName,
        versions: &[crate::ports::SecretValue],
    ) -> Result<Vec<crate::KeyId>, crate::ports::SecretError> {
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = secrets.get(name).cloned().unwrap_or_default();
        let (merged, added) = crate::ports::merge_imported(name, &stored, versions)?;
        secrets.insert(name.clone(), merged);
        Ok(added)
    }

    async fn rotate(
        &self,
        name: &crate::ports::SecretName,
    ) -> Result<crate::ports::SecretValue, crate::ports::SecretError> {
        let value = self.new_version();
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        let versions =
            secrets
                .get_mut(name)
                .ok_or_else(|| crate::ports::SecretError::NotFound {
                    name: name.clone(),
                    version: None,
                })?;
        if versions.iter().any(|v| v.id() == value.id()) {
            return Err(crate::ports::SecretError::Other {
                message: format!(
                    "the seed source repeated a secret of {name}; it must not repeat values"
                ),
                source: None,
            });
        }
        versions.push(value.clone());
        Ok(value)
    }
}

/// A [`FleetStore`](crate::ports::FleetStore) in memory (embedding, tests), enforcing its
/// contract (single-use codes, no undo of a revocation).
#[derive(Debug, Default)]
pub struct InMemoryFleetStore {
    inner: Mutex<MemoryFleet>,
}

#[derive(Debug, Default)]
struct MemoryFleet {
    codes: Vec<crate::ports::EnrollmentCode>,
    edges: BTreeMap<String, crate::ports::EdgeEntry>,
    reports: BTreeMap<(String, TrailId), crate::ports::EdgeReport>,
}

impl InMemoryFleetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryFleet> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl crate::ports::FleetStore for InMemoryFleetStore {
    async fn issue_code(
        &self,
        code: &crate::ports::EnrollmentCode,
    ) -> Result<(), crate::ports::FleetError> {
        self.lock().codes.push(code.clone());
        Ok(())
    }

    async fn redeem(
        &self,
        digest: &crate::ports::CodeDigest,
        edge: &str,
        now: Timestamp,
    ) -> Result<crate::ports::EnrollmentCode, crate::ports::FleetError> {
        let mut fleet = self.lock();
        let code = fleet
            .codes
            .iter_mut()
            .find(|c| c.edge == edge && c.digest.ct_eq(digest))
            .ok_or(crate::ports::RedeemRefusal::Unknown)?;
        crate::ports::fleet::judge_redemption(code, now)?;
        code.used_at = Some(now);
        Ok(code.clone())
    }

    async fn enroll(
        &self,
        edge: &str,
        trails: &[TrailId],
        at: Timestamp,
        by: &str,
    ) -> Result<(), crate::ports::FleetError> {
        self.lock().edges.insert(
            edge.to_owned(),
            crate::ports::EdgeEntry {
                edge: edge.to_owned(),
                state: crate::ports::EdgeState::Enrolled,
                trails: trails.to_vec(),
                enrolled_at: at,
                enrolled_by: by.to_owned(),
                revoked: None,
            },
        );
        Ok(())
    }

    async fn revoke(
        &self,
        edge: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<(), crate::ports::FleetError> {
        let mut fleet = self.lock();
        let entry =
            fleet
                .edges
                .get_mut(edge)
                .ok_or_else(|| crate::ports::FleetError::UnknownEdge {
                    edge: edge.to_owned(),
                })?;
        entry.state = crate::ports::EdgeState::Revoked;
        entry.revoked = Some((at, by.to_owned()));
        Ok(())
    }

    async fn edge(
        &self,
        edge: &str,
    ) -> Result<Option<crate::ports::EdgeEntry>, crate::ports::FleetError> {
        Ok(self.lock().edges.get(edge).cloned())
    }

    async fn edges(&self) -> Result<Vec<crate::ports::EdgeEntry>, crate::ports::FleetError> {
        Ok(self.lock().edges.values().cloned().collect())
    }

    async fn report(
        &self,
        report: &crate::ports::EdgeReport,
    ) -> Result<(), crate::ports::FleetError> {
        let mut fleet = self.lock();
        let key = (report.edge.clone(), report.trail.clone());
        let mut new = report.clone();
        if let Some(old) = fleet.reports.get(&key) {
            new.last_batch_at = new.last_batch_at.or(old.last_batch_at);
            new.stored_head_at = new.stored_head_at.or(old.stored_head_at);
        }
        fleet.reports.insert(key, new);
        Ok(())
    }

    async fn seen(&self, edge: &str, at: Timestamp) -> Result<(), crate::ports::FleetError> {
        for ((e, _), r) in self.lock().reports.iter_mut() {
            if e == edge {
                r.seen_at = at;
            }
        }
        Ok(())
    }

    async fn reports(&self) -> Result<Vec<crate::ports::EdgeReport>, crate::ports::FleetError> {
        Ok(self.lock().reports.values().cloned().collect())
    }
}
