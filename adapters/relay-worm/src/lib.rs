//! One WORM notary for the cloud adapters.
//!
//! [`WormNotary`] implements the [`Notary`](relay_domain::ports::Notary) port once, over a
//! [`LockedBucket`]: a store that writes an object once under retention and refuses to
//! overwrite it, lists every version of the objects under a prefix and reads one back with
//! its lock checked. S3 Object Lock (relay-selfhosted, relay-aws), Azure immutable blobs
//! (relay-azure) and Cloud Storage retention (relay-gcp) are thin implementations of that
//! trait; everything the three share lives here, once:
//!
//! - the anchor object name, `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json`
//!   ([`AnchorName`]);
//! - the anchor body (JSON) and its one decoding and validation path ([`decode_anchor`]);
//! - what counts as tampering across versions: a name with more than one version was
//!   overwritten, a listed object that cannot be read was removed, content naming another trail
//!   was moved, a trail folder that is not a trail id was planted.
//!
//! How a store is found to lock objects at start-up (the notary's
//! [`WormPosture`](relay_domain::ports::WormPosture)) stays with each adapter: the three
//! providers answer that question in different ways.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bucket;
mod name;
mod notary;

pub use bucket::{Listed, LockedBucket, TrailListing};
pub use name::{
    AnchorName, ROUNDS_FOLDER, RoundName, decode_anchor, decode_round, encode_anchor, encode_round,
};
pub use notary::WormNotary;
