//! Protocol fakes for services without an emulator. Test code only: nothing outside `tests/`
//! uses them, and they prove the adapter speaks the documented wire protocol, not that the
//! real service behaves like the fake (docs/ARCHITECTURE.md, section GCP).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod secret_manager;
