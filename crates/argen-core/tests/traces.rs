//! Replay traces: golden traces of every decoder on the synthetic model, recording, perturbation
//! detection at the exact step, and a deterministic fuzz run of the reader over a committed corpus.
//!
//! Golden traces live in `fixtures/traces/` and are (re)written only with `ARGEN_BLESS=1`:
//!
//! ```text
//! ARGEN_BLESS=1 cargo test -p argen-core --test traces
//! ```
//!
//! To add a golden trace for a new decoder, add one line to [`golden_table`] and bless.

mod common;

use argen_core::accept::neighbours::build_table;
use argen_core::accept::{Criterion, GroupedParams, LanternParams, NeighbourTable};
use argen_core::backend::SliceBackend;
use argen_core::cost::{CostCurve, CostProfile};
use argen_core::decode::{
    drive, Action, Answer, AutoDraftConfig, AutoSpeculative, BestOfN, Config, Decoder, DraftShape,
    GridAr, GridArConfig, GuidanceMode, Host, Jacobi, JacobiConfig, JacobiInit, NoObserver,
    Observer, Schedule, Speculative, SpeculativeConfig, Stats, Vanilla, Vvs, VvsConfig, RELEASE_W,
};
use argen_core::trace::{
    config_hash, replay, trace_len, ActionKind, Crc32, Divergence, Field, Header, Location, Record,
    Recorder, ReplayError, Replayer, SliceSink, Trace, TraceError, TraceWriter, FORMAT_VERSION,
    RECORD_LEN,
};
use argen_core::{Error, SamplerParams};
use common::synthetic::{Storage, SyntheticHost, World, V};
use std::path::{Path, PathBuf};

const W: u32 = 8;
const N: u32 = 64;
const SEED: u64 = 2024;
/// Classes of the host's sequences (decoders with several sequences use the first ones).
const CLASSES: [u32; 16] = [3; 16];

/// The configuration every golden trace uses (seed [`SEED`], [`N`] tokens, two-way CFG).
fn base() -> Config {
    config(SEED)
}

fn config(seed: u64) -> Config {
    Config {
        seed,
        stream: 0,
        seq: 0,
        tokens: N,
        width: W,
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: Some(40),
            top_p: None,
            min_p: None,
        },
        guidance: GuidanceMode::TwoWay { scale: 2.0 },
    }
}

const CHAIN: DraftShape = DraftShape::Chain { gamma: 4 };
const CHAIN8: DraftShape = DraftShape::Chain { gamma: 8 };
const TREE: DraftShape = DraftShape::Tree {
    total: 20,
    depth: 4,
    top_k: 4,
};

fn spec_config(seed: u64, shape: DraftShape) -> SpeculativeConfig {
    SpeculativeConfig {
        base: config(seed),
        draft_sampler: config(seed).sampler,
        shape,
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/traces")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/trace_reader")
}

fn blessing() -> bool {
    std::env::var("ARGEN_BLESS").is_ok_and(|v| v == "1")
}

/// Writes `bytes` to `path` atomically (a parallel test reading it sees the old or new file).
fn write_atomic(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Running decoders against the synthetic host.

fn host() -> SyntheticHost {
    let mut h = SyntheticHost::new(World::new(W), &CLASSES);
    // VVS pairs skipped tokens with older features; the host checks they exist.
    h.stale_features = true;
    h
}

fn drive_with<D, H>(dec: &mut D, host: &mut H, obs: &mut impl Observer) -> Result<Stats, Error>
where
    D: Decoder,
    H: for<'a> Host<SliceBackend<'a, f32>, Error = Error>,
{
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend();
    drive(dec, &mut backend, host, obs)
}

fn replay_with<D, H>(
    dec: &mut D,
    host: &mut H,
    trace: &Trace<'_>,
) -> Result<Stats, ReplayError<Error>>
where
    D: Decoder,
    H: for<'a> Host<SliceBackend<'a, f32>, Error = Error>,
{
    // Replays run with support lists, recordings without: a golden passes only if both
    // paths give its exact bytes.
    let mut storage = Storage::new(dec.dist_rows_needed());
    let mut backend = storage.backend_with_lists();
    replay(dec, &mut backend, host, trace)
}

/// Records a run of `dec` against `host` into a `Vec`.
fn record_with<D, H>(dec: &mut D, host: &mut H, header: &Header<'_>) -> Vec<u8>
where
    D: Decoder,
    H: for<'a> Host<SliceBackend<'a, f32>, Error = Error>,
{
    let mut rec = Recorder::new(Vec::new(), header);
    drive_with(dec, host, &mut rec).expect("decoding failed");
    let (bytes, len) = rec.finish(dec).expect("recording failed");
    assert_eq!(bytes.len(), len);
    bytes
}

/// The acceptance criteria that borrow tables built from the synthetic world.
struct Tables {
    neighbours: Vec<u32>,
    codebook: Vec<f32>,
}

impl Tables {
    fn new() -> Self {
        let world = World::new(W);
        Tables {
            neighbours: build_table(&world.codebook(), 2, 8).unwrap(),
            codebook: world.codebook(),
        }
    }

    fn lantern(&self) -> Criterion<'_> {
        Criterion::Lantern(LanternParams {
            neighbours: NeighbourTable::new(&self.neighbours, V, 8).unwrap(),
            k: 8,
            delta: 0.2,
            lambda: None,
        })
    }

    fn grouped(&self) -> Criterion<'_> {
        Criterion::Grouped(GroupedParams {
            embedding: &self.codebook,
            dim: 2,
            window: 7,
            prob_tol: 0.15,
            dist_tol: 0.02,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Golden traces.

/// What one golden entry produced.
struct Made {
    bytes: Vec<u8>,
    steps: u32,
}

/// The context a golden entry runs in: its name (file stem and header decoder name), the tables
/// its criteria borrow, and the mode (bless: write the trace; otherwise replay the stored one).
struct Golden {
    name: &'static str,
    tables: Tables,
    /// Check the format version 1 golden of `fixtures/traces/v1/` instead of the current one.
    v1: bool,
}

/// Golden entries whose v1 trace predates lockstep candidates (protocol v2): the host's work is
/// ordered differently now, but the tokens, stats and result must be exactly the same.
const LOCKSTEP_SINCE_V2: [&str; 2] = ["best-of-4-vanilla", "gridar-4-reformulate"];

impl Golden {
    fn lantern(&self) -> Criterion<'_> {
        self.tables.lantern()
    }

    fn grouped(&self) -> Criterion<'_> {
        self.tables.grouped()
    }

    fn path(&self) -> PathBuf {
        let dir = if self.v1 {
            fixtures().join("v1")
        } else {
            fixtures()
        };
        dir.join(format!("{}.argtrace", self.name))
    }

    /// The check of a format version 1 golden: it still parses and replays identically, or, for
    /// decoders whose candidates now run in lockstep, ends with the same stats, result and tokens.
    fn check_v1<D: Decoder>(&self, mut decoder: D, config_hash: u64) -> Result<Made, String> {
        let header = Header::new(self.name, config_hash, base().seed, base().tokens);
        let stored = std::fs::read(self.path()).map_err(|e| format!("{}: {e}", self.name))?;
        let trace = Trace::parse(&stored).map_err(|e| format!("{}: {e}", self.name))?;
        if trace.version() != 1 {
            return Err(format!("{}: not a version 1 trace", self.name));
        }
        trace
            .check_header(&header)
            .map_err(|d| format!("{}: {d}", self.name))?;
        if LOCKSTEP_SINCE_V2.contains(&self.name) {
            let stats = drive_with(&mut decoder, &mut host(), &mut NoObserver)
                .map_err(|e| format!("{}: {e}", self.name))?;
            let seq = decoder.result_seq();
            let tokens: Vec<u32> = trace.tokens().collect();
            if stats != *trace.stats()
                || seq != trace.result_seq()
                || tokens.as_slice() != decoder.tokens(seq)
            {
                return Err(format!(
                    "{}: the lockstep run ends differently from the v1 trace",
                    self.name
                ));
            }
        } else {
            replay_with(&mut decoder, &mut host(), &trace)
                .map_err(|e| format!("{}: {e}", self.name))?;
        }
        Ok(Made {
            steps: trace.record_count(),
            bytes: stored,
        })
    }

    /// The golden check of `decoder` (configured from [`base`]) with configuration hash
    /// `config_hash`: record it (bless) or replay the stored trace and require identity.
    fn check<D: Decoder + Clone>(&self, mut decoder: D, config_hash: u64) -> Result<Made, String> {
        if self.v1 {
            return self.check_v1(decoder, config_hash);
        }
        let header = Header::new(self.name, config_hash, base().seed, base().tokens);
        let fresh = decoder.clone();
        if blessing() {
            let bytes = record_with(&mut decoder, &mut host(), &header);
            write_atomic(&self.path(), &bytes);
            let steps = Trace::parse(&bytes)
                .map_err(|e| e.to_string())?
                .record_count();
            return Ok(Made { bytes, steps });
        }
        let stored = std::fs::read(self.path()).map_err(|e| {
            format!(
                "{}: cannot read {} ({e}); bless it with ARGEN_BLESS=1 cargo test -p argen-core --test traces",
                self.name,
                self.path().display()
            )
        })?;
        let trace = Trace::parse(&stored).map_err(|e| format!("{}: {e}", self.name))?;
        trace
            .check_header(&header)
            .map_err(|d| format!("{}: {d}", self.name))?;
        replay_with(&mut decoder, &mut host(), &trace)
            .map_err(|e| format!("{}: {e}", self.name))?;
        // Byte identity of a fresh recording, too.
        let mut again = fresh;
        let bytes = record_with(&mut again, &mut host(), &header);
        if bytes != stored {
            return Err(format!(
                "{}: replay passed but the re-recording differs",
                self.name
            ));
        }
        Ok(Made {
            bytes,
            steps: trace.record_count(),
        })
    }

    /// A VVS decoder over the tree shape with `schedule` and `criterion`.
    fn vvs(&self, schedule: Schedule, criterion: Criterion<'_>) -> Result<Made, String> {
        let codebook = World::new(W).codebook();
        let cfg = VvsConfig {
            spec: spec_config(SEED, TREE),
            schedule,
            warmup: 5,
            codebook: &codebook,
            dim: 2,
        };
        let hash = config_hash(&(&cfg, &criterion));
        self.check(
            Vvs::<64, 64>::new(cfg, criterion).map_err(|e| e.to_string())?,
            hash,
        )
    }

    /// A Jacobi decoder (window 8) with `init` and `criterion`.
    fn jacobi(&self, init: JacobiInit, criterion: Criterion<'_>) -> Result<Made, String> {
        let cfg = JacobiConfig {
            base: base(),
            window: 8,
            init,
        };
        let hash = config_hash(&(&cfg, &criterion));
        self.check(
            Jacobi::<64, 16>::new(cfg, criterion).map_err(|e| e.to_string())?,
            hash,
        )
    }

    /// A speculative decoder over [`base`] with `shape` and `criterion`.
    /// Cost-aware drafting up to `shape` under a profile near the break-even point, so that the
    /// run mixes plain steps, drafting steps of several depths and catch-ups after pauses.
    fn auto(&self, shape: DraftShape, criterion: Criterion<'_>) -> Result<Made, String> {
        let curve = |p: &[(u32, u64)]| CostCurve::new(p).map_err(|e| e.to_string());
        let cfg = AutoDraftConfig {
            spec: spec_config(SEED, shape),
            profile: CostProfile {
                target: curve(&[(2, 1000), (10, 1300), (128, 20_000)])?,
                drafter: Some(curve(&[(2, 120), (64, 400)])?),
            },
        };
        let hash = config_hash(&(&cfg, &criterion));
        self.check(
            AutoSpeculative::<64, 64>::new(cfg, criterion).map_err(|e| e.to_string())?,
            hash,
        )
    }

    fn spec(&self, shape: DraftShape, criterion: Criterion<'_>) -> Result<Made, String> {
        let cfg = spec_config(SEED, shape);
        let hash = config_hash(&(&cfg, &criterion));
        self.check(
            Speculative::<64, 64>::new(cfg, criterion).map_err(|e| e.to_string())?,
            hash,
        )
    }
}

type Entry = fn(&Golden) -> Result<Made, String>;

/// The golden traces: `(name, run)`. The name is the file stem in `fixtures/traces/` and the
/// decoder name in the trace header. To add a decoder, add one line: build it from [`base`] (or
/// [`spec_config`]) and pass it with its config hash to [`Golden::check`], for example
///
/// ```text
/// ("vvs-tree-lantern", |g| g.check(Vvs::<64, 64>::new(vcfg(), g.lantern()).unwrap(), config_hash(&vcfg()))),
/// ```
///
/// then run `ARGEN_BLESS=1 cargo test -p argen-core --test traces` and commit the new file.
fn golden_table() -> Vec<(&'static str, Entry)> {
    vec![
        ("vanilla", |g| {
            g.check(Vanilla::<64>::new(base()).unwrap(), config_hash(&base()))
        }),
        ("speculative-chain-exact", |g| {
            g.spec(CHAIN, Criterion::Exact)
        }),
        ("speculative-chain-coupled", |g| {
            g.spec(CHAIN, Criterion::Coupled)
        }),
        ("speculative-chain-lantern", |g| g.spec(CHAIN, g.lantern())),
        ("speculative-chain-grouped", |g| g.spec(CHAIN, g.grouped())),
        ("speculative-tree-exact", |g| g.spec(TREE, Criterion::Exact)),
        ("speculative-tree-coupled", |g| {
            g.spec(TREE, Criterion::Coupled)
        }),
        ("speculative-tree-lantern", |g| g.spec(TREE, g.lantern())),
        ("speculative-tree-grouped", |g| g.spec(TREE, g.grouped())),
        ("auto-chain-exact", |g| g.auto(CHAIN8, Criterion::Exact)),
        ("auto-tree-coupled", |g| g.auto(TREE, Criterion::Coupled)),
        ("vvs-tree-uniform2-exact", |g| {
            g.vvs(Schedule::Uniform { interval: 2 }, Criterion::Exact)
        }),
        ("vvs-tree-dynamic-lantern", |g| {
            g.vvs(Schedule::DYNAMIC_PAPER, g.lantern())
        }),
        ("jacobi-random-exact", |g| {
            g.jacobi(JacobiInit::Random, Criterion::Exact)
        }),
        ("jacobi-copyleft-coupled", |g| {
            g.jacobi(JacobiInit::CopyLeft, Criterion::Coupled)
        }),
        ("best-of-4-vanilla", |g| {
            let b = BestOfN::<Vanilla<64>, 4>::new(base(), 4, Vanilla::new).unwrap();
            g.check(b, config_hash(&base()) ^ 4)
        }),
        ("gridar-4-reformulate", |g| {
            let cfg = GridArConfig {
                base: base(),
                n: 4,
                verifier: true,
                reformulate: true,
                w: RELEASE_W,
            };
            g.check(
                GridAr::<Vanilla<64>, 4>::vanilla(cfg).unwrap(),
                config_hash(&cfg),
            )
        }),
    ]
}

fn golden_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(format!("{name}.argtrace")))
        .unwrap_or_else(|e| panic!("golden trace {name}: {e}; bless with ARGEN_BLESS=1"))
}

#[test]
fn golden_traces_replay_identically() {
    let mut failures = Vec::new();
    println!("golden trace sizes (format v{FORMAT_VERSION}, {RECORD_LEN} bytes per step):");
    for (name, run) in golden_table() {
        let g = Golden {
            name,
            tables: Tables::new(),
            v1: false,
        };
        match run(&g) {
            Ok(made) => println!(
                "  {name:28} {:5} steps {:6} bytes  {:5.1} bytes/step overall",
                made.steps,
                made.bytes.len(),
                made.bytes.len() as f64 / made.steps as f64
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "golden traces failed:\n{}",
        failures.join("\n")
    );
    // Every stored trace has an entry (a removed decoder's trace must be removed deliberately).
    let names: Vec<_> = golden_table().into_iter().map(|(n, _)| n).collect();
    for f in std::fs::read_dir(fixtures()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "argtrace") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            assert!(
                names.contains(&stem.as_str()),
                "{stem}.argtrace has no golden entry"
            );
        }
    }
}

#[test]
fn version_1_goldens_still_replay() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, run) in golden_table() {
        // Decoders added after format version 1 have no v1 trace (the count below still
        // requires every v1 trace to be checked).
        if !fixtures()
            .join("v1")
            .join(format!("{name}.argtrace"))
            .exists()
        {
            continue;
        }
        let g = Golden {
            name,
            tables: Tables::new(),
            v1: true,
        };
        match run(&g) {
            Ok(_) => checked += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "version 1 goldens failed:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        checked,
        std::fs::read_dir(fixtures().join("v1")).unwrap().count()
    );
}

// ---------------------------------------------------------------------------------------------
// Writer and reader.

#[test]
fn recording_is_deterministic_and_the_layout_is_exact() {
    let header = Header::new("vanilla", 7, SEED, N);
    let a = record_with(
        &mut Vanilla::<64>::new(base()).unwrap(),
        &mut host(),
        &header,
    );
    let b = record_with(
        &mut Vanilla::<64>::new(base()).unwrap(),
        &mut host(),
        &header,
    );
    assert_eq!(a, b);
    let t = Trace::parse(&a).unwrap();
    // Vanilla: one prefill and N − 1 target runs; one record each.
    assert_eq!(t.record_count(), N);
    assert_eq!(a.len(), trace_len("vanilla".len(), N as usize, N as usize));
    assert_eq!(*t.header(), header);
    let records: Vec<Record> = t.records().collect();
    assert_eq!(records[0].kind, ActionKind::Prefill);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.committed, i as u32 + 1);
        assert_eq!(r.variants, 2);
        assert_eq!(r.answer, 2, "two CFG rows per forward");
        if i > 0 {
            assert_eq!(r.kind, ActionKind::Target);
            assert_eq!(r.items, 1);
            assert_eq!(r.aux, u32::from(i > 1), "keep list");
        }
    }
    // Byte-level spot checks of the documented layout.
    assert_eq!(&a[0..8], b"ARGTRACE");
    assert_eq!(u16::from_le_bytes([a[8], a[9]]), FORMAT_VERSION);
    assert_eq!(u16::from_le_bytes([a[10], a[11]]), 40);
    assert_eq!(u64::from_le_bytes(a[24..32].try_into().unwrap()), SEED);
    assert_eq!(a[36] as usize, "vanilla".len());
    let rec0 = 37 + "vanilla".len();
    assert_eq!(a[rec0], 1, "first record is a prefill");
    let footer = rec0 + 40 * N as usize;
    assert_eq!(a[footer], 0xFF);
    assert_eq!(
        u32::from_le_bytes(a[footer + 4..footer + 8].try_into().unwrap()),
        N
    );
    let crc_at = a.len() - 4;
    assert_eq!(
        u32::from_le_bytes(a[crc_at..].try_into().unwrap()),
        Crc32::of(&a[..crc_at])
    );
    assert_eq!(t.stats().target_forwards, N);
    assert_eq!(t.token_count(), N);
}

#[test]
fn slice_sink_reports_the_needed_size() {
    let header = Header::new("vanilla", 7, SEED, N);
    let full = record_with(
        &mut Vanilla::<64>::new(base()).unwrap(),
        &mut host(),
        &header,
    );
    // Too small: typed error with the exact size.
    let mut small = vec![0u8; 100];
    let mut dec = Vanilla::<64>::new(base()).unwrap();
    let mut rec = Recorder::new(SliceSink::new(&mut small), &header);
    drive_with(&mut dec, &mut host(), &mut rec).unwrap();
    assert_eq!(
        rec.finish(&dec).unwrap_err(),
        TraceError::BufferTooSmall {
            needed: full.len(),
            capacity: 100
        }
    );
    // Exactly large enough: the same bytes as the Vec sink.
    let mut exact = vec![0u8; full.len()];
    let mut dec = Vanilla::<64>::new(base()).unwrap();
    let mut rec = Recorder::new(SliceSink::new(&mut exact), &header);
    drive_with(&mut dec, &mut host(), &mut rec).unwrap();
    let (sink, len) = rec.finish(&dec).unwrap();
    assert_eq!(len, full.len());
    assert_eq!(sink.written().unwrap(), &full[..]);
}

#[test]
fn bad_names_are_typed_errors() {
    for (name, reason) in [("", "empty"), (&*"x".repeat(65), "longer than 64 bytes")] {
        let w = TraceWriter::new(Vec::new(), &Header::new(name, 0, 0, 0));
        assert_eq!(
            w.finish(&Stats::default(), 0, &[]).unwrap_err(),
            TraceError::BadName { reason }
        );
    }
    let max = "n".repeat(64);
    let (bytes, _) = TraceWriter::new(Vec::new(), &Header::new(&max, 0, 0, 0))
        .finish(&Stats::default(), 0, &[])
        .unwrap();
    assert_eq!(Trace::parse(&bytes).unwrap().header().decoder, max);
}

/// Rewrites the checksum of a trace after an edit.
fn fix_checksum(bytes: &mut [u8]) {
    let at = bytes.len() - 4;
    let crc = Crc32::of(&bytes[..at]);
    bytes[at..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn corrupt_truncated_and_foreign_input_give_typed_errors() {
    let good = golden_bytes("speculative-tree-exact");
    assert!(Trace::parse(&good).is_ok());
    // Every proper prefix is Truncated.
    for len in 0..good.len() {
        match Trace::parse(&good[..len]) {
            Err(TraceError::Truncated { needed, found }) => {
                assert_eq!(found, len);
                assert!(needed > len);
            }
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    // Appended bytes.
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        Trace::parse(&long).unwrap_err(),
        TraceError::TrailingBytes {
            expected: good.len(),
            found: good.len() + 1
        }
    );
    // A bit flip anywhere: detected (single-bit errors never pass CRC-32).
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    assert!(matches!(
        Trace::parse(&flipped),
        Err(TraceError::ChecksumMismatch { .. })
    ));
    // Wrong magic, newer version (even with garbage after it), wrong record size.
    let mut m = good.clone();
    m[0] = b'X';
    assert_eq!(Trace::parse(&m).unwrap_err(), TraceError::BadMagic);
    let mut v = good[..10].to_vec();
    v[8] = FORMAT_VERSION as u8 + 1;
    v.extend_from_slice(&[0xAB; 7]);
    assert_eq!(
        Trace::parse(&v).unwrap_err(),
        TraceError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    v[8] = 0;
    assert!(matches!(
        Trace::parse(&v).unwrap_err(),
        TraceError::UnsupportedVersion { found: 0, .. }
    ));
    let mut r = good.clone();
    r[10] = 41;
    assert_eq!(
        Trace::parse(&r).unwrap_err(),
        TraceError::BadRecordSize { found: 41 }
    );
    // Structural damage behind a valid checksum.
    let t = Trace::parse(&good).unwrap();
    let rec = t.record_offset(3);
    let mut k = good.clone();
    k[rec] = 9;
    fix_checksum(&mut k);
    assert_eq!(
        Trace::parse(&k).unwrap_err(),
        TraceError::BadRecord {
            step: 3,
            offset: rec,
            reason: "unknown action kind"
        }
    );
    let footer = t.record_offset(t.record_count());
    let mut c = good.clone();
    c[footer + 4] ^= 1;
    fix_checksum(&mut c);
    assert!(matches!(
        Trace::parse(&c),
        Err(TraceError::BadFooter { .. })
    ));
    let mut name = good.clone();
    name[37] = 0xFF;
    fix_checksum(&mut name);
    assert_eq!(
        Trace::parse(&name).unwrap_err(),
        TraceError::BadName {
            reason: "not UTF-8"
        }
    );
    let mut m_big = good.clone();
    m_big[footer + 184..footer + 188].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Trace::parse(&m_big),
        Err(TraceError::Truncated { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Replay checking: perturbations are found at the exact step.

/// A host that adds +100 to token `token`'s logit in every guidance row of input 0 of the
/// answer to action number `at` (so the token decided there becomes `token`).
struct Perturbed {
    inner: SyntheticHost,
    step: u32,
    at: u32,
    token: u32,
    logits: Vec<f32>,
}

impl<'b> Host<SliceBackend<'b, f32>> for Perturbed {
    type Error = Error;

    fn answer(&mut self, action: &Action<'_>) -> Result<Answer<'_, [f32]>, Error> {
        let step = self.step;
        self.step += 1;
        let variants = match action {
            Action::Prefill(p) => p.guidance.variants(),
            Action::Target(r) => r.guidance.variants(),
            Action::Draft(r) => r.guidance.variants(),
            _ => 0,
        };
        let answer =
            <SyntheticHost as Host<SliceBackend<'b, f32>>>::answer(&mut self.inner, action)?;
        match answer {
            Answer::Logits(l) if step == self.at => {
                self.logits.clear();
                self.logits.extend_from_slice(l);
                for v in 0..variants {
                    self.logits[v * V + self.token as usize] += 100.0;
                }
                Ok(Answer::Logits(&self.logits))
            }
            other => Ok(other),
        }
    }
}

/// The raster index whose token the row of input 0 of step `step`'s action decides, for prefills
/// and target runs.
fn decided_index(trace: &Trace<'_>, step: u32) -> Option<u32> {
    let r = trace.record(step)?;
    match r.kind {
        ActionKind::Prefill => Some(0),
        // A target run's input 0 is the last committed token; its row decides the next index,
        // which is the committed count after the sequence's previous step.
        ActionKind::Target => (0..step)
            .rev()
            .filter_map(|s| trace.record(s))
            .find(|p| p.seq == r.seq)
            .map(|p| p.committed),
        _ => None,
    }
}

fn assert_diverges_at(
    result: Result<Stats, ReplayError<Error>>,
    step: u32,
    fields: &[Field],
    what: &str,
) -> Divergence {
    match result {
        Err(ReplayError::Diverged(d)) => {
            assert_eq!(d.at, Location::Step(step), "{what}: {d}");
            assert!(fields.contains(&d.field), "{what}: {d}");
            d
        }
        other => panic!("{what}: expected a divergence at step {step}, got {other:?}"),
    }
}

#[test]
fn perturbed_logits_are_reported_at_the_exact_step() {
    type Make<'t> = Box<dyn Fn() -> Box<dyn DynDecoder + 't> + 't>;
    let cases: Vec<(&str, Make<'_>)> = vec![
        (
            "vanilla",
            Box::new(|| Box::new(Vanilla::<64>::new(base()).unwrap())),
        ),
        (
            "speculative-chain-exact",
            Box::new(|| {
                Box::new(
                    Speculative::<64, 64>::new(spec_config(SEED, CHAIN), Criterion::Exact).unwrap(),
                )
            }),
        ),
        (
            "speculative-tree-coupled",
            Box::new(|| {
                Box::new(
                    Speculative::<64, 64>::new(spec_config(SEED, TREE), Criterion::Coupled)
                        .unwrap(),
                )
            }),
        ),
    ];
    for (name, make) in cases {
        let bytes = golden_bytes(name);
        let trace = Trace::parse(&bytes).unwrap();
        let clean: Vec<u32> = trace.tokens().collect();
        // Perturb several target-deciding steps spread over the run.
        let steps: Vec<u32> = (0..trace.record_count())
            .filter(|&s| decided_index(&trace, s).is_some_and(|i| i < N))
            .collect();
        assert!(steps.len() >= 5, "{name}");
        for &at in steps.iter().step_by(steps.len() / 5) {
            let index = decided_index(&trace, at).unwrap();
            let token = (clean[index as usize] + 1) % V as u32;
            let mut host = Perturbed {
                inner: host(),
                step: 0,
                at,
                token,
                logits: Vec::new(),
            };
            let mut dec = make();
            let result = dec.replay(&mut host, &trace);
            if let Err(ReplayError::Diverged(d)) = &result {
                println!("{name}, +100 on token {token} at step {at}: {d}");
            }
            assert_diverges_at(
                result,
                at,
                &[Field::Committed, Field::TokenDigest],
                &format!("{name}, logits perturbed at step {at} (index {index})"),
            );
        }
    }
}

/// Object-safe wrapper so that the perturbation test can hold different decoders in one table.
trait DynDecoder {
    fn replay(
        &mut self,
        host: &mut Perturbed,
        trace: &Trace<'_>,
    ) -> Result<Stats, ReplayError<Error>>;
}

impl<D: Decoder> DynDecoder for D {
    fn replay(
        &mut self,
        host: &mut Perturbed,
        trace: &Trace<'_>,
    ) -> Result<Stats, ReplayError<Error>> {
        replay_with(self, host, trace)
    }
}

#[test]
fn a_changed_seed_is_reported_at_the_first_differing_token() {
    let bytes = golden_bytes("vanilla");
    let trace = Trace::parse(&bytes).unwrap();
    let clean: Vec<u32> = trace.tokens().collect();
    for seed in [SEED + 1, SEED + 2, 7] {
        // Ground truth without traces: vanilla commits token i at step i.
        let mut other = Vanilla::<64>::new(config(seed)).unwrap();
        drive_with(&mut other, &mut host(), &mut NoObserver).unwrap();
        let first = (0..N)
            .find(|&i| other.tokens(0)[i as usize] != clean[i as usize])
            .expect("a different seed gives a different image");
        let mut dec = Vanilla::<64>::new(config(seed)).unwrap();
        assert_diverges_at(
            replay_with(&mut dec, &mut host(), &trace),
            first,
            &[Field::TokenDigest],
            &format!("vanilla seed {seed}"),
        );
        let header = Header::new("vanilla", config_hash(&config(seed)), seed, N);
        let d = trace.check_header(&header).unwrap_err();
        assert_eq!((d.at, d.field), (Location::Header, Field::ConfigHash));
        let header = Header::new("vanilla", config_hash(&base()), seed, N);
        let d = trace.check_header(&header).unwrap_err();
        assert_eq!(
            (d.at, d.field, d.expected, d.found),
            (Location::Header, Field::Seed, SEED, seed)
        );
    }
    // Speculative: the ground truth is the first record whose bytes differ between the two
    // recordings.
    let bytes = golden_bytes("speculative-chain-exact");
    let trace = Trace::parse(&bytes).unwrap();
    let seed = SEED + 1;
    let header = Header::new("x", 0, seed, N);
    let cfg = spec_config(seed, CHAIN);
    let other = record_with(
        &mut Speculative::<64, 64>::new(cfg, Criterion::Exact).unwrap(),
        &mut host(),
        &header,
    );
    let other = Trace::parse(&other).unwrap();
    let first = (0..trace.record_count())
        .find(|&s| trace.record(s) != other.record(s))
        .unwrap();
    let mut dec = Speculative::<64, 64>::new(cfg, Criterion::Exact).unwrap();
    assert_diverges_at(
        replay_with(&mut dec, &mut host(), &trace),
        first,
        &[
            Field::Kind,
            Field::ActionDigest,
            Field::Committed,
            Field::TokenDigest,
            Field::Items,
        ],
        "speculative chain, seed changed",
    );
}

#[test]
fn an_edited_record_with_a_fixed_checksum_is_reported_at_its_step() {
    let tables = Tables::new();
    for name in ["vanilla", "speculative-tree-lantern"] {
        let good = golden_bytes(name);
        let trace = Trace::parse(&good).unwrap();
        for step in [0, 1, trace.record_count() / 2, trace.record_count() - 1] {
            let at = trace.record_offset(step);
            let r = trace.record(step).unwrap();
            // (byte offset in the record, field that must be reported)
            let mut edits = vec![
                (4, Field::Seq),
                (8, Field::Items),
                (12, Field::Aux),
                (16, Field::Answer),
                (20, Field::Committed),
                (24, Field::ActionDigest),
                (31, Field::ActionDigest),
                (32, Field::TokenDigest),
                (39, Field::TokenDigest),
            ];
            if r.variants == 2 {
                edits.push((1, Field::Flags)); // variants 2 → 3
            }
            for (offset, field) in edits {
                let mut bytes = good.clone();
                if offset == 1 {
                    bytes[at + 1] = (r.new_step as u8) | (3 << 1);
                } else {
                    bytes[at + offset] ^= 0x04;
                }
                let unfixed = bytes.clone();
                fix_checksum(&mut bytes);
                let edited = Trace::parse(&bytes).expect("edit keeps the structure valid");
                let mut dec = Golden::fresh(name, &tables);
                let d = assert_diverges_at(
                    dec.replay(&mut Perturbed::none(), &edited),
                    step,
                    &[field],
                    &format!("{name}: record {step} byte {offset} edited"),
                );
                assert_ne!(d.expected, d.found);
                // Without the checksum fix-up, the reader refuses the file.
                assert!(matches!(
                    Trace::parse(&unfixed),
                    Err(TraceError::ChecksumMismatch { .. })
                ));
            }
            // The kind byte: a target turned prefill (same flags are valid for both).
            if r.kind == ActionKind::Target {
                let mut bytes = good.clone();
                bytes[at] = ActionKind::Prefill as u8;
                fix_checksum(&mut bytes);
                let edited = Trace::parse(&bytes).unwrap();
                let d = assert_diverges_at(
                    Golden::fresh(name, &tables).replay(&mut Perturbed::none(), &edited),
                    step,
                    &[Field::Kind],
                    &format!("{name}: kind of record {step}"),
                );
                assert_eq!((d.expected, d.found), (1, 2));
            }
        }
        // Footer edits: a stats field and a final token.
        let footer = trace.record_offset(trace.record_count());
        let mut bytes = good.clone();
        bytes[footer + 8 + 4] ^= 1; // target_forwards
        fix_checksum(&mut bytes);
        let r = Golden::fresh(name, &tables)
            .replay(&mut Perturbed::none(), &Trace::parse(&bytes).unwrap());
        match r {
            Err(ReplayError::Diverged(d)) => {
                assert_eq!(
                    (d.at, d.field),
                    (Location::Footer, Field::Stat("target_forwards"))
                )
            }
            other => panic!("{other:?}"),
        }
        let mut bytes = good.clone();
        bytes[footer + 188 + 4 * 17] ^= 1; // final token 17
        fix_checksum(&mut bytes);
        let r = Golden::fresh(name, &tables)
            .replay(&mut Perturbed::none(), &Trace::parse(&bytes).unwrap());
        match r {
            Err(ReplayError::Diverged(d)) => {
                assert_eq!((d.at, d.field), (Location::Footer, Field::FinalToken(17)))
            }
            other => panic!("{other:?}"),
        }
    }
}

impl Perturbed {
    /// A host that perturbs nothing.
    fn none() -> Self {
        Perturbed {
            inner: host(),
            step: 0,
            at: u32::MAX,
            token: 0,
            logits: Vec::new(),
        }
    }
}

impl Golden {
    /// A fresh decoder of golden entry `name` (only those the edit tests use).
    fn fresh<'t>(name: &str, tables: &'t Tables) -> Box<dyn DynDecoder + 't> {
        match name {
            "vanilla" => Box::new(Vanilla::<64>::new(base()).unwrap()),
            "speculative-tree-lantern" => Box::new(
                Speculative::<64, 64>::new(spec_config(SEED, TREE), tables.lantern()).unwrap(),
            ),
            _ => panic!("no fresh decoder for {name}"),
        }
    }
}

#[test]
fn a_run_shorter_or_longer_than_the_trace_is_reported() {
    // A trace of 64 tokens replayed by a decoder configured for 48: the run ends early.
    let bytes = golden_bytes("vanilla");
    let trace = Trace::parse(&bytes).unwrap();
    let mut short = Vanilla::<64>::new(Config {
        tokens: 48,
        ..base()
    })
    .unwrap();
    let d = assert_diverges_at(
        replay_with(&mut short, &mut host(), &trace),
        48,
        &[Field::Kind],
        "short run",
    );
    assert_eq!((d.expected, d.found), (ActionKind::Target as u64, 0));
    // A trace of the 48-token run replayed by the 64-token decoder: the run goes on.
    let header = Header::new("vanilla", 0, SEED, 48);
    let short_trace = record_with(
        &mut Vanilla::<64>::new(Config {
            tokens: 48,
            ..base()
        })
        .unwrap(),
        &mut host(),
        &header,
    );
    let short_trace = Trace::parse(&short_trace).unwrap();
    let d = assert_diverges_at(
        replay_with(
            &mut Vanilla::<64>::new(base()).unwrap(),
            &mut host(),
            &short_trace,
        ),
        48,
        &[Field::Kind],
        "long run",
    );
    assert_eq!((d.expected, d.found), (0, ActionKind::Target as u64));
    // The Replayer used directly with drive().
    let mut checker = Replayer::new(trace);
    let mut dec = Vanilla::<64>::new(base()).unwrap();
    drive_with(&mut dec, &mut host(), &mut checker).unwrap();
    assert_eq!(checker.steps(), N);
    checker.finish(&dec).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Deterministic fuzzing of the reader over the committed corpus.

/// A minimal valid trace with the given name, records and tokens.
fn handmade(name: &str, records: &[Record], tokens: &[u32]) -> Vec<u8> {
    let mut w = TraceWriter::new(
        Vec::new(),
        &Header::new(name, 0x1234, 99, tokens.len() as u32),
    );
    for r in records {
        w.record(r);
    }
    let stats = Stats {
        tokens: tokens.len() as u32,
        ..Stats::default()
    };
    w.finish(&stats, 0, tokens).unwrap().0
}

fn every_kind_records() -> Vec<Record> {
    let r = |kind, new_step, variants, items, aux, answer| Record {
        kind,
        new_step,
        variants,
        seq: 1,
        items,
        aux,
        answer,
        committed: 2,
        action_digest: 0xA5A5_0000_FFFF_0001,
        token_digest: 0x0102_0304_0506_0708,
    };
    vec![
        r(ActionKind::Prefill, false, 1, 2, 0, 1),
        r(ActionKind::Target, false, 2, 3, 1, 6),
        r(ActionKind::Draft, true, 3, 4, 4, 12),
        r(ActionKind::Check, false, 0, 8, 1, 1),
        r(ActionKind::Score, false, 0, 16, 0, 0.25f32.to_bits()),
        r(ActionKind::Reformulate, false, 0, 0, 2, 0),
        r(ActionKind::Batch, true, 0, 3, 0, 9),
    ]
}

fn with_fixed_checksum(mut b: Vec<u8>) -> Vec<u8> {
    fix_checksum(&mut b);
    b
}

type Expect = fn(&Result<Trace<'_>, TraceError>) -> bool;

/// The hand-made edge cases of `fuzz/corpus/trace_reader/` and what the reader must say.
fn edge_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let minimal = handmade("x", &[], &[]);
    let footer = 37 + 1;
    let mut huge_m = minimal.clone();
    huge_m[footer + 184..footer + 188].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut count = minimal.clone();
    count[footer + 4] = 1;
    let mut bad_kind = handmade("k", &every_kind_records(), &[1, 2]);
    bad_kind[38] = 0x08;
    let mut trailing = minimal.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    let mut not_utf8 = handmade("ab", &[], &[]);
    not_utf8[37] = 0xC3;
    let mut record_size = minimal.clone();
    record_size[10] = 48;
    let mut bad_crc = handmade("crc", &every_kind_records(), &[5]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x80;
    let mut version3 = b"ARGTRACE".to_vec();
    version3.extend_from_slice(&3u16.to_le_bytes());
    version3.extend_from_slice(&[0xEE; 40]);
    vec![
        ("empty.bin", Vec::new(), |r| {
            matches!(
                r,
                Err(TraceError::Truncated {
                    needed: 8,
                    found: 0
                })
            )
        }),
        ("magic-only.bin", b"ARGTRACE".to_vec(), |r| {
            matches!(r, Err(TraceError::Truncated { .. }))
        }),
        ("version-3.bin", version3, |r| {
            matches!(r, Err(TraceError::UnsupportedVersion { found: 3, .. }))
        }),
        ("minimal.argtrace", minimal, |r| {
            r.as_ref()
                .is_ok_and(|t| t.record_count() == 0 && t.token_count() == 0)
        }),
        (
            "every-kind.argtrace",
            handmade("every-kind", &every_kind_records(), &[3, 1, 4, 1, 5]),
            |r| {
                r.as_ref().is_ok_and(|t| {
                    t.records().eq(every_kind_records()) && t.tokens().eq([3, 1, 4, 1, 5])
                })
            },
        ),
        (
            "max-name.argtrace",
            handmade(&"n".repeat(64), &[], &[7]),
            |r| r.as_ref().is_ok_and(|t| t.header().decoder.len() == 64),
        ),
        ("huge-token-count.bin", with_fixed_checksum(huge_m), |r| {
            matches!(r, Err(TraceError::Truncated { .. }))
        }),
        (
            "record-count-mismatch.bin",
            with_fixed_checksum(count),
            |r| matches!(r, Err(TraceError::BadFooter { .. })),
        ),
        ("bad-kind.bin", with_fixed_checksum(bad_kind), |r| {
            matches!(
                r,
                Err(TraceError::BadRecord {
                    step: 0,
                    offset: 38,
                    ..
                })
            )
        }),
        ("trailing.bin", trailing, |r| {
            matches!(r, Err(TraceError::TrailingBytes { .. }))
        }),
        ("name-not-utf8.bin", with_fixed_checksum(not_utf8), |r| {
            matches!(r, Err(TraceError::BadName { .. }))
        }),
        ("bad-record-size.bin", record_size, |r| {
            matches!(r, Err(TraceError::BadRecordSize { found: 48 }))
        }),
        ("bad-checksum.bin", bad_crc, |r| {
            matches!(r, Err(TraceError::ChecksumMismatch { .. }))
        }),
    ]
}

/// Everything a consumer might do with a parsed trace; must not panic.
fn exercise(data: &[u8]) -> Result<(), TraceError> {
    let t = Trace::parse(data)?;
    let mut n = 0u32;
    for r in t.records() {
        assert_eq!(Record::decode(&r.encode()), Ok(r), "records re-encode");
        n += 1;
    }
    assert_eq!(n, t.record_count());
    assert_eq!(t.record(n), None);
    assert!(t.record(u32::MAX).is_none());
    assert_eq!(t.tokens().count() as u32, t.token_count());
    assert!(t.token(u32::MAX).is_none());
    let _ = t.token_digest();
    let _ = t.check_header(&Header::new("vanilla", 0, SEED, N));
    let _ = format!("{:?} {}", t.header(), t.stats().tokens);
    Ok(())
}

/// A deterministic xorshift64* generator for the mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Default)]
struct Tally {
    inputs: usize,
    parsed: usize,
    replayed: usize,
}

impl Tally {
    fn run(&mut self, data: &[u8]) -> Result<(), TraceError> {
        self.inputs += 1;
        let r = exercise(data);
        if r.is_ok() {
            self.parsed += 1;
        }
        r
    }
}

/// Byte positions to mutate, with how many bits: all 8 in the header, the first record, the
/// footer's fixed part and the checksum; one bit at a stride elsewhere.
fn positions(len: usize, footer: Option<usize>, full: bool) -> impl Iterator<Item = (usize, u8)> {
    let dense = move |i: usize| {
        full && i < 120
            || i + 8 >= len
            || full && footer.is_some_and(|f| i >= f && i < f + 188)
            || full && footer.is_none() && i + 200 >= len
    };
    (0..len).filter_map(move |i| {
        if dense(i) {
            Some((i, 8))
        } else if i % 29 == 0 {
            Some((i, 1))
        } else {
            None
        }
    })
}

/// Mutates `data` in every way listed in the module; `full`: flip every bit of the header, first
/// record and footer (otherwise only a stride of single bits).
fn mutate(data: &[u8], full: bool, seed: u64, tally: &mut Tally, replay_budget: &mut u32) {
    let len = data.len();
    let footer = Trace::parse(data)
        .ok()
        .map(|t| t.record_offset(t.record_count()));
    // Truncations: every proper prefix is Truncated (or, for an input that is already invalid,
    // some typed error).
    for cut in (0..len).filter(|&c| c < 128 || c + 256 >= len || c % 13 == 0) {
        let r = tally.run(&data[..cut]);
        if footer.is_some() {
            assert!(
                matches!(r, Err(TraceError::Truncated { .. })),
                "cut {cut}: {r:?}"
            );
        }
    }
    // Bit flips, raw (a valid input must become invalid: CRC-32 catches every single-bit error)
    // and with the checksum fixed up (reaching the structural checks and the replay).
    let mut buf = data.to_vec();
    for (i, nbits) in positions(len, footer, full) {
        for bit in (0..nbits).map(|b| if nbits == 1 { (i % 8) as u8 } else { b }) {
            buf[i] ^= 1 << bit;
            let r = tally.run(&buf);
            if footer.is_some() {
                assert!(r.is_err(), "bit {bit} of byte {i} flipped went unnoticed");
            }
            if len >= 4 && i + 4 < len {
                let mut fixed = buf.clone();
                fix_checksum(&mut fixed);
                if tally.run(&fixed).is_ok() && *replay_budget > 0 {
                    // Replay a decoder against the edited trace: a typed outcome, no panic.
                    *replay_budget -= 1;
                    tally.replayed += 1;
                    let t = Trace::parse(&fixed).unwrap();
                    let mut dec = Vanilla::<64>::new(base()).unwrap();
                    let _ = replay_with(&mut dec, &mut host(), &t);
                }
            }
            buf[i] ^= 1 << bit;
        }
    }
    // Length-field overwrites (version, record size, name length, record count, token count).
    let mut fields: Vec<(usize, usize)> = vec![(8, 2), (10, 2), (36, 1)];
    if let Some(f) = footer {
        fields.extend([(f + 4, 4), (f + 180, 4), (f + 184, 4)]);
    }
    let values: [u64; 12] = [
        0,
        1,
        2,
        3,
        0x3F,
        0x40,
        0x41,
        0x7F,
        0xFF,
        0xFFFF,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
    ];
    for &(at, width) in &fields {
        if at + width > len {
            continue;
        }
        for v in values
            .iter()
            .copied()
            .chain([len as u64, len as u64 / 4, len as u64 / 40])
        {
            let mut b = data.to_vec();
            b[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            let _ = tally.run(&b);
            if len >= 4 {
                fix_checksum(&mut b);
                let _ = tally.run(&b);
            }
        }
    }
    // Random splices, insertions and deletions, half with a fixed-up checksum.
    let mut rng = Rng(seed | 1);
    for k in 0..300 {
        let mut b = data.to_vec();
        match k % 3 {
            0 if !b.is_empty() => {
                let at = rng.below(b.len());
                let n = 1 + rng.below(16).min(b.len() - at - 1);
                for x in &mut b[at..at + n] {
                    *x = rng.next() as u8;
                }
            }
            1 => {
                let at = rng.below(b.len() + 1);
                let n = 1 + rng.below(48);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
            _ if !b.is_empty() => {
                let at = rng.below(b.len());
                let n = 1 + rng.below(64).min(b.len() - at - 1);
                b.drain(at..at + n);
            }
            _ => b.push(rng.next() as u8),
        }
        if k % 2 == 0 && b.len() >= 4 {
            fix_checksum(&mut b);
        }
        let _ = tally.run(&b);
    }
}

#[test]
fn reader_survives_the_corpus_and_its_mutations() {
    let cases = edge_cases();
    if blessing() {
        for (name, bytes, _) in &cases {
            write_atomic(&corpus_dir().join(name), bytes);
        }
    }
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in [fixtures(), corpus_dir()] {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "argtrace" || e == "bin"))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            inputs.push((name, std::fs::read(&p).unwrap()));
        }
    }
    // The hand-made cases are committed and give their documented outcome.
    for (name, _, expect) in &cases {
        let (_, bytes) = inputs
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("corpus file {name} missing; bless with ARGEN_BLESS=1"));
        let r = Trace::parse(bytes);
        assert!(expect(&r), "{name}: {r:?}");
    }
    let mut tally = Tally::default();
    let mut replay_budget = 64;
    for (i, (name, bytes)) in inputs.iter().enumerate() {
        let golden = name.ends_with(".argtrace");
        let r = tally.run(bytes);
        if golden {
            r.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Every bit of the structure for the small inputs and one golden trace per decoder family
        // (the others share its layout), a stride for the rest.
        let full = bytes.len() < 1024
            || [
                "vanilla.argtrace",
                "speculative-chain-exact.argtrace",
                "speculative-tree-lantern.argtrace",
            ]
            .contains(&name.as_str());
        mutate(
            bytes,
            full,
            0x9E37_79B9_7F4A_7C15 ^ i as u64,
            &mut tally,
            &mut replay_budget,
        );
    }
    println!(
        "reader fuzz: {} corpus files, {} inputs, {} parsed, {} replayed",
        inputs.len(),
        tally.inputs,
        tally.parsed,
        tally.replayed
    );
    assert!(tally.inputs > 20_000);
    assert!(tally.parsed > 0 && tally.replayed > 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..Default::default()
    })]

    /// Whatever is written is read back exactly, into a caller's buffer of the exact size.
    #[test]
    fn write_read_round_trip(
        name in "[a-z0-9-]{1,64}",
        raw in proptest::collection::vec((1u8..=6, proptest::prelude::any::<[u32; 5]>(), proptest::prelude::any::<[u64; 2]>(), proptest::prelude::any::<bool>(), 1u8..=3), 0..40),
        tokens in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..100),
        hist in proptest::prelude::any::<[u32; 32]>(),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let records: Vec<Record> = raw
            .iter()
            .map(|&(k, w, d, s, v)| {
                let kind = ActionKind::from_byte(k).unwrap();
                Record {
                    kind,
                    new_step: s && kind == ActionKind::Draft,
                    variants: if kind.is_forward() { v } else { 0 },
                    seq: w[0],
                    items: w[1],
                    aux: w[2],
                    answer: w[3],
                    committed: w[4],
                    action_digest: d[0],
                    token_digest: d[1],
                }
            })
            .collect();
        let stats = Stats { tokens: tokens.len() as u32, draft_rows: 5, accepted_hist: hist, ..Stats::default() };
        let header = Header::new(&name, seed ^ 1, seed, 17);
        let mut buf = vec![0u8; trace_len(name.len(), records.len(), tokens.len())];
        let mut w = TraceWriter::new(SliceSink::new(&mut buf), &header);
        for r in &records {
            w.record(r);
        }
        let (_, len) = w.finish(&stats, 3, &tokens).unwrap();
        proptest::prop_assert_eq!(len, buf.len());
        let t = Trace::parse(&buf).unwrap();
        proptest::prop_assert_eq!(*t.header(), header);
        proptest::prop_assert!(t.records().eq(records.iter().copied()));
        proptest::prop_assert_eq!(*t.stats(), stats);
        proptest::prop_assert_eq!(t.result_seq(), 3);
        proptest::prop_assert!(t.tokens().eq(tokens.iter().copied()));
        proptest::prop_assert_eq!(t.token_digest(), argen_core::trace::Fnv64::of_tokens(&tokens));
    }
}
