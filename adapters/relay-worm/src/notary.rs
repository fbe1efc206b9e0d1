//! `WormNotary`: the one `Notary` over a [`LockedBucket`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use relay_domain::TrailId;
use relay_domain::ports::{
    Anchor, AnchorReceipt, AnchorRound, Notary, NotaryError, ROUND_SPAN_MICROS, WormPosture,
};

use crate::bucket::{Listed, LockedBucket, TrailListing};
use crate::name::{
    AnchorName, ROUNDS_FOLDER, RoundName, decode_anchor, decode_round, encode_anchor, encode_round,
    round_day,
};

/// Rounds already read, by object name: the version's identity and the round. Objects are
/// written once, so a round is read once per version however many trails look into it.
type RoundCache = Arc<Mutex<HashMap<String, (String, Arc<AnchorRound>)>>>;

/// A notary writing each anchor as its own object,
/// `<prefix><trail>/<seq>-<anchored_at>-<nonce>.json` ([`AnchorName`]), and each scheduler
/// round ([`Notary::anchor_round`]) as one object,
/// `<prefix>~rounds/<day>/<round_at>-<nonce>.json` ([`RoundName`]), in a [`LockedBucket`].
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
    rounds: RoundCache,
}

impl<B: LockedBucket> WormNotary<B> {
    /// A notary storing anchors under `prefix` in `bucket`, whose lock the adapter has assessed
    /// as `posture`.
    pub fn new(bucket: B, prefix: impl Into<String>, posture: WormPosture) -> Self {
        Self {
            bucket,
            prefix: prefix.into(),
            posture,
            rounds: RoundCache::default(),
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

    /// The name prefix under which rounds are stored (`<prefix>~rounds/`).
    pub fn rounds_prefix(&self) -> String {
        format!("{}{ROUNDS_FOLDER}/", self.prefix)
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
        let bytes = self.read_single_bytes(name, versions).await?;
        self.decode(trail, name, &bytes)
    }

    /// Reads the object `name`, which must have exactly one version, be readable and (when the
    /// posture is enforced) locked.
    async fn read_single_bytes(
        &self,
        name: &str,
        versions: &[&B::Version],
    ) -> Result<Vec<u8>, NotaryError> {
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
        Ok(bytes)
    }

    /// Every round listed under `prefix` (a day folder, or all of `~rounds/`) whose name passes
    /// `wanted`, in time order, each checked like an anchor object (one version, readable,
    /// locked when enforced, a valid round made when its name says). A name under `~rounds/`
    /// that is not a round's is [`NotaryError::InvalidAnchor`].
    async fn read_rounds(
        &self,
        prefix: &str,
        wanted: impl Fn(&RoundName) -> bool,
    ) -> Result<Vec<Arc<AnchorRound>>, NotaryError> {
        let listed: Vec<Listed<B::Version>> = self.bucket.list_versions(prefix).await?;
        let mut by_name: BTreeMap<&str, Vec<&B::Version>> = BTreeMap::new();
        for item in &listed {
            by_name.entry(&item.name).or_default().push(&item.version);
        }
        let mut out = Vec::new();
        for (name, versions) in by_name {
            let Some(round_name) = RoundName::parse(&self.prefix, name) else {
                return Err(self
                    .bucket
                    .invalid(name, &"is not a round the notary wrote"));
            };
            if !wanted(&round_name) {
                continue;
            }
            let identity = versions
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join("|");
            let cached = self
                .rounds
                .lock()
                .ok()
                .and_then(|c| c.get(name).filter(|(id, _)| *id == identity).cloned());
            let round = match cached {
                Some((_, round)) => round,
                None => {
                    let bytes = self.read_single_bytes(name, &versions).await?;
                    let round = Arc::new(
                        decode_round(&round_name, &bytes)
                            .map_err(|why| self.bucket.invalid(name, &why))?,
                    );
                    if let Ok(mut cache) = self.rounds.lock() {
                        cache.insert(name.to_owned(), (identity, Arc::clone(&round)));
                    }
                    round
                }
            };
            out.push(round);
        }
        Ok(out)
    }

    /// The trail's newest anchor stored alone (its own object).
    async fn newest_alone(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        let listed = self.bucket.list_versions(&self.trail_prefix(trail)).await?;
        let mut newest: Option<(AnchorName, &str)> = None;
        for item in &listed {
            let Some(name) = AnchorName::parse(&item.name) else {
                return Ok(self.anchors_alone(trail).await?.into_iter().last());
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

    /// Every anchor of the trail stored alone, by seq then time.
    async fn anchors_alone(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
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
        Ok(out)
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

    /// Writes the whole round as one object: one write however many trails it holds.
    async fn anchor_round(&self, anchors: &[Anchor]) -> Result<Vec<AnchorReceipt>, NotaryError> {
        let round = AnchorRound::new(anchors.to_vec()).map_err(|why| NotaryError::Other {
            message: format!("not a valid anchor round: {why}"),
            source: None,
        })?;
        let body = encode_round(&round)?;
        let name = RoundName::new(&round, rand::random()).object_name(&self.prefix);
        let receipt = self.bucket.put_new(&name, body, self.posture).await?;
        tracing::debug!(trails = anchors.len(), object = %name, "anchor round stored");
        Ok(vec![receipt; anchors.len()])
    }

    /// The trail's anchors stored alone and in every round, by seq then time.
    async fn anchors(&self, trail: &TrailId) -> Result<Vec<Anchor>, NotaryError> {
        let mut out = self.anchors_alone(trail).await?;
        for round in self.read_rounds(&self.rounds_prefix(), |_| true).await? {
            out.extend(
                round
                    .anchors
                    .iter()
                    .filter(|a| &a.trail_id == trail)
                    .cloned(),
            );
        }
        out.sort_by(|a, b| {
            (a.seq, a.anchored_at.unix_micros()).cmp(&(b.seq, b.anchored_at.unix_micros()))
        });
        Ok(out)
    }

    /// Lists the trail's anchor names (no reads) and reads only the newest one stored alone,
    /// with the same checks `anchors` applies to it, then the rounds of the
    /// [`ROUND_SPAN_MICROS`] after it (the only ones that can hold a newer anchor of the trail;
    /// each read once and cached). A name that is not the notary's falls back to the full read,
    /// which reports it.
    async fn newest_anchor(&self, trail: &TrailId) -> Result<Option<Anchor>, NotaryError> {
        let Some(alone) = self.newest_alone(trail).await? else {
            return Ok(None);
        };
        let from = alone.anchored_at.unix_micros();
        let until = from.saturating_add(ROUND_SPAN_MICROS);
        let mut days = vec![round_day(from), round_day(until)];
        days.dedup();
        let mut newest = alone;
        for day in days {
            let prefix = format!("{}{day}/", self.rounds_prefix());
            let in_span = |n: &RoundName| (from..=until).contains(&n.round_at_micros);
            for round in self.read_rounds(&prefix, in_span).await? {
                for a in round.anchors.iter().filter(|a| &a.trail_id == trail) {
                    if (a.seq, a.anchored_at.unix_micros())
                        > (newest.seq, newest.anchored_at.unix_micros())
                    {
                        newest = a.clone();
                    }
                }
            }
        }
        Ok(Some(newest))
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
                    if name == ROUNDS_FOLDER {
                        continue;
                    }
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
                    if folder == ROUNDS_FOLDER {
                        continue;
                    }
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

    const HOUR: i64 = 3_600 * 1_000_000;

    #[tokio::test]
    async fn a_round_is_one_object_and_its_anchors_count_for_every_trail() {
        let n = notary(MemBucket::default());
        let (t1, t2) = (TrailId::new("t1").unwrap(), TrailId::new("t2").unwrap());
        let base = 1_790_000_000 * 1_000_000;
        let alone = [anchor("t1", 1, base), anchor("t2", 1, base)];
        for a in &alone {
            n.anchor(a).await.unwrap();
        }
        let round: Vec<Anchor> = (1..=3u64)
            .flat_map(|i| {
                let at = base + i as i64 * 30_000_000;
                [anchor("t1", 1 + i, at), anchor("t2", 1 + i, at)]
            })
            .collect();
        for pair in round.chunks(2) {
            let receipts = n.anchor_round(pair).await.unwrap();
            assert_eq!(receipts.len(), 2);
            assert_eq!(receipts[0].location, receipts[1].location);
        }
        // Two anchors alone and three rounds: five objects, not eight.
        assert_eq!(n.bucket().objects.lock().unwrap().len(), 5);
        let all = n.anchors(&t1).await.unwrap();
        assert_eq!(
            all.iter().map(|a| a.seq.get()).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(n.newest_anchor(&t2).await.unwrap().unwrap().seq.get(), 4);
        // The rounds folder is not a trail.
        assert_eq!(n.anchored_trails().await.unwrap(), vec![t1, t2]);
    }

    #[tokio::test]
    async fn newest_anchor_looks_only_into_the_hour_after_the_newest_alone() {
        let n = notary(MemBucket::default());
        let t1 = TrailId::new("t1").unwrap();
        let base = 1_790_000_000 * 1_000_000;
        n.anchor(&anchor("t1", 1, base)).await.unwrap();
        n.anchor_round(&[anchor("t1", 2, base + HOUR - 1)])
            .await
            .unwrap();
        assert_eq!(n.newest_anchor(&t1).await.unwrap().unwrap().seq.get(), 2);
        // A round after the span is outside what the scheduler writes; verification (anchors)
        // still reads it.
        n.anchor_round(&[anchor("t1", 3, base + 2 * HOUR)])
            .await
            .unwrap();
        assert_eq!(n.newest_anchor(&t1).await.unwrap().unwrap().seq.get(), 2);
        assert_eq!(n.anchors(&t1).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_overwritten_moved_or_foreign_round_is_invalid() {
        let t1 = TrailId::new("t1").unwrap();
        let base = 1_790_000_000 * 1_000_000;
        let fresh = || async {
            let n = notary(MemBucket::default());
            n.anchor(&anchor("t1", 1, base)).await.unwrap();
            n.anchor_round(&[anchor("t1", 2, base + 10)]).await.unwrap();
            let name = n.bucket().objects.lock().unwrap()[1].0.clone();
            (n, name)
        };
        // A second version of the round object.
        let (n, name) = fresh().await;
        let body =
            encode_round(&AnchorRound::new(vec![anchor("t1", 2, base + 10)]).unwrap()).unwrap();
        n.bucket()
            .objects
            .lock()
            .unwrap()
            .push((name.clone(), 2, Some(body)));
        assert!(invalid(n.anchors(&t1).await).contains("has 2 versions"));
        // A round whose time is not the one its name states (moved in time).
        let (n, _) = fresh().await;
        n.bucket().objects.lock().unwrap()[1].2 = Some(
            encode_round(&AnchorRound::new(vec![anchor("t1", 2, base + 11)]).unwrap()).unwrap(),
        );
        assert!(invalid(n.anchors(&t1).await).contains("not at the time its name states"));
        // Listed but gone.
        let (n, _) = fresh().await;
        n.bucket().objects.lock().unwrap()[1].2 = None;
        assert!(invalid(n.newest_anchor(&t1).await).contains("listed but cannot be read"));
        // Something else filed under the rounds folder.
        let (n, _) = fresh().await;
        n.bucket().objects.lock().unwrap().push((
            "anchors/~rounds/notes.txt".into(),
            1,
            Some(b"hi".to_vec()),
        ));
        assert!(invalid(n.anchors(&t1).await).contains("is not a round the notary wrote"));
        // Two anchors of one trail, or anchors made at different times, are not a round.
        let (n, _) = fresh().await;
        assert!(
            n.anchor_round(&[anchor("t1", 3, base + 20), anchor("t1", 4, base + 20)])
                .await
                .is_err()
        );
        assert!(
            n.anchor_round(&[anchor("t1", 3, base + 20), anchor("t2", 4, base + 21)])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_cached_round_replaced_under_a_new_version_is_read_again() {
        // A bucket that keeps no old versions: the attacker replaces the round's only version.
        // The cache is keyed by version, so the replacement is read and refused.
        let n = notary(MemBucket::default());
        let t1 = TrailId::new("t1").unwrap();
        let base = 1_790_000_000 * 1_000_000;
        n.anchor(&anchor("t1", 1, base)).await.unwrap();
        n.anchor_round(&[anchor("t1", 2, base + 10)]).await.unwrap();
        assert_eq!(n.anchors(&t1).await.unwrap().len(), 2, "read and cached");
        {
            let mut objects = n.bucket().objects.lock().unwrap();
            objects[1].1 = 7;
            objects[1].2 = Some(
                encode_round(&AnchorRound::new(vec![anchor("t1", 2, base + 11)]).unwrap()).unwrap(),
            );
        }
        assert!(invalid(n.anchors(&t1).await).contains("not at the time its name states"));
        assert!(invalid(n.newest_anchor(&t1).await).contains("not at the time its name states"));
    }

    #[test]
    fn round_names_round_trip_and_sort_by_time() {
        let round = AnchorRound::new(vec![anchor("t1", 2, 1_790_000_000_000_000)]).unwrap();
        let name = RoundName::new(&round, 0xabc);
        let object = name.object_name("anchors/");
        assert_eq!(
            object,
            "anchors/~rounds/2026-09-21/00001790000000000000-0000000000000abc.json"
        );
        assert_eq!(RoundName::parse("anchors/", &object), Some(name));
        for bad in [
            "anchors/~rounds/2026-09-22/00001790000000000000-0000000000000abc.json",
            "anchors/~rounds/2026-09-21/1790000000000000-0000000000000abc.json",
            "anchors/~rounds/2026-09-21/00001790000000000000-0000000000000ABC.json",
            "anchors/t1/00001790000000000000-0000000000000abc.json",
        ] {
            assert_eq!(RoundName::parse("anchors/", bad), None, "{bad}");
        }
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
