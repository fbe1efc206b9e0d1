//! Operational qualification (OQ): the functions exercised on a scratch installation in a
//! temporary directory, and the read-only verification of every production trail.

use super::*;

/// A check that could not run because the scratch installation failed to come up.
pub(super) fn not_run(id: &'static str, title: &'static str, why: &str) -> Check {
    let mut c = Check::new(id, Phase::Oq, title);
    c.fail(format!("not run: {why}"));
    c
}

pub(super) const OQ_APPEND: (&str, &str) = ("OQ-01", "Append and verify a chain (scratch)");
pub(super) const OQ_TAMPER: (&str, &str) = ("OQ-02", "Tamper detection (scratch)");
pub(super) const OQ_SIGN: (&str, &str) = ("OQ-03", "Electronic signature flow (scratch)");
pub(super) const OQ_NOTARY: (&str, &str) = ("OQ-04", "Notary round trip (scratch)");
pub(super) const OQ_EXPORT: (&str, &str) =
    ("OQ-05", "Sealed export and offline verification (scratch)");

/// The scratch checks, each in protocol order.
pub(super) async fn oq_scratch(device: &Device) -> Vec<Check> {
    let all = [OQ_APPEND, OQ_TAMPER, OQ_SIGN, OQ_NOTARY, OQ_EXPORT];
    let dir = match tempfile::Builder::new().prefix("relay-oq-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            let why = format!("cannot create a scratch directory: {e}");
            return all.iter().map(|(i, t)| not_run(i, t, &why)).collect();
        }
    };
    let scratch = match Scratch::open(dir.path(), device).await {
        Ok(s) => s,
        Err(why) => return all.iter().map(|(i, t)| not_run(i, t, &why)).collect(),
    };
    let mut out = vec![
        scratch.append_check().await,
        scratch.signature_check().await,
        scratch.notary_check().await,
        scratch.export_check(dir.path()).await,
    ];
    // Tampering breaks the scratch store's triggers, so it runs last and is listed second.
    out.insert(1, scratch.tamper_check().await);
    scratch.adapters.record_store.close().await;
    if let Err(e) = dir.close() {
        tracing::warn!(error = %e, "scratch directory not removed");
    }
    out
}

/// A throw-away installation in a temporary directory.
pub(super) struct Scratch {
    adapters: LocalAdapters,
    appender: Arc<AppendService>,
    journal: Journal,
    device: Device,
}

impl Scratch {
    async fn open(dir: &Path, device: &Device) -> Result<Self, String> {
        let adapters = LocalAdapters::open(dir.join("data"))
            .await
            .map_err(|e| format!("scratch adapters: {}", error_chain(&e)))?;
        let key = adapters
            .secrets
            .current_or_create(&SecretName::trail_hmac())
            .await
            .map_err(|e| format!("scratch key: {e}"))?
            .to_trail_key()
            .map_err(|e| format!("scratch key: {e}"))?;
        let store: Arc<dyn RecordStore> = adapters.record_store.clone();
        let clock: Arc<dyn TimeSource> = adapters.clock.clone();
        let appender = Arc::new(AppendService::new(store, clock, key));
        let journal = Journal::new(appender.clone(), Metrics::new(), device.clone());
        Ok(Self {
            adapters,
            appender,
            journal,
            device: device.clone(),
        })
    }

    fn trail() -> Result<TrailId, String> {
        TrailId::new(SCRATCH_TRAIL).map_err(|e| e.to_string())
    }

    async fn capture(&self, n: u32) -> Result<Record, String> {
        let payload = Payload::from_value(&serde_json::json!({
            "sha256": hex::encode(Sha256::digest(n.to_be_bytes())),
            "size": n,
        }))
        .map_err(|e| e.to_string())?;
        self.appender
            .append(EventDraft {
                trail_id: Self::trail()?,
                kind: EventKind::file_created(),
                actor: Some(Actor::new("oq-operator").map_err(|e| e.to_string())?),
                actor_source: ActorSource::OsSession,
                occurred_at: None,
                device: self.device.clone(),
                project: None,
                subject: Some(Subject::new(format!("oq/file-{n}.dat")).map_err(|e| e.to_string())?),
                payload,
            })
            .await
            .map_err(|e| error_chain(&e))
    }

    async fn verify(&self) -> Result<Vec<relay_runtime::verify::TrailVerdict>, String> {
        verify_trails(
            self.adapters.record_store.as_ref(),
            self.adapters.secrets.as_ref(),
            self.adapters.notary.as_ref(),
            None,
            |_, _| {},
        )
        .await
        .map(|report| report.verdicts)
        .map_err(|e| error_chain(&e))
    }

    async fn append_check(&self) -> Check {
        let mut c = Check::new(OQ_APPEND.0, Phase::Oq, OQ_APPEND.1);
        for n in 1..=3 {
            match self.capture(n).await {
                Ok(r) => c.note(format!(
                    "appended {SCRATCH_TRAIL}#{} {} prev {}",
                    r.chain_seq, r.checksum, r.prev_checksum
                )),
                Err(e) => c.fail(format!("append {n} refused: {e}")),
            }
        }
        match self.verify().await {
            Ok(v) => {
                for t in v {
                    match t.verdict {
                        Ok(s) => c.note(format!(
                            "verify {}: {} records hold (HMAC checked: {})",
                            t.trail_id, s.records, s.hmac_checked
                        )),
                        Err(f) => c.fail(format!("verify {}: {f}", t.trail_id)),
                    }
                }
            }
            Err(e) => c.fail(format!("verify could not run: {e}")),
        }
        c
    }

    async fn tamper_check(&self) -> Check {
        let mut c = Check::new(OQ_TAMPER.0, Phase::Oq, OQ_TAMPER.1);
        let trail = match Self::trail() {
            Ok(t) => t,
            Err(e) => {
                c.fail(e);
                return c;
            }
        };
        // The store's own custody probe plays the attacker with the database (TamperProbe).
        let probe: &dyn TamperProbe = self.adapters.record_store.as_ref();
        match probe.try_rewrite_subject(&trail, 2, FORGED_SUBJECT).await {
            Ok(TamperAttempt::Refused(e)) => c.note(format!("UPDATE refused by the store: {e}")),
            Ok(TamperAttempt::Accepted(_)) => {
                c.fail("the store accepted an UPDATE of a stored record")
            }
            Err(e) => c.fail(format!("cannot try an UPDATE: {}", error_chain(&e))),
        }
        match probe.try_delete(&trail, 3).await {
            Ok(TamperAttempt::Refused(e)) => c.note(format!("DELETE refused by the store: {e}")),
            Ok(TamperAttempt::Accepted(_)) => {
                c.fail("the store accepted a DELETE of a stored record")
            }
            Err(e) => c.fail(format!("cannot try a DELETE: {}", error_chain(&e))),
        }
        // An attacker with file access drops the triggers and edits record 2.
        if let Err(e) = probe.drop_append_only_controls().await {
            c.fail(format!(
                "cannot simulate the attack (drop the append-only controls): {}",
                error_chain(&e)
            ));
            return c;
        }
        match probe.try_rewrite_subject(&trail, 2, FORGED_SUBJECT).await {
            Ok(TamperAttempt::Accepted(1)) => {
                c.note("simulated attack: triggers dropped, subject of record 2 rewritten");
            }
            Ok(TamperAttempt::Accepted(_)) => {
                c.fail("cannot simulate the attack: record 2 not found");
                return c;
            }
            Ok(TamperAttempt::Refused(e)) => {
                c.fail(format!("cannot simulate the attack: {e}"));
                return c;
            }
            Err(e) => {
                c.fail(format!("cannot simulate the attack: {}", error_chain(&e)));
                return c;
            }
        }
        match self.verify().await {
            Ok(v) => match v.iter().find(|t| t.trail_id.as_str() == SCRATCH_TRAIL) {
                Some(t) => match &t.verdict {
                    Err(f) if f.seq.get() == 2 => {
                        c.note(format!(
                            "verify detected it: first bad chain_seq 2: {}",
                            f.reason
                        ));
                    }
                    Err(f) => c.fail(format!("verify named seq {} instead of 2: {f}", f.seq)),
                    Ok(_) => c.fail("verify did not detect the edited record"),
                },
                None => c.fail("the scratch trail is missing"),
            },
            Err(e) => c.fail(format!("verify could not run: {e}")),
        }
        c
    }

    async fn signature_check(&self) -> Check {
        let mut c = Check::new(OQ_SIGN.0, Phase::Oq, OQ_SIGN.1);
        if let Err(e) = self.signature_flow(&mut c).await {
            c.fail(e);
        }
        c
    }

    async fn signature_flow(&self, c: &mut Check) -> Result<(), String> {
        let store: Arc<dyn RecordStore> = self.adapters.record_store.clone();
        let state = relay_api::ApiState::new(relay_api::ApiParts {
            appender: self.appender.clone(),
            store: store.clone(),
            accounts: self.adapters.accounts.clone(),
            secrets: self.adapters.secrets.clone(),
            notary: self.adapters.notary.clone(),
            metrics: Metrics::new().api_metrics(),
            config: relay_api::ApiConfig::new(self.device.clone()),
        })
        .await
        .map_err(|e| format!("scratch API: {}", error_chain(&e)))?;
        let api = ScratchApi(relay_api::router(state));
        let account = |user: &str, name: &str, role: &str| serde_json::json!({"username": user, "full_name": name, "password": SCRATCH_PASSWORD, "role": role});
        api.expect(
            "POST",
            "/api/v1/auth/register",
            None,
            account("oq-admin", "OQ Admin", "admin"),
        )
        .await?;
        let admin = api.login("oq-admin").await?;
        // An administrator-set password is temporary: the reviewer replaces it first.
        let mut reviewer_account = account("oq-reviewer", "OQ Reviewer", "reviewer");
        reviewer_account["password"] = serde_json::json!(SCRATCH_TEMPORARY_PASSWORD);
        reviewer_account["reason"] = serde_json::json!("operational qualification");
        api.expect("POST", "/api/v1/accounts", Some(&admin), reviewer_account)
            .await?;
        api.expect(
            "POST",
            "/api/v1/auth/password",
            None,
            serde_json::json!({"username": "oq-reviewer", "old_password": SCRATCH_TEMPORARY_PASSWORD, "new_password": SCRATCH_PASSWORD}),
        )
        .await?;
        let reviewer = api.login("oq-reviewer").await?;
        c.note("accounts oq-admin (admin) and oq-reviewer (reviewer) created; the reviewer replaced the temporary password an administrator set; both logged in");
        let target = self.capture(100).await?;
        let heads_before = store.trails().await.map_err(|e| e.to_string())?;
        let signing = |password: &str, meaning: &str| {
            serde_json::json!({
                "trail_id": SCRATCH_TRAIL,
                "target_checksum": target.checksum.to_hex(),
                "meaning": meaning,
                "reason": "operational qualification",
                "password": password,
            })
        };
        let request = |password: &str| signing(password, "reviewed");
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/signatures",
                Some(&reviewer),
                request("wrong password"),
            )
            .await?;
        let heads_after = store.trails().await.map_err(|e| e.to_string())?;
        if status.is_success() || heads_before != heads_after {
            return Err(format!(
                "a signature with a wrong password was not refused (HTTP {status})"
            ));
        }
        c.note(format!(
            "signature with a wrong password inside a valid session refused: HTTP {status}, nothing appended"
        ));
        let (status, _) = api
            .call(
                "POST",
                "/api/v1/signatures",
                Some(&admin),
                request(SCRATCH_PASSWORD),
            )
            .await?;
        if status.is_success() {
            return Err("an administrator was allowed to sign a data record".into());
        }
        c.note(format!("administrator signing refused: HTTP {status}"));
        let body = api
            .expect(
                "POST",
                "/api/v1/signatures",
                Some(&reviewer),
                request(SCRATCH_PASSWORD),
            )
            .await?;
        let record = &body["signature_record"];
        let named = record["payload"]["target_checksum"].as_str().unwrap_or("");
        if named != target.checksum.to_hex() {
            return Err(format!(
                "the SIGNATURE record does not name the signed checksum: {record}"
            ));
        }
        c.note(format!(
            "SIGNATURE {SCRATCH_TRAIL}#{} by {} names target_checksum {}; manifestation: {}",
            record["chain_seq"], record["actor"], named, body["manifestation"]
        ));
        // The signing workflow: the reviewer may not also approve what they reviewed.
        let (status, refusal) = api
            .call(
                "POST",
                "/api/v1/signatures",
                Some(&reviewer),
                signing(SCRATCH_PASSWORD, "approved"),
            )
            .await?;
        if status.is_success() {
            return Err("the reviewer of a record was allowed to approve it as well".into());
        }
        c.note(format!(
            "approval by the record's own reviewer refused: HTTP {status} {}",
            refusal["error"]["code"]
        ));
        let verdicts = self.verify().await?;
        for v in verdicts {
            if let Err(f) = v.verdict {
                return Err(format!("trail broken after signing: {f}"));
            }
        }
        c.note("every scratch trail verifies after signing");
        Ok(())
    }

    async fn notary_check(&self) -> Check {
        let mut c = Check::new(OQ_NOTARY.0, Phase::Oq, OQ_NOTARY.1);
        let store: Arc<dyn RecordStore> = self.adapters.record_store.clone();
        let notary: Arc<dyn Notary> = self.adapters.notary.clone();
        let clock: Arc<dyn TimeSource> = self.adapters.clock.clone();
        let mut scheduler = relay_runtime::notary_scheduler::NotaryScheduler::new(
            store,
            notary.clone(),
            clock,
            self.journal.clone(),
        );
        match relay_runtime::export::load_seal_key(self.adapters.secrets.as_ref()).await {
            Ok(key) => scheduler = scheduler.with_seal_key(Arc::new(key)),
            Err(e) => c.fail(format!(
                "the seal key that signs checkpoints cannot be loaded: {e}"
            )),
        }
        let round = scheduler.notarize_all(0).await;
        for f in &round.failures {
            c.fail(format!("notarization failed: {f}"));
        }
        for a in &round.anchored {
            c.note(format!("anchored {}#{} {}", a.trail_id, a.seq, a.checksum));
        }
        match Self::trail() {
            Ok(trail) => match notary.anchors(&trail).await {
                Ok(anchors) if !anchors.is_empty() => {
                    c.note(format!("{} anchor(s) of {trail} read back", anchors.len()))
                }
                Ok(_) => c.fail("no anchor of the scratch trail could be read back"),
                Err(e) => c.fail(format!("anchors cannot be read back: {e}")),
            },
            Err(e) => c.fail(e),
        }
        c
    }

    async fn export_check(&self, dir: &Path) -> Check {
        let mut c = Check::new(OQ_EXPORT.0, Phase::Oq, OQ_EXPORT.1);
        if let Err(e) = self.export_flow(dir, &mut c).await {
            c.fail(e);
        }
        c
    }

    async fn export_flow(&self, dir: &Path, c: &mut Check) -> Result<(), String> {
        let keys = self
            .adapters
            .secrets
            .key_ring(&SecretName::trail_hmac())
            .await
            .map_err(|e| e.to_string())?;
        // Runs before OQ-02 breaks the scratch trail on purpose.
        let out = dir.join("package");
        let request = relay_runtime::export::ExportRequest {
            trail: Self::trail()?,
            from_seq: None,
            to_seq: None,
            filter: ExportFilter::default(),
            format: relay_runtime::export::ExportFormat::Both,
            out: out.clone(),
            zip: false,
            generated_by: GeneratedBy {
                actor: Actor::new("oq-operator").map_err(|e| e.to_string())?,
                actor_source: ActorSource::OsSession,
                device: self.device.clone(),
            },
            access_review: None,
        };
        let services = relay_runtime::export::ExportServices {
            store: self.adapters.record_store.as_ref(),
            notary: self.adapters.notary.as_ref(),
            secrets: self.adapters.secrets.as_ref(),
            keys: &keys,
            clock: self.adapters.clock.as_ref(),
            journal: &self.journal,
        };
        let outcome = relay_runtime::export::export_package(services, &request)
            .await
            .map_err(|e| format!("export failed: {}", error_chain(&e)))?;
        c.note(format!(
            "sealed package of {} records written (seal key {}, manifest sha256 {})",
            outcome.manifest.records, outcome.fingerprint, outcome.manifest_sha256
        ));
        let report = verify_dir_package(&out, &keys, &outcome.fingerprint)?;
        if !report.holds() {
            return Err(format!(
                "the fresh package does not verify: {:?}",
                report.findings
            ));
        }
        c.note(format!(
            "offline verification holds: {} checks passed, {} records, HMACs recomputed: {}",
            report.passed.len(),
            report.records,
            report.hmac_checked
        ));
        // One altered byte in the human-readable rendering must be caught.
        let csv = out.join(RECORDS_CSV);
        let mut bytes = std::fs::read(&csv).map_err(|e| e.to_string())?;
        if let Some(last) = bytes.iter_mut().rev().find(|b| b.is_ascii_alphanumeric()) {
            *last = if *last == b'0' { b'1' } else { b'0' };
        }
        std::fs::write(&csv, bytes).map_err(|e| e.to_string())?;
        let report = verify_dir_package(&out, &keys, &outcome.fingerprint)?;
        match report.findings.first() {
            Some(f) => c.note(format!("one byte of records.csv altered: detected ({f:?})")),
            None => return Err("an altered records.csv still verified".into()),
        }
        Ok(())
    }
}

/// Verifies an export package directory as `relay-verify` does.
pub(super) fn verify_dir_package(
    dir: &Path,
    keys: &relay_domain::KeyRing,
    fingerprint: &str,
) -> Result<relay_domain::export::PackageReport, String> {
    let open = |name: &str| -> Result<Option<BufReader<File>>, String> {
        let p = dir.join(name);
        if p.is_file() {
            File::open(&p)
                .map(|f| Some(BufReader::new(f)))
                .map_err(|e| format!("{}: {e}", p.display()))
        } else {
            Ok(None)
        }
    };
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let inputs = PackageInputs {
        manifest: read(MANIFEST_FILE)?,
        anchors: if dir.join(ANCHORS_JSON).is_file() {
            Some(read(ANCHORS_JSON)?)
        } else {
            None
        },
        records_jsonl: open(RECORDS_JSONL)?,
        records_csv: open(RECORDS_CSV)?,
        records_json: open(RECORDS_JSON)?,
        proofs_jsonl: open(PROOFS_JSONL)?,
        receipts_jsonl: None,
        access_review_json: None,
        other_entries: Vec::new(),
    };
    verify_package(
        inputs,
        &VerifyOptions {
            keys: Some(keys),
            expect_fingerprint: Some(fingerprint),
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        },
    )
    .map_err(|e| format!("package unreadable: {e}"))
}

/// The review API of the scratch installation, called in-process.
pub(super) struct ScratchApi(axum::Router);

impl ScratchApi {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Result<(axum::http::StatusCode, serde_json::Value), String> {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(axum::body::Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .0
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Ok((status, value))
    }

    async fn expect(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let (status, value) = self.call(method, uri, token, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {uri}: HTTP {status}: {value}"))
        }
    }

    async fn login(&self, user: &str) -> Result<String, String> {
        let body = self
            .expect(
                "POST",
                "/api/v1/auth/login",
                None,
                serde_json::json!({"username": user, "password": SCRATCH_PASSWORD}),
            )
            .await?;
        body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("login of {user}: no token in {body}"))
    }
}

/// Verifies every real trail read-only (the store is opened, nothing is written).
pub(super) async fn oq_production_trails(
    records: &dyn RecordStore,
    secrets: &dyn SecretProvider,
    notary: &dyn Notary,
) -> Check {
    let mut c = Check::new(
        "OQ-06",
        Phase::Oq,
        "Installed trails verify (read-only, with anchors)",
    );
    match verify_trails(records, secrets, notary, None, |_, _| {}).await {
        Ok(report) => {
            let verdicts = report.verdicts;
            if verdicts.is_empty() {
                c.note("no trails yet");
            }
            for v in verdicts {
                match v.verdict {
                    Ok(s) => c.note(format!(
                        "{}: {} records hold, {} anchor(s) checked",
                        v.trail_id, s.records, s.anchors_checked
                    )),
                    Err(f) => c.fail(format!(
                        "{}: first bad chain_seq {}: {}",
                        v.trail_id, f.seq, f.reason
                    )),
                }
            }
        }
        Err(e) => c.fail(format!("verification could not run: {}", error_chain(&e))),
    }
    c
}
