//! The notary conformance suite against the one WORM notary, over an in-memory locked bucket
//! that refuses overwrites as a real one does: the naming, listing and decoding every cloud
//! notary now shares pass the same suite as the local notary. The real buckets (S3 Object Lock
//! on moto, Azurite, the GCS emulator) run it in their own adapters' tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use relay_conformance::notary;
use relay_domain::ports::{AnchorReceipt, Notary, NotaryError, WormPosture};
use relay_worm::{Listed, LockedBucket, TrailListing, WormNotary};

/// A bucket in memory: one version per object, and a second put of a name is refused.
#[derive(Default)]
struct MemBucket {
    objects: Mutex<Vec<(String, Vec<u8>)>>,
}

impl fmt::Debug for MemBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemBucket")
    }
}

#[async_trait]
impl LockedBucket for MemBucket {
    type Version = ();

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn location(&self, name: &str) -> String {
        format!("mem://bucket/{name}")
    }

    async fn put_new(
        &self,
        name: &str,
        body: Vec<u8>,
        _posture: WormPosture,
    ) -> Result<AnchorReceipt, NotaryError> {
        let mut objects = self.objects.lock().unwrap();
        if objects.iter().any(|(n, _)| n == name) {
            return Err(NotaryError::InvalidAnchor(format!(
                "{name} exists; a locked bucket never overwrites"
            )));
        }
        objects.push((name.to_owned(), body));
        Ok(AnchorReceipt {
            location: self.location(name),
            retain_until: None,
        })
    }

    async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<()>>, NotaryError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, _)| Listed {
                name: n.clone(),
                version: (),
            })
            .collect())
    }

    async fn read_version(
        &self,
        name: &str,
        _version: &(),
        _posture: WormPosture,
    ) -> Result<Option<Vec<u8>>, NotaryError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone()))
    }

    async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
        Ok(TrailListing::Names(
            self.objects
                .lock()
                .unwrap()
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(n, _)| n.clone())
                .collect(),
        ))
    }
}

// REQ: R10.2
#[tokio::test]
async fn the_worm_notary_passes_the_notary_suite_over_a_locked_bucket() {
    let notary = WormNotary::new(MemBucket::default(), "anchors/", WormPosture::Unenforced);
    assert_eq!(notary.worm_posture(), WormPosture::Unenforced);
    notary::suite(&notary, None).await;
}
