//! The one retry policy: exponential backoff, doubling from a first pause up to a
//! longest one. Every retry loop in `mr` (connecting to the coordinator, registering,
//! a busy data server) takes its pauses from here, so they all behave alike and a
//! change of policy is made once.

use std::time::Duration;

/// The pauses of one retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Pauses from `first`, doubling, up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// The policy for reaching a peer that may be starting or restarting: 50 ms,
    /// doubling to 1 s.
    pub const fn connect() -> Backoff {
        Backoff::new(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// The pause before the next try.
    pub fn pause(&mut self) -> Duration {
        let p = self.next;
        self.next = (self.next * 2).min(self.max);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest() {
        let mut b = Backoff::connect();
        let ms: Vec<u128> = (0..7).map(|_| b.pause().as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);
    }
}
