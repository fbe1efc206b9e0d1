//! relay-verify: the auditor's offline verifier.

fn main() {}
