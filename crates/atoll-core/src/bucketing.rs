//! The one bucketing function behind every percentage in Atoll (releases, switches,
//! experiments, campaigns).
//!
//! A unit (a device id, or a user id) falls in bucket
//! `murmur3_x86_32("{salt}:{unit}", seed 0) % 100_000`, where the salt is the id of
//! the release, switch or experiment. A percentage with 0.001 % resolution is a
//! number of buckets ([`Percentage`], in thousandths of a percent), and a unit is
//! in it when its bucket is below that number. Hence:
//!
//! - **sticky**: the same unit and salt always give the same answer, on the server
//!   and in the SDK (golden vectors in `contracts/bucketing.json`, produced by an
//!   independent implementation, Python's `mmh3`);
//! - **monotonic**: raising a percentage only adds buckets, so it never moves a unit
//!   out; lowering it removes the most recently added units first;
//! - **independent per salt**: two releases with different ids pick unrelated units.
//!
//! MurmurHash3 is written here (it is small) rather than taken from a crate, because
//! the exact bytes hashed and the exact arithmetic are a cross-language contract.

use std::fmt;

/// The number of buckets: 100 000, so one bucket is 0.001 %.
pub const BUCKETS: u32 = 100_000;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3, x86 32-bit variant, fed incrementally. Feeding `"ab"` then `"c"`
/// gives the same hash as feeding `"abc"`, which lets [`BucketSalt`] hash the
/// `"{salt}:"` prefix once and reuse it for every unit.
#[derive(Debug, Clone, Copy)]
pub struct Murmur3 {
    h1: u32,
    /// Bytes of an incomplete 4-byte block, little-endian.
    tail: u32,
    tail_len: u32,
    /// Total length mod 2^32, as the reference implementation mixes it in.
    len: u32,
}

impl Murmur3 {
    /// A hasher with the given seed.
    pub fn new(seed: u32) -> Murmur3 {
        Murmur3 {
            h1: seed,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn mix_block(&mut self, block: u32) {
        let k1 = block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h1 ^= k1;
        self.h1 = self
            .h1
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    /// Feeds more bytes.
    #[inline]
    pub fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u32);
        // Complete a block left over from the previous write first.
        while self.tail_len != 0 {
            let Some((&first, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u32::from(first) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
            if self.tail_len == 4 {
                let block = self.tail;
                self.mix_block(block);
                self.tail = 0;
                self.tail_len = 0;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            self.mix_block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        for &byte in blocks.remainder() {
            self.tail |= u32::from(byte) << (8 * self.tail_len);
            self.tail_len += 1;
        }
    }

    /// The hash of everything fed so far.
    #[inline]
    pub fn finish(&self) -> u32 {
        let mut h1 = self.h1;
        if self.tail_len != 0 {
            h1 ^= self.tail.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        }
        h1 ^= self.len;
        h1 ^= h1 >> 16;
        h1 = h1.wrapping_mul(0x85eb_ca6b);
        h1 ^= h1 >> 13;
        h1 = h1.wrapping_mul(0xc2b2_ae35);
        h1 ^ (h1 >> 16)
    }
}

/// MurmurHash3 x86 32-bit of `data` with `seed`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(data);
    hasher.finish()
}

/// The bucket (`0..BUCKETS`) of `unit` under `salt`.
pub fn bucket(salt: &str, unit: &str) -> u32 {
    BucketSalt::new(salt).bucket(unit)
}

/// Whether `unit` is inside `percentage` under `salt`.
pub fn in_percentage(salt: &str, unit: &str, percentage: Percentage) -> bool {
    bucket(salt, unit) < percentage.thousandths()
}

/// A salt with its `"{salt}:"` prefix already hashed, for evaluating many units
/// against the same release, switch or experiment without re-hashing the salt or
/// allocating the joined string.
#[derive(Debug, Clone, Copy)]
pub struct BucketSalt {
    prefix: Murmur3,
}

impl BucketSalt {
    /// Prepares `salt`.
    pub fn new(salt: &str) -> BucketSalt {
        let mut prefix = Murmur3::new(0);
        prefix.write(salt.as_bytes());
        prefix.write(b":");
        BucketSalt { prefix }
    }

    /// The bucket (`0..BUCKETS`) of `unit`.
    #[inline]
    pub fn bucket(&self, unit: &str) -> u32 {
        let mut hasher = self.prefix;
        hasher.write(unit.as_bytes());
        hasher.finish() % BUCKETS
    }

    /// Whether `unit` is inside `percentage`.
    #[inline]
    pub fn contains(&self, unit: &str, percentage: Percentage) -> bool {
        self.bucket(unit) < percentage.thousandths()
    }
}

/// A percentage with 0.001 % resolution, stored as a whole number of buckets
/// (thousandths of a percent, `0..=100_000`), so it is exact and comparable; there
/// is no floating point anywhere in bucketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percentage(u32);

impl Percentage {
    /// 0 %: nobody.
    pub const NONE: Percentage = Percentage(0);
    /// 100 %: everybody.
    pub const ALL: Percentage = Percentage(BUCKETS);

    /// From thousandths of a percent (`12_345` is 12.345 %); `None` above 100 %.
    pub const fn from_thousandths(thousandths: u32) -> Option<Percentage> {
        if thousandths <= BUCKETS {
            Some(Percentage(thousandths))
        } else {
            None
        }
    }

    /// Thousandths of a percent, which is also the number of buckets included.
    pub const fn thousandths(self) -> u32 {
        self.0
    }

    /// Parses a decimal such as `5`, `12.5` or `0.001`: digits, then optionally a
    /// point and one to three digits; at most 100.
    pub fn parse(text: &str) -> Result<Percentage, PercentageError> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|part| !digits(part)) {
            return Err(PercentageError::Malformed);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > 3 {
            return Err(PercentageError::TooPrecise);
        }
        // Leading zeros are fine; anything with more than three significant whole
        // digits is out of range (and would not fit the arithmetic below).
        let whole = whole.trim_start_matches('0');
        if whole.len() > 3 {
            return Err(PercentageError::OutOfRange);
        }
        let whole: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| PercentageError::Malformed)?
        };
        let mut thousandths = whole * 1000;
        for (place, digit) in [100, 10, 1].into_iter().zip(fraction.bytes()) {
            thousandths += place * u32::from(digit - b'0');
        }
        Percentage::from_thousandths(thousandths).ok_or(PercentageError::OutOfRange)
    }
}

/// The shortest decimal: `5`, `12.5`, `0.001`.
impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let fraction = self.0 % 1000;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:03}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Why a percentage does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentageError {
    /// Not a plain decimal number.
    Malformed,
    /// More than three decimals (finer than one bucket).
    TooPrecise,
    /// Above 100.
    OutOfRange,
}

impl fmt::Display for PercentageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PercentageError::Malformed => {
                "a percentage is a plain decimal number such as 5 or 12.5"
            }
            PercentageError::TooPrecise => {
                "a percentage has at most 3 decimals (0.001 % is one bucket)"
            }
            PercentageError::OutOfRange => "a percentage is between 0 and 100",
        })
    }
}

impl std::error::Error for PercentageError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Golden {
        #[allow(dead_code)]
        description: String,
        version: u32,
        hashes: Vec<HashVector>,
        buckets: Vec<BucketVector>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HashVector {
        input: String,
        seed: u32,
        hash: u32,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BucketVector {
        salt: String,
        unit: String,
        hash: u32,
        bucket: u32,
    }

    fn golden() -> Golden {
        serde_json::from_str(include_str!("../../../contracts/bucketing.json")).unwrap()
    }

    #[test]
    fn golden_hashes() {
        let golden = golden();
        assert_eq!(golden.version, 1);
        assert!(golden.hashes.len() >= 20);
        for vector in &golden.hashes {
            assert_eq!(
                murmur3_x86_32(vector.input.as_bytes(), vector.seed),
                vector.hash,
                "murmur3({:?}, seed {})",
                vector.input,
                vector.seed
            );
        }
    }

    #[test]
    fn golden_buckets() {
        let golden = golden();
        assert!(golden.buckets.len() >= 50);
        for vector in &golden.buckets {
            let joined = format!("{}:{}", vector.salt, vector.unit);
            assert_eq!(murmur3_x86_32(joined.as_bytes(), 0), vector.hash);
            assert_eq!(
                bucket(&vector.salt, &vector.unit),
                vector.bucket,
                "bucket({:?}, {:?})",
                vector.salt,
                vector.unit
            );
        }
    }

    #[test]
    fn percentages_parse_and_print() {
        for (text, thousandths, printed) in [
            ("0", 0, "0"),
            ("5", 5_000, "5"),
            ("12.5", 12_500, "12.5"),
            ("12.50", 12_500, "12.5"),
            ("0.001", 1, "0.001"),
            ("33.333", 33_333, "33.333"),
            ("100", 100_000, "100"),
            ("100.000", 100_000, "100"),
            ("007", 7_000, "7"),
        ] {
            let parsed = Percentage::parse(text).unwrap();
            assert_eq!(parsed.thousandths(), thousandths, "{text}");
            assert_eq!(parsed.to_string(), printed);
        }
        for (text, error) in [
            ("", PercentageError::Malformed),
            ("-1", PercentageError::Malformed),
            ("1.", PercentageError::Malformed),
            (".5", PercentageError::Malformed),
            ("1e2", PercentageError::Malformed),
            ("5%", PercentageError::Malformed),
            ("0.0001", PercentageError::TooPrecise),
            ("100.001", PercentageError::OutOfRange),
            ("101", PercentageError::OutOfRange),
            ("99999999999999999999", PercentageError::OutOfRange),
        ] {
            assert_eq!(Percentage::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn edges_of_the_range() {
        assert!(!in_percentage("s", "u", Percentage::NONE));
        assert!(in_percentage("s", "u", Percentage::ALL));
        assert_eq!(Percentage::from_thousandths(100_001), None);
    }

    proptest! {
        #[test]
        fn raising_a_percentage_never_moves_a_unit_out(
            salt in ".{0,20}",
            unit in ".{0,40}",
            low in 0u32..=BUCKETS,
            raise in 0u32..=BUCKETS,
        ) {
            let low = Percentage::from_thousandths(low).unwrap();
            let high = Percentage::from_thousandths((low.thousandths() + raise).min(BUCKETS)).unwrap();
            if in_percentage(&salt, &unit, low) {
                prop_assert!(in_percentage(&salt, &unit, high));
            }
        }

        #[test]
        fn a_unit_enters_exactly_at_its_bucket(salt in ".{0,20}", unit in ".{0,40}") {
            let bucket = bucket(&salt, &unit);
            prop_assert!(bucket < BUCKETS);
            prop_assert!(!in_percentage(&salt, &unit, Percentage::from_thousandths(bucket).unwrap()));
            prop_assert!(in_percentage(&salt, &unit, Percentage::from_thousandths(bucket + 1).unwrap()));
        }

        #[test]
        fn incremental_hashing_matches_one_shot(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..4), seed in any::<u32>()) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(data.len())).collect();
            cuts.sort_unstable();
            let mut hasher = Murmur3::new(seed);
            let mut start = 0;
            for cut in cuts {
                hasher.write(&data[start..cut]);
                start = cut;
            }
            hasher.write(&data[start..]);
            prop_assert_eq!(hasher.finish(), murmur3_x86_32(&data, seed));
        }

        #[test]
        fn percentages_print_and_parse_back(thousandths in 0u32..=BUCKETS) {
            let percentage = Percentage::from_thousandths(thousandths).unwrap();
            prop_assert_eq!(Percentage::parse(&percentage.to_string()), Ok(percentage));
        }
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        // 20 000 units into 10 deciles: each should hold close to 2 000. A broken
        // hash (or mod) shows up as a wildly uneven split.
        let salt = BucketSalt::new("rel_uniformity");
        let mut deciles = [0u32; 10];
        for unit in 0..20_000 {
            deciles[(salt.bucket(&format!("device-{unit}")) / 10_000) as usize] += 1;
        }
        for count in deciles {
            assert!((1_800..=2_200).contains(&count), "{deciles:?}");
        }
    }
}
