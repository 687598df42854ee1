//! Hostile input for the `argen` binary, one test per category of issue 14: corrupt and absurd
//! model directories; options at 0, negative, NaN and huge; hostile PNGs, token and caption
//! files; outputs on `/dev/full`, on closed pipes and on a full file system (`ulimit -f 0`),
//! where the previous output must survive byte for byte; conflicting outputs.
//!
//! Every child runs under `ulimit -v` [`VMEM_KB`] (2 GiB of address space): an allocation
//! beyond it aborts the child, which the checks below report as a failure. Every failure must
//! be exactly one line `argen: error: …` on stderr with exit status 1, never a panic, a signal
//! or a hang ([`TIMEOUT`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Address-space cap of every child (`ulimit -v`, KiB).
const VMEM_KB: u64 = 2 * 1024 * 1024;
/// Wall-clock cap of every child.
const TIMEOUT: Duration = Duration::from_secs(60);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_argen")
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/model/tiny")
}

fn shapes_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/shapesworld")
}

/// A fresh directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("argen-robust-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// How the child's stdout is connected.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    Piped,
    DevFull,
    ClosedPipe,
}

/// Runs `argen args` under the memory cap (plus `limits`, e.g. `ulimit -f 0`) and a timeout.
fn run_with(args: &[&str], out: Out, limits: &str) -> Output {
    let script = format!("ulimit -v {VMEM_KB}; {limits} exec \"$0\" \"$@\"");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg(bin()).args(args);
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    match out {
        Out::Piped | Out::ClosedPipe => cmd.stdout(Stdio::piped()),
        Out::DevFull => cmd.stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        ),
    };
    let mut child = cmd.spawn().expect("spawn sh");
    if out == Out::ClosedPipe {
        drop(child.stdout.take());
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{args:?}: no answer within {TIMEOUT:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn run(args: &[&str]) -> Output {
    run_with(args, Out::Piped, "")
}

/// Asserts a clean one-line failure whose message contains every `needles` entry.
fn fails(out: &Output, args: &[&str], needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: status {:?}, stderr {err}",
        out.status
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?}: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("argen: error: "), "{args:?}: {err}");
    assert!(err.len() < 600, "{args:?}: {} bytes of error", err.len());
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
    err
}

fn fails_with(args: &[&str], needles: &[&str]) -> String {
    fails(&run(args), args, needles)
}

fn succeeds(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// No temporary files left behind in `dir`.
fn no_temps(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".tmp"),
            "temporary file {name} left in {dir:?}"
        );
    }
}

/// A copy of the tiny model in `dir`, `edit` applied to its files.
fn model_copy(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in [
        "gpt.json",
        "gpt.safetensors",
        "vq.json",
        "vq.safetensors",
        "drafter.safetensors",
    ] {
        std::fs::copy(tiny().join(f), m.join(f)).unwrap();
    }
    m
}

fn set_json_field(path: &Path, key: &str, value: serde_json::Value) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Header (JSON) and data of a safetensors file.
fn st_split(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn st_join(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// Writes NaN (or `+inf` with `inf`) into the first element of tensor `name`.
fn poison(path: &Path, name: &str, inf: bool) {
    let bytes = std::fs::read(path).unwrap();
    let (h, mut data) = st_split(&bytes);
    let begin = h[name]["data_offsets"][0].as_u64().unwrap() as usize;
    match h[name]["dtype"].as_str().unwrap() {
        "F32" => {
            let x = if inf { f32::INFINITY } else { f32::NAN };
            data[begin..begin + 4].copy_from_slice(&x.to_le_bytes());
        }
        _ => {
            // F16 / BF16 bit patterns of NaN and +inf.
            let x: u16 = match (h[name]["dtype"].as_str().unwrap(), inf) {
                ("F16", false) => 0x7e00,
                ("F16", true) => 0x7c00,
                (_, false) => 0x7fc0,
                (_, true) => 0x7f80,
            };
            data[begin..begin + 2].copy_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, st_join(&h, &data)).unwrap();
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn absurd_configs_are_refused_before_any_allocation() {
    let d = scratch("configs");
    let m = model_copy(&d);
    let ms = s(&m);
    let gpt = m.join("gpt.json");
    let orig = std::fs::read(&gpt).unwrap();
    for (key, value, needle) in [
        ("block_size", serde_json::json!(u64::MAX), "block_size"),
        ("n_layer", serde_json::json!(1_000_000_000u64), "n_layer"),
        ("dim", serde_json::json!(1u64 << 40), "dim"),
        ("vocab_size", serde_json::json!(1u64 << 62), "vocab_size"),
        ("num_classes", serde_json::json!(u64::MAX), "num_classes"),
        ("multiple_of", serde_json::json!(0), "multiple_of"),
        (
            "ffn_dim_multiplier",
            serde_json::json!(1e300),
            "ffn_dim_multiplier",
        ),
        ("n_head", serde_json::json!(3), "n_head"),
        ("block_size", serde_json::json!(15), "square"),
        (
            "class_dropout_prob",
            serde_json::json!(1.0),
            "class_dropout_prob",
        ),
        ("model_type", serde_json::json!("x2y"), "gpt.json"),
    ] {
        std::fs::write(&gpt, &orig).unwrap();
        set_json_field(&gpt, key, value);
        // decode needs only the VQ: it ignores a broken gpt.json (and used to hang on it).
        let t = d.join("t.json");
        std::fs::write(&t, b"[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]").unwrap();
        let (ts, o) = (s(&t), s(&d.join("o.png")));
        succeeds(&["decode", "--model", &ms, "--tokens", &ts, "--out", &o]);
        for cmd in [
            vec!["generate", "--model", &ms, "--class", "1", "--quiet"],
            vec!["bench", "--model", &ms, "--quick"],
        ] {
            fails_with(&cmd, &[needle]);
        }
    }
    std::fs::write(&gpt, &orig).unwrap();
    // n_layer within bounds but beyond the checkpoint: a missing tensor, not an allocation.
    set_json_field(&gpt, "n_layer", serde_json::json!(1024));
    fails_with(
        &["generate", "--model", &ms, "--class", "1"],
        &["layers.2", "missing"],
    );
    std::fs::write(&gpt, &orig).unwrap();
    let vq = m.join("vq.json");
    let vq_orig = std::fs::read(&vq).unwrap();
    for (key, value) in [
        ("codebook_size", serde_json::json!(u64::MAX)),
        ("ch", serde_json::json!(1u64 << 40)),
        (
            "decoder_ch_mult",
            serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ),
        ("num_res_blocks", serde_json::json!(1_000_000)),
    ] {
        std::fs::write(&vq, &vq_orig).unwrap();
        set_json_field(&vq, key, value);
        fails_with(&["generate", "--model", &ms, "--class", "1"], &["vq.json"]);
    }
    // Configs that are no JSON, huge, or not files.
    std::fs::write(&vq, &vq_orig).unwrap();
    std::fs::write(&gpt, b"\xff\xfe not json").unwrap();
    fails_with(&["generate", "--model", &ms, "--class", "1"], &["gpt.json"]);
    let f = std::fs::File::create(&gpt).unwrap();
    f.set_len(3 << 30).unwrap(); // sparse 3 GB
    fails_with(
        &["generate", "--model", &ms, "--class", "1"],
        &["gpt.json", "limit"],
    );
}

#[test]
fn corrupt_checkpoints_name_the_file_and_tensor() {
    let d = scratch("checkpoints");
    let m = model_copy(&d);
    let ms = s(&m);
    let gen = ["generate", "--model", &ms, "--class", "1", "--quiet"];
    let dec_tokens = d.join("t.json");
    std::fs::write(
        &dec_tokens,
        serde_json::to_vec(&(0..16).collect::<Vec<u32>>()).unwrap(),
    )
    .unwrap();
    let dt = s(&dec_tokens);
    let out = s(&d.join("o.png"));
    for file in ["gpt.safetensors", "vq.safetensors"] {
        let p = m.join(file);
        let orig = std::fs::read(&p).unwrap();
        let (h, data) = st_split(&orig);
        let first = h
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .min_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap())
            .map(|(k, _)| k.clone())
            .unwrap();
        // NaN and infinity in a weight: named with file and tensor, at load.
        for inf in [false, true] {
            std::fs::write(&p, &orig).unwrap();
            poison(&p, &first, inf);
            fails_with(&gen, &[file, &first, if inf { "inf" } else { "NaN" }]);
            if file == "vq.safetensors" {
                fails_with(
                    &["decode", "--model", &ms, "--tokens", &dt, "--out", &out],
                    &[file, &first],
                );
            }
        }
        // Trailing bytes.
        let mut t = orig.clone();
        t.extend_from_slice(b"trailing");
        std::fs::write(&p, &t).unwrap();
        fails_with(&gen, &[file, "after the last tensor"]);
        // Overlapping data: a tensor's range moved back onto its neighbour's.
        let mut h2 = h.clone();
        let second = h
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .find(|(_, v)| v["data_offsets"][0].as_u64().unwrap() > 0)
            .map(|(k, _)| k.clone())
            .unwrap();
        let (b, e) = (
            h[&second]["data_offsets"][0].as_u64().unwrap(),
            h[&second]["data_offsets"][1].as_u64().unwrap(),
        );
        h2[&second]["data_offsets"] = serde_json::json!([b - 2, e - 2]);
        std::fs::write(&p, st_join(&h2, &data)).unwrap();
        fails_with(&gen, &[file, "overlaps"]);
        // A gap: the same moved forward, data grown to match.
        let mut h3 = h.clone();
        let mut grown = data.clone();
        grown.extend_from_slice(&[0, 0]);
        for (k, v) in h3.as_object_mut().unwrap() {
            if k == "__metadata__" {
                continue;
            }
            let (b2, e2) = (
                v["data_offsets"][0].as_u64().unwrap(),
                v["data_offsets"][1].as_u64().unwrap(),
            );
            if b2 >= b {
                v["data_offsets"] = serde_json::json!([b2 + 2, e2 + 2]);
            }
        }
        std::fs::write(&p, st_join(&h3, &grown)).unwrap();
        fails_with(&gen, &[file, "gap"]);
        // A header length of 2^64 − 1 in a sparse 3 GB file: rejected from the first 8 bytes.
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(3 << 30).unwrap();
        drop(f);
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all(&u64::MAX.to_le_bytes()).unwrap();
        drop(f);
        let t0 = Instant::now();
        fails_with(&gen, &[file, "header length"]);
        // Reading 3 GB would take seconds and exceed the memory cap; the check reads 8 bytes.
        assert!(t0.elapsed() < TIMEOUT);
        // Truncated.
        std::fs::write(&p, &orig[..orig.len() / 2]).unwrap();
        fails_with(&gen, &[file]);
        std::fs::write(&p, &orig).unwrap();
    }
    succeeds(&gen);
}

#[test]
fn model_paths_that_are_not_files_are_named_as_such() {
    let d = scratch("paths");
    let m = model_copy(&d);
    let ms = s(&m);
    let gen = ["generate", "--model", &ms, "--class", "1", "--quiet"];
    let p = m.join("gpt.safetensors");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    fails_with(&gen, &["gpt.safetensors", "directory"]);
    std::fs::remove_dir(&p).unwrap();
    let st = Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(st.success());
    fails_with(&gen, &["gpt.safetensors", "not a regular file"]);
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(m.join("loop-b"), &p).unwrap();
    std::os::unix::fs::symlink(&p, m.join("loop-b")).unwrap();
    fails_with(&gen, &["gpt.safetensors", "symbolic-link loop"]);
    std::fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(m.join("nowhere"), &p).unwrap();
    fails_with(&gen, &["gpt.safetensors", "does not exist"]);
    std::fs::remove_file(&p).unwrap();
    fails_with(&gen, &["gpt.safetensors", "missing"]);
    let f = s(&m.join("gpt.json"));
    fails_with(
        &["generate", "--model", &f, "--class", "1"],
        &["not a directory"],
    );
    std::fs::copy(tiny().join("gpt.safetensors"), &p).unwrap();
    std::fs::remove_file(m.join("drafter.safetensors")).unwrap();
    fails_with(
        &["generate", "--model", &ms, "--class", "1", "--method", "sd"],
        &["drafter.safetensors", "speculative"],
    );
}

#[test]
fn options_at_zero_negative_nan_and_huge_give_one_line_errors() {
    let d = scratch("options");
    let m = s(&tiny());
    let o = s(&d.join("o.png"));
    let base = ["generate", "--model", &m, "--out", &o, "--quiet"];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--seed", "18446744073709551616"], &["--seed"]),
        (&["--seed", "-1"], &["--seed"]),
        (&["--threads", "100000"], &["--threads", "256"]),
        (&["--threads", "-3"], &["--threads"]),
        (&["--cfg", "3.4e38"], &["--cfg"]),
        (&["--cfg", "NaN"], &["--cfg"]),
        (&["--cfg", "inf"], &["--cfg"]),
        (&["--temperature", "-1"], &["--temperature"]),
        (&["--temperature", "NaN"], &["--temperature"]),
        (&["--temperature", "1e-45"], &["--temperature"]),
        (&["--top-p", "0"], &["--top-p"]),
        (&["--top-p", "1.5"], &["--top-p"]),
        (&["--top-p", "NaN"], &["--top-p"]),
        (&["--top-k", "4294967295"], &["--top-k"]),
        (&["--top-k", "4294967296"], &["--top-k"]),
        (&["--class", "4294967296"], &["--class"]),
        (&["--class", "9"], &[]), // the tiny model has 10 classes: valid
        (&["--n", "0", "--method", "bon"], &["--n"]),
        (&["--n", "99", "--method", "gridar"], &["--n"]),
        (
            &["--method", "sd", "--tree-top-k", "100000"],
            &["--tree-top-k"],
        ),
        (
            &["--method", "vvs", "--tree-top-k", "100000"],
            &["--tree-top-k"],
        ),
        (&["--method", "sd", "--tree-total", "0"], &["--tree-total"]),
        (
            &["--method", "sd", "--tree-depth", "4294967295"],
            &["--tree-depth"],
        ),
        (
            &["--method", "sd", "--draft", "chain", "--gamma", "0"],
            &["--gamma"],
        ),
        (
            &["--method", "vvs", "--draft", "chain", "--gamma", "40"],
            &["--gamma"],
        ),
        (&["--method", "sjd", "--window", "0"], &["--window"]),
        (
            &["--method", "sjd", "--window", "4294967295"],
            &["--window"],
        ),
        (&["--method", "lantern", "--delta", "-0.5"], &["--delta"]),
        (
            &["--method", "lantern", "--lantern-k", "0"],
            &["--lantern-k"],
        ),
        (
            &["--method", "lantern", "--lantern-k", "18446744073709551615"],
            &["--lantern-k"],
        ),
        (&["--method", "lantern", "--lambda", "NaN"], &["--lambda"]),
        (
            &["--method", "vvs", "--vvs-interval", "0"],
            &["--vvs-interval"],
        ),
        (
            &["--method", "vvs", "--vvs-threshold", "inf"],
            &["--vvs-threshold"],
        ),
        (
            &["--caption-pad", "18446744073709551615"],
            &["--caption-pad"],
        ),
        (&["--method", "warp"], &["--method"]),
        (&["--bogus"], &["--bogus", "argen generate --help"]),
    ];
    for (extra, needles) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        if !extra.contains(&"--class") {
            args.extend_from_slice(&["--class", "1"]);
        }
        if needles.is_empty() {
            succeeds(&args);
            continue;
        }
        let err = fails_with(&args, needles);
        // No internal parameter names or Debug output.
        for bad in ["`T`", "invalid parameter", "Some(", "InvalidParameter"] {
            assert!(!err.contains(bad), "{args:?}: {err}");
        }
    }
    // bench and decode options.
    fails_with(
        &["bench", "--model", &m, "--prompts", "1000000"],
        &["--prompts"],
    );
    fails_with(&["bench", "--model", &m, "--prompts", "0"], &["--prompts"]);
    fails_with(
        &["bench", "--model", &m, "--seeds", "18446744073709551615"],
        &["--seeds"],
    );
    fails_with(
        &["bench", "--model", &m, "--threads", "100000"],
        &["--threads"],
    );
    fails_with(&["bench", "--model", &m, "--cfg", "-inf"], &["--cfg"]);
    fails_with(
        &["bench", "--model", &m, "--methods", "nope"],
        &["--methods"],
    );
    fails_with(
        &[
            "decode",
            "--model",
            &m,
            "--tokens",
            "x",
            "--threads",
            "100000",
        ],
        &["--threads"],
    );
    // No subcommand, unknown subcommand, missing value.
    fails_with(&[], &["no command"]);
    fails_with(&["paint"], &["paint"]);
    fails_with(&["generate", "--seed"], &["--seed"]);
    // No Debug spelling of internal types.
    let err = fails_with(
        &["generate", "--model", &m, "--prompt", "a red circle"],
        &["c2i"],
    );
    assert!(!err.contains("C2i"), "{err}");
    // A 131 KB prompt is echoed shortened.
    let long = "a red circle ".repeat(10_000);
    let err = fails_with(&["generate", "--prompt", &long, "--quiet"], &["characters"]);
    assert!(err.len() < 600);
    let long_bad = "a purple elephant ".repeat(7_000);
    fails_with(&["score", "--prompt", &long_bad, &o], &[]);
}

#[test]
fn negative_values_parse_the_same_with_and_without_equals() {
    let d = scratch("negative");
    let m = s(&tiny());
    let (a, b) = (s(&d.join("a.json")), s(&d.join("b.json")));
    let (pa, pb) = (s(&d.join("a.png")), s(&d.join("b.png")));
    let common = [
        "generate", "--model", &m, "--class", "2", "--quiet", "--seed", "5",
    ];
    let mut x = common.to_vec();
    x.extend_from_slice(&["--cfg", "-1", "--tokens", &a, "--out", &pa]);
    let mut y = common.to_vec();
    y.extend_from_slice(&["--cfg=-1", "--tokens", &b, "--out", &pb]);
    succeeds(&x);
    succeeds(&y);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn tiny_top_p_keeps_the_top_token() {
    let d = scratch("topp");
    let m = s(&tiny());
    let (a, b) = (s(&d.join("a.json")), s(&d.join("b.json")));
    let (pa, pb) = (s(&d.join("a.png")), s(&d.join("b.png")));
    let common = [
        "generate", "--model", &m, "--class", "4", "--quiet", "--seed", "1",
    ];
    let mut x = common.to_vec();
    x.extend_from_slice(&["--top-p", "1e-12", "--tokens", &a, "--out", &pa]);
    let mut y = common.to_vec();
    y.extend_from_slice(&["--temperature", "0", "--tokens", &b, "--out", &pb]);
    succeeds(&x);
    succeeds(&y);
    // Only the top token survives: the image is the greedy one.
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn hostile_token_and_caption_files() {
    let d = scratch("tokens");
    let m = s(&tiny());
    let o = s(&d.join("o.png"));
    let t = d.join("t.json");
    let ts = s(&t);
    let dec = ["decode", "--model", &m, "--tokens", &ts, "--out", &o];
    let write = |text: &str| std::fs::write(&t, text).unwrap();
    write(&serde_json::to_string(&vec![0u32; 65536]).unwrap());
    fails_with(&dec, &["65536", "1024"]);
    write("[1, 2, 3]");
    fails_with(&dec, &["square grid"]);
    write("[1, -2, 3, 4]");
    fails_with(&dec, &["element 1"]);
    write("[1.5, 2, 3, 4]");
    fails_with(&dec, &["element 0"]);
    write("[4294967296, 2, 3, 4]");
    fails_with(&dec, &["element 0"]);
    write("[1, 2, 3, 99]");
    fails_with(&dec, &["out of range"]);
    write(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    fails_with(&dec, &["JSON"]);
    write("");
    fails_with(&dec, &["JSON"]);
    write("{\"a\": 1}");
    fails_with(&dec, &["JSON array"]);
    let f = std::fs::File::create(&t).unwrap();
    f.set_len(2 << 30).unwrap(); // sparse 2 GB
    fails_with(&dec, &["--tokens", "limit"]);
    std::fs::remove_file(&t).unwrap();
    fails_with(&dec, &["--tokens", "no such file"]);
    std::fs::create_dir(&t).unwrap();
    fails_with(&dec, &["--tokens", "directory"]);
    std::fs::remove_dir(&t).unwrap();
    assert!(Command::new("mkfifo").arg(&t).status().unwrap().success());
    fails_with(&dec, &["--tokens", "not a regular file"]);
    // Captions: the ShapesWorld model is text-conditional (36 × 68 features).
    let sm = s(&shapes_model());
    let c = d.join("caption.f32");
    let cs = s(&c);
    let gen = [
        "generate",
        "--model",
        &sm,
        "--caption",
        &cs,
        "--out",
        &o,
        "--quiet",
    ];
    let f = std::fs::File::create(&c).unwrap();
    f.set_len(2 << 30).unwrap();
    fails_with(&gen, &["--caption", "limit"]);
    std::fs::write(&c, [0u8; 12]).unwrap();
    fails_with(&gen, &["--caption", "12 bytes"]);
    let mut bytes = vec![0u8; 36 * 68 * 4];
    bytes[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&c, &bytes).unwrap();
    fails_with(&gen, &["--caption", "feature 10"]);
    fails_with(
        &[
            "generate",
            "--model",
            &sm,
            "--caption",
            "/proc/argen-nonexistent/c.f32",
            "--quiet",
        ],
        &["--caption", "no such file"],
    );
}

/// A PNG of just a signature and an IHDR claiming `w × h` (no pixel data).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[test]
fn hostile_pngs() {
    let d = scratch("png");
    let p = d.join("x.png");
    let ps = s(&p);
    let score = ["score", "--prompt", "a red circle", &ps];
    for (w, h) in [
        (8192, 8192),
        (u32::MAX, u32::MAX),
        (0, 0),
        (20, 30),
        (64, 65),
    ] {
        std::fs::write(&p, png_header(w, h)).unwrap();
        fails_with(&score, &[&w.to_string(), "square"]);
    }
    std::fs::write(&p, png_header(64, 64)).unwrap();
    fails_with(&score, &["x.png"]);
    std::fs::write(&p, b"GIF89a").unwrap();
    fails_with(&score, &["PNG"]);
    let img = argen_shapes::RgbImage::new(64, 64).to_png();
    std::fs::write(&p, &img[..img.len() - 20]).unwrap();
    fails_with(&score, &["x.png"]);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(1 << 30).unwrap();
    fails_with(&score, &["limit"]);
    std::fs::write(&p, &img).unwrap();
    succeeds(&score);
}

#[test]
fn stdout_on_dev_full_and_closed_pipes() {
    let d = scratch("stdout");
    let m = s(&tiny());
    let img = d.join("scene.png");
    argen_shapes::RgbImage::new(64, 64).save_png(&img).unwrap();
    let is = s(&img);
    let t = d.join("t.json");
    std::fs::write(
        &t,
        serde_json::to_vec(&(0..16).collect::<Vec<u32>>()).unwrap(),
    )
    .unwrap();
    let ts = s(&t);
    let out = d.join("o.png");
    let os = s(&out);
    let cases: Vec<Vec<&str>> = vec![
        vec!["score", "--prompt", "a red circle", &is],
        vec!["score", "--prompt", "a red circle", &is, "--json"],
        vec![
            "generate", "--model", &m, "--class", "1", "--out", &os, "--quiet",
        ],
        vec!["decode", "--model", &m, "--tokens", &ts, "--out", &os],
        vec![
            "bench",
            "--model",
            &m,
            "--quick",
            "--methods",
            "vanilla",
            "--prompts",
            "1",
            "--seeds",
            "1",
        ],
        vec!["generate", "--help"],
    ];
    for args in &cases {
        let _ = std::fs::remove_file(&out);
        let full = run_with(args, Out::DevFull, "");
        if args[0] == "bench" {
            // bench reports progress on stderr; the error is its last line.
            let err = String::from_utf8_lossy(&full.stderr);
            assert_eq!(full.status.code(), Some(1), "{err}");
            let last = err.lines().last().unwrap_or("");
            assert!(
                last.starts_with("argen: error: cannot write to stdout"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        } else {
            fails(&full, args, &["stdout", "No space left on device"]);
        }
        // The failed run wrote no output file.
        assert!(!out.exists(), "{args:?}: output written by a failed run");
        let closed = run_with(args, Out::ClosedPipe, "");
        let err = String::from_utf8_lossy(&closed.stderr);
        assert!(
            closed.status.success(),
            "{args:?}: {:?} {err}",
            closed.status
        );
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
    }
    // stderr on /dev/full: progress is lost, the run is not.
    let bench = &cases[4];
    let quiet = run_with(bench, Out::Piped, "exec 2>/dev/full;");
    assert!(quiet.status.success(), "{:?}", quiet.status);
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("vanilla"));
    no_temps(&d);
}

#[test]
fn a_failed_run_leaves_every_previous_output_byte_for_byte() {
    let d = scratch("atomic");
    let m = s(&tiny());
    let (png, stats, tokens) = (d.join("o.png"), d.join("o.json"), d.join("o.tok.json"));
    let (p, st, tk) = (s(&png), s(&stats), s(&tokens));
    let gen = |seed: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "generate", "--model", &m, "--class", "3", "--seed", seed, "--quiet", "--out", &p,
            "--stats", &st, "--tokens", &tk,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let args1 = gen("1", &[]);
    let a1: Vec<&str> = args1.iter().map(String::as_str).collect();
    succeeds(&a1);
    let before: Vec<Vec<u8>> = [&png, &stats, &tokens]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    // A full file system: no byte may be written (`ulimit -f 0`, SIGXFSZ ignored by argen).
    let args2 = gen("2", &[]);
    let a2: Vec<&str> = args2.iter().map(String::as_str).collect();
    let full = run_with(&a2, Out::Piped, "ulimit -f 0;");
    fails(&full, &a2, &["cannot write", "too large"]);
    let after: Vec<Vec<u8>> = [&png, &stats, &tokens]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(before, after, "ulimit -f: an earlier output changed");
    no_temps(&d);
    // One output on /dev/full: the others are not replaced either.
    let mut a3 = a2.clone();
    let i = a3.iter().position(|x| *x == "--stats").unwrap();
    a3[i + 1] = "/dev/full";
    fails_with(&a3, &["/dev/full"]);
    let after: Vec<Vec<u8>> = [&png, &tokens]
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(after, vec![before[0].clone(), before[2].clone()]);
    no_temps(&d);
    // A run that fails after its work (stdout on /dev/full) replaces nothing.
    let full_out = run_with(&a2, Out::DevFull, "");
    fails(&full_out, &a2, &["stdout"]);
    assert_eq!(std::fs::read(&png).unwrap(), before[0]);
    // Success replaces all three; a symbolic link to the output survives and is followed.
    let link = d.join("link.png");
    std::os::unix::fs::symlink(&png, &link).unwrap();
    let mut a4 = a2.clone();
    let l = s(&link);
    let i = a4.iter().position(|x| *x == "--out").unwrap();
    a4[i + 1] = &l;
    succeeds(&a4);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_ne!(std::fs::read(&png).unwrap(), before[0]);
    no_temps(&d);
    // bench: its JSON report and plots follow the same rule.
    let report = d.join("bench.json");
    let plots = d.join("plots");
    let (rs, ps) = (s(&report), s(&plots));
    let bench = [
        "bench",
        "--model",
        &m,
        "--quick",
        "--methods",
        "sd",
        "--prompts",
        "1",
        "--seeds",
        "2",
        "--json",
        &rs,
        "--plots",
        &ps,
    ];
    succeeds(&bench);
    let report_before = std::fs::read(&report).unwrap();
    let plot_files: Vec<PathBuf> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!plot_files.is_empty());
    let plots_before: Vec<Vec<u8>> = plot_files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let full = run_with(&bench, Out::Piped, "ulimit -f 0;");
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("argen: error: cannot write"),
        "{err}"
    );
    assert_eq!(std::fs::read(&report).unwrap(), report_before);
    let plots_after: Vec<Vec<u8>> = plot_files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(plots_after, plots_before, "ulimit -f: a plot changed");
    no_temps(&d);
    no_temps(&plots);
    let mut to_full = bench.to_vec();
    to_full[12] = "/dev/full";
    let out = run(&to_full);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().last().unwrap().contains("/dev/full"), "{err}");
    assert_eq!(std::fs::read(&report).unwrap(), report_before);
    // A read-only directory: refused before any work.
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&ro, perm).unwrap();
    let probe = ro.join("probe");
    let writable = std::fs::write(&probe, b"").is_ok(); // root ignores permissions
    let _ = std::fs::remove_file(&probe);
    if !writable {
        let r = s(&ro.join("x.png"));
        fails_with(
            &["generate", "--model", &m, "--class", "1", "--out", &r],
            &["cannot create files"],
        );
    }
}

#[test]
fn conflicting_outputs_are_refused_before_any_work() {
    let d = scratch("conflicts");
    let m = tiny();
    let ms = s(&m);
    let x = s(&d.join("x.png"));
    let dotx = format!("{}/./x.png", d.display());
    fails_with(
        &[
            "generate", "--model", &ms, "--class", "1", "--out", &x, "--stats", &x,
        ],
        &["--stats", "--out", "same file"],
    );
    fails_with(
        &[
            "generate", "--model", &ms, "--class", "1", "--out", &x, "--tokens", &dotx,
        ],
        &["same file"],
    );
    let t = d.join("t.json");
    std::fs::write(
        &t,
        serde_json::to_vec(&(0..16).collect::<Vec<u32>>()).unwrap(),
    )
    .unwrap();
    let ts = s(&t);
    let before = std::fs::read(&t).unwrap();
    fails_with(
        &["decode", "--model", &ms, "--tokens", &ts, "--out", &ts],
        &["--out", "input --tokens"],
    );
    assert_eq!(std::fs::read(&t).unwrap(), before);
    // A hard link to the input is the input.
    let hard = d.join("hard.json");
    std::fs::hard_link(&t, &hard).unwrap();
    fails_with(
        &[
            "decode",
            "--model",
            &ms,
            "--tokens",
            &ts,
            "--out",
            &s(&hard),
        ],
        &["input --tokens"],
    );
    // Writing over a model file.
    let copy = model_copy(&d);
    let cs = s(&copy);
    let target = s(&copy.join("gpt.safetensors"));
    fails_with(
        &["generate", "--model", &cs, "--class", "1", "--out", &target],
        &["model file gpt.safetensors"],
    );
    fails_with(
        &["bench", "--model", &cs, "--json", &s(&copy.join("vq.json"))],
        &["model file vq.json"],
    );
    fails_with(
        &["generate", "--model", &ms, "--class", "1", "--out", &s(&d)],
        &["directory"],
    );
    // A FIFO nobody reads: an error, not a hang.
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails_with(
        &[
            "generate",
            "--model",
            &ms,
            "--class",
            "1",
            "--quiet",
            "--out",
            &x,
            "--stats",
            &s(&fifo),
        ],
        &["FIFO"],
    );
    assert!(!d.join("x.png").exists());
    fails_with(
        &[
            "generate",
            "--model",
            &ms,
            "--class",
            "1",
            "--out",
            "/proc/argen-nonexistent/x.png",
        ],
        &["does not exist"],
    );
    no_temps(&d);
}
