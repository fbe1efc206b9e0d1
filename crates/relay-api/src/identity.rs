//! Part 11 identity rules at account creation (issue 18, item 3): one person per account.
//!
//! - Usernames are unique without regard to case, and never reused: accounts are disabled,
//!   never deleted, so a disabled `reviewer1` keeps `Reviewer1` and `REVIEWER1` taken.
//! - Printed names (the manifestation on signatures) are unique the same way, so two people's
//!   signatures never look alike.
//! - Generic or shared names (`lab`, `test`, `admin2`, `qc-team`, …) are refused:
//!   422 `generic_account`.

use axum::http::StatusCode;
use relay_domain::ports::Username;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::state::ApiState;

/// Refuses `username` when it is generic or shared under `config`.
pub(crate) fn refuse_generic(config: &ApiConfig, username: &Username) -> Result<(), ApiError> {
    let name = username.as_str().to_ascii_lowercase();
    let listed = |list: &[String], part: &str| {
        // `admin2`, `user_1`, `lab-03`: the word with a number after it.
        let stem = part
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim_end_matches(['.', '_', '-']);
        list.iter().any(|g| {
            g.eq_ignore_ascii_case(part) || (!stem.is_empty() && g.eq_ignore_ascii_case(stem))
        })
    };
    let generic = listed(&config.generic_account_names, &name)
        || name
            .split(['.', '_', '-'])
            .any(|part| listed(&config.shared_account_markers, part));
    if generic {
        return Err(ApiError::unprocessable(
            "generic_account",
            format!(
                "{username} is a generic or shared account name; every account must name one \
                 person (21 CFR 11.300(a)), e.g. first.last"
            ),
        ));
    }
    Ok(())
}

/// Refuses a new account whose username or printed name another account (enabled or not)
/// already has, compared without case (and, for printed names, without repeated spaces).
pub(crate) async fn refuse_taken(
    state: &ApiState,
    username: &Username,
    full_name: &str,
) -> Result<(), ApiError> {
    refuse_taken_by_others(state, username, full_name, None).await
}

/// [`refuse_taken`] ignoring the account `except` (an account renaming its printed name).
pub(crate) async fn refuse_taken_by_others(
    state: &ApiState,
    username: &Username,
    full_name: &str,
    except: Option<&Username>,
) -> Result<(), ApiError> {
    let printed = normalize(full_name);
    for other in state.parts().accounts.list().await? {
        if except == Some(&other.username) {
            continue;
        }
        if other
            .username
            .as_str()
            .eq_ignore_ascii_case(username.as_str())
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!(
                    "account {} exists{} (names are compared without case and never reused)",
                    other.username,
                    if other.disabled { ", disabled" } else { "" }
                ),
            ));
        }
        if normalize(&other.full_name) == printed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "full_name_taken",
                format!(
                    "the printed name {full_name:?} belongs to account {}; signatures must tell \
                     people apart (add a middle initial or a department)",
                    other.username
                ),
            ));
        }
    }
    Ok(())
}

fn normalize(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(name: &str) -> bool {
        let config = ApiConfig::new(relay_domain::Device::new("ws").unwrap());
        refuse_generic(&config, &Username::new(name.to_owned()).unwrap()).is_err()
    }

    // REQ: R3.2
    #[test]
    fn generic_and_shared_names_are_refused_personal_ones_are_not() {
        for name in [
            "lab", "Test", "shared", "admin2", "qc-team", "QC", "user_1", "nmr.lab",
        ] {
            assert!(refused(name), "{name} was accepted");
        }
        for name in [
            "ada",
            "rita.reviewer",
            "j.smith",
            "qcarter",
            "testa",
            "oq-reviewer",
        ] {
            assert!(!refused(name), "{name} was refused");
        }
    }
}
