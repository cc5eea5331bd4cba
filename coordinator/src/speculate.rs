//! Backup tasks (the paper's §3.6, Hadoop's and Spark's speculative execution): when a
//! phase has no idle task left and a worker asks for work, a second attempt of a task
//! that is running long is started on it. The first attempt to finish wins; the other
//! is told to stop and its late report is refused, so a task still has one committed
//! output. This module holds the rule's parameters and the running median it compares
//! against; the task table applies it.
//!
//! The rule ([`Speculation::DEFAULT`]): a run is long once it has run 3x the median
//! time of the phase's finished tasks, and at least 1 s (a backup costs a task's work;
//! below a second it could save at most a second). 3x, not Spark's 1.5x: the median of
//! the tasks finished first leans short, and tasks that merely vary (the 6.824 job
//! count test's maps take 2 to 5 s, and it fails if any runs twice) must not be run
//! again; a straggler worth a backup is many times slower. At most 10% of the phase's tasks
//! (and at least one) run a backup at once, the longest-running first; a task never
//! has more than two live attempts, and a backup never goes to the worker running the
//! original, nor to a worker noted as slow.

use std::collections::BTreeMap;
use std::time::Duration;

/// When to start a backup attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Speculation {
    /// A run is long once it has run this many percent of the median time of the
    /// phase's finished tasks.
    pub slower_than_percent: u32,
    /// ... and at least this long.
    pub min_runtime: Duration,
    /// At most this many percent of a phase's tasks (and at least one) run a backup at
    /// once.
    pub max_share_percent: u32,
}

impl Speculation {
    /// 3x the median, a floor of a second, Hadoop's cap of 10%.
    pub const DEFAULT: Speculation = Speculation {
        slower_than_percent: 300,
        min_runtime: Duration::from_secs(1),
        max_share_percent: 10,
    };

    /// How long a run must have run before a backup of it starts, given the median time
    /// of the phase's finished tasks.
    pub fn threshold(&self, median: Duration) -> Duration {
        let long = median.saturating_mul(self.slower_than_percent) / 100;
        long.max(self.min_runtime)
    }

    /// How many backups a phase of `tasks` tasks may run at once.
    pub fn cap(&self, tasks: usize) -> usize {
        (tasks * self.max_share_percent as usize)
            .div_ceil(100)
            .max(1)
    }
}

/// The times tasks took, to the millisecond, with their (lower) median in O(log n) per
/// insertion: the lower half and the upper half as multisets, kept within one of each
/// other in size. Milliseconds lose nothing the rule needs (its floor is a second) and
/// keep the multisets small: tasks mostly take a few distinct milliseconds, so an
/// insertion touches a few cached nodes instead of one more node among every task's
/// own nanosecond time (3.5% of the coordinator's CPU in a job of 4 KiB maps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Durations {
    low: BTreeMap<Duration, u32>,
    high: BTreeMap<Duration, u32>,
    n_low: usize,
    n_high: usize,
}

fn put(set: &mut BTreeMap<Duration, u32>, d: Duration) {
    *set.entry(d).or_default() += 1;
}

fn take(set: &mut BTreeMap<Duration, u32>, d: Duration) {
    if let Some(n) = set.get_mut(&d) {
        *n -= 1;
        if *n == 0 {
            set.remove(&d);
        }
    }
}

impl Durations {
    /// Adds one (truncated to the millisecond).
    pub fn insert(&mut self, d: Duration) {
        let d = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match self.low.last_key_value() {
            Some((&top, _)) if d > top => {
                put(&mut self.high, d);
                self.n_high += 1;
            }
            _ => {
                put(&mut self.low, d);
                self.n_low += 1;
            }
        }
        // Keep n_low == n_high or n_high + 1: the median is the top of the low half.
        if self.n_low > self.n_high + 1 {
            if let Some((&top, _)) = self.low.last_key_value() {
                take(&mut self.low, top);
                put(&mut self.high, top);
                self.n_low -= 1;
                self.n_high += 1;
            }
        } else if self.n_high > self.n_low {
            if let Some((&bottom, _)) = self.high.first_key_value() {
                take(&mut self.high, bottom);
                put(&mut self.low, bottom);
                self.n_high -= 1;
                self.n_low += 1;
            }
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.n_low + self.n_high
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The median (the lower one of an even count), if any.
    pub fn median(&self) -> Option<Duration> {
        self.low.last_key_value().map(|(d, _)| *d)
    }
}

/// What speculation did, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct SpeculationStats {
    /// Backup attempts started.
    pub started: u64,
    /// Backups that finished their task (first, or after the original failed).
    pub won: u64,
    /// Backups that ended without finishing their task: beaten by the original,
    /// failed, or taken back.
    pub wasted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_median_is_the_middle_time_whatever_the_order_of_insertion() {
        let mut d = Durations::default();
        assert_eq!(d.median(), None);
        let times = [50, 10, 40, 10, 90, 30, 20, 70, 60];
        let mut seen = Vec::new();
        for t in times {
            d.insert(ms(t));
            seen.push(t);
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            let lower_median = sorted[(sorted.len() - 1) / 2];
            assert_eq!(d.median(), Some(ms(lower_median)), "after {seen:?}");
        }
        assert_eq!(d.len(), times.len());
    }

    #[test]
    fn times_count_to_the_millisecond() {
        let mut d = Durations::default();
        for us in [1_100, 1_900, 2_500, 1_000] {
            d.insert(Duration::from_micros(us));
        }
        // 1, 1, 2, 1 ms: the lower median is 1 ms.
        assert_eq!(d.median(), Some(ms(1)));
        assert_eq!(d.len(), 4);
        d.insert(Duration::from_micros(2_999));
        d.insert(Duration::from_micros(2_001));
        d.insert(Duration::from_micros(2_000));
        assert_eq!(d.median(), Some(ms(2)));
    }

    #[test]
    fn the_threshold_is_three_times_the_median_and_at_least_the_floor() {
        let s = Speculation::DEFAULT;
        assert_eq!(s.threshold(ms(100)), Duration::from_secs(1));
        assert_eq!(s.threshold(Duration::from_secs(4)), Duration::from_secs(12));
        // The job count test's spread (2 to 5 s) never reaches it.
        assert!(s.threshold(Duration::from_secs(2)) > Duration::from_secs(5));
    }

    #[test]
    fn the_cap_is_a_tenth_of_the_phase_and_at_least_one() {
        let s = Speculation::DEFAULT;
        assert_eq!(s.cap(1), 1);
        assert_eq!(s.cap(10), 1);
        assert_eq!(s.cap(11), 2);
        assert_eq!(s.cap(200_000), 20_000);
    }
}
