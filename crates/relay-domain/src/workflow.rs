//! The signing workflow (issue 20, 21 CFR 11.10(f) operational system checks): in which order
//! signatures may be applied to a record, and by whom, and the review status a record's
//! signatures give it.
//!
//! The rules are pure functions of what the trail already holds (the record's author, its
//! signatures in trail order, whether a later capture superseded it) so that the API, the UI,
//! exports and tests derive the same answer:
//!
//! - **order**: `reviewed` before `approved`; `rejected` at any step before approval, final
//!   unless a new review starts (a `reviewed` signature after a rejection opens a new cycle);
//!   an approved record is final: nothing more is signed on it;
//! - **no meaning twice** by the same person within one cycle;
//! - **separation of duties**: the approver is neither a reviewer of the current cycle nor the
//!   person the capture is attributed to;
//! - **superseded records** (a later `FILE_MODIFIED` / `FILE_DELETED` of the same subject)
//!   cannot be approved; they can still be reviewed or rejected.
//!
//! Each rule but the order of an approved record's finality can be switched off per
//! installation ([`WorkflowPolicy`]); the default is strict. The status of records signed
//! before these rules existed is still computed (it never fails): a sequence the rules would
//! refuse today is read as leniently as it was recorded.

use serde::{Deserialize, Serialize};

/// What a signature means (21 CFR 11.50(a)(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMeaning {
    /// The record was reviewed.
    Reviewed,
    /// The record is approved.
    Approved,
    /// The record is rejected.
    Rejected,
}

impl SignatureMeaning {
    /// The label stored in the SIGNATURE record's payload.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMeaning::Reviewed => "reviewed",
            SignatureMeaning::Approved => "approved",
            SignatureMeaning::Rejected => "rejected",
        }
    }

    /// Parses a stored label; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reviewed" => Some(SignatureMeaning::Reviewed),
            "approved" => Some(SignatureMeaning::Approved),
            "rejected" => Some(SignatureMeaning::Rejected),
            _ => None,
        }
    }
}

/// One signature already on a record, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFact {
    /// The signer's username.
    pub signer: String,
    /// What it means; `None` for a stored meaning the rules do not know (ignored).
    pub meaning: Option<SignatureMeaning>,
    /// The seq of the SIGNATURE record.
    pub seq: u64,
}

/// What the rules know about the record to sign.
#[derive(Debug, Clone, Copy)]
pub struct TargetFacts<'a> {
    /// The person the record is attributed to (its actor).
    pub author: &'a str,
    /// Its signatures, in trail order.
    pub signatures: &'a [SignatureFact],
    /// The seq of the newest later capture of the same subject that supersedes it, if any.
    pub superseded_by: Option<u64>,
}

/// The review status a record's signatures give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    /// Not signed yet (or a new cycle has not started after a rejection: see `Rejected`).
    Pending,
    /// Reviewed in the current cycle, awaiting approval.
    Reviewed,
    /// Approved: final.
    Approved,
    /// Rejected: final unless a new review starts.
    Rejected,
    /// A later capture of the same subject superseded it before it was approved or rejected.
    Superseded,
}

impl ReviewStatus {
    /// Every status, in workflow order.
    pub const ALL: [ReviewStatus; 5] = [
        ReviewStatus::Pending,
        ReviewStatus::Reviewed,
        ReviewStatus::Approved,
        ReviewStatus::Rejected,
        ReviewStatus::Superseded,
    ];

    /// The label shown in the API, the UI and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Reviewed => "reviewed",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Superseded => "superseded",
        }
    }

    /// Parses a label (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Which workflow rules an installation enforces. The default is strict (every rule on).
/// An approved record is final whatever the policy, and a record whose stored bytes do not
/// verify is never signed (that check is the API's, not a rule that can be switched off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowPolicy {
    /// `approved` needs a `reviewed` signature in the current cycle.
    pub review_before_approval: bool,
    /// The approver is not a reviewer of the current cycle.
    pub approver_not_reviewer: bool,
    /// The approver is not the person the record is attributed to.
    pub approver_not_author: bool,
    /// A superseded record cannot be approved.
    pub no_approval_when_superseded: bool,
    /// Nobody signs the same meaning twice on a record within one cycle.
    pub no_repeated_meaning: bool,
}

impl Default for WorkflowPolicy {
    fn default() -> Self {
        Self::STRICT
    }
}

impl WorkflowPolicy {
    /// Every rule on (the default).
    pub const STRICT: WorkflowPolicy = WorkflowPolicy {
        review_before_approval: true,
        approver_not_reviewer: true,
        approver_not_author: true,
        no_approval_when_superseded: true,
        no_repeated_meaning: true,
    };

    /// Every switchable rule off: signatures in any order by anyone allowed to sign (an
    /// approved record stays final).
    pub const RELAXED: WorkflowPolicy = WorkflowPolicy {
        review_before_approval: false,
        approver_not_reviewer: false,
        approver_not_author: false,
        no_approval_when_superseded: false,
        no_repeated_meaning: false,
    };

    /// Reads a policy from its configuration value: `"strict"`, `"relaxed"`, or an object of
    /// the rules' booleans (a rule left out stays on).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(s) if s == "strict" => Ok(Self::STRICT),
            serde_json::Value::String(s) if s == "relaxed" => Ok(Self::RELAXED),
            serde_json::Value::Object(_) => {
                serde_json::from_value(value.clone()).map_err(|e| format!("signing_workflow: {e}"))
            }
            other => Err(format!(
                "signing_workflow must be \"strict\", \"relaxed\" or an object of rules \
                 (review_before_approval, approver_not_reviewer, approver_not_author, \
                 no_approval_when_superseded, no_repeated_meaning), not {other}"
            )),
        }
    }
}

/// A workflow rule a signature would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowRule {
    /// `approved` without a `reviewed` signature in the current cycle.
    ReviewBeforeApproval,
    /// Anything signed on an approved record.
    ApprovedIsFinal,
    /// `approved` or `rejected` on a rejected record before a new review.
    RejectedIsFinal,
    /// The approver reviewed the record in the current cycle.
    ApproverNotReviewer,
    /// The approver is the person the record is attributed to.
    ApproverNotAuthor,
    /// `approved` on a record a later capture superseded.
    Superseded,
    /// The same person signing the same meaning twice in one cycle.
    NoRepeatedMeaning,
}

impl WorkflowRule {
    /// The error code the API answers with.
    pub fn code(self) -> &'static str {
        match self {
            WorkflowRule::ReviewBeforeApproval => "review_required",
            WorkflowRule::ApprovedIsFinal => "already_approved",
            WorkflowRule::RejectedIsFinal => "rejected_final",
            WorkflowRule::ApproverNotReviewer => "approver_is_reviewer",
            WorkflowRule::ApproverNotAuthor => "approver_is_author",
            WorkflowRule::Superseded => "superseded",
            WorkflowRule::NoRepeatedMeaning => "already_signed",
        }
    }

    /// The rule's name, as documented (docs/part11.md, docs/operations.md).
    pub fn name(self) -> &'static str {
        match self {
            WorkflowRule::ReviewBeforeApproval => "review before approval",
            WorkflowRule::ApprovedIsFinal => "an approved record is final",
            WorkflowRule::RejectedIsFinal => "a rejection is final until a new review",
            WorkflowRule::ApproverNotReviewer => "separation of duties: approver is not reviewer",
            WorkflowRule::ApproverNotAuthor => "separation of duties: approver is not author",
            WorkflowRule::Superseded => "no approval of a superseded record",
            WorkflowRule::NoRepeatedMeaning => "no meaning twice by the same person",
        }
    }
}

/// Why a signature is refused: the rule and a sentence for the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRefusal {
    /// The rule broken.
    pub rule: WorkflowRule,
    /// What happened and what to do.
    pub message: String,
}

/// Where a record stands after its signatures, replayed in trail order.
#[derive(Debug, Clone, Default)]
struct Cycle {
    /// The status of the current cycle (`Superseded` is never stored here).
    status: Option<ReviewStatus>,
    /// Who reviewed in the current cycle.
    reviewers: Vec<String>,
    /// Who signed which meaning in the current cycle.
    signed: Vec<(String, SignatureMeaning)>,
    /// The seq of the approval or rejection that made the status final.
    decided_at: Option<u64>,
}

fn same_person(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl Cycle {
    /// Replays `signatures` leniently (as they were recorded).
    fn replay(signatures: &[SignatureFact]) -> Self {
        let mut c = Cycle::default();
        for s in signatures {
            let Some(meaning) = s.meaning else { continue };
            match (c.status, meaning) {
                (Some(ReviewStatus::Approved), _) => {}
                (Some(ReviewStatus::Rejected), SignatureMeaning::Reviewed) => {
                    c = Cycle::default();
                    c.note(&s.signer, meaning);
                    c.status = Some(ReviewStatus::Reviewed);
                }
                (_, SignatureMeaning::Reviewed) => {
                    c.note(&s.signer, meaning);
                    c.status = Some(ReviewStatus::Reviewed);
                }
                (_, SignatureMeaning::Approved) => {
                    c.note(&s.signer, meaning);
                    c.status = Some(ReviewStatus::Approved);
                    c.decided_at = Some(s.seq);
                }
                (_, SignatureMeaning::Rejected) => {
                    c.note(&s.signer, meaning);
                    c.status = Some(ReviewStatus::Rejected);
                    c.decided_at = Some(s.seq);
                }
            }
        }
        c
    }

    fn note(&mut self, signer: &str, meaning: SignatureMeaning) {
        if meaning == SignatureMeaning::Reviewed {
            self.reviewers.push(signer.to_owned());
        }
        self.signed.push((signer.to_owned(), meaning));
    }
}

/// The review status of a record with these facts.
pub fn review_status(facts: &TargetFacts<'_>) -> ReviewStatus {
    let status = Cycle::replay(facts.signatures)
        .status
        .unwrap_or(ReviewStatus::Pending);
    match status {
        ReviewStatus::Approved | ReviewStatus::Rejected => status,
        _ if facts.superseded_by.is_some() => ReviewStatus::Superseded,
        _ => status,
    }
}

/// Checks that `signer` may sign `meaning` on a record with these facts under `policy`.
pub fn check_signing(
    policy: &WorkflowPolicy,
    facts: &TargetFacts<'_>,
    signer: &str,
    meaning: SignatureMeaning,
) -> Result<(), WorkflowRefusal> {
    let cycle = Cycle::replay(facts.signatures);
    let refuse = |rule: WorkflowRule, message: String| Err(WorkflowRefusal { rule, message });
    if cycle.status == Some(ReviewStatus::Approved) {
        return refuse(
            WorkflowRule::ApprovedIsFinal,
            format!(
                "the record was approved (signature #{}); an approved record is final and \
                 takes no further signature",
                cycle.decided_at.unwrap_or_default()
            ),
        );
    }
    let rejected = cycle.status == Some(ReviewStatus::Rejected);
    if rejected && meaning != SignatureMeaning::Reviewed {
        return refuse(
            WorkflowRule::RejectedIsFinal,
            format!(
                "the record was rejected (signature #{}); a new review must start before it \
                 can be approved or rejected again",
                cycle.decided_at.unwrap_or_default()
            ),
        );
    }
    // A review after a rejection starts a new cycle: nothing of the old one repeats.
    if policy.no_repeated_meaning
        && !rejected
        && cycle
            .signed
            .iter()
            .any(|(who, m)| *m == meaning && same_person(who, signer))
    {
        return refuse(
            WorkflowRule::NoRepeatedMeaning,
            format!(
                "{signer} already signed this record as {}; the same person does not sign \
                 the same meaning twice",
                meaning.as_str()
            ),
        );
    }
    if meaning != SignatureMeaning::Approved {
        return Ok(());
    }
    if policy.no_approval_when_superseded
        && let Some(newer) = facts.superseded_by
    {
        return refuse(
            WorkflowRule::Superseded,
            format!(
                "the file was captured again after this record (record #{newer}); approve the \
                 newer record, or reject this one"
            ),
        );
    }
    if policy.review_before_approval && cycle.status != Some(ReviewStatus::Reviewed) {
        return refuse(
            WorkflowRule::ReviewBeforeApproval,
            "the record has not been reviewed; a reviewer signs it as reviewed before anyone \
             approves it"
                .to_owned(),
        );
    }
    if policy.approver_not_reviewer && cycle.reviewers.iter().any(|r| same_person(r, signer)) {
        return refuse(
            WorkflowRule::ApproverNotReviewer,
            format!(
                "{signer} reviewed this record; another person must approve it (separation of \
                 duties)"
            ),
        );
    }
    if policy.approver_not_author && same_person(facts.author, signer) {
        return refuse(
            WorkflowRule::ApproverNotAuthor,
            format!(
                "the record is attributed to {signer}; another person must approve it \
                 (separation of duties)"
            ),
        );
    }
    Ok(())
}

/// The next step `signer` can take on a record with these facts under `policy`, if any: the
/// reviewer's queue holds pending (and rejected, for a new review) records they may review,
/// the approver's the reviewed records they may approve.
pub fn next_step_for(
    policy: &WorkflowPolicy,
    facts: &TargetFacts<'_>,
    signer: &str,
) -> Option<SignatureMeaning> {
    match review_status(facts) {
        ReviewStatus::Reviewed => check_signing(policy, facts, signer, SignatureMeaning::Approved)
            .ok()
            .map(|()| SignatureMeaning::Approved),
        ReviewStatus::Pending => check_signing(policy, facts, signer, SignatureMeaning::Reviewed)
            .ok()
            .map(|()| SignatureMeaning::Reviewed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignatureMeaning::{Approved, Rejected, Reviewed};

    fn sig(signer: &str, meaning: SignatureMeaning, seq: u64) -> SignatureFact {
        SignatureFact {
            signer: signer.into(),
            meaning: Some(meaning),
            seq,
        }
    }

    fn facts<'a>(sigs: &'a [SignatureFact], superseded_by: Option<u64>) -> TargetFacts<'a> {
        TargetFacts {
            author: "ana",
            signatures: sigs,
            superseded_by,
        }
    }

    fn code(r: Result<(), WorkflowRefusal>) -> Option<&'static str> {
        r.err().map(|e| e.rule.code())
    }

    const STRICT: WorkflowPolicy = WorkflowPolicy::STRICT;

    // REQ: R4.2
    #[test]
    fn the_bypasses_seen_live_are_refused() {
        // approved with no prior review
        assert_eq!(
            code(check_signing(&STRICT, &facts(&[], None), "rita", Approved)),
            Some("review_required")
        );
        // reviewed and approved by the same person
        let reviewed = [sig("rita", Reviewed, 5)];
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&reviewed, None),
                "Rita",
                Approved
            )),
            Some("approver_is_reviewer")
        );
        // approved twice, rejected after approval
        let approved = [sig("rita", Reviewed, 5), sig("ali", Approved, 6)];
        for m in [Approved, Rejected, Reviewed] {
            assert_eq!(
                code(check_signing(&STRICT, &facts(&approved, None), "bo", m)),
                Some("already_approved")
            );
        }
        // approving a superseded record
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&reviewed, Some(9)),
                "ali",
                Approved
            )),
            Some("superseded")
        );
        // approving one's own capture
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&reviewed, None),
                "ANA",
                Approved
            )),
            Some("approver_is_author")
        );
        // the same meaning twice
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&reviewed, None),
                "rita",
                Reviewed
            )),
            Some("already_signed")
        );
    }

    // REQ: R4.2
    #[test]
    fn the_legitimate_path_and_a_new_cycle_after_rejection_are_allowed() {
        assert!(check_signing(&STRICT, &facts(&[], None), "rita", Reviewed).is_ok());
        assert!(check_signing(&STRICT, &facts(&[], None), "rita", Rejected).is_ok());
        let reviewed = [sig("rita", Reviewed, 5)];
        assert!(check_signing(&STRICT, &facts(&reviewed, None), "ali", Approved).is_ok());
        assert!(check_signing(&STRICT, &facts(&reviewed, None), "bo", Reviewed).is_ok());
        // a superseded record can still be reviewed or rejected
        assert!(check_signing(&STRICT, &facts(&reviewed, Some(9)), "ali", Rejected).is_ok());
        let rejected = [sig("rita", Reviewed, 5), sig("ali", Rejected, 6)];
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&rejected, None),
                "bo",
                Approved
            )),
            Some("rejected_final")
        );
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&rejected, None),
                "bo",
                Rejected
            )),
            Some("rejected_final")
        );
        // the same reviewer may start the new cycle, and another person approves it
        assert!(check_signing(&STRICT, &facts(&rejected, None), "rita", Reviewed).is_ok());
        let again = [
            sig("rita", Reviewed, 5),
            sig("ali", Rejected, 6),
            sig("rita", Reviewed, 7),
        ];
        assert_eq!(review_status(&facts(&again, None)), ReviewStatus::Reviewed);
        assert!(check_signing(&STRICT, &facts(&again, None), "ali", Approved).is_ok());
        assert_eq!(
            code(check_signing(
                &STRICT,
                &facts(&again, None),
                "rita",
                Approved
            )),
            Some("approver_is_reviewer")
        );
    }

    // REQ: R4.2
    #[test]
    fn status_follows_the_signatures_and_supersession() {
        assert_eq!(review_status(&facts(&[], None)), ReviewStatus::Pending);
        assert_eq!(
            review_status(&facts(&[], Some(3))),
            ReviewStatus::Superseded
        );
        let approved = [sig("rita", Reviewed, 5), sig("ali", Approved, 6)];
        assert_eq!(
            review_status(&facts(&approved, Some(9))),
            ReviewStatus::Approved
        );
        // history signed before the rules existed still has a status
        let lenient = [sig("rita", Approved, 5), sig("rita", Rejected, 6)];
        assert_eq!(
            review_status(&facts(&lenient, None)),
            ReviewStatus::Approved
        );
        let unknown = [SignatureFact {
            signer: "x".into(),
            meaning: None,
            seq: 3,
        }];
        assert_eq!(review_status(&facts(&unknown, None)), ReviewStatus::Pending);
    }

    // REQ: R4.2
    #[test]
    fn the_policy_switches_rules_off_but_never_finality() {
        let relaxed = WorkflowPolicy::RELAXED;
        assert!(check_signing(&relaxed, &facts(&[], None), "ana", Approved).is_ok());
        let approved = [sig("ali", Approved, 6)];
        assert_eq!(
            code(check_signing(
                &relaxed,
                &facts(&approved, None),
                "bo",
                Rejected
            )),
            Some("already_approved")
        );
        let custom =
            WorkflowPolicy::from_value(&serde_json::json!({"approver_not_author": false})).unwrap();
        assert!(custom.review_before_approval && !custom.approver_not_author);
        assert_eq!(
            WorkflowPolicy::from_value(&serde_json::json!("strict")).unwrap(),
            STRICT
        );
        assert!(WorkflowPolicy::from_value(&serde_json::json!("lenient")).is_err());
        assert!(WorkflowPolicy::from_value(&serde_json::json!({"typo": true})).is_err());
    }

    // REQ: R4.2
    #[test]
    fn queues_offer_the_next_step_each_person_may_take() {
        assert_eq!(
            next_step_for(&STRICT, &facts(&[], None), "rita"),
            Some(Reviewed)
        );
        let reviewed = [sig("rita", Reviewed, 5)];
        assert_eq!(
            next_step_for(&STRICT, &facts(&reviewed, None), "ali"),
            Some(Approved)
        );
        assert_eq!(
            next_step_for(&STRICT, &facts(&reviewed, None), "rita"),
            None
        );
        assert_eq!(next_step_for(&STRICT, &facts(&reviewed, None), "ana"), None);
        assert_eq!(next_step_for(&STRICT, &facts(&[], Some(2)), "rita"), None);
    }
}
