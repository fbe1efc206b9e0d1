//! The password policy (issue 18, 21 CFR 11.300(b)): what a new password must be, whoever sets
//! it (registration, account creation, reset, the owner's change).
//!
//! - at least [`ApiConfig::min_password_chars`] characters (default 12) and at most 1024 bytes;
//! - a zxcvbn strength score of at least [`ApiConfig::min_password_score`] (default 3), with
//!   the username and printed name given to zxcvbn as words an attacker knows: 422
//!   `weak_password`;
//! - not containing the username or the printed name, nor a part of either of 4 characters or
//!   more, without regard to case: 422 `password_contains_name`;
//! - not one of the account's last [`ApiConfig::password_history`] passwords (the current one
//!   included, compared by Argon2 verification against the stored hashes): 422
//!   `password_reused`.

use relay_domain::ports::{Account, Username};

use crate::auth::{Password, verify_password};
use crate::config::ApiConfig;
use crate::error::ApiError;

/// Most characters given to zxcvbn: its matching grows with the length, and a longer password
/// that is strong in its first 128 characters is strong.
const MAX_ESTIMATED_CHARS: usize = 128;

/// Shortest part of a username or printed name that a password may not contain.
const MIN_NAME_PART: usize = 4;

/// Checks a new password of `username` (printed name `full_name`) against the length, strength
/// and name rules of `config`. The history rule needs the stored account: [`refuse_reuse`].
pub(crate) fn check_new_password(
    config: &ApiConfig,
    username: &Username,
    full_name: &str,
    password: &Password,
) -> Result<(), ApiError> {
    let p = password.expose();
    if p.chars().count() < config.min_password_chars {
        return Err(ApiError::unprocessable(
            "weak_password",
            format!(
                "the password must have at least {} characters; use a passphrase of several \
                 unrelated words",
                config.min_password_chars
            ),
        ));
    }
    if p.len() > 1024 {
        return Err(ApiError::unprocessable(
            "weak_password",
            "the password must have at most 1024 bytes",
        ));
    }
    if let Some(part) = name_inside(p, username, full_name) {
        return Err(ApiError::unprocessable(
            "password_contains_name",
            format!(
                "the password contains {part:?} from the username or printed name; choose one \
                 that contains neither"
            ),
        ));
    }
    if config.min_password_score > 0 {
        let head: String = p.chars().take(MAX_ESTIMATED_CHARS).collect();
        let name_words = name_parts(username, full_name);
        let inputs: Vec<&str> = name_words.iter().map(String::as_str).collect();
        let estimate = zxcvbn::zxcvbn(&head, &inputs);
        let score = u8::from(estimate.score());
        if score < config.min_password_score {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning().map(|w| format!(" ({w})")))
                .unwrap_or_default();
            return Err(ApiError::unprocessable(
                "weak_password",
                format!(
                    "the password is too easy to guess: strength {score} of 4, at least {} \
                     needed{hint}; use a longer passphrase of several unrelated words, without \
                     names, dates, keyboard rows or repeated characters",
                    config.min_password_score
                ),
            ));
        }
    }
    Ok(())
}

/// The lower-cased username, printed name, and their parts of [`MIN_NAME_PART`] characters or
/// more.
fn name_parts(username: &Username, full_name: &str) -> Vec<String> {
    let user = username.as_str().to_lowercase();
    let printed = full_name.split_whitespace().collect::<Vec<_>>().join(" ");
    let printed = printed.to_lowercase();
    let mut parts = vec![user.clone(), printed.clone()];
    parts.extend(
        user.split(['.', '_', '-'])
            .chain(printed.split(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().count() >= MIN_NAME_PART)
            .map(str::to_owned),
    );
    parts.retain(|p| !p.is_empty());
    parts.sort();
    parts.dedup();
    parts
}

/// The part of the username or printed name that `password` contains, if any (the whole
/// username counts from 3 characters on).
fn name_inside(password: &str, username: &Username, full_name: &str) -> Option<String> {
    let lowered = password.to_lowercase();
    let squeezed: String = lowered.chars().filter(|c| !c.is_whitespace()).collect();
    name_parts(username, full_name)
        .into_iter()
        .filter(|part| part.chars().count() >= 3)
        .find(|part| {
            let joined: String = part.chars().filter(|c| !c.is_whitespace()).collect();
            lowered.contains(part.as_str()) || squeezed.contains(joined.as_str())
        })
}

/// Refuses `password` for `account` when it matches one of the account's last
/// [`ApiConfig::password_history`] passwords before the current one (the current one itself is
/// checked by the caller, which answers `password_unchanged`): 422 `password_reused`.
pub(crate) async fn refuse_reuse(
    config: &ApiConfig,
    account: &Account,
    password: &Password,
) -> Result<(), ApiError> {
    let kept = config.password_history.saturating_sub(1);
    for old in account.password_history.iter().take(kept) {
        if verify_password(old, password).await? {
            return Err(ApiError::unprocessable(
                "password_reused",
                format!(
                    "the password was used before: it must differ from the last {} passwords \
                     of the account; choose a new one",
                    config.password_history
                ),
            ));
        }
    }
    Ok(())
}

/// Puts the current hash of `account` at the head of its history (kept to what the policy
/// needs) before `new_hash` replaces it.
pub(crate) fn rotate(config: &ApiConfig, account: &mut Account, new_hash: String) {
    let kept = config.password_history.saturating_sub(1);
    let old = std::mem::replace(&mut account.password_hash, new_hash);
    account.password_history.insert(0, old);
    account.password_history.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ApiConfig {
        ApiConfig::new(relay_domain::Device::new("ws").unwrap())
    }

    fn check(user: &str, full: &str, password: &str) -> Result<(), &'static str> {
        let name = Username::new(user.to_owned()).unwrap();
        check_new_password(&config(), &name, full, &Password::new(password)).map_err(|e| e.code)
    }

    // REQ: R3.2
    #[test]
    fn short_guessable_and_named_passwords_are_refused_strong_ones_are_not() {
        assert_eq!(
            check("rita", "Rita Reviewer", "aaaaaaaaaa"),
            Err("weak_password")
        );
        assert_eq!(
            check("rita", "Rita Reviewer", "aaaaaaaaaaaaaaaa"),
            Err("weak_password")
        );
        assert_eq!(
            check("rita", "Rita Reviewer", "password1234"),
            Err("weak_password")
        );
        assert_eq!(
            check("rita", "Rita Reviewer", "qwertyuiop123"),
            Err("weak_password")
        );
        assert_eq!(
            check("j.kowalski", "Jan Kowalski", "kowalski the great 77"),
            Err("password_contains_name")
        );
        assert_eq!(
            check("j.kowalski", "Jan Kowalski", "J.KOWALSKI drives fast"),
            Err("password_contains_name")
        );
        assert_eq!(
            check("rita", "Rita Reviewer", "ritaritaritarita"),
            Err("password_contains_name")
        );
        check("rita", "Rita Reviewer", "correct horse battery").unwrap();
        check("j.kowalski", "Jan Kowalski", "Quiet Copper Lantern 42").unwrap();
    }

    // REQ: R3.2
    #[test]
    fn the_policy_is_configurable() {
        let mut relaxed = config();
        relaxed.min_password_chars = 8;
        relaxed.min_password_score = 0;
        let name = Username::new("rita").unwrap();
        check_new_password(&relaxed, &name, "Rita R", &Password::new("aaaaaaaa")).unwrap();
    }
}
