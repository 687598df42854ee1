//! The checksum (CRC-32) and digest (64-bit FNV-1a) of the trace format, and the stable byte
//! encoding of decoder configurations that [`config_hash`] digests.
//!
//! Both functions are tiny, public-domain-specified and easy to reimplement in any runtime:
//!
//! * **CRC-32/ISO-HDLC** (zlib, PNG): reflected, polynomial `0xEDB88320`, initial value
//!   `0xFFFFFFFF`, final XOR `0xFFFFFFFF`. Check value: `"123456789"` → `0xCBF43926`.
//! * **FNV-1a, 64 bit** (Fowler, Noll, Vo): `h = 0xcbf29ce484222325`; for each byte
//!   `h = (h ^ byte) · 0x100000001b3 mod 2^64`. Check values: `""` → `0xcbf29ce484222325`,
//!   `"a"` → `0xaf63dc4c8601ec8c`, `"foobar"` → `0x85944171f73967e8`.

use crate::accept::Criterion;
use crate::decode::protocol::FeatureRef;
use crate::decode::{Config, DraftShape, GuidanceMode, SpeculativeConfig};
use crate::process::SamplerParams;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                Crc32::POLY ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// Incremental CRC-32/ISO-HDLC.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// The reflected polynomial of CRC-32/ISO-HDLC.
    pub const POLY: u32 = 0xEDB8_8320;

    /// A fresh CRC.
    pub const fn new() -> Self {
        Crc32 { state: 0xFFFF_FFFF }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.state;
        for &b in bytes {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    /// The CRC of everything fed so far.
    pub const fn value(&self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }

    /// The CRC of `bytes`.
    pub fn of(bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(bytes);
        c.value()
    }
}

/// Incremental 64-bit FNV-1a, with helpers for the canonical little-endian encoding.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64 {
    state: u64,
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    /// The offset basis.
    pub const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    /// The prime.
    pub const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A fresh digest.
    pub const fn new() -> Self {
        Fnv64 { state: Self::BASIS }
    }

    /// Feeds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.state;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(Self::PRIME);
        }
        self.state = h;
    }

    /// Feeds one byte.
    pub fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    /// Feeds a `u32`, little-endian.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// Feeds a `u64`, little-endian.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Feeds an `f32` as its IEEE bits.
    pub fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }

    /// Feeds a boolean as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }

    /// Feeds a length (as `u32`, saturating) followed by each `u32` element.
    pub fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        for &x in v {
            self.u32(x);
        }
    }

    /// Feeds a length as `u32` (saturating at `u32::MAX`).
    pub fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// The digest of everything fed so far.
    pub const fn value(&self) -> u64 {
        self.state
    }

    /// The digest of `tokens`, each as 4 little-endian bytes, without a length prefix (the token
    /// digest of the trace records).
    pub fn of_tokens(tokens: &[u32]) -> u64 {
        let mut h = Fnv64::new();
        for &t in tokens {
            h.u32(t);
        }
        h.value()
    }
}

/// A stable, documented byte encoding of a configuration, so that its [`config_hash`] is the same
/// on every machine and in every runtime. Decoders added later implement it for their settings
/// (an optional value is a byte 0, or a byte 1 followed by the value).
pub trait StableEncode {
    /// Feeds the encoding to `h`.
    fn encode(&self, h: &mut Fnv64);
}

/// The [`Fnv64`] digest of `value`'s [`StableEncode`] encoding.
pub fn config_hash<T: StableEncode + ?Sized>(value: &T) -> u64 {
    let mut h = Fnv64::new();
    value.encode(&mut h);
    h.value()
}

fn opt_u32(h: &mut Fnv64, v: Option<u32>) {
    match v {
        None => h.u8(0),
        Some(x) => {
            h.u8(1);
            h.u32(x);
        }
    }
}

fn opt_f32(h: &mut Fnv64, v: Option<f32>) {
    opt_u32(h, v.map(f32::to_bits));
}

/// Tag byte (0 none, 1 two-way, 2 three-way), then the parameter's bits (0 for none).
impl StableEncode for GuidanceMode {
    fn encode(&self, h: &mut Fnv64) {
        let (tag, x) = match *self {
            GuidanceMode::None => (0, 0),
            GuidanceMode::TwoWay { scale } => (1, scale.to_bits()),
            GuidanceMode::ThreeWay { w } => (2, w.to_bits()),
        };
        h.u8(tag);
        h.u32(x);
    }
}

/// Temperature, then the optional top-k, top-p, min-p.
impl StableEncode for SamplerParams {
    fn encode(&self, h: &mut Fnv64) {
        h.f32(self.temperature);
        opt_u32(h, self.top_k);
        opt_f32(h, self.top_p);
        opt_f32(h, self.min_p);
    }
}

/// Seed (`u64`), stream, seq, tokens, width, sampler, guidance.
impl StableEncode for Config {
    fn encode(&self, h: &mut Fnv64) {
        h.u64(self.seed);
        h.u32(self.stream);
        h.u32(self.seq);
        h.u32(self.tokens);
        h.u32(self.width);
        self.sampler.encode(h);
        self.guidance.encode(h);
    }
}

/// Chain: byte 0, γ. Tree: byte 1, total, depth, top-k.
impl StableEncode for DraftShape {
    fn encode(&self, h: &mut Fnv64) {
        match *self {
            DraftShape::Chain { gamma } => {
                h.u8(0);
                h.u32(gamma);
            }
            DraftShape::Tree {
                total,
                depth,
                top_k,
            } => {
                h.u8(1);
                h.u32(total);
                h.u32(depth);
                h.u32(top_k);
            }
        }
    }
}

/// Base config, draft sampler, shape.
impl StableEncode for SpeculativeConfig {
    fn encode(&self, h: &mut Fnv64) {
        self.base.encode(h);
        self.draft_sampler.encode(h);
        self.shape.encode(h);
    }
}

/// Speculative settings, then the cost profile ([`crate::cost::CostProfile`]'s encoding).
impl StableEncode for crate::decode::AutoDraftConfig {
    fn encode(&self, h: &mut Fnv64) {
        self.spec.encode(h);
        self.profile.encode(h);
    }
}

/// The criterion's own encoding, a tag byte then its parameters ([`Rule`](crate::accept::Rule)'s
/// [`StableEncode`] supertrait): tag 0 exact, 1 coupled ([`crate::accept::exact`],
/// [`crate::accept::coupled`]: no parameters), 2 LANTERN ([`crate::accept::lantern`]), 3 grouped
/// ([`crate::accept::grouped`]); each module documents its bytes.
impl StableEncode for Criterion<'_> {
    fn encode(&self, h: &mut Fnv64) {
        self.rule().encode(h);
    }
}

/// Tag byte (0 never, 1 uniform, 2 dynamic), then interval, or threshold and α.
impl StableEncode for crate::decode::Schedule {
    fn encode(&self, h: &mut Fnv64) {
        use crate::decode::Schedule;
        match *self {
            Schedule::Never => h.u8(0),
            Schedule::Uniform { interval } => {
                h.u8(1);
                h.u32(interval);
            }
            Schedule::Dynamic { threshold, alpha } => {
                h.u8(2);
                h.f32(threshold);
                h.f32(alpha);
            }
        }
    }
}

/// Speculative config, schedule, warm-up, codebook (length, then `f32` bits), dim.
impl StableEncode for crate::decode::VvsConfig<'_> {
    fn encode(&self, h: &mut Fnv64) {
        self.spec.encode(h);
        self.schedule.encode(h);
        h.u32(self.warmup);
        h.len(self.codebook.len());
        for &x in self.codebook {
            h.f32(x);
        }
        h.u32(self.dim);
    }
}

/// Base config, window, initialisation byte (0 random, 1 copy-left).
impl StableEncode for crate::decode::JacobiConfig {
    fn encode(&self, h: &mut Fnv64) {
        self.base.encode(h);
        h.u32(self.window);
        h.u8(match self.init {
            crate::decode::JacobiInit::Random => 0,
            crate::decode::JacobiInit::CopyLeft => 1,
        });
    }
}

/// Base config, `n`, verifier and reformulation flags, `w`.
impl StableEncode for crate::decode::GridArConfig {
    fn encode(&self, h: &mut Fnv64) {
        self.base.encode(h);
        h.u32(self.n);
        h.u8(self.verifier as u8);
        h.u8(self.reformulate as u8);
        h.f32(self.w);
    }
}

/// Tag byte (0 condition, 1 target, 2 last-target, 3 draft), then the value (0 for condition).
impl StableEncode for FeatureRef {
    fn encode(&self, h: &mut Fnv64) {
        let (tag, v) = match *self {
            FeatureRef::Condition => (0, 0),
            FeatureRef::Target(r) => (1, r),
            FeatureRef::LastTarget(k) => (2, k),
            FeatureRef::Draft(e) => (3, e),
        };
        h.u8(tag);
        h.u32(v);
    }
}

/// Both encodings, in order (for example a config and its criterion).
impl<A: StableEncode + ?Sized, B: StableEncode + ?Sized> StableEncode for (&A, &B) {
    fn encode(&self, h: &mut Fnv64) {
        self.0.encode(h);
        self.1.encode(h);
    }
}

impl<T: StableEncode + ?Sized> StableEncode for &T {
    fn encode(&self, h: &mut Fnv64) {
        (**self).encode(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(Crc32::of(b"123456789"), 0xCBF4_3926);
        assert_eq!(Crc32::of(b""), 0);
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.value(), 0xCBF4_3926);
    }

    #[test]
    fn fnv1a_check_values() {
        let of = |b: &[u8]| {
            let mut h = Fnv64::new();
            h.bytes(b);
            h.value()
        };
        assert_eq!(of(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(of(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(of(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(Fnv64::of_tokens(&[0x626f_6f66, 0x7261]), {
            let mut h = Fnv64::new();
            h.bytes(b"foob");
            h.bytes(&[0x61, 0x72, 0, 0]);
            h.value()
        });
    }

    #[test]
    fn config_hash_sees_every_field() {
        let base = Config {
            seed: 1,
            stream: 0,
            seq: 0,
            tokens: 16,
            width: 4,
            sampler: SamplerParams {
                temperature: 1.0,
                top_k: None,
                top_p: None,
                min_p: None,
            },
            guidance: GuidanceMode::None,
        };
        let h0 = config_hash(&base);
        let variants = [
            Config { seed: 2, ..base },
            Config { stream: 1, ..base },
            Config { seq: 1, ..base },
            Config { tokens: 8, ..base },
            Config { width: 8, ..base },
            Config {
                guidance: GuidanceMode::TwoWay { scale: 0.0 },
                ..base
            },
            Config {
                sampler: SamplerParams {
                    top_k: Some(0),
                    ..base.sampler
                },
                ..base
            },
        ];
        for v in variants {
            assert_ne!(config_hash(&v), h0, "{v:?}");
        }
        assert_eq!(config_hash(&base), h0);
        let spec = SpeculativeConfig {
            base,
            draft_sampler: base.sampler,
            shape: DraftShape::Chain { gamma: 4 },
        };
        assert_ne!(
            config_hash(&(&spec, &Criterion::Exact)),
            config_hash(&(&spec, &Criterion::Coupled))
        );
    }
}
