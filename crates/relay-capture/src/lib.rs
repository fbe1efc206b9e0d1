//! File capture for the GIMS Compliance Relay: watches folders and records completed files.
