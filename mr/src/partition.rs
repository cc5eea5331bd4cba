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
    fn partition_is_in_range_and_stable() {
        for w in ["the", "and", "Sherlock", "", "ünïcode"] {
            let p = partition(w.as_bytes(), 7);
            assert!(p < 7);
            assert_eq!(p, partition(w.as_bytes(), 7));
        }
    }
}
