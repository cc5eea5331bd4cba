//! Key partitioning: the 6.824 `ihash`, 32-bit FNV-1a of the key bytes masked to 31 bits.
//!
//! Written out here rather than taken from the `fnv` crate, whose hasher is the 64-bit
//! variant; the test vectors below pin the 32-bit values.

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// 32-bit FNV-1a of `bytes`.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h = FNV32_OFFSET;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(FNV32_PRIME);
    }
    h
}

/// The 6.824 `ihash`: `fnv1a32(key) & 0x7fffffff`.
pub fn ihash(key: &[u8]) -> u32 {
    fnv1a32(key) & 0x7fff_ffff
}

/// The reduce partition of `key` among `n_reduce` partitions.
pub fn partition(key: &[u8], n_reduce: u32) -> u32 {
    debug_assert!(n_reduce > 0);
    ihash(key) % n_reduce
}

/// `h % n` for a fixed `n` without a division per call: a map task partitions every
/// record, and a hardware divide costs more than the rest of the partitioning. Lemire's
/// exact "fastmod" (Lemire, Kaser, Kurz 2019): with `m = ceil(2^64 / n)`, the remainder
/// is the high 64 bits of `(m * h mod 2^64) * n`, exact for every 32-bit `h` and `n`.
#[derive(Debug, Clone, Copy)]
pub struct Modulo {
    n: u32,
    m: u64,
}

impl Modulo {
    /// Remainders of division by `n` (at least 1).
    pub fn new(n: u32) -> Self {
        assert!(n > 0, "modulo by zero");
        Modulo {
            n,
            m: (u64::MAX / u64::from(n)).wrapping_add(1),
        }
    }

    /// `h % n`.
    #[inline]
    pub fn of(&self, h: u32) -> u32 {
        let low = self.m.wrapping_mul(u64::from(h));
        ((u128::from(low) * u128::from(self.n)) >> 64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_reference_vectors() {
        // From the FNV reference test suite (Landon Curt Noll), 32-bit FNV-1a.
        assert_eq!(fnv1a32(b""), 0x811c9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
        assert_eq!(fnv1a32(b"b"), 0xe70c2de5);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9cf968);
        assert_eq!(fnv1a32(b"chongo was here!\n"), 0xd49930d5);
    }

    #[test]
    fn ihash_masks_the_top_bit() {
        // 0xe40c292c has the top bit set; ihash clears it, as Go's `& 0x7fffffff` does.
        assert_eq!(ihash(b"a"), 0x640c292c);
        assert_eq!(ihash(b"foobar"), 0x3f9cf968);
        assert_eq!(partition(b"a", 10), 0x640c292c % 10);
    }

    #[test]
    fn fast_modulo_equals_the_remainder() {
        let divisors = [1, 2, 3, 7, 10, 16, 1000, 65_537, 0x7fff_ffff, u32::MAX];
        let mut h: u32 = 0x1234_5678;
        for n in divisors {
            let m = Modulo::new(n);
            for x in [0, 1, n - 1, n, n.wrapping_add(1), 0x7fff_ffff, u32::MAX] {
                assert_eq!(m.of(x), x % n, "{x} % {n}");
            }
            for _ in 0..10_000 {
                h ^= h << 13;
                h ^= h >> 17;
                h ^= h << 5;
                assert_eq!(m.of(h), h % n, "{h} % {n}");
            }
        }
    }

    #[test]
    fn partition_is_in_range_and_stable() {
        for w in ["the", "and", "Sherlock", "", "ünïcode"] {
            let p = partition(w.as_bytes(), 7);
            assert!(p < 7);
            assert_eq!(p, partition(w.as_bytes(), 7));
        }
    }
}
