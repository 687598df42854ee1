//! `argen generate --trace`, `argen replay` and `argen trace show`: every method records and
//! replays identically on 1 and 2 threads; a mutated step, a mutated stat and a different model
//! are reported precisely with exit status 1; truncated and corrupt run files give one-line
//! errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use argen_core::trace::Crc32;

fn argen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argen"))
        .args(args)
        .output()
        .expect("run argen")
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../")
        .join(rel)
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argen-replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Records `method` on the tiny class-conditional model; returns the run file.
fn record(method: &str, extra: &[&str]) -> PathBuf {
    let run = tmp(&format!("{method}.argrun"));
    let png = tmp(&format!("{method}.png"));
    let (r, p, m) = (
        run.display().to_string(),
        png.display().to_string(),
        fixture("fixtures/model/tiny"),
    );
    let mut args = vec![
        "generate",
        "--model",
        &m,
        "--class",
        "3",
        "--method",
        method,
        "--seed",
        "5",
        "--out",
        &p,
        "--trace",
        &r,
        "--quiet",
        "--tree-total",
        "10",
        "--tree-depth",
        "3",
        "--tree-top-k",
        "3",
        "--n",
        "3",
    ];
    args.extend_from_slice(extra);
    let out = argen(&args);
    assert!(out.status.success(), "{method}: {}", text(&out));
    run
}

fn replay(run: &Path, extra: &[&str]) -> Output {
    let r = run.display().to_string();
    let mut args = vec!["replay", &r, "--quiet"];
    args.extend_from_slice(extra);
    argen(&args)
}

#[test]
fn every_method_replays_identically_on_one_and_two_threads() {
    for method in [
        "vanilla", "sd", "lantern", "gsd", "vvs", "sjd", "bon", "gridar",
    ] {
        let run = record(method, &[]);
        for threads in ["1", "2"] {
            let out = replay(&run, &["--threads", threads]);
            assert!(out.status.success(), "{method}: {}", text(&out));
            assert!(
                text(&out).starts_with("identical"),
                "{method}: {}",
                text(&out)
            );
        }
    }
    // Best-of-N over speculative candidates (batched forwards) too.
    let run = record("bon", &["--inner", "sd"]);
    let out = replay(&run, &["--threads", "2"]);
    assert!(text(&out).starts_with("identical"), "{}", text(&out));
}

#[test]
fn text_conditional_runs_replay_with_the_judge() {
    let run = tmp("shapes.argrun");
    let png = tmp("shapes.png");
    let (r, p) = (run.display().to_string(), png.display().to_string());
    let out = argen(&[
        "generate",
        "--prompt",
        "a red circle left of a blue square",
        "--method",
        "gridar",
        "--n",
        "2",
        "--seed",
        "1",
        "--out",
        &p,
        "--trace",
        &r,
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = replay(&run, &["--threads", "1"]);
    assert!(text(&out).starts_with("identical"), "{}", text(&out));
    let show = argen(&["trace", "show", &r]);
    assert!(show.status.success());
    let s = text(&show);
    assert!(s.contains("a red circle left of a blue square"), "{s}");
    assert!(s.contains("| step | action |"), "{s}");
    let json = argen(&["trace", "show", &r, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["run"]["config"]["scaling"]["gridar"]["n"], 2, "{v}");
    assert!(v["trace"]["records"].as_array().unwrap().len() > 10);
}

/// Offsets in a run file: (start of the trace, start of its records, start of its footer).
fn layout(bytes: &[u8]) -> (usize, usize, usize) {
    let meta = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
    let trace = 14 + meta;
    let name = bytes[trace + 36] as usize;
    let records = trace + 37 + name;
    let mut at = records;
    while bytes[at] != 0xFF {
        at += 40;
    }
    (trace, records, at)
}

fn fix_checksum(bytes: &mut [u8], trace: usize) {
    let n = bytes.len();
    let mut crc = Crc32::new();
    crc.update(&bytes[trace..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.value().to_le_bytes());
}

#[test]
fn a_mutated_step_stat_or_model_is_reported_with_exit_1() {
    let run = record("sd", &[]);
    let good = std::fs::read(&run).unwrap();
    let (trace, records, footer) = layout(&good);

    // One decided token changed at step 3: its committed-token digest differs.
    let mut bad = good.clone();
    bad[records + 3 * 40 + 32] ^= 0x01;
    fix_checksum(&mut bad, trace);
    let f = tmp("mutated-step.argrun");
    std::fs::write(&f, &bad).unwrap();
    let out = replay(&f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("diverged at step 3: committed token digest differs"),
        "{}",
        text(&out)
    );

    // A final token changed: reported in the footer, with the tokens around it.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 8] ^= 0x01; // the last final token
    fix_checksum(&mut bad, trace);
    std::fs::write(&f, &bad).unwrap();
    let out = replay(&f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("diverged at footer: final token"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("first differing token"),
        "{}",
        text(&out)
    );

    // A stat changed (target forwards).
    let mut bad = good.clone();
    bad[footer + 8 + 4] ^= 0x01;
    fix_checksum(&mut bad, trace);
    std::fs::write(&f, &bad).unwrap();
    let out = replay(&f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("diverged at footer: stats.target_forwards differs"),
        "{}",
        text(&out)
    );

    // A different model (one weight byte changed): reported before replaying.
    let dir = tmp("model-copy");
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(fixture("fixtures/model/tiny")).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let w = dir.join("gpt.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&w, &bytes).unwrap();
    let d = dir.display().to_string();
    let out = replay(&run, &["--model", &d]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("model differs"), "{}", text(&out));
}

#[test]
fn truncated_and_corrupt_run_files_give_one_line_errors() {
    let run = record("vanilla", &[]);
    let good = std::fs::read(&run).unwrap();
    let f = tmp("broken.argrun");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated header", good[..10].to_vec()),
        ("truncated metadata", good[..40].to_vec()),
        ("truncated trace", good[..good.len() - 20].to_vec()),
        (
            "not a run file",
            b"hello, world, this is not a run".to_vec(),
        ),
        ("flipped byte", {
            let mut b = good.clone();
            let i = b.len() - 30;
            b[i] ^= 0x10;
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&f, &bytes).unwrap();
        for cmd in [&["replay"][..], &["trace", "show"][..]] {
            let fs = f.display().to_string();
            let mut args = cmd.to_vec();
            args.push(&fs);
            let out = argen(&args);
            assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with("argen: error: ") && err.lines().count() == 1,
                "{what} ({cmd:?}): {err:?}"
            );
        }
    }
}
