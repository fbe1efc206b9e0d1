//! Local adapter: SQLite record store, filesystem object store and notary, file secrets, system clock.
