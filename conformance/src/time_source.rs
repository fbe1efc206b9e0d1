//! The `TimeSource` suite: sane instants with labels that round-trip.

use std::time::{SystemTime, UNIX_EPOCH};

use relay_domain::TimeLabel;
use relay_domain::ports::TimeSource;

use crate::fixtures::must;

/// How far a time source may be from this host's clock and still be called sane.
pub const MAX_SKEW_MICROS: i64 = 5 * 60 * 1_000_000;

/// Runs every rule of the time source contract against `clock`.
pub async fn suite(clock: &dyn TimeSource) {
    reads_within_bounds_of_the_system_clock(clock).await;
    labels_round_trip_through_time_label_parse(clock).await;
    posture_matches_the_labels(clock).await;
}

fn system_micros() -> i64 {
    let since = must(SystemTime::now().duration_since(UNIX_EPOCH), "system clock");
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// `now` is within [`MAX_SKEW_MICROS`] of the host clock.
pub async fn reads_within_bounds_of_the_system_clock(clock: &dyn TimeSource) {
    let before = system_micros();
    let now = must(clock.now().await, "now");
    let after = system_micros();
    let at = now.at.unix_micros();
    assert!(
        at >= before - MAX_SKEW_MICROS && at <= after + MAX_SKEW_MICROS,
        "time source reads {} but the host clock reads about {before}us since the epoch",
        now.at
    );
}

/// Every instant's label has a canonical text form that parses back to the same label.
pub async fn labels_round_trip_through_time_label_parse(clock: &dyn TimeSource) {
    for _ in 0..3 {
        let now = must(clock.now().await, "now");
        let text = now.label.to_label();
        assert_eq!(
            TimeLabel::parse(&text),
            Some(now.label),
            "label {text:?} must round-trip"
        );
    }
}

/// The posture names a kind and carries the same kind of label as the instants.
pub async fn posture_matches_the_labels(clock: &dyn TimeSource) {
    let posture = clock.posture();
    assert!(!posture.kind.is_empty(), "the posture names its kind");
    let now = must(clock.now().await, "now");
    assert_eq!(
        matches!(posture.label, TimeLabel::System),
        matches!(now.label, TimeLabel::System),
        "posture label {} and instant label {} disagree on system vs validated",
        posture.label,
        now.label
    );
}
