//! The composition roots of `relay-edge` and `relay-server`: which adapter, which file, which
//! path.
//!
//! `relay-runtime` runs the relay over ports and never opens a store; this crate is where the
//! local provider (SQLite + files under a data directory, `adapters/relay-local`) is opened and
//! its ports handed over ([`local`]), and where the commands that work on a local data
//! directory live: the edge's start ([`edge`]), `verify`, `keys`, `export`, `forward resume`,
//! `backup`/`restore` ([`backup`]) and installation/operational qualification ([`qualify`]).
//! The two binaries parse their configuration and call into it.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access_review;
pub mod backup;
pub mod edge;
pub mod enroll;
pub mod export;
pub mod forward;
pub mod keys;
pub mod local;
pub mod qualify;
