//! Verification of every stored trail against its keys and notary anchors.
//!
//! One implementation, in `relay_api`, shared by the review API's `POST /api/v1/verify` and the
//! binaries' `verify` commands, so the two can never check a trail with different keys.

pub use relay_api::{
    TrailVerdict, VerifyRunError, forwarded_key_ring, trail_key_ring, verify_trails,
};
