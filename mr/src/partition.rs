//! Key partitioning: by hash (the 6.824 `ihash`, 32-bit FNV-1a of the key bytes masked
//! to 31 bits, the default) or by range (split points chosen from a sample of the keys,
//! so that `mr-out-0`, `mr-out-1`, ... concatenated are one sorted output).
//!
//! FNV is written out here rather than taken from the `fnv` crate, whose hasher is the
//! 64-bit variant; the test vectors below pin the 32-bit values.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

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

/// How a job assigns keys to reduce partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionMode {
    /// `ihash(key) % R`: balanced on any keys, but each `mr-out-Y` is sorted on its own.
    #[default]
    Hash,
    /// Key ranges chosen from a sample: the outputs in partition order are one sorted
    /// whole (a total order), at the price of a sampling step before the maps.
    Range,
}

impl std::str::FromStr for PartitionMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hash" => Ok(PartitionMode::Hash),
            "range" => Ok(PartitionMode::Range),
            other => Err(format!(
                "unknown partitioning {other:?}: use `hash` (the default) or `range` (a total order)"
            )),
        }
    }
}

impl std::fmt::Display for PartitionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartitionMode::Hash => "hash",
            PartitionMode::Range => "range",
        })
    }
}

/// The split points of a range partitioning: at most R-1 strictly increasing keys.
/// Partition `p` holds the keys `k` with `points[p-1] <= k < points[p]` (bytewise), so
/// with fewer points than R-1 the last partitions are empty. Shared (`Arc`): every map
/// assignment carries the same points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SplitPoints(Arc<Vec<Vec<u8>>>);

/// Split points ready for one lookup per record: each point's first 8 bytes as a number
/// beside it, so that the binary search compares numbers and only ties compare bytes.
#[derive(Debug, Clone)]
pub struct RangeLookup {
    prefixes: Vec<u64>,
    points: SplitPoints,
}

impl RangeLookup {
    /// The lookup of `points`.
    pub fn new(points: &SplitPoints) -> RangeLookup {
        RangeLookup {
            prefixes: points
                .points()
                .iter()
                .map(|p| crate::intermediate::key_prefix(p))
                .collect(),
            points: points.clone(),
        }
    }

    /// The partition of `key`, as [`SplitPoints::partition`] gives it.
    #[inline]
    pub fn partition(&self, key: &[u8]) -> u32 {
        let kp = crate::intermediate::key_prefix(key);
        let points = self.points.points();
        let mut lo = 0;
        let mut hi = points.len();
        // The number of points at or below `key`.
        while lo < hi {
            let mid = (lo + hi) / 2;
            let p = self.prefixes[mid];
            let below = p < kp || (p == kp && points[mid].as_slice() <= key);
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo as u32
    }
}

impl SplitPoints {
    /// Points that must be strictly increasing (checked: a decreasing pair would send
    /// keys to the wrong partition without anyone noticing).
    pub fn new(points: Vec<Vec<u8>>) -> Result<SplitPoints, String> {
        if let Some(w) = points.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!(
                "split points out of order: {:?} before {:?}",
                String::from_utf8_lossy(&w[0]),
                String::from_utf8_lossy(&w[1])
            ));
        }
        Ok(SplitPoints(Arc::new(points)))
    }

    /// The points.
    pub fn points(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// The partition of `key`: the number of points at or below it.
    #[inline]
    pub fn partition(&self, key: &[u8]) -> u32 {
        self.0.partition_point(|p| p.as_slice() <= key) as u32
    }
}

/// How the map tasks of a job partition, as a map assignment carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Partitioning {
    /// By `ihash`.
    #[default]
    Hash,
    /// By these split points.
    Range(SplitPoints),
}

/// A map task's partitioner: [`Partitioning`] made ready for one call per record.
#[derive(Debug, Clone)]
pub enum Partitioner {
    /// `ihash(key) % R`.
    Hash(Modulo),
    /// By split points.
    Range(RangeLookup),
}

impl Partitioner {
    /// The partitioner of `partitioning` over `n_reduce` partitions.
    pub fn new(partitioning: &Partitioning, n_reduce: u32) -> Partitioner {
        match partitioning {
            Partitioning::Hash => Partitioner::Hash(Modulo::new(n_reduce)),
            Partitioning::Range(points) => Partitioner::Range(RangeLookup::new(points)),
        }
    }

    /// The partition of `key`; its `ihash` is computed only if partitioning by hash.
    #[inline]
    pub fn of_key(&self, key: &[u8]) -> u32 {
        match self {
            Partitioner::Hash(m) => m.of(ihash(key)),
            Partitioner::Range(lookup) => lookup.partition(key),
        }
    }
}

/// A key that alone holds more than a mean partition's share of the sample: no choice of
/// split points can balance it, so it gets a partition to itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeavyKey {
    /// The key.
    pub key: Vec<u8>,
    /// Its share of the sampled keys (0 to 1).
    pub share: f64,
    /// The partition it falls in.
    pub partition: u32,
}

/// Split points chosen from a sample, and the keys too heavy to balance.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The points.
    pub points: SplitPoints,
    /// Keys that alone exceed a mean partition.
    pub heavy: Vec<HeavyKey>,
}

/// Chooses at most `n_reduce - 1` split points from `sample` (keys as the app's map
/// emitted them, in any order) so that each partition holds as near an equal share of
/// the sample as whole keys allow.
///
/// A key is never split between partitions (all its values must meet in one reduce), so
/// a key that alone holds more than a mean share is *heavy*: it gets a partition to
/// itself. The light keys between heavy ones form segments; the partitions left are
/// shared out among the segments so as to make the largest share smallest (each next
/// partition goes to the segment whose partitions are largest), and each segment is cut
/// greedily: a partition is closed before a key when adding it would overshoot the target
/// by more than stopping falls short, the target re-computed after each cut.
pub fn choose_split_points(mut sample: Vec<Vec<u8>>, n_reduce: u32) -> Choice {
    sample.sort_unstable();
    let n = sample.len();
    let r = n_reduce.max(1) as usize;
    let mean = n as f64 / r as f64;
    // Distinct keys as (first index, count).
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        let count = sample[i..].iter().take_while(|k| **k == sample[i]).count();
        groups.push((i, count));
        i += count;
    }
    let is_heavy = |count: usize| r > 1 && count as f64 > mean;
    // The key order as runs: a heavy key alone, or a segment of light keys.
    let mut runs: Vec<(bool, &[(usize, usize)])> = Vec::new();
    let mut from = 0;
    for (g, &(_, count)) in groups.iter().enumerate() {
        if is_heavy(count) {
            if from < g {
                runs.push((false, &groups[from..g]));
            }
            runs.push((true, &groups[g..g + 1]));
            from = g + 1;
        }
    }
    if from < groups.len() {
        runs.push((false, &groups[from..]));
    }
    let mut points: Vec<Vec<u8>> = Vec::new();
    if runs.len() > r {
        // More runs than partitions (heavy keys amid light ones, few partitions): no
        // partition to itself for each; one greedy pass over all keys.
        cut(&sample, &groups, r, &mut points);
    } else {
        // One partition per run, then the rest to the light segment whose partitions
        // are largest, one at a time.
        let size = |run: &[(usize, usize)]| run.iter().map(|(_, c)| c).sum::<usize>();
        let mut parts: Vec<usize> = vec![1; runs.len()];
        let mut heap: std::collections::BinaryHeap<(u64, usize)> = runs
            .iter()
            .enumerate()
            .filter(|(_, (heavy, _))| !heavy)
            // Ordered by the share per partition, scaled to an integer.
            .map(|(i, (_, run))| ((size(run) as u64) << 20, i))
            .collect();
        for _ in runs.len()..r {
            let Some((_, i)) = heap.pop() else { break };
            parts[i] += 1;
            heap.push((((size(runs[i].1) as u64) << 20) / parts[i] as u64, i));
        }
        for (k, (_, run)) in runs.iter().enumerate() {
            if k > 0 {
                points.push(sample[run[0].0].clone());
            }
            cut(&sample, run, parts[k], &mut points);
        }
    }
    let points = SplitPoints(Arc::new(points));
    let heavy = groups
        .iter()
        .filter(|(_, c)| is_heavy(*c))
        .map(|&(start, count)| HeavyKey {
            key: sample[start].clone(),
            share: count as f64 / n as f64,
            partition: points.partition(&sample[start]),
        })
        .collect();
    // Strictly increasing by construction: each point is a new distinct key, in order.
    Choice { points, heavy }
}

/// Cuts the keys `groups` (distinct, in order, as (index in `sample`, count)) into at
/// most `parts` partitions, pushing the points between them.
fn cut(sample: &[Vec<u8>], groups: &[(usize, usize)], parts: usize, points: &mut Vec<Vec<u8>>) {
    let total: usize = groups.iter().map(|(_, c)| c).sum();
    let (mut closed, mut current, mut made) = (0usize, 0usize, 1usize);
    for &(start, count) in groups {
        if current > 0 && made < parts {
            let target = (total - closed) as f64 / (parts - made + 1) as f64;
            if (current + count) as f64 - target > target - current as f64 {
                points.push(sample[start].clone());
                closed += current;
                current = 0;
                made += 1;
            }
        }
        current += count;
    }
}

/// Keeps a uniform sample of at most `capacity` of the items offered (Vitter's algorithm
/// R), with its own deterministic generator: a re-run of a sample task over the same
/// input keeps the same keys.
#[derive(Debug)]
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    state: u64,
    items: Vec<Vec<u8>>,
}

impl Reservoir {
    /// An empty reservoir of `capacity` items, its choices seeded by `seed`.
    pub fn new(capacity: usize, seed: u64) -> Reservoir {
        Reservoir {
            capacity,
            seen: 0,
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            items: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Offers one item.
    pub fn offer(&mut self, item: &[u8]) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item.to_vec());
        } else if self.capacity > 0 {
            let j = self.next() % self.seen;
            if (j as usize) < self.capacity {
                self.items[j as usize] = item.to_vec();
            }
        }
    }

    /// Items offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample.
    pub fn into_items(self) -> Vec<Vec<u8>> {
        self.items
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

#[cfg(test)]
mod range_tests {
    use super::*;

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// The share of `keys` in each of the partitions of `points`.
    fn sizes(points: &SplitPoints, keys: &[Vec<u8>], r: u32) -> Vec<usize> {
        let mut out = vec![0; r as usize];
        for k in keys {
            out[points.partition(k) as usize] += 1;
        }
        out
    }

    fn max_over_mean(sizes: &[usize]) -> f64 {
        let total: usize = sizes.iter().sum();
        *sizes.iter().max().unwrap() as f64 / (total as f64 / sizes.len() as f64)
    }

    fn random_key(state: &mut u64) -> Vec<u8> {
        (0..10).map(|_| b' ' + (lcg(state) % 95) as u8).collect()
    }

    #[test]
    fn a_key_goes_to_the_partition_of_the_points_below_it() {
        let p = SplitPoints::new(vec![b"g".to_vec(), b"p".to_vec()]).unwrap();
        assert_eq!(p.partition(b""), 0);
        assert_eq!(p.partition(b"apple"), 0);
        assert_eq!(p.partition(b"g"), 1);
        assert_eq!(p.partition(b"orange"), 1);
        assert_eq!(p.partition(b"p"), 2);
        assert_eq!(p.partition(b"zebra"), 2);
        assert!(SplitPoints::new(vec![b"p".to_vec(), b"g".to_vec()]).is_err());
        assert!(SplitPoints::new(vec![b"g".to_vec(), b"g".to_vec()]).is_err());
    }

    #[test]
    fn the_prefix_lookup_agrees_with_the_points() {
        let points = SplitPoints::new(vec![
            b"a".to_vec(),
            b"a\x00".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\x00".to_vec(),
            b"abcdefghi".to_vec(),
            b"b".to_vec(),
        ])
        .unwrap();
        let lookup = RangeLookup::new(&points);
        let keys: [&[u8]; 12] = [
            b"",
            b"\x00",
            b"a",
            b"a\x00",
            b"a\x01",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefgh\x00",
            b"abcdefgh\x01",
            b"abcdefghi",
            b"abcdefghz",
            b"zz",
        ];
        for k in keys {
            assert_eq!(lookup.partition(k), points.partition(k), "{k:?}");
        }
        let mut s = 1;
        for _ in 0..10_000 {
            let k = random_key(&mut s);
            assert_eq!(lookup.partition(&k), points.partition(&k));
        }
    }

    #[test]
    fn of_key_is_the_hash_modulo_or_the_range() {
        let points = SplitPoints::new(vec![b"g".to_vec(), b"p".to_vec()]).unwrap();
        let hash = Partitioner::new(&Partitioning::Hash, 7);
        let range = Partitioner::new(&Partitioning::Range(points.clone()), 3);
        let mut s = 9;
        for _ in 0..1_000 {
            let k = random_key(&mut s);
            assert_eq!(hash.of_key(&k), ihash(&k) % 7);
            assert_eq!(range.of_key(&k), points.partition(&k));
        }
    }

    #[test]
    fn uniform_keys_balance_within_a_few_percent() {
        let mut s = 7;
        let sample: Vec<Vec<u8>> = (0..100_000).map(|_| random_key(&mut s)).collect();
        let data: Vec<Vec<u8>> = (0..200_000).map(|_| random_key(&mut s)).collect();
        let c = choose_split_points(sample, 10);
        assert_eq!(c.points.points().len(), 9);
        assert!(c.heavy.is_empty());
        let ratio = max_over_mean(&sizes(&c.points, &data, 10));
        assert!(ratio <= 1.05, "largest partition {ratio:.3}x the mean");
    }

    #[test]
    fn skewed_keys_balance_within_the_target() {
        // Zipf-like prefixes: prefix rank k is drawn with weight 1/k, so the ranges are
        // very uneven, but no single key is heavy.
        let mut s = 11;
        let ranks = 2_000u64;
        let h: f64 = (1..=ranks).map(|k| 1.0 / k as f64).sum();
        let key = |s: &mut u64| {
            let u = (lcg(s) as f64) / (1u64 << 31) as f64 * h;
            let (mut acc, mut k) = (0.0, 1);
            while k < ranks {
                acc += 1.0 / k as f64;
                if acc >= u {
                    break;
                }
                k += 1;
            }
            let mut out = format!("{:04}", (k * 7919) % 10_000).into_bytes();
            out.extend(random_key(s));
            out
        };
        let sample: Vec<Vec<u8>> = (0..100_000).map(|_| key(&mut s)).collect();
        let data: Vec<Vec<u8>> = (0..200_000).map(|_| key(&mut s)).collect();
        let c = choose_split_points(sample, 10);
        assert!(c.heavy.is_empty());
        let ratio = max_over_mean(&sizes(&c.points, &data, 10));
        assert!(ratio <= 1.1, "largest partition {ratio:.3}x the mean");
    }

    #[test]
    fn a_heavy_key_gets_a_partition_alone_and_the_rest_stay_balanced() {
        // 30% of the records share one key: it alone exceeds a partition (10%).
        let mut s = 3;
        let keys = |n: usize, s: &mut u64| -> Vec<Vec<u8>> {
            (0..n)
                .map(|_| {
                    if lcg(s) % 10 < 3 {
                        b"MMMMMMMMMM".to_vec()
                    } else {
                        random_key(s)
                    }
                })
                .collect()
        };
        let sample = keys(100_000, &mut s);
        let data = keys(200_000, &mut s);
        let c = choose_split_points(sample, 10);
        assert_eq!(c.heavy.len(), 1);
        let heavy = &c.heavy[0];
        assert_eq!(heavy.key, b"MMMMMMMMMM");
        assert!((heavy.share - 0.3).abs() < 0.01, "{}", heavy.share);
        let sizes = sizes(&c.points, &data, 10);
        let p = heavy.partition as usize;
        assert_eq!(c.points.partition(b"MMMMMMMMMM") as usize, p);
        // The heavy key's partition holds it alone (and so about 30%); the other nine
        // share the other 70% evenly.
        let rest: Vec<usize> = (0..10).filter(|i| *i != p).map(|i| sizes[i]).collect();
        let ratio = max_over_mean(&rest);
        assert!(
            ratio <= 1.1,
            "{sizes:?}: others' largest {ratio:.3}x their mean"
        );
        assert!(sizes[p] as f64 > 0.29 * 200_000.0);
    }

    #[test]
    fn fewer_distinct_keys_than_partitions_give_each_its_own_and_leave_the_rest_empty() {
        let sample: Vec<Vec<u8>> = (0..1_000).map(|i| vec![b'a' + (i % 3) as u8]).collect();
        let c = choose_split_points(sample, 10);
        assert_eq!(c.points.points(), &[b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(c.points.partition(b"a"), 0);
        assert_eq!(c.points.partition(b"b"), 1);
        assert_eq!(c.points.partition(b"c"), 2);
        assert_eq!(c.heavy.len(), 3);
    }

    #[test]
    fn duplicate_heavy_keys_are_never_split() {
        // 50 distinct keys, 200 copies each, into 8 partitions: every copy of a key lands
        // in one partition, and the sizes stay within a key of each other's target.
        let sample: Vec<Vec<u8>> = (0..10_000)
            .map(|i| format!("k{:03}", (i * 37) % 50).into_bytes())
            .collect();
        let c = choose_split_points(sample.clone(), 8);
        assert_eq!(c.points.points().len(), 7);
        let s = sizes(&c.points, &sample, 8);
        assert!(max_over_mean(&s) <= 1.2, "{s:?}");
    }

    #[test]
    fn an_empty_sample_or_one_partition_has_no_points() {
        assert!(choose_split_points(Vec::new(), 10)
            .points
            .points()
            .is_empty());
        let one = choose_split_points(vec![b"x".to_vec(), b"y".to_vec()], 1);
        assert!(one.points.points().is_empty());
        assert!(one.heavy.is_empty());
    }

    #[test]
    fn the_reservoir_keeps_a_uniform_deterministic_sample() {
        let run = || {
            let mut r = Reservoir::new(1_000, 5);
            for i in 0u32..100_000 {
                r.offer(&i.to_be_bytes());
            }
            r.into_items()
        };
        let a = run();
        assert_eq!(a, run());
        assert_eq!(a.len(), 1_000);
        // Uniform: about a tenth of the kept items from each tenth of the stream.
        let first_tenth = a
            .iter()
            .filter(|k| u32::from_be_bytes([k[0], k[1], k[2], k[3]]) < 10_000)
            .count();
        assert!((60..=140).contains(&first_tenth), "{first_tenth}");
    }
}
