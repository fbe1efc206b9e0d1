//! The streaming hash agrees with `sha2` on files of any size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use relay_capture::{sha256_file, sha256_reader};
use sha2::{Digest, Sha256};

// REQ: R6.5
#[test]
fn file_hash_matches_sha2_across_buffer_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    for len in [
        0usize,
        1,
        4095,
        4096,
        4097,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        3 << 20,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let path = dir.path().join(format!("f{len}"));
        std::fs::write(&path, &data).unwrap();
        let digest = sha256_file(&path).unwrap();
        assert_eq!(digest.size, len as u64);
        assert_eq!(
            digest.sha256.0,
            <[u8; 32]>::from(Sha256::digest(&data)),
            "len {len}"
        );
    }
}

proptest! {
    #[test]
    fn reader_hash_matches_sha2(data in prop::collection::vec(any::<u8>(), 0..20_000), buf_len in 1usize..5000) {
        let mut buf = vec![0u8; buf_len];
        let digest = sha256_reader(&data[..], &mut buf).unwrap();
        prop_assert_eq!(digest.sha256.0, <[u8; 32]>::from(Sha256::digest(&data)));
        prop_assert_eq!(digest.size, data.len() as u64);
    }
}
