//! `WormNotary`: the one `Notary` over a [`LockedBucket`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{Anchor, AnchorReceipt, Notary, NotaryError, WormPosture};

use crate::bucket::{LockedBucket, TrailListing};
use crate::name::{AnchorName, decode_anchor, encode_anchor};

/// A notary writing each anchor as its own object,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json` ([`AnchorName`]), in a [`LockedBucket`].
///
/// - **Writes once**: every anchor gets a fresh name and the bucket refuses to replace an
///   object; the notary never writes a name twice.
/// - **Reads back with proof**: `anchors` lists every version of the trail's anchor objects. A
///   name with more than one version (overwritten), a version the bucket finds unlocked or not
///   current, a listed object that cannot be read, or content that is not an anchor of the
///   trail it is filed under is [`NotaryError::InvalidAnchor`].
/// - **States its posture**: the adapter decides at start-up whether the bucket locks objects
///   and refuses to run otherwise unless explicitly allowed; the notary reports that posture
///   and checks locks on read-back only when it is `Enforced`.
#[derive(Debug, Clone)]
pub struct WormNotary<B> {
    bucket: B,
    prefix: String,
    posture: WormPosture,
}

impl<B: LockedBucket> WormNotary<B> {
    /// A notary storing anchors under `prefix` in `bucket`, whose lock the adapter has assessed
    /// as `posture`.
    pub fn new(bucket: B, prefix: impl Into<String>, posture: WormPosture) -> Self {
        Self {
            bucket,
            prefix: prefix.into(),
            posture,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &B {
        &self.bucket
    }

    /// The name prefix under which the anchors of `trail` are stored (`<prefix><trail>/`).
    pub fn trail_prefix(&self, trail: &TrailId) -> String {
        format!("{}{}/", self.prefix, trail.as_str())
    }

    fn decode(&self, trail: &TrailId, name: &str, bytes: &[u8]) -> Result<Anchor, NotaryError> {
        decode_anchor(trail, bytes).map_err(|why| self.bucket.invalid(name, &why))
    }

    /// Reads the anchor stored under `name`, which must have exactly one version (the notary
    /// writes each name once), be readable (and locked, when the posture is enforced) and hold
    /// an anchor of `trail`.
    async fn read_single(
        &self,
        trail: &TrailId,
        name: &str,
        versions: &[&B::Version],
    ) -> Result<Anchor, NotaryError> {
        let [version] = versions else {
            return Err(self.bucket.invalid(
                name,
                &format!(
                    "has {} versions; the notary writes each anchor once, so it was overwritten",
                    versions.len()
                ),
            ));
        };
        let Some(bytes) = self
            .bucket
            .read_version(name, version, self.posture)
            .await?
        else {
            return Err(self.bucket.invalid(name, &"listed but cannot be read"));
        };
        self.decode(trail, name, &bytes)
    }

    fn folder_error(&self, location: &str, e: impl std::fmt::Display) -> NotaryError {
        NotaryError::InvalidAnchor(format!("{location} is not a trail's anchor folder: {e}"))
    }
}

#[async_trait]
impl<B: LockedBucket> Notary for WormNotary<B> {
    fn kind(&self) -> &'static str {
        self.bucket.kind()
    }

    fn worm_posture(&self) -> WormPosture {
        self.posture
    }

    async fn anchor(&self, anchor: &Anchor) -> Result<AnchorReceipt, NotaryError> {
        let body = encode_anchor(anchor)?;
        let name = AnchorName::new(anchor, rand::random())
            .object_name(&self.trail_prefix(&anchor.trail_id));
        let receipt = self.bucket.put_new(&name, body, self.posture).await?;
        tracing::debug!(trail = %anchor.trail_id, seq = anchor.seq.get(), object = %name, "anchored");
        Ok(receipt)
    }

    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        let listed = self.bucket.list_versions(&self.trail_prefix(trail)).await?;
        // Every version, so a hidden or replaced anchor cannot go unnoticed.
        let mut by_name: BTreeMap<String, Vec<B::Version>> = BTreeMap::new();
        for item in listed {
            by_name.entry(item.name).or_default().push(item.version);
        }
        let mut out = Vec::with_capacity(by_name.len());
        for (name, versions) in &by_name {
            let versions: Vec<&B::Version> = versions.iter().collect();
            out.push(self.read_single(trail, name, &versions).await?);
        }
        out.sort_by(|a, b| {
            (a.seq, a.anchored_at.unix_micros()).cmp(&(b.seq, b.anchored_at.unix_micros()))
        });
        Ok(out)
    }

    /// Lists the trail's anchor names (no reads) and reads only the newest one, with the same
    /// checks `anchors` applies to it (one version, locked, an anchor of this trail). A name
    /// that is not the notary's falls back to the full read, which reports it.
    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        let listed = self.bucket.list_versions(&self.trail_prefix(trail)).await?;
        let mut newest: Option<(AnchorName, &str)> = None;
        for item in &listed {
            let Some(name) = AnchorName::parse(&item.name) else {
                return Ok(self.anchors(trail).await?.into_iter().last());
            };
            if newest.is_none_or(|(n, _)| {
                (name.seq, name.anchored_at_micros) > (n.seq, n.anchored_at_micros)
            }) {
                newest = Some((name, &item.name));
            }
        }
        let Some((_, name)) = newest else {
            return Ok(None);
        };
        let versions: Vec<&B::Version> = listed
            .iter()
            .filter(|i| i.name == name)
            .map(|i| &i.version)
            .collect();
        self.read_single(trail, name, &versions).await.map(Some)
    }

    async fn anchored_trails(&self) -> Result<Vec<TrailId>, NotaryError> {
        let mut trails = Vec::new();
        match self.bucket.list_trails(&self.prefix).await? {
            TrailListing::Folders(folders) => {
                for p in &folders {
                    let Some(name) = p
                        .strip_prefix(&self.prefix)
                        .and_then(|p| p.strip_suffix('/'))
                    else {
                        continue;
                    };
                    let trail = TrailId::new(name)
                        .map_err(|e| self.folder_error(&self.bucket.location(p), e))?;
                    trails.push(trail);
                }
            }
            TrailListing::Names(names) => {
                for name in &names {
                    let Some((folder, _)) = name
                        .strip_prefix(&self.prefix)
                        .and_then(|rest| rest.split_once('/'))
                    else {
                        return Err(self
                            .bucket
                            .invalid(name, &"is not inside a trail's anchor folder"));
                    };
                    let trail = TrailId::new(folder).map_err(|e| {
                        self.bucket.invalid(
                            name,
                            &format!("{folder:?} is not a trail's anchor folder: {e}"),
                        )
                    })?;
                    trails.push(trail);
                }
            }
        }
        trails.sort();
        trails.dedup();
        Ok(trails)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::Mutex;

    use relay_domain::ids::{ChainSeq, Checksum};
    use relay_domain::{TimeLabel, Timestamp};

    use super::*;
    use crate::bucket::Listed;

    /// One stored version: name, version, body (`None`: listed but gone).
    type Stored = (String, u32, Option<Vec<u8>>);

    /// A bucket in memory: every put adds a version; the test plays the attacker on `objects`.
    #[derive(Default)]
    struct MemBucket {
        objects: Mutex<Vec<Stored>>,
        folders: Option<Vec<String>>,
    }

    impl fmt::Debug for MemBucket {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("MemBucket")
        }
    }

    #[async_trait]
    impl LockedBucket for MemBucket {
        type Version = u32;

        fn kind(&self) -> &'static str {
            "memory"
        }

        fn location(&self, name: &str) -> String {
            format!("mem://b/{name}")
        }

        async fn put_new(
            &self,
            name: &str,
            body: Vec<u8>,
            _posture: WormPosture,
        ) -> Result<AnchorReceipt, NotaryError> {
            let mut objects = self.objects.lock().unwrap();
            assert!(
                objects.iter().all(|(n, _, _)| n != name),
                "{name} written twice"
            );
            objects.push((name.to_owned(), 1, Some(body)));
            Ok(AnchorReceipt {
                location: self.location(name),
                retain_until: None,
            })
        }

        async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed<u32>>, NotaryError> {
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .filter(|(n, _, _)| n.starts_with(prefix))
                .map(|(n, v, _)| Listed {
                    name: n.clone(),
                    version: *v,
                })
                .collect())
        }

        async fn read_version(
            &self,
            name: &str,
            version: &u32,
            _posture: WormPosture,
        ) -> Result<Option<Vec<u8>>, NotaryError> {
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .find(|(n, v, _)| n == name && v == version)
                .and_then(|(_, _, body)| body.clone()))
        }

        async fn list_trails(&self, prefix: &str) -> Result<TrailListing, NotaryError> {
            if let Some(folders) = &self.folders {
                return Ok(TrailListing::Folders(folders.clone()));
            }
            let objects = self.objects.lock().unwrap();
            Ok(TrailListing::Names(
                objects
                    .iter()
                    .filter(|(n, _, _)| n.starts_with(prefix))
                    .map(|(n, _, _)| n.clone())
                    .collect(),
            ))
        }
    }

    fn anchor(trail: &str, seq: u64, micros: i64) -> Anchor {
        Anchor {
            trail_id: TrailId::new(trail).unwrap(),
            seq: ChainSeq::new(seq).unwrap(),
            checksum: Checksum([seq as u8; 32]),
            merkle_root: None,
            anchored_at: Timestamp::from_unix_micros(micros).unwrap(),
            time_source: TimeLabel::System,
            version: 1,
            frontier: Vec::new(),
            consistency: None,
            checkpoint: None,
        }
    }

    fn notary(bucket: MemBucket) -> WormNotary<MemBucket> {
        WormNotary::new(bucket, "anchors/", WormPosture::Enforced)
    }

    fn invalid(result: Result<impl fmt::Debug, NotaryError>) -> String {
        match result {
            Err(NotaryError::InvalidAnchor(why)) => why,
            other => panic!("expected InvalidAnchor, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn anchors_round_trip_in_order_under_their_names() {
        let n = notary(MemBucket::default());
        let (a, b, c) = (anchor("t1", 2, 5), anchor("t1", 1, 9), anchor("t2", 1, 1));
        for x in [&a, &b, &c] {
            n.anchor(x).await.unwrap();
        }
        let t1 = TrailId::new("t1").unwrap();
        assert_eq!(n.anchors(&t1).await.unwrap(), vec![b, a]);
        assert_eq!(n.kind(), "memory");
        assert_eq!(n.worm_posture(), WormPosture::Enforced);
        let names: Vec<String> = n
            .bucket()
            .objects
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.0.clone())
            .collect();
        for name in &names {
            assert!(name.starts_with("anchors/t"), "{name}");
            assert!(AnchorName::parse(name).is_some(), "{name}");
        }
        assert_eq!(
            n.anchored_trails().await.unwrap(),
            vec![t1, TrailId::new("t2").unwrap()]
        );
    }

    #[tokio::test]
    async fn a_second_version_a_lost_object_or_a_moved_anchor_is_invalid() {
        let n = notary(MemBucket::default());
        let t1 = TrailId::new("t1").unwrap();
        n.anchor(&anchor("t1", 1, 1)).await.unwrap();
        let name = n.bucket().objects.lock().unwrap()[0].0.clone();

        // Overwritten: a second version of the same name.
        let body = encode_anchor(&anchor("t1", 1, 2)).unwrap();
        n.bucket()
            .objects
            .lock()
            .unwrap()
            .push((name.clone(), 2, Some(body)));
        let why = invalid(n.anchors(&t1).await);
        assert_eq!(
            why,
            format!(
                "mem://b/{name}: has 2 versions; the notary writes each anchor once, so it was \
                 overwritten"
            )
        );

        // Listed, but the store no longer has it.
        n.bucket().objects.lock().unwrap().truncate(1);
        n.bucket().objects.lock().unwrap()[0].2 = None;
        assert_eq!(
            invalid(n.anchors(&t1).await),
            format!("mem://b/{name}: listed but cannot be read")
        );

        // Moved: an anchor of another trail filed under this one.
        n.bucket().objects.lock().unwrap()[0].2 = Some(encode_anchor(&anchor("t9", 1, 1)).unwrap());
        assert_eq!(
            invalid(n.anchors(&t1).await),
            format!("mem://b/{name}: holds an anchor of trail t9")
        );
    }

    #[tokio::test]
    async fn trail_folders_that_are_not_trails_are_invalid() {
        let folders = MemBucket {
            folders: Some(vec![
                "anchors/t1/".into(),
                "elsewhere/t2/".into(),
                "anchors/not a trail!/".into(),
            ]),
            ..MemBucket::default()
        };
        let why = invalid(notary(folders).anchored_trails().await);
        assert!(
            why.starts_with("mem://b/anchors/not a trail!/ is not a trail's anchor folder: "),
            "{why}"
        );

        let flat = MemBucket::default();
        flat.objects
            .lock()
            .unwrap()
            .push(("anchors/stray.json".into(), 1, None));
        assert_eq!(
            invalid(notary(flat).anchored_trails().await),
            "mem://b/anchors/stray.json: is not inside a trail's anchor folder"
        );
    }
}
