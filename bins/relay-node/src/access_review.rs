//! `relay-edge access-review` and the account rows check of `relay-edge verify` on the local
//! data directory: the review is built from the account store and the chained account events
//! of `_relay` (`relay_domain::access_review`), printed or sealed into an export package of
//! `_relay` carrying it as `access_review.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_domain::access_review::{
    AccessReview, AccountReplay, RowDisagreement, build_review, replay_relay_trail,
    row_disagreements,
};
use relay_domain::ports::{AccountStore, RecordStore};
use relay_local::LocalAdapters;
use relay_runtime::export::{ExportOutcome, ExportRequest};

use crate::export::DataDirExportError;

/// Why the review or the account rows check could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessReviewError {
    /// There is no relay database in the data directory.
    #[error("no relay data in {0} (relay.db not found); check --data-dir")]
    NoData(PathBuf),
    /// The data directory could not be opened.
    #[error("cannot open the data directory {path}: {message}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The accounts or `_relay` could not be read.
    #[error("cannot read the {what}: {message}")]
    Read {
        /// The accounts or the `_relay` trail.
        what: &'static str,
        /// What failed.
        message: String,
    },
    /// The clock failed.
    #[error("no time for the review: {0}")]
    Time(String),
    /// The sealed export failed.
    #[error(transparent)]
    Export(#[from] DataDirExportError),
}

async fn open(data_dir: &Path) -> Result<LocalAdapters, AccessReviewError> {
    if !crate::local::has_store(data_dir) {
        return Err(AccessReviewError::NoData(data_dir.to_path_buf()));
    }
    LocalAdapters::open(data_dir)
        .await
        .map_err(|e| AccessReviewError::Open {
            path: data_dir.to_path_buf(),
            message: relay_domain::error_chain(&e),
        })
}

/// The account rows and the replay of `_relay`'s account events: what the review and the
/// row check compare.
async fn accounts_and_replay(
    adapters: &LocalAdapters,
) -> Result<(Vec<relay_domain::ports::Account>, AccountReplay), AccessReviewError> {
    let accounts = adapters
        .accounts
        .list()
        .await
        .map_err(|e| AccessReviewError::Read {
            what: "accounts",
            message: relay_domain::error_chain(&e),
        })?;
    let replay = replay_relay_trail(adapters.record_store.as_ref())
        .await
        .map_err(|e| AccessReviewError::Read {
            what: "_relay trail",
            message: relay_domain::error_chain(&e),
        })?;
    Ok((accounts, replay))
}

async fn review_of(
    adapters: &LocalAdapters,
    password_max_age: Duration,
) -> Result<AccessReview, AccessReviewError> {
    let (accounts, replay) = accounts_and_replay(adapters).await?;
    let now = relay_domain::ports::TimeSource::now(adapters.clock.as_ref())
        .await
        .map_err(|e| AccessReviewError::Time(e.to_string()))?;
    let max_age = i64::try_from(password_max_age.as_micros()).unwrap_or(i64::MAX);
    Ok(build_review(&accounts, &replay, now.at, max_age))
}

/// The access review of the data directory `data_dir` (read-only).
pub async fn review_data_dir(
    data_dir: &Path,
    password_max_age: Duration,
) -> Result<AccessReview, AccessReviewError> {
    let adapters = open(data_dir).await?;
    let review = review_of(&adapters, password_max_age).await;
    RecordStore::close(adapters.record_store.as_ref()).await;
    review
}

/// Builds the review and seals it into an export package of `_relay` per `request` (whose
/// `access_review` is replaced by the review); the export is recorded as an `EXPORT` event.
pub async fn export_review_data_dir(
    data_dir: &Path,
    device: relay_domain::Device,
    password_max_age: Duration,
    request: &ExportRequest,
) -> Result<(AccessReview, ExportOutcome), AccessReviewError> {
    let review = review_data_dir(data_dir, password_max_age).await?;
    let mut request = request.clone();
    request.trail = relay_domain::TrailId::relay();
    request.access_review = Some(review.to_json_bytes());
    let outcome = crate::export::export_data_dir(data_dir, device, &request).await?;
    Ok((review, outcome))
}

/// Every account row of `data_dir` that disagrees with the chained account events of `_relay`,
/// and the account events that could not be read (seq, why).
pub async fn account_rows_data_dir(
    data_dir: &Path,
) -> Result<(Vec<RowDisagreement>, Vec<(u64, String)>), AccessReviewError> {
    let adapters = open(data_dir).await?;
    let result = async {
        let (accounts, replay) = accounts_and_replay(&adapters).await?;
        Ok::<_, AccessReviewError>((
            row_disagreements(&accounts, &replay),
            replay.unreadable().to_vec(),
        ))
    }
    .await;
    RecordStore::close(adapters.record_store.as_ref()).await;
    result
}
