//! The account rows against the chained account events of `_relay`, checked at every start
//! (issue 18, item 5), as `relay-edge verify` does.
//!
//! Every account change is a chained event; the accounts table is mutable state beside it. A
//! row edited behind the relay's back (`UPDATE accounts SET role = 'admin'`) disagrees with the
//! replay of those events (`relay_domain::access_review::row_disagreements`). Every start
//! records the result in the `STARTUP` posture (`account_rows`); a disagreement is also an
//! error log line and a `SYSTEM` event `ACCOUNT_ROWS_DISAGREE` naming each row and field. The
//! relay keeps running (capture is not the accounts' business); `verify` fails until fixed.

use relay_domain::access_review::{RowDisagreement, replay_relay_trail, row_disagreements};
use relay_domain::ports::{AccountStore, RecordStore};

use crate::journal::Journal;

/// The `SYSTEM` event recorded when a start finds account rows that disagree with the trail.
pub const DISAGREE_EVENT: &str = "ACCOUNT_ROWS_DISAGREE";

/// What a start found: the disagreements, or why the check could not run.
#[derive(Debug, Clone)]
pub enum AccountRows {
    /// Every row was compared; these disagree (none: all agree).
    Checked(Vec<RowDisagreement>),
    /// The accounts or `_relay` could not be read.
    Unchecked(String),
}

/// Compares every account row with the replay of `_relay`.
pub async fn read(accounts: &dyn AccountStore, store: &dyn RecordStore) -> AccountRows {
    let rows = match accounts.list().await {
        Ok(rows) => rows,
        Err(e) => return AccountRows::Unchecked(relay_domain::error_chain(&e)),
    };
    match replay_relay_trail(store).await {
        Ok(replay) => AccountRows::Checked(row_disagreements(&rows, &replay)),
        Err(e) => AccountRows::Unchecked(relay_domain::error_chain(&e)),
    }
}

/// The `account_rows` section of the `STARTUP` posture.
pub fn posture(rows: &AccountRows) -> serde_json::Value {
    match rows {
        AccountRows::Checked(found) => serde_json::json!({
            "agree": found.is_empty(),
            "disagreements": found.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        AccountRows::Unchecked(why) => serde_json::json!({"agree": null, "error": why}),
    }
}

/// Makes a disagreement (or a check that could not run) loud: an error log line and a `SYSTEM`
/// event after the `STARTUP` event. Returns the journal's error if the event could not be
/// recorded.
pub async fn report(
    rows: &AccountRows,
    journal: &Journal,
) -> Result<(), relay_domain::AppendError> {
    let payload = match rows {
        AccountRows::Checked(found) if found.is_empty() => return Ok(()),
        AccountRows::Checked(found) => {
            let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
            tracing::error!(
                disagreements = %lines.join("; "),
                "ACCOUNT ROWS DISAGREE with the chained account events of _relay: the accounts \
                 table was edited outside the relay; `verify` fails until it is fixed (see \
                 docs/operations.md, Access review)"
            );
            serde_json::json!({"disagreements": found})
        }
        AccountRows::Unchecked(why) => {
            tracing::error!(error = %why, "the account rows could not be checked against _relay");
            serde_json::json!({"error": why})
        }
    };
    journal.system(DISAGREE_EVENT, payload).await.map(|_| ())
}
