//! Installation qualification (IQ): the installation as it is, read-only.

use super::*;

pub(super) fn iq_software(product: &str, release_sums: Option<&Path>) -> Check {
    let mut c = Check::new("IQ-01", Phase::Iq, "Software identity");
    c.note(format!("product: {product}"));
    c.note(format!("version: {}", relay_runtime::VERSION));
    relay_runtime::build_info::identify_binary(release_sums, |ok, line| {
        if ok {
            c.note(line);
        } else {
            c.fail(line);
        }
    });
    c.note(format!(
        "platform: {}-{} ({})",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::env::consts::FAMILY
    ));
    c.note(format!(
        "chain format: {}",
        relay_domain::export::EXPORT_FORMAT
    ));
    c
}

pub(super) fn iq_config(config: &serde_json::Value) -> Check {
    let mut c = Check::new("IQ-02", Phase::Iq, "Effective configuration");
    match config.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                if is_secret_key(k) && !v.is_null() {
                    c.note(format!("{k} = <set, redacted>"));
                } else {
                    c.note(format!("{k} = {v}"));
                }
            }
        }
        _ => c.fail("no configuration was supplied to the qualification run"),
    }
    c
}

/// Whether a configuration key holds a credential (its value never goes into a report).
pub(super) fn is_secret_key(key: &str) -> bool {
    ["token", "secret", "credential", "dsn", "key"]
        .iter()
        .any(|w| key.contains(w))
}

#[cfg(unix)]
pub(super) fn mode_of(path: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
pub(super) fn mode_of(path: &Path) -> std::io::Result<u32> {
    // No Unix modes here: say so rather than report a mode that was never read.
    std::fs::metadata(path)?;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "file permissions are not checked on this platform yet",
    ))
}

pub(super) fn iq_data_dir(data_dir: &Path, fresh: bool) -> Check {
    let mut c = Check::new("IQ-03", Phase::Iq, "Data directory and permissions");
    c.note(format!("path: {}", data_dir.display()));
    if fresh {
        c.note("no relay.db before this run: initialized as `relay-edge run` would");
        return c;
    }
    // Owner-only, as the relay creates them and as it requires at start: these hold the trail,
    // the password hashes and the anchors.
    for (what, path, required) in [
        ("data directory", data_dir.to_path_buf(), true),
        ("relay.db", data_dir.join("relay.db"), true),
        ("relay.db-wal", data_dir.join("relay.db-wal"), false),
        ("anchors directory", data_dir.join("anchors"), false),
        ("exports directory", data_dir.join("exports"), false),
    ] {
        if !required && !path.exists() {
            continue;
        }
        match mode_of(&path) {
            Ok(mode) => {
                c.note(format!("{what} mode {mode:04o}"));
                if mode & 0o077 != 0 {
                    c.fail(format!(
                        "{what} is accessible to group or others (mode {mode:04o}); it must be \
                         owner-only: chmod {} {}",
                        if path.is_dir() { "700" } else { "600" },
                        path.display()
                    ));
                }
            }
            Err(e) => c.fail(format!("{what} cannot be read: {e}")),
        }
    }
    c
}

/// IQ-04 for the provider in use: the files' modes, or the OS keyring holding the keys; a
/// keyring that was asked for but could not be used fails the check.
pub(super) fn iq_secrets_kept(adapters: &LocalAdapters, data_dir: &Path) -> Check {
    if let Some(fallback) = &adapters.secrets_fallback {
        let mut c = iq_secret_files(data_dir);
        c.fail(format!(
            "secret_provider = \"{}\" is configured but the {} provider stands in: {}",
            fallback.wanted, fallback.using, fallback.reason
        ));
        return c;
    }
    let kind = adapters.secrets.kind();
    if kind.starts_with("keyring-") {
        let mut c = Check::new("IQ-04", Phase::Iq, "Secrets are kept privately");
        c.note(format!(
            "secrets are kept in the OS keyring ({kind}), not in files under {}",
            data_dir.join("secrets").display()
        ));
        return c;
    }
    iq_secret_files(data_dir)
}

pub(super) fn iq_secret_files(data_dir: &Path) -> Check {
    let mut c = Check::new("IQ-04", Phase::Iq, "Secret files are private (0600)");
    let dir = data_dir.join("secrets");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            c.fail(format!("{} cannot be listed: {e}", dir.display()));
            return c;
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.path()),
            Err(e) => c.fail(format!("{} cannot be listed: {e}", dir.display())),
        }
    }
    names.sort();
    for path in names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match mode_of(&path) {
            Ok(mode) if mode & 0o077 == 0 => c.note(format!("{name}: mode {mode:04o}")),
            Ok(mode) => c.fail(format!(
                "{name}: mode {mode:04o} lets group or others read it"
            )),
            Err(e) => c.fail(format!("{name}: {e}")),
        }
    }
    if c.evidence.is_empty() {
        c.fail("no secret files found");
    }
    c
}

pub(super) fn iq_store_custody(custody: &StoreCustody) -> Check {
    let mut c = Check::new("IQ-05", Phase::Iq, "Record store enforces append-only");
    c.note(format!("record store: {}", custody.store));
    for line in &custody.holds {
        c.note(line.clone());
    }
    for line in &custody.violations {
        c.fail(line.clone());
    }
    c
}

pub(super) async fn iq_notary(notary: &dyn Notary) -> Check {
    let mut c = Check::new("IQ-06", Phase::Iq, "Notary WORM posture");
    let worm = notary.worm_posture();
    c.note(format!("notary: {}, WORM {worm}", notary.kind()));
    match notary.anchored_trails().await {
        Ok(t) => c.note(format!("{} trail(s) anchored", t.len())),
        Err(e) => c.fail(format!("anchors cannot be listed: {e}")),
    }
    if worm != WormPosture::Enforced {
        c.warn(
            "anchors are not on write-once storage; regulated production needs an Object Lock \
             (COMPLIANCE) or locked-retention notary",
        );
    }
    c
}

pub(super) fn iq_time(clock: &dyn TimeSource, config: &serde_json::Value) -> Check {
    let mut c = Check::new("IQ-07", Phase::Iq, "Time posture");
    if let Some(kind) = config.get("time_source") {
        c.note(format!("configured time_source: {kind}"));
    }
    let p = clock.posture();
    c.note(format!(
        "time source: {} (label {}): {}",
        p.kind,
        p.label.to_label(),
        p.detail
    ));
    if matches!(p.label, relay_domain::TimeLabel::System) {
        c.warn("timestamps carry the unvalidated system clock label; configure NTP validation");
    }
    c
}

pub(super) async fn iq_keys(secrets: &dyn SecretProvider) -> Check {
    let mut c = Check::new("IQ-08", Phase::Iq, "Keys present");
    c.note(format!("secret provider: {}", secrets.kind()));
    match secrets.key_ring(&SecretName::trail_hmac()).await {
        Ok(ring) => match ring.current() {
            Some(k) => c.note(format!("trail HMAC key: current {}", k.id())),
            None => c.fail("the trail HMAC key ring has no current key"),
        },
        Err(e) => c.fail(format!("trail HMAC keys cannot be loaded: {e}")),
    }
    match relay_runtime::export::load_seal_key(secrets).await {
        Ok(k) => c.note(format!(
            "export seal key: Ed25519, fingerprint {}",
            k.public().fingerprint()
        )),
        Err(e) => c.fail(format!("export seal key cannot be loaded: {e}")),
    }
    c
}

/// IQ-09 (edge): who captures will be attributed to, for the account running the qualification
/// (run it as the relay's own account): the mode, the console session now, and a warning when
/// captures will be recorded `unattributed` or name the service account.
pub(super) fn iq_attribution(config: &serde_json::Value) -> Check {
    let mut c = Check::new("IQ-09", Phase::Iq, "Capture attribution");
    let configured = config.get("attribution").and_then(|v| v.as_str());
    let policy = match configured {
        None => relay_capture::AttributionPolicy::default(),
        Some(text) => match relay_capture::AttributionPolicy::parse(text) {
            Some(policy) => policy,
            None => {
                c.fail(format!("attribution = {text:?} is not a known policy"));
                return c;
            }
        },
    };
    let accounts = Arc::new(relay_capture::SystemAccounts::from_login_defs());
    let attribution = match relay_capture::Attribution::new(policy, accounts) {
        Ok(a) => a,
        Err(e) => {
            c.fail(format!(
                "the account running the relay cannot be resolved: {}",
                error_chain(&e)
            ));
            return c;
        }
    };
    let Some(outlook) = attribution.outlook() else {
        c.fail("attribution resolves nothing from the OS");
        return c;
    };
    let account = |a: &relay_capture::OsAccount| {
        format!(
            "{} (uid {}{})",
            a.name.as_deref().unwrap_or("?"),
            a.uid,
            if a.person {
                ", a person's account"
            } else {
                ", not a person's account"
            }
        )
    };
    c.note(format!("attribution policy: {}", outlook.policy));
    c.note(format!(
        "relay process user (the account running this qualification): {}",
        account(&outlook.process)
    ));
    c.note(format!("mode: {}", outlook.mode));
    c.note(format!("a person's account: {}", outlook.person_rule));
    c.note(match &outlook.console {
        Ok(Some(a)) => format!("active local console session: {}", account(a)),
        Ok(None) => "active local console session: none".to_owned(),
        Err(reason) => format!("active local console session: cannot be asked ({reason})"),
    });
    for warning in &outlook.warnings {
        c.warn(warning.clone());
    }
    c
}
