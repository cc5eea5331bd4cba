//! The one retry policy: exponential backoff with jitter, doubling from a first pause up
//! to a longest one. Every retry loop in `mr` (connecting to the coordinator, registering,
//! a busy data server) takes its pauses from here, so they all behave alike and a
//! change of policy is made once.
//!
//! Jitter ("equal jitter": each pause is drawn between half and all of the nominal one)
//! keeps processes that failed together, such as every worker of a restarted
//! coordinator or every reducer of a busy data server, from retrying in lockstep.

use std::time::Duration;

const CONNECT_FIRST: Duration = Duration::from_millis(50);
const CONNECT_MAX: Duration = Duration::from_secs(1);

/// The pauses of one retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    /// xorshift64 state for the jitter; never 0.
    rng: u64,
}

impl Backoff {
    /// Pauses from `first`, doubling, up to `max`, each jittered.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let mut seed = [0u8; 8];
        // Without OS randomness, fall back to the pid and the clock: jitter need not be
        // unpredictable, only different between processes.
        if getrandom::fill(&mut seed).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            seed = (t ^ u64::from(std::process::id())).to_le_bytes();
        }
        Backoff::seeded(first, max, u64::from_le_bytes(seed))
    }

    /// [`Backoff::new`] with a given jitter seed (for tests and simulations).
    pub fn seeded(first: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            next: first,
            max,
            rng: seed | 1,
        }
    }

    /// The policy for reaching a peer that may be starting or restarting: 50 ms,
    /// doubling to 1 s.
    pub fn connect() -> Backoff {
        Backoff::new(CONNECT_FIRST, CONNECT_MAX)
    }

    /// [`Backoff::connect`] with a given jitter seed (the simulator's, so that a run is
    /// the same every time).
    pub fn connect_seeded(seed: u64) -> Backoff {
        Backoff::seeded(CONNECT_FIRST, CONNECT_MAX, seed)
    }

    /// The pause before the next try: between half and all of the nominal pause, which
    /// doubles each time up to the longest.
    pub fn pause(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = nominal / 2;
        // A fraction of `half` in 1/65536ths.
        half + half.mul_f64((self.rng >> 48) as f64 / 65536.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest_each_between_half_and_all() {
        let mut b = Backoff::seeded(Duration::from_millis(50), Duration::from_secs(1), 7);
        let nominal = [50u128, 100, 200, 400, 800, 1000, 1000];
        for n in nominal {
            let p = b.pause().as_micros();
            assert!(p >= n * 500 && p <= n * 1000, "{p} µs for a nominal {n} ms");
        }
    }

    #[test]
    fn two_processes_do_not_retry_in_lockstep() {
        let pauses = |seed| {
            let mut b = Backoff::seeded(Duration::from_millis(50), Duration::from_secs(1), seed);
            (0..6).map(|_| b.pause()).collect::<Vec<_>>()
        };
        assert_ne!(pauses(1), pauses(2));
        assert_eq!(pauses(3), pauses(3), "a seed gives the same pauses");
        // And fresh ones draw their own seeds.
        let (mut a, mut b) = (Backoff::connect(), Backoff::connect());
        let a: Vec<_> = (0..6).map(|_| a.pause()).collect();
        let b: Vec<_> = (0..6).map(|_| b.pause()).collect();
        assert_ne!(a, b);
    }
}
