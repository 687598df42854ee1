//! End-to-end tests of `argen bench` on the tiny random checkpoint (fixtures/model/tiny): the
//! JSON's shape and sanity (every family present, no NaN, counts that add up), reproducibility
//! against `argen generate`, the Coupled contract, the plots and the error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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
    let dir = std::env::temp_dir().join(format!("argen-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const FAMILIES: [&str; 9] = [
    "vanilla", "sd", "coupled", "lantern", "vvs", "sjd", "gsd", "bon", "gridar",
];

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {}", v["name"]))
}

/// Checks the JSON of a bench run for shape and sanity; returns the rows.
fn check_report(r: &Value, prompts: usize, seeds: u64) -> Vec<Value> {
    assert_eq!(r["version"], 1);
    assert_eq!(r["seeds"].as_u64(), Some(seeds));
    assert_eq!(r["prompts"].as_array().unwrap().len(), prompts);
    assert!(r["machine"]["cpu"].is_string());
    assert!(r["machine"]["cpu_kernel_settings"].is_string());
    assert!(num(r, "threads") >= 1.0);
    let rows = r["rows"].as_array().unwrap().clone();
    let image_tokens = r["model"]["image_tokens"].as_u64().unwrap();
    let images = prompts as u64 * seeds;
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        assert_eq!(row["images"].as_u64(), Some(images), "{name}");
        for key in [
            "tokens",
            "target_forwards",
            "target_rows",
            "prefills",
            "draft_forwards",
            "draft_rows",
            "verify_steps",
            "skipped_steps",
            "verifier_calls",
            "tokens_per_target_forward",
            "mean_accepted_length",
            "wall_seconds",
            "wall_per_image",
        ] {
            let x = num(row, key);
            assert!(x.is_finite() && x >= 0.0, "{name}: {key} = {x}");
        }
        let (tokens, fwd, rows_) = (
            num(row, "tokens"),
            num(row, "target_forwards"),
            num(row, "target_rows"),
        );
        // Counts add up.
        let n = match row["method"].as_str().unwrap() {
            "bon" | "gridar" => row["sweep"].as_f64().unwrap(),
            _ => 1.0,
        };
        assert_eq!(
            tokens,
            (images * image_tokens) as f64 * n,
            "{name}: every candidate is a full image"
        );
        assert!(fwd >= 1.0 && rows_ >= fwd, "{name}: rows ≥ forwards");
        assert!(
            num(row, "draft_rows") >= num(row, "draft_forwards"),
            "{name}"
        );
        assert!((num(row, "tokens_per_target_forward") * fwd - tokens).abs() < 1e-6 * tokens);
        let hist: f64 = row["accepted_hist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert_eq!(
            hist,
            num(row, "verify_steps"),
            "{name}: histogram sums to the steps"
        );
        let per = &row["per_image"];
        assert!((num(per, "target_forwards") * images as f64 - fwd).abs() < 1e-6 * fwd);
        assert!(
            (num(row, "wall_per_image") * images as f64 - num(row, "wall_seconds")).abs()
                < 1e-9 + 1e-9 * num(row, "wall_seconds")
        );
        let runs = row["runs"].as_array().unwrap();
        assert_eq!(runs.len() as u64, images, "{name}");
        for run in runs {
            assert_eq!(
                run["tokens"].as_array().unwrap().len() as u64,
                image_tokens,
                "{name}"
            );
        }
        let d = num(row, "diversity");
        assert!((0.0..=1.0).contains(&d), "{name}: diversity {d}");
        // The tiny model is class-conditional: no alignment judge.
        assert!(row["alignment"].is_null() && row["valid_scene_rate"].is_null());
        match row["family"].as_str().unwrap() {
            "vanilla" => {
                assert!(row["speedup"].is_null());
                assert_eq!(fwd, (images * image_tokens) as f64);
                assert_eq!(num(row, "draft_forwards"), 0.0);
            }
            family => {
                let s = num(row, "speedup");
                assert!(s.is_finite() && s > 0.0, "{name}: speed-up {s}");
                if name.ends_with(" auto") {
                    // Cost-aware drafting may choose plain steps throughout; what it chose is
                    // in the histogram of draft depths, one entry per step.
                    let hist = row["draft_depth_hist"].as_array().unwrap();
                    let steps: f64 = hist.iter().map(|v| v.as_f64().unwrap()).sum();
                    if steps == 0.0 {
                        // A profile that rules drafting out before the run decodes with the
                        // plain decoder (`auto_draft`, "Never drafting"): vanilla's calls.
                        assert_eq!(fwd, (images * image_tokens) as f64, "{name}");
                        assert_eq!(num(row, "draft_forwards"), 0.0, "{name}");
                    } else {
                        assert_eq!(
                            steps,
                            fwd - num(row, "prefills"),
                            "{name}: one depth per step"
                        );
                    }
                } else if matches!(family, "sd" | "coupled" | "lantern" | "vvs" | "gsd") {
                    assert!(num(row, "draft_forwards") > 0.0, "{name} drafts");
                    assert!(num(row, "verify_steps") > 0.0, "{name} verifies");
                }
                if family == "gridar" {
                    assert!(num(row, "verifier_calls") > 0.0, "{name} verifies canvases");
                }
            }
        }
    }
    rows
}

#[test]
fn quick_bench_json_is_complete_and_sane() {
    let (json, plots) = (tmp("quick.json"), tmp("plots"));
    let (j, p) = (json.display().to_string(), plots.display().to_string());
    let m = model();
    let out = argen(&[
        "bench",
        "--quick",
        "--model",
        &m,
        "--json",
        &j,
        "--plots",
        &p,
        "--prompts",
        "1",
        "--seeds",
        "2",
        "--threads",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = check_report(&r, 1, 2);
    for f in FAMILIES {
        assert!(rows.iter().any(|x| x["family"] == f), "family {f} missing");
    }
    // The Markdown table on stdout has one line per row; progress goes to stderr.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for row in &rows {
        let name = row["name"].as_str().unwrap();
        assert!(
            stdout.contains(&format!("| {name} |")),
            "{name} not in\n{stdout}"
        );
        assert!(stderr.contains(name), "no progress line for {name}");
    }
    // Coupled speculative decoding is token-for-token vanilla decoding.
    let runs = |n: &str| {
        rows.iter().find(|x| x["name"] == n).unwrap()["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["tokens"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(runs("coupled tree"), runs("vanilla"));
    // The three plots are PNG files.
    for f in ["speed_quality.png", "lantern_delta.png", "vvs_interval.png"] {
        let bytes = std::fs::read(plots.join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
}

#[test]
fn bench_runs_equal_argen_generate() {
    let json = tmp("sd.json");
    let j = json.display().to_string();
    let m = model();
    let out = argen(&[
        "bench",
        "--quick",
        "--model",
        &m,
        "--json",
        &j,
        "--prompts",
        "2",
        "--seeds",
        "2",
        "--methods",
        "sd",
        "--threads",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = check_report(&r, 2, 2);
    let fams: Vec<_> = rows.iter().map(|x| x["family"].as_str().unwrap()).collect();
    // Chain, tree, and `sd auto` (the fixture has no cost profile: the bench calibrates one).
    assert_eq!(fams, ["vanilla", "sd", "sd", "sd"]);
    assert!(r["cost_profile"]["source"]["calibrated"].is_string());
    // The models are loaded once and reused: a later run equals a fresh `argen generate`.
    let row = &rows[2];
    let run = &row["runs"].as_array().unwrap()[3];
    assert_eq!(
        (run["prompt"].as_u64(), run["seed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(run["tokens"], generate_tokens(row, "1", "1", "sd"));
}

/// The tokens `argen generate` makes with `row`'s flags on class `class`, seed `seed`.
fn generate_tokens(row: &Value, class: &str, seed: &str, tag: &str) -> Value {
    let tok = tmp(&format!("{tag}.tok.json"));
    let png = tmp(&format!("{tag}.png"));
    let (m, t, p) = (
        model(),
        tok.display().to_string(),
        png.display().to_string(),
    );
    let mut args = vec![
        "generate", "--model", &m, "--class", class, "--seed", seed, "--out", &p, "--tokens", &t,
        "--quiet",
    ];
    let flags = row["flags"].as_str().unwrap().to_string();
    args.extend(flags.split(' '));
    let g = argen(&args);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    serde_json::from_str(&std::fs::read_to_string(&tok).unwrap()).unwrap()
}

#[test]
fn bench_errors_are_clear() {
    let m = model();
    let out = argen(&["bench", "--model", &m, "--methods", "medusa"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("medusa") && e.contains("lantern"), "{e}");
    let out = argen(&["bench", "--model", &m, "--device", "cuda"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUDA"));
    let out = argen(&["bench", "--model", &m, "--prompts", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prompts"));
    let out = argen(&["bench", "--model", "/nonexistent/model"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model"));
}

#[test]
fn bench_runs_inner_methods_under_best_of_n() {
    let json = tmp("bon-inner.json");
    let j = json.display().to_string();
    let m = model();
    let out = argen(&[
        "bench",
        "--quick",
        "--model",
        &m,
        "--json",
        &j,
        "--prompts",
        "1",
        "--seeds",
        "2",
        "--methods",
        "bon",
        "--inner",
        "vanilla,sd",
        "--threads",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = check_report(&r, 1, 2);
    let names: Vec<_> = rows.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "vanilla",
            "best-of-4",
            "best-of-8",
            "bon N=4 inner=sd",
            "bon N=8 inner=sd"
        ]
    );
    let row = &rows[3];
    assert_eq!(row["inner"], "sd");
    assert_eq!(row["config"]["scaling"]["best_of_n"]["n"], 4);
    assert!(row["config"]["method"]["speculative"].is_object());
    assert!(num(row, "draft_forwards") > 0.0);
    // The row's flags reproduce its second run with `argen generate`.
    let run = &row["runs"].as_array().unwrap()[1];
    let flags = row["flags"].as_str().unwrap();
    assert!(
        flags.contains("--method bon --n 4 --inner sd --criterion exact --draft tree"),
        "{flags}"
    );
    assert_eq!(run["tokens"], generate_tokens(row, "0", "1", "bon-inner"));
    // GridAR rows cannot take Jacobi candidates: one line, with a hint.
    let out = argen(&["bench", "--model", &m, "--inner", "sjd"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("restartable")
            && e.contains("hint: --methods bon")
            && e.trim().lines().count() == 1,
        "{e}"
    );
    let out = argen(&["bench", "--model", &m, "--methods", "bon", "--inner", "bon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("single-image"));
}
