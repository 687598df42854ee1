//! `argen calibrate` and the bench's cost-model columns on the tiny random checkpoint
//! (`fixtures/model/tiny`): a valid profile, one-line errors that leave files alone, and
//! predictions that are the profile's costs of each row's model calls.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use argen_engine::cost_file;
use argen_engine::predict::{predict_nanos, RowHistogram};
use serde_json::Value;

fn argen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argen"))
        .args(args)
        .output()
        .expect("run argen")
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/model/tiny")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argen-calibrate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A copy of the tiny model directory at `dir` (which may then get its own profile).
fn tiny_copy(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(tiny()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir.display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn calibrate_writes_a_profile() {
    let out = tmp("profile.json");
    let o = argen(&[
        "calibrate",
        "--model",
        &tiny().display().to_string(),
        "--out",
        &out.display().to_string(),
        "--threads",
        "1",
        "--budget",
        "0",
        "--rows",
        "2,4,16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = cost_file::read(&out).unwrap().unwrap();
    assert_eq!(f.threads, 1);
    let rows: Vec<u32> = f.profile.target.points().map(|p| p.0).collect();
    assert_eq!(rows, [2, 4, 16]);
    assert_eq!(f.profile.drafter.unwrap().len(), 3);
    let e = stderr(&o);
    assert!(
        e.contains("target    16 rows") && e.contains("wrote"),
        "{e}"
    );
    assert!(e.contains("(median of "), "{e}");
    // The mean instead of the median: the same points.
    let o = argen(&[
        "calibrate",
        "--model",
        &tiny().display().to_string(),
        "--out",
        &out.display().to_string(),
        "--threads",
        "1",
        "--budget",
        "0",
        "--rows",
        "2,4",
        "--statistic",
        "mean",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(mean of "), "{}", stderr(&o));
    let f = cost_file::read(&out).unwrap().unwrap();
    assert_eq!(f.profile.target.len(), 2);
}

#[test]
fn calibrate_errors_are_one_line_and_leave_files_alone() {
    let m = tiny().display().to_string();
    let keep = tmp("keep.json");
    std::fs::write(&keep, b"previous contents").unwrap();
    let k = keep.display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (
            &["calibrate", "--model", "/nonexistent/argen-model"],
            "does not exist",
        ),
        (
            &[
                "calibrate",
                "--model",
                &m,
                "--out",
                "/proc/argen-nonexistent/x",
            ],
            "/proc/argen-nonexistent",
        ),
        (
            &["calibrate", "--model", &m, "--out", &k, "--rows", "4,2"],
            "strictly increasing",
        ),
        (
            &["calibrate", "--model", &m, "--out", &k, "--budget", "-1"],
            "--budget",
        ),
        (
            &["calibrate", "--model", &m, "--out", &k, "--context", "99"],
            "1 to 15 image tokens",
        ),
        (
            &[
                "calibrate",
                "--model",
                &m,
                "--out",
                &k,
                "--threads",
                "100000",
            ],
            "--threads",
        ),
    ];
    for (args, want) in cases {
        let o = argen(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.starts_with("argen: error: ") && e.contains(want),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        assert_eq!(std::fs::read(&keep).unwrap(), b"previous contents");
    }
}

#[test]
fn bench_reports_a_bad_profile_file_by_name() {
    let dir = tmp("bad-profile-model");
    let m = tiny_copy(&dir);
    std::fs::write(cost_file::path_in(&dir), b"{\"version\": 1,").unwrap();
    let o = argen(&[
        "bench",
        "--model",
        &m,
        "--methods",
        "sd",
        "--prompts",
        "1",
        "--seeds",
        "1",
        "--threads",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cost-profile.json") && e.contains("not a valid cost profile"),
        "{e}"
    );
}

#[test]
fn bench_predictions_are_the_profiles_costs_of_each_rows_calls() {
    let dir = tmp("profiled-model");
    let m = tiny_copy(&dir);
    let o = argen(&[
        "calibrate",
        "--model",
        &m,
        "--threads",
        "1",
        "--budget",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = tmp("bench.json");
    let j = json.display().to_string();
    let o = argen(&[
        "bench",
        "--quick",
        "--model",
        &m,
        "--methods",
        "sd,sjd,bon",
        "--prompts",
        "1",
        "--seeds",
        "2",
        "--threads",
        "1",
        "--json",
        &j,
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("cost profile") && e.contains("cost-profile.json"),
        "{e}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let profile = cost_file::read(&cost_file::path_in(&dir)).unwrap().unwrap();
    assert_eq!(
        r["cost_profile"]["profile"],
        serde_json::to_value(&profile).unwrap()
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| method | speed-up | predicted speed-up | error %"),
        "{stdout}"
    );
    let rows = r["rows"].as_array().unwrap();
    let ms = |row: &Value| {
        let h = RowHistogram::from_json(&row["row_histogram"]).unwrap();
        let images = row["images"].as_u64().unwrap() as f64;
        predict_nanos(&profile.profile, profile.prefill, &h).unwrap() as f64 / 1e6 / images
    };
    let vanilla = ms(&rows[0]);
    // The tiny model's condition is one class token.
    assert_eq!(rows[0]["row_histogram"]["cls_token_num"], 1);
    assert!(profile.prefill.is_some());
    // Through JSON: equal up to the last bit of the float parser.
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() <= 1e-12 * b.abs().max(1.0);
    for row in rows {
        let p = &row["predicted"];
        let name = row["name"].as_str().unwrap();
        if name.starts_with("best-of") {
            // Judge calls are not in the profile.
            assert!(p["speedup"].is_null(), "{name}");
            continue;
        }
        assert!(close(p["ms_per_image"].as_f64(), ms(row)), "{name}");
        assert!(close(p["speedup"].as_f64(), vanilla / ms(row)), "{name}");
        if name != "vanilla" {
            let measured = row["speedup"].as_f64().unwrap();
            let want = measured / (vanilla / ms(row)) - 1.0;
            assert!(close(p["error"].as_f64(), want), "{name}");
        }
    }
}

#[test]
fn interleaved_bench_runs_make_the_same_images_and_counts() {
    let m = tiny().display().to_string();
    let report = |interleave: bool| -> Value {
        let json = tmp(&format!("interleave-{interleave}.json"));
        let j = json.display().to_string();
        let mut args = vec![
            "bench",
            "--quick",
            "--model",
            &m,
            "--methods",
            "sd,sjd",
            "--prompts",
            "2",
            "--seeds",
            "2",
            "--threads",
            "1",
            "--json",
            &j,
        ];
        if interleave {
            args.push("--interleave");
        }
        let o = argen(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
    };
    let (ra, rb) = (report(false), report(true));
    // A profile the run calibrated itself is measured again before rounds 2, 3 and 4 of the
    // four (2 prompts × 2 seeds) when interleaved, and only then.
    for (r, again) in [(&ra, None), (&rb, Some(3))] {
        let source = &r["cost_profile"]["source"];
        if source["calibrated"].is_string() {
            assert_eq!(source["recalibrations"].as_u64(), again, "{source}");
        }
    }
    let (a, b) = (
        ra["rows"].as_array().unwrap().clone(),
        rb["rows"].as_array().unwrap().clone(),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["name"], y["name"]);
        assert_eq!(x["row_histogram"], y["row_histogram"], "{}", x["name"]);
        let tokens = |r: &Value| -> Vec<Value> {
            let runs = r["runs"].as_array().unwrap();
            runs.iter()
                .map(|u| serde_json::json!([u["prompt"], u["seed"], u["tokens"]]))
                .collect()
        };
        assert_eq!(tokens(x), tokens(y), "{}", x["name"]);
    }
}

#[test]
fn clock_flag_errors_are_one_line_and_leave_files_alone() {
    let m = tiny().display().to_string();
    let keep = tmp("keep-clock.json");
    std::fs::write(&keep, b"previous contents").unwrap();
    let k = keep.display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "calibrate",
                "--model",
                &m,
                "--out",
                &k,
                "--clock",
                "monotonic",
            ],
            "invalid value 'monotonic' for '--clock",
        ),
        (
            &[
                "calibrate",
                "--model",
                &m,
                "--out",
                &k,
                "--clock",
                "cpu",
                "--device",
                "cuda",
            ],
            "cannot time the cuda device",
        ),
        (
            &["bench", "--model", &m, "--clock", "gpu"],
            "invalid value 'gpu' for '--clock",
        ),
        (
            &["bench", "--model", &m, "--clock", "cpu", "--device", "cuda"],
            "cannot time the cuda device",
        ),
    ];
    for (args, want) in cases {
        let o = argen(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.starts_with("argen: error: ") && e.contains(want),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        assert_eq!(std::fs::read(&keep).unwrap(), b"previous contents");
    }
}

#[test]
fn the_profile_records_its_clock_and_the_bench_recalibrates_on_another() {
    let dir = tmp("clocked-model");
    let m = tiny_copy(&dir);
    let o = argen(&[
        "calibrate",
        "--model",
        &m,
        "--threads",
        "1",
        "--budget",
        "0",
        "--rows",
        "1,2,4,8,16,32",
        "--clock",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let profile = cost_file::read(&cost_file::path_in(&dir)).unwrap().unwrap();
    assert_eq!(profile.clock, "cpu");
    let bench = |clock: &str| -> (String, Value, String) {
        let json = tmp(&format!("clocked-{clock}.json"));
        let j = json.display().to_string();
        let o = argen(&[
            "bench",
            "--model",
            &m,
            "--methods",
            "sd",
            "--prompts",
            "1",
            "--seeds",
            "1",
            "--threads",
            "1",
            "--clock",
            clock,
            "--json",
            &j,
        ]);
        let e = stderr(&o);
        assert!(o.status.success(), "{e}");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (e, r, String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // The same clock: the directory's profile.
    let (e, r, md) = bench("cpu");
    assert!(e.contains("argen bench: cost profile "), "{e}");
    assert_eq!(r["clock"], "cpu");
    assert_eq!(
        r["cost_profile"]["profile"],
        serde_json::to_value(&profile).unwrap()
    );
    assert!(md.contains("times by the cpu clock"), "{md}");
    assert!(md.contains("context 9, cpu clock)"), "{md}");
    for row in r["rows"].as_array().unwrap() {
        assert!(row["clock_per_image"].as_f64().is_some(), "{}", row["name"]);
        assert!(row["wall_per_image"].as_f64().is_some(), "{}", row["name"]);
    }
    // Another clock: a fresh calibration by that clock, which says why.
    let (e, r, md) = bench("wall");
    assert!(
        e.contains("calibrated the cost profile at the start")
            && e.contains("the cpu clock; this run uses cpu with 1 threads")
            && e.contains("kernels and the wall clock)"),
        "{e}"
    );
    assert_eq!(r["clock"], "wall");
    assert_eq!(r["cost_profile"]["profile"]["clock"], "wall");
    assert!(md.contains("times by the wall clock"), "{md}");
    // The directory's profile is left as it was.
    assert_eq!(
        cost_file::read(&cost_file::path_in(&dir)).unwrap().unwrap(),
        profile
    );
}
