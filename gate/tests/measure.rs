//! The overhead benchmark's measurement code (gate/benches/support) is
//! tested here: a benchmark target without the test harness runs no
//! `#[test]`, and the code stays out of the shipped library.

#[allow(dead_code)]
#[path = "../benches/support/measure.rs"]
mod measure;

use std::time::Duration;

#[test]
fn percentiles_of_sorted_durations_in_ms() {
    let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
    assert_eq!(measure::percentile(&v, 0.5), 6.0);
    assert_eq!(measure::percentile(&v, 0.9), 9.0);
    assert!(measure::percentile(&[], 0.5).is_nan());
}
