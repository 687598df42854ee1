//! End-to-end tests of the `argen` binary on a tiny random checkpoint (fixtures/model/tiny,
//! made by tools/make_tiny_model.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn argen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argen"))
        .args(args)
        .output()
        .expect("run argen")
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/model/tiny")
        .display()
        .to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argen-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const METHODS: [&str; 8] = [
    "vanilla", "sd", "lantern", "gsd", "vvs", "sjd", "bon", "gridar",
];
const SMALL_TREE: [&str; 8] = [
    "--tree-total",
    "10",
    "--tree-depth",
    "3",
    "--tree-top-k",
    "3",
    "--n",
    "3",
];

fn generate(
    method: &str,
    seed: &str,
    threads: &str,
    tag: &str,
) -> (Vec<u8>, serde_json::Value, String) {
    let mut args = vec![
        "--class",
        "3",
        "--method",
        method,
        "--seed",
        seed,
        "--threads",
        threads,
    ];
    args.extend_from_slice(&SMALL_TREE);
    generate_with(&args, tag)
}

/// `argen generate` on the tiny model with `extra` flags; returns the PNG, the stats and the
/// tokens.
fn generate_with(extra: &[&str], tag: &str) -> (Vec<u8>, serde_json::Value, String) {
    let (png, stats, tokens) = (
        tmp(&format!("{tag}.png")),
        tmp(&format!("{tag}.json")),
        tmp(&format!("{tag}.tok.json")),
    );
    let (m, p, s, t) = (
        model(),
        png.display().to_string(),
        stats.display().to_string(),
        tokens.display().to_string(),
    );
    let mut args = vec![
        "generate", "--model", &m, "--out", &p, "--stats", &s, "--tokens", &t, "--quiet",
    ];
    args.extend_from_slice(extra);
    let out = argen(&args);
    assert!(
        out.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(
        &png_bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{extra:?}: not a PNG"
    );
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (png_bytes, stats, std::fs::read_to_string(&tokens).unwrap())
}

#[test]
fn every_method_writes_a_png_stats_and_tokens() {
    for method in METHODS {
        let (_, stats, tokens) = generate(method, "4", "1", &format!("all-{method}"));
        assert_eq!(stats["method"], method);
        for key in [
            "seed",
            "tokens",
            "target_forwards",
            "draft_forwards",
            "tokens_per_target_forward",
            "mean_accepted_length",
            "wall_seconds",
        ] {
            assert!(stats.get(key).is_some(), "{method}: stats lack {key}");
        }
        // The tiny fixture is f32: the exact kernels ran.
        assert_eq!(stats["kernels"], "exact", "{method}");
        let ids: Vec<u32> = serde_json::from_str(&tokens).unwrap();
        assert_eq!(ids.len(), 16, "{method}");
        assert!(stats["tokens_per_target_forward"].as_f64().unwrap() >= 1.0);
        assert_eq!(stats["image"]["width"], 8);
    }
}

#[test]
fn same_seed_gives_identical_output_on_one_and_two_threads() {
    for method in METHODS {
        let (png1, mut s1, t1) = generate(method, "9", "1", &format!("d1-{method}"));
        let (png2, mut s2, t2) = generate(method, "9", "2", &format!("d2-{method}"));
        assert_eq!(png1, png2, "{method}: PNG differs");
        assert_eq!(t1, t2, "{method}: tokens differ");
        s1["wall_seconds"] = 0.into();
        s2["wall_seconds"] = 0.into();
        assert_eq!(s1, s2, "{method}: stats differ");
    }
    let (_, _, a) = generate("vanilla", "1", "1", "seed-a");
    let (_, _, b) = generate("vanilla", "2", "1", "seed-b");
    assert_ne!(a, b, "different seeds should give different images");
}

#[test]
fn coupled_sd_reproduces_vanilla() {
    let (m, _) = (model(), ());
    let tok = |method: &str, extra: &[&str]| {
        let t = tmp(&format!("c-{method}.json"));
        let ts = t.display().to_string();
        let png = tmp("c.png").display().to_string();
        let mut args = vec![
            "generate", "--model", &m, "--class", "5", "--method", method, "--seed", "11",
            "--tokens", &ts, "--out", &png, "--quiet",
        ];
        args.extend_from_slice(extra);
        assert!(argen(&args).status.success());
        std::fs::read_to_string(t).unwrap()
    };
    assert_eq!(tok("vanilla", &[]), tok("sd", &["--criterion", "coupled"]));
}

fn fails_with(args: &[&str], needle: &str) {
    let out = argen(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(needle),
        "{args:?}: stderr {err:?} lacks {needle:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-line error expected: {err}"
    );
}

#[test]
fn bad_input_gives_one_line_errors() {
    let m = model();
    fails_with(
        &["generate", "--model", "/nonexistent/model", "--class", "1"],
        "does not exist",
    );
    fails_with(&["generate", "--model", &m], "give --class");
    fails_with(
        &["generate", "--model", &m, "--class", "10"],
        "out of range",
    );
    fails_with(
        &[
            "generate",
            "--model",
            &m,
            "--class",
            "1",
            "--out",
            "/proc/argen-nonexistent/x.png",
        ],
        "does not exist",
    );
    fails_with(
        &["generate", "--model", &m, "--class", "1", "--top-p", "1.5"],
        "--top-p",
    );
    fails_with(
        &[
            "generate",
            "--model",
            &m,
            "--class",
            "1",
            "--temperature=-1",
        ],
        "temperature",
    );
    fails_with(
        &[
            "generate", "--model", &m, "--class", "1", "--method", "bon", "--n", "99",
        ],
        "--n",
    );
    // A directory with a truncated checkpoint.
    let dir = tmp("broken-model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "gpt.json",
        "vq.json",
        "vq.safetensors",
        "drafter.safetensors",
    ] {
        std::fs::copy(Path::new(&m).join(f), dir.join(f)).unwrap();
    }
    let full = std::fs::read(Path::new(&m).join("gpt.safetensors")).unwrap();
    std::fs::write(dir.join("gpt.safetensors"), &full[..full.len() / 2]).unwrap();
    let d = dir.display().to_string();
    fails_with(
        &["generate", "--model", &d, "--class", "1"],
        "gpt.safetensors",
    );
    // decode: bad token files.
    let bad = tmp("bad-tokens.json");
    std::fs::write(&bad, "[1, 2, 3]").unwrap();
    let b = bad.display().to_string();
    fails_with(&["decode", "--model", &m, "--tokens", &b], "square grid");
    std::fs::write(&bad, "[1, 2, 3, 99]").unwrap();
    fails_with(&["decode", "--model", &m, "--tokens", &b], "out of range");
    std::fs::write(&bad, "{\"a\": 1}").unwrap();
    fails_with(&["decode", "--model", &m, "--tokens", &b], "JSON array");
}

#[test]
fn decode_round_trips_generated_tokens() {
    let (png, _, tokens) = generate("vanilla", "3", "1", "rt");
    let tf = tmp("rt-in.json");
    std::fs::write(&tf, tokens).unwrap();
    let out = tmp("rt-out.png");
    let (m, t, o) = (model(), tf.display().to_string(), out.display().to_string());
    let r = argen(&["decode", "--model", &m, "--tokens", &t, "--out", &o]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(out).unwrap(), png);
}

#[test]
fn score_judges_a_rendered_scene_per_category() {
    use argen_shapes::generate::PromptStyle;
    use argen_shapes::{render, GenConfig, Prompt, Scene};
    let scene = Scene::generate(12345, &GenConfig::default()).unwrap();
    let img = render(&scene);
    let path = tmp("scene.png");
    img.save_png(&path).unwrap();
    let p = path.display().to_string();
    let truth = Prompt::from_scene(&scene, PromptStyle::Full, 0)
        .unwrap()
        .to_string();
    let out = argen(&["score", "--prompt", &truth, &p, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["aligned"], true, "{truth}: {v}");
    assert_eq!(v["objects"].as_u64().unwrap() as usize, scene.objects.len());
    // A prompt with one object too many is not aligned on count.
    let wrong = if scene.objects.len() == 3 {
        "a red circle"
    } else {
        "three blue squares"
    };
    let out = argen(&["score", "--prompt", wrong, &p, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], false, "{wrong}: {v}");
    let table = argen(&["score", "--prompt", &truth, &p]);
    let text = String::from_utf8_lossy(&table.stdout);
    for cat in ["count", "shape", "colour", "spatial", "layout", "aligned"] {
        assert!(text.contains(cat), "{text}");
    }
}

#[test]
fn score_and_prompt_errors_are_clear() {
    let not_png = tmp("not.png");
    std::fs::write(&not_png, b"hello").unwrap();
    let np = not_png.display().to_string();
    fails_with(&["score", "--prompt", "a red circle", &np], "PNG");
    let small = tmp("small.png");
    argen_shapes::RgbImage::new(20, 30)
        .save_png(&small)
        .unwrap();
    let sp = small.display().to_string();
    fails_with(&["score", "--prompt", "a red circle", &sp], "20");
    let good = tmp("good.png");
    argen_shapes::RgbImage::new(64, 64).save_png(&good).unwrap();
    let gp = good.display().to_string();
    let out = argen(&["score", "--prompt", "a purple elephant", &gp]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("elephant") && err.contains("circle"),
        "grammar not shown: {err}"
    );
    let m = model();
    fails_with(
        &["generate", "--model", &m, "--prompt", "a red circle"],
        "ShapesWorld model",
    );
}

/// `--device cuda` on a machine without a GPU (this machine, CI): a one-line error that says
/// what is missing, before any model is read. On a machine with a GPU the error names the device
/// (the CUDA model runtime is not implemented yet). Either way: no panic, one line, exit 1.
#[test]
fn device_cuda_without_a_gpu_is_a_one_line_error() {
    let m = model();
    let out = tmp("cuda.png");
    let o = out.to_str().unwrap();
    if argen_cuda::probe(0).is_ok() {
        // With a GPU the CUDA runtime runs; tests/gpu_parity.rs in argen-cuda checks it.
        eprintln!("SKIPPED cli::device_cuda_without_a_gpu_is_a_one_line_error: a GPU is present");
        return;
    }
    for args in [
        vec![
            "generate", "--model", &m, "--class", "1", "--out", o, "--device", "cuda",
        ],
        vec!["bench", "--model", &m, "--quick", "--device", "cuda"],
    ] {
        fails_with(&args, "--device cuda: ");
        let err = String::from_utf8_lossy(&argen(&args).stderr).to_string();
        let names_the_gap = err.contains("not found")
            || err.contains("no CUDA device")
            || err.contains("CUDA device");
        assert!(names_the_gap, "{args:?}: {err}");
        assert!(err.contains("use --device cpu"), "{err}");
    }
    // An unknown device is clap's usage error, not a panic.
    let bad = argen(&["generate", "--model", &m, "--out", o, "--device", "tpu"]);
    assert!(!bad.status.success());
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("panicked"));
}

#[test]
fn gridar_reformulates_unless_told_not_to() {
    let run = |extra: &[&str], tag: &str| {
        let stats = tmp(&format!("{tag}.json"));
        let (png, s) = (
            tmp(&format!("{tag}.png")).display().to_string(),
            stats.display().to_string(),
        );
        let mut args = vec![
            "generate",
            "--prompt",
            "a red circle left of a blue square",
            "--method",
            "gridar",
            "--n",
            "2",
            "--quiet",
            "--out",
            &png,
            "--stats",
            &s,
        ];
        args.extend_from_slice(extra);
        let out = argen(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        v
    };
    let with = run(&[], "gridar-reform");
    let without = run(&["--no-reformulate"], "gridar-keep");
    assert_eq!(with["config"]["scaling"]["gridar"]["reformulate"], true);
    assert_eq!(with["reformulations"], 4, "2 candidates × 2 pruning points");
    assert_eq!(without["config"]["scaling"]["gridar"]["reformulate"], false);
    assert_eq!(without["reformulations"], 0);
    // Three-way guidance computes 3 rows per input after the first cut, two-way 2.
    assert!(with["target_rows"].as_u64() > without["target_rows"].as_u64());
    assert_eq!(
        without["tokens"], 128,
        "2 candidates × 64 tokens, as Best-of-2"
    );
}

#[test]
fn inner_methods_run_as_best_of_n_candidates() {
    let generate_with = |extra: &[&str], tag: &str| {
        let mut args = vec!["--class", "4", "--seed", "5"];
        args.extend_from_slice(extra);
        let (_, stats, tokens) = generate_with(&args, tag);
        (stats, tokens)
    };
    let bon = ["--method", "bon", "--n", "2"];
    let (vanilla, vanilla_tokens) = generate_with(&bon, "bon-vanilla");
    assert_eq!(vanilla["inner"], "vanilla");
    assert_eq!(vanilla["config"]["method"], "vanilla");
    assert_eq!(vanilla["config"]["scaling"]["best_of_n"]["n"], 2);
    assert_eq!(vanilla["draft_forwards"], 0);
    // Coupled speculative candidates are vanilla's token for token, so the chosen image is too.
    let mut coupled = bon.to_vec();
    coupled.extend(["--inner", "sd", "--criterion", "coupled"]);
    coupled.extend(&SMALL_TREE[..6]);
    let (sd, sd_tokens) = generate_with(&coupled, "bon-sd-coupled");
    assert_eq!(sd_tokens, vanilla_tokens);
    assert_eq!(sd["method"], "bon");
    assert_eq!(sd["inner"], "sd");
    let spec = &sd["config"]["method"]["speculative"];
    assert_eq!(spec["criterion"], "coupled");
    assert_eq!(spec["shape"]["tree"]["total"], 10);
    assert!(sd["draft_forwards"].as_u64().unwrap() > 0);
    assert_eq!(sd["tokens"], vanilla["tokens"]);
    assert_eq!(sd["scorer_calls"], 2);
    // LANTERN candidates: k is capped at the vocabulary − 1 in the recorded configuration.
    let mut lantern = bon.to_vec();
    lantern.extend(["--inner", "lantern", "--delta", "0.3"]);
    lantern.extend(&SMALL_TREE[..6]);
    let (l, _) = generate_with(&lantern, "bon-lantern");
    let c = &l["config"]["method"]["speculative"]["criterion"]["lantern"];
    assert_eq!(c["delta"].as_f64(), Some(0.3f32 as f64));
    assert!(c["k"].as_u64().unwrap() < 1000);
    assert_eq!(l["tokens"], 2 * 16);
    // GridAR over vanilla names its inner method too.
    let (g, _) = generate_with(
        &["--method", "gridar", "--n", "2", "--inner", "vanilla"],
        "gridar-inner",
    );
    assert_eq!(g["inner"], "vanilla");
    assert_eq!(g["config"]["scaling"]["gridar"]["n"], 2);
    let (single, _) = generate_with(&["--method", "sjd", "--window", "4"], "sjd-config");
    assert_eq!(single["inner"], serde_json::Value::Null);
    assert_eq!(single["config"]["method"]["jacobi"]["window"], 4);
    assert_eq!(single["config"]["scaling"], serde_json::Value::Null);
}

#[test]
fn unsupported_inner_combinations_are_one_line_errors() {
    let m = model();
    let g = |extra: &[&str], needle: &str| {
        let mut args = vec!["generate", "--model", &m, "--class", "1"];
        args.extend_from_slice(extra);
        fails_with(&args, needle);
        fails_with(&args, "hint: ");
    };
    g(&["--method", "gridar", "--inner", "sjd"], "restartable");
    g(
        &["--method", "gridar", "--inner", "sjd"],
        "--method bon --inner sjd",
    );
    g(
        &["--method", "sd", "--inner", "lantern"],
        "--inner lantern applies to --method bon and gridar",
    );
    g(
        &["--method", "bon", "--inner", "gridar"],
        "single-image methods",
    );
}

/// `--lantern-metric raw|normalised` picks LANTERN's neighbour metric (default normalised) and
/// the stats record it; anything else is a one-line usage error.
#[test]
fn lantern_metric_is_chosen_and_recorded() {
    let m = model();
    for (flag, want) in [
        (Some("raw"), "raw"),
        (Some("normalised"), "normalised"),
        (None, "normalised"),
    ] {
        let tag = format!("metric-{want}-{}", flag.is_some());
        let (png, stats) = (tmp(&format!("{tag}.png")), tmp(&format!("{tag}.json")));
        let (p, s) = (png.display().to_string(), stats.display().to_string());
        let mut args = vec![
            "generate", "--model", &m, "--class", "3", "--method", "lantern", "--seed", "4",
            "--out", &p, "--stats", &s, "--quiet",
        ];
        args.extend_from_slice(&SMALL_TREE);
        if let Some(f) = flag {
            args.extend_from_slice(&["--lantern-metric", f]);
        }
        let out = argen(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        let lantern = &v["config"]["method"]["speculative"]["criterion"]["lantern"];
        assert_eq!(lantern["metric"], want, "{flag:?}");
    }
    let out = argen(&[
        "generate",
        "--model",
        &m,
        "--class",
        "3",
        "--method",
        "lantern",
        "--lantern-metric",
        "cosine",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("raw") && err.contains("normalised"), "{err}");
}

#[test]
fn fast_kernels_flag_on_an_f32_model_keeps_the_exact_class_and_tokens() {
    // The fast classes only cover bf16 weights; the tiny fixture is f32, so `--fast-kernels`
    // must leave the tokens unchanged and the stats must say the exact kernels ran.
    let (_, plain, tokens) = generate("vanilla", "5", "1", "fast-off");
    let (png, stats, toks) = (
        tmp("fast-on.png"),
        tmp("fast-on.json"),
        tmp("fast-on.tok.json"),
    );
    let (m, p, s, t) = (
        model(),
        png.display().to_string(),
        stats.display().to_string(),
        toks.display().to_string(),
    );
    let out = argen(&[
        "generate",
        "--model",
        &m,
        "--class",
        "3",
        "--method",
        "vanilla",
        "--seed",
        "5",
        "--threads",
        "1",
        "--out",
        &p,
        "--stats",
        &s,
        "--tokens",
        &t,
        "--quiet",
        "--fast-kernels",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fast: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(fast["kernels"], "exact");
    assert_eq!(plain["kernels"], "exact");
    assert_eq!(std::fs::read_to_string(&toks).unwrap(), tokens);
}

/// A copy of the tiny model in a fresh directory, with `profile` (JSON of a `CostProfile`) as its
/// `cost-profile.json` when given.
fn tiny_copy(tag: &str, profile: Option<&str>) -> String {
    let dir = tmp(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(model()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    if let Some(p) = profile {
        let file = format!(
            r#"{{"version": 1, "cpu": "test", "device": "cpu", "kernels": "exact", "threads": 1,
                "dtype": "f32", "context": 8, "profile": {p}}}"#
        );
        std::fs::write(dir.join("cost-profile.json"), file).unwrap();
    }
    dir.display().to_string()
}

/// A profile whose drafter costs far more than the target (auto never drafts) and one whose
/// drafter is nearly free next to a flat target (auto drafts as deep as allowed).
const NEVER: &str = r#"{"target": [[2, 1000], [64, 32000]], "drafter": [[1, 1000000000]]}"#;
const DEEP: &str = r#"{"target": [[2, 1000000000], [64, 1000000000]], "drafter": [[1, 1]]}"#;

/// A profile measured on another processor or thread count still drives `--draft auto` (the
/// run is deterministic given it), with a warning that names the difference and the command
/// that measures this machine.
#[test]
fn draft_auto_warns_about_a_profile_from_another_machine() {
    let dir = tiny_copy("auto-elsewhere", Some(NEVER));
    let png = tmp("auto-elsewhere.png").display().to_string();
    let run = |threads: &str| {
        let out = argen(&[
            "generate",
            "--model",
            &dir,
            "--class",
            "2",
            "--method",
            "sd",
            "--draft",
            "auto",
            "--threads",
            threads,
            "--out",
            &png,
            "--quiet",
        ]);
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{e}");
        e
    };
    let e = run("1");
    assert!(
        e.contains("warning:")
            && e.contains("cost-profile.json was measured on test (this processor: ")
            && e.contains("argen calibrate --model"),
        "{e}"
    );
    // Measured with 1 thread: a 2-thread run says that too.
    let e = run("2");
    assert!(e.contains("measured with 1 threads (this run: 2)"), "{e}");
}

#[test]
fn draft_auto_reads_the_model_directory_profile() {
    // Without a profile: one line naming the file and the command that writes it.
    let bare = tiny_copy("auto-bare", None);
    fails_with(
        &[
            "generate",
            "--model",
            &bare,
            "--class",
            "3",
            "--method",
            "sd",
            "--draft",
            "auto",
            "--out",
            &tmp("auto-bare.png").display().to_string(),
        ],
        "argen calibrate --model",
    );
    fails_with(
        &[
            "generate",
            "--model",
            &bare,
            "--class",
            "3",
            "--method",
            "vvs",
            "--draft",
            "auto",
            "--out",
            &tmp("auto-vvs.png").display().to_string(),
        ],
        "not available for --method vvs",
    );
    let run = |dir: &str, method: &str, extra: &[&str], tag: &str| {
        let (png, stats, tokens) = (
            tmp(&format!("{tag}.png")).display().to_string(),
            tmp(&format!("{tag}.json")).display().to_string(),
            tmp(&format!("{tag}.tok.json")).display().to_string(),
        );
        let mut args = vec![
            "generate", "--model", dir, "--class", "5", "--method", method, "--seed", "11",
            "--out", &png, "--stats", &stats, "--tokens", &tokens, "--quiet",
        ];
        args.extend_from_slice(extra);
        let out = argen(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        (s, std::fs::read_to_string(&tokens).unwrap())
    };
    let (_, vanilla) = run(&bare, "vanilla", &[], "auto-vanilla");
    let coupled = ["--criterion", "coupled", "--draft", "auto", "--gamma", "3"];
    let never = tiny_copy("auto-never", Some(NEVER));
    let (s, t) = run(&never, "sd", &coupled, "auto-never");
    assert_eq!(t, vanilla, "coupled auto equals vanilla");
    assert_eq!(s["draft_forwards"], 0, "{s}");
    // The profile rules drafting out before the run: the plain decoder ran (no speculative
    // steps counted), under the auto configuration.
    assert_eq!(s["draft_depth_hist"][0], 0, "decoded as vanilla: {s}");
    assert_eq!(s["target_forwards"], 16, "{s}");
    assert!(s["config"]["method"]["auto_speculative"].is_object(), "{s}");
    let deep = tiny_copy("auto-deep", Some(DEEP));
    let (s, t) = run(&deep, "sd", &coupled, "auto-deep");
    assert_eq!(t, vanilla, "coupled auto equals vanilla");
    assert!(s["draft_depth_hist"][3].as_u64().unwrap() > 0, "{s}");
    assert!(s["mean_draft_depth"].as_f64().unwrap() > 1.0, "{s}");
    assert_eq!(
        s["config"]["method"]["auto_speculative"]["profile"]["drafter"][0][1],
        1
    );
    // Trees and candidates of Best-of-N take the profile too.
    let (_, t) = run(
        &deep,
        "sd",
        &[
            "--criterion",
            "coupled",
            "--draft",
            "auto-tree",
            "--tree-total",
            "10",
            "--tree-depth",
            "3",
            "--tree-top-k",
            "3",
        ],
        "auto-deep-tree",
    );
    assert_eq!(t, vanilla);
    run(
        &deep,
        "bon",
        &["--inner", "lantern", "--draft", "auto", "--n", "2"],
        "auto-bon",
    );
}

#[test]
fn draft_auto_replays_with_the_recorded_profile() {
    let dir = tiny_copy("auto-replay", Some(DEEP));
    let trace = tmp("auto.argrun").display().to_string();
    let png = tmp("auto-replay.png").display().to_string();
    let out = argen(&[
        "generate", "--model", &dir, "--class", "2", "--method", "sd", "--draft", "auto", "--seed",
        "5", "--out", &png, "--trace", &trace, "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Today's file says something else: the replay still runs the recorded profile.
    std::fs::write(
        Path::new(&dir).join("cost-profile.json"),
        format!(
            r#"{{"version": 1, "cpu": "test", "device": "cpu", "kernels": "exact", "threads": 1,
                "dtype": "f32", "context": 8, "profile": {NEVER}}}"#
        ),
    )
    .unwrap();
    let out = argen(&["replay", &trace, "--quiet"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("identical"));
}

/// `argen calibrate --kernels` tunes the CPU kernels and records the tuning in the profile;
/// `argen generate` applies it on this CPU and writes the same bits as without it; a malformed
/// recorded tuning is a warning that names it, never a failure.
#[test]
fn calibrate_kernels_records_a_tuning_that_keeps_the_bits() {
    let dir = tiny_copy("kernels", None);
    let bare = tiny_copy("kernels-bare", None);
    let out = argen(&[
        "calibrate",
        "--kernels",
        "--model",
        &dir,
        "--threads",
        "1",
        "--rows",
        "1,2",
        "--budget",
        "0.05",
    ]);
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("tuning the kernels") && e.contains("kernels tuned"),
        "{e}"
    );
    let path = Path::new(&dir).join("cost-profile.json");
    let mut f: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let spec = f["kernel_tuning"]
        .as_str()
        .expect("a recorded tuning")
        .to_string();
    assert!(
        spec.contains("pf_packed_bytes=") && spec.contains("tasks_per_thread="),
        "{spec}"
    );
    let run = |d: &str, tag: &str| {
        let (png, tokens) = (
            tmp(&format!("{tag}.png")).display().to_string(),
            tmp(&format!("{tag}.tok.json")).display().to_string(),
        );
        let out = argen(&[
            "generate",
            "--model",
            d,
            "--class",
            "4",
            "--method",
            "sd",
            "--seed",
            "5",
            "--threads",
            "2",
            "--out",
            &png,
            "--tokens",
            &tokens,
            "--quiet",
        ]);
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{e}");
        (
            std::fs::read(&png).unwrap(),
            std::fs::read_to_string(&tokens).unwrap(),
            e,
        )
    };
    let (png_t, tok_t, e) = run(&dir, "kernels-tuned");
    assert!(!e.contains("warning"), "{e}");
    let (png_b, tok_b, _) = run(&bare, "kernels-bare");
    assert_eq!(tok_t, tok_b);
    assert_eq!(png_t, png_b);
    // A malformed tuning recorded for this CPU: a warning, and the same image.
    f["kernel_tuning"] = serde_json::Value::String("no_such_key=1".into());
    std::fs::write(&path, serde_json::to_vec(&f).unwrap()).unwrap();
    let (png_m, _, e) = run(&dir, "kernels-malformed");
    assert!(
        e.contains("warning:") && e.contains("unknown kernel tuning key \"no_such_key\""),
        "{e}"
    );
    assert_eq!(png_m, png_b);
    fails_with(
        &[
            "calibrate",
            "--kernels",
            "--device",
            "cuda",
            "--model",
            &dir,
        ],
        "--kernels tunes the CPU kernels: it needs --device cpu",
    );
}
