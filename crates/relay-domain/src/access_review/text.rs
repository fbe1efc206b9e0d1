//! The access review as a text table, for the command-line tools.

use super::AccessReview;

/// The review as lines of text: a header, one row per account with its role changes under it,
/// the failed logins of unknown names and the digest.
pub fn review_lines(review: &AccessReview) -> Vec<String> {
    let mut out = vec![format!(
        "ACCESS REVIEW  generated {}  (_relay up to #{})",
        review.generated_at, review.relay_seq
    )];
    out.push(match &review.previous_review {
        Some(p) => format!(
            "period since the previous review: {} (by {}, _relay#{})",
            p.at, p.reviewer, p.seq
        ),
        None => "period: since installation (no previous review)".to_owned(),
    });
    out.push(format!(
        "{:<20} {:<24} {:<9} {:<9} {:<27} {:<14} {:<27} {:<27} {:>6}  flags",
        "username",
        "printed name",
        "role",
        "status",
        "created at",
        "created by",
        "last login",
        "password changed",
        "failed"
    ));
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for a in &review.accounts {
        out.push(format!(
            "{:<20} {:<24} {:<9} {:<9} {:<27} {:<14} {:<27} {:<27} {:>6}  {}",
            a.username,
            a.full_name,
            a.role,
            a.status,
            a.created_at,
            or_dash(&a.created_by),
            or_dash(&a.last_login_at),
            or_dash(&a.password_changed_at),
            a.failed_logins,
            a.flags.join(",")
        ));
        for change in &a.role_history {
            let four_eyes = change
                .change_id
                .as_ref()
                .map(|id| {
                    format!(
                        " (four-eyes {id}, proposed by {})",
                        change.proposed_by.as_deref().unwrap_or("?")
                    )
                })
                .unwrap_or_default();
            let reason = change
                .reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            out.push(format!(
                "    role {} -> {} at {} by {}{four_eyes}{reason}",
                change.from.as_deref().unwrap_or("(created)"),
                change.to,
                change.at,
                change.by,
            ));
        }
    }
    out.push(format!(
        "failed logins with names that are no account: {}",
        review.failed_logins_unknown_names
    ));
    out.push(format!("review digest {}", review.digest));
    out
}
