//! The auditor's trust file (`gims-relay-trust-v1`, `crates/relay-domain/src/export/trust.rs`) and
//! its pins, read from untrusted bytes: parsing must never panic, a parsed pin must be
//! well-formed (32 lowercase hex characters of fingerprint, an optional 64-character public key
//! whose fingerprint it is), and a pin may match only the key it names.
//!
//! The input is a trust file's bytes. Seeds are small valid and broken trust files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_domain::export::{PinnedKey, parse_trust_file};

fuzz_target!(|data: &[u8]| {
    let Ok(pins) = parse_trust_file(data) else {
        return;
    };
    for pin in &pins {
        assert_eq!(
            pin.fingerprint.len(),
            32,
            "a pin's fingerprint is 32 hex characters"
        );
        assert!(
            pin.fingerprint
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "a pin's fingerprint is lowercase hex"
        );
        if let Some(public_key) = &pin.public_key {
            let reparsed = PinnedKey::parse(public_key, &pin.label)
                .expect("a public key accepted once parses again");
            assert_eq!(reparsed.fingerprint, pin.fingerprint);
            assert!(pin.matches(&pin.fingerprint, public_key));
            // Another public key with the same fingerprint prefix is not this key.
            let mut other = public_key.clone().into_bytes();
            other[63] = if other[63] == b'0' { b'1' } else { b'0' };
            let other = String::from_utf8(other).expect("hex stays ASCII");
            assert!(
                !pin.matches(&pin.fingerprint, &other),
                "a pin by public key matches only that key"
            );
        }
        assert!(!pin.matches("00000000000000000000000000000000x", ""));
    }
});
