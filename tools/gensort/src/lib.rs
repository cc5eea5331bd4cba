//! Sort Benchmark records in the ASCII format of `gensort -a`, generated deterministically
//! from (seed, record number, skew options), plus the order-independent checksum that
//! `valsort` uses to compare a sorted output with its input.
//!
//! Record layout (100 bytes): a 10-byte printable key, two spaces, the record number as
//! 32 uppercase hex digits, two spaces, 52 bytes of filler (13 groups of 4 identical hex
//! digits), `\r\n`.

use std::io::{self, Write};
use std::num::NonZeroU64;

/// Length of one record, including the trailing `\r\n`.
pub const RECORD_LEN: usize = 100;
/// Length of the key at the start of each record; records sort by these bytes.
pub const KEY_LEN: usize = 10;

/// Number of distinct key characters: printable ASCII `' '..='~'`.
const KEY_CHARS: u64 = 95;
/// Two-character key prefixes that `--skew` distributes Zipf-like.
const PREFIXES: usize = (KEY_CHARS * KEY_CHARS) as usize;
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// What kind of keys to generate; the record bytes depend only on these and the record number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    /// Zipf(1.0) over the 2-character key prefixes, or over the keys when `distinct` is set.
    pub skew: bool,
    /// Only this many distinct keys exist.
    pub distinct: Option<NonZeroU64>,
}

/// splitmix64's finaliser: a bijection on u64 with good avalanche, so distinct inputs give
/// distinct, independent-looking outputs.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent random streams per record. Separate lanes keep e.g. the filler from
/// correlating with the key.
#[derive(Clone, Copy)]
enum Lane {
    KeyLow = 0,
    KeyHigh = 1,
    Filler = 2,
    Choice = 3,
}

/// The random value of lane `lane` for item `i` under `stream_key`. Counter-based (no state
/// carried between records), which is what makes `-b` offsets reproduce a single run.
fn rand(stream_key: u64, i: u64, lane: Lane) -> u64 {
    // Odd constants per lane so that two lanes of one record never share an input.
    const LANE_SALT: [u64; 4] = [
        0xD6E8_FEB8_6659_FD93,
        0xA076_1D64_78BD_642F,
        0xE703_7ED1_A0B4_28DB,
        0x8EBC_6AF0_9C88_C6E3,
    ];
    mix64(mix64(i ^ stream_key) ^ LANE_SALT[lane as usize])
}

/// A uniform integer in `0..n` from 64 random bits (Lemire's multiply-high; the bias is
/// below n / 2^64).
fn below(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// A uniform f64 in [0, 1) from the top 53 bits.
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Writes `chars.len()` uniform key characters taken from the 64 bits in `r`: each step
/// multiplies by 95 and takes the carry as the character, the low bits as what is left.
/// Each character uses about 6.6 bits, so 5 characters per u64 keep every one unbiased.
fn key_chars(mut r: u64, chars: &mut [u8]) {
    debug_assert!(chars.len() <= 5);
    for c in chars {
        let wide = u128::from(r) * u128::from(KEY_CHARS);
        *c = b' ' + (wide >> 64) as u8;
        r = wide as u64;
    }
}

/// Zipf(1.0) over ranks `0..n`: P(rank r) proportional to 1/(r+1).
///
/// The exact CDF is tabulated for the first `TABLE_MAX` ranks; beyond that the harmonic
/// sum is extended with ln((r+0.5)/(M+0.5)), which is accurate to O(1/M^2) and lets
/// `--distinct` with `--skew` take huge K without a table of K entries.
#[derive(Clone, Debug)]
struct Zipf {
    n: u64,
    /// cdf[r] = H(r+1) = 1 + 1/2 + ... + 1/(r+1), unnormalised.
    cdf: Vec<f64>,
    /// H(n), the total weight.
    total: f64,
}

impl Zipf {
    const TABLE_MAX: u64 = 1 << 16;

    fn new(n: NonZeroU64) -> Self {
        let n = n.get();
        let m = n.min(Self::TABLE_MAX);
        let mut cdf = Vec::with_capacity(m as usize);
        let mut h = 0.0;
        for r in 1..=m {
            h += 1.0 / r as f64;
            cdf.push(h);
        }
        let total = if n > m {
            h + ((n as f64 + 0.5) / (m as f64 + 0.5)).ln()
        } else {
            h
        };
        Zipf { n, cdf, total }
    }

    /// The rank for random bits `r`: the first rank whose cumulative weight exceeds u*H(n).
    /// O(log TABLE_MAX) in the table, O(1) in the tail.
    fn sample(&self, r: u64) -> u64 {
        let t = unit(r) * self.total;
        let idx = self.cdf.partition_point(|&c| c <= t) as u64;
        if idx < self.cdf.len() as u64 {
            return idx;
        }
        if self.n == self.cdf.len() as u64 {
            // u*H(n) rounded up to H(n) itself: the last rank.
            return self.n - 1;
        }
        // Tail: the smallest 1-based rank k > m with H(m) + ln((k+0.5)/(m+0.5)) > t.
        let m = self.cdf.len() as u64;
        let h_m = self.cdf[self.cdf.len() - 1];
        let x = (m as f64 + 0.5) * (t - h_m).exp() - 0.5;
        // `as` saturates, so even x near 2^64 stays in range before the clamp.
        let k = (x.floor() as u64).saturating_add(1);
        k.clamp(m + 1, self.n) - 1
    }
}

/// Generates records for one set of options; build once (it precomputes the skew tables),
/// then ask for any record number in any order.
#[derive(Clone, Debug)]
pub struct Generator {
    options: Options,
    /// Stream key of the per-record random bits.
    record_key: u64,
    /// Stream key of the K distinct keys, separate so key j does not echo record j.
    distinct_key: u64,
    /// `--skew` without `--distinct`: prefix of Zipf rank r is `prefix_order[r]`, a
    /// seed-permuted order so the popular prefixes are not always "  ", " !", ...
    prefix_order: Vec<u16>,
    zipf: Option<Zipf>,
}

impl Generator {
    pub fn new(options: Options) -> Self {
        let record_key = mix64(options.seed ^ 0x5EED_0000_0000_0001);
        let distinct_key = mix64(options.seed ^ 0x5EED_0000_0000_0002);
        let (prefix_order, zipf) = match (options.skew, options.distinct) {
            (false, _) => (Vec::new(), None),
            (true, Some(k)) => (Vec::new(), Some(Zipf::new(k))),
            (true, None) => {
                // Fisher-Yates driven by its own counter-based stream.
                let order_key = mix64(options.seed ^ 0x5EED_0000_0000_0003);
                let mut order: Vec<u16> = (0..PREFIXES as u16).collect();
                for j in (1..PREFIXES).rev() {
                    let pick = below(rand(order_key, j as u64, Lane::Choice), j as u64 + 1);
                    order.swap(j, pick as usize);
                }
                let n = NonZeroU64::new(PREFIXES as u64).expect("PREFIXES is non-zero");
                (order, Some(Zipf::new(n)))
            }
        };
        Generator {
            options,
            record_key,
            distinct_key,
            prefix_order,
            zipf,
        }
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// Record number `i`.
    pub fn record(&self, i: u64) -> [u8; RECORD_LEN] {
        let mut rec = [0u8; RECORD_LEN];
        self.fill(i, &mut rec);
        rec
    }

    /// Writes record number `i` into `rec`, avoiding a copy when filling a larger buffer.
    pub fn fill(&self, i: u64, rec: &mut [u8; RECORD_LEN]) {
        self.fill_key(i, &mut rec[..KEY_LEN]);

        rec[10] = b' ';
        rec[11] = b' ';
        // 32 hex digits: the top 16 are always 0 for a u64 record number.
        rec[12..28].fill(b'0');
        for (d, out) in rec[28..44].iter_mut().enumerate() {
            *out = HEX[((i >> (60 - 4 * d)) & 0xF) as usize];
        }
        rec[44] = b' ';
        rec[45] = b' ';

        let filler = rand(self.record_key, i, Lane::Filler);
        for (g, group) in rec[46..98].chunks_exact_mut(4).enumerate() {
            group.fill(HEX[((filler >> (60 - 4 * g)) & 0xF) as usize]);
        }
        rec[98] = b'\r';
        rec[99] = b'\n';
    }

    fn fill_key(&self, i: u64, key: &mut [u8]) {
        match self.options.distinct {
            Some(k) => {
                let choice = rand(self.record_key, i, Lane::Choice);
                let j = match &self.zipf {
                    Some(z) => z.sample(choice),
                    None => below(choice, k.get()),
                };
                key_chars(rand(self.distinct_key, j, Lane::KeyLow), &mut key[..5]);
                key_chars(rand(self.distinct_key, j, Lane::KeyHigh), &mut key[5..]);
            }
            None => {
                let low = rand(self.record_key, i, Lane::KeyLow);
                let high = rand(self.record_key, i, Lane::KeyHigh);
                match &self.zipf {
                    Some(z) => {
                        let rank = z.sample(rand(self.record_key, i, Lane::Choice));
                        let prefix = u64::from(self.prefix_order[rank as usize]);
                        key[0] = b' ' + (prefix / KEY_CHARS) as u8;
                        key[1] = b' ' + (prefix % KEY_CHARS) as u8;
                        key_chars(low, &mut key[2..6]);
                        key_chars(high, &mut key[6..]);
                    }
                    None => {
                        key_chars(low, &mut key[..5]);
                        key_chars(high, &mut key[5..]);
                    }
                }
            }
        }
    }

    /// Writes records `start..start + count` to `out`.
    ///
    /// Panics if the range passes record number `u64::MAX` (the CLI checks this first).
    pub fn write_records<W: Write>(&self, start: u64, count: u64, out: &mut W) -> io::Result<()> {
        assert!(
            u128::from(start) + u128::from(count) <= 1 << 64,
            "record numbers past u64::MAX"
        );
        let mut rec = [0u8; RECORD_LEN];
        for n in 0..count {
            self.fill(start + n, &mut rec);
            out.write_all(&rec)?;
        }
        Ok(())
    }
}

/// Record number `i` for `options`. Builds the skew tables on every call: use a
/// [`Generator`] for more than a few records.
pub fn record(options: Options, i: u64) -> [u8; RECORD_LEN] {
    Generator::new(options).record(i)
}

/// The CRC32 of one record; summed over records it gives an order-independent checksum.
pub fn record_crc(rec: &[u8]) -> u32 {
    crc32fast::hash(rec)
}

/// Count, checksum and duplicate keys of a set of records, as valsort reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    /// Wrapping sum of every record's CRC32, the same whatever the order of the records.
    pub checksum: u128,
    /// Records whose key equals the previous record's key (meaningful for sorted data).
    pub duplicate_keys: u64,
}

impl Summary {
    /// Counts one record into the count and checksum (not the duplicates, which depend on
    /// the record before it).
    pub fn add(&mut self, rec: &[u8]) {
        self.records += 1;
        self.checksum = self.checksum.wrapping_add(u128::from(record_crc(rec)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(seed: u64, skew: bool, distinct: Option<u64>) -> Options {
        Options {
            seed,
            skew,
            distinct: distinct.and_then(NonZeroU64::new),
        }
    }

    fn check_format(rec: &[u8; RECORD_LEN], i: u64) {
        assert!(
            rec[..KEY_LEN].iter().all(|c| (b' '..=b'~').contains(c)),
            "{rec:?}"
        );
        assert_eq!(&rec[10..12], b"  ");
        let number = std::str::from_utf8(&rec[12..44]).unwrap();
        assert!(number
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        assert_eq!(u128::from_str_radix(number, 16).unwrap(), u128::from(i));
        assert_eq!(&rec[44..46], b"  ");
        for group in rec[46..98].chunks(4) {
            assert!(HEX.contains(&group[0]), "{rec:?}");
            assert!(group.iter().all(|&c| c == group[0]), "{rec:?}");
        }
        assert_eq!(&rec[98..], b"\r\n");
    }

    #[test]
    fn record_format() {
        for o in [
            opts(0, false, None),
            opts(7, true, None),
            opts(7, false, Some(3)),
            opts(7, true, Some(1_000_000_000)),
        ] {
            let g = Generator::new(o);
            for i in (0..2000).chain([u64::MAX / 3, u64::MAX]) {
                check_format(&g.record(i), i);
            }
        }
    }

    /// Guards the published format: changing the generator would silently change every
    /// benchmark data set made with a given seed.
    #[test]
    fn known_records() {
        let g = Generator::new(opts(0, false, None));
        assert_eq!(std::str::from_utf8(&g.record(0)).unwrap(), KNOWN_RECORD_0);
        assert_eq!(
            std::str::from_utf8(&g.record(123_456_789)).unwrap(),
            KNOWN_RECORD_123456789
        );
    }
    const KNOWN_RECORD_0: &str =
        "*yU+X+}pGl  00000000000000000000000000000000  2222BBBBCCCC333366668888BBBB444400003333BBBB33331111\r\n";
    const KNOWN_RECORD_123456789: &str =
        "%Gt2nc^hZ3  000000000000000000000000075BCD15  00001111666655557777EEEE44449999AAAA2222222233333333\r\n";

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = Generator::new(opts(42, false, None));
        let b = Generator::new(opts(42, false, None));
        let c = Generator::new(opts(43, false, None));
        for i in 0..100 {
            assert_eq!(a.record(i), b.record(i));
            assert_eq!(record(opts(42, false, None), i), a.record(i));
        }
        let differ = (0..100).filter(|&i| a.record(i)[..KEY_LEN] != c.record(i)[..KEY_LEN]);
        assert_eq!(differ.count(), 100);
    }

    #[test]
    fn offsets_concatenate_to_one_run() {
        for o in [
            opts(1, false, None),
            opts(1, true, None),
            opts(1, true, Some(50)),
        ] {
            let g = Generator::new(o);
            let mut whole = Vec::new();
            g.write_records(0, 1000, &mut whole).unwrap();
            let mut parts = Vec::new();
            let mut start = 0;
            for count in [0, 1, 99, 400, 0, 500] {
                // A fresh generator per part, as separate gensort runs would have.
                Generator::new(o)
                    .write_records(start, count, &mut parts)
                    .unwrap();
                start += count;
            }
            assert_eq!(start, 1000);
            assert_eq!(whole.len(), 1000 * RECORD_LEN);
            assert!(whole == parts);
        }
    }

    #[test]
    fn uniform_keys_are_spread() {
        let g = Generator::new(opts(3, false, None));
        let n = 95_000u64;
        let mut first = [0u32; 95];
        let mut last = [0u32; 95];
        let mut keys = std::collections::HashSet::new();
        for i in 0..n {
            let r = g.record(i);
            first[usize::from(r[0] - b' ')] += 1;
            last[usize::from(r[9] - b' ')] += 1;
            keys.insert(r[..KEY_LEN].to_vec());
        }
        // Expect 1000 each; 4 sigma is about 126.
        for c in first.iter().chain(&last) {
            assert!((850..1150).contains(c), "{first:?} {last:?}");
        }
        assert_eq!(keys.len() as u64, n);
    }

    #[test]
    fn distinct_limits_keys() {
        for skew in [false, true] {
            let g = Generator::new(opts(5, skew, Some(37)));
            let mut counts: HashMap<Vec<u8>, u32> = HashMap::new();
            for i in 0..20_000 {
                *counts.entry(g.record(i)[..KEY_LEN].to_vec()).or_default() += 1;
            }
            assert!(counts.len() <= 37);
            // Uniform draws hit every key; Zipf over 37 still reaches the rarest (~1.3%).
            assert_eq!(counts.len(), 37, "skew {skew}");
            let top = *counts.values().max().unwrap();
            if skew {
                // 1/H(37) is about 24%.
                assert!(top > 4000, "top {top}");
            } else {
                assert!(top < 800, "top {top}");
            }
        }
        let g = Generator::new(opts(5, false, Some(1)));
        assert_eq!(g.record(0)[..KEY_LEN], g.record(99)[..KEY_LEN]);
    }

    #[test]
    fn skew_makes_prefixes_uneven() {
        let n = 100_000u64;
        let top_prefix = |o: Options| {
            let g = Generator::new(o);
            let mut counts: HashMap<[u8; 2], u32> = HashMap::new();
            for i in 0..n {
                let r = g.record(i);
                *counts.entry([r[0], r[1]]).or_default() += 1;
            }
            *counts.values().max().unwrap()
        };
        // Uniform: about 11 per prefix. Zipf(1.0) over 9025: the top one is 1/H(9025), ~10%.
        assert!(top_prefix(opts(9, false, None)) < 40);
        let top = top_prefix(opts(9, true, None));
        assert!((9_000..11_600).contains(&top), "top {top}");
        // The popular prefix depends on the seed.
        let g1 = Generator::new(opts(1, true, None));
        let g2 = Generator::new(opts(2, true, None));
        assert_ne!(g1.prefix_order[..4], g2.prefix_order[..4]);
    }

    #[test]
    fn zipf_table_and_tail() {
        let small = Zipf::new(NonZeroU64::new(3).unwrap());
        assert_eq!(small.sample(0), 0);
        assert_eq!(small.sample(u64::MAX), 2);

        // K beyond the table: ranks stay in range, and rank 0 keeps weight 1/H(K).
        let k = 1_000_000_000u64;
        let z = Zipf::new(NonZeroU64::new(k).unwrap());
        let h_k = (k as f64).ln() + 0.577_215_664_9 + 1.0 / (2.0 * k as f64);
        assert!((z.total - h_k).abs() < 1e-6, "{} vs {h_k}", z.total);
        let n = 200_000u64;
        let mut zero = 0;
        let mut tail = 0;
        for i in 0..n {
            let r = z.sample(rand(11, i, Lane::Choice));
            assert!(r < k);
            zero += u64::from(r == 0);
            tail += u64::from(r >= Zipf::TABLE_MAX);
        }
        let expect_zero = n as f64 / h_k;
        assert!(
            (zero as f64 - expect_zero).abs() < 0.05 * expect_zero,
            "{zero}"
        );
        // P(rank >= 2^16) = 1 - H(2^16)/H(K), about 45%.
        let expect_tail = n as f64 * (1.0 - z.cdf[z.cdf.len() - 1] / z.total);
        assert!(
            (tail as f64 - expect_tail).abs() < 0.03 * expect_tail,
            "{tail}"
        );
        // Right at the end of the table the tail continues with the next rank.
        let m = Zipf::TABLE_MAX;
        let just_past = (z.cdf[m as usize - 1] + 1e-12) / z.total;
        let bits = (just_past * (1u64 << 53) as f64).ceil() as u64;
        assert_eq!(z.sample(bits << 11), m);
        assert_eq!(z.sample(u64::MAX), k - 1);
    }

    #[test]
    fn summary_is_order_independent() {
        let g = Generator::new(opts(0, false, None));
        let recs: Vec<_> = (0..50).map(|i| g.record(i)).collect();
        let mut a = Summary::default();
        recs.iter().for_each(|r| a.add(r));
        let mut b = Summary::default();
        recs.iter().rev().for_each(|r| b.add(r));
        assert_eq!(a, b);
        assert_eq!(a.records, 50);
        let mut changed = recs[7];
        changed[60] ^= 1;
        let mut c = Summary::default();
        recs.iter()
            .take(7)
            .chain([&changed])
            .chain(&recs[8..])
            .for_each(|r| c.add(r));
        assert_ne!(a.checksum, c.checksum);
    }
}
