//! The ports through which the relay reaches the outside world (R10.1).
//!
//! Each port is an object-safe async trait (used as `Arc<dyn Port>`) with a written contract and
//! one error enum. Adapters map provider errors into these enums at their boundary; callers match
//! variants and [`crate::ErrorStatus`], never message text.

pub mod accounts;
pub mod changes;
pub mod failure;
pub mod fleet;
pub mod forward;
pub mod notary;
pub mod object_store;
pub mod receipts;
pub mod record_store;
pub mod secrets;
pub mod time_source;

pub use accounts::{
    Account, AccountStore, AccountStoreError, Role, StoredAccountRow, TotpSecret, Username,
};
pub use changes::{
    ChangeDecision, ChangeRequest, ChangeRequestStore, ChangeSetting, ChangeState, ChangeStoreError,
};
pub use failure::{Classified, Meaning, ProviderFailure};
pub use fleet::{
    CodeDigest, EdgeEntry, EdgeReport, EdgeState, EnrollmentCode, FleetError, FleetStore,
    RedeemRefusal,
};
pub use forward::{
    DeadLetter, ForwardCursor, ForwardCursorError, ForwardCursorStore, ForwardState,
};
pub use notary::{
    ANCHOR_VERSION, Anchor, AnchorReceipt, AnchorRound, ConsistencyLink, Notary, NotaryError,
    ROUND_SPAN_MICROS, WormPosture,
};
pub use object_store::{
    ObjectKey, ObjectKeyError, ObjectMeta, ObjectStore, ObjectStoreCapabilities, ObjectStoreError,
    PutMode,
};
pub use receipts::{Lateness, Receipt, ReceiptError, ReceiptStore, receipt_for};
pub use record_store::{
    AppendOnlyEnforcement, AppendReceipt, Head, RecordStore, RecordStoreCapabilities,
    RecordStoreError, RecordStoreExt, TamperAttempt, TamperProbe,
};
pub use secrets::{
    SecretError, SecretName, SecretProvider, SecretProviderExt, SecretValue, SecretsFallback,
    merge_imported,
};
pub use time_source::{TimeEvent, TimePosture, TimeSource, TimeSourceError, TimedInstant};
